"""`dtd.load`: ONNX file -> importer -> ModelSpec -> dtd.Model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import _core
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
    imported = _import(src, limits, base_dir)
    try:
        model = Model(
            imported["spec"],
            source=imported["source"],
            opset=imported["opset"],
            merged_batch_output=imported["merged_batch_output"],
            reload=lambda: _import(src, limits, base_dir)["spec"],
        )
        if imported["declared"]:
            outputs = [str(layer.output) for layer in imported["spec"].layers]
            computed = {
                name: list(info.output_shape) for name, info in zip(outputs, model.layers, strict=True)
            }
            _core._check_declared_shapes(imported["declared"], computed)
        return model
    except ValueError as err:
        if isinstance(err, ModelLoadError):
            raise
        where = "" if imported["source"].startswith("<") else f"{imported['source']}: "
        raise ModelLoadError(f"{where}{err}") from err


def _import(
    src: str | os.PathLike[str] | bytes | Any,
    limits: Limits | None,
    base_dir: str | os.PathLike[str] | None,
) -> dict[str, Any]:
    """The C++ importer's result for ``src``: {'spec', 'opset', 'input_dtype', 'merged_batch_output', 'source',
    'declared'}. Until the C++ importer covers everything the Python one (dtd.onnx) converts, the Python one is the
    default; ``DTD_IMPORTER=cpp`` selects the C++ one."""
    if limits is not None and not isinstance(limits, Limits):
        raise TypeError(f"limits must be a dtd.Limits, got {type(limits).__name__}")
    folder = None if base_dir is None else str(base_dir)
    if os.environ.get("DTD_IMPORTER", "python").strip() != "cpp":
        from .onnx import import_model

        py = import_model(src, limits, base_dir)
        return {
            "spec": py.spec,
            "opset": py.opset,
            "input_dtype": py.input_dtype,
            "merged_batch_output": py.merged_batch_output,
            "source": py.source,
            "declared": py.declared,
        }
    if isinstance(src, (str, os.PathLike)):
        return _core._import_onnx(str(Path(src)), base_dir=folder, limits=limits)
    if isinstance(src, (bytes, bytearray, memoryview)):
        return _core._import_onnx(bytes(src), base_dir=folder, limits=limits)
    if type(src).__name__ == "ModelProto" and hasattr(src, "SerializeToString"):
        try:
            data = src.SerializeToString()
        except Exception as exc:  # protobuf refuses a message over 2 GiB, or one with unset required fields
            raise ModelLoadError(
                f"cannot serialize the onnx.ModelProto: {type(exc).__name__}: {exc}"
            ) from exc
        return _core._import_onnx(data, base_dir=folder, limits=limits, source="<ModelProto>")
    raise TypeError(f"expected a path, bytes or an onnx.ModelProto, got {type(src).__name__}")
