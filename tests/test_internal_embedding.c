/* The embedding and positional layers, run by themselves through their
 * ops with parameters this test allocates (no model):
 *   - initialisation: the exact draws of the layer's generator, N(0, 1)
 *     for the embedding, 0.02 N(0, 1) for positions;
 *   - embedding forward against row lookups, its weight gradient exactly
 *     equal to a scatter-add of dy over repeated ids (summed per row in the
 *     same order), dx never written, fused SGD;
 *   - positional forward against x + W[t], its gradients against central
 *     differences of L = sum(r * y) in double (y is linear in x and W, so
 *     the quotient is exact up to rounding), dx in place, fused SGD;
 *   - decoding: a call of `steps` positions from `position` equals the
 *     matching rows of the full forward, positional also past the compiled
 *     T up to max_positions; its backward touches only those rows;
 *   - PyTorch: nn.Embedding plus a learned [P, D] parameter sliced [:T],
 *     forward, L = sum(y * R) and both weight gradients from
 *     tests/fixtures/torch_embedding.txt (tests/make_torch_embedding_
 *     fixtures.py), within 1e-5 relative (max |a - b| / max |b|);
 *   - descriptions and file configs through the codecs, and every refusal
 *     with its exact status. */
#include "fixtures.h"
#include "nnlib_internal.h"
#include "test_support.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TORCH_BAR 1e-5

/* ------------------------------------------------------------ helpers */

static nnlib__shape shape1(int64_t t) {
  nnlib__shape s = {.rank = 1, .dims = {t}};
  return s;
}

static nnlib__shape shape2(int64_t t, int64_t d) {
  nnlib__shape s = {.rank = 2, .dims = {t, d}};
  return s;
}

static float *floats(int64_t count) {
  float *p = malloc((size_t)(count > 0 ? count : 1) * sizeof(float));
  assert_non_null(p);
  return p;
}

static void fill(float *p, int64_t count, float value) {
  for (int64_t i = 0; i < count; i++)
    p[i] = value;
}

/* Plans l for `in` and gives each declared parameter a value and a
 * gradient of its own (the model's flat buffers in a real run), then runs
 * init from a generator seeded with `seed`. */
static void plan_and_init(nnlib_layer *l, nnlib__shape in, int64_t n,
                          uint64_t seed) {
  ASSERT_OK(nnlib__layer_plan(l, 0, &in, n, ""));
  for (size_t i = 0; i < l->param_count; i++) {
    nnlib__param *p = &l->params[i];
    nnlib__tensor_view(&p->value, floats(p->size), p->shape.dims,
                       p->shape.rank);
    nnlib__tensor_view(&p->grad, floats(p->size), p->shape.dims,
                       p->shape.rank);
    fill(p->grad.data, p->size, NAN);
  }
  nnlib__rng rng;
  nnlib__rng_seed(&rng, seed);
  l->ops->init(l, &rng);
}

static void free_layer(nnlib_layer *l) {
  for (size_t i = 0; i < l->param_count; i++) {
    free(l->params[i].value.data);
    free(l->params[i].grad.data);
  }
  nnlib_layer_free(l);
}

static nnlib_layer *embedding(int64_t vocab, int64_t dim) {
  nnlib_layer *l = NULL;
  ASSERT_OK(nnlib_embedding_create(&l, vocab, dim));
  return l;
}

static nnlib_layer *positional(int64_t max_positions) {
  nnlib_layer *l = NULL;
  ASSERT_OK(nnlib_positional_create(&l, max_positions));
  return l;
}

static const float *id_input(const int32_t *ids) {
  return (const float *)(const void *)ids;
}

static nnlib__run training_run(void) {
  nnlib__run run = {.training = true, .steps = 0, .position = 0,
                    .cache = NULL};
  return run;
}

/* ------------------------------------------------------ initialisation */

static void test_init_draws(void **state) {
  (void)state;
  nnlib_layer *e = embedding(5, 3), *p = positional(4);
  plan_and_init(e, shape1(2), 1, 42);
  plan_and_init(p, shape2(3, 6), 1, 43);
  assert_int_equal(e->param_count, 1);
  assert_string_equal(e->params[0].name, "weight");
  assert_int_equal(e->params[0].shape.dims[0], 5);
  assert_int_equal(e->params[0].shape.dims[1], 3);
  assert_string_equal(p->params[0].name, "weight");
  assert_int_equal(p->params[0].shape.dims[0], 4); /* max_positions, not T */
  assert_int_equal(p->params[0].shape.dims[1], 6);
  nnlib__rng a, b;
  nnlib__rng_seed(&a, 42);
  nnlib__rng_seed(&b, 43);
  for (int64_t i = 0; i < 15; i++)
    assert_true(e->params[0].value.data[i] == nnlib__rng_normal(&a));
  for (int64_t i = 0; i < 24; i++)
    assert_true(p->params[0].value.data[i] == 0.02f * nnlib__rng_normal(&b));
  free_layer(e);
  free_layer(p);
}

