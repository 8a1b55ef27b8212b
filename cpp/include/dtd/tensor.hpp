// A dense, row-major (C order) tensor that owns its buffer. Shapes include the batch axis first.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace dtd {

using Shape = std::vector<int64_t>;

/// Number of elements of a shape (1 for a scalar shape {}).
int64_t numel(const Shape& shape);
/// "[2, 3, 4]".
std::string to_string(const Shape& shape);

template <class T>
struct Tensor {
  Shape shape;
  std::vector<T> data;

  Tensor() = default;
  explicit Tensor(Shape s) : shape(std::move(s)), data(static_cast<size_t>(numel(shape))) {}
  Tensor(Shape s, T fill) : shape(std::move(s)), data(static_cast<size_t>(numel(shape)), fill) {}

  int64_t size() const { return static_cast<int64_t>(data.size()); }
  /// Batch size (first axis).
  int64_t batch() const { return shape.empty() ? 0 : shape[0]; }
  /// Elements per sample.
  int64_t sample_size() const { return batch() == 0 ? 0 : size() / batch(); }
  T* ptr() { return data.data(); }
  const T* ptr() const { return data.data(); }
};

}  // namespace dtd
