// The importer's state and helpers, and the decoding of tensors into constants (numpy_helper.to_array).
#include "context.hpp"

#include <cmath>
#include <cstring>
#include <limits>

namespace dtd::importer {

using detail::concat;

// -- reprs -------------------------------------------------------------------------------------------------------
namespace {
std::string join(const std::vector<std::string>& parts, const char* open, const char* close, bool tuple) {
  std::string out = open;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? ", " : "") + parts[i];
  if (tuple && parts.size() == 1) out += ",";
  return out + close;
}
std::vector<std::string> texts(const std::vector<int64_t>& v) {
  std::vector<std::string> out;
  for (int64_t d : v) out.push_back(std::to_string(d));
  return out;
}
std::vector<std::string> texts(const Dims& v) {
  std::vector<std::string> out;
  for (const auto& d : v) out.push_back(d ? std::to_string(*d) : "None");
  return out;
}
}  // namespace

std::string py_list(const std::vector<int64_t>& v) {
  return join(texts(v), "[", "]", false);
}
std::string py_list(const Dims& v) {
  return join(texts(v), "[", "]", false);
}
std::string py_tuple(const std::vector<int64_t>& v) {
  return join(texts(v), "(", ")", true);
}
std::string py_tuple(const Dims& v) {
  return join(texts(v), "(", ")", true);
}
std::string n_list(const Dims& shape) {
  std::vector<std::string> parts{"'N'"};
  for (size_t i = 1; i < shape.size(); ++i) parts.push_back(shape[i] ? std::to_string(*shape[i]) : "'?'");
  return join(parts, "[", "]", false);
}

// -- constants ---------------------------------------------------------------------------------------------------
bool Constant::is_float() const {
  return dtype == ox::kFloat || dtype == ox::kDouble || dtype == ox::kFloat16 || dtype == ox::kBfloat16;
}

bool Constant::is_integer() const {
  switch (dtype) {
    case ox::kUint8:
    case ox::kInt8:
    case ox::kUint16:
    case ox::kInt16:
    case ox::kInt32:
    case ox::kInt64:
    case ox::kBool:
    case ox::kUint32:
    case ox::kUint64: return true;
    default: return false;
  }
}

int64_t Constant::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

std::string Constant::dtype_name() const {
  static const char* const names[] = {
      "void",      "float32",    "uint8",        "int8",          "uint16",          "int16",       "int32",
      "int64",     "object",     "bool",         "float16",       "float64",         "uint32",      "uint64",
      "complex64", "complex128", "bfloat16",     "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz",
      "uint4",     "int4",       "float4_e2m1fn"};
  if (dtype >= 0 && dtype < static_cast<int32_t>(sizeof(names) / sizeof(names[0]))) return names[dtype];
  return ox::data_type_name(dtype);
}

