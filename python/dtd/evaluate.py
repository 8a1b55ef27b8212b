"""Quantitative evaluation of explanations by region perturbation ("pixel flipping").

Samek, Binder, Montavon, Lapuschkin, Müller, "Evaluating the visualization of what a deep neural network
has learned", IEEE TNNLS 28(11), 2017. The input is divided into non-overlapping regions (patches), the
regions are ranked by their summed relevance, most relevant first (MoRF), and perturbed one after another.
The faster the target score ``f_c`` drops, the better the explanation points at what the model uses; the
area over the MoRF perturbation curve (AOPC) summarises this:

    AOPC = 1 / (L + 1) * sum_{k=0..L} ( f_c(x^(0)) - f_c(x^(k)) ),   averaged over the samples,

where ``x^(k)`` is the input with the first ``k`` ranked regions perturbed. As in the paper a region is
perturbed by replacing it with uniform random values in ``[low, high]`` (seeded, so that two explanations
of the same input are compared on the same perturbations). A random ranking (:func:`random_relevance`)
gives the baseline that a useful explanation must beat.

The score is the model's output as returned by ``forward`` (for the shipped model: the logit, no softmax).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

__all__ = [
    "PixelFlippingResult",
    "aopc",
    "compare",
    "comparison_summary",
    "pixel_flipping",
    "random_relevance",
    "region_scores",
]


class _Forward(Protocol):
    def forward(self, x: np.ndarray) -> np.ndarray: ...  # pragma: no cover


ModelLike = _Forward | Callable[[np.ndarray], np.ndarray]
Target = int | Sequence[int] | npt.NDArray[np.integer] | None


@dataclass(frozen=True)
class PixelFlippingResult:
    """Outcome of :func:`pixel_flipping`.

    Attributes
    ----------
    curve : numpy.ndarray
        float64 [N, steps + 1]: the target score after ``k`` perturbation steps (column 0: the clean input).
    aopc : float
        Area over the perturbation curve, averaged over the samples (Samek et al. 2017, eq. 12).
    aopc_per_sample : numpy.ndarray
        float64 [N]: the AOPC of each sample.
    order : numpy.ndarray
        int64 [N, n_regions]: region indices, most relevant first (regions numbered row-major over the
        patch grid).
    targets : numpy.ndarray
        int64 [N]: the output index whose score is tracked.
    patch : tuple of int
        Region size (height, width) for image inputs, (size,) for vector inputs.
    regions_per_step : int
        Regions perturbed per step.
    perturbation : str
        How regions were perturbed.
    """

    curve: npt.NDArray[np.float64]
    aopc: float
    aopc_per_sample: npt.NDArray[np.float64]
    order: npt.NDArray[np.int64]
    targets: npt.NDArray[np.int64]
    patch: tuple[int, ...]
    regions_per_step: int
    perturbation: str

    @property
    def steps(self) -> int:
        """Number of perturbation steps ``L``."""
        return int(self.curve.shape[1] - 1)

    @property
    def mean_curve(self) -> npt.NDArray[np.float64]:
        """The perturbation curve averaged over the samples, [steps + 1]."""
        return np.asarray(self.curve.mean(axis=0), dtype=np.float64)

    @property
    def score_drop(self) -> npt.NDArray[np.float64]:
        """``f_c(x^(0)) - f_c(x^(k))`` per sample and step, [N, steps + 1]; the AOPC is its mean."""
        return np.asarray(self.curve[:, :1] - self.curve, dtype=np.float64)


def aopc(curve: npt.ArrayLike) -> float:
    """AOPC of perturbation curves [N, L + 1] (or one curve [L + 1]), averaged over the samples.

    Parameters
    ----------
    curve : array_like
        Target scores with column 0 the unperturbed input.

    Returns
    -------
    float
        ``mean_n 1/(L+1) sum_k (curve[n, 0] - curve[n, k])``.
    """
    c = np.atleast_2d(np.asarray(curve, dtype=np.float64))
    return float((c[:, :1] - c).mean())


def random_relevance(shape: Sequence[int] | int, seed: int = 0) -> npt.NDArray[np.float64]:
    """Random relevance of a given shape: ranking its regions gives a uniformly random order.

    Parameters
    ----------
    shape : int or sequence of int
        Shape of the relevance (usually ``x.shape``).
    seed : int, optional
        Seed of the NumPy generator.

    Returns
    -------
    numpy.ndarray
        float64 array of i.i.d. standard normal values.
    """
    return np.random.default_rng(seed).standard_normal(shape)


def _patch_tuple(patch: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    p = (int(patch),) * min(ndim, 2) if isinstance(patch, (int, np.integer)) else tuple(int(v) for v in patch)
    want = 2 if ndim >= 2 else 1
    if len(p) != want or any(v < 1 for v in p):
        raise ValueError(f"patch must be {want} positive integer(s) for inputs with {ndim} axes, got {patch}")
    return p


def _region_map(sample_shape: tuple[int, ...], patch: tuple[int, ...]) -> tuple[npt.NDArray[np.int64], int]:
    """Region index of every input element, and the number of regions.

    Image-like samples ([..., H, W]) are tiled over the last two axes into ``patch`` blocks that span all
    leading (channel) axes; edge blocks are smaller when the size does not divide. Vector samples ([D]) are
    cut into runs of ``patch[0]`` elements.
    """
    if len(sample_shape) == 1:
        (d,) = sample_shape
        idx = np.arange(d) // patch[0]
        return idx.astype(np.int64), int(idx.max()) + 1
    h, w = sample_shape[-2:]
    ph, pw = patch
    nh, nw = -(-h // ph), -(-w // pw)
    ry = np.arange(h) // ph
    rx = np.arange(w) // pw
    plane = ry[:, None] * nw + rx[None, :]
    return np.broadcast_to(plane, sample_shape).astype(np.int64), nh * nw


def region_scores(relevance: npt.ArrayLike, patch: int | Sequence[int] = (2, 2)) -> npt.NDArray[np.float64]:
    """Summed relevance of every region, [N, n_regions] (regions numbered row-major over the patch grid).

    Parameters
    ----------
    relevance : array_like
        Relevance [N, *sample_shape].
    patch : int or sequence of int, optional
        Region size, as in :func:`pixel_flipping`.

    Returns
    -------
    numpy.ndarray
        float64 [N, n_regions].
    """
    r = np.asarray(relevance, dtype=np.float64)
    if r.ndim < 2:
        raise ValueError(f"relevance must have a batch axis, got shape {r.shape}")
    p = _patch_tuple(patch, r.ndim - 1)
    regions, n_regions = _region_map(r.shape[1:], p)
    flat = regions.reshape(-1)
    out = np.zeros((r.shape[0], n_regions))
    for n in range(r.shape[0]):
        out[n] = np.bincount(flat, weights=r[n].reshape(-1), minlength=n_regions)
    return out


def _forward(model: ModelLike, x: np.ndarray) -> np.ndarray:
    fwd = getattr(model, "forward", None)
    out = fwd(x) if callable(fwd) else model(x)  # type: ignore[operator]
    out = np.asarray(out)
    return out.reshape(out.shape[0], -1)


def pixel_flipping(
    model: ModelLike,
    x: npt.ArrayLike,
    relevance: npt.ArrayLike,
    target: Target = None,
    *,
    patch: int | Sequence[int] = (2, 2),
    steps: int | None = None,
    regions_per_step: int = 1,
    perturbation: str | float = "uniform",
    low: float | npt.ArrayLike = 0.0,
    high: float | npt.ArrayLike = 1.0,
    seed: int = 0,
    batch_size: int = 512,
) -> PixelFlippingResult:
    """Region perturbation in MoRF order and its AOPC (Samek et al., IEEE TNNLS 2017).

    Parameters
    ----------
    model : dtd.Model or callable
        Anything with ``forward(x) -> [N, n_out]`` (a :class:`dtd.Model`), or a callable doing the same.
        Its output is used as the score (logits for the shipped model; no softmax is applied).
    x : array_like
        Inputs [N, *sample_shape] (float32 or float64; the perturbed inputs keep this dtype), or one sample
        without the batch axis.
    relevance : array_like
        Relevance of the same shape as ``x``. Regions are ranked by their summed relevance, largest first;
        ties keep the row-major region order.
    target : None, int, sequence of int, optional
        The output whose score is tracked: ``None`` for the argmax of the clean input, one index for all
        samples, or one per sample.
    patch : int or sequence of int, optional
        Region size (height, width) over the last two axes of image inputs (all channels together), or the
        run length for vector inputs. Default 2x2.
    steps : int, optional
        Number of perturbation steps ``L`` (default: until every region is perturbed).
    regions_per_step : int, optional
        Regions perturbed per step (default 1).
    perturbation : {"uniform", "zero", "mean"} or float, optional
        Replacement values: i.i.d. uniform in ``[low, high]`` drawn once per sample from ``seed`` (the
        paper's choice), 0, the per-sample per-channel mean of ``x``, or a constant.
    low, high : float or array_like, optional
        Range of the uniform perturbation: scalars, or arrays that broadcast against one sample (per channel:
        ``[C, 1, 1]``).
    seed : int, optional
        Seed of the uniform perturbation.
    batch_size : int, optional
        Number of perturbed inputs per call to ``forward``.

    Returns
    -------
    PixelFlippingResult
        Curves [N, L + 1], AOPC and the region order.
    """
    xa = np.asarray(x)
    if not np.issubdtype(xa.dtype, np.floating):
        xa = xa.astype(np.float32)
    ra = np.asarray(relevance, dtype=np.float64)
    if ra.shape != xa.shape:
        raise ValueError(f"relevance has shape {ra.shape} but x has shape {xa.shape}")
    # One sample without the batch axis: known from the model's per-sample input shape when it has one.
    in_shape = getattr(model, "input_shape", None)
    if xa.ndim == 1 or (in_shape is not None and xa.ndim == len(tuple(in_shape))):
        xa, ra = xa[None], ra[None]
    n = xa.shape[0]
    sample_shape = xa.shape[1:]
    p = _patch_tuple(patch, len(sample_shape))
    regions, n_regions = _region_map(sample_shape, p)
    if regions_per_step < 1:
        raise ValueError(f"regions_per_step must be >= 1, got {regions_per_step}")
    max_steps = -(-n_regions // regions_per_step)
    n_steps = max_steps if steps is None else int(steps)
    if not 0 <= n_steps <= max_steps:
        raise ValueError(f"steps must be in [0, {max_steps}] for {n_regions} regions, got {steps}")

    clean = _forward(model, xa)
    if target is None:
        targets = clean.argmax(axis=1).astype(np.int64)
    else:
        t = np.asarray(target, dtype=np.int64)
        targets = np.broadcast_to(t, (n,)).copy() if t.ndim == 0 else t.reshape(-1)
        if targets.shape != (n,):
            raise ValueError(f"target must be an int or {n} ints, got shape {t.shape}")
    if targets.min() < 0 or targets.max() >= clean.shape[1]:
        raise ValueError(f"target out of range for {clean.shape[1]} outputs: {targets.tolist()}")

    # Replacement values.
    if isinstance(perturbation, str):
        if perturbation == "uniform":
            rng = np.random.default_rng(seed)
            lo_b = np.asarray(low, dtype=np.float64)
            hi_b = np.asarray(high, dtype=np.float64)
            repl = rng.uniform(lo_b, hi_b, size=xa.shape).astype(xa.dtype)
        elif perturbation == "zero":
            repl = np.zeros_like(xa)
        elif perturbation == "mean":
            spatial = tuple(range(xa.ndim - 2, xa.ndim)) if len(sample_shape) >= 2 else (1,)
            repl = np.broadcast_to(xa.mean(axis=spatial, keepdims=True), xa.shape).astype(xa.dtype)
        else:
            raise ValueError(
                f"perturbation must be 'uniform', 'zero', 'mean' or a number, got {perturbation!r}"
            )
        pert_name = perturbation
    else:
        repl = np.full_like(xa, float(perturbation))
        pert_name = f"constant {float(perturbation):g}"

    # MoRF order and, per element, the step at which it is perturbed (1-based).
    scores = region_scores(ra, p)
    order = np.argsort(-scores, axis=1, kind="stable").astype(np.int64)
    rank = np.empty_like(order)
    rank[np.arange(n)[:, None], order] = np.arange(n_regions)[None, :]
    flip_step = rank[:, regions.reshape(-1)] // regions_per_step + 1  # [N, n_elements]

    x_flat = xa.reshape(n, -1)
    r_flat = repl.reshape(n, -1)
    ks = np.arange(n_steps + 1)
    rows = [(i, k) for i in range(n) for k in ks]
    curve = np.empty((n, n_steps + 1), dtype=np.float64)
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        ii = np.array([r[0] for r in chunk])
        kk = np.array([r[1] for r in chunk])
        mask = flip_step[ii] <= kk[:, None]
        batch = np.where(mask, r_flat[ii], x_flat[ii]).reshape((len(chunk), *sample_shape))
        out = _forward(model, batch)
        curve[ii, kk] = out[np.arange(len(chunk)), targets[ii]]

    per_sample = (curve[:, :1] - curve).mean(axis=1)
    return PixelFlippingResult(
        curve=curve,
        aopc=float(per_sample.mean()),
        aopc_per_sample=per_sample,
        order=order,
        targets=targets,
        patch=p,
        regions_per_step=regions_per_step,
        perturbation=pert_name,
    )


def compare(
    model: ModelLike,
    x: npt.ArrayLike,
    relevances: Mapping[str, npt.ArrayLike],
    target: Target = None,
    **kwargs: Any,
) -> dict[str, PixelFlippingResult]:
    """:func:`pixel_flipping` of several explanations of the same inputs, on the same perturbations.

    Parameters
    ----------
    model, x, target :
        As for :func:`pixel_flipping` (``target=None``: the argmax class of the clean input, the same for all
        methods).
    relevances : mapping of str to array_like
        Method name -> relevance shaped like ``x`` (e.g. ``{"DTD": R, "random": random_relevance(x.shape)}``).
    **kwargs :
        ``patch``, ``steps``, ``low``, ``high``, ``seed``, ... of :func:`pixel_flipping`; one ``seed`` for all
        methods, so that they are compared on the same noise.

    Returns
    -------
    dict of str to PixelFlippingResult
        In the order of ``relevances``.
    """
    if not relevances:
        raise ValueError("compare needs at least one relevance")
    if target is None:
        target = _forward(model, np.asarray(x)).argmax(axis=1)
    return {name: pixel_flipping(model, x, r, target=target, **kwargs) for name, r in relevances.items()}


def comparison_summary(
    results: Mapping[str, PixelFlippingResult], baseline: str | None = "random"
) -> dict[str, Any]:
    """The figures of :func:`compare` as plain data (JSON-ready).

    Per method: ``aopc`` (the mean over the samples), ``aopc_std`` (over the samples), ``aopc_sem`` (standard
    error of the mean), ``mean_curve`` and ``std_curve`` (per step, over the samples). Against ``baseline``
    (when present), per other method the paired per-sample AOPC difference: ``mean``, ``sem``, a 95 % interval
    ``mean ± 1.96 sem`` (normal approximation) and ``wins`` (the fraction of samples where the method's AOPC is
    higher).

    Parameters
    ----------
    results : mapping of str to PixelFlippingResult
        From :func:`compare` (same samples, same targets).
    baseline : str or None
        The method the others are compared with.

    Returns
    -------
    dict
        ``{"samples", "steps", "patch", "perturbation", "methods": {name: {...}}, "versus_baseline": {...}}``.
    """
    if not results:
        raise ValueError("comparison_summary needs at least one result")
    first = next(iter(results.values()))
    n = int(first.curve.shape[0])

    def sem(v: np.ndarray) -> float:
        return float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")

    methods = {}
    for name, r in results.items():
        if r.curve.shape != first.curve.shape:
            raise ValueError(f"{name}: curves of shape {r.curve.shape}, others {first.curve.shape}")
        methods[name] = {
            "aopc": r.aopc,
            "aopc_std": float(r.aopc_per_sample.std(ddof=1)) if n > 1 else float("nan"),
            "aopc_sem": sem(r.aopc_per_sample),
            "mean_curve": r.mean_curve.tolist(),
            "std_curve": (r.curve.std(axis=0, ddof=1) if n > 1 else np.zeros(r.curve.shape[1])).tolist(),
        }
    out: dict[str, Any] = {
        "samples": n,
        "steps": first.steps,
        "patch": list(first.patch),
        "regions_per_step": first.regions_per_step,
        "perturbation": first.perturbation,
        "methods": methods,
    }
    if baseline is not None and baseline in results:
        base = results[baseline].aopc_per_sample
        versus = {}
        for name, r in results.items():
            if name == baseline:
                continue
            d = r.aopc_per_sample - base
            m, e = float(d.mean()), sem(d)
            versus[name] = {
                "mean": m,
                "sem": e,
                "ci95": [m - 1.96 * e, m + 1.96 * e],
                "wins": float((d > 0).mean()),
            }
        out["baseline"] = baseline
        out["versus_baseline"] = versus
    return out
