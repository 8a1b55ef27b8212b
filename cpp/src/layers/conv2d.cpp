#include "dtd/layers/conv2d.hpp"

#include <algorithm>
#include <cstring>

#include "../eigen_maps.hpp"
#include "../geometry.hpp"

namespace dtd {

template <class T>
Conv2d<T>::Conv2d(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes)
    : LinearLayer<T>(spec, std::move(inputs), std::move(input_shapes)) {
  const Shape& x = this->input_shapes()[0];
  DTD_CHECK(x.size() == 3, ModelError, "conv layer '", spec.name, "': input must be [C, H, W] per sample, got ",
            to_string(x));
  cin_ = x[0], h_ = x[1], w_ = x[2];
  auto wt = spec.weights.find("weight");
  DTD_CHECK(wt != spec.weights.end() && wt->second.shape.size() == 4, ModelError, "conv layer '", spec.name,
            "': weight must be [Cout, Cin/group, kh, kw]");
  const Shape& ws = wt->second.shape;
  cout_ = ws[0], kh_ = ws[2], kw_ = ws[3];
  group_ = detail::int_attr(spec, "group", 1);
  DTD_CHECK(group_ >= 1 && cin_ % group_ == 0 && cout_ % group_ == 0, ModelError, "conv layer '", spec.name,
            "': group ", group_, " does not divide input channels ", cin_, " and output channels ", cout_);
  DTD_CHECK(ws[1] == cin_ / group_, ModelError, "conv layer '", spec.name, "': weight has shape ", to_string(ws),
            " but the input has ", cin_, " channels and group = ", group_, " (expected ", cin_ / group_,
            " input channels per group)");
  const auto strides = detail::ints(spec, "strides", 2, {1, 1});
  const auto dil = detail::ints(spec, "dilations", 2, {1, 1});
  const auto pads = detail::ints(spec, "pads", 4, {0, 0, 0, 0});
  const int64_t auto_pad = detail::int_attr(spec, "auto_pad", kNotSet);
  DTD_CHECK(dil[0] >= 1 && dil[1] >= 1, ModelError, "conv layer '", spec.name, "': dilations must be >= 1");
  stride_h_ = strides[0], stride_w_ = strides[1], dil_h_ = dil[0], dil_w_ = dil[1];
  detail::Axis ay{h_, (kh_ - 1) * dil_h_ + 1, stride_h_, pads[0], pads[2]};
  detail::Axis ax{w_, (kw_ - 1) * dil_w_ + 1, stride_w_, pads[1], pads[3]};
  oh_ = ay.resolve(spec, auto_pad, false);
  ow_ = ax.resolve(spec, auto_pad, false);
  pad_t_ = ay.pad_begin, pad_l_ = ax.pad_begin;
  pointwise_ =
      kh_ == 1 && kw_ == 1 && stride_h_ == 1 && stride_w_ == 1 && pad_t_ == 0 && pad_l_ == 0 && oh_ == h_ && ow_ == w_;
  this->load_weights(spec, ws, cout_);
  this->output_shape_ = {cout_, oh_, ow_};
}

// col[(c, ki, kj), (oy, ox)] = x[group * cin_g + c, oy * sh - pt + ki * dh, ox * sw - pl + kj * dw] (0 outside).
template <class T>
void Conv2d<T>::im2col(const T* x, int64_t group, T* col) const {
  const int64_t cg = cin_ / group_, p = oh_ * ow_;
  detail::parallel_for(
      cg * kh_,
      [&](int64_t ck) {
        const int64_t c = ck / kh_, ki = ck % kh_;
        const T* xc = x + (group * cg + c) * h_ * w_;
        for (int64_t kj = 0; kj < kw_; ++kj) {
          T* row = col + ((c * kh_ + ki) * kw_ + kj) * p;
          for (int64_t oy = 0; oy < oh_; ++oy) {
            const int64_t iy = oy * stride_h_ - pad_t_ + ki * dil_h_;
            T* dst = row + oy * ow_;
            if (iy < 0 || iy >= h_) {
              std::fill(dst, dst + ow_, T(0));
              continue;
            }
            const T* src = xc + iy * w_;
            const int64_t off = kj * dil_w_ - pad_l_;
            for (int64_t ox = 0; ox < ow_; ++ox) {
              const int64_t ix = ox * stride_w_ + off;
              dst[ox] = (ix >= 0 && ix < w_) ? src[ix] : T(0);
            }
          }
        }
      },
      cg * kh_ * kw_ * p >= 4096);
}

// The adjoint of im2col: x[...] += col[...]. Each task owns one input channel, so there are no races and the
// summation order is fixed.
template <class T>
void Conv2d<T>::col2im(const T* col, int64_t group, T* x) const {
  const int64_t cg = cin_ / group_, p = oh_ * ow_;
  detail::parallel_for(
      cg,
      [&](int64_t c) {
        T* xc = x + (group * cg + c) * h_ * w_;
        for (int64_t ki = 0; ki < kh_; ++ki)
          for (int64_t kj = 0; kj < kw_; ++kj) {
            const T* row = col + ((c * kh_ + ki) * kw_ + kj) * p;
            for (int64_t oy = 0; oy < oh_; ++oy) {
              const int64_t iy = oy * stride_h_ - pad_t_ + ki * dil_h_;
              if (iy < 0 || iy >= h_) continue;
              T* dst = xc + iy * w_;
              const T* src = row + oy * ow_;
              const int64_t off = kj * dil_w_ - pad_l_;
              for (int64_t ox = 0; ox < ow_; ++ox) {
                const int64_t ix = ox * stride_w_ + off;
                if (ix >= 0 && ix < w_) dst[ix] += src[ox];
              }
            }
          }
      },
      cg * kh_ * kw_ * p >= 4096);
}

template <class T>
void Conv2d<T>::apply(const T* x, int64_t batch, const T* w, T* y) const {
  const int64_t cg = cin_ / group_, mg = cout_ / group_, k = cg * kh_ * kw_, p = oh_ * ow_;
  for (int64_t n = 0; n < batch; ++n) {
    const T* xn = x + n * cin_ * h_ * w_;
    T* yn = y + n * cout_ * p;
    for (int64_t g = 0; g < group_; ++g) {
      const T* col = xn + g * cg * h_ * w_;
      if (!pointwise_) {
        T* buf = detail::scratch<T, 0>(static_cast<size_t>(k * p));
        im2col(xn, g, buf);
        col = buf;
      }
      detail::gemm(false, false, mg, p, k, w + g * mg * k, col, yn + g * mg * p);
    }
  }
}

template <class T>
void Conv2d<T>::apply_transposed(const T* g_ptr, int64_t batch, const T* w, T* x) const {
  const int64_t cg = cin_ / group_, mg = cout_ / group_, k = cg * kh_ * kw_, p = oh_ * ow_;
  for (int64_t n = 0; n < batch; ++n) {
    const T* gn = g_ptr + n * cout_ * p;
    T* xn = x + n * cin_ * h_ * w_;
    for (int64_t g = 0; g < group_; ++g) {
      if (pointwise_) {
        detail::gemm(true, false, k, p, mg, w + g * mg * k, gn + g * mg * p, xn + g * cg * h_ * w_);
        continue;
      }
      T* buf = detail::scratch<T, 0>(static_cast<size_t>(k * p));
      detail::gemm(true, false, k, p, mg, w + g * mg * k, gn + g * mg * p, buf);
      std::fill(xn + g * cg * h_ * w_, xn + (g + 1) * cg * h_ * w_, T(0));
      col2im(buf, g, xn);
    }
  }
}

template <class T>
void Conv2d<T>::add_bias(const T* b, int64_t batch, T* y) const {
  const int64_t p = oh_ * ow_;
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t c = 0; c < cout_; ++c) {
      T* yc = y + (n * cout_ + c) * p;
      for (int64_t i = 0; i < p; ++i) yc[i] += b[c];
    }
}

template class Conv2d<float>;
template class Conv2d<double>;

}  // namespace dtd
