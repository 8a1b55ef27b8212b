"""Element-wise activations (the ``activation`` kind) and multiplicative gates (the ``gate`` kind).

Forward: one-node models per op and opset variant against onnxruntime (float32, 1e-5 relative) and against the
float64 NumPy definitions in tests/reference.py (1e-12). Relevance: activations pass it through, a gate gives all
of it to the signal (signal-take-all); nets with LeakyReLU, Tanh, SiLU, ... against the float64 reference for the
rules that now see negative inputs, conservation on bias-free nets, the gate branch gets 0, sensitivity by finite
differences.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import dtd
import reference as ref
import relnets as rn
from builders import GraphBuilder, raises_on_load, run_ort
from dtd import ModelLoadError, UnsupportedModelError

SHAPE = (3, 4, 5)


def _x(shape: tuple[int, ...], seed: int = 0, n: int = 4) -> np.ndarray:
    # scale 3: both sides of every kink and the saturated tails of sigmoid-like ops
    return (3.0 * np.random.default_rng(seed).standard_normal((n, *shape))).astype(np.float32)


def _one_node(op: str, opset: int, consts: list[Any] | None = None, **attrs: Any) -> onnx.ModelProto:
    b = GraphBuilder(SHAPE, opset=opset)
    names = [c if isinstance(c, str) else b.const(np.asarray(c, dtype=np.float32)) for c in (consts or [])]
    return b.build(b.node(op, ["x", *names], **attrs))


# (id, ONNX op, opset, constant inputs, attributes, reference attributes)
CASES: list[tuple[str, str, int, list[Any], dict[str, Any], dict[str, Any]]] = [
    ("clip6_relu6", "Clip", 10, [], {"min": 0.0, "max": 6.0}, {"min": 0.0, "max": 6.0}),
    ("clip6_hardtanh", "Clip", 10, [], {"min": -1.0, "max": 1.0}, {"min": -1.0, "max": 1.0}),
    ("clip6_max_only", "Clip", 10, [], {"max": 0.5}, {"max": 0.5}),
    ("clip11_relu6", "Clip", 11, [0.0, 6.0], {}, {"min": 0.0, "max": 6.0}),
    ("clip11_min_only", "Clip", 11, [-0.5], {}, {"min": -0.5}),
    ("clip13_hardtanh", "Clip", 13, [-1.0, 1.0], {}, {"min": -1.0, "max": 1.0}),
    ("clip13_max_only", "Clip", 13, ["", 2.0], {}, {"max": 2.0}),
    ("leakyrelu_default", "LeakyRelu", 13, [], {}, {}),
    ("leakyrelu_alpha", "LeakyRelu", 16, [], {"alpha": 0.2}, {"alpha": 0.2}),
    ("prelu7_channel", "PRelu", 8, [np.array([0.1, -0.2, 0.3]).reshape(3, 1, 1)], {}, {}),
    ("prelu9_scalar", "PRelu", 11, [np.array([0.25])], {}, {}),
    ("prelu9_channel", "PRelu", 13, [np.array([0.1, 0.5, 2.0]).reshape(3, 1, 1)], {}, {}),
    ("prelu9_batch_axis", "PRelu", 13, [np.array([0.1, 0.5, 2.0]).reshape(1, 3, 1, 1)], {}, {}),
    ("prelu16_full", "PRelu", 16, [np.linspace(-1, 1, 60).reshape(SHAPE)], {}, {}),
    ("prelu16_last_axis", "PRelu", 16, [np.linspace(0, 1, 5)], {}, {}),
    ("elu", "Elu", 13, [], {"alpha": 0.5}, {"alpha": 0.5}),
    ("elu_default", "Elu", 13, [], {}, {}),
    ("selu", "Selu", 13, [], {}, {}),
    ("selu_params", "Selu", 13, [], {"alpha": 1.5, "gamma": 1.1}, {"alpha": 1.5, "gamma": 1.1}),
    ("sigmoid", "Sigmoid", 13, [], {}, {}),
    ("tanh", "Tanh", 13, [], {}, {}),
    ("hardsigmoid_default", "HardSigmoid", 13, [], {}, {}),
    ("hardsigmoid_v3", "HardSigmoid", 13, [], {"alpha": 1 / 6, "beta": 0.5}, {"alpha": 1 / 6, "beta": 0.5}),
    ("hardswish14", "HardSwish", 14, [], {}, {}),
    ("softplus", "Softplus", 13, [], {}, {}),
    ("gelu20_none", "Gelu", 20, [], {}, {}),
    ("gelu20_erf_explicit", "Gelu", 20, [], {"approximate": "none"}, {}),
    ("gelu20_tanh", "Gelu", 21, [], {"approximate": "tanh"}, {"approximate": "tanh"}),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_one_node_forward(case: tuple[str, str, int, list[Any], dict[str, Any], dict[str, Any]]) -> None:
    _, op, opset, consts, attrs, ref_attrs = case
    ref_attrs = {k: float(np.float32(v)) if isinstance(v, float) else v for k, v in ref_attrs.items()}
    model = _one_node(op, opset, consts, **attrs)
    m = dtd.load(model)
    assert [layer.kind for layer in m.layers] == ["activation"]
    x = _x(SHAPE)
    slope = np.asarray(consts[0], dtype=np.float32).astype(np.float64) if op == "PRelu" else None
    if slope is not None and slope.ndim == len(SHAPE) + 1:
        slope = slope[0]
    want64 = ref.activation(op, ref_attrs, x.astype(np.float64), slope)
    got32 = m.forward(x)
    got64 = m.forward(x.astype(np.float64))
    assert got32.dtype == np.float32 and got64.dtype == np.float64
    np.testing.assert_allclose(got32, run_ort(model, x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got64, run_ort(model, x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got64, want64, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got32, want64, rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("opset", [11, 13])
def test_clip_zero_min_without_max_stays_relu(opset: int) -> None:
    for consts in ([0.0], [0.0, float("inf")]):
        m = dtd.load(_one_node("Clip", opset, consts))
        assert [layer.kind for layer in m.layers] == ["relu"]


def test_clip6_zero_min_is_relu() -> None:
    model = _one_node("Clip", 10, min=0.0)
    m = dtd.load(model)
    assert [layer.kind for layer in m.layers] == ["relu"]
    x = _x(SHAPE)
    np.testing.assert_allclose(m.forward(x), run_ort(model, x), rtol=1e-6)


def test_activation_ops_exist_from_their_opset() -> None:
    # Clip's bounds: attributes until opset 10, inputs from 11 (each form refused at the other opsets)
    x = _x(SHAPE)
    for model in (_one_node("Clip", 10, min=-1.0, max=1.0), _one_node("Clip", 11, [-1.0, 1.0])):
        np.testing.assert_allclose(dtd.load(model).forward(x), run_ort(model, x), rtol=1e-6)
    raises_on_load(
        _one_node("Clip", 11, min=-1.0, max=1.0), ModelLoadError, "Clip", "unknown attribute '(min|max)'"
    )
    raises_on_load(_one_node("Clip", 10, [-1.0, 1.0]), ModelLoadError, "Clip", "3 inputs, expected 1")
    # HardSwish from opset 14, Gelu from 20: unknown ops before
    for op, since in (("HardSwish", 14), ("Gelu", 20)):
        raises_on_load(
            _one_node(op, since - 1), UnsupportedModelError, rf"unsupported op {op} .*opset {since - 1}"
        )
        model = _one_node(op, since)
        np.testing.assert_allclose(dtd.load(model).forward(x), run_ort(model, x), rtol=1e-5, atol=1e-6)


def test_activation_parameters_and_errors() -> None:
    # a computed Clip bound, a non-scalar bound, a bad Gelu mode, a slope that does not broadcast
    b = GraphBuilder(SHAPE, opset=13)
    raises_on_load(
        b.build(b.node("Clip", ["x", b.node("Relu", ["x"])])), UnsupportedModelError, "Clip", "min"
    )
    raises_on_load(_one_node("Clip", 13, [np.zeros(2)]), ModelLoadError, "Clip", "scalar")
    raises_on_load(_one_node("Gelu", 20, approximate="fast"), ModelLoadError, "Gelu", "approximate")
    raises_on_load(
        _one_node("PRelu", 13, [np.ones((2, 1, 1))]), ModelLoadError, "PRelu", r"\[2, 1, 1\]", r"\[3, 4, 5\]"
    )
    raises_on_load(_one_node("PRelu", 13, [np.ones((2, 3, 1, 1))]), UnsupportedModelError, "PRelu", "batch")
    m = dtd.load(_one_node("PRelu", 13, [np.ones((3, 1, 1))]))
    assert m.layers[0].parameters == 3


def test_cpp_checks_activation_specs() -> None:
    from dtd import _core

    def spec(
        op: int, floats: dict[str, float] | None = None, weights: dict[str, np.ndarray] | None = None
    ) -> Any:
        layer = _core.LayerSpec()
        layer.name, layer.kind, layer.inputs, layer.output = "act", _core.LayerKind.activation, ["x"], "y"
        layer.ints = {"op": [op]}
        layer.floats = floats or {}
        layer.weights = weights or {}
        model = _core.ModelSpec()
        model.input_name, model.input_shape, model.output, model.layers = "x", [3, 2], "y", [layer]
        return model

    with pytest.raises(ValueError, match=r"act.*'op'"):
        _core.Network64(spec(99))
    with pytest.raises(ValueError, match=r"act.*unknown attribute 'beta'"):
        _core.Network64(spec(1, {"beta": 1.0}))
    with pytest.raises(ValueError, match=r"act.*slope"):
        _core.Network64(spec(2))
    with pytest.raises(ValueError, match=r"act.*\[4\].*\[3, 2\]"):
        _core.Network64(spec(2, weights={"slope": np.ones(4)}))
    # SiLU (no ONNX op below opset 22; C++ users can build it) and the op codes the importer writes
    net = _core.Network64(spec(12))
    x = np.linspace(-5, 5, 12).reshape(2, 3, 2)
    np.testing.assert_allclose(net.forward(x), ref.activation("Silu", {}, x), rtol=1e-14)
    # every op code but SiLU's is what the importer writes for one ONNX op form (the forward of each is checked
    # against onnxruntime above): 0 to 11, one per form
    codes: dict[str, set[int]] = {}
    for _, op, opset, consts, attrs, _ in CASES:
        form = f"{op} {attrs.get('approximate', '')}".strip().replace(" none", "")
        (layer,) = dtd.load(_one_node(op, opset, consts, **attrs)).spec.layers
        codes.setdefault(form, set()).update(int(code) for code in layer.ints["op"])
    assert all(len(found) == 1 for found in codes.values()), codes
    assert sorted(code for (code,) in codes.values()) == list(range(12)), codes


# ---------------------------------------------------------------------------------------------------------
# Patterns: the erf form of GELU, SiLU as Mul(x, Sigmoid(x))
# ---------------------------------------------------------------------------------------------------------
def _erf_gelu(
    variant: str, constants: str = "initializer", sqrt2: float = 1.4142135
) -> tuple[onnx.ModelProto, str]:
    """Gemm -> GELU (erf form, as `variant` writes it) -> Gemm; returns the model and the Erf node's name."""
    b = GraphBuilder((6,), opset=13, seed=1)
    x = b.gemm("x", 8)

    def c(value: float) -> str:
        if constants == "initializer":
            return b.const(np.array(value, dtype=np.float32))
        return b.node("Constant", [], value=helper.make_tensor(b.fresh("k"), TensorProto.FLOAT, [], [value]))

    if variant == "mul_scale":
        u = b.node("Mul", [c(0.70710677), x])
    else:
        u = b.node("Div", [x, c(sqrt2)])
    e = b.node("Erf", [u], name="the_erf")
    v = b.node("Add", [c(1.0), e] if variant == "swapped" else [e, c(1.0)])
    if variant in ("torch", "mul_scale", "swapped"):
        y = b.node("Mul", [b.node("Mul", [x, v] if variant != "swapped" else [v, x]), c(0.5)])
    elif variant == "half_first":
        y = b.node("Mul", [b.node("Mul", [x, c(0.5)]), v])
    else:  # "half_of_v": (v * 0.5) * x
        y = b.node("Mul", [b.node("Mul", [v, c(0.5)]), x])
    return b.build(b.gemm(y, 3)), "the_erf"


