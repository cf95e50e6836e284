// The pointers a CPU driver call works on: the layer's weights, and the buffers of forward and
// backward (row-major, packed rows N = Σ batch_sizes).
#pragma once

#include <cstdint>

namespace fusedrnn {
namespace cpu {

template <typename T>
struct LayerWeights {
  const T* w_ih;  // [G·H, I]
  const T* w_hh;  // [G·H, P]
  const T* b_ih;  // [G·H] (zeros without bias)
  const T* b_hh;
  const T* w_hr;  // [P, H] or nullptr
  int64_t input_size, hidden_size, proj_size;  // proj_size == hidden_size without projection
  const T* ln = nullptr;  // LayerNorm cells: packed LN gains and biases (Cell::ln_params)
  T eps = T(0);
};

template <typename Cell, typename T>
struct ForwardBuffers {
  T* y;        // [N, P] out
  T* h;        // [B, P] in h0, out h_n
  T* c;        // [B, H] in c0, out c_n (cells with a cell state)
  T* ws;       // [N, ws_cols] scratch; what backward needs when training
  int64_t ws_cols;
  // false (inference, Cell::kLeanInference): ws holds only the input pre-activations
  // (ws_cols = G·H), and the cell keeps nothing there for backward (it may use them as scratch)
  bool save = true;
};

template <typename T>
struct BackwardInputs {
  const T* dy;  // N rows of P, dy_ld apart (0: one row for all)
  const T* x;   // [N, I]
  const T* h0;  // [B, P]
  const T* c0;  // [B, H]
  const T* y;   // [N, P]
  const T* ws;  // [N, ws_cols]
  int64_t ws_cols;
  int64_t dy_ld;
};

template <typename T>
struct BackwardOutputs {
  T* dx;     // [N, I], or nullptr: not wanted
  T* dh;     // [B, P]: in dL/dh_n, out dL/dh0
  T* dc;     // [B, H]: in dL/dc_n, out dL/dc0
  T* dw_ih;  // [G·H, I]
  T* dw_hh;  // [G·H, P]
  T* db_ih;  // [G·H] or nullptr
  T* db_hh;  // [G·H] or nullptr
  T* dw_hr;  // [P, H] or nullptr
  T* dln = nullptr;  // LayerNorm cells: [Cell::ln_params]
};

}  // namespace cpu
}  // namespace fusedrnn
