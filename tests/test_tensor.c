/* Tensors: shapes, owned and wrapped memory, fill, copy, reshape, and every
 * bad argument with its status. */
#include "test_support.h"

#include <string.h>

static void test_create_shape_and_zero_fill(void **s) {
  (void)s;
  int64_t shape[4] = {2, 3, 4, 5};
  nnlib_tensor *t;
  ASSERT_OK(nnlib_tensor_create(&t, shape, 4));
  assert_int_equal(nnlib_tensor_get_rank(t), 4);
  assert_int_equal(nnlib_tensor_get_size(t), 120);
  assert_int_equal(nnlib_tensor_get_dim(t, 2), 4);
  assert_int_equal(nnlib_tensor_get_dim(t, 7), 0);
  assert_memory_equal(nnlib_tensor_get_shape(t), shape, sizeof shape);
  const float *d = nnlib_tensor_get_data_const(t);
  assert_true(((uintptr_t)d & 63) == 0); /* 64-byte aligned */
  for (int i = 0; i < 120; i++)
    assert_true(d[i] == 0.0f);
  nnlib_tensor_free(t);
  nnlib_tensor_free(NULL);
}

static void test_wrap_is_zero_copy(void **s) {
  (void)s;
  float buf[6] = {1, 2, 3, 4, 5, 6};
  int64_t shape[2] = {2, 3};
  nnlib_tensor *t;
  ASSERT_OK(nnlib_tensor_wrap(&t, buf, shape, 2));
  assert_ptr_equal(nnlib_tensor_get_data(t), buf);
  ASSERT_OK(nnlib_tensor_fill(t, 7.0f));
  assert_true(buf[5] == 7.0f);
  int64_t flat[1] = {6};
  ASSERT_OK(nnlib_tensor_set_shape(t, flat, 1));
  assert_int_equal(nnlib_tensor_get_rank(t), 1);
  assert_ptr_equal(nnlib_tensor_get_data(t), buf);
  nnlib_tensor_free(t); /* must not free buf (stack memory) */
}

static void test_copy(void **s) {
  (void)s;
  float a[4] = {1, 2, 3, 4};
  nnlib_tensor *src = ts_tensor2(2, 2, a), *dst = ts_tensor2(4, 1, NULL);
  nnlib_tensor *bad = ts_tensor2(3, 1, NULL);
  ASSERT_OK(nnlib_tensor_copy(dst, src));
  assert_memory_equal(nnlib_tensor_get_data(dst), a, sizeof a);
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH, nnlib_tensor_copy(bad, src));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_tensor_copy(NULL, src));
  nnlib_tensor_free(src);
  nnlib_tensor_free(dst);
  nnlib_tensor_free(bad);
}

static void test_bad_shapes(void **s) {
  (void)s;
  nnlib_tensor *t = (nnlib_tensor *)1;
  int64_t zero[2] = {0, 3}, neg[2] = {2, -1}, ok[2] = {2, 2};
  int64_t huge[3] = {INT64_C(1) << 40, INT64_C(1) << 40, 2};
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_tensor_create(&t, zero, 2));
  assert_null(t);
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_tensor_create(&t, neg, 2));
  ASSERT_STATUS(NNLIB_ERR_TOO_LARGE, nnlib_tensor_create(&t, huge, 3));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_tensor_create(&t, ok, 0));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_tensor_create(&t, ok, NNLIB_MAX_RANK + 1));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_tensor_create(&t, NULL, 2));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_tensor_create(NULL, ok, 2));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_tensor_wrap(&t, NULL, ok, 2));
  ASSERT_OK(nnlib_tensor_create(&t, ok, 2));
  int64_t five[1] = {5};
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH, nnlib_tensor_set_shape(t, five, 1));
  nnlib_tensor_free(t);
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_tensor_fill(NULL, 1.0f));
  assert_int_equal(nnlib_tensor_get_size(NULL), 0);
  assert_null(nnlib_tensor_get_data(NULL));
}

static void test_out_of_memory_is_reported_and_clean(void **s) {
  (void)s;
  ts_alloc_stats st;
  int64_t shape[2] = {10, 10};
  for (long fail = 1; fail <= 2; fail++) {
    st.fail_at = fail;
    ts_alloc_install(&st);
    nnlib_tensor *t = (nnlib_tensor *)1;
    ASSERT_STATUS(NNLIB_ERR_OUT_OF_MEMORY, nnlib_tensor_create(&t, shape, 2));
    assert_null(t);
    assert_int_equal(st.live, 0);
    ts_alloc_uninstall();
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_create_shape_and_zero_fill),
      cmocka_unit_test(test_wrap_is_zero_copy),
      cmocka_unit_test(test_copy),
      cmocka_unit_test(test_bad_shapes),
      cmocka_unit_test(test_out_of_memory_is_reported_and_clean),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
