#include "affine.hpp"

#include <algorithm>
#include <cmath>

#include "../checked.hpp"
#include "../parallel.hpp"
#include "../stabilizer.hpp"
#include "dtd/error.hpp"

namespace dtd {

namespace {

/// The weight `key` aligned right against the per-sample shape `x` (NumPy broadcasting), as a shape of x's rank;
/// throws unless every entry is 1 or x's extent (broadcasting must not change the shape).
Shape aligned(const LayerSpec& spec, const std::string& key, const Shape& x) {
  auto it = spec.weights.find(key);
  DTD_CHECK(it != spec.weights.end(), ModelError, "affine layer '", spec.name, "': missing weight '", key, "'");
  const Array& a = it->second;
  DTD_CHECK(static_cast<int64_t>(a.data.size()) == numel(a.shape), ModelError, "affine layer '", spec.name, "': ", key,
            " holds ", a.data.size(), " values for shape ", to_string(a.shape));
  Shape s = a.shape;
  while (s.size() > x.size() && s.front() == 1) s.erase(s.begin());
  bool ok = s.size() <= x.size();
  if (ok) s.insert(s.begin(), x.size() - s.size(), 1);
  for (size_t i = 0; ok && i < s.size(); ++i) ok = s[i] == 1 || s[i] == x[i];
  DTD_CHECK(ok, ModelError, "affine layer '", spec.name, "': ", key, " of shape ", to_string(a.shape),
            " does not broadcast to the input shape ", to_string(x), " without changing it");
  return s;
}

}  // namespace

template <class T>
Affine<T>::Affine(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes)
    : Layer<T>(spec.name, spec.kind, std::move(inputs), std::move(input_shapes)) {
  const Shape& x = this->input_shapes()[0];
  detail::checked_numel(x, detail::where(spec, "input shape"));  // bounds outer * mid * inner and the strides
  for (auto& [key, _] : spec.weights)
    DTD_CHECK(key == "scale" || key == "shift", ModelError, "affine layer '", spec.name, "': unknown weight '", key,
              "'");
  const Shape s = aligned(spec, "scale", x), t = aligned(spec, "shift", x);
  // The smallest block of consecutive axes [lo, hi) outside which neither constant varies.
  size_t lo = x.size(), hi = 0;
  for (size_t i = 0; i < x.size(); ++i)
    if ((s[i] != 1 || t[i] != 1) && x[i] != 1) lo = std::min(lo, i), hi = i + 1;
  if (lo >= hi) lo = hi = 0;
  for (size_t i = 0; i < x.size(); ++i) (i < lo ? outer_ : i < hi ? mid_ : inner_) *= x[i];
  // Expand both constants over the block (row-major index within it).
  auto expand = [&](const std::string& key, const Shape& shape) {
    const std::vector<double>& src = spec.weights.at(key).data;
    std::vector<T> out(static_cast<size_t>(mid_));
    for (int64_t m = 0; m < mid_; ++m) {
      int64_t rest = m, offset = 0, stride = 1;
      for (size_t i = hi; i-- > lo;) {
        const int64_t coord = rest % x[i];
        rest /= x[i];
        if (shape[i] != 1) offset += coord * stride;
        stride *= shape[i];
      }
      // Axes outside the block have extent 1 in `shape` (or in x), so the offset within src is complete.
      out[static_cast<size_t>(m)] = static_cast<T>(src[static_cast<size_t>(offset)]);
      DTD_CHECK(std::isfinite(out[static_cast<size_t>(m)]), ModelError, "affine layer '", spec.name, "': non-finite ",
                key);
    }
    return out;
  };
  scale_ = expand("scale", s);
  shift_ = expand("shift", t);
  this->output_shape_ = x;
}

template <class T>
void Affine<T>::forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const {
  const T* x = in[0]->ptr();
  T* y = out.ptr();
  const int64_t rows = in[0]->batch() * outer_;
  const int64_t row = mid_ * inner_;
  detail::parallel_for(
      rows,
      [&](int64_t r) {
        for (int64_t m = 0; m < mid_; ++m) {
          const T s = scale_[static_cast<size_t>(m)], t = shift_[static_cast<size_t>(m)];
          const int64_t base = r * row + m * inner_;
          for (int64_t i = 0; i < inner_; ++i) y[base + i] = s * x[base + i] + t;
        }
      },
      rows * row >= detail::kParallelWork);
}

template <class T>
void Affine<T>::relevance(const std::vector<const Tensor<T>*>& in, const Tensor<T>&, const Tensor<T>& r_out,
                          const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in) const {
  const T* r = r_out.ptr();
  T* ri = r_in[0].ptr();
  const int64_t rows = r_out.batch() * outer_;
  const int64_t row = mid_ * inner_;
  const bool gradient = rule.kind == RuleKind::gradient;
  const bool epsilon = rule.kind == RuleKind::epsilon;
  const T eps = static_cast<T>(rule.eps);
  const T* x = epsilon ? in[0]->ptr() : nullptr;
  detail::parallel_for(
      rows,
      [&](int64_t q) {
        for (int64_t m = 0; m < mid_; ++m) {
          const T s = scale_[static_cast<size_t>(m)], t = shift_[static_cast<size_t>(m)];
          const int64_t base = q * row + m * inner_;
          for (int64_t i = 0; i < inner_; ++i) {
            const int64_t k = base + i;
            if (gradient) {
              ri[k] = s * r[k];
            } else if (epsilon) {
              const T z = s * x[k];
              ri[k] = z * detail::stabilized_ratio(r[k], z + t, eps);
            } else {
              ri[k] = r[k];
            }
          }
        }
      },
      rows * row >= detail::kParallelWork);
}

template class Affine<float>;
template class Affine<double>;

}  // namespace dtd
