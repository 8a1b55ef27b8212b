#pragma once

#include "index_map.hpp"

namespace dtd {

/// ONNX Pad values of the "mode" attribute.
enum PadMode : int64_t { kPadConstant = 0, kPadReflect = 1, kPadEdge = 2, kPadWrap = 3 };

/// ONNX Pad: ints "pads" (ONNX order [begin of each axis..., end of each axis...], batch axis included, whose two
/// entries must be 0; negative pads crop), "mode" (PadMode), floats "value" (constant mode). Relevance: constant
/// mode crops (the relevance of padded positions is dropped); reflect, edge and wrap add each padded copy's
/// relevance back onto the position it copies (the adjoint).
template <class T>
class Pad final : public IndexMap<T> {
 public:
  Pad(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes);
};

}  // namespace dtd
