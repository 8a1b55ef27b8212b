#pragma once

#include <mutex>
#include <vector>

#include "dtd/layer.hpp"

namespace dtd {

/// y = x W^T + b over the last axis (ONNX Gemm, MatMul + Add). Leading axes are treated as extra rows.
template <class T>
class Dense final : public LinearLayer<T> {
 public:
  // weight: [out, in]; bias: [out]
  Dense(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes);

  void apply(const T* x, int64_t batch, const T* w, T* y) const override;
  void apply_transposed(const T* g, int64_t batch, const T* w, T* x) const override;
  void add_bias(const T* b, int64_t batch, T* y) const override;
  /// w+ and w- of a large matrix at small batch are taken from w on the fly: the product is memory-bound, so
  /// this costs nothing and saves storing a second copy of the largest weights.
  void apply_set(const T* x, int64_t batch, WeightSet set, T* y) const override;
  void apply_transposed_set(const T* g, int64_t batch, WeightSet set, T* x) const override;
  /// At small batch, one sweep over w for both (any size: it reads w once instead of w+ and w-, and skips the
  /// units without relevance).
  void apply_transposed_signed(const T* g, int64_t batch, T* x_pos, T* x_neg) const override;
  bool fused_positive(int64_t batch) const override { return on_the_fly(WeightSet::positive, batch); }
  bool apply_with_positive(const T* x, int64_t batch, T* y, T* z) const override;
  int64_t macs() const override { return macs_; }

 private:
  bool on_the_fly(WeightSet set, int64_t batch) const;
  // y = x weights(set)^T (transposed: x = g weights(set)) by dtd's kernel over the weights packed once for it
  // (packed_weights), where that pays: float, from kPackedRows rows, up to kPackedWeights weights, at most 1.5x
  // the weights once padded to whole panels. False: not done.
  bool packed_product(const T* x, int64_t batch, WeightSet set, bool transposed, T* y) const;
  // weights(set)^T (transposed: weights(set)) packed as dtd's kernel reads its right operand (sgemm_pack_b), made
  // on first use: a copy of the weight set (columns padded to whole panels) that a call would otherwise pack anew.
  const float* packed_weights(WeightSet set, bool transposed) const;
  // f(i, w_j, x_r) for every output unit j and row r of the batch (i = r * out + j), in parallel over blocks of
  // units: each task streams whole rows of w.
  template <class F>
  void for_each_unit(const T* x, int64_t batch, F&& f) const;
  // x_pos = w+^T g and/or x_neg = w-^T g (either may be null) from w, streamed row by row in kParts fixed parts
  // (in parallel where w is large), units with g = 0 skipped.
  void transposed_sweep(const T* g, int64_t batch, T* x_pos, T* x_neg) const;

  static constexpr int64_t kOnTheFlyWeights = int64_t{1} << 20;  // weights at least
  static constexpr int64_t kOnTheFlyRows = 4;                    // rows (batch x leading axes) at most
  static constexpr int64_t kPackedRows = 2;                      // rows at least, for packed_product
  static constexpr int64_t kPackedWeights = int64_t{1} << 22;    // weights at most (16 MB per packed copy)

  int64_t in_ = 0, out_ = 0, rows_ = 1;    // rows_: product of the leading per-sample axes
  int64_t macs_ = 0;                       // checked in the constructor
  mutable std::vector<float> packed_[10];  // [2 * set + transposed]: packed_weights
  mutable std::once_flag packed_once_[10];
};

}  // namespace dtd
