#pragma once

#include "dtd/layer.hpp"

namespace dtd {

/// ONNX LayerNormalization: each group of the axes axis..rank-1 is normalised,
/// y = g (x - mu) / sigma + b with sigma = sqrt(var + epsilon); "scale" g and the optional "bias" b hold one value
/// per element of a group.
///
/// Relevance: the conservative LN rule (Ali et al., ICML 2022): sigma is treated as a constant, so the layer is
/// linear per sample. With z_i = g_i (x_i - mu) / sigma, s_i = R_i / stab(z_i): R_j = x_j (g_j s_j - mean_i g_i s_i)
/// / sigma (sum_j R_j = sum_i s_i z_i; the bias is excluded). Under the gradient rule, the true input-gradient.
template <class T>
class LayerNorm final : public Layer<T> {
 public:
  LayerNorm(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes);
  void forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const override;
  void relevance(const std::vector<const Tensor<T>*>& in, const Tensor<T>& out, const Tensor<T>& r_out,
                 const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in) const override;
  int64_t macs() const override { return 3 * numel(this->output_shape()); }
  int64_t parameter_count() const override { return static_cast<int64_t>(scale_.size() + bias_.size()); }

 private:
  /// mu and 1/sigma of one group, the same in forward() and relevance() (the trace keeps no per-layer side
  /// values for layers without weights; one more pass over x costs as much as reading sigma back).
  void stats(const T* x, T& mu, T& inv_sigma) const;

  int64_t groups_ = 1, size_ = 1;  // per sample: groups_ groups of size_ consecutive elements
  double epsilon_ = 1e-5;
  std::vector<T> scale_, bias_;
};

}  // namespace dtd
