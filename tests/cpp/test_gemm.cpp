// The packed float GEMM (cpp/src/gemm.hpp) against a naive float64 product: every transpose combination, edge
// tiles, row strides, sizes across the packing blocks, A packed and read in place; blocks of C equal the whole
// product bit for bit, and the parallel split gives the same bits with 1 and 2 threads.
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "check.hpp"
#include "eigen_maps.hpp"
#include "gemm.hpp"

namespace {

using dtd_test::check;
using dtd_test::failures;

struct Case {
  bool ta, tb;
  int64_t m, n, k, pad;  // pad: extra elements per row of every operand (row strides larger than the rows)
};

std::string name(const Case& c) {
  return "sgemm ta=" + std::to_string(c.ta) + " tb=" + std::to_string(c.tb) + " m=" + std::to_string(c.m) +
         " n=" + std::to_string(c.n) + " k=" + std::to_string(c.k) + " pad=" + std::to_string(c.pad);
}

// The largest error of c = op(a) op(b) against a float64 product, relative to sum |a b| per element.
double relative_error(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const std::vector<float>& a, int64_t lda,
                      const std::vector<float>& b, int64_t ldb, const std::vector<float>& c, int64_t ldc) {
  double worst = 0;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double ref = 0, scale = 0;
      for (int64_t p = 0; p < k; ++p) {
        const double x = ta ? a[static_cast<size_t>(p * lda + i)] : a[static_cast<size_t>(i * lda + p)];
        const double y = tb ? b[static_cast<size_t>(j * ldb + p)] : b[static_cast<size_t>(p * ldb + j)];
        ref += x * y;
        scale += std::abs(x * y);
      }
      worst = std::max(worst, std::abs(c[static_cast<size_t>(i * ldc + j)] - ref) / (scale + 1e-30));
    }
  return worst;
}

void test_case(const Case& c, std::mt19937& rng) {
  std::normal_distribution<float> d;
  const int64_t a_rows = c.ta ? c.k : c.m, a_cols = c.ta ? c.m : c.k;
  const int64_t b_rows = c.tb ? c.n : c.k, b_cols = c.tb ? c.k : c.n;
  const int64_t lda = a_cols + c.pad, ldb = b_cols + c.pad, ldc = c.n + c.pad;
  std::vector<float> a(static_cast<size_t>(a_rows * lda)), b(static_cast<size_t>(b_rows * ldb));
  for (float& v : a) v = d(rng);
  for (float& v : b) v = d(rng);
  const float sentinel = 12345.0f;
  std::vector<float> out(static_cast<size_t>(c.m * ldc), sentinel);
  dtd::detail::sgemm(c.ta, c.tb, c.m, c.n, c.k, a.data(), lda, b.data(), ldb, out.data(), ldc);
  const double worst = relative_error(c.ta, c.tb, c.m, c.n, c.k, a, lda, b, ldb, out, ldc);
  bool pad_intact = true;
  for (int64_t i = 0; i < c.m; ++i)
    for (int64_t j = c.n; j < ldc; ++j) pad_intact = pad_intact && out[static_cast<size_t>(i * ldc + j)] == sentinel;
  check(worst < 1e-5, name(c) + ": relative error " + std::to_string(worst));
  check(pad_intact, name(c) + ": wrote past the row into the stride padding");

  // B packed once (sgemm_pack_b, as a dense layer's weights): the same bits as sgemm packing it for the call.
  std::vector<float> packed(static_cast<size_t>(dtd::detail::sgemm_packed_b_size(c.k, c.n)));
  dtd::detail::sgemm_pack_b(c.tb, c.k, c.n, b.data(), ldb, packed.data());
  std::vector<float> out_packed(static_cast<size_t>(c.m * ldc), sentinel);
  dtd::detail::sgemm_packed_b(c.ta, c.m, c.n, c.k, a.data(), lda, packed.data(), out_packed.data(), ldc);
  check(out_packed == out, name(c) + ": with B packed once, other bits than sgemm's");

  // A block of C computed alone (from the matching blocks of A and B) has the same bits as in the whole product.
  if (c.m > 7 && c.n > 9) {
    const int64_t i0 = 7, j0 = 9, h = c.m - i0, w = c.n - j0;
    std::vector<float> part(static_cast<size_t>(h * w));
    const float* ap = c.ta ? a.data() + i0 : a.data() + i0 * lda;
    const float* bp = c.tb ? b.data() + j0 * ldb : b.data() + j0;
    dtd::detail::sgemm(c.ta, c.tb, h, w, c.k, ap, lda, bp, ldb, part.data(), w);
    bool same = true;
    for (int64_t i = 0; i < h; ++i)
      for (int64_t j = 0; j < w; ++j)
        same = same && part[static_cast<size_t>(i * w + j)] == out[static_cast<size_t>((i0 + i) * ldc + j0 + j)];
    check(same, name(c) + ": a block of C computed alone differs from the whole product");
  }
}

