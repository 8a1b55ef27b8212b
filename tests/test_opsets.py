"""The same networks written at every default-domain opset dtd accepts (6 to onnx's newest).

Each network is rendered with the op forms valid at its opset (Gemm's legacy ``broadcast`` before 7 and its
required C before 11, legacy broadcasting of Add/Mul before 7, Constant's ``value_*`` attributes from 12,
Unsqueeze's axes as an input from 13, Softmax's axis default before 13), at the lowest IR version that
opset allows (initializers listed as graph inputs below IR 4), and checked with ``onnx.checker``. dtd's
forward must match onnxruntime (or, at opsets onnxruntime does not run, the float64 NumPy interpreter of
tests/builders.py), and the explanation must not depend on the opset: the weights are the same at every
opset, so the relevance equals the one at opset 13.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import dtd
from builders import MAX_OPSET, MIN_OPSET, random_input, run_numpy, run_ort, to_bytes
from dtd import _core

OPSETS = list(range(MIN_OPSET, MAX_OPSET + 1))
#: Opsets at which onnxruntime must run the models (it implements every op form used here there).
ORT_OPSETS = range(7, 22)
REFERENCE_OPSET = 13
BATCH = 3


class Net:
    """A graph under construction at one opset: nodes, initializers and the value names."""

    def __init__(self, opset: int, seed: int) -> None:
        self.opset = opset
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def weight(self, *shape: int, scale: float = 0.5) -> np.ndarray:
        return (self.rng.standard_normal(shape) * scale).astype(np.float32)

    def init(self, value: np.ndarray) -> str:
        name = self.name("w")
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], **attrs: object) -> str:
        out = self.name(op.lower() + "_")
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def legacy(self) -> dict[str, int]:
        """Attributes of a binary op with a broadcast constant operand (legacy broadcasting before 7)."""
        return {"broadcast": 1} if self.opset < 7 else {}

    def gemm(self, x: str, n_in: int, n_out: int, bias: bool = True) -> str:
        """Gemm with B stored [out, in] (transB=1); C is required before opset 11."""
        inputs = [x, self.init(self.weight(n_out, n_in, scale=1 / np.sqrt(n_in)))]
        if bias or self.opset < 11:
            b = self.weight(n_out) if bias else np.zeros(n_out, np.float32)
            inputs.append(self.init(b))
        return self.node("Gemm", inputs, transB=1, **self.legacy())

    def constant(self, value: np.ndarray) -> str:
        """A Constant node: the ``value_float(s)`` forms from opset 12 on, the tensor form before."""
        if self.opset >= 12 and value.ndim == 0:
            return self.node("Constant", [], value_float=float(value))
        if self.opset >= 12 and value.ndim == 1:
            return self.node("Constant", [], value_floats=[float(v) for v in value])
        return self.node("Constant", [], value=numpy_helper.from_array(value, self.name("t")))

    def unsqueeze(self, x: str, axes: list[int]) -> str:
        if self.opset >= 13:
            return self.node("Unsqueeze", [x, self.init(np.asarray(axes, np.int64))])
        return self.node("Unsqueeze", [x], axes=axes)

    def softmax(self, op: str, x: str) -> str:
        return self.node(op, [x], axis=-1) if self.opset >= 13 else self.node(op, [x])

    def build(self, x_shape: list[int], output: str, n_out: int, check: bool = True) -> onnx.ModelProto:
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *x_shape])
        y = helper.make_tensor_value_info(output, TensorProto.FLOAT, ["N", n_out])
        graph = helper.make_graph(self.nodes, f"opset{self.opset}", [x], [y], initializer=self.inits)
        opset = helper.make_opsetid("", self.opset)
        model = helper.make_model(graph, opset_imports=[opset])
        model.ir_version = helper.find_min_ir_version_for([opset])
        if model.ir_version < 4:  # IR 3: every initializer is also a graph input
            graph = model.graph
            for init in graph.initializer:
                graph.input.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
        if check:
            onnx.checker.check_model(model, full_check=True)
        return model


def conv_net(opset: int, reshape: str = "flatten") -> tuple[onnx.ModelProto, tuple[int, ...]]:
    """Conv -> Relu -> MaxPool -> Flatten (or the computed Reshape of ``x.view(x.size(0), -1)``) -> Gemm ->
    Relu -> Gemm -> Softmax."""
    net = Net(opset, seed=5)
    conv_w = net.init(net.weight(4, 2, 3, 3))
    conv_b = net.init(net.weight(4))
    h = net.node("Conv", ["x", conv_w, conv_b], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    h = net.node("Relu", [h])
    h = net.node("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
    if reshape == "flatten":
        h = net.node("Flatten", [h], axis=1)
    else:
        shape = net.node("Shape", [h])
        batch = net.node("Gather", [shape, net.init(np.asarray(0, np.int64))], axis=0)
        target = net.node("Concat", [net.unsqueeze(batch, [0]), net.init(np.asarray([-1], np.int64))], axis=0)
        h = net.node("Reshape", [h, target])
    h = net.node("Relu", [net.gemm(h, 4 * 4 * 4, 10)])
    return net.build([2, 8, 8], net.softmax("Softmax", net.gemm(h, 10, 3)), 3), (2, 8, 8)


def mlp(opset: int) -> tuple[onnx.ModelProto, tuple[int, ...]]:
    """Gemm -> Relu -> MatMul + Add (Constant weights) -> Mul by a Constant scalar -> Relu -> Identity ->
    a residual Sum with a Gemm branch -> Gemm without bias (C required before 11) -> LogSoftmax."""
    net = Net(opset, seed=7)
    h = net.node("Relu", [net.gemm("x", 6, 8)])
    h = net.node("MatMul", [h, net.constant(net.weight(8, 8, scale=0.35))])
    h = net.node("Add", [h, net.constant(net.weight(8))], **net.legacy())
    h = net.node("Mul", [h, net.constant(np.asarray(1.5, np.float32))], **net.legacy())
    h = net.node("Identity", [net.node("Relu", [h])])
    h = net.node("Sum", [h, net.node("Relu", [net.gemm(h, 8, 8)])])
    return net.build([6], net.softmax("LogSoftmax", net.gemm(h, 8, 4, bias=False)), 4), (6,)


NETS: dict[str, Callable[[int], tuple[onnx.ModelProto, tuple[int, ...]]]] = {
    "conv": conv_net,
    "conv_computed_reshape": functools.partial(conv_net, reshape="computed"),
    "mlp": mlp,
}


def _numpy_ready(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with Constant's ``value_float(s)`` as tensors (the form tests/builders.py interprets)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for node in out.graph.node:
        if node.op_type != "Constant" or node.attribute[0].name == "value":
            continue
        value = np.asarray(helper.get_attribute_value(node.attribute[0]), np.float32)
        del node.attribute[:]
        node.attribute.append(helper.make_attribute("value", numpy_helper.from_array(value)))
    return out


def _ort_or_none(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray | None:
    """onnxruntime's output, or None when it cannot run the model (an opset or IR version it lacks)."""
    try:
        return run_ort(model, x)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/NotImplemented types
        if any(word in str(exc) for word in ("opset", "Opset", "not implemented", "NOT_IMPLEMENTED", "IR")):
            return None
        raise


