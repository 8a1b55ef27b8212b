// The converters of the core op set (Conv, Gemm/MatMul, pooling, LRN, ReduceMean, the shape ops, arithmetic,
// BatchNormalization, Identity/Dropout/Constant; activations are in ops_act.cpp, LayerNormalization in ops_norm.cpp),
// each with its checks in a fixed order and fixed message wording (tests check both), and the per-sample shape each
// layer gives its output (what ONNX shape inference gives).
//
// Weight arithmetic follows float64 NumPy expressions operation by operation; this file is compiled with
// -ffp-contract=off (cpp/CMakeLists.txt) so that no product and sum is fused into one FMA.
#include "ops.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "../geometry.hpp"
#include "ops_affine.hpp"
#include "ops_pad.hpp"

namespace dtd::importer {

using detail::concat;

std::string shape_text(const std::optional<Dims>& shape) {
  return shape ? py_tuple(*shape) : "None";
}

namespace {

const char* dims_name(int64_t spatial) {
  return spatial == 1 ? "1-D" : spatial == 2 ? "2-D" : "3-D";
}

/// ['N', 3, None]: the Python list ['N', *shape[1:]].
std::string n_none_list(const std::optional<Dims>& shape) {
  std::string out = "['N'";
  if (shape)
    for (size_t i = 1; i < shape->size(); ++i) out += ", " + ((*shape)[i] ? std::to_string(*(*shape)[i]) : "None");
  return out + "]";
}

int64_t product(const std::vector<int64_t>& v) {
  int64_t p = 1;
  for (int64_t d : v) p *= d;
  return p;
}

/// The output shape of a window op (conv, pools) as dtd's layers compute it; nullopt when the input's spatial
/// extents are unknown or the geometry does not fit (the Network reports it when it is built).
std::optional<Dims> window_shape(const Context& ctx, const std::string& source, const LayerSpec& spec,
                                 const std::vector<int64_t>& kernel, int64_t channels, bool ceil_mode) {
  auto shape = ctx.shape_of(source);
  if (!shape || shape->size() != kernel.size() + 2) return std::nullopt;
  Shape spatial;
  for (size_t i = 2; i < shape->size(); ++i) {
    if (!(*shape)[i]) return std::nullopt;
    spatial.push_back(*(*shape)[i]);
  }
  try {
    const detail::Window g = detail::window(spec, spatial, kernel, ceil_mode);
    Dims out{(*shape)[0], channels};
    for (size_t i = 0; i < kernel.size(); ++i) out.push_back(g.out[3 - kernel.size() + i]);
    return out;
  } catch (const ModelError&) {
    return std::nullopt;
  }
}

/// NumPy broadcasting of the inputs' shapes (unknown extents stay unknown).
std::optional<Dims> broadcast_shape(const Context& ctx, const std::vector<std::string>& inputs) {
  Dims out;
  for (const std::string& name : inputs) {
    auto shape = ctx.shape_of(name);
    if (!shape) return std::nullopt;
    if (shape->size() > out.size()) out.insert(out.begin(), shape->size() - out.size(), std::optional<int64_t>(1));
    const size_t offset = out.size() - shape->size();
    for (size_t i = 0; i < shape->size(); ++i) {
      auto& o = out[offset + i];
      const auto& d = (*shape)[i];
      if (o && *o == 1)
        o = d;
      else if (d && *d != 1 && o && *o != *d)
        return std::nullopt;
      else if (!d && o && *o == 1)
        o = std::nullopt;
    }
  }
  return out;
}

// -- shared: auto_pad ----------------------------------------------------------------------------------------------
int64_t auto_pad(const Node& node) {
  const std::string value = node.str_attr("auto_pad", "NOTSET");
  int64_t code = -1;
  if (value == "NOTSET" || value.empty())
    code = kNotSet;
  else if (value == "SAME_UPPER")
    code = kSameUpper;
  else if (value == "SAME_LOWER")
    code = kSameLower;
  else if (value == "VALID")
    code = kValid;
  if (code < 0) throw ModelLoadError(concat(node.describe(), ": unknown auto_pad '", value, "'"));
  auto pads = node.optional_ints("pads");
  if (code != 0 && pads && std::any_of(pads->begin(), pads->end(), [](int64_t p) { return p != 0; }))
    throw ModelLoadError(concat(node.describe(), ": auto_pad ", value, " together with explicit pads ", py_list(*pads),
                                ": the two exclude each other"));
  return code;
}

std::optional<std::vector<double>> axis_vector(const std::vector<int64_t>& dims, const std::vector<double>& values,
                                               int64_t rank, int64_t axis, int64_t size);

/// A pending affine map as one (factor, offset) per input channel (axis 1) or input feature (the last axis) of a
/// conv/dense consumer, or nullopt when the constants vary along other axes.
std::optional<std::pair<std::vector<double>, std::vector<double>>> input_vectors(const Context& ctx,
                                                                                 const Pending& pending, bool channel,
                                                                                 int64_t channels) {
  auto rank = ctx.rank_of(pending.source);
  std::optional<std::vector<double>> v[2];
  const Grid* grids[2] = {&pending.scale, &pending.shift};
  for (int k = 0; k < 2; ++k) {
    if (!rank) {
      if (grids[k]->values.size() == 1) v[k] = std::vector<double>(static_cast<size_t>(channels), grids[k]->values[0]);
    } else {
      v[k] = axis_vector(grids[k]->dims, grids[k]->values, *rank, channel ? 1 : *rank - 1, channels);
    }
  }
  if (!v[0] || !v[1]) return std::nullopt;
  return std::make_pair(std::move(*v[0]), std::move(*v[1]));
}

// -- Conv ----------------------------------------------------------------------------------------------------------
void convert_conv(Context& ctx, const Node& node) {
  if (ctx.is_constant(node.input(0)))
    throw UnsupportedModelError(concat(node.describe(), ": the data input is a constant"));
  const Constant& weight = ctx.constant(node, 1, "weight");
  const auto ndim = static_cast<int64_t>(weight.dims.size());
  if (ndim < 3 || ndim > 5)
    throw UnsupportedModelError(concat(node.describe(),
                                       ": 1-D, 2-D and 3-D convolutions are supported (weight [Cout, Cin/group, k...] "
                                       "of rank 3 to 5); the weight has shape ",
                                       py_tuple(weight.dims)));
  const Pending* pending = ctx.pending_affine(node, 0);
  std::string source = pending ? pending->source : ctx.resolve(node.input(0));
  auto rank = ctx.rank_of(source);
  if (rank && *rank != ndim)
    throw ModelLoadError(concat(node.describe(), ": a ", dims_name(ndim - 2), " convolution (weight of shape ",
                                py_tuple(weight.dims), ") needs a rank-", ndim,
                                " input [N, C, spatial...]; the input '", node.input(0), "' has rank ", *rank));
  const int64_t c_out = weight.dims[0], c_per_group = weight.dims[1];
  const auto spatial = static_cast<size_t>(ndim - 2);
  const int64_t group = node.int_attr("group", 1);
  if (group < 1 || c_out % group)
    throw ModelLoadError(
        concat(node.describe(), ": group=", group, " does not divide the ", c_out, " output channels"));
  const std::vector<int64_t> kernel(weight.dims.begin() + 2, weight.dims.end());
  auto kernel_attr = node.optional_ints("kernel_shape");
  if (kernel_attr && *kernel_attr != kernel)
    throw ModelLoadError(concat(node.describe(), ": kernel_shape ", py_list(*kernel_attr),
                                " does not match the weight of shape ", py_tuple(weight.dims)));
  auto c_in = ctx.dim_of(source, 1);
  if (c_in && *c_in != c_per_group * group)
    throw ModelLoadError(concat(node.describe(), ": the weight of shape ", py_tuple(weight.dims), " with group=", group,
                                " expects ", c_per_group * group, " input channels, but the input '", node.input(0),
                                "' has ", *c_in));
  const Constant* bias = ctx.optional_constant(node, 2, "bias");
  if (bias && bias->dims != std::vector<int64_t>{c_out})
    throw ModelLoadError(concat(node.describe(), ": the bias has shape ", py_tuple(bias->dims), ", expected (", c_out,
                                ",) for a weight of shape ", py_tuple(weight.dims)));
  std::map<std::string, std::vector<int64_t>> ints;
  ints["strides"] = node.ints_attr("strides", std::vector<int64_t>(spatial, 1), spatial);
  ints["pads"] = node.ints_attr("pads", std::vector<int64_t>(2 * spatial, 0), 2 * spatial);
  ints["dilations"] = node.ints_attr("dilations", std::vector<int64_t>(spatial, 1), spatial);
  ints["group"] = {group};
  ints["auto_pad"] = {auto_pad(node)};
  std::map<std::string, Array> weights{{"weight", to_array(weight)}};
  if (bias) weights["bias"] = to_array(*bias);
  if (pending) {
    // A constant affine map on the input folds where exact (fold_input_affine_conv): w' = w s per input channel.
    const bool padded = std::any_of(ints["pads"].begin(), ints["pads"].end(), [](int64_t p) { return p != 0; }) ||
                        ints["auto_pad"][0] == kSameUpper || ints["auto_pad"][0] == kSameLower;
    auto vectors = input_vectors(ctx, *pending, true, c_per_group * group);
    if (!vectors || (padded && pending->has_shift())) {
      source = ctx.data_input(node, 0);  // an affine layer
    } else {
      Array& w = weights["weight"];
      const int64_t per_group_out = c_out / group;
      const auto per_channel = static_cast<size_t>(product(kernel));
      if (pending->has_shift()) {
        // b' = b + sum of w t over each output channel's input channels and taps, in C order (sequential_row_sums),
        // from the weight before its scaling.
        add_to_bias(
            weights,
            sequential_row_sums(
                w.data.data(), static_cast<size_t>(c_out), static_cast<size_t>(c_per_group) * per_channel,
                [&](size_t o, size_t j) {
                  return vectors->second[static_cast<size_t>((static_cast<int64_t>(o) / per_group_out) * c_per_group +
                                                             static_cast<int64_t>(j / per_channel))];
                }));
      }
      for (int64_t o = 0; o < c_out; ++o)
        for (int64_t k = 0; k < c_per_group; ++k) {
          const double factor = vectors->first[static_cast<size_t>((o / per_group_out) * c_per_group + k)];
          double* tap = w.data.data() + static_cast<size_t>(o * c_per_group + k) * per_channel;
          for (size_t t = 0; t < per_channel; ++t) tap[t] = tap[t] * factor;
        }
    }
  }
  LayerSpec probe;
  probe.kind = LayerKind::conv;
  probe.name = node.name();
  probe.ints = ints;
  auto shape = window_shape(ctx, source, probe, kernel, c_out, false);
  ctx.add_layer(node, LayerKind::conv, {source}, shape, std::move(ints), {}, std::move(weights));
}

// -- Gemm / MatMul -------------------------------------------------------------------------------------------------
/// A weight [out, in] and an optional bias [out] of a dense layer.
struct DenseWeights {
  Array weight;
  std::optional<Array> bias;
};

void add_dense(Context& ctx, const Node& node, DenseWeights w) {
  const Pending* pending = ctx.pending_affine(node, 0);
  std::string source = pending ? pending->source : ctx.resolve(node.input(0));
  const int64_t n_in = w.weight.shape[1];
  auto actual = ctx.dim_of(source, -1);
  if (actual && *actual != n_in)
    throw ModelLoadError(concat(node.describe(), ": the weight expects ", n_in, " input features but the input '",
                                node.input(0), "' has ", *actual, " (shape ", shape_text(ctx.shape_of(source)), ")"));
  if (pending) {
    // fold_input_affine_dense: w' = w s per input feature, b' = b + w t (sequential_row_sums' order).
    auto vectors = input_vectors(ctx, *pending, false, n_in);
    if (!vectors) {
      source = ctx.data_input(node, 0);  // an affine layer
    } else {
      if (pending->has_shift()) {
        std::vector<double> extra =
            sequential_row_sums(w.weight.data.data(), static_cast<size_t>(w.weight.shape[0]), static_cast<size_t>(n_in),
                                [&](size_t, size_t j) { return vectors->second[j]; });
        if (w.bias) {
          for (size_t o = 0; o < extra.size(); ++o) w.bias->data[o] = w.bias->data[o] + extra[o];
        } else {
          w.bias = Array{Shape{w.weight.shape[0]}, std::move(extra)};
        }
      }
      for (size_t o = 0; o < static_cast<size_t>(w.weight.shape[0]); ++o)
        for (size_t i = 0; i < static_cast<size_t>(n_in); ++i)
          w.weight.data[o * static_cast<size_t>(n_in) + i] =
              w.weight.data[o * static_cast<size_t>(n_in) + i] * vectors->first[i];
    }
  }
  std::optional<Dims> shape = ctx.shape_of(source);
  if (shape && !shape->empty()) shape->back() = w.weight.shape[0];
  std::map<std::string, Array> weights{{"weight", std::move(w.weight)}};
  if (w.bias) weights["bias"] = std::move(*w.bias);
  ctx.add_layer(node, LayerKind::dense, {source}, shape, {}, {}, std::move(weights));
}

void check_data_first(const Context& ctx, const Node& node) {
  if (ctx.is_constant(node.input(0)))
    throw UnsupportedModelError(
        concat(node.describe(), ": the first operand is a constant; only data @ constant-weight is supported"));
  if (ctx.is_batch_value(node.input(1))) ctx.raw_constant(node, 1, "weight");  // raises: it depends on the batch
  if (!ctx.is_constant(node.input(1)))
    throw UnsupportedModelError(concat(node.describe(), ": the second operand '", node.input(1),
                                       "' is not a constant; only products of data with constant weights are "
                                       "supported"));
}

/// w.T of a 2-D constant, optionally times `alpha`.
Array transposed(const Constant& c, bool transpose, std::optional<double> alpha) {
  const int64_t rows = c.dims[0], cols = c.dims[1];
  Array a;
  a.shape = transpose ? Shape{cols, rows} : Shape{rows, cols};
  a.data.resize(c.real.size());
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      const double v = c.real[static_cast<size_t>(i * cols + j)];
      a.data[static_cast<size_t>(transpose ? j * rows + i : i * cols + j)] = alpha ? *alpha * v : v;
    }
  return a;
}

std::optional<Array> gemm_bias(const Context& ctx, const Node& node, int64_t n_out) {
  if (node.input(2).empty()) {
    if (node.opset() < 11)
      throw ModelLoadError(
          concat(node.describe(), ": the bias C is required before opset 11 (opset ", node.opset(), ")"));
    return std::nullopt;
  }
  const Constant& c = ctx.constant(node, 2, "bias C");
  if (c.dims.size() > 2)
    throw ModelLoadError(concat(node.describe(), ": the bias C must have rank <= 2, got shape ", py_tuple(c.dims)));
  if (node.opset() < 7 && !node.int_attr("broadcast", 0) && (c.dims.size() != 2 || c.dims[1] != n_out))
    throw ModelLoadError(concat(node.describe(), ": Gemm-", node.opset(),
                                " without broadcast=1 needs C of the product's shape [M, ", n_out, "], got shape ",
                                py_tuple(c.dims)));
  std::vector<int64_t> c2 = c.dims;
  while (c2.size() < 2) c2.insert(c2.begin(), 1);
  if (c2[1] != 1 && c2[1] != n_out)
    throw ModelLoadError(concat(node.describe(), ": the bias C of shape ", py_tuple(c.dims),
                                " does not broadcast to one value per output unit [", n_out, "]"));
  if (c2[0] != 1) {
    auto batch = ctx.dim_of(node.input(0), 0);
    const std::string message =
        concat(node.describe(), ": the bias C of shape ", py_tuple(c.dims), " holds one row per sample of a batch of ",
               c2[0], " (the input '", node.input(0), "' has shape ", shape_text(ctx.shape_of(node.input(0))),
               "); only a bias shared by all samples is supported");
    if (batch && *batch != c2[0]) throw ModelLoadError(message);
    throw UnsupportedModelError(message);
  }
  const double beta = node.float_attr("beta", 1.0);
  Array bias;
  bias.shape = {n_out};
  bias.data.resize(static_cast<size_t>(n_out));
  for (int64_t j = 0; j < n_out; ++j) bias.data[static_cast<size_t>(j)] = beta * c.real[c2[1] == 1 ? 0 : j];
  return bias;
}

void convert_gemm(Context& ctx, const Node& node) {
  if (node.int_attr("transA", 0))
    throw UnsupportedModelError(concat(node.describe(), ": Gemm with transA=1 on the data input is not supported"));
  check_data_first(ctx, node);
  const double alpha = node.float_attr("alpha", 1.0);
  const Constant& b = ctx.constant(node, 1, "weight B");
  if (b.dims.size() != 2)
    throw ModelLoadError(concat(node.describe(), ": the weight B must be 2-D, got shape ", py_tuple(b.dims)));
  Array weight =
      transposed(b, node.int_attr("transB", 0) == 0, alpha != 1.0 ? std::optional<double>(alpha) : std::nullopt);
  auto rank = ctx.rank_of(node.input(0));
  if (rank && *rank != 2)
    throw ModelLoadError(concat(node.describe(), ": Gemm's input A must be 2-D, '", node.input(0), "' has shape ",
                                shape_text(ctx.shape_of(node.input(0)))));
  auto bias = gemm_bias(ctx, node, weight.shape[0]);
  add_dense(ctx, node, {std::move(weight), std::move(bias)});
}

void convert_matmul(Context& ctx, const Node& node) {
  check_data_first(ctx, node);
  const Constant& w = ctx.constant(node, 1, "weight");
  if (w.dims.size() != 2)
    throw UnsupportedModelError(
        concat(node.describe(), ": only a 2-D constant weight is supported, got ", py_tuple(w.dims)));
  add_dense(ctx, node, {transposed(w, true, std::nullopt), std::nullopt});
}

// -- pooling ---------------------------------------------------------------------------------------------------------
void check_pool_attributes(const Node& node) {
  const std::vector<std::pair<const char*, int64_t>> since =
      node.op_type() == "MaxPool"
          ? std::vector<std::pair<const char*, int64_t>>{{"storage_order", 8}, {"ceil_mode", 10}, {"dilations", 10}}
          : std::vector<std::pair<const char*, int64_t>>{
                {"count_include_pad", 7}, {"ceil_mode", 10}, {"dilations", 19}};
  for (const auto& [name, opset] : since)
    if (node.has(name) && node.opset() < opset)
      throw ModelLoadError(concat(node.describe(), ": attribute '", name, "' is defined from opset ", opset,
                                  " on; the model imports opset ", node.opset()));
}

void check_pool_rank(const Context& ctx, const Node& node, const std::string& source, std::optional<int64_t> spatial) {
  auto rank = ctx.rank_of(source);
  if (!rank) return;
  if (!spatial) {
    if (*rank < 3 || *rank > 5)
      throw UnsupportedModelError(concat(node.describe(),
                                         ": pooling over 1, 2 or 3 spatial axes (an input of rank 3 to 5) is "
                                         "supported; the input '",
                                         node.input(0), "' has rank ", *rank));
  } else if (*rank != *spatial + 2) {
    throw ModelLoadError(concat(node.describe(), ": a ", dims_name(*spatial), " kernel needs a rank-", *spatial + 2,
                                " input [N, C, spatial...]; the input '", node.input(0), "' has rank ", *rank));
  }
}

std::vector<int64_t> pool_kernel(const Node& node) {
  auto kernel = node.optional_ints("kernel_shape");
  if (!kernel) throw ModelLoadError(concat(node.describe(), ": the kernel_shape attribute is required"));
  if (kernel->empty() || kernel->size() > 3)
    throw UnsupportedModelError(concat(
        node.describe(), ": pooling over 1, 2 or 3 spatial axes is supported; kernel_shape is ", py_list(*kernel)));
  return *kernel;
}

std::map<std::string, std::vector<int64_t>> pool_window(const Node& node, const std::vector<int64_t>& kernel) {
  const size_t r = kernel.size();
  const auto pads = node.ints_attr("pads", std::vector<int64_t>(2 * r, 0), 2 * r);
  for (size_t axis = 0; axis < r; ++axis)
    if (pads[axis] >= kernel[axis] || pads[r + axis] >= kernel[axis])
      throw ModelLoadError(concat(node.describe(), ": pads ", py_list(pads), " must be smaller than the kernel ",
                                  py_list(kernel), " on every axis"));
  std::map<std::string, std::vector<int64_t>> ints;
  ints["kernel"] = kernel;
  ints["strides"] = node.ints_attr("strides", std::vector<int64_t>(r, 1), r);
  ints["pads"] = pads;
  ints["dilations"] = node.ints_attr("dilations", std::vector<int64_t>(r, 1), r);
  ints["ceil_mode"] = {node.int_attr("ceil_mode", 0)};
  ints["auto_pad"] = {auto_pad(node)};
  return ints;
}

void convert_pool(Context& ctx, const Node& node, LayerKind kind) {
  check_pool_attributes(node);
  if (kind == LayerKind::maxpool && node.outputs().size() > 1 && !node.outputs()[1].empty()) {
    auto it = ctx.consumers.find(node.outputs()[1]);
    if (it != ctx.consumers.end() && it->second > 0)
      throw UnsupportedModelError(concat(node.describe(), ": the Indices output of MaxPool is used; not supported"));
  }
  const std::string source = ctx.data_input(node, 0);
  const std::vector<int64_t> kernel = pool_kernel(node);
  check_pool_rank(ctx, node, source, static_cast<int64_t>(kernel.size()));
  auto ints = pool_window(node, kernel);
  if (kind == LayerKind::avgpool) ints["count_include_pad"] = {node.int_attr("count_include_pad", 0)};
  LayerSpec probe;
  probe.kind = kind;
  probe.name = node.name();
  probe.ints = ints;
  auto channels = ctx.dim_of(source, 1);
  auto shape = window_shape(ctx, source, probe, kernel, 0, ints["ceil_mode"][0] != 0);
  if (shape) (*shape)[1] = channels;
  ctx.add_layer(node, kind, {source}, shape, std::move(ints));
}

void convert_maxpool(Context& ctx, const Node& node) {
  convert_pool(ctx, node, LayerKind::maxpool);
}
void convert_avgpool(Context& ctx, const Node& node) {
  convert_pool(ctx, node, LayerKind::avgpool);
}

void convert_global_pool(Context& ctx, const Node& node, LayerKind kind) {
  const std::string source = ctx.data_input(node, 0);
  check_pool_rank(ctx, node, source, std::nullopt);
  std::optional<Dims> shape = ctx.shape_of(source);
  if (shape)
    for (size_t i = 2; i < shape->size(); ++i) (*shape)[i] = 1;
  ctx.add_layer(node, kind, {source}, shape);
}

void convert_globalavgpool(Context& ctx, const Node& node) {
  convert_global_pool(ctx, node, LayerKind::globalavgpool);
}
void convert_globalmaxpool(Context& ctx, const Node& node) {
  convert_global_pool(ctx, node, LayerKind::globalmaxpool);
}

// -- LRN, ReduceMean -------------------------------------------------------------------------------------------------
void convert_lrn(Context& ctx, const Node& node) {
  const std::string source = ctx.data_input(node, 0);
  if (!node.has("size")) throw ModelLoadError(concat(node.describe(), ": the size attribute is required"));
  const int64_t size = node.int_attr("size", 1);
  if (size < 1) throw ModelLoadError(concat(node.describe(), ": size must be >= 1, got ", size));
  auto rank = ctx.rank_of(source);
  if (rank && *rank < 3)
    throw UnsupportedModelError(concat(node.describe(), ": LRN needs an input [N, C, ...] of rank >= 3, got shape ",
                                       shape_text(ctx.shape_of(source))));
  std::map<std::string, double> floats{{"alpha", node.float_attr("alpha", 1e-4)},
                                       {"beta", node.float_attr("beta", 0.75)},
                                       {"bias", node.float_attr("bias", 1.0)}};
  ctx.add_layer(node, LayerKind::lrn, {source}, ctx.shape_of(source), {{"size", {size}}}, std::move(floats));
}

/// ReduceMean over all spatial axes of [N, C, spatial...] -> globalavgpool (+ a reshape to [N, C] with keepdims=0).
void convert_reducemean(Context& ctx, const Node& node) {
  const std::string source = ctx.data_input(node, 0);
  const std::string& mean = node.outputs().empty() ? std::string() : node.outputs()[0];
  auto rank = ctx.rank_of(source);
  std::optional<std::vector<int64_t>> axes;
  if (node.opset() < 18)
    axes = node.optional_ints("axes");
  else if (!node.input(1).empty())
    axes = ctx.raw_constant(node, 1, "axes").as_ints(node.describe());
  if ((!axes || axes->empty()) && node.opset() >= 18 && node.int_attr("noop_with_empty_axes", 0)) {
    ctx.alias(mean, source);
    return;
  }
  if (!rank)
    throw UnsupportedModelError(concat(node.describe(), ": the rank of its input '", node.input(0), "' is unknown"));
  if (!axes) {
    axes.emplace();
    for (int64_t a = 0; a < *rank; ++a) axes->push_back(a);
  }
  for (int64_t a : *axes)
    if (a < -*rank || a >= *rank)
      throw ModelLoadError(concat(node.describe(), ": axes ", py_list(*axes), " are out of range for rank ", *rank));
  std::vector<int64_t> sorted;
  for (int64_t a : *axes) sorted.push_back(((a % *rank) + *rank) % *rank);
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> spatial;
  for (int64_t a = 2; a < *rank; ++a) spatial.push_back(a);
  if (*rank < 3 || *rank > 5 || sorted != spatial)
    throw UnsupportedModelError(concat(node.describe(), ": ReduceMean over axes ", py_list(*axes), " of a rank-", *rank,
                                       " tensor is not supported; only the spatial mean (axes 2 and up of an [N, C, "
                                       "spatial...] tensor with 1 to 3 spatial axes, a global average pool) is"));
  std::optional<Dims> pooled_shape = ctx.shape_of(source);
  if (pooled_shape)
    for (size_t i = 2; i < pooled_shape->size(); ++i) (*pooled_shape)[i] = 1;
  if (node.int_attr("keepdims", 1)) {
    ctx.add_layer(node, LayerKind::globalavgpool, {source}, pooled_shape);
    return;
  }
  const std::string pooled = ctx.unique_name(mean + "__pooled");
  ctx.add_layer(node, LayerKind::globalavgpool, {source}, pooled_shape, {}, {}, {}, pooled);
  auto channels = ctx.dim_of(source, 1);
  std::optional<Dims> squeezed;
  if (pooled_shape) squeezed = Dims{(*pooled_shape)[0], channels};
  ctx.add_layer(node, LayerKind::reshape, {pooled}, squeezed, {{"shape", {0, channels ? *channels : -1}}}, {}, {},
                std::nullopt, ctx.unique_name(node.name() + "_squeeze"));
}

// -- shape ops -------------------------------------------------------------------------------------------------------
std::optional<int64_t> dims_product(const Dims& d, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t i = begin; i < end; ++i) {
    if (!d[i] || __builtin_mul_overflow(p, *d[i], &p)) return std::nullopt;  // unknown, as ONNX's inference leaves it
  }
  return p;
}