// C = op(A) op(B) through detail::gemm with `threads` OpenMP threads.
std::vector<float> gemm_with_threads(int threads, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                                     const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<float> c(static_cast<size_t>(m * n));
  const int saved = omp_get_max_threads();
  omp_set_num_threads(threads);
  dtd::detail::gemm(ta, tb, m, n, k, a.data(), b.data(), c.data());
  omp_set_num_threads(saved);
  return c;
}

void test_threads_bit_identical() {
  std::mt19937 rng(3);
  std::normal_distribution<float> d;
  // split along n (each share packs A) and along m (few columns: A read in place)
  for (const auto& [m, n, k] : {std::array<int64_t, 3>{200, 1500, 700}, std::array<int64_t, 3>{600, 100, 300}}) {
    std::vector<float> a(static_cast<size_t>(m * k)), b(static_cast<size_t>(k * n));
    for (float& v : a) v = d(rng);
    for (float& v : b) v = d(rng);
    const auto c1 = gemm_with_threads(1, false, false, m, n, k, a, b);
    const auto c2 = gemm_with_threads(2, false, false, m, n, k, a, b);
    check(c1 == c2, "gemm " + std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k) +
                        ": 1 and 2 threads give different bits");
  }
}

// Products with few rows (a dense layer at a small batch) run transposed in dtd's kernel (gemm_tiled): right for
// every transpose combination, and the same bits with 1 and 2 threads.
void test_few_rows() {
  std::mt19937 rng(9);
  std::normal_distribution<float> d;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (int64_t m : {4, 16, 31}) {
        const int64_t n = 1500, k = 700;  // op(B) >= 2^20 elements
        std::vector<float> a(static_cast<size_t>(m * k)), b(static_cast<size_t>(k * n));
        for (float& v : a) v = d(rng);
        for (float& v : b) v = d(rng);
        const auto c1 = gemm_with_threads(1, ta, tb, m, n, k, a, b);
        const auto c2 = gemm_with_threads(2, ta, tb, m, n, k, a, b);
        const std::string what =
            "few rows ta=" + std::to_string(ta) + " tb=" + std::to_string(tb) + " m=" + std::to_string(m);
        check(c1 == c2, what + ": 1 and 2 threads give different bits");
        const double worst = relative_error(ta, tb, m, n, k, a, ta ? m : k, b, tb ? k : n, c1, n);
        check(worst < 1e-5, what + ": relative error " + std::to_string(worst));
      }
}

// B given row by row (sgemm_rows' implicit im2col) from a stored [k, ldb] matrix.
struct StoredRows {
  const float* b;
  int64_t ldb;
};

void stored_rows(const void* context, int64_t p0, int64_t rows, int64_t j0, int64_t width, float* dst, int64_t ld) {
  const auto& s = *static_cast<const StoredRows*>(context);
  for (int64_t r = 0; r < rows; ++r)
    std::copy(s.b + (p0 + r) * s.ldb + j0, s.b + (p0 + r) * s.ldb + j0 + width, dst + r * ld);
}

