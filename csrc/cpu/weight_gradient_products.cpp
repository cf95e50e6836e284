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
// walk them: at m 512, n 64 + 128 blocks of 800 or 1,600 rows ran 104-105 GFLOP/s, of 200 rows
// 100, of 100 rows 96 (each block stores and reloads every tile's sums).
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
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
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

struct Segment {
  const float* b;
  int64_t ldb, n;
  float* c;
  int64_t ldc;
};

}  // namespace

void weight_gradient_products(int64_t k, int64_t m, const float* a, int64_t lda, const float* b1,
                              int64_t ldb1, int64_t n1, float* c1, int64_t ldc1, const float* b2,
                              int64_t ldb2, int64_t n2, float* c2, int64_t ldc2, float* bias,
                              float beta) {
  const Segment segments[2] = {{b1, ldb1, c1 ? n1 : 0, c1, ldc1},
                               {b2, ldb2, c2 ? n2 : 0, c2, ldc2}};
  if (segments[0].n == 0 && segments[1].n == 0) {
    if (bias) row_sums(k, m, a, lda, bias, beta);
    return;
  }
  if (k == 0) {  // no rows: the outputs are beta times themselves
    for (const Segment& seg : segments) {
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < seg.n; ++j) {
          float& v = seg.c[i * seg.ldc + j];
          v = beta == 0.0f ? 0.0f : beta * v;
        }
      }
    }
    if (bias) row_sums(0, m, a, lda, bias, beta);
    return;
  }
  for (int64_t r0 = 0; r0 < k; r0 += kRowBlock) {
    const int64_t rows = std::min(kRowBlock, k - r0);
    const float block_beta = r0 == 0 ? beta : 1.0f;
    for (int64_t i0 = 0; i0 < m;) {
      const int nv = m - i0 >= 32 ? 2 : 1;
      bool bias_due = bias != nullptr;  // summed by this row tile's first column tile
      for (const Segment& seg : segments) {
        // the columns in equal tiles of at most kMaxTileCols: 32 as 11 + 11 + 10, not 12 + 12 + 8
        const int64_t count = (seg.n + kMaxTileCols - 1) / kMaxTileCols;
        for (int64_t t = 0; t < count; ++t) {
          const int64_t j0 = seg.n * t / count, j1 = seg.n * (t + 1) / count;
          kTiles[nv - 1][bias_due][j1 - j0 - 1](
              rows, a + r0 * lda + i0, lda, seg.b + r0 * seg.ldb + j0, seg.ldb, block_beta,
              seg.c + i0 * seg.ldc + j0, seg.ldc, bias_due ? bias + i0 : nullptr);
          bias_due = false;
        }
      }
      i0 += 16 * nv;
    }
  }
}

}  // namespace cpu
}  // namespace fusedrnn
