// Large CPU buffers kept for reuse between calls, so that a training loop does not fault in
// fresh pages for its workspaces and gradient rows on every step.
//
// glibc hands a freed block at the top of its heap back to the kernel once the free space there
// passes its trim threshold (twice its mmap threshold, so 8-64 MB in practice), and serves blocks
// above 32 MiB from a new mapping each time: in a plain training loop of fusedrnn.LSTM at
// (B, T, I, H) = (16, 200, 32, 64) every step faulted its 4 MB workspace and 3 MB of gradient
// rows in again, and a step ran in 0.59-0.70x the time once glibc was told to keep freed memory
// (GLIBC_TUNABLES trim and mmap thresholds of 1 GiB, alternating processes). This pool keeps
// only fusedrnn's own buffers of 1 MiB or more, up to FUSEDRNN_KEEP_MB idle megabytes (256 by
// default; 0 turns the pool off), and leaves the process's malloc settings alone.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>

#include <cstddef>
#include <cstdint>

namespace fusedrnn {
namespace cpu {

// Buffers below this size come from malloc as before: the heap reuses them well.
constexpr size_t kMinPooledBytes = size_t(1) << 20;

// A block of at least `bytes` (64-byte aligned), from the pool when an idle one fits.
void* pool_take(size_t bytes, size_t* granted);
// Gives back a block from pool_take with the size it granted; kept idle, or freed past the cap.
void pool_give(void* block, size_t granted);
// Idle bytes held now.
size_t pool_idle_bytes();

// at::empty on the CPU, from the pool when the tensor is 1 MiB or more: a forward's workspace
// and outputs, the input gradient. The storage stays resizable (its allocator is the pool's).
at::Tensor pooled_empty(at::IntArrayRef sizes, const at::TensorOptions& options);

// An uninitialised array of n values of T for one call's scratch, from the pool when large.
template <typename T>
class PooledArray {
 public:
  explicit PooledArray(size_t n) {
    if (n * sizeof(T) >= kMinPooledBytes) {
      data_ = static_cast<T*>(pool_take(n * sizeof(T), &granted_));
    } else if (n) {
      data_ = new T[n];
    }
  }
  ~PooledArray() {
    if (granted_) {
      pool_give(data_, granted_);
    } else {
      delete[] data_;
    }
  }
  PooledArray(const PooledArray&) = delete;
  PooledArray& operator=(const PooledArray&) = delete;
  T* get() const { return data_; }

 private:
  size_t granted_ = 0;  // nonzero: the block came from the pool
  T* data_ = nullptr;
};

}  // namespace cpu
}  // namespace fusedrnn