/* ------------------------------------------------------------ embedding */

enum { EV = 6, ED = 4, ET = 5, EN = 3 };
/* repeats within and across samples; id 4 never occurs */
static const int32_t emb_ids[EN * ET] = {0, 5, 2, 2, 0, 5, 5, 1,
                                         0, 3, 2, 2, 2, 2, 2};

/* dW[v] = sum of dy[r] over the rows r with id v, in row order */
static void scatter_reference(const int32_t *ids, const float *dy,
                              int64_t rows, float *dw) {
  for (int64_t v = 0; v < EV; v++)
    for (int64_t j = 0; j < ED; j++) {
      float sum = 0.0f;
      for (int64_t r = 0; r < rows; r++)
        if (ids[r] == v)
          sum += dy[r * ED + j];
      dw[v * ED + j] = sum;
    }
}

static void expect_lookup(const nnlib_layer *l, const int32_t *ids,
                          const float *y, int64_t rows) {
  const float *w = l->params[0].value.data;
  for (int64_t r = 0; r < rows; r++)
    for (int64_t j = 0; j < ED; j++)
      if (y[r * ED + j] != w[ids[r] * ED + j])
        fail_msg("y[%lld][%lld] = %g, W[%d][%lld] = %g", (long long)r,
                 (long long)j, (double)y[r * ED + j], ids[r], (long long)j,
                 (double)w[ids[r] * ED + j]);
}

static void test_embedding_forward_backward(void **state) {
  (void)state;
  nnlib_layer *l = embedding(EV, ED);
  plan_and_init(l, shape1(ET), EN, 1);
  assert_int_equal(l->out_shape.rank, 2);
  assert_int_equal(l->out_shape.dims[0], ET);
  assert_int_equal(l->out_shape.dims[1], ED);
  assert_int_equal(l->workspace_floats, 0);
  assert_true(l->ops->decodes);
  float *y = floats(EN * ET * ED), *dy = floats(EN * ET * ED);
  float *dx = floats(EN * ET), want[EV * ED];
  nnlib__run run = training_run();
  ASSERT_OK(l->ops->forward(l, &run, id_input(emb_ids), y, EN));
  expect_lookup(l, emb_ids, y, EN * ET);

  uint32_t seed = 7;
  ts_fill_uniform(dy, EN * ET * ED, -1.0f, 1.0f, &seed);
  scatter_reference(emb_ids, dy, EN * ET, want);
  fill(dx, EN * ET, 12345.0f);
  ASSERT_OK(l->ops->backward(l, &run, id_input(emb_ids), y, dy, dx, EN));
  const float *dw = l->params[0].grad.data;
  for (int64_t i = 0; i < EV * ED; i++)
    if (dw[i] != want[i])
      fail_msg("dW[%lld] = %.9g, scatter-add %.9g", (long long)i,
               (double)dw[i], (double)want[i]);
  for (int64_t j = 0; j < ED; j++)
    assert_true(dw[4 * ED + j] == 0.0f); /* unused id: zeroed, not NaN */
  for (int64_t i = 0; i < EN * ET; i++)
    assert_true(dx[i] == 12345.0f); /* ids have no gradient */
  /* dx NULL is the model's usual call */
  ASSERT_OK(l->ops->backward(l, &run, id_input(emb_ids), y, dy, NULL, EN));
  assert_memory_equal(dw, want, sizeof want);
  free(y);
  free(dy);
  free(dx);
  free_layer(l);
}

/* A call of 2 positions from position 3 (decoding): 2 ids per sample. */
static void test_embedding_steps(void **state) {
  (void)state;
  nnlib_layer *l = embedding(EV, ED);
  plan_and_init(l, shape1(ET), EN, 2);
  const int32_t ids[EN * 2] = {5, 5, 0, 3, 3, 5};
  float y[EN * 2 * ED], dy[EN * 2 * ED], want[EV * ED];
  fill(y, EN * 2 * ED, NAN);
  nnlib__run run = training_run();
  run.steps = 2;
  run.position = 3;
  ASSERT_OK(l->ops->forward(l, &run, id_input(ids), y, EN));
  expect_lookup(l, ids, y, EN * 2);
  uint32_t seed = 8;
  ts_fill_uniform(dy, EN * 2 * ED, -1.0f, 1.0f, &seed);
  scatter_reference(ids, dy, EN * 2, want);
  ASSERT_OK(l->ops->backward(l, &run, id_input(ids), y, dy, NULL, EN));
  assert_memory_equal(l->params[0].grad.data, want, sizeof want);

  /* the message counts positions from run->position */
  const int32_t bad[EN * 2] = {1, 1, 1, 1, 1, EV};
  ASSERT_STATUS(NNLIB_ERR_OUT_OF_RANGE,
                l->ops->forward(l, &run, id_input(bad), y, EN));
  ts_expect_message("sample 2, position 4");
  free_layer(l);
}

