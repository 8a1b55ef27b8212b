"""The C++ ONNX importer (cpp/src/import, ``dtd._core._load_onnx``) against the Python one (``dtd.onnx``).

For every committed test model (tests/data, the shipped MNIST model, the LRP Toolbox's LeNet-5 in the shared data),
the relevance test nets of ``tests/relnets.py`` at several opsets, and models built here for the core op set and
for its errors: the C++ importer gives the same ModelSpec (layers, attributes, weights bit for bit) or the same
exception class and message, unless it says that it does not cover the model yet. dtd.load still uses the Python
importer; these tests pin the port while it grows.
"""

from __future__ import annotations

import importlib.util
import warnings
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
    "unsupported_op_python_supports": lambda: _one("Sqrt", (3,), []),
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


# -- activation.py, norm.py's LayerNormalization and fuse.py's patterns ----------------------------------------------
def _prelu(slope_shape: tuple[int, ...], shape: tuple[int, ...] = (3, 4, 4)) -> onnx.ModelProto:
    b = GraphBuilder(shape, seed=20)
    h = b.node("PRelu", ["x", b.weight(slope_shape)])
    return b.build(b.gemm(b.node("Flatten", [h]), 2))


def _softmax(op: str, opset: int, shape: tuple[int, ...], tail: str = "", **attrs: object) -> onnx.ModelProto:
    b = GraphBuilder(shape, opset=opset, seed=21)
    h = b.node(op, [b.relu("x")], **attrs)
    if tail == "flatten":
        h = b.node("Flatten", [b.node("Identity", [h])])
    elif tail == "relu":  # not the head
        h = b.relu(h)
    return b.build(h)


def _layernorm17(
    axis: int, scale: tuple[int, ...], bias: tuple[int, ...] | None, **attrs: object
) -> onnx.ModelProto:
    b = GraphBuilder((3, 4), opset=17, seed=22)
    inputs = ["x", b.weight(scale)] + ([b.weight(bias)] if bias is not None else [])
    return b.build(b.node("LayerNormalization", inputs, axis=axis, **attrs))


def _erf_gelu(form: str, dtype: type = np.float32, constant_nodes: bool = False) -> onnx.ModelProto:
    b = GraphBuilder((4,), seed=23)
    x = b.gemm("x", 4)

    def c(v: float) -> str:
        if not constant_nodes:
            return b.const(np.array(v, dtype))
        name = b.fresh("c")
        b.nodes.append(helper.make_node("Constant", [], [name], value_float=v))
        return name

    if form == "mul_sqrt_half":
        u = b.node("Mul", [c(np.sqrt(0.5)), x])
    else:
        u = b.node("Div", [x, c(np.sqrt(2.0))])
    v = b.node("Add", [c(1.0), b.node("Erf", [u])])
    if form == "half_first":  # (x * 0.5) * v
        y = b.node("Mul", [v, b.node("Mul", [x, c(0.5)])])
    elif form == "v_half_x":  # (v * 0.5) * x
        y = b.node("Mul", [x, b.node("Mul", [c(0.5), v])])
    elif form == "shared":  # the Erf output has another consumer: not fused
        y = b.node("Add", [b.node("Mul", [b.node("Mul", [x, v]), c(0.5)]), b.node("Relu", [v])])
    else:  # (x * v) * 0.5
        y = b.node("Mul", [b.node("Mul", [x, v]), c(0.5)])
    return b.build(b.gemm(y, 2))


