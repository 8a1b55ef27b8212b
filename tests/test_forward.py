"""Forward pass of imported ONNX models: float32 against onnxruntime, float64 against a NumPy reference.

Every op and attribute combination the importer supports is built here as a small graph (tests/builders.py)
and run for batch sizes 1 and 7.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
import pytest

import dtd
from builders import GraphBuilder, one_node, random_input, run_numpy, run_ort, to_bytes

Case = Callable[[int], tuple[onnx.ModelProto, tuple[int, ...]]]
CASES: dict[str, Case] = {}
SEEDS = [0, 1]
OPSETS = list(range(11, 22))


def case(name: str) -> Callable[[Case], Case]:
    """Register a model-building case under ``name``."""

    def decorator(fn: Case) -> Case:
        CASES[name] = fn
        return fn

    return decorator


def check_forward(model: onnx.ModelProto, sample_shape: tuple[int, ...], seed: int, batches=(1, 7)) -> None:
    """Compare dtd's forward with onnxruntime (float32) and the NumPy reference (float64)."""
    net = dtd.load(to_bytes(model))
    for batch in batches:
        x = random_input((batch, *sample_shape), seed + 100 * batch)
        expected = run_ort(model, x)
        got = net.forward(x)
        assert got.dtype == np.float32
        assert got.shape == expected.shape
        scale = float(np.abs(expected).max()) or 1.0
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6 * scale)

        x64 = x.astype(np.float64)
        reference = run_numpy(model, x64).reshape(expected.shape)
        got64 = net.forward(x64)
        assert got64.dtype == np.float64
        assert got64.shape == expected.shape
        scale64 = float(np.abs(reference).max()) or 1.0
        np.testing.assert_allclose(got64, reference, rtol=1e-12, atol=1e-12 * scale64)


# ---------------------------------------------------------------------------------------------------------
# dense: Gemm and MatMul + Add
# ---------------------------------------------------------------------------------------------------------
@case("gemm")
def _gemm(seed: int):
    b = GraphBuilder((13,), seed=seed)
    return b.build(b.gemm("x", 5)), (13,)


@case("gemm_alpha_beta_transB0")
def _gemm_ab(seed: int):
    b = GraphBuilder((9,), seed=seed)
    return b.build(b.gemm("x", 4, trans_b=0, alpha=0.7, beta=-1.3)), (9,)


@case("gemm_alpha_transB1_no_bias")
def _gemm_nobias(seed: int):
    b = GraphBuilder((6,), seed=seed)
    return b.build(b.gemm("x", 3, bias=False, alpha=2.5)), (6,)


@case("gemm_bias_row_and_scalar")
def _gemm_bias_shapes(seed: int):
    b = GraphBuilder((7,), seed=seed)
    w1 = b.weight((4, 7))
    c1 = b.const(b.rng.standard_normal((1, 4)).astype(np.float32))
    h = b.relu(b.node("Gemm", ["x", w1, c1], transB=1, beta=0.5))
    w2 = b.weight((4, 3))
    c2 = b.const(np.array([0.25], dtype=np.float32))
    return b.build(b.node("Gemm", [h, w2, c2])), (7,)


@case("matmul_add")
def _matmul_add(seed: int):
    b = GraphBuilder((10,), seed=seed)
    h = b.node("MatMul", ["x", b.weight((10, 6))])
    h = b.relu(b.node("Add", [h, b.weight((6,), 0.5)]))
    h = b.node("MatMul", [h, b.weight((6, 4))])
    return b.build(b.node("Add", [b.weight((4,), 0.5), h])), (10,)


@case("matmul_alone")
def _matmul(seed: int):
    b = GraphBuilder((8,), seed=seed)
    return b.build(b.node("MatMul", ["x", b.weight((8, 3))])), (8,)


