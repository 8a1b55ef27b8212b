"""Helpers shared by several converters."""

from __future__ import annotations

import numpy as np

from ...errors import ModelLoadError, UnsupportedModelError
from ..context import ConversionContext, LayerDraft, Node, axis_vector

#: ONNX auto_pad strings -> the integer codes of the C++ side (dtd::AutoPad).
AUTO_PAD = {"NOTSET": 0, "": 0, "SAME_UPPER": 1, "SAME_LOWER": 2, "VALID": 3}


def auto_pad(node: Node) -> int:
    """Decode the ``auto_pad`` attribute to the C++ code."""
    value = node.str_attr("auto_pad", "NOTSET")
    if value not in AUTO_PAD:
        raise ModelLoadError(f"{node.describe()}: unknown auto_pad '{value}'")
    return AUTO_PAD[value]


def output_axis(ctx: ConversionContext, layer: LayerDraft) -> tuple[int, int] | None:
    """Return ``(rank, axis)`` of the per-unit axis of a conv/dense layer's output, or None if unknown.

    Conv outputs are [N, C, spatial...] (units on axis 1, rank the weight's); dense acts on the last axis.
    """
    if layer.kind == "conv":
        return layer.weights["weight"].ndim, 1
    rank = ctx.rank_of(layer.output)
    if rank is None:
        return None
    return rank, rank - 1


def unit_vector(ctx: ConversionContext, layer: LayerDraft, const: np.ndarray) -> np.ndarray | None:
    """Reduce a constant that broadcasts against ``layer``'s output to one value per output unit."""
    placement = output_axis(ctx, layer)
    if placement is None:
        # Unknown rank: only a scalar is safe to fold.
        return (
            axis_vector(const, max(const.ndim, 1), 0, layer.weights["weight"].shape[0])
            if const.size == 1
            else None
        )
    rank, axis = placement
    return axis_vector(const, rank, axis, layer.weights["weight"].shape[0])


def scale_outputs(layer: LayerDraft, factor: np.ndarray) -> None:
    """Multiply a conv/dense layer's output units by ``factor`` (one value per unit)."""
    weight = layer.weights["weight"]
    layer.weights["weight"] = np.ascontiguousarray(weight * factor.reshape((-1,) + (1,) * (weight.ndim - 1)))
    if "bias" in layer.weights:
        layer.weights["bias"] = np.ascontiguousarray(layer.weights["bias"] * factor)


def shift_outputs(layer: LayerDraft, shift: np.ndarray) -> None:
    """Add ``shift`` (one value per unit) to a conv/dense layer's bias."""
    bias = layer.weights.get("bias")
    new_bias = shift.copy() if bias is None else bias + shift
    layer.weights["bias"] = np.ascontiguousarray(new_bias, dtype=np.float64)


def input_scale_vector(
    ctx: ConversionContext, node: Node, source: str, scale: np.ndarray, origin: str, channels: int, axis: str
) -> np.ndarray:
    """Reduce a pending input scale to one factor per input channel/feature of a conv/dense consumer.

    Parameters
    ----------
    axis : str
        ``"channel"`` (axis 1, conv) or ``"last"`` (dense).
    """
    rank = ctx.rank_of(source)
    vector: np.ndarray | None
    if rank is None:
        vector = np.full(channels, float(scale.reshape(-1)[0])) if scale.size == 1 else None
    else:
        vector = axis_vector(scale, rank, 1 if axis == "channel" else rank - 1, channels)
    if vector is None:
        raise UnsupportedModelError(
            f"{origin}: the constant factor of shape {scale.shape} cannot be folded into {node.describe()} "
            "(only a scalar or one factor per input channel can be folded)"
        )
    return vector
