/* bench_replay.c - the replay of a recorded step and its check against the
 * bench's GEMM list.
 *
 * The replay issues the step's own calls: the same pointers, so the same
 * buffers, leading dimensions and strided views (a recurrent layer's step
 * products read one W_hh and slices of its [n, T, G H] gates; attention's
 * per-head products the columns of its packed QKV rows), the same alpha and
 * beta. What it leaves in the step's memory must not change the next step
 * or grow from replay to replay:
 *  - calls with beta = 0 only overwrite buffers the step writes again
 *    before reading them (activations, workspaces, gradients); no value
 *    carries from one replay to the next through them;
 *  - calls with beta != 0 accumulate. Where an earlier call of the same
 *    replay overwrites the whole region with beta = 0 (a recurrent
 *    layer's input projection before its step products add into the
 *    gates, conv2d's first chunk of dW before the others add to it), every
 *    replay starts it afresh. The others would carry values from replay
 *    to replay: plain SGD's fused update W -= lr dZ^T X (every replay
 *    would take another step, on the replay's stale operands), attention's
 *    projections onto the bias rows broadcast before them. Those regions
 *    are copied aside before each timed replay and back after it
 *    (untimed), so every replay starts from the values the step left and
 *    nothing grows into Inf, NaN or subnormals that would slow the GEMMs
 *    down.
 * nnlib-bench --bench check proves the first point: training with a
 * replay after every step ends with the same parameters, bit for bit. */
#include "bench_replay.h"

#include "nnlib.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Floats from C's first element to its last: rows of ldc, the last row
 * only as wide as the product. */
static size_t c_span(const bench_call *c) {
  int rows = c->row_major ? c->m : c->n, cols = c->row_major ? c->n : c->m;
  return rows == 0 || cols == 0 ? 0 : (size_t)(rows - 1) * c->ldc + cols;
}

/* Addresses as integers: spans of different buffers are compared. */
static uintptr_t at(const float *p) { return (uintptr_t)p; }

static uintptr_t end_of(const float *start, size_t floats) {
  return at(start) + floats * sizeof(float);
}

static int by_start(const void *x, const void *y) {
  uintptr_t a = at(((const bench_region *)x)->start);
  uintptr_t b = at(((const bench_region *)y)->start);
  return a < b ? -1 : a > b;
}

/* true when call j (beta 0, writing every float of its span: rows of
 * exactly its width) overwrites all of call i's C, so what i adds onto
 * starts afresh in every replay. */
static bool resets(const bench_call *j, const bench_call *i) {
  int cols = j->row_major ? j->n : j->m;
  return j->beta == 0.0f && j->ldc == cols && at(j->c) <= at(i->c) &&
         end_of(i->c, c_span(i)) <= end_of(j->c, c_span(j));
}

/* Whether call i's C must be saved and restored: it accumulates (beta !=
 * 0) onto values no earlier call of the replay resets. */
static bool accumulates_across_replays(const bench_replay *r, int i) {
  if (r->calls[i].beta == 0.0f || c_span(&r->calls[i]) == 0)
    return false;
  for (int j = 0; j < i; j++)
    if (resets(&r->calls[j], &r->calls[i]))
      return false;
  return true;
}

/* The C spans of the calls that accumulate across replays, sorted and
 * merged where they overlap or touch, so each float is saved once. */
static bool find_regions(bench_replay *r) {
  size_t cap = r->count > 0 ? (size_t)r->count : 1;
  r->regions = malloc(cap * sizeof *r->regions);
  if (r->regions == NULL)
    return false;
  int count = 0;
  for (int i = 0; i < r->count; i++)
    if (accumulates_across_replays(r, i))
      r->regions[count++] =
          (bench_region){r->calls[i].c, c_span(&r->calls[i])};
  qsort(r->regions, (size_t)count, sizeof *r->regions, by_start);
  int merged = 0;
  for (int i = 0; i < count; i++) {
    bench_region *last = merged > 0 ? &r->regions[merged - 1] : NULL;
    const bench_region *next = &r->regions[i];
    if (last != NULL &&
        at(next->start) <= end_of(last->start, last->floats)) {
      uintptr_t end = end_of(next->start, next->floats);
      if (end > end_of(last->start, last->floats))
        last->floats = (end - at(last->start)) / sizeof(float);
    } else {
      r->regions[merged++] = *next;
    }
  }
  r->region_count = merged;
  r->saved_floats = 0;
  for (int i = 0; i < merged; i++)
    r->saved_floats += r->regions[i].floats;
  r->saved = malloc((r->saved_floats ? r->saved_floats : 1) * sizeof(float));
  return r->saved != NULL;
}