namespace {

/// Python's int() of a str, base 10: surrounding whitespace, a sign, digits with single underscores between them.
/// Only ASCII text is handled (int() also reads other Unicode digits and whitespace): anything else is not ported.
int64_t parse_int(const std::string& text, const std::string& where) {
  for (unsigned char ch : text)
    if (ch >= 0x80 || ch == '\'' || ch == '\\' || (ch < 0x20 && !std::isspace(ch)) || ch == 0x7f)
      throw UnsupportedModelError(concat(where, ": a string constant of other than plain ASCII text is not supported"));
  auto invalid = [&]() {
    // repr(text) of plain ASCII text without quotes or backslashes: '...', control characters escaped.
    std::string shown;
    for (char ch : text) {
      if (ch == '\n')
        shown += "\\n";
      else if (ch == '\t')
        shown += "\\t";
      else if (ch == '\r')
        shown += "\\r";
      else if (static_cast<unsigned char>(ch) < 0x20) {
        static const char* const hex = "0123456789abcdef";
        shown += concat("\\x", hex[(ch >> 4) & 0xf], hex[ch & 0xf]);
      } else
        shown += ch;
    }
    return ModelLoadError(concat(where, ": ValueError: invalid literal for int() with base 10: '", shown, "'"));
  };
  size_t begin = 0, end = text.size();
  while (begin < end && std::isspace(static_cast<unsigned char>(text[begin]))) ++begin;
  while (end > begin && std::isspace(static_cast<unsigned char>(text[end - 1]))) --end;
  bool negative = false;
  if (begin < end && (text[begin] == '+' || text[begin] == '-')) negative = text[begin++] == '-';
  if (begin == end) throw invalid();
  uint64_t value = 0;
  const uint64_t limit = negative ? uint64_t{1} << 63 : (uint64_t{1} << 63) - 1;
  auto too_large = [&]() {
    return UnsupportedModelError(concat(where, ": an integer string beyond int64 is not supported"));
  };
  bool digit_before = false;
  for (size_t i = begin; i < end; ++i) {
    const char ch = text[i];
    if (ch == '_') {
      if (!digit_before || i + 1 == end || text[i + 1] == '_') throw invalid();
      digit_before = false;
      continue;
    }
    if (ch < '0' || ch > '9') throw invalid();
    digit_before = true;
    const auto d = static_cast<uint64_t>(ch - '0');
    if (value > (limit - d) / 10) {
      // Still parse the rest: an invalid character later makes it the ValueError, as int() reports it.
      for (size_t k = i; k < end; ++k)
        if ((text[k] < '0' || text[k] > '9') && text[k] != '_') throw invalid();
      throw too_large();
    }
    value = value * 10 + d;
  }
  return negative ? static_cast<int64_t>(0 - value) : static_cast<int64_t>(value);
}

}  // namespace

std::vector<int64_t> Constant::as_ints(const std::string& where) const {
  if (!integer.empty() || is_integer()) return integer;
  std::vector<int64_t> out;
  if (dtype == ox::kString) {
    for (const std::string& s : text) out.push_back(parse_int(s, where));
    return out;
  }
  out.reserve(real.size());
  for (double v : real) {
    if (std::isnan(v)) throw ModelLoadError(where + ": ValueError: cannot convert float NaN to integer");
    if (std::isinf(v)) throw ModelLoadError(where + ": OverflowError: cannot convert float infinity to integer");
    out.push_back(static_cast<int64_t>(std::trunc(v)));
  }
  if (real.size() != static_cast<size_t>(numel()))
    throw UnsupportedModelError(concat(where, ": a constant of element type ", dtype_name(), " is not supported"));
  return out;
}

bool Constant::first_truth() const {
  if (dtype == ox::kString) return !text.at(0).empty();
  if (!integer.empty()) return integer.at(0) != 0;
  const bool imaginary = !imag.empty() && imag.at(0) != 0;
  return real.at(0) != 0 || imaginary;  // NaN is true
}

namespace {

double half_to_double(uint16_t h) {
  const int exponent = (h >> 10) & 0x1f;
  const int mantissa = h & 0x3ff;
  double v;
  if (exponent == 0) {
    v = std::ldexp(static_cast<double>(mantissa), -24);
  } else if (exponent == 31) {
    v = mantissa ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  } else {
    v = std::ldexp(static_cast<double>(mantissa + 1024), exponent - 25);
  }
  return (h & 0x8000) ? -v : v;
}

double bfloat16_to_double(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return static_cast<double>(f);
}

/// ml_dtypes' 8-bit floats: `mantissa_bits` of mantissa, the exponent `bias`; fnuz: NaN is 0x80 alone, no -0 and no
/// inf; otherwise e4m3fn has NaN at S.1111.111 and no inf, e5m2 IEEE's inf and NaN.
double float8_to_double(uint8_t bits, int32_t dtype) {
  const bool e4m3 = dtype == ox::kFloat8E4M3FN || dtype == ox::kFloat8E4M3FNUZ;
  const bool fnuz = dtype == ox::kFloat8E4M3FNUZ || dtype == ox::kFloat8E5M2FNUZ;
  const int mantissa_bits = e4m3 ? 3 : 2;
  const int bias = (e4m3 ? 7 : 15) + (fnuz ? 1 : 0);
  const int exponent = (bits & 0x7f) >> mantissa_bits;
  const int mantissa = bits & ((1 << mantissa_bits) - 1);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (fnuz && bits == 0x80) return nan;
  if (!fnuz) {
    if (e4m3 && (bits & 0x7f) == 0x7f) return nan;
    if (!e4m3 && exponent == 31) {
      if (mantissa) return nan;
      return (bits & 0x80) ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
    }
  }
  const double v =
      exponent == 0 ? std::ldexp(static_cast<double>(mantissa), 1 - bias - mantissa_bits)
                    : std::ldexp(static_cast<double>(mantissa + (1 << mantissa_bits)), exponent - bias - mantissa_bits);
  return (bits & 0x80) ? -v : v;
}

/// float4_e2m1fn: 1 sign, 2 exponent (bias 1), 1 mantissa bit; no inf or NaN.
double float4_to_double(uint8_t nibble) {
  const int exponent = (nibble >> 1) & 3, mantissa = nibble & 1;
  const double v = exponent == 0 ? 0.5 * mantissa : std::ldexp(1.0 + 0.5 * mantissa, exponent - 1);
  return (nibble & 8) ? -v : v;
}

template <class T>
T raw_at(const std::string& raw, size_t i) {
  T v;
  std::memcpy(&v, raw.data() + i * sizeof(T), sizeof(T));
  return v;
}

}  // namespace

