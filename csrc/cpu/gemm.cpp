#include "gemm.h"

#include "small_gemm.h"

#include <dlfcn.h>

#include <cstdlib>
#include <string>

#include <ATen/Context.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/from_blob.h>
#include <c10/util/Exception.h>

namespace fusedrnn {
namespace cpu {
namespace {

// Fortran BLAS and MKL's CBLAS packed API, looked up at run time in the libraries torch loaded.
using sgemm_fn = void (*)(const char*, const char*, const int*, const int*, const int*,
                          const float*, const float*, const int*, const float*, const int*,
                          const float*, float*, const int*);
using dgemm_fn = void (*)(const char*, const char*, const int*, const int*, const int*,
                          const double*, const double*, const int*, const double*, const int*,
                          const double*, double*, const int*);
using pack_size_fn = size_t (*)(int, int, int, int);
using spack_fn = void (*)(int, int, int, int, int, int, float, const float*, int, float*);
using scompute_fn = void (*)(int, int, int, int, int, int, const float*, int, const float*, int,
                             float, float*, int);

// CBLAS enum values (fixed by the CBLAS standard and MKL's headers).
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112, kPacked = 151, kBMatrix = 162;

// at::native::mkldnn_matmul(mat1, mat2, result, beta, alpha): oneDNN's matmul as ATen wraps it,
// exported by libtorch_cpu but with no header shipped; looked up at run time, so builds of torch
// without oneDNN simply keep the BLAS.
using onednn_matmul_fn = void (*)(const at::Tensor&, const at::Tensor&, const at::Tensor&, float,
                                  float);
constexpr const char* kOneDnnMatmulSymbol = "_ZN2at6native13mkldnn_matmulERKNS_6TensorES3_S3_ff";

struct Blas {
  onednn_matmul_fn onednn_matmul = nullptr;
  sgemm_fn sgemm = nullptr;
  dgemm_fn dgemm = nullptr;
  pack_size_fn spack_size = nullptr;
  spack_fn spack = nullptr;
  scompute_fn scompute = nullptr;
  Blas() {
    sgemm = reinterpret_cast<sgemm_fn>(dlsym(RTLD_DEFAULT, "sgemm_"));
    dgemm = reinterpret_cast<dgemm_fn>(dlsym(RTLD_DEFAULT, "dgemm_"));
    spack_size = reinterpret_cast<pack_size_fn>(dlsym(RTLD_DEFAULT, "cblas_sgemm_pack_get_size"));
    spack = reinterpret_cast<spack_fn>(dlsym(RTLD_DEFAULT, "cblas_sgemm_pack"));
    scompute = reinterpret_cast<scompute_fn>(dlsym(RTLD_DEFAULT, "cblas_sgemm_compute"));
    if (!(spack_size && spack && scompute)) spack_size = nullptr;
    const char* choice = std::getenv("FUSEDRNN_BLAS");  // "mkl": the BLAS only (comparisons)
    if (!(choice && std::string(choice) == "mkl")) {
      onednn_matmul = reinterpret_cast<onednn_matmul_fn>(dlsym(RTLD_DEFAULT, kOneDnnMatmulSymbol));
    }
  }
};

const Blas& blas() {
  static const Blas instance;
  return instance;
}

template <typename T>
at::Tensor view(const T* p, bool trans, int64_t rows, int64_t cols, int64_t ld) {
  // op(X) is rows x cols; X itself is stored row-major with leading dimension ld
  auto opts = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  if (!trans) return at::from_blob(const_cast<T*>(p), {rows, cols}, {ld, 1}, opts);
  return at::from_blob(const_cast<T*>(p), {cols, rows}, {ld, 1}, opts).t();
}

template <typename T>
void aten_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda,
               const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  auto cv = view(c, false, m, n, ldc);
  at::addmm_out(cv, cv, view(a, ta, m, k, lda), view(b, tb, k, n, ldb), beta, alpha);
}

// Large float GEMMs go to oneDNN's matmul: its JIT kernels use AVX-512 on any CPU that has it,
// while MKL's sgemm runs slower code paths on AMD (measured on a 2-core EPYC: 130-150 GFLOP/s for
// MKL against oneDNN's 180-200). Each call costs about 10 µs of primitive lookup, so smaller
// products (most per-step ones) stay with the BLAS and its packed weights.
constexpr int64_t kMinOneDnnWork = int64_t(1) << 22;

bool worth_onednn(int64_t m, int64_t n, int64_t k) {
  return blas().onednn_matmul && m * n * k >= kMinOneDnnWork;
}

void onednn_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                 int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  blas().onednn_matmul(view(a, ta, m, k, lda), view(b, tb, k, n, ldb), view(c, false, m, n, ldc),
                       beta, alpha);
}

// Below about 4M multiply-adds the bf16 conversion and the ATen call cost more than they save
// (measured with torch.addmm on 2 threads: 1.2x faster at 64x128x512, 0.5x at 64x64x256).
constexpr int64_t kMinReducedPrecisionWork = int64_t(1) << 22;

bool worth_reduced_precision(bool allowed, int64_t m, int64_t n, int64_t k) {
  return allowed && m * n * k >= kMinReducedPrecisionWork;
}

template <typename F, typename T>
void fortran_gemm(F fn, bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
                  int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  // Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: swap the operands.
  const int im = static_cast<int>(n), in = static_cast<int>(m), ik = static_cast<int>(k);
  const int ilda = static_cast<int>(ldb), ildb = static_cast<int>(lda), ildc = static_cast<int>(ldc);
  fn(tb ? "T" : "N", ta ? "T" : "N", &im, &in, &ik, &alpha, b, &ilda, a, &ildb, &beta, c, &ildc);
}

}  // namespace

