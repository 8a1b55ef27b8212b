// NumPy's element types, promotion and casts for the import-time evaluation (fold_values.hpp).
#include "fold_values.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace dtd::importer::fold {

using detail::concat;

void raise_flags(unsigned flags, const char* name) {
  const char* what = (flags & kDivide) ? "divide by zero" : (flags & kOverflow) ? "overflow" : "invalid value";
  if (flags) throw EvalError{"FloatingPointError", concat(what, " encountered in ", name)};
}

bool is_float_type(int32_t dtype) {
  return dtype == ox::kFloat || dtype == ox::kDouble || dtype == ox::kFloat16;
}

bool is_unsigned(int32_t dtype) {
  return dtype == ox::kUint8 || dtype == ox::kUint16 || dtype == ox::kUint32 || dtype == ox::kUint64;
}

bool is_signed_int(int32_t dtype) {
  return dtype == ox::kInt8 || dtype == ox::kInt16 || dtype == ox::kInt32 || dtype == ox::kInt64;
}

bool numeric(int32_t dtype) {
  return dtype == ox::kBool || is_float_type(dtype) || is_unsigned(dtype) || is_signed_int(dtype);
}

namespace {
int bits(int32_t dtype) {
  switch (dtype) {
    case ox::kInt8:
    case ox::kUint8: return 8;
    case ox::kInt16:
    case ox::kUint16:
    case ox::kFloat16: return 16;
    case ox::kInt32:
    case ox::kUint32:
    case ox::kFloat: return 32;
    default: return 64;
  }
}
int32_t signed_of(int b) {
  return b == 8 ? ox::kInt8 : b == 16 ? ox::kInt16 : b == 32 ? ox::kInt32 : ox::kInt64;
}
int32_t float_of(int b) {
  return b == 16 ? ox::kFloat16 : b == 32 ? ox::kFloat : ox::kDouble;
}
}  // namespace

int32_t promote(int32_t a, int32_t b) {
  if (a == b) return a;
  if (a == ox::kBool) return b;
  if (b == ox::kBool) return a;
  const bool fa = is_float_type(a), fb = is_float_type(b);
  if (fa && fb) return float_of(std::max(bits(a), bits(b)));
  if (fa || fb) {
    const int32_t f = fa ? a : b, i = fa ? b : a;
    // The smallest float type that holds every value of the integer type, at least the float's.
    const int need = bits(i) == 8 ? 16 : bits(i) == 16 ? 32 : 64;
    return float_of(std::max(need, bits(f)));
  }
  const bool ua = is_unsigned(a), ub = is_unsigned(b);
  if (ua == ub) return ua ? (bits(a) >= bits(b) ? a : b) : (bits(a) >= bits(b) ? a : b);
  const int32_t u = ua ? a : b, s = ua ? b : a;
  if (bits(s) > bits(u)) return s;
  if (bits(u) == 64) return ox::kDouble;
  return signed_of(2 * bits(u));
}

double round_half(double v, unsigned& flags) {
  if (std::isnan(v) || std::isinf(v) || v == 0) return v;
  const double a = std::fabs(v);
  double r;
  if (a >= 65520.0) {
    flags |= kOverflow;
    r = std::numeric_limits<double>::infinity();
  } else if (a < 0x1p-14) {
    r = std::nearbyint(a * 0x1p24) * 0x1p-24;
  } else {
    int e = 0;
    std::frexp(a, &e);  // a = m 2^e, m in [0.5, 1): 11 significant bits are 2^(e - 11) apart
    r = std::ldexp(std::nearbyint(std::ldexp(a, 11 - e)), e - 11);
  }
  return std::copysign(r, v);
}

double round_float(double v, unsigned& flags) {
  const auto f = static_cast<float>(v);
  if (std::isinf(f) && std::isfinite(v)) flags |= kOverflow;
  return static_cast<double>(f);
}

int64_t wrap(uint64_t b, int32_t dtype) {
  switch (dtype) {
    case ox::kBool: return b != 0;
    case ox::kInt8: return static_cast<int8_t>(static_cast<uint8_t>(b));
    case ox::kUint8: return static_cast<uint8_t>(b);
    case ox::kInt16: return static_cast<int16_t>(static_cast<uint16_t>(b));
    case ox::kUint16: return static_cast<uint16_t>(b);
    case ox::kInt32: return static_cast<int32_t>(static_cast<uint32_t>(b));
    case ox::kUint32: return static_cast<uint32_t>(b);
    default: return static_cast<int64_t>(b);
  }
}

double as_double(const Constant& c, size_t i) {
  if (is_float_type(c.dtype)) return c.real[i];
  if (c.dtype == ox::kUint64) return static_cast<double>(static_cast<uint64_t>(c.integer[i]));
  return static_cast<double>(c.integer[i]);
}

int64_t numel(const std::vector<int64_t>& dims) {
  if (std::find(dims.begin(), dims.end(), 0) != dims.end()) return 0;  // no overflow before a zero extent
  int64_t n = 1;
  for (int64_t d : dims)
    if (__builtin_mul_overflow(n, d, &n)) return std::numeric_limits<int64_t>::max();
  return n;
}

