"""Exceptions raised by dtd."""

from __future__ import annotations

__all__ = ["ModelLoadError", "UnsupportedModelError"]


class ModelLoadError(ValueError):
    """A model file could not be read or built: malformed or truncated file, missing initializer, weight of the
    wrong shape, a cycle in the graph, a BatchNormalization that cannot be folded. The message names the file,
    the node and the reason."""


class UnsupportedModelError(ModelLoadError):
    """The model is valid ONNX but uses an op, attribute or opset that dtd does not support. The message names
    the op type, the node and the supported ops."""
