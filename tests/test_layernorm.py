"""LayerNormalization (opset 17) -> the layernorm layer: forward vs onnxruntime and a float64 NumPy loop,
relevance by the conservative LN rule of Ali et al. (ICML 2022; RULES.md) vs the float64 reference
(``tests/reference.py``), conservation, and the gradient (sensitivity)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

import dtd
import reference as ref
from builders import GraphBuilder, raises_on_load, run_ort
from dtd.errors import ModelLoadError, UnsupportedModelError
from dtd.rules import Composite, ZPlus
from test_affine import _steps_from

L, C = 4, 6


def _ln_net(axis: int, bias: bool = True, eps: float = 1e-5, head: bool = True) -> tuple[GraphBuilder, str]:
    """x [N, L, C] -> LayerNormalization(axis) -> MatMul (last axis) -> Add -> Relu -> Flatten -> Gemm."""
    b = GraphBuilder((L, C), opset=17, seed=40)
    shape = (L, C)[axis - 1 :] if axis > 0 else (L, C)[axis:]
    rng = np.random.default_rng(41)
    scale = b.const(
        rng.uniform(0.5, 1.5, shape).astype(np.float32) * rng.choice([-1, 1], shape).astype(np.float32)
    )
    inputs = ["x", scale] + ([b.const(rng.normal(0, 0.3, shape).astype(np.float32))] if bias else [])
    h = b.node("LayerNormalization", inputs, axis=axis, epsilon=eps)
    if not head:
        return b, h
    h = b.node("MatMul", [h, b.weight((C, 5))])
    h = b.relu(b.node("Add", [h, b.weight((5,), 0.1)]))
    return b, b.gemm(b.node("Flatten", [h], axis=1), 3)


def _ln_numpy(x: np.ndarray, b: GraphBuilder, axis: int, eps: float) -> np.ndarray:
    from onnx import numpy_helper

    node = next(n for n in b.nodes if n.op_type == "LayerNormalization")
    inits = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in b.initializers}
    scale = inits[node.input[1]]
    bias = inits[node.input[2]] if len(node.input) > 2 else None
    ax = axis % x.ndim
    return ref.layernorm_forward(
        x,
        np.broadcast_to(scale, x.shape[ax:]),
        None if bias is None else np.broadcast_to(bias, x.shape[ax:]),
        ax,
        eps,
    )


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("axis", [-1, -2, 2, 1])
def test_layernorm_forward(axis: int, bias: bool) -> None:
    b, out = _ln_net(axis, bias, head=False)
    onnx_model = b.build(out)
    model = dtd.load(onnx_model)
    assert [layer.kind for layer in model.layers] == ["layernorm"]
    x = np.random.default_rng(42).normal(0.5, 2.0, (3, L, C))
    want = _ln_numpy(x, b, axis, 1e-5)
    np.testing.assert_allclose(model.forward(x), want, rtol=1e-10, atol=1e-10)
    y32 = model.forward(x.astype(np.float32))
    np.testing.assert_allclose(y32, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(y32, run_ort(onnx_model, x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("axis", [-1, -2])
def test_layernorm_then_matmul_forward(axis: int) -> None:
    b, out = _ln_net(axis)
    onnx_model = b.build(out)
    model = dtd.load(onnx_model)
    assert [layer.kind for layer in model.layers] == ["layernorm", "dense", "relu", "flatten", "dense"]
    x = np.random.default_rng(43).normal(0.0, 1.0, (3, L, C))
    np.testing.assert_allclose(
        model.forward(x.astype(np.float32)), run_ort(onnx_model, x), rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("axis", [-1, -2])
def test_layernorm_relevance_vs_reference(axis: int, dtype: type) -> None:
    b, out = _ln_net(axis)
    model = dtd.load(b.build(out))
    steps = _steps_from(model, None)
    x = np.random.default_rng(44).normal(0.0, 1.0, (5, L, C))
    acts = ref.chain_forward(steps, x)
    np.testing.assert_allclose(model.forward(x), acts[-1], rtol=1e-10, atol=1e-12)
    want = ref.chain_relevance(steps, x, ref.start_relevance(acts[-1]), {1: ref.ZPlus(), 4: ref.ZPlus()})
    got = dtd.explain(model, x.astype(dtype), rules="positive")
    err = float(np.linalg.norm(got - want) / np.linalg.norm(want))
    assert err <= (1e-10 if dtype == np.float64 else 1e-4)


@pytest.mark.parametrize("axis", [-1, -2])
def test_layernorm_conservation(axis: int) -> None:
    # The LN rule is conservative up to the stabilizer (bias or not): sum_j R_j = sum_i s_i z_i.
    b, out = _ln_net(axis, bias=True, head=False)
    model = dtd.load(b.build(out))
    x = np.random.default_rng(45).normal(0.0, 1.0, (4, L, C))
    r_out = np.random.default_rng(46).normal(0.0, 1.0, (4, L * C))
    d = dtd.explain(model, x, target=r_out, rules="positive", eps=1e-12, return_details=True)
    # Random output relevance meets z_i of any size: the stabilizer leaves eps * R_i / z_i per element.
    np.testing.assert_allclose(d.relevance.reshape(4, -1).sum(axis=1), r_out.sum(axis=1), rtol=1e-7)
    layer = d.layers[0]
    np.testing.assert_allclose(layer.relevance_in, layer.relevance_out, rtol=1e-7)
    # ... and the per-element values are the reference formula
    from onnx import numpy_helper

    node = next(n for n in b.nodes if n.op_type == "LayerNormalization")
    scale = numpy_helper.to_array(next(i for i in b.initializers if i.name == node.input[1])).astype(
        np.float64
    )
    ax = axis % 3
    want = ref.layernorm_relevance(
        x, np.broadcast_to(scale, x.shape[ax:]), ax, 1e-5, r_out.reshape(x.shape), 1e-12
    )
    np.testing.assert_allclose(d.relevance, want, rtol=1e-9, atol=1e-12)


def test_layernorm_in_a_net_conserves_with_zplus() -> None:
    b, out = _ln_net(-1, bias=False)
    model = dtd.load(b.build(out))
    x = np.random.default_rng(47).normal(0.0, 1.0, (4, L, C))
    d = dtd.explain(model, x, rules=Composite(default=ZPlus(eps=1e-12), eps=1e-12), return_details=True)
    for layer in d.layers:
        if layer.kind in ("layernorm", "relu", "flatten"):
            np.testing.assert_allclose(layer.relevance_in, layer.relevance_out, rtol=1e-9)
    assert d.layers[0].rule == "conservative"


@pytest.mark.parametrize("axis", [-1, -2])
def test_layernorm_gradient(axis: int) -> None:
    b, out = _ln_net(axis, head=False)
    model = dtd.load(b.build(out))
    x = np.random.default_rng(48).normal(0.0, 1.0, (2, L, C))
    target = 5
    grad = dtd.sensitivity(model, x, target=target, kind="gradient")
    from onnx import numpy_helper

    node = next(n for n in b.nodes if n.op_type == "LayerNormalization")
    scale = numpy_helper.to_array(next(i for i in b.initializers if i.name == node.input[1])).astype(
        np.float64
    )
    ax = axis % 3
    r = np.zeros((2, L * C))
    r[:, target] = 1.0
    want = ref.layernorm_gradient(x, np.broadcast_to(scale, x.shape[ax:]), ax, 1e-5, r.reshape(x.shape))
    np.testing.assert_allclose(grad, want, rtol=1e-9, atol=1e-12)


def test_layernorm_refusals() -> None:
    b, _ = _ln_net(-1, head=False)
    b.nodes[-1].attribute[0].i = 0  # axis 0: the batch axis
    raises_on_load(b.build(b.nodes[-1].output[0]), UnsupportedModelError, "batch axis")
    b, h = _ln_net(-1, head=False)
    b.nodes[-1].output.extend(["mean"])
    raises_on_load(b.build("mean"), dtd.ModelLoadError, "")
    b = GraphBuilder((L, C), opset=17)
    h = b.node("LayerNormalization", ["x", b.const(np.ones(5, dtype=np.float32))])
    raises_on_load(b.build(h), ModelLoadError, "Scale", r"\[5\]", r"\[6\]")
    b = GraphBuilder((L, C), opset=16)
    h = b.node("LayerNormalization", ["x", b.const(np.ones(C, dtype=np.float32))])
    raises_on_load(b.build(h), UnsupportedModelError, "LayerNormalization")


# ---------------------------------------------------------------------------------------------------------
# LayerNormalization written out (PyTorch before opset 17): fused into one layernorm layer (cpp/src/import/fuse.cpp)
# ---------------------------------------------------------------------------------------------------------
def _decomposed_ln(
    opset: int,
    axes: list[int],
    square: str = "Pow",
    scale: bool = True,
    bias: bool = True,
    swap: bool = False,
    shape: tuple[int, ...] = (L, C),
) -> tuple[GraphBuilder, str, np.ndarray, np.ndarray]:
    """x -> ReduceMean, Sub, Pow 2 (or Mul d d), ReduceMean, Add eps, Sqrt, Div, [Mul scale], [Add bias]."""
    b = GraphBuilder(shape, opset=opset, seed=50)
    rank = len(shape) + 1
    groups = tuple(shape[a % rank - 1] for a in sorted(a % rank for a in axes))
    rng = np.random.default_rng(51)
    g = rng.uniform(0.5, 1.5, groups) * rng.choice([-1, 1], groups) if scale else np.ones(groups)
    g = g.astype(np.float32).astype(np.float64)
    beta = (rng.normal(0, 0.3, groups) if bias else np.zeros(groups)).astype(np.float32).astype(np.float64)

    def mean(v: str) -> str:
        if opset >= 18:
            return b.node("ReduceMean", [v, b.const(np.array(axes, dtype=np.int64))])
        return b.node("ReduceMean", [v], axes=axes)

    def binary(op: str, u: str, v: str) -> str:
        return b.node(op, [v, u] if swap else [u, v])

    d = b.node("Sub", ["x", mean("x")])
    sq = b.node("Pow", [d, b.const(np.array(2.0, np.float32))]) if square == "Pow" else b.node("Mul", [d, d])
    std = b.node("Sqrt", [binary("Add", mean(sq), b.const(np.array(1e-5, np.float32)))])
    y = b.node("Div", [d, std])
    if scale:
        y = binary("Mul", y, b.const(g.astype(np.float32)))
    if bias:
        y = binary("Add", y, b.const(beta.astype(np.float32)))
    return b, y, g, beta


@pytest.mark.parametrize(
    ("opset", "axes", "square", "scale", "bias", "swap"),
    [
        (11, [-1], "Pow", True, True, False),
        (13, [-1], "Mul", True, True, True),
        (13, [2], "Pow", False, True, False),
        (13, [-2, -1], "Pow", True, False, True),
        (18, [-1], "Pow", False, False, False),
        (18, [1, 2], "Mul", True, True, False),
    ],
)
def test_decomposed_layernorm_is_fused(
    opset: int, axes: list[int], square: str, scale: bool, bias: bool, swap: bool
) -> None:
    b, out, g, beta = _decomposed_ln(opset, axes, square, scale, bias, swap)
    onnx_model = b.build(out)
    model = dtd.load(onnx_model)
    assert [layer.kind for layer in model.layers] == ["layernorm"]
    assert model.layers[0].name == b.nodes[0].name  # the first ReduceMean
    x = np.random.default_rng(52).normal(0.5, 2.0, (3, L, C))
    axis = min(a % 3 for a in axes)
    want = ref.layernorm_forward(x, g, beta if bias else None, axis, float(np.float32(1e-5)))
    np.testing.assert_allclose(model.forward(x), want, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(
        model.forward(x.astype(np.float32)), run_ort(onnx_model, x), rtol=1e-4, atol=1e-4
    )


def test_decomposed_layernorm_relevance_is_the_layernorm_rule() -> None:
    """The fused layer explains exactly like its LayerNormalization twin (same weights, same rule)."""
    b, out, _, _ = _decomposed_ln(13, [-1])
    mul, add = b.nodes[-2], b.nodes[-1]  # y * scale, + bias
    assert (mul.op_type, add.op_type) == ("Mul", "Add")
    n_ln = len(b.nodes)
    h = b.relu(b.node("Add", [b.node("MatMul", [out, b.weight((C, 5))]), b.weight((5,), 0.1)]))
    logits = b.gemm(b.node("Flatten", [h], axis=1), 3)
    fused = dtd.load(b.build(logits))
    twin = GraphBuilder((L, C), opset=17)
    twin.initializers = list(b.initializers)
    twin.nodes = [
        helper.make_node(
            "LayerNormalization", ["x", mul.input[1], add.input[1]], [out], axis=-1, epsilon=1e-5
        ),
        *b.nodes[n_ln:],
    ]
    twin_model = dtd.load(twin.build(logits))
    assert [layer.kind for layer in fused.layers] == [layer.kind for layer in twin_model.layers]
    x = np.random.default_rng(53).normal(0.0, 1.0, (4, L, C))
    np.testing.assert_allclose(fused.forward(x), twin_model.forward(x), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(dtd.explain(fused, x), dtd.explain(twin_model, x), rtol=1e-6, atol=1e-12)


def test_decomposed_layernorm_refusals_and_non_matches() -> None:
    # Mean and variance over a leading axis: matched, but not a layer normalisation dtd supports.
    b, out, _, _ = _decomposed_ln(13, [1])
    raises_on_load(b.build(out), UnsupportedModelError, "ReduceMean", r"axes \[1\]", "trailing")
    # The centred value has a third consumer: not fused, so the written-out ops are refused one by one.
    b, out, _, _ = _decomposed_ln(13, [-1])
    d = b.nodes[1].output[0]
    out = b.node("Add", [out, d])
    raises_on_load(b.build(out), UnsupportedModelError, "")
