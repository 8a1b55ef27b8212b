"""Large convolution outputs take the cache-tiled kernels (im2col and col2im one tile of output positions at a
time). Checked against plain NumPy: the forward pass, and the transposed pass through the input gradient."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import dtd


def conv_taps(
    x: np.ndarray, w: np.ndarray, stride: int, pad: tuple[int, int, int, int], dil: int
) -> np.ndarray:
    """Plain convolution, one kernel tap at a time: x [C, H, W], w [M, C, kh, kw] -> [M, OH, OW]."""
    c, h, wd = x.shape
    m, _, kh, kw = w.shape
    xp = np.zeros((c, h + pad[0] + pad[2], wd + pad[1] + pad[3]))
    xp[:, pad[0] : pad[0] + h, pad[1] : pad[1] + wd] = x
    oh = (xp.shape[1] - (kh - 1) * dil - 1) // stride + 1
    ow = (xp.shape[2] - (kw - 1) * dil - 1) // stride + 1
    y = np.zeros((m, oh, ow))
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i * dil : i * dil + stride * oh : stride, j * dil : j * dil + stride * ow : stride]
            y += np.einsum("mc,cyx->myx", w[:, :, i, j], patch)
    return y


def conv_transposed_taps(
    g: np.ndarray,
    w: np.ndarray,
    shape: tuple[int, int, int],
    stride: int,
    pad: tuple[int, int, int, int],
    dil: int,
) -> np.ndarray:
    """The adjoint of conv_taps: g [M, OH, OW] -> [C, H, W]."""
    c, h, wd = shape
    _, _, kh, kw = w.shape
    oh, ow = g.shape[1:]
    xp = np.zeros((c, h + pad[0] + pad[2], wd + pad[1] + pad[3]))
    for i in range(kh):
        for j in range(kw):
            xp[:, i * dil : i * dil + stride * oh : stride, j * dil : j * dil + stride * ow : stride] += (
                np.einsum("mc,myx->cyx", w[:, :, i, j], g)
            )
    return xp[:, pad[0] : pad[0] + h, pad[1] : pad[1] + wd]


@pytest.mark.parametrize(
    ("size", "stride", "pad", "dil"),
    [((61, 67), 1, (1, 1, 1, 1), 1), ((97, 90), 2, (0, 2, 1, 0), 1), ((70, 75), 1, (2, 1, 2, 3), 2)],
    ids=["3x3-s1", "3x3-s2-asym", "3x3-dil2"],
)
def test_large_conv_forward_and_gradient(
    size: tuple[int, int], stride: int, pad: tuple[int, int, int, int], dil: int
) -> None:
    rng = np.random.default_rng(7)
    h, wd = size
    w = rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32)
    oh = (h + pad[0] + pad[2] - 2 * dil - 1) // stride + 1
    ow = (wd + pad[1] + pad[3] - 2 * dil - 1) // stride + 1
    wd_dense = rng.normal(0, 0.01, (4 * oh * ow, 5)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node(
                "Conv", ["x", "w"], ["c"], strides=[stride] * 2, pads=list(pad), dilations=[dil] * 2
            ),
            helper.make_node("Flatten", ["c"], ["f"]),
            helper.make_node("MatMul", ["f", "d"], ["y"]),
        ],
        "large",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, h, wd])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(wd_dense, "d")],
    )
    model = dtd.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    assert oh * ow >= 2048  # the tiled paths
    x = rng.uniform(-1, 1, (2, 3, h, wd))
    conv = np.stack([conv_taps(s, w.astype(np.float64), stride, pad, dil) for s in x])
    expected = conv.reshape(2, -1) @ wd_dense.astype(np.float64)
    np.testing.assert_allclose(model.forward(x), expected, rtol=1e-10, atol=1e-12)
    grad = dtd.sensitivity(model, x, target=[1, 3], kind="gradient")
    for n, c in enumerate([1, 3]):
        g_out = wd_dense[:, c].astype(np.float64).reshape(4, oh, ow)
        ref = conv_transposed_taps(g_out, w.astype(np.float64), (3, h, wd), stride, pad, dil)
        np.testing.assert_allclose(grad[n], ref, rtol=1e-10, atol=1e-12)
    # float32 takes the same kernels
    np.testing.assert_allclose(model.forward(x.astype(np.float32)), expected, rtol=1e-4, atol=1e-5)
