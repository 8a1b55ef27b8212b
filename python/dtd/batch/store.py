"""Where dataset explanations go: map shards (.npy files or one Zarr array) and a Parquet index.

Layout of an output folder::

    maps/maps-000000000000-000000000256.npy   one file per shard, named by its global sample range [start, stop)
    maps.zarr/                                 or one Zarr array [N, *map_shape], one chunk per shard
    index/part-000000000000-000000000256.parquet   per-shard scalars, written last: its presence marks the shard done
    index.parquet                              all parts merged, in sample order (one row per sample)

Every file is written to a temporary name in the same folder and renamed into place, so a shard file is either
complete or absent, and a retried task overwrites its own shard instead of adding a duplicate. (A Zarr chunk is
written in place by zarr; a shard killed mid-write has no index part yet and is rewritten on resume.)
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._extras import require

__all__ = [
    "FORMATS",
    "MapStore",
    "atomic_path",
    "finished_parts",
    "merge_index",
    "part_name",
    "read_index",
    "read_maps",
    "write_table",
]

#: Map formats of a store ("none": scalars only).
FORMATS = ("npy", "zarr", "none")

INDEX_DIR = "index"
INDEX_FILE = "index.parquet"
MAPS_DIR = "maps"
ZARR_NAME = "maps.zarr"


def _range_name(start: int, stop: int) -> str:
    return f"{start:012d}-{stop:012d}"


def part_name(start: int, stop: int) -> str:
    """File name of the index part of the shard [start, stop)."""
    return f"part-{_range_name(start, stop)}.parquet"


def atomic_path(final: Path) -> Path:
    """A temporary path beside ``final`` (same folder, so the rename is atomic), unique per writer."""
    return final.with_name(f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}-{final.name}")


class MapStore:
    """Writes map shards under ``root`` as .npy files or into one Zarr array; picklable (paths only).

    Parameters
    ----------
    root : path
        The output folder.
    format : {"npy", "zarr"}
        One .npy file per shard, or one Zarr array ``[total, *map_shape]`` chunked by ``chunk`` samples.
    map_shape, dtype : per-sample map shape and dtype (Zarr: needed by :meth:`create`).
    total, chunk : int, optional
        Zarr only: the number of samples and the samples per chunk. A write must cover whole chunks
        (``start % chunk == 0`` and ``stop % chunk == 0`` or ``stop == total``), so that no two writers share one.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        format: str = "npy",
        *,
        map_shape: Sequence[int] | None = None,
        dtype: str = "float32",
        total: int | None = None,
        chunk: int | None = None,
    ) -> None:
        if format not in ("npy", "zarr"):
            raise ValueError(f"MapStore: format must be 'npy' or 'zarr', got {format!r}")
        if format == "zarr" and (total is None or chunk is None or map_shape is None):
            raise ValueError("MapStore: a Zarr store needs total=, chunk= and map_shape=")
        self.root = Path(root).resolve()
        self.format = format
        self.map_shape = None if map_shape is None else tuple(int(d) for d in map_shape)
        self.dtype = np.dtype(dtype).name
        self.total = None if total is None else int(total)
        self.chunk = None if chunk is None else int(chunk)
        self._array: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_array"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    @property
    def zarr_path(self) -> Path:
        return self.root / ZARR_NAME

    def create(self, overwrite: bool = False) -> None:
        """Creates the folders (and the Zarr array, unless it exists with the same shape and ``overwrite`` is
        False). Call it once, before workers write."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self.format == "npy":
            (self.root / MAPS_DIR).mkdir(exist_ok=True)
            return
        zarr = require("zarr", "a Zarr map store")
        assert self.total is not None and self.chunk is not None and self.map_shape is not None
        shape = (self.total, *self.map_shape)
        if not overwrite and self.zarr_path.exists():
            arr = zarr.open_array(store=str(self.zarr_path), mode="r")
            if tuple(arr.shape) == shape and np.dtype(arr.dtype) == np.dtype(self.dtype):
                return
        zarr.open_array(
            store=str(self.zarr_path),
            mode="w",
            shape=shape,
            chunks=(self.chunk, *self.map_shape),
            dtype=self.dtype,
            fill_value=0,
        )

    def write(self, start: int, stop: int, maps: np.ndarray) -> tuple[str, np.ndarray]:
        """Writes the maps of samples [start, stop); returns the shard (relative to root) and each map's row."""
        if maps.shape[0] != stop - start:
            raise ValueError(f"MapStore.write: {maps.shape[0]} maps for the range [{start}, {stop})")
        maps = np.ascontiguousarray(maps, dtype=self.dtype)
        if self.format == "npy":
            final = self.root / MAPS_DIR / f"maps-{_range_name(start, stop)}.npy"
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = atomic_path(final)
            try:
                with open(tmp, "wb") as f:
                    np.save(f, maps, allow_pickle=False)
                os.replace(tmp, final)
            finally:
                tmp.unlink(missing_ok=True)
            return f"{MAPS_DIR}/{final.name}", np.arange(stop - start, dtype=np.int64)
        assert self.total is not None and self.chunk is not None
        if start % self.chunk or (stop % self.chunk and stop != self.total) or stop > self.total:
            raise ValueError(
                f"MapStore: the range [{start}, {stop}) does not cover whole Zarr chunks of {self.chunk} samples "
                f"(of {self.total}); use batches aligned to the chunks, or format='npy'"
            )
        if self._array is None:
            zarr = require("zarr", "a Zarr map store")
            self._array = zarr.open_array(store=str(self.zarr_path), mode="r+")
        self._array[start:stop] = maps
        return ZARR_NAME, np.arange(start, stop, dtype=np.int64)


