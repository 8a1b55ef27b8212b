// Packed single-precision GEMM (see gemm.hpp). Loop structure after BLIS (Van Zee & van de Geijn, "BLIS: A
// Framework for Rapidly Instantiating BLAS Functionality", ACM TOMS 2015): B is packed in blocks of kKC x kNC
// (shared by all rows), A in blocks of kMC x kKC (L2-resident), and a kMR x kNR micro-kernel keeps its tile of C in
// registers while it streams one packed column panel of A and one row panel of B.
#include "gemm.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

// A micro-kernel for AVX-512 (16 lanes) and one for AVX2 + FMA (8 lanes): the build's instruction-set level picks
// one (each Python variant is a whole-library build for one level, python/dtd/_variant.py).
#if defined(__AVX512F__)
#define DTD_HAVE_SGEMM 1
#define DTD_SGEMM_AVX512 1
#include <immintrin.h>
#elif defined(__AVX2__) && defined(__FMA__)
#define DTD_HAVE_SGEMM 1
#include <immintrin.h>
#endif

namespace dtd::detail {

#ifdef DTD_HAVE_SGEMM

namespace {

#ifdef DTD_SGEMM_AVX512
struct Simd {
  using Reg = __m512;
  static constexpr int kLanes = 16;
  static Reg zero() { return _mm512_setzero_ps(); }
  static Reg load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, Reg v) { _mm512_storeu_ps(p, v); }
  static Reg broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  static Reg add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
  static Reg max(Reg a, Reg b) { return _mm512_max_ps(a, b); }  // b where neither is greater (0, -0; NaN)
  // The narrow kernel's rows in the lanes: two 8-row panels, lanes 0-7 from p0, 8-15 from p1.
  static constexpr int kRowsPerVector = 16;
  static Reg load_panels(const float* p0, const float* p1) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(p0)), _mm256_loadu_ps(p1), 1);
  }
};

// 8 x (2 vectors) accumulators (16 of the 32 registers), the B row in two more, A's element broadcast from memory.
// Eight rows divide the channel counts of real networks (64 to 512), where 14 left 6 of every 70 rows empty at 64
// channels; and the tile runs faster even where no row is wasted: on a Zen 5 EPYC, 8x32 against 14x32 (and 12x32),
// one core, products shaped like convolutions (m x n x k = 64x392x576 to 512x392x4608, 512x49x4608) 162-186 against
// 150-175 (146-184) GFLOP/s, 1024^3 207 against 182 (bench/RESULTS.md, 2026-12-04). On a Sapphire Rapids Xeon the
// shapes 14x32, 12x32, 10x32, 8x32, 8x48 and 6x64 measured the same within the noise (RESULTS.md, 2026-12-02).
constexpr int64_t kMR = 8;
constexpr int64_t kNV = 2;
constexpr int64_t kKC = 256;  // depth of a packed block: a B micro-panel (kKC x kNR floats = 32 KB) stays in L1
constexpr int64_t kMC = 168;  // rows of a packed A block (kMC x kKC floats = 168 KB, in L2); a multiple of kMR
// Columns of a packed B block (384 KB, in L2 beside A's block; a multiple of kNR): with 3072 (3 MB) the panels just
// packed were read back from L3. One core, sgemm_rows_packed: 64 x 3136 x 576 (ResNet's 56x56 convolutions)
// 1.54-1.60 -> 1.16-1.18 ms, 128 x 12544 x 576 11.2-11.6 -> 9.8-10.0, 512 x 784 x 4608 16.7-17.0 -> 15.6-16.0,
// 1024^3 and 512 x 392 x 4608 the same (256 measured like 384).
constexpr int64_t kNC = 384;
#else
struct Simd {
  using Reg = __m256;
  static constexpr int kLanes = 8;
  static Reg zero() { return _mm256_setzero_ps(); }
  static Reg load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, Reg v) { _mm256_storeu_ps(p, v); }
  static Reg broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  static Reg add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
  static Reg max(Reg a, Reg b) { return _mm256_max_ps(a, b); }  // b where neither is greater (0, -0; NaN)
  // The narrow kernel's rows in the lanes: one 6-row panel, lanes 6 and 7 zero.
  static constexpr int kRowsPerVector = 6;
  static Reg load_panels(const float* p0, const float*) {
    return _mm256_maskload_ps(p0, _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, 0, 0));
  }
};

