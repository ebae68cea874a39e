/* rnn, lstm and gru decoding one stretch of positions at a time
 * (nnlib__batch.decoding, what nnlib_model_generate runs): each layer keeps
 * h (and lstm's c) per sequence in its cache between calls.
 *
 *   - plan declares the cache: H floats per sample (rnn, gru), 2H (lstm);
 *   - a whole sequence of T positions in one ordinary forward (no cache)
 *     gives, for every position, the outputs of decoding it position by
 *     position, in stretches 2+3+1, or in one stretch of T, with the cache
 *     (within 1e-6 relative, max(|want|, 1) scale): rnn (tanh, relu), lstm
 *     and gru (both forms of the new gate: PyTorch's and lbr0), with and
 *     without bias, batches of 1 and 3, the workspace
 *     poisoned with NaN between calls;
 *   - with "last" each call returns its last position's output: the twin
 *     model that returns the sequence (same weights) at that position;
 *   - after the last call the cache holds the final h (the last output);
 *   - an initial state (nnlib_recurrent_set_initial_state, one row or one
 *     per sample) starts position 0 instead of the cache, which is filled
 *     with garbage to show it is not read there;
 *   - without the cache, stretches start from zeros each time (the outputs
 *     differ: the cache is what carries the state);
 *   - calls without a cache on fewer steps than planned (run->steps < T)
 *     give exactly what a model compiled for that T gives (same weights);
 *   - an initial state of 3 rows refuses a decoding batch of 2 with
 *     NNLIB_ERR_SHAPE_MISMATCH, as the ordinary forward does;
 *   - nnlib_model_generate through embedding, recurrent layer and linear
 *     samples the same tokens with and without the cache while the window
 *     fits the context (the cache-less path re-runs the whole window). */
#include "layers/recurrent.h"
#include "nnlib_internal.h"
#include "test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STEPS 6    /* T */
#define FEATURES 3 /* F */
#define HIDDEN 5   /* H */
#define MAX_BATCH 3
#define REL_TOL 1e-6

/* The recurrent items tried: every kind, activation and bias choice. */
static const char *const kinds[] = {
    "rnn:5",  "rnn:5:relu", "rnn:5:nobias", "rnn:5:relu:nobias",
    "lstm:5", "lstm:5:nobias", "gru:5",     "gru:5:nobias",
    "gru:5:lbr0", "gru:5:nobias:lbr0",
};
#define KIND_COUNT (sizeof kinds / sizeof kinds[0])

/* ------------------------------------------------------------- models */

/* A compiled model "input:TxF,<item>[,last]" (node 1 is the recurrent
 * layer) with an inference buffer set and caches for every node. */
typedef struct rig {
  nnlib_model *m;
  nnlib_layer *layer;
  nnlib__buffers bufs;
  float *caches[2]; /* per node: NULL for the input, the layer's cache */
  int64_t steps;
  bool sequences;
} rig;

static void rig_make(rig *r, const char *item, int64_t steps, bool last,
                     uint64_t seed) {
  char spec[96];
  snprintf(spec, sizeof spec, "input:%lldx%d,%s%s", (long long)steps,
           FEATURES, item, last ? ",last" : "");
  memset(r, 0, sizeof *r);
  ASSERT_OK(nnlib_model_create(&r->m));
  ASSERT_OK(nnlib_model_add_spec(r->m, spec));
  ASSERT_OK(nnlib_model_compile_graph(r->m, MAX_BATCH, NNLIB_LOSS_NONE, NULL,
                                      seed));
  assert_int_equal(r->m->node_count, 2);
  r->layer = nnlib_model_get_layer(r->m, 0);
  assert_non_null(r->layer);
  ASSERT_OK(nnlib__buffers_alloc(r->m, &r->bufs, false));
  bool lstm = strncmp(item, "lstm", 4) == 0;
  assert_int_equal(r->layer->cache_floats, (lstm ? 2 : 1) * HIDDEN);
  r->caches[1] = calloc(MAX_BATCH * r->layer->cache_floats, sizeof(float));
  assert_non_null(r->caches[1]);
  r->steps = steps;
  r->sequences = !last;
}

