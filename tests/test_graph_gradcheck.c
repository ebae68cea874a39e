/* Gradients of random graph models against central finite differences:
 * random DAGs of dense layers, smooth activations (tanh, sigmoid,
 * softplus), add, multiply and concat, from one or two [4] inputs, with
 * fan-out. Parameter gradients go through the public
 * nnlib_model_gradcheck_inputs; input gradients (nnlib_model_get_input_
 * gradient) are checked here against differences of
 * nnlib_model_evaluate_inputs losses. Bar: normwise relative error <= 1e-3
 * at h = 1e-2 in float32, as tests/test_gradcheck.c. Then the graph calls'
 * bad inputs: each gets its specific status, a message naming the node,
 * and leaks nothing. */
#include "test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BAR 1e-3
#define STEP 1e-2f

enum { MAX_NODES = 64, BATCH = 3, WIDTH_IN = 4, WIDTH_OUT = 2 };

/* ------------------------------------------------------- random graphs */

/* xorshift64*: the graph's shape depends only on the seed */
typedef struct rng {
  uint64_t s;
} rng;

static uint32_t next_u32(rng *r) {
  r->s ^= r->s >> 12;
  r->s ^= r->s << 25;
  r->s ^= r->s >> 27;
  return (uint32_t)((r->s * 2685821657736338717ull) >> 32);
}

/* 0 .. n-1 */
static size_t below(rng *r, size_t n) { return next_u32(r) % n; }

/* A graph being built: per node its handle, feature width and how many
 * layers read it. */
typedef struct dag {
  nnlib_model *model;
  rng r;
  size_t count, inputs;
  nnlib_node node[MAX_NODES];
  int64_t width[MAX_NODES];
  int reads[MAX_NODES];
  char text[1024]; /* the graph in words, for a failure message */
} dag;

static void describe(dag *g, const char *what, const size_t *in, size_t k) {
  size_t used = strlen(g->text);
  int n = snprintf(g->text + used, sizeof g->text - used, " n%zu=%s(",
                   g->count, what);
  for (size_t i = 0; i < k && n > 0; i++) {
    used = strlen(g->text);
    n = snprintf(g->text + used, sizeof g->text - used, i ? ",n%zu" : "n%zu",
                 in[i]);
  }
  used = strlen(g->text);
  snprintf(g->text + used, sizeof g->text - used, ")");
}

static size_t add_node(dag *g, nnlib_layer *layer, const char *what,
                       const size_t *in, size_t k, int64_t width) {
  assert_true(g->count < MAX_NODES);
  nnlib_node handles[3];
  for (size_t i = 0; i < k; i++) {
    handles[i] = g->node[in[i]];
    g->reads[in[i]]++;
  }
  describe(g, what, in, k);
  ASSERT_OK(nnlib_model_apply(g->model, layer, handles, k,
                              &g->node[g->count]));
  g->width[g->count] = width;
  g->reads[g->count] = 0;
  return g->count++;
}

static size_t dense_to(dag *g, size_t from, int64_t width) {
  return add_node(g, ts_dense(g->width[from], width, 1), "dense", &from, 1,
                  width);
}

static size_t random_activation(dag *g, size_t from) {
  static const nnlib_activation kinds[] = {NNLIB_ACT_TANH, NNLIB_ACT_SIGMOID,
                                           NNLIB_ACT_SOFTPLUS};
  static const char *names[] = {"tanh", "sigmoid", "softplus"};
  size_t k = below(&g->r, 3);
  return add_node(g, ts_act(kinds[k], 0), names[k], &from, 1,
                  g->width[from]);
}

/* add or multiply of two distinct earlier nodes; a dense layer brings the
 * second to the first's width when they differ */
static size_t random_elementwise(dag *g, int multiply) {
  size_t in[2] = {below(&g->r, g->count), below(&g->r, g->count - 1)};
  if (in[1] >= in[0])
    in[1]++;
  if (g->width[in[1]] != g->width[in[0]])
    in[1] = dense_to(g, in[1], g->width[in[0]]);
  nnlib_layer *layer = NULL;
  if (multiply)
    ASSERT_OK(nnlib_multiply_create(&layer));
  else
    ASSERT_OK(nnlib_add_create(&layer));
  return add_node(g, layer, multiply ? "multiply" : "add", in, 2,
                  g->width[in[0]]);
}

