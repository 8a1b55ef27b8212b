"""The C++ ONNX importer (cpp/src/import, ``dtd._core._load_onnx``) against the Python one (``dtd.onnx``).

For every committed test model (tests/data, the shipped MNIST model, the LRP Toolbox's LeNet-5 in the shared data),
the relevance test nets of ``tests/relnets.py`` at several opsets, and models built here for the core op set and
for its errors: the C++ importer gives the same ModelSpec (layers, attributes, weights bit for bit) or the same
exception class and message, unless it says that it does not cover the model yet. dtd.load still uses the Python
importer; these tests pin the port while it grows.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import fold_models
import relnets
from builders import GraphBuilder
from conftest import DATA_DIR
from dtd import _core
from dtd.onnx import MAX_OPSET
from import_compare import compare

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = sorted(
    [*(ROOT / "tests" / "data").rglob("*.onnx"), ROOT / "python" / "dtd" / "data" / "mnist_cnn.onnx"]
)
SHARED = sorted(DATA_DIR.rglob("*.onnx")) if DATA_DIR.is_dir() else []
#: Committed models the C++ importer converts today (the rest need ops or folding not ported yet). A floor, so
#: that a regression in coverage fails; raise it as the port grows.
MIN_COMMITTED_COVERED = 142


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return path.name


def test_tables_are_generated_from_the_python_ones() -> None:
    """cpp/src/import/schema_table.inc is what tools/gen_import_schema.py makes of schema.py, the converter registry
    and fold.py (and the onnx package's newest opset and IR version)."""
    spec = importlib.util.spec_from_file_location(
        "gen_import_schema", ROOT / "tools" / "gen_import_schema.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = (ROOT / "cpp" / "src" / "import" / "schema_table.inc").read_text()
    if _core._import_schema_versions() != (MAX_OPSET, onnx.IR_VERSION, onnx.__version__):
        pytest.skip(f"the table was generated with another onnx: {_core._import_schema_versions()}")
    assert text == module.render(), "run python tools/gen_import_schema.py"


@pytest.mark.parametrize("path", COMMITTED, ids=_rel)
def test_committed_models(path: Path) -> None:
    compare(path)


@pytest.mark.parametrize("path", SHARED, ids=_rel)
def test_shared_models(path: Path) -> None:
    compare(path)


def test_committed_coverage() -> None:
    results = {_rel(p): compare(p) for p in COMMITTED}
    covered = [name for name, result in results.items() if result != "not ported"]
    assert len(covered) >= MIN_COMMITTED_COVERED, f"{len(covered)} of {len(results)} covered: {covered}"


@pytest.mark.parametrize("opset", [11, 13, 17])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("bias", ["random", "none"])
def test_relnets(opset: int, seed: int, bias: str) -> None:
    results = {
        name: compare(relnets.to_onnx(net, opset)) for name, net in relnets.all_nets(seed, bias).items()
    }
    assert any(result != "not ported" for result in results.values()), results


# -- the core op set, one feature at a time -------------------------------------------------------------------------
def _cnn(opset: int = 13, **conv: object) -> onnx.ModelProto:
    b = GraphBuilder((3, 9, 8), opset=opset, seed=3)
    h = b.conv("x", 4, (3, 3), **conv)
    h = b.batchnorm(h, 4, eps=1e-3)
    h = b.relu(h)
    h = b.node("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
    h = b.node("Flatten", [h])
    h = b.gemm(h, 5)
    return b.build(h)


CORE_MODELS = {
    "cnn": lambda: _cnn(),
    "cnn_pads": lambda: _cnn(pads=[1, 0, 1, 2], strides=[2, 1]),
    "cnn_same": lambda: _cnn(auto_pad="SAME_UPPER", dilations=[2, 1]),
    "cnn_op9": lambda: _cnn(opset=9),
    "cnn_op17": lambda: _cnn(opset=17),
}


def _gemm_variants(**attrs: object) -> onnx.ModelProto:
    b = GraphBuilder((6,), seed=4)
    h = b.gemm("x", 4, trans_b=int(attrs.pop("transB", 1)), **attrs)  # type: ignore[arg-type]
    h = b.batchnorm(h, 4)
    return b.build(b.relu(h))


def _matmul_bias(bias_shape: tuple[int, ...]) -> onnx.ModelProto:
    b = GraphBuilder((2, 6), seed=5)
    h = b.node("MatMul", ["x", b.weight((6, 3))])
    h = b.node("Add", [h, b.weight(bias_shape)])
    return b.build(h)


def _residual() -> onnx.ModelProto:
    b = GraphBuilder((4, 6, 6), seed=6)
    a = b.relu(b.conv("x", 4, (3, 3), pads=[1, 1, 1, 1], bias=False))
    c = b.batchnorm(b.conv(a, 4, (3, 3), pads=[1, 1, 1, 1], bias=False), 4)
    h = b.relu(b.node("Add", [c, "x"]))
    h = b.node(
        "AveragePool", [h], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1
    )
    h = b.node("GlobalAveragePool", [h])
    h = b.node("Dropout", [h])
    h = b.node("Identity", [h])
    h = b.node("Reshape", [h, b.const(np.array([0, -1], dtype=np.int64))])
    return b.build(b.gemm(h, 3))


def _flatten_axis2() -> onnx.ModelProto:
    b = GraphBuilder((3, 4, 5), seed=7)
    h = b.node("Flatten", [b.relu("x")], axis=2)
    return b.build(b.node("MatMul", [h, b.weight((20, 2))]))


def _constant_node() -> onnx.ModelProto:
    b = GraphBuilder((5,), seed=8)
    w = b.fresh("w")
    b.nodes.append(
        helper.make_node(
            "Constant", [], [w], value=onnx.numpy_helper.from_array(np.ones((3, 5), np.float32) * 0.5)
        )
    )
    return b.build(b.node("Gemm", ["x", w], transB=1, alpha=0.25))


def _reducemean(opset: int, keepdims: int) -> onnx.ModelProto:
    b = GraphBuilder((3, 5, 4), opset=opset, seed=9)
    h = b.relu(b.conv("x", 4, (3, 3)))
    if opset >= 18:
        h = b.node("ReduceMean", [h, b.const(np.array([2, 3], np.int64))], keepdims=keepdims)
    else:
        h = b.node("ReduceMean", [h], axes=[-1, 2], keepdims=keepdims)
    if keepdims:
        h = b.node("Flatten", [h])
    return b.build(b.gemm(h, 2))


CORE_MODELS.update(
    {
        "reducemean_keep": lambda: _reducemean(13, 1),
        "reducemean_squeeze": lambda: _reducemean(13, 0),
        "reducemean_op18": lambda: _reducemean(18, 0),
        "gemm_trans0": lambda: _gemm_variants(transB=0),
        "gemm_alpha_beta": lambda: _gemm_variants(alpha=0.3, beta=-1.7),
        "matmul_bias": lambda: _matmul_bias((3,)),
        "matmul_bias_row": lambda: _matmul_bias((1, 1, 3)),
        "residual": _residual,
        "flatten_axis2": _flatten_axis2,
        "constant_node": _constant_node,
    }
)


@pytest.mark.parametrize("name", sorted(CORE_MODELS))
def test_core_models(name: str) -> None:
    assert compare(CORE_MODELS[name]()) == "same"


# -- errors: the same class and message from both ------------------------------------------------------------------
def _one(
    op: str, shape: tuple[int, ...], consts: list[np.ndarray], opset: int = 13, **attrs: object
) -> onnx.ModelProto:
    b = GraphBuilder(shape, opset=opset)
    names = [b.const(c) for c in consts]
    return b.build(b.node(op, ["x", *names], **attrs))


def _two_inputs() -> onnx.ModelProto:
    model = _one("Relu", (3,), [])
    model.graph.input.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 3]))
    return model