static void test_embedding_bad_ids(void **state) {
  (void)state;
  nnlib_layer *l = embedding(EV, ED);
  plan_and_init(l, shape1(ET), EN, 3);
  int32_t ids[EN * ET];
  float y[EN * ET * ED], dy[EN * ET * ED];
  fill(dy, EN * ET * ED, 1.0f);
  nnlib__run run = training_run();
  memcpy(ids, emb_ids, sizeof ids);
  ids[1 * ET + 2] = -1;
  ASSERT_STATUS(NNLIB_ERR_OUT_OF_RANGE,
                l->ops->forward(l, &run, id_input(ids), y, EN));
  ts_expect_message("sample 1, position 2 has token id -1");
  ts_expect_message("vocabulary of 6");
  /* backward never scatters outside W either */
  ASSERT_STATUS(NNLIB_ERR_OUT_OF_RANGE,
                l->ops->backward(l, &run, id_input(ids), y, dy, NULL, EN));
  memcpy(ids, emb_ids, sizeof ids);
  ids[2 * ET + 4] = EV;
  ASSERT_STATUS(NNLIB_ERR_OUT_OF_RANGE,
                l->ops->forward(l, &run, id_input(ids), y, EN));
  ts_expect_message("sample 2, position 4 has token id 6");
  ids[2 * ET + 4] = EV - 1; /* the last id is in the vocabulary */
  ASSERT_OK(l->ops->forward(l, &run, id_input(ids), y, EN));
  ids[0] = INT32_MIN;
  ASSERT_STATUS(NNLIB_ERR_OUT_OF_RANGE,
                l->ops->forward(l, &run, id_input(ids), y, EN));
  free_layer(l);
}

/* Fused SGD: W - lr dW of the unfused gradient, gradients untouched. */
static void test_embedding_fused_sgd(void **state) {
  (void)state;
  nnlib_layer *l = embedding(EV, ED);
  plan_and_init(l, shape1(ET), EN, 4);
  assert_true(l->ops->fuses_sgd);
  float y[EN * ET * ED], dy[EN * ET * ED], w0[EV * ED], dw[EV * ED];
  uint32_t seed = 9;
  ts_fill_uniform(dy, EN * ET * ED, -1.0f, 1.0f, &seed);
  memcpy(w0, l->params[0].value.data, sizeof w0);
  nnlib__run run = training_run();
  ASSERT_OK(l->ops->forward(l, &run, id_input(emb_ids), y, EN));
  ASSERT_OK(l->ops->backward(l, &run, id_input(emb_ids), y, dy, NULL, EN));
  memcpy(dw, l->params[0].grad.data, sizeof dw);
  fill(l->params[0].grad.data, EV * ED, NAN);
  run.sgd_fused = true;
  run.sgd_lr = 0.125f;
  ASSERT_OK(l->ops->backward(l, &run, id_input(emb_ids), y, dy, NULL, EN));
  for (int64_t i = 0; i < EV * ED; i++) {
    ASSERT_NEAR(l->params[0].value.data[i], w0[i] - 0.125f * dw[i], 1e-6);
    assert_true(isnan(l->params[0].grad.data[i]));
  }
  free_layer(l);
}

/* ----------------------------------------------------------- positional */

enum { PP = 7, PT = 5, PD = 3, PN = 4 };

typedef struct pos_data {
  float x[PN * PT * PD], y[PN * PT * PD], r[PN * PT * PD];
  float dy[PN * PT * PD], dx[PN * PT * PD];
} pos_data;

/* L = sum(r * y) in double after a forward pass */
static double pos_loss(nnlib_layer *l, pos_data *d) {
  nnlib__run run = training_run();
  ASSERT_OK(l->ops->forward(l, &run, d->x, d->y, PN));
  double sum = 0.0;
  for (int64_t i = 0; i < PN * PT * PD; i++)
    sum += (double)d->r[i] * d->y[i];
  return sum;
}

/* dL/dv from L(v + a) - L(v - b) = g (a + b), a and b the steps the float
 * v could take. */
static double difference(nnlib_layer *l, pos_data *d, float *v) {
  const float h = 0.25f, v0 = *v;
  *v = v0 + h;
  double up = pos_loss(l, d), a = (double)*v - v0;
  *v = v0 - h;
  double down = pos_loss(l, d), b = v0 - (double)*v;
  *v = v0;
  return (up - down) / (a + b);
}

static void expect_fd(const char *what, int64_t i, double got, double fd) {
  if (!(fabs(got - fd) <= 1e-5 * (1.0 + fabs(fd))))
    fail_msg("%s[%lld] = %.9g, finite difference %.9g", what, (long long)i,
             got, fd);
}

