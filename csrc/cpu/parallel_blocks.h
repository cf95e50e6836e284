// Splitting a range across the ATen thread pool only when the work repays a thread hand-off.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

namespace fusedrnn {
namespace cpu {

// body(i0, i1) on blocks of [0, n), one per thread, in parallel when the multiply-adds give each
// block at least 2^16 (a thread hand-off costs a few µs); block edges fall on multiples of
// `align`. Inside a parallel region, or below that work, one call takes the whole range.
template <typename F>
void for_blocks(int64_t n, int64_t multiply_adds, int64_t align, const F& body) {
  constexpr int64_t kMinMultiplyAddsPerBlock = int64_t(1) << 16;
  int64_t blocks = at::in_parallel_region() ? 1 : at::get_num_threads();
  blocks = std::min({blocks, multiply_adds / kMinMultiplyAddsPerBlock, (n + align - 1) / align});
  if (blocks <= 1) {
    body(int64_t(0), n);
    return;
  }
  const int64_t per_block = ((n + align - 1) / align + blocks - 1) / blocks * align;
  at::parallel_for(0, blocks, 1, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      const int64_t i0 = std::min(n, k * per_block), i1 = std::min(n, i0 + per_block);
      if (i1 > i0) body(i0, i1);
    }
  });
}

}  // namespace cpu
}  // namespace fusedrnn
