"""Strict node validation (issue 10, defects 7 and 8): what onnx.checker and onnxruntime reject, dtd.load rejects,
with a dtd error naming the node; and the validation table agrees with onnx's operator schemas."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import dtd
from builders import GraphBuilder, raises_on_load
from dtd import ModelLoadError, UnsupportedModelError, _core

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import onnx_schema_table  # tools/
from import_table import schema_module  # tools/

#: The node table of cpp/src/import/schema_table.inc, as Python (tools/import_table.py finds it).
schema = schema_module()


def _mlp() -> tuple[GraphBuilder, str]:
    b = GraphBuilder((8,))
    return b, b.relu(b.gemm("x", 4, name="fc"))


def test_schema_table_matches_onnx() -> None:
    """Every op of the table has the rows onnx's operator schemas give (tools/onnx_schema_table.py)."""
    expected = onnx_schema_table.table(sorted({*schema.NODES, *onnx_schema_table.EXTRA_OPS}))
    actual = {op: [tuple(row) for row in rows] for op, rows in schema.NODES.items()}
    assert actual == {op: [tuple(row) for row in rows] for op, rows in expected.items()}


def test_every_importer_op_is_in_the_table() -> None:
    assert {*_core._import_supported_ops(), *onnx_schema_table.EXTRA_OPS} <= set(schema.NODES)


@pytest.mark.parametrize(
    ("op", "extra_inputs", "extra_outputs", "pattern"),
    [
        ("Relu", 1, 0, "2 inputs, expected 1"),
        ("Relu", 0, 1, "2 outputs, expected 1"),
        ("Gemm", 2, 0, "5 inputs, expected 2 to 3"),
        ("Conv", 0, 2, "3 outputs, expected 1"),
    ],
)
def test_arity(op: str, extra_inputs: int, extra_outputs: int, pattern: str) -> None:
    b = GraphBuilder((2, 6, 6) if op == "Conv" else (8,))
    out = (
        b.conv("x", 3, name="n")
        if op == "Conv"
        else b.gemm("x", 4, name="n")
        if op == "Gemm"
        else b.node("Relu", ["x"], name="n")
    )
    node = b.nodes[-1]
    for k in range(extra_inputs):
        node.input.append(b.weight((8,)) if k == 0 else "x")
    for k in range(extra_outputs):
        node.output.append(f"extra{k}")
    raises_on_load(b.build(out), ModelLoadError, f"{op} 'n'", pattern)


def test_gemm_turned_into_relu_is_refused() -> None:
    """The reproducer: a Gemm's op_type changed to Relu loaded as a ReLU with the wrong output."""
    b, out = _mlp()
    b.nodes[0].op_type = "Relu"
    del b.nodes[0].attribute[:]
    raises_on_load(b.build(out), ModelLoadError, "Relu 'fc'", "3 inputs, expected 1")


def test_ints_given_as_floats() -> None:
    b = GraphBuilder((2, 6, 6))
    out = b.conv("x", 3, name="c")
    conv = b.nodes[-1]
    conv.attribute.append(helper.make_attribute("strides", [1.5, 1.0]))
    raises_on_load(b.build(out), ModelLoadError, "Conv 'c'", "'strides' has type FLOATS, expected INTS")


def test_ints_given_as_int() -> None:
    b = GraphBuilder((2, 6, 6))
    out = b.node("MaxPool", ["x"], name="p", kernel_shape=2)
    raises_on_load(b.build(out), ModelLoadError, "MaxPool 'p'", "'kernel_shape' has type INT, expected INTS")


def test_unknown_attribute() -> None:
    b = GraphBuilder((8,))
    out = b.node("Relu", ["x"], name="r", alpha=0.5)
    raises_on_load(b.build(out), ModelLoadError, "Relu 'r'", "unknown attribute 'alpha'")


def test_repeated_attribute() -> None:
    b = GraphBuilder((8,))
    out = b.node("Flatten", ["x"], name="f", axis=1)
    b.nodes[-1].attribute.append(helper.make_attribute("axis", 1))
    raises_on_load(b.build(out), ModelLoadError, "Flatten 'f'", "'axis' is given twice")


