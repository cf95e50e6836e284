// A block of gradient rows' terms of the weight and bias gradients in one single-threaded pass:
//   dW_ih = beta·dW_ih + dG_xᵀ·X,  dW_hh = beta·dW_hh + dG_hᵀ·H_prev,  biases = Σ_r rows of dG
// with dG the rows' gradient columns [k, ·] (the x side's and the h side's, which for LSTM and
// Elman cells are the same columns) and X, H_prev the same rows' x_t and h_{t-1}: the weight and
// bias gradients in one kernel, where two or three BLAS calls and column sums went before.
//
// Why its own kernel: the products are long in k (a chunk's rows) and narrow in the output (G·H
// rows by I or P columns), which the BLAS runs well below the FMA rate on one thread, and each
// BLAS call costs about 10 µs, much of a product over the few hundred rows of a GRU's or
// LayerNorm cell's chunk. Single-threaded on the 2-core AMD EPYC (Zen 4), k = 1600: G·H 256,
// I 32, P 64 (LSTM at H 64) 0.69 ms (114 GFLOP/s) against 0.93 ms for torch.mm's two products
// plus 0.05 for the bias sums; G·H 512, I 64, P 128: 2.85 ms (110 GFLOP/s) against 3.9.
#pragma once

#include <cstdint>

namespace fusedrnn {
namespace cpu {

// One output of the kernel over the same rows of A: C[m, n] = beta·C + A[:, a_col : a_col + m]ᵀ·B
// and bias[m] = beta·bias + Σ_r A[r, a_col : a_col + m]. B's rows match A's (stride ldb); c is
// row-major [m, n] (stride ldc); c and bias may be null (not wanted); with beta 0 neither is read.
struct GradientTerm {
  int64_t a_col, m;
  const float* b;
  int64_t ldb, n;
  float* c;
  int64_t ldc;
  float* bias;
};

// Whether the kernel takes a term of m output rows (whole 16-float vectors of A's row).
inline bool weight_gradient_products_apply(int64_t m) { return m > 0 && m % 16 == 0; }

// The terms' output rows in units of 16, counted over the terms in order.
int64_t gradient_row_units(const GradientTerm* terms, int count);

// Rows [0, k) of A (stride lda) into the terms' output rows [16·u0, 16·u1) (gradient_row_units):
// threads taking disjoint unit ranges write disjoint outputs.
void weight_gradient_products(int64_t k, const float* a, int64_t lda, const GradientTerm* terms,
                              int count, float beta, int64_t u0, int64_t u1);

}  // namespace cpu
}  // namespace fusedrnn
