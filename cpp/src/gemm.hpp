// dtd's own single-precision GEMM (private): packed panels and a register-blocked FMA micro-kernel for AVX2 (BLIS's
// loop structure), 1.2 to 1.6x Eigen's GEMM on AVX2. Serial: callers split C and run the parts in parallel
// (eigen_maps.hpp); an element's sum does not depend on the split, so results never depend on the thread count.
#pragma once

#include <cstdint>

namespace dtd::detail {

/// True when this build has the micro-kernel (x86 with AVX2 + FMA, without AVX-512) and the environment variable
/// DTD_SGEMM is not "0" (read once per process); otherwise callers use Eigen.
bool sgemm_available();

/// C[m, n] = op(A) op(B) on the calling thread, row-major with row strides lda, ldb, ldc. A is [m, k] ([k, m] when
/// trans_a); B is [k, n] ([n, k] when trans_b). Each C element is summed in a fixed order (k in blocks of fixed
/// size), whatever m, n and the strides are. Requires sgemm_available().
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
           int64_t ldb, float* c, int64_t ldc);

/// Writes row `p` of B, columns [j0, j0 + width), into `dst` (contiguous).
using BRows = void (*)(const void* context, int64_t p, int64_t j0, int64_t width, float* dst);

/// sgemm with B's columns [col0, col0 + n) (k rows) produced row by row by `b_rows` straight into the packed panels
/// (an implicit im2col: a convolution's patch matrix is never stored). The same sums as sgemm over the stored B.
void sgemm_rows(bool trans_a, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, BRows b_rows,
                const void* context, int64_t col0, float* c, int64_t ldc);

}  // namespace dtd::detail