static void test_positional_forward_backward(void **state) {
  (void)state;
  nnlib_layer *l = positional(PP);
  plan_and_init(l, shape2(PT, PD), PN, 5);
  assert_int_equal(l->out_shape.rank, 2);
  assert_int_equal(l->out_shape.dims[0], PT);
  assert_int_equal(l->out_shape.dims[1], PD);
  assert_true(l->ops->decodes && l->ops->dx_over_output);
  /* W of order 0.02 would hide little: larger values check the rows */
  uint32_t seed = 10;
  ts_fill_uniform(l->params[0].value.data, PP * PD, -1.0f, 1.0f, &seed);
  static pos_data d;
  ts_fill_uniform(d.x, PN * PT * PD, -1.0f, 1.0f, &seed);
  ts_fill_uniform(d.r, PN * PT * PD, -1.0f, 1.0f, &seed);
  pos_loss(l, &d);
  const float *w = l->params[0].value.data;
  for (int64_t s = 0; s < PN; s++)
    for (int64_t t = 0; t < PT; t++)
      for (int64_t j = 0; j < PD; j++) {
        int64_t i = (s * PT + t) * PD + j;
        assert_true(d.y[i] == d.x[i] + w[t * PD + j]);
      }

  memcpy(d.dy, d.r, sizeof d.dy);
  fill(d.dx, PN * PT * PD, NAN);
  nnlib__run run = training_run();
  ASSERT_OK(l->ops->backward(l, &run, d.x, d.y, d.dy, d.dx, PN));
  float dw[PP * PD];
  memcpy(dw, l->params[0].grad.data, sizeof dw);
  for (int64_t i = 0; i < PP * PD; i++)
    expect_fd("dW", i, dw[i], difference(l, &d, &l->params[0].value.data[i]));
  for (int64_t i = PT * PD; i < PP * PD; i++)
    assert_true(dw[i] == 0.0f); /* rows past T: zero, not NaN */
  for (int64_t i = 0; i < PN * PT * PD; i++)
    expect_fd("dx", i, d.dx[i], difference(l, &d, &d.x[i]));

  /* dx in dy's own buffer, and in y's (dx_over_output): same results */
  ASSERT_OK(l->ops->backward(l, &run, d.x, d.y, d.dy, d.dy, PN));
  assert_memory_equal(d.dy, d.r, sizeof d.dy);
  assert_memory_equal(l->params[0].grad.data, dw, sizeof dw);
  ASSERT_OK(l->ops->backward(l, &run, d.x, d.y, d.dy, d.y, PN));
  assert_memory_equal(d.y, d.r, sizeof d.y);
  assert_memory_equal(l->params[0].grad.data, dw, sizeof dw);
  free_layer(l);
}

/* max_positions 0: W has the planned T rows, planned again for a new T */
static void test_positional_takes_t(void **state) {
  (void)state;
  nnlib_layer *l = positional(0);
  nnlib__shape in = shape2(6, 4);
  ASSERT_OK(nnlib__layer_plan(l, 0, &in, 2, ""));
  assert_int_equal(l->params[0].shape.dims[0], 6);
  assert_int_equal(l->params[0].shape.dims[1], 4);
  in = shape2(3, 5);
  ASSERT_OK(nnlib__layer_plan(l, 0, &in, 2, ""));
  assert_int_equal(l->param_count, 1);
  assert_int_equal(l->params[0].shape.dims[0], 3);
  assert_int_equal(l->params[0].shape.dims[1], 5);
  nnlib_layer_free(l);
}

/* Rows [p, p + steps) of each of the n samples of a [n, T, D] block */
static void take_rows(const float *full, int64_t n, int64_t t, int64_t d,
                      int64_t p, int64_t steps, float *part) {
  for (int64_t s = 0; s < n; s++)
    memcpy(part + s * steps * d, full + (s * t + p) * d,
           (size_t)(steps * d) * sizeof(float));
}

enum { DP = 9, DT = 6, DD = 3, DN = 2 };

