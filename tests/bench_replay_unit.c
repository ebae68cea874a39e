/* nnlib-bench's recording of a step's GEMMs and its replay (issue 17):
 * the recorded calls are libnnlib's own (pointers into the caller's input
 * and the model's weights, the product naive loops compute), the check
 * against the bench's GEMM list names the first difference, and the
 * replay restores exactly what it accumulates into. Built with the
 * benchmark's sources and linked as nnlib-bench is (tests/bench.cmake):
 * nnlib's GEMM seam wrapped by bench_record.c. */
#include "test_support.h"

#include "bench_models.h"
#include "bench_record.h"
#include "bench_replay.h"
#include "core/core.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { N = 4, IN = 5, OUT = 3 };

typedef struct dense_case {
  nnlib_model *m;
  nnlib_tensor *x, *y, *target;
  float *w; /* the layer's weights [OUT, IN] */
} dense_case;

/* dense 5 -> 3 with a bias, MSE, plain SGD at lr 0.01, batch 4. */
static dense_case dense_make(void) {
  dense_case c;
  nnlib_optimizer_options o;
  nnlib_optimizer *opt = NULL;
  ASSERT_OK(nnlib_optimizer_options_init(&o, NNLIB_OPT_SGD));
  o.learning_rate = 0.01f;
  ASSERT_OK(nnlib_optimizer_create(&opt, &o));
  c.m = ts_model(IN, N, NNLIB_LOSS_MSE, opt, 3, ts_dense(IN, OUT, 1), NULL);
  float x[N * IN], t[N * OUT];
  uint32_t seed = 11;
  ts_fill_uniform(x, N * IN, -1.0f, 1.0f, &seed);
  ts_fill_uniform(t, N * OUT, 0.0f, 1.0f, &seed);
  c.x = ts_tensor2(N, IN, x);
  c.y = ts_tensor2(N, OUT, NULL);
  c.target = ts_tensor2(N, OUT, t);
  nnlib_tensor *w = NULL;
  ASSERT_OK(nnlib_layer_get_param(nnlib_model_get_layer(c.m, 0), 0, &w, NULL));
  c.w = nnlib_tensor_get_data(w);
  return c;
}

static void dense_free(dense_case *c) {
  nnlib_tensor_free(c->x);
  nnlib_tensor_free(c->y);
  nnlib_tensor_free(c->target);
  nnlib_model_free(c->m);
}

/* Records one training step of the dense case (after an unrecorded one). */
static bench_recording record_step(dense_case *c) {
  bench_recording rec = {NULL, 0, 0, false};
  ASSERT_OK(nnlib_model_step(c->m, c->x, c->target, NULL));
  bench_record_start(&rec);
  ASSERT_OK(nnlib_model_step(c->m, c->x, c->target, NULL));
  bench_record_stop();
  assert_false(rec.out_of_memory);
  return rec;
}

static void test_records_prediction(void **state) {
  (void)state;
  dense_case c = dense_make();
  bench_recording rec = {NULL, 0, 0, false};
  bench_record_start(&rec);
  ASSERT_OK(nnlib_model_predict(c.m, c.x, c.y));
  bench_record_stop();
  assert_int_equal(rec.count, 1);
  const bench_call *g = &rec.calls[0];
  /* Y = X W^T on the caller's X and the layer's own W */
  assert_true(g->row_major);
  assert_int_equal(g->ta, 'N');
  assert_int_equal(g->tb, 'T');
  assert_int_equal(g->m, N);
  assert_int_equal(g->n, OUT);
  assert_int_equal(g->k, IN);
  /* Y starts as the bias rows and the product adds onto them */
  assert_true(g->alpha == 1.0f && g->beta == 1.0f);
  assert_ptr_equal(g->a, nnlib_tensor_get_data(c.x));
  assert_ptr_equal(g->b, c.w);
  assert_int_equal(g->lda, IN);
  assert_int_equal(g->ldb, IN);
  assert_int_equal(g->ldc, OUT);
  /* what the call wrote is the product (the bias starts at zero), and
   * the prediction is it */
  const float *x = nnlib_tensor_get_data(c.x), *y = nnlib_tensor_get_data(c.y);
  for (int r = 0; r < N; r++)
    for (int o = 0; o < OUT; o++) {
      double want = 0.0;
      for (int i = 0; i < IN; i++)
        want += (double)x[r * IN + i] * c.w[o * IN + i];
      ASSERT_NEAR(g->c[r * OUT + o], want, 1e-5);
      assert_true(y[r * OUT + o] == g->c[r * OUT + o]);
    }
  bench_recording_free(&rec);
  dense_free(&c);
}

