// Elman RNN cell math: h_t = act(x_t·W_ihᵀ + b_ih + h_{t-1}·W_hhᵀ + b_hh), act = tanh or relu.
#pragma once

#include "rows.h"

namespace fusedrnn {

template <bool kRelu>
struct RnnCell {
  static constexpr int kGates = 1;
  static constexpr bool kHasCellState = false;
  static constexpr bool kDirectHiddenGrad = false;
  static constexpr bool kRowWise = false;  // math per element j of a row
  static constexpr bool kLayerNorm = false;
  // workspace row: the cell's own output h̃_t, which is y's row unless zoneout blends y, so y
  // itself serves as the workspace then (layer_ops.h workspace_is_y)
  static constexpr bool kWorkspaceIsOutput = true;
  static constexpr bool kLeanInference = false;  // its workspace row is y's: nothing to skip
  static constexpr bool kTwoHalfForward = false;  // one forward() per element
  static constexpr int64_t workspace_cols(int64_t H) { return H; }
  static constexpr int64_t grad_cols(int64_t H) { return H; }

  // kSums: where the sum x_t·W_ihᵀ + h_{t-1}·W_hhᵀ is (GateSums); with kInGh the workspace row
  // (y's) holds nothing yet. kSave: always (y is the workspace).
  template <typename T, bool kSave = true, GateSums kSums = GateSums::kApart>
  FUSEDRNN_HOST_DEVICE static void forward(const ForwardRow<T>& r, int64_t H, int64_t j) {
    T pre;
    if constexpr (kSums != GateSums::kApart) {
      pre = summed_preactivation<kSums>(r, j);
    } else {
      pre = r.ws[j] + r.gh[j] + r.b_ih[j] + r.b_hh[j];
    }
    const T h = kRelu ? math::relu(pre) : math::tanh(pre);
    r.ws[j] = h;
    r.h_out[j] = h;
  }

  template <typename T>
  FUSEDRNN_HOST_DEVICE static void backward(const BackwardRow<T>& r, int64_t H, int64_t j) {
    const T h = r.ws[j];
    const T dh = r.dy[j] + r.dh[j];
    r.dg[j] = kRelu ? (h > T(0) ? dh : T(0)) : dh * (T(1) - h * h);
  }
};

}  // namespace fusedrnn