void convert_flatten(Context& ctx, const Node& node) {
  const std::string source = ctx.data_input(node, 0);
  const int64_t given = node.int_attr("axis", 1);
  int64_t axis = given;
  auto rank = ctx.rank_of(source);
  if (axis < 0 && rank) axis += *rank;
  if (axis < 1)
    throw UnsupportedModelError(
        concat(node.describe(), ": Flatten with axis ", given, " merges the batch axis; only axis >= 1 is supported"));
  std::optional<Dims> shape;
  auto in = ctx.shape_of(source);
  if (in && axis <= static_cast<int64_t>(in->size())) {
    const auto a = static_cast<size_t>(axis);
    // ONNX's inference keeps a single leading extent as it is (N * 1 stays N).
    shape = Dims{a == 1 ? (*in)[0] : dims_product(*in, 0, a), dims_product(*in, a, in->size())};
  }
  ctx.add_layer(node, LayerKind::flatten, {source}, shape, {{"axis", {axis}}});
}

/// nullopt when the target keeps the batch axis, else the refusal.
std::optional<std::string> reshape_moves_batch(const Context& ctx, const Node& node, const std::string& source,
                                               const std::vector<int64_t>& target) {
  auto sample = ctx.sample_shape(source);
  if (!sample || ctx.merged_batch.count(source) || target.empty()) return std::nullopt;
  const int64_t size = product(*sample);
  auto batch = ctx.dim_of(source, 0);
  std::vector<int64_t> rest;
  for (size_t i = 1; i < target.size(); ++i)
    rest.push_back(target[i] == 0 && i - 1 < sample->size() ? (*sample)[i - 1] : target[i]);
  const int64_t first = target[0];
  int64_t known = 1;  // the product of the entries other than -1; -2 when it overflows (no shape can match)
  bool has_minus_one = false;
  for (int64_t d : rest) {
    if (d == -1)
      has_minus_one = true;
    else if (known != -2 && __builtin_mul_overflow(known, d, &known))
      known = -2;
  }
  const bool batch_first = first == 0 || (batch && first == *batch) || (!batch && first == 1);
  const bool keeps =
      has_minus_one ? batch_first && known > 0 && size % known == 0 : known == size && (batch_first || first == -1);
  if (keeps) return std::nullopt;
  std::string dims;
  for (size_t i = 0; i < sample->size(); ++i) dims += (i ? ", " : "") + std::to_string((*sample)[i]);
  return concat(node.describe(), ": reshaping '", node.input(0), "' of shape [N, ", dims, "] to ", py_list(target),
                " moves values across the batch axis (N = ", batch ? std::to_string(*batch) : "?",
                "); dtd keeps the batch axis: the first entry must stand for it and the others hold the ", size,
                " values of one sample");
}

