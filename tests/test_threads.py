"""Results do not depend on the thread count: bit-identical with 1 and with several threads."""

from __future__ import annotations

import numpy as np
import pytest

import dtd


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_vs_many_threads_bit_identical(dtype: type) -> None:
    ex = dtd.load_example()
    x = ex.images[:5].astype(dtype)
    before = dtd.get_num_threads()
    try:
        results = []
        for threads in (1, 3, 4):
            dtd.set_num_threads(threads)
            assert dtd.get_num_threads() == threads
            results.append(
                (
                    ex.model.forward(x),
                    dtd.explain(ex.model, x, low=0.0, high=1.0),
                    dtd.explain(ex.model, x, rules="real"),
                )
            )
    finally:
        dtd.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            assert np.array_equal(a, b)


def test_large_layers_bit_identical_across_threads() -> None:
    """The paths a small model does not reach: convolutions with large outputs (banded transposed pass), GEMMs
    split by the thread count, a large dense layer at batch 1 (one sweep for the forward and z+'s denominator)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(11)
    w1 = rng.normal(0, 0.3, (16, 3, 3, 3)).astype(np.float32)
    w2 = rng.normal(0, 0.1, (32, 16, 3, 3)).astype(np.float32)
    w3 = rng.normal(0, 0.01, (32 * 32 * 32, 40)).astype(np.float32)  # 1.3 M weights
    w4 = rng.normal(0, 0.1, (40, 7)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c1"], ["r1"]),
            helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
            helper.make_node("Relu", ["c2"], ["r2"]),
            helper.make_node("Flatten", ["r2"], ["f"]),
            helper.make_node("MatMul", ["f", "w3"], ["h"]),
            helper.make_node("Relu", ["h"], ["r3"]),
            helper.make_node("MatMul", ["r3", "w4"], ["y"]),
        ],
        "large",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 64, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 7])],
        [numpy_helper.from_array(w, n) for w, n in ((w1, "w1"), (w2, "w2"), (w3, "w3"), (w4, "w4"))],
    )
    model = dtd.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    before = dtd.get_num_threads()
    try:
        for x in (rng.uniform(0, 1, (1, 3, 64, 64)), rng.uniform(0, 1, (3, 3, 64, 64))):
            for dtype in (np.float32, np.float64):
                results = []
                for threads in (1, 2, 3):
                    dtd.set_num_threads(threads)
                    xd = x.astype(dtype)
                    results.append(
                        (model.forward(xd), dtd.explain(model, xd, low=0.0, high=1.0), dtd.explain(model, xd))
                    )
                for other in results[1:]:
                    for a, b in zip(results[0], other, strict=True):
                        assert np.array_equal(a, b)
                assert np.abs(results[0][1]).max() > 0
    finally:
        dtd.set_num_threads(before)
