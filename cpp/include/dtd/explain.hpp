// The explain level (RULES.md "Where relevance starts", "The DTD presets"): rules for a whole network (presets by
// name, a composite with per-layer overrides, the max-pool / Add / average-pool modes), the z^beta bounds and
// their check, the targets, and the per-layer conservation report. dtd.explain is a thin call of it.
//
// An Explainer is built once per (network, rules) and is immutable: explain() is const and keeps everything it
// needs for one call (the trace, the relevance buffers) in locals, so one Explainer, like one Network, serves many
// threads at once without a lock, and each call gives the same bits as the same call made alone.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dtd/model_spec.hpp"
#include "dtd/network.hpp"
#include "dtd/rules.hpp"
#include "dtd/tensor.hpp"

namespace dtd {

/// The stabilizer where a rule's `eps` is not given.
inline constexpr double kDefaultEps = 1e-6;

/// A rule for one parametric layer (dense, conv; affine layers take only epsilon), as dtd.rules' classes describe
/// it. The fields a kind does not use are ignored; `check()` runs when the rule is applied to a layer.
struct Rule {
  RuleKind kind = RuleKind::zplus;
  /// Absent: kDefaultEps, applied as each rule's default stabilizer (absolute, except relative to the denominator
  /// for w^2 and flat); given: the absolute stabilizer (RuleSpec::eps_absolute).
  std::optional<double> eps;
  bool bias = false;               // zplus, wsquare, gamma, alphabeta
  double gamma = 0.25;             // gamma
  double alpha = 2.0, beta = 1.0;  // alphabeta
  /// zbox: the bounds (scalar, per-channel [C], or broadcastable to one sample); absent: the explain-level bounds.
  std::optional<Array> low, high;
  /// The rule's name in messages ("ZPlus", ...); empty: the class name of `kind`.
  std::string display_name;
  /// How messages show a field ("eps", "gamma", "alpha", "beta") as the caller wrote it (a binding passes Python's
  /// str() of the value); absent: the value's Python float repr.
  std::map<std::string, std::string> shown_values;

  static Rule zplus(std::optional<double> eps = std::nullopt, bool bias = false);
  static Rule wsquare(std::optional<double> eps = std::nullopt, bool bias = false);
  static Rule zbox(std::optional<Array> low = std::nullopt, std::optional<Array> high = std::nullopt,
                   std::optional<double> eps = std::nullopt);
  static Rule epsilon(std::optional<double> eps = std::nullopt);
  static Rule gamma_rule(double gamma = 0.25, std::optional<double> eps = std::nullopt, bool bias = false);
  static Rule alpha_beta(double alpha = 2.0, double beta = 1.0, std::optional<double> eps = std::nullopt,
                         bool bias = false);
  static Rule flat(std::optional<double> eps = std::nullopt);

  /// "ZPlus", "WSquare", ...: display_name, or the class name of `kind`.
  std::string name() const;
  /// `value` of `field` as messages show it (shown_values, else the Python float repr).
  std::string shown(const std::string& field, double value) const;
  /// The RuleSpec of a layer with this rule (bounds excluded); throws std::invalid_argument for an eps, gamma,
  /// alpha or beta out of range.
  RuleSpec spec() const;
};

/// Which layer an override names: a layer name, an index (negative: from the end), or a kind ("dense", "conv",
/// "affine"; a layer's name wins over a kind). A key with neither names no layer (an error naming `repr`).
struct LayerKey {
  std::optional<int64_t> index;
  std::optional<std::string> name;
  /// How the key is shown in messages; empty: the Python repr of the name.
  std::string repr;

