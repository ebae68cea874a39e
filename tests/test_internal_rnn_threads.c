/* The recurrent layers give the same bits at 1, 2 and 3 threads: each
 * step's cell passes run over ranges of samples on the pass pool
 * (nnlib__recurrent_pass), and a sample's cell reads and writes only its
 * own rows, so no split may change a result. For rnn (tanh and relu), lstm
 * and gru (both linear_before_reset forms), as the only sequence layer and
 * stacked (the first returning every step, the second its last), the
 * training forward output, the loss, every parameter gradient, the input
 * gradient, the parameters after a few optimizer steps (Adam; and plain
 * SGD, which backward fuses into its weight-gradient GEMMs) and the
 * predictions at the planned and a shorter length are compared bitwise
 * with one thread's.
 *
 * Internal: the grain is lowered so that these small batches split, into
 * a range per thread (odd batch: uneven ranges), or the forward passes in
 * two and the backward ones not. Small, because only the passes promise
 * the same bits on any thread count: OpenBLAS rounds a product it splits
 * over threads (above 2^18 multiply-adds; core/blas.c) differently, so
 * every product here stays below that (at most 96 x 24 x 105), and the
 * batch (21) below the 32 samples of a forward lane of its own
 * (nnlib__recurrent_run_steps), except in the lanes' own test at the end,
 * which asserts what lanes promise instead. */
#include "layers/recurrent.h"
#include "nnlib_internal.h"
#include "test_support.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { STEPS = 5, SHORT_STEPS = 3, FEATURES = 7, OUTPUTS = 5, BATCH = 21 };
enum { TRAIN_STEPS = 3, MAX_THREADS = 3 };

/* Everything one run produces, copied out of the model. */
typedef struct run_result {
  float loss;
  float *forward; /* [BATCH, OUTPUTS], training mode */
  float *grads;   /* every parameter gradient, flat */
  float *dx;      /* [BATCH, STEPS, FEATURES] */
  float *params;  /* after TRAIN_STEPS optimizer steps */
  float *predict; /* [BATCH, OUTPUTS] after the steps */
  float *shorter; /* the same at SHORT_STEPS steps */
  int64_t count;  /* parameters */
} run_result;

static nnlib_tensor *random_tensor(const int64_t *shape, size_t rank,
                                   uint32_t seed) {
  nnlib_tensor *t = NULL;
  ASSERT_OK(nnlib_tensor_create(&t, shape, rank));
  int64_t n = 1;
  for (size_t i = 0; i < rank; i++)
    n *= shape[i];
  ts_fill_uniform(nnlib_tensor_get_data(t), n, -1.0f, 1.0f, &seed);
  return t;
}

static nnlib_model *build(const char *spec, nnlib_optimizer_kind kind) {
  nnlib_model *m = NULL;
  nnlib_optimizer *opt = NULL;
  nnlib_optimizer_options o;
  ASSERT_OK(nnlib_optimizer_options_init(&o, kind));
  o.learning_rate = 0.05f; /* steps that move the weights visibly */
  ASSERT_OK(nnlib_optimizer_create(&opt, &o));
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, spec));
  int64_t in[2] = {STEPS, FEATURES};
  ASSERT_OK(nnlib_model_compile(m, in, 2, BATCH, NNLIB_LOSS_MSE, opt, 11));
  ASSERT_OK(nnlib_model_set_input_gradients(m, 1));
  return m;
}

static float *predicted(nnlib_model *m, int64_t steps) {
  int64_t xs[3] = {BATCH, steps, FEATURES}, ys[2] = {BATCH, OUTPUTS};
  nnlib_tensor *x = random_tensor(xs, 3, 5), *y = NULL;
  ASSERT_OK(nnlib_tensor_create(&y, ys, 2));
  ASSERT_OK(nnlib_model_predict(m, x, y));
  float *v = ts_copy_floats(nnlib_tensor_get_data(y), BATCH * OUTPUTS);
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  return v;
}

