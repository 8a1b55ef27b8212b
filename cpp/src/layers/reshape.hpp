#pragma once

#include "dtd/layer.hpp"

namespace dtd {

/// Flatten and Reshape: the data is unchanged, only the shape; relevance is reshaped back.
template <class T>
class Reshape final : public Layer<T> {
 public:
  Reshape(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes);
  bool relevance_reads_inputs() const override { return false; }
  bool relevance_is_identity(const RuleSpec&) const override { return true; }
  void forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const override;
  void relevance(const std::vector<const Tensor<T>*>& in, const Tensor<T>& out, const Tensor<T>& r_out,
                 const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in) const override;
};

}  // namespace dtd
