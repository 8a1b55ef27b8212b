"""dtd.explain is a thin call of the C++ explain level (dtd::Explainer): it gives the same bits, report, targets and
errors as the Python composition it replaced (kept in tests/legacy_explain.py), on several models, rule settings
and targets, in float32 and float64; and one model shared by 8 Python threads gives the same results as sequential
calls (the GIL is released while the core computes)."""

from __future__ import annotations

import functools
import threading
from typing import Any

import numpy as np
import pytest

import dtd
import legacy_explain as legacy
import relnets as rn
from builders import GraphBuilder
from dtd.rules import AlphaBeta, Composite, Epsilon, Flat, Gamma, WSquare, ZBox, ZPlus

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


@functools.cache
def model_of(key: str) -> dtd.Model:
    if key == "example":
        return dtd.load_example().model
    if key == "normalised":  # (x - mean) / std in the graph: bounds map through the affine layer
        b = GraphBuilder((3, 6, 6), seed=11)
        mean = b.const(MEAN.reshape(3, 1, 1).astype(np.float32))
        h = b.node("Div", [b.node("Sub", ["x", mean]), b.const(STD.reshape(3, 1, 1).astype(np.float32))])
        h = b.relu(b.conv(h, 4, pads=[1] * 4))
        out = b.gemm(b.node("Flatten", [h], axis=1), 5)
        return dtd.load(b.build(out))
    if key == "bn":  # BatchNormalization on the input and between layers: affine layers
        b = GraphBuilder((2, 6, 6), seed=21)
        h = b.batchnorm("x", 2)
        h = b.relu(b.conv(h, 3, pads=[1] * 4))
        h = b.node("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
        h = b.relu(b.batchnorm(h, 3))
        out = b.gemm(b.node("Flatten", [h], axis=1), 4)
        return dtd.load(b.build(out))
    return dtd.load(rn.to_onnx(rn.all_nets(0)[key]))


def batch(model: dtd.Model, n: int, seed: int, dtype: Any) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, *model.input_shape)).astype(dtype)


SETTINGS: dict[str, dict[str, Any]] = {
    "deep_taylor_real": {},
    "bounded": {"rules": "bounded", "low": 0.0, "high": 1.0},
    "bounded_eps": {"rules": "deep_taylor", "low": 0.0, "high": 1.0, "eps": 1e-3},
    "positive": {"rules": "positive"},
    "epsilon": {"rules": "epsilon", "eps": 0.25},
    "rule": {"rules": Gamma(0.5)},
    "composite": {
        "rules": Composite(
            default=AlphaBeta(2, 1, bias=True),
            first=WSquare(bias=True),
            overrides={"dense": ZPlus(eps=1e-4), -1: Epsilon(0.1)},
            maxpool="proportional",
            add="proportional",
            avgpool="flat",
            eps=1e-5,
        )
    },
    "zbox_own_bounds": {"rules": Composite(first=ZBox(low=-0.5, high=np.full(1, 1.5)), default=Flat())},
}

MODELS = ["mlp", "cnn_plain", "cnn_stride2_asympad", "resnet", "concat", "example", "normalised", "bn"]


def both(model: dtd.Model, x: np.ndarray, **kw: Any) -> tuple[Any, Any]:
    """(legacy, new) results, or the (type, message) of what each raised."""
    out = []
    for f in (legacy.explain, dtd.explain):
        try:
            out.append(f(model, x, **kw))
        except Exception as e:
            out.append((type(e), str(e)))
    return out[0], out[1]


def assert_same(old: Any, new: Any) -> None:
    if isinstance(old, tuple):
        assert new == old
        return
    if isinstance(old, (np.ndarray, np.generic)):
        assert type(new) is type(old) and new.dtype == old.dtype and new.shape == old.shape
        np.testing.assert_array_equal(new, old, strict=True)
        return
    assert type(new).__name__ == "Explanation"
    assert_same(old.relevance, new.relevance)
    assert_same(old.logits, new.logits)
    if old.targets is None:
        assert new.targets is None
    else:
        assert_same(old.targets, new.targets)
    assert len(new.layers) == len(old.layers)
    for a, b in zip(old.layers, new.layers, strict=True):
        assert (a.index, a.name, a.kind, a.rule) == (b.index, b.name, b.kind, b.rule)
        assert_same(a.relevance_out, b.relevance_out)
        assert_same(a.relevance_in, b.relevance_in)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("key", MODELS)
