"""Properties RULES.md promises: conservation (whole net and layer by layer), positivity, zero logit ->
zero relevance, batch independence, and the target forms of dtd.explain."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest

import dtd
import reference as ref
import relnets as rn

SEEDS = (0, 1)
NET_KEYS = tuple(rn.all_nets(0))
R = dtd.rules


@functools.cache
def loaded(key: str, seed: int, bias: str = "random") -> tuple[rn.Net, Any]:
    """A net of the given family and the dtd model imported from its ONNX export."""
    net = rn.all_nets(seed, bias)[key]
    return net, dtd.load(rn.to_onnx(net))


def first_rule(name: str, eps: float, low: Any = -1.0, high: Any = 1.0) -> Any:
    """A first-layer DTD rule by name."""
    return {
        "zplus": R.ZPlus(eps=eps),
        "wsquare": R.WSquare(eps=eps),
        "zbox": R.ZBox(low=low, high=high, eps=eps),
    }[name]


def composite(first: str, eps: float = 1e-12, low: Any = -1.0, high: Any = 1.0) -> Any:
    """z+ everywhere with ``first`` on the first parametric layer, every stabilizer ``eps``."""
    return R.Composite(default=R.ZPlus(eps=eps), first=first_rule(first, eps, low, high), eps=eps)


def inputs(net: rn.Net, n: int, seed: int, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    """A batch inside [low, high]."""
    return np.random.default_rng(500 + seed).uniform(low, high, (n, *net.input_shape))


def conservative_samples(net: rn.Net, x: np.ndarray) -> np.ndarray:
    """Samples where conservation is promised for a bias <= 0 ReLU net: the explained (argmax) logit has a
    clearly positive z+ denominator, i.e. some positive input of the last dense layer meets a positive
    weight. (Below it, every unit with relevance is active, and an active unit with b <= 0 has z+ > 0.)"""
    folded, layers = ref.built(net)
    top = folded.nodes[-1]
    while top.op != "dense":
        top = folded.node(top.inputs[0])
    acts = ref.forward_all(net, x)
    a = np.maximum(acts[top.inputs[0]].reshape(len(x), -1), 0.0)
    c = ref.logits(net, x).argmax(axis=1)
    w = layers[top.name].W
    assert w is not None
    zplus = np.einsum("ni,in->n", a, np.maximum(w, 0.0)[:, c])
    return zplus > 1e-3


# ---------------------------------------------------------------------------------------------------
# Conservation


@pytest.mark.parametrize("first", ["zplus", "wsquare", "zbox"])
@pytest.mark.parametrize("bias", ["none", "zero", "nonpositive"])
@pytest.mark.parametrize("key", NET_KEYS)
@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed{s}")
def test_conservation(seed: int, key: str, bias: str, first: str) -> None:
    """Bias-free (or bias <= 0) ReLU nets, residual block included: sum R = f_c(x) to 1e-9."""
    net, model = loaded(key, seed, bias)
    # inputs in [-2, 2]: large enough that the small negative biases leave most units alive
    x = inputs(net, 8, seed, -2.0, 2.0)
    if first == "zplus":
        x = np.abs(x)  # z+ on the first layer needs the positive domain
    det = dtd.explain(model, x, rules=composite(first, low=-2.0, high=2.0), return_details=True)
    lg = ref.logits(net, x)
    keep = conservative_samples(net, x)
    assert keep.sum() >= 2
    f_c = lg.max(axis=1)
    total = det.relevance.reshape(len(x), -1).sum(axis=1)
    np.testing.assert_array_less(np.abs(total - f_c)[keep], 1e-9 * np.abs(f_c)[keep])
    # layer by layer
    assert len(det.layers) > 0
    for lay in det.layers:
        r_in = np.asarray(lay.relevance_in, dtype=np.float64)
        r_out = np.asarray(lay.relevance_out, dtype=np.float64)
        assert r_in.shape == r_out.shape == (len(x),), lay.name
        np.testing.assert_array_less(
            np.abs(r_in - r_out)[keep],
            1e-9 * np.abs(f_c)[keep] + 1e-300,
            err_msg=f"layer {lay.name} ({lay.kind}) not conservative",
        )


@pytest.mark.parametrize("key", ["mlp", "cnn_plain", "resnet", "concat", "cnn_globalavgpool"])
@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed{s}")
def test_conservation_presets(seed: int, key: str) -> None:
    """The presets with eps=1e-12 (bounded and real) conserve on bias-free nets."""
    net, model = loaded(key, seed, "none")
    x = inputs(net, 4, seed)
    lg = ref.logits(net, x)
    keep = conservative_samples(net, x)
    assert keep.sum() >= 2
    f_c = lg.max(axis=1)
    for kwargs in (
        {"rules": "deep_taylor"},
        {"rules": "deep_taylor", "low": -1.0, "high": 1.0},
        {"rules": "bounded", "low": -1.0, "high": 1.0},
        {"rules": "real"},
    ):
        rel = dtd.explain(model, x, eps=1e-12, **kwargs)
        total = rel.reshape(len(x), -1).sum(axis=1)
        np.testing.assert_array_less(np.abs(total - f_c)[keep], 1e-9 * np.abs(f_c)[keep], err_msg=str(kwargs))


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed{s}")
def test_layer_report_matches_reference(seed: int) -> None:
    """The per-layer totals agree with the reference's (biases absorb relevance here)."""
    net, model = loaded("resnet", seed)
    x = inputs(net, 3, seed)
    det = dtd.explain(model, x, rules=composite("wsquare", eps=1e-6), return_details=True)
    report: list[ref.LayerReport] = []
    rules = ref.assign(net, ref.ZPlus(), ref.WSquare(1e-6))
    ref.explain(net, x, rules, report=report)
    want = {r.name: r for r in report}
    got = {lay.name: lay for lay in det.layers}
    common = set(want) & set(got)
    assert {n for n in want if net.node(n).op in ("conv", "dense", "add")} <= common
    for name in common:
        scale = np.abs(want[name].out).max() + 1e-12
        np.testing.assert_allclose(
            got[name].relevance_out, want[name].out, rtol=0, atol=1e-10 * scale, err_msg=name
        )
        np.testing.assert_allclose(
            got[name].relevance_in, want[name].in_, rtol=0, atol=1e-10 * scale, err_msg=name
        )


