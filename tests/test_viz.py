"""Tests for dtd.viz: heatmap colours, overlays, grids and PNG output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dtd import viz

WHITE = [255, 255, 255]
RED = [255, 0, 0]
BLUE = [0, 0, 255]


@pytest.mark.parametrize("shape", [(28, 28), (1, 28, 28), (3, 28, 28), (1, 3, 28, 28)])
@pytest.mark.parametrize("seed", [0, 1])
def test_heatmap_shape_and_dtype(shape: tuple[int, ...], seed: int) -> None:
    R = np.random.default_rng(seed).standard_normal(shape)
    h = viz.heatmap(R)
    assert h.shape == (28, 28, 3)
    assert h.dtype == np.uint8


def test_heatmap_zero_is_white() -> None:
    h = viz.heatmap(np.zeros((5, 7)))
    assert (h == 255).all()


def test_heatmap_signs_and_extremes() -> None:
    R = np.array([[2.0, 0.0, -2.0, 1.0, -1.0]])
    h = viz.heatmap(R)[0]
    assert h[0].tolist() == RED  # largest positive: pure red
    assert h[1].tolist() == WHITE  # zero: white
    assert h[2].tolist() == BLUE  # largest negative: pure blue
    # half-way values are lighter shades of the same hue
    r, g, b = (int(v) for v in h[3])
    assert r == 255 and g == b and 0 < g < 255
    r, g, b = (int(v) for v in h[4])
    assert b == 255 and r == g and 0 < r < 255


def test_heatmap_symmetric_normalisation() -> None:
    # +1 and -1 get mirror-image colours even if the other sign is missing elsewhere.
    h = viz.heatmap(np.array([[1.0, -1.0, 0.5, -0.5]]))[0].astype(int)
    assert h[0].tolist() == RED and h[1].tolist() == BLUE
    assert h[2].tolist() == h[3][::-1].tolist()


def test_heatmap_channels_are_summed() -> None:
    R = np.zeros((3, 4, 4))
    R[0, 0, 0], R[1, 0, 0] = 1.0, 1.0  # sum +2
    R[2, 1, 1] = -2.0
    np.testing.assert_array_equal(viz.heatmap(R), viz.heatmap(R.sum(axis=0)))
    assert viz.heatmap(R)[0, 0].tolist() == RED


@pytest.mark.parametrize("seed", [3])
def test_percentile_and_gamma(seed: int) -> None:
    R = np.abs(np.random.default_rng(seed).standard_normal((16, 16)))
    R[0, 0] = 100.0  # an outlier
    plain = viz.heatmap(R)
    clipped = viz.heatmap(R, percentile=90)
    # with the outlier dominating, most pixels are near white; the percentile brings them out
    assert clipped[..., 1].astype(int).mean() < plain[..., 1].astype(int).mean()
    assert clipped[0, 0].tolist() == RED
    # gamma < 1 boosts small magnitudes (less green/blue means redder)
    boosted = viz.heatmap(R, gamma=0.5)
    assert boosted[..., 1].astype(int).mean() < plain[..., 1].astype(int).mean()


def test_other_colormaps_white_at_zero() -> None:
    for cmap in viz.COLORMAPS:
        h = viz.heatmap(np.array([[1.0, 0.0, -1.0]]), cmap=cmap)[0]
        assert h[1].tolist() == WHITE
        assert h[0, 0] > h[0, 2]  # positive is warm
        assert h[2, 2] > h[2, 0]  # negative is cold


def test_heatmap_errors() -> None:
    with pytest.raises(ValueError, match="shape"):
        viz.heatmap(np.zeros(5))
    with pytest.raises(ValueError, match="colormap"):
        viz.heatmap(np.zeros((2, 2)), cmap="no-such-map")
    with pytest.raises(ValueError, match="NaN"):
        viz.heatmap(np.full((2, 2), np.nan))


@pytest.mark.parametrize("seed", [4])
def test_overlay(seed: int) -> None:
    rng = np.random.default_rng(seed)
    img = rng.uniform(0, 1, (1, 8, 8)).astype(np.float32)
    base = viz.to_rgb(img)
    assert base.shape == (8, 8, 3) and base.dtype == np.uint8
    # no relevance: the image is unchanged
    np.testing.assert_array_equal(viz.overlay(img, np.zeros((8, 8))), base)
    R = np.zeros((8, 8))
    R[2, 3], R[5, 5] = 1.0, -1.0
    out = viz.overlay(img, R, alpha=1.0)
    assert out[2, 3].tolist() == RED and out[5, 5].tolist() == BLUE
    np.testing.assert_array_equal(out[0, 0], base[0, 0])
    half = viz.overlay(img, R, alpha=0.5).astype(int)
    assert half[2, 3, 0] >= base[2, 3, 0] and half[2, 3, 2] <= base[2, 3, 2]
    with pytest.raises(ValueError, match="relevance map"):
        viz.overlay(img, np.zeros((4, 4)))


def test_to_rgb_layouts() -> None:
    grey = np.linspace(0, 1, 12).reshape(3, 4)
    a = viz.to_rgb(grey)
    assert a[0, 0].tolist() == [0, 0, 0] and a[-1, -1].tolist() == WHITE
    np.testing.assert_array_equal(viz.to_rgb(grey[None]), a)
    chw = np.stack([grey, np.zeros_like(grey), np.ones_like(grey)])
    np.testing.assert_array_equal(viz.to_rgb(chw), viz.to_rgb(np.moveaxis(chw, 0, -1)))
    u8 = (grey * 255).astype(np.uint8)
    assert viz.to_rgb(u8).dtype == np.uint8
    np.testing.assert_array_equal(viz.to_rgb(np.full((2, 2), -1.0), low=-1.0, high=1.0), 0)


def test_grid_layout_and_captions() -> None:
    tiles = [viz.heatmap(np.full((4, 5), v)) for v in (1.0, -1.0, 0.0)]
    g = viz.grid(tiles, ncols=2, pad=1)
    assert g.dtype == np.uint8
    assert g.shape == (1 + 2 * (4 + 1), 1 + 2 * (5 + 1), 3)
    assert g[1, 1].tolist() == RED and g[1, 7].tolist() == BLUE
    big = viz.grid(tiles, ncols=3, scale=4, pad=0)
    assert big.shape == (16, 60, 3)
    captioned = viz.grid(tiles, ["a", "b", "c"], ncols=3, pad=0)
    assert captioned.shape[0] > 4 and captioned.shape[1] == 15
    assert (captioned[4:] < 255).any()  # some text was drawn below the tiles
    with pytest.raises(ValueError, match="captions"):
        viz.grid(tiles, ["only one"])


@pytest.mark.parametrize("seed", [5])
def test_save_png_round_trip(tmp_path: Path, seed: int) -> None:
    R = np.random.default_rng(seed).standard_normal((1, 10, 12))
    path = viz.save(tmp_path / "r.png", R)
    with Image.open(path) as im:
        assert im.mode == "RGB" and im.size == (12, 10)
        np.testing.assert_array_equal(np.asarray(im), viz.heatmap(R))
    rgb = viz.overlay(np.zeros((10, 12)), R[0])
    path2 = viz.save(tmp_path / "o.png", rgb, scale=3)
    with Image.open(path2) as im:
        back = np.asarray(im)
    assert back.shape == (30, 36, 3)
    np.testing.assert_array_equal(back[::3, ::3], rgb)


def test_line_plot() -> None:
    pytest.importorskip("matplotlib", reason="dtd[plot] (matplotlib) is not installed")
    curves = {"a": np.linspace(5.0, 1.0, 20), "b": np.linspace(5.0, 3.0, 10)}
    img = viz.line_plot(curves, xlabel="steps", ylabel="f_c(x)", title="t", size=(300, 200))
    assert img.shape == (200, 300, 3) and img.dtype == np.uint8
    colors = {tuple(c) for c in img.reshape(-1, 3).tolist()}
    assert (0, 114, 178) in colors and (213, 94, 0) in colors  # both curves drawn in their colours
    assert viz.line_plot({"flat": [1.0, 1.0]}).shape == (400, 640, 3)
    with pytest.raises(ValueError, match="curve"):
        viz.line_plot({})


def test_line_plot_per_sample_curves_draw_a_band() -> None:
    pytest.importorskip("matplotlib", reason="dtd[plot] (matplotlib) is not installed")
    rng = np.random.default_rng(0)
    curves = {"a": 5.0 - np.linspace(0, 3, 11) + rng.normal(0, 0.5, (20, 11))}
    banded = viz.line_plot(curves, size=(300, 200))
    plain = viz.line_plot(curves, size=(300, 200), spread="none")
    # the band is a light tint of the line colour: more non-white pixels with it than without
    assert (banded.min(axis=-1) < 250).sum() > (plain.min(axis=-1) < 250).sum()
    with pytest.raises(ValueError, match="spread"):
        viz.line_plot(curves, spread="iqr")
    with pytest.raises(ValueError, match="shape"):
        viz.line_plot({"a": np.zeros((2, 3, 4))})


def test_charts_without_matplotlib_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'dtd\[plot\]'"):
        viz.line_plot({"a": [1.0, 2.0]})
    # heatmaps, grids and PNG files need no plotting library
    img = viz.grid([viz.heatmap(np.eye(4)), viz.to_rgb(np.eye(4))], ["a", "b"])
    assert img.dtype == np.uint8
