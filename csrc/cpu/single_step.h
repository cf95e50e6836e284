// One time step over the whole batch: the cell ops (a decoder's call per step) and layers called
// with T = 1. The sequence driver would run the input GEMM as its own threaded call, then the
// per-thread recurrent products and cell math, then (backward) five more threaded calls for the
// input and weight gradients. Here one fork/join per phase does it all:
//   forward:  each thread takes a block of rows and computes both products and the cell for them
//             (at batch 16 and 32, a block of hidden units instead: single_step_forward_weight_major);
//   backward: each thread takes a block of rows for the cell's backward and dx, dh; then one
//             GEMM per weight gradient over the batch.
// Measured on the 2-core CI machine, an LSTM cell at batch 32, H 128 (interleaved, same process):
// forward 74-79 µs against 77-79 through the sequence driver, backward 122-126 against 125-130.
//
// Cells whose math is per unit (LSTM, GRU, Elman); no projection or regularisers (the cell ops
// never pass them; a layer with T = 1 and either goes through the sequence driver).
#pragma once

#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "../driver_common.h"
#include "cell_forward.h"
#include "driver_buffers.h"
#include "gemm.h"
#include "parallel_blocks.h"
#include "reductions.h"
#include "small_gemm.h"
#include "transpose.h"
#include "vectorize.h"