def _int_input() -> onnx.ModelProto:
    b = GraphBuilder((3,))
    return b.build(b.relu("x"), input_dtype=TensorProto.INT64)


def _missing_initializer() -> onnx.ModelProto:
    model = _one("Conv", (1, 4, 4), [np.ones((1, 1, 3, 3), np.float32)])
    del model.graph.initializer[:]
    return model


def _cycle() -> onnx.ModelProto:
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["b"], ["a"], name="r1"),
            helper.make_node("Add", ["x", "a"], ["b"], name="r2"),
        ],
        "cycle",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, None)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _bn_training() -> onnx.ModelProto:
    b = GraphBuilder((2, 3, 3), opset=15)
    h = b.conv("x", 2, (1, 1))
    h = b.node(
        "BatchNormalization", [h, *(b.const(np.ones(2, np.float32)) for _ in range(4))], training_mode=1
    )
    return b.build(h)


def _view(factor: int, opset: int = 13) -> onnx.ModelProto:
    """x.view(factor * x.size(0), -1) as PyTorch exports it: Shape, Gather, Mul, Unsqueeze, Concat, Reshape."""
    b = GraphBuilder((2, 3, 3), opset=opset, seed=10)
    h = b.relu(b.conv("x", 2, (1, 1)))
    n = b.node("Gather", [b.node("Shape", [h]), b.const(np.array(0, np.int64))], axis=0)
    if factor != 1:
        n = b.node("Mul", [n, b.const(np.array(factor, np.int64))])
    n = b.node(
        "Unsqueeze",
        [n, b.const(np.array([0], np.int64))] if opset >= 13 else [n],
        **({} if opset >= 13 else {"axes": [0]}),
    )
    target = b.node("Concat", [n, b.const(np.array([-1], np.int64))], axis=0)
    return b.build(b.node("Reshape", [h, target]))