// 6 x (2 vectors) accumulators: 12 registers, enough independent FMA chains to hide the FMA latency on two ports.
constexpr int64_t kMR = 6;
constexpr int64_t kNV = 2;
constexpr int64_t kKC = 256;  // depth of a packed block: a B micro-panel (kKC x kNR) stays in L1
constexpr int64_t kMC = 120;  // rows of a packed A block (kMC x kKC floats = 120 KB, in L2); a multiple of kMR
// Columns of a packed B block (256 KB, in L2 beside A's block, also where L2 is 512 KB; a multiple of kNR): the v3
// build on the Zen 5 machine, 64 x 3136 x 576 3.18-3.21 -> 2.37-2.52 ms, 128 x 12544 x 576 20.0 -> 18.0-18.2,
// 1024^3 18.1-18.3 -> 17.6-17.9 (3072: the panels read back from L3).
constexpr int64_t kNC = 256;
#endif
constexpr int64_t kNR = kNV * Simd::kLanes;
constexpr int64_t kDirectColumns = 256;  // up to this many columns, A is read in place, not packed
#ifdef DTD_SGEMM_AVX512
constexpr int64_t kNarrowColumns = 20;  // up to this many columns, the narrow kernel (rows in the lanes)
constexpr int64_t kNarrowGroup = 8;     // columns per narrow tile, at most
constexpr int64_t kNarrowChunk = 64;    // rows of A per chunk of the narrow kernel: a multiple of its tiles' rows
#else
constexpr int64_t kNarrowColumns = 10;
constexpr int64_t kNarrowGroup = 6;
constexpr int64_t kNarrowChunk = 48;
#endif

// Whether a product of n columns runs the narrow kernel (A packed once: packing per call costs more than it saves).
constexpr bool narrow_product(int64_t n, bool prepacked) {
  return prepacked && n <= kNarrowColumns;
}

// c[kMR x kNR] (row stride ldc) = A bp, plus c's old value when `accumulate`; bp: kc x kNR. A's element (r, p) is
// rows[r][p * cs]: a packed panel (rows[r] = ap + r, cs = kMR) or op(A) read in place.
template <int64_t CS>
void micro_kernel(int64_t kc, const float* const* rows, int64_t cs, const float* bp, float* c, int64_t ldc,
                  bool accumulate) {
  if constexpr (CS > 0) cs = CS;
  Simd::Reg acc[kMR][kNV];
#pragma GCC unroll 16
  for (int r = 0; r < kMR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) acc[r][v] = Simd::zero();
  const float* a[kMR];
#pragma GCC unroll 16
  for (int r = 0; r < kMR; ++r) a[r] = rows[r];
#pragma GCC unroll 4
  for (int64_t p = 0; p < kc; ++p) {
    Simd::Reg b[kNV];
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) b[v] = Simd::load(bp + v * Simd::kLanes);
    const int64_t off = p * cs;
    // A packed: its panels lie one after another, so 4 KB ahead is this panel's later steps or the next tile's
    // panel. The hardware prefetchers alone left the kernel waiting on A where A streams from L3 (512 x 49 x 4608,
    // a deep layer at batch 1: 1.45-1.66 ms without, 1.26-1.29 with; in L2 the same).
    if constexpr (CS > 0) _mm_prefetch(reinterpret_cast<const char*>(a[0] + off) + 4096, _MM_HINT_T0);
#pragma GCC unroll 16
    for (int r = 0; r < kMR; ++r) {
      const Simd::Reg ar = Simd::broadcast(a[r] + off);
#pragma GCC unroll 4
      for (int v = 0; v < kNV; ++v) acc[r][v] = Simd::fma(ar, b[v], acc[r][v]);
    }
    bp += kNR;
  }
#pragma GCC unroll 16
  for (int r = 0; r < kMR; ++r) {
    float* cr = c + r * ldc;
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) {
      if (accumulate) acc[r][v] = Simd::add(acc[r][v], Simd::load(cr + v * Simd::kLanes));
      Simd::store(cr + v * Simd::kLanes, acc[r][v]);
    }
  }
}

