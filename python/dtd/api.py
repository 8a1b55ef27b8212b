"""`dtd.explain`: Deep Taylor relevance maps for a batch, with target handling and the conservation report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _core
from .model import Model
from .rules import Composite, Rule

__all__ = ["Explanation", "LayerRelevance", "explain"]


@dataclass(frozen=True)
class LayerRelevance:
    """Relevance totals of one layer: ``relevance_out`` arrived at its output from above, ``relevance_in`` is
    what it passed to its input(s). Shape ``[N]`` (or ``[N, K]`` with K targets per sample). Where they differ,
    relevance was absorbed (biases, stabilizers, dead units) or created."""

    index: int
    name: str
    kind: str
    rule: str
    relevance_out: np.ndarray
    relevance_in: np.ndarray

    @property
    def absorbed(self) -> np.ndarray:
        """``relevance_out - relevance_in``."""
        return self.relevance_out - self.relevance_in


@dataclass(frozen=True)
class Explanation:
    """The result of ``explain(..., return_details=True)``.

    Attributes
    ----------
    relevance : ndarray
        The input relevance, as ``explain`` returns it.
    logits : ndarray
        ``[N, n_out]`` pre-softmax scores (``[n_out]`` for a single sample).
    targets : ndarray or None
        The class explained per sample (``[N]``, or ``[N, K]``); None when an output relevance was given.
    layers : list of LayerRelevance
        The conservation report, one entry per layer in network order.
    """

    relevance: np.ndarray
    logits: np.ndarray
    targets: np.ndarray | None
    layers: list[LayerRelevance]

    def report(self) -> str:
        """A table of the relevance totals per layer (summed over the batch)."""
        lines = [
            f"{'#':>3}  {'layer':<24} {'kind':<14} {'rule':<16} {'R out':>12} {'R in':>12} {'absorbed':>10}"
        ]
        for lr in self.layers:
            r_out, r_in = float(np.sum(lr.relevance_out)), float(np.sum(lr.relevance_in))
            lines.append(
                f"{lr.index:>3}  {lr.name[:24]:<24} {lr.kind:<14} {lr.rule:<16} {r_out:>12.6g} {r_in:>12.6g} "
                f"{r_out - r_in:>10.3g}"
            )
        return "\n".join(lines)


def _array(value: Any) -> np.ndarray | None:
    return None if value is None else np.asarray(value, dtype=np.float64)


def _core_rules(rules: str | Composite | Rule, low: Any, high: Any, eps: float | None) -> Any:
    """``rules``, ``low``, ``high`` and ``eps`` as the core's dtd::ExplainRules."""
    lo, hi, e = _array(low), _array(high), None if eps is None else float(eps)
    if isinstance(rules, str):
        return _core.ExplainRules.preset(rules, lo, hi, e, "" if eps is None else f"{eps}")
    if isinstance(rules, Rule):
        return _core.ExplainRules.from_rule(rules._to_core(), lo, hi, e)
    if isinstance(rules, Composite):
        return _core.ExplainRules(rules._to_core(), lo, hi)
    raise ValueError(f"rules must be a preset name, a dtd.rules.Rule or a dtd.rules.Composite, got {rules!r}")


def _batch(model: Model, x: Any) -> tuple[np.ndarray, bool, Any]:
    """The input as a checked batch, whether it was one sample, and the network for its dtype."""
    if not isinstance(model, Model):
        raise ValueError(f"model must be a dtd.Model (from dtd.load), got {type(model).__name__}")
    arr = np.asarray(x)
    single = arr.ndim == len(model.input_shape)
    batch = model.check_input(arr[None] if single else arr)
    _core.check_finite(batch, "input")
    return batch, single, model.network(batch.dtype)


def _key(value: Any) -> Any:
    if value is None:
        return None
    arr = np.asarray(value)
    return float(arr) if arr.ndim == 0 else (arr.shape, arr.dtype.str, arr.tobytes())


