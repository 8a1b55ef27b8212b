"""Regression tests for issue 10's defects that concern the runtime (not the importer): the output shape, unaligned
inputs, the process-wide thread count, and the bounded buffer cache."""

from __future__ import annotations

import threading

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import dtd
from builders import GraphBuilder, random_input, run_ort


def _classifier(declared_output: list[str | int] | None) -> onnx.ModelProto:
    b = GraphBuilder((6,), seed=2)
    y = b.gemm(b.relu(b.gemm("x", 8)), 10)
    model = b.build(y)
    model.graph.ClearField("output")
    model.graph.output.append(helper.make_tensor_value_info(y, TensorProto.FLOAT, declared_output))
    return model


def test_forward_shape_comes_from_the_graph_not_the_declared_rank() -> None:
    # Issue 10, defect 6: an output declared ["N"] made forward return [20] for a batch of 2.
    model = _classifier(["N"])
    x = random_input((2, 6), seed=1)
    out = dtd.load(model).forward(x)
    assert out.shape == (2, 10)
    np.testing.assert_allclose(out, run_ort(_classifier(["N", 10]), x), rtol=1e-5, atol=1e-6)


def test_flatten_axis2_still_merges_the_batch_as_onnx_does() -> None:
    b = GraphBuilder((3, 4, 5), seed=3)
    y = b.gemm(b.node("Flatten", ["x"], axis=2), 7)
    model = b.build(y)
    x = random_input((2, 3, 4, 5), seed=2)
    out = dtd.load(model).forward(x)
    want = run_ort(model, x)
    assert out.shape == want.shape == (6, 7)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)


def test_unaligned_float32_input() -> None:
    # Issue 10, defect 14: a C-contiguous float32 view at an odd byte offset was read through a misaligned pointer.
    ex = dtd.load_example()
    x = ex.images[:2].astype(np.float32)
    raw = bytearray(x.nbytes + 1)
    view = np.frombuffer(raw, dtype=np.float32, count=x.size, offset=1).reshape(x.shape)
    view[...] = x
    assert not view.flags.aligned
    np.testing.assert_array_equal(ex.model.forward(view), ex.model.forward(x))
    np.testing.assert_array_equal(
        dtd.explain(ex.model, view, low=ex.low, high=ex.high),
        dtd.explain(ex.model, x, low=ex.low, high=ex.high),
    )


def test_set_num_threads_is_process_wide() -> None:
    # Issue 10, defect 11: OpenMP's thread count is per calling thread; dtd's setting now applies to every thread.
    ex = dtd.load_example()
    before = dtd.get_num_threads()
    seen: list[int] = []
    try:
        dtd.set_num_threads(1)

        def work() -> None:
            dtd.explain(ex.model, ex.images[:1], low=ex.low, high=ex.high)
            seen.append(dtd._core._calling_thread_omp_threads())
            seen.append(dtd.get_num_threads())

        t = threading.Thread(target=work)
        t.start()
        t.join()
        assert seen == [1, 1]
    finally:
        dtd.set_num_threads(before)


def test_buffer_cache_is_bounded() -> None:
    # Issue 10, defect 10: freed buffers were cached by exact size up to 1 GiB, so explaining batches of every size
    # from 1 to 64 held 1.4 GB. Now size classes share blocks between batch sizes and the cache has a limit.
    ex = dtd.load_example()
    x = np.repeat(ex.images, 2, axis=0)
    limit = 32 << 20
    dtd.set_cached_memory_limit(limit)
    try:
        for n in range(1, 65, 3):
            dtd.explain(ex.model, x[:n], low=ex.low, high=ex.high)
            assert dtd.cached_memory() <= limit
        dtd.set_cached_memory_limit(0)
        assert dtd.cached_memory() == 0
        dtd.explain(ex.model, x[:4], low=ex.low, high=ex.high)
        assert dtd.cached_memory() == 0
    finally:
        dtd.set_cached_memory_limit(256 << 20)
    assert dtd.release_cached_memory() >= 0


def test_non_finite_input_is_refused() -> None:
    # Issue 10, defect 13: NaN or inf in the input gave non-finite relevance without a word.
    ex = dtd.load_example()
    x = ex.images[:3].copy()
    x[1, 0, 5, 7] = np.nan
    x[2, 0, 0, 0] = np.inf
    with pytest.raises(ValueError, match=r"2 NaN or infinite value\(s\).*index \[1, 0, 5, 7\]"):
        dtd.explain(ex.model, x)
    with pytest.raises(ValueError, match="NaN or infinite"):
        dtd.sensitivity(ex.model, x)


def test_bounds_beyond_float32_are_refused() -> None:
    ex = dtd.load_example()
    x = ex.images[:1].astype(np.float32)
    with pytest.raises(ValueError, match="do not fit in float32"):
        dtd.explain(ex.model, x, low=-1e300, high=1e300)
    # the same bounds are fine in float64
    assert np.all(np.isfinite(dtd.explain(ex.model, x.astype(np.float64), low=-1e300, high=1e300)))


def test_float32_overflow_in_the_relevance_is_reported() -> None:
    b = GraphBuilder((4,), seed=1)
    w = b.const(np.full((4, 4), 1e20, dtype=np.float32))
    y = b.node("Gemm", [b.relu(b.node("Gemm", ["x", w], transB=1)), w], transB=1)
    model = dtd.load(b.build(y))
    x = np.full((1, 4), 1e10, dtype=np.float32)
    with pytest.raises(ValueError, match=r"NaN or infinite|float32 overflow"):
        dtd.explain(model, x, rules="positive")
