"""Flatten, Reshape, Concat, and the layout ops that amount to a reshape (Squeeze, Unsqueeze, Transpose).

A Reshape target computed from the input's shape (PyTorch's ``x.view(x.size(0), -1)``) is evaluated at
import by :mod:`dtd.onnx.fold`. Squeeze, Unsqueeze and a Transpose that only moves size-1 axes do not move
any data: they become ``reshape`` layers to the per-sample shape known from shape inference.
"""

from __future__ import annotations

import numpy as np

from ...errors import ModelLoadError, UnsupportedModelError
from .. import fold
from ..context import ConversionContext, Node
from ..registry import register


@register("Flatten")
def convert_flatten(ctx: ConversionContext, node: Node) -> None:
    """Flatten with axis >= 1 (the batch axis stays separate)."""
    source = ctx.data_input(node, 0)
    axis = node.int_attr("axis", 1)
    rank = ctx.rank_of(source)
    if axis < 0 and rank is not None:
        axis += rank
    if axis < 1:
        raise UnsupportedModelError(
            f"{node.describe()}: Flatten with axis {node.int_attr('axis', 1)} merges the batch axis; only "
            "axis >= 1 is supported"
        )
    ctx.add_layer(node, "flatten", [source], ints={"axis": [axis]})


@register("Reshape")
def convert_reshape(ctx: ConversionContext, node: Node) -> None:
    """Reshape with a constant target shape (batch entry included).

    allowzero=1 (opset 14+) only changes what a 0 entry means (an empty axis instead of a copy of the input's
    extent): without a 0 entry it is the same as allowzero=0; an empty tensor is unsupported.
    """
    source = ctx.data_input(node, 0)
    allowzero = node.opset >= 14 and bool(node.int_attr("allowzero", 0))
    if ctx.is_batch_value(node.input(1)):
        pair = ctx.value_pair(node.input(1))
        assert pair is not None
        if allowzero:
            _check_no_zero(node, [int(v) for v in np.asarray(pair[0]).reshape(-1)])
        target = fold.reshape_target(ctx, node)
        ctx.add_layer(node, "reshape", [source], ints={"shape": target})
        fold.refine_shapes(ctx, node, target)
        return
    if not ctx.is_constant(node.input(1)):
        raise UnsupportedModelError(
            f"{node.describe()}: the target shape '{node.input(1)}' is computed at run time from data, not "
            "from shapes; only a constant shape or one computed from the input's shape is supported"
        )
    shape = [int(v) for v in np.asarray(ctx.raw_constant(node, 1, "shape")).reshape(-1)]
    if allowzero:
        _check_no_zero(node, shape)
    ctx.add_layer(node, "reshape", [source], ints={"shape": shape})


def _check_no_zero(node: Node, target: list[int]) -> None:
    """allowzero=1 with a 0 entry: the result is an empty tensor, outside dtd's scope."""
    if 0 in target:
        raise UnsupportedModelError(
            f"{node.describe()}: Reshape with allowzero=1 and the target shape {target} has an axis of length 0 "
            "(an empty tensor); not supported (with allowzero=0 a 0 entry copies the input's extent)"
        )


def _known_sample_shape(ctx: ConversionContext, node: Node, source: str) -> tuple[int, ...]:
    sample = ctx.sample_shape(source)
    if sample is None or source in ctx.merged_batch:
        raise UnsupportedModelError(
            f"{node.describe()}: the shape of its input '{node.input(0)}' is not known at import (shape "
            f"inference gives {ctx.shape_of(source)}); {node.op_type} is only supported on known shapes"
        )
    return sample


def _axes_of(ctx: ConversionContext, node: Node, attr_until: int) -> list[int] | None:
    """Axes from the attribute (opset <= ``attr_until``) or from the constant input 1 (later opsets)."""
    if node.opset <= attr_until:
        return node.optional_ints_attr("axes")
    if not node.input(1):
        return None
    return [int(v) for v in np.asarray(ctx.raw_constant(node, 1, "axes")).reshape(-1)]


def _normalized(node: Node, axes: list[int], rank: int) -> list[int]:
    out = []
    for axis in axes:
        if not -rank <= axis < rank:
            raise ModelLoadError(f"{node.describe()}: axis {axis} is out of range for rank {rank}")
        out.append(axis % rank)
    if len(set(out)) != len(out):
        raise ModelLoadError(f"{node.describe()}: repeated axes {axes}")
    return out


