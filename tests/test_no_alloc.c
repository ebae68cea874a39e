/* test_no_alloc.c - after compile, a training step and an inference call
 * allocate nothing (issue 9): a counting allocator hook sees zero
 * allocations across many steps and predictions, for every optimizer, a
 * graph, and a CNN whose batchnorms fold into its convolutions. */
#include "test_support.h"

#include <math.h>
#include <string.h>

enum { IN = 20, HIDDEN = 16, OUT = 4, BATCH = 8 };

typedef struct fixture {
  ts_alloc_stats stats;
  nnlib_model *model;
  nnlib_tensor *x, *t, *y, *x_big, *y_big;
} fixture;

/* dense-relu-dense-sigmoid-dense under softmax CE with index targets:
 * fused and unfused activations, first and inner layers. */
static void build(fixture *f, nnlib_optimizer *opt) {
  f->model = ts_model(IN, BATCH, NNLIB_LOSS_SOFTMAX_CE, opt, 3,
                      ts_dense(IN, HIDDEN, 1), ts_act(NNLIB_ACT_RELU, 0.0f),
                      ts_dense(HIDDEN, HIDDEN, 1),
                      ts_act(NNLIB_ACT_SIGMOID, 0.0f), ts_dense(HIDDEN, OUT, 0),
                      NULL);
  uint32_t seed = 11;
  f->x = ts_tensor2(BATCH, IN, NULL);
  ts_fill_uniform(nnlib_tensor_get_data(f->x), BATCH * IN, -1.0f, 1.0f, &seed);
  int64_t n = BATCH;
  ASSERT_OK(nnlib_tensor_create(&f->t, &n, 1));
  for (int i = 0; i < BATCH; i++)
    nnlib_tensor_get_data(f->t)[i] = (float)(i % OUT);
  f->y = ts_tensor2(BATCH, OUT, NULL);
  /* more samples than the compiled batch: predict works in chunks */
  f->x_big = ts_tensor2(3 * BATCH + 1, IN, NULL);
  ts_fill_uniform(nnlib_tensor_get_data(f->x_big), (3 * BATCH + 1) * IN, -1.0f,
                  1.0f, &seed);
  f->y_big = ts_tensor2(3 * BATCH + 1, OUT, NULL);
}

static void teardown(fixture *f) {
  nnlib_tensor_free(f->x);
  nnlib_tensor_free(f->t);
  nnlib_tensor_free(f->y);
  nnlib_tensor_free(f->x_big);
  nnlib_tensor_free(f->y_big);
  nnlib_model_free(f->model);
  assert_int_equal(f->stats.live, 0);
  ts_alloc_uninstall();
}

/* Steps, predictions and the other per-batch calls, many times over. */
static void run_calls(fixture *f) {
  const nnlib_tensor *out = NULL;
  float loss = NAN, accuracy = NAN;
  for (int i = 0; i < 20; i++) {
    ASSERT_OK(nnlib_model_step(f->model, f->x, f->t, &loss));
    ASSERT_OK(nnlib_model_predict(f->model, f->x, f->y));
    ASSERT_OK(nnlib_model_predict(f->model, f->x_big, f->y_big));
  }
  ASSERT_OK(nnlib_model_forward(f->model, f->x, &out));
  ASSERT_OK(nnlib_model_backward(f->model, f->x, f->t, &loss));
  ASSERT_OK(nnlib_model_apply_gradients(f->model));
  ASSERT_OK(nnlib_model_evaluate(f->model, f->x, f->t, &loss, &accuracy));
  assert_true(isfinite(loss));
}

static void check_no_alloc(nnlib_optimizer_kind kind, float momentum,
                           int profiling) {
  fixture f = {{0, 0, 0, 0}, NULL, NULL, NULL, NULL, NULL, NULL};
  ts_alloc_install(&f.stats);
  nnlib_optimizer_options o;
  ASSERT_OK(nnlib_optimizer_options_init(&o, kind));
  o.momentum = momentum;
  nnlib_optimizer *opt = NULL;
  ASSERT_OK(nnlib_optimizer_create(&opt, &o));
  build(&f, opt);
  ASSERT_OK(nnlib_model_set_profiling(f.model, profiling));
  long before = f.stats.allocs;
  run_calls(&f);
  if (f.stats.allocs != before)
    fail_msg("%ld heap allocations after compile", f.stats.allocs - before);
  teardown(&f);
}

/* plain SGD takes the fused path (update inside the weight-gradient GEMM) */
static void test_sgd(void **state) {
  (void)state;
  check_no_alloc(NNLIB_OPT_SGD, 0.0f, 0);
}