bool bench_replay_init(bench_replay *r, const bench_recording *rec) {
  memset(r, 0, sizeof *r);
  size_t n = rec->count > 0 ? (size_t)rec->count : 1;
  r->calls = malloc(n * sizeof *r->calls);
  r->layer = malloc(n * sizeof *r->layer);
  r->role = malloc(n * sizeof *r->role);
  if (r->calls == NULL || r->layer == NULL || r->role == NULL) {
    bench_replay_free(r);
    return false;
  }
  r->count = rec->count;
  for (int i = 0; i < r->count; i++) {
    r->calls[i] = rec->calls[i];
    r->layer[i] = -1;
    r->role[i] = NULL;
  }
  if (!find_regions(r)) {
    bench_replay_free(r);
    return false;
  }
  return true;
}

void bench_replay_free(bench_replay *r) {
  free(r->calls);
  free(r->layer);
  free(r->role);
  free(r->regions);
  free(r->saved);
  memset(r, 0, sizeof *r);
}

void bench_replay_run(const bench_replay *r, int layer) {
  for (int i = 0; i < r->count;) {
    int end = i + 1; /* a batch's calls go together, as the step ran them */
    while (r->calls[i].batch != 0 && end < r->count &&
           r->calls[end].batch == r->calls[i].batch)
      end++;
    if (layer >= 0 && r->layer[i] != layer)
      ;
    else if (r->calls[i].batch != 0)
      bench_calls_issue_batch(&r->calls[i], end - i);
    else
      bench_call_issue(&r->calls[i]);
    i = end;
  }
}

void bench_replay_save(bench_replay *r) {
  float *to = r->saved;
  for (int i = 0; i < r->region_count; i++) {
    memcpy(to, r->regions[i].start, r->regions[i].floats * sizeof(float));
    to += r->regions[i].floats;
  }
}

void bench_replay_restore(const bench_replay *r) {
  const float *from = r->saved;
  for (int i = 0; i < r->region_count; i++) {
    memcpy(r->regions[i].start, from, r->regions[i].floats * sizeof(float));
    from += r->regions[i].floats;
  }
}

double bench_replay_flops(const bench_replay *r, int layer) {
  double flops = 0.0;
  for (int i = 0; i < r->count; i++)
    if (layer < 0 || r->layer[i] == layer)
      flops += 2.0 * r->calls[i].m * (double)r->calls[i].n * r->calls[i].k;
  return flops;
}

void bench_replay_scan(const bench_replay *r, long long *nonfinite,
                       long long *subnormal) {
  *nonfinite = *subnormal = 0;
  for (int i = 0; i < r->count; i++) {
    const bench_call *c = &r->calls[i];
    int rows = c->row_major ? c->m : c->n, cols = c->row_major ? c->n : c->m;
    for (int y = 0; y < rows; y++)
      for (int x = 0; x < cols; x++) {
        int kind = fpclassify(c->c[(size_t)y * c->ldc + x]);
        *nonfinite += kind == FP_NAN || kind == FP_INFINITE;
        *subnormal += kind == FP_SUBNORMAL;
      }
  }
}

/* ------------------------------------------------ the list, call by call */

/* Leading dimension of one of the list's operands: its own, or that of a
 * packed row-major matrix of `cols` columns. */
static int list_ld(const bench_operand *o, int cols) {
  return o->ld ? o->ld : cols;
}

