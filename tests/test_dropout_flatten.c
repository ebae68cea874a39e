/* Dropout: inverted (kept values scaled by 1 / (1 - rate)), a fraction
 * `rate` dropped, masks from the model's seeded generator (same seed, same
 * masks; a new mask every pass), identity in inference; backward against
 * the mask its forward drew, and gradient checks in both modes (gradcheck
 * rewinds the generator, so every pass sees one mask). Flatten: shapes,
 * values, gradients. Both: arguments and description items. */
#include "test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static nnlib_model *spec_model(const char *spec, int64_t in, int64_t batch,
                               nnlib_loss loss, uint64_t seed) {
  nnlib_model *m = NULL;
  nnlib_optimizer *opt = NULL;
  if (loss != NNLIB_LOSS_NONE)
    ASSERT_OK(nnlib_sgd_create(&opt, 0.1f, 0, 0, 0));
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, spec));
  ASSERT_OK(nnlib_model_compile(m, &in, 1, batch, loss, opt, seed));
  return m;
}

enum { N = 64, F = 500 };

static void test_inverted_masks(void **s) {
  (void)s;
  nnlib_model *m = spec_model("dropout:0.3", F, N, NNLIB_LOSS_MSE, 5);
  nnlib_tensor *X = ts_tensor2(N, F, NULL);
  uint32_t seed = 1;
  ts_fill_uniform(nnlib_tensor_get_data(X), N * F, 0.5f, 1.5f, &seed);
  const float *x = nnlib_tensor_get_data(X);
  const nnlib_tensor *Y;
  ASSERT_OK(nnlib_model_forward(m, X, &Y));
  const float *y = nnlib_tensor_get_data_const(Y);
  long dropped = 0;
  for (int i = 0; i < N * F; i++) {
    if (y[i] == 0.0f)
      dropped++;
    else
      ASSERT_NEAR(y[i], x[i] / 0.7f, 1e-6);
  }
  double rate = (double)dropped / (N * F);
  print_message("  dropped %.4f of %d\n", rate, N * F);
  ASSERT_NEAR(rate, 0.3, 0.01);
  /* a new mask on the next pass */
  float *first = malloc(sizeof(float) * N * F);
  memcpy(first, y, sizeof(float) * N * F);
  ASSERT_OK(nnlib_model_forward(m, X, &Y));
  assert_true(memcmp(first, nnlib_tensor_get_data_const(Y),
                     sizeof(float) * N * F) != 0);
  /* inference: the identity */
  nnlib_tensor *P = ts_tensor2(N, F, NULL);
  ASSERT_OK(nnlib_model_predict(m, X, P));
  assert_memory_equal(nnlib_tensor_get_data(P), x, sizeof(float) * N * F);
  /* same seed, same first mask */
  nnlib_model *again = spec_model("dropout:0.3", F, N, NNLIB_LOSS_MSE, 5);
  ASSERT_OK(nnlib_model_forward(again, X, &Y));
  assert_memory_equal(first, nnlib_tensor_get_data_const(Y),
                      sizeof(float) * N * F);
  free(first);
  nnlib_tensor_free(X);
  nnlib_tensor_free(P);
  nnlib_model_free(m);
  nnlib_model_free(again);
}

/* Two identical models (same seed): A's training forward shows the mask M
 * that B's backward draws too; B's weight gradient must be
 * dW = (dy * M / (1 - rate))^T X with dy = 2 (y - t) / (n k). */
static void test_backward_uses_the_mask(void **s) {
  (void)s;
  enum { n = 6, in = 5, k = 40 };
  const char *spec = "dense:40:nobias,dropout:0.5";
  nnlib_model *a = spec_model(spec, in, n, NNLIB_LOSS_MSE, 11);
  nnlib_model *b = spec_model(spec, in, n, NNLIB_LOSS_MSE, 11);
  nnlib_tensor *X = ts_tensor2(n, in, NULL), *T = ts_tensor2(n, k, NULL);
  uint32_t seed = 3;
  ts_fill_uniform(nnlib_tensor_get_data(X), n * in, -1, 1, &seed);
  ts_fill_uniform(nnlib_tensor_get_data(T), n * k, -1, 1, &seed);
  const float *x = nnlib_tensor_get_data(X), *t = nnlib_tensor_get_data(T);
  nnlib_tensor *gw;
  const nnlib_tensor *Y;
  ASSERT_OK(nnlib_model_forward(a, X, &Y));
  const float *y = nnlib_tensor_get_data_const(Y);
  float loss;
  ASSERT_OK(nnlib_model_backward(b, X, T, &loss));
  ASSERT_OK(nnlib_layer_get_param(nnlib_model_get_layer(b, 0), 0, NULL, &gw));
  const float *g = nnlib_tensor_get_data(gw);
  int kept = 0;
  for (int o = 0; o < k; o++)
    for (int i = 0; i < in; i++) {
      double want = 0.0;
      for (int r = 0; r < n; r++) {
        double mask = y[r * k + o] != 0.0f ? 2.0 : 0.0;
        double dy = 2.0 * (y[r * k + o] - t[r * k + o]) / (n * k);
        want += dy * mask * x[r * in + i];
        kept += i == 0 && mask > 0.0;
      }
      ASSERT_NEAR(g[o * in + i], want, 1e-6);
    }
  assert_true(kept > 0 && kept < n * k); /* some dropped, some kept */
  nnlib_tensor_free(X);
  nnlib_tensor_free(T);
  nnlib_model_free(a);
  nnlib_model_free(b);
}

