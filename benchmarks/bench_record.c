/* bench_record.c - nnlib-bench's own cblas_sgemm: notes the calls of a
 * step while recording is on, and forwards every call to OpenBLAS. See
 * bench_record.h for why libnnlib's calls arrive here. */
#define _GNU_SOURCE /* RTLD_NEXT */
#include "bench_record.h"

#include <cblas.h>
#include <dlfcn.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*sgemm_fn)(const enum CBLAS_ORDER, const enum CBLAS_TRANSPOSE,
                         const enum CBLAS_TRANSPOSE, const blasint,
                         const blasint, const blasint, const float,
                         const float *, const blasint, const float *,
                         const blasint, const float, float *, const blasint);

/* The recording of this thread (the one that runs the step: nnlib issues
 * every GEMM from its caller's thread; OpenBLAS's own threads never call
 * cblas_sgemm). */
static _Thread_local bench_recording *active;
static _Thread_local long long seen;

/* OpenBLAS's cblas_sgemm: the next definition after this executable's. */
static sgemm_fn real_sgemm(void) {
  static sgemm_fn real;
  if (real == NULL) {
    sgemm_fn next;
    void *sym = dlsym(RTLD_NEXT, "cblas_sgemm");
    /* POSIX: a data pointer from dlsym converts to a function pointer */
    memcpy(&next, &sym, sizeof next);
    if (next == NULL || next == cblas_sgemm) {
      fprintf(stderr, "nnlib-bench: no cblas_sgemm after the executable's "
                      "own (is OpenBLAS linked?)\n");
      exit(1);
    }
    real = next;
  }
  return real;
}

static void note(bench_recording *r, const bench_call *c) {
  if (r->count == r->cap) {
    int cap = r->cap ? 2 * r->cap : 256;
    bench_call *grown = realloc(r->calls, (size_t)cap * sizeof *grown);
    if (grown == NULL) {
      r->out_of_memory = true;
      return;
    }
    r->calls = grown;
    r->cap = cap;
  }
  r->calls[r->count++] = *c;
}

void cblas_sgemm(const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE ta,
                 const enum CBLAS_TRANSPOSE tb, const blasint m,
                 const blasint n, const blasint k, const float alpha,
                 const float *a, const blasint lda, const float *b,
                 const blasint ldb, const float beta, float *c,
                 const blasint ldc) {
  seen++;
  if (active != NULL) {
    bench_call call = {order == CblasRowMajor,
                       ta == CblasNoTrans ? 'N' : 'T',
                       tb == CblasNoTrans ? 'N' : 'T',
                       (int)m, (int)n, (int)k, alpha, beta, a, b, c,
                       (int)lda, (int)ldb, (int)ldc};
    note(active, &call);
  }
  real_sgemm()(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void bench_record_start(bench_recording *r) {
  r->count = 0;
  r->out_of_memory = false;
  active = r;
}

void bench_record_stop(void) { active = NULL; }

void bench_recording_free(bench_recording *r) {
  free(r->calls);
  r->calls = NULL;
  r->count = r->cap = 0;
}

void bench_call_issue(const bench_call *c) {
  cblas_sgemm(c->row_major ? CblasRowMajor : CblasColMajor,
              c->ta == 'N' ? CblasNoTrans : CblasTrans,
              c->tb == 'N' ? CblasNoTrans : CblasTrans, c->m, c->n, c->k,
              c->alpha, c->a, c->lda, c->b, c->ldb, c->beta, c->c, c->ldc);
}

long long bench_record_seen(void) { return seen; }
