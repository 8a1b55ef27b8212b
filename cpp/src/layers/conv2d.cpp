#include "conv2d.hpp"

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "../checked.hpp"
#include "../eigen_maps.hpp"
#include "../geometry.hpp"
#include "../winograd.hpp"

namespace dtd {

template <class T>
Conv2d<T>::Conv2d(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes)
    : LinearLayer<T>(spec, std::move(inputs), std::move(input_shapes)) {
  const Shape& x = this->input_shapes()[0];
  DTD_CHECK(x.size() >= 2 && x.size() <= 4, ModelError, "conv layer '", spec.name,
            "': input must be [C, L], [C, H, W] or [C, D, H, W] per sample, got ", to_string(x));
  cin_ = x[0];
  auto wt = spec.weights.find("weight");
  DTD_CHECK(wt != spec.weights.end() && wt->second.shape.size() == x.size() + 1, ModelError, "conv layer '", spec.name,
            "': weight must be [Cout, Cin/group, k...] with one kernel axis per spatial axis of the input ",
            to_string(x), ", got ", wt == spec.weights.end() ? std::string("none") : to_string(wt->second.shape));
  const Shape& ws = wt->second.shape;
  cout_ = ws[0];
  group_ = detail::int_attr(spec, "group", 1);
  DTD_CHECK(group_ >= 1 && cin_ % group_ == 0 && cout_ % group_ == 0, ModelError, "conv layer '", spec.name,
            "': group ", group_, " does not divide input channels ", cin_, " and output channels ", cout_);
  DTD_CHECK(ws[1] == cin_ / group_, ModelError, "conv layer '", spec.name, "': weight has shape ", to_string(ws),
            " but the input has ", cin_, " channels and group = ", group_, " (expected ", cin_ / group_,
            " input channels per group)");
  const detail::Window g =
      detail::window(spec, Shape(x.begin() + 1, x.end()), std::vector<int64_t>(ws.begin() + 2, ws.end()), false);
  d_ = g.in[0], h_ = g.in[1], w_ = g.in[2];
  od_ = g.out[0], oh_ = g.out[1], ow_ = g.out[2];
  kd_ = g.kernel[0], kh_ = g.kernel[1], kw_ = g.kernel[2];
  stride_d_ = g.stride[0], stride_h_ = g.stride[1], stride_w_ = g.stride[2];
  dil_d_ = g.dil[0], dil_h_ = g.dil[1], dil_w_ = g.dil[2];
  pad_f_ = g.pad_begin[0], pad_t_ = g.pad_begin[1], pad_l_ = g.pad_begin[2];
  pointwise_ = true;
  for (size_t a = 0; a < 3; ++a)
    pointwise_ = pointwise_ && g.kernel[a] == 1 && g.stride[a] == 1 && g.pad_begin[a] == 0 && g.out[a] == g.in[a];
  winograd_ = std::is_same_v<T, float> && g.rank == 2 && kh_ == 3 && kw_ == 3 && stride_h_ == 1 && stride_w_ == 1 &&
              dil_h_ == 1 && dil_w_ == 1 && group_ == 1;
  this->load_weights(spec, ws, cout_);
  this->output_shape_ = {cout_};
  for (int64_t a = 3 - g.rank; a < 3; ++a) this->output_shape_.push_back(g.out[static_cast<size_t>(a)]);
  // The kernels form od * oh * ow (positions), cout * positions and (cin / group) * kd * kh * kw (taps) without
  // further checks: each is at most one of the products checked here.
  const int64_t positions = detail::checked_numel(Shape{od_, oh_, ow_}, detail::where(spec, "output positions"));
  const int64_t outputs = detail::checked_mul(cout_, positions, detail::where(spec, "output shape"));
  const int64_t taps = detail::checked_numel(Shape{cin_ / group_, kd_, kh_, kw_}, detail::where(spec, "kernel"));
  macs_ = detail::checked_mul(outputs, taps, detail::where(spec, "MAC count"));
}

namespace {

// What one row of the patch matrix needs of a convolution's geometry (three spatial axes, unit ones for 1-D/2-D).
struct PatchGeometry {
  int64_t d, h, w, oh, ow, kd, kh, kw, stride_d, stride_h, stride_w, dil_d, dil_h, dil_w, pad_f, pad_t, pad_l;
};

// d[0, n) = s[0, n) for the short runs of one output row (14 floats in LeNet's second conv, 7 in ResNet's last
// stage): fixed-size moves the compiler inlines, where std::copy called memmove for each run (a quarter of the
// time spent building the patch panels at 14x14, perf on LeNet at batch 16).
template <class T>
inline void copy_run(const T* s, int64_t n, T* d) {
  constexpr int64_t kBlock = 32 / sizeof(T);  // one AVX register
  int64_t r = 0;
  for (; r + kBlock <= n; r += kBlock) std::memcpy(d + r, s + r, sizeof(T) * kBlock);
  if (r == n) return;
  if (n >= kBlock) {  // the rest as one block that overlaps the last whole one
    std::memcpy(d + n - kBlock, s + n - kBlock, sizeof(T) * kBlock);
    return;
  }
  for (int64_t half = kBlock / 2; half >= 1; half /= 2)
    if (r + half <= n) std::memcpy(d + r, s + r, sizeof(T) * static_cast<size_t>(half)), r += half;
}

// dst[q] = xc[oz * sd - pf + kz * dd, oy * sh - pt + ki * dh, ox * sw - pl + kj * dw] (0 outside the input) for the
// output positions that follow (oz, oy, ox) in order, q < width: row (kz, ki, kj) of channel xc's patch matrix.
template <class T>
void patch_row_at(const PatchGeometry& g, const T* xc, int64_t kz, int64_t ki, int64_t kj, int64_t oz, int64_t oy,
                  int64_t ox, int64_t width, T* dst) {
  for (int64_t q = 0; q < width;) {
    const int64_t run = std::min(width - q, g.ow - ox);  // the rest of this output row
    const int64_t iz = oz * g.stride_d - g.pad_f + kz * g.dil_d;
    const int64_t iy = oy * g.stride_h - g.pad_t + ki * g.dil_h;
    if (iz < 0 || iz >= g.d || iy < 0 || iy >= g.h) {
      std::fill(dst + q, dst + q + run, T(0));
    } else {
      const T* src = xc + (iz * g.h + iy) * g.w;
      const int64_t off = kj * g.dil_w - g.pad_l;
      if (g.stride_w == 1) {
        // ix = ox + r + off: zeros left of the input, one contiguous run inside, zeros right of it
        const int64_t lo = std::clamp<int64_t>(-(ox + off), 0, run);
        const int64_t hi = std::clamp<int64_t>(g.w - (ox + off), lo, run);
        std::fill(dst + q, dst + q + lo, T(0));
        copy_run(src + ox + off + lo, hi - lo, dst + q + lo);
        std::fill(dst + q + hi, dst + q + run, T(0));
      } else {
        for (int64_t r = 0; r < run; ++r) {
          const int64_t ix = (ox + r) * g.stride_w + off;
          dst[q + r] = (ix >= 0 && ix < g.w) ? src[ix] : T(0);
        }
      }
    }
    q += run;
    ox = 0;
    if (++oy == g.oh) oy = 0, ++oz;
  }
}

// dst[q] = xc[oz * sd - pf + kz * dd, oy * sh - pt + ki * dh, ox * sw - pl + kj * dw] for the output positions
// p0 + q, q < width (see patch_row_at).
template <class T>
void patch_row(const PatchGeometry& g, const T* xc, int64_t kz, int64_t ki, int64_t kj, int64_t p0, int64_t width,
               T* dst) {
  patch_row_at(g, xc, kz, ki, kj, p0 / g.ow / g.oh, (p0 / g.ow) % g.oh, p0 % g.ow, width, dst);
}

// The patch matrix of one group over consecutive samples, its columns sample-major from the first sample's: row
// (c, kz, ki, kj), column j is sample j / P, output position j % P. Fed to sgemm_rows.
struct PatchRows {
  PatchGeometry g;
  const float* x;                            // the first sample
  int64_t channel0, sample_size, positions;  // group's first channel, C*D*H*W, OD*OH*OW
};

// One sample's run of consecutive output positions among a block's columns.
struct Run {
  const float* x;      // the sample, the group's first channel
  int64_t oz, oy, ox;  // the run's first output position
  int64_t width, j;    // its length, its first column in the block
};

// Rows [row0, row0 + rows) of the patch matrix, columns [j0, j0 + width): where each sample's run of columns starts
// is worked out once per call, and the rows' (c, kz, ki, kj) step along without divisions.
void patch_rows(const void* context, int64_t row0, int64_t rows, int64_t j0, int64_t width, float* dst, int64_t ld) {
  const auto& s = *static_cast<const PatchRows*>(context);
  const PatchGeometry& g = s.g;
  const int64_t plane = g.d * g.h * g.w;
  thread_local std::vector<Run> runs;
  runs.clear();
  for (int64_t j = 0; j < width;) {
    const int64_t col = j0 + j, sample = col / s.positions, pos = col % s.positions;
    const int64_t run = std::min(width - j, s.positions - pos);
    runs.push_back({s.x + sample * s.sample_size + s.channel0 * plane, pos / g.ow / g.oh, (pos / g.ow) % g.oh,
                    pos % g.ow, run, j});
    j += run;
  }
  const int64_t taps = g.kd * g.kh * g.kw;
  int64_t c = row0 / taps, tap = row0 % taps;
  int64_t kz = tap / (g.kh * g.kw), ki = (tap / g.kw) % g.kh, kj = tap % g.kw;
  for (int64_t r = 0; r < rows; ++r) {
    for (const Run& u : runs)
      patch_row_at(g, u.x + c * plane, kz, ki, kj, u.oz, u.oy, u.ox, u.width, dst + r * ld + u.j);
    if (++kj == g.kw) {
      kj = 0;
      if (++ki == g.kh) {
        ki = 0;
        if (++kz == g.kd) kz = 0, ++c;
      }
    }
  }
}

// Rows of a stored [rows, ld] matrix, for sgemm_rows_packed.
struct StoredRows {
  const float* b;
  int64_t ld;
};

void stored_rows(const void* context, int64_t row0, int64_t rows, int64_t j0, int64_t width, float* dst, int64_t ld) {
  const auto& s = *static_cast<const StoredRows*>(context);
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = s.b + (row0 + r) * s.ld + j0;
    std::copy(src, src + width, dst + r * ld);
  }
}

// f(n0, nb) for the chunks of nb_max samples (the last one shorter). The chunks run in parallel, one per thread at a
// time, where they share out evenly: one parallel region per layer (regions are what costs when the workers sleep
// in between). Otherwise each chunk runs in parallel inside. Either way every product and sum is the same, so the
// results do not depend on the choice.
template <class F>
void for_each_chunk(int64_t batch, int64_t nb_max, F&& f) {
  const int64_t chunks = (batch + nb_max - 1) / nb_max;
  detail::parallel_for(
      chunks, [&](int64_t c) { f(c * nb_max, std::min(nb_max, batch - c * nb_max)); }, detail::share_evenly(chunks));
}

}  // namespace

