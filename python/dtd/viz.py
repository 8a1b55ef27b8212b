"""Heatmaps of relevance maps, overlays on the input image, image grids and PNG output.

Everything here returns plain ``uint8`` RGB arrays of shape ``[H, W, 3]`` built with NumPy; Pillow is used
only to draw captions and write PNG files. Matplotlib is needed only for charts (:func:`line_plot`,
``pip install 'dtd[plot]'``); heatmaps, overlays and grids work without it (its colormaps can be used by name
if it happens to be installed).

1-D inputs (signals ``[C, L]``) are drawn by :func:`signal` as the trace with its relevance as a coloured band
and tint; 3-D inputs (volumes ``[C, D, H, W]``) by :func:`slices` as a grid of depth slices on one colour scale.

Relevance is shown with a diverging colormap centred at zero: blue for negative, white for zero, red for
positive relevance, normalised symmetrically by ``max |R|`` (or a percentile of ``|R|``), as in the
heatmaps of Montavon et al., "Explaining nonlinear classification decisions with deep Taylor
decomposition", Pattern Recognition 65 (2017).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "COLORMAPS",
    "SPREADS",
    "grid",
    "heatmap",
    "line_plot",
    "normalize",
    "overlay",
    "save",
    "signal",
    "slices",
    "to_rgb",
]

# Piecewise-linear diverging colormaps: anchors at t in [-1, 1] -> RGB in [0, 1]; t = 0 is always white.
COLORMAPS: dict[str, tuple[tuple[float, tuple[float, float, float]], ...]] = {
    # matplotlib's "bwr": blue, white, red.
    "bwr": ((-1.0, (0.0, 0.0, 1.0)), (0.0, (1.0, 1.0, 1.0)), (1.0, (1.0, 0.0, 0.0))),
    # matplotlib's "seismic": dark blue, blue, white, red, dark red (more contrast at the ends).
    "seismic": (
        (-1.0, (0.0, 0.0, 0.3)),
        (-0.5, (0.0, 0.0, 1.0)),
        (0.0, (1.0, 1.0, 1.0)),
        (0.5, (1.0, 0.0, 0.0)),
        (1.0, (0.5, 0.0, 0.0)),
    ),
    # white to red for positive, white to blue for negative, with a softer blue (the LRP toolbox's look).
    "coldnhot": (
        (-1.0, (0.0, 1.0, 1.0)),
        (-0.5, (0.0, 0.0, 1.0)),
        (0.0, (1.0, 1.0, 1.0)),
        (0.5, (1.0, 0.0, 0.0)),
        (1.0, (1.0, 1.0, 0.0)),
    ),
}


def _relevance_2d(R: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Reduce a relevance map to [H, W]: sum over the channel axis, drop a leading batch axis of 1."""
    r = np.asarray(R, dtype=np.float64)
    if r.ndim == 4 and r.shape[0] == 1:
        r = r[0]
    if r.ndim == 3:
        r = r.sum(axis=0)
    if r.ndim != 2:
        raise ValueError(
            f"expected a relevance map of shape [H, W], [C, H, W] or [1, C, H, W], got shape {r.shape}"
        )
    return r


def normalize(
    R: npt.ArrayLike, *, percentile: float | None = None, gamma: float = 1.0
) -> npt.NDArray[np.float64]:
    """Scale a relevance map to [-1, 1] symmetrically around zero.

    Parameters
    ----------
    R : array_like
        Relevance, any shape.
    percentile : float or None, optional
        Divide by this percentile of ``|R|`` instead of its maximum (values beyond are clipped). ``None``
        or 100 uses the maximum.
    gamma : float, optional
        Contrast exponent applied to the magnitude after scaling: ``sign(v) * |v| ** gamma``. Values below
        1 make small relevance more visible.

    Returns
    -------
    numpy.ndarray
        float64 array of the same shape with values in [-1, 1]; all zeros if ``R`` is all zero.
    """
    r = np.asarray(R, dtype=np.float64)
    if gamma <= 0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    if not np.all(np.isfinite(r)):
        raise ValueError("relevance contains NaN or infinite values")
    mag = np.abs(r)
    if percentile is None or percentile >= 100:
        scale = float(mag.max()) if mag.size else 0.0
    else:
        if not 0 < percentile <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {percentile}")
        scale = float(np.percentile(mag, percentile))
        if scale == 0.0:  # a sparse map: fall back to the maximum
            scale = float(mag.max()) if mag.size else 0.0
    if scale == 0.0:
        return np.zeros_like(r)
    v = np.clip(r / scale, -1.0, 1.0)
    if gamma != 1.0:
        v = np.sign(v) * np.abs(v) ** gamma
    return v


