// Checked shape arithmetic (private): every element count, extent and MAC count of a layer is computed here, so
// that a shape that cannot be represented in int64 is a ModelError naming the layer and the attribute instead of a
// wrapped number (signed overflow is undefined behaviour, and a wrapped element count sizes a buffer that the
// kernels then write past). Also the per-sample activation limit in force while a Network is being built.
#pragma once

#include <cstdint>
#include <string>

#include "dtd/error.hpp"
#include "dtd/model_spec.hpp"

namespace dtd::detail {

/// a * b; throws ModelError "<what...>: a * b overflows int64" when the product is not representable.
template <class... What>
int64_t checked_mul(int64_t a, int64_t b, const What&... what) {
  int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r))
    throw ModelError(concat(what..., ": ", a, " * ", b, " does not fit in a 64-bit integer"));
  return r;
}

/// a + b, likewise.
template <class... What>
int64_t checked_add(int64_t a, int64_t b, const What&... what) {
  int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r))
    throw ModelError(concat(what..., ": ", a, " + ", b, " does not fit in a 64-bit integer"));
  return r;
}

/// a - b, likewise.
template <class... What>
int64_t checked_sub(int64_t a, int64_t b, const What&... what) {
  int64_t r = 0;
  if (__builtin_sub_overflow(a, b, &r))
    throw ModelError(concat(what..., ": ", a, " - ", b, " does not fit in a 64-bit integer"));
  return r;
}

/// The product of the extents of `shape` (1 for {}), checked; `what` describes the shape in the message.
template <class... What>
int64_t checked_numel(const Shape& shape, const What&... what) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (__builtin_mul_overflow(n, d, &n))
      throw ModelError(
          concat(what..., ": the element count of ", to_string(shape), " does not fit in a 64-bit integer"));
  }
  return n;
}

/// "<kind> layer '<name>': <attribute>", the prefix of the messages above for one layer attribute.
inline std::string where(const LayerSpec& spec, const char* attribute) {
  return concat(to_string(spec.kind), " layer '", spec.name, "': ", attribute);
}

/// The default of ModelSpec::max_activation: elements per sample of any value a network may declare.
constexpr int64_t kDefaultMaxActivation = int64_t{1} << 31;

/// The activation limit of the network being built on this thread (set by Network's constructor for the layers'
/// constructors, which size per-sample tables before the network sees their output shapes).
inline int64_t& build_activation_limit() {
  thread_local int64_t limit = kDefaultMaxActivation;
  return limit;
}

/// Sets the build limit for the lifetime of the scope, restoring the previous one after.
class ActivationLimitScope {
 public:
  explicit ActivationLimitScope(int64_t limit) : saved_(build_activation_limit()) { build_activation_limit() = limit; }
  ~ActivationLimitScope() { build_activation_limit() = saved_; }
  ActivationLimitScope(const ActivationLimitScope&) = delete;
  ActivationLimitScope& operator=(const ActivationLimitScope&) = delete;

 private:
  int64_t saved_;
};

/// Checks that `elements` per sample (of a value described by `what...`) is within the build limit.
template <class... What>
void check_activation(int64_t elements, const What&... what) {
  const int64_t limit = build_activation_limit();
  DTD_CHECK(elements <= limit, ModelError, what..., " has ", elements, " elements per sample, more than the limit of ",
            limit, " (ModelSpec.max_activation; raise it with dtd.load(..., limits=dtd.Limits(max_activation=...)))");
}

}  // namespace dtd::detail
