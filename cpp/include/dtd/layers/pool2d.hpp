#pragma once

#include "dtd/layer.hpp"

namespace dtd {

/// Window geometry shared by max and average pooling: kernel, strides, pads, dilations, ceil_mode, auto_pad.
struct PoolGeometry {
  int64_t c = 0, h = 0, w = 0, oh = 0, ow = 0;
  int64_t kh = 1, kw = 1, stride_h = 1, stride_w = 1, dil_h = 1, dil_w = 1;
  int64_t pad_t = 0, pad_l = 0, pad_b = 0, pad_r = 0;

  /// Reads the attributes of `spec` for an input of per-sample shape [C, H, W].
  static PoolGeometry from_spec(const LayerSpec& spec, const Shape& input_shape);
};

/// Max pooling. Relevance: winner-take-all (the first maximum in row-major window order) or proportional.
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

/// Average pooling (count_include_pad either way). Relevance: proportional to the inputs, with the op's divisor.
template <class T>
class AvgPool2d final : public Layer<T> {
 public:
  bool relevance_reads_output() const override { return true; }
  AvgPool2d(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes);
  void forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const override;
  void relevance(const std::vector<const Tensor<T>*>& in, const Tensor<T>& out, const Tensor<T>& r_out,
                 const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in) const override;

 private:
  int64_t divisor(int64_t oy, int64_t ox) const;
  PoolGeometry g_;
  bool count_include_pad_ = false;
};

/// Global average pooling: [C, H, W] -> [C, 1, 1]. Relevance: proportional.
template <class T>
class GlobalAvgPool final : public Layer<T> {
 public:
  bool relevance_reads_output() const override { return true; }
  GlobalAvgPool(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes);
  void forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const override;
  void relevance(const std::vector<const Tensor<T>*>& in, const Tensor<T>& out, const Tensor<T>& r_out,
                 const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in) const override;
};

}  // namespace dtd
