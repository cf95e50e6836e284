// Autograd of the layer ops (lstm_layer, gru_layer, rnn_layer, ln_lstm_layer, ln_gru_layer),
// registered in C++ like the cells' (csrc/cell_autograd.cpp).
//
// torch.library's Python wrapper cost a layer call about 63 µs of its forward alone (an LSTM
// layer at batch 2, H 8: 85 µs with grad enabled against 22 µs without), 57 of them in
// torch._library.utils.fill_defaults, which rebuilds the schema's argument list once per
// argument (14 of them here). That is per layer and direction, every training step, against a
// whole step of 1-2 ms at batch 1. Both halves still call the registered ops through the
// dispatcher, so fake kernels, torch.compile and the CUDA kernels see the same ops as before.
#include "autograd_glue.h"

namespace fusedrnn {
namespace {

using namespace autograd_glue;
using Out3 = std::tuple<Tensor, Tensor, Tensor>;
using Out4 = std::tuple<Tensor, Tensor, Tensor, Tensor>;
using Grads6 = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>;
using Grads7 = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>;
using Grads8 = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>;
using T = const Tensor&;
using O = const OptTensor&;

// What every layer's forward records: the workspace is not differentiable, outputs that get no
// gradient stay undefined (no zero tensors the size of the workspace), and which biases exist.
void record(AutogradContext* ctx, const Tensor& ws, O b_ih, O b_hh, bool reverse) {
  ctx->set_materialize_grads(false);
  ctx->mark_non_differentiable({ws});
  ctx->saved_data["b_ih"] = has(b_ih);
  ctx->saved_data["b_hh"] = has(b_hh);
  ctx->saved_data["reverse"] = reverse;
}

struct Recorded {
  bool b_ih, b_hh, reverse, x_grad;
  explicit Recorded(AutogradContext* ctx)
      : b_ih(ctx->saved_data["b_ih"].toBool()),
        b_hh(ctx->saved_data["b_hh"].toBool()),
        reverse(ctx->saved_data["reverse"].toBool()),
        x_grad(ctx->needs_input_grad(0)) {}
  bool any_bias() const { return b_ih || b_hh; }
  Tensor dx(const Tensor& g) const { return x_grad ? g : Tensor(); }
  Tensor db_ih(const Tensor& g) const { return b_ih ? g : Tensor(); }
  Tensor db_hh(const Tensor& g) const { return b_hh ? g : Tensor(); }
};

// variable_list for the inputs after the differentiable ones: none has a gradient
void no_grads(variable_list& grads, size_t count) { grads.resize(grads.size() + count); }

struct LstmLayerFunction : torch::autograd::Function<LstmLayerFunction> {
  // the forward op, called by forward() and, when autograd records nothing, directly
  static const auto& forward_op() {
    static const auto op =
        find_op("fusedrnn::lstm_layer")
            .typed<Out4(T, T, T, T, T, O, O, O, O, bool, bool, O, O, O)>();
    return op;
  }

  static variable_list forward(AutogradContext* ctx, T x, T h0, T c0, T w_ih, T w_hh, O b_ih,
                               O b_hh, O w_hr, O batch_sizes, bool reverse, bool train, O rec_mask,
                               O zoneout_h, O zoneout_c) {
    const auto& op = forward_op();
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto [y, h_n, c_n, ws] = op.call(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes,
                                     reverse, train, rec_mask, zoneout_h, zoneout_c);
    record(ctx, ws, b_ih, b_hh, reverse);
    ctx->saved_data["w_hr"] = has(w_hr);
    ctx->save_for_backward({x, h0, c0, w_ih, w_hh, saved(w_hr), saved(batch_sizes), y, ws,
                            saved(rec_mask), saved(zoneout_h), saved(zoneout_c)});
    return {y, h_n, c_n, ws};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    reject_double_backward("fusedrnn::lstm_layer");
    static const auto op =
        find_op("fusedrnn::lstm_layer_backward")
            .typed<Grads8(T, T, T, T, T, T, T, T, O, O, T, T, bool, bool, O, O, O, bool)>();
    const auto s = ctx->get_saved_variables();
    check_workspace(s[8], "fusedrnn::lstm_layer");
    const Recorded r(ctx);
    auto [dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr] =
        op.call(or_zeros(grads[0], s[7]), or_zeros(grads[1], s[1]), or_zeros(grads[2], s[2]),
                s[0], s[1], s[2], s[3], s[4], optional(s[5]), optional(s[6]), s[7], s[8],
                r.reverse, r.any_bias(), optional(s[9]), optional(s[10]), optional(s[11]),
                r.x_grad);
    variable_list out{r.dx(dx),       dh0,
                      dc0,            dw_ih,
                      dw_hh,          r.db_ih(db_ih),
                      r.db_hh(db_hh), ctx->saved_data["w_hr"].toBool() ? dw_hr : Tensor()};
    no_grads(out, 6);  // batch_sizes, reverse, train, the three masks
    return out;
  }
};

struct LnLstmLayerFunction : torch::autograd::Function<LnLstmLayerFunction> {
  // the forward op, called by forward() and, when autograd records nothing, directly
  static const auto& forward_op() {
    static const auto op =
        find_op("fusedrnn::ln_lstm_layer")
            .typed<Out4(T, T, T, T, T, O, O, T, O, bool, double, bool, O, O, O)>();
    return op;
  }