/* concat of `k` distinct nodes among in[0 .. k) */
static size_t concat_of(dag *g, const size_t *in, size_t k) {
  int64_t width = 0;
  for (size_t i = 0; i < k; i++)
    width += g->width[in[i]];
  nnlib_layer *layer = NULL;
  ASSERT_OK(nnlib_concat_create(&layer, 0));
  return add_node(g, layer, "concat", in, k, width);
}

static size_t random_concat(dag *g) {
  size_t k = g->count >= 3 ? 2 + below(&g->r, 2) : 2;
  size_t in[3];
  for (size_t i = 0; i < k; i++) {
    bool fresh;
    do { /* distinct nodes */
      in[i] = below(&g->r, g->count);
      fresh = true;
      for (size_t j = 0; j < i; j++)
        fresh = fresh && in[j] != in[i];
    } while (!fresh);
  }
  return concat_of(g, in, k);
}

static void random_node(dag *g) {
  /* the merges need two distinct nodes */
  switch (below(&g->r, g->count >= 2 ? 5 : 2)) {
  case 0:
    dense_to(g, below(&g->r, g->count), 3 + (int64_t)below(&g->r, 4));
    break;
  case 1:
    random_activation(g, below(&g->r, g->count));
    break;
  case 2:
    random_elementwise(g, 0);
    break;
  case 3:
    random_elementwise(g, 1);
    break;
  default:
    random_concat(g);
    break;
  }
}

/* Makes sure some node feeds two layers, joins every node that feeds none
 * into a final concat, and ends in a dense layer to WIDTH_OUT. */
static void finish(dag *g) {
  bool fan_out = false;
  for (size_t i = 0; i < g->count; i++)
    fan_out = fan_out || g->reads[i] >= 2;
  if (!fan_out) {
    size_t read_once = 0;
    while (g->reads[read_once] != 1)
      read_once++;
    random_activation(g, read_once);
  }
  size_t dangling[MAX_NODES], k = 0;
  for (size_t i = 0; i < g->count; i++)
    if (g->reads[i] == 0)
      dangling[k++] = i;
  /* concat takes up to 3 at a time: join them in groups */
  while (k > 1) {
    size_t take = k >= 3 ? 3 : 2;
    size_t joined = concat_of(g, dangling + k - take, take);
    k -= take;
    dangling[k++] = joined;
  }
  dense_to(g, dangling[0], WIDTH_OUT);
}

/* A compiled random graph of 6..12 layer nodes (before the finish) from
 * `inputs` inputs of WIDTH_IN features. */
static void build_random(dag *g, uint64_t seed, size_t inputs) {
  memset(g, 0, sizeof *g);
  g->r.s = seed * 0x9E3779B97F4A7C15ull + 1;
  ASSERT_OK(nnlib_model_create(&g->model));
  const int64_t shape[1] = {WIDTH_IN};
  for (size_t i = 0; i < inputs; i++) {
    ASSERT_OK(nnlib_model_input(g->model, shape, 1, &g->node[g->count]));
    g->width[g->count++] = WIDTH_IN;
  }
  g->inputs = inputs;
  size_t layers = 6 + below(&g->r, 7);
  while (g->count - inputs < layers)
    random_node(g);
  finish(g);
  nnlib_optimizer *sgd = NULL;
  ASSERT_OK(nnlib_sgd_create(&sgd, 0.1f, 0, 0, 0));
  nnlib_status st = nnlib_model_compile_graph(g->model, BATCH, NNLIB_LOSS_MSE,
                                              sgd, seed);
  if (st != NNLIB_OK)
    fail_msg("compile of%s -> %s: %s", g->text, nnlib_status_string(st),
             nnlib_last_error_message());
}

/* ----------------------------------------------------------- the data */

typedef struct batch {
  nnlib_tensor *x[2];
  nnlib_tensor *target;
  size_t count;
} batch;

/* Inputs in +-[0.3, 1.5), targets in [-1, 1). */
static batch make_batch(size_t inputs, uint32_t seed) {
  batch b = {{NULL, NULL}, NULL, inputs};
  uint32_t st = seed;
  for (size_t i = 0; i < inputs; i++) {
    b.x[i] = ts_tensor2(BATCH, WIDTH_IN, NULL);
    float *x = nnlib_tensor_get_data(b.x[i]);
    ts_fill_uniform(x, BATCH * WIDTH_IN, 0.3f, 1.5f, &st);
    for (int64_t k = 0; k < BATCH * WIDTH_IN; k += 3)
      x[k] = -x[k];
  }
  b.target = ts_tensor2(BATCH, WIDTH_OUT, NULL);
  ts_fill_uniform(nnlib_tensor_get_data(b.target), BATCH * WIDTH_OUT, -1.0f,
                  1.0f, &st);
  return b;
}

