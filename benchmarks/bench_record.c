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
nnlib_status __real_nnlib__gemm_units_run(const nnlib__gemm_units *u);
nnlib_status __wrap_nnlib__gemm_units_run(const nnlib__gemm_units *u);

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
    bench_call call = {
        true,   ta ? 'T' : 'N', tb ? 'T' : 'N', (int)m,   (int)n,
        (int)k, alpha,          beta,           a,        b,
        c,      (int)lda,       (int)ldb,       (int)ldc, .batch = 0};
    note(active, &call);
  }
  return __real_nnlib__gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c,
                            ldc);
}

/* How a batch's calls ran (lanes 0: a plain batch). */
typedef struct batch_form {
  int lanes, per_unit, lane;
  bool ordered;
} batch_form;

/* A batch's calls, noted one by one as one batch. */
static void note_batch(const nnlib__gemm_call *calls, int64_t count,
                       batch_form form) {
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
                         batches,
                         form.lanes,
                         form.per_unit,
                         form.lane,
                         form.ordered};
      note(active, &call);
    }
  }
}

nnlib_status __wrap_nnlib__gemm_batch(const nnlib__gemm_call *calls,
                                      int64_t count) {
  note_batch(calls, count, (batch_form){0, 0, 0, false});
  return __real_nnlib__gemm_batch(calls, count);
}

/* The units' calls, noted as one batch with their lanes: the replay runs
 * them as units on the same lanes, without the units' passes (the work
 * beyond the GEMMs). */
nnlib_status __wrap_nnlib__gemm_units_run(const nnlib__gemm_units *u) {
  if (active != NULL && u->count > 0 && u->calls_per_unit >= 1 &&
      u->calls_per_unit <= NNLIB__UNIT_CALLS_MAX) {
    int64_t lanes = u->lanes < 1 ? 1 : u->lanes;
    if (u->lane_start == NULL && lanes > u->count)
      lanes = u->count;
    int first = batches + 1;
    for (int64_t lane = 0; lane < lanes; lane++) {
      int64_t begin = u->lane_start ? u->lane_start[lane]
                                    : nnlib__range_start(u->count, lanes, lane);
      int64_t end = u->lane_start
                        ? u->lane_start[lane + 1]
                        : nnlib__range_start(u->count, lanes, lane + 1);
      for (int64_t unit = begin; unit < end; unit++) {
        nnlib__gemm_call c[NNLIB__UNIT_CALLS_MAX];
        u->calls(u->ctx, unit, lane, c);
        batches = first - 1; /* every unit's calls in the one batch */
        note_batch(c, u->calls_per_unit,
                   (batch_form){(int)lanes, (int)u->calls_per_unit, (int)lane,
                                u->ordered});
      }
    }
  }
  return __real_nnlib__gemm_units_run(u);
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

static nnlib__gemm_call call_of(const bench_call *b) {
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
  return g;
}

/* Units' calls again as units on their lanes, no passes: unit u's calls
 * are the noted calls from u per_unit on. */
static void noted_calls(void *ctx, int64_t unit, int64_t lane,
                        nnlib__gemm_call *out) {
  (void)lane;
  const bench_call *c = ctx;
  for (int i = 0; i < c->per_unit; i++)
    out[i] = call_of(&c[unit * c->per_unit + i]);
}

static void issue_units(const bench_call *c, int count) {
  int64_t starts[NNLIB__UNIT_LANES_MAX + 1];
  int lanes =
      c->lanes < NNLIB__UNIT_LANES_MAX ? c->lanes : NNLIB__UNIT_LANES_MAX;
  int units = count / c->per_unit;
  for (int j = 0; j <= lanes; j++)
    starts[j] = units;
  for (int u = units - 1; u >= 0; u--) /* each lane's first unit */
    if (c[u * c->per_unit].lane < lanes)
      starts[c[u * c->per_unit].lane] = u;
  for (int j = lanes - 1; j >= 0; j--) /* a lane with no unit */
    if (starts[j] > starts[j + 1])
      starts[j] = starts[j + 1];
  nnlib__gemm_units run = {units, lanes,     c->per_unit, noted_calls, NULL,
                           NULL,  (void *)c, c->ordered,  starts};
  __real_nnlib__gemm_units_run(&run);
}

void bench_calls_issue_batch(const bench_call *c, int count) {
  if (c->lanes > 0) {
    issue_units(c, count);
    return;
  }
  nnlib__gemm_call calls[BATCH];
  for (int at = 0; at < count; at += BATCH) {
    int k = count - at < BATCH ? count - at : BATCH;
    for (int i = 0; i < k; i++)
      calls[i] = call_of(&c[at + i]);
    __real_nnlib__gemm_batch(calls, k);
  }
}

void bench_call_issue(const bench_call *c) {
  __real_nnlib__gemm(c->ta == 'T' ? NNLIB__TRANS : NNLIB__NO_TRANS,
                     c->tb == 'T' ? NNLIB__TRANS : NNLIB__NO_TRANS, c->m,
                     c->n, c->k, c->alpha, c->a, c->lda, c->b, c->ldb,
                     c->beta, c->c, c->ldc);
}
