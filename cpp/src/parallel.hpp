// OpenMP helpers (private). Work is split into a fixed number of pieces that does not depend on the thread
// count, so results are bit-identical whatever OMP_NUM_THREADS is.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <vector>

namespace dtd::detail {

/// Calls f(i) for i in [0, n), in parallel when `parallel` is true and we are not already inside a parallel
/// region. An exception thrown by f is captured and rethrown on the calling thread after the loop.
template <class F>
void parallel_for(int64_t n, F&& f, bool parallel = true) {
  if (n <= 0) return;
  if (!parallel || n == 1 || omp_in_parallel() || omp_get_max_threads() == 1) {
    for (int64_t i = 0; i < n; ++i) f(i);
    return;
  }
  std::exception_ptr error;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    try {
      f(i);
    } catch (...) {
#pragma omp critical(dtd_parallel_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

/// Work (multiply-adds, or elements moved) below which a loop stays on the calling thread: waking sleeping workers
/// for a parallel region costs tens of microseconds (more in a VM), as much as this much work.
constexpr int64_t kParallelWork = int64_t{1} << 20;

/// Whether n equal pieces of work keep every thread busy when run in parallel one per thread (a multiple of the
/// thread count, or at least twice as many).
inline bool share_evenly(int64_t n) {
  const int64_t threads = omp_get_max_threads();
  return threads > 1 && n >= threads && (n % threads == 0 || n >= 2 * threads);
}

/// [0, n) cut into `parts` pieces of whole quanta (the last piece ends at n), spread as evenly as the quanta allow:
/// piece t is [begin(t), begin(t + 1)). `parts` is a multiple of the thread count (1 inside a parallel region),
/// chosen so that pieces are about `width` long: run by parallel_for's static schedule, every thread then gets an
/// equal share. The bounds follow the thread count, so only work whose results do not depend on where pieces fall
/// may use it (dtd's GEMM kernel, gemm.hpp).
struct EvenSplit {
  int64_t n = 0, quantum = 1, quanta = 0, parts = 0;
  int64_t begin(int64_t t) const { return std::min(n, t * quanta / parts * quantum); }
};

inline EvenSplit even_split(int64_t n, int64_t width, int64_t quantum) {
  const int64_t threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  EvenSplit s;
  s.n = n, s.quantum = quantum, s.quanta = (n + quantum - 1) / quantum;
  s.parts = std::max<int64_t>(1, std::min(s.quanta, (n + width * threads - 1) / (width * threads) * threads));
  return s;
}

/// f(i0, i1) over [0, n) in fixed blocks of elements, the blocks in parallel from kParallelElements on: for
/// elementwise loops over activations (each element's result is independent of the blocking and of the threads).
/// Below that, waking a sleeping worker costs more than the shared pass saves: about 60 us per parallel region in a
/// VM with passive waiting (LeNet's explanation at batch 1, 6 regions: 1.02 ms with OMP_WAIT_POLICY=PASSIVE, 0.67 ms
/// active, bench/RESULTS.md 2026-12-04).
constexpr int64_t kElementBlock = int64_t{1} << 16;
constexpr int64_t kParallelElements = int64_t{1} << 19;
template <class F>
void parallel_blocks(int64_t n, F&& f) {
  const int64_t blocks = (n + kElementBlock - 1) / kElementBlock;
  parallel_for(
      blocks, [&](int64_t b) { f(b * kElementBlock, std::min(n, (b + 1) * kElementBlock)); }, n >= kParallelElements);
}

/// Whether any of x[0, n) is negative (blocks scanned in parallel).
template <class T>
bool any_negative(const T* x, int64_t n) {
  std::vector<char> found(static_cast<size_t>(n / kElementBlock + 1), 0);
  parallel_blocks(n, [&](int64_t i0, int64_t i1) {
    found[static_cast<size_t>(i0 / kElementBlock)] = std::any_of(x + i0, x + i1, [](T v) { return v < T(0); });
  });
  return std::find(found.begin(), found.end(), 1) != found.end();
}

/// A per-thread scratch buffer that grows and is reused across calls (no allocation in steady state).
template <class T, int Slot>
T* scratch(size_t count) {
  thread_local std::vector<T> buffer;
  if (buffer.size() < count) buffer.resize(count);
  return buffer.data();
}

}  // namespace dtd::detail
