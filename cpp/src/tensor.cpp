// The buffer pool behind Tensor (PoolAllocator). glibc returns large blocks to the system on free, so each
// call would fault fresh zeroed pages in; a cache of freed blocks avoids that for the shapes that repeat from call
// to call. Blocks are rounded up to size classes (four per power of two, at most 25 % slack), so that calls with
// different batch sizes reuse each other's blocks instead of each caching its own exact sizes; the cache holds at
// most a limit of bytes (set_cached_memory_limit, default 256 MiB), beyond which freed blocks go back to the system.
#include "dtd/tensor.hpp"

#include <atomic>
#include <cstdlib>
#include <iterator>
#include <map>
#include <mutex>
#include <new>

namespace dtd {

namespace {

constexpr size_t kMinPooled = size_t{1} << 16;   // smaller blocks: plain operator new
std::atomic<size_t> g_limit{size_t{256} << 20};  // bytes kept in the cache at most
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

// The size class of a pooled block: `bytes` rounded up to a multiple of a quarter of its highest power of two.
size_t size_class(size_t bytes) {
  if (bytes < kMinPooled) return bytes;
  size_t top = kMinPooled;
  while (top <= bytes / 2) top *= 2;
  const size_t step = top / 4;
  return (bytes + step - 1) / step * step;
}

// Frees cached blocks, largest first, until at most `keep` bytes stay cached. Caller holds the mutex.
void trim(Pool& p, size_t keep) {
  while (p.cached > keep && !p.free_blocks.empty()) {
    auto last = std::prev(p.free_blocks.end());
    p.cached -= last->first;
    ::operator delete(last->second, kAlign);
    p.free_blocks.erase(last);
  }
}

}  // namespace

namespace detail {

void* pool_allocate(size_t bytes) {
  bytes = size_class(bytes);
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
  bytes = size_class(bytes);
  if (bytes >= kMinPooled) {
    Pool& p = pool();
    std::lock_guard<std::mutex> lock(p.mutex);
    if (p.cached + bytes <= g_limit.load()) {
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
  trim(p, 0);
  return released;
}

size_t cached_memory() {
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.mutex);
  return p.cached;
}

void set_cached_memory_limit(size_t bytes) {
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.mutex);
  g_limit.store(bytes);
  trim(p, bytes);
}

}  // namespace dtd
