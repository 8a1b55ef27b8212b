// Private bindings of the C++ ONNX reader, for tests that compare its decode with the onnx package's: the decoded
// model as nested dicts and lists (strings as bytes, repeated numbers as NumPy arrays), and the reader's field table.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>

#include "dtd/onnx.hpp"

namespace py = pybind11;
namespace ox = dtd::onnx;

namespace {

py::bytes bytes(const std::string& s) {
  return py::bytes(s.data(), s.size());
}

template <class T>
py::array_t<T> array(const std::vector<T>& v) {
  return py::array_t<T>(static_cast<py::ssize_t>(v.size()), v.data());
}

py::list strings(const std::vector<std::string>& v) {
  py::list out;
  for (const std::string& s : v) out.append(bytes(s));
  return out;
}

py::list entries(const std::vector<ox::StringStringEntry>& v) {
  py::list out;
  for (const auto& e : v) out.append(py::make_tuple(bytes(e.key), bytes(e.value)));
  return out;
}

template <class T, class F>
py::list list(const std::vector<T>& v, F convert) {
  py::list out;
  for (const T& x : v) out.append(convert(x));
  return out;
}

py::dict type_proto(const ox::TypeProto& t) {
  py::dict d;
  d["kind"] = static_cast<int>(t.kind);
  d["elem_type"] = t.elem_type;
  py::object shape = py::none();
  if (t.has_shape) {
    shape = list(t.shape, [](const ox::Dimension& dim) {
      py::dict o;
      o["value"] = dim.kind == ox::Dimension::Kind::value ? py::object(py::int_(dim.value)) : py::none();
      o["param"] = dim.kind == ox::Dimension::Kind::param ? py::object(bytes(dim.param)) : py::none();
      o["denotation"] = bytes(dim.denotation);
      return o;
    });
  }
  d["shape"] = shape;
  d["denotation"] = bytes(t.denotation);
  return d;
}

py::dict tensor(const ox::Tensor& t) {
  py::dict d;
  d["dims"] = t.dims;
  d["data_type"] = t.data_type;
  d["name"] = bytes(t.name);
  d["doc_string"] = bytes(t.doc_string);
  d["float_data"] = array(t.float_data);
  d["int32_data"] = array(t.int32_data);
  d["string_data"] = strings(t.string_data);
  d["int64_data"] = array(t.int64_data);
  d["double_data"] = array(t.double_data);
  d["uint64_data"] = array(t.uint64_data);
  d["raw_data"] = t.has_raw_data ? py::object(bytes(t.raw_data)) : py::none();
  d["external_data"] = entries(t.external_data);
  d["data_location"] = t.data_location;
  d["metadata_props"] = entries(t.metadata_props);
  return d;
}

py::dict value_info(const ox::ValueInfo& v) {
  py::dict d;
  d["name"] = bytes(v.name);
  d["type"] = v.type ? py::object(type_proto(*v.type)) : py::none();
  d["doc_string"] = bytes(v.doc_string);
  d["metadata_props"] = entries(v.metadata_props);
  return d;
}

py::dict graph(const ox::Graph& g);

py::dict attribute(const ox::Attribute& a) {
  py::dict d;
  d["name"] = bytes(a.name);
  d["ref_attr_name"] = bytes(a.ref_attr_name);
  d["doc_string"] = bytes(a.doc_string);
  d["type"] = a.type;
  d["f"] = a.f;
  d["i"] = a.i;
  d["s"] = bytes(a.s);
  d["t"] = a.t ? py::object(tensor(*a.t)) : py::none();
  d["g"] = a.g ? py::object(graph(*a.g)) : py::none();
  d["tp"] = a.tp ? py::object(type_proto(*a.tp)) : py::none();
  d["floats"] = array(a.floats);
  d["ints"] = array(a.ints);
  d["strings"] = strings(a.strings);
  d["tensors"] = list(a.tensors, tensor);
  d["graphs"] = list(a.graphs, graph);
  d["type_protos"] = list(a.type_protos, type_proto);
  return d;
}

py::dict node(const ox::Node& n) {
  py::dict d;
  d["input"] = strings(n.input);
  d["output"] = strings(n.output);
  d["name"] = bytes(n.name);
  d["op_type"] = bytes(n.op_type);
  d["domain"] = bytes(n.domain);
  d["overload"] = bytes(n.overload);
  d["attribute"] = list(n.attribute, attribute);
  d["doc_string"] = bytes(n.doc_string);
  d["metadata_props"] = entries(n.metadata_props);
  return d;
}

py::dict graph(const ox::Graph& g) {
  py::dict d;
  d["node"] = list(g.node, node);
  d["name"] = bytes(g.name);
  d["initializer"] = list(g.initializer, tensor);
  d["doc_string"] = bytes(g.doc_string);
  d["input"] = list(g.input, value_info);
  d["output"] = list(g.output, value_info);
  d["value_info"] = list(g.value_info, value_info);
  d["metadata_props"] = entries(g.metadata_props);
  return d;
}

py::dict model(const ox::Model& m) {
  py::dict d;
  d["ir_version"] = m.ir_version;
  d["opset_import"] = list(m.opset_import, [](const ox::OperatorSetId& o) {
    py::dict x;
    x["domain"] = bytes(o.domain);
    x["version"] = o.version;
    return x;
  });
  d["producer_name"] = bytes(m.producer_name);
  d["producer_version"] = bytes(m.producer_version);
  d["domain"] = bytes(m.domain);
  d["model_version"] = m.model_version;
  d["doc_string"] = bytes(m.doc_string);
  d["graph"] = m.graph ? py::object(graph(*m.graph)) : py::none();
  d["metadata_props"] = entries(m.metadata_props);
  return d;
}

/// Runs `read` without the GIL and raises dtd.ModelLoadError for the reader's errors.
template <class Read>
py::dict decoded(Read read) {
  std::optional<ox::Model> m;
  std::string error;
  {
    py::gil_scoped_release release;
    try {
      m.emplace(read());
    } catch (const dtd::ModelLoadError& e) {
      error = e.what();
    }
  }
  if (!m) {
    py::object cls = py::module_::import("dtd.errors").attr("ModelLoadError");
    // The message quotes names from the file, which need not be UTF-8: PyErr_SetString would raise a
    // UnicodeDecodeError instead of the ModelLoadError; invalid bytes show as \xNN.
    py::object text = py::reinterpret_steal<py::object>(
        PyUnicode_DecodeUTF8(error.data(), static_cast<py::ssize_t>(error.size()), "backslashreplace"));
    if (!text) throw py::error_already_set();
    PyErr_SetObject(cls.ptr(), text.ptr());
    throw py::error_already_set();
  }
  return model(*m);
}

}  // namespace

