// Import-time evaluation of constant and shape subgraphs: every evaluator with NumPy's semantics (fold_values.hpp),
// each value evaluated twice with the two sentinel batch sizes: a result that is the same both times is a constant, one
// that differs depends on the batch (Context::batch_values) and is accepted only as a Reshape target whose first entry
// is the batch size. The size of every result is decided from the shapes before anything is allocated (output_elements,
// Limits.max_folded_constant).
//
// Compiled with -ffp-contract=off (cpp/CMakeLists.txt): float results are NumPy's bit for bit.
#include <algorithm>
#include <cfenv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <numeric>
#include <set>

#include "fold_values.hpp"
#include "ops.hpp"

namespace dtd::importer {

using detail::concat;
using namespace fold;

namespace {

__extension__ typedef __int128 Wide;
constexpr int64_t kSentinels[2] = {13, 17};
using Args = std::vector<const Constant*>;

[[noreturn]] void fail(const std::string& type, const std::string& message) {
  throw EvalError{type, message};
}

const Constant& arg(const Node& node, const Args& args, size_t index) {
  if (index >= args.size() || !args[index])
    throw ModelLoadError(concat(node.describe(), ": input ", index, " is missing"));
  return *args[index];
}

/// The element data of `c`, which fold evaluates for NumPy's numeric types only.
const Constant& data_of(const Node& node, const Constant& c) {
  if (!numeric(c.dtype) || (numel(c.dims) != 0 && c.real.empty() && c.integer.empty()))
    not_supported(node, concat("evaluating it at import on a constant of element type ", c.dtype_name()));
  return c;
}

/// The elements as Python ints (int() of each).
std::vector<int64_t> ints_of(const Node& node, const Constant* c) {
  if (!c) return {};
  data_of(node, *c);
  std::vector<int64_t> out;
  if (is_float_type(c->dtype)) {
    for (double v : c->real) {
      if (std::isnan(v)) fail("ValueError", "cannot convert float NaN to integer");
      if (std::isinf(v)) fail("OverflowError", "cannot convert float infinity to integer");
      if (std::fabs(v) >= 0x1p63) not_supported(node, "an integer beyond int64 in shape arithmetic");
      out.push_back(static_cast<int64_t>(std::trunc(v)));
    }
    return out;
  }
  for (int64_t v : c->integer) {
    if (c->dtype == ox::kUint64 && v < 0) not_supported(node, "an integer beyond int64 in shape arithmetic");
    out.push_back(v);
  }
  return out;
}

std::optional<std::vector<int64_t>> axes_input(const Node& node, const Args& args, size_t index, int64_t since) {
  if (node.opset() < since) return node.optional_ints("axes");
  if (index >= args.size() || !args[index]) return std::nullopt;
  return ints_of(node, args[index]);
}

std::vector<int64_t> norm_axes(const Node& node, const std::vector<int64_t>& axes, int64_t rank) {
  std::vector<int64_t> out;
  for (int64_t a : axes) {
    if (a < -rank || a >= rank)
      throw ModelLoadError(concat(node.describe(), ": axis ", a, " is out of range for rank ", rank));
    out.push_back(((a % rank) + rank) % rank);
  }
  return out;
}

int64_t required_int(const Node& node, const std::string& name) {
  if (!node.has(name)) throw ModelLoadError(concat(node.describe(), ": the attribute '", name, "' is required"));
  return node.int_attr(name, 0);
}

std::string shape_repr(const std::vector<int64_t>& dims) {
  return py_tuple(dims);
}

/// numpy's convert_shape_to_string (reshape's messages): leading unknown entries dropped, others "newaxis".
std::string reshape_repr(const std::vector<int64_t>& dims) {
  size_t i = 0;
  while (i < dims.size() && dims[i] < 0) ++i;
  if (i == dims.size()) return "()";
  std::string out = std::to_string(dims[i++]);
  for (; i < dims.size(); ++i) out += dims[i] < 0 ? std::string(",newaxis") : concat(",", dims[i]);
  return dims.size() == 1 ? "(" + out + ",)" : "(" + out + ")";
}

/// A view's data moved: out[j] = c[index[j]].
Constant gather_elements(const Constant& c, std::vector<int64_t> dims, const std::vector<size_t>& index) {
  Constant out = make(c.dtype, std::move(dims));
  for (size_t j = 0; j < index.size(); ++j) copy_element(c, index[j], out, j);
  return out;
}

std::vector<int64_t> strides_of(const std::vector<int64_t>& dims) {
  std::vector<int64_t> s(dims.size(), 1);
  for (size_t a = dims.size(); a-- > 1;) s[a - 1] = s[a] * dims[a];
  return s;
}

/// np.transpose(c, perm) (perm normalized and checked).
Constant transpose(const Constant& c, const std::vector<int64_t>& perm) {
  std::vector<int64_t> dims, strides;
  const std::vector<int64_t> in = strides_of(c.dims);
  for (int64_t p : perm) {
    dims.push_back(c.dims[static_cast<size_t>(p)]);
    strides.push_back(in[static_cast<size_t>(p)]);
  }
  const auto n = static_cast<size_t>(numel(dims));
  std::vector<size_t> index(n);
  std::vector<int64_t> position(dims.size(), 0);
  for (size_t flat = 0; flat < n; ++flat) {
    int64_t k = 0;
    for (size_t a = 0; a < dims.size(); ++a) k += position[a] * strides[a];
    index[flat] = static_cast<size_t>(k);
    for (size_t a = dims.size(); a-- > 0;) {
      if (++position[a] < dims[a]) break;
      position[a] = 0;
    }
  }
  return gather_elements(c, dims, index);
}

/// The product of the non-zero extents overflows (NumPy refuses to make such an array, empty or not).
bool nonzero_overflow(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims)
    if (d != 0 && __builtin_mul_overflow(n, d, &n)) return true;
  return false;
}

/// An empty result whose other extents NumPy could not hold: refused (a typed error, never a wrapped size).
void too_big(const Node& node, const std::vector<int64_t>& dims) {
  if (nonzero_overflow(dims)) not_supported(node, concat("an empty constant of shape ", py_list(dims)));
}

// -- evaluators ----------------------------------------------------------------------------------------------------
Constant ints_value(std::vector<int64_t> dims, std::vector<int64_t> values) {
  Constant c;
  c.dtype = ox::kInt64;
  c.dims = std::move(dims);
  c.integer = std::move(values);
  return c;
}

Constant eval_shape(const Node& node, const Args& args) {
  std::vector<int64_t> dims = arg(node, args, 0).dims;
  if (node.opset() >= 15) {
    const auto rank = static_cast<int64_t>(dims.size());
    auto clamp = [&](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + rank : v, 0, rank); };
    const int64_t start = clamp(node.int_attr("start", 0)), end = clamp(node.int_attr("end", rank));
    dims = end > start ? std::vector<int64_t>(dims.begin() + start, dims.begin() + end) : std::vector<int64_t>{};
  }
  return ints_value({static_cast<int64_t>(dims.size())}, dims);
}

Constant eval_size(const Node& node, const Args& args) {
  int64_t n = 1;
  for (int64_t d : arg(node, args, 0).dims)
    if (__builtin_mul_overflow(n, d, &n)) fail("OverflowError", "Python int too large to convert to C long");
  return ints_value({}, {n});
}