def _explainer(
    model: Model, net: Any, dtype: np.dtype[Any], rules: Any, low: Any, high: Any, eps: float | None
) -> Any:
    """The core's Explainer for ``net`` and these rules (resolved, checked and prepared once), cached on the model
    for hashable rules."""
    try:
        key: Any = (np.dtype(dtype).str, rules, _key(low), _key(high), None if eps is None else float(eps))
        hash(key)
    except (TypeError, ValueError):
        key = None
    cached = model._plans.get(key) if key is not None else None
    if cached is not None:
        return cached
    core_rules = _core_rules(rules, low, high, eps)
    if np.dtype(dtype) == np.float64:
        explainer = _core.Explainer64(net, core_rules)
    else:
        # bounds mapped through leading layers (input normalisation) are computed in float64
        net64 = model.network(np.float64) if _core.Explainer32.maps_bounds(net, core_rules) else None
        explainer = _core.Explainer32(net, core_rules, net64)
    if key is not None:
        if len(model._plans) >= 16:
            model._plans.clear()
        model._plans[key] = explainer
    return explainer


def _plan(
    model: Model, net: Any, dtype: np.dtype[Any], rules: Any, low: Any, high: Any, eps: float | None
) -> tuple[Any, list[str], None]:
    """The prepared rules of ``net`` and the rule name of each layer, for Network.trace/relevance called directly."""
    explainer = _explainer(model, net, dtype, rules, low, high, eps)
    return explainer.plan, list(explainer.rule_names), None


def _target(target: Any, single: bool) -> Any:
    """``target`` as the core's dtd::Target (the core checks counts, shapes and ranges)."""
    if target is None:  # the argmax class of each sample (the common case)
        return _core.Target.argmax()
    tgt = np.asarray(target)
    if tgt.dtype.kind == "f" and tgt.ndim >= 1:
        return _core.Target.relevance(list(tgt.shape), np.asarray(tgt, dtype=np.float64), single)
    if tgt.dtype.kind not in "iu" and tgt.dtype != np.bool_:
        return _core.Target.invalid(
            f"target must be None, an int, ints, or a float output-relevance array; got {target!r}"
        )
    if tgt.dtype == np.bool_:
        return _core.Target.invalid("target must be class indices, not booleans")
    return _core.Target.classes(list(tgt.shape), np.asarray(tgt, dtype=np.int64), single)


def _targets_dtype(target: Any, targets: np.ndarray | None) -> np.ndarray | None:
    """The targets in the dtype of the classes given (an int array keeps its own, as NumPy's % does)."""
    if targets is None or target is None:
        return targets
    tgt = np.asarray(target)
    return targets if tgt.ndim == 0 else targets.astype(tgt.dtype, copy=False)


ALGORITHMS = ("exact", "winograd")
"""The values of :func:`explain`'s ``algorithm``."""


def explain(
    model: Model,
    x: np.ndarray,
    target: Any = None,
    rules: str | Composite | Rule = "deep_taylor",
    low: Any = None,
    high: Any = None,
    eps: float | None = None,
    return_details: bool = False,
    algorithm: str = "exact",
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
    algorithm : {"exact", "winograd"}
        How the convolutions are computed, for this call. ``"exact"`` (default): the direct sums. ``"winograd"``:
        Winograd F(2x2, 3x3) for the float32 stride-1, undilated, ungrouped 2-D 3x3 convolutions (forward, z+ and
        z^β denominators, the transposed passes of z+, z^β and w²) with at least 32 2x2 output tiles over the
        batch, the exact path everywhere else. Relevance
        within about 1e-4 (relative L2) of the exact one; z+ denominators stay >= 0 and exact zeros stay exactly
        zero (README, "Algorithms"). float32 only: float64 input with ``"winograd"`` raises ValueError.

    Returns
    -------
    ndarray or Explanation
        Relevance with the shape of ``x`` (``[N, K, ...]`` with K targets per sample), in x's dtype.
    """
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    batch, single, net = _batch(model, x)
    if algorithm == "winograd" and batch.dtype != np.float32:
        raise ValueError(
            f"algorithm 'winograd' is float32 only (x is {batch.dtype}); float64 uses the exact products: "
            "pass float32 input or algorithm='exact'"
        )
    explainer = _explainer(model, net, batch.dtype, rules, low, high, eps)
    relevance, logits, targets, reports = explainer.explain(
        batch, _target(target, single), return_details, algorithm
    )
    if single:
        relevance = relevance[0]
    if not return_details:
        return relevance
    layers = [LayerRelevance(*report) for report in reports]
    targets = _targets_dtype(target, targets)
    out_logits = logits[0] if single else logits
    out_targets = targets[0] if (single and targets is not None) else targets
    return Explanation(relevance, out_logits, out_targets, layers)