def _as_reshape(ctx: ConversionContext, node: Node, source: str, sample: list[int]) -> None:
    ctx.add_layer(node, "reshape", [source], ints={"shape": [0, *sample]})


@register("Squeeze")
def convert_squeeze(ctx: ConversionContext, node: Node) -> None:
    """Squeeze of size-1 per-sample axes (given explicitly) -> reshape."""
    source = ctx.data_input(node, 0)
    sample = _known_sample_shape(ctx, node, source)
    axes = _axes_of(ctx, node, 12)
    if axes is None:
        raise UnsupportedModelError(
            f"{node.describe()}: Squeeze without axes would also remove the batch axis for a batch of 1; only "
            "a Squeeze with explicit axes is supported"
        )
    axes = _normalized(node, axes, len(sample) + 1)
    if 0 in axes:
        raise UnsupportedModelError(f"{node.describe()}: a Squeeze of the batch axis is not supported")
    for axis in axes:
        if sample[axis - 1] != 1:
            raise ModelLoadError(
                f"{node.describe()}: axis {axis} of '{node.input(0)}' (shape [N, "
                f"{', '.join(map(str, sample))}]) has length {sample[axis - 1]}, not 1"
            )
    _as_reshape(ctx, node, source, [d for i, d in enumerate(sample, start=1) if i not in axes])


@register("Unsqueeze")
def convert_unsqueeze(ctx: ConversionContext, node: Node) -> None:
    """Unsqueeze inserting per-sample size-1 axes -> reshape."""
    source = ctx.data_input(node, 0)
    sample = _known_sample_shape(ctx, node, source)
    axes = _axes_of(ctx, node, 12)
    if not axes:
        raise ModelLoadError(f"{node.describe()}: the axes are missing")
    rank = len(sample) + 1 + len(axes)
    axes = _normalized(node, axes, rank)
    if 0 in axes:
        raise UnsupportedModelError(
            f"{node.describe()}: an Unsqueeze at axis 0 moves the batch axis; not supported"
        )
    dims = iter(sample)
    out = [1 if axis in axes else next(dims) for axis in range(1, rank)]
    _as_reshape(ctx, node, source, out)


@register("Transpose")
def convert_transpose(ctx: ConversionContext, node: Node) -> None:
    """Transpose that keeps the batch axis first and the data in place (it only moves size-1 axes)."""
    source = ctx.data_input(node, 0)
    sample = _known_sample_shape(ctx, node, source)
    shape = (1, *sample)
    perm = node.optional_ints_attr("perm")
    if perm is None:
        perm = list(range(len(shape)))[::-1]
    if sorted(perm) != list(range(len(shape))):
        raise ModelLoadError(f"{node.describe()}: perm {perm} is not a permutation of {len(shape)} axes")
    if perm[0] != 0:
        raise UnsupportedModelError(
            f"{node.describe()}: Transpose with perm {perm} moves the batch axis; not supported"
        )
    if [a for a in perm if shape[a] != 1] != [a for a in range(len(shape)) if shape[a] != 1]:
        raise UnsupportedModelError(
            f"{node.describe()}: Transpose with perm {perm} of [N, {', '.join(map(str, sample))}] reorders "
            "the data; only transposes that move size-1 axes (no-ops on the memory layout) are supported"
        )
    if perm == sorted(perm):
        ctx.alias(node.outputs[0], source)
        return
    _as_reshape(ctx, node, source, [shape[a] for a in perm[1:]])


@register("Concat")
def convert_concat(ctx: ConversionContext, node: Node) -> None:
    """Concat of data tensors along a non-batch axis."""
    if "axis" not in node.attrs:
        raise UnsupportedModelError(f"{node.describe()}: the axis attribute is required")
    sources = [ctx.data_input(node, i) for i in range(len(node.inputs))]
    axis = node.int_attr("axis", 1)
    rank = ctx.rank_of(sources[0])
    if rank is not None:
        if not -rank <= axis < rank:
            raise UnsupportedModelError(f"{node.describe()}: axis {axis} is out of range for rank {rank}")
        axis %= rank
    if axis == 0:
        raise UnsupportedModelError(f"{node.describe()}: Concat along the batch axis is not supported")
    ctx.add_layer(node, "concat", sources, ints={"axis": [axis]})
