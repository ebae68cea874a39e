/* Shorter sequences than compiled (1.2.0): a model whose recurrent layers
 * come first and end in one returning its last step, or are the whole
 * model (its output a sequence [T', H]), takes batches [N, T', F] with any
 * T' <= T. References: a twin compiled for T' with the
 * same parameters (outputs, gradients and updates agree), finite
 * differences at T', a lone fit for the same data (validation at another
 * length leaves training alone), and the exact statuses of the models
 * that must refuse. */
#include "test_support.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { F = 4, T = 7, N = 3 };

/* Descriptions whose time axis ends in "last" or at the output, their
 * output widths, and whether that is per step (a sequence output). */
static const struct {
  const char *spec;
  int64_t out;
  bool per_step;
} cases[] = {
    {"rnn:5,last,dense:2", 2, false},
    {"rnn:5:relu,last,dense:2", 2, false},
    {"lstm:5,last,dense:2", 2, false},
    {"gru:5,last,dense:2", 2, false},
    {"lstm:4,gru:3,last,dense:2", 2, false},
    {"gru:4:nobias,rnn:3,last", 3, false},
    {"lstm:5", 5, true},
    {"gru:4,rnn:3:relu", 3, true},
};

/* Output floats per sample of case c at T' = steps. */
static int64_t width(int c, int64_t steps) {
  return cases[c].per_step ? cases[c].out * steps : cases[c].out;
}
enum { CASES = sizeof cases / sizeof cases[0] };

static nnlib_model *model_for(const char *spec, int64_t steps,
                              nnlib_optimizer *opt) {
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, spec));
  int64_t in[2] = {steps, F};
  ASSERT_OK(nnlib_model_compile(m, in, 2, 8, NNLIB_LOSS_MSE, opt, 11));
  return m;
}

static nnlib_tensor *sequences(int64_t n, int64_t steps, uint32_t seed) {
  nnlib_tensor *t = NULL;
  int64_t shape[3] = {n, steps, F};
  ASSERT_OK(nnlib_tensor_create(&t, shape, 3));
  ts_fill_uniform(nnlib_tensor_get_data(t), n * steps * F, -1, 1, &seed);
  return t;
}

static nnlib_tensor *targets(int64_t n, int64_t width, uint32_t seed) {
  nnlib_tensor *t = ts_tensor2(n, width, NULL);
  ts_fill_uniform(nnlib_tensor_get_data(t), n * width, -1, 1, &seed);
  return t;
}

static float *flat(nnlib_model *m, bool grads, int64_t *count) {
  float *p, *g;
  ASSERT_OK(nnlib_model_get_flat_params(m, &p, &g, count));
  return grads ? g : p;
}

static void copy_params(nnlib_model *dst, nnlib_model *src) {
  int64_t a, b;
  float *from = flat(src, false, &a), *to = flat(dst, false, &b);
  assert_int_equal(a, b);
  memcpy(to, from, (size_t)a * sizeof(float));
}

/* Float arrays equal up to the rounding of differently laid-out GEMMs. */
static void expect_close(const float *a, const float *b, int64_t count,
                         const char *what, const char *spec) {
  for (int64_t i = 0; i < count; i++)
    if (fabsf(a[i] - b[i]) > 1e-6f + 1e-5f * fabsf(b[i])) {
      print_error("%s, %s[%lld]: %g vs twin %g\n", spec, what, (long long)i,
                  (double)a[i], (double)b[i]);
      fail();
    }
}

static void expect_predict_close(nnlib_model *m, nnlib_model *twin,
                                 const nnlib_tensor *x, int64_t out,
                                 const char *spec) {
  nnlib_tensor *y = ts_tensor2(N, out, NULL), *yt = ts_tensor2(N, out, NULL);
  ASSERT_OK(nnlib_model_predict(m, x, y));
  ASSERT_OK(nnlib_model_predict(twin, x, yt));
  expect_close(nnlib_tensor_get_data(y), nnlib_tensor_get_data(yt), N * out,
               "output", spec);
  nnlib_tensor_free(y);
  nnlib_tensor_free(yt);
}

