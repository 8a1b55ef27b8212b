// NumPy's semantics for the constants fold.cpp evaluates: element types and their promotion (NEP 50: arrays only, no
// value-based casting), casts as NumPy does them on x86-64, broadcasting, and the floating-point exceptions that
// np.errstate(all="raise", under="ignore") turns into errors.
//
// A value is a Constant (context.hpp): float types hold their elements as float64 (exact), integer and bool types as
// int64 (uint64 as its bit pattern). fold_values.cpp is compiled with -ffp-contract=off like ops.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "context.hpp"

namespace dtd::importer::fold {

/// The floating-point exceptions NumPy reports, in the order it checks them (divide, overflow, invalid).
enum Flag : unsigned { kDivide = 1, kOverflow = 2, kInvalid = 4 };

/// An error while evaluating: raised by try_fold as "<node>: cannot evaluate it at import: <type>: <message>".
struct EvalError {
  std::string type;  // "ValueError", "FloatingPointError", ...
  std::string message;
};

/// Throws the FloatingPointError NumPy raises for `flags` after the operation `name` ("divide", "cast", ...).
void raise_flags(unsigned flags, const char* name);

/// True for the element types the fold evaluates (NumPy's bool, integer and float16/32/64 types).
bool numeric(int32_t dtype);
bool is_float_type(int32_t dtype);
bool is_unsigned(int32_t dtype);
bool is_signed_int(int32_t dtype);
/// np.result_type of two element types (both numeric).
int32_t promote(int32_t a, int32_t b);

/// Rounds a float64 to the nearest float16 (ties to even), as float64; sets kOverflow when a finite value becomes inf.
double round_half(double v, unsigned& flags);
/// Rounds a float64 to float32, as float64; sets kOverflow when a finite value becomes inf.
double round_float(double v, unsigned& flags);
/// Wraps an integer to the width of `dtype` (an integer or bool type), as stored in Constant::integer.
int64_t wrap(uint64_t bits, int32_t dtype);
/// An element as float64 (integers converted as NumPy converts them to float64).
double as_double(const Constant& c, size_t i);

/// a.astype(to): NumPy's casts (float to integer as x86-64 converts, the invalid ones raising).
Constant cast(const Constant& c, int32_t to);
/// The broadcast shape of several shapes; nullopt when they do not broadcast.
bool broadcast_dims(const std::vector<std::vector<int64_t>>& shapes, std::vector<int64_t>& out);
/// The flat index into `dims` (right-aligned against `out`, extents 1 broadcast) of each flat output position.
std::vector<size_t> broadcast_index(const std::vector<int64_t>& dims, const std::vector<int64_t>& out);

int64_t numel(const std::vector<int64_t>& dims);

/// Element `i` of `src` copied to position `j` of `dst` (same dtype).
void copy_element(const Constant& src, size_t i, Constant& dst, size_t j);
/// An empty value of `dtype` and `dims`, its storage sized.
Constant make(int32_t dtype, std::vector<int64_t> dims);
/// NumPy's name of an element type ("int64", ...).
std::string type_name(int32_t dtype);

}  // namespace dtd::importer::fold
