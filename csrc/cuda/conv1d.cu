// CUDA kernels of the fused Conv1D: the convolution itself through ATen (cuDNN) on a permuted
// view, and bias-free activation work in one elementwise kernel that uses the activation functions
// shared with the CPU kernel (csrc/cells/conv_activation.h). Layout handling matches the CPU op:
// channels-last [B, T, C] or [T, B, C] in and out.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/convolution.h>
#include <ATen/ops/convolution_backward.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../cells/conv_activation.h"
#include "../conv1d_geometry.h"

namespace fusedrnn {
namespace cuda {
namespace {

using at::Tensor;
constexpr int kThreads = 256;

template <ConvActivation kAct, typename T>
__global__ void activation_kernel(const T* pre_in, T* y, T* pre_out, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  using Acc = at::opmath_type<T>;
  const Acc a = static_cast<Acc>(pre_in[i]);
  if (pre_out) pre_out[i] = pre_in[i];
  y[i] = static_cast<T>(activate<kAct>(a));
}

template <ConvActivation kAct, typename T>
__global__ void activation_backward_kernel(const T* grad, const T* y, const T* pre, T* out,
                                           int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  using Acc = at::opmath_type<T>;
  const Acc a = pre ? static_cast<Acc>(pre[i]) : Acc(0);
  out[i] = static_cast<T>(activation_backward<kAct>(static_cast<Acc>(grad[i]),
                                                   static_cast<Acc>(y[i]), a));
}

// [B, T, C] or [T, B, C] <-> [B, C, T] as views
Tensor to_channels_first(const Tensor& t, bool batch_first) {
  return batch_first ? t.permute({0, 2, 1}) : t.permute({1, 2, 0});
}
Tensor to_channels_last(const Tensor& t, bool batch_first) {
  return batch_first ? t.permute({0, 2, 1}) : t.permute({2, 0, 1});
}

void check_cuda(const char* op, const Tensor& x) {
  TORCH_CHECK(x.is_cuda(), op, ": expected CUDA tensors, got x on ", x.device());
}

std::tuple<Tensor, Tensor> conv1d(const Tensor& x, const Tensor& weight,
                                  const std::optional<Tensor>& bias, int64_t stride,
                                  int64_t dilation, int64_t pad_left, int64_t pad_right,
                                  int64_t activation, bool batch_first, bool train) {
  const char* op = "fusedrnn::conv1d";
  check_cuda(op, x);
  check_conv1d(op, x, weight, bias, stride, dilation, pad_left, pad_right, batch_first);
  check_activation(op, activation);
  const c10::cuda::CUDAGuard guard(x.device());
  const auto act = static_cast<ConvActivation>(activation);
  const Tensor padded = at::constant_pad_nd(to_channels_first(x, batch_first), {pad_left, pad_right});
  const Tensor conv = at::convolution(padded, weight, bias, {stride}, {0}, {dilation}, false, {0}, 1);
  const Tensor pre_act = to_channels_last(conv, batch_first).contiguous();
  Tensor y = at::empty_like(pre_act);
  const bool keep = train && needs_preactivation(act);
  Tensor pre = keep ? at::empty_like(pre_act) : at::empty({0}, x.options());
  const int64_t n = y.numel();
  if (n == 0) return {y, pre};
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "fusedrnn_conv1d_cuda", [&] {
    dispatch_activation(act, [&](auto tag) {
      activation_kernel<decltype(tag)::value, scalar_t>
          <<<(n + kThreads - 1) / kThreads, kThreads, 0, stream>>>(
              pre_act.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(),
              keep ? pre.data_ptr<scalar_t>() : nullptr, n);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return {y, pre};
}

std::tuple<Tensor, Tensor, Tensor> conv1d_backward(
    const Tensor& grad_y, const Tensor& x, const Tensor& weight, const Tensor& y,
    const Tensor& pre, int64_t stride, int64_t dilation, int64_t pad_left, int64_t pad_right,
    int64_t activation, bool batch_first, bool has_bias, bool x_grad) {
  const char* op = "fusedrnn::conv1d_backward";
  check_cuda(op, x);
  const Conv1dGeometry g = check_conv1d(op, x, weight, std::nullopt, stride, dilation, pad_left,
                                        pad_right, batch_first);
  const c10::cuda::CUDAGuard guard(x.device());
  check_conv1d_backward(op, g, x, grad_y, y, pre, activation);
  const auto act = static_cast<ConvActivation>(activation);
  const Tensor dy = grad_y.contiguous(), yc = y.contiguous(), prec = pre.contiguous();
  Tensor da = at::empty_like(yc);
  const int64_t n = da.numel();
  const auto stream = c10::cuda::getCurrentCUDAStream();
  if (n > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "fusedrnn_conv1d_backward_cuda", [&] {
      dispatch_activation(act, [&](auto tag) {
        activation_backward_kernel<decltype(tag)::value, scalar_t>
            <<<(n + kThreads - 1) / kThreads, kThreads, 0, stream>>>(
                dy.data_ptr<scalar_t>(), yc.data_ptr<scalar_t>(),
                needs_preactivation(act) ? prec.data_ptr<scalar_t>() : nullptr,
                da.data_ptr<scalar_t>(), n);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
  }
  const Tensor padded = at::constant_pad_nd(to_channels_first(x, batch_first), {pad_left, pad_right});
  auto [dpadded, dw, db] = at::convolution_backward(
      to_channels_first(da, batch_first), padded, weight,
      has_bias ? at::OptionalIntArrayRef(at::IntArrayRef{g.out_channels}) : std::nullopt,
      {stride}, {0}, {dilation}, false, {0}, 1, {x_grad, true, has_bias});
  const Tensor dx = x_grad
      ? to_channels_last(dpadded.narrow(2, pad_left, g.steps), batch_first).contiguous()
      : at::empty({0}, x.options());
  return {dx, dw, has_bias ? db : at::empty({0}, x.options())};
}

}  // namespace

TORCH_LIBRARY_IMPL(fusedrnn, CUDA, m) {
  m.impl("conv1d", &conv1d);
  m.impl("conv1d_backward", &conv1d_backward);
}

}  // namespace cuda
}  // namespace fusedrnn
