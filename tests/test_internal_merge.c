/* The merge layers add, multiply and concat, run by themselves through
 * their ops: forward against naive loops (concat by multi-index
 * arithmetic, independent of the layer's block walk), backward against
 * central differences of L = sum(w * y) in double. Each output is linear
 * in each single input element, so the difference quotient is exact up to
 * the rounding of y. Then the shape checks, the description items and the
 * file configs through the codecs, and a small graph through the public
 * API with nnlib_model_gradcheck_inputs. */
#include "nnlib_internal.h"
#include "test_support.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IN 4

typedef struct merge_case {
  const char *what;
  nnlib_layer_kind kind;
  int axis; /* concat */
  size_t count;
  nnlib__shape in[MAX_IN];
  int64_t n;
  bool no_dx[MAX_IN]; /* pass dx[i] = NULL */
  bool zero;          /* x_0[0] = 0: multiply must not divide by it */
} merge_case;

static nnlib_layer *make_layer(nnlib_layer_kind kind, int axis) {
  nnlib_layer *l = NULL;
  if (kind == NNLIB_LAYER_ADD)
    ASSERT_OK(nnlib_add_create(&l));
  else if (kind == NNLIB_LAYER_MULTIPLY)
    ASSERT_OK(nnlib_multiply_create(&l));
  else
    ASSERT_OK(nnlib_concat_create(&l, axis));
  return l;
}

static nnlib__shape shape3(size_t rank, int64_t a, int64_t b, int64_t c) {
  nnlib__shape s = {.rank = rank, .dims = {a, b, c}};
  return s;
}

static nnlib_status plan(nnlib_layer *l, const merge_case *c) {
  return nnlib__layer_plan_inputs(l, "node 9 (merge)", c->in, c->count, c->n,
                                  "");
}

/* ------------------------------------------------------ references */

static int64_t concat_axis(const merge_case *c) {
  return c->axis < 0 ? (int64_t)c->in[0].rank - 1 : c->axis;
}

static nnlib__shape expected_shape(const merge_case *c) {
  nnlib__shape out = c->in[0];
  if (c->kind == NNLIB_LAYER_CONCAT)
    for (size_t i = 1; i < c->count; i++)
      out.dims[concat_axis(c)] += c->in[i].dims[concat_axis(c)];
  return out;
}

/* Output element `flat` of one concat sample: the coordinates along the
 * axis pick the input, the rest carry over. */
static double concat_element(const merge_case *c, float *const *x,
                             int64_t sample, int64_t flat) {
  nnlib__shape out = expected_shape(c);
  int64_t coord[NNLIB_MAX_RANK] = {0}, axis = concat_axis(c);
  for (size_t d = out.rank; d-- > 0;) {
    coord[d] = flat % out.dims[d];
    flat /= out.dims[d];
  }
  size_t i = 0;
  while (coord[axis] >= c->in[i].dims[axis])
    coord[axis] -= c->in[i++].dims[axis];
  int64_t src = 0;
  for (size_t d = 0; d < out.rank; d++)
    src = src * c->in[i].dims[d] + coord[d];
  return x[i][sample * nnlib__shape_numel(&c->in[i]) + src];
}

/* Element k of add's or multiply's output over the batch. */
static double elementwise(const merge_case *c, float *const *x, int64_t k) {
  double v = x[0][k];
  for (size_t i = 1; i < c->count; i++)
    v = c->kind == NNLIB_LAYER_ADD ? v + x[i][k] : v * x[i][k];
  return v;
}

static void reference(const merge_case *c, float *const *x, double *y) {
  nnlib__shape out = expected_shape(c);
  int64_t per = nnlib__shape_numel(&out);
  for (int64_t s = 0; s < c->n; s++)
    for (int64_t j = 0; j < per; j++)
      y[s * per + j] = c->kind == NNLIB_LAYER_CONCAT
                           ? concat_element(c, x, s, j)
                           : elementwise(c, x, s * per + j);
}

/* ---------------------------------------------------- forward, backward */