// One tile of C: the full kernel where the tile is whole, else into a local tile and then its valid part into c.
// The sums are the same FMA sequence either way, so an element's value does not depend on where the tiles fall.
void tile(int64_t kc, const float* const* rows, int64_t cs, bool packed, const float* bp, float* c, int64_t ldc,
          bool accumulate, int64_t mr, int64_t nr) {
  auto run = [&](float* dst, int64_t ld, bool acc) {
    if (packed)
      micro_kernel<kMR>(kc, rows, cs, bp, dst, ld, acc);
    else
      micro_kernel<0>(kc, rows, cs, bp, dst, ld, acc);
  };
  if (mr == kMR && nr == kNR) return run(c, ldc, accumulate);
  alignas(64) float part[kMR * kNR];
  run(part, kNR, false);
  for (int64_t r = 0; r < mr; ++r)
    for (int64_t j = 0; j < nr; ++j)
      c[r * ldc + j] = accumulate ? c[r * ldc + j] + part[r * kNR + j] : part[r * kNR + j];
}

// The narrow kernel, for products with few columns (n <= kNarrowColumns: a deep layer's 4x4 or 2x2 output at batch
// 1, where a kNR-wide tile would leave 12 or 28 of its 32 columns empty), over A packed once: the rows of C in the
// vector lanes and B's elements broadcast. A tile is RV vectors of rows (RV * Simd::kRowsPerVector rows) by NCOL
// columns; panels[q] is the tile's q-th panel of kMR rows (element (r, p) at [p * kMR + r]); bp: B's block as
// pack_b lays out one panel (element (p, j) at [p * kNR + j]). kTwin: also c2 = max(A, 0) B, from the same loads
// (z+'s denominator next to the forward: the weights stream once, not as [w; w+]).
// Each C element gets micro_kernel's FMA sequence (a chain over the block's depth from zero, then added to C's old
// value when `accumulate`), so its value does not depend on which of the two kernels computed it; max(0, a) is
// std::max(a, 0) bit for bit (-0 and NaN kept), so c2 equals the product over packed w+.
template <int NCOL, int RV, bool kTwin>
void narrow_kernel(int64_t kc, const float* const* panels, const float* bp, float* c, int64_t ldc, float* c2,
                   int64_t ldc2, bool accumulate, int64_t mr) {
  constexpr int kRows = Simd::kRowsPerVector, kPanels = kRows / kMR;  // panels per vector: 2 (AVX-512), 1 (AVX2)
  constexpr int kSets = kTwin ? 2 : 1;
  Simd::Reg acc[kSets][RV][NCOL];
#pragma GCC unroll 2
  for (int t = 0; t < kSets; ++t)
#pragma GCC unroll 8
    for (int v = 0; v < RV; ++v)
#pragma GCC unroll 8
      for (int j = 0; j < NCOL; ++j) acc[t][v][j] = Simd::zero();
  for (int64_t p = 0; p < kc; ++p) {
    Simd::Reg a[kSets][RV];
#pragma GCC unroll 8
    for (int v = 0; v < RV; ++v) {
      // each panel's stream 1 KB ahead (as in micro_kernel: the weights stream from L3 or memory here)
#pragma GCC unroll 2
      for (int h = 0; h < kPanels; ++h)
        _mm_prefetch(reinterpret_cast<const char*>(panels[v * kPanels + h] + p * kMR) + 1024, _MM_HINT_T0);
      a[0][v] = Simd::load_panels(panels[v * kPanels] + p * kMR, panels[v * kPanels + kPanels - 1] + p * kMR);
      if constexpr (kTwin) a[kSets - 1][v] = Simd::max(Simd::zero(), a[0][v]);
    }
#pragma GCC unroll 8
    for (int j = 0; j < NCOL; ++j) {
      const Simd::Reg b = Simd::broadcast(bp + p * kNR + j);
#pragma GCC unroll 2
      for (int t = 0; t < kSets; ++t)
#pragma GCC unroll 8
        for (int v = 0; v < RV; ++v) acc[t][v][j] = Simd::fma(a[t][v], b, acc[t][v][j]);
    }
  }
  alignas(64) float lanes[Simd::kLanes];
  for (int t = 0; t < kSets; ++t) {
    float* dst = t == 0 ? c : c2;
    const int64_t ld = t == 0 ? ldc : ldc2;
    for (int v = 0; v < RV; ++v) {
      const int64_t rows = std::min<int64_t>(kRows, mr - v * kRows);
      for (int j = 0; j < NCOL; ++j) {
        Simd::store(lanes, acc[t][v][j]);
        for (int64_t l = 0; l < rows; ++l) {
          float& e = dst[(v * kRows + l) * ld + j];
          e = accumulate ? e + lanes[l] : lanes[l];
        }
      }
    }
  }
}

