/* Graph models against PyTorch: a residual block with a projection
 * shortcut and batchnorm, a concat block, a multiply gate and a two-input
 * model, built through the public graph API (nnlib_model_input,
 * nnlib_model_apply, the merge layers). Checked per tensor within 1e-5
 * relative (max |ours - torch| / max |torch|): the training-mode output,
 * the loss, every parameter gradient and the gradient of every input; then
 * again from nnlib_model_backward_output with PyTorch's dL/dy. The
 * reference values come from tests/make_torch_graph_fixtures.py
 * (tests/fixtures/torch_graph.txt, computed in float64 on float32 draws);
 * no PyTorch is needed here. */
#include "fixtures.h"
#include "test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BAR 1e-5

/* A new nnlib tensor holding a fixture tensor (same shape). */
static nnlib_tensor *tensor_of(const fx_tensor *src) {
  nnlib_tensor *t = NULL;
  ASSERT_OK(nnlib_tensor_create(&t, src->dims, src->rank));
  memcpy(nnlib_tensor_get_data(t), src->data,
         (size_t)src->size * sizeof(float));
  return t;
}

/* ------------------------------------------------------- comparisons */

static double worst_error; /* over the whole run, for the summary */

/* max |a - b| / max |b| */
static void expect_close(const fx_case *c, const char *what, const float *a,
                         int64_t a_size, const fx_tensor *b) {
  if (a_size != b->size)
    fail_msg("%s %s: %lld values, torch has %lld", c->name, what,
             (long long)a_size, (long long)b->size);
  double diff = 0.0, scale = 0.0;
  for (int64_t i = 0; i < b->size; i++) {
    double d = fabs((double)a[i] - b->data[i]);
    if (d > diff || isnan(d))
      diff = d;
    if (fabs(b->data[i]) > scale)
      scale = fabs(b->data[i]);
  }
  double err = diff / (scale > 0.0 ? scale : 1.0);
  print_message("  %-12s %-24s %.2e\n", c->name, what, err);
  if (!(err <= BAR))
    fail_msg("%s %s: relative error %.3g exceeds %.0e", c->name, what, err,
             BAR);
  if (err > worst_error)
    worst_error = err;
}

static void expect_tensor(const fx_case *c, const char *what,
                          const nnlib_tensor *ours, const char *name) {
  expect_close(c, what, nnlib_tensor_get_data_const(ours),
               nnlib_tensor_get_size(ours), fx_need(c, name));
}

/* ------------------------------------------------------ graph building */

static nnlib_node apply_named(nnlib_model *m, nnlib_layer *layer,
                              const nnlib_node *inputs, size_t count,
                              const char *name) {
  nnlib_node node = 0;
  ASSERT_OK(nnlib_model_apply(m, layer, inputs, count, &node));
  if (name != NULL)
    ASSERT_OK(nnlib_model_set_node_name(m, node, name));
  return node;
}

static nnlib_node apply1(nnlib_model *m, nnlib_layer *layer, nnlib_node in,
                         const char *name) {
  return apply_named(m, layer, &in, 1, name);
}

static nnlib_node apply2(nnlib_model *m, nnlib_layer *layer, nnlib_node a,
                         nnlib_node b) {
  nnlib_node in[2] = {a, b};
  return apply_named(m, layer, in, 2, NULL);
}

static nnlib_node input(nnlib_model *m, const int64_t *shape, size_t rank) {
  nnlib_node node = 0;
  ASSERT_OK(nnlib_model_input(m, shape, rank, &node));
  return node;
}

static nnlib_layer *conv(int cin, int cout, int k, int stride, int padding,
                         int bias) {
  const int geom[6] = {stride, stride, padding, padding, 1, 1};
  return ts_conv(cin, cout, k, k, geom, bias);
}

static nnlib_layer *batchnorm(void) {
  nnlib_layer *l = NULL;
  ASSERT_OK(nnlib_batchnorm_create(&l, 0.1f, 1e-5f));
  return l;
}

