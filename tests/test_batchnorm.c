/* Batch normalisation: batch statistics in training (outputs of zero mean
 * and unit variance per channel before gamma/beta), running statistics in
 * inference (predict, evaluate, workspaces) updated only by training
 * passes with momentum and the unbiased variance, finite-difference checks
 * in both modes for feature maps and dense features, a batch of one value
 * per channel, arguments and description items. */
#include "test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static nnlib_model *spec_model(const char *spec, const int64_t *shape,
                               size_t rank, int64_t batch, nnlib_loss loss) {
  nnlib_model *m = NULL;
  nnlib_optimizer *opt = NULL;
  if (loss != NNLIB_LOSS_NONE)
    ASSERT_OK(nnlib_sgd_create(&opt, 0.1f, 0, 0, 0));
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, spec));
  ASSERT_OK(nnlib_model_compile(m, shape, rank, batch, loss, opt, 7));
  return m;
}

static float *buffer(nnlib_model *m, size_t layer, size_t index) {
  nnlib_tensor *t;
  ASSERT_OK(nnlib_layer_get_buffer(nnlib_model_get_layer(m, layer), index, &t));
  return nnlib_tensor_get_data(t);
}

enum { N = 4, C = 3, H = 2, W = 5, S = H * W };

/* x[n, c, s] = c + (c + 1) * u, u uniform in [-1, 1): channel means and
 * spreads that differ */
static nnlib_tensor *feature_maps(uint32_t seed) {
  nnlib_tensor *x = ts_tensor2(N, C * S, NULL);
  float *v = nnlib_tensor_get_data(x);
  ts_fill_uniform(v, N * C * S, -1, 1, &seed);
  for (int i = 0; i < N; i++)
    for (int c = 0; c < C; c++)
      for (int s = 0; s < S; s++)
        v[(i * C + c) * S + s] = (float)c + (float)(c + 1) * v[(i * C + c) * S + s];
  return x;
}

/* Mean and biased variance of channel c of [N, C, S] data. */
static void moments(const float *v, int c, double *mean, double *var) {
  double sum = 0.0, sq = 0.0;
  for (int i = 0; i < N; i++)
    for (int s = 0; s < S; s++)
      sum += v[(i * C + c) * S + s];
  *mean = sum / (N * S);
  for (int i = 0; i < N; i++)
    for (int s = 0; s < S; s++) {
      double d = v[(i * C + c) * S + s] - *mean;
      sq += d * d;
    }
  *var = sq / (N * S);
}