def test_allowlisted_legacy_attribute_at_its_harmless_value() -> None:
    b = GraphBuilder((3, 4, 4), opset=13)
    out = b.batchnorm(b.conv("x", 3), 3)
    b.nodes[-1].attribute.append(helper.make_attribute("spatial", 1))
    dtd.load(b.build(out))  # ignored at 1: what the op does anyway
    b.nodes[-1].attribute[-1].i = 0
    raises_on_load(b.build(out), ModelLoadError, "unknown attribute 'spatial'")


def test_auto_pad_with_explicit_pads() -> None:
    b = GraphBuilder((2, 6, 6))
    out = b.conv("x", 3, name="c", auto_pad="SAME_UPPER", pads=[1, 1, 1, 1])
    raises_on_load(
        b.build(out), ModelLoadError, "Conv 'c'", "auto_pad SAME_UPPER together with explicit pads"
    )
    b = GraphBuilder((2, 6, 6))
    dtd.load(b.build(b.conv("x", 3, name="c", auto_pad="SAME_UPPER", pads=[0, 0, 0, 0])))


@pytest.mark.parametrize(
    "weight",
    [
        np.ones((3, 2, 3, 3), np.int64),
        np.ones((3, 2, 3, 3), np.int8),
        np.ones((3, 2, 3, 3), np.complex64),
        np.ones((3, 2, 3, 3), np.bool_),
    ],
    ids=["int64", "int8", "complex64", "bool"],
)
def test_weight_dtypes_refused(weight: np.ndarray) -> None:
    b = GraphBuilder((2, 6, 6))
    out = b.node("Conv", ["x", b.const(weight)], name="c", kernel_shape=[3, 3])
    raises_on_load(
        b.build(out), ModelLoadError, "Conv 'c'", f"element type {weight.dtype.name}", "float16, bfloat16"
    )


def test_float8_and_string_weights_refused() -> None:
    b = GraphBuilder((8,))
    fp8 = helper.make_tensor("w8", TensorProto.FLOAT8E4M3FN, [4, 8], [0.5] * 32)
    b.initializers.append(fp8)
    raises_on_load(
        b.build(b.node("Gemm", ["x", "w8"], name="g", transB=1)), ModelLoadError, "Gemm 'g'", "float8"
    )
    b = GraphBuilder((8,))
    b.initializers.append(helper.make_tensor("ws", TensorProto.STRING, [4, 8], [b"a"] * 32))
    raises_on_load(b.build(b.node("Gemm", ["x", "ws"], name="g", transB=1)), ModelLoadError, "Gemm 'g'")


def test_float16_and_bfloat16_weights_exact() -> None:
    for dtype in (TensorProto.FLOAT16, TensorProto.BFLOAT16):
        b = GraphBuilder((8,))
        values = (np.arange(32) / 8 - 2).tolist()
        b.initializers.append(helper.make_tensor("w", dtype, [4, 8], values))
        model = dtd.load(b.build(b.node("Gemm", ["x", "w"], name="g", transB=1)))
        x = np.eye(8, dtype=np.float64)
        np.testing.assert_array_equal(model.forward(x), np.asarray(values).reshape(4, 8).T)


def test_negative_weight_dims() -> None:
    b = GraphBuilder((8,))
    w = numpy_helper.from_array(np.ones(32, np.float32), "w")
    del w.dims[:]
    w.dims.extend([-1, 8])
    b.initializers.append(w)
    raises_on_load(
        b.build(b.node("Gemm", ["x", "w"], name="g", transB=1)), ModelLoadError, "'w'", r"\[-1, 8\]"
    )


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pool_pads_not_smaller_than_kernel(op: str) -> None:
    b = GraphBuilder((2, 6, 6))
    out = b.node(op, ["x"], name="p", kernel_shape=[2, 2], pads=[2, 0, 0, 0])
    raises_on_load(b.build(out), ModelLoadError, f"{op} 'p'", "must be smaller than the kernel")


