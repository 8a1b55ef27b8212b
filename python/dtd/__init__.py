"""dtd: Deep Taylor Decomposition for ReLU networks, with a C++ core.

Quickstart::

    import dtd
    model = dtd.load("model.onnx")
    relevance = dtd.explain(model, x, low=0.0, high=1.0)   # z^beta first layer, z+ above

See :func:`dtd.explain`, :mod:`dtd.rules` and the README.
"""

from __future__ import annotations

from . import rules
from ._core import get_num_threads, set_num_threads
from .api import Explanation, LayerRelevance, explain
from .errors import ModelLoadError, UnsupportedModelError
from .loader import load
from .model import LayerInfo, Model
from .sensitivity import sensitivity

__version__ = "0.1.0"

__all__ = [
    "Explanation",
    "LayerInfo",
    "LayerRelevance",
    "Model",
    "ModelLoadError",
    "UnsupportedModelError",
    "__version__",
    "explain",
    "get_num_threads",
    "load",
    "rules",
    "sensitivity",
    "set_num_threads",
]
