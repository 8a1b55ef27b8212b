#include "relu.hpp"

#include <algorithm>

#include "../parallel.hpp"

namespace dtd {

template <class T>
Relu<T>::Relu(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes)
    : Layer<T>(spec.name, spec.kind, std::move(inputs), std::move(input_shapes)) {
  this->output_shape_ = this->input_shapes()[0];
}

template <class T>
void Relu<T>::forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const {
  const T* x = in[0]->ptr();
  T* y = out.ptr();
  detail::parallel_blocks(out.size(), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) y[i] = std::max(x[i], T(0));
  });
}

template <class T>
void Relu<T>::relevance(const std::vector<const Tensor<T>*>&, const Tensor<T>& out, const Tensor<T>& r_out,
                        const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in) const {
  if (rule.kind == RuleKind::gradient) {
    for (int64_t i = 0; i < r_out.size(); ++i) r_in[0].data[i] = out.data[i] > T(0) ? r_out.data[i] : T(0);
    return;
  }
  std::copy(r_out.data.begin(), r_out.data.end(), r_in[0].data.begin());
}

template class Relu<float>;
template class Relu<double>;

}  // namespace dtd
