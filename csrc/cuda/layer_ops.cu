// CUDA kernels of every op: the device-independent glue of layer_ops.h around a CUDA recurrence
// driver. GEMMs go through ATen (cuBLAS on the current stream); each step's pointwise work is ONE
// kernel over rows×hidden that calls the same cell functions (csrc/cells/*.h) as the CPU driver,
// with rows located by the same host/device code (csrc/driver_common.h).
//
// float16 and bfloat16 run the float32 driver on converted copies: fp32 accumulation, fp32 cell
// state and an fp32 workspace (see Driver::workspace_dtype).
#include <ATen/Dispatch.h>
#include <ATen/ops/add.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/mul.h>
#include <ATen/ops/sum.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "../driver_common.h"
#include "../layer_ops.h"

#include <utility>

namespace fusedrnn {
namespace cuda {
namespace {

constexpr int kThreads = 256;

int64_t blocks_for(int64_t n) { return (n + kThreads - 1) / kThreads; }

// kernel over `threads` threads on `stream`, then the launch check. Nothing at zero threads (no
// steps, or batch 0): a grid of 0 blocks is a launch error, where the CPU path runs no iterations.
template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), int64_t threads, cudaStream_t stream, Args&&... args) {
  if (threads <= 0) return;
  kernel<<<blocks_for(threads), kThreads, 0, stream>>>(std::forward<Args>(args)...);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// Element-wise cells: one thread per (row, hidden unit). Row-wise (LayerNorm) cells: one thread
// per row, which runs the row's reductions and pointwise math serially: simple and exact, but it
// leaves most of the GPU idle at small batch (a block-per-row reduction is the faster design).
template <typename Cell>
int64_t step_threads(int64_t rows, int64_t H) {
  return Cell::kRowWise ? rows : rows * H;
}

template <typename Cell, typename T>
__global__ void forward_step_kernel(ForwardStep<T> step, int64_t rows) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t H = step.hidden;
  if constexpr (Cell::kRowWise) {
    if (idx < rows) Cell::forward_row(forward_row<Cell>(step, idx), H);
  } else {
    if (idx >= rows * H) return;
    const int64_t b = idx / H;
    Cell::forward(forward_row<Cell>(step, b), H, idx - b * H);
  }
}

template <typename Cell, typename T>
__global__ void backward_step_kernel(BackwardStep<T> step, int64_t rows) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t H = step.hidden;
  if constexpr (Cell::kRowWise) {
    if (idx < rows) Cell::backward_row(backward_row<Cell>(step, idx), H);
  } else {
    if (idx >= rows * H) return;
    const int64_t b = idx / H;
    Cell::backward(backward_row<Cell>(step, b), H, idx - b * H);
  }
}

// LayerNorm cells, after backward's time loop: the x side's pre-LN gradient, one thread per row.
template <typename Cell, typename T>
__global__ void input_grad_kernel(T* dg, int64_t grad_cols, const T* ws, int64_t ws_cols,
                                  const T* ln, int64_t rows, int64_t H) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if constexpr (Cell::kLayerNorm) {
    if (row < rows) Cell::input_grad_row(dg + row * grad_cols, ws + row * ws_cols, ln, H);
  }
}

// LayerNorm cells: input-side statistics for every step at once, one thread per row.
template <typename Cell, typename T>
__global__ void normalize_inputs_kernel(T* ws, int64_t rows, int64_t ws_cols, int64_t H, T eps) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if constexpr (Cell::kLayerNorm) {
    if (row < rows) Cell::normalize_input(ws + row * ws_cols, H, eps);
  }
}

template <typename T>
const T* ptr(const Tensor& t) {
  return t.defined() && t.numel() ? t.data_ptr<T>() : nullptr;
}

template <typename T>
T* mut_ptr(const Tensor& t) {
  return t.defined() && t.numel() ? t.data_ptr<T>() : nullptr;
}

Tensor rows_of(const Tensor& m, int64_t first, int64_t count) { return m.narrow(0, first, count); }