static const nnlib_tensor *const *inputs_of(const batch *b) {
  return (const nnlib_tensor *const *)b->x;
}

static void free_batch(batch *b) {
  for (size_t i = 0; i < b->count; i++)
    nnlib_tensor_free(b->x[i]);
  nnlib_tensor_free(b->target);
}

/* --------------------------------------------------------- the checks */

static void expect_below(double err, const char *what, const dag *g) {
  if (!(err >= 0.0 && err <= BAR))
    fail_msg("%s: error %.3g exceeds %.0e on%s", what, err, BAR, g->text);
}

static double parameter_check(dag *g, const batch *b) {
  nnlib_gradcheck_options o;
  ASSERT_OK(nnlib_gradcheck_options_init(&o));
  o.step = STEP;
  double err = -1.0;
  ASSERT_OK(nnlib_model_gradcheck_inputs(g->model, inputs_of(b), b->count,
                                         b->target, &o, &err));
  expect_below(err, "parameter gradients", g);
  return err;
}

static double loss_at(dag *g, const batch *b) {
  float loss = NAN;
  ASSERT_OK(nnlib_model_evaluate_inputs(g->model, inputs_of(b), b->count,
                                        b->target, &loss, NULL));
  return loss;
}

/* dL/dx of every input from backward, against (L(x + h e) - L(x - h e))
 * / 2h element by element; normwise |bp - fd| / (|bp| + |fd|). */
static double input_check(dag *g, batch *b) {
  enum { ELEMENTS = BATCH * WIDTH_IN };
  float backprop[2][ELEMENTS];
  ASSERT_OK(nnlib_model_set_input_gradients(g->model, 1));
  ASSERT_OK(nnlib_model_backward_inputs(g->model, inputs_of(b), b->count,
                                        b->target, NULL));
  for (size_t i = 0; i < b->count; i++) {
    const nnlib_tensor *dx = NULL;
    ASSERT_OK(nnlib_model_get_input_gradient(g->model, i, &dx));
    assert_int_equal(nnlib_tensor_get_size(dx), ELEMENTS);
    memcpy(backprop[i], nnlib_tensor_get_data_const(dx), sizeof backprop[i]);
  }
  double diff2 = 0.0, bp2 = 0.0, fd2 = 0.0;
  for (size_t i = 0; i < b->count; i++) {
    float *x = nnlib_tensor_get_data(b->x[i]);
    for (int k = 0; k < ELEMENTS; k++) {
      float saved = x[k];
      x[k] = saved + STEP;
      double up = loss_at(g, b);
      x[k] = saved - STEP;
      double down = loss_at(g, b);
      x[k] = saved;
      double fd = (up - down) / (2.0 * (double)STEP);
      diff2 += (backprop[i][k] - fd) * (backprop[i][k] - fd);
      bp2 += (double)backprop[i][k] * backprop[i][k];
      fd2 += fd * fd;
    }
  }
  double scale = sqrt(bp2) + sqrt(fd2);
  double err = sqrt(diff2) / (scale > 1e-12 ? scale : 1e-12);
  expect_below(err, "input gradients", g);
  return err;
}

static void check_random_graph(uint64_t seed, size_t inputs) {
  dag *g = malloc(sizeof *g);
  assert_non_null(g);
  build_random(g, seed, inputs);
  batch b = make_batch(inputs, (uint32_t)seed + 101u);
  double params = parameter_check(g, &b);
  double in = input_check(g, &b);
  print_message("  seed %2llu, %zu input(s), %2zu nodes: params %.2e, "
                "inputs %.2e\n",
                (unsigned long long)seed, inputs, g->count, params, in);
  free_batch(&b);
  nnlib_model_free(g->model);
  free(g);
}

static void test_random_graphs_one_input(void **state) {
  (void)state;
  for (uint64_t seed = 1; seed <= 8; seed++)
    check_random_graph(seed, 1);
}

static void test_random_graphs_two_inputs(void **state) {
  (void)state;
  for (uint64_t seed = 11; seed <= 18; seed++)
    check_random_graph(seed, 2);
}

/* One node read twice by the same merge layer: d * d, d + d + (d * d),
 * concat(d, sum, d); each read adds its share to dL/dd. */
