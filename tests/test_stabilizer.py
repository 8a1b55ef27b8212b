"""The default stabilizer of the rules whose denominators do not depend on the input (w², flat).

Issue 9, bug 2: with an absolute eps = 1e-6, a BatchNorm-folded first layer whose weights are ~1e-4 (sum of w² per
output ~1e-6) absorbed half of all relevance. By default these rules now scale eps with the denominator, so they
absorb at most eps / (1 + eps) whatever the weights' scale; an explicit eps stays the absolute stabilizer.
"""

from __future__ import annotations

import numpy as np
import pytest

import dtd
from builders import GraphBuilder, random_input


def _model(scale: float, kind: str) -> dtd.Model:
    b = GraphBuilder((3, 8, 8) if kind == "conv" else (20,), seed=7)
    if kind == "conv":
        w = b.weight((6, 3, 3, 3), scale=scale)
        y = b.node("Conv", ["x", w, b.weight((6,), 0.5 * scale)], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        y = b.node("Flatten", [b.relu(y)], axis=1)
    else:
        y = b.relu(
            b.node("Gemm", ["x", b.weight((12, 20), scale=scale), b.weight((12,), 0.5 * scale)], transB=1)
        )
    return dtd.load(b.build(b.gemm(y, 4)))


def _first_layer_kept(details: dtd.Explanation) -> np.ndarray:
    first = next(layer for layer in details.layers if layer.kind in ("conv", "dense"))
    return np.asarray(first.relevance_in) / np.asarray(first.relevance_out)


@pytest.mark.parametrize("kind", ["conv", "dense"])
@pytest.mark.parametrize("scale", [1e-4, 1.0, 1e2])
@pytest.mark.parametrize("rule", ["wsquare", "flat"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_default_absorbs_at_most_1e6(kind: str, scale: float, rule: str, dtype: type) -> None:
    model = _model(scale, kind)
    x = random_input((3, *model.input_shape), seed=4, dtype=dtype)
    first = dtd.rules.WSquare() if rule == "wsquare" else dtd.rules.Flat()
    details = dtd.explain(model, x, rules=dtd.rules.Composite(first=first), return_details=True)
    kept = _first_layer_kept(details)
    tol = 1e-6 if dtype == np.float64 else 1e-6 + 1e-5  # float32 sums round at ~1e-7 per term
    np.testing.assert_array_less(np.abs(1.0 - kept), tol)


def test_real_preset_on_a_batchnorm_folded_first_layer() -> None:
    # The case: the w² layer of the default preset conserves whatever the weight scale.
    model = _model(1e-4, "conv")
    x = random_input((2, 3, 8, 8), seed=5, dtype=np.float64)
    kept = _first_layer_kept(dtd.explain(model, x, rules="real", return_details=True))
    np.testing.assert_array_less(np.abs(1.0 - kept), 1e-6)


def test_explicit_eps_stays_absolute() -> None:
    # eps given by the caller is the absolute stabilizer z + eps sign(z) (zennit's): with sum w² ~ 1e-6 per output an
    # eps of 1e-6 absorbs a large share, exactly as the formula says.
    model = _model(1e-4, "conv")
    x = random_input((2, 3, 8, 8), seed=5, dtype=np.float64)
    kept = _first_layer_kept(dtd.explain(model, x, rules="real", eps=1e-6, return_details=True))
    assert np.all(kept < 0.9)
    details = dtd.explain(
        model, x, rules=dtd.rules.Composite(first=dtd.rules.WSquare(eps=1e-12)), return_details=True
    )
    np.testing.assert_array_less(np.abs(1.0 - _first_layer_kept(details)), 1e-5)


def test_all_zero_receptive_field_absorbs_without_nan() -> None:
    # A conv output whose weights are all zero has a zero w² denominator: its relevance is absorbed, not NaN.
    b = GraphBuilder((1, 4, 4), seed=1)
    w = np.zeros((2, 1, 3, 3), dtype=np.float32)
    w[0] = 0.5
    y = b.node("Conv", ["x", b.const(w)], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    model = dtd.load(b.build(b.gemm(b.node("Flatten", [b.relu(y)], axis=1), 3)))
    x = np.abs(random_input((2, 1, 4, 4), seed=2, dtype=np.float64))
    r = dtd.explain(model, x, rules="real")
    assert np.all(np.isfinite(r))
