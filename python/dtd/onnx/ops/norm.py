"""BatchNormalization, folded into the preceding conv/dense layer (RULES.md)."""

from __future__ import annotations

import numpy as np

from ...errors import UnsupportedModelError
from ..context import ConversionContext, Node
from ..registry import register
from ._common import output_axis


@register("BatchNormalization")
def convert_batchnorm(ctx: ConversionContext, node: Node) -> None:
    """Fold ``y = g (x - mean) / sqrt(var + eps) + beta`` into the conv/dense layer producing x.

    ``w' = w g / sqrt(var + eps)``, ``b' = (b - mean) g / sqrt(var + eps) + beta`` per output channel.
    """

    def refuse(reason: str) -> UnsupportedModelError:
        return UnsupportedModelError(f"cannot fold BatchNormalization '{node.name}': {reason}")

    if node.int_attr("training_mode", 0):
        raise refuse("it is in training mode (training_mode=1)")
    if any(name and ctx.consumers.get(name, 0) > 0 for name in node.outputs[1:]):
        raise refuse("its running-statistics outputs are used (training mode)")
    layer = ctx.foldable_producer(node, 0)
    if layer is None:
        producer = ctx.producer(node.input(0))
        if producer is not None and producer.kind in ("conv", "dense"):
            reason = f"the output of {producer.source} is also used by other nodes"
        elif producer is not None:
            reason = f"its input comes from {producer.source}, not from a Conv/Gemm/MatMul"
        else:
            reason = f"its input '{node.input(0)}' is not produced by a Conv/Gemm/MatMul"
        raise refuse(reason)
    placement = output_axis(ctx, layer)
    if layer.kind == "dense" and placement is not None and placement[0] != 2:
        raise refuse(f"{layer.source} acts on the last axis of a rank-{placement[0]} tensor, not on channels")
    names = ("scale", "B", "mean", "var")
    params = []
    n_units = layer.weights["weight"].shape[0]
    for index, what in enumerate(names, start=1):
        if not ctx.is_constant(node.input(index)):
            raise refuse(f"its {what} input '{node.input(index)}' is not a constant")
        value = ctx.constant(node, index, what).reshape(-1)
        if value.shape != (n_units,):
            raise refuse(f"its {what} has {value.size} entries, {layer.source} has {n_units} output units")
        params.append(value)
    gamma, beta, mean, var = params
    eps = node.float_attr("epsilon", 1e-5)
    factor = gamma / np.sqrt(var + eps)
    weight = layer.weights["weight"]
    layer.weights["weight"] = np.ascontiguousarray(weight * factor.reshape((-1,) + (1,) * (weight.ndim - 1)))
    bias = layer.weights.get("bias", np.zeros(n_units))
    layer.weights["bias"] = np.ascontiguousarray((bias - mean) * factor + beta)
    ctx.alias(node.outputs[0], layer.output)