static void test_positional_decoding(void **state) {
  (void)state;
  nnlib_layer *l = positional(DP);
  plan_and_init(l, shape2(DT, DD), DN, 6);
  float x[DN * DT * DD], y[DN * DT * DD];
  float xp[DN * DT * DD], yp[DN * DT * DD], want[DN * DT * DD];
  uint32_t seed = 11;
  ts_fill_uniform(x, DN * DT * DD, -1.0f, 1.0f, &seed);
  nnlib__run run = training_run();
  ASSERT_OK(l->ops->forward(l, &run, x, y, DN));
  const int64_t stretches[][2] = {{0, 1}, {2, 3}, {5, 1}, {0, 6}, {1, 5}};
  for (size_t k = 0; k < sizeof stretches / sizeof stretches[0]; k++) {
    int64_t p = stretches[k][0], steps = stretches[k][1];
    take_rows(x, DN, DT, DD, p, steps, xp);
    take_rows(y, DN, DT, DD, p, steps, want);
    nnlib__run dec = {.training = false, .steps = steps, .position = p};
    ASSERT_OK(l->ops->forward(l, &dec, xp, yp, DN));
    assert_memory_equal(yp, want, (size_t)(DN * steps * DD) * sizeof(float));
  }
  /* past the compiled T, within max_positions: rows 6..8 of W */
  const float *w = l->params[0].value.data;
  nnlib__run late = {.training = false, .steps = 3, .position = 6};
  ASSERT_OK(l->ops->forward(l, &late, x, yp, DN));
  for (int64_t s = 0; s < DN; s++)
    for (int64_t i = 0; i < 3 * DD; i++)
      assert_true(yp[s * 3 * DD + i] == x[s * 3 * DD + i] + w[6 * DD + i]);
  late.position = 7; /* 7 + 3 > 9 */
  ASSERT_STATUS(NNLIB_ERR_OUT_OF_RANGE, l->ops->forward(l, &late, x, yp, DN));
  ts_expect_message("positions 7 to 9");
  late.position = -1;
  ASSERT_STATUS(NNLIB_ERR_OUT_OF_RANGE, l->ops->forward(l, &late, x, yp, DN));

  /* backward of positions 2..4: those rows get the batch sums, the rest 0 */
  nnlib__run mid = {.training = true, .steps = 3, .position = 2};
  float dy[DN * 3 * DD], dx[DN * 3 * DD];
  ts_fill_uniform(dy, DN * 3 * DD, -1.0f, 1.0f, &seed);
  ASSERT_OK(l->ops->backward(l, &mid, x, yp, dy, dx, DN));
  const float *dw = l->params[0].grad.data;
  for (int64_t t = 0; t < DP; t++)
    for (int64_t j = 0; j < DD; j++) {
      float sum = 0.0f;
      for (int64_t s = 0; t >= 2 && t < 5 && s < DN; s++)
        sum += dy[(s * 3 + t - 2) * DD + j];
      assert_true(dw[t * DD + j] == sum);
    }
  assert_memory_equal(dx, dy, sizeof dx);
  free_layer(l);
}

static void test_positional_fused_sgd(void **state) {
  (void)state;
  nnlib_layer *l = positional(PP);
  plan_and_init(l, shape2(PT, PD), PN, 7);
  assert_true(l->ops->fuses_sgd);
  static pos_data d;
  uint32_t seed = 12;
  ts_fill_uniform(d.x, PN * PT * PD, -1.0f, 1.0f, &seed);
  ts_fill_uniform(d.dy, PN * PT * PD, -1.0f, 1.0f, &seed);
  float w0[PP * PD], dw[PP * PD];
  memcpy(w0, l->params[0].value.data, sizeof w0);
  nnlib__run run = training_run();
  ASSERT_OK(l->ops->backward(l, &run, d.x, d.y, d.dy, NULL, PN));
  memcpy(dw, l->params[0].grad.data, sizeof dw);
  fill(l->params[0].grad.data, PP * PD, NAN);
  run.sgd_fused = true;
  run.sgd_lr = 0.5f;
  ASSERT_OK(l->ops->backward(l, &run, d.x, d.y, d.dy, d.dx, PN));
  for (int64_t i = 0; i < PP * PD; i++) {
    ASSERT_NEAR(l->params[0].value.data[i], w0[i] - 0.5f * dw[i], 1e-7);
    assert_true(isnan(l->params[0].grad.data[i]));
  }
  assert_memory_equal(d.dx, d.dy, sizeof d.dx);
  free_layer(l);
}

/* ------------------------------------------------------------- PyTorch */

/* max |a - b| / max |b| */
static void expect_close(const fx_case *c, const char *what, const float *a,
                         const fx_tensor *b, int64_t count) {
  assert_int_equal(b->size, count);
  double diff = 0.0, scale = 0.0;
  for (int64_t i = 0; i < b->size; i++) {
    double d = fabs((double)a[i] - b->data[i]);
    if (d > diff || isnan(d))
      diff = d;
    if (fabs(b->data[i]) > scale)
      scale = fabs(b->data[i]);
  }
  double err = diff / (scale > 0.0 ? scale : 1.0);
  print_message("  %-26s %-12s %.2e\n", c->name, what, err);
  if (!(err <= TORCH_BAR))
    fail_msg("%s %s: relative error %.3g exceeds %.0e", c->name, what, err,
             TORCH_BAR);
}

static void set_weight(nnlib_layer *l, const fx_tensor *t) {
  assert_int_equal(l->params[0].size, t->size);
  memcpy(l->params[0].value.data, t->data, (size_t)t->size * sizeof(float));
}

