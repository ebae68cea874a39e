/* Numerical robustness (reliability.md R4): the edge-input table, NaN
 * propagation through every layer, the numerics check option
 * (nnlib_model_set_check_numerics) and exploding learning rates.
 *
 * Most cases read a gradient through a dense layer whose weight is the
 * identity and whose bias is zero: its output z equals the input, and its
 * bias gradient is dL/dz, the gradient of the loss (and activation) under
 * test. A model [dense, X] fuses an elementwise activation X into the dense
 * pass; [dense, identity, X] runs X as its own layer, so both kernels are
 * covered. */
#include "test_support.h"

#include <math.h>
#include <string.h>

enum { K = 3 };

static nnlib_tensor *param(nnlib_model *m, size_t layer, size_t index,
                           nnlib_tensor **grad) {
  nnlib_tensor *value = NULL, *g = NULL;
  ASSERT_OK(nnlib_layer_get_param(nnlib_model_get_layer(m, layer), index,
                                  &value, &g));
  if (grad != NULL)
    *grad = g;
  return value;
}

/* Layer 0 (dense k -> k) becomes the identity map. */
static void set_identity(nnlib_model *m, int64_t k) {
  float *w = nnlib_tensor_get_data(param(m, 0, 0, NULL));
  for (int64_t i = 0; i < k * k; i++)
    w[i] = i % (k + 1) == 0 ? 1.0f : 0.0f;
  ASSERT_OK(nnlib_tensor_fill(param(m, 0, 1, NULL), 0.0f));
}

/* [dense k->k (identity), act] or, standalone, [dense, identity, act]. */
static nnlib_model *probe_model(int64_t k, nnlib_activation act, float p,
                                int standalone, nnlib_loss loss) {
  nnlib_model *m = standalone
                       ? ts_model(k, 4, loss, NULL, 1, ts_dense(k, k, 1),
                                  ts_act(NNLIB_ACT_IDENTITY, 0),
                                  ts_act(act, p), NULL)
                       : ts_model(k, 4, loss, NULL, 1, ts_dense(k, k, 1),
                                  ts_act(act, p), NULL);
  set_identity(m, k);
  return m;
}

static void all_finite(const float *v, int64_t n, const char *what) {
  for (int64_t i = 0; i < n; i++)
    if (!isfinite(v[i]))
      fail_msg("%s[%lld] = %g is not finite", what, (long long)i,
               (double)v[i]);
}

/* ------------------------------------------------------- edge-input table */

static void forward_rows(nnlib_activation act, const float *x, float *y,
                         int64_t rows, int standalone) {
  nnlib_model *m = probe_model(K, act, 0.01f, standalone, NNLIB_LOSS_NONE);
  nnlib_tensor *X = ts_tensor2(rows, K, x), *Y = ts_tensor2(rows, K, NULL);
  ASSERT_OK(nnlib_model_predict(m, X, Y));
  memcpy(y, nnlib_tensor_get_data(Y), sizeof(float) * (size_t)(rows * K));
  nnlib_tensor_free(X);
  nnlib_tensor_free(Y);
  nnlib_model_free(m);
}

static void test_softmax_extremes(void **s) {
  (void)s;
  const float x[2 * K] = {1e4f, 0.0f, -1e4f, 88.8f, 88.8f, -1e30f};
  const double want[2 * K] = {1, 0, 0, 0.5, 0.5, 0};
  float y[2 * K];
  forward_rows(NNLIB_ACT_SOFTMAX, x, y, 2, 0);
  all_finite(y, 2 * K, "softmax");
  for (int r = 0; r < 2; r++) {
    double sum = 0.0;
    for (int c = 0; c < K; c++) {
      sum += y[r * K + c];
      ASSERT_NEAR(y[r * K + c], want[r * K + c], 1e-7);
    }
    ASSERT_NEAR(sum, 1.0, 1e-6);
  }
}

