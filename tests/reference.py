"""Plain float64 reference of the forward pass and of every relevance rule in /work/shared/RULES.md.

Written for obviousness, not speed, and sharing nothing with dtd's code path. Every linear layer
(dense, convolution, average pooling) is turned into an explicit matrix ``W[i, j]`` from the flat input
position ``i`` to the flat output position ``j`` of one sample, built by plain loops over the taps that
lie inside the input; padded taps simply have no entry, which is exactly "padded positions hold 0 in
every term". A connectivity mask ``M[i, j]`` (1 for every in-bounds tap) serves the flat rule and
pooling windows. Each rule is then its formula from RULES.md on these matrices, batched over samples.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from relnets import Net, Node

# ---------------------------------------------------------------------------------------------------
# Rules


@dataclasses.dataclass(frozen=True)
class Rule:
    """A parametric-layer rule: kind in zplus, wsquare, zbox, epsilon, gamma, flat."""

    kind: str
    eps: float = 1e-6
    bias: bool = False
    gamma: float = 0.25
    low: Any = None
    high: Any = None


def ZPlus(eps: float = 1e-6, bias: bool = False) -> Rule:
    """z+ rule."""
    return Rule("zplus", eps=eps, bias=bias)


def WSquare(eps: float = 1e-6, bias: bool = False) -> Rule:
    """w^2 rule."""
    return Rule("wsquare", eps=eps, bias=bias)


def ZBox(low: Any, high: Any, eps: float = 1e-6) -> Rule:
    """z^beta rule with bounds broadcast against one input sample."""
    return Rule("zbox", eps=eps, low=low, high=high)


def Epsilon(eps: float = 1e-6) -> Rule:
    """LRP-epsilon."""
    return Rule("epsilon", eps=eps)


def Gamma(gamma: float = 0.25, eps: float = 1e-6, bias: bool = False) -> Rule:
    """LRP-gamma."""
    return Rule("gamma", eps=eps, bias=bias, gamma=gamma)


def Flat(eps: float = 1e-6) -> Rule:
    """Flat rule."""
    return Rule("flat", eps=eps)


def stab(z: np.ndarray, eps: float) -> np.ndarray:
    """``z + eps * s(z)`` with ``s(z) = +1`` for ``z >= 0`` and ``-1`` otherwise."""
    return z + eps * np.where(z >= 0, 1.0, -1.0)


# ---------------------------------------------------------------------------------------------------
# BatchNorm folding


def fold_batchnorm(net: Net) -> Net:
    """Fold every BatchNormalization into the dense/conv that feeds it (RULES.md formula)."""
    nodes: list[Node] = []
    rename: dict[str, str] = {}
    for n in net.nodes:
        n = dataclasses.replace(n, inputs=[rename.get(i, i) for i in n.inputs])
        if n.op != "batchnorm":
            nodes.append(n)
            continue
        prev = nodes[-1]
        assert prev.op in ("conv", "dense") and n.inputs == [prev.name], "BN must follow its conv"
        p = n.params
        k = p["scale"] / np.sqrt(p["var"] + n.attrs["epsilon"])
        w = prev.params["W"]
        b = prev.params.get("B", np.zeros(w.shape[0]))
        shape = (-1,) + (1,) * (w.ndim - 1)
        params = {"W": w * k.reshape(shape), "B": (b - p["mean"]) * k + p["bias"]}
        nodes[-1] = dataclasses.replace(prev, params=params)
        rename[n.name] = prev.name
    return Net(net.name, net.input_shape, nodes)


# ---------------------------------------------------------------------------------------------------
# Per-layer matrices (one sample, flat indices in C order)


def _window_taps(
    in_shape: tuple[int, ...],
    kernel: tuple[int, int],
    strides: tuple[int, int],
    pads: tuple[int, int, int, int],
    dilations: tuple[int, int],
    out_hw: tuple[int, int],
) -> list[list[tuple[int, int, int, int]]]:
    """For each output position (oh, ow), the in-bounds taps (kh, kw, ih, iw) in row-major window order."""
    _, h, w = in_shape
    oh_n, ow_n = out_hw
    taps = []
    for oh in range(oh_n):
        for ow in range(ow_n):
            lst = []
            for kh in range(kernel[0]):
                ih = oh * strides[0] - pads[0] + kh * dilations[0]
                for kw in range(kernel[1]):
                    iw = ow * strides[1] - pads[1] + kw * dilations[1]
                    if 0 <= ih < h and 0 <= iw < w:
                        lst.append((kh, kw, ih, iw))
            taps.append(lst)
    return taps


def _out_len(size: int, k: int, s: int, p0: int, p1: int, d: int, ceil: bool) -> int:
    span = size + p0 + p1 - d * (k - 1) - 1
    n = (-(-span // s) if ceil else span // s) + 1
    if ceil and (n - 1) * s >= size + p0:  # a last window starting in the end padding is dropped
        n -= 1
    return n


class Layer:
    """A node plus its input/output per-sample shapes and, for linear layers, its matrices."""

    def __init__(self, node: Node, in_shapes: list[tuple[int, ...]]):
        self.node = node
        self.in_shapes = in_shapes
        self.W: np.ndarray | None = None  # [I, J]
        self.M: np.ndarray | None = None  # [I, J] in-bounds taps
        self.b: np.ndarray | None = None  # [J]
        self.has_bias = False
        self.windows: list[list[int]] | None = None  # maxpool: flat input indices per flat output
        op = node.op
        a = node.attrs
        s0 = in_shapes[0]
        if op == "dense":
            w = node.params["W"]
            self.W = w.T.copy()
            self.M = np.ones_like(self.W)
            self.has_bias = "B" in node.params
            self.b = node.params.get("B", np.zeros(w.shape[0])).astype(np.float64)
            self.out_shape: tuple[int, ...] = (w.shape[0],)
        elif op == "conv":
            w = node.params["W"]
            c, h, wd = s0
            m, cg, kh_n, kw_n = w.shape
            st, pd, dl, g = a["strides"], a["pads"], a["dilations"], a["group"]
            oh_n = _out_len(h, kh_n, st[0], pd[0], pd[2], dl[0], False)
            ow_n = _out_len(wd, kw_n, st[1], pd[1], pd[3], dl[1], False)
            self.out_shape = (m, oh_n, ow_n)
            self.W = np.zeros((c * h * wd, m * oh_n * ow_n))
            self.M = np.zeros_like(self.W)
            taps = _window_taps(s0, (kh_n, kw_n), st, pd, dl, (oh_n, ow_n))
            per_group = m // g
            for mo in range(m):
                grp = mo // per_group
                for pos, lst in enumerate(taps):
                    j = mo * oh_n * ow_n + pos
                    for ci in range(cg):
                        cin = grp * cg + ci
                        for kh, kw, ih, iw in lst:
                            i = (cin * h + ih) * wd + iw
                            self.W[i, j] += w[mo, ci, kh, kw]
                            self.M[i, j] = 1.0
            self.has_bias = "B" in node.params
            self.b = np.repeat(node.params.get("B", np.zeros(m)).astype(np.float64), oh_n * ow_n)
        elif op in ("maxpool", "avgpool"):
            c, h, wd = s0
            kh_n, kw_n = a["kernel"]
            st, pd = a["strides"], a["pads"]
            dl = a.get("dilations", (1, 1))
            ceil = bool(a.get("ceil_mode", 0))
            oh_n = _out_len(h, kh_n, st[0], pd[0], pd[2], dl[0], ceil)
            ow_n = _out_len(wd, kw_n, st[1], pd[1], pd[3], dl[1], ceil)
            self.out_shape = (c, oh_n, ow_n)
            taps = _window_taps(s0, (kh_n, kw_n), st, pd, dl, (oh_n, ow_n))
            self.W = np.zeros((c * h * wd, c * oh_n * ow_n))
            self.M = np.zeros_like(self.W)
            self.windows = []
            for ch in range(c):
                for pos, lst in enumerate(taps):
                    j = ch * oh_n * ow_n + pos
                    idx = [(ch * h + ih) * wd + iw for _, _, ih, iw in lst]
                    assert idx, "a pooling window without any input cell"
                    self.windows.append(idx)
                    if op == "avgpool":
                        if a["count_include_pad"]:
                            # divisor: the kernel size, padded cells included (no ceil mode here)
                            div = kh_n * kw_n
                        else:
                            div = len(idx)
                    for i in idx:
                        self.M[i, j] = 1.0
                        if op == "avgpool":
                            self.W[i, j] = 1.0 / div
            self.b = np.zeros(self.W.shape[1])
        elif op == "globalavgpool":
            c, h, wd = s0
            self.out_shape = (c, 1, 1)
            self.W = np.zeros((c * h * wd, c))
            for ch in range(c):
                self.W[ch * h * wd : (ch + 1) * h * wd, ch] = 1.0 / (h * wd)
            self.M = (self.W != 0).astype(np.float64)
            self.b = np.zeros(c)
        elif op in ("relu", "softmax", "logsoftmax", "add"):
            self.out_shape = s0
        elif op == "flatten":
            self.out_shape = (int(np.prod(s0)),)
        elif op == "reshape":
            tgt = list(a["shape"][1:])
            size = int(np.prod(s0))
            known = int(np.prod([t for t in tgt if t != -1]))
            self.out_shape = tuple(
                size // known if t == -1 else (s0[k] if t == 0 else t) for k, t in enumerate(tgt)
            )
        elif op == "concat":
            assert a.get("axis", 1) == 1
            self.out_shape = (sum(s[0] for s in in_shapes), *s0[1:])
        elif op in ("activation", "gate"):
            self.out_shape = s0
        else:
            raise ValueError(f"reference: unknown op {op!r}")

    # forward of a batch [N, *in_shape] -> [N, *out_shape]
    def forward(self, xs: list[np.ndarray]) -> np.ndarray:
        op = self.node.op
        n = xs[0].shape[0]
        if op in ("dense", "conv", "avgpool", "globalavgpool"):
            assert self.W is not None and self.b is not None
            return (xs[0].reshape(n, -1) @ self.W + self.b).reshape(n, *self.out_shape)
        if op == "maxpool":
            assert self.windows is not None
            flat = xs[0].reshape(n, -1)
            out = np.stack([flat[:, idx].max(axis=1) for idx in self.windows], axis=1)
            return out.reshape(n, *self.out_shape)
        if op == "relu":
            return np.maximum(xs[0], 0.0)
        if op == "softmax":
            e = np.exp(xs[0] - xs[0].max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)
        if op == "logsoftmax":
            z = xs[0] - xs[0].max(axis=1, keepdims=True)
            return z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        if op == "add":
            return np.sum(xs, axis=0)
        if op in ("flatten", "reshape"):
            return xs[0].reshape(n, *self.out_shape)
        if op == "concat":
            return np.concatenate(xs, axis=1)
        if op == "activation":
            return activation(self.node.attrs["onnx"], self.node.attrs, xs[0], self.node.params.get("slope"))
        if op == "gate":
            return xs[0] * xs[1]  # the gate [N, C, 1, 1] (or the signal's shape) broadcast like NumPy
        raise AssertionError(op)


def build(net: Net) -> tuple[Net, dict[str, Layer]]:
    """Fold BatchNorm and build every layer's matrices."""
    net = fold_batchnorm(net)
    shapes: dict[str, tuple[int, ...]] = {"x": tuple(net.input_shape)}
    layers: dict[str, Layer] = {}
    for node in net.nodes:
        lay = Layer(node, [shapes[i] for i in node.inputs])
        layers[node.name] = lay
        shapes[node.name] = lay.out_shape
    return net, layers


