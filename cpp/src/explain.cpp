// The explain level: rules for a whole network, bounds, targets and the conservation report (explain.hpp).
// Messages follow those dtd.explain has always given (Python reprs of names and numbers), since it is now a thin
// call of this file.
#include "dtd/explain.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "dtd/error.hpp"

namespace dtd {

namespace {

// ---- Python-style formatting of the values messages show -----------------------------------------------------

// repr() of a str: single quotes unless the text holds one and no double quote; backslashes and the chosen quote
// escaped, control characters as \n, \t, \r or \xNN.
std::string py_repr(const std::string& s) {
  const bool dq = s.find('\'') != std::string::npos && s.find('"') == std::string::npos;
  const char q = dq ? '"' : '\'';
  std::string out(1, q);
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (ch == q || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (ch == '\n') {
      out += "\\n";
    } else if (ch == '\t') {
      out += "\\t";
    } else if (ch == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + q;
}

// repr() of a Python float: the shortest round-trip digits, fixed notation for decimal exponents in [-4, 16), else
// scientific with at least two exponent digits; integral values in fixed notation end in ".0".
std::string py_float(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  std::string sci(buf, res.ptr);  // d[.ddd]e[+-]XX
  std::string sign;
  if (!sci.empty() && sci[0] == '-') {
    sign = "-";
    sci.erase(0, 1);
  }
  const size_t e = sci.find('e');
  std::string digits = sci.substr(0, e);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  const int exp10 = std::stoi(sci.substr(e + 1));
  const int decpt = exp10 + 1;  // value = 0.digits * 10^decpt
  if (v == 0) return sign + "0.0";
  if (decpt > -4 && decpt <= 16) {
    std::string out;
    if (decpt <= 0) {
      out = "0." + std::string(static_cast<size_t>(-decpt), '0') + digits;
    } else if (static_cast<size_t>(decpt) >= digits.size()) {
      out = digits + std::string(static_cast<size_t>(decpt) - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, static_cast<size_t>(decpt)) + "." + digits.substr(static_cast<size_t>(decpt));
    }
    return sign + out;
  }
  std::string mant = digits.substr(0, 1);
  if (digits.size() > 1) mant += "." + digits.substr(1);
  char ebuf[16];
  std::snprintf(ebuf, sizeof ebuf, "e%c%02d", exp10 < 0 ? '-' : '+', std::abs(exp10));
  return sign + mant + ebuf;
}

// Python's format(v, ".<p>g"), which is C's %g for finite values.
std::string py_g(double v, int precision) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", precision, v);
  return buf;
}

// numpy's str() of a scalar of T (shortest repr; the same as Python's for double).
template <class T>
std::string np_str(T v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if constexpr (std::is_same_v<T, float>) {
    char buf[64];
    const auto res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
    // re-read the float's shortest digits as a double so that py_float formats them
    return py_float(std::stod(std::string(buf, res.ptr)));
  } else {
    return py_float(static_cast<double>(v));
  }
}

std::string tuple_repr(const std::vector<std::string>& items) {
  std::string s = "(";
  for (size_t i = 0; i < items.size(); ++i) s += (i ? ", " : "") + py_repr(items[i]);
  return s + (items.size() == 1 ? ",)" : ")");
}

std::string list_repr(const std::vector<std::string>& items) {
  std::string s = "[";
  for (size_t i = 0; i < items.size(); ++i) s += (i ? ", " : "") + py_repr(items[i]);
  return s + "]";
}

int64_t py_mod(int64_t a, int64_t n) {
  const int64_t r = a % n;
  return r < 0 ? r + n : r;
}

const std::vector<std::string> kMaxPoolModes{"winner_take_all", "proportional"};
const std::vector<std::string> kAddModes{"zplus", "proportional"};
const std::vector<std::string> kAvgPoolModes{"proportional", "flat"};
const std::vector<std::string> kParametric{"dense", "conv"};

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

void check_mode(const std::string& what, const std::string& mode, const std::vector<std::string>& modes) {
  DTD_CHECK(contains(modes, mode), std::invalid_argument, what, " must be one of ", tuple_repr(modes), ", got ",
            py_repr(mode));
}

// ---- bounds ---------------------------------------------------------------------------------------------------

// A bound (scalar, per-channel [C], or an array broadcastable to one sample) broadcast to `layer_shape`, flat.
std::vector<double> broadcast_bound(const Array& value, const std::string& what, const Shape& sample,
                                    const Shape& layer_shape) {
  const auto layer_size = static_cast<size_t>(numel(layer_shape));
  if (value.shape.empty()) {
    const double v = value.data.at(0);
    DTD_CHECK(std::isfinite(v), std::invalid_argument, what, " must be finite");
    return std::vector<double>(layer_size, v);
  }
  Shape shape = value.shape;
  if (shape.size() == sample.size() + 1 && shape[0] == 1) shape.erase(shape.begin());
  if (shape.size() == 1 && sample.size() > 1 && shape[0] == sample[0] && shape[0] > 1) shape.resize(sample.size(), 1);
  bool fits = shape.size() <= sample.size();
  for (size_t k = 0; fits && k < shape.size(); ++k) {
    const int64_t a = shape[shape.size() - 1 - k], s = sample[sample.size() - 1 - k];
    fits = a == s || a == 1;
  }
  DTD_CHECK(fits, std::invalid_argument, what, " has shape ", to_string(shape),
            ", which does not broadcast to the input shape ", to_string(sample),
            " (give a scalar, a per-channel vector [C], or an array of the input's shape)");
  DTD_CHECK(numel(sample) == numel(layer_shape), std::invalid_argument, what, " of shape ", to_string(shape),
            " cannot be mapped onto the first parametric layer's input ", to_string(layer_shape),
            "; give a scalar bound");
  // strides of `shape` right-aligned against `sample` (0 on broadcast axes)
  const size_t r = sample.size(), lead = r - shape.size();
  std::vector<int64_t> stride(r, 0);
  int64_t st = 1;
  for (size_t k = r; k-- > lead;) {
    const int64_t a = shape[k - lead];
    stride[k] = a == 1 ? 0 : st;
    st *= a;
  }
  std::vector<double> full(static_cast<size_t>(numel(sample)));
  std::vector<int64_t> idx(r, 0);
  for (double& out : full) {
    int64_t off = 0;
    for (size_t k = 0; k < r; ++k) off += idx[k] * stride[k];
    out = value.data[static_cast<size_t>(off)];
    for (size_t k = r; k-- > 0;) {
      if (++idx[k] < sample[k]) break;
      idx[k] = 0;
    }
  }
  for (const double v : full) DTD_CHECK(std::isfinite(v), std::invalid_argument, what, " must be finite");
  return full;
}

// Layers through which input bounds are mapped onto the first conv/dense layer (elementwise and monotone).
bool maps_bounds_through(LayerKind kind) {
  switch (kind) {
    case LayerKind::affine:
    case LayerKind::relu:
    case LayerKind::flatten:
    case LayerKind::reshape:
    case LayerKind::transpose:
    case LayerKind::slice:
    case LayerKind::gather:
    case LayerKind::pad: return true;
    default: return false;
  }
}

// True when the layers between the network input and layer `i` are a chain of single-input layers that map each
// input element to at most one value monotonically, at least one of them changing values or positions.
template <class T>
bool input_map(const Network<T>& net, size_t i) {
  int value = net.layer(i).inputs()[0];
  bool moves = false;
  while (value != 0) {
    const Layer<T>& producer = net.layer(static_cast<size_t>(value - 1));
    if (!maps_bounds_through(producer.kind()) || producer.inputs().size() != 1) return false;
    moves = moves || (producer.kind() != LayerKind::flatten && producer.kind() != LayerKind::reshape);
    value = producer.inputs()[0];
  }
  return moves;
}

// The box [lo, hi] of the network input mapped onto the input of layer `i` (see input_map): both bounds run through
// the float64 network; each element of that input is a monotone function of one input element, or a constant.
void map_bounds(const Network<double>& net64, size_t i, std::vector<double>& lo, std::vector<double>& hi) {
  const int value = net64.layer(i).inputs()[0];
  std::vector<double> images[2];
  for (int b = 0; b < 2; ++b) {
    Shape s{1};
    s.insert(s.end(), net64.input_shape().begin(), net64.input_shape().end());
    Tensor<double> x = Tensor<double>::uninitialized(s);
    const std::vector<double>& src = b == 0 ? lo : hi;
    std::copy(src.begin(), src.end(), x.data.begin());
    const Trace<double> tr = net64.trace(x);
    const Tensor<double>& v = tr.values[static_cast<size_t>(value)];
    images[b].assign(v.data.begin(), v.data.end());
  }
  const size_t n = images[0].size();
  lo.resize(n);
  hi.resize(n);
  for (size_t k = 0; k < n; ++k) {  // numpy's minimum / maximum: NaN propagates, ties give the second operand
    const double a = images[0][k], b = images[1][k];
    lo[k] = (a < b || std::isnan(a)) ? a : b;
    hi[k] = (a > b || std::isnan(a)) ? a : b;
  }
}

const char* class_name(RuleKind kind) {
  switch (kind) {
    case RuleKind::zplus: return "ZPlus";
    case RuleKind::wsquare: return "WSquare";
    case RuleKind::zbox: return "ZBox";
    case RuleKind::epsilon: return "Epsilon";
    case RuleKind::gamma: return "Gamma";
    case RuleKind::alphabeta: return "AlphaBeta";
    case RuleKind::flat: return "Flat";
    case RuleKind::gradient: return "Gradient";
  }
  return "?";
}

template <class T>
const char* dtype_name() {
  return std::is_same_v<T, float> ? "float32" : "float64";
}

// numpy's argmax of a row: the first maximum, or the first NaN.
template <class T>
int64_t argmax(const T* row, int64_t n) {
  int64_t best = 0;
  for (int64_t k = 0; k < n; ++k) {
    if (std::isnan(row[k])) return k;
    if (row[k] > row[best]) best = k;
  }
  return best;
}

// The output relevance of each relevance pass for `target`, from the logits y [N, logits...] (RULES.md "Where
// relevance starts"): the target's entry holds its logit, or 1 with `unit` (a gradient). Fills the targets of `out`.
template <class T>
std::vector<Tensor<T>> start_relevance(const Tensor<T>& y, const Target& target, bool unit, Explanation<T>& out) {
  const int64_t n = y.batch(), n_out = y.sample_size();
  const Shape& r_shape = y.shape;
  std::vector<Tensor<T>> passes;
  std::vector<int64_t> classes;  // [n, k]
  int64_t k_count = 1;
  bool multi = false;
  DTD_CHECK(target.kind != Target::Kind::invalid, std::invalid_argument, target.message);
  if (target.kind == Target::Kind::relevance) {
    DTD_CHECK(!unit, std::invalid_argument, "sensitivity takes class indices as target, not an output-relevance array");
    const Shape& ts = target.shape;
    const auto size = static_cast<int64_t>(target.relevance.size());
    Shape rs = target.unbatched              ? Shape{1, size}
               : ts.size() >= 2 && ts[0] > 0 ? Shape{ts[0], size / ts[0]}
               : ts.size() >= 2              ? Shape{0, 0}
                                             : ts;
    DTD_CHECK(rs == Shape({n, n_out}), std::invalid_argument, "output relevance has shape ", to_string(ts),
              ", expected ", target.unbatched ? to_string({n_out}) : to_string({n, n_out}));
    for (const double v : target.relevance)
      DTD_CHECK(std::isfinite(v), std::invalid_argument, "output relevance must be finite");
    Tensor<T> r = Tensor<T>::uninitialized(r_shape);
    std::transform(target.relevance.begin(), target.relevance.end(), r.data.begin(),
                   [](double v) { return static_cast<T>(v); });
    passes.push_back(std::move(r));
  } else {
    if (target.kind == Target::Kind::argmax) {
      classes.resize(static_cast<size_t>(n));
      for (int64_t s = 0; s < n; ++s) classes[static_cast<size_t>(s)] = argmax(y.ptr() + s * n_out, n_out);
    } else {
      const Shape& ts = target.shape;
      if (ts.empty()) {
        classes.assign(static_cast<size_t>(n), target.classes.at(0));
      } else if (target.unbatched && ts.size() == 1) {
        classes = target.classes, k_count = ts[0], multi = true;
      } else if (ts.size() == 1) {
        DTD_CHECK(ts[0] == n, std::invalid_argument, "got ", ts[0], " targets for a batch of ", n, " samples");
        classes = target.classes;
      } else if (ts.size() == 2 && !target.unbatched) {
        DTD_CHECK(ts[0] == n, std::invalid_argument, "targets of shape ", to_string(ts), " for a batch of ", n,
                  " samples, expected [N, K]");
        classes = target.classes, k_count = ts[1], multi = true;
      } else {
        throw std::invalid_argument("targets of shape " + to_string(ts) + " are not understood");
      }
      for (const int64_t c : classes)
        DTD_CHECK(c >= -n_out && c < n_out, std::invalid_argument, "target class ", c,
                  " is out of range for a model with ", n_out, " outputs");
      for (int64_t& c : classes) c = py_mod(c, n_out);
      DTD_CHECK(k_count > 0, std::invalid_argument, "need at least one array to stack");
    }
    for (int64_t k = 0; k < k_count; ++k) {
      Tensor<T> r(r_shape);
      for (int64_t s = 0; s < n; ++s) {
        const int64_t c = classes[static_cast<size_t>(s * k_count + k)];
        r.data[static_cast<size_t>(s * n_out + c)] = unit ? T(1) : y.data[static_cast<size_t>(s * n_out + c)];
      }
      passes.push_back(std::move(r));
    }
    out.has_targets = true;
    out.targets = classes;
    out.targets_shape = multi ? Shape{n, k_count} : Shape{n};
  }
  out.multi = multi;
  return passes;
}

}  // namespace

// ---- rules ------------------------------------------------------------------------------------------------------

Rule Rule::zplus(std::optional<double> eps, bool bias) {
  Rule r;
  r.kind = RuleKind::zplus, r.eps = eps, r.bias = bias;
  return r;
}
Rule Rule::wsquare(std::optional<double> eps, bool bias) {
  Rule r;
  r.kind = RuleKind::wsquare, r.eps = eps, r.bias = bias;
  return r;
}
Rule Rule::zbox(std::optional<Array> low, std::optional<Array> high, std::optional<double> eps) {
  Rule r;
  r.kind = RuleKind::zbox, r.eps = eps, r.low = std::move(low), r.high = std::move(high);
  return r;
}
Rule Rule::epsilon(std::optional<double> eps) {
  Rule r;
  r.kind = RuleKind::epsilon, r.eps = eps;
  return r;
}
Rule Rule::gamma_rule(double gamma, std::optional<double> eps, bool bias) {
  Rule r;
  r.kind = RuleKind::gamma, r.gamma = gamma, r.eps = eps, r.bias = bias;
  return r;
}
Rule Rule::alpha_beta(double alpha, double beta, std::optional<double> eps, bool bias) {
  Rule r;
  r.kind = RuleKind::alphabeta, r.alpha = alpha, r.beta = beta, r.eps = eps, r.bias = bias;
  return r;
}
Rule Rule::flat(std::optional<double> eps) {
  Rule r;
  r.kind = RuleKind::flat, r.eps = eps;
  return r;
}

std::string Rule::name() const {
  return display_name.empty() ? class_name(kind) : display_name;
}

std::string Rule::shown(const std::string& field, double value) const {
  const auto it = shown_values.find(field);
  return it != shown_values.end() ? it->second : py_float(value);
}

RuleSpec Rule::spec() const {
  const double e = eps.value_or(kDefaultEps);
  DTD_CHECK(std::isfinite(e) && e >= 0, std::invalid_argument, name(), ": eps must be finite and >= 0, got ",
            shown("eps", e));
  RuleSpec s;
  s.kind = kind;
  s.eps = e;
  s.eps_absolute = eps.has_value();
  switch (kind) {
    case RuleKind::zplus:
    case RuleKind::wsquare: s.bias = bias; break;
    case RuleKind::gamma:
      DTD_CHECK(std::isfinite(gamma) && gamma >= 0, std::invalid_argument, "Gamma: gamma must be finite and >= 0, got ",
                shown("gamma", gamma));
      s.gamma = gamma;
      s.bias = bias;
      break;
    case RuleKind::alphabeta:
      DTD_CHECK(std::isfinite(alpha) && std::isfinite(beta) && beta >= 0, std::invalid_argument,
                "AlphaBeta: alpha and beta must be finite, beta >= 0; got ", shown("alpha", alpha), ", ",
                shown("beta", beta));
      DTD_CHECK(std::abs(alpha - beta - 1.0) <= 1e-9, std::invalid_argument,
                "AlphaBeta: alpha - beta must be 1 (conservation), got alpha ", shown("alpha", alpha), ", beta ",
                shown("beta", beta));
      s.alpha = alpha;
      s.beta = beta;
      s.bias = bias;
      break;
    default: break;
  }
  return s;
}

const std::vector<std::string>& preset_names() {
  static const std::vector<std::string> names{"deep_taylor", "bounded", "real", "positive", "epsilon"};
  return names;
}

Composite preset(const std::string& name, const std::optional<Array>& low, const std::optional<Array>& high,
                 std::optional<double> eps) {
  std::string n = name;
  if (n == "deep_taylor") n = (low || high) ? "bounded" : "real";
  Composite c;
  c.eps = eps;
  c.default_rule = Rule::zplus(eps);
  if (n == "bounded") {
    DTD_CHECK(low && high, std::invalid_argument,
              "the 'bounded' preset needs both low and high (the input bounds, e.g. 0 and 1)");
    c.first = Rule::zbox(low, high, eps);
  } else if (n == "real") {
    c.first = Rule::wsquare(eps);
  } else if (n == "epsilon") {
    c.default_rule = Rule::epsilon(eps);
    c.overrides.emplace_back(LayerKey::by_name("affine"), Rule::epsilon(eps));
  } else if (n != "positive") {
    std::string list;
    for (const auto& p : preset_names()) list += (list.empty() ? "" : ", ") + p;
    throw std::invalid_argument("unknown rules preset " + py_repr(name) + "; presets: " + list);
  }
  return c;
}

ExplainRules ExplainRules::from_preset(const std::string& name, std::optional<Array> low, std::optional<Array> high,
                                       std::optional<double> eps) {
  ExplainRules r;
  r.composite = preset(name, low, high, eps);
  r.low = std::move(low);
  r.high = std::move(high);
  return r;
}

ExplainRules ExplainRules::from_rule(Rule rule, std::optional<Array> low, std::optional<Array> high,
                                     std::optional<double> eps) {
  ExplainRules r;
  r.composite.default_rule = std::move(rule);
  r.composite.eps = eps;
  r.low = std::move(low);
  r.high = std::move(high);
  return r;
}

template <class T>
std::vector<int> resolve_rules(const Network<T>& net, const Composite& composite) {
  check_mode("maxpool", composite.maxpool, kMaxPoolModes);
  check_mode("add", composite.add, kAddModes);
  check_mode("avgpool", composite.avgpool, kAvgPoolModes);
  const auto count = static_cast<int64_t>(net.size());
  std::vector<int> rules(net.size(), -1);
  for (size_t i = 0; i < net.size(); ++i)
    if (net.layer(i).parametric()) rules[i] = 0;
  const int first = net.first_parametric();
  if (composite.first && first >= 0) rules[static_cast<size_t>(first)] = 1;
  std::map<std::string, size_t> names;  // the last layer of a name, as a dict built in order keeps it
  for (size_t i = 0; i < net.size(); ++i) names[net.layer(i).name()] = i;
  std::map<std::string, int> by_kind;
  std::map<size_t, int> by_layer;
  for (size_t k = 0; k < composite.overrides.size(); ++k) {
    const auto& [key, rule] = composite.overrides[k];
    const int id = 2 + static_cast<int>(k);
    if (key.name && !key.index) {
      const std::string& nm = *key.name;
      DTD_CHECK(!(nm == "affine" && rule.kind != RuleKind::epsilon), std::invalid_argument, rule.name(),
                " cannot apply to affine layers: they take only Epsilon");
      if (contains(kParametric, nm) || nm == "affine") {
        by_kind[nm] = id;
        continue;
      }
    }
    size_t index = 0;
    if (key.index) {
      DTD_CHECK(-count <= *key.index && *key.index < count, std::invalid_argument, "override index ", *key.index,
                " is out of range: the model has ", count, " layers");
      index = static_cast<size_t>(py_mod(*key.index, count));
    } else if (key.name && names.count(*key.name)) {
      index = names.at(*key.name);
    } else {
      std::vector<std::string> sorted;
      for (const auto& kv : names) sorted.push_back(kv.first);
      const std::string shown = !key.repr.empty() ? key.repr : key.name ? py_repr(*key.name) : std::string("None");
      throw std::invalid_argument("override key " + shown + " names no layer; use a layer name, an index or a kind " +
                                  tuple_repr(kParametric) + "; layers: " + list_repr(sorted));
    }
    const Layer<T>& layer = net.layer(index);
    if (layer.kind() == LayerKind::affine && rule.kind == RuleKind::epsilon) {
      by_layer[index] = id;
      continue;
    }
    DTD_CHECK(layer.parametric(), std::invalid_argument, rule.name(), " cannot apply to ", to_string(layer.kind()),
              " layer '", layer.name(), "' (index ", index,
              "): only dense and conv layers take rules (affine layers Epsilon); pooling and Add take "
              "Composite(maxpool=..., add=...)");
    by_layer[index] = id;
  }
  for (size_t i = 0; i < net.size(); ++i) {
    const auto it = by_kind.find(to_string(net.layer(i).kind()));
    if (it != by_kind.end()) rules[i] = it->second;
  }
  for (const auto& [index, id] : by_layer) rules[index] = id;
  return rules;
}

// ---- checks -----------------------------------------------------------------------------------------------------

template <class T>
void check_finite(const T* values, const Shape& shape, const std::string& what) {
  const auto size = static_cast<size_t>(numel(shape));
  size_t bad = 0, first = 0;
  for (size_t k = size; k-- > 0;)
    if (!std::isfinite(values[k])) ++bad, first = k;
  if (bad == 0) return;
  std::string index = "[";
  size_t rest = first, stride = size;
  for (size_t a = 0; a < shape.size(); ++a) {
    stride /= static_cast<size_t>(shape[a]);
    index += (a ? ", " : "") + std::to_string(rest / stride);
    rest %= stride;
  }
  index += "]";
  const std::string hint =
      what != "input" && std::is_same_v<T, float> ? " (float32 overflow: explain in float64, or scale the input)" : "";
  throw std::invalid_argument("the " + what + " holds " + std::to_string(bad) + " NaN or infinite value(s) of " +
                              std::to_string(size) + ", the first at index " + index + " (" + np_str(values[first]) +
                              ")" + hint);
}

template <class T>
void check_finite(const Tensor<T>& values, const std::string& what) {
  check_finite(values.ptr(), values.shape, what);
}

// ---- the explainer ----------------------------------------------------------------------------------------------

template <class T>
bool Explainer<T>::maps_bounds(const Network<T>& net, const ExplainRules& rules) {
  const Composite& c = rules.composite;
  const std::vector<int> ids = resolve_rules(net, c);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0) continue;
    const Rule& r = ids[i] == 0 ? c.default_rule : ids[i] == 1 ? *c.first : c.overrides[ids[i] - 2].second;
    if (r.kind == RuleKind::zbox && input_map(net, i)) return true;
  }
  return false;
}

