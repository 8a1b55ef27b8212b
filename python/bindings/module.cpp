// dtd._core: the only translation units that include pybind11. They convert and check, call the core with the
// GIL released, and convert back.
#include <omp.h>
#include <pybind11/pybind11.h>

#include "dtd/error.hpp"
#include "dtd/tensor.hpp"

namespace py = pybind11;

void bind_spec(py::module_& m);
void bind_network(py::module_& m);

PYBIND11_MODULE(_core, m) {
  m.doc() = "dtd C++ core: networks built from a ModelSpec, forward passes and relevance rules";
  // dtd::ModelError derives from std::invalid_argument, which pybind11 already maps to ValueError.
  bind_spec(m);
  bind_network(m);
  m.def(
      "set_num_threads", [](int n) { omp_set_num_threads(n < 1 ? 1 : n); }, py::arg("n"),
      "Sets the number of OpenMP threads dtd uses (results do not depend on it).");
  m.def("release_cached_memory", &dtd::release_cached_memory,
        "Returns the tensor buffers cached for reuse to the system; returns the bytes released.");
  m.def("get_num_threads", [] { return omp_get_max_threads(); }, "The number of OpenMP threads dtd uses.");
#ifdef _OPENMP
  m.attr("openmp") = true;
#else
  m.attr("openmp") = false;
#endif
}