// col[(c, kz, ki, kj), q] = x[group * cg + c, oz * sd - pf + kz * dd, oy * sh - pt + ki * dh, ox * sw - pl + kj * dw]
// (0 outside) for the output positions p = (oz * OH + oy) * OW + ox = p0 + q, q < width; rows of col are `ld` apart.
// One task per channel.
template <class T>
void Conv2d<T>::im2col(const T* x, int64_t group, T* col, int64_t p0, int64_t width, int64_t ld) const {
  const int64_t cg = cin_ / group_, taps = kd_ * kh_ * kw_;
  const PatchGeometry geo{d_,        h_,        w_,     oh_,    ow_,    kd_,    kh_,    kw_,   stride_d_,
                          stride_h_, stride_w_, dil_d_, dil_h_, dil_w_, pad_f_, pad_t_, pad_l_};
  detail::parallel_for(
      cg,
      [&](int64_t c) {
        const T* xc = x + (group * cg + c) * d_ * h_ * w_;
        for (int64_t kz = 0; kz < kd_; ++kz)
          for (int64_t ki = 0; ki < kh_; ++ki)
            for (int64_t kj = 0; kj < kw_; ++kj)
              patch_row(geo, xc, kz, ki, kj, p0, width, col + (c * taps + (kz * kh_ + ki) * kw_ + kj) * ld);
      },
      cg * taps * width >= detail::kParallelWork / 8);
}

