/* The passes between the GEMMs split over the pass pool (issue 17) must
 * not change a bit: GPT-style models (embedding, positional, layernorm,
 * causal and full attention, GELU, residual adds, softmax cross-entropy
 * over [N, T, V]) and optimizers (AdamW, Adam, SGD with momentum and
 * Nesterov, plain SGD, RMSProp) run at 1, 2 and 3 threads and must give
 * the same bytes (memcmp) for: the training-mode output, the loss, every
 * parameter gradient, the parameters after a few optimizer steps, and
 * predictions of the whole batch and of one sample.
 *
 * OpenBLAS's own sgemm does not give the same bits at every thread count
 * (measured: the baseline's outputs differ between 1, 2 and 3 threads), so
 * this executable links support/fixed_order_sgemm.c, a plain loop that
 * sums each product in k order whatever the thread count. What remains
 * thread-dependent is then only nnlib's own passes. The sizes are chosen
 * so that every pass is large enough to split (at least two parts of its
 * minimum grain; most split three ways); the existing reference tests
 * (naive loops, PyTorch) keep checking the values themselves. */
#include "test_support.h"

#include <stdlib.h>
#include <string.h>

enum { STEPS = 3, MAX_THREADS = 3 };

typedef struct config {
  const char *spec;
  int64_t batch, t, vocab;
  nnlib_optimizer_kind optim;
  float momentum;
  int nesterov;
} config;

/* Everything one run produces, as bytes to compare. */
typedef struct outcome {
  float *output, *grads, *params, *predicted, *predicted_one;
  float loss;
  int64_t output_count, param_count;
} outcome;

static void outcome_free(outcome *o) {
  free(o->output);
  free(o->grads);
  free(o->params);
  free(o->predicted);
  free(o->predicted_one);
}

static nnlib_tensor *ids(int64_t n, int64_t t, int64_t vocab,
                         uint32_t seed) {
  int64_t shape[2] = {n, t};
  nnlib_tensor *x = NULL;
  ASSERT_OK(nnlib_tensor_create_int32(&x, shape, 2));
  int32_t *d = nnlib_tensor_get_data_int32(x);
  uint32_t state = seed;
  for (int64_t i = 0; i < n * t; i++) {
    state = state * 1664525u + 1013904223u;
    d[i] = (int32_t)((state >> 8) % (uint32_t)vocab);
  }
  return x;
}

static nnlib_optimizer *optimizer(const config *c) {
  nnlib_optimizer_options o;
  ASSERT_OK(nnlib_optimizer_options_init(&o, c->optim));
  o.learning_rate = 1e-2f;
  o.momentum = c->momentum;
  o.nesterov = c->nesterov;
  nnlib_optimizer *opt = NULL;
  ASSERT_OK(nnlib_optimizer_create(&opt, &o));
  return opt;
}

/* Predictions of x ([n, t] ids) into a new array of n * t * vocab. */
static float *predict(nnlib_model *m, const nnlib_tensor *x, int64_t n,
                      const config *c) {
  int64_t shape[3] = {n, c->t, c->vocab};
  nnlib_tensor *y = NULL;
  ASSERT_OK(nnlib_tensor_create(&y, shape, 3));
  ASSERT_OK(nnlib_model_predict(m, x, y));
  float *out = ts_copy_floats(nnlib_tensor_get_data(y), n * c->t * c->vocab);
  nnlib_tensor_free(y);
  return out;
}

static outcome run(const config *c, int threads) {
  ASSERT_OK(nnlib_set_num_threads(threads));
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, c->spec));
  ASSERT_OK(nnlib_model_compile_graph(m, c->batch, NNLIB_LOSS_SOFTMAX_CE,
                                      optimizer(c), 7));
  nnlib_tensor *x = ids(c->batch, c->t, c->vocab, 11);
  nnlib_tensor *target = ids(c->batch, c->t, c->vocab, 12);
  nnlib_tensor *x_one = ids(1, c->t, c->vocab, 13);
  outcome o = {0};
  const nnlib_tensor *out = NULL;
  ASSERT_OK(nnlib_model_forward(m, x, &out));
  o.output_count = c->batch * c->t * c->vocab;
  o.output = ts_copy_floats(nnlib_tensor_get_data_const(out), o.output_count);
  ASSERT_OK(nnlib_model_backward(m, x, target, &o.loss));
  float *params = NULL, *grads = NULL;
  ASSERT_OK(nnlib_model_get_flat_params(m, &params, &grads, &o.param_count));
  o.grads = ts_copy_floats(grads, o.param_count);
  for (int s = 0; s < STEPS; s++)
    ASSERT_OK(nnlib_model_step(m, x, target, NULL));
  o.params = ts_copy_floats(params, o.param_count);
  o.predicted = predict(m, x, c->batch, c);
  o.predicted_one = predict(m, x_one, 1, c);
  nnlib_tensor_free(x);
  nnlib_tensor_free(target);
  nnlib_tensor_free(x_one);
  nnlib_model_free(m);
  return o;
}

