// What the C++ autograd registrations share (csrc/cell_autograd.cpp, csrc/conv1d_autograd.cpp):
// the autograd Function types and a lookup of the registered ops, which both halves of every
// Function call through the dispatcher.
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>
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

}  // namespace autograd_glue
}  // namespace fusedrnn
