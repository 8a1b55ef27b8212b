// Spatial geometry shared by convolution and pooling (private): ONNX auto_pad, pads, ceil_mode, over 1, 2 or 3
// spatial axes.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "checked.hpp"
#include "dtd/error.hpp"
#include "dtd/model_spec.hpp"

namespace dtd::detail {

/// Reads an int-list attribute with `count` entries, or returns `fallback` when absent.
inline std::vector<int64_t> ints(const LayerSpec& spec, const char* key, size_t count, std::vector<int64_t> fallback) {
  auto it = spec.ints.find(key);
  if (it == spec.ints.end()) return fallback;
  DTD_CHECK(it->second.size() == count, ModelError, to_string(spec.kind), " layer '", spec.name, "': attribute '", key,
            "' has ", it->second.size(), " values, expected ", count);
  return it->second;
}

inline int64_t int_attr(const LayerSpec& spec, const char* key, int64_t fallback) {
  return ints(spec, key, 1, {fallback})[0];
}

/// One spatial axis: input extent, effective kernel extent ((k - 1) * dilation + 1), stride; resolves the pads
/// (from auto_pad when set) and returns the output extent.
struct Axis {
  int64_t in, kernel_extent, stride, pad_begin, pad_end;

  int64_t resolve(const LayerSpec& spec, int64_t auto_pad, bool ceil_mode) {
    DTD_CHECK(stride >= 1, ModelError, to_string(spec.kind), " layer '", spec.name, "': stride must be >= 1");
    if (auto_pad == kSameUpper || auto_pad == kSameLower) {
      const std::string what = where(spec, "auto_pad (SAME padding)");
      const int64_t out = checked_add(in, stride - 1, what) / stride;
      const int64_t total =
          std::max<int64_t>(0, checked_add(checked_mul(out - 1, stride, what), kernel_extent, what) - in);
      pad_begin = auto_pad == kSameUpper ? total / 2 : total - total / 2;
      pad_end = total - pad_begin;
    } else if (auto_pad == kValid) {
      pad_begin = pad_end = 0;
    } else {
      DTD_CHECK(auto_pad == kNotSet, ModelError, to_string(spec.kind), " layer '", spec.name,
                "': unknown auto_pad value ", auto_pad);
    }
    DTD_CHECK(pad_begin >= 0 && pad_end >= 0, ModelError, to_string(spec.kind), " layer '", spec.name,
              "': negative pads");
    const int64_t padded = checked_add(checked_add(in, pad_begin, where(spec, "pads")), pad_end, where(spec, "pads"));
    const int64_t span = padded - kernel_extent;
    DTD_CHECK(span >= 0, ModelError, to_string(spec.kind), " layer '", spec.name, "': kernel extent ", kernel_extent,
              " exceeds the padded input extent ", padded);
    int64_t out = span / stride + 1;
    if (ceil_mode && span % stride != 0) {
      ++out;
      // The last window must start inside the input or the leading padding (ONNX / PyTorch convention).
      if (checked_mul(out - 1, stride, where(spec, "strides")) >= in + pad_begin) --out;
    }
    return out;
  }
};

/// A window (kernel) geometry over 1, 2 or 3 spatial axes, always held as three axes (depth, height, width): an op
/// with fewer spatial axes gets leading unit axes (extent 1, kernel 1, stride 1, no padding), so 1-D and 2-D use
/// the same loops, and the same memory layout, as 3-D.
struct Window {
  int64_t rank = 0;  // spatial axes of the op: 1, 2 or 3
  std::array<int64_t, 3> in{1, 1, 1}, out{1, 1, 1}, kernel{1, 1, 1}, stride{1, 1, 1}, dil{1, 1, 1};
  std::array<int64_t, 3> pad_begin{0, 0, 0}, pad_end{0, 0, 0};
};

/// Reads strides (rank values), dilations (rank), pads (2 * rank: all begins, then all ends, ONNX order) and auto_pad
/// of `spec` for the spatial extents `spatial` and the kernel extents `kernel` (both rank values, rank 1 to 3),
/// and resolves the output extents.
inline Window window(const LayerSpec& spec, const Shape& spatial, const std::vector<int64_t>& kernel, bool ceil_mode) {
  const size_t r = spatial.size();
  DTD_CHECK(r >= 1 && r <= 3 && kernel.size() == r, ModelError, to_string(spec.kind), " layer '", spec.name, "': ", r,
            " spatial axes with a kernel of ", kernel.size(), " (1 to 3 spatial axes are supported)");
  const auto strides = ints(spec, "strides", r, std::vector<int64_t>(r, 1));
  const auto dil = ints(spec, "dilations", r, std::vector<int64_t>(r, 1));
  const auto pads = ints(spec, "pads", 2 * r, std::vector<int64_t>(2 * r, 0));
  const int64_t auto_pad = int_attr(spec, "auto_pad", kNotSet);
  Window g;
  g.rank = static_cast<int64_t>(r);
  for (size_t i = 0; i < r; ++i) {
    const size_t a = 3 - r + i;
    DTD_CHECK(kernel[i] >= 1, ModelError, to_string(spec.kind), " layer '", spec.name, "': kernel must be >= 1");
    DTD_CHECK(dil[i] >= 1, ModelError, to_string(spec.kind), " layer '", spec.name, "': dilations must be >= 1");
    g.in[a] = spatial[i], g.kernel[a] = kernel[i], g.stride[a] = strides[i], g.dil[a] = dil[i];
    const int64_t extent = checked_mul(kernel[i] - 1, dil[i], where(spec, "dilations (dilated kernel extent)")) + 1;
    Axis axis{spatial[i], extent, strides[i], pads[i], pads[r + i]};
    g.out[a] = axis.resolve(spec, auto_pad, ceil_mode);
    g.pad_begin[a] = axis.pad_begin, g.pad_end[a] = axis.pad_end;
  }
  return g;
}

}  // namespace dtd::detail
