"""Data-movement and layout ops: Reshape(allowzero), Transpose, Slice/Split/Gather, Pad, LRN, a softmax head
behind shape ops, and the opset variants of the shape ops.

Every model is compared with onnxruntime (float32 and float64 forward); the relevance through the pure data
movements is compared exactly with its NumPy adjoint (a permutation, a scatter-add, a crop).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
import pytest

import dtd
from builders import GraphBuilder, raises_on_load, random_input, run_ort, to_bytes
from dtd import UnsupportedModelError

BATCHES = (1, 3)


def _i64(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def check_against_ort(model: onnx.ModelProto, seed: int = 0, batches: tuple[int, ...] = BATCHES) -> dtd.Model:
    """Load the model and compare its float32 and float64 forward passes with onnxruntime."""
    net = dtd.load(to_bytes(model))
    for batch in batches:
        x = random_input((batch, *net.input_shape), seed + 100 * batch)
        expected = run_ort(model, x)
        scale = float(np.abs(expected).max()) or 1.0
        got = net.forward(x)
        assert got.dtype == np.float32
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6 * scale)
        got64 = net.forward(x.astype(np.float64))
        assert got64.shape == expected.shape
        np.testing.assert_allclose(got64, expected, rtol=1e-5, atol=1e-6 * scale)
    return net


def check_adjoint(
    model: onnx.ModelProto, adjoint: Callable[[np.ndarray], np.ndarray], seed: int = 0, batch: int = 2
) -> dtd.Model:
    """The model is one data movement: its relevance (and gradient) is the NumPy adjoint of it, exactly."""
    net = dtd.load(to_bytes(model))
    x = random_input((batch, *net.input_shape), seed).astype(np.float64)
    r_out = np.random.default_rng(seed + 1).standard_normal((batch, net.num_outputs))
    expected = adjoint(r_out.reshape((batch, *net.logits_shape)))
    assert expected.shape == x.shape
    for dtype, tol in ((np.float64, 0.0), (np.float32, 1e-6)):
        got = dtd.explain(net, x.astype(dtype), target=r_out.astype(dtype), rules="epsilon")
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)
    return net


# ---------------------------------------------------------------------------------------------------------
# Reshape allowzero
# ---------------------------------------------------------------------------------------------------------
def _head(b: GraphBuilder, flat: str, n_in: int, name: str = "fc") -> str:
    return b.node("Gemm", [flat, b.weight((5, n_in)), b.weight((5,), 0.5)], transB=1, name=name)


@pytest.mark.parametrize("opset", [14, 18, 21])
def test_reshape_allowzero_constant_target(opset: int) -> None:
    b = GraphBuilder((2, 3, 4), opset=opset, seed=opset)
    flat = b.node("Reshape", [b.relu("x"), b.const(_i64(-1, 24))], allowzero=1, name="flat")
    net = check_against_ort(b.build(_head(b, flat, 24)), seed=opset)
    assert [layer.kind for layer in net.layers] == ["relu", "reshape", "dense"]


@pytest.mark.parametrize("opset", [14, 18])
def test_reshape_allowzero_computed_target(opset: int) -> None:
    """The torch dynamo exporter's flatten: Shape -> Slice [:1] -> Concat([-1]) -> Reshape(allowzero=1)."""
    b = GraphBuilder((2, 3, 4), opset=opset, seed=opset)
    r = b.relu("x")
    batch = b.node("Slice", [b.node("Shape", [r]), b.const(_i64(0)), b.const(_i64(1))])
    target = b.node("Concat", [batch, b.const(_i64(-1))], axis=0)
    flat = b.node("Reshape", [r, target], allowzero=1, name="flat")
    net = check_against_ort(b.build(_head(b, flat, 24)), seed=opset)
    assert net.layers[1].kind == "reshape"
    assert net.layers[1].output_shape == (24,)
    assert net.layers[2].input_shapes == ((24,),)


def test_reshape_allowzero_computed_target_then_shape_arithmetic() -> None:
    """Shapes after a computed allowzero=1 Reshape are refined (the batch is not read as an empty axis)."""
    b = GraphBuilder((2, 3, 4), opset=14, seed=3)
    r = b.relu("x")
    batch = b.node("Slice", [b.node("Shape", [r]), b.const(_i64(0)), b.const(_i64(1))])
    first = b.node("Reshape", [r, b.node("Concat", [batch, b.const(_i64(6, 4))], axis=0)], allowzero=1)
    batch2 = b.node("Slice", [b.node("Shape", [first]), b.const(_i64(0)), b.const(_i64(1))])
    second = b.node("Reshape", [first, b.node("Concat", [batch2, b.const(_i64(-1))], axis=0)], allowzero=1)
    check_against_ort(b.build(_head(b, second, 24)), seed=3)


def test_reshape_allowzero_with_a_zero_entry() -> None:
    b = GraphBuilder((2, 3), opset=14)
    model = b.build(b.node("Reshape", [b.relu("x"), b.const(_i64(0, -1))], allowzero=1, name="rz"))
    raises_on_load(model, UnsupportedModelError, "'rz'", "allowzero=1", "length 0")


def test_reshape_allowzero_zero_in_a_computed_target() -> None:
    b = GraphBuilder((2, 3), opset=14)
    r = b.relu("x")
    batch = b.node("Slice", [b.node("Shape", [r]), b.const(_i64(0)), b.const(_i64(1))])
    target = b.node("Concat", [batch, b.const(_i64(0, 3))], axis=0)
    model = b.build(b.node("Reshape", [r, target], allowzero=1, name="rz"))
    raises_on_load(model, UnsupportedModelError, "'rz'", "allowzero=1")


def test_reshape_zero_entry_without_allowzero_copies() -> None:
    b = GraphBuilder((2, 3, 4), opset=14, seed=5)
    flat = b.node("Reshape", [b.relu("x"), b.const(_i64(0, 0, -1))], allowzero=0)
    check_against_ort(b.build(_head(b, b.node("Flatten", [flat]), 24)), seed=5)
