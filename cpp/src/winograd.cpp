#include "winograd.hpp"

#include <algorithm>
#include <cmath>

#include "eigen_maps.hpp"
#include "gemm.hpp"
#include "parallel.hpp"

namespace dtd::detail {

namespace {

// F(2x2, 3x3): B^T d B (input tile d, 4x4), G k G^T (kernel k, 3x3), A^T m A (product m, 4x4, to 2x2) with
// B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1],
// A^T = [1 1 1 0; 0 1 -1 -1].

// The transform of the rotated kernel k'[y][x] = k[2 - y][2 - x] at point (a, b) is the transform of k at
// (mirror[a], mirror[b]): G J = P G with J the reversal and P swapping rows 0 and 3.
constexpr int kMirror[4] = {3, 1, 2, 0};

// A block of tile columns: about this many bytes of transformed input and products (L2-sized, so that each product
// reads its part of the transformed input, and the output transform its products, from cache), and between these
// many columns, so that the products stay wide enough for the GEMM's 32-column panels.
constexpr int64_t kBlockBytes = int64_t{3} << 20 >> 1;
constexpr int64_t kMinColumns = 128, kMaxColumns = 512;

}  // namespace

void winograd_transform_kernels(const float* k, int64_t m, int64_t c, float* u) {
  parallel_for(m, [&](int64_t o) {
    for (int64_t i = 0; i < c; ++i) {
      const float* g = k + (o * c + i) * 9;
      float t[4][3];  // G g
      for (int j = 0; j < 3; ++j) {
        t[0][j] = g[j];
        t[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
        t[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
        t[3][j] = g[6 + j];
      }
      for (int a = 0; a < 4; ++a) {  // (G g) G^T
        const float r[4] = {t[a][0], 0.5f * (t[a][0] + t[a][1] + t[a][2]), 0.5f * (t[a][0] - t[a][1] + t[a][2]),
                            t[a][2]};
        for (int b = 0; b < 4; ++b) u[((4 * a + b) * m + o) * c + i] = r[b];
      }
    }
  });
}

namespace {

// The four input rows y0 .. y0 + 3 of a tile row, columns [x0, x0 + len), zero outside the plane (h x w): rows[i]
// at rows + i * len.
void load_rows(const float* x, int64_t h, int64_t w, int64_t y0, int64_t x0, int64_t len, float* rows) {
  const int64_t lo = std::clamp<int64_t>(-x0, 0, len), hi = std::clamp<int64_t>(w - x0, lo, len);
  for (int i = 0; i < 4; ++i) {
    float* r = rows + i * len;
    const int64_t yy = y0 + i;
    if (yy < 0 || yy >= h) {
      std::fill(r, r + len, 0.0f);
      continue;
    }
    std::fill(r, r + lo, 0.0f);
    std::copy(x + yy * w + x0 + lo, x + yy * w + x0 + hi, r + lo);
    std::fill(r + hi, r + len, 0.0f);
  }
}

// The transform of every tile of one tile row (tiles [0, tw) of channel plane x, h x w, whose input rows start at
// y0 and columns at x0) at the 16 points: v[xi * stride + t] for tile t. t = B^T d first (combinations of the
// four rows, contiguous along x), then t B (every other column): for each tile the same sums in the same order as
// the 4x4 formula above, vectorised across the tiles.
void input_transform_row(const float* x, int64_t h, int64_t w, int64_t tw, int64_t y0, int64_t x0, float* v,
                         int64_t stride) {
  const int64_t len = 2 * tw + 2;  // the columns [x0, x0 + len) the tile row reads
  float* rows = scratch<float, 11>(static_cast<size_t>(8 * len));
  float* t = rows + 4 * len;
  load_rows(x, h, w, y0, x0, len, rows);
  const float *d0 = rows, *d1 = rows + len, *d2 = rows + 2 * len, *d3 = rows + 3 * len;
  float *t0 = t, *t1 = t + len, *t2 = t + 2 * len, *t3 = t + 3 * len;
  for (int64_t j = 0; j < len; ++j) {
    t0[j] = d0[j] - d2[j];
    t1[j] = d1[j] + d2[j];
    t2[j] = d2[j] - d1[j];
    t3[j] = d1[j] - d3[j];
  }
  for (int i = 0; i < 4; ++i) {
    const float* ti = t + i * len;
    float *v0 = v + (4 * i) * stride, *v1 = v0 + stride, *v2 = v1 + stride, *v3 = v2 + stride;
    for (int64_t q = 0; q < tw; ++q) {
      const float a = ti[2 * q], b = ti[2 * q + 1], c = ti[2 * q + 2], d = ti[2 * q + 3];
      v0[q] = a - c;
      v1[q] = b + c;
      v2[q] = c - b;
      v3[q] = b - d;
    }
  }
}

// The inverse of one output channel's tile row: m[xi * stride + t] (the 16 products of tile t) to output rows oy
// and oy + 1 (those from oh on skipped), ow columns: A^T m, then (A^T m) A, across the tiles.
void output_transform_row(const float* m, int64_t stride, int64_t tw, int64_t oy, int64_t oh, int64_t ow, float* dst) {
  float* buf = scratch<float, 12>(static_cast<size_t>(12 * tw));
  float *a0 = buf, *a1 = buf + 4 * tw, *row = buf + 8 * tw;  // A^T m: [2][4][tw]; one output row [2 tw]
  for (int j = 0; j < 4; ++j) {
    const float *m0 = m + j * stride, *m1 = m + (4 + j) * stride, *m2 = m + (8 + j) * stride,
                *m3 = m + (12 + j) * stride;
    float *s0 = a0 + j * tw, *s1 = a1 + j * tw;
    for (int64_t q = 0; q < tw; ++q) {
      s0[q] = m0[q] + m1[q] + m2[q];
      s1[q] = m1[q] - m2[q] - m3[q];
    }
  }
  for (int i = 0; i < 2 && oy + i < oh; ++i) {
    const float* s = i ? a1 : a0;
    const float *c0 = s, *c1 = s + tw, *c2 = s + 2 * tw, *c3 = s + 3 * tw;
    for (int64_t q = 0; q < tw; ++q) {
      row[2 * q] = c0[q] + c1[q] + c2[q];
      row[2 * q + 1] = c1[q] - c2[q] - c3[q];
    }
    std::copy(row, row + ow, dst + (oy + i) * ow);
  }
}

// c [m, n] = op(a) b for one point of a block: dtd's kernel whatever the size where the build has one, so that an
// output's sum does not depend on the block it falls in (gemm_block would switch to Eigen below 32 columns).
void product(bool trans_a, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, float* c) {
  if (sgemm_available())
    sgemm(trans_a, false, m, n, k, a, lda, b, n, c, n);
  else
    gemm_block(trans_a, false, m, n, k, a, lda, b, n, c, n);
}

}  // namespace

void winograd_correlate(const WinogradShape& s, int64_t batch, const float* in, const float* u, bool transposed,
                        float* out, const float* u2, float* out2) {
  const int64_t th = (s.oh + 1) / 2, tw = (s.ow + 1) / 2, tile_rows = batch * th;
  const int64_t sets = u2 ? 2 : 1;
  // A block of whole tile rows (they may run across samples): its transformed input [16][C][nb] and products
  // [sets][16][M][nb] take about kBlockBytes, and at least kMinColumns columns keep the products wide enough.
  const int64_t per_column = 16 * (s.c + sets * s.m) * static_cast<int64_t>(sizeof(float));
  const int64_t want = std::clamp<int64_t>(kBlockBytes / per_column, kMinColumns, kMaxColumns);
  const int64_t rows_per_block = std::clamp<int64_t>((want + tw - 1) / tw, 1, tile_rows);
  const int64_t blocks = (tile_rows + rows_per_block - 1) / rows_per_block;
  // Many blocks: one block per task, each on one thread from transform to output. Few: the phases of each block
  // in parallel (channels, products, output channels). Every output is the same either way.
  const bool per_block = blocks >= 2 * omp_get_max_threads();
  const bool inner = !per_block && 16 * s.c * tw * rows_per_block >= kParallelWork / 16;
  auto run_block = [&](int64_t blk, bool parallel) {
    const int64_t r0 = blk * rows_per_block, r1 = std::min(tile_rows, r0 + rows_per_block), nb = (r1 - r0) * tw;
    float* v = scratch<float, 8>(static_cast<size_t>(16 * s.c * nb));         // [16][C][nb]
    float* p = scratch<float, 9>(static_cast<size_t>(sets * 16 * s.m * nb));  // [sets][16][M][nb]
    parallel_for(
        s.c,
        [&](int64_t ch) {
          for (int64_t r = r0; r < r1; ++r) {
            const int64_t n = r / th, ty = r % th;
            input_transform_row(in + (n * s.c + ch) * s.h * s.w, s.h, s.w, tw, 2 * ty - s.pad_t, -s.pad_l,
                                v + ch * nb + (r - r0) * tw, s.c * nb);
          }
        },
        parallel);
    parallel_for(
        sets * 16,
        [&](int64_t task) {
          const int64_t set = task / 16, xi = task % 16;
          const float* us = set ? u2 : u;
          float* c = p + (set * 16 + xi) * s.m * nb;
          if (!transposed) {
            product(false, s.m, nb, s.c, us + xi * s.m * s.c, s.c, v + xi * s.c * nb, c);
          } else {
            const int64_t mirrored = 4 * kMirror[xi / 4] + kMirror[xi % 4];
            product(true, s.m, nb, s.c, us + mirrored * s.c * s.m, s.m, v + xi * s.c * nb, c);
          }
        },
        parallel);
    parallel_for(
        sets * s.m,
        [&](int64_t task) {
          const int64_t set = task / s.m, o = task % s.m;
          const float* c = p + set * 16 * s.m * nb + o * nb;
          float* dst = set ? out2 : out;
          for (int64_t r = r0; r < r1; ++r) {
            const int64_t n = r / th, ty = r % th;
            output_transform_row(c + (r - r0) * tw, s.m * nb, tw, 2 * ty, s.oh, s.ow,
                                 dst + (n * s.m + o) * s.oh * s.ow);
          }
        },
        parallel);
  };
  if (per_block)
    parallel_for(blocks, [&](int64_t blk) { run_block(blk, false); });
  else
    for (int64_t blk = 0; blk < blocks; ++blk) run_block(blk, inner);
}

void winograd_tile_bound(const WinogradShape& s, int64_t batch, const float* in, const float* kmax, float* bound) {
  const int64_t th = (s.oh + 1) / 2, tw = (s.ow + 1) / 2, tiles = th * tw, len = 2 * tw + 2;
  float* sums = scratch<float, 10>(static_cast<size_t>(s.c * tiles));  // [C][tiles] of one sample
  for (int64_t n = 0; n < batch; ++n) {
    parallel_for(
        s.c,
        [&](int64_t ch) {
          const float* x = in + (n * s.c + ch) * s.h * s.w;
          float* rows = scratch<float, 11>(static_cast<size_t>(5 * len));
          float* a = rows + 4 * len;  // sum of |x| over the tile row's four input rows, per column
          for (int64_t ty = 0; ty < th; ++ty) {
            load_rows(x, s.h, s.w, 2 * ty - s.pad_t, -s.pad_l, len, rows);
            for (int64_t j = 0; j < len; ++j)
              a[j] = std::abs(rows[j]) + std::abs(rows[len + j]) + std::abs(rows[2 * len + j]) +
                     std::abs(rows[3 * len + j]);
            float* out = sums + ch * tiles + ty * tw;
            for (int64_t q = 0; q < tw; ++q) out[q] = a[2 * q] + a[2 * q + 1] + a[2 * q + 2] + a[2 * q + 3];
          }
        },
        s.c * tiles * 16 >= kParallelWork / 8);
    gemm(false, false, s.m, tiles, s.c, kmax, sums, bound + n * s.m * tiles);
  }
}

}  // namespace dtd::detail
