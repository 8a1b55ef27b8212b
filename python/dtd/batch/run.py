"""`dtd.batch.explain_dataset`: explain a whole dataset on one machine, in shards, with worker processes,
resumable. The engine of ``dtd explain-dataset``.

The dataset is cut into shards of ``shard_size`` consecutive samples. Each shard is one task: read its samples,
explain them (:class:`Explainer`), write its maps (:class:`MapStore`), then its index part (the marker that the
shard is finished, written last by rename). ``resume=True`` skips the shards whose index part exists.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .explainer import SCALAR_COLUMNS, Explainer
from .sources import Source
from .store import (
    FORMATS,
    INDEX_DIR,
    INDEX_FILE,
    MapStore,
    finished_parts,
    merge_index,
    part_name,
    read_index,
    write_table,
)

__all__ = ["DatasetSummary", "WorkerLostError", "explain_dataset", "explain_shard", "summarize"]

RUN_FILE = "run.json"


class WorkerLostError(RuntimeError):
    """A worker process died (killed, out of memory); the shards finished so far are kept."""


@dataclass
class DatasetSummary:
    """What a dataset run produced.

    Attributes
    ----------
    count : int
        Samples in the dataset.
    explained : int
        Samples explained (the others failed).
    classes : dict of int to int
        Samples per explained target class.
    mean_absorbed : float
        Mean of ``f_target(x) - sum R`` over the explained samples (relevance absorbed by biases, stabilizers).
    failures : list of (id, reason)
        Samples that could not be read or explained.
    shards, resumed_shards : int
        Shards in the dataset, and those skipped because an earlier run finished them.
    seconds : float
        Wall time of this run.
    out : Path
        The output folder.
    """

    count: int
    explained: int
    classes: dict[int, int]
    mean_absorbed: float
    failures: list[tuple[Any, str]] = field(default_factory=list)
    shards: int = 0
    resumed_shards: int = 0
    seconds: float = 0.0
    out: Path = Path()

    def report(self, max_failures: int = 20) -> str:
        """A few lines for the terminal."""
        rate = (self.count - 0) / self.seconds if self.seconds > 0 else float("nan")
        lines = [
            f"{self.count} samples in {self.shards} shards ({self.resumed_shards} already done), "
            f"{self.explained} explained, {len(self.failures)} failed; {self.seconds:.1f} s ({rate:.1f} samples/s)",
            "classes (explained target: count): "
            + ", ".join(f"{c}: {k}" for c, k in sorted(self.classes.items())),
            f"mean absorbed relevance (f_c(x) - sum R): {self.mean_absorbed:.6g}",
        ]
        for sid, reason in self.failures[:max_failures]:
            lines.append(f"  failed: sample {sid}: {reason}")
        if len(self.failures) > max_failures:
            lines.append(
                f"  ... and {len(self.failures) - max_failures} more (see the 'error' column of the index)"
            )
        lines.append(f"wrote {self.out / INDEX_FILE}")
        return "\n".join(lines)


def explain_shard(
    source: Source, explainer: Explainer, store: MapStore | None, root: Path, start: int, stop: int
) -> int:
    """Explains the samples [start, stop) of ``source``, writes their maps to ``store`` and the index part
    (last: it marks the shard finished). Unreadable samples get a row with their reason. Returns the count."""
    batch, failures = source.read(start, stop)
    n = stop - start
    cols: dict[str, np.ndarray] = {"id": np.arange(start, stop, dtype=np.int64)}
    cols["predicted"] = np.full(n, -1, dtype=np.int64)
    cols["target"] = np.full(n, -1, dtype=np.int64)
    for name in ("logit", "relevance_sum", "absorbed"):
        cols[name] = np.full(n, np.nan)
    errors = np.full(n, "", dtype=object)
    maps = np.zeros((n, *explainer.map_shape()), dtype=explainer.map_dtype) if store is not None else None
    if len(batch["id"]):
        result = explainer(batch)
        rows = np.asarray(batch["id"], dtype=np.int64) - start
        for name in SCALAR_COLUMNS:
            if name != "error":
                cols[name][rows] = result[name]
        errors[rows] = result["error"]
        if maps is not None:
            maps[rows] = result["relevance"]
        for name in ("label", "path"):
            if name in batch:
                col = np.full(n, -1, dtype=np.int64) if name == "label" else np.full(n, "", dtype=object)
                col[rows] = batch[name]
                cols[name] = col
    for i, reason in failures:
        errors[i - start] = reason
    paths, labels = getattr(source, "paths", None), getattr(source, "labels", None)
    if "path" not in cols and paths is not None:  # a shard whose images all failed keeps their paths
        cols["path"] = np.asarray(paths[start:stop], dtype=str)
    if "label" not in cols and labels is not None:
        cols["label"] = np.asarray(labels[start:stop], dtype=np.int64)
    cols["error"] = errors.astype(str)
    if store is not None and maps is not None:
        shard, row = store.write(start, stop, maps)
        cols["shard"] = np.full(n, shard, dtype=object).astype(str)
        cols["row"] = row
    write_table(root / INDEX_DIR / part_name(start, stop), cols)
    return n


# Per worker process: set by the pool's initializer.
_WORKER: dict[str, Any] = {}


def _init_worker(source: Source, explainer: Explainer, store: MapStore | None, root: Path) -> None:
    _WORKER.update(source=source, explainer=explainer, store=store, root=root)
    explainer.loaded_model  # noqa: B018  (load once, before the first task)


def _worker_shard(start: int, stop: int) -> int:
    w = _WORKER
    return explain_shard(w["source"], w["explainer"], w["store"], w["root"], start, stop)


def _run_config(source: Source, explainer: Explainer, shard_size: int, fmt: str) -> dict[str, Any]:
    return {
        "count": len(source),
        "shard_size": shard_size,
        "format": fmt,
        "model": explainer.model if isinstance(explainer.model, str) else f"<{len(explainer.model)} bytes>",
        "explainer": repr(explainer),
        "source": _describe(source),
    }


def _describe(source: Source) -> dict[str, Any] | None:
    """What run.json records of the source (``describe()`` of the built-in sources), for ``dtd report``."""
    describe = getattr(source, "describe", None)
    return describe() if callable(describe) else None


def _check_run(root: Path, config: dict[str, Any], resume: bool, overwrite: bool) -> None:
    run_file = root / RUN_FILE
    has_results = bool(finished_parts(root)) or (root / INDEX_FILE).exists()
    if resume and run_file.exists():
        earlier = json.loads(run_file.read_text())
        # Settings an earlier version did not record (e.g. "source") are not compared.
        diff = [k for k in config if k in earlier and earlier[k] != config[k]]
        if diff:
            raise ValueError(
                f"{root}: --resume with settings that differ from the earlier run ({', '.join(diff)}: "
                f"{earlier.get(diff[0])!r} then, {config[diff[0]]!r} now); use another --out or --overwrite"
            )
    elif has_results and not resume and not overwrite:
        raise ValueError(
            f"{root} holds the results of an earlier run: pass --resume to continue it or --overwrite to start again"
        )
    if overwrite and not resume:
        for part in finished_parts(root).values():
            part.unlink()
        (root / INDEX_FILE).unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    run_file.write_text(json.dumps(config, indent=1) + "\n")


def explain_dataset(
    source: Source,
    explainer: Explainer,
    out: str | Path,
    *,
    shard_size: int = 256,
    workers: int = 0,
    format: str = "npy",
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> DatasetSummary:
    """Explains every sample of ``source`` into ``out`` (maps and the Parquet index, see :mod:`dtd.batch.store`).

    Parameters
    ----------
    source : dtd.batch.sources.Source
        :class:`~dtd.batch.sources.ArraySource`, :class:`~dtd.batch.sources.ImageSource`, or any object with
        ``len()`` and ``read(start, stop)``; picklable when ``workers > 0``.
    explainer : Explainer
        Without a store (the shards are written here); its ``num_threads`` applies in each worker.
    out : path
        The output folder.
    shard_size : int
        Samples per shard (one .npy file or Zarr chunk, one task).
    workers : int
        0: explain in this process; N: N worker processes (spawned: each loads the model once).
    format : {"npy", "zarr", "none"}
        Map format; "none" writes only the index.
    resume : bool
        Skip the shards an earlier run with the same settings finished.
    overwrite : bool
        Discard an earlier run's index in ``out``. Without ``resume`` or ``overwrite``, an ``out`` with results
        is refused.
    progress : bool
        Show a tqdm bar (samples/s and ETA).

    Returns
    -------
    DatasetSummary
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if explainer.store is not None:
        raise ValueError("explain_dataset writes the maps itself: give an Explainer without a store")
    if format == "none" and explainer.keep != "none":
        explainer = explainer.replace(keep="none")
    root = Path(out).resolve()
    t0 = time.perf_counter()
    n = len(source)
    _check_run(root, _run_config(source, explainer, shard_size, format), resume, overwrite)
    store = None
    if format != "none":
        store = MapStore(
            root,
            format,
            map_shape=explainer.map_shape(),
            dtype=explainer.map_dtype,
            total=n,
            chunk=shard_size,
        )
        store.create(overwrite=not resume)
    ranges = [(s, min(s + shard_size, n)) for s in range(0, n, shard_size)]
    done = set(finished_parts(root)) if resume else set()
    todo = [r for r in ranges if r not in done]
    from tqdm import tqdm

    bar = tqdm(total=n, unit="img", desc="explaining", disable=not progress, smoothing=0.1)
    bar.update(n - sum(b - a for a, b in todo))
    try:
        if workers == 0:
            for a, b in todo:
                bar.update(explain_shard(source, explainer, store, root, a, b))
        else:
            _run_pool(source, explainer, store, root, todo, workers, bar.update)
    finally:
        bar.close()
    merge_index(root, ranges)
    summary = summarize(root)
    summary.shards, summary.resumed_shards = len(ranges), len(ranges) - len(todo)
    summary.seconds = time.perf_counter() - t0
    return summary


