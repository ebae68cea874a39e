/* The passes around the convolutions' GEMMs (lowering, the output pass,
 * batchnorm, pooling) split over nnlib's threads: a convolutional model
 * gives the same bits at 1, 2 and 3 threads, in predictions (the folded
 * convolution + batchnorm + ReLU), in
 * training steps (Adam, and plain SGD folded into backward), in every
 * parameter gradient and in the gradient of the input (col2im of the first
 * layer), with batchnorm+ReLU fused in training and 2x2 pools folded into
 * the convolutions in predictions. The models are large enough that each
 * pass is cut into parts at 2 and 3 threads. A convolution's chunks and
 * the parts of the batch whose dW it sums apart do not depend on the
 * thread count, only which thread runs them: the first convolutions (one
 * input channel, one sample per chunk) run their 24 chunks as 8 parts on
 * 1, 2 and 3 lanes; the larger ones lower the batch whole.
 *
 * OpenBLAS's own results depend on its thread count for some shapes (a
 * dense layer [24, 6272] x [6272, 32] differs in the last bits between 1
 * and 2 threads), so this executable links support/fixed_order_sgemm.c:
 * what is left to differ is nnlib's own passes. */
#include "test_support.h"

#include <stdlib.h>
#include <string.h>

/* The CNN of examples/fashion_cnn.c, half its channels, a smaller dense
 * layer */
#define FASHION                                                                \
  "conv:16x3x3:p1,batchnorm,relu,maxpool:2,conv:32x3x3:p1,batchnorm,relu,"     \
  "maxpool:2,flatten,dense:32,relu,dropout:0.3,dense:10"
/* Strided lowering, a 2x2 pool over an odd size, overlapping and padded
 * min windows, an average pool, a convolution without a batchnorm */
#define ODD                                                                    \
  "conv:40x3x3:s2:p1,batchnorm,relu,maxpool:2,minpool:3:s1:p1,"                \
  "conv:16x3x3:p1:nobias,batchnorm,relu,avgpool:2,conv:8x3x3:p1,relu,"        \
  "flatten,dense:10"

/* 2x2 pools folded into the convolution's output pass in predictions
 * after an activation other than ReLU (a min pool) and after a
 * batchnorm+ReLU (fused in training), over an odd map; the rows of 15
 * windows take the AVX-512 selection where the CPU has it */
#define POOLS                                                                  \
  "conv:12x3x3:p1,sigmoid,minpool:2,conv:16x3x3:p1,batchnorm,relu,"            \
  "maxpool:2,flatten,dense:10"

enum { BATCH = 24, STEPS = 3, OUT = 10 };

typedef struct net {
  const char *spec;
  int64_t shape[3];
  nnlib_optimizer_kind optim;
} net;

/* What one thread count produced: everything compared bit for bit. */
typedef struct outcome {
  float *predictions, *forward, *params, *grads, *input_grad;
  int64_t params_count, input_floats;
} outcome;

static nnlib_model *compiled(const net *d) {
  nnlib_optimizer_options o;
  nnlib_optimizer *opt = NULL;
  ASSERT_OK(nnlib_optimizer_options_init(&o, d->optim));
  ASSERT_OK(nnlib_optimizer_create(&opt, &o));
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, d->spec));
  ASSERT_OK(nnlib_model_compile(m, d->shape, 3, BATCH, NNLIB_LOSS_SOFTMAX_CE,
                                opt, 7));
  ASSERT_OK(nnlib_model_set_input_gradients(m, 1));
  return m;
}