@functools.cache
def _reference_relevance(name: str) -> np.ndarray:
    model, shape = NETS[name](REFERENCE_OPSET)
    x = random_input((BATCH, *shape), seed=11).astype(np.float64)
    return np.asarray(dtd.explain(dtd.load(to_bytes(model)), x))


@pytest.mark.parametrize("opset", OPSETS, ids=lambda o: f"opset{o}")
@pytest.mark.parametrize("name", sorted(NETS))
def test_network_at_every_opset(name: str, opset: int) -> None:
    model, shape = NETS[name](opset)
    net = dtd.load(to_bytes(model))
    x = random_input((BATCH, *shape), seed=11)
    got = net.forward(x)
    expected = _ort_or_none(model, x)
    if opset in ORT_OPSETS:
        assert expected is not None, f"onnxruntime should run opset {opset}"
    if expected is not None:
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    x64 = x.astype(np.float64)
    got64 = net.forward(x64)
    if name != "conv_computed_reshape":  # the interpreter has no Shape/Gather/Unsqueeze
        reference = run_numpy(_numpy_ready(model), x64)
        assert got64.shape == reference.shape
        np.testing.assert_allclose(got64, reference, rtol=1e-10, atol=1e-12)
    else:
        flatten, _ = conv_net(opset)
        np.testing.assert_allclose(got64, dtd.load(to_bytes(flatten)).forward(x64), rtol=1e-12, atol=1e-14)
    relevance = np.asarray(dtd.explain(net, x64))
    assert relevance.shape == x64.shape
    np.testing.assert_allclose(relevance, _reference_relevance(name), rtol=1e-10, atol=1e-14)


