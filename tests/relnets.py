"""Tiny network descriptions for the relevance tests, seeded random factories, and their ONNX export.

A :class:`Net` is a list of :class:`Node` in topological order. Every node produces one tensor named
after the node; the model input is named ``"x"``; the last node is the output. Parameters are float64
arrays whose values are exactly representable in float32, so the float32 ONNX initializers and the
float64 reference (``tests/reference.py``) hold the same numbers.

Ops (``Node.op``) and their fields:

- ``dense``: params ``W`` [out, in], optional ``B`` [out]; attr ``trans_b`` (export as Gemm with
  ``transB=1`` and ``W``, or ``transB=0`` and ``W.T``).
- ``conv``: params ``W`` [M, C/group, k...] (1 to 3 spatial axes), optional ``B`` [M]; attrs ``strides``,
  ``pads`` (ONNX order: all begins, then all ends; 2-D: top, left, bottom, right), ``dilations``, ``group``.
- ``batchnorm``: params ``scale``, ``bias``, ``mean``, ``var`` [C]; attr ``epsilon``.
- ``maxpool``: attrs ``kernel``, ``strides``, ``pads``, ``dilations``, ``ceil_mode`` (1 to 3 spatial axes).
- ``avgpool``: attrs ``kernel``, ``strides``, ``pads``, ``dilations``, ``ceil_mode``, ``count_include_pad``.
- ``globalavgpool``, ``globalmaxpool``, ``relu``, ``softmax``, ``logsoftmax`` (axis 1): no fields.
- ``flatten`` (axis 1), ``reshape``: attr ``shape`` (ONNX Reshape target, batch axis included, 0 and -1
  allowed), ``add`` (any number of inputs), ``concat`` (attr ``axis``, default 1).
- ``activation``: attr ``onnx`` (the ONNX op: ``LeakyRelu``, ``Clip``, ``Tanh``, ..., or ``Silu``, exported as
  ``Mul(x, Sigmoid(x))``) and its ONNX attributes (Clip: ``min``/``max``, exported as inputs); PRelu: param
  ``slope``. ``gate``: inputs [signal, gate], exported as Mul.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

BIAS_MODES = ("random", "none", "zero", "nonpositive")


@dataclasses.dataclass
class Node:
    """One layer of a :class:`Net`."""

    name: str
    op: str
    inputs: list[str]
    params: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    attrs: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Net:
    """A network description: per-sample input shape and nodes in topological order."""

    name: str
    input_shape: tuple[int, ...]
    nodes: list[Node]

    @property
    def output(self) -> str:
        """Name of the output tensor (the last node)."""
        return self.nodes[-1].name

    def node(self, name: str) -> Node:
        """Return the node called ``name``."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def names_of(self, op: str) -> list[str]:
        """Names of the nodes whose op is ``op``, in order."""
        return [n.name for n in self.nodes if n.op == op]


