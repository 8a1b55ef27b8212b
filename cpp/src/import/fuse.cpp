// Pattern fusion on the ONNX graph, before conversion: subgraphs that exporters write for one function.
//
// The erf form of GELU (PyTorch before opset 20, Keras, older exporters):
//     u = x / 1.4142135   (or x * 0.70710677)
//     v = Erf(u) + 1
//     y = (x * v) * 0.5   (or (v * 0.5) * x, or (x * 0.5) * v; either operand order everywhere)
// is keyed on the Erf node: it is fused when every constant matches within 1e-6 and every intermediate value has no
// consumer but the next node of the pattern (and is not the graph output). The fused Gelu node replaces the pattern's
// last node and is converted by convert_erf_gelu.
//
// LayerNormalization decomposed (PyTorch's export before opset 17, F.layer_norm and hand-written LayerNorm2d):
//     m = ReduceMean(x, axes)            (keepdims=1; axes an attribute before opset 18, an input from 18)
//     d = x - m
//     v = ReduceMean(Pow(d, 2) or d * d, axes)
//     y = d / Sqrt(v + eps)
//     y = y * scale + bias               (each optional, constants, either operand order)
// is keyed on the first ReduceMean, under the same conditions (d feeds exactly the Pow/Mul and the Div). The fused
// LayerNormalization node (axes and epsilon attributes, "" for an absent scale or bias) is converted by
// convert_decomposed_layernorm, which checks that the axes are the trailing ones.
//
// The constants are what numpy_helper.to_array makes of the initializers and the Constant nodes' values: a scalar is
// a one-element array of NumPy kind f, i or u (so bool and bfloat16, whose ml_dtypes kind is V, never are; float8e5m2,
// of kind f, is), compared in float64.
#include "fuse.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace dtd::importer {

namespace {

constexpr double kTol = 1e-6;

/// One known constant value of the graph: a decoded initializer or Constant node value, with the tensor it came from
/// where there is one at hand (a Constant node's).
struct Value {
  const Constant* constant = nullptr;
  const ox::Tensor* tensor = nullptr;
  std::string name;
};

/// The element `i` of a float8e5m2 tensor (the upper byte of a float16), or nullopt when its data is missing.
std::optional<double> float8e5m2_at(const ox::Tensor& t, size_t i) {
  uint32_t byte = 0;
  if (t.has_raw_data) {
    if (t.raw_data.size() <= i) return std::nullopt;
    byte = static_cast<unsigned char>(t.raw_data[i]);
  } else {
    if (t.int32_data.size() <= i) return std::nullopt;
    byte = static_cast<uint32_t>(t.int32_data[i]) & 0xffu;
  }
  const uint32_t exponent = (byte >> 2) & 0x1fu, mantissa = byte & 0x3u;
  double v;
  if (exponent == 0)
    v = std::ldexp(static_cast<double>(mantissa), -16);
  else if (exponent == 31)
    v = mantissa ? std::nan("") : HUGE_VAL;
  else
    v = std::ldexp(static_cast<double>(mantissa + 4), static_cast<int>(exponent) - 17);
  return (byte & 0x80u) ? -v : v;
}

class Graph {
 public:
  Graph(const ox::Graph& graph, const std::vector<size_t>& order, const std::map<std::string, Constant>& consts,
        std::string output)
      : nodes(graph.node), output(std::move(output)), graph_(graph) {
    for (const auto& [name, value] : consts) values_[name] = Value{&value, nullptr, name};
    for (size_t i : order) {
      const ox::Node& node = nodes[i];
      for (const std::string& name : node.output)
        if (!name.empty()) producer[name] = i;
      for (const std::string& name : node.input)
        if (!name.empty()) consumers[name].push_back(i);
      if (node.op_type != "Constant" || node.output.empty()) continue;
      for (const ox::Attribute& attr : node.attribute) {
        if (attr.name == "value") {
          // A malformed tensor is reported by the Constant's converter, which names the node.
          if (!attr.t) continue;
          try {
            owned_[node.output[0]] = decode_tensor(*attr.t);
          } catch (const ModelLoadError&) {
            continue;
          }
          values_[node.output[0]] = Value{&owned_[node.output[0]], &*attr.t, node.output[0]};
        } else if (attr.name == "value_float") {
          Constant c;
          c.dtype = ox::kFloat;
          c.real = {static_cast<double>(attr.f)};
          owned_[node.output[0]] = std::move(c);
          values_[node.output[0]] = Value{&owned_[node.output[0]], nullptr, node.output[0]};
        }
      }
    }
  }

