/* A 2x2 max pool at stride 2 that alone reads a batchnorm's fused ReLU is
 * fused into the batchnorm (compile.c fuse_pool, batchnorm.c
 * normalise_pooled and pooled_*): forward writes the pooled map and the
 * winners' codes, backward reads the pooled gradient. The three layers'
 * own passes (m->no_pool_fusion) are the reference, and the fused passes
 * must give their bits: losses, parameters, running statistics and
 * predictions after every training step, for fused SGD, momentum and
 * Adam, on one and two threads, over odd planes (a last row and column in
 * no window), one channel, planes wider than the stack block, and a
 * batchnorm reading the model input. Also checked: which pools fuse, that
 * the training set shrinks by the normalised map and the pool's gradient,
 * that an inference gradient check goes through the fused passes with
 * the twin's bits, that the numerics check names the group, that a
 * convolution still folds the whole group in predictions, and NaN. */
#include "nnlib_internal.h"
#include "test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STEP 1e-3f

static nnlib_model *compiled(const char *spec, const int64_t *shape,
                             int64_t max_batch, nnlib_optimizer *opt,
                             bool unfused) {
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, spec));
  m->no_pool_fusion = unfused;
  ASSERT_OK(
      nnlib_model_compile(m, shape, 3, max_batch, NNLIB_LOSS_MSE, opt, 7));
  return m;
}

static nnlib_optimizer *optimizer(nnlib_optimizer_kind kind, float momentum) {
  nnlib_optimizer_options o;
  ASSERT_OK(nnlib_optimizer_options_init(&o, kind));
  o.learning_rate = 0.05f;
  o.momentum = momentum;
  nnlib_optimizer *opt = NULL;
  ASSERT_OK(nnlib_optimizer_create(&opt, &o));
  return opt;
}

static nnlib_tensor *images(int64_t n, const int64_t *shape, uint32_t seed) {
  int64_t dims[4] = {n, shape[0], shape[1], shape[2]};
  nnlib_tensor *x = NULL;
  ASSERT_OK(nnlib_tensor_create(&x, dims, 4));
  ts_fill_uniform(nnlib_tensor_get_data(x), nnlib_tensor_get_size(x), -1.0f,
                  1.0f, &seed);
  return x;
}

static nnlib_tensor *targets(const nnlib_model *m, int64_t n, uint32_t seed) {
  nnlib_tensor *t = ts_tensor2(n, m->output_size, NULL);
  ts_fill_uniform(nnlib_tensor_get_data(t), nnlib_tensor_get_size(t), 0.0f,
                  1.0f, &seed);
  return t;
}

static bool same_state(const nnlib_model *a, const nnlib_model *b) {
  return a->param_size == b->param_size &&
         memcmp(a->params, b->params, (size_t)a->param_size * 4) == 0 &&
         memcmp(a->layer_state, b->layer_state,
                (size_t)a->layer_state_size * 4) == 0;
}

static void expect_same_floats(const nnlib_tensor *a, const nnlib_tensor *b,
                               const char *what) {
  int64_t n = nnlib_tensor_get_size(a);
  assert_int_equal(n, nnlib_tensor_get_size(b));
  if (memcmp(nnlib_tensor_get_data((nnlib_tensor *)a),
             nnlib_tensor_get_data((nnlib_tensor *)b),
             (size_t)n * sizeof(float)) != 0)
    fail_msg("%s differ", what);
}

/* The layer index of the first batchnorm in m. */
static size_t first_batchnorm(nnlib_model *m) {
  for (size_t i = 0; i < m->layer_count; i++)
    if (nnlib__layer_is_batchnorm(m->layers[i]))
      return i;
  fail_msg("no batchnorm");
  return 0;
}

typedef struct twin_case {
  const char *spec;
  int64_t shape[3], batch;
} twin_case;

/* Trains the fused model and its unfused twin side by side: the same loss,
 * parameters and statistics after every step, the same predictions. */
