/* The API contract on bad input: NULL handles, shapes that do not chain,
 * wrong feature counts, zero and oversized batches, calls in the wrong
 * state, negative sizes. Each returns its own status with a message that
 * names the problem, and nothing leaks (counting allocator), also when an
 * allocation fails part-way (OOM injection). */
#include "test_support.h"

#include <stdio.h>

#include <math.h>
#include <string.h>

static void test_status_strings(void **s) {
  (void)s;
  assert_string_equal(nnlib_status_string(NNLIB_OK), "ok");
  assert_string_equal(nnlib_status_string(NNLIB_ERR_SHAPE_MISMATCH),
                      "shape mismatch");
  assert_string_equal(nnlib_status_string((nnlib_status)-999),
                      "unknown status");
  for (int st = 0; st >= NNLIB_ERR_INTERNAL; st--)
    assert_string_not_equal(nnlib_status_string((nnlib_status)st),
                            "unknown status");
  nnlib_clear_error();
  assert_string_equal(nnlib_last_error_message(), "");
  assert_int_equal(nnlib_version() / 10000, NNLIB_VERSION_MAJOR);
  assert_string_equal(nnlib_version_string(), NNLIB_VERSION_STRING);
  char numbers[32]; /* the string and the three numbers agree */
  snprintf(numbers, sizeof numbers, "%d.%d.%d", NNLIB_VERSION_MAJOR,
           NNLIB_VERSION_MINOR, NNLIB_VERSION_PATCH);
  assert_string_equal(numbers, NNLIB_VERSION_STRING);
}

static void test_null_handles(void **s) {
  (void)s;
  nnlib_layer *l = (nnlib_layer *)1;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_model_create(NULL));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_dense_create(NULL, 1, 1, 1));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_model_add(NULL, NULL));
  int64_t in[1] = {3};
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_model_compile(NULL, in, 1, 1, NNLIB_LOSS_MSE, NULL, 1));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_model_step(NULL, NULL, NULL, NULL));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_model_predict(NULL, NULL, NULL));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_layer_get_param(NULL, 0, NULL, NULL));
  ASSERT_OK(nnlib_dense_create(&l, 2, 2, 1));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_model_add(NULL, l)); /* freed */
  nnlib_model_free(NULL);
  nnlib_layer_free(NULL);
  nnlib_optimizer_free(NULL);
}

static void test_negative_and_zero_sizes(void **s) {
  (void)s;
  nnlib_layer *l = (nnlib_layer *)1;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_dense_create(&l, -1, 4, 1));
  ts_expect_message("in_features");
  assert_null(l);
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_dense_create(&l, 4, 0, 1));
  ts_expect_message("out_features");
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_dense_create(&l, 4, -3, 1));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_dense_create(&l, 4, 4, 2));
  ASSERT_STATUS(NNLIB_ERR_TOO_LARGE,
                nnlib_dense_create(&l, INT64_C(1) << 32, 4, 1));
}

static void test_shape_mismatch_at_compile(void **s) {
  (void)s;
  ts_alloc_stats st = {0};
  ts_alloc_install(&st);
  nnlib_model *m;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add(m, ts_dense(784, 16, 1)));
  ASSERT_OK(nnlib_model_add(m, ts_dense(15, 10, 1)));
  nnlib_optimizer *opt;
  ASSERT_OK(nnlib_sgd_create(&opt, 0.1f, 0, 0, 0));
  int64_t in[1] = {784};
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH,
                nnlib_model_compile(m, in, 1, 8, NNLIB_LOSS_MSE, opt, 1));
  ts_expect_message("layer 1 (dense): dense: input has 16 features, layer expects 15");
  /* an input of the wrong size for the first layer */
  int64_t in2[1] = {783};
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH,
                nnlib_model_compile(m, in2, 1, 8, NNLIB_LOSS_MSE, NULL, 1));
  ts_expect_message("input has 783 features, layer expects 784");
  nnlib_model_free(m);
  assert_int_equal(st.live, 0); /* the optimizer was taken and freed too */
  ts_alloc_uninstall();
}

