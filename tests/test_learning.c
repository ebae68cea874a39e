/* Learning behaviour: the perceptron rule learns the linearly separable
 * gates and cannot learn XOR; a hidden layer can. Parameter counts and
 * bit-identical determinism from a seed. */
#include "test_support.h"

#include <math.h>
#include <string.h>

static const float x2[8] = {0, 0, 0, 1, 1, 0, 1, 1};

/* Trains dense(in,1)+step with MSE + SGD one sample at a time; returns the
 * number of the n samples it then classifies correctly. */
static int perceptron(int in, int n, const float *x, const float *t,
                      uint64_t seed, int epochs) {
  nnlib_optimizer *opt;
  ASSERT_OK(nnlib_sgd_create(&opt, 0.1f, 0, 0, 0));
  nnlib_model *m = ts_model(in, 1, NNLIB_LOSS_MSE, opt, seed,
                            ts_dense(in, 1, 1), ts_act(NNLIB_ACT_STEP, 0), NULL);
  nnlib_tensor *X = ts_tensor2(n, in, x), *T = ts_tensor2(n, 1, t);
  nnlib_tensor *Y = ts_tensor2(n, 1, NULL);
  nnlib_fit_options fo;
  ASSERT_OK(nnlib_fit_options_init(&fo));
  fo.epochs = epochs;
  fo.batch_size = 1;
  ASSERT_OK(nnlib_model_fit(m, X, T, &fo));
  ASSERT_OK(nnlib_model_predict(m, X, Y));
  int right = 0;
  for (int i = 0; i < n; i++) {
    float y = nnlib_tensor_get_data(Y)[i];
    assert_true(y == 0.0f || y == 1.0f); /* a step unit outputs 0 or 1 */
    right += y == t[i];
  }
  float acc;
  ASSERT_OK(nnlib_model_evaluate(m, X, T, NULL, &acc));
  ASSERT_NEAR(acc, (double)right / n, 1e-7);
  nnlib_tensor_free(X);
  nnlib_tensor_free(T);
  nnlib_tensor_free(Y);
  nnlib_model_free(m);
  return right;
}

static void test_perceptron_learns_and_or_not(void **s) {
  (void)s;
  const float and_t[4] = {0, 0, 0, 1}, or_t[4] = {0, 1, 1, 1};
  const float x1[2] = {0, 1}, not_t[2] = {1, 0};
  for (uint64_t seed = 1; seed <= 5; seed++) {
    assert_int_equal(perceptron(2, 4, x2, and_t, seed, 100), 4);
    assert_int_equal(perceptron(2, 4, x2, or_t, seed, 100), 4);
    assert_int_equal(perceptron(1, 2, x1, not_t, seed, 100), 2);
  }
}

static void test_perceptron_cannot_learn_xor(void **s) {
  (void)s;
  const float xor_t[4] = {0, 1, 1, 0};
  /* no line separates XOR, so no seed and no amount of training helps */
  for (uint64_t seed = 1; seed <= 10; seed++)
    assert_true(perceptron(2, 4, x2, xor_t, seed, 300) < 4);
}

static void test_hidden_layer_learns_xor(void **s) {
  (void)s;
  const float xor_t[4] = {0, 1, 1, 0};
  nnlib_optimizer *opt;
  ASSERT_OK(nnlib_sgd_create(&opt, 0.5f, 0.9f, 0, 0));
  nnlib_model *m = ts_model(2, 4, NNLIB_LOSS_MSE, opt, 7, ts_dense(2, 4, 1),
                            ts_act(NNLIB_ACT_SIGMOID, 0), ts_dense(4, 1, 1),
                            ts_act(NNLIB_ACT_SIGMOID, 0), NULL);
  nnlib_tensor *X = ts_tensor2(4, 2, x2), *T = ts_tensor2(4, 1, xor_t);
  nnlib_fit_options fo;
  ASSERT_OK(nnlib_fit_options_init(&fo));
  fo.epochs = 2000;
  fo.shuffle = 0;
  ASSERT_OK(nnlib_model_fit(m, X, T, &fo));
  float loss, acc;
  ASSERT_OK(nnlib_model_evaluate(m, X, T, &loss, &acc));
  assert_true(acc == 1.0f);
  assert_true(loss < 0.01f);
  nnlib_tensor_free(X);
  nnlib_tensor_free(T);
  nnlib_model_free(m);
}

