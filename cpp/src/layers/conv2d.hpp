#pragma once

#include <array>
#include <mutex>
#include <vector>

#include "dtd/layer.hpp"

namespace dtd {

/// Convolution (ONNX Conv) over 1, 2 or 3 spatial axes: strides, asymmetric zero padding (or auto_pad), dilations,
/// groups. Computed as im2col + GEMM per group (a 1x1, stride-1, unpadded convolution skips im2col). The geometry is
/// held as three axes (D, H, W), with unit leading axes for 1-D and 2-D: one code path for every rank.
template <class T>
class Conv2d final : public LinearLayer<T> {
 public:
  // weight: [Cout, Cin / group, k...]; bias: [Cout]; input [Cin, spatial...]; output [Cout, out spatial...], with
  // 1, 2 or 3 spatial axes ([C, L], [C, H, W], [C, D, H, W]); the weight's rank is the input's plus one.
  Conv2d(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes);

  void apply(const T* x, int64_t batch, const T* w, T* y) const override;
  void apply_transposed(const T* g, int64_t batch, const T* w, T* x) const override;
  /// apply_transposed with weights(set); where its products have few columns (a deep layer's small output at a
  /// small batch, float with dtd's kernel) W^T comes packed once per weight set (on first use) for the narrow
  /// kernel: the same sums.
  void apply_transposed_set(const T* g, int64_t batch, WeightSet set, T* x) const override;
  void add_bias(const T* b, int64_t batch, T* y) const override;
  int64_t macs() const override { return macs_; }
  /// float with dtd's GEMM kernel (no 1x1 unpadded shortcut, >= 16 output channels per group): the forward and
  /// z+'s denominator w+ (*) x come out of one product with [w; w+] per group (packed once, on first use), sharing
  /// the implicit im2col, bit for bit equal to the two products made apart.
  bool fused_positive(int64_t batch) const override;
  bool apply_with_positive(const T* x, int64_t batch, T* y, T* z) const override;

  /// Winograd F(2x2, 3x3) (Algorithm::winograd): float, 2-D, 3x3 kernel, stride 1, dilation 1, group 1 (any
  /// padding). The transformed weights, 16 / 9 of a weight set each, are made once per weight set on first use and
  /// shared (with the largest |w+| per kernel for the guard): the transposed pass reads the same ones.
  bool winograd_ok() const override;
  /// From kWinogradColumns output tiles (2x2) over the batch: below, each of the 16 products is narrower than one
  /// GEMM tile and the exact path, with its narrow kernel, is faster.
  bool winograd_pays(int64_t batch) const override;
  void winograd_apply(const T* x, int64_t batch, WeightSet set, T* y) const override;
  void winograd_apply_with_positive(const T* x, int64_t batch, T* y, T* z) const override;
  void winograd_guard(const T* x, int64_t batch, T* z, ExactOutputs& exact) const override;
  void winograd_apply_transposed(const T* g, int64_t batch, WeightSet set, T* x,
                                 const ExactOutputs* exact) const override;

 private:
  // im2col / its adjoint for the output positions [p0, p0 + width); rows of col are `ld` apart.
  void im2col(const T* x, int64_t group, T* col, int64_t p0, int64_t width, int64_t ld) const;
  // col2im over the group's channels [c0, c1) only (col then starts at channel c0's rows).
  void col2im(const T* col, int64_t group, T* x, int64_t p0, int64_t width, int64_t ld, int64_t c0 = 0,
              int64_t c1 = -1) const;
  int64_t chunk(int64_t batch) const;
  // x's group g for samples [n0, n0 + nb) from the gradient g_ptr: the gradient gathered [mg, nb * P] (sample-major
  // columns), product(grad, col) writing col [k, nb * P] = W_g^T grad, then each sample's col2im.
  template <class Product>
  void transposed_columns(const T* g_ptr, int64_t n0, int64_t nb, int64_t g, T* x, Product&& product) const;
  // The Winograd transforms of weight set `set` (plain, positive, negative, square): [16][Cout][Cin].
  const float* winograd_weights(WeightSet set) const;
  // The weights packed for dtd's GEMM kernel once, on first use, per group (sgemm_pack_a): [0] w, for the
  // forward; [1] [w; w+], for the forward with z+'s denominator. A copy of w (two of it) in the kernel's panel
  // layout, which the kernel would otherwise build again for every block of output positions (or read in place,
  // one cache line per step of its sum).
  const float* packed_weights(int stacked) const;
  // weights(set)^T per group, packed once on first use (sgemm_pack_a_transposed): the transposed pass's A.
  const float* packed_transposed(WeightSet set) const;
  // The largest w+ of each kernel, [Cout][Cin] (winograd_guard's bound).
  const float* winograd_positive_max() const;

  // An output is recomputed by the direct sum where Winograd's value is at most this times its tile's bound
  // (detail::winograd_tile_bound): there Winograd's relative error could exceed about 1e-5.
  static constexpr float kGuard = 1.0f / 256;
  // Batch x 2x2 output tiles from which Winograd pays (2 threads, Zen 5, explanations at batch 1: VGG-11's 8x8
  // layers, 16 tiles, made it 3x slower than the exact path; VGG-16's 14x14, 49 tiles, 5 % faster by Winograd).
  static constexpr int64_t kWinogradColumns = 32;

  static constexpr int64_t kColTile = 256;        // output positions per tile of the cache-resident forward
  static constexpr int64_t kColTileT = 256;       // output positions per band of the transposed pass, at least
  static constexpr int64_t kBandedOutput = 2048;  // output positions from which the transposed pass runs in bands

  static constexpr int64_t kFoldColumns = 1024;               // GEMM columns worth folding samples for
  static constexpr int64_t kMaxWorkspace = int64_t{1} << 23;  // elements of the folded im2col buffer

  int64_t cin_ = 0, d_ = 1, h_ = 0, w_ = 0, cout_ = 0, od_ = 1, oh_ = 0, ow_ = 0, kd_ = 1, kh_ = 0, kw_ = 0;
  int64_t stride_d_ = 1, stride_h_ = 1, stride_w_ = 1, dil_d_ = 1, dil_h_ = 1, dil_w_ = 1;
  int64_t pad_f_ = 0, pad_t_ = 0, pad_l_ = 0, group_ = 1;
  int64_t macs_ = 0;  // checked in the constructor
  bool pointwise_ = false;
  bool winograd_ = false;
  mutable std::vector<float> winograd_u_[5];  // plain, positive, negative, square; [4]: max w+ per kernel
  mutable std::once_flag winograd_once_[5];
  mutable std::vector<float> packed_[2];
  mutable std::once_flag packed_once_[2];
  mutable std::vector<float> packed_t_[5];  // by WeightSet
  mutable std::once_flag packed_t_once_[5];
};

}  // namespace dtd