static void rig_free(rig *r) {
  nnlib__buffers_free(&r->bufs);
  free(r->caches[1]);
  nnlib_model_free(r->m);
}

/* The weights of `from` into `to` (the same layer kind and sizes). */
static void copy_weights(rig *to, const rig *from) {
  assert_int_equal(to->m->param_size, from->m->param_size);
  memcpy(to->m->params, from->m->params,
         (size_t)from->m->param_size * sizeof(float));
}

/* A state h0 (and c0 for lstm) of `rows` rows into both models. */
static void set_state(rig *a, rig *b, int64_t rows, uint32_t *seed) {
  float h0[MAX_BATCH * HIDDEN], c0[MAX_BATCH * HIDDEN];
  ts_fill_uniform(h0, rows * HIDDEN, -0.9f, 0.9f, seed);
  ts_fill_uniform(c0, rows * HIDDEN, -2.0f, 2.0f, seed);
  bool lstm = a->layer->ops->kind == NNLIB_LAYER_LSTM;
  ASSERT_OK(nnlib_recurrent_set_initial_state(a->layer, h0, lstm ? c0 : NULL,
                                              rows));
  ASSERT_OK(nnlib_recurrent_set_initial_state(b->layer, h0, lstm ? c0 : NULL,
                                              rows));
}

/* ------------------------------------------------------------- calls */

/* One forward of n samples of `steps` positions (x compact [n, steps, F]):
 * decoding from `position` with the cache or without (cached false), or
 * an ordinary call (decoding false; steps 0: as planned). Returns the
 * output buffer (valid until the next call). */
static const float *run_call(rig *r, const float *x, int64_t n, bool decoding,
                             int64_t position, int64_t steps, bool cached) {
  nnlib__batch batch;
  memset(&batch, 0, sizeof batch);
  batch.x[0] = x;
  batch.n = n;
  batch.steps = steps;
  batch.decoding = decoding;
  batch.position = position;
  batch.caches = cached ? r->caches : NULL;
  /* a call must not read what an earlier call left in the workspace */
  float *ws = r->bufs.workspace[1];
  for (size_t k = 0; k < r->layer->workspace_floats; k++)
    ws[k] = NAN;
  const float *out;
  ASSERT_OK(nnlib__forward(r->m, &r->bufs, &batch, NULL, &out));
  return out;
}

/* Positions [first, first + steps) of each of n samples of x [n, T, F],
 * compact. */
static void gather(const float *x, int64_t n, int64_t total, int64_t width,
                   int64_t first, int64_t steps, float *out) {
  for (int64_t s = 0; s < n; s++)
    memcpy(out + s * steps * width, x + (s * total + first) * width,
           (size_t)(steps * width) * sizeof(float));
}

static void expect_close(const char *what, const float *got, const float *want,
                         int64_t count) {
  for (int64_t i = 0; i < count; i++) {
    double scale = fmax(fabs((double)want[i]), 1.0);
    if (!(fabs((double)got[i] - (double)want[i]) <= REL_TOL * scale))
      fail_msg("%s: element %lld is %.9g, want %.9g", what, (long long)i,
               (double)got[i], (double)want[i]);
  }
}

/* ---------------------------------------------------------- decoding */

/* The whole sequence of seq (returns sequences) without a cache, then the
 * same decoded with the cache in stretches of chunks[] (summing to T)
 * through seq and through last (returns only the last step; NULL: not
 * tried): every output of every stretch matches the whole run. */
