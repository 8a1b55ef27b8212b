// The number of OpenMP threads dtd uses, process-wide.
#pragma once

namespace dtd {

/// Sets the number of threads every later dtd call uses, in every calling thread (n < 1 counts as 1). OpenMP's own
/// omp_set_num_threads() applies to the calling thread only (an ICV per thread): a thread started later would still
/// use OMP_NUM_THREADS or all cores; dtd's entry points (Network::trace, forward, prepare, relevance) adopt this
/// count in whatever thread calls them. Results do not depend on it.
void set_num_threads(int n);
/// The count set by set_num_threads(), or OpenMP's default for the calling thread when none was set.
int get_num_threads();

namespace detail {
/// Applies the process-wide count to the calling thread (cheap; called at each public entry point).
void adopt_thread_count();
}  // namespace detail

}  // namespace dtd
