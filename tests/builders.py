"""ONNX model builders for the tests, and a float64 NumPy interpreter of the models they build.

``GraphBuilder`` assembles small graphs with ``onnx.helper`` (seeded random weights); ``run_numpy`` evaluates
such a graph in float64 with plain NumPy (explicit loops over kernel taps), the slow, obviously right twin
the C++ float64 forward is compared with; ``run_ort`` evaluates it with onnxruntime (float32).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from dtd import _core

DEFAULT_OPSET = 13
#: The oldest default-domain opset dtd imports (tests/test_opsets.py checks that the one before is refused).
MIN_OPSET = 6
#: The newest: that of the onnx release the importer's tables were generated from.
MAX_OPSET = int(_core._import_schema_versions()[0])


class GraphBuilder:
    """Build a single-input, single-output ONNX graph step by step.

    Parameters
    ----------
    input_shape : sequence of int
        Per-sample input shape; the batch axis is a symbolic ``"N"``.
    opset : int
        Default-domain opset.
    seed : int
        Seed of the weight generator.
    """

    def __init__(self, input_shape: Sequence[int], opset: int = DEFAULT_OPSET, seed: int = 0) -> None:
        self.input_shape = tuple(int(d) for d in input_shape)
        self.opset = opset
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0
        self.input = "x"

    # -- pieces -----------------------------------------------------------------------------------------
    def fresh(self, prefix: str) -> str:
        """A new unique value/node name."""
        self._count += 1
        return f"{prefix}{self._count}"

    def const(self, array: np.ndarray, name: str | None = None) -> str:
        """Add an initializer holding ``array`` (dtype kept) and return its name."""
        name = name or self.fresh("c")
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def weight(self, shape: Sequence[int], scale: float | None = None, name: str | None = None) -> str:
        """Add a float32 N(0, scale^2) initializer; default scale 1/sqrt(fan-in)."""
        shape = tuple(int(d) for d in shape)
        if scale is None:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            scale = 1.0 / math.sqrt(max(fan_in, 1))
        return self.const((self.rng.standard_normal(shape) * scale).astype(np.float32), name)

    def node(
        self,
        op_type: str,
        inputs: Sequence[str],
        n_outputs: int = 1,
        name: str | None = None,
        **attrs: Any,
    ) -> str:
        """Append a node and return its first output name."""
        name = name or self.fresh(op_type.lower() + "_")
        outputs = [f"{name}_out{i}" if i else f"{name}_out" for i in range(n_outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outputs, name=name, **attrs))
        return outputs[0]

    def shape(self, value: str) -> tuple[int, ...]:
        """Per-sample shape of ``value`` by ONNX shape inference (batch removed)."""
        if value == self.input:
            return self.input_shape
        model = self.build(value)
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        for info in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]:
            if info.name == value:
                dims = info.type.tensor_type.shape.dim
                return tuple(int(d.dim_value) for d in dims[1:])
        raise KeyError(value)

    # -- layers -----------------------------------------------------------------------------------------
    def conv(
        self,
        x: str,
        c_out: int,
        kernel: Sequence[int] = (3, 3),
        bias: bool = True,
        group: int = 1,
        **attrs: Any,
    ) -> str:
        """Conv with random weights; extra attributes (strides, pads, dilations, auto_pad) are passed on."""
        c_in = self.shape(x)[0]
        w = self.weight((c_out, c_in // group, *kernel))
        inputs = [x, w] + ([self.weight((c_out,), 0.5)] if bias else [])
        if group != 1:
            attrs["group"] = group
        return self.node("Conv", inputs, kernel_shape=list(kernel), **attrs)

    def gemm(self, x: str, n_out: int, bias: bool = True, trans_b: int = 1, **attrs: Any) -> str:
        """Gemm with random B (transposed storage by default, like PyTorch) and bias C."""
        n_in = self.shape(x)[-1]
        w = self.weight((n_out, n_in) if trans_b else (n_in, n_out), 1.0 / math.sqrt(n_in))
        inputs = [x, w] + ([self.weight((n_out,), 0.5)] if bias else [])
        return self.node("Gemm", inputs, transB=trans_b, **attrs)

    def relu(self, x: str) -> str:
        """Relu."""
        return self.node("Relu", [x])

    def batchnorm(self, x: str, channels: int, eps: float = 1e-5) -> str:
        """BatchNormalization (inference) with random statistics (var > 0)."""
        gamma = self.const(self.rng.uniform(0.5, 1.5, channels).astype(np.float32))
        beta = self.const(self.rng.normal(0, 0.5, channels).astype(np.float32))
        mean = self.const(self.rng.normal(0, 0.5, channels).astype(np.float32))
        var = self.const(self.rng.uniform(0.5, 2.0, channels).astype(np.float32))
        return self.node("BatchNormalization", [x, gamma, beta, mean, var], epsilon=eps)

    # -- result -----------------------------------------------------------------------------------------
    def build(self, output: str, input_dtype: int = TensorProto.FLOAT) -> onnx.ModelProto:
        """Return the ModelProto computing ``output`` (the nodes are copied; the builder stays usable)."""
        graph = helper.make_graph(
            list(self.nodes),
            "test",
            [helper.make_tensor_value_info(self.input, input_dtype, ["N", *self.input_shape])],
            [helper.make_tensor_value_info(output, input_dtype, None)],
            initializer=list(self.initializers),
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        model.ir_version = min(model.ir_version, 8)
        return model


def one_node(
    op_type: str,
    input_shape: Sequence[int],
    *,
    consts: Sequence[np.ndarray] = (),
    opset: int = DEFAULT_OPSET,
    **attrs: Any,
) -> onnx.ModelProto:
    """A model made of one node ``op_type(x, *consts)``."""
    b = GraphBuilder(input_shape, opset=opset)
    names = [b.const(c) for c in consts]
    return b.build(b.node(op_type, ["x", *names], **attrs))


def to_bytes(model: onnx.ModelProto) -> bytes:
    """Serialized model."""
    return model.SerializeToString()


def random_input(shape: Sequence[int], seed: int, dtype: type = np.float32) -> np.ndarray:
    """A seeded standard-normal batch."""
    return np.random.default_rng(seed).standard_normal(tuple(shape)).astype(dtype)


def run_ort(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """Evaluate the model with onnxruntime on the CPU (x is cast to float32)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(to_bytes(model), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    (out,) = session.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})
    return np.asarray(out)