// The adjoint of im2col: x += col for the output positions [p0, p0 + width), channels [c0, c1) of the group (all
// when c1 < 0). Each task owns one input channel, so there are no races and the summation order is fixed.
template <class T>
void Conv2d<T>::col2im(const T* col, int64_t group, T* x, int64_t p0, int64_t width, int64_t ld, int64_t c0,
                       int64_t c1) const {
  const int64_t cg = cin_ / group_, taps = kd_ * kh_ * kw_;
  if (c1 < 0) c1 = cg;
  const int64_t channels = c1 - c0;
  x += c0 * d_ * h_ * w_;
  detail::parallel_for(
      channels,
      [&](int64_t c) {
        T* xc = x + (group * cg + c) * d_ * h_ * w_;
        for (int64_t kz = 0; kz < kd_; ++kz)
          for (int64_t ki = 0; ki < kh_; ++ki)
            for (int64_t kj = 0; kj < kw_; ++kj) {
              const T* src = col + (c * taps + (kz * kh_ + ki) * kw_ + kj) * ld;
              int64_t oz = p0 / ow_ / oh_, oy = (p0 / ow_) % oh_, ox = p0 % ow_;
              for (int64_t q = 0; q < width;) {
                const int64_t run = std::min(width - q, ow_ - ox);
                const int64_t iz = oz * stride_d_ - pad_f_ + kz * dil_d_;
                const int64_t iy = oy * stride_h_ - pad_t_ + ki * dil_h_;
                if (iz >= 0 && iz < d_ && iy >= 0 && iy < h_) {
                  T* dst = xc + (iz * h_ + iy) * w_;
                  const int64_t off = kj * dil_w_ - pad_l_;
                  if (stride_w_ == 1) {
                    const int64_t lo = std::clamp<int64_t>(-(ox + off), 0, run);
                    const int64_t hi = std::clamp<int64_t>(w_ - (ox + off), lo, run);
                    T* d = dst + (ox + off + lo);
                    const T* c = src + q + lo;
                    for (int64_t r = 0; r < hi - lo; ++r) d[r] += c[r];
                  } else {
                    for (int64_t r = 0; r < run; ++r) {
                      const int64_t ix = (ox + r) * stride_w_ + off;
                      if (ix >= 0 && ix < w_) dst[ix] += src[q + r];
                    }
                  }
                }
                q += run;
                ox = 0;
                if (++oy == oh_) oy = 0, ++oz;
              }
            }
      },
      channels * taps * width >= detail::kParallelWork / 8);
}

// Samples folded into one GEMM: enough columns for an efficient product when the output is small (deep layers),
// within a bounded workspace. Depends on shapes only, never on the thread count.
template <class T>
int64_t Conv2d<T>::chunk(int64_t batch) const {
  const int64_t p = od_ * oh_ * ow_, k = (cin_ / group_) * kd_ * kh_ * kw_;
  int64_t nb = std::max<int64_t>(1, std::min<int64_t>(batch, (kFoldColumns + p - 1) / p));
  while (nb > 1 && k * nb * p > kMaxWorkspace) --nb;
  return nb;
}

