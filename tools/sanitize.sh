#!/usr/bin/env bash
# The C++ tests and a fuzz campaign under AddressSanitizer + UndefinedBehaviorSanitizer (issue 10). Every report
# is fatal (-fno-sanitize-recover=all), so a finding fails the run. One build (-O1, x86-64-v3 where the CPU has AVX2
# + FMA, so that dtd's own SGEMM micro-kernel is in it, else x86-64-v2) holds the C++ tests and the Python module;
# each runs twice: with the micro-kernel and with DTD_SGEMM=0 (Eigen's GEMM everywhere), so both GEMM paths are
# covered. Then the C++ ONNX reader's campaign (tools/fuzz.py --target reader) on the same module, once (the reader
# has no GEMM). Usage: bash tools/sanitize.sh [fuzz cases per GEMM path, default 500] [reader cases, default 2000];
# needs tools/test.sh's venv.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/venv.sh
cases=${1:-500}
reader_cases=${2:-2000}
jobs=$(nproc)
purelib=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

level=v2
if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then level=v3; fi
build=build/sanitize
echo "== ASan + UBSan build (-O1 -march=x86-64-$level): C++ tests and the Python module"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS="-O1 -g1 -march=x86-64-$level" -DDTD_SANITIZE=ON \
  -DDTD_NATIVE=OFF -DDTD_PYTHON_VARIANTS=baseline -DDTD_BUILD_TESTS=ON -DDTD_BUILD_BENCH=OFF -DDTD_BUILD_PYTHON=ON \
  -DDTD_INSTALL=OFF \
  -DPython_EXECUTABLE="$VENV/bin/python" -DCMAKE_PREFIX_PATH="$purelib/cmeel.prefix" >/dev/null
cmake --build "$build" -j "$jobs"
for sgemm in 1 0; do
  echo "== C++ tests under ASan + UBSan, DTD_SGEMM=$sgemm"
  DTD_SGEMM=$sgemm ctest --test-dir "$build" --output-on-failure
done

# The package as installed, with the sanitized module in it (one variant: the core is compiled once).
site=$build/site
rm -rf "$site" && mkdir -p "$site"
cp -r python/dtd "$site/dtd"
cp "$build"/python/_core_baseline*.so "$site/dtd/"
# The "baseline" variant here is dtd::core's own build: the -march above, for the tests and the module alike.
export DTD_CPU=baseline
runtimes="$(g++ -print-file-name=libasan.so):$(g++ -print-file-name=libubsan.so)"
LD_PRELOAD="$runtimes" PYTHONPATH="$site" "$VENV/bin/python" -c \
  "import dtd, sys; sys.exit(0 if '$site' in dtd.__file__ else 'error: not the sanitizer build of dtd')"
for sgemm in 1 0; do
  echo "== fuzz campaign ($cases cases) on the sanitized Python module, DTD_SGEMM=$sgemm"
  # ASan reserves terabytes of address space for its shadow memory, so the harness's RLIMIT_AS cannot apply:
  # allocations beyond 3 GiB fail instead (max_allocation_size_mb); bombs are refused at load anyway.
  DTD_SGEMM=$sgemm LD_PRELOAD="$runtimes" PYTHONPATH="$site" ASAN_OPTIONS="$ASAN_OPTIONS:max_allocation_size_mb=3072" \
    "$VENV/bin/python" tools/fuzz.py --cases "$cases" --workers "$jobs" --seed "$((1 - sgemm))" --mem-limit-gib 0 \
    --timeout 120 --out "build/fuzz-sanitize-$sgemm"
done
echo "== reader fuzz campaign ($reader_cases cases) on the sanitized Python module"
LD_PRELOAD="$runtimes" PYTHONPATH="$site" ASAN_OPTIONS="$ASAN_OPTIONS:max_allocation_size_mb=3072" \
  "$VENV/bin/python" tools/fuzz.py --target reader --cases "$reader_cases" --workers "$jobs" --seed 2 --mem-limit-gib 0 \
  --timeout 60 --out build/fuzz-reader-sanitize