static void test_records_fused_sgd_step(void **state) {
  (void)state;
  dense_case c = dense_make();
  bench_recording rec = record_step(&c);
  /* forward, then W -= lr dZ^T X folded into one GEMM on W itself; the
   * layer reads the model's input, so no dX */
  assert_int_equal(rec.count, 2);
  const bench_call *g = &rec.calls[1];
  assert_int_equal(g->ta, 'T');
  assert_int_equal(g->tb, 'N');
  assert_int_equal(g->m, OUT);
  assert_int_equal(g->n, IN);
  assert_int_equal(g->k, N);
  assert_true(g->alpha == -0.01f && g->beta == 1.0f);
  assert_ptr_equal(g->b, nnlib_tensor_get_data(c.x));
  assert_ptr_equal(g->c, c.w);
  assert_int_equal(g->lda, OUT);
  assert_int_equal(g->ldb, IN);
  assert_int_equal(g->ldc, IN);
  bench_recording again = record_step(&c);
  char why[512];
  assert_true(bench_recordings_equal(&rec, &again, why, sizeof why));
  bench_recording_free(&again);
  bench_recording_free(&rec);
  dense_free(&c);
}

/* The bench's list for the dense case matches, and gives every call its
 * layer and role. */
static void test_list_attributes_calls(void **state) {
  (void)state;
  dense_case c = dense_make();
  bench_recording rec = record_step(&c);
  bench_gemm list[8];
  assert_int_equal(bench_model_gemms(c.m, N, true, true, list, 8, NULL), 2);
  bench_replay r;
  assert_true(bench_replay_init(&r, &rec));
  char why[512] = "";
  if (!bench_replay_attribute(&r, list, 2, why, sizeof why))
    fail_msg("%s", why);
  assert_int_equal(r.layer[0], 0);
  assert_int_equal(r.layer[1], 0);
  assert_string_equal(r.role[0], "forward");
  assert_string_equal(r.role[1], "weight_grad");
  /* the forward product adds onto the bias rows in Y, and the fused
   * update accumulates into W: those two are what gets restored */
  assert_int_equal(r.region_count, 2);
  int w_region = r.regions[0].start == c.w ? 0 : 1;
  assert_ptr_equal(r.regions[w_region].start, c.w);
  assert_int_equal(r.regions[w_region].floats, OUT * IN);
  assert_int_equal(r.regions[1 - w_region].floats, N * OUT);
  bench_replay_free(&r);
  bench_recording_free(&rec);
  dense_free(&c);
}

static void expect_mismatch(const bench_recording *rec, const bench_gemm *list,
                            int count, const char *const *needles) {
  bench_replay r;
  assert_true(bench_replay_init(&r, rec));
  char why[512] = "";
  assert_false(bench_replay_attribute(&r, list, count, why, sizeof why));
  for (; *needles != NULL; needles++)
    if (strstr(why, *needles) == NULL)
      fail_msg("message '%s' lacks '%s'", why, *needles);
  bench_replay_free(&r);
}

/* Each field the check compares, changed in the list, is named as the
 * first difference with both values. */
