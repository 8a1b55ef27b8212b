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
import itertools
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
    #: w^2 and flat by default (eps not given): stab(z) = z + eps |z| s(z), RULES.md "Stabilizer".
    relative: bool = False
    alpha: float = 1.0
    beta: float = 0.0


def ZPlus(eps: float = 1e-6, bias: bool = False) -> Rule:
    """z+ rule."""
    return Rule("zplus", eps=eps, bias=bias)


def WSquare(eps: float | None = None, bias: bool = False) -> Rule:
    """w^2 rule; eps None: the default relative stabilizer 1e-6 |z|."""
    return Rule("wsquare", eps=1e-6 if eps is None else eps, bias=bias, relative=eps is None)


def ZBox(low: Any, high: Any, eps: float = 1e-6) -> Rule:
    """z^beta rule with bounds broadcast against one input sample."""
    return Rule("zbox", eps=eps, low=low, high=high)


def Epsilon(eps: float = 1e-6) -> Rule:
    """LRP-epsilon."""
    return Rule("epsilon", eps=eps)


def Gamma(gamma: float = 0.25, eps: float = 1e-6, bias: bool = False) -> Rule:
    """LRP-gamma."""
    return Rule("gamma", eps=eps, bias=bias, gamma=gamma)


def AlphaBeta(alpha: float = 2.0, beta: float = 1.0, eps: float = 1e-6, bias: bool = False) -> Rule:
    """LRP-alpha-beta (alpha - beta = 1)."""
    return Rule("alphabeta", eps=eps, bias=bias, alpha=alpha, beta=beta)


def Flat(eps: float | None = None) -> Rule:
    """Flat rule; eps None: the default relative stabilizer 1e-6 |z|."""
    return Rule("flat", eps=1e-6 if eps is None else eps, relative=eps is None)


def stab(z: np.ndarray, eps: float, relative: bool = False) -> np.ndarray:
    """``z + eps * s(z)`` with ``s(z) = +1`` for ``z >= 0`` and ``-1`` otherwise; ``z + eps |z| s(z)`` if relative."""
    return z + eps * (np.abs(z) if relative else 1.0) * np.where(z >= 0, 1.0, -1.0)


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
    kernel: tuple[int, ...],
    strides: tuple[int, ...],
    pads: tuple[int, ...],
    dilations: tuple[int, ...],
    out_sp: tuple[int, ...],
) -> list[list[tuple[tuple[int, ...], tuple[int, ...]]]]:
    """For each output position (row-major over the spatial axes), the in-bounds taps ``(k, i)`` in row-major window
    order: ``k`` the kernel index, ``i`` the input index (one entry per spatial axis). ``in_shape`` is
    ``(C, *spatial)`` with 1 to 3 spatial axes; ``pads`` in ONNX order (all begins, then all ends)."""
    spatial = in_shape[1:]
    r = len(spatial)
    taps = []
    for o in itertools.product(*(range(n) for n in out_sp)):
        lst = []
        for k in itertools.product(*(range(n) for n in kernel)):
            i = tuple(o[a] * strides[a] - pads[a] + k[a] * dilations[a] for a in range(r))
            if all(0 <= i[a] < spatial[a] for a in range(r)):
                lst.append((k, i))
        taps.append(lst)
    return taps


