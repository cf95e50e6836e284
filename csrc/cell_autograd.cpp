// Autograd of the single-step cell ops (lstm_cell, gru_cell, rnn_cell), registered in C++.
//
// A decoder calls a cell once per step: torch.library's Python autograd wrapper cost about 70 µs
// per forward call and as much again in backward (measured on the 2-core CI machine at batch 32,
// H 128), more than the step's arithmetic. The C++ torch::autograd::Function below does the same
// bookkeeping in a few microseconds. Both halves still call the registered ops through the
// dispatcher, so fake kernels, torch.compile and the CUDA kernels see exactly the ops they see
// from Python. The layer ops do the same (csrc/layer_autograd.cpp).
#include "autograd_glue.h"

namespace fusedrnn {
namespace {

using namespace autograd_glue;

struct LstmCellFunction : torch::autograd::Function<LstmCellFunction> {
  // the forward op, called by forward() and, when autograd records nothing, directly
  static const auto& forward_op() {
    static const auto op =
        find_op("fusedrnn::lstm_cell")
            .typed<std::tuple<Tensor, Tensor, Tensor>(const Tensor&, const Tensor&, const Tensor&,
                                                      const Tensor&, const Tensor&,
                                                      const OptTensor&, const OptTensor&, bool)>();
    return op;
  }

  static variable_list forward(AutogradContext* ctx, const Tensor& x, const Tensor& hx,
                               const Tensor& cx, const Tensor& w_ih, const Tensor& w_hh,
                               const OptTensor& b_ih, const OptTensor& b_hh, bool train) {
    const auto& op = forward_op();
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto [hy, cy, ws] = op.call(x, hx, cx, w_ih, w_hh, b_ih, b_hh, train);
    // backward takes an output that got no gradient as undefined (or_zeros): no zero tensor
    // the size of the workspace per step, as autograd would otherwise make
    ctx->set_materialize_grads(false);
    ctx->mark_non_differentiable({ws});
    ctx->save_for_backward({x, hx, cx, w_ih, w_hh, hy, ws});
    ctx->saved_data["b_ih"] = has(b_ih);
    ctx->saved_data["b_hh"] = has(b_hh);
    return {hy, cy, ws};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    reject_double_backward("fusedrnn::lstm_cell");
    static const auto op =
        find_op("fusedrnn::lstm_cell_backward")
            .typed<std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>(
                const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                const Tensor&, const Tensor&, const Tensor&, const Tensor&, bool)>();
    const auto saved = ctx->get_saved_variables();
    const Tensor &x = saved[0], &hx = saved[1], &cx = saved[2], &hy = saved[5], &ws = saved[6];
    check_workspace(ws, "fusedrnn::lstm_cell");
    const bool has_b_ih = ctx->saved_data["b_ih"].toBool();
    const bool has_b_hh = ctx->saved_data["b_hh"].toBool();
    auto [dx, dhx, dcx, dw_ih, dw_hh, db_ih, db_hh] =
        op.call(or_zeros(grads[0], hy), or_zeros(grads[1], cx), x, hx, cx, saved[3], saved[4], hy,
                ws, has_b_ih || has_b_hh);
    return {dx, dhx, dcx, dw_ih, dw_hh, has_b_ih ? db_ih : Tensor(), has_b_hh ? db_hh : Tensor(),
            Tensor()};
  }
};

// GRU and Elman cells share one shape: (x, hx, w_ih, w_hh, b_ih, b_hh, flags...) -> (hy, ws),
// where the flags are `train` (GRU) or `relu, train` (RNN); the backward op takes the flags
// before `train` and then has_bias.
template <typename Tag>
struct HiddenCellFunction : torch::autograd::Function<HiddenCellFunction<Tag>> {
  // the forward op, called by forward() and, when autograd records nothing, directly
  template <typename... Flags>
  static const auto& forward_op() {
    static const auto op =
        find_op(Tag::kForward)
            .template typed<std::tuple<Tensor, Tensor>(const Tensor&, const Tensor&, const Tensor&,
                                                       const Tensor&, const OptTensor&,
                                                       const OptTensor&, Flags...)>();
    return op;
  }