static void check_twins(const twin_case *c, nnlib_optimizer_kind kind,
                        float momentum) {
  nnlib_model *m[2];
  for (int i = 0; i < 2; i++)
    m[i] = compiled(c->spec, c->shape, c->batch, optimizer(kind, momentum),
                    i == 1);
  size_t bn = first_batchnorm(m[0]);
  assert_non_null(m[0]->layers[bn]->fused_pool);
  assert_null(m[1]->layers[bn]->fused_pool);
  assert_true(same_state(m[0], m[1]));
  uint32_t seed = 5;
  ts_randomise_state(m[0], &seed);
  memcpy(m[1]->params, m[0]->params, (size_t)m[0]->param_size * 4);
  memcpy(m[1]->layer_state, m[0]->layer_state,
         (size_t)m[0]->layer_state_size * 4);
  nnlib_tensor *x = images(c->batch, c->shape, 8);
  nnlib_tensor *xp = images(c->batch + 1, c->shape, 9);
  nnlib_tensor *t = targets(m[0], c->batch, 10);
  nnlib_tensor *y[2] = {ts_tensor2(c->batch + 1, m[0]->output_size, NULL),
                        ts_tensor2(c->batch + 1, m[1]->output_size, NULL)};
  for (int step = 0; step < 3; step++) {
    float loss[2];
    for (int i = 0; i < 2; i++) {
      ASSERT_OK(nnlib_model_step(m[i], x, t, &loss[i]));
      ASSERT_OK(nnlib_model_predict(m[i], xp, y[i]));
    }
    if (memcmp(&loss[0], &loss[1], sizeof(float)) != 0)
      fail_msg("%s, step %d: loss %.9g fused, %.9g unfused", c->spec, step,
               (double)loss[0], (double)loss[1]);
    if (!same_state(m[0], m[1]))
      fail_msg("%s, step %d: parameters or statistics differ", c->spec, step);
    expect_same_floats(y[0], y[1], "predictions");
  }
  for (int i = 0; i < 2; i++) {
    nnlib_tensor_free(y[i]);
    nnlib_model_free(m[i]);
  }
  nnlib_tensor_free(x);
  nnlib_tensor_free(xp);
  nnlib_tensor_free(t);
}

static const twin_case TWINS[] = {
    {"conv:4x3x3:p1,batchnorm,relu,maxpool:2,flatten,dense:3", {2, 8, 8}, 4},
    /* odd planes: the last row and column are in no window */
    {"conv:3x3x3,batchnorm:0.2:0.001,relu,maxpool:2,flatten,dense:2",
     {1, 9, 12},
     5},
    {"conv:2x2x2:s1:p1,batchnorm,relu,maxpool:2,flatten,dense:2",
     {3, 6, 10},
     3},
    /* one channel after the convolution; wider than the stack block (2 W
     * above 4096 floats): windows in column pieces */
    {"conv:1x1x1,batchnorm,relu,maxpool:2,flatten,dense:2", {1, 3, 4100}, 2},
    /* the batchnorm reads the model input: no dx, the gradient on the
     * stack, or for a plane larger than that block summed window by
     * window */
    {"batchnorm,relu,maxpool:2,flatten,dense:3", {2, 5, 7}, 6},
    {"batchnorm,relu,maxpool:2,flatten,dense:2", {1, 3, 4100}, 2},
    /* two groups, the second after a pool */
    {"conv:4x3x3:p1,batchnorm,relu,maxpool:2,conv:6x3x3:p1,batchnorm,relu,"
     "maxpool:2,flatten,dense:4",
     {1, 12, 12},
     8},
};

static void run_twins(int threads) {
  ASSERT_OK(nnlib_set_num_threads(threads));
  for (size_t i = 0; i < sizeof TWINS / sizeof TWINS[0]; i++) {
    check_twins(&TWINS[i], NNLIB_OPT_SGD, 0.0f);
    check_twins(&TWINS[i], NNLIB_OPT_SGD, 0.9f);
    check_twins(&TWINS[i], NNLIB_OPT_ADAM, 0.0f);
  }
  ASSERT_OK(nnlib_set_num_threads(1));
}

static void test_training_bits_one_thread(void **s) {
  (void)s;
  run_twins(1);
}

static void test_training_bits_two_threads(void **s) {
  (void)s;
  run_twins(2);
}