template <class T>
Explainer<T>::Explainer(const Network<T>& net, const ExplainRules& rules, const Network<double>* float64_net)
    : net_(&net) {
  const Composite& c = rules.composite;
  const std::vector<int> ids = resolve_rules(net, c);
  const MaxPoolMode maxpool = c.maxpool == "proportional" ? MaxPoolMode::proportional : MaxPoolMode::winner_take_all;
  const AddMode add = c.add == "proportional" ? AddMode::proportional : AddMode::zplus;
  const AvgPoolMode avgpool = c.avgpool == "flat" ? AvgPoolMode::flat : AvgPoolMode::proportional;
  std::vector<RuleSpec> specs;
  for (size_t i = 0; i < net.size(); ++i) {
    const Layer<T>& layer = net.layer(i);
    RuleSpec spec;
    std::string name = "-";
    if (ids[i] < 0) {
      spec.eps = c.eps.value_or(kDefaultEps);
      switch (layer.kind()) {
        case LayerKind::maxpool:
        case LayerKind::globalmaxpool: name = c.maxpool; break;
        case LayerKind::add: name = c.add; break;
        case LayerKind::activation: name = "pass"; break;
        case LayerKind::gate: name = "signal_take_all"; break;
        case LayerKind::avgpool:
        case LayerKind::globalavgpool: name = c.avgpool; break;
        case LayerKind::affine: name = "identity"; break;
        case LayerKind::layernorm: name = "conservative"; break;
        default: break;
      }
    } else {
      const Rule& rule = ids[i] == 0 ? c.default_rule : ids[i] == 1 ? *c.first : c.overrides[ids[i] - 2].second;
      spec = rule.spec();
      name = to_string(rule.kind);
      if (rule.kind == RuleKind::zbox) {
        const std::optional<Array>& lo_v = rule.low ? rule.low : rules.low;
        const std::optional<Array>& hi_v = rule.high ? rule.high : rules.high;
        DTD_CHECK(lo_v && hi_v, std::invalid_argument, "ZBox on layer '", layer.name(),
                  "' needs bounds: pass low= and high=");
        // Bounds are given in the network input's space; through affine layers (input normalisation in the graph,
        // BatchNormalization) and data movements (an NHWC graph's Transpose, Pad) they are mapped onto the layer's
        // input, and checked on the network input.
        const bool chain = input_map(net, i);
        const Shape& target = chain ? net.input_shape() : layer.input_shapes()[0];
        std::vector<double> lo = broadcast_bound(*lo_v, "low", net.input_shape(), target);
        std::vector<double> hi = broadcast_bound(*hi_v, "high", net.input_shape(), target);
        for (size_t k = 0; k < lo.size(); ++k)
          DTD_CHECK(!(lo[k] > hi[k]), std::invalid_argument, "low > high for the z^beta bounds (first at flat index ",
                    k, ": ", py_float(lo[k]), " > ", py_float(hi[k]), ")");
        Box box;
        box.value = chain ? 0 : layer.inputs()[0];
        box.uniform = std::all_of(lo.begin(), lo.end(), [&](double v) { return v == lo[0]; }) &&
                      std::all_of(hi.begin(), hi.end(), [&](double v) { return v == hi[0]; });
        double widest = -std::numeric_limits<double>::infinity();
        for (size_t k = 0; k < lo.size(); ++k) widest = std::max(widest, hi[k] - lo[k]);
        box.tol = 1e-5 * std::max(1.0, widest);
        spec.low = lo;
        spec.high = hi;
        if (chain) {
          if constexpr (std::is_same_v<T, double>) {
            map_bounds(float64_net ? *float64_net : net, i, spec.low, spec.high);
          } else {
            DTD_CHECK(float64_net, std::invalid_argument, "ZBox on layer '", layer.name(),
                      "': mapping the bounds through the layers before it needs the float64 network");
            map_bounds(*float64_net, i, spec.low, spec.high);
          }
        }
        box.low = std::move(lo);
        box.high = std::move(hi);
        boxes_.push_back(std::move(box));
      }
    }
    spec.maxpool = maxpool;
    spec.add = add;
    spec.avgpool = avgpool;
    specs.push_back(std::move(spec));
    names_.push_back(std::move(name));
  }
  const double limit = static_cast<double>(std::numeric_limits<T>::max());
  for (const RuleSpec& spec : specs)
    for (const std::vector<double>* bound : {&spec.low, &spec.high}) {
      if (bound->empty()) continue;
      double m = 0;
      for (const double v : *bound) m = std::max(m, std::abs(v));
      DTD_CHECK(!(m > limit), std::invalid_argument, "z^beta bounds of magnitude up to ", py_g(m, 3), " do not fit in ",
                dtype_name<T>(), " (largest ", py_g(limit, 3), "); give finite bounds of the input's range");
    }
  plan_ = net.prepare(specs);
}