static void check_stretches(rig *seq, rig *last, const float *x, int64_t n,
                            const int64_t *chunks, size_t count,
                            const char *item) {
  int64_t t = seq->steps, h = HIDDEN;
  float whole[MAX_BATCH * STEPS * HIDDEN], want[MAX_BATCH * STEPS * HIDDEN];
  float in[MAX_BATCH * STEPS * FEATURES], last_row[MAX_BATCH * HIDDEN];
  memcpy(whole, run_call(seq, x, n, false, 0, 0, false),
         (size_t)(n * t * h) * sizeof(float));
  bool with_state = ((nnlib__recurrent *)seq->layer)->state_rows > 0;
  /* the cache is zeroed before position 0; with an initial state it is not
   * read there, so garbage must not matter */
  float fill = with_state ? 7.0f : 0.0f;
  for (size_t k = 0; k < MAX_BATCH * seq->layer->cache_floats; k++) {
    seq->caches[1][k] = fill;
    if (last != NULL)
      last->caches[1][k] = fill;
  }
  int64_t first = 0;
  for (size_t i = 0; i < count; i++) {
    int64_t steps = chunks[i];
    char what[160];
    snprintf(what, sizeof what, "%s n=%lld%s positions %lld..%lld", item,
             (long long)n, with_state ? " with h0" : "", (long long)first,
             (long long)(first + steps - 1));
    gather(x, n, t, FEATURES, first, steps, in);
    gather(whole, n, t, h, first, steps, want);
    const float *got = run_call(seq, in, n, true, first, steps, true);
    expect_close(what, got, want, n * steps * h);
    if (last != NULL) {
      gather(whole, n, t, h, first + steps - 1, 1, last_row);
      got = run_call(last, in, n, true, first, steps, true);
      expect_close(what, got, last_row, n * h);
    }
    first += steps;
  }
  assert_int_equal(first, t);
  /* the cache ends holding each sequence's final h */
  gather(whole, n, t, h, t - 1, 1, last_row);
  int64_t row = (int64_t)seq->layer->cache_floats;
  for (int64_t s = 0; s < n; s++)
    expect_close("final h in the cache", seq->caches[1] + s * row,
                 last_row + s * h, h);
  if (last != NULL) {
    const float *got = run_call(last, x, n, false, 0, 0, false);
    expect_close("last, whole sequence", got, last_row, n * h);
  }
}

/* Position by position with decoding but no cache: every call starts from
 * zeros, so some later output differs from the whole run. */
static void check_needs_cache(rig *seq, const float *x, int64_t n) {
  float whole[MAX_BATCH * STEPS * HIDDEN], in[MAX_BATCH * FEATURES];
  float want[MAX_BATCH * HIDDEN];
  memcpy(whole, run_call(seq, x, n, false, 0, 0, false),
         sizeof(float) * (size_t)(n * STEPS * HIDDEN));
  double largest = 0.0;
  for (int64_t p = 1; p < STEPS; p++) {
    gather(x, n, STEPS, FEATURES, p, 1, in);
    gather(whole, n, STEPS, HIDDEN, p, 1, want);
    const float *got = run_call(seq, in, n, true, p, 1, false);
    for (int64_t k = 0; k < n * HIDDEN; k++)
      largest = fmax(largest, fabs((double)got[k] - (double)want[k]));
  }
  assert_true(largest > 1e-3);
}

static void test_decoding(void **state) {
  (void)state;
  static const int64_t ones[STEPS] = {1, 1, 1, 1, 1, 1};
  static const int64_t mixed[3] = {2, 3, 1}, one_stretch[1] = {STEPS};
  uint32_t seed = 2024;
  for (size_t k = 0; k < KIND_COUNT; k++) {
    for (int64_t n = 1; n <= MAX_BATCH; n += 2) {
      for (int with_state = 0; with_state < 2; with_state++) {
        rig seq, last;
        rig_make(&seq, kinds[k], STEPS, false, 100 + k);
        rig_make(&last, kinds[k], STEPS, true, 200 + k);
        copy_weights(&last, &seq);
        if (with_state)
          set_state(&seq, &last, n == 1 ? 1 : (k % 2 == 0 ? n : 1), &seed);
        float x[MAX_BATCH * STEPS * FEATURES];
        ts_fill_uniform(x, n * STEPS * FEATURES, -1.5f, 1.5f, &seed);
        check_stretches(&seq, &last, x, n, ones, STEPS, kinds[k]);
        check_stretches(&seq, &last, x, n, mixed, 3, kinds[k]);
        check_stretches(&seq, &last, x, n, one_stretch, 1, kinds[k]);
        if (!with_state)
          check_needs_cache(&seq, x, n);
        rig_free(&seq);
        rig_free(&last);
      }
    }
  }
}

/* ------------------------------------------------- shorter, no cache */

/* A model planned for T = 6 run on 4 steps without a cache equals one
 * compiled for T = 4 with the same weights, bit for bit. */