Constant decode_tensor(const ox::Tensor& t) {
  Constant c;
  c.dtype = t.data_type;
  c.dims = t.dims;
  const int64_t n = t.numel();
  const auto count = static_cast<size_t>(n);
  const bool raw = t.has_raw_data;
  auto sized = [&](size_t have) {
    if (have != count)
      throw ModelLoadError(concat("cannot read tensor '", t.name, "': ", have, " values for dims ", py_list(t.dims)));
  };
  switch (t.data_type) {
    case ox::kFloat:
      c.real.resize(count);
      if (raw) {
        sized(t.raw_data.size() / 4);
        for (size_t i = 0; i < count; ++i) c.real[i] = static_cast<double>(raw_at<float>(t.raw_data, i));
      } else {
        sized(t.float_data.size());
        for (size_t i = 0; i < count; ++i) c.real[i] = static_cast<double>(t.float_data[i]);
      }
      break;
    case ox::kDouble:
      c.real.resize(count);
      if (raw) {
        sized(t.raw_data.size() / 8);
        for (size_t i = 0; i < count; ++i) c.real[i] = raw_at<double>(t.raw_data, i);
      } else {
        sized(t.double_data.size());
        c.real.assign(t.double_data.begin(), t.double_data.end());
      }
      break;
    case ox::kFloat16:
    case ox::kBfloat16: {
      c.real.resize(count);
      const bool half = t.data_type == ox::kFloat16;
      if (!raw)
        sized(t.int32_data.size());
      else
        sized(t.raw_data.size() / 2);
      for (size_t i = 0; i < count; ++i) {
        const auto bits = raw ? raw_at<uint16_t>(t.raw_data, i) : static_cast<uint16_t>(t.int32_data[i]);
        c.real[i] = half ? half_to_double(bits) : bfloat16_to_double(bits);
      }
      break;
    }
    case ox::kInt64:
      if (raw) {
        sized(t.raw_data.size() / 8);
        c.integer.resize(count);
        for (size_t i = 0; i < count; ++i) c.integer[i] = raw_at<int64_t>(t.raw_data, i);
      } else {
        sized(t.int64_data.size());
        c.integer = t.int64_data;
      }
      break;
    case ox::kUint32:
    case ox::kUint64: {
      const size_t size = t.data_type == ox::kUint32 ? 4 : 8;
      c.integer.resize(count);
      if (raw) {
        sized(t.raw_data.size() / size);
        for (size_t i = 0; i < count; ++i)
          c.integer[i] = size == 4 ? static_cast<int64_t>(raw_at<uint32_t>(t.raw_data, i))
                                   : static_cast<int64_t>(raw_at<uint64_t>(t.raw_data, i));
      } else {
        sized(t.uint64_data.size());
        for (size_t i = 0; i < count; ++i) c.integer[i] = static_cast<int64_t>(t.uint64_data[i]);
      }
      break;
    }
    case ox::kInt32:
    case ox::kInt16:
    case ox::kInt8:
    case ox::kUint16:
    case ox::kUint8:
    case ox::kBool: {
      c.integer.resize(count);
      if (raw) {
        const size_t size = static_cast<size_t>(ox::element_size(t.data_type));
        sized(t.raw_data.size() / size);
        for (size_t i = 0; i < count; ++i) {
          switch (t.data_type) {
            case ox::kInt32: c.integer[i] = raw_at<int32_t>(t.raw_data, i); break;
            case ox::kInt16: c.integer[i] = raw_at<int16_t>(t.raw_data, i); break;
            case ox::kInt8: c.integer[i] = raw_at<int8_t>(t.raw_data, i); break;
            case ox::kUint16: c.integer[i] = raw_at<uint16_t>(t.raw_data, i); break;
            case ox::kUint8: c.integer[i] = raw_at<uint8_t>(t.raw_data, i); break;
            default: c.integer[i] = raw_at<uint8_t>(t.raw_data, i) != 0; break;
          }
        }
      } else {
        sized(t.int32_data.size());
        for (size_t i = 0; i < count; ++i) c.integer[i] = t.int32_data[i];
      }
      break;
    }
    case ox::kComplex64:
    case ox::kComplex128: {
      const bool single = t.data_type == ox::kComplex64;
      c.real.resize(count);
      c.imag.resize(count);
      if (raw)
        sized(t.raw_data.size() / (single ? 8 : 16));
      else
        sized((single ? t.float_data.size() : t.double_data.size()) / 2);
      for (size_t i = 0; i < count; ++i) {
        for (size_t part = 0; part < 2; ++part) {
          const size_t k = 2 * i + part;
          const double v =
              raw ? (single ? static_cast<double>(raw_at<float>(t.raw_data, k)) : raw_at<double>(t.raw_data, k))
                  : (single ? static_cast<double>(t.float_data[k]) : t.double_data[k]);
          (part ? c.imag : c.real)[i] = v;
        }
      }
      break;
    }
    case ox::kFloat8E4M3FN:
    case ox::kFloat8E4M3FNUZ:
    case ox::kFloat8E5M2:
    case ox::kFloat8E5M2FNUZ:
      c.real.resize(count);
      if (raw)
        sized(t.raw_data.size());
      else
        sized(t.int32_data.size());
      for (size_t i = 0; i < count; ++i)
        c.real[i] = float8_to_double(raw ? static_cast<uint8_t>(t.raw_data[i]) : static_cast<uint8_t>(t.int32_data[i]),
                                     t.data_type);
      break;
    case ox::kInt4:
    case ox::kUint4:
    case ox::kFloat4E2M1: {
      // Two elements per byte, the first in the low nibble.
      const size_t bytes = (count + 1) / 2;
      if ((raw ? t.raw_data.size() : t.int32_data.size()) != bytes)
        throw ModelLoadError(concat("cannot read tensor '", t.name,
                                    "': ", raw ? t.raw_data.size() : t.int32_data.size(), " bytes for dims ",
                                    py_list(t.dims)));
      for (size_t i = 0; i < count; ++i) {
        const auto byte = raw ? static_cast<uint8_t>(t.raw_data[i / 2]) : static_cast<uint8_t>(t.int32_data[i / 2]);
        const auto nibble = static_cast<uint8_t>(i % 2 ? byte >> 4 : byte & 0xf);
        if (t.data_type == ox::kFloat4E2M1)
          c.real.push_back(float4_to_double(nibble));
        else if (t.data_type == ox::kInt4)
          c.integer.push_back(nibble >= 8 ? nibble - 16 : nibble);
        else
          c.integer.push_back(nibble);
      }
      break;
    }
    case ox::kString:
      sized(t.string_data.size());
      c.text = t.string_data;
      break;
    default: break;  // other types: the dtype and dims only
  }
  return c;
}

