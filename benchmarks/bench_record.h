/* bench_record.h - the sgemm calls a step really makes (issue 17).
 *
 * nnlib-bench defines cblas_sgemm itself (bench_record.c). libnnlib's one
 * BLAS call (src/core/blas.c) is an undefined symbol of the shared library,
 * resolved at load time through the executable first, so it lands in that
 * definition, which notes the call's arguments (pointers and leading
 * dimensions included) while recording is on and always forwards to
 * OpenBLAS's cblas_sgemm, found with dlsym(RTLD_NEXT). The bench's own
 * cblas_sgemm calls (raw GEMM timings, the replay) take the same path, so
 * the step and its replay pay the same extra call. */
#ifndef NNLIB_BENCH_RECORD_H
#define NNLIB_BENCH_RECORD_H

#include <stdbool.h>
#include <stddef.h>

/* One sgemm as issued: C = alpha op(A) op(B) + beta C, with the caller's
 * pointers; ta, tb are 'N' or 'T'; row_major false means column-major
 * (nnlib always passes row-major). */
typedef struct bench_call {
  bool row_major;
  char ta, tb;
  int m, n, k;
  float alpha, beta;
  const float *a, *b;
  float *c;
  int lda, ldb, ldc;
} bench_call;

/* The calls noted between bench_record_start and bench_record_stop. */
typedef struct bench_recording {
  bench_call *calls;
  int count, cap;
  bool out_of_memory; /* a call could not be noted */
} bench_recording;

/* Notes every later cblas_sgemm call of this thread in `r` (emptied
 * first; its array grows as needed) until bench_record_stop. */
void bench_record_start(bench_recording *r);
void bench_record_stop(void);
void bench_recording_free(bench_recording *r);

/* Issues one noted call again, through cblas_sgemm. */
void bench_call_issue(const bench_call *c);

/* cblas_sgemm calls of this thread that reached this file's definition,
 * recorded or not: its growth over a step proves that libnnlib's calls
 * resolve through the executable. */
long long bench_record_seen(void);

#endif