std::optional<Dims> reshape_shape(const Context& ctx, const std::string& source, const std::vector<int64_t>& shape) {
  auto sample = ctx.sample_shape(source);
  if (!sample || shape.empty() || ctx.merged_batch.count(source)) return std::nullopt;
  const int64_t size = product(*sample);
  Dims dims{ctx.dim_of(source, 0)};
  if (shape[0] != 0 && shape[0] != -1) dims[0] = shape[0];
  int64_t known = 1;
  for (size_t i = 1; i < shape.size(); ++i) {
    const int64_t d = shape[i] == 0 && i - 1 < sample->size() ? (*sample)[i - 1] : shape[i];
    dims.push_back(d == -1 ? std::nullopt : std::optional<int64_t>(d));
    if (d != -1 && known != -2 && __builtin_mul_overflow(known, d, &known)) known = -2;  // -2: overflowed
  }
  for (size_t i = 1; i < dims.size(); ++i)
    if (!dims[i] && known > 0) dims[i] = size / known;
  return dims;
}

void check_no_zero(const Node& node, const std::vector<int64_t>& shape) {
  if (std::find(shape.begin(), shape.end(), 0) != shape.end())
    throw UnsupportedModelError(concat(node.describe(), ": Reshape with allowzero=1 and the target shape ",
                                       py_list(shape),
                                       " has an axis of length 0 (an empty tensor); not supported (with allowzero=0 "
                                       "a 0 entry copies the input's extent)"));
}

