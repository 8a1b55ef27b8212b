"""Regression tests for the trace/relevance contract: a layer's relevance pass reads only the forward values it
declares (relevance_reads_inputs / relevance_reads_output); everything else is released during the trace.

Issue 9, bug 1: Concat took its row count from its forward output, which the trace had released when the Concat
fed a Relu, a Flatten/Reshape or another Concat; the relevance was uninitialised memory.
"""

from __future__ import annotations

import numpy as np
import pytest

import dtd
from builders import GraphBuilder, random_input


def _concat_then(kind: str) -> GraphBuilder:
    b = GraphBuilder((3, 8, 8), seed=3)
    a = b.conv("x", 4, (3, 3), pads=[1, 1, 1, 1])
    c = b.conv("x", 5, (1, 1))
    y = b.node("Concat", [a, c], axis=1)
    if kind == "relu":
        y = b.relu(y)
    elif kind == "concat":
        d = b.conv("x", 2, (1, 1))
        y = b.node("Concat", [y, d], axis=1)
        y = b.relu(y)
    elif kind == "reshape":
        y = b.node("Reshape", [y, b.const(np.array([0, 9, 64], dtype=np.int64))])
        y = b.relu(y)
    y = b.node("Flatten", [y], axis=1)
    return b, b.gemm(y, 6)


@pytest.mark.parametrize("kind", ["relu", "flatten", "concat", "reshape"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_concat_relevance_is_deterministic_and_conservative(kind: str, dtype: type) -> None:
    b, out = _concat_then(kind)
    model = dtd.load(b.build(out))
    x = random_input((4, 3, 8, 8), seed=1, dtype=dtype)
    first = dtd.explain(model, x, rules="positive", return_details=True)
    for _ in range(2):
        again = dtd.explain(model, x, rules="positive")
        np.testing.assert_array_equal(again, first.relevance)
    # Concat, Relu, Flatten and Reshape pass relevance on without loss: every layer above the convs conserves.
    for layer in first.layers:
        if layer.kind in ("concat", "relu", "flatten", "reshape"):
            np.testing.assert_allclose(layer.relevance_in, layer.relevance_out, rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(first.relevance))


def test_every_layer_kind_reads_only_what_it_declares() -> None:
    # The network hands a layer's relevance pass empty tensors for every value the layer does not declare it
    # reads, in every trace; a layer that read one anyway would see a batch of 0 in all tests, not only in the
    # graphs where the trace happened to release it. This net puts each kind in front of consumers that make the
    # trace release its output.
    b = GraphBuilder((3, 8, 8), seed=5)
    a = b.relu(b.conv("x", 4, (3, 3), pads=[1, 1, 1, 1]))
    p = b.node("MaxPool", [a], kernel_shape=[2, 2], strides=[2, 2])
    q = b.node("AveragePool", [a], kernel_shape=[2, 2], strides=[2, 2])
    s = b.node("Add", [p, q])
    c = b.node("Concat", [s, p], axis=1)
    g = b.node("GlobalAveragePool", [b.relu(c)])
    out = b.gemm(b.node("Flatten", [g], axis=1), 5)
    model = dtd.load(b.build(out))
    x = np.abs(random_input((3, 3, 8, 8), seed=2, dtype=np.float64))
    r1 = dtd.explain(model, x, rules="positive", eps=1e-12, return_details=True)
    r2 = dtd.explain(model, x[:1], rules="positive", eps=1e-12)
    np.testing.assert_allclose(r2[0], r1.relevance[0], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(
        r1.relevance.reshape(3, -1).sum(1), r1.logits[np.arange(3), r1.targets], rtol=1e-8
    )