@pytest.mark.parametrize("constants", ["initializer", "constant_node"])
@pytest.mark.parametrize("variant", ["torch", "mul_scale", "swapped", "half_first", "half_of_v"])
def test_erf_gelu_is_fused(variant: str, constants: str) -> None:
    model, erf = _erf_gelu(variant, constants)
    m = dtd.load(model)
    assert [layer.kind for layer in m.layers] == ["dense", "activation", "dense"]
    assert m.layers[1].name == erf
    x = _x((6,), seed=3, n=5)
    np.testing.assert_allclose(m.forward(x), run_ort(model, x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.forward(x.astype(np.float64)), run_ort(model, x), rtol=1e-5, atol=1e-6)


def test_erf_gelu_not_fused_when_a_constant_is_off_or_a_value_is_shared() -> None:
    model, _ = _erf_gelu("torch", sqrt2=1.5)
    raises_on_load(model, UnsupportedModelError, "unsupported op Erf", "the_erf")
    model, _ = _erf_gelu("torch", sqrt2=1.4142135 + 1e-5)  # outside the 1e-6 tolerance
    raises_on_load(model, UnsupportedModelError, "unsupported op Erf")
    # the Erf output also feeds the graph output's computation elsewhere: not fused
    b = GraphBuilder((6,), opset=13)
    x = b.gemm("x", 6)
    e = b.node("Erf", [b.node("Div", [x, b.const(np.array(1.4142135, np.float32))])])
    v = b.node("Add", [e, b.const(np.array(1.0, np.float32))])
    y = b.node("Mul", [b.node("Mul", [x, v]), b.const(np.array(0.5, np.float32))])
    raises_on_load(b.build(b.node("Add", [y, e])), UnsupportedModelError, "unsupported op Erf")


def test_silu_pattern_is_a_gate_on_x() -> None:
    b = GraphBuilder((6,), opset=13, seed=2)
    x = b.gemm("x", 8)
    y = b.node("Mul", [x, b.node("Sigmoid", [x])], name="silu")
    model = b.build(b.gemm(y, 3))
    m = dtd.load(model)
    assert [layer.kind for layer in m.layers] == ["dense", "activation", "gate", "dense"]
    gate = m.layers[2]
    assert gate.name == "silu" and gate.inputs == (1, 2)  # [signal x, gate sigmoid(x)]
    xs = _x((6,), seed=4, n=5)
    np.testing.assert_allclose(m.forward(xs), run_ort(model, xs), rtol=1e-5, atol=1e-6)
    det = dtd.explain(m, xs.astype(np.float64), rules="real", eps=1e-12, return_details=True)
    by_name = {lr.name: lr for lr in det.layers}
    assert by_name["silu"].rule == "signal_take_all"
    np.testing.assert_array_equal(by_name[m.layers[1].name].relevance_out, 0.0)  # the sigmoid branch
    logits = m.forward(xs.astype(np.float64))
    np.testing.assert_allclose(det.relevance.sum(axis=1), logits.max(axis=1), rtol=1e-9)


# ---------------------------------------------------------------------------------------------------------
# Gates: squeeze-and-excitation, HardSigmoid gates
# ---------------------------------------------------------------------------------------------------------
def se_net(seed: int, bias: str = "random", gate: str = "Sigmoid", reshape: bool = False) -> rn.Net:
    """conv3x3 -> relu -> SE (GAP -> conv1x1 -> relu -> conv1x1 -> gate function -> Mul) -> conv -> relu -> dense.

    ``reshape``: the excitation as flatten -> dense -> gate function -> Reshape [C, 1, 1] (a gate through a
    shape-only op)."""
    b = rn.Builder(f"se{seed}", (2, 6, 6), np.random.default_rng(seed), bias)
    b.conv(6)
    signal = b.relu()
    b.globalavgpool()
    if reshape:
        b.flatten()
        b.dense(3)
        b.relu()
        b.dense(6)
    else:
        b.conv(3, k=1, pads=(0, 0, 0, 0))
        b.relu()
        b.conv(6, k=1, pads=(0, 0, 0, 0))
    if gate == "Sigmoid":
        b.activation("Sigmoid")
    else:
        b.activation("HardSigmoid", alpha=1 / 6, beta=0.5)
    if reshape:
        b.reshape((6, 1, 1))
    b.gate(signal, b.cur)
    b.conv(4, strides=(2, 2))
    b.relu()
    b.flatten()
    b.dense(5)
    return b.net


def _rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / max(float(np.linalg.norm(b)), 1e-300))


