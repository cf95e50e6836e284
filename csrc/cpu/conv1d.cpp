// CPU kernels of the fused Conv1D on channels-last sequences: no permutes and no copies of the
// whole input; see the comment above kBlockSteps for how a block of outputs is computed.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/zeros.h>

#include <cstring>
#include <type_traits>
#include <vector>
#include <torch/library.h>

#include "../cells/conv_activation.h"
#include "../cells/simd_sum.h"  // FUSEDRNN_PRAGMA
#include "../conv1d_geometry.h"
#include "forced_choice.h"
#include "gemm.h"
#include "lanes.h"
#include "vectorize.h"
#include "weight_gradient_products.h"

namespace fusedrnn {
namespace cpu {
namespace {

using at::Tensor;

// Sequences are processed in blocks of output steps: the block's input windows are gathered
// into a [rows, K·C_in] matrix (zeros where a tap falls into the padding) and one GEMM against
// the weight as [C_out, K·C_in] gives the block's outputs, finished in the same cache-warm pass
// with bias and activation. With a tiny K·C_in (a univariate series) a direct loop over taps and
// channels, vectorised across output channels, beats a GEMM with such a short inner dimension.
// Output steps per block: 128 for the direct loops; 512 for the GEMMs, whose per-block products
// (rows × C_out × K·C_in) then run at the BLAS's better rate (measured at C_in 64, C_out 32-128,
// K 3-4 in one process against blocks of 128: inference 1.14-1.26x, training 1.11-1.17x faster;
// 1024 gained no more).
constexpr int64_t kBlockSteps = 128, kGemmBlockSteps = 512;
inline int64_t block_steps(bool direct) { return direct ? kBlockSteps : kGemmBlockSteps; }
// K·C_in up to which the direct loops are used. Measured at B 32, T 1000, C_in 5, K 4-5 (K·C_in
// 20-25) in one process against the GEMMs: forward 1.36-1.75x, training step 1.11-1.26x faster.
constexpr int64_t kDirectMaxTaps = 2 * kLanes;

// Window rows as gathered: padded to one or two 16-lane vectors for the direct loops (a row of
// taps is whole vectors, zeros past K·C_in), K·C_in for the GEMMs.
inline int64_t window_width(int64_t KC) {
  return KC > kDirectMaxTaps ? KC : (KC <= kLanes ? kLanes : 2 * kLanes);
}
// Weight gradients are summed over this many fixed groups of sequences, then over the groups in
// order: deterministic whatever the thread count, with bounded scratch memory.
constexpr int64_t kWeightGradGroups = 16, kMinGroupRows = 256, kMinGroups = 4;
constexpr int64_t kOnePassMaxOutChannels = 128;

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

void check_cpu(const char* op, const Tensor& x) {
  TORCH_CHECK(x.device().is_cpu(), op, ": expected CPU tensors, got x on ", x.device());
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, op,
              ": x must be float32 or float64, got ", x.scalar_type());
}

// windows[r, k·C_in + c] = x[n, input_step(t0 + r, k), c], or 0 in the padding; rows are ld
// apart (columns from K·C_in to ld are left as they are)
template <typename T>
void gather_windows(const Conv1dGeometry& g, const T* x, int64_t n, int64_t t0, int64_t rows,
                    T* windows, int64_t ld) {
  const int64_t Ci = g.in_channels, K = g.kernel, xstep = g.x_step_stride();
  const int64_t tap_step = g.dilation * xstep, span = g.dilation * (K - 1);
  const T* xs = x + n * g.x_batch_stride();
  for (int64_t r = 0; r < rows; ++r) {
    T* dst = windows + r * ld;
    const int64_t s0 = g.input_step(t0 + r, 0);
    if (s0 >= 0 && s0 + span < g.steps) {  // every tap inside the sequence: no checks
      const T* in = xs + s0 * xstep;
      if (Ci == 1) {  // a univariate series: one value per tap
        for (int64_t k = 0; k < K; ++k) dst[k] = in[k * tap_step];
      } else {
        // plain loops: with a few channels a memcpy call costs more than the copy
        for (int64_t k = 0; k < K; ++k) {
          for (int64_t c = 0; c < Ci; ++c) dst[k * Ci + c] = in[k * tap_step + c];
        }
      }
      continue;
    }
    for (int64_t k = 0; k < K; ++k) {
      const int64_t s = s0 + k * g.dilation;
      T* out = dst + k * Ci;
      if (s >= 0 && s < g.steps) {
        const T* in = xs + s * xstep;
        for (int64_t c = 0; c < Ci; ++c) out[c] = in[c];
      } else {
        for (int64_t c = 0; c < Ci; ++c) out[c] = T(0);
      }
    }
  }
}

// dx[n, input_step(t0 + r, k), c] += windows_grad[r, k·C_in + c]; rows are ld apart
template <typename T>
void scatter_windows(const Conv1dGeometry& g, const T* windows_grad, int64_t n, int64_t t0,
                     int64_t rows, T* dx, int64_t ld) {
  const int64_t Ci = g.in_channels;
  T* xs = dx + n * g.x_batch_stride();
  for (int64_t r = 0; r < rows; ++r) {
    const T* src = windows_grad + r * ld;
    for (int64_t k = 0; k < g.kernel; ++k) {
      const int64_t s = g.input_step(t0 + r, k);
      if (s < 0 || s >= g.steps) continue;
      T* dst = xs + s * g.x_step_stride();
      for (int64_t c = 0; c < Ci; ++c) dst[c] += src[k * Ci + c];
    }
  }
}

// The GEMM path's forward runs over y's rows in memory order, q = n·T_out + t (batch_first) or
// t·B + n (time-major), in blocks that may span sequences: with short sequences and wide
// channels a block per sequence made each product a few rows against the whole weight (at
// B 128, T_out 13, C 512, K 3 the layer ran at 0.85x nn.Conv1d's speed). Rows [q0, q0 + rows)
// of the windows, gathered run by run of one sequence's consecutive steps.
template <typename T>
void gather_flat_windows(const Conv1dGeometry& g, const T* x, int64_t q0, int64_t rows,
                         T* windows, int64_t ld) {
  for (int64_t r = 0; r < rows;) {
    const int64_t q = q0 + r;
    const int64_t n = g.batch_first ? q / g.out_steps : q % g.batch;
    const int64_t t = g.batch_first ? q % g.out_steps : q / g.batch;
    const int64_t run = g.batch_first ? std::min(rows - r, g.out_steps - t) : 1;
    gather_windows(g, x, n, t, run, windows + r * ld, ld);
    r += run;
  }
}

// bias, saved preactivation and activation over `rows` rows of y in memory order (pre likewise)
template <ConvActivation kAct, typename T>
void finish_flat_rows(int64_t Co, const T* bias, T* y, T* pre, int64_t rows) {
  for (int64_t r = 0; r < rows; ++r) {
    T* row = y + r * Co;
    if (bias) {
      for (int64_t c = 0; c < Co; ++c) row[c] += bias[c];
    }
    if (pre) std::memcpy(pre + r * Co, row, sizeof(T) * Co);
    FUSEDRNN_PRAGMA(omp simd)
    for (int64_t c = 0; c < Co; ++c) row[c] = activate<kAct>(row[c]);
  }
}

// A backward block's rows, walked sequence by sequence: each segment is steps [t0, t0 + rows) of
// sequence n, at row `offset` of the block's packed buffers.
struct Segment {
  int64_t n, t0, rows, offset;
};

// The next block of up to max_rows rows from (n, t) on, within sequences [n, n_end): segments
// filled into `out`, (n, t) advanced past them.
inline void next_block(const Conv1dGeometry& g, int64_t max_rows, int64_t n_end, int64_t& n,
                       int64_t& t, std::vector<Segment>& out) {
  out.clear();
  int64_t rows = 0;
  while (rows < max_rows && n < n_end) {
    const int64_t take = std::min(max_rows - rows, g.out_steps - t);
    if (take > 0) out.push_back({n, t, take, rows});
    rows += take;
    t += take;
    if (t >= g.out_steps) {
      ++n;
      t = 0;
    }
  }
}

// R consecutive output rows (ys apart) by the direct loop, finished in registers: bias, the
// saved preactivation, activation. windows is [R, P] (P ≥ K·C_in), w_t the weight as
// [K·C_in, C_out]. Channels go in chunks of 16, so each weight load serves R rows and each
// output element is stored once, instead of once per tap.
template <ConvActivation kAct, int64_t R, typename T>
void direct_block(int64_t KC, int64_t P, int64_t Co, const T* w_t, const T* bias, const T* windows,
                  T* y, T* pre, int64_t ys) {
  constexpr int64_t V = kLanes;
  int64_t c0 = 0;
  for (; c0 + V <= Co; c0 += V) {
    const Lanes<T> b = bias ? load_lanes(bias + c0) : Lanes<T>{};
    Lanes<T> acc[R];
    for (int64_t i = 0; i < R; ++i) acc[i] = b;
    for (int64_t kc = 0; kc < KC; ++kc) {
      const Lanes<T> wk = load_lanes(w_t + kc * Co + c0);
      for (int64_t i = 0; i < R; ++i) acc[i] += windows[i * P + kc] * wk;
    }
    for (int64_t i = 0; i < R; ++i) {
      if (pre) store_lanes(pre + i * ys + c0, acc[i]);
      T* yr = y + i * ys + c0;
      if constexpr (kAct == ConvActivation::kIdentity) {
        store_lanes(yr, acc[i]);
      } else if constexpr (kAct == ConvActivation::kRelu) {
        // math::relu on the whole vector: the lane loop below went through the stack
        const Lanes<T> zero{};
        store_lanes(yr, acc[i] > zero ? acc[i] : zero);
      } else {
        T a[V];
        store_lanes(a, acc[i]);
        FUSEDRNN_PRAGMA(omp simd)  // else GCC unrolls the 16 lanes into scalar selects
        for (int64_t j = 0; j < V; ++j) yr[j] = activate<kAct>(a[j]);
      }
    }
  }
  for (int64_t c = c0; c < Co; ++c) {  // the last channels when C_out is not a multiple of 16
    for (int64_t i = 0; i < R; ++i) {
      T a = bias ? bias[c] : T(0);
      for (int64_t kc = 0; kc < KC; ++kc) a += windows[i * P + kc] * w_t[kc * Co + c];
      if (pre) pre[i * ys + c] = a;
      y[i * ys + c] = activate<kAct>(a);
    }
  }
}

// the rows [t0, t0 + rows) of sequence n by the direct loop; windows as gathered, rows P apart
template <ConvActivation kAct, typename T>
void direct_rows(const Conv1dGeometry& g, int64_t P, const T* w_t, const T* bias, const T* windows,
                 T* y, T* pre, int64_t n, int64_t t0, int64_t rows) {
  constexpr int64_t R = 4;
  const int64_t KC = g.kernel * g.in_channels, Co = g.out_channels, ys = g.y_step_stride();
  const int64_t at = n * g.y_batch_stride() + t0 * ys;
  T* yr = y + at;
  T* pr = pre ? pre + at : nullptr;
  int64_t r = 0;
  for (; r + R <= rows; r += R) {
    direct_block<kAct, R>(KC, P, Co, w_t, bias, windows + r * P, yr + r * ys,
                          pr ? pr + r * ys : nullptr, ys);
  }
  for (; r < rows; ++r) {
    direct_block<kAct, 1>(KC, P, Co, w_t, bias, windows + r * P, yr + r * ys,
                          pr ? pr + r * ys : nullptr, ys);
  }
}

// The backward of direct_rows for R rows of one block, with the taps padded to P = 16·NV
// (weights and windows zero beyond K·C_in): for each output channel c,
// windows_grad[r, :] += da[r, c]·w[c, :] and dw[c, :] += Σ_r da[r, c]·windows[r, :]. Both are
// 16-lane vector updates, so nothing needs a horizontal sum; R rows share each load and store
// of dw[c, :], and their windows and gradients stay in registers across the channel loop.
template <int64_t R, int64_t NV, bool kWindowsGrad, bool kWeightGrad, typename T>
void direct_backward_block(int64_t Co, const T* da, const T* w, const T* windows, T* dw,
                           T* windows_grad) {
  constexpr int64_t P = kLanes * NV;
  Lanes<T> win[R][NV], acc[R][NV];
  for (int64_t i = 0; i < R; ++i) {
    for (int64_t v = 0; v < NV; ++v) {
      win[i][v] = load_lanes(windows + i * P + v * kLanes);
      acc[i][v] = Lanes<T>{};
    }
  }
  for (int64_t c = 0; c < Co; ++c) {
    Lanes<T> wc[NV], dwc[NV];
    for (int64_t v = 0; v < NV; ++v) {
      wc[v] = load_lanes(w + c * P + v * kLanes);
      if (kWeightGrad) dwc[v] = load_lanes(dw + c * P + v * kLanes);
    }
    for (int64_t i = 0; i < R; ++i) {
      const T grad = da[i * Co + c];
      for (int64_t v = 0; v < NV; ++v) {
        if (kWindowsGrad) acc[i][v] += grad * wc[v];
        if (kWeightGrad) dwc[v] += grad * win[i][v];
      }
    }
    if (kWeightGrad) {
      for (int64_t v = 0; v < NV; ++v) store_lanes(dw + c * P + v * kLanes, dwc[v]);
    }
  }
  if (kWindowsGrad) {
    for (int64_t i = 0; i < R; ++i) {
      for (int64_t v = 0; v < NV; ++v) store_lanes(windows_grad + i * P + v * kLanes, acc[i][v]);
    }
  }
}

// direct_backward_block over a block's rows: da is [rows, C_out], windows and windows_grad
// [rows, P], w and dw [C_out, P]. kWindowsGrad: the input gradient is wanted; kWeightGrad: dw is
// taken here (else by weight_grad_by_channels). With K·C_in this small, GEMM calls cost more in
// overhead than the arithmetic.
template <int64_t NV, bool kWindowsGrad, bool kWeightGrad, typename T>
void direct_backward_rows_as(int64_t Co, const T* da, const T* w, const T* windows,
                             int64_t rows, T* dw, T* windows_grad) {
  constexpr int64_t P = kLanes * NV, R = 4;
  int64_t r = 0;
  for (; r + R <= rows; r += R) {
    direct_backward_block<R, NV, kWindowsGrad, kWeightGrad>(
        Co, da + r * Co, w, windows + r * P, dw, kWindowsGrad ? windows_grad + r * P : nullptr);
  }
  for (; r < rows; ++r) {
    direct_backward_block<1, NV, kWindowsGrad, kWeightGrad>(
        Co, da + r * Co, w, windows + r * P, dw, kWindowsGrad ? windows_grad + r * P : nullptr);
  }
}

// Up to this many taps (K·C_in) the weight gradient runs across output channels instead of taps
// (weight_grad_by_channels), where the tap-vectorised block spends 16 lanes on K·C_in useful
// ones; the window gradients, when wanted, keep that block. With the other backward changes, a
// training step at C_in 1, C_out 32, K 2-5 ran 1.35-1.6x faster (alternating processes).
constexpr int64_t kChannelMajorMaxTaps = 8;

// dw[c, kc] += Σ_r da[r, c]·windows[r, kc] for a block's rows, vectorised across output channels:
// per row and tap, one FMA per 16 channels with the window value broadcast, where the
// tap-vectorised block needs one per channel. Four rows go at once into separate accumulators so
// the FMA chains overlap. da is [rows, C_out], windows [rows, ld], dw [C_out, ld].
template <int64_t CV, typename T>
void weight_grad_channel_chunk(int64_t KC, int64_t ld, int64_t Co, const T* da, const T* windows,
                               int64_t rows, int64_t c0, T* dw) {
  constexpr int64_t V = kLanes, U = 4;
  for (int64_t kc = 0; kc < KC; ++kc) {
    Lanes<T> acc[U][CV] = {};
    int64_t r = 0;
    for (; r + U <= rows; r += U) {
      for (int64_t u = 0; u < U; ++u) {
        const T win = windows[(r + u) * ld + kc];
        for (int64_t v = 0; v < CV; ++v) {
          acc[u][v] += win * load_lanes(da + (r + u) * Co + c0 + v * V);
        }
      }
    }
    for (; r < rows; ++r) {
      const T win = windows[r * ld + kc];
      for (int64_t v = 0; v < CV; ++v) acc[0][v] += win * load_lanes(da + r * Co + c0 + v * V);
    }
    for (int64_t v = 0; v < CV; ++v) {
      T sum[V];
      store_lanes(sum, (acc[0][v] + acc[1][v]) + (acc[2][v] + acc[3][v]));
      for (int64_t j = 0; j < V; ++j) dw[(c0 + v * V + j) * ld + kc] += sum[j];
    }
  }
}

template <typename T>
void weight_grad_by_channels(int64_t KC, int64_t ld, int64_t Co, const T* da, const T* windows,
                             int64_t rows, T* dw) {
  constexpr int64_t V = kLanes;
  int64_t c0 = 0;
  for (; c0 + 2 * V <= Co; c0 += 2 * V) {
    weight_grad_channel_chunk<2>(KC, ld, Co, da, windows, rows, c0, dw);
  }
  if (c0 + V <= Co) {
    weight_grad_channel_chunk<1>(KC, ld, Co, da, windows, rows, c0, dw);
    c0 += V;
  }
  for (int64_t c = c0; c < Co; ++c) {  // the last channels when C_out is not a multiple of 16
    for (int64_t kc = 0; kc < KC; ++kc) {
      T sum = T(0);
      for (int64_t r = 0; r < rows; ++r) sum += da[r * Co + c] * windows[r * ld + kc];
      dw[c * ld + kc] += sum;
    }
  }
}

// P: the padded window width, 16 or 32 (window_width); dw or windows_grad may be null
template <int64_t NV, typename T>
void direct_backward_rows_nv(int64_t Co, const T* da, const T* w, const T* windows, int64_t rows,
                             T* dw, T* windows_grad) {
  if (dw && windows_grad) {
    direct_backward_rows_as<NV, true, true>(Co, da, w, windows, rows, dw, windows_grad);
  } else if (dw) {
    direct_backward_rows_as<NV, false, true>(Co, da, w, windows, rows, dw, windows_grad);
  } else if (windows_grad) {
    direct_backward_rows_as<NV, true, false>(Co, da, w, windows, rows, dw, windows_grad);
  }
}

template <typename T>
void direct_backward_rows(int64_t P, int64_t Co, const T* da, const T* w, const T* windows,
                          int64_t rows, T* dw, T* windows_grad) {
  if (P == 2 * kLanes) {
    return direct_backward_rows_nv<2>(Co, da, w, windows, rows, dw, windows_grad);
  }
  direct_backward_rows_nv<1>(Co, da, w, windows, rows, dw, windows_grad);
}

// db[c] += Σ_r da[r, c] over a block's rows, in vector accumulators: adding each row into db in
// memory made every row wait for the previous row's store.
template <typename T>
void column_sums(const T* da, int64_t rows, int64_t Co, T* db) {
  constexpr int64_t V = kLanes, U = 4;
  int64_t c0 = 0;
  for (; c0 + V <= Co; c0 += V) {
    Lanes<T> acc[U] = {};
    int64_t r = 0;
    for (; r + U <= rows; r += U) {
      for (int64_t u = 0; u < U; ++u) acc[u] += load_lanes(da + (r + u) * Co + c0);
    }
    for (; r < rows; ++r) acc[0] += load_lanes(da + r * Co + c0);
    store_lanes(db + c0, load_lanes(db + c0) + ((acc[0] + acc[1]) + (acc[2] + acc[3])));
  }
  for (int64_t c = c0; c < Co; ++c) {
    T sum = T(0);
    for (int64_t r = 0; r < rows; ++r) sum += da[r * Co + c];
    db[c] += sum;
  }
}

// dw[C_out, K·C_in] += daᵀ·windows and db += Σ rows of da over a block's rows, in one pass
// (weight_gradient_products.h; float only, C_out a multiple of 16)
template <typename T>
void weight_and_bias_grads_in_one_pass(int64_t rows, int64_t Co, int64_t KC, const T* da,
                                       const T* windows, T* dw, T* db) {
  if constexpr (std::is_same_v<T, float>) {
    const GradientTerm term{0, Co, windows, KC, KC, dw, KC, db};
    weight_gradient_products(rows, da, Co, &term, 1, 1.0f, 0, gradient_row_units(&term, 1));
  }
}

// The upstream gradient as the backward reads it: any strides, so an expanded gradient (the ones
// of y.sum()) or a view of a larger one is read where it lies instead of being copied whole.
template <typename T>
struct StridedGrad {
  const T* data;
  int64_t batch, step, channel;  // element strides
  const T* row(int64_t n, int64_t t) const { return data + n * batch + t * step; }
};

// da[r, :] = dL/d(pre-activation) of a block's rows (from dy, y and, for gelu, the saved
// preactivation), packed as [rows, C_out]; db[:] += Σ_r da[r, :] when db is given
template <ConvActivation kAct, typename T>
void activation_backward_rows(const Conv1dGeometry& g, const StridedGrad<T>& dy, const T* y,
                              const T* pre, int64_t n, int64_t t0, int64_t rows, T* da, T* db) {
  const int64_t Co = g.out_channels, dc = dy.channel;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t at = n * g.y_batch_stride() + (t0 + r) * g.y_step_stride();
    const T *dyr = dy.row(n, t0 + r), *yr = y + at;
    const T* prer = pre ? pre + at : nullptr;
    T* dar = da + r * Co;
    if (prer) {
      for (int64_t c = 0; c < Co; ++c) {
        dar[c] = activation_backward<kAct>(dyr[c * dc], yr[c], prer[c]);
      }
    } else if (dc == 1) {
      FUSEDRNN_PRAGMA(omp simd)
      for (int64_t c = 0; c < Co; ++c) dar[c] = activation_backward<kAct>(dyr[c], yr[c], T(0));
    } else if (dc == 0) {  // one value for every channel (expanded)
      const T g = dyr[0];
      FUSEDRNN_PRAGMA(omp simd)
      for (int64_t c = 0; c < Co; ++c) dar[c] = activation_backward<kAct>(g, yr[c], T(0));
    } else {
      for (int64_t c = 0; c < Co; ++c) {
        dar[c] = activation_backward<kAct>(dyr[c * dc], yr[c], T(0));
      }
    }
  }
  if (db) column_sums(da, rows, Co, db);
}

std::tuple<Tensor, Tensor> conv1d(const Tensor& x_in, const Tensor& weight,
                                  const std::optional<Tensor>& bias, int64_t stride,
                                  int64_t dilation, int64_t pad_left, int64_t pad_right,
                                  int64_t activation, bool batch_first, bool train) {
  const char* op = "fusedrnn::conv1d";
  check_cpu(op, x_in);
  const Conv1dGeometry g =
      check_conv1d(op, x_in, weight, bias, stride, dilation, pad_left, pad_right, batch_first);
  check_activation(op, activation);
  const auto act = static_cast<ConvActivation>(activation);
  const int64_t KC = g.kernel * g.in_channels;
  const bool direct = KC <= kDirectMaxTaps;
  const int64_t ld = window_width(KC);
  const Tensor x = x_in.contiguous();
  // [C_out, K·C_in] for the GEMM, [K·C_in, C_out] for the direct loop
  const Tensor w = direct ? weight.permute({2, 1, 0}).contiguous()
                          : weight.permute({0, 2, 1}).contiguous();
  const Tensor b = bias.has_value() ? bias->contiguous() : Tensor();
  const bool keep_pre = train && needs_preactivation(act);
  Tensor y = at::empty(g.y_shape(), x.options());
  Tensor pre = at::empty(keep_pre ? g.y_shape() : std::vector<int64_t>{0}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fusedrnn_conv1d", [&] {
    using T = scalar_t;
    const T *xp = x.data_ptr<T>(), *wp = w.data_ptr<T>();
    const T* bp = b.defined() ? b.data_ptr<T>() : nullptr;
    T* yp = y.data_ptr<T>();
    T* prep = keep_pre ? pre.data_ptr<T>() : nullptr;
    if (direct) {
      over_sequences(g.batch, [&](int64_t n0, int64_t n1) {
        // zero-initialised: the padding columns of the windows stay zero
        std::vector<T> windows(kBlockSteps * ld);
        for (int64_t n = n0; n < n1; ++n) {
          for (int64_t t0 = 0; t0 < g.out_steps; t0 += kBlockSteps) {
            const int64_t rows = std::min(kBlockSteps, g.out_steps - t0);
            gather_windows(g, xp, n, t0, rows, windows.data(), ld);
            dispatch_activation(act, [&](auto tag) {
              direct_rows<decltype(tag)::value>(g, ld, wp, bp, windows.data(), yp, prep, n, t0,
                                                rows);
            });
          }
        }
      });
      return;
    }
    // y's rows in memory order, in equal blocks of at most kGemmBlockSteps, as many per thread
    const int64_t N = g.batch * g.out_steps, Co = g.out_channels;
    if (N == 0) return;  // an empty batch or no output steps: y is empty
    const int64_t threads = at::get_num_threads();
    int64_t blocks = (N + kGemmBlockSteps - 1) / kGemmBlockSteps;
    if (blocks > 1 && threads > 1) blocks = (blocks + threads - 1) / threads * threads;
    const int64_t block = std::max<int64_t>(1, (N + blocks - 1) / blocks);
    const auto run = [&](int64_t b0, int64_t b1) {
      std::vector<T> windows(block * KC);
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t q0 = b * block, rows = std::min(block, N - q0);
        if (rows <= 0) continue;
        gather_flat_windows(g, xp, q0, rows, windows.data(), KC);
        gemm<T>(false, true, rows, Co, KC, T(1), windows.data(), KC, wp, KC, T(0),
                yp + q0 * Co, Co);
        dispatch_activation(act, [&](auto tag) {
          finish_flat_rows<decltype(tag)::value>(Co, bp, yp + q0 * Co,
                                                 prep ? prep + q0 * Co : nullptr, rows);
        });
      }
    };
    // each block's GEMM single-threaded where there are blocks for every thread, else the
    // BLAS's own threads
    if (blocks >= threads && threads > 1) {
      at::parallel_for(0, blocks, 1, run);
    } else {
      run(0, blocks);
    }
  });
  return {y, pre};
}