def _written_ln(
    opset: int = 13,
    axes: tuple[int, ...] = (-1,),
    square: str = "Pow",
    scale: tuple[int, ...] | None = (4,),
    bias: tuple[int, ...] | None = (4,),
    eps: float = 1e-5,
    eps_dtype: type = np.float32,
    keepdims: int = 1,
) -> onnx.ModelProto:
    b = GraphBuilder((3, 4), opset=opset, seed=24)
    x = b.relu("x")

    def mean(v: str) -> str:
        if opset >= 18:
            return b.node("ReduceMean", [v, b.const(np.array(axes, np.int64))], keepdims=keepdims)
        return b.node("ReduceMean", [v], axes=list(axes), keepdims=keepdims)

    d = b.node("Sub", [x, mean(x)])
    sq = b.node("Pow", [d, b.const(np.array(2.0, np.float32))]) if square == "Pow" else b.node("Mul", [d, d])
    y = b.node("Div", [d, b.node("Sqrt", [b.node("Add", [b.const(np.array(eps, eps_dtype)), mean(sq)])])])
    if scale is not None:
        y = b.node("Mul", [b.weight(scale), y])
    if bias is not None:
        y = b.node("Add", [y, b.weight(bias)])
    return b.build(b.gemm(b.node("Flatten", [y]), 2))


ACT_MODELS = {
    "prelu_scalar": lambda: _prelu(()),
    "prelu_channel": lambda: _prelu((3, 1, 1)),
    "prelu_full": lambda: _prelu((3, 4, 4)),
    "prelu_batch_one": lambda: _prelu((1, 3, 1, 4)),
    "prelu_dense": lambda: _prelu((5,), (5,)),
    "gelu20": lambda: _one("Gelu", (3,), [], opset=20),
    "gelu20_tanh": lambda: _one("Gelu", (3,), [], opset=20, approximate="tanh"),
    "softmax13": lambda: _softmax("Softmax", 13, (3, 4)),
    "softmax13_axis1": lambda: _softmax("Softmax", 13, (3, 4), axis=1),
    "logsoftmax13_flatten": lambda: _softmax("LogSoftmax", 13, (3, 4), "flatten", axis=-2),
    "softmax11": lambda: _softmax("Softmax", 11, (5,)),
    "softmax11_trailing_ones": lambda: _softmax("Softmax", 11, (5, 1, 1)),
    "layernorm17": lambda: _layernorm17(-1, (4,), (4,)),
    "layernorm17_axis1_broadcast": lambda: _layernorm17(1, (4,), None, epsilon=1e-3),
    "layernorm17_scale_one": lambda: _layernorm17(-2, (1, 1), (3, 1)),
    "erf_gelu": lambda: _erf_gelu("plain"),
    "erf_gelu_mul_sqrt_half": lambda: _erf_gelu("mul_sqrt_half"),
    "erf_gelu_half_first": lambda: _erf_gelu("half_first"),
    "erf_gelu_v_half_x": lambda: _erf_gelu("v_half_x"),
    "erf_gelu_float64": lambda: _erf_gelu("plain", np.float64),
    "erf_gelu_constant_nodes": lambda: _erf_gelu("v_half_x", constant_nodes=True),
    "written_ln": lambda: _written_ln(),
    "written_ln_mul": lambda: _written_ln(square="Mul", scale=None),
    "written_ln_bias_only": lambda: _written_ln(scale=None, bias=(1,)),
    "written_ln_none": lambda: _written_ln(scale=None, bias=None),
    "written_ln_two_axes": lambda: _written_ln(axes=(1, 2), scale=(3, 4), bias=(4,)),
    "written_ln_op11": lambda: _written_ln(opset=11),
    "written_ln_op18": lambda: _written_ln(opset=18),
    "written_ln_eps64": lambda: _written_ln(eps=1e-12, eps_dtype=np.float64),
    "written_ln_eps_huge": lambda: _written_ln(eps=1e300, eps_dtype=np.float64),  # float32: inf
    "written_ln_eps_int": lambda: _written_ln(eps=0, eps_dtype=np.int64),
}


@pytest.mark.parametrize("name", sorted(ACT_MODELS))
def test_activation_and_norm_models(name: str) -> None:
    assert compare(ACT_MODELS[name]()) == "same"