template <class T>
Explainer<T> Explainer<T>::sensitivity(const Network<T>& net) {
  Explainer e;
  e.net_ = &net;
  RuleSpec spec;
  spec.kind = RuleKind::gradient;
  e.plan_ = net.prepare(std::vector<RuleSpec>(net.size(), spec));
  e.names_.assign(net.size(), "gradient");
  e.gradient_ = true;
  return e;
}

template <class T>
void Explainer<T>::check_in_box(const Tensor<T>& x, const Trace<T>& trace) const {
  for (const Box& box : boxes_) {
    const Tensor<T>& source = box.value == 0 ? x : trace.values[static_cast<size_t>(box.value)];
    const size_t size = box.low.size();
    const Buffer<T>& a = source.data;
    if (box.uniform && !a.empty()) {
      // constant bounds (the common case): two reductions decide, comparing in T as numpy does with a Python float
      const auto [lo_it, hi_it] = std::minmax_element(a.begin(), a.end());
      const T amin = *lo_it, amax = *hi_it;
      if (amin >= static_cast<T>(box.low[0] - box.tol) && amax <= static_cast<T>(box.high[0] + box.tol)) continue;
    }
    size_t n_bad = 0;
    double worst = -std::numeric_limits<double>::infinity();
    for (size_t k = 0; k < a.size(); ++k) {
      const double v = static_cast<double>(a[k]), lo = box.low[k % size], hi = box.high[k % size];
      n_bad += (v < lo - box.tol) + (v > hi + box.tol);
      worst = std::max({worst, lo - v, v - hi});
    }
    if (n_bad == 0) continue;
    const std::string where =
        box.value == 0 ? "the input"
                       : "the output of layer '" + net_->layer(static_cast<size_t>(box.value - 1)).name() + "'";
    throw std::invalid_argument(std::to_string(n_bad) + " values of " + where + " lie outside [low, high] (by up to " +
                                py_g(worst, 4) +
                                "); the z^beta rule needs low <= x <= high: check the bounds match the preprocessing");
  }
}