Array to_array(const Constant& c) {
  Array a;
  a.shape = c.dims;
  a.data = c.real;
  return a;
}

// -- nodes -------------------------------------------------------------------------------------------------------
Node::Node(const ox::Node& proto, std::string name, int64_t opset, int index)
    : proto_(&proto), name_(std::move(name)), opset_(opset), index_(index) {
  for (const ox::Attribute& a : proto.attribute) {
    if (a.type == ox::Attribute::kUndefined)
      throw ModelLoadError(concat(proto.op_type, " '", name_, "': cannot decode attribute '", a.name,
                                  "': an attribute of type UNDEFINED"));
    attrs_[a.name] = &a;
  }
}

std::string Node::describe() const {
  return concat(op_type(), " '", name_, "'");
}

std::string Node::input(size_t i) const {
  return i < inputs().size() ? inputs()[i] : std::string();
}

const ox::Attribute* Node::attr(const std::string& name) const {
  auto it = attrs_.find(name);
  return it == attrs_.end() ? nullptr : it->second;
}

int64_t Node::int_attr(const std::string& name, int64_t fallback) const {
  const ox::Attribute* a = attr(name);
  if (!a) return fallback;
  if (a->type != ox::Attribute::kInt)
    throw ModelLoadError(concat(describe(), ": attribute '", name, "' must be an integer"));
  return a->i;
}

