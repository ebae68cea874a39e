/* The attention layer run by itself through its ops, with its parameters,
 * gradients and workspace allocated here:
 *   - forward against naive loops in double, backward against central
 *     differences of those loops in double (L = sum(g * y)), over shapes,
 *     head counts, causal or not, with and without biases;
 *   - backward against central differences of the layer's own forward in
 *     float, with dropout (the generator rewound before every pass, so
 *     each pass draws backward's mask);
 *   - PyTorch's nn.MultiheadAttention (tests/fixtures/torch_attention.txt
 *     from tests/make_torch_attention_fixtures.py) within 1e-5;
 *   - decoding with a cache, one position or a few at a time, against the
 *     whole sequence; shorter sequences without a cache;
 *   - the description items and the file configs through the codec, and
 *     bad arguments with their exact statuses. */
#include "nnlib_internal.h"
#include "fixtures.h"
#include "test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- the rig */

/* A planned and initialised layer with everything its ops need. */
typedef struct rig {
  nnlib_layer *l;
  int64_t n, t, d, heads;
  bool causal, bias;
  float *values, *grads, *workspace;
  int64_t param_floats;
  nnlib__rng rng;
} rig;

static nnlib_layer *make_layer(int64_t heads, int causal, float dropout,
                               int bias) {
  nnlib_attention_options o;
  ASSERT_OK(nnlib_attention_options_init(&o));
  o.causal = causal;
  o.dropout = dropout;
  o.with_bias = bias;
  nnlib_layer *l = NULL;
  ASSERT_OK(nnlib_attention_create(&l, heads, &o));
  return l;
}

static nnlib__shape shape2(int64_t t, int64_t d) {
  nnlib__shape s = {.rank = 2, .dims = {t, d}};
  return s;
}

static void rig_make(rig *r, int64_t n, int64_t t, int64_t d, int64_t heads,
                     bool causal, float dropout, bool bias, uint64_t seed) {
  memset(r, 0, sizeof *r);
  r->l = make_layer(heads, causal, dropout, bias);
  r->n = n;
  r->t = t;
  r->d = d;
  r->heads = heads;
  r->causal = causal;
  r->bias = bias;
  nnlib__shape in = shape2(t, d);
  ASSERT_OK(nnlib__layer_plan(r->l, 0, &in, n, ""));
  assert_int_equal(r->l->param_count, bias ? 4 : 2);
  assert_int_equal(r->l->cache_floats, 2 * t * d);
  assert_int_equal(r->l->out_size, t * d);
  for (size_t i = 0; i < r->l->param_count; i++)
    r->param_floats += r->l->params[i].size;
  r->values = calloc((size_t)r->param_floats, sizeof(float));
  r->grads = calloc((size_t)r->param_floats, sizeof(float));
  r->workspace = calloc(r->l->workspace_floats, sizeof(float));
  int64_t at = 0;
  for (size_t i = 0; i < r->l->param_count; i++) {
    nnlib__param *p = &r->l->params[i];
    nnlib__tensor_view(&p->value, r->values + at, p->shape.dims, p->shape.rank);
    nnlib__tensor_view(&p->grad, r->grads + at, p->shape.dims, p->shape.rank);
    at += p->size;
  }
  nnlib__rng_seed(&r->rng, seed);
  r->l->ops->init(r->l, &r->rng);
}

static void rig_free(rig *r) {
  nnlib_layer_free(r->l);
  free(r->values);
  free(r->grads);
  free(r->workspace);
}

/* Parameters by role; the biases NULL without them. */
static float *w_in(rig *r) { return r->l->params[0].value.data; }
static float *b_in(rig *r) {
  return r->bias ? r->l->params[1].value.data : NULL;
}
static float *w_out(rig *r) {
  return r->l->params[r->bias ? 2 : 1].value.data;
}
static float *b_out(rig *r) {
  return r->bias ? r->l->params[3].value.data : NULL;
}

static nnlib__run training_run(rig *r, bool training) {
  nnlib__run run = {.training = training,
                    .workspace = r->workspace,
                    .rng = training ? &r->rng : NULL};
  return run;
}

/* ------------------------------------------------- the naive reference */

/* y [n, t, d] of nn.MultiheadAttention in double, by loops over every
 * index: q = x W_q^T + b_q etc. (W_q rows 0..D-1 of W_in, W_k rows D..,
 * W_v rows 2D..), per head softmax(q k^T / sqrt(hd)) v, then the output
 * projection. */