void bind_onnx(py::module_& m) {
  m.def(
      "_onnx_read",
      [](const py::bytes& data, std::optional<std::string> base_dir, bool external) {
        char* p = nullptr;
        py::ssize_t n = 0;
        if (PyBytes_AsStringAndSize(data.ptr(), &p, &n) != 0) throw py::error_already_set();
        const auto size = static_cast<size_t>(n);
        return decoded(
            [&] { return external ? ox::read_model(p, size, base_dir) : ox::decode_model(p, size, "bytes"); });
      },
      py::arg("data"), py::arg("base_dir") = py::none(), py::arg("external") = true,
      "Decodes a serialized ModelProto with the C++ reader (private, for tests): nested dicts; external data read "
      "from base_dir (external=False: left as the model describes it).");
  m.def(
      "_onnx_read_file", [](const std::string& path) { return decoded([&] { return ox::read_model_file(path); }); },
      py::arg("path"), "Reads an .onnx file with the C++ reader (private, for tests); external data beside it.");
  m.def(
      "_onnx_fields",
      [] {
        py::list out;
        for (const ox::FieldInfo& f : ox::field_table())
          out.append(py::make_tuple(f.message, f.field, f.number, f.type, f.repeated, f.action));
        return out;
      },
      "The C++ reader's field table: (message, field, number, type, repeated, action) per field (private).");
  m.attr("_onnx_max_graph_depth") = ox::kMaxGraphDepth;
}
