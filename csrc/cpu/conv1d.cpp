// CPU kernels of the fused Conv1D. No im2col and no permutes: for each tap k, the input rows a
// block of output steps reads are evenly spaced in memory (stride·step apart), so each tap is one
// GEMM straight on x, accumulated into y; bias and activation follow in one pass over y.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include "../cells/conv_activation.h"
#include "../conv1d_geometry.h"
#include "gemm.h"
#include "reductions.h"

namespace fusedrnn {
namespace cpu {
namespace {

using at::Tensor;

// Runs f(b) for every batch entry: in parallel over the batch when it has enough entries to
// share out (each entry's GEMMs then run single-threaded), else one after another with the
// BLAS's own threads.
template <typename F>
void for_each_sequence(int64_t batch, const F& f) {
  if (batch >= at::get_num_threads() && batch > 1) {
    at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) f(b);
    });
  } else {
    for (int64_t b = 0; b < batch; ++b) f(b);
  }
}

// weight [C_out, C_in, K] -> [K, C_out, C_in]: each tap a contiguous matrix
Tensor taps_first(const Tensor& weight) { return weight.permute({2, 0, 1}).contiguous(); }

std::vector<int64_t> output_shape(const Conv1dGeometry& g) {
  return g.batch_first ? std::vector<int64_t>{g.batch, g.out_steps, g.out_channels}
                       : std::vector<int64_t>{g.out_steps, g.batch, g.out_channels};
}

void check_cpu(const char* op, const Tensor& x) {
  TORCH_CHECK(x.device().is_cpu(), op, ": expected CPU tensors, got x on ", x.device());
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, op,
              ": x must be float32 or float64, got ", x.scalar_type());
}

std::tuple<Tensor, Tensor> conv1d(const Tensor& x_in, const Tensor& weight,
                                  const std::optional<Tensor>& bias, int64_t stride,
                                  int64_t dilation, int64_t pad_left, int64_t pad_right,
                                  int64_t activation, bool batch_first, bool train) {
  const char* op = "fusedrnn::conv1d";
  check_cpu(op, x_in);
  const Conv1dGeometry g =
      check_conv1d(op, x_in, weight, bias, stride, dilation, pad_left, pad_right, batch_first);
  TORCH_CHECK(activation >= 0 && activation <= 4, op, ": activation must be 0..4, got ", activation);
  const auto act = static_cast<ConvActivation>(activation);
  const Tensor x = x_in.contiguous(), w = taps_first(weight);
  const Tensor b = bias.has_value() ? bias->contiguous() : Tensor();
  const bool keep_pre = train && needs_preactivation(act);
  Tensor y = at::empty(output_shape(g), x.options());
  Tensor pre = at::empty(keep_pre ? output_shape(g) : std::vector<int64_t>{0}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fusedrnn_conv1d", [&] {
    using T = scalar_t;
    const T* xp = x.data_ptr<T>();
    const T* wp = w.data_ptr<T>();
    const T* bp = b.defined() ? b.data_ptr<T>() : nullptr;
    T* yp = y.data_ptr<T>();
    T* prep = keep_pre ? pre.data_ptr<T>() : nullptr;
    const int64_t Ci = g.in_channels, Co = g.out_channels;
    const int64_t xs = g.x_step_stride(), ys = g.y_step_stride();
    for_each_sequence(g.batch, [&](int64_t n) {
      T* out = yp + n * g.y_batch_stride();
      for (int64_t t = 0; t < g.out_steps; ++t) {
        T* row = out + t * ys;
        for (int64_t c = 0; c < Co; ++c) row[c] = bp ? bp[c] : T(0);
      }
      for (int64_t k = 0; k < g.kernel; ++k) {
        const int64_t t0 = g.first_step(k), t1 = g.last_step(k);
        if (t1 <= t0) continue;
        const T* in = xp + n * g.x_batch_stride() + g.input_step(t0, k) * xs;
        gemm<T>(false, true, t1 - t0, Co, Ci, T(1), in, g.stride * xs, wp + k * Co * Ci, Ci,
                T(1), out + t0 * ys, ys);
      }
      for (int64_t t = 0; t < g.out_steps; ++t) {
        T* row = out + t * ys;
        if (prep) {
          T* keep = prep + n * g.y_batch_stride() + t * ys;
          for (int64_t c = 0; c < Co; ++c) keep[c] = row[c];
        }
        for (int64_t c = 0; c < Co; ++c) row[c] = activate(act, row[c]);
      }
    });
  });
  return {y, pre};
}