  const std::vector<ox::Node>& nodes;
  const std::string output;
  std::map<std::string, size_t> producer;
  std::map<std::string, std::vector<size_t>> consumers;

  bool is_value(const std::string& name) const { return values_.count(name) != 0; }

  /// _Graph.scalar: the value of a one-element constant of NumPy kind f, i or u, else nullopt.
  std::optional<double> scalar(const std::string& name) const {
    auto it = values_.find(name);
    if (it == values_.end() || it->second.constant->numel() != 1) return std::nullopt;
    return element(it->second, 0, false);
  }

  bool is_scalar(const std::string& name, double value) const {
    auto got = scalar(name);
    return got && std::abs(*got - value) <= kTol;
  }

  /// [int(a) for a in value.reshape(-1)] (nullopt for an empty value, and where Python's int() would fail).
  std::optional<std::vector<int64_t>> ints(const std::string& name) const {
    const Value& v = values_.at(name);
    const int64_t n = v.constant->numel();
    if (n == 0) return std::nullopt;
    if (v.constant->is_integer()) {
      // A uint64 beyond int64 (stored negative) could not be an entry of the fused node's INTS attribute.
      const std::vector<int64_t>& values = v.constant->integer;
      if (v.constant->dtype == ox::kUint64 &&
          std::any_of(values.begin(), values.end(), [](int64_t a) { return a < 0; }))
        return std::nullopt;
      return values;
    }
    std::vector<int64_t> out;
    for (int64_t i = 0; i < n; ++i) {
      // Beyond int64, the fused node's INTS attribute could not hold it (helper.make_node raises).
      auto e = element(v, static_cast<size_t>(i), true);
      if (!e || !std::isfinite(*e) || std::abs(*e) >= 0x1p63) return std::nullopt;
      out.push_back(static_cast<int64_t>(std::trunc(*e)));
    }
    return out;
  }

  /// The one node consuming `name`, when it has exactly one and is not the graph output.
  std::optional<size_t> only_consumer(const std::string& name) const {
    auto it = consumers.find(name);
    if (it == consumers.end() || it->second.size() != 1 || name == output) return std::nullopt;
    return it->second[0];
  }

  /// For node `index` of type `op_type` with `operand` as one of its two inputs: the other input.
  std::optional<std::string> binary(size_t index, const char* op_type, const std::string& operand) const {
    const ox::Node& node = nodes[index];
    if (node.op_type != op_type || node.input.size() != 2 || node.output.size() != 1) return std::nullopt;
    if (node.input[0] == operand) return node.input[1];
    if (node.input[1] == operand) return node.input[0];
    return std::nullopt;
  }

  std::optional<size_t> producer_of(const std::string& name) const {
    auto it = producer.find(name);
    if (it == producer.end()) return std::nullopt;
    return it->second;
  }

