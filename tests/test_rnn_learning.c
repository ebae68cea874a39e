/* A task that needs memory: the adding problem (Hochreiter & Schmidhuber
 * 1997). Each sequence has T = 50 steps of two features: a random number
 * in [0, 1) and a marker that is 1 at exactly two steps, one in each half.
 * The target is the sum of the two marked numbers.
 *
 *   step:     0     1     2    ...   17   ...   41   ...   49
 *   number:  0.71  0.05  0.33  ...  0.62  ...  0.18  ...  0.90
 *   marker:   0     0     0    ...    1   ...    1   ...    0
 *   target:  0.62 + 0.18 = 0.80
 *
 * Always answering the mean (1.0) scores a mean squared error of
 * var(a + b) = 2/12 = 0.167; that is what a model that cannot find the
 * marked numbers is left with.
 *
 * An LSTM reads the sequence step by step and has to keep the first marked
 * number in its cell state until the second arrives: lstm:16 (1280
 * parameters) then dense:1 drops below 0.01 on sequences it never saw.
 * A dense network of about the same size (100 inputs -> 12 ReLU -> 1, 1225
 * parameters) sees all 50 steps at once but has to learn, for every pair
 * of positions separately, to multiply a number by its marker; with 2000
 * training sequences it stays at the level of the mean. */
#include "test_support.h"

#include <stdlib.h>

enum { STEPS = 50, FEATURES = 2, TRAIN = 2000, TEST = 1000, EPOCHS = 20 };

typedef struct data_set {
  nnlib_tensor *x, *y;
} data_set;

/* n sequences [n, STEPS, 2] and their targets [n, 1] */
static data_set adding_problem(int64_t n, uint32_t *seed) {
  data_set d;
  ASSERT_OK(nnlib_tensor_create(&d.x, (int64_t[]){n, STEPS, FEATURES}, 3));
  ASSERT_OK(nnlib_tensor_create(&d.y, (int64_t[]){n, 1}, 2));
  float *x = nnlib_tensor_get_data(d.x), *y = nnlib_tensor_get_data(d.y);
  for (int64_t s = 0; s < n; s++) {
    float *seq = x + s * STEPS * FEATURES, pick[2];
    for (int t = 0; t < STEPS; t++)
      ts_fill_uniform(&seq[t * FEATURES], 1, 0.0f, 1.0f, seed);
    ts_fill_uniform(pick, 2, 0.0f, STEPS / 2, seed);
    int first = (int)pick[0], second = STEPS / 2 + (int)pick[1];
    seq[first * FEATURES + 1] = 1.0f;
    seq[second * FEATURES + 1] = 1.0f;
    y[s] = seq[first * FEATURES] + seq[second * FEATURES];
  }
  return d;
}

static void free_set(data_set *d) {
  nnlib_tensor_free(d->x);
  nnlib_tensor_free(d->y);
}

/* Trains a model from a description with Adam (lr 0.01, batches of 32)
 * and returns its mean squared error on the test set. */
static float train_and_test(const char *spec, const data_set *train,
                            const data_set *test, int64_t *params) {
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, spec));
  nnlib_optimizer_options o;
  ASSERT_OK(nnlib_optimizer_options_init(&o, NNLIB_OPT_ADAM));
  o.learning_rate = 0.01f;
  nnlib_optimizer *opt = NULL;
  ASSERT_OK(nnlib_optimizer_create(&opt, &o));
  int64_t in[2] = {STEPS, FEATURES};
  ASSERT_OK(nnlib_model_compile(m, in, 2, 32, NNLIB_LOSS_MSE, opt, 1));
  ASSERT_OK(nnlib_model_get_param_count(m, params));
  nnlib_fit_options f;
  ASSERT_OK(nnlib_fit_options_init(&f));
  f.epochs = EPOCHS;
  ASSERT_OK(nnlib_model_fit(m, train->x, train->y, &f));
  float mse = -1.0f;
  ASSERT_OK(nnlib_model_evaluate(m, test->x, test->y, &mse, NULL));
  nnlib_model_free(m);
  return mse;
}

static void test_lstm_adds_two_marked_numbers(void **s) {
  (void)s;
  uint32_t seed = 2024;
  data_set train = adding_problem(TRAIN, &seed);
  data_set test = adding_problem(TEST, &seed);
  int64_t lstm_params = 0, dense_params = 0;
  float lstm = train_and_test("lstm:16,last,dense:1", &train, &test,
                              &lstm_params);
  float dense = train_and_test("dense:12,relu,dense:1", &train, &test,
                               &dense_params);
  print_message("  adding problem, T = %d, test MSE (mean-only: 0.167):\n"
                "    lstm:16,last,dense:1   %5lld parameters  %.4f\n"
                "    dense:12,relu,dense:1  %5lld parameters  %.4f\n",
                STEPS, (long long)lstm_params, lstm, (long long)dense_params,
                dense);
  assert_true(lstm < 0.01f);
  assert_true(dense > 0.1f);
  free_set(&train);
  free_set(&test);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lstm_adds_two_marked_numbers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
