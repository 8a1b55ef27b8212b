// dtd._core_<variant>: the only translation units that include pybind11. They convert and check, call the core with
// the GIL released, and convert back. CMake compiles them once per variant (python/CMakeLists.txt), each time with
// that variant's instruction-set options and module name; python/dtd/_variant.py loads one of them as dtd._core.
#include <omp.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "dtd/build_info.hpp"
#include "dtd/error.hpp"
#include "dtd/tensor.hpp"
#include "dtd/threads.hpp"

namespace py = pybind11;

void bind_spec(py::module_& m);
void bind_network(py::module_& m);
void bind_onnx(py::module_& m);
void bind_explain(py::module_& m);
void bind_import(py::module_& m);

#ifndef DTD_MODULE_NAME
#error "DTD_MODULE_NAME (the extension's name, _core_<variant>) must be defined by the build"
#endif

PYBIND11_MODULE(DTD_MODULE_NAME, m) {
  m.doc() = "dtd C++ core: networks built from a ModelSpec, forward passes and relevance rules";
  // dtd::ModelError derives from std::invalid_argument, which pybind11 already maps to ValueError.
  bind_spec(m);
  bind_network(m);
  bind_onnx(m);
  bind_explain(m);
  bind_import(m);
  m.def("set_num_threads", &dtd::set_num_threads, py::arg("n"),
        "Sets the number of OpenMP threads dtd uses from now on, in every Python thread (process-wide; results do "
        "not depend on it).");
  m.def("release_cached_memory", &dtd::release_cached_memory,
        "Returns the tensor buffers cached for reuse to the system; returns the bytes released.");
  m.def("get_num_threads", &dtd::get_num_threads,
        "The number of OpenMP threads dtd uses (set_num_threads's count, else OpenMP's default).");
  m.def(
      "_calling_thread_omp_threads", [] { return omp_get_max_threads(); },
      "OpenMP's thread count in the calling thread (for tests of the process-wide setting).");
  m.def("cached_memory", &dtd::cached_memory, "Bytes of freed tensor buffers currently cached for reuse.");
  m.def("set_cached_memory_limit", &dtd::set_cached_memory_limit, py::arg("bytes"),
        "Sets how many bytes of freed tensor buffers dtd keeps for reuse (default 256 MiB; 0 disables the cache) "
        "and releases what is cached above it.");
  m.def(
      "_build_info",
      [] {
        const dtd::BuildInfo info = dtd::build_info();
        py::dict d;
        d["variant"] = info.variant;
        d["arch_options"] = info.arch_options;
        d["compiler"] = info.compiler;
        d["build_type"] = info.build_type;
        d["eigen_version"] = info.eigen_version;
        d["eigen_simd"] = info.eigen_simd;
        d["openmp"] = info.openmp;
        d["own_sgemm"] = info.own_sgemm;
        d["sgemm_kernel"] = info.sgemm_kernel;
        d["instruction_sets"] = info.instruction_sets;
        return d;
      },
      "How this core was compiled (dtd::build_info()): variant, options, compiler, Eigen, OpenMP; see "
      "dtd.build_info().");
#ifdef _OPENMP
  m.attr("openmp") = true;
#else
  m.attr("openmp") = false;
#endif
}