def _activations(opset: int) -> onnx.ModelProto:
    b = GraphBuilder((6,), opset=opset, seed=11)
    h = b.gemm("x", 6)
    if opset >= 11:
        h = b.node("Clip", [h, b.const(np.array(0, np.float32)), b.const(np.array(6, np.float32))])
        h = b.node("Clip", [h, b.const(np.array(0, np.float32))])  # a ReLU
    else:
        h = b.node("Clip", [h], min=-1.0, max=1.0)
    h = b.node("LeakyRelu", [h], alpha=0.3)
    for op in ("Elu", "Selu", "Sigmoid", "Tanh", "HardSigmoid", "Softplus"):
        h = b.node(op, [h])
    if opset >= 14:
        h = b.node("HardSwish", [h])
    return b.build(b.gemm(h, 2))


def _pools() -> onnx.ModelProto:
    b = GraphBuilder((3, 6, 5), seed=13)
    h = b.node("LRN", [b.relu(b.conv("x", 4, (3, 3)))], size=3, alpha=2e-4, beta=0.7)
    h = b.node("GlobalMaxPool", [h])
    return b.build(b.gemm(b.node("Flatten", [h]), 2))


def test_lrn_and_global_max_pool() -> None:
    assert compare(_pools()) == "same"


def _layout(opset: int) -> onnx.ModelProto:
    b = GraphBuilder((3, 4, 1), opset=opset, seed=12)
    h = b.relu("x")
    axes = {"axes": [3]} if opset < 13 else {}
    h = b.node("Squeeze", [h] if opset < 13 else [h, b.const(np.array([-1], np.int64))], **axes)
    h = b.node(
        "Unsqueeze",
        [h] if opset < 13 else [h, b.const(np.array([1], np.int64))],
        **({"axes": [1]} if opset < 13 else {}),
    )
    h = b.node("Transpose", [h], perm=[0, 2, 1, 3])  # moves a size-1 axis only: a reshape
    h = b.node("Transpose", [h], perm=[0, 1, 3, 2])  # a transpose layer
    h = b.node("Concat", [h, b.relu(h)], axis=-1)
    h = b.node("Flatten", [h])
    return b.build(b.gemm(h, 2))