static outcome run_at(const net *d, int threads) {
  ASSERT_OK(nnlib_set_num_threads(threads));
  int64_t in = d->shape[0] * d->shape[1] * d->shape[2];
  nnlib_tensor *x = ts_tensor2(BATCH, in, NULL), *t = NULL;
  nnlib_tensor *y = ts_tensor2(BATCH, OUT, NULL);
  int64_t n = BATCH;
  ASSERT_OK(nnlib_tensor_create(&t, &n, 1));
  uint32_t seed = 5;
  ts_fill_uniform(nnlib_tensor_get_data(x), BATCH * in, -1, 1, &seed);
  for (int64_t i = 0; i < BATCH; i++)
    nnlib_tensor_get_data(t)[i] = (float)(i * 7 % OUT);
  nnlib_model *m = compiled(d);
  float loss;
  for (int s = 0; s < STEPS; s++)
    ASSERT_OK(nnlib_model_step(m, x, t, &loss));
  outcome r;
  ASSERT_OK(nnlib_model_predict(m, x, y));
  r.predictions = ts_copy_floats(nnlib_tensor_get_data(y), BATCH * OUT);
  const nnlib_tensor *out, *dx;
  ASSERT_OK(nnlib_model_forward(m, x, &out));
  r.forward = ts_copy_floats(nnlib_tensor_get_data_const(out), BATCH * OUT);
  ASSERT_OK(nnlib_model_backward(m, x, t, &loss));
  ASSERT_OK(nnlib_model_get_input_gradient(m, 0, &dx));
  r.input_floats = BATCH * in;
  r.input_grad =
      ts_copy_floats(nnlib_tensor_get_data_const(dx), r.input_floats);
  float *params, *grads;
  ASSERT_OK(nnlib_model_get_flat_params(m, &params, &grads, &r.params_count));
  r.params = ts_copy_floats(params, r.params_count);
  r.grads = ts_copy_floats(grads, r.params_count);
  nnlib_model_free(m);
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
  nnlib_tensor_free(y);
  return r;
}

static void free_outcome(outcome *r) {
  free(r->predictions);
  free(r->forward);
  free(r->params);
  free(r->grads);
  free(r->input_grad);
}

static void assert_same_bits(const float *a, const float *b, int64_t n,
                             const char *what, int threads) {
  if (memcmp(a, b, (size_t)n * sizeof(float)) == 0)
    return;
  int64_t i = 0;
  while (memcmp(&a[i], &b[i], sizeof(float)) == 0)
    i++;
  fail_msg("%s at %d threads: element %lld is %.9g, at 1 thread %.9g", what,
           threads, (long long)i, (double)b[i], (double)a[i]);
}

static void check_net(const net *d) {
  int before = nnlib_get_num_threads();
  outcome one = run_at(d, 1);
  for (int threads = 2; threads <= 3; threads++) {
    outcome r = run_at(d, threads);
    assert_int_equal(r.params_count, one.params_count);
    assert_same_bits(one.predictions, r.predictions, BATCH * OUT,
                     "predictions", threads);
    assert_same_bits(one.forward, r.forward, BATCH * OUT, "forward output",
                     threads);
    assert_same_bits(one.params, r.params, one.params_count,
                     "parameters after the steps", threads);
    assert_same_bits(one.grads, r.grads, one.params_count, "gradients",
                     threads);
    assert_same_bits(one.input_grad, r.input_grad, one.input_floats,
                     "input gradient", threads);
    free_outcome(&r);
  }
  free_outcome(&one);
  ASSERT_OK(nnlib_set_num_threads(before));
}

static void fashion_cnn_adam(void **state) {
  (void)state;
  net d = {FASHION, {1, 28, 28}, NNLIB_OPT_ADAM};
  check_net(&d);
}

static void odd_windows_sgd(void **state) {
  (void)state;
  net d = {ODD, {3, 41, 41}, NNLIB_OPT_SGD};
  check_net(&d);
}

static void folded_pools_adam(void **state) {
  (void)state;
  net d = {POOLS, {2, 30, 30}, NNLIB_OPT_ADAM};
  check_net(&d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(fashion_cnn_adam),
      cmocka_unit_test(odd_windows_sgd),
      cmocka_unit_test(folded_pools_adam),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