_CACHE: dict[int, tuple[Net, Net, dict[str, Layer]]] = {}


def built(net: Net) -> tuple[Net, dict[str, Layer]]:
    hit = _CACHE.get(id(net))
    if hit is None or hit[0] is not net:
        folded, layers = build(net)
        _CACHE[id(net)] = (net, folded, layers)
        return folded, layers
    return hit[1], hit[2]


# ---------------------------------------------------------------------------------------------------
# Forward


def forward_all(net: Net, x: np.ndarray) -> dict[str, np.ndarray]:
    """All activations (float64) of a batch ``x`` [N, *input_shape], keyed by tensor name."""
    folded, layers = built(net)
    acts = {"x": np.asarray(x, dtype=np.float64)}
    for node in folded.nodes:
        acts[node.name] = layers[node.name].forward([acts[i] for i in node.inputs])
    return acts


def logits_name(net: Net) -> str:
    """The tensor explanations start from: the input of a final softmax/logsoftmax, else the output."""
    folded, _ = built(net)
    last = folded.nodes[-1]
    return last.inputs[0] if last.op in ("softmax", "logsoftmax") else last.name


def forward(net: Net, x: np.ndarray) -> np.ndarray:
    """Model output (what onnxruntime returns), float64."""
    return forward_all(net, x)[built(net)[0].output]