double Node::float_attr(const std::string& name, double fallback) const {
  const ox::Attribute* a = attr(name);
  if (!a) return fallback;
  if (a->type == ox::Attribute::kFloat) return static_cast<double>(a->f);
  if (a->type == ox::Attribute::kInt) return static_cast<double>(a->i);
  throw ModelLoadError(concat(describe(), ": attribute '", name, "' must be a float"));
}

std::string Node::str_attr(const std::string& name, const std::string& fallback) const {
  const ox::Attribute* a = attr(name);
  if (!a) return fallback;
  if (a->type != ox::Attribute::kString)
    throw ModelLoadError(concat(describe(), ": attribute '", name, "' must be a string"));
  return a->s;
}

std::optional<std::vector<int64_t>> Node::optional_ints(const std::string& name, std::optional<size_t> length) const {
  const ox::Attribute* a = attr(name);
  if (!a) return std::nullopt;
  std::vector<int64_t> value;
  if (a->type == ox::Attribute::kInts) {
    value = a->ints;
  } else if (a->type == ox::Attribute::kFloats) {
    for (float f : a->floats) value.push_back(static_cast<int64_t>(std::trunc(f)));
  } else {
    throw ModelLoadError(concat(describe(), ": attribute '", name, "' must be a list of integers"));
  }
  if (length && value.size() != *length)
    throw ModelLoadError(concat(describe(), ": attribute '", name, "' has ", value.size(), " entries ", py_list(value),
                                ", expected ", *length));
  return value;
}

std::vector<int64_t> Node::ints_attr(const std::string& name, const std::vector<int64_t>& fallback,
                                     std::optional<size_t> length) const {
  auto value = optional_ints(name, length);
  return value ? *value : fallback;
}

void not_supported(const Node& node, const std::string& what) {
  throw UnsupportedModelError(concat(node.describe(), ": ", what, " is not supported"));
}

// -- context -----------------------------------------------------------------------------------------------------
std::string Context::static_resolve(const std::string& name) const {
  std::string out = name;
  for (size_t seen = 0; seen <= static_alias.size(); ++seen) {
    auto it = static_alias.find(out);
    if (it == static_alias.end()) break;
    out = it->second;
  }
  return out;
}

std::string Context::resolve(const std::string& name) const {
  std::string out = name;
  for (size_t seen = 0; seen <= alias_.size(); ++seen) {
    auto it = alias_.find(out);
    if (it == alias_.end()) break;
    out = it->second;
  }
  return out;
}

void Context::alias(const std::string& output, const std::string& target) {
  if (!output.empty() && output != target) alias_[output] = target;
}

