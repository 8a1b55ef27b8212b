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

    def _to_core(self) -> _core.Rule:
        """This rule as the core's dtd::Rule (checked where it is applied to a layer: dtd::Rule::spec)."""
        bounds = [getattr(self, side, None) for side in ("low", "high")]
        return _core.Rule(
            kind=getattr(_core.RuleKind, self.kind),
            eps=None if self.eps is None else float(self.eps),
            bias=bool(getattr(self, "bias", False)),
            gamma=float(getattr(self, "gamma", 0.25)),
            alpha=float(getattr(self, "alpha", 2.0)),
            beta=float(getattr(self, "beta", 1.0)),
            low=None if bounds[0] is None else np.asarray(bounds[0], dtype=np.float64),
            high=None if bounds[1] is None else np.asarray(bounds[1], dtype=np.float64),
            name=type(self).__name__,
            # the messages show the values as given (an int eps as an int), as an f-string does
            shown={
                f: f"{getattr(self, f)}"
                for f in ("eps", "gamma", "alpha", "beta")
                if getattr(self, f, None) is not None
            },
        )


@dataclass(frozen=True)
class ZPlus(Rule):
    """z+ rule (Montavon et al. 2017), for layers whose input is a ReLU output:
    ``R_i = sum_j a_i w+_ij / sum_i' a_i' w+_i'j R_j`` (with an ``a- w-`` term for negative inputs).
    ``bias=True`` adds ``b+`` to the denominator (zennit's ZPlus default)."""

    eps: float | None = None
    bias: bool = False
    kind: ClassVar[str] = "zplus"


@dataclass(frozen=True)
class WSquare(Rule):
    """w² rule, for a first layer with unbounded real input: ``R_i = sum_j w_ij² / sum_i' w_i'j² R_j``
    (the sum runs over in-bounds taps only). ``bias=True`` adds ``b²`` (zennit's WSquare default)."""

    eps: float | None = None
    bias: bool = False
    kind: ClassVar[str] = "wsquare"


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


@dataclass(frozen=True)
class Flat(Rule):
    """Flat rule: relevance spread uniformly over each output's in-bounds taps."""

    eps: float | None = None
    kind: ClassVar[str] = "flat"


_MAXPOOL_MODES = ("winner_take_all", "proportional")
_ADD_MODES = ("zplus", "proportional")
_AVGPOOL_MODES = ("proportional", "flat")


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
        table = [self.default, self.first, *(self.overrides or {}).values()]
        ids = _core.resolve_rules(model.network(np.float32), self._to_core())
        return [None if i < 0 else table[i] for i in ids]

    def _to_core(self) -> _core.Composite:
        """This composite as the core's dtd::Composite (resolved onto a network by dtd::resolve_rules)."""
        for what, mode, modes in (
            ("maxpool", self.maxpool, _MAXPOOL_MODES),
            ("add", self.add, _ADD_MODES),
            ("avgpool", self.avgpool, _AVGPOOL_MODES),
        ):
            if not isinstance(mode, str):
                raise ValueError(f"{what} must be one of {modes}, got {mode!r}")
        overrides: list[tuple[int | None, str | None, str, Any]] = []
        for key, rule in (self.overrides or {}).items():
            if not isinstance(rule, Rule):
                raise ValueError(f"override for {key!r} is {rule!r}, not a dtd.rules.Rule")
            if isinstance(key, str):
                overrides.append((None, key, "", rule._to_core()))
            elif isinstance(key, (int, np.integer)) and not isinstance(key, bool):
                overrides.append((int(key), None, "", rule._to_core()))
            else:
                overrides.append((None, None, repr(key), rule._to_core()))
        return _core.Composite(
            default=self.default._to_core(),
            first=None if self.first is None else self.first._to_core(),
            overrides=overrides,
            maxpool=self.maxpool,
            add=self.add,
            avgpool=self.avgpool,
            eps=None if self.eps is None else float(self.eps),
        )


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