def f32(a: np.ndarray) -> np.ndarray:
    """Round to float32 and back: values the ONNX initializers hold exactly."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def conv_out(size: int, k: int, s: int, p0: int, p1: int, d: int, ceil: bool = False) -> int:
    """Output length of a convolution / pooling window along one axis (ONNX formula)."""
    span = size + p0 + p1 - d * (k - 1) - 1
    return (-(-span // s) if ceil else span // s) + 1


class Builder:
    """Appends nodes to a net while tracking the current per-sample shape."""

    def __init__(self, name: str, input_shape: Sequence[int], rng: np.random.Generator, bias: str = "random"):
        if bias not in BIAS_MODES:
            raise ValueError(f"bias mode {bias!r} not in {BIAS_MODES}")
        self.net = Net(name, tuple(input_shape), [])
        self.rng = rng
        self.bias = bias
        self.shapes: dict[str, tuple[int, ...]] = {"x": tuple(input_shape)}
        self.cur = "x"
        self.counter: dict[str, int] = {}

    @property
    def shape(self) -> tuple[int, ...]:
        """Per-sample shape of the current tensor."""
        return self.shapes[self.cur]

    def _name(self, op: str) -> str:
        k = self.counter.get(op, 0)
        self.counter[op] = k + 1
        return f"{op}{k}"

    def _add(
        self,
        op: str,
        out_shape: tuple[int, ...],
        inputs: list[str] | None = None,
        params: dict[str, np.ndarray] | None = None,
        **attrs: Any,
    ) -> str:
        name = self._name(op)
        node = Node(name, op, list(inputs if inputs is not None else [self.cur]), params or {}, attrs)
        self.net.nodes.append(node)
        self.shapes[name] = out_shape
        self.cur = name
        return name

    def _bias(self, n: int) -> np.ndarray | None:
        if self.bias == "none":
            return None
        if self.bias == "zero":
            return np.zeros(n)
        b = f32(0.3 * self.rng.standard_normal(n))
        # small negative biases: large ones leave most units dead and most logits negative
        return -np.abs(f32(0.1 * b)) if self.bias == "nonpositive" else b

    def dense(self, n_out: int, trans_b: bool | None = None) -> str:
        """Fully connected layer on a flat input."""
        (n_in,) = self.shape
        w = f32(self.rng.standard_normal((n_out, n_in)) * math.sqrt(2.0 / n_in))
        params = {"W": w}
        b = self._bias(n_out)
        if b is not None:
            params["B"] = b
        if trans_b is None:
            trans_b = bool(self.rng.integers(2))
        return self._add("dense", (n_out,), params=params, trans_b=trans_b)

    def conv(
        self,
        m: int,
        k: int | tuple[int, ...] = 3,
        strides: tuple[int, ...] | None = None,
        pads: tuple[int, ...] | None = None,
        dilations: tuple[int, ...] | None = None,
        group: int = 1,
    ) -> str:
        """Convolution over the current tensor's 1 to 3 spatial axes (default: stride 1, pad 1, dilation 1)."""
        c, *sp = self.shape
        r = len(sp)
        ks = (k,) * r if isinstance(k, int) else tuple(k)
        strides = strides if strides is not None else (1,) * r
        pads = pads if pads is not None else (1,) * (2 * r)
        dilations = dilations if dilations is not None else (1,) * r
        assert c % group == 0 and m % group == 0 and len(ks) == len(strides) == len(dilations) == r
        assert len(pads) == 2 * r
        fan_in = (c // group) * int(np.prod(ks))
        w = f32(self.rng.standard_normal((m, c // group, *ks)) * math.sqrt(2.0 / fan_in))
        params = {"W": w}
        b = self._bias(m)
        if b is not None:
            params["B"] = b
        out = tuple(conv_out(sp[i], ks[i], strides[i], pads[i], pads[r + i], dilations[i]) for i in range(r))
        return self._add(
            "conv",
            (m, *out),
            params=params,
            strides=tuple(strides),
            pads=tuple(pads),
            dilations=tuple(dilations),
            group=group,
        )

    def batchnorm(self) -> str:
        """BatchNormalization with random statistics (folded by the importer)."""
        c = self.shape[0]
        params = {
            "scale": f32(self.rng.uniform(0.5, 1.5, c) * self.rng.choice([-1.0, 1.0], c, p=[0.2, 0.8])),
            "bias": f32(0.2 * self.rng.standard_normal(c)),
            "mean": f32(0.2 * self.rng.standard_normal(c)),
            "var": f32(self.rng.uniform(0.5, 2.0, c)),
        }
        if self.bias in ("none", "zero"):
            # keep the folded bias exactly zero: b' = (b - mean) k + beta with b = mean = beta = 0
            params["mean"] = np.zeros(c)
            params["bias"] = np.zeros(c)
        elif self.bias == "nonpositive":
            # folded bias (b - mean) k + beta <= 0: mean on the far side of b, beta <= 0
            prev = self.net.nodes[-1].params.get("B", np.zeros(c))
            k = params["scale"] / np.sqrt(params["var"] + 1e-5)
            params["mean"] = f32(prev + np.sign(k) * np.abs(0.1 * params["mean"]))
            params["bias"] = -np.abs(f32(0.1 * params["bias"]))
        return self._add("batchnorm", self.shape, params=params, epsilon=1e-5)

    def relu(self) -> str:
        """ReLU."""
        return self._add("relu", self.shape)

    def _window(
        self,
        k: int | tuple[int, ...],
        strides: tuple[int, ...] | None,
        pads: tuple[int, ...] | None,
        dilations: tuple[int, ...] | None,
        ceil_mode: bool,
    ) -> tuple[tuple[int, ...], dict[str, Any]]:
        """Output shape and attributes of a pooling window over the current tensor's spatial axes."""
        c, *sp = self.shape
        r = len(sp)
        ks = (k,) * r if isinstance(k, int) else tuple(k)
        s = tuple(strides) if strides is not None else ks
        pads = tuple(pads) if pads is not None else (0,) * (2 * r)
        dl = tuple(dilations) if dilations is not None else (1,) * r
        out = tuple(conv_out(sp[i], ks[i], s[i], pads[i], pads[r + i], dl[i], ceil_mode) for i in range(r))
        return (c, *out), {
            "kernel": ks,
            "strides": s,
            "pads": pads,
            "dilations": dl,
            "ceil_mode": int(ceil_mode),
        }

    def maxpool(
        self,
        k: int | tuple[int, ...] = 2,
        strides: tuple[int, ...] | None = None,
        pads: tuple[int, ...] | None = None,
        dilations: tuple[int, ...] | None = None,
        ceil_mode: bool = False,
    ) -> str:
        """Max pooling (stride defaults to the kernel)."""
        out, attrs = self._window(k, strides, pads, dilations, ceil_mode)
        return self._add("maxpool", out, **attrs)

    def avgpool(
        self,
        k: int | tuple[int, ...] = 2,
        strides: tuple[int, ...] | None = None,
        pads: tuple[int, ...] | None = None,
        count_include_pad: int = 0,
        ceil_mode: bool = False,
        dilations: tuple[int, ...] | None = None,
    ) -> str:
        """Average pooling (stride defaults to the kernel; dilations need opset 19 in the export)."""
        out, attrs = self._window(k, strides, pads, dilations, ceil_mode)
        return self._add("avgpool", out, count_include_pad=int(count_include_pad), **attrs)

    def globalavgpool(self) -> str:
        """Global average pooling (keeps unit spatial axes, as ONNX does)."""
        return self._add("globalavgpool", (self.shape[0], *(1 for _ in self.shape[1:])))

    def globalmaxpool(self) -> str:
        """Global max pooling (keeps unit spatial axes, as ONNX does)."""
        return self._add("globalmaxpool", (self.shape[0], *(1 for _ in self.shape[1:])))

    def flatten(self) -> str:
        """Flatten with axis 1."""
        return self._add("flatten", (int(np.prod(self.shape)),))

    def reshape(self, shape: Sequence[int]) -> str:
        """Reshape; ``shape`` is the per-sample target shape (the batch axis is written as 0)."""
        shape = tuple(int(s) for s in shape)
        size = int(np.prod(self.shape))
        known = int(np.prod([s for s in shape if s != -1]))
        out = tuple(size // known if s == -1 else s for s in shape)
        assert int(np.prod(out)) == size
        return self._add("reshape", out, shape=(0, *shape))

    def add(self, inputs: Sequence[str]) -> str:
        """Elementwise sum of same-shaped tensors."""
        shape = self.shapes[inputs[0]]
        assert all(self.shapes[i] == shape for i in inputs)
        return self._add("add", shape, inputs=list(inputs))

    def concat(self, inputs: Sequence[str]) -> str:
        """Concatenation on the channel axis."""
        shapes = [self.shapes[i] for i in inputs]
        out = (sum(s[0] for s in shapes), *shapes[0][1:])
        return self._add("concat", out, inputs=list(inputs), axis=1)

    def activation(self, onnx_op: str, slope: np.ndarray | None = None, **attrs: Any) -> str:
        """An element-wise activation: the ONNX op ``onnx_op`` with its attributes (PRelu: ``slope``)."""
        params = {} if slope is None else {"slope": f32(slope)}
        # float attributes as ONNX stores them (float32)
        attrs = {k: float(np.float32(v)) if isinstance(v, float) else v for k, v in attrs.items()}
        return self._add("activation", self.shape, params=params, onnx=onnx_op, **attrs)

    def gate(self, signal: str, gate: str) -> str:
        """``signal * gate`` (ONNX Mul), the gate broadcast against the signal (per channel or elementwise)."""
        return self._add("gate", self.shapes[signal], inputs=[signal, gate])

    def softmax(self, log: bool = False) -> str:
        """Softmax (or LogSoftmax) over the classes."""
        return self._add("logsoftmax" if log else "softmax", self.shape)


# ---------------------------------------------------------------------------------------------------
# Factories (all seeded)


def mlp(
    seed: int,
    input_shape: Sequence[int] = (12,),
    hidden: Sequence[int] = (16, 10),
    n_out: int = 5,
    bias: str = "random",
    softmax: str | None = None,
) -> Net:
    """Dense/ReLU stack; a flatten is inserted first when the input is not flat."""
    b = Builder(f"mlp{seed}", input_shape, np.random.default_rng(seed), bias)
    if len(b.shape) != 1:
        b.flatten()
    for h in hidden:
        b.dense(h)
        b.relu()
    b.dense(n_out)
    if softmax is not None:
        b.softmax(log=softmax == "log")
    return b.net


# Every geometry a CNN factory covers: (name, input shape, list of (method, kwargs)).
CNN_GEOMETRIES: dict[str, tuple[tuple[int, ...], list[tuple[str, dict[str, Any]]]]] = {
    "plain": (
        (2, 8, 8),
        [
            ("conv", {"m": 4}),
            ("relu", {}),
            ("maxpool", {"k": 2}),
            ("conv", {"m": 6}),
            ("relu", {}),
            ("flatten", {}),
        ],
    ),
    "stride2_asympad": (
        (3, 9, 8),
        [
            ("conv", {"m": 4, "k": 3, "strides": (2, 2), "pads": (0, 1, 2, 0)}),
            ("relu", {}),
            ("conv", {"m": 5, "k": (2, 3), "strides": (1, 2), "pads": (1, 0, 0, 2)}),
            ("relu", {}),
            ("flatten", {}),
        ],
    ),
    "dilation": (
        (2, 10, 9),
        [
            ("conv", {"m": 4, "k": 3, "dilations": (2, 1), "pads": (2, 1, 1, 0)}),
            ("relu", {}),
            ("conv", {"m": 3, "k": 2, "dilations": (2, 3), "pads": (0, 0, 0, 0)}),
            ("relu", {}),
            ("flatten", {}),
        ],
    ),
    "groups": (
        (4, 7, 7),
        [
            ("conv", {"m": 6, "k": 3, "group": 2}),
            ("relu", {}),
            ("conv", {"m": 6, "k": 1, "pads": (0, 0, 0, 0), "group": 3}),
            ("relu", {}),
            ("flatten", {}),
        ],
    ),
    "depthwise": (
        (3, 8, 8),
        [
            ("conv", {"m": 6, "k": 3}),
            ("relu", {}),
            ("conv", {"m": 6, "k": 3, "group": 6, "strides": (2, 2), "pads": (1, 0, 1, 1)}),
            ("relu", {}),
            ("conv", {"m": 4, "k": 1, "pads": (0, 0, 0, 0)}),
            ("relu", {}),
            ("flatten", {}),
        ],
    ),
    "maxpool_pad_ceil": (
        (2, 9, 9),
        [
            ("conv", {"m": 4}),
            ("relu", {}),
            ("maxpool", {"k": 3, "strides": (2, 2), "pads": (1, 0, 1, 1), "ceil_mode": True}),
            ("conv", {"m": 4}),
            ("relu", {}),
            ("flatten", {}),
        ],
    ),
    "maxpool_overlap": (
        (2, 8, 8),
        [
            ("conv", {"m": 4}),
            ("relu", {}),
            ("maxpool", {"k": 3, "strides": (1, 2), "pads": (1, 1, 0, 0)}),
            ("conv", {"m": 3}),
            ("relu", {}),
            ("maxpool", {"k": (2, 3), "strides": (1, 1)}),
            ("flatten", {}),
        ],
    ),
    "maxpool_dilation": (
        (2, 9, 9),
        [
            ("conv", {"m": 4}),
            ("relu", {}),
            ("maxpool", {"k": 2, "strides": (2, 2), "dilations": (2, 2)}),
            ("flatten", {}),
        ],
    ),
    "avgpool_cip0": (
        (2, 8, 9),
        [
            ("conv", {"m": 4}),
            ("relu", {}),
            ("avgpool", {"k": 3, "strides": (2, 2), "pads": (1, 0, 1, 1), "count_include_pad": 0}),
            ("conv", {"m": 3}),
            ("relu", {}),
            ("flatten", {}),
        ],
    ),
    "avgpool_cip1": (
        (2, 8, 9),
        [
            ("conv", {"m": 4}),
            ("relu", {}),
            ("avgpool", {"k": 3, "strides": (2, 2), "pads": (1, 0, 1, 1), "count_include_pad": 1}),
            ("conv", {"m": 3}),
            ("relu", {}),
            ("avgpool", {"k": 2, "strides": (1, 1)}),
            ("flatten", {}),
        ],
    ),
    "globalavgpool": (
        (3, 7, 6),
        [
            ("conv", {"m": 5}),
            ("relu", {}),
            ("conv", {"m": 6}),
            ("relu", {}),
            ("globalavgpool", {}),
            ("flatten", {}),
        ],
    ),
    "reshape": (
        (2, 8, 8),
        [
            ("conv", {"m": 4, "strides": (2, 2)}),
            ("relu", {}),
            ("reshape", {"shape": (4, -1)}),
            ("reshape", {"shape": (-1,)}),
        ],
    ),
    "dense_reshape_conv": (
        (12,),
        [
            ("dense", {"n_out": 32}),
            ("relu", {}),
            ("reshape", {"shape": (2, 4, 4)}),
            ("conv", {"m": 3}),
            ("relu", {}),
            ("flatten", {}),
        ],
    ),
}


#: Geometries kept out of ``all_nets`` (whose ONNX exports tests/test_import_cpp.py pins to a record made while
#: the Python importer existed): tests name them directly.
EXTRA_CNN_GEOMETRIES: dict[str, tuple[tuple[int, ...], list[tuple[str, dict[str, Any]]]]] = {
    # deep layers at small outputs: 16 and 4 GEMM columns at batch 1 (dtd's narrow kernel, weights packed once),
    # 32 to 40 output channels, patch depths across dtd's depth block of 256
    "deep_small": (
        (8, 8, 8),
        [
            ("conv", {"m": 32}),
            ("relu", {}),
            ("maxpool", {"k": 2}),
            ("conv", {"m": 32}),
            ("relu", {}),
            ("maxpool", {"k": 2}),
            ("conv", {"m": 40}),
            ("relu", {}),
            ("conv", {"m": 16, "k": 1}),
            ("relu", {}),
            ("flatten", {}),
        ],
    ),
}


def cnn(
    seed: int,
    geometry: str = "plain",
    n_out: int = 4,
    bias: str = "random",
    softmax: str | None = None,
    hidden: int | None = 8,
) -> Net:
    """A small CNN with the given geometry (a key of ``CNN_GEOMETRIES``), then dense layers."""
    input_shape, layers = {**CNN_GEOMETRIES, **EXTRA_CNN_GEOMETRIES}[geometry]
    b = Builder(f"cnn_{geometry}_{seed}", input_shape, np.random.default_rng(seed), bias)
    for method, kwargs in layers:
        getattr(b, method)(**kwargs)
    if hidden:
        b.dense(hidden)
        b.relu()
    b.dense(n_out)
    if softmax is not None:
        b.softmax(log=softmax == "log")
    return b.net


def resnet(
    seed: int,
    bias: str = "random",
    batchnorm: bool = True,
    n_out: int = 4,
    input_shape: Sequence[int] = (2, 6, 6),
) -> Net:
    """Stem conv-relu, a residual block conv-BN-relu-conv-BN + skip Add then relu, GAP, dense."""
    b = Builder(f"resnet{seed}", input_shape, np.random.default_rng(seed), bias)
    b.conv(4)
    if batchnorm:
        b.batchnorm()
    skip = b.relu()
    b.conv(4)
    if batchnorm:
        b.batchnorm()
    b.relu()
    b.conv(4)
    if batchnorm:
        b.batchnorm()
    b.add([skip, b.cur])
    b.relu()
    b.globalavgpool()
    b.flatten()
    b.dense(n_out)
    return b.net


def concat_net(
    seed: int, bias: str = "random", n_out: int = 4, input_shape: Sequence[int] = (2, 6, 6)
) -> Net:
    """Stem conv, two branches (3x3 conv, 1x1 conv) concatenated on channels, conv, dense."""
    b = Builder(f"concat{seed}", input_shape, np.random.default_rng(seed), bias)
    b.conv(3)
    stem = b.relu()
    b.conv(2, k=3)
    left = b.relu()
    b.cur = stem
    b.conv(3, k=1, pads=(0, 0, 0, 0))
    right = b.relu()
    b.concat([left, right, stem])
    b.conv(3, strides=(2, 2))
    b.relu()
    b.flatten()
    b.dense(n_out)
    return b.net


def all_nets(seed: int, bias: str = "random") -> dict[str, Net]:
    """One net of every family and geometry, keyed by a short id."""
    nets = {"mlp": mlp(seed, bias=bias), "mlp_img": mlp(seed, input_shape=(1, 5, 4), bias=bias)}
    for g in CNN_GEOMETRIES:
        nets[f"cnn_{g}"] = cnn(seed, g, bias=bias)
    nets["resnet"] = resnet(seed, bias=bias)
    nets["concat"] = concat_net(seed, bias=bias)
    return nets


# ---------------------------------------------------------------------------------------------------
# ONNX export


def _init(name: str, a: np.ndarray, dtype: Any = np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(a, dtype=dtype), name)


def _out_shape(net: Net) -> tuple[int, ...]:
    """Per-sample output shape: replay the builder's shape logic is not kept, so infer from the last dense."""
    for n in reversed(net.nodes):
        if n.op == "dense":
            return (int(n.params["W"].shape[0]),)
    raise ValueError(f"net {net.name!r} has no final dense layer")


def to_onnx(net: Net, opset: int = 13) -> onnx.ModelProto:
    """Export ``net`` as an ONNX model: input ``x`` [N, *input_shape] float32, output the last node."""
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    for n in net.nodes:
        ins = list(n.inputs)
        out = [n.name]
        a = n.attrs
        if n.op == "dense":
            w = n.params["W"]
            inits.append(_init(f"{n.name}.W", w if a["trans_b"] else w.T))
            ins.append(f"{n.name}.W")
            if "B" in n.params:
                inits.append(_init(f"{n.name}.B", n.params["B"]))
                ins.append(f"{n.name}.B")
            nodes.append(helper.make_node("Gemm", ins, out, name=n.name, transB=int(a["trans_b"])))
        elif n.op == "conv":
            inits.append(_init(f"{n.name}.W", n.params["W"]))
            ins.append(f"{n.name}.W")
            if "B" in n.params:
                inits.append(_init(f"{n.name}.B", n.params["B"]))
                ins.append(f"{n.name}.B")
            nodes.append(
                helper.make_node(
                    "Conv",
                    ins,
                    out,
                    name=n.name,
                    kernel_shape=list(n.params["W"].shape[2:]),
                    strides=list(a["strides"]),
                    pads=list(a["pads"]),
                    dilations=list(a["dilations"]),
                    group=a["group"],
                )
            )
        elif n.op == "batchnorm":
            for key in ("scale", "bias", "mean", "var"):
                inits.append(_init(f"{n.name}.{key}", n.params[key]))
                ins.append(f"{n.name}.{key}")
            nodes.append(helper.make_node("BatchNormalization", ins, out, name=n.name, epsilon=a["epsilon"]))
        elif n.op == "relu":
            nodes.append(helper.make_node("Relu", ins, out, name=n.name))
        elif n.op in ("maxpool", "avgpool"):
            kw: dict[str, Any] = {
                "kernel_shape": list(a["kernel"]),
                "strides": list(a["strides"]),
                "pads": list(a["pads"]),
            }
            if a.get("ceil_mode", 0) or n.op == "maxpool":
                kw["ceil_mode"] = a.get("ceil_mode", 0)
            if any(d != 1 for d in a.get("dilations", ())):
                kw["dilations"] = list(a["dilations"])
            if n.op == "avgpool":
                kw["count_include_pad"] = a["count_include_pad"]
            op_type = "MaxPool" if n.op == "maxpool" else "AveragePool"
            nodes.append(helper.make_node(op_type, ins, out, name=n.name, **kw))
        elif n.op == "globalavgpool":
            nodes.append(helper.make_node("GlobalAveragePool", ins, out, name=n.name))
        elif n.op == "globalmaxpool":
            nodes.append(helper.make_node("GlobalMaxPool", ins, out, name=n.name))
        elif n.op == "flatten":
            nodes.append(helper.make_node("Flatten", ins, out, name=n.name, axis=1))
        elif n.op == "reshape":
            inits.append(_init(f"{n.name}.shape", np.array(a["shape"]), np.int64))
            nodes.append(helper.make_node("Reshape", [*ins, f"{n.name}.shape"], out, name=n.name))
        elif n.op == "add":
            # ONNX Add is binary: chain it for more inputs (the importer may see several Adds).
            acc = ins[0]
            for k, other in enumerate(ins[1:]):
                tgt = n.name if k == len(ins) - 2 else f"{n.name}.part{k}"
                nodes.append(helper.make_node("Add", [acc, other], [tgt], name=tgt))
                acc = tgt
        elif n.op == "concat":
            nodes.append(helper.make_node("Concat", ins, out, name=n.name, axis=a.get("axis", 1)))
        elif n.op == "activation":
            op = a["onnx"]
            extra = {k: v for k, v in a.items() if k != "onnx"}
            if op == "PRelu":
                inits.append(_init(f"{n.name}.slope", n.params["slope"]))
                ins.append(f"{n.name}.slope")
            if op == "Clip":
                # Clip-11+: the bounds are inputs ("" for an absent one)
                for key in ("min", "max"):
                    if key in extra:
                        inits.append(_init(f"{n.name}.{key}", np.asarray(extra.pop(key))))
                        ins.append(f"{n.name}.{key}")
                    else:
                        ins.append("")
            if op == "Silu":
                sig = f"{n.name}.sigmoid"
                nodes.append(helper.make_node("Sigmoid", ins, [sig], name=sig))
                nodes.append(helper.make_node("Mul", [ins[0], sig], out, name=n.name))
            else:
                nodes.append(helper.make_node(op, ins, out, name=n.name, **extra))
        elif n.op == "gate":
            nodes.append(helper.make_node("Mul", ins, out, name=n.name))
        elif n.op == "softmax":
            nodes.append(helper.make_node("Softmax", ins, out, name=n.name, axis=1))
        elif n.op == "logsoftmax":
            nodes.append(helper.make_node("LogSoftmax", ins, out, name=n.name, axis=1))
        else:
            raise ValueError(f"unknown op {n.op!r} in node {n.name!r}")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *net.input_shape])
    y = helper.make_tensor_value_info(net.output, TensorProto.FLOAT, ["N", *_out_shape(net)])
    graph = helper.make_graph(nodes, net.name, [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
