// Scalar activations shared by the CPU and CUDA kernels.
//
// float uses a branch-free polynomial exp so that the CPU compiler can vectorise the fused
// pointwise loops (libm's expf blocks that) and so that CPU tests check the exact arithmetic the
// GPU runs. double does the same at its own precision (about 1 ulp for exp, 2-3 for tanh):
// libm's exp and tanh, called element by element, took 39% of a float64 LSTM's inference.
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

FUSEDRNN_HOST_DEVICE double int_bits_to_double(int64_t bits) {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(static_cast<long long>(bits));
#else
  return __builtin_bit_cast(double, bits);
#endif
}

FUSEDRNN_HOST_DEVICE uint64_t double_to_bits(double x) {
#if defined(__CUDA_ARCH__)
  return static_cast<uint64_t>(__double_as_longlong(x));
#else
  return __builtin_bit_cast(uint64_t, x);
#endif
}

FUSEDRNN_HOST_DEVICE uint32_t float_to_bits(float x) {
#if defined(__CUDA_ARCH__)
  return static_cast<uint32_t>(__float_as_int(x));
#else
  return __builtin_bit_cast(uint32_t, x);
#endif
}

// exp(x) to about 1 ulp over the range where the result is a normal float; inputs outside are
// clamped, which saturates sigmoid and tanh exactly as the true functions do in float.
FUSEDRNN_HOST_DEVICE float exp(float x) {
  // Comparisons, not fminf/fmaxf: GCC vectorises those only under -ffast-math. Both tests read
  // the input: clamped one after the other, GCC threads the first outcome into the second and
  // splits the vector loop into masked paths (twice the compares in the LSTM cell). A NaN
  // passes both and propagates through r.
  const bool below = x < -87.0f, above = x > 88.0f;
  x = below ? -87.0f : x;
  x = above ? 88.0f : x;
  // x = n*ln2 + r with n = round(x / ln2), |r| <= ln2/2. Adding 1.5*2^23 rounds to an integer
  // and leaves n in the low mantissa bits, with no float-int conversions on the critical path.
  constexpr float kShifter = 12582912.0f;
  const float shifted = x * 1.44269504088896341f + kShifter;
  const float n = shifted - kShifter;
  float r = x - n * 0.693359375f;  // ln2 in two parts so that n*ln2_hi is exact
  r = r - n * -2.12194440e-4f;
  // Degree-6 polynomial fitted for least maximum relative error on |r| <= ln2/2: 2e-9, a little
  // below the degree-7 Taylor series' 5e-9, with one multiply-add less.
  float p = 1.38436514e-3f;
  p = p * r + 8.37415643e-3f;
  p = p * r + 4.16680016e-2f;
  p = p * r + 1.66664317e-1f;
  p = p * r + 4.99999940e-1f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // 2^n from the shifted value's bits: the shift drops its exponent field, leaving (n + 127)<<23
  return p * int_bits_to_float(static_cast<int32_t>((float_to_bits(shifted) + 127u) << 23));
}

// The double exp's pieces, as float's: x = n·ln2 + r with |r| <= ln2/2, then
// exp(x) = 2^n·(1 + expm1(r)). n leaves the rounding shift 1.5·2^52 in the low mantissa bits.
struct DoubleReduction {
  double r;       // x - n·ln2
  double two_n;   // 2^n, for |n| <= 1022
};

FUSEDRNN_HOST_DEVICE DoubleReduction reduce_for_exp(double x) {
  constexpr double kShifter = 6755399441055744.0;
  const double shifted = x * 1.4426950408889634 + kShifter;
  const double n = shifted - kShifter;
  // ln2's high part has 21 trailing zero bits, so n·ln2_hi is exact
  double r = x - n * 6.93147180369123816490e-01;
  r = r - n * 1.90821492927058770002e-10;
  // the shift drops the exponent field, leaving (n + 1023) << 52
  const double two_n =
      int_bits_to_double(static_cast<int64_t>((double_to_bits(shifted) + 1023u) << 52));
  return {r, two_n};
}

// expm1(r) for |r| <= ln2/2 (a little more after rounding): the Taylor series to degree 13,
// whose truncation error there is below 5e-18, evaluated by Horner's rule.
FUSEDRNN_HOST_DEVICE double expm1_reduced(double r) {
  double p = 1.0 / 6227020800.0;  // 1/13!
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  return p * r * r + r;
}

// exp(x) to about 1 ulp where the result is a normal double; inputs outside [-708, 709] are
// clamped as float's are, which saturates sigmoid and tanh (their results differ from the true
// ones by less than 1e-307 there).
FUSEDRNN_HOST_DEVICE double exp(double x) {
  const bool below = x < -708.0, above = x > 709.0;
  x = below ? -708.0 : x;
  x = above ? 709.0 : x;
  const DoubleReduction d = reduce_for_exp(x);
  return d.two_n * expm1_reduced(d.r) + d.two_n;
}

template <typename T>
FUSEDRNN_HOST_DEVICE T sigmoid(T x) {
  return T(1) / (T(1) + math::exp(-x));
}

FUSEDRNN_HOST_DEVICE float tanh(float x) {
  // fabsf and copysignf are single bit operations once vectorised; ternaries on x < 0 are a
  // compare and a blend each (and must keep tanh(-0) = -0).
  const float ax = fabsf(x);
  // Large |x|: (1 - e^{-2|x|}) / (1 + e^{-2|x|}). Small |x| loses digits to cancellation there,
  // so an odd Taylor polynomial takes over below 0.125 (error below 1e-9 there).
  const float e = math::exp(-2.0f * ax);
  const float big = (1.0f - e) / (1.0f + e);
  const float x2 = ax * ax;
  const float small = ax * (1.0f + x2 * (-0.333333333f + x2 * (0.133333333f + x2 * -0.0539682540f)));
  return copysignf(ax < 0.125f ? small : big, x);
}

FUSEDRNN_HOST_DEVICE double tanh(double x) {
  // tanh|x| = -t / (2 + t) with t = expm1(-2|x|) = 2^n·expm1(r) + (2^n - 1): no cancellation at
  // small |x| (n = 0 there, t = expm1(r)), so one formula serves the whole range. Past |x| = 20
  // tanh is 1 in double; the clamp keeps 2^n normal.
  double ax = fabs(x);
  ax = ax > 20.0 ? 20.0 : ax;
  const DoubleReduction d = reduce_for_exp(-2.0 * ax);
  const double t = d.two_n * expm1_reduced(d.r) + (d.two_n - 1.0);
  return copysign(-t / (2.0 + t), x);
}

template <typename T>
FUSEDRNN_HOST_DEVICE T relu(T x) {
  return x > T(0) ? x : T(0);
}

}  // namespace math
}  // namespace fusedrnn