def _affine(kind: str) -> onnx.ModelProto:
    """Constant affine maps (Mul/Div/Add/Sub by constants, a BatchNormalization after a ReLU): folded into the
    layer before or after them where exact, else an affine layer."""
    b = GraphBuilder((3, 5, 5), seed=14)

    def per_channel(v: float) -> str:
        return b.const(np.full((3, 1, 1), v, np.float32) * np.arange(1, 4, dtype=np.float32)[:, None, None])

    if kind == "normalize_padded":  # (x - mean) / std before a padded conv: an affine layer
        h = b.node("Div", [b.node("Sub", ["x", per_channel(0.25)]), per_channel(0.5)])
        h = b.conv(h, 4, (3, 3), pads=[1, 1, 1, 1])
    elif kind == "scale_into_conv":  # a pure scaling folds into the next conv's input channels
        h = b.conv(b.node("Mul", [b.relu("x"), per_channel(0.75)]), 4, (3, 3))
    elif kind == "bn_after_relu":
        h = b.relu(b.batchnorm(b.relu(b.conv("x", 3, (1, 1))), 3))
    elif kind == "constant_minus_x":
        h = b.relu(b.node("Sub", [per_channel(2.0), b.relu("x")]))
    elif kind == "mul_after_conv":  # folds into the conv's output units
        h = b.relu(b.node("Mul", [b.conv("x", 3, (3, 3)), per_channel(-1.5)]))
    else:  # "div_into_dense": Flatten, then a scaling that folds into the dense layer's input features
        h = b.node("Div", [b.node("Flatten", [b.relu("x")]), b.const(np.array(4.0, np.float32))])
    if kind != "div_into_dense":
        h = b.node("Flatten", [h])
    return b.build(b.gemm(h, 2))


@pytest.mark.parametrize(
    "kind",
    [
        "normalize_padded",
        "scale_into_conv",
        "bn_after_relu",
        "constant_minus_x",
        "mul_after_conv",
        "div_into_dense",
    ],
)
def test_affine_maps(kind: str) -> None:
    assert compare(_affine(kind)) == "same"


def _gate(kind: str) -> onnx.ModelProto:
    """Products of two data tensors where one is a gate function: x * sigmoid(x), squeeze-and-excitation, and the
    hard sigmoid written as relu6(x + 3) / 6."""
    b = GraphBuilder((4, 5, 5), seed=16)
    h = b.conv("x", 4, (3, 3))
    if kind == "silu":
        h = b.node("Mul", [h, b.node("Sigmoid", [h])])
    elif kind == "squeeze_excite":
        g = b.node("GlobalAveragePool", [h])
        g = b.node("Reshape", [b.node("Sigmoid", [g]), b.const(np.array([0, 4, 1, 1], np.int64))])
        h = b.node("Mul", [g, h])
    else:  # "hard": h * relu6(h + 3) / 6, the Add folding into the conv's bias
        c = b.conv("x", 4, (3, 3))
        c = b.node("Add", [c, b.const(np.array(3.0, np.float32))])
        c = b.node("Clip", [c, b.const(np.array(0, np.float32)), b.const(np.array(6, np.float32))])
        h = b.node("Mul", [h, b.node("Div", [c, b.const(np.array(6.0, np.float32))])])
    return b.build(b.gemm(b.node("Flatten", [h]), 2))


@pytest.mark.parametrize("kind", ["silu", "squeeze_excite", "hard"])
def test_gates(kind: str) -> None:
    assert compare(_gate(kind)) == "same"


@pytest.mark.parametrize("opset", [11, 13])
def test_layout_ops(opset: int) -> None:
    assert compare(_layout(opset)) == "same"


@pytest.mark.parametrize("opset", [9, 13, 14])
def test_activations(opset: int) -> None:
    assert compare(_activations(opset)) == "same"


@pytest.mark.parametrize("opset", [11, 13, 17])
def test_view_batch(opset: int) -> None:
    """The shape arithmetic in front of a Reshape, evaluated at import with the two sentinel batch sizes."""
    assert compare(_view(1, opset)) == "same"


