// All relevance rules for parametric layers, written once over LinearLayer's two primitives (DESIGN.md):
// a modified forward (the denominator z), s = R / stab(z), a transposed pass, times the modified input.
#include <algorithm>
#include <vector>

#include "dtd/error.hpp"
#include "dtd/layer.hpp"
#include "stabilizer.hpp"

namespace dtd {

const char* to_string(RuleKind kind) {
  switch (kind) {
    case RuleKind::zplus: return "zplus";
    case RuleKind::wsquare: return "wsquare";
    case RuleKind::zbox: return "zbox";
    case RuleKind::epsilon: return "epsilon";
    case RuleKind::gamma: return "gamma";
    case RuleKind::flat: return "flat";
    case RuleKind::gradient: return "gradient";
  }
  return "?";
}

template <class T>
void LinearLayer<T>::relevance(const std::vector<const Tensor<T>*>& in, const Tensor<T>&, const Tensor<T>& r_out,
                               const RuleSpec& rule, std::vector<Tensor<T>>& r_in) const {
  const Tensor<T>& a = *in[0];
  const int64_t n = a.batch(), ni = in_size(), no = out_size();
  const T eps = static_cast<T>(rule.eps);
  const T* r = r_out.ptr();
  T* rin = r_in[0].ptr();
  std::vector<T> z(static_cast<size_t>(n * no)), s(z.size());
  auto divide = [&] {
    for (size_t i = 0; i < z.size(); ++i) s[i] = detail::stabilized_ratio(r[i], z[i], eps);
  };
  // z[n, :] = zc for every sample (terms that do not depend on the input).
  auto broadcast = [&](const std::vector<T>& zc, T sign) {
    for (int64_t k = 0; k < n; ++k)
      for (int64_t j = 0; j < no; ++j) z[static_cast<size_t>(k * no + j)] += sign * zc[static_cast<size_t>(j)];
  };
  auto transformed_bias = [&](auto f) {
    std::vector<T> b(bias_.size());
    std::transform(bias_.begin(), bias_.end(), b.begin(), f);
    return b;
  };

  switch (rule.kind) {
    case RuleKind::gradient: apply_transposed(r, n, weights(WeightSet::plain), rin); break;
    case RuleKind::zplus: {
      // z+_j = sum_i a+_i w+_ij + a-_i w-_ij (+ b+_j); R_i = a+_i (W+^T s)_i + a-_i (W-^T s)_i.
      std::vector<T> ap(a.data.size()), am;
      bool negative = false;
      for (size_t i = 0; i < ap.size(); ++i) {
        ap[i] = std::max(a.data[i], T(0));
        negative |= a.data[i] < T(0);
      }
      apply(ap.data(), n, weights(WeightSet::positive), z.data());
      if (negative) {
        am.resize(a.data.size());
        for (size_t i = 0; i < am.size(); ++i) am[i] = std::min(a.data[i], T(0));
        std::vector<T> zn(z.size());
        apply(am.data(), n, weights(WeightSet::negative), zn.data());
        for (size_t i = 0; i < z.size(); ++i) z[i] += zn[i];
      }
      if (rule.bias && has_bias()) {
        const auto bp = transformed_bias([](T b) { return std::max(b, T(0)); });
        add_bias(bp.data(), n, z.data());
      }
      divide();
      apply_transposed(s.data(), n, weights(WeightSet::positive), rin);
      for (size_t i = 0; i < ap.size(); ++i) rin[i] *= ap[i];
      if (negative) {
        std::vector<T> c(ap.size());
        apply_transposed(s.data(), n, weights(WeightSet::negative), c.data());
        for (size_t i = 0; i < c.size(); ++i) rin[i] += am[i] * c[i];
      }
      break;
    }
    case RuleKind::wsquare:
    case RuleKind::flat: {
      // The denominator does not depend on the input: the modified weights applied to a sample of ones (zero
      // padding keeps border positions' sums to their in-bounds taps).
      const WeightSet set = rule.kind == RuleKind::wsquare ? WeightSet::square : WeightSet::ones;
      std::vector<T> ones(static_cast<size_t>(ni), T(1)), zc(static_cast<size_t>(no));
      apply(ones.data(), 1, weights(set), zc.data());
      if (rule.kind == RuleKind::wsquare && rule.bias && has_bias()) {
        const auto b2 = transformed_bias([](T b) { return b * b; });
        add_bias(b2.data(), 1, zc.data());
      }
      broadcast(zc, T(1));
      divide();
      apply_transposed(s.data(), n, weights(set), rin);
      break;
    }
    case RuleKind::zbox: {
      // q_ij = a_i w_ij - l_i w+_ij - h_i w-_ij.
      std::vector<T> l(rule.low.begin(), rule.low.end()), h(rule.high.begin(), rule.high.end());
      std::vector<T> zl(static_cast<size_t>(no)), zh(static_cast<size_t>(no));
      apply(l.data(), 1, weights(WeightSet::positive), zl.data());
      apply(h.data(), 1, weights(WeightSet::negative), zh.data());
      apply(a.ptr(), n, weights(WeightSet::plain), z.data());
      broadcast(zl, T(-1));
      broadcast(zh, T(-1));
      divide();
      apply_transposed(s.data(), n, weights(WeightSet::plain), rin);
      for (size_t i = 0; i < a.data.size(); ++i) rin[i] *= a.data[i];
      std::vector<T> c(a.data.size());
      apply_transposed(s.data(), n, weights(WeightSet::positive), c.data());
      for (int64_t k = 0; k < n; ++k)
        for (int64_t i = 0; i < ni; ++i)
          rin[k * ni + i] -= l[static_cast<size_t>(i)] * c[static_cast<size_t>(k * ni + i)];
      apply_transposed(s.data(), n, weights(WeightSet::negative), c.data());
      for (int64_t k = 0; k < n; ++k)
        for (int64_t i = 0; i < ni; ++i)
          rin[k * ni + i] -= h[static_cast<size_t>(i)] * c[static_cast<size_t>(k * ni + i)];
      break;
    }
    case RuleKind::epsilon:
    case RuleKind::gamma: {
      // epsilon: z = a w + b, R_i = a_i (W^T s)_i. gamma: the same with w + gamma w+ (and b + gamma b+ if bias).
      const T gamma = static_cast<T>(rule.gamma);
      std::vector<T> wg;
      const T* w = weights(WeightSet::plain);
      if (rule.kind == RuleKind::gamma) {
        const T* wp = weights(WeightSet::positive);
        wg.resize(static_cast<size_t>(weight_count()));
        for (size_t i = 0; i < wg.size(); ++i) wg[i] = w[i] + gamma * wp[i];
        w = wg.data();
      }
      apply(a.ptr(), n, w, z.data());
      if (has_bias() && (rule.kind == RuleKind::epsilon || rule.bias)) {
        const auto b = rule.kind == RuleKind::epsilon
                           ? bias_
                           : transformed_bias([gamma](T v) { return v + gamma * std::max(v, T(0)); });
        add_bias(b.data(), n, z.data());
      }
      divide();
      apply_transposed(s.data(), n, w, rin);
      for (size_t i = 0; i < a.data.size(); ++i) rin[i] *= a.data[i];
      break;
    }
  }
}

#define DTD_INSTANTIATE(T)                                                                                          \
  template void LinearLayer<T>::relevance(const std::vector<const Tensor<T>*>&, const Tensor<T>&, const Tensor<T>&, \
                                          const RuleSpec&, std::vector<Tensor<T>>&) const;
DTD_INSTANTIATE(float)
DTD_INSTANTIATE(double)
#undef DTD_INSTANTIATE

}  // namespace dtd
