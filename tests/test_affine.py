"""BatchNormalization anywhere, constant Mul/Div/Add/Sub as affine layers, input normalisation in the graph,
and input bounds mapped through affine layers (README "Supported ONNX"; RULES.md "Affine").

Forward passes are compared with onnxruntime (float32) and a float64 NumPy interpretation; relevance with the
float64 reference chain of ``tests/reference.py`` (``chain_relevance``), written from RULES.md.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

import dtd
import reference as ref
from builders import GraphBuilder, raises_on_load, run_numpy, run_ort
from dtd.errors import UnsupportedModelError
from dtd.rules import Composite, Epsilon, ZBox, ZPlus


def _kinds(model: dtd.Model) -> list[str]:
    return [layer.kind for layer in model.layers]


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def _check_forward(
    onnx_model, x: np.ndarray, ort: bool = True, expected: np.ndarray | None = None
) -> dtd.Model:
    """dtd float32 vs onnxruntime, dtd float64 vs the float64 NumPy interpretation (or ``expected``)."""
    model = dtd.load(onnx_model)
    want = run_numpy(onnx_model, x) if expected is None else expected
    np.testing.assert_allclose(model.forward(x.astype(np.float64)), want, rtol=1e-10, atol=1e-10)
    y32 = model.forward(x.astype(np.float32))
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, want, rtol=1e-4, atol=1e-4)
    if ort:
        np.testing.assert_allclose(y32, run_ort(onnx_model, x), rtol=1e-4, atol=1e-4)
    return model


def _x(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


# ---------------------------------------------------------------------------------------------------------
# BatchNormalization where it cannot fold into the layer before it
# ---------------------------------------------------------------------------------------------------------
def _bn_after(where: str, pads: int) -> GraphBuilder:
    b = GraphBuilder((3, 6, 6), seed=1)
    if where == "input":  # DenseNet style: BN-ReLU-Conv on the input
        h = b.relu(b.batchnorm("x", 3))
    elif where == "relu":
        h = b.batchnorm(b.relu(b.conv("x", 4, pads=[1, 1, 1, 1])), 4)
    elif where == "maxpool":
        h = b.batchnorm(b.node("MaxPool", [b.conv("x", 4, pads=[1, 1, 1, 1])], kernel_shape=[2, 2]), 4)
    elif where == "concat":
        u = b.relu(b.conv("x", 2, pads=[1, 1, 1, 1]))
        v = b.relu(b.conv("x", 3, pads=[1, 1, 1, 1]))
        h = b.batchnorm(b.node("Concat", [u, v], axis=1), 5)
    else:
        raise AssertionError(where)
    h = b.relu(b.conv(h, 4, pads=[pads] * 4))
    b.out = b.gemm(b.node("Flatten", [h], axis=1), 5)  # type: ignore[attr-defined]
    return b


@pytest.mark.parametrize("pads", [0, 1])
@pytest.mark.parametrize("where", ["input", "relu", "maxpool", "concat"])
def test_batchnorm_anywhere_forward(where: str, pads: int) -> None:
    b = _bn_after(where, pads)
    model = _check_forward(b.build(b.out), _x((3, 3, 6, 6)))  # type: ignore[attr-defined]
    # Before a ReLU (input) the BN stays an affine layer; directly before a conv it folds when exact.
    assert ("affine" in _kinds(model)) == (where == "input" or pads == 1)
    assert "batchnorm" not in _kinds(model)


def test_batchnorm_folds_into_following_unpadded_conv_with_groups() -> None:
    b = GraphBuilder((4, 5, 5), seed=2)
    h = b.batchnorm(b.node("MaxPool", ["x"], kernel_shape=[1, 1]), 4)
    out = b.conv(h, 6, group=2)
    onnx_model = b.build(out)
    model = _check_forward(onnx_model, _x((2, 4, 5, 5)))
    assert _kinds(model) == ["maxpool", "conv"]


def test_batchnorm_folds_into_following_dense_and_before_channels_last_dense() -> None:
    b = GraphBuilder((6,), seed=3)
    out = b.gemm(b.batchnorm(b.relu("x"), 6), 3)
    model = _check_forward(b.build(out), _x((4, 6)))
    assert _kinds(model) == ["relu", "dense"]
    # [N, L, C] with BN on axis 1 (L) followed by a dense on C: not foldable, an affine layer.
    b = GraphBuilder((3, 4), seed=4)
    w = b.weight((4, 2))
    out = b.node("MatMul", [b.batchnorm(b.relu("x"), 3), w])
    model = _check_forward(b.build(out), _x((2, 3, 4)))
    assert _kinds(model) == ["relu", "affine", "dense"]


def test_batchnorm_at_the_output() -> None:
    b = GraphBuilder((5,), seed=5)
    out = b.batchnorm(b.relu(b.gemm("x", 5)), 5)
    model = _check_forward(b.build(out), _x((3, 5)))
    assert _kinds(model) == ["dense", "relu", "affine"]


def _bn_node(b: GraphBuilder, x: str, c: int, **attrs: object) -> str:
    rng = np.random.default_rng(7)
    gamma = b.const(rng.uniform(0.5, 1.5, c).astype(np.float32))
    beta = b.const(rng.normal(0, 0.5, c).astype(np.float32))
    mean = b.const(rng.normal(0, 0.5, c).astype(np.float32))
    var = b.const(rng.uniform(0.5, 2.0, c).astype(np.float32))
    return b.node("BatchNormalization", [x, gamma, beta, mean, var], **attrs)


@pytest.mark.parametrize("opset", [6, 7, 9, 14, 15])
def test_batchnorm_opsets(opset: int) -> None:
    attrs: dict[str, object] = {"epsilon": 1e-3}
    if opset < 7:
        attrs["is_test"] = 1
    if opset < 9:
        attrs["spatial"] = 1
    b = GraphBuilder((3, 5, 5), opset=opset, seed=6)
    h = b.relu(_bn_node(b, b.relu(b.conv("x", 3, pads=[1, 1, 1, 1])), 3, **attrs))
    out = b.conv(h, 2, pads=[1, 1, 1, 1])
    onnx_model = b.build(out)
    # onnxruntime has no BatchNormalization (nor Conv/Relu) kernels for opset 6.
    model = _check_forward(onnx_model, _x((2, 3, 5, 5)), ort=opset >= 7)
    assert _kinds(model) == ["conv", "relu", "affine", "relu", "conv"]


def test_batchnorm_opset14_unused_extra_outputs() -> None:
    b = GraphBuilder((3, 4, 4), opset=14, seed=8)
    h = _bn_node(b, b.relu("x"), 3, training_mode=0)
    onnx_model = b.build(b.relu(h))
    _check_forward(onnx_model, _x((2, 3, 4, 4)))
    # The running-statistics outputs named but unused (onnxruntime refuses them outside training).
    b.nodes[-2].output.extend(["rm", "rv"])
    model = _check_forward(b.build(b.relu(h)), _x((2, 3, 4, 4)), ort=False)
    assert _kinds(model) == ["relu", "affine", "relu"]


@pytest.mark.parametrize("opset", [6, 7])
def test_batchnorm_spatial0_per_activation(opset: int) -> None:
    shape = (2, 3, 3)
    b = GraphBuilder(shape, opset=opset, seed=9)
    rng = np.random.default_rng(10)
    g, beta, mean = (rng.normal(1.0, 0.3, shape), rng.normal(0, 0.5, shape), rng.normal(0, 0.5, shape))
    var = rng.uniform(0.5, 2.0, shape)
    consts = [b.const(v.astype(np.float32)) for v in (g, beta, mean, var)]
    attrs: dict[str, object] = {"spatial": 0, "epsilon": 1e-5}
    if opset < 7:
        attrs["is_test"] = 1
    out = b.node("BatchNormalization", [b.relu("x"), *consts], **attrs)
    onnx_model = b.build(out)
    x = _x((2, *shape))
    f32 = [v.astype(np.float32).astype(np.float64) for v in (g, beta, mean, var)]
    expected = (np.maximum(x, 0) - f32[2]) / np.sqrt(f32[3] + 1e-5) * f32[0] + f32[1]
    model = _check_forward(onnx_model, x, ort=False, expected=expected)
    assert _kinds(model) == ["relu", "affine"]


def test_batchnorm_refusals() -> None:
    b = GraphBuilder((2, 5, 5), opset=15)
    bn = b.batchnorm(b.relu("x"), 2)
    b.nodes[-1].name = "bn3"
    b.nodes[-1].attribute.append(helper.make_attribute("training_mode", 1))
    raises_on_load(b.build(bn), UnsupportedModelError, "BatchNormalization 'bn3'", "training")
    b = GraphBuilder((2, 5, 5), opset=6)
    bn = _bn_node(b, b.relu("x"), 2, is_test=0)
    raises_on_load(b.build(bn), UnsupportedModelError, "is_test=0", "training")
    b = GraphBuilder((2, 5, 5))
    bn = b.batchnorm(b.relu("x"), 4)
    raises_on_load(b.build(bn), UnsupportedModelError, "BatchNormalization", r"\[4\]", r"\[2\]")


# ---------------------------------------------------------------------------------------------------------
# constant Mul/Div/Add/Sub, input normalisation in the graph
# ---------------------------------------------------------------------------------------------------------
# float32-representable, as the graph holds them
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).astype(np.float64)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).astype(np.float64)


def _normalised(pads: int, head: str = "conv", form: str = "subdiv") -> GraphBuilder:
    b = GraphBuilder((3, 6, 6), seed=11)
    mean = b.const(MEAN.reshape(3, 1, 1).astype(np.float32))
    if form == "subdiv":
        h = b.node("Div", [b.node("Sub", ["x", mean]), b.const(STD.reshape(3, 1, 1).astype(np.float32))])
    else:  # (x * (1 / std)) + (-mean / std), as some exporters write it
        inv = b.const((1.0 / STD).reshape(3, 1, 1).astype(np.float32))
        off = b.const((-MEAN / STD).reshape(3, 1, 1).astype(np.float32))
        h = b.node("Add", [b.node("Mul", ["x", inv]), off])
    if head == "conv":
        h = b.relu(b.conv(h, 4, pads=[pads] * 4))
        b.out = b.gemm(b.node("Flatten", [h], axis=1), 5)  # type: ignore[attr-defined]
    else:  # flatten first: the normalisation cannot fold into the dense layer through the Flatten
        b.out = b.gemm(b.node("Flatten", [h], axis=1), 5)  # type: ignore[attr-defined]
    return b


@pytest.mark.parametrize("form", ["subdiv", "muladd"])
@pytest.mark.parametrize("pads", [0, 1])
def test_input_normalisation_forward(pads: int, form: str) -> None:
    b = _normalised(pads, form=form)
    x = np.random.default_rng(3).uniform(0, 1, (3, 3, 6, 6))
    model = _check_forward(b.build(b.out), x)  # type: ignore[attr-defined]
    assert _kinds(model)[0] == ("conv" if pads == 0 else "affine")


def test_constant_ops_become_affine_layers() -> None:
    b = GraphBuilder((3, 4, 4), seed=12)
    h = b.relu("x")
    h = b.node("Mul", [h, b.const(np.float32(2.5))])  # scalar
    h = b.node("Add", [b.const(np.arange(4, dtype=np.float32)), h])  # on the last axis, constant first
    h = b.node("Sub", [b.const(np.full((3, 1, 1), 0.5, dtype=np.float32)), h])  # constant - data
    h = b.node("Div", [h, b.const(np.linspace(1, 2, 48).reshape(3, 4, 4).astype(np.float32))])  # full shape
    onnx_model = b.build(b.relu(h))
    model = _check_forward(onnx_model, _x((2, 3, 4, 4)))
    assert _kinds(model) == ["relu", "affine", "relu"]  # one layer for the whole chain


def test_mul_scale_still_folds_into_padded_conv_and_shift_does_not() -> None:
    b = GraphBuilder((3, 4, 4), seed=13)
    h = b.node("Mul", [b.relu("x"), b.const(np.float32(2.0))])
    model = _check_forward(b.build(b.conv(h, 2, pads=[1, 1, 1, 1])), _x((2, 3, 4, 4)))
    assert _kinds(model) == ["relu", "conv"]
    b = GraphBuilder((3, 4, 4), seed=13)
    h = b.node("Add", [b.relu("x"), b.const(np.float32(2.0))])
    model = _check_forward(b.build(b.conv(h, 2, pads=[1, 1, 1, 1])), _x((2, 3, 4, 4)))
    assert _kinds(model) == ["relu", "affine", "conv"]


def test_affine_shared_by_a_conv_and_a_relu() -> None:
    b = GraphBuilder((2, 4, 4), seed=14)
    h = b.node("Sub", ["x", b.const(np.array([0.5, -0.5], dtype=np.float32).reshape(2, 1, 1))])
    u = b.conv(h, 2)  # unpadded: folds
    v = b.node("MaxPool", [b.relu(h)], kernel_shape=[3, 3], strides=[1, 1])  # needs the affine layer
    model = _check_forward(b.build(b.node("Add", [u, v])), _x((2, 2, 4, 4)))
    assert sorted(_kinds(model)) == ["add", "affine", "conv", "maxpool", "relu"]


def test_shared_linear_outputs_keep_their_layer() -> None:
    # A BN or a constant Add on a conv/dense output that is also used elsewhere cannot fold into that layer.
    b = GraphBuilder((2, 5, 5), seed=16)
    h = b.conv("x", 3)
    model = _check_forward(b.build(b.node("Add", [b.batchnorm(h, 3), h])), _x((2, 2, 5, 5)))
    assert _kinds(model) == ["conv", "affine", "add"]
    b = GraphBuilder((3,), seed=17)
    h = b.gemm("x", 3)
    model = _check_forward(b.build(b.node("Add", [b.node("Add", [h, b.weight((3,))]), h])), _x((2, 3)))
    assert _kinds(model) == ["dense", "affine", "add"]


def test_constant_that_broadcasts_the_shape_is_refused() -> None:
    b = GraphBuilder((3,))
    h = b.node("Add", [b.relu("x"), b.const(np.ones((2, 3), dtype=np.float32))], name="grow")
    raises_on_load(b.build(h), UnsupportedModelError, "'grow'", "change the shape")
    b = GraphBuilder((3, 1))
    h = b.node("Mul", [b.relu("x"), b.const(np.ones((3, 4), dtype=np.float32))], name="grow2")
    raises_on_load(b.build(h), UnsupportedModelError, "'grow2'", "change the shape")


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
def test_legacy_broadcast_opset6(op: str) -> None:
    b = GraphBuilder((3, 4, 5), opset=6, seed=15)
    c = np.array([1.5, -2.0, 0.5], dtype=np.float32)
    aligned = b.node(op, [b.node("Relu", ["x"]), b.const(c)], broadcast=1, axis=1)  # per channel
    d = np.linspace(0.5, 1.5, 5).astype(np.float32)
    trailing = b.node(op, [aligned, b.const(d)], broadcast=1)  # no axis: the trailing axes
    onnx_model = b.build(trailing)
    x = _x((2, 3, 4, 5))
    fn = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op]
    expected = fn(fn(np.maximum(x, 0), c.astype(np.float64).reshape(3, 1, 1)), d.astype(np.float64))
    _check_forward(onnx_model, x, ort=False, expected=expected)


def test_legacy_broadcast_with_axis_off_the_tensor() -> None:
    b = GraphBuilder((3, 4), opset=6)
    h = b.node("Add", [b.node("Relu", ["x"]), b.const(np.ones(4, dtype=np.float32))], broadcast=1, axis=3)
    raises_on_load(b.build(h), dtd.ModelLoadError, "axis 3")


# ---------------------------------------------------------------------------------------------------------
# relevance through affine layers
# ---------------------------------------------------------------------------------------------------------
def _steps_from(model: dtd.Model, onnx_model) -> list[ref.Step]:
    """The reference chain of a sequential dtd model, from its spec (weights as dtd holds them)."""
    from relnets import Node

    steps = []
    for layer, spec in zip(model.layers, model.spec.layers, strict=True):
        w = {k: np.asarray(v) for k, v in spec.weights.items()}
        shape = layer.input_shapes[0]
        if layer.kind == "affine":
            steps.append(ref.Step("affine", params={"scale": w["scale"], "shift": w["shift"]}))
        elif layer.kind == "layernorm":
            steps.append(
                ref.Step(
                    "layernorm",
                    params={"scale": w["scale"], "bias": w.get("bias")},
                    attrs={"axis": spec.ints["axis"][0], "epsilon": spec.floats["epsilon"]},
                )
            )
        elif layer.kind in ("dense", "conv", "maxpool"):
            params = {"W": w["weight"]} if "weight" in w else {}
            if "bias" in w:
                params["B"] = w["bias"]
            ints = {k: list(v) for k, v in spec.ints.items()}
            attrs: dict[str, object] = {}
            if layer.kind == "conv":
                attrs = {
                    "strides": ints["strides"],
                    "pads": ints["pads"],
                    "dilations": ints["dilations"],
                    "group": ints["group"][0],
                }
            elif layer.kind == "maxpool":
                params = {}
                attrs = {
                    "kernel": ints["kernel"],
                    "strides": ints["strides"],
                    "pads": ints.get("pads", [0] * 4),
                }
            in_shape = (shape[-1],) if layer.kind == "dense" else shape
            steps.append(
                ref.Step(
                    layer.kind, ref.Layer(Node(layer.name, layer.kind, ["x"], params, attrs), [in_shape])
                )
            )
        else:
            assert layer.kind in ("relu", "flatten"), layer.kind
            steps.append(ref.Step(layer.kind))
    return steps


def _bn_net(pads: int = 1, bias: bool = True) -> GraphBuilder:
    """x -> BN -> conv -> relu -> maxpool -> BN -> relu -> flatten -> gemm (two affine layers)."""
    b = GraphBuilder((2, 6, 6), seed=21)
    h = b.batchnorm("x", 2)
    h = b.relu(b.conv(h, 3, pads=[pads] * 4, bias=bias))
    h = b.node("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
    h = b.relu(b.batchnorm(h, 3))
    b.out = b.gemm(b.node("Flatten", [h], axis=1), 4, bias=bias)  # type: ignore[attr-defined]
    return b


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("preset", ["positive", "real", "epsilon", "affine_epsilon"])
def test_relevance_vs_reference(preset: str, dtype: type) -> None:
    b = _bn_net()
    onnx_model = b.build(b.out)  # type: ignore[attr-defined]
    model = dtd.load(onnx_model)
    assert _kinds(model) == ["affine", "conv", "relu", "maxpool", "affine", "relu", "flatten", "dense"]
    steps = _steps_from(model, onnx_model)
    x = _x((5, 2, 6, 6), seed=22)
    conv, dense = 1, 7
    if preset == "positive":
        rules, refs = "positive", {conv: ref.ZPlus(), dense: ref.ZPlus()}
    elif preset == "real":
        rules, refs = "real", {conv: ref.WSquare(), dense: ref.ZPlus()}
    elif preset == "epsilon":  # the preset gives affine layers epsilon too
        rules, refs = "epsilon", {0: "epsilon", 4: "epsilon", conv: ref.Epsilon(), dense: ref.Epsilon()}
    else:
        rules = Composite(default=ZPlus(), overrides={model.layers[4].name: Epsilon(0.1)})  # type: ignore[assignment]
        refs = {4: "epsilon", conv: ref.ZPlus(), dense: ref.ZPlus()}
    eps = 0.1 if preset == "affine_epsilon" else 1e-6
    lg = ref.chain_forward(steps, x)[-1]
    r_out = ref.start_relevance(lg)
    want = ref.chain_relevance(steps, x, r_out, refs, eps=eps)
    got = dtd.explain(model, x.astype(dtype), rules=rules)
    tol = 1e-10 if dtype == np.float64 else (1e-2 if "epsilon" in preset else 1e-4)
    assert _rel(got, want) <= tol


def test_affine_epsilon_form_per_layer() -> None:
    b = GraphBuilder((4,), seed=23)
    shift = b.const(np.array([0.5, -1.0, 2.0, 0.0], dtype=np.float32))
    scale = b.const(np.array([2.0, -1.0, 0.5, 3.0], dtype=np.float32))
    h = b.node("Add", [b.node("Mul", [b.relu("x"), scale]), shift])
    onnx_model = b.build(b.gemm(b.relu(h), 3, bias=False))
    model = dtd.load(onnx_model)
    assert _kinds(model) == ["relu", "affine", "relu", "dense"]
    x = _x((3, 4), seed=24)
    d = dtd.explain(
        model, x, rules=Composite(default=ZPlus(), overrides={"affine": Epsilon(1e-9)}), return_details=True
    )
    a = np.maximum(x, 0)
    s, t = np.array([2.0, -1.0, 0.5, 3.0]), np.array([0.5, -1.0, 2.0, 0.0])
    # The relevance arriving at the affine output, pushed through the epsilon form by hand:
    r_y = dtd.explain(model, x, rules="positive", return_details=True)
    assert np.allclose(r_y.layers[1].relevance_out, d.layers[1].relevance_out)
    got_in = d.layers[1].relevance_in
    # sum_i (s a)_i / (s a + t)_i R_i per sample, using the reference's per-element form
    steps = _steps_from(model, onnx_model)
    acts = ref.chain_forward(steps, x)
    r_at = ref.chain_relevance(steps[2:], acts[2], ref.start_relevance(acts[-1]), {1: ref.ZPlus()})
    want = ref.affine_relevance(a, s, t, r_at, "epsilon", 1e-9).sum(axis=1)
    np.testing.assert_allclose(got_in, want, rtol=1e-5)
    with pytest.raises(ValueError, match="only Epsilon"):
        dtd.explain(model, x, rules=Composite(overrides={"affine": ZPlus()}))
    with pytest.raises(ValueError, match="affine"):
        dtd.explain(model, x, rules=Composite(overrides={1: ZPlus()}))


def test_conservation_through_affine_layers() -> None:
    # Bias-free ReLU net with BatchNorm (shifts of both signs) between ReLUs: the affine layers pass relevance
    # through, so with z+ everywhere and eps 1e-12 the input relevance sums to f_c(x).
    b = GraphBuilder((2, 6, 6), seed=25)
    h = b.relu(b.conv("x", 4, pads=[1, 1, 1, 1], bias=False))
    h = b.relu(b.batchnorm(h, 4))
    h = b.relu(b.conv(h, 4, pads=[1, 1, 1, 1], bias=False))
    h = b.node("GlobalAveragePool", [h])
    out = b.gemm(b.node("Flatten", [h], axis=1), 3, bias=False)
    model = dtd.load(b.build(out))
    assert "affine" in _kinds(model)
    x = _x((4, 2, 6, 6), seed=26)
    d = dtd.explain(model, x, rules="positive", eps=1e-12, return_details=True)
    f = d.logits[np.arange(4), d.targets]
    assert np.all(np.abs(d.relevance.reshape(4, -1).sum(axis=1) - f) <= 1e-9 * np.abs(f))
    for layer in d.layers:
        np.testing.assert_allclose(layer.relevance_in, layer.relevance_out, rtol=1e-9)


def test_sensitivity_through_affine_layer() -> None:
    b = _bn_net()
    model = dtd.load(b.build(b.out))  # type: ignore[attr-defined]
    x = _x((2, 2, 6, 6), seed=27)
    grad = dtd.sensitivity(model, x, target=1, kind="gradient")
    h = 1e-6
    num = np.zeros_like(x)
    for idx in np.ndindex(*x.shape[1:]):
        for n in range(2):
            xp, xm = x.copy(), x.copy()
            xp[(n, *idx)] += h
            xm[(n, *idx)] -= h
            num[(n, *idx)] = (model.forward(xp)[n, 1] - model.forward(xm)[n, 1]) / (2 * h)
    np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------------------------------------------
# bounds in the model input's space, mapped through the affine layers
# ---------------------------------------------------------------------------------------------------------
def _plain_conv_net(pads: int, fold: bool) -> GraphBuilder:
    """The net of _normalised(pads) without the normalisation (input already normalised), or with it folded
    into the first conv by hand (fold=True; only exact with pads=0)."""
    a = _normalised(pads)
    b = GraphBuilder((3, 6, 6), seed=11)
    b.initializers = list(a.initializers)
    conv = next(n for n in a.nodes if n.op_type == "Conv")
    rest = a.nodes[a.nodes.index(conv) + 1 :]
    w_name, bias_name = conv.input[1], conv.input[2]
    from onnx import numpy_helper

    inits = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in a.initializers}
    new_conv = helper.make_node("Conv", ["x", w_name, bias_name], conv.output, name=conv.name)
    new_conv.attribute.extend(conv.attribute)
    if fold:
        w, bias = inits[w_name], inits[bias_name]
        w2 = w / STD.reshape(1, 3, 1, 1)
        b2 = bias - np.einsum("ochw,c->o", w, MEAN / STD)
        b.initializers = [i for i in b.initializers if i.name not in (w_name, bias_name)]
        b.const(w2, w_name)
        b.const(b2, bias_name)
    b.nodes = [new_conv, *rest]
    b.out = a.out  # type: ignore[attr-defined]
    return b


@pytest.mark.parametrize("pads", [0, 1])
def test_bounds_mapped_through_input_normalisation(pads: int) -> None:
    x = np.random.default_rng(30).uniform(0, 1, (4, 3, 6, 6))
    z = (x - MEAN.reshape(1, 3, 1, 1)) / STD.reshape(1, 3, 1, 1)
    in_graph = dtd.load(_normalised(pads).build(_normalised(pads).out))  # type: ignore[attr-defined]
    outside = _plain_conv_net(pads, fold=False)
    plain = dtd.load(outside.build(outside.out))  # type: ignore[attr-defined]
    assert _kinds(in_graph)[0] == ("conv" if pads == 0 else "affine")
    got = dtd.explain(in_graph, x, low=0.0, high=1.0)
    lo, hi = (0 - MEAN) / STD, (1 - MEAN) / STD
    want = dtd.explain(plain, z, low=lo, high=hi)
    assert _rel(got, want) <= 1e-9
    if pads == 0:
        folded_b = _plain_conv_net(0, fold=True)
        folded = dtd.load(folded_b.build(folded_b.out))  # type: ignore[attr-defined]
        assert _rel(dtd.explain(folded, x, low=0.0, high=1.0), want) <= 1e-9


def test_bounds_through_affine_flatten_dense_equal_folded_model() -> None:
    # (x - mean) / std -> Flatten -> Gemm: the normalisation is an affine layer; the same function with the
    # normalisation folded into the Gemm, explained with the raw bounds, gives the same z^beta relevance.
    a = _normalised(0, head="dense")
    model = dtd.load(a.build(a.out))  # type: ignore[attr-defined]
    assert _kinds(model) == ["affine", "flatten", "dense"]
    spec = model.spec.layers[2]
    w = np.asarray(spec.weights["weight"])
    bias = np.asarray(spec.weights["bias"])
    s = np.broadcast_to((1 / STD).reshape(3, 1, 1), (3, 6, 6)).ravel()
    t = np.broadcast_to((-MEAN / STD).reshape(3, 1, 1), (3, 6, 6)).ravel()
    b = GraphBuilder((108,))
    out = b.node("Gemm", ["x", b.const(w * s[None, :]), b.const(bias + w @ t)], transB=1)
    folded = dtd.load(b.build(out))
    x = np.random.default_rng(31).uniform(0, 1, (3, 3, 6, 6))
    got = dtd.explain(model, x, low=0.0, high=1.0)
    want = dtd.explain(folded, x.reshape(3, -1), low=0.0, high=1.0).reshape(x.shape)
    assert _rel(got, want) <= 1e-4  # float32 weights of the folded copy
    got64 = dtd.explain(model, x, rules=Composite(first=ZBox(low=0.0, high=1.0)))
    assert _rel(got64, got) <= 1e-12


def test_bounds_check_stays_on_the_model_input() -> None:
    b = _normalised(1)
    model = dtd.load(b.build(b.out))  # type: ignore[attr-defined]
    x = np.random.default_rng(32).uniform(0, 1, (2, 3, 6, 6))
    dtd.explain(model, x, low=0.0, high=1.0)  # normalised values lie outside [0, 1]: no complaint
    x[0, 0, 0, 0] = 1.5
    with pytest.raises(ValueError, match="the input lie outside"):
        dtd.explain(model, x, low=0.0, high=1.0)


def test_bounds_mapped_with_negative_scale() -> None:
    b = GraphBuilder((2, 4, 4), seed=33)
    h = b.node("Mul", ["x", b.const(np.array([-2.0, 0.5], dtype=np.float32).reshape(2, 1, 1))])
    h = b.node("Add", [h, b.const(np.float32(0.25))])
    out = b.gemm(b.node("Flatten", [b.relu(b.conv(h, 3, pads=[1, 1, 1, 1]))], axis=1), 2)
    model = dtd.load(b.build(out))
    assert _kinds(model)[0] == "affine"
    x = np.random.default_rng(34).uniform(0, 1, (2, 2, 4, 4))
    d = dtd.explain(model, x, low=0.0, high=1.0, return_details=True)
    # Reference: z^beta at the conv with l' = min(s*0+t, s*1+t), h' = max(...) on the affine output.
    steps = _steps_from(model, None)
    s = np.array([-2.0, 0.5]).reshape(2, 1, 1)
    lo = np.broadcast_to(np.minimum(0.25, s + 0.25), (2, 4, 4))
    hi = np.broadcast_to(np.maximum(0.25, s + 0.25), (2, 4, 4))
    acts = ref.chain_forward(steps, x)
    want = ref.chain_relevance(steps, x, ref.start_relevance(acts[-1]), {1: ref.ZBox(lo, hi), 4: ref.ZPlus()})
    assert _rel(d.relevance, want) <= 1e-4
    assert np.all(d.relevance.reshape(2, -1).sum(axis=1) > 0)


# ---------------------------------------------------------------------------------------------------------
# the affine layer kind itself (ModelSpec level): broadcasting forms and their checks
# ---------------------------------------------------------------------------------------------------------
def _affine_spec(shape: tuple[int, ...], scale: np.ndarray, shift: np.ndarray) -> dtd.Model:
    from dtd import _core

    layer = _core.LayerSpec()
    layer.name, layer.kind, layer.inputs, layer.output = "aff", _core.LayerKind.affine, ["x"], "y"
    layer.weights = {
        "scale": np.asarray(scale, dtype=np.float64),
        "shift": np.asarray(shift, dtype=np.float64),
    }
    spec = _core.ModelSpec()
    spec.input_name, spec.input_shape, spec.output, spec.layers = "x", list(shape), "y", [layer]
    return dtd.Model(spec)


@pytest.mark.parametrize(
    ("scale_shape", "shift_shape"),
    [((3, 1, 1), (4,)), ((1, 2, 1), (1,)), ((2, 1), (3, 2, 4)), ((1,), (1, 1, 1, 1)), ((4,), (3, 1, 4))],
)
def test_affine_layer_broadcasting(scale_shape: tuple[int, ...], shift_shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(50)
    scale, shift = rng.normal(size=scale_shape), rng.normal(size=shift_shape)
    model = _affine_spec((3, 2, 4), scale, shift)
    x = rng.normal(size=(2, 3, 2, 4))
    np.testing.assert_allclose(model.forward(x), scale * x + shift, rtol=1e-14)
    r = rng.normal(size=(2, 24))
    got = dtd.explain(model, x, target=r, rules=Composite(overrides={"affine": Epsilon(1e-3)}))
    s = np.broadcast_to(scale, x.shape)
    t = np.broadcast_to(shift, x.shape)
    want = ref.affine_relevance(x, s, t, r.reshape(x.shape), "epsilon", 1e-3)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(dtd.explain(model, x, target=r), r.reshape(x.shape), rtol=0)  # pass-through
    grad = dtd.sensitivity(model, x, target=5, kind="gradient")
    want_grad = np.zeros(x.shape)
    want_grad.reshape(2, -1)[:, 5] = s.reshape(2, -1)[:, 5]  # d(s x + t)_5 / dx = s_5 at element 5
    np.testing.assert_allclose(grad, want_grad, rtol=1e-14)


@pytest.mark.parametrize("bad", [(2,), (3, 2), (2, 3, 2, 4), (1, 3, 1, 1, 1, 1, 5)])
def test_affine_layer_rejects_shape_changing_constants(bad: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="affine layer 'aff'"):
        _affine_spec((3, 2, 4), np.ones(bad), np.zeros(1))