/* The plain window rows and the AVX2 ones, besides the CPU's own. */
static void test_training_bits_plain_rows(void **s) {
  (void)s;
  nnlib__pool2d_force_plain_rows(true);
  check_twins(&TWINS[0], NNLIB_OPT_SGD, 0.9f);
  check_twins(&TWINS[1], NNLIB_OPT_ADAM, 0.0f);
  nnlib__pool2d_force_plain_rows(false);
  nnlib__pool2d_force_avx2_rows(true); /* plain again without AVX2 */
  check_twins(&TWINS[0], NNLIB_OPT_SGD, 0.9f);
  check_twins(&TWINS[1], NNLIB_OPT_ADAM, 0.0f);
  nnlib__pool2d_force_avx2_rows(false);
}

typedef struct fuse_case {
  const char *spec;
  bool fuses;
} fuse_case;

/* Only a 2x2 max pool at stride 2, without padding or ceil mode, alone
 * reading the ReLU fused into a batchnorm. */
static void test_which_pools_fuse(void **s) {
  (void)s;
  static const fuse_case cases[] = {
      {"conv:2x3x3:p1,batchnorm,relu,maxpool:2,flatten", true},
      {"conv:2x3x3:p1,batchnorm,relu,minpool:2,flatten", false},
      {"conv:2x3x3:p1,batchnorm,relu,avgpool:2,flatten", false},
      {"conv:2x3x3:p1,batchnorm,relu,maxpool:2:p1,flatten", false},
      {"conv:2x3x3:p1,batchnorm,relu,maxpool:2:ceil,flatten", false},
      {"conv:2x3x3:p1,batchnorm,relu,maxpool:3,flatten", false},
      {"conv:2x3x3:p1,batchnorm,tanh,maxpool:2,flatten", false},
      {"conv:2x3x3:p1,relu,maxpool:2,flatten", false},
      /* the ReLU is the model's output: callers read it */
      {"conv:2x3x3:p1,batchnorm,relu", false},
  };
  int64_t shape[3] = {1, 8, 8};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    nnlib_model *m = compiled(cases[i].spec, shape, 2, NULL, false);
    bool fused = m->layers[1]->fused_pool != NULL;
    if (fused != cases[i].fuses)
      fail_msg("%s: fused %d, expected %d", cases[i].spec, fused,
               cases[i].fuses);
    if (fused) {
      assert_ptr_equal(m->layers[1]->fused_pool, m->layers[3]);
      assert_true(m->layers[2]->fused_away && m->layers[3]->fused_away);
    }
    nnlib_model_free(m);
  }
}

/* In a graph a ReLU read by two nodes keeps its pool apart. */
static void test_shared_relu_does_not_fuse(void **s) {
  (void)s;
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, "x=input:1x8x8,conv:2x3x3:p1,batchnorm,"
                                    "r=relu,p=maxpool:2(r),q=avgpool:2(r),"
                                    "add(p,q)"));
  ASSERT_OK(nnlib_model_compile_graph(m, 2, NNLIB_LOSS_MSE, NULL, 1));
  assert_non_null(m->layers[1]->fused_activation);
  assert_null(m->layers[1]->fused_pool);
  nnlib_model_free(m);
}

/* The training set holds neither the normalised map nor the pool's
 * gradient over it: smaller than the twin's by about that much. */
static void test_training_set_shrinks(void **s) {
  (void)s;
  const char *spec = "conv:8x3x3:p1,batchnorm,relu,maxpool:2,flatten,dense:2";
  int64_t shape[3] = {1, 16, 16}, batch = 16;
  nnlib_model *a = compiled(spec, shape, batch, NULL, false);
  nnlib_model *b = compiled(spec, shape, batch, NULL, true);
  int64_t fused = nnlib__buffers_floats(a, true);
  int64_t unfused = nnlib__buffers_floats(b, true);
  int64_t map = batch * 8 * 16 * 16; /* one full-size map */
  print_message("  training set: %lld floats fused, %lld unfused\n",
                (long long)fused, (long long)unfused);
  if (!(unfused - fused >= map))
    fail_msg("fused %lld, unfused %lld floats", (long long)fused,
             (long long)unfused);
  nnlib_model_free(a);
  nnlib_model_free(b);
}

