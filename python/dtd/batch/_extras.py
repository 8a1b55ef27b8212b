"""Optional dependencies of :mod:`dtd.batch`: imported inside the functions that need them, with an ImportError
that names the pip extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

#: pip extra that provides each optional module.
EXTRAS = {
    "zarr": "datasets",
    "pyarrow": "datasets",
    "pyarrow.parquet": "datasets",
    "pyarrow.csv": "datasets",
    "ray": "ray",
    "dask": "dask",
    "dask.array": "dask",
    "distributed": "dask",
    "dask.dataframe": "dask",
    "dask.bag": "dask",
    "pandas": "dask",
    "matplotlib": "plot",
}


def require(module: str, what: str) -> ModuleType:
    """Imports ``module`` or raises ImportError saying which extra provides it and what needed it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        extra = EXTRAS.get(module, module.split(".")[0])
        raise ImportError(
            f"{what} needs the optional package '{module.split('.')[0]}': pip install 'dtd[{extra}]' "
            f"({type(err).__name__}: {err})"
        ) from err
