/* bench_peak.h - an estimate of the machine's FP32 peak. */
#ifndef NNLIB_BENCH_PEAK_H
#define NNLIB_BENCH_PEAK_H

/* The peak of each vector width the CPU runs, GFLOP/s of one core (NaN:
 * not run). They tell the cores apart where it matters for the
 * comparisons: a Zen 5 runs 512-bit FMAs at twice the 256-bit rate, a Zen
 * 4 at the same rate, so kernels that use AVX-512 (ONNX Runtime's,
 * OpenBLAS's own choice) gain 2x over the Haswell kernels on the first
 * and nothing on the second. */
typedef struct bench_peaks {
  double avx2, avx512;
} bench_peaks;

/* Measured FP32 FMA peak of one core in GFLOP/s, from the widest vector ISA
 * the CPU runs fastest (*isa: "avx512", "avx2", ...), and each width's own
 * into *each; NaN where the measurement is not built (non-x86). Takes
 * about half a second. */
double bench_peak_gflops_per_core(const char **isa, bench_peaks *each);

#endif