static void test_mismatch_names_first_difference(void **state) {
  (void)state;
  dense_case c = dense_make();
  bench_recording rec = record_step(&c);
  bench_gemm good[8], bad[8];
  assert_int_equal(bench_model_gemms(c.m, N, true, true, good, 8, NULL), 2);

  memcpy(bad, good, sizeof good);
  bad[1].c.ld = IN + 1;
  expect_mismatch(&rec, bad, 2,
                  (const char *const[]){"GEMM call 1 differs", "ldc=6",
                                        "ldc=5", "weight_grad", NULL});
  memcpy(bad, good, sizeof good);
  bad[1].beta = 0.0f;
  expect_mismatch(&rec, bad, 2,
                  (const char *const[]){"GEMM call 1", "beta=0 lda",
                                        "beta=1 lda", NULL});
  memcpy(bad, good, sizeof good);
  bad[0].alpha = 2.0f;
  expect_mismatch(&rec, bad, 2,
                  (const char *const[]){"GEMM call 0", "alpha=2", NULL});
  memcpy(bad, good, sizeof good);
  bad[0].tb = 'N';
  bad[0].b.ld = IN; /* same leading dimension: only the transpose differs */
  expect_mismatch(&rec, bad, 2,
                  (const char *const[]){"GEMM call 0", "NN m=4", "NT m=4",
                                        NULL});
  memcpy(bad, good, sizeof good);
  bad[0].a.ld = 2 * IN;
  expect_mismatch(&rec, bad, 2,
                  (const char *const[]){"lda=10", "lda=5", NULL});
  memcpy(bad, good, sizeof good);
  bad[0].k = IN + 1;
  bad[0].a.ld = bad[0].b.ld = IN;
  expect_mismatch(&rec, bad, 2, (const char *const[]){"k=6", "k=5", NULL});
  /* one call short, one call too many */
  expect_mismatch(&rec, good, 1,
                  (const char *const[]){"the list has 1 GEMM calls; the step "
                                        "made 2",
                                        NULL});
  memcpy(bad, good, sizeof good);
  bad[2] = good[1];
  expect_mismatch(&rec, bad, 3,
                  (const char *const[]){"the step made 2 GEMM calls; the "
                                        "list has more",
                                        NULL});
  bench_recording_free(&rec);
  dense_free(&c);
}

/* A synthetic call C[m,n] = A B on the given arrays, packed. */
static bench_call call_on(float *a, float *b, float *c, int m, int n, int k,
                          float beta, int ldc) {
  return (bench_call){true, 'N', 'N', m, n, k,   1.0f,      beta,
                      a,    b,   c,   k, n, ldc, .batch = 0};
}

/* Entries of one group run call by call in turn: A0 B0 A1 B1. */
static void test_group_runs_interleaved(void **state) {
  (void)state;
  float a[16] = {0}, b[16] = {0}, c[16] = {0};
  bench_call interleaved[4] = {
      call_on(a, b, c, 2, 2, 2, 0.0f, 2), call_on(a, b, c, 3, 1, 2, 0.0f, 1),
      call_on(a, b, c, 2, 2, 2, 0.0f, 2), call_on(a, b, c, 3, 1, 2, 0.0f, 1)};
  bench_gemm list[2] = {
      bench_gemm_plain("forward", 0, 'N', 'N', 2, 2, 2, 1.0f, 0.0f, 2),
      bench_gemm_plain("forward", 1, 'N', 'N', 3, 1, 2, 1.0f, 0.0f, 2)};
  list[0].group = list[1].group = 7;
  bench_recording rec = {interleaved, 4, 4, false};
  bench_replay r;
  assert_true(bench_replay_init(&r, &rec));
  char why[512] = "";
  if (!bench_replay_attribute(&r, list, 2, why, sizeof why))
    fail_msg("%s", why);
  assert_int_equal(r.layer[2], 0);
  assert_int_equal(r.layer[3], 1);
  bench_replay_free(&r);
  /* without the group, the list means A0 A1 B0 B1 */
  list[0].group = list[1].group = 0;
  expect_mismatch(&rec, list, 2,
                  (const char *const[]){"GEMM call 1 differs", NULL});
}

/* A batch of products (nnlib__gemm_batch) is noted call by call, marked
 * with its batch, between the plain calls around it; the replay issues
 * the batch again as one and writes what the step wrote. */