template <class T>
void Conv2d<T>::apply(const T* x, int64_t batch, const T* w, T* y) const {
  const int64_t cg = cin_ / group_, mg = cout_ / group_, k = cg * kd_ * kh_ * kw_, p = od_ * oh_ * ow_;
  const int64_t plane = d_ * h_ * w_, in = cin_ * plane;
  const int64_t nb_max = chunk(batch);
  const PatchGeometry geo{d_,        h_,        w_,     oh_,    ow_,    kd_,    kh_,    kw_,   stride_d_,
                          stride_h_, stride_w_, dil_d_, dil_h_, dil_w_, pad_f_, pad_t_, pad_l_};
  for_each_chunk(batch, nb_max, [&](int64_t n0, int64_t nb) {
    const int64_t cols = nb * p;
    for (int64_t g = 0; g < group_; ++g) {
      const T* wg = w + g * mg * k;
      T* yn = y + n0 * cout_ * p + g * mg * p;
      // float with dtd's kernel: the patch matrix is never stored, its rows go straight into the GEMM's packed
      // panels (sgemm_rows). The products are the same as over a stored patch matrix.
      const bool implicit = std::is_same_v<T, float> && !pointwise_ && detail::sgemm_available() && mg >= 16;
      // c[mg, width] (row stride ldc) = W_g times the patch matrix's columns [col0, col0 + width)
      // (the plain weights from their packed copy: the forward pass)
      auto patch_product = [&](int64_t col0, int64_t width, T* c, int64_t ldc) {
        if constexpr (std::is_same_v<T, float>) {
          const PatchRows patches{geo, x + n0 * in, g * cg, in, p};
          if (w == this->weights(WeightSet::plain))
            detail::gemm_rows_packed(mg, width, k, packed_weights(0) + g * detail::sgemm_packed_size(mg, k), patch_rows,
                                     &patches, col0, c, ldc);
          else
            detail::gemm_rows(false, mg, width, k, wg, k, patch_rows, &patches, col0, c, ldc);
        }
      };
      if (nb == 1 && !pointwise_ && p >= 2 * kColTile) {
        // Large outputs: one tile of output positions at a time, multiplied right away from a cache-resident
        // patch matrix (the whole one would be K x OH*OW, e.g. 115 MB).
        const T* xn = x + n0 * in;
        if (implicit) {
          // dtd's kernel sums alike wherever the tiles fall, so they may follow the thread count: an equal share
          // each (fixed 256-wide tiles left a thread 512 of VGG-16's 784 positions at 28x28 on 2 threads).
          const detail::EvenSplit tiles = detail::even_split(p, kColTile, detail::sgemm_tile_columns());
          detail::parallel_for(tiles.parts, [&](int64_t t) {
            const int64_t p0 = tiles.begin(t);
            patch_product(p0, tiles.begin(t + 1) - p0, yn + p0, p);
          });
          continue;
        }
        const int64_t tiles = (p + kColTile - 1) / kColTile;
        detail::parallel_for(tiles, [&](int64_t t) {
          const int64_t p0 = t * kColTile, width = std::min(kColTile, p - p0);
          T* buf = detail::scratch<T, 2>(static_cast<size_t>(k * kColTile));
          im2col(xn, g, buf, p0, width, width);
          detail::gemm_block(false, false, mg, width, k, wg, k, buf, width, yn + p0, p);
        });
        continue;
      }
      if (implicit && nb == 1) {
        patch_product(0, p, yn, p);
        continue;
      }
      if (nb == 1) {
        const T* xn = x + n0 * in;
        const T* col = xn + g * cg * plane;
        if (!pointwise_) {
          T* buf = detail::scratch<T, 0>(static_cast<size_t>(k * p));
          im2col(xn, g, buf, 0, p, p);
          col = buf;
        }
        detail::gemm(false, false, mg, p, k, wg, col, yn);
        continue;
      }
      // col [k, nb * p] (sample-major columns), out [mg, nb * p], then scattered to y[n, g * mg + m, :].
      T* out = detail::scratch<T, 1>(static_cast<size_t>(mg * cols));
      if (implicit) {
        patch_product(0, cols, out, cols);
      } else {
        T* col = detail::scratch<T, 0>(static_cast<size_t>(k * cols));
        for (int64_t s = 0; s < nb; ++s) {
          const T* xn = x + (n0 + s) * in;
          if (pointwise_) {
            for (int64_t c = 0; c < k; ++c)
              std::copy(xn + (g * cg + c) * p, xn + (g * cg + c + 1) * p, col + c * cols + s * p);
          } else {
            im2col(xn, g, col + s * p, 0, p, cols);
          }
        }
        detail::gemm(false, false, mg, cols, k, wg, col, out);
      }
      for (int64_t s = 0; s < nb; ++s)
        for (int64_t m = 0; m < mg; ++m)
          std::copy(out + m * cols + s * p, out + m * cols + (s + 1) * p, y + ((n0 + s) * cout_ + g * mg + m) * p);
    }
  });
}

template <class T>
bool Conv2d<T>::fused_positive(int64_t) const {
  return std::is_same_v<T, float> && !pointwise_ && detail::sgemm_available() && cout_ / group_ >= 16;
}

