#include "activation.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "../checked.hpp"
#include "../parallel.hpp"
#include "dtd/error.hpp"

namespace dtd {

namespace {

const char* op_name(int64_t op) {
  switch (op) {
    case kClip: return "clip";
    case kLeakyRelu: return "leaky_relu";
    case kPRelu: return "prelu";
    case kElu: return "elu";
    case kSelu: return "selu";
    case kSigmoid: return "sigmoid";
    case kTanh: return "tanh";
    case kHardSigmoid: return "hard_sigmoid";
    case kHardSwish: return "hard_swish";
    case kSoftplus: return "softplus";
    case kGelu: return "gelu";
    case kGeluTanh: return "gelu_tanh";
    case kSilu: return "silu";
    default: return nullptr;
  }
}

/// The float attributes each op reads, with their ONNX defaults (float32 values, as ONNX attributes are).
struct Param {
  const char* key;
  double fallback;
};
std::vector<Param> params_of(int64_t op) {
  const double inf = std::numeric_limits<double>::infinity();
  switch (op) {
    case kClip: return {{"min", -inf}, {"max", inf}};
    case kLeakyRelu: return {{"alpha", double{0.01f}}};
    case kElu: return {{"alpha", 1.0}};
    case kSelu: return {{"alpha", 1.67326319217681884765625}, {"gamma", 1.05070102214813232421875}};
    case kHardSigmoid: return {{"alpha", double{0.2f}}, {"beta", 0.5}};
    default: return {};
  }
}

template <class T>
T sigmoid(T x) {
  // Never exp of a large positive argument: exact in both tails.
  if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
  const T e = std::exp(x);
  return e / (T(1) + e);
}

template <class T>
T softplus(T x) {
  return std::max(x, T(0)) + std::log1p(std::exp(-std::abs(x)));
}

constexpr double kSqrtHalf = 0.70710678118654752440;     // 1 / sqrt(2)
constexpr double kInvSqrt2Pi = 0.39894228040143267794;   // 1 / sqrt(2 pi)
constexpr double kSqrt2OverPi = 0.79788456080286535588;  // sqrt(2 / pi)
constexpr double kGeluCubic = 0.044715;

}  // namespace

template <class T>
Activation<T>::Activation(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes)
    : Layer<T>(spec.name, spec.kind, std::move(inputs), std::move(input_shapes)) {
  const Shape& shape = this->input_shapes()[0];
  this->output_shape_ = shape;
  auto op = spec.ints.find("op");
  DTD_CHECK(op != spec.ints.end() && op->second.size() == 1 && op_name(op->second[0]), ModelError, "activation layer '",
            spec.name, "': attribute 'op' must hold one ActivationOp code (0..", kSilu, ")");
  op_ = static_cast<ActivationOp>(op->second[0]);
  const std::vector<Param> params = params_of(op_);
  std::set<std::string> known;
  for (const Param& p : params) known.insert(p.key);
  for (const auto& [key, value] : spec.floats) {
    DTD_CHECK(known.count(key), ModelError, "activation layer '", spec.name, "' (", op_name(op_),
              "): unknown attribute '", key, "'");
    DTD_CHECK(!std::isnan(value) && (std::isfinite(value) || key == "min" || key == "max"), ModelError,
              "activation layer '", spec.name, "' (", op_name(op_), "): attribute '", key, "' is ", value);
  }
  auto get = [&](const char* key, double fallback) {
    auto it = spec.floats.find(key);
    return static_cast<T>(it == spec.floats.end() ? fallback : it->second);
  };
  for (const Param& p : params) {
    const T v = get(p.key, p.fallback);
    const std::string key = p.key;
    (key == "alpha" ? alpha_ : key == "beta" ? beta_ : key == "gamma" ? gamma_ : key == "min" ? min_ : max_) = v;
  }
  // Clip with min > max gives max everywhere, as ONNX defines it (min(max(x, min), max)).

  for (const auto& [key, _] : spec.weights)
    DTD_CHECK(op_ == kPRelu && key == "slope", ModelError, "activation layer '", spec.name, "' (", op_name(op_),
              "): unknown weight '", key, "'");
  if (op_ != kPRelu) return;
  auto w = spec.weights.find("slope");
  DTD_CHECK(w != spec.weights.end(), ModelError, "activation layer '", spec.name, "' (prelu): missing weight 'slope'");
  const Shape& ss = w->second.shape;
  DTD_CHECK(numel(ss) == static_cast<int64_t>(w->second.data.size()), ModelError, "activation layer '", spec.name,
            "' (prelu): slope holds ", w->second.data.size(), " values for shape ", to_string(ss));
  bool fits = ss.size() <= shape.size();
  for (size_t k = 0; fits && k < ss.size(); ++k) {
    const int64_t d = shape[shape.size() - ss.size() + k];
    fits = ss[k] == 1 || ss[k] == d;
  }
  DTD_CHECK(fits, ModelError, "activation layer '", spec.name, "' (prelu): slope of shape ", to_string(ss),
            " does not broadcast against the input shape ", to_string(shape));
  for (double v : w->second.data)
    DTD_CHECK(std::isfinite(v), ModelError, "activation layer '", spec.name, "' (prelu): non-finite slope");
  slope_count_ = numel(ss);
  // Expand to the input shape once: element i of a sample uses slope_[i].
  const int64_t size = detail::checked_numel(shape, detail::where(spec, "input shape"));
  slope_.resize(static_cast<size_t>(size));
  const size_t lead = shape.size() - ss.size();
  for (int64_t i = 0; i < size; ++i) {
    int64_t rem = i, src = 0, stride = 1;
    for (size_t k = shape.size(); k-- > 0;) {
      const int64_t coord = rem % shape[k];
      rem /= shape[k];
      if (k >= lead) {
        const int64_t sd = ss[k - lead];
        if (sd != 1) src += coord * stride;
        stride *= sd;
      }
    }
    slope_[static_cast<size_t>(i)] = static_cast<T>(w->second.data[static_cast<size_t>(src)]);
  }
}

template <class T>
void Activation<T>::forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const {
  const T* x = in[0]->ptr();
  T* y = out.ptr();
  const int64_t per = in[0]->sample_size();
  const T a = alpha_, b = beta_, g = gamma_, lo = min_, hi = max_;
  const T* slope = slope_.data();
  auto each = [&](auto f) {
    detail::parallel_blocks(out.size(), [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) y[i] = f(x[i], i);
    });
  };
  switch (op_) {
    case kClip: each([&](T v, int64_t) { return std::min(std::max(v, lo), hi); }); break;
    case kLeakyRelu: each([&](T v, int64_t) { return v < T(0) ? a * v : v; }); break;
    case kPRelu: each([&](T v, int64_t i) { return v < T(0) ? slope[i % per] * v : v; }); break;
    case kElu: each([&](T v, int64_t) { return v < T(0) ? a * std::expm1(v) : v; }); break;
    case kSelu: each([&](T v, int64_t) { return v > T(0) ? g * v : g * a * std::expm1(v); }); break;
    case kSigmoid: each([](T v, int64_t) { return sigmoid(v); }); break;
    case kTanh: each([](T v, int64_t) { return std::tanh(v); }); break;
    case kHardSigmoid: each([&](T v, int64_t) { return std::min(std::max(a * v + b, T(0)), T(1)); }); break;
    case kHardSwish: each([](T v, int64_t) { return v * std::min(std::max(v / T(6) + T(0.5), T(0)), T(1)); }); break;
    case kSoftplus: each([](T v, int64_t) { return softplus(v); }); break;
    case kGelu: each([](T v, int64_t) { return T(0.5) * v * (T(1) + std::erf(v * T(kSqrtHalf))); }); break;
    case kGeluTanh:
      each([](T v, int64_t) {
        return T(0.5) * v * (T(1) + std::tanh(T(kSqrt2OverPi) * (v + T(kGeluCubic) * v * v * v)));
      });
      break;
    case kSilu: each([](T v, int64_t) { return v * sigmoid(v); }); break;
  }
}