/* The call the list issues as entry e's call t, in the recording's terms
 * (pointers left NULL). */
static bench_call list_call(const bench_gemm *g) {
  bench_call c = {true, g->ta,    g->tb,   g->m,      g->n,
                  g->k, g->alpha, g->beta, .batch = 0};
  c.lda = list_ld(&g->a, g->ta == 'N' ? g->k : g->m);
  c.ldb = list_ld(&g->b, g->tb == 'N' ? g->n : g->k);
  c.ldc = list_ld(&g->c, g->n);
  return c;
}

static void describe(const bench_call *c, char *out, size_t size) {
  snprintf(out, size,
           "%s %c%c m=%d n=%d k=%d alpha=%.9g beta=%.9g lda=%d ldb=%d ldc=%d",
           c->row_major ? "row-major" : "column-major", c->ta, c->tb, c->m,
           c->n, c->k, (double)c->alpha, (double)c->beta, c->lda, c->ldb,
           c->ldc);
}

static bool same_call(const bench_call *x, const bench_call *y) {
  return x->row_major == y->row_major && x->ta == y->ta && x->tb == y->tb &&
         x->m == y->m && x->n == y->n && x->k == y->k &&
         x->alpha == y->alpha && x->beta == y->beta && x->lda == y->lda &&
         x->ldb == y->ldb && x->ldc == y->ldc;
}

static bool check_one(bench_replay *r, int at, const bench_call *want,
                      const bench_gemm *g, int e, int t, char *why,
                      size_t why_size) {
  if (at >= r->count) {
    snprintf(why, why_size,
             "the step made %d GEMM calls; the list has more (entry %d, "
             "layer %d %s)",
             r->count, e, g->layer, g->role);
    return false;
  }
  if (!same_call(want, &r->calls[at])) {
    char a[160], b[160];
    describe(want, a, sizeof a);
    describe(&r->calls[at], b, sizeof b);
    snprintf(why, why_size,
             "GEMM call %d differs: the list (entry %d, call %d of %d, layer "
             "%d %s) has %s; the step made %s",
             at, e, t, g->repeat, g->layer, g->role, a, b);
    return false;
  }
  r->layer[at] = g->layer;
  r->role[at] = g->role;
  return true;
}

bool bench_replay_attribute(bench_replay *r, const bench_gemm *list,
                            int count, char *why, size_t why_size) {
  int at = 0;
  for (int i = 0; i < count;) {
    /* a group (attention's per-head products) runs call t of each entry
     * in turn, as the layer does, then call t + 1 */
    int end = i + 1;
    while (list[i].group != 0 && end < count &&
           list[end].group == list[i].group)
      end++;
    for (int t = 0; t < list[i].repeat; t++)
      for (int e = i; e < end; e++) {
        bench_call want = list_call(&list[e]);
        if (!check_one(r, at, &want, &list[e], e, t, why, why_size))
          return false;
        at++;
      }
    i = end;
  }
  if (at != r->count) {
    char b[160];
    describe(&r->calls[at], b, sizeof b);
    snprintf(why, why_size,
             "the list has %d GEMM calls; the step made %d, the first one "
             "past the list: %s",
             at, r->count, b);
    return false;
  }
  return true;
}

bool bench_recordings_equal(const bench_recording *x,
                            const bench_recording *y, char *why,
                            size_t why_size) {
  if (x->count != y->count) {
    snprintf(why, why_size, "one step made %d GEMM calls, the next %d",
             x->count, y->count);
    return false;
  }
  for (int i = 0; i < x->count; i++) {
    const bench_call *a = &x->calls[i], *b = &y->calls[i];
    if (!same_call(a, b) || a->a != b->a || a->b != b->b || a->c != b->c ||
        a->lanes != b->lanes || a->lane != b->lane ||
        a->ordered != b->ordered) {
      snprintf(why, why_size,
               "GEMM call %d differs between two steps (shape, pointers or "
               "lanes)",
               i);
      return false;
    }
  }
  return true;
}