bool reduced_precision_allowed() {
  const auto& ctx = at::globalContext();
  const auto bf16 = at::Float32Precision::BF16;
  return ctx.float32Precision(at::Float32Backend::MKLDNN, at::Float32Op::MATMUL) == bf16 ||
         ctx.float32Precision(at::Float32Backend::MKLDNN, at::Float32Op::RNN) == bf16;
}

template <>
void gemm<float>(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                 int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (worth_reduced_precision(reduced_precision_allowed(), m, n, k)) {
    return aten_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  if (worth_onednn(m, n, k)) return onednn_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  if (blas().sgemm) return fortran_gemm(blas().sgemm, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  aten_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

template <>
void gemm<double>(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
                  int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (blas().dgemm) return fortran_gemm(blas().dgemm, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  aten_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

template <typename T>
FixedRightOperand<T>::FixedRightOperand(bool trans_b, int64_t max_m, int64_t n, int64_t k,
                                        const T* b, int64_t ldb, int64_t uses,
                                        bool reduced_precision)
    : trans_b_(trans_b), reduced_precision_(reduced_precision), max_m_(max_m), n_(n), k_(k), ldb_(ldb), b_(b) {
  constexpr int64_t kMinUsesToPack = 4;
  if constexpr (std::is_same_v<T, float>) {
    if (worth_reduced_precision(reduced_precision_, max_m, n, k)) return;  // ATen multiplies
    if (worth_onednn(max_m, n, k)) return;
    // the rows one thread multiplies at a small batch: a transposed copy for small_gemm
    if (uses >= kMinUsesToPack && max_m <= 2 * kSmallGemmRows && n > 0 && k > 0) {
      const int64_t ld = small_gemm_ld(n);
      transposed_.reset(new float[k * ld]());
      for (int64_t p = 0; p < k; ++p) {
        for (int64_t j = 0; j < n; ++j) transposed_[p * ld + j] = trans_b ? b[j * ldb + p] : b[p * ldb + j];
      }
    }
    // packed for products of more rows than small_gemm takes (one thread owning the batch)
    const bool small_covers_all = transposed_ && max_m <= kSmallGemmRows;
    if (blas().spack_size && !small_covers_all && uses >= kMinUsesToPack && max_m > 0 && n > 0 &&
        k > 0) {
      const size_t bytes = blas().spack_size(kBMatrix, max_m, n, k);
      packed_.reset(new float[bytes / sizeof(float) + 1]);
      blas().spack(kRowMajor, kBMatrix, trans_b ? kTrans : kNoTrans, max_m, n, k, 1.0f, b, ldb,
                   packed_.get());
    }
  }
}

template <typename T>
void FixedRightOperand<T>::multiply(int64_t m, const T* a, int64_t lda, T beta, T* c,
                                    int64_t ldc) const {
  TORCH_INTERNAL_ASSERT(m <= max_m_);
  if (m == 0 || n_ == 0) return;
  if constexpr (std::is_same_v<T, float>) {
    if (worth_reduced_precision(reduced_precision_, m, n_, k_)) {
      return aten_gemm(false, trans_b_, m, n_, k_, T(1), a, lda, b_, ldb_, beta, c, ldc);
    }
    if (transposed_ && m <= kSmallGemmRows) {
      return small_gemm(m, n_, k_, a, lda, transposed_.get(), small_gemm_ld(n_), beta, c, ldc);
    }
    if (packed_ && k_ > 0) {
      blas().scompute(kRowMajor, kNoTrans, kPacked, m, n_, k_, a, lda, packed_.get(), ldb_, beta,
                      c, ldc);
      return;
    }
  }
  gemm<T>(false, trans_b_, m, n_, k_, T(1), a, lda, b_, ldb_, beta, c, ldc);
}

template class FixedRightOperand<float>;
template class FixedRightOperand<double>;

}  // namespace cpu
}  // namespace fusedrnn