def test_constant_node_with_a_corrupt_tensor() -> None:
    b = GraphBuilder((8,))
    bad = helper.make_tensor("v", TensorProto.FLOAT, [4, 8], [0.0] * 32)
    del bad.float_data[:]
    bad.raw_data = b"\x00" * 7  # not 32 floats
    b.nodes.append(helper.make_node("Constant", [], ["w"], name="k", value=bad))
    out = b.node("Gemm", ["x", "w"], name="g", transB=1)
    raises_on_load(b.build(out), ModelLoadError, "Constant 'k'")


def test_unknown_input_elem_type() -> None:
    b = GraphBuilder((8,))
    model = b.build(b.relu("x"))
    model.graph.input[0].type.tensor_type.elem_type = 99
    raises_on_load(model, ModelLoadError, "99")


def test_broadcast_error_in_folding_is_dtd_error() -> None:
    b = GraphBuilder((4,))
    s = b.node(
        "Add", [b.const(np.array([1, 2], np.int64)), b.const(np.array([1, 2, 3], np.int64))], name="bad"
    )
    out = b.node("Reshape", ["x", s], name="r")
    raises_on_load(b.build(out), ModelLoadError, "Add 'bad'", "broadcast")


def _internal_failure(case: str) -> tuple[onnx.ModelProto, str]:
    """A model whose node ``n`` makes a converter or the import-time evaluation index, allocate or read outside
    what its operands allow; returns the model and the op type."""
    b = GraphBuilder((3, 4))
    i64 = lambda *v: b.const(np.array(v, np.int64))  # noqa: E731
    data, op = b.relu("x"), case.split("_")[0]
    inputs: dict[str, tuple[list[str], dict[str, object]]] = {
        "Transpose_perm_out_of_range": ([data], {"perm": [0, 1, 5]}),
        "Transpose_perm_repeated": ([data], {"perm": [0, 2, 2]}),
        "Transpose_perm_short": ([data], {"perm": [0, 1]}),
        "Gather_index_out_of_range": ([data, i64(7)], {"axis": 2}),
        "Gather_axis_out_of_range": ([data, i64(0)], {"axis": 5}),
        "Gather_folded_index_out_of_range": ([i64(1, 2, 3), i64(5)], {"axis": 0}),
        "Slice_axis_out_of_range": ([data, i64(0), i64(1), i64(7)], {}),
        "Slice_folded_starts_ends_differ": ([i64(1, 2, 3), i64(0, 1), i64(2)], {}),
        "Split_sizes_beyond_the_axis": ([data, i64(2, 5)], {"axis": 2}),
        "Squeeze_axis_of_extent_4": ([data, i64(2)], {}),
        "Concat_axis_out_of_range": ([data, data], {"axis": 9}),
        "Flatten_axis_out_of_range": ([data], {"axis": 7}),
        "Softmax_axis_out_of_range": ([data], {"axis": 5}),
        "Reshape_target_of_another_size": ([data, i64(0, 7)], {}),
        "Reshape_huge_target": ([data, i64(0, 2**40, 2**40)], {}),
        "Expand_huge": ([b.const(np.ones((1, 1), np.float32)), i64(2**31, 2**31)], {}),
        "Tile_huge": ([b.const(np.ones((2, 2), np.float32)), i64(2**40, 2**40)], {}),
        "ConstantOfShape_huge": ([i64(2**40, 2**40)], {}),
        "Range_huge": ([i64(0), i64(2**62), i64(1)], {}),
    }
    args, attrs = inputs[case]
    out = b.node(op, args, name="n", **attrs)
    if op in ("Gather", "Slice", "Range", "ConstantOfShape", "Expand", "Tile") and not args[0].startswith(
        "relu"
    ):
        # folded: the value becomes a Reshape target or a bias, so the import must evaluate it
        out = (
            b.node("Reshape", [data, b.node("Concat", [i64(0), out], axis=0)])
            if op in ("Gather", "Slice", "Range")
            else b.node("Add", [data, out])
        )
    return b.build(out), op


