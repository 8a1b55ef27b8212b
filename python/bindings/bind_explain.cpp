// dtd::Explainer and its rule types (cpp/include/dtd/explain.hpp). dtd.explain converts the Python rule objects
// into these, builds one Explainer per (network, rules) and calls explain() with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "dtd/explain.hpp"
#include "numpy_interop.hpp"

namespace py = pybind11;
using namespace dtd;
using py_interop::CArray;

namespace {

std::optional<Array> to_array(const std::optional<CArray<double>>& a) {
  if (!a) return std::nullopt;
  return py_interop::array_from_numpy(*a);
}

py::array_t<double> doubles(std::vector<double>&& v, const Shape& shape) {
  Tensor<double> t;
  t.shape = shape;
  t.data.assign(v.begin(), v.end());
  return py_interop::to_numpy(std::move(t));
}

template <class T>
void bind_explainer(py::module_& m, const char* name) {
  using E = Explainer<T>;
  py::class_<E>(m, name, "Rules resolved and prepared for one network (dtd::Explainer): explain() is thread-safe.")
      .def(py::init([](const Network<T>& net, const ExplainRules& rules, const Network<double>* net64) {
             py::gil_scoped_release release;
             return std::make_unique<E>(net, rules, net64);
           }),
           py::arg("net"), py::arg("rules"), py::arg("float64_net") = nullptr, py::keep_alive<1, 2>(),
           py::keep_alive<1, 4>())
      .def_static("maps_bounds", &E::maps_bounds, py::arg("net"), py::arg("rules"))
      .def_static(
          "sensitivity", [](const Network<T>& net) { return std::make_unique<E>(E::sensitivity(net)); }, py::arg("net"),
          py::keep_alive<0, 1>())
      .def_property_readonly("rule_names", &E::rule_names)
      .def_property_readonly(
          "plan", [](const E& e) { return py_interop::PlanHolder<T>{e.plan()}; },
          "A copy of the prepared rules, for Network.trace / Network.relevance.")
      .def(
          "explain",
          [](const E& e, const CArray<T>& x, const Target& target, bool report, const std::string& algorithm) {
            const Algorithm algo = parse_algorithm(algorithm);
            Tensor<T> in = py_interop::from_numpy(x);
            Explanation<T> ex;
            {
              py::gil_scoped_release release;
              ex = e.explain(in, target, report, algo);
            }
            py::object targets = py::none();
            if (ex.has_targets) {
              Tensor<int64_t> t;
              t.shape = ex.targets_shape;
              t.data.assign(ex.targets.begin(), ex.targets.end());
              targets = py_interop::to_numpy(std::move(t));
            }
            Shape per{ex.logits.batch()};
            if (ex.multi) per.push_back(ex.relevance.shape[1]);
            py::list layers;
            for (auto& lr : ex.layers)
              layers.append(py::make_tuple(lr.index, lr.name, lr.kind, lr.rule,
                                           doubles(std::move(lr.relevance_out), per),
                                           doubles(std::move(lr.relevance_in), per)));
            return py::make_tuple(py_interop::to_numpy(std::move(ex.relevance)),
                                  py_interop::to_numpy(std::move(ex.logits)), targets, layers);
          },
          py::arg("x"), py::arg("target"), py::arg("report") = false, py::arg("algorithm") = "exact");
  m.def("resolve_rules", &resolve_rules<T>, py::arg("net"), py::arg("composite"));
  m.def(
      "check_finite",
      [](const CArray<T>& a, const std::string& what) {
        // read in place where the buffer is aligned for T (a C-contiguous view at an odd byte offset is not: copied)
        if (reinterpret_cast<std::uintptr_t>(a.data()) % alignof(T) != 0) {
          const Tensor<T> t = py_interop::from_numpy(a);
          py::gil_scoped_release release;
          check_finite(t, what);
          return;
        }
        const Shape shape(a.shape(), a.shape() + a.ndim());
        const T* data = a.data();
        py::gil_scoped_release release;
        check_finite(data, shape, what);
      },
      py::arg("values"), py::arg("what"));
}

}  // namespace