Constant eval_gather(const Node& node, const Args& args) {
  const Constant& data = data_of(node, arg(node, args, 0));
  const Constant& indices = data_of(node, arg(node, args, 1));
  const auto rank = static_cast<int64_t>(data.dims.size());
  const int64_t axis = norm_axes(node, {node.int_attr("axis", 0)}, std::max<int64_t>(rank, 1))[0];
  if (rank == 0) fail("IndexError", "tuple index out of range");
  const int64_t extent = data.dims[static_cast<size_t>(axis)];
  const Constant idx = cast(indices, ox::kInt64);
  std::vector<int64_t> picked;
  for (int64_t i : idx.integer) picked.push_back(i < 0 ? i + extent : i);
  for (int64_t j : picked)
    if (j < 0 || j >= extent)
      throw ModelLoadError(concat(node.describe(), ": index out of range for an axis of length ", extent));
  int64_t outer = 1, inner = 1;
  for (int64_t a = 0; a < axis; ++a) outer *= data.dims[static_cast<size_t>(a)];
  for (int64_t a = axis + 1; a < rank; ++a) inner *= data.dims[static_cast<size_t>(a)];
  std::vector<int64_t> dims(data.dims.begin(), data.dims.begin() + axis);
  dims.insert(dims.end(), indices.dims.begin(), indices.dims.end());
  dims.insert(dims.end(), data.dims.begin() + axis + 1, data.dims.end());
  too_big(node, dims);
  std::vector<size_t> index;
  index.reserve(static_cast<size_t>(outer) * picked.size() * static_cast<size_t>(inner));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j : picked)
      for (int64_t k = 0; k < inner; ++k) index.push_back(static_cast<size_t>((o * extent + j) * inner + k));
  return gather_elements(data, dims, index);
}

Constant eval_unsqueeze(const Node& node, const Args& args) {
  const Constant& data = arg(node, args, 0);
  auto axes = axes_input(node, args, 1, 13);
  if (!axes || axes->empty()) throw ModelLoadError(concat(node.describe(), ": the axes are missing"));
  std::vector<int64_t> sorted = norm_axes(node, *axes, static_cast<int64_t>(data.dims.size() + axes->size()));
  std::sort(sorted.begin(), sorted.end());
  Constant out = data;
  for (int64_t a : sorted) {
    if (a > static_cast<int64_t>(out.dims.size()))
      fail("AxisError", concat("axis ", a, " is out of bounds for array of dimension ", out.dims.size() + 1));
    out.dims.insert(out.dims.begin() + a, 1);
  }
  return out;
}

Constant eval_squeeze(const Node& node, const Args& args) {
  const Constant& data = arg(node, args, 0);
  auto axes = axes_input(node, args, 1, 13);
  Constant out = data;
  out.dims.clear();
  if (!axes) {
    for (int64_t d : data.dims)
      if (d != 1) out.dims.push_back(d);
    return out;
  }
  std::vector<int64_t> normalized = norm_axes(node, *axes, static_cast<int64_t>(data.dims.size()));
  std::vector<int64_t> sorted = normalized;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) fail("ValueError", "duplicate value in 'axis'");
  for (int64_t a : normalized)
    if (data.dims[static_cast<size_t>(a)] != 1)
      fail("ValueError", "cannot select an axis to squeeze out which has size not equal to one");
  for (size_t a = 0; a < data.dims.size(); ++a)
    if (!std::binary_search(sorted.begin(), sorted.end(), static_cast<int64_t>(a))) out.dims.push_back(data.dims[a]);
  return out;
}

Constant eval_concat(const Node& node, const Args& args) {
  std::vector<const Constant*> parts;
  for (const Constant* a : args)
    if (a) parts.push_back(a);
  if (parts.empty()) throw ModelLoadError(concat(node.describe(), ": no inputs"));
  const int64_t axis = norm_axes(node, {required_int(node, "axis")},
                                 std::max<int64_t>(static_cast<int64_t>(parts[0]->dims.size()), 1))[0];
  const size_t rank = parts[0]->dims.size();
  if (rank == 0) fail("ValueError", "zero-dimensional arrays cannot be concatenated");
  int32_t dtype = data_of(node, *parts[0]).dtype;
  std::vector<int64_t> dims = parts[0]->dims;
  for (size_t k = 1; k < parts.size(); ++k) {
    const Constant& p = data_of(node, *parts[k]);
    if (p.dims.size() != rank)
      fail("ValueError",
           concat("all the input arrays must have same number of dimensions, but the array at index 0 has ", rank,
                  " dimension(s) and the array at index ", k, " has ", p.dims.size(), " dimension(s)"));
    for (size_t a = 0; a < rank; ++a)
      if (static_cast<int64_t>(a) != axis && p.dims[a] != parts[0]->dims[a])
        fail("ValueError", concat("all the input array dimensions except for the concatenation axis must match "
                                  "exactly, but along dimension ",
                                  a, ", the array at index 0 has size ", parts[0]->dims[a], " and the array at index ",
                                  k, " has size ", p.dims[a]));
    dims[static_cast<size_t>(axis)] += p.dims[static_cast<size_t>(axis)];
    dtype = promote(dtype, p.dtype);
  }
  Constant out = make(dtype, dims);
  int64_t outer = 1;
  for (int64_t a = 0; a < axis; ++a) outer *= dims[static_cast<size_t>(a)];
  size_t j = 0;
  std::vector<Constant> cast_parts;
  for (const Constant* p : parts) cast_parts.push_back(cast(*p, dtype));
  for (int64_t o = 0; o < outer; ++o)
    for (const Constant& p : cast_parts) {
      const int64_t block = numel(p.dims) / std::max<int64_t>(outer, 1);
      if (outer == 0) break;
      for (int64_t k = 0; k < block; ++k) copy_element(p, static_cast<size_t>(o * block + k), out, j++);
    }
  return out;
}

/// Python's slice(start, end, step).indices(extent) as the positions taken.
std::vector<int64_t> slice_positions(int64_t start, int64_t end, int64_t step, int64_t extent) {
  auto adjust = [&](int64_t v) {
    if (v < 0) {
      v += extent;
      if (v < 0) v = step < 0 ? -1 : 0;
    } else if (v >= extent) {
      v = step < 0 ? extent - 1 : extent;
    }
    return v;
  };
  const Wide s = adjust(start), e = adjust(end);
  std::vector<int64_t> out;
  if (step > 0)
    for (Wide i = s; i < e; i += step) out.push_back(static_cast<int64_t>(i));
  else
    for (Wide i = s; i > e; i += step) out.push_back(static_cast<int64_t>(i));
  return out;
}

Constant eval_slice(const Node& node, const Args& args) {
  const Constant& data = data_of(node, arg(node, args, 0));
  std::vector<int64_t> starts, ends, axes, steps;
  if (node.opset() < 10) {
    if (!node.has("starts") || !node.has("ends"))
      throw ModelLoadError(concat(node.describe(), ": Slice-1 needs the attributes 'starts' and 'ends'"));
    starts = node.ints_attr("starts", {});
    ends = node.ints_attr("ends", {});
    std::vector<int64_t> fallback(starts.size());
    std::iota(fallback.begin(), fallback.end(), 0);
    axes = node.ints_attr("axes", fallback);
    steps.assign(starts.size(), 1);
  } else {
    starts = ints_of(node, &arg(node, args, 1));
    ends = ints_of(node, &arg(node, args, 2));
    if (args.size() > 3 && args[3]) {
      axes = ints_of(node, args[3]);
    } else {
      axes.resize(starts.size());
      std::iota(axes.begin(), axes.end(), 0);
    }
    if (args.size() > 4 && args[4])
      steps = ints_of(node, args[4]);
    else
      steps.assign(starts.size(), 1);
  }
  if (!(starts.size() == ends.size() && ends.size() == axes.size() && axes.size() == steps.size()))
    throw ModelLoadError(concat(node.describe(), ": starts ", py_list(starts), ", ends ", py_list(ends), ", axes ",
                                py_list(axes), " and steps ", py_list(steps), " differ in length"));
  const auto rank = static_cast<int64_t>(data.dims.size());
  const std::vector<int64_t> normalized = norm_axes(node, axes, rank);
  std::vector<std::vector<int64_t>> taken(data.dims.size());
  for (size_t a = 0; a < data.dims.size(); ++a) {
    taken[a].resize(static_cast<size_t>(data.dims[a]));
    std::iota(taken[a].begin(), taken[a].end(), 0);
  }
  for (size_t k = 0; k < starts.size(); ++k) {
    if (steps[k] == 0) throw ModelLoadError(concat(node.describe(), ": a step of 0"));
    const auto a = static_cast<size_t>(normalized[k]);
    taken[a] = slice_positions(starts[k], ends[k], steps[k], data.dims[a]);
  }
  std::vector<int64_t> dims;
  for (const auto& t : taken) dims.push_back(static_cast<int64_t>(t.size()));
  const std::vector<int64_t> strides = strides_of(data.dims);
  const auto n = static_cast<size_t>(numel(dims));
  std::vector<size_t> index(n);
  std::vector<int64_t> position(dims.size(), 0);
  for (size_t flat = 0; flat < n; ++flat) {
    int64_t k = 0;
    for (size_t a = 0; a < dims.size(); ++a) k += taken[a][static_cast<size_t>(position[a])] * strides[a];
    index[flat] = static_cast<size_t>(k);
    for (size_t a = dims.size(); a-- > 0;) {
      if (++position[a] < dims[a]) break;
      position[a] = 0;
    }
  }
  return gather_elements(data, dims, index);
}

