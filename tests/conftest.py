"""Shared pytest setup: the test helpers (builders, reference, ...) import as top-level modules, and the
shared data folder is located once."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))


def _data_dir() -> Path:
    """``$DTD_SHARED_DATA``, else ../shared/data relative to the project root (see the data README), else the
    first ``shared/data`` further up (a git worktree checked out one level deeper)."""
    if os.environ.get("DTD_SHARED_DATA"):
        return Path(os.environ["DTD_SHARED_DATA"])
    default = TESTS_DIR.parent.parent / "shared" / "data"
    if default.is_dir():
        return default
    return next(
        (p / "shared" / "data" for p in TESTS_DIR.parents if (p / "shared" / "data").is_dir()), default
    )


DATA_DIR = _data_dir()
LENET_DIR = DATA_DIR / "lrp_toolbox" / "onnx"
MNIST_FILE = DATA_DIR / "mnist" / "mnist_test.npz"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared test data not found: {path}")
    return path


@pytest.fixture(scope="session")
def lenet_dir() -> Path:
    """Folder with the LRP Toolbox LeNet-5 ONNX files."""
    return _require(LENET_DIR)


@pytest.fixture(scope="session")
def mnist_lenet_inputs() -> np.ndarray:
    """The first 16 MNIST test digits preprocessed for the toolbox LeNet-5: float32 [16, 1, 32, 32].

    ``raw / 127.5 - 1`` in [-1, 1], padded by 2 pixels of value -1 (data README).
    """
    with np.load(_require(MNIST_FILE)) as data:
        images = data["images"][:16].astype(np.float32)
    x = images / 127.5 - 1.0
    x = np.pad(x, ((0, 0), (2, 2), (2, 2)), constant_values=-1.0)
    return np.ascontiguousarray(x[:, None], dtype=np.float32)


def _compare_importers(log: str) -> None:
    """With ``DTD_COMPARE_IMPORTERS=<file.jsonl>``, every model any test hands to dtd.load is also imported by the
    C++ importer and the two results compared (tests/import_compare.py); one JSON line per model goes to the file
    (``result``: same, same error, not ported, or mismatch with the difference). The tests themselves see only the
    Python importer's result. ``python tools/import_coverage.py <file.jsonl>`` sums the file up."""
    import json

    import dtd.onnx
    import import_compare

    original = dtd.onnx.import_model

    def import_model(src, limits=None, base_dir=None):  # type: ignore[no-untyped-def]
        try:
            record: dict[str, object] = {"test": os.environ.get("PYTEST_CURRENT_TEST", "?")}
            try:
                record["result"] = import_compare.compare(src, limits, base_dir)
                if record["result"] == "not ported":
                    record["detail"] = import_compare.last_not_ported[0]
            except AssertionError as exc:
                record["result"], record["detail"] = "mismatch", str(exc)[:2000]
            with open(log, "a", encoding="utf-8") as out:
                out.write(json.dumps(record) + "\n")
        except Exception as exc:  # the comparison must never change what the test sees
            with open(log, "a", encoding="utf-8") as out:
                out.write(json.dumps({"result": "skipped", "detail": f"{type(exc).__name__}: {exc}"}) + "\n")
        return original(src, limits, base_dir)

    dtd.onnx.import_model = import_model


def _golden_importer() -> None:
    """What the Python importer gave, before it was deleted, on every model the tests load: with
    ``DTD_IMPORT_GOLDEN=record`` every load is imported by both importers and, where they agree, the result's digest
    (tests/spec_digest.py) is added to tests/data/import_golden.json.gz; otherwise every load whose model is in
    that file must give the recorded result (an AssertionError in the test if not)."""
    import dtd.loader
    import spec_digest

    original = dtd.loader._import

    def python_import(src, limits, base_dir):  # type: ignore[no-untyped-def]
        os.environ["DTD_IMPORTER"] = "python"
        try:
            return original(src, limits, base_dir)
        finally:
            os.environ["DTD_IMPORTER"] = "cpp"

    def checked(src, limits=None, base_dir=None):  # type: ignore[no-untyped-def]
        key = spec_digest.model_key(src, limits, base_dir)
        digest, exc, facts = spec_digest.run_digest(original, src, limits, base_dir)
        if key is not None and spec_digest.RECORD:
            py_digest = spec_digest.run_digest(python_import, src, limits, base_dir)[0]
            if py_digest == digest:
                spec_digest.record(key, digest)
            else:
                test = os.environ.get("PYTEST_CURRENT_TEST", "?")
                spec_digest.disagreements.append(f"{test}: {py_digest} != {digest}")
        else:
            spec_digest.check(key, digest)
        if exc is not None:
            raise exc
        return facts

    dtd.loader._import = checked
    if spec_digest.RECORD:
        os.environ["DTD_IMPORTER"] = "cpp"


_golden_importer()

if os.environ.get("DTD_COMPARE_IMPORTERS"):
    _compare_importers(os.environ["DTD_COMPARE_IMPORTERS"])