def test_details_fields() -> None:
    net, model = loaded("cnn_plain", 0)
    x = inputs(net, 3, 0)
    det = dtd.explain(model, x, rules="real", return_details=True)
    lg = ref.logits(net, x)
    np.testing.assert_allclose(det.logits, lg, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(np.asarray(det.targets), lg.argmax(axis=1))
    np.testing.assert_array_equal(det.relevance, dtd.explain(model, x, rules="real"))
    kinds = {lay.name: lay.kind for lay in model.layers}
    for lay in det.layers:
        assert lay.name in kinds and lay.kind == kinds[lay.name]
        assert isinstance(lay.rule, str)


# ---------------------------------------------------------------------------------------------------
# Positivity


@pytest.mark.parametrize("first", ["zplus", "wsquare", "zbox"])
@pytest.mark.parametrize("key", NET_KEYS)
@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed{s}")
def test_positivity(seed: int, key: str, first: str) -> None:
    """R >= 0 for z+, w^2 and z^beta when R_out >= 0 and x is in the rule's domain (biases of any sign)."""
    net, model = loaded(key, seed)
    rng = np.random.default_rng(seed)
    low = -rng.uniform(0.1, 1.0, net.input_shape)
    high = rng.uniform(0.1, 1.0, net.input_shape)
    x = rng.uniform(low, high, (4, *net.input_shape))
    if first == "zplus":
        x = np.abs(x)
    n_out = ref.logits(net, x).shape[1]
    r_out = np.abs(rng.standard_normal((4, n_out)))
    r_out[0] = 0.0
    r_out[1, 1:] = 0.0
    rel = dtd.explain(model, x, target=r_out, rules=composite(first, eps=1e-6, low=low, high=high))
    assert np.isfinite(rel).all()
    assert (rel >= 0).all(), rel.min()
    assert (rel[0] == 0).all()


# ---------------------------------------------------------------------------------------------------
# Zero logit -> zero relevance


@pytest.mark.parametrize("rules", ["real", "positive", "epsilon", "bounded"])
@pytest.mark.parametrize("key", ["mlp", "cnn_maxpool_overlap", "resnet", "concat"])
def test_zero_output_relevance_gives_zero(key: str, rules: str) -> None:
    net, model = loaded(key, 0)
    x = np.abs(inputs(net, 3, 0))
    r_out = np.zeros((3, ref.logits(net, x).shape[1]))
    kwargs = {"low": -1.0, "high": 1.0} if rules == "bounded" else {}
    rel = dtd.explain(model, x, target=r_out, rules=rules, **kwargs)
    assert rel.shape == x.shape
    assert (rel == 0).all()


@pytest.mark.parametrize("rules", ["real", "positive", "bounded"])
@pytest.mark.parametrize("key", ["mlp", "cnn_avgpool_cip1", "resnet"])
def test_zero_logit_gives_zero(key: str, rules: str) -> None:
    """A bias-free net at x = 0 has all logits 0: the explanation is exactly 0 (and finite)."""
    net, model = loaded(key, 0, "none")
    x = np.zeros((2, *net.input_shape))
    assert (ref.logits(net, x) == 0).all()
    kwargs = {"low": -1.0, "high": 1.0} if rules == "bounded" else {}
    rel = dtd.explain(model, x, rules=rules, **kwargs)
    assert (rel == 0).all()


# ---------------------------------------------------------------------------------------------------
# Batch independence


@pytest.mark.parametrize("rules", ["real", "bounded", "epsilon", "proportional"])
@pytest.mark.parametrize(
    "key", ["mlp", "cnn_maxpool_pad_ceil", "cnn_avgpool_cip0", "cnn_depthwise", "resnet", "concat"]
)
@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed{s}")
def test_batch_independence(seed: int, key: str, rules: str) -> None:
    net, model = loaded(key, seed)
    x = inputs(net, 7, seed)
    if rules == "proportional":
        kwargs: dict[str, Any] = {
            "rules": R.Composite(
                default=R.Gamma(), first=R.WSquare(), maxpool="proportional", add="proportional"
            )
        }
    elif rules == "bounded":
        kwargs = {"rules": "bounded", "low": -1.0, "high": 1.0}
    else:
        kwargs = {"rules": rules}
    batch = dtd.explain(model, x, **kwargs)
    for i in range(len(x)):
        alone = dtd.explain(model, x[i : i + 1], **kwargs)
        scale = np.abs(batch[i]).max()
        np.testing.assert_allclose(alone[0], batch[i], rtol=0, atol=1e-12 * scale)


# ---------------------------------------------------------------------------------------------------
# Targets


@pytest.mark.parametrize("key", ["mlp", "cnn_plain", "resnet"])
@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed{s}")
def test_targets(seed: int, key: str) -> None:
    net, model = loaded(key, seed)
    n = 4
    x = inputs(net, n, seed)
    lg = ref.logits(net, x)
    n_out = lg.shape[1]
    rules = ref.preset(net, "real")

    def want(target: Any) -> np.ndarray:
        return ref.explain(net, x, rules, target=target)

    def check(got: np.ndarray, expected: np.ndarray) -> None:
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12 * np.abs(expected).max())

    # None -> argmax
    default = dtd.explain(model, x, rules="real")
    check(default, want(lg.argmax(axis=1)))
    np.testing.assert_array_equal(
        default, dtd.explain(model, x, target=list(lg.argmax(axis=1)), rules="real")
    )
    # one int for all samples, numpy ints too
    for c in range(n_out):
        check(dtd.explain(model, x, target=c, rules="real"), want(c))
    check(dtd.explain(model, x, target=np.int64(1), rules="real"), want(1))
    # one class per sample
    per = [k % n_out for k in range(n)]
    check(dtd.explain(model, x, target=per, rules="real"), want(per))
    check(dtd.explain(model, x, target=np.array(per), rules="real"), want(per))
    # (N, K) int array -> (N, K, *sample) == K separate calls
    multi = np.array([[k % n_out, (k + 1) % n_out, (k + 3) % n_out] for k in range(n)])
    got = dtd.explain(model, x, target=multi, rules="real")
    assert got.shape == (n, 3, *net.input_shape)
    for k in range(3):
        check(got[:, k], dtd.explain(model, x, target=list(multi[:, k]), rules="real"))
    # explicit output relevance array, used as given
    r_out = np.random.default_rng(seed).standard_normal((n, n_out))
    got = dtd.explain(model, x, target=r_out, rules="real")
    check(got, ref.relevance(net, x, rules, r_out))
    one_hot_logits = np.zeros_like(lg)
    one_hot_logits[np.arange(n), per] = lg[np.arange(n), per]
    check(dtd.explain(model, x, target=one_hot_logits, rules="real"), want(per))