def _apply_cmap(v: npt.NDArray[np.float64], cmap: str) -> npt.NDArray[np.uint8]:
    """Map values in [-1, 1] to uint8 RGB with a named colormap."""
    if cmap in COLORMAPS:
        anchors = COLORMAPS[cmap]
        ts = np.array([a[0] for a in anchors])
        cols = np.array([a[1] for a in anchors])
        rgb = np.stack([np.interp(v, ts, cols[:, c]) for c in range(3)], axis=-1)
    else:
        try:
            from matplotlib import colormaps  # optional
        except ImportError:
            raise ValueError(
                f"unknown colormap {cmap!r}: choose one of {sorted(COLORMAPS)} (or install matplotlib)"
            ) from None
        if cmap not in colormaps:
            raise ValueError(f"unknown colormap {cmap!r}")
        rgb = colormaps[cmap]((v + 1.0) / 2.0)[..., :3]
    return np.asarray(np.round(rgb * 255.0), dtype=np.uint8)


def heatmap(
    R: npt.ArrayLike, *, gamma: float = 1.0, percentile: float | None = None, cmap: str = "bwr"
) -> npt.NDArray[np.uint8]:
    """Render a relevance map as an RGB heatmap: red positive, white zero, blue negative.

    Parameters
    ----------
    R : array_like
        Relevance of one sample, shape [H, W], [C, H, W] (summed over channels) or [1, C, H, W].
    gamma : float, optional
        Contrast exponent on the normalised magnitude (see :func:`normalize`).
    percentile : float or None, optional
        Normalise by this percentile of ``|R|`` instead of the maximum (``None`` or 100: the maximum).
    cmap : str, optional
        ``"bwr"`` (default), ``"seismic"``, ``"coldnhot"``, or a matplotlib colormap name if matplotlib is
        installed. The built-in maps are white at zero.

    Returns
    -------
    numpy.ndarray
        uint8 array [H, W, 3]. An all-zero ``R`` gives a white image.

    Examples
    --------
    >>> import numpy as np
    >>> heatmap(np.array([[1.0, 0.0, -1.0]]))[0].tolist()
    [[255, 0, 0], [255, 255, 255], [0, 0, 255]]
    """
    return _apply_cmap(normalize(_relevance_2d(R), percentile=percentile, gamma=gamma), cmap)


def to_rgb(image: npt.ArrayLike, *, low: float = 0.0, high: float = 1.0) -> npt.NDArray[np.uint8]:
    """Convert an input image to uint8 RGB [H, W, 3].

    Parameters
    ----------
    image : array_like
        [H, W] or [1, H, W] (grey), [3, H, W] or [H, W, 3] (colour), optionally with a leading batch axis
        of 1. ``uint8`` values are taken as 0..255; floating-point values are mapped from ``[low, high]``
        to 0..255 and clipped.
    low, high : float, optional
        The range of floating-point pixel values (default [0, 1]).

    Returns
    -------
    numpy.ndarray
        uint8 array [H, W, 3].
    """
    img = np.asarray(image)
    if img.ndim == 4 and img.shape[0] == 1:
        img = img[0]
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = np.moveaxis(img, 0, -1)  # CHW -> HWC
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(
            f"expected an image of shape [H, W], [1|3, H, W] or [H, W, 1|3], got shape {np.shape(image)}"
        )
    if img.dtype == np.uint8:
        return np.ascontiguousarray(img)
    if high <= low:
        raise ValueError(f"need low < high, got low={low}, high={high}")
    f = (img.astype(np.float64) - low) / (high - low)
    return np.asarray(np.round(np.clip(f, 0.0, 1.0) * 255.0), dtype=np.uint8)