static void check_torch_case(const fx_case *c) {
  int64_t vocab = fx_int(c, "vocab"), dim = fx_int(c, "dim");
  int64_t n = fx_int(c, "n"), steps = fx_int(c, "steps");
  int64_t rows = n * steps, count = rows * dim;
  nnlib_layer *e = embedding(vocab, dim);
  nnlib_layer *p = positional(fx_int(c, "max_positions"));
  plan_and_init(e, shape1(steps), n, 1);
  plan_and_init(p, shape2(steps, dim), n, 1);
  set_weight(e, fx_need(c, "w_emb"));
  set_weight(p, fx_need(c, "w_pos"));
  const fx_tensor *fx_ids = fx_need(c, "ids"), *r = fx_need(c, "r");
  assert_int_equal(fx_ids->size, rows);
  int32_t *ids = malloc((size_t)rows * sizeof(int32_t));
  assert_non_null(ids);
  for (int64_t i = 0; i < rows; i++)
    ids[i] = (int32_t)fx_ids->data[i];
  float *h = floats(count), *y = floats(count), *dy = floats(count),
        *dh = floats(count);
  nnlib__run run = training_run();
  ASSERT_OK(e->ops->forward(e, &run, id_input(ids), h, n));
  ASSERT_OK(p->ops->forward(p, &run, h, y, n));
  expect_close(c, "y", y, fx_need(c, "y"), count);
  double loss = 0.0;
  for (int64_t i = 0; i < count; i++)
    loss += (double)y[i] * r->data[i];
  float loss_f = (float)loss;
  expect_close(c, "loss", &loss_f, fx_need(c, "loss"), 1);
  memcpy(dy, r->data, (size_t)count * sizeof(float));
  ASSERT_OK(p->ops->backward(p, &run, h, y, dy, dh, n));
  ASSERT_OK(e->ops->backward(e, &run, id_input(ids), h, dh, NULL, n));
  expect_close(c, "dW_pos", p->params[0].grad.data, fx_need(c, "dw_pos"),
               p->params[0].size);
  expect_close(c, "dW_emb", e->params[0].grad.data, fx_need(c, "dw_emb"),
               e->params[0].size);
  free(ids);
  free(h);
  free(y);
  free(dy);
  free(dh);
  free_layer(e);
  free_layer(p);
}

static void test_torch_fixtures(void **state) {
  (void)state;
  char version[64];
  FILE *f = fx_open("torch_embedding.txt", version);
  print_message("  fixtures from torch %s\n", version);
  fx_case c;
  int cases = 0;
  while (fx_read_case(f, &c)) {
    check_torch_case(&c);
    fx_free_case(&c);
    cases++;
  }
  fclose(f);
  assert_int_equal(cases, 4);
}

/* The first fixture case through a compiled model (int32 ids in a
 * public tensor): forward, the gradients of an MSE target chosen so that
 * dL/dy = R (t = y - R count / 2), then one plain-SGD step, which the
 * model fuses into backward since both layers fuse it. */
static nnlib_model *fixture_model(const fx_case *c, int64_t n, int64_t steps,
                                  float lr) {
  nnlib_model *m = NULL;
  nnlib_optimizer *sgd = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add(m, embedding(fx_int(c, "vocab"),
                                         fx_int(c, "dim"))));
  ASSERT_OK(nnlib_model_add(m, positional(fx_int(c, "max_positions"))));
  ASSERT_OK(nnlib_sgd_create(&sgd, lr, 0.0f, 0, 0.0f));
  ASSERT_OK(nnlib_model_compile(m, &steps, 1, n, NNLIB_LOSS_MSE, sgd, 1));
  const char *names[2] = {"w_emb", "w_pos"};
  for (size_t i = 0; i < 2; i++) {
    nnlib_tensor *value = NULL;
    ASSERT_OK(nnlib_layer_get_param(nnlib_model_get_layer(m, i), 0, &value,
                                    NULL));
    const fx_tensor *w = fx_need(c, names[i]);
    assert_int_equal(nnlib_tensor_get_size(value), w->size);
    memcpy(nnlib_tensor_get_data(value), w->data,
           (size_t)w->size * sizeof(float));
  }
  return m;
}

static const float *param_data(nnlib_model *m, size_t layer, bool grad) {
  nnlib_tensor *value = NULL, *gradient = NULL;
  ASSERT_OK(nnlib_layer_get_param(nnlib_model_get_layer(m, layer), 0, &value,
                                  &gradient));
  return nnlib_tensor_get_data(grad ? gradient : value);
}