template <class T>
bool Conv2d<T>::apply_with_positive(const T* x, int64_t batch, T* y, T* z) const {
  if (!fused_positive(batch)) return false;
  if constexpr (std::is_same_v<T, float>) {
    const int64_t cg = cin_ / group_, mg = cout_ / group_, k = cg * kd_ * kh_ * kw_, p = od_ * oh_ * ow_;
    const int64_t in = cin_ * d_ * h_ * w_;
    const PatchGeometry geo{d_,        h_,        w_,     oh_,    ow_,    kd_,    kh_,    kw_,   stride_d_,
                            stride_h_, stride_w_, dil_d_, dil_h_, dil_w_, pad_f_, pad_t_, pad_l_};
    const int64_t packed_size = detail::sgemm_packed_size(2 * mg, k);
    for_each_chunk(batch, chunk(batch), [&](int64_t n0, int64_t nb) {
      for (int64_t g = 0; g < group_; ++g) {
        const PatchRows patches{geo, x + n0 * in, g * cg, in, p};
        // c[2 mg, width] = [w_g; w_g+] times the patch columns [col0, col0 + width) (sample-major, as in apply);
        // its first mg rows go to y, the others to z. Each element is summed as apply sums it (gemm.hpp).
        auto product = [&](int64_t col0, int64_t width) {
          float* c = detail::scratch<float, 1>(static_cast<size_t>(2 * mg * width));
          // few columns: w read once, w+ = max(w, 0) on the fly (and no packed [w; w+] made for such a layer)
          if (width <= detail::sgemm_narrow_columns())
            detail::gemm_rows_packed_positive(mg, width, k, packed_weights(0) + g * detail::sgemm_packed_size(mg, k),
                                              patch_rows, &patches, col0, c, width, c + mg * width, width);
          else
            detail::gemm_rows_packed(2 * mg, width, k, packed_weights(1) + g * packed_size, patch_rows, &patches, col0,
                                     c, width);
          for (int64_t j = 0; j < width;) {
            const int64_t col = col0 + j, s = col / p, pos = col % p, run = std::min(width - j, p - pos);
            for (int64_t m = 0; m < mg; ++m) {
              const int64_t at = ((n0 + s) * cout_ + g * mg + m) * p + pos;
              std::copy(c + m * width + j, c + m * width + j + run, y + at);
              std::copy(c + (mg + m) * width + j, c + (mg + m) * width + j + run, z + at);
            }
            j += run;
          }
        };
        if (nb == 1 && p >= 2 * kColTile) {
          // large outputs: cache-resident tiles of output positions, as in apply
          const detail::EvenSplit tiles = detail::even_split(p, kColTile, detail::sgemm_tile_columns());
          detail::parallel_for(tiles.parts,
                               [&](int64_t t) { product(tiles.begin(t), tiles.begin(t + 1) - tiles.begin(t)); });
        } else {
          product(0, nb * p);
        }
      }
    });
  } else {
    (void)x, (void)y, (void)z;
  }
  return true;
}