static void test_seed_network_param_count(void **s) {
  (void)s;
  /* the notes' 784-16-10: 784*16 + 16 + 16*10 + 10 = 12730 */
  nnlib_model *m = ts_model(784, 32, NNLIB_LOSS_NONE, NULL, 1,
                            ts_dense(784, 16, 1), ts_act(NNLIB_ACT_SIGMOID, 0),
                            ts_dense(16, 10, 1), ts_act(NNLIB_ACT_SIGMOID, 0),
                            NULL);
  int64_t count = 0;
  ASSERT_OK(nnlib_model_get_param_count(m, &count));
  assert_int_equal(count, 12730);
  nnlib_model_free(m);
}

/* Trains a small ReLU net with momentum and shuffling; copies its weights. */
static void train_copy(uint64_t seed, float *out, int64_t *count) {
  nnlib_optimizer *opt;
  ASSERT_OK(nnlib_sgd_create(&opt, 0.05f, 0.9f, 1, 1e-4f));
  nnlib_model *m = ts_model(5, 8, NNLIB_LOSS_SOFTMAX_CE, opt, seed,
                            ts_dense(5, 16, 1), ts_act(NNLIB_ACT_RELU, 0),
                            ts_dense(16, 3, 1), NULL);
  float x[50 * 5], t[50];
  uint32_t st = 17;
  ts_fill_uniform(x, 50 * 5, -1, 1, &st);
  for (int i = 0; i < 50; i++)
    t[i] = (float)(i % 3);
  nnlib_tensor *X = ts_tensor2(50, 5, x), *T = ts_tensor2(50, 1, t);
  nnlib_fit_options fo;
  ASSERT_OK(nnlib_fit_options_init(&fo));
  fo.epochs = 5;
  ASSERT_OK(nnlib_model_fit(m, X, T, &fo));
  ASSERT_OK(nnlib_model_get_param_count(m, count));
  int64_t off = 0;
  for (size_t li = 0; li < nnlib_model_get_layer_count(m); li++) {
    nnlib_layer *l = nnlib_model_get_layer(m, li);
    for (size_t p = 0; p < nnlib_layer_get_param_tensor_count(l); p++) {
      nnlib_tensor *v;
      ASSERT_OK(nnlib_layer_get_param(l, p, &v, NULL));
      memcpy(out + off, nnlib_tensor_get_data(v),
             sizeof(float) * (size_t)nnlib_tensor_get_size(v));
      off += nnlib_tensor_get_size(v);
    }
  }
  assert_int_equal(off, *count);
  nnlib_tensor_free(X);
  nnlib_tensor_free(T);
  nnlib_model_free(m);
}

static void test_same_seed_bit_identical(void **s) {
  (void)s;
  static float a[200], b[200], c[200];
  int64_t na, nb, nc;
  train_copy(123, a, &na);
  train_copy(123, b, &nb);
  train_copy(124, c, &nc);
  assert_int_equal(na, 5 * 16 + 16 + 16 * 3 + 3);
  assert_memory_equal(a, b, sizeof(float) * (size_t)na);
  assert_memory_not_equal(a, c, sizeof(float) * (size_t)na);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_perceptron_learns_and_or_not),
      cmocka_unit_test(test_perceptron_cannot_learn_xor),
      cmocka_unit_test(test_hidden_layer_learns_xor),
      cmocka_unit_test(test_seed_network_param_count),
      cmocka_unit_test(test_same_seed_bit_identical),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
