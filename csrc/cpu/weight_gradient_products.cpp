#include "weight_gradient_products.h"

#include <algorithm>
#include <array>
#include <utility>

#include "lanes.h"

namespace fusedrnn {
namespace cpu {
namespace {

using Vec16 = Lanes<float>;

// Up to 12 columns of B per tile: with two vectors of A's row that is 24 accumulators, 2 more
// for the bias and 2 for A's vectors, within AVX-512's 32 registers. Each row r then takes 2
// vector loads and 12 broadcasts for 24 FMAs.
constexpr int kMaxTileCols = 12;

// Rows blocked so that one block's tile strips of A and B stay in the L2 cache while the tiles
// walk them: in a stand-alone prototype at m 512, n 64 + 128, blocks of 800 or 1,600 rows ran
// 104-105 GFLOP/s, of 200 rows 100, of 100 rows 96 (each block stores and reloads every tile's
// sums).
constexpr int64_t kRowBlock = 1024;

// The outputs' rows [i0, i0 + 16·NV) × B's columns [j0, j0 + R) over k rows: accumulators hold
// columns of C (16 of its rows each), so each row r of A is two contiguous vector loads and each
// B value a broadcast; they are written transposed into C once, at the end. kBias also sums the
// rows of A into bias[i0, i0 + 16·NV).
template <int NV, int R, bool kBias>
[[gnu::noinline]] void tile(int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                            float beta, float* c, int64_t ldc, float* bias) {
  Vec16 acc[NV][R] = {};
  Vec16 sum[NV] = {};
  for (int64_t r = 0; r < k; ++r) {
    Vec16 av[NV];
    for (int q = 0; q < NV; ++q) {
      av[q] = load_lanes(a + r * lda + 16 * q);
#if defined(__AVX512F__) && (defined(__GNUC__) || defined(__clang__))
      asm("" : "+v"(av[q]));  // kept in a register, not reloaded by each FMA (small_gemm.h)
#endif
      if constexpr (kBias) sum[q] += av[q];
    }
    const float* br = b + r * ldb;
    for (int j = 0; j < R; ++j) {
      const float s = br[j];
      for (int q = 0; q < NV; ++q) acc[q][j] += s * av[q];
    }
  }
  const auto put = [beta](float* dst, float v) { *dst = beta == 0.0f ? v : beta * *dst + v; };
  for (int q = 0; q < NV; ++q) {
    for (int l = 0; l < 16; ++l) {
      float* row = c + (16 * q + l) * ldc;
      for (int j = 0; j < R; ++j) put(row + j, acc[q][j][l]);
      if constexpr (kBias) put(bias + 16 * q + l, sum[q][l]);
    }
  }
}

using TileFn = void (*)(int64_t, const float*, int64_t, const float*, int64_t, float, float*,
                        int64_t, float*);

template <int NV, bool kBias, int... R>
constexpr std::array<TileFn, sizeof...(R)> tiles_of(std::integer_sequence<int, R...>) {
  return {&tile<NV, R + 1, kBias>...};
}

// tiles[NV == 2][kBias][R - 1]
const std::array<TileFn, kMaxTileCols> kTiles[2][2] = {
    {tiles_of<1, false>(std::make_integer_sequence<int, kMaxTileCols>()),
     tiles_of<1, true>(std::make_integer_sequence<int, kMaxTileCols>())},
    {tiles_of<2, false>(std::make_integer_sequence<int, kMaxTileCols>()),
     tiles_of<2, true>(std::make_integer_sequence<int, kMaxTileCols>())}};

// bias = beta·bias + Σ_r A[r, 0:m], where no product is wanted alongside it
void row_sums(int64_t k, int64_t m, const float* a, int64_t lda, float* bias, float beta) {
  for (int64_t i = 0; i < m; ++i) bias[i] = beta == 0.0f ? 0.0f : beta * bias[i];
  for (int64_t r = 0; r < k; ++r) {
    for (int64_t i = 0; i < m; ++i) bias[i] += a[r * lda + i];
  }
}

// Output rows [i0, i1) of one term over rows [r0, r0 + rows) of A
void term_rows(const GradientTerm& t, const float* a, int64_t lda, int64_t r0, int64_t rows,
               float beta, int64_t i0, int64_t i1) {
  const float* a_rows = a + r0 * lda + t.a_col;
  const int64_t n = t.c ? t.n : 0;
  if (n == 0) {
    if (t.bias) row_sums(rows, i1 - i0, a_rows + i0, lda, t.bias + i0, beta);
    return;
  }
  // the columns in equal tiles of at most kMaxTileCols: 32 as 10 + 11 + 11, not 12 + 12 + 8
  const int64_t count = (n + kMaxTileCols - 1) / kMaxTileCols;
  for (int64_t i = i0; i < i1;) {
    const int nv = i1 - i >= 32 ? 2 : 1;
    for (int64_t q = 0; q < count; ++q) {
      const int64_t j0 = n * q / count, j1 = n * (q + 1) / count;
      const bool bias = t.bias && q == 0;  // summed by the row tile's first column tile
      kTiles[nv - 1][bias][j1 - j0 - 1](rows, a_rows + i, lda, t.b + r0 * t.ldb + j0, t.ldb,
                                         beta, t.c + i * t.ldc + j0, t.ldc,
                                         bias ? t.bias + i : nullptr);
    }
    i += 16 * nv;
  }
}

// no rows: the outputs are beta times themselves
void scale_rows(const GradientTerm& t, float beta, int64_t i0, int64_t i1) {
  const auto scale = [beta](float& v) { v = beta == 0.0f ? 0.0f : beta * v; };
  for (int64_t i = i0; i < i1; ++i) {
    if (t.c) {
      for (int64_t j = 0; j < t.n; ++j) scale(t.c[i * t.ldc + j]);
    }
    if (t.bias) scale(t.bias[i]);
  }
}

}  // namespace

int64_t gradient_row_units(const GradientTerm* terms, int count) {
  int64_t units = 0;
  for (int q = 0; q < count; ++q) units += terms[q].m / 16;
  return units;
}

void weight_gradient_products(int64_t k, const float* a, int64_t lda, const GradientTerm* terms,
                              int count, float beta, int64_t u0, int64_t u1) {
  // each term's share of [16·u0, 16·u1), in its own rows
  const auto for_each_share = [&](const auto& f) {
    int64_t first = 0;  // the term's first output row over all terms
    for (int q = 0; q < count; ++q) {
      const int64_t i0 = std::max<int64_t>(16 * u0 - first, 0);
      const int64_t i1 = std::min<int64_t>(16 * u1 - first, terms[q].m);
      if (i1 > i0) f(terms[q], i0, i1);
      first += terms[q].m;
    }
  };
  if (k == 0) {
    for_each_share([&](const GradientTerm& t, int64_t i0, int64_t i1) { scale_rows(t, beta, i0, i1); });
    return;
  }
  for (int64_t r0 = 0; r0 < k; r0 += kRowBlock) {
    const int64_t rows = std::min(kRowBlock, k - r0);
    const float block_beta = r0 == 0 ? beta : 1.0f;
    for_each_share([&](const GradientTerm& t, int64_t i0, int64_t i1) {
      term_rows(t, a, lda, r0, rows, block_beta, i0, i1);
    });
  }
}

}  // namespace cpu
}  // namespace fusedrnn
