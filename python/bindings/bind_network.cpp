#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "dtd/network.hpp"
#include "numpy_interop.hpp"

namespace py = pybind11;
using namespace dtd;
using py_interop::CArray;
using py_interop::PlanHolder;

namespace {

template <class T>
void bind_network_type(py::module_& m, const char* name, const char* trace_name, const char* plan_name) {
  using Net = Network<T>;
  py::class_<PlanHolder<T>>(m, plan_name, "Rules prepared for one network (see Network.prepare).");
  py::class_<Trace<T>>(m, trace_name, "Every activation of one forward pass (kept for the relevance pass).")
      .def("value", [](const Trace<T>& t, size_t i) {
        if (i >= t.values.size()) throw py::index_error("value id out of range");
        if (t.values[i].data.empty()) throw py::value_error("value " + std::to_string(i) + " was not kept");
        return py_interop::to_numpy(Tensor<T>(t.values[i]));
      });

  py::class_<Net>(m, name, "A network built from a ModelSpec (immutable, thread-safe).")
      .def(py::init([](const ModelSpec& spec) { return std::make_unique<Net>(spec); }), py::arg("spec"))
      .def_property_readonly("input_shape", &Net::input_shape)
      .def_property_readonly("output_shape", &Net::output_shape)
      .def_property_readonly("logits_shape", &Net::logits_shape)
      .def_property_readonly("logits_value", &Net::logits_value)
      .def_property_readonly("first_parametric", &Net::first_parametric)
      .def_property_readonly("layers",
                             [](const Net& net) {
                               py::list out;
                               for (size_t i = 0; i < net.size(); ++i) {
                                 const Layer<T>& l = net.layer(i);
                                 py::dict d;
                                 d["name"] = l.name();
                                 d["kind"] = std::string(to_string(l.kind()));
                                 d["inputs"] = l.inputs();
                                 d["input_shapes"] = l.input_shapes();
                                 d["output_shape"] = l.output_shape();
                                 d["parameters"] = l.parameter_count();
                                 d["macs"] = l.macs();
                                 out.append(d);
                               }
                               return out;
                             })
      .def(
          "forward",
          [](const Net& net, const CArray<T>& x) {
            Tensor<T> in = py_interop::from_numpy(x);
            Tensor<T> out;
            {
              py::gil_scoped_release release;
              out = net.forward(in);
            }
            return py_interop::to_numpy(std::move(out));
          },
          py::arg("x"))
      .def(
          "trace",
          [](const Net& net, const CArray<T>& x, const PlanHolder<T>* plan) {
            Tensor<T> in = py_interop::from_numpy(x);
            py::gil_scoped_release release;
            return net.trace(in, plan ? &plan->plan : nullptr);
          },
          py::arg("x"), py::arg("plan") = nullptr)
      .def(
          "prepare",
          [](const Net& net, const std::vector<RuleSpec>& rules) {
            py::gil_scoped_release release;
            return PlanHolder<T>{net.prepare(rules)};
          },
          py::arg("rules"))
      .def(
          "relevance",
          [](const Net& net, const Trace<T>& trace, const CArray<T>& r_logits, const PlanHolder<T>& plan, bool report) {
            Tensor<T> r = py_interop::from_numpy(r_logits);
            Tensor<T> out;
            std::vector<LayerReport> rep;
            {
              py::gil_scoped_release release;
              out = net.relevance(trace, r, plan.plan, report ? &rep : nullptr);
            }
            py::list layers;
            for (auto& lr : rep)
              layers.append(py::make_tuple(py_interop::to_numpy(std::move(lr.relevance_out)),
                                           py_interop::to_numpy(std::move(lr.relevance_in))));
            return py::make_tuple(py_interop::to_numpy(std::move(out)), layers);
          },
          py::arg("trace"), py::arg("r_logits"), py::arg("plan"), py::arg("report") = false)
      .def("check_rules", &Net::check_rules, py::arg("rules"));
}

}  // namespace

void bind_network(py::module_& m) {
  bind_network_type<float>(m, "Network32", "Trace32", "Plan32");
  bind_network_type<double>(m, "Network64", "Trace64", "Plan64");
}
