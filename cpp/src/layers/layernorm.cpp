#include "layernorm.hpp"

#include <cmath>

#include "../checked.hpp"
#include "../geometry.hpp"
#include "../parallel.hpp"
#include "../stabilizer.hpp"
#include "dtd/error.hpp"

namespace dtd {

template <class T>
LayerNorm<T>::LayerNorm(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes)
    : Layer<T>(spec.name, spec.kind, std::move(inputs), std::move(input_shapes)) {
  const Shape& x = this->input_shapes()[0];
  const auto rank = static_cast<int64_t>(x.size()) + 1;
  const int64_t given = detail::int_attr(spec, "axis", -1);
  const int64_t axis = given < 0 ? given + rank : given;
  DTD_CHECK(axis >= 1 && axis < rank, ModelError, "layernorm layer '", spec.name, "': axis ", given,
            " is out of range or the batch axis (input [N, ", to_string(x).substr(1), ")");
  detail::checked_numel(x, detail::where(spec, "input shape"));  // bounds groups * size
  for (int64_t i = 0; i < rank - 1; ++i) (i < axis - 1 ? groups_ : size_) *= x[static_cast<size_t>(i)];
  auto eps = spec.floats.find("epsilon");
  if (eps != spec.floats.end()) epsilon_ = eps->second;
  DTD_CHECK(std::isfinite(epsilon_) && epsilon_ >= 0, ModelError, "layernorm layer '", spec.name, "': epsilon ",
            epsilon_, " must be finite and >= 0");
  for (auto& [key, _] : spec.weights)
    DTD_CHECK(key == "scale" || key == "bias", ModelError, "layernorm layer '", spec.name, "': unknown weight '", key,
              "'");
  auto load = [&](const char* key, std::vector<T>& dst) {
    auto it = spec.weights.find(key);
    if (it == spec.weights.end()) return false;
    const Array& a = it->second;
    DTD_CHECK(numel(a.shape) == size_ && static_cast<int64_t>(a.data.size()) == size_, ModelError, "layernorm layer '",
              spec.name, "': ", key, " has shape ", to_string(a.shape), ", expected ", size_,
              " values (the normalised axes of the input [N, ", to_string(x).substr(1), " from axis ", axis, ")");
    dst.assign(a.data.begin(), a.data.end());
    for (T v : dst) DTD_CHECK(std::isfinite(v), ModelError, "layernorm layer '", spec.name, "': non-finite ", key);
    return true;
  };
  DTD_CHECK(load("scale", scale_), ModelError, "layernorm layer '", spec.name, "': missing weight 'scale'");
  load("bias", bias_);
  this->output_shape_ = x;
}

template <class T>
void LayerNorm<T>::stats(const T* x, T& mu, T& inv_sigma) const {
  double sum = 0;
  for (int64_t i = 0; i < size_; ++i) sum += static_cast<double>(x[i]);
  const double m = sum / static_cast<double>(size_);
  double sq = 0;
  for (int64_t i = 0; i < size_; ++i) {
    const double d = static_cast<double>(x[i]) - m;
    sq += d * d;
  }
  mu = static_cast<T>(m);
  inv_sigma = static_cast<T>(1.0 / std::sqrt(sq / static_cast<double>(size_) + epsilon_));
}

template <class T>
void LayerNorm<T>::forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const {
  const int64_t groups = in[0]->batch() * groups_;
  detail::parallel_for(
      groups,
      [&](int64_t q) {
        const T* x = in[0]->ptr() + q * size_;
        T* y = out.ptr() + q * size_;
        T mu, inv;
        stats(x, mu, inv);
        for (int64_t i = 0; i < size_; ++i) {
          const auto k = static_cast<size_t>(i);
          y[i] = scale_[k] * ((x[i] - mu) * inv) + (bias_.empty() ? T(0) : bias_[k]);
        }
      },
      groups * size_ >= detail::kParallelWork);
}

template <class T>
void LayerNorm<T>::relevance(const std::vector<const Tensor<T>*>& in, const Tensor<T>&, const Tensor<T>& r_out,
                             const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in) const {
  const int64_t groups = r_out.batch() * groups_;
  const bool gradient = rule.kind == RuleKind::gradient;
  const T eps = static_cast<T>(rule.eps);
  const double n = static_cast<double>(size_);
  detail::parallel_for(
      groups,
      [&](int64_t q) {
        const T* x = in[0]->ptr() + q * size_;
        const T* r = r_out.ptr() + q * size_;
        T* ri = r_in[0].ptr() + q * size_;
        T mu, inv;
        stats(x, mu, inv);
        if (gradient) {
          // d/dx_j of sum_i r_i y_i: inv (g_j r_j - mean(g r) - xhat_j mean(g r xhat)).
          double m1 = 0, m2 = 0;
          for (int64_t i = 0; i < size_; ++i) {
            const double gr = static_cast<double>(scale_[static_cast<size_t>(i)]) * r[i];
            m1 += gr;
            m2 += gr * static_cast<double>((x[i] - mu) * inv);
          }
          const T a = static_cast<T>(m1 / n), b = static_cast<T>(m2 / n);
          for (int64_t j = 0; j < size_; ++j)
            ri[j] = inv * (scale_[static_cast<size_t>(j)] * r[j] - a - (x[j] - mu) * inv * b);
          return;
        }
        // ri holds g_i s_i first, then the relevance.
        double m = 0;
        for (int64_t i = 0; i < size_; ++i) {
          const T g = scale_[static_cast<size_t>(i)];
          const T z = g * ((x[i] - mu) * inv);
          ri[i] = g * detail::stabilized_ratio(r[i], z, eps);
          m += static_cast<double>(ri[i]);
        }
        const T mean = static_cast<T>(m / n);
        for (int64_t j = 0; j < size_; ++j) ri[j] = x[j] * ((ri[j] - mean) * inv);
      },
      groups * size_ >= detail::kParallelWork);
}

template class LayerNorm<float>;
template class LayerNorm<double>;

}  // namespace dtd