void convert_reshape(Context& ctx, const Node& node) {
  const std::string source = ctx.data_input(node, 0);
  const bool allowzero = node.opset() >= 14 && node.int_attr("allowzero", 0) != 0;
  if (ctx.is_batch_value(node.input(1))) {
    if (allowzero) check_no_zero(node, ctx.batch_values.at(ctx.resolve(node.input(1))).first.as_ints(node.describe()));
    std::vector<int64_t> target = reshape_target(ctx, node);
    auto shape = reshape_shape(ctx, source, target);
    ctx.add_layer(node, LayerKind::reshape, {source}, shape, {{"shape", std::move(target)}});
    return;
  }
  if (!ctx.is_constant(node.input(1)))
    throw UnsupportedModelError(concat(node.describe(), ": the target shape '", node.input(1),
                                       "' is computed at run time from data, not from shapes; only a constant shape "
                                       "or one computed from the input's shape is supported"));
  const std::vector<int64_t> shape = ctx.raw_constant(node, 1, "shape").as_ints(node.describe());
  if (allowzero) check_no_zero(node, shape);
  if (auto refusal = reshape_moves_batch(ctx, node, source, shape)) {
    if (shape.size() != 1) throw UnsupportedModelError(*refusal);
    // The whole batch in one axis: only a Gather taking each sample back (not ported yet) may follow.
    ctx.batch_flattened[node.outputs()[0]] = *refusal;
    ctx.batch_flattened_source[node.outputs()[0]] = source;
    return;
  }
  auto out = reshape_shape(ctx, source, shape);
  ctx.add_layer(node, LayerKind::reshape, {source}, out, {{"shape", shape}});
}

