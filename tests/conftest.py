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


def _golden_importer() -> None:
    """Every load whose model is in tests/data/import_golden.json.gz (what the Python importer gave, recorded while
    both importers existed and agreed; tests/spec_digest.py) must give the recorded result: an AssertionError in the
    test if not."""
    import dtd.loader
    import spec_digest

    original = dtd.loader._import

    def checked(src, limits=None, base_dir=None):  # type: ignore[no-untyped-def]
        key = spec_digest.model_key(src, limits, base_dir)
        digest, exc, facts = spec_digest.run_digest(original, src, limits, base_dir)
        spec_digest.check(key, digest)
        if exc is not None:
            raise exc
        return facts

    dtd.loader._import = checked


_golden_importer()
