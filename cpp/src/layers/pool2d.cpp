#include "pool2d.hpp"

#include <algorithm>
#include <limits>

#include "../checked.hpp"
#include "../geometry.hpp"
#include "../parallel.hpp"
#include "../stabilizer.hpp"

namespace dtd {

PoolGeometry PoolGeometry::from_spec(const LayerSpec& spec, const Shape& x) {
  DTD_CHECK(x.size() >= 2 && x.size() <= 4, ModelError, to_string(spec.kind), " layer '", spec.name,
            "': input must be [C, L], [C, H, W] or [C, D, H, W] per sample, got ", to_string(x));
  auto kernel = spec.ints.find("kernel");
  DTD_CHECK(kernel != spec.ints.end() && kernel->second.size() + 1 == x.size(), ModelError, to_string(spec.kind),
            " layer '", spec.name, "': needs a kernel with one value per spatial axis of the input ", to_string(x));
  const bool ceil_mode = detail::int_attr(spec, "ceil_mode", 0) != 0;
  const detail::Window win = detail::window(spec, Shape(x.begin() + 1, x.end()), kernel->second, ceil_mode);
  PoolGeometry g;
  g.c = x[0];
  g.d = win.in[0], g.h = win.in[1], g.w = win.in[2];
  g.od = win.out[0], g.oh = win.out[1], g.ow = win.out[2];
  g.kd = win.kernel[0], g.kh = win.kernel[1], g.kw = win.kernel[2];
  g.stride_d = win.stride[0], g.stride_h = win.stride[1], g.stride_w = win.stride[2];
  g.dil_d = win.dil[0], g.dil_h = win.dil[1], g.dil_w = win.dil[2];
  g.pad_f = win.pad_begin[0], g.pad_t = win.pad_begin[1], g.pad_l = win.pad_begin[2];
  g.pad_k = win.pad_end[0], g.pad_b = win.pad_end[1], g.pad_r = win.pad_end[2];
  g.output_shape = {g.c};
  for (int64_t a = 3 - win.rank; a < 3; ++a) g.output_shape.push_back(win.out[static_cast<size_t>(a)]);
  // Every per-sample count the kernels form (planes * positions, taps per window) is at most one of these.
  detail::checked_numel(g.output_shape, detail::where(spec, "output shape"));
  detail::checked_mul(g.kd * g.kh, g.kw, detail::where(spec, "kernel"));
  return g;
}

namespace {

// Calls f(input offset within the channel) for every in-bounds tap of output (oz, oy, ox), in row-major order.
template <class F>
inline void for_each_tap(const PoolGeometry& g, int64_t oz, int64_t oy, int64_t ox, F&& f) {
  for (int64_t kz = 0; kz < g.kd; ++kz) {
    const int64_t iz = oz * g.stride_d - g.pad_f + kz * g.dil_d;
    if (iz < 0 || iz >= g.d) continue;
    for (int64_t ki = 0; ki < g.kh; ++ki) {
      const int64_t iy = oy * g.stride_h - g.pad_t + ki * g.dil_h;
      if (iy < 0 || iy >= g.h) continue;
      for (int64_t kj = 0; kj < g.kw; ++kj) {
        const int64_t ix = ox * g.stride_w - g.pad_l + kj * g.dil_w;
        if (ix < 0 || ix >= g.w) continue;
        f((iz * g.h + iy) * g.w + ix);
      }
    }
  }
}

// Calls f(oz, oy, ox, j) for every output position j = (oz * OH + oy) * OW + ox of one channel, in order.
template <class F>
inline void for_each_output(const PoolGeometry& g, F&& f) {
  for (int64_t oz = 0, j = 0; oz < g.od; ++oz)
    for (int64_t oy = 0; oy < g.oh; ++oy)
      for (int64_t ox = 0; ox < g.ow; ++ox, ++j) f(oz, oy, ox, j);
}

// For a 2-D window (one depth plane in and out) and output row oy: calls f(iy, off, lo, hi) for every in-bounds
// kernel row (input row iy) and every kernel column, with the range [lo, hi) of output columns whose tap
// ix = ox * stride_w + off lies inside the row. Each output's in-bounds taps come in the order for_each_tap visits
// them (row-major), so results are the same; the columns of a row are done together, without a branch per tap.
template <class F>
inline void for_each_tap_row(const PoolGeometry& g, int64_t oy, F&& f) {
  for (int64_t ki = 0; ki < g.kh; ++ki) {
    const int64_t iy = oy * g.stride_h - g.pad_t + ki * g.dil_h;
    if (iy < 0 || iy >= g.h) continue;
    for (int64_t kj = 0; kj < g.kw; ++kj) {
      const int64_t off = kj * g.dil_w - g.pad_l;
      // ox * s + off >= 0  <=>  ox >= ceil(-off / s);  ox * s + off <= w - 1  <=>  ox <= floor((w - 1 - off) / s)
      const int64_t lo = off >= 0 ? 0 : (-off + g.stride_w - 1) / g.stride_w;
      const int64_t last = g.w - 1 - off;
      const int64_t hi = last < 0 ? 0 : std::min(g.ow, last / g.stride_w + 1);
      if (lo < hi) f(iy, off, lo, hi);
    }
  }
}

bool planar(const PoolGeometry& g) {
  return g.d == 1 && g.od == 1 && g.kd == 1;
}

// The windows of one output row (2-D, planar g): the input rows they read that lie inside the input (offsets
// iy * w, at most kh, in kernel order), and the output columns [cx0, cx1) whose windows lie inside the input's
// columns, where no tap needs a bounds check.
struct WindowRow {
  const int64_t* rows;  // offsets iy * w of the in-bounds input rows, in kernel order
  int64_t count;        // how many
  int64_t cx0, cx1;
};

inline WindowRow window_row(const PoolGeometry& g, int64_t oy, int64_t* rows) {
  WindowRow wr{rows, 0, 0, 0};
  for (int64_t ki = 0; ki < g.kh; ++ki) {
    const int64_t iy = oy * g.stride_h - g.pad_t + ki * g.dil_h;
    if (iy >= 0 && iy < g.h) rows[wr.count++] = iy * g.w;
  }
  // ox * s - pad_l >= 0 and ox * s - pad_l + (kw - 1) * dil <= w - 1
  const int64_t span = (g.kw - 1) * g.dil_w, last = g.w - 1 + g.pad_l - span;
  wr.cx0 = std::min(g.ow, (g.pad_l + g.stride_w - 1) / g.stride_w);
  wr.cx1 = last < 0 ? wr.cx0 : std::max(wr.cx0, std::min(g.ow, last / g.stride_w + 1));
  return wr;
}

// Calls f(i) for every in-bounds tap of output column ox of window row wr, in row-major order: KW / SW (> 0) fix
// the kernel width and stride at compile time (dilation 1), inside [cx0, cx1) (Inside) without bounds checks.
template <int64_t KW, int64_t SW, bool Inside, class F>
inline void for_each_row_tap(const PoolGeometry& g, const WindowRow& wr, int64_t ox, F&& f) {
  const int64_t kw = KW > 0 ? KW : g.kw, sw = SW > 0 ? SW : g.stride_w, dil = KW > 0 ? 1 : g.dil_w;
  const int64_t c = ox * sw - g.pad_l;
  for (int64_t r = 0; r < wr.count; ++r) {
    const int64_t base = wr.rows[r];
    for (int64_t kj = 0; kj < kw; ++kj) {
      const int64_t ix = c + kj * dil;
      if (!Inside && (ix < 0 || ix >= g.w)) continue;
      f(base + ix);
    }
  }
}

// f(ox, tap) over the output columns of one window row: the inside ones through a compile-time kernel width and
// stride where the geometry has a common one (2 / 2, 3 / 2, 3 / 1, dilation 1), the rest with bounds checks.
template <class Row>
inline void for_each_column(const PoolGeometry& g, const WindowRow& wr, Row&& row) {
  auto edge = [&](int64_t ox) { row(ox, [&](auto&& f) { for_each_row_tap<0, 0, false>(g, wr, ox, f); }); };
  for (int64_t ox = 0; ox < wr.cx0; ++ox) edge(ox);
  auto inside = [&](auto kw_c, auto sw_c) {
    for (int64_t ox = wr.cx0; ox < wr.cx1; ++ox)
      row(ox, [&](auto&& f) { for_each_row_tap<decltype(kw_c)::value, decltype(sw_c)::value, true>(g, wr, ox, f); });
  };
  using std::integral_constant;
  if (g.dil_w == 1 && g.kw == 2 && g.stride_w == 2)
    inside(integral_constant<int64_t, 2>{}, integral_constant<int64_t, 2>{});
  else if (g.dil_w == 1 && g.kw == 3 && g.stride_w == 2)
    inside(integral_constant<int64_t, 3>{}, integral_constant<int64_t, 2>{});
  else if (g.dil_w == 1 && g.kw == 3 && g.stride_w == 1)
    inside(integral_constant<int64_t, 3>{}, integral_constant<int64_t, 1>{});
  else
    inside(integral_constant<int64_t, 0>{}, integral_constant<int64_t, 0>{});
  for (int64_t ox = wr.cx1; ox < g.ow; ++ox) edge(ox);
}

}  // namespace

// ---- max pooling ----

template <class T>
MaxPool2d<T>::MaxPool2d(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes)
    : Layer<T>(spec.name, spec.kind, std::move(inputs), std::move(input_shapes)) {
  g_ = PoolGeometry::from_spec(spec, this->input_shapes()[0]);
  this->output_shape_ = g_.output_shape;
}

template <class T>
void MaxPool2d<T>::forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const {
  const int64_t planes = in[0]->batch() * g_.c, hw = g_.d * g_.h * g_.w, ohw = g_.od * g_.oh * g_.ow;
  detail::parallel_for(
      planes,
      [&](int64_t pl) {
        const T* x = in[0]->ptr() + pl * hw;
        T* y = out.ptr() + pl * ohw;
        if (planar(g_)) {
          // Output by output, the window's taps in registers (bounds checks at the edge columns only).
          int64_t* rows = detail::scratch<int64_t, 0>(static_cast<size_t>(g_.kh));
          for (int64_t oy = 0; oy < g_.oh; ++oy) {
            const WindowRow wr = window_row(g_, oy, rows);
            T* yr = y + oy * g_.ow;
            for_each_column(g_, wr, [&](int64_t ox, auto&& taps) {
              T best = -std::numeric_limits<T>::infinity();
              taps([&](int64_t i) { best = std::max(best, x[i]); });
              yr[ox] = best;
            });
          }
          return;
        }
        for_each_output(g_, [&](int64_t oz, int64_t oy, int64_t ox, int64_t j) {
          T best = -std::numeric_limits<T>::infinity();
          for_each_tap(g_, oz, oy, ox, [&](int64_t i) { best = std::max(best, x[i]); });
          y[j] = best;
        });
      },
      planes * hw >= detail::kParallelWork / 8);
}

template <class T>
void MaxPool2d<T>::relevance(const std::vector<const Tensor<T>*>& in, const Tensor<T>&, const Tensor<T>& r_out,
                             const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in) const {
  const int64_t planes = in[0]->batch() * g_.c, hw = g_.d * g_.h * g_.w, ohw = g_.od * g_.oh * g_.ow;
  const T eps = static_cast<T>(rule.eps);
  const bool wta = rule.maxpool == MaxPoolMode::winner_take_all || rule.kind == RuleKind::gradient;
  detail::parallel_for(
      planes,
      [&](int64_t pl) {
        const T* x = in[0]->ptr() + pl * hw;
        const T* r = r_out.ptr() + pl * ohw;
        T* ri = r_in[0].ptr() + pl * hw;
        std::fill(ri, ri + hw, T(0));
        if (wta && planar(g_)) {
          // The winner of every window of one output row at once (first maximum in row-major order: a later tap
          // replaces it only when strictly greater), then the relevance in output order, as below.
          const int64_t sw = g_.stride_w, ow = g_.ow;
          T* best = detail::scratch<T, 0>(static_cast<size_t>(ow));
          int64_t* arg = detail::scratch<int64_t, 0>(static_cast<size_t>(ow));
          for (int64_t oy = 0; oy < g_.oh; ++oy) {
            const T* rr = r + oy * ow;
            if (std::all_of(rr, rr + ow, [](T v) { return v == T(0); })) continue;
            std::fill(arg, arg + ow, int64_t{-1});
            for_each_tap_row(g_, oy, [&](int64_t iy, int64_t off, int64_t lo, int64_t hi) {
              const int64_t base = iy * g_.w + off;
              for (int64_t ox = lo; ox < hi; ++ox) {
                const int64_t i = base + ox * sw;
                if (arg[ox] < 0 || x[i] > best[ox]) arg[ox] = i, best[ox] = x[i];
              }
            });
            for (int64_t ox = 0; ox < ow; ++ox)
              if (rr[ox] != T(0) && arg[ox] >= 0) ri[arg[ox]] += rr[ox];
          }
          return;
        }
        for_each_output(g_, [&](int64_t oz, int64_t oy, int64_t ox, int64_t j) {
          const T rj = r[j];
          if (rj == T(0)) return;
          if (wta) {
            // The first maximum in row-major window order wins ties, as ONNX Runtime and PyTorch pick it.
            int64_t arg = -1;
            T best = T(0);
            for_each_tap(g_, oz, oy, ox, [&](int64_t i) {
              if (arg < 0 || x[i] > best) arg = i, best = x[i];
            });
            if (arg >= 0) ri[arg] += rj;
          } else {
            T z = T(0);
            for_each_tap(g_, oz, oy, ox, [&](int64_t i) { z += x[i]; });
            const T s = detail::stabilized_ratio(rj, z, eps);
            for_each_tap(g_, oz, oy, ox, [&](int64_t i) { ri[i] += x[i] * s; });
          }
        });
      },
      planes * hw >= detail::kParallelWork / 8);
}

// ---- average pooling ----

template <class T>
AvgPool2d<T>::AvgPool2d(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes)
    : Layer<T>(spec.name, spec.kind, std::move(inputs), std::move(input_shapes)) {
  g_ = PoolGeometry::from_spec(spec, this->input_shapes()[0]);
  count_include_pad_ = detail::int_attr(spec, "count_include_pad", 0) != 0;
  this->output_shape_ = g_.output_shape;
}

// Taps counted by the divisor: in-bounds ones, or with count_include_pad every tap inside the padded input
// (taps beyond the padding, which ceil_mode can create, never count).
template <class T>
int64_t AvgPool2d<T>::divisor(int64_t oz, int64_t oy, int64_t ox) const {
  // Taps of one axis inside [lo, hi) (the input, or the padded input).
  auto count = [&](int64_t o, int64_t k, int64_t stride, int64_t dil, int64_t pad_begin, int64_t pad_end, int64_t in) {
    const int64_t lo = count_include_pad_ ? -pad_begin : 0, hi = count_include_pad_ ? in + pad_end : in;
    int64_t n = 0;
    for (int64_t t = 0; t < k; ++t) {
      const int64_t i = o * stride - pad_begin + t * dil;
      n += (i >= lo && i < hi);
    }
    return n;
  };
  const int64_t nz = count(oz, g_.kd, g_.stride_d, g_.dil_d, g_.pad_f, g_.pad_k, g_.d);
  const int64_t ny = count(oy, g_.kh, g_.stride_h, g_.dil_h, g_.pad_t, g_.pad_b, g_.h);
  const int64_t nx = count(ox, g_.kw, g_.stride_w, g_.dil_w, g_.pad_l, g_.pad_r, g_.w);
  return std::max<int64_t>(nz * ny * nx, 1);
}

template <class T>
void AvgPool2d<T>::forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const {
  const int64_t planes = in[0]->batch() * g_.c, hw = g_.d * g_.h * g_.w, ohw = g_.od * g_.oh * g_.ow;
  detail::parallel_for(
      planes,
      [&](int64_t pl) {
        const T* x = in[0]->ptr() + pl * hw;
        T* y = out.ptr() + pl * ohw;
        for_each_output(g_, [&](int64_t oz, int64_t oy, int64_t ox, int64_t j) {
          T sum = T(0);
          for_each_tap(g_, oz, oy, ox, [&](int64_t i) { sum += x[i]; });
          y[j] = sum / static_cast<T>(divisor(oz, oy, ox));
        });
      },
      planes * hw >= detail::kParallelWork / 8);
}

// R_i = sum_j (a_i / k_j) R_j / stab(z_j), z_j the pooled value.
template <class T>
void AvgPool2d<T>::relevance(const std::vector<const Tensor<T>*>& in, const Tensor<T>& out, const Tensor<T>& r_out,
                             const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in) const {
  const int64_t planes = in[0]->batch() * g_.c, hw = g_.d * g_.h * g_.w, ohw = g_.od * g_.oh * g_.ow;
  const T eps = static_cast<T>(rule.eps);
  const bool gradient = rule.kind == RuleKind::gradient;
  detail::parallel_for(
      planes,
      [&](int64_t pl) {
        const T* x = in[0]->ptr() + pl * hw;
        const T* z = out.ptr() + pl * ohw;
        const T* r = r_out.ptr() + pl * ohw;
        T* ri = r_in[0].ptr() + pl * hw;
        std::fill(ri, ri + hw, T(0));
        for_each_output(g_, [&](int64_t oz, int64_t oy, int64_t ox, int64_t j) {
          if (gradient) {
            const T g = r[j] / static_cast<T>(divisor(oz, oy, ox));
            for_each_tap(g_, oz, oy, ox, [&](int64_t i) { ri[i] += g; });
            return;
          }
          if (rule.avgpool == AvgPoolMode::flat) {
            // Uniform over the window's in-bounds taps: R_j / n_j each.
            if (r[j] == T(0)) return;
            int64_t taps = 0;
            for_each_tap(g_, oz, oy, ox, [&](int64_t) { ++taps; });
            if (taps == 0) return;
            const T share = r[j] / static_cast<T>(taps);
            for_each_tap(g_, oz, oy, ox, [&](int64_t i) { ri[i] += share; });
            return;
          }
          const T s = detail::stabilized_ratio(r[j], z[j], eps) / static_cast<T>(divisor(oz, oy, ox));
          if (s == T(0)) return;
          for_each_tap(g_, oz, oy, ox, [&](int64_t i) { ri[i] += x[i] * s; });
        });
      },
      planes * hw >= detail::kParallelWork / 8);
}

// ---- global average pooling ----

namespace {

// A global pool's output per sample: [C, 1, ...] for an input [C, spatial...].
Shape global_pool_shape(const LayerSpec& spec, const Shape& x) {
  DTD_CHECK(x.size() >= 2, ModelError, to_string(spec.kind), " layer '", spec.name,
            "': input must be [C, spatial...] per sample, got ", to_string(x));
  Shape out(x.size(), 1);
  out[0] = x[0];
  return out;
}

}  // namespace

template <class T>
GlobalAvgPool<T>::GlobalAvgPool(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes)
    : Layer<T>(spec.name, spec.kind, std::move(inputs), std::move(input_shapes)) {
  this->output_shape_ = global_pool_shape(spec, this->input_shapes()[0]);
}

template <class T>
void GlobalAvgPool<T>::forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const {
  const int64_t planes = out.size(), hw = in[0]->size() / std::max<int64_t>(planes, 1);
  for (int64_t pl = 0; pl < planes; ++pl) {
    const T* x = in[0]->ptr() + pl * hw;
    T sum = T(0);
    for (int64_t i = 0; i < hw; ++i) sum += x[i];
    out.ptr()[pl] = sum / static_cast<T>(hw);
  }
}

template <class T>
void GlobalAvgPool<T>::relevance(const std::vector<const Tensor<T>*>& in, const Tensor<T>& out, const Tensor<T>& r_out,
                                 const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in) const {
  const int64_t planes = out.size(), hw = in[0]->size() / std::max<int64_t>(planes, 1);
  const T eps = static_cast<T>(rule.eps);
  for (int64_t pl = 0; pl < planes; ++pl) {
    const T* x = in[0]->ptr() + pl * hw;
    T* ri = r_in[0].ptr() + pl * hw;
    if (rule.kind == RuleKind::gradient || rule.avgpool == AvgPoolMode::flat) {
      // The gradient, and the flat rule: the output's relevance spread evenly over the plane.
      std::fill(ri, ri + hw, r_out.ptr()[pl] / static_cast<T>(hw));
      continue;
    }
    const T s = detail::stabilized_ratio(r_out.ptr()[pl], out.ptr()[pl], eps) / static_cast<T>(hw);
    for (int64_t i = 0; i < hw; ++i) ri[i] = x[i] * s;
  }
}

// ---- global max pooling ----

template <class T>
GlobalMaxPool<T>::GlobalMaxPool(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes)
    : Layer<T>(spec.name, spec.kind, std::move(inputs), std::move(input_shapes)) {
  this->output_shape_ = global_pool_shape(spec, this->input_shapes()[0]);
}

template <class T>
void GlobalMaxPool<T>::forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const {
  const int64_t planes = out.size(), hw = in[0]->size() / std::max<int64_t>(planes, 1);
  detail::parallel_for(
      planes,
      [&](int64_t pl) {
        const T* x = in[0]->ptr() + pl * hw;
        T best = -std::numeric_limits<T>::infinity();
        for (int64_t i = 0; i < hw; ++i) best = std::max(best, x[i]);
        out.ptr()[pl] = best;
      },
      planes * hw >= detail::kParallelWork / 8);
}

// Winner-take-all: the plane's relevance goes to its first maximum (row-major order, as ONNX Runtime picks it);
// proportional: R_i = a_i R / stab(sum_i' a_i'), as max pooling over one window.
template <class T>
void GlobalMaxPool<T>::relevance(const std::vector<const Tensor<T>*>& in, const Tensor<T>&, const Tensor<T>& r_out,
                                 const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in) const {
  const int64_t planes = r_out.size(), hw = in[0]->size() / std::max<int64_t>(planes, 1);
  const T eps = static_cast<T>(rule.eps);
  const bool wta = rule.maxpool == MaxPoolMode::winner_take_all || rule.kind == RuleKind::gradient;
  detail::parallel_for(
      planes,
      [&](int64_t pl) {
        const T* x = in[0]->ptr() + pl * hw;
        const T rj = r_out.ptr()[pl];
        T* ri = r_in[0].ptr() + pl * hw;
        std::fill(ri, ri + hw, T(0));
        if (rj == T(0) || hw == 0) return;
        if (wta) {
          int64_t arg = 0;
          for (int64_t i = 1; i < hw; ++i)
            if (x[i] > x[arg]) arg = i;
          ri[arg] = rj;
          return;
        }
        T z = T(0);
        for (int64_t i = 0; i < hw; ++i) z += x[i];
        const T s = detail::stabilized_ratio(rj, z, eps);
        for (int64_t i = 0; i < hw; ++i) ri[i] = x[i] * s;
      },
      planes * hw >= detail::kParallelWork / 8);
}

template class MaxPool2d<float>;
template class MaxPool2d<double>;
template class AvgPool2d<float>;
template class AvgPool2d<double>;
template class GlobalAvgPool<float>;
template class GlobalAvgPool<double>;
template class GlobalMaxPool<float>;
template class GlobalMaxPool<double>;

}  // namespace dtd
