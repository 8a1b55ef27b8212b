#pragma once

#include "dtd/layer.hpp"

namespace dtd {

/// max(x, 0). Relevance passes through unchanged: the z+ layer above gives none to units with a = 0.
template <class T>
class Relu final : public Layer<T> {
 public:
  Relu(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes);
  bool relevance_reads_inputs() const override { return false; }
  bool relevance_reads_output() const override { return true; }
  bool relevance_is_identity(const RuleSpec& rule) const override { return rule.kind != RuleKind::gradient; }
  void forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const override;
  void relevance(const std::vector<const Tensor<T>*>& in, const Tensor<T>& out, const Tensor<T>& r_out,
                 const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in) const override;
};

}  // namespace dtd
