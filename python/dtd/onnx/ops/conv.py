"""Conv (1-D, 2-D, 3-D) -> conv. The weight's rank decides the number of spatial axes."""

from __future__ import annotations

from ...errors import ModelLoadError, UnsupportedModelError
from ..context import ConversionContext, Node
from ..registry import register
from ._common import auto_pad, fold_input_affine_conv

#: Weight rank -> what the convolution is called in messages.
_CONV_RANKS = {3: "1-D", 4: "2-D", 5: "3-D"}


@register("Conv")
def convert_conv(ctx: ConversionContext, node: Node) -> None:
    """Conv with a constant weight [Cout, Cin/group, k...] (1 to 3 kernel axes) and optional constant bias [Cout]."""
    if ctx.is_constant(node.input(0)):
        raise UnsupportedModelError(f"{node.describe()}: the data input is a constant")
    weight = ctx.constant(node, 1, "weight")
    if weight.ndim not in _CONV_RANKS:
        raise UnsupportedModelError(
            f"{node.describe()}: 1-D, 2-D and 3-D convolutions are supported (weight [Cout, Cin/group, k...] of "
            f"rank 3 to 5); the weight has shape {weight.shape}"
        )
    pending = ctx.pending_affine(node, 0)
    source = ctx.resolve(node.input(0)) if pending is None else pending.source
    rank = ctx.rank_of(source)
    if rank is not None and rank != weight.ndim:
        raise ModelLoadError(
            f"{node.describe()}: a {_CONV_RANKS[weight.ndim]} convolution (weight of shape {weight.shape}) needs a "
            f"rank-{weight.ndim} input [N, C, spatial...]; the input '{node.input(0)}' has rank {rank}"
        )
    c_out, c_per_group = weight.shape[:2]
    spatial = weight.ndim - 2
    group = node.int_attr("group", 1)
    if group < 1 or c_out % group:
        raise ModelLoadError(f"{node.describe()}: group={group} does not divide the {c_out} output channels")
    kernel = node.optional_ints_attr("kernel_shape")
    if kernel is not None and kernel != list(weight.shape[2:]):
        raise ModelLoadError(
            f"{node.describe()}: kernel_shape {kernel} does not match the weight of shape {weight.shape}"
        )
    c_in = ctx.dim_of(source, 1)
    if c_in is not None and c_in != c_per_group * group:
        raise ModelLoadError(
            f"{node.describe()}: the weight of shape {weight.shape} with group={group} expects "
            f"{c_per_group * group} input channels, but the input '{node.input(0)}' has {c_in}"
        )
    bias = ctx.optional_constant(node, 2, "bias")
    if bias is not None and bias.shape != (c_out,):
        raise ModelLoadError(
            f"{node.describe()}: the bias has shape {bias.shape}, expected ({c_out},) for a weight of shape "
            f"{weight.shape}"
        )
    ints = {
        "strides": node.ints_attr("strides", [1] * spatial, spatial),
        "pads": node.ints_attr("pads", [0] * (2 * spatial), 2 * spatial),
        "dilations": node.ints_attr("dilations", [1] * spatial, spatial),
        "group": [group],
        "auto_pad": [auto_pad(node)],
    }
    if pending is not None:
        # A constant affine map (BatchNormalization, input normalisation) on the input folds where exact.
        padded = any(ints["pads"]) or ints["auto_pad"][0] in (1, 2)
        folded = fold_input_affine_conv(ctx, pending, weight, bias, group, padded)
        if folded is None:
            source = ctx.data_input(node, 0)
        else:
            weight, bias = folded
    weights = {"weight": weight}
    if bias is not None:
        weights["bias"] = bias
    ctx.add_layer(node, "conv", [source], ints=ints, weights=weights)
