#pragma once

#include "dtd/layer.hpp"

namespace dtd {

/// Window geometry shared by max and average pooling: kernel, strides, pads, dilations, ceil_mode, auto_pad, over
/// 1, 2 or 3 spatial axes, held as three (D, H, W) with unit leading axes for 1-D ([C, L] = [C, 1, 1, L]) and 2-D.
struct PoolGeometry {
  int64_t c = 0, d = 1, h = 0, w = 0, od = 1, oh = 0, ow = 0;
  int64_t kd = 1, kh = 1, kw = 1, stride_d = 1, stride_h = 1, stride_w = 1, dil_d = 1, dil_h = 1, dil_w = 1;
  int64_t pad_f = 0, pad_t = 0, pad_l = 0, pad_k = 0, pad_b = 0, pad_r = 0;  // front/top/left, back/bottom/right
  Shape output_shape;                                                        // per sample, the input's rank

  /// Reads the attributes of `spec` for an input of per-sample shape [C, L], [C, H, W] or [C, D, H, W]; the
  /// "kernel" attribute has one value per spatial axis.
  static PoolGeometry from_spec(const LayerSpec& spec, const Shape& input_shape);
};

/// Max pooling (1-D, 2-D, 3-D). Relevance: winner-take-all (the first maximum in row-major window order) or
/// proportional.
template <class T>
class MaxPool2d final : public Layer<T> {
 public:
  MaxPool2d(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes);
  void forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const override;
  void relevance(const std::vector<const Tensor<T>*>& in, const Tensor<T>& out, const Tensor<T>& r_out,
                 const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in) const override;

 private:
  PoolGeometry g_;
};

/// Average pooling (1-D, 2-D, 3-D; count_include_pad either way). Relevance: proportional to the inputs, with the op's
/// divisor.
template <class T>
class AvgPool2d final : public Layer<T> {
 public:
  bool relevance_reads_output() const override { return true; }
  AvgPool2d(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes);
  void forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const override;
  void relevance(const std::vector<const Tensor<T>*>& in, const Tensor<T>& out, const Tensor<T>& r_out,
                 const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in) const override;

 private:
  int64_t divisor(int64_t oz, int64_t oy, int64_t ox) const;
  PoolGeometry g_;
  bool count_include_pad_ = false;
};

/// Global average pooling: [C, spatial...] -> [C, 1...] (any number of spatial axes). Relevance: proportional.
template <class T>
class GlobalAvgPool final : public Layer<T> {
 public:
  bool relevance_reads_output() const override { return true; }
  GlobalAvgPool(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes);
  void forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const override;
  void relevance(const std::vector<const Tensor<T>*>& in, const Tensor<T>& out, const Tensor<T>& r_out,
                 const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in) const override;
};

/// Global max pooling: [C, spatial...] -> [C, 1...] (any number of spatial axes). Relevance: winner-take-all (the
/// first maximum in row-major order) or proportional, per the RuleSpec's maxpool mode.
template <class T>
class GlobalMaxPool final : public Layer<T> {
 public:
  GlobalMaxPool(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes);
  void forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const override;
  void relevance(const std::vector<const Tensor<T>*>& in, const Tensor<T>& out, const Tensor<T>& r_out,
                 const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in) const override;
};

}  // namespace dtd
