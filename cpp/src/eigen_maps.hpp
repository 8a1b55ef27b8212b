// GEMM over row-major buffers (private): dtd's packed float kernel (gemm.hpp) or Eigen maps. Both run
// single-threaded inside (dtd_core is built with EIGEN_DONT_PARALLELIZE) and we split the product across threads:
// Eigen's in fixed tiles, dtd's kernel in one share per thread (its sums do not depend on the split). Either way the
// summation order never depends on the thread count.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "gemm.hpp"
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
  constexpr int64_t kTile = 256;  // memory-bound: a 1024-unit layer at batch 1 gives every thread a share
  const int64_t tiles = (n + kTile - 1) / kTile;
  parallel_for(
      tiles,
      [&](int64_t t) {
        const int64_t j0 = t * kTile, w = std::min(kTile, n - j0);
        y.segment(j0, w).noalias() = a * b.middleCols(j0, w);
      },
      n * k >= kParallelWork);
}

/// Whether a float product of this shape runs dtd's kernel: below 32 rows or columns one operand is used too few
/// times to repay its packing, and Eigen is faster.
template <class T>
bool use_sgemm(int64_t m, int64_t n) {
  return std::is_same_v<T, float> && sgemm_available() && m >= 32 && n >= 32;
}

/// C[m, n] = op(A) op(B) on the calling thread, row-major with row strides: A is [m, k] ([k, m] when trans_a), B is
/// [k, n] ([n, k] when trans_b). float runs dtd's own packed kernel where the build has one (gemm.hpp), else Eigen.
template <class T>
void gemm_block(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b,
                int64_t ldb, T* c, int64_t ldc) {
  if constexpr (std::is_same_v<T, float>) {
    if (use_sgemm<T>(m, n)) return sgemm(trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc);
  }
  using Stride = Eigen::OuterStride<>;
  using CMap = Eigen::Map<const MatR<T>, 0, Stride>;
  Eigen::Map<MatR<T>, 0, Stride> mc(c, m, n, Stride(ldc));
  if (!trans_a && !trans_b)
    mc.noalias() = CMap(a, m, k, Stride(lda)) * CMap(b, k, n, Stride(ldb));
  else if (!trans_a)
    mc.noalias() = CMap(a, m, k, Stride(lda)) * CMap(b, n, k, Stride(ldb)).transpose();
  else if (!trans_b)
    mc.noalias() = CMap(a, k, m, Stride(lda)).transpose() * CMap(b, k, n, Stride(ldb));
  else
    mc.noalias() = CMap(a, k, m, Stride(lda)).transpose() * CMap(b, n, k, Stride(ldb)).transpose();
}

/// Runs f(i0, h, j0, w) on blocks of C[m, n] in parallel, one equal share per thread: dtd's kernel sums every element
/// of C in the same order however C is split (gemm.hpp), so the split may follow the thread count. Along n unless n
/// is too narrow to share (each share then packs all of A; along m, all of B).
template <class F>
void sgemm_shares(int64_t m, int64_t n, bool parallel, F&& f) {
  const int64_t threads = parallel && !omp_in_parallel() ? omp_get_max_threads() : 1;
  const bool along_n = n >= m || n >= 256 * threads;
  const int64_t extent = along_n ? n : m, quantum = along_n ? sgemm_tile_columns() : sgemm_tile_rows();
  const int64_t share = ((extent + threads - 1) / threads + quantum - 1) / quantum * quantum;
  parallel_for((extent + share - 1) / share, [&](int64_t t) {
    const int64_t s0 = t * share, w = std::min(share, extent - s0);
    if (along_n)
      f(0, m, s0, w);
    else
      f(s0, w, 0, n);
  });
}

/// C[m, n] = op(A) B for a float B whose columns [col0, col0 + n) are given row by row (sgemm_rows: an implicit
/// im2col), split like gemm_tiled (on the calling thread alone inside a parallel region). Requires sgemm_available().
inline void gemm_rows(bool trans_a, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, BRows b_rows,
                      const void* context, int64_t col0, float* c, int64_t ldc) {
  sgemm_shares(m, n, m * n * k >= 2 * kParallelWork, [&](int64_t i0, int64_t h, int64_t j0, int64_t w) {
    sgemm_rows(trans_a, h, w, k, trans_a ? a + i0 : a + i0 * lda, lda, b_rows, context, col0 + j0, c + i0 * ldc + j0,
               ldc);
  });
}

/// gemm_rows with A given packed (sgemm_pack_a of its m rows), split the same way.
inline void gemm_rows_packed(int64_t m, int64_t n, int64_t k, const float* packed, BRows b_rows, const void* context,
                             int64_t col0, float* c, int64_t ldc) {
  sgemm_shares(m, n, m * n * k >= 2 * kParallelWork, [&](int64_t i0, int64_t h, int64_t j0, int64_t w) {
    sgemm_rows_packed(h, w, k, packed, m, i0, b_rows, context, col0 + j0, c + i0 * ldc + j0, ldc);
  });
}

