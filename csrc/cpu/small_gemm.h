// C[m, n] = A[m, k]·Bt[k, n] + beta·C, single-threaded: the per-step recurrent product of one
// thread's rows, against a fixed operand transposed once per call to [k, ld] with ld a multiple
// of 16 (zeros past n). Row p of Bt is 16-float vectors that every row of A scales by one
// broadcast value; up to 6 rows × 64 columns accumulate in registers (24 of the 32 AVX-512
// registers, 4 more hold the Bt vectors). Measured single-threaded on the 2-core AMD EPYC (Zen 4)
// against MKL's sgemm with B pre-packed: 94 vs 82 GFLOP/s at 16×512×128, 96 vs 91 at
// 64×1024×256, 94 vs 86 at 64×2048×512; and without a BLAS call's fixed cost at 1-8 rows.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "lanes.h"

#if defined(__AVX512F__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#endif

namespace fusedrnn {
namespace cpu {

// ld of the transposed operand for n columns. Columns [j0, j1) of C alone: pass bt + j0, c + j0
// and n = j1 - j0, with j0 a multiple of 16.
inline int64_t small_gemm_ld(int64_t n) { return (n + 15) / 16 * 16; }

// The left operand A[m, k + k2]: its columns [0, k) are rows of a (stride lda), and columns
// [k, k + k2) rows of a2 (stride lda2), so that [x_t | h_{t-1}] multiplies a stacked
// [W_ih | W_hh]ᵀ in one product without being copied side by side; k2 = 0 for a plain matrix.
struct LeftOperand {
  const float* a;
  int64_t lda, k;
  const float* a2 = nullptr;
  int64_t lda2 = 0, k2 = 0;
  LeftOperand rows_from(int64_t i) const { return {a + i * lda, lda, k, a2 + i * lda2, lda2, k2}; }
};

namespace small_gemm_detail {

using Vec16 = Lanes<float>;

// Step p of the k loop into one set of accumulators; kFirst: the accumulators start as this
// step's products. Starting them at zero made GCC zero a stack copy of them with memset on every
// call (1.5 KB for 6 × 4 vectors), read only when k = 0: 1.4% of a LayerNormLSTM training step's
// perf samples at (32, 100, 64, 128), beside the 6 × 4 block's 20%. Whole training steps moved
// within the host's noise (0.90x-1.01x).
// Blocks of at least kMinPrefetchBlockRows rows ask for the Bt row kPrefetchRows steps of k
// ahead into L1 as they go: a block streams its Bt panel (16·NV floats a row, k rows: 128 KB at
// k = 512) from L2 or L3, and the hardware prefetchers left it waiting. Two threads each
// multiplying their half of the rows by all columns, per-step sizes of the speed grid, on the
// 2-core Intel Xeon of session 22: 128 × 2048 × 512 per step 278-302 -> 315-331 GFLOP/s,
// 64 × 1024 × 256 293-296 -> 299-322, 32 × 512 × 192 283-296 -> 308-316 (8 or 24 rows ahead
// gained less or lost). Blocks of one or two rows are load-bound already (a Bt vector per FMA).
constexpr int64_t kPrefetchRows = 16;
constexpr int kMinPrefetchBlockRows = 3;

template <int R, int NV, bool kFirst = false>
inline void multiply_add_step(const float* a, int64_t lda, const float* bt_row, int64_t ldbt,
                              int64_t p, Vec16 (&acc)[R][NV]) {
  if constexpr (R >= kMinPrefetchBlockRows) {
    // past Bt's end near the last steps: a prefetch does not fault
    for (int q = 0; q < NV; ++q) __builtin_prefetch(bt_row + kPrefetchRows * ldbt + 16 * q, 0, 3);
  }
  Vec16 w[NV];
  for (int q = 0; q < NV; ++q) {
    w[q] = load_lanes(bt_row + 16 * q);
#if defined(__AVX512F__) && (defined(__GNUC__) || defined(__clang__))
    // Keeps the vector in a register. Left alone, GCC folds the load into each row's FMA and
    // loads it R times: load-bound at half the FMA rate (50 against 94 GFLOP/s measured). Only
    // with AVX-512: without it no register holds 16 floats, and the constraint did not compile
    // (a build with FUSEDRNN_NATIVE=0).
    asm("" : "+v"(w[q]));
#endif
  }
  for (int i = 0; i < R; ++i) {
    const float s = a[i * lda + p];
    for (int q = 0; q < NV; ++q) {
      if constexpr (kFirst) {
        acc[i][q] = s * w[q];
      } else {
        acc[i][q] += s * w[q];
      }
    }
  }
}

// Independent accumulator sets over alternate steps of k: a block of one or two vectors (one
// row of a batch-1 backward's dh, H = 32) would otherwise wait on one FMA's latency per step.
// Single-threaded on the 2-core AMD EPYC (Zen 4), 1 × 32 × 128: 157 against 98 ns; wider blocks
// already hold enough independent sums (1 × 64 × 32 in two sets: 7% slower).
template <int R, int NV>
constexpr int accumulator_sets() {
  return R * NV <= 2 ? 2 : 1;
}

// Steps [p0, k) of one operand segment into acc (and, for small blocks, a second set `odd`).
template <int R, int NV>
[[gnu::always_inline]] inline void accumulate(const float* a, int64_t lda, const float* bt,
                                              int64_t ldbt, int64_t p0, int64_t k,
                                              Vec16 (&acc)[R][NV], Vec16 (&odd)[R][NV]) {
  int64_t p = p0;
  if constexpr (accumulator_sets<R, NV>() == 2) {
    for (; p + 2 <= k; p += 2) {
      multiply_add_step<R, NV>(a, lda, bt + p * ldbt, ldbt, p, acc);
      multiply_add_step<R, NV>(a, lda, bt + (p + 1) * ldbt, ldbt, p + 1, odd);
    }
  }
  for (; p < k; ++p) multiply_add_step<R, NV>(a, lda, bt + p * ldbt, ldbt, p, acc);
}

// row[0, width) = v[0, width) + beta·row[0, width), for a block's last, partial vector of a row.
// Out of line and taking v by value (in a register), so that the block's epilogue stays small:
// GCC keeps a block's accumulators in registers only where it unrolls that epilogue completely,
// and with the copy inline (a stack buffer, or masked AVX-512 loads and stores) it stopped doing
// so for the 3-6 row blocks when tuning for Intel cores.
[[gnu::noinline]] inline void store_partial(float* row, int64_t width, float beta, Vec16 v) {
#if defined(__AVX512F__) && (defined(__GNUC__) || defined(__clang__))
  const __mmask16 lanes = static_cast<__mmask16>((1u << width) - 1u);
  if (beta != 0.0f) {
    v = _mm512_fmadd_ps(_mm512_set1_ps(beta), _mm512_maskz_loadu_ps(lanes, row), v);
  }
  _mm512_mask_storeu_ps(row, lanes, v);
#else
  float out[16];
  store_lanes(out, v);
  for (int64_t l = 0; l < width; ++l) row[l] = (beta == 0.0f ? 0.0f : beta * row[l]) + out[l];
#endif
}

// rows [0, R) × columns [j0, j0 + 16·NV) of C, over both segments of A; bt points at the block's
// first column of Bt (row p at bt + p·ldbt). Never inlined: inlined into small_gemm, GCC kept the
// 1-row block's accumulators on the stack (an LSTM of batch 1 ran 1.6x slower).
template <int R, int NV>
[[gnu::noinline]] void block(const LeftOperand& a, const float* bt, int64_t ldbt, int64_t n,
                             float beta, float* c, int64_t ldc, int64_t j0) {
  Vec16 acc[R][NV];
  Vec16 odd[R][NV] = {};
  const float* bt2 = bt + a.k * ldbt;  // the second segment's rows of Bt
  if (a.k > 0) {
    multiply_add_step<R, NV, true>(a.a, a.lda, bt, ldbt, 0, acc);
    accumulate<R, NV>(a.a, a.lda, bt, ldbt, 1, a.k, acc, odd);
    accumulate<R, NV>(a.a2, a.lda2, bt2, ldbt, 0, a.k2, acc, odd);
  } else if (a.k2 > 0) {
    multiply_add_step<R, NV, true>(a.a2, a.lda2, bt2, ldbt, 0, acc);
    accumulate<R, NV>(a.a2, a.lda2, bt2, ldbt, 1, a.k2, acc, odd);
  } else {  // no products: C = beta·C
    for (int i = 0; i < R; ++i) {
      for (int q = 0; q < NV; ++q) acc[i][q] = Vec16{};
    }
  }
  if constexpr (accumulator_sets<R, NV>() == 2) {
    for (int i = 0; i < R; ++i) {
      for (int q = 0; q < NV; ++q) acc[i][q] += odd[i][q];
    }
  }
  for (int i = 0; i < R; ++i) {
    for (int q = 0; q < NV; ++q) {
      // Spelled this way on purpose: computing the partial vector's width before this test (one
      // row pointer for both paths) made GCC 12 keep every accumulator on the stack in the loop
      // above (GRU and LSTM inference at H 512 took 1.8x as long); tests/test_codegen.py checks
      // the built blocks for multiply-adds from the stack.
      float* full = c + i * ldc + j0 + 16 * q;
      if (j0 + 16 * (q + 1) <= n) {  // a whole vector of C: one store, no loop over lanes
        store_lanes(full, beta == 0.0f ? acc[i][q] : beta * load_lanes(full) + acc[i][q]);
        continue;
      }
      const int64_t j = j0 + 16 * q;  // the last, partial vector of a row
      store_partial(c + i * ldc + j, std::min<int64_t>(16, n - j), beta, acc[i][q]);
    }
  }
}

// Rows in a block of a panel NV vectors wide: about 24 accumulators, so that each step of k
// loads one broadcast per NV multiply-adds and NV Bt vectors. Narrow panels (the cells' batch
// lanes in the weights' orientation: 16-48 columns) then load fewer values per multiply-add.
// Single-threaded on the 2-core Intel Xeon, 64 rows × 32 columns, k = 128: 146 GFLOP/s in
// blocks of 6 rows, 175 in 12 (8: 160, 16: 141); 64 × 16: 121 -> 137 in 12 (24: 61, spilled);
// 64 × 48: 169 -> 185 in 8.
template <int NV>
constexpr int tall_block_rows() {
  return NV >= 4 ? 6 : NV == 3 ? 8 : 12;
}

// block<R, NV> for a row count known at run time, 1 <= rows <= R.
template <int R, int NV>
void block_of_rows(int64_t rows, const LeftOperand& a, const float* bt, int64_t ldbt, int64_t n,
                   float beta, float* c, int64_t ldc, int64_t j0) {
  if constexpr (R > 1) {
    if (rows < R) return block_of_rows<R - 1, NV>(rows, a, bt, ldbt, n, beta, c, ldc, j0);
  }
  block<R, NV>(a, bt, ldbt, n, beta, c, ldc, j0);
}

// Columns [j0, j0 + 16·NV) of C for all m rows (bt at column j0): the Bt panel (k × 16·NV
// floats, 128 KB at k = 512) stays in L2 while every row block passes over it. Panels of 1-3
// vectors: as few blocks of up to tall_block_rows as cover m, their rows as even as can be (up
// to 8 rows a block: 12 rows in two of 6; up to 12: 16 rows in two of 8). Panels of 4: blocks
// of 6 rows; a remainder of 7 or 8 becomes 4 + 3 or 4 + 4 rather than 6 + 1 or 6 + 2, since a
// block of 1-2 rows loads as many Bt vectors as it does FMAs.
template <int NV>
void panel(int64_t m, const LeftOperand& a, const float* bt, int64_t ldbt, int64_t n, float beta,
           float* c, int64_t ldc, int64_t j0) {
  if constexpr (tall_block_rows<NV>() > 6) {
    constexpr int kTall = tall_block_rows<NV>();
    const int64_t blocks = (m + kTall - 1) / kTall;
    for (int64_t b = 0, i = 0; b < blocks; ++b) {
      const int64_t rows = m / blocks + (b < m % blocks ? 1 : 0);
      block_of_rows<kTall, NV>(rows, a.rows_from(i), bt, ldbt, n, beta, c + i * ldc, ldc, j0);
      i += rows;
    }
    return;
  }
  const auto run = [&](auto rows_tag, int64_t i) {
    block<decltype(rows_tag)::value, NV>(a.rows_from(i), bt, ldbt, n, beta, c + i * ldc, ldc, j0);
  };
  using R6 = std::integral_constant<int, 6>;
  using R5 = std::integral_constant<int, 5>;
  using R4 = std::integral_constant<int, 4>;
  using R3 = std::integral_constant<int, 3>;
  using R2 = std::integral_constant<int, 2>;
  using R1 = std::integral_constant<int, 1>;
  int64_t i = 0;
  for (; m - i >= 6 && m - i != 7 && m - i != 8; i += 6) run(R6{}, i);
  switch (m - i) {
    case 8: run(R4{}, i); run(R4{}, i + 4); break;
    case 7: run(R4{}, i); run(R3{}, i + 4); break;
    case 5: run(R5{}, i); break;
    case 4: run(R4{}, i); break;
    case 3: run(R3{}, i); break;
    case 2: run(R2{}, i); break;
    case 1: run(R1{}, i); break;
    default: break;
  }
}

// All columns [j0, j0 + 16·NV) of C for one or two rows (bt at column j0).
template <int NV>
void few_rows_panel(int64_t m, const LeftOperand& a, const float* bt, int64_t ldbt, int64_t n,
                    float beta, float* c, int64_t ldc, int64_t j0) {
  if (m == 2) return block<2, NV>(a, bt, ldbt, n, beta, c, ldc, j0);
  block<1, NV>(a, bt, ldbt, n, beta, c, ldc, j0);
}

}  // namespace small_gemm_detail

// C[m, n] = A[m, k + k2]·Bt[k + k2, n] + beta·C, A given as two column segments (LeftOperand).
inline void small_gemm(int64_t m, int64_t n, const LeftOperand& a, const float* bt, int64_t ldbt,
                       float beta, float* c, int64_t ldc) {
  using namespace small_gemm_detail;
  const int64_t padded = small_gemm_ld(n);  // Bt holds zeros up to here (or more columns)
  if (m <= 2 && padded > 64) {
    // One or two rows (batch 1 or 2) load as many Bt vectors as they do FMAs: panels of up to
    // 128 columns keep more loads in flight per step of k than two of 64. Single-threaded on the
    // 2-core AMD EPYC, 1 × 128 × 32 (an LSTM's forward at batch 1, H = 32): 92 against 101 ns.
    for (int64_t j0 = 0; j0 < padded; j0 += 128) {
      switch (std::min<int64_t>(8, (padded - j0) / 16)) {
        case 8: few_rows_panel<8>(m, a, bt + j0, ldbt, n, beta, c, ldc, j0); break;
        case 7: few_rows_panel<7>(m, a, bt + j0, ldbt, n, beta, c, ldc, j0); break;
        case 6: few_rows_panel<6>(m, a, bt + j0, ldbt, n, beta, c, ldc, j0); break;
        case 5: few_rows_panel<5>(m, a, bt + j0, ldbt, n, beta, c, ldc, j0); break;
        case 4: few_rows_panel<4>(m, a, bt + j0, ldbt, n, beta, c, ldc, j0); break;
        case 3: few_rows_panel<3>(m, a, bt + j0, ldbt, n, beta, c, ldc, j0); break;
        case 2: few_rows_panel<2>(m, a, bt + j0, ldbt, n, beta, c, ldc, j0); break;
        default: few_rows_panel<1>(m, a, bt + j0, ldbt, n, beta, c, ldc, j0); break;
      }
    }
    return;
  }
  for (int64_t j0 = 0; j0 < padded; j0 += 64) {
    switch (std::min<int64_t>(4, (padded - j0) / 16)) {
      case 4: panel<4>(m, a, bt + j0, ldbt, n, beta, c, ldc, j0); break;
      case 3: panel<3>(m, a, bt + j0, ldbt, n, beta, c, ldc, j0); break;
      case 2: panel<2>(m, a, bt + j0, ldbt, n, beta, c, ldc, j0); break;
      default: panel<1>(m, a, bt + j0, ldbt, n, beta, c, ldc, j0); break;
    }
  }
}

// The fixed operand in panels (pack_panels): columns [j0, j0 + 64) of Bt as k + k2 rows of 64
// contiguous floats at panels + j0·(k + k2), the last panel only as wide as small_gemm_ld(n) -
// j0. Each block then reads its panel front to back instead of one 256-byte piece per row of a
// wide Bt: rows 4 or 8 KB apart (H = 256 or 512) each sit on their own page and in the same few
// L1 sets, and the hardware prefetchers stop at page ends. Single-threaded, 64 × 2048 × 1024:
// 98 against 72 GFLOP/s; 32 × 1024 × 512: 111 against 103; 8 × 256 × 96: level. Columns
// [j0, j1) alone: pass n = j1 (or less), from j0 a multiple of 64.
inline void small_gemm_panels(int64_t m, int64_t n, const LeftOperand& a, const float* panels,
                              float beta, float* c, int64_t ldc, int64_t j_begin = 0) {
  using namespace small_gemm_detail;
  const int64_t padded = small_gemm_ld(n), rows = a.k + a.k2;
  for (int64_t j0 = j_begin; j0 < padded; j0 += 64) {
    const int64_t nv = std::min<int64_t>(4, (padded - j0) / 16);
    const float* bt = panels + j0 * rows;
    switch (nv) {
      case 4: panel<4>(m, a, bt, 64, n, beta, c, ldc, j0); break;
      case 3: panel<3>(m, a, bt, 48, n, beta, c, ldc, j0); break;
      case 2: panel<2>(m, a, bt, 32, n, beta, c, ldc, j0); break;
      default: panel<1>(m, a, bt, 16, n, beta, c, ldc, j0); break;
    }
  }
}

inline void small_gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                       const float* bt, int64_t ldbt, float beta, float* c, int64_t ldc) {
  small_gemm(m, n, LeftOperand{a, lda, k}, bt, ldbt, beta, c, ldc);
}

}  // namespace cpu
}  // namespace fusedrnn
