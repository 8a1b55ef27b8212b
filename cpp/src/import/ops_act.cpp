// The activation converters: Relu, Clip, the one-to-one activations, PRelu, Gelu, the erf form of GELU that
// fuse.cpp fuses, and Softmax/LogSoftmax at the head, each with its checks in a fixed order and fixed message
// wording (tests check both). Compiled with -ffp-contract=off like every importer file (cpp/CMakeLists.txt).
#include <algorithm>
#include <cmath>
#include <limits>

#include "ops.hpp"

namespace dtd::importer {

using detail::concat;

namespace {

/// Python's repr of a float that is not finite: inf, -inf, nan.
std::string float_repr(double v) {
  return std::isnan(v) ? "nan" : v > 0 ? "inf" : "-inf";
}

/// _clip: a ReLU when the bounds are [0, inf), else an ``activation`` clip (nullopt: no bound).
void add_clip(Context& ctx, const Node& node, std::optional<double> low, std::optional<double> high) {
  const std::string source = ctx.data_input(node, 0);
  if (low && std::isinf(*low) && *low < 0) low.reset();
  if (high && std::isinf(*high) && *high > 0) high.reset();
  if (low && *low == 0.0 && !high) {
    ctx.add_layer(node, LayerKind::relu, {source}, ctx.shape_of(source));
    return;
  }
  std::map<std::string, double> floats;
  if (low) floats["min"] = *low;
  if (high) floats["max"] = *high;
  add_activation(ctx, node, kClip, source, std::move(floats));
}

std::optional<double> clip_bound(const Context& ctx, const Node& node, size_t index, const char* what) {
  const Constant* value = ctx.optional_constant(node, index, what);
  if (!value) return std::nullopt;
  if (value->numel() != 1)
    throw ModelLoadError(
        concat(node.describe(), ": the ", what, " must be a scalar, got shape ", py_list(value->dims)));
  if (std::isnan(value->real[0])) throw ModelLoadError(concat(node.describe(), ": the ", what, " is NaN"));
  return value->real[0];
}

/// Whether `value` is the graph output, or feeds only a chain of shape ops (Reshape, Flatten, Squeeze, Unsqueeze,
/// Identity, Dropout) that ends at the graph output. Every node of the graph counts as a consumer (not only those the
/// output needs), but Shape and Size, which read only the shape.
bool reaches_output_through_reshapes(const Context& ctx, const Node& node, std::string value) {
  static const char* const reshape_ops[] = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"};
  const std::vector<ox::Node>& nodes = *ctx.graph_nodes;
  for (size_t step = 0; step < 1 + nodes.size(); ++step) {
    if (ctx.is_graph_output(value)) return true;
    const ox::Node* user = nullptr;
    size_t users = 0;
    for (const ox::Node& n : nodes) {
      if (n.op_type == "Shape" || n.op_type == "Size") continue;
      if (std::find(n.input.begin(), n.input.end(), value) == n.input.end()) continue;
      ++users;
      user = &n;
    }
    if (users != 1 || std::none_of(std::begin(reshape_ops), std::end(reshape_ops),
                                   [&](const char* op) { return user->op_type == op; }))
      return false;
    if (user->input[0] != value) return false;
    if (user->output.empty())  // schema.cpp requires an output of each of these ops; fixed IndexError wording
      throw ModelLoadError(concat(node.describe(), ": IndexError: list index out of range"));
    value = user->output[0];
  }
  return false;
}

}  // namespace

void add_activation(Context& ctx, const Node& node, ActivationOp op, const std::string& source,
                    std::map<std::string, double> floats, std::map<std::string, Array> weights) {
  for (const auto& [key, value] : floats)
    if (!std::isfinite(value) && key != "min" && key != "max")
      throw ModelLoadError(concat(node.describe(), ": attribute '", key, "' is ", float_repr(value)));
  ctx.add_layer(node, LayerKind::activation, {source}, ctx.shape_of(source), {{"op", {op}}}, std::move(floats),
                std::move(weights));
}

bool broadcasts_to(const std::vector<int64_t>& shape, const std::vector<int64_t>& target) {
  if (shape.size() > target.size()) return false;
  const size_t offset = target.size() - shape.size();
  for (size_t i = 0; i < shape.size(); ++i)
    if (shape[i] != 1 && shape[i] != target[offset + i]) return false;
  return true;
}

void convert_relu(Context& ctx, const Node& node) {
  const std::string source = ctx.data_input(node, 0);
  ctx.add_layer(node, LayerKind::relu, {source}, ctx.shape_of(source));
}

void convert_clip(Context& ctx, const Node& node) {
  if (node.opset() <= 10) {  // Clip-6: the bounds are attributes (defaults: the float range)
    const double float_max = static_cast<double>(std::numeric_limits<float>::max());
    const double low = node.float_attr("min", -float_max), high = node.float_attr("max", float_max);
    add_clip(ctx, node, low <= -float_max ? std::nullopt : std::optional<double>(low),
             high >= float_max ? std::nullopt : std::optional<double>(high));
    return;
  }
  const auto low = clip_bound(ctx, node, 1, "min");
  const auto high = clip_bound(ctx, node, 2, "max");
  add_clip(ctx, node, low, high);
}

/// The ONNX ops that are one ``activation`` with float attributes (their defaults are float32, as ONNX's are).
void convert_unary(Context& ctx, const Node& node) {
  struct Unary {
    const char* op;
    ActivationOp code;
    std::vector<std::pair<const char*, float>> params;
  };
  static const std::vector<Unary> table = {
      {"LeakyRelu", kLeakyRelu, {{"alpha", 0.01f}}},
      {"Elu", kElu, {{"alpha", 1.0f}}},
      {"Selu", kSelu, {{"alpha", 1.67326319217681884765625f}, {"gamma", 1.05070102214813232421875f}}},
      {"Sigmoid", kSigmoid, {}},
      {"Tanh", kTanh, {}},
      {"HardSigmoid", kHardSigmoid, {{"alpha", 0.2f}, {"beta", 0.5f}}},
      {"HardSwish", kHardSwish, {}},
      {"Softplus", kSoftplus, {}},
  };
  for (const Unary& u : table) {
    if (node.op_type() != u.op) continue;
    std::map<std::string, double> floats;
    for (const auto& [key, fallback] : u.params) floats[key] = node.float_attr(key, static_cast<double>(fallback));
    add_activation(ctx, node, u.code, ctx.data_input(node, 0), std::move(floats));
    return;
  }
}

/// PRelu with a constant slope, unidirectionally broadcast against the input (batch axis included).
void convert_prelu(Context& ctx, const Node& node) {
  const std::string source = ctx.data_input(node, 0);
  const Constant& constant = ctx.constant(node, 1, "slope");
  Array slope = to_array(constant);
  const auto rank = ctx.rank_of(source);
  const auto ndim = static_cast<int64_t>(slope.shape.size());
  if (rank && ndim > *rank - 1) {
    const int64_t per_sample = *rank - 1;
    const bool batch = ndim > *rank || std::any_of(slope.shape.begin(), slope.shape.end() - per_sample,
                                                   [](int64_t d) { return d != 1; });
    if (batch)
      throw UnsupportedModelError(concat(node.describe(), ": a slope of shape ", py_list(slope.shape),
                                         " that varies along the batch axis of the rank-", *rank,
                                         " input is not supported"));
    slope.shape.erase(slope.shape.begin(), slope.shape.end() - per_sample);
  }
  if (auto shape = ctx.sample_shape(source)) {
    if (!broadcasts_to(slope.shape, *shape))
      throw ModelLoadError(concat(node.describe(), ": the slope of shape ", py_list(slope.shape),
                                  " does not broadcast to the input's per-sample shape ", py_list(*shape)));
  }
  add_activation(ctx, node, kPRelu, source, {}, {{"slope", std::move(slope)}});
}

/// Gelu-20: approximate "none" (erf) or "tanh".
void convert_gelu(Context& ctx, const Node& node) {
  const std::string approximate = node.str_attr("approximate", "none");
  if (approximate != "none" && approximate != "tanh")
    throw ModelLoadError(concat(node.describe(), ": unknown approximate '", approximate, "' (expected none or tanh)"));
  add_activation(ctx, node, approximate == "none" ? kGelu : kGeluTanh, ctx.data_input(node, 0));
}

/// The erf form of GELU, x * 0.5 * (1 + erf(x / sqrt 2)), fused into one node by fuse.cpp.
void convert_erf_gelu(Context& ctx, const Node& node) {
  add_activation(ctx, node, kGelu, ctx.data_input(node, 0));
}

/// Softmax/LogSoftmax, allowed only as the head: the op producing the graph output, or followed only by shape ops
/// (Reshape, Flatten, Squeeze, Unsqueeze, Identity) on the way to it.
void convert_softmax(Context& ctx, const Node& node) {
  if (node.outputs().empty() || !reaches_output_through_reshapes(ctx, node, node.outputs()[0]))
    throw UnsupportedModelError(concat(node.describe(), ": ", node.op_type(),
                                       " is only supported as the head of the model (the last op, or followed only "
                                       "by Reshape/Flatten/Squeeze/Unsqueeze/Identity before the graph output); "
                                       "explanations start from its input, the logits"));
  const std::string source = ctx.data_input(node, 0);
  const auto rank = ctx.rank_of(source);
  const int64_t default_axis = node.opset() >= 13 ? -1 : 1;
  int64_t axis = node.int_attr("axis", default_axis);
  if (rank) {
    if (axis < -*rank || axis >= *rank)
      throw UnsupportedModelError(concat(node.describe(), ": axis ", axis, " is out of range for rank ", *rank));
    axis = ((axis % *rank) + *rank) % *rank;
    if (axis == 0)
      throw UnsupportedModelError(
          concat(node.describe(), ": a ", node.op_type(), " over the batch axis is not supported"));
    if (node.opset() < 13 && axis != *rank - 1) {
      const Dims shape = ctx.shape_of(source).value_or(Dims{});
      const bool several = std::any_of(shape.begin() + std::min<int64_t>(axis + 1, shape.size()), shape.end(),
                                       [](const std::optional<int64_t>& d) { return !d || *d != 1; });
      if (several)
        // Before opset 13 the op normalises over all axes from `axis` on, flattened together.
        throw UnsupportedModelError(concat(node.describe(), ": ", node.op_type(), "-", node.opset(), " with axis ",
                                           axis, " on a rank-", *rank,
                                           " input normalises over several axes at once; only the last axis is "
                                           "supported"));
      axis = *rank - 1;
    }
  }
  ctx.add_layer(node, node.op_type() == "Softmax" ? LayerKind::softmax : LayerKind::logsoftmax, {source},
                ctx.shape_of(source), {{"axis", {axis}}});
}

}  // namespace dtd::importer
