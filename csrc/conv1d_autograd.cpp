// Autograd of the fused Conv1D op, registered in C++ like the cells' (csrc/cell_autograd.cpp):
// torch.library's Python autograd wrapper costs about 70 µs per forward call and as much in
// backward, 5-10% of a training step of the small convolutions a sequence front runs (a step of
// B 32, T 1000, one input channel takes about a millisecond). Both halves call the registered
// ops through the dispatcher, so fake kernels, torch.compile and the CUDA kernel see the same ops.
#include "autograd_glue.h"
#include "cells/conv_activation.h"

namespace fusedrnn {
namespace {

using namespace autograd_glue;

struct Conv1dFunction : torch::autograd::Function<Conv1dFunction> {
  static variable_list forward(AutogradContext* ctx, const Tensor& x, const Tensor& weight,
                               const OptTensor& bias, int64_t stride, int64_t dilation,
                               int64_t pad_left, int64_t pad_right, int64_t activation,
                               bool batch_first, bool train) {
    static const auto op =
        find_op("fusedrnn::conv1d")
            .typed<std::tuple<Tensor, Tensor>(const Tensor&, const Tensor&, const OptTensor&,
                                              int64_t, int64_t, int64_t, int64_t, int64_t, bool,
                                              bool)>();
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto [y, pre] = op.call(x, weight, bias, stride, dilation, pad_left, pad_right, activation,
                            batch_first, train);
    ctx->mark_non_differentiable({pre});
    ctx->set_materialize_grads(false);  // y may not reach the loss; pre never does
    ctx->save_for_backward({x, weight, y, pre});
    ctx->saved_data["geometry"] =
        std::vector<int64_t>{stride, dilation, pad_left, pad_right, activation};
    ctx->saved_data["batch_first"] = batch_first;
    ctx->saved_data["has_bias"] = bias.has_value() && bias->defined();
    return {y, pre};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    reject_double_backward("fusedrnn::conv1d");
    static const auto op =
        find_op("fusedrnn::conv1d_backward")
            .typed<std::tuple<Tensor, Tensor, Tensor>(
                const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                int64_t, int64_t, int64_t, int64_t, int64_t, bool, bool, bool)>();
    const auto saved = ctx->get_saved_variables();
    const Tensor &x = saved[0], &weight = saved[1], &y = saved[2], &pre = saved[3];
    const auto g = ctx->saved_data["geometry"].toIntVector();
    // sizes may be symbolic (torch.compile traces this backward), hence sym_numel
    if (needs_preactivation(static_cast<ConvActivation>(g[4]))) {
      TORCH_SYM_CHECK(pre.sym_numel().sym_gt(0),
                      "fusedrnn::conv1d: backward needs the preactivation, but the forward op ran "
                      "with train=False");
    }
    variable_list out(10);  // x, weight, bias, then no gradient for the seven settings
    if (!grads[0].defined()) return out;  // y did not reach the loss
    const bool has_bias = ctx->saved_data["has_bias"].toBool();
    const bool x_grad = ctx->needs_input_grad(0);  // a first layer over raw input: skip dx
    auto [dx, dw, db] = op.call(grads[0], x, weight, y, pre, g[0], g[1], g[2], g[3], g[4],
                                ctx->saved_data["batch_first"].toBool(), has_bias, x_grad);
    out[0] = x_grad ? dx : Tensor();
    out[1] = dw;
    out[2] = has_bias ? db : Tensor();
    return out;
  }
};

std::tuple<Tensor, Tensor> conv1d_autograd(const Tensor& x, const Tensor& weight,
                                           const OptTensor& bias, int64_t stride,
                                           int64_t dilation, int64_t pad_left, int64_t pad_right,
                                           int64_t activation, bool batch_first, bool train) {
  reject_forward_ad("fusedrnn::conv1d", x, weight, bias);
  auto out = Conv1dFunction::apply(x, weight, bias, stride, dilation, pad_left, pad_right,
                                   activation, batch_first, train);
  return {out[0], out[1]};
}

}  // namespace

TORCH_LIBRARY_IMPL(fusedrnn, Autograd, m) { m.impl("conv1d", &conv1d_autograd); }

}  // namespace fusedrnn
