"""Explaining datasets on Ray and Dask: thin helpers around :class:`Explainer` (``pip install 'dtd[ray]'`` or
``'dtd[dask]'``; both import their scheduler only when called).

Both write the same output folder as ``dtd explain-dataset`` (maps and ``index.parquet``, see
:mod:`dtd.batch.store`); the maps are written by the workers, only the per-sample scalars travel back.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ._extras import require
from .explainer import Explainer
from .run import DatasetSummary, explain_shard, summarize
from .store import INDEX_FILE, MapStore, finished_parts, merge_index, write_table

__all__ = ["explain_bag", "explain_dask", "explain_dataframe", "explain_ray"]


class _Block:
    """A Dask block as a source: the samples of the global range [offset, offset + len)."""

    is_image = False

    def __init__(self, data: np.ndarray, offset: int, labels: np.ndarray | None) -> None:
        self.data, self.offset, self.labels_block = data, offset, labels

    def __len__(self) -> int:
        return self.offset + len(self.data)

    def read(self, start: int, stop: int) -> tuple[dict[str, np.ndarray], list[tuple[int, str]]]:
        a, b = start - self.offset, stop - self.offset
        batch = {"image": np.asarray(self.data[a:b]), "id": np.arange(start, stop, dtype=np.int64)}
        if self.labels_block is not None:
            batch["label"] = np.asarray(self.labels_block[a:b], dtype=np.int64)
        return batch, []


def _dask_task(
    block: np.ndarray,
    labels: np.ndarray | None,
    offset: int,
    explainer: Explainer,
    store: MapStore | None,
    root: str,
) -> int:
    src = _Block(block, offset, labels)
    return explain_shard(src, explainer, store, Path(root), offset, offset + len(block))


def explain_dask(
    array: Any,
    explainer: Explainer,
    out: str | os.PathLike[str],
    *,
    labels: Any = None,
    format: str = "zarr",
    overwrite: bool = False,
) -> DatasetSummary:
    """Explains a Dask (or NumPy) array of samples ``[N, ...]`` block by block on the current Dask scheduler
    (a ``distributed.Client`` if one is active) into ``out``.

    Each block along axis 0 is one task that explains its samples, writes its maps (one Zarr chunk, or one .npy
    shard, named by the global sample range) and its index part; a task retried after a lost worker overwrites
    its own outputs. The samples are read by the workers (chunks of a lazily loaded array are never gathered).

    Parameters
    ----------
    array : dask.array.Array or ndarray
        Samples along axis 0, chunked along axis 0 only (other axes are merged into one chunk). Uneven chunks
        are rechunked to the first chunk's size for the Zarr format.
    explainer : Explainer
        Without a store; ``key`` is irrelevant here (the array is the samples).
    out : path
        Output folder (refused if it holds results, unless ``overwrite``).
    labels : array, optional
        One integer label per sample (for ``target="label"`` and the index's ``label`` column).
    format : {"zarr", "npy", "none"}
        Map format.

    Returns
    -------
    DatasetSummary
    """
    da = require("dask.array", "explain_dask")
    dask = require("dask", "explain_dask")
    if explainer.store is not None:
        raise ValueError("explain_dask writes the maps itself: give an Explainer without a store")
    if format not in ("zarr", "npy", "none"):
        raise ValueError(f"format must be 'zarr', 'npy' or 'none', got {format!r}")
    if format == "none" and explainer.keep != "none":
        explainer = explainer.replace(keep="none")
    x = array if isinstance(array, da.Array) else da.from_array(np.asarray(array), chunks=256)
    x = x.rechunk({i: -1 for i in range(1, x.ndim)})
    if format == "zarr" and len(set(x.chunks[0][:-1])) > 1:
        x = x.rechunk({0: x.chunks[0][0]})
    n = int(x.shape[0])
    lab = None
    if labels is not None:
        lab = labels if isinstance(labels, da.Array) else da.from_array(np.asarray(labels))
        if lab.shape != (n,):
            raise ValueError(f"explain_dask: labels has shape {list(lab.shape)}, expected [{n}]")
        lab = lab.rechunk({0: x.chunks[0]})
    root = Path(out).resolve()
    if (finished_parts(root) or (root / INDEX_FILE).exists()) and not overwrite:
        raise ValueError(f"{root} holds the results of an earlier run: pass overwrite=True or another folder")
    for part in finished_parts(root).values():
        part.unlink()
    root.mkdir(parents=True, exist_ok=True)
    store = None
    if format != "none":
        store = MapStore(
            root,
            format,
            map_shape=explainer.map_shape(),
            dtype=explainer.map_dtype,
            total=n,
            chunk=int(x.chunks[0][0]),
        )
        store.create(overwrite=True)
    blocks = x.to_delayed().reshape(-1)
    label_blocks = lab.to_delayed().reshape(-1) if lab is not None else [None] * len(blocks)
    offsets = np.concatenate([[0], np.cumsum(x.chunks[0])[:-1]]).astype(int)
    task = dask.delayed(_dask_task, pure=False)
    tasks = [
        task(b, lb, int(off), explainer, store, str(root))
        for b, lb, off in zip(blocks, label_blocks, offsets, strict=True)
    ]
    dask.compute(*tasks)
    ranges = [(int(off), int(off) + int(c)) for off, c in zip(offsets, x.chunks[0], strict=True)]
    merge_index(root, ranges)
    summary = summarize(root)
    summary.shards = len(ranges)
    return summary


def explain_dataframe(frame: Any, explainer: Explainer) -> Any:
    """Explains a Dask DataFrame partition by partition (``map_partitions``): lazily, one task per partition.

    Parameters
    ----------
    frame : dask.dataframe.DataFrame
        The samples in column ``explainer.key``, one array per row (an object column, e.g. from
        ``dask.dataframe.from_pandas`` or ``dask.bag.Bag.to_dataframe``); an ``id`` column (integers: the slot of
        each sample in the engine's micro-batches, so maps are the same bits however the frame is partitioned;
        without it the ids are hashes of the samples' bytes), and optionally the target and passthrough columns.
    explainer : Explainer
        Any configuration; with a store each partition writes its maps as one shard and needs consecutive ids.

    Returns
    -------
    dask.dataframe.DataFrame
        Lazy; per row ``id``, ``predicted``, ``target``, ``logit``, ``relevance_sum``, ``absorbed``, ``error``, the
        passthrough columns, and ``relevance`` (one map per row, object column) or ``shard``/``row``. The
        partitions and the index are those of ``frame``.
    """
    require("dask.dataframe", "explain_dataframe")
    if explainer.key not in frame.columns:
        raise KeyError(f"explain_dataframe: no column '{explainer.key}' (columns: {list(frame.columns)})")
    _check_sample_column(frame._meta[explainer.key], explainer.key)
    return frame.map_partitions(explainer.partition, meta=explainer.partition_meta(frame._meta))


_CONVERT_STRING_HINT = (
    "Dask turned the arrays into text (its 'dataframe.convert-string' option, on by default, converts object "
    "columns to strings): build the frame under dask.config.set({'dataframe.convert-string': False})"
)


def _check_sample_column(column: Any, key: str) -> None:
    """Refuses a sample column that Dask converted to strings, with the fix."""
    dtype = getattr(column, "dtype", None)
    if dtype is not None and (str(dtype).startswith("string") or str(dtype) == "str"):
        raise ValueError(
            f"explain_dataframe: column '{key}' has dtype {dtype}, not arrays: {_CONVERT_STRING_HINT}"
        )


def explain_bag(bag: Any, explainer: Explainer) -> Any:
    """Explains a Dask bag of records (dicts with ``explainer.key`` and optionally ``id``, the target and
    passthrough fields) partition by partition: lazily, one dict per record (:meth:`Explainer.records`)."""
    require("dask.bag", "explain_bag")
    return bag.map_partitions(explainer.records)


class _RayTask:
    """The callable class Ray Data's actors construct: one Explainer (model loaded once per actor)."""

    def __init__(self, explainer: Explainer) -> None:
        self.explainer = explainer
        explainer.loaded_model  # noqa: B018

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.explainer(batch)


def explain_ray(
    dataset: Any,
    explainer: Explainer,
    out: str | os.PathLike[str] | None = None,
    *,
    batch_size: int = 256,
    concurrency: int = 2,
    num_cpus: float = 1.0,
    overwrite: bool = False,
) -> Any:
    """Explains a Ray Dataset with a pool of ``concurrency`` actors (one CPU, one model each).

    Parameters
    ----------
    dataset : ray.data.Dataset
        Rows with the samples in ``explainer.key`` and, to write maps, integer ids in ``explainer.id_key``
        (``ray.data.range(n)`` gives an ``id`` column; map it to the samples).
    explainer : Explainer
        Without a store.
    out : path, optional
        Without it, the lazily explained Dataset is returned (columns as :meth:`Explainer.__call__` returns
        them). With it, the workers write one .npy shard per batch (named by its id range; Ray's batches are not
        aligned to fixed chunks, so Zarr is not offered here) and the driver writes ``out/index.parquet``;
        a :class:`DatasetSummary` is returned.
    batch_size : int
        Rows per batch (per ``__call__``, per shard).
    concurrency : int
        Actors.
    num_cpus : float
        Ray CPUs reserved per actor (each runs ``explainer.num_threads`` OpenMP threads). Leave CPUs for the
        tasks that read the data: with ``concurrency * num_cpus`` equal to the node's CPUs, the read stage
        never gets one and the pipeline stalls (e.g. ``ray.init(num_cpus=2)``: two actors of 0.5 CPU each).

    Returns
    -------
    ray.data.Dataset or DatasetSummary
    """
    require("ray", "explain_ray")
    if explainer.store is not None:
        raise ValueError("explain_ray sets the store itself: give an Explainer without a store")
    ex = explainer
    root = None
    if out is not None:
        root = Path(out).resolve()
        if (root / INDEX_FILE).exists() and not overwrite:
            raise ValueError(
                f"{root} holds the results of an earlier run: pass overwrite=True or another folder"
            )
        if explainer.keep != "none":
            store = MapStore(root, "npy", dtype=explainer.map_dtype)
            store.create()
            ex = explainer.replace(store=store)
        root.mkdir(parents=True, exist_ok=True)
    result = dataset.map_batches(
        _RayTask,
        fn_constructor_args=(ex,),
        batch_size=batch_size,
        batch_format="numpy",
        concurrency=concurrency,
        num_cpus=num_cpus,
    )
    if root is None:
        return result
    columns: dict[str, list[np.ndarray]] = {}
    for batch in result.iter_batches(batch_format="numpy", batch_size=None):
        for name, values in batch.items():
            columns.setdefault(name, []).append(np.asarray(values))
    if not columns:
        raise ValueError("explain_ray: the dataset is empty")
    merged = {name: np.concatenate(parts) for name, parts in columns.items()}
    order = np.argsort(merged["id"], kind="stable")
    write_table(root / INDEX_FILE, {name: values[order] for name, values in merged.items()})
    return summarize(root)
