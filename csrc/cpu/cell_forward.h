// A cell's forward over hidden units [j0, j1) of one row, saving what backward needs or, in
// lean inference, only the new state.
#pragma once

#include <cstdint>

#include "../cells/rows.h"
#include "vectorize.h"

namespace fusedrnn {
namespace cpu {

// kSummedInput: gh holds both products (StackedRightOperand); cells that split their forward
// in two halves (the LSTM) take it.
template <typename Cell, typename T, bool kSave, bool kSummedInput = false>
inline void cell_forward_units(const ForwardRow<T>& r, int64_t H, int64_t j0, int64_t j1) {
  static_assert(!kSummedInput || Cell::kTwoHalfForward, "a summed input needs forward_gates");
  if constexpr (Cell::kTwoHalfForward) {  // each half over the whole range (see the cell)
    if constexpr (kSummedInput) {
      FUSEDRNN_INDEPENDENT_ITERATIONS
      for (int64_t j = j0; j < j1; ++j) Cell::template forward_gates<T, kSave, true>(r, H, j);
    } else {
      FUSEDRNN_INDEPENDENT_ITERATIONS
      for (int64_t j = j0; j < j1; ++j) Cell::template forward_gates<T, kSave>(r, H, j);
    }
    FUSEDRNN_INDEPENDENT_ITERATIONS
    for (int64_t j = j0; j < j1; ++j) Cell::template forward_output<T, kSave>(r, H, j);
  } else if constexpr (kSave) {
    FUSEDRNN_INDEPENDENT_ITERATIONS
    for (int64_t j = j0; j < j1; ++j) Cell::forward(r, H, j);
  } else {
    FUSEDRNN_INDEPENDENT_ITERATIONS
    for (int64_t j = j0; j < j1; ++j) Cell::template forward<T, false>(r, H, j);
  }
}

template <typename Cell, typename T, bool kSummedInput = false>
inline void cell_forward(const ForwardRow<T>& r, int64_t H, int64_t j0, int64_t j1, bool save) {
  if constexpr (Cell::kLeanInference) {
    if (!save) return cell_forward_units<Cell, T, false, kSummedInput>(r, H, j0, j1);
  }
  cell_forward_units<Cell, T, true, kSummedInput>(r, H, j0, j1);
}

}  // namespace cpu
}  // namespace fusedrnn
