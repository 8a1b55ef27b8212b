#include "add.hpp"

#include <algorithm>

#include "../parallel.hpp"
#include "../stabilizer.hpp"
#include "dtd/error.hpp"

namespace dtd {

template <class T>
Add<T>::Add(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes)
    : Layer<T>(spec.name, spec.kind, std::move(inputs), std::move(input_shapes)) {
  const auto& shapes = this->input_shapes();
  DTD_CHECK(shapes.size() >= 2, ModelError, "add layer '", spec.name, "': needs at least two inputs");
  for (const Shape& s : shapes)
    DTD_CHECK(s == shapes[0], ModelError, "add layer '", spec.name, "': inputs have shapes ", to_string(shapes[0]),
              " and ", to_string(s), " (broadcasting is not supported)");
  this->output_shape_ = shapes[0];
}

template <class T>
void Add<T>::forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const {
  std::copy(in[0]->data.begin(), in[0]->data.end(), out.data.begin());
  for (size_t k = 1; k < in.size(); ++k)
    for (int64_t i = 0; i < out.size(); ++i) out.data[i] += in[k]->data[i];
}

// z+ form (default): R_u = u+ R / stab(sum u+). Proportional: R_u = u R / stab(sum u) (zennit's Norm on Sum).
template <class T>
void Add<T>::relevance(const std::vector<const Tensor<T>*>& in, const Tensor<T>& out, const Tensor<T>& r_out,
                       const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in) const {
  if (rule.kind == RuleKind::gradient) {
    for (auto& r : r_in) std::copy(r_out.data.begin(), r_out.data.end(), r.data.begin());
    return;
  }
  const T eps = static_cast<T>(rule.eps);
  const bool zplus = rule.add == AddMode::zplus;
  const int64_t n = out.size();
  const T* r = r_out.ptr();
  if (in.size() == 2) {
    // The residual case, in parallel blocks and without the indirections of the general loop (same arithmetic).
    const T *a = in[0]->ptr(), *b = in[1]->ptr(), *o = zplus ? nullptr : out.ptr();
    T *ra = r_in[0].ptr(), *rb = r_in[1].ptr();
    detail::parallel_blocks(n, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const T ua = zplus ? std::max(a[i], T(0)) : a[i], ub = zplus ? std::max(b[i], T(0)) : b[i];
        const T s = detail::stabilized_ratio(r[i], zplus ? T(0) + ua + ub : o[i], eps);
        ra[i] = ua * s;
        rb[i] = ub * s;
      }
    });
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    T z = T(0);
    if (zplus) {
      for (const Tensor<T>* u : in) z += std::max(u->data[i], T(0));
    } else {
      z = out.data[i];
    }
    const T s = detail::stabilized_ratio(r[i], z, eps);
    for (size_t k = 0; k < in.size(); ++k) {
      const T u = in[k]->data[i];
      r_in[k].data[i] = (zplus ? std::max(u, T(0)) : u) * s;
    }
  }
}

template class Add<float>;
template class Add<double>;

}  // namespace dtd