static void naive_forward(rig *r, const float *x, int64_t t, double *y) {
  int64_t d = r->d, hd = d / r->heads;
  const float *wi = w_in(r), *bi = b_in(r), *wo = w_out(r), *bo = b_out(r);
  double *qkv = malloc((size_t)(t * 3 * d) * sizeof(double));
  double *o = malloc((size_t)(t * d) * sizeof(double));
  double *p = malloc((size_t)t * sizeof(double));
  for (int64_t b = 0; b < r->n; b++) {
    const float *xs = x + b * t * d;
    for (int64_t i = 0; i < t; i++)
      for (int64_t j = 0; j < 3 * d; j++) {
        double s = bi ? bi[j] : 0.0;
        for (int64_t k = 0; k < d; k++)
          s += (double)xs[i * d + k] * wi[j * d + k];
        qkv[i * 3 * d + j] = s;
      }
    for (int64_t h = 0; h < r->heads; h++)
      for (int64_t i = 0; i < t; i++) {
        int64_t seen = r->causal ? i + 1 : t;
        double max = -INFINITY, sum = 0.0;
        for (int64_t j = 0; j < seen; j++) {
          double s = 0.0;
          for (int64_t c = 0; c < hd; c++)
            s += qkv[i * 3 * d + h * hd + c] * qkv[j * 3 * d + d + h * hd + c];
          p[j] = s / sqrt((double)hd);
          max = p[j] > max ? p[j] : max;
        }
        for (int64_t j = 0; j < seen; j++)
          sum += p[j] = exp(p[j] - max);
        for (int64_t c = 0; c < hd; c++) {
          double s = 0.0;
          for (int64_t j = 0; j < seen; j++)
            s += p[j] / sum * qkv[j * 3 * d + 2 * d + h * hd + c];
          o[i * d + h * hd + c] = s;
        }
      }
    for (int64_t i = 0; i < t; i++)
      for (int64_t j = 0; j < d; j++) {
        double s = bo ? bo[j] : 0.0;
        for (int64_t k = 0; k < d; k++)
          s += o[i * d + k] * wo[j * d + k];
        y[(b * t + i) * d + j] = s;
      }
  }
  free(qkv);
  free(o);
  free(p);
}

static double naive_loss(rig *r, const float *x, const float *g) {
  int64_t count = r->n * r->t * r->d;
  double *y = malloc((size_t)count * sizeof(double)), sum = 0.0;
  naive_forward(r, x, r->t, y);
  for (int64_t i = 0; i < count; i++)
    sum += g[i] * y[i];
  free(y);
  return sum;
}

/* dL/dv for the float v, by central differences of the double loops: the
 * steps are those the float actually took. */
static double naive_derivative(rig *r, float *v, const float *x,
                               const float *g) {
  const float h = 1e-3f, keep = *v;
  *v = keep + h;
  double up = naive_loss(r, x, g), a = (double)*v - keep;
  *v = keep - h;
  double down = naive_loss(r, x, g), b = keep - (double)*v;
  *v = keep;
  return (up - down) / (a + b);
}

/* max |got - want| / max(|want|, floor) over count elements */
static double relative_error(const float *got, const double *want,
                             int64_t count, double floor) {
  double diff = 0.0, scale = floor;
  for (int64_t i = 0; i < count; i++) {
    double e = fabs(got[i] - want[i]);
    diff = e > diff || isnan(e) ? e : diff;
    scale = fabs(want[i]) > scale ? fabs(want[i]) : scale;
  }
  return diff / scale;
}

static void expect_close(const char *what, const float *got,
                         const double *want, int64_t count, double bar) {
  double err = relative_error(got, want, count, 1e-3);
  if (!(err <= bar))
    fail_msg("%s: relative error %.3g exceeds %.0e", what, err, bar);
}

/* ------------------------------------------ forward and backward, naive */

static float *random_floats(int64_t count, float lo, float hi,
                            uint32_t *seed) {
  float *v = malloc((size_t)count * sizeof(float));
  ts_fill_uniform(v, count, lo, hi, seed);
  return v;
}

/* Biases get random values too, so their gradients and effect matter. */
static void randomise_params(rig *r, uint32_t *seed) {
  ts_fill_uniform(r->values, r->param_floats, -0.6f, 0.6f, seed);
}

static void check_against_naive(int64_t n, int64_t t, int64_t d,
                                int64_t heads, bool causal, bool bias) {
  char what[96];
  snprintf(what, sizeof what, "n %lld T %lld D %lld heads %lld%s%s",
           (long long)n, (long long)t, (long long)d, (long long)heads,
           causal ? " causal" : "", bias ? "" : " nobias");
  rig r;
  uint32_t seed = (uint32_t)(n * 1000 + t * 100 + d * 10 + heads);
  rig_make(&r, n, t, d, heads, causal, 0.0f, bias, seed);
  randomise_params(&r, &seed);
  int64_t count = n * t * d;
  float *x = random_floats(count, -1.0f, 1.0f, &seed);
  float *g = random_floats(count, -1.0f, 1.0f, &seed);
  float *y = malloc((size_t)count * sizeof(float));
  float *dy = malloc((size_t)count * sizeof(float));
  float *dx = malloc((size_t)count * sizeof(float));
  double *want = malloc((size_t)count * sizeof(double));
  nnlib__run run = training_run(&r, true);
  ASSERT_OK(r.l->ops->forward(r.l, &run, x, y, n));
  naive_forward(&r, x, t, want);
  expect_close(what, y, want, count, 1e-5);

  for (int64_t i = 0; i < count; i++)
    dx[i] = NAN; /* every element must be written */
  for (int64_t i = 0; i < r.param_floats; i++)
    r.grads[i] = NAN;
  memcpy(dy, g, (size_t)count * sizeof(float));
  ASSERT_OK(r.l->ops->backward(r.l, &run, x, y, dy, dx, n));
  double *fd = malloc((size_t)(count > r.param_floats ? count : r.param_floats) *
                      sizeof(double));
  for (int64_t i = 0; i < count; i++)
    fd[i] = naive_derivative(&r, &x[i], x, g);
  char part[160];
  snprintf(part, sizeof part, "%s: dx", what);
  expect_close(part, dx, fd, count, 1e-4);
  for (int64_t i = 0; i < r.param_floats; i++)
    fd[i] = naive_derivative(&r, &r.values[i], x, g);
  for (size_t i = 0, at = 0; i < r.l->param_count; i++) {
    nnlib__param *p = &r.l->params[i];
    snprintf(part, sizeof part, "%s: d %s", what, p->name);
    expect_close(part, r.grads + at, fd + at, p->size, 1e-4);
    at += (size_t)p->size;
  }
  /* dx NULL: the parameter gradients alone, the same */
  float *before = malloc((size_t)r.param_floats * sizeof(float));
  memcpy(before, r.grads, (size_t)r.param_floats * sizeof(float));
  ASSERT_OK(r.l->ops->forward(r.l, &run, x, y, n));
  memcpy(dy, g, (size_t)count * sizeof(float));
  ASSERT_OK(r.l->ops->backward(r.l, &run, x, y, dy, NULL, n));
  assert_memory_equal(before, r.grads, (size_t)r.param_floats * sizeof(float));
  free(before);
  free(fd);
  free(x);
  free(g);
  free(y);
  free(dy);
  free(dx);
  free(want);
  rig_free(&r);
}