Algorithm parse_algorithm(const std::string& name) {
  if (name == "exact") return Algorithm::exact;
  if (name == "winograd") return Algorithm::winograd;
  throw std::invalid_argument("unknown algorithm '" + name + "': expected 'exact' or 'winograd'");
}

template <class T>
Explanation<T> Explainer<T>::explain(const Tensor<T>& x, const Target& target, bool report, Algorithm algorithm) const {
  DTD_CHECK(algorithm == Algorithm::exact || (std::is_same_v<T, float>), std::invalid_argument,
            "algorithm 'winograd' is float32 only: float64 explanations use the exact products (pass float32 input, "
            "or algorithm 'exact')");
  if (gradient_) algorithm = Algorithm::exact;
  check_finite(x, "input");
  const Network<T>& net = *net_;
  const Trace<T> trace = net.trace(x, gradient_ ? nullptr : &plan_, algorithm);
  const Tensor<T>& y = trace.values[static_cast<size_t>(net.logits_value())];
  const int64_t n = x.batch(), n_out = numel(net.logits_shape());
  Explanation<T> out;
  out.logits.shape = {n, n_out};
  out.logits.data = y.data;
  check_in_box(x, trace);

  std::vector<Tensor<T>> passes = start_relevance(y, target, gradient_, out);
  const bool multi = out.multi;

  std::vector<std::vector<LayerReport>> reports(passes.size());
  std::vector<Tensor<T>> results;
  for (size_t p = 0; p < passes.size(); ++p)
    results.push_back(net.relevance(trace, passes[p], plan_, report ? &reports[p] : nullptr, algorithm));
  if (multi) {
    const auto kk = static_cast<int64_t>(results.size());
    const int64_t per = x.sample_size();
    Shape s{n, kk};
    s.insert(s.end(), x.shape.begin() + 1, x.shape.end());
    out.relevance = Tensor<T>::uninitialized(s);
    for (int64_t smp = 0; smp < n; ++smp)
      for (int64_t k = 0; k < kk; ++k)
        std::copy_n(results[static_cast<size_t>(k)].data.begin() + smp * per, per,
                    out.relevance.data.begin() + (smp * kk + k) * per);
  } else {
    out.relevance = std::move(results[0]);
  }
  check_finite(out.relevance, gradient_ ? "gradient" : "relevance");
  if (report) {
    const size_t kk = reports.size();
    for (size_t i = 0; i < net.size(); ++i) {
      LayerRelevance lr;
      lr.index = static_cast<int>(i);
      lr.name = net.layer(i).name();
      lr.kind = to_string(net.layer(i).kind());
      lr.rule = names_[i];
      const size_t ns = reports[0][i].relevance_out.size();
      lr.relevance_out.resize(ns * kk);
      lr.relevance_in.resize(ns * kk);
      for (size_t s = 0; s < ns; ++s)
        for (size_t k = 0; k < kk; ++k) {
          lr.relevance_out[s * kk + k] = reports[k][i].relevance_out[s];
          lr.relevance_in[s * kk + k] = reports[k][i].relevance_in[s];
        }
      out.layers.push_back(std::move(lr));
    }
  }
  return out;
}

template <class T>
std::vector<Tensor<T>> output_relevance(const Tensor<T>& logits, const Target& target) {
  Explanation<T> unused;
  return start_relevance(logits, target, false, unused);
}

template class Explainer<float>;
template class Explainer<double>;
template std::vector<int> resolve_rules(const Network<float>&, const Composite&);
template std::vector<int> resolve_rules(const Network<double>&, const Composite&);
template void check_finite(const Tensor<float>&, const std::string&);
template void check_finite(const Tensor<double>&, const std::string&);
template void check_finite(const float*, const Shape&, const std::string&);
template void check_finite(const double*, const Shape&, const std::string&);
template std::vector<Tensor<float>> output_relevance(const Tensor<float>&, const Target&);
template std::vector<Tensor<double>> output_relevance(const Tensor<double>&, const Target&);

}  // namespace dtd