template <class T>
void Conv2d<T>::apply_transposed(const T* g_ptr, int64_t batch, const T* w, T* x) const {
  const int64_t cg = cin_ / group_, mg = cout_ / group_, k = cg * kd_ * kh_ * kw_, p = od_ * oh_ * ow_;
  const int64_t plane = d_ * h_ * w_, in = cin_ * plane;
  const int64_t nb_max = chunk(batch);
  for_each_chunk(batch, nb_max, [&](int64_t n0, int64_t nb) {
    const int64_t cols = nb * p;
    for (int64_t g = 0; g < group_; ++g) {
      const T* wg = w + g * mg * k;
      if (nb == 1 && !pointwise_ && p >= kBandedOutput) {
        // Large outputs, in bands along the outermost output axis longer than 1 (rows for 2-D, depth planes for
        // 3-D, columns for 1-D): W^T times one band into a per-thread, cache-sized buffer, then its col2im. The input
        // rows (planes, columns) band b touches lie clear of band b + 2's, so the even bands run in parallel, then
        // the odd ones; each band on one thread. An input element thus receives its sums in an order fixed by the
        // shapes (even band, then odd; fixed inside a band), whatever the thread count.
        const T* gn = g_ptr + n0 * cout_ * p + g * mg * p;
        T* xn = x + n0 * in;
        std::fill(xn + g * cg * plane, xn + (g + 1) * cg * plane, T(0));
        const int axis = od_ > 1 ? 0 : oh_ > 1 ? 1 : 2;
        const int64_t unit = axis == 0 ? oh_ * ow_ : axis == 1 ? ow_ : 1;  // output positions per band row
        const int64_t extent = axis == 0 ? od_ : axis == 1 ? oh_ : ow_;
        const int64_t stride = axis == 0 ? stride_d_ : axis == 1 ? stride_h_ : stride_w_;
        const int64_t span = axis == 0   ? (kd_ - 1) * dil_d_ + 1
                             : axis == 1 ? (kh_ - 1) * dil_h_ + 1
                                         : (kw_ - 1) * dil_w_ + 1;  // input rows one output row reads
        const int64_t min_rows = span - 1 >= stride ? (span - 1 - stride) / stride + 1 : 1;
        const int64_t rows = std::max(min_rows, (kColTileT + unit - 1) / unit), bands = (extent + rows - 1) / rows;
        for (int64_t phase = 0; phase < 2; ++phase)
          detail::parallel_for((bands - phase + 1) / 2, [&](int64_t i) {
            const int64_t p0 = (2 * i + phase) * rows * unit, width = std::min(rows * unit, p - p0);
            T* buf = detail::scratch<T, 2>(static_cast<size_t>(k * rows * unit));
            detail::gemm_block(true, false, k, width, mg, wg, k, gn + p0, p, buf, width);
            col2im(buf, g, xn, p0, width, width);
          });
        continue;
      }
      if (nb == 1) {
        const T* gn = g_ptr + n0 * cout_ * p + g * mg * p;
        T* xn = x + n0 * in;
        if (pointwise_) {
          detail::gemm(true, false, k, p, mg, wg, gn, xn + g * cg * plane);
          continue;
        }
        const int64_t taps = kd_ * kh_ * kw_, threads = omp_in_parallel() ? 1 : omp_get_max_threads();
        const int64_t parts = std::min(cg, threads);
        if (std::is_same_v<T, float> && detail::sgemm_available() && parts > 1 && p >= 32 && cg / parts * taps >= 32 &&
            k * p * mg >= 2 * detail::kParallelWork) {
          // By input channel, one share per thread: rows [c0 * taps, c1 * taps) of W^T times the gradient, then
          // their col2im, touch channels [c0, c1) of x alone, so the shares need no second pass (one parallel
          // region, the col2im reading what its own thread just wrote). dtd's kernel sums each element alike
          // however the rows are split (gemm.hpp), so the shares may follow the thread count.
          detail::parallel_for(parts, [&](int64_t t) {
            const int64_t c0 = t * cg / parts, c1 = (t + 1) * cg / parts, rows = (c1 - c0) * taps;
            T* buf = detail::scratch<T, 0>(static_cast<size_t>(rows * p));
            detail::gemm_block(true, false, rows, p, mg, wg + c0 * taps, k, gn, p, buf, p);
            std::fill(xn + (g * cg + c0) * plane, xn + (g * cg + c1) * plane, T(0));
            col2im(buf, g, xn, 0, p, p, c0, c1);
          });
          continue;
        }
        T* buf = detail::scratch<T, 0>(static_cast<size_t>(k * p));
        detail::gemm(true, false, k, p, mg, wg, gn, buf);
        std::fill(xn + g * cg * plane, xn + (g + 1) * cg * plane, T(0));
        col2im(buf, g, xn, 0, p, p);
        continue;
      }
      transposed_columns(g_ptr, n0, nb, g, x,
                         [&](const T* grad, T* col) { detail::gemm(true, false, k, cols, mg, wg, grad, col); });
    }
  });
}

template <class T>
template <class Product>
void Conv2d<T>::transposed_columns(const T* g_ptr, int64_t n0, int64_t nb, int64_t g, T* x, Product&& product) const {
  // gathered gradient [mg, nb * p] (sample-major columns) -> col [k, nb * p] = W_g^T grad -> each sample's col2im
  const int64_t cg = cin_ / group_, mg = cout_ / group_, k = cg * kd_ * kh_ * kw_, p = od_ * oh_ * ow_;
  const int64_t plane = d_ * h_ * w_, in = cin_ * plane, cols = nb * p;
  T* grad = detail::scratch<T, 1>(static_cast<size_t>(mg * cols));
  T* col = detail::scratch<T, 0>(static_cast<size_t>(k * cols));
  for (int64_t s = 0; s < nb; ++s)
    for (int64_t m = 0; m < mg; ++m) {
      const T* src = g_ptr + ((n0 + s) * cout_ + g * mg + m) * p;
      std::copy(src, src + p, grad + m * cols + s * p);
    }
  product(static_cast<const T*>(grad), col);
  for (int64_t s = 0; s < nb; ++s) {
    T* xn = x + (n0 + s) * in;
    if (pointwise_) {
      for (int64_t c = 0; c < k; ++c)
        std::copy(col + c * cols + s * p, col + c * cols + (s + 1) * p, xn + (g * cg + c) * p);
      continue;
    }
    std::fill(xn + g * cg * plane, xn + (g + 1) * cg * plane, T(0));
    col2im(col + s * p, g, xn, 0, p, cols);
  }
}

template <class T>
void Conv2d<T>::apply_transposed_set(const T* g_ptr, int64_t batch, WeightSet set, T* x) const {
  const int64_t p = od_ * oh_ * ow_, nb_max = chunk(batch);
  if (!std::is_same_v<T, float> || !detail::sgemm_available() || nb_max * p > detail::sgemm_narrow_columns())
    return apply_transposed(g_ptr, batch, this->weights(set), x);
  if constexpr (std::is_same_v<T, float>) {
    // apply_transposed's gather, product and col2im, the product from the packed W_g^T with the narrow kernel
    // (summed alike, gemm.hpp)
    const int64_t mg = cout_ / group_, k = (cin_ / group_) * kd_ * kh_ * kw_;
    const float* packed = packed_transposed(set);
    const int64_t packed_size = detail::sgemm_packed_size(k, mg);
    for_each_chunk(batch, nb_max, [&](int64_t n0, int64_t nb) {
      const int64_t cols = nb * p;
      for (int64_t g = 0; g < group_; ++g)
        transposed_columns(g_ptr, n0, nb, g, x, [&](const float* grad, float* col) {
          const StoredRows rows{grad, cols};
          detail::gemm_rows_packed(k, cols, mg, packed + g * packed_size, stored_rows, &rows, 0, col, cols);
        });
    });
  }
}

