// The pool of buffer_pool.h: idle blocks in the order they came back, best fit on take, the
// longest idle freed first once the idle bytes pass the cap. A leaked singleton, so that tensors
// freed during interpreter shutdown still find it.
#include "buffer_pool.h"

#include <ATen/EmptyTensor.h>
#include <ATen/ops/empty.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>
#include <c10/util/accumulate.h>

#include <cstdlib>
#include <mutex>
#include <vector>

#include "huge_pages.h"

namespace fusedrnn {
namespace cpu {
namespace {

size_t cap_from_environment() {
  const char* value = std::getenv("FUSEDRNN_KEEP_MB");
  if (!value || !*value) return size_t(256) << 20;
  char* end = nullptr;
  const long long mb = std::strtoll(value, &end, 10);
  TORCH_CHECK(end && *end == '\0' && mb >= 0,
              "FUSEDRNN_KEEP_MB must be a whole number of megabytes (0 turns the buffer pool off), "
              "got '", value, "'");
  return static_cast<size_t>(mb) << 20;
}

// Sizes round up to 64 KiB, so that steps of slightly different lengths share blocks.
size_t rounded(size_t bytes) {
  constexpr size_t kGrain = size_t(64) << 10;
  return (bytes + kGrain - 1) / kGrain * kGrain;
}

void* allocate(size_t bytes) {
  // 2 MiB alignment where huge pages are asked for, so that the whole block can use them
  const size_t alignment = bytes >= kFreshMappingBytes ? (size_t(2) << 20) : 64;
  void* p = nullptr;
  if (posix_memalign(&p, alignment, bytes) != 0) p = nullptr;
  TORCH_CHECK(p, "fusedrnn: out of memory allocating a ", bytes, "-byte buffer");
  advise_huge_pages(p, bytes);
  return p;
}

struct Block {
  void* data;
  size_t bytes;
};

class Pool {
 public:
  Pool() : cap_(cap_from_environment()) {}

  void* take(size_t bytes, size_t* granted) {
    const size_t want = rounded(bytes);
    if (cap_ > 0) {
      std::lock_guard<std::mutex> lock(mutex_);
      // best fit within a quarter of the request, so that a small request keeps no large block
      size_t best = idle_.size();
      for (size_t i = 0; i < idle_.size(); ++i) {
        const size_t b = idle_[i].bytes;
        if (b >= want && b <= want + want / 4 && (best == idle_.size() || b < idle_[best].bytes)) {
          best = i;
        }
      }
      if (best != idle_.size()) {
        const Block block = idle_[best];
        idle_.erase(idle_.begin() + static_cast<std::ptrdiff_t>(best));
        idle_bytes_ -= block.bytes;
        *granted = block.bytes;
        return block.data;
      }
    }
    *granted = want;
    return allocate(want);
  }

  void give(void* data, size_t bytes) {
    std::vector<Block> evicted;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      idle_.push_back({data, bytes});
      idle_bytes_ += bytes;
      size_t drop = 0;
      while (idle_bytes_ > cap_ && drop < idle_.size()) {
        idle_bytes_ -= idle_[drop].bytes;
        evicted.push_back(idle_[drop++]);
      }
      idle_.erase(idle_.begin(), idle_.begin() + static_cast<std::ptrdiff_t>(drop));
    }
    for (const Block& b : evicted) std::free(b.data);  // outside the lock
  }

  size_t idle_bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return idle_bytes_;
  }

 private:
  const size_t cap_;
  std::mutex mutex_;
  std::vector<Block> idle_;  // oldest first
  size_t idle_bytes_ = 0;
};

Pool& pool() {
  static Pool* const instance = new Pool();  // never destroyed: see the file comment
  return *instance;
}

// The pool as a c10::Allocator, so that pooled tensors keep a resizable storage: a resize takes
// its new block from here too. Blocks below kMinPooledBytes come from torch's CPU allocator.
class PoolAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t bytes) override {
    if (bytes < kMinPooledBytes) return c10::GetCPUAllocator()->allocate(bytes);
    size_t granted = 0;
    void* data = pool().take(bytes, &granted);
    return {data, new Block{data, granted}, &give_back, c10::Device(c10::DeviceType::CPU)};
  }
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

 private:
  static void give_back(void* context) {
    const Block* block = static_cast<const Block*>(context);
    pool().give(block->data, block->bytes);
    delete block;
  }
};

PoolAllocator& pool_allocator() {
  static PoolAllocator* const instance = new PoolAllocator();  // leaked, as the pool
  return *instance;
}

}  // namespace

void* pool_take(size_t bytes, size_t* granted) { return pool().take(bytes, granted); }
void pool_give(void* block, size_t granted) { pool().give(block, granted); }
size_t pool_idle_bytes() { return pool().idle_bytes(); }

at::Tensor pooled_empty(at::IntArrayRef sizes, const at::TensorOptions& options) {
  const size_t bytes = static_cast<size_t>(c10::multiply_integers(sizes)) *
                       c10::elementSize(c10::typeMetaToScalarType(options.dtype()));
  if (bytes < kMinPooledBytes) return at::empty(sizes, options);
  return at::detail::empty_generic(sizes, &pool_allocator(),
                                   c10::DispatchKeySet(c10::DispatchKey::CPU),
                                   c10::typeMetaToScalarType(options.dtype()), std::nullopt);
}

}  // namespace cpu
}  // namespace fusedrnn