/* Loss and dL/dz for one row of logits z against `target` (class indices
 * for SOFTMAX_CE, else values), through the identity dense layer. */
static float loss_and_grad(nnlib_loss loss, const float *z, const float *t,
                           int64_t k, int index_target, float *dz) {
  nnlib_model *m =
      ts_model(k, 1, loss, NULL, 1, ts_dense(k, k, 1), NULL);
  set_identity(m, k);
  nnlib_tensor *X = ts_tensor2(1, k, z);
  nnlib_tensor *T = index_target ? ts_tensor2(1, 1, t) : ts_tensor2(1, k, t);
  if (index_target) {
    int64_t shape[1] = {1};
    ASSERT_OK(nnlib_tensor_set_shape(T, shape, 1));
  }
  float l = NAN;
  ASSERT_OK(nnlib_model_backward(m, X, T, &l));
  nnlib_tensor *db;
  param(m, 0, 1, &db);
  memcpy(dz, nnlib_tensor_get_data(db), sizeof(float) * (size_t)k);
  nnlib_tensor_free(X);
  nnlib_tensor_free(T);
  nnlib_model_free(m);
  return l;
}

static void test_softmax_ce_extremes(void **s) {
  (void)s;
  const float z[K] = {1e4f, 0.0f, -1e4f};
  float dz[K];
  /* label 0: p = (1, 0, 0), loss 0; label 2: loss lse - z_2 = 2e4 */
  for (int label = 0; label < K; label++) {
    float t = (float)label;
    float l = loss_and_grad(NNLIB_LOSS_SOFTMAX_CE, z, &t, K, 1, dz);
    assert_true(isfinite(l));
    ASSERT_NEAR(l, 1e4 - z[label], 1e-3 * (1e4 - z[label]) + 1e-6);
    for (int c = 0; c < K; c++)
      ASSERT_NEAR(dz[c], (c == 0 ? 1.0 : 0.0) - (c == label ? 1.0 : 0.0),
                  1e-7);
  }
  /* the same with a one-hot target and the opposite sign */
  const float zn[K] = {-1e4f, 1e4f, 0.0f}, onehot[K] = {1, 0, 0};
  float l = loss_and_grad(NNLIB_LOSS_SOFTMAX_CE, zn, onehot, K, 0, dz);
  ASSERT_NEAR(l, 2e4, 2.0);
  ASSERT_NEAR(dz[0], -1.0, 1e-7);
  ASSERT_NEAR(dz[1], 1.0, 1e-7);
  ASSERT_NEAR(dz[2], 0.0, 1e-7);
}

static void test_bce_logit_extremes(void **s) {
  (void)s;
  const float xs[] = {100.0f, -100.0f, 1e4f, -1e4f, 0.0f};
  for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++)
    for (int y = 0; y <= 1; y++) {
      float t = (float)y, dz;
      float l = loss_and_grad(NNLIB_LOSS_BCE_LOGITS, &xs[i], &t, 1, 0, &dz);
      double x = xs[i];
      double want = fmax(x, 0) - x * y + log1p(exp(-fabs(x)));
      double sig = x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x));
      assert_true(isfinite(l) && isfinite(dz));
      ASSERT_NEAR(l, want, 1e-6 * fabs(want) + 1e-7);
      ASSERT_NEAR(dz, sig - y, 1e-7);
    }
}

static void test_softplus_linear_branch(void **s) {
  (void)s;
  const float x[K] = {20.0f, 21.0f, 89.0f}, x2[K] = {1e4f, -1e4f, -100.0f};
  for (int standalone = 0; standalone <= 1; standalone++) {
    float y[K];
    forward_rows(NNLIB_ACT_SOFTPLUS, x, y, 1, standalone);
    assert_true(y[0] == (float)log1p(exp(20.0))); /* 20.000000002 -> 20 */
    assert_true(y[1] == 21.0f && y[2] == 89.0f);  /* exactly x above 20 */
    forward_rows(NNLIB_ACT_SOFTPLUS, x2, y, 1, standalone);
    assert_true(y[0] == 1e4f);
    assert_true(y[1] == 0.0f && y[2] >= 0.0f && y[2] < 1e-40f);
  }
}

