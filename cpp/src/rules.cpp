// All relevance rules for parametric layers, written once over LinearLayer's two primitives (DESIGN.md):
// a modified forward (the denominator z), s = R / stab(z), a transposed pass, times the modified input.
#include <algorithm>
#include <cmath>
#include <vector>

#include "dtd/error.hpp"
#include "dtd/layer.hpp"
#include "parallel.hpp"
#include "stabilizer.hpp"

namespace dtd {

const char* to_string(RuleKind kind) {
  switch (kind) {
    case RuleKind::zplus: return "zplus";
    case RuleKind::wsquare: return "wsquare";
    case RuleKind::zbox: return "zbox";
    case RuleKind::epsilon: return "epsilon";
    case RuleKind::gamma: return "gamma";
    case RuleKind::alphabeta: return "alphabeta";
    case RuleKind::flat: return "flat";
    case RuleKind::gradient: return "gradient";
  }
  return "?";
}

const char* to_string(Algorithm algorithm) {
  return algorithm == Algorithm::winograd ? "winograd" : "exact";
}

namespace {

// f applied to every element (the modified biases: b+, b^2, b + gamma b+).
template <class T, class F>
std::vector<T> mapped(const std::vector<T>& v, F f) {
  std::vector<T> out(v.size());
  std::transform(v.begin(), v.end(), out.begin(), f);
  return out;
}

}  // namespace

template <class T>
void LinearLayer<T>::relevance(const std::vector<const Tensor<T>*>& in, const Tensor<T>&, const Tensor<T>& r_out,
                               const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in) const {
  relevance_from(in, r_out, rule, r_in, nullptr, Algorithm::exact);
}

template <class T>
void LinearLayer<T>::relevance_from(const std::vector<const Tensor<T>*>& in, const Tensor<T>& r_out,
                                    const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in, const Tensor<T>* kept,
                                    Algorithm algorithm) const {
  const Tensor<T>& a = *in[0];
  const int64_t n = a.batch(), ni = in_size(), no = out_size();
  const T eps = static_cast<T>(rule.eps);
  const T* r = r_out.ptr();
  T* rin = r_in[0].ptr();
  Buffer<T> z, s(static_cast<size_t>(n * no));  // z: the denominator's input-dependent part, where a rule has one
  // s = R / stab(zv + sign * zc): zv the input-dependent part (null: none), zc[j] the terms that do not depend on
  // the input (empty: none), broadcast over the samples.
  auto divide = [&](const T* zv, const std::vector<T>& zc, T sign, T e) {
    detail::parallel_blocks(n * no, [&](int64_t i0, int64_t i1) {
      if (zc.empty()) {
        for (int64_t i = i0; i < i1; ++i) s[i] = detail::stabilized_ratio(r[i], zv[i], e);
        return;
      }
      for (int64_t i = i0, j = i0 % no; i < i1; ++i, j = j + 1 == no ? 0 : j + 1)
        s[i] = detail::stabilized_ratio(r[i], (zv ? zv[i] : T(0)) + sign * zc[static_cast<size_t>(j)], e);
    });
  };
  // rin[i] = a[i] * rin[i] over the input.
  auto times_input = [&](const T* av) {
    detail::parallel_blocks(n * ni, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) rin[i] *= av[i];
    });
  };
  static const std::vector<T> kNone;
  // Winograd where the layer has it (float 3x3 stride-1 convolutions) and it pays at this batch (uses_winograd); the
  // rules that use it say so below.
  const bool winograd = uses_winograd(algorithm, n);
  auto transposed = [&](const T* g, WeightSet set, T* x, const ExactOutputs* exact) {
    if (winograd)
      winograd_apply_transposed(g, n, set, x, exact);
    else
      apply_transposed_set(g, n, set, x);
  };

  switch (rule.kind) {
    case RuleKind::gradient: apply_transposed_set(r, n, WeightSet::plain, rin); break;
    case RuleKind::zplus: {
      // z+_j = sum_i a+_i w+_ij + a-_i w-_ij (+ b+_j); R_i = a+_i (W+^T s)_i + a-_i (W-^T s)_i.
      // Inputs are usually ReLU outputs (a = a+): then no copy and no a- terms.
      const bool negative = detail::any_negative(a.ptr(), a.size());
      Buffer<T> ap, am;
      if (negative) {
        ap.resize(a.data.size());
        for (size_t i = 0; i < ap.size(); ++i) ap[i] = std::max(a.data[i], T(0));
      }
      const T* a_pos = negative ? ap.data() : a.ptr();
      z.resize(s.size());
      // Winograd for non-negative inputs only (the usual ReLU case); winograd_guard then makes every denominator
      // >= 0 and each exact zero exactly zero (Algorithm, README).
      const bool wz = winograd && !negative;
      ExactOutputs exact;
      if (kept && !negative)
        std::copy(kept->data.begin(), kept->data.end(), z.begin());
      else if (wz)
        winograd_apply(a_pos, n, WeightSet::positive, z.data());
      else
        apply_set(a_pos, n, WeightSet::positive, z.data());
      if (wz) winograd_guard(a_pos, n, z.data(), exact);
      if (negative) {
        am.resize(a.data.size());
        for (size_t i = 0; i < am.size(); ++i) am[i] = std::min(a.data[i], T(0));
        Buffer<T> zn(z.size());
        apply_set(am.data(), n, WeightSet::negative, zn.data());
        for (size_t i = 0; i < z.size(); ++i) z[i] += zn[i];
      }
      if (rule.bias && has_bias()) {
        const auto bp = mapped(bias_, [](T b) { return std::max(b, T(0)); });
        add_bias(bp.data(), n, z.data());
      }
      divide(z.data(), kNone, T(1), eps);
      if (wz)
        transposed(s.data(), WeightSet::positive, rin, &exact);
      else
        apply_transposed_set(s.data(), n, WeightSet::positive, rin);
      times_input(a_pos);
      if (negative) {
        Buffer<T> c(ap.size());
        apply_transposed_set(s.data(), n, WeightSet::negative, c.data());
        for (size_t i = 0; i < c.size(); ++i) rin[i] += am[i] * c[i];
      }
      break;
    }
    case RuleKind::alphabeta: {
      // Positive contributions q+_ij = a+_i w+_ij + a-_i w-_ij, negative ones q-_ij = a+_i w-_ij + a-_i w+_ij;
      // R_i = sum_j (alpha q+_ij / stab(z+_j) - beta q-_ij / stab(z-_j)) R_j, z+-_j = sum_i q+-_ij (+ b+-_j).
      const bool negative = detail::any_negative(a.ptr(), a.size());
      Buffer<T> ap, am;
      if (negative) {
        ap.resize(a.data.size());
        am.resize(a.data.size());
        for (size_t i = 0; i < ap.size(); ++i) {
          ap[i] = std::max(a.data[i], T(0));
          am[i] = std::min(a.data[i], T(0));
        }
      }
      const T* a_pos = negative ? ap.data() : a.ptr();
      const T alpha = static_cast<T>(rule.alpha), beta = static_cast<T>(rule.beta);
      Buffer<T> c(a.data.size()), t;
      if (negative) t.resize(a.data.size());
      // One side: z from (a+, set) and (a-, other), s = R / stab(z), then rin (+)= weight * (a+ W_set^T s + a-
      // W_other^T s).
      auto side = [&](WeightSet set, WeightSet other, const std::vector<T>& bias_part, T weight, bool first) {
        z.resize(s.size());
        apply_set(a_pos, n, set, z.data());
        if (negative) {
          Buffer<T> zn(z.size());
          apply_set(am.data(), n, other, zn.data());
          for (size_t i = 0; i < z.size(); ++i) z[i] += zn[i];
        }
        if (!bias_part.empty()) add_bias(bias_part.data(), n, z.data());
        divide(z.data(), kNone, T(1), eps);
        apply_transposed_set(s.data(), n, set, c.data());
        if (negative) apply_transposed_set(s.data(), n, other, t.data());
        detail::parallel_blocks(n * ni, [&](int64_t i0, int64_t i1) {
          for (int64_t i = i0; i < i1; ++i) {
            T v = a_pos[i] * c[i];
            if (negative) v += am[i] * t[i];
            rin[i] = first ? weight * v : rin[i] + weight * v;
          }
        });
      };
      const bool use_bias = rule.bias && has_bias();
      side(WeightSet::positive, WeightSet::negative,
           use_bias ? mapped(bias_, [](T b) { return std::max(b, T(0)); }) : std::vector<T>(), alpha, true);
      if (beta != T(0))
        side(WeightSet::negative, WeightSet::positive,
             use_bias ? mapped(bias_, [](T b) { return std::min(b, T(0)); }) : std::vector<T>(), -beta, false);
      break;
    }
    case RuleKind::wsquare:
    case RuleKind::flat: {
      // The denominator does not depend on the input: prepared once, stabilizer included (see prepare()).
      divide(nullptr, rule.constant, T(1), T(0));
      if (rule.kind == RuleKind::wsquare)
        transposed(s.data(), WeightSet::square, rin, nullptr);
      else
        apply_transposed_set(s.data(), n, WeightSet::ones, rin);
      break;
    }
    case RuleKind::zbox: {
      // q_ij = a_i w_ij - l_i w+_ij - h_i w-_ij; the bound terms are prepared once.
      const std::vector<T>& l = rule.low_t;
      const std::vector<T>& h = rule.high_t;
      const T* zv = kept ? kept->ptr() : nullptr;  // the forward's own product w (*) a
      if (!kept) {
        z.resize(s.size());
        if (winograd)
          winograd_apply(a.ptr(), n, WeightSet::plain, z.data());
        else
          apply_set(a.ptr(), n, WeightSet::plain, z.data());
        zv = z.data();
      }
      divide(zv, rule.constant, T(-1), eps);
      // R_i = a_i (W^T s)_i - l_i (W+^T s)_i - h_i (W-^T s)_i = (a_i - l_i) (W+^T s)_i + (a_i - h_i) (W-^T s)_i,
      // since W = W+ + W-: two transposed products instead of three.
      Buffer<T> c(a.data.size());
      if (winograd) {
        transposed(s.data(), WeightSet::positive, rin, nullptr);
        transposed(s.data(), WeightSet::negative, c.data(), nullptr);
      } else {
        apply_transposed_signed(s.data(), n, rin, c.data());
      }
      detail::parallel_blocks(n * ni, [&](int64_t i0, int64_t i1) {
        for (int64_t j = i0, b = i0 % ni; j < i1; ++j, b = b + 1 == ni ? 0 : b + 1) {
          const T aj = a.ptr()[j];
          rin[j] = (aj - l[static_cast<size_t>(b)]) * rin[j] + (aj - h[static_cast<size_t>(b)]) * c[j];
        }
      });
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
      z.resize(s.size());
      if (kept && rule.kind == RuleKind::epsilon)
        std::copy(kept->data.begin(), kept->data.end(), z.begin());
      else
        apply(a.ptr(), n, w, z.data());
      if (has_bias() && (rule.kind == RuleKind::epsilon || rule.bias)) {
        const auto b = rule.kind == RuleKind::epsilon
                           ? bias_
                           : mapped(bias_, [gamma](T v) { return v + gamma * std::max(v, T(0)); });
        add_bias(b.data(), n, z.data());
      }
      divide(z.data(), kNone, T(1), eps);
      apply_transposed(s.data(), n, w, rin);
      times_input(a.ptr());
      break;
    }
  }
}

