#include "dense.hpp"

#include "../checked.hpp"
#include "../eigen_maps.hpp"
#include "dtd/error.hpp"

namespace dtd {

namespace {
template <class T>
using Row = Eigen::Array<T, 1, Eigen::Dynamic>;
}  // namespace

template <class T>
Dense<T>::Dense(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes)
    : LinearLayer<T>(spec, std::move(inputs), std::move(input_shapes)) {
  const Shape& x = this->input_shapes()[0];
  DTD_CHECK(!x.empty(), ModelError, "dense layer '", spec.name, "': input has no feature axis");
  auto w = spec.weights.find("weight");
  DTD_CHECK(w != spec.weights.end() && w->second.shape.size() == 2, ModelError, "dense layer '", spec.name,
            "': weight must be a matrix [out, in]");
  out_ = w->second.shape[0];
  in_ = x.back();
  DTD_CHECK(in_ >= 1 && out_ >= 1, ModelError, "dense layer '", spec.name, "': input ", to_string(x), " and weight ",
            to_string(w->second.shape), " need positive extents");
  rows_ = detail::checked_numel(x, detail::where(spec, "input shape")) / in_;
  this->load_weights(spec, {out_, in_}, out_);
  this->output_shape_ = x;
  this->output_shape_.back() = out_;
  const int64_t outputs = detail::checked_mul(rows_, out_, detail::where(spec, "output shape"));
  macs_ = detail::checked_mul(outputs, in_, detail::where(spec, "MAC count"));
}

template <class T>
void Dense<T>::apply(const T* x, int64_t batch, const T* w, T* y) const {
  detail::gemm(false, true, batch * rows_, out_, in_, x, w, y);
}

template <class T>
void Dense<T>::apply_transposed(const T* g, int64_t batch, const T* w, T* x) const {
  detail::gemm(false, false, batch * rows_, in_, out_, g, w, x);
}

template <class T>
void Dense<T>::add_bias(const T* b, int64_t batch, T* y) const {
  const int64_t rows = batch * rows_;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < out_; ++j) y[r * out_ + j] += b[j];
}

template <class T>
template <class F>
void Dense<T>::for_each_unit(const T* x, int64_t batch, F&& f) const {
  const T* w = this->weights(WeightSet::plain);
  const int64_t rows = batch * rows_;
  constexpr int64_t kBlock = 64;  // output units per task
  detail::parallel_for((out_ + kBlock - 1) / kBlock, [&](int64_t b) {
    for (int64_t j = b * kBlock; j < std::min(out_, (b + 1) * kBlock); ++j) {
      const Eigen::Map<const Row<T>> wj(w + j * in_, in_);
      for (int64_t r = 0; r < rows; ++r) f(r * out_ + j, wj, Eigen::Map<const Row<T>>(x + r * in_, in_));
    }
  });
}

template <class T>
bool Dense<T>::on_the_fly(WeightSet set, int64_t batch) const {
  return (set == WeightSet::positive || set == WeightSet::negative) && batch * rows_ <= kOnTheFlyRows &&
         this->weight_count() >= kOnTheFlyWeights;
}

template <class T>
void Dense<T>::apply_set(const T* x, int64_t batch, WeightSet set, T* y) const {
  if (!on_the_fly(set, batch)) return LinearLayer<T>::apply_set(x, batch, set, y);
  const bool positive = set == WeightSet::positive;
  for_each_unit(x, batch, [&](int64_t i, const auto& wj, const auto& xr) {
    y[i] = positive ? (wj.max(T(0)) * xr).sum() : (wj.min(T(0)) * xr).sum();
  });
}

template <class T>
bool Dense<T>::apply_with_positive(const T* x, int64_t batch, T* y, T* z) const {
  if (!fused_positive(batch)) return false;
  for_each_unit(x, batch, [&](int64_t i, const auto& wj, const auto& xr) {
    y[i] = (wj * xr).sum();
    z[i] = (wj.max(T(0)) * xr).sum();
  });
  return true;
}

template <class T>
void Dense<T>::apply_transposed_set(const T* g, int64_t batch, WeightSet set, T* x) const {
  if (!on_the_fly(set, batch)) return LinearLayer<T>::apply_transposed_set(g, batch, set, x);
  const bool positive = set == WeightSet::positive;
  transposed_sweep(g, batch, positive ? x : nullptr, positive ? nullptr : x);
}

template <class T>
void Dense<T>::apply_transposed_signed(const T* g, int64_t batch, T* x_pos, T* x_neg) const {
  if (batch * rows_ > kOnTheFlyRows) return LinearLayer<T>::apply_transposed_signed(g, batch, x_pos, x_neg);
  transposed_sweep(g, batch, x_pos, x_neg);
}

template <class T>
void Dense<T>::transposed_sweep(const T* g, int64_t batch, T* x_pos, T* x_neg) const {
  const T* w = this->weights(WeightSet::plain);
  const int64_t rows = batch * rows_;
  // Whole rows of w (streamed as the forward pass streams them) in a fixed number of parts, each summed into its
  // own partial x; the partials are then added in order, so the sums do not depend on the thread count.
  constexpr int64_t kParts = 8;
  const int64_t per = (out_ + kParts - 1) / kParts, size = rows * in_;
  const int64_t outputs = (x_pos != nullptr ? 1 : 0) + (x_neg != nullptr ? 1 : 0);
  Buffer<T> partial(static_cast<size_t>(kParts * outputs * size));
  T* pos = x_pos != nullptr ? partial.data() : nullptr;
  T* neg = x_neg != nullptr ? partial.data() + (outputs - 1) * kParts * size : nullptr;
  detail::parallel_for(
      kParts,
      [&](int64_t part) {
        T* xp = pos != nullptr ? pos + part * size : nullptr;
        T* xn = neg != nullptr ? neg + part * size : nullptr;
        if (xp != nullptr) std::fill(xp, xp + size, T(0));
        if (xn != nullptr) std::fill(xn, xn + size, T(0));
        for (int64_t j = part * per; j < std::min(out_, (part + 1) * per); ++j) {
          const Eigen::Map<const Row<T>> wj(w + j * in_, in_);
          for (int64_t r = 0; r < rows; ++r) {
            const T gj = g[r * out_ + j];
            if (gj == T(0)) continue;  // units without relevance (dead or not explained) cost nothing
            if (xp != nullptr) Eigen::Map<Row<T>>(xp + r * in_, in_) += wj.max(T(0)) * gj;
            if (xn != nullptr) Eigen::Map<Row<T>>(xn + r * in_, in_) += wj.min(T(0)) * gj;
          }
        }
      },
      this->weight_count() >= kOnTheFlyWeights);
  for (T* p : {pos, neg}) {
    if (p == nullptr) continue;
    T* x = p == pos ? x_pos : x_neg;
    detail::parallel_blocks(size, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        T sum = p[static_cast<size_t>(i)];
        for (int64_t part = 1; part < kParts; ++part) sum += p[static_cast<size_t>(part * size + i)];
        x[i] = sum;
      }
    });
  }
}

template class Dense<float>;
template class Dense<double>;

}  // namespace dtd