def _bfloat16_gelu() -> onnx.ModelProto:
    """A bfloat16 1.0 in the erf-GELU: to_array gives it NumPy kind V (ml_dtypes), not a scalar: not fused."""
    model = _erf_gelu("plain")
    for t in model.graph.initializer:
        if t.dims == [] and onnx.numpy_helper.to_array(t) == 1.0:
            t.CopyFrom(helper.make_tensor(t.name, TensorProto.BFLOAT16, [], [1.0]))
    return model


def _softmax_twice() -> onnx.ModelProto:
    b = GraphBuilder((3,))
    s = b.node("Softmax", ["x"])
    return b.build(b.node("Add", [b.node("Reshape", [s, b.const(np.array([0, 3], np.int64))]), s]))


def _ln_mean_used() -> onnx.ModelProto:
    b = GraphBuilder((3, 4), opset=17, seed=25)
    y, mean = b.fresh("y"), b.fresh("mean")
    b.nodes.append(helper.make_node("LayerNormalization", ["x", b.weight((4,))], [y, mean], name="ln"))
    return b.build(b.node("Add", [y, mean]))


ACT_ERRORS = {
    "erf_gelu_int_constants": lambda: _erf_gelu("plain", np.int64),  # 0.5 and sqrt 2 as int64: not fused
    "logsoftmax9_several_axes": lambda: _softmax("LogSoftmax", 9, (2, 5)),
    "written_ln_negative_eps": lambda: _written_ln(
        eps=-1.0
    ),  # not fused: ReduceMean over the last axis refused
    "prelu_batch_slope": lambda: _prelu((2, 3, 1, 1)),
    "prelu_slope_rank": lambda: _prelu((1, 1, 3, 1, 1)),
    "prelu_slope_shape": lambda: _prelu((5,)),
    "prelu_int_slope": lambda: _one("PRelu", (3,), [np.ones(3, np.int64)]),
    "prelu_data_slope": lambda: _two_prelu(),
    "gelu20_unknown_approximate": lambda: _one("Gelu", (3,), [], opset=20, approximate="fast"),
    "gelu_before_opset20": lambda: _one("Gelu", (3,), [], opset=18),
    "softmax_not_head": lambda: _softmax("Softmax", 13, (3, 4), "relu"),
    "softmax_two_consumers": _softmax_twice,
    "softmax_axis_out_of_range": lambda: _softmax("Softmax", 13, (3, 4), axis=3),
    "softmax_batch_axis": lambda: _softmax("LogSoftmax", 13, (3, 4), axis=-3),
    "softmax11_several_axes": lambda: _softmax("Softmax", 11, (3, 4)),
    "layernorm17_axis_out_of_range": lambda: _layernorm17(3, (4,), None),
    "layernorm17_batch_axis": lambda: _layernorm17(-3, (4,), None),
    "layernorm17_scale_shape": lambda: _layernorm17(-1, (3,), None),
    "layernorm17_bias_shape": lambda: _layernorm17(1, (3, 4), (2, 4)),
    "layernorm17_mean_used": _ln_mean_used,
    "layernorm_before_opset17": lambda: _one("LayerNormalization", (3,), [np.ones(3, np.float32)], opset=16),
    "erf_gelu_shared": lambda: _erf_gelu("shared"),
    "erf_gelu_bfloat16_one": _bfloat16_gelu,
    "written_ln_leading_axis": lambda: _written_ln(axes=(1,), scale=None, bias=None),
    "written_ln_batch_axis": lambda: _written_ln(axes=(0, 1, 2), scale=None, bias=None),
}


def _two_prelu() -> onnx.ModelProto:
    b = GraphBuilder((3,))
    return b.build(b.node("PRelu", ["x", b.relu("x")]))


@pytest.mark.parametrize("name", sorted(ACT_ERRORS))
def test_activation_and_norm_errors(name: str) -> None:
    assert compare(ACT_ERRORS[name]()) == "same error"