static void test_training_and_inference(void **s) {
  (void)s;
  int64_t shape[3] = {C, H, W};
  nnlib_model *m = spec_model("batchnorm", shape, 3, N, NNLIB_LOSS_MSE);
  nnlib_layer *bn = nnlib_model_get_layer(m, 0);
  assert_int_equal(nnlib_layer_get_kind(bn), NNLIB_LAYER_BATCHNORM);
  assert_int_equal(nnlib_layer_get_param_tensor_count(bn), 2);
  assert_int_equal(nnlib_layer_get_buffer_count(bn), 2);
  assert_string_equal(nnlib_layer_get_param_name(bn, 0), "weight");
  assert_string_equal(nnlib_layer_get_param_name(bn, 1), "bias");
  assert_null(nnlib_layer_get_buffer_name(bn, 2));
  float *rm = buffer(m, 0, 0), *rv = buffer(m, 0, 1);
  for (int c = 0; c < C; c++) {
    assert_true(rm[c] == 0.0f && rv[c] == 1.0f);
  }
  nnlib_tensor *X = feature_maps(3);
  const float *x = nnlib_tensor_get_data(X);
  /* training pass: each channel normalised with the batch's statistics */
  const nnlib_tensor *Y;
  ASSERT_OK(nnlib_model_forward(m, X, &Y));
  const float *y = nnlib_tensor_get_data_const(Y);
  for (int c = 0; c < C; c++) {
    double mean, var, ym, yv;
    moments(x, c, &mean, &var);
    moments(y, c, &ym, &yv);
    ASSERT_NEAR(ym, 0.0, 1e-6);
    ASSERT_NEAR(yv, var / (var + 1e-5), 1e-5);
    /* running = 0.9 running + 0.1 batch, with the unbiased variance */
    ASSERT_NEAR(rm[c], 0.1 * mean, 1e-6);
    ASSERT_NEAR(rv[c], 0.9 + 0.1 * var * (N * S) / (N * S - 1), 1e-6);
  }
  /* inference: the running statistics; the layer is not changed */
  float saved_mean[C], saved_var[C];
  memcpy(saved_mean, rm, sizeof saved_mean);
  memcpy(saved_var, rv, sizeof saved_var);
  nnlib_tensor *P = ts_tensor2(N, C * S, NULL);
  ASSERT_OK(nnlib_model_predict(m, X, P));
  const float *p = nnlib_tensor_get_data(P);
  for (int i = 0; i < N; i++)
    for (int c = 0; c < C; c++)
      for (int q = 0; q < S; q++) {
        int at = (i * C + c) * S + q;
        double want = (x[at] - rm[c]) / sqrt(rv[c] + 1e-5);
        ASSERT_NEAR(p[at], want, 1e-5 * (1 + fabs(want)));
      }
  float loss, accuracy;
  ASSERT_OK(nnlib_model_evaluate(m, X, X, &loss, &accuracy));
  nnlib_workspace *ws;
  ASSERT_OK(nnlib_workspace_create(&ws, m));
  nnlib_tensor *Q = ts_tensor2(N, C * S, NULL);
  ASSERT_OK(nnlib_workspace_predict(ws, X, Q));
  assert_memory_equal(nnlib_tensor_get_data(Q), p, sizeof(float) * N * C * S);
  assert_memory_equal(rm, saved_mean, sizeof saved_mean);
  assert_memory_equal(rv, saved_var, sizeof saved_var);
  /* a training step moves them again, and gradcheck leaves them alone */
  ASSERT_OK(nnlib_model_step(m, X, X, &loss));
  assert_true(memcmp(rm, saved_mean, sizeof saved_mean) != 0);
  memcpy(saved_mean, rm, sizeof saved_mean);
  double err;
  ASSERT_OK(nnlib_model_gradcheck(m, X, X, NULL, &err));
  assert_memory_equal(rm, saved_mean, sizeof saved_mean);
  nnlib_workspace_free(ws);
  nnlib_tensor_free(X);
  nnlib_tensor_free(P);
  nnlib_tensor_free(Q);
  nnlib_model_free(m);
}

/* Writable buffers change what inference computes. */
static void test_buffers_are_writable(void **s) {
  (void)s;
  int64_t in = 2;
  nnlib_model *m = spec_model("batchnorm", &in, 1, 1, NNLIB_LOSS_NONE);
  buffer(m, 0, 0)[0] = 1.0f;  /* mean */
  buffer(m, 0, 1)[0] = 4.0f;  /* variance */
  buffer(m, 0, 1)[1] = 0.25f;
  nnlib_tensor *w;
  ASSERT_OK(nnlib_layer_get_param(nnlib_model_get_layer(m, 0), 0, &w, NULL));
  nnlib_tensor_get_data(w)[1] = 3.0f;
  float x[2] = {5.0f, 1.0f};
  nnlib_tensor *X = ts_tensor2(1, 2, x), *Y = ts_tensor2(1, 2, NULL);
  ASSERT_OK(nnlib_model_predict(m, X, Y));
  ASSERT_NEAR(nnlib_tensor_get_data(Y)[0], 4.0 / sqrt(4.0 + 1e-5), 1e-6);
  ASSERT_NEAR(nnlib_tensor_get_data(Y)[1], 3.0 / sqrt(0.25 + 1e-5), 1e-5);
  nnlib_tensor *t;
  ASSERT_STATUS(NNLIB_ERR_OUT_OF_RANGE,
                nnlib_layer_get_buffer(nnlib_model_get_layer(m, 0), 2, &t));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_layer_get_buffer(NULL, 0, &t));
  nnlib_layer *loose = NULL;
  ASSERT_OK(nnlib_batchnorm_create(&loose, 0.1f, 1e-5f));
  ASSERT_STATUS(NNLIB_ERR_WRONG_STATE, nnlib_layer_get_buffer(loose, 0, &t));
  assert_int_equal(nnlib_layer_get_buffer_count(NULL), 0);
  nnlib_layer_free(loose);
  nnlib_tensor_free(X);
  nnlib_tensor_free(Y);
  nnlib_model_free(m);
}

/* A negative running variance (written through the buffer) would make
 * every output of its channel NaN: the passes that read it refuse it,
 * naming the channel, and change nothing. NaN is not refused (NaN data
 * leaves it: reported at the loss). */
