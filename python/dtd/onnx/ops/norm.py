"""BatchNormalization (inference form) and LayerNormalization.

BatchNormalization ``y = g (x - mean) / sqrt(var + eps) + beta`` is folded into the conv/dense layer producing x
when this node is its only consumer (``w' = w k``, ``b' = (b - mean) k + beta``, ``k = g / sqrt(var + eps)`` per
output channel). Otherwise it is the constant affine map ``x k + (beta - mean k)`` per channel (axis 1), which
the following conv/dense layers fold into their weights where exact and which becomes an ``affine`` layer
elsewhere (see :mod:`dtd.onnx.ops.arith`). Opset differences: before 7 ``is_test`` must be 1 (else training
mode) and ``consumed_inputs`` (before 6) is ignored; ``spatial`` (before 9) = 0 means per-activation statistics
of shape [C, D1, ...]; from 14 on ``training_mode`` must be 0; the running-statistics outputs must be unused.
"""

from __future__ import annotations

import numpy as np

from ...errors import ModelLoadError, UnsupportedModelError
from ..context import ConversionContext, Node
from ..registry import register
from ._common import broadcasts_to, output_axis


@register("BatchNormalization")
def convert_batchnorm(ctx: ConversionContext, node: Node) -> None:
    """BatchNormalization in inference form (see the module docstring)."""

    def refuse(reason: str) -> UnsupportedModelError:
        return UnsupportedModelError(f"cannot convert BatchNormalization '{node.name}': {reason}")

    if node.int_attr("training_mode", 0):
        raise refuse("it is in training mode (training_mode=1)")
    if node.opset < 7 and not node.int_attr("is_test", 0):
        raise refuse(f"is_test=0 (opset {node.opset}) is training mode (batch statistics)")
    if any(name and ctx.consumers.get(name, 0) > 0 for name in node.outputs[1:]):
        raise refuse("its running-statistics outputs are used (training mode)")
    spatial = node.int_attr("spatial", 1) if node.opset < 9 else 1
    layer = ctx.foldable_producer(node, 0)
    placement = None if layer is None else output_axis(ctx, layer)
    if placement is not None and placement[1] != 1:
        layer = None  # a dense layer on the last axis of a rank > 2 tensor: its units are not the channels
    shape = ctx.shape_of(node.input(0))
    if shape is not None and len(shape) >= 2 and shape[1] is not None:
        channels = int(shape[1])
    elif layer is not None and spatial:
        channels = int(layer.weights["weight"].shape[0])
    else:
        raise refuse(
            f"the shape of its input '{node.input(0)}' is not known (got {shape}); the channel axis is needed"
        )
    per_sample = ctx.sample_shape(node.input(0))
    if spatial or (per_sample is not None and len(per_sample) == 1):
        expected: tuple[int, ...] = (channels,)
    elif per_sample is None:
        raise refuse("spatial=0 needs the full input shape, which shape inference does not know")
    else:
        expected = per_sample
    params = []
    for index, what in enumerate(("scale", "B", "mean", "var"), start=1):
        if not ctx.is_constant(node.input(index)):
            raise refuse(f"its {what} input '{node.input(index)}' is not a constant")
        value = ctx.constant(node, index, what)
        if value.size != int(np.prod(expected)):
            raise refuse(
                f"its {what} has shape {list(value.shape)}, expected {list(expected)} for the input "
                f"{['N', *(shape or ())[1:]]}" + ("" if spatial else " (spatial=0: one value per activation)")
            )
        params.append(value.reshape(expected))
    gamma, beta, mean, var = params
    eps = node.float_attr("epsilon", 1e-5)
    if np.any(var + eps <= 0):
        raise ModelLoadError(f"{node.describe()}: var + epsilon is not positive")
    factor = gamma / np.sqrt(var + eps)
    offset = beta - mean * factor
    if layer is not None and len(expected) == 1:
        # Into the preceding conv/dense: its output units are the channels (a dense layer on a rank-2 tensor).
        weight = layer.weights["weight"]
        layer.weights["weight"] = np.ascontiguousarray(
            weight * factor.reshape((-1,) + (1,) * (weight.ndim - 1))
        )
        bias = layer.weights.get("bias", np.zeros(channels))
        layer.weights["bias"] = np.ascontiguousarray(bias * factor + offset)
        ctx.alias(node.outputs[0], layer.output)
        return
    if shape is None:
        raise refuse(f"the rank of its input '{node.input(0)}' is not known; the channel axis is needed")
    rank = len(shape)
    along = (1, *expected, *(1,) * (rank - 1 - len(expected)))
    ctx.add_pending_affine(node, 0, factor.reshape(along), offset.reshape(along))


