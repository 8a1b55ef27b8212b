#include "dtd/layers/pool2d.hpp"

#include <algorithm>
#include <limits>

#include "../geometry.hpp"
#include "../parallel.hpp"
#include "../stabilizer.hpp"

namespace dtd {

PoolGeometry PoolGeometry::from_spec(const LayerSpec& spec, const Shape& x) {
  DTD_CHECK(x.size() == 3, ModelError, to_string(spec.kind), " layer '", spec.name,
            "': input must be [C, H, W] per sample, got ", to_string(x));
  PoolGeometry g;
  g.c = x[0], g.h = x[1], g.w = x[2];
  auto kernel = spec.ints.find("kernel");
  DTD_CHECK(kernel != spec.ints.end() && kernel->second.size() == 2, ModelError, to_string(spec.kind), " layer '",
            spec.name, "': needs a 2-D kernel");
  g.kh = kernel->second[0], g.kw = kernel->second[1];
  DTD_CHECK(g.kh >= 1 && g.kw >= 1, ModelError, to_string(spec.kind), " layer '", spec.name, "': kernel must be >= 1");
  const auto strides = detail::ints(spec, "strides", 2, {1, 1});
  const auto dil = detail::ints(spec, "dilations", 2, {1, 1});
  const auto pads = detail::ints(spec, "pads", 4, {0, 0, 0, 0});
  DTD_CHECK(dil[0] >= 1 && dil[1] >= 1, ModelError, to_string(spec.kind), " layer '", spec.name,
            "': dilations must be >= 1");
  const bool ceil_mode = detail::int_attr(spec, "ceil_mode", 0) != 0;
  const int64_t auto_pad = detail::int_attr(spec, "auto_pad", kNotSet);
  g.stride_h = strides[0], g.stride_w = strides[1], g.dil_h = dil[0], g.dil_w = dil[1];
  detail::Axis ay{g.h, (g.kh - 1) * g.dil_h + 1, g.stride_h, pads[0], pads[2]};
  detail::Axis ax{g.w, (g.kw - 1) * g.dil_w + 1, g.stride_w, pads[1], pads[3]};
  g.oh = ay.resolve(spec, auto_pad, ceil_mode);
  g.ow = ax.resolve(spec, auto_pad, ceil_mode);
  g.pad_t = ay.pad_begin, g.pad_b = ay.pad_end, g.pad_l = ax.pad_begin, g.pad_r = ax.pad_end;
  return g;
}

namespace {

// Calls f(input offset within the channel) for every in-bounds tap of output (oy, ox), in row-major order.
template <class F>
inline void for_each_tap(const PoolGeometry& g, int64_t oy, int64_t ox, F&& f) {
  for (int64_t ki = 0; ki < g.kh; ++ki) {
    const int64_t iy = oy * g.stride_h - g.pad_t + ki * g.dil_h;
    if (iy < 0 || iy >= g.h) continue;
    for (int64_t kj = 0; kj < g.kw; ++kj) {
      const int64_t ix = ox * g.stride_w - g.pad_l + kj * g.dil_w;
      if (ix < 0 || ix >= g.w) continue;
      f(iy * g.w + ix);
    }
  }
}

}  // namespace

// ---- max pooling ----

template <class T>
MaxPool2d<T>::MaxPool2d(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes)
    : Layer<T>(spec.name, spec.kind, std::move(inputs), std::move(input_shapes)) {
  g_ = PoolGeometry::from_spec(spec, this->input_shapes()[0]);
  this->output_shape_ = {g_.c, g_.oh, g_.ow};
}

template <class T>
void MaxPool2d<T>::forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const {
  const int64_t planes = in[0]->batch() * g_.c, hw = g_.h * g_.w, ohw = g_.oh * g_.ow;
  detail::parallel_for(
      planes,
      [&](int64_t pl) {
        const T* x = in[0]->ptr() + pl * hw;
        T* y = out.ptr() + pl * ohw;
        for (int64_t oy = 0; oy < g_.oh; ++oy)
          for (int64_t ox = 0; ox < g_.ow; ++ox) {
            T best = -std::numeric_limits<T>::infinity();
            for_each_tap(g_, oy, ox, [&](int64_t i) { best = std::max(best, x[i]); });
            y[oy * g_.ow + ox] = best;
          }
      },
      planes * hw >= detail::kParallelWork / 8);
}

template <class T>
void MaxPool2d<T>::relevance(const std::vector<const Tensor<T>*>& in, const Tensor<T>&, const Tensor<T>& r_out,
                             const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in) const {
  const int64_t planes = in[0]->batch() * g_.c, hw = g_.h * g_.w, ohw = g_.oh * g_.ow;
  const T eps = static_cast<T>(rule.eps);
  const bool wta = rule.maxpool == MaxPoolMode::winner_take_all || rule.kind == RuleKind::gradient;
  detail::parallel_for(
      planes,
      [&](int64_t pl) {
        const T* x = in[0]->ptr() + pl * hw;
        const T* r = r_out.ptr() + pl * ohw;
        T* ri = r_in[0].ptr() + pl * hw;
        std::fill(ri, ri + hw, T(0));
        for (int64_t oy = 0; oy < g_.oh; ++oy)
          for (int64_t ox = 0; ox < g_.ow; ++ox) {
            const T rj = r[oy * g_.ow + ox];
            if (rj == T(0)) continue;
            if (wta) {
              // The first maximum in row-major window order wins ties, as ONNX Runtime and PyTorch pick it.
              int64_t arg = -1;
              T best = T(0);
              for_each_tap(g_, oy, ox, [&](int64_t i) {
                if (arg < 0 || x[i] > best) arg = i, best = x[i];
              });
              if (arg >= 0) ri[arg] += rj;
            } else {
              T z = T(0);
              for_each_tap(g_, oy, ox, [&](int64_t i) { z += x[i]; });
              const T s = detail::stabilized_ratio(rj, z, eps);
              for_each_tap(g_, oy, ox, [&](int64_t i) { ri[i] += x[i] * s; });
            }
          }
      },
      planes * hw >= detail::kParallelWork / 8);
}

// ---- average pooling ----

template <class T>
AvgPool2d<T>::AvgPool2d(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes)
    : Layer<T>(spec.name, spec.kind, std::move(inputs), std::move(input_shapes)) {
  g_ = PoolGeometry::from_spec(spec, this->input_shapes()[0]);
  count_include_pad_ = detail::int_attr(spec, "count_include_pad", 0) != 0;
  this->output_shape_ = {g_.c, g_.oh, g_.ow};
}

// Taps counted by the divisor: in-bounds ones, or with count_include_pad every tap inside the padded input
// (taps beyond the padding, which ceil_mode can create, never count).
template <class T>
int64_t AvgPool2d<T>::divisor(int64_t oy, int64_t ox) const {
  const int64_t lo_y = count_include_pad_ ? -g_.pad_t : 0, hi_y = count_include_pad_ ? g_.h + g_.pad_b : g_.h;
  const int64_t lo_x = count_include_pad_ ? -g_.pad_l : 0, hi_x = count_include_pad_ ? g_.w + g_.pad_r : g_.w;
  int64_t ny = 0, nx = 0;
  for (int64_t ki = 0; ki < g_.kh; ++ki) {
    const int64_t iy = oy * g_.stride_h - g_.pad_t + ki * g_.dil_h;
    ny += (iy >= lo_y && iy < hi_y);
  }
  for (int64_t kj = 0; kj < g_.kw; ++kj) {
    const int64_t ix = ox * g_.stride_w - g_.pad_l + kj * g_.dil_w;
    nx += (ix >= lo_x && ix < hi_x);
  }
  return std::max<int64_t>(ny * nx, 1);
}

template <class T>
void AvgPool2d<T>::forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const {
  const int64_t planes = in[0]->batch() * g_.c, hw = g_.h * g_.w, ohw = g_.oh * g_.ow;
  detail::parallel_for(
      planes,
      [&](int64_t pl) {
        const T* x = in[0]->ptr() + pl * hw;
        T* y = out.ptr() + pl * ohw;
        for (int64_t oy = 0; oy < g_.oh; ++oy)
          for (int64_t ox = 0; ox < g_.ow; ++ox) {
            T sum = T(0);
            for_each_tap(g_, oy, ox, [&](int64_t i) { sum += x[i]; });
            y[oy * g_.ow + ox] = sum / static_cast<T>(divisor(oy, ox));
          }
      },
      planes * hw >= detail::kParallelWork / 8);
}

// R_i = sum_j (a_i / k_j) R_j / stab(z_j), z_j the pooled value.
template <class T>
void AvgPool2d<T>::relevance(const std::vector<const Tensor<T>*>& in, const Tensor<T>& out, const Tensor<T>& r_out,
                             const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in) const {
  const int64_t planes = in[0]->batch() * g_.c, hw = g_.h * g_.w, ohw = g_.oh * g_.ow;
  const T eps = static_cast<T>(rule.eps);
  const bool gradient = rule.kind == RuleKind::gradient;
  detail::parallel_for(
      planes,
      [&](int64_t pl) {
        const T* x = in[0]->ptr() + pl * hw;
        const T* z = out.ptr() + pl * ohw;
        const T* r = r_out.ptr() + pl * ohw;
        T* ri = r_in[0].ptr() + pl * hw;
        std::fill(ri, ri + hw, T(0));
        for (int64_t oy = 0; oy < g_.oh; ++oy)
          for (int64_t ox = 0; ox < g_.ow; ++ox) {
            const int64_t j = oy * g_.ow + ox;
            if (gradient) {
              const T g = r[j] / static_cast<T>(divisor(oy, ox));
              for_each_tap(g_, oy, ox, [&](int64_t i) { ri[i] += g; });
              continue;
            }
            const T s = detail::stabilized_ratio(r[j], z[j], eps) / static_cast<T>(divisor(oy, ox));
            if (s == T(0)) continue;
            for_each_tap(g_, oy, ox, [&](int64_t i) { ri[i] += x[i] * s; });
          }
      },
      planes * hw >= detail::kParallelWork / 8);
}

// ---- global average pooling ----

template <class T>
GlobalAvgPool<T>::GlobalAvgPool(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes)
    : Layer<T>(spec.name, spec.kind, std::move(inputs), std::move(input_shapes)) {
  const Shape& x = this->input_shapes()[0];
  DTD_CHECK(x.size() >= 2, ModelError, "globalavgpool layer '", spec.name,
            "': input must be [C, spatial...] per sample, got ", to_string(x));
  this->output_shape_ = Shape(x.size(), 1);
  this->output_shape_[0] = x[0];
}

template <class T>
void GlobalAvgPool<T>::forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const {
  const int64_t planes = out.size(), hw = in[0]->size() / std::max<int64_t>(planes, 1);
  for (int64_t pl = 0; pl < planes; ++pl) {
    const T* x = in[0]->ptr() + pl * hw;
    T sum = T(0);
    for (int64_t i = 0; i < hw; ++i) sum += x[i];
    out.ptr()[pl] = sum / static_cast<T>(hw);
  }
}

template <class T>
void GlobalAvgPool<T>::relevance(const std::vector<const Tensor<T>*>& in, const Tensor<T>& out, const Tensor<T>& r_out,
                                 const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in) const {
  const int64_t planes = out.size(), hw = in[0]->size() / std::max<int64_t>(planes, 1);
  const T eps = static_cast<T>(rule.eps);
  for (int64_t pl = 0; pl < planes; ++pl) {
    const T* x = in[0]->ptr() + pl * hw;
    T* ri = r_in[0].ptr() + pl * hw;
    if (rule.kind == RuleKind::gradient) {
      std::fill(ri, ri + hw, r_out.ptr()[pl] / static_cast<T>(hw));
      continue;
    }
    const T s = detail::stabilized_ratio(r_out.ptr()[pl], out.ptr()[pl], eps) / static_cast<T>(hw);
    for (int64_t i = 0; i < hw; ++i) ri[i] = x[i] * s;
  }
}

template class MaxPool2d<float>;
template class MaxPool2d<double>;
template class AvgPool2d<float>;
template class AvgPool2d<double>;
template class GlobalAvgPool<float>;
template class GlobalAvgPool<double>;

}  // namespace dtd
