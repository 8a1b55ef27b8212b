// Data movements on per-sample axes: Slice, Split and Gather (including the gather PyTorch writes for as_strided
// after flattening the whole batch), with their checks in a fixed order and fixed message wording (tests check both),
// and the shapes ONNX shape inference gives their outputs.
#include <algorithm>
#include <numeric>

#include "ops.hpp"

namespace dtd::importer {

using detail::concat;

namespace {

/// An end at or beyond this is "to the end of the axis" (PyTorch writes INT64_MAX, others INT32_MAX).
constexpr int64_t kToTheEnd = (int64_t{1} << 31) - 1;

/// A non-negative axis of data value `source` (batch counted), checked against its rank.
int64_t data_axis(const Context& ctx, const Node& node, const std::string& source, int64_t axis) {
  auto rank = ctx.rank_of(source);
  if (rank) {
    if (axis < -*rank || axis >= *rank)
      throw ModelLoadError(concat(node.describe(), ": axis ", axis, " is out of range for rank ", *rank));
    axis = ((axis % *rank) + *rank) % *rank;
  } else if (axis < 0) {
    throw UnsupportedModelError(concat(node.describe(), ": the rank of '", node.input(0),
                                       "' is not known, so the negative axis ", axis, " cannot be placed"));
  }
  if (axis == 0)
    throw UnsupportedModelError(concat(node.describe(), ": ", node.op_type(),
                                       " on the batch axis (axis 0) is not supported; only per-sample axes can be "
                                       "sliced, split or gathered"));
  return axis;
}

/// The shape of `source` as text: "['N', 3, None]" or "unknown".
std::string shape_text(const Context& ctx, const std::string& source) {
  auto shape = ctx.shape_of(source);
  if (!shape) return "unknown";
  std::string out = "[";
  for (size_t i = 0; i < shape->size(); ++i)
    out += (i ? ", " : "") + (i == 0 ? std::string("'N'") : (*shape)[i] ? std::to_string(*(*shape)[i]) : "None");
  return out + "]";
}

std::optional<std::vector<int64_t>> ints_input(const Context& ctx, const Node& node, size_t index, const char* what) {
  if (node.input(index).empty()) return std::nullopt;
  return ctx.raw_constant(node, index, what).as_ints(node.describe());
}

/// len(range(*slice(start, end, step).indices(extent))).
int64_t slice_length(int64_t start, int64_t end, int64_t step, int64_t extent) {
  auto adjust = [&](int64_t v) {
    if (v < 0) {
      v += extent;
      if (v < 0) v = step < 0 ? -1 : 0;
    } else if (v >= extent) {
      v = step < 0 ? extent - 1 : extent;
    }
    return v;
  };
  const int64_t s = adjust(start), e = adjust(end);
  if (step > 0) return s < e ? (e - s - 1) / step + 1 : 0;
  // step < 0: the count of s, s + step, ... above e
  return s > e ? static_cast<int64_t>((static_cast<uint64_t>(s - e) - 1) / (0 - static_cast<uint64_t>(step))) + 1 : 0;
}

}  // namespace

void convert_slice(Context& ctx, const Node& node) {
  const std::string source = ctx.data_input(node, 0);
  std::vector<int64_t> starts, ends;
  std::optional<std::vector<int64_t>> axes, steps;
  if (node.opset() < 10) {
    starts = node.ints_attr("starts", {});
    ends = node.ints_attr("ends", {});
    axes = node.optional_ints("axes");
  } else {
    starts = ints_input(ctx, node, 1, "starts").value_or(std::vector<int64_t>{});
    ends = ints_input(ctx, node, 2, "ends").value_or(std::vector<int64_t>{});
    axes = ints_input(ctx, node, 3, "axes");
    steps = ints_input(ctx, node, 4, "steps");
  }
  if (!axes) {
    axes.emplace(starts.size());
    std::iota(axes->begin(), axes->end(), 0);
  }
  if (!steps) steps.emplace(starts.size(), 1);
  if (!(starts.size() == ends.size() && ends.size() == axes->size() && axes->size() == steps->size()))
    throw ModelLoadError(concat(node.describe(), ": starts ", py_list(starts), ", ends ", py_list(ends), ", axes ",
                                py_list(*axes), " and steps ", py_list(*steps), " differ in length"));
  struct Keep {
    int64_t start, end, axis, step;
  };
  std::vector<Keep> keep;
  for (size_t k = 0; k < starts.size(); ++k) {
    const int64_t start = starts[k], end = ends[k], axis = (*axes)[k], step = (*steps)[k];
    if (step == 0) throw ModelLoadError(concat(node.describe(), ": a step of 0 on axis ", axis));
    auto rank = ctx.rank_of(source);
    if ((axis == 0 || (rank && axis == -*rank)) && start == 0 && end >= kToTheEnd && step == 1)
      continue;  // the whole batch axis: a no-op
    keep.push_back({start, end, data_axis(ctx, node, source, axis), step});
  }
  auto shape = ctx.shape_of(source);
  for (const Keep& k : keep) {
    auto extent = ctx.dim_of(source, k.axis);
    if (extent && slice_length(k.start, k.end, k.step, *extent) == 0)
      throw UnsupportedModelError(concat(node.describe(), ": the slice [", k.start, ":", k.end, ":", k.step,
                                         "] of axis ", k.axis, " (length ", *extent, ") of '", node.input(0),
                                         "' (shape ", shape_text(ctx, source),
                                         ") is empty; empty tensors are not supported"));
    if (shape && k.axis < static_cast<int64_t>(shape->size())) {
      auto& d = (*shape)[static_cast<size_t>(k.axis)];
      if (d) d = slice_length(k.start, k.end, k.step, *d);
    }
  }
  if (keep.empty()) {
    ctx.alias(node.outputs()[0], source);
    return;
  }
  std::map<std::string, std::vector<int64_t>> ints;
  for (const Keep& k : keep) {
    ints["starts"].push_back(k.start);
    ints["ends"].push_back(k.end);
    ints["axes"].push_back(k.axis);
    ints["steps"].push_back(k.step);
  }
  ctx.add_layer(node, LayerKind::slice, {source}, shape, std::move(ints));
}

void convert_split(Context& ctx, const Node& node) {
  const std::string source = ctx.data_input(node, 0);
  const int64_t axis = data_axis(ctx, node, source, node.int_attr("axis", 0));
  auto extent = ctx.dim_of(source, axis);
  std::optional<std::vector<int64_t>> sizes =
      node.opset() < 13 ? node.optional_ints("split") : ints_input(ctx, node, 1, "split");
  const auto outputs = static_cast<int64_t>(node.outputs().size());
  int64_t count = outputs;
  if (!sizes) {
    if (!extent)
      throw UnsupportedModelError(
          concat(node.describe(), ": the length of axis ", axis, " of '", node.input(0), "' is not known at import"));
    if (node.opset() >= 18 && node.has("num_outputs")) {
      count = node.int_attr("num_outputs", count);
      if (count == 0)
        throw ModelLoadError(concat(node.describe(), ": ZeroDivisionError: integer division or modulo by zero"));
      // -(-extent // count), Python's floor division
      const int64_t q = -*extent / count,
                    floor_q = (-*extent % count != 0 && ((-*extent < 0) != (count < 0))) ? q - 1 : q;
      const int64_t part = -floor_q;
      sizes.emplace();
      for (int64_t k = 0; k < count; ++k) sizes->push_back(std::min(part, *extent - k * part));
    } else if (*extent % count) {
      throw ModelLoadError(concat(node.describe(), ": axis ", axis, " of length ", *extent, " does not split into ",
                                  count, " equal parts"));
    } else {
      sizes.emplace(static_cast<size_t>(count), *extent / count);
    }
  }
  bool bad = static_cast<int64_t>(sizes->size()) != outputs;
  for (int64_t s : *sizes) bad = bad || s < 0;
  if (bad)
    throw ModelLoadError(concat(node.describe(), ": split sizes ", py_list(*sizes), " for ", outputs, " outputs"));
  if (std::find(sizes->begin(), sizes->end(), 0) != sizes->end())
    throw UnsupportedModelError(concat(node.describe(), ": split sizes ", py_list(*sizes), " of axis ", axis, " of '",
                                       node.input(0), "' (shape ", shape_text(ctx, source),
                                       ") make empty outputs; empty tensors are not supported"));
  int64_t total = 0;
  for (int64_t s : *sizes) total += s;
  if (extent && total != *extent)
    throw ModelLoadError(
        concat(node.describe(), ": split sizes ", py_list(*sizes), " do not add up to the axis length ", *extent));
  int64_t start = 0;
  for (size_t k = 0; k < sizes->size(); ++k) {
    const std::string& output = node.outputs()[k];
    const int64_t size = (*sizes)[k];
    if (!output.empty()) {
      std::map<std::string, std::vector<int64_t>> ints{
          {"starts", {start}}, {"ends", {start + size}}, {"axes", {axis}}, {"steps", {1}}};
      auto shape = ctx.shape_of(source);
      if (shape && axis < static_cast<int64_t>(shape->size())) (*shape)[static_cast<size_t>(axis)] = size;
      const std::string name = ctx.unique_name(concat(node.name(), "_", k));
      ctx.add_layer(node, LayerKind::slice, {source}, shape, std::move(ints), {}, {}, output, name);
    }
    start += size;
  }
}

namespace {

void gather_from_flattened_batch(Context& ctx, const Node& node, const std::string& source,
                                 const std::string& refusal) {
  const std::string indices = node.input(1);
  const std::string resolved = ctx.resolve(indices);
  const Constant* first = nullptr;
  const Constant* second = nullptr;
  if (auto c = ctx.constants.find(resolved); !indices.empty() && c != ctx.constants.end()) {
    first = second = &c->second;
  } else if (auto b = ctx.batch_values.find(resolved); !indices.empty() && b != ctx.batch_values.end()) {
    first = &b->second.first, second = &b->second.second;
  }
  auto sample = ctx.sample_shape(source);
  if (node.int_attr("axis", 0) != 0 || !first || !sample) throw UnsupportedModelError(refusal);
  std::vector<int64_t> batches{13, 17};
  std::vector<const Constant*> values{first, second};
  if (first == second) {
    // Constant indices: only an export with a static batch of 1 writes them; they describe sample 0.
    auto declared = ctx.shape_of(ctx.input_name);
    if (!declared || declared->empty() || (*declared)[0] != std::optional<int64_t>(1))
      throw UnsupportedModelError(refusal);
    batches = {1}, values = {first};
  }
  int64_t size = 1;
  for (int64_t d : *sample) size *= d;
  std::optional<std::vector<int64_t>> per_sample;
  std::vector<int64_t> per_sample_dims;
  for (size_t v = 0; v < batches.size(); ++v) {
    const Constant& idx = *values[v];
    const int64_t batch = batches[v];
    bool ok = idx.dtype != ox::kBool && idx.is_integer() && idx.dims.size() >= 2 && idx.dims[0] == batch;
    if (ok) {
      const int64_t n = idx.numel();
      const int64_t row = n / batch;
      std::vector<int64_t> k0;
      for (int64_t i = 0; ok && i < n; ++i) {
        int64_t x = idx.integer[static_cast<size_t>(i)];
        if (x < 0) x += batch * size;
        const int64_t k = x - (i / row) * size;
        ok = k >= 0 && k < size;
        if (i < row)
          k0.push_back(k);
        else
          ok = ok && k == k0[static_cast<size_t>(i % row)];
      }
      const std::vector<int64_t> dims(idx.dims.begin() + 1, idx.dims.end());
      ok = ok && (!per_sample || (*per_sample == k0 && per_sample_dims == dims));
      per_sample = k0;
      per_sample_dims = dims;
    }
    if (!ok)
      throw UnsupportedModelError(concat(node.describe(), ": its indices '", indices,
                                         "' do not take each sample's values from that sample alone; ", refusal));
  }
  std::vector<int64_t> identity(static_cast<size_t>(size));
  std::iota(identity.begin(), identity.end(), 0);
  if (per_sample_dims == *sample && *per_sample == identity) {
    ctx.alias(node.outputs()[0], source);  // the sample as it was
    return;
  }
  auto batch_dim = ctx.dim_of(source, 0);
  const std::string flat_name = ctx.unique_name(node.name() + "_flat");
  Draft& rows = ctx.add_layer(node, LayerKind::reshape, {source}, Dims{batch_dim, size}, {{"shape", {0, -1}}}, {}, {},
                              flat_name, flat_name);
  const std::string rows_output = rows.spec.output;
  std::map<std::string, std::vector<int64_t>> ints{{"axis", {1}}, {"indices", *per_sample}, {"squeeze", {0}}};
  const Dims picked_shape{batch_dim, static_cast<int64_t>(per_sample->size())};
  if (per_sample_dims.size() == 1) {
    ctx.add_layer(node, LayerKind::gather, {rows_output}, picked_shape, std::move(ints));
    return;
  }
  const std::string picked = ctx.unique_name(node.name() + "_gather");
  ctx.add_layer(node, LayerKind::gather, {rows_output}, picked_shape, std::move(ints), {}, {}, picked, picked);
  std::vector<int64_t> target{0};
  target.insert(target.end(), per_sample_dims.begin(), per_sample_dims.end());
  Dims out{batch_dim};
  for (int64_t d : per_sample_dims) out.push_back(d);
  ctx.add_layer(node, LayerKind::reshape, {picked}, out, {{"shape", target}});
}

}  // namespace

void convert_gather(Context& ctx, const Node& node) {
  const std::string resolved = ctx.resolve(node.input(0));
  if (auto flattened = ctx.batch_flattened.find(resolved); flattened != ctx.batch_flattened.end()) {
    gather_from_flattened_batch(ctx, node, ctx.batch_flattened_source.at(resolved), flattened->second);
    return;
  }
  const std::string source = ctx.data_input(node, 0);
  const int64_t axis = data_axis(ctx, node, source, node.int_attr("axis", 0));
  const Constant& indices = ctx.raw_constant(node, 1, "indices");
  if (indices.dims.size() > 1 || indices.numel() == 0)
    throw UnsupportedModelError(concat(node.describe(), ": indices of shape ", py_list(indices.dims), " into '",
                                       node.input(0), "' (shape ", shape_text(ctx, source),
                                       "); only a scalar or a non-empty vector of indices is supported"));
  const std::vector<int64_t> values = indices.as_ints(node.describe());
  auto extent = ctx.dim_of(source, axis);
  if (extent)
    for (int64_t v : values)
      if (v < -*extent || v >= *extent) {
        auto shape = ctx.shape_of(source);
        throw ModelLoadError(concat(node.describe(), ": indices ", py_list(values), " out of range for axis ", axis,
                                    " of length ", *extent, " (shape ", shape ? py_tuple(*shape) : std::string("None"),
                                    ")"));
      }
  const bool squeeze = indices.dims.empty();
  auto shape = ctx.shape_of(source);
  if (shape && axis < static_cast<int64_t>(shape->size())) {
    if (squeeze)
      shape->erase(shape->begin() + axis);
    else
      (*shape)[static_cast<size_t>(axis)] = static_cast<int64_t>(values.size());
  }
  ctx.add_layer(node, LayerKind::gather, {source}, shape,
                {{"axis", {axis}}, {"indices", values}, {"squeeze", {squeeze ? 1 : 0}}});
}

bool reaches_output_through_reshapes(const Context& ctx, const std::string& start) {
  static const std::set<std::string> reshape_ops = {"Reshape",   "Flatten",  "Squeeze",
                                                    "Unsqueeze", "Identity", "Dropout"};
  std::string value = start;
  const size_t rounds = 1 + (ctx.graph_nodes ? ctx.graph_nodes->size() : 0);
  for (size_t round = 0; round < rounds; ++round) {
    if (ctx.is_graph_output(value)) return true;
    if (!ctx.graph_nodes) return false;
    std::vector<const ox::Node*> users;
    for (const ox::Node& n : *ctx.graph_nodes)
      if (n.op_type != "Shape" && n.op_type != "Size" &&
          std::find(n.input.begin(), n.input.end(), value) != n.input.end())
        users.push_back(&n);
    if (users.size() != 1 || !reshape_ops.count(users[0]->op_type) || users[0]->input.empty() ||
        users[0]->input[0] != value || users[0]->output.empty())
      return false;
    value = users[0]->output[0];
  }
  return false;
}

}  // namespace dtd::importer
