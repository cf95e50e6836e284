// The one CPU recurrence driver. Every cell (csrc/cells/*.h) plugs into it; the driver owns the
// time loop, direction, packed batch sizes, workspaces, threading and GEMMs:
//   forward:  one GEMM X·W_ihᵀ for all steps; per step one GEMM h·W_hhᵀ and one fused pass
//   backward: per step one fused pass and one GEMM dG·W_hh; then whole-sequence GEMMs for dX,
//             dW_ih, dW_hh (and dW_hr) and a deterministic column sum for the biases.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "../driver_common.h"
#include "gemm.h"
#include "reductions.h"
#include "vectorize.h"


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

// Pointwise passes are split over rows only when a chunk holds enough elements to pay for a
// thread wake-up (about a microsecond); below that one thread is faster.
inline int64_t row_grain(int64_t elements_per_row) {
  constexpr int64_t kMinElementsPerChunk = 8192;
  return std::max<int64_t>(1, kMinElementsPerChunk / std::max<int64_t>(1, elements_per_row));
}

// Runs step(b0, b1) over one step's rows. With enough rows each thread takes a block of rows and
// does that block's GEMMs and pointwise work itself: one fork/join per step instead of two, and a
// thread's gate rows stay in its own cache. (Rows are independent within a step; BLAS runs
// single-threaded inside a parallel region.) Otherwise one call sees every row, and the BLAS's
// threads and a parallel pointwise pass share the work.
template <typename F>
void split_rows(int64_t rows, const F& step) {
  constexpr int64_t kMinRowsPerThread = 8;
  const int64_t threads = at::get_num_threads();
  if (threads > 1 && rows >= kMinRowsPerThread * threads && !at::in_parallel_region()) {
    at::parallel_for(0, rows, (rows + threads - 1) / threads, step);
  } else {
    step(0, rows);
  }
}

template <typename Cell, typename T>
struct ForwardBuffers {
  T* y;        // [N, P] out
  T* h;        // [B, P] in h0, out h_n
  T* c;        // [B, H] in c0, out c_n (cells with a cell state)
  T* ws;       // [N, ws_cols] scratch; what backward needs when training
  int64_t ws_cols;
};

template <typename Cell, typename T>
void recurrence_forward(const Schedule& s, const T* x, const LayerWeights<T>& w, bool reverse,
                        const ForwardBuffers<Cell, T>& out) {
  const int64_t H = w.hidden_size, P = w.proj_size, I = w.input_size;
  const int64_t GH = Cell::kGates * H, W = out.ws_cols, B = s.batch;
  const bool proj = w.w_hr != nullptr;
  // input projection of every step at once, into the gate columns of the workspace
  gemm<T>(false, true, s.rows_total, GH, I, T(1), x, I, w.w_ih, I, T(0), out.ws, W);
  if constexpr (Cell::kLayerNorm) {  // input-side LN statistics once for all steps
    at::parallel_for(0, s.rows_total, row_grain(GH), [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) Cell::normalize_input(out.ws + row * W, H, w.eps);
    });
  }

  std::vector<T> gh(static_cast<size_t>(B * GH));
  const FixedRightOperand<T> recurrent(true, B, GH, P, w.w_hh, P, s.steps());
  std::unique_ptr<FixedRightOperand<T>> projection;
  if (proj) projection = std::make_unique<FixedRightOperand<T>>(true, B, P, H, w.w_hr, H, s.steps());

  for (int64_t step = 0; step < s.steps(); ++step) {
    const int64_t t = s.time_at(step, reverse), rows = s.batch_sizes[t], off = s.offsets[t];
    const ForwardStep<T> fs{out.ws, gh.data(), w.b_ih, w.b_hh, out.h, out.c, out.y,
                            off,    W,         H,      P,      proj,  w.ln,  w.eps};
    split_rows(rows, [&](int64_t b0, int64_t b1) {
      recurrent.multiply(b1 - b0, out.h + b0 * P, P, T(0), gh.data() + b0 * GH, GH);
      at::parallel_for(b0, b1, row_grain(GH), [&](int64_t begin, int64_t end) {
        for (int64_t b = begin; b < end; ++b) {
          const ForwardRow<T> r = forward_row<Cell>(fs, b);
          if constexpr (Cell::kRowWise) {
            Cell::forward_row(r, H);
          } else {
            FUSEDRNN_INDEPENDENT_ITERATIONS
            for (int64_t j = 0; j < H; ++j) Cell::forward(r, H, j);
          }
        }
      });
      T* y_rows = out.y + (off + b0) * P;
      if (proj) {
        projection->multiply(b1 - b0, out.ws + (off + b0) * W + raw_hidden_col<Cell>(H), W,
                             T(0), y_rows, P);
      }
      std::memcpy(out.h + b0 * P, y_rows, sizeof(T) * (b1 - b0) * P);
    });
  }
}