template <class T>
const float* Conv2d<T>::packed_transposed(WeightSet set) const {
  const auto slot = static_cast<size_t>(set);
  if constexpr (std::is_same_v<T, float>) {
    std::call_once(packed_t_once_[slot], [&] {
      const int64_t mg = cout_ / group_, k = (cin_ / group_) * kd_ * kh_ * kw_;
      const int64_t size = detail::sgemm_packed_size(k, mg);
      packed_t_[slot].resize(static_cast<size_t>(size * group_));
      const float* w = this->weights(set);
      detail::parallel_for(group_, [&](int64_t g) {
        detail::sgemm_pack_a_transposed(k, mg, w + g * mg * k, k, packed_t_[slot].data() + g * size);
      });
    });
  }
  return packed_t_[slot].data();
}

template <class T>
void Conv2d<T>::add_bias(const T* b, int64_t batch, T* y) const {
  const int64_t p = od_ * oh_ * ow_;
  detail::parallel_for(
      batch * cout_,
      [&](int64_t plane) {
        T* yc = y + plane * p;
        const T bc = b[plane % cout_];
        for (int64_t i = 0; i < p; ++i) yc[i] += bc;
      },
      batch * cout_ * p >= detail::kParallelElements);
}

template <class T>
bool Conv2d<T>::winograd_ok() const {
  return winograd_;
}

template <class T>
bool Conv2d<T>::winograd_pays(int64_t batch) const {
  return batch * ((oh_ + 1) / 2) * ((ow_ + 1) / 2) >= kWinogradColumns;
}

template <class T>
const float* Conv2d<T>::winograd_weights(WeightSet set) const {
  const auto slot = static_cast<size_t>(set);
  if constexpr (std::is_same_v<T, float>) {
    std::call_once(winograd_once_[slot], [&] {
      winograd_u_[slot].resize(static_cast<size_t>(16 * cout_ * cin_));
      detail::winograd_transform_kernels(this->weights(set), cout_, cin_, winograd_u_[slot].data());
    });
  }
  return winograd_u_[slot].data();
}

template <class T>
const float* Conv2d<T>::packed_weights(int stacked) const {
  const auto slot = static_cast<size_t>(stacked);
  if constexpr (std::is_same_v<T, float>) {
    std::call_once(packed_once_[slot], [&] {
      const int64_t mg = cout_ / group_, k = (cin_ / group_) * kd_ * kh_ * kw_, rows = stacked ? 2 * mg : mg;
      const int64_t size = detail::sgemm_packed_size(rows, k);
      packed_[slot].resize(static_cast<size_t>(size * group_));
      const float* w = this->weights(WeightSet::plain);
      const float* wp = stacked ? this->weights(WeightSet::positive) : nullptr;
      detail::parallel_for(group_, [&](int64_t g) {
        detail::sgemm_pack_a(rows, mg, k, w + g * mg * k, wp ? wp + g * mg * k : nullptr, k,
                             packed_[slot].data() + g * size);
      });
    });
  }
  return packed_[slot].data();
}

template <class T>
const float* Conv2d<T>::winograd_positive_max() const {
  if constexpr (std::is_same_v<T, float>) {
    std::call_once(winograd_once_[4], [&] {
      const float* wp = this->weights(WeightSet::positive);
      winograd_u_[4].resize(static_cast<size_t>(cout_ * cin_));
      for (int64_t i = 0; i < cout_ * cin_; ++i)
        winograd_u_[4][static_cast<size_t>(i)] = *std::max_element(wp + 9 * i, wp + 9 * i + 9);
    });
  }
  return winograd_u_[4].data();
}

template <class T>
void Conv2d<T>::winograd_apply(const T* x, int64_t batch, WeightSet set, T* y) const {
  if constexpr (std::is_same_v<T, float>) {
    const detail::WinogradShape s{cin_, h_, w_, cout_, oh_, ow_, pad_t_, pad_l_};
    detail::winograd_correlate(s, batch, x, winograd_weights(set), false, y);
  } else {
    this->apply_set(x, batch, set, y);
  }
}

template <class T>
void Conv2d<T>::winograd_apply_with_positive(const T* x, int64_t batch, T* y, T* z) const {
  if constexpr (std::is_same_v<T, float>) {
    const detail::WinogradShape s{cin_, h_, w_, cout_, oh_, ow_, pad_t_, pad_l_};
    detail::winograd_correlate(s, batch, x, winograd_weights(WeightSet::plain), false, y,
                               winograd_weights(WeightSet::positive), z);
  } else {
    LinearLayer<T>::winograd_apply_with_positive(x, batch, y, z);
  }
}