template <class T>
PreparedRule<T> LinearLayer<T>::prepare(const RuleSpec& rule) const {
  PreparedRule<T> p;
  static_cast<RuleSpec&>(p) = rule;
  const int64_t ni = in_size(), no = out_size();
  if (rule.kind == RuleKind::wsquare || rule.kind == RuleKind::flat) {
    const WeightSet set = rule.kind == RuleKind::wsquare ? WeightSet::square : WeightSet::ones;
    std::vector<T> ones(static_cast<size_t>(ni), T(1));
    p.constant.resize(static_cast<size_t>(no));
    apply_set(ones.data(), 1, set, p.constant.data());
    if (rule.kind == RuleKind::wsquare && rule.bias && has_bias()) {
      const auto b2 = mapped(bias_, [](T b) { return b * b; });
      add_bias(b2.data(), 1, p.constant.data());
    }
    // stab(z) = z + e s(z), e = eps (absolute) or eps |z| (relative, the default); a zero z stays zero: its
    // output's relevance has no tap to go to and is absorbed (stabilized_ratio returns 0).
    const T eps = static_cast<T>(rule.eps);
    for (T& z : p.constant) {
      const T e = rule.eps_absolute ? eps : eps * std::abs(z);
      z = z >= T(0) ? z + e : z - e;
    }
  } else if (rule.kind == RuleKind::zbox) {
    DTD_CHECK(static_cast<int64_t>(rule.low.size()) == ni && static_cast<int64_t>(rule.high.size()) == ni,
              std::invalid_argument, "layer '", this->name(), "': zbox bounds hold ", rule.low.size(), " and ",
              rule.high.size(), " values, expected ", ni, " (input shape ", to_string(this->input_shapes()[0]), ")");
    p.low_t.assign(rule.low.begin(), rule.low.end());
    p.high_t.assign(rule.high.begin(), rule.high.end());
    p.constant.resize(static_cast<size_t>(no));
    std::vector<T> zh(static_cast<size_t>(no));
    apply_set(p.low_t.data(), 1, WeightSet::positive, p.constant.data());
    apply_set(p.high_t.data(), 1, WeightSet::negative, zh.data());
    for (size_t j = 0; j < zh.size(); ++j) p.constant[j] += zh[j];
  }
  return p;
}

#define DTD_INSTANTIATE(T)                                                                                          \
  template void LinearLayer<T>::relevance(const std::vector<const Tensor<T>*>&, const Tensor<T>&, const Tensor<T>&, \
                                          const PreparedRule<T>&, std::vector<Tensor<T>>&) const;                   \
  template void LinearLayer<T>::relevance_from(const std::vector<const Tensor<T>*>&, const Tensor<T>&,              \
                                               const PreparedRule<T>&, std::vector<Tensor<T>>&, const Tensor<T>*,   \
                                               Algorithm) const;                                                    \
  template PreparedRule<T> LinearLayer<T>::prepare(const RuleSpec&) const;
DTD_INSTANTIATE(float)
DTD_INSTANTIATE(double)
#undef DTD_INSTANTIATE

}  // namespace dtd
