#pragma once

#include "index_map.hpp"

namespace dtd {

/// ONNX Slice on per-sample axes: ints "axes" (ONNX axes counting the batch axis, negative allowed, never the
/// batch axis), "starts", "ends", optional "steps" (default 1, negative allowed), clamped as ONNX does. Relevance is
/// scattered back into zeros of the input's shape.
template <class T>
class Slice final : public IndexMap<T> {
 public:
  Slice(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes);
};

/// ONNX Gather with constant indices on one per-sample axis: ints "axis" (counting the batch axis), "indices"
/// (negative allowed), optional "squeeze" (1: a scalar index, the axis is dropped; then exactly one index).
/// Relevance is scatter-added (an index that repeats collects the relevance of every copy).
template <class T>
class Gather final : public IndexMap<T> {
 public:
  Gather(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes);
};

}  // namespace dtd
