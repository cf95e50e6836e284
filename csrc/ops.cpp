// Every fusedrnn op schema, in one place. Kernels are registered per device in csrc/cpu and
// csrc/cuda; fake kernels and autograd are registered from Python (fusedrnn/ops.py), except the
// autograd of the cell ops and of conv1d, which is C++ (csrc/cell_autograd.cpp,
// csrc/conv1d_autograd.cpp) for its per-call cost.
//
// Layer ops run one layer in one direction, time-major: x is [T, B, I], or packed [N, I] when
// batch_sizes (a PackedSequence's, int64 on the CPU) is given. They return the output, the final
// state(s) and a workspace that is empty unless `train`, in which case it holds what the
// matching *_backward op needs. Cell ops run a single step on [B, I] input.
//
// The optional regularisers of the layer ops (off when None; see csrc/driver_common.h,
// Regularizers): rec_mask [B, H] scales h_{t-1} before W_hh (variational recurrent dropout);
// zoneout_h / zoneout_c, shaped like y (with H columns for c), hold each element's weight m of
// the previous state: h_t = h̃_t + m·(h_{t-1} − h̃_t). The backward op takes the same masks.
// gru_layer_backward also takes the forward's b_hh: with zoneout on h the CPU workspace leaves
// out the recurrent n pre-activation h_{t-1}·W_hnᵀ + b_hn, which its backward recomputes.
#include <torch/library.h>

#include "cpu/buffer_pool.h"

