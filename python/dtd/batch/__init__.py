"""Explaining whole datasets: on one machine (worker processes, resumable shards), on Ray or on Dask.

- :class:`Explainer`: a picklable callable holding the configuration; explains a batch (a dict of NumPy
  arrays, as Ray Data hands it) into per-sample scalars and maps. Use it in Ray Data ``map_batches``, Dask
  ``map_blocks``/``map_partitions`` or a Spark ``predict_batch_udf`` (README, "Datasets and clusters").
- :func:`explain_dataset`: the engine of ``dtd explain-dataset`` (shards, worker processes, ``resume``).
- :func:`explain_ray`, :func:`explain_dask`: the same outputs from a Ray Dataset or a Dask array.
- :func:`explain_dataframe`, :func:`explain_bag`: lazily, per partition of a Dask DataFrame or bag
  (``map_partitions`` with :meth:`Explainer.partition` / :meth:`Explainer.records`).
- :class:`MapStore`, :func:`read_index`, :func:`read_maps`: the output folder (maps as .npy shards or Zarr,
  a Parquet index of per-sample scalars).
- :func:`dataset_report`: the dataset-level view of an output folder (per class: contact sheets of the most
  and least relevant examples, the mean map; ``dtd report``).

The core of dtd needs only NumPy; Zarr and pyarrow (``pip install 'dtd[datasets]'``), Ray (``dtd[ray]``) and
Dask (``dtd[dask]``) are imported when a function needs them.
"""

from __future__ import annotations

from .cluster import explain_bag, explain_dask, explain_dataframe, explain_ray
from .explainer import KEEP_MODES, SCALAR_COLUMNS, Explainer
from .report import ClassView, DatasetReport, dataset_report
from .run import DatasetSummary, explain_dataset, summarize
from .sources import ArraySource, ImageSource, open_source
from .store import FORMATS, MapStore, read_index, read_maps

__all__ = [
    "FORMATS",
    "KEEP_MODES",
    "SCALAR_COLUMNS",
    "ArraySource",
    "ClassView",
    "DatasetReport",
    "DatasetSummary",
    "Explainer",
    "ImageSource",
    "MapStore",
    "dataset_report",
    "explain_bag",
    "explain_dask",
    "explain_dataframe",
    "explain_dataset",
    "explain_ray",
    "open_source",
    "read_index",
    "read_maps",
    "summarize",
]