static void test_against_naive(void **s) {
  (void)s;
  const int64_t heads[3] = {1, 2, 4};
  for (int64_t t = 1; t <= 7; t += 2)
    for (int hi = 0; hi < 3; hi++)
      for (int causal = 0; causal < 2; causal++) {
        /* D 4..12: 5 or 6 for one head, 4 or 6 for two, 8 or 12 for four */
        int64_t d = heads[hi] * (t % 3 == 0 ? 3 : 2) + (hi == 0 ? 3 : 0);
        int64_t n = 1 + (t + hi) % 3;
        check_against_naive(n, t, d, heads[hi], causal, (t + causal) % 4 != 1);
      }
  check_against_naive(2, 2, 12, 4, true, true);
  check_against_naive(3, 6, 12, 2, false, false);
  /* causal sequences past one block of 32 query rows: the per-head
   * products skip the masked scores block by block (three blocks, the
   * last partial; five, the last one row), and non-causal ones of the same
   * length run whole */
  check_against_naive(1, 70, 4, 2, true, true);
  check_against_naive(1, 129, 2, 1, true, false);
  check_against_naive(1, 70, 4, 2, false, true);
}

/* ---------------------------------------- float gradient check, dropout */

/* L = sum(g * y) through the layer's forward in training, the generator
 * rewound to `start` so every pass draws the same dropout mask. */
static double layer_loss(rig *r, const nnlib__rng *start, const float *x,
                         const float *g, float *y) {
  r->rng = *start;
  nnlib__run run = training_run(r, true);
  ASSERT_OK(r->l->ops->forward(r->l, &run, x, y, r->n));
  double sum = 0.0;
  for (int64_t i = 0; i < r->n * r->t * r->d; i++)
    sum += (double)g[i] * y[i];
  return sum;
}

static double layer_derivative(rig *r, const nnlib__rng *start, float *v,
                               const float *x, const float *g, float *y) {
  const float h = 1e-2f, keep = *v;
  *v = keep + h;
  double up = layer_loss(r, start, x, g, y), a = (double)*v - keep;
  *v = keep - h;
  double down = layer_loss(r, start, x, g, y), b = keep - (double)*v;
  *v = keep;
  return (up - down) / (a + b);
}

static void check_dropout_gradients(bool causal) {
  rig r;
  uint32_t seed = causal ? 77 : 78;
  rig_make(&r, 2, 5, 8, 2, causal, 0.3f, true, 5);
  randomise_params(&r, &seed);
  int64_t count = r.n * r.t * r.d;
  float *x = random_floats(count, -1.0f, 1.0f, &seed);
  float *g = random_floats(count, -1.0f, 1.0f, &seed);
  float *y = malloc((size_t)count * sizeof(float));
  float *dy = malloc((size_t)count * sizeof(float));
  float *dx = malloc((size_t)count * sizeof(float));
  double *fd = malloc((size_t)(count + r.param_floats) * sizeof(double));
  nnlib__rng start = r.rng;
  layer_loss(&r, &start, x, g, y);
  /* the mask must have changed the output: inference differs */
  float *y_eval = malloc((size_t)count * sizeof(float));
  nnlib__run eval = training_run(&r, false);
  ASSERT_OK(r.l->ops->forward(r.l, &eval, x, y_eval, r.n));
  assert_memory_not_equal(y, y_eval, (size_t)count * sizeof(float));
  /* forward again in training for backward's workspace */
  layer_loss(&r, &start, x, g, y);
  memcpy(dy, g, (size_t)count * sizeof(float));
  nnlib__run run = training_run(&r, true);
  ASSERT_OK(r.l->ops->backward(r.l, &run, x, y, dy, dx, r.n));
  for (int64_t i = 0; i < count; i++)
    fd[i] = layer_derivative(&r, &start, &x[i], x, g, y);
  for (int64_t i = 0; i < r.param_floats; i++)
    fd[count + i] = layer_derivative(&r, &start, &r.values[i], x, g, y);
  expect_close(causal ? "dropout causal: dx" : "dropout: dx", dx, fd, count,
               3e-3);
  expect_close(causal ? "dropout causal: params" : "dropout: params", r.grads,
               fd + count, r.param_floats, 3e-3);
  free(y_eval);
  free(x);
  free(g);
  free(y);
  free(dy);
  free(dx);
  free(fd);
  rig_free(&r);
}

