#pragma once

// Marks a loop whose iterations touch disjoint elements, though the compiler cannot prove it
// (a cell reads and writes one workspace row at offsets k·H + j; an output row and a weight row
// may alias as far as it knows). Without it GCC vectorises behind a run-time overlap check that
// fails for in-place rows, and runs the scalar loop.
#if defined(__clang__)
#define FUSEDRNN_INDEPENDENT_ITERATIONS _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define FUSEDRNN_INDEPENDENT_ITERATIONS _Pragma("GCC ivdep")
#else
#define FUSEDRNN_INDEPENDENT_ITERATIONS
#endif
