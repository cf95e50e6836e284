// One time step over the whole batch: the cell ops (a decoder's call per step) and layers called
// with T = 1. The sequence driver would run the input GEMM as its own threaded call, then the
// per-thread recurrent products and cell math, then (backward) five more threaded calls for the
// input and weight gradients. Here one fork/join per phase does it all:
//   forward:  each thread takes a block of rows and computes both products and the cell for them
//             (at batch 16 and 32 a block of hidden units instead, in the weights' orientation:
//             single_step_forward_weight_major; in inference at batch 8 and the multiples of 16
//             up to 128, lean_forward_weight_major);
//   backward: each thread takes a block of rows for the cell's backward and dx, dh; then a block
//             of gradient columns for the weight and bias gradients (weight_grad_rows).
// Measured on the 2-core CI machine, an LSTM cell at batch 32, H 128 (interleaved, same process):
// forward 74-79 µs against 77-79 through the sequence driver, backward 122-126 against 125-130.
//
// Cells whose math is per unit (LSTM, GRU, Elman); no projection or regularisers (the cell ops
// never pass them; a layer with T = 1 and either goes through the sequence driver).
#pragma once

#include <algorithm>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "../cells/simd_sum.h"
#include "../driver_common.h"
#include "cell_forward.h"
#include "driver_buffers.h"
#include "gemm.h"
#include "parallel_blocks.h"
#include "reductions.h"
#include "small_gemm.h"
#include "summed_input.h"
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

// One thread's side of a product in the weights' orientation: x and h transposed to [I, ld] and
// [H, ld] (small_gemm's fixed operands). Each thread transposes them itself, a few thousand
// floats, rather than read a copy that the calling thread wrote (cache lines passed between
// cores): in a two-thread profile the other thread spent 11.5% of the samples in transposes and
// 14.9% in the product, against the caller's 5.9% and 11.3%.
class TransposedBatch {
 public:
  TransposedBatch(int64_t B, const float* x, int64_t I, const float* h, int64_t H)
      : input_size_(I), ld_(small_gemm_ld(B)), xht_(new float[(I + H) * ld_]) {
    // transpose_padded writes every entry: no zero fill
    transpose_padded(x, B, I, ld_, xht_.get());
    transpose_padded(h, B, H, ld_, ht());
  }
  int64_t ld() const { return ld_; }
  // column j of h: h_{t-1}[·, j] over the batch lanes
  const float* h_column(int64_t j) const { return ht() + j * ld_; }
  // gate g's products for hidden units [j0, j0 + units), x side into gx and h side into gh, each
  // [units, ld]: all ld lanes, zeros past the batch (the transposes' padding)
  void multiply_gate(const LayerWeights<float>& w, int64_t g, int64_t j0, int64_t units, float* gx,
                     float* gh) const {
    const int64_t I = w.input_size, H = w.hidden_size, row = g * H + j0;
    small_gemm(units, ld_, I, w.w_ih + row * I, I, xht_.get(), ld_, 0.0f, gx, ld_);
    small_gemm(units, ld_, H, w.w_hh + row * H, H, ht(), ld_, 0.0f, gh, ld_);
  }
  // both sides' products summed, in one product over the stacked [x | h]ᵀ (half the blocks'
  // stores and set-ups of two)
  void multiply_gate_summed(const LayerWeights<float>& w, int64_t g, int64_t j0, int64_t units,
                            float* sum) const {
    const int64_t I = w.input_size, H = w.hidden_size, row = g * H + j0;
    const LeftOperand weights{w.w_ih + row * I, I, I, w.w_hh + row * H, H, H};
    small_gemm(units, ld_, weights, xht_.get(), ld_, 0.0f, sum, ld_);
  }
  // gate g's products as Cell reads them with GateSums::kInGh: summed into gh for the gates it
  // sums (TakesSummedInput; gx untouched, returns false), else x side into gx and h side into gh
  template <typename Cell>
  bool multiply_gate_for(const LayerWeights<float>& w, int64_t g, int64_t j0, int64_t units,
                         float* gx, float* gh) const {
    if (g < TakesSummedInput<Cell>::kSummedGates) {
      multiply_gate_summed(w, g, j0, units, gh);
      return false;
    }
    multiply_gate(w, g, j0, units, gx, gh);
    return true;
  }

 private:
  float* ht() const { return xht_.get() + input_size_ * ld_; }
  int64_t input_size_, ld_;
  std::unique_ptr<float[]> xht_;  // xᵀ [I, ld], then hᵀ [H, ld]
};

