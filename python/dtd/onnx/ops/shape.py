"""Flatten, Reshape and Concat."""

from __future__ import annotations

import numpy as np

from ...errors import UnsupportedModelError
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
    """Reshape with a constant target shape (batch entry included); allowzero=1 is unsupported."""
    if node.int_attr("allowzero", 0):
        raise UnsupportedModelError(f"{node.describe()}: Reshape with allowzero=1 is not supported")
    source = ctx.data_input(node, 0)
    if not ctx.is_constant(node.input(1)):
        raise UnsupportedModelError(
            f"{node.describe()}: the target shape '{node.input(1)}' is computed at run time; only a constant "
            "shape is supported"
        )
    shape = np.asarray(ctx.raw_constant(node, 1, "shape")).reshape(-1)
    ctx.add_layer(node, "reshape", [source], ints={"shape": [int(v) for v in shape]})


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