  static variable_list forward(AutogradContext* ctx, T x, T h0, T c0, T w_ih, T w_hh, O b_ih,
                               O b_hh, T ln, O batch_sizes, bool reverse, double eps, bool train,
                               O rec_mask, O zoneout_h, O zoneout_c) {
    const auto& op = forward_op();
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto [y, h_n, c_n, ws] = op.call(x, h0, c0, w_ih, w_hh, b_ih, b_hh, ln, batch_sizes, reverse,
                                     eps, train, rec_mask, zoneout_h, zoneout_c);
    record(ctx, ws, b_ih, b_hh, reverse);
    ctx->save_for_backward({x, h0, c0, w_ih, w_hh, ln, saved(batch_sizes), y, ws, saved(rec_mask),
                            saved(zoneout_h), saved(zoneout_c)});
    return {y, h_n, c_n, ws};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    reject_double_backward("fusedrnn::ln_lstm_layer");
    static const auto op =
        find_op("fusedrnn::ln_lstm_layer_backward")
            .typed<Grads8(T, T, T, T, T, T, T, T, T, O, T, T, bool, bool, O, O, O, bool)>();
    const auto s = ctx->get_saved_variables();
    check_workspace(s[8], "fusedrnn::ln_lstm_layer");
    const Recorded r(ctx);
    auto [dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dln] =
        op.call(or_zeros(grads[0], s[7]), or_zeros(grads[1], s[1]), or_zeros(grads[2], s[2]),
                s[0], s[1], s[2], s[3], s[4], s[5], optional(s[6]), s[7], s[8], r.reverse,
                r.any_bias(), optional(s[9]), optional(s[10]), optional(s[11]), r.x_grad);
    variable_list out{r.dx(dx), dh0, dc0, dw_ih, dw_hh, r.db_ih(db_ih), r.db_hh(db_hh), dln};
    no_grads(out, 7);  // batch_sizes, reverse, eps, train, the three masks
    return out;
  }
};

// The layers without a cell state (GRU below, then Elman and LayerNorm GRU), one Function each:
// (x, h0, w_ih, w_hh, b_ih, b_hh, ...) -> (y, h_n, ws)
struct GruLayerFunction : torch::autograd::Function<GruLayerFunction> {
  // the forward op, called by forward() and, when autograd records nothing, directly
  static const auto& forward_op() {
    static const auto op =
        find_op("fusedrnn::gru_layer").typed<Out3(T, T, T, T, O, O, O, bool, bool, O, O)>();
    return op;
  }

  static variable_list forward(AutogradContext* ctx, T x, T h0, T w_ih, T w_hh, O b_ih, O b_hh,
                               O batch_sizes, bool reverse, bool train, O rec_mask, O zoneout_h) {
    const auto& op = forward_op();
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto [y, h_n, ws] =
        op.call(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, train, rec_mask, zoneout_h);
    record(ctx, ws, b_ih, b_hh, reverse);
    // a GRU's CPU backward recomputes b_n = h·W_hnᵀ + b_hn: it needs b_hh
    ctx->save_for_backward({x, h0, w_ih, w_hh, saved(batch_sizes), y, ws, saved(rec_mask),
                            saved(zoneout_h), saved(b_hh)});
    return {y, h_n, ws};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    reject_double_backward("fusedrnn::gru_layer");
    static const auto op =
        find_op("fusedrnn::gru_layer_backward")
            .typed<Grads6(T, T, T, T, T, T, O, T, T, bool, bool, O, O, bool, O)>();
    const auto s = ctx->get_saved_variables();
    check_workspace(s[6], "fusedrnn::gru_layer");
    const Recorded r(ctx);
    auto [dx, dh0, dw_ih, dw_hh, db_ih, db_hh] =
        op.call(or_zeros(grads[0], s[5]), or_zeros(grads[1], s[1]), s[0], s[1], s[2], s[3],
                optional(s[4]), s[5], s[6], r.reverse, r.any_bias(), optional(s[7]),
                optional(s[8]), r.x_grad, optional(s[9]));
    variable_list out{r.dx(dx), dh0, dw_ih, dw_hh, r.db_ih(db_ih), r.db_hh(db_hh)};
    no_grads(out, 5);  // batch_sizes, reverse, train, the two masks
    return out;
  }
};

struct RnnLayerFunction : torch::autograd::Function<RnnLayerFunction> {
  // the forward op, called by forward() and, when autograd records nothing, directly
  static const auto& forward_op() {
    static const auto op =
        find_op("fusedrnn::rnn_layer").typed<Out3(T, T, T, T, O, O, O, bool, bool, bool, O, O)>();
    return op;
  }