def test_multi_target_details_and_single_sample() -> None:
    net, model = loaded("cnn_plain", 0)
    x = inputs(net, 1, 0)[0]
    got = dtd.explain(model, x, target=2, rules="real")
    assert got.shape == x.shape
    np.testing.assert_array_equal(got, dtd.explain(model, x[None], target=2, rules="real")[0])


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed{s}")
@pytest.mark.parametrize("key", ["mlp", "cnn_plain", "resnet"])
def test_alpha1_beta0_is_zplus(key: str, seed: int) -> None:
    """AlphaBeta(1, 0) is z+ (for ReLU inputs and, through its a- w- term, for negative inputs too)."""
    net, model = loaded(key, seed)
    x = inputs(net, 3, seed)
    ab = dtd.explain(model, x, rules=R.Composite(default=R.AlphaBeta(1.0, 0.0)))
    zp = dtd.explain(model, x, rules=R.Composite(default=R.ZPlus()))
    np.testing.assert_allclose(ab, zp, rtol=1e-12, atol=1e-14 * np.abs(zp).max())


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed{s}")
def test_alphabeta_conserves_per_layer(seed: int) -> None:
    """alpha - beta = 1: each layer passes on what it receives (bias-free net, tiny eps), wherever z- != 0.

    Checked on the convolutions, whose outputs have many inputs of both signs; an output whose contributions are all
    positive (z- = 0: possible at the last dense layer with few active inputs) passes on alpha times its relevance.
    """
    net, model = loaded("cnn_plain", seed, "none")
    x = inputs(net, 3, seed)
    det = dtd.explain(
        model, x, rules=R.Composite(default=R.AlphaBeta(2.0, 1.0, eps=1e-12), eps=1e-12), return_details=True
    )
    convs = [layer for layer in det.layers if layer.kind == "conv"]
    assert convs
    for layer in convs:
        np.testing.assert_allclose(layer.relevance_in, layer.relevance_out, rtol=1e-6, err_msg=layer.name)


@pytest.mark.parametrize("alpha,beta", [(2.0, 0.5), (1.0, -0.0001), (np.nan, 1.0)])
def test_alphabeta_checks_its_parameters(alpha: float, beta: float) -> None:
    net, model = loaded("mlp", 0)
    with pytest.raises(ValueError, match="AlphaBeta"):
        dtd.explain(model, inputs(net, 1, 0), rules=R.Composite(default=R.AlphaBeta(alpha, beta)))
