// Transparent huge pages for the buffer pool's blocks of 32 MiB or more (buffer_pool.cpp).
//
// glibc serves an allocation above its largest mmap threshold (32 MiB on 64-bit) from a mapping
// of its own. A LayerNormLSTM at (64, 50, 256, 256) keeps a 46 MB workspace, and a perf profile
// of its step, before the pool kept it between steps, put at least 10% of the samples in
// faulting, clearing and unmapping its pages; asked for huge pages, that mapping takes ~23
// faults instead of ~11,000 when first touched. Smaller blocks are left alone: an earlier
// attempt that advised every workspace made one such case (23 MB) slower.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace fusedrnn {
namespace cpu {

constexpr size_t kFreshMappingBytes = size_t(32) << 20;  // glibc's DEFAULT_MMAP_THRESHOLD_MAX

// madvise(MADV_HUGEPAGE) over the whole 2 MiB pages inside [data, data + bytes), before they are
// first touched. Advice only: where the kernel has THP off, or off Linux, nothing changes.
inline void advise_huge_pages(void* data, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (bytes < kFreshMappingBytes) return;
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) & ~(kHuge - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)data;
  (void)bytes;
#endif
}

}  // namespace cpu
}  // namespace fusedrnn
