"""Digests of import results, for the record of what the Python importer gave before it was deleted
(tests/data/import_golden.json.gz, checked by tests/conftest.py on every model a test loads).

A result is the ModelSpec with the facts dtd.Model keeps (opset, input dtype, merged batch output, declared
shapes), or the exception class and message; a model is keyed by its bytes and how it was loaded.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

#: The tests' temporary folders (pytest's basetemp), which differ from run to run.
_TMP = re.compile(r"/[^\s']*/pytest-of-[^/]+/pytest-\d+/")
#: How dtd's importers begin the message of bytes that do not decode; what follows is the decoder's own account,
#: which differs between protobuf (the Python importer) and dtd's C++ reader: only this much of it is recorded.
DECODE_PREFIXES = ("cannot parse the ONNX model bytes: ", "cannot load ONNX model ")


def spec_view(spec: Any) -> dict[str, Any]:
    """A ModelSpec as plain data; weights as (dtype, shape, bytes), so that equality is bit for bit."""
    layers = []
    for layer in spec.layers:
        weights = {
            key: (str(value.dtype), tuple(value.shape), np.ascontiguousarray(value).tobytes())
            for key, value in layer.weights.items()
        }
        layers.append(
            {
                "name": layer.name,
                "kind": layer.kind.name,
                "inputs": list(layer.inputs),
                "output": layer.output,
                "ints": {k: list(v) for k, v in layer.ints.items()},
                "floats": dict(layer.floats),
                "weights": weights,
            }
        )
    return {
        "input_name": spec.input_name,
        "input_shape": list(spec.input_shape),
        "output": spec.output,
        "max_activation": spec.max_activation,
        "max_total_activation": spec.max_total_activation,
        "layers": layers,
    }


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return hashlib.sha256(value).hexdigest()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return value.hex()
    return value


def result_digest(
    facts: dict[str, Any] | None, error: BaseException | None, places: tuple[str, ...] = ()
) -> str:
    """The digest of an import result: ``facts`` as dtd.loader's importer returns them, or the error raised (its
    message with each of ``places``, the test's own paths, replaced by a placeholder)."""
    if error is not None:
        message = str(error)
        for i, place in enumerate(sorted(places, key=len, reverse=True)):
            message = message.replace(place, f"<place{i}>")
        message = _TMP.sub("<tmp>/", message)
        decode = next((p for p in DECODE_PREFIXES if message.startswith(p)), None)
        if decode == DECODE_PREFIXES[1] and "): " in message:
            message = message[: message.index("): ") + 3]
        elif decode is not None:
            message = decode
        return "error:" + type(error).__name__ + ":" + message
    assert facts is not None
    plain = {
        "spec": spec_view(facts["spec"]),
        "opset": facts["opset"],
        "input_dtype": facts["input_dtype"],
        "merged_batch_output": facts["merged_batch_output"],
        "declared": {k: list(v) for k, v in facts["declared"].items()},
    }
    return hashlib.sha256(json.dumps(_plain(plain), sort_keys=True).encode()).hexdigest()


def _folder_listing(h: Any, folder: Path) -> None:
    """External data: the names, sizes and link targets in the folder it is read from (tests write their own)."""
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return
    for entry in entries[:200]:
        link = _TMP.sub("<tmp>/", os.readlink(entry)) if entry.is_symlink() else ""
        size = entry.stat().st_size if entry.is_file() else -1  # is_file() is False for a dangling link
        h.update(f"{entry.name}:{size}:{link};".encode())


def _has_external_data(data: bytes) -> bool:
    """Whether the model's bytes hold a tensor stored in an external file (True when they do not decode)."""
    import onnx

    try:
        model = onnx.ModelProto.FromString(data)
    except Exception:
        return True
    external = onnx.TensorProto.EXTERNAL
    return any(t.data_location == external for t in onnx.external_data_helper._get_all_tensors(model))


def model_key(src: Any, limits: Any, base_dir: Any) -> str | None:
    """The key of a load: the model's bytes (a file's bytes, or a ModelProto serialized), the file name (it is in
    messages), whether a base folder was given, and the limits; for a model with external data (or one that does
    not decode), also the names, sizes and link targets of the folder its data are read from. None for a source
    that cannot be keyed."""
    h = hashlib.sha256()
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        h.update(data)
        h.update(b"path:" + path.name.encode())
        if _has_external_data(data):
            _folder_listing(h, Path(base_dir) if base_dir is not None else path.parent)
    elif isinstance(src, (bytes, bytearray, memoryview)):
        h.update(b"bytes:" + bytes(src))
        if base_dir is not None and _has_external_data(bytes(src)):
            _folder_listing(h, Path(base_dir))
    elif type(src).__name__ == "ModelProto":
        try:
            h.update(b"proto:" + src.SerializeToString(deterministic=True))
        except Exception:
            return None
    else:
        return None
    h.update(b"base_dir" if base_dir is not None else b"")
    if limits is not None:
        h.update(repr(limits).encode())
    return h.hexdigest()


#: The record: model key -> result digest, as both importers gave it while both existed (made by running the
#: test suite with both and keeping what they agreed on).
GOLDEN_FILE = Path(__file__).resolve().parent / "data" / "import_golden.json.gz"
_golden: dict[str, str] | None = None


def golden() -> dict[str, str]:
    """The record: model key -> result digest."""
    global _golden
    if _golden is None:
        _golden = json.loads(gzip.decompress(GOLDEN_FILE.read_bytes()))
    return _golden


def check(key: str | None, digest: str, strict: bool = False) -> None:
    """Raises AssertionError when the record holds another result for ``key`` (or, ``strict``, none)."""
    if key is None:
        assert not strict, "a model that cannot be keyed"
        return
    expected = golden().get(key)
    if expected is None:
        assert not strict, f"the model is not in the record {GOLDEN_FILE.name} (digest now {digest!r})"
        return
    assert expected == digest, (
        f"the import differs from what the Python importer gave before it was deleted: {expected!r}, now {digest!r}"
    )


def places(src: Any, base_dir: Any) -> tuple[str, ...]:
    """The test's own paths in messages: the base folder, the model file and its folder."""
    out = [str(base_dir)] if base_dir is not None else []
    if isinstance(src, (str, os.PathLike)):
        out += [str(Path(src)), str(Path(src).parent)]
    return tuple(p for p in out if p not in ("", "."))


def run_digest(
    run: Callable[[Any, Any, Any], dict[str, Any]], src: Any, limits: Any, base_dir: Any
) -> tuple[str, BaseException | None, dict[str, Any] | None]:
    """``run(src, limits, base_dir)``'s result digest, with the exception it raised or the facts it returned."""
    try:
        facts = run(src, limits, base_dir)
    except Exception as exc:
        return result_digest(None, exc, places(src, base_dir)), exc, None
    return result_digest(facts, None), None, facts
