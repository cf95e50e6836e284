// Scalar activations shared by the CPU and CUDA kernels.
//
// float uses a branch-free polynomial exp so that the CPU compiler can vectorise the fused
// pointwise loops (libm's expf blocks that) and so that CPU tests check the exact arithmetic the
// GPU runs. double uses the exact libm functions: it exists for gradcheck.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define FUSEDRNN_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define FUSEDRNN_HOST_DEVICE inline __attribute__((always_inline))
#endif

namespace fusedrnn {
namespace math {

FUSEDRNN_HOST_DEVICE float int_bits_to_float(int32_t bits) {
#if defined(__CUDA_ARCH__)
  return __int_as_float(bits);
#else
  return __builtin_bit_cast(float, bits);  // memcpy here blocks GCC's vectoriser
#endif
}

// exp(x) to about 2 ulp over the range where the result is a normal float; inputs outside are
// clamped, which saturates sigmoid and tanh exactly as the true functions do in float.
FUSEDRNN_HOST_DEVICE float exp(float x) {
  // Comparisons, not fminf/fmaxf/floorf: GCC vectorises these only under -ffast-math. A NaN
  // passes the clamps and propagates through r.
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  // x = n*ln2 + r with |r| <= ln2/2; ln2 split in two so that n*ln2_hi is exact.
  // floor(y) as a truncation of the positive y + 128 (y >= -126 after the clamp).
  const float y = x * 1.44269504088896341f + 0.5f;
  const int32_t ni = static_cast<int32_t>(y + 128.0f) - 128;
  const float n = static_cast<float>(ni);
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  // Taylor series of exp(r) to degree 7: truncation error below 1e-8 on |r| <= 0.347.
  float p = 1.98412698e-4f;
  p = p * r + 1.38888889e-3f;
  p = p * r + 8.33333333e-3f;
  p = p * r + 4.16666667e-2f;
  p = p * r + 1.66666667e-1f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  return p * int_bits_to_float((ni + 127) << 23);
}

FUSEDRNN_HOST_DEVICE double exp(double x) { return ::exp(x); }

template <typename T>
FUSEDRNN_HOST_DEVICE T sigmoid(T x) {
  return T(1) / (T(1) + math::exp(-x));
}

FUSEDRNN_HOST_DEVICE float tanh(float x) {
  const float ax = x < 0.0f ? -x : x;
  // Large |x|: (1 - e^{-2|x|}) / (1 + e^{-2|x|}). Small |x| loses digits to cancellation there,
  // so an odd Taylor polynomial takes over below 0.125 (error below 1e-9 there).
  const float e = math::exp(-2.0f * ax);
  const float big = (1.0f - e) / (1.0f + e);
  const float x2 = ax * ax;
  const float small = ax * (1.0f + x2 * (-0.333333333f + x2 * (0.133333333f + x2 * -0.0539682540f)));
  const float t = ax < 0.125f ? small : big;
  return x < 0.0f ? -t : t;
}

FUSEDRNN_HOST_DEVICE double tanh(double x) { return ::tanh(x); }

template <typename T>
FUSEDRNN_HOST_DEVICE T relu(T x) {
  return x > T(0) ? x : T(0);
}

}  // namespace math
}  // namespace fusedrnn
