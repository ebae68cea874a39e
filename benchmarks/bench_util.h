/* bench_util.h - timing, statistics and JSON-lines output shared by the
 * benchmark programs (nnlib-bench, fann-bench). */
#ifndef NNLIB_BENCH_UTIL_H
#define NNLIB_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic wall clock in seconds. */
double bench_now(void);

/* Summary of per-repetition times (seconds). */
typedef struct bench_stats {
  int reps;
  double median_s, min_s, max_s;
} bench_stats;

/* Sorts `times` in place and summarises it. */
bench_stats bench_summarise(double *times, int count);

/* Repetitions that fit a time budget for something that takes `one_s` per
 * repetition, clamped to [min_reps, max_reps]. */
int bench_reps_for(double budget_s, double one_s, int min_reps, int max_reps);

/* One JSON object per line: bench_json_begin, then fields, then end. Strings
 * are escaped; non-finite numbers print as null. */
void bench_json_begin(void);
void bench_json_str(const char *key, const char *value);
void bench_json_int(const char *key, long long value);
void bench_json_num(const char *key, double value);
void bench_json_stats(const bench_stats *s);
void bench_json_end(void);
/* A string field every later line (after "bench") carries, such as the
 * OpenBLAS kernels a measurement ran on; NULL clears it. value must stay
 * valid. */
void bench_json_tag(const char *key, const char *value);

/* Deterministic uniform floats in [lo, hi) (LCG; independent of nnlib). */
void bench_fill(float *v, size_t n, float lo, float hi, uint32_t *state);

/* The first CPU's field `key` of /proc/cpuinfo ("model name", "cpu
 * family", "model") into buf ("unknown" if absent). */
void bench_cpuinfo(const char *key, char *buf, size_t capacity);
/* A /proc/self/status field in bytes ("VmHWM", "VmRSS"), -1 if absent. */
long long bench_proc_status_bytes(const char *field);

#endif
