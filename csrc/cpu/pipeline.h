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

// What the two sides of produce_and_consume share. A side waits by spinning while the wait is
// short (the other side is usually well under a millisecond away), then sleeps until the other
// side signals. Spinning without end kept a core from a thread that the OS had descheduled to
// make room for another process: beside two busy processes a batch-1 GRU's inference took 8 ms
// instead of 0.3 in two runs of three, an LSTM training step 196 ms instead of 0.8 in one.
// Giving the core up with sched_yield after 2,000 pauses instead handed it to a busy process for
// a whole time slice (an LSTM training step 4.0 ms beside one busy loop); sleeping after 2,000
// pauses (50 us) did the same through the wake-up, after 20,000 (0.5 ms) it did not.
class PipelineState {
 public:
  std::atomic<int64_t> produced{0}, consumed{0};
  std::atomic<bool> producer_done{false}, failed{false};

  // After each change above that the other side may be waiting for.
  void signal() {
    events_.fetch_add(1, std::memory_order_release);
    events_.notify_all();  // a system call only while the other side sleeps
  }

  // Waits until ready() holds (true) or the other side failed (false).
  template <typename Ready>
  bool wait_until(const Ready& ready) {
    for (int spins = 0;; ++spins) {
      if (failed.load(std::memory_order_relaxed)) return false;
      if (ready()) return true;
      if (spins < kSpins) {
        spin_pause();
        continue;
      }
      // `seen` before the checks: a signal between them changes events_, and wait returns
      const uint32_t seen = events_.load(std::memory_order_acquire);
      if (failed.load(std::memory_order_relaxed)) return false;
      if (ready()) return true;
      events_.wait(seen, std::memory_order_acquire);
    }
  }

 private:
  static constexpr int kSpins = 20000;  // about 0.5 ms: a pause takes 25 ns on the EPYC here
  std::atomic<uint32_t> events_{0};
};

// produce(i) for i = 0, 1, ..., count - 1 on one thread and consume(i) in the same order on a
// second, each consume(i) after produce(i) and each produce(i) after consume(i - slots) (an item
// lives in one of `slots` buffers). Once the producer is done the consumer stops at its next
// item: the call returns how many were consumed, and the caller takes the rest with the whole
// thread pool. With one thread in the region it alternates produce(i), consume(i) and returns
// count. Inside the two, ATen's parallel_for and the BLAS run on the calling thread.
template <typename Produce, typename Consume>
int64_t produce_and_consume(int64_t count, int64_t slots, const Produce& produce,
                            const Consume& consume) {
  PipelineState st;
  at::parallel_for(0, 2, 1, [&](int64_t k0, int64_t k1) {
    if (k1 - k0 == 2) {  // the region got one thread
      for (int64_t i = 0; i < count; ++i) {
        produce(i);
        consume(i);
      }
      st.consumed.store(count);
      return;
    }
    try {
      if (k0 == 0) {
        for (int64_t i = 0; i < count; ++i) {
          const bool free_slot = st.wait_until(
              [&] { return i - st.consumed.load(std::memory_order_acquire) < slots; });
          if (!free_slot) return;
          produce(i);
          st.produced.store(i + 1, std::memory_order_release);
          st.signal();
        }
        st.producer_done.store(true, std::memory_order_release);
        st.signal();
      } else {
        for (int64_t i = 0; i < count; ++i) {
          const bool go_on = st.wait_until([&] {
            return st.produced.load(std::memory_order_acquire) > i ||
                   st.producer_done.load(std::memory_order_acquire);
          });
          if (!go_on) return;
          if (st.producer_done.load(std::memory_order_acquire)) return;  // the tail: the caller's
          consume(i);
          st.consumed.store(i + 1, std::memory_order_release);
          st.signal();
        }
      }
    } catch (...) {
      st.failed.store(true);  // releases the other side's wait; parallel_for rethrows this
      st.signal();
      throw;
    }
  });
  return st.consumed.load();
}

}  // namespace cpu
}  // namespace fusedrnn