static void assert_same_bytes(const float *a, const float *b, int64_t count,
                              const char *what, int threads) {
  if (memcmp(a, b, (size_t)count * sizeof *a) != 0) {
    int64_t i = 0;
    while (memcmp(&a[i], &b[i], sizeof *a) == 0)
      i++;
    fail_msg("%s at %d threads differs from 1 thread first at %lld: %.9g "
             "vs %.9g",
             what, threads, (long long)i, (double)b[i], (double)a[i]);
  }
}

static void check_config(const config *c) {
  int before = nnlib_get_num_threads();
  outcome one = run(c, 1);
  for (int threads = 2; threads <= MAX_THREADS; threads++) {
    outcome o = run(c, threads);
    assert_int_equal(o.param_count, one.param_count);
    assert_same_bytes(one.output, o.output, one.output_count, "output",
                      threads);
    assert_same_bytes(&one.loss, &o.loss, 1, "loss", threads);
    assert_same_bytes(one.grads, o.grads, one.param_count, "gradient",
                      threads);
    assert_same_bytes(one.params, o.params, one.param_count,
                      "parameters after steps", threads);
    assert_same_bytes(one.predicted, o.predicted, one.output_count,
                      "batch prediction", threads);
    assert_same_bytes(one.predicted_one, o.predicted_one,
                      c->t * c->vocab, "one-sample prediction", threads);
    outcome_free(&o);
  }
  outcome_free(&one);
  ASSERT_OK(nnlib_set_num_threads(before));
}

/* The benchmark's GPT at a smaller size: 1536 rows of 64, GELU over 1536 x
 * 256, 96 causal 64 x 64 score blocks, logits 1536 x 96. */
static void test_causal_gpt_adamw(void **state) {
  (void)state;
  config c = {"input:64,embedding:96:64,positional,"
              "transformer:64:4:causal,transformer:64:4:causal,layernorm,"
              "linear:96",
              24, 64, 96, NNLIB_OPT_ADAMW, 0.0f, 0};
  check_config(&c);
}

/* Odd sizes (rows and columns not multiples of a vector or of a column
 * block), full attention, 3 heads, a wider MLP; Adam. */
static void test_full_attention_odd_sizes_adam(void **state) {
  (void)state;
  config c = {"input:50,embedding:77:48,positional,transformer:48:3:mlp5,"
              "layernorm,linear:77",
              29, 50, 77, NNLIB_OPT_ADAM, 0.0f, 0};
  check_config(&c);
}

static void test_sgd_momentum_nesterov(void **state) {
  (void)state;
  config c = {"input:64,embedding:96:64,positional,transformer:64:4:causal,"
              "layernorm,linear:96",
              24, 64, 96, NNLIB_OPT_SGD, 0.9f, 1};
  check_config(&c);
}

static void test_plain_sgd_and_rmsprop(void **state) {
  (void)state;
  config sgd = {"input:64,embedding:96:64,positional,"
                "transformer:64:4:causal,layernorm,linear:96",
                24, 64, 96, NNLIB_OPT_SGD, 0.0f, 0};
  check_config(&sgd);
  config rms = sgd;
  rms.optim = NNLIB_OPT_RMSPROP;
  rms.momentum = 0.5f;
  check_config(&rms);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_causal_gpt_adamw),
      cmocka_unit_test(test_full_attention_odd_sizes_adam),
      cmocka_unit_test(test_sgd_momentum_nesterov),
      cmocka_unit_test(test_plain_sgd_and_rmsprop),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