// ATen's out= functions take the output as an lvalue; these accept the views built inline.
void mm_into(Tensor out, const Tensor& a, const Tensor& b) { at::mm_out(out, a, b); }
void add_into(Tensor out, const Tensor& a, const Tensor& b) { at::add_out(out, a, b); }
void column_sum_into(Tensor out, const Tensor& m) { at::sum_out(out, m, {0}); }

template <typename Cell, typename T>
void forward_impl(const Schedule& s, const Tensor& x, const LayerParams& p, bool reverse,
                  const Tensor& y, const Tensor& h, const Tensor& c, const Tensor& ws) {
  const int64_t H = p.w_ih.size(0) / Cell::kGates, GH = Cell::kGates * H;
  const int64_t P = h.size(1), N = s.rows_total, W = ws.size(1);
  const bool proj = p.w_hr.defined();
  const Tensor x2 = x.reshape({N, x.size(-1)}), y2 = y.view({N, P});
  mm_into(ws.narrow(1, 0, GH), x2, p.w_ih.t());  // input projection of every step at once
  const Tensor gh = at::empty({s.batch, GH}, x.options());
  const auto stream = c10::cuda::getCurrentCUDAStream();
  if constexpr (Cell::kLayerNorm) {
    launch(normalize_inputs_kernel<Cell, T>, N, stream, ws.data_ptr<T>(), N, W, H,
           static_cast<T>(p.eps));
  }
  // regularisers (driver_common.h): a few ATen ops per step around the fused kernel
  const Tensor zh = p.zoneout_h.defined() ? p.zoneout_h.view({N, P}) : Tensor();
  const Tensor zc = p.zoneout_c.defined() ? p.zoneout_c.view({N, H}) : Tensor();
  const int64_t zoned_col = Cell::workspace_cols(H);
  for (int64_t step = 0; step < s.steps(); ++step) {
    const int64_t t = s.time_at(step, reverse), rows = s.batch_sizes[t], off = s.offsets[t];
    const Tensor h_rows = rows_of(h, 0, rows);
    mm_into(rows_of(gh, 0, rows),
            p.rec_mask.defined() ? h_rows.mul(rows_of(p.rec_mask, 0, rows)) : h_rows, p.w_hh.t());
    const Tensor c_old = zc.defined() ? rows_of(c, 0, rows).clone() : Tensor();
    const ForwardStep<T> fs{ws.data_ptr<T>(), gh.data_ptr<T>(), ptr<T>(p.b_ih), ptr<T>(p.b_hh),
                            h.data_ptr<T>(),  mut_ptr<T>(c),    y.data_ptr<T>(), off,
                            W,                H,                P,               proj,
                            ptr<T>(p.ln),     static_cast<T>(p.eps)};
    launch(forward_step_kernel<Cell, T>, step_threads<Cell>(rows, H), stream, fs, rows);
    if (proj) {
      mm_into(rows_of(y2, off, rows),
                 rows_of(ws, off, rows).narrow(1, raw_hidden_col<Cell>(H), H), p.w_hr.t());
    }
    if (zh.defined()) {
      Tensor y_rows = rows_of(y2, off, rows);
      y_rows.add_(rows_of(zh, off, rows).mul(h_rows.sub(y_rows)));
    }
    if (zc.defined()) {
      Tensor c_rows = rows_of(c, 0, rows);
      c_rows.add_(rows_of(zc, off, rows).mul(c_old.sub(c_rows)));
      rows_of(ws, off, rows).narrow(1, zoned_col, H).copy_(c_rows);
    }
    rows_of(h, 0, rows).copy_(rows_of(y2, off, rows));
  }
}