def test_opset_range() -> None:
    """dtd imports opsets 6 to the newest of the onnx release its tables come from; 5 and MAX + 1 are refused."""
    max_opset, _, onnx_version = _core._import_schema_versions()
    if onnx_version != onnx.__version__:
        pytest.skip(
            f"the importer's tables come from onnx {onnx_version}, onnx {onnx.__version__} is installed"
        )
    assert onnx.defs.onnx_opset_version() == MAX_OPSET == max_opset
    for opset in (MIN_OPSET - 1, MIN_OPSET, MAX_OPSET, MAX_OPSET + 1):
        net = Net(min(opset, MAX_OPSET), seed=1)
        model = net.build([4], net.gemm("x", 4, 3), 3, check=False)
        model.opset_import[0].version = opset
        if MIN_OPSET <= opset <= MAX_OPSET:
            assert dtd.load(model).opset == opset
            continue
        with pytest.raises(
            dtd.UnsupportedModelError, match=rf"opset {opset} .*\(supported: 6\.\.{MAX_OPSET}\)"
        ):
            dtd.load(model)


def test_gemm6_broadcast_zero_needs_full_c() -> None:
    from dtd import ModelLoadError

    net = Net(6, seed=1)
    h = net.node("Gemm", ["x", net.init(net.weight(3, 4)), net.init(net.weight(3))], transB=1)
    model = net.build([4], h, 3, check=False)  # invalid: the checker's shape inference rejects it too
    with pytest.raises(ModelLoadError, match=r"Gemm-6 without broadcast=1 needs C"):
        dtd.load(model)


# ---------------------------------------------------------------------------------------------------------
# shape arithmetic in the op forms of each opset (python/dtd/onnx/fold.py)
# ---------------------------------------------------------------------------------------------------------
INT64_MAX = np.iinfo(np.int64).max


def computed_flatten(opset: int) -> onnx.ModelProto:
    """``x.view(x.size(0), prod(x.shape[1:]))`` spelled with Shape, Gather, Slice, ReduceProd, Cast,
    Unsqueeze and Concat, then a Gemm: Slice's bounds are attributes before opset 10, ReduceProd's axes an
    input from 18, Shape's start/end exist from 15 (used there instead of the Slice)."""
    net = Net(opset, seed=3)
    shape = net.node("Shape", ["x"])
    batch = net.unsqueeze(net.node("Gather", [shape, net.init(np.asarray(0, np.int64))], axis=0), [0])
    if opset >= 15:
        tail = net.node("Shape", ["x"], start=1)
    elif opset >= 10:
        starts, ends = net.init(np.asarray([1], np.int64)), net.init(np.asarray([INT64_MAX], np.int64))
        tail = net.node("Slice", [shape, starts, ends])
    else:
        tail = net.node("Slice", [shape], starts=[1], ends=[INT64_MAX], axes=[0])
    if opset >= 18:
        size = net.node("ReduceProd", [tail, net.init(np.asarray([0], np.int64))], keepdims=1)
    else:
        size = net.node("ReduceProd", [tail], axes=[0], keepdims=1)
    size = net.node("Cast", [net.node("Cast", [size], to=TensorProto.FLOAT)], to=TensorProto.INT64)
    h = net.node("Reshape", ["x", net.node("Concat", [batch, size], axis=0)])
    return net.build([2, 3, 4], net.gemm(h, 24, 5), 5)


def flat_gemm(opset: int) -> onnx.ModelProto:
    """The same Gemm after a plain Flatten (same weights)."""
    net = Net(opset, seed=3)
    return net.build([2, 3, 4], net.gemm(net.node("Flatten", ["x"], axis=1), 24, 5), 5)


@pytest.mark.parametrize("opset", OPSETS, ids=lambda o: f"opset{o}")
def test_shape_arithmetic_at_every_opset(opset: int) -> None:
    model = computed_flatten(opset)
    net = dtd.load(to_bytes(model))
    assert [layer.kind for layer in net.layers] == ["reshape", "dense"]
    x = random_input((BATCH, 2, 3, 4), seed=opset)
    expected = _ort_or_none(model, x)
    if opset in ORT_OPSETS:
        assert expected is not None
    if expected is not None:
        np.testing.assert_allclose(net.forward(x), expected, rtol=1e-4, atol=1e-5)
    x64 = x.astype(np.float64)
    reference = dtd.load(to_bytes(flat_gemm(opset))).forward(x64)
    np.testing.assert_allclose(net.forward(x64), reference, rtol=1e-12, atol=1e-14)


