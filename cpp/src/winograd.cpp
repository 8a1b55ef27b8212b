#include "winograd.hpp"

#include <algorithm>
#include <cmath>

#include "eigen_maps.hpp"
#include "parallel.hpp"

namespace dtd::detail {

namespace {

// F(2x2, 3x3): B^T d B (input tile d, 4x4), G k G^T (kernel k, 3x3), A^T m A (product m, 4x4, to 2x2) with
// B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1],
// A^T = [1 1 1 0; 0 1 -1 -1].

// The transform of the rotated kernel k'[y][x] = k[2 - y][2 - x] at point (a, b) is the transform of k at
// (mirror[a], mirror[b]): G J = P G with J the reversal and P swapping rows 0 and 3.
constexpr int kMirror[4] = {3, 1, 2, 0};

// Tile columns per block: the transformed input of a block, 16 * C * cols floats, stays within kBlockFloats.
constexpr int64_t kBlockFloats = int64_t{1} << 21;

inline void input_transform(const float d[4][4], float v[16]) {
  float t[4][4];  // B^T d
  for (int j = 0; j < 4; ++j) {
    t[0][j] = d[0][j] - d[2][j];
    t[1][j] = d[1][j] + d[2][j];
    t[2][j] = d[2][j] - d[1][j];
    t[3][j] = d[1][j] - d[3][j];
  }
  for (int i = 0; i < 4; ++i) {  // (B^T d) B
    v[4 * i + 0] = t[i][0] - t[i][2];
    v[4 * i + 1] = t[i][1] + t[i][2];
    v[4 * i + 2] = t[i][2] - t[i][1];
    v[4 * i + 3] = t[i][1] - t[i][3];
  }
}

inline void output_transform(const float m[16], float y[2][2]) {
  float t[2][4];  // A^T m
  for (int j = 0; j < 4; ++j) {
    t[0][j] = m[j] + m[4 + j] + m[8 + j];
    t[1][j] = m[4 + j] - m[8 + j] - m[12 + j];
  }
  for (int i = 0; i < 2; ++i) {  // (A^T m) A
    y[i][0] = t[i][0] + t[i][1] + t[i][2];
    y[i][1] = t[i][1] - t[i][2] - t[i][3];
  }
}

// The 4x4 input tile of channel plane `x` (h x w) whose top left is (y0, x0), zero outside.
inline void load_tile(const float* x, int64_t h, int64_t w, int64_t y0, int64_t x0, float d[4][4]) {
  if (y0 >= 0 && x0 >= 0 && y0 + 4 <= h && x0 + 4 <= w) {
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) d[i][j] = x[(y0 + i) * w + x0 + j];
    return;
  }
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) {
      const int64_t yy = y0 + i, xx = x0 + j;
      d[i][j] = (yy >= 0 && yy < h && xx >= 0 && xx < w) ? x[yy * w + xx] : 0.0f;
    }
}

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

void winograd_correlate(const WinogradShape& s, int64_t batch, const float* in, const float* u, bool transposed,
                        float* out, const float* u2, float* out2) {
  const int64_t th = (s.oh + 1) / 2, tw = (s.ow + 1) / 2, tiles = th * tw, cols = batch * tiles;
  const int64_t width = std::max(s.c, s.m);
  const int64_t block = std::max<int64_t>(16, kBlockFloats / (16 * width) / 16 * 16);
  const int64_t sets = u2 ? 2 : 1;
  for (int64_t b0 = 0; b0 < cols; b0 += block) {
    const int64_t nb = std::min(block, cols - b0);
    float* v = scratch<float, 8>(static_cast<size_t>(16 * s.c * nb));         // [16][C][nb]
    float* p = scratch<float, 9>(static_cast<size_t>(sets * 16 * s.m * nb));  // [sets][16][M][nb]
    const bool parallel = s.c * nb * 16 >= kParallelWork / 16;
    // input transform, one task per channel
    parallel_for(
        s.c,
        [&](int64_t ch) {
          float d[4][4], t[16];
          for (int64_t q = 0; q < nb; ++q) {
            const int64_t col = b0 + q, n = col / tiles, tile = col % tiles, ty = tile / tw, tx = tile % tw;
            load_tile(in + (n * s.c + ch) * s.h * s.w, s.h, s.w, 2 * ty - s.pad_t, 2 * tx - s.pad_l, d);
            input_transform(d, t);
            for (int xi = 0; xi < 16; ++xi) v[(xi * s.c + ch) * nb + q] = t[xi];
          }
        },
        parallel);
    // the 16 (or 32) products, one task each
    parallel_for(sets * 16, [&](int64_t task) {
      const int64_t set = task / 16, xi = task % 16;
      const float* us = set ? u2 : u;
      float* c = p + (set * 16 + xi) * s.m * nb;
      if (!transposed) {
        gemm_block(false, false, s.m, nb, s.c, us + xi * s.m * s.c, s.c, v + xi * s.c * nb, nb, c, nb);
      } else {
        const int64_t mirrored = 4 * kMirror[xi / 4] + kMirror[xi % 4];
        gemm_block(true, false, s.m, nb, s.c, us + mirrored * s.c * s.m, s.m, v + xi * s.c * nb, nb, c, nb);
      }
    });
    // output transform, one task per output channel (and set)
    parallel_for(
        sets * s.m,
        [&](int64_t task) {
          const int64_t set = task / s.m, o = task % s.m;
          const float* c = p + set * 16 * s.m * nb;
          float* dst_base = set ? out2 : out;
          float mt[16], y[2][2];
          for (int64_t q = 0; q < nb; ++q) {
            const int64_t col = b0 + q, n = col / tiles, tile = col % tiles, ty = tile / tw, tx = tile % tw;
            for (int xi = 0; xi < 16; ++xi) mt[xi] = c[(xi * s.m + o) * nb + q];
            output_transform(mt, y);
            float* dst = dst_base + (n * s.m + o) * s.oh * s.ow;
            for (int i = 0; i < 2; ++i)
              for (int j = 0; j < 2; ++j) {
                const int64_t oy = 2 * ty + i, ox = 2 * tx + j;
                if (oy < s.oh && ox < s.ow) dst[oy * s.ow + ox] = y[i][j];
              }
          }
        },
        parallel);
  }
}

void winograd_tile_bound(const WinogradShape& s, int64_t batch, const float* in, const float* kmax, float* bound) {
  const int64_t th = (s.oh + 1) / 2, tw = (s.ow + 1) / 2, tiles = th * tw;
  float* sums = scratch<float, 10>(static_cast<size_t>(s.c * tiles));  // [C][tiles] of one sample
  for (int64_t n = 0; n < batch; ++n) {
    parallel_for(
        s.c,
        [&](int64_t ch) {
          const float* x = in + (n * s.c + ch) * s.h * s.w;
          float d[4][4];
          for (int64_t t = 0; t < tiles; ++t) {
            load_tile(x, s.h, s.w, 2 * (t / tw) - s.pad_t, 2 * (t % tw) - s.pad_l, d);
            float a = 0;
            for (int i = 0; i < 4; ++i)
              for (int j = 0; j < 4; ++j) a += std::abs(d[i][j]);
            sums[ch * tiles + t] = a;
          }
        },
        s.c * tiles * 16 >= kParallelWork / 8);
    gemm(false, false, s.m, tiles, s.c, kmax, sums, bound + n * s.m * tiles);
  }
}

}  // namespace dtd::detail
