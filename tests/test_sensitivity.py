"""dtd.sensitivity: the gradient computed by the C++ engine equals finite differences."""

from __future__ import annotations

import numpy as np
import pytest

import dtd


@pytest.fixture(scope="module")
def example() -> dtd.Example:
    return dtd.load_example()


@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_matches_finite_differences(example: dtd.Example, seed: int) -> None:
    rng = np.random.default_rng(seed)
    # Noise keeps every pre-activation away from the ReLU kink (digits have exact zeros, biases can be exactly 0,
    # and there a one-sided gradient and a central difference legitimately differ).
    x = rng.uniform(0.05, 0.95, (2, 1, 28, 28))
    target = [3, 7]
    g = dtd.sensitivity(example.model, x, target=target, kind="gradient")
    assert g.shape == x.shape
    h = 1e-6
    for _ in range(6):
        n = int(rng.integers(2))
        i = (n, 0, int(rng.integers(4, 24)), int(rng.integers(4, 24)))
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        fd = (example.model.forward(xp)[n, target[n]] - example.model.forward(xm)[n, target[n]]) / (2 * h)
        assert g[i] == pytest.approx(fd, rel=1e-4, abs=1e-7)


def test_kinds_and_shapes(example: dtd.Example) -> None:
    x = example.images[:3]
    g = dtd.sensitivity(example.model, x, kind="gradient")
    np.testing.assert_allclose(dtd.sensitivity(example.model, x), g * g, rtol=1e-6)
    np.testing.assert_allclose(dtd.sensitivity(example.model, x, kind="gradient_x_input"), g * x, rtol=1e-6)
    multi = dtd.sensitivity(example.model, x, target=np.array([[0, 1], [2, 3], [4, 5]]))
    assert multi.shape == (3, 2, 1, 28, 28)
    np.testing.assert_allclose(multi[:, 1], dtd.sensitivity(example.model, x, target=[1, 3, 5]), rtol=1e-6)
    single = dtd.sensitivity(example.model, x[0])
    assert single.shape == (1, 28, 28)
    assert single.dtype == np.float32


def test_bad_arguments(example: dtd.Example) -> None:
    with pytest.raises(ValueError, match="kind"):
        dtd.sensitivity(example.model, example.images[:1], kind="hessian")
    with pytest.raises(ValueError, match="out of range"):
        dtd.sensitivity(example.model, example.images[:1], target=10)
