"""`dtd.batch.Explainer`: a picklable callable that explains batches of a dataset, for one machine or a cluster.

The object holds only configuration (the model as a path or bytes, rules, bounds, target mode, what to keep), so
it pickles small and the same instance serves a local process pool, Ray Data ``map_batches``, Dask
``map_blocks``/``map_partitions`` and a Spark ``predict_batch_udf``. The model is loaded on first use in each
process and kept in a per-process cache, so a task-based scheduler that unpickles a fresh copy per task does not
re-import the model every time.

Determinism: dtd explains each sample independently, but its products are blocked by batch size, so the last
bits of a sample's relevance depend on the size of the batch it is explained in and on its position there (not
on the other samples: the tests check both). The Explainer therefore always runs the engine on micro-batches of
exactly ``micro_batch`` samples and puts each sample at the slot ``id % micro_batch`` (a hash of the id for
non-integer ids), filling free slots with copies whose results are dropped. A sample's map is then
bit-identical whatever the batch it arrives in, the worker or the thread count, for a given ``micro_batch``.
With consecutive integer ids and batches aligned to ``micro_batch`` no slot is wasted.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..model import Model
    from ..rules import Composite, Rule
    from .store import MapStore

__all__ = ["KEEP_MODES", "SCALAR_COLUMNS", "Explainer"]

#: What an Explainer can keep of each map: the full map, the map summed over the channel axis, or nothing.
KEEP_MODES = ("full", "channels", "none")

#: The per-sample columns every call returns (besides the id, the map and the passthrough columns).
SCALAR_COLUMNS = ("predicted", "target", "logit", "relevance_sum", "absorbed", "error")

# Models loaded in this process, by source key: a task-based scheduler unpickles a fresh Explainer per task,
# and all of them share one loaded model.
_MODELS: dict[str, Model] = {}
_THREADS_SET: list[int | None] = [None]


def _model_key(model: str | bytes) -> str:
    if isinstance(model, bytes):
        return "bytes:" + hashlib.blake2b(model, digest_size=16).hexdigest()
    st = os.stat(model)
    return f"path:{model}:{st.st_size}:{st.st_mtime_ns}"


class Explainer:
    """Explains batches of samples with dtd; picklable, loads the model lazily once per process.

    Parameters
    ----------
    model : path or bytes
        The ONNX model: a file path (resolved to an absolute path now: on a cluster it must be readable at the
        same path on every worker, else pass the bytes) or the serialized model.
    rules : str, Rule or Composite
        As for :func:`dtd.explain` (a preset name or picklable rule objects).
    low, high : float or array, optional
        Input bounds for the z^β rule, in the space of the model input (after ``scale``/``mean``/``std``).
    eps : float, optional
        Stabilizer, as for :func:`dtd.explain`.
    target : "predicted", int or str
        ``"predicted"`` explains each sample's argmax class; an int one class for all samples; any other string
        names the batch column holding one class per sample (e.g. ``"label"``).
    key : str
        The batch column holding the samples (Ray Data's ``read_images`` calls it ``"image"``).
    id_key : str
        The batch column of sample ids. Without it the ids are ``start + arange(n)`` when the caller passes
        ``start`` (the CLI and :func:`explain_dask` do), else a 63-bit hash of each sample's bytes.
    passthrough : sequence of str
        Batch columns copied into the result when present (default: ``"label"``, ``"path"``).
    keep : {"full", "channels", "none"}
        Keep the full map ``[n, *input_shape]``, the map summed over the channel axis ``[n, *input_shape[1:]]``,
        or no map (scalars only).
    map_dtype : {"float32", "float16"}
        dtype of the returned maps (float16 halves the bytes; relative rounding 5e-4).
    scale : "auto" or float
        Multiplies the samples before ``mean``/``std``: ``"auto"`` is 1/255 for uint8 samples (pixels), else 1.
    mean, std : float or sequence of float, optional
        Per-channel normalisation ``(x * scale - mean) / std`` applied before the model.
    channels_last : bool
        Samples come as ``[n, H, W, C]`` (image readers) and are transposed to the model's ``[n, C, H, W]``.
        Samples whose size matches the input (``[n, 28, 28]`` for ``[1, 28, 28]``) are reshaped in any case.
    micro_batch : int or "auto"
        Samples per engine call, each at slot ``id % micro_batch`` (see the module docstring: this makes maps
        bit-identical across cluster shapes; maps made with another ``micro_batch`` can differ in the last
        bits). ``"auto"``: the largest power of two up to 64 whose activations stay within 256 MiB (64 for the
        shipped MNIST model, 8 for a ResNet-18 at 224x224), decided by the model alone.
    num_threads : int or None
        OpenMP threads of this process, set when the model is loaded (:func:`dtd.set_num_threads`); 1 suits
        one worker process per core. None leaves the process setting alone.
    compute_dtype : {"float32", "float64"}
        The engine's precision.
    store : dtd.batch.MapStore, optional
        Write the maps of each call to this store instead of returning them: the result then has the columns
        ``shard`` (the file or array, relative to the store's root) and ``row`` (the row in it). Needs integer,
        contiguous ids (a shard is named by its id range, so a retried task overwrites its own shard).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | bytes,
        *,
        rules: str | Composite | Rule = "deep_taylor",
        low: Any = None,
        high: Any = None,
        eps: float | None = None,
        target: str | int = "predicted",
        key: str = "image",
        id_key: str = "id",
        passthrough: Sequence[str] = ("label", "path"),
        keep: str = "full",
        map_dtype: str = "float32",
        scale: str | float = "auto",
        mean: float | Sequence[float] | None = None,
        std: float | Sequence[float] | None = None,
        channels_last: bool = False,
        micro_batch: int | str = "auto",
        num_threads: int | None = 1,
        compute_dtype: str = "float32",
        store: MapStore | None = None,
    ) -> None:
        if isinstance(model, (bytes, bytearray, memoryview)):
            self.model: str | bytes = bytes(model)
        elif isinstance(model, (str, os.PathLike)):
            path = Path(model).expanduser().resolve()
            if not path.is_file():
                raise FileNotFoundError(f"Explainer: model file not found: {path}")
            self.model = str(path)
        else:
            raise TypeError(f"Explainer: model must be a path or the ONNX bytes, got {type(model).__name__}")
        if keep not in KEEP_MODES:
            raise ValueError(f"Explainer: keep must be one of {', '.join(KEEP_MODES)}, got {keep!r}")
        if np.dtype(map_dtype) not in (np.dtype(np.float16), np.dtype(np.float32)):
            raise ValueError(f"Explainer: map_dtype must be float16 or float32, got {map_dtype!r}")
        if np.dtype(compute_dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"Explainer: compute_dtype must be float32 or float64, got {compute_dtype!r}")
        if micro_batch != "auto" and (not isinstance(micro_batch, int) or micro_batch < 1):
            raise ValueError(f"Explainer: micro_batch must be 'auto' or an int >= 1, got {micro_batch!r}")
        if num_threads is not None and int(num_threads) < 1:
            raise ValueError(f"Explainer: num_threads must be >= 1 or None, got {num_threads}")
        if not (scale == "auto" or isinstance(scale, (int, float))):
            raise ValueError(f"Explainer: scale must be 'auto' or a number, got {scale!r}")
        if not isinstance(target, (str, int)) or isinstance(target, bool):
            raise ValueError(
                f"Explainer: target must be 'predicted', a class index or a column name, got {target!r}"
            )
        if store is not None and keep == "none":
            raise ValueError("Explainer: a store needs maps to write; keep='none' keeps none")
        self.rules = rules
        self.low, self.high, self.eps = low, high, eps
        self.target = target
        self.key, self.id_key = key, id_key
        self.passthrough = tuple(passthrough)
        self.keep = keep
        self.map_dtype = np.dtype(map_dtype).name
        self.scale = scale
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.std = None if std is None else np.asarray(std, dtype=np.float64)
        if self.std is not None and np.any(self.std == 0):
            raise ValueError("Explainer: std must not contain 0")
        self.channels_last = bool(channels_last)
        self.micro_batch = micro_batch
        self.num_threads = None if num_threads is None else int(num_threads)
        self.compute_dtype = np.dtype(compute_dtype).name
        self.store = store
        self._model: Model | None = None

    # -- pickling: configuration only; the model is loaded again on first use after unpickling
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_model"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        src = self.model if isinstance(self.model, str) else f"<{len(self.model)} bytes>"
        return (
            f"dtd.batch.Explainer(model={src!r}, rules={self.rules!r}, low={self.low!r}, high={self.high!r}, "
            f"target={self.target!r}, keep={self.keep!r}, map_dtype={self.map_dtype!r}, "
            f"micro_batch={self.micro_batch}, num_threads={self.num_threads})"
        )

    def config(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this Explainer: ``Explainer(**ex.config())`` (Ray Data's
        ``fn_constructor_kwargs``)."""
        return {
            "model": self.model,
            "rules": self.rules,
            "low": self.low,
            "high": self.high,
            "eps": self.eps,
            "target": self.target,
            "key": self.key,
            "id_key": self.id_key,
            "passthrough": self.passthrough,
            "keep": self.keep,
            "map_dtype": self.map_dtype,
            "scale": self.scale,
            "mean": self.mean,
            "std": self.std,
            "channels_last": self.channels_last,
            "micro_batch": self.micro_batch,
            "num_threads": self.num_threads,
            "compute_dtype": self.compute_dtype,
            "store": self.store,
        }

    def replace(self, **changes: Any) -> Explainer:
        """A copy with some settings changed (checked as in the constructor)."""
        return Explainer(**{**self.config(), **changes})

    @property
    def loaded_model(self) -> Model:
        """The dtd.Model, loaded on first use in this process (and shared by equal Explainers in it)."""
        if self._model is None:
            from ..loader import load

            key = _model_key(self.model)
            model = _MODELS.get(key)
            if model is None:
                model = load(self.model)
                _MODELS[key] = model
            self._model = model
        if self.num_threads is not None and _THREADS_SET[0] != self.num_threads:
            from .._core import set_num_threads

            set_num_threads(self.num_threads)
            _THREADS_SET[0] = self.num_threads
        return self._model

    @property
    def batch_slots(self) -> int:
        """The engine's batch size: ``micro_batch``, or the one ``"auto"`` picks for the model."""
        if isinstance(self.micro_batch, int):
            return self.micro_batch
        model = self.loaded_model
        floats = int(np.prod(model.input_shape)) + sum(
            int(np.prod(layer.output_shape)) for layer in model.layers
        )
        size = 64
        while size > 1 and size * floats * 4 * 2 > 256 * 2**20:  # activations and relevance, float32
            size //= 2
        return size

    def map_shape(self) -> tuple[int, ...]:
        """Per-sample shape of the kept map (``()`` for keep='none')."""
        shape = self.loaded_model.input_shape
        if self.keep == "none":
            return ()
        if self.keep == "channels" and len(shape) >= 2:
            return tuple(shape[1:])
        return tuple(shape)

    def prepare(self, samples: Any) -> np.ndarray:
        """The samples as the model's input batch ``[n, *input_shape]`` in the compute dtype: layout
        (``channels_last``, a missing channel axis), ``scale``, ``mean``, ``std``. Raises ValueError naming
        the shapes when they do not fit the model."""
        model = self.loaded_model
        shape = model.input_shape
        arr = _stack(samples, self.key)
        raw_dtype = arr.dtype
        if arr.dtype.kind not in "fiub":
            raise ValueError(f"Explainer: column '{self.key}' has dtype {arr.dtype}, expected numbers")
        n = arr.shape[0]
        if self.channels_last and arr.ndim == len(shape) + 1 and len(shape) >= 2:
            arr = np.moveaxis(arr, -1, 1)
        if tuple(arr.shape[1:]) != shape:
            if int(np.prod(arr.shape[1:])) != int(np.prod(shape)):
                raise ValueError(
                    f"Explainer: column '{self.key}' holds samples of shape {list(arr.shape[1:])}, the model "
                    f"takes {list(shape)}"
                )
            arr = arr.reshape((n, *shape))
        scale = (1.0 / 255.0 if raw_dtype == np.uint8 else 1.0) if self.scale == "auto" else float(self.scale)
        x = arr.astype(np.float64) * scale if scale != 1.0 else arr.astype(np.float64)
        channel_shape = (-1,) + (1,) * (len(shape) - 1)
        if self.mean is not None:
            x = x - (self.mean.reshape(channel_shape) if self.mean.ndim == 1 else self.mean)
        if self.std is not None:
            x = x / (self.std.reshape(channel_shape) if self.std.ndim == 1 else self.std)
        return np.ascontiguousarray(x, dtype=self.compute_dtype)

    def __call__(self, batch: Mapping[str, Any], start: int | None = None) -> dict[str, np.ndarray]:
        """Explains one batch.

        Parameters
        ----------
        batch : mapping of column name to array (Ray Data's numpy batch format), or a pandas DataFrame
            Must hold ``key`` (the samples); may hold ``id_key``, the target column and passthrough columns.
        start : int, optional
            Global index of the batch's first sample, used for the ids when the batch has no id column.

        Returns
        -------
        dict of str to ndarray
            ``id``, ``predicted`` (int64), ``target`` (int64), ``logit`` (float64, ``f_target(x)``),
            ``relevance_sum`` (float64), ``absorbed`` (``logit - relevance_sum``), ``error`` (str, empty when
            the sample was explained; a sample that fails, e.g. outside the z^β bounds, gets NaN scalars, a zero
            map and the reason, and does not fail the batch), the passthrough columns, and ``relevance`` (the
            kept maps) or, with a store, ``shard`` and ``row``.
        """
        columns = _columns(batch)
        if self.key not in columns:
            raise KeyError(f"Explainer: the batch has no column '{self.key}' (columns: {sorted(columns)})")
        x = self.prepare(columns[self.key])
        n = x.shape[0]
        ids = self._ids(columns, x, start)
        targets = self._targets(columns, n)
        out = self.explain_array(x, targets, _slots(ids))
        result: dict[str, np.ndarray] = {"id": ids}
        for name in SCALAR_COLUMNS:
            result[name] = out[name]
        for name in self.passthrough:
            if name in columns and name not in result:
                result[name] = np.asarray(columns[name])
        if self.keep != "none":
            if self.store is not None:
                start_id, stop_id = _id_range(ids)
                shard, rows = self.store.write(start_id, stop_id, out["relevance"])
                result["shard"] = np.full(n, shard, dtype=object).astype(str)
                result["row"] = rows
            else:
                result["relevance"] = out["relevance"]
        return result

    def explain_array(
        self, x: np.ndarray, targets: np.ndarray | None = None, slots: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """The per-sample scalars and kept maps of a prepared batch ``x`` ([n, *input_shape], compute dtype).

        ``targets``: one class per sample, or None for each sample's predicted class. ``slots``: each sample's
        position in its micro-batch (``id % micro_batch``, see the module docstring); default: consecutive, as
        for ids ``0..n-1``."""
        from ..api import explain

        model = self.loaded_model
        n = x.shape[0]
        size = self.batch_slots
        slot = np.arange(n) % size if slots is None else np.asarray(slots, dtype=np.int64) % size
        map_shape = self.map_shape()
        maps = np.zeros((n, *map_shape), dtype=self.map_dtype) if self.keep != "none" else None
        predicted = np.full(n, -1, dtype=np.int64)
        target = np.full(n, -1, dtype=np.int64)
        logit = np.full(n, np.nan)
        total = np.full(n, np.nan)
        errors = np.full(n, "", dtype=object)
        kwargs = {"rules": self.rules, "low": self.low, "high": self.high, "eps": self.eps}

        def run(idx: np.ndarray) -> None:
            # idx: the samples of one micro-batch, at distinct slots; free slots repeat the first sample.
            rows = np.full(size, idx[0], dtype=np.int64)
            rows[slot[idx]] = idx
            tgt = None if targets is None else targets[rows]
            details = explain(model, x[rows], target=tgt, return_details=True, **kwargs)
            at = slot[idx]
            rel = details.relevance[at]
            logits = np.asarray(details.logits[at], dtype=np.float64).reshape(len(idx), -1)
            t = np.asarray(details.targets[at], dtype=np.int64)
            predicted[idx] = logits.argmax(axis=1)
            target[idx] = t
            logit[idx] = logits[np.arange(len(idx)), t]
            total[idx] = rel.reshape(len(idx), -1).sum(axis=1, dtype=np.float64)
            if maps is not None:
                kept = rel.sum(axis=1) if self.keep == "channels" and rel.ndim >= 3 else rel
                maps[idx] = kept.astype(self.map_dtype)

        for idx in _pack(slot, size):
            try:
                run(idx)
            except ValueError as err:
                if len(idx) == 1:
                    errors[idx[0]] = str(err)
                    continue
                for (
                    i
                ) in idx:  # find the failing sample(s); the others, alone at their slots, give the same bits
                    try:
                        run(np.array([i]))
                    except ValueError as err_i:
                        errors[i] = str(err_i)
        out: dict[str, np.ndarray] = {
            "predicted": predicted,
            "target": target,
            "logit": logit,
            "relevance_sum": total,
            "absorbed": logit - total,
            "error": errors.astype(str),
        }
        if maps is not None:
            out["relevance"] = maps
        return out

    def relevance(self, block: np.ndarray, block_info: dict[Any, Any] | None = None) -> np.ndarray:
        """Only the kept maps of a block of samples: the function for ``dask.array.map_blocks``
        (``da.map_blocks(explainer.relevance, x, dtype=explainer.map_dtype)``, chunked along axis 0 only); the
        block's global offset (from Dask's ``block_info``) gives the ids. Failed samples get zero maps."""
        if self.keep == "none":
            raise ValueError("Explainer.relevance: keep='none' keeps no map")
        start = 0
        if block_info:  # {0: input block, None: output block}, each with its "array-location"
            where = block_info.get(None) or block_info.get(0)
            if isinstance(where, Mapping) and "array-location" in where:
                start = int(where["array-location"][0][0])
        out = self.explain_array(
            self.prepare(block), self._targets({}, len(block)), start + np.arange(len(block))
        )
        return out["relevance"]

    def partition(self, frame: Any) -> Any:
        """Explains one pandas DataFrame partition into a DataFrame: the function for Dask DataFrame
        ``map_partitions`` (use :func:`dtd.batch.explain_dataframe`, which also builds Dask's ``meta``).

        The frame holds the samples in column ``key`` (one array per row: an object column) and optionally
        ``id_key``, the target column and the passthrough columns. The result keeps the frame's index and has the
        columns of :meth:`__call__`; the kept maps are one array per row in a ``relevance`` object column (or,
        with a store, ``shard`` and ``row``). Without an ``id`` column the ids are hashes of the samples' bytes.
        """
        pd = require_pandas("Explainer.partition")
        if len(frame) == 0:
            return self.partition_meta(frame).set_axis(frame.index)
        out = self(frame)
        return _frame(pd, out, frame)

    def records(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Explains one Dask bag partition of records (dicts with ``key`` and optionally ``id_key``, the target
        and passthrough fields) into one dict per record, with the fields of :meth:`__call__` as Python scalars
        (the map, if kept, as an ndarray): the function for ``dask.bag.Bag.map_partitions``."""
        recs = list(records)
        if not recs:
            return []
        names = {name for r in recs for name in r}
        columns = {name: _column([r.get(name) for r in recs]) for name in names}
        out = self(columns)
        keys = list(out)
        return [
            {name: (out[name][i].item() if out[name].ndim == 1 else out[name][i]) for name in keys}
            for i in range(len(recs))
        ]

    def partition_meta(self, frame: Any = None) -> Any:
        """An empty DataFrame with the columns and dtypes :meth:`partition` returns (Dask's ``meta``);
        ``frame``: the input's meta, for the passthrough columns' dtypes."""
        pd = require_pandas("Explainer.partition_meta")
        cols: dict[str, Any] = {"id": np.zeros(0, dtype=np.int64)}
        for name in SCALAR_COLUMNS:
            kind = np.int64 if name in ("predicted", "target") else np.float64
            cols[name] = np.zeros(0, dtype=kind) if name != "error" else np.zeros(0, dtype=str)
        if frame is not None:
            for name in self.passthrough:
                if name in frame.columns:
                    cols[name] = frame[name].iloc[:0].to_numpy()
        if self.keep != "none":
            if self.store is not None:
                cols["shard"] = np.zeros(0, dtype=str)
                cols["row"] = np.zeros(0, dtype=np.int64)
            else:
                cols["relevance"] = np.zeros((0, 1), dtype=self.map_dtype)
        return _frame(pd, cols, None)

    def _ids(self, columns: Mapping[str, Any], x: np.ndarray, start: int | None) -> np.ndarray:
        if self.id_key in columns:
            ids = np.asarray(columns[self.id_key])
            if ids.shape != (x.shape[0],):
                raise ValueError(
                    f"Explainer: column '{self.id_key}' has shape {list(ids.shape)}, expected [{x.shape[0]}]"
                )
            return ids
        if start is not None:
            return np.arange(int(start), int(start) + x.shape[0], dtype=np.int64)
        flat = x.reshape(x.shape[0], -1)
        return np.array(
            [
                int.from_bytes(hashlib.blake2b(row.tobytes(), digest_size=8).digest(), "little") >> 1
                for row in flat
            ],
            dtype=np.int64,
        )

    def _targets(self, columns: Mapping[str, Any], n: int) -> np.ndarray | None:
        if self.target == "predicted":
            return None
        if isinstance(self.target, int):
            return np.full(n, int(self.target), dtype=np.int64)
        if self.target not in columns:
            raise KeyError(
                f"Explainer: target column '{self.target}' is not in the batch (columns: {sorted(columns)})"
            )
        t = np.asarray(columns[self.target])
        if t.dtype.kind not in "iu" or t.shape != (n,):
            raise ValueError(
                f"Explainer: target column '{self.target}' must hold one integer class per sample, got dtype "
                f"{t.dtype} and shape {list(t.shape)}"
            )
        return t.astype(np.int64)


def _slots(ids: np.ndarray) -> np.ndarray:
    """An integer per sample from its id (the id itself, or a hash of its text), for the slot ``% size``."""
    if ids.dtype.kind in "iu":
        return ids.astype(np.int64)
    return np.array(
        [
            int.from_bytes(hashlib.blake2b(str(i).encode(), digest_size=8).digest(), "little") >> 1
            for i in ids
        ],
        dtype=np.int64,
    )


def _pack(slot: np.ndarray, size: int) -> list[np.ndarray]:
    """Samples grouped into micro-batches with distinct slots, in order (consecutive slots fill whole
    micro-batches; colliding ones open another)."""
    groups: list[list[int]] = []
    used: list[set[int]] = []
    open_from = 0  # groups before this one are full
    for i, s in enumerate(slot.tolist()):
        for g in range(open_from, len(groups) + 1):
            if g == len(groups):
                groups.append([])
                used.append(set())
            if s not in used[g]:
                groups[g].append(i)
                used[g].add(s)
                break
        while open_from < len(groups) and len(used[open_from]) == size:
            open_from += 1
    return [np.asarray(g, dtype=np.int64) for g in groups]


def _columns(batch: Any) -> Mapping[str, Any]:
    """A dict of columns from a mapping of arrays or a pandas DataFrame (Dask ``map_partitions``)."""
    if isinstance(batch, Mapping):
        return batch
    if hasattr(batch, "columns") and hasattr(batch, "__getitem__"):  # a pandas DataFrame
        return {str(c): batch[c].to_numpy() for c in batch.columns}
    raise TypeError(f"Explainer: a batch is a dict of arrays or a DataFrame, got {type(batch).__name__}")


def require_pandas(what: str) -> Any:
    from ._extras import require

    return require("pandas", what)


def _frame(pd: Any, out: Mapping[str, np.ndarray], like: Any) -> Any:
    """A DataFrame from the result columns (maps as one array per row), with the index of ``like``."""
    data: dict[str, Any] = {}
    for name, values in out.items():
        arr = np.asarray(values)
        if arr.ndim > 1:
            col = np.empty(len(arr), dtype=object)
            for i in range(len(arr)):
                col[i] = arr[i]
            data[name] = pd.Series(col, dtype=object)
        elif arr.dtype.kind in "USO":
            data[name] = pd.Series(arr.astype(str))
        else:
            data[name] = pd.Series(arr)
    df = pd.DataFrame(data)
    if like is not None:
        df.index = like.index
    return df


def _column(values: list[Any]) -> np.ndarray:
    """A list of per-record values as a column: stacked arrays, or an object/str/number array."""
    if values and isinstance(values[0], np.ndarray):
        return _stack(values, "records")
    return np.asarray(values)


def _stack(samples: Any, key: str) -> np.ndarray:
    """The samples as one array: an ndarray as is, an object array or list of per-sample arrays stacked."""
    arr = samples if isinstance(samples, np.ndarray) and samples.dtype != object else None
    if arr is None:
        try:
            arr = np.stack([np.asarray(s) for s in samples])
        except ValueError as err:
            raise ValueError(f"Explainer: the samples of column '{key}' differ in shape ({err})") from None
    if arr.ndim < 2:
        raise ValueError(
            f"Explainer: column '{key}' must hold a batch of samples, got shape {list(arr.shape)}"
        )
    return arr


def _id_range(ids: np.ndarray) -> tuple[int, int]:
    if ids.dtype.kind not in "iu":
        raise ValueError(f"Explainer: writing to a store needs integer ids, got dtype {ids.dtype}")
    start, stop = int(ids[0]), int(ids[-1]) + 1
    if not np.array_equal(ids, np.arange(start, stop)):
        raise ValueError(
            "Explainer: writing to a store needs contiguous ids in each batch (a shard is named by its id range); "
            f"got ids from {start} to {stop - 1} that are not consecutive"
        )
    return start, stop