static void test_dropout_gradients(void **s) {
  (void)s;
  check_dropout_gradients(false);
  check_dropout_gradients(true);
}

/* In inference, dropout is off: the naive reference without it. */
static void test_dropout_inference(void **s) {
  (void)s;
  rig r;
  uint32_t seed = 9;
  rig_make(&r, 2, 4, 8, 2, true, 0.5f, true, 9);
  randomise_params(&r, &seed);
  int64_t count = r.n * r.t * r.d;
  float *x = random_floats(count, -1.0f, 1.0f, &seed);
  float *y = malloc((size_t)count * sizeof(float));
  double *want = malloc((size_t)count * sizeof(double));
  nnlib__run run = training_run(&r, false);
  ASSERT_OK(r.l->ops->forward(r.l, &run, x, y, r.n));
  naive_forward(&r, x, r.t, want);
  expect_close("dropout in inference", y, want, count, 1e-5);
  free(x);
  free(y);
  free(want);
  rig_free(&r);
}

/* PyTorch's initialisation: U(+-sqrt(6 / 4D)) for in_proj_weight,
 * U(+-1/sqrt(D)) for out_proj.weight, zero biases. */
static void test_init(void **s) {
  (void)s;
  rig r;
  rig_make(&r, 1, 3, 16, 4, false, 0.0f, true, 123);
  double limits[4] = {sqrt(6.0 / 64.0), 0.0, 1.0 / 4.0, 0.0};
  for (size_t i = 0; i < 4; i++) {
    nnlib__param *p = &r.l->params[i];
    double max = 0.0, sum_sq = 0.0;
    for (int64_t j = 0; j < p->size; j++) {
      max = fmax(max, fabs(p->value.data[j]));
      sum_sq += (double)p->value.data[j] * p->value.data[j];
    }
    assert_true(max <= limits[i]);
    if (limits[i] > 0.0) { /* a uniform's variance is limit^2 / 3 */
      double var = sum_sq / (double)p->size, want = limits[i] * limits[i] / 3;
      assert_true(max > 0.9 * limits[i]);
      assert_true(fabs(var - want) < 0.2 * want);
    }
  }
  assert_string_equal(r.l->params[0].name, "in_proj_weight");
  assert_string_equal(r.l->params[1].name, "in_proj_bias");
  assert_string_equal(r.l->params[2].name, "out_proj.weight");
  assert_string_equal(r.l->params[3].name, "out_proj.bias");
  assert_int_equal(r.l->params[0].shape.dims[0], 48);
  assert_int_equal(r.l->params[0].shape.dims[1], 16);
  assert_int_equal(r.l->params[1].shape.dims[0], 48);
  assert_int_equal(r.l->params[2].shape.dims[0], 16);
  assert_int_equal(r.l->params[2].shape.dims[1], 16);
  assert_int_equal(r.l->params[3].shape.dims[0], 16);
  assert_true(r.l->ops->decodes);
  assert_int_equal(nnlib_layer_get_kind(r.l), NNLIB_LAYER_ATTENTION);
  assert_string_equal(nnlib_layer_get_name(r.l), "attention");
  rig_free(&r);
}

/* ------------------------------------------------------------- PyTorch */

#define TORCH_BAR 1e-5

/* max |a - b| / max |b|, as test_internal_torch.c */
static void expect_torch(const fx_case *c, const char *what, const float *a,
                         const fx_tensor *b) {
  double diff = 0.0, scale = 0.0;
  for (int64_t i = 0; i < b->size; i++) {
    double e = fabs((double)a[i] - b->data[i]);
    diff = e > diff || isnan(e) ? e : diff;
    scale = fabs(b->data[i]) > scale ? fabs(b->data[i]) : scale;
  }
  double err = diff / (scale > 0.0 ? scale : 1.0);
  print_message("  %-28s %-18s %.2e\n", c->name, what, err);
  if (!(err <= TORCH_BAR))
    fail_msg("%s %s: relative error %.3g exceeds %.0e", c->name, what, err,
             TORCH_BAR);
}

static void load(float *dst, const fx_case *c, const char *name,
                 int64_t size) {
  const fx_tensor *t = fx_need(c, name);
  assert_int_equal(t->size, size);
  memcpy(dst, t->data, (size_t)size * sizeof(float));
}