static double gradcheck(const char *spec, int64_t in, int64_t out,
                        int inference) {
  nnlib_model *m = spec_model(spec, in, 4, NNLIB_LOSS_MSE, 2);
  nnlib_tensor *X = ts_tensor2(4, in, NULL), *T = ts_tensor2(4, out, NULL);
  uint32_t seed = 77;
  ts_fill_uniform(nnlib_tensor_get_data(X), 4 * in, -1, 1, &seed);
  ts_fill_uniform(nnlib_tensor_get_data(T), 4 * out, -1, 1, &seed);
  nnlib_gradcheck_options o;
  ASSERT_OK(nnlib_gradcheck_options_init(&o));
  o.inference = inference;
  double err = -1.0;
  ASSERT_OK(nnlib_model_gradcheck(m, X, T, &o, &err));
  /* twice: the check leaves the generator where it was */
  double again = -1.0;
  ASSERT_OK(nnlib_model_gradcheck(m, X, T, &o, &again));
  assert_true(err == again);
  nnlib_tensor_free(X);
  nnlib_tensor_free(T);
  nnlib_model_free(m);
  return err;
}

static void test_gradcheck_both_modes(void **s) {
  (void)s;
  const char *specs[] = {"dense:6,dropout:0.4,dense:3",
                         "dense:6,tanh,dropout,dense:5,dropout:0.2,dense:3"};
  for (size_t i = 0; i < 2; i++)
    for (int inference = 0; inference <= 1; inference++) {
      double err = gradcheck(specs[i], 5, 3, inference);
      print_message("  %-48s %s %.2e\n", specs[i],
                    inference ? "inference" : "training ", err);
      if (!(err <= 1e-3))
        fail_msg("%s: gradcheck %.3g", specs[i], err);
    }
  /* rate 0 trains like no dropout at all */
  double err = gradcheck("dense:4,dropout:0,dense:3", 5, 3, 0);
  assert_true(err <= 1e-3);
}

static void test_flatten(void **s) {
  (void)s;
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, "flatten"));
  int64_t shape[3] = {2, 3, 4};
  ASSERT_OK(nnlib_model_compile(m, shape, 3, 2, NNLIB_LOSS_NONE, NULL, 1));
  int64_t dims[3];
  size_t rank;
  ASSERT_OK(nnlib_model_get_output_shape(m, dims, 3, &rank));
  assert_int_equal(rank, 1);
  assert_int_equal(dims[0], 24);
  assert_int_equal(nnlib_layer_get_kind(nnlib_model_get_layer(m, 0)),
                   NNLIB_LAYER_FLATTEN);
  nnlib_tensor *X = ts_tensor2(2, 24, NULL), *Y = ts_tensor2(2, 24, NULL);
  uint32_t seed = 4;
  ts_fill_uniform(nnlib_tensor_get_data(X), 48, -1, 1, &seed);
  ASSERT_OK(nnlib_model_predict(m, X, Y));
  assert_memory_equal(nnlib_tensor_get_data(X), nnlib_tensor_get_data(Y),
                      48 * sizeof(float));
  nnlib_tensor_free(X);
  nnlib_tensor_free(Y);
  nnlib_model_free(m);
  /* gradients pass through it unchanged */
  nnlib_optimizer *opt;
  ASSERT_OK(nnlib_sgd_create(&opt, 0.1f, 0, 0, 0));
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, "conv:2x3x3,flatten,dense:3"));
  int64_t img[3] = {1, 5, 6};
  ASSERT_OK(nnlib_model_compile(m, img, 3, 3, NNLIB_LOSS_MSE, opt, 1));
  X = ts_tensor2(3, 30, NULL);
  nnlib_tensor *T = ts_tensor2(3, 3, NULL);
  ts_fill_uniform(nnlib_tensor_get_data(X), 90, -1, 1, &seed);
  ts_fill_uniform(nnlib_tensor_get_data(T), 9, -1, 1, &seed);
  double err;
  ASSERT_OK(nnlib_model_gradcheck(m, X, T, NULL, &err));
  assert_true(err <= 1e-3);
  nnlib_tensor_free(X);
  nnlib_tensor_free(T);
  nnlib_model_free(m);
}

static void test_arguments_and_description(void **s) {
  (void)s;
  nnlib_layer *l = (nnlib_layer *)1;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_dropout_create(&l, 1.0f));
  ts_expect_message("dropout: rate 1 must be in [0, 1)");
  assert_null(l);
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_dropout_create(&l, -0.1f));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_dropout_create(&l, NAN));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_dropout_create(NULL, 0.5f));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_flatten_create(NULL));
  ASSERT_OK(nnlib_dropout_create(&l, 0.5f));
  assert_string_equal(nnlib_layer_get_name(l), "dropout");
  assert_int_equal(nnlib_layer_get_kind(l), NNLIB_LAYER_DROPOUT);
  nnlib_layer_free(l);
  static const char *const items[][2] = {
      {"dropout", "dropout:0.5"},
      {"dropout:0.25", "dropout:0.25"},
      {"dropout:0", "dropout:0"},
      {"dropout:-0", "dropout:0"},
      {"flatten", "flatten"},
  };
  ts_check_spec_items(items, sizeof items / sizeof items[0]);
  static const char *const bad[][2] = {
      {"dropout:1", "dropout: rate 1 must be in [0, 1)"},
      {"dropout:-0.5", "rate -0.5 must be in [0, 1)"},
      {"dropout:half", "\"half\" is not a finite decimal number"},
      {"dropout:0.1:0.2", "takes 0 to 1 arguments, got 2"},
      {"flatten:1", "takes 0 arguments, got 1"},
  };
  ts_check_spec_errors(bad, sizeof bad / sizeof bad[0]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_inverted_masks),
      cmocka_unit_test(test_backward_uses_the_mask),
      cmocka_unit_test(test_gradcheck_both_modes),
      cmocka_unit_test(test_flatten),
      cmocka_unit_test(test_arguments_and_description),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
