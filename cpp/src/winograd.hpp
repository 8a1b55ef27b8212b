// Winograd F(2x2, 3x3) for stride-1, undilated 3x3 correlations in float (private; Lavin & Gray, "Fast Algorithms
// for Convolutional Neural Networks", CVPR 2016). Each 2x2 output tile is A^T [sum_c (G k G^T) . (B^T d B)] A with d
// the 4x4 input tile: 16 products [M, C] x [C, tiles] (one per point xi of the transformed tile) instead of the
// 9 C M multiply-adds per output of the direct sum, 2.25x fewer. Every output is computed from its own tile with
// sums in an order fixed by the shapes (dtd's kernel's), so results depend neither on the thread count nor on the
// other samples of the batch. Never F(4x4, 3x3): its larger transform constants lose too much in float32.
#pragma once

#include <cstdint>

namespace dtd::detail {

/// u[xi][m][c] = (G k[m, c] G^T)[xi] for k [M, C, 3, 3] (xi = 4 * row + column of the 4x4 transformed tile).
void winograd_transform_kernels(const float* k, int64_t m, int64_t c, float* u);

/// The geometry of one correlation: out[n, m, oy, ox] = sum_c sum_{ky, kx < 3} in[n, c, oy - pad_t + ky,
/// ox - pad_l + kx] * k[m, c, ky, kx], reading 0 outside the input (a pad may be negative: an offset into it).
struct WinogradShape {
  int64_t c, h, w;    // input channels and plane
  int64_t m, oh, ow;  // output channels and plane
  int64_t pad_t, pad_l;
};

/// The correlation above for `batch` samples with the kernels transformed by winograd_transform_kernels:
/// `transposed` false: u is [16][M][C] (the kernels k themselves); true: u is a forward's [16][C][M] and the
/// correlation uses its rotated, channel-swapped kernels k'[m, c] = k[c, m] rotated by 180 degrees (the transposed
/// pass of a stride-1 convolution), whose transforms are the forward's, transposed, at mirrored points.
/// With u2 (same layout) also out2 = the correlation with those kernels, from the same input transform.
void winograd_correlate(const WinogradShape& s, int64_t batch, const float* in, const float* u, bool transposed,
                        float* out, const float* u2 = nullptr, float* out2 = nullptr);

/// Per output channel m and 2x2 output tile t: sum_c kmax[m, c] * (sum of |in| over t's 4x4 input tile), with kmax
/// [M, C] (the largest |k| of each 3x3 kernel): a bound on every output of the tile and the scale of Winograd's
/// rounding error there. bound is [batch, M, tiles], tiles = ceil(OH / 2) * ceil(OW / 2) row-major.
void winograd_tile_bound(const WinogradShape& s, int64_t batch, const float* in, const float* kmax, float* bound);

}  // namespace dtd::detail