static void check_torch_case(const fx_case *c) {
  rig r;
  bool bias = fx_int(c, "bias") == 1;
  rig_make(&r, fx_int(c, "n"), fx_int(c, "t"), fx_int(c, "d"),
           fx_int(c, "heads"), fx_int(c, "causal") == 1, 0.0f, bias, 1);
  const char *names[4] = {"in_proj_weight", "in_proj_bias", "out_proj_weight",
                          "out_proj_bias"};
  const char *grads[4] = {"d_in_proj_weight", "d_in_proj_bias",
                          "d_out_proj_weight", "d_out_proj_bias"};
  for (size_t i = 0, k = 0; i < 4; i++) {
    if (!bias && (i == 1 || i == 3))
      continue;
    load(r.l->params[k].value.data, c, names[i], r.l->params[k].size);
    k++;
  }
  const fx_tensor *x = fx_need(c, "x"), *g = fx_need(c, "g");
  float *y = malloc((size_t)g->size * sizeof(float));
  float *dy = malloc((size_t)g->size * sizeof(float));
  float *dx = malloc((size_t)x->size * sizeof(float));
  nnlib__run run = training_run(&r, true);
  ASSERT_OK(r.l->ops->forward(r.l, &run, x->data, y, r.n));
  expect_torch(c, "y", y, fx_need(c, "y"));
  double loss = 0.0;
  for (int64_t i = 0; i < g->size; i++)
    loss += (double)y[i] * g->data[i];
  float loss_f = (float)loss;
  expect_torch(c, "loss", &loss_f, fx_need(c, "loss"));
  memcpy(dy, g->data, (size_t)g->size * sizeof(float));
  ASSERT_OK(r.l->ops->backward(r.l, &run, x->data, y, dy, dx, r.n));
  expect_torch(c, "dx", dx, fx_need(c, "dx"));
  for (size_t i = 0, k = 0; i < 4; i++) {
    if (!bias && (i == 1 || i == 3))
      continue;
    expect_torch(c, grads[i], r.l->params[k].grad.data, fx_need(c, grads[i]));
    k++;
  }
  free(y);
  free(dy);
  free(dx);
  rig_free(&r);
}

static void test_torch(void **s) {
  (void)s;
  char version[64];
  FILE *f = fx_open("torch_attention.txt", version);
  print_message("  fixtures from torch %s\n", version);
  fx_case c;
  int cases = 0, causal = 0;
  while (fx_read_case(f, &c)) {
    check_torch_case(&c);
    causal += fx_int(&c, "causal") == 1;
    cases++;
    fx_free_case(&c);
  }
  fclose(f);
  assert_int_equal(cases, 5);
  assert_int_equal(causal, 3);
}

/* ------------------------------------------------------------ decoding */

/* Rows [first, first + steps) of every sample of x [n, t, d], compact. */
static void gather_rows(const float *x, int64_t n, int64_t t, int64_t d,
                        int64_t first, int64_t steps, float *out) {
  for (int64_t b = 0; b < n; b++)
    memcpy(out + b * steps * d, x + (b * t + first) * d,
           (size_t)(steps * d) * sizeof(float));
}

/* The whole causal sequence at once, then in stretches of the lengths in
 * `chunks` (summing to t) with a cache: the same outputs. */
static void check_decoding(rig *r, const float *x, const int64_t *chunks,
                           size_t count) {
  int64_t n = r->n, t = r->t, d = r->d;
  float *full = malloc((size_t)(n * t * d) * sizeof(float));
  float *part = malloc((size_t)(n * t * d) * sizeof(float));
  float *want = malloc((size_t)(n * t * d) * sizeof(float));
  float *cache = calloc((size_t)n * r->l->cache_floats, sizeof(float));
  nnlib__run run = training_run(r, false);
  ASSERT_OK(r->l->ops->forward(r->l, &run, x, full, n));
  int64_t first = 0;
  for (size_t i = 0; i < count; i++) {
    int64_t steps = chunks[i];
    float *in = malloc((size_t)(n * steps * d) * sizeof(float));
    float *out = malloc((size_t)(n * steps * d) * sizeof(float));
    gather_rows(x, n, t, d, first, steps, in);
    /* poison the workspace: a decode call must not read an earlier one's */
    for (size_t k = 0; k < r->l->workspace_floats; k++)
      r->workspace[k] = NAN;
    run.steps = steps;
    run.position = first;
    run.cache = cache;
    ASSERT_OK(r->l->ops->forward(r->l, &run, in, out, n));
    gather_rows(full, n, t, d, first, steps, want);
    double *ref = malloc((size_t)(n * steps * d) * sizeof(double));
    for (int64_t k = 0; k < n * steps * d; k++)
      ref[k] = want[k];
    char what[64];
    snprintf(what, sizeof what, "decoding positions %lld..%lld",
             (long long)first, (long long)(first + steps - 1));
    expect_close(what, out, ref, n * steps * d, 1e-5);
    free(ref);
    free(in);
    free(out);
    first += steps;
  }
  assert_int_equal(first, t);
  free(full);
  free(part);
  free(want);
  free(cache);
}

static void test_decoding(void **s) {
  (void)s;
  rig r;
  uint32_t seed = 31;
  rig_make(&r, 2, 7, 8, 2, true, 0.0f, true, 31);
  randomise_params(&r, &seed);
  float *x = random_floats(r.n * r.t * r.d, -1.0f, 1.0f, &seed);
  const int64_t ones[7] = {1, 1, 1, 1, 1, 1, 1}, mixed[3] = {3, 2, 2},
                other[3] = {2, 3, 2}, whole[1] = {7};
  check_decoding(&r, x, ones, 7);
  check_decoding(&r, x, mixed, 3);
  check_decoding(&r, x, other, 3);
  check_decoding(&r, x, whole, 1);
  free(x);
  rig_free(&r);
  /* one head, no bias, one sample */
  seed = 32;
  rig_make(&r, 1, 5, 4, 1, true, 0.0f, false, 32);
  randomise_params(&r, &seed);
  x = random_floats(r.n * r.t * r.d, -1.0f, 1.0f, &seed);
  const int64_t three[3] = {1, 3, 1};
  check_decoding(&r, x, three, 3);
  free(x);
  rig_free(&r);
}

/* A shorter sequence without a cache (run->steps < T), causal or not, is
 * the naive attention over those steps; and training on it has the naive
 * gradients (checked on dx by differences). */