  static variable_list forward(AutogradContext* ctx, T x, T h0, T w_ih, T w_hh, O b_ih, O b_hh,
                               O batch_sizes, bool reverse, bool relu, bool train, O rec_mask,
                               O zoneout_h) {
    const auto& op = forward_op();
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto [y, h_n, ws] = op.call(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, relu, train,
                                rec_mask, zoneout_h);
    record(ctx, ws, b_ih, b_hh, reverse);
    ctx->saved_data["relu"] = relu;
    ctx->save_for_backward(
        {x, h0, w_ih, w_hh, saved(batch_sizes), y, ws, saved(rec_mask), saved(zoneout_h)});
    return {y, h_n, ws};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    reject_double_backward("fusedrnn::rnn_layer");
    static const auto op =
        find_op("fusedrnn::rnn_layer_backward")
            .typed<Grads6(T, T, T, T, T, T, O, T, T, bool, bool, bool, O, O, bool)>();
    const auto s = ctx->get_saved_variables();
    check_workspace(s[6], "fusedrnn::rnn_layer");
    const Recorded r(ctx);
    auto [dx, dh0, dw_ih, dw_hh, db_ih, db_hh] =
        op.call(or_zeros(grads[0], s[5]), or_zeros(grads[1], s[1]), s[0], s[1], s[2], s[3],
                optional(s[4]), s[5], s[6], r.reverse, ctx->saved_data["relu"].toBool(),
                r.any_bias(), optional(s[7]), optional(s[8]), r.x_grad);
    variable_list out{r.dx(dx), dh0, dw_ih, dw_hh, r.db_ih(db_ih), r.db_hh(db_hh)};
    no_grads(out, 6);  // batch_sizes, reverse, relu, train, the two masks
    return out;
  }
};

struct LnGruLayerFunction : torch::autograd::Function<LnGruLayerFunction> {
  // the forward op, called by forward() and, when autograd records nothing, directly
  static const auto& forward_op() {
    static const auto op =
        find_op("fusedrnn::ln_gru_layer")
            .typed<Out3(T, T, T, T, O, O, T, O, bool, double, bool, O, O)>();
    return op;
  }

