"""Every way an ONNX import can fail, and the messages that say why."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import dtd
from builders import MAX_OPSET, MIN_OPSET, GraphBuilder, one_node, raises_on_load, run_ort, to_bytes
from dtd import ModelLoadError, UnsupportedModelError, _core


def _conv_model(seed: int = 0, opset: int = 13) -> onnx.ModelProto:
    b = GraphBuilder((2, 6, 6), opset=opset, seed=seed)
    return b.build(b.relu(b.conv("x", 3, name="conv1")))


def test_error_hierarchy() -> None:
    assert issubclass(UnsupportedModelError, ModelLoadError)
    assert issubclass(ModelLoadError, ValueError)


# ---------------------------------------------------------------------------------------------------------
# unreadable sources
# ---------------------------------------------------------------------------------------------------------
def test_missing_file(tmp_path) -> None:
    path = tmp_path / "nope.onnx"
    with pytest.raises(ModelLoadError, match="No such file") as info:
        dtd.load(path)
    assert str(path) in str(info.value)
    assert not isinstance(info.value, UnsupportedModelError)


def test_directory_instead_of_file(tmp_path) -> None:
    with pytest.raises(ModelLoadError, match=re.escape(str(tmp_path))):
        dtd.load(tmp_path)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.97])
def test_truncated_file(tmp_path, fraction: float) -> None:
    data = to_bytes(_conv_model())
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ModelLoadError) as info:
        dtd.load(str(path))
    assert str(path) in str(info.value)


@pytest.mark.parametrize("seed", [0, 1, 2], ids=lambda s: f"seed{s}")
def test_garbage_bytes(seed: int) -> None:
    data = np.random.default_rng(seed).integers(0, 256, 512, dtype=np.uint8).tobytes()
    with pytest.raises(ModelLoadError):
        dtd.load(data)


def test_garbage_file(tmp_path) -> None:
    path = tmp_path / "text.onnx"
    path.write_text("this is not a protobuf\n" * 10)
    with pytest.raises(ModelLoadError, match=re.escape(str(path))):
        dtd.load(path)


def test_empty_bytes() -> None:
    raises_on_load(b"", ModelLoadError, "graph|opset")


def test_wrong_source_type() -> None:
    with pytest.raises(TypeError):
        dtd.load(42)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------
# unsupported ops, opsets, graph shapes
# ---------------------------------------------------------------------------------------------------------
def test_unsupported_op_names_op_node_and_supported_list() -> None:
    b = GraphBuilder((2, 6, 6))
    model = b.build(b.node("Erf", [b.conv("x", 3)], name="squash"))
    message = raises_on_load(model, UnsupportedModelError, "Erf", "'squash'")
    supported = message.split("supported ops:")[1]
    for op in ("Conv", "Gemm", "MatMul", "Relu", "MaxPool", "AveragePool", "BatchNormalization", "Softmax"):
        assert op in supported


def test_unsupported_op_without_node_name() -> None:
    model = one_node("Erf", (4,))
    model.graph.node[0].name = ""
    raises_on_load(model, UnsupportedModelError, "Erf", "Erf_0")


def test_unsupported_op_in_a_file_names_the_file(tmp_path) -> None:
    path = tmp_path / "erf_net.onnx"
    b = GraphBuilder((4,))
    path.write_bytes(b.build(b.node("Erf", [b.gemm("x", 3)], name="erf_4")).SerializeToString())
    raises_on_load(path.read_bytes(), UnsupportedModelError, "Erf", "erf_4")
    with pytest.raises(UnsupportedModelError, match=re.escape(str(path))):
        dtd.load(path)


def test_real_tanh_file_loads(lenet_dir) -> None:
    # the LRP Toolbox's XOR net (Gemm, Tanh, Softmax): Tanh is an activation since the activation kind
    path = lenet_dir / "xor_net_small.onnx"
    model = dtd.load(path)
    assert [layer.kind for layer in model.layers].count("activation") >= 1


@pytest.mark.parametrize("opset", [1, 5, MAX_OPSET + 1], ids=lambda o: f"opset{o}")
def test_unsupported_opset(opset: int) -> None:
    model = one_node("Relu", (3,), opset=opset)
    raises_on_load(model, UnsupportedModelError, f"opset {opset}", f"{MIN_OPSET}..{MAX_OPSET}")


def test_custom_domain() -> None:
    model = one_node("Relu", (3,))
    model.graph.node[0].domain = "com.example"
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    raises_on_load(model, UnsupportedModelError, "com.example")


def test_several_data_inputs() -> None:
    model = one_node("Relu", (3,))
    model.graph.input.append(helper.make_tensor_value_info("x2", TensorProto.FLOAT, ["N", 3]))
    raises_on_load(model, UnsupportedModelError, "2 data inputs", "x2")


def test_several_outputs() -> None:
    b = GraphBuilder((3,))
    h = b.relu("x")
    model = b.build(b.relu(h))
    model.graph.output.append(helper.make_tensor_value_info(h, TensorProto.FLOAT, None))
    raises_on_load(model, UnsupportedModelError, "2 outputs")


def test_dynamic_sample_dimension() -> None:
    model = one_node("Relu", (3, 4))
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "W"
    raises_on_load(model, UnsupportedModelError, "only the batch axis")


def test_integer_input() -> None:
    model = one_node("Relu", (3,))
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.INT64
    raises_on_load(model, UnsupportedModelError, "INT64")


def test_model_without_layers() -> None:
    model = one_node("Identity", (3,))
    raises_on_load(model, ModelLoadError, "no layer")


# ---------------------------------------------------------------------------------------------------------
# inconsistent graphs
# ---------------------------------------------------------------------------------------------------------
def test_missing_initializer() -> None:
    model = _conv_model()
    weight_name = model.graph.node[0].input[1]
    del model.graph.initializer[0]
    raises_on_load(model, ModelLoadError, "conv1", re.escape(weight_name), "initializer")


def test_cycle() -> None:
    b = GraphBuilder((3,))
    b.nodes.append(helper.make_node("Add", ["x", "b_out"], ["a_out"], name="a"))
    b.nodes.append(helper.make_node("Relu", ["a_out"], ["b_out"], name="b"))
    model = b.build("b_out")
    raises_on_load(model, ModelLoadError, "cycle", "'a'", "'b'")


def test_value_produced_twice() -> None:
    b = GraphBuilder((3,))
    b.nodes.append(helper.make_node("Relu", ["x"], ["h"], name="r1"))
    b.nodes.append(helper.make_node("Relu", ["x"], ["h"], name="r2"))
    raises_on_load(b.build("h"), ModelLoadError, "produced twice", "'h'")


def test_conv_bias_of_wrong_length() -> None:
    b = GraphBuilder((2, 6, 6))
    model = b.build(b.node("Conv", ["x", b.weight((3, 2, 3, 3)), b.weight((4,))], name="c1"))
    raises_on_load(model, ModelLoadError, "c1", r"\(4,\)", r"\(3,\)")


def test_conv_weight_with_wrong_input_channels() -> None:
    b = GraphBuilder((2, 6, 6))
    model = b.build(b.node("Conv", ["x", b.weight((3, 5, 3, 3))], name="c1"))
    raises_on_load(model, ModelLoadError, "c1", "5", "2")


def test_conv_group_not_dividing_channels() -> None:
    b = GraphBuilder((4, 6, 6))
    model = b.build(b.node("Conv", ["x", b.weight((3, 2, 3, 3))], group=2, name="c1"))
    raises_on_load(model, ModelLoadError, "c1", "group")


def test_conv_kernel_shape_contradicts_weight() -> None:
    b = GraphBuilder((2, 6, 6))
    model = b.build(b.node("Conv", ["x", b.weight((3, 2, 3, 3))], kernel_shape=[2, 2], name="c1"))
    raises_on_load(model, ModelLoadError, "c1", "kernel_shape")


def test_gemm_weight_of_wrong_shape() -> None:
    b = GraphBuilder((5,))
    model = b.build(b.node("Gemm", ["x", b.weight((3, 4))], transB=1, name="fc"))
    raises_on_load(model, ModelLoadError, "fc", "4", "5")


def test_gemm_bias_of_wrong_shape() -> None:
    b = GraphBuilder((4,))
    model = b.build(b.node("Gemm", ["x", b.weight((3, 4)), b.weight((2,))], transB=1, name="fc"))
    raises_on_load(model, ModelLoadError, "fc", "bias")


def test_impossible_reshape_is_a_load_error() -> None:
    b = GraphBuilder((3, 4))
    model = b.build(b.node("Reshape", [b.relu("x"), b.const(np.array([0, 5], dtype=np.int64))], name="rs"))
    with pytest.raises(ModelLoadError, match="rs"):
        dtd.load(model)


# ---------------------------------------------------------------------------------------------------------
# unsupported uses of supported ops
# ---------------------------------------------------------------------------------------------------------
def test_softmax_not_at_output() -> None:
    b = GraphBuilder((5,))
    model = b.build(b.gemm(b.node("Softmax", [b.gemm("x", 4)], name="sm"), 3))
    raises_on_load(model, UnsupportedModelError, "Softmax", "'sm'", "last")


def test_logsoftmax_not_at_output() -> None:
    b = GraphBuilder((5,))
    model = b.build(b.relu(b.node("LogSoftmax", ["x"], name="lsm")))
    raises_on_load(model, UnsupportedModelError, "'lsm'")


def test_softmax_opset11_over_several_axes() -> None:
    model = one_node("Softmax", (3, 4), opset=11, axis=1)
    raises_on_load(model, UnsupportedModelError, "axis")


def test_gemm_trans_a() -> None:
    b = GraphBuilder((4,))
    model = b.build(b.node("Gemm", ["x", b.weight((4, 3))], transA=1, name="g"))
    raises_on_load(model, UnsupportedModelError, "transA", "'g'")


def test_matmul_of_two_data_tensors() -> None:
    b = GraphBuilder((4,))
    raises_on_load(b.build(b.node("MatMul", ["x", b.relu("x")], name="mm")), UnsupportedModelError, "'mm'")


def test_conv_over_four_spatial_axes() -> None:
    b = GraphBuilder((2, 4, 4, 4, 4))
    model = b.build(b.node("Conv", ["x", b.weight((3, 2, 2, 2, 2, 2))], name="cx"))
    raises_on_load(model, UnsupportedModelError, "1-D, 2-D and 3-D", "'cx'")


def test_maxpool_storage_order_without_indices_is_ignored() -> None:
    """storage_order only orders the Indices output; without it the pooled values are the same."""
    model = one_node("MaxPool", (2, 6, 6), kernel_shape=[2, 2], storage_order=1)
    x = np.random.default_rng(0).standard_normal((3, 2, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(dtd.load(model).forward(x), run_ort(model, x), rtol=1e-6)


def test_maxpool_indices_used() -> None:
    b = GraphBuilder((2, 6, 6))
    b.nodes.append(helper.make_node("MaxPool", ["x"], ["p", "idx"], kernel_shape=[2, 2], name="mp"))
    b.nodes.append(helper.make_node("Cast", ["idx"], ["idxf"], to=TensorProto.FLOAT, name="cast"))
    b.nodes.append(helper.make_node("Add", ["p", "idxf"], ["y"], name="add"))
    raises_on_load(b.build("y"), UnsupportedModelError, "Indices", "'mp'")


def test_avgpool_dilations_before_opset19() -> None:
    model = one_node("AveragePool", (2, 6, 6), opset=18, kernel_shape=[2, 2], dilations=[2, 2])
    raises_on_load(model, ModelLoadError, "dilations", "opset 19")


def test_flatten_axis0() -> None:
    raises_on_load(one_node("Flatten", (2, 3), axis=0), UnsupportedModelError, "axis")


def test_reshape_allowzero() -> None:
    model = one_node("Reshape", (2, 3), opset=14, consts=[np.array([0, -1], dtype=np.int64)], allowzero=1)
    raises_on_load(model, UnsupportedModelError, "allowzero")


def test_concat_on_batch_axis() -> None:
    b = GraphBuilder((3,))
    raises_on_load(b.build(b.node("Concat", ["x", b.relu("x")], axis=0)), UnsupportedModelError, "batch")


def test_mul_of_two_data_tensors() -> None:
    b = GraphBuilder((3,))
    raises_on_load(b.build(b.node("Mul", ["x", b.relu("x")], name="sq")), UnsupportedModelError, "'sq'")


def test_clip_with_a_computed_bound() -> None:
    b = GraphBuilder((3,), opset=13)
    model = b.build(b.node("Clip", ["x", b.relu("x")], name="clip"))
    raises_on_load(model, UnsupportedModelError, "Clip 'clip'", "min", "constant")


def test_dropout_in_training_mode() -> None:
    b = GraphBuilder((3,), opset=13)
    ratio = b.const(np.array(0.5, dtype=np.float32))
    training = b.const(np.array(True))
    model = b.build(b.node("Dropout", [b.relu("x"), ratio, training], name="do"))
    raises_on_load(model, UnsupportedModelError, "training", "'do'")


# ---------------------------------------------------------------------------------------------------------
# BatchNormalization that cannot be converted (anywhere else it is folded or an affine layer: test_affine.py)
# ---------------------------------------------------------------------------------------------------------
def test_batchnorm_training_mode() -> None:
    b = GraphBuilder((2, 5, 5), opset=15)
    bn = b.batchnorm(b.conv("x", 3), 3)
    b.nodes[-1].name = "bn3"
    b.nodes[-1].attribute.append(helper.make_attribute("training_mode", 1))
    raises_on_load(b.build(bn), ModelLoadError, "BatchNormalization 'bn3'", "training")


def test_batchnorm_parameters_of_wrong_length() -> None:
    b = GraphBuilder((2, 5, 5))
    bn = b.batchnorm(b.conv("x", 3), 4)
    b.nodes[-1].name = "bn4"
    raises_on_load(b.build(bn), ModelLoadError, "BatchNormalization 'bn4'", "4", "3")


# ---------------------------------------------------------------------------------------------------------
# wrong inputs to forward
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape",
    [(3, 2, 6, 5), (3, 6, 6, 2), (2, 6, 6), (1, 2, 6, 6, 1), (72,)],
    ids=lambda s: "x".join(map(str, s)),
)
def test_forward_wrong_shape(shape: tuple[int, ...]) -> None:
    net = dtd.load(_conv_model())
    with pytest.raises(ValueError, match=r"2, 6, 6"):
        net.forward(np.zeros(shape, dtype=np.float32))


@pytest.mark.parametrize("dtype", [np.int32, np.complex128, np.bool_, object])
def test_forward_wrong_dtype(dtype: type) -> None:
    net = dtd.load(_conv_model())
    with pytest.raises((TypeError, ValueError)):
        net.forward(np.zeros((1, 2, 6, 6), dtype=dtype))


# ---------------------------------------------------------------------------------------------------------
# the ops dtd converts
# ---------------------------------------------------------------------------------------------------------
def test_supported_ops_are_listed_and_load() -> None:
    ops = _core._import_supported_ops()
    assert ops == sorted(ops)
    core_ops = ("Conv", "Gemm", "MatMul", "BatchNormalization", "Dropout", "Identity", "Flatten", "Reshape")
    assert set(core_ops) <= set(ops)
    # all of them at opset 13, in one model
    b = GraphBuilder((2, 6, 6), seed=4)
    h = b.node("Dropout", [b.batchnorm(b.conv("x", 3, name="conv"), 3)])
    h = b.node(
        "Reshape", [b.node("Flatten", [b.node("Identity", [h])]), b.const(np.array([0, 3, 16], np.int64))]
    )
    h = b.node("MatMul", [h, b.weight((16, 5))])
    model = b.build(b.gemm(b.node("Reshape", [h, b.const(np.array([0, 15], np.int64))]), 4))
    assert sorted({node.op_type for node in model.graph.node}) == sorted(core_ops)
    x = np.random.default_rng(0).standard_normal((2, 2, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(dtd.load(model).forward(x), run_ort(model, x), rtol=1e-5, atol=1e-5)
    # Erf has no converter: only the erf form of GELU reads it
    assert "Erf" not in ops
    raises_on_load(one_node("Erf", (3,)), UnsupportedModelError, "Erf")


def test_clip_bounds_are_attributes_until_opset_10_and_inputs_from_11() -> None:
    x = np.random.default_rng(1).standard_normal((3, 6)).astype(np.float32) * 2
    attributes = one_node("Clip", (6,), opset=10, min=-1.0, max=0.5)
    inputs = one_node("Clip", (6,), consts=[np.float32(-1.0), np.float32(0.5)], opset=11)
    for model in (attributes, inputs):
        np.testing.assert_allclose(dtd.load(model).forward(x), run_ort(model, x), rtol=1e-6)
    np.testing.assert_array_equal(dtd.load(attributes).forward(x), dtd.load(inputs).forward(x))
    raises_on_load(
        one_node("Clip", (6,), opset=11, min=-1.0, max=0.5),
        ModelLoadError,
        "Clip",
        "unknown attribute '(min|max)'",
    )
    raises_on_load(
        one_node("Clip", (6,), consts=[np.float32(-1.0), np.float32(0.5)], opset=10),
        ModelLoadError,
        "Clip",
        "3 inputs, expected 1",
    )