 private:
  /// Element `i` as float64 (Python's float() of it); `any_kind` also takes bool and bfloat16 (int() of them works).
  std::optional<double> element(const Value& v, size_t i, bool any_kind) const {
    const Constant& c = *v.constant;
    switch (c.dtype) {
      case ox::kFloat:
      case ox::kDouble:
      case ox::kFloat16: return c.real.size() > i ? std::optional<double>(c.real[i]) : std::nullopt;
      case ox::kBfloat16: return any_kind && c.real.size() > i ? std::optional<double>(c.real[i]) : std::nullopt;
      case ox::kBool:
        return any_kind && c.integer.size() > i ? std::optional<double>(static_cast<double>(c.integer[i]))
                                                : std::nullopt;
      case ox::kUint64:
        return c.integer.size() > i ? std::optional<double>(static_cast<double>(static_cast<uint64_t>(c.integer[i])))
                                    : std::nullopt;
      case ox::kFloat8E5M2: {
        const ox::Tensor* t = v.tensor ? v.tensor : initializer(v.name);
        return t ? float8e5m2_at(*t, i) : std::nullopt;
      }
      default:
        if (c.is_integer() && c.integer.size() > i) return static_cast<double>(c.integer[i]);
        return std::nullopt;
    }
  }

  /// The (last) initializer called `name`.
  const ox::Tensor* initializer(const std::string& name) const {
    const ox::Tensor* found = nullptr;
    for (const ox::Tensor& t : graph_.initializer)
      if (t.name == name) found = &t;
    return found;
  }