def _run_pool(
    source: Source,
    explainer: Explainer,
    store: MapStore | None,
    root: Path,
    todo: Iterable[tuple[int, int]],
    workers: int,
    advance: Any,
) -> None:
    ctx = multiprocessing.get_context("spawn")  # no fork of a process whose OpenMP runtime is initialised
    with ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_worker, initargs=(source, explainer, store, root)
    ) as pool:
        pending: set[Future[int]] = set()
        queue = list(todo)
        # Keep a few tasks per worker in flight, not all: the pool then starts the shards in order.
        while queue or pending:
            while queue and len(pending) < 2 * workers:
                a, b = queue.pop(0)
                pending.add(pool.submit(_worker_shard, a, b))
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                try:
                    advance(fut.result())
                except BrokenProcessPool as err:
                    raise WorkerLostError(
                        f"a worker process died ({err}); the finished shards are kept: rerun with --resume"
                    ) from None


def summarize(out: str | Path) -> DatasetSummary:
    """The summary of an output folder, from its Parquet index."""
    root = Path(out).resolve()
    idx = read_index(root)
    errors = idx["error"].astype(str)
    ok = errors == ""
    absorbed = idx["absorbed"][ok]
    failures = [
        (i.item() if hasattr(i, "item") else i, str(e))
        for i, e in zip(idx["id"][~ok], errors[~ok], strict=True)
    ]
    return DatasetSummary(
        count=len(errors),
        explained=int(ok.sum()),
        classes={int(c): int(k) for c, k in sorted(Counter(idx["target"][ok].tolist()).items())},
        mean_absorbed=float(np.mean(absorbed)) if absorbed.size else float("nan"),
        failures=failures,
        out=root,
    )