// z+ = w+ (*) x for x >= 0 is a sum of non-negative terms: exactly 0 where every term is, never negative. Winograd's
// value carries a rounding error of the order of u times its tile's bound (sum over channels of the largest w+
// times the tile's input sum), of either sign. Where the value is within kGuard of that bound the direct sum
// (in double, rounded once) replaces it: exact zeros come out exactly 0, and no denominator is negative (the others
// exceed kGuard times a non-negative bound, and a zero bound gives an exactly zero Winograd value, recomputed).
template <class T>
void Conv2d<T>::winograd_guard(const T* x, int64_t batch, T* z, ExactOutputs& exact) const {
  exact.index.clear();
  exact.nonzero.clear();
  if constexpr (std::is_same_v<T, float>) {
    const detail::WinogradShape s{cin_, h_, w_, cout_, oh_, ow_, pad_t_, pad_l_};
    const int64_t tw = (ow_ + 1) / 2, tiles = ((oh_ + 1) / 2) * tw, p = oh_ * ow_, plane = h_ * w_;
    std::vector<float> bound(static_cast<size_t>(batch * cout_ * tiles));
    detail::winograd_tile_bound(s, batch, x, winograd_positive_max(), bound.data());
    const float* wp = this->weights(WeightSet::positive);
    std::vector<std::vector<int64_t>> found(static_cast<size_t>(batch * cout_));
    detail::parallel_for(batch * cout_, [&](int64_t nm) {
      const int64_t n = nm / cout_, m = nm % cout_;
      float* zp = z + nm * p;
      const float* bp = bound.data() + nm * tiles;
      for (int64_t oy = 0; oy < oh_; ++oy)
        for (int64_t ox = 0; ox < ow_; ++ox) {
          float& v = zp[oy * ow_ + ox];
          if (v > kGuard * bp[(oy / 2) * tw + ox / 2]) continue;
          double sum = 0;
          for (int64_t c = 0; c < cin_; ++c) {
            const float* xc = x + (n * cin_ + c) * plane;
            const float* wc = wp + (m * cin_ + c) * 9;
            for (int64_t ky = 0; ky < 3; ++ky) {
              const int64_t iy = oy - pad_t_ + ky;
              if (iy < 0 || iy >= h_) continue;
              for (int64_t kx = 0; kx < 3; ++kx) {
                const int64_t ix = ox - pad_l_ + kx;
                if (ix >= 0 && ix < w_) sum += static_cast<double>(xc[iy * w_ + ix]) * wc[ky * 3 + kx];
              }
            }
          }
          v = static_cast<float>(sum);
          found[static_cast<size_t>(nm)].push_back(nm * p + oy * ow_ + ox);
        }
    });
    for (auto& f : found)
      for (int64_t j : f) {
        exact.index.push_back(j);
        exact.nonzero.push_back(z[j] != 0.0f);
      }
  } else {
    (void)x, (void)batch, (void)z;
  }
}

template <class T>
void Conv2d<T>::winograd_apply_transposed(const T* g, int64_t batch, WeightSet set, T* x,
                                          const ExactOutputs* exact) const {
  if constexpr (std::is_same_v<T, float>) {
    // The transposed pass of a stride-1 3x3 convolution is the correlation of g (Cout channels, OH x OW, offset by
    // 2 - pad) with the rotated, channel-swapped kernels, giving the input's Cin x H x W.
    const detail::WinogradShape s{cout_, oh_, ow_, cin_, h_, w_, 2 - pad_t_, 2 - pad_l_};
    const float* u = winograd_weights(set);
    if (!exact || exact->index.empty()) return detail::winograd_correlate(s, batch, g, u, true, x);
    const int64_t p = oh_ * ow_, plane = h_ * w_, outputs = batch * cout_ * p;
    std::vector<float> gz(g, g + outputs);
    for (int64_t j : exact->index) gz[static_cast<size_t>(j)] = 0.0f;
    detail::winograd_correlate(s, batch, gz.data(), u, true, x);
    // The outputs left out, by the direct sum, in their order within each sample (samples write apart).
    const float* w = this->weights(set);
    std::vector<size_t> first(static_cast<size_t>(batch + 1), exact->index.size());
    for (size_t k = exact->index.size(); k-- > 0;) first[static_cast<size_t>(exact->index[k] / (cout_ * p))] = k;
    for (int64_t n = batch; n-- > 0;)
      first[static_cast<size_t>(n)] = std::min(first[static_cast<size_t>(n)], first[static_cast<size_t>(n + 1)]);
    detail::parallel_for(batch, [&](int64_t n) {
      for (size_t k = first[static_cast<size_t>(n)]; k < first[static_cast<size_t>(n + 1)]; ++k) {
        const int64_t j = exact->index[k];
        const float gj = g[j];
        if (!exact->nonzero[k] || gj == 0.0f) continue;
        const int64_t m = (j / p) % cout_, oy = (j % p) / ow_, ox = j % ow_;
        for (int64_t c = 0; c < cin_; ++c) {
          float* xc = x + (n * cin_ + c) * plane;
          const float* wc = w + (m * cin_ + c) * 9;
          for (int64_t ky = 0; ky < 3; ++ky) {
            const int64_t iy = oy - pad_t_ + ky;
            if (iy < 0 || iy >= h_) continue;
            for (int64_t kx = 0; kx < 3; ++kx) {
              const int64_t ix = ox - pad_l_ + kx;
              if (ix >= 0 && ix < w_) xc[iy * w_ + ix] += wc[ky * 3 + kx] * gj;
            }
          }
        }
      }
    });
  } else {
    this->apply_transposed_set(g, batch, set, x);
    (void)exact;
  }
}

template class Conv2d<float>;
template class Conv2d<double>;

}  // namespace dtd