TORCH_LIBRARY(fusedrnn, m) {
  m.def(
      "lstm_layer(Tensor x, Tensor h0, Tensor c0, Tensor w_ih, Tensor w_hh, Tensor? b_ih, "
      "Tensor? b_hh, Tensor? w_hr, Tensor? batch_sizes, bool reverse, bool train, Tensor? rec_mask=None, Tensor? zoneout_h=None, Tensor? zoneout_c=None) "
      "-> (Tensor y, Tensor h_n, Tensor c_n, Tensor workspace)");
  m.def(
      "lstm_layer_backward(Tensor grad_y, Tensor grad_h_n, Tensor grad_c_n, Tensor x, Tensor h0, "
      "Tensor c0, Tensor w_ih, Tensor w_hh, Tensor? w_hr, Tensor? batch_sizes, Tensor y, "
      "Tensor workspace, bool reverse, bool has_bias, Tensor? rec_mask=None, Tensor? zoneout_h=None, Tensor? zoneout_c=None, *, bool x_grad=True) -> (Tensor grad_x, "
      "Tensor grad_h0, Tensor grad_c0, Tensor grad_w_ih, Tensor grad_w_hh, Tensor grad_b_ih, "
      "Tensor grad_b_hh, Tensor grad_w_hr)");
  m.def(
      "gru_layer(Tensor x, Tensor h0, Tensor w_ih, Tensor w_hh, Tensor? b_ih, Tensor? b_hh, "
      "Tensor? batch_sizes, bool reverse, bool train, Tensor? rec_mask=None, Tensor? zoneout_h=None) "
      "-> (Tensor y, Tensor h_n, Tensor workspace)");
  m.def(
      "gru_layer_backward(Tensor grad_y, Tensor grad_h_n, Tensor x, Tensor h0, Tensor w_ih, "
      "Tensor w_hh, Tensor? batch_sizes, Tensor y, Tensor workspace, bool reverse, bool has_bias, Tensor? rec_mask=None, Tensor? zoneout_h=None, *, bool x_grad=True, Tensor? b_hh=None) "
      "-> (Tensor grad_x, Tensor grad_h0, Tensor grad_w_ih, Tensor grad_w_hh, Tensor grad_b_ih, "
      "Tensor grad_b_hh)");
  m.def(
      "rnn_layer(Tensor x, Tensor h0, Tensor w_ih, Tensor w_hh, Tensor? b_ih, Tensor? b_hh, "
      "Tensor? batch_sizes, bool reverse, bool relu, bool train, Tensor? rec_mask=None, Tensor? zoneout_h=None) "
      "-> (Tensor y, Tensor h_n, Tensor workspace)");
  m.def(
      "rnn_layer_backward(Tensor grad_y, Tensor grad_h_n, Tensor x, Tensor h0, Tensor w_ih, "
      "Tensor w_hh, Tensor? batch_sizes, Tensor y, Tensor workspace, bool reverse, bool relu, "
      "bool has_bias, Tensor? rec_mask=None, Tensor? zoneout_h=None, *, bool x_grad=True) -> (Tensor grad_x, Tensor grad_h0, Tensor grad_w_ih, Tensor grad_w_hh, "
      "Tensor grad_b_ih, Tensor grad_b_hh)");

  // LayerNorm layers (csrc/cells/ln_lstm.h, ln_gru.h): `ln` packs the LayerNorm gains and biases,
  // LSTM: γ_ih, β_ih, γ_hh, β_hh (4H each), γ_c, β_c (H each); GRU: γ_ih, β_ih, γ_hh, β_hh (3H).
  m.def(
      "ln_lstm_layer(Tensor x, Tensor h0, Tensor c0, Tensor w_ih, Tensor w_hh, Tensor? b_ih, "
      "Tensor? b_hh, Tensor ln, Tensor? batch_sizes, bool reverse, float eps, bool train, Tensor? rec_mask=None, Tensor? zoneout_h=None, Tensor? zoneout_c=None) "
      "-> (Tensor y, Tensor h_n, Tensor c_n, Tensor workspace)");
  m.def(
      "ln_lstm_layer_backward(Tensor grad_y, Tensor grad_h_n, Tensor grad_c_n, Tensor x, "
      "Tensor h0, Tensor c0, Tensor w_ih, Tensor w_hh, Tensor ln, Tensor? batch_sizes, Tensor y, "
      "Tensor workspace, bool reverse, bool has_bias, Tensor? rec_mask=None, Tensor? zoneout_h=None, Tensor? zoneout_c=None, *, bool x_grad=True) -> (Tensor grad_x, "
      "Tensor grad_h0, Tensor grad_c0, Tensor grad_w_ih, Tensor grad_w_hh, Tensor grad_b_ih, "
      "Tensor grad_b_hh, Tensor grad_ln)");
  m.def(
      "ln_gru_layer(Tensor x, Tensor h0, Tensor w_ih, Tensor w_hh, Tensor? b_ih, Tensor? b_hh, "
      "Tensor ln, Tensor? batch_sizes, bool reverse, float eps, bool train, Tensor? rec_mask=None, Tensor? zoneout_h=None) "
      "-> (Tensor y, Tensor h_n, Tensor workspace)");
  m.def(
      "ln_gru_layer_backward(Tensor grad_y, Tensor grad_h_n, Tensor x, Tensor h0, Tensor w_ih, "
      "Tensor w_hh, Tensor ln, Tensor? batch_sizes, Tensor y, Tensor workspace, bool reverse, "
      "bool has_bias, Tensor? rec_mask=None, Tensor? zoneout_h=None, *, bool x_grad=True) -> (Tensor grad_x, Tensor grad_h0, Tensor grad_w_ih, "
      "Tensor grad_w_hh, Tensor grad_b_ih, Tensor grad_b_hh, Tensor grad_ln)");

  m.def(
      "lstm_cell(Tensor x, Tensor hx, Tensor cx, Tensor w_ih, Tensor w_hh, Tensor? b_ih, "
      "Tensor? b_hh, bool train) -> (Tensor hy, Tensor cy, Tensor workspace)");
  m.def(
      "lstm_cell_backward(Tensor grad_hy, Tensor grad_cy, Tensor x, Tensor hx, Tensor cx, "
      "Tensor w_ih, Tensor w_hh, Tensor hy, Tensor workspace, bool has_bias) -> (Tensor grad_x, "
      "Tensor grad_hx, Tensor grad_cx, Tensor grad_w_ih, Tensor grad_w_hh, Tensor grad_b_ih, "
      "Tensor grad_b_hh)");
  m.def(
      "gru_cell(Tensor x, Tensor hx, Tensor w_ih, Tensor w_hh, Tensor? b_ih, Tensor? b_hh, "
      "bool train) -> (Tensor hy, Tensor workspace)");
  m.def(
      "gru_cell_backward(Tensor grad_hy, Tensor x, Tensor hx, Tensor w_ih, Tensor w_hh, Tensor hy, "
      "Tensor workspace, bool has_bias) -> (Tensor grad_x, Tensor grad_hx, Tensor grad_w_ih, "
      "Tensor grad_w_hh, Tensor grad_b_ih, Tensor grad_b_hh)");
  m.def(
      "rnn_cell(Tensor x, Tensor hx, Tensor w_ih, Tensor w_hh, Tensor? b_ih, Tensor? b_hh, "
      "bool relu, bool train) -> (Tensor hy, Tensor workspace)");
  m.def(
      "rnn_cell_backward(Tensor grad_hy, Tensor x, Tensor hx, Tensor w_ih, Tensor w_hh, Tensor hy, "
      "Tensor workspace, bool relu, bool has_bias) -> (Tensor grad_x, Tensor grad_hx, "
      "Tensor grad_w_ih, Tensor grad_w_hh, Tensor grad_b_ih, Tensor grad_b_hh)");

  // Conv1D on channels-last sequences, x [B, T, C] (batch_first) or [T, B, C], weight as
  // nn.Conv1d's [C_out, C_in, K]; activation: 0 identity, 1 relu, 2 tanh, 3 sigmoid, 4 gelu,
  // applied in the same pass. `preactivation` is kept only when train and the activation's
  // derivative needs it (gelu); otherwise it is empty. The backward skips grad_x (returned empty)
  // without x_grad: a first layer over raw input needs only the weight gradients.
  m.def(
      "conv1d(Tensor x, Tensor weight, Tensor? bias, int stride, int dilation, int pad_left, "
      "int pad_right, int activation, bool batch_first, bool train) "
      "-> (Tensor y, Tensor preactivation)");
  m.def(
      "conv1d_backward(Tensor grad_y, Tensor x, Tensor weight, Tensor y, Tensor preactivation, "
      "int stride, int dilation, int pad_left, int pad_right, int activation, bool batch_first, "
      "bool has_bias, bool x_grad) -> (Tensor grad_x, Tensor grad_weight, Tensor grad_bias)");
  // Bytes that the CPU buffer pool holds idle now (csrc/cpu/buffer_pool.h); no tensor argument,
  // so one kernel for every device.
  m.def("cpu_buffer_pool_idle_bytes() -> int", [] {
    return static_cast<int64_t>(fusedrnn::cpu::pool_idle_bytes());
  });
}