  static variable_list forward(AutogradContext* ctx, T x, T h0, T w_ih, T w_hh, O b_ih, O b_hh,
                               T ln, O batch_sizes, bool reverse, double eps, bool train,
                               O rec_mask, O zoneout_h) {
    const auto& op = forward_op();
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto [y, h_n, ws] = op.call(x, h0, w_ih, w_hh, b_ih, b_hh, ln, batch_sizes, reverse, eps,
                                train, rec_mask, zoneout_h);
    record(ctx, ws, b_ih, b_hh, reverse);
    ctx->save_for_backward(
        {x, h0, w_ih, w_hh, ln, saved(batch_sizes), y, ws, saved(rec_mask), saved(zoneout_h)});
    return {y, h_n, ws};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    reject_double_backward("fusedrnn::ln_gru_layer");
    static const auto op =
        find_op("fusedrnn::ln_gru_layer_backward")
            .typed<Grads7(T, T, T, T, T, T, T, O, T, T, bool, bool, O, O, bool)>();
    const auto s = ctx->get_saved_variables();
    check_workspace(s[7], "fusedrnn::ln_gru_layer");
    const Recorded r(ctx);
    auto [dx, dh0, dw_ih, dw_hh, db_ih, db_hh, dln] =
        op.call(or_zeros(grads[0], s[6]), or_zeros(grads[1], s[1]), s[0], s[1], s[2], s[3], s[4],
                optional(s[5]), s[6], s[7], r.reverse, r.any_bias(), optional(s[8]),
                optional(s[9]), r.x_grad);
    variable_list out{r.dx(dx), dh0, dw_ih, dw_hh, r.db_ih(db_ih), r.db_hh(db_hh), dln};
    no_grads(out, 6);  // batch_sizes, reverse, eps, train, the two masks
    return out;
  }
};

Out4 lstm_layer_autograd(T x, T h0, T c0, T w_ih, T w_hh, O b_ih, O b_hh, O w_hr, O batch_sizes,
                         bool reverse, bool train, O rec_mask, O zoneout_h, O zoneout_c) {
  if (records_nothing("fusedrnn::lstm_layer", x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr)) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return LstmLayerFunction::forward_op().call(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr,
                                                batch_sizes, reverse, train, rec_mask, zoneout_h,
                                                zoneout_c);
  }
  auto o = LstmLayerFunction::apply(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, reverse,
                                    train, rec_mask, zoneout_h, zoneout_c);
  return {o[0], o[1], o[2], o[3]};
}

Out4 ln_lstm_layer_autograd(T x, T h0, T c0, T w_ih, T w_hh, O b_ih, O b_hh, T ln, O batch_sizes,
                            bool reverse, double eps, bool train, O rec_mask, O zoneout_h,
                            O zoneout_c) {
  if (records_nothing("fusedrnn::ln_lstm_layer", x, h0, c0, w_ih, w_hh, b_ih, b_hh, ln)) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return LnLstmLayerFunction::forward_op().call(x, h0, c0, w_ih, w_hh, b_ih, b_hh, ln,
                                                  batch_sizes, reverse, eps, train, rec_mask,
                                                  zoneout_h, zoneout_c);
  }
  auto o = LnLstmLayerFunction::apply(x, h0, c0, w_ih, w_hh, b_ih, b_hh, ln, batch_sizes,
                                      reverse, eps, train, rec_mask, zoneout_h, zoneout_c);
  return {o[0], o[1], o[2], o[3]};
}

Out3 gru_layer_autograd(T x, T h0, T w_ih, T w_hh, O b_ih, O b_hh, O batch_sizes, bool reverse,
                        bool train, O rec_mask, O zoneout_h) {
  if (records_nothing("fusedrnn::gru_layer", x, h0, w_ih, w_hh, b_ih, b_hh)) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return GruLayerFunction::forward_op().call(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse,
                                               train, rec_mask, zoneout_h);
  }
  auto o = GruLayerFunction::apply(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, train,
                                   rec_mask, zoneout_h);
  return {o[0], o[1], o[2]};
}

Out3 rnn_layer_autograd(T x, T h0, T w_ih, T w_hh, O b_ih, O b_hh, O batch_sizes, bool reverse,
                        bool relu, bool train, O rec_mask, O zoneout_h) {
  if (records_nothing("fusedrnn::rnn_layer", x, h0, w_ih, w_hh, b_ih, b_hh)) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return RnnLayerFunction::forward_op().call(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse,
                                               relu, train, rec_mask, zoneout_h);
  }
  auto o = RnnLayerFunction::apply(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, relu,
                                   train, rec_mask, zoneout_h);
  return {o[0], o[1], o[2]};
}

Out3 ln_gru_layer_autograd(T x, T h0, T w_ih, T w_hh, O b_ih, O b_hh, T ln, O batch_sizes,
                           bool reverse, double eps, bool train, O rec_mask, O zoneout_h) {
  if (records_nothing("fusedrnn::ln_gru_layer", x, h0, w_ih, w_hh, b_ih, b_hh, ln)) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return LnGruLayerFunction::forward_op().call(x, h0, w_ih, w_hh, b_ih, b_hh, ln, batch_sizes,
                                                 reverse, eps, train, rec_mask, zoneout_h);
  }
  auto o = LnGruLayerFunction::apply(x, h0, w_ih, w_hh, b_ih, b_hh, ln, batch_sizes, reverse, eps,
                                     train, rec_mask, zoneout_h);
  return {o[0], o[1], o[2]};
}

}  // namespace

TORCH_LIBRARY_IMPL(fusedrnn, Autograd, m) {
  m.impl("lstm_layer", &lstm_layer_autograd);
  m.impl("ln_lstm_layer", &ln_lstm_layer_autograd);
  m.impl("gru_layer", &gru_layer_autograd);
  m.impl("rnn_layer", &rnn_layer_autograd);
  m.impl("ln_gru_layer", &ln_gru_layer_autograd);
}

}  // namespace fusedrnn