static void test_shorter_sequences(void **s) {
  (void)s;
  for (int causal = 0; causal < 2; causal++) {
    rig r;
    uint32_t seed = 40 + (uint32_t)causal;
    rig_make(&r, 3, 6, 8, 2, causal, 0.0f, true, seed);
    randomise_params(&r, &seed);
    int64_t steps = 4, count = r.n * steps * r.d;
    float *x = random_floats(count, -1.0f, 1.0f, &seed);
    float *y = malloc((size_t)count * sizeof(float));
    double *want = malloc((size_t)count * sizeof(double));
    nnlib__run run = training_run(&r, true);
    run.steps = steps;
    ASSERT_OK(r.l->ops->forward(r.l, &run, x, y, r.n));
    naive_forward(&r, x, steps, want);
    expect_close("shorter sequence", y, want, count, 1e-5);
    /* backward at steps: dx against differences of the naive loss at
     * steps (r.t set to steps for naive_loss) */
    float *g = random_floats(count, -1.0f, 1.0f, &seed);
    float *dx = malloc((size_t)count * sizeof(float));
    memcpy(y, g, (size_t)count * sizeof(float)); /* y is unread: dy here */
    ASSERT_OK(r.l->ops->backward(r.l, &run, x, NULL, y, dx, r.n));
    int64_t planned = r.t;
    r.t = steps;
    for (int64_t i = 0; i < count; i++)
      want[i] = naive_derivative(&r, &x[i], x, g);
    r.t = planned;
    expect_close("shorter sequence dx", dx, want, count, 1e-4);
    free(g);
    free(dx);
    free(x);
    free(y);
    free(want);
    rig_free(&r);
  }
}

static void test_decoding_refusals(void **s) {
  (void)s;
  rig r;
  rig_make(&r, 1, 4, 4, 2, true, 0.0f, true, 1);
  float x[5 * 4] = {0}, y[5 * 4];
  float *cache = calloc(r.l->cache_floats, sizeof(float));
  nnlib__run run = training_run(&r, false);
  run.cache = cache;
  run.steps = 2;
  run.position = 3; /* 3 + 2 > 4 */
  ASSERT_STATUS(NNLIB_ERR_OUT_OF_RANGE, r.l->ops->forward(r.l, &run, x, y, 1));
  run.position = -1;
  ASSERT_STATUS(NNLIB_ERR_OUT_OF_RANGE, r.l->ops->forward(r.l, &run, x, y, 1));
  run.cache = NULL;
  run.position = 0;
  run.steps = 5; /* longer than planned */
  ASSERT_STATUS(NNLIB_ERR_OUT_OF_RANGE, r.l->ops->forward(r.l, &run, x, y, 1));
  run.cache = cache;
  run.steps = 1;
  run.position = 0;
  float dy[4] = {0};
  ASSERT_STATUS(NNLIB_ERR_UNSUPPORTED,
                r.l->ops->backward(r.l, &run, x, y, dy, NULL, 1));
  rig_free(&r);
  rig_make(&r, 1, 4, 4, 2, false, 0.0f, true, 1);
  ASSERT_STATUS(NNLIB_ERR_UNSUPPORTED, r.l->ops->forward(r.l, &run, x, y, 1));
  ts_expect_message("causal");
  rig_free(&r);
  free(cache);
}

/* ------------------------------------------------- codec: text, configs */

