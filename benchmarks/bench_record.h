/* bench_record.h - the products a step really asks for (issue 17).
 *
 * nnlib-bench links libnnlib's static archive with -Wl,--wrap=nnlib__gemm
 * and -Wl,--wrap=nnlib__gemm_batch: every call a layer makes to the
 * library's GEMM seam (src/core/blas.c) lands in bench_record.c's
 * __wrap_nnlib__gemm (or __wrap_nnlib__gemm_batch and
 * __wrap_nnlib__gemm_units_run, whose calls are noted one by one, marked
 * as one batch), which notes its arguments (pointers
 * and leading dimensions included) while recording is on and always
 * forwards to the seam. The seam then runs the product as the step does:
 * split over nnlib's threads, or whole, or a batch's calls spread over
 * the threads. The replay and the bench's own timed products go through
 * the same seam, so the step and its replay pay the same split, the same
 * pool and the same extra call. */
#ifndef NNLIB_BENCH_RECORD_H
#define NNLIB_BENCH_RECORD_H

#include <stdbool.h>
#include <stddef.h>

/* One product as asked for: C = alpha op(A) op(B) + beta C, with the
 * caller's pointers; ta, tb are 'N' or 'T'; row_major is always true
 * (nnlib's seam is row-major; kept for the list's restatement). */
typedef struct bench_call {
  bool row_major;
  char ta, tb;
  int m, n, k;
  float alpha, beta;
  const float *a, *b;
  float *c;
  int lda, ldb, ldc;
  int batch;           /* the nnlib__gemm_batch or nnlib__gemm_units_run call it
                          came in (1, 2, ... in the recording), 0: an nnlib__gemm of
                          its own */
  /* of nnlib__gemm_units_run (lanes 0: not from units): the lanes, the
   * calls per unit, the lane of this call's unit, whether a unit's calls
   * ran in order */
  int lanes, per_unit, lane;
  bool ordered;
} bench_call;

/* The calls noted between bench_record_start and bench_record_stop. */
typedef struct bench_recording {
  bench_call *calls;
  int count, cap;
  bool out_of_memory; /* a call could not be noted */
} bench_recording;

/* Notes every later product this thread asks nnlib's seam for in `r`
 * (emptied first; its array grows as needed) until bench_record_stop. */
void bench_record_start(bench_recording *r);
void bench_record_stop(void);
void bench_recording_free(bench_recording *r);

/* Issues one noted call again, through nnlib's seam (row-major). */
void bench_call_issue(const bench_call *c);
/* Issues count noted calls again as one nnlib__gemm_batch, or, when they
 * came from nnlib__gemm_units_run, as units on the same lanes (without
 * the units' passes). */
void bench_calls_issue_batch(const bench_call *c, int count);

#endif