template <typename Cell, typename T>
void backward_impl(const Schedule& s, const LayerParams& p, bool reverse, const SavedLayer& in,
                   const LayerGrads& g) {
  const int64_t H = p.w_ih.size(0) / Cell::kGates, GH = Cell::kGates * H;
  const int64_t GC = Cell::grad_cols(H), P = in.h0.size(1), N = s.rows_total;
  const int64_t W = in.workspace.size(1);
  const bool proj = p.w_hr.defined();
  const auto opts = in.x.options();
  const Tensor x2 = in.x.reshape({N, in.x.size(-1)}), y2 = in.y.view({N, P});
  const Tensor dy2 = in.grad_y.view({N, P});
  const bool want_dx = g.x.numel() > 0;  // empty: the caller needs no grad_x
  const Tensor dx2 = want_dx ? g.x.view({N, in.x.size(-1)}) : Tensor();
  const Tensor dg = at::empty({N, GC}, opts), zeros = at::zeros({std::max(H, P)}, opts);
  Tensor dh_total, dh_raw;
  if (proj) {
    dh_total = at::empty({N, P}, opts);
    dh_raw = at::empty({s.batch, H}, opts);
  }
  const auto stream = c10::cuda::getCurrentCUDAStream();
  const Tensor zh = p.zoneout_h.defined() ? p.zoneout_h.view({N, P}) : Tensor();
  const Tensor zc = p.zoneout_c.defined() ? p.zoneout_c.view({N, H}) : Tensor();
  const bool regularized = p.rec_mask.defined() || zh.defined() || zc.defined();
  // with regularisers the cell reads dL/dh̃_t = (1 − m)·(dy + dh) from dy_cell (see the CPU driver)
  const Tensor dy_cell = regularized ? at::empty({N, P}, opts) : Tensor();
  for (int64_t step = s.steps() - 1; step >= 0; --step) {
    const int64_t t = s.time_at(step, reverse), rows = s.batch_sizes[t], off = s.offsets[t];
    const int64_t tp = s.previous(t, reverse);
    if (proj) {
      add_into(rows_of(dh_total, off, rows), rows_of(dy2, off, rows), rows_of(g.h0, 0, rows));
      mm_into(rows_of(dh_raw, 0, rows), rows_of(dh_total, off, rows), p.w_hr);
    }
    Tensor dh_kept, dc_kept;
    if (regularized) {
      Tensor dh_rows = rows_of(g.h0, 0, rows);
      const Tensor total = rows_of(dy2, off, rows).add(dh_rows);
      dh_kept = zh.defined() ? rows_of(zh, off, rows).mul(total) : at::zeros_like(total);
      rows_of(dy_cell, off, rows).copy_(total.sub(dh_kept));
      dh_rows.zero_();
      if (zc.defined()) {
        Tensor dc_rows = rows_of(g.c0, 0, rows);
        dc_kept = rows_of(zc, off, rows).mul(dc_rows);
        dc_rows.sub_(dc_kept);
      }
    }
    const BackwardStep<T> bs{in.workspace.data_ptr<T>(),
                             in.y.data_ptr<T>(),
                             in.h0.data_ptr<T>(),
                             ptr<T>(in.c0),
                             proj          ? dh_raw.data_ptr<T>()
                             : regularized ? dy_cell.data_ptr<T>()
                                           : in.grad_y.data_ptr<T>(),
                             zeros.data_ptr<T>(),
                             g.h0.data_ptr<T>(),
                             mut_ptr<T>(g.c0),
                             dg.data_ptr<T>(),
                             off,
                             tp >= 0 ? s.offsets[tp] : 0,
                             tp >= 0 ? s.batch_sizes[tp] : 0,
                             W,
                             GC,
                             H,
                             P,
                             proj,
                             ptr<T>(p.ln),
                             zc.defined() ? Cell::workspace_cols(H) : -1};
    launch(backward_step_kernel<Cell, T>, step_threads<Cell>(rows, H), stream, bs, rows);
    const Tensor dg_h = rows_of(dg, off, rows).narrow(1, 0, GH);
    Tensor dh_rows = rows_of(g.h0, 0, rows);
    if (regularized) {
      if (zc.defined()) rows_of(g.c0, 0, rows).add_(dc_kept);
      Tensor through_w = at::mm(dg_h, p.w_hh);
      if (p.rec_mask.defined()) through_w.mul_(rows_of(p.rec_mask, 0, rows));
      if (!Cell::kDirectHiddenGrad) dh_rows.zero_();
      dh_rows.add_(through_w).add_(dh_kept);
    } else if (Cell::kDirectHiddenGrad) {
      dh_rows.addmm_(dg_h, p.w_hh);  // the cell left its direct term in dh
    } else {
      mm_into(dh_rows, dg_h, p.w_hh);
    }
  }

  if constexpr (Cell::kLayerNorm) {
    // the parameter reductions read d(gates) first; then it becomes the x side's pre-LN gradient
    for (const ColumnReduction& red : Cell::reductions(H)) {
      const Tensor& dst = red.target == ColumnReduction::kBiasIh   ? g.b_ih
                          : red.target == ColumnReduction::kBiasHh ? g.b_hh
                                                                   : g.ln;
      if (!dst.numel()) continue;
      const Tensor cols = dg.narrow(1, red.grad_col, red.width);
      column_sum_into(dst.narrow(0, red.out_offset, red.width),
                      red.ws_col >= 0 ? at::mul(cols, in.workspace.narrow(1, red.ws_col, red.width)) : cols);
    }
    launch(input_grad_kernel<Cell, T>, N, stream, dg.data_ptr<T>(), GC,
           in.workspace.data_ptr<T>(), W, ptr<T>(p.ln), N, H);
  }
  bool first = true;
  for (const GradBlock& blk : input_grad_blocks<Cell>(H)) {
    const Tensor dg_x = dg.narrow(1, blk.grad_col, blk.width);
    const Tensor w_block = p.w_ih.narrow(0, blk.weight_row, blk.width);
    if (want_dx && first) {
      mm_into(dx2, dg_x, w_block);
    } else if (want_dx) {
      dx2.addmm_(dg_x, w_block);
    }
    mm_into(g.w_ih.narrow(0, blk.weight_row, blk.width), dg_x.t(), x2);
    if (!Cell::kLayerNorm && g.b_ih.numel()) {
      column_sum_into(g.b_ih.narrow(0, blk.weight_row, blk.width), dg_x);
    }
    first = false;
  }
  if (!Cell::kLayerNorm && g.b_hh.numel()) column_sum_into(g.b_hh, dg.narrow(1, 0, GH));

  // dW_hh = Σ_t dG_tᵀ·h_{t-1}: gather h_{t-1} (y of the previous step, or h0) row block by block
  const Tensor h_prev = at::empty({N, P}, opts);
  for (int64_t t = 0; t < s.steps(); ++t) {
    const int64_t tp = s.previous(t, reverse), rows = s.batch_sizes[t];
    const int64_t carried = tp >= 0 ? std::min(s.batch_sizes[tp], rows) : 0;
    if (carried) rows_of(h_prev, s.offsets[t], carried).copy_(rows_of(y2, s.offsets[tp], carried));
    if (rows > carried) {
      rows_of(h_prev, s.offsets[t] + carried, rows - carried)
          .copy_(rows_of(in.h0, carried, rows - carried));
    }
  }
  if (p.rec_mask.defined()) {  // W_hh saw h_{t-1}·d
    for (int64_t t = 0; t < s.steps(); ++t) {
      rows_of(h_prev, s.offsets[t], s.batch_sizes[t]).mul_(rows_of(p.rec_mask, 0, s.batch_sizes[t]));
    }
  }
  mm_into(g.w_hh, dg.narrow(1, 0, GH).t(), h_prev);
  if (proj) mm_into(g.w_hr, dh_total.t(), in.workspace.narrow(1, raw_hidden_col<Cell>(H), H));
}

