#include "reshape.hpp"

#include <algorithm>

#include "../checked.hpp"
#include "../geometry.hpp"

namespace dtd {

namespace {

// Flatten(axis) on [N, s...]: [N * prod(s[:axis-1]), prod(s[axis-1:])]. The batch axis stays separate, so the
// per-sample shape is [prod(s[axis-1:])] for axis 1, else [prod(s[:axis-1]), prod(s[axis-1:])].
Shape flatten_shape(const LayerSpec& spec, const Shape& x) {
  const int64_t rank = static_cast<int64_t>(x.size()) + 1;
  int64_t axis = detail::int_attr(spec, "axis", 1);
  if (axis < 0) axis += rank;
  DTD_CHECK(axis >= 1 && axis <= rank, ModelError, "flatten layer '", spec.name, "': axis ",
            detail::int_attr(spec, "axis", 1), " must be in [1, ", rank,
            "] (flattening the batch axis is not supported)");
  int64_t lead = 1, rest = 1;
  const std::string what = detail::where(spec, "axis (flattened extent)");
  for (int64_t i = 0; i < rank - 1; ++i) {
    int64_t& part = i < axis - 1 ? lead : rest;
    part = detail::checked_mul(part, x[static_cast<size_t>(i)], what);
  }
  return axis == 1 ? Shape{rest} : Shape{lead, rest};
}

// Reshape to an ONNX target shape whose first entry stands for the batch (0, -1, or the exported batch size).
Shape reshape_shape(const LayerSpec& spec, const Shape& x) {
  auto it = spec.ints.find("shape");
  DTD_CHECK(it != spec.ints.end() && !it->second.empty(), ModelError, "reshape layer '", spec.name,
            "': needs a constant target shape");
  const std::vector<int64_t>& target = it->second;
  Shape out;
  int64_t infer = -1, known = 1;
  for (size_t i = 1; i < target.size(); ++i) {
    int64_t d = target[i];
    if (d == 0) {
      DTD_CHECK(i - 1 < x.size(), ModelError, "reshape layer '", spec.name, "': 0 at position ", i,
                " has no input axis to copy (input per-sample shape ", to_string(x), ")");
      d = x[i - 1];
    }
    if (d == -1) {
      DTD_CHECK(infer < 0, ModelError, "reshape layer '", spec.name, "': more than one -1 in the target shape");
      infer = static_cast<int64_t>(out.size());
      out.push_back(1);
      continue;
    }
    DTD_CHECK(d > 0, ModelError, "reshape layer '", spec.name, "': invalid target dimension ", d);
    known = detail::checked_mul(known, d, detail::where(spec, "shape"));
    out.push_back(d);
  }
  const int64_t total = detail::checked_numel(x, detail::where(spec, "input shape"));
  if (infer >= 0) {
    DTD_CHECK(known > 0 && total % known == 0, ModelError, "reshape layer '", spec.name, "': cannot reshape ",
              to_string(x), " to ", to_string(target));
    out[static_cast<size_t>(infer)] = total / known;
  }
  DTD_CHECK(detail::checked_numel(out, detail::where(spec, "shape")) == total, ModelError, "reshape layer '", spec.name,
            "': cannot reshape per-sample shape ", to_string(x), " (", total, " values) to ", to_string(target),
            " (the first entry is taken as the batch axis)");
  return out;
}

}  // namespace

template <class T>
Reshape<T>::Reshape(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes)
    : Layer<T>(spec.name, spec.kind, std::move(inputs), std::move(input_shapes)) {
  const Shape& x = this->input_shapes()[0];
  this->output_shape_ = spec.kind == LayerKind::flatten ? flatten_shape(spec, x) : reshape_shape(spec, x);
}

template <class T>
void Reshape<T>::forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const {
  std::copy(in[0]->data.begin(), in[0]->data.end(), out.data.begin());
}

template <class T>
void Reshape<T>::relevance(const std::vector<const Tensor<T>*>&, const Tensor<T>&, const Tensor<T>& r_out,
                           const PreparedRule<T>&, std::vector<Tensor<T>>& r_in) const {
  std::copy(r_out.data.begin(), r_out.data.end(), r_in[0].data.begin());
}

template class Reshape<float>;
template class Reshape<double>;

}  // namespace dtd