template <typename T>
struct BackwardInputs {
  const T* dy;  // [N, P]
  const T* x;   // [N, I]
  const T* h0;  // [B, P]
  const T* c0;  // [B, H]
  const T* y;   // [N, P]
  const T* ws;  // [N, ws_cols]
  int64_t ws_cols;
};

template <typename T>
struct BackwardOutputs {
  T* dx;     // [N, I]
  T* dh;     // [B, P]: in dL/dh_n, out dL/dh0
  T* dc;     // [B, H]: in dL/dc_n, out dL/dc0
  T* dw_ih;  // [G·H, I]
  T* dw_hh;  // [G·H, P]
  T* db_ih;  // [G·H] or nullptr
  T* db_hh;  // [G·H] or nullptr
  T* dw_hr;  // [P, H] or nullptr
  T* dln = nullptr;  // LayerNorm cells: [Cell::ln_params]
};

template <typename Cell, typename T>
void recurrence_backward(const Schedule& s, const LayerWeights<T>& w, bool reverse,
                         const BackwardInputs<T>& in, const BackwardOutputs<T>& out) {
  const int64_t H = w.hidden_size, P = w.proj_size, I = w.input_size, N = s.rows_total;
  const int64_t GH = Cell::kGates * H, GC = Cell::grad_cols(H), W = in.ws_cols, B = s.batch;
  const bool proj = w.w_hr != nullptr;

  std::vector<T> dg(static_cast<size_t>(N * GC));
  std::vector<T> zeros(static_cast<size_t>(std::max(H, P)), T(0));
  std::vector<T> dh_total, dh_raw;  // projection only: dL/dy_t + carried dL/dh_t, and through W_hr
  std::unique_ptr<FixedRightOperand<T>> projection;
  if (proj) {
    dh_total.resize(static_cast<size_t>(N * P));
    dh_raw.resize(static_cast<size_t>(B * H));
    projection = std::make_unique<FixedRightOperand<T>>(false, B, H, P, w.w_hr, H, s.steps());
  }
  const FixedRightOperand<T> recurrent(false, B, P, GH, w.w_hh, P, s.steps());

  for (int64_t step = s.steps() - 1; step >= 0; --step) {
    const int64_t t = s.time_at(step, reverse), rows = s.batch_sizes[t], off = s.offsets[t];
    const int64_t tp = s.previous(t, reverse);
    const BackwardStep<T> bs{in.ws,
                             in.y,
                             in.h0,
                             in.c0,
                             proj ? dh_raw.data() : in.dy,
                             zeros.data(),
                             out.dh,
                             out.dc,
                             dg.data(),
                             off,
                             tp >= 0 ? s.offsets[tp] : 0,
                             tp >= 0 ? s.batch_sizes[tp] : 0,
                             W,
                             GC,
                             H,
                             P,
                             proj,
                             w.ln};
    split_rows(rows, [&](int64_t b0, int64_t b1) {
      if (proj) {
        T* total = dh_total.data() + (off + b0) * P;
        const T* dy = in.dy + (off + b0) * P;
        const T* carried = out.dh + b0 * P;
        for (int64_t k = 0; k < (b1 - b0) * P; ++k) total[k] = dy[k] + carried[k];
        projection->multiply(b1 - b0, total, P, T(0), dh_raw.data() + b0 * H, H);
      }
      at::parallel_for(b0, b1, row_grain(GH), [&](int64_t begin, int64_t end) {
        for (int64_t b = begin; b < end; ++b) {
          const BackwardRow<T> r = backward_row<Cell>(bs, b);
          if constexpr (Cell::kRowWise) {
            Cell::backward_row(r, H);
          } else {
            FUSEDRNN_INDEPENDENT_ITERATIONS
            for (int64_t j = 0; j < H; ++j) Cell::backward(r, H, j);
          }
        }
      });
      recurrent.multiply(b1 - b0, dg.data() + (off + b0) * GC, GC,
                         Cell::kDirectHiddenGrad ? T(1) : T(0), out.dh + b0 * P, P);
    });
  }

  // whole-sequence gradients
  bool first = true;
  for (const GradBlock& blk : input_grad_blocks<Cell>(H)) {
    gemm<T>(false, false, N, I, blk.width, T(1), dg.data() + blk.grad_col, GC,
            w.w_ih + blk.weight_row * I, I, first ? T(0) : T(1), out.dx, I);
    gemm<T>(true, false, blk.width, I, N, T(1), dg.data() + blk.grad_col, GC, in.x, I, T(0),
            out.dw_ih + blk.weight_row * I, I);
    if constexpr (!Cell::kLayerNorm) {
      if (out.db_ih) column_sum(dg.data(), N, GC, blk.grad_col, blk.width, out.db_ih + blk.weight_row);
    }
    first = false;
  }
  if constexpr (Cell::kLayerNorm) {
    for (const ColumnReduction& red : Cell::reductions(H)) {
      T* dst = red.target == ColumnReduction::kBiasIh   ? out.db_ih
               : red.target == ColumnReduction::kBiasHh ? out.db_hh
                                                        : out.dln;
      if (!dst) continue;
      const T* ws_cols = red.ws_col >= 0 ? in.ws + red.ws_col : nullptr;
      column_dot(dg.data(), N, GC, red.grad_col, ws_cols, W, red.width, dst + red.out_offset);
    }
  } else if (out.db_hh) {
    column_sum(dg.data(), N, GC, 0, GH, out.db_hh);
  }

  // dW_hh = Σ_t dG_tᵀ·h_{t-1}. Unpacked: h_{t-1} is y shifted by one step, plus h0 for the first
  // step, so two GEMMs on views. Packed: gather h_{t-1} rows into one matrix first.
  if (s.uniform) {
    const int64_t shifted = N - B;
    const T* dg_first = dg.data() + (reverse ? shifted * GC : 0);       // rows that read h0
    const T* dg_rest = dg.data() + (reverse ? 0 : B * GC);              // rows that read y
    const T* y_rest = in.y + (reverse ? B * P : 0);
    gemm<T>(true, false, GH, P, shifted, T(1), dg_rest, GC, y_rest, P, T(0), out.dw_hh, P);
    gemm<T>(true, false, GH, P, B, T(1), dg_first, GC, in.h0, P, shifted > 0 ? T(1) : T(0),
            out.dw_hh, P);
  } else {
    std::vector<T> h_prev(static_cast<size_t>(N * P));
    for (int64_t t = 0; t < s.steps(); ++t) {
      const int64_t tp = s.previous(t, reverse);
      const int64_t carried = tp >= 0 ? std::min(s.batch_sizes[tp], s.batch_sizes[t]) : 0;
      T* dst = h_prev.data() + s.offsets[t] * P;
      if (carried) std::memcpy(dst, in.y + s.offsets[tp] * P, sizeof(T) * carried * P);
      std::memcpy(dst + carried * P, in.h0 + carried * P,
                  sizeof(T) * (s.batch_sizes[t] - carried) * P);
    }
    gemm<T>(true, false, GH, P, N, T(1), dg.data(), GC, h_prev.data(), P, T(0), out.dw_hh, P);
  }
  if (proj) {
    gemm<T>(true, false, P, H, N, T(1), dh_total.data(), P, in.ws + raw_hidden_col<Cell>(H), W,
            T(0), out.dw_hr, H);
  }
}

}  // namespace cpu
}  // namespace fusedrnn
