#!/usr/bin/env bash
# libFuzzer on the C++ ONNX reader and on the C++ importer (issue 11): builds tests/cpp/fuzz (CMake -DDTD_FUZZ=ON,
# Clang with -fsanitize=fuzzer,address,undefined) and runs each target for a bounded time on a seed corpus of every
# committed .onnx (and the shared LeNet models, the ONNX node tests when fetched, and tests/cpp/fuzz/corpus: models whose tensors live in
# weights.bin, the file the target's folder holds). Any crash, leak-free abort, timeout or RSS beyond the
# limit fails the run and leaves its input in build/libfuzz/artifacts/.
# Optional: without clang++ it says so and exits 0. DTD_LIBFUZZ_INSTALL=1 (as root, with apt-get) installs Debian's
# clang first and prints how long that took.
# Usage: bash tools/libfuzz.sh [seconds per target, default 60]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
build=build/libfuzz

find_clang() {
  for c in "${CLANGXX:-}" clang++ clang++-19 clang++-18 clang++-17 clang++-16 clang++-15 clang++-14; do
    if [ -n "$c" ] && command -v "$c" >/dev/null; then command -v "$c"; return 0; fi
  done
  return 1
}

clangxx=$(find_clang || true)
if [ -z "$clangxx" ] && [ "${DTD_LIBFUZZ_INSTALL:-0}" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "== installing clang (apt-get) for the libFuzzer target"
  start=$(date +%s)
  if apt-get update -qq && apt-get install -y -qq --no-install-recommends clang >/dev/null; then
    # libFuzzer is in compiler-rt, which Debian's clang only recommends (libclang-rt-<major>-dev).
    major=$(clang++ --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -1)
    apt-get install -y -qq --no-install-recommends "libclang-rt-$major-dev" >/dev/null || true
  else
    echo "warning: could not install clang" >&2
  fi
  echo "   took $(($(date +%s) - start)) s"
  clangxx=$(find_clang || true)
fi
if [ -z "$clangxx" ]; then
  echo "== libFuzzer skipped: no clang++ (Debian: apt-get install clang; or CLANGXX=/path/to/clang++)"
  exit 0
fi

echo "== libFuzzer targets of the ONNX reader and importer ($clangxx)"
cmake -S . -B "$build" -DDTD_FUZZ=ON -DCMAKE_CXX_COMPILER="$clangxx" -DCMAKE_BUILD_TYPE=None >/dev/null
cmake --build "$build" -j "$(nproc)"
if [ ! -x "$build/tests/cpp/fuzz/dtd_fuzz_onnx_reader" ]; then
  echo "== libFuzzer skipped: $clangxx has no libFuzzer (-fsanitize=fuzzer); see the CMake warning above"
  exit 0
fi

# Seeds: a fresh copy of the models (small ones first is libFuzzer's own order); the corpus it grows is kept
# between runs in $build/corpus-<target>.
rm -rf "$build/seeds" && mkdir -p "$build/seeds" "$build/artifacts"
folders=(tests/cpp/fuzz/corpus tests/cpp/fuzz/regressions tests/data build/onnx-node-tests)
dir=$PWD
while [ "$dir" != / ]; do  # the shared models, in the first shared/data above the checkout (as the tests look)
  dir=$(dirname "$dir")
  if [ -d "$dir/shared/data" ]; then folders+=("$dir/shared/data"); break; fi
done
i=0
while IFS= read -r -d '' f; do
  cp "$f" "$build/seeds/$(printf '%05d' "$i")_$(basename "$f")"
  i=$((i + 1))
done < <(find "${folders[@]}" -name '*.onnx' -print0 2>/dev/null)
echo "   $i seed models; running each target for $seconds s"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for target in reader import; do
  fuzzer=$build/tests/cpp/fuzz/dtd_fuzz_onnx_$target
  log=$build/libfuzz-$target.log
  mkdir -p "$build/corpus-$target"
  echo "   -- dtd_fuzz_onnx_$target"
  if ! "$fuzzer" -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$build/artifacts/$target-" "$build/corpus-$target" "$build/seeds" \
    >"$log" 2>&1; then
    tail -n 80 "$log"
    echo "error: libFuzzer found a defect in the ONNX $target; the input is in $build/artifacts/ (full log: $log)" >&2
    ls -l "$build/artifacts" >&2
    exit 1
  fi
  grep -E '^(INFO: Seed|Done|stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb))' \
    "$log" | sed 's/^/   /'
done
