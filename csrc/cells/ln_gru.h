// Layer-normalised GRU in torch.nn's formulation (reset gate after the recurrent matmul), with
// each side's pre-activations normalised over 3H:
//   a = LN_ih(x_t·W_ihᵀ) + b_ih,  b = LN_hh(h_{t-1}·W_hhᵀ) + b_hh
//   r = σ(a_r + b_r), z = σ(a_z + b_z), n = tanh(a_n + r·b_n), h_t = (1 − z)·n + z·h_{t-1}
// LN params, packed in one vector: γ_ih, β_ih, γ_hh, β_hh (3H each).
#pragma once

#include <vector>

#include "layer_norm.h"
#include "rows.h"

namespace fusedrnn {

struct LnGruCell {
  static constexpr int kGates = 3;
  static constexpr bool kHasCellState = false;
  static constexpr bool kDirectHiddenGrad = true;  // h_t depends on h_{t-1} through z·h_{t-1}
  static constexpr bool kRowWise = true;
  static constexpr bool kLayerNorm = true;
  static constexpr bool kWorkspaceIsOutput = false;
  static constexpr bool kLeanInference = false;  // forward always writes its workspace row
  static constexpr bool kTwoHalfForward = false;  // one forward() per element
  // workspace row: x̂_ih (3H), x̂_hh (3H), r z n (3H), b_n (H), rstd_ih, rstd_hh
  static constexpr int64_t workspace_cols(int64_t H) { return 10 * H + 2; }
  // gradient row: d(h-side pre-LN) (3H), dL/da (3H), dL/db (3H); after the loop input_grad_row
  // turns dL/da into the x side's pre-LN gradient in place (see LnLstmCell)
  static constexpr int64_t grad_cols(int64_t H) { return 9 * H; }
  static constexpr int64_t ln_params(int64_t H) { return 12 * H; }

  template <typename T>
  FUSEDRNN_HOST_DEVICE static void normalize_input(T* ws, int64_t H, T eps) {
    ws[10 * H] = ln::normalize(ws, 3 * H, eps, ws);
  }

  template <typename T>
  FUSEDRNN_HOST_DEVICE static void forward_row(const ForwardRow<T>& r, int64_t H) {
    const int64_t G = 3 * H;
    const T* g_ih = r.ln;
    const T* b_ln_ih = r.ln + G;
    const T* g_hh = r.ln + 2 * G;
    const T* b_ln_hh = r.ln + 3 * G;
    const T* xh = r.ws;
    T* hh = r.ws + G;
    T* act = r.ws + 2 * G;
    r.ws[10 * H + 1] = ln::normalize(r.gh, G, r.eps, hh);
    FUSEDRNN_ROW_LOOP
    for (int64_t j = 0; j < H; ++j) {
      T a[3], b[3];
      for (int k = 0; k < 3; ++k) {
        const int64_t q = k * H + j;
        a[k] = g_ih[q] * xh[q] + b_ln_ih[q] + r.b_ih[q];
        b[k] = g_hh[q] * hh[q] + b_ln_hh[q] + r.b_hh[q];
      }
      const T rg = math::sigmoid(a[0] + b[0]);
      const T z = math::sigmoid(a[1] + b[1]);
      const T n = math::tanh(a[2] + rg * b[2]);
      act[j] = rg;
      act[H + j] = z;
      act[2 * H + j] = n;
      act[3 * H + j] = b[2];
      r.h_out[j] = n + z * (r.h_prev[j] - n);
    }
  }

  template <typename T>
  FUSEDRNN_HOST_DEVICE static void backward_row(const BackwardRow<T>& r, int64_t H) {
    const int64_t G = 3 * H;
    const T* g_hh = r.ln + 2 * G;
    const T* hh = r.ws + G;
    const T* act = r.ws + 2 * G;
    const T rstd_hh = r.ws[10 * H + 1];
    T* d_hpre = r.dg;
    T* da = r.dg + G;
    T* db = r.dg + 2 * G;
    FUSEDRNN_ROW_LOOP
    for (int64_t j = 0; j < H; ++j) {
      const T rg = act[j], z = act[H + j], n = act[2 * H + j], b_n = act[3 * H + j];
      const T dh = r.dy[j] + r.dh[j];
      const T dn_pre = dh * (T(1) - z) * (T(1) - n * n);
      const T dr = dn_pre * b_n * rg * (T(1) - rg);
      const T dz = dh * (r.h_prev[j] - n) * z * (T(1) - z);
      da[j] = dr;
      da[H + j] = dz;
      da[2 * H + j] = dn_pre;
      db[j] = dr;
      db[H + j] = dz;
      db[2 * H + j] = dn_pre * rg;
      r.dh[j] = dh * z;
    }
    ln::normalize_backward(db, g_hh, hh, rstd_hh, G, d_hpre);
  }

  template <typename T>
  FUSEDRNN_HOST_DEVICE static void input_grad_row(T* dg, const T* ws, const T* ln, int64_t H) {
    const int64_t G = 3 * H;
    ln::normalize_backward(dg + G, ln, ws, ws[10 * H], G, dg + G);  // in place: γ_ih is ln[0, G)
  }

  static std::vector<ColumnReduction> reductions(int64_t H) {
    const int64_t G = 3 * H;
    using R = ColumnReduction;
    return {{R::kBiasIh, 0, G, -1, G},     {R::kBiasHh, 0, 2 * G, -1, G},
            {R::kLayerNorm, 0, G, 0, G},   {R::kLayerNorm, G, G, -1, G},
            {R::kLayerNorm, 2 * G, 2 * G, G, G}, {R::kLayerNorm, 3 * G, 2 * G, -1, G}};
  }
};

}  // namespace fusedrnn