def logits(net: Net, x: np.ndarray) -> np.ndarray:
    """Pre-softmax scores [N, n_out], float64."""
    return forward_all(net, x)[logits_name(net)]


def start_relevance(lg: np.ndarray, target: Any = None) -> np.ndarray:
    """``R_out[n, k] = f_k(x_n)`` if ``k`` is the target of sample ``n`` else 0 (None -> argmax)."""
    n = lg.shape[0]
    if target is None:
        t = lg.argmax(axis=1)
    else:
        t = np.broadcast_to(np.asarray(target, dtype=np.int64), (n,))
    r = np.zeros_like(lg)
    r[np.arange(n), t] = lg[np.arange(n), t]
    return r


# ---------------------------------------------------------------------------------------------------
# Rule assignment


def parametric(net: Net) -> list[str]:
    """Names of the dense/conv layers in topological order (after BN folding)."""
    return [n.name for n in built(net)[0].nodes if n.op in ("dense", "conv")]


def assign(
    net: Net, default: Rule, first: Rule | None = None, overrides: dict[Any, Rule] | None = None
) -> dict[str, Rule]:
    """Per parametric layer rule: ``first`` on the first dense/conv, overrides by name or op kind.

    Precedence: a name override beats a kind override, which beats ``first``, which beats ``default``.
    """
    names = parametric(net)
    folded, _ = built(net)
    rules = {nm: default for nm in names}
    if first is not None and names:
        rules[names[0]] = first
    # precedence as dtd.rules.Composite documents it: name > kind > first > default
    for kind_pass in (True, False):
        for key, rule in (overrides or {}).items():
            if (key in ("dense", "conv")) != kind_pass:
                continue
            for n in folded.nodes:
                if n.name in rules and (key == n.name or key == n.op):
                    rules[n.name] = rule
    return rules