// Vectors of rows per narrow tile for NCOL columns: enough independent sums to keep both FMA pipes busy, within the
// registers (32 for AVX-512, 16 for AVX2); the twin kernel holds two sets of sums.
template <int NCOL, bool kTwin>
constexpr int narrow_vectors() {
#ifdef DTD_SGEMM_AVX512
  return kTwin ? (NCOL >= 5 ? 1 : 2) : (NCOL >= 5 ? 2 : 4);
#else
  return kTwin ? (NCOL >= 3 ? 1 : 2) : (NCOL >= 3 ? 2 : 4);
#endif
}

// C[mc, NCOL] (row stride ldc) = the block's panels ap (kMR x kc each) times bp, in tiles of rows (and c2 with
// max(A, 0) for kTwin).
template <int NCOL, bool kTwin>
void narrow_group(int64_t kc, const float* ap, int64_t mc, const float* bp, float* c, int64_t ldc, float* c2,
                  int64_t ldc2, bool accumulate) {
  constexpr int RV = narrow_vectors<NCOL, kTwin>();
  constexpr int64_t kTilePanels = RV * (Simd::kRowsPerVector / kMR), kTileRows = kTilePanels * kMR;
  const int64_t last_panel = (mc - 1) / kMR;
  for (int64_t i = 0; i < mc; i += kTileRows) {
    const float* panels[kTilePanels];
    for (int64_t q = 0; q < kTilePanels; ++q)  // panels past the block repeat its last one (their rows discarded)
      panels[q] = ap + std::min(i / kMR + q, last_panel) * kMR * kc;
    narrow_kernel<NCOL, RV, kTwin>(kc, panels, bp, c + i * ldc, ldc, kTwin ? c2 + i * ldc2 : nullptr, ldc2, accumulate,
                                   std::min(kTileRows, mc - i));
  }
}

template <bool kTwin>
void narrow_dispatch(int64_t width, int64_t kc, const float* ap, int64_t mc, const float* bp, float* c, int64_t ldc,
                     float* c2, int64_t ldc2, bool accumulate) {
  switch (width) {
#define DTD_NARROW_CASE(W) \
  case W: return narrow_group<W, kTwin>(kc, ap, mc, bp, c, ldc, c2, ldc2, accumulate);
    DTD_NARROW_CASE(1)
    DTD_NARROW_CASE(2)
    DTD_NARROW_CASE(3)
    DTD_NARROW_CASE(4)
    DTD_NARROW_CASE(5)
    DTD_NARROW_CASE(6)
#ifdef DTD_SGEMM_AVX512
    DTD_NARROW_CASE(7)
    DTD_NARROW_CASE(8)
#endif
#undef DTD_NARROW_CASE
    default: throw std::logic_error("dtd::detail::sgemm: narrow column group of an unexpected width");
  }
}

// The narrow kernel over one block: rows in chunks of kNarrowChunk (a chunk of A stays in L1 or L2 while every
// column group reads it: A streams from memory once), and in each chunk the columns in groups of at most
// kNarrowGroup, of even sizes. c2 (may be null): also max(A, 0) B there.
void narrow_block(int64_t kc, const float* ap, int64_t mc, const float* bp, int64_t n, float* c, int64_t ldc, float* c2,
                  int64_t ldc2, bool accumulate) {
  const int64_t groups = (n + kNarrowGroup - 1) / kNarrowGroup;
  for (int64_t i = 0; i < mc; i += kNarrowChunk) {
    const int64_t rows = std::min(kNarrowChunk, mc - i);
    const float* api = ap + i * kc;  // chunks start at a panel: kNarrowChunk % kMR == 0
    for (int64_t g = 0, j0 = 0; g < groups; ++g) {
      const int64_t width = n / groups + (g < n % groups ? 1 : 0);
      if (c2 != nullptr)
        narrow_dispatch<true>(width, kc, api, rows, bp + j0, c + i * ldc + j0, ldc, c2 + i * ldc2 + j0, ldc2,
                              accumulate);
      else
        narrow_dispatch<false>(width, kc, api, rows, bp + j0, c + i * ldc + j0, ldc, nullptr, 0, accumulate);
      j0 += width;
    }
  }
}