static run_result run(const char *spec, nnlib_optimizer_kind kind,
                      int threads) {
  ASSERT_OK(nnlib_set_num_threads(threads));
  nnlib_model *m = build(spec, kind);
  int64_t xs[3] = {BATCH, STEPS, FEATURES}, ts[2] = {BATCH, OUTPUTS};
  nnlib_tensor *x = random_tensor(xs, 3, 1), *target = random_tensor(ts, 2, 2);
  run_result r = {0};
  const nnlib_tensor *out = NULL, *dx = NULL;
  ASSERT_OK(nnlib_model_forward(m, x, &out));
  r.forward = ts_copy_floats(nnlib_tensor_get_data_const(out), BATCH * OUTPUTS);
  ASSERT_OK(nnlib_model_backward(m, x, target, &r.loss));
  float *params = NULL, *grads = NULL;
  ASSERT_OK(nnlib_model_get_flat_params(m, &params, &grads, &r.count));
  r.grads = ts_copy_floats(grads, r.count);
  ASSERT_OK(nnlib_model_get_input_gradient(m, 0, &dx));
  r.dx =
      ts_copy_floats(nnlib_tensor_get_data_const(dx), BATCH * STEPS * FEATURES);
  for (int s = 0; s < TRAIN_STEPS; s++)
    ASSERT_OK(nnlib_model_step(m, x, target, NULL));
  r.params = ts_copy_floats(params, r.count);
  r.predict = predicted(m, STEPS);
  r.shorter = predicted(m, SHORT_STEPS);
  nnlib_tensor_free(x);
  nnlib_tensor_free(target);
  nnlib_model_free(m);
  ASSERT_OK(nnlib_set_num_threads(1));
  return r;
}

static void free_result(run_result *r) {
  free(r->forward);
  free(r->grads);
  free(r->dx);
  free(r->params);
  free(r->predict);
  free(r->shorter);
}

/* The weights did change, so comparing them after the steps says
 * something. */
static void assert_trained(const run_result *r, const char *spec,
                           nnlib_optimizer_kind kind) {
  ASSERT_OK(nnlib_set_num_threads(1));
  nnlib_model *m = build(spec, kind);
  float *initial = NULL;
  int64_t count = 0;
  ASSERT_OK(nnlib_model_get_flat_params(m, &initial, NULL, &count));
  assert_int_equal(count, r->count);
  assert_true(memcmp(initial, r->params, (size_t)count * sizeof(float)) != 0);
  nnlib_model_free(m);
}

static void assert_same_bits(const float *a, const float *b, int64_t n,
                             const char *what, const char *spec, int threads) {
  if (memcmp(a, b, (size_t)n * sizeof(float)) == 0)
    return;
  int64_t i = 0;
  while (memcmp(a + i, b + i, sizeof(float)) == 0)
    i++;
  fail_msg("%s: %s at %d threads differs from 1 thread at %lld: %.9g vs "
           "%.9g",
           spec, what, threads, (long long)i, (double)b[i], (double)a[i]);
}

static void check_spec(const char *spec, nnlib_optimizer_kind kind) {
  run_result one = run(spec, kind, 1);
  assert_trained(&one, spec, kind);
  for (int threads = 2; threads <= MAX_THREADS; threads++) {
    run_result r = run(spec, kind, threads);
    assert_int_equal(r.count, one.count);
    assert_same_bits(&r.loss, &one.loss, 1, "loss", spec, threads);
    assert_same_bits(r.forward, one.forward, BATCH * OUTPUTS, "forward", spec,
                     threads);
    if (kind != NNLIB_OPT_SGD) /* fused SGD leaves them stale */
      assert_same_bits(r.grads, one.grads, r.count, "gradients", spec, threads);
    assert_same_bits(r.dx, one.dx, BATCH * STEPS * FEATURES, "dx", spec,
                     threads);
    assert_same_bits(r.params, one.params, r.count, "parameters", spec,
                     threads);
    assert_same_bits(r.predict, one.predict, BATCH * OUTPUTS, "predict", spec,
                     threads);
    assert_same_bits(r.shorter, one.shorter, BATCH * OUTPUTS, "shorter predict",
                     spec, threads);
    free_result(&r);
  }
  free_result(&one);
}

