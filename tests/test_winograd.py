"""dtd.explain(..., algorithm="winograd"): Winograd F(2x2, 3x3) for the float32 stride-1 3x3 convolutions.

It must keep what the rules promise: relevance within 1e-4 (relative L2, as test_relevance_reference.py) of the
float64 reference on the test nets, on sparse ReLU-like and on heavy-tailed (exp-normal) activations; relevance
exactly 0 where the input is 0; R >= 0 under z+; conservation; the same bits for any thread count.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import dtd
import reference as ref
import relnets as rn
from test_relevance_reference import NET_KEYS, config, loaded, make_input, rel_err

TOL = 1e-4
CONFIGS = ("zplus", "wsquare_first", "zbox_scalar", "zbox_full", "zplus_bias", "epsilon")


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("key", NET_KEYS)
def test_test_nets_match_reference(key: str, cfg: str) -> None:
    net, model = loaded(key, 0)
    # 8 samples: enough 2x2 output tiles that Winograd runs on the small test nets too (Conv2d::winograd_pays)
    x, low, high = make_input(net, 8, 0, cfg.split("_")[1] if cfg.startswith("zbox") else None)
    if cfg.startswith("zplus"):
        x = np.abs(x)  # z+ on the first layer: the usual non-negative input
    default, first, overrides, maxpool, add = config(cfg, low, high)
    comp = dtd.rules.Composite(
        default=ref.to_dtd(default),
        first=None if first is None else ref.to_dtd(first),
        maxpool=maxpool,
        add=add,
    )
    got = dtd.explain(model, x.astype(np.float32), rules=comp, algorithm="winograd")
    want = ref.explain(
        net, x.astype(np.float64), ref.assign(net, default, first, overrides), maxpool=maxpool, add=add
    )
    tol = 1e-2 if cfg == "epsilon" else TOL  # as test_float32_matches_reference: LRP-eps is ill-conditioned
    assert got.dtype == np.float32 and rel_err(got, want) <= tol


def vgg_like(seed: int, bias: str, channels: int = 3) -> rn.Net:
    """3x3 stride-1 convolutions (pads 1, one with 0) with ReLU and max pooling, then dense layers."""
    b = rn.Builder(f"vgg_like{seed}", (channels, 18, 18), np.random.default_rng(seed), bias)
    for m in (16, 16):
        b.conv(m)
        b.relu()
    b.maxpool(2)
    b.conv(32)
    b.relu()
    b.conv(32, pads=(0, 0, 0, 0))
    b.relu()
    b.flatten()
    b.dense(16)
    b.relu()
    b.dense(5)
    return b.net


def activations(kind: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """ReLU-like inputs: sparse (90 % zeros, whole zero regions) or heavy-tailed (exp-normal)."""
    rng = np.random.default_rng(seed)
    if kind == "sparse":
        x = rng.uniform(0.0, 2.0, shape)
        x[rng.uniform(size=shape) < 0.9] = 0.0
        x[..., 3:11, 2:12] = 0.0
        x[:, 1] = 0.0  # a whole zero channel
    else:
        x = np.exp(rng.normal(0.0, 1.5, shape))
        x[rng.uniform(size=shape) < 0.3] = 0.0
    return x.astype(np.float32)


@pytest.mark.parametrize("bias", ["random", "nonpositive", "none"])
@pytest.mark.parametrize("kind", ["sparse", "expnormal"])
@pytest.mark.parametrize("seed", [0, 1], ids=lambda s: f"seed{s}")
def test_activations_match_reference(seed: int, kind: str, bias: str) -> None:
    net = vgg_like(seed, bias)
    model = dtd.load(rn.to_onnx(net))
    x = activations(kind, (4, *net.input_shape), seed)
    got = dtd.explain(model, x, rules="positive", algorithm="winograd")
    want = ref.explain(net, x.astype(np.float64), ref.assign(net, ref.ZPlus(), None, None))
    assert rel_err(got, want) <= TOL
    # exact zeros kept: no relevance where the input is 0
    assert np.all(got[x == 0] == 0)
    # positivity: z+ gives R >= 0 for a positive logit
    logits = ref.logits(net, x.astype(np.float64))
    positive = logits.max(1) > 0
    assert np.all(got[positive] >= 0)


@pytest.mark.parametrize("kind", ["sparse", "expnormal", "uniform"])
def test_conservation(kind: str) -> None:
    net = vgg_like(3, "none")
    model = dtd.load(rn.to_onnx(net))
    shape = (4, *net.input_shape)
    x = activations(kind, shape, 3) if kind != "uniform" else np.random.default_rng(3).uniform(0, 1, shape)
    ex = dtd.explain(model, x.astype(np.float32), rules="positive", algorithm="winograd", return_details=True)
    total = ex.relevance.reshape(4, -1).sum(1, dtype=np.float64)
    logit = ex.logits.max(1)
    keep = logit > 0
    np.testing.assert_allclose(total[keep], logit[keep], rtol=1e-4)
    for layer in ex.layers:
        if layer.kind == "conv":
            np.testing.assert_allclose(layer.relevance_in, layer.relevance_out, rtol=1e-4, atol=1e-7)


def test_close_to_exact_but_another_path() -> None:
    net = vgg_like(4, "random")
    model = dtd.load(rn.to_onnx(net))
    x = np.random.default_rng(4).uniform(0, 1, (2, *net.input_shape)).astype(np.float32)
    exact = dtd.explain(model, x, low=0.0, high=1.0)
    wino = dtd.explain(model, x, low=0.0, high=1.0, algorithm="winograd")
    assert not np.array_equal(exact, wino)
    assert rel_err(wino, exact.astype(np.float64)) <= TOL
    # the choice is per call: the same cached explainer gives the exact bits again
    assert np.array_equal(dtd.explain(model, x, low=0.0, high=1.0), exact)


def test_narrow_layers_run_exact() -> None:
    """Below 32 output tiles over the batch a layer runs the exact path (Winograd would be slower there)."""
    b = rn.Builder("tiny", (3, 6, 6), np.random.default_rng(7), "random")  # 6x6 outputs: 9 tiles per sample
    for m in (8, 8):
        b.conv(m)
        b.relu()
    b.flatten()
    b.dense(4)
    model = dtd.load(rn.to_onnx(b.net))
    x = np.random.default_rng(7).uniform(0, 1, (4, *b.net.input_shape)).astype(np.float32)
    kw: dict[str, Any] = {"low": 0.0, "high": 1.0}
    for n in (1, 3):  # 9 and 27 tiles: exact, bit for bit
        assert np.array_equal(
            dtd.explain(model, x[:n], algorithm="winograd", **kw), dtd.explain(model, x[:n], **kw)
        )
    wino = dtd.explain(model, x, algorithm="winograd", **kw)  # 36 tiles: Winograd
    exact = dtd.explain(model, x, **kw)
    assert not np.array_equal(wino, exact)
    assert rel_err(wino, exact.astype(np.float64)) <= TOL


def test_bit_identical_across_threads() -> None:
    net = vgg_like(5, "random", channels=8)
    model = dtd.load(rn.to_onnx(net))
    x = activations("expnormal", (3, *net.input_shape), 5)
    before = dtd.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            dtd.set_num_threads(threads)
            results.append(dtd.explain(model, x, rules="positive", algorithm="winograd"))
    finally:
        dtd.set_num_threads(before)
    for r in results[1:]:
        assert np.array_equal(r, results[0])


@pytest.mark.parametrize(
    ("algorithm", "dtype", "match"),
    [
        ("winograd4x4", np.float32, "algorithm must be one of"),
        ("Winograd", np.float32, "algorithm must be one of"),
        (None, np.float32, "algorithm must be one of"),
        ("winograd", np.float64, "float32 only"),
    ],
)
def test_algorithm_is_checked(algorithm: Any, dtype: Any, match: str) -> None:
    net = vgg_like(6, "random")
    model = dtd.load(rn.to_onnx(net))
    x = np.zeros((1, *net.input_shape), dtype=dtype)
    with pytest.raises(ValueError, match=match):
        dtd.explain(model, x, algorithm=algorithm)


def test_float64_exact_unchanged() -> None:
    net = vgg_like(7, "random")
    model = dtd.load(rn.to_onnx(net))
    x = np.random.default_rng(7).uniform(0, 1, (2, *net.input_shape))
    got = dtd.explain(model, x, rules="positive", algorithm="exact")
    want = ref.explain(net, x, ref.assign(net, ref.ZPlus(), None, None))
    assert rel_err(got, want) <= 1e-10
