// FUSEDRNN_SIMD_SUM(acc...): vectorised sums on the CPU. Without it GCC keeps one accumulator (it
// may not reorder float additions) and reductions run scalar. The order is fixed at compile time,
// so results stay deterministic. Device code runs such loops per thread and ignores it.
#pragma once

#define FUSEDRNN_PRAGMA(x) _Pragma(#x)
#if defined(_OPENMP) && !defined(__CUDA_ARCH__)
#define FUSEDRNN_SIMD_SUM(...) FUSEDRNN_PRAGMA(omp simd reduction(+ : __VA_ARGS__))
#else
#define FUSEDRNN_SIMD_SUM(...)
#endif