def _two_signals() -> onnx.ModelProto:
    b = GraphBuilder((3,))
    return b.build(b.node("Mul", ["x", b.relu("x")]))


W = np.ones((2, 1, 3, 3), np.float32)
ERROR_MODELS = {
    "unsupported_op": lambda: _one("Sin", (3,), []),
    "unsupported_op_python_supports": lambda: _one("PRelu", (2, 3, 3), [np.ones((2, 1, 1), np.float32)]),
    "lrn_without_size": lambda: _one("LRN", (2, 3, 3), []),
    "lrn_rank2": lambda: _one("LRN", (3,), [], size=3),
    "hardswish_before_opset14": lambda: _one("HardSwish", (3,), []),
    "leakyrelu_infinite_alpha": lambda: _one("LeakyRelu", (3,), [], alpha=float("inf")),
    "clip_vector_bound": lambda: _one("Clip", (3,), [np.zeros(2, np.float32)]),
    "two_inputs": _two_inputs,
    "int_input": _int_input,
    "missing_initializer": _missing_initializer,
    "cycle": _cycle,
    "old_opset": lambda: _one("Relu", (3,), [], opset=5),
    "conv_weight_rank2": lambda: _one("Conv", (1, 4, 4), [np.ones((2, 1), np.float32)]),
    "conv_group": lambda: _one("Conv", (1, 4, 4), [W], group=3),
    "conv_kernel_shape": lambda: _one("Conv", (1, 4, 4), [W], kernel_shape=[2, 2]),
    "conv_channels": lambda: _one("Conv", (3, 4, 4), [W]),
    "conv_bias_shape": lambda: _one("Conv", (1, 4, 4), [W, np.ones(3, np.float32)]),
    "conv_strides_length": lambda: _one("Conv", (1, 4, 4), [W], strides=[1]),
    "conv_rank": lambda: _one("Conv", (1, 4), [W]),
    "conv_auto_pad_and_pads": lambda: _one("Conv", (1, 4, 4), [W], auto_pad="VALID", pads=[1, 1, 1, 1]),
    "conv_int_weight": lambda: _one("Conv", (1, 4, 4), [W.astype(np.int64)]),
    "conv_unknown_attribute": lambda: _one("Conv", (1, 4, 4), [W], stride=[1, 1]),
    "gemm_transA": lambda: _one("Gemm", (3,), [np.ones((3, 2), np.float32)], transA=1),
    "gemm_features": lambda: _one("Gemm", (4,), [np.ones((3, 2), np.float32)]),
    "gemm_bias_rows": lambda: _one("Gemm", (3,), [np.ones((3, 2), np.float32), np.ones((4, 2), np.float32)]),
    "matmul_3d_weight": lambda: _one("MatMul", (3,), [np.ones((1, 3, 2), np.float32)]),
    "maxpool_no_kernel": lambda: _one("MaxPool", (1, 4, 4), []),
    "maxpool_pads": lambda: _one("MaxPool", (1, 4, 4), [], kernel_shape=[2, 2], pads=[2, 0, 0, 0]),
    "maxpool_rank": lambda: _one("MaxPool", (1, 4, 4), [], kernel_shape=[2]),
    "gap_rank": lambda: _one("GlobalAveragePool", (4,), []),
    "flatten_axis0": lambda: _one("Flatten", (2, 3), [], axis=0),
    "reshape_batch": lambda: _one("Reshape", (2, 3), [np.array([3, 2], np.int64)]),
    "reshape_computed": lambda: _one("Reshape", (2, 3), []),
    "product_of_two_signals": lambda: _two_signals(),
    "div_by_zero": lambda: _one("Div", (3,), [np.array([1.0, 0.0, 2.0], np.float32)]),
    "broadcast_changes_shape": lambda: _one("Mul", (3,), [np.ones((2, 3), np.float32)]),
    "bn_training": _bn_training,
    "constant_output": lambda: _one("Identity", (3,), []),
    "view_twice_batch": lambda: _view(2),
    "squeeze_no_axes": lambda: _one("Squeeze", (1, 3), []),
    "squeeze_not_one": lambda: _one("Squeeze", (2, 3), [np.array([1], np.int64)]),
    "unsqueeze_batch": lambda: _one("Unsqueeze", (2, 3), [np.array([0], np.int64)]),
    "transpose_batch": lambda: _one("Transpose", (2, 3), [], perm=[1, 0, 2]),
    "transpose_not_a_permutation": lambda: _one("Transpose", (2, 3), [], perm=[0, 0, 2]),
    "concat_batch": lambda: _one("Concat", (2, 3), [], axis=0),
    "concat_constant": lambda: _one("Concat", (2, 3), [np.ones((1, 2, 3), np.float32)], axis=1),
    "reducemean_channels": lambda: _one("ReduceMean", (2, 3, 3), [], axes=[1]),
    "reducemean_out_of_range": lambda: _one("ReduceMean", (2, 3, 3), [], axes=[4]),
}


