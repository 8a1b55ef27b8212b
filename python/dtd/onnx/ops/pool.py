"""MaxPool, AveragePool (2-D), GlobalAveragePool, and ReduceMean over the spatial axes."""

from __future__ import annotations

import numpy as np

from ...errors import ModelLoadError, UnsupportedModelError
from ..context import ConversionContext, Node
from ..registry import register
from ._common import auto_pad


def _check_rank(ctx: ConversionContext, node: Node, source: str) -> None:
    rank = ctx.rank_of(source)
    if rank is not None and rank != 4:
        raise UnsupportedModelError(
            f"{node.describe()}: only 2-D pooling on 4-D NCHW tensors is supported; the input "
            f"'{node.input(0)}' has rank {rank}"
        )


def _kernel(node: Node) -> list[int]:
    kernel = node.optional_ints_attr("kernel_shape", 2)
    if kernel is None:
        raise UnsupportedModelError(f"{node.describe()}: the kernel_shape attribute is required")
    return kernel


@register("MaxPool")
def convert_maxpool(ctx: ConversionContext, node: Node) -> None:
    """MaxPool; a column-major storage_order or a used Indices output is unsupported."""
    if node.int_attr("storage_order", 0) != 0:
        raise UnsupportedModelError(f"{node.describe()}: storage_order=1 is not supported")
    if len(node.outputs) > 1 and node.outputs[1] and ctx.consumers.get(node.outputs[1], 0) > 0:
        raise UnsupportedModelError(
            f"{node.describe()}: the Indices output of MaxPool is used; not supported"
        )
    source = ctx.data_input(node, 0)
    _check_rank(ctx, node, source)
    ints = {
        "kernel": _kernel(node),
        "strides": node.ints_attr("strides", [1, 1], 2),
        "pads": node.ints_attr("pads", [0, 0, 0, 0], 4),
        "dilations": node.ints_attr("dilations", [1, 1], 2),
        "ceil_mode": [node.int_attr("ceil_mode", 0)],
        "auto_pad": [auto_pad(node)],
    }
    ctx.add_layer(node, "maxpool", [source], ints=ints)


@register("AveragePool")
def convert_avgpool(ctx: ConversionContext, node: Node) -> None:
    """AveragePool (dilations other than 1, from opset 19, are unsupported)."""
    source = ctx.data_input(node, 0)
    _check_rank(ctx, node, source)
    dilations = node.ints_attr("dilations", [1, 1], 2)
    if dilations != [1, 1]:
        raise UnsupportedModelError(
            f"{node.describe()}: AveragePool with dilations {dilations} is not supported"
        )
    ints = {
        "kernel": _kernel(node),
        "strides": node.ints_attr("strides", [1, 1], 2),
        "pads": node.ints_attr("pads", [0, 0, 0, 0], 4),
        "ceil_mode": [node.int_attr("ceil_mode", 0)],
        "count_include_pad": [node.int_attr("count_include_pad", 0)],
        "auto_pad": [auto_pad(node)],
    }
    ctx.add_layer(node, "avgpool", [source], ints=ints)


@register("GlobalAveragePool")
def convert_globalavgpool(ctx: ConversionContext, node: Node) -> None:
    """GlobalAveragePool on NCHW -> globalavgpool (output [N, C, 1, 1])."""
    source = ctx.data_input(node, 0)
    _check_rank(ctx, node, source)
    ctx.add_layer(node, "globalavgpool", [source])


@register("ReduceMean")
def convert_reducemean(ctx: ConversionContext, node: Node) -> None:
    """ReduceMean over axes {2, 3} of an NCHW tensor -> globalavgpool (+ reshape to [N, C] for keepdims=0)."""
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
    if rank != 4 or sorted(a % rank for a in axes) != [2, 3]:
        raise UnsupportedModelError(
            f"{node.describe()}: ReduceMean over axes {axes} of a rank-{rank} tensor is not supported; only the "
            "spatial mean (axes 2 and 3 of an NCHW tensor, a global average pool) is"
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