static void test_same_node_twice_in_one_merge(void **state) {
  (void)state;
  dag *g = calloc(1, sizeof *g);
  assert_non_null(g);
  ASSERT_OK(nnlib_model_create(&g->model));
  const int64_t shape[1] = {WIDTH_IN};
  ASSERT_OK(nnlib_model_input(g->model, shape, 1, &g->node[0]));
  g->width[0] = WIDTH_IN;
  g->count = g->inputs = 1;
  size_t d = dense_to(g, 0, 3);
  nnlib_layer *layer = NULL;
  ASSERT_OK(nnlib_multiply_create(&layer));
  size_t square = add_node(g, layer, "multiply", (size_t[]){d, d}, 2, 3);
  ASSERT_OK(nnlib_add_create(&layer));
  size_t sum = add_node(g, layer, "add", (size_t[]){d, square, d}, 3, 3);
  size_t joined = concat_of(g, (size_t[]){d, sum, d}, 3);
  dense_to(g, joined, WIDTH_OUT);
  ASSERT_OK(nnlib_model_compile_graph(g->model, BATCH, NNLIB_LOSS_MSE, NULL,
                                      4));
  batch b = make_batch(1, 31);
  double params = parameter_check(g, &b);
  double in = input_check(g, &b);
  print_message("  %s: params %.2e, inputs %.2e\n", g->text, params, in);
  free_batch(&b);
  nnlib_model_free(g->model);
  free(g);
}

/* ----------------------------------------------------------- bad input */

static nnlib_node declare(nnlib_model *m, int64_t width, const char *name) {
  nnlib_node node = 0;
  ASSERT_OK(nnlib_model_input(m, &width, 1, &node));
  if (name != NULL)
    ASSERT_OK(nnlib_model_set_node_name(m, node, name));
  return node;
}

static nnlib_node dense_on(nnlib_model *m, nnlib_node in, int64_t width) {
  nnlib_node node = 0;
  ASSERT_OK(nnlib_model_apply(m, ts_dense(0, width, 1), &in, 1, &node));
  return node;
}

/* img [4] and vec [4] -> concat -> dense 2, compiled for BATCH. */
static nnlib_model *two_input_model(void) {
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  nnlib_node in[2] = {declare(m, WIDTH_IN, "img"),
                      declare(m, WIDTH_IN, "vec")};
  nnlib_layer *concat = NULL;
  ASSERT_OK(nnlib_concat_create(&concat, 0));
  nnlib_node joined = 0;
  ASSERT_OK(nnlib_model_apply(m, concat, in, 2, &joined));
  dense_on(m, joined, WIDTH_OUT);
  nnlib_optimizer *sgd = NULL;
  ASSERT_OK(nnlib_sgd_create(&sgd, 0.1f, 0, 0, 0));
  ASSERT_OK(nnlib_model_compile_graph(m, BATCH, NNLIB_LOSS_MSE, sgd, 1));
  return m;
}

static void test_bad_data(void **state) {
  (void)state;
  ts_alloc_stats stats = {0};
  ts_alloc_install(&stats);
  nnlib_model *m = two_input_model();
  batch b = make_batch(2, 5);
  float loss;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_model_evaluate_inputs(m, inputs_of(&b), 1, b.target,
                                            &loss, NULL));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_model_backward_inputs(m, inputs_of(&b), 3, b.target,
                                            &loss));
  nnlib_tensor *wide = ts_tensor2(BATCH, WIDTH_IN + 1, NULL);
  const nnlib_tensor *wrong[2] = {b.x[0], wide};
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH,
                nnlib_model_evaluate_inputs(m, wrong, 2, b.target, &loss,
                                            NULL));
  ts_expect_message("vec");
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH,
                nnlib_model_backward_inputs(m, wrong, 2, b.target, &loss));
  ts_expect_message("vec");
  nnlib_tensor_free(wide);
  /* and the model still works on good data */
  ASSERT_OK(nnlib_model_evaluate_inputs(m, inputs_of(&b), 2, b.target, &loss,
                                        NULL));
  free_batch(&b);
  nnlib_model_free(m);
  ts_alloc_uninstall();
  assert_int_equal(stats.live, 0);
}

static void test_foreign_node(void **state) {
  (void)state;
  ts_alloc_stats stats = {0};
  ts_alloc_install(&stats);
  nnlib_model *a = NULL, *b = NULL;
  ASSERT_OK(nnlib_model_create(&a));
  ASSERT_OK(nnlib_model_create(&b));
  nnlib_node in_a = declare(a, WIDTH_IN, "in_a");
  declare(b, WIDTH_IN, "in_b");
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_model_apply(b, ts_dense(0, 3, 1), &in_a, 1, NULL));
  ts_expect_message("node");
  /* a node not made yet in the model itself */
  nnlib_node later = in_a + 5;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_model_apply(a, ts_dense(0, 3, 1), &later, 1, NULL));
  ts_expect_message("node");
  assert_int_equal(nnlib_model_get_node_count(b), 1);
  nnlib_model_free(a);
  nnlib_model_free(b);
  ts_alloc_uninstall();
  assert_int_equal(stats.live, 0);
}