@case("gemm_sub_div_constants")
def _gemm_affine(seed: int):
    b = GraphBuilder((5,), seed=seed)
    h = b.gemm("x", 4)
    h = b.node("Sub", [h, b.const(np.array([0.1, -0.2, 0.3, 0.0], dtype=np.float32))])
    h = b.node("Div", [h, b.const(np.array(2.0, dtype=np.float32))])
    return b.build(h), (5,)


# ---------------------------------------------------------------------------------------------------------
# conv
# ---------------------------------------------------------------------------------------------------------
CONV_VARIANTS: dict[str, dict] = {
    "basic": dict(c_in=3, size=(9, 9), kernel=(3, 3), attrs=dict(pads=[1, 1, 1, 1])),
    "strides": dict(c_in=2, size=(11, 10), kernel=(3, 2), attrs=dict(strides=[2, 3])),
    "asym_pads": dict(c_in=2, size=(7, 8), kernel=(3, 3), attrs=dict(pads=[0, 1, 2, 1])),
    "same_upper": dict(c_in=3, size=(8, 7), kernel=(4, 3), attrs=dict(auto_pad="SAME_UPPER", strides=[2, 2])),
    "same_lower": dict(c_in=3, size=(8, 7), kernel=(4, 3), attrs=dict(auto_pad="SAME_LOWER", strides=[2, 2])),
    "same_upper_stride1": dict(c_in=2, size=(6, 5), kernel=(2, 2), attrs=dict(auto_pad="SAME_UPPER")),
    "valid": dict(c_in=2, size=(9, 6), kernel=(3, 2), attrs=dict(auto_pad="VALID", strides=[2, 1])),
    "dilations": dict(c_in=2, size=(12, 11), kernel=(3, 3), attrs=dict(dilations=[2, 3], pads=[2, 1, 1, 3])),
    "group2": dict(c_in=4, size=(7, 7), kernel=(3, 3), group=2, attrs=dict(pads=[1, 1, 1, 1])),
    "depthwise": dict(
        c_in=5, size=(8, 9), kernel=(3, 3), group=5, attrs=dict(strides=[2, 1], pads=[1, 0, 1, 2])
    ),
    "no_bias": dict(c_in=3, size=(6, 6), kernel=(2, 2), bias=False, attrs=dict()),
    "pointwise": dict(c_in=6, size=(5, 3), kernel=(1, 1), attrs=dict()),
    "kernel_as_large_as_input": dict(c_in=1, size=(5, 4), kernel=(5, 4), attrs=dict()),
}


def _conv_case(variant: str, seed: int, opset: int = 13):
    v = CONV_VARIANTS[variant]
    b = GraphBuilder((v["c_in"], *v["size"]), opset=opset, seed=seed)
    c_out = v["c_in"] * 2 if v.get("group", 1) > 1 else 4
    out = b.conv("x", c_out, v["kernel"], bias=v.get("bias", True), group=v.get("group", 1), **v["attrs"])
    return b.build(out), (v["c_in"], *v["size"])


for _name in CONV_VARIANTS:
    CASES[f"conv_{_name}"] = lambda seed, _v=_name: _conv_case(_v, seed)


@case("conv_relu")
def _conv_relu(seed: int):
    b = GraphBuilder((2, 6, 6), seed=seed)
    return b.build(b.relu(b.conv("x", 3, pads=[1, 1, 1, 1]))), (2, 6, 6)


@case("clip_as_relu")
def _clip(seed: int):
    b = GraphBuilder((3, 4, 4), seed=seed)
    zero = b.const(np.array(0.0, dtype=np.float32))
    return b.build(b.node("Clip", [b.conv("x", 3), zero])), (3, 4, 4)


