"""Run the Python importer (dtd.onnx.import_model) and the C++ one (dtd._core._import_onnx) on the same model and
require the same result: the same ModelSpec (input, output, layers with kind, name, inputs, output, ints, floats, and
weights bit for bit), or the same exception class with the same message.

A model the C++ importer does not cover yet is refused by it with an UnsupportedModelError that says so
(:data:`NOT_PORTED`); :func:`compare` reports those as ``"not ported"`` instead of failing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx

import spec_digest
from dtd import _core
from dtd.errors import ModelLoadError
from dtd.limits import Limits
from spec_digest import spec_view

try:
    from dtd.onnx import import_model
except ImportError:  # the Python importer is gone: the C++ importer is checked against the record it left
    import_model = None

#: The text of the C++ importer's refusal for what it does not convert yet (cpp/src/import/context.cpp).
NOT_PORTED = "is not supported by the C++ importer yet"
#: How both importers begin the message of a file or bytes that do not decode; what follows is the decoder's own
#: account (protobuf's for the Python importer, the C++ reader's, which names the field and byte offset).
_DECODE_PREFIXES = ("cannot parse the ONNX model bytes: ", "cannot load ONNX model ")


#: The C++ importer's refusal of the last model :func:`compare` reported as ``"not ported"`` (for the log).
last_not_ported: list[str] = []


def _decode_error(message: str) -> str | None:
    """The common part of a decode error's message (up to the decoder's account), or None for another error."""
    if message.startswith(_DECODE_PREFIXES[0]):
        return _DECODE_PREFIXES[0]
    if message.startswith(_DECODE_PREFIXES[1]) and "): " in message:
        return message[: message.index("): ") + 3]
    return None


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    out = [f"{key}: {a[key]!r} != {b[key]!r}" for key in a if key != "layers" and a[key] != b[key]]
    if len(a["layers"]) != len(b["layers"]):
        names = ([x["name"] for x in a["layers"]], [x["name"] for x in b["layers"]])
        return [*out, f"layers: {names[0]} != {names[1]}"]
    for x, y in zip(a["layers"], b["layers"], strict=True):
        for key in x:
            if x[key] == y[key]:
                continue
            if key == "weights" and set(x[key]) == set(y[key]):
                for name in x[key]:
                    if x[key][name] != y[key][name]:
                        px = np.frombuffer(x[key][name][2]) if x[key][name][0] == "float64" else None
                        py = np.frombuffer(y[key][name][2]) if y[key][name][0] == "float64" else None
                        delta = (
                            float(np.max(np.abs(px - py)))
                            if px is not None and py is not None and px.shape == py.shape
                            else None
                        )
                        out.append(f"layer {x['name']!r} weight {name!r} differs (max |diff| {delta})")
            else:
                out.append(f"layer {x['name']!r} {key}: {x[key]!r} != {y[key]!r}")
    return out


def _compare(
    src: bytes | str | os.PathLike[str] | onnx.ModelProto,
    limits: Limits | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> str:
    """Import ``src`` with both importers; returns ``"same"``, ``"same error"``, ``"decode error"`` (both refuse
    it; the C++ reader while decoding, with its own account after the common beginning) or ``"not ported"``.

    Raises
    ------
    AssertionError
        When the importers disagree (naming what differs).
    """
    if isinstance(src, onnx.ModelProto):
        src = src.SerializeToString()
    if isinstance(src, os.PathLike):
        src = str(src)
    py_spec = cpp_spec = None
    py_error: ModelLoadError | None = None
    cpp_error: ModelLoadError | None = None
    try:
        py_spec = import_model(src, limits=limits, base_dir=base_dir).spec
    except ModelLoadError as exc:
        py_error = exc
    try:
        cpp_spec = _core._import_onnx(
            src, base_dir=None if base_dir is None else str(Path(base_dir)), limits=limits
        )["spec"]
    except ModelLoadError as exc:
        cpp_error = exc
    if cpp_error is not None and NOT_PORTED in str(cpp_error):
        last_not_ported[:] = [str(cpp_error)]
        return "not ported"
    if py_error is not None or cpp_error is not None:
        assert py_error is not None and cpp_error is not None, (
            f"only one importer failed: Python {py_error!r}, C++ {cpp_error!r}"
        )
        cpp_decode = _decode_error(str(cpp_error))
        if cpp_decode is not None and type(py_error) is type(cpp_error):
            # The C++ reader checks tensors, nesting and wire types as it decodes: such a file is refused by it at
            # decode time, by the Python importer at decode time too or later, in other words.
            if _decode_error(str(py_error)) not in (None, cpp_decode):
                raise AssertionError(f"different decode errors: Python {py_error}; C++ {cpp_error}")
            return "decode error"
        assert (type(py_error), str(py_error)) == (type(cpp_error), str(cpp_error)), (
            f"different errors:\n  Python {type(py_error).__name__}: {py_error}\n"
            f"  C++    {type(cpp_error).__name__}: {cpp_error}"
        )
        return "same error"
    a, b = spec_view(py_spec), spec_view(cpp_spec)
    problems = _differences(a, b)
    assert not problems, "the importers disagree:\n  " + "\n  ".join(problems)
    return "same"


def _cpp_facts(src: Any, limits: Any, base_dir: Any) -> dict[str, Any]:
    return _core._import_onnx(  # type: ignore[no-any-return]
        src, base_dir=None if base_dir is None else str(Path(base_dir)), limits=limits
    )


def compare(
    src: str | os.PathLike[str] | bytes | onnx.ModelProto,
    limits: Limits | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> str:
    """Import ``src`` with both importers (see :func:`_compare` for what is returned and raised); in record mode
    (``DTD_IMPORT_GOLDEN=record``) an agreed result goes to the record. Once the Python importer is deleted, the
    C++ importer's result must be the recorded one (``"recorded"``; an AssertionError if it differs or is not in the
    record)."""
    if isinstance(src, onnx.ModelProto):
        src = src.SerializeToString()
    if isinstance(src, os.PathLike):
        src = str(src)
    key = spec_digest.model_key(src, limits, base_dir)
    digest = spec_digest.run_digest(_cpp_facts, src, limits, base_dir)[0]
    if import_model is None:
        spec_digest.check(key, digest, strict=True)
        return "recorded"
    outcome = _compare(src, limits, base_dir)
    if spec_digest.RECORD and key is not None and outcome != "not ported":
        spec_digest.record(key, digest)
    return outcome