std::string onnx_type(int64_t to) {
  static const char* const newer[] = {"FLOAT8E8M0", "UINT2", "INT2", "FLOAT6E2M3", "FLOAT6E3M2"};
  if (to >= 0 && to <= ox::kFloat4E2M1) return ox::data_type_name(static_cast<int32_t>(to));
  if (to > ox::kFloat4E2M1 && to <= ox::kFloat4E2M1 + 5) return newer[to - ox::kFloat4E2M1 - 1];
  return std::to_string(to);
}

Constant eval_cast(const Node& node, const Args& args) {
  const int64_t to = required_int(node, "to");
  if (to > std::numeric_limits<int32_t>::max() || to < 0 || !numeric(static_cast<int32_t>(to)))
    throw UnsupportedModelError(concat(node.describe(), ": a Cast to ", onnx_type(to), " is not supported"));
  return cast(data_of(node, arg(node, args, 0)), static_cast<int32_t>(to));
}

/// data.reshape(shape) with NumPy's checks and messages.
Constant reshaped(const Constant& data, std::vector<int64_t> shape) {
  int64_t known = 1, unknown = -1;
  bool overflow = false;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0) {
      if (unknown >= 0) fail("ValueError", "can only specify one unknown dimension");
      unknown = static_cast<int64_t>(i);
    } else if (__builtin_mul_overflow(known, shape[i], &known)) {
      overflow = true;
    }
  }
  const int64_t size = numel(data.dims);
  const std::string mismatch = concat("cannot reshape array of size ", size, " into shape ", reshape_repr(shape));
  if (overflow) fail("ValueError", mismatch);
  if (unknown >= 0) {
    if (known == 0 || size % known != 0) fail("ValueError", mismatch);
    shape[static_cast<size_t>(unknown)] = size / known;
  } else if (known != size) {
    fail("ValueError", mismatch);
  }
  Constant out = data;
  out.dims = std::move(shape);
  if (nonzero_overflow(out.dims)) fail("ValueError", mismatch);
  return out;
}

Constant eval_reshape(const Node& node, const Args& args) {
  const Constant& data = arg(node, args, 0);
  std::vector<int64_t> shape = ints_of(node, &arg(node, args, 1));
  if (!node.int_attr("allowzero", 0))
    for (size_t i = 0; i < shape.size(); ++i)
      if (shape[i] == 0 && i < data.dims.size()) shape[i] = data.dims[i];
  return reshaped(data, shape);
}

Constant eval_flatten(const Node& node, const Args& args) {
  const Constant& data = arg(node, args, 0);
  const auto rank = static_cast<int64_t>(data.dims.size());
  int64_t axis = node.int_attr("axis", 1);
  axis = axis < 0 ? axis + rank : axis;
  // data.shape[:axis] as Python slices it
  const int64_t stop = axis < 0 ? std::max<int64_t>(axis + rank, 0) : std::min(axis, rank);
  int64_t leading = 1;
  for (int64_t a = 0; a < stop; ++a) leading *= data.dims[static_cast<size_t>(a)];
  return reshaped(data, {leading, -1});
}

Constant eval_transpose(const Node& node, const Args& args) {
  const Constant& data = data_of(node, arg(node, args, 0));
  const auto rank = static_cast<int64_t>(data.dims.size());
  std::vector<int64_t> perm;
  if (auto given = node.optional_ints("perm")) {
    if (static_cast<int64_t>(given->size()) != rank) fail("ValueError", "axes don't match array");
    std::vector<bool> seen(static_cast<size_t>(rank), false);
    for (int64_t p : *given) {
      if (p < -rank || p >= rank)
        fail("AxisError", concat("axis ", p, " is out of bounds for array of dimension ", rank));
      const int64_t q = p < 0 ? p + rank : p;
      if (seen[static_cast<size_t>(q)]) fail("ValueError", "repeated axis in transpose");
      seen[static_cast<size_t>(q)] = true;
      perm.push_back(q);
    }
  } else {
    for (int64_t a = rank - 1; a >= 0; --a) perm.push_back(a);
  }
  return transpose(data, perm);
}

// -- elementwise arithmetic ----------------------------------------------------------------------------------------
enum class Op { add, sub, mul, truediv, pow, mod, fmod, maximum, minimum, eq, lt, le, gt, ge, land, lor };

const char* op_name(Op op) {
  switch (op) {
    case Op::add: return "add";
    case Op::sub: return "subtract";
    case Op::mul: return "multiply";
    case Op::truediv: return "divide";
    case Op::pow: return "power";
    case Op::mod: return "remainder";
    case Op::fmod: return "fmod";
    case Op::maximum: return "maximum";
    case Op::minimum: return "minimum";
    default: return "compare";
  }
}

bool comparison(Op op) {
  return op == Op::eq || op == Op::lt || op == Op::le || op == Op::gt || op == Op::ge;
}

/// npy_divmod's remainder (Python's sign rule) in the precision of T.
template <class T>
T remainder_of(T a, T b) {
  T mod = std::fmod(a, b);
  if (!b) return mod;
  if (mod) {
    if (std::isless(b, T(0)) != std::isless(mod, T(0))) mod += b;
  } else {
    mod = std::copysign(T(0), b);
  }
  return mod;
}

/// npy_floor_divide for b != 0, in float64.
double floor_divide(double a, double b) {
  const double mod = std::fmod(a, b);
  double div = (a - mod) / b;
  if (mod && std::isless(b, 0.0) != std::isless(mod, 0.0)) div -= 1.0;
  if (div) {
    double floordiv = std::floor(div);
    if (std::isgreater(div - floordiv, 0.5)) floordiv += 1.0;
    return floordiv;
  }
  return std::copysign(0.0, a / b);
}

template <class T>
T float_op(Op op, T a, T b) {
  switch (op) {
    case Op::add: return a + b;
    case Op::sub: return a - b;
    case Op::mul: return a * b;
    case Op::truediv: return a / b;
    case Op::pow: return std::pow(a, b);
    case Op::mod: return remainder_of(a, b);
    case Op::fmod: return std::fmod(a, b);
    case Op::maximum: return std::isnan(a) ? a : std::isnan(b) ? b : (a >= b ? a : b);
    default: return std::isnan(a) ? a : std::isnan(b) ? b : (a <= b ? a : b);
  }
}

