"""External tensor data (models over 2 GB, and what the torch dynamo exporter writes by default), read safely.

A tensor stored outside the model names a file ``location`` (relative to the model's folder), an ``offset`` and a
``length``. dtd reads it itself instead of letting ``onnx`` resolve it, so that a file cannot make it read outside
the model's folder: the location must be relative, without NUL, without a ``..`` component, and its canonical path
(symlinks resolved) must lie inside the folder; ``offset + length`` must lie inside the file, and ``length`` must be
the tensor's element count times its element size; the tensors reading one file take at most its size in all (so
that a small model naming the same bytes a thousand times cannot ask for gigabytes). A model given as bytes or as an
``onnx.ModelProto`` has no folder: its external tensors need an explicit ``base_dir`` (never the process's working
directory).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath

import onnx

from ..errors import ModelLoadError


def _tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _tensors(attr.g)
            for sub in attr.graphs:
                yield from _tensors(sub)


def external_tensors(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    """The tensors of ``model`` whose data lies in an external file."""
    return [t for t in _tensors(model.graph) if t.data_location == onnx.TensorProto.EXTERNAL]


def _text(tensor: onnx.TensorProto, value: object) -> str:
    """A string field of the external data description (protobuf hands invalid UTF-8 over as bytes)."""
    if not isinstance(value, str):
        raise ModelLoadError(
            f"initializer '{tensor.name}': its external data description is not valid UTF-8 text"
        )
    return value


def _checked_location(tensor: onnx.TensorProto, location: str, base: Path) -> Path:
    what = f"initializer '{tensor.name}': external data location {location!r}"
    if not location or "\0" in location:
        raise ModelLoadError(f"{what} is empty or holds a NUL character")
    for pure in (PurePosixPath(location), PureWindowsPath(location)):
        if pure.is_absolute() or pure.drive or pure.root or ".." in pure.parts:
            raise ModelLoadError(f"{what} must be a relative path inside the model's folder, without '..'")
    full = (base / location).resolve()
    if not full.is_relative_to(base):
        raise ModelLoadError(f"{what} resolves to {str(full)!r}, outside the model's folder {str(base)!r}")
    if not full.is_file():
        raise ModelLoadError(f"{what}: no such file in {str(base)!r}")
    return full


def load_external_data(model: onnx.ModelProto, base_dir: str | os.PathLike[str] | None, source: str) -> None:
    """Read every external tensor of ``model`` into its ``raw_data`` (in place), checking it as described above.

    Raises
    ------
    ModelLoadError
        For an unsafe or inconsistent reference, or external data without a base folder.
    """
    tensors = external_tensors(model)
    if not tensors:
        return
    if base_dir is None:
        raise ModelLoadError(
            f"{source}: initializer '{tensors[0].name}' keeps its data in an external file; a model given as {source} "
            "needs base_dir= (the folder holding that file): dtd never resolves it against the working directory"
        )
    base = Path(base_dir).resolve()
    extents = []
    for tensor in tensors:
        info = {_text(tensor, entry.key): _text(tensor, entry.value) for entry in tensor.external_data}
        path = _checked_location(tensor, info.get("location", ""), base)
        try:
            itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
        except Exception as exc:
            raise ModelLoadError(
                f"initializer '{tensor.name}': external data of element type {tensor.data_type} is not supported"
            ) from exc
        if any(d < 0 for d in tensor.dims):
            raise ModelLoadError(
                f"initializer '{tensor.name}' has dims {list(tensor.dims)} with a negative entry"
            )
        expected = math.prod(tensor.dims) * itemsize
        try:
            offset = int(info.get("offset", "0"))
            length = int(info.get("length", str(expected)))
        except ValueError as exc:
            raise ModelLoadError(
                f"initializer '{tensor.name}': external data offset/length is not an integer"
            ) from exc
        size = path.stat().st_size
        if length != expected:
            raise ModelLoadError(
                f"initializer '{tensor.name}': external data length {length} != {expected} bytes "
                f"({list(tensor.dims)} elements of {itemsize} bytes)"
            )
        if offset < 0 or offset + length > size:
            raise ModelLoadError(
                f"initializer '{tensor.name}': external data [{offset}, {offset + length}) lies outside "
                f"{path.name} ({size} bytes)"
            )
        extents.append((tensor, path, offset, length, size))
    # Each byte of a file is read at most once in all: tensors whose ranges overlap could otherwise make a small model
    # ask for many times the bytes on disk (a thousand initializers naming the same 4 MiB). Checked before any read.
    taken: dict[Path, int] = {}
    for tensor, path, _, length, size in extents:
        taken[path] = taken.get(path, 0) + length
        if taken[path] > size:
            raise ModelLoadError(
                f"{source}: initializer '{tensor.name}': the external tensors in {path.name} take more than its "
                f"{size} bytes in all (ranges that overlap)"
            )
    for tensor, path, offset, length, _ in extents:
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read(length)
        tensor.raw_data = data
        tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]