@pytest.mark.parametrize("name", sorted(ERROR_MODELS))
def test_error_models(name: str) -> None:
    result = compare(ERROR_MODELS[name]())
    if name in ("unsupported_op_python_supports", "reshape_computed"):
        assert result in ("not ported", "same error")
    else:
        assert result == "same error"


def test_errors_map_to_dtd_exceptions() -> None:
    from dtd import ModelLoadError, UnsupportedModelError

    with pytest.raises(UnsupportedModelError, match=r"unsupported op Sin \(node 'sin_1', opset 13\)"):
        _core._load_onnx(_one("Sin", (3,), []).SerializeToString())
    with pytest.raises(ModelLoadError, match="is neither an initializer"):
        _core._load_onnx(_missing_initializer().SerializeToString())
    with pytest.raises(TypeError):
        _core._load_onnx(3)
    assert "Conv" in _core._import_supported_ops()


def test_names_that_are_not_utf8() -> None:
    """A node name of invalid UTF-8 reaches Python inside the error message with replacement characters."""
    from dtd import UnsupportedModelError

    data = _one("Sin", (3,), []).SerializeToString().replace(b"sin_1", b"s\xff\xfe_1")
    with pytest.raises(UnsupportedModelError, match="unsupported op Sin"):
        _core._load_onnx(data)


@pytest.mark.parametrize("seed", range(4))
def test_mutated_models_raise_dtd_errors(seed: int) -> None:
    """Committed models with a few bytes overwritten: the C++ importer returns a spec or raises dtd's errors."""
    from dtd import ModelLoadError

    rng = np.random.default_rng(seed)
    files = [p for p in COMMITTED if p.stat().st_size < 200_000]
    for _ in range(100):
        data = bytearray(files[int(rng.integers(len(files)))].read_bytes())
        for _ in range(int(rng.integers(1, 9))):
            data[int(rng.integers(len(data)))] = int(rng.integers(256))
        try:
            _core._load_onnx(bytes(data))
        except ModelLoadError:
            pass


def test_fused_patterns_are_not_converted_piecewise() -> None:
    """fuse.py turns the erf form of GELU into one node before converting: the C++ importer, which does not fuse yet,
    must not convert its Div/Add/Mul nodes one by one (nor refuse the Erf as an unknown op)."""
    b = GraphBuilder((4,), seed=15)
    h = b.gemm("x", 4)
    u = b.node("Div", [h, b.const(np.array(np.sqrt(2.0), np.float32))])
    v = b.node("Add", [b.node("Erf", [u]), b.const(np.array(1.0, np.float32))])
    y = b.node("Mul", [b.node("Mul", [h, v]), b.const(np.array(0.5, np.float32))])
    assert compare(b.build(b.gemm(y, 2))) == "not ported"


# -- import-time evaluation (fold.py) and the data movements of shape.py ------------------------------------------
def _results(make: object, seed: int, count: int) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    results: dict[str, int] = {}
    for _ in range(count):
        result = compare(make(rng))  # type: ignore[operator]
        results[result] = results.get(result, 0) + 1
    return results