  template <typename... Flags>
  static variable_list forward(AutogradContext* ctx, const Tensor& x, const Tensor& hx,
                               const Tensor& w_ih, const Tensor& w_hh, const OptTensor& b_ih,
                               const OptTensor& b_hh, Flags... flags) {
    const auto& op = forward_op<Flags...>();
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto [hy, ws] = op.call(x, hx, w_ih, w_hh, b_ih, b_hh, flags...);
    ctx->set_materialize_grads(false);  // as in LstmCellFunction
    ctx->mark_non_differentiable({ws});
    ctx->save_for_backward({x, hx, w_ih, w_hh, hy, ws});
    ctx->saved_data["b_ih"] = has(b_ih);
    ctx->saved_data["b_hh"] = has(b_hh);
    Tag::save_flags(ctx, flags...);
    return {hy, ws};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    reject_double_backward(Tag::kForward);
    const auto saved = ctx->get_saved_variables();
    const Tensor &hy = saved[4], &ws = saved[5];
    check_workspace(ws, Tag::kForward);
    const bool has_b_ih = ctx->saved_data["b_ih"].toBool();
    const bool has_b_hh = ctx->saved_data["b_hh"].toBool();
    auto [dx, dhx, dw_ih, dw_hh, db_ih, db_hh] =
        Tag::call_backward(ctx, or_zeros(grads[0], hy), saved, has_b_ih || has_b_hh);
    variable_list out{dx, dhx, dw_ih, dw_hh, has_b_ih ? db_ih : Tensor(),
                      has_b_hh ? db_hh : Tensor()};
    out.resize(out.size() + Tag::kFlags);  // no gradient for the flags
    return out;
  }
};

using Grads6 = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>;

struct GruTag {
  static constexpr const char* kForward = "fusedrnn::gru_cell";
  static constexpr size_t kFlags = 1;
  static void save_flags(AutogradContext*, bool) {}
  static Grads6 call_backward(AutogradContext*, const Tensor& grad_hy, const variable_list& s,
                              bool has_bias) {
    static const auto op =
        find_op("fusedrnn::gru_cell_backward")
            .typed<Grads6(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                          const Tensor&, const Tensor&, bool)>();
    return op.call(grad_hy, s[0], s[1], s[2], s[3], s[4], s[5], has_bias);
  }
};

struct RnnTag {
  static constexpr const char* kForward = "fusedrnn::rnn_cell";
  static constexpr size_t kFlags = 2;
  static void save_flags(AutogradContext* ctx, bool relu, bool) { ctx->saved_data["relu"] = relu; }
  static Grads6 call_backward(AutogradContext* ctx, const Tensor& grad_hy, const variable_list& s,
                              bool has_bias) {
    static const auto op =
        find_op("fusedrnn::rnn_cell_backward")
            .typed<Grads6(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                          const Tensor&, const Tensor&, bool, bool)>();
    return op.call(grad_hy, s[0], s[1], s[2], s[3], s[4], s[5], ctx->saved_data["relu"].toBool(),
                   has_bias);
  }
};

std::tuple<Tensor, Tensor, Tensor> lstm_cell_autograd(const Tensor& x, const Tensor& hx,
                                                      const Tensor& cx, const Tensor& w_ih,
                                                      const Tensor& w_hh, const OptTensor& b_ih,
                                                      const OptTensor& b_hh, bool train) {
  if (records_nothing("fusedrnn::lstm_cell", x, hx, cx, w_ih, w_hh, b_ih, b_hh)) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return LstmCellFunction::forward_op().call(x, hx, cx, w_ih, w_hh, b_ih, b_hh, train);
  }
  auto out = LstmCellFunction::apply(x, hx, cx, w_ih, w_hh, b_ih, b_hh, train);
  return {out[0], out[1], out[2]};
}

std::tuple<Tensor, Tensor> gru_cell_autograd(const Tensor& x, const Tensor& hx, const Tensor& w_ih,
                                             const Tensor& w_hh, const OptTensor& b_ih,
                                             const OptTensor& b_hh, bool train) {
  if (records_nothing("fusedrnn::gru_cell", x, hx, w_ih, w_hh, b_ih, b_hh)) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return HiddenCellFunction<GruTag>::forward_op<bool>().call(x, hx, w_ih, w_hh, b_ih, b_hh,
                                                               train);
  }
  auto out = HiddenCellFunction<GruTag>::apply(x, hx, w_ih, w_hh, b_ih, b_hh, train);
  return {out[0], out[1]};
}

std::tuple<Tensor, Tensor> rnn_cell_autograd(const Tensor& x, const Tensor& hx, const Tensor& w_ih,
                                             const Tensor& w_hh, const OptTensor& b_ih,
                                             const OptTensor& b_hh, bool relu, bool train) {
  if (records_nothing("fusedrnn::rnn_cell", x, hx, w_ih, w_hh, b_ih, b_hh)) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return HiddenCellFunction<RnnTag>::forward_op<bool, bool>().call(x, hx, w_ih, w_hh, b_ih, b_hh,
                                                                     relu, train);
  }
  auto out = HiddenCellFunction<RnnTag>::apply(x, hx, w_ih, w_hh, b_ih, b_hh, relu, train);
  return {out[0], out[1]};
}

}  // namespace

TORCH_LIBRARY_IMPL(fusedrnn, Autograd, m) {
  m.impl("lstm_cell", &lstm_cell_autograd);
  m.impl("gru_cell", &gru_cell_autograd);
  m.impl("rnn_cell", &rnn_cell_autograd);
}

}  // namespace fusedrnn