/// An integer operation in `dtype` (values wrapped to it); kDivide set by a modulo by zero.
int64_t int_op(const Node& node, Op op, int64_t a, int64_t b, int32_t dtype, unsigned& flags) {
  const bool u = is_unsigned(dtype);
  const auto ua = static_cast<uint64_t>(a), ub = static_cast<uint64_t>(b);
  switch (op) {
    case Op::add: return wrap(ua + ub, dtype);
    case Op::sub: return wrap(ua - ub, dtype);
    case Op::mul: return wrap(ua * ub, dtype);
    case Op::pow: {
      if (!u && b < 0) fail("ValueError", "Integers to negative integer powers are not allowed.");
      uint64_t out = 1, base = ua, e = ub;
      while (e) {
        if (e & 1) out *= base;
        base *= base;
        e >>= 1;
      }
      return wrap(out, dtype);
    }
    case Op::mod:
    case Op::fmod: {
      if (b == 0) {
        flags |= kDivide;
        return 0;
      }
      if (u) return wrap(ua % ub, dtype);
      if (b == -1) return 0;
      int64_t r = a % b;
      if (op == Op::mod && r != 0 && ((r < 0) != (b < 0))) r += b;
      return r;
    }
    case Op::maximum: return u ? (ua >= ub ? a : b) : (a >= b ? a : b);
    case Op::minimum: return u ? (ua <= ub ? a : b) : (a <= b ? a : b);
    default: not_supported(node, "an integer operation");
  }
}

bool compare_values(Op op, double a, double b) {
  switch (op) {
    case Op::eq: return a == b;
    case Op::lt: return std::isless(a, b);
    case Op::le: return std::islessequal(a, b);
    case Op::gt: return std::isgreater(a, b);
    default: return std::isgreaterequal(a, b);
  }
}

bool compare_ints(Op op, int64_t a, int64_t b, bool u) {
  const auto ua = static_cast<uint64_t>(a), ub = static_cast<uint64_t>(b);
  switch (op) {
    case Op::eq: return a == b;
    case Op::lt: return u ? ua < ub : a < b;
    case Op::le: return u ? ua <= ub : a <= b;
    case Op::gt: return u ? ua > ub : a > b;
    default: return u ? ua >= ub : a >= b;
  }
}

/// The ufunc `op` on two values with NumPy's loop selection and broadcasting (shapes already checked to broadcast).
Constant elementwise(const Node& node, Op op, const Constant& a0, const Constant& b0) {
  const Constant& a = data_of(node, a0);
  const Constant& b = data_of(node, b0);
  std::vector<int64_t> dims;
  if (!broadcast_dims({a.dims, b.dims}, dims))
    fail("ValueError",
         concat("operands could not be broadcast together with shapes ", shape_repr(a.dims), " ", shape_repr(b.dims)));
  int32_t loop = promote(a.dtype, b.dtype);
  if (loop == ox::kBool) {
    if (op == Op::sub)
      fail("TypeError",
           "numpy boolean subtract, the `-` operator, is not supported, use the bitwise_xor, the `^` operator, or "
           "the logical_xor function instead.");
    if (op == Op::pow || op == Op::mod || op == Op::fmod) loop = ox::kInt8;
    if (op == Op::truediv) loop = ox::kDouble;
  }
  if (op == Op::truediv && !is_float_type(loop)) loop = ox::kDouble;
  if (op == Op::land || op == Op::lor) loop = ox::kBool;
  const Constant x = cast(a, loop), y = cast(b, loop);
  const std::vector<size_t> ia = broadcast_index(a.dims, dims), ib = broadcast_index(b.dims, dims);
  const size_t n = ia.size();
  if (comparison(op) || op == Op::land || op == Op::lor) {
    Constant out = make(ox::kBool, dims);
    const bool u = is_unsigned(loop);
    for (size_t j = 0; j < n; ++j) {
      bool v;
      if (op == Op::land)
        v = x.integer[ia[j]] && y.integer[ib[j]];
      else if (op == Op::lor)
        v = x.integer[ia[j]] || y.integer[ib[j]];
      else if (is_float_type(loop))
        v = compare_values(op, x.real[ia[j]], y.real[ib[j]]);
      else
        v = compare_ints(op, x.integer[ia[j]], y.integer[ib[j]], u);
      out.integer[j] = v;
    }
    return out;
  }
  Constant out = make(loop, dims);
  unsigned flags = 0;
  if (loop == ox::kBool) {  // add: or, multiply: and, maximum: or, minimum: and
    for (size_t j = 0; j < n; ++j) {
      const bool p = x.integer[ia[j]] != 0, q = y.integer[ib[j]] != 0;
      out.integer[j] = (op == Op::add || op == Op::maximum) ? (p || q) : (p && q);
    }
    return out;
  }
  if (is_float_type(loop)) {
    std::feclearexcept(FE_ALL_EXCEPT);
    for (size_t j = 0; j < n; ++j) {
      const double p = x.real[ia[j]], q = y.real[ib[j]];
      if (loop == ox::kDouble) {
        out.real[j] = float_op<double>(op, p, q);
      } else {
        const auto r = static_cast<double>(float_op<float>(op, static_cast<float>(p), static_cast<float>(q)));
        out.real[j] = loop == ox::kFloat ? r : r;
      }
    }
    const int raised = std::fetestexcept(FE_DIVBYZERO | FE_OVERFLOW | FE_INVALID);
    if (op != Op::maximum && op != Op::minimum) {
      if (raised & FE_DIVBYZERO) flags |= kDivide;
      if (raised & FE_OVERFLOW) flags |= kOverflow;
      if (raised & FE_INVALID) flags |= kInvalid;
    }
    if (loop == ox::kFloat16)
      for (double& v : out.real) v = round_half(v, flags);
    raise_flags(flags, op_name(op));
    return out;
  }
  for (size_t j = 0; j < n; ++j) out.integer[j] = int_op(node, op, x.integer[ia[j]], y.integer[ib[j]], loop, flags);
  raise_flags(flags, op_name(op));
  return out;
}

/// The two operands, the second aligned for the legacy broadcasting of opset < 7.
std::pair<Constant, Constant> operands(const Node& node, const Args& args) {
  Constant a = arg(node, args, 0), b = arg(node, args, 1);
  if (node.opset() > 6) return {a, b};
  if (!node.int_attr("broadcast", 0)) {
    if (a.dims != b.dims)
      throw ModelLoadError(concat(node.describe(), ": operands of shapes ", py_list(a.dims), " and ", py_list(b.dims),
                                  " without broadcast=1 (opset ", node.opset(), " has no implicit broadcasting)"));
    return {a, b};
  }
  if (node.has("axis") && !b.dims.empty()) {
    const auto rank = static_cast<int64_t>(a.dims.size());
    const int64_t axis = norm_axes(node, {node.int_attr("axis", 0)}, std::max<int64_t>(rank, 1))[0];
    const int64_t trailing = rank - axis - static_cast<int64_t>(b.dims.size());
    if (trailing < 0)
      throw ModelLoadError(concat(node.describe(), ": B of shape ", py_list(b.dims), " does not match A of shape ",
                                  py_list(a.dims), " from axis ", axis));
    b.dims.insert(b.dims.end(), static_cast<size_t>(trailing), 1);
  }
  std::vector<int64_t> dims;
  if (!broadcast_dims({a.dims, b.dims}, dims))
    fail("ValueError", concat("shape mismatch: objects cannot be broadcast to a single shape.  Mismatch is between "
                              "arg 0 with shape ",
                              shape_repr(a.dims), " and arg 1 with shape ", shape_repr(b.dims), "."));
  if (dims != a.dims)
    throw ModelLoadError(concat(node.describe(), ": B of shape ", py_list(b.dims), " does not broadcast to A of shape ",
                                py_list(a.dims)));
  return {a, b};
}

/// sign(v) in the value's own type.
Constant sign_of(const Constant& c) {
  Constant out = c;
  for (int64_t& v : out.integer) v = v > 0 ? 1 : v < 0 ? (is_unsigned(c.dtype) ? 1 : -1) : 0;
  return out;
}

/// abs(v) in the value's own type (wrapping at the minimum).
Constant abs_of(const Constant& c) {
  Constant out = c;
  if (is_float_type(c.dtype)) {
    for (double& v : out.real) v = std::fabs(v);
  } else if (!is_unsigned(c.dtype)) {
    for (int64_t& v : out.integer) v = wrap(v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v), c.dtype);
  }
  return out;
}