static void test_sgd_momentum(void **state) {
  (void)state;
  check_no_alloc(NNLIB_OPT_SGD, 0.9f, 0);
}

static void test_adam(void **state) {
  (void)state;
  check_no_alloc(NNLIB_OPT_ADAM, 0.0f, 0);
}

static void test_rmsprop(void **state) {
  (void)state;
  check_no_alloc(NNLIB_OPT_RMSPROP, 0.0f, 0);
}

/* the profiler's counters live in the layers: no allocation either */
static void test_sgd_profiled(void **state) {
  (void)state;
  check_no_alloc(NNLIB_OPT_SGD, 0.0f, 1);
}

/* A graph: two inputs, fan-out (d is read by three layers), add, multiply
 * and concat, input gradients on; steps (fused SGD and Adam), workspace
 * predictions, backward from an output gradient and a forward in
 * between allocate nothing either. */
static nnlib_model *graph_model(nnlib_optimizer *opt) {
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(
      m, "x=input:6,v=input:3,d=dense:5(x),t=tanh,s=sigmoid(d),"
         "a=add(d,t),p=multiply(a,s,d),concat(p,v),relu,dense:2"));
  ASSERT_OK(nnlib_model_compile_graph(m, BATCH, NNLIB_LOSS_MSE, opt, 5));
  ASSERT_OK(nnlib_model_set_input_gradients(m, 1));
  return m;
}

static void check_graph_no_alloc(nnlib_optimizer_kind kind) {
  ts_alloc_stats stats = {0, 0, 0, 0};
  ts_alloc_install(&stats); /* before the optimizer: the model frees it */
  nnlib_optimizer_options o;
  ASSERT_OK(nnlib_optimizer_options_init(&o, kind));
  nnlib_optimizer *opt = NULL;
  ASSERT_OK(nnlib_optimizer_create(&opt, &o));
  nnlib_model *m = graph_model(opt);
  nnlib_tensor *x = ts_tensor2(BATCH, 6, NULL), *v = ts_tensor2(BATCH, 3, NULL);
  nnlib_tensor *t = ts_tensor2(BATCH, 2, NULL), *y = ts_tensor2(BATCH, 2, NULL);
  uint32_t seed = 3;
  ts_fill_uniform(nnlib_tensor_get_data(x), BATCH * 6, -1.0f, 1.0f, &seed);
  ts_fill_uniform(nnlib_tensor_get_data(v), BATCH * 3, -1.0f, 1.0f, &seed);
  ts_fill_uniform(nnlib_tensor_get_data(t), BATCH * 2, -1.0f, 1.0f, &seed);
  const nnlib_tensor *in[2] = {x, v}, *out = NULL, *grad = NULL;
  nnlib_workspace *ws = NULL;
  ASSERT_OK(nnlib_workspace_create(&ws, m));
  long before = stats.allocs;
  float loss = NAN;
  for (int i = 0; i < 10; i++) {
    ASSERT_OK(nnlib_model_step_inputs(m, in, 2, t, &loss));
    ASSERT_OK(nnlib_model_predict_inputs(m, in, 2, y));
    ASSERT_OK(nnlib_workspace_predict_inputs(ws, in, 2, y));
    ASSERT_OK(nnlib_model_forward_inputs(m, in, 2, &out));
    ASSERT_OK(nnlib_model_backward_output(m, t));
    ASSERT_OK(nnlib_model_get_input_gradient(m, 1, &grad));
  }
  if (stats.allocs != before)
    fail_msg("%ld heap allocations after compile", stats.allocs - before);
  assert_true(isfinite(loss));
  nnlib_workspace_free(ws);
  nnlib_tensor_free(x);
  nnlib_tensor_free(v);
  nnlib_tensor_free(t);
  nnlib_tensor_free(y);
  nnlib_model_free(m);
  assert_int_equal(stats.live, 0);
  ts_alloc_uninstall();
}

/* plain SGD: the update fused into backward, through the merges too */
static void test_graph_sgd(void **state) {
  (void)state;
  check_graph_no_alloc(NNLIB_OPT_SGD);
}

static void test_graph_adam(void **state) {
  (void)state;
  check_graph_no_alloc(NNLIB_OPT_ADAM);
}

/* A CNN whose batchnorms and relus fold into the convolutions in
 * inference (the folded weights are made in the workspace at every call):
 * steps, predictions (in chunks too), evaluations and workspace
 * predictions, with the numerics check and the profiler on, allocate
 * nothing. The profile shows the batchnorms did not run in predictions:
 * they were folded. */