def overlay(
    image: npt.ArrayLike,
    R: npt.ArrayLike,
    alpha: float = 0.5,
    *,
    low: float = 0.0,
    high: float = 1.0,
    gamma: float = 1.0,
    percentile: float | None = None,
    cmap: str = "bwr",
) -> npt.NDArray[np.uint8]:
    """Blend a relevance heatmap over the input image.

    The opacity of the heatmap at a pixel is ``alpha * |v|``, where ``v`` is the normalised relevance in
    [-1, 1]: pixels without relevance show the image unchanged, the most relevant ones are a mix of
    ``(1 - alpha)`` image and ``alpha`` heatmap colour.

    Parameters
    ----------
    image : array_like
        The input image (see :func:`to_rgb` for the accepted shapes and ranges).
    R : array_like
        Its relevance map (see :func:`heatmap`), with the same height and width.
    alpha : float, optional
        Maximum opacity of the heatmap, in [0, 1].
    low, high : float, optional
        Range of floating-point pixel values of ``image``.
    gamma, percentile, cmap : optional
        As in :func:`heatmap`.

    Returns
    -------
    numpy.ndarray
        uint8 array [H, W, 3].
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    base = to_rgb(image, low=low, high=high).astype(np.float64)
    v = normalize(_relevance_2d(R), percentile=percentile, gamma=gamma)
    if v.shape != base.shape[:2]:
        raise ValueError(f"image is {base.shape[:2]} but the relevance map is {v.shape}")
    heat = _apply_cmap(v, cmap).astype(np.float64)
    a = alpha * np.abs(v)[..., None]
    return np.asarray(np.round((1.0 - a) * base + a * heat), dtype=np.uint8)


def _as_tile(tile: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """A grid tile: uint8 RGB as is, anything else through :func:`to_rgb` (grey or colour in [0, 1])."""
    arr = np.asarray(tile)
    if arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[-1] == 3:
        return arr
    return to_rgb(arr)


def grid(
    tiles: Sequence[npt.ArrayLike],
    captions: Sequence[str] | None = None,
    *,
    ncols: int | None = None,
    scale: int = 1,
    pad: int = 2,
    background: int = 255,
    text_color: tuple[int, int, int] = (0, 0, 0),
) -> npt.NDArray[np.uint8]:
    """Tile images (heatmaps, overlays, inputs) into one RGB image, with an optional caption under each.

    Parameters
    ----------
    tiles : sequence of array_like
        uint8 RGB arrays [H, W, 3] (as returned by :func:`heatmap` and :func:`overlay`) or input images
        accepted by :func:`to_rgb`. Tiles may differ in size; each cell is as large as the largest tile.
    captions : sequence of str, optional
        One caption per tile, drawn below it with Pillow's default font.
    ncols : int, optional
        Number of columns (default: ``ceil(sqrt(len(tiles)))``).
    scale : int, optional
        Integer nearest-neighbour upscaling of every tile (e.g. 4 for 28x28 digits).
    pad : int, optional
        Pixels between cells and around the border.
    background : int, optional
        Grey level of the background, 0..255.
    text_color : tuple of int, optional
        RGB colour of the captions.

    Returns
    -------
    numpy.ndarray
        uint8 array [H, W, 3].
    """
    rgb = [_as_tile(t) for t in tiles]
    if not rgb:
        raise ValueError("grid needs at least one tile")
    if captions is not None and len(captions) != len(rgb):
        raise ValueError(f"got {len(rgb)} tiles but {len(captions)} captions")
    if scale < 1 or pad < 0:
        raise ValueError(f"need scale >= 1 and pad >= 0, got scale={scale}, pad={pad}")
    if scale > 1:
        rgb = [np.repeat(np.repeat(t, scale, axis=0), scale, axis=1) for t in rgb]
    n = len(rgb)
    cols = ncols if ncols is not None else int(np.ceil(np.sqrt(n)))
    cols = max(1, min(cols, n))
    rows = (n + cols - 1) // cols
    th = max(t.shape[0] for t in rgb)
    tw = max(t.shape[1] for t in rgb)

    font = None
    text_h = 0
    if captions is not None:
        from PIL import ImageFont

        font = ImageFont.load_default()
        boxes = [font.getbbox(c) for c in captions if c]
        text_h = int(np.ceil(max((b[3] for b in boxes), default=0))) + 2

    ch, cw = th + text_h, tw
    out = np.full((pad + rows * (ch + pad), pad + cols * (cw + pad), 3), background, dtype=np.uint8)
    for k, t in enumerate(rgb):
        r, c = divmod(k, cols)
        y, x = pad + r * (ch + pad), pad + c * (cw + pad)
        out[y : y + t.shape[0], x : x + t.shape[1]] = t

    if captions is not None and font is not None:
        from PIL import Image, ImageDraw

        img = Image.fromarray(out)
        draw = ImageDraw.Draw(img)
        for k, cap in enumerate(captions):
            if not cap:
                continue
            r, c = divmod(k, cols)
            y, x = pad + r * (ch + pad) + th + 1, pad + c * (cw + pad)
            width = draw.textlength(cap, font=font)
            draw.text((x + max(0.0, (cw - width) / 2), y), cap, fill=text_color, font=font)
        out = np.asarray(img, dtype=np.uint8).copy()
    return out


def _channels_summed(R: npt.ArrayLike, spatial: int, what: str, shapes: str) -> npt.NDArray[np.float64]:
    """Drop a leading batch axis of 1 and sum a channel axis: an array with ``spatial`` axes."""
    r = np.asarray(R, dtype=np.float64)
    if r.ndim == spatial + 2 and r.shape[0] == 1:
        r = r[0]
    if r.ndim == spatial + 1:
        r = r.sum(axis=0)
    if r.ndim != spatial:
        raise ValueError(f"expected {what} of shape {shapes}, got shape {np.shape(R)}")
    return r


def signal(
    x: npt.ArrayLike | None,
    R: npt.ArrayLike,
    *,
    size: tuple[int, int] = (800, 240),
    gamma: float = 1.0,
    percentile: float | None = None,
    cmap: str = "bwr",
) -> npt.NDArray[np.uint8]:
    """Draw a 1-D signal with its relevance: the trace over a background tinted by the relevance, and a colour
    band of the relevance below it (red positive, white zero, blue negative).

    Parameters
    ----------
    x : array_like or None
        The signal, [L], [C, L] (one trace per channel) or [1, C, L]; None draws the relevance only.
    R : array_like
        Its relevance, [L], [C, L] (summed over channels) or [1, C, L].
    size : tuple of int, optional
        Image (width, height) in pixels.
    gamma, percentile, cmap : optional
        As in :func:`heatmap`.

    Returns
    -------
    numpy.ndarray
        uint8 array [height, width, 3]. When the signal is longer than the plot is wide, each pixel column shows
        the sample of largest ``|R|`` among those it covers, so that narrow peaks stay visible.
    """
    from PIL import Image, ImageDraw

    r = _channels_summed(R, 1, "a relevance signal", "[L], [C, L] or [1, C, L]")
    traces = None
    if x is not None:
        xa = np.asarray(x, dtype=np.float64)
        if xa.ndim == 3 and xa.shape[0] == 1:
            xa = xa[0]
        traces = xa.reshape(1, -1) if xa.ndim == 1 else xa
        if traces.ndim != 2 or traces.shape[1] != r.size:
            raise ValueError(
                f"the signal has shape {np.shape(x)} but the relevance has {r.size} samples; expected [L], [C, L] "
                "or [1, C, L] with the same L"
            )
    width, height = size
    pad = 4
    band = max(8, height // 6)
    pw, ph = width - 2 * pad, height - 3 * pad - band
    if pw < 2 or ph < 2 or r.size == 0:
        raise ValueError(f"size {size} is too small for a signal plot (or the signal is empty)")
    v = normalize(r, percentile=percentile, gamma=gamma)
    # per pixel column: the covered sample with the largest |v|
    cols = np.empty(pw)
    edges = np.linspace(0, r.size, pw + 1)
    for c in range(pw):
        lo = int(np.floor(edges[c]))
        hi = max(lo + 1, int(np.ceil(edges[c + 1])))
        seg = v[lo : min(hi, r.size)]
        cols[c] = seg[np.argmax(np.abs(seg))]
    colours = _apply_cmap(cols, cmap).astype(np.float64)
    out = np.full((height, width, 3), 255.0)
    # tint behind the trace: the relevance colour at opacity 0.35 |v|
    a = 0.35 * np.abs(cols)[None, :, None]
    out[pad : pad + ph, pad : pad + pw] = (1.0 - a) * 255.0 + a * colours[None]
    out[2 * pad + ph : 2 * pad + ph + band, pad : pad + pw] = colours[None]
    img = Image.fromarray(np.asarray(np.round(out), dtype=np.uint8))
    draw = ImageDraw.Draw(img)
    draw.rectangle([pad - 1, pad - 1, pad + pw, pad + ph], outline=(120, 120, 120))
    if traces is not None:
        lo_v, hi_v = float(traces.min()), float(traces.max())
        if hi_v == lo_v:
            lo_v, hi_v = lo_v - 0.5, hi_v + 0.5
        xs = pad + (np.arange(r.size) + 0.5) * pw / r.size
        for k, tr in enumerate(traces):
            ys = pad + (hi_v - tr) / (hi_v - lo_v) * (ph - 1)
            colour = (0, 0, 0) if k == 0 else _LINE_COLORS[k % len(_LINE_COLORS)]
            draw.line(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=colour, width=1)
    return np.asarray(img, dtype=np.uint8).copy()


def slices(
    R: npt.ArrayLike,
    *,
    ncols: int | None = None,
    scale: int = 1,
    gamma: float = 1.0,
    percentile: float | None = None,
    cmap: str = "bwr",
    captions: bool = True,
) -> npt.NDArray[np.uint8]:
    """Draw a 3-D relevance volume as a grid of its depth slices, all on one colour scale.

    Parameters
    ----------
    R : array_like
        Relevance [D, H, W], [C, D, H, W] (summed over channels) or [1, C, D, H, W].
    ncols : int, optional
        Columns of the grid (default: about the square root of D).
    scale : int, optional
        Integer upscaling of every slice.
    gamma, percentile, cmap : optional
        As in :func:`heatmap`; the normalisation is over the whole volume, so slices compare.
    captions : bool, optional
        Caption each slice with its depth index ``z=k``.

    Returns
    -------
    numpy.ndarray
        uint8 array [height, width, 3].
    """
    r = _channels_summed(R, 3, "a relevance volume", "[D, H, W], [C, D, H, W] or [1, C, D, H, W]")
    v = normalize(r, percentile=percentile, gamma=gamma)
    tiles = [_apply_cmap(v[z], cmap) for z in range(v.shape[0])]
    labels = [f"z={z}" for z in range(v.shape[0])] if captions else None
    return grid(tiles, labels, ncols=ncols, scale=scale)


# Line colours for line_plot and signal (colour-blind friendly: Okabe & Ito).
_LINE_COLORS = (
    (0, 114, 178),
    (213, 94, 0),
    (0, 158, 115),
    (204, 121, 167),
    (230, 159, 0),
    (86, 180, 233),
    (0, 0, 0),
)


def _matplotlib(what: str) -> tuple[Any, Any]:
    """matplotlib's ``Figure`` and Agg canvas classes, or an ImportError naming the ``dtd[plot]`` extra.

    Only the object-oriented API is used (no ``pyplot``): drawing a chart never changes the caller's backend or
    opens a window."""
    from .batch._extras import require

    require("matplotlib", what)
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(
            f"{what} needs the optional package 'matplotlib': pip install 'dtd[plot]' ({type(err).__name__}: {err})"
        ) from err
    return Figure, FigureCanvasAgg


#: What the band around a mean curve shows (:func:`line_plot` with per-sample curves).
SPREADS = ("std", "sem", "none")


def line_plot(
    curves: Mapping[str, npt.ArrayLike],
    *,
    x: npt.ArrayLike | None = None,
    xlabel: str = "",
    ylabel: str = "",
    title: str = "",
    size: tuple[int, int] = (640, 400),
    colors: Sequence[tuple[int, int, int]] | None = None,
    spread: str = "std",
) -> npt.NDArray[np.uint8]:
    """Draw labelled curves (e.g. pixel-flipping curves) with matplotlib, as an RGB image.

    Needs matplotlib (``pip install 'dtd[plot]'``); without it an ImportError names that extra. The rest of
    :mod:`dtd.viz` (heatmaps, overlays, grids, PNG files) works without it.

    Parameters
    ----------
    curves : mapping of str to array_like
        Legend label -> values: one curve ``[L]``, or per-sample curves ``[N, L]``, drawn as their mean with a
        shaded band of ``spread`` around it (the legend says which). Curves may differ in length.
    x : array_like, optional
        Common x values (default: 0, 1, 2, ... per curve).
    xlabel, ylabel, title : str, optional
        Axis labels and a title.
    size : tuple of int, optional
        Image (width, height) in pixels.
    colors : sequence of RGB tuples, optional
        Line colours (0..255), cycled (default: the Okabe-Ito palette).
    spread : {"std", "sem", "none"}, optional
        The band around a mean curve: one standard deviation over the samples, one standard error of the mean,
        or none.

    Returns
    -------
    numpy.ndarray
        uint8 array [height, width, 3].
    """
    if not curves:
        raise ValueError("line_plot needs at least one curve")
    if spread not in SPREADS:
        raise ValueError(f"spread must be one of {', '.join(SPREADS)}, got {spread!r}")
    ys = {k: np.asarray(v, dtype=np.float64) for k, v in curves.items()}
    for name, v in ys.items():
        if v.ndim not in (1, 2) or v.size == 0:
            raise ValueError(
                f"curve {name!r}: expected values [L] or per-sample curves [N, L], got shape {v.shape}"
            )
    width, height = size
    if width < 50 or height < 50:
        raise ValueError(f"size {size} is too small for a plot")
    figure_cls, canvas_cls = _matplotlib("dtd.viz.line_plot (charts)")
    palette = list(colors) if colors else list(_LINE_COLORS)
    fig = figure_cls(figsize=(width / 100.0, height / 100.0), dpi=100)
    canvas = canvas_cls(fig)
    ax = fig.add_subplot(1, 1, 1)
    band_name = {"std": "± 1 std", "sem": "± 1 s.e.m.", "none": ""}[spread]
    for k, (name, v) in enumerate(ys.items()):
        length = v.shape[-1]
        xs = np.arange(length, dtype=np.float64) if x is None else np.asarray(x, dtype=np.float64)[:length]
        if xs.size != length:
            raise ValueError("x is shorter than a curve")
        color = tuple(c / 255.0 for c in palette[k % len(palette)])
        mean = v if v.ndim == 1 else v.mean(axis=0)
        label = name
        if v.ndim == 2 and v.shape[0] > 1 and spread != "none":
            sd = v.std(axis=0, ddof=1)
            half = sd if spread == "std" else sd / np.sqrt(v.shape[0])
            ax.fill_between(xs, mean - half, mean + half, color=color, alpha=0.2, linewidth=0)
            label = f"{name} (mean {band_name}, n={v.shape[0]})"
        if length == 1:
            ax.plot(xs, mean, "o", color=color, label=label)
        else:
            ax.plot(xs, mean, color=color, linewidth=1.8, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, color="0.85", linewidth=0.6)
    ax.legend(loc="best", fontsize="small", frameon=False)
    fig.tight_layout()
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    return np.ascontiguousarray(rgba[..., :3], dtype=np.uint8)


def save(
    path: str | os.PathLike[str],
    rgb_or_R: npt.ArrayLike,
    *,
    scale: int = 1,
    gamma: float = 1.0,
    percentile: float | None = None,
    cmap: str = "bwr",
) -> Path:
    """Write an RGB image or a relevance map (rendered with :func:`heatmap`) to a PNG file.

    Parameters
    ----------
    path : str or os.PathLike
        Output file; the format follows the suffix (PNG recommended).
    rgb_or_R : array_like
        A uint8 RGB array [H, W, 3] is written as is; anything else is taken as a relevance map.
    scale : int, optional
        Integer nearest-neighbour upscaling.
    gamma, percentile, cmap : optional
        Passed to :func:`heatmap` when a relevance map is given.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    from PIL import Image

    arr = np.asarray(rgb_or_R)
    if not (arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[-1] == 3):
        arr = heatmap(arr, gamma=gamma, percentile=percentile, cmap=cmap)
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    if scale > 1:
        arr = np.repeat(np.repeat(arr, scale, axis=0), scale, axis=1)
    out = Path(path)
    Image.fromarray(np.ascontiguousarray(arr), mode="RGB").save(out)
    return out
