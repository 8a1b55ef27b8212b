"""The dataset-level view of a run: per class, a contact sheet of the most and least relevant examples and the
mean relevance map (``dtd report RUN_DIR``, ``dtd explain-dataset ... --report``).

It reads what :func:`dtd.batch.explain_dataset` (or :func:`~dtd.batch.explain_dask`) wrote: the Parquet index
(one row per sample) and the map store (.npy shards or one Zarr array). The index is read whole (its scalars
are of the order of 100 bytes per sample); the maps are streamed, at most ``read_rows`` maps in memory at a
time, and only the selected examples' maps are kept.

Choices, stated once:

- **Class**: the explained class by default (the index's ``target`` column: the predicted class unless the run
  explained labels or a fixed class); ``group="label"`` or ``"predicted"`` groups by those columns instead.
- **Relevance of an example**: its score ``f_c(x)`` (the ``logit`` column), which the map decomposes
  (``sum R = f_c(x)`` up to the absorbed relevance); ``by="relevance_sum"`` ranks by the map's total instead.
- **Most / least relevant**: per class, the ``k`` examples with the largest score, then the ``k`` with the
  smallest among the rest (a class with fewer than ``2k`` examples shows each once). Ties are broken by the
  smaller sample id, so the selection is deterministic. Failed samples (non-empty ``error``) and NaN scores are
  left out of the selection and of the mean maps, and counted.
- **Mean map**: the float64 mean of the stored maps of the class's explained samples, in the stored shape (full
  or summed over channels), accumulated shard by shard in sample order (deterministic). Each heatmap is
  normalised by its own ``max |R|``: the pictures compare shapes; the ``.npz`` holds the values.

Outputs in ``out``: ``class-<c>.png`` (contact sheet: input | heatmap pairs, the most relevant on top),
``mean_maps.png``, ``mean_maps.npz`` (``classes``, ``counts``, ``mean``), ``summary.json`` and ``summary.md``.
Drawn with Pillow only (no matplotlib needed).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .store import INDEX_FILE, read_index

__all__ = ["BY", "GROUPS", "ClassView", "DatasetReport", "dataset_report", "select_extremes"]

#: Scores an example can be ranked by (index columns).
BY = ("logit", "relevance_sum")
#: Index columns an example can be grouped by.
GROUPS = ("target", "label", "predicted")

RUN_FILE = "run.json"


@dataclass
class ClassView:
    """One class of a :class:`DatasetReport`.

    Attributes
    ----------
    cls : int
        The class.
    count : int
        Explained samples of the class (those in the selection and the mean map).
    most, least : numpy.ndarray
        int64 sample ids: the ``k`` largest scores (largest first), then the ``k`` smallest of the rest
        (smallest first).
    most_scores, least_scores : numpy.ndarray
        float64: their scores.
    mean_map : numpy.ndarray
        float64 mean of the class's stored maps (the stored map shape).
    sheet : Path or None
        The contact sheet written (None when the maps cannot be drawn).
    """

    cls: int
    count: int
    most: npt.NDArray[np.int64]
    least: npt.NDArray[np.int64]
    most_scores: npt.NDArray[np.float64]
    least_scores: npt.NDArray[np.float64]
    mean_map: npt.NDArray[np.float64]
    sheet: Path | None = None


@dataclass
class DatasetReport:
    """What :func:`dataset_report` wrote.

    Attributes
    ----------
    out : Path
        The report folder.
    classes : dict of int to ClassView
        Per class, in increasing class order.
    count, explained : int
        Rows of the index, and those explained (the others failed or have no score).
    by, group : str
        The ranking score and the grouping column.
    k : int
        Examples per side of each contact sheet.
    inputs : str or None
        Where the inputs shown beside the heatmaps came from (None: heatmaps only).
    files : list of Path
        Every file written.
    """

    out: Path
    classes: dict[int, ClassView]
    count: int
    explained: int
    by: str
    group: str
    k: int
    inputs: str | None
    files: list[Path] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The content of ``summary.json``."""
        return json.loads((self.out / "summary.json").read_text())


