#pragma once

#include "dtd/layer.hpp"

namespace dtd {

/// ONNX LRN (local response normalization across channels, axis 1 of [N, C, ...]): ints "size", floats "alpha",
/// "beta", "bias"; y = x / (bias + alpha / size * sum of x^2 over the channel window)^beta. Relevance passes
/// through unchanged (as the LRP Toolbox's Caffe code treats it); the gradient rule gets the true gradient.
template <class T>
class Lrn final : public Layer<T> {
 public:
  Lrn(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes);
  bool relevance_is_identity(const RuleSpec& rule) const override { return rule.kind != RuleKind::gradient; }
  void forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const override;
  void relevance(const std::vector<const Tensor<T>*>& in, const Tensor<T>& out, const Tensor<T>& r_out,
                 const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in) const override;

 private:
  /// d = bias + alpha / size * (window sum of x^2) for one sample ([C, inner]).
  void denominators(const T* x, T* d) const;
  int64_t size_ = 1, channels_ = 1, inner_ = 1;
  double alpha_ = 1e-4, beta_ = 0.75, bias_ = 1.0;
};

}  // namespace dtd
