/* The machine's fp32 FMA peak, the ceiling README's "out of reach" bounds use: each thread keeps
 * 12 independent vector accumulators in registers (enough to cover the FMA latency) and runs
 * multiply-adds on them only, no memory traffic. Built and run by benchmarks/fma_peak.py. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

typedef float vec __attribute__((vector_size(64)));  /* 16 floats: one AVX-512 register */
#define ACC 12

/* twelve named accumulators: an array of them would live on the stack, not in registers */
#define ACCS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

static float run(long iters) {
  vec a, b;
  for (int i = 0; i < 16; ++i) {
    a[i] = 0.999999f;
    b[i] = 1e-7f;
  }
#define DECLARE(k) vec acc##k = a * (float)k;
  ACCS(DECLARE)
  for (long it = 0; it < iters; ++it) {
#define STEP(k) acc##k = acc##k * a + b;
    ACCS(STEP)
    /* keeps every accumulator in a register and the loop from being folded away */
#define KEEP(k) __asm__ volatile("" : "+v"(acc##k));
    ACCS(KEEP)
  }
  float s = 0;
#define SUM(k) for (int i = 0; i < 16; ++i) s += acc##k[i];
  ACCS(SUM)
  return s;
}

int main(int argc, char** argv) {
  const long iters = argc > 1 ? atol(argv[1]) : 200000000L;
  const int threads = omp_get_max_threads();
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    float sink = 0;
    const double t0 = omp_get_wtime();
#pragma omp parallel reduction(+ : sink)
    sink += run(iters);
    const double s = omp_get_wtime() - t0;
    const double gflops = 2.0 * 16 * ACC * (double)iters * threads / s / 1e9;
    if (gflops > best) best = gflops;
    if (sink == 12345.0f) printf("!");  /* keeps the result live */
  }
  printf("%d thread(s): %.1f GFLOP/s fp32 FMA peak (%.1f per thread)\n", threads, best, best / threads);
  return 0;
}