@pytest.mark.parametrize("seed", range(3))
def test_folded_elementwise_ops(seed: int) -> None:
    """Binary, unary, reduction and Cast evaluations of random constants of every element type (NumPy's promotion,
    integer wrap-around, x86-64's float-to-integer casts, the floating-point errors np.errstate raises)."""
    results = _results(fold_models.elementwise_model, seed, 150)
    assert results.get("same", 0) > 100 and "not ported" not in results, results


@pytest.mark.parametrize("seed", range(3))
def test_folded_shape_ops(seed: int) -> None:
    """Shape, Size, Gather, (Un)Squeeze, Concat, Slice, Reshape, Flatten, Transpose, ConstantOfShape, Range, Expand
    and Tile of constants, with valid and invalid parameters: the same value or the same error."""
    results = _results(fold_models.shape_op_model, seed, 150)
    assert results.get("same", 0) > 50 and results.get("same error", 0) > 30 and "not ported" not in results


@pytest.mark.parametrize("seed", range(3))
def test_data_movements(seed: int) -> None:
    """Slice, Split and Gather of data tensors, the gather from a batch flattened with its samples, and a Reshape
    target computed from the input's shape."""
    results = _results(fold_models.data_op_model, seed, 100)
    assert results.get("same", 0) > 30 and results.get("same error", 0) > 10 and "not ported" not in results


def _size_view() -> onnx.ModelProto:
    """x.view(N, x.numel() // N): Size, Shape, Gather, Div, Concat in front of a Reshape."""
    b = GraphBuilder((2, 3, 3), seed=17)
    h = b.relu(b.conv("x", 2, (1, 1)))
    n = b.node("Gather", [b.node("Shape", [h]), b.const(np.array([0], np.int64))], axis=0)
    per_sample = b.node("Div", [b.node("Size", [h]), n])
    target = b.node("Concat", [n, per_sample], axis=0)
    return b.build(b.node("MatMul", [b.node("Reshape", [h, target]), b.weight((18, 2))]))


def _big(op: str) -> onnx.ModelProto:
    """A tiny model asking the fold for far more elements than the limit (nothing may be allocated first)."""
    b = GraphBuilder((3,))
    huge = np.array([10**6, 10**6], np.int64)
    if op == "ConstantOfShape":
        value = b.node("ConstantOfShape", [b.const(huge)])
    elif op == "Tile":
        value = b.node("Tile", [b.const(np.ones((2, 2), np.float32)), b.const(huge)])
    elif op == "Expand":
        value = b.node("Expand", [b.const(np.ones((1, 1), np.float32)), b.const(huge)])
    else:
        value = b.node("Range", [b.const(np.array(v, np.float32)) for v in (0, 1e12, 1)])
    flat = b.node("Reshape", [value, b.const(np.array([-1], np.int64))])
    return b.build(b.node("Add", ["x", b.node("ReduceSum", [flat], keepdims=1)]))


@pytest.mark.parametrize("name", ["size_view", "ConstantOfShape", "Tile", "Expand", "Range", "floor_of_data"])
def test_fold_cases(name: str) -> None:
    if name == "size_view":
        assert compare(_size_view()) == "same"
    elif name == "floor_of_data":
        assert compare(_one("Floor", (3,), [])) == "same error"  # an op evaluated at import only, on data
    else:
        assert compare(_big(name)) == "same error"


def test_float_reductions_in_a_fixed_order() -> None:
    """A float32 ReduceSum whose result depends on the summation order: both importers sum in one order."""
    b = GraphBuilder((4,), opset=13, seed=18)
    values = np.random.default_rng(5).normal(0, 1, (1000, 4)).astype(np.float32) * 1e4
    total = b.node("ReduceSum", [b.const(values), b.const(np.array([0], np.int64))], keepdims=0)
    assert compare(b.build(b.node("Add", [b.gemm("x", 4), total]))) == "same"