def _padded_taps(
    o: tuple[int, ...],
    in_sp: tuple[int, ...],
    kernel: tuple[int, ...],
    strides: tuple[int, ...],
    pads: tuple[int, ...],
    dilations: tuple[int, ...],
) -> int:
    """Taps of output position ``o`` inside the padded input (count_include_pad's divisor; under ceil_mode a window
    can reach past the padding, and those taps do not count)."""
    r = len(in_sp)
    n = 1
    for a in range(r):
        n *= sum(
            -pads[a] <= o[a] * strides[a] - pads[a] + t * dilations[a] < in_sp[a] + pads[r + a]
            for t in range(kernel[a])
        )
    return n


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
            c, *sp = s0
            m, cg, *ks = w.shape
            r = len(ks)
            st, pd, dl, g = a["strides"], a["pads"], a["dilations"], a["group"]
            osp = tuple(_out_len(sp[i], ks[i], st[i], pd[i], pd[r + i], dl[i], False) for i in range(r))
            npos = int(np.prod(osp))
            self.out_shape = (m, *osp)
            self.W = np.zeros((int(np.prod(s0)), m * npos))
            self.M = np.zeros_like(self.W)
            taps = _window_taps(s0, tuple(ks), st, pd, dl, osp)
            per_group = m // g
            for mo in range(m):
                grp = mo // per_group
                for pos, lst in enumerate(taps):
                    j = mo * npos + pos
                    for ci in range(cg):
                        cin = grp * cg + ci
                        for k, idx in lst:
                            i = int(np.ravel_multi_index((cin, *idx), s0))
                            self.W[i, j] += w[(mo, ci, *k)]
                            self.M[i, j] = 1.0
            self.has_bias = "B" in node.params
            self.b = np.repeat(node.params.get("B", np.zeros(m)).astype(np.float64), npos)
        elif op in ("maxpool", "avgpool"):
            c, *sp = s0
            ks = tuple(a["kernel"])
            r = len(ks)
            st, pd = a["strides"], a["pads"]
            dl = a.get("dilations", (1,) * r)
            ceil = bool(a.get("ceil_mode", 0))
            osp = tuple(_out_len(sp[i], ks[i], st[i], pd[i], pd[r + i], dl[i], ceil) for i in range(r))
            npos = int(np.prod(osp))
            self.out_shape = (c, *osp)
            taps = _window_taps(s0, ks, st, pd, dl, osp)
            self.W = np.zeros((int(np.prod(s0)), c * npos))
            self.M = np.zeros_like(self.W)
            self.windows = []
            positions = list(itertools.product(*(range(n) for n in osp)))
            for ch in range(c):
                for pos, lst in enumerate(taps):
                    j = ch * npos + pos
                    idx = [int(np.ravel_multi_index((ch, *i), s0)) for _, i in lst]
                    assert idx, "a pooling window without any input cell"
                    self.windows.append(idx)
                    if op == "avgpool":
                        if a["count_include_pad"]:
                            div = _padded_taps(positions[pos], tuple(sp), ks, st, pd, dl)
                        else:
                            div = len(idx)
                    for i in idx:
                        self.M[i, j] = 1.0
                        if op == "avgpool":
                            self.W[i, j] = 1.0 / div
            self.b = np.zeros(self.W.shape[1])
        elif op in ("globalavgpool", "globalmaxpool"):
            c, *sp = s0
            plane = int(np.prod(sp))
            self.out_shape = (c, *(1 for _ in sp))
            self.W = np.zeros((c * plane, c))
            for ch in range(c):
                self.W[ch * plane : (ch + 1) * plane, ch] = 1.0 / plane
            self.M = (self.W != 0).astype(np.float64)
            self.b = np.zeros(c)
            if op == "globalmaxpool":
                self.windows = [list(range(ch * plane, (ch + 1) * plane)) for ch in range(c)]
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
        if op in ("maxpool", "globalmaxpool"):
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


def preset(
    net: Net, name: str, low: Any = None, high: Any = None, eps: float | None = None
) -> dict[str, Rule]:
    """RULES.md presets: bounded (z^beta first, z+ others), real (w^2 first), positive (z+).

    ``eps`` None keeps each rule's default stabilizer (1e-6; relative for w^2), a number is absolute everywhere.
    """
    if name == "deep_taylor":
        name = "bounded" if low is not None else "real"
    e = 1e-6 if eps is None else eps
    first = {
        "bounded": lambda: ZBox(low, high, e),
        "real": lambda: WSquare(eps),
        "positive": lambda: ZPlus(e),
        "epsilon": lambda: Epsilon(e),
    }[name]()
    default = Epsilon(e) if name == "epsilon" else ZPlus(e)
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
    if rule.kind == "alphabeta":
        # q[n, i, j] = a_i w_ij split into its positive and negative parts, each normalised by its own sum.
        q = a[:, :, None] * w[None]
        qp, qn = np.maximum(q, 0), np.minimum(q, 0)
        zp = qp.sum(axis=1) + (np.maximum(b, 0) if rule.bias else 0.0)
        zn = qn.sum(axis=1) + (np.minimum(b, 0) if rule.bias else 0.0)
        sp, sn = r / stab(zp, eps), r / stab(zn, eps)
        return rule.alpha * np.einsum("nij,nj->ni", qp, sp) - rule.beta * np.einsum("nij,nj->ni", qn, sn)
    if rule.kind == "wsquare":
        w2 = w**2
        z = w2.sum(axis=0) + (b**2 if rule.bias else 0.0)
        s = r / stab(z, eps, rule.relative)
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
        s = r / stab(np.broadcast_to(z, r.shape), eps, rule.relative)
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
        elif node.op in ("maxpool", "globalmaxpool") and maxpool == "winner_take_all":
            assert lay.windows is not None
            ri = np.zeros_like(a)
            for j, idx in enumerate(lay.windows):
                vals = a[:, idx]
                win = np.asarray(idx)[vals.argmax(axis=1)]  # argmax: first maximum in window order
                ri[np.arange(n), win] += r[:, j]
            outs = [ri]
        elif node.op in ("maxpool", "globalmaxpool"):
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
        return dr.WSquare(eps=None if rule.relative else rule.eps, bias=rule.bias)
    if rule.kind == "zbox":
        return dr.ZBox(low=rule.low, high=rule.high, eps=rule.eps)
    if rule.kind == "epsilon":
        return dr.Epsilon(eps=rule.eps)
    if rule.kind == "gamma":
        return dr.Gamma(gamma=rule.gamma, eps=rule.eps, bias=rule.bias)
    if rule.kind == "flat":
        return dr.Flat(eps=None if rule.relative else rule.eps)
    if rule.kind == "alphabeta":
        return dr.AlphaBeta(alpha=rule.alpha, beta=rule.beta, eps=rule.eps, bias=rule.bias)
    raise ValueError(rule.kind)


