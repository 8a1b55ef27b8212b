#pragma once

#include "dtd/layer.hpp"

namespace dtd {

/// Concatenation along one per-sample axis. Relevance is split back into the inputs' slices.
template <class T>
class Concat final : public Layer<T> {
 public:
  Concat(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes);
  bool relevance_reads_inputs() const override { return false; }
  void forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const override;
  void relevance(const std::vector<const Tensor<T>*>& in, const Tensor<T>& out, const Tensor<T>& r_out,
                 const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in) const override;

 private:
  int64_t outer_ = 1, inner_ = 1;  // products of the axes before / after the concatenation axis
  std::vector<int64_t> widths_;    // per input: its extent along the axis times inner_
};

}  // namespace dtd