static void test_wrong_state(void **s) {
  (void)s;
  nnlib_model *m;
  ASSERT_OK(nnlib_model_create(&m));
  int64_t in[1] = {2};
  ASSERT_STATUS(NNLIB_ERR_WRONG_STATE,
                nnlib_model_compile(m, in, 1, 4, NNLIB_LOSS_MSE, NULL, 1));
  ts_expect_message("no layers");
  ASSERT_OK(nnlib_model_add(m, ts_dense(2, 1, 1)));
  nnlib_tensor *X = ts_tensor2(1, 2, NULL), *T = ts_tensor2(1, 1, NULL);
  ASSERT_STATUS(NNLIB_ERR_WRONG_STATE, nnlib_model_step(m, X, T, NULL));
  ts_expect_message("not compiled");
  int64_t count;
  ASSERT_STATUS(NNLIB_ERR_WRONG_STATE, nnlib_model_get_param_count(m, &count));
  nnlib_tensor *w;
  ASSERT_STATUS(NNLIB_ERR_WRONG_STATE,
                nnlib_layer_get_param(nnlib_model_get_layer(m, 0), 0, &w, NULL));
  ASSERT_OK(nnlib_model_compile(m, in, 1, 4, NNLIB_LOSS_NONE, NULL, 1));
  ASSERT_STATUS(NNLIB_ERR_WRONG_STATE, nnlib_model_step(m, X, T, NULL));
  ts_expect_message("without a loss");
  ASSERT_STATUS(NNLIB_ERR_WRONG_STATE,
                nnlib_model_compile(m, in, 1, 4, NNLIB_LOSS_NONE, NULL, 1));
  ASSERT_STATUS(NNLIB_ERR_WRONG_STATE, nnlib_model_add(m, ts_dense(1, 1, 1)));
  nnlib_tensor_free(X);
  nnlib_tensor_free(T);
  nnlib_model_free(m);
}

static void test_bad_batches(void **s) {
  (void)s;
  nnlib_optimizer *opt;
  ASSERT_OK(nnlib_sgd_create(&opt, 0.1f, 0, 0, 0));
  nnlib_model *m = ts_model(784, 8, NNLIB_LOSS_MSE, opt, 1, ts_dense(784, 3, 1),
                            NULL);
  nnlib_tensor *X = ts_tensor2(2, 783, NULL), *T = ts_tensor2(2, 3, NULL);
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH, nnlib_model_step(m, X, T, NULL));
  ts_expect_message("input has 783 features per sample, model expects 784");
  nnlib_tensor_free(X);
  X = ts_tensor2(9, 784, NULL);
  nnlib_tensor *T9 = ts_tensor2(9, 3, NULL);
  ASSERT_STATUS(NNLIB_ERR_TOO_LARGE, nnlib_model_step(m, X, T9, NULL));
  ts_expect_message("exceeds the compiled maximum batch of 8");
  /* predict takes any N: it runs in chunks of the maximum batch */
  ASSERT_OK(nnlib_model_predict(m, X, T9));
  nnlib_tensor_free(X);
  X = ts_tensor2(2, 784, NULL);
  nnlib_tensor *T3 = ts_tensor2(3, 3, NULL), *T4 = ts_tensor2(2, 4, NULL);
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH, nnlib_model_step(m, X, T3, NULL));
  ts_expect_message("target has 3 samples, input has 2");
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH, nnlib_model_step(m, X, T4, NULL));
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH, nnlib_model_predict(m, X, T4));
  /* a zero-sample batch cannot even be described */
  float dummy;
  nnlib_tensor *Z = (nnlib_tensor *)1;
  int64_t zero_shape[2] = {0, 784};
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_tensor_wrap(&Z, &dummy, zero_shape, 2));
  nnlib_fit_options fo;
  ASSERT_OK(nnlib_fit_options_init(&fo));
  fo.batch_size = 9;
  ASSERT_STATUS(NNLIB_ERR_TOO_LARGE, nnlib_model_fit(m, X, T, &fo));
  fo.batch_size = -1;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_model_fit(m, X, T, &fo));
  int64_t in[1] = {4};
  nnlib_model *m2;
  ASSERT_OK(nnlib_model_create(&m2));
  ASSERT_OK(nnlib_model_add(m2, ts_dense(4, 1, 1)));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_model_compile(m2, in, 1, 0, NNLIB_LOSS_MSE, NULL, 1));
  ts_expect_message("max_batch");
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_model_compile(m2, in, 1, -5, NNLIB_LOSS_MSE, NULL, 1));
  ASSERT_STATUS(NNLIB_ERR_TOO_LARGE,
                nnlib_model_compile(m2, in, 1, INT64_C(1) << 33, NNLIB_LOSS_MSE,
                                    NULL, 1));
  int64_t neg[1] = {-4};
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_model_compile(m2, neg, 1, 1, NNLIB_LOSS_MSE, NULL, 1));
  nnlib_model_free(m2);
  nnlib_tensor_free(X);
  nnlib_tensor_free(T);
  nnlib_tensor_free(T3);
  nnlib_tensor_free(T4);
  nnlib_tensor_free(T9);
  nnlib_model_free(m);
}