# -- Pad, and pads folded into the next Conv / AveragePool / MaxPool -------------------------------------------------
def _pad(
    shape: tuple[int, ...],
    pads: list[int],
    opset: int = 13,
    value: object = None,
    axes: list[int] | None = None,
    head: bool = True,
    **attrs: object,
) -> onnx.ModelProto:
    """A Pad of the input's ReLU, then (``head``) a dense layer, else the pad is the output."""
    b = GraphBuilder(shape, opset=opset, seed=17)
    h = b.relu("x")
    if opset < 11:
        if value is not None:
            attrs["value"] = value
        h = b.node("Pad", [h], pads=pads, **attrs)
    else:
        inputs = [h, b.const(np.array(pads, np.int64))]
        if value is not None or axes is not None:
            inputs.append("" if value is None else b.const(np.asarray(value)))
        if axes is not None:
            inputs.append(b.const(np.array(axes, np.int64)))
        h = b.node("Pad", inputs, **attrs)
    return b.build(b.gemm(b.node("Flatten", [h]), 2) if head else h)


def _pad_then(op: str, value: float, widths: list[int], **attrs: object) -> onnx.ModelProto:
    b = GraphBuilder((2, 5, 5), seed=18)
    h = b.node("Pad", [b.relu("x"), b.const(np.array(widths, np.int64)), b.const(np.float32(value))])
    h = b.conv(h, 3, **attrs) if op == "Conv" else b.node(op, [h], kernel_shape=[3, 3], **attrs)
    return b.build(b.gemm(b.node("Flatten", [h]), 2))


PAD_MODELS = {
    "zero": lambda: _pad((2, 4, 5), [0, 0, 1, 2, 0, 0, 2, 1]),
    "value": lambda: _pad((2, 4, 5), [0, 1, 0, 1, 0, 0, 2, 0], value=np.float32(1.5)),
    "int_value": lambda: _pad((2, 4, 5), [0, 0, 1, 0, 0, 0, 0, 1], value=np.int64(3)),
    "crop": lambda: _pad((2, 4, 5), [0, 0, -1, 2, 0, 0, 1, -2]),
    "reflect": lambda: _pad((2, 4, 5), [0, 0, 2, 1, 0, 0, 1, 2], mode="reflect"),
    "edge": lambda: _pad((2, 4, 5), [0, 1, 3, 0, 0, 2, 0, 4], mode="edge", value=np.float32(7.0)),
    "wrap": lambda: _pad((2, 4, 5), [0, 0, 2, 3, 0, 0, 1, 4], opset=19, mode="wrap"),
    "no_pads": lambda: _pad((2, 4, 5), [0] * 8),
    "nan_value_edge": lambda: _pad(
        (2, 4, 5), [0, 0, 1, 0, 0, 0, 0, 0], value=np.float32(np.nan), mode="edge"
    ),
    "attributes_opset10": lambda: _pad((2, 4, 5), [0, 0, 1, 2, 0, 0, 2, 1], opset=10, value=0.5),
    "axes_opset18": lambda: _pad((2, 4, 5), [1, 2, 3, 0], opset=18, axes=[-1, 2], mode="edge"),
    "into_conv": lambda: _pad_then("Conv", 0.0, [0, 0, 1, 2, 0, 0, 2, 1], pads=[1, 0, 0, 1]),
    "into_conv_valid": lambda: _pad_then("Conv", 0.0, [0, 0, 1, 2, 0, 0, 2, 1], auto_pad="VALID"),
    "into_conv_strided": lambda: _pad_then(
        "Conv", 0.0, [0, 0, 1, 0, 0, 0, 0, 1], strides=[2, 2], dilations=[2, 1]
    ),
    "not_into_conv_value": lambda: _pad_then("Conv", 0.5, [0, 0, 1, 2, 0, 0, 2, 1]),
    "not_into_conv_same": lambda: _pad_then("Conv", 0.0, [0, 0, 1, 2, 0, 0, 2, 1], auto_pad="SAME_UPPER"),
    "not_into_conv_channels": lambda: _pad_then("Conv", 0.0, [0, 1, 1, 0, 0, 0, 0, 1]),
    "not_into_conv_crop": lambda: _pad_then("Conv", 0.0, [0, 0, 1, 0, 0, 0, -1, 1]),
    "into_avgpool": lambda: _pad_then(
        "AveragePool", 0.0, [0, 0, 1, 2, 0, 0, 2, 1], count_include_pad=1, pads=[0, 1, 1, 0]
    ),
    "not_into_avgpool_excl": lambda: _pad_then("AveragePool", 0.0, [0, 0, 1, 2, 0, 0, 2, 1]),
    "into_maxpool": lambda: _pad_then("MaxPool", -np.inf, [0, 0, 1, 2, 0, 0, 2, 1], strides=[2, 2]),
    "not_into_maxpool_zero": lambda: _pad_then("MaxPool", 0.0, [0, 0, 1, 2, 0, 0, 2, 1]),
    "not_into_maxpool_ceil": lambda: _pad_then(
        "MaxPool", -np.inf, [0, 0, 1, 2, 0, 0, 2, 1], ceil_mode=1, strides=[2, 2]
    ),
}


