"""dtd: Deep Taylor Decomposition for ReLU networks, with a C++ core.

Quickstart::

    import dtd
    model = dtd.load("model.onnx")
    relevance = dtd.explain(model, x, low=0.0, high=1.0)   # z^beta first layer, z+ above

See :func:`dtd.explain`, :mod:`dtd.rules` and the README.
"""

from __future__ import annotations

from . import evaluate, rules, viz
from ._core import (  # the compiled core: the variant for this CPU (see _variant.py)
    cached_memory,
    get_num_threads,
    release_cached_memory,
    set_cached_memory_limit,
    set_num_threads,
)
from ._variant import build_info
from .api import Explanation, LayerRelevance, explain
from .errors import ModelLoadError, UnsupportedModelError
from .examples import Example, load_example
from .limits import Limits
from .loader import load
from .model import LayerInfo, Model
from .sensitivity import sensitivity

__version__ = "0.1.0"

__all__ = [
    "Example",
    "Explanation",
    "LayerInfo",
    "LayerRelevance",
    "Limits",
    "Model",
    "ModelLoadError",
    "UnsupportedModelError",
    "__version__",
    "build_info",
    "cached_memory",
    "evaluate",
    "explain",
    "get_num_threads",
    "load",
    "load_example",
    "release_cached_memory",
    "rules",
    "sensitivity",
    "set_cached_memory_limit",
    "set_num_threads",
    "viz",
]
