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
- ``Mul`` of two data tensors where exactly one comes from a sigmoid-like gate function (Sigmoid, HardSigmoid,
  ``relu6(x + 3) / 6``), possibly through shape-only ops -> a ``gate`` layer [signal, gate] (squeeze-and-
  excitation, MobileNetV3, x * sigmoid(x)); relevance goes to the signal alone. Any other such product is
  unsupported.
"""

from __future__ import annotations

import numpy as np

from ...errors import ModelLoadError, UnsupportedModelError
from ..context import ConversionContext, LayerDraft, Node
from ..registry import register
from ._common import broadcasts_to, scale_outputs, shift_outputs, unit_vector
from .activation import ACTIVATION_OP, add_activation


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


def _fold(ctx: ConversionContext, node: Node, data: int, value: np.ndarray, scale: bool) -> None:
    """``x * value`` (scale) or ``x + value``: into the preceding conv/dense layer's output units or bias when
    exact, else a pending affine map."""
    layer = ctx.foldable_producer(node, data)
    vector = None if layer is None else unit_vector(ctx, layer, value)
    if layer is not None and vector is not None:
        (scale_outputs if scale else shift_outputs)(layer, vector)
        ctx.alias(node.outputs[0], layer.output)
        return
    ctx.add_pending_affine(node, data, value if scale else 1.0, 0.0 if scale else value)


def _shift(ctx: ConversionContext, node: Node, data: int, shift: np.ndarray) -> None:
    """``x + shift``."""
    _fold(ctx, node, data, shift, scale=False)


def _scale(ctx: ConversionContext, node: Node, data: int, factor: np.ndarray) -> None:
    """``x * factor``."""
    _fold(ctx, node, data, factor, scale=True)


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


#: Layer kinds that only reshape: a gate may pass through them on its way to the Mul.
_SHAPE_ONLY_KINDS = ("reshape", "flatten")
#: Activations whose output lies in [0, 1]: the gate functions a Mul of two data tensors is recognised by.
_GATE_OPS = (ACTIVATION_OP["sigmoid"], ACTIVATION_OP["hard_sigmoid"])


def _gate_function(ctx: ConversionContext, name: str) -> LayerDraft | None:
    """The layer behind ``name`` (through shape-only layers), when it is a sigmoid-like gate function."""
    layer = ctx.producer(name)
    while layer is not None and layer.kind in _SHAPE_ONLY_KINDS:
        layer = ctx.producer(layer.inputs[0])
    if layer is not None and layer.kind == "activation" and layer.ints["op"][0] in _GATE_OPS:
        return layer
    return None


def _hard_sigmoid_scale(ctx: ConversionContext, node: Node, index: int) -> tuple[str, float] | None:
    """For an operand ``relu6(u) / 6`` (Clip(0, M), possibly reshaped, then a pending constant factor s with
    s M = 1: the hard sigmoid ``relu6(x + 3) / 6`` once its Add 3 is folded into the layer before), return the
    clipped value and s."""
    pending = ctx.pending_affine(node, index)
    if pending is None or pending.has_shift:
        return None
    scale = np.unique(pending.scale)
    if scale.size != 1 or float(scale[0]) <= 0:
        return None
    source, factor = pending.source, float(scale[0])
    layer = ctx.producer(source)
    while layer is not None and layer.kind in _SHAPE_ONLY_KINDS:
        layer = ctx.producer(layer.inputs[0])
    if layer is None or layer.kind != "activation" or layer.ints["op"][0] != ACTIVATION_OP["clip"]:
        return None
    low, high = layer.floats.get("min"), layer.floats.get("max")
    if low != 0.0 or high is None or abs(factor * high - 1.0) > 1e-6:
        return None
    return source, factor


def _convert_gate(ctx: ConversionContext, node: Node) -> None:
    """Mul of two data tensors: a ``gate`` when exactly one operand is a sigmoid-like gate function."""
    hard = [_hard_sigmoid_scale(ctx, node, k) for k in (0, 1)]
    is_gate = [
        hard[k] is not None
        or (ctx.pending_origin(node.inputs[k]) is None and _gate_function(ctx, node.inputs[k]) is not None)
        for k in (0, 1)
    ]
    shapes = [ctx.shape_of(node.inputs[k]) for k in (0, 1)]
    if is_gate.count(True) != 1:
        raise UnsupportedModelError(
            f"{node.describe()}: the product of two data tensors (shapes {shapes[0]} and {shapes[1]}) is not a "
            "recognisable gate: exactly one operand must come from a Sigmoid, a HardSigmoid or relu6(x + 3) / 6 "
            "(possibly reshaped)"
        )
    k = is_gate.index(True)
    signal = ctx.data_input(node, 1 - k)
    ranks = [ctx.rank_of(node.inputs[j]) for j in (0, 1)]
    if None not in ranks and ranks[0] != ranks[1]:
        raise UnsupportedModelError(
            f"{node.describe()}: the gate (shape {shapes[k]}) and the signal (shape {shapes[1 - k]}) differ in rank; "
            "the gate must keep the batch axis and broadcast against the signal per sample"
        )
    gate_shape, signal_shape = ctx.sample_shape(node.inputs[k]), ctx.sample_shape(node.inputs[1 - k])
    if gate_shape is not None and signal_shape is not None:
        if not broadcasts_to(gate_shape, signal_shape):
            raise UnsupportedModelError(
                f"{node.describe()}: the gate of shape {shapes[k]} does not broadcast against the signal of shape "
                f"{shapes[1 - k]} (the product must have the signal's shape)"
            )
    found = hard[k]
    if found is not None:
        # s * relu6(u) = hard_sigmoid(relu6(u); alpha=s, beta=0) exactly, since relu6(u) lies in [0, 1 / s].
        source, factor = found
        gate = ctx.unique_name(f"{node.name}/hard_sigmoid")
        add_activation(
            ctx, node, "hard_sigmoid", source, {"alpha": factor, "beta": 0.0}, output=gate, name=gate
        )
    else:
        gate = ctx.data_input(node, k)
    ctx.add_layer(node, "gate", [signal, gate])


@register("Mul")
def convert_mul(ctx: ConversionContext, node: Node) -> None:
    """Multiplication of a data tensor by a constant (see the module docstring), or a multiplicative gate."""
    data, const = _split(ctx, node)
    if len(data) == 2 and not const:
        _convert_gate(ctx, node)
        return
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