def _pad_twice_then_conv() -> onnx.ModelProto:
    """Two pads in a row: the second folds into the conv, the first stays; a pad at the output stays too."""
    b = GraphBuilder((2, 5, 5), seed=20)
    h = b.node("Pad", [b.relu("x"), b.const(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))])
    h = b.node("Pad", [h, b.const(np.array([0, 0, 0, 1, 0, 0, 1, 0], np.int64))])
    h = b.conv(h, 2)
    return b.build(b.node("Pad", [h, b.const(np.array([0, 0, 1, 0, 0, 0, 0, 0], np.int64))]))


def _pad_shared() -> onnx.ModelProto:
    """A pad read by two convs does not fold."""
    b = GraphBuilder((2, 5, 5), seed=21)
    h = b.node("Pad", [b.relu("x"), b.const(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))])
    return b.build(b.node("Add", [b.conv(h, 2), b.conv(h, 2)]))


PAD_MODELS.update({"twice_then_conv": _pad_twice_then_conv, "shared": _pad_shared})


@pytest.mark.parametrize("name", sorted(PAD_MODELS))
def test_pad_models(name: str) -> None:
    assert compare(PAD_MODELS[name]()) == "same"


PAD_ERRORS = {
    "wrap_before_19": lambda: _pad((2, 3), [0, 1, 0, 1], opset=18, mode="wrap", head=False),
    "unknown_mode": lambda: _pad((2, 3), [0, 1, 0, 1], mode="mirror", head=False),
    "batch": lambda: _pad((3,), [1, 0, 0, 0], head=False),
    "crop_to_nothing": lambda: _pad((3, 4), [0, -1, 0, 0, -2, 0], head=False),
    "crop_more": lambda: _pad((3, 4), [0, -2, 0, 0, -2, 0], head=False),  # graph.py's check_geometry words it
    "crop_more_opset10": lambda: _pad((3, 4), [0, 0, -5, 0, 0, 0], opset=10, head=False),
    "nan_value": lambda: _pad((3, 4), [0, 1, 0, 0, 0, 0], value=np.float32(np.nan), head=False),
    "pads_count": lambda: _pad((3, 4), [0, 1, 0, 0], head=False),
    "pads_count_opset10": lambda: _pad((3, 4), [0, 1, 0, 0], opset=10, head=False),
    "axes_count": lambda: _pad((3, 4), [1, 2, 3], opset=18, axes=[1, 2], head=False),
    "axes_out_of_range": lambda: _pad((3, 4), [1, 2], opset=18, axes=[3], head=False),
    "nan_pads": lambda: _pad_float_pads_error(np.nan),
    "infinite_pads": lambda: _pad_float_pads_error(np.inf),
}


def _pad_float_pads_error(v: float) -> onnx.ModelProto:
    b = GraphBuilder((2, 4), seed=22)
    h = b.node("Pad", [b.relu("x"), b.const(np.array([0, 0, v, 0, 0, 0], np.float32))])
    return b.build(h)


