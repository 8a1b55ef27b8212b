#pragma once

#include "dtd/layer.hpp"

namespace dtd {

/// y = u + v + ... (residual sums). Relevance: the z+ form by default, proportional as an option (RULES.md).
template <class T>
class Add final : public Layer<T> {
 public:
  Add(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes);
  bool relevance_reads_output() const override { return true; }
  void forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const override;
  void relevance(const std::vector<const Tensor<T>*>& in, const Tensor<T>& out, const Tensor<T>& r_out,
                 const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in) const override;
};

}  // namespace dtd