/* The gradient check's error of the fused model and of its twin. */
static void gradcheck_twins(const char *spec, const int64_t *shape,
                            int inference, double err[2]) {
  for (int i = 0; i < 2; i++) {
    nnlib_model *m = compiled(spec, shape, 4, NULL, i == 1);
    assert_true((m->layers[1]->fused_pool != NULL) == (i == 0));
    uint32_t seed = 17;
    ts_randomise_state(m, &seed);
    nnlib_tensor *x = images(4, shape, 3), *t = targets(m, 4, 6);
    nnlib_gradcheck_options o;
    ASSERT_OK(nnlib_gradcheck_options_init(&o));
    o.inference = inference;
    o.step = STEP;
    ASSERT_OK(nnlib_model_gradcheck(m, x, t, &o, &err[i]));
    nnlib_tensor_free(x);
    nnlib_tensor_free(t);
    nnlib_model_free(m);
  }
  print_message("  %s gradcheck: %g fused, %g unfused\n",
                inference ? "inference" : "training", err[0], err[1]);
}

/* Gradient checks through the fused group, in inference (backward on the
 * running statistics) and in training (the batch statistics couple the
 * samples): the twin's error bit for bit, and small (a step of 1e-3
 * keeps the differences off the pool's and the ReLU's kinks for these
 * values). No convolution bias: batchnorm cancels it, so its gradient is
 * 0 and the differences' rounding would be all of the relative error. */
static void test_gradchecks(void **s) {
  (void)s;
  const char *spec =
      "conv:3x3x3:p1:nobias,batchnorm,relu,maxpool:2,flatten,dense:2";
  int64_t shape[3] = {2, 6, 7};
  for (int inference = 0; inference < 2; inference++) {
    double err[2] = {1.0, 1.0};
    gradcheck_twins(spec, shape, inference, err);
    assert_memory_equal(&err[0], &err[1], sizeof err[0]);
    if (!(err[0] < 1e-2))
      fail_msg("gradcheck relative error %g", err[0]);
  }
}

/* The numerics check names the fused group; in predictions the
 * convolution still folds all three. */
static void test_numerics_and_folding(void **s) {
  (void)s;
  const char *spec = "conv:3x3x3:p1,batchnorm,relu,maxpool:2,flatten,dense:2";
  int64_t shape[3] = {2, 6, 6};
  nnlib_model *m =
      compiled(spec, shape, 2, optimizer(NNLIB_OPT_SGD, 0.0f), false);
  assert_ptr_equal(m->layers[0]->folded_pool, m->layers[3]);
  nnlib_tensor *x = images(2, shape, 1), *t = targets(m, 2, 2);
  ASSERT_OK(nnlib_model_set_check_numerics(m, 1));
  ASSERT_OK(nnlib_model_step(m, x, t, NULL));
  m->layers[1]->params[0].value.data[1] = NAN; /* gamma of channel 1 */
  ASSERT_STATUS(NNLIB_ERR_NUMERICAL, nnlib_model_step(m, x, t, NULL));
  ts_expect_message("layer 1 (batchnorm, with layer 2 relu, layer 3 "
                    "maxpool2d fused in) output is");
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
  nnlib_model_free(m);
}

/* A NaN in the input reaches the loss the same way fused and unfused. */
static void test_nan_input(void **s) {
  (void)s;
  const char *spec = "batchnorm,relu,maxpool:2,flatten,dense:2";
  int64_t shape[3] = {2, 4, 4};
  float loss[2];
  for (int i = 0; i < 2; i++) {
    nnlib_model *m =
        compiled(spec, shape, 2, optimizer(NNLIB_OPT_SGD, 0.0f), i == 1);
    nnlib_tensor *x = images(2, shape, 1), *t = targets(m, 2, 2);
    nnlib_tensor_get_data(x)[5] = NAN;
    nnlib_status st = nnlib_model_step(m, x, t, &loss[i]);
    assert_int_equal(st, NNLIB_ERR_NUMERICAL);
    nnlib_tensor_free(x);
    nnlib_tensor_free(t);
    nnlib_model_free(m);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_training_bits_one_thread),
      cmocka_unit_test(test_training_bits_two_threads),
      cmocka_unit_test(test_training_bits_plain_rows),
      cmocka_unit_test(test_which_pools_fuse),
      cmocka_unit_test(test_shared_relu_does_not_fuse),
      cmocka_unit_test(test_training_set_shrinks),
      cmocka_unit_test(test_gradchecks),
      cmocka_unit_test(test_numerics_and_folding),
      cmocka_unit_test(test_nan_input),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
