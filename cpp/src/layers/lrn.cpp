#include "lrn.hpp"

#include <algorithm>
#include <cmath>

#include "../checked.hpp"
#include "../geometry.hpp"
#include "../parallel.hpp"

namespace dtd {

template <class T>
Lrn<T>::Lrn(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes)
    : Layer<T>(spec.name, spec.kind, std::move(inputs), std::move(input_shapes)) {
  const Shape& x = this->input_shapes()[0];
  DTD_CHECK(x.size() >= 2, ModelError, "lrn layer '", spec.name, "': input [N, ", to_string(x).substr(1),
            " needs a channel axis and at least one more axis");
  size_ = detail::int_attr(spec, "size", 0);
  DTD_CHECK(size_ >= 1, ModelError, "lrn layer '", spec.name, "': size must be >= 1, got ", size_);
  auto real = [&](const char* key, double fallback) {
    auto it = spec.floats.find(key);
    return it == spec.floats.end() ? fallback : it->second;
  };
  alpha_ = real("alpha", 1e-4);
  beta_ = real("beta", 0.75);
  bias_ = real("bias", 1.0);
  DTD_CHECK(std::isfinite(alpha_) && std::isfinite(beta_) && bias_ > 0 && alpha_ >= 0, ModelError, "lrn layer '",
            spec.name, "': needs bias > 0 and alpha >= 0, got alpha ", alpha_, ", beta ", beta_, ", bias ", bias_);
  channels_ = x[0];
  DTD_CHECK(channels_ >= 1, ModelError, "lrn layer '", spec.name, "': no channels in [N, ", to_string(x).substr(1));
  inner_ = detail::checked_numel(x, detail::where(spec, "input shape")) / channels_;
  this->output_shape_ = x;
}

template <class T>
void Lrn<T>::denominators(const T* x, T* d) const {
  // The window of channel c: [c - floor((size - 1) / 2), c + ceil((size - 1) / 2)], cut to [0, C - 1].
  const int64_t before = (size_ - 1) / 2, after = size_ - 1 - before;
  const T scale = static_cast<T>(alpha_ / static_cast<double>(size_));
  for (int64_t c = 0; c < channels_; ++c) {
    T* dc = d + c * inner_;
    std::fill(dc, dc + inner_, T(0));
    for (int64_t k = std::max<int64_t>(0, c - before); k <= std::min(channels_ - 1, c + after); ++k) {
      const T* xk = x + k * inner_;
      for (int64_t i = 0; i < inner_; ++i) dc[i] += xk[i] * xk[i];
    }
    for (int64_t i = 0; i < inner_; ++i) dc[i] = static_cast<T>(bias_) + scale * dc[i];
  }
}

template <class T>
void Lrn<T>::forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const {
  const int64_t n = in[0]->batch(), per = channels_ * inner_;
  detail::parallel_for(
      n,
      [&](int64_t k) {
        const T* x = in[0]->ptr() + k * per;
        T* y = out.ptr() + k * per;
        denominators(x, y);
        for (int64_t i = 0; i < per; ++i) y[i] = x[i] * std::pow(y[i], static_cast<T>(-beta_));
      },
      n * per * size_ >= detail::kParallelWork);
}

template <class T>
void Lrn<T>::relevance(const std::vector<const Tensor<T>*>& in, const Tensor<T>&, const Tensor<T>& r_out,
                       const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in) const {
  if (rule.kind != RuleKind::gradient) {
    std::copy(r_out.data.begin(), r_out.data.end(), r_in[0].data.begin());
    return;
  }
  // dy_i/dx_k = [i == k] d_i^-beta - 2 alpha beta / size * x_i x_k d_i^(-beta-1) for k in the window of i, so
  // g_k = grad_k d_k^-beta - 2 alpha beta / size * x_k * sum over the i whose window holds k of grad_i x_i
  // d_i^(-beta-1).
  const int64_t n = r_out.batch(), per = channels_ * inner_;
  const int64_t before = (size_ - 1) / 2, after = size_ - 1 - before;
  const T coef = static_cast<T>(2 * alpha_ * beta_ / static_cast<double>(size_));
  detail::parallel_for(
      n,
      [&](int64_t k) {
        const T* x = in[0]->ptr() + k * per;
        const T* g = r_out.ptr() + k * per;
        T* r = r_in[0].ptr() + k * per;
        std::vector<T> d(static_cast<size_t>(per)), u(static_cast<size_t>(per));
        denominators(x, d.data());
        for (int64_t i = 0; i < per; ++i) {
          const T p = std::pow(d[i], static_cast<T>(-beta_));
          r[i] = g[i] * p;
          u[i] = g[i] * x[i] * p / d[i];
        }
        // Channel c lies in the window of i for i in [c - after, c + before].
        for (int64_t c = 0; c < channels_; ++c)
          for (int64_t i = std::max<int64_t>(0, c - after); i <= std::min(channels_ - 1, c + before); ++i)
            for (int64_t j = 0; j < inner_; ++j)
              r[c * inner_ + j] -= coef * x[c * inner_ + j] * u[static_cast<size_t>(i * inner_ + j)];
      },
      n * per * size_ >= detail::kParallelWork);
}

template class Lrn<float>;
template class Lrn<double>;

}  // namespace dtd