// [A_top; A_below] packed once from its two blocks (sgemm_pack_a, no stored stack) and multiplied by
// gemm_rows_packed equals sgemm over the stacked copy bit for bit, for shares split along n and along m (a share then
// starts at a later panel of the packed A, and may straddle the seam) with 1 and 2 threads; so does sgemm_rows.
void test_stacked_rows() {
  std::mt19937 rng(5);
  std::normal_distribution<float> d;
  for (const auto& [top, below, n, k] :
       {std::array<int64_t, 4>{64, 64, 700, 300}, std::array<int64_t, 4>{250, 100, 40, 300},
        std::array<int64_t, 4>{16, 16, 5, 600}, std::array<int64_t, 4>{300, 5, 33, 17}}) {
    const int64_t m = top + below, ld = k + 3;
    std::vector<float> a(static_cast<size_t>(m * ld)), b(static_cast<size_t>(k * n));
    for (float& v : a) v = d(rng);
    for (float& v : b) v = d(rng);
    // the two blocks in separate buffers, the stacked copy in `a`
    std::vector<float> a_top(a.begin(), a.begin() + top * ld), a_below(a.begin() + top * ld, a.end());
    std::vector<float> want(static_cast<size_t>(m * n));
    dtd::detail::sgemm(false, false, m, n, k, a.data(), ld, b.data(), n, want.data(), n);
    const StoredRows rows{b.data(), n};
    const std::string what = "stacked " + std::to_string(top) + "+" + std::to_string(below) + "x" + std::to_string(n) +
                             "x" + std::to_string(k);
    const int saved = omp_get_max_threads();
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      std::vector<float> got(want.size()), plain(want.size());
      std::vector<float> packed(static_cast<size_t>(dtd::detail::sgemm_packed_size(m, k)));
      dtd::detail::sgemm_pack_a(m, top, k, a_top.data(), a_below.data(), ld, packed.data());
      dtd::detail::gemm_rows_packed(m, n, k, packed.data(), stored_rows, &rows, 0, got.data(), n);
      dtd::detail::gemm_rows(false, m, n, k, a.data(), ld, stored_rows, &rows, 0, plain.data(), n);
      check(got == want,
            what + ": differs from sgemm over the stacked copy, " + std::to_string(threads) + " thread(s)");
      check(plain == want, what + ": sgemm_rows differs from sgemm, " + std::to_string(threads) + " thread(s)");
    }
    omp_set_num_threads(saved);
  }
}