# Import-time evaluation, observed through dtd.load: a folded value becomes either a bias added to a Gemm's
# output (any float values: ``_check_bias``) or the per-sample target of a Reshape of the input (positive
# integers: ``_check_target``), so that a wrong value changes the forward pass or the output shape.
def _i64(*values: int) -> np.ndarray:
    return np.asarray(values, np.int64)


def _f32(values: object) -> np.ndarray:
    return np.asarray(values, np.float32)


def _bias_model(opset: int, value: Callable[[Net], str], size: int) -> tuple[onnx.ModelProto, np.ndarray]:
    """x [N, 4] -> Gemm -> Add(h, value flattened to [size]): the model and the Gemm's weights and bias [W | b]."""
    net = Net(opset, seed=21)
    bias = net.node("Reshape", [value(net), net.init(_i64(size))])
    w, b = net.weight(size, 4), net.weight(size)
    h = net.node("Gemm", ["x", net.init(w), net.init(b)], transB=1, **net.legacy())
    model = net.build([4], net.node("Add", [h, bias], **net.legacy()), size, check=False)
    return model, np.concatenate([w, b[:, None]], axis=1)


def _check_bias(opset: int, value: Callable[[Net], str], expected: object) -> None:
    """``value`` folds to ``expected``: the model's forward is x W^T + b + expected."""
    flat = np.asarray(expected, np.float64).reshape(-1)
    model, wb = _bias_model(opset, value, flat.size)
    x = random_input((BATCH, 4), seed=opset).astype(np.float64)
    got = dtd.load(to_bytes(model)).forward(x)
    wb = wb.astype(np.float64)
    np.testing.assert_allclose(got, x @ wb[:, :4].T + wb[:, 4] + flat, rtol=1e-12, atol=1e-12)


def _target_model(opset: int, value: Callable[[Net], str], size: int) -> onnx.ModelProto:
    """x [N, size] -> Reshape(x, Concat([0], value))."""
    net = Net(opset, seed=22)
    target = net.node("Concat", [net.init(_i64(0)), value(net)], axis=0)
    return net.build([size], net.node("Reshape", ["x", target]), size, check=False)


def _check_target(opset: int, value: Callable[[Net], str], expected: tuple[int, ...]) -> None:
    """``value`` folds to the int64 vector ``expected``: the Reshape gives per-sample shape ``expected``."""
    size = int(np.prod(expected))
    model = _target_model(opset, value, size)
    model.graph.output[0].type.tensor_type.ClearField("shape")  # the rank is that of ``expected``
    net = dtd.load(to_bytes(model))
    assert net.output_shape == expected
    x = random_input((BATCH, size), seed=opset)
    np.testing.assert_array_equal(net.forward(x), x.reshape(BATCH, *expected))


def _op(op: str, *inputs: np.ndarray | str, **attrs: object) -> Callable[[Net], str]:
    """A node ``op`` of constant inputs (arrays become initializers; "" is a missing optional input)."""

    def build(net: Net) -> str:
        names = [x if isinstance(x, str) else net.init(np.asarray(x)) for x in inputs]
        return net.node(op, names, **attrs)

    return build


def test_fold_legacy_broadcasting_before_opset_7() -> None:
    a, b = np.arange(6, dtype=np.float32).reshape(2, 3), _f32([10, 20])
    _check_bias(6, _op("Add", a, b, broadcast=1, axis=0), a + b[:, None])
    row = _f32([1, 2, 3])
    _check_bias(6, _op("Mul", a, row, broadcast=1), a * row)
    with pytest.raises(dtd.ModelLoadError, match="broadcast=1"):
        dtd.load(_bias_model(6, _op("Add", a, row), 6)[0])
    _check_bias(7, _op("Add", a, row), a + row)


def test_fold_shape_start_end_from_opset_15() -> None:
    x = np.zeros((2, 3, 4, 5), np.float32)
    _check_target(15, _op("Shape", x, start=1, end=-1), (3, 4))
    _check_target(15, _op("Shape", x, start=-10, end=10), (2, 3, 4, 5))
    _check_target(21, _op("Shape", x, start=3), (5,))


