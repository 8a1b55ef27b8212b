"""MaxPool, AveragePool (1-D, 2-D, 3-D), GlobalAveragePool, GlobalMaxPool, and ReduceMean over the spatial axes.

The length of ``kernel_shape`` decides the number of spatial axes. The pooling ops gained attributes over the
opsets; :data:`ATTRIBUTE_SINCE` lists when, and a node that carries an attribute its opset does not define is
malformed (what onnxruntime rejects too).
"""

from __future__ import annotations

import numpy as np

from ...errors import ModelLoadError, UnsupportedModelError
from ..context import ConversionContext, Node
from ..registry import register
from ._common import auto_pad

#: op -> attribute -> the first opset that defines it (earlier ones: kernel_shape, strides, pads, auto_pad).
ATTRIBUTE_SINCE = {
    "MaxPool": {"storage_order": 8, "ceil_mode": 10, "dilations": 10},
    "AveragePool": {"count_include_pad": 7, "ceil_mode": 10, "dilations": 19},
}

#: Number of spatial axes -> how messages name the op's dimension.
_DIMS = {1: "1-D", 2: "2-D", 3: "3-D"}


def _check_attributes(node: Node) -> None:
    for name, since in ATTRIBUTE_SINCE[node.op_type].items():
        if name in node.attrs and node.opset < since:
            raise ModelLoadError(
                f"{node.describe()}: attribute '{name}' is defined from opset {since} on; the model imports opset "
                f"{node.opset}"
            )


def _check_rank(ctx: ConversionContext, node: Node, source: str, spatial: int | None) -> None:
    """The input must be [N, C, spatial...] with ``spatial`` axes (None: 1 to 3, for the global pools)."""
    rank = ctx.rank_of(source)
    if rank is None:
        return
    if spatial is None:
        if not 3 <= rank <= 5:
            raise UnsupportedModelError(
                f"{node.describe()}: pooling over 1, 2 or 3 spatial axes (an input of rank 3 to 5) is supported; "
                f"the input '{node.input(0)}' has rank {rank}"
            )
    elif rank != spatial + 2:
        raise ModelLoadError(
            f"{node.describe()}: a {_DIMS[spatial]} kernel needs a rank-{spatial + 2} input [N, C, spatial...]; the "
            f"input '{node.input(0)}' has rank {rank}"
        )


def _kernel(node: Node) -> list[int]:
    kernel = node.optional_ints_attr("kernel_shape")
    if kernel is None:
        raise ModelLoadError(f"{node.describe()}: the kernel_shape attribute is required")
    if len(kernel) not in _DIMS:
        raise UnsupportedModelError(
            f"{node.describe()}: pooling over 1, 2 or 3 spatial axes is supported; kernel_shape is {kernel}"
        )
    return kernel


def _window(node: Node, kernel: list[int]) -> dict[str, list[int]]:
    """The window attributes shared by MaxPool and AveragePool, one value per spatial axis (pads: two)."""
    r = len(kernel)
    pads = node.ints_attr("pads", [0] * (2 * r), 2 * r)
    for axis, k in enumerate(kernel):
        if pads[axis] >= k or pads[r + axis] >= k:
            # A window wholly in the padding: MaxPool would return -inf there (onnxruntime refuses it too).
            raise ModelLoadError(
                f"{node.describe()}: pads {pads} must be smaller than the kernel {kernel} on every axis"
            )
    return {
        "kernel": kernel,
        "strides": node.ints_attr("strides", [1] * r, r),
        "pads": node.ints_attr("pads", [0] * (2 * r), 2 * r),
        "dilations": node.ints_attr("dilations", [1] * r, r),
        "ceil_mode": [node.int_attr("ceil_mode", 0)],
        "auto_pad": [auto_pad(node)],
    }


@register("MaxPool")
def convert_maxpool(ctx: ConversionContext, node: Node) -> None:
    """MaxPool; a used Indices output is unsupported (storage_order only orders Indices: ignored without)."""
    _check_attributes(node)
    if len(node.outputs) > 1 and node.outputs[1] and ctx.consumers.get(node.outputs[1], 0) > 0:
        raise UnsupportedModelError(
            f"{node.describe()}: the Indices output of MaxPool is used; not supported"
        )
    source = ctx.data_input(node, 0)
    kernel = _kernel(node)
    _check_rank(ctx, node, source, len(kernel))
    ctx.add_layer(node, "maxpool", [source], ints=_window(node, kernel))


@register("AveragePool")
def convert_avgpool(ctx: ConversionContext, node: Node) -> None:
    """AveragePool, count_include_pad either way, dilations from opset 19."""
    _check_attributes(node)
    source = ctx.data_input(node, 0)
    kernel = _kernel(node)
    _check_rank(ctx, node, source, len(kernel))
    ints = _window(node, kernel)
    ints["count_include_pad"] = [node.int_attr("count_include_pad", 0)]
    ctx.add_layer(node, "avgpool", [source], ints=ints)


@register("GlobalAveragePool")
def convert_globalavgpool(ctx: ConversionContext, node: Node) -> None:
    """GlobalAveragePool on [N, C, spatial...] -> globalavgpool (output [N, C, 1...])."""
    source = ctx.data_input(node, 0)
    _check_rank(ctx, node, source, None)
    ctx.add_layer(node, "globalavgpool", [source])


@register("GlobalMaxPool")
def convert_globalmaxpool(ctx: ConversionContext, node: Node) -> None:
    """GlobalMaxPool on [N, C, spatial...] -> globalmaxpool (output [N, C, 1...])."""
    source = ctx.data_input(node, 0)
    _check_rank(ctx, node, source, None)
    ctx.add_layer(node, "globalmaxpool", [source])


@register("ReduceMean")
def convert_reducemean(ctx: ConversionContext, node: Node) -> None:
    """ReduceMean over all spatial axes of [N, C, spatial...] -> globalavgpool (+ reshape to [N, C], keepdims=0)."""
    source = ctx.data_input(node, 0)
    rank = ctx.rank_of(source)
    if node.opset < 18:
        axes = node.optional_ints_attr("axes")
    elif node.input(1):
        axes = [int(v) for v in np.asarray(ctx.raw_constant(node, 1, "axes")).reshape(-1)]
    else:
        axes = None
    if not axes and node.opset >= 18 and node.int_attr("noop_with_empty_axes", 0):
        ctx.alias(node.outputs[0], source)
        return
    if rank is None:
        raise UnsupportedModelError(f"{node.describe()}: the rank of its input '{node.input(0)}' is unknown")
    if axes is None:
        axes = list(range(rank))
    if any(not -rank <= a < rank for a in axes):
        raise ModelLoadError(f"{node.describe()}: axes {axes} are out of range for rank {rank}")
    if not 3 <= rank <= 5 or sorted(a % rank for a in axes) != list(range(2, rank)):
        raise UnsupportedModelError(
            f"{node.describe()}: ReduceMean over axes {axes} of a rank-{rank} tensor is not supported; only the "
            "spatial mean (axes 2 and up of an [N, C, spatial...] tensor with 1 to 3 spatial axes, a global "
            "average pool) is"
        )
    if node.int_attr("keepdims", 1):
        ctx.add_layer(node, "globalavgpool", [source])
        return
    pooled = ctx.unique_name(f"{node.outputs[0]}__pooled")
    ctx.add_layer(node, "globalavgpool", [source], output=pooled)
    channels = ctx.dim_of(source, 1)
    ctx.add_layer(
        node,
        "reshape",
        [pooled],
        ints={"shape": [0, -1 if channels is None else channels]},
        name=ctx.unique_name(f"{node.name}_squeeze"),
    )