def preset(net: Net, name: str, low: Any = None, high: Any = None, eps: float = 1e-6) -> dict[str, Rule]:
    """RULES.md presets: bounded (z^beta first, z+ others), real (w^2 first), positive (z+)."""
    if name == "deep_taylor":
        name = "bounded" if low is not None else "real"
    first = {
        "bounded": lambda: ZBox(low, high, eps),
        "real": lambda: WSquare(eps),
        "positive": lambda: ZPlus(eps),
        "epsilon": lambda: Epsilon(eps),
    }[name]()
    default = Epsilon(eps) if name == "epsilon" else ZPlus(eps)
    return assign(net, default, first)


# ---------------------------------------------------------------------------------------------------
# Backward


def _bounds(bound: Any, in_shape: tuple[int, ...], model_shape: tuple[int, ...], n: int) -> np.ndarray:
    """Bounds as [N, I]: broadcast against the layer's input sample, else the model input's (then flat)."""
    b = np.asarray(bound, dtype=np.float64)
    try:
        full = np.broadcast_to(b, in_shape)
    except ValueError:
        full = np.broadcast_to(b, model_shape)
    return np.broadcast_to(full.reshape(1, -1), (n, full.size))


def _parametric_rule(
    lay: Layer, rule: Rule, a: np.ndarray, r: np.ndarray, model_shape: tuple[int, ...]
) -> np.ndarray:
    """Input relevance [N, I] of a dense/conv layer from activations a [N, I] and relevance r [N, J]."""
    w, mask, b = lay.W, lay.M, lay.b
    assert w is not None and mask is not None and b is not None
    eps = rule.eps
    if rule.kind == "zplus":
        wp, wn = np.maximum(w, 0), np.minimum(w, 0)
        ap, an = np.maximum(a, 0), np.minimum(a, 0)
        z = ap @ wp + an @ wn
        if rule.bias:
            z = z + np.maximum(b, 0)
        s = r / stab(z, eps)
        return ap * (s @ wp.T) + an * (s @ wn.T)
    if rule.kind == "wsquare":
        w2 = w**2
        z = w2.sum(axis=0) + (b**2 if rule.bias else 0.0)
        s = r / stab(z, eps)
        return s @ w2.T
    if rule.kind == "zbox":
        lo = _bounds(rule.low, lay.in_shapes[0], model_shape, a.shape[0])
        hi = _bounds(rule.high, lay.in_shapes[0], model_shape, a.shape[0])
        wp, wn = np.maximum(w, 0), np.minimum(w, 0)
        # q[n, i, j] = a_i w_ij - l_i w+_ij - h_i w-_ij
        q = a[:, :, None] * w[None] - lo[:, :, None] * wp[None] - hi[:, :, None] * wn[None]
        z = q.sum(axis=1)
        s = r / stab(z, eps)
        return np.einsum("nij,nj->ni", q, s)
    if rule.kind == "epsilon":
        z = a @ w + b
        s = r / stab(z, eps)
        return a * (s @ w.T)
    if rule.kind == "gamma":
        wg = w + rule.gamma * np.maximum(w, 0)
        z = a @ wg + ((b + rule.gamma * np.maximum(b, 0)) if rule.bias else 0.0)
        s = r / stab(z, eps)
        return a * (s @ wg.T)
    if rule.kind == "flat":
        z = mask.sum(axis=0)
        s = r / stab(np.broadcast_to(z, r.shape), eps)
        return s @ mask.T
    raise ValueError(f"unknown rule {rule.kind!r}")