  const ox::Graph& graph_;
  std::map<std::string, Value> values_;
  std::map<std::string, Constant> owned_;
};

/// The erf form of GELU around Erf node `erf`: x, the index of the last node, the indices of the pattern's nodes.
struct ErfMatch {
  std::string x;
  size_t last;
  std::set<size_t> members;
};

std::optional<ErfMatch> erf_gelu(const Graph& g, size_t erf) {
  const ox::Node& node = g.nodes[erf];
  if (node.input.size() != 1 || node.output.size() != 1) return std::nullopt;
  const std::string& u = node.input[0];
  const auto scale = g.producer_of(u);
  if (!scale || g.only_consumer(u) != erf) return std::nullopt;
  const ox::Node& snode = g.nodes[*scale];
  std::optional<std::string> x;
  if (snode.op_type == "Div" && snode.input.size() == 2 && g.is_scalar(snode.input[1], std::sqrt(2.0))) {
    x = snode.input[0];
  } else if (snode.op_type == "Mul" && snode.input.size() == 2) {
    for (size_t k = 0; k < 2; ++k)
      if (g.is_scalar(snode.input[k], std::sqrt(0.5)) && !g.scalar(snode.input[1 - k])) x = snode.input[1 - k];
  }
  if (!x) return std::nullopt;
  const std::string& v = node.output[0];
  const auto add = g.only_consumer(v);
  if (!add) return std::nullopt;
  const auto one = g.binary(*add, "Add", v);
  if (!one || !g.is_scalar(*one, 1.0)) return std::nullopt;
  const std::string& w = g.nodes[*add].output[0];
  const auto first = g.only_consumer(w);
  if (!first) return std::nullopt;
  const auto other = g.binary(*first, "Mul", w);
  if (!other) return std::nullopt;
  std::set<size_t> members{*scale, erf, *add, *first};
  const std::string& t = g.nodes[*first].output[0];
  if (*other == *x || g.is_scalar(*other, 0.5)) {
    // (x * v) * 0.5 or (v * 0.5) * x: one more Mul, by whichever factor the first one lacked.
    const auto last = g.only_consumer(t);
    if (!last) return std::nullopt;
    const auto factor = g.binary(*last, "Mul", t);
    if (!factor || !(*other == *x ? g.is_scalar(*factor, 0.5) : *factor == *x)) return std::nullopt;
    members.insert(*last);
    return ErfMatch{*x, *last, members};
  }
  // (x * 0.5) * v: the other operand is a Mul of x by 0.5 that feeds only this node.
  const auto half = g.producer_of(*other);
  if (!half || g.only_consumer(*other) != *first) return std::nullopt;
  const auto factor = g.binary(*half, "Mul", *x);
  if (!factor || !g.is_scalar(*factor, 0.5)) return std::nullopt;
  members.insert(*half);
  return ErfMatch{*x, *first, members};
}

/// The constant axes of a ReduceMean with keepdims=1, or nullopt (absent axes, computed axes, keepdims=0).
std::optional<std::vector<int64_t>> reduce_axes(const Graph& g, size_t index, int64_t opset) {
  const ox::Node& node = g.nodes[index];
  if (node.op_type != "ReduceMean" || node.output.size() != 1 || node.input.empty()) return std::nullopt;
  const ox::Attribute* axes = nullptr;
  int64_t keepdims = 1;
  for (const ox::Attribute& a : node.attribute) {  // the last of a name wins, as in a dict (schema.cpp refuses twins)
    if (a.name == "keepdims") keepdims = a.type == ox::Attribute::kFloat ? static_cast<int64_t>(a.f) : a.i;
    if (a.name == "axes") axes = &a;
  }
  if (keepdims != 1) return std::nullopt;
  if (opset < 18) {
    if (!axes || node.input.size() != 1) return std::nullopt;
    if (axes->type == ox::Attribute::kInts) return axes->ints;
    std::vector<int64_t> out;  // floats: int() of each (schema.cpp allows only ints)
    for (float f : axes->floats) out.push_back(static_cast<int64_t>(std::trunc(f)));
    return out;
  }
  if (node.input.size() != 2 || !g.is_value(node.input[1])) return std::nullopt;
  return g.ints(node.input[1]);
}

struct LayerNormMatch {
  std::vector<std::string> inputs;  // x, scale or "", bias or ""
  std::vector<int64_t> axes;
  double epsilon;
  size_t last;
  std::set<size_t> members;
};

/// The decomposed LayerNormalization keyed on ReduceMean node `mean`.
std::optional<LayerNormMatch> layernorm(const Graph& g, size_t mean, int64_t opset) {
  const auto axes = reduce_axes(g, mean, opset);
  if (!axes) return std::nullopt;
  const std::string& x = g.nodes[mean].input[0];
  const std::string& m = g.nodes[mean].output[0];
  const auto sub = g.only_consumer(m);
  if (!sub || g.nodes[*sub].op_type != "Sub" || g.nodes[*sub].input != std::vector<std::string>{x, m})
    return std::nullopt;
  if (g.nodes[*sub].output.empty()) return std::nullopt;  // schema.cpp requires the output
  const std::string& d = g.nodes[*sub].output[0];
  std::vector<size_t> users;
  if (auto it = g.consumers.find(d); it != g.consumers.end()) users = it->second;
  std::sort(users.begin(), users.end());
  users.erase(std::unique(users.begin(), users.end()), users.end());  // Mul(d, d) lists its node twice
  if (users.size() != 2 || d == g.output) return std::nullopt;
  std::optional<size_t> square, div;
  for (size_t user : users) {
    const ox::Node& unode = g.nodes[user];
    const bool pow2 = unode.op_type == "Pow" && unode.input.size() == 2 && g.is_scalar(unode.input[1], 2.0);
    if (pow2 && unode.input[0] == d)
      square = user;
    else if (unode.op_type == "Mul" && unode.input == std::vector<std::string>{d, d})
      square = user;
    else if (unode.op_type == "Div" && unode.input.size() == 2 && unode.input[0] == d)
      div = user;
  }
  if (!square || !div || g.nodes[*square].output.size() != 1) return std::nullopt;
  const auto var = g.only_consumer(g.nodes[*square].output[0]);
  if (!var || reduce_axes(g, *var, opset) != axes) return std::nullopt;
  const std::string& variance = g.nodes[*var].output[0];
  const auto add = g.only_consumer(variance);
  if (!add) return std::nullopt;
  const auto eps_name = g.binary(*add, "Add", variance);
  const auto eps = eps_name ? g.scalar(*eps_name) : std::nullopt;
  if (!eps || !(*eps >= 0 && std::isfinite(*eps))) return std::nullopt;
  const auto sqrt = g.only_consumer(g.nodes[*add].output[0]);
  if (!sqrt || g.nodes[*sqrt].op_type != "Sqrt" || g.nodes[*sqrt].output.size() != 1) return std::nullopt;
  const std::string& root = g.nodes[*sqrt].output[0];
  if (g.only_consumer(root) != div || g.nodes[*div].input != std::vector<std::string>{d, root}) return std::nullopt;
  LayerNormMatch match{{x, "", ""}, *axes, *eps, *div, {mean, *sub, *square, *var, *add, *sqrt, *div}};
  for (const char* op_type : {"Mul", "Add"}) {
    const std::string& y = g.nodes[match.last].output[0];
    const auto next = g.only_consumer(y);
    const auto operand = next ? g.binary(*next, op_type, y) : std::nullopt;
    if (!next || !operand || !g.is_value(*operand)) continue;
    match.inputs[op_type[0] == 'M' ? 1 : 2] = *operand;
    match.last = *next;
    match.members.insert(*next);
  }
  return match;
}

/// A non-negative double rounded to float32 as protobuf stores it (to nearest, ties to even; beyond the float range,
/// infinity), without the undefined behaviour of converting a value out of the float range.
float to_float32(double v) {
  const double max = std::numeric_limits<float>::max();
  if (v <= max) return static_cast<float>(v);
  return v < max + std::ldexp(1.0, 103) ? std::numeric_limits<float>::max() : std::numeric_limits<float>::infinity();
}

bool overlaps(const std::set<size_t>& a, const std::set<size_t>& b) {
  return std::any_of(a.begin(), a.end(), [&](size_t i) { return b.count(i) != 0; });
}

}  // namespace

