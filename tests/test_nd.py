"""1-D and 3-D convolution and pooling, and GlobalMaxPool (1-D, 2-D, 3-D).

Forward against onnxruntime over a grid of attributes (float32 and float64 inputs); relevance against the float64
reference (tests/reference.py, whose window machinery is rank-generic) for every rule; conservation in float64;
a Conv1d net on [N, 1, 1000] and a 3-D CNN on [N, 1, 32, 32, 32]; 1 vs 2 threads; the importer's messages and
opset table; the 1-D / 3-D pictures of dtd.viz and `dtd explain` on .npy arrays.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx import helper

import dtd
import reference as ref
import relnets as rn
import test_relevance_reference as rr
from builders import GraphBuilder, one_node, raises_on_load, run_ort
from dtd.errors import ModelLoadError, UnsupportedModelError

# ---------------------------------------------------------------------------------------------------
# Forward against onnxruntime, one node at a time

# (input shape, weight shape, attributes)
CONV_CASES: dict[str, tuple[tuple[int, ...], tuple[int, ...], dict[str, Any]]] = {
    "1d_plain": ((3, 17), (4, 3, 3), {}),
    "1d_stride_asympad": ((2, 16), (5, 2, 4), {"strides": [3], "pads": [2, 0]}),
    "1d_dilation": ((2, 20), (3, 2, 3), {"dilations": [3], "pads": [1, 2]}),
    "1d_group": ((4, 13), (6, 2, 3), {"group": 2, "pads": [1, 1]}),
    "1d_depthwise": ((4, 13), (4, 1, 5), {"group": 4, "strides": [2], "pads": [2, 1]}),
    "1d_same_upper": ((2, 11), (3, 2, 4), {"auto_pad": "SAME_UPPER", "strides": [2]}),
    "1d_same_lower": ((2, 11), (3, 2, 4), {"auto_pad": "SAME_LOWER", "strides": [2]}),
    "1d_valid": ((2, 11), (3, 2, 4), {"auto_pad": "VALID"}),
    "1d_pointwise": ((3, 9), (5, 3, 1), {}),
    "1d_long": ((1, 4000), (4, 1, 9), {"pads": [4, 4]}),
    "3d_plain": ((2, 5, 6, 7), (3, 2, 3, 3, 3), {"pads": [1, 1, 1, 1, 1, 1]}),
    "3d_stride_asympad": ((2, 7, 6, 5), (4, 2, 3, 2, 3), {"strides": [2, 1, 2], "pads": [0, 1, 2, 1, 0, 0]}),
    "3d_dilation": ((1, 8, 7, 6), (2, 1, 2, 3, 2), {"dilations": [3, 1, 2], "pads": [1, 0, 1, 0, 1, 1]}),
    "3d_group": ((4, 5, 5, 5), (6, 2, 3, 1, 3), {"group": 2, "pads": [1, 0, 1, 1, 0, 1]}),
    "3d_depthwise": (
        (3, 6, 6, 6),
        (3, 1, 3, 3, 3),
        {"group": 3, "strides": [2, 2, 2], "pads": [1, 1, 1, 1, 1, 1]},
    ),
    "3d_same_upper": ((2, 5, 6, 7), (3, 2, 2, 3, 4), {"auto_pad": "SAME_UPPER", "strides": [2, 1, 2]}),
    "3d_same_lower": ((2, 5, 6, 7), (3, 2, 2, 3, 4), {"auto_pad": "SAME_LOWER", "strides": [1, 2, 2]}),
    "3d_valid": ((2, 5, 6, 7), (3, 2, 2, 3, 4), {"auto_pad": "VALID"}),
    "3d_pointwise": ((3, 4, 5, 6), (2, 3, 1, 1, 1), {}),
    "3d_large": ((2, 16, 24, 24), (8, 2, 3, 3, 3), {"pads": [1, 1, 1, 1, 1, 1]}),
    # 16 and more output channels per group: float32 takes the implicit im2col into the GEMM's panels
    "1d_wide": ((3, 50), (16, 3, 5), {"strides": [2], "pads": [2, 1]}),
    "1d_wide_long": ((2, 3000), (32, 2, 7), {"pads": [3, 3], "dilations": [2]}),
    "3d_wide": ((2, 5, 6, 7), (16, 2, 3, 3, 3), {"strides": [2, 1, 2], "pads": [1, 1, 0, 0, 1, 1]}),
    "3d_wide_large": ((2, 12, 16, 16), (32, 1, 3, 3, 3), {"pads": [1] * 6, "group": 2}),
}

# (op, input shape, opset, attributes)
POOL_CASES: dict[str, tuple[str, tuple[int, ...], int, dict[str, Any]]] = {
    "max1d": ("MaxPool", (3, 16), 13, {"kernel_shape": [3], "strides": [2], "pads": [1, 0]}),
    "max1d_ceil": ("MaxPool", (2, 15), 13, {"kernel_shape": [3], "strides": [2], "ceil_mode": 1}),
    "max1d_dilation": ("MaxPool", (2, 17), 13, {"kernel_shape": [3], "dilations": [2], "pads": [2, 1]}),
    "max1d_same": ("MaxPool", (2, 11), 13, {"kernel_shape": [4], "strides": [3], "auto_pad": "SAME_UPPER"}),
    "max3d": ("MaxPool", (2, 6, 7, 8), 13, {"kernel_shape": [2, 2, 2], "strides": [2, 2, 2]}),
    "max3d_pads_ceil": (
        "MaxPool",
        (2, 7, 6, 5),
        13,
        {"kernel_shape": [3, 2, 3], "strides": [2, 1, 2], "pads": [1, 0, 1, 0, 1, 1], "ceil_mode": 1},
    ),
    "max3d_dilation": (
        "MaxPool",
        (1, 8, 7, 9),
        12,
        {"kernel_shape": [2, 3, 2], "dilations": [2, 1, 3], "strides": [1, 2, 1]},
    ),
    "max3d_same_lower": (
        "MaxPool",
        (2, 5, 6, 7),
        13,
        {"kernel_shape": [2, 3, 2], "strides": [2, 2, 2], "auto_pad": "SAME_LOWER"},
    ),
    "avg1d_cip0": ("AveragePool", (2, 16), 13, {"kernel_shape": [3], "strides": [2], "pads": [1, 1]}),
    "avg1d_cip1": (
        "AveragePool",
        (2, 16),
        13,
        {"kernel_shape": [3], "strides": [2], "pads": [1, 1], "count_include_pad": 1},
    ),
    "avg1d_ceil": ("AveragePool", (2, 14), 13, {"kernel_shape": [3], "strides": [2], "ceil_mode": 1}),
    "avg1d_dilation": ("AveragePool", (2, 17), 19, {"kernel_shape": [3], "dilations": [2], "pads": [1, 1]}),
    "avg3d_cip0": (
        "AveragePool",
        (2, 5, 6, 7),
        13,
        {"kernel_shape": [3, 2, 3], "strides": [2, 2, 1], "pads": [1, 0, 1, 1, 1, 0]},
    ),
    "avg3d_cip1": (
        "AveragePool",
        (2, 5, 6, 7),
        13,
        {"kernel_shape": [3, 2, 3], "strides": [2, 2, 1], "pads": [1, 0, 1, 1, 1, 0], "count_include_pad": 1},
    ),
    "avg3d_ceil_cip1": (
        "AveragePool",
        (1, 7, 6, 5),
        13,
        {
            "kernel_shape": [2, 2, 2],
            "strides": [2, 2, 2],
            "pads": [1, 0, 0, 0, 0, 1],
            "ceil_mode": 1,
            "count_include_pad": 1,
        },
    ),
    # ceil_mode adds a last window reaching past the input on every axis (taps there never count).
    "avg3d_dilation_ceil_cip1_overhang": (
        "AveragePool",
        (1, 11, 10, 12),
        19,
        {
            "kernel_shape": [3, 2, 3],
            "dilations": [2, 2, 1],
            "strides": [3, 3, 2],
            "ceil_mode": 1,
            "count_include_pad": 1,
            "pads": [1, 0, 0, 0, 1, 0],
        },
    ),
    "avg3d_same_upper": (
        "AveragePool",
        (2, 5, 6, 7),
        13,
        {"kernel_shape": [3, 3, 2], "strides": [2, 2, 2], "auto_pad": "SAME_UPPER"},
    ),
    "gmp1d": ("GlobalMaxPool", (3, 17), 13, {}),
    "gmp2d": ("GlobalMaxPool", (3, 5, 6), 13, {}),
    "gmp3d": ("GlobalMaxPool", (2, 4, 5, 6), 13, {}),
    "gap1d": ("GlobalAveragePool", (3, 17), 13, {}),
    "gap3d": ("GlobalAveragePool", (2, 4, 5, 6), 13, {}),
}


def _check_forward(model_proto: Any, shape: tuple[int, ...], seed: int) -> None:
    model = dtd.load(model_proto)
    x = np.random.default_rng(seed).standard_normal((3, *shape))
    want = run_ort(model_proto, x)
    for dtype in (np.float32, np.float64):
        got = model.forward(x.astype(dtype))
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_conv_forward_matches_onnxruntime(case: str) -> None:
    shape, wshape, attrs = CONV_CASES[case]
    b = GraphBuilder(shape, seed=7)
    w = b.weight(wshape)
    bias = b.weight((wshape[0],), 0.5)
    _check_forward(b.build(b.node("Conv", ["x", w, bias], kernel_shape=list(wshape[2:]), **attrs)), shape, 1)


@pytest.mark.parametrize("case", sorted(POOL_CASES))
def test_pool_forward_matches_onnxruntime(case: str) -> None:
    op, shape, opset, attrs = POOL_CASES[case]
    _check_forward(one_node(op, shape, opset=opset, **attrs), shape, 2)


@pytest.mark.parametrize("count_include_pad", [0, 1])
def test_avgpool_ceil_mode_window_past_the_input(count_include_pad: int) -> None:
    """[1, 2, 3, 4, 5], kernel 2, stride 2, ceil_mode: the last window holds only 5. Taps beyond the padded
    input never count, also with count_include_pad=1 (onnx >= 1.18 reference, onnxruntime, PyTorch; the onnx
    1.17 reference and its test data divided by the full kernel and gave 2.5)."""
    model = one_node(
        "AveragePool",
        (1, 5),
        opset=19,
        kernel_shape=[2],
        strides=[2],
        ceil_mode=1,
        count_include_pad=count_include_pad,
    )
    x = np.arange(1.0, 6.0).reshape(1, 1, 5)
    for dtype in (np.float32, np.float64):
        np.testing.assert_allclose(
            dtd.load(model).forward(x.astype(dtype))[0, 0], [1.5, 3.5, 5.0], rtol=1e-12
        )


def test_avgpool_dilated_ceil_count_include_pad_matches_the_onnx_reference() -> None:
    """The ONNX node test's geometry (32^3, kernel 5, dilation 2, stride 3, ceil_mode, count_include_pad=1)
    against the float64 NumPy reference and onnx.reference (which excludes the overhang since onnx 1.18)."""
    onnx_reference = pytest.importorskip("onnx.reference")
    attrs = {
        "kernel_shape": [5, 5, 5],
        "dilations": [2, 2, 2],
        "strides": [3, 3, 3],
        "ceil_mode": 1,
        "count_include_pad": 1,
    }
    model = one_node("AveragePool", (1, 32, 32, 32), opset=19, **attrs)
    x = np.random.default_rng(4).standard_normal((2, 1, 32, 32, 32))
    got = dtd.load(model).forward(x)
    assert got.shape == (2, 1, 9, 9, 9)
    want = onnx_reference.ReferenceEvaluator(model).run(None, {"x": x.astype(np.float32)})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # The corner window: 4 of the 5 taps per axis lie in the input (the 5th, at 32, is past it).
    np.testing.assert_allclose(
        got[:, 0, 8, 8, 8], x[:, 0, 24:32:2, 24:32:2, 24:32:2].mean(axis=(1, 2, 3)), rtol=1e-12
    )


def test_layer_shapes_keep_the_rank() -> None:
    b = GraphBuilder((2, 5, 6, 7))
    h = b.node("Conv", ["x", b.weight((3, 2, 3, 3, 3))], pads=[1] * 6)
    h = b.node("MaxPool", [h], kernel_shape=[2, 2, 2], strides=[2, 2, 2])
    h = b.node("GlobalMaxPool", [h])
    model = dtd.load(b.build(h))
    assert [layer.output_shape for layer in model.layers] == [(3, 5, 6, 7), (3, 2, 3, 3), (3, 1, 1, 1)]
    assert model.layers[0].macs == 3 * 5 * 6 * 7 * 2 * 27
    assert model.layers[2].kind == "globalmaxpool"


# ---------------------------------------------------------------------------------------------------
# Relevance against the float64 reference

# name -> (input shape, builder steps), as relnets.CNN_GEOMETRIES
ND_GEOMETRIES: dict[str, tuple[tuple[int, ...], list[tuple[str, dict[str, Any]]]]] = {
    "1d_plain": (
        (2, 20),
        [
            ("conv", {"m": 4}),
            ("relu", {}),
            ("maxpool", {"k": 2}),
            ("conv", {"m": 5, "k": 5, "strides": (2,), "pads": (2, 1)}),
            ("relu", {}),
            ("flatten", {}),
        ],
    ),
    "1d_groups_avg": (
        (4, 17),
        [
            ("conv", {"m": 4, "k": 3, "dilations": (2,), "pads": (2, 0), "group": 2}),
            ("relu", {}),
            ("conv", {"m": 4, "k": 3, "group": 4, "strides": (2,), "pads": (1, 1)}),
            ("relu", {}),
            ("avgpool", {"k": 3, "strides": (2,), "pads": (1, 1), "count_include_pad": 1}),
            ("flatten", {}),
        ],
    ),
    "1d_pool_ceil": (
        (2, 15),
        [
            ("conv", {"m": 3}),
            ("relu", {}),
            ("maxpool", {"k": 3, "strides": (2,), "pads": (1, 0), "ceil_mode": True}),
            ("conv", {"m": 3}),
            ("relu", {}),
            ("avgpool", {"k": 2, "strides": (2,), "ceil_mode": True}),
            ("flatten", {}),
        ],
    ),
    "1d_gmp": ((2, 12), [("conv", {"m": 5}), ("relu", {}), ("globalmaxpool", {}), ("flatten", {})]),
    "1d_gap": ((2, 12), [("conv", {"m": 5}), ("relu", {}), ("globalavgpool", {}), ("flatten", {})]),
    "2d_gmp": ((2, 6, 5), [("conv", {"m": 4}), ("relu", {}), ("globalmaxpool", {}), ("flatten", {})]),
    "3d_plain": (
        (1, 6, 7, 5),
        [
            ("conv", {"m": 3}),
            ("relu", {}),
            ("maxpool", {"k": 2}),
            ("conv", {"m": 4, "k": (2, 3, 1), "strides": (1, 2, 1), "pads": (0, 1, 0, 1, 0, 0)}),
            ("relu", {}),
            ("flatten", {}),
        ],
    ),
    "3d_groups_avg": (
        (2, 7, 6, 6),
        [
            ("conv", {"m": 4, "k": 3, "dilations": (2, 1, 1), "pads": (2, 1, 0, 1, 0, 1), "group": 2}),
            ("relu", {}),
            ("conv", {"m": 4, "k": 3, "group": 4, "strides": (2, 2, 2)}),
            ("relu", {}),
            ("avgpool", {"k": 2, "strides": (1, 1, 1), "pads": (1, 0, 0, 0, 1, 0), "count_include_pad": 1}),
            ("flatten", {}),
        ],
    ),
    "3d_pool_ceil": (
        (2, 5, 6, 7),
        [
            ("conv", {"m": 3}),
            ("relu", {}),
            ("maxpool", {"k": 3, "strides": (2, 2, 2), "pads": (1, 0, 1, 0, 1, 1), "ceil_mode": True}),
            ("avgpool", {"k": 2, "strides": (1, 2, 1), "ceil_mode": True}),
            ("flatten", {}),
        ],
    ),
    "3d_maxpool_dilation": (
        (1, 7, 6, 6),
        [
            ("conv", {"m": 3}),
            ("relu", {}),
            ("maxpool", {"k": 2, "strides": (1, 2, 2), "dilations": (2, 1, 2)}),
            ("flatten", {}),
        ],
    ),
    "3d_gmp": ((1, 4, 5, 4), [("conv", {"m": 4}), ("relu", {}), ("globalmaxpool", {}), ("flatten", {})]),
    "3d_wide": (
        (2, 5, 6, 5),
        [("conv", {"m": 16, "strides": (1, 2, 1)}), ("relu", {}), ("maxpool", {"k": 2}), ("flatten", {})],
    ),
    "1d_wide": ((2, 30), [("conv", {"m": 16, "k": 5}), ("relu", {}), ("maxpool", {"k": 3}), ("flatten", {})]),
    "3d_gap": ((1, 4, 5, 4), [("conv", {"m": 4}), ("relu", {}), ("globalavgpool", {}), ("flatten", {})]),
}


def nd_net(key: str, seed: int, bias: str = "random") -> rn.Net:
    """A small N-d CNN of the given geometry, then two dense layers."""
    shape, steps = ND_GEOMETRIES[key]
    b = rn.Builder(f"nd_{key}_{seed}", shape, np.random.default_rng(seed), bias)
    for method, kwargs in steps:
        getattr(b, method)(**kwargs)
    b.dense(6)
    b.relu()
    b.dense(3)
    return b.net


@functools.cache
def loaded(key: str, seed: int, bias: str = "random") -> tuple[rn.Net, Any]:
    net = nd_net(key, seed, bias)
    return net, dtd.load(rn.to_onnx(net))


ND_KEYS = tuple(ND_GEOMETRIES)


@pytest.mark.parametrize("key", ND_KEYS)
def test_reference_and_dtd_forward_match_onnxruntime(key: str) -> None:
    net, model = loaded(key, 0)
    x = np.random.default_rng(5).standard_normal((3, *net.input_shape))
    want = run_ort(rn.to_onnx(net), x)
    assert rr.rel_err(ref.forward(net, x), want) < 1e-5
    assert rr.rel_err(model.forward(x), ref.forward(net, x)) < 1e-12
    assert rr.rel_err(model.forward(x.astype(np.float32)), want) < 1e-5


@pytest.mark.parametrize("cfg", rr.CONFIGS)
@pytest.mark.parametrize("key", ND_KEYS)
def test_float64_relevance_matches_reference(key: str, cfg: str) -> None:
    net, model = loaded(key, 1)
    for n in (1, 4):
        got, want = rr.run_both(net, model, cfg, n, 1, np.float64)
        assert got.shape == want.shape and got.dtype == np.float64
        assert rr.rel_err(got, want) <= 1e-10, n


@pytest.mark.parametrize(
    "cfg", ["zplus", "wsquare_first", "zbox_channel", "flat_first", "proportional", "epsilon"]
)
@pytest.mark.parametrize("key", ND_KEYS)
def test_float32_relevance_matches_reference(key: str, cfg: str) -> None:
    net, model = loaded(key, 2)
    got, want = rr.run_both(net, model, cfg, 4, 2, np.float32)
    assert got.dtype == np.float32
    assert rr.rel_err(got, want) <= (1e-2 if cfg == "epsilon" else 1e-4)


@pytest.mark.parametrize("maxpool", ["winner_take_all", "proportional"])
@pytest.mark.parametrize("key", ND_KEYS)
def test_conservation_float64(key: str, maxpool: str) -> None:
    """Bias-free ReLU nets, eps = 1e-12: every layer passes on what it receives, the input gets f_c(x)."""
    net, model = loaded(key, 3, "none")
    x = np.random.default_rng(3).standard_normal((4, *net.input_shape))
    rules = dtd.rules.Composite(
        first=dtd.rules.WSquare(eps=1e-12), default=dtd.rules.ZPlus(eps=1e-12), maxpool=maxpool, eps=1e-12
    )
    details = dtd.explain(model, x, rules=rules, return_details=True)
    logits = details.logits[np.arange(4), details.targets]
    total = details.relevance.reshape(4, -1).sum(axis=1)
    np.testing.assert_allclose(total, logits, rtol=1e-9, atol=1e-12)
    for layer in details.layers:
        np.testing.assert_allclose(layer.relevance_in, layer.relevance_out, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_globalmaxpool_ties_go_to_first_cell(seed: int) -> None:
    b = rn.Builder("gmp_ties", (2, 3, 4), np.random.default_rng(seed), "none")
    b.globalmaxpool()
    b.flatten()
    b.dense(3)
    net = b.net
    model = dtd.load(rn.to_onnx(net))
    x = np.random.default_rng(seed).integers(0, 2, (4, 2, 3, 4)).astype(np.float64)
    want = ref.explain(net, x, ref.assign(net, ref.ZPlus()))
    got = dtd.explain(model, x, rules=dtd.rules.Composite(default=dtd.rules.ZPlus()))
    assert rr.rel_err(got, want) <= 1e-10


@pytest.mark.parametrize("cfg", ["wsquare_first", "zbox_scalar", "flat_first", "gamma"])
@pytest.mark.parametrize("shape", [(1, 2100), (1, 8, 16, 16)], ids=["1d", "3d"])
def test_banded_transposed_pass_matches_reference(shape: tuple[int, ...], cfg: str) -> None:
    """Outputs of 2048 positions and more: the transposed pass runs in bands (of columns for 1-D, of depth planes
    for 3-D), checked against the reference."""
    b = rn.Builder("banded", shape, np.random.default_rng(6), "random")
    b.conv(2, k=5 if len(shape) == 2 else 3, strides=(1,) * (len(shape) - 1))
    b.relu()
    b.globalavgpool()
    b.flatten()
    b.dense(3)
    net = b.net
    model = dtd.load(rn.to_onnx(net))
    got, want = rr.run_both(net, model, cfg, 1, 6, np.float64)
    assert rr.rel_err(got, want) <= 1e-10
    got, want = rr.run_both(net, model, cfg, 1, 6, np.float32)
    assert rr.rel_err(got, want) <= (1e-2 if cfg == "gamma" else 1e-4)


# ---------------------------------------------------------------------------------------------------
# Larger nets: Conv1d on [N, 1, 1000], a 3-D CNN on [N, 1, 32, 32, 32]


def conv1d_net() -> Any:
    b = GraphBuilder((1, 1000), seed=21)
    h = b.relu(b.conv("x", 8, kernel=(9,), bias=False, pads=[4, 4]))
    h = b.node("MaxPool", [h], kernel_shape=[4], strides=[4])
    h = b.relu(b.conv(h, 16, kernel=(5,), bias=False, strides=[2], pads=[2, 2]))
    h = b.relu(b.conv(h, 16, kernel=(3,), bias=False, group=16, dilations=[2], pads=[2, 2]))
    h = b.node("AveragePool", [h], kernel_shape=[5], strides=[5])
    h = b.node("Flatten", [h])
    return b.build(b.gemm(h, 10, bias=False))


def conv3d_net() -> Any:
    b = GraphBuilder((1, 32, 32, 32), seed=22)
    h = b.relu(b.conv("x", 6, kernel=(3, 3, 3), bias=False, pads=[1] * 6))
    h = b.node("MaxPool", [h], kernel_shape=[2, 2, 2], strides=[2, 2, 2])
    h = b.relu(b.conv(h, 8, kernel=(3, 3, 3), bias=False, strides=[2, 2, 2], pads=[1] * 6))
    h = b.relu(b.conv(h, 8, kernel=(3, 3, 3), bias=False, pads=[1] * 6))
    h = b.node("GlobalMaxPool", [h])
    h = b.node("Flatten", [h])
    return b.build(b.gemm(h, 5, bias=False))


@pytest.mark.parametrize("which", ["conv1d", "conv3d"])
def test_large_nets_load_match_and_explain(which: str) -> None:
    proto = conv1d_net() if which == "conv1d" else conv3d_net()
    model = dtd.load(proto)
    shape = model.input_shape
    rng = np.random.default_rng(4)
    x = rng.uniform(0.0, 1.0, (2, *shape))
    want = run_ort(proto, x)
    np.testing.assert_allclose(model.forward(x.astype(np.float32)), want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.forward(x), want, rtol=1e-4, atol=1e-5)
    logits = model.forward(x)
    target = logits.argmax(axis=1)
    f_c = logits[np.arange(2), target]
    for kwargs in ({}, {"low": 0.0, "high": 1.0}):
        for dtype in (np.float64, np.float32):
            r = dtd.explain(model, x.astype(dtype), target=target, eps=1e-12, **kwargs)
            assert r.shape == x.shape and r.dtype == dtype
            totals = r.reshape(2, -1).sum(axis=1, dtype=np.float64)
            rtol = 1e-9 if dtype == np.float64 else 1e-3
            np.testing.assert_allclose(totals, f_c, rtol=rtol)
            # the DTD rules (w^2 / z^beta first, z+ above) give relevance of the logit's sign
            signed = r * np.sign(f_c).reshape(2, *(1,) * len(shape))
            assert signed.min() >= -1e-6 * np.abs(r).max()


def test_3d_conv_bit_identical_across_threads() -> None:
    model = dtd.load(conv3d_net())
    rng = np.random.default_rng(8)
    before = dtd.get_num_threads()
    try:
        for n in (1, 3):
            x = rng.uniform(0.0, 1.0, (n, 1, 32, 32, 32))
            for dtype in (np.float32, np.float64):
                results = []
                for threads in (1, 2):
                    dtd.set_num_threads(threads)
                    xd = x.astype(dtype)
                    results.append(
                        (model.forward(xd), dtd.explain(model, xd, low=0.0, high=1.0), dtd.explain(model, xd))
                    )
                for a, b in zip(results[0], results[1], strict=True):
                    assert np.array_equal(a, b)
    finally:
        dtd.set_num_threads(before)


# ---------------------------------------------------------------------------------------------------
# Importer: errors and the opset table


def test_conv_weight_rank_must_match_input_rank() -> None:
    b = GraphBuilder((2, 6, 6))
    model = b.build(b.node("Conv", ["x", b.weight((3, 2, 3))], name="cw"))
    raises_on_load(model, ModelLoadError, "'cw'", "rank-3 input", "rank 4")


def test_pool_attribute_count_must_match_the_kernel() -> None:
    model = one_node("MaxPool", (2, 9), kernel_shape=[3], strides=[1, 1])
    raises_on_load(model, ModelLoadError, "strides", "expected 1")


def test_pool_kernel_rank_must_match_input() -> None:
    model = one_node("AveragePool", (2, 6, 6, 6), kernel_shape=[2, 2])
    raises_on_load(model, ModelLoadError, "rank-4 input", "rank 5")


def test_pool_over_four_axes_is_unsupported() -> None:
    model = one_node("MaxPool", (1, 3, 3, 3, 3), kernel_shape=[2, 2, 2, 2])
    raises_on_load(model, UnsupportedModelError, "1, 2 or 3 spatial axes")


def test_globalmaxpool_needs_spatial_axes() -> None:
    b = GraphBuilder((4,))
    model = b.build(b.node("GlobalMaxPool", ["x"], name="g"))
    raises_on_load(model, UnsupportedModelError, "'g'", "rank 2")


#: op -> attribute -> the first opset that defines it (earlier ones: kernel_shape, strides, pads, auto_pad), and a
#: value other than its default (storage_order only changes the indices output, which dtd does not compute).
POOL_ATTRIBUTE_SINCE: dict[str, dict[str, tuple[int, Any]]] = {
    "MaxPool": {"storage_order": (8, 1), "ceil_mode": (10, 1), "dilations": (10, [2, 2])},
    "AveragePool": {"count_include_pad": (7, 1), "ceil_mode": (10, 1), "dilations": (19, [2, 2])},
}


@pytest.mark.parametrize(
    ("op", "attr"), [(op, attr) for op, table in POOL_ATTRIBUTE_SINCE.items() for attr in table]
)
def test_pool_attribute_from_its_opset(op: str, attr: str) -> None:
    """A pooling attribute used one opset before the one that defines it is refused (what onnxruntime does too);
    from that opset on it is read, as onnxruntime reads it. onnx's own schemas agree on the opset."""
    from onnx import defs

    since, value = POOL_ATTRIBUTE_SINCE[op][attr]
    assert attr in defs.get_schema(op, since).attributes
    assert attr not in defs.get_schema(op, since - 1).attributes

    def model(opset: int) -> Any:
        b = GraphBuilder((2, 10, 10), opset=opset)
        pads = {"pads": [1, 1, 1, 1]} if attr == "count_include_pad" else {}
        return b.build(
            b.node(op, ["x"], name="p", kernel_shape=[3, 3], strides=[2, 2], **pads, **{attr: value})
        )

    raises_on_load(model(since - 1), ModelLoadError, f"{op} 'p'", f"'{attr}'", f"opset {since}")
    x = np.random.default_rng(2).standard_normal((2, 2, 10, 10))
    loaded = model(since)
    np.testing.assert_allclose(dtd.load(loaded).forward(x), run_ort(loaded, x), rtol=1e-6, atol=1e-6)