GATE_NETS = {
    "se_sigmoid": lambda seed, bias="random": se_net(seed, bias),
    "se_hardsigmoid": lambda seed, bias="random": se_net(seed, bias, gate="HardSigmoid"),
    "se_reshaped_gate": lambda seed, bias="random": se_net(seed, bias, reshape=True),
}


@pytest.mark.parametrize("key", list(GATE_NETS))
def test_gate_forward_matches_onnxruntime(key: str) -> None:
    net = GATE_NETS[key](0)
    model = rn.to_onnx(net)
    m = dtd.load(model)
    assert "gate" in [layer.kind for layer in m.layers]
    x = _x(net.input_shape, seed=5)
    np.testing.assert_allclose(m.forward(x), run_ort(model, x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(m.forward(x.astype(np.float64)), ref.forward(net, x), rtol=1e-12, atol=1e-13)


def _explain_both(net: rn.Net, m: Any, rule: str, dtype: Any, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(100 + seed).uniform(-1.0, 1.0, (3, *net.input_shape)).astype(dtype)
    rules = {
        "zplus": (ref.ZPlus(), None),
        "real": (ref.ZPlus(), ref.WSquare()),
        "bounded": (ref.ZPlus(), ref.ZBox(-1.0, 1.0)),
        "epsilon": (ref.Epsilon(0.1), None),
        "gamma": (ref.Gamma(), None),
    }[rule]
    comp = dtd.rules.Composite(
        default=ref.to_dtd(rules[0]), first=None if rules[1] is None else ref.to_dtd(rules[1])
    )
    got = dtd.explain(m, x, rules=comp)
    want = ref.explain(net, x.astype(np.float64), ref.assign(net, rules[0], rules[1]))
    return got, want


@pytest.mark.parametrize("rule", ["zplus", "real", "bounded", "epsilon", "gamma"])
@pytest.mark.parametrize("key", list(GATE_NETS))
def test_gate_relevance_matches_reference(key: str, rule: str) -> None:
    net = GATE_NETS[key](1)
    m = dtd.load(rn.to_onnx(net))
    got, want = _explain_both(net, m, rule, np.float64)
    assert _rel_err(got, want) <= 1e-10
    got, want = _explain_both(net, m, rule, np.float32)
    assert _rel_err(got, want) <= (1e-2 if rule in ("epsilon", "gamma") else 1e-4)


@pytest.mark.parametrize("key", list(GATE_NETS))
def test_gate_conserves_and_the_gate_branch_gets_nothing(key: str) -> None:
    net = GATE_NETS[key](2, "none")
    m = dtd.load(rn.to_onnx(net))
    x = np.random.default_rng(7).uniform(-1.0, 1.0, (4, *net.input_shape))
    det = dtd.explain(m, x, low=-1.0, high=1.0, eps=1e-12, return_details=True)
    f_c = m.forward(x).max(axis=1)
    np.testing.assert_allclose(det.relevance.reshape(len(x), -1).sum(axis=1), f_c, rtol=1e-9)
    gate = next(lr for lr in det.layers if lr.kind == "gate")
    assert gate.rule == "signal_take_all"
    np.testing.assert_allclose(gate.relevance_in, gate.relevance_out, rtol=1e-12)
    # everything between the GAP and the gate (the excitation) receives zero relevance, and the report says so
    gate_info = m.layers[gate.index]
    branch: list[int] = []
    stack = [gate_info.inputs[1]]
    while stack:
        v = stack.pop()
        info = m.layers[v - 1]
        branch.append(info.index)
        if info.kind != "globalavgpool":
            stack.extend(info.inputs)
    kinds = {m.layers[i].kind for i in branch}
    assert "activation" in kinds and "globalavgpool" in kinds
    for lr in det.layers:
        if lr.index in branch:
            np.testing.assert_array_equal(lr.relevance_out, 0.0)
            np.testing.assert_array_equal(lr.relevance_in, 0.0)
    report = det.report()
    assert "signal_take_all" in report and "pass" in report


def _hard_gate_model(form: str) -> onnx.ModelProto:
    """conv -> relu -> SE with a hard-sigmoid gate, as MobileNetV3 code writes it: ``relu6(z + 3) / 6`` (older
    PyTorch code, ``form="relu6"``) or HardSigmoid(alpha=1/6, beta=1/2) (``form="op"``); same weights."""
    b = GraphBuilder((3, 6, 6), opset=13, seed=4)
    signal = b.relu(b.conv("x", 4, pads=[1, 1, 1, 1]))
    z = b.conv(b.node("GlobalAveragePool", [signal]), 4, kernel=(1, 1))
    if form == "relu6":
        z = b.node("Add", [z, b.const(np.array(3.0, np.float32))])
        h = b.node("Clip", [z, b.const(np.array(0.0, np.float32)), b.const(np.array(6.0, np.float32))])
        h = b.node("Div", [h, b.const(np.array(6.0, np.float32))])
    else:
        h = b.node("HardSigmoid", [z], alpha=1 / 6, beta=0.5)
    y = b.node("Mul", [signal, h], name="se_mul")
    return b.build(b.gemm(b.node("Flatten", [y]), 3))


def test_relu6_hard_sigmoid_gate() -> None:
    model = _hard_gate_model("relu6")
    m = dtd.load(model)
    kinds = [layer.kind for layer in m.layers]
    assert kinds.count("gate") == 1 and kinds.count("activation") == 2  # the clip and the gate's hard sigmoid
    x = _x((3, 6, 6), seed=6)
    np.testing.assert_allclose(m.forward(x), run_ort(model, x), rtol=1e-5, atol=1e-5)
    x64 = x.astype(np.float64)
    det = dtd.explain(m, x64, rules="real", eps=1e-12, return_details=True)
    gate = next(lr for lr in det.layers if lr.kind == "gate")
    np.testing.assert_allclose(gate.relevance_in, gate.relevance_out, rtol=1e-12)
    for lr in det.layers:
        if lr.kind == "activation":
            np.testing.assert_array_equal(lr.relevance_out, 0.0)
    np.testing.assert_allclose(
        det.relevance.reshape(len(x), -1).sum(axis=1), det.logits.max(axis=1), rtol=1e-9
    )
    # the same gate written as one HardSigmoid op: same forward, same relevance
    op_model = _hard_gate_model("op")
    m2 = dtd.load(op_model)
    # (equal up to the float32 rounding of HardSigmoid's alpha = 1/6 and of the folded + 3)
    np.testing.assert_allclose(m2.forward(x64), m.forward(x64), rtol=1e-6)
    r2 = dtd.explain(m2, x64, rules="real", eps=1e-12)
    np.testing.assert_allclose(r2, det.relevance, rtol=1e-5, atol=1e-9)


def test_unrecognised_products_of_data_tensors() -> None:
    b = GraphBuilder((6,), opset=13)
    x = b.gemm("x", 6)
    raises_on_load(
        b.build(b.node("Mul", [x, b.node("Relu", [x])], name="odd_mul")),
        UnsupportedModelError,
        "Mul 'odd_mul'",
        "not a recognisable gate",
    )
    b = GraphBuilder((6,), opset=13)
    y = b.node("Mul", [b.node("Sigmoid", ["x"]), b.node("Sigmoid", [b.gemm("x", 6)])], name="two_gates")
    raises_on_load(b.build(y), UnsupportedModelError, "Mul 'two_gates'", "not a recognisable gate")
    # a gate whose rank differs from the signal's (the batch axis would not line up)
    b2 = GraphBuilder((4, 6), opset=13)
    sig = b2.node("Sigmoid", [b2.node("Flatten", ["x"])])  # [N, 24] against [N, 4, 6]
    raises_on_load(
        b2.build(b2.node("Mul", ["x", sig], name="rank_mul")), UnsupportedModelError, "Mul 'rank_mul'"
    )
    # a gate that would broadcast the signal: the product is larger than the signal
    b3 = GraphBuilder((4, 3, 3), opset=13)
    pooled = b3.node("GlobalAveragePool", ["x"])
    raises_on_load(
        b3.build(b3.node("Mul", [pooled, b3.node("Sigmoid", ["x"])], name="wide")),
        UnsupportedModelError,
        "Mul 'wide'",
        "does not broadcast against the signal",
    )


# ---------------------------------------------------------------------------------------------------------
# Nets with activations other than ReLU: the rules see negative inputs
# ---------------------------------------------------------------------------------------------------------
ACTS: dict[str, tuple[str, dict[str, Any]]] = {
    "leakyrelu": ("LeakyRelu", {"alpha": 0.1}),
    "relu6": ("Clip", {"min": 0.0, "max": 6.0}),
    "hardtanh": ("Clip", {"min": -1.0, "max": 1.0}),
    "tanh": ("Tanh", {}),
    "elu": ("Elu", {}),
    "selu": ("Selu", {}),
    "silu": ("Silu", {}),
    "gelu_tanh": ("Gelu", {"approximate": "tanh"}),
    "softplus": ("Softplus", {}),
    "hardswish": ("HardSwish", {}),
    "prelu": ("PRelu", {}),
}


def act_mlp(key: str, seed: int, bias: str = "random") -> rn.Net:
    b = rn.Builder(f"{key}{seed}", (10,), np.random.default_rng(seed), bias)
    op, attrs = ACTS[key]
    for width in (12, 8):
        b.dense(width)
        b.activation(op, slope=np.linspace(-0.5, 0.5, width) if op == "PRelu" else None, **attrs)
    b.dense(4)
    return b.net


def act_cnn(key: str, seed: int, bias: str = "random") -> rn.Net:
    b = rn.Builder(f"{key}_cnn{seed}", (2, 6, 6), np.random.default_rng(seed), bias)
    op, attrs = ACTS[key]
    b.conv(4)
    b.activation(
        op, slope=np.array([0.1, -0.2, 0.3, 0.5]).reshape(4, 1, 1) if op == "PRelu" else None, **attrs
    )
    b.maxpool()
    b.conv(5)
    b.activation(op, slope=np.array([0.25]) if op == "PRelu" else None, **attrs)
    b.flatten()
    b.dense(3)
    return b.net


def _opset(key: str) -> int:
    return 20 if key == "gelu_tanh" else 14


@pytest.mark.parametrize("rule", ["zplus", "real", "bounded", "epsilon", "gamma"])
@pytest.mark.parametrize("key", list(ACTS))
def test_activation_nets_match_reference(key: str, rule: str) -> None:
    for factory in (act_mlp, act_cnn):
        net = factory(key, 3)
        model = rn.to_onnx(net, opset=_opset(key))
        m = dtd.load(model)
        x = _x(net.input_shape, seed=8, n=3)
        np.testing.assert_allclose(m.forward(x), run_ort(model, x), rtol=1e-5, atol=1e-5)
        got, want = _explain_both(net, m, rule, np.float64, seed=4)
        assert _rel_err(got, want) <= 1e-10, factory.__name__
        got, want = _explain_both(net, m, rule, np.float32, seed=4)
        assert _rel_err(got, want) <= (1e-2 if rule in ("epsilon", "gamma") else 1e-4), factory.__name__


@pytest.mark.parametrize("key", list(ACTS))
def test_activation_nets_conserve(key: str) -> None:
    for factory in (act_mlp, act_cnn):
        net = factory(key, 5, "none")
        m = dtd.load(rn.to_onnx(net, opset=_opset(key)))
        x = np.random.default_rng(9).uniform(-1.0, 1.0, (6, *net.input_shape))
        f_c = m.forward(x).max(axis=1)
        for kwargs in ({"rules": "real"}, {"rules": "bounded", "low": -1.0, "high": 1.0}):
            det = dtd.explain(m, x, eps=1e-12, return_details=True, **kwargs)
            total = det.relevance.reshape(len(x), -1).sum(axis=1)
            np.testing.assert_allclose(total, f_c, rtol=1e-9, err_msg=f"{factory.__name__} {kwargs}")
            for lr in det.layers:
                np.testing.assert_allclose(lr.relevance_in, lr.relevance_out, rtol=1e-9, atol=1e-12)
                if lr.kind == "activation":
                    assert lr.rule == "pass"


def test_positivity_after_pass_through_activations() -> None:
    """z+ keeps R >= 0 after Tanh (negative inputs meet negative weights), but the proportional rule of average
    pooling divides by window sums of mixed sign there: positivity is guaranteed for ReLU nets only."""
    net = act_mlp("tanh", 6, "none")
    m = dtd.load(rn.to_onnx(net))
    x = np.random.default_rng(10).uniform(-1.0, 1.0, (8, 10))
    assert (ref.forward_all(net, x)["activation0"] < 0).any()
    positive = m.forward(x).max(axis=1) > 0
    assert positive.sum() >= 2
    rel = dtd.explain(m, x, rules="real", eps=1e-12)
    assert (rel[positive] >= 0).all()
    b = rn.Builder("tanh_avgpool", (2, 6, 6), np.random.default_rng(7), "none")
    b.conv(4)
    b.activation("Tanh")
    b.avgpool()
    b.flatten()
    b.dense(3)
    m = dtd.load(rn.to_onnx(b.net))
    x = np.random.default_rng(11).uniform(-1.0, 1.0, (8, 2, 6, 6))
    positive = m.forward(x).max(axis=1) > 0
    rel = dtd.explain(m, x, rules="real", eps=1e-12)
    assert positive.sum() >= 2 and (rel[positive] < 0).any()
    want = ref.explain(b.net, x, ref.assign(b.net, ref.ZPlus(eps=1e-12), ref.WSquare(eps=1e-12)), eps=1e-12)
    assert _rel_err(rel, want) <= 1e-10


@pytest.mark.parametrize(
    "key", ["leakyrelu", "tanh", "elu", "selu", "silu", "gelu_tanh", "softplus", "prelu"]
)
def test_sensitivity_through_activations_and_gates(key: str) -> None:
    nets = [act_mlp(key, 11)] + ([se_net(12)] if key == "tanh" else [])
    for net in nets:
        m = dtd.load(rn.to_onnx(net, opset=_opset(key)))
        rng = np.random.default_rng(13)
        x = rng.uniform(-1.0, 1.0, (2, *net.input_shape))
        g = dtd.sensitivity(m, x, target=[0, 1], kind="gradient")
        h = 1e-6
        for _ in range(5):
            n = int(rng.integers(2))
            i = (n, *(int(rng.integers(d)) for d in net.input_shape))
            xp, xm = x.copy(), x.copy()
            xp[i] += h
            xm[i] -= h
            fd = (m.forward(xp)[n, n] - m.forward(xm)[n, n]) / (2 * h)
            assert g[i] == pytest.approx(fd, rel=1e-5, abs=1e-8)
