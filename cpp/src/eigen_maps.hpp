// GEMM through Eigen maps over row-major buffers (private). Eigen runs single-threaded inside (dtd_core is built
// with EIGEN_DONT_PARALLELIZE); we tile the product in fixed-size tiles and run the tiles in parallel, so the
// summation order never depends on the thread count.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cstdint>

#include "parallel.hpp"

namespace dtd::detail {

template <class T>
using MatR = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// y[1, n] = a[1, k] op(B): a matrix-vector product, tiled over n.
template <class T, class EB>
void gemv_tiled(const T* a_ptr, const EB& b, T* y_ptr, int64_t n, int64_t k) {
  using RowVec = Eigen::Matrix<T, 1, Eigen::Dynamic>;
  Eigen::Map<const RowVec> a(a_ptr, k);
  Eigen::Map<RowVec> y(y_ptr, n);
  constexpr int64_t kTile = 1024;
  const int64_t tiles = (n + kTile - 1) / kTile;
  parallel_for(
      tiles,
      [&](int64_t t) {
        const int64_t j0 = t * kTile, w = std::min(kTile, n - j0);
        y.segment(j0, w).noalias() = a * b.middleCols(j0, w);
      },
      n * k >= (int64_t{1} << 17));
}

// c (a map, possibly strided) = a b, split into fixed tiles run in parallel.
template <class EA, class EB, class EC>
void gemm_tiled(const EA& a, const EB& b, EC& c, int64_t m, int64_t n, int64_t k) {
  const bool parallel = m * n * k >= (int64_t{1} << 16);
  // Each tile re-packs the operand it shares with the others, so tiles stay wide (>= kMinTile); up to
  // kMaxTiles of them give the threads work. Both constants are fixed: the split never depends on the thread
  // count, and neither do the results.
  constexpr int64_t kMinTile = 512, kMaxTiles = 16;
  auto tile_size = [&](int64_t extent) {
    const int64_t t = std::max(kMinTile, (extent + kMaxTiles - 1) / kMaxTiles);
    return (t + 15) / 16 * 16;
  };
  if (n >= m) {
    const int64_t kTile = tile_size(n);
    const int64_t tiles = (n + kTile - 1) / kTile;
    parallel_for(
        tiles,
        [&](int64_t t) {
          const int64_t j0 = t * kTile, w = std::min(kTile, n - j0);
          c.middleCols(j0, w).noalias() = a * b.middleCols(j0, w);
        },
        parallel);
  } else {
    // Few columns (deep layers at small batch): the shared operand B is small, so narrower row tiles pay.
    const int64_t kTile = std::max<int64_t>(128, (m + kMaxTiles - 1) / kMaxTiles + 15) / 16 * 16;
    const int64_t tiles = (m + kTile - 1) / kTile;
    parallel_for(
        tiles,
        [&](int64_t t) {
          const int64_t i0 = t * kTile, h = std::min(kTile, m - i0);
          c.middleRows(i0, h).noalias() = a.middleRows(i0, h) * b;
        },
        parallel);
  }
}

/// C[m, n] = A[m, k] B[k, n] on the calling thread, with row strides lda, ldb, ldc (blocks of larger matrices).
template <class T>
void gemm_serial(int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b, int64_t ldb, T* c, int64_t ldc) {
  using Stride = Eigen::OuterStride<>;
  Eigen::Map<const MatR<T>, 0, Stride> ma(a, m, k, Stride(lda));
  Eigen::Map<const MatR<T>, 0, Stride> mb(b, k, n, Stride(ldb));
  Eigen::Map<MatR<T>, 0, Stride> mc(c, m, n, Stride(ldc));
  mc.noalias() = ma * mb;
}

/// C[m, n] = op(A) B with row strides (blocks of larger matrices): A is [m, k] ([k, m] when trans_a).
template <class T>
void gemm_strided(bool trans_a, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b, int64_t ldb, T* c,
                  int64_t ldc) {
  using Stride = Eigen::OuterStride<>;
  using CMap = Eigen::Map<const MatR<T>, 0, Stride>;
  Eigen::Map<MatR<T>, 0, Stride> mc(c, m, n, Stride(ldc));
  const CMap mb(b, k, n, Stride(ldb));
  if (trans_a)
    gemm_tiled(CMap(a, k, m, Stride(lda)).transpose(), mb, mc, m, n, k);
  else
    gemm_tiled(CMap(a, m, k, Stride(lda)), mb, mc, m, n, k);
}

/// C[m, n] = op(A) op(B), all row-major. A is [m, k] ([k, m] when trans_a); B is [k, n] ([n, k] when trans_b).
template <class T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const T* a, const T* b, T* c) {
  using Map = Eigen::Map<const MatR<T>>;
  if (m == 1) {  // a row vector: a matrix-vector product (Eigen's GEMM would pack for nothing)
    if (trans_b)
      gemv_tiled(a, Map(b, n, k).transpose(), c, n, k);
    else
      gemv_tiled(a, Map(b, k, n), c, n, k);
    return;
  }
  Eigen::Map<MatR<T>> mc(c, m, n);
  if (!trans_a && !trans_b)
    gemm_tiled(Map(a, m, k), Map(b, k, n), mc, m, n, k);
  else if (!trans_a && trans_b)
    gemm_tiled(Map(a, m, k), Map(b, n, k).transpose(), mc, m, n, k);
  else if (trans_a && !trans_b)
    gemm_tiled(Map(a, k, m).transpose(), Map(b, k, n), mc, m, n, k);
  else
    gemm_tiled(Map(a, k, m).transpose(), Map(b, n, k).transpose(), mc, m, n, k);
}

}  // namespace dtd::detail
