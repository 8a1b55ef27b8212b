"""Relu (and Clip with bounds [0, inf)), Softmax and LogSoftmax at the output."""

from __future__ import annotations

import numpy as np

from ...errors import UnsupportedModelError
from ..context import ConversionContext, Node
from ..registry import register
from .shape import reaches_output_through_reshapes


@register("Relu")
def convert_relu(ctx: ConversionContext, node: Node) -> None:
    """Relu -> relu."""
    ctx.add_layer(node, "relu", [ctx.data_input(node, 0)])


@register("Clip", since=11)
def convert_clip(ctx: ConversionContext, node: Node) -> None:
    """Clip(x, 0) with no (or an infinite) upper bound is a ReLU; any other Clip is unsupported."""
    low = ctx.optional_constant(node, 1, "min")
    high = ctx.optional_constant(node, 2, "max")
    is_relu = low is not None and low.size == 1 and float(low.reshape(-1)[0]) == 0.0
    if high is not None and not (high.size == 1 and np.isposinf(high.reshape(-1)[0])):
        is_relu = False
    if not is_relu:
        raise UnsupportedModelError(
            f"{node.describe()}: only Clip(x, min=0) without an upper bound (a ReLU) is supported"
        )
    ctx.add_layer(node, "relu", [ctx.data_input(node, 0)])


@register("Softmax", "LogSoftmax")
def convert_softmax(ctx: ConversionContext, node: Node) -> None:
    """Softmax/LogSoftmax, allowed only as the head: the op producing the graph output, or followed only by shape
    ops (Reshape, Flatten, Squeeze, Unsqueeze, Identity) on the way to it."""
    if not node.outputs or not reaches_output_through_reshapes(ctx, node.outputs[0]):
        raise UnsupportedModelError(
            f"{node.describe()}: {node.op_type} is only supported as the head of the model (the last op, or "
            "followed only by Reshape/Flatten/Squeeze/Unsqueeze/Identity before the graph output); "
            "explanations start from its input, the logits"
        )
    source = ctx.data_input(node, 0)
    rank = ctx.rank_of(source)
    default_axis = -1 if node.opset >= 13 else 1
    axis = node.int_attr("axis", default_axis)
    if rank is not None:
        if not -rank <= axis < rank:
            raise UnsupportedModelError(f"{node.describe()}: axis {axis} is out of range for rank {rank}")
        axis %= rank
        if axis == 0:
            raise UnsupportedModelError(
                f"{node.describe()}: a {node.op_type} over the batch axis is not supported"
            )
        if node.opset < 13 and axis != rank - 1:
            shape = ctx.shape_of(source) or ()
            if any(d != 1 for d in shape[axis + 1 :]):
                # Before opset 13 the op normalises over all axes from `axis` on, flattened together.
                raise UnsupportedModelError(
                    f"{node.describe()}: {node.op_type}-{node.opset} with axis {axis} on a rank-{rank} input "
                    "normalises over several axes at once; only the last axis is supported"
                )
            axis = rank - 1
    ctx.add_layer(node, node.op_type.lower(), [source], ints={"axis": [axis]})