static void test_negative_running_var_refused(void **s) {
  (void)s;
  int64_t in = 2;
  nnlib_model *m = spec_model("batchnorm", &in, 1, 2, NNLIB_LOSS_MSE);
  float x[4] = {1, 2, 3, 5}, t[4] = {0};
  nnlib_tensor *X = ts_tensor2(2, 2, x), *T = ts_tensor2(2, 2, t);
  nnlib_tensor *Y = ts_tensor2(2, 2, NULL);
  float *rv = buffer(m, 0, 1);
  rv[1] = -0.5f;
  const char *why = "batchnorm: running_var of channel 1 (of 2) is -0.5, a "
                    "variance must be >= 0";
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_model_predict(m, X, Y));
  ts_expect_message(why);
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_model_step(m, X, T, NULL));
  ts_expect_message(why);
  assert_true(rv[0] == 1.0f && rv[1] == -0.5f); /* not blended */
  /* 0 is a variance: y = (x - mean) / sqrt(eps) */
  rv[1] = 0.0f;
  ASSERT_OK(nnlib_model_predict(m, X, Y));
  ASSERT_NEAR(nnlib_tensor_get_data(Y)[1], 2.0 / sqrt(1e-5), 1e-1);
  rv[1] = NAN;
  ASSERT_OK(nnlib_model_predict(m, X, Y));
  assert_true(isnan(nnlib_tensor_get_data(Y)[1]));
  nnlib_tensor_free(X);
  nnlib_tensor_free(T);
  nnlib_tensor_free(Y);
  nnlib_model_free(m);
}

/* A model file holding a negative running variance (saving does not
 * judge) does not load. */
static void test_negative_running_var_in_file(void **s) {
  (void)s;
  int64_t in = 2;
  nnlib_model *m = spec_model("dense:2,batchnorm", &in, 1, 2, NNLIB_LOSS_MSE);
  buffer(m, 1, 1)[1] = -0.5f;
  void *file = NULL;
  size_t size = 0;
  ASSERT_OK(nnlib_model_save_to_buffer(&file, &size, m, 0));
  nnlib_model *loaded = (nnlib_model *)1;
  ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE,
                nnlib_model_load_buffer(&loaded, file, size));
  ts_expect_message("layer 1");
  ts_expect_message("running_var of channel 1 (of 2) is -0.5");
  assert_null(loaded);
  buffer(m, 1, 1)[1] = 0.0f; /* the same file with a variance of 0 loads */
  nnlib_free(file);
  ASSERT_OK(nnlib_model_save_to_buffer(&file, &size, m, 0));
  ASSERT_OK(nnlib_model_load_buffer(&loaded, file, size));
  nnlib_model_free(loaded);
  nnlib_free(file);
  nnlib_model_free(m);
}

/* One value per channel in a training batch has no unbiased variance: the
 * output is beta and the running statistics stay. */
static void test_single_value_batch(void **s) {
  (void)s;
  int64_t in = 3;
  nnlib_model *m = spec_model("dense:3,batchnorm,dense:2", &in, 1, 4,
                              NNLIB_LOSS_MSE);
  float x[3] = {1, 2, 3}, t[2] = {0, 1}, loss;
  nnlib_tensor *X = ts_tensor2(1, 3, x), *T = ts_tensor2(1, 2, t);
  ASSERT_OK(nnlib_model_step(m, X, T, &loss));
  assert_true(isfinite(loss));
  for (int c = 0; c < 3; c++) {
    assert_true(buffer(m, 1, 0)[c] == 0.0f);
    assert_true(buffer(m, 1, 1)[c] == 1.0f);
  }
  nnlib_tensor_free(X);
  nnlib_tensor_free(T);
  nnlib_model_free(m);
}

static double gradcheck(nnlib_model *m, int64_t n, int64_t in, int64_t out,
                        int inference) {
  nnlib_tensor *X = ts_tensor2(n, in, NULL), *T = ts_tensor2(n, out, NULL);
  uint32_t seed = 21;
  ts_fill_uniform(nnlib_tensor_get_data(X), n * in, -1, 1, &seed);
  ts_fill_uniform(nnlib_tensor_get_data(T), n * out, -1, 1, &seed);
  nnlib_gradcheck_options o;
  ASSERT_OK(nnlib_gradcheck_options_init(&o));
  o.inference = inference;
  double err = -1.0;
  ASSERT_OK(nnlib_model_gradcheck(m, X, T, &o, &err));
  nnlib_tensor_free(X);
  nnlib_tensor_free(T);
  return err;
}