// op(A), row-major with row stride lda: A, or A^T when `trans`; untransposed, its rows from `split` on may come
// from a second block (`below`: [A_top; A_below] without a copy, see sgemm_pack_a).
struct AOperand {
  bool trans;
  const float* a;
  int64_t lda;
  const float* below = nullptr;
  int64_t split = INT64_MAX;
  // Row i of op(A) (untransposed only).
  const float* row(int64_t i) const { return i < split ? a + i * lda : below + (i - split) * lda; }
  // Or all of op(A) packed once (sgemm_pack_a of panel_rows rows), the rows here from row0 on.
  const float* packed = nullptr;
  int64_t panel_rows = 0, row0 = 0;
};

// Panels of kMR rows of op(A)[i0 : i0 + mc, p0 : p0 + kc]: ap[panel][p][r], zero past mc.
void pack_a(const AOperand& op, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float* ap) {
  for (int64_t ir = 0; ir < mc; ir += kMR) {
    const int64_t mr = std::min(kMR, mc - ir);
    float* dst = ap + ir * kc;
    if (!op.trans) {
      for (int64_t r = 0; r < mr; ++r) {
        const float* src = op.row(i0 + ir + r) + p0;
        for (int64_t p = 0; p < kc; ++p) dst[p * kMR + r] = src[p];
      }
    } else {
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = op.a + (p0 + p) * op.lda + i0 + ir;
        for (int64_t r = 0; r < mr; ++r) dst[p * kMR + r] = src[r];
      }
    }
    if (mr < kMR)
      for (int64_t p = 0; p < kc; ++p) std::fill(dst + p * kMR + mr, dst + (p + 1) * kMR, 0.0f);
  }
}

// One row of a B panel: nr (<= kNR) floats from src, zeros up to kNR. Whole rows with vector moves: a call of
// memmove per row cost a quarter of a 64 x 3136 x 576 product.
inline void panel_row(const float* src, int64_t nr, float* dst) {
  if (nr == kNR) {
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) Simd::store(dst + v * Simd::kLanes, Simd::load(src + v * Simd::kLanes));
    return;
  }
  for (int64_t j = 0; j < nr; ++j) dst[j] = src[j];
  for (int64_t j = nr; j < kNR; ++j) dst[j] = 0.0f;
}

// Panels of kNR columns of op(B)[p0 : p0 + kc, j0 : j0 + nc]: bp[panel][p][j], zero past nc.
void pack_b(bool trans, const float* b, int64_t ldb, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* bp) {
  for (int64_t jr = 0; jr < nc; jr += kNR) {
    const int64_t nr = std::min(kNR, nc - jr);
    float* dst = bp + jr * kc;
    if (!trans) {
      for (int64_t p = 0; p < kc; ++p) {
        panel_row(b + (p0 + p) * ldb + j0 + jr, nr, dst + p * kNR);
      }
    } else {
      for (int64_t j = 0; j < nr; ++j) {
        const float* src = b + (j0 + jr + j) * ldb + p0;
        for (int64_t p = 0; p < kc; ++p) dst[p * kNR + j] = src[p];
      }
      if (nr < kNR)
        for (int64_t p = 0; p < kc; ++p) std::fill(dst + p * kNR + nr, dst + (p + 1) * kNR, 0.0f);
    }
  }
}

}  // namespace

bool sgemm_available() {
  // DTD_SGEMM=0 turns the micro-kernel off for the whole process (Eigen's GEMM everywhere): a testing knob, so that
  // one build can run both GEMM paths (tools/sanitize.sh). Read once; results differ in the last bits between paths.
  static const bool enabled = [] {
    const char* v = std::getenv("DTD_SGEMM");
    return v == nullptr || std::string(v) != "0";
  }();
  return enabled;
}

const char* sgemm_kernel_name() {
#ifdef DTD_SGEMM_AVX512
  static const std::string name = "avx512 " + std::to_string(kMR) + "x" + std::to_string(kNR);
#else
  static const std::string name = "avx2 " + std::to_string(kMR) + "x" + std::to_string(kNR);
#endif
  return name.c_str();
}

int64_t sgemm_tile_rows() {
  return kMR;
}

int64_t sgemm_tile_columns() {
  return kNR;
}

