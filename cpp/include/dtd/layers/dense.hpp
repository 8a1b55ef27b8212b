#pragma once

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
  int64_t macs() const override { return rows_ * in_ * out_; }

 private:
  int64_t in_ = 0, out_ = 0, rows_ = 1;  // rows_: product of the leading per-sample axes
};

}  // namespace dtd