/// Integer division of two integer tensors: sign(a) * sign(b) * (abs(a) // abs(b)), each step in NumPy's types.
Constant int_divide(const Node& node, const Constant& a, const Constant& b) {
  for (int64_t v : b.integer)
    if (v == 0) fail("ZeroDivisionError", "integer division by zero");
  std::vector<int64_t> dims;
  broadcast_dims({a.dims, b.dims}, dims);
  const int32_t p = promote(a.dtype, b.dtype);
  const Constant sa = cast(sign_of(a), p), sb = cast(sign_of(b), p);
  const Constant qa = cast(abs_of(a), p), qb = cast(abs_of(b), p);
  const std::vector<size_t> ia = broadcast_index(a.dims, dims), ib = broadcast_index(b.dims, dims);
  Constant out = make(p, dims);
  const bool scalars = a.dims.empty() && b.dims.empty();
  for (size_t j = 0; j < ia.size(); ++j) {
    if (p == ox::kDouble) {
      const double s = sa.real[ia[j]] * sb.real[ib[j]];
      out.real[j] = s * floor_divide(qa.real[ia[j]], qb.real[ib[j]]);
      continue;
    }
    const int64_t x = qa.integer[ia[j]], y = qb.integer[ib[j]];
    int64_t q;
    if (is_unsigned(p)) {
      q = wrap(static_cast<uint64_t>(x) / static_cast<uint64_t>(y), p);
    } else if (y == -1) {
      q = wrap(0 - static_cast<uint64_t>(x), p);
    } else {
      q = x / y;
      if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
    }
    const int64_t s = wrap(static_cast<uint64_t>(sa.integer[ia[j]] * sb.integer[ib[j]]), p);
    const int64_t product = wrap(static_cast<uint64_t>(s) * static_cast<uint64_t>(q), p);
    // Two 0-d operands make NumPy scalars, whose product checks for overflow.
    if (scalars && !is_unsigned(p) && s == -1 && product == q && q != 0)
      fail("FloatingPointError", "overflow encountered in scalar multiply");
    out.integer[j] = product;
  }
  (void)node;
  return out;
}

Constant eval_binary(const Node& node, const Args& args) {
  const std::string& op = node.op_type();
  auto [a, b] = operands(node, args);
  data_of(node, a), data_of(node, b);
  const int32_t result = promote(a.dtype, b.dtype);
  Constant out;
  if (op == "Div") {
    const bool ints =
        (is_signed_int(a.dtype) || is_unsigned(a.dtype)) && (is_signed_int(b.dtype) || is_unsigned(b.dtype));
    out = ints ? int_divide(node, a, b) : elementwise(node, Op::truediv, a, b);
  } else {
    out = elementwise(node, op == "Add" ? Op::add : op == "Sub" ? Op::sub : op == "Mul" ? Op::mul : Op::pow, a, b);
  }
  return cast(out, result);
}

Constant eval_mod(const Node& node, const Args& args) {
  return elementwise(node, node.int_attr("fmod", 0) ? Op::fmod : Op::mod, arg(node, args, 0), arg(node, args, 1));
}

Constant eval_compare(const Node& node, const Args& args) {
  const std::string& op = node.op_type();
  auto [a, b] = operands(node, args);
  const Op code = op == "Equal"            ? Op::eq
                  : op == "Less"           ? Op::lt
                  : op == "LessOrEqual"    ? Op::le
                  : op == "Greater"        ? Op::gt
                  : op == "GreaterOrEqual" ? Op::ge
                  : op == "And"            ? Op::land
                                           : Op::lor;
  return elementwise(node, code, a, b);
}

Constant eval_unary(const Node& node, const Args& args) {
  const Constant& a = data_of(node, arg(node, args, 0));
  const std::string& op = node.op_type();
  if (op == "Not") {
    Constant out = make(ox::kBool, a.dims);
    for (size_t i = 0; i < out.integer.size(); ++i)
      out.integer[i] = is_float_type(a.dtype) ? a.real[i] == 0 : a.integer[i] == 0;
    return cast(out, a.dtype);
  }
  if (op == "Neg" && a.dtype == ox::kBool)
    fail("TypeError",
         "The numpy boolean negative, the `-` operator, is not supported, use the `~` operator or the logical_not "
         "function instead.");
  if (op == "Abs") return abs_of(a);
  if (op == "Neg") {
    Constant out = a;
    for (double& v : out.real) v = -v;
    for (int64_t& v : out.integer) v = wrap(0 - static_cast<uint64_t>(v), a.dtype);
    return out;
  }
  if (op == "Floor" || op == "Ceil") {
    Constant out = a;
    for (double& v : out.real) v = op == "Floor" ? std::floor(v) : std::ceil(v);
    return out;
  }
  // Sqrt: integers and bool in the smallest float type holding them, then cast back.
  const int32_t loop =
      is_float_type(a.dtype) ? a.dtype : promote(a.dtype == ox::kBool ? ox::kInt8 : a.dtype, ox::kFloat16);
  Constant x = cast(a, loop);
  unsigned flags = 0;
  std::feclearexcept(FE_ALL_EXCEPT);
  for (double& v : x.real)
    v = loop == ox::kDouble ? std::sqrt(v) : static_cast<double>(std::sqrt(static_cast<float>(v)));
  if (std::fetestexcept(FE_INVALID)) flags |= kInvalid;
  if (loop == ox::kFloat16)
    for (double& v : x.real) v = round_half(v, flags);
  raise_flags(flags, "sqrt");
  return cast(x, a.dtype);
}

Constant eval_variadic(const Node& node, const Args& args) {
  std::vector<const Constant*> parts;
  for (const Constant* a : args)
    if (a) parts.push_back(a);
  if (parts.empty()) throw ModelLoadError(concat(node.describe(), ": no inputs"));
  const std::string& op = node.op_type();
  const Op code = op == "Min" ? Op::minimum : op == "Max" ? Op::maximum : Op::add;
  Constant out = data_of(node, *parts[0]);
  int32_t result = out.dtype;
  for (size_t k = 1; k < parts.size(); ++k) {
    out = elementwise(node, code, out, *parts[k]);
    result = promote(result, parts[k]->dtype);
  }
  return cast(out, result);
}

Constant eval_where(const Node& node, const Args& args) {
  const Constant& c = data_of(node, arg(node, args, 0));
  const Constant& a = data_of(node, arg(node, args, 1));
  const Constant& b = data_of(node, arg(node, args, 2));
  const Constant cond = cast(c, ox::kBool);
  std::vector<int64_t> dims;
  if (!broadcast_dims({cond.dims, a.dims, b.dims}, dims))
    fail("ValueError", "operands could not be broadcast together");
  const int32_t dtype = promote(a.dtype, b.dtype);
  const Constant x = cast(a, dtype), y = cast(b, dtype);
  const auto ic = broadcast_index(cond.dims, dims), ia = broadcast_index(a.dims, dims),
             ib = broadcast_index(b.dims, dims);
  Constant out = make(dtype, dims);
  for (size_t j = 0; j < ic.size(); ++j) {
    if (cond.integer[ic[j]])
      copy_element(x, ia[j], out, j);
    else
      copy_element(y, ib[j], out, j);
  }
  return out;
}

Constant eval_constant_of_shape(const Node& node, const Args& args) {
  const std::vector<int64_t> shape = ints_of(node, &arg(node, args, 0));
  Constant fill;
  if (const ox::Attribute* value = node.attr("value")) {
    if (!value->t) not_supported(node, "a ConstantOfShape value that is not a tensor");
    fill = decode_tensor(*value->t);
    data_of(node, fill);
    if (numel(fill.dims) == 0) fail("IndexError", concat("index 0 is out of bounds for axis 0 with size 0"));
  } else {
    fill = make(ox::kFloat, {1});
  }
  for (int64_t d : shape)
    if (d < 0) fail("ValueError", "negative dimensions are not allowed");
  too_big(node, shape);
  Constant out = make(fill.dtype, shape);
  for (size_t j = 0; j < static_cast<size_t>(numel(shape)); ++j) copy_element(fill, 0, out, j);
  return out;
}

