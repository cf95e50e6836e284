// Row-wise layer normalisation without its affine part, shared by the LayerNorm cells on CPU and
// GPU: x̂ = (v − mean(v))·rstd with rstd = 1/sqrt(var(v) + eps), and its backward.
#pragma once

#include <cmath>

#include "activations.h"
#include "simd_sum.h"

// The row loops of the LayerNorm cells: the row pointers never overlap, which GCC cannot prove,
// so without this it would not vectorise them.
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#define FUSEDRNN_ROW_LOOP FUSEDRNN_PRAGMA(GCC ivdep)
#else
#define FUSEDRNN_ROW_LOOP
#endif

namespace fusedrnn {
namespace ln {

template <typename T>
FUSEDRNN_HOST_DEVICE T rsqrt(T v) {
#if defined(__CUDA_ARCH__)
  return T(1) / ::sqrt(v);
#else
  return T(1) / std::sqrt(v);
#endif
}

// Writes x̂ of v[0, n) to out (which may alias v) and returns rstd. Two passes over v: the mean
// first, then the centred variance, which stays accurate when |mean| >> std.
template <typename T>
FUSEDRNN_HOST_DEVICE T normalize(const T* v, int64_t n, T eps, T* out) {
  T sum = T(0);
  FUSEDRNN_SIMD_SUM(sum)
  for (int64_t k = 0; k < n; ++k) sum += v[k];
  const T mean = sum / T(n);
  T sq = T(0);
  FUSEDRNN_SIMD_SUM(sq)
  for (int64_t k = 0; k < n; ++k) {
    const T d = v[k] - mean;
    sq += d * d;
  }
  const T rstd = rsqrt(sq / T(n) + eps);
  FUSEDRNN_ROW_LOOP
  for (int64_t k = 0; k < n; ++k) out[k] = (v[k] - mean) * rstd;
  return rstd;
}

// Gradient through x̂ = normalize(v): with u = dL/dx̂ (the affine gain already applied),
//   dL/dv = rstd·(u − mean(u) − x̂·mean(u·x̂)).
// u[k] = du[k]·gain[k] is formed on the fly so callers need no scratch row.
template <typename T>
FUSEDRNN_HOST_DEVICE void normalize_backward(const T* du, const T* gain, const T* xhat, T rstd,
                                             int64_t n, T* dv) {
  T su = T(0), sux = T(0);
  FUSEDRNN_SIMD_SUM(su, sux)
  for (int64_t k = 0; k < n; ++k) {
    const T u = du[k] * gain[k];
    su += u;
    sux += u * xhat[k];
  }
  const T mu = su / T(n), mux = sux / T(n);
  FUSEDRNN_ROW_LOOP
  for (int64_t k = 0; k < n; ++k) dv[k] = rstd * (du[k] * gain[k] - mu - xhat[k] * mux);
}

}  // namespace ln
}  // namespace fusedrnn