/* Both modes, for feature maps and dense features; the layer before has no
 * bias (batchnorm removes any shift, so a bias there has a zero gradient
 * that finite differences only see as rounding noise). Running statistics
 * are moved off their initial values first, so inference mode differs from
 * a plain affine map with mean 0 and variance 1. */
static void test_gradcheck_both_modes(void **s) {
  (void)s;
  static const struct {
    const char *spec;
    int64_t shape[3];
    size_t rank;
    int64_t out;
  } cases[] = {
      {"conv:3x3x3:nobias,batchnorm,conv:2x2x2", {2, 6, 5}, 3, 2 * 3 * 2},
      {"conv:2x3x3:p1:nobias,batchnorm:0.3:0.001,flatten,dense:3", {1, 4, 4},
       3, 3},
      {"dense:5:nobias,batchnorm,dense:3", {4, 0, 0}, 1, 3},
      {"dense:5:nobias,batchnorm,tanh,dense:2", {6, 0, 0}, 1, 2},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    nnlib_model *m = spec_model(cases[i].spec, cases[i].shape, cases[i].rank,
                                5, NNLIB_LOSS_MSE);
    int64_t in = 1;
    for (size_t k = 0; k < cases[i].rank; k++)
      in *= cases[i].shape[k];
    nnlib_tensor *X = ts_tensor2(5, in, NULL);
    uint32_t seed = 8;
    ts_fill_uniform(nnlib_tensor_get_data(X), 5 * in, -2, 3, &seed);
    const nnlib_tensor *Y;
    for (int k = 0; k < 3; k++)
      ASSERT_OK(nnlib_model_forward(m, X, &Y));
    nnlib_tensor_free(X);
    double train = gradcheck(m, 5, in, cases[i].out, 0);
    double infer = gradcheck(m, 5, in, cases[i].out, 1);
    print_message("  %-56s training %.2e  inference %.2e\n", cases[i].spec,
                  train, infer);
    if (!(train <= 1e-3 && infer <= 1e-3))
      fail_msg("%s: gradcheck %.3g / %.3g", cases[i].spec, train, infer);
    nnlib_model_free(m);
  }
}

static void test_arguments_and_description(void **s) {
  (void)s;
  nnlib_layer *l = (nnlib_layer *)1;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_batchnorm_create(&l, 1.5f, 1e-5f));
  ts_expect_message("batchnorm: momentum 1.5 must be in [0, 1]");
  assert_null(l);
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_batchnorm_create(&l, 0.1f, 0.0f));
  ts_expect_message("batchnorm: epsilon 0 must be finite and > 0");
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_batchnorm_create(&l, NAN, 1e-5f));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_batchnorm_create(NULL, 0.1f, 1e-5f));
  static const char *const items[][2] = {
      {"batchnorm", "batchnorm"},
      {"batchnorm:0.1", "batchnorm"},
      {"batchnorm:0.1:1e-5", "batchnorm"},
      {"batchnorm:0.01", "batchnorm:0.01"},
      {"batchnorm:0.1:0.001", "batchnorm:0.1:0.001"},
      {"batchnorm:0:1e-3", "batchnorm:0:0.001"},
  };
  ts_check_spec_items(items, sizeof items / sizeof items[0]);
  static const char *const bad[][2] = {
      {"batchnorm:2", "momentum 2 must be in [0, 1]"},
      {"batchnorm:0.1:-1", "epsilon -1 must be finite and > 0"},
      {"batchnorm:x", "\"x\" is not a finite decimal number"},
      {"batchnorm:0.1:1e-5:3", "takes 0 to 2 arguments, got 3"},
  };
  ts_check_spec_errors(bad, sizeof bad / sizeof bad[0]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_training_and_inference),
      cmocka_unit_test(test_buffers_are_writable),
      cmocka_unit_test(test_negative_running_var_refused),
      cmocka_unit_test(test_negative_running_var_in_file),
      cmocka_unit_test(test_single_value_batch),
      cmocka_unit_test(test_gradcheck_both_modes),
      cmocka_unit_test(test_arguments_and_description),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
