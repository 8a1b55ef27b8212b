// The stabilized ratio every rule divides by (RULES.md): stab(z) = z + eps * s(z), s(z) = +1 for z >= 0, else -1.
#pragma once

namespace dtd::detail {

template <class T>
inline T stab(T z, T eps) {
  return z >= T(0) ? z + eps : z - eps;
}

/// r / stab(z), and 0 when r is 0 (nothing to distribute) or stab(z) is exactly 0 (possible only with eps = 0).
template <class T>
inline T stabilized_ratio(T r, T z, T eps) {
  if (r == T(0)) return T(0);
  const T d = stab(z, eps);
  return d == T(0) ? T(0) : r / d;
}

}  // namespace dtd::detail
