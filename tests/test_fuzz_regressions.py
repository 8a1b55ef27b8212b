"""Inputs the fuzzers once crashed on (tests/cpp/fuzz/regressions, also libFuzzer seeds in tools/libfuzz.sh): each
loads, or is refused with a typed error naming the file, in a child process, so that a crash fails one test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REGRESSIONS = sorted((Path(__file__).resolve().parent / "cpp" / "fuzz" / "regressions").glob("*.onnx"))

CHILD = """
import sys
import dtd
try:
    dtd.load(sys.argv[1])
except (dtd.ModelLoadError, dtd.UnsupportedModelError) as e:
    print(type(e).__name__ + ": " + str(e))
else:
    print("loaded")
"""


def test_there_are_regressions() -> None:
    assert REGRESSIONS


@pytest.mark.parametrize("path", REGRESSIONS, ids=[p.stem for p in REGRESSIONS])
def test_regression_ends_in_a_typed_error_or_a_model(path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, f"{path.name}: exit {proc.returncode}\n{proc.stderr[-2000:]}"
    out = proc.stdout.strip()
    assert out == "loaded" or (
        out.split(":")[0] in ("ModelLoadError", "UnsupportedModelError") and path.name in out
    ), out
