// Shape checks and index arithmetic of the fused Conv1D, shared by its CPU and CUDA kernels.
// Sequences are channels-last, [B, T, C] (batch_first) or [T, B, C]; output step t, tap k reads
// input step t·stride + k·dilation − pad_left, and taps that fall into the padding read zeros.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include "cells/conv_activation.h"

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

namespace fusedrnn {

struct Conv1dGeometry {
  int64_t batch, steps, in_channels, out_channels, kernel, stride, dilation, pad_left, pad_right;
  int64_t out_steps;
  bool batch_first;

  // y's shape, channels last like x
  std::vector<int64_t> y_shape() const {
    return batch_first ? std::vector<int64_t>{batch, out_steps, out_channels}
                       : std::vector<int64_t>{out_steps, batch, out_channels};
  }

  // element offsets between consecutive batch entries / steps of x and of y (channels contiguous)
  int64_t x_batch_stride() const { return batch_first ? steps * in_channels : in_channels; }
  int64_t x_step_stride() const { return batch_first ? in_channels : batch * in_channels; }
  int64_t y_batch_stride() const { return batch_first ? out_steps * out_channels : out_channels; }
  int64_t y_step_stride() const { return batch_first ? out_channels : batch * out_channels; }

  // output steps [first, last) whose tap k reads a real input step (not padding)
  int64_t first_step(int64_t k) const {
    const int64_t need = pad_left - k * dilation;  // t·stride >= need
    return need <= 0 ? 0 : std::min(out_steps, (need + stride - 1) / stride);
  }
  int64_t last_step(int64_t k) const {
    const int64_t room = steps - 1 + pad_left - k * dilation;  // t·stride <= room
    return room < 0 ? 0 : std::max(first_step(k), std::min(out_steps, room / stride + 1));
  }
  // input step read by output step t through tap k
  int64_t input_step(int64_t t, int64_t k) const { return t * stride + k * dilation - pad_left; }
};

inline Conv1dGeometry check_conv1d(const char* op, const at::Tensor& x, const at::Tensor& weight,
                                   const std::optional<at::Tensor>& bias, int64_t stride,
                                   int64_t dilation, int64_t pad_left, int64_t pad_right,
                                   bool batch_first) {
  TORCH_CHECK(x.dim() == 3, op, ": x must be ", batch_first ? "[batch, time, channels]" : "[time, batch, channels]",
              " (3-D), got shape ", x.sizes());
  TORCH_CHECK(weight.dim() == 3, op, ": weight must be [out_channels, in_channels, kernel_size] ",
              "(as nn.Conv1d), got shape ", weight.sizes());
  TORCH_CHECK(stride > 0, op, ": stride must be positive, got ", stride);
  TORCH_CHECK(dilation > 0, op, ": dilation must be positive, got ", dilation);
  TORCH_CHECK(pad_left >= 0 && pad_right >= 0, op, ": padding must be non-negative, got (",
              pad_left, ", ", pad_right, ")");
  // bounds far past any real sequence, so that the step arithmetic below cannot overflow
  constexpr int64_t kMaxSteps = int64_t(1) << 40;
  TORCH_CHECK(pad_left < kMaxSteps && pad_right < kMaxSteps && dilation < kMaxSteps, op,
              ": padding and dilation must be below 2^40, got padding (", pad_left, ", ", pad_right,
              ") and dilation ", dilation);
  TORCH_CHECK(x.scalar_type() == weight.scalar_type(), op, ": weight must have dtype ",
              x.scalar_type(), " like x, got ", weight.scalar_type());
  TORCH_CHECK(x.device() == weight.device(), op, ": weight must be on ", x.device(),
              " like x, got ", weight.device());
  Conv1dGeometry g;
  g.batch_first = batch_first;
  g.batch = x.size(batch_first ? 0 : 1);
  g.steps = x.size(batch_first ? 1 : 0);
  g.in_channels = x.size(2);
  g.out_channels = weight.size(0);
  g.kernel = weight.size(2);
  g.stride = stride;
  g.dilation = dilation;
  g.pad_left = pad_left;
  g.pad_right = pad_right;
  TORCH_CHECK(weight.size(1) == g.in_channels, op, ": x has ", g.in_channels,
              " channels but weight expects in_channels=", weight.size(1), " (weight shape ",
              weight.sizes(), ")");
  TORCH_CHECK(g.kernel > 0 && g.out_channels > 0, op, ": weight must be non-empty, got shape ",
              weight.sizes());
  if (bias.has_value()) {
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == g.out_channels, op,
                ": bias must have shape [", g.out_channels, "] (out_channels), got ",
                bias->sizes());
    TORCH_CHECK(bias->scalar_type() == x.scalar_type() && bias->device() == x.device(), op,
                ": bias must be ", x.scalar_type(), " on ", x.device(), " like x");
  }
  const int64_t span = dilation * (g.kernel - 1) + 1;
  const int64_t padded = g.steps + pad_left + pad_right;
  TORCH_CHECK(padded >= span, op, ": the kernel spans ", span, " steps (kernel_size=", g.kernel,
              ", dilation=", dilation, ") but the padded input has only ", padded,
              " (time steps=", g.steps, ", padding=(", pad_left, ", ", pad_right, "))");
  g.out_steps = (padded - span) / stride + 1;
  return g;
}

// The activation code of conv_activation.h's ConvActivation
inline void check_activation(const char* op, int64_t activation) {
  TORCH_CHECK(activation >= 0 && activation <= 4, op, ": activation must be 0..4, got ", activation);
}

// The backward's other inputs against the geometry: the kernels read y, the preactivation and
// grad_y by the output's sizes.
inline void check_conv1d_backward(const char* op, const Conv1dGeometry& g, const at::Tensor& x,
                                  const at::Tensor& grad_y, const at::Tensor& y,
                                  const at::Tensor& pre, int64_t activation) {
  check_activation(op, activation);
  const std::vector<int64_t> out = g.y_shape();
  const bool needs_pre = needs_preactivation(static_cast<ConvActivation>(activation));
  for (const auto& [t, name] : {std::pair<const at::Tensor&, const char*>{grad_y, "grad_y"},
                                {y, "y"}, {pre, "preactivation"}}) {
    if (&t == &pre && !needs_pre) continue;
    TORCH_CHECK(t.scalar_type() == x.scalar_type() && t.device() == x.device(), op, ": ", name,
                " must be ", x.scalar_type(), " on ", x.device(), " like x, got ", t.scalar_type(),
                " on ", t.device());
    TORCH_CHECK(t.sizes() == at::IntArrayRef(out), op, ": ", name, " must have shape ",
                at::IntArrayRef(out), " (the forward op's output",
                &t == &pre ? ", saved by conv1d(train=True)" : "", "), got ", t.sizes());
  }
}

}  // namespace fusedrnn
