#!/usr/bin/env python3
"""Fetch ONNX's backend node tests once into a git-ignored cache (build/onnx-node-tests/node/).

The onnx 1.17.0 wheel is the last one that ships ``onnx/backend/test/data/node`` (one folder per test:
``model.onnx`` and ``test_data_set_0/{input,output}_*.pb``). This script downloads that wheel with pip (no
dependencies, one fixed platform: the test data are the same in every wheel), checks its SHA-256, and
extracts only the node tests. tests/test_onnx_node.py runs them; tools/test.sh calls this script first.

Idempotent and quick once done: a marker file records the completed extraction.

Usage: python tools/onnx_node_tests.py [--cache DIR] [--quiet]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

VERSION = "1.17.0"
WHEEL = f"onnx-{VERSION}-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
SHA256 = "4a183c6178be001bf398260e5ac2c927dc43e7746e8638d6c05c20e321f8c949"
PREFIX = "onnx/backend/test/data/node/"
DEFAULT_CACHE = Path(__file__).resolve().parent.parent / "build" / "onnx-node-tests"
MARKER = ".complete"


def _download(dest: Path) -> Path:
    """Download the wheel into ``dest`` with pip and return its path."""
    cmd = [
        sys.executable, "-m", "pip", "download", f"onnx=={VERSION}", "--no-deps", "--only-binary=:all:",
        "--python-version", "3.11", "--platform", "manylinux_2_17_x86_64", "--implementation", "cp",
        "--quiet", "-d", str(dest),
    ]  # fmt: skip
    subprocess.run(cmd, check=True)
    wheel = dest / WHEEL
    if not wheel.is_file():
        found = ", ".join(p.name for p in dest.iterdir()) or "nothing"
        raise RuntimeError(f"pip downloaded {found}, expected {WHEEL}")
    return wheel


def _check_hash(wheel: Path) -> None:
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != SHA256:
        raise RuntimeError(f"{wheel.name}: SHA-256 {digest}, expected {SHA256}")


def _extract(wheel: Path, cache: Path) -> int:
    """Extract the node tests into ``cache/node`` (replacing a partial earlier attempt); return the count."""
    target = cache / "node"
    staging = cache / "node.partial"
    shutil.rmtree(staging, ignore_errors=True)
    count = 0
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            if not info.filename.startswith(PREFIX) or info.is_dir():
                continue
            relative = Path(info.filename[len(PREFIX) :])
            if relative.is_absolute() or ".." in relative.parts:
                raise RuntimeError(f"unexpected path in the wheel: {info.filename}")
            out = staging / relative
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(archive.read(info))
            count += 1
    if count == 0:
        raise RuntimeError(f"{wheel.name} has no {PREFIX}")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return count


def fetch(cache: Path, quiet: bool = False) -> Path:
    """Make sure ``cache/node`` holds the node tests; return that folder."""
    marker = cache / MARKER
    node_dir = cache / "node"
    if marker.is_file() and marker.read_text().strip() == VERSION and node_dir.is_dir():
        return node_dir
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        wheel = _download(Path(tmp))
        _check_hash(wheel)
        count = _extract(wheel, cache)
    marker.write_text(VERSION + "\n")
    if not quiet:
        tests = sum(1 for p in node_dir.iterdir() if p.is_dir())
        print(f"onnx {VERSION} node tests: {tests} tests ({count} files) in {node_dir}")
    return node_dir


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"cache folder ({DEFAULT_CACHE})")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    try:
        fetch(args.cache, args.quiet)
    except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"error: cannot fetch the ONNX node tests: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