std::vector<int64_t> known_sample_shape(const Context& ctx, const Node& node, const std::string& source) {
  auto sample = ctx.sample_shape(source);
  if (!sample || ctx.merged_batch.count(source))
    throw UnsupportedModelError(concat(node.describe(), ": the shape of its input '", node.input(0),
                                       "' is not known at import (shape inference gives ",
                                       shape_text(ctx.shape_of(source)), "); ", node.op_type(),
                                       " is only supported on known shapes"));
  return *sample;
}

std::optional<std::vector<int64_t>> axes_of(const Context& ctx, const Node& node, int64_t attr_until) {
  if (node.opset() <= attr_until) return node.optional_ints("axes");
  if (node.input(1).empty()) return std::nullopt;
  return ctx.raw_constant(node, 1, "axes").as_ints(node.describe());
}

std::vector<int64_t> normalized_axes(const Node& node, const std::vector<int64_t>& axes, int64_t rank) {
  std::vector<int64_t> out;
  for (int64_t a : axes) {
    if (a < -rank || a >= rank)
      throw ModelLoadError(concat(node.describe(), ": axis ", a, " is out of range for rank ", rank));
    out.push_back(((a % rank) + rank) % rank);
  }
  std::vector<int64_t> sorted = out;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
    throw ModelLoadError(concat(node.describe(), ": repeated axes ", py_list(axes)));
  return out;
}

/// _as_reshape: a reshape to the per-sample shape `sample` (batch entry 0).
void add_as_reshape(Context& ctx, const Node& node, const std::string& source, const std::vector<int64_t>& sample) {
  std::vector<int64_t> shape{0};
  shape.insert(shape.end(), sample.begin(), sample.end());
  Dims dims{ctx.dim_of(source, 0)};
  for (int64_t d : sample) dims.push_back(d);
  ctx.add_layer(node, LayerKind::reshape, {source}, dims, {{"shape", shape}});
}

void convert_squeeze(Context& ctx, const Node& node) {
  const std::string source = ctx.data_input(node, 0);
  const std::vector<int64_t> sample = known_sample_shape(ctx, node, source);
  auto given = axes_of(ctx, node, 12);
  if (!given)
    throw UnsupportedModelError(concat(node.describe(),
                                       ": Squeeze without axes would also remove the batch axis for a batch of 1; "
                                       "only a Squeeze with explicit axes is supported"));
  const std::vector<int64_t> axes = normalized_axes(node, *given, static_cast<int64_t>(sample.size()) + 1);
  if (std::find(axes.begin(), axes.end(), 0) != axes.end())
    throw UnsupportedModelError(concat(node.describe(), ": a Squeeze of the batch axis is not supported"));
  std::string dims;
  for (size_t i = 0; i < sample.size(); ++i) dims += (i ? ", " : "") + std::to_string(sample[i]);
  for (int64_t axis : axes)
    if (sample[static_cast<size_t>(axis - 1)] != 1)
      throw ModelLoadError(concat(node.describe(), ": axis ", axis, " of '", node.input(0), "' (shape [N, ", dims,
                                  "]) has length ", sample[static_cast<size_t>(axis - 1)], ", not 1"));
  std::vector<int64_t> out;
  for (size_t i = 0; i < sample.size(); ++i)
    if (std::find(axes.begin(), axes.end(), static_cast<int64_t>(i + 1)) == axes.end()) out.push_back(sample[i]);
  add_as_reshape(ctx, node, source, out);
}

void convert_unsqueeze(Context& ctx, const Node& node) {
  const std::string source = ctx.data_input(node, 0);
  const std::vector<int64_t> sample = known_sample_shape(ctx, node, source);
  auto given = axes_of(ctx, node, 12);
  if (!given || given->empty()) throw ModelLoadError(concat(node.describe(), ": the axes are missing"));
  const auto rank = static_cast<int64_t>(sample.size() + 1 + given->size());
  const std::vector<int64_t> axes = normalized_axes(node, *given, rank);
  if (std::find(axes.begin(), axes.end(), 0) != axes.end())
    throw UnsupportedModelError(
        concat(node.describe(), ": an Unsqueeze at axis 0 moves the batch axis; not supported"));
  std::vector<int64_t> out;
  size_t next = 0;
  for (int64_t axis = 1; axis < rank; ++axis) {
    if (std::find(axes.begin(), axes.end(), axis) != axes.end())
      out.push_back(1);
    else if (next < sample.size())
      out.push_back(sample[next++]);
  }
  add_as_reshape(ctx, node, source, out);
}

void convert_transpose(Context& ctx, const Node& node) {
  const std::string source = ctx.data_input(node, 0);
  const std::vector<int64_t> sample = known_sample_shape(ctx, node, source);
  std::vector<int64_t> shape{1};
  shape.insert(shape.end(), sample.begin(), sample.end());
  const auto rank = static_cast<int64_t>(shape.size());
  std::vector<int64_t> perm;
  if (auto given = node.optional_ints("perm")) {
    perm = *given;
  } else {
    for (int64_t a = rank - 1; a >= 0; --a) perm.push_back(a);
  }
  std::vector<int64_t> sorted = perm, identity(static_cast<size_t>(rank));
  std::sort(sorted.begin(), sorted.end());
  std::iota(identity.begin(), identity.end(), 0);
  if (sorted != identity)
    throw ModelLoadError(concat(node.describe(), ": perm ", py_list(perm), " is not a permutation of ", rank, " axes"));
  if (perm[0] != 0)
    throw UnsupportedModelError(
        concat(node.describe(), ": Transpose with perm ", py_list(perm), " moves the batch axis; not supported"));
  if (perm == identity) {
    ctx.alias(node.outputs()[0], source);
    return;
  }
  std::vector<int64_t> moved, kept;
  for (int64_t a : perm)
    if (shape[static_cast<size_t>(a)] != 1) moved.push_back(a);
  for (int64_t a = 0; a < rank; ++a)
    if (shape[static_cast<size_t>(a)] != 1) kept.push_back(a);
  std::vector<int64_t> permuted;
  for (size_t i = 1; i < perm.size(); ++i) permuted.push_back(shape[static_cast<size_t>(perm[i])]);
  if (moved == kept) {  // only size-1 axes move: the memory layout is unchanged
    add_as_reshape(ctx, node, source, permuted);
    return;
  }
  Dims dims{ctx.dim_of(source, 0)};
  for (int64_t d : permuted) dims.push_back(d);
  ctx.add_layer(node, LayerKind::transpose, {source}, dims, {{"perm", perm}});
}