@pytest.mark.parametrize("name", sorted(PAD_ERRORS))
def test_pad_errors(name: str) -> None:
    assert compare(PAD_ERRORS[name]()) == "same error"


# -- constant affine maps: legacy broadcasting, sums of constants, shifts folded into the next layer's bias ---------
def _legacy(op: str, first: bool = False, axis: int | None = 1) -> onnx.ModelProto:
    b = GraphBuilder((3, 4, 5), opset=6, seed=23)
    c = b.const(np.array([1.5, -2.0, 0.5], np.float32))
    h = b.relu("x")
    attrs: dict[str, object] = {"broadcast": 1} if axis is None else {"broadcast": 1, "axis": axis}
    h = b.node(op, [c, h] if first else [h, c], **attrs)
    h = b.node(op, [h, b.const(np.linspace(0.5, 1.5, 5).astype(np.float32))], broadcast=1)
    return b.build(b.relu(h))


def _sum_of_constants(shapes: list[tuple[int, ...]], op: str = "Sum") -> onnx.ModelProto:
    b = GraphBuilder((3, 4, 5), seed=24)
    consts = [b.weight(s) for s in shapes]
    return b.build(b.relu(b.node(op, [b.relu("x"), *consts])))


def _shift_into(kind: str) -> onnx.ModelProto:
    """(x - mean) / std, or a BatchNormalization after a ReLU, before an unpadded conv or a dense layer: the shift
    folds into that layer's bias."""
    b = GraphBuilder((4, 6, 6), seed=25)
    mean = b.const(np.array([0.5, -0.25, 1.0, 2.0], np.float32).reshape(4, 1, 1))
    std = b.const(np.array([0.3, 0.7, 1.1, 2.0], np.float32).reshape(4, 1, 1))
    h = b.node("Div", [b.node("Sub", ["x", mean]), std])
    if kind == "conv":
        h = b.conv(h, 5, (3, 3))
    elif kind == "conv_no_bias":
        h = b.conv(h, 5, (3, 3), bias=False, strides=[2, 2])
    elif kind == "conv_group":
        h = b.conv(h, 6, (3, 2), group=2)
    elif kind == "conv_1x1_bn":
        h = b.conv(b.batchnorm(b.relu(h), 4), 3, (1, 1))
    elif kind == "conv3d":
        h = b.node("Reshape", [h, b.const(np.array([0, 4, 2, 3, 6], np.int64))])
        h = b.conv(h, 2, (2, 2, 3))
    h = b.node("Flatten", [h])
    if kind == "dense":
        h = b.node("Add", [b.node("Mul", [h, b.const(np.float32(0.5))]), b.weight((144,))])
        return b.build(b.gemm(h, 3))
    if kind == "dense_transposed":
        h = b.node("Sub", [b.relu(h), b.weight((144,))])
        return b.build(b.gemm(h, 3, trans_b=0, alpha=0.75, beta=-0.5))
    if kind == "matmul":
        h = b.node("Add", [b.relu(h), b.weight((144,))])
        return b.build(b.node("MatMul", [h, b.weight((144, 3))]))
    return b.build(b.gemm(h, 2))


AFFINE_MODELS = {
    **{f"legacy_{op.lower()}": (lambda op=op: _legacy(op)) for op in ("Add", "Sub", "Mul", "Div")},
    "legacy_negative_axis": lambda: _legacy("Add", axis=-3),
    "legacy_no_broadcast": lambda: _one("Add", (3,), [np.ones(3, np.float32)], opset=6),
    "sum_broadcast": lambda: _sum_of_constants([(3, 1, 1), (1, 5), ()]),
    "add_row": lambda: _sum_of_constants([(1, 1, 5)], "Add"),
    "sum_same_shapes": lambda: _sum_of_constants([(3, 4, 5), (3, 4, 5)]),
    **{
        f"shift_into_{kind}": (lambda kind=kind: _shift_into(kind))
        for kind in (
            "conv",
            "conv_no_bias",
            "conv_group",
            "conv_1x1_bn",
            "conv3d",
            "dense",
            "dense_transposed",
            "matmul",
        )
    },
}


