"""Check the importer (dtd._core._import_onnx, cpp/src/import) on a model against the record of what the Python
importer gave on it before that importer was deleted (tests/data/import_golden.json.gz, tests/spec_digest.py).

The record was made by running both importers on every model the test suite loads and keeping the digest of each
result on which they agreed exactly: the ModelSpec (layers with kind, name, inputs, output, ints, floats, weights
bit for bit), the opset, input dtype, merged batch output and declared shapes, or the exception class and message
(for a file neither could decode, only the common beginning of the message: each decoder words its own account).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import onnx

import spec_digest
from dtd import _core
from dtd.limits import Limits


def _facts(src: Any, limits: Any, base_dir: Any) -> dict[str, Any]:
    return _core._import_onnx(  # type: ignore[no-any-return]
        src, base_dir=None if base_dir is None else str(Path(base_dir)), limits=limits
    )


def compare(
    src: str | os.PathLike[str] | bytes | onnx.ModelProto,
    limits: Limits | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> str:
    """Import ``src`` and require the recorded result; returns what it is: ``"same"`` (the recorded ModelSpec),
    ``"same error"`` (the recorded exception class and message) or ``"decode error"`` (both importers refused the
    bytes while decoding them).

    Raises
    ------
    AssertionError
        When the result differs from the record, or the model is not in it.
    """
    if isinstance(src, onnx.ModelProto):
        src = src.SerializeToString()
    if isinstance(src, os.PathLike):
        src = str(src)
    key = spec_digest.model_key(src, limits, base_dir)
    digest = spec_digest.run_digest(_facts, src, limits, base_dir)[0]
    spec_digest.check(key, digest, strict=True)
    if not digest.startswith("error:"):
        return "same"
    message = digest.split(":", 2)[2]
    return "decode error" if message.startswith(spec_digest.DECODE_PREFIXES) else "same error"
