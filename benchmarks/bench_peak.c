/* bench_peak.c - the machine's FP32 peak, measured: independent chains of
 * fused multiply-adds, enough of them to cover the FMA latency on every
 * pipe, timed on one core. peak = FMAs/s * 2 FLOPs * vector width.
 * Compiled per ISA with target attributes, so the build needs no -march. */
#include "bench_peak.h"

#include "bench_util.h"

#include <math.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define CHAINS 12

/* Returns FLOPs done; the accumulators go to *sink so nothing is elided. */
__attribute__((target("avx2,fma"))) static double fma256(long iters,
                                                          float *sink) {
  __m256 acc[CHAINS];
  for (int i = 0; i < CHAINS; i++)
    acc[i] = _mm256_set1_ps(1.0f + 0.001f * (float)i);
  const __m256 mul = _mm256_set1_ps(0.9999999f), add = _mm256_set1_ps(1e-7f);
  for (long it = 0; it < iters; it++)
    for (int i = 0; i < CHAINS; i++)
      acc[i] = _mm256_fmadd_ps(acc[i], mul, add);
  __m256 sum = acc[0];
  for (int i = 1; i < CHAINS; i++)
    sum = _mm256_add_ps(sum, acc[i]);
  float out[8];
  _mm256_storeu_ps(out, sum);
  *sink += out[0];
  return (double)iters * CHAINS * 8 * 2;
}

__attribute__((target("avx512f"))) static double fma512(long iters,
                                                        float *sink) {
  __m512 acc[CHAINS];
  for (int i = 0; i < CHAINS; i++)
    acc[i] = _mm512_set1_ps(1.0f + 0.001f * (float)i);
  const __m512 mul = _mm512_set1_ps(0.9999999f), add = _mm512_set1_ps(1e-7f);
  for (long it = 0; it < iters; it++)
    for (int i = 0; i < CHAINS; i++)
      acc[i] = _mm512_fmadd_ps(acc[i], mul, add);
  __m512 sum = acc[0];
  for (int i = 1; i < CHAINS; i++)
    sum = _mm512_add_ps(sum, acc[i]);
  float out[16];
  _mm512_storeu_ps(out, sum);
  *sink += out[0];
  return (double)iters * CHAINS * 16 * 2;
}

typedef double (*fma_kernel)(long, float *);

/* Best of a few timed runs of ~20 ms each, in GFLOP/s. */
static double best_gflops(fma_kernel k) {
  float sink = 0.0f;
  k(100000, &sink); /* warm up: clocks and caches */
  double best = 0.0;
  for (int r = 0; r < 5; r++) {
    double t0 = bench_now();
    double flops = k(2000000, &sink);
    double dt = bench_now() - t0;
    if (dt > 0.0 && flops / dt > best)
      best = flops / dt;
  }
  volatile float keep = sink;
  (void)keep;
  return best * 1e-9;
}

double bench_peak_gflops_per_core(const char **isa, bench_peaks *each) {
  __builtin_cpu_init();
  double peak = NAN;
  *isa = "none";
  each->avx2 = each->avx512 = NAN;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    peak = each->avx2 = best_gflops(fma256);
    *isa = "avx2";
  }
  if (__builtin_cpu_supports("avx512f")) {
    double p = each->avx512 = best_gflops(fma512);
    if (!(p <= peak)) {
      peak = p;
      *isa = "avx512";
    }
  }
  return peak;
}

#else

double bench_peak_gflops_per_core(const char **isa, bench_peaks *each) {
  *isa = "unknown";
  each->avx2 = each->avx512 = NAN;
  return NAN;
}

#endif
