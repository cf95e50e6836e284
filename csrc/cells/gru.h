// GRU cell math in torch.nn's formulation (reset gate applied after the recurrent matmul, gate
// order r, z, n), so weights are interchangeable with nn.GRU:
//   r = σ(a_r + b_r), z = σ(a_z + b_z), n = tanh(a_n + r·b_n), h_t = (1 − z)·n + z·h_{t-1}
// where a = x_t·W_ihᵀ + b_ih and b = h_{t-1}·W_hhᵀ + b_hh.
#pragma once

#include "rows.h"

namespace fusedrnn {

struct GruCell {
  static constexpr int kGates = 3;
  static constexpr bool kHasCellState = false;
  static constexpr bool kDirectHiddenGrad = true;  // h_t depends on h_{t-1} through z·h_{t-1}
  static constexpr bool kRowWise = false;  // math per element j of a row
  static constexpr bool kLayerNorm = false;
  static constexpr bool kWorkspaceIsOutput = false;
  // forward<T, false> keeps nothing for backward: in inference the workspace row is scratch
  static constexpr bool kLeanInference = true;
  static constexpr bool kTwoHalfForward = true;  // forward_gates, then forward_output
  // workspace row: r, z, n, then b_n = h_{t-1}·W_hnᵀ + b_hn (needed by dr). A driver may keep
  // three columns instead of four, in one of two ways:
  // - r, z, n, and hand backward a recomputed b_n (ForwardRow/BackwardRow::n_hh): one more
  //   [rows, H]×[H, H] product in backward;
  // - r, z, b_n (n_hh pointing at the n column; the forward's n_pre elsewhere), and backward
  //   rebuilds n from the outputs (BackwardRow::h_out), since h_{t-1} − h_t = (1 − z)(h_{t-1} − n).
  //   dz needs only that difference; (1 − z)(1 − n²) with n = h_{t-1} − (h_{t-1} − h_t)/(1 − z)
  //   errs by about twice h_t's rounding in absolute terms (so in proportion to |h|), however
  //   close z is to 1; where z = 1 in floating point both are 0, as they are exactly.
  static constexpr int64_t workspace_cols(int64_t H) { return 4 * H; }
  static constexpr int64_t recurrent_n_col(int64_t H) { return 3 * H; }
  static constexpr int64_t n_col(int64_t H) { return 2 * H; }  // n, or b_n where n is rebuilt
  // gradient row: d(pre-activation) on the h side for r, z, n (the n column is scaled by r),
  // then the x side's n column. The x side's gradient is columns [0,2H) and [3H,4H).
  static constexpr int64_t grad_cols(int64_t H) { return 4 * H; }

  // The forward in two halves, as LstmCell's: forward_gates leaves z and n's pre-activation in
  // the row's z and n columns (whose inputs it has consumed); forward_output finishes n and h_t.
  // kSums: where r's and z's two products are summed (GateSums: in gh's r and z columns, or in
  // the workspace row's); the n columns stay apart, x side in the workspace row, h side in gh.
  template <typename T, bool kSave = true, GateSums kSums = GateSums::kApart>
  FUSEDRNN_HOST_DEVICE static void forward_gates(const ForwardRow<T>& r, int64_t H, int64_t j) {
    const T a_n = r.ws[2 * H + j] + r.b_ih[2 * H + j];
    const T b_n = r.gh[2 * H + j] + r.b_hh[2 * H + j];
    T pre_r, pre_z;
    if constexpr (kSums != GateSums::kApart) {
      pre_r = summed_preactivation<kSums>(r, j);
      pre_z = summed_preactivation<kSums>(r, H + j);
    } else {
      pre_r = (r.ws[j] + r.b_ih[j]) + (r.gh[j] + r.b_hh[j]);
      pre_z = (r.ws[H + j] + r.b_ih[H + j]) + (r.gh[H + j] + r.b_hh[H + j]);
    }
    const T rg = math::sigmoid(pre_r);
    if constexpr (kSave) {
      r.ws[j] = rg;
      if (r.n_hh) r.n_hh[j] = b_n;  // after a_n's read: n_hh may be the n column
    }
    r.ws[H + j] = math::sigmoid(pre_z);
    r.n_pre[j] = a_n + rg * b_n;
  }

  template <typename T, bool kSave = true>
  FUSEDRNN_HOST_DEVICE static void forward_output(const ForwardRow<T>& r, int64_t H, int64_t j) {
    const T z = r.ws[H + j];
    const T n = math::tanh(r.n_pre[j]);
    // saved in the n column, or where the row keeps b_n there, in h_t's place (overwritten next)
    if constexpr (kSave) r.n_pre[j] = n;
    r.h_out[j] = n + z * (r.h_prev[j] - n);
  }

  template <typename T, bool kSave = true>
  FUSEDRNN_HOST_DEVICE static void forward(const ForwardRow<T>& r, int64_t H, int64_t j) {
    forward_gates<T, kSave>(r, H, j);
    forward_output<T, kSave>(r, H, j);
  }

  template <typename T>
  FUSEDRNN_HOST_DEVICE static void backward(const BackwardRow<T>& r, int64_t H, int64_t j) {
    const T rg = r.ws[j];
    const T z = r.ws[H + j];
    const T b_n = r.n_hh[j];
    const T dh = r.dy[j] + r.dh[j];
    T n, dz_pre;
    if (r.h_out) {  // n rebuilt (see workspace_cols); with z = 1 in floating point n is moot
      const T step = r.h_prev[j] - r.h_out[j];  // (1 − z)(h_{t-1} − n)
      const T keep = T(1) - z;
      n = keep > T(0) ? r.h_prev[j] - step / keep : T(0);
      n = n > T(1) ? T(1) : (n < T(-1) ? T(-1) : n);  // tanh's range, against rounding
      // z(1 − z)(h_{t-1} − n); where z = 1 in floating point h_t's rounding is all that step
      // holds, and the gradient is 0 as z(1 − z) makes it
      dz_pre = keep > T(0) ? dh * step * z : T(0);
    } else {
      n = r.ws[2 * H + j];
      dz_pre = dh * (r.h_prev[j] - n) * z * (T(1) - z);
    }
    const T dn_pre = dh * (T(1) - z) * (T(1) - n * n);
    r.dg[j] = dn_pre * b_n * rg * (T(1) - rg);
    r.dg[H + j] = dz_pre;
    r.dg[2 * H + j] = dn_pre * rg;
    r.dg[3 * H + j] = dn_pre;
    r.dh[j] = dh * z;
  }
};

}  // namespace fusedrnn
