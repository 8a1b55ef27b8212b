#pragma once

#include "dtd/layer.hpp"

namespace dtd {

/// y = scale * x + shift, elementwise (BatchNormalization that cannot be folded, constant Mul/Div/Add/Sub, input
/// normalisation inside the graph). Weights "scale" and "shift" broadcast like NumPy against the per-sample input
/// shape (right-aligned: [C, 1, 1] per channel of NCHW, [C] on the last axis, [1], or the full shape).
///
/// Relevance: passes through (R_x = R_y: the z-rule of a one-input unit with its shift excluded) under every rule
/// but two: epsilon includes the shift, R_x = (scale x) / stab(scale x + shift) R_y; gradient multiplies by scale.
template <class T>
class Affine final : public Layer<T> {
 public:
  Affine(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes);
  // The epsilon form needs x; relevance_reads_inputs() cannot depend on the rule, so it always says so.
  bool relevance_reads_inputs() const override { return true; }
  bool relevance_is_identity(const RuleSpec& rule) const override {
    return rule.kind != RuleKind::epsilon && rule.kind != RuleKind::gradient;
  }
  void forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const override;
  void relevance(const std::vector<const Tensor<T>*>& in, const Tensor<T>& out, const Tensor<T>& r_out,
                 const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in) const override;
  int64_t macs() const override { return numel(this->output_shape()); }
  int64_t parameter_count() const override { return static_cast<int64_t>(scale_.size() + shift_.size()); }

 private:
  // A sample is (outer_, mid_, inner_) row-major; scale_ and shift_ vary along mid_ only (mid_ entries each).
  int64_t outer_ = 1, mid_ = 1, inner_ = 1;
  std::vector<T> scale_, shift_;
};

}  // namespace dtd