static void test_shorter_without_cache(void **state) {
  (void)state;
  enum { SHORT = 4 };
  uint32_t seed = 77;
  for (size_t k = 0; k < KIND_COUNT; k++) {
    for (int last = 0; last < 2; last++) {
      for (int with_state = 0; with_state < 2; with_state++) {
        rig planned, shorter;
        rig_make(&planned, kinds[k], STEPS, last, 300 + k);
        rig_make(&shorter, kinds[k], SHORT, last, 400 + k);
        copy_weights(&shorter, &planned);
        if (with_state)
          set_state(&planned, &shorter, MAX_BATCH, &seed);
        float x[MAX_BATCH * SHORT * FEATURES];
        ts_fill_uniform(x, MAX_BATCH * SHORT * FEATURES, -1.5f, 1.5f, &seed);
        int64_t count = MAX_BATCH * (last ? 1 : SHORT) * HIDDEN;
        float want[MAX_BATCH * SHORT * HIDDEN];
        memcpy(want, run_call(&shorter, x, MAX_BATCH, false, 0, 0, false),
               (size_t)count * sizeof(float));
        const float *got =
            run_call(&planned, x, MAX_BATCH, false, 0, SHORT, false);
        if (memcmp(got, want, (size_t)count * sizeof(float)) != 0)
          fail_msg("%s%s: 4 of 6 steps differ from a model of 4 steps",
                   kinds[k], last ? ",last" : "");
        rig_free(&planned);
        rig_free(&shorter);
      }
    }
  }
}

/* ------------------------------------------------------------ refusal */

static void test_state_rows_refused(void **state) {
  (void)state;
  rig r;
  rig_make(&r, "lstm:5", STEPS, false, 5);
  float h0[MAX_BATCH * HIDDEN] = {0};
  ASSERT_OK(nnlib_recurrent_set_initial_state(r.layer, h0, NULL, MAX_BATCH));
  float x[2 * FEATURES] = {0};
  nnlib__batch batch;
  memset(&batch, 0, sizeof batch);
  batch.x[0] = x;
  batch.n = 2;
  batch.steps = 1;
  batch.decoding = true;
  batch.position = 3;
  batch.caches = r.caches;
  const float *out;
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH,
                nnlib__forward(r.m, &r.bufs, &batch, NULL, &out));
  ts_expect_message("3 rows");
  rig_free(&r);
}

/* ---------------------------------------------------------- generate */

/* A character model embedding -> recurrent -> linear samples the same
 * tokens with the cache as by re-running the window, while prompt and
 * tokens fit the context (8 positions: 3 + 5). */
static void test_generate(void **state) {
  (void)state;
  static const char *const items[] = {"rnn:6", "lstm:6", "gru:6:nobias",
                                      "gru:6:lbr0"};
  for (size_t k = 0; k < 4; k++) {
    char spec[96];
    snprintf(spec, sizeof spec, "input:8,embedding:11:4,%s,linear:11",
             items[k]);
    nnlib_model *m;
    ASSERT_OK(nnlib_model_create(&m));
    ASSERT_OK(nnlib_model_add_spec(m, spec));
    ASSERT_OK(nnlib_model_compile_graph(m, 1, NNLIB_LOSS_NONE, NULL, 9 + k));
    const int32_t prompt[3] = {1, 7, 3};
    int32_t cached[5], plain[5];
    nnlib_generate_options o;
    ASSERT_OK(nnlib_generate_options_init(&o));
    o.seed = 42;
    o.temperature = 0.8f;
    ASSERT_OK(nnlib_model_generate(m, prompt, 3, 5, &o, cached));
    o.use_cache = 0;
    ASSERT_OK(nnlib_model_generate(m, prompt, 3, 5, &o, plain));
    for (int i = 0; i < 5; i++) {
      assert_true(cached[i] >= 0 && cached[i] < 11);
      assert_int_equal(cached[i], plain[i]);
    }
    nnlib_model_free(m);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_decoding),
      cmocka_unit_test(test_shorter_without_cache),
      cmocka_unit_test(test_state_rows_refused),
      cmocka_unit_test(test_generate),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
