/* Losses and their gradients against closed forms, including confident wrong
 * answers and huge logits. A dense layer 1 -> K with zero weights and bias z
 * turns the input [1] into the logits z, so its bias gradient is dL/dz. */
#include "test_support.h"

#include <math.h>
#include <string.h>

/* Loss and dL/dz for one sample of K logits z against target t (K values,
 * or one class index when t_count == 1). */
static void loss_and_grad(nnlib_loss loss, const float *z, int64_t k,
                          const float *t, int64_t t_count, double *l,
                          float *dz) {
  nnlib_optimizer *opt;
  ASSERT_OK(nnlib_sgd_create(&opt, 0.0f, 0.0f, 0, 0.0f));
  nnlib_model *m = ts_model(1, 1, loss, opt, 1, ts_dense(1, k, 1), NULL);
  nnlib_layer *d = nnlib_model_get_layer(m, 0);
  nnlib_tensor *w, *b, *db;
  ASSERT_OK(nnlib_layer_get_param(d, 0, &w, NULL));
  ASSERT_OK(nnlib_layer_get_param(d, 1, &b, &db));
  ASSERT_OK(nnlib_tensor_fill(w, 0.0f));
  memcpy(nnlib_tensor_get_data(b), z, (size_t)k * sizeof(float));
  float one = 1.0f;
  nnlib_tensor *X = ts_tensor2(1, 1, &one), *T = ts_tensor2(1, t_count, t);
  float lf;
  ASSERT_OK(nnlib_model_backward(m, X, T, &lf));
  *l = lf;
  memcpy(dz, nnlib_tensor_get_data(db), (size_t)k * sizeof(float));
  nnlib_tensor_free(X);
  nnlib_tensor_free(T);
  nnlib_model_free(m);
}

static void test_mse(void **s) {
  (void)s;
  float z[3] = {0.5f, -2.0f, 1e3f}, t[3] = {1.0f, -2.0f, 0.0f}, dz[3];
  double l;
  loss_and_grad(NNLIB_LOSS_MSE, z, 3, t, 3, &l, dz);
  double want = (0.25 + 0.0 + 1e6) / 3.0;
  ASSERT_NEAR(l, want, 1e-6 * want);
  for (int i = 0; i < 3; i++)
    ASSERT_NEAR(dz[i], 2.0 * (z[i] - t[i]) / 3.0, 1e-6 * fabs(z[i]) + 1e-7);
}

static void test_bce_logits_extremes(void **s) {
  (void)s;
  float z[6] = {100.0f, -100.0f, 1e4f, -1e4f, 0.0f, 2.0f};
  float t[6] = {0.0f, 1.0f, 1.0f, 0.0f, 1.0f, 0.25f}, dz[6];
  double l;
  loss_and_grad(NNLIB_LOSS_BCE_LOGITS, z, 6, t, 6, &l, dz);
  double sum = 0.0;
  for (int i = 0; i < 6; i++) {
    double x = z[i], y = t[i];
    sum += fmax(x, 0.0) - x * y + log1p(exp(-fabs(x)));
    double sig = 1.0 / (1.0 + exp(-x));
    assert_true(isfinite(dz[i]));
    ASSERT_NEAR(dz[i], (sig - y) / 6.0, 1e-7);
  }
  assert_true(isfinite(l));
  ASSERT_NEAR(l, sum / 6.0, 1e-6 * sum);
}

static void test_softmax_ce_confident_wrong(void **s) {
  (void)s;
  float z[3] = {1000.0f, 0.0f, -1000.0f}, t[3] = {0.0f, 0.0f, 1.0f}, dz[3];
  double l;
  loss_and_grad(NNLIB_LOSS_SOFTMAX_CE, z, 3, t, 3, &l, dz);
  /* -log softmax(z)_2 = lse(z) - z_2 = 1000 + 1000 */
  assert_true(isfinite(l));
  ASSERT_NEAR(l, 2000.0, 1e-3);
  ASSERT_NEAR(dz[0], 1.0, 1e-6);
  ASSERT_NEAR(dz[1], 0.0, 1e-6);
  ASSERT_NEAR(dz[2], -1.0, 1e-6);
}