static nnlib_layer *merge(nnlib_layer_kind kind) {
  nnlib_layer *l = NULL;
  if (kind == NNLIB_LAYER_ADD)
    ASSERT_OK(nnlib_add_create(&l));
  else if (kind == NNLIB_LAYER_MULTIPLY)
    ASSERT_OK(nnlib_multiply_create(&l));
  else
    ASSERT_OK(nnlib_concat_create(&l, 0));
  return l;
}

/* The node names below are the parameter prefixes of the fixture. */

static void build_residual(nnlib_model *m) {
  const int64_t shape[3] = {2, 6, 6};
  nnlib_node x = input(m, shape, 3);
  nnlib_node a = apply1(m, conv(2, 4, 3, 2, 1, 0), x, "conv1");
  a = apply1(m, batchnorm(), a, "bn1");
  a = apply1(m, ts_act(NNLIB_ACT_RELU, 0), a, NULL);
  a = apply1(m, conv(4, 4, 3, 1, 1, 0), a, "conv2");
  a = apply1(m, batchnorm(), a, "bn2");
  nnlib_node s = apply1(m, conv(2, 4, 1, 2, 0, 0), x, "proj");
  s = apply1(m, batchnorm(), s, "bnp");
  nnlib_node y = apply2(m, merge(NNLIB_LAYER_ADD), a, s);
  y = apply1(m, ts_act(NNLIB_ACT_RELU, 0), y, NULL);
  nnlib_layer *pool = NULL;
  ASSERT_OK(nnlib_global_avgpool_create(&pool));
  y = apply1(m, pool, y, NULL);
  apply1(m, ts_dense(4, 3, 1), y, "head");
}

static void build_concat(nnlib_model *m) {
  const int64_t shape[1] = {5};
  nnlib_node x = input(m, shape, 1);
  nnlib_node a = apply1(m, ts_dense(5, 4, 1), x, "left");
  a = apply1(m, ts_act(NNLIB_ACT_TANH, 0), a, NULL);
  nnlib_node b = apply1(m, ts_dense(5, 3, 1), x, "right");
  b = apply1(m, ts_act(NNLIB_ACT_LEAKY_RELU, 0.1f), b, NULL);
  nnlib_node y = apply2(m, merge(NNLIB_LAYER_CONCAT), a, b);
  apply1(m, ts_dense(7, 2, 1), y, "head");
}

static void build_gate(nnlib_model *m) {
  const int64_t shape[1] = {6};
  nnlib_node x = input(m, shape, 1);
  nnlib_node a = apply1(m, ts_dense(6, 4, 1), x, "value");
  nnlib_node g = apply1(m, ts_dense(6, 4, 1), x, "gate");
  g = apply1(m, ts_act(NNLIB_ACT_SIGMOID, 0), g, NULL);
  nnlib_node y = apply2(m, merge(NNLIB_LAYER_MULTIPLY), a, g);
  apply1(m, ts_dense(4, 1, 1), y, "head");
}

static void build_two_inputs(nnlib_model *m) {
  const int64_t image_shape[3] = {1, 6, 6}, vector_shape[1] = {3};
  nnlib_node img = input(m, image_shape, 3);
  nnlib_node vec = input(m, vector_shape, 1);
  nnlib_node a = apply1(m, conv(1, 2, 3, 1, 1, 1), img, "conv");
  a = apply1(m, ts_act(NNLIB_ACT_RELU, 0), a, NULL);
  nnlib_layer *flatten = NULL;
  ASSERT_OK(nnlib_flatten_create(&flatten));
  a = apply1(m, flatten, a, NULL);
  a = apply1(m, ts_dense(72, 5, 1), a, "img_dense");
  nnlib_node b = apply1(m, ts_dense(3, 4, 1), vec, "vec_dense");
  b = apply1(m, ts_act(NNLIB_ACT_RELU, 0), b, NULL);
  nnlib_node y = apply2(m, merge(NNLIB_LAYER_CONCAT), a, b);
  apply1(m, ts_dense(9, 3, 1), y, "head");
}

typedef struct graph_case {
  const char *name;
  void (*build)(nnlib_model *m);
  nnlib_loss loss;
} graph_case;

