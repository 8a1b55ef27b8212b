#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "dtd/model_spec.hpp"
#include "dtd/rules.hpp"
#include "numpy_interop.hpp"

namespace py = pybind11;
using namespace dtd;

void bind_spec(py::module_& m) {
  py::enum_<LayerKind>(m, "LayerKind")
      .value("dense", LayerKind::dense)
      .value("conv", LayerKind::conv)
      .value("relu", LayerKind::relu)
      .value("maxpool", LayerKind::maxpool)
      .value("avgpool", LayerKind::avgpool)
      .value("globalavgpool", LayerKind::globalavgpool)
      .value("flatten", LayerKind::flatten)
      .value("reshape", LayerKind::reshape)
      .value("add", LayerKind::add)
      .value("concat", LayerKind::concat)
      .value("softmax", LayerKind::softmax)
      .value("logsoftmax", LayerKind::logsoftmax)
      .value("affine", LayerKind::affine)
      .value("layernorm", LayerKind::layernorm)
      .value("globalmaxpool", LayerKind::globalmaxpool)
      .value("activation", LayerKind::activation)
      .value("gate", LayerKind::gate)
      .value("transpose", LayerKind::transpose)
      .value("slice", LayerKind::slice)
      .value("gather", LayerKind::gather)
      .value("pad", LayerKind::pad)
      .value("lrn", LayerKind::lrn);

  py::enum_<RuleKind>(m, "RuleKind")
      .value("zplus", RuleKind::zplus)
      .value("wsquare", RuleKind::wsquare)
      .value("zbox", RuleKind::zbox)
      .value("epsilon", RuleKind::epsilon)
      .value("gamma", RuleKind::gamma)
      .value("alphabeta", RuleKind::alphabeta)
      .value("flat", RuleKind::flat)
      .value("gradient", RuleKind::gradient);

  py::enum_<MaxPoolMode>(m, "MaxPoolMode")
      .value("winner_take_all", MaxPoolMode::winner_take_all)
      .value("proportional", MaxPoolMode::proportional);

  py::enum_<AvgPoolMode>(m, "AvgPoolMode")
      .value("proportional", AvgPoolMode::proportional)
      .value("flat", AvgPoolMode::flat);
  py::enum_<AddMode>(m, "AddMode").value("zplus", AddMode::zplus).value("proportional", AddMode::proportional);

  py::class_<LayerSpec>(m, "LayerSpec", "One layer of a ModelSpec: kind, value names, attributes, weights.")
      .def(py::init<>())
      .def_readwrite("name", &LayerSpec::name)
      .def_readwrite("kind", &LayerSpec::kind)
      .def_readwrite("inputs", &LayerSpec::inputs)
      .def_readwrite("output", &LayerSpec::output)
      .def_readwrite("ints", &LayerSpec::ints)
      .def_readwrite("floats", &LayerSpec::floats)
      .def_property(
          "weights",
          [](const LayerSpec& s) {
            py::dict d;
            for (const auto& [k, v] : s.weights) d[py::str(k)] = py_interop::array_to_numpy(v);
            return d;
          },
          [](LayerSpec& s, const py::dict& d) {
            s.weights.clear();
            for (auto item : d)
              s.weights[item.first.cast<std::string>()] =
                  py_interop::array_from_numpy(item.second.cast<py_interop::CArray<double>>());
          })
      .def("__repr__", [](const LayerSpec& s) {
        return "LayerSpec(" + std::string(to_string(s.kind)) + " '" + s.name + "' -> '" + s.output + "')";
      });

  py::class_<ModelSpec>(m, "ModelSpec", "Plain-data description of a network, as built by the ONNX importer.")
      .def(py::init<>())
      .def_readwrite("input_name", &ModelSpec::input_name)
      .def_readwrite("input_shape", &ModelSpec::input_shape)
      .def_readwrite("output", &ModelSpec::output)
      .def_readwrite("layers", &ModelSpec::layers)
      .def(
          "append_layer", [](ModelSpec& m, LayerSpec& layer) { m.layers.push_back(std::move(layer)); },
          py::arg("layer"), "Appends `layer` by moving its contents (no copy of its weights); `layer` is left empty.")
      .def_readwrite("max_activation", &ModelSpec::max_activation,
                     "Most elements per sample of the input or of any layer output (default 2**27).")
      .def_readwrite("max_total_activation", &ModelSpec::max_total_activation,
                     "Most elements per sample of the input and all layer outputs together (default 2**27).");

  py::class_<RuleSpec>(m, "RuleSpec", "The rule applied to one layer in a relevance pass (RULES.md).")
      .def(py::init<>())
      .def_readwrite("kind", &RuleSpec::kind)
      .def_readwrite("eps", &RuleSpec::eps)
      .def_readwrite("eps_absolute", &RuleSpec::eps_absolute)
      .def_readwrite("gamma", &RuleSpec::gamma)
      .def_readwrite("alpha", &RuleSpec::alpha)
      .def_readwrite("beta", &RuleSpec::beta)
      .def_readwrite("bias", &RuleSpec::bias)
      .def_readwrite("maxpool", &RuleSpec::maxpool)
      .def_readwrite("add", &RuleSpec::add)
      .def_readwrite("avgpool", &RuleSpec::avgpool)
      .def_property(
          "low", [](const RuleSpec& r) { return r.low; },
          [](RuleSpec& r, const py_interop::CArray<double>& a) { r.low.assign(a.data(), a.data() + a.size()); })
      .def_property(
          "high", [](const RuleSpec& r) { return r.high; },
          [](RuleSpec& r, const py_interop::CArray<double>& a) { r.high.assign(a.data(), a.data() + a.size()); });
}
