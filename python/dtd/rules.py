"""Relevance rules and the Deep Taylor presets (see RULES.md in the repository and the README).

A rule object says how one parametric layer (dense or conv) redistributes relevance; a :class:`Composite`
assigns rules to all layers of a model: a rule for the first parametric layer, a default for the others,
per-layer overrides (by layer name, index or kind), and the modes of max pooling and residual Add.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from . import _core

#: The stabilizer used where ``eps`` is not given (see :class:`Rule`).
DEFAULT_EPS = 1e-6

__all__ = [
    "DEFAULT_EPS",
    "PRESETS",
    "AlphaBeta",
    "Composite",
    "Epsilon",
    "Flat",
    "Gamma",
    "Rule",
    "WSquare",
    "ZBox",
    "ZPlus",
    "preset",
]


@dataclass(frozen=True)
class Rule:
    """Base class of the rules for parametric layers. Every rule has ``eps``, the stabilizer:
    ``z + eps * sign(z)``; subclasses declare it so that their positional arguments follow their docs.

    ``eps=None`` (the default) is :data:`DEFAULT_EPS`, applied as each rule's default stabilizer: absolute for
    rules whose denominator depends on the input, relative (``z + eps |z| sign(z)``) for :class:`WSquare` and
    :class:`Flat`, whose denominators do not, so that they never absorb more than ``eps / (1 + eps)`` of the
    relevance whatever the scale of the weights. An explicit ``eps`` is always the absolute stabilizer."""

    kind: ClassVar[str] = ""
    if TYPE_CHECKING:
        eps: float | None

    def _spec(self) -> _core.RuleSpec:
        eps = DEFAULT_EPS if self.eps is None else self.eps
        if not np.isfinite(eps) or eps < 0:
            raise ValueError(f"{type(self).__name__}: eps must be finite and >= 0, got {eps}")
        spec = _core.RuleSpec()
        spec.kind = getattr(_core.RuleKind, self.kind)
        spec.eps = float(eps)
        spec.eps_absolute = self.eps is not None
        return spec


@dataclass(frozen=True)
class ZPlus(Rule):
    """z+ rule (Montavon et al. 2017), for layers whose input is a ReLU output:
    ``R_i = sum_j a_i w+_ij / sum_i' a_i' w+_i'j R_j`` (with an ``a- w-`` term for negative inputs).
    ``bias=True`` adds ``b+`` to the denominator (zennit's ZPlus default)."""

    eps: float | None = None
    bias: bool = False
    kind: ClassVar[str] = "zplus"

    def _spec(self) -> _core.RuleSpec:
        spec = super()._spec()
        spec.bias = bool(self.bias)
        return spec


@dataclass(frozen=True)
class WSquare(Rule):
    """w² rule, for a first layer with unbounded real input: ``R_i = sum_j w_ij² / sum_i' w_i'j² R_j``
    (the sum runs over in-bounds taps only). ``bias=True`` adds ``b²`` (zennit's WSquare default)."""

    eps: float | None = None
    bias: bool = False
    kind: ClassVar[str] = "wsquare"

    def _spec(self) -> _core.RuleSpec:
        spec = super()._spec()
        spec.bias = bool(self.bias)
        return spec


@dataclass(frozen=True)
class ZBox(Rule):
    """z^β rule (zennit's ZBox), for a first layer with bounded input ``low <= x <= high`` (pixels):
    ``q_ij = a_i w_ij - l_i w+_ij - h_i w-_ij``, ``R_i = sum_j q_ij / sum_i' q_i'j R_j``.
    ``low``/``high``: scalars, per-channel vectors of shape ``[C]``, or arrays broadcastable to one sample;
    left as None, they are taken from :func:`dtd.explain`'s ``low``/``high``."""

    low: Any = None
    high: Any = None
    eps: float | None = None
    kind: ClassVar[str] = "zbox"


@dataclass(frozen=True)
class Epsilon(Rule):
    """LRP-ε: ``R_i = a_i sum_j w_ij R_j / (z_j + eps sign(z_j))``, ``z_j`` including the bias.
    ``eps = 0`` is LRP-0 (gradient x input for ReLU networks)."""

    eps: float | None = None
    kind: ClassVar[str] = "epsilon"


@dataclass(frozen=True)
class Gamma(Rule):
    """LRP-γ: the epsilon-free rule with weights ``w + gamma w+`` (bias ``b + gamma b+`` when ``bias=True``)."""

    gamma: float = 0.25
    eps: float | None = None
    bias: bool = False
    kind: ClassVar[str] = "gamma"

    def _spec(self) -> _core.RuleSpec:
        spec = super()._spec()
        if not np.isfinite(self.gamma) or self.gamma < 0:
            raise ValueError(f"Gamma: gamma must be finite and >= 0, got {self.gamma}")
        spec.gamma = float(self.gamma)
        spec.bias = bool(self.bias)
        return spec


@dataclass(frozen=True)
class AlphaBeta(Rule):
    """LRP-αβ (Bach et al. 2015): ``R_i = sum_j (alpha q+_ij / z+_j - beta q-_ij / z-_j) R_j`` with the positive
    and negative contributions ``q+-_ij`` of ``a_i w_ij`` and their sums ``z+-_j``; ``alpha - beta = 1`` keeps it
    conservative. ``AlphaBeta(1, 0)`` is z+ on ReLU inputs; ``AlphaBeta(2, 1)`` is the common choice.
    ``bias=True`` adds ``b+`` to ``z+`` and ``b-`` to ``z-``."""

    alpha: float = 2.0
    beta: float = 1.0
    eps: float | None = None
    bias: bool = False
    kind: ClassVar[str] = "alphabeta"

    def _spec(self) -> _core.RuleSpec:
        spec = super()._spec()
        if not (np.isfinite(self.alpha) and np.isfinite(self.beta)) or self.beta < 0:
            raise ValueError(
                f"AlphaBeta: alpha and beta must be finite, beta >= 0; got {self.alpha}, {self.beta}"
            )
        if abs(self.alpha - self.beta - 1.0) > 1e-9:
            raise ValueError(
                f"AlphaBeta: alpha - beta must be 1 (conservation), got alpha {self.alpha}, beta {self.beta}"
            )
        spec.alpha, spec.beta = float(self.alpha), float(self.beta)
        spec.bias = bool(self.bias)
        return spec


@dataclass(frozen=True)
class Flat(Rule):
    """Flat rule: relevance spread uniformly over each output's in-bounds taps."""

    eps: float | None = None
    kind: ClassVar[str] = "flat"


_MAXPOOL_MODES = ("winner_take_all", "proportional")
_ADD_MODES = ("zplus", "proportional")
_AVGPOOL_MODES = ("proportional", "flat")
_PARAMETRIC = ("dense", "conv")
#: Kinds that take a rule although they are not parametric: an affine layer passes relevance through unless
#: given Epsilon (the shift included in the denominator).
_EPSILON_ONLY = ("affine",)


@dataclass(frozen=True)
class Composite:
    """Rules for a whole model.

    Parameters
    ----------
    default : Rule
        Rule of every parametric layer not otherwise named (default :class:`ZPlus`).
    first : Rule, optional
        Rule of the first parametric layer in topological order (z^β or w² in the DTD presets).
    overrides : mapping, optional
        ``{layer name | layer index | "dense" | "conv" | "affine": Rule}``; a name or index wins over a kind, a
        kind over ``first``, ``first`` over ``default``. Dense and conv layers take any rule; affine layers
        (constant scale and shift) pass relevance through unless given :class:`Epsilon`.
    maxpool : {"winner_take_all", "proportional"}
        How max pooling (MaxPool and GlobalMaxPool) redistributes relevance.
    add : {"zplus", "proportional"}
        How a residual Add splits relevance between its inputs.
    avgpool : {"proportional", "flat"}
        How average pooling (AveragePool, GlobalAveragePool) redistributes relevance: in proportion to the inputs,
        or flat, uniformly over each window's in-bounds taps (the LRP Toolbox's flat/ww presets).
    eps : float, optional
        Stabilizer of the proportional redistributions (pooling, Add); None: :data:`DEFAULT_EPS`.
    """

    default: Rule = field(default_factory=ZPlus)
    first: Rule | None = None
    overrides: Mapping[str | int, Rule] | None = None
    maxpool: str = "winner_take_all"
    add: str = "zplus"
    avgpool: str = "proportional"
    eps: float | None = None

    def layer_rules(self, model: Any) -> list[Rule | None]:
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
                raise ValueError(
                    f"{type(rule).__name__} cannot apply to {key} layers: they take only Epsilon"
                )
            if isinstance(key, str) and key in _PARAMETRIC + _EPSILON_ONLY:
                by_kind[key] = rule
                continue
            if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
                if not -len(layers) <= key < len(layers):
                    raise ValueError(
                        f"override index {key} is out of range: the model has {len(layers)} layers"
                    )
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


PRESETS = ("deep_taylor", "bounded", "real", "positive", "epsilon")


def preset(name: str, *, low: Any = None, high: Any = None, eps: float | None = None) -> Composite:
    """The rule presets by name (RULES.md, "The DTD presets").

    - ``"bounded"``: z^β (:class:`ZBox` with ``low``/``high``) on the first parametric layer, z+ on the others.
    - ``"real"``: w² on the first parametric layer, z+ on the others.
    - ``"positive"``: z+ everywhere.
    - ``"deep_taylor"``: ``"bounded"`` when ``low``/``high`` are given, else ``"real"``.
    - ``"epsilon"``: LRP-ε everywhere (for comparison), affine layers included (their shift in the denominator).

    ``eps`` is given to every rule of the preset; None keeps each rule's default stabilizer (see :class:`Rule`).
    """
    if name == "deep_taylor":
        name = "bounded" if (low is not None or high is not None) else "real"
    if name == "bounded":
        if low is None or high is None:
            raise ValueError("the 'bounded' preset needs both low and high (the input bounds, e.g. 0 and 1)")
        return Composite(default=ZPlus(eps=eps), first=ZBox(low=low, high=high, eps=eps), eps=eps)
    if name == "real":
        return Composite(default=ZPlus(eps=eps), first=WSquare(eps=eps), eps=eps)
    if name == "positive":
        return Composite(default=ZPlus(eps=eps), eps=eps)
    if name == "epsilon":
        return Composite(default=Epsilon(eps=eps), overrides={"affine": Epsilon(eps=eps)}, eps=eps)
    raise ValueError(f"unknown rules preset {name!r}; presets: {', '.join(PRESETS)}")
