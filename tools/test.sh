#!/usr/bin/env bash
# The whole test suite on a fresh machine (python3, g++, cmake): creates a virtualenv, builds and installs dtd
# with its test extras and the optional ones (datasets, dask, ray, plot), then runs the linters (ruff, mypy,
# clang-format), the C++ tests, the Python tests, bounded fuzz campaigns (dtd.load onward, the C++ ONNX reader, libFuzzer
# on the reader where Clang is) and (in CI) the sanitizer build.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/venv.sh
echo "== building and installing dtd (C++ core + Python package: the portable build, variants v2, v3 and v4)"
# Warnings are errors in every variant; the tests force each variant this CPU runs (tests/test_variants.py).
"$VENV/bin/python" -m pip install -q ".[test,datasets,dask,ray,plot]" -Ccmake.define.DTD_WERROR=ON

echo "== lint: ruff, mypy, clang-format"
"$VENV/bin/ruff" check python tests bench tools examples
"$VENV/bin/ruff" format --check python tests bench tools examples
"$VENV/bin/mypy" python/dtd
cpp_files=$(find cpp python/bindings tests/cpp bench examples -name '*.cpp' -o -name '*.hpp' | sort)
"$VENV/bin/clang-format" --dry-run --Werror $cpp_files

echo "== C++ tests (warnings are errors)"
purelib=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
cmake -S . -B build/ctest -DCMAKE_BUILD_TYPE=Release -DDTD_WERROR=ON -DDTD_BUILD_TESTS=ON -DDTD_BUILD_BENCH=ON \
  -DPython_EXECUTABLE="$VENV/bin/python" -DCMAKE_PREFIX_PATH="$purelib/cmeel.prefix" >/dev/null
cmake --build build/ctest -j "$(nproc)"
ctest --test-dir build/ctest --output-on-failure

echo "== ONNX backend node tests (fetched once into build/onnx-node-tests)"
if ! "$VENV/bin/python" tools/onnx_node_tests.py; then
  # Without PyPI tests/test_onnx_node.py skips (and says so); CI has PyPI and must run them.
  if [ -n "${CI:-}" ]; then exit 1; fi
  echo "warning: no ONNX node tests; tests/test_onnx_node.py will be skipped" >&2
fi

# tests/test_variants.py runs the v2 variant on qemu's Nehalem CPU model (no AVX) and skips that without qemu-user.
# CI installs it (Debian/Ubuntu, as root; about 1-2 minutes, mostly apt-get update); elsewhere it is optional.
if [ -n "${CI:-}" ] && [ "$(id -u)" = 0 ] && ! command -v qemu-x86_64 >/dev/null && command -v apt-get >/dev/null; then
  echo "== installing qemu-user (for tests/test_variants.py)"
  qemu_start=$(date +%s)
  if ! { apt-get update -qq && apt-get install -y -qq qemu-user >/dev/null; }; then
    echo "warning: could not install qemu-user; the qemu test will be skipped" >&2
  fi
  echo "   took $(($(date +%s) - qemu_start)) s"
fi

echo "== Python tests"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"

echo "== bounded fuzz campaign (tools/fuzz.py: 3000 deterministic mutations; any defect fails the run)"
"$VENV/bin/python" tools/fuzz.py --cases 3000 --workers "$(nproc)" --seed 0 --out build/fuzz-ci

echo "== bounded fuzz campaign of the C++ ONNX reader (tools/fuzz.py --target reader: 2000 wire-level mutations)"
"$VENV/bin/python" tools/fuzz.py --target reader --cases 2000 --workers "$(nproc)" --seed 0 --out build/fuzz-reader-ci

# libFuzzer on the reader and on the importer, 45 s each, where clang++ is installed; CI (as root, with apt-get) installs Debian's clang for it
# (about 10 s here) and elsewhere tools/libfuzz.sh skips with a message.
echo "== libFuzzer on the C++ ONNX reader and importer (tools/libfuzz.sh)"
if [ -n "${CI:-}" ]; then export DTD_LIBFUZZ_INSTALL=1; fi
bash tools/libfuzz.sh 45

# ASan + UBSan build of the C++ tests and the Python module, both GEMM paths, with a fuzz campaign on each
# (tools/sanitize.sh, a few minutes on 2 cores): always in CI, on request (DTD_SANITIZE=1) elsewhere.
if [ -n "${CI:-}" ] || [ "${DTD_SANITIZE:-0}" = 1 ]; then
  echo "== sanitizers (tools/sanitize.sh)"
  bash tools/sanitize.sh 500
else
  echo "== sanitizers skipped (they run in CI; DTD_SANITIZE=1 bash tools/test.sh runs them here)"
fi
