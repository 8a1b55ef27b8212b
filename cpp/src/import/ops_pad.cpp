// Pad -> pad layer, folded into the Conv / AveragePool / MaxPool after it where that is exact (the checks in a
// fixed order, the message wording fixed: tests check both).
//
// Opset < 11: the pads and value attributes; from 11: the pads and optional constant_value inputs; from 18: the
// optional axes input; mode wrap from 19. The batch axis cannot be padded.
#include "ops_pad.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <set>

namespace dtd::importer {

using detail::concat;

namespace {

__extension__ typedef __int128 Wide;  // Python's integers for the padded extents (pads up to +-2^63 each)

/// ONNX mode strings -> the C++ PadMode codes, and the opset each appeared in (in a fixed order).
struct Mode {
  const char* name;
  int64_t code;
  int64_t since;
};
constexpr Mode kModes[] = {{"constant", 0, 1}, {"reflect", 1, 1}, {"edge", 2, 1}, {"wrap", 3, 19}};

/// ['N', 3, None]: the Python list ['N', *shape[1:]].
std::string sample_list(const Dims& shape) {
  std::string out = "['N'";
  for (size_t i = 1; i < shape.size(); ++i) out += ", " + (shape[i] ? std::to_string(*shape[i]) : "None");
  return out + "]";
}

/// The refusal of a Pad whose output ONNX's shape inference computes with a negative extent, worded as the graph
/// checks before conversion word it (fixed wording, tests check it): for an input whose shape ONNX's inference knows
/// (every per-sample extent, the batch axis as the graph input declares it).
std::string geometry_message(const Context& ctx, const Node& node, const Dims& shape,
                             const std::vector<std::optional<Wide>>& extents) {
  auto dims = [&](const std::vector<std::string>& parts) {
    std::string out = "[";
    for (size_t i = 0; i < parts.size(); ++i) out += (i ? ", " : "") + parts[i];
    return out + "]";
  };
  std::vector<std::string> out{ctx.batch_text}, in{ctx.batch_text};
  for (size_t a = 1; a < shape.size(); ++a) {
    out.push_back(std::to_string(static_cast<long long>(*extents[a])));
    in.push_back(std::to_string(*shape[a]));
  }
  std::string given;
  for (size_t i = 0; i < node.inputs().size(); ++i) {
    const std::string& name = node.inputs()[i];
    if (name.empty()) continue;
    std::string text;
    if (i == 0) {
      text = dims(in);
    } else {
      auto c = ctx.constants.find(name);
      if (c == ctx.constants.end()) continue;  // not an initializer or a Constant's output: not in ONNX's types
      text = py_list(c->second.dims);
    }
    given += (given.empty() ? "" : ", ") + name + " " + text;
  }
  const std::string label = node.proto().name.empty() ? concat(node.op_type(), "_", node.index()) : node.proto().name;
  return concat("node Pad '", label, "': its output '", node.outputs().at(0), "' would have shape ", dims(out),
                ", with a negative axis (its pads crop more than the axis holds; inputs: ", given, ")");
}

/// float(c.reshape(-1)[0]) of a one-element constant.
double first_as_float(const Node& node, const Constant& c) {
  if (c.dtype == ox::kUint64) return static_cast<double>(static_cast<uint64_t>(c.integer.at(0)));
  if (!c.integer.empty()) return static_cast<double>(c.integer.at(0));
  if (!c.real.empty()) return c.real.at(0);  // a complex value's real part (NumPy warns, Python goes on)
  not_supported(node, concat("a constant_value of element type ", c.dtype_name()));
}

const std::vector<int64_t>& ints_of(const LayerSpec& spec, const char* key, const std::vector<int64_t>& fallback) {
  auto it = spec.ints.find(key);
  return it == spec.ints.end() ? fallback : it->second;
}

/// Whether constant pad layer `pad` folds exactly into the pads of `consumer` (a conv, avgpool or maxpool layer).
bool foldable_into(const Draft& pad, const Draft& consumer) {
  const std::vector<int64_t>& pads = pad.spec.ints.at("pads");
  if (pad.spec.ints.at("mode").at(0) != 0 || std::any_of(pads.begin(), pads.end(), [](int64_t p) { return p < 0; }))
    return false;
  const size_t rank = pads.size() / 2;
  // Only the spatial axes (2 ... rank-1 of NCHW) may be padded: the conv/pool pads cover those alone.
  static const std::vector<int64_t> none, zero{0};
  if (rank != 2 + ints_of(consumer.spec, "pads", none).size() / 2 || pads[1] || pads[rank + 1]) return false;
  const int64_t auto_pad = ints_of(consumer.spec, "auto_pad", zero).at(0);
  if (auto_pad != kNotSet && auto_pad != kValid) return false;
  if (ints_of(consumer.spec, "ceil_mode", zero).at(0)) return false;
  const double value = pad.spec.floats.at("value");
  switch (consumer.spec.kind) {
    case LayerKind::conv: return value == 0.0;
    case LayerKind::avgpool: return value == 0.0 && consumer.spec.ints.at("count_include_pad").at(0) != 0;
    case LayerKind::maxpool: return value == -std::numeric_limits<double>::infinity();
    default: return false;
  }
}

}  // namespace

void convert_pad(Context& ctx, const Node& node) {
  const std::string source = ctx.data_input(node, 0);
  const std::string mode_name = node.str_attr("mode", "constant");
  const Mode* mode = nullptr;
  for (const Mode& m : kModes)
    if (mode_name == m.name && node.opset() >= m.since) mode = &m;
  if (!mode) {
    std::string supported;
    for (const Mode& m : kModes)
      if (node.opset() >= m.since) supported += (supported.empty() ? "" : ", ") + std::string(m.name);
    throw UnsupportedModelError(concat(node.describe(), ": Pad mode '", mode_name, "' is not supported at opset ",
                                       node.opset(), " (supported: ", supported, ")"));
  }
  std::vector<int64_t> pads;
  double value = 0.0;
  std::optional<std::vector<int64_t>> axes;
  if (node.opset() < 11) {
    pads = node.ints_attr("pads", {});
    value = node.float_attr("value", 0.0);
  } else {
    pads = ctx.raw_constant(node, 1, "pads").as_ints(node.describe());
    if (!node.input(2).empty()) {
      const Constant& c = ctx.raw_constant(node, 2, "constant_value");
      if (c.numel() != 1)
        throw ModelLoadError(concat(node.describe(), ": constant_value must be a scalar, got ", c.numel(), " values"));
      value = first_as_float(node, c);
    }
    if (node.opset() >= 18 && !node.input(3).empty()) axes = ctx.raw_constant(node, 3, "axes").as_ints(node.describe());
  }
  const auto rank_found = ctx.rank_of(source);
  if (!rank_found)
    throw UnsupportedModelError(concat(node.describe(), ": the rank of '", node.input(0), "' is not known at import"));
  const int64_t rank = *rank_found;
  if (axes) {
    if (pads.size() != 2 * axes->size())
      throw ModelLoadError(
          concat(node.describe(), ": ", pads.size(), " pads for the ", axes->size(), " axes ", py_list(*axes)));
    std::vector<int64_t> full(static_cast<size_t>(2 * rank), 0);
    for (size_t k = 0; k < axes->size(); ++k) {
      const int64_t axis = (*axes)[k];
      if (axis < -rank || axis >= rank)
        throw ModelLoadError(concat(node.describe(), ": axis ", axis, " is out of range for rank ", rank));
      const auto a = static_cast<size_t>(((axis % rank) + rank) % rank);
      full[a] = pads[k];
      full[a + static_cast<size_t>(rank)] = pads[k + axes->size()];
    }
    pads = std::move(full);
  }
  if (static_cast<int64_t>(pads.size()) != 2 * rank)
    throw ModelLoadError(
        concat(node.describe(), ": ", pads.size(), " pads for a rank-", rank, " input (expected ", 2 * rank, ")"));
  const auto r = static_cast<size_t>(rank);
  if (pads[0] || pads[r])
    throw UnsupportedModelError(concat(node.describe(), ": pads ", py_list(pads),
                                       " pad or crop the batch axis; only per-sample axes can be padded"));
  const std::optional<Dims> shape = ctx.shape_of(source);
  std::optional<Dims> padded;  // the output's shape: an extent beyond int64 unknown
  if (shape) {
    std::vector<std::optional<Wide>> extents;
    for (size_t a = 0; a < r; ++a) {
      const auto& d = (*shape)[a];
      extents.push_back(d ? std::optional<Wide>(static_cast<Wide>(*d) + pads[a] + pads[r + a]) : std::nullopt);
    }
    for (size_t a = 1; a < r; ++a)
      if (extents[a] && *extents[a] < 0) {
        if (std::all_of(shape->begin() + 1, shape->end(), [](const auto& d) { return d.has_value(); }))
          throw ModelLoadError(geometry_message(ctx, node, *shape, extents));
        throw ModelLoadError(concat(node.describe(), ": pads ", py_list(pads), " crop more than the input '",
                                    node.input(0), "' (shape ", sample_list(*shape), ") has"));
      }
    for (size_t a = 1; a < r; ++a)
      if (extents[a] && *extents[a] == 0)
        throw UnsupportedModelError(concat(node.describe(), ": pads ", py_list(pads), " crop an axis of '",
                                           node.input(0), "' (shape ", sample_list(*shape),
                                           ") to length 0; empty tensors are not supported"));
    padded.emplace();
    for (const auto& e : extents)
      padded->push_back(e && *e <= std::numeric_limits<int64_t>::max()
                            ? std::optional<int64_t>(static_cast<int64_t>(*e))
                            : std::nullopt);
  }
  if (mode_name != "constant") value = 0.0;
  if (std::isnan(value)) throw UnsupportedModelError(concat(node.describe(), ": a NaN pad value is not supported"));
  if (std::all_of(pads.begin(), pads.end(), [](int64_t p) { return p == 0; })) {
    ctx.alias(node.outputs()[0], source);
    return;
  }
  ctx.add_layer(node, LayerKind::pad, {source}, padded, {{"pads", pads}, {"mode", {mode->code}}}, {{"value", value}});
}

std::vector<Draft*> fold_pads_into_consumers(Context& ctx, const std::string& output) {
  std::map<std::string, std::vector<Draft*>> users;
  for (Draft& layer : ctx.layers)
    for (const std::string& name : layer.spec.inputs) users[name].push_back(&layer);
  std::set<const Draft*> folded;
  for (Draft& pad : ctx.layers) {
    if (pad.spec.kind != LayerKind::pad || pad.spec.output == output) continue;
    auto found = users.find(pad.spec.output);
    if (found == users.end() || found->second.size() != 1) continue;
    Draft& consumer = *found->second[0];
    if (!foldable_into(pad, consumer)) continue;
    const std::vector<int64_t>& pads = pad.spec.ints.at("pads");
    const size_t rank = pads.size() / 2, spatial = rank - 2;
    const std::vector<int64_t> own = consumer.spec.ints.at("auto_pad").at(0) == kNotSet
                                         ? consumer.spec.ints.at("pads")
                                         : std::vector<int64_t>(2 * rank - 4, 0);
    std::vector<int64_t> merged(2 * spatial);
    for (size_t i = 0; i < spatial; ++i) {
      merged[i] = own[i] + pads[2 + i];
      merged[spatial + i] = own[spatial + i] + pads[rank + 2 + i];
    }
    consumer.spec.ints["pads"] = std::move(merged);
    consumer.spec.ints["auto_pad"] = {kNotSet};
    for (std::string& name : consumer.spec.inputs)
      if (name == pad.spec.output) name = pad.spec.inputs.at(0);
    consumer.source += concat(" (with ", pad.source, " folded in)");
    folded.insert(&pad);
  }
  std::vector<Draft*> out;
  for (Draft& layer : ctx.layers)
    if (!folded.count(&layer)) out.push_back(&layer);
  return out;
}

}  // namespace dtd::importer
