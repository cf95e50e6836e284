// A block of gradient rows' terms of the weight and bias gradients in one single-threaded pass:
//   C1 = beta·C1 + Aᵀ·B1,  C2 = beta·C2 + Aᵀ·B2,  bias = beta·bias + Σ_r A[r, :]
// with A the rows' d(gates) [k, m] and B1, B2 the same rows' x_t and h_{t-1}: dW_ih, dW_hh and
// the bias in one kernel, where three BLAS calls and a column sum went before.
//
// Why its own kernel: these products are long in k (a chunk's rows) and narrow in the output
// (m × n1, m × n2 with n1, n2 = I, P), which oneDNN and MKL run well below the FMA rate on one
// thread. Single-threaded on the 2-core AMD EPYC (Zen 4), k = 1600: m 256, n 32 + 64 (LSTM at
// H 64) 0.71 ms (111 GFLOP/s) against oneDNN's 0.93 ms for the two products plus 0.05 for the bias
// sums; m 512, n 64 + 128: 3.0 ms (104 GFLOP/s) against 3.9.
#pragma once

#include <cstdint>

namespace fusedrnn {
namespace cpu {

// Whether the kernel takes an output of m rows (whole 16-float vectors of A's row).
inline bool weight_gradient_products_apply(int64_t m) { return m > 0 && m % 16 == 0; }

// Rows [0, k) of A (stride lda) against the same rows of B1 (n1 columns, stride ldb1) and B2
// (n2 columns, stride ldb2). c1, c2 are row-major [m, n1] and [m, n2]; any of c1, c2, bias may be
// null (not wanted). With beta 0 the outputs are written, never read.
void weight_gradient_products(int64_t k, int64_t m, const float* a, int64_t lda, const float* b1,
                              int64_t ldb1, int64_t n1, float* c1, int64_t ldc1, const float* b2,
                              int64_t ldb2, int64_t n2, float* c2, int64_t ldc2, float* bias,
                              float beta);

}  // namespace cpu
}  // namespace fusedrnn
