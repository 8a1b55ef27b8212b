"""dtd.explain's surface: shapes, dtypes, strides, and the errors it raises with useful messages."""

from __future__ import annotations

import functools
import re
from typing import Any

import numpy as np
import pytest

import dtd
import reference as ref
import relnets as rn

R = dtd.rules


@functools.cache
def loaded(key: str, seed: int = 0) -> tuple[rn.Net, Any]:
    """A net of the given family and the dtd model imported from its ONNX export."""
    net = rn.all_nets(seed)[key]
    return net, dtd.load(rn.to_onnx(net))


def batch(net: rn.Net, n: int, seed: int = 0) -> np.ndarray:
    """A float64 batch in [-1, 1]."""
    return np.random.default_rng(seed).uniform(-1, 1, (n, *net.input_shape))


# ---------------------------------------------------------------------------------------------------
# Shapes, dtypes, strides


@pytest.mark.parametrize("rules", ["deep_taylor", "positive", "epsilon"])
@pytest.mark.parametrize("key", ["mlp", "cnn_plain", "resnet"])
def test_single_sample_has_no_batch_axis(key: str, rules: str) -> None:
    net, model = loaded(key)
    x = batch(net, 3)
    full = dtd.explain(model, x, rules=rules)
    assert full.shape == x.shape
    for i in range(3):
        one = dtd.explain(model, x[i], rules=rules)
        assert one.shape == x[i].shape
        np.testing.assert_allclose(one, full[i], rtol=1e-12, atol=1e-14 * np.abs(full[i]).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("key", ["mlp", "cnn_depthwise", "concat"])
def test_dtype_follows_input(key: str, dtype: Any) -> None:
    net, model = loaded(key)
    x = batch(net, 2).astype(dtype)
    rel = dtd.explain(model, x, rules="bounded", low=-1.0, high=1.0)
    assert rel.dtype == dtype
    assert rel.shape == x.shape
    det = dtd.explain(model, x, rules="bounded", low=-1.0, high=1.0, return_details=True)
    assert det.relevance.dtype == dtype
    np.testing.assert_array_equal(det.relevance, rel)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_any_strides(dtype: Any) -> None:
    """Non-contiguous and Fortran-ordered inputs give the same result as a C-contiguous copy."""
    net, model = loaded("cnn_stride2_asympad")
    big = np.random.default_rng(1).uniform(-1, 1, (6, net.input_shape[0] * 2, *net.input_shape[1:]))
    big = big.astype(dtype)
    views = [big[::2, ::2], big[1::2, 1::2], np.asfortranarray(big[:3, :3])]
    for v in views:
        assert not v.flags.c_contiguous
        np.testing.assert_array_equal(
            dtd.explain(model, v, rules="real"), dtd.explain(model, np.ascontiguousarray(v), rules="real")
        )


def test_multi_target_shape_single_sample_batch() -> None:
    net, model = loaded("mlp")
    x = batch(net, 2)
    rel = dtd.explain(model, x, target=np.array([[0, 1], [2, 3]]), rules="real")
    assert rel.shape == (2, 2, *net.input_shape)
    assert rel.dtype == np.float64


def test_per_channel_bounds_vector_equals_column() -> None:
    """Per-channel bounds as a [C] vector mean the same as [C, 1, 1]."""
    net, model = loaded("cnn_plain")
    c = net.input_shape[0]
    rng = np.random.default_rng(0)
    low, high = -rng.uniform(0.5, 1.0, c), rng.uniform(0.5, 1.0, c)
    x = rng.uniform(low[:, None, None], high[:, None, None], (3, *net.input_shape))
    col = dtd.explain(model, x, rules="bounded", low=low[:, None, None], high=high[:, None, None])
    vec = dtd.explain(model, x, rules="bounded", low=low, high=high)
    np.testing.assert_array_equal(vec, col)
    want = ref.explain(net, x, ref.preset(net, "bounded", low[:, None, None], high[:, None, None]))
    assert np.linalg.norm(col - want) <= 1e-10 * np.linalg.norm(want)


# ---------------------------------------------------------------------------------------------------
# Errors


def test_low_above_high() -> None:
    net, model = loaded("cnn_plain")
    x = batch(net, 2) * 0.1
    with pytest.raises(ValueError, match=r"(?i)low|high"):
        dtd.explain(model, x, rules="bounded", low=0.5, high=-0.5)
    low = np.full(net.input_shape, -1.0)
    high = np.full(net.input_shape, 1.0)
    low[0, 2, 3] = 1.5
    with pytest.raises(ValueError, match=r"(?i)low|high"):
        dtd.explain(model, x, rules="bounded", low=low, high=high)
    with pytest.raises(ValueError, match=r"(?i)low|high"):
        dtd.explain(model, x, rules=R.Composite(first=R.ZBox(low=0.5, high=-0.5)))


@pytest.mark.parametrize("side", ["low", "high"])
def test_x_outside_bounds(side: str) -> None:
    net, model = loaded("cnn_plain")
    x = batch(net, 3) * 0.5
    x[1, 0, 4, 4] = -2.0 if side == "low" else 2.0
    with pytest.raises(ValueError, match=side):
        dtd.explain(model, x, rules="bounded", low=-1.0, high=1.0)
    with pytest.raises(ValueError, match=side):
        dtd.explain(model, x, rules="deep_taylor", low=-1.0, high=1.0)
    with pytest.raises(ValueError, match=side):
        dtd.explain(model, x, rules=R.Composite(first=R.ZBox(low=-1.0, high=1.0)))


@pytest.mark.parametrize("target", [4, 99, [0, 4], [[0, 4], [1, 2]]], ids=["int", "big", "list", "multi"])
def test_target_out_of_range(target: Any) -> None:
    net, model = loaded("cnn_plain")  # 4 classes
    x = batch(net, 2)
    with pytest.raises(ValueError) as info:
        dtd.explain(model, x, target=np.array(target) if isinstance(target, list) else target, rules="real")
    assert not isinstance(info.value, IndexError)


def test_target_wrong_count_or_output_array_shape() -> None:
    net, model = loaded("cnn_plain")
    x = batch(net, 2)
    with pytest.raises(ValueError):
        dtd.explain(model, x, target=[0, 1, 2], rules="real")
    with pytest.raises(ValueError):
        dtd.explain(model, x, target=np.zeros((2, 5)), rules="real")


def test_rule_on_a_layer_it_cannot_apply_to() -> None:
    net, model = loaded("cnn_plain")
    x = batch(net, 2)
    pool = next(lay.name for lay in model.layers if lay.kind == "maxpool")
    with pytest.raises(ValueError, match=re.escape(pool)):
        dtd.explain(model, x, rules=R.Composite(overrides={pool: R.ZPlus()}))
    idx = [lay.name for lay in model.layers].index(pool)
    with pytest.raises(ValueError, match=re.escape(pool)):
        dtd.explain(model, x, rules=R.Composite(overrides={idx: R.Epsilon()}))


def test_unknown_override_key() -> None:
    net, model = loaded("cnn_plain")
    x = batch(net, 2)
    with pytest.raises((ValueError, KeyError)):
        dtd.explain(model, x, rules=R.Composite(overrides={"no_such_layer": R.ZPlus()}))
    with pytest.raises((ValueError, IndexError)):
        dtd.explain(model, x, rules=R.Composite(overrides={len(model.layers) + 5: R.ZPlus()}))


def test_unknown_preset_lists_presets() -> None:
    net, model = loaded("mlp")
    x = batch(net, 2)
    with pytest.raises(ValueError) as info:
        dtd.explain(model, x, rules="deep_tailor")
    msg = str(info.value)
    for name in ("deep_taylor", "bounded", "real", "positive", "epsilon"):
        assert name in msg


def _mentions_shape(msg: str, shape: tuple[int, ...]) -> bool:
    return re.search(r"\D{1,3}".join(str(s) for s in shape), msg) is not None


@pytest.mark.parametrize("bad", [(3, 8, 8), (2, 7, 8), (8, 8, 2), (5,)], ids=str)
def test_bounds_of_wrong_shape(bad: tuple[int, ...]) -> None:
    net, model = loaded("cnn_plain")  # input (2, 8, 8)
    x = batch(net, 2)
    with pytest.raises(ValueError) as info:
        dtd.explain(model, x, rules="bounded", low=np.full(bad, -1.0), high=1.0)
    msg = str(info.value)
    assert _mentions_shape(msg, bad), msg
    assert _mentions_shape(msg, net.input_shape), msg


def test_bounded_without_bounds() -> None:
    net, model = loaded("cnn_plain")
    with pytest.raises(ValueError, match=r"(?i)low|high|bound"):
        dtd.explain(model, batch(net, 1), rules="bounded")


def test_wrong_input_shape() -> None:
    _, model = loaded("cnn_plain")
    with pytest.raises(ValueError):
        dtd.explain(model, np.zeros((2, 3, 8, 8)), rules="real")
    with pytest.raises(ValueError):
        dtd.explain(model, np.zeros((8, 8)), rules="real")


def test_rule_constructors_follow_the_documented_signatures() -> None:
    """``ZBox(low, high, eps=None)`` and ``Gamma(gamma=0.25, eps=None, bias=False)`` positionally (eps None: the
    rule's default stabilizer, DEFAULT_EPS)."""
    z = R.ZBox(-1.0, 2.0)
    assert (z.low, z.high, z.eps) == (-1.0, 2.0, None)
    g = R.Gamma(0.5)
    assert (g.gamma, g.eps, g.bias) == (0.5, None, False)
    assert R.DEFAULT_EPS == 1e-6
    assert R.Epsilon(0.25).eps == 0.25
    assert R.ZPlus(1e-3).eps == 1e-3
