"""Tests for dtd.evaluate: region perturbation curves and AOPC (Samek et al., IEEE TNNLS 2017)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from dtd import evaluate


class LinearToy:
    """f(x) = [sum(w * x), -sum(w * x)] per sample: easy to compute by hand."""

    def __init__(self, w: npt.NDArray[np.float64]) -> None:
        self.w = w
        self.calls = 0

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        s = (x.reshape(x.shape[0], -1) * self.w.reshape(1, -1)).sum(axis=1)
        return np.stack([s, -s], axis=1)


def test_aopc_formula_by_hand() -> None:
    w = np.array([1.0, 2.0, 3.0, 4.0])
    model = LinearToy(w)
    x = np.array([[1.0, 1.0, 1.0, 1.0]])
    R = x * w  # region order: 3, 2, 1, 0
    res = evaluate.pixel_flipping(model, x, R, target=0, patch=1, perturbation="zero")
    # f = 10, then remove 4, 3, 2, 1
    np.testing.assert_allclose(res.curve, [[10.0, 6.0, 3.0, 1.0, 0.0]])
    assert res.order.tolist() == [[3, 2, 1, 0]]
    expected = (0 + 4 + 7 + 9 + 10) / 5
    assert res.aopc == pytest.approx(expected)
    assert res.aopc_per_sample.tolist() == pytest.approx([expected])
    assert res.steps == 4 and res.targets.tolist() == [0]
    assert evaluate.aopc(res.curve) == pytest.approx(expected)


def test_fewer_steps_and_several_regions_per_step() -> None:
    w = np.array([1.0, 2.0, 3.0, 4.0])
    x = np.ones((1, 4))
    res = evaluate.pixel_flipping(
        LinearToy(w), x, x * w, target=0, patch=1, perturbation="zero", regions_per_step=2
    )
    np.testing.assert_allclose(res.curve, [[10.0, 3.0, 0.0]])
    res = evaluate.pixel_flipping(LinearToy(w), x, x * w, target=0, patch=1, perturbation="zero", steps=1)
    np.testing.assert_allclose(res.curve, [[10.0, 6.0]])
    assert res.aopc == pytest.approx(2.0)


def test_image_patches_by_hand() -> None:
    # 1x4x4 image, 2x2 patches -> 4 regions numbered row-major; relevance puts region 3 first.
    w = np.ones((1, 4, 4))
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    R = np.zeros_like(x)
    R[0, 0, 2:, 2:] = 5.0  # region 3
    R[0, 0, :2, :2] = 1.0  # region 0
    R[0, 0, :2, 2:] = -1.0  # region 1 (last)
    res = evaluate.pixel_flipping(LinearToy(w), x, R, target=0, patch=(2, 2), perturbation="zero")
    assert res.order.tolist() == [[3, 0, 2, 1]]
    sums = {0: 0 + 1 + 4 + 5, 1: 2 + 3 + 6 + 7, 2: 8 + 9 + 12 + 13, 3: 10 + 11 + 14 + 15}
    total = 120.0
    expected = [total]
    for r in (3, 0, 2, 1):
        expected.append(expected[-1] - sums[r])
    np.testing.assert_allclose(res.curve[0], expected)
    np.testing.assert_allclose(evaluate.region_scores(R, (2, 2)), [[4.0, -4.0, 0.0, 20.0]])


def test_patch_spans_channels_and_ragged_edges() -> None:
    x = np.ones((1, 2, 5, 5))
    R = np.zeros_like(x)
    R[0, 1, 4, 4] = 1.0  # bottom-right 1x1 edge region of a 3x3 grid, only in channel 1
    res = evaluate.pixel_flipping(LinearToy(np.ones(50)), x, R, target=0, patch=2, perturbation="zero")
    assert res.order[0, 0] == 8 and res.order.shape == (1, 9)
    np.testing.assert_allclose(res.curve[0, :2], [50.0, 48.0])  # both channels of one pixel removed
    assert res.curve[0, -1] == 0.0


@pytest.mark.parametrize("seed", [0, 1])
def test_curve_shape_and_uniform_perturbation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (3, 1, 6, 6)).astype(np.float32)
    R = rng.standard_normal(x.shape)
    model = LinearToy(rng.standard_normal(36))
    res = evaluate.pixel_flipping(model, x, R, patch=(2, 3), seed=seed, batch_size=7)
    assert res.curve.shape == (3, 7) and res.order.shape == (3, 6)
    np.testing.assert_allclose(res.curve[:, 0], model.forward(x)[np.arange(3), res.targets], rtol=1e-5)
    assert res.targets.tolist() == model.forward(x).argmax(axis=1).tolist()
    # seeded: the same call gives the same curve, another seed another one
    again = evaluate.pixel_flipping(model, x, R, patch=(2, 3), seed=seed)
    np.testing.assert_array_equal(res.curve, again.curve)
    other = evaluate.pixel_flipping(model, x, R, patch=(2, 3), seed=seed + 100)
    assert not np.allclose(res.curve[:, -1], other.curve[:, -1])
    # fully perturbed: f of uniform values in [low, high]
    lo, hi = 0.25, 0.5
    full = evaluate.pixel_flipping(model, x, R, patch=(2, 3), low=lo, high=hi, seed=seed)
    last = full.curve[:, -1]
    w = model.w
    bound = np.abs(w).sum() * hi
    assert np.all(np.abs(last) <= bound + 1e-5)
    assert res.score_drop.shape == res.curve.shape and res.mean_curve.shape == (7,)


def test_mean_and_constant_perturbation() -> None:
    x = np.arange(8, dtype=np.float64).reshape(2, 1, 2, 2)
    model = LinearToy(np.ones(4))
    R = np.ones_like(x)
    res = evaluate.pixel_flipping(model, x, R, target=[0, 1], patch=1, perturbation="mean")
    # fully perturbed input is the per-sample mean everywhere: the sum is unchanged
    np.testing.assert_allclose(res.curve[:, -1], res.curve[:, 0])
    res = evaluate.pixel_flipping(model, x, R, target=0, patch=1, perturbation=2.0)
    np.testing.assert_allclose(res.curve[:, -1], [8.0, 8.0])
    assert res.perturbation == "constant 2"


def test_callable_model_and_single_sample() -> None:
    def f(x: np.ndarray) -> np.ndarray:
        return x.reshape(x.shape[0], -1).sum(axis=1, keepdims=True)

    x = np.ones(6)
    res = evaluate.pixel_flipping(f, x, np.arange(6.0), patch=2, perturbation="zero")
    np.testing.assert_allclose(res.curve, [[6.0, 4.0, 2.0, 0.0]])
    assert res.order.tolist() == [[2, 1, 0]]


def test_errors() -> None:
    model = LinearToy(np.ones(4))
    x = np.ones((1, 4))
    with pytest.raises(ValueError, match="shape"):
        evaluate.pixel_flipping(model, x, np.ones((1, 3)))
    with pytest.raises(ValueError, match="steps"):
        evaluate.pixel_flipping(model, x, x, patch=1, steps=5)
    with pytest.raises(ValueError, match="perturbation"):
        evaluate.pixel_flipping(model, x, x, patch=1, perturbation="blur")
    with pytest.raises(ValueError, match="target"):
        evaluate.pixel_flipping(model, x, x, patch=1, target=2)
    with pytest.raises(ValueError, match="patch"):
        evaluate.pixel_flipping(model, x, x, patch=(1, 1))


@pytest.mark.parametrize("seed", [0, 7])
def test_random_relevance(seed: int) -> None:
    a = evaluate.random_relevance((2, 1, 4, 4), seed)
    assert a.shape == (2, 1, 4, 4) and a.dtype == np.float64
    np.testing.assert_array_equal(a, evaluate.random_relevance((2, 1, 4, 4), seed))
    assert not np.array_equal(a, evaluate.random_relevance((2, 1, 4, 4), seed + 1))


@pytest.mark.parametrize("seed", [0])
def test_dtd_beats_random_on_the_shipped_digits(seed: int) -> None:
    import dtd
    from dtd.examples import load_example

    ex = load_example()
    x = ex.images
    R = dtd.explain(ex.model, x, low=ex.low, high=ex.high)
    assert R.shape == x.shape
    rand_R = evaluate.random_relevance(x.shape, seed)
    kw = {"patch": (2, 2), "steps": 25, "low": ex.low, "high": ex.high, "seed": seed}
    morf = evaluate.pixel_flipping(ex.model, x, R, **kw)  # type: ignore[arg-type]
    rand = evaluate.pixel_flipping(ex.model, x, rand_R, **kw)  # type: ignore[arg-type]
    assert morf.curve.shape == (len(x), 26)
    assert morf.targets.tolist() == rand.targets.tolist()
    np.testing.assert_allclose(morf.curve[:, 0], rand.curve[:, 0])
    # Uniform noise patches hurt the score whatever the order (random order: AOPC about 5.7 logits on
    # these digits), but removing the regions DTD ranks first hurts much faster (about 9.6).
    assert morf.aopc > 1.3 * rand.aopc > 0
    # per sample, DTD wins on a clear majority of digits (29 of 32 with this seed)
    assert (morf.aopc_per_sample > rand.aopc_per_sample).mean() >= 0.75


def test_compare_and_summary_by_hand() -> None:
    """Two samples of a linear toy, zero perturbation, patch 1: the curves and the paired AOPC difference by hand."""
    w = np.array([1.0, 2.0, 3.0, 4.0])
    x = np.array([[1.0, 1.0, 1.0, 1.0], [2.0, 0.0, 0.0, 1.0]])
    best = x * w
    worst = -best
    res = evaluate.compare(LinearToy(w), x, {"best": best, "worst": worst}, patch=1, perturbation="zero")
    assert list(res) == ["best", "worst"] and res["best"].targets.tolist() == [0, 0]
    s = evaluate.comparison_summary(res, baseline="worst")
    # sample 0: best removes 4, 3, 2, 1 -> drops 0, 4, 7, 9, 10 (AOPC 6); worst removes 1, 2, 3, 4 -> 0, 1, 3, 6, 10 (4)
    # sample 1: f = 6; best removes 4 then 2 -> drops 0, 4, 6, 6, 6 (4.4); worst: 0, 0, 0, 2, 6 (1.6)
    assert s["methods"]["best"]["aopc"] == pytest.approx((6.0 + 4.4) / 2)
    assert s["methods"]["worst"]["aopc"] == pytest.approx((4.0 + 1.6) / 2)
    assert s["methods"]["best"]["aopc_std"] == pytest.approx(np.std([6.0, 4.4], ddof=1))
    np.testing.assert_allclose(s["methods"]["best"]["mean_curve"], [8.0, 4.0, 1.5, 0.5, 0.0])
    v = s["versus_baseline"]["best"]
    assert v["mean"] == pytest.approx(2.4) and v["wins"] == 1.0
    assert v["sem"] == pytest.approx(np.std([2.0, 2.8], ddof=1) / np.sqrt(2))
    assert v["ci95"][0] == pytest.approx(2.4 - 1.96 * v["sem"])
    assert "versus_baseline" not in evaluate.comparison_summary(res, baseline=None)
    with pytest.raises(ValueError, match="at least one"):
        evaluate.compare(LinearToy(w), x, {})


def test_uniform_noise_with_per_channel_bounds() -> None:
    x = np.zeros((1, 2, 4, 4))
    res = evaluate.pixel_flipping(
        lambda v: v.reshape(len(v), 2, -1).sum(axis=2),
        x,
        np.ones_like(x),
        target=0,
        patch=4,
        low=np.array([0.0, 10.0]).reshape(2, 1, 1),
        high=np.array([1.0, 11.0]).reshape(2, 1, 1),
    )
    # channel 0's noise in [0, 1]: its 16 values sum to between 0 and 16
    assert 0.0 < -res.score_drop[0, 1] < 16.0