static void test_batches_recorded_and_replayed(void **state) {
  (void)state;
  float a[12], b[12], c[3][4], want[3][4];
  uint32_t seed = 3;
  ts_fill_uniform(a, 12, -1.0f, 1.0f, &seed);
  ts_fill_uniform(b, 12, -1.0f, 1.0f, &seed);
  nnlib__gemm_call calls[2] = {{NNLIB__NO_TRANS, NNLIB__NO_TRANS, 2, 2, 3, 1.0f,
                                a, 3, b, 2, 0.0f, c[1], 2},
                               {NNLIB__NO_TRANS, NNLIB__TRANS, 2, 2, 3, 0.5f,
                                a + 6, 3, b, 3, 0.0f, c[2], 2}};
  bench_recording rec = {NULL, 0, 0, false};
  bench_record_start(&rec);
  ASSERT_OK(nnlib__gemm(NNLIB__NO_TRANS, NNLIB__NO_TRANS, 2, 2, 3, 1.0f, b, 3,
                        a, 2, 0.0f, c[0], 2));
  ASSERT_OK(nnlib__gemm_batch(calls, 2));
  ASSERT_OK(nnlib__gemm_batch(calls, 1));
  bench_record_stop();
  assert_int_equal(rec.count, 4);
  assert_int_equal(rec.calls[0].batch, 0);
  assert_int_equal(rec.calls[1].batch, 1);
  assert_int_equal(rec.calls[2].batch, 1);
  assert_int_equal(rec.calls[3].batch, 2);
  assert_int_equal(rec.calls[2].tb, 'T');
  assert_true(rec.calls[2].alpha == 0.5f && rec.calls[2].c == c[2]);
  /* the products against naive loops, then the replay writes them again */
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 2; j++) {
      float s1 = 0.0f, s2 = 0.0f;
      for (int k = 0; k < 3; k++) {
        s1 += a[i * 3 + k] * b[k * 2 + j];
        s2 += a[6 + i * 3 + k] * b[j * 3 + k];
      }
      assert_float_equal(c[1][i * 2 + j], s1, 1e-6f);
      assert_float_equal(c[2][i * 2 + j], 0.5f * s2, 1e-6f);
    }
  memcpy(want, c, sizeof want);
  memset(c, 0, sizeof c);
  bench_replay r;
  assert_true(bench_replay_init(&r, &rec));
  bench_replay_run(&r, -1);
  assert_memory_equal(c, want, sizeof want);
  bench_replay_free(&r);
  bench_recording_free(&rec);
}

/* Units (nnlib__gemm_units_run): three units of two products on two
 * lanes, each lane with its own C; the calls are noted unit by unit as
 * one batch with the lanes and calls per unit, and the replay runs them
 * as units on those lanes again (without the passes) and writes what the
 * last unit of each lane wrote. */
typedef struct units_fixture {
  const float *a, *b;
  float (*c)[2][4];    /* per lane: two C */
  int64_t before_runs; /* the passes ran during the step only */
} units_fixture;

static void fixture_calls(void *ctx, int64_t unit, int64_t lane,
                          nnlib__gemm_call *out) {
  const units_fixture *f = ctx;
  for (int i = 0; i < 2; i++)
    out[i] = (nnlib__gemm_call){NNLIB__NO_TRANS,
                                NNLIB__NO_TRANS,
                                2,
                                2,
                                3,
                                (float)(unit + 1),
                                f->a + 3 * i,
                                3,
                                f->b,
                                2,
                                0.0f,
                                f->c[lane][i],
                                2};
}

static void fixture_before(void *ctx, int64_t unit, int64_t lane) {
  (void)unit, (void)lane;
  units_fixture *f = ctx;
  f->before_runs++; /* two lanes may run at once: counted on one thread */
}