Fusion find_fusions(const ox::Graph& graph, const std::vector<size_t>& order,
                    const std::map<std::string, Constant>& consts, const std::string& output,
                    const std::vector<std::string>& names, int64_t opset) {
  const Graph g(graph, order, consts, output);
  Fusion fusion;
  for (size_t i : order) {
    if (g.nodes[i].op_type != "ReduceMean" || fusion.absorbed.count(i)) continue;
    auto ln = layernorm(g, i, opset);
    if (!ln || overlaps(ln->members, fusion.absorbed) || fusion.replacements.count(ln->last)) continue;
    ox::Node fused;
    fused.op_type = "LayerNormalization";
    fused.name = names[i];
    fused.input = ln->inputs;
    fused.output = {g.nodes[ln->last].output[0]};
    // helper.make_node's attributes: axes as INTS, epsilon as a FLOAT (so rounded to float32).
    ox::Attribute axes;
    axes.name = "axes";
    axes.type = ox::Attribute::kInts;
    axes.ints = ln->axes;
    ox::Attribute epsilon;
    epsilon.name = "epsilon";
    epsilon.type = ox::Attribute::kFloat;
    epsilon.f = to_float32(ln->epsilon);
    fused.attribute.push_back(std::move(axes));
    fused.attribute.push_back(std::move(epsilon));
    fusion.replacements[ln->last] = FusedNode{std::move(fused), convert_decomposed_layernorm};
    for (size_t member : ln->members)
      if (member != ln->last) fusion.absorbed.insert(member);
  }
  for (size_t i : order) {
    if (g.nodes[i].op_type != "Erf" || fusion.absorbed.count(i)) continue;
    auto match = erf_gelu(g, i);
    if (!match || overlaps(match->members, fusion.absorbed)) continue;
    ox::Node fused;
    fused.op_type = "Gelu";
    fused.name = names[i];
    fused.input = {match->x};
    fused.output = {g.nodes[match->last].output[0]};
    fusion.replacements[match->last] = FusedNode{std::move(fused), convert_erf_gelu};
    for (size_t member : match->members)
      if (member != match->last) fusion.absorbed.insert(member);
  }
  return fusion;
}

}  // namespace dtd::importer