# ----------------------------------------------------------------------------------------------------------
# float64 NumPy interpreter
# ----------------------------------------------------------------------------------------------------------
def _pool_out(size: int, k: int, s: int, d: int, pb: int, pe: int, ceil: bool) -> int:
    span = d * (k - 1) + 1
    if ceil:
        out = -(-(size + pb + pe - span) // s) + 1
        # A last window that would start in the end padding is dropped (ONNX / PyTorch convention).
        if (out - 1) * s >= size + pb:
            out -= 1
        return out
    return (size + pb + pe - span) // s + 1


def _resolve_pads(
    attrs: dict[str, Any],
    size: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
) -> list[int]:
    mode = attrs.get("auto_pad", b"NOTSET")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode in ("NOTSET", ""):
        return list(attrs.get("pads", [0] * (2 * len(size))))
    if mode == "VALID":
        return [0] * (2 * len(size))
    begin, end = [], []
    for n, k, s, d in zip(size, kernel, strides, dilations, strict=True):
        out = -(-n // s)
        total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
        small, large = total // 2, total - total // 2
        if mode == "SAME_UPPER":
            begin.append(small)
            end.append(large)
        else:
            begin.append(large)
            end.append(small)
    return begin + end


def _windows(
    x: np.ndarray,
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    pads: Sequence[int],
    out_hw: Sequence[int],
    fill: float,
) -> np.ndarray:
    """Gather [N, C, kh, kw, OH, OW] windows of x (padded with ``fill``, which also fills past the end)."""
    n, c, h, w = x.shape
    kh, kw = kernel
    sh, sw = strides
    dh, dw = dilations
    oh, ow = out_hw
    need_h = (oh - 1) * sh + dh * (kh - 1) + 1
    need_w = (ow - 1) * sw + dw * (kw - 1) + 1
    ph = max(need_h - h - pads[0], 0)
    pw = max(need_w - w - pads[1], 0)
    xp = np.full((n, c, pads[0] + h + ph, pads[1] + w + pw), fill, dtype=np.float64)
    xp[:, :, pads[0] : pads[0] + h, pads[1] : pads[1] + w] = x
    out = np.empty((n, c, kh, kw, oh, ow), dtype=np.float64)
    for i in range(kh):
        for j in range(kw):
            out[:, :, i, j] = xp[
                :, :, i * dh : i * dh + (oh - 1) * sh + 1 : sh, j * dw : j * dw + (ow - 1) * sw + 1 : sw
            ]
    return out


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, attrs: dict[str, Any]) -> np.ndarray:
    kernel = w.shape[2:]
    strides = attrs.get("strides", [1, 1])
    dilations = attrs.get("dilations", [1, 1])
    group = attrs.get("group", 1)
    pads = _resolve_pads(attrs, x.shape[2:], kernel, strides, dilations)
    out_hw = [
        _pool_out(x.shape[2 + a], kernel[a], strides[a], dilations[a], pads[a], pads[2 + a], False)
        for a in (0, 1)
    ]
    cols = _windows(x, kernel, strides, dilations, pads, out_hw, 0.0)  # [N, Cin, kh, kw, OH, OW]
    c_out, cpg = w.shape[0], w.shape[1]
    opg = c_out // group
    y = np.empty((x.shape[0], c_out, *out_hw))
    for g in range(group):
        y[:, g * opg : (g + 1) * opg] = np.einsum(
            "ncijhw,ocij->nohw", cols[:, g * cpg : (g + 1) * cpg], w[g * opg : (g + 1) * opg]
        )
    if b is not None:
        y += b[None, :, None, None]
    return y


def _pool(x: np.ndarray, attrs: dict[str, Any], kind: str) -> np.ndarray:
    kernel = attrs["kernel_shape"]
    strides = attrs.get("strides", [1, 1])
    dilations = attrs.get("dilations", [1, 1])
    ceil = bool(attrs.get("ceil_mode", 0))
    pads = _resolve_pads(attrs, x.shape[2:], kernel, strides, dilations)
    out_hw = [
        _pool_out(x.shape[2 + a], kernel[a], strides[a], dilations[a], pads[a], pads[2 + a], ceil)
        for a in (0, 1)
    ]
    if kind == "max":
        return _windows(x, kernel, strides, dilations, pads, out_hw, -np.inf).max(axis=(2, 3))
    total = _windows(x, kernel, strides, dilations, pads, out_hw, 0.0).sum(axis=(2, 3))
    # Divisor: taps inside the input, or (count_include_pad) inside the explicitly padded input.
    ones = np.ones((1, 1, *x.shape[2:]))
    inside = _windows(ones, kernel, strides, dilations, pads, out_hw, 0.0).sum(axis=(2, 3))
    if attrs.get("count_include_pad", 0):
        padded = np.ones((1, 1, x.shape[2] + pads[0] + pads[2], x.shape[3] + pads[1] + pads[3]))
        inside = _windows(padded, kernel, strides, dilations, [0, 0, 0, 0], out_hw, 0.0).sum(axis=(2, 3))
    return total / inside


def _softmax(x: np.ndarray, axis: int, log: bool) -> np.ndarray:
    shifted = x - x.max(axis=axis, keepdims=True)
    lse = np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    return shifted - lse if log else np.exp(shifted - lse)


def _eval_node(node: onnx.NodeProto, args: list[np.ndarray | None], opset: int) -> list[np.ndarray]:
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    op = node.op_type
    x = args[0] if args else None
    if op == "Constant":
        return [numpy_helper.to_array(attrs["value"])]
    assert x is not None
    if op in ("Identity", "Dropout"):
        return [x]
    if op == "Relu":
        return [np.maximum(x, 0.0)]
    if op == "Tanh":
        return [np.tanh(x)]
    if op == "Clip":
        lo = args[1] if len(args) > 1 and args[1] is not None else -np.inf
        hi = args[2] if len(args) > 2 and args[2] is not None else np.inf
        return [np.clip(x, lo, hi)]
    if op == "Conv":
        return [_conv(x, args[1], args[2] if len(args) > 2 else None, attrs)]  # type: ignore[arg-type]
    if op == "Gemm":
        a = x.T if attrs.get("transA", 0) else x
        bmat = args[1].T if attrs.get("transB", 0) else args[1]  # type: ignore[union-attr]
        y = attrs.get("alpha", 1.0) * (a @ bmat)
        if len(args) > 2 and args[2] is not None:
            y = y + attrs.get("beta", 1.0) * args[2]
        return [y]
    if op == "MatMul":
        return [x @ args[1]]
    if op in ("Add", "Sum"):
        total = x
        for other in args[1:]:
            total = total + other
        return [total]
    if op == "Sub":
        return [x - args[1]]
    if op == "Mul":
        return [x * args[1]]
    if op == "Div":
        return [x / args[1]]
    if op == "MaxPool":
        return [_pool(x, attrs, "max")]
    if op == "AveragePool":
        return [_pool(x, attrs, "avg")]
    if op == "GlobalAveragePool":
        return [x.mean(axis=(2, 3), keepdims=True)]
    if op == "Flatten":
        axis = attrs.get("axis", 1) % max(x.ndim, 1)
        return [x.reshape(int(np.prod(x.shape[:axis])), -1)]
    if op == "Reshape":
        shape = [int(s) for s in args[1]]  # type: ignore[union-attr]
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
        return [x.reshape(shape)]
    if op == "Concat":
        return [np.concatenate(args, axis=attrs["axis"])]  # type: ignore[arg-type]
    if op == "BatchNormalization":
        gamma, beta, mean, var = args[1:5]
        shape = (1, -1) + (1,) * (x.ndim - 2)
        eps = attrs.get("epsilon", 1e-5)
        return [
            (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * gamma.reshape(shape)  # type: ignore[union-attr]
            + beta.reshape(shape)  # type: ignore[union-attr]
        ]
    if op in ("Softmax", "LogSoftmax"):
        axis = attrs.get("axis", -1 if opset >= 13 else 1)
        if opset < 13:
            axis %= x.ndim
            flat = x.reshape(int(np.prod(x.shape[:axis])), -1)
            return [_softmax(flat, 1, op == "LogSoftmax").reshape(x.shape)]
        return [_softmax(x, axis, op == "LogSoftmax")]
    raise NotImplementedError(op)


def run_numpy(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """Evaluate a test model in float64 with NumPy."""
    opset = next(i.version for i in model.opset_import if i.domain in ("", "ai.onnx"))
    values: dict[str, np.ndarray | None] = {"": None}
    values[model.graph.input[0].name] = np.asarray(x, dtype=np.float64)
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        values[init.name] = arr if arr.dtype.kind in "iub" else arr.astype(np.float64)
    pending = list(model.graph.node)
    while pending:  # the nodes may be out of order: run each one once its inputs exist
        ready = [node for node in pending if all(name in values for name in node.input)]
        assert ready, "cycle or missing value"
        node = ready[0]
        pending.remove(node)
        outs = _eval_node(node, [values[name] for name in node.input], opset)
        for name, value in zip(node.output, outs, strict=False):
            values[name] = value if np.asarray(value).dtype.kind in "iub" else np.asarray(value, np.float64)
    result = values[model.graph.output[0].name]
    assert result is not None
    return result


def raises_on_load(model: onnx.ModelProto | bytes, error: type[Exception], *patterns: str) -> str:
    """Asserts that dtd.load(model) raises ``error`` whose message matches every regex in ``patterns``."""
    import dtd

    with pytest.raises(error) as info:
        dtd.load(model)
    message = str(info.value)
    for pattern in patterns:
        assert re.search(pattern, message), f"{pattern!r} not in {message!r}"
    return message
