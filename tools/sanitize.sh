#!/usr/bin/env bash
# The C++ tests and the fuzz corpus under AddressSanitizer + UndefinedBehaviorSanitizer (issue 10). Any report is
# fatal (-fno-sanitize-recover=all), so a finding fails the run. Two builds cover both GEMM paths whatever the
# build machine: x86-64-v3 (AVX2 + FMA: dtd's own SGEMM micro-kernel for float32) and x86-64-v2 (Eigen's GEMM for
# everything). The fuzz campaign runs the v3 build of the Python module, loaded with the sanitizer runtimes
# preloaded. Usage: bash tools/sanitize.sh [fuzz cases, default 600]; needs the venv that tools/test.sh made.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/venv.sh
cases=${1:-600}
jobs=$(nproc)
purelib=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

levels=(v2)
if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then levels=(v3 v2); fi
for level in "${levels[@]}"; do
  echo "== C++ tests, ASan + UBSan, -march=x86-64-$level"
  cmake -S . -B "build/sanitize-$level" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDTD_SANITIZE=ON -DDTD_NATIVE=OFF \
    -DCMAKE_CXX_FLAGS="-march=x86-64-$level" -DDTD_BUILD_TESTS=ON -DDTD_BUILD_BENCH=OFF -DDTD_INSTALL=OFF \
    -DPython_EXECUTABLE="$VENV/bin/python" -DCMAKE_PREFIX_PATH="$purelib/cmeel.prefix" >/dev/null
  cmake --build "build/sanitize-$level" -j "$jobs"
  ctest --test-dir "build/sanitize-$level" --output-on-failure
done

level=${levels[0]}
echo "== fuzz campaign ($cases cases) on the Python module built with ASan + UBSan, -march=x86-64-$level"
site=build/sanitize-site
rm -rf "$site"
"$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation --target "$site" \
  -C build-dir="build/sanitize-py-$level" -C cmake.build-type=RelWithDebInfo \
  -C cmake.define.DTD_SANITIZE=ON -C cmake.define.DTD_NATIVE=OFF -C cmake.define.CMAKE_CXX_FLAGS="-march=x86-64-$level" .
runtimes="$(g++ -print-file-name=libasan.so):$(g++ -print-file-name=libubsan.so)"
LD_PRELOAD="$runtimes" PYTHONPATH="$site" "$VENV/bin/python" -c \
  "import dtd, sys; sys.exit(0 if 'sanitize-site' in dtd.__file__ else 'error: not the sanitizer build of dtd')"
# ASan reserves terabytes of address space for its shadow memory, so the harness's RLIMIT_AS cannot apply;
# allocations beyond 3 GiB fail instead (max_allocation_size_mb) and bombs are refused at load anyway.
LD_PRELOAD="$runtimes" PYTHONPATH="$site" ASAN_OPTIONS="$ASAN_OPTIONS:max_allocation_size_mb=3072" \
  "$VENV/bin/python" tools/fuzz.py --cases "$cases" --workers "$jobs" --seed 0 --mem-limit-gib 0 \
  --timeout 120 --out build/fuzz-sanitize
