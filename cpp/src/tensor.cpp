// The buffer pool behind Tensor (PoolAllocator). glibc returns large blocks to the system on free, so each
// call would fault fresh zeroed pages in; a cache of freed blocks, keyed by size, avoids that for the shapes
// that repeat from call to call. Bounded: beyond kMaxCached bytes, freed blocks go back to the system.
#include "dtd/tensor.hpp"

#include <cstdlib>
#include <map>
#include <mutex>
#include <new>

namespace dtd {

namespace {

constexpr size_t kMinPooled = size_t{1} << 16;  // smaller blocks: plain operator new
constexpr size_t kMaxCached = size_t{1} << 30;  // bytes kept in the cache at most
constexpr std::align_val_t kAlign{64};

struct Pool {
  std::mutex mutex;
  std::multimap<size_t, void*> free_blocks;
  size_t cached = 0;

  ~Pool() {
    for (auto& [bytes, p] : free_blocks) ::operator delete(p, kAlign);
  }
};

Pool& pool() {
  static Pool* instance = new Pool;  // never destroyed: tensors may outlive static destruction order
  return *instance;
}

}  // namespace

namespace detail {

void* pool_allocate(size_t bytes) {
  if (bytes >= kMinPooled) {
    Pool& p = pool();
    std::lock_guard<std::mutex> lock(p.mutex);
    auto it = p.free_blocks.find(bytes);
    if (it != p.free_blocks.end()) {
      void* block = it->second;
      p.free_blocks.erase(it);
      p.cached -= bytes;
      return block;
    }
  }
  return ::operator new(bytes == 0 ? 1 : bytes, kAlign);
}

void pool_deallocate(void* block, size_t bytes) noexcept {
  if (block == nullptr) return;
  if (bytes >= kMinPooled) {
    Pool& p = pool();
    std::lock_guard<std::mutex> lock(p.mutex);
    if (p.cached + bytes <= kMaxCached) {
      p.free_blocks.emplace(bytes, block);
      p.cached += bytes;
      return;
    }
  }
  ::operator delete(block, kAlign);
}

}  // namespace detail

size_t release_cached_memory() {
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.mutex);
  const size_t released = p.cached;
  for (auto& [bytes, block] : p.free_blocks) ::operator delete(block, kAlign);
  p.free_blocks.clear();
  p.cached = 0;
  return released;
}

}  // namespace dtd
