"""Inputs of ``dtd explain-dataset``: arrays on disk (read memory-mapped) and image files (folder, glob, or a
table of paths). A source is picklable (paths only) and reads any range of samples on its own, so each worker
process reads just its shards."""

from __future__ import annotations

import csv
import glob
import os
import shutil
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ._extras import require
from .store import atomic_path

__all__ = ["IMAGE_SUFFIXES", "ArraySource", "ImageSource", "Source", "open_source"]

#: File suffixes taken as images in a folder or glob.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


class Source(Protocol):
    """A dataset: ``len(source)`` samples, read by range."""

    is_image: bool

    def __len__(self) -> int: ...  # pragma: no cover

    def read(self, start: int, stop: int) -> tuple[dict[str, np.ndarray], list[tuple[int, str]]]:
        """The readable samples of [start, stop) as a batch (``image``, ``id`` = global index, and ``label`` /
        ``path`` where known), and (global index, reason) for each sample that could not be read."""
        ...  # pragma: no cover


def _npy_in_zip(path: Path, member: str, cache_dir: Path) -> tuple[Path, int | None]:
    """Where the array ``member`` of an .npz can be memory-mapped: (file, offset of the .npy data) for a stored
    member, or (an .npy extracted once into ``cache_dir``, None) for a compressed one (streamed, never whole in
    memory)."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
        if info.compress_type == zipfile.ZIP_STORED:
            with open(path, "rb") as f:
                f.seek(info.header_offset)
                local = f.read(30)
                name_len = int.from_bytes(local[26:28], "little")
                extra_len = int.from_bytes(local[28:30], "little")
                return path, info.header_offset + 30 + name_len + extra_len
        st = path.stat()
        cached = cache_dir / f"{path.stem}-{Path(member).stem}-{st.st_size}-{st.st_mtime_ns}.npy"
        if not cached.exists():
            cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = atomic_path(cached)
            try:
                with zf.open(member) as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 22)
                os.replace(tmp, cached)
            finally:
                tmp.unlink(missing_ok=True)
        return cached, None


def _memmap(path: Path, offset: int | None) -> np.ndarray:
    if offset is None:
        arr: np.ndarray = np.load(path, mmap_mode="r", allow_pickle=False)
        return arr
    with open(path, "rb") as f:
        f.seek(offset)
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        data = f.tell()
    return np.memmap(path, dtype=dtype, mode="r", offset=data, shape=shape, order="F" if fortran else "C")


class ArraySource:
    """Samples of an .npy file or an .npz member, memory-mapped (a compressed .npz member is extracted once
    into ``cache_dir``). uint8 arrays are pixels (the Explainer scales them by 1/255).

    Parameters
    ----------
    path : path
        The .npy or .npz file.
    key : str, optional
        The .npz member with the samples (default ``images``, or the only member).
    labels_key : str, optional
        The .npz member with one integer label per sample, used when present (default ``labels``).
    cache_dir : path, optional
        Where compressed .npz members are extracted (default: beside the file, in ``.dtd-cache``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        key: str | None = None,
        labels_key: str | None = "labels",
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.path = Path(path).resolve()
        self.key = key
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such file")
        cache = Path(cache_dir) if cache_dir is not None else self.path.parent / ".dtd-cache"
        self._labels: tuple[Path, int | None] | None = None
        if self.path.suffix.lower() == ".npz":
            try:
                with zipfile.ZipFile(self.path) as zf:
                    members = [n for n in zf.namelist() if n.endswith(".npy")]
            except zipfile.BadZipFile:
                raise ValueError(f"{self.path}: not a readable .npz file") from None
            names = [m[:-4] for m in members]
            if key is None:
                key = "images" if "images" in names else names[0] if len(names) == 1 else None
            if key is None or key not in names:
                raise ValueError(
                    f"{self.path}: choose the array with the samples (--array-key) among {names}"
                )
            self.key = key
            self._data = _npy_in_zip(self.path, key + ".npy", cache)
            if labels_key is not None and labels_key in names and labels_key != key:
                self._labels = _npy_in_zip(self.path, labels_key + ".npy", cache)
        elif self.path.suffix.lower() == ".npy":
            self._data = (self.path, None)
        else:
            raise ValueError(f"{self.path}: expected an .npy or .npz file")
        arr = self._open()[0]
        if arr.ndim < 2 or arr.dtype.kind not in "fiu":
            raise ValueError(
                f"{self.path}: expected a numeric array [N, ...] of samples, got dtype {arr.dtype} and shape "
                f"{list(arr.shape)}"
            )
        self.is_image = arr.dtype == np.uint8
        self._n = int(arr.shape[0])
        labels = self._open()[1]
        if labels is not None and (labels.shape != (self._n,) or labels.dtype.kind not in "iu"):
            self._labels = None
        self._arrays: tuple[np.ndarray, np.ndarray | None] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_arrays"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def _open(self) -> tuple[np.ndarray, np.ndarray | None]:
        if getattr(self, "_arrays", None) is None:
            data = _memmap(*self._data)
            labels = _memmap(*self._labels) if self._labels is not None else None
            self._arrays = (data, labels)
        assert self._arrays is not None
        return self._arrays

    def __len__(self) -> int:
        return self._n

    def describe(self) -> dict[str, Any]:
        """What ``run.json`` records of this source (so that ``dtd report`` can show the inputs)."""
        return {"kind": "array", "path": str(self.path), "key": self.key}

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self._open()[0].shape[1:])

    def read(self, start: int, stop: int) -> tuple[dict[str, np.ndarray], list[tuple[int, str]]]:
        data, labels = self._open()
        batch = {"image": np.array(data[start:stop]), "id": np.arange(start, stop, dtype=np.int64)}
        if labels is not None:
            batch["label"] = np.array(labels[start:stop], dtype=np.int64)
        return batch, []


