#pragma once

#include "dtd/layer.hpp"

namespace dtd {

/// Softmax or LogSoftmax over one axis, only as the network's head: explanations start from its input (the
/// logits), so its relevance() is never called and throws.
template <class T>
class Softmax final : public Layer<T> {
 public:
  Softmax(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes);
  void forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const override;
  void relevance(const std::vector<const Tensor<T>*>& in, const Tensor<T>& out, const Tensor<T>& r_out,
                 const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in) const override;

 private:
  bool log_ = false;
  int64_t outer_ = 1, axis_ = 1, inner_ = 1;
};

}  // namespace dtd