def select_extremes(
    ids: npt.ArrayLike, scores: npt.ArrayLike, k: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Positions of the ``k`` largest scores (largest first) and of the ``k`` smallest among the others
    (smallest first); ties are broken by the smaller id.

    Parameters
    ----------
    ids : array_like
        [n] integer sample ids (the tie-break).
    scores : array_like
        [n] finite scores.
    k : int
        Examples per side.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Positions into ``ids`` / ``scores``: the most and the least relevant.
    """
    i = np.asarray(ids, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    most = np.lexsort((i, -s))[:k]
    rest = np.setdiff1d(np.arange(len(s)), most)
    least = rest[np.lexsort((i[rest], s[rest]))][:k]
    return most, least


def _fail(cond: bool, message: str) -> None:
    if cond:
        raise ValueError(message)


def _load_index(root: Path) -> dict[str, np.ndarray]:
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such run folder (the --out folder of dtd explain-dataset)")
    path = root / INDEX_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{root}: no {INDEX_FILE}: not the output of a finished dtd explain-dataset run "
            "(an interrupted run: finish it with --resume)"
        )
    try:
        idx = read_index(root)
    except ImportError:
        raise
    except Exception as err:  # pyarrow raises its own types (ArrowInvalid, OSError) for a damaged file
        raise ValueError(f"{path}: cannot read the Parquet index ({type(err).__name__}: {err})") from None
    need = ["id", "target", "predicted", "logit", "relevance_sum", "error"]
    missing = [c for c in need if c not in idx]
    _fail(bool(missing), f"{path}: the index lacks the columns {missing} (columns: {sorted(idx)})")
    _fail(
        "shard" not in idx or "row" not in idx,
        f"{path}: the index has no 'shard'/'row' columns: the run stored no maps (--format none); rerun it "
        "with --format npy or zarr",
    )
    n = len(idx["id"])
    bad = [c for c, v in idx.items() if len(v) != n]
    _fail(bool(bad), f"{path}: columns of different lengths: {bad}")
    return idx


class _MapReader:
    """Opens the map files of a run once each (.npy memory-mapped, Zarr arrays) and reads row ranges."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._open: dict[str, Any] = {}

    def rows(self, shard: str, lo: int, hi: int) -> np.ndarray:
        src = self._open.get(shard)
        if src is None:
            path = self.root / shard
            if not path.exists():
                raise FileNotFoundError(f"{path}: map file named by the index is missing")
            if shard.endswith(".npy"):
                try:
                    src = np.load(path, mmap_mode="r", allow_pickle=False)
                except ValueError as err:
                    raise ValueError(f"{path}: cannot read the maps ({err})") from None
            else:
                from ._extras import require

                zarr = require("zarr", "reading a Zarr map store")
                src = zarr.open_array(store=str(path), mode="r")
            self._open[shard] = src
        if hi > src.shape[0]:
            raise ValueError(
                f"{self.root / shard}: the index asks for row {hi - 1} but the file holds {src.shape[0]} maps"
            )
        return np.asarray(src[lo:hi])


def _input_reader(
    root: Path, idx: Mapping[str, np.ndarray], inputs: Any
) -> tuple[Callable[[int], np.ndarray] | None, str | None]:
    """A function id -> input sample (as stored: uint8 pixels or floats; image files as uint8 RGB/grey), and a
    description of where it reads from. ``inputs``: an array-like indexed by id, a source with ``read``, or
    None: the run's recorded array (run.json) or the index's ``path`` column."""
    if inputs is not None:
        if hasattr(inputs, "read") and hasattr(inputs, "__len__"):
            source = inputs

            def from_source(i: int) -> np.ndarray:
                batch, failures = source.read(i, i + 1)
                if failures or not len(batch["id"]):
                    raise ValueError(failures[0][1] if failures else f"sample {i} could not be read")
                return np.asarray(batch["image"][0])

            return from_source, f"given source ({type(inputs).__name__})"
        arr = inputs

        def from_array(i: int) -> np.ndarray:
            return np.asarray(arr[i])

        return from_array, f"given array {list(getattr(inputs, 'shape', []))}"
    run = root / RUN_FILE
    if run.is_file():
        try:
            desc = json.loads(run.read_text()).get("source") or {}
        except ValueError:
            desc = {}
        if desc.get("kind") == "array" and Path(str(desc.get("path", ""))).is_file():
            from .sources import ArraySource

            src = ArraySource(desc["path"], key=desc.get("key"), cache_dir=root / ".cache")
            return _input_reader(root, idx, src)[0], f"{desc['path']}" + (
                f" ({desc['key']})" if desc.get("key") else ""
            )
    if "path" in idx:
        paths = dict(zip(idx["id"].tolist(), idx["path"].astype(str).tolist(), strict=True))
        if any(paths.values()):

            def from_path(i: int) -> np.ndarray:
                from PIL import Image

                with Image.open(paths[i]) as img:
                    mode = "L" if img.mode in ("L", "1", "I", "I;16", "F") else "RGB"
                    return np.asarray(img.convert(mode), dtype=np.uint8)

            return from_path, "the index's path column"
    return None, None


def _input_tile(sample: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """An input sample as uint8 RGB at the map's size: uint8 as pixels, floats scaled by their own min/max; a
    channel count other than 1 or 3 is averaged; resized (nearest) when the sizes differ."""
    from PIL import Image

    from .. import viz

    x = np.asarray(sample)
    if x.ndim == 3 and x.shape[0] not in (1, 3) and x.shape[-1] not in (1, 3):
        x = x.mean(axis=0)
    if x.dtype != np.uint8:
        x = x.astype(np.float64)
        lo, hi = float(np.min(x)), float(np.max(x))
        rgb = viz.to_rgb(x, low=lo, high=hi if hi > lo else lo + 1.0)
    else:
        rgb = viz.to_rgb(x)
    if rgb.shape[:2] != hw:
        rgb = np.asarray(Image.fromarray(rgb).resize((hw[1], hw[0]), Image.Resampling.NEAREST))
    return rgb


def _titled(rgb: np.ndarray, title: str) -> np.ndarray:
    """``rgb`` with a line of text above it."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    h = 16
    w = max(rgb.shape[1], int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(title, font=font)) + 8)
    out = np.full((h + rgb.shape[0], w, 3), 255, dtype=np.uint8)
    out[h:, : rgb.shape[1]] = rgb
    img = Image.fromarray(out)
    ImageDraw.Draw(img).text((4, 2), title, fill=(0, 0, 0), font=font)
    return np.asarray(img, dtype=np.uint8).copy()


def _stack_v(parts: Sequence[np.ndarray]) -> np.ndarray:
    w = max(p.shape[1] for p in parts)
    padded = [np.pad(p, ((0, 0), (0, w - p.shape[1]), (0, 0)), constant_values=255) for p in parts]
    return np.concatenate(padded, axis=0)


def dataset_report(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    k: int = 8,
    by: str = "logit",
    group: str = "target",
    inputs: Any = None,
    scale: int | None = None,
    read_rows: int = 1024,
) -> DatasetReport:
    """Writes the dataset-level view of a run: per class a contact sheet of the ``k`` most and ``k`` least
    relevant examples (input beside heatmap) and the mean relevance map, with a JSON and Markdown summary.

    See the module docstring for the choices (class, score, tie-break, normalisation).

    Parameters
    ----------
    run_dir : path
        The output folder of :func:`dtd.batch.explain_dataset` / ``dtd explain-dataset`` (or
        :func:`~dtd.batch.explain_dask`): ``index.parquet`` and the maps.
    out : path, optional
        The report folder (default ``run_dir/report``).
    k : int
        Examples per side of each contact sheet.
    by : {"logit", "relevance_sum"}
        The score an example is ranked by: ``f_c(x)`` or the map's total.
    group : {"target", "label", "predicted"}
        The index column that defines the classes.
    inputs : array-like, source or None
        The inputs to show beside the heatmaps, indexed by sample id: an array ``[N, ...]`` (NumPy, memory-map,
        Zarr, Dask), or a :mod:`dtd.batch.sources` source. Default: the .npy/.npz array the run recorded in its
        ``run.json``, else the image files of the index's ``path`` column, else none (heatmaps only).
    scale : int, optional
        Integer upscaling of the tiles (default: to about 84 pixels, at least 1).
    read_rows : int
        Maps read at a time while streaming (bounds the memory).

    Returns
    -------
    DatasetReport

    Raises
    ------
    FileNotFoundError
        No such folder, no index, or a map file the index names is missing.
    ValueError
        A damaged index or map file, an index without maps, a bad option.
    """
    from .. import viz

    if k < 1 or read_rows < 1:
        raise ValueError(f"k and read_rows must be >= 1, got k={k}, read_rows={read_rows}")
    if by not in BY:
        raise ValueError(f"by must be one of {', '.join(BY)}, got {by!r}")
    if group not in GROUPS:
        raise ValueError(f"group must be one of {', '.join(GROUPS)}, got {group!r}")
    root = Path(run_dir).resolve()
    idx = _load_index(root)
    if group not in idx:
        raise ValueError(f"{root / INDEX_FILE}: no '{group}' column to group by (the run had no labels)")
    ids = idx["id"]
    _fail(ids.dtype.kind not in "iu", f"{root / INDEX_FILE}: the report needs integer sample ids")
    ids = ids.astype(np.int64)
    score = idx[by].astype(np.float64)
    classes_col = idx[group].astype(np.int64)
    ok = (idx["error"].astype(str) == "") & np.isfinite(score) & (classes_col >= 0)
    n = len(ids)
    classes = np.unique(classes_col[ok])

    # Selection from the index alone.
    selected: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for c in classes.tolist():
        where = np.flatnonzero(ok & (classes_col == c))
        m, le = select_extremes(ids[where], score[where], k)
        selected[c] = (where[m], where[le])
    wanted = {int(r) for pair in selected.values() for part in pair for r in part.tolist()}

    # One streaming pass over the maps: per-class float64 sums, and the selected rows' maps.
    shards = idx["shard"].astype(str)
    rows = idx["row"].astype(np.int64)
    reader = _MapReader(root)
    class_pos = {c: i for i, c in enumerate(classes.tolist())}
    sums: np.ndarray | None = None
    counts = np.zeros(len(classes), dtype=np.int64)
    kept: dict[int, np.ndarray] = {}
    map_shape: tuple[int, ...] | None = None
    for shard in sorted(set(shards[ok].tolist())):
        in_shard = np.flatnonzero(ok & (shards == shard))
        in_shard = in_shard[np.argsort(rows[in_shard], kind="stable")]
        r = rows[in_shard]
        for lo in range(int(r[0]), int(r[-1]) + 1, read_rows):
            part = in_shard[(r >= lo) & (r < lo + read_rows)]
            if not len(part):
                continue
            a, b = int(rows[part[0]]), int(rows[part[-1]]) + 1
            block = reader.rows(shard, a, b)[rows[part] - a].astype(np.float64)
            if sums is None:
                map_shape = tuple(block.shape[1:])
                sums = np.zeros((len(classes), *map_shape))
            elif tuple(block.shape[1:]) != map_shape:
                raise ValueError(
                    f"{root / shard}: maps of shape {list(block.shape[1:])}, other shards {list(map_shape or ())}"
                )
            cl = classes_col[part]
            for c in np.unique(cl).tolist():
                sel = cl == c
                sums[class_pos[c]] += block[sel].sum(axis=0)
                counts[class_pos[c]] += int(sel.sum())
            for j, rix in enumerate(part.tolist()):
                if rix in wanted:
                    kept[rix] = block[j]
    means = sums / np.maximum(counts, 1).reshape((-1,) + (1,) * (sums.ndim - 1)) if sums is not None else None

    out_dir = Path(out) if out is not None else root / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    read_input, inputs_desc = _input_reader(root, idx, inputs)
    spatial = None if map_shape is None else (len(map_shape) if len(map_shape) <= 2 else None)
    # A full map [C, H, W] is drawn summed over channels, like a stored channel sum [H, W].
    if map_shape is not None and len(map_shape) == 3:
        spatial = 2
    if map_shape is not None and len(map_shape) == 2 and map_shape[0] <= 4 and map_shape[1] > 32:
        spatial = 1  # [C, L]: a multichannel 1-D signal
    hw = None
    if spatial == 2 and map_shape is not None:
        hw = (int(map_shape[-2]), int(map_shape[-1]))
    tile_scale = scale if scale is not None else (max(1, 84 // max(hw)) if hw else 1)
    labels = idx.get("label")
    input_errors: list[str] = []

    def pair_tiles(rix: int) -> tuple[list[np.ndarray], list[str]]:
        sid = int(ids[rix])
        m = kept[rix]
        heat = viz.heatmap(m) if spatial == 2 else viz.signal(None, m, size=(240, 60))
        cap = f"#{sid}"
        if labels is not None and int(labels[rix]) >= 0 and group != "label":
            cap += f" y={int(labels[rix])}"
        tiles, caps = [heat], [f"{by[:5]}={score[rix]:.3g}"]
        if read_input is not None and spatial == 2 and hw is not None:
            try:
                tiles.insert(0, _input_tile(read_input(sid), hw))
                caps.insert(0, cap)
            except Exception as err:  # an unreadable input still leaves its heatmap on the sheet
                input_errors.append(f"sample {sid}: {type(err).__name__}: {err}")
                caps[0] = f"{cap} {caps[0]}"
        else:
            caps[0] = f"{cap} {caps[0]}"
        return tiles, caps

    views: dict[int, ClassView] = {}
    for c in classes.tolist():
        most_r, least_r = selected[c]
        pos = class_pos[c]
        sheet_path = None
        if spatial is not None and means is not None:
            parts = []
            for label_text, rs in (
                (f"class {c}: {len(most_r)} most relevant (largest {by}) of {counts[pos]}", most_r),
                (f"{len(least_r)} least relevant (smallest {by})", least_r),
            ):
                if not len(rs):
                    continue
                tiles: list[np.ndarray] = []
                caps: list[str] = []
                for rix in rs.tolist():
                    t, cp = pair_tiles(rix)
                    tiles += t
                    caps += cp
                per = len(tiles) // len(rs)
                parts.append(
                    _titled(
                        viz.grid(tiles, caps, ncols=per * min(len(rs), 8), scale=tile_scale if hw else 1),
                        label_text,
                    )
                )
            sheet_path = out_dir / f"class-{c}.png"
            viz.save(sheet_path, _stack_v(parts))
            files.append(sheet_path)
        views[c] = ClassView(
            cls=int(c),
            count=int(counts[pos]),
            most=ids[most_r],
            least=ids[least_r],
            most_scores=score[most_r],
            least_scores=score[least_r],
            mean_map=means[pos] if means is not None else np.zeros(0),
            sheet=sheet_path,
        )

    if means is not None:
        npz = out_dir / "mean_maps.npz"
        np.savez(npz, classes=classes, counts=counts, mean=means)
        files.append(npz)
        if spatial is not None:
            tiles = [viz.heatmap(m) if spatial == 2 else viz.signal(None, m, size=(240, 60)) for m in means]
            caps = [f"{c} (n={counts[i]})" for i, c in enumerate(classes.tolist())]
            grid = viz.grid(tiles, caps, ncols=min(len(tiles), 10), scale=tile_scale if hw else 1)
            mean_png = out_dir / "mean_maps.png"
            viz.save(mean_png, _titled(grid, f"mean relevance map per {group} class (each on its own scale)"))
            files.append(mean_png)

    summary = _summary(
        root, idx, ok, views, by, group, k, inputs_desc, input_errors, map_shape, out_dir, files
    )
    js = out_dir / "summary.json"
    js.write_text(json.dumps(summary, indent=1) + "\n")
    md = out_dir / "summary.md"
    md.write_text(_markdown(summary))
    files += [js, md]
    return DatasetReport(
        out=out_dir,
        classes=views,
        count=n,
        explained=int(ok.sum()),
        by=by,
        group=group,
        k=k,
        inputs=inputs_desc,
        files=files,
    )


def _summary(
    root: Path,
    idx: Mapping[str, np.ndarray],
    ok: np.ndarray,
    views: Mapping[int, ClassView],
    by: str,
    group: str,
    k: int,
    inputs_desc: str | None,
    input_errors: list[str],
    map_shape: tuple[int, ...] | None,
    out_dir: Path,
    files: Sequence[Path],
) -> dict[str, Any]:
    classes_col = idx[group].astype(np.int64)
    per_class = []
    for c, v in views.items():
        sel = ok & (classes_col == c)
        entry: dict[str, Any] = {
            "class": c,
            "count": v.count,
            "mean_logit": float(np.mean(idx["logit"][sel])),
            "mean_relevance_sum": float(np.mean(idx["relevance_sum"][sel])),
            "mean_absorbed": float(np.mean(idx["logit"][sel] - idx["relevance_sum"][sel])),
            "most": [{"id": int(i), by: float(s)} for i, s in zip(v.most, v.most_scores, strict=True)],
            "least": [{"id": int(i), by: float(s)} for i, s in zip(v.least, v.least_scores, strict=True)],
            "sheet": v.sheet.name if v.sheet is not None else None,
        }
        if "label" in idx and group != "label":
            lab = idx["label"].astype(np.int64)[sel]
            if np.all(lab >= 0):
                entry["label_agreement"] = float(np.mean(lab == c))
        per_class.append(entry)
    return {
        "run": str(root),
        "report": str(out_dir),
        "samples": len(ok),
        "explained": int(ok.sum()),
        "left_out": int((~ok).sum()),
        "group": group,
        "by": by,
        "k": k,
        "map_shape": list(map_shape) if map_shape is not None else None,
        "inputs": inputs_desc,
        "input_errors": input_errors[:20],
        "tie_break": "smaller sample id first",
        "classes": per_class,
        "mean_maps": "mean_maps.npz" if map_shape is not None else None,
        "mean_maps_png": "mean_maps.png" if out_dir / "mean_maps.png" in files else None,
        "drawn": any(v.sheet is not None for v in views.values()),
    }


def _markdown(s: Mapping[str, Any]) -> str:
    lines = [
        f"# Dataset report: {s['run']}",
        "",
        f"{s['samples']} samples, {s['explained']} explained ({s['left_out']} failed or without a score, left out); "
        f"classes by `{s['group']}`, examples ranked by `{s['by']}` (ties: smaller id first), "
        f"{s['k']} per side; inputs: {s['inputs'] or 'not available (heatmaps only)'}.",
        "",
        "| class | count | mean f_c(x) | mean sum R | mean absorbed | most relevant ids | least relevant ids | sheet |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in s["classes"]:
        most = ", ".join(str(e["id"]) for e in c["most"])
        least = ", ".join(str(e["id"]) for e in c["least"])
        sheet = f"[{c['sheet']}]({c['sheet']})" if c["sheet"] else ""
        lines.append(
            f"| {c['class']} | {c['count']} | {c['mean_logit']:.4g} | {c['mean_relevance_sum']:.4g} | "
            f"{c['mean_absorbed']:.3g} | {most} | {least} | {sheet} |"
        )
    if not s["drawn"]:
        lines += [
            "",
            f"Maps of shape {s['map_shape']} are not drawn (1-D and 2-D inputs only): see {s['mean_maps']}.",
        ]
    if s["mean_maps_png"]:
        lines += [
            "",
            "Mean relevance map per class (each on its own colour scale): ![mean maps](mean_maps.png)",
        ]
    return "\n".join(lines) + "\n"
