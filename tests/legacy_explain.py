"""The explain level as it was in Python before it moved into the C++ core (dtd::Explainer): a private reference
copy, so that tests/test_explain_core.py can check that the new path gives the same results bit for bit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dtd import _core
from dtd.model import Model
from dtd.rules import (
    DEFAULT_EPS,
    AlphaBeta,
    Composite,
    Epsilon,
    Gamma,
    Rule,
    WSquare,
    ZBox,
    ZPlus,
    preset,
)

_MAXPOOL_MODES = ("winner_take_all", "proportional")
_ADD_MODES = ("zplus", "proportional")
_AVGPOOL_MODES = ("proportional", "flat")
_PARAMETRIC = ("dense", "conv")
_EPSILON_ONLY = ("affine",)


@dataclass(frozen=True)
class LayerRelevance:
    index: int
    name: str
    kind: str
    rule: str
    relevance_out: np.ndarray
    relevance_in: np.ndarray


@dataclass(frozen=True)
class Explanation:
    relevance: np.ndarray
    logits: np.ndarray
    targets: np.ndarray | None
    layers: list[LayerRelevance]


def _spec(rule: Rule) -> Any:
    """Rule._spec as it was (base checks, then the subclass's fields)."""
    eps = DEFAULT_EPS if rule.eps is None else rule.eps
    if not np.isfinite(eps) or eps < 0:
        raise ValueError(f"{type(rule).__name__}: eps must be finite and >= 0, got {eps}")
    spec = _core.RuleSpec()
    spec.kind = getattr(_core.RuleKind, rule.kind)
    spec.eps = float(eps)
    spec.eps_absolute = rule.eps is not None
    if isinstance(rule, (ZPlus, WSquare)):
        spec.bias = bool(rule.bias)
    elif isinstance(rule, Gamma):
        if not np.isfinite(rule.gamma) or rule.gamma < 0:
            raise ValueError(f"Gamma: gamma must be finite and >= 0, got {rule.gamma}")
        spec.gamma = float(rule.gamma)
        spec.bias = bool(rule.bias)
    elif isinstance(rule, AlphaBeta):
        if not (np.isfinite(rule.alpha) and np.isfinite(rule.beta)) or rule.beta < 0:
            raise ValueError(
                f"AlphaBeta: alpha and beta must be finite, beta >= 0; got {rule.alpha}, {rule.beta}"
            )
        if abs(rule.alpha - rule.beta - 1.0) > 1e-9:
            raise ValueError(
                f"AlphaBeta: alpha - beta must be 1 (conservation), got alpha {rule.alpha}, beta {rule.beta}"
            )
        spec.alpha, spec.beta = float(rule.alpha), float(rule.beta)
        spec.bias = bool(rule.bias)
    return spec


def _layer_rules(self: Composite, model: Any) -> list[Rule | None]:
    """The rule of each layer of ``model`` (None for layers without weights)."""
    if self.maxpool not in _MAXPOOL_MODES:
        raise ValueError(f"maxpool must be one of {_MAXPOOL_MODES}, got {self.maxpool!r}")
    if self.add not in _ADD_MODES:
        raise ValueError(f"add must be one of {_ADD_MODES}, got {self.add!r}")
    if self.avgpool not in _AVGPOOL_MODES:
        raise ValueError(f"avgpool must be one of {_AVGPOOL_MODES}, got {self.avgpool!r}")
    layers = model.layers
    rules: list[Rule | None] = [self.default if layer.parametric else None for layer in layers]
    first = next((layer.index for layer in layers if layer.parametric), None)
    if self.first is not None and first is not None:
        rules[first] = self.first
    by_kind: dict[str, Rule] = {}
    by_layer: dict[int, Rule] = {}
    names = {layer.name: layer.index for layer in layers}
    for key, rule in (self.overrides or {}).items():
        if not isinstance(rule, Rule):
            raise ValueError(f"override for {key!r} is {rule!r}, not a dtd.rules.Rule")
        if isinstance(key, str) and key in _EPSILON_ONLY and not isinstance(rule, Epsilon):
            raise ValueError(f"{type(rule).__name__} cannot apply to {key} layers: they take only Epsilon")
        if isinstance(key, str) and key in _PARAMETRIC + _EPSILON_ONLY:
            by_kind[key] = rule
            continue
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            if not -len(layers) <= key < len(layers):
                raise ValueError(f"override index {key} is out of range: the model has {len(layers)} layers")
            index = int(key) % len(layers)
        elif isinstance(key, str) and key in names:
            index = names[key]
        else:
            raise ValueError(
                f"override key {key!r} names no layer; use a layer name, an index or a kind "
                f"{_PARAMETRIC}; layers: {sorted(names)}"
            )
        layer = layers[index]
        if layer.kind in _EPSILON_ONLY and isinstance(rule, Epsilon):
            by_layer[index] = rule
            continue
        if not layer.parametric:
            raise ValueError(
                f"{type(rule).__name__} cannot apply to {layer.kind} layer '{layer.name}' (index {index}): "
                "only dense and conv layers take rules (affine layers Epsilon); pooling and Add take "
                "Composite(maxpool=..., add=...)"
            )
        by_layer[index] = rule
    for layer in layers:
        if layer.kind in by_kind:
            rules[layer.index] = by_kind[layer.kind]
    for index, rule in by_layer.items():
        rules[index] = rule
    return rules


# A z^beta layer's bounds: (value id whose values must lie in the box: the layer's input, or the model input
# when the bounds were mapped onto the layer (see _input_map), low, high of that value, the tolerance of the
# bounds check, (low, high) when both are constant else None).
_Box = tuple[int, np.ndarray, np.ndarray, float, "tuple[float, float] | None"]

#: Layers through which input bounds are mapped onto the first conv/dense layer (elementwise and monotone).
_BOUNDS_MAPPED = ("affine", "relu", "flatten", "reshape", "transpose", "slice", "gather", "pad")


def _composite(rules: str | Composite | Rule, low: Any, high: Any, eps: float | None) -> Composite:
    if isinstance(rules, str):
        return preset(rules, low=low, high=high, eps=eps)
    if isinstance(rules, Rule):
        return Composite(default=rules, eps=eps)
    if isinstance(rules, Composite):
        return rules
    raise ValueError(f"rules must be a preset name, a dtd.rules.Rule or a dtd.rules.Composite, got {rules!r}")


def _bounds(value: Any, what: str, sample_shape: tuple[int, ...], layer_shape: tuple[int, ...]) -> np.ndarray:
    """Broadcasts a bound (scalar, per-channel [C], or an array broadcastable to one sample) to the first
    layer's per-sample input, flattened."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        if not np.isfinite(arr):
            raise ValueError(f"{what} must be finite")
        return np.full(int(np.prod(layer_shape)), float(arr))
    if arr.ndim == len(sample_shape) + 1 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 1 and len(sample_shape) > 1 and arr.shape[0] == sample_shape[0] and arr.shape[0] > 1:
        arr = arr.reshape((-1,) + (1,) * (len(sample_shape) - 1))
    try:
        full = np.broadcast_to(arr, sample_shape)
    except ValueError:
        raise ValueError(
            f"{what} has shape {list(arr.shape)}, which does not broadcast to the input shape {list(sample_shape)} "
            "(give a scalar, a per-channel vector [C], or an array of the input's shape)"
        ) from None
    if full.size != int(np.prod(layer_shape)):
        raise ValueError(
            f"{what} of shape {list(arr.shape)} cannot be mapped onto the first parametric layer's input "
            f"{list(layer_shape)}; give a scalar bound"
        )
    if not np.all(np.isfinite(full)):
        raise ValueError(f"{what} must be finite")
    return np.ascontiguousarray(full, dtype=np.float64).ravel()


def _input_map(model: Model, layer: Any) -> bool:
    """True when the layers between the model input and ``layer`` are a chain of single-input layers that map each
    input element to at most one value monotonically (affine, ReLU, and the data movements: reshape, transpose,
    slice, gather, pad), with at least one that changes values or positions: bounds given for the model input
    then map onto ``layer``'s input (see :func:`_map_bounds`)."""
    value, kinds = layer.inputs[0], []
    while value != 0:
        producer = model.layers[value - 1]
        if producer.kind not in _BOUNDS_MAPPED or len(producer.inputs) != 1:
            return False
        kinds.append(producer.kind)
        value = producer.inputs[0]
    return any(k not in ("flatten", "reshape") for k in kinds)


def _map_bounds(model: Model, layer: Any, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Input bounds (flat, model input shape) mapped onto ``layer``'s input through the chain of
    :func:`_input_map`: each element of that input is a monotone function of one input element (``s x + t``,
    ``max(x, 0)``, a copy) or a constant (a padded position), so the box's image is ``[min(f(l), f(h)),
    max(f(l), f(h))]`` elementwise: both bounds are run through the network in float64."""
    net = model.network(np.dtype(np.float64))
    images = []
    for bound in (lo, hi):
        trace = net.trace(np.ascontiguousarray(bound.reshape((1, *model.input_shape))), None)
        images.append(np.asarray(trace.value(layer.inputs[0]), dtype=np.float64).ravel())
    return np.ascontiguousarray(np.minimum(*images)), np.ascontiguousarray(np.maximum(*images))


def _rule_specs(
    model: Model, composite: Composite, low: Any, high: Any
) -> tuple[list[_core.RuleSpec], list[str], list[_Box]]:
    """One RuleSpec per layer, the rule names for the report, and the z^beta layers with their bounds."""
    specs, names, boxes = [], [], []
    layer_rules = _layer_rules(composite, model)  # checks the modes too
    maxpool = getattr(_core.MaxPoolMode, composite.maxpool)
    add = getattr(_core.AddMode, composite.add)
    avgpool = getattr(_core.AvgPoolMode, composite.avgpool)
    for layer, rule in zip(model.layers, layer_rules, strict=True):
        if rule is None:
            spec = _core.RuleSpec()
            spec.eps = float(DEFAULT_EPS if composite.eps is None else composite.eps)
            name = {
                "maxpool": composite.maxpool,
                "globalmaxpool": composite.maxpool,
                "add": composite.add,
                "activation": "pass",
                "gate": "signal_take_all",
            }.get(layer.kind, "-")
            if layer.kind in ("avgpool", "globalavgpool"):
                name = composite.avgpool
            elif layer.kind == "affine":
                name = "identity"
            elif layer.kind == "layernorm":
                name = "conservative"
        else:
            spec = _spec(rule)
            name = rule.kind
            if isinstance(rule, ZBox):
                lo_v = low if rule.low is None else rule.low
                hi_v = high if rule.high is None else rule.high
                if lo_v is None or hi_v is None:
                    raise ValueError(f"ZBox on layer '{layer.name}' needs bounds: pass low= and high=")
                # Bounds are given in the model input's space; through affine layers (input normalisation in the
                # graph, BatchNormalization) and data movements (an NHWC graph's Transpose, Pad) they are mapped onto
                # the layer's input, and checked on the model input.
                chain = _input_map(model, layer)
                target = model.input_shape if chain else layer.input_shapes[0]
                lo = _bounds(lo_v, "low", model.input_shape, target)
                hi = _bounds(hi_v, "high", model.input_shape, target)
                if np.any(lo > hi):
                    bad = int(np.argmax(lo > hi))
                    raise ValueError(
                        f"low > high for the z^beta bounds (first at flat index {bad}: {lo[bad]} > {hi[bad]})"
                    )
                spec.low, spec.high = _map_bounds(model, layer, lo, hi) if chain else (lo, hi)
                uniform = (
                    (float(lo[0]), float(hi[0])) if np.all(lo == lo[0]) and np.all(hi == hi[0]) else None
                )
                tol = 1e-5 * max(1.0, float(np.max(hi - lo)))
                boxes.append((0 if chain else layer.inputs[0], lo, hi, tol, uniform))
        spec.maxpool, spec.add, spec.avgpool = maxpool, add, avgpool
        specs.append(spec)
        names.append(name)
    return specs, names, boxes


def _batch(model: Model, x: Any) -> tuple[np.ndarray, bool, Any]:
    """The input as a checked batch, whether it was one sample, and the network for its dtype."""
    if not isinstance(model, Model):
        raise ValueError(f"model must be a dtd.Model (from dtd.load), got {type(model).__name__}")
    arr = np.asarray(x)
    single = arr.ndim == len(model.input_shape)
    batch = model.check_input(arr[None] if single else arr)
    _check_finite(batch, "input")
    return batch, single, model.network(batch.dtype)


def _check_finite(values: np.ndarray, what: str) -> None:
    """Raise ValueError naming how many of ``values`` are NaN or infinite and where the first one is."""
    finite = np.isfinite(values)
    if finite.all():
        return
    bad = int(finite.size - np.count_nonzero(finite))
    first = tuple(int(i) for i in np.unravel_index(int(np.argmin(finite)), values.shape))
    hint = (
        " (float32 overflow: explain in float64, or scale the input)"
        if what != "input" and values.dtype == np.float32
        else ""
    )
    raise ValueError(
        f"the {what} holds {bad} NaN or infinite value(s) of {values.size}, the first at index {list(first)} "
        f"({values[first]}){hint}"
    )


def _trace(net: Any, batch: np.ndarray, plan: Any = None) -> tuple[Any, np.ndarray]:
    """The forward pass keeping the activations the backward pass reads (and, given the plan of that pass, the
    products it would compute again), and the logits [N, n_out]."""
    trace = net.trace(batch, plan)
    return trace, trace.value(net.logits_value).reshape(batch.shape[0], -1)


def _plan(
    model: Model, net: Any, dtype: np.dtype[Any], rules: Any, low: Any, high: Any, eps: float | None
) -> tuple[Any, list[str], list[_Box]]:
    """The rules prepared for ``net`` (the original cached them on the model; the results do not depend on it)."""
    specs, names, boxes = _rule_specs(model, _composite(rules, low, high, eps), low, high)
    limit = float(np.finfo(dtype).max)
    for spec in specs:
        for bound in (spec.low, spec.high):
            if len(bound) and float(np.max(np.abs(bound))) > limit:
                raise ValueError(
                    f"z^beta bounds of magnitude up to {float(np.max(np.abs(bound))):.3g} do not fit in "
                    f"{np.dtype(dtype).name} (largest {limit:.3g}); give finite bounds of the input's range"
                )
    return net.prepare(specs), names, boxes


def _check_in_box(model: Model, batch: np.ndarray, trace: Any, boxes: list[_Box]) -> None:
    for value, lo, hi, tol, uniform in boxes:
        source = batch if value == 0 else trace.value(value)
        a = source.reshape(-1, lo.size)
        if uniform is not None and a.min() >= uniform[0] - tol and a.max() <= uniform[1] + tol:
            continue  # constant bounds (the common case): two reductions decide
        below, above = a < lo - tol, a > hi + tol
        if below.any() or above.any():
            n_bad = int(below.sum() + above.sum())
            worst = float(max(np.max(lo - a), np.max(a - hi)))
            where = "the input" if value == 0 else f"the output of layer '{model.layers[value - 1].name}'"
            raise ValueError(
                f"{n_bad} values of {where} lie outside [low, high] (by up to {worst:.4g}); the z^beta rule needs "
                "low <= x <= high: check the bounds match the preprocessing"
            )


def _target_classes(
    target: Any, tgt: np.ndarray, n: int, n_out: int, single: bool
) -> tuple[np.ndarray, bool]:
    """Integer targets as classes [N, K] (in range, non-negative), and whether there are K targets per sample."""
    if tgt.dtype.kind not in "iu" and tgt.dtype != np.bool_:
        raise ValueError(
            f"target must be None, an int, ints, or a float output-relevance array; got {target!r}"
        )
    if tgt.dtype == np.bool_:
        raise ValueError("target must be class indices, not booleans")
    if tgt.ndim == 0:
        classes, multi = np.full((n, 1), int(tgt)), False
    elif single and tgt.ndim == 1:
        classes, multi = tgt.reshape(1, -1), True
    elif tgt.ndim == 1:
        if tgt.shape[0] != n:
            raise ValueError(f"got {tgt.shape[0]} targets for a batch of {n} samples")
        classes, multi = tgt.reshape(n, 1), False
    elif tgt.ndim == 2 and not single:
        if tgt.shape[0] != n:
            raise ValueError(
                f"targets of shape {list(tgt.shape)} for a batch of {n} samples, expected [N, K]"
            )
        classes, multi = tgt, True
    else:
        raise ValueError(f"targets of shape {list(tgt.shape)} are not understood")
    if classes.size and (classes.min() < -n_out or classes.max() >= n_out):
        bad = classes[(classes < -n_out) | (classes >= n_out)][0]
        raise ValueError(f"target class {bad} is out of range for a model with {n_out} outputs")
    return classes % n_out, multi


def _output_relevance(
    target: Any, logits: np.ndarray, single: bool, unit: bool = False
) -> tuple[list[np.ndarray], np.ndarray | None, bool]:
    """The output relevance per pass ([N, n_out] each), the targets, and whether there are K targets per sample.
    The target's entry holds its logit (DTD), or 1 with ``unit`` (a gradient)."""
    n, n_out = logits.shape
    if target is None:  # the argmax class of each sample (the common case: no conversion or validation)
        classes, multi = logits.argmax(axis=1)[:, None], False
    else:
        tgt = np.asarray(target)
        if tgt.dtype.kind == "f" and tgt.ndim >= 1:
            r = tgt.reshape(1, -1) if single else tgt.reshape(tgt.shape[0], -1) if tgt.ndim >= 2 else tgt
            if r.shape != (n, n_out):
                raise ValueError(
                    f"output relevance has shape {list(tgt.shape)}, expected {[n, n_out] if not single else [n_out]}"
                )
            if not np.all(np.isfinite(r)):
                raise ValueError("output relevance must be finite")
            return [np.ascontiguousarray(r, dtype=logits.dtype)], None, False
        classes, multi = _target_classes(target, tgt, n, n_out, single)
    passes = []
    rows = np.arange(n)
    for k in range(classes.shape[1]):
        r = np.zeros_like(logits)
        r[rows, classes[:, k]] = 1.0 if unit else logits[rows, classes[:, k]]
        passes.append(r)
    targets = classes if multi else classes[:, 0]
    return passes, targets, multi


def explain(
    model: Model,
    x: np.ndarray,
    target: Any = None,
    rules: str | Composite | Rule = "deep_taylor",
    low: Any = None,
    high: Any = None,
    eps: float | None = None,
    return_details: bool = False,
) -> Any:
    """Explains the model's decision on ``x`` as a relevance map (Deep Taylor Decomposition, Montavon et al.,
    Pattern Recognition 65, 2017).

    Relevance starts at the target's logit (``R_out[n, k] = f_k(x_n)`` for ``k == target``, else 0) and flows
    back layer by layer to the input, so that it sums to ``f_c(x)`` where the rules conserve it.

    Parameters
    ----------
    model : dtd.Model
        From :func:`dtd.load`.
    x : ndarray
        A batch ``[N, *model.input_shape]`` or one sample ``model.input_shape``; float32 or float64.
    target : None, int, sequence of int, int array [N, K], or float array [N, n_out]
        None explains the argmax class of each sample; an int one class for all; N ints one per sample; an
        int array ``[N, K]`` K classes per sample (result ``[N, K, ...]``, one forward pass shared by K backward
        passes); a float array is the output relevance, used as given. For a single sample, a 1-D int sequence
        gives K classes (result ``[K, ...]``).
    rules : str, Rule or Composite
        A preset name (``"deep_taylor"``, ``"bounded"``, ``"real"``, ``"positive"``, ``"epsilon"``), a rule for
        every parametric layer, or a :class:`dtd.rules.Composite`. ``"deep_taylor"`` is ``"bounded"`` when
        ``low``/``high`` are given, else ``"real"``.
    low, high : float or array, optional
        Input bounds for the z^β rule (e.g. 0 and 1 for pixels in [0, 1]): scalars, per-channel vectors, or
        arrays of the input's shape. ``x`` must lie within them.
    eps : float, optional
        Stabilizer of the preset's rules. None (default): each rule's default, 1e-6 (absolute for z+, z^β, ε,
        pooling and Add; relative to the denominator for w² and flat, see :class:`dtd.rules.Rule`); a number is
        used as the absolute stabilizer everywhere (zennit's convention).
    return_details : bool
        Return an :class:`Explanation` (relevance, logits, targets, per-layer conservation report).

    Returns
    -------
    ndarray or Explanation
        Relevance with the shape of ``x`` (``[N, K, ...]`` with K targets per sample), in x's dtype.
    """
    batch, single, net = _batch(model, x)
    plan, rule_names, boxes = _plan(model, net, batch.dtype, rules, low, high, eps)
    trace, logits = _trace(net, batch, plan)
    _check_in_box(model, batch, trace, boxes)
    passes, targets, multi = _output_relevance(target, logits, single)
    results, reports = [], []
    for r_out in passes:
        rel, rep = net.relevance(trace, r_out.reshape((-1, *model.logits_shape)), plan, return_details)
        results.append(rel)
        reports.append(rep)
    relevance = np.stack(results, axis=1) if multi else results[0]
    _check_finite(relevance, "relevance")
    if single:
        relevance = relevance[0]
    if not return_details:
        return relevance
    layers = []
    for i, layer in enumerate(model.layers):
        outs = np.stack([rep[i][0] for rep in reports], axis=1) if multi else reports[0][i][0]
        ins = np.stack([rep[i][1] for rep in reports], axis=1) if multi else reports[0][i][1]
        layers.append(LayerRelevance(i, layer.name, layer.kind, rule_names[i], outs, ins))
    out_logits = logits[0] if single else logits
    out_targets = targets[0] if (single and targets is not None) else targets
    return Explanation(relevance, out_logits, out_targets, layers)