# ---------------------------------------------------------------------------------------------------
# Affine (elementwise scale and shift) and LayerNormalization, and a sequential chain that mixes them with
# the layers above (for nets whose affine/layernorm layers sit anywhere).


def affine_forward(x: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``y = scale * x + shift``, constants broadcasting (NumPy) against one sample of ``x`` [N, ...]."""
    return np.asarray(scale, dtype=np.float64) * x + np.asarray(shift, dtype=np.float64)


def affine_relevance(
    x: np.ndarray,
    scale: np.ndarray,
    shift: np.ndarray,
    r: np.ndarray,
    rule: str = "identity",
    eps: float = 1e-6,
) -> np.ndarray:
    """RULES.md: ``identity`` passes ``r`` through; ``epsilon``: ``R_x = (s x) / stab(s x + t) R_y``;
    ``gradient``: ``s R_y``."""
    s = np.broadcast_to(np.asarray(scale, dtype=np.float64), x.shape)
    t = np.broadcast_to(np.asarray(shift, dtype=np.float64), x.shape)
    if rule == "identity":
        return r.copy()
    if rule == "gradient":
        return s * r
    assert rule == "epsilon", rule
    out = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        z = s[idx] * x[idx]
        out[idx] = z * r[idx] / stab(np.asarray(z + t[idx]), eps) if r[idx] != 0 else 0.0
    return out


def _groups(x: np.ndarray, axis: int) -> np.ndarray:
    """``x`` [N, ...] as [G, n]: one row per normalised group (ONNX ``axis`` counts the batch axis)."""
    return x.reshape(int(np.prod(x.shape[:axis])), -1)


def layernorm_forward(
    x: np.ndarray, scale: np.ndarray, bias: np.ndarray | None, axis: int, epsilon: float
) -> np.ndarray:
    """ONNX LayerNormalization over the axes ``axis..``, one group at a time."""
    g = np.asarray(scale, dtype=np.float64).reshape(-1)
    b = np.zeros_like(g) if bias is None else np.asarray(bias, dtype=np.float64).reshape(-1)
    rows = _groups(np.asarray(x, dtype=np.float64), axis)
    out = np.empty_like(rows)
    for k, row in enumerate(rows):
        mu = sum(row) / len(row)
        sigma = np.sqrt(sum((v - mu) ** 2 for v in row) / len(row) + epsilon)
        out[k] = g * (row - mu) / sigma + b
    return out.reshape(x.shape)


def layernorm_relevance(
    x: np.ndarray, scale: np.ndarray, axis: int, epsilon: float, r: np.ndarray, eps: float = 1e-6
) -> np.ndarray:
    """The conservative LN rule (Ali et al., ICML 2022; RULES.md): sigma constant,
    ``z_i = g_i (x_i - mu) / sigma``, ``s_i = R_i / stab(z_i)``, ``R_j = x_j (g_j s_j - mean_i g_i s_i) / sigma``."""
    g = np.asarray(scale, dtype=np.float64).reshape(-1)
    rows, rr = _groups(np.asarray(x, dtype=np.float64), axis), _groups(r, axis)
    out = np.empty_like(rows)
    for k, (row, rk) in enumerate(zip(rows, rr, strict=True)):
        n = len(row)
        mu = sum(row) / n
        sigma = np.sqrt(sum((v - mu) ** 2 for v in row) / n + epsilon)
        z = g * (row - mu) / sigma
        s = np.array([rk[i] / stab(np.asarray(z[i]), eps) if rk[i] != 0 else 0.0 for i in range(n)])
        m = sum(g * s) / n
        out[k] = [row[j] * (g[j] * s[j] - m) / sigma for j in range(n)]
    return out.reshape(x.shape)


def layernorm_gradient(
    x: np.ndarray, scale: np.ndarray, axis: int, epsilon: float, r: np.ndarray
) -> np.ndarray:
    """The input-gradient of ``sum r * layernorm(x)`` (sigma depending on x), by the explicit Jacobian."""
    g = np.asarray(scale, dtype=np.float64).reshape(-1)
    rows, rr = _groups(np.asarray(x, dtype=np.float64), axis), _groups(r, axis)
    out = np.empty_like(rows)
    for k, (row, rk) in enumerate(zip(rows, rr, strict=True)):
        n = len(row)
        mu = row.mean()
        sigma = np.sqrt(((row - mu) ** 2).mean() + epsilon)
        xhat = (row - mu) / sigma
        jac = (np.eye(n) - 1.0 / n - np.outer(xhat, xhat) / n) / sigma  # d xhat_i / d x_j
        out[k] = (g * rk) @ jac
    return out.reshape(x.shape)


@dataclasses.dataclass
class Step:
    """One layer of a sequential chain: ``op`` in dense, conv, maxpool, avgpool, relu, flatten (a reference
    :class:`Layer` for the linear and pooling ones), affine (``params`` scale, shift) or layernorm (``params``
    scale, bias; ``attrs`` axis, epsilon)."""

    op: str
    layer: Layer | None = None
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    attrs: dict[str, Any] = dataclasses.field(default_factory=dict)


def chain_forward(steps: list[Step], x: np.ndarray) -> list[np.ndarray]:
    """The activations [x, after step 0, ...] of a sequential chain (float64)."""
    acts = [np.asarray(x, dtype=np.float64)]
    for st in steps:
        a = acts[-1]
        if st.op == "affine":
            acts.append(affine_forward(a, st.params["scale"], st.params["shift"]))
        elif st.op == "layernorm":
            p, at = st.params, st.attrs
            acts.append(layernorm_forward(a, p["scale"], p.get("bias"), at["axis"], at["epsilon"]))
        elif st.op == "relu":
            acts.append(np.maximum(a, 0.0))
        elif st.op == "flatten":
            acts.append(a.reshape(a.shape[0], -1))
        elif st.op == "dense" and a.ndim > 2:  # on the last axis: the leading axes are rows
            assert st.layer is not None
            out = st.layer.forward([a.reshape(-1, a.shape[-1])])
            acts.append(out.reshape(*a.shape[:-1], out.shape[-1]))
        else:
            assert st.layer is not None
            acts.append(st.layer.forward([a]))
    return acts


def chain_relevance(
    steps: list[Step], x: np.ndarray, r_out: np.ndarray, rules: dict[int, Any], eps: float = 1e-6
) -> np.ndarray:
    """Input relevance of a sequential chain: ``rules[i]`` is the :class:`Rule` of dense/conv step ``i`` or
    ``"epsilon"`` for an affine step (default ``"identity"``); pooling is winner-take-all (max) or proportional
    (average); ``eps`` stabilises the layers without rules."""
    acts = chain_forward(steps, x)
    n = acts[0].shape[0]
    r = np.asarray(r_out, dtype=np.float64).reshape(acts[-1].shape)
    for i in reversed(range(len(steps))):
        st, a = steps[i], acts[i]
        if st.op == "affine":
            r = affine_relevance(a, st.params["scale"], st.params["shift"], r, rules.get(i, "identity"), eps)
        elif st.op == "layernorm":
            r = layernorm_relevance(a, st.params["scale"], st.attrs["axis"], st.attrs["epsilon"], r, eps)
        elif st.op in ("relu", "flatten"):
            r = r.reshape(a.shape)
        elif st.op in ("dense", "conv"):
            assert st.layer is not None
            rows = n if st.op == "conv" else int(np.prod(a.shape[:-1]))
            rr = _parametric_rule(st.layer, rules[i], a.reshape(rows, -1), r.reshape(rows, -1), a.shape[1:])
            r = rr.reshape(a.shape)
        elif st.op == "maxpool":
            assert st.layer is not None and st.layer.windows is not None
            flat, rf = a.reshape(n, -1), r.reshape(n, -1)
            ri = np.zeros_like(flat)
            for j, idx in enumerate(st.layer.windows):
                win = np.asarray(idx)[flat[:, idx].argmax(axis=1)]
                ri[np.arange(n), win] += rf[:, j]
            r = ri.reshape(a.shape)
        elif st.op == "avgpool":
            assert st.layer is not None and st.layer.W is not None
            flat = a.reshape(n, -1)
            z = flat @ st.layer.W
            r = (flat * ((r.reshape(n, -1) / stab(z, eps)) @ st.layer.W.T)).reshape(a.shape)
        else:
            raise ValueError(f"chain: unknown op {st.op!r}")
    return r


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