/// The scalar inputs of Range as Python numbers (float64 for floats, exact integers).
Constant eval_range(const Node& node, const Args& args) {
  const Constant* v[3];
  for (size_t i = 0; i < 3; ++i) {
    v[i] = &data_of(node, arg(node, args, i));
    if (numel(v[i]->dims) != 1)
      fail("ValueError", concat("cannot reshape array of size ", numel(v[i]->dims), " into shape ()"));
  }
  const bool floats = is_float_type(v[0]->dtype) || is_float_type(v[1]->dtype) || is_float_type(v[2]->dtype);
  Constant values;
  if (!floats) {
    // np.arange of Python ints: int64 (the count was checked by output_elements).
    int64_t start = v[0]->integer[0], limit = v[1]->integer[0], delta = v[2]->integer[0];
    for (const Constant* c : v)
      if (c->dtype == ox::kUint64 && c->integer[0] < 0) not_supported(node, "a Range beyond int64");
    if (delta == 0) fail("ZeroDivisionError", "division by zero");
    std::vector<int64_t> out;
    for (Wide x = start; delta > 0 ? x < limit : x > limit; x += delta) out.push_back(static_cast<int64_t>(x));
    values = ints_value({static_cast<int64_t>(out.size())}, out);
  } else {
    // np.arange of floats: start + i * delta, the count ceil((limit - start) / delta).
    const double start = as_double(*v[0], 0), limit = as_double(*v[1], 0), delta = as_double(*v[2], 0);
    const double span = std::ceil((limit - start) / delta);
    const int64_t count = span > 0 ? static_cast<int64_t>(span) : 0;
    values = make(ox::kDouble, {count});
    // NumPy fills the first two values, then each as start + i * (second - first).
    if (count > 0) values.real[0] = start;
    if (count > 1) values.real[1] = start + delta;
    const double step = count > 1 ? values.real[1] - values.real[0] : delta;
    for (int64_t i = 2; i < count; ++i) values.real[static_cast<size_t>(i)] = start + static_cast<double>(i) * step;
  }
  return cast(values, v[0]->dtype);
}

Constant eval_expand(const Node& node, const Args& args) {
  const Constant& data = data_of(node, arg(node, args, 0));
  const std::vector<int64_t> shape = ints_of(node, &arg(node, args, 1));
  for (int64_t d : shape)
    if (d < 0) fail("ValueError", "negative dimensions are not allowed");
  std::vector<int64_t> dims;
  broadcast_dims({data.dims, shape}, dims);
  too_big(node, dims);
  return gather_elements(data, dims, broadcast_index(data.dims, dims));
}

Constant eval_tile(const Node& node, const Args& args) {
  const Constant& data = data_of(node, arg(node, args, 0));
  const std::vector<int64_t> repeats = ints_of(node, &arg(node, args, 1));
  bool ok = repeats.size() == data.dims.size();
  for (int64_t r : repeats) ok = ok && r >= 0;
  if (!ok)
    throw ModelLoadError(concat(node.describe(), ": repeats ", py_list(repeats),
                                " must hold one non-negative entry per axis of the rank-", data.dims.size(), " input"));
  std::vector<int64_t> dims(repeats.size());
  for (size_t a = 0; a < repeats.size(); ++a)
    if (__builtin_mul_overflow(data.dims[a], repeats[a], &dims[a]))
      fail("ValueError", "Maximum allowed dimension exceeded");
  too_big(node, dims);
  const std::vector<int64_t> strides = strides_of(data.dims);
  const auto n = static_cast<size_t>(numel(dims));
  std::vector<size_t> index(n);
  std::vector<int64_t> position(dims.size(), 0);
  for (size_t flat = 0; flat < n; ++flat) {
    int64_t k = 0;
    for (size_t a = 0; a < dims.size(); ++a) k += (position[a] % data.dims[a]) * strides[a];
    index[flat] = static_cast<size_t>(k);
    for (size_t a = dims.size(); a-- > 0;) {
      if (++position[a] < dims[a]) break;
      position[a] = 0;
    }
  }
  return gather_elements(data, dims, index);
}

Constant eval_reduce(const Node& node, const Args& args) {
  const Constant& data = data_of(node, arg(node, args, 0));
  const std::string& op = node.op_type();
  auto axes = axes_input(node, args, 1, op == "ReduceSum" ? 13 : 18);
  const bool keepdims = node.int_attr("keepdims", 1) != 0;
  if ((!axes || axes->empty()) && node.int_attr("noop_with_empty_axes", 0)) return data;
  const auto rank = static_cast<int64_t>(data.dims.size());
  std::vector<int64_t> reduced;
  if (!axes || axes->empty()) {
    reduced.resize(static_cast<size_t>(rank));
    std::iota(reduced.begin(), reduced.end(), 0);
  } else {
    reduced = norm_axes(node, *axes, rank);
    std::vector<int64_t> sorted = reduced;
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
      fail("ValueError", "duplicate value in 'axis'");
  }
  std::vector<int64_t> kept, perm, out_dims;
  for (int64_t a = 0; a < rank; ++a)
    if (std::find(reduced.begin(), reduced.end(), a) == reduced.end()) kept.push_back(a);
  perm = kept;
  perm.insert(perm.end(), reduced.begin(), reduced.end());
  int64_t rows = 1, count = 1;
  for (int64_t a : kept) rows *= data.dims[static_cast<size_t>(a)];
  for (int64_t a : reduced) count *= data.dims[static_cast<size_t>(a)];
  for (int64_t a = 0; a < rank; ++a) {
    const bool is_reduced = std::find(reduced.begin(), reduced.end(), a) != reduced.end();
    if (!is_reduced)
      out_dims.push_back(data.dims[static_cast<size_t>(a)]);
    else if (keepdims)
      out_dims.push_back(1);
  }
  const bool extremum = op == "ReduceMin" || op == "ReduceMax";
  if (extremum && count == 0)
    fail("ValueError", concat("zero-size array to reduction operation ", op == "ReduceMin" ? "minimum" : "maximum",
                              " which has no identity"));
  const Constant moved = transpose(data, perm);
  const bool sum = op == "ReduceSum";
  if (is_float_type(data.dtype)) {
    // Sum and product in a fixed order (each row's elements left to right); min and max ignore the order.
    Constant out = make(data.dtype, out_dims);
    unsigned flags = 0;
    std::feclearexcept(FE_ALL_EXCEPT);
    for (int64_t r = 0; r < rows; ++r) {
      const double* row = moved.real.data() + r * count;
      double acc = count == 0 ? (sum ? 0.0 : 1.0) : row[0];
      for (int64_t j = 1; j < count; ++j) {
        const Op code = sum ? Op::add : op == "ReduceProd" ? Op::mul : op == "ReduceMin" ? Op::minimum : Op::maximum;
        if (data.dtype == ox::kDouble) {
          acc = float_op<double>(code, acc, row[j]);
        } else {
          acc = static_cast<double>(float_op<float>(code, static_cast<float>(acc), static_cast<float>(row[j])));
          if (data.dtype == ox::kFloat16) acc = round_half(acc, flags);
        }
      }
      out.real[static_cast<size_t>(r)] = acc;
    }
    const int raised = std::fetestexcept(FE_OVERFLOW | FE_INVALID);
    if (!extremum) {
      if (raised & FE_OVERFLOW) flags |= kOverflow;
      if (raised & FE_INVALID) flags |= kInvalid;
    } else {
      flags = 0;
    }
    raise_flags(flags, sum ? "add" : "multiply");
    return out;
  }
  // Integers and bool: NumPy sums and multiplies in int64 (uint64 for unsigned), then casts back.
  const bool u = is_unsigned(data.dtype);
  Constant out = make(extremum ? data.dtype : (u ? ox::kUint64 : ox::kInt64), out_dims);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t* row = moved.integer.data() + r * count;
    uint64_t acc = count == 0 ? (sum ? 0 : 1) : static_cast<uint64_t>(row[0]);
    for (int64_t j = 1; j < count; ++j) {
      const auto v = static_cast<uint64_t>(row[j]);
      if (sum)
        acc += v;
      else if (op == "ReduceProd")
        acc *= v;
      else if (op == "ReduceMin")
        acc = (u ? v < acc : static_cast<int64_t>(v) < static_cast<int64_t>(acc)) ? v : acc;
      else
        acc = (u ? v > acc : static_cast<int64_t>(v) > static_cast<int64_t>(acc)) ? v : acc;
    }
    out.integer[static_cast<size_t>(r)] = static_cast<int64_t>(acc);
  }
  return cast(out, data.dtype);
}