std::optional<Dims> Context::shape_of(const std::string& name) const {
  for (const std::string& candidate : {name, static_resolve(name), resolve(name)}) {
    auto it = shapes.find(candidate);
    if (it != shapes.end()) return it->second;
  }
  auto c = constants.find(resolve(name));
  if (c != constants.end()) return Dims(c->second.dims.begin(), c->second.dims.end());
  return std::nullopt;
}

std::optional<int64_t> Context::rank_of(const std::string& name) const {
  auto shape = shape_of(name);
  if (!shape) return std::nullopt;
  return static_cast<int64_t>(shape->size());
}

std::optional<int64_t> Context::dim_of(const std::string& name, int64_t axis) const {
  auto shape = shape_of(name);
  if (!shape) return std::nullopt;
  const auto rank = static_cast<int64_t>(shape->size());
  if (axis < -rank || axis >= rank) return std::nullopt;
  return (*shape)[static_cast<size_t>(axis < 0 ? axis + rank : axis)];
}

std::optional<std::vector<int64_t>> Context::sample_shape(const std::string& name) const {
  auto shape = shape_of(name);
  if (!shape || shape->empty()) return std::nullopt;
  std::vector<int64_t> out;
  for (size_t i = 1; i < shape->size(); ++i) {
    if (!(*shape)[i]) return std::nullopt;
    out.push_back(*(*shape)[i]);
  }
  return out;
}

bool Context::is_constant(const std::string& name) const {
  return !name.empty() && constants.count(resolve(name)) != 0;
}

bool Context::is_data(const std::string& name) const {
  const std::string resolved = resolve(name);
  return resolved == input_name || producer_.count(resolved) != 0 || scaled_.count(resolved) != 0;
}

const Constant& Context::raw_constant(const Node& node, size_t index, const std::string& what) const {
  const std::string name = node.input(index);
  if (name.empty()) throw ModelLoadError(concat(node.describe(), ": the ", what, " (input ", index, ") is missing"));
  if (batch_values.count(resolve(name)))
    throw UnsupportedModelError(concat(node.describe(), ": the ", what, " '", name, "' (input ", index,
                                       ") depends on the batch size; only batch-independent constants are supported "
                                       "there"));
  auto it = constants.find(resolve(name));
  if (it == constants.end())
    throw UnsupportedModelError(concat(node.describe(), ": the ", what, " '", name, "' (input ", index,
                                       ") must be a constant (an initializer or a Constant node); computed values "
                                       "are not supported there"));
  return it->second;
}

const Constant& Context::constant(const Node& node, size_t index, const std::string& what) const {
  const Constant& c = raw_constant(node, index, what);
  if (!c.is_float())
    throw ModelLoadError(concat(node.describe(), ": the ", what, " '", node.input(index), "' (input ", index,
                                ") has element type ", c.dtype_name(),
                                "; weights must be float16, bfloat16, float32 or float64"));
  return c;
}

const Constant* Context::optional_constant(const Node& node, size_t index, const std::string& what) const {
  if (node.input(index).empty()) return nullptr;
  return &constant(node, index, what);
}

std::string Context::data_input(const Node& node, size_t index) {
  const std::string resolved = check_data(node, index);
  if (scaled_.count(resolved)) materialize(resolved);
  return resolved;
}

const Pending* Context::pending_affine(const Node& node, size_t index) const {
  auto it = scaled_.find(check_data(node, index));
  return it == scaled_.end() ? nullptr : &it->second;
}

const Pending* Context::pending_of(const std::string& name) const {
  auto it = scaled_.find(resolve(name));
  return it == scaled_.end() ? nullptr : &it->second;
}

bool Pending::has_shift() const {
  for (double v : shift.values)
    if (v != 0) return true;
  return false;
}

