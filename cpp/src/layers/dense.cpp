#include "dtd/layers/dense.hpp"

#include "../eigen_maps.hpp"
#include "dtd/error.hpp"

namespace dtd {

template <class T>
Dense<T>::Dense(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes)
    : LinearLayer<T>(spec, std::move(inputs), std::move(input_shapes)) {
  const Shape& x = this->input_shapes()[0];
  DTD_CHECK(!x.empty(), ModelError, "dense layer '", spec.name, "': input has no feature axis");
  auto w = spec.weights.find("weight");
  DTD_CHECK(w != spec.weights.end() && w->second.shape.size() == 2, ModelError, "dense layer '", spec.name,
            "': weight must be a matrix [out, in]");
  out_ = w->second.shape[0];
  in_ = x.back();
  rows_ = numel(x) / in_;
  this->load_weights(spec, {out_, in_}, out_);
  this->output_shape_ = x;
  this->output_shape_.back() = out_;
}

template <class T>
void Dense<T>::apply(const T* x, int64_t batch, const T* w, T* y) const {
  detail::gemm(false, true, batch * rows_, out_, in_, x, w, y);
}

template <class T>
void Dense<T>::apply_transposed(const T* g, int64_t batch, const T* w, T* x) const {
  detail::gemm(false, false, batch * rows_, in_, out_, g, w, x);
}

template <class T>
void Dense<T>::add_bias(const T* b, int64_t batch, T* y) const {
  const int64_t rows = batch * rows_;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < out_; ++j) y[r * out_ + j] += b[j];
}

template class Dense<float>;
template class Dense<double>;

}  // namespace dtd
