// What the CPU and CUDA recurrence drivers share: the step schedule, how a (step, row) maps onto
// the row views a cell works on, and which gradient columns form the input-side gradient. Row
// construction is host/device code, so both drivers index memory identically.
#pragma once

#include <cstdint>
#include <type_traits>
#include <vector>

#include "cells/rows.h"

namespace fusedrnn {

// Cells whose workspace row ends in a recurrent pre-activation that a driver may leave out and
// recompute in backward (GruCell::recurrent_n_col).
template <typename Cell, typename = void>
struct HasRecurrentN : std::false_type {};
template <typename Cell>
struct HasRecurrentN<Cell, std::void_t<decltype(Cell::recurrent_n_col(int64_t(0)))>>
    : std::true_type {};

// Rows of step t are the first batch_sizes[t] rows of the batch (PackedSequence order), starting
// at row offsets[t] of the packed [N, ·] matrices; an unpacked batch is the case of equal sizes.
struct Schedule {
  std::vector<int64_t> batch_sizes;  // rows active at each step, non-increasing
  std::vector<int64_t> offsets;      // first packed row of each step
  int64_t rows_total = 0;            // N
  int64_t batch = 0;                 // B = batch_sizes[0]
  bool uniform = true;               // every step has all B rows

  explicit Schedule(std::vector<int64_t> sizes) : batch_sizes(std::move(sizes)) {
    offsets.resize(batch_sizes.size());
    for (size_t t = 0; t < batch_sizes.size(); ++t) {
      offsets[t] = rows_total;
      rows_total += batch_sizes[t];
      uniform = uniform && batch_sizes[t] == batch_sizes[0];
    }
    batch = batch_sizes.empty() ? 0 : batch_sizes[0];
  }
  int64_t steps() const { return static_cast<int64_t>(batch_sizes.size()); }
  // time index of the s-th step processed by the forward pass
  int64_t time_at(int64_t s, bool reverse) const { return reverse ? steps() - 1 - s : s; }
  // the step that ran just before t in the forward pass, or -1
  int64_t previous(int64_t t, bool reverse) const {
    const int64_t tp = reverse ? t + 1 : t - 1;
    return (tp >= 0 && tp < steps()) ? tp : -1;
  }
};

// Optional regularisers of one layer call (null when off); see fusedrnn/nn/regularizers.py.
//   rec_mask   [B, P]: variational dropout on h_{t-1} before W_hh, the same for every step
//                      (scaled by 1/(1 − p) already);
//   zoneout_h  [N, P]: h_t = h̃_t + m·(h_{t-1} − h̃_t), m ~ Bernoulli(p) per element in
//                      training, m = p in evaluation (the expectation);
//   zoneout_c  [N, H]: the same for an LSTM's cell state. The zoned c_t is saved in ws_cols
//                      extra columns at zoned_cell_col, since the cell's own c̃_t stays where
//                      its backward reads it.
template <typename T>
struct Regularizers {
  const T* rec_mask = nullptr;
  const T* zoneout_h = nullptr;
  const T* zoneout_c = nullptr;
  int64_t zoned_cell_col = -1;
  bool any() const { return rec_mask || zoneout_h || zoneout_c; }
};

// workspace column of o·tanh(c) when an LSTM projects its output
template <typename Cell>
constexpr int64_t raw_hidden_col(int64_t H) {
  return Cell::workspace_cols(H);
}

// Everything that locates one forward step's rows; b indexes the step's rows.
template <typename T>
struct ForwardStep {
  T* ws;            // [N, ws_cols]
  const T* gh;      // [rows, G·H]
  const T* b_ih;
  const T* b_hh;
  const T* h;       // [B, P] state before the step
  T* c;             // [B, H] cell state
  T* y;             // [N, P]
  int64_t offset, ws_cols, hidden, proj_size;
  bool projected;
  const T* ln = nullptr;  // LayerNorm cells only
  T eps = T(0);
  bool rebuilds_n = false;  // GRU: the row keeps r, z, b_n (see GruCell::workspace_cols)
};

template <typename Cell, typename T>
FUSEDRNN_HOST_DEVICE ForwardRow<T> forward_row(const ForwardStep<T>& s, int64_t b) {
  const int64_t H = s.hidden;
  ForwardRow<T> r;
  r.ws = s.ws + (s.offset + b) * s.ws_cols;
  r.gh = s.gh + b * Cell::kGates * H;
  r.b_ih = s.b_ih;
  r.b_hh = s.b_hh;
  r.h_prev = s.h + b * s.proj_size;
  r.c = Cell::kHasCellState ? s.c + b * H : nullptr;
  r.h_out = s.projected ? r.ws + raw_hidden_col<Cell>(H) : s.y + (s.offset + b) * s.proj_size;
  r.ln = s.ln;
  r.eps = s.eps;
  if constexpr (HasRecurrentN<Cell>::value) {
    if (s.rebuilds_n) {  // b_n in the n column; n's pre-activation waits in h_t's place
      r.n_hh = r.ws + Cell::n_col(H);
      r.n_pre = r.h_out;
    } else {  // a row that ends before b_n does not save it
      r.n_hh = s.ws_cols > Cell::recurrent_n_col(H) ? r.ws + Cell::recurrent_n_col(H) : nullptr;
      r.n_pre = r.ws + Cell::n_col(H);
    }
  }
  return r;
}

// Everything that locates one backward step's rows.
template <typename T>
struct BackwardStep {
  const T* ws;       // [N, ws_cols]
  const T* y;        // [N, P]
  const T* h0;       // [B, P]
  const T* c0;       // [B, H]
  const T* dy;       // [N, P], or [rows, H] gradient through the projection when projected
  const T* zeros;    // at least H zeros
  T* dh;             // [B, P]
  T* dc;             // [B, H]
  T* dg;             // [rows held, grad_cols]: packed rows from dg_row0 on
  int64_t offset, prev_offset, prev_rows, ws_cols, grad_cols, hidden, proj_size;
  bool projected;
  const T* ln = nullptr;        // LayerNorm cells only
  int64_t zoned_cell_col = -1;  // with zoneout on c: where c_{t-1} was saved
  int64_t dg_row0 = 0;          // the packed row that dg's first row belongs to
  int64_t dy_ld = -1;           // dy's row stride when not projected; -1: P (contiguous)
  const T* n_hh = nullptr;      // GRU: recomputed b_n, [rows held, H] (null: in the workspace)
  int64_t n_hh_row0 = 0;        // the packed row that n_hh's first row belongs to
  bool rebuilds_n = false;      // GRU: the row keeps r, z, b_n and backward rebuilds n from y
};

template <typename Cell, typename T>
FUSEDRNN_HOST_DEVICE BackwardRow<T> backward_row(const BackwardStep<T>& s, int64_t b) {
  const int64_t H = s.hidden, P = s.proj_size;
  const bool carried = b < s.prev_rows;  // else this row started its sequence from h0/c0
  BackwardRow<T> r;
  r.ws = s.ws + (s.offset + b) * s.ws_cols;
  r.h_prev = carried ? s.y + (s.prev_offset + b) * P : s.h0 + b * P;
  r.c_prev = nullptr;
  if constexpr (Cell::kHasCellState) {
    const int64_t c_col = s.zoned_cell_col >= 0 ? s.zoned_cell_col : Cell::saved_cell_col(H);
    r.c_prev = carried ? s.ws + (s.prev_offset + b) * s.ws_cols + c_col : s.c0 + b * H;
  }
  r.dy = s.projected ? s.dy + b * H : s.dy + (s.offset + b) * (s.dy_ld >= 0 ? s.dy_ld : P);
  r.dh = s.projected ? const_cast<T*>(s.zeros) : s.dh + b * P;  // read-only when projected
  r.dc = Cell::kHasCellState ? s.dc + b * H : nullptr;
  r.dg = s.dg + (s.offset - s.dg_row0 + b) * s.grad_cols;
  r.ln = s.ln;
  if constexpr (HasRecurrentN<Cell>::value) {
    if (s.rebuilds_n) {
      r.n_hh = r.ws + Cell::n_col(H);
      r.h_out = s.y + (s.offset + b) * P;
    } else {
      r.n_hh = s.n_hh ? s.n_hh + (s.offset - s.n_hh_row0 + b) * H : r.ws + Cell::recurrent_n_col(H);
    }
  }
  return r;
}

// Column ranges of a cell's gradient row that form the x-side gradient, matched to W_ih rows.
struct GradBlock {
  int64_t grad_col, weight_row, width;
};

template <typename Cell>
std::vector<GradBlock> input_grad_blocks(int64_t H) {
  if constexpr (Cell::kLayerNorm) {  // the x side's pre-LN gradient has its own columns
    return {{Cell::kGates * H, 0, Cell::kGates * H}};
  } else if constexpr (Cell::kDirectHiddenGrad) {  // GRU: r, z shared; n from its own column
    return {{0, 0, 2 * H}, {3 * H, 2 * H, H}};
  } else {
    return {{0, 0, Cell::kGates * H}};
  }
}

}  // namespace fusedrnn
