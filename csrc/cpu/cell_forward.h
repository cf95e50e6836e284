// A cell's forward over hidden units [j0, j1) of one row, saving what backward needs or, in
// lean inference, only the new state.
#pragma once

#include <cstdint>

#include "../cells/rows.h"
#include "vectorize.h"

namespace fusedrnn {
namespace cpu {

template <typename Cell, typename T>
inline void cell_forward(const ForwardRow<T>& r, int64_t H, int64_t j0, int64_t j1, bool save) {
  if constexpr (Cell::kLeanInference) {
    if (!save) {
      FUSEDRNN_INDEPENDENT_ITERATIONS
      for (int64_t j = j0; j < j1; ++j) Cell::template forward<T, false>(r, H, j);
      return;
    }
  }
  FUSEDRNN_INDEPENDENT_ITERATIONS
  for (int64_t j = j0; j < j1; ++j) Cell::forward(r, H, j);
}

}  // namespace cpu
}  // namespace fusedrnn
