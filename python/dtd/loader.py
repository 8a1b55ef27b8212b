"""`dtd.load`: ONNX file -> importer -> ModelSpec -> dtd.Model."""

from __future__ import annotations

import os
from typing import Any

from .errors import ModelLoadError
from .limits import Limits
from .model import Model

__all__ = ["load"]


def load(
    src: str | os.PathLike[str] | bytes | Any,
    *,
    limits: Limits | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> Model:
    """Imports an ONNX model.

    Parameters
    ----------
    src : path, bytes or onnx.ModelProto
        The model file, its serialized bytes, or a parsed ``onnx.ModelProto``.
    limits : dtd.Limits, optional
        Resource limits: the largest constant folded at import, the largest activation per sample and all
        activations together, the node count and the nesting depth of graphs (defaults: ``dtd.Limits()``; see the
        README, "Errors and limits").
    base_dir : path, optional
        The folder of the model's external data files: by default the model file's folder; a model given as
        bytes or ``onnx.ModelProto`` with external data needs it. References are checked (relative, no ``..``,
        inside that folder after resolving symlinks, within the file's size).

    Returns
    -------
    dtd.Model

    Raises
    ------
    dtd.UnsupportedModelError
        An op, attribute or opset dtd does not support (the message names the op and node).
    dtd.ModelLoadError
        A missing, truncated or malformed file, a missing initializer, a weight of the wrong shape, a cycle.
    """
    from .onnx import import_model
    from .onnx.importer import check_declared_shapes

    imported = import_model(src, limits, base_dir)
    try:
        model = Model(
            imported.spec,
            source=imported.source,
            opset=imported.opset,
            merged_batch_output=imported.merged_batch_output,
            reload=lambda: import_model(src, limits, base_dir).spec,
        )
        if imported.declared:
            outputs = [str(layer.output) for layer in imported.spec.layers]
            computed = {
                name: tuple(info.output_shape) for name, info in zip(outputs, model.layers, strict=True)
            }
            check_declared_shapes(imported.declared, computed)
        return model
    except ValueError as err:
        if isinstance(err, ModelLoadError):
            raise
        where = "" if imported.source.startswith("<") else f"{imported.source}: "
        raise ModelLoadError(f"{where}{err}") from err
