/* test_profile.c - the per-layer profile: exact GEMM FLOP counts per layer
 * and pass, call counts, fused layers, on/off and reset, struct_size. No
 * timing assertions beyond "non-negative" (the machine is shared). */
#include "test_support.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

enum { IN = 12, HIDDEN = 9, OUT = 5, BATCH = 6 };

typedef struct fixture {
  nnlib_model *model;
  nnlib_tensor *x, *t, *y;
} fixture;

/* dense(12->9) relu dense(9->5) under MSE with plain SGD */
static fixture make(void) {
  fixture f;
  nnlib_optimizer *opt = NULL;
  ASSERT_OK(nnlib_sgd_create(&opt, 0.01f, 0.0f, 0, 0.0f));
  f.model = ts_model(IN, BATCH, NNLIB_LOSS_MSE, opt, 5, ts_dense(IN, HIDDEN, 1),
                     ts_act(NNLIB_ACT_RELU, 0.0f), ts_dense(HIDDEN, OUT, 1),
                     NULL);
  uint32_t seed = 3;
  f.x = ts_tensor2(BATCH, IN, NULL);
  ts_fill_uniform(nnlib_tensor_get_data(f.x), BATCH * IN, -1.0f, 1.0f, &seed);
  f.t = ts_tensor2(BATCH, OUT, NULL);
  f.y = ts_tensor2(BATCH, OUT, NULL);
  return f;
}

static void destroy(fixture *f) {
  nnlib_tensor_free(f->x);
  nnlib_tensor_free(f->t);
  nnlib_tensor_free(f->y);
  nnlib_model_free(f->model);
}

static nnlib_layer_profile get(const fixture *f, size_t i) {
  nnlib_layer_profile p;
  memset(&p, 0, sizeof p);
  p.struct_size = sizeof p;
  ASSERT_OK(nnlib_model_get_layer_profile(f->model, i, &p));
  return p;
}

static void test_counts_and_flops(void **state) {
  (void)state;
  fixture f = make();
  ASSERT_OK(nnlib_model_set_profiling(f.model, 1));
  for (int i = 0; i < 3; i++)
    ASSERT_OK(nnlib_model_step(f.model, f.x, f.t, NULL));
  ASSERT_OK(nnlib_model_predict(f.model, f.x, f.y));
  nnlib_layer_profile d0 = get(&f, 0), act = get(&f, 1), d1 = get(&f, 2);
  /* forward: 2 N out in per call; 3 steps + 1 prediction */
  assert_int_equal(d0.forward_calls, 4);
  assert_int_equal(d0.backward_calls, 3);
  ASSERT_NEAR(d0.forward_flops, 4.0 * 2 * BATCH * HIDDEN * IN, 0.0);
  /* the first layer computes no input gradient: only dW = dZ^T X */
  ASSERT_NEAR(d0.backward_flops, 3.0 * 2 * HIDDEN * IN * BATCH, 0.0);
  ASSERT_NEAR(d1.forward_flops, 4.0 * 2 * BATCH * OUT * HIDDEN, 0.0);
  /* dX = dZ W and dW = dZ^T X */
  ASSERT_NEAR(d1.backward_flops, 3.0 * 4 * BATCH * OUT * HIDDEN, 0.0);
  assert_int_equal(d0.fused, 0);
  assert_int_equal(act.fused, 1);
  assert_int_equal(act.forward_calls, 0);
  assert_true(d0.forward_seconds >= 0.0 && d1.backward_seconds >= 0.0);
  assert_true(d0.forward_gflops >= 0.0 && isfinite(d0.forward_gflops));
  destroy(&f);
}

static void test_off_and_reset(void **state) {
  (void)state;
  fixture f = make();
  ASSERT_OK(nnlib_model_step(f.model, f.x, f.t, NULL)); /* off by default */
  assert_int_equal(get(&f, 0).forward_calls, 0);
  ASSERT_OK(nnlib_model_set_profiling(f.model, 1));
  ASSERT_OK(nnlib_model_step(f.model, f.x, f.t, NULL));
  ASSERT_OK(nnlib_model_set_profiling(f.model, 0));
  ASSERT_OK(nnlib_model_step(f.model, f.x, f.t, NULL));
  assert_int_equal(get(&f, 2).backward_calls, 1); /* kept, not counting */
  ASSERT_OK(nnlib_model_set_profiling(f.model, 1)); /* clears */
  assert_int_equal(get(&f, 2).backward_calls, 0);
  ASSERT_NEAR(get(&f, 2).backward_flops, 0.0, 0.0);
  destroy(&f);
}

static void test_bad_arguments(void **state) {
  (void)state;
  fixture f = make();
  nnlib_layer_profile p;
  p.struct_size = sizeof p;
  ASSERT_STATUS(NNLIB_ERR_OUT_OF_RANGE,
                nnlib_model_get_layer_profile(f.model, 3, &p));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_model_get_layer_profile(f.model, 0, NULL));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_model_set_profiling(f.model, 2));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_model_set_profiling(NULL, 1));
  p.struct_size = 1;
  ASSERT_STATUS(NNLIB_ERR_STRUCT_SIZE,
                nnlib_model_get_layer_profile(f.model, 0, &p));
  destroy(&f);
}

/* An older, shorter struct gets its own fields and nothing past them. */
static void test_short_struct(void **state) {
  (void)state;
  fixture f = make();
  ASSERT_OK(nnlib_model_set_profiling(f.model, 1));
  ASSERT_OK(nnlib_model_step(f.model, f.x, f.t, NULL));
  nnlib_layer_profile p;
  memset(&p, 0xAB, sizeof p);
  p.struct_size = offsetof(nnlib_layer_profile, forward_flops);
  ASSERT_OK(nnlib_model_get_layer_profile(f.model, 0, &p));
  assert_int_equal(p.struct_size, offsetof(nnlib_layer_profile, forward_flops));
  assert_int_equal(p.forward_calls, 1);
  unsigned char past[sizeof p.forward_flops];
  memcpy(past, &p.forward_flops, sizeof past);
  for (size_t i = 0; i < sizeof past; i++)
    assert_int_equal(past[i], 0xAB);
  destroy(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_counts_and_flops),
      cmocka_unit_test(test_off_and_reset),
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_short_struct),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