// DTD/LRP: R_in = R_out (the network normally hands the buffer on without calling this; it does call it when the
// input already holds relevance from another consumer). Gradient rule: R_in = f'(x) R_out.
template <class T>
void Activation<T>::relevance(const std::vector<const Tensor<T>*>& in, const Tensor<T>&, const Tensor<T>& r_out,
                              const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in) const {
  const T* r = r_out.ptr();
  T* dst = r_in[0].ptr();
  const int64_t n = r_out.size();
  if (rule.kind != RuleKind::gradient) {
    std::copy(r, r + n, dst);
    return;
  }
  const T* x = in[0]->ptr();
  const int64_t per = r_out.sample_size();
  const T a = alpha_, b = beta_, g = gamma_, lo = min_, hi = max_;
  const T* slope = slope_.data();
  auto each = [&](auto df) {
    detail::parallel_blocks(n, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) dst[i] = df(x[i], i) * r[i];
    });
  };
  switch (op_) {
    case kClip: each([&](T v, int64_t) { return v > lo && v < hi ? T(1) : T(0); }); break;
    case kLeakyRelu: each([&](T v, int64_t) { return v < T(0) ? a : T(1); }); break;
    case kPRelu: each([&](T v, int64_t i) { return v < T(0) ? slope[i % per] : T(1); }); break;
    case kElu: each([&](T v, int64_t) { return v < T(0) ? a * std::exp(v) : T(1); }); break;
    case kSelu: each([&](T v, int64_t) { return v > T(0) ? g : g * a * std::exp(v); }); break;
    case kSigmoid:
      each([](T v, int64_t) {
        const T s = sigmoid(v);
        return s * (T(1) - s);
      });
      break;
    case kTanh:
      each([](T v, int64_t) {
        const T t = std::tanh(v);
        return T(1) - t * t;
      });
      break;
    case kHardSigmoid:
      each([&](T v, int64_t) {
        const T u = a * v + b;
        return u > T(0) && u < T(1) ? a : T(0);
      });
      break;
    case kHardSwish:
      each([](T v, int64_t) {
        const T u = v / T(6) + T(0.5);
        if (u <= T(0)) return T(0);
        if (u >= T(1)) return T(1);
        return u + v / T(6);
      });
      break;
    case kSoftplus: each([](T v, int64_t) { return sigmoid(v); }); break;
    case kGelu:
      each([](T v, int64_t) {
        return T(0.5) * (T(1) + std::erf(v * T(kSqrtHalf))) + v * T(kInvSqrt2Pi) * std::exp(T(-0.5) * v * v);
      });
      break;
    case kGeluTanh:
      each([](T v, int64_t) {
        const T t = std::tanh(T(kSqrt2OverPi) * (v + T(kGeluCubic) * v * v * v));
        return T(0.5) * (T(1) + t) + T(0.5) * v * (T(1) - t * t) * T(kSqrt2OverPi) * (T(1) + T(3 * kGeluCubic) * v * v);
      });
      break;
    case kSilu:
      each([](T v, int64_t) {
        const T s = sigmoid(v);
        return s * (T(1) + v * (T(1) - s));
      });
      break;
  }
}

template class Activation<float>;
template class Activation<double>;

}  // namespace dtd
