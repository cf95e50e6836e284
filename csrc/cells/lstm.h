// LSTM cell math, torch.nn gate order (i, f, g, o):
//   i,f,o = σ(·), g = tanh(·), c_t = f·c_{t-1} + i·g, h_t = o·tanh(c_t)
#pragma once

#include "rows.h"

namespace fusedrnn {

struct LstmCell {
  static constexpr int kGates = 4;
  static constexpr bool kHasCellState = true;
  static constexpr bool kDirectHiddenGrad = false;
  static constexpr bool kRowWise = false;  // math per element j of a row
  static constexpr bool kLayerNorm = false;
  static constexpr bool kWorkspaceIsOutput = false;
  // forward<T, false> keeps nothing for backward: in inference the workspace row is scratch
  static constexpr bool kLeanInference = true;
  static constexpr bool kTwoHalfForward = true;  // forward_gates, then forward_output
  // workspace row: activated i, f, g, o, then c_t
  static constexpr int64_t workspace_cols(int64_t H) { return 5 * H; }
  static constexpr int64_t saved_cell_col(int64_t H) { return 4 * H; }
  // gradient row: pre-activation gradients of i, f, g, o (shared by the x and h sides)
  static constexpr int64_t grad_cols(int64_t H) { return 4 * H; }

  // The forward in two halves: forward_gates (the gates and c_t; o left in the workspace row's o
  // column, whose input it has consumed) and forward_output (h_t). A CPU loop runs each half over
  // a whole row: the sigmoid -> c_t -> tanh(c_t) chain of one iteration is then two shorter ones,
  // and more iterations fit in the core's out-of-order window (a row of the fused loop took 12%
  // longer). kSave = false (inference): nothing else is kept for backward. kSums: where the gates'
  // sums are (GateSums); with kInGh the workspace row holds nothing yet.
  template <typename T, bool kSave = true, GateSums kSums = GateSums::kApart>
  FUSEDRNN_HOST_DEVICE static void forward_gates(const ForwardRow<T>& r, int64_t H, int64_t j) {
    T pre[4];
    for (int k = 0; k < 4; ++k) {
      const int64_t q = k * H + j;
      if constexpr (kSums != GateSums::kApart) {
        pre[k] = summed_preactivation<kSums>(r, q);
      } else {
        pre[k] = r.ws[q] + r.gh[q] + r.b_ih[q] + r.b_hh[q];
      }
    }
    const T i = math::sigmoid(pre[0]);
    const T f = math::sigmoid(pre[1]);
    const T g = math::tanh(pre[2]);
    const T c = f * r.c[j] + i * g;
    if constexpr (kSave) {
      r.ws[j] = i;
      r.ws[H + j] = f;
      r.ws[2 * H + j] = g;
      r.ws[4 * H + j] = c;
    }
    r.ws[3 * H + j] = math::sigmoid(pre[3]);
    r.c[j] = c;
  }

  template <typename T, bool kSave = true>  // kSave: forward_gates kept all backward reads
  FUSEDRNN_HOST_DEVICE static void forward_output(const ForwardRow<T>& r, int64_t H, int64_t j) {
    r.h_out[j] = r.ws[3 * H + j] * math::tanh(r.c[j]);
  }

  template <typename T, bool kSave = true>
  FUSEDRNN_HOST_DEVICE static void forward(const ForwardRow<T>& r, int64_t H, int64_t j) {
    forward_gates<T, kSave>(r, H, j);
    forward_output<T, kSave>(r, H, j);
  }

  template <typename T>
  FUSEDRNN_HOST_DEVICE static void backward(const BackwardRow<T>& r, int64_t H, int64_t j) {
    const T i = r.ws[j];
    const T f = r.ws[H + j];
    const T g = r.ws[2 * H + j];
    const T o = r.ws[3 * H + j];
    const T tc = math::tanh(r.ws[4 * H + j]);
    const T dh = r.dy[j] + r.dh[j];
    const T dc = r.dc[j] + dh * o * (T(1) - tc * tc);
    r.dg[j] = dc * g * i * (T(1) - i);
    r.dg[H + j] = dc * r.c_prev[j] * f * (T(1) - f);
    r.dg[2 * H + j] = dc * i * (T(1) - g * g);
    r.dg[3 * H + j] = dh * tc * o * (T(1) - o);
    r.dc[j] = dc * f;
  }
};

}  // namespace fusedrnn