# ---------------------------------------------------------------------------------------------------------
# pooling
# ---------------------------------------------------------------------------------------------------------
MAXPOOL_VARIANTS: dict[str, dict] = {
    "2x2s2": dict(kernel_shape=[2, 2], strides=[2, 2]),
    "3x3s2p1": dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    "asym_pads": dict(kernel_shape=[3, 2], pads=[0, 1, 2, 0]),
    "dilations": dict(kernel_shape=[2, 3], dilations=[2, 2], strides=[1, 2]),
    "ceil_mode": dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
    "ceil_mode_pads": dict(kernel_shape=[2, 3], strides=[3, 2], pads=[1, 0, 1, 1], ceil_mode=1),
    "same_upper": dict(kernel_shape=[3, 2], strides=[2, 2], auto_pad="SAME_UPPER"),
    "same_lower": dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_LOWER"),
    "valid": dict(kernel_shape=[2, 2], strides=[1, 1], auto_pad="VALID"),
    # the compile-time kernel widths and strides of the planar forward (2/2, 3/2, 3/1), with padded edge columns
    "3x3s1p1": dict(kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1]),
    "2x2s2p1_ceil": dict(kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 0, 1], ceil_mode=1),
    "3x3s2_left_pad": dict(kernel_shape=[1, 3], strides=[1, 2], pads=[0, 2, 0, 0]),
    # windows wider than the input row (8 columns): none lies inside it
    "wide_window": dict(kernel_shape=[2, 9], strides=[1, 1], pads=[0, 1, 0, 1]),
}
AVGPOOL_VARIANTS: dict[str, dict] = {
    "2x2s2": dict(kernel_shape=[2, 2], strides=[2, 2]),
    "pads_exclude": dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=0),
    "pads_include": dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1),
    "asym_pads_include": dict(kernel_shape=[2, 3], strides=[2, 1], pads=[1, 0, 0, 2], count_include_pad=1),
    "ceil_mode": dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
    "ceil_mode_pads_include": dict(
        kernel_shape=[3, 2], strides=[2, 2], pads=[1, 1, 1, 0], ceil_mode=1, count_include_pad=1
    ),
    "ceil_mode_pads_exclude": dict(kernel_shape=[3, 2], strides=[2, 2], pads=[1, 1, 1, 0], ceil_mode=1),
    "same_upper": dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"),
    "same_lower_include": dict(kernel_shape=[2, 2], auto_pad="SAME_LOWER", count_include_pad=1),
}

for _name, _attrs in MAXPOOL_VARIANTS.items():
    CASES[f"maxpool_{_name}"] = lambda seed, _a=_attrs: (one_node("MaxPool", (3, 9, 8), **_a), (3, 9, 8))
for _name, _attrs in AVGPOOL_VARIANTS.items():
    CASES[f"avgpool_{_name}"] = lambda seed, _a=_attrs: (one_node("AveragePool", (2, 9, 8), **_a), (2, 9, 8))


@case("globalavgpool")
def _gap(seed: int):
    return one_node("GlobalAveragePool", (4, 5, 7)), (4, 5, 7)


# ---------------------------------------------------------------------------------------------------------
# shape ops
# ---------------------------------------------------------------------------------------------------------
def _flatten_case(axis: int, seed: int):
    b = GraphBuilder((2, 5, 4), seed=seed)
    return b.build(b.node("Flatten", [b.conv("x", 3, pads=[1, 1, 1, 1])], axis=axis)), (2, 5, 4)


for _axis in (1, 2, 3):
    CASES[f"flatten_axis{_axis}"] = lambda seed, _a=_axis: _flatten_case(_a, seed)


@case("flatten_then_gemm")
def _flatten_gemm(seed: int):
    b = GraphBuilder((2, 4, 3), seed=seed)
    return b.build(b.gemm(b.node("Flatten", [b.relu(b.conv("x", 3, (2, 2)))]), 4)), (2, 4, 3)


@case("reshape_zero_minus1")
def _reshape(seed: int):
    b = GraphBuilder((3, 4, 5), seed=seed)
    h = b.node("Reshape", [b.conv("x", 2, pads=[1, 1, 1, 1]), b.const(np.array([0, -1], dtype=np.int64))])
    return b.build(b.gemm(h, 3)), (3, 4, 5)