namespace {

// The loops of sgemm over any source of B: pack_block(p0, kc, j0, nc, dst) writes B's block in panels into dst,
// or finds it packed already, and returns where the block's panels are.
// c2 (narrow products only, may be null): also C2 = max(op(A), 0) op(B) there, row stride ldc2.
template <class PackB>
void sgemm_loops(const AOperand& op, int64_t m, int64_t n, int64_t k, PackB&& pack_block, float* c, int64_t ldc,
                 float* c2 = nullptr, int64_t ldc2 = 0) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.0f);
    if (c2 != nullptr)
      for (int64_t i = 0; i < m; ++i) std::fill(c2 + i * ldc2, c2 + i * ldc2 + n, 0.0f);
    return;
  }
  thread_local std::vector<float> a_pack, b_pack;
  const int64_t nc_max = std::min(kNC, (n + kNR - 1) / kNR * kNR);
  // With few columns a packed panel of A would serve few tiles of C and its packing would cost as much as the
  // products: the kernel then reads op(A) where it lies. Either way every C element gets the same FMA sequence.
  const bool prepacked = op.packed != nullptr;
  // Few columns: the narrow kernel (rows in the lanes), where A comes packed once (sgemm_pack_a). A read in place
  // keeps micro_kernel: packing it for each call, A or A^T, cost more than the lanes it would save (512 x 4 x 4608:
  // A^T packed then the narrow kernel 0.69 ms, micro_kernel over A^T in place 0.69 ms; packed once, 0.22 ms).
  const bool narrow = narrow_product(n, prepacked);
  const bool pack = prepacked || n > kDirectColumns;
  if (c2 != nullptr && !narrow) throw std::logic_error("dtd::detail::sgemm: a twin product that is not narrow");
  if (pack && !prepacked && a_pack.size() < static_cast<size_t>(kMC * kKC))
    a_pack.resize(static_cast<size_t>(kMC * kKC));
  if (b_pack.size() < static_cast<size_t>(kKC * nc_max)) b_pack.resize(static_cast<size_t>(kKC * nc_max));
  const int64_t cs = op.trans ? op.lda : 1;  // op(A)'s element (i, p) is row(i)[p * cs]
  for (int64_t jc = 0; jc < n; jc += kNC) {
    const int64_t nc = std::min(kNC, n - jc);
    for (int64_t pc = 0; pc < k; pc += kKC) {
      const int64_t kc = std::min(kKC, k - pc);
      const bool accumulate = pc > 0;
      const float* bk = pack_block(pc, kc, jc, nc, b_pack.data());
      for (int64_t ic = 0; ic < m; ic += kMC) {
        const int64_t mc = std::min(kMC, m - ic);
        // block pc of a prepacked A: panel_rows x kc floats from pc * panel_rows on, its panels kMR x kc each
        const float* ap = prepacked ? op.packed + pc * op.panel_rows + (op.row0 + ic) * kc : a_pack.data();
        if (pack && !prepacked) pack_a(op, ic, mc, pc, kc, a_pack.data());
        if (narrow) {
          narrow_block(kc, ap, mc, bk, nc, c + ic * ldc + jc, ldc, c2 != nullptr ? c2 + ic * ldc2 + jc : nullptr, ldc2,
                       accumulate);
          continue;
        }
        for (int64_t jr = 0; jr < nc; jr += kNR) {
          const int64_t nr = std::min(kNR, nc - jr);
          const float* bp = bk + jr * kc;
          for (int64_t ir = 0; ir < mc; ir += kMR) {
            const int64_t mr = std::min(kMR, mc - ir);
            const float* rows[kMR];
            for (int64_t r = 0; r < kMR; ++r) {
              const int64_t rr = std::min(r, mr - 1);  // rows past the edge repeat the last one (discarded)
              const int64_t i = ic + ir + rr;
              rows[r] = pack ? ap + ir * kc + r : (op.trans ? op.a + i : op.row(i)) + pc * cs;
            }
            tile(kc, rows, pack ? kMR : cs, pack, bp, c + (ic + ir) * ldc + jc + jr, ldc, accumulate, mr, nr);
          }
        }
      }
    }
  }
}

}  // namespace

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
           int64_t ldb, float* c, int64_t ldc) {
  sgemm_loops(
      AOperand{trans_a, a, lda}, m, n, k,
      [&](int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* dst) -> const float* {
        pack_b(trans_b, b, ldb, p0, kc, j0, nc, dst);
        return dst;
      },
      c, ldc);
}