// Lean inference (nothing saved for backward) in the weights' orientation throughout: the cell
// runs on its block's products as they come out of small_gemm, [gate][unit][batch lane], the
// batch lanes as the vector dimension. The gates whose products the cell sums (all four of the
// LSTM's, the GRU's r and z) come from one product over the stacked [x | h]ᵀ, as in
// single_step_forward_weight_major; the biases come broadcast along the lanes, so that the
// arithmetic is that path's term for term (train=False and True give the same bits). Only the
// new h (and c) are turned back to rows: one or two transposes of the block instead of two per
// gate. Where it applies: lean_weight_major_applies below; README (session 14). Summed products
// and one cell pass over the block (session 23, with small_gemm.h tall_block_rows), 100-step
// cell loops at batch 32, I 64, H 128, alternating processes: LSTMCell inference 1.077x,
// GRUCell 1.058x, training 1.049x and 1.024x.
template <typename Cell>
void lean_forward_weight_major(int64_t B, const float* x, const LayerWeights<float>& w,
                               const ForwardBuffers<Cell, float>& out) {
  const int64_t H = w.hidden_size, I = w.input_size, G = Cell::kGates;
  for_blocks(H, B * G * H * (I + H), 16, [&](int64_t j0, int64_t j1) {
    const TransposedBatch batch(B, x, I, out.h, H);
    const int64_t ld = batch.ld(), units = j1 - j0, gate_ld = units * ld;  // a gate: units × ld
    const std::unique_ptr<float[]> gx(new float[G * gate_ld]), gh(new float[G * gate_ld]);
    const std::unique_ptr<float[]> b_ih(new float[G * gate_ld]), b_hh(new float[G * gate_ld]);
    for (int64_t g = 0; g < G; ++g) {
      const int64_t row = g * H + j0;
      batch.multiply_gate_for<Cell>(w, g, j0, units, gx.get() + g * gate_ld,
                                    gh.get() + g * gate_ld);
      for (int64_t u = 0; u < units; ++u) {
        std::fill_n(b_ih.get() + g * gate_ld + u * ld, ld, w.b_ih[row + u]);
        std::fill_n(b_hh.get() + g * gate_ld + u * ld, ld, w.b_hh[row + u]);
      }
    }
    const std::unique_ptr<float[]> ct(new float[Cell::kHasCellState ? gate_ld : 0]);
    const std::unique_ptr<float[]> yt(new float[gate_ld]);
    if constexpr (Cell::kHasCellState) {
      if (ld != B) std::fill_n(ct.get(), gate_ld, 0.0f);  // padding lanes: computed, never read
      transpose_block(out.c + j0, H, B, units, ct.get(), ld);
    }
    // One pass over the whole block, j = u·ld + b: every array above is [unit][lane] (a gate's
    // [units, ld] block, gate_ld apart), and so is h's transpose from unit j0 on. The pass runs
    // the padding lanes too (zeros in, discarded out) rather than one call of B lanes per unit:
    // 64 calls of 2 vectors each paid the loop's set-up every time.
    ForwardRow<float> r{gx.get(), gh.get(), b_ih.get(), b_hh.get(), batch.h_column(j0),
                        Cell::kHasCellState ? ct.get() : nullptr, yt.get()};
    if constexpr (HasRecurrentN<Cell>::value) r.n_pre = r.ws + Cell::n_col(gate_ld);
    cell_forward_units<Cell, float, false, GateSums::kInGh>(r, gate_ld, 0, gate_ld);
    transpose_block(yt.get(), ld, units, B, out.y + j0, H);
    if constexpr (Cell::kHasCellState) transpose_block(ct.get(), ld, units, B, out.c + j0, H);
  });
  std::memcpy(out.h, out.y, sizeof(float) * B * H);
}

// Where the lean path above beats the rows path in inference. 100-step GRUCell / LSTMCell
// inference loops at I = 64, H = 128 (alternating processes), lean against rows: batch 8 0.89x /
// 0.87x, 48 0.67x / 0.83x, 64 0.65x / 0.82x, 96 0.84x / 0.95x, 128 0.74x / 0.93x; but 1.1-2.4x
// at batch 1, 4 and 20, where padding the batch to 16 lanes wastes most of them, and level or
// worse at 256. At batch 16 and 32 it replaced the weight-major path's inference (0.94x).
inline bool lean_weight_major_applies(int64_t B) {
  return (B == 8 || (B % 16 == 0 && B <= 128)) && !reduced_precision_allowed();
}

template <typename Cell>
void single_step_forward_weight_major(int64_t B, const float* x, const LayerWeights<float>& w,
                                      const ForwardBuffers<Cell, float>& out) {
  const int64_t H = w.hidden_size, I = w.input_size, GH = Cell::kGates * H, W = out.ws_cols;
  const std::unique_ptr<float[]> gh(new float[B * GH]);
  const ForwardStep<float> fs{out.ws, gh.get(), w.b_ih, w.b_hh, out.h, out.c, out.y,
                              0,      W,        H,      H,      false, w.ln,  w.eps};
  for_blocks(H, B * GH * (I + H), 16, [&](int64_t j0, int64_t j1) {
    // each thread its own transposed batch and buffers for its block's products
    const TransposedBatch batch(B, x, I, out.h, H);
    const int64_t ld = batch.ld(), units = j1 - j0;
    const std::unique_ptr<float[]> gx_t(new float[units * ld]), gh_t(new float[units * ld]);
    for (int64_t g = 0; g < Cell::kGates; ++g) {
      const int64_t row = g * H + j0;
      // back to the row layout; summed gates have no x side of their own
      if (batch.multiply_gate_for<Cell>(w, g, j0, units, gx_t.get(), gh_t.get())) {
        transpose_block(gx_t.get(), ld, units, B, out.ws + row, W);
      }
      transpose_block(gh_t.get(), ld, units, B, gh.get() + row, GH);
    }
    for (int64_t b = 0; b < B; ++b) {
      cell_forward<Cell, float, GateSums::kInGh>(forward_row<Cell>(fs, b), H, j0, j1, out.save);
    }
  });
  std::memcpy(out.h, out.y, sizeof(float) * B * H);
}