def test_fold_slice_attributes_before_opset_10() -> None:
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    _check_bias(9, _op("Slice", data, starts=[1, 0], ends=[INT64_MAX, 3], axes=[0, 1]), data[1:, :3])
    _check_bias(9, _op("Slice", data, starts=[-2], ends=[-1]), data[-2:-1])
    with pytest.raises(dtd.ModelLoadError, match="starts"):
        dtd.load(_bias_model(9, _op("Slice", data), 12)[0])
    steps = _i64(-1)
    _check_bias(10, _op("Slice", data, _i64(-1), _i64(-INT64_MAX), _i64(1), steps), data[:, ::-1])


def test_fold_reduce_axes_attribute_or_input() -> None:
    data = np.arange(1, 7, dtype=np.float32).reshape(2, 3)
    _check_bias(12, _op("ReduceSum", data, axes=[1], keepdims=0), [6, 15])
    _check_bias(13, _op("ReduceSum", data, _i64(1), keepdims=0), [6, 15])
    _check_bias(17, _op("ReduceMax", data, axes=[0], keepdims=0), [4, 5, 6])
    _check_bias(18, _op("ReduceMax", data, _i64(0), keepdims=0), [4, 5, 6])
    _check_bias(18, _op("ReduceProd", data, "", keepdims=0), [720])
    _check_bias(18, _op("ReduceMin", data, np.asarray([], np.int64), noop_with_empty_axes=1), data)


#: Ops evaluated at import that appeared after dtd's oldest opset: the opset that introduced each, and a
#: use of it with its folded value (checked by ``_check_bias``).
FOLD_SINCE: dict[str, tuple[int, Callable[[Net], str], list[float]]] = {
    "Range": (11, _op("Range", _f32(1), _f32(7), _f32(2)), [1, 3, 5]),
    "ConstantOfShape": (
        9,
        _op("ConstantOfShape", _i64(2), value=numpy_helper.from_array(_f32([-1]))),
        [-1, -1],
    ),
    "Expand": (8, _op("Expand", _f32([[1], [2]]), _i64(1, 3)), [1, 1, 1, 2, 2, 2]),
    "Where": (9, _op("Where", np.asarray([True, False]), _f32([1, 2]), _f32([3, 4])), [1, 4]),
    "Mod": (10, _op("Mod", _f32([7, -7]), _f32([4, 4]), fmod=1), [3, -3]),
}


@pytest.mark.parametrize("op", sorted(FOLD_SINCE))
def test_fold_ops_exist_from_their_opset(op: str) -> None:
    since, value, expected = FOLD_SINCE[op]
    with pytest.raises(dtd.UnsupportedModelError, match=rf"unsupported op {op} .*opset {since - 1}"):
        dtd.load(_bias_model(since - 1, value, len(expected))[0])
    _check_bias(since, value, expected)


def test_fold_range_constant_of_shape_expand_tile() -> None:
    _check_target(11, _op("Range", _i64(1), _i64(7), _i64(2)), (1, 3, 5))
    _check_target(9, _op("ConstantOfShape", _i64(2), value=numpy_helper.from_array(_i64(3))), (3, 3))
    _check_bias(8, _op("Expand", _f32([[1], [2]]), _i64(1, 3)), [[1, 1, 1], [2, 2, 2]])
    _check_bias(6, _op("Tile", _f32([[1, 2]]), _i64(2, 1)), [[1, 2], [1, 2]])
    with pytest.raises(dtd.ModelLoadError, match="repeats"):
        dtd.load(_bias_model(13, _op("Tile", _f32([[1, 2]]), _i64(2)), 4)[0])


def test_fold_cast_targets() -> None:
    # [1.7, -1.7] -> int64 [1, -1] (truncation): the Reshape target [0, 1, -1] (a float target is refused)
    _check_target(6, _op("Cast", _f32([1.7, -1.7]), to=TensorProto.INT64), (1, 5))
    with pytest.raises(dtd.UnsupportedModelError, match="STRING"):
        dtd.load(_bias_model(13, _op("Cast", _f32([1.0]), to=TensorProto.STRING), 1)[0])
    with pytest.raises(dtd.ModelLoadError, match="'to' is required"):
        dtd.load(_bias_model(13, _op("Cast", _f32([1.0])), 1)[0])
    _check_target(11, _op("Concat", _i64(1), _i64(2, 3), axis=-1), (1, 2, 3))
    with pytest.raises(dtd.ModelLoadError, match="'axis' is required"):
        dtd.load(_target_model(11, _op("Concat", _i64(1), _i64(2)), 2))


