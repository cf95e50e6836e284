// The per-row views a recurrence driver hands to a cell for one (row, step). The driver owns all
// layout and indexing; a cell only reads and writes element j of these rows.
#pragma once

#include <cstdint>

#include "activations.h"

namespace fusedrnn {

// Where a cell's forward finds the gates whose two products it takes as one sum (an LSTM's four,
// a GRU's r and z, an Elman cell's one): kApart, x_t·W_ihᵀ in the workspace row and h_{t-1}·W_hhᵀ
// in gh; kInGh, both summed in gh (the CPU's stacked per-step product); kInWorkspace, both summed
// in the workspace row (the CPU's recurrent product added onto the input side's). The other
// gates (a GRU's n) keep the two sides apart in every mode.
enum class GateSums { kApart, kInGh, kInWorkspace };

template <typename T>
struct ForwardRow {
  T* ws;            // in: x_t·W_ihᵀ (gate columns); out: what backward needs (Cell::workspace_cols)
  const T* gh;      // h_{t-1}·W_hhᵀ, without bias
  const T* b_ih;    // gate bias rows; all zeros when the layer has no bias
  const T* b_hh;
  const T* h_prev;  // h_{t-1} (cells whose math reads it)
  T* c;             // cell state: read as c_{t-1}, overwritten with c_t (cells with a cell state)
  T* h_out;         // out: the new hidden state (before any projection)
  const T* ln = nullptr;  // LayerNorm cells: their packed LN gains and biases
  T eps = T(0);           // LayerNorm cells: the variance epsilon
  T* n_hh = nullptr;      // GRU: where b_n is saved for backward; null: not saved (recomputed)
  T* n_pre = nullptr;     // GRU: where n's pre-activation waits between the two halves of the
                          // forward: the workspace's n column, or h_t's place where the row
                          // keeps b_n in that column
};

// The pre-activation of a gate that the cell sums, at column q, where kSums (kInGh or
// kInWorkspace) put its one product: that sum, then b_ih, then b_hh.
template <GateSums kSums, typename T>
FUSEDRNN_HOST_DEVICE T summed_preactivation(const ForwardRow<T>& r, int64_t q) {
  static_assert(kSums != GateSums::kApart, "the two products are apart: no sum to read");
  const T sum = kSums == GateSums::kInGh ? r.gh[q] : r.ws[q];
  return sum + r.b_ih[q] + r.b_hh[q];
}

template <typename T>
struct BackwardRow {
  const T* ws;      // the workspace row forward saved for this step
  const T* h_prev;  // h_{t-1}
  const T* c_prev;  // c_{t-1}
  const T* dy;      // dL/dh_t arriving from this step's output
  T* dh;            // in: dL/dh_t arriving from step t+1; out (cells with kDirectHiddenGrad): the
                    // part of dL/dh_{t-1} that bypasses W_hh
  T* dc;            // in: dL/dc_t from step t+1; out: dL/dc_{t-1}
  T* dg;            // out: gradient columns (Cell::grad_cols), see the cell for their layout
  const T* ln = nullptr;    // LayerNorm cells: their packed LN gains and biases
  const T* n_hh = nullptr;  // GRU: b_n of this row and step, saved or recomputed
  const T* h_out = nullptr;  // GRU: h_t, where the row keeps b_n in place of n and backward
                             // rebuilds n from h_t, h_{t-1} and z
};

// A gradient a row-wise cell leaves to the driver as a column reduction over all rows:
//   out[offset + c] = Σ_rows grad[row, grad_col + c] · (ws[row, ws_col + c], or 1 when ws_col < 0)
struct ColumnReduction {
  enum Target { kBiasIh, kBiasHh, kLayerNorm };
  Target target;
  int64_t out_offset, grad_col, ws_col, width;
};

}  // namespace fusedrnn