static void test_nan_loss_leaves_weights(void **s) {
  (void)s;
  nnlib_optimizer *opt;
  ASSERT_OK(nnlib_sgd_create(&opt, 0.1f, 0, 0, 0));
  nnlib_model *m = ts_model(2, 1, NNLIB_LOSS_MSE, opt, 1, ts_dense(2, 1, 1), NULL);
  nnlib_tensor *w;
  ASSERT_OK(nnlib_layer_get_param(nnlib_model_get_layer(m, 0), 0, &w, NULL));
  float before[2];
  memcpy(before, nnlib_tensor_get_data(w), sizeof before);
  float x[2] = {NAN, 1.0f}, t[1] = {0.0f};
  nnlib_tensor *X = ts_tensor2(1, 2, x), *T = ts_tensor2(1, 1, t);
  ASSERT_STATUS(NNLIB_ERR_NUMERICAL, nnlib_model_step(m, X, T, NULL));
  assert_memory_equal(nnlib_tensor_get_data(w), before, sizeof before);
  nnlib_tensor_free(X);
  nnlib_tensor_free(T);
  nnlib_model_free(m);
}

/* y = weight * x through dense 1->1 (bias 0), MSE against 0: a step must
 * fail with NNLIB_ERR_NUMERICAL, a message containing `said` and not
 * `unsaid`, and the weight untouched; both with plain SGD (checked before
 * the update fused into backward) and with momentum (checked after it). */
static void expect_loss_refused(float x, float weight, const char *said,
                                const char *unsaid) {
  for (int momentum = 0; momentum <= 1; momentum++) {
    nnlib_optimizer *opt;
    ASSERT_OK(nnlib_sgd_create(&opt, 0.1f, momentum ? 0.9f : 0.0f, 0, 0));
    nnlib_model *m =
        ts_model(1, 1, NNLIB_LOSS_MSE, opt, 1, ts_dense(1, 1, 1), NULL);
    nnlib_tensor *w, *b;
    ASSERT_OK(nnlib_layer_get_param(nnlib_model_get_layer(m, 0), 0, &w, NULL));
    ASSERT_OK(nnlib_layer_get_param(nnlib_model_get_layer(m, 0), 1, &b, NULL));
    nnlib_tensor_get_data(w)[0] = weight;
    nnlib_tensor_get_data(b)[0] = 0.0f;
    float t = 0.0f;
    nnlib_tensor *X = ts_tensor2(1, 1, &x), *T = ts_tensor2(1, 1, &t);
    ASSERT_STATUS(NNLIB_ERR_NUMERICAL, nnlib_model_step(m, X, T, NULL));
    ts_expect_message(said);
    if (strstr(nnlib_last_error_message(), unsaid) != NULL)
      fail_msg("\"%s\" mentions \"%s\"", nnlib_last_error_message(), unsaid);
    assert_true(nnlib_tensor_get_data(w)[0] == weight);
    nnlib_tensor_free(X);
    nnlib_tensor_free(T);
    nnlib_model_free(m);
  }
}

/* The message names what is wrong with the loss: NaN, infinite, or finite
 * (as computed, in double) but too large for the caller's float. */
static void test_loss_message_says_what_is_wrong(void **s) {
  (void)s;
  expect_loss_refused(NAN, 1.0f, "the loss is NaN", "+Inf");
  /* y = 1e47 overflows float: the loss is Inf already */
  expect_loss_refused(1e10f, 1e37f, "the loss is +Inf", "is NaN");
  /* y = 1e37, loss (1e37)^2 = 1e74: finite in double, above FLT_MAX */
  expect_loss_refused(1.0f, 1e37f, "the loss is 1e+74, too large for float32",
                      "NaN");
}

