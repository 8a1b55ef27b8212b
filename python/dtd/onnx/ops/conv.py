"""Conv (2-D only) -> conv."""

from __future__ import annotations

from ...errors import ModelLoadError, UnsupportedModelError
from ..context import ConversionContext, Node
from ..registry import register
from ._common import auto_pad, fold_input_affine_conv


@register("Conv")
def convert_conv(ctx: ConversionContext, node: Node) -> None:
    """Conv with a constant 4-D weight [Cout, Cin/group, kh, kw] and optional constant bias [Cout]."""
    if ctx.is_constant(node.input(0)):
        raise UnsupportedModelError(f"{node.describe()}: the data input is a constant")
    weight = ctx.constant(node, 1, "weight")
    if weight.ndim != 4:
        raise UnsupportedModelError(
            f"{node.describe()}: only 2-D convolutions are supported (4-D weight [Cout, Cin/group, kh, kw]); "
            f"the weight has shape {weight.shape}"
        )
    pending = ctx.pending_affine(node, 0)
    source = ctx.resolve(node.input(0)) if pending is None else pending.source
    rank = ctx.rank_of(source)
    if rank is not None and rank != 4:
        raise UnsupportedModelError(
            f"{node.describe()}: only 2-D convolutions on 4-D NCHW tensors are supported; the input "
            f"'{node.input(0)}' has rank {rank}"
        )
    c_out, c_per_group, kh, kw = weight.shape
    group = node.int_attr("group", 1)
    if group < 1 or c_out % group:
        raise ModelLoadError(f"{node.describe()}: group={group} does not divide the {c_out} output channels")
    kernel = node.optional_ints_attr("kernel_shape")
    if kernel is not None and kernel != [kh, kw]:
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
        "strides": node.ints_attr("strides", [1, 1], 2),
        "pads": node.ints_attr("pads", [0, 0, 0, 0], 4),
        "dilations": node.ints_attr("dilations", [1, 1], 2),
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
