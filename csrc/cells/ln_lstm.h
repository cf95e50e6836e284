// Layer-normalised LSTM (Ba, Kiros & Hinton 2016), gate order i, f, g, o as torch.nn:
//   gates = LN_ih(x_t·W_ihᵀ) + LN_hh(h_{t-1}·W_hhᵀ) + b_ih + b_hh      (each LN over 4H)
//   c_t = σ(f)·c_{t-1} + σ(i)·tanh(g),  h_t = σ(o)·tanh(LN_c(c_t))     (LN_c over H)
// LN params, packed in one vector: γ_ih, β_ih, γ_hh, β_hh (4H each), γ_c, β_c (H each).
//
// A LayerNorm cell normalises over a whole row, so it works row by row (kRowWise): the driver
// hands it one (row, step) and the cell does the row's reductions and pointwise math in one go.
#pragma once

#include <vector>

#include "layer_norm.h"
#include "rows.h"

namespace fusedrnn {

struct LnLstmCell {
  static constexpr int kGates = 4;
  static constexpr bool kHasCellState = true;
  static constexpr bool kDirectHiddenGrad = false;
  static constexpr bool kRowWise = true;
  static constexpr bool kLayerNorm = true;
  static constexpr bool kWorkspaceIsOutput = false;
  static constexpr bool kLeanInference = false;  // forward always writes its workspace row
  static constexpr bool kTwoHalfForward = false;  // one forward() per element
  // workspace row: x̂_ih (4H), x̂_hh (4H), activated i f g o (4H), c_t (H), ĉ = LN(c_t) before
  // its affine (H), then rstd_ih, rstd_hh, rstd_c
  static constexpr int64_t workspace_cols(int64_t H) { return 14 * H + 3; }
  static constexpr int64_t saved_cell_col(int64_t H) { return 12 * H; }
  // gradient row: d(h-side pre-LN) (4H), d(gates) (4H), dL/dLN_c(c) (H). After the time loop,
  // once the parameter reductions have read d(gates), input_grad_row turns it into the x side's
  // pre-LN gradient in place: row-local work, done for every row at once off the critical path.
  static constexpr int64_t grad_cols(int64_t H) { return 9 * H; }
  static constexpr int64_t ln_params(int64_t H) { return 18 * H; }

  // After the input GEMM: x̂_ih in place of x_t·W_ihᵀ, and its rstd
  template <typename T>
  FUSEDRNN_HOST_DEVICE static void normalize_input(T* ws, int64_t H, T eps) {
    ws[14 * H] = ln::normalize(ws, 4 * H, eps, ws);
  }

  template <typename T>
  FUSEDRNN_HOST_DEVICE static void forward_row(const ForwardRow<T>& r, int64_t H) {
    const int64_t G = 4 * H;
    const T* g_ih = r.ln;
    const T* b_ln_ih = r.ln + G;
    const T* g_hh = r.ln + 2 * G;
    const T* b_ln_hh = r.ln + 3 * G;
    const T* g_c = r.ln + 4 * G;
    const T* b_c = g_c + H;
    T* xh = r.ws;
    T* hh = r.ws + G;
    T* act = r.ws + 2 * G;
    T* c_new = r.ws + 3 * G;
    T* c_hat = c_new + H;
    r.ws[14 * H + 1] = ln::normalize(r.gh, G, r.eps, hh);
    FUSEDRNN_ROW_LOOP
    for (int64_t j = 0; j < H; ++j) {
      T pre[4];
      for (int k = 0; k < 4; ++k) {
        const int64_t q = k * H + j;
        pre[k] = g_ih[q] * xh[q] + b_ln_ih[q] + g_hh[q] * hh[q] + b_ln_hh[q] + r.b_ih[q] + r.b_hh[q];
      }
      const T i = math::sigmoid(pre[0]);
      const T f = math::sigmoid(pre[1]);
      const T g = math::tanh(pre[2]);
      const T o = math::sigmoid(pre[3]);
      const T c = f * r.c[j] + i * g;
      act[j] = i;
      act[H + j] = f;
      act[2 * H + j] = g;
      act[3 * H + j] = o;
      c_new[j] = c;
      r.c[j] = c;
    }
    r.ws[14 * H + 2] = ln::normalize(c_new, H, r.eps, c_hat);
    FUSEDRNN_ROW_LOOP
    for (int64_t j = 0; j < H; ++j) r.h_out[j] = act[3 * H + j] * math::tanh(g_c[j] * c_hat[j] + b_c[j]);
  }

  template <typename T>
  FUSEDRNN_HOST_DEVICE static void backward_row(const BackwardRow<T>& r, int64_t H) {
    const int64_t G = 4 * H;
    const T* g_hh = r.ln + 2 * G;
    const T* g_c = r.ln + 4 * G;
    const T* b_c = g_c + H;
    const T* hh = r.ws + G;
    const T* act = r.ws + 2 * G;
    const T* c_hat = r.ws + 3 * G + H;
    const T rstd_hh = r.ws[14 * H + 1], rstd_c = r.ws[14 * H + 2];
    T* d_hpre = r.dg;
    T* d_gates = r.dg + G;
    T* d_chat = r.dg + 2 * G;  // dL/d(ĉ·γ_c + β_c)
    FUSEDRNN_ROW_LOOP
    for (int64_t j = 0; j < H; ++j) {
      const T o = act[3 * H + j];
      const T th = math::tanh(g_c[j] * c_hat[j] + b_c[j]);
      const T dh = r.dy[j] + r.dh[j];
      d_chat[j] = dh * o * (T(1) - th * th);
      d_gates[3 * H + j] = dh * th * o * (T(1) - o);
    }
    // dL/dc_t through LN_c, written to the i column for now (overwritten just below)
    ln::normalize_backward(d_chat, g_c, c_hat, rstd_c, H, d_gates);
    FUSEDRNN_ROW_LOOP
    for (int64_t j = 0; j < H; ++j) {
      const T i = act[j], f = act[H + j], g = act[2 * H + j];
      const T dc = d_gates[j] + r.dc[j];
      d_gates[j] = dc * g * i * (T(1) - i);
      d_gates[H + j] = dc * r.c_prev[j] * f * (T(1) - f);
      d_gates[2 * H + j] = dc * i * (T(1) - g * g);
      r.dc[j] = dc * f;
    }
    ln::normalize_backward(d_gates, g_hh, hh, rstd_hh, G, d_hpre);
  }

  template <typename T>
  FUSEDRNN_HOST_DEVICE static void input_grad_row(T* dg, const T* ws, const T* ln, int64_t H) {
    const int64_t G = 4 * H;
    ln::normalize_backward(dg + G, ln, ws, ws[14 * H], G, dg + G);  // in place: γ_ih is ln[0, G)
  }

  // bias and LN-parameter gradients as column reductions over all rows after the time loop
  static std::vector<ColumnReduction> reductions(int64_t H) {
    const int64_t G = 4 * H;
    using R = ColumnReduction;
    return {{R::kBiasIh, 0, G, -1, G},         {R::kBiasHh, 0, G, -1, G},
            {R::kLayerNorm, 0, G, 0, G},       {R::kLayerNorm, G, G, -1, G},
            {R::kLayerNorm, 2 * G, G, G, G},   {R::kLayerNorm, 3 * G, G, -1, G},
            {R::kLayerNorm, 4 * G, 2 * G, 3 * G + H, H},
            {R::kLayerNorm, 4 * G + H, 2 * G, -1, H}};
  }
};

}  // namespace fusedrnn