template <typename Cell, typename T>
void single_step_forward(int64_t B, const T* x, const LayerWeights<T>& w,
                         const ForwardBuffers<Cell, T>& out) {
  if constexpr (std::is_same_v<T, float>) {
    if constexpr (Cell::kLeanInference) {
      if (!out.save && lean_weight_major_applies(B)) {
        return lean_forward_weight_major<Cell>(B, x, w, out);
      }
    }
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

// out[r, :] = Σ_b g[b, r]·v[b, :] for r < m (g: B rows, ld apart; v: [B, n]) and, given bias,
// bias[r] = Σ_b g[b, r]: one thread's rows of a weight's gradient. Float with n in whole
// 16-lane vectors: g's block transposed (m × B floats) and small_gemm against v as it lies, the
// bias as row sums of the transposed block; else the BLAS, on the calling thread in a region.
template <typename T>
void weight_grad_rows(int64_t B, int64_t m, int64_t n, const T* g, int64_t ld, const T* v, T* out,
                      T* bias) {
  if constexpr (std::is_same_v<T, float>) {
    if (n % 16 == 0 && !reduced_precision_allowed()) {
      const std::unique_ptr<float[]> gt(new float[m * B]);
      transpose_block(g, ld, B, m, gt.get(), B);
      small_gemm(m, n, B, gt.get(), B, v, n, 0.0f, out, n);
      if (bias) {
        for (int64_t r = 0; r < m; ++r) {
          const float* row = gt.get() + r * B;
          float sum = 0.0f;
          FUSEDRNN_SIMD_SUM(sum)
          for (int64_t b = 0; b < B; ++b) sum += row[b];
          bias[r] = sum;
        }
      }
      return;
    }
  }
  gemm<T>(true, false, m, n, B, T(1), g, ld, v, n, T(0), out, n);
  if (bias) column_sum(g, B, ld, 0, m, bias);
}

template <typename Cell, typename T>
void single_step_backward(int64_t B, const LayerWeights<T>& w, const BackwardInputs<T>& in,
                          const BackwardOutputs<T>& out) {
  const int64_t H = w.hidden_size, I = w.input_size, GH = Cell::kGates * H;
  const int64_t GC = Cell::grad_cols(H), W = in.ws_cols;
  // every entry is written by the cell's backward before it is read: no zero fill
  const std::unique_ptr<T[]> dg_rows(new T[B * GC]);
  T* const dg = dg_rows.get();
  const std::vector<GradBlock> blocks = input_grad_blocks<Cell>(H);
  // every row starts from h0/c0 (prev_rows 0)
  BackwardStep<T> bs{in.ws, in.y, in.h0, in.c0, in.dy, nullptr, out.dh, out.dc, dg,
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
      rows_times_weight(b1 - b0, I, blk.width, dg + b0 * GC + blk.grad_col, GC,
                        w.w_ih + blk.weight_row * I, first ? T(0) : T(1), out.dx + b0 * I);
      first = false;
    }
    // GRU's cell wrote its direct term dL/dh_{t-1}·z into dh; the product adds to it
    rows_times_weight(b1 - b0, H, GH, dg + b0 * GC, GC, w.w_hh,
                      Cell::kDirectHiddenGrad ? T(1) : T(0), out.dh + b0 * H);
  });
  // weight and bias gradients: the threads take blocks of gradient columns, which are blocks of
  // weight rows, in one region (it was a threaded BLAS call per weight and a pass per bias)
  for_blocks(GC, B * GC * (I + H), 16, [&](int64_t c0, int64_t c1) {
    if (std::min(c1, GH) > c0) {
      weight_grad_rows(B, std::min(c1, GH) - c0, H, dg + c0, GC, in.h0, out.dw_hh + c0 * H,
                       out.db_hh ? out.db_hh + c0 : nullptr);
    }
    for (const GradBlock& blk : blocks) {
      const int64_t lo = std::max(c0, blk.grad_col), hi = std::min(c1, blk.grad_col + blk.width);
      if (hi <= lo) continue;
      const int64_t row = blk.weight_row + lo - blk.grad_col;
      weight_grad_rows(B, hi - lo, I, dg + lo, GC, in.x, out.dw_ih + row * I,
                       out.db_ih ? out.db_ih + row : nullptr);
    }
  });
}

}  // namespace cpu
}  // namespace fusedrnn
