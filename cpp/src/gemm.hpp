// dtd's own single-precision GEMM (private): packed panels and a register-blocked FMA micro-kernel for AVX-512 or
// AVX2 (BLIS's loop structure). Serial: callers split C and run the parts in parallel
// (eigen_maps.hpp); an element's sum does not depend on the split, so results never depend on the thread count.
#pragma once

#include <cstdint>

namespace dtd::detail {

/// True when this build has a micro-kernel (x86 with AVX-512F, or with AVX2 + FMA) and the environment variable
/// DTD_SGEMM is not "0" (read once per process); otherwise callers use Eigen.
bool sgemm_available();

/// The micro-kernel compiled in: "avx512 8x32", "avx2 6x16" (rows x columns of its register tile), or "none".
const char* sgemm_kernel_name();

/// Rows and columns of the micro-kernel's register tile (1 without a kernel): splits of C into multiples of these
/// waste no tile.
int64_t sgemm_tile_rows();
int64_t sgemm_tile_columns();

/// C[m, n] = op(A) op(B) on the calling thread, row-major with row strides lda, ldb, ldc. A is [m, k] ([k, m] when
/// trans_a); B is [k, n] ([n, k] when trans_b). Each C element is summed in a fixed order (k in blocks of fixed
/// size), whatever m, n and the strides are. Requires sgemm_available().
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
           int64_t ldb, float* c, int64_t ldc);

/// Floats of B [k, n] packed once for sgemm_packed_b: the kernel's column panels for every block, columns padded to
/// whole panels.
int64_t sgemm_packed_b_size(int64_t k, int64_t n);

/// Packs op(B) (k rows, n columns; B is [n, k] when trans_b) into `dst` (sgemm_packed_b_size(k, n) floats):
/// constant weights packed once, where sgemm packs them again for every call.
void sgemm_pack_b(bool trans_b, int64_t k, int64_t n, const float* b, int64_t ldb, float* dst);

/// sgemm with op(B) given packed (sgemm_pack_b). The same sums as sgemm.
void sgemm_packed_b(bool trans_a, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* packed_b,
                    float* c, int64_t ldc);

/// Writes rows [p0, p0 + rows) of B, columns [j0, j0 + width), into `dst`, row r at dst + r * ld: a block of rows
/// per call, so that a producer such as an implicit im2col works out where its rows start once, not for every row.
using BRows = void (*)(const void* context, int64_t p0, int64_t rows, int64_t j0, int64_t width, float* dst,
                       int64_t ld);

/// sgemm with B's columns [col0, col0 + n) (k rows) produced row by row by `b_rows` straight into the packed panels
/// (an implicit im2col: a convolution's patch matrix is never stored). The same sums as sgemm over the stored B.
void sgemm_rows(bool trans_a, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, BRows b_rows,
                const void* context, int64_t col0, float* c, int64_t ldc);

/// Floats of A [m, k] packed once for sgemm_rows_packed: the kernel's row panels for every block of depth, rows
/// padded to whole panels.
int64_t sgemm_packed_size(int64_t m, int64_t k);

/// Packs A = [A_top; A_below] (m rows of depth k, row stride lda; rows from `split` on are a_below's; a_below may
/// be null when split >= m) into `dst` (sgemm_packed_size(m, k) floats): constant weights packed once, where
/// sgemm_rows packs a block of A again for every block of B.
void sgemm_pack_a(int64_t m, int64_t split, int64_t k, const float* a_top, const float* a_below, int64_t lda,
                  float* dst);

/// Packs op(A) = A^T (m rows of depth k; A is [k, m] with row stride lda) like sgemm_pack_a packs an A: the
/// weights of a transposed pass, packed once.
void sgemm_pack_a_transposed(int64_t m, int64_t k, const float* a, int64_t lda, float* dst);

/// Products with at most this many columns run a narrow kernel (the rows of C in the vector lanes) where A comes
/// packed (sgemm_rows_packed): a tile of full width would leave most of its columns empty. The same sums.
int64_t sgemm_narrow_columns();

/// sgemm_rows_packed for n <= sgemm_narrow_columns(), also writing C_pos = max(A, 0) B (row stride ldc_pos) from
/// the same pass over A: bit for bit the product over A's positive part packed apart (z+'s denominator beside the
/// forward, the weights read once).
void sgemm_rows_packed_positive(int64_t m, int64_t n, int64_t k, const float* packed, int64_t m_total, int64_t row0,
                                BRows b_rows, const void* context, int64_t col0, float* c, int64_t ldc, float* c_pos,
                                int64_t ldc_pos);

/// sgemm_rows (A not transposed) with A given packed (sgemm_pack_a of all `m_total` rows): C gets rows
/// [row0, row0 + m) of the product, row0 a multiple of sgemm_tile_rows(). The same sums as sgemm_rows.
void sgemm_rows_packed(int64_t m, int64_t n, int64_t k, const float* packed, int64_t m_total, int64_t row0,
                       BRows b_rows, const void* context, int64_t col0, float* c, int64_t ldc);

}  // namespace dtd::detail
