"""Large dense layers at small batch take w+ and w- from w on the fly (no stored copies): checked against the
stored-weights path (larger batch) and a direct NumPy evaluation of the z^beta and z+ formulas."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

import dtd


def stab(z: np.ndarray, eps: float) -> np.ndarray:
    return z + eps * np.where(z >= 0, 1.0, -1.0)


def test_large_dense_on_the_fly_matches_formulas_and_stored_path() -> None:
    rng = np.random.default_rng(3)
    w1 = rng.normal(0, 0.03, (1100, 1000)).astype(np.float32)  # [in, out]: 1.1 M weights
    w2 = rng.normal(0, 0.05, (1000, 1200)).astype(np.float32)  # the z+ layer: 1.2 M weights
    w3 = rng.normal(0, 0.05, (1200, 10)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h1"]),
            helper.make_node("Relu", ["h1"], ["r1"]),
            helper.make_node("MatMul", ["r1", "w2"], ["h2"]),
            helper.make_node("Relu", ["h2"], ["r2"]),
            helper.make_node("MatMul", ["r2", "w3"], ["y"]),
        ],
        "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1100])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        [numpy_helper.from_array(w, n) for w, n in ((w1, "w1"), (w2, "w2"), (w3, "w3"))],
    )
    model = dtd.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    x = rng.uniform(0, 1, (6, 1100))
    eps = 1e-9
    rules = dtd.rules.preset("bounded", low=0.0, high=1.0, eps=eps)
    one = np.stack(
        [dtd.explain(model, x[i : i + 1], target=2, rules=rules)[0] for i in range(6)]
    )  # on the fly
    many = dtd.explain(model, x, target=2, rules=rules)  # batch 6: stored w+ / w-
    np.testing.assert_allclose(one, many, rtol=1e-9, atol=1e-12)

    W1, W2, W3 = (w.astype(np.float64) for w in (w1, w2, w3))
    a1 = np.maximum(x @ W1, 0)
    a2 = np.maximum(a1 @ W2, 0)
    r3 = np.zeros((6, 10))
    r3[:, 2] = (a2 @ W3)[:, 2]
    r2 = a2 * ((r3 / stab(a2 @ np.maximum(W3, 0), eps)) @ np.maximum(W3, 0).T)
    r1 = a1 * ((r2 / stab(a1 @ np.maximum(W2, 0), eps)) @ np.maximum(W2, 0).T)
    wp, wn = np.maximum(W1, 0), np.minimum(W1, 0)
    z = x @ W1 - np.ones(1100) @ wn  # low = 0, high = 1
    s = r1 / stab(z, eps)
    r0 = x * (s @ W1.T) - 0.0 * (s @ wp.T) - 1.0 * (s @ wn.T)
    np.testing.assert_allclose(many, r0, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(r0.sum(axis=1), r3[:, 2], rtol=1e-6)
    # float32: the same formulas to 1e-4 (the fused sweep that computes the forward and z+'s denominator at once)
    one32 = np.stack(
        [dtd.explain(model, x[i : i + 1].astype(np.float32), target=2, rules=rules)[0] for i in range(6)]
    )
    np.testing.assert_allclose(one32, r0, rtol=1e-4, atol=1e-4 * np.abs(r0).max())


def test_trace_with_plan_keeps_products_and_matches_plain_trace() -> None:
    """A trace made with the plan keeps the products the relevance pass would recompute (z^beta's denominator on
    the first layer, z+'s on a large dense layer at batch 1); the relevance equals the one from a plain trace."""
    rng = np.random.default_rng(5)
    w1 = rng.normal(0, 0.03, (1100, 1000)).astype(np.float32)
    w2 = rng.normal(0, 0.05, (1000, 10)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h1"]),
            helper.make_node("Relu", ["h1"], ["r1"]),
            helper.make_node("MatMul", ["r1", "w2"], ["y"]),
        ],
        "big2",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1100])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        [numpy_helper.from_array(w, n) for w, n in ((w1, "w1"), (w2, "w2"))],
    )
    model = dtd.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    for dtype, rtol in ((np.float64, 1e-12), (np.float32, 1e-5)):
        x = rng.uniform(0, 1, (1, 1100)).astype(dtype)
        net = model.network(dtype)
        for rules in ("bounded", "positive", "epsilon"):
            plan, _, _ = dtd.api._plan(model, net, np.dtype(dtype), rules, 0.0, 1.0, 1e-6)
            r_out = np.zeros((1, 10), dtype)
            r_out[0, 3] = 1.0
            plain, _ = net.relevance(net.trace(x), r_out, plan, False)
            kept, _ = net.relevance(net.trace(x, plan), r_out, plan, False)
            np.testing.assert_allclose(kept, plain, rtol=rtol, atol=rtol * np.abs(plain).max(), err_msg=rules)
            assert np.abs(plain).max() > 0


def test_dense_products_at_every_batch_match_float64() -> None:
    """Dense layers at 1 to 33 rows run different products (a matrix-vector product, the weights packed once as
    the GEMM's right operand, Eigen for outputs too few to pack): the forward and a z+ explanation agree with a
    float64 NumPy evaluation whatever the batch and the layer's width (1, 10, 100 and 300 outputs)."""
    rng = np.random.default_rng(11)
    sizes = [(784, 300), (300, 100), (100, 10), (10, 1)]
    ws = [rng.normal(0, 1 / np.sqrt(i), (i, o)).astype(np.float32) for i, o in sizes]
    nodes, cur = [], "x"
    for k in range(len(ws)):
        nodes.append(helper.make_node("MatMul", [cur, f"w{k}"], [f"h{k}"]))
        cur = f"h{k}"
        if k < len(ws) - 1:
            nodes.append(helper.make_node("Relu", [cur], [f"r{k}"]))
            cur = f"r{k}"
    graph = helper.make_graph(
        [*nodes[:-1], helper.make_node("MatMul", [nodes[-1].input[0], f"w{len(ws) - 1}"], ["y"])],
        "widths",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 784])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
        [numpy_helper.from_array(w, f"w{k}") for k, w in enumerate(ws)],
    )
    model = dtd.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    for n in (1, 2, 7, 16, 33):
        x = rng.uniform(0, 1, (n, 784)).astype(np.float32)
        acts = [x.astype(np.float64)]
        for k, w in enumerate(ws):
            z = acts[-1] @ w.astype(np.float64)
            acts.append(np.maximum(z, 0) if k < len(ws) - 1 else z)
        y = model.forward(x)
        np.testing.assert_allclose(y, acts[-1], rtol=1e-5, atol=1e-5 * np.abs(acts[-1]).max())
        # z+ everywhere, relevance starting at the output's value: R_i = a_i sum_j w+_ij R_j / z+_j
        r = acts[-1] * (acts[-1] > 0)
        for k in range(len(ws) - 1, -1, -1):
            wp = np.maximum(ws[k].astype(np.float64), 0)
            zp = acts[k] @ wp
            s = r / np.where(zp > 0, zp + 1e-6, 1.0) * (zp > 0)
            r = acts[k] * (s @ wp.T)
        got = dtd.explain(model, x, target=0, rules="positive")
        keep = acts[-1][:, 0] > 0
        np.testing.assert_allclose(got[keep], r[keep], rtol=1e-4, atol=1e-6 * np.abs(r).max())