@pytest.mark.parametrize(
    "case",
    [
        "Transpose_perm_out_of_range",
        "Transpose_perm_repeated",
        "Transpose_perm_short",
        "Gather_index_out_of_range",
        "Gather_axis_out_of_range",
        "Gather_folded_index_out_of_range",
        "Slice_axis_out_of_range",
        "Slice_folded_starts_ends_differ",
        "Split_sizes_beyond_the_axis",
        "Squeeze_axis_of_extent_4",
        "Concat_axis_out_of_range",
        "Flatten_axis_out_of_range",
        "Softmax_axis_out_of_range",
        "Reshape_target_of_another_size",
        "Reshape_huge_target",
        "Expand_huge",
        "Tile_huge",
        "ConstantOfShape_huge",
        "Range_huge",
    ],
)
def test_internal_failures_in_converters_become_dtd_errors(case: str) -> None:
    """Whatever a converter or the import-time evaluation hits (an index or axis outside its operand, a size that
    does not fit, an allocation too large) reaches the caller as a ModelLoadError naming the node, never as an
    IndexError, MemoryError or a crash."""
    model, op = _internal_failure(case)
    raises_on_load(model, ModelLoadError, rf"(^|\b{op} |layer )'n'")


@pytest.mark.parametrize(
    "kind", [onnx.AttributeProto.UNDEFINED, onnx.AttributeProto.GRAPH, onnx.AttributeProto.TENSOR]
)
def test_malformed_attribute_types_become_dtd_errors(kind: int) -> None:
    """An attribute whose type field says it holds what its op does not read there (nothing, a graph, a tensor)."""
    b = GraphBuilder((3, 4))
    out = b.node("Gather", [b.relu("x"), b.const(np.array([1], np.int64))], name="n", axis=1)
    model = b.build(out)
    attribute = model.graph.node[-1].attribute[0]
    attribute.type = kind
    raises_on_load(model, ModelLoadError, "Gather 'n'", "axis")


def test_onnx_checker_agrees_on_the_refused_models() -> None:
    """Sanity: the models refused above for arity/attributes are invalid for onnx.checker too."""
    b = GraphBuilder((8,))
    model = b.build(b.node("Relu", ["x"], name="r", alpha=0.5))
    with pytest.raises(onnx.checker.ValidationError):
        onnx.checker.check_model(model, full_check=True)


def test_window_extent_beyond_int32_is_refused_before_onnx_shape_inference() -> None:
    # Found by tools/fuzz.py: kernel_shape [3, 2^32] made onnx's shape inference abort the process (SIGABRT).
    b = GraphBuilder((3, 8, 8))
    w = b.weight((4, 3, 3, 3))
    model = b.build(b.node("Conv", ["x", w], name="c", kernel_shape=[3, 2**32]))
    raises_on_load(model, UnsupportedModelError, "Conv 'c'", "kernel_shape", "2\\^31")


def test_declared_output_type_must_match_the_data() -> None:
    # Found by tools/fuzz.py: an output declared complex128 (or an unknown type code) was accepted.
    b = GraphBuilder((6,))
    model = b.build(b.node("Gemm", ["x", b.weight((3, 6))], name="g", transB=1))
    model.graph.output[0].type.tensor_type.elem_type = TensorProto.COMPLEX128
    raises_on_load(model, ModelLoadError, "declared with element type COMPLEX128", "FLOAT")


def test_ir_version_newer_than_onnx_knows() -> None:
    b = GraphBuilder((6,))
    model = b.build(b.node("Gemm", ["x", b.weight((3, 6))], name="g", transB=1))
    model.ir_version = 99
    raises_on_load(model, UnsupportedModelError, "IR version 99")