  static LayerKey by_name(std::string name) { return LayerKey{std::nullopt, std::move(name), {}}; }
  static LayerKey by_index(int64_t index) { return LayerKey{index, std::nullopt, {}}; }
};

/// Rules for a whole network (dtd.rules.Composite): `first` on the first parametric layer, `default_rule` on the
/// others; an override by name or index wins over one by kind, a kind over `first`, `first` over the default.
struct Composite {
  Rule default_rule = Rule::zplus();
  std::optional<Rule> first;
  std::vector<std::pair<LayerKey, Rule>> overrides;
  std::string maxpool = "winner_take_all";  // or "proportional" (MaxPool, GlobalMaxPool)
  std::string add = "zplus";                // or "proportional"
  std::string avgpool = "proportional";     // or "flat" (AveragePool, GlobalAveragePool)
  /// Stabilizer of the proportional redistributions (pooling, Add); absent: kDefaultEps.
  std::optional<double> eps;
};

/// The presets by name (RULES.md): "bounded" (z^beta first, z+ above; needs low and high), "real" (w^2 first),
/// "positive" (z+ everywhere), "deep_taylor" ("bounded" when a bound is given, else "real"), "epsilon" (LRP-epsilon
/// everywhere, affine layers included). `eps` goes to every rule. Throws std::invalid_argument for an unknown name.
Composite preset(const std::string& name, const std::optional<Array>& low = std::nullopt,
                 const std::optional<Array>& high = std::nullopt, std::optional<double> eps = std::nullopt);
/// The preset names, in the order messages list them.
const std::vector<std::string>& preset_names();

/// An Algorithm by name ("exact", "winograd"); throws std::invalid_argument naming the valid ones.
Algorithm parse_algorithm(const std::string& name);

/// What to explain with: a composite, and the explain-level bounds (taken by z^beta rules that have none).
struct ExplainRules {
  Composite composite;
  std::optional<Array> low, high;

  /// A preset by name (see preset()).
  static ExplainRules from_preset(const std::string& name, std::optional<Array> low = std::nullopt,
                                  std::optional<Array> high = std::nullopt, std::optional<double> eps = std::nullopt);
  /// One rule for every parametric layer; `eps` for pooling and Add.
  static ExplainRules from_rule(Rule rule, std::optional<Array> low = std::nullopt,
                                std::optional<Array> high = std::nullopt, std::optional<double> eps = std::nullopt);
};

/// The layer each rule of `composite` applies to: per layer, the index of its rule in `rules_table` order
/// (0: default_rule, 1: first, 2 + k: overrides[k]) or -1 for a layer without one. Checks the modes and the
/// override keys (std::invalid_argument naming the key and the layers).
template <class T>
std::vector<int> resolve_rules(const Network<T>& net, const Composite& composite);

/// Where the relevance of a pass starts (RULES.md): the target class holds its logit, the others 0.
struct Target {
  enum class Kind {
    argmax,     // each sample's largest logit (the default)
    classes,    // `classes` with `shape`: {} one class for all, {N} one per sample, {N, K} K per sample
    relevance,  // `relevance` [N, n_out] (`shape` as given), used as given (in T)
    invalid,    // a target a binding could not convert: explain() throws `message` where it checks targets
  };
  Kind kind = Kind::argmax;
  Shape shape;
  std::vector<int64_t> classes;  // negative: counted from the end
  std::vector<double> relevance;
  /// The batch is one sample given without its batch axis: a {K} class list is K classes of that sample, and
  /// messages name shapes without the batch axis.
  bool unbatched = false;
  std::string message;  // invalid only

