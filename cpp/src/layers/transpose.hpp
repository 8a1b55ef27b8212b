#pragma once

#include "index_map.hpp"

namespace dtd {

/// Transpose with ints "perm" (the ONNX permutation, batch axis included: perm[0] must be 0). Relevance applies
/// the inverse permutation.
template <class T>
class Transpose final : public IndexMap<T> {
 public:
  Transpose(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes);
};

}  // namespace dtd