@case("reshape_keep_channels")
def _reshape_c(seed: int):
    b = GraphBuilder((3, 4, 6), seed=seed)
    h = b.node("Reshape", ["x", b.const(np.array([0, 0, -1, 3], dtype=np.int64))])
    return b.build(b.conv(h, 2, (3, 2))), (3, 4, 6)


@case("add_residual")
def _residual(seed: int):
    b = GraphBuilder((3, 6, 6), seed=seed)
    h = b.relu(b.conv("x", 4, pads=[1, 1, 1, 1]))
    branch = b.conv(b.relu(b.conv(h, 4, pads=[1, 1, 1, 1])), 4, pads=[1, 1, 1, 1])
    return b.build(b.relu(b.node("Add", [h, branch]))), (3, 6, 6)


@case("sum_three_inputs")
def _sum3(seed: int):
    b = GraphBuilder((2, 5, 5), seed=seed)
    u, v, w = (b.conv("x", 3, pads=[1, 1, 1, 1]) for _ in range(3))
    return b.build(b.node("Sum", [u, v, w])), (2, 5, 5)


@case("concat_channels")
def _concat(seed: int):
    b = GraphBuilder((2, 6, 5), seed=seed)
    u = b.relu(b.conv("x", 3, pads=[1, 1, 1, 1]))
    v = b.relu(b.conv("x", 2, (1, 1)))
    return b.build(b.conv(b.node("Concat", [u, v, "x"], axis=1), 3)), (2, 6, 5)


@case("concat_negative_axis")
def _concat_neg(seed: int):
    b = GraphBuilder((2, 4, 4), seed=seed)
    return b.build(b.node("Concat", [b.conv("x", 3, pads=[1, 1, 1, 1]), "x"], axis=-3)), (2, 4, 4)


# ---------------------------------------------------------------------------------------------------------
# folded and removed ops
# ---------------------------------------------------------------------------------------------------------
@case("conv_bn")
def _conv_bn(seed: int):
    b = GraphBuilder((3, 7, 7), seed=seed)
    h = b.relu(b.batchnorm(b.conv("x", 4, pads=[1, 1, 1, 1]), 4))
    return b.build(b.batchnorm(b.conv(h, 5, bias=False), 5, eps=1e-3)), (3, 7, 7)


@case("gemm_bn")
def _gemm_bn(seed: int):
    b = GraphBuilder((6,), seed=seed)
    h = b.relu(b.batchnorm(b.gemm("x", 5), 5))
    h = b.node("Add", [b.node("MatMul", [h, b.weight((5, 3))]), b.weight((3,))])
    return b.build(b.batchnorm(h, 3)), (6,)


@case("dropout_identity_removed")
def _dropout(seed: int):
    b = GraphBuilder((2, 5, 5), seed=seed)
    h = b.node("Dropout", [b.conv("x", 3)])
    h = b.node("Identity", [b.relu(h)])
    return b.build(b.node("Identity", [b.node("Flatten", [h])])), (2, 5, 5)


@case("mul_scale_folded_into_next_conv")
def _mul_next(seed: int):
    b = GraphBuilder((2, 8, 8), seed=seed)
    h = b.node("AveragePool", [b.relu(b.conv("x", 3))], kernel_shape=[2, 2], strides=[2, 2])
    h = b.node("Mul", [h, b.const(np.array(2.0, dtype=np.float32))])
    per_channel = b.const(np.array([[[0.5]], [[-1.0]], [[3.0]]], dtype=np.float32))
    h = b.node("Mul", [per_channel, h])
    return b.build(b.conv(h, 4, (2, 2), group=1)), (2, 8, 8)


@case("mul_scale_folded_into_previous_conv")
def _mul_prev(seed: int):
    b = GraphBuilder((2, 6, 6), seed=seed)
    h = b.node("Mul", [b.conv("x", 3), b.const(np.array([[[0.5]], [[-2.0]], [[1.5]]], dtype=np.float32))])
    return b.build(b.relu(h)), (2, 6, 6)


