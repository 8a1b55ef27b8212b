// Spatial geometry shared by convolution and pooling (private): ONNX auto_pad, pads, ceil_mode.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

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
      const int64_t out = (in + stride - 1) / stride;
      const int64_t total = std::max<int64_t>(0, (out - 1) * stride + kernel_extent - in);
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
    const int64_t span = in + pad_begin + pad_end - kernel_extent;
    DTD_CHECK(span >= 0, ModelError, to_string(spec.kind), " layer '", spec.name, "': kernel extent ", kernel_extent,
              " exceeds the padded input extent ", in + pad_begin + pad_end);
    int64_t out = span / stride + 1;
    if (ceil_mode && span % stride != 0) {
      ++out;
      // The last window must start inside the input or the leading padding (ONNX / PyTorch convention).
      if ((out - 1) * stride >= in + pad_begin) --out;
    }
    return out;
  }
};

}  // namespace dtd::detail
