/* The 1.0 names that 1.3.0 deprecated (issue 15, item 8) keep working,
 * each exactly as its replacement: nnlib_optimizer_step as
 * nnlib_model_apply_gradients, nnlib_layer_get_param_count as
 * nnlib_layer_get_param_tensor_count, nnlib_model_save_buffer as
 * nnlib_model_save_to_buffer and nnlib_dataset_load as
 * nnlib_dataset_load_split (the same results, the same bytes, the same
 * statuses). That the compiler warns about them is checked by the
 * header_deprecated_* tests. */
#define NNLIB_NO_DEPRECATION_WARNINGS /* this file calls them on purpose */
#include "test_support.h"

#include <stdlib.h>
#include <string.h>

enum { IN = 3, OUT = 2, N = 4 };

static nnlib_model *make_model(void) {
  nnlib_optimizer *opt = NULL;
  ASSERT_OK(nnlib_sgd_create(&opt, 0.1f, 0.9f, 0, 0.0f));
  return ts_model(IN, N, NNLIB_LOSS_MSE, opt, 3, ts_dense(IN, 5, 1),
                  ts_act(NNLIB_ACT_RELU, 0), ts_dense(5, OUT, 0), NULL);
}

static void test_optimizer_step(void **s) {
  (void)s;
  nnlib_tensor *x = ts_tensor2(N, IN, NULL), *t = ts_tensor2(N, OUT, NULL);
  uint32_t state = 5;
  ts_fill_uniform(nnlib_tensor_get_data(x), N * IN, -1, 1, &state);
  ts_fill_uniform(nnlib_tensor_get_data(t), N * OUT, -1, 1, &state);
  nnlib_model *by_old = make_model(), *by_new = make_model();
  for (int step = 0; step < 3; step++) {
    ASSERT_OK(nnlib_model_backward(by_old, x, t, NULL));
    ASSERT_OK(nnlib_optimizer_step(by_old));
    ASSERT_OK(nnlib_model_backward(by_new, x, t, NULL));
    ASSERT_OK(nnlib_model_apply_gradients(by_new));
  }
  float *po, *pn;
  int64_t count_old = 0, count_new = -1;
  ASSERT_OK(nnlib_model_get_flat_params(by_old, &po, NULL, &count_old));
  ASSERT_OK(nnlib_model_get_flat_params(by_new, &pn, NULL, &count_new));
  assert_int_equal(count_old, count_new);
  assert_memory_equal(po, pn, (size_t)count_old * sizeof(float));
  assert_int_equal(
      nnlib_optimizer_get_step_count(nnlib_model_get_optimizer(by_old)), 3);
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_optimizer_step(NULL));
  nnlib_model *bare = NULL;
  ASSERT_OK(nnlib_model_create(&bare));
  ASSERT_STATUS(NNLIB_ERR_WRONG_STATE, nnlib_optimizer_step(bare));
  nnlib_model_free(bare);
  nnlib_model_free(by_old);
  nnlib_model_free(by_new);
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
}

static void test_param_count(void **s) {
  (void)s;
  nnlib_model *m = make_model();
  const size_t tensors[3] = {2, 0, 1}; /* weight+bias, none, weight */
  for (size_t i = 0; i < 3; i++) {
    nnlib_layer *l = nnlib_model_get_layer(m, i);
    assert_int_equal(nnlib_layer_get_param_count(l), tensors[i]);
    assert_int_equal(nnlib_layer_get_param_tensor_count(l), tensors[i]);
  }
  assert_int_equal(nnlib_layer_get_param_count(NULL), 0);
  nnlib_model_free(m);
}

static void test_save_buffer(void **s) {
  (void)s;
  nnlib_model *m = make_model();
  void *by_old = NULL, *by_new = NULL;
  size_t old_size = 0, new_size = 0;
  ASSERT_OK(
      nnlib_model_save_buffer(m, NNLIB_SAVE_OPTIMIZER, &by_old, &old_size));
  ASSERT_OK(nnlib_model_save_to_buffer(&by_new, &new_size, m,
                                       NNLIB_SAVE_OPTIMIZER));
  assert_int_equal(old_size, new_size);
  assert_memory_equal(by_old, by_new, old_size);
  nnlib_free(by_old);
  nnlib_free(by_new);
  by_old = &old_size; /* set to NULL on failure */
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_model_save_buffer(m, 4u, &by_old, &old_size));
  assert_null(by_old);
  nnlib_model_free(m);
}

static void test_dataset_load(void **s) {
  (void)s;
  nnlib_tensor *x = (nnlib_tensor *)&x, *y = (nnlib_tensor *)&y;
  ASSERT_STATUS(NNLIB_ERR_IO, nnlib_dataset_load("/nonexistent/nnlib-data",
                                                 NNLIB_SPLIT_TEST, 0, 0, &x,
                                                 &y));
  ts_expect_message("t10k-images-idx3-ubyte");
  assert_null(x);
  assert_null(y);
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_dataset_load(NULL, (nnlib_split)9, 0, 0, &x, &y));
  /* with the data set installed, both calls read the same tensors */
  nnlib_tensor *x2 = NULL, *y2 = NULL;
  nnlib_status st = nnlib_dataset_load(NULL, NNLIB_SPLIT_TEST, 5, 1, &x, &y);
  if (st == NNLIB_ERR_IO) {
    skip(); /* no data set on this machine (dataset-fashion-mnist) */
  }
  ASSERT_OK(st);
  ASSERT_OK(nnlib_dataset_load_split(&x2, &y2, NULL, NNLIB_SPLIT_TEST, 5, 1));
  assert_int_equal(nnlib_tensor_get_size(x), nnlib_tensor_get_size(x2));
  assert_int_equal(nnlib_tensor_get_size(y), 5 * 10);
  assert_memory_equal(nnlib_tensor_get_data(x), nnlib_tensor_get_data(x2),
                      (size_t)nnlib_tensor_get_size(x) * sizeof(float));
  assert_memory_equal(nnlib_tensor_get_data(y), nnlib_tensor_get_data(y2),
                      (size_t)nnlib_tensor_get_size(y) * sizeof(float));
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  nnlib_tensor_free(x2);
  nnlib_tensor_free(y2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_optimizer_step),
      cmocka_unit_test(test_param_count),
      cmocka_unit_test(test_save_buffer),
      cmocka_unit_test(test_dataset_load),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