int64_t sgemm_packed_b_size(int64_t k, int64_t n) {
  return k * ((n + kNR - 1) / kNR * kNR);
}

// Block (pc, jc) of a B packed whole: the blocks of kNC columns one after another (each k x its columns rounded
// up to whole panels), within one the blocks of depth, each as pack_b lays it out.
void sgemm_pack_b(bool trans_b, int64_t k, int64_t n, const float* b, int64_t ldb, float* dst) {
  for (int64_t jc = 0; jc < n; jc += kNC) {
    const int64_t nc = std::min(kNC, n - jc), padded = (nc + kNR - 1) / kNR * kNR;
    for (int64_t pc = 0; pc < k; pc += kKC)
      pack_b(trans_b, b, ldb, pc, std::min(kKC, k - pc), jc, nc, dst + jc * k + pc * padded);
  }
}

void sgemm_packed_b(bool trans_a, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* packed_b,
                    float* c, int64_t ldc) {
  sgemm_loops(
      AOperand{trans_a, a, lda}, m, n, k,
      [&](int64_t p0, int64_t, int64_t j0, int64_t nc, float*) -> const float* {
        return packed_b + j0 * k + p0 * ((nc + kNR - 1) / kNR * kNR);
      },
      c, ldc);
}

namespace {

void rows_loops(const AOperand& op, int64_t m, int64_t n, int64_t k, BRows b_rows, const void* context, int64_t col0,
                float* c, int64_t ldc, float* c2 = nullptr, int64_t ldc2 = 0) {
  // floats of rows staged between b_rows and the panels (4 KB; 16 KB measured slower)
  constexpr int64_t kStaging = 1024;
  thread_local std::vector<float> rows;
  if (rows.size() < static_cast<size_t>(std::max(kNC, kStaging)))
    rows.resize(static_cast<size_t>(std::max(kNC, kStaging)));
  const bool narrow = narrow_product(n, op.packed != nullptr);
  sgemm_loops(
      op, m, n, k,
      [&](int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* dst) -> const float* {
        if (nc <= kNR) {
          // one panel: the rows go straight into it; the narrow kernel reads no column past nc, micro_kernel does
          // (its results there discarded), so those are zeroed for it
          b_rows(context, p0, kc, col0 + j0, nc, dst, kNR);
          if (nc < kNR && !narrow)
            for (int64_t p = 0; p < kc; ++p) std::fill(dst + p * kNR + nc, dst + (p + 1) * kNR, 0.0f);
          return dst;
        }
        const int64_t block = std::max<int64_t>(1, kStaging / nc);
        for (int64_t p = 0; p < kc; p += block) {
          const int64_t h = std::min(block, kc - p);
          b_rows(context, p0 + p, h, col0 + j0, nc, rows.data(), nc);
          for (int64_t r = 0; r < h; ++r)
            for (int64_t jr = 0; jr < nc; jr += kNR)
              panel_row(rows.data() + r * nc + jr, std::min(kNR, nc - jr), dst + jr * kc + (p + r) * kNR);
        }
        return dst;
      },
      c, ldc, c2, ldc2);
}

}  // namespace

void sgemm_rows(bool trans_a, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, BRows b_rows,
                const void* context, int64_t col0, float* c, int64_t ldc) {
  rows_loops(AOperand{trans_a, a, lda}, m, n, k, b_rows, context, col0, c, ldc);
}

int64_t sgemm_packed_size(int64_t m, int64_t k) {
  return (m + kMR - 1) / kMR * kMR * k;
}

void sgemm_pack_a(int64_t m, int64_t split, int64_t k, const float* a_top, const float* a_below, int64_t lda,
                  float* dst) {
  const AOperand op{false, a_top, lda, a_below, split};
  const int64_t panel_rows = (m + kMR - 1) / kMR * kMR;
  for (int64_t pc = 0; pc < k; pc += kKC) {
    const int64_t kc = std::min(kKC, k - pc);
    pack_a(op, 0, m, pc, kc, dst + pc * panel_rows);
  }
}

void sgemm_pack_a_transposed(int64_t m, int64_t k, const float* a, int64_t lda, float* dst) {
  const AOperand op{true, a, lda};
  const int64_t panel_rows = (m + kMR - 1) / kMR * kMR;
  for (int64_t pc = 0; pc < k; pc += kKC) {
    const int64_t kc = std::min(kKC, k - pc);
    pack_a(op, 0, m, pc, kc, dst + pc * panel_rows);
  }
}

