// CPU kernels of the fused Conv1D on channels-last sequences: no permutes and no copies of the
// whole input; see the comment on kBlockSteps for how a block of outputs is computed.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/zeros.h>

#include <cstring>
#include <vector>
#include <torch/library.h>

#include "../cells/conv_activation.h"
#include "../cells/simd_sum.h"
#include "../conv1d_geometry.h"
#include "gemm.h"
#include "vectorize.h"
#include "reductions.h"

namespace fusedrnn {
namespace cpu {
namespace {

using at::Tensor;

// Sequences are processed in blocks of output steps: the block's input windows are gathered
// into a [rows, K·C_in] matrix (zeros where a tap falls into the padding) and one GEMM against
// the weight as [C_out, K·C_in] gives the block's outputs, finished in the same cache-warm pass
// with bias and activation. With a tiny K·C_in (a univariate series) a direct loop over taps and
// channels, vectorised across output channels, beats a GEMM with such a short inner dimension.
constexpr int64_t kBlockSteps = 128;
constexpr int64_t kDirectMaxTaps = 16;  // K·C_in up to which the direct loop is used
// Weight gradients are summed over this many fixed groups of sequences, then over the groups in
// order: deterministic whatever the thread count, with bounded scratch memory.
constexpr int64_t kWeightGradGroups = 16;

// Runs f(b0, b1) over the batch: in parallel over sequences when there are enough to share out
// (each one's GEMMs then run single-threaded), else in one call with the BLAS's own threads.
template <typename F>
void over_sequences(int64_t batch, const F& f) {
  if (batch >= at::get_num_threads() && batch > 1) {
    at::parallel_for(0, batch, 1, f);
  } else {
    f(0, batch);
  }
}

std::vector<int64_t> output_shape(const Conv1dGeometry& g) {
  return g.batch_first ? std::vector<int64_t>{g.batch, g.out_steps, g.out_channels}
                       : std::vector<int64_t>{g.out_steps, g.batch, g.out_channels};
}

void check_cpu(const char* op, const Tensor& x) {
  TORCH_CHECK(x.device().is_cpu(), op, ": expected CPU tensors, got x on ", x.device());
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, op,
              ": x must be float32 or float64, got ", x.scalar_type());
}

// windows[r, k·C_in + c] = x[n, input_step(t0 + r, k), c], or 0 in the padding
template <typename T>
void gather_windows(const Conv1dGeometry& g, const T* x, int64_t n, int64_t t0, int64_t rows,
                    T* windows) {
  const int64_t Ci = g.in_channels, KC = g.kernel * Ci;
  const T* xs = x + n * g.x_batch_stride();
  for (int64_t r = 0; r < rows; ++r) {
    T* dst = windows + r * KC;
    for (int64_t k = 0; k < g.kernel; ++k) {
      const int64_t s = g.input_step(t0 + r, k);
      // plain loops: with one or a few channels a memcpy call costs more than the copy
      T* out = dst + k * Ci;
      if (s >= 0 && s < g.steps) {
        const T* in = xs + s * g.x_step_stride();
        for (int64_t c = 0; c < Ci; ++c) out[c] = in[c];
      } else {
        for (int64_t c = 0; c < Ci; ++c) out[c] = T(0);
      }
    }
  }
}

// dx[n, input_step(t0 + r, k), c] += windows_grad[r, k·C_in + c]
template <typename T>
void scatter_windows(const Conv1dGeometry& g, const T* windows_grad, int64_t n, int64_t t0,
                     int64_t rows, T* dx) {
  const int64_t Ci = g.in_channels, KC = g.kernel * Ci;
  T* xs = dx + n * g.x_batch_stride();
  for (int64_t r = 0; r < rows; ++r) {
    const T* src = windows_grad + r * KC;
    for (int64_t k = 0; k < g.kernel; ++k) {
      const int64_t s = g.input_step(t0 + r, k);
      if (s < 0 || s >= g.steps) continue;
      T* dst = xs + s * g.x_step_stride();
      for (int64_t c = 0; c < Ci; ++c) dst[c] += src[k * Ci + c];
    }
  }
}

template <ConvActivation kAct, typename T>
void finish_rows(const Conv1dGeometry& g, const T* bias, T* y, T* pre, int64_t n, int64_t t0,
                 int64_t rows, bool bias_added) {
  const int64_t Co = g.out_channels;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t at = n * g.y_batch_stride() + (t0 + r) * g.y_step_stride();
    T* row = y + at;
    if (bias && !bias_added) {
      for (int64_t c = 0; c < Co; ++c) row[c] += bias[c];
    }
    if (pre) std::memcpy(pre + at, row, sizeof(T) * Co);
    for (int64_t c = 0; c < Co; ++c) row[c] = activate<kAct>(row[c]);
  }
}

// y rows of one sequence by the direct loop; w_t is the weight as [K, C_in, C_out]
template <typename T>
void direct_rows(const Conv1dGeometry& g, const T* x, const T* w_t, const T* bias, T* y,
                 int64_t n, int64_t t0, int64_t rows) {
  const int64_t Ci = g.in_channels, Co = g.out_channels;
  const T* xs = x + n * g.x_batch_stride();
  for (int64_t r = 0; r < rows; ++r) {
    T* row = y + n * g.y_batch_stride() + (t0 + r) * g.y_step_stride();
    for (int64_t c = 0; c < Co; ++c) row[c] = bias ? bias[c] : T(0);
    for (int64_t k = 0; k < g.kernel; ++k) {
      const int64_t s = g.input_step(t0 + r, k);
      if (s < 0 || s >= g.steps) continue;
      for (int64_t ci = 0; ci < Ci; ++ci) {
        const T v = xs[s * g.x_step_stride() + ci];
        const T* w = w_t + (k * Ci + ci) * Co;
        FUSEDRNN_INDEPENDENT_ITERATIONS
        for (int64_t c = 0; c < Co; ++c) row[c] += v * w[c];
      }
    }
  }
}

// The backward of direct_rows for one block of gathered windows: dw_t[kc, :] += Σ_r
// windows[r, kc]·da[r, :] and windows_grad[r, kc] = da[r, :]·w_t[kc, :], both vectorised across
// output channels; w_t and dw_t are [K·C_in, C_out]. With K·C_in this small, GEMM calls cost more
// in overhead than the arithmetic.
template <typename T>
void direct_backward_rows(const Conv1dGeometry& g, const T* da_rows, int64_t ld_da, const T* w_t,
                          const T* windows, int64_t rows, T* dw_t, T* windows_grad) {
  const int64_t Co = g.out_channels, KC = g.kernel * g.in_channels;
  for (int64_t r = 0; r < rows; ++r) {
    const T* da = da_rows + r * ld_da;
    for (int64_t kc = 0; kc < KC; ++kc) {
      const T v = windows[r * KC + kc];
      const T* w = w_t + kc * Co;
      T* dw = dw_t + kc * Co;
      T dot = T(0);
      FUSEDRNN_SIMD_SUM(dot)
      for (int64_t c = 0; c < Co; ++c) {
        dw[c] += v * da[c];
        dot += da[c] * w[c];
      }
      windows_grad[r * KC + kc] = dot;
    }
  }
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
  const int64_t KC = g.kernel * g.in_channels;
  const bool direct = KC <= kDirectMaxTaps;
  const Tensor x = x_in.contiguous();
  // [C_out, K·C_in] for the GEMM, [K·C_in, C_out] for the direct loop
  const Tensor w = direct ? weight.permute({2, 1, 0}).contiguous()
                          : weight.permute({0, 2, 1}).contiguous();
  const Tensor b = bias.has_value() ? bias->contiguous() : Tensor();
  const bool keep_pre = train && needs_preactivation(act);
  Tensor y = at::empty(output_shape(g), x.options());
  Tensor pre = at::empty(keep_pre ? output_shape(g) : std::vector<int64_t>{0}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fusedrnn_conv1d", [&] {
    using T = scalar_t;
    const T *xp = x.data_ptr<T>(), *wp = w.data_ptr<T>();
    const T* bp = b.defined() ? b.data_ptr<T>() : nullptr;
    T* yp = y.data_ptr<T>();
    T* prep = keep_pre ? pre.data_ptr<T>() : nullptr;
    over_sequences(g.batch, [&](int64_t n0, int64_t n1) {
      std::vector<T> windows(direct ? 0 : kBlockSteps * KC);
      for (int64_t n = n0; n < n1; ++n) {
        for (int64_t t0 = 0; t0 < g.out_steps; t0 += kBlockSteps) {
          const int64_t rows = std::min(kBlockSteps, g.out_steps - t0);
          if (direct) {
            direct_rows(g, xp, wp, bp, yp, n, t0, rows);
          } else {
            gather_windows(g, xp, n, t0, rows, windows.data());
            gemm<T>(false, true, rows, g.out_channels, KC, T(1), windows.data(), KC, wp, KC, T(0),
                    yp + n * g.y_batch_stride() + t0 * g.y_step_stride(), g.y_step_stride());
          }
          dispatch_activation(act, [&](auto tag) {
            finish_rows<decltype(tag)::value>(g, bp, yp, prep, n, t0, rows, direct);
          });
        }
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
  const int64_t Co = g.out_channels, KC = g.kernel * g.in_channels;
  const bool direct = KC <= kDirectMaxTaps;
  // [C_out, K·C_in] for the GEMMs, [K·C_in, C_out] for the direct loop (as in forward)
  const Tensor x = x_in.contiguous();
  const Tensor w = direct ? weight.permute({2, 1, 0}).contiguous()
                          : weight.permute({0, 2, 1}).contiguous();
  const Tensor y = y_in.contiguous(), pre = pre_in.contiguous(), dy = grad_y.contiguous();
  Tensor dx = at::zeros(x.sizes(), x.options());
  Tensor db = at::empty({has_bias ? Co : 0}, x.options());
  Tensor da = at::empty(y.sizes(), x.options());  // dL/d(pre-activation)
  const int64_t groups = std::min(kWeightGradGroups, std::max<int64_t>(g.batch, 1));
  Tensor dw_groups = at::zeros({groups, Co, KC}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fusedrnn_conv1d_backward", [&] {
    using T = scalar_t;
    const int64_t n_out = y.numel();
    const T *dyp = dy.data_ptr<T>(), *yp = y.data_ptr<T>();
    const T* prep = needs_preactivation(act) ? pre.data_ptr<T>() : nullptr;
    T* dap = da.data_ptr<T>();
    dispatch_activation(act, [&](auto tag) {
      at::parallel_for(0, n_out, 4096, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          dap[i] = activation_backward<decltype(tag)::value>(dyp[i], yp[i], prep ? prep[i] : T(0));
        }
      });
    });
    // y is [rows, C_out] in either layout, so the bias gradient is a plain column sum
    if (has_bias) column_sum(dap, n_out / Co, Co, 0, Co, db.data_ptr<T>());

    const T *xp = x.data_ptr<T>(), *wp = w.data_ptr<T>();
    T *dxp = dx.data_ptr<T>(), *dwp = dw_groups.data_ptr<T>();
    const int64_t ys = g.y_step_stride();
    // group q owns sequences [q·B/groups, (q+1)·B/groups) and its own weight-gradient slice
    auto run_groups = [&](int64_t q0, int64_t q1) {
      std::vector<T> windows(kBlockSteps * KC), windows_grad(kBlockSteps * KC);
      for (int64_t q = q0; q < q1; ++q) {
        T* dw = dwp + q * Co * KC;  // [C_out, K·C_in], or [K·C_in, C_out] when direct
        for (int64_t n = q * g.batch / groups; n < (q + 1) * g.batch / groups; ++n) {
          for (int64_t t0 = 0; t0 < g.out_steps; t0 += kBlockSteps) {
            const int64_t rows = std::min(kBlockSteps, g.out_steps - t0);
            const T* da_rows = dap + n * g.y_batch_stride() + t0 * ys;
            gather_windows(g, xp, n, t0, rows, windows.data());
            if (direct) {
              direct_backward_rows(g, da_rows, ys, wp, windows.data(), rows, dw,
                                   windows_grad.data());
            } else {
              gemm<T>(true, false, Co, KC, rows, T(1), da_rows, ys, windows.data(), KC, T(1), dw,
                      KC);
              gemm<T>(false, false, rows, KC, Co, T(1), da_rows, ys, wp, KC, T(0),
                      windows_grad.data(), KC);
            }
            scatter_windows(g, windows_grad.data(), n, t0, rows, dxp);
          }
        }
      }
    };
    if (groups >= at::get_num_threads() && groups > 1) {
      at::parallel_for(0, groups, 1, run_groups);
    } else {
      run_groups(0, groups);
    }
  });
  // Σ over groups in order, then back to nn.Conv1d's [C_out, C_in, K]
  const Tensor dw = direct
      ? dw_groups.sum(0).view({g.kernel, g.in_channels, Co}).permute({2, 1, 0})
      : dw_groups.sum(0).view({Co, g.kernel, g.in_channels}).permute({0, 2, 1});
  return {dx, dw.contiguous(), db};
}

}  // namespace

TORCH_LIBRARY_IMPL(fusedrnn, CPU, m) {
  m.impl("conv1d", &conv1d);
  m.impl("conv1d_backward", &conv1d_backward);
}

}  // namespace cpu
}  // namespace fusedrnn
