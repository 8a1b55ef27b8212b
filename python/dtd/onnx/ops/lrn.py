"""LRN (local response normalization across channels, AlexNet-era models) -> lrn; relevance passes through."""

from __future__ import annotations

from ...errors import ModelLoadError, UnsupportedModelError
from ..context import ConversionContext, Node
from ..registry import register


@register("LRN")
def convert_lrn(ctx: ConversionContext, node: Node) -> None:
    """LRN with size, alpha (default 1e-4), beta (0.75), bias (1.0) over axis 1 of an [N, C, ...] input."""
    source = ctx.data_input(node, 0)
    if "size" not in node.attrs:
        raise ModelLoadError(f"{node.describe()}: the size attribute is required")
    size = node.int_attr("size", 1)
    if size < 1:
        raise ModelLoadError(f"{node.describe()}: size must be >= 1, got {size}")
    rank = ctx.rank_of(source)
    if rank is not None and rank < 3:
        raise UnsupportedModelError(
            f"{node.describe()}: LRN needs an input [N, C, ...] of rank >= 3, got shape {ctx.shape_of(source)}"
        )
    floats = {
        "alpha": node.float_attr("alpha", 1e-4),
        "beta": node.float_attr("beta", 0.75),
        "bias": node.float_attr("bias", 1.0),
    }
    ctx.add_layer(node, "lrn", [source], ints={"size": [size]}, floats=floats)
