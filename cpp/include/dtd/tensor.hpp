// A dense, row-major (C order) tensor that owns its buffer. Shapes include the batch axis first.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace dtd {

namespace detail {
/// Large buffers (activations, relevance, workspaces) come from a process-wide cache of freed blocks, so
/// repeated calls with the same shapes reuse memory instead of faulting fresh pages in (see tensor.cpp).
void* pool_allocate(size_t bytes);
void pool_deallocate(void* p, size_t bytes) noexcept;
}  // namespace detail

/// Returns the cached free blocks to the system; returns the bytes released.
size_t release_cached_memory();
/// Bytes of freed tensor buffers currently cached for reuse.
size_t cached_memory();
/// Sets the most bytes of freed buffers the cache keeps (default 256 MiB; 0 disables it), releasing what is above.
void set_cached_memory_limit(size_t bytes);

/// The allocator of tensor buffers: pooled, and default-initialising (no zero fill for elements that are
/// about to be overwritten; Tensor's public constructors fill explicitly).
template <class T>
struct PoolAllocator {
  using value_type = T;
  PoolAllocator() = default;
  template <class U>
  PoolAllocator(const PoolAllocator<U>&) noexcept {}  // NOLINT(google-explicit-constructor)
  T* allocate(size_t n) { return static_cast<T*>(detail::pool_allocate(n * sizeof(T))); }
  void deallocate(T* p, size_t n) noexcept { detail::pool_deallocate(p, n * sizeof(T)); }
  template <class U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
  template <class U>
  bool operator==(const PoolAllocator<U>&) const noexcept {
    return true;
  }
  template <class U>
  bool operator!=(const PoolAllocator<U>&) const noexcept {
    return false;
  }
};

template <class T>
using Buffer = std::vector<T, PoolAllocator<T>>;

using Shape = std::vector<int64_t>;

/// Number of elements of a shape (1 for a scalar shape {}).
int64_t numel(const Shape& shape);
/// "[2, 3, 4]".
std::string to_string(const Shape& shape);

template <class T>
struct Tensor {
  Shape shape;
  Buffer<T> data;

  Tensor() = default;
  /// Zero-filled.
  explicit Tensor(Shape s) : Tensor(std::move(s), T(0)) {}
  Tensor(Shape s, T fill) : shape(std::move(s)), data(static_cast<size_t>(numel(shape)), fill) {}
  /// Elements left uninitialised: for outputs that are about to be overwritten.
  static Tensor uninitialized(Shape s) {
    Tensor t;
    t.data.resize(static_cast<size_t>(numel(s)));
    t.shape = std::move(s);
    return t;
  }

  int64_t size() const { return static_cast<int64_t>(data.size()); }
  /// Batch size (first axis).
  int64_t batch() const { return shape.empty() ? 0 : shape[0]; }
  /// Elements per sample.
  int64_t sample_size() const { return batch() == 0 ? 0 : size() / batch(); }
  T* ptr() { return data.data(); }
  const T* ptr() const { return data.data(); }
};

}  // namespace dtd