@dataclasses.dataclass
class LayerReport:
    """Per-layer relevance totals per sample: at the layer's output (``out``) and its inputs (``in_``)."""

    name: str
    op: str
    rule: str
    out: np.ndarray
    in_: np.ndarray


def relevance(
    net: Net,
    x: np.ndarray,
    rules: dict[str, Rule],
    r_out: np.ndarray,
    maxpool: str = "winner_take_all",
    add: str = "zplus",
    eps: float = 1e-6,
    report: list[LayerReport] | None = None,
) -> np.ndarray:
    """Input relevance [N, *input_shape] for output relevance ``r_out`` [N, n_out] (at the logits).

    ``rules`` maps every dense/conv name (after BN folding) to a :class:`Rule`; ``eps`` stabilises the
    parameter-free layers (pooling, Add). If ``report`` is a list, it receives one entry per layer.
    """
    folded, layers = built(net)
    acts = forward_all(net, x)
    n = acts["x"].shape[0]
    rel: dict[str, np.ndarray] = {logits_name(net): np.asarray(r_out, dtype=np.float64).reshape(n, -1)}
    model_shape = tuple(net.input_shape)
    for node in reversed(folded.nodes):
        if node.op in ("softmax", "logsoftmax") or node.name not in rel:
            continue
        lay = layers[node.name]
        r = rel[node.name].reshape(n, -1)
        ins = [acts[i].reshape(n, -1) for i in node.inputs]
        a = ins[0]
        rule_name = ""
        if node.op in ("dense", "conv"):
            rule = rules[node.name]
            rule_name = rule.kind
            outs = [_parametric_rule(lay, rule, a, r, model_shape)]
        elif node.op == "maxpool" and maxpool == "winner_take_all":
            assert lay.windows is not None
            ri = np.zeros_like(a)
            for j, idx in enumerate(lay.windows):
                vals = a[:, idx]
                win = np.asarray(idx)[vals.argmax(axis=1)]  # argmax: first maximum in window order
                ri[np.arange(n), win] += r[:, j]
            outs = [ri]
        elif node.op == "maxpool":
            assert maxpool == "proportional", maxpool
            assert lay.M is not None
            z = a @ lay.M
            outs = [a * ((r / stab(z, eps)) @ lay.M.T)]
        elif node.op in ("avgpool", "globalavgpool"):
            assert lay.W is not None
            z = a @ lay.W
            outs = [a * ((r / stab(z, eps)) @ lay.W.T)]
        elif node.op == "add":
            if add == "zplus":
                parts = [np.maximum(u, 0) for u in ins]
            else:
                assert add == "proportional", add
                parts = list(ins)
            s = r / stab(np.sum(parts, axis=0), eps)
            outs = [p * s for p in parts]
        elif node.op == "concat":
            sizes = np.cumsum([u.shape[1] for u in ins])[:-1]
            per = r.reshape(n, *lay.out_shape)
            bounds = np.cumsum([0] + [s[0] for s in lay.in_shapes])
            outs = [per[:, bounds[k] : bounds[k + 1]].reshape(n, -1) for k in range(len(ins))]
            assert len(sizes) == len(ins) - 1
        elif node.op in ("relu", "flatten", "reshape"):
            outs = [r]
        elif node.op == "activation":
            outs = [r]  # pass-through (zennit's Pass)
        elif node.op == "gate":
            outs = [r, np.zeros_like(ins[1])]  # signal-take-all: the gate is held constant
        else:
            raise AssertionError(node.op)
        if report is not None:
            report.append(
                LayerReport(
                    node.name,
                    node.op,
                    rule_name,
                    r.sum(axis=1),
                    np.sum([o.sum(axis=1) for o in outs], axis=0),
                )
            )
        for src, o in zip(node.inputs, outs, strict=True):
            o = o.reshape(acts[src].shape)
            rel[src] = rel[src] + o if src in rel else o
    return rel["x"]


