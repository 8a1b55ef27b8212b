"""Pattern fusion on the ONNX graph, before conversion: subgraphs that exporters write for one function.

The erf form of GELU (PyTorch before opset 20, Keras, older exporters)::

    u = x / 1.4142135   (or x * 0.70710677)
    v = Erf(u) + 1
    y = (x * v) * 0.5   (or (v * 0.5) * x, or (x * 0.5) * v; either operand order everywhere)

is keyed on the Erf node: it is fused when every constant matches within 1e-6 and every intermediate value has
no consumer but the next node of the pattern (and is not the graph output). The fused node replaces the
pattern's last node and is converted by :func:`dtd.onnx.ops.activation.convert_erf_gelu`.

LayerNormalization decomposed (PyTorch's export before opset 17, ``F.layer_norm`` and hand-written LayerNorm2d)::

    m = ReduceMean(x, axes)            (keepdims=1; axes an attribute before opset 18, an input from 18)
    d = x - m
    v = ReduceMean(Pow(d, 2) or d * d, axes)
    y = d / Sqrt(v + eps)
    y = y * scale + bias               (each optional, constants, either operand order)

is keyed on the first ReduceMean, under the same conditions (``d`` feeds exactly the Pow/Mul and the Div). The
fused LayerNormalization node (``axes`` and ``epsilon`` attributes, ``""`` for an absent scale or bias) is
converted by :func:`dtd.onnx.ops.norm.convert_decomposed_layernorm`, which checks that the axes are the trailing
ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .registry import Converter

_TOL = 1e-6


@dataclass(frozen=True)
class Fusion:
    """The node indices a fusion removes, and the node (with its converter) that takes the last one's place."""

    absorbed: frozenset[int]
    replacements: dict[int, tuple[onnx.NodeProto, Converter]]


class _Graph:
    def __init__(
        self, nodes: list[onnx.NodeProto], order: list[int], consts: dict[str, np.ndarray], output: str
    ):
        self.nodes = nodes
        self.output = output
        self.producer: dict[str, int] = {}
        self.consumers: dict[str, list[int]] = {}
        self.values = dict(consts)
        for i in order:
            node = nodes[i]
            for name in node.output:
                if name:
                    self.producer[name] = i
            for name in node.input:
                if name:
                    self.consumers.setdefault(name, []).append(i)
            if node.op_type == "Constant" and node.output:
                for attr in node.attribute:
                    if attr.name == "value":
                        # A malformed tensor is reported by the Constant's converter, which names the node.
                        try:
                            self.values[node.output[0]] = numpy_helper.to_array(attr.t)
                        except Exception:
                            pass
                    elif attr.name == "value_float":
                        self.values[node.output[0]] = np.asarray(attr.f)

    def scalar(self, name: str) -> float | None:
        """The value of a one-element constant, else None."""
        value = self.values.get(name)
        if value is None or value.size != 1 or value.dtype.kind not in "fiu":
            return None
        return float(np.asarray(value).reshape(-1)[0])

    def only_consumer(self, name: str) -> int | None:
        """The one node consuming ``name``, when it has exactly one and is not the graph output."""
        users = self.consumers.get(name, [])
        if len(users) != 1 or name == self.output:
            return None
        return users[0]

    def binary(self, index: int, op_type: str, operand: str) -> str | None:
        """For node ``index`` of type ``op_type`` with ``operand`` as one of its two inputs: the other input."""
        node = self.nodes[index]
        if node.op_type != op_type or len(node.input) != 2 or len(node.output) != 1:
            return None
        if node.input[0] == operand:
            return node.input[1]
        if node.input[1] == operand:
            return node.input[0]
        return None

    def is_scalar(self, name: str, value: float) -> bool:
        got = self.scalar(name)
        return got is not None and abs(got - value) <= _TOL


def _erf_gelu(g: _Graph, erf: int) -> tuple[str, int, set[int]] | None:
    """Match the pattern around Erf node ``erf``: (x, index of the last node, indices of the pattern's nodes)."""
    node = g.nodes[erf]
    if len(node.input) != 1 or len(node.output) != 1:
        return None
    u = node.input[0]
    scale = g.producer.get(u)
    if scale is None or g.only_consumer(u) != erf:
        return None
    snode = g.nodes[scale]
    x: str | None = None
    if snode.op_type == "Div" and len(snode.input) == 2 and g.is_scalar(snode.input[1], math.sqrt(2.0)):
        x = snode.input[0]
    elif snode.op_type == "Mul" and len(snode.input) == 2:
        for k in (0, 1):
            if g.is_scalar(snode.input[k], math.sqrt(0.5)) and g.scalar(snode.input[1 - k]) is None:
                x = snode.input[1 - k]
    if x is None:
        return None
    v = node.output[0]
    add = g.only_consumer(v)
    if add is None:
        return None
    one = g.binary(add, "Add", v)
    if one is None or not g.is_scalar(one, 1.0):
        return None
    w = g.nodes[add].output[0]
    first = g.only_consumer(w)
    if first is None:
        return None
    other = g.binary(first, "Mul", w)
    if other is None:
        return None
    nodes = {scale, erf, add, first}
    t = g.nodes[first].output[0]
    if other == x or g.is_scalar(other, 0.5):
        # (x * v) * 0.5 or (v * 0.5) * x: one more Mul, by whichever factor the first one lacked.
        last = g.only_consumer(t)
        if last is None:
            return None
        factor = g.binary(last, "Mul", t)
        if factor is None or not (g.is_scalar(factor, 0.5) if other == x else factor == x):
            return None
        return x, last, nodes | {last}
    # (x * 0.5) * v: the other operand is a Mul of x by 0.5 that feeds only this node.
    half = g.producer.get(other)
    if half is None or g.only_consumer(other) != first:
        return None
    factor = g.binary(half, "Mul", x)
    if factor is None or not g.is_scalar(factor, 0.5):
        return None
    return x, first, nodes | {half}


