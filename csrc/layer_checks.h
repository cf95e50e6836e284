// Argument checks shared by the CPU and CUDA layer kernels. Every failure names the op, the
// argument and what was expected, because these are the errors a user of the modules sees when
// the Python layer did not catch a mistake first.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>
#include <optional>

#include <string>
#include <vector>

namespace fusedrnn {

struct LayerShape {
  int64_t steps = 0, batch = 0, rows = 0, input = 0, hidden = 0, proj = 0;
  bool packed = false;
  std::vector<int64_t> batch_sizes;  // one entry per step
};

inline std::string shape_str(const at::Tensor& t) { return c10::str(t.sizes()); }

inline void check_same_kind(const char* op, const at::Tensor& ref, const at::Tensor& t,
                            const char* name) {
  TORCH_CHECK(t.scalar_type() == ref.scalar_type(), op, ": ", name, " must have dtype ",
              ref.scalar_type(), " like x, got ", t.scalar_type());
  TORCH_CHECK(t.device() == ref.device(), op, ": ", name, " must be on ", ref.device(),
              " like x, got ", t.device());
}

inline void check_shape(const char* op, const at::Tensor& t, const char* name,
                        std::vector<int64_t> expected, const char* meaning) {
  TORCH_CHECK(t.sizes() == at::IntArrayRef(expected), op, ": ", name, " must have shape ",
              at::IntArrayRef(expected), " (", meaning, "), got ", shape_str(t));
}

// Validates one layer call and derives its sizes. c0 and w_hr are null where the cell has none.
inline LayerShape check_layer(const char* op, int64_t gates, const at::Tensor& x,
                              const at::Tensor& h0, const at::Tensor* c0, const at::Tensor& w_ih,
                              const at::Tensor& w_hh, const std::optional<at::Tensor>& b_ih,
                              const std::optional<at::Tensor>& b_hh, const at::Tensor* w_hr,
                              const std::optional<at::Tensor>& batch_sizes) {
  LayerShape s;
  s.packed = batch_sizes.has_value();
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble ||
                  (x.is_cuda() && (x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16)),
              op, ": x must be float32 or float64", x.is_cuda() ? " (or float16/bfloat16 on CUDA)" : "",
              ", got ", x.scalar_type());
  TORCH_CHECK(w_ih.dim() == 2 && w_ih.size(0) % gates == 0 && w_ih.size(0) > 0, op,
              ": w_ih must be [", gates, "*hidden_size, input_size], got ", shape_str(w_ih));
  s.hidden = w_ih.size(0) / gates;
  s.input = w_ih.size(1);
  s.proj = s.hidden;
  if (w_hr) {
    TORCH_CHECK(w_hr->dim() == 2 && w_hr->size(1) == s.hidden && w_hr->size(0) > 0, op,
                ": w_hr must be [proj_size, hidden_size=", s.hidden, "], got ", shape_str(*w_hr));
    s.proj = w_hr->size(0);
    check_same_kind(op, x, *w_hr, "w_hr");
  }
  if (s.packed) {
    TORCH_CHECK(x.dim() == 2 && x.size(1) == s.input, op,
                ": with batch_sizes, x must be packed data [N, input_size=", s.input, "], got ",
                shape_str(x));
    const at::Tensor& bs = *batch_sizes;
    TORCH_CHECK(bs.dim() == 1 && bs.scalar_type() == at::kLong && bs.device().is_cpu(), op,
                ": batch_sizes must be a 1-D int64 CPU tensor (PackedSequence.batch_sizes), got ",
                bs.scalar_type(), " on ", bs.device(), " with shape ", shape_str(bs));
    auto acc = bs.contiguous();
    const int64_t* p = acc.data_ptr<int64_t>();
    s.batch_sizes.assign(p, p + acc.numel());
    int64_t total = 0;
    for (size_t t = 0; t < s.batch_sizes.size(); ++t) {
      TORCH_CHECK(s.batch_sizes[t] > 0 && (t == 0 || s.batch_sizes[t] <= s.batch_sizes[t - 1]),
                  op, ": batch_sizes must be positive and non-increasing, got ", bs.sizes(),
                  " values starting ", s.batch_sizes[0]);
      total += s.batch_sizes[t];
    }
    TORCH_CHECK(total == x.size(0), op, ": batch_sizes sum to ", total,
                " but packed x has ", x.size(0), " rows");
    s.steps = static_cast<int64_t>(s.batch_sizes.size());
    s.batch = s.steps ? s.batch_sizes[0] : h0.size(0);
    s.rows = total;
  } else {
    TORCH_CHECK(x.dim() == 3 && x.size(2) == s.input, op,
                ": x must be [seq_len, batch, input_size=", s.input, "], got ", shape_str(x));
    s.steps = x.size(0);
    s.batch = x.size(1);
    s.batch_sizes.assign(s.steps, s.batch);
    s.rows = s.steps * s.batch;
  }
  check_same_kind(op, x, w_ih, "w_ih");
  check_same_kind(op, x, w_hh, "w_hh");
  check_same_kind(op, x, h0, "h0");
  check_shape(op, w_hh, "w_hh", {gates * s.hidden, s.proj}, "gates*hidden_size, hidden or proj size");
  check_shape(op, h0, "h0", {s.batch, s.proj}, "batch, hidden or proj size");
  if (c0) {
    check_same_kind(op, x, *c0, "c0");
    check_shape(op, *c0, "c0", {s.batch, s.hidden}, "batch, hidden_size");
  }
  for (const auto* b : {&b_ih, &b_hh}) {
    if (!b->has_value()) continue;
    const char* name = b == &b_ih ? "b_ih" : "b_hh";
    check_same_kind(op, x, **b, name);
    check_shape(op, **b, name, {gates * s.hidden}, "gates*hidden_size");
  }
  return s;
}

}  // namespace fusedrnn
