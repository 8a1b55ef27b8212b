#include "index_map.hpp"

#include <algorithm>

#include "../checked.hpp"
#include "../parallel.hpp"
#include "dtd/error.hpp"

namespace dtd {

using detail::concat;

namespace detail {
Shape strides_of(const Shape& shape) {
  Shape s(shape.size(), 1);
  for (size_t i = shape.size(); i-- > 1;) s[i - 1] = s[i] * shape[i];
  return s;
}
}  // namespace detail

template <class T>
IndexMap<T>::IndexMap(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes)
    : Layer<T>(spec.name, spec.kind, std::move(inputs), std::move(input_shapes)) {}

template <class T>
void IndexMap<T>::set_map(const std::vector<Axis>& axes, int64_t base, T fill) {
  Shape out;
  for (const Axis& axis : axes) out.push_back(static_cast<int64_t>(axis.coord.size()));
  // The map holds one entry per output element of a sample: refuse it before building it when that is too many.
  const std::string what = concat(to_string(this->kind()), " layer '", this->name(), "': output shape");
  detail::check_activation(detail::checked_numel(out, what), what, " ", to_string(out));
  std::vector<int64_t> source{base};
  for (const Axis& axis : axes) {
    DTD_CHECK(!axis.coord.empty(), ModelError, to_string(this->kind()), " layer '", this->name(),
              "': the output would have an axis of length 0 (input shape ", to_string(this->input_shapes()[0]), ")");
    std::vector<int64_t> next;
    next.reserve(source.size() * axis.coord.size());
    for (int64_t s : source)
      for (int64_t c : axis.coord) next.push_back(s < 0 || c < 0 ? -1 : s + axis.stride * c);
    source.swap(next);
  }
  this->output_shape_ = out;
  source_ = std::move(source);
  fill_ = fill;
}

template <class T>
void IndexMap<T>::forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const {
  const int64_t n = in[0]->batch(), per_in = numel(this->input_shapes()[0]);
  const auto per_out = static_cast<int64_t>(source_.size());
  detail::parallel_for(
      n,
      [&](int64_t k) {
        const T* x = in[0]->ptr() + k * per_in;
        T* y = out.ptr() + k * per_out;
        for (int64_t j = 0; j < per_out; ++j) {
          const int64_t s = source_[static_cast<size_t>(j)];
          y[j] = s < 0 ? fill_ : x[s];
        }
      },
      n * per_out >= detail::kParallelWork);
}

template <class T>
void IndexMap<T>::relevance(const std::vector<const Tensor<T>*>&, const Tensor<T>&, const Tensor<T>& r_out,
                            const PreparedRule<T>&, std::vector<Tensor<T>>& r_in) const {
  const int64_t n = r_out.batch(), per_in = numel(this->input_shapes()[0]);
  const auto per_out = static_cast<int64_t>(source_.size());
  detail::parallel_for(
      n,
      [&](int64_t k) {
        const T* g = r_out.ptr() + k * per_out;
        T* r = r_in[0].ptr() + k * per_in;
        std::fill(r, r + per_in, T(0));
        for (int64_t j = 0; j < per_out; ++j) {
          const int64_t s = source_[static_cast<size_t>(j)];
          if (s >= 0) r[s] += g[j];
        }
      },
      n * per_out >= detail::kParallelWork);
}

template class IndexMap<float>;
template class IndexMap<double>;

}  // namespace dtd