def load_image(path: str | os.PathLike[str], shape: Sequence[int]) -> np.ndarray:
    """An image file as uint8 ``[C, H, W]``: converted to the model's channels (1: grey, 3: RGB) and resized to
    its ``H, W`` (bilinear), as ``dtd explain`` does. Raises OSError or ValueError for a file Pillow cannot read."""
    from PIL import Image

    c, h, w = (int(d) for d in shape)
    with Image.open(path) as img:
        img.load()
        resized = img.convert("L" if c == 1 else "RGB").resize((w, h), Image.Resampling.BILINEAR)
        arr = np.asarray(resized, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else np.ascontiguousarray(arr.transpose(2, 0, 1))


class ImageSource:
    """Image files (PNG, JPEG, ...), read and resized to the model input ``shape`` ``[C, H, W]`` in the worker.
    A file that cannot be read is reported with the reason and skipped, not fatal."""

    is_image = True

    def __init__(
        self,
        paths: Sequence[str],
        shape: Sequence[int],
        ids: Sequence[int] | None = None,
        labels: Sequence[int] | None = None,
    ) -> None:
        if len(shape) != 3 or int(shape[0]) not in (1, 3):
            raise ValueError(
                f"image inputs need a model input of shape [1 or 3, H, W], this model takes {list(shape)}; "
                "give an .npy array instead"
            )
        self.paths = [str(p) for p in paths]
        self.shape = tuple(int(d) for d in shape)
        n = len(self.paths)
        self.ids = None if ids is None else np.asarray(ids, dtype=np.int64)
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        for what, col in (("ids", self.ids), ("labels", self.labels)):
            if col is not None and col.shape != (n,):
                raise ValueError(f"ImageSource: {len(col)} {what} for {n} paths")

    def __len__(self) -> int:
        return len(self.paths)

    def describe(self) -> dict[str, Any]:
        """What ``run.json`` records of this source (the paths themselves are in the index)."""
        return {"kind": "images", "count": len(self.paths)}

    def read(self, start: int, stop: int) -> tuple[dict[str, np.ndarray], list[tuple[int, str]]]:
        images, rows, failures = [], [], []
        for i in range(start, stop):
            try:
                images.append(load_image(self.paths[i], self.shape))
                rows.append(i)
            except Exception as err:  # any unreadable file is reported, not fatal
                failures.append((i, f"{self.paths[i]}: cannot read the image ({type(err).__name__}: {err})"))
        idx = np.asarray(rows, dtype=np.int64)
        batch: dict[str, np.ndarray] = {
            "image": np.stack(images) if images else np.zeros((0, *self.shape), dtype=np.uint8),
            "id": idx,
            "path": np.asarray([self.paths[i] for i in rows], dtype=str),
        }
        if self.labels is not None:
            batch["label"] = self.labels[idx]
        return batch, failures


def _table(path: Path, path_column: str) -> tuple[list[str], list[int] | None, list[int] | None]:
    """(paths, ids, labels) from a Parquet or CSV table; relative paths are taken from the table's folder."""
    if path.suffix.lower() == ".parquet":
        pq = require("pyarrow.parquet", f"reading {path}")
        table = pq.read_table(str(path))
        cols = {name: table.column(name).to_pylist() for name in table.column_names}
    else:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        names = list(rows[0]) if rows else []
        cols = {name: [r[name] for r in rows] for name in names}
    if path_column not in cols:
        raise ValueError(
            f"{path}: no column '{path_column}' (columns: {sorted(cols)}); choose it with --path-column"
        )
    paths = [str(p) if os.path.isabs(str(p)) else str(path.parent / str(p)) for p in cols[path_column]]

    def ints(name: str) -> list[int] | None:
        if name not in cols:
            return None
        try:
            return [int(v) for v in cols[name]]
        except (TypeError, ValueError):
            raise ValueError(f"{path}: column '{name}' must hold integers") from None

    return paths, ints("id"), ints("label")


def open_source(
    inputs: Sequence[str],
    input_shape: Sequence[int],
    *,
    array_key: str | None = None,
    path_column: str = "path",
    cache_dir: str | os.PathLike[str] | None = None,
) -> ArraySource | ImageSource:
    """The source for the CLI's inputs: one .npy/.npz file, one .parquet/.csv table of image paths, or folders,
    globs and image files (sorted; folders are searched recursively)."""
    if not inputs:
        raise ValueError("no input given")
    if len(inputs) == 1:
        p = Path(inputs[0])
        suffix = p.suffix.lower()
        if suffix in (".npy", ".npz"):
            return ArraySource(p, key=array_key, cache_dir=cache_dir)
        if suffix in (".parquet", ".csv"):
            if not p.is_file():
                raise FileNotFoundError(f"{p}: no such file")
            paths, ids, labels = _table(p.resolve(), path_column)
            return ImageSource(paths, input_shape, ids=ids, labels=labels)
    files: list[str] = []
    for spec in inputs:
        p = Path(spec)
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ValueError(f"{p}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
            files += found
        elif p.is_file():
            files.append(str(p))
        elif any(ch in spec for ch in "*?["):
            found = sorted(f for f in glob.glob(spec, recursive=True) if os.path.isfile(f))
            if not found:
                raise ValueError(f"{spec}: the pattern matches no file")
            files += found
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    return ImageSource(files, input_shape)