void convert_concat(Context& ctx, const Node& node) {
  if (!node.has("axis"))
    throw ModelLoadError(concat(node.describe(), ": the axis attribute is required (from Concat-4 on)"));
  std::vector<std::string> sources;
  for (size_t i = 0; i < node.inputs().size(); ++i) sources.push_back(ctx.data_input(node, i));
  int64_t axis = node.int_attr("axis", 1);
  auto rank = ctx.rank_of(sources[0]);
  if (rank) {
    if (axis < -*rank || axis >= *rank)
      throw UnsupportedModelError(concat(node.describe(), ": axis ", axis, " is out of range for rank ", *rank));
    axis = ((axis % *rank) + *rank) % *rank;
  }
  if (axis == 0) throw UnsupportedModelError(concat(node.describe(), ": Concat along the batch axis is not supported"));
  std::optional<Dims> shape = ctx.shape_of(sources[0]);
  if (shape && axis > 0 && axis < static_cast<int64_t>(shape->size())) {
    auto& extent = (*shape)[static_cast<size_t>(axis)];
    for (size_t i = 1; i < sources.size() && extent; ++i) {
      auto other = ctx.shape_of(sources[i]);
      if (!other || other->size() != shape->size() || !(*other)[static_cast<size_t>(axis)])
        extent.reset();
      else
        *extent += *(*other)[static_cast<size_t>(axis)];
    }
  } else {
    shape.reset();
  }
  ctx.add_layer(node, LayerKind::concat, sources, shape, {{"axis", {axis}}});
}

// -- arithmetic ------------------------------------------------------------------------------------------------------
/// A constant broadcast against a rank-`rank` tensor as one value per index of `axis` (length `size`), or nullopt when
/// it varies along another axis or would change the shape.
std::optional<std::vector<double>> axis_vector(const std::vector<int64_t>& dims, const std::vector<double>& values,
                                               int64_t rank, int64_t axis, int64_t size) {
  if (static_cast<int64_t>(dims.size()) > rank) return std::nullopt;
  std::vector<int64_t> full(static_cast<size_t>(rank) - dims.size(), 1);
  full.insert(full.end(), dims.begin(), dims.end());
  for (int64_t ax = 0; ax < rank; ++ax)
    if (ax != axis && full[static_cast<size_t>(ax)] != 1) return std::nullopt;
  const int64_t extent = full[static_cast<size_t>(axis)];
  if (extent != 1 && extent != size) return std::nullopt;
  std::vector<double> out(static_cast<size_t>(size));
  for (int64_t i = 0; i < size; ++i) out[static_cast<size_t>(i)] = values[extent == 1 ? 0 : static_cast<size_t>(i)];
  return out;
}

/// A constant broadcast against `layer`'s output as one value per output unit.
std::optional<std::vector<double>> unit_vector(const Context& ctx, const Draft& layer, const std::vector<int64_t>& dims,
                                               const std::vector<double>& values) {
  const int64_t units = layer.spec.weights.at("weight").shape[0];
  if (layer.spec.kind == LayerKind::conv)
    return axis_vector(dims, values, static_cast<int64_t>(layer.spec.weights.at("weight").shape.size()), 1, units);
  auto rank = ctx.rank_of(layer.spec.output);
  if (!rank) {
    if (values.size() != 1) return std::nullopt;
    return axis_vector(dims, values, std::max<int64_t>(static_cast<int64_t>(dims.size()), 1), 0, units);
  }
  return axis_vector(dims, values, *rank, *rank - 1, units);
}

/// Folds x * value (scale) or x + value into the preceding conv/dense layer's output units or bias when exact, else a
/// pending affine map.
void fold_constant(Context& ctx, const Node& node, size_t data, const Grid& value, bool scale) {
  Draft* layer = ctx.foldable_producer(node, data);
  std::optional<std::vector<double>> vector;
  if (layer) vector = unit_vector(ctx, *layer, value.dims, value.values);
  if (!layer || !vector) {
    const Grid one{{}, {1.0}}, zero{{}, {0.0}};
    ctx.add_pending_affine(node, data, scale ? value : one, scale ? zero : value);
    return;
  }
  auto it = layer->spec.weights.find("bias");
  if (scale) {  // scale_outputs: weight * factor per output unit, bias * factor
    Array& weight = layer->spec.weights.at("weight");
    const size_t per_unit = weight.data.size() / vector->size();
    for (size_t o = 0; o < vector->size(); ++o)
      for (size_t k = 0; k < per_unit; ++k)
        weight.data[o * per_unit + k] = weight.data[o * per_unit + k] * (*vector)[o];
    if (it != layer->spec.weights.end())
      for (size_t o = 0; o < vector->size(); ++o) it->second.data[o] = it->second.data[o] * (*vector)[o];
  } else if (it == layer->spec.weights.end()) {  // shift_outputs
    layer->spec.weights["bias"] = Array{Shape{static_cast<int64_t>(vector->size())}, *vector};
  } else {
    for (size_t i = 0; i < vector->size(); ++i) it->second.data[i] = it->second.data[i] + (*vector)[i];
  }
  ctx.alias(node.outputs()[0], layer->spec.output);
}

void split_inputs(const Context& ctx, const Node& node, std::vector<size_t>& data, std::vector<size_t>& consts) {
  for (size_t i = 0; i < node.inputs().size(); ++i) {
    const std::string& name = node.inputs()[i];
    if (name.empty()) continue;
    (ctx.is_constant(name) ? consts : data).push_back(i);
  }
}

void convert_sub(Context& ctx, const Node& node) {
  std::vector<size_t> data, consts;
  split_inputs(ctx, node, data, consts);
  if (data.size() != 1 || consts.size() != 1)
    throw UnsupportedModelError(concat(node.describe(), ": only data - constant or constant - data is supported"));
  Grid value = constant_operand(ctx, node, consts[0], data[0], "constant operand");
  if (data[0] == 0) {
    for (double& v : value.values) v = -v;
    fold_constant(ctx, node, 0, value, false);
  } else {
    ctx.add_pending_affine(node, 1, Grid{{}, {-1.0}}, value);
  }
}

/// The layer behind `name` through shape-only layers (reshape, flatten).
Draft* behind_reshapes(Context& ctx, const std::string& name) {
  Draft* layer = ctx.producer(name);
  while (layer && (layer->spec.kind == LayerKind::reshape || layer->spec.kind == LayerKind::flatten))
    layer = ctx.producer(layer->spec.inputs[0]);
  return layer;
}

/// True when `name` comes from a Sigmoid or HardSigmoid (possibly reshaped).
bool gate_function(Context& ctx, const std::string& name) {
  Draft* layer = behind_reshapes(ctx, name);
  return layer && layer->spec.kind == LayerKind::activation &&
         (layer->spec.ints.at("op")[0] == kSigmoid || layer->spec.ints.at("op")[0] == kHardSigmoid);
}

/// For an operand relu6(u) / 6 (a Clip(0, M), possibly reshaped, then a pending factor s with s M = 1), the clipped
/// value and s.
std::optional<std::pair<std::string, double>> hard_sigmoid_scale(Context& ctx, const Node& node, size_t index) {
  const Pending* pending = ctx.pending_affine(node, index);
  if (!pending || pending->has_shift()) return std::nullopt;
  std::vector<double> unique = pending->scale.values;
  std::sort(unique.begin(), unique.end());
  unique.erase(std::unique(unique.begin(), unique.end()), unique.end());
  if (unique.size() != 1 || !(unique[0] > 0)) return std::nullopt;
  const std::string source = pending->source;
  const double factor = unique[0];
  Draft* layer = behind_reshapes(ctx, source);
  if (!layer || layer->spec.kind != LayerKind::activation || layer->spec.ints.at("op")[0] != kClip) return std::nullopt;
  auto low = layer->spec.floats.find("min"), high = layer->spec.floats.find("max");
  if (low == layer->spec.floats.end() || low->second != 0.0 || high == layer->spec.floats.end() ||
      std::abs(factor * high->second - 1.0) > 1e-6)
    return std::nullopt;
  return std::make_pair(source, factor);
}