static const graph_case GRAPHS[] = {
    {"residual", build_residual, NNLIB_LOSS_SOFTMAX_CE},
    {"concat", build_concat, NNLIB_LOSS_MSE},
    {"gate", build_gate, NNLIB_LOSS_BCE_LOGITS},
    {"two_inputs", build_two_inputs, NNLIB_LOSS_SOFTMAX_CE},
};

static const graph_case *graph_named(const char *name) {
  for (size_t i = 0; i < sizeof GRAPHS / sizeof GRAPHS[0]; i++)
    if (strcmp(GRAPHS[i].name, name) == 0)
      return &GRAPHS[i];
  fail_msg("no graph for fixture case %s", name);
  return NULL;
}

/* ---------------------------------------------------------- parameters */

/* Calls visit(c, layer, index, "<node name>.<param name>") for every
 * parameter of every node; a node with parameters must be named (the
 * fixture's prefix), so no parameter goes unchecked. Returns the count. */
typedef void (*param_visit)(const fx_case *c, nnlib_layer *layer,
                            size_t index, const char *name);

static size_t each_param(const fx_case *c, nnlib_model *m, param_visit visit) {
  size_t visited = 0;
  for (size_t i = 0; i < nnlib_model_get_node_count(m); i++) {
    nnlib_node_info info;
    info.struct_size = sizeof info;
    ASSERT_OK(nnlib_model_get_node(m, i, &info));
    if (info.layer == NULL)
      continue;
    size_t count = nnlib_layer_get_param_tensor_count(info.layer);
    if (count > 0 && info.name == NULL)
      fail_msg("%s: node %zu has parameters but no name", c->name, i);
    for (size_t p = 0; p < count; p++) {
      char name[64];
      snprintf(name, sizeof name, "%s.%s", info.name,
               nnlib_layer_get_param_name(info.layer, p));
      visit(c, info.layer, p, name);
      visited++;
    }
  }
  return visited;
}

static void load_param(const fx_case *c, nnlib_layer *layer, size_t index,
                       const char *name) {
  nnlib_tensor *value = NULL;
  ASSERT_OK(nnlib_layer_get_param(layer, index, &value, NULL));
  const fx_tensor *src = fx_need(c, name);
  assert_int_equal(nnlib_tensor_get_size(value), src->size);
  memcpy(nnlib_tensor_get_data(value), src->data,
         (size_t)src->size * sizeof(float));
}

static void check_param_grad(const fx_case *c, nnlib_layer *layer,
                             size_t index, const char *name) {
  nnlib_tensor *grad = NULL;
  ASSERT_OK(nnlib_layer_get_param(layer, index, NULL, &grad));
  char want[80];
  snprintf(want, sizeof want, "d.%s", name);
  expect_tensor(c, want, grad, want);
}

/* -------------------------------------------------------------- running */

typedef struct loaded {
  nnlib_model *model;
  size_t input_count;
  nnlib_tensor *inputs[4];
  nnlib_tensor *target;
} loaded;

static loaded load(const fx_case *c) {
  const graph_case *g = graph_named(c->name);
  loaded run = {0};
  ASSERT_OK(nnlib_model_create(&run.model));
  g->build(run.model);
  nnlib_optimizer *sgd = NULL;
  ASSERT_OK(nnlib_sgd_create(&sgd, 0.1f, 0, 0, 0));
  ASSERT_OK(nnlib_model_compile_graph(run.model, fx_int(c, "n"), g->loss,
                                      sgd, 7));
  run.input_count = (size_t)fx_int(c, "inputs");
  assert_true(run.input_count <= 4);
  assert_int_equal(nnlib_model_get_input_count(run.model), run.input_count);
  for (size_t i = 0; i < run.input_count; i++) {
    char name[32];
    snprintf(name, sizeof name, "x%zu", i);
    run.inputs[i] = tensor_of(fx_need(c, name));
  }
  run.target = tensor_of(fx_need(c, "target"));
  size_t params = each_param(c, run.model, load_param);
  assert_int_equal(params, (size_t)fx_int(c, "params"));
  ASSERT_OK(nnlib_model_set_input_gradients(run.model, 1));
  return run;
}