static void test_softmax_ce_index_target_matches_one_hot(void **s) {
  (void)s;
  float z[4] = {0.3f, -1.2f, 2.5f, 0.0f}, one_hot[4] = {0, 1, 0, 0};
  float index = 1.0f, dz_a[4], dz_b[4];
  double la, lb;
  loss_and_grad(NNLIB_LOSS_SOFTMAX_CE, z, 4, one_hot, 4, &la, dz_a);
  loss_and_grad(NNLIB_LOSS_SOFTMAX_CE, z, 4, &index, 1, &lb, dz_b);
  double lse = 0.0;
  for (int i = 0; i < 4; i++)
    lse += exp(z[i]);
  lse = log(lse);
  ASSERT_NEAR(la, lse - z[1], 1e-6);
  ASSERT_NEAR(lb, la, 1e-7);
  for (int i = 0; i < 4; i++) {
    double p = exp(z[i] - lse);
    ASSERT_NEAR(dz_a[i], p - one_hot[i], 1e-6);
    ASSERT_NEAR(dz_b[i], dz_a[i], 1e-7);
  }
}

static void test_softmax_ce_bad_index(void **s) {
  (void)s;
  nnlib_optimizer *opt;
  ASSERT_OK(nnlib_sgd_create(&opt, 0.1f, 0.0f, 0, 0.0f));
  nnlib_model *m = ts_model(2, 2, NNLIB_LOSS_SOFTMAX_CE, opt, 1,
                            ts_dense(2, 3, 1), NULL);
  float x[4] = {1, 2, 3, 4}, bad[2] = {1.0f, 3.0f}, frac[2] = {0.5f, 1.0f};
  nnlib_tensor *X = ts_tensor2(2, 2, x);
  nnlib_tensor *T = ts_tensor2(2, 1, bad), *F = ts_tensor2(2, 1, frac);
  ASSERT_STATUS(NNLIB_ERR_OUT_OF_RANGE, nnlib_model_step(m, X, T, NULL));
  ASSERT_STATUS(NNLIB_ERR_OUT_OF_RANGE, nnlib_model_step(m, X, F, NULL));
  nnlib_tensor_free(X);
  nnlib_tensor_free(T);
  nnlib_tensor_free(F);
  nnlib_model_free(m);
}

/* evaluate averages over all samples, whatever the batch split */
static void test_evaluate_mean_over_chunks(void **s) {
  (void)s;
  nnlib_model *m = ts_model(2, 3, NNLIB_LOSS_MSE, NULL, 1,
                            ts_act(NNLIB_ACT_IDENTITY, 0), NULL);
  float x[14], t[14];
  uint32_t st = 5;
  ts_fill_uniform(x, 14, -2, 2, &st);
  ts_fill_uniform(t, 14, -2, 2, &st);
  nnlib_tensor *X = ts_tensor2(7, 2, x), *T = ts_tensor2(7, 2, t);
  float loss, acc;
  ASSERT_OK(nnlib_model_evaluate(m, X, T, &loss, &acc));
  double want = 0.0;
  int correct = 0;
  for (int i = 0; i < 14; i++)
    want += (double)(x[i] - t[i]) * (x[i] - t[i]);
  for (int r = 0; r < 7; r++)
    correct += (x[2 * r + 1] > x[2 * r]) == (t[2 * r + 1] > t[2 * r]);
  ASSERT_NEAR(loss, want / 14.0, 1e-6);
  ASSERT_NEAR(acc, correct / 7.0, 1e-7);
  nnlib_tensor_free(X);
  nnlib_tensor_free(T);
  nnlib_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_mse),
      cmocka_unit_test(test_bce_logits_extremes),
      cmocka_unit_test(test_softmax_ce_confident_wrong),
      cmocka_unit_test(test_softmax_ce_index_target_matches_one_hot),
      cmocka_unit_test(test_softmax_ce_bad_index),
      cmocka_unit_test(test_evaluate_mean_over_chunks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