def write_table(path: str | os.PathLike[str], columns: Mapping[str, np.ndarray]) -> None:
    """Writes columns of equal length as a Parquet file, atomically (temporary file, then rename)."""
    pa = require("pyarrow", "the Parquet index")
    pq = require("pyarrow.parquet", "the Parquet index")
    arrays = {}
    for name, values in columns.items():
        arr = np.asarray(values)
        arrays[name] = pa.array(arr.astype(str) if arr.dtype == object else arr)
    table = pa.table(arrays)
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic_path(final)
    try:
        pq.write_table(table, str(tmp))
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def finished_parts(root: str | os.PathLike[str]) -> dict[tuple[int, int], Path]:
    """The index parts present under ``root`` (finished shards), by their range (start, stop)."""
    parts = {}
    folder = Path(root) / INDEX_DIR
    if folder.is_dir():
        for p in folder.glob("part-*-*.parquet"):
            a, b = p.stem.split("-")[1:3]
            parts[(int(a), int(b))] = p
    return parts


def merge_index(root: str | os.PathLike[str], ranges: Sequence[tuple[int, int]] | None = None) -> Path:
    """Concatenates the index parts (all, or those of ``ranges``) in sample order into ``root/index.parquet``."""
    pa = require("pyarrow", "the Parquet index")
    pq = require("pyarrow.parquet", "the Parquet index")
    parts = finished_parts(root)
    keys = sorted(parts) if ranges is None else sorted(ranges)
    missing = [k for k in keys if k not in parts]
    if missing:
        raise FileNotFoundError(f"{root}: index parts missing for the shards {missing[:5]}")
    tables = [pq.read_table(str(parts[k])) for k in keys]
    table = pa.concat_tables(tables, promote_options="default") if tables else pa.table({})
    final = Path(root) / INDEX_FILE
    tmp = atomic_path(final)
    try:
        pq.write_table(table, str(tmp))
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def read_index(root: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The Parquet index of an output folder as a dict of NumPy columns."""
    pq = require("pyarrow.parquet", "reading the Parquet index")
    path = Path(root) / INDEX_FILE if Path(root).is_dir() else Path(root)
    table = pq.read_table(str(path))
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}


def read_maps(
    root: str | os.PathLike[str], index: Mapping[str, np.ndarray] | None = None, rows: Any = None
) -> np.ndarray:
    """The maps of the index rows ``rows`` (default: all), stacked in that order, read shard by shard
    (a Zarr store or .npy files opened memory-mapped)."""
    root = Path(root)
    idx = read_index(root) if index is None else index
    if "shard" not in idx:
        raise ValueError(f"{root}: the index has no 'shard' column: the maps were not stored")
    sel = np.arange(len(idx["shard"])) if rows is None else np.asarray(rows)
    shards, rws = idx["shard"][sel], idx["row"][sel]
    out: np.ndarray | None = None
    for shard in dict.fromkeys(shards.tolist()):
        where = np.flatnonzero(shards == shard)
        if str(shard).endswith(".npy"):
            src: Any = np.load(root / str(shard), mmap_mode="r")
        else:
            zarr = require("zarr", "reading a Zarr map store")
            src = zarr.open_array(store=str(root / str(shard)), mode="r")
        r = rws[where].astype(np.int64)
        lo, hi = int(r.min()), int(r.max()) + 1
        block = np.asarray(src[lo:hi])[r - lo]
        if out is None:
            out = np.empty((len(sel), *block.shape[1:]), dtype=block.dtype)
        out[where] = block
    if out is None:
        raise ValueError(f"{root}: no maps to read")
    return out
