/* nnlib_model_fit_validated (1.1.0), validation and early stopping: the
 * loss of every epoch equals nnlib_model_evaluate on a twin model trained
 * epoch by epoch; patience stops after that many epochs without
 * improvement; restore_best ends with the best epoch's parameters, bit for
 * bit; every bad combination is refused before any training; no leaks when
 * the extra allocation fails. */
#include "test_support.h"

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

enum { IN = 4, OUT = 2, TRAIN = 32, VALID = 16, BATCH = 8, EPOCHS = 6 };

static nnlib_model *make_model(void) {
  nnlib_optimizer *opt;
  ASSERT_OK(nnlib_sgd_create(&opt, 0.2f, 0.5f, 0, 0));
  return ts_model(IN, BATCH, NNLIB_LOSS_SOFTMAX_CE, opt, 5, ts_dense(IN, 6, 1),
                  ts_act(NNLIB_ACT_TANH, 0), ts_dense(6, OUT, 1), NULL);
}

typedef struct data {
  nnlib_tensor *x, *t, *vx, *vt;
} data;

/* Class = sign of the first feature; `flip_validation` gives the
 * validation samples the opposite labels, so that learning the training
 * set makes the validation loss worse every epoch. */
static data make_data(bool flip_validation) {
  data d = {ts_tensor2(TRAIN, IN, NULL), ts_tensor2(TRAIN, 1, NULL),
            ts_tensor2(VALID, IN, NULL), ts_tensor2(VALID, 1, NULL)};
  uint32_t st = 3;
  ts_fill_uniform(nnlib_tensor_get_data(d.x), TRAIN * IN, -1, 1, &st);
  ts_fill_uniform(nnlib_tensor_get_data(d.vx), VALID * IN, -1, 1, &st);
  for (int i = 0; i < TRAIN; i++)
    nnlib_tensor_get_data(d.t)[i] = nnlib_tensor_get_data(d.x)[i * IN] > 0;
  for (int i = 0; i < VALID; i++) {
    bool c = nnlib_tensor_get_data(d.vx)[i * IN] > 0;
    nnlib_tensor_get_data(d.vt)[i] = (float)(flip_validation ? !c : c);
  }
  return d;
}

static void free_data(data *d) {
  nnlib_tensor_free(d->x);
  nnlib_tensor_free(d->t);
  nnlib_tensor_free(d->vx);
  nnlib_tensor_free(d->vt);
}

static nnlib_fit_options options(int64_t epochs) {
  nnlib_fit_options o;
  nnlib_fit_options_init(&o);
  o.epochs = epochs;
  o.shuffle = 0; /* so a twin fitted epoch by epoch sees the same batches */
  return o;
}

static nnlib_validation_options validation(const data *d) {
  nnlib_validation_options v;
  nnlib_validation_options_init(&v);
  v.x = d->vx;
  v.target = d->vt;
  return v;
}

static nnlib_status fit(nnlib_model *m, const data *d,
                        const nnlib_fit_options *o,
                        const nnlib_validation_options *v) {
  return nnlib_model_fit_validated(m, d->x, d->t, o, v);
}

static void weights_of(nnlib_model *m, float *out, int64_t count) {
  float *params;
  int64_t n;
  ASSERT_OK(nnlib_model_get_flat_params(m, &params, NULL, &n));
  assert_int_equal(n, count);
  memcpy(out, params, (size_t)n * sizeof(float));
}

/* Twin: one fit call per epoch and nnlib_model_evaluate after each. */
static void twin_losses(const data *d, int64_t epochs, float *valid,
                        float *weights_after, int64_t count) {
  nnlib_model *m = make_model();
  for (int64_t e = 0; e < epochs; e++) {
    nnlib_fit_options o;
    nnlib_fit_options_init(&o);
    o.shuffle = 0;
    ASSERT_OK(nnlib_model_fit(m, d->x, d->t, &o));
    ASSERT_OK(nnlib_model_evaluate(m, d->vx, d->vt, &valid[e], NULL));
    weights_of(m, weights_after + e * count, count);
  }
  nnlib_model_free(m);
}