Grid broadcast(const Grid& a, const Grid& b, bool multiply) {
  Grid out;
  const size_t rank = a.dims.size();
  out.dims.resize(rank);
  for (size_t i = 0; i < rank; ++i) out.dims[i] = a.dims[i] == 1 ? b.dims[i] : a.dims[i];
  int64_t n = 1;
  for (int64_t d : out.dims) n *= d;
  out.values.resize(static_cast<size_t>(n));
  std::vector<int64_t> index(rank, 0);
  for (int64_t flat = 0; flat < n; ++flat) {
    int64_t ia = 0, ib = 0;
    for (size_t i = 0; i < rank; ++i) {
      ia = ia * a.dims[i] + (a.dims[i] == 1 ? 0 : index[i]);
      ib = ib * b.dims[i] + (b.dims[i] == 1 ? 0 : index[i]);
    }
    const double x = a.values[static_cast<size_t>(ia)], y = b.values[static_cast<size_t>(ib)];
    out.values[static_cast<size_t>(flat)] = multiply ? x * y : x + y;
    for (size_t i = rank; i-- > 0;) {
      if (++index[i] < out.dims[i]) break;
      index[i] = 0;
    }
  }
  return out;
}

namespace {
/// `c` with the data tensor's rank, checked to broadcast to it without changing its shape.
Grid aligned(const Node& node, const Grid& c, const std::optional<Dims>& shape, const char* what) {
  if (!shape) {
    if (c.values.size() != 1)
      throw UnsupportedModelError(concat(node.describe(), ": the constant ", what, " of shape ", py_list(c.dims),
                                         " needs the data tensor's shape, which shape inference does not know; only a "
                                         "scalar is supported there"));
    return Grid{{}, c.values};
  }
  const size_t rank = shape->size();
  bool ok = c.dims.size() <= rank;
  Grid full = c;
  if (ok) {
    full.dims.insert(full.dims.begin(), rank - c.dims.size(), 1);
    ok = full.dims[0] == 1;
    for (size_t i = 1; ok && i < rank; ++i) ok = full.dims[i] == 1 || ((*shape)[i] && full.dims[i] == *(*shape)[i]);
  }
  if (!ok) {
    std::string dims = "['N'";
    for (size_t i = 1; i < rank; ++i) dims += ", " + ((*shape)[i] ? std::to_string(*(*shape)[i]) : "None");
    throw UnsupportedModelError(concat(node.describe(), ": the constant ", what, " of shape ", py_list(c.dims),
                                       " would change the shape of the data tensor ", dims,
                                       "] by broadcasting; only constants that broadcast to it (scalars, per-channel "
                                       "or per-element values) are supported"));
  }
  return full;
}
}  // namespace

void Context::add_pending_affine(const Node& node, size_t index, const Grid& scale, const Grid& shift) {
  const std::string resolved = check_data(node, index);
  auto it = scaled_.find(resolved);
  const Pending* pending = it == scaled_.end() ? nullptr : &it->second;
  const std::string source = pending ? pending->source : resolved;
  const auto shape = shape_of(source);
  Grid s = aligned(node, scale, shape, "factor");
  Grid t = aligned(node, shift, shape, "offset");
  if (pending) {
    Grid composed_shift = broadcast(broadcast(pending->shift, s, true), t, false);
    s = broadcast(pending->scale, s, true);
    t = std::move(composed_shift);
  }
  if (shape) shapes[node.outputs()[0]] = *shape;  // an affine map keeps the shape
  scaled_[node.outputs()[0]] = Pending{source, std::move(s), std::move(t), node.describe(), node.name()};
}

std::string Context::materialize(const std::string& name) {
  Pending pending = std::move(scaled_.at(name));
  scaled_.erase(name);
  // Drop the batch axis (extent 1): the layer's constants broadcast against one sample.
  auto per_sample = [](Grid g) {
    Array a;
    a.shape =
        g.dims.size() > 1 ? Shape(g.dims.begin() + 1, g.dims.end()) : Shape{static_cast<int64_t>(g.values.size())};
    a.data = std::move(g.values);
    return a;
  };
  Draft draft;
  draft.spec.name = pending.name;
  draft.spec.kind = LayerKind::affine;
  draft.spec.inputs = {pending.source};
  draft.spec.output = name;
  draft.spec.weights["scale"] = per_sample(std::move(pending.scale));
  draft.spec.weights["shift"] = per_sample(std::move(pending.shift));
  draft.source = pending.node;
  used_names.insert(draft.spec.name);
  if (auto shape = shape_of(pending.source)) shapes[name] = *shape;
  layers.push_back(std::move(draft));
  producer_[name] = &layers.back();
  if (merged_batch.count(pending.source)) merged_batch.insert(name);
  return name;
}

