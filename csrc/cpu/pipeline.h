// Two threads in a pipeline: one produces items in order, the other consumes them in order.
// For recurrences whose step loop is serial (batch 1, a few rows): while one thread runs the
// steps of the next chunk, the other takes the whole-sequence GEMMs of the chunk just finished,
// instead of idling through the steps and then sharing the GEMMs.
#pragma once

#include <ATen/Parallel.h>

#include <atomic>
#include <cstdint>
#include <exception>
#include <thread>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

namespace fusedrnn {
namespace cpu {

inline void spin_pause() {
#if defined(__x86_64__) || defined(_M_X64)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// produce(i) for i = 0, 1, ..., count - 1 on one thread and consume(i) in the same order on a
// second, each consume(i) after produce(i) and each produce(i) after consume(i - slots) (an item
// lives in one of `slots` buffers). Once the producer is done the consumer stops at its next
// item: the call returns how many were consumed, and the caller takes the rest with the whole
// thread pool. With one thread in the region it alternates produce(i), consume(i) and returns
// count. Inside the two, ATen's parallel_for and the BLAS run on the calling thread.
template <typename Produce, typename Consume>
int64_t produce_and_consume(int64_t count, int64_t slots, const Produce& produce,
                            const Consume& consume) {
  std::atomic<int64_t> produced{0}, consumed{0};
  std::atomic<bool> producer_done{false}, failed{false};
  at::parallel_for(0, 2, 1, [&](int64_t k0, int64_t k1) {
    if (k1 - k0 == 2) {  // the region got one thread
      for (int64_t i = 0; i < count; ++i) {
        produce(i);
        consume(i);
      }
      consumed.store(count);
      return;
    }
    try {
      if (k0 == 0) {
        for (int64_t i = 0; i < count; ++i) {
          while (i - consumed.load(std::memory_order_acquire) >= slots) {
            if (failed.load(std::memory_order_relaxed)) return;
            spin_pause();
          }
          produce(i);
          produced.store(i + 1, std::memory_order_release);
        }
        producer_done.store(true, std::memory_order_release);
      } else {
        for (int64_t i = 0; i < count; ++i) {
          while (produced.load(std::memory_order_acquire) <= i &&
                 !producer_done.load(std::memory_order_acquire)) {
            if (failed.load(std::memory_order_relaxed)) return;
            spin_pause();
          }
          if (producer_done.load(std::memory_order_acquire)) return;  // the tail: the caller's
          consume(i);
          consumed.store(i + 1, std::memory_order_release);
        }
      }
    } catch (...) {
      failed.store(true);  // releases the other side's wait; parallel_for rethrows this
      throw;
    }
  });
  return consumed.load();
}

}  // namespace cpu
}  // namespace fusedrnn
