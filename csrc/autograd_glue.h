// What the C++ autograd registrations share (csrc/cell_autograd.cpp, layer_autograd.cpp,
// conv1d_autograd.cpp):
// the autograd Function types and a lookup of the registered ops, which both halves of every
// Function call through the dispatcher.
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/zeros_like.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include <optional>

namespace fusedrnn {
namespace autograd_glue {

using at::Tensor;
using OptTensor = std::optional<Tensor>;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

inline c10::OperatorHandle find_op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "");
}

// The backward needs the workspace that only a train=True forward keeps ([rows, cols], where an
// Elman cell's or layer's may have no columns); a train=False forward returns a 1-D empty one.
inline void check_workspace(const Tensor& ws, const char* op) {
  TORCH_CHECK(ws.dim() == 2, op,
              ": backward needs the workspace, but the forward op ran with train=False; call it "
              "with train=True (the fusedrnn.ops wrappers do this whenever an input requires grad)");
}

// An output that received no gradient arrives undefined; the backward ops want zeros.
inline Tensor or_zeros(const Tensor& grad, const Tensor& like) {
  return grad.defined() ? grad : at::zeros_like(like);
}

inline bool has(const OptTensor& t) { return t.has_value() && t->defined(); }

inline bool requires_grad(const Tensor& t) { return t.defined() && t.requires_grad(); }
inline bool requires_grad(const OptTensor& t) { return has(t) && t->requires_grad(); }

inline bool has_forward_grad(const Tensor& t) { return t.defined() && t._fw_grad(0).defined(); }
inline bool has_forward_grad(const OptTensor& t) { return has(t) && has_forward_grad(*t); }

// Forward-mode AD (a dual tensor among an op's differentiable inputs) has no formula here, and
// the outputs would silently carry no tangent: an error instead, raised by every autograd kernel.
template <typename... Tensors>
void reject_forward_ad(const char* op, const Tensors&... tensors) {
  TORCH_CHECK(!(has_forward_grad(tensors) || ...), op,
              ": forward-mode AD (dual tensors, torch.autograd.forward_ad) is not supported; "
              "use reverse mode (backward) for gradients");
}

// A backward runs with grad mode on only under create_graph=True (double backward, e.g. a
// gradient penalty). The backward ops have no derivative of their own, so the gradients they
// return would carry none, and second-order terms through the op would silently be zero: an error
// instead, raised at the top of every Function's backward.
inline void reject_double_backward(const char* op) {
  TORCH_CHECK(!at::GradMode::is_enabled(), op,
              ": double backward is not supported (the op's backward has no derivative of its own,"
              " so create_graph=True through it, as a gradient penalty does, would silently drop "
              "second-order terms); use torch.nn's layers where second derivatives are needed");
}

// Then (after reject_forward_ad), true when autograd would record nothing for a call on these
// (differentiable) inputs: grad mode is off, or none of them requires grad. The op is then
// called directly, without a Function's node, saved variables and output wrapping: an LSTMCell
// op call under torch.no_grad took 6.8 instead of 8.9 µs (batch 1, H 16, one thread).
template <typename... Tensors>
bool records_nothing(const char* op, const Tensors&... tensors) {
  reject_forward_ad(op, tensors...);
  return !at::GradMode::is_enabled() || !(requires_grad(tensors) || ...);
}

// An optional argument as a saved tensor (undefined when absent), and back.
inline Tensor saved(const OptTensor& t) { return has(t) ? *t : Tensor(); }
inline OptTensor optional(const Tensor& t) { return t.defined() ? OptTensor(t) : std::nullopt; }

}  // namespace autograd_glue
}  // namespace fusedrnn