using Evaluator = Constant (*)(const Node&, const Args&);

Evaluator evaluator_of(const std::string& op) {
  static const std::map<std::string, Evaluator> table = {
      {"Shape", eval_shape},
      {"Size", eval_size},
      {"Gather", eval_gather},
      {"Unsqueeze", eval_unsqueeze},
      {"Squeeze", eval_squeeze},
      {"Concat", eval_concat},
      {"Slice", eval_slice},
      {"Cast", eval_cast},
      {"Reshape", eval_reshape},
      {"Flatten", eval_flatten},
      {"Transpose", eval_transpose},
      {"Add", eval_binary},
      {"Sub", eval_binary},
      {"Mul", eval_binary},
      {"Div", eval_binary},
      {"Pow", eval_binary},
      {"Mod", eval_mod},
      {"Equal", eval_compare},
      {"Less", eval_compare},
      {"LessOrEqual", eval_compare},
      {"Greater", eval_compare},
      {"GreaterOrEqual", eval_compare},
      {"And", eval_compare},
      {"Or", eval_compare},
      {"Neg", eval_unary},
      {"Abs", eval_unary},
      {"Floor", eval_unary},
      {"Ceil", eval_unary},
      {"Sqrt", eval_unary},
      {"Not", eval_unary},
      {"Min", eval_variadic},
      {"Max", eval_variadic},
      {"Sum", eval_variadic},
      {"Where", eval_where},
      {"ConstantOfShape", eval_constant_of_shape},
      {"Range", eval_range},
      {"Expand", eval_expand},
      {"Tile", eval_tile},
      {"ReduceProd", eval_reduce},
      {"ReduceSum", eval_reduce},
      {"ReduceMin", eval_reduce},
      {"ReduceMax", eval_reduce},
  };
  auto it = table.find(op);
  return it == table.end() ? nullptr : it->second;
}

// -- sizes before evaluation ---------------------------------------------------------------------------------------
/// A count that may exceed int64 (Python's integers): saturated at the int64 maximum, which is above any limit.
int64_t saturating_mul(int64_t a, int64_t b) {
  int64_t out;
  if (__builtin_mul_overflow(a, b, &out)) return std::numeric_limits<int64_t>::max();
  return out;
}

int64_t broadcast_elements(const Node& node, const std::vector<std::vector<int64_t>>& shapes) {
  size_t rank = 0;
  for (const auto& s : shapes) rank = std::max(rank, s.size());
  int64_t total = 1;
  for (size_t axis = 0; axis < rank; ++axis) {
    std::set<int64_t> extents;
    for (const auto& s : shapes)
      if (axis + s.size() >= rank && s[axis + s.size() - rank] != 1) extents.insert(s[axis + s.size() - rank]);
    if (extents.size() > 1) {
      std::string text = "[";
      for (size_t k = 0; k < shapes.size(); ++k) text += (k ? ", " : "") + py_list(shapes[k]);
      throw ModelLoadError(concat(node.describe(), ": operands of shapes ", text, "] do not broadcast"));
    }
    total = saturating_mul(total, extents.empty() ? 1 : *extents.begin());
  }
  return total;
}

/// Python's repr of a float (for Range's message): the shortest digits that read back, positional from 1e-4 to 1e16.
std::string float_text(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buffer[48];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buffer, sizeof buffer, "%.*e", precision - 1, v);
    if (std::strtod(buffer, nullptr) == v) break;
  }
  std::string text = buffer, sign;
  if (text[0] == '-') sign = "-", text = text.substr(1);
  const size_t e = text.find('e');
  const int exponent = std::atoi(text.c_str() + e + 1);
  std::string digits;
  for (size_t i = 0; i < e; ++i)
    if (text[i] != '.') digits += text[i];
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  if (exponent >= -4 && exponent < 16) {
    if (exponent < 0) return sign + "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
    const auto point = static_cast<size_t>(exponent) + 1;
    if (digits.size() <= point) return sign + digits + std::string(point - digits.size(), '0') + ".0";
    return sign + digits.substr(0, point) + "." + digits.substr(point);
  }
  std::string mantissa = digits.substr(0, 1) + (digits.size() > 1 ? "." + digits.substr(1) : "");
  char tail[16];
  std::snprintf(tail, sizeof tail, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
  return sign + mantissa + tail;
}

int64_t range_count(const Node& node, const Args& args) {
  const Constant* v[3];
  for (size_t i = 0; i < 3; ++i) v[i] = &data_of(node, arg(node, args, i));
  if (numel(v[0]->dims) != 1 || numel(v[1]->dims) != 1 || numel(v[2]->dims) != 1)
    throw ModelLoadError(concat(node.describe(), ": start, limit and delta must be scalars"));
  const double a = as_double(*v[0], 0), b = as_double(*v[1], 0), d = as_double(*v[2], 0);
  if (d == 0 || !std::isfinite(a) || !std::isfinite(b) || !std::isfinite(d))
    throw ModelLoadError(concat(node.describe(), ": start ", float_text(a), ", limit ", float_text(b), " and delta ",
                                float_text(d), " give no finite range"));
  const double q = std::ceil((b - a) / d);
  if (std::isinf(q)) fail("OverflowError", "cannot convert float infinity to integer");
  if (q <= 0) return 0;
  return q >= 0x1p63 ? std::numeric_limits<int64_t>::max() : static_cast<int64_t>(q);
}

std::vector<int64_t> shape_entries(const Node& node, const Constant& value, const char* what) {
  const std::vector<int64_t> entries = ints_of(node, &value);
  for (int64_t d : entries)
    if (d < 0)
      throw ModelLoadError(concat(node.describe(), ": the ", what, " ", py_list(entries), " has a negative entry"));
  return entries;
}

