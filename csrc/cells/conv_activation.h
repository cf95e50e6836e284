// The activations the fused Conv1D applies in its output pass, and their derivatives; shared by
// the CPU and CUDA kernels. Derivatives read the output y where it determines them (relu, tanh,
// sigmoid) and the pre-activation a only where it must (gelu).
#pragma once

#include "activations.h"

namespace fusedrnn {

enum class ConvActivation : int { kIdentity = 0, kRelu = 1, kTanh = 2, kSigmoid = 3, kGelu = 4 };

constexpr bool needs_preactivation(ConvActivation act) { return act == ConvActivation::kGelu; }

namespace math {

FUSEDRNN_HOST_DEVICE float erf(float x) { return ::erff(x); }
FUSEDRNN_HOST_DEVICE double erf(double x) { return ::erf(x); }

// gelu(a) = a·Φ(a), the exact (erf) form, as torch.nn.functional.gelu's default
template <typename T>
FUSEDRNN_HOST_DEVICE T gelu(T a) {
  return T(0.5) * a * (T(1) + math::erf(a * T(0.70710678118654752440)));
}

template <typename T>
FUSEDRNN_HOST_DEVICE T gelu_derivative(T a) {
  const T cdf = T(0.5) * (T(1) + math::erf(a * T(0.70710678118654752440)));
  const T pdf = T(0.39894228040143267794) * math::exp(T(-0.5) * a * a);
  return cdf + a * pdf;
}

}  // namespace math

// The activation is a template parameter so that loops over elements have no branch on it and
// vectorise; dispatch_activation turns the run-time code into that parameter once per call.
template <ConvActivation kAct, typename T>
FUSEDRNN_HOST_DEVICE T activate(T a) {
  if constexpr (kAct == ConvActivation::kRelu) return math::relu(a);
  if constexpr (kAct == ConvActivation::kTanh) return math::tanh(a);
  if constexpr (kAct == ConvActivation::kSigmoid) return math::sigmoid(a);
  if constexpr (kAct == ConvActivation::kGelu) return math::gelu(a);
  return a;
}

// dL/da from dL/dy, the output y and (gelu only) the pre-activation a
template <ConvActivation kAct, typename T>
FUSEDRNN_HOST_DEVICE T activation_backward(T grad, T y, T a) {
  if constexpr (kAct == ConvActivation::kRelu) return y > T(0) ? grad : T(0);
  if constexpr (kAct == ConvActivation::kTanh) return grad * (T(1) - y * y);
  if constexpr (kAct == ConvActivation::kSigmoid) return grad * y * (T(1) - y);
  if constexpr (kAct == ConvActivation::kGelu) return grad * math::gelu_derivative(a);
  return grad;
}

template <ConvActivation kAct>
struct ActivationTag {
  static constexpr ConvActivation value = kAct;
};

// f(ActivationTag<act>{}) with act known at compile time inside f
template <typename F>
auto dispatch_activation(ConvActivation act, const F& f) {
  switch (act) {
    case ConvActivation::kRelu: return f(ActivationTag<ConvActivation::kRelu>{});
    case ConvActivation::kTanh: return f(ActivationTag<ConvActivation::kTanh>{});
    case ConvActivation::kSigmoid: return f(ActivationTag<ConvActivation::kSigmoid>{});
    case ConvActivation::kGelu: return f(ActivationTag<ConvActivation::kGelu>{});
    default: return f(ActivationTag<ConvActivation::kIdentity>{});
  }
}

}  // namespace fusedrnn
