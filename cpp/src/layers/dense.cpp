#include "dense.hpp"

#include "../checked.hpp"
#include "../eigen_maps.hpp"
#include "../gemm.hpp"
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

// The forward and the gradient pass hand the plain weights in: those take the packed product where it pays.
template <class T>
void Dense<T>::apply(const T* x, int64_t batch, const T* w, T* y) const {
  if (w == this->weights(WeightSet::plain) && packed_product(x, batch, WeightSet::plain, false, y)) return;
  detail::gemm(false, true, batch * rows_, out_, in_, x, w, y);
}

template <class T>
void Dense<T>::apply_transposed(const T* g, int64_t batch, const T* w, T* x) const {
  if (w == this->weights(WeightSet::plain) && packed_product(g, batch, WeightSet::plain, true, x)) return;
  detail::gemm(false, false, batch * rows_, in_, out_, g, w, x);
}

template <class T>
const float* Dense<T>::packed_weights(WeightSet set, bool transposed) const {
  const auto slot = 2 * static_cast<size_t>(set) + (transposed ? 1 : 0);
  if constexpr (std::is_same_v<T, float>) {
    std::call_once(packed_once_[slot], [&] {
      // the forward's right operand is w^T (in x out, from w [out, in] transposed); the transposed pass's is w
      const int64_t k = transposed ? out_ : in_, n = transposed ? in_ : out_;
      packed_[slot].resize(static_cast<size_t>(detail::sgemm_packed_b_size(k, n)));
      detail::sgemm_pack_b(!transposed, k, n, this->weights(set), in_, packed_[slot].data());
    });
  }
  return packed_[slot].data();
}

template <class T>
bool Dense<T>::packed_product(const T* x, int64_t batch, WeightSet set, bool transposed, T* y) const {
  if constexpr (!std::is_same_v<T, float>) {
    (void)x, (void)batch, (void)set, (void)transposed, (void)y;
    return false;
  } else {
    const int64_t m = batch * rows_, k = transposed ? out_ : in_, n = transposed ? in_ : out_;
    if (!detail::sgemm_available() || m < kPackedRows || this->weight_count() > kPackedWeights) return false;
    // The packed copy pads the columns to whole panels: not for a narrow product (a forward with few outputs),
    // whose copy would be up to 32x the weights (the MLP's 300 -> 100 layer pads 100 columns to 128).
    if (detail::sgemm_packed_b_size(k, n) > this->weight_count() + this->weight_count() / 2) return false;
    const float* packed = packed_weights(set, transposed);
    // Shares of whole row tiles: every row's sums are the same however the rows are split (gemm.hpp).
    const int64_t tile = detail::sgemm_tile_rows(), tiles = (m + tile - 1) / tile;
    // Each share streams all of the packed weights, and waking a sleeping thread costs tens of microseconds: shares
    // from 8 times the work other products split at (the MLP's 784 x 300 layer at batch 16, 3.8 M multiply-adds, on
    // 2 threads: 0.070 ms split, 0.043 alone).
    const bool parallel = m * n * k >= 8 * detail::kParallelWork && !omp_in_parallel();
    const int64_t shares = parallel ? std::min<int64_t>(tiles, omp_get_max_threads()) : 1;
    detail::parallel_for(
        shares,
        [&](int64_t t) {
          const int64_t r0 = tiles * t / shares * tile, r1 = std::min(m, tiles * (t + 1) / shares * tile);
          if (r1 > r0) detail::sgemm_packed_b(false, r1 - r0, n, k, x + r0 * k, k, packed, y + r0 * n, n);
        },
        parallel);
    return true;
  }
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
  if (!on_the_fly(set, batch)) {
    if (packed_product(x, batch, set, false, y)) return;
    return LinearLayer<T>::apply_set(x, batch, set, y);
  }
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
  if (!on_the_fly(set, batch)) {
    if (packed_product(g, batch, set, true, x)) return;
    return LinearLayer<T>::apply_transposed_set(g, batch, set, x);
  }
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