static int stop_after_two(const nnlib_progress *p, void *user) {
  int *calls = user;
  assert_true(isfinite(p->loss) && p->batches == 3 && p->samples == 10);
  return ++*calls >= 2;
}

static void test_callback_cancels(void **s) {
  (void)s;
  nnlib_optimizer *opt;
  ASSERT_OK(nnlib_sgd_create(&opt, 0.1f, 0, 0, 0));
  nnlib_model *m = ts_model(2, 4, NNLIB_LOSS_MSE, opt, 1, ts_dense(2, 1, 1), NULL);
  nnlib_tensor *X = ts_tensor2(10, 2, NULL), *T = ts_tensor2(10, 1, NULL);
  int calls = 0;
  nnlib_fit_options fo;
  ASSERT_OK(nnlib_fit_options_init(&fo));
  fo.epochs = 3;
  fo.progress = stop_after_two;
  fo.user = &calls;
  ASSERT_STATUS(NNLIB_ERR_CANCELLED, nnlib_model_fit(m, X, T, &fo));
  assert_int_equal(calls, 2);
  nnlib_tensor_free(X);
  nnlib_tensor_free(T);
  nnlib_model_free(m);
}

/* Fails every allocation in turn while building, compiling and training a
 * model: each run returns OUT_OF_MEMORY or succeeds, and nothing leaks. */
static int build_and_train(void) {
  nnlib_model *m = NULL;
  nnlib_layer *l;
  nnlib_optimizer *opt;
  int64_t in[1] = {6};
  nnlib_tensor *X = NULL, *T = NULL;
  int64_t xs[2] = {5, 6}, ts[2] = {5, 2};
  nnlib_status st = nnlib_model_create(&m);
  if (st == NNLIB_OK && (st = nnlib_dense_create(&l, 6, 8, 1)) == NNLIB_OK)
    st = nnlib_model_add(m, l);
  if (st == NNLIB_OK && (st = nnlib_activation_create(&l, NNLIB_ACT_TANH, 0)) == NNLIB_OK)
    st = nnlib_model_add(m, l);
  if (st == NNLIB_OK && (st = nnlib_dense_create(&l, 0, 2, 1)) == NNLIB_OK)
    st = nnlib_model_add(m, l);
  nnlib_optimizer_options o;
  nnlib_optimizer_options_init(&o, NNLIB_OPT_ADAM);
  if (st == NNLIB_OK && (st = nnlib_optimizer_create(&opt, &o)) == NNLIB_OK)
    st = nnlib_model_compile(m, in, 1, 5, NNLIB_LOSS_SOFTMAX_CE, opt, 3);
  if (st == NNLIB_OK)
    st = nnlib_tensor_create(&X, xs, 2);
  if (st == NNLIB_OK)
    st = nnlib_tensor_create(&T, ts, 2);
  if (st == NNLIB_OK)
    st = nnlib_model_fit(m, X, T, NULL);
  nnlib_tensor_free(X);
  nnlib_tensor_free(T);
  nnlib_model_free(m);
  return st;
}

static void test_oom_injection(void **s) {
  (void)s;
  ts_alloc_stats st = {0};
  ts_alloc_install(&st);
  assert_int_equal(build_and_train(), NNLIB_OK);
  long total = st.allocs;
  assert_int_equal(st.live, 0);
  ts_alloc_uninstall();
  for (long fail = 1; fail <= total; fail++) {
    st.fail_at = fail;
    ts_alloc_install(&st);
    int rc = build_and_train();
    if (rc != NNLIB_ERR_OUT_OF_MEMORY)
      fail_msg("failing allocation %ld of %ld gave status %d", fail, total, rc);
    assert_int_equal(st.live, 0);
    ts_alloc_uninstall();
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_status_strings),
      cmocka_unit_test(test_null_handles),
      cmocka_unit_test(test_negative_and_zero_sizes),
      cmocka_unit_test(test_shape_mismatch_at_compile),
      cmocka_unit_test(test_wrong_state),
      cmocka_unit_test(test_bad_batches),
      cmocka_unit_test(test_nan_loss_leaves_weights),
      cmocka_unit_test(test_loss_message_says_what_is_wrong),
      cmocka_unit_test(test_callback_cancels),
      cmocka_unit_test(test_oom_injection),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