@pytest.mark.parametrize("name", sorted(AFFINE_MODELS))
def test_affine_models(name: str) -> None:
    assert compare(AFFINE_MODELS[name]()) == "same"


def _dropout_training_mode(value: np.ndarray) -> onnx.ModelProto:
    b = GraphBuilder((3,), opset=13)
    return b.build(b.node("Dropout", [b.relu("x"), b.const(np.float32(0.5)), b.const(value)]))


AFFINE_ERRORS = {
    "legacy_constant_first": lambda: _legacy("Sub", first=True),
    "legacy_trailing_mismatch": lambda: _legacy("Mul", axis=None),
    "legacy_axis_off_the_tensor": lambda: _legacy("Add", axis=3),
    "sum_shapes_do_not_broadcast": lambda: _sum_of_constants([(1, 2), (1, 3)]),
    "sum_grows_the_tensor": lambda: _sum_of_constants([(2, 3, 4, 5)]),
    "dropout_empty_training_mode": lambda: _dropout_training_mode(np.zeros(0, np.bool_)),
    "dropout_training_mode": lambda: _dropout_training_mode(np.ones(1, np.bool_)),
}


@pytest.mark.parametrize("name", sorted(AFFINE_ERRORS))
def test_affine_errors(name: str) -> None:
    assert compare(AFFINE_ERRORS[name]()) == "same error"


def test_shift_folding_uses_the_sequential_row_sums() -> None:
    """The bias a folded shift gives is the documented sum, ((w_0 t_0 + w_1 t_1) + ...) in float64, in both
    importers (not NumPy's pairwise sum or a BLAS product): checked against an explicit loop."""
    from dtd.onnx import import_model

    b = GraphBuilder((300,), seed=26)
    t = np.random.default_rng(1).standard_normal(300).astype(np.float32) * 1e3
    w = np.random.default_rng(2).standard_normal((2, 300)).astype(np.float32)
    h = b.node("Add", [b.relu("x"), b.const(t)])
    model = b.build(b.node("Gemm", [h, b.const(w)], transB=1))
    assert compare(model) == "same"
    layer = import_model(model.SerializeToString()).spec.layers[-1]
    expected = []
    for row in w.astype(np.float64):
        total = row[0] * float(t[0])
        for j in range(1, 300):
            total = total + row[j] * float(t[j])
        expected.append(total)
    assert np.asarray(layer.weights["bias"]).tolist() == expected


# -- constants of the other element types, read as integers (int()) or truth values (bool()) ------------------------
def _typed(dtype: int, values: list[object], dims: list[int] | None = None) -> onnx.TensorProto:
    return helper.make_tensor("c", dtype, [len(values)] if dims is None else dims, values)


def _pads_of(tensor: onnx.TensorProto) -> onnx.ModelProto:
    """A Pad whose pads are the constant `tensor` (renamed), after a ReLU of a [N, 2, 3] input."""
    b = GraphBuilder((2, 3), seed=27)
    tensor.name = b.fresh("pads")
    b.initializers.append(tensor)
    return b.build(b.node("Pad", [b.relu("x"), tensor.name]))


def _training_mode_of(tensor: onnx.TensorProto) -> onnx.ModelProto:
    b = GraphBuilder((3,), opset=13)
    tensor.name = b.fresh("mode")
    b.initializers.append(tensor)
    return b.build(b.node("Dropout", [b.relu("x"), b.const(np.float32(0.5)), tensor.name]))


