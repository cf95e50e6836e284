// CPU kernels of every op: the device-independent glue of layer_ops.h around the recurrence
// driver of recurrence.h, for float32 and float64.
#include <ATen/Dispatch.h>

#include "../layer_ops.h"
#include "buffer_pool.h"
#include "recurrence.h"

namespace fusedrnn {
namespace cpu {
namespace {

template <typename T>
const T* ptr_or_null(const Tensor& t) {
  return t.defined() && t.numel() ? t.data_ptr<T>() : nullptr;
}

template <typename T>
T* mut_ptr_or_null(Tensor& t) {
  return t.defined() && t.numel() ? t.data_ptr<T>() : nullptr;
}

template <typename T>
LayerWeights<T> weights(const LayerShape& s, const LayerParams& p) {
  return {p.w_ih.data_ptr<T>(), p.w_hh.data_ptr<T>(), ptr_or_null<T>(p.b_ih),
          ptr_or_null<T>(p.b_hh), ptr_or_null<T>(p.w_hr), s.input, s.hidden, s.proj,
          ptr_or_null<T>(p.ln),   static_cast<T>(p.eps)};
}

template <typename Cell, typename T>
Regularizers<T> regularizers(const LayerShape& s, const LayerParams& p) {
  return {ptr_or_null<T>(p.rec_mask), ptr_or_null<T>(p.zoneout_h), ptr_or_null<T>(p.zoneout_c),
          p.zoneout_c.defined() ? Cell::workspace_cols(s.hidden) : -1};
}

struct CpuDriver {
  static void check_device(const char* op, const Tensor& x) {
    TORCH_CHECK(x.device().is_cpu(), op, ": expected CPU tensors, got x on ", x.device());
  }

  static at::ScalarType workspace_dtype(at::ScalarType input) { return input; }
  // the workspace, y and dx: kept for the next call once freed (buffer_pool.h), so that a
  // training loop does not fault their pages in again every step
  static Tensor empty_buffer(at::IntArrayRef sizes, const at::TensorOptions& options) {
    return pooled_empty(sizes, options);
  }
  static constexpr bool kLeanInference = true;
  static constexpr bool kStridedGradRows = true;
  // The sequence driver keeps a GRU's workspace row at 3H instead of 4H: r, z, b_n, its backward
  // rebuilding n from the outputs, or with zoneout on h (the outputs are then not the cell's)
  // r, z, n, its backward recomputing b_n chunk by chunk (recurrence.h, gru_row). The
  // single-step path (one step, no regularisers: the cell ops) keeps all four columns.
  static bool narrow_gru_rows(const LayerShape& s, const MaskArgs& masks) {
    return s.steps != 1 || masks.any();
  }

  template <typename Cell>
  static void forward(const LayerShape& s, const Tensor& x, const LayerParams& p, bool reverse,
                      Tensor& y, Tensor& h, Tensor& c, Tensor& ws, bool save) {
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fusedrnn_layer_forward", [&] {
      const ForwardBuffers<Cell, scalar_t> out{y.data_ptr<scalar_t>(), h.data_ptr<scalar_t>(),
                                               mut_ptr_or_null<scalar_t>(c),
                                               ws.data_ptr<scalar_t>(), ws.size(1), save};
      recurrence_forward<Cell, scalar_t>(Schedule(s.batch_sizes), x.data_ptr<scalar_t>(),
                                         weights<scalar_t>(s, p), reverse, out,
                                         regularizers<Cell, scalar_t>(s, p));
    });
  }

  template <typename Cell>
  static void backward(const LayerShape& s, const LayerParams& p, bool reverse,
                       const SavedLayer& in, LayerGrads& g) {
    AT_DISPATCH_FLOATING_TYPES(in.x.scalar_type(), "fusedrnn_layer_backward", [&] {
      const BackwardInputs<scalar_t> saved{
          in.grad_y.data_ptr<scalar_t>(), in.x.data_ptr<scalar_t>(), in.h0.data_ptr<scalar_t>(),
          ptr_or_null<scalar_t>(in.c0),   in.y.data_ptr<scalar_t>(), in.workspace.data_ptr<scalar_t>(),
          in.workspace.size(1),           gradient_row_stride(in.grad_y)};
      const BackwardOutputs<scalar_t> out{
          mut_ptr_or_null<scalar_t>(g.x),    g.h0.data_ptr<scalar_t>(),
          mut_ptr_or_null<scalar_t>(g.c0),   g.w_ih.data_ptr<scalar_t>(),
          g.w_hh.data_ptr<scalar_t>(),       mut_ptr_or_null<scalar_t>(g.b_ih),
          mut_ptr_or_null<scalar_t>(g.b_hh), mut_ptr_or_null<scalar_t>(g.w_hr),
          mut_ptr_or_null<scalar_t>(g.ln)};
      recurrence_backward<Cell, scalar_t>(Schedule(s.batch_sizes), weights<scalar_t>(s, p),
                                          reverse, saved, out, regularizers<Cell, scalar_t>(s, p));
    });
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(fusedrnn, CPU, m) { register_layer_ops<CpuDriver>(m); }

}  // namespace cpu
}  // namespace fusedrnn