static void unload(loaded *run) {
  for (size_t i = 0; i < run->input_count; i++)
    nnlib_tensor_free(run->inputs[i]);
  nnlib_tensor_free(run->target);
  nnlib_model_free(run->model);
}

static const nnlib_tensor *const *inputs_of(const loaded *run) {
  return (const nnlib_tensor *const *)run->inputs;
}

static void check_forward(const fx_case *c, loaded *run) {
  const nnlib_tensor *y = NULL;
  ASSERT_OK(nnlib_model_forward_inputs(run->model, inputs_of(run),
                                       run->input_count, &y));
  expect_tensor(c, "y", y, "y");
}

static void check_input_grads(const fx_case *c, loaded *run,
                              const char *how) {
  for (size_t i = 0; i < run->input_count; i++) {
    const nnlib_tensor *dx = NULL;
    ASSERT_OK(nnlib_model_get_input_gradient(run->model, i, &dx));
    char name[32], what[64];
    snprintf(name, sizeof name, "dx%zu", i);
    snprintf(what, sizeof what, "%s%s", name, how);
    expect_tensor(c, what, dx, name);
  }
}

/* A backward pass on other data (the inputs scaled by 1/2), so that
 * every gradient holds other values before the pass under test. */
static void backward_elsewhere(loaded *run) {
  nnlib_tensor *halves[4];
  for (size_t i = 0; i < run->input_count; i++) {
    halves[i] = NULL;
    int64_t size = nnlib_tensor_get_size(run->inputs[i]);
    ASSERT_OK(nnlib_tensor_create(&halves[i],
                                  nnlib_tensor_get_shape(run->inputs[i]),
                                  nnlib_tensor_get_rank(run->inputs[i])));
    const float *src = nnlib_tensor_get_data_const(run->inputs[i]);
    float *dst = nnlib_tensor_get_data(halves[i]);
    for (int64_t k = 0; k < size; k++)
      dst[k] = 0.5f * src[k];
  }
  ASSERT_OK(nnlib_model_backward_inputs(
      run->model, (const nnlib_tensor *const *)halves, run->input_count,
      run->target, NULL));
  for (size_t i = 0; i < run->input_count; i++)
    nnlib_tensor_free(halves[i]);
}

/* Forward, the loss and backward from it; then, after a pass on other
 * data, backward again from PyTorch's dL/dy through backward_output. */
static void check_case(const fx_case *c) {
  loaded run = load(c);
  check_forward(c, &run);

  float loss = NAN;
  ASSERT_OK(nnlib_model_backward_inputs(run.model, inputs_of(&run),
                                        run.input_count, run.target, &loss));
  expect_close(c, "loss", &loss, 1, fx_need(c, "loss"));
  each_param(c, run.model, check_param_grad);
  check_input_grads(c, &run, "");

  backward_elsewhere(&run);
  float *grads = NULL;
  int64_t count = 0;
  ASSERT_OK(nnlib_model_get_flat_params(run.model, NULL, &grads, &count));
  for (int64_t i = 0; i < count; i++)
    grads[i] = 1e30f; /* backward_output must overwrite every one */
  check_forward(c, &run);
  nnlib_tensor *dy = tensor_of(fx_need(c, "dy"));
  ASSERT_OK(nnlib_model_backward_output(run.model, dy));
  nnlib_tensor_free(dy);
  each_param(c, run.model, check_param_grad);
  check_input_grads(c, &run, " (from dy)");
  unload(&run);
}

static void test_graphs_against_torch(void **state) {
  (void)state;
  char version[64];
  FILE *f = fx_open("torch_graph.txt", version);
  print_message("reference: torch %s\n", version);
  fx_case *c = malloc(sizeof *c);
  assert_non_null(c);
  size_t cases = 0;
  while (fx_read_case(f, c)) {
    check_case(c);
    fx_free_case(c);
    cases++;
  }
  free(c);
  fclose(f);
  assert_int_equal(cases, sizeof GRAPHS / sizeof GRAPHS[0]);
  print_message("worst relative error %.2e over %zu graphs (bar %.0e)\n",
                worst_error, cases, BAR);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_graphs_against_torch),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