// Few columns with A packed once run the narrow kernel (rows of C in the vector lanes): every width up to and past
// sgemm_narrow_columns(), row counts across its tiles and chunks and the row block, depths across the depth block,
// A packed as it lies (sgemm_pack_a) and as A^T (sgemm_pack_a_transposed): the same bits as sgemm's tiles over the
// same operands, with 1 and 2 threads.
void test_narrow() {
  std::mt19937 rng(11);
  std::normal_distribution<float> d;
  const int64_t widest = dtd::detail::sgemm_narrow_columns() + 3;
  const int saved = omp_get_max_threads();
  for (int64_t m : {1, 5, 8, 17, 64, 100, 170, 333})
    for (int64_t k : {1, 7, 256, 300, 600})
      for (int64_t n = 1; n <= widest; n += (m > 64 && k > 256 ? 4 : 1)) {
        std::vector<float> a(static_cast<size_t>(m * k)), at(a.size()), b(static_cast<size_t>(k * n));
        for (float& v : a) v = d(rng);
        for (size_t i = 0; i < a.size(); i += 97) a[i] = -0.0f;  // std::max keeps -0: so must the twin
        for (float& v : b) v = d(rng);
        for (int64_t i = 0; i < m; ++i)
          for (int64_t p = 0; p < k; ++p) at[static_cast<size_t>(p * m + i)] = a[static_cast<size_t>(i * k + p)];
        std::vector<float> want(static_cast<size_t>(m * n)), want_t(want.size());
        dtd::detail::sgemm(false, false, m, n, k, a.data(), k, b.data(), n, want.data(), n);
        dtd::detail::sgemm(true, false, m, n, k, at.data(), m, b.data(), n, want_t.data(), n);
        std::vector<float> packed(static_cast<size_t>(dtd::detail::sgemm_packed_size(m, k))), packed_t(packed.size());
        dtd::detail::sgemm_pack_a(m, m, k, a.data(), nullptr, k, packed.data());
        dtd::detail::sgemm_pack_a_transposed(m, k, at.data(), m, packed_t.data());
        std::vector<float> a_pos(a.size()), packed_pos(packed.size());
        for (size_t i = 0; i < a.size(); ++i) a_pos[i] = std::max(a[i], 0.0f);
        dtd::detail::sgemm_pack_a(m, m, k, a_pos.data(), nullptr, k, packed_pos.data());
        const StoredRows rows{b.data(), n};
        const std::string what = "narrow " + std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k);
        check(want == want_t, what + ": sgemm over A and over A^T differ");
        check(relative_error(false, false, m, n, k, a, k, b, n, want, n) < 1e-5, what + ": sgemm wrong");
        for (int threads : {1, 2}) {
          omp_set_num_threads(threads);
          std::vector<float> got(want.size(), 7.0f), got_t(want.size(), 7.0f);
          dtd::detail::gemm_rows_packed(m, n, k, packed.data(), stored_rows, &rows, 0, got.data(), n);
          dtd::detail::gemm_rows_packed(m, n, k, packed_t.data(), stored_rows, &rows, 0, got_t.data(), n);
          check(got == want, what + ": packed A differs from sgemm, " + std::to_string(threads) + " thread(s)");
          check(got_t == want, what + ": packed A^T differs from sgemm, " + std::to_string(threads) + " thread(s)");
          if (n <= dtd::detail::sgemm_narrow_columns()) {
            // the twin product: C and max(A, 0) B from one pass, against the product over max(A, 0) packed apart
            std::vector<float> twin(want.size(), 7.0f), twin_pos(want.size(), 7.0f), pos_want(want.size());
            dtd::detail::gemm_rows_packed_positive(m, n, k, packed.data(), stored_rows, &rows, 0, twin.data(), n,
                                                   twin_pos.data(), n);
            dtd::detail::gemm_rows_packed(m, n, k, packed_pos.data(), stored_rows, &rows, 0, pos_want.data(), n);
            check(twin == want, what + ": twin C differs from sgemm, " + std::to_string(threads) + " thread(s)");
            check(twin_pos == pos_want, what + ": twin max(A, 0) B differs from its packed product, " +
                                            std::to_string(threads) + " thread(s)");
          }
        }
        omp_set_num_threads(saved);
      }
}

}  // namespace

int main() {
  if (!dtd::detail::sgemm_available()) {
    std::printf("dtd::detail::sgemm is not in this build (it needs AVX-512F or AVX2 + FMA): nothing to test\n");
    return 0;
  }
  std::mt19937 rng(7);
  std::vector<Case> cases;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      // single elements, edge tiles in both directions (tiles of 6x16 for AVX2, 8x32 for AVX-512), k across the
      // depth block (256), m across the row block (120 for AVX2, 168 for AVX-512), n across the column block (256 or
      // 384), and row strides larger than the rows
      cases.push_back({ta, tb, 1, 1, 1, 0});
      cases.push_back({ta, tb, 5, 13, 3, 0});
      cases.push_back({ta, tb, 6, 16, 256, 0});
      cases.push_back({ta, tb, 37, 45, 257, 3});
      cases.push_back({ta, tb, 121, 33, 600, 1});
      cases.push_back({ta, tb, 14, 32, 31, 0});
      cases.push_back({ta, tb, 8, 32, 31, 0});
      cases.push_back({ta, tb, 29, 65, 17, 1});
      cases.push_back({ta, tb, 171, 300, 70, 0});
      cases.push_back({ta, tb, 64, 200, 27, 0});
      cases.push_back({ta, tb, 13, 3100, 40, 2});
      cases.push_back({ta, tb, 50, 260, 300, 0});  // A packed for the whole, read in place for a block of C
      cases.push_back({ta, tb, 16, 800, 600, 1});  // a dense layer at batch 16: blocks of B in both directions
    }
  cases.push_back({false, false, 3, 5, 0, 1});  // k = 0: C = 0
  for (const Case& c : cases) test_case(c, rng);
  test_threads_bit_identical();
  test_stacked_rows();
  test_few_rows();
  test_narrow();
  if (failures) {
    std::printf("%d check(s) failed\n", failures);
    return 1;
  }
  std::printf("all gemm checks passed (%zu cases, kernel %s)\n", cases.size(), dtd::detail::sgemm_kernel_name());
  return 0;
}
