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
