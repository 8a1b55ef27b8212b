// The C++ ONNX importer (dtd/import.hpp): dtd._core._load_onnx and _import_onnx, private while dtd.load still uses
// the Python importer. The import runs without the GIL; dtd::UnsupportedModelError and dtd::ModelLoadError become
// dtd.errors.UnsupportedModelError and dtd.errors.ModelLoadError.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <map>
#include <optional>
#include <string>

#include "dtd/import.hpp"

namespace py = pybind11;

namespace {

dtd::ImportLimits limits_of(const py::object& limits) {
  dtd::ImportLimits out;
  if (limits.is_none()) return out;
  out.max_folded_constant = limits.attr("max_folded_constant").cast<int64_t>();
  out.max_activation = limits.attr("max_activation").cast<int64_t>();
  out.max_total_activation = limits.attr("max_total_activation").cast<int64_t>();
  out.max_nodes = limits.attr("max_nodes").cast<int64_t>();
  out.max_depth = limits.attr("max_depth").cast<int64_t>();
  return out;
}

[[noreturn]] void raise(const char* cls, const std::string& message) {
  py::object type = py::module_::import("dtd.errors").attr(cls);
  // Names in a model need not be valid UTF-8: the message is decoded with replacement characters.
  py::object text = py::reinterpret_steal<py::object>(
      PyUnicode_DecodeUTF8(message.data(), static_cast<py::ssize_t>(message.size()), "replace"));
  if (!text) throw py::error_already_set();
  PyErr_SetObject(type.ptr(), text.ptr());
  throw py::error_already_set();
}

/// Imports `src` (bytes: a serialized ModelProto; str: a path) without the GIL.
dtd::ImportedModel run_import(const py::object& src, const std::optional<std::string>& base_dir,
                              const py::object& limits, const std::string& source = "<bytes>") {
  const dtd::ImportLimits lim = limits_of(limits);
  std::optional<dtd::ImportedModel> result;
  std::string error;
  const char* cls = nullptr;
  auto guarded = [&](auto&& run) {
    py::gil_scoped_release release;
    try {
      result.emplace(run());
    } catch (const dtd::UnsupportedModelError& e) {
      cls = "UnsupportedModelError", error = e.what();
    } catch (const dtd::ModelLoadError& e) {
      cls = "ModelLoadError", error = e.what();
    }
  };
  if (py::isinstance<py::bytes>(src)) {
    char* p = nullptr;
    py::ssize_t n = 0;
    if (PyBytes_AsStringAndSize(src.ptr(), &p, &n) != 0) throw py::error_already_set();
    guarded([&] { return dtd::import_onnx(p, static_cast<size_t>(n), base_dir, lim, source); });
  } else if (py::isinstance<py::str>(src)) {
    const std::string path = src.cast<std::string>();
    guarded([&] { return dtd::import_onnx(path, lim, base_dir); });
  } else {
    throw py::type_error("expected the model's bytes or a path (str)");
  }
  if (!result) raise(cls, error);
  return std::move(*result);
}

}  // namespace

void bind_import(py::module_& m) {
  m.def(
      "_load_onnx",
      [](const py::object& src, std::optional<std::string> base_dir, const py::object& limits) {
        return run_import(src, base_dir, limits).spec;
      },
      py::arg("src"), py::arg("base_dir") = py::none(), py::arg("limits") = py::none(),
      "Imports an ONNX model (bytes of a ModelProto, or a path) with the C++ importer into a ModelSpec (private "
      "while dtd.load uses the Python importer). base_dir: the folder of external data for bytes; limits: a "
      "dtd.Limits. Raises dtd.UnsupportedModelError / dtd.ModelLoadError.");
  m.def(
      "_import_onnx",
      [](const py::object& src, std::optional<std::string> base_dir, const py::object& limits,
         const std::string& source) {
        dtd::ImportedModel imported = run_import(src, base_dir, limits, source);
        py::dict d;
        d["opset"] = imported.opset;
        d["input_dtype"] = imported.input_dtype;
        d["merged_batch_output"] = imported.merged_batch_output;
        d["source"] = imported.source;
        d["declared"] = imported.declared;
        d["spec"] = py::cast(std::move(imported.spec));
        return d;
      },
      py::arg("src"), py::arg("base_dir") = py::none(), py::arg("limits") = py::none(), py::arg("source") = "<bytes>",
      "_load_onnx with the facts about the model: {'spec', 'opset', 'input_dtype', 'merged_batch_output', "
      "'source', 'declared'}. source: the name of bytes in messages (e.g. '<ModelProto>').");
  m.def(
      "_check_declared_shapes",
      [](const std::map<std::string, std::vector<std::optional<int64_t>>>& declared,
         const std::map<std::string, std::vector<int64_t>>& computed) {
        dtd::ImportedModel imported;
        imported.declared = declared;
        try {
          dtd::check_declared_shapes(imported, computed);
        } catch (const dtd::ModelLoadError& e) {
          raise("ModelLoadError", e.what());
        }
      },
      py::arg("declared"), py::arg("computed"),
      "dtd::check_declared_shapes: declared (name -> shape with the batch axis, None for unknown) against the "
      "per-sample shapes a network computes (name -> shape). Raises dtd.ModelLoadError naming the value.");
  m.def("_import_supported_ops", &dtd::import_supported_ops, "The op types the C++ importer converts, sorted.");
  m.def(
      "_import_schema_versions",
      [] {
        const dtd::ImportSchemaVersions v = dtd::import_schema_versions();
        return py::make_tuple(v.max_opset, v.ir_version, v.onnx_version);
      },
      "(max opset, IR version, onnx version) of the tables the C++ importer was generated from.");
}