int64_t sgemm_narrow_columns() {
  return kNarrowColumns;
}

void sgemm_rows_packed_positive(int64_t m, int64_t n, int64_t k, const float* packed, int64_t m_total, int64_t row0,
                                BRows b_rows, const void* context, int64_t col0, float* c, int64_t ldc, float* c_pos,
                                int64_t ldc_pos) {
  if (row0 % kMR != 0 || row0 + m > m_total || n > kNarrowColumns)
    throw std::logic_error("dtd::detail::sgemm_rows_packed_positive: rows outside the packed A or too many columns");
  AOperand op{false, nullptr, 0};
  op.packed = packed, op.panel_rows = (m_total + kMR - 1) / kMR * kMR, op.row0 = row0;
  rows_loops(op, m, n, k, b_rows, context, col0, c, ldc, c_pos, ldc_pos);
}

void sgemm_rows_packed(int64_t m, int64_t n, int64_t k, const float* packed, int64_t m_total, int64_t row0,
                       BRows b_rows, const void* context, int64_t col0, float* c, int64_t ldc) {
  if (row0 % kMR != 0 || row0 + m > m_total)
    throw std::logic_error("dtd::detail::sgemm_rows_packed: rows outside the packed A or not at a panel");
  AOperand op{false, nullptr, 0};
  op.packed = packed, op.panel_rows = (m_total + kMR - 1) / kMR * kMR, op.row0 = row0;
  rows_loops(op, m, n, k, b_rows, context, col0, c, ldc);
}

#else  // neither AVX-512F nor AVX2 + FMA in this build: callers use Eigen

bool sgemm_available() {
  return false;
}

const char* sgemm_kernel_name() {
  return "none";
}

int64_t sgemm_tile_rows() {
  return 1;
}

int64_t sgemm_tile_columns() {
  return 1;
}

void sgemm(bool, bool, int64_t, int64_t, int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t) {
  throw std::logic_error("dtd::detail::sgemm: this build has no micro-kernel (check sgemm_available())");
}

void sgemm_rows(bool, int64_t, int64_t, int64_t, const float*, int64_t, BRows, const void*, int64_t, float*, int64_t) {
  throw std::logic_error("dtd::detail::sgemm_rows: this build has no micro-kernel (check sgemm_available())");
}

int64_t sgemm_packed_size(int64_t, int64_t) {
  return 0;
}

void sgemm_pack_a(int64_t, int64_t, int64_t, const float*, const float*, int64_t, float*) {
  throw std::logic_error("dtd::detail::sgemm_pack_a: this build has no micro-kernel (check sgemm_available())");
}

void sgemm_pack_a_transposed(int64_t, int64_t, const float*, int64_t, float*) {
  throw std::logic_error(
      "dtd::detail::sgemm_pack_a_transposed: this build has no micro-kernel (check sgemm_available())");
}

int64_t sgemm_narrow_columns() {
  return 0;
}

void sgemm_rows_packed_positive(int64_t, int64_t, int64_t, const float*, int64_t, int64_t, BRows, const void*, int64_t,
                                float*, int64_t, float*, int64_t) {
  throw std::logic_error("dtd::detail::sgemm_rows_packed_positive: this build has no micro-kernel");
}

void sgemm_rows_packed(int64_t, int64_t, int64_t, const float*, int64_t, int64_t, BRows, const void*, int64_t, float*,
                       int64_t) {
  throw std::logic_error("dtd::detail::sgemm_rows_packed: this build has no micro-kernel (check sgemm_available())");
}

int64_t sgemm_packed_b_size(int64_t, int64_t) {
  return 0;
}

void sgemm_pack_b(bool, int64_t, int64_t, const float*, int64_t, float*) {
  throw std::logic_error("dtd::detail::sgemm_pack_b: this build has no micro-kernel (check sgemm_available())");
}

void sgemm_packed_b(bool, int64_t, int64_t, int64_t, const float*, int64_t, const float*, float*, int64_t) {
  throw std::logic_error("dtd::detail::sgemm_packed_b: this build has no micro-kernel (check sgemm_available())");
}

#endif

}  // namespace dtd::detail