@case("constant_node_weights")
def _constant_nodes(seed: int):
    b = GraphBuilder((4,), seed=seed)
    w = b.fresh("w")
    b.nodes.append(
        onnx.helper.make_node(
            "Constant",
            [],
            [w],
            value=onnx.numpy_helper.from_array(b.rng.standard_normal((3, 4)).astype(np.float32)),
        )
    )
    return b.build(b.node("Gemm", ["x", w], transB=1)), (4,)


@case("nodes_out_of_order")
def _unsorted(seed: int):
    b = GraphBuilder((2, 5, 5), seed=seed)
    h = b.relu(b.conv("x", 3, pads=[1, 1, 1, 1]))
    out = b.gemm(b.node("Flatten", [b.node("MaxPool", [h], kernel_shape=[2, 2])]), 3)
    b.nodes.reverse()
    return b.build(out), (2, 5, 5)


@case("identity_on_weights")
def _identity_weights(seed: int):
    # PyTorch exports shared weights through Identity nodes on initializers.
    b = GraphBuilder((2, 5, 5), seed=seed)
    w = b.node("Identity", [b.weight((3, 2, 3, 3))])
    bias = b.node("Identity", [b.weight((3,))])
    return b.build(b.relu(b.node("Conv", ["x", w, bias]))), (2, 5, 5)


@case("initializers_listed_as_inputs")
def _init_inputs(seed: int):
    # IR version 3 style: every initializer is also a graph input.
    b = GraphBuilder((6,), seed=seed)
    model = b.build(b.gemm(b.relu(b.gemm("x", 5)), 3))
    for init in model.graph.initializer:
        model.graph.input.append(
            onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims))
        )
    return model, (6,)


@case("unused_branch_dropped")
def _dead_branch(seed: int):
    b = GraphBuilder((4,), seed=seed)
    h = b.relu(b.gemm("x", 4))
    b.node("Tanh", [b.gemm(h, 2)])  # not on the path to the output: ignored, even though unsupported
    return b.build(b.gemm(h, 3)), (4,)


@case("softmax_output")
def _softmax(seed: int):
    b = GraphBuilder((7,), seed=seed)
    return b.build(b.node("Softmax", [b.gemm(b.relu(b.gemm("x", 6)), 4)])), (7,)


@case("logsoftmax_output")
def _logsoftmax(seed: int):
    b = GraphBuilder((7,), seed=seed)
    return b.build(b.node("LogSoftmax", [b.gemm("x", 4)], axis=1)), (7,)