bool reduced(const Tensor& t) {
  return t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16;
}

Tensor as_float(const Tensor& t) { return t.defined() && t.numel() ? t.to(at::kFloat) : t; }

LayerParams as_float(const LayerParams& p) {
  return {as_float(p.w_ih), as_float(p.w_hh),     as_float(p.b_ih),      as_float(p.b_hh),
          as_float(p.w_hr), as_float(p.ln),       p.eps,                 as_float(p.rec_mask),
          as_float(p.zoneout_h), as_float(p.zoneout_c)};
}

struct CudaDriver {
  static void check_device(const char* op, const Tensor& x) {
    TORCH_CHECK(x.is_cuda(), op, ": expected CUDA tensors, got x on ", x.device());
  }

  static at::ScalarType workspace_dtype(at::ScalarType input) {
    return input == at::kHalf || input == at::kBFloat16 ? at::kFloat : input;
  }

  // the workspace, y and dx (the CUDA caching allocator already reuses blocks)
  static Tensor empty_buffer(at::IntArrayRef sizes, const at::TensorOptions& options) {
    return at::empty(sizes, options);
  }

  // The kernels always write the full workspace row (inference too).
  static constexpr bool kLeanInference = false;
  static constexpr bool kStridedGradRows = false;
  // a GRU's workspace row keeps all four columns (r, z, n, b_n)
  static bool narrow_gru_rows(const LayerShape&, const MaskArgs&) { return false; }