static void test_unused_input(void **state) {
  (void)state;
  ts_alloc_stats stats = {0};
  ts_alloc_install(&stats);
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  nnlib_node used = declare(m, WIDTH_IN, "used_in");
  declare(m, WIDTH_IN, "spare_in");
  dense_on(m, used, WIDTH_OUT);
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_model_compile_graph(m, BATCH, NNLIB_LOSS_MSE, NULL, 1));
  ts_expect_message("spare_in");
  nnlib_model_free(m);
  ts_alloc_uninstall();
  assert_int_equal(stats.live, 0);
}

static void test_add_of_mismatched_shapes(void **state) {
  (void)state;
  ts_alloc_stats stats = {0};
  ts_alloc_install(&stats);
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  nnlib_node x = declare(m, WIDTH_IN, NULL);
  nnlib_node in[2] = {dense_on(m, x, 3), dense_on(m, x, 5)};
  nnlib_layer *add = NULL;
  ASSERT_OK(nnlib_add_create(&add));
  nnlib_node sum = 0;
  ASSERT_OK(nnlib_model_apply(m, add, in, 2, &sum));
  ASSERT_OK(nnlib_model_set_node_name(m, sum, "bad_add"));
  dense_on(m, sum, WIDTH_OUT);
  nnlib_optimizer *sgd = NULL;
  ASSERT_OK(nnlib_sgd_create(&sgd, 0.1f, 0, 0, 0));
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH,
                nnlib_model_compile_graph(m, BATCH, NNLIB_LOSS_MSE, sgd, 1));
  ts_expect_message("bad_add");
  nnlib_model_free(m);
  ts_alloc_uninstall();
  assert_int_equal(stats.live, 0);
}

static void test_output_twice(void **state) {
  (void)state;
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  nnlib_node x = declare(m, WIDTH_IN, NULL);
  nnlib_node a = dense_on(m, x, 3);
  nnlib_node y = dense_on(m, a, WIDTH_OUT);
  ASSERT_OK(nnlib_model_set_output(m, y));
  ASSERT_STATUS(NNLIB_ERR_WRONG_STATE, nnlib_model_set_output(m, a));
  ASSERT_STATUS(NNLIB_ERR_WRONG_STATE, nnlib_model_set_output(m, y));
  nnlib_model_free(m);
}

static void test_backward_output_needs_forward(void **state) {
  (void)state;
  nnlib_model *m = two_input_model();
  batch b = make_batch(2, 9);
  nnlib_tensor *dy = ts_tensor2(BATCH, WIDTH_OUT, NULL);
  ASSERT_STATUS(NNLIB_ERR_WRONG_STATE, nnlib_model_backward_output(m, dy));
  const nnlib_tensor *y = NULL;
  ASSERT_OK(nnlib_model_forward_inputs(m, inputs_of(&b), 2, &y));
  ASSERT_OK(nnlib_model_backward_output(m, dy));
  /* a backward pass spends the forward pass, and so does any other call */
  ASSERT_STATUS(NNLIB_ERR_WRONG_STATE, nnlib_model_backward_output(m, dy));
  ASSERT_OK(nnlib_model_forward_inputs(m, inputs_of(&b), 2, &y));
  float loss;
  ASSERT_OK(nnlib_model_evaluate_inputs(m, inputs_of(&b), 2, b.target, &loss,
                                        NULL));
  ASSERT_STATUS(NNLIB_ERR_WRONG_STATE, nnlib_model_backward_output(m, dy));
  nnlib_tensor_free(dy);
  free_batch(&b);
  nnlib_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_random_graphs_one_input),
      cmocka_unit_test(test_random_graphs_two_inputs),
      cmocka_unit_test(test_same_node_twice_in_one_merge),
      cmocka_unit_test(test_bad_data),
      cmocka_unit_test(test_foreign_node),
      cmocka_unit_test(test_unused_input),
      cmocka_unit_test(test_add_of_mismatched_shapes),
      cmocka_unit_test(test_output_twice),
      cmocka_unit_test(test_backward_output_needs_forward),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