std::tuple<Tensor, Tensor, Tensor> conv1d_backward(
    const Tensor& grad_y, const Tensor& x_in, const Tensor& weight, const Tensor& y_in,
    const Tensor& pre_in, int64_t stride, int64_t dilation, int64_t pad_left, int64_t pad_right,
    int64_t activation, bool batch_first, bool has_bias) {
  const char* op = "fusedrnn::conv1d_backward";
  check_cpu(op, x_in);
  const Conv1dGeometry g = check_conv1d(op, x_in, weight, std::nullopt, stride, dilation,
                                        pad_left, pad_right, batch_first);
  const auto act = static_cast<ConvActivation>(activation);
  TORCH_CHECK(grad_y.sizes() == at::IntArrayRef(output_shape(g)), op, ": grad_y must have shape ",
              at::IntArrayRef(output_shape(g)), ", got ", grad_y.sizes());
  TORCH_CHECK(!needs_preactivation(act) || pre_in.numel() == grad_y.numel(), op,
              ": this activation needs the preactivation saved by conv1d(train=True)");
  const Tensor x = x_in.contiguous(), w = taps_first(weight), y = y_in.contiguous();
  const Tensor pre = pre_in.contiguous(), dy = grad_y.contiguous();
  Tensor dx = at::zeros(x.sizes(), x.options());
  Tensor dw_taps = at::empty(w.sizes(), x.options());
  Tensor db = at::empty({has_bias ? g.out_channels : 0}, x.options());
  Tensor da = at::empty(y.sizes(), x.options());  // dL/d(pre-activation)
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fusedrnn_conv1d_backward", [&] {
    using T = scalar_t;
    const int64_t Ci = g.in_channels, Co = g.out_channels, n_out = y.numel();
    const T *dyp = dy.data_ptr<T>(), *yp = y.data_ptr<T>();
    const T* prep = needs_preactivation(act) ? pre.data_ptr<T>() : nullptr;
    T* dap = da.data_ptr<T>();
    at::parallel_for(0, n_out, 4096, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        dap[i] = activation_backward(act, dyp[i], yp[i], prep ? prep[i] : T(0));
      }
    });
    // y is [rows, Co] in either layout, so the bias gradient is a plain column sum
    if (has_bias) column_sum(dap, n_out / Co, Co, 0, Co, db.data_ptr<T>());

    const T* xp = x.data_ptr<T>();
    const T* wp = w.data_ptr<T>();
    T* dxp = dx.data_ptr<T>();
    T* dwp = dw_taps.data_ptr<T>();
    const int64_t xs = g.x_step_stride(), ys = g.y_step_stride();
    // dx: each sequence scatters its taps back, tap after tap (overlapping taps add up in order)
    for_each_sequence(g.batch, [&](int64_t n) {
      for (int64_t k = 0; k < g.kernel; ++k) {
        const int64_t t0 = g.first_step(k), t1 = g.last_step(k);
        if (t1 <= t0) continue;
        gemm<T>(false, false, t1 - t0, Ci, Co, T(1), dap + n * g.y_batch_stride() + t0 * ys, ys,
                wp + k * Co * Ci, Ci, T(1),
                dxp + n * g.x_batch_stride() + g.input_step(t0, k) * xs, g.stride * xs);
      }
    });
    // dW_k = Σ_n da_nᵀ · x_n(shifted by tap k): sequences summed in order, so deterministic
    at::parallel_for(0, g.kernel, 1, [&](int64_t k0, int64_t k1) {
      for (int64_t k = k0; k < k1; ++k) {
        T* dwk = dwp + k * Co * Ci;
        for (int64_t i = 0; i < Co * Ci; ++i) dwk[i] = T(0);
        const int64_t t0 = g.first_step(k), t1 = g.last_step(k);
        if (t1 <= t0) continue;
        for (int64_t n = 0; n < g.batch; ++n) {
          gemm<T>(true, false, Co, Ci, t1 - t0, T(1), dap + n * g.y_batch_stride() + t0 * ys, ys,
                  xp + n * g.x_batch_stride() + g.input_step(t0, k) * xs, g.stride * xs, T(1),
                  dwk, Ci);
        }
      }
    });
  });
  return {dx, dw_taps.permute({1, 2, 0}).contiguous(), db};
}

}  // namespace

TORCH_LIBRARY_IMPL(fusedrnn, CPU, m) {
  m.impl("conv1d", &conv1d);
  m.impl("conv1d_backward", &conv1d_backward);
}

}  // namespace cpu
}  // namespace fusedrnn
