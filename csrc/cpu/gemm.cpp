#include "gemm.h"

#include "buffer_pool.h"
#include "forced_choice.h"
#include "parallel_blocks.h"
#include "small_gemm.h"
#include "transpose.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/from_blob.h>
#include <c10/util/Exception.h>

namespace fusedrnn {
namespace cpu {
namespace {

// The Fortran BLAS, looked up at run time in the libraries torch loaded.
using sgemm_fn = void (*)(const char*, const char*, const int*, const int*, const int*,
                          const float*, const float*, const int*, const float*, const int*,
                          const float*, float*, const int*);
using dgemm_fn = void (*)(const char*, const char*, const int*, const int*, const int*,
                          const double*, const double*, const int*, const double*, const int*,
                          const double*, double*, const int*);


// at::native::mkldnn_matmul(mat1, mat2, result, beta, alpha): oneDNN's matmul as ATen wraps it,
// exported by libtorch_cpu but with no header shipped; looked up at run time, so builds of torch
// without oneDNN simply keep the BLAS.
using onednn_matmul_fn = void (*)(const at::Tensor&, const at::Tensor&, const at::Tensor&, float,
                                  float);
constexpr const char* kOneDnnMatmulSymbol = "_ZN2at6native13mkldnn_matmulERKNS_6TensorES3_S3_ff";

// MKL's per-thread thread count, C interface (mkl_set_num_threads_local in mkl.h; the lowercase
// symbol is the Fortran one, which takes a pointer): returns the previous count, 0 meaning the
// global setting. Absent where torch links another BLAS.
using set_threads_local_fn = int (*)(int);

// MKL's packed GEMM, C interface (mkl.h): the fixed operand packed once, then multiplied per step.
using sgemm_pack_get_size_fn = size_t (*)(int identifier, int m, int n, int k);
using sgemm_pack_fn = void (*)(int layout, int identifier, int trans, int m, int n, int k,
                               float alpha, const float* src, int ld, float* dest);
using sgemm_compute_fn = void (*)(int layout, int transa, int transb, int m, int n, int k,
                                  const float* a, int lda, const float* b, int ldb, float beta,
                                  float* c, int ldc);
// mkl_cblas.h's enumerators
constexpr int kCblasRowMajor = 101, kCblasNoTrans = 111, kCblasTrans = 112, kCblasBMatrix = 162,
              kCblasPacked = 151;

struct Blas {
  onednn_matmul_fn onednn_matmul = nullptr;
  sgemm_fn sgemm = nullptr;
  dgemm_fn dgemm = nullptr;
  set_threads_local_fn set_threads_local = nullptr;
  sgemm_pack_get_size_fn sgemm_pack_get_size = nullptr;
  sgemm_pack_fn sgemm_pack = nullptr;
  sgemm_compute_fn sgemm_compute = nullptr;
  Blas() {
    sgemm_pack_get_size =
        reinterpret_cast<sgemm_pack_get_size_fn>(dlsym(RTLD_DEFAULT, "cblas_sgemm_pack_get_size"));
    sgemm_pack = reinterpret_cast<sgemm_pack_fn>(dlsym(RTLD_DEFAULT, "cblas_sgemm_pack"));
    sgemm_compute = reinterpret_cast<sgemm_compute_fn>(dlsym(RTLD_DEFAULT, "cblas_sgemm_compute"));
    sgemm = reinterpret_cast<sgemm_fn>(dlsym(RTLD_DEFAULT, "sgemm_"));
    dgemm = reinterpret_cast<dgemm_fn>(dlsym(RTLD_DEFAULT, "dgemm_"));
    set_threads_local =
        reinterpret_cast<set_threads_local_fn>(dlsym(RTLD_DEFAULT, "MKL_Set_Num_Threads_Local"));
    // On Intel CPUs MKL runs its own tuned kernels and the large products stay with it: layers
    // 1.02-1.13x faster at H = 256 and 512 than through oneDNN's matmul, level within noise at
    // H 64-128 (alternating processes, session 22's Xeon). FUSEDRNN_BLAS=mkl or =onednn forces
    // either (comparisons).
    const char* env = std::getenv("FUSEDRNN_BLAS");
    const std::string choice = env ? env : "";
    if (choice == "onednn" || (choice != "mkl" && !vendor_tuned_blas())) {
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
// products stay with the BLAS (per-step recurrent products: small_gemm, see FixedRightOperand).
constexpr int64_t kMinOneDnnWork = int64_t(1) << 22;

bool worth_onednn(int64_t m, int64_t n, int64_t k) {
  return blas().onednn_matmul && m * n * k >= kMinOneDnnWork;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// A product into a column block of a wider matrix goes through a plain staging block of about
// this many floats (1 MiB), in blocks of rows, each copied out while it is still in cache. It
// replaced a whole-product buffer that each thread kept for its next call (up to 64 MB, held for
// the life of the thread and outside FUSEDRNN_KEEP_MB); LSTM training steps, whose forward takes
// this path, were unchanged within noise (alternating processes at the bench's batched shapes).
constexpr int64_t kStagingFloats = int64_t(1) << 18;

// ATen's mkldnn_matmul copies an operand that is neither contiguous nor a transposed contiguous
// matrix (a column block of a wider one, as GRU's input-side gradient columns are) before
// multiplying: at N·H floats per call that copy cost more than oneDNN gains over the BLAS
// (GRU training at B 64, T 50, H 256 spent 18% of its time in it). The BLAS takes strides as is.
bool plain_layout(bool trans, int64_t rows, int64_t cols, int64_t ld) {
  return ld == (trans ? rows : cols);
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

// Below this many multiply-adds a product runs on the calling thread. MKL otherwise opens an
// OpenMP region even for a 2×24×4 product: GRUCell and LSTMCell calls at batch 2, H 8 took
// 0.79-0.81x the time on the calling thread (alternating processes). A thread hand-off pays from
// about 2^16 multiply-adds per thread (parallel_blocks.h).
constexpr int64_t kMinThreadedBlasWork = int64_t(1) << 17;

// Runs call() (one MKL product of `multiply_adds`), on the calling thread alone where the product
// is below kMinThreadedBlasWork (inside a parallel region MKL runs there anyway).
template <typename Call>
void call_blas(int64_t multiply_adds, const Call& call) {
  const auto set_threads = blas().set_threads_local;
  const bool serial =
      set_threads && multiply_adds < kMinThreadedBlasWork && !at::in_parallel_region();
  const int previous = serial ? set_threads(1) : 0;
  call();
  if (serial) set_threads(previous);
}

template <typename F, typename T>
void fortran_gemm(F fn, bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
                  int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  // Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: swap the operands.
  const int im = static_cast<int>(n), in = static_cast<int>(m), ik = static_cast<int>(k);
  const int ilda = static_cast<int>(ldb), ildb = static_cast<int>(lda), ildc = static_cast<int>(ldc);
  call_blas(m * n * k, [&] {
    fn(tb ? "T" : "N", ta ? "T" : "N", &im, &in, &ik, &alpha, b, &ilda, a, &ildb, &beta, c, &ildc);
  });
}

// out[p, j] = op(B)[p, j] for the k×n matrix op(B), threads taking blocks of 16 rows p; a
// transposed B goes through 16 × 16 register tiles (transpose.h), so that its strided side stays
// in cache (the recurrent weight of H = 512 is 4 MB).
void copy_transposed(bool trans_b, int64_t n, int64_t k, const float* b, int64_t ldb, float* out,
                     int64_t ld) {
  constexpr int64_t kTile = 16;
  at::parallel_for(0, (k + kTile - 1) / kTile, 16, [&](int64_t t0, int64_t t1) {
    const int64_t p0 = t0 * kTile, p1 = std::min(k, t1 * kTile);
    if (trans_b) {
      transpose_block(b + p0, ldb, n, p1 - p0, out + p0 * ld, ld);
    } else {
      for (int64_t p = p0; p < p1; ++p) std::memcpy(out + p * ld, b + p * ldb, sizeof(float) * n);
    }
  });
}

// op(B), k × n, into small_gemm_panels' layout: rows [row0, row0 + k) of panels that hold `rows`
// rows each (a stacked operand packs its two matrices one after the other). Every entry is
// written, the padding columns past n as zeros. Threads take whole panels.
void pack_panels(bool trans_b, int64_t n, int64_t k, const float* b, int64_t ldb, float* out,
                 int64_t rows, int64_t row0) {
  constexpr int64_t kPanel = 64;
  const int64_t padded = small_gemm_ld(n), panels = (padded + kPanel - 1) / kPanel;
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 16) / (kPanel * k + 1));
  at::parallel_for(0, panels, grain, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t j0 = q * kPanel, width = std::min(kPanel, padded - j0);
      const int64_t cols = std::min(width, n - j0);
      float* dst = out + j0 * rows + row0 * width;
      if (trans_b) {  // dst[p·width + r] = B[j0 + r, p]
        transpose_block(b + j0 * ldb, ldb, cols, k, dst, width);
      } else {
        for (int64_t p = 0; p < k; ++p) {
          std::memcpy(dst + p * width, b + p * ldb + j0, sizeof(float) * cols);
        }
      }
      if (cols < width) {
        for (int64_t p = 0; p < k; ++p) {
          std::fill(dst + p * width + cols, dst + (p + 1) * width, 0.0f);
        }
      }
    }
  });
}

// C[m, 0:n] = A·B from B packed in panels, the threads taking blocks of 64 columns when the
// product repays a hand-off (for_blocks; one block inside a parallel region).
void panels_product(int64_t m, int64_t n, const LeftOperand& a, const float* panels, float beta,
                    float* c, int64_t ldc) {
  for_blocks(n, m * n * (a.k + a.k2), 64, [&](int64_t j0, int64_t j1) {
    small_gemm_panels(m, j1, a, panels, beta, c, ldc, j0);
  });
}

}  // namespace

bool reduced_precision_applies(int64_t m, int64_t n, int64_t k) {
  return worth_reduced_precision(reduced_precision_allowed(), m, n, k);
}

bool plain_operands_pay(int64_t m, int64_t n, int64_t k) {
  return !worth_reduced_precision(reduced_precision_allowed(), m, n, k) && worth_onednn(m, n, k);
}

bool vendor_tuned_blas() {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  static const bool intel = [] {
    __builtin_cpu_init();  // may run before the library's own constructors did it
    return __builtin_cpu_is("intel") != 0;
  }();
  return intel;
#else
  return false;
#endif
}

bool reduced_precision_allowed() {
  const auto& ctx = at::globalContext();
  const auto bf16 = at::Float32Precision::BF16;
  return ctx.float32Precision(at::Float32Backend::MKLDNN, at::Float32Op::MATMUL) == bf16 ||
         ctx.float32Precision(at::Float32Backend::MKLDNN, at::Float32Op::RNN) == bf16;
}

// C = beta·C, what a product over k = 0 leaves (a cell with input_size 0): the BLAS refuses such
// a call (its lda must be at least 1), which left C unwritten.
namespace {
template <typename T>
void scale_only(int64_t m, int64_t n, T beta, T* c, int64_t ldc) {
  for (int64_t r = 0; r < m; ++r) {
    T* row = c + r * ldc;
    if (beta == T(0)) {
      std::fill(row, row + n, T(0));  // not 0·C: C may hold NaN
    } else {
      for (int64_t j = 0; j < n; ++j) row[j] *= beta;
    }
  }
}
}  // namespace

// The Fortran BLAS takes 32-bit sizes: past them (more than 2^31 - 1 rows, say) ATen's GEMM,
// which takes int64, instead of a silently truncated size.
bool fits_blas_int(int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb, int64_t ldc) {
  constexpr int64_t kMax = std::numeric_limits<int>::max();
  return m <= kMax && n <= kMax && k <= kMax && lda <= kMax && ldb <= kMax && ldc <= kMax;
}

template <>
void gemm<float>(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                 int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) return scale_only(m, n, beta, c, ldc);
  if (worth_reduced_precision(reduced_precision_allowed(), m, n, k)) {
    return aten_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  if (worth_onednn(m, n, k) && plain_layout(ta, m, k, lda) && plain_layout(tb, k, n, ldb)) {
    if (plain_layout(false, m, n, ldc)) return onednn_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    if (beta == 0.0f) {
      // C is a column block of a wider matrix (the input projection into the workspace's gate
      // columns): oneDNN into a plain staging block, then its rows copied out in parallel.
      // Against the BLAS writing C in place: LSTM inference at B 64, T 50, H 256 0.73x -> 0.93x
      // torch.nn. A block has enough rows for oneDNN to pay (kMinOneDnnWork), otherwise about
      // kStagingFloats.
      const int64_t block_rows = std::min(m, std::max(ceil_div(kMinOneDnnWork, n * k),
                                                      kStagingFloats / n));
      const PooledArray<float> staging(static_cast<size_t>(block_rows * n));
      for (int64_t r0 = 0; r0 < m; r0 += block_rows) {
        const int64_t rows = std::min(block_rows, m - r0);
        onednn_gemm(ta, tb, rows, n, k, alpha, a + (ta ? r0 : r0 * lda), lda, b, ldb, 0.0f,
                    staging.get(), n);
        at::parallel_for(0, rows, 64, [&](int64_t q0, int64_t q1) {
          for (int64_t r = q0; r < q1; ++r) {
            std::memcpy(c + (r0 + r) * ldc, staging.get() + r * n, sizeof(float) * n);
          }
        });
      }
      return;
    }
  }
  if (blas().sgemm && fits_blas_int(m, n, k, lda, ldb, ldc)) {
    return fortran_gemm(blas().sgemm, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  aten_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

template <>
void gemm<double>(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
                  int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) return scale_only(m, n, beta, c, ldc);
  if (blas().dgemm && fits_blas_int(m, n, k, lda, ldb, ldc)) {
    return fortran_gemm(blas().dgemm, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  aten_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// Whether FixedRightOperand packs a float weight with MKL's cblas_sgemm_pack and multiplies it
// with cblas_sgemm_compute instead of small_gemm: on Intel CPUs (vendor_tuned_blas), where MKL
// has the symbols, for products of at least kMinMklPackedRows rows by a weight of at least
// kMinMklPackedFloats (1 MB). Two threads each multiplying their half of the rows, per step, in
// a stand-alone copy on session 22's Xeon (small_gemm with its prefetches -> MKL packed):
// 128 × 2048 × 512 301 -> 336 GFLOP/s, 64 × 1024 × 256 299 -> 339, 32 × 512 × 192 292 -> 328.
// In the layers (FUSEDRNN_MKL_PACKED=0 against the default, one process): inference 1.06x for
// the LSTM at H = 256 and 512 and the GRU at 512, training 1.00-1.03x; but with the 256 KB
// weights of H = 128 training took 1.02-1.07x longer, so smaller weights keep small_gemm.
// FUSEDRNN_MKL_PACKED=0 or 1 turns it off, or on wherever MKL has the symbols (comparisons,
// tests; read per call).
constexpr int64_t kMinMklPackedRows = 8, kMinMklPackedFloats = int64_t(1) << 18;

static bool mkl_packed_applies(int64_t max_m, int64_t n, int64_t k) {
  const Blas& mkl = blas();
  if (!mkl.sgemm_pack_get_size || !mkl.sgemm_pack || !mkl.sgemm_compute) return false;
  if (!fits_blas_int(max_m, n, k, k, n, n)) return false;
  const int forced = forced_choice("FUSEDRNN_MKL_PACKED");
  if (forced >= 0) return forced == 1;
  return vendor_tuned_blas() && max_m >= kMinMklPackedRows && n * k >= kMinMklPackedFloats;
}

template <typename T>
FixedRightOperand<T>::FixedRightOperand(bool trans_b, int64_t max_m, int64_t n, int64_t k,
                                        const T* b, int64_t ldb, int64_t uses,
                                        bool reduced_precision)
    : trans_b_(trans_b), reduced_precision_(reduced_precision), max_m_(max_m), n_(n), k_(k), ldb_(ldb), b_(b) {
  constexpr int64_t kMinUsesToPack = 4;
  if constexpr (std::is_same_v<T, float>) {
    if (worth_reduced_precision(reduced_precision_, max_m, n, k)) return;  // ATen multiplies
    if (uses < kMinUsesToPack || max_m <= 0 || n <= 0 || k <= 0) return;  // gemm per product
    if (mkl_packed_applies(max_m, n, k)) {
      const Blas& mkl = blas();
      const int im = static_cast<int>(max_m), in = static_cast<int>(n), ik = static_cast<int>(k);
      const size_t bytes = mkl.sgemm_pack_get_size(kCblasBMatrix, im, in, ik);
      mkl_packed_.reset(new float[bytes / sizeof(float) + 1]);
      mkl.sgemm_pack(kCblasRowMajor, kCblasBMatrix, trans_b ? kCblasTrans : kCblasNoTrans, im, in,
                     ik, 1.0f, b, static_cast<int>(ldb), mkl_packed_.get());
      return;
    }
    // Otherwise a transposed copy for small_gemm, which beat both MKL's packed GEMM and oneDNN's
    // per-call matmul at every per-step size measured on the AMD EPYC (small_gemm.h). One or two
    // rows (batch 1 or 2) read Bt in 128-column blocks of a row-major copy (see small_gemm);
    // more rows read it in panels.
    const int64_t ld = small_gemm_ld(n);
    panels_ = max_m > 2;
    if (panels_) {
      transposed_.reset(new float[k * ld]);
      pack_panels(trans_b, n, k, b, ldb, transposed_.get(), k, 0);
    } else {
      transposed_.reset(new float[k * ld]());
      copy_transposed(trans_b, n, k, b, ldb, transposed_.get(), ld);
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
    if (mkl_packed_) {
      return call_blas(m * n_ * k_, [&] {
        blas().sgemm_compute(kCblasRowMajor, kCblasNoTrans, kCblasPacked, static_cast<int>(m),
                             static_cast<int>(n_), static_cast<int>(k_), a, static_cast<int>(lda),
                             mkl_packed_.get(), static_cast<int>(n_), beta, c,
                             static_cast<int>(ldc));
      });
    }
    if (transposed_) return multiply_transposed(m, a, lda, beta, c, ldc);
  }
  gemm<T>(false, trans_b_, m, n_, k_, T(1), a, lda, b_, ldb_, beta, c, ldc);
}

// Within a parallel region (a thread's own rows) one small_gemm; otherwise, when the product is
// big enough to repay a thread hand-off, the threads take blocks of 64 columns each.
template <typename T>
void FixedRightOperand<T>::multiply_transposed(int64_t m, const T* a, int64_t lda, T beta, T* c,
                                               int64_t ldc) const {
  if constexpr (std::is_same_v<T, float>) {
    if (panels_) {
      return panels_product(m, n_, LeftOperand{a, lda, k_}, transposed_.get(), beta, c, ldc);
    }
    const int64_t ld = small_gemm_ld(n_);
    for_blocks(n_, m * n_ * k_, 64, [&](int64_t j0, int64_t j1) {
      small_gemm(m, j1 - j0, k_, a, lda, transposed_.get() + j0, ld, beta, c + j0, ldc);
    });
  }
}

StackedRightOperand::StackedRightOperand(int64_t n, const float* w1, int64_t k1, const float* w2,
                                         int64_t k2, int64_t n_own)
    : n_(n), n_own_(n_own), k1_(k1), k2_(k2) {
  summed_.reset(new float[(k1 + k2) * small_gemm_ld(n)]);
  pack_panels(true, n, k1, w1, k1, summed_.get(), k1 + k2, 0);
  pack_panels(true, n, k2, w2, k2, summed_.get(), k1 + k2, k1);
  if (n_own > 0) {
    own1_.reset(new float[k1 * small_gemm_ld(n_own)]);
    own2_.reset(new float[k2 * small_gemm_ld(n_own)]);
    pack_panels(true, n_own, k1, w1 + n * k1, k1, own1_.get(), k1, 0);
    pack_panels(true, n_own, k2, w2 + n * k2, k2, own2_.get(), k2, 0);
  }
}

void StackedRightOperand::multiply(int64_t m, const float* a1, int64_t lda1, const float* a2,
                                   int64_t lda2, float* c, int64_t ldc, float* c1,
                                   int64_t ldc1) const {
  if (m == 0) return;
  panels_product(m, n_, LeftOperand{a1, lda1, k1_, a2, lda2, k2_}, summed_.get(), 0.0f, c, ldc);
  if (n_own_ == 0) return;
  panels_product(m, n_own_, LeftOperand{a2, lda2, k2_}, own2_.get(), 0.0f, c + n_, ldc);
  panels_product(m, n_own_, LeftOperand{a1, lda1, k1_}, own1_.get(), 0.0f, c1, ldc1);
}

template class FixedRightOperand<float>;
template class FixedRightOperand<double>;

}  // namespace cpu
}  // namespace fusedrnn