namespace fusedrnn {
namespace cpu {

// Callers check !Cell::kRowWise at compile time: row-wise cells have no per-unit math.
template <typename T>
bool single_step_applies(const Schedule& s, const LayerWeights<T>& w, const Regularizers<T>& reg) {
  return s.steps() == 1 && w.w_hr == nullptr && !reg.any();
}

// A[rows, cols] transposed into [cols, ld] (ld ≥ rows, zeros past rows): the batch as small_gemm's
// fixed operand.
inline void transpose_padded(const float* a, int64_t rows, int64_t cols, int64_t ld, float* out) {
  transpose_block(a, cols, rows, cols, out, ld);
  if (ld == rows) return;
  for (int64_t c = 0; c < cols; ++c) {
    for (int64_t r = rows; r < ld; ++r) out[c * ld + r] = 0.0f;
  }
}

// The float forward in the weights' own orientation: gatesᵀ = W·[x | h]ᵀ, so small_gemm runs over
// the weights' rows against the transposed batch (a few thousand floats) instead of needing the
// weights transposed (G·H·(I + H) floats, a copy as long as the product at this size) or a BLAS
// call that packs them per call. Each thread takes a block of hidden units (all gates of them),
// multiplies, turns its block back into the workspace's row layout and runs the cell on it.
// Measured against the BLAS path (per-thread sgemm on rows), cell alone, I 64-256, H 128-256:
// 13-30% faster at batch 16 and 32; slower at 64-128, where each thread's sgemm has enough rows,
// and at 20, where the padded columns cost more than they save.
inline bool weight_major_applies(int64_t B) {
  return (B == 16 || B == 32) && !reduced_precision_allowed();
}

template <typename Cell>
void single_step_forward_weight_major(int64_t B, const float* x, const LayerWeights<float>& w,
                                      const ForwardBuffers<Cell, float>& out) {
  const int64_t H = w.hidden_size, I = w.input_size, GH = Cell::kGates * H, W = out.ws_cols;
  const int64_t ld = small_gemm_ld(B);
  std::vector<float> xt(static_cast<size_t>(I * ld)), ht(static_cast<size_t>(H * ld));
  transpose_padded(x, B, I, ld, xt.data());
  transpose_padded(out.h, B, H, ld, ht.data());
  // every entry below is written before it is read: no zero fill
  const std::unique_ptr<float[]> gx_t(new float[GH * ld]), gh_t(new float[GH * ld]);
  const std::unique_ptr<float[]> gh(new float[B * GH]);
  const ForwardStep<float> fs{out.ws, gh.get(), w.b_ih, w.b_hh, out.h, out.c, out.y,
                              0,      W,        H,      H,      false, w.ln,  w.eps};
  for_blocks(H, B * GH * (I + H), 16, [&](int64_t j0, int64_t j1) {
    for (int64_t g = 0; g < Cell::kGates; ++g) {
      const int64_t row = g * H + j0;
      small_gemm(j1 - j0, B, I, w.w_ih + row * I, I, xt.data(), ld, 0.0f, gx_t.get() + row * ld, ld);
      small_gemm(j1 - j0, B, H, w.w_hh + row * H, H, ht.data(), ld, 0.0f, gh_t.get() + row * ld, ld);
      // back to the row layout
      transpose_block(gx_t.get() + row * ld, ld, j1 - j0, B, out.ws + row, W);
      transpose_block(gh_t.get() + row * ld, ld, j1 - j0, B, gh.get() + row, GH);
    }
    for (int64_t b = 0; b < B; ++b) cell_forward<Cell>(forward_row<Cell>(fs, b), H, j0, j1, out.save);
  });
  std::memcpy(out.h, out.y, sizeof(float) * B * H);
}

template <typename Cell, typename T>
void single_step_forward(int64_t B, const T* x, const LayerWeights<T>& w,
                         const ForwardBuffers<Cell, T>& out) {
  if constexpr (std::is_same_v<T, float>) {
    if (weight_major_applies(B)) return single_step_forward_weight_major<Cell>(B, x, w, out);
  }
  const int64_t H = w.hidden_size, I = w.input_size, GH = Cell::kGates * H, W = out.ws_cols;
  std::vector<T> gh(static_cast<size_t>(B * GH));
  const ForwardStep<T> fs{out.ws, gh.data(), w.b_ih, w.b_hh, out.h, out.c, out.y,
                          0,      W,         H,      H,      false, w.ln,  w.eps};
  for_blocks(B, B * GH * (I + H), 1, [&](int64_t b0, int64_t b1) {
    gemm<T>(false, true, b1 - b0, GH, I, T(1), x + b0 * I, I, w.w_ih, I, T(0), out.ws + b0 * W, W);
    gemm<T>(false, true, b1 - b0, GH, H, T(1), out.h + b0 * H, H, w.w_hh, H, T(0),
            gh.data() + b0 * GH, GH);
    for (int64_t b = b0; b < b1; ++b) cell_forward<Cell>(forward_row<Cell>(fs, b), H, 0, H, out.save);
  });
  // out.h held h0 for every block's product; the new state replaces it only now
  std::memcpy(out.h, out.y, sizeof(T) * B * H);
}

// C[m, n] = A[m, k]·Wt[k, n] + beta·C for one thread's rows, Wt a weight in its own row-major
// layout: small_gemm takes it as it is when n fills whole 16-lane vectors (no transposed copy,
// no BLAS packing per call), else the BLAS.
template <typename T>
void rows_times_weight(int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* wt, T beta,
                       T* c) {
  if constexpr (std::is_same_v<T, float>) {
    if (n % 16 == 0 && !reduced_precision_allowed()) {
      return small_gemm(m, n, k, a, lda, wt, n, beta, c, n);
    }
  }
  gemm<T>(false, false, m, n, k, T(1), a, lda, wt, n, beta, c, n);
}

template <typename Cell, typename T>
void single_step_backward(int64_t B, const LayerWeights<T>& w, const BackwardInputs<T>& in,
                          const BackwardOutputs<T>& out) {
  const int64_t H = w.hidden_size, I = w.input_size, GH = Cell::kGates * H;
  const int64_t GC = Cell::grad_cols(H), W = in.ws_cols;
  std::vector<T> dg(static_cast<size_t>(B * GC));
  const std::vector<GradBlock> blocks = input_grad_blocks<Cell>(H);
  // every row starts from h0/c0 (prev_rows 0)
  BackwardStep<T> bs{in.ws, in.y, in.h0, in.c0, in.dy, nullptr, out.dh, out.dc, dg.data(),
                     0,     0,    0,     W,     GC,    H,       H,      false};
  bs.dy_ld = in.dy_ld;
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
      rows_times_weight(b1 - b0, I, blk.width, dg.data() + b0 * GC + blk.grad_col, GC,
                        w.w_ih + blk.weight_row * I, first ? T(0) : T(1), out.dx + b0 * I);
      first = false;
    }
    // GRU's cell wrote its direct term dL/dh_{t-1}·z into dh; the product adds to it
    rows_times_weight(b1 - b0, H, GH, dg.data() + b0 * GC, GC, w.w_hh,
                      Cell::kDirectHiddenGrad ? T(1) : T(0), out.dh + b0 * H);
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