Constant make(int32_t dtype, std::vector<int64_t> dims) {
  Constant c;
  c.dtype = dtype;
  c.dims = std::move(dims);
  const auto n = static_cast<size_t>(numel(c.dims));
  if (is_float_type(dtype))
    c.real.resize(n);
  else
    c.integer.resize(n);
  return c;
}

void copy_element(const Constant& src, size_t i, Constant& dst, size_t j) {
  if (is_float_type(src.dtype))
    dst.real[j] = src.real[i];
  else
    dst.integer[j] = src.integer[i];
}

std::string type_name(int32_t dtype) {
  Constant c;
  c.dtype = dtype;
  return c.dtype_name();
}

namespace {
/// x86-64's truncating conversion of a float64 to a signed integer of `width` bits: nullopt (the invalid flag) when
/// the value is NaN or out of range.
bool truncate_to(double v, int width, int64_t& out) {
  if (std::isnan(v)) return false;
  const double t = std::trunc(v);
  const double limit = width == 64 ? 0x1p63 : 0x1p31;
  if (t >= limit || t < -limit) return false;
  out = static_cast<int64_t>(t);
  return true;
}

/// One float element cast to an integer type, as NumPy's cast loops compiled for x86-64 do it: the narrow types
/// through a 32-bit conversion, uint32 through a 64-bit one, uint64 by its own sequence.
int64_t float_to_int(double v, int32_t to, unsigned& flags) {
  if (to == ox::kBool) return v != 0 || std::isnan(v);
  int64_t out = 0;
  bool ok;
  switch (to) {
    case ox::kInt64:
    case ox::kUint32: ok = truncate_to(v, 64, out); break;
    case ox::kUint64:
      if (!std::isnan(v) && v >= 0x1p63) {
        ok = truncate_to(v - 0x1p63, 64, out);
        out = static_cast<int64_t>(static_cast<uint64_t>(out) ^ (uint64_t{1} << 63));
      } else {
        ok = truncate_to(v, 64, out);
      }
      break;
    default: ok = truncate_to(v, 32, out); break;
  }
  if (!ok) {
    flags |= kInvalid;
    out = to == ox::kInt64 || to == ox::kUint32 || to == ox::kUint64 ? std::numeric_limits<int64_t>::min()
                                                                     : std::numeric_limits<int32_t>::min();
  }
  return wrap(static_cast<uint64_t>(out), to);
}

double int_to_float(const Constant& c, size_t i, int32_t to, unsigned& flags) {
  const int64_t v = c.integer[i];
  if (to == ox::kDouble) return as_double(c, i);
  if (to == ox::kFloat)
    return c.dtype == ox::kUint64 ? static_cast<double>(static_cast<float>(static_cast<uint64_t>(v)))
                                  : static_cast<double>(static_cast<float>(v));
  // float16: through float32 (exact below 2^24, and larger values are inf in float16 anyway)
  const double f = c.dtype == ox::kUint64 ? static_cast<double>(static_cast<float>(static_cast<uint64_t>(v)))
                                          : static_cast<double>(static_cast<float>(v));
  return round_half(f, flags);
}
}  // namespace

Constant cast(const Constant& c, int32_t to) {
  if (c.dtype == to) return c;
  Constant out = make(to, c.dims);
  const size_t n = is_float_type(c.dtype) ? c.real.size() : c.integer.size();
  unsigned flags = 0;
  for (size_t i = 0; i < n; ++i) {
    if (is_float_type(c.dtype)) {
      const double v = c.real[i];
      if (to == ox::kDouble)
        out.real[i] = v;
      else if (to == ox::kFloat)
        out.real[i] = round_float(v, flags);
      else if (to == ox::kFloat16)
        out.real[i] = round_half(v, flags);
      else
        out.integer[i] = float_to_int(v, to, flags);
    } else if (is_float_type(to)) {
      out.real[i] = int_to_float(c, i, to, flags);
    } else {
      out.integer[i] = wrap(static_cast<uint64_t>(c.integer[i]), to);
    }
  }
  raise_flags(flags, "cast");
  return out;
}

bool broadcast_dims(const std::vector<std::vector<int64_t>>& shapes, std::vector<int64_t>& out) {
  size_t rank = 0;
  for (const auto& s : shapes) rank = std::max(rank, s.size());
  out.assign(rank, 1);
  for (const auto& s : shapes) {
    const size_t offset = rank - s.size();
    for (size_t i = 0; i < s.size(); ++i) {
      int64_t& o = out[offset + i];
      if (s[i] == 1) continue;
      if (o != 1 && o != s[i]) return false;
      o = s[i];
    }
  }
  return true;
}

std::vector<size_t> broadcast_index(const std::vector<int64_t>& dims, const std::vector<int64_t>& out) {
  const auto n = static_cast<size_t>(numel(out));
  std::vector<size_t> index(n);
  const size_t rank = out.size(), offset = rank - dims.size();
  std::vector<int64_t> position(rank, 0);
  for (size_t flat = 0; flat < n; ++flat) {
    size_t k = 0;
    for (size_t a = offset; a < rank; ++a) {
      const int64_t d = dims[a - offset];
      k = k * static_cast<size_t>(d) + static_cast<size_t>(d == 1 ? 0 : position[a]);
    }
    index[flat] = k;
    for (size_t a = rank; a-- > 0;) {
      if (++position[a] < out[a]) break;
      position[a] = 0;
    }
  }
  return index;
}

}  // namespace dtd::importer::fold