/* sigmoid and tanh at +-100: outputs in range, derivatives finite and
 * >= 0, which shows as a bias gradient dL/dz = dL/dy f'(z) of the sign of
 * dL/dy (or zero). */
static void test_saturated_sigmoid_tanh(void **s) {
  (void)s;
  const nnlib_activation acts[2] = {NNLIB_ACT_SIGMOID, NNLIB_ACT_TANH};
  const float x[K] = {100.0f, -100.0f, 0.0f}, t[K] = {0.25f, 0.25f, 0.25f};
  for (int a = 0; a < 2; a++)
    for (int standalone = 0; standalone <= 1; standalone++) {
      nnlib_model *m = probe_model(K, acts[a], 0, standalone, NNLIB_LOSS_MSE);
      nnlib_tensor *X = ts_tensor2(1, K, x), *T = ts_tensor2(1, K, t);
      const nnlib_tensor *out;
      ASSERT_OK(nnlib_model_forward(m, X, &out));
      const float *y = nnlib_tensor_get_data_const(out);
      float lo = acts[a] == NNLIB_ACT_SIGMOID ? 0.0f : -1.0f;
      float yv[K];
      memcpy(yv, y, sizeof yv);
      for (int c = 0; c < K; c++)
        assert_true(yv[c] >= lo && yv[c] <= 1.0f);
      ASSERT_NEAR(yv[0], 1.0, 1e-7);
      ASSERT_NEAR(yv[1], lo, 1e-7);
      float l;
      ASSERT_OK(nnlib_model_backward(m, X, T, &l));
      nnlib_tensor *db;
      param(m, 0, 1, &db);
      const float *g = nnlib_tensor_get_data(db);
      all_finite(g, K, "dL/dz");
      for (int c = 0; c < K; c++) {
        double dldy = 2.0 * (yv[c] - t[c]) / K;
        assert_true(g[c] * dldy >= 0.0); /* f'(z) >= 0 */
      }
      nnlib_tensor_free(X);
      nnlib_tensor_free(T);
      nnlib_model_free(m);
    }
}

/* MSE with targets of 1e18: loss 1e36 is finite in float, and so is the
 * gradient. At 1e20 the loss (1e40) overflows float: the documented
 * NNLIB_ERR_NUMERICAL, never an Inf with NNLIB_OK. */
static void test_mse_huge_targets(void **s) {
  (void)s;
  const float z[2] = {0.0f, 0.0f}, t[2] = {1e18f, -1e18f};
  float dz[2];
  float l = loss_and_grad(NNLIB_LOSS_MSE, z, t, 2, 0, dz);
  assert_true(isfinite(l));
  ASSERT_NEAR(l, 1e36, 1e30);
  ASSERT_NEAR(dz[0], -1e18, 1e12);
  ASSERT_NEAR(dz[1], 1e18, 1e12);

  nnlib_model *m = ts_model(2, 1, NNLIB_LOSS_MSE, NULL, 1, ts_dense(2, 2, 1),
                            NULL);
  const float t2[2] = {1e20f, -1e20f};
  nnlib_tensor *X = ts_tensor2(1, 2, z), *T = ts_tensor2(1, 2, t2);
  ASSERT_STATUS(NNLIB_ERR_NUMERICAL, nnlib_model_backward(m, X, T, &l));
  nnlib_tensor_free(X);
  nnlib_tensor_free(T);
  nnlib_model_free(m);
}

/* ------------------------------------------------------ NaN propagation */

/* A NaN in one input sample reaches every output of that sample through
 * every activation, fused or standalone, and leaves the other sample alone. */