static void test_units_recorded_and_replayed(void **state) {
  (void)state;
  float a[12], b[12], c[2][2][4], want[2][2][4];
  uint32_t seed = 5;
  ts_fill_uniform(a, 12, -1.0f, 1.0f, &seed);
  ts_fill_uniform(b, 12, -1.0f, 1.0f, &seed);
  ASSERT_OK(nnlib_set_num_threads(1)); /* before_runs counted on one */
  units_fixture f = {a, b, c, 0};
  nnlib__gemm_units u = {3,    2,  2,     fixture_calls, fixture_before,
                         NULL, &f, false, NULL};
  bench_recording rec = {NULL, 0, 0, false};
  bench_record_start(&rec);
  ASSERT_OK(nnlib__gemm(NNLIB__NO_TRANS, NNLIB__NO_TRANS, 2, 2, 3, 1.0f, b, 3,
                        a, 2, 0.0f, c[0][0], 2));
  ASSERT_OK(nnlib__gemm_units_run(&u));
  bench_record_stop();
  assert_int_equal(f.before_runs, 3);
  assert_int_equal(rec.count, 7);
  assert_int_equal(rec.calls[0].batch, 0);
  for (int i = 1; i < 7; i++) {
    assert_int_equal(rec.calls[i].batch, 1);
    assert_int_equal(rec.calls[i].lanes, 2);
    assert_int_equal(rec.calls[i].per_unit, 2);
  }
  /* units 0 and 1 in lane 0, unit 2 in lane 1 */
  assert_true(rec.calls[4].c == c[0][1] && rec.calls[4].alpha == 2.0f);
  assert_true(rec.calls[6].c == c[1][1] && rec.calls[6].alpha == 3.0f);
  for (int lane = 0; lane < 2; lane++)
    for (int call = 0; call < 2; call++)
      for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
          float s = 0.0f;
          for (int k = 0; k < 3; k++)
            s += a[3 * call + i * 3 + k] * b[k * 2 + j];
          assert_float_equal(c[lane][call][i * 2 + j],
                             (float)(lane == 0 ? 2 : 3) * s, 1e-5f);
        }
  memcpy(want, c, sizeof want);
  memset(c, 0, sizeof c);
  for (int threads = 1; threads <= 2; threads++) {
    ASSERT_OK(nnlib_set_num_threads(threads));
    memset(c[0][1], 0, sizeof c[0][1]);
    memset(c[1], 0, sizeof c[1]);
    bench_replay r;
    assert_true(bench_replay_init(&r, &rec));
    bench_replay_run(&r, -1);
    assert_memory_equal(c, want, sizeof want);
    bench_replay_free(&r);
  }
  assert_int_equal(f.before_runs, 3);
  ASSERT_OK(nnlib_set_num_threads(1));
  bench_recording_free(&rec);
}

/* Units in order with lanes of their own starts (lane 0: unit 0; lane 1:
 * units 1 and 2): each call notes its unit's lane and the order, and the
 * replay rebuilds the lanes from them and writes the same C again. */
static void test_ordered_units_keep_their_lanes(void **state) {
  (void)state;
  float a[12], b[12], c[2][2][4], want[2][2][4];
  uint32_t seed = 7;
  ts_fill_uniform(a, 12, -1.0f, 1.0f, &seed);
  ts_fill_uniform(b, 12, -1.0f, 1.0f, &seed);
  static const int64_t starts[3] = {0, 1, 3};
  units_fixture f = {a, b, c, 0};
  nnlib__gemm_units u = {3, 2, 2, fixture_calls, NULL, NULL, &f, true, starts};
  bench_recording rec = {NULL, 0, 0, false};
  bench_record_start(&rec);
  ASSERT_OK(nnlib__gemm_units_run(&u));
  bench_record_stop();
  assert_int_equal(rec.count, 6);
  static const int lanes[6] = {0, 0, 1, 1, 1, 1};
  for (int i = 0; i < 6; i++) {
    assert_int_equal(rec.calls[i].lane, lanes[i]);
    assert_true(rec.calls[i].ordered);
    assert_int_equal(rec.calls[i].lanes, 2);
  }
  assert_true(rec.calls[1].alpha == 1.0f && rec.calls[5].alpha == 3.0f);
  memcpy(want, c, sizeof want);
  for (int threads = 1; threads <= 2; threads++) {
    ASSERT_OK(nnlib_set_num_threads(threads));
    memset(c, 0, sizeof c);
    bench_replay r;
    assert_true(bench_replay_init(&r, &rec));
    bench_replay_run(&r, -1);
    assert_memory_equal(c, want, sizeof want);
    bench_replay_free(&r);
  }
  ASSERT_OK(nnlib_set_num_threads(1));
  bench_recording_free(&rec);
}