static void expect_grads_close(nnlib_model *m, nnlib_model *twin,
                               const nnlib_tensor *x, const nnlib_tensor *t,
                               const char *spec) {
  float loss, twin_loss;
  ASSERT_OK(nnlib_model_backward(m, x, t, &loss));
  ASSERT_OK(nnlib_model_backward(twin, x, t, &twin_loss));
  expect_close(&loss, &twin_loss, 1, "loss", spec);
  int64_t count;
  float *g = flat(m, true, &count);
  expect_close(g, flat(twin, true, &count), count, "gradient", spec);
}

/* After one optimizer step each (Adam: the separate update; SGD: the
 * update fused into backward), the parameters still agree. */
static void expect_step_close(const char *spec, int64_t steps, int64_t out,
                              bool fused) {
  nnlib_optimizer *a, *b;
  if (fused) {
    ASSERT_OK(nnlib_sgd_create(&a, 0.1f, 0.0f, 0, 0.0f));
    ASSERT_OK(nnlib_sgd_create(&b, 0.1f, 0.0f, 0, 0.0f));
  } else {
    nnlib_optimizer_options o;
    ASSERT_OK(nnlib_optimizer_options_init(&o, NNLIB_OPT_ADAM));
    ASSERT_OK(nnlib_optimizer_create(&a, &o));
    ASSERT_OK(nnlib_optimizer_create(&b, &o));
  }
  nnlib_model *m = model_for(spec, T, a), *twin = model_for(spec, steps, b);
  copy_params(twin, m);
  nnlib_tensor *x = sequences(N, steps, 5), *t = targets(N, out, 6);
  for (int i = 0; i < 2; i++) {
    ASSERT_OK(nnlib_model_step(m, x, t, NULL));
    ASSERT_OK(nnlib_model_step(twin, x, t, NULL));
  }
  int64_t count;
  float *p = flat(m, false, &count);
  expect_close(p, flat(twin, false, &count), count, "parameter", spec);
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
  nnlib_model_free(m);
  nnlib_model_free(twin);
}

static void test_shorter_matches_twin(void **s) {
  (void)s;
  const int64_t lengths[] = {1, 3, T};
  for (int c = 0; c < CASES; c++)
    for (size_t k = 0; k < sizeof lengths / sizeof *lengths; k++) {
      int64_t steps = lengths[k];
      nnlib_model *m = model_for(cases[c].spec, T, NULL);
      nnlib_model *twin = model_for(cases[c].spec, steps, NULL);
      copy_params(twin, m);
      nnlib_tensor *x = sequences(N, steps, 1 + (uint32_t)c);
      nnlib_tensor *t = targets(N, width(c, steps), 2);
      expect_predict_close(m, twin, x, width(c, steps), cases[c].spec);
      expect_grads_close(m, twin, x, t, cases[c].spec);
      nnlib_tensor_free(x);
      nnlib_tensor_free(t);
      nnlib_model_free(m);
      nnlib_model_free(twin);
      expect_step_close(cases[c].spec, steps, width(c, steps), false);
      expect_step_close(cases[c].spec, steps, width(c, steps), true);
    }
}

/* Backpropagation at T' against central differences (every parameter). */
static void test_shorter_gradcheck(void **s) {
  (void)s;
  for (int c = 0; c < CASES; c++) {
    nnlib_model *m = model_for(cases[c].spec, T, NULL);
    nnlib_tensor *x = sequences(2, 3, 3), *t = targets(2, width(c, 3), 4);
    nnlib_gradcheck_options o;
    ASSERT_OK(nnlib_gradcheck_options_init(&o));
    o.step = strstr(cases[c].spec, "relu") != NULL ? 3e-3f : 1e-2f;
    double err = -1.0;
    ASSERT_OK(nnlib_model_gradcheck(m, x, t, &o, &err));
    if (!(err < 1e-3)) {
      print_error("%s: gradcheck at T' = 3 of %d: %g\n", cases[c].spec, T,
                  err);
      fail();
    }
    nnlib_tensor_free(x);
    nnlib_tensor_free(t);
    nnlib_model_free(m);
  }
}