typedef struct merge_data {
  float *x[MAX_IN], *dx[MAX_IN], *y, *w, *dy;
  int64_t in_floats[MAX_IN], out_floats;
} merge_data;

static void data_alloc(const merge_case *c, const nnlib_layer *l,
                       merge_data *d, uint32_t *seed) {
  memset(d, 0, sizeof *d);
  d->out_floats = c->n * l->out_size;
  for (size_t i = 0; i < c->count; i++) {
    d->in_floats[i] = c->n * nnlib__shape_numel(&c->in[i]);
    d->x[i] = malloc((size_t)d->in_floats[i] * sizeof(float));
    ts_fill_uniform(d->x[i], d->in_floats[i], -1.0f, 1.0f, seed);
    if (!c->no_dx[i]) {
      d->dx[i] = malloc((size_t)d->in_floats[i] * sizeof(float));
      for (int64_t j = 0; j < d->in_floats[i]; j++)
        d->dx[i][j] = NAN; /* every element must be written */
    }
  }
  if (c->zero)
    d->x[0][0] = 0.0f;
  d->y = malloc((size_t)d->out_floats * sizeof(float));
  d->w = malloc((size_t)d->out_floats * sizeof(float));
  d->dy = malloc((size_t)d->out_floats * sizeof(float));
  ts_fill_uniform(d->w, d->out_floats, -1.0f, 1.0f, seed);
}

static void data_free(merge_data *d) {
  for (size_t i = 0; i < MAX_IN; i++) {
    free(d->x[i]);
    free(d->dx[i]);
  }
  free(d->y);
  free(d->w);
  free(d->dy);
}

static void forward(nnlib_layer *l, const merge_case *c, merge_data *d) {
  nnlib__run run = {.training = true};
  ASSERT_OK(l->ops->forward_merge(l, &run, (const float *const *)d->x,
                                  c->count, d->y, c->n));
}

static double functional(nnlib_layer *l, const merge_case *c,
                         merge_data *d) {
  forward(l, c, d);
  double sum = 0.0;
  for (int64_t j = 0; j < d->out_floats; j++)
    sum += (double)d->w[j] * d->y[j];
  return sum;
}

static void check_forward(nnlib_layer *l, const merge_case *c,
                          merge_data *d) {
  forward(l, c, d);
  double *want = malloc((size_t)d->out_floats * sizeof(double));
  reference(c, d->x, want);
  for (int64_t j = 0; j < d->out_floats; j++)
    if (!(fabs(d->y[j] - want[j]) <= 2e-6))
      fail_msg("%s: y[%lld] = %.9g, reference %.9g", c->what, (long long)j,
               (double)d->y[j], want[j]);
  free(want);
}

/* dL/dx_i[j] from L(x + a e_j) - L(x - b e_j) = g (a + b), a and b the
 * steps the floats could take. */
static double difference(nnlib_layer *l, const merge_case *c, merge_data *d,
                         size_t i, int64_t j) {
  const float h = 0.25f, v = d->x[i][j];
  d->x[i][j] = v + h;
  double up = functional(l, c, d), a = (double)d->x[i][j] - v;
  d->x[i][j] = v - h;
  double down = functional(l, c, d), b = v - (double)d->x[i][j];
  d->x[i][j] = v;
  return (up - down) / (a + b);
}

static void check_backward(nnlib_layer *l, const merge_case *c,
                           merge_data *d) {
  forward(l, c, d);
  memcpy(d->dy, d->w, (size_t)d->out_floats * sizeof(float));
  nnlib__run run = {.training = true};
  ASSERT_OK(l->ops->backward_merge(l, &run, (const float *const *)d->x,
                                   c->count, d->y, d->dy, d->dx, c->n));
  for (size_t i = 0; i < c->count; i++)
    for (int64_t j = 0; d->dx[i] != NULL && j < d->in_floats[i]; j++) {
      double fd = difference(l, c, d, i, j);
      if (!(fabs(d->dx[i][j] - fd) <= 1e-5 * (1.0 + fabs(fd))))
        fail_msg("%s: dx%zu[%lld] = %.9g, finite difference %.9g", c->what,
                 i, (long long)j, (double)d->dx[i][j], fd);
    }
}