def test_same_bits_as_the_python_composition(key: str, setting: str, dtype: Any) -> None:
    model = model_of(key)
    x = batch(model, 3, seed=len(key), dtype=dtype)
    kw = SETTINGS[setting]
    assert_same(*both(model, x, **kw))
    assert_same(*both(model, x, return_details=True, **kw))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("key", ["mlp", "resnet", "example"])
def test_same_targets_and_reports(key: str, dtype: Any) -> None:
    model = model_of(key)
    n_out = model.num_outputs
    x = batch(model, 3, seed=7, dtype=dtype)
    rng = np.random.default_rng(1)
    targets: list[Any] = [
        None,
        1,
        -1,
        np.int32(2),
        [0, 1, n_out - 1],
        np.array([2, 0, 1], dtype=np.int32),
        np.array([[0, 1], [1, -2], [n_out - 1, 0]], dtype=np.int16),
        rng.uniform(-1, 1, (3, n_out)),
        rng.uniform(-1, 1, (3, n_out)).astype(np.float32),
    ]
    for target in targets:
        for details in (False, True):
            assert_same(*both(model, x, target=target, low=0.0, high=1.0, return_details=details))
    # one sample without batch axis: one class, K classes, an output relevance
    for target in (None, 1, [0, 1], rng.uniform(-1, 1, n_out)):
        assert_same(*both(model, x[0], target=target, rules="real", return_details=True))