@case("small_cnn")
def _small_cnn(seed: int):
    b = GraphBuilder((1, 12, 11), seed=seed)
    h = b.relu(b.batchnorm(b.conv("x", 4, pads=[1, 1, 1, 1], bias=False), 4))
    h = b.node("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
    h = b.relu(b.conv(h, 6, strides=[2, 2], pads=[1, 1, 1, 1]))
    h = b.node("Flatten", [b.node("GlobalAveragePool", [h])])
    return b.build(b.gemm(b.node("Dropout", [h]), 3)), (1, 12, 11)


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed{s}")
@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_matches_onnxruntime(name: str, seed: int) -> None:
    model, shape = CASES[name](seed)
    check_forward(model, shape, seed)


# ---------------------------------------------------------------------------------------------------------
# opsets 11..21
# ---------------------------------------------------------------------------------------------------------
def _opset_model(opset: int, seed: int) -> onnx.ModelProto:
    b = GraphBuilder((2, 7, 6), opset=opset, seed=seed)
    h = b.relu(b.batchnorm(b.conv("x", 3, pads=[1, 1, 1, 1]), 3))
    h = b.node("Dropout", [b.node("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)])
    h = b.node("AveragePool", [h], kernel_shape=[2, 2], pads=[1, 1, 0, 0], count_include_pad=1)
    h = b.node("Reshape", [h, b.const(np.array([0, -1], dtype=np.int64))])
    zero = b.const(np.array(0.0, dtype=np.float32))
    h = b.node("Clip", [b.gemm(h, 5), zero])
    return b.build(b.node("Softmax", [b.gemm(h, 3)], axis=1 if opset < 13 else -1))


@pytest.mark.parametrize("seed", [0], ids=lambda s: f"seed{s}")
@pytest.mark.parametrize("opset", OPSETS, ids=lambda o: f"opset{o}")
def test_forward_across_opsets(opset: int, seed: int) -> None:
    check_forward(_opset_model(opset, seed), (2, 7, 6), seed)


@pytest.mark.parametrize("opset", OPSETS, ids=lambda o: f"opset{o}")
def test_conv_depthwise_across_opsets(opset: int) -> None:
    model, shape = _conv_case("depthwise", seed=opset, opset=opset)
    check_forward(model, shape, seed=opset)


def test_softmax_opset11_default_axis() -> None:
    b = GraphBuilder((5,), opset=11, seed=3)
    model = b.build(b.node("Softmax", [b.gemm("x", 4)]))
    check_forward(model, (5,), seed=3)


# ---------------------------------------------------------------------------------------------------------
# input layouts
# ---------------------------------------------------------------------------------------------------------
def _layouts(seed: int, dtype: type = np.float64) -> dict[str, np.ndarray]:
    """Batches [5 or 3, 3, 9, 7] that are views with unusual strides (never C-contiguous)."""
    big = np.random.default_rng(seed).standard_normal((5, 3, 18, 7)).astype(dtype)
    return {
        "strided_rows": big[:, :, ::2],
        "fortran": np.asfortranarray(big[:, :, :9]),
        "negative_strides": big[::-1, :, 9::-1][:, :, :9],
        "channel_last": np.ascontiguousarray(big[:, :, :9].transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2),
        "batch_step": big[::2, :, 3:12],
    }


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("layout", sorted(_layouts(0)))
def test_forward_non_contiguous_input(layout: str, dtype: type) -> None:
    seed = 5
    b = GraphBuilder((3, 9, 7), seed=seed)
    h = b.node("MaxPool", [b.relu(b.conv("x", 4, pads=[1, 1, 1, 1]))], kernel_shape=[2, 2], strides=[2, 2])
    model = b.build(b.gemm(b.node("Flatten", [h]), 5))
    net = dtd.load(model)
    x = _layouts(seed, dtype)[layout]
    assert x.shape[1:] == (3, 9, 7) and x.dtype == dtype and not x.flags.c_contiguous
    expected = run_numpy(model, np.ascontiguousarray(x, dtype=np.float64))
    got = net.forward(x)
    assert got.dtype == dtype
    tol = 1e-5 if dtype is np.float32 else 1e-12
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * float(np.abs(expected).max()))
    np.testing.assert_array_equal(net.forward(np.ascontiguousarray(x)), got)


# ---------------------------------------------------------------------------------------------------------
# the LRP Toolbox LeNet-5 (real pretrained weights)
# ---------------------------------------------------------------------------------------------------------
LENETS = ["lenet5_sumpool_fold.onnx", "lenet5_sumpool_mul.onnx", "lenet5_sumpool_conv.onnx"]


@pytest.mark.parametrize("filename", LENETS)
def test_lenet5_matches_onnxruntime(filename: str, lenet_dir, mnist_lenet_inputs: np.ndarray) -> None:
    path = lenet_dir / filename
    model = onnx.load(str(path))
    net = dtd.load(path)
    assert net.input_shape == (1, 32, 32)
    x = mnist_lenet_inputs
    expected = run_ort(model, x)
    got = net.forward(x)
    assert got.shape == (len(x), 10)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6 * float(np.abs(expected).max()))
    x64 = x.astype(np.float64)
    reference = run_numpy(model, x64)
    np.testing.assert_allclose(
        net.forward(x64), reference, rtol=1e-12, atol=1e-12 * float(np.abs(reference).max())
    )
    # The three encodings of the toolbox's sum pooling are the same function.
    np.testing.assert_array_equal(got.argmax(axis=1), expected.argmax(axis=1))


def test_lenet5_variants_agree(lenet_dir, mnist_lenet_inputs: np.ndarray) -> None:
    x64 = mnist_lenet_inputs.astype(np.float64)
    outs = [dtd.load(str(lenet_dir / f)).forward(x64) for f in LENETS]
    for other in outs[1:]:
        np.testing.assert_allclose(other, outs[0], rtol=1e-10, atol=1e-10 * float(np.abs(outs[0]).max()))


# ---------------------------------------------------------------------------------------------------------
# what the importer makes of the graph
# ---------------------------------------------------------------------------------------------------------
def _kinds(model: onnx.ModelProto) -> list[str]:
    return [layer.kind for layer in dtd.load(model).layers]


def test_folds_and_removals_leave_only_layers() -> None:
    assert _kinds(CASES["conv_bn"](0)[0]) == ["conv", "relu", "conv"]
    assert _kinds(CASES["gemm_bn"](0)[0]) == ["dense", "relu", "dense"]
    assert _kinds(CASES["matmul_add"](0)[0]) == ["dense", "relu", "dense"]
    assert _kinds(CASES["dropout_identity_removed"](0)[0]) == ["conv", "relu", "flatten"]
    assert _kinds(CASES["mul_scale_folded_into_previous_conv"](0)[0]) == ["conv", "relu"]
    assert _kinds(CASES["gemm_sub_div_constants"](0)[0]) == ["dense"]
    assert _kinds(CASES["softmax_output"](0)[0]) == ["dense", "relu", "dense", "softmax"]


def test_layer_names_and_shapes() -> None:
    b = GraphBuilder((2, 6, 6), seed=0)
    h = b.node("Relu", [b.node("Conv", ["x", b.weight((3, 2, 3, 3))], name="conv1")], name="act1")
    model = b.build(b.node("Flatten", [h], name="flat"))
    net = dtd.load(model)
    assert [(layer.name, layer.kind, tuple(layer.output_shape)) for layer in net.layers] == [
        ("conv1", "conv", (3, 4, 4)),
        ("act1", "relu", (3, 4, 4)),
        ("flat", "flatten", (48,)),
    ]
    assert net.input_shape == (2, 6, 6)
    assert net.input_name == "x"


def test_load_accepts_path_bytes_and_proto(tmp_path) -> None:
    model, shape = CASES["conv_basic"](0)
    path = tmp_path / "m.onnx"
    path.write_bytes(to_bytes(model))
    x = random_input((2, *shape), 0)
    outs = [dtd.load(src).forward(x) for src in (path, str(path), to_bytes(model), model)]
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])


def test_load_model_metadata(tmp_path) -> None:
    model, _ = CASES["softmax_output"](0)
    path = tmp_path / "m.onnx"
    path.write_bytes(to_bytes(model))
    loaded = dtd.load(path)
    assert loaded.opset == 13
    assert loaded.source == str(path)
    assert loaded.output_shape == (4,)
    assert dtd.load(to_bytes(model)).source == "<bytes>"
    assert dtd.load(model).source == "<ModelProto>"
    spec = loaded.spec
    assert spec.input_name == "x"
    assert list(spec.input_shape) == [7]
    assert len(spec.layers) == 4
    weight = spec.layers[0].weights["weight"]
    assert weight.dtype == np.float64 and weight.shape == (6, 7)


def test_import_does_not_modify_the_proto() -> None:
    model, _ = CASES["conv_bn"](0)
    before = model.SerializeToString()
    dtd.load(model)
    assert model.SerializeToString() == before