static void run_case(const merge_case *c, uint32_t seed) {
  nnlib_layer *l = make_layer(c->kind, c->axis);
  ASSERT_OK(plan(l, c));
  nnlib__shape want = expected_shape(c);
  assert_int_equal(l->out_shape.rank, want.rank);
  for (size_t d = 0; d < want.rank; d++)
    assert_int_equal(l->out_shape.dims[d], want.dims[d]);
  assert_int_equal(l->out_size, nnlib__shape_numel(&want));
  assert_int_equal(l->in_size, nnlib__shape_numel(&c->in[0]));
  assert_int_equal(l->workspace_floats, 0);
  assert_int_equal(l->param_count, 0);
  assert_int_equal(nnlib__layer_min_inputs(l), 2);
  merge_data d;
  data_alloc(c, l, &d, &seed);
  check_forward(l, c, &d);
  check_backward(l, c, &d);
  data_free(&d);
  nnlib_layer_free(l);
}

static void test_add(void **s) {
  (void)s;
  merge_case c = {.what = "add of 3 [2,3,4]",
                  .kind = NNLIB_LAYER_ADD,
                  .count = 3,
                  .n = 3,
                  .no_dx = {false, true, false}};
  for (size_t i = 0; i < 3; i++)
    c.in[i] = shape3(3, 2, 3, 4);
  run_case(&c, 1);
  c.what = "add of 2 [7]";
  c.count = 2;
  c.in[0] = c.in[1] = shape3(1, 7, 0, 0);
  c.no_dx[1] = false;
  run_case(&c, 2);
}

static void test_multiply(void **s) {
  (void)s;
  merge_case c = {.what = "multiply of 3 [5]",
                  .kind = NNLIB_LAYER_MULTIPLY,
                  .count = 3,
                  .n = 4,
                  .zero = true,
                  .no_dx = {false, false, true}};
  for (size_t i = 0; i < 3; i++)
    c.in[i] = shape3(1, 5, 0, 0);
  run_case(&c, 3);
  c.what = "multiply of 4 [2,3]";
  c.count = 4;
  for (size_t i = 0; i < 4; i++)
    c.in[i] = shape3(2, 2, 3, 0);
  c.no_dx[2] = false;
  run_case(&c, 4);
}

static void test_concat_channels(void **s) {
  (void)s;
  merge_case c = {.what = "concat axis 0 of [1|2|3,3,2]",
                  .kind = NNLIB_LAYER_CONCAT,
                  .axis = 0,
                  .count = 3,
                  .n = 2};
  c.in[0] = shape3(3, 1, 3, 2);
  c.in[1] = shape3(3, 2, 3, 2);
  c.in[2] = shape3(3, 3, 3, 2);
  run_case(&c, 5);
  c.what = "concat axis 1 of [2,1|4,3]";
  c.axis = 1;
  c.count = 2;
  c.in[0] = shape3(3, 2, 1, 3);
  c.in[1] = shape3(3, 2, 4, 3);
  c.no_dx[0] = true;
  run_case(&c, 6);
  c.what = "concat axis 0 of [4|1] features";
  c.axis = 0;
  c.in[0] = shape3(1, 4, 0, 0);
  c.in[1] = shape3(1, 1, 0, 0);
  c.no_dx[0] = false;
  run_case(&c, 7);
}

static void test_concat_last_axis(void **s) {
  (void)s;
  merge_case c = {.what = "concat axis -1 of [4,2|5|3]",
                  .kind = NNLIB_LAYER_CONCAT,
                  .axis = -1,
                  .count = 3,
                  .n = 3,
                  .no_dx = {false, true, false}};
  c.in[0] = shape3(2, 4, 2, 0);
  c.in[1] = shape3(2, 4, 5, 0);
  c.in[2] = shape3(2, 4, 3, 0);
  run_case(&c, 8);
}