void bind_explain(py::module_& m) {
  py::class_<Rule>(m, "Rule", "A rule for parametric layers (dtd::Rule); dtd.rules' classes convert to it.")
      .def(py::init([](RuleKind kind, std::optional<double> eps, bool bias, double gamma, double alpha, double beta,
                       const std::optional<CArray<double>>& low, const std::optional<CArray<double>>& high,
                       std::string name, std::map<std::string, std::string> shown) {
             Rule r;
             r.kind = kind, r.eps = eps, r.bias = bias, r.gamma = gamma, r.alpha = alpha, r.beta = beta;
             r.low = to_array(low), r.high = to_array(high), r.display_name = std::move(name);
             r.shown_values = std::move(shown);
             return r;
           }),
           py::arg("kind"), py::arg("eps") = std::nullopt, py::arg("bias") = false, py::arg("gamma") = 0.25,
           py::arg("alpha") = 2.0, py::arg("beta") = 1.0, py::arg("low") = std::nullopt, py::arg("high") = std::nullopt,
           py::arg("name") = "", py::arg("shown") = std::map<std::string, std::string>{})
      .def_readonly("kind", &Rule::kind)
      .def_readonly("eps", &Rule::eps);

  using Override = std::tuple<std::optional<int64_t>, std::optional<std::string>, std::string, Rule>;
  py::class_<Composite>(m, "Composite", "Rules for a whole network (dtd::Composite).")
      .def(py::init([](Rule default_rule, std::optional<Rule> first, const std::vector<Override>& overrides,
                       std::string maxpool, std::string add, std::string avgpool, std::optional<double> eps) {
             Composite c;
             c.default_rule = std::move(default_rule);
             c.first = std::move(first);
             for (const auto& [index, name, repr, rule] : overrides)
               c.overrides.emplace_back(LayerKey{index, name, repr}, rule);
             c.maxpool = std::move(maxpool), c.add = std::move(add), c.avgpool = std::move(avgpool);
             c.eps = eps;
             return c;
           }),
           py::arg("default"), py::arg("first") = std::nullopt, py::arg("overrides") = std::vector<Override>{},
           py::arg("maxpool") = "winner_take_all", py::arg("add") = "zplus", py::arg("avgpool") = "proportional",
           py::arg("eps") = std::nullopt);

  py::class_<ExplainRules>(m, "ExplainRules", "A composite and the explain-level bounds (dtd::ExplainRules).")
      .def(py::init(
               [](Composite c, const std::optional<CArray<double>>& low, const std::optional<CArray<double>>& high) {
                 return ExplainRules{std::move(c), to_array(low), to_array(high)};
               }),
           py::arg("composite"), py::arg("low") = std::nullopt, py::arg("high") = std::nullopt)
      .def_static(
          "preset",
          [](const std::string& name, const std::optional<CArray<double>>& low,
             const std::optional<CArray<double>>& high, std::optional<double> eps, const std::string& eps_shown) {
            ExplainRules r = ExplainRules::from_preset(name, to_array(low), to_array(high), eps);
            // the preset's rules show eps as the caller wrote it (Python's str())
            if (eps && !eps_shown.empty()) {
              r.composite.default_rule.shown_values["eps"] = eps_shown;
              if (r.composite.first) r.composite.first->shown_values["eps"] = eps_shown;
              for (auto& kv : r.composite.overrides) kv.second.shown_values["eps"] = eps_shown;
            }
            return r;
          },
          py::arg("name"), py::arg("low") = std::nullopt, py::arg("high") = std::nullopt, py::arg("eps") = std::nullopt,
          py::arg("eps_shown") = "")
      .def_static(
          "from_rule",
          [](Rule rule, const std::optional<CArray<double>>& low, const std::optional<CArray<double>>& high,
             std::optional<double> eps) {
            return ExplainRules::from_rule(std::move(rule), to_array(low), to_array(high), eps);
          },
          py::arg("rule"), py::arg("low") = std::nullopt, py::arg("high") = std::nullopt,
          py::arg("eps") = std::nullopt);

  py::class_<Target>(m, "Target", "Where relevance starts (dtd::Target).")
      .def_static("argmax", &Target::argmax)
      .def_static(
          "classes",
          [](const Shape& shape, const CArray<int64_t>& c, bool unbatched) {
            Target t;
            t.kind = Target::Kind::classes;
            t.shape = shape;
            t.classes.assign(c.data(), c.data() + c.size());
            t.unbatched = unbatched;
            return t;
          },
          py::arg("shape"), py::arg("classes"), py::arg("unbatched") = false)
      .def_static(
          "relevance",
          [](const Shape& shape, const CArray<double>& r, bool unbatched) {
            Target t;
            t.kind = Target::Kind::relevance;
            t.shape = shape;
            t.relevance.assign(r.data(), r.data() + r.size());
            t.unbatched = unbatched;
            return t;
          },
          py::arg("shape"), py::arg("relevance"), py::arg("unbatched") = false)
      .def_static(
          "invalid",
          [](std::string message) {
            Target t;
            t.kind = Target::Kind::invalid;
            t.message = std::move(message);
            return t;
          },
          py::arg("message"));

  bind_explainer<float>(m, "Explainer32");
  bind_explainer<double>(m, "Explainer64");
}
