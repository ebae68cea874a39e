/* bench_record.c - notes the GEMMs of a step while recording is on: the
 * link wraps libnnlib's GEMM seam (-Wl,--wrap=nnlib__gemm, see
 * bench_record.h), so every product a layer asks for arrives here first
 * and goes on to the library's own nnlib__gemm. */
#include "bench_record.h"

#include "core/core.h"

#include <stdlib.h>

nnlib_status __real_nnlib__gemm(nnlib__trans ta, nnlib__trans tb, int64_t m,
                                int64_t n, int64_t k, float alpha,
                                const float *a, int64_t lda, const float *b,
                                int64_t ldb, float beta, float *c,
                                int64_t ldc);
nnlib_status __wrap_nnlib__gemm(nnlib__trans ta, nnlib__trans tb, int64_t m,
                                int64_t n, int64_t k, float alpha,
                                const float *a, int64_t lda, const float *b,
                                int64_t ldb, float beta, float *c,
                                int64_t ldc);

nnlib_status __real_nnlib__gemm_batch(const nnlib__gemm_call *calls,
                                      int64_t count);
nnlib_status __wrap_nnlib__gemm_batch(const nnlib__gemm_call *calls,
                                      int64_t count);

/* The recording of this thread (the one that runs the step: the layers ask
 * for every product from their caller's thread; the parts nnlib splits a
 * product into, and a batch's calls, run below this seam), and the
 * batches it noted so far. */
static _Thread_local bench_recording *active;
static _Thread_local int batches;

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

nnlib_status __wrap_nnlib__gemm(nnlib__trans ta, nnlib__trans tb, int64_t m,
                                int64_t n, int64_t k, float alpha,
                                const float *a, int64_t lda, const float *b,
                                int64_t ldb, float beta, float *c,
                                int64_t ldc) {
  if (active != NULL) {
    bench_call call = {true,   ta ? 'T' : 'N', tb ? 'T' : 'N', (int)m,   (int)n,
                       (int)k, alpha,          beta,           a,        b,
                       c,      (int)lda,       (int)ldb,       (int)ldc, 0};
    note(active, &call);
  }
  return __real_nnlib__gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c,
                            ldc);
}

nnlib_status __wrap_nnlib__gemm_batch(const nnlib__gemm_call *calls,
                                      int64_t count) {
  if (active != NULL && count > 0) {
    batches++;
    for (int64_t i = 0; i < count; i++) {
      const nnlib__gemm_call *g = &calls[i];
      bench_call call = {true,
                         g->ta ? 'T' : 'N',
                         g->tb ? 'T' : 'N',
                         (int)g->m,
                         (int)g->n,
                         (int)g->k,
                         g->alpha,
                         g->beta,
                         g->a,
                         g->b,
                         g->c,
                         (int)g->lda,
                         (int)g->ldb,
                         (int)g->ldc,
                         batches};
      note(active, &call);
    }
  }
  return __real_nnlib__gemm_batch(calls, count);
}

void bench_record_start(bench_recording *r) {
  r->count = 0;
  r->out_of_memory = false;
  active = r;
  batches = 0;
}

void bench_record_stop(void) { active = NULL; }

void bench_recording_free(bench_recording *r) {
  free(r->calls);
  r->calls = NULL;
  r->count = r->cap = 0;
}

/* The nnlib__gemm_batch of count noted calls, in BATCH pieces. */
enum { BATCH = 256 };

void bench_calls_issue_batch(const bench_call *c, int count) {
  nnlib__gemm_call calls[BATCH];
  for (int at = 0; at < count; at += BATCH) {
    int k = count - at < BATCH ? count - at : BATCH;
    for (int i = 0; i < k; i++) {
      const bench_call *b = &c[at + i];
      nnlib__gemm_call g = {b->ta == 'T' ? NNLIB__TRANS : NNLIB__NO_TRANS,
                            b->tb == 'T' ? NNLIB__TRANS : NNLIB__NO_TRANS,
                            b->m,
                            b->n,
                            b->k,
                            b->alpha,
                            b->a,
                            b->lda,
                            b->b,
                            b->ldb,
                            b->beta,
                            b->c,
                            b->ldc};
      calls[i] = g;
    }
    __real_nnlib__gemm_batch(calls, k);
  }
}

void bench_call_issue(const bench_call *c) {
  __real_nnlib__gemm(c->ta == 'T' ? NNLIB__TRANS : NNLIB__NO_TRANS,
                     c->tb == 'T' ? NNLIB__TRANS : NNLIB__NO_TRANS, c->m,
                     c->n, c->k, c->alpha, c->a, c->lda, c->b, c->ldb,
                     c->beta, c->c, c->ldc);
}
