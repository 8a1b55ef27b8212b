// dtd._core: the only translation units that include pybind11. They convert and check, call the core with the
// GIL released, and convert back.
#include <pybind11/pybind11.h>

#include "dtd/error.hpp"

namespace py = pybind11;

void bind_spec(py::module_& m);
void bind_network(py::module_& m);

PYBIND11_MODULE(_core, m) {
  m.doc() = "dtd C++ core: networks built from a ModelSpec, forward passes and relevance rules";
  // dtd::ModelError derives from std::invalid_argument, which pybind11 already maps to ValueError.
  bind_spec(m);
  bind_network(m);
#ifdef _OPENMP
  m.attr("openmp") = true;
#else
  m.attr("openmp") = false;
#endif
}