  static Target argmax() { return {}; }
  static Target one_class(int64_t c) { return Target{Kind::classes, {}, {c}, {}, false, {}}; }
  static Target per_sample(std::vector<int64_t> c) {
    const auto n = static_cast<int64_t>(c.size());
    return Target{Kind::classes, {n}, std::move(c), {}, false, {}};
  }
  /// `c` row-major [N, k].
  static Target k_per_sample(std::vector<int64_t> c, int64_t k) {
    const auto n = k > 0 ? static_cast<int64_t>(c.size()) / k : 0;
    return Target{Kind::classes, {n, k}, std::move(c), {}, false, {}};
  }
  /// `r` row-major [N, n_out].
  static Target output_relevance(Shape shape, std::vector<double> r) {
    return Target{Kind::relevance, std::move(shape), {}, std::move(r), false, {}};
  }
};

/// Relevance totals of one layer (dtd.LayerRelevance): `relevance_out` arrived at its output, `relevance_in` it
/// passed on; per sample, [N] or [N, K] with K targets per sample (row-major).
struct LayerRelevance {
  int index = 0;
  std::string name, kind, rule;
  std::vector<double> relevance_out, relevance_in;
};

template <class T>
struct Explanation {
  /// [N, input...], or [N, K, input...] with K targets per sample.
  Tensor<T> relevance;
  /// [N, n_out] pre-softmax scores.
  Tensor<T> logits;
  /// The classes explained, normalised to [0, n_out): [N] or [N, K] (`targets_shape`); empty for an output
  /// relevance given as such (`has_targets` false).
  bool has_targets = false;
  bool multi = false;  // K targets per sample
  Shape targets_shape;
  std::vector<int64_t> targets;
  /// The conservation report, one entry per layer (filled when asked for).
  std::vector<LayerRelevance> layers;
};

/// Throws std::invalid_argument naming how many of `values` are NaN or infinite and where the first one is
/// ("the input holds 2 NaN or infinite value(s) of 96, the first at index [1, 0, 5, 7] (nan)").
template <class T>
void check_finite(const Tensor<T>& values, const std::string& what);
/// The same over a row-major buffer of `shape`.
template <class T>
void check_finite(const T* values, const Shape& shape, const std::string& what);

/// The output relevance of each relevance pass for `target` (RULES.md "Where relevance starts"), from the logits
/// [N, logits...]: one tensor shaped like them per target column, the target's entry holding its logit, the others 0.
/// Throws std::invalid_argument for targets of the wrong count or shape, or out of range.
template <class T>
std::vector<Tensor<T>> output_relevance(const Tensor<T>& logits, const Target& target = Target::argmax());

template <class T>
class Explainer {
 public:
  /// Resolves the rules onto `net`'s layers, checks them, broadcasts the z^beta bounds and precomputes what does
  /// not depend on the input. Bounds given for the model input are mapped through the leading affine / ReLU /
  /// data-movement layers in float64: by `float64_net` (the same model built in double) when T is float, by `net`
  /// itself when T is double. `net` (and `float64_net`) must outlive the Explainer. Throws std::invalid_argument.
  Explainer(const Network<T>& net, const ExplainRules& rules, const Network<double>* float64_net = nullptr);

  /// True when `rules` on `net` map bounds through leading layers (so a float Explainer needs `float64_net`).
  static bool maps_bounds(const Network<T>& net, const ExplainRules& rules);

  /// Sensitivity analysis by the same engine: every layer passes the gradient back, and each pass starts from 1 at
  /// the target (not its logit); explain() then returns d f_c / d x (an output-relevance target is refused).
  static Explainer sensitivity(const Network<T>& net);

  /// Explains a batch x [N, input...]: checks x is finite and inside the z^beta bounds, runs the forward pass once,
  /// and one relevance pass per target column. Throws std::invalid_argument for bad targets, inputs outside the
  /// bounds, or non-finite relevance. `algorithm` (this call only): Algorithm::winograd computes the qualifying
  /// 3x3 convolutions with at least 32 2x2 output tiles over the batch by Winograd F(2x2, 3x3) (float only: an
  /// Explainer<double> throws std::invalid_argument; a sensitivity Explainer always uses the exact products).
  Explanation<T> explain(const Tensor<T>& x, const Target& target = Target::argmax(), bool report = false,
                         Algorithm algorithm = Algorithm::exact) const;

  const Network<T>& network() const { return *net_; }
  /// The rule name of each layer, as the report shows it.
  const std::vector<std::string>& rule_names() const { return names_; }
  /// The prepared rules, for Network::trace / Network::relevance called directly.
  const Plan<T>& plan() const { return plan_; }

 private:
  struct Box {
    int value;                      // 0: the model input; else the ZBox layer's input value
    std::vector<double> low, high;  // flat, of that value's per-sample size
    double tol;
    bool uniform;
  };
  Explainer() = default;
  void check_in_box(const Tensor<T>& x, const Trace<T>& trace) const;

  const Network<T>* net_ = nullptr;
  bool gradient_ = false;
  Plan<T> plan_;
  std::vector<std::string> names_;
  std::vector<Box> boxes_;
};

extern template class Explainer<float>;
extern template class Explainer<double>;

}  // namespace dtd
