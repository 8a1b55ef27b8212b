// Constant affine maps: the legacy broadcast attribute (constant_operand), sums of constants (constant_sum, for Add),
// the shift folded into a bias (add_to_bias; the row sums are ops_affine.hpp's) and the BatchNormalization folded
// into the layer before it (fold_batchnorm), each computed in float64 operation by operation, as NumPy does.
#include "ops_affine.hpp"

#include <algorithm>

namespace dtd::importer {

using detail::concat;

namespace {

/// NumPy's repr of a shape in its messages: "(4,3,3,3)", "(2,)", "()".
std::string numpy_shape(const std::vector<int64_t>& dims) {
  std::string out = "(";
  for (size_t i = 0; i < dims.size(); ++i) out += (i ? "," : "") + std::to_string(dims[i]);
  return out + (dims.size() == 1 ? ",)" : ")");
}

/// a * b or a + b with NumPy's broadcasting (any ranks); NumPy's ValueError text
/// (ModelLoadError "<node>: ValueError: ..."), for shapes that do not broadcast.
Grid numpy_binary(const Node& node, const Grid& a, const Grid& b, bool multiply) {
  const size_t rank = std::max(a.dims.size(), b.dims.size());
  auto padded = [rank](const std::vector<int64_t>& dims) {
    std::vector<int64_t> out(rank - dims.size(), 1);
    out.insert(out.end(), dims.begin(), dims.end());
    return out;
  };
  Grid x{padded(a.dims), a.values}, y{padded(b.dims), b.values};
  for (size_t i = 0; i < rank; ++i)
    if (x.dims[i] != y.dims[i] && x.dims[i] != 1 && y.dims[i] != 1)
      throw ModelLoadError(concat(node.describe(),
                                  ": ValueError: operands could not be broadcast together with shapes ",
                                  numpy_shape(a.dims), " ", numpy_shape(b.dims), " "));
  return broadcast(x, y, multiply);
}

}  // namespace

void add_to_bias(std::map<std::string, Array>& weights, std::vector<double> extra) {
  auto it = weights.find("bias");
  if (it == weights.end()) {
    const auto n = static_cast<int64_t>(extra.size());
    weights["bias"] = Array{Shape{n}, std::move(extra)};
    return;
  }
  std::vector<double>& bias = it->second.data;
  for (size_t i = 0; i < bias.size(); ++i) bias[i] = bias[i] + extra[i];
}

Grid constant_operand(const Context& ctx, const Node& node, size_t index, size_t data, const char* what) {
  const Constant& c = ctx.constant(node, index, what);
  Grid value{c.dims, c.real};
  if (node.opset() >= 7 || node.op_type() == "Sum") return value;
  const auto shape = ctx.shape_of(node.input(data));
  if (!node.int_attr("broadcast", 0)) return value;  // equal shapes (checked, as for any constant, when recorded)
  if (index < data)
    throw UnsupportedModelError(concat(node.describe(), ": with broadcast=1 (opset ", node.opset(),
                                       ") the constant must be the second operand B"));
  if (!node.has("axis")) return value;  // trailing alignment, as NumPy's
  if (!shape)
    throw UnsupportedModelError(concat(node.describe(), ": broadcast with axis needs the rank of '", node.input(data),
                                       "', which shape inference does not know"));
  const auto rank = static_cast<int64_t>(shape->size());
  const int64_t given = node.int_attr("axis", 0);
  const int64_t axis = given < 0 ? given + rank : given;
  const auto ndim = static_cast<int64_t>(value.dims.size());
  if (axis < 0 || axis > rank - ndim)
    throw ModelLoadError(concat(node.describe(), ": axis ", given, " does not place B of shape ", py_list(value.dims),
                                " inside the rank-", rank, " data tensor"));
  value.dims.insert(value.dims.end(), static_cast<size_t>(rank - axis - ndim), 1);
  return value;
}

Grid constant_sum(const Context& ctx, const Node& node, const std::vector<size_t>& consts, size_t data) {
  Grid total;
  for (size_t k = 0; k < consts.size(); ++k) {
    Grid value = constant_operand(ctx, node, consts[k], data, "constant operand");
    if (k == 0) {
      for (double& v : value.values) v = 0.0 + v;  // sum() starts from 0: -0.0 becomes 0.0
      total = std::move(value);
    } else {
      total = numpy_binary(node, total, value, false);
    }
  }
  return total;
}

void fold_batchnorm(const Node& node, Draft& layer, const std::vector<double>& factor,
                    const std::vector<double>& offset, int64_t channels) {
  // weight * factor.reshape((-1,) + (1,) * (weight.ndim - 1))
  Array& weight = layer.spec.weights.at("weight");
  const int64_t units = weight.shape.at(0);
  const auto n = static_cast<int64_t>(factor.size());
  std::vector<int64_t> spread(weight.shape.size(), 1);
  spread[0] = n;
  if (units != n && units != 1 && n != 1)
    throw ModelLoadError(concat(node.describe(), ": ValueError: operands could not be broadcast together with shapes ",
                                numpy_shape(weight.shape), " ", numpy_shape(spread), " "));
  const int64_t out_units = units == 1 ? n : units;
  size_t per_unit = 1;
  for (size_t i = 1; i < weight.shape.size(); ++i) per_unit *= static_cast<size_t>(weight.shape[i]);
  std::vector<double> scaled(static_cast<size_t>(out_units) * per_unit);
  for (size_t o = 0; o < static_cast<size_t>(out_units); ++o) {
    const double* from = weight.data.data() + (units == 1 ? 0 : o) * per_unit;
    const double f = factor[n == 1 ? 0 : o];
    for (size_t k = 0; k < per_unit; ++k) scaled[o * per_unit + k] = from[k] * f;
  }
  weight.shape[0] = out_units;
  weight.data = std::move(scaled);
  // bias = (bias or zeros(channels)) * factor + offset
  auto it = layer.spec.weights.find("bias");
  Grid bias = it != layer.spec.weights.end()
                  ? Grid{it->second.shape, it->second.data}
                  : Grid{{channels}, std::vector<double>(static_cast<size_t>(channels), 0.0)};
  const Grid f{{n}, factor}, t{{static_cast<int64_t>(offset.size())}, offset};
  Grid result = numpy_binary(node, numpy_binary(node, bias, f, true), t, false);
  layer.spec.weights["bias"] = Array{Shape(result.dims.begin(), result.dims.end()), std::move(result.values)};
}

}  // namespace dtd::importer
