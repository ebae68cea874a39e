/* bench_peak.h - an estimate of the machine's FP32 peak. */
#ifndef NNLIB_BENCH_PEAK_H
#define NNLIB_BENCH_PEAK_H

/* Measured FP32 FMA peak of one core in GFLOP/s, from the widest vector ISA
 * the CPU runs fastest (*isa: "avx512", "avx2", ...); NaN where the
 * measurement is not built (non-x86). Takes about a quarter second. */
double bench_peak_gflops_per_core(const char **isa);

#endif
