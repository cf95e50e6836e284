// One time step over the whole batch: the cell ops (a decoder's call per step) and layers called
// with T = 1. The sequence driver would run the input GEMM as its own threaded call, then the
// per-thread recurrent products and cell math, then (backward) five more threaded calls for the
// input and weight gradients. Here one fork/join per phase does it all:
//   forward:  each thread takes a block of rows and computes both products and the cell for them;
//   backward: each thread takes a block of rows for the cell's backward and dx, dh; then one
//             GEMM per weight gradient over the batch.
// Measured on the 2-core CI machine, an LSTM cell at batch 32, H 128 (interleaved, same process):
// forward 74-79 µs against 77-79 through the sequence driver, backward 122-126 against 125-130.
//
// Cells whose math is per unit (LSTM, GRU, Elman); no projection or regularisers (the cell ops
// never pass them; a layer with T = 1 and either goes through the sequence driver).
#pragma once

#include <cstring>
#include <vector>

#include "../driver_common.h"
#include "driver_buffers.h"
#include "gemm.h"
#include "parallel_blocks.h"
#include "reductions.h"
#include "vectorize.h"

namespace fusedrnn {
namespace cpu {

// Callers check !Cell::kRowWise at compile time: row-wise cells have no per-unit math.
template <typename T>
bool single_step_applies(const Schedule& s, const LayerWeights<T>& w, const Regularizers<T>& reg) {
  return s.steps() == 1 && w.w_hr == nullptr && !reg.any();
}

template <typename Cell, typename T>
void single_step_forward(int64_t B, const T* x, const LayerWeights<T>& w,
                         const ForwardBuffers<Cell, T>& out) {
  const int64_t H = w.hidden_size, I = w.input_size, GH = Cell::kGates * H, W = out.ws_cols;
  std::vector<T> gh(static_cast<size_t>(B * GH));
  const ForwardStep<T> fs{out.ws, gh.data(), w.b_ih, w.b_hh, out.h, out.c, out.y,
                          0,      W,         H,      H,      false, w.ln,  w.eps};
  for_blocks(B, B * GH * (I + H), 1, [&](int64_t b0, int64_t b1) {
    gemm<T>(false, true, b1 - b0, GH, I, T(1), x + b0 * I, I, w.w_ih, I, T(0), out.ws + b0 * W, W);
    gemm<T>(false, true, b1 - b0, GH, H, T(1), out.h + b0 * H, H, w.w_hh, H, T(0),
            gh.data() + b0 * GH, GH);
    for (int64_t b = b0; b < b1; ++b) {
      const ForwardRow<T> r = forward_row<Cell>(fs, b);
      FUSEDRNN_INDEPENDENT_ITERATIONS
      for (int64_t j = 0; j < H; ++j) Cell::forward(r, H, j);
    }
  });
  // out.h held h0 for every block's product; the new state replaces it only now
  std::memcpy(out.h, out.y, sizeof(T) * B * H);
}

template <typename Cell, typename T>
void single_step_backward(int64_t B, const LayerWeights<T>& w, const BackwardInputs<T>& in,
                          const BackwardOutputs<T>& out) {
  const int64_t H = w.hidden_size, I = w.input_size, GH = Cell::kGates * H;
  const int64_t GC = Cell::grad_cols(H), W = in.ws_cols;
  std::vector<T> dg(static_cast<size_t>(B * GC));
  const std::vector<GradBlock> blocks = input_grad_blocks<Cell>(H);
  // every row starts from h0/c0 (prev_rows 0)
  const BackwardStep<T> bs{in.ws, in.y, in.h0, in.c0, in.dy, nullptr, out.dh, out.dc, dg.data(),
                           0,     0,    0,     W,     GC,    H,       H,      false};
  const int64_t multiply_adds = B * GH * (I + H);
  // rows: the cell's backward, then dx and dh from the whole gradient row
  for_blocks(B, multiply_adds, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const BackwardRow<T> r = backward_row<Cell>(bs, b);
      FUSEDRNN_INDEPENDENT_ITERATIONS
      for (int64_t j = 0; j < H; ++j) Cell::backward(r, H, j);
    }
    bool first = true;
    for (const GradBlock& blk : blocks) {
      if (!out.dx) break;
      gemm<T>(false, false, b1 - b0, I, blk.width, T(1), dg.data() + b0 * GC + blk.grad_col, GC,
              w.w_ih + blk.weight_row * I, I, first ? T(0) : T(1), out.dx + b0 * I, I);
      first = false;
    }
    // GRU's cell wrote its direct term dL/dh_{t-1}·z into dh; the product adds to it
    gemm<T>(false, false, b1 - b0, H, GH, T(1), dg.data() + b0 * GC, GC, w.w_hh, H,
            Cell::kDirectHiddenGrad ? T(1) : T(0), out.dh + b0 * H, H);
  });
  // whole-batch weight gradients: one threaded GEMM each
  for (const GradBlock& blk : blocks) {
    gemm<T>(true, false, blk.width, I, B, T(1), dg.data() + blk.grad_col, GC, in.x, I, T(0),
            out.dw_ih + blk.weight_row * I, I);
    if (out.db_ih) column_sum(dg.data(), B, GC, blk.grad_col, blk.width, out.db_ih + blk.weight_row);
  }
  gemm<T>(true, false, GH, H, B, T(1), dg.data(), GC, in.h0, H, T(0), out.dw_hh, H);
  if (out.db_hh) column_sum(dg.data(), B, GC, 0, GH, out.db_hh);
}

}  // namespace cpu
}  // namespace fusedrnn