static void check_model_case(const fx_case *c) {
  int64_t dim = fx_int(c, "dim"), n = fx_int(c, "n");
  int64_t steps = fx_int(c, "steps"), count = n * steps * dim;
  const float lr = 0.0625f;
  nnlib_model *m = fixture_model(c, n, steps, lr);
  nnlib_tensor *ids = NULL, *target = NULL;
  int64_t id_shape[2] = {n, steps}, y_shape[3] = {n, steps, dim};
  ASSERT_OK(nnlib_tensor_create_int32(&ids, id_shape, 2));
  ASSERT_OK(nnlib_tensor_create(&target, y_shape, 3));
  const fx_tensor *fx_ids = fx_need(c, "ids"), *r = fx_need(c, "r");
  int32_t *id = nnlib_tensor_get_data_int32(ids);
  for (int64_t i = 0; i < n * steps; i++)
    id[i] = (int32_t)fx_ids->data[i];
  const nnlib_tensor *out = NULL;
  ASSERT_OK(nnlib_model_forward(m, ids, &out));
  expect_close(c, "model y", nnlib_tensor_get_data_const(out),
               fx_need(c, "y"), count);

  const fx_tensor *y = fx_need(c, "y");
  float *t = nnlib_tensor_get_data(target);
  for (int64_t i = 0; i < count; i++)
    t[i] = y->data[i] - r->data[i] * (float)count / 2.0f;
  ASSERT_OK(nnlib_model_backward(m, ids, target, NULL));
  expect_close(c, "model dW_emb", param_data(m, 0, true),
               fx_need(c, "dw_emb"), fx_need(c, "dw_emb")->size);
  expect_close(c, "model dW_pos", param_data(m, 1, true),
               fx_need(c, "dw_pos"), fx_need(c, "dw_pos")->size);

  /* one step: W - lr dW for both weights */
  const char *w_names[2] = {"w_emb", "w_pos"}, *g_names[2] = {"dw_emb",
                                                              "dw_pos"};
  ASSERT_OK(nnlib_model_step(m, ids, target, NULL));
  for (size_t i = 0; i < 2; i++) {
    const fx_tensor *w = fx_need(c, w_names[i]), *g = fx_need(c, g_names[i]);
    float *want = floats(w->size);
    for (int64_t k = 0; k < w->size; k++)
      want[k] = w->data[k] - lr * g->data[k];
    fx_tensor stepped = *w;
    stepped.data = want;
    expect_close(c, i == 0 ? "step W_emb" : "step W_pos",
                 param_data(m, i, false), &stepped, w->size);
    free(want);
  }

  /* float ids and ids outside the vocabulary, with exact statuses */
  nnlib_tensor *float_ids = NULL;
  ASSERT_OK(nnlib_tensor_create(&float_ids, id_shape, 2));
  ASSERT_STATUS(NNLIB_ERR_DTYPE, nnlib_model_forward(m, float_ids, &out));
  id[n * steps - 1] = (int32_t)fx_int(c, "vocab");
  ASSERT_STATUS(NNLIB_ERR_OUT_OF_RANGE, nnlib_model_forward(m, ids, &out));
  ts_expect_message("outside the vocabulary");
  nnlib_tensor_free(float_ids);
  nnlib_tensor_free(ids);
  nnlib_tensor_free(target);
  nnlib_model_free(m);
}

static void test_model_fixtures(void **state) {
  (void)state;
  char version[64];
  FILE *f = fx_open("torch_embedding.txt", version);
  fx_case c;
  int cases = 0;
  while (fx_read_case(f, &c)) {
    check_model_case(&c);
    fx_free_case(&c);
    cases++;
  }
  fclose(f);
  assert_int_equal(cases, 4);
}

/* ------------------------------------------------------ codec, refusals */

static void test_descriptions(void **state) {
  (void)state;
  static const char *const items[][2] = {
      {"embedding:65:32", "embedding:65:32"},
      {"embedding:1:1", "embedding:1:1"},
      {"positional", "positional"},
      {"positional:0", "positional"},
      {"positional:256", "positional:256"},
      {"embedding:65:32, positional:128", "embedding:65:32,positional:128"},
  };
  ts_check_spec_items(items, sizeof items / sizeof items[0]);
  static const char *const bad[][2] = {
      {"embedding:0:4", "embedding"},
      {"embedding:5", "embedding"},
      {"embedding:5:4:2", "embedding"},
      {"embedding:5:x", "embedding"},
      {"embedding:2147483648:4", "embedding"},
      {"embedding:2147483647:2147483647", "embedding weight"},
      {"positional:-1", "positional"},
      {"positional:4:4", "positional"},
  };
  ts_check_spec_errors(bad, sizeof bad / sizeof bad[0]);
}

/* write_config then read_config gives a layer that prints the same item */
static void round_trip(nnlib_layer *l, size_t config_bytes) {
  const nnlib__layer_codec *codec = nnlib__codec_for_kind(l->ops->kind);
  assert_non_null(codec);
  unsigned char bytes[64];
  nnlib__writer w = {bytes, 0, sizeof bytes};
  codec->write_config(l, &w);
  assert_int_equal(w.size, config_bytes);
  nnlib__reader r = {bytes, w.size, "test config"};
  nnlib_layer *back = NULL;
  ASSERT_OK(codec->read_config(&r, &back));
  assert_int_equal(r.left, 0);
  char a[64], b[64];
  nnlib__text ta = {a, sizeof a, 0}, tb = {b, sizeof b, 0};
  codec->write_spec(l, &ta);
  codec->write_spec(back, &tb);
  assert_string_equal(a, b);
  nnlib_layer_free(back);
  nnlib_layer_free(l);
}