/* Training at T' = 4 with validation at T' = 2 after each epoch trains
 * exactly as the same fit without validation; the last validation loss is
 * evaluate's at T' = 2. */
static void test_fit_with_validation_of_other_length(void **s) {
  (void)s;
  const char *spec = "lstm:5,last,dense:2";
  nnlib_optimizer *a, *b;
  ASSERT_OK(nnlib_sgd_create(&a, 0.05f, 0.9f, 0, 0.0f));
  ASSERT_OK(nnlib_sgd_create(&b, 0.05f, 0.9f, 0, 0.0f));
  nnlib_model *m = model_for(spec, T, a), *lone = model_for(spec, T, b);
  copy_params(lone, m);
  nnlib_tensor *x = sequences(16, 4, 7), *t = targets(16, 2, 8);
  nnlib_tensor *vx = sequences(5, 2, 9), *vt = targets(5, 2, 10);
  nnlib_fit_options o;
  ASSERT_OK(nnlib_fit_options_init(&o));
  o.epochs = 3;
  o.batch_size = 4;
  nnlib_validation_options v;
  ASSERT_OK(nnlib_validation_options_init(&v));
  v.x = vx;
  v.target = vt;
  float losses[3];
  v.losses = losses;
  ASSERT_OK(nnlib_model_fit_validated(m, x, t, &o, &v));
  ASSERT_OK(nnlib_model_fit(lone, x, t, &o));
  int64_t count;
  float *p = flat(m, false, &count);
  assert_memory_equal(p, flat(lone, false, &count),
                      (size_t)count * sizeof(float));
  float last;
  ASSERT_OK(nnlib_model_evaluate(lone, vx, vt, &last, NULL));
  assert_memory_equal(&last, &losses[2], sizeof last);
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
  nnlib_tensor_free(vx);
  nnlib_tensor_free(vt);
  nnlib_model_free(m);
  nnlib_model_free(lone);
}

/* A per-thread workspace runs T' as the model does; the numerics check
 * reads T' steps per sample and names a NaN by its place in them. */
static void test_workspace_and_numerics(void **s) {
  (void)s;
  nnlib_model *m = model_for("gru:5,last,dense:2", T, NULL);
  nnlib_tensor *x = sequences(N, 2, 12), *t = targets(N, 2, 13);
  nnlib_tensor *y = ts_tensor2(N, 2, NULL), *yw = ts_tensor2(N, 2, NULL);
  nnlib_workspace *ws = NULL;
  ASSERT_OK(nnlib_workspace_create(&ws, m));
  ASSERT_OK(nnlib_model_predict(m, x, y));
  ASSERT_OK(nnlib_workspace_predict(ws, x, yw));
  assert_memory_equal(nnlib_tensor_get_data(y), nnlib_tensor_get_data(yw),
                      N * 2 * sizeof(float));
  ASSERT_OK(nnlib_model_set_check_numerics(m, 1));
  float loss;
  ASSERT_OK(nnlib_model_backward(m, x, t, &loss));
  nnlib_tensor_get_data(x)[1 * 2 * F + 1 * F + 2] = NAN; /* s 1, t 1, f 2 */
  ASSERT_STATUS(NNLIB_ERR_NUMERICAL, nnlib_model_predict(m, x, y));
  ts_expect_message("the input batch value is nan at sample 1, element 6");
  nnlib_workspace_free(ws);
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
  nnlib_tensor_free(y);
  nnlib_tensor_free(yw);
  nnlib_model_free(m);
}