/// A Mul of two data tensors is a gate when exactly one operand is a gate function.
void convert_gate(Context& ctx, const Node& node) {
  std::optional<std::pair<std::string, double>> hard[2] = {hard_sigmoid_scale(ctx, node, 0),
                                                           hard_sigmoid_scale(ctx, node, 1)};
  bool is_gate[2];
  for (size_t k = 0; k < 2; ++k)
    is_gate[k] = hard[k].has_value() || (!ctx.pending_of(node.inputs()[k]) && gate_function(ctx, node.inputs()[k]));
  const std::optional<Dims> shapes[2] = {ctx.shape_of(node.inputs()[0]), ctx.shape_of(node.inputs()[1])};
  if (is_gate[0] == is_gate[1])
    throw UnsupportedModelError(concat(node.describe(), ": the product of two data tensors (shapes ",
                                       shape_text(shapes[0]), " and ", shape_text(shapes[1]),
                                       ") is not a recognisable gate: exactly one operand must come from a Sigmoid, a "
                                       "HardSigmoid or relu6(x + 3) / 6 (possibly reshaped)"));
  const size_t k = is_gate[0] ? 0 : 1;
  const std::string signal = ctx.data_input(node, 1 - k);
  auto rank_gate = ctx.rank_of(node.inputs()[k]), rank_signal = ctx.rank_of(node.inputs()[1 - k]);
  if (rank_gate && rank_signal && *rank_gate != *rank_signal)
    throw UnsupportedModelError(concat(node.describe(), ": the gate (shape ", shape_text(shapes[k]),
                                       ") and the signal (shape ", shape_text(shapes[1 - k]),
                                       ") differ in rank; the gate must keep the batch axis and broadcast against the "
                                       "signal per sample"));
  auto gate_shape = ctx.sample_shape(node.inputs()[k]), signal_shape = ctx.sample_shape(node.inputs()[1 - k]);
  if (gate_shape && signal_shape && !broadcasts_to(*gate_shape, *signal_shape))
    throw UnsupportedModelError(concat(node.describe(), ": the gate of shape ", shape_text(shapes[k]),
                                       " does not broadcast against the signal of shape ", shape_text(shapes[1 - k]),
                                       " (the product must have the signal's shape)"));
  std::string gate;
  if (hard[k]) {
    // s * relu6(u) = hard_sigmoid(relu6(u); alpha=s, beta=0) exactly, since relu6(u) lies in [0, 1 / s].
    gate = ctx.unique_name(node.name() + "/hard_sigmoid");
    ctx.add_layer(node, LayerKind::activation, {hard[k]->first}, ctx.shape_of(hard[k]->first), {{"op", {kHardSigmoid}}},
                  {{"alpha", hard[k]->second}, {"beta", 0.0}}, {}, gate, gate);
  } else {
    gate = ctx.data_input(node, k);
  }
  ctx.add_layer(node, LayerKind::gate, {signal, gate}, ctx.shape_of(signal));
}

void convert_mul(Context& ctx, const Node& node) {
  std::vector<size_t> data, consts;
  split_inputs(ctx, node, data, consts);
  if (data.size() == 2 && consts.empty()) {
    convert_gate(ctx, node);
    return;
  }
  if (data.size() != 1 || consts.size() != 1)
    throw UnsupportedModelError(
        concat(node.describe(), ": only the product of a data tensor with a constant is supported"));
  fold_constant(ctx, node, data[0], constant_operand(ctx, node, consts[0], data[0], "constant factor"), true);
}

void convert_div(Context& ctx, const Node& node) {
  std::vector<size_t> data, consts;
  split_inputs(ctx, node, data, consts);
  if (data != std::vector<size_t>{0} || consts != std::vector<size_t>{1})
    throw UnsupportedModelError(concat(node.describe(), ": only data / constant is supported"));
  Grid divisor = constant_operand(ctx, node, 1, 0, "constant divisor");
  for (double v : divisor.values)
    if (v == 0) throw UnsupportedModelError(concat(node.describe(), ": division by a constant containing zeros"));
  for (double& v : divisor.values) v = 1.0 / v;
  fold_constant(ctx, node, 0, divisor, true);
}

void convert_add(Context& ctx, const Node& node) {
  std::vector<size_t> data, consts;
  for (size_t i = 0; i < node.inputs().size(); ++i) {
    const std::string& name = node.inputs()[i];
    if (name.empty()) continue;
    (ctx.is_constant(name) ? consts : data).push_back(i);
  }
  if (consts.empty()) {
    std::vector<std::string> sources;
    for (size_t i : data) sources.push_back(ctx.data_input(node, i));
    if (sources.size() == 1) {
      ctx.alias(node.outputs()[0], sources[0]);
    } else {
      auto shape = broadcast_shape(ctx, sources);
      ctx.add_layer(node, LayerKind::add, sources, shape);
    }
    return;
  }
  if (data.size() != 1)
    throw UnsupportedModelError(concat(node.describe(),
                                       ": a sum with constant operands is only supported as one data tensor plus "
                                       "constants"));
  // total = sum(constants): 0 + c1 + c2 ... in float64 with NumPy broadcasting.
  fold_constant(ctx, node, data[0], constant_sum(ctx, node, consts, data[0]), false);
}

// -- BatchNormalization ----------------------------------------------------------------------------------------------
void convert_batchnorm(Context& ctx, const Node& node) {
  auto refuse = [&](const std::string& reason) {
    return UnsupportedModelError(concat("cannot convert BatchNormalization '", node.name(), "': ", reason));
  };
  if (node.int_attr("training_mode", 0)) throw refuse("it is in training mode (training_mode=1)");
  if (node.opset() < 7 && !node.int_attr("is_test", 0))
    throw refuse(concat("is_test=0 (opset ", node.opset(), ") is training mode (batch statistics)"));
  for (size_t i = 1; i < node.outputs().size(); ++i) {
    const std::string& name = node.outputs()[i];
    auto it = ctx.consumers.find(name);
    if (!name.empty() && it != ctx.consumers.end() && it->second > 0)
      throw refuse("its running-statistics outputs are used (training mode)");
  }
  const int64_t spatial = node.opset() < 9 ? node.int_attr("spatial", 1) : 1;
  Draft* layer = ctx.foldable_producer(node, 0);
  if (layer && layer->spec.kind == LayerKind::dense) {
    auto rank = ctx.rank_of(layer->spec.output);
    if (rank && *rank - 1 != 1) layer = nullptr;  // a dense layer on the last axis of a rank > 2 tensor
  }
  auto shape = ctx.shape_of(node.input(0));
  int64_t channels = 0;
  if (shape && shape->size() >= 2 && (*shape)[1]) {
    channels = *(*shape)[1];
  } else if (layer && spatial) {
    channels = layer->spec.weights.at("weight").shape[0];
  } else {
    throw refuse(concat("the shape of its input '", node.input(0), "' is not known (got ", shape_text(shape), ")"));
  }
  auto per_sample = ctx.sample_shape(node.input(0));
  std::vector<int64_t> expected;
  if (spatial || (per_sample && per_sample->size() == 1)) {
    expected = {channels};
  } else if (!per_sample) {
    throw refuse("spatial=0 needs the full input shape, which shape inference does not know");
  } else {
    expected = *per_sample;
  }
  const int64_t count = product(expected);
  std::vector<const std::vector<double>*> params;
  const char* const whats[] = {"scale", "B", "mean", "var"};
  for (size_t index = 1; index <= 4; ++index) {
    const std::string what = whats[index - 1];
    if (!ctx.is_constant(node.input(index)))
      throw refuse(concat("its ", what, " input '", node.input(index), "' is not a constant"));
    const Constant& value = ctx.constant(node, index, what);
    if (value.numel() != count)
      throw refuse(concat("its ", what, " has shape ", py_list(value.dims), ", expected ", py_list(expected),
                          " for the input ", n_none_list(shape),
                          spatial ? "" : " (spatial=0: one value per activation)"));
    params.push_back(&value.real);
  }
  const std::vector<double>& gamma = *params[0];
  const std::vector<double>& beta = *params[1];
  const std::vector<double>& mean = *params[2];
  const std::vector<double>& var = *params[3];
  const double eps = node.float_attr("epsilon", 1e-5);
  const auto n = static_cast<size_t>(count);
  for (size_t i = 0; i < n; ++i)
    if (var[i] + eps <= 0) throw ModelLoadError(concat(node.describe(), ": var + epsilon is not positive"));
  // factor = gamma / sqrt(var + eps); offset = beta - mean * factor (NumPy, element by element, in this order).
  std::vector<double> factor(n), offset(n);
  for (size_t i = 0; i < n; ++i) {
    const double denominator = std::sqrt(var[i] + eps);
    factor[i] = gamma[i] / denominator;
    const double product_ = mean[i] * factor[i];
    offset[i] = beta[i] - product_;
  }
  if (!layer || expected.size() != 1) {
    // The constant affine map x * factor + offset along axis 1 (and the per-activation axes with spatial=0).
    if (!shape)
      throw refuse(concat("the rank of its input '", node.input(0), "' is not known; the channel axis is needed"));
    std::vector<int64_t> along{1};
    along.insert(along.end(), expected.begin(), expected.end());
    while (along.size() < shape->size()) along.push_back(1);
    ctx.add_pending_affine(node, 0, Grid{along, factor}, Grid{along, offset});
    return;
  }
  // Into the preceding conv/dense: weight * factor per output unit; bias = (bias or 0) * factor + offset.
  fold_batchnorm(node, *layer, factor, offset, channels);
  ctx.alias(node.outputs()[0], layer->spec.output);
}