@register("LayerNormalization", since=17)
def convert_layernorm(ctx: ConversionContext, node: Node) -> None:
    """LayerNormalization (opset 17) -> layernorm: normalises the axes ``axis..rank-1`` of each sample."""
    if any(name and ctx.consumers.get(name, 0) > 0 for name in node.outputs[1:]):
        raise UnsupportedModelError(
            f"{node.describe()}: only the first output (Y) is supported; Mean / InvStdDev are used"
        )
    source, sample = _layernorm_input(ctx, node)
    rank = len(sample) + 1
    given = node.int_attr("axis", -1)
    axis = given + rank if given < 0 else given
    if not 0 <= axis < rank:
        raise ModelLoadError(f"{node.describe()}: axis {given} is out of range for rank {rank}")
    _add_layernorm(ctx, node, source, sample, axis, f"axis {given}", scale_required=True)


def convert_decomposed_layernorm(ctx: ConversionContext, node: Node) -> None:
    """The LayerNormalization that :mod:`dtd.onnx.fuse` found written out (ReduceMean, Sub, Pow, ReduceMean, Add,
    Sqrt, Div, then an optional Mul by the scale and Add of the bias): the mean and variance must be taken over
    the trailing axes. Inputs: x, scale or ``""``, bias or ``""``; attributes ``axes`` and ``epsilon``."""
    source, sample = _layernorm_input(ctx, node)
    rank = len(sample) + 1
    given = node.ints_attr("axes", [])
    if not given or any(not -rank <= a < rank for a in given):
        raise ModelLoadError(f"{node.describe()}: ReduceMean axes {given} are out of range for rank {rank}")
    axes = sorted({a % rank for a in given})
    if axes != list(range(axes[0], rank)):
        raise UnsupportedModelError(
            f"{node.describe()} (written out with ReduceMean): the mean and variance are taken over the axes "
            f"{given} of the input "
            f"{['N', *sample]}; only the trailing axes (a layer normalisation) are supported"
        )
    _add_layernorm(ctx, node, source, sample, axes[0], f"axes {given}", scale_required=False)


def _layernorm_input(ctx: ConversionContext, node: Node) -> tuple[str, tuple[int, ...]]:
    source = ctx.data_input(node, 0)
    sample = ctx.sample_shape(node.input(0))
    if sample is None:
        raise UnsupportedModelError(
            f"{node.describe()}: the shape of its input '{node.input(0)}' is not known at import (shape "
            f"inference gives {ctx.shape_of(node.input(0))})"
        )
    return source, sample


def _add_layernorm(
    ctx: ConversionContext,
    node: Node,
    source: str,
    sample: tuple[int, ...],
    axis: int,
    given: str,
    scale_required: bool,
) -> None:
    if axis == 0:
        raise UnsupportedModelError(
            f"{node.describe()}: {given} normalises over the batch axis; only axes >= 1 are supported"
        )
    groups = sample[axis - 1 :]
    weights = {}
    for index, key, what in ((1, "scale", "Scale"), (2, "bias", "B")):
        required = index == 1 and scale_required
        value = ctx.constant(node, index, what) if required else ctx.optional_constant(node, index, what)
        if value is None:
            if key == "scale":
                weights[key] = np.ones(groups)
            continue
        if not broadcasts_to(value.shape, groups):
            raise ModelLoadError(
                f"{node.describe()}: {what} has shape {list(value.shape)}, which does not broadcast to the "
                f"normalised shape {list(groups)} (input {['N', *sample]}, {given})"
            )
        weights[key] = np.ascontiguousarray(np.broadcast_to(value, groups), dtype=np.float64)
    epsilon = node.float_attr("epsilon", 1e-5)
    ctx.add_layer(
        node, "layernorm", [source], ints={"axis": [axis]}, floats={"epsilon": epsilon}, weights=weights
    )
