// Row-major GEMM for the CPU drivers: C[m,n] = alpha·op(A)·op(B) + beta·C.
//
// It calls the BLAS that torch itself links (MKL on x86 wheels) directly, because one ATen
// at::mm call costs ~2 µs of dispatch, more than the whole per-step GEMM of a small RNN. The
// recurrent weight, which multiplies every step, is transposed once per call for small_gemm
// (FixedRightOperand below).
// Large float products (at least 4M multiply-adds) go to oneDNN's matmul instead, which is
// faster than MKL on CPUs where MKL does not pick its best kernels (AMD); on Intel CPUs they stay
// with MKL. FUSEDRNN_BLAS=mkl keeps everything on the BLAS, =onednn sends them to oneDNN on any
// CPU. Where those symbols are absent (other torch builds) it falls back to
// ATen.
//
// Reduced precision follows torch's own switch: with torch.set_float32_matmul_precision("medium")
// (or torch.backends.mkldnn.{matmul,rnn}.fp32_precision = "bf16") float GEMMs large enough to
// repay the conversion go through ATen, whose oneDNN path multiplies in bf16 with fp32
// accumulation (AMX where the CPU has it), exactly as torch.nn's own matmuls then do.
#pragma once

#include <cstdint>
#include <memory>

namespace fusedrnn {
namespace cpu {

// Whether torch allows bf16 for float32 matmuls or RNNs right now (read once per op call).
bool reduced_precision_allowed();

// Whether a float product of this size would multiply in bf16 now (reduced precision allowed and
// the product large enough to repay the conversion).
bool reduced_precision_applies(int64_t m, int64_t n, int64_t k);

// Whether a float product of this size goes to oneDNN, which wants plain operands (rows of a
// matrix adjacent in memory): a caller holding a column block of a wider matrix does better to
// copy it out first than to hand it to the BLAS, which takes strided operands but runs slower.
bool plain_operands_pay(int64_t m, int64_t n, int64_t k);

// Whether this is an Intel CPU, where MKL and oneDNN run the kernels they tune hardest: their
// whole-sequence products there beat small_gemm's per-step ones by more than on AMD (read once).
bool vendor_tuned_blas();

template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
          int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

// B fixed across many products with different A (the recurrent weight). For float, when `uses`
// products repay it (a copy costs about one product), op(B) is transposed once into the layout of
// small_gemm; other types and reduced precision call gemm/ATen per product. Products with any m
// up to max_m are allowed.
template <typename T>
class FixedRightOperand {
 public:
  FixedRightOperand(bool trans_b, int64_t max_m, int64_t n, int64_t k, const T* b, int64_t ldb,
                    int64_t uses, bool reduced_precision = reduced_precision_allowed());
  // C[m,n] = A[m,k]·op(B) + beta·C
  void multiply(int64_t m, const T* a, int64_t lda, T beta, T* c, int64_t ldc) const;

 private:
  void multiply_transposed(int64_t m, const T* a, int64_t lda, T beta, T* c, int64_t ldc) const;

  bool trans_b_, reduced_precision_, panels_ = false;
  int64_t max_m_, n_, k_, ldb_;
  const T* b_;
  // op(B) as [k, n] rows padded to 16 floats, for small_gemm, or in small_gemm_panels' panels
  // (panels_; float only)
  std::unique_ptr<T[]> transposed_;
  // op(B) in MKL's packed format (mkl_packed_applies; float only)
  std::unique_ptr<float[]> mkl_packed_;
};

// W_ih [n + n_own, k1] and W_hh [n + n_own, k2] transposed once into panels, so that a step's
// x_t·W_ihᵀ + h_{t-1}·W_hhᵀ comes out of a single small_gemm over [x_t | h_{t-1}] (float only):
// the first n columns as one sum (all of an LSTM's gates, a GRU's r and z), the last n_own of each
// side apart (a GRU's n gate, whose h side r scales: b_n = h_{t-1}·W_hnᵀ, a_n = x_t·W_inᵀ).
class StackedRightOperand {
 public:
  StackedRightOperand(int64_t n, const float* w1, int64_t k1, const float* w2, int64_t k2,
                      int64_t n_own = 0);
  // C[m, 0:n] = [A1[m,k1] | A2[m,k2]]·[W1 | W2][0:n]ᵀ, C[m, n:n+n_own] = A2·W2[n:n+n_own]ᵀ and
  // C1[m, 0:n_own] = A1·W1[n:n+n_own]ᵀ (each overwritten)
  void multiply(int64_t m, const float* a1, int64_t lda1, const float* a2, int64_t lda2,
                float* c, int64_t ldc, float* c1 = nullptr, int64_t ldc1 = 0) const;

 private:
  int64_t n_, n_own_, k1_, k2_;
  std::unique_ptr<float[]> summed_, own1_, own2_;
};

}  // namespace cpu
}  // namespace fusedrnn