// -- Identity, Dropout, Constant, the registry -----------------------------------------------------------------------
void pass_through(Context& ctx, const Node& node) {
  const std::string source = node.input(0);
  if (source.empty()) throw ModelLoadError(concat(node.describe(), ": the input is missing"));
  ctx.alias(node.outputs()[0], ctx.resolve(source));
}

void convert_identity(Context& ctx, const Node& node) {
  pass_through(ctx, node);
}

void convert_dropout(Context& ctx, const Node& node) {
  if (node.opset() < 7 && !node.int_attr("is_test", 0))
    throw UnsupportedModelError(concat(node.describe(), ": Dropout with is_test=0 (training mode) is not supported"));
  if (node.outputs().size() > 1 && !node.outputs()[1].empty()) {
    auto it = ctx.consumers.find(node.outputs()[1]);
    if (it != ctx.consumers.end() && it->second > 0)
      throw UnsupportedModelError(concat(node.describe(), ": the mask output of Dropout is used; not supported"));
  }
  if (!node.input(2).empty()) {
    if (!ctx.is_constant(node.input(2)))
      throw UnsupportedModelError(concat(node.describe(), ": training_mode must be a constant"));
    const Constant& mode = ctx.raw_constant(node, 2, "training_mode");
    if (mode.numel() == 0)  // np.asarray(mode).reshape(-1)[0]
      throw ModelLoadError(concat(node.describe(), ": IndexError: index 0 is out of bounds for axis 0 with size 0"));
    if (mode.first_truth())
      throw UnsupportedModelError(concat(node.describe(), ": Dropout in training mode is not supported"));
  }
  pass_through(ctx, node);
}

void convert_constant(Context& ctx, const Node& node) {
  std::vector<std::string> names;
  for (const ox::Attribute& a : node.proto().attribute) names.push_back(a.name);
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  std::vector<std::string> scalar_forms;
  for (const std::string& n : names)
    if (n.rfind("value_", 0) == 0) scalar_forms.push_back(n);
  if (node.opset() < 12 && !scalar_forms.empty())
    throw ModelLoadError(concat(node.describe(), ": the attribute ", scalar_forms[0],
                                " exists from Constant-12 on (opset ", node.opset(), ")"));
  Constant value;
  if (const ox::Attribute* a = node.attr("value"); a && a->t) {
    for (int64_t d : a->t->dims)
      if (d < 0)
        throw ModelLoadError(concat(node.describe(), ": the tensor of attribute 'value' has dims ", py_list(a->t->dims),
                                    " with a negative entry"));
    value = decode_tensor(*a->t);
  } else if (const ox::Attribute* f = node.attr("value_float")) {
    value.dtype = ox::kFloat;
    value.real = {static_cast<double>(f->f)};
  } else if (const ox::Attribute* fs = node.attr("value_floats")) {
    value.dtype = ox::kFloat;
    value.dims = {static_cast<int64_t>(fs->floats.size())};
    for (float v : fs->floats) value.real.push_back(static_cast<double>(v));
  } else if (const ox::Attribute* i = node.attr("value_int")) {
    value.dtype = ox::kInt64;
    value.integer = {i->i};
  } else if (const ox::Attribute* is = node.attr("value_ints")) {
    value.dtype = ox::kInt64;
    value.dims = {static_cast<int64_t>(is->ints.size())};
    value.integer = is->ints;
  } else {
    std::string kinds;
    for (const std::string& n : names) kinds += (kinds.empty() ? "" : ", ") + n;
    throw UnsupportedModelError(concat(node.describe(), ": unsupported Constant value attribute (",
                                       kinds.empty() ? std::string("none") : kinds, ")"));
  }
  ctx.constants[node.outputs()[0]] = std::move(value);
}

struct Entry {
  const char* op;
  Converter convert;
  int since = 1;
};

const std::vector<Entry>& registry() {
  static const std::vector<Entry> entries = {
      {"Add", convert_add},
      {"AveragePool", convert_avgpool},
      {"BatchNormalization", convert_batchnorm},
      {"Clip", convert_clip},
      {"Concat", convert_concat},
      {"Constant", convert_constant},
      {"Conv", convert_conv},
      {"Div", convert_div},
      {"Dropout", convert_dropout},
      {"Elu", convert_unary},
      {"Flatten", convert_flatten},
      {"Gather", convert_gather},
      {"Gelu", convert_gelu, 20},
      {"Gemm", convert_gemm},
      {"GlobalAveragePool", convert_globalavgpool},
      {"GlobalMaxPool", convert_globalmaxpool},
      {"HardSigmoid", convert_unary},
      {"HardSwish", convert_unary, 14},
      {"Identity", convert_identity},
      {"LRN", convert_lrn},
      {"LayerNormalization", convert_layernorm, 17},
      {"LeakyRelu", convert_unary},
      {"LogSoftmax", convert_softmax},
      {"MatMul", convert_matmul},
      {"MaxPool", convert_maxpool},
      {"Mul", convert_mul},
      {"PRelu", convert_prelu},
      {"Pad", convert_pad},
      {"ReduceMean", convert_reducemean},
      {"Relu", convert_relu},
      {"Reshape", convert_reshape},
      {"Selu", convert_unary},
      {"Sigmoid", convert_unary},
      {"Slice", convert_slice},
      {"Softmax", convert_softmax},
      {"Softplus", convert_unary},
      {"Split", convert_split},
      {"Squeeze", convert_squeeze},
      {"Sub", convert_sub},
      {"Sum", convert_add},
      {"Tanh", convert_unary},
      {"Transpose", convert_transpose},
      {"Unsqueeze", convert_unsqueeze},
  };
  return entries;
}

}  // namespace

Converter lookup(const std::string& op_type, int64_t opset) {
  for (const Entry& e : registry())
    if (op_type == e.op && opset >= e.since) return e.convert;
  for (const FoldOp& f : fold_ops())  // the ops fold.cpp evaluates, refused on data
    if (op_type == f.op && opset >= f.since) return convert_shape_only;
  return nullptr;
}

std::vector<std::string> cpp_supported_ops() {
  std::vector<std::string> out;
  for (const Entry& e : registry()) out.push_back(e.op);
  for (const FoldOp& f : fold_ops()) out.push_back(f.op);  // shape-only ops: evaluated at import
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace dtd::importer