P = [0, 0, 1, 0, 0, 2]  # pads of a [N, 2, 3] tensor
TYPED_MODELS = {
    "pads_int32": lambda: _pads_of(_typed(TensorProto.INT32, P)),
    "pads_uint8": lambda: _pads_of(_typed(TensorProto.UINT8, P)),
    "pads_int4": lambda: _pads_of(_typed(TensorProto.INT4, [0, 0, 1, 0, 0, 2])),
    "pads_uint4": lambda: _pads_of(_typed(TensorProto.UINT4, [0, 0, 3, 0, 0, 1])),
    "pads_complex64": lambda: _pads_of(_typed(TensorProto.COMPLEX64, [0, 0, 1.7 + 2j, 0, 0, 2.2 - 1j])),
    "pads_complex128": lambda: _pads_of(_typed(TensorProto.COMPLEX128, [0, 0, -0.5j, 0, 0, 1 + 0j])),
    "pads_float16": lambda: _pads_of(_typed(TensorProto.FLOAT16, [0, 0, 1.5, 0, 0, -0.5])),
    "pads_strings": lambda: _pads_of(_typed(TensorProto.STRING, [b"0", b" +0 ", b"1_0", b"0", b"0", b"-0"])),
    **{
        f"pads_{name.lower()}": (lambda dt=dt: _pads_of(_typed(dt, [0, 0, 1.5, 0, 0, 2.75])))
        for name, dt in (
            ("FLOAT8E4M3FN", TensorProto.FLOAT8E4M3FN),
            ("FLOAT8E4M3FNUZ", TensorProto.FLOAT8E4M3FNUZ),
            ("FLOAT8E5M2", TensorProto.FLOAT8E5M2),
            ("FLOAT8E5M2FNUZ", TensorProto.FLOAT8E5M2FNUZ),
            ("FLOAT4E2M1", TensorProto.FLOAT4E2M1),
        )
    },
    **{
        f"training_mode_{name}": (lambda t=t: _training_mode_of(t()))
        for name, t in (
            ("complex_imaginary", lambda: _typed(TensorProto.COMPLEX64, [0.0 + 0j], [])),
            ("string_empty", lambda: _typed(TensorProto.STRING, [b""], [])),
            ("float8_zero", lambda: _typed(TensorProto.FLOAT8E5M2, [0.0], [])),
            ("int4_zero", lambda: _typed(TensorProto.INT4, [0], [])),
        )
    },
}
TYPED_ERRORS = {
    "pads_string_not_a_number": lambda: _pads_of(
        _typed(TensorProto.STRING, [b"0", b"0", b"1 2", b"0", b"0", b"0"])
    ),
    "pads_string_empty": lambda: _pads_of(_typed(TensorProto.STRING, [b"0", b"0", b"", b"0", b"0", b"0"])),
    "pads_string_underscores": lambda: _pads_of(
        _typed(TensorProto.STRING, [b"0", b"0", b"1__0", b"0", b"0", b"0"])
    ),
    "pads_complex_nan": lambda: _pads_of(_typed(TensorProto.COMPLEX64, [0, 0, complex(np.nan, 0), 0, 0, 0])),
    "pads_float8_nan": lambda: _pads_of(_typed(TensorProto.FLOAT8E4M3FN, [0, 0, np.nan, 0, 0, 0])),
    "training_mode_complex": lambda: _training_mode_of(_typed(TensorProto.COMPLEX64, [0.0 + 1j], [])),
    "training_mode_string": lambda: _training_mode_of(_typed(TensorProto.STRING, [b"0"], [])),
    "training_mode_float8": lambda: _training_mode_of(_typed(TensorProto.FLOAT8E4M3FNUZ, [0.5], [])),
}


@pytest.mark.parametrize("name", sorted(TYPED_MODELS))
def test_constants_of_other_types(name: str) -> None:
    with warnings.catch_warnings():  # int() of a complex NumPy value warns that it drops the imaginary part
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        assert compare(TYPED_MODELS[name]()) == "same"


@pytest.mark.parametrize("name", sorted(TYPED_ERRORS))
def test_constants_of_other_types_errors(name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        assert compare(TYPED_ERRORS[name]()) == "same error"


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
