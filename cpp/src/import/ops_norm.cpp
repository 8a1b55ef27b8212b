// The LayerNormalization converters: the ONNX op (opset 17) and the decomposed form that fuse.cpp finds written out
// with ReduceMean, each with its checks in a fixed order and fixed message wording (tests check both).
// (BatchNormalization is in ops.cpp.)
#include <algorithm>
#include <set>

#include "ops.hpp"

namespace dtd::importer {

using detail::concat;

namespace {

/// ['N', 3, 4]: the Python list ['N', *sample].
std::string n_sample(const std::vector<int64_t>& sample) {
  Dims dims{std::nullopt};
  dims.insert(dims.end(), sample.begin(), sample.end());
  return n_list(dims);
}

/// np.broadcast_to(value, target) of a float constant, as a float64 array of shape `target`.
Array broadcast_to(const Constant& value, const std::vector<int64_t>& target) {
  Array out;
  out.shape = target;
  int64_t n = 1;
  for (int64_t d : target) n *= d;
  out.data.resize(static_cast<size_t>(n));
  const size_t rank = target.size(), offset = rank - value.dims.size();
  std::vector<int64_t> index(rank, 0);
  for (int64_t flat = 0; flat < n; ++flat) {
    int64_t from = 0;
    for (size_t i = offset; i < rank; ++i) {
      const int64_t extent = value.dims[i - offset];
      from = from * extent + (extent == 1 ? 0 : index[i]);
    }
    out.data[static_cast<size_t>(flat)] = value.real[static_cast<size_t>(from)];
    for (size_t i = rank; i-- > 0;) {
      if (++index[i] < target[i]) break;
      index[i] = 0;
    }
  }
  return out;
}

/// _layernorm_input: the data input and its per-sample shape, which must be known.
std::pair<std::string, std::vector<int64_t>> layernorm_input(Context& ctx, const Node& node) {
  std::string source = ctx.data_input(node, 0);
  auto sample = ctx.sample_shape(node.input(0));
  if (!sample)
    throw UnsupportedModelError(concat(node.describe(), ": the shape of its input '", node.input(0),
                                       "' is not known at import (shape inference gives ",
                                       shape_text(ctx.shape_of(node.input(0))), ")"));
  return {std::move(source), std::move(*sample)};
}

/// _add_layernorm: a ``layernorm`` layer over the axes axis..rank-1, the scale (ones when absent) and the optional
/// bias broadcast to the normalised shape.
void add_layernorm(Context& ctx, const Node& node, const std::string& source, const std::vector<int64_t>& sample,
                   int64_t axis, const std::string& given, bool scale_required) {
  if (axis == 0)
    throw UnsupportedModelError(
        concat(node.describe(), ": ", given, " normalises over the batch axis; only axes >= 1 are supported"));
  const std::vector<int64_t> groups(sample.begin() + (axis - 1), sample.end());
  std::map<std::string, Array> weights;
  const struct {
    size_t index;
    const char* key;
    const char* what;
  } params[] = {{1, "scale", "Scale"}, {2, "bias", "B"}};
  for (const auto& p : params) {
    const bool required = p.index == 1 && scale_required;
    const Constant* value =
        required ? &ctx.constant(node, p.index, p.what) : ctx.optional_constant(node, p.index, p.what);
    if (!value) {
      if (p.index == 1) {
        int64_t n = 1;
        for (int64_t d : groups) n *= d;
        weights[p.key] = Array{groups, std::vector<double>(static_cast<size_t>(n), 1.0)};
      }
      continue;
    }
    if (!broadcasts_to(value->dims, groups))
      throw ModelLoadError(concat(node.describe(), ": ", p.what, " has shape ", py_list(value->dims),
                                  ", which does not broadcast to the normalised shape ", py_list(groups), " (input ",
                                  n_sample(sample), ", ", given, ")"));
    weights[p.key] = broadcast_to(*value, groups);
  }
  const double epsilon = node.float_attr("epsilon", 1e-5);
  ctx.add_layer(node, LayerKind::layernorm, {source}, ctx.shape_of(source), {{"axis", {axis}}}, {{"epsilon", epsilon}},
                std::move(weights));
}

}  // namespace

/// LayerNormalization (opset 17) -> layernorm: normalises the axes axis..rank-1 of each sample.
void convert_layernorm(Context& ctx, const Node& node) {
  for (size_t i = 1; i < node.outputs().size(); ++i) {
    const std::string& name = node.outputs()[i];
    auto it = ctx.consumers.find(name);
    if (!name.empty() && it != ctx.consumers.end() && it->second > 0)
      throw UnsupportedModelError(
          concat(node.describe(), ": only the first output (Y) is supported; Mean / InvStdDev are used"));
  }
  const auto [source, sample] = layernorm_input(ctx, node);
  const auto rank = static_cast<int64_t>(sample.size()) + 1;
  const int64_t given = node.int_attr("axis", -1);
  const int64_t axis = given < 0 ? given + rank : given;
  if (axis < 0 || axis >= rank)
    throw ModelLoadError(concat(node.describe(), ": axis ", given, " is out of range for rank ", rank));
  add_layernorm(ctx, node, source, sample, axis, concat("axis ", given), true);
}

/// The LayerNormalization that fuse.cpp found written out (ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, then an
/// optional Mul by the scale and Add of the bias): the mean and variance must be taken over the trailing axes.
/// Inputs: x, scale or "", bias or ""; attributes axes and epsilon.
void convert_decomposed_layernorm(Context& ctx, const Node& node) {
  const auto [source, sample] = layernorm_input(ctx, node);
  const auto rank = static_cast<int64_t>(sample.size()) + 1;
  const std::vector<int64_t> given = node.ints_attr("axes", {});
  if (given.empty() || std::any_of(given.begin(), given.end(), [&](int64_t a) { return a < -rank || a >= rank; }))
    throw ModelLoadError(
        concat(node.describe(), ": ReduceMean axes ", py_list(given), " are out of range for rank ", rank));
  std::set<int64_t> unique;
  for (int64_t a : given) unique.insert(((a % rank) + rank) % rank);
  const std::vector<int64_t> axes(unique.begin(), unique.end());
  bool trailing = true;
  for (size_t i = 0; i < axes.size(); ++i) trailing = trailing && axes[i] == axes[0] + static_cast<int64_t>(i);
  trailing = trailing && axes.back() == rank - 1;
  if (!trailing)
    throw UnsupportedModelError(concat(node.describe(),
                                       " (written out with ReduceMean): the mean and variance are taken over the axes ",
                                       py_list(given), " of the input ", n_sample(sample),
                                       "; only the trailing axes (a layer normalisation) are supported"));
  add_layernorm(ctx, node, source, sample, axes[0], concat("axes ", py_list(given)), false);
}

}  // namespace dtd::importer
