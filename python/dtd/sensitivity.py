"""Sensitivity analysis: the baseline DTD is compared against (Montavon et al. 2017, section 5), computed by the
same C++ engine as the relevance pass, with every layer passing the gradient back."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core
from .api import _batch, _target
from .model import Model

__all__ = ["sensitivity"]

_KINDS = ("squared", "gradient", "gradient_x_input")


def sensitivity(model: Model, x: np.ndarray, target: Any = None, kind: str = "squared") -> np.ndarray:
    """Gradient-based explanation of ``f_c`` at ``x``.

    Parameters
    ----------
    model : dtd.Model
    x : ndarray
        A batch ``[N, *input_shape]`` or one sample.
    target : None, int, sequence of int, or int array [N, K]
        As in :func:`dtd.explain` (None: the argmax class).
    kind : {"squared", "gradient", "gradient_x_input"}
        ``"squared"``: sensitivity analysis ``(d f_c / d x_i)^2`` (the paper's baseline); ``"gradient"``: the
        gradient itself; ``"gradient_x_input"``: ``x_i d f_c / d x_i``.

    Returns
    -------
    ndarray
        Shaped like ``x`` (``[N, K, ...]`` with K targets per sample), in x's dtype.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    batch, single, net = _batch(model, x)
    if target is not None and np.asarray(target).dtype.kind == "f":
        raise ValueError("sensitivity takes class indices as target, not an output-relevance array")
    key = ("sensitivity", batch.dtype.str)
    explainer = model._plans.get(key)
    if explainer is None:
        core = _core.Explainer64 if batch.dtype == np.float64 else _core.Explainer32
        explainer = model._plans[key] = core.sensitivity(net)
    grad, _, _, _ = explainer.explain(batch, _target(target, single))
    multi = grad.ndim == batch.ndim + 1
    if kind == "squared":
        grad = grad * grad
    elif kind == "gradient_x_input":
        grad = grad * (batch[:, None] if multi else batch)
    return grad[0] if single else grad