std::string Context::check_data(const Node& node, size_t index) const {
  const std::string name = node.input(index);
  if (name.empty()) throw ModelLoadError(concat(node.describe(), ": data input ", index, " is missing"));
  const std::string resolved = resolve(name);
  if (constants.count(resolved))
    throw UnsupportedModelError(
        concat(node.describe(), ": input ", index, " '", name, "' is a constant; a data tensor is expected there"));
  if (batch_values.count(resolved))
    throw UnsupportedModelError(concat(node.describe(), ": input ", index, " '", name,
                                       "' is a value computed from the batch size (shape arithmetic); it is only "
                                       "supported as the target shape of a Reshape"));
  auto flattened = batch_flattened.find(resolved);
  if (flattened != batch_flattened.end()) throw UnsupportedModelError(flattened->second);
  if (resolved != input_name && !producer_.count(resolved) && !scaled_.count(resolved))
    throw ModelLoadError(concat(node.describe(), ": input ", index, " '", name, "' is not produced by any layer"));
  return resolved;
}

Draft* Context::producer(const std::string& name) {
  auto it = producer_.find(resolve(name));
  return it == producer_.end() ? nullptr : it->second;
}

Draft* Context::foldable_producer(const Node& node, size_t index) {
  const std::string name = node.input(index);
  if (name.empty()) return nullptr;
  auto count = consumers.find(static_resolve(name));
  if (count == consumers.end() || count->second != 1) return nullptr;
  Draft* layer = producer(name);
  if (!layer || (layer->spec.kind != LayerKind::dense && layer->spec.kind != LayerKind::conv) ||
      layer->spec.output != resolve(name))
    return nullptr;
  return layer;
}

Draft& Context::add_layer(const Node& node, LayerKind kind, std::vector<std::string> inputs, std::optional<Dims> shape,
                          std::map<std::string, std::vector<int64_t>> ints, std::map<std::string, double> floats,
                          std::map<std::string, Array> weights, std::optional<std::string> output,
                          std::optional<std::string> name) {
  const std::string out = output ? *output : (node.outputs().empty() ? std::string() : node.outputs()[0]);
  if (out.empty()) throw ModelLoadError(concat(node.describe(), ": the node has no output"));
  Draft draft;
  draft.spec.name = name ? *name : node.name();
  draft.spec.kind = kind;
  draft.spec.inputs = std::move(inputs);
  draft.spec.output = out;
  draft.spec.ints = std::move(ints);
  draft.spec.floats = std::move(floats);
  draft.spec.weights = std::move(weights);
  for (auto& [key, array] : draft.spec.weights)
    if (array.shape.empty()) array.shape = {1};  // np.ascontiguousarray makes a 0-d weight 1-d
  draft.source = node.describe();
  used_names.insert(draft.spec.name);
  bool merged = kind == LayerKind::flatten && draft.spec.ints.at("axis").at(0) >= 2;
  for (const std::string& i : draft.spec.inputs) merged = merged || merged_batch.count(i);
  if (merged) merged_batch.insert(out);
  if (shape) shapes[out] = *shape;
  layers.push_back(std::move(draft));
  producer_[out] = &layers.back();
  return layers.back();
}

std::string Context::unique_name(const std::string& base) {
  auto taken = [&](const std::string& n) {
    return used_names.count(n) || value_names.count(n) || shapes.count(n) || constants.count(n);
  };
  std::string name = base;
  auto it = next_suffix_.find(base);
  int64_t k = it == next_suffix_.end() ? 1 : it->second;
  if (taken(name)) {
    name = concat(base, "_", k);
    while (taken(name)) name = concat(base, "_", ++k);
    next_suffix_[base] = k + 1;
  }
  used_names.insert(name);
  return name;
}

}  // namespace dtd::importer