def test_declared_shape_contradicting_the_graph() -> None:
    # Found by tools/fuzz.py: a declared shape whose dims contradict what the graph computes was accepted (onnxruntime
    # and onnx.checker refuse it: "Dimension mismatch in unification").
    b = GraphBuilder((6,))
    y = b.gemm(b.relu(b.node("Gemm", ["x", b.weight((5, 6))], name="g", transB=1)), 3)
    model = b.build(y)
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info(y, TensorProto.FLOAT, ["N", 7]))
    raises_on_load(model, ModelLoadError, f"value '{y}'", r"\['N', 7\]", r"\['N', 3\]")
    # a declaration of another rank is ignored, as onnxruntime ignores it
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info(y, TensorProto.FLOAT, ["N"]))
    dtd.load(model)


@pytest.mark.parametrize("value", [2, -1, 2**62])
def test_flag_attributes_are_zero_or_one(value: int) -> None:
    # Found by tools/fuzz.py: Gemm transB = 2^62 was read as true by dtd and differently by onnx's checker.
    b = GraphBuilder((6,))
    model = b.build(b.node("Gemm", ["x", b.weight((3, 6))], name="g", transB=value))
    raises_on_load(model, ModelLoadError, "Gemm 'g'", "transB", "flag")


def _i64(*values: int, shape: tuple[int, ...] | None = None) -> np.ndarray:
    a = np.array(values, dtype=np.int64)
    return a if shape is None else a.reshape(shape)


def _constant_input_case(case: str) -> onnx.ModelProto:
    b = GraphBuilder((4, 6), opset=20)
    x = b.relu("x")
    if case == "squeeze_scalar_axes":
        y = b.node("Squeeze", [b.node("Unsqueeze", [x, b.const(_i64(3))]), b.const(np.int64(3))])
    elif case == "reduce_axes_2d":
        y = b.node("ReduceMean", [x, b.const(_i64(2, shape=(1, 1)))], keepdims=1)
    elif case == "slice_starts_2d":
        s = [b.const(_i64(0, shape=(1, 1))), b.const(_i64(2, shape=(1, 1))), b.const(_i64(2, shape=(1, 1)))]
        y = b.node("Slice", [x, *s])
    elif case == "reshape_shape_2d":
        y = b.node("Reshape", [x, b.const(_i64(0, 24, shape=(1, 2)))])
    elif case == "pad_pads_2d":
        y = b.node("Pad", [x, b.const(_i64(0, 0, 1, 0, 0, 1, shape=(1, 6)))])
    elif case == "clip_min_vector":
        y = b.node("Clip", ["x", b.const(np.array([0.0, 1.0], np.float32)), b.const(np.float32(6.0))])
    else:
        raise AssertionError(case)
    return b.build(y)


@pytest.mark.parametrize(
    "case",
    ["squeeze_scalar_axes", "reduce_axes_2d", "slice_starts_2d", "reshape_shape_2d", "clip_min_vector"],
)
def test_constant_inputs_of_the_wrong_shape(case: str) -> None:
    # dtd reads these inputs flattened; onnxruntime refuses them (a Squeeze axes scalar, [1, 1] axes, a 2-D shape).
    raises_on_load(
        _constant_input_case(case), ModelLoadError, r"input [12] '.*' must be (a 1-D tensor|a scalar)"
    )


def test_constant_inputs_in_the_forms_onnxruntime_accepts() -> None:
    b = GraphBuilder((4, 6), opset=20)
    x = b.relu("x")
    y = b.node("Unsqueeze", [x, b.const(np.int64(1))])  # scalar axes: allowed for Unsqueeze
    y = b.node("Squeeze", [y, b.const(_i64(1))])
    y = b.node("Clip", [y, b.const(np.array([0.0], np.float32)), b.const(np.float32(6.0))])  # one-element min
    model = b.build(y)
    x_in = np.random.default_rng(0).standard_normal((2, 4, 6)).astype(np.float32)
    import onnxruntime as ort

    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x_in}
    )
    np.testing.assert_allclose(dtd.load(model).forward(x_in), ref[0], rtol=1e-6, atol=1e-6)


def test_graph_output_without_element_type() -> None:
    b, y = _mlp()
    model = b.build(y)
    model.graph.output[0].type.tensor_type.elem_type = 0
    raises_on_load(model, ModelLoadError, "graph output .* without an element type")
