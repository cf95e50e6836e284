// A cell's forward over hidden units [j0, j1) of one row, saving what backward needs or, in
// lean inference, only the new state.
#pragma once

#include <cstdint>

#include "../cells/rows.h"
#include "vectorize.h"

namespace fusedrnn {
namespace cpu {

// kSums: where the gates that the cell sums find both products (GateSums).
template <typename Cell, typename T, bool kSave, GateSums kSums = GateSums::kApart>
inline void cell_forward_units(const ForwardRow<T>& r, int64_t H, int64_t j0, int64_t j1) {
  if constexpr (Cell::kTwoHalfForward) {  // each half over the whole range (see the cell)
    FUSEDRNN_INDEPENDENT_ITERATIONS
    for (int64_t j = j0; j < j1; ++j) {
      Cell::template forward_gates<T, kSave, kSums>(r, H, j);
    }
    FUSEDRNN_INDEPENDENT_ITERATIONS
    for (int64_t j = j0; j < j1; ++j) Cell::template forward_output<T, kSave>(r, H, j);
  } else {
    FUSEDRNN_INDEPENDENT_ITERATIONS
    for (int64_t j = j0; j < j1; ++j) Cell::template forward<T, kSave, kSums>(r, H, j);
  }
}

template <typename Cell, typename T, GateSums kSums = GateSums::kApart>
inline void cell_forward(const ForwardRow<T>& r, int64_t H, int64_t j0, int64_t j1, bool save) {
  if constexpr (Cell::kLeanInference) {
    if (!save) return cell_forward_units<Cell, T, false, kSums>(r, H, j0, j1);
  }
  cell_forward_units<Cell, T, true, kSums>(r, H, j0, j1);
}

}  // namespace cpu
}  // namespace fusedrnn
