// The device-independent half of every layer and cell op: argument checks, allocation and the
// schema-shaped entry points. A device supplies a Driver (csrc/cpu/driver.h, csrc/cuda/...):
//
//   struct Driver {
//     static void check_device(const char* op, const Tensor& x);
//     static at::ScalarType workspace_dtype(at::ScalarType input);
//     static constexpr bool kLeanInference;  // see lean_inference below
//     static constexpr bool kStridedGradRows;  // see gradient_rows below
//     static bool narrow_gru_rows(const LayerShape&, const MaskArgs&);  // see workspace_cols
//     template <typename Cell> static void forward(const LayerShape&, const Tensor& x,
//         const LayerParams&, bool reverse, Tensor& y, Tensor& h, Tensor& c, Tensor& workspace,
//         bool save);  // save: false only in lean inference
//     template <typename Cell> static void backward(const LayerShape&, const LayerParams&,
//         bool reverse, const SavedLayer&, LayerGrads&);
//   };
//
// and registers the ops with register_layer_ops<Driver>(m). Cell ops are one-step layers.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

#include "cells/gru.h"
#include "cells/ln_gru.h"
#include "cells/ln_lstm.h"
#include "cells/lstm.h"
#include "cells/rnn.h"
#include "driver_common.h"
#include "layer_checks.h"