/* A model whose output is a sequence gives [N, T', H] at T': forward's
 * view has that shape, predict and the targets need T' H values a sample
 * (a target of T rows is refused), evaluate takes rank-3 targets. */
static void test_sequence_outputs(void **s) {
  (void)s;
  nnlib_model *m = model_for("gru:4,lstm:3", T, NULL);
  nnlib_tensor *x = sequences(N, 2, 15);
  const nnlib_tensor *out = NULL;
  ASSERT_OK(nnlib_model_forward(m, x, &out));
  assert_int_equal(nnlib_tensor_get_rank(out), 3);
  assert_int_equal(nnlib_tensor_get_dim(out, 0), N);
  assert_int_equal(nnlib_tensor_get_dim(out, 1), 2);
  assert_int_equal(nnlib_tensor_get_dim(out, 2), 3);
  nnlib_tensor *full = ts_tensor2(N, T * 3, NULL);
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH, nnlib_model_predict(m, x, full));
  ts_expect_message("predict: output tensor has 63 elements, 3 samples of 6 "
                    "outputs need 18");
  float loss;
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH,
                nnlib_model_backward(m, x, full, &loss));
  ts_expect_message("target has 21 values per sample, model outputs 6");
  nnlib_tensor *t = NULL;
  int64_t shape[3] = {N, 2, 3};
  ASSERT_OK(nnlib_tensor_create(&t, shape, 3));
  uint32_t seed = 16;
  ts_fill_uniform(nnlib_tensor_get_data(t), N * 6, -1, 1, &seed);
  float eval_loss;
  ASSERT_OK(nnlib_model_evaluate(m, x, t, &eval_loss, NULL));
  ASSERT_OK(nnlib_model_backward(m, x, t, &loss));
  assert_memory_equal(&loss, &eval_loss, sizeof loss); /* no dropout */
  nnlib_tensor_free(t);
  nnlib_tensor_free(full);
  nnlib_tensor_free(x);
  nnlib_model_free(m);
}

static void expect_refused(const char *spec, int64_t steps, nnlib_status want,
                           const char *message) {
  nnlib_model *m = model_for(spec, T, NULL);
  nnlib_tensor *x = sequences(N, steps, 14);
  const nnlib_tensor *out = NULL;
  ASSERT_STATUS(want, nnlib_model_forward(m, x, &out));
  ts_expect_message(message);
  nnlib_tensor_free(x);
  nnlib_model_free(m);
}

/* A model with another layer inside the time axis needs T itself; longer
 * is never taken. */
static void test_refusals(void **s) {
  (void)s;
  expect_refused("lstm:4,dropout:0.1,gru:3,last", 3, NNLIB_ERR_SHAPE_MISMATCH,
                 "lstm: sequence length 3 differs from the compiled 7: only "
                 "models whose recurrent layers come first and either end in "
                 "one returning its last step");
  expect_refused("gru:4,tanh", 3, NNLIB_ERR_SHAPE_MISMATCH,
                 "sequence length 3 differs from the compiled 7");
  expect_refused("lstm:4,last,dense:2", T + 1, NNLIB_ERR_TOO_LARGE,
                 "lstm: sequence length 8 above the compiled maximum 7");
  /* a flat [N, T' F] batch is ambiguous: only [N, T', F] is shorter */
  nnlib_model *m = model_for("lstm:4,last,dense:2", T, NULL);
  nnlib_tensor *x = ts_tensor2(N, 3 * F, NULL), *y = ts_tensor2(N, 2, NULL);
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH, nnlib_model_predict(m, x, y));
  ts_expect_message("input has 12 features per sample, model expects 28");
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  nnlib_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_shorter_matches_twin),
      cmocka_unit_test(test_shorter_gradcheck),
      cmocka_unit_test(test_fit_with_validation_of_other_length),
      cmocka_unit_test(test_workspace_and_numerics),
      cmocka_unit_test(test_sequence_outputs),
      cmocka_unit_test(test_refusals),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