/* read_config of raw little-endian i64 values */
static nnlib_status read_values(nnlib_layer_kind kind, const int64_t *v,
                                size_t count, nnlib_layer **out) {
  unsigned char bytes[64];
  nnlib__writer w = {bytes, 0, sizeof bytes};
  for (size_t i = 0; i < count; i++)
    nnlib__put_i64(&w, v[i]);
  nnlib__reader r = {bytes, w.size, "test config"};
  return nnlib__codec_for_kind(kind)->read_config(&r, out);
}

static void test_configs(void **state) {
  (void)state;
  round_trip(embedding(65, 32), 16);
  round_trip(embedding(2147483647, 1), 16);
  round_trip(positional(0), 8);
  round_trip(positional(1024), 8);
  nnlib_layer *l = NULL;
  const int64_t corrupt_emb[][2] = {{0, 4},
                                    {4, 0},
                                    {-3, 4},
                                    {(int64_t)1 << 31, 4},
                                    {4, INT64_MAX},
                                    {2147483647, 2147483647}};
  for (size_t i = 0; i < sizeof corrupt_emb / sizeof corrupt_emb[0]; i++) {
    ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE,
                  read_values(NNLIB_LAYER_EMBEDDING, corrupt_emb[i], 2, &l));
    assert_null(l);
  }
  const int64_t one = 5, negative = -1;
  ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE,
                read_values(NNLIB_LAYER_EMBEDDING, &one, 1, &l)); /* short */
  ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE,
                read_values(NNLIB_LAYER_POSITIONAL, &negative, 1, &l));
  ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE,
                read_values(NNLIB_LAYER_POSITIONAL, NULL, 0, &l)); /* empty */
  assert_null(l);
}

static void test_constructor_refusals(void **state) {
  (void)state;
  nnlib_layer *l = (nnlib_layer *)&l; /* must come back NULL */
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_embedding_create(&l, 0, 4));
  assert_null(l);
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_embedding_create(&l, 4, 0));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_embedding_create(&l, -1, 4));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_embedding_create(NULL, 4, 4));
  ASSERT_STATUS(NNLIB_ERR_TOO_LARGE,
                nnlib_embedding_create(&l, (int64_t)1 << 31, 4));
  ASSERT_STATUS(NNLIB_ERR_TOO_LARGE,
                nnlib_embedding_create(&l, 4, (int64_t)1 << 31));
  /* each within 2^31 - 1, the product of floats beyond any memory */
  ASSERT_STATUS(NNLIB_ERR_TOO_LARGE,
                nnlib_embedding_create(&l, 2147483647, 2147483647));
  ts_expect_message("embedding weight");
  assert_null(l);
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_positional_create(&l, -1));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_positional_create(&l, INT64_MIN));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_positional_create(NULL, 4));
  assert_null(l);
}

static void test_plan_refusals(void **state) {
  (void)state;
  nnlib_layer *e = embedding(10, 4), *p = positional(4);
  nnlib__shape two = shape2(3, 4), one = shape1(3), three = {
      .rank = 3, .dims = {3, 4, 2}};
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH,
                nnlib__layer_plan(e, 2, &two, 8, ""));
  ts_expect_message("layer 2 (embedding)");
  ts_expect_message("an embedding reads [T] token ids");
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH,
                nnlib__layer_plan(e, 2, &three, 8, ""));
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH,
                nnlib__layer_plan(p, 1, &one, 8, ""));
  ts_expect_message("must be [T, D]");
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH,
                nnlib__layer_plan(p, 1, &three, 8, ""));
  nnlib__shape long_input = shape2(5, 4), fits = shape2(4, 4);
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH,
                nnlib__layer_plan(p, 1, &long_input, 8, ""));
  ts_expect_message("5 positions");
  ASSERT_OK(nnlib__layer_plan(p, 1, &fits, 8, ""));
  /* P x D beyond memory at plan */
  nnlib_layer *huge = positional(INT64_MAX / 2);
  ASSERT_STATUS(NNLIB_ERR_TOO_LARGE,
                nnlib__layer_plan(huge, 0, &fits, 8, ""));
  nnlib_layer_free(huge);
  nnlib_layer_free(e);
  nnlib_layer_free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_init_draws),
      cmocka_unit_test(test_embedding_forward_backward),
      cmocka_unit_test(test_embedding_steps),
      cmocka_unit_test(test_embedding_bad_ids),
      cmocka_unit_test(test_embedding_fused_sgd),
      cmocka_unit_test(test_positional_forward_backward),
      cmocka_unit_test(test_positional_takes_t),
      cmocka_unit_test(test_positional_decoding),
      cmocka_unit_test(test_positional_fused_sgd),
      cmocka_unit_test(test_torch_fixtures),
      cmocka_unit_test(test_model_fixtures),
      cmocka_unit_test(test_descriptions),
      cmocka_unit_test(test_configs),
      cmocka_unit_test(test_constructor_refusals),
      cmocka_unit_test(test_plan_refusals),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
