// Deterministic reductions for the CPU kernels' bias and LayerNorm-parameter gradients.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "vectorize.h"

namespace fusedrnn {
namespace cpu {

// out[c] = Σ_rows g[row, col0 + c] (added to out[c] when accumulate); each column summed in row
// order, so results do not depend on the thread count.
template <typename T>
void column_sum(const T* g, int64_t rows, int64_t ld, int64_t col0, int64_t width, T* out,
                bool accumulate = false) {
  at::parallel_for(0, width, 256, [&](int64_t begin, int64_t end) {
    if (!accumulate) {
      for (int64_t c = begin; c < end; ++c) out[c] = T(0);
    }
    for (int64_t r = 0; r < rows; ++r) {
      const T* row = g + r * ld + col0;
      for (int64_t c = begin; c < end; ++c) out[c] += row[c];
    }
  });
}

// Several column reductions of the same rows in ONE pass over them: for each i,
// out_i[c] = Σ_rows g[row, grad_col_i + c]·(w ? w[row, ws_col_i + c] : 1), then row_done(row)
// runs while the row is still in cache (it may rewrite the row: every sum has read it by then).
// Rows are cut into a fixed number of groups summed separately, then over the groups in order,
// so results do not depend on the thread count. Against one column pass per reduction this reads
// the gradient and workspace rows once instead of once per reduction: memory-bound work. With
// accumulate the sums are added to out_i.
struct RowReduction {
  int64_t grad_col, ws_col, width;  // ws_col < 0: a plain sum
  void* out;                        // T*; nullptr: skipped
};

template <typename T, typename RowDone>
void reduce_rows(const T* g, int64_t rows, int64_t ld, const T* w, int64_t ldw,
                 const std::vector<RowReduction>& reds, const RowDone& row_done,
                 bool accumulate = false) {
  constexpr int64_t kGroups = 16;
  std::vector<int64_t> at(reds.size() + 1, 0);
  for (size_t i = 0; i < reds.size(); ++i) at[i + 1] = at[i] + (reds[i].out ? reds[i].width : 0);
  const int64_t width = at.back(), groups = std::max<int64_t>(1, std::min(kGroups, rows));
  std::vector<T> partial(static_cast<size_t>(groups * width), T(0));
  at::parallel_for(0, groups, 1, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) {
      T* acc_q = partial.data() + q * width;
      for (int64_t r = q * rows / groups; r < (q + 1) * rows / groups; ++r) {
        for (size_t i = 0; i < reds.size(); ++i) {
          if (!reds[i].out) continue;
          T* acc = acc_q + at[i];
          const T* gr = g + r * ld + reds[i].grad_col;
          const int64_t n = reds[i].width;
          if (reds[i].ws_col >= 0) {
            const T* wr = w + r * ldw + reds[i].ws_col;
            FUSEDRNN_INDEPENDENT_ITERATIONS
            for (int64_t c = 0; c < n; ++c) acc[c] += gr[c] * wr[c];
          } else {
            FUSEDRNN_INDEPENDENT_ITERATIONS
            for (int64_t c = 0; c < n; ++c) acc[c] += gr[c];
          }
        }
        row_done(r);
      }
    }
  });
  for (size_t i = 0; i < reds.size(); ++i) {
    if (!reds[i].out) continue;
    T* out = static_cast<T*>(reds[i].out);
    for (int64_t c = 0; c < reds[i].width; ++c) {
      T sum = T(0);
      for (int64_t q = 0; q < groups; ++q) sum += partial[q * width + at[i] + c];
      out[c] = accumulate ? out[c] + sum : sum;
    }
  }
}

}  // namespace cpu
}  // namespace fusedrnn