/* --------------------------------------------------------- bad inputs */

static void expect_plan(nnlib_status want, const merge_case *c,
                        const char *needle) {
  nnlib_layer *l = make_layer(c->kind, c->axis);
  ASSERT_STATUS(want, plan(l, c));
  ts_expect_message(needle);
  ts_expect_message("node 9 (merge)");
  nnlib_layer_free(l);
}

static void test_mismatched_shapes(void **s) {
  (void)s;
  merge_case c = {.kind = NNLIB_LAYER_ADD, .count = 3, .n = 2};
  c.in[0] = c.in[1] = shape3(2, 2, 3, 0);
  c.in[2] = shape3(2, 3, 2, 0);
  expect_plan(NNLIB_ERR_SHAPE_MISMATCH, &c, "input 2 is [3, 2], input 0 is "
                                            "[2, 3]");
  c.kind = NNLIB_LAYER_MULTIPLY;
  c.in[2] = shape3(1, 6, 0, 0);
  expect_plan(NNLIB_ERR_SHAPE_MISMATCH, &c, "input 2 is [6], input 0 is "
                                            "[2, 3]");
  c.kind = NNLIB_LAYER_CONCAT; /* axis 0 may differ, axis 1 may not */
  c.in[2] = shape3(2, 2, 4, 0);
  expect_plan(NNLIB_ERR_SHAPE_MISMATCH, &c, "input 2 is [2, 4]");
  c.in[2] = shape3(3, 3, 3, 1);
  expect_plan(NNLIB_ERR_SHAPE_MISMATCH, &c, "input 2 is [3, 3, 1]");
}

static void test_names_and_kinds(void **s) {
  (void)s;
  const nnlib_layer_kind kinds[] = {NNLIB_LAYER_ADD, NNLIB_LAYER_CONCAT,
                                    NNLIB_LAYER_MULTIPLY};
  const char *const names[] = {"add", "concat", "multiply"};
  for (size_t i = 0; i < 3; i++) {
    nnlib_layer *l = make_layer(kinds[i], 0);
    assert_int_equal(nnlib_layer_get_kind(l), kinds[i]);
    assert_string_equal(nnlib_layer_get_name(l), names[i]);
    assert_true(nnlib__layer_is_merge(l));
    assert_int_equal(nnlib_layer_get_param_tensor_count(l), 0);
    nnlib_layer_free(l);
  }
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_add_create(NULL));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_multiply_create(NULL));
}

static void test_concat_axis_range(void **s) {
  (void)s;
  static char sentinel;
  nnlib_layer *l = (nnlib_layer *)(void *)&sentinel;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_concat_create(&l, -2));
  assert_null(l);
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_concat_create(&l, NNLIB_MAX_RANK - 1));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_concat_create(NULL, 0));
  ASSERT_OK(nnlib_concat_create(&l, NNLIB_MAX_RANK - 2));
  nnlib_layer_free(l);
  merge_case c = {.kind = NNLIB_LAYER_CONCAT, .axis = 1, .count = 2, .n = 1};
  c.in[0] = c.in[1] = shape3(1, 5, 0, 0);
  expect_plan(NNLIB_ERR_SHAPE_MISMATCH, &c, "axis 1");
  c.axis = 3;
  c.in[0] = c.in[1] = shape3(3, 2, 2, 2);
  expect_plan(NNLIB_ERR_SHAPE_MISMATCH, &c, "axis 3");
}

static void test_concat_input_limit(void **s) {
  (void)s;
  nnlib__shape in[17];
  for (size_t i = 0; i < 17; i++)
    in[i] = shape3(1, 2, 0, 0);
  nnlib_layer *l = make_layer(NNLIB_LAYER_CONCAT, 0);
  ASSERT_OK(nnlib__layer_plan_inputs(l, "node 1", in, 16, 4, ""));
  assert_int_equal(l->out_shape.dims[0], 32);
  ASSERT_STATUS(NNLIB_ERR_UNSUPPORTED,
                nnlib__layer_plan_inputs(l, "node 1", in, 17, 4, ""));
  ts_expect_message("more than 16");
  nnlib_layer_free(l);
}