enum { PARAMS = IN * 6 + 6 + 6 * OUT + OUT };

static void test_validation_losses_match_evaluate(void **s) {
  (void)s;
  data d = make_data(false);
  static float want[EPOCHS], weights[EPOCHS * PARAMS];
  twin_losses(&d, EPOCHS, want, weights, PARAMS);
  nnlib_model *m = make_model();
  float got[EPOCHS], train[EPOCHS];
  int64_t run = -1;
  nnlib_fit_options o = options(EPOCHS);
  nnlib_validation_options v = validation(&d);
  v.losses = got;
  o.epoch_losses = train;
  v.epochs_run = &run;
  ASSERT_OK(fit(m, &d, &o, &v));
  assert_int_equal(run, EPOCHS);
  for (int e = 0; e < EPOCHS; e++)
    assert_true(got[e] == want[e]);
  assert_true(got[EPOCHS - 1] < got[0]); /* it learns */
  nnlib_model_free(m);
  free_data(&d);
}

/* Validation labels flipped: the best validation loss is after epoch 0,
 * so patience 2 stops after epoch 2 (three epochs run), and restore_best
 * ends with the parameters the twin had after epoch 0. */
static void test_patience_stops_and_restore_best(void **s) {
  (void)s;
  data d = make_data(true);
  static float want[EPOCHS], weights[EPOCHS * PARAMS];
  twin_losses(&d, EPOCHS, want, weights, PARAMS);
  for (int e = 1; e < EPOCHS; e++)
    assert_true(want[e] > want[e - 1]); /* the premise: it only gets worse */
  nnlib_model *m = make_model();
  float got[EPOCHS], now[PARAMS];
  int64_t run = -1;
  nnlib_fit_options o = options(EPOCHS);
  nnlib_validation_options v = validation(&d);
  v.losses = got;
  v.patience = 2;
  v.restore_best = 1;
  v.epochs_run = &run;
  ASSERT_OK(fit(m, &d, &o, &v));
  assert_int_equal(run, 3);
  for (int e = 0; e < 3; e++)
    assert_true(got[e] == want[e]);
  weights_of(m, now, PARAMS);
  assert_memory_equal(now, weights, sizeof now); /* epoch 0's */
  float loss;
  ASSERT_OK(nnlib_model_evaluate(m, d.vx, d.vt, &loss, NULL));
  assert_true(loss == want[0]);
  nnlib_model_free(m);

  /* without restore_best it ends with the last epoch run (epoch 2) */
  m = make_model();
  v.restore_best = 0;
  ASSERT_OK(fit(m, &d, &o, &v));
  weights_of(m, now, PARAMS);
  assert_memory_equal(now, weights + 2 * PARAMS, sizeof now);
  nnlib_model_free(m);

  /* min_delta larger than any change: no epoch after the first improves */
  m = make_model();
  free_data(&d);
  d = make_data(false);
  v = validation(&d);
  v.patience = 1;
  v.min_delta = 1e9f;
  v.epochs_run = &run;
  ASSERT_OK(fit(m, &d, &o, &v));
  assert_int_equal(run, 2);
  nnlib_model_free(m);
  free_data(&d);
}