static void test_folded_cnn(void **state) {
  (void)state;
  ts_alloc_stats stats = {0, 0, 0, 0};
  ts_alloc_install(&stats);
  nnlib_optimizer *opt = NULL;
  ASSERT_OK(nnlib_sgd_create(&opt, 0.01f, 0.0f, 0, 0.0f));
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(
      m, "conv:4x3x3:p1,batchnorm,relu,maxpool:2,"
         "conv:3x3x3:p1:nobias,batchnorm,relu,flatten,dense:2"));
  int64_t shape[3] = {2, 8, 8};
  ASSERT_OK(nnlib_model_compile(m, shape, 3, BATCH, NNLIB_LOSS_MSE, opt, 5));
  int64_t xs[4] = {BATCH, 2, 8, 8}, big[4] = {2 * BATCH + 3, 2, 8, 8};
  nnlib_tensor *x = NULL, *xb = NULL;
  ASSERT_OK(nnlib_tensor_create(&x, xs, 4));
  ASSERT_OK(nnlib_tensor_create(&xb, big, 4));
  nnlib_tensor *t = ts_tensor2(BATCH, 2, NULL), *y = ts_tensor2(BATCH, 2, NULL);
  nnlib_tensor *yb = ts_tensor2(2 * BATCH + 3, 2, NULL);
  uint32_t seed = 4;
  ts_fill_uniform(nnlib_tensor_get_data(x), BATCH * 128, -1.0f, 1.0f, &seed);
  ts_fill_uniform(nnlib_tensor_get_data(xb), (2 * BATCH + 3) * 128, -1.0f,
                  1.0f, &seed);
  ts_fill_uniform(nnlib_tensor_get_data(t), BATCH * 2, -1.0f, 1.0f, &seed);
  nnlib_workspace *ws = NULL;
  ASSERT_OK(nnlib_workspace_create(&ws, m));
  long before = stats.allocs;
  float loss = NAN;
  for (int checked = 0; checked < 2; checked++) {
    ASSERT_OK(nnlib_model_set_check_numerics(m, checked));
    ASSERT_OK(nnlib_model_set_profiling(m, checked));
    for (int i = 0; i < 5; i++) {
      ASSERT_OK(nnlib_model_step(m, x, t, &loss));
      ASSERT_OK(nnlib_model_predict(m, x, y));
      ASSERT_OK(nnlib_model_predict(m, xb, yb));
      ASSERT_OK(nnlib_workspace_predict(ws, xb, yb));
      ASSERT_OK(nnlib_model_evaluate(m, x, t, &loss, NULL));
    }
  }
  if (stats.allocs != before)
    fail_msg("%ld heap allocations after compile", stats.allocs - before);
  assert_true(isfinite(loss));
  nnlib_layer_profile bn;
  memset(&bn, 0, sizeof bn);
  bn.struct_size = sizeof bn;
  ASSERT_OK(nnlib_model_get_layer_profile(m, 1, &bn));
  assert_int_equal(bn.forward_calls, 5); /* the steps' only */
  nnlib_workspace_free(ws);
  nnlib_tensor_free(x);
  nnlib_tensor_free(xb);
  nnlib_tensor_free(t);
  nnlib_tensor_free(y);
  nnlib_tensor_free(yb);
  nnlib_model_free(m);
  assert_int_equal(stats.live, 0);
  ts_alloc_uninstall();
}

/* The hook is live: fit with shuffling allocates its sample order. */
static void test_hook_sees_allocations(void **state) {
  (void)state;
  fixture f = {{0, 0, 0, 0}, NULL, NULL, NULL, NULL, NULL, NULL};
  ts_alloc_install(&f.stats);
  nnlib_optimizer *opt = NULL;
  ASSERT_OK(nnlib_sgd_create(&opt, 0.01f, 0.0f, 0, 0.0f));
  build(&f, opt);
  long before = f.stats.allocs;
  ASSERT_OK(nnlib_model_fit(f.model, f.x, f.t, NULL));
  assert_true(f.stats.allocs > before);
  teardown(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hook_sees_allocations),
      cmocka_unit_test(test_sgd),
      cmocka_unit_test(test_sgd_momentum),
      cmocka_unit_test(test_adam),
      cmocka_unit_test(test_rmsprop),
      cmocka_unit_test(test_sgd_profiled),
      cmocka_unit_test(test_graph_sgd),
      cmocka_unit_test(test_graph_adam),
      cmocka_unit_test(test_folded_cnn),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
