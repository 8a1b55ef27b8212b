"""ONNX importer: turns an ONNX model into the ``ModelSpec`` the C++ core builds a network from.

One converter function per op family lives in :mod:`dtd.onnx.ops`, registered by op type in
:mod:`dtd.onnx.registry`. BatchNormalization and constant Add/Mul are folded into the neighbouring
conv/dense layer, Identity and Dropout are removed. Constant subgraphs and the shape arithmetic of
computed Reshape targets (``x.view(x.size(0), -1)`` exported with a dynamic batch axis) are evaluated at
import by :mod:`dtd.onnx.fold`; Squeeze, Unsqueeze and Transpose of size-1 axes become reshapes, and
ReduceMean over the spatial axes a global average pool.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..errors import ModelLoadError
from ..limits import DEFAULT_LIMITS, Limits
from .graph import MAX_OPSET, MIN_OPSET, SourceLike, read_model
from .importer import INTERNAL_ERRORS, ConvertedGraph, build_spec, convert_graph
from .registry import register, supported_ops

__all__ = [
    "MAX_OPSET",
    "MIN_OPSET",
    "ConvertedGraph",
    "ImportedModel",
    "convert_graph",
    "import_model",
    "register",
    "supported_ops",
]


@dataclass
class ImportedModel:
    """An imported model, ready for ``dtd.Model``.

    Attributes
    ----------
    spec : dtd._core.ModelSpec
        The network description for the C++ core.
    opset : int
        Opset of the default ONNX domain.
    source : str
        The file path, ``"<bytes>"`` or ``"<ModelProto>"``.
    output_shape : tuple of int or None
        Per-sample shape of the ONNX output from shape inference (None when unknown, or when the model has
        a pool with ``ceil_mode=1``, where ONNX shape inference can disagree with onnxruntime). It can
        differ from the network's own output shape for Flatten with axis >= 2, where ONNX folds the extra
        leading axes into the batch axis.
    merged_batch_output : bool
        True when the ONNX output's leading axis merges the batch with per-sample axes (Flatten with axis >= 2
        upstream): the ONNX result is the network's output ``y`` reshaped to ``y.reshape(-1, *y.shape[2:])``.
    input_dtype : str
        Element type of the ONNX input (``"float32"``, ``"float64"``, ...).
    """

    spec: Any
    opset: int
    source: str
    output_shape: tuple[int, ...] | None
    merged_batch_output: bool = False
    input_dtype: str = "float32"
    #: Declared shapes of layer outputs (see :func:`dtd.onnx.importer.check_declared_shapes`).
    declared: dict[str, tuple[int | None, ...]] = field(default_factory=dict)


def import_model(
    src: SourceLike, limits: Limits | None = None, base_dir: str | os.PathLike[str] | None = None
) -> ImportedModel:
    """Import an ONNX model.

    Parameters
    ----------
    src : str, os.PathLike, bytes or onnx.ModelProto
        Path to an ``.onnx`` file, its bytes, or a parsed model (left unmodified).
    limits : dtd.Limits, optional
        Resource limits (default :class:`dtd.Limits()`).

    Returns
    -------
    ImportedModel
        The ``_core.ModelSpec`` and facts about the source model.

    Raises
    ------
    ModelLoadError
        The file is missing, unreadable or malformed, or the graph is inconsistent (missing initializer,
        weight of the wrong shape, cycle, BatchNormalization that cannot be folded). The message names the
        node and, when there is one, the file.
    UnsupportedModelError
        A ``ModelLoadError`` for valid models outside what dtd supports (op, opset, attribute).
    """
    limits = DEFAULT_LIMITS if limits is None else limits
    if not isinstance(limits, Limits):
        raise TypeError(f"limits must be a dtd.Limits, got {type(limits).__name__}")
    model, source = read_model(src, base_dir, limits)
    where = "" if source.startswith("<") else f"{source}: "
    try:
        converted = convert_graph(model, limits, consume=True)
        # The parsed file: its weights are in the drafts now, so it is not held while the spec is built.
        del model
        spec = build_spec(converted, limits, release=True)
    except ModelLoadError as exc:
        if not where:
            raise
        raise type(exc)(f"{where}{exc}") from exc
    except INTERNAL_ERRORS as exc:
        # NumPy or onnx internals on a malformed graph outside any one node's conversion: still dtd's error.
        raise ModelLoadError(f"{where}malformed model: {type(exc).__name__}: {exc}") from exc
    return ImportedModel(
        spec,
        converted.opset,
        source,
        converted.output_shape,
        converted.merged_batch_output,
        converted.input_dtype,
        converted.declared,
    )