static void test_bad_options_refused_before_training(void **s) {
  (void)s;
  data d = make_data(false);
  nnlib_model *m = make_model();
  float before[PARAMS], after[PARAMS];
  weights_of(m, before, PARAMS);
  nnlib_fit_options o = options(2);
  nnlib_validation_options v = validation(&d);
  v.target = NULL;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, fit(m, &d, &o, &v));
  ts_expect_message("need x and target");
  v = validation(&d);
  v.patience = -1;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, fit(m, &d, &o, &v));
  v = validation(&d);
  v.min_delta = NAN;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, fit(m, &d, &o, &v));
  v = validation(&d);
  v.restore_best = 2;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, fit(m, &d, &o, &v));
  v = validation(&d);
  v.struct_size = 3;
  ASSERT_STATUS(NNLIB_ERR_STRUCT_SIZE, fit(m, &d, &o, &v));
  /* validation data of the wrong width or sample count */
  nnlib_tensor *wide = ts_tensor2(VALID, IN + 1, NULL);
  nnlib_tensor *few = ts_tensor2(VALID - 1, 1, NULL);
  v = validation(&d);
  v.x = wide;
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH, fit(m, &d, &o, &v));
  v = validation(&d);
  v.target = few;
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH, fit(m, &d, &o, &v));
  /* a shorter (older) struct: the fields it lacks keep their defaults */
  v = validation(&d);
  v.struct_size = offsetof(nnlib_validation_options, patience);
  v.patience = -5; /* beyond struct_size: not read */
  ASSERT_OK(fit(m, &d, &o, &v));
  ASSERT_OK(nnlib_validation_options_init(&v));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                (nnlib_validation_options_init)(NULL)); /* not the macro */
  weights_of(m, after, PARAMS);
  assert_memory_not_equal(before, after, sizeof before); /* trained once */
  nnlib_tensor_free(wide);
  nnlib_tensor_free(few);
  nnlib_model_free(m);
  free_data(&d);
}

/* Every allocation of a fit with validation and restore_best fails in
 * turn: NNLIB_ERR_OUT_OF_MEMORY and nothing leaks. */
static void test_out_of_memory_in_fit(void **s) {
  (void)s;
  data d = make_data(true);
  nnlib_model *m = make_model();
  nnlib_fit_options o = options(3);
  o.shuffle = 1;
  nnlib_validation_options v = validation(&d);
  v.patience = 1;
  v.restore_best = 1;
  int failures = 0;
  for (long at = 1;; at++) {
    ts_alloc_stats stats = {0, 0, 0, at};
    int64_t run = -1;
    v.epochs_run = &run;
    ts_alloc_install(&stats);
    nnlib_status st = fit(m, &d, &o, &v);
    ts_alloc_uninstall();
    assert_int_equal(stats.live, 0);
    if (st == NNLIB_OK)
      break;
    assert_int_equal(st, NNLIB_ERR_OUT_OF_MEMORY);
    assert_int_equal(run, 0); /* written on the error too */
    failures++;
  }
  assert_int_equal(failures, 4); /* order, two gather buffers, best copy */
  nnlib_model_free(m);
  free_data(&d);
}

/* An allocator that records the largest block asked for. */
static size_t largest_request;
static void *recording_alloc(size_t size, size_t alignment, void *user) {
  (void)user;
  if (size > largest_request)
    largest_request = size;
  size_t rounded = (size + alignment - 1) / alignment * alignment;
  return aligned_alloc(alignment, rounded);
}
static void recording_free(void *p, void *user) {
  (void)user;
  free(p);
}

/* Fitting fewer samples than the compiled maximum batch (batch_size 0 =
 * that maximum) gathers into buffers for the samples there are: a model
 * loaded with a huge maximum batch fits a few samples without asking for
 * that batch again (found by fuzz_model_load under its capped allocator). */
static void test_gather_buffers_sized_by_samples(void **s) {
  (void)s;
  enum { FEW = 2 };
  nnlib_model *m = make_model();
  nnlib_tensor *x = ts_tensor2(FEW, IN, NULL), *t = ts_tensor2(FEW, 1, NULL);
  nnlib_fit_options o;
  nnlib_fit_options_init(&o);
  o.shuffle = 1;
  largest_request = 0;
  nnlib_allocator a = {sizeof a, recording_alloc, recording_free, NULL};
  ASSERT_OK(nnlib_set_allocator(&a));
  nnlib_status st = nnlib_model_fit(m, x, t, &o);
  ASSERT_OK(nnlib_set_allocator(NULL));
  ASSERT_OK(st);
  assert_true(largest_request > 0);
  assert_true(largest_request <= FEW * IN * sizeof(float)); /* not BATCH */
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
  nnlib_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_validation_losses_match_evaluate),
      cmocka_unit_test(test_patience_stops_and_restore_best),
      cmocka_unit_test(test_bad_options_refused_before_training),
      cmocka_unit_test(test_out_of_memory_in_fit),
      cmocka_unit_test(test_gather_buffers_sized_by_samples),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
