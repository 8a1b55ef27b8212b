#include "concat.hpp"

#include <algorithm>

#include "../checked.hpp"
#include "../geometry.hpp"

namespace dtd {

template <class T>
Concat<T>::Concat(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes)
    : Layer<T>(spec.name, spec.kind, std::move(inputs), std::move(input_shapes)) {
  const auto& shapes = this->input_shapes();
  const int64_t rank = static_cast<int64_t>(shapes[0].size()) + 1;
  const int64_t given = detail::int_attr(spec, "axis", 1);
  const int64_t axis = given < 0 ? given + rank : given;
  DTD_CHECK(axis >= 1 && axis < rank, ModelError, "concat layer '", spec.name, "': axis ", given,
            " is out of range or the batch axis (rank ", rank, ")");
  const size_t a = static_cast<size_t>(axis - 1);
  Shape out = shapes[0];
  out[a] = 0;
  for (const Shape& s : shapes) {
    bool same = s.size() == out.size();
    for (size_t i = 0; same && i < s.size(); ++i) same = i == a || s[i] == shapes[0][i];
    DTD_CHECK(same, ModelError, "concat layer '", spec.name, "': input shapes ", to_string(shapes[0]), " and ",
              to_string(s), " differ outside axis ", given);
    out[a] = detail::checked_add(out[a], s[a], detail::where(spec, "axis (concatenated extent)"));
  }
  // outer * extent * inner is the output's element count: checking it bounds every partial product below.
  detail::checked_numel(out, detail::where(spec, "output shape"));
  for (size_t i = 0; i < a; ++i) outer_ *= out[i];
  for (size_t i = a + 1; i < out.size(); ++i) inner_ *= out[i];
  for (const Shape& s : shapes) widths_.push_back(s[a] * inner_);
  this->output_shape_ = out;
}

template <class T>
void Concat<T>::forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const {
  const int64_t rows = out.batch() * outer_, total = out.size() / std::max<int64_t>(rows, 1);
  for (int64_t r = 0; r < rows; ++r) {
    T* dst = out.ptr() + r * total;
    for (size_t k = 0; k < in.size(); ++k) {
      const T* src = in[k]->ptr() + r * widths_[k];
      dst = std::copy(src, src + widths_[k], dst);
    }
  }
}

template <class T>
void Concat<T>::relevance(const std::vector<const Tensor<T>*>&, const Tensor<T>&, const Tensor<T>& r_out,
                          const PreparedRule<T>&, std::vector<Tensor<T>>& r_in) const {
  // The shapes come from r_out: the forward output is not kept for this layer (relevance_reads_output false).
  const int64_t rows = r_out.batch() * outer_, total = r_out.size() / std::max<int64_t>(rows, 1);
  for (int64_t r = 0; r < rows; ++r) {
    const T* src = r_out.ptr() + r * total;
    for (size_t k = 0; k < r_in.size(); ++k) {
      std::copy(src, src + widths_[k], r_in[k].ptr() + r * widths_[k]);
      src += widths_[k];
    }
  }
}

template class Concat<float>;
template class Concat<double>;

}  // namespace dtd