std::tuple<Tensor, Tensor, Tensor> conv1d_backward(
    const Tensor& grad_y, const Tensor& x_in, const Tensor& weight, const Tensor& y_in,
    const Tensor& pre_in, int64_t stride, int64_t dilation, int64_t pad_left, int64_t pad_right,
    int64_t activation, bool batch_first, bool has_bias, bool x_grad) {
  const char* op = "fusedrnn::conv1d_backward";
  check_cpu(op, x_in);
  const Conv1dGeometry g = check_conv1d(op, x_in, weight, std::nullopt, stride, dilation,
                                        pad_left, pad_right, batch_first);
  check_conv1d_backward(op, g, x_in, grad_y, y_in, pre_in, activation);
  const auto act = static_cast<ConvActivation>(activation);
  const int64_t Co = g.out_channels, KC = g.kernel * g.in_channels;
  const bool direct = KC <= kDirectMaxTaps;
  // the weight as [C_out, window row] to match the windows (padded with zeros like them)
  const int64_t ld = window_width(KC);
  const Tensor x = x_in.contiguous();
  Tensor w = weight.permute({0, 2, 1}).reshape({Co, KC});
  w = direct ? at::constant_pad_nd(w, {0, ld - KC}).contiguous() : w.contiguous();
  const Tensor y = y_in.contiguous(), pre = pre_in.contiguous();
  Tensor dx = x_grad ? at::zeros(x.sizes(), x.options()) : at::empty({0}, x.options());
  // Weight and bias gradients per fixed group of sequences, summed over the groups in order. On
  // the GEMM path there are no more groups than one per kMinGroupRows rows (a block spans its
  // group's sequences, so short sequences still make products of a few hundred rows), but at
  // least kMinGroups where the batch allows, for the threads to share; all of it fixed by the
  // shapes, so that results do not depend on the thread count.
  int64_t groups = std::min(kWeightGradGroups, std::max<int64_t>(g.batch, 1));
  if (!direct) {
    groups = std::min(groups, std::max(kMinGroups, g.batch * g.out_steps / kMinGroupRows));
  }
  Tensor dw_groups = at::zeros({groups, Co, ld}, x.options());
  Tensor db_groups = at::zeros({has_bias ? groups : 0, Co}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fusedrnn_conv1d_backward", [&] {
    using T = scalar_t;
    const int64_t batch_dim = batch_first ? 0 : 1;
    const StridedGrad<T> dy{grad_y.const_data_ptr<T>(), grad_y.stride(batch_dim),
                            grad_y.stride(1 - batch_dim), grad_y.stride(2)};
    const T* yp = y.data_ptr<T>();
    const T* prep = needs_preactivation(act) ? pre.data_ptr<T>() : nullptr;
    const T *xp = x.data_ptr<T>(), *wp = w.data_ptr<T>();
    T* dxp = x_grad ? dx.data_ptr<T>() : nullptr;
    T* dwp = dw_groups.data_ptr<T>();
    T* dbp = has_bias ? db_groups.data_ptr<T>() : nullptr;
    // The weight and bias gradients from weight_gradient_products (GEMM path, float, C_out a
    // multiple of 16 and at most kOnePassMaxOutChannels) instead of a BLAS product and a column
    // sum per block. Training steps in one process, alternating, against the BLAS: C_in 64, T
    // 1000, stride 1: C_out 32, K 4-5 1.14x and 1.15x (1.06x with dx), C_out 128, K 4 1.05x
    // (K 5 with dx 1.02x); C_in 5, K 8 1.14x; at C 256 1.01x and C 512 0.97x (B 128, T 25).
    // FUSEDRNN_ONE_PASS_PRODUCTS=0 or 1 turns it off, or on at any C_out that is a multiple of
    // 16; read per call.
    const int forced = forced_choice("FUSEDRNN_ONE_PASS_PRODUCTS");
    const bool one_pass =
        std::is_same_v<T, float> && !direct && weight_gradient_products_apply(Co) &&
        (forced >= 0 ? forced == 1 : Co <= kOnePassMaxOutChannels);
    // Group q owns sequences [q·B/groups, (q+1)·B/groups). Each block of output rows (spanning
    // the group's sequences) is taken from dy to the input gradient while it is in cache:
    // activation backward and bias sum, then the weight and window gradients, then the scatter
    // into dx.
    auto run_groups = [&](int64_t q0, int64_t q1) {
      // zero-initialised: the padding columns of the windows stay zero
      const int64_t block = block_steps(direct);
      std::vector<T> windows(block * ld), windows_grad(block * ld), da(block * Co);
      std::vector<Segment> segments;
      for (int64_t q = q0; q < q1; ++q) {
        T* dw = dwp + q * Co * ld;
        T* db = dbp ? dbp + q * Co : nullptr;
        const int64_t n_end = (q + 1) * g.batch / groups;
        int64_t n = q * g.batch / groups, t = 0;
        while (n < n_end) {
          next_block(g, block, n_end, n, t, segments);
          if (segments.empty()) break;
          int64_t rows = 0;
          for (const Segment& seg : segments) {
            dispatch_activation(act, [&](auto tag) {
              activation_backward_rows<decltype(tag)::value>(g, dy, yp, prep, seg.n, seg.t0,
                                                             seg.rows, da.data() + seg.offset * Co,
                                                             one_pass ? nullptr : db);
            });
            gather_windows(g, xp, seg.n, seg.t0, seg.rows, windows.data() + seg.offset * ld, ld);
            rows += seg.rows;
          }
          if (direct) {
            // few taps: the weight gradient across channels, the windows' as before
            const bool by_channels = KC <= kChannelMajorMaxTaps;
            if (by_channels) {
              weight_grad_by_channels(KC, ld, Co, da.data(), windows.data(), rows, dw);
            }
            direct_backward_rows(ld, Co, da.data(), wp, windows.data(), rows,
                                 by_channels ? nullptr : dw, dxp ? windows_grad.data() : nullptr);
          } else {
            if (one_pass) {
              weight_and_bias_grads_in_one_pass(rows, Co, KC, da.data(), windows.data(), dw, db);
            } else {
              gemm<T>(true, false, Co, KC, rows, T(1), da.data(), Co, windows.data(), KC, T(1),
                      dw, KC);
            }
            if (dxp) {
              gemm<T>(false, false, rows, KC, Co, T(1), da.data(), Co, wp, KC, T(0),
                      windows_grad.data(), KC);
            }
          }
          if (dxp) {
            for (const Segment& seg : segments) {
              scatter_windows(g, windows_grad.data() + seg.offset * ld, seg.n, seg.t0,
                              seg.rows, dxp, ld);
            }
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
  const Tensor dw = dw_groups.sum(0).narrow(1, 0, KC).reshape({Co, g.kernel, g.in_channels});
  const Tensor db = has_bias ? db_groups.sum(0) : at::empty({0}, x.options());
  return {dx, dw.permute({0, 2, 1}).contiguous(), db};
}

}  // namespace

TORCH_LIBRARY_IMPL(fusedrnn, CPU, m) {
  m.impl("conv1d", &conv1d);
  m.impl("conv1d_backward", &conv1d_backward);
}

}  // namespace cpu
}  // namespace fusedrnn
