#include "dtd/layer.hpp"

#include <algorithm>
#include <cmath>

#include "checked.hpp"
#include "dtd/error.hpp"
#include "parallel.hpp"

namespace dtd {

int64_t numel(const Shape& shape) {
  return detail::checked_numel(shape, "shape ", to_string(shape));
}

std::string to_string(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

template <class T>
LinearLayer<T>::LinearLayer(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes)
    : Layer<T>(spec.name, spec.kind, std::move(inputs), std::move(input_shapes)) {}

template <class T>
void LinearLayer<T>::load_weights(const LayerSpec& spec, const Shape& weight_shape, int64_t bias_size) {
  auto w = spec.weights.find("weight");
  DTD_CHECK(w != spec.weights.end(), ModelError, to_string(spec.kind), " layer '", spec.name, "': missing weight");
  DTD_CHECK(w->second.shape == weight_shape, ModelError, to_string(spec.kind), " layer '", spec.name,
            "': weight has shape ", to_string(w->second.shape), ", expected ", to_string(weight_shape));
  DTD_CHECK(static_cast<int64_t>(w->second.data.size()) == numel(weight_shape), ModelError, "layer '", spec.name,
            "': weight holds ", w->second.data.size(), " values for shape ", to_string(weight_shape));
  weight_.assign(w->second.data.begin(), w->second.data.end());
  auto b = spec.weights.find("bias");
  if (b != spec.weights.end()) {
    DTD_CHECK(numel(b->second.shape) == bias_size && b->second.data.size() == static_cast<size_t>(bias_size),
              ModelError, to_string(spec.kind), " layer '", spec.name, "': bias has shape ", to_string(b->second.shape),
              ", expected [", bias_size, "]");
    bias_.assign(b->second.data.begin(), b->second.data.end());
  }
  for (auto& [key, _] : spec.weights)
    DTD_CHECK(key == "weight" || key == "bias", ModelError, "layer '", spec.name, "': unknown weight '", key, "'");
  for (T v : weight_) DTD_CHECK(std::isfinite(v), ModelError, "layer '", spec.name, "': non-finite weight");
  for (T v : bias_) DTD_CHECK(std::isfinite(v), ModelError, "layer '", spec.name, "': non-finite bias");
}

template <class T>
const T* LinearLayer<T>::weights(WeightSet set) const {
  if (set == WeightSet::plain) return weight_.data();
  const int slot = static_cast<int>(set) - 1;
  std::call_once(derived_once_[slot], [&] {
    std::vector<T>& d = derived_[slot];
    d.resize(weight_.size());
    for (size_t i = 0; i < weight_.size(); ++i) {
      const T w = weight_[i];
      switch (set) {
        case WeightSet::positive: d[i] = std::max(w, T(0)); break;
        case WeightSet::negative: d[i] = std::min(w, T(0)); break;
        case WeightSet::square: d[i] = w * w; break;
        default: d[i] = T(1); break;
      }
    }
  });
  return derived_[slot].data();
}

template <class T>
void LinearLayer<T>::forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const {
  const int64_t n = in[0]->batch();
  apply(in[0]->ptr(), n, weight_.data(), out.ptr());
  if (has_bias()) add_bias(bias_.data(), n, out.ptr());
}

template <class T>
bool LinearLayer<T>::keeps_product(const RuleSpec& rule, int64_t batch, WeightSet& set, Algorithm algorithm) const {
  if (rule.kind == RuleKind::zbox || rule.kind == RuleKind::epsilon) {
    set = WeightSet::plain;
    return true;
  }
  const bool winograd = uses_winograd(algorithm, batch);
  if (rule.kind == RuleKind::zplus && (winograd || fused_positive(batch))) {
    set = WeightSet::positive;
    return true;
  }
  return false;
}

template <class T>
void LinearLayer<T>::forward_by(const std::vector<const Tensor<T>*>& in, Tensor<T>& out, Algorithm algorithm) const {
  const int64_t n = in[0]->batch();
  if (!uses_winograd(algorithm, n)) return forward(in, out);
  winograd_apply(in[0]->ptr(), n, WeightSet::plain, out.ptr());
  if (has_bias()) add_bias(bias_.data(), n, out.ptr());
}

template <class T>
bool LinearLayer<T>::forward_keeping(const std::vector<const Tensor<T>*>& in, Tensor<T>& out, WeightSet set,
                                     Tensor<T>& kept, Algorithm algorithm) const {
  const Tensor<T>& a = *in[0];
  const int64_t n = a.batch();
  const bool winograd = uses_winograd(algorithm, n);
  if (set == WeightSet::plain) {
    if (winograd)
      winograd_apply(a.ptr(), n, WeightSet::plain, out.ptr());
    else
      apply(a.ptr(), n, weight_.data(), out.ptr());
    kept = out;  // before the bias
  } else {
    // w+ (*) a is z+'s denominator only for a >= 0 (else z+ needs w- (*) a- too).
    if (detail::any_negative(a.ptr(), a.size())) {
      forward_by(in, out, algorithm);
      return false;
    }
    kept = Tensor<T>::uninitialized(out.shape);
    if (winograd) {
      winograd_apply_with_positive(a.ptr(), n, out.ptr(), kept.ptr());
    } else if (!apply_with_positive(a.ptr(), n, out.ptr(), kept.ptr())) {
      kept = Tensor<T>();
      forward(in, out);
      return false;
    }
  }
  if (has_bias()) add_bias(bias_.data(), n, out.ptr());
  return true;
}

template class LinearLayer<float>;
template class LinearLayer<double>;

}  // namespace dtd