/* ------------------------------------------- description items, config */

/* An item of a description split at ':' as the parser splits it. */
static nnlib__spec_item item_of(const char *text) {
  nnlib__spec_item it = {.index = 1, .column = 1, .text = text,
                         .length = strlen(text)};
  const char *start = text;
  for (const char *p = text;; p++)
    if (*p == ':' || *p == '\0') {
      it.fields[it.field_count].text = start;
      it.fields[it.field_count++].length = (size_t)(p - start);
      if (*p == '\0')
        break;
      start = p + 1;
    }
  return it;
}

static const nnlib__layer_codec *codec_of(const char *text) {
  size_t length = strcspn(text, ":");
  const nnlib__layer_codec *codec = nnlib__codec_for_name(text, length);
  assert_non_null(codec);
  assert_ptr_equal(codec, nnlib__codec_for_kind(codec->kind));
  return codec;
}

static void spec_text(const nnlib_layer *l, char *buf, size_t size) {
  nnlib__text t = {buf, size, 0};
  codec_of(nnlib_layer_get_name(l))->write_spec(l, &t);
}

static void test_spec_items(void **s) {
  (void)s;
  const char *const good[][2] = {
      {"concat:-1", "concat:-1"}, {"concat", "concat"},
      {"concat:0", "concat"},     {"concat:6", "concat:6"},
      {"add", "add"},             {"multiply", "multiply"}};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    nnlib__spec_item it = item_of(good[i][0]);
    nnlib_layer *l = NULL;
    ASSERT_OK(codec_of(good[i][0])->parse_spec(&it, &l));
    char buf[32];
    spec_text(l, buf, sizeof buf);
    assert_string_equal(buf, good[i][1]);
    nnlib_layer_free(l);
  }
  const char *const bad[][2] = {{"concat:7", "is -1 (the last) or 0 to 6"},
                                {"concat:-2", "is -1 (the last) or 0 to 6"},
                                {"concat:x", "\"concat:x\" at column 1"},
                                {"concat:1:2", "concat:1:2"},
                                {"add:1", "add:1"},
                                {"multiply:0", "multiply:0"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    nnlib__spec_item it = item_of(bad[i][0]);
    nnlib_layer *l = NULL;
    ASSERT_STATUS(NNLIB_ERR_PARSE, codec_of(bad[i][0])->parse_spec(&it, &l));
    ts_expect_message(bad[i][1]);
    assert_null(l);
  }
}

/* write_config counted, then written, then read back into an equal layer */
static void round_trip(nnlib_layer *l, size_t bytes) {
  const nnlib__layer_codec *codec = nnlib__codec_for_kind(l->ops->kind);
  nnlib__writer count = {NULL, 0, 0};
  codec->write_config(l, &count);
  assert_int_equal(count.size, bytes);
  unsigned char buf[16];
  nnlib__writer w = {buf, 0, sizeof buf};
  codec->write_config(l, &w);
  assert_int_equal(w.size, bytes);
  nnlib__reader r = {buf, w.size, "layer 0 config"};
  nnlib_layer *back = NULL;
  ASSERT_OK(codec->read_config(&r, &back));
  assert_int_equal(r.left, 0);
  char want[32], got[32];
  spec_text(l, want, sizeof want);
  spec_text(back, got, sizeof got);
  assert_string_equal(got, want);
  nnlib_layer_free(back);
  nnlib_layer_free(l);
}

static nnlib_status read_concat_axis(int64_t axis, size_t bytes) {
  unsigned char buf[8];
  nnlib__writer w = {buf, 0, sizeof buf};
  nnlib__put_i64(&w, axis);
  nnlib__reader r = {buf, bytes, "layer 3 config"};
  nnlib_layer *l = NULL;
  nnlib_status st = nnlib__concat_codec.read_config(&r, &l);
  if (st == NNLIB_OK)
    nnlib_layer_free(l);
  return st;
}