def test_maxpool_opset8_indices_output_unused_is_fine() -> None:
    b = GraphBuilder((2, 10), opset=12)
    b.nodes.append(helper.make_node("MaxPool", ["x"], ["p", "idx"], kernel_shape=[2], strides=[2], name="mp"))
    model = b.build("p")
    x = np.random.default_rng(0).standard_normal((2, 2, 10))
    np.testing.assert_allclose(dtd.load(model).forward(x), run_ort(model, x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("rank", [3, 5])
def test_reducemean_over_all_spatial_axes(rank: int) -> None:
    shape = (3, 8) if rank == 3 else (3, 4, 5, 6)
    b = GraphBuilder(shape)
    model = b.build(b.node("ReduceMean", [b.relu("x")], axes=list(range(2, rank)), keepdims=0))
    x = np.random.default_rng(1).standard_normal((2, *shape))
    np.testing.assert_allclose(dtd.load(model).forward(x), run_ort(model, x), rtol=1e-6, atol=1e-6)


def test_batchnorm_and_input_scale_fold_into_1d_and_3d_conv() -> None:
    for shape, wshape in (((2, 9), (3, 2, 3)), ((2, 4, 5, 6), (3, 2, 3, 3, 3))):
        b = GraphBuilder(shape, seed=3)
        scaled = b.node(
            "Mul", ["x", b.const(np.array([2.0, -0.5], np.float32).reshape(2, *(1,) * (len(shape) - 1)))]
        )
        h = b.conv(scaled, 3, kernel=wshape[2:], pads=[1] * (2 * (len(shape) - 1)))
        model = b.build(b.relu(b.batchnorm(h, 3)))
        x = np.random.default_rng(1).standard_normal((2, *shape))
        got = dtd.load(model)
        assert [layer.kind for layer in got.layers] == ["conv", "relu"]
        np.testing.assert_allclose(got.forward(x), run_ort(model, x), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------------
# Pictures and the command line


def test_viz_signal_shows_the_relevance_as_colours() -> None:
    L = 200
    x = np.sin(np.linspace(0, 6, L))[None]
    r = np.zeros((1, L))
    r[0, 50] = 1.0
    r[0, 150] = -1.0
    img = dtd.viz.signal(x, r, size=(400, 160))
    assert img.dtype == np.uint8 and img.shape == (160, 400, 3)
    reds = (img[..., 0] > 200) & (img[..., 1] < 80) & (img[..., 2] < 80)
    blues = (img[..., 2] > 200) & (img[..., 0] < 80) & (img[..., 1] < 80)
    red_cols, blue_cols = np.nonzero(reds.any(axis=0))[0], np.nonzero(blues.any(axis=0))[0]
    assert red_cols.size and blue_cols.size
    assert red_cols.mean() < 200 < blue_cols.mean()  # positive at 1/4 of the signal, negative at 3/4
    # relevance alone: the same picture without the signal trace
    assert dtd.viz.signal(None, r, size=(400, 160)).shape == (160, 400, 3)
    with pytest.raises(ValueError, match="shape"):
        dtd.viz.signal(x, np.zeros((1, L + 1)))


def test_viz_slices_grid_shares_one_scale() -> None:
    r = np.zeros((1, 4, 5, 6))
    r[0, 1, 2, 3] = 2.0
    r[0, 3, 0, 0] = -1.0
    img = dtd.viz.slices(r, ncols=4, scale=2)
    assert img.dtype == np.uint8 and img.ndim == 3
    full_red = ((img[..., 0] == 255) & (img[..., 1] == 0)).sum()
    half_blue = ((img[..., 2] == 255) & (img[..., 0] > 100) & (img[..., 0] < 150)).sum()
    assert full_red == 4 and half_blue == 4  # one voxel each, scaled 2x2; -1 is half of max |R| = 2
    with pytest.raises(ValueError, match="shape"):
        dtd.viz.slices(np.zeros((4, 5)))


@pytest.mark.parametrize("which", ["conv1d", "conv3d"])
def test_cli_explain_npy(which: str, tmp_path: Path) -> None:
    from dtd.cli import main

    proto = conv1d_net() if which == "conv1d" else conv3d_net()
    path = tmp_path / f"{which}.onnx"
    path.write_bytes(proto.SerializeToString())
    shape = (1, 1000) if which == "conv1d" else (1, 32, 32, 32)
    x = np.random.default_rng(0).uniform(0, 1, (2, *shape)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out"
    assert main(["explain", str(path), str(tmp_path / "x.npy"), "--out", str(out), "--quiet"]) == 0
    for i in range(2):
        rel = np.load(out / f"x_{i}_relevance.npy")
        assert rel.shape == shape
        from PIL import Image

        with Image.open(out / f"x_{i}_heatmap.png") as img:
            assert img.mode == "RGB" and img.size[0] >= 32
