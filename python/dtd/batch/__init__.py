"""Explaining whole datasets: on one machine (worker processes, resumable shards), on Ray or on Dask.

- :class:`Explainer`: a picklable callable holding the configuration; explains a batch (a dict of NumPy
  arrays, as Ray Data hands it) into per-sample scalars and maps. Use it in Ray Data ``map_batches``, Dask
  ``map_blocks``/``map_partitions`` or a Spark ``predict_batch_udf`` (README, "Datasets and clusters").
- :func:`explain_dataset`: the engine of ``dtd explain-dataset`` (shards, worker processes, ``resume``).
- :func:`explain_ray`, :func:`explain_dask`: the same outputs from a Ray Dataset or a Dask array.
- :class:`MapStore`, :func:`read_index`, :func:`read_maps`: the output folder (maps as .npy shards or Zarr,
  a Parquet index of per-sample scalars).

The core of dtd needs only NumPy; Zarr and pyarrow (``pip install 'dtd[datasets]'``), Ray (``dtd[ray]``) and
Dask (``dtd[dask]``) are imported when a function needs them.
"""

from __future__ import annotations

from .cluster import explain_dask, explain_ray
from .explainer import KEEP_MODES, SCALAR_COLUMNS, Explainer
from .run import DatasetSummary, explain_dataset, summarize
from .sources import ArraySource, ImageSource, open_source
from .store import FORMATS, MapStore, read_index, read_maps

__all__ = [
    "FORMATS",
    "KEEP_MODES",
    "SCALAR_COLUMNS",
    "ArraySource",
    "DatasetSummary",
    "Explainer",
    "ImageSource",
    "MapStore",
    "explain_dask",
    "explain_dataset",
    "explain_ray",
    "open_source",
    "read_index",
    "read_maps",
    "summarize",
]