def test_same_errors() -> None:
    model = model_of("resnet")
    x = batch(model, 2, seed=3, dtype=np.float32)
    n_out = model.num_outputs
    bad_x = x.copy()
    bad_x[1, 0, 2, 3] = np.nan
    cases: list[dict[str, Any]] = [
        {"target": n_out},
        {"target": -n_out - 1},
        {"target": [0, 1, 2]},
        {"target": np.zeros((3, 2), dtype=int)},
        {"target": np.zeros((2, 2, 2), dtype=int)},
        {"target": np.zeros((2, n_out + 1))},
        {"target": np.full((2, n_out), np.inf)},
        {"target": True},
        {"target": "a"},
        {"target": 1.5},
        {"rules": "dtd"},
        {"rules": "bounded", "low": 0.0},
        {"rules": 3},
        {"rules": Composite(maxpool="max")},
        {"rules": Composite(add="sum")},
        {"rules": Composite(avgpool=3)},
        {"rules": Composite(overrides={"nope": ZPlus()})},
        {"rules": Composite(overrides={99: ZPlus()})},
        {"rules": Composite(overrides={1: ZPlus()})},
        {"rules": Composite(overrides={"affine": ZPlus()})},
        {"rules": Composite(overrides={2.5: ZPlus()})},
        {"rules": Composite(first=ZBox())},
        {"rules": ZPlus(eps=-1.0)},
        {"rules": ZPlus(eps=-1)},
        {"rules": Composite(default=WSquare(eps=np.float32(-0.1)))},
        {"rules": "positive", "eps": -2},
        {"rules": "real", "eps": float("inf")},
        {"rules": Gamma(gamma=-1)},
        {"rules": AlphaBeta(3, 1)},
        {"rules": Gamma(gamma=float("nan"))},
        {"rules": AlphaBeta(2.0, 0.5)},
        {"rules": AlphaBeta(2.0, -1.0)},
        {"low": 1.0, "high": 0.0},
        {"low": np.zeros(5), "high": 1.0},
        {"low": np.zeros((7, 1, 1)), "high": 1.0},
        {"low": float("nan"), "high": 1.0},
        {"low": 0.5, "high": 1.0},
        {"low": 0.0, "high": 0.5},
        {"low": -1e39, "high": 1.0},
    ]
    for kw in cases:
        old, new = both(model, x, **kw)
        assert isinstance(old, tuple), kw
        assert new == old, kw
    old, new = both(model, bad_x, low=0.0, high=1.0)
    assert isinstance(old, tuple) and new == old


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_sensitivity_unchanged(dtype: Any) -> None:
    """dtd.sensitivity now runs on the core's Explainer too: gradient = d f_c / d x, checked by the legacy path."""
    model = model_of("cnn_plain")
    x = batch(model, 3, seed=5, dtype=dtype)
    net = model.network(np.dtype(dtype))
    spec = dtd._core.RuleSpec()
    spec.kind = dtd._core.RuleKind.gradient
    plan = net.prepare([spec] * len(model.layers))
    trace, logits = legacy._trace(net, x)
    for target in (None, 2, [[0, 1], [1, 2], [2, 3]]):
        passes, _, multi = legacy._output_relevance(target, logits, False, unit=True)
        grads = [net.relevance(trace, g.reshape((-1, *model.logits_shape)), plan)[0] for g in passes]
        want = np.stack(grads, axis=1) if multi else grads[0]
        got = dtd.sensitivity(model, x, target=target, kind="gradient")
        np.testing.assert_array_equal(got, want, strict=True)
        np.testing.assert_array_equal(dtd.sensitivity(model, x, target=target), want * want, strict=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_eight_threads_share_one_model(dtype: Any) -> None:
    """8 Python threads explain their own requests with one model at once: each result is bit-identical to the
    same call made alone (the core releases the GIL, and one network serves every thread)."""
    model = model_of("resnet")
    requests = [
        (batch(model, 1 + i % 3, seed=100 + i, dtype=dtype), None if i % 2 else i % model.num_outputs)
        for i in range(24)
    ]
    expected = [dtd.explain(model, x, target=t, low=0.0, high=1.0, return_details=True) for x, t in requests]
    results: list[Any] = [None] * len(requests)
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(k: int) -> None:
        try:
            start.wait()
            for i in range(k, len(requests), 8):
                x, t = requests[i]
                results[i] = dtd.explain(model, x, target=t, low=0.0, high=1.0, return_details=True)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    for want, got in zip(expected, results, strict=True):
        assert_same(want, got)


def test_explain_releases_the_gil() -> None:
    """While one thread is inside Explainer.explain, another thread runs Python code (it would block on the GIL
    otherwise): a counter thread advances during a long explanation."""
    model = model_of("example")
    x = np.repeat(dtd.load_example().images, 8, axis=0)
    ex = dtd.load_example()
    core = model._plans  # the explainer is cached on the model after the first call
    dtd.explain(model, x[:1], low=ex.low, high=ex.high)
    explainer = next(iter(core.values()))
    ticks = [0]
    inside = threading.Event()
    done = threading.Event()

    def count() -> None:
        inside.wait()
        while not done.is_set():
            ticks[0] += 1

    th = threading.Thread(target=count)
    th.start()
    seen = 0
    for _ in range(20):
        inside.set()
        before = ticks[0]
        explainer.explain(x, dtd._core.Target.argmax(), False)
        seen = max(seen, ticks[0] - before)
        if seen > 0:
            break
    done.set()
    th.join()
    assert seen > 0


def test_misspelt_attribute_is_an_error() -> None:
    """A ModelSpec key its layer kind does not read is a ValueError naming it, not a silently unstrided conv."""
    from dtd import _core

    def conv_spec(ints: dict[str, list[int]]) -> Any:
        layer = _core.LayerSpec()
        layer.name, layer.kind, layer.inputs, layer.output = "c", _core.LayerKind.conv, ["x"], "y"
        layer.ints = ints
        layer.weights = {"weight": np.ones((2, 1, 3, 3))}
        model = _core.ModelSpec()
        model.input_name, model.input_shape, model.output, model.layers = "x", [1, 8, 8], "y", [layer]
        return model

    assert tuple(_core.Network64(conv_spec({"strides": [2, 2]})).output_shape) == (2, 3, 3)
    with pytest.raises(
        ValueError, match=r"conv layer 'c': unknown attribute 'stride' \(conv takes int attributes: "
    ):
        _core.Network64(conv_spec({"stride": [2, 2]}))
