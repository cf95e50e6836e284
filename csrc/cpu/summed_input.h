// Which of a cell's gates take the input's and the hidden state's products as one sum.
#pragma once

#include <type_traits>

#include "../cells/gru.h"
#include "../cells/lstm.h"
#include "../cells/rnn.h"

namespace fusedrnn {
namespace cpu {

// Cells whose first kSummedGates gates take x_t·W_ihᵀ + h_{t-1}·W_hhᵀ as one sum (forward_gates
// with GateSums::kInGh or kInWorkspace), so that one product over [x_t | h_{t-1}], or the
// recurrent product added onto the input side's, can give both: all four of the LSTM's, the
// GRU's r and z (its n keeps the two sides apart), the Elman cell's one.
template <typename Cell>
struct TakesSummedInput : std::false_type {};
template <>
struct TakesSummedInput<LstmCell> : std::true_type {
  static constexpr int kSummedGates = 4;
};
template <>
struct TakesSummedInput<GruCell> : std::true_type {
  static constexpr int kSummedGates = 2;
};
template <bool kRelu>
struct TakesSummedInput<RnnCell<kRelu>> : std::true_type {
  static constexpr int kSummedGates = 1;
};

}  // namespace cpu
}  // namespace fusedrnn