static void test_nan_propagates(void **s) {
  (void)s;
  for (int a = NNLIB_ACT_IDENTITY; a <= NNLIB_ACT_SOFTMAX; a++)
    for (int standalone = 0; standalone <= 1; standalone++) {
      float x[2 * K] = {0.5f, NAN, -0.5f, 0.5f, 1.0f, -0.5f}, y[2 * K];
      forward_rows((nnlib_activation)a, x, y, 2, standalone);
      /* the dense layer mixes a row (0 * NaN is NaN), so all of row 0 */
      for (int c = 0; c < K; c++)
        if (!isnan(y[c]))
          fail_msg("activation %d (standalone %d): NaN input gave %g at %d",
                   a, standalone, (double)y[c], c);
      all_finite(y + K, K, "the clean sample");
    }
}

/* The regression this guards: relu(NaN) was 0, so a NaN in the data gave a
 * finite loss, the step went ahead and dW = dZ^T X wrote NaN into the first
 * layer's weights without a word. The step must refuse instead. */
static void test_nan_input_does_not_train(void **s) {
  (void)s;
  for (int a = NNLIB_ACT_STEP; a <= NNLIB_ACT_SOFTPLUS; a++) {
    nnlib_optimizer *opt;
    ASSERT_OK(nnlib_sgd_create(&opt, 0.1f, 0.9f, 0, 0));
    nnlib_model *m = ts_model(2, 2, NNLIB_LOSS_MSE, opt, 1, ts_dense(2, 4, 1),
                              ts_act((nnlib_activation)a, 0.01f),
                              ts_dense(4, 1, 1), NULL);
    float before[8];
    memcpy(before, nnlib_tensor_get_data(param(m, 0, 0, NULL)), sizeof before);
    const float x[4] = {NAN, 1.0f, 0.5f, 0.5f}, t[2] = {1.0f, 0.0f};
    nnlib_tensor *X = ts_tensor2(2, 2, x), *T = ts_tensor2(2, 1, t);
    float l = 0.0f;
    nnlib_clear_error();
    nnlib_status st = nnlib_model_step(m, X, T, &l);
    if (st != NNLIB_ERR_NUMERICAL)
      fail_msg("activation %d: a NaN input gave status %d, loss %g", a,
               (int)st, (double)l);
    assert_memory_equal(nnlib_tensor_get_data(param(m, 0, 0, NULL)), before,
                        sizeof before);
    nnlib_tensor_free(X);
    nnlib_tensor_free(T);
    nnlib_model_free(m);
  }
}

/* --------------------------------------------------- the numerics check */

/* [dense 2->2, relu (fused), dense 2->1]: layer 2's weight is set by the
 * caller to make its output or its input gradient overflow. */
static nnlib_model *three_layers(float lr, float w2) {
  nnlib_optimizer *opt;
  ASSERT_OK(nnlib_sgd_create(&opt, lr, 0, 0, 0));
  nnlib_model *m = ts_model(2, 2, NNLIB_LOSS_MSE, opt, 1, ts_dense(2, 2, 1),
                            ts_act(NNLIB_ACT_RELU, 0), ts_dense(2, 1, 1), NULL);
  set_identity(m, 2);
  ASSERT_OK(nnlib_tensor_fill(param(m, 2, 0, NULL), w2));
  return m;
}

static void test_check_numerics_arguments(void **s) {
  (void)s;
  nnlib_model *m;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_model_set_check_numerics(NULL, 1));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_model_set_check_numerics(m, 2));
  ASSERT_OK(nnlib_model_set_check_numerics(m, 1)); /* before compile too */
  ASSERT_OK(nnlib_model_set_check_numerics(m, 0));
  nnlib_model_free(m);
}