std::optional<int64_t> output_elements(const Node& node, const Args& args) {
  const std::string& op = node.op_type();
  std::vector<const Constant*> present;
  for (const Constant* a : args)
    if (a) present.push_back(a);
  auto product = [](const std::vector<int64_t>& v) {
    int64_t p = 1;
    for (int64_t d : v) p = saturating_mul(p, d);
    return p;
  };
  if (op == "ConstantOfShape") return product(shape_entries(node, arg(node, args, 0), "shape"));
  if (op == "Range") return range_count(node, args);
  if (op == "Expand") {
    const std::vector<int64_t> shape = ints_of(node, &arg(node, args, 1));
    return broadcast_elements(node, {arg(node, args, 0).dims, shape});
  }
  if (op == "Tile") {
    const int64_t size = numel(arg(node, args, 0).dims);
    return saturating_mul(size, product(shape_entries(node, arg(node, args, 1), "repeats")));
  }
  if (op == "Concat") {
    int64_t total = 0;
    for (const Constant* a : present) total += numel(a->dims);
    return total;
  }
  static const std::set<std::string> legacy_binary = {"Add",   "Sub",  "Mul",     "Div", "Pow",
                                                      "Equal", "Less", "Greater", "And", "Or"};
  if (node.opset() <= 6 && legacy_binary.count(op) && present.size() == 2)
    return numel(present[0]->dims);  // legacy broadcasting: B aligned to A at `axis`; the result has A's shape
  static const std::set<std::string> broadcasting = {
      "Add", "Sub", "Mul", "Div", "Pow", "Mod",  "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual",
      "And", "Or",  "Min", "Max", "Sum", "Where"};
  if (broadcasting.count(op)) {
    std::vector<std::vector<int64_t>> shapes;
    for (const Constant* a : present) shapes.push_back(a->dims);
    return broadcast_elements(node, shapes);
  }
  if (op == "Gather" && present.size() == 2) {
    const auto rank = static_cast<int64_t>(present[0]->dims.size());
    const int64_t axis = node.int_attr("axis", 0);
    const int64_t extent =
        rank && axis >= -rank && axis < rank ? present[0]->dims[static_cast<size_t>((axis + rank) % rank)] : 1;
    return saturating_mul(numel(present[0]->dims) / std::max<int64_t>(extent, 1), numel(present[1]->dims));
  }
  return std::nullopt;
}

bool same(const Constant& a, const Constant& b) {
  return a.dtype == b.dtype && a.dims == b.dims && a.integer == b.integer && a.real == b.real;
}

}  // namespace

bool try_fold(Context& ctx, const Node& node) {
  const std::string& op = node.op_type();
  bool known = false;
  for (const FoldOp& f : fold_ops()) known = known || (op == f.op && node.opset() >= f.since);
  const Evaluator evaluate = known ? evaluator_of(op) : nullptr;
  if (!evaluate) return false;
  // The inputs for the two sentinel batches; Shape and Size read a data input's shape only.
  Args firsts, seconds;
  std::vector<Constant> stand_ins;  // data inputs' shapes, kept alive here
  stand_ins.reserve(2);
  bool varying = false;
  for (size_t i = 0; i < node.inputs().size(); ++i) {
    const std::string& name = node.inputs()[i];
    if (name.empty()) {
      firsts.push_back(nullptr), seconds.push_back(nullptr);
      continue;
    }
    const std::string resolved = ctx.resolve(name);
    auto c = ctx.constants.find(resolved);
    if (c != ctx.constants.end()) {
      firsts.push_back(&c->second), seconds.push_back(&c->second);
      continue;
    }
    auto pair = ctx.batch_values.find(resolved);
    if (pair != ctx.batch_values.end()) {
      firsts.push_back(&pair->second.first), seconds.push_back(&pair->second.second);
      varying = true;
      continue;
    }
    if ((op != "Shape" && op != "Size") || i != 0 || !ctx.is_data(name)) return false;
    if (ctx.merged_batch.count(resolved))
      throw UnsupportedModelError(concat(node.describe(), ": the shape of '", name,
                                         "' is taken after a Flatten with axis >= 2, whose leading ONNX axis mixes the "
                                         "batch with other axes; this is not supported"));
    auto sample = ctx.sample_shape(name);
    if (!sample) {
      auto shape = ctx.shape_of(name);
      throw UnsupportedModelError(concat(node.describe(), ": the shape of '", name,
                                         "' is not known at import (shape inference gives ",
                                         shape ? py_tuple(*shape) : std::string("None"),
                                         "); only shapes that depend on the batch size alone can be computed"));
    }
    for (int64_t batch : kSentinels) {
      Constant stand_in;  // np.broadcast_to(np.zeros((), np.float32), (batch, *sample)): dims only
      stand_in.dtype = ox::kFloat;
      stand_in.dims = {batch};
      stand_in.dims.insert(stand_in.dims.end(), sample->begin(), sample->end());
      int64_t bytes = 4;
      for (int64_t d : stand_in.dims)
        if (__builtin_mul_overflow(bytes, d, &bytes))
          throw ModelLoadError(concat(node.describe(),
                                      ": ValueError: array is too big; `arr.size * arr.dtype.itemsize` is larger than "
                                      "the maximum possible size."));
      stand_ins.push_back(std::move(stand_in));
    }
    firsts.push_back(&stand_ins[0]), seconds.push_back(&stand_ins[1]);
    varying = true;
  }
  const int64_t limit = ctx.limits.max_folded_constant;
  auto check_size = [&](int64_t elements, const char* when) {
    if (elements > limit || ctx.folded_elements + elements > limit) {
      // saturating_mul stops at the int64 maximum: a count beyond it is said as such, not as that number
      std::string what = elements == std::numeric_limits<int64_t>::max()
                             ? std::string("a constant of more than 2^63 elements")
                             : concat("a constant of ", elements, " elements");
      if (elements <= limit) what += concat(", after ", ctx.folded_elements, " elements folded before it,");
      throw ModelLoadError(concat(node.describe(), ": evaluating it at import would ", when, " ", what,
                                  " more than the limit of ", limit,
                                  " (raise it with dtd.load(..., limits=dtd.Limits(max_folded_constant=...)))"));
    }
  };
  Constant first, second;
  try {
    // Decide the size from the shapes before anything is made (a tiny file can ask for gigabytes).
    for (const Args* args : varying ? std::vector<const Args*>{&firsts, &seconds} : std::vector<const Args*>{&firsts}) {
      auto elements = output_elements(node, *args);
      if (elements) check_size(*elements, "make");
    }
    first = evaluate(node, firsts);
    if (varying) second = evaluate(node, seconds);
  } catch (const EvalError& e) {
    throw ModelLoadError(concat(node.describe(), ": cannot evaluate it at import: ", e.type, ": ", e.message));
  }
  const int64_t made = numel(first.dims) + (varying ? numel(second.dims) : 0);
  check_size(made, "have made");
  ctx.folded_elements += made;
  if (node.outputs().empty() || node.outputs()[0].empty()) return true;
  const std::string& out = node.outputs()[0];
  if (!varying || same(first, second))
    ctx.constants[out] = std::move(first);
  else
    ctx.batch_values[out] = {std::move(first), std::move(second)};
  return true;
}

std::vector<int64_t> reshape_target(const Context& ctx, const Node& node) {
  const auto& pair = ctx.batch_values.at(ctx.resolve(node.input(1)));
  const std::vector<int64_t> first = pair.first.as_ints(node.describe()), second = pair.second.as_ints(node.describe());
  if (first.size() != second.size())
    throw UnsupportedModelError(concat(node.describe(), ": the number of entries of the target shape '", node.input(1),
                                       "' depends on the batch size"));
  std::vector<int64_t> entries = first;
  for (size_t position = 0; position < first.size(); ++position) {
    if (position == 0 && first[0] == kSentinels[0] && second[0] == kSentinels[1]) {
      entries[0] = 0;
    } else if (first[position] != second[position]) {
      const std::string where =
          position == 0 ? std::string("first entry (the batch axis)") : concat("entry ", position);
      throw UnsupportedModelError(concat(node.describe(), ": the ", where, " of the target shape '", node.input(1),
                                         "' depends on the batch size in a way dtd cannot express (supported: the "
                                         "batch size itself as the first entry, batch-independent values elsewhere)"));
    }
  }
  return entries;
}

void convert_shape_only(Context& ctx, const Node& node) {
  std::string data = node.input(0);
  for (const std::string& n : node.inputs())
    if (!n.empty() && !ctx.constants.count(ctx.resolve(n)) && !ctx.batch_values.count(ctx.resolve(n))) {
      data = n;
      break;
    }
  throw UnsupportedModelError(concat(node.describe(), ": ", node.op_type(),
                                     " is only supported on constants and shape values (the shape arithmetic in front "
                                     "of a Reshape, evaluated at import); its input '",
                                     data, "' is a data tensor"));
}

}  // namespace dtd::importer