/// gemm_rows_packed for n <= sgemm_narrow_columns(), also C_pos = max(A, 0) B (sgemm_rows_packed_positive).
inline void gemm_rows_packed_positive(int64_t m, int64_t n, int64_t k, const float* packed, BRows b_rows,
                                      const void* context, int64_t col0, float* c, int64_t ldc, float* c_pos,
                                      int64_t ldc_pos) {
  sgemm_shares(m, n, 2 * m * n * k >= 2 * kParallelWork, [&](int64_t i0, int64_t h, int64_t j0, int64_t w) {
    sgemm_rows_packed_positive(h, w, k, packed, m, i0, b_rows, context, col0 + j0, c + i0 * ldc + j0, ldc,
                               c_pos + i0 * ldc_pos + j0, ldc_pos);
  });
}

/// Products with at least this many and fewer than 32 rows run transposed in dtd's kernel (gemm_tiled).
constexpr int64_t kFewRows = 4;
constexpr int64_t kFewRowsOperand = int64_t{1} << 20;  // elements of op(B), at least

/// gemm_block split into tiles of C run in parallel.
template <class T>
void gemm_tiled(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b,
                int64_t ldb, T* c, int64_t ldc) {
  const bool parallel = m * n * k >= 2 * kParallelWork;
  if constexpr (std::is_same_v<T, float>) {
    if (m >= kFewRows && m < 32 && use_sgemm<T>(n, 32) && k >= 32 && n * k >= kFewRowsOperand) {
      // Few rows and a large B (a big dense layer at a small batch): C^T = op(B)^T op(A)^T, whose shared operand
      // is the small one; dtd's kernel then streams op(B) once, in place. Written transposed into C. (Below
      // kFewRowsOperand Eigen's product is faster: LeNet's 3136x1024 layer at batch 16 10 % faster this way, the
      // MLP's 784x300 one 20 % slower.)
      T* ct = scratch<T, 3>(static_cast<size_t>(n * m));
      sgemm_shares(n, m, parallel, [&](int64_t j0, int64_t w, int64_t i0, int64_t h) {
        sgemm(!trans_b, !trans_a, w, h, k, trans_b ? b + j0 * ldb : b + j0, ldb, trans_a ? a + i0 : a + i0 * lda, lda,
              ct + j0 * m + i0, m);
      });
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = ct[j * m + i];
      return;
    }
    if (use_sgemm<T>(m, n)) {
      sgemm_shares(m, n, parallel, [&](int64_t i0, int64_t h, int64_t j0, int64_t w) {
        sgemm(trans_a, trans_b, h, w, k, trans_a ? a + i0 : a + i0 * lda, lda, trans_b ? b + j0 * ldb : b + j0, ldb,
              c + i0 * ldc + j0, ldc);
      });
      return;
    }
  }
  // Eigen: each tile re-packs the operand it shares with the others, so tiles stay wide (>= kMinTile); up to
  // kMaxTiles of them give the threads work. Both constants are fixed: the split never depends on the thread
  // count, and neither do the results.
  constexpr int64_t kMinTile = 512, kMaxTiles = 16;
  if (n >= m) {
    const int64_t kTile = (std::max(kMinTile, (n + kMaxTiles - 1) / kMaxTiles) + 15) / 16 * 16;
    const int64_t tiles = (n + kTile - 1) / kTile;
    parallel_for(
        tiles,
        [&](int64_t t) {
          const int64_t j0 = t * kTile, w = std::min(kTile, n - j0);
          gemm_block(trans_a, trans_b, m, w, k, a, lda, trans_b ? b + j0 * ldb : b + j0, ldb, c + j0, ldc);
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
          gemm_block(trans_a, trans_b, h, n, k, trans_a ? a + i0 : a + i0 * lda, lda, b, ldb, c + i0 * ldc, ldc);
        },
        parallel);
  }
}

/// C[m, n] = op(A) op(B), all row-major. A is [m, k] ([k, m] when trans_a); B is [k, n] ([n, k] when trans_b).
template <class T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const T* a, const T* b, T* c) {
  using Map = Eigen::Map<const MatR<T>>;
  if (m == 1) {  // a row vector: a matrix-vector product (a GEMM would pack for nothing)
    if (trans_b)
      gemv_tiled(a, Map(b, n, k).transpose(), c, n, k);
    else
      gemv_tiled(a, Map(b, k, n), c, n, k);
    return;
  }
  gemm_tiled(trans_a, trans_b, m, n, k, a, trans_a ? m : k, b, trans_b ? k : n, c, n);
}

}  // namespace dtd::detail