static nnlib__spec_item item_of(const char *text) {
  nnlib__spec_item it;
  memset(&it, 0, sizeof it);
  it.index = 2;
  it.column = 12;
  it.text = text;
  it.length = strlen(text);
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

static void spec_text(const nnlib_layer *l, char *buf, size_t size) {
  nnlib__text t = {buf, size, 0};
  nnlib__attention_codec.write_spec(l, &t);
}

static void test_spec_items(void **s) {
  (void)s;
  assert_ptr_equal(nnlib__codec_for_name("attention", 9),
                   &nnlib__attention_codec);
  assert_ptr_equal(nnlib__codec_for_kind(NNLIB_LAYER_ATTENTION),
                   &nnlib__attention_codec);
  const char *const good[][2] = {
      {"attention:4", "attention:4"},
      {"attention:4:causal", "attention:4:causal"},
      {"attention:2:dropout0.1:causal", "attention:2:causal:dropout0.1"},
      {"attention:1:nobias:dropout0.25:causal",
       "attention:1:causal:dropout0.25:nobias"},
      {"attention:8:dropout0", "attention:8"},
      {"attention:3:dropout-0", "attention:3"},
      {"attention:2:nobias", "attention:2:nobias"},
      {"attention:16:dropout1e-1", "attention:16:dropout0.1"}};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    nnlib__spec_item it = item_of(good[i][0]);
    nnlib_layer *l = NULL;
    ASSERT_OK(nnlib__attention_codec.parse_spec(&it, &l));
    char buf[64];
    spec_text(l, buf, sizeof buf);
    assert_string_equal(buf, good[i][1]);
    nnlib_layer_free(l);
    /* the canonical text parses to itself */
    it = item_of(good[i][1]);
    ASSERT_OK(nnlib__attention_codec.parse_spec(&it, &l));
    spec_text(l, buf, sizeof buf);
    assert_string_equal(buf, good[i][1]);
    nnlib_layer_free(l);
  }
  /* PARSE from the codec's own checks; INVALID_ARGUMENT from the
   * constructor (the model's parser turns it into PARSE) */
  const struct {
    const char *text;
    nnlib_status status;
    const char *needle;
  } bad[] = {
      {"attention", NNLIB_ERR_PARSE, "attention"},
      {"attention:0", NNLIB_ERR_PARSE, "\"0\""},
      {"attention:x", NNLIB_ERR_PARSE, "\"x\""},
      {"attention:4:causal:causal", NNLIB_ERR_PARSE, "repeats"},
      {"attention:4:dropout0.1:dropout0.2", NNLIB_ERR_PARSE, "repeats"},
      {"attention:4:nobias:nobias", NNLIB_ERR_PARSE, "repeats"},
      {"attention:4:causa", NNLIB_ERR_PARSE, "causal, dropoutR"},
      {"attention:4:dropout", NNLIB_ERR_PARSE, "needs a rate"},
      {"attention:4:dropoutx", NNLIB_ERR_PARSE, "finite decimal"},
      {"attention:4:dropoutnan", NNLIB_ERR_PARSE, "finite decimal"},
      {"attention:4:causal:nobias:dropout0.1:x", NNLIB_ERR_PARSE, "attention"},
      {"attention:4:dropout1", NNLIB_ERR_INVALID_ARGUMENT, "[0, 1)"},
      {"attention:4:dropout-0.5", NNLIB_ERR_INVALID_ARGUMENT, "[0, 1)"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    nnlib__spec_item it = item_of(bad[i].text);
    nnlib_layer *l = NULL;
    ASSERT_STATUS(bad[i].status, nnlib__attention_codec.parse_spec(&it, &l));
    ts_expect_message(bad[i].needle);
    assert_null(l);
  }
}

/* Through the model's description parser: a declared input and the item
 * (a chain prints as its layers, and that text parses to itself); then the
 * model compiled on [8, 16] predicts what the naive loops give. */
static void test_model_description(void **s) {
  (void)s;
  nnlib_model *m = NULL, *again = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, "input:8x16,attention:4:causal"));
  char buf[128];
  size_t length = 0;
  ASSERT_OK(nnlib_model_get_spec(m, buf, sizeof buf, &length));
  assert_string_equal(buf, "attention:4:causal");
  ASSERT_OK(nnlib_model_create(&again));
  ASSERT_OK(nnlib_model_add_spec(again, buf));
  ASSERT_OK(nnlib_model_get_spec(again, buf, sizeof buf, &length));
  assert_string_equal(buf, "attention:4:causal");
  nnlib_model_free(again);

  const int64_t shape[2] = {8, 16}, batch[3] = {2, 8, 16};
  ASSERT_OK(nnlib_model_compile(m, shape, 2, 2, NNLIB_LOSS_MSE, NULL, 7));
  nnlib_layer *l = nnlib_model_get_layer(m, 0);
  assert_int_equal(nnlib_layer_get_kind(l), NNLIB_LAYER_ATTENTION);
  assert_int_equal(nnlib_layer_get_param_tensor_count(l), 4);
  nnlib_tensor *x = NULL, *y = NULL;
  ASSERT_OK(nnlib_tensor_create(&x, batch, 3));
  ASSERT_OK(nnlib_tensor_create(&y, batch, 3));
  uint32_t seed = 99;
  ts_fill_uniform(nnlib_tensor_get_data(x), 2 * 8 * 16, -1.0f, 1.0f, &seed);
  ASSERT_OK(nnlib_model_predict(m, x, y));
  rig r = {.l = l, .n = 2, .t = 8, .d = 16, .heads = 4, .causal = true,
           .bias = true};
  double want[2 * 8 * 16];
  naive_forward(&r, nnlib_tensor_get_data(x), 8, want);
  expect_close("model predict", nnlib_tensor_get_data(y), want, 2 * 8 * 16,
               1e-5);
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  nnlib_model_free(m);
}

static void round_trip(nnlib_layer *l) {
  nnlib__writer count = {NULL, 0, 0};
  nnlib__attention_codec.write_config(l, &count);
  assert_int_equal(count.size, 20);
  unsigned char buf[20];
  nnlib__writer w = {buf, 0, sizeof buf};
  nnlib__attention_codec.write_config(l, &w);
  assert_int_equal(w.size, 20);
  nnlib__reader r = {buf, w.size, "layer 1 config"};
  nnlib_layer *back = NULL;
  ASSERT_OK(nnlib__attention_codec.read_config(&r, &back));
  assert_int_equal(r.left, 0);
  char want[64], got[64];
  spec_text(l, want, sizeof want);
  spec_text(back, got, sizeof got);
  assert_string_equal(got, want);
  nnlib_layer_free(back);
  nnlib_layer_free(l);
}

static nnlib_status read_config(int64_t heads, uint32_t causal, float dropout,
                                uint32_t bias, size_t bytes) {
  unsigned char buf[20];
  nnlib__writer w = {buf, 0, sizeof buf};
  nnlib__put_i64(&w, heads);
  nnlib__put_u32(&w, causal);
  nnlib__put_f32(&w, dropout);
  nnlib__put_u32(&w, bias);
  nnlib__reader r = {buf, bytes, "layer 1 config"};
  nnlib_layer *l = NULL;
  nnlib_status st = nnlib__attention_codec.read_config(&r, &l);
  if (st == NNLIB_OK)
    nnlib_layer_free(l);
  else
    assert_null(l);
  return st;
}

