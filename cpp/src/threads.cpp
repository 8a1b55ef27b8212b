#include "dtd/threads.hpp"

#include <omp.h>

#include <atomic>

namespace dtd {

namespace {
std::atomic<int> g_threads{0};  // 0: not set, OpenMP's default
}  // namespace

void set_num_threads(int n) {
  g_threads.store(n < 1 ? 1 : n);
  omp_set_num_threads(n < 1 ? 1 : n);
}

int get_num_threads() {
  const int n = g_threads.load();
  return n > 0 ? n : omp_get_max_threads();
}

namespace detail {
void adopt_thread_count() {
  const int n = g_threads.load();
  if (n > 0 && omp_get_max_threads() != n) omp_set_num_threads(n);
}
}  // namespace detail

}  // namespace dtd
