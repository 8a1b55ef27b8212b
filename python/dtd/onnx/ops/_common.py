"""Helpers shared by several converters."""

from __future__ import annotations

import numpy as np

from ...errors import ModelLoadError
from ..context import ConversionContext, LayerDraft, Node, PendingAffine, axis_vector

#: ONNX auto_pad strings -> the integer codes of the C++ side (dtd::AutoPad).
AUTO_PAD = {"NOTSET": 0, "": 0, "SAME_UPPER": 1, "SAME_LOWER": 2, "VALID": 3}


def auto_pad(node: Node) -> int:
    """Decode the ``auto_pad`` attribute to the C++ code."""
    value = node.str_attr("auto_pad", "NOTSET")
    if value not in AUTO_PAD:
        raise ModelLoadError(f"{node.describe()}: unknown auto_pad '{value}'")
    pads = node.optional_ints_attr("pads")
    if AUTO_PAD[value] != 0 and pads is not None and any(pads):
        raise ModelLoadError(
            f"{node.describe()}: auto_pad {value} together with explicit pads {pads}: the two exclude each other"
        )
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


def sequential_row_sums(matrix: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """``sum_j matrix[:, j] * factors[..., j]`` for every row, in float64, in one fixed order: each product rounded,
    then the products added left to right, ``((p_0 + p_1) + p_2) + ...`` (an empty row sums to 0.0).

    NumPy's ``sum`` (pairwise, its blocking an implementation detail) and ``@`` (BLAS: the order depends on the
    library and the CPU) give sums that another implementation cannot reproduce bit for bit; ``np.add.accumulate``
    is this recurrence by definition (every partial sum is an output), and the C++ importer repeats it
    (cpp/src/import/ops_affine.cpp, compiled without FMA contraction). Rows go in blocks of about 2^22 elements.

    Parameters
    ----------
    matrix : np.ndarray
        A 2-D float64 array [rows, columns] (any strides).
    factors : np.ndarray
        The factors: [columns] (the same for every row) or [rows, columns].
    """
    rows, columns = matrix.shape
    out = np.zeros(rows)
    if columns == 0:
        return out
    step = max(1, (1 << 22) // columns)
    for begin in range(0, rows, step):
        block = matrix[begin : begin + step] * (
            factors if factors.ndim == 1 else factors[begin : begin + step]
        )
        out[begin : begin + step] = np.add.accumulate(block, axis=1)[:, -1]
    return out


def _input_vectors(
    ctx: ConversionContext, pending: PendingAffine, axis: str, channels: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """A pending affine map as one (factor, offset) per input channel (``axis="channel"``, axis 1) or input
    feature (``"last"``) of a conv/dense consumer, or None when the constants vary along other axes."""
    rank = ctx.rank_of(pending.source)
    vectors = []
    for const in (pending.scale, pending.shift):
        if rank is None:
            vectors.append(np.full(channels, float(const.reshape(-1)[0])) if const.size == 1 else None)
        else:
            vectors.append(axis_vector(const, rank, 1 if axis == "channel" else rank - 1, channels))
    scale, shift = vectors
    return None if scale is None or shift is None else (scale, shift)


def fold_input_affine_conv(
    ctx: ConversionContext,
    pending: PendingAffine,
    weight: np.ndarray,
    bias: np.ndarray | None,
    group: int,
    padded: bool,
) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Fold ``conv(x * s + t)`` into the conv's weight and bias: ``w' = w s`` per input channel,
    ``b' = b + sum w t``; None when it is not exact: constants that vary spatially, or a shift with padding
    (padded taps would see 0 instead of t)."""
    c_out, c_per_group = weight.shape[:2]
    vectors = _input_vectors(ctx, pending, "channel", c_per_group * group)
    if vectors is None or (padded and pending.has_shift):
        return None
    scale, shift = vectors
    # Output channel o belongs to group o // (c_out / group) and reads its slice of input channels.
    groups = np.arange(c_out) // (c_out // group)
    factors = scale.reshape(group, c_per_group)[groups]
    if pending.has_shift:
        offsets = shift.reshape(group, c_per_group)[groups]
        # extra[o] = sum over (c, taps) of w[o, c, taps] t[c], in C order (sequential_row_sums).
        taps = int(np.prod(weight.shape[2:]))
        extra = sequential_row_sums(
            weight.reshape(c_out, c_per_group * taps), np.repeat(offsets, taps, axis=1)
        )
        bias = extra if bias is None else bias + extra
    return weight * factors.reshape(factors.shape + (1,) * (weight.ndim - 2)), bias


def fold_input_affine_dense(
    ctx: ConversionContext, pending: PendingAffine, weight: np.ndarray, bias: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Fold ``dense(x * s + t)``: ``w' = w s``, ``b' = b + w t`` (exact); None when the constants vary along
    an axis other than the last."""
    vectors = _input_vectors(ctx, pending, "last", weight.shape[1])
    if vectors is None:
        return None
    scale, shift = vectors
    if pending.has_shift:
        extra = sequential_row_sums(weight, shift)  # weight @ shift, in an order the C++ importer repeats
        bias = extra if bias is None else bias + extra
    return weight * scale[None, :], bias


def broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """True when an array of ``shape`` broadcasts (NumPy rules) to exactly ``target``."""
    try:
        return np.broadcast_shapes(tuple(shape), tuple(target)) == tuple(target)
    except ValueError:
        return False