static void test_configs(void **s) {
  (void)s;
  round_trip(make_layer(4, 1, 0.0f, 1));
  round_trip(make_layer(1, 0, 0.125f, 0));
  round_trip(make_layer(3, 1, 0.5f, 1));
  /* the bytes: i64 heads, u32 causal, f32 dropout, u32 with_bias */
  nnlib_layer *l = make_layer(2, 1, 0.25f, 0);
  unsigned char buf[20];
  nnlib__writer w = {buf, 0, sizeof buf};
  nnlib__attention_codec.write_config(l, &w);
  const unsigned char want[20] = {2, 0, 0, 0, 0, 0, 0, 0, 1, 0,
                                  0, 0, 0, 0, 0x80, 0x3e, 0, 0, 0, 0};
  assert_memory_equal(buf, want, 20);
  nnlib_layer_free(l);
  ASSERT_OK(read_config(4, 1, 0.1f, 1, 20));
  ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE, read_config(0, 1, 0.1f, 1, 20));
  ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE, read_config(-3, 1, 0.1f, 1, 20));
  ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE, read_config(4, 2, 0.1f, 1, 20));
  ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE, read_config(4, 1, 1.0f, 1, 20));
  ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE, read_config(4, 1, -0.1f, 1, 20));
  ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE, read_config(4, 1, NAN, 1, 20));
  ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE, read_config(4, 1, 0.1f, 2, 20));
  ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE, read_config(4, 1, 0.1f, 1, 19));
  ts_expect_message("layer 1 config");
}

/* ---------------------------------------------------------- bad inputs */

static nnlib_status create_with(int64_t heads, int causal, float dropout,
                                int bias) {
  nnlib_attention_options o;
  ASSERT_OK(nnlib_attention_options_init(&o));
  o.causal = causal;
  o.dropout = dropout;
  o.with_bias = bias;
  nnlib_layer *l = (nnlib_layer *)&o; /* must be set to NULL on failure */
  nnlib_status st = nnlib_attention_create(&l, heads, &o);
  if (st == NNLIB_OK)
    nnlib_layer_free(l);
  else
    assert_null(l);
  return st;
}

static void test_bad_arguments(void **s) {
  (void)s;
  ASSERT_OK(create_with(1, 0, 0.0f, 1));
  ASSERT_OK(create_with(3, 1, 0.999f, 0));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, create_with(0, 0, 0.0f, 1));
  ts_expect_message("heads is 0");
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, create_with(-2, 0, 0.0f, 1));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, create_with(2, 0, -0.1f, 1));
  ts_expect_message("dropout");
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, create_with(2, 0, 1.0f, 1));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, create_with(2, 0, NAN, 1));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, create_with(2, 0, INFINITY, 1));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, create_with(2, 2, 0.0f, 1));
  ts_expect_message("causal is 2");
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, create_with(2, -1, 0.0f, 1));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, create_with(2, 0, 0.0f, 2));
  ts_expect_message("with_bias is 2");
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_attention_create(NULL, 2, NULL));
  /* options NULL: the defaults (not causal, no dropout, biases) */
  nnlib_layer *l = NULL;
  ASSERT_OK(nnlib_attention_create(&l, 2, NULL));
  char buf[64];
  spec_text(l, buf, sizeof buf);
  assert_string_equal(buf, "attention:2");
  nnlib_layer_free(l);
  /* the defaults of the options struct */
  nnlib_attention_options o;
  memset(&o, 0xff, sizeof o);
  ASSERT_OK(nnlib_attention_options_init(&o));
  assert_int_equal(o.struct_size, sizeof o);
  assert_int_equal(o.causal, 0);
  assert_true(o.dropout == 0.0f);
  assert_int_equal(o.with_bias, 1);
}

static void test_bad_shapes(void **s) {
  (void)s;
  nnlib_layer *l = make_layer(4, 1, 0.0f, 1);
  nnlib__shape in = shape2(8, 10);
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH, nnlib__layer_plan(l, 3, &in, 2, ""));
  ts_expect_message("D = 10");
  ts_expect_message("heads = 4");
  ts_expect_message("layer 3 (attention)");
  nnlib__shape flat = {.rank = 1, .dims = {16}};
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH,
                nnlib__layer_plan(l, 3, &flat, 2, ""));
  ts_expect_message("[16]");
  ts_expect_message("rank 1");
  nnlib__shape cube = {.rank = 3, .dims = {2, 4, 8}};
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH,
                nnlib__layer_plan(l, 3, &cube, 2, ""));
  ts_expect_message("rank 3");
  in = shape2(8, 12);
  ASSERT_OK(nnlib__layer_plan(l, 3, &in, 2, ""));
  assert_int_equal(l->out_shape.rank, 2);
  assert_int_equal(l->out_shape.dims[0], 8);
  assert_int_equal(l->out_shape.dims[1], 12);
  nnlib_layer_free(l);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_against_naive),
      cmocka_unit_test(test_dropout_gradients),
      cmocka_unit_test(test_dropout_inference),
      cmocka_unit_test(test_init),
      cmocka_unit_test(test_torch),
      cmocka_unit_test(test_decoding),
      cmocka_unit_test(test_shorter_sequences),
      cmocka_unit_test(test_decoding_refusals),
      cmocka_unit_test(test_spec_items),
      cmocka_unit_test(test_model_description),
      cmocka_unit_test(test_configs),
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_bad_shapes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
