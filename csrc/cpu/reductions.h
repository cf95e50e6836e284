// Deterministic reductions for the CPU kernels' bias gradients.
#pragma once

#include <ATen/Parallel.h>

#include <cstdint>

namespace fusedrnn {
namespace cpu {

// out[c] = Σ_rows g[row, col0 + c]; each column summed in row order, so results do not depend on
// the thread count.
template <typename T>
void column_sum(const T* g, int64_t rows, int64_t ld, int64_t col0, int64_t width, T* out) {
  at::parallel_for(0, width, 256, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) out[c] = T(0);
    for (int64_t r = 0; r < rows; ++r) {
      const T* row = g + r * ld + col0;
      for (int64_t c = begin; c < end; ++c) out[c] += row[c];
    }
  });
}

// out[c] = Σ_rows g[row, col0 + c]·w[row, c] (w has leading dimension ldw), or the plain column
// sum when w is null; the same fixed order as column_sum.
template <typename T>
void column_dot(const T* g, int64_t rows, int64_t ld, int64_t col0, const T* w, int64_t ldw,
                int64_t width, T* out) {
  if (!w) return column_sum(g, rows, ld, col0, width, out);
  at::parallel_for(0, width, 256, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) out[c] = T(0);
    for (int64_t r = 0; r < rows; ++r) {
      const T* row = g + r * ld + col0;
      const T* wr = w + r * ldw;
      for (int64_t c = begin; c < end; ++c) out[c] += row[c] * wr[c];
    }
  });
}

}  // namespace cpu
}  // namespace fusedrnn