static void test_configs(void **s) {
  (void)s;
  round_trip(make_layer(NNLIB_LAYER_ADD, 0), 0);
  round_trip(make_layer(NNLIB_LAYER_MULTIPLY, 0), 0);
  round_trip(make_layer(NNLIB_LAYER_CONCAT, -1), 8);
  round_trip(make_layer(NNLIB_LAYER_CONCAT, 0), 8);
  round_trip(make_layer(NNLIB_LAYER_CONCAT, 2), 8);
  ASSERT_OK(read_concat_axis(NNLIB_MAX_RANK - 2, 8));
  ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE, read_concat_axis(NNLIB_MAX_RANK - 1, 8));
  ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE, read_concat_axis(-2, 8));
  ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE, read_concat_axis(INT64_MIN, 8));
  ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE, read_concat_axis(0, 4)); /* short */
}

/* ------------------------------------------------- through a model */

static nnlib_node apply(nnlib_model *m, nnlib_layer *l, size_t count, ...) {
  nnlib_node in[MAX_IN], node = 0;
  va_list args;
  va_start(args, count);
  for (size_t i = 0; i < count; i++)
    in[i] = va_arg(args, nnlib_node);
  va_end(args);
  ASSERT_OK(nnlib_model_apply(m, l, in, count, &node));
  return node;
}

static nnlib_layer *dense(int64_t units) {
  nnlib_layer *l = NULL;
  ASSERT_OK(nnlib_dense_create(&l, 0, units, 1));
  return l;
}

static nnlib_layer *tanh_layer(void) {
  nnlib_layer *l = NULL;
  ASSERT_OK(nnlib_activation_create(&l, NNLIB_ACT_TANH, 0.0f));
  return l;
}

/* Two inputs x [5] and v [3]; two tanh(dense) branches a, b of x (x and
 * both branches fan out), sum = add(a, b), gate = multiply(a, sum, b),
 * joined = concat(sum, gate, v) [11], a dense head [3] on it; MSE. */
static nnlib_model *graph_model(void) {
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  const int64_t xs = 5, vs = 3;
  nnlib_node x, v;
  ASSERT_OK(nnlib_model_input(m, &xs, 1, &x));
  ASSERT_OK(nnlib_model_input(m, &vs, 1, &v));
  nnlib_node a = apply(m, tanh_layer(), 1, apply(m, dense(4), 1, x));
  nnlib_node b = apply(m, tanh_layer(), 1, apply(m, dense(4), 1, x));
  nnlib_node sum = apply(m, make_layer(NNLIB_LAYER_ADD, 0), 2, a, b);
  nnlib_node gate =
      apply(m, make_layer(NNLIB_LAYER_MULTIPLY, 0), 3, a, sum, b);
  nnlib_node joined =
      apply(m, make_layer(NNLIB_LAYER_CONCAT, -1), 3, sum, gate, v);
  apply(m, dense(3), 1, joined);
  nnlib_optimizer *opt = NULL;
  ASSERT_OK(nnlib_sgd_create(&opt, 0.1f, 0, 0, 0));
  ASSERT_OK(nnlib_model_compile_graph(m, 4, NNLIB_LOSS_MSE, opt, 5));
  return m;
}

static nnlib_tensor *random_tensor(int64_t rows, int64_t cols,
                                   uint32_t *seed) {
  nnlib_tensor *t = ts_tensor2(rows, cols, NULL);
  ts_fill_uniform(nnlib_tensor_get_data(t), rows * cols, -1.0f, 1.0f, seed);
  return t;
}

