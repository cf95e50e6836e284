// C[m, n] = A[m, k]·Bt[k, n] + beta·C for a handful of rows m: the per-step recurrent product of
// a small batch (one thread's rows at batch 1-16), where a BLAS call's fixed cost (packing the
// rows of A, dispatch) exceeds the arithmetic. Bt is the fixed operand already transposed to
// [k, ld] with ld a multiple of 16 (zeros past n), so row p of Bt is 16-float vectors that every
// row of A scales by one broadcast value: up to 4 rows × 64 columns accumulate in registers.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "lanes.h"

namespace fusedrnn {
namespace cpu {

constexpr int64_t kSmallGemmRows = 8;  // rows up to which small_gemm beats the BLAS call

namespace small_gemm_detail {

using Vec16 = Lanes<float>;

// rows [0, R) × columns [j0, j0 + 16·NV) of C
template <int R, int NV>
void block(const float* a, int64_t lda, const float* bt, int64_t ldbt, int64_t n, int64_t k,
           float beta, float* c, int64_t ldc, int64_t j0) {
  Vec16 acc[R][NV] = {};
  for (int64_t p = 0; p < k; ++p) {
    Vec16 w[NV];
    for (int q = 0; q < NV; ++q) w[q] = load_lanes(bt + p * ldbt + j0 + 16 * q);
    for (int i = 0; i < R; ++i) {
      const float s = a[i * lda + p];
      for (int q = 0; q < NV; ++q) acc[i][q] += s * w[q];
    }
  }
  for (int i = 0; i < R; ++i) {
    for (int q = 0; q < NV; ++q) {
      float out[16];
      store_lanes(out, acc[i][q]);
      const int64_t j = j0 + 16 * q, width = std::min<int64_t>(16, n - j);
      float* row = c + i * ldc + j;
      if (beta == 0.0f) {
        for (int64_t l = 0; l < width; ++l) row[l] = out[l];
      } else {
        for (int64_t l = 0; l < width; ++l) row[l] = beta * row[l] + out[l];
      }
    }
  }
}

template <int R>
void rows(const float* a, int64_t lda, const float* bt, int64_t ldbt, int64_t n, int64_t k,
          float beta, float* c, int64_t ldc) {
  int64_t j0 = 0;
  for (; j0 + 64 <= ldbt; j0 += 64) block<R, 4>(a, lda, bt, ldbt, n, k, beta, c, ldc, j0);
  switch ((ldbt - j0) / 16) {
    case 3: block<R, 3>(a, lda, bt, ldbt, n, k, beta, c, ldc, j0); break;
    case 2: block<R, 2>(a, lda, bt, ldbt, n, k, beta, c, ldc, j0); break;
    case 1: block<R, 1>(a, lda, bt, ldbt, n, k, beta, c, ldc, j0); break;
    default: break;
  }
}

}  // namespace small_gemm_detail

// ld of the transposed operand for n columns
inline int64_t small_gemm_ld(int64_t n) { return (n + 15) / 16 * 16; }

inline void small_gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                       const float* bt, int64_t ldbt, float beta, float* c, int64_t ldc) {
  using namespace small_gemm_detail;
  int64_t i = 0;
  for (; i + 4 <= m; i += 4) rows<4>(a + i * lda, lda, bt, ldbt, n, k, beta, c + i * ldc, ldc);
  switch (m - i) {
    case 3: rows<3>(a + i * lda, lda, bt, ldbt, n, k, beta, c + i * ldc, ldc); break;
    case 2: rows<2>(a + i * lda, lda, bt, ldbt, n, k, beta, c + i * ldc, ldc); break;
    case 1: rows<1>(a + i * lda, lda, bt, ldbt, n, k, beta, c + i * ldc, ldc); break;
    default: break;
  }
}

}  // namespace cpu
}  // namespace fusedrnn