def explain(net: Net, x: np.ndarray, rules: dict[str, Rule], target: Any = None, **kw: Any) -> np.ndarray:
    """Relevance for the target logit (None -> argmax), as ``dtd.explain`` defines it."""
    return relevance(net, x, rules, start_relevance(logits(net, x), target), **kw)


# ---------------------------------------------------------------------------------------------------
# Bridge to dtd's rule objects (imported lazily: the reference itself never needs dtd)


def to_dtd(rule: Rule) -> Any:
    """The ``dtd.rules`` object equivalent to a reference :class:`Rule`."""
    from dtd import rules as dr

    if rule.kind == "zplus":
        return dr.ZPlus(eps=rule.eps, bias=rule.bias)
    if rule.kind == "wsquare":
        return dr.WSquare(eps=rule.eps, bias=rule.bias)
    if rule.kind == "zbox":
        return dr.ZBox(low=rule.low, high=rule.high, eps=rule.eps)
    if rule.kind == "epsilon":
        return dr.Epsilon(eps=rule.eps)
    if rule.kind == "gamma":
        return dr.Gamma(gamma=rule.gamma, eps=rule.eps, bias=rule.bias)
    if rule.kind == "flat":
        return dr.Flat(eps=rule.eps)
    raise ValueError(rule.kind)


# ---------------------------------------------------------------------------------------------------
# Element-wise activations, written from the ONNX operator definitions


def activation(op: str, attrs: dict[str, Any], x: np.ndarray, slope: np.ndarray | None = None) -> np.ndarray:
    """The ONNX op ``op`` (``"LeakyRelu"``, ``"Gelu"``, ...) of ``x`` in float64; ``attrs`` holds its attributes
    (absent ones take the ONNX defaults); ``slope`` is PRelu's, broadcast against one sample."""
    import math

    x = np.asarray(x, dtype=np.float64)
    alpha = attrs.get("alpha")
    f32 = lambda v: float(np.float32(v))  # noqa: E731  (ONNX float attributes and their defaults are float32)
    if op == "Clip":
        return np.clip(x, attrs.get("min", -np.inf), attrs.get("max", np.inf))
    if op == "LeakyRelu":
        return np.where(x >= 0, x, (f32(0.01) if alpha is None else alpha) * x)
    if op == "PRelu":
        assert slope is not None
        return np.where(x >= 0, x, slope * x)
    if op == "Elu":
        return np.where(x >= 0, x, (1.0 if alpha is None else alpha) * (np.exp(x) - 1.0))
    if op == "Selu":
        a = 1.67326319217681884765625 if alpha is None else alpha
        g = attrs.get("gamma", 1.05070102214813232421875)
        return np.where(x > 0, g * x, g * (a * np.exp(x) - a))
    if op == "Sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if op == "Tanh":
        return np.tanh(x)
    if op == "HardSigmoid":
        return np.maximum(
            0.0, np.minimum(1.0, (f32(0.2) if alpha is None else alpha) * x + attrs.get("beta", 0.5))
        )
    if op == "HardSwish":
        return x * np.maximum(0.0, np.minimum(1.0, x / 6.0 + 0.5))
    if op == "Softplus":
        return np.log(np.exp(x) + 1.0)
    if op == "Gelu" and attrs.get("approximate", "none") == "tanh":
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    if op == "Gelu":
        return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))
    if op == "Silu":
        return x / (1.0 + np.exp(-x))
    raise ValueError(f"reference: unknown activation {op!r}")