static void test_graph_gradcheck(void **s) {
  (void)s;
  nnlib_model *m = graph_model();
  uint32_t seed = 21;
  nnlib_tensor *x = random_tensor(4, 5, &seed), *v = random_tensor(4, 3, &seed),
               *t = random_tensor(4, 3, &seed);
  const nnlib_tensor *inputs[2] = {x, v};
  double err = -1.0;
  ASSERT_OK(nnlib_model_gradcheck_inputs(m, inputs, 2, t, NULL, &err));
  print_message("  add/multiply/concat graph gradcheck %.2e\n", err);
  assert_true(err >= 0.0 && err < 1e-3);
  nnlib_tensor_free(x);
  nnlib_tensor_free(v);
  nnlib_tensor_free(t);
  nnlib_model_free(m);
}

/* The mean loss at the inputs as they are now. */
static double loss_at(nnlib_model *m, const nnlib_tensor *const *inputs,
                      const nnlib_tensor *t) {
  float loss = 0.0f;
  ASSERT_OK(nnlib_model_evaluate_inputs(m, inputs, 2, t, &loss, NULL));
  return loss;
}

/* |g - fd| / (|g| + |fd|) over one input's gradient, fd the central
 * difference of the loss with h = 1e-2 */
static double input_grad_error(nnlib_model *m, nnlib_tensor *const *inputs,
                               const nnlib_tensor *t, size_t k) {
  const nnlib_tensor *g = NULL;
  ASSERT_OK(nnlib_model_get_input_gradient(m, k, &g));
  float gd[32]; /* borrowed until the next call: copied */
  int64_t size = nnlib_tensor_get_size(g);
  assert_true(size == nnlib_tensor_get_size(inputs[k]) && size <= 32);
  memcpy(gd, nnlib_tensor_get_data_const(g), (size_t)size * sizeof(float));
  float *xd = nnlib_tensor_get_data(inputs[k]);
  const float h = 1e-2f;
  double diff = 0.0, norm = 0.0;
  for (int64_t j = 0; j < size; j++) {
    const float keep = xd[j];
    xd[j] = keep + h;
    double up = loss_at(m, (const nnlib_tensor *const *)inputs, t);
    xd[j] = keep - h;
    double down = loss_at(m, (const nnlib_tensor *const *)inputs, t);
    xd[j] = keep;
    double fd = (up - down) / (2.0 * h);
    diff += (gd[j] - fd) * (gd[j] - fd);
    norm += fabs(gd[j]) + fabs(fd);
  }
  return sqrt(diff) / fmax(norm, 1e-12);
}

/* dL/dx reaches x through both branches and all three merges, dL/dv
 * through concat's slice alone. */
static void test_graph_input_gradients(void **s) {
  (void)s;
  nnlib_model *m = graph_model();
  uint32_t seed = 33;
  nnlib_tensor *inputs[2] = {random_tensor(4, 5, &seed),
                             random_tensor(4, 3, &seed)};
  nnlib_tensor *t = random_tensor(4, 3, &seed);
  ASSERT_OK(nnlib_model_set_input_gradients(m, 1));
  float loss = 0.0f;
  ASSERT_OK(nnlib_model_backward_inputs(
      m, (const nnlib_tensor *const *)inputs, 2, t, &loss));
  for (size_t k = 0; k < 2; k++) {
    double err = input_grad_error(m, inputs, t, k);
    print_message("  input %zu gradient error %.2e\n", k, err);
    assert_true(err < 1e-3);
  }
  nnlib_tensor_free(inputs[0]);
  nnlib_tensor_free(inputs[1]);
  nnlib_tensor_free(t);
  nnlib_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_add),
      cmocka_unit_test(test_multiply),
      cmocka_unit_test(test_concat_channels),
      cmocka_unit_test(test_concat_last_axis),
      cmocka_unit_test(test_names_and_kinds),
      cmocka_unit_test(test_mismatched_shapes),
      cmocka_unit_test(test_concat_axis_range),
      cmocka_unit_test(test_concat_input_limit),
      cmocka_unit_test(test_spec_items),
      cmocka_unit_test(test_configs),
      cmocka_unit_test(test_graph_gradcheck),
      cmocka_unit_test(test_graph_input_gradients),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