static void test_check_names_input(void **s) {
  (void)s;
  nnlib_model *m = three_layers(0.1f, 1.0f);
  ASSERT_OK(nnlib_model_set_check_numerics(m, 1));
  const float x[4] = {1.0f, 2.0f, 3.0f, INFINITY}, t[2] = {0, 0};
  nnlib_tensor *X = ts_tensor2(2, 2, x), *T = ts_tensor2(2, 1, t);
  nnlib_tensor *Y = ts_tensor2(2, 1, NULL);
  const nnlib_tensor *out;
  ASSERT_STATUS(NNLIB_ERR_NUMERICAL, nnlib_model_forward(m, X, &out));
  ts_expect_message("input batch value is inf at sample 1, element 1");
  ASSERT_STATUS(NNLIB_ERR_NUMERICAL, nnlib_model_predict(m, X, Y));
  nnlib_workspace *ws;
  ASSERT_OK(nnlib_workspace_create(&ws, m));
  ASSERT_STATUS(NNLIB_ERR_NUMERICAL, nnlib_workspace_predict(ws, X, Y));
  nnlib_workspace_free(ws);
  nnlib_fit_options fo;
  ASSERT_OK(nnlib_fit_options_init(&fo));
  fo.shuffle = 0;
  ASSERT_STATUS(NNLIB_ERR_NUMERICAL, nnlib_model_fit(m, X, T, &fo));
  nnlib_tensor_free(X);
  nnlib_tensor_free(T);
  nnlib_tensor_free(Y);
  nnlib_model_free(m);
}

/* A finite input whose activations overflow in layer 2: the check names
 * layer 2; without it the forward pass returns the Inf as it is. */
static void test_check_names_forward_layer(void **s) {
  (void)s;
  nnlib_model *m = three_layers(0.1f, 3e38f);
  const float x[2] = {10.0f, 10.0f};
  nnlib_tensor *X = ts_tensor2(1, 2, x);
  const nnlib_tensor *out;
  ASSERT_OK(nnlib_model_forward(m, X, &out));
  assert_true(isinf(nnlib_tensor_get_data_const(out)[0]));
  ASSERT_OK(nnlib_model_set_check_numerics(m, 1));
  ASSERT_STATUS(NNLIB_ERR_NUMERICAL, nnlib_model_forward(m, X, &out));
  ts_expect_message("layer 2 (dense) output is inf at sample 0, element 0");
  nnlib_tensor_free(X);
  nnlib_model_free(m);
}

/* A finite loss whose backward pass overflows: dX of layer 2 = dY W is Inf
 * although the loss (1e16) is finite. The check stops before the update
 * and names layer 2; the weights stay as they were. */
static void test_check_names_backward_layer(void **s) {
  (void)s;
  nnlib_model *m = three_layers(0.1f, 1e38f);
  ASSERT_OK(nnlib_model_set_check_numerics(m, 1));
  const float x[2] = {1e-30f, 1e-30f}, t[1] = {0.0f};
  nnlib_tensor *X = ts_tensor2(1, 2, x), *T = ts_tensor2(1, 1, t);
  float w0[4];
  memcpy(w0, nnlib_tensor_get_data(param(m, 0, 0, NULL)), sizeof w0);
  float l;
  ASSERT_STATUS(NNLIB_ERR_NUMERICAL, nnlib_model_step(m, X, T, &l));
  ts_expect_message("layer 2 (dense) input gradient is");
  ts_expect_message("backward pass");
  assert_memory_equal(nnlib_tensor_get_data(param(m, 0, 0, NULL)), w0,
                      sizeof w0);
  assert_int_equal(nnlib_optimizer_get_step_count(nnlib_model_get_optimizer(m)),
                   0);
  nnlib_tensor_free(X);
  nnlib_tensor_free(T);
  nnlib_model_free(m);
}

/* An exploding learning rate. Without the check: the step that overflows
 * the weights cannot know it, but the next one sees a non-finite loss,
 * refuses and leaves the weights as they were. With the check: the
 * overflowing step itself reports it and names the layer. */
