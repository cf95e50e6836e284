// 16 × 16 tiles of floats transposed in registers (GCC's vector shuffles; other compilers move
// elements one by one): 16 row loads, four stages of two-source lane shuffles (vpermt2ps with
// AVX-512), 16 row stores, instead of 256 strided scalar moves. The per-call transposes of the
// cell step (the batch into the weights' orientation and the gates back) spent 18% of an LSTM
// cell call at batch 32, H 128 in the scalar loop.
#pragma once

#include <cstdint>

#include "lanes.h"

namespace fusedrnn {
namespace cpu {
namespace transpose_detail {

using Vec16 = Lanes<float>;
typedef int32_t Index16 __attribute__((vector_size(16 * sizeof(int32_t))));

#if defined(__GNUC__) && !defined(__clang__)
// Lane i of a and b (i in [0, 32) over the pair a | b).
inline Vec16 pick(const Vec16& a, const Vec16& b, const Index16& index) {
  return __builtin_shuffle(a, b, index);
}

// One stage of the block transpose: rows r and r + K (r with bit K clear) swap their off-diagonal
// K × K blocks. After K = 8, 4, 2, 1 the tile is transposed.
template <int K>
inline void stage(Vec16 (&v)[16]) {
  Index16 lo{}, hi{};
  for (int i = 0; i < 16; ++i) {
    lo[i] = (i & K) ? 16 + i - K : i;
    hi[i] = (i & K) ? 16 + i : i + K;
  }
  for (int r = 0; r < 16; ++r) {
    if (r & K) continue;
    const Vec16 a = v[r], b = v[r + K];
    v[r] = pick(a, b, lo);
    v[r + K] = pick(a, b, hi);
  }
}
#endif

}  // namespace transpose_detail

// dst[c * ldd + r] = src[r * lds + c] for r, c in [0, 16)
inline void transpose_tile16(const float* src, int64_t lds, float* dst, int64_t ldd) {
#if defined(__GNUC__) && !defined(__clang__)
  using namespace transpose_detail;
  Vec16 v[16];
  for (int r = 0; r < 16; ++r) v[r] = load_lanes(src + r * lds);
  stage<8>(v);
  stage<4>(v);
  stage<2>(v);
  stage<1>(v);
  for (int c = 0; c < 16; ++c) store_lanes(dst + c * ldd, v[c]);
#else
  for (int r = 0; r < 16; ++r) {
    for (int c = 0; c < 16; ++c) dst[c * ldd + r] = src[r * lds + c];
  }
#endif
}

// dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols: whole tiles in registers, the
// ragged edges element by element.
inline void transpose_block(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst,
                            int64_t ldd) {
  const int64_t rows16 = rows / 16 * 16, cols16 = cols / 16 * 16;
  for (int64_t r = 0; r < rows16; r += 16) {
    for (int64_t c = 0; c < cols16; c += 16) transpose_tile16(src + r * lds + c, lds, dst + c * ldd + r, ldd);
  }
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = (r < rows16 ? cols16 : 0); c < cols; ++c) dst[c * ldd + r] = src[r * lds + c];
  }
}

}  // namespace cpu
}  // namespace fusedrnn
