#include "softmax.hpp"

#include <algorithm>
#include <cmath>

#include "../geometry.hpp"

namespace dtd {

template <class T>
Softmax<T>::Softmax(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes)
    : Layer<T>(spec.name, spec.kind, std::move(inputs), std::move(input_shapes)) {
  const Shape& x = this->input_shapes()[0];
  log_ = spec.kind == LayerKind::logsoftmax;
  const int64_t rank = static_cast<int64_t>(x.size()) + 1;
  const int64_t given = detail::int_attr(spec, "axis", -1);
  const int64_t axis = given < 0 ? given + rank : given;
  DTD_CHECK(axis >= 1 && axis < rank, ModelError, to_string(spec.kind), " layer '", spec.name, "': axis ", given,
            " is out of range or the batch axis (rank ", rank, ")");
  for (int64_t i = 0; i < axis - 1; ++i) outer_ *= x[static_cast<size_t>(i)];
  axis_ = x[static_cast<size_t>(axis - 1)];
  for (int64_t i = axis; i < rank - 1; ++i) inner_ *= x[static_cast<size_t>(i)];
  this->output_shape_ = x;
}

template <class T>
void Softmax<T>::forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const {
  const int64_t blocks = in[0]->batch() * outer_;
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t j = 0; j < inner_; ++j) {
      const T* x = in[0]->ptr() + b * axis_ * inner_ + j;
      T* y = out.ptr() + b * axis_ * inner_ + j;
      T mx = x[0];
      for (int64_t k = 1; k < axis_; ++k) mx = std::max(mx, x[k * inner_]);
      T sum = T(0);
      for (int64_t k = 0; k < axis_; ++k) sum += std::exp(x[k * inner_] - mx);
      const T log_sum = std::log(sum);
      for (int64_t k = 0; k < axis_; ++k) {
        const T v = x[k * inner_] - mx;
        y[k * inner_] = log_ ? v - log_sum : std::exp(v) / sum;
      }
    }
}

template <class T>
void Softmax<T>::relevance(const std::vector<const Tensor<T>*>&, const Tensor<T>&, const Tensor<T>&,
                           const PreparedRule<T>&, std::vector<Tensor<T>>&) const {
  throw std::logic_error("softmax layer '" + this->name() + "': relevance starts at its input (the logits)");
}

template class Softmax<float>;
template class Softmax<double>;

}  // namespace dtd
