"""Element-wise activations, Softmax and LogSoftmax at the output.

- ``Relu`` and ``Clip(min=0, no max)`` -> ``relu``.
- Any other ``Clip`` (ReLU6, Hardtanh), ``LeakyRelu``, ``PRelu`` (constant slope), ``Elu``, ``Selu``, ``Sigmoid``,
  ``Tanh``, ``HardSigmoid``, ``HardSwish``, ``Softplus``, ``Gelu`` -> ``activation`` with the op code in the
  ``op`` attribute (:data:`ACTIVATION_OP`) and the ONNX parameters in floats; relevance passes through them.
- The erf form of GELU that older exporters write is fused into one ``activation`` gelu by :mod:`dtd.onnx.fuse`,
  which hands the fused node to :func:`convert_erf_gelu`.
"""

from __future__ import annotations

import numpy as np

from ...errors import ModelLoadError, UnsupportedModelError
from ..context import ConversionContext, Node
from ..registry import register
from ._common import broadcasts_to
from .shape import reaches_output_through_reshapes

#: Op codes of the ``activation`` kind: the values of dtd::ActivationOp (cpp/include/dtd/model_spec.hpp).
ACTIVATION_OP = {
    "clip": 0,
    "leaky_relu": 1,
    "prelu": 2,
    "elu": 3,
    "selu": 4,
    "sigmoid": 5,
    "tanh": 6,
    "hard_sigmoid": 7,
    "hard_swish": 8,
    "softplus": 9,
    "gelu": 10,
    "gelu_tanh": 11,
    "silu": 12,
}

#: Clip-6's defaults for absent bounds: the float range; bounds at or beyond it are no bound.
_FLOAT_MAX = float(np.finfo(np.float32).max)


def add_activation(
    ctx: ConversionContext,
    node: Node,
    op: str,
    source: str,
    floats: dict[str, float] | None = None,
    weights: dict[str, np.ndarray] | None = None,
    output: str | None = None,
    name: str | None = None,
) -> None:
    """Append an ``activation`` layer computing ``op`` (a key of :data:`ACTIVATION_OP`) of ``source``."""
    for key, value in (floats or {}).items():
        if not np.isfinite(value) and key not in ("min", "max"):
            raise ModelLoadError(f"{node.describe()}: attribute '{key}' is {value}")
    ctx.add_layer(
        node,
        "activation",
        [source],
        ints={"op": [ACTIVATION_OP[op]]},
        floats=floats,
        weights=weights,
        output=output,
        name=name,
    )


@register("Relu")
def convert_relu(ctx: ConversionContext, node: Node) -> None:
    """Relu -> relu."""
    ctx.add_layer(node, "relu", [ctx.data_input(node, 0)])


def _clip(ctx: ConversionContext, node: Node, low: float | None, high: float | None) -> None:
    """Clip(x, low, high), None for an absent bound: a ReLU when it is [0, inf), else an ``activation`` clip."""
    source = ctx.data_input(node, 0)
    if low is not None and np.isneginf(low):
        low = None
    if high is not None and np.isposinf(high):
        high = None
    if low == 0.0 and high is None:
        ctx.add_layer(node, "relu", [source])
        return
    floats = {k: v for k, v in (("min", low), ("max", high)) if v is not None}
    add_activation(ctx, node, "clip", source, floats)


@register("Clip", until=10)
def convert_clip_attributes(ctx: ConversionContext, node: Node) -> None:
    """Clip-6: the bounds are the attributes ``min`` and ``max`` (defaults: the float range)."""
    low = node.float_attr("min", -_FLOAT_MAX)
    high = node.float_attr("max", _FLOAT_MAX)
    _clip(ctx, node, None if low <= -_FLOAT_MAX else low, None if high >= _FLOAT_MAX else high)


def _bound(ctx: ConversionContext, node: Node, index: int, what: str) -> float | None:
    value = ctx.optional_constant(node, index, what)
    if value is None:
        return None
    if value.size != 1:
        raise ModelLoadError(f"{node.describe()}: the {what} must be a scalar, got shape {list(value.shape)}")
    if np.isnan(value.reshape(-1)[0]):
        raise ModelLoadError(f"{node.describe()}: the {what} is NaN")
    return float(value.reshape(-1)[0])