namespace fusedrnn {

using at::Tensor;
using OptTensor = std::optional<Tensor>;

// Contiguous weights of one layer; biases are zeros when absent in forward and undefined in
// backward; w_hr is undefined without projection.
struct LayerParams {
  Tensor w_ih, w_hh, b_ih, b_hh, w_hr;
  Tensor ln;          // LayerNorm cells: packed LN gains and biases, else undefined
  double eps = 0.0;   // LayerNorm cells: the variance epsilon
  // optional regularisers (driver_common.h, Regularizers), undefined when off
  Tensor rec_mask, zoneout_h, zoneout_c;
};

// The optional regulariser tensors of a layer op, as its schema passes them.
struct MaskArgs {
  OptTensor rec_mask, zoneout_h, zoneout_c;
  bool any() const { return rec_mask.has_value() || zoneout_h.has_value() || zoneout_c.has_value(); }
};

// Checks the masks against the layer and stores contiguous copies in p.
template <typename Cell>
void attach_masks(const char* op, const MaskArgs& m, const LayerShape& s, const Tensor& x, bool proj,
                  LayerParams& p) {
  if (!m.any()) return;
  TORCH_CHECK(!proj, op, ": recurrent dropout and zoneout do not support proj_size");
  const auto checked = [&](const OptTensor& t, const char* name, std::vector<int64_t> shape,
                           const char* what) {
    if (!t.has_value()) return Tensor();
    check_same_kind(op, x, *t, name);
    check_shape(op, *t, name, shape, what);
    return t->contiguous();
  };
  const std::vector<int64_t> rows =
      s.packed ? std::vector<int64_t>{s.rows} : std::vector<int64_t>{s.steps, s.batch};
  auto with = [&](int64_t cols) {
    auto v = rows;
    v.push_back(cols);
    return v;
  };
  p.rec_mask = checked(m.rec_mask, "rec_mask", {s.batch, s.proj}, "batch, hidden_size");
  p.zoneout_h = checked(m.zoneout_h, "zoneout_h", with(s.proj), "like y");
  if (m.zoneout_c.has_value()) {
    TORCH_CHECK(Cell::kHasCellState, op, ": zoneout_c needs a cell with a cell state (LSTM)");
    p.zoneout_c = checked(m.zoneout_c, "zoneout_c", with(s.hidden), "like y, with hidden_size columns");
  }
}

// What backward reads, all contiguous; c0 is undefined for cells without a cell state.
struct SavedLayer {
  Tensor x, h0, c0, y, workspace, grad_y;
};

struct LayerResult {
  Tensor y, h_n, c_n, workspace;
};

struct LayerGrads {
  Tensor x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr;
  Tensor ln;  // LayerNorm cells only
};

// A LayerNorm cell's packed LN parameters: 1-D, Cell::ln_params(H) long, like x.
template <typename Cell>
Tensor checked_ln(const char* op, const Tensor* ln, const Tensor& x, const LayerShape& s) {
  if constexpr (!Cell::kLayerNorm) {
    return Tensor();
  } else {
    TORCH_CHECK(ln != nullptr && ln->defined(), op, ": ln (the packed LayerNorm parameters) is required");
    check_shape(op, *ln, "ln", {Cell::ln_params(s.hidden)},
                "the LayerNorm gains and biases packed in one vector");
    TORCH_CHECK(ln->scalar_type() == x.scalar_type(), op, ": ln must have x's dtype ",
                x.scalar_type(), ", got ", ln->scalar_type());
    TORCH_CHECK(ln->device() == x.device(), op, ": ln must be on x's device ", x.device(), ", got ",
                ln->device());
    return ln->contiguous();
  }
}

// An Elman cell's workspace row is its output h̃_t, the same as y's row unless zoneout blends y
// or y is in reduced precision under an fp32 workspace: y itself then serves as the workspace
// and the saved workspace has no columns (a training step holds one [N, H] buffer less).
template <typename Cell, typename Driver>
bool workspace_is_y(const Tensor& x, const MaskArgs& masks) {
  return Cell::kWorkspaceIsOutput && !masks.zoneout_h.has_value() &&
         Driver::workspace_dtype(x.scalar_type()) == x.scalar_type();
}

// The upstream gradient as a driver that reads it by rows through a row stride takes it
// (Driver::kStridedGradRows): as it lies when its rows are unit-stride and evenly spaced (one
// direction's half of a bidirectional output's gradient, one expanded over steps and batch),
// as one row of P values when it is one value everywhere (the expanded ones of y.sum()), else a
// contiguous copy. Each of the first two saves a copy of [N, P]; gradient_row_stride tells the
// spacing.
inline Tensor gradient_rows(const Tensor& g) {
  if (g.numel() == 0) return g.contiguous();
  const int64_t d = g.dim();
  if (g.stride(d - 1) == 1 || g.size(d - 1) == 1) {
    if (d == 2) return g;  // packed: [rows, P]
    if (d == 3 && (g.size(0) == 1 || g.size(1) == 1 || g.stride(0) == g.size(1) * g.stride(1))) {
      return g;  // [T, B, P]: row t·B + b lies at (t·B + b)·stride(1)
    }
  }
  bool one_value = true;
  for (int64_t i = 0; i < d; ++i) one_value = one_value && (g.stride(i) == 0 || g.size(i) == 1);
  if (one_value) return g.as_strided({g.size(d - 1)}, {0}).contiguous();
  return g.contiguous();
}

// The distance between consecutive rows of gradient_rows(g), in elements (0: one row for all).
inline int64_t gradient_row_stride(const Tensor& g) {
  if (g.dim() == 1) return 0;
  if (g.dim() == 2 || g.size(1) == 1) return g.size(0) == 1 ? g.size(-1) : g.stride(0);
  return g.stride(1);
}

// Inference on a driver that supports it (Driver::kLeanInference): a plain LSTM or GRU layer's
// workspace is only the input projection's G·H columns, which the input GEMM then writes
// without a copy, and the cells write nothing back (an LSTM row saves 5H columns fewer, and the
// input projection's 4H columns are not copied). Projection and the regularisers read the full
// row, so they keep it.
template <typename Cell, typename Driver>
bool lean_inference(bool train, bool proj, const MaskArgs& masks) {
  return !train && Driver::kLeanInference && Cell::kLeanInference && !proj && !masks.any();
}

// With zoneout on c, the zoned c_t is saved in H more columns after the cell's own. A GRU row
// keeps three columns instead of four where the driver says so (Driver::narrow_gru_rows): its
// backward then rebuilds n or recomputes b_n (GruCell::workspace_cols).
template <typename Cell, typename Driver>
int64_t workspace_cols(const LayerShape& s, const Tensor& x, bool proj, const MaskArgs& masks,
                       bool lean = false) {
  if (lean) return Cell::kGates * s.hidden;
  if (workspace_is_y<Cell, Driver>(x, masks)) return 0;
  int64_t own = Cell::workspace_cols(s.hidden);
  if constexpr (HasRecurrentN<Cell>::value) {
    if (Driver::narrow_gru_rows(s, masks)) own = Cell::recurrent_n_col(s.hidden);
  }
  return own + (proj ? s.hidden : 0) + (masks.zoneout_c.has_value() ? s.hidden : 0);
}

inline Tensor bias_or_zeros(const OptTensor& b, const Tensor& like, int64_t n) {
  return b.has_value() ? b->contiguous() : at::zeros({n}, like.options());
}

template <typename Cell, typename Driver>
LayerResult layer_forward(const char* op, const Tensor& x_in, const Tensor& h0, const Tensor* c0,
                          const Tensor& w_ih_in, const Tensor& w_hh_in, const OptTensor& b_ih,
                          const OptTensor& b_hh, const Tensor* w_hr_in,
                          const OptTensor& batch_sizes, bool reverse, bool train,
                          const Tensor* ln_in = nullptr, double eps = 0.0,
                          const MaskArgs& masks = {}) {
  Driver::check_device(op, x_in);
  const LayerShape s =
      check_layer(op, Cell::kGates, x_in, h0, c0, w_ih_in, w_hh_in, b_ih, b_hh, w_hr_in, batch_sizes);
  const int64_t GH = Cell::kGates * s.hidden;
  const Tensor x = x_in.contiguous(), w_ih = w_ih_in.contiguous(), w_hh = w_hh_in.contiguous();
  const Tensor w_hr = w_hr_in ? w_hr_in->contiguous() : Tensor();
  const Tensor bi = bias_or_zeros(b_ih, x, GH), bh = bias_or_zeros(b_hh, x, GH);
  const bool lean = lean_inference<Cell, Driver>(train, w_hr_in != nullptr, masks);
  const int64_t wcols = workspace_cols<Cell, Driver>(s, x, w_hr_in != nullptr, masks, lean);
  const Tensor ln = checked_ln<Cell>(op, ln_in, x, s);
  if constexpr (Cell::kLayerNorm) TORCH_CHECK(eps > 0.0, op, ": eps must be positive, got ", eps);
  LayerParams params{w_ih, w_hh, bi, bh, w_hr, ln, eps};
  attach_masks<Cell>(op, masks, s, x, w_hr_in != nullptr, params);

  LayerResult r;
  r.y = s.packed ? Driver::empty_buffer({s.rows, s.proj}, x.options())
                 : Driver::empty_buffer({s.steps, s.batch, s.proj}, x.options());
  r.h_n = h0.contiguous().clone();
  r.c_n = c0 ? c0->contiguous().clone() : at::empty({0}, x.options());
  // reduced-precision inputs keep an fp32 workspace (the saved cell state among it)
  Tensor ws = Driver::empty_buffer({s.rows, wcols},
                                   x.options().dtype(Driver::workspace_dtype(x.scalar_type())));
  const bool ws_is_y = workspace_is_y<Cell, Driver>(x, masks);
  Tensor ws_used = ws_is_y ? r.y.view({s.rows, s.proj}) : ws;
  Driver::template forward<Cell>(s, x, params, reverse, r.y, r.h_n, r.c_n, ws_used, !lean);
  r.workspace = train ? ws : at::empty({0}, x.options());  // [rows, 0] when y is the workspace
  return r;
}

template <typename Cell, typename Driver>
LayerGrads layer_backward(const char* op, const Tensor& grad_y, const Tensor& grad_h_n,
                          const Tensor* grad_c_n, const Tensor& x_in, const Tensor& h0_in,
                          const Tensor* c0_in, const Tensor& w_ih_in, const Tensor& w_hh_in,
                          const Tensor* w_hr_in, const OptTensor& batch_sizes, const Tensor& y_in,
                          const Tensor& ws_in, bool reverse, bool has_bias,
                          const Tensor* ln_in = nullptr, const MaskArgs& masks = {},
                          bool x_grad = true, const OptTensor& b_hh = std::nullopt) {
  Driver::check_device(op, x_in);
  const LayerShape s = check_layer(op, Cell::kGates, x_in, h0_in, c0_in, w_ih_in, w_hh_in,
                                   std::nullopt, std::nullopt, w_hr_in, batch_sizes);
  const int64_t GH = Cell::kGates * s.hidden;
  const int64_t wcols = workspace_cols<Cell, Driver>(s, x_in, w_hr_in != nullptr, masks);
  check_shape(op, ws_in, "workspace", {s.rows, wcols},
              "saved by the forward op called with train=True");
  const auto ws_dtype = Driver::workspace_dtype(x_in.scalar_type());
  TORCH_CHECK(ws_in.scalar_type() == ws_dtype && ws_in.device() == x_in.device(), op,
              ": workspace must be ", ws_dtype, " on ", x_in.device(), " (saved by the forward op), got ",
              ws_in.scalar_type(), " on ", ws_in.device());
  // y, and the gradients arriving for the outputs, as the forward op returned them: the kernels
  // read and write them by the layer's sizes
  check_same_kind(op, x_in, y_in, "y");
  if (s.packed) {
    check_shape(op, y_in, "y", {s.rows, s.proj}, "the forward op's packed output");
  } else {
    check_shape(op, y_in, "y", {s.steps, s.batch, s.proj}, "the forward op's output");
  }
  check_same_kind(op, x_in, grad_y, "grad_y");
  check_shape(op, grad_y, "grad_y", y_in.sizes().vec(), "like y");
  check_same_kind(op, x_in, grad_h_n, "grad_h_n");
  check_shape(op, grad_h_n, "grad_h_n", h0_in.sizes().vec(), "like h0");
  if (grad_c_n) {
    TORCH_CHECK(c0_in, op, ": grad_c_n given for a cell without a cell state");
    check_same_kind(op, x_in, *grad_c_n, "grad_c_n");
    check_shape(op, *grad_c_n, "grad_c_n", c0_in->sizes().vec(), "like c0");
  }
  const Tensor x = x_in.contiguous(), h0 = h0_in.contiguous(), y = y_in.contiguous();
  const Tensor ws =
      workspace_is_y<Cell, Driver>(x_in, masks) ? y.view({s.rows, s.proj}) : ws_in.contiguous();
  const Tensor dy = Driver::kStridedGradRows ? gradient_rows(grad_y) : grad_y.contiguous();
  const Tensor w_ih = w_ih_in.contiguous(), w_hh = w_hh_in.contiguous();
  const Tensor w_hr = w_hr_in ? w_hr_in->contiguous() : Tensor();
  const Tensor c0 = c0_in ? c0_in->contiguous() : Tensor();
  const Tensor ln = checked_ln<Cell>(op, ln_in, x, s);

  LayerGrads g;
  // empty: not computed
  g.x = x_grad ? Driver::empty_buffer(x.sizes(), x.options()) : at::empty({0}, x.options());
  g.h0 = grad_h_n.contiguous().clone();
  g.c0 = grad_c_n ? grad_c_n->contiguous().clone() : at::empty({0}, x.options());
  g.w_ih = at::empty_like(w_ih);
  g.w_hh = at::empty_like(w_hh);
  g.b_ih = at::empty({has_bias ? GH : 0}, x.options());
  g.b_hh = at::empty({has_bias ? GH : 0}, x.options());
  g.w_hr = w_hr.defined() ? at::empty_like(w_hr) : at::empty({0}, x.options());
  g.ln = ln.defined() ? at::empty_like(ln) : at::empty({0}, x.options());
  // b_hh only where backward recomputes a GRU's b_n, which includes it
  Tensor bh;
  if (b_hh.has_value()) {
    check_shape(op, *b_hh, "b_hh", {GH}, "the b_hh given to the forward op");
    check_same_kind(op, x, *b_hh, "b_hh");
    bh = b_hh->contiguous();
  }
  LayerParams params{w_ih, w_hh, Tensor(), bh, w_hr, ln};
  attach_masks<Cell>(op, masks, s, x, w_hr_in != nullptr, params);
  Driver::template backward<Cell>(s, params, reverse, SavedLayer{x, h0, c0, y, ws, dy}, g);
  return g;
}

// ---- schema-shaped entry points ------------------------------------------------------------

template <typename Driver>
std::tuple<Tensor, Tensor, Tensor, Tensor> lstm_layer(
    const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& w_ih, const Tensor& w_hh,
    const OptTensor& b_ih, const OptTensor& b_hh, const OptTensor& w_hr,
    const OptTensor& batch_sizes, bool reverse, bool train, const OptTensor& rec_mask,
    const OptTensor& zoneout_h, const OptTensor& zoneout_c) {
  auto r = layer_forward<LstmCell, Driver>("fusedrnn::lstm_layer", x, h0, &c0, w_ih, w_hh, b_ih, b_hh,
                                   w_hr ? &*w_hr : nullptr, batch_sizes, reverse, train, nullptr,
                                   0.0, {rec_mask, zoneout_h, zoneout_c});
  return {r.y, r.h_n, r.c_n, r.workspace};
}

template <typename Driver>
std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> lstm_layer_backward(
    const Tensor& grad_y, const Tensor& grad_h_n, const Tensor& grad_c_n, const Tensor& x,
    const Tensor& h0, const Tensor& c0, const Tensor& w_ih, const Tensor& w_hh,
    const OptTensor& w_hr, const OptTensor& batch_sizes, const Tensor& y, const Tensor& ws,
    bool reverse, bool has_bias, const OptTensor& rec_mask, const OptTensor& zoneout_h,
    const OptTensor& zoneout_c, bool x_grad) {
  auto g = layer_backward<LstmCell, Driver>("fusedrnn::lstm_layer_backward", grad_y, grad_h_n, &grad_c_n,
                                    x, h0, &c0, w_ih, w_hh, w_hr ? &*w_hr : nullptr, batch_sizes,
                                    y, ws, reverse, has_bias, nullptr,
                                    {rec_mask, zoneout_h, zoneout_c}, x_grad);
  return {g.x, g.h0, g.c0, g.w_ih, g.w_hh, g.b_ih, g.b_hh, g.w_hr};
}

template <typename Driver>
std::tuple<Tensor, Tensor, Tensor> gru_layer(const Tensor& x, const Tensor& h0, const Tensor& w_ih,
                                             const Tensor& w_hh, const OptTensor& b_ih,
                                             const OptTensor& b_hh, const OptTensor& batch_sizes,
                                             bool reverse, bool train, const OptTensor& rec_mask,
                                             const OptTensor& zoneout_h) {
  auto r = layer_forward<GruCell, Driver>("fusedrnn::gru_layer", x, h0, nullptr, w_ih, w_hh, b_ih, b_hh,
                                  nullptr, batch_sizes, reverse, train, nullptr, 0.0,
                                  {rec_mask, zoneout_h, std::nullopt});
  return {r.y, r.h_n, r.workspace};
}

using GradTuple6 = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>;

template <typename Driver>
GradTuple6 gru_layer_backward(const Tensor& grad_y, const Tensor& grad_h_n, const Tensor& x,
                              const Tensor& h0, const Tensor& w_ih, const Tensor& w_hh,
                              const OptTensor& batch_sizes, const Tensor& y, const Tensor& ws,
                              bool reverse, bool has_bias, const OptTensor& rec_mask,
                              const OptTensor& zoneout_h, bool x_grad, const OptTensor& b_hh) {
  auto g = layer_backward<GruCell, Driver>("fusedrnn::gru_layer_backward", grad_y, grad_h_n, nullptr, x,
                                   h0, nullptr, w_ih, w_hh, nullptr, batch_sizes, y, ws, reverse,
                                   has_bias, nullptr, {rec_mask, zoneout_h, std::nullopt}, x_grad,
                                   b_hh);
  return {g.x, g.h0, g.w_ih, g.w_hh, g.b_ih, g.b_hh};
}

template <typename Driver>
std::tuple<Tensor, Tensor, Tensor> rnn_layer(const Tensor& x, const Tensor& h0, const Tensor& w_ih,
                                             const Tensor& w_hh, const OptTensor& b_ih,
                                             const OptTensor& b_hh, const OptTensor& batch_sizes,
                                             bool reverse, bool relu, bool train,
                                             const OptTensor& rec_mask, const OptTensor& zoneout_h) {
  auto run = relu ? layer_forward<RnnCell<true>, Driver> : layer_forward<RnnCell<false>, Driver>;
  auto r = run("fusedrnn::rnn_layer", x, h0, nullptr, w_ih, w_hh, b_ih, b_hh, nullptr,
               batch_sizes, reverse, train, nullptr, 0.0, {rec_mask, zoneout_h, std::nullopt});
  return {r.y, r.h_n, r.workspace};
}

template <typename Driver>
GradTuple6 rnn_layer_backward(const Tensor& grad_y, const Tensor& grad_h_n, const Tensor& x,
                              const Tensor& h0, const Tensor& w_ih, const Tensor& w_hh,
                              const OptTensor& batch_sizes, const Tensor& y, const Tensor& ws,
                              bool reverse, bool relu, bool has_bias, const OptTensor& rec_mask,
                              const OptTensor& zoneout_h, bool x_grad) {
  auto run = relu ? layer_backward<RnnCell<true>, Driver> : layer_backward<RnnCell<false>, Driver>;
  auto g = run("fusedrnn::rnn_layer_backward", grad_y, grad_h_n, nullptr, x, h0, nullptr, w_ih,
               w_hh, nullptr, batch_sizes, y, ws, reverse, has_bias, nullptr,
               {rec_mask, zoneout_h, std::nullopt}, x_grad, std::nullopt);
  return {g.x, g.h0, g.w_ih, g.w_hh, g.b_ih, g.b_hh};
}

// ---- LayerNorm layers: the same driver with row-wise cells and packed LN parameters ----------

using GradTuple7 = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>;

template <typename Driver>
std::tuple<Tensor, Tensor, Tensor, Tensor> ln_lstm_layer(
    const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& w_ih, const Tensor& w_hh,
    const OptTensor& b_ih, const OptTensor& b_hh, const Tensor& ln, const OptTensor& batch_sizes,
    bool reverse, double eps, bool train, const OptTensor& rec_mask, const OptTensor& zoneout_h,
    const OptTensor& zoneout_c) {
  auto r = layer_forward<LnLstmCell, Driver>("fusedrnn::ln_lstm_layer", x, h0, &c0, w_ih, w_hh,
                                             b_ih, b_hh, nullptr, batch_sizes, reverse, train, &ln,
                                             eps, {rec_mask, zoneout_h, zoneout_c});
  return {r.y, r.h_n, r.c_n, r.workspace};
}

template <typename Driver>
std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> ln_lstm_layer_backward(
    const Tensor& grad_y, const Tensor& grad_h_n, const Tensor& grad_c_n, const Tensor& x,
    const Tensor& h0, const Tensor& c0, const Tensor& w_ih, const Tensor& w_hh, const Tensor& ln,
    const OptTensor& batch_sizes, const Tensor& y, const Tensor& ws, bool reverse, bool has_bias,
    const OptTensor& rec_mask, const OptTensor& zoneout_h, const OptTensor& zoneout_c,
    bool x_grad) {
  auto g = layer_backward<LnLstmCell, Driver>("fusedrnn::ln_lstm_layer_backward", grad_y, grad_h_n,
                                              &grad_c_n, x, h0, &c0, w_ih, w_hh, nullptr,
                                              batch_sizes, y, ws, reverse, has_bias, &ln,
                                              {rec_mask, zoneout_h, zoneout_c}, x_grad);
  return {g.x, g.h0, g.c0, g.w_ih, g.w_hh, g.b_ih, g.b_hh, g.ln};
}

template <typename Driver>
std::tuple<Tensor, Tensor, Tensor> ln_gru_layer(const Tensor& x, const Tensor& h0,
                                                const Tensor& w_ih, const Tensor& w_hh,
                                                const OptTensor& b_ih, const OptTensor& b_hh,
                                                const Tensor& ln, const OptTensor& batch_sizes,
                                                bool reverse, double eps, bool train,
                                                const OptTensor& rec_mask,
                                                const OptTensor& zoneout_h) {
  auto r = layer_forward<LnGruCell, Driver>("fusedrnn::ln_gru_layer", x, h0, nullptr, w_ih, w_hh,
                                            b_ih, b_hh, nullptr, batch_sizes, reverse, train, &ln,
                                            eps, {rec_mask, zoneout_h, std::nullopt});
  return {r.y, r.h_n, r.workspace};
}

template <typename Driver>
GradTuple7 ln_gru_layer_backward(const Tensor& grad_y, const Tensor& grad_h_n, const Tensor& x,
                                 const Tensor& h0, const Tensor& w_ih, const Tensor& w_hh,
                                 const Tensor& ln, const OptTensor& batch_sizes, const Tensor& y,
                                 const Tensor& ws, bool reverse, bool has_bias,
                                 const OptTensor& rec_mask, const OptTensor& zoneout_h,
                                 bool x_grad) {
  auto g = layer_backward<LnGruCell, Driver>("fusedrnn::ln_gru_layer_backward", grad_y, grad_h_n,
                                             nullptr, x, h0, nullptr, w_ih, w_hh, nullptr,
                                             batch_sizes, y, ws, reverse, has_bias, &ln,
                                             {rec_mask, zoneout_h, std::nullopt}, x_grad);
  return {g.x, g.h0, g.w_ih, g.w_hh, g.b_ih, g.b_hh, g.ln};
}

// ---- single-step cells: a one-step layer on [B, I] ------------------------------------------

inline void check_cell_input(const char* op, const Tensor& x) {
  TORCH_CHECK(x.dim() == 2, op, ": x must be [batch, input_size] (2-D), got ", shape_str(x));
}

// A cell's backward gets hy and its gradient under the cell's names, before the one-step layer
// checks them as y and grad_y.
inline void check_cell_outputs(const char* op, const Tensor& grad_hy, const Tensor& hy,
                               const Tensor& hx) {
  check_shape(op, hy, "hy", hx.sizes().vec(), "like hx");
  check_shape(op, grad_hy, "grad_hy", hx.sizes().vec(), "like hx");
}

template <typename Driver>
std::tuple<Tensor, Tensor, Tensor> lstm_cell(const Tensor& x, const Tensor& hx, const Tensor& cx,
                                             const Tensor& w_ih, const Tensor& w_hh,
                                             const OptTensor& b_ih, const OptTensor& b_hh,
                                             bool train) {
  check_cell_input("fusedrnn::lstm_cell", x);
  auto r = layer_forward<LstmCell, Driver>("fusedrnn::lstm_cell", x.unsqueeze(0), hx, &cx, w_ih, w_hh,
                                   b_ih, b_hh, nullptr, std::nullopt, false, train);
  return {r.y.squeeze(0), r.c_n, r.workspace};
}

template <typename Driver>
std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> lstm_cell_backward(
    const Tensor& grad_hy, const Tensor& grad_cy, const Tensor& x, const Tensor& hx,
    const Tensor& cx, const Tensor& w_ih, const Tensor& w_hh, const Tensor& hy, const Tensor& ws,
    bool has_bias) {
  const char* op = "fusedrnn::lstm_cell_backward";
  check_cell_input(op, x);
  check_cell_outputs(op, grad_hy, hy, hx);
  check_shape(op, grad_cy, "grad_cy", cx.sizes().vec(), "like cx");
  auto g = layer_backward<LstmCell, Driver>("fusedrnn::lstm_cell_backward", grad_hy.unsqueeze(0),
                                    at::zeros_like(hx), &grad_cy, x.unsqueeze(0), hx, &cx, w_ih,
                                    w_hh, nullptr, std::nullopt, hy.unsqueeze(0), ws, false,
                                    has_bias);
  return {g.x.squeeze(0), g.h0, g.c0, g.w_ih, g.w_hh, g.b_ih, g.b_hh};
}

template <typename Cell, typename Driver>
std::tuple<Tensor, Tensor> hidden_only_cell(const char* op, const Tensor& x, const Tensor& hx,
                                            const Tensor& w_ih, const Tensor& w_hh,
                                            const OptTensor& b_ih, const OptTensor& b_hh,
                                            bool train) {
  check_cell_input(op, x);
  auto r = layer_forward<Cell, Driver>(op, x.unsqueeze(0), hx, nullptr, w_ih, w_hh, b_ih, b_hh, nullptr,
                               std::nullopt, false, train);
  return {r.y.squeeze(0), r.workspace};
}

template <typename Cell, typename Driver>
GradTuple6 hidden_only_cell_backward(const char* op, const Tensor& grad_hy, const Tensor& x,
                                     const Tensor& hx, const Tensor& w_ih, const Tensor& w_hh,
                                     const Tensor& hy, const Tensor& ws, bool has_bias) {
  check_cell_input(op, x);
  check_cell_outputs(op, grad_hy, hy, hx);
  auto g = layer_backward<Cell, Driver>(op, grad_hy.unsqueeze(0), at::zeros_like(hx), nullptr,
                                x.unsqueeze(0), hx, nullptr, w_ih, w_hh, nullptr, std::nullopt,
                                hy.unsqueeze(0), ws, false, has_bias);
  return {g.x.squeeze(0), g.h0, g.w_ih, g.w_hh, g.b_ih, g.b_hh};
}

template <typename Driver>
std::tuple<Tensor, Tensor> gru_cell(const Tensor& x, const Tensor& hx, const Tensor& w_ih,
                                    const Tensor& w_hh, const OptTensor& b_ih,
                                    const OptTensor& b_hh, bool train) {
  return hidden_only_cell<GruCell, Driver>("fusedrnn::gru_cell", x, hx, w_ih, w_hh, b_ih, b_hh, train);
}

template <typename Driver>
GradTuple6 gru_cell_backward(const Tensor& grad_hy, const Tensor& x, const Tensor& hx,
                             const Tensor& w_ih, const Tensor& w_hh, const Tensor& hy,
                             const Tensor& ws, bool has_bias) {
  return hidden_only_cell_backward<GruCell, Driver>("fusedrnn::gru_cell_backward", grad_hy, x, hx, w_ih,
                                            w_hh, hy, ws, has_bias);
}

template <typename Driver>
std::tuple<Tensor, Tensor> rnn_cell(const Tensor& x, const Tensor& hx, const Tensor& w_ih,
                                    const Tensor& w_hh, const OptTensor& b_ih,
                                    const OptTensor& b_hh, bool relu, bool train) {
  auto run = relu ? hidden_only_cell<RnnCell<true>, Driver> : hidden_only_cell<RnnCell<false>, Driver>;
  return run("fusedrnn::rnn_cell", x, hx, w_ih, w_hh, b_ih, b_hh, train);
}

template <typename Driver>
GradTuple6 rnn_cell_backward(const Tensor& grad_hy, const Tensor& x, const Tensor& hx,
                             const Tensor& w_ih, const Tensor& w_hh, const Tensor& hy,
                             const Tensor& ws, bool relu, bool has_bias) {
  auto run = relu ? hidden_only_cell_backward<RnnCell<true>, Driver>
                  : hidden_only_cell_backward<RnnCell<false>, Driver>;
  return run("fusedrnn::rnn_cell_backward", grad_hy, x, hx, w_ih, w_hh, hy, ws, has_bias);
}

template <typename Driver>
void register_layer_ops(torch::Library& m) {
  m.impl("lstm_layer", &lstm_layer<Driver>);
  m.impl("lstm_layer_backward", &lstm_layer_backward<Driver>);
  m.impl("gru_layer", &gru_layer<Driver>);
  m.impl("gru_layer_backward", &gru_layer_backward<Driver>);
  m.impl("rnn_layer", &rnn_layer<Driver>);
  m.impl("rnn_layer_backward", &rnn_layer_backward<Driver>);
  m.impl("ln_lstm_layer", &ln_lstm_layer<Driver>);
  m.impl("ln_lstm_layer_backward", &ln_lstm_layer_backward<Driver>);
  m.impl("ln_gru_layer", &ln_gru_layer<Driver>);
  m.impl("ln_gru_layer_backward", &ln_gru_layer_backward<Driver>);
  m.impl("lstm_cell", &lstm_cell<Driver>);
  m.impl("lstm_cell_backward", &lstm_cell_backward<Driver>);
  m.impl("gru_cell", &gru_cell<Driver>);
  m.impl("gru_cell_backward", &gru_cell_backward<Driver>);
  m.impl("rnn_cell", &rnn_cell<Driver>);
  m.impl("rnn_cell_backward", &rnn_cell_backward<Driver>);
}

}  // namespace fusedrnn