/* Only what accumulates onto values no earlier call of the replay resets
 * is restored; save, replay, restore leaves it as it was, and without
 * the restore a replay changes it. */
static void test_restores_what_accumulates(void **state) {
  (void)state;
  float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {1, -1, 2, 0.5f, -2, 1};
  float reset[6], kept[13], before[13];
  for (int i = 0; i < 13; i++)
    kept[i] = before[i] = 0.25f * (float)i;
  bench_call calls[3] = {
      /* writes all of `reset`, then adds onto it: nothing to keep */
      call_on(a, b, reset, 2, 3, 2, 0.0f, 3),
      call_on(a, b, reset + 3, 1, 3, 2, 1.0f, 3),
      /* adds onto a strided [3, 2] view of `kept` (ldc 5): its span is
       * 5 + 5 + 2 floats from kept[1] */
      call_on(a, b, kept + 1, 3, 2, 2, 1.0f, 5)};
  calls[2].ldb = 3; /* B [2, 2] of b's first two columns */
  bench_recording rec = {calls, 3, 3, false};
  bench_replay r;
  assert_true(bench_replay_init(&r, &rec));
  assert_int_equal(r.region_count, 1);
  assert_ptr_equal(r.regions[0].start, kept + 1);
  assert_int_equal(r.regions[0].floats, 12);
  assert_int_equal(r.saved_floats, 12);
  bench_replay_save(&r);
  bench_replay_run(&r, -1);
  /* row 0 of the strided product: kept[1..2] += a[0..1] B[2,2] */
  ASSERT_NEAR(kept[1], before[1] + (1 * 1 + 2 * 0.5), 1e-6);
  ASSERT_NEAR(kept[2], before[2] + (1 * -1 + 2 * -2), 1e-6);
  assert_true(kept[3] == before[3]); /* between rows: untouched */
  long long nonfinite = -1, subnormal = -1;
  bench_replay_scan(&r, &nonfinite, &subnormal);
  assert_int_equal(nonfinite, 0);
  assert_int_equal(subnormal, 0);
  bench_replay_restore(&r);
  assert_memory_equal(kept, before, sizeof kept);
  /* `reset` holds the replay's own result: row 1 of A B plus row 0 */
  ASSERT_NEAR(reset[0], 1 * 1 + 2 * 0.5, 1e-6);
  ASSERT_NEAR(reset[3], (3 * 1 + 4 * 0.5) + (1 * 1 + 2 * 0.5), 1e-6);
  bench_replay_free(&r);
}

static void test_recordings_compare_pointers(void **state) {
  (void)state;
  float a[4] = {0}, b[4] = {0}, c[4] = {0}, other[4] = {0};
  bench_call x = call_on(a, b, c, 2, 2, 1, 0.0f, 2);
  bench_call y = call_on(a, b, other, 2, 2, 1, 0.0f, 2);
  bench_recording rx = {&x, 1, 1, false}, ry = {&y, 1, 1, false};
  char why[256] = "";
  assert_true(bench_recordings_equal(&rx, &rx, why, sizeof why));
  assert_false(bench_recordings_equal(&rx, &ry, why, sizeof why));
  assert_non_null(strstr(why, "GEMM call 0 differs between two steps"));
  ry.count = 0;
  assert_false(bench_recordings_equal(&rx, &ry, why, sizeof why));
  assert_non_null(strstr(why, "one step made 1 GEMM calls, the next 0"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_records_prediction),
      cmocka_unit_test(test_records_fused_sgd_step),
      cmocka_unit_test(test_list_attributes_calls),
      cmocka_unit_test(test_mismatch_names_first_difference),
      cmocka_unit_test(test_group_runs_interleaved),
      cmocka_unit_test(test_batches_recorded_and_replayed),
      cmocka_unit_test(test_units_recorded_and_replayed),
      cmocka_unit_test(test_ordered_units_keep_their_lanes),
      cmocka_unit_test(test_restores_what_accumulates),
      cmocka_unit_test(test_recordings_compare_pointers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