  template <typename Cell>
  static void forward(const LayerShape& shape, const Tensor& x, const LayerParams& p, bool reverse,
                      Tensor& y, Tensor& h, Tensor& c, Tensor& ws, bool /*save*/) {
    const c10::cuda::CUDAGuard guard(x.device());
    const Schedule s(shape.batch_sizes);
    if (reduced(x)) {
      const Tensor yf = y.to(at::kFloat), hf = h.to(at::kFloat), cf = as_float(c);
      forward_impl<Cell, float>(s, x.to(at::kFloat), as_float(p), reverse, yf, hf, cf, ws);
      y.copy_(yf);
      h.copy_(hf);
      if (c.numel()) c.copy_(cf);
      return;
    }
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fusedrnn_layer_forward_cuda", [&] {
      forward_impl<Cell, scalar_t>(s, x, p, reverse, y, h, c, ws);
    });
  }

  template <typename Cell>
  static void backward(const LayerShape& shape, const LayerParams& p, bool reverse,
                       const SavedLayer& in, LayerGrads& g) {
    const c10::cuda::CUDAGuard guard(in.x.device());
    const Schedule s(shape.batch_sizes);
    if (reduced(in.x)) {
      const SavedLayer inf{as_float(in.x), as_float(in.h0), as_float(in.c0), as_float(in.y),
                           in.workspace, as_float(in.grad_y)};
      LayerGrads gf{as_float(g.x),    as_float(g.h0),   as_float(g.c0),   as_float(g.w_ih),
                    as_float(g.w_hh), as_float(g.b_ih), as_float(g.b_hh), as_float(g.w_hr),
                    as_float(g.ln)};
      backward_impl<Cell, float>(s, as_float(p), reverse, inf, gf);
      for (auto [dst, src] : {std::pair{&g.x, &gf.x}, {&g.h0, &gf.h0}, {&g.c0, &gf.c0},
                              {&g.w_ih, &gf.w_ih}, {&g.w_hh, &gf.w_hh}, {&g.b_ih, &gf.b_ih},
                              {&g.b_hh, &gf.b_hh}, {&g.w_hr, &gf.w_hr}, {&g.ln, &gf.ln}}) {
        if (dst->numel()) dst->copy_(*src);
      }
      return;
    }
    AT_DISPATCH_FLOATING_TYPES(in.x.scalar_type(), "fusedrnn_layer_backward_cuda", [&] {
      backward_impl<Cell, scalar_t>(s, p, reverse, in, g);
    });
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(fusedrnn, CUDA, m) { register_layer_ops<CudaDriver>(m); }

}  // namespace cuda
}  // namespace fusedrnn