def _reduce_axes(g: _Graph, index: int, opset: int) -> list[int] | None:
    """The constant axes of a ReduceMean with keepdims=1, or None (absent axes, computed axes, keepdims=0)."""
    node = g.nodes[index]
    if node.op_type != "ReduceMean" or len(node.output) != 1 or not node.input:
        return None
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if int(attrs.get("keepdims", 1)) != 1:
        return None
    if opset < 18:
        axes = attrs.get("axes")
        return None if axes is None or len(node.input) != 1 else [int(a) for a in axes]
    if len(node.input) != 2 or node.input[1] not in g.values:
        return None
    axes_value = np.asarray(g.values[node.input[1]])
    return [int(a) for a in axes_value.reshape(-1)] if axes_value.size else None


def _layernorm(g: _Graph, mean: int, opset: int) -> tuple[list[str], dict[str, Any], int, set[int]] | None:
    """Match the decomposed LayerNormalization keyed on ReduceMean node ``mean``: (inputs of the fused node, its
    attributes, index of the last node, indices of the pattern's nodes)."""
    axes = _reduce_axes(g, mean, opset)
    if axes is None:
        return None
    x = g.nodes[mean].input[0]
    m = g.nodes[mean].output[0]
    sub = g.only_consumer(m)
    if sub is None or g.nodes[sub].op_type != "Sub" or list(g.nodes[sub].input) != [x, m]:
        return None
    d = g.nodes[sub].output[0]
    users = sorted(set(g.consumers.get(d, [])))  # Mul(d, d) lists its node twice
    if len(users) != 2 or d == g.output:
        return None
    square = div = None
    for user in users:
        unode = g.nodes[user]
        pow2 = unode.op_type == "Pow" and len(unode.input) == 2 and g.is_scalar(unode.input[1], 2.0)
        if pow2 and unode.input[0] == d:
            square = user
        elif unode.op_type == "Mul" and list(unode.input) == [d, d]:
            square = user
        elif unode.op_type == "Div" and len(unode.input) == 2 and unode.input[0] == d:
            div = user
    if square is None or div is None or len(g.nodes[square].output) != 1:
        return None
    var = g.only_consumer(g.nodes[square].output[0])
    if var is None or _reduce_axes(g, var, opset) != axes:
        return None
    add = g.only_consumer(g.nodes[var].output[0])
    if add is None:
        return None
    eps_name = g.binary(add, "Add", g.nodes[var].output[0])
    eps = None if eps_name is None else g.scalar(eps_name)
    if eps is None or not (eps >= 0 and math.isfinite(eps)):
        return None
    sqrt = g.only_consumer(g.nodes[add].output[0])
    if sqrt is None or g.nodes[sqrt].op_type != "Sqrt" or len(g.nodes[sqrt].output) != 1:
        return None
    if g.only_consumer(g.nodes[sqrt].output[0]) != div or list(g.nodes[div].input) != [
        d,
        g.nodes[sqrt].output[0],
    ]:
        return None
    members = {mean, sub, square, var, add, sqrt, div}
    last, scale, bias = div, "", ""
    for op_type in ("Mul", "Add"):
        y = g.nodes[last].output[0]
        nxt = g.only_consumer(y)
        operand = None if nxt is None else g.binary(nxt, op_type, y)
        if nxt is None or operand is None or operand not in g.values:
            continue
        if op_type == "Mul":
            scale = operand
        else:
            bias = operand
        last = nxt
        members.add(nxt)
    return [x, scale, bias], {"axes": axes, "epsilon": eps}, last, members


def find(
    nodes: list[onnx.NodeProto],
    order: list[int],
    consts: dict[str, np.ndarray],
    output: str,
    names: list[str],
    opset: int = 13,
) -> Fusion:
    """Find the fusable patterns among the graph's ``nodes`` (``order``: the nodes to convert, topologically).

    ``names`` are the nodes' unique names; a fused node takes the name of the node its pattern is keyed on.
    ``opset`` is the default-domain opset (where ReduceMean's axes are).
    """
    from .ops.activation import convert_erf_gelu
    from .ops.norm import convert_decomposed_layernorm

    g = _Graph(nodes, order, consts, output)
    absorbed: set[int] = set()
    replacements: dict[int, tuple[onnx.NodeProto, Converter]] = {}
    for i in order:
        if nodes[i].op_type != "ReduceMean" or i in absorbed:
            continue
        ln = _layernorm(g, i, opset)
        if ln is None or ln[3] & absorbed or ln[2] in replacements:
            continue
        inputs, attrs, last, members = ln
        fused = helper.make_node(
            "LayerNormalization", inputs, [nodes[last].output[0]], name=names[i], **attrs
        )
        replacements[last] = (fused, convert_decomposed_layernorm)
        absorbed |= members - {last}
    for i in order:
        if nodes[i].op_type != "Erf" or i in absorbed:
            continue
        match = _erf_gelu(g, i)
        if match is None or match[2] & absorbed:
            continue
        x, last, members = match
        fused = helper.make_node("Gelu", [x], [nodes[last].output[0]], name=names[i])
        replacements[last] = (fused, convert_erf_gelu)
        absorbed |= members - {last}
    return Fusion(frozenset(absorbed), replacements)