static const char *const specs[] = {
    "lstm:24,last,dense:5",
    "lstm:24,lstm:16,last,dense:5",
    "gru:24,gru:16,last,dense:5",
    "gru:24:lbr0,gru:16:lbr0,last,dense:5",
    "rnn:24,rnn:16:relu,last,dense:5",
};

static void check_all(nnlib_optimizer_kind kind) {
  for (size_t i = 0; i < sizeof specs / sizeof *specs; i++)
    check_spec(specs[i], kind);
}

/* grain 1: every pass splits into one range per thread */
static void test_every_pass_split_adam(void **state) {
  (void)state;
  nnlib__recurrent_set_pass_grain(1);
  check_all(NNLIB_OPT_ADAM);
  nnlib__recurrent_set_pass_grain(0);
}

static void test_every_pass_split_fused_sgd(void **state) {
  (void)state;
  nnlib__recurrent_set_pass_grain(1);
  check_all(NNLIB_OPT_SGD);
  nnlib__recurrent_set_pass_grain(0);
}

/* lstm:24's forward cell costs 24 (4 GATE + 5 NONLINEAR) a sample, its
 * backward 24 x 4: at 8 forward samples a range the forward passes split
 * in two (21 / 8), the backward ones stay whole */
static void test_forward_split_only(void **state) {
  (void)state;
  nnlib__recurrent_set_pass_grain(8 * 24 *
                                  (4 * RNN_COST_GATE + 5 * RNN_COST_NONLINEAR));
  check_all(NNLIB_OPT_ADAM);
  nnlib__recurrent_set_pass_grain(0);
}

/* max |a - b| <= 1e-5 max |b| (normwise; the bits may differ). */
static void assert_close(const float *a, const float *b, int64_t n,
                         const char *what, const char *spec, int threads) {
  double worst = 0.0, scale = 0.0;
  for (int64_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - (double)b[i]);
    worst = d > worst ? d : worst;
    scale = fabs((double)b[i]) > scale ? fabs((double)b[i]) : scale;
  }
  if (worst > 1e-5 * scale)
    fail_msg("%s: %s at %d threads is %.3g from 1 thread's (scale %.3g)", spec,
             what, threads, worst, scale);
}

/* Lanes (nnlib__recurrent_run_steps), here from 4 samples cut anywhere:
 * on 2 threads lanes of 10 and 11 samples, on 3 of 7, each running the
 * products of its steps on its own rows and then its cells (backward:
 * the cells, then the carry's product). OpenBLAS
 * rounds a product of 7 or 10 rows differently from one of 21, so the
 * lanes promise no bits against one thread: the results agree to float
 * precision, and the same thread count gives the same bits again. */
static void check_lanes(const char *spec) {
  run_result one = run(spec, NNLIB_OPT_ADAM, 1);
  for (int threads = 2; threads <= MAX_THREADS; threads++) {
    run_result r = run(spec, NNLIB_OPT_ADAM, threads);
    run_result again = run(spec, NNLIB_OPT_ADAM, threads);
    assert_close(&r.loss, &one.loss, 1, "loss", spec, threads);
    assert_close(r.forward, one.forward, BATCH * OUTPUTS, "forward", spec,
                 threads);
    assert_close(r.grads, one.grads, r.count, "gradients", spec, threads);
    assert_close(r.dx, one.dx, BATCH * STEPS * FEATURES, "dx", spec, threads);
    assert_same_bits(again.forward, r.forward, BATCH * OUTPUTS,
                     "forward (again)", spec, threads);
    assert_same_bits(again.params, r.params, r.count, "parameters (again)",
                     spec, threads);
    assert_same_bits(again.predict, r.predict, BATCH * OUTPUTS,
                     "predict (again)", spec, threads);
    free_result(&r);
    free_result(&again);
  }
  free_result(&one);
}

static void test_steps_in_lanes(void **state) {
  (void)state;
  nnlib__recurrent_set_lanes(4, 1);
  for (size_t i = 0; i < sizeof specs / sizeof *specs; i++)
    check_lanes(specs[i]);
  nnlib__recurrent_set_lanes(0, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_pass_split_adam),
      cmocka_unit_test(test_every_pass_split_fused_sgd),
      cmocka_unit_test(test_forward_split_only),
      cmocka_unit_test(test_steps_in_lanes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
