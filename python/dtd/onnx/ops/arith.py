"""Add/Sum of data tensors (residual sums) and constant affine ops (Add/Sub/Mul/Div by a constant).

- ``Add``/``Sum`` of data tensors -> an ``add`` layer.
- A constant operand folds into a neighbouring conv/dense layer where that is exact: into the preceding layer's
  output units (Mul/Div) or bias (Add/Sub) when this node is that layer's only consumer, otherwise into the
  conv/dense layers that consume the result (their input channels; a shift only into dense layers and
  unpadded convolutions). Elsewhere (after pooling, ReLU, Concat, on the model input) it becomes an ``affine``
  layer: see :class:`dtd.onnx.context.PendingAffine`. This covers input normalisation written inside the
  graph, ``(x - mean) / std``.
- Before opset 7 the ops carry the legacy ``broadcast`` and ``axis`` attributes: ``broadcast=1`` aligns the
  constant B with the data tensor at ``axis`` (at the trailing axes when ``axis`` is absent), ``broadcast=0``
  needs equal shapes.
"""

from __future__ import annotations

import numpy as np

from ...errors import ModelLoadError, UnsupportedModelError
from ..context import ConversionContext, Node
from ..registry import register
from ._common import scale_outputs, shift_outputs, unit_vector


def _split(ctx: ConversionContext, node: Node) -> tuple[list[int], list[int]]:
    data = [i for i, name in enumerate(node.inputs) if name and not ctx.is_constant(name)]
    const = [i for i, name in enumerate(node.inputs) if name and ctx.is_constant(name)]
    return data, const


def _operand(ctx: ConversionContext, node: Node, index: int, data: int, what: str) -> np.ndarray:
    """Constant input ``index`` in ONNX (NumPy) broadcasting against data input ``data``; before opset 7 the
    legacy ``broadcast``/``axis`` attributes are translated to that form."""
    value = ctx.constant(node, index, what)
    if node.opset >= 7 or node.op_type == "Sum":
        return value
    shape = ctx.shape_of(node.input(data))
    if not node.int_attr("broadcast", 0):
        return value  # equal shapes (checked, as for any constant, when the map is recorded)
    if index < data:
        raise UnsupportedModelError(
            f"{node.describe()}: with broadcast=1 (opset {node.opset}) the constant must be the second operand B"
        )
    if "axis" not in node.attrs:
        return value  # trailing alignment, as NumPy
    if shape is None:
        raise UnsupportedModelError(
            f"{node.describe()}: broadcast with axis needs the rank of '{node.input(data)}', which shape "
            "inference does not know"
        )
    rank = len(shape)
    axis = node.int_attr("axis", 0)
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis <= rank - value.ndim:
        raise ModelLoadError(
            f"{node.describe()}: axis {node.int_attr('axis', 0)} does not place B of shape {list(value.shape)} "
            f"inside the rank-{rank} data tensor"
        )
    return value.reshape(value.shape + (1,) * (rank - axis - value.ndim))


def _shift(ctx: ConversionContext, node: Node, data: int, shift: np.ndarray) -> None:
    """``x + shift``: into the preceding conv/dense bias when exact, else a pending affine map."""
    layer = ctx.foldable_producer(node, data)
    vector = None if layer is None else unit_vector(ctx, layer, shift)
    if layer is not None and vector is not None:
        shift_outputs(layer, vector)
        ctx.alias(node.outputs[0], layer.output)
        return
    ctx.add_pending_affine(node, data, 1.0, shift)


def _scale(ctx: ConversionContext, node: Node, data: int, factor: np.ndarray) -> None:
    """``x * factor``: into the preceding conv/dense output units when exact, else a pending affine map."""
    layer = ctx.foldable_producer(node, data)
    vector = None if layer is None else unit_vector(ctx, layer, factor)
    if layer is not None and vector is not None:
        scale_outputs(layer, vector)
        ctx.alias(node.outputs[0], layer.output)
        return
    ctx.add_pending_affine(node, data, factor, 0.0)


@register("Add", "Sum")
def convert_add(ctx: ConversionContext, node: Node) -> None:
    """Residual sum of data tensors, or a data tensor plus constants."""
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
            f"{node.describe()}: a sum with constant operands is only supported as one data tensor plus "
            "constants"
        )
    total = sum(_operand(ctx, node, i, data[0], "constant operand") for i in const)
    _shift(ctx, node, data[0], np.asarray(total))


@register("Sub")
def convert_sub(ctx: ConversionContext, node: Node) -> None:
    """``x - c`` (a shift) or ``c - x`` (a negation and a shift) with a constant c."""
    data, const = _split(ctx, node)
    if len(data) != 1 or len(const) != 1:
        raise UnsupportedModelError(
            f"{node.describe()}: only data - constant or constant - data is supported"
        )
    value = _operand(ctx, node, const[0], data[0], "constant operand")
    if data == [0]:
        _shift(ctx, node, 0, -value)
    else:
        ctx.add_pending_affine(node, 1, -1.0, value)


@register("Mul")
def convert_mul(ctx: ConversionContext, node: Node) -> None:
    """Multiplication of a data tensor by a constant."""
    data, const = _split(ctx, node)
    if len(data) != 1 or len(const) != 1:
        raise UnsupportedModelError(
            f"{node.describe()}: only the product of a data tensor with a constant is supported"
        )
    _scale(ctx, node, data[0], _operand(ctx, node, const[0], data[0], "constant factor"))


@register("Div")
def convert_div(ctx: ConversionContext, node: Node) -> None:
    """Division of a data tensor by a constant: a Mul by its reciprocal."""
    data, const = _split(ctx, node)
    if data != [0] or const != [1]:
        raise UnsupportedModelError(f"{node.describe()}: only data / constant is supported")
    divisor = _operand(ctx, node, 1, 0, "constant divisor")
    if np.any(divisor == 0):
        raise UnsupportedModelError(f"{node.describe()}: division by a constant containing zeros")
    _scale(ctx, node, 0, 1.0 / divisor)