def test_op_before_its_opset_is_unsupported() -> None:
    net = Net(10, seed=0)
    three = net.node("Range", [net.init(np.asarray(v, np.int64)) for v in (3, 4, 1)])
    target = net.node("Concat", [net.init(np.asarray([0], np.int64)), three], axis=0)
    model = net.build([3], net.node("Reshape", ["x", target]), 3, check=False)
    with pytest.raises(dtd.UnsupportedModelError, match=r"unsupported op Range .*opset 10"):
        dtd.load(model)
    model.opset_import[0].version = 11
    x = random_input((2, 3), seed=0)
    np.testing.assert_array_equal(dtd.load(model).forward(x), x)


# ---------------------------------------------------------------------------------------------------------
# domains, Gemm's C, Constant's attributes
# ---------------------------------------------------------------------------------------------------------
def _relu_model(opset_imports: list[onnx.OperatorSetIdProto], domain: str = "") -> onnx.ModelProto:
    w = numpy_helper.from_array(np.eye(3, dtype=np.float32), "w")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], domain=domain),
        helper.make_node("Relu", ["h"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        initializer=[w],
    )
    model = helper.make_model(graph, opset_imports=opset_imports)
    model.ir_version = 8
    return model


def test_domain_spelled_ai_onnx_and_unused_domains() -> None:
    model = _relu_model([helper.make_opsetid("ai.onnx", 13), helper.make_opsetid("ai.onnx.ml", 3)], "ai.onnx")
    x = random_input((2, 3), seed=0)
    np.testing.assert_allclose(dtd.load(model).forward(x), np.maximum(x, 0), rtol=1e-6)


def test_node_of_another_domain_is_unsupported() -> None:
    model = _relu_model(
        [helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)], "com.microsoft"
    )
    with pytest.raises(dtd.UnsupportedModelError, match=r"MatMul '.*' uses the domain 'com.microsoft'"):
        dtd.load(model)
    model = _relu_model([helper.make_opsetid("", 13)], "org.example")
    with pytest.raises(dtd.UnsupportedModelError, match=r"domain 'org.example' \(not imported\)"):
        dtd.load(model)


@pytest.mark.parametrize("opset", [6, 7, 10])
def test_gemm_without_c_before_opset_11(opset: int) -> None:
    net = Net(opset, seed=1)
    model = net.build([4], net.node("Gemm", ["x", net.init(net.weight(3, 4))], transB=1), 3, check=False)
    with pytest.raises(
        dtd.ModelLoadError, match=r"2 inputs, expected 3 .2 inputs are valid from opset 11 on"
    ) as info:
        dtd.load(model)
    assert not isinstance(info.value, dtd.UnsupportedModelError)


def test_gemm_bias_per_sample_is_unsupported() -> None:
    net = Net(13, seed=1)
    h = net.node("Gemm", ["x", net.init(net.weight(3, 4)), net.init(net.weight(2, 3))], transB=1)
    model = net.build([4], h, 3, check=False)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 2
    with pytest.raises(dtd.UnsupportedModelError, match="one row per sample"):
        dtd.load(model)


def test_constant_value_float_before_opset_12() -> None:
    net = Net(11, seed=1)
    scale = net.node("Constant", [], value_float=2.0)
    model = net.build([4], net.node("Mul", [net.gemm("x", 4, 3), scale]), 3, check=False)
    with pytest.raises(
        dtd.ModelLoadError, match=r"unknown attribute 'value_float'.*defined from opset 12 on"
    ):
        dtd.load(model)


def test_fold_variadic_ops() -> None:
    a, b, c = _f32([1, 5]), _f32([4, 2]), _f32([3, 3])
    _check_bias(6, _op("Sum", a, b, c), [8, 10])
    _check_bias(8, _op("Max", a, b, "", c), [4, 5])
    _check_bias(13, _op("Min", a), a)
    # the result keeps the operands' type: float32 1.5 + 2.0 is 3.5 (a bias), int64 1 + 2 is 3 (a Reshape target)
    _check_bias(13, _op("Sum", _f32([1.5]), _f32([2.0])), [3.5])
    _check_target(13, _op("Sum", _i64(1), _i64(2)), (3,))
