#pragma once

#include "dtd/layer.hpp"

namespace dtd {

/// An element-wise function other than ReLU (ActivationOp: Clip, LeakyRelu, PRelu, Elu, Selu, Sigmoid, Tanh,
/// HardSigmoid, HardSwish, Softplus, Gelu, Silu), computed as the ONNX operator defines it.
/// Relevance passes through unchanged (zennit's Pass rule, LRP practice): the next parametric layer's rule
/// explains the pre-activation. Under the gradient rule (sensitivity analysis) the derivative is applied,
/// which is why relevance_reads_inputs() stays true (the trace keeps the input, as Relu keeps its output).
/// Weights: PRelu's "slope", any shape that broadcasts against the per-sample input shape (NumPy rules).
template <class T>
class Activation final : public Layer<T> {
 public:
  Activation(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes);
  bool relevance_is_identity(const RuleSpec& rule) const override { return rule.kind != RuleKind::gradient; }
  void forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const override;
  void relevance(const std::vector<const Tensor<T>*>& in, const Tensor<T>& out, const Tensor<T>& r_out,
                 const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in) const override;
  int64_t parameter_count() const override { return slope_count_; }

  ActivationOp op() const { return op_; }

 private:
  ActivationOp op_;
  T alpha_ = T(0), beta_ = T(0), gamma_ = T(0), min_ = T(0), max_ = T(0);
  std::vector<T> slope_;  // PRelu: broadcast to the per-sample input shape
  int64_t slope_count_ = 0;
};

}  // namespace dtd
