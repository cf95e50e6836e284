// CPU kernels of every layer and cell op: argument checks, allocation and dtype dispatch around
// the generic driver in recurrence.h. Cell ops are one-step layers.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

#include "../cells/gru.h"
#include "../cells/lstm.h"
#include "../cells/rnn.h"
#include "../layer_checks.h"
#include "recurrence.h"

namespace fusedrnn {
namespace cpu {
namespace {

using at::Tensor;
using OptTensor = std::optional<Tensor>;

struct LayerResult {
  Tensor y, h_n, c_n, workspace;
};

struct LayerGrads {
  Tensor x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr;
};

template <typename Cell>
int64_t workspace_cols(const LayerShape& s, bool proj) {
  return Cell::workspace_cols(s.hidden) + (proj ? s.hidden : 0);
}

Tensor bias_or_zeros(const OptTensor& b, const Tensor& like, int64_t n) {
  return b.has_value() ? b->contiguous() : at::zeros({n}, like.options());
}

void check_cpu(const char* op, const Tensor& x) {
  TORCH_CHECK(x.device().is_cpu(), op, ": expected CPU tensors, got x on ", x.device());
}

template <typename Cell>
LayerResult layer_forward(const char* op, const Tensor& x_in, const Tensor& h0, const Tensor* c0,
                          const Tensor& w_ih_in, const Tensor& w_hh_in, const OptTensor& b_ih,
                          const OptTensor& b_hh, const Tensor* w_hr_in,
                          const OptTensor& batch_sizes, bool reverse, bool train) {
  check_cpu(op, x_in);
  const LayerShape s =
      check_layer(op, Cell::kGates, x_in, h0, c0, w_ih_in, w_hh_in, b_ih, b_hh, w_hr_in, batch_sizes);
  const int64_t GH = Cell::kGates * s.hidden;
  const Tensor x = x_in.contiguous(), w_ih = w_ih_in.contiguous(), w_hh = w_hh_in.contiguous();
  const Tensor w_hr = w_hr_in ? w_hr_in->contiguous() : Tensor();
  const Tensor bi = bias_or_zeros(b_ih, x, GH), bh = bias_or_zeros(b_hh, x, GH);
  const int64_t wcols = workspace_cols<Cell>(s, w_hr_in != nullptr);

  LayerResult r;
  r.y = s.packed ? at::empty({s.rows, s.proj}, x.options())
                 : at::empty({s.steps, s.batch, s.proj}, x.options());
  r.h_n = h0.contiguous().clone();
  r.c_n = c0 ? c0->contiguous().clone() : at::empty({0}, x.options());
  Tensor ws = at::empty({s.rows, wcols}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fusedrnn_layer", [&] {
    const LayerWeights<scalar_t> w{w_ih.data_ptr<scalar_t>(), w_hh.data_ptr<scalar_t>(),
                                   bi.data_ptr<scalar_t>(),   bh.data_ptr<scalar_t>(),
                                   w_hr.defined() ? w_hr.data_ptr<scalar_t>() : nullptr,
                                   s.input, s.hidden, s.proj};
    const ForwardBuffers<Cell, scalar_t> out{
        r.y.data_ptr<scalar_t>(), r.h_n.data_ptr<scalar_t>(),
        c0 ? r.c_n.data_ptr<scalar_t>() : nullptr, ws.data_ptr<scalar_t>(), wcols};
    recurrence_forward<Cell, scalar_t>(Schedule(s.batch_sizes), x.data_ptr<scalar_t>(), w,
                                       reverse, out);
  });
  r.workspace = train ? ws : at::empty({0}, x.options());
  return r;
}

template <typename Cell>
LayerGrads layer_backward(const char* op, const Tensor& grad_y, const Tensor& grad_h_n,
                          const Tensor* grad_c_n, const Tensor& x_in, const Tensor& h0_in,
                          const Tensor* c0_in, const Tensor& w_ih_in, const Tensor& w_hh_in,
                          const Tensor* w_hr_in, const OptTensor& batch_sizes, const Tensor& y_in,
                          const Tensor& ws_in, bool reverse, bool has_bias) {
  check_cpu(op, x_in);
  const LayerShape s = check_layer(op, Cell::kGates, x_in, h0_in, c0_in, w_ih_in, w_hh_in,
                                   std::nullopt, std::nullopt, w_hr_in, batch_sizes);
  const int64_t GH = Cell::kGates * s.hidden;
  const int64_t wcols = workspace_cols<Cell>(s, w_hr_in != nullptr);
  check_shape(op, ws_in, "workspace", {s.rows, wcols},
              "saved by the forward op called with train=True");
  check_shape(op, grad_y, "grad_y", y_in.sizes().vec(), "like y");
  check_shape(op, grad_h_n, "grad_h_n", h0_in.sizes().vec(), "like h0");
  const Tensor x = x_in.contiguous(), h0 = h0_in.contiguous(), y = y_in.contiguous();
  const Tensor ws = ws_in.contiguous(), dy = grad_y.contiguous();
  const Tensor w_ih = w_ih_in.contiguous(), w_hh = w_hh_in.contiguous();
  const Tensor w_hr = w_hr_in ? w_hr_in->contiguous() : Tensor();
  const Tensor c0 = c0_in ? c0_in->contiguous() : Tensor();

  LayerGrads g;
  g.x = at::empty_like(x);
  g.h0 = grad_h_n.contiguous().clone();
  g.c0 = grad_c_n ? grad_c_n->contiguous().clone() : at::empty({0}, x.options());
  g.w_ih = at::empty_like(w_ih);
  g.w_hh = at::empty_like(w_hh);
  g.b_ih = at::empty({has_bias ? GH : 0}, x.options());
  g.b_hh = at::empty({has_bias ? GH : 0}, x.options());
  g.w_hr = w_hr.defined() ? at::empty_like(w_hr) : at::empty({0}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fusedrnn_layer", [&] {
    const LayerWeights<scalar_t> w{w_ih.data_ptr<scalar_t>(), w_hh.data_ptr<scalar_t>(),
                                   nullptr, nullptr,
                                   w_hr.defined() ? w_hr.data_ptr<scalar_t>() : nullptr,
                                   s.input, s.hidden, s.proj};
    const BackwardInputs<scalar_t> in{dy.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(),
                                      h0.data_ptr<scalar_t>(),
                                      c0.defined() ? c0.data_ptr<scalar_t>() : nullptr,
                                      y.data_ptr<scalar_t>(), ws.data_ptr<scalar_t>(), wcols};
    const BackwardOutputs<scalar_t> out{
        g.x.data_ptr<scalar_t>(),    g.h0.data_ptr<scalar_t>(),
        c0.defined() ? g.c0.data_ptr<scalar_t>() : nullptr,
        g.w_ih.data_ptr<scalar_t>(), g.w_hh.data_ptr<scalar_t>(),
        has_bias ? g.b_ih.data_ptr<scalar_t>() : nullptr,
        has_bias ? g.b_hh.data_ptr<scalar_t>() : nullptr,
        w_hr.defined() ? g.w_hr.data_ptr<scalar_t>() : nullptr};
    recurrence_backward<Cell, scalar_t>(Schedule(s.batch_sizes), w, reverse, in, out);
  });
  return g;
}

// ---- schema-shaped entry points ------------------------------------------------------------

std::tuple<Tensor, Tensor, Tensor, Tensor> lstm_layer(
    const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& w_ih, const Tensor& w_hh,
    const OptTensor& b_ih, const OptTensor& b_hh, const OptTensor& w_hr,
    const OptTensor& batch_sizes, bool reverse, bool train) {
  auto r = layer_forward<LstmCell>("fusedrnn::lstm_layer", x, h0, &c0, w_ih, w_hh, b_ih, b_hh,
                                   w_hr ? &*w_hr : nullptr, batch_sizes, reverse, train);
  return {r.y, r.h_n, r.c_n, r.workspace};
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> lstm_layer_backward(
    const Tensor& grad_y, const Tensor& grad_h_n, const Tensor& grad_c_n, const Tensor& x,
    const Tensor& h0, const Tensor& c0, const Tensor& w_ih, const Tensor& w_hh,
    const OptTensor& w_hr, const OptTensor& batch_sizes, const Tensor& y, const Tensor& ws,
    bool reverse, bool has_bias) {
  auto g = layer_backward<LstmCell>("fusedrnn::lstm_layer_backward", grad_y, grad_h_n, &grad_c_n,
                                    x, h0, &c0, w_ih, w_hh, w_hr ? &*w_hr : nullptr, batch_sizes,
                                    y, ws, reverse, has_bias);
  return {g.x, g.h0, g.c0, g.w_ih, g.w_hh, g.b_ih, g.b_hh, g.w_hr};
}

std::tuple<Tensor, Tensor, Tensor> gru_layer(const Tensor& x, const Tensor& h0, const Tensor& w_ih,
                                             const Tensor& w_hh, const OptTensor& b_ih,
                                             const OptTensor& b_hh, const OptTensor& batch_sizes,
                                             bool reverse, bool train) {
  auto r = layer_forward<GruCell>("fusedrnn::gru_layer", x, h0, nullptr, w_ih, w_hh, b_ih, b_hh,
                                  nullptr, batch_sizes, reverse, train);
  return {r.y, r.h_n, r.workspace};
}

using GradTuple6 = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>;

GradTuple6 gru_layer_backward(const Tensor& grad_y, const Tensor& grad_h_n, const Tensor& x,
                              const Tensor& h0, const Tensor& w_ih, const Tensor& w_hh,
                              const OptTensor& batch_sizes, const Tensor& y, const Tensor& ws,
                              bool reverse, bool has_bias) {
  auto g = layer_backward<GruCell>("fusedrnn::gru_layer_backward", grad_y, grad_h_n, nullptr, x,
                                   h0, nullptr, w_ih, w_hh, nullptr, batch_sizes, y, ws, reverse,
                                   has_bias);
  return {g.x, g.h0, g.w_ih, g.w_hh, g.b_ih, g.b_hh};
}

std::tuple<Tensor, Tensor, Tensor> rnn_layer(const Tensor& x, const Tensor& h0, const Tensor& w_ih,
                                             const Tensor& w_hh, const OptTensor& b_ih,
                                             const OptTensor& b_hh, const OptTensor& batch_sizes,
                                             bool reverse, bool relu, bool train) {
  auto run = relu ? layer_forward<RnnCell<true>> : layer_forward<RnnCell<false>>;
  auto r = run("fusedrnn::rnn_layer", x, h0, nullptr, w_ih, w_hh, b_ih, b_hh, nullptr,
               batch_sizes, reverse, train);
  return {r.y, r.h_n, r.workspace};
}

GradTuple6 rnn_layer_backward(const Tensor& grad_y, const Tensor& grad_h_n, const Tensor& x,
                              const Tensor& h0, const Tensor& w_ih, const Tensor& w_hh,
                              const OptTensor& batch_sizes, const Tensor& y, const Tensor& ws,
                              bool reverse, bool relu, bool has_bias) {
  auto run = relu ? layer_backward<RnnCell<true>> : layer_backward<RnnCell<false>>;
  auto g = run("fusedrnn::rnn_layer_backward", grad_y, grad_h_n, nullptr, x, h0, nullptr, w_ih,
               w_hh, nullptr, batch_sizes, y, ws, reverse, has_bias);
  return {g.x, g.h0, g.w_ih, g.w_hh, g.b_ih, g.b_hh};
}

// ---- single-step cells: a one-step layer on [B, I] ------------------------------------------

void check_cell_input(const char* op, const Tensor& x) {
  TORCH_CHECK(x.dim() == 2, op, ": x must be [batch, input_size] (2-D), got ", shape_str(x));
}

std::tuple<Tensor, Tensor, Tensor> lstm_cell(const Tensor& x, const Tensor& hx, const Tensor& cx,
                                             const Tensor& w_ih, const Tensor& w_hh,
                                             const OptTensor& b_ih, const OptTensor& b_hh,
                                             bool train) {
  check_cell_input("fusedrnn::lstm_cell", x);
  auto r = layer_forward<LstmCell>("fusedrnn::lstm_cell", x.unsqueeze(0), hx, &cx, w_ih, w_hh,
                                   b_ih, b_hh, nullptr, std::nullopt, false, train);
  return {r.y.squeeze(0), r.c_n, r.workspace};
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> lstm_cell_backward(
    const Tensor& grad_hy, const Tensor& grad_cy, const Tensor& x, const Tensor& hx,
    const Tensor& cx, const Tensor& w_ih, const Tensor& w_hh, const Tensor& hy, const Tensor& ws,
    bool has_bias) {
  check_cell_input("fusedrnn::lstm_cell_backward", x);
  auto g = layer_backward<LstmCell>("fusedrnn::lstm_cell_backward", grad_hy.unsqueeze(0),
                                    at::zeros_like(hx), &grad_cy, x.unsqueeze(0), hx, &cx, w_ih,
                                    w_hh, nullptr, std::nullopt, hy.unsqueeze(0), ws, false,
                                    has_bias);
  return {g.x.squeeze(0), g.h0, g.c0, g.w_ih, g.w_hh, g.b_ih, g.b_hh};
}

template <typename Cell>
std::tuple<Tensor, Tensor> hidden_only_cell(const char* op, const Tensor& x, const Tensor& hx,
                                            const Tensor& w_ih, const Tensor& w_hh,
                                            const OptTensor& b_ih, const OptTensor& b_hh,
                                            bool train) {
  check_cell_input(op, x);
  auto r = layer_forward<Cell>(op, x.unsqueeze(0), hx, nullptr, w_ih, w_hh, b_ih, b_hh, nullptr,
                               std::nullopt, false, train);
  return {r.y.squeeze(0), r.workspace};
}

template <typename Cell>
GradTuple6 hidden_only_cell_backward(const char* op, const Tensor& grad_hy, const Tensor& x,
                                     const Tensor& hx, const Tensor& w_ih, const Tensor& w_hh,
                                     const Tensor& hy, const Tensor& ws, bool has_bias) {
  check_cell_input(op, x);
  auto g = layer_backward<Cell>(op, grad_hy.unsqueeze(0), at::zeros_like(hx), nullptr,
                                x.unsqueeze(0), hx, nullptr, w_ih, w_hh, nullptr, std::nullopt,
                                hy.unsqueeze(0), ws, false, has_bias);
  return {g.x.squeeze(0), g.h0, g.w_ih, g.w_hh, g.b_ih, g.b_hh};
}

std::tuple<Tensor, Tensor> gru_cell(const Tensor& x, const Tensor& hx, const Tensor& w_ih,
                                    const Tensor& w_hh, const OptTensor& b_ih,
                                    const OptTensor& b_hh, bool train) {
  return hidden_only_cell<GruCell>("fusedrnn::gru_cell", x, hx, w_ih, w_hh, b_ih, b_hh, train);
}

GradTuple6 gru_cell_backward(const Tensor& grad_hy, const Tensor& x, const Tensor& hx,
                             const Tensor& w_ih, const Tensor& w_hh, const Tensor& hy,
                             const Tensor& ws, bool has_bias) {
  return hidden_only_cell_backward<GruCell>("fusedrnn::gru_cell_backward", grad_hy, x, hx, w_ih,
                                            w_hh, hy, ws, has_bias);
}

std::tuple<Tensor, Tensor> rnn_cell(const Tensor& x, const Tensor& hx, const Tensor& w_ih,
                                    const Tensor& w_hh, const OptTensor& b_ih,
                                    const OptTensor& b_hh, bool relu, bool train) {
  auto run = relu ? hidden_only_cell<RnnCell<true>> : hidden_only_cell<RnnCell<false>>;
  return run("fusedrnn::rnn_cell", x, hx, w_ih, w_hh, b_ih, b_hh, train);
}

GradTuple6 rnn_cell_backward(const Tensor& grad_hy, const Tensor& x, const Tensor& hx,
                             const Tensor& w_ih, const Tensor& w_hh, const Tensor& hy,
                             const Tensor& ws, bool relu, bool has_bias) {
  auto run = relu ? hidden_only_cell_backward<RnnCell<true>>
                  : hidden_only_cell_backward<RnnCell<false>>;
  return run("fusedrnn::rnn_cell_backward", grad_hy, x, hx, w_ih, w_hh, hy, ws, has_bias);
}

}  // namespace

TORCH_LIBRARY_IMPL(fusedrnn, CPU, m) {
  m.impl("lstm_layer", &lstm_layer);
  m.impl("lstm_layer_backward", &lstm_layer_backward);
  m.impl("gru_layer", &gru_layer);
  m.impl("gru_layer_backward", &gru_layer_backward);
  m.impl("rnn_layer", &rnn_layer);
  m.impl("rnn_layer_backward", &rnn_layer_backward);
  m.impl("lstm_cell", &lstm_cell);
  m.impl("lstm_cell_backward", &lstm_cell_backward);
  m.impl("gru_cell", &gru_cell);
  m.impl("gru_cell_backward", &gru_cell_backward);
  m.impl("rnn_cell", &rnn_cell);
  m.impl("rnn_cell_backward", &rnn_cell_backward);
}

}  // namespace cpu
}  // namespace fusedrnn