static void test_exploding_learning_rate(void **s) {
  (void)s;
  const float x[2] = {1.0f, 1.0f}, t[1] = {100.0f};
  nnlib_tensor *X = ts_tensor2(1, 2, x), *T = ts_tensor2(1, 1, t);
  for (int check = 0; check <= 1; check++) {
    nnlib_model *m = three_layers(1e38f, 1.0f);
    ASSERT_OK(nnlib_model_set_check_numerics(m, check));
    float l;
    nnlib_status st = nnlib_model_step(m, X, T, &l);
    if (check) {
      assert_int_equal(st, NNLIB_ERR_NUMERICAL);
      ts_expect_message("the optimizer step made layer");
      ts_expect_message("learning rate too high");
    } else {
      ASSERT_OK(st);
      assert_true(isfinite(l));
      float w[2];
      memcpy(w, nnlib_tensor_get_data(param(m, 2, 0, NULL)), sizeof w);
      ASSERT_STATUS(NNLIB_ERR_NUMERICAL, nnlib_model_step(m, X, T, &l));
      assert_false(isfinite(l));
      assert_memory_equal(nnlib_tensor_get_data(param(m, 2, 0, NULL)), w,
                          sizeof w);
      /* fit stops at the same step with the same status */
      ASSERT_STATUS(NNLIB_ERR_NUMERICAL, nnlib_model_fit(m, X, T, NULL));
    }
    nnlib_model_free(m);
  }
  nnlib_tensor_free(X);
  nnlib_tensor_free(T);
}

/* The check finds nothing on a healthy run and changes no result: the same
 * training with and without it gives bit-identical weights. */
static void test_check_changes_nothing_when_healthy(void **s) {
  (void)s;
  float w[2][8];
  for (int check = 0; check <= 1; check++) {
    nnlib_optimizer *opt;
    ASSERT_OK(nnlib_sgd_create(&opt, 0.1f, 0.9f, 0, 0));
    nnlib_model *m = ts_model(2, 4, NNLIB_LOSS_MSE, opt, 7, ts_dense(2, 4, 1),
                              ts_act(NNLIB_ACT_TANH, 0), ts_dense(4, 1, 1),
                              NULL);
    ASSERT_OK(nnlib_model_set_check_numerics(m, check));
    const float x[8] = {0, 0, 0, 1, 1, 0, 1, 1}, t[4] = {0, 1, 1, 0};
    nnlib_tensor *X = ts_tensor2(4, 2, x), *T = ts_tensor2(4, 1, t);
    nnlib_fit_options fo;
    ASSERT_OK(nnlib_fit_options_init(&fo));
    fo.epochs = 20;
    ASSERT_OK(nnlib_model_fit(m, X, T, &fo));
    memcpy(w[check], nnlib_tensor_get_data(param(m, 0, 0, NULL)),
           sizeof w[check]);
    nnlib_tensor_free(X);
    nnlib_tensor_free(T);
    nnlib_model_free(m);
  }
  assert_memory_equal(w[0], w[1], sizeof w[0]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_softmax_extremes),
      cmocka_unit_test(test_softmax_ce_extremes),
      cmocka_unit_test(test_bce_logit_extremes),
      cmocka_unit_test(test_softplus_linear_branch),
      cmocka_unit_test(test_saturated_sigmoid_tanh),
      cmocka_unit_test(test_mse_huge_targets),
      cmocka_unit_test(test_nan_propagates),
      cmocka_unit_test(test_nan_input_does_not_train),
      cmocka_unit_test(test_check_numerics_arguments),
      cmocka_unit_test(test_check_names_input),
      cmocka_unit_test(test_check_names_forward_layer),
      cmocka_unit_test(test_check_names_backward_layer),
      cmocka_unit_test(test_exploding_learning_rate),
      cmocka_unit_test(test_check_changes_nothing_when_healthy),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
