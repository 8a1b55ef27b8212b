"""Add/Sum of data tensors (residual sums) and constant affine ops folded into conv/dense layers.

- ``Add``/``Sum`` of data tensors -> an ``add`` layer.
- ``Add``/``Sub`` of a constant to the output of a conv/dense layer (the MatMul + Add pattern) -> folded into
  that layer's bias.
- ``Mul``/``Div`` by a constant: folded into the preceding conv/dense layer's output units when it is the
  only consumer of that layer, otherwise into the conv/dense layers that consume the product (a scalar or
  one factor per input channel). Any other use is unsupported: there is no elementwise-scale layer kind.
"""

from __future__ import annotations

import numpy as np

from ...errors import UnsupportedModelError
from ..context import ConversionContext, Node
from ..registry import register
from ._common import scale_outputs, shift_outputs, unit_vector


def _split(ctx: ConversionContext, node: Node) -> tuple[list[int], list[int]]:
    data = [i for i, name in enumerate(node.inputs) if name and not ctx.is_constant(name)]
    const = [i for i, name in enumerate(node.inputs) if name and ctx.is_constant(name)]
    return data, const


def _fold_shift(ctx: ConversionContext, node: Node, data: int, shift: np.ndarray) -> None:
    layer = ctx.foldable_producer(node, data)
    vector = None if layer is None else unit_vector(ctx, layer, shift)
    if layer is None or vector is None:
        raise UnsupportedModelError(
            f"{node.describe()}: adding a constant is only supported as the bias of a preceding "
            "Gemm/MatMul/Conv whose output feeds only this node (one value per output unit)"
        )
    shift_outputs(layer, vector)
    ctx.alias(node.outputs[0], layer.output)


@register("Add", "Sum")
def convert_add(ctx: ConversionContext, node: Node) -> None:
    """Residual sum of data tensors, or a constant bias folded into the preceding conv/dense layer."""
    data, const = _split(ctx, node)
    if not const:
        sources = [ctx.data_input(node, i) for i in data]
        if len(sources) == 1:
            ctx.alias(node.outputs[0], sources[0])
        else:
            ctx.add_layer(node, "add", sources)
        return
    if len(data) != 1:
        raise UnsupportedModelError(
            f"{node.describe()}: a sum with constant operands is only supported as one data tensor plus a "
            "constant bias"
        )
    total = sum(np.asarray(ctx.constant(node, i, "constant operand")) for i in const)
    _fold_shift(ctx, node, data[0], np.asarray(total))


@register("Sub")
def convert_sub(ctx: ConversionContext, node: Node) -> None:
    """``x - c`` with a constant c, folded into the preceding conv/dense bias."""
    data, const = _split(ctx, node)
    if data != [0] or const != [1]:
        raise UnsupportedModelError(
            f"{node.describe()}: only data - constant (folded into a preceding layer's bias) is supported"
        )
    _fold_shift(ctx, node, 0, -ctx.constant(node, 1, "constant operand"))


def _fold_scale(ctx: ConversionContext, node: Node, data: int, factor: np.ndarray) -> None:
    layer = ctx.foldable_producer(node, data)
    vector = None if layer is None else unit_vector(ctx, layer, factor)
    if layer is not None and vector is not None:
        scale_outputs(layer, vector)
        ctx.alias(node.outputs[0], layer.output)
        return
    source, previous, _ = ctx.scaled_data_input(node, data)
    # Deferred: the conv/dense consumers fold it into their input channels (checked there).
    ctx.add_pending_scale(node, source, factor if previous is None else previous * factor)


@register("Mul")
def convert_mul(ctx: ConversionContext, node: Node) -> None:
    """Multiplication of a data tensor by a constant (see the module docstring)."""
    data, const = _split(ctx, node)
    if len(data) != 1 or len(const) != 1:
        raise UnsupportedModelError(
            f"{node.describe()}: only the product of a data tensor with a constant is supported"
        )
    _fold_scale(ctx, node, data[0], ctx.constant(node, const[0], "constant factor"))


@register("Div")
def convert_div(ctx: ConversionContext, node: Node) -> None:
    """Division of a data tensor by a constant: a Mul by its reciprocal."""
    data, const = _split(ctx, node)
    if data != [0] or const != [1]:
        raise UnsupportedModelError(f"{node.describe()}: only data / constant is supported")
    divisor = ctx.constant(node, 1, "constant divisor")
    if np.any(divisor == 0):
        raise UnsupportedModelError(f"{node.describe()}: division by a constant containing zeros")
    _fold_scale(ctx, node, 0, 1.0 / divisor)