@register("Clip", since=11)
def convert_clip(ctx: ConversionContext, node: Node) -> None:
    """Clip-11/12/13: the bounds are optional constant inputs 1 (min) and 2 (max)."""
    _clip(ctx, node, _bound(ctx, node, 1, "min"), _bound(ctx, node, 2, "max"))


def _unary(op: str, *params: tuple[str, float]) -> None:
    """Register the converter of an ONNX op that is one ``activation`` with float attributes ``params``."""

    def convert(ctx: ConversionContext, node: Node) -> None:
        # ONNX float attributes, and so their defaults, are float32
        floats = {key: node.float_attr(key, float(np.float32(default))) for key, default in params}
        add_activation(ctx, node, ACTIVATION_OP_OF[node.op_type], ctx.data_input(node, 0), floats)

    convert.__name__ = f"convert_{op.lower()}"
    convert.__doc__ = f"{op} -> activation {ACTIVATION_OP_OF[op]}."
    register(op, since=_SINCE.get(op, 1))(convert)


#: ONNX op type -> activation op, for the ops that map one to one.
ACTIVATION_OP_OF = {
    "LeakyRelu": "leaky_relu",
    "Elu": "elu",
    "Selu": "selu",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "HardSigmoid": "hard_sigmoid",
    "HardSwish": "hard_swish",
    "Softplus": "softplus",
}
_SINCE = {"HardSwish": 14}
_unary("LeakyRelu", ("alpha", 0.01))
_unary("Elu", ("alpha", 1.0))
_unary("Selu", ("alpha", 1.67326319217681884765625), ("gamma", 1.05070102214813232421875))
_unary("Sigmoid")
_unary("Tanh")
_unary("HardSigmoid", ("alpha", 0.2), ("beta", 0.5))
_unary("HardSwish")
_unary("Softplus")


@register("PRelu")
def convert_prelu(ctx: ConversionContext, node: Node) -> None:
    """PRelu with a constant slope, unidirectionally broadcast against the input (batch axis included)."""
    source = ctx.data_input(node, 0)
    slope = ctx.constant(node, 1, "slope")
    rank = ctx.rank_of(source)
    if rank is not None and slope.ndim > rank - 1:
        per_sample = rank - 1
        if slope.ndim > rank or any(d != 1 for d in slope.shape[: slope.ndim - per_sample]):
            raise UnsupportedModelError(
                f"{node.describe()}: a slope of shape {list(slope.shape)} that varies along the batch axis of the "
                f"rank-{rank} input is not supported"
            )
        slope = slope.reshape(slope.shape[slope.ndim - per_sample :])
    shape = ctx.sample_shape(source)
    if shape is not None:
        if not broadcasts_to(slope.shape, shape):
            raise ModelLoadError(
                f"{node.describe()}: the slope of shape {list(slope.shape)} does not broadcast to the input's "
                f"per-sample shape {list(shape)}"
            )
    add_activation(ctx, node, "prelu", source, weights={"slope": slope})


@register("Gelu", since=20)
def convert_gelu(ctx: ConversionContext, node: Node) -> None:
    """Gelu-20: approximate "none" (erf) or "tanh"."""
    approximate = node.str_attr("approximate", "none")
    if approximate not in ("none", "tanh"):
        raise ModelLoadError(
            f"{node.describe()}: unknown approximate '{approximate}' (expected none or tanh)"
        )
    add_activation(ctx, node, "gelu" if approximate == "none" else "gelu_tanh", ctx.data_input(node, 0))


def convert_erf_gelu(ctx: ConversionContext, node: Node) -> None:
    """The erf form of GELU, ``x * 0.5 * (1 + erf(x / sqrt 2))``, fused into one node by :mod:`dtd.onnx.fuse`."""
    add_activation(ctx, node, "gelu", ctx.data_input(node, 0))


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
