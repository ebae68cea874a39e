/* Batchnorm folding (compile.c, conv2d.c): in predict, evaluate and
 * workspace predictions a convolution whose only reader is a batchnorm
 * runs on W' = s W and adds b' = (b - mean) s + beta, s = gamma /
 * sqrt(var + eps), and applies the elementwise activation that alone
 * reads the group, in one pass. Checked here against a twin compiled with
 * folding off (m->no_folding: the passes as they ran before) and against
 * naive loops in double; that the folded copy follows every write to the
 * weights and statistics (training steps, the writable tensors of the
 * getters and of the flat parameters, model files); that training gives
 * the same bits as the twin (in training the convolution hands the
 * batchnorm its output's plane statistics, which the twin's batchnorm
 * computes itself); and that the numerics check, the profile and the
 * fold decisions name and count the right nodes. */
#include "nnlib_internal.h"
#include "test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The tolerance of the issue: max |folded - reference| / max |reference|
 * over an output (normwise; elementwise ratios near 0 mean nothing). */
#define FOLD_TOLERANCE 1e-5

/* ------------------------------------------------ one conv block, spec */

typedef struct block {
  int cout, kh, kw, geom[6]; /* stride h w, padding h w, dilation h w */
  int bias;
  int bn;                    /* 0 none, 1 default, 2 epsilon 1e-3 */
  nnlib_activation act;      /* NNLIB_ACT_IDENTITY: none */
  float slope;
} block;

static const char *act_item(nnlib_activation a) {
  switch (a) {
  case NNLIB_ACT_RELU: return "relu";
  case NNLIB_ACT_LEAKY_RELU: return "leaky_relu:0.125";
  case NNLIB_ACT_SIGMOID: return "sigmoid";
  case NNLIB_ACT_TANH: return "tanh";
  case NNLIB_ACT_GELU: return "gelu";
  default: return NULL;
  }
}

static void append_block(char *spec, size_t size, const block *b) {
  size_t len = strlen(spec);
  const int *g = b->geom;
  snprintf(spec + len, size - len, "%sconv:%dx%dx%d:s%dx%d:p%dx%d:d%dx%d%s%s%s%s",
           len > 0 ? "," : "", b->cout, b->kh, b->kw, g[0], g[1], g[2], g[3],
           g[4], g[5], b->bias ? "" : ":nobias",
           b->bn == 1 ? ",batchnorm" : b->bn == 2 ? ",batchnorm:0.1:0.001" : "",
           act_item(b->act) != NULL ? "," : "",
           act_item(b->act) != NULL ? act_item(b->act) : "");
}

static int64_t out_size(int64_t in, int k, int s, int p, int d) {
  return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}

/* A random block that fits an input of h x w (kernel within the padded
 * input). */
static block random_block(uint32_t *seed, int64_t h, int64_t w) {
  float r[12];
  ts_fill_uniform(r, 12, 0.0f, 1.0f, seed);
  block b;
  memset(&b, 0, sizeof b);
  b.cout = 1 + (int)(r[0] * 5);
  b.kh = 1 + (int)(r[1] * 3);
  b.kw = 1 + (int)(r[2] * 3);
  b.geom[0] = 1 + (int)(r[3] * 2);
  b.geom[1] = 1 + (int)(r[4] * 2);
  b.geom[2] = (int)(r[5] * 2);
  b.geom[3] = (int)(r[6] * 2);
  b.geom[4] = 1 + (int)(r[7] * 2);
  b.geom[5] = 1 + (int)(r[7] * 2);
  while (out_size(h, b.kh, b.geom[0], b.geom[2], b.geom[4]) < 1 ||
         out_size(w, b.kw, b.geom[1], b.geom[3], b.geom[5]) < 1)
    b.geom[4] = b.geom[5] = 1, b.kh = b.kh > 1 ? b.kh - 1 : 1,
    b.kw = b.kw > 1 ? b.kw - 1 : 1;
  b.bias = r[8] < 0.5f;
  b.bn = r[9] < 0.15f ? 0 : r[9] < 0.6f ? 1 : 2;
  static const nnlib_activation acts[6] = {
      NNLIB_ACT_IDENTITY, NNLIB_ACT_RELU, NNLIB_ACT_RELU,
      NNLIB_ACT_LEAKY_RELU, NNLIB_ACT_SIGMOID, NNLIB_ACT_GELU};
  b.act = acts[(int)(r[10] * 6) % 6];
  b.slope = 0.125f;
  return b;
}

/* ------------------------------------------------------------ models */

static nnlib_model *compiled(const char *spec, const int64_t *shape,
                             int64_t max_batch, nnlib_optimizer *opt,
                             bool no_folding) {
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, spec));
  m->no_folding = no_folding;
  ASSERT_OK(nnlib_model_compile(m, shape, 3, max_batch, NNLIB_LOSS_MSE, opt,
                                7));
  return m;
}

static float *param(nnlib_model *m, size_t layer, size_t index) {
  nnlib_tensor *t = NULL;
  ASSERT_OK(nnlib_layer_get_param(nnlib_model_get_layer(m, layer), index, &t,
                                  NULL));
  return nnlib_tensor_get_data(t);
}

static float *buffer(nnlib_model *m, size_t layer, size_t index) {
  nnlib_tensor *t = NULL;
  ASSERT_OK(nnlib_layer_get_buffer(nnlib_model_get_layer(m, layer), index,
                                   &t));
  return nnlib_tensor_get_data(t);
}

/* Batchnorm parameters and statistics away from their initial 1 and 0
 * (else the fold is close to the identity), conv biases away from 0. */
static void randomise_state(nnlib_model *m, uint32_t *seed) {
  for (size_t i = 0; i < nnlib_model_get_layer_count(m); i++) {
    nnlib_layer *l = nnlib_model_get_layer(m, i);
    if (nnlib_layer_get_kind(l) == NNLIB_LAYER_BATCHNORM) {
      int64_t c = m->layers[i]->params[0].size;
      ts_fill_uniform(param(m, i, 0), c, 0.5f, 1.5f, seed);
      ts_fill_uniform(param(m, i, 1), c, -0.5f, 0.5f, seed);
      ts_fill_uniform(buffer(m, i, 0), c, -0.5f, 0.5f, seed);
      ts_fill_uniform(buffer(m, i, 1), c, 0.25f, 2.0f, seed);
    } else if (nnlib_layer_get_kind(l) == NNLIB_LAYER_CONV2D &&
               nnlib_layer_get_param_tensor_count(l) == 2) {
      ts_fill_uniform(param(m, i, 1), m->layers[i]->params[1].size, -0.5f,
                      0.5f, seed);
    }
  }
}

/* b's parameters and layer buffers become a's, bit for bit. */
static void copy_state(nnlib_model *a, nnlib_model *b) {
  assert_int_equal(a->param_size, b->param_size);
  assert_int_equal(a->layer_state_size, b->layer_state_size);
  memcpy(b->params, a->params, (size_t)a->param_size * sizeof(float));
  memcpy(b->layer_state, a->layer_state,
         (size_t)a->layer_state_size * sizeof(float));
}

static bool same_state(const nnlib_model *a, const nnlib_model *b) {
  return a->param_size == b->param_size &&
         memcmp(a->params, b->params, (size_t)a->param_size * 4) == 0 &&
         memcmp(a->layer_state, b->layer_state,
                (size_t)a->layer_state_size * 4) == 0;
}

static nnlib_tensor *images(int64_t n, const int64_t *shape, uint32_t seed) {
  int64_t dims[4] = {n, shape[0], shape[1], shape[2]};
  nnlib_tensor *x = NULL;
  ASSERT_OK(nnlib_tensor_create(&x, dims, 4));
  ts_fill_uniform(nnlib_tensor_get_data(x), nnlib_tensor_get_size(x), -1.0f,
                  1.0f, &seed);
  return x;
}

static nnlib_tensor *outputs(const nnlib_model *m, int64_t n) {
  return ts_tensor2(n, m->output_size, NULL);
}

static double max_rel_diff(const nnlib_tensor *got, const nnlib_tensor *want) {
  const float *g = nnlib_tensor_get_data((nnlib_tensor *)got);
  const float *w = nnlib_tensor_get_data((nnlib_tensor *)want);
  int64_t n = nnlib_tensor_get_size(want);
  assert_int_equal(nnlib_tensor_get_size(got), n);
  double diff = 0.0, scale = 0.0;
  for (int64_t i = 0; i < n; i++) {
    if (!isfinite(g[i]) || !isfinite(w[i]))
      return INFINITY;
    diff = fmax(diff, fabs((double)g[i] - w[i]));
    scale = fmax(scale, fabs((double)w[i]));
  }
  return scale > 0.0 ? diff / scale : diff;
}

#define ASSERT_FOLDED_NEAR(got, want, what)                                    \
  do {                                                                         \
    double d_ = max_rel_diff(got, want);                                       \
    if (!(d_ <= FOLD_TOLERANCE))                                               \
      fail_msg("%s: max relative difference %g > %g", what, d_,                \
               FOLD_TOLERANCE);                                                \
  } while (0)

/* ------------------------------------------- naive reference, double */

typedef struct image {
  int64_t c, h, w;
  double *v; /* n samples, owned */
} image;

static double activate(nnlib_activation a, float slope, double x) {
  switch (a) {
  case NNLIB_ACT_RELU: return x > 0.0 ? x : 0.0;
  case NNLIB_ACT_LEAKY_RELU: return x > 0.0 ? x : slope * x;
  case NNLIB_ACT_SIGMOID: return 1.0 / (1.0 + exp(-x));
  case NNLIB_ACT_TANH: return tanh(x);
  case NNLIB_ACT_GELU: return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
  default: return x;
  }
}

/* One block over n samples: conv (weights of layer `li`), the batchnorm's
 * running statistics (layer li + 1), the activation; returns the next
 * layer index. */
static size_t reference_block(nnlib_model *m, size_t li, const block *b,
                              int64_t n, image *img) {
  const int *g = b->geom;
  image out = {b->cout, out_size(img->h, b->kh, g[0], g[2], g[4]),
               out_size(img->w, b->kw, g[1], g[3], g[5]), NULL};
  out.v = calloc((size_t)(n * out.c * out.h * out.w), sizeof(double));
  const float *wt = param(m, li, 0);
  const float *bias = b->bias ? param(m, li, 1) : NULL;
  const float *gamma = NULL, *beta = NULL, *mean = NULL, *var = NULL;
  double eps = b->bn == 2 ? 1e-3 : 1e-5;
  if (b->bn) {
    gamma = param(m, li + 1, 0);
    beta = param(m, li + 1, 1);
    mean = buffer(m, li + 1, 0);
    var = buffer(m, li + 1, 1);
  }
  for (int64_t s = 0; s < n; s++)
    for (int64_t co = 0; co < out.c; co++)
      for (int64_t oh = 0; oh < out.h; oh++)
        for (int64_t ow = 0; ow < out.w; ow++) {
          double z = bias != NULL ? bias[co] : 0.0;
          for (int64_t ci = 0; ci < img->c; ci++)
            for (int i = 0; i < b->kh; i++)
              for (int j = 0; j < b->kw; j++) {
                int64_t ih = oh * g[0] - g[2] + i * g[4];
                int64_t iw = ow * g[1] - g[3] + j * g[5];
                if (ih < 0 || ih >= img->h || iw < 0 || iw >= img->w)
                  continue;
                z += (double)wt[((co * img->c + ci) * b->kh + i) * b->kw + j] *
                     img->v[((s * img->c + ci) * img->h + ih) * img->w + iw];
              }
          if (b->bn)
            z = gamma[co] * (z - mean[co]) / sqrt((double)var[co] + eps) +
                beta[co];
          out.v[((s * out.c + co) * out.h + oh) * out.w + ow] =
              activate(b->act, b->slope, z);
        }
  free(img->v);
  *img = out;
  return li + 1 + (b->bn ? 1 : 0) + (act_item(b->act) != NULL ? 1 : 0);
}

/* The chain of blocks over x, into y (float). */
static void reference(nnlib_model *m, const block *blocks, size_t count,
                      const nnlib_tensor *x, const int64_t *shape,
                      nnlib_tensor *y) {
  int64_t n = nnlib_tensor_get_shape((nnlib_tensor *)x)[0];
  image img = {shape[0], shape[1], shape[2], NULL};
  int64_t size = nnlib_tensor_get_size((nnlib_tensor *)x);
  img.v = malloc((size_t)size * sizeof(double));
  for (int64_t i = 0; i < size; i++)
    img.v[i] = nnlib_tensor_get_data((nnlib_tensor *)x)[i];
  size_t li = 0;
  for (size_t b = 0; b < count; b++)
    li = reference_block(m, li, &blocks[b], n, &img);
  assert_int_equal(nnlib_tensor_get_size(y), n * img.c * img.h * img.w);
  for (int64_t i = 0; i < nnlib_tensor_get_size(y); i++)
    nnlib_tensor_get_data(y)[i] = (float)img.v[i];
  free(img.v);
}

/* ------------------------------------------------------------- tests */

/* Random two-block chains, at random maximum batches, predicting more
 * samples than that (chunks) and fewer: folded against the unfolded twin
 * and against the naive loops; the model's own buffers against a
 * workspace, bit for bit; evaluate against the twin's. */
static void test_random_models_match(void **s) {
  (void)s;
  uint32_t seed = 2024;
  double worst[2] = {0.0, 0.0}; /* against unfolded, against naive */
  for (int trial = 0; trial < 24; trial++) {
    float r[3];
    ts_fill_uniform(r, 3, 0.0f, 1.0f, &seed);
    int64_t shape[3] = {1 + (int)(r[0] * 3), 5 + (int)(r[1] * 5),
                        5 + (int)(r[2] * 5)};
    block blocks[2];
    char spec[256] = "";
    blocks[0] = random_block(&seed, shape[1], shape[2]);
    append_block(spec, sizeof spec, &blocks[0]);
    const int *g = blocks[0].geom;
    blocks[1] = random_block(
        &seed, out_size(shape[1], blocks[0].kh, g[0], g[2], g[4]),
        out_size(shape[2], blocks[0].kw, g[1], g[3], g[5]));
    append_block(spec, sizeof spec, &blocks[1]);
    int64_t max_batch = 1 + trial % 4, n = trial % 3 == 0 ? 1 : 2 * max_batch + 1;
    nnlib_model *a = compiled(spec, shape, max_batch, NULL, false);
    nnlib_model *b = compiled(spec, shape, max_batch, NULL, true);
    randomise_state(a, &seed);
    copy_state(a, b);
    nnlib_tensor *x = images(n, shape, seed);
    nnlib_tensor *ya = outputs(a, n), *yb = outputs(b, n), *yw = outputs(a, n);
    nnlib_tensor *yr = outputs(a, n);
    ASSERT_OK(nnlib_model_predict(a, x, ya));
    ASSERT_OK(nnlib_model_predict(b, x, yb));
    reference(a, blocks, 2, x, shape, yr);
    char what[300];
    snprintf(what, sizeof what, "%s, folded against unfolded", spec);
    ASSERT_FOLDED_NEAR(ya, yb, what);
    snprintf(what, sizeof what, "%s, folded against naive loops", spec);
    ASSERT_FOLDED_NEAR(ya, yr, what);
    snprintf(what, sizeof what, "%s, unfolded against naive loops", spec);
    ASSERT_FOLDED_NEAR(yb, yr, what);
    worst[0] = fmax(worst[0], max_rel_diff(ya, yb));
    worst[1] = fmax(worst[1], max_rel_diff(ya, yr));
    nnlib_workspace *ws = NULL;
    ASSERT_OK(nnlib_workspace_create(&ws, a));
    ASSERT_OK(nnlib_workspace_predict(ws, x, yw));
    assert_memory_equal(nnlib_tensor_get_data(yw), nnlib_tensor_get_data(ya),
                        (size_t)nnlib_tensor_get_size(ya) * sizeof(float));
    float la, lb;
    ASSERT_OK(nnlib_model_evaluate(a, x, yr, &la, NULL));
    ASSERT_OK(nnlib_model_evaluate(b, x, yr, &lb, NULL));
    ASSERT_NEAR(la, lb, 1e-9 + 1e-4 * fabs(lb));
    nnlib_workspace_free(ws);
    nnlib_tensor_free(x);
    nnlib_tensor_free(ya);
    nnlib_tensor_free(yb);
    nnlib_tensor_free(yw);
    nnlib_tensor_free(yr);
    nnlib_model_free(a);
    nnlib_model_free(b);
  }
  print_message("  worst max relative difference: %.2e against unfolded, "
                "%.2e against naive loops\n",
                worst[0], worst[1]);
}

/* The fold decisions: a conv read by a batchnorm alone folds it and the
 * activation that alone reads the batchnorm; fan-out stops a group where
 * it happens; groups need not be adjacent nodes. */
/* nodes: 0 x, 1 c, 2 b (read by r and s: the group ends there), 3 r,
 * 4 s, 5 t, 6 e (its batchnorm f and activation g come after other
 * nodes), 7 d (read by u and the add: no group), 8 u, 9 f, 10 g, 11 add */
#define GRAPH_SPEC                                                             \
  "x=input:2x6x6,c=conv:3x3x3:p1(x),b=batchnorm(c),r=relu(b),"                 \
  "s=sigmoid(b),t=add(r,s),e=conv:3x1x1(x),d=conv:3x3x3:p1(t),u=relu(d),"      \
  "f=batchnorm(e),g=leaky_relu(f),add(u,d,g)"

static void test_which_nodes_fold(void **s) {
  (void)s;
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, GRAPH_SPEC));
  ASSERT_OK(nnlib_model_compile_graph(m, 4, NNLIB_LOSS_MSE, NULL, 1));
  const nnlib__node *nd = m->nodes;
  assert_true(nd[2].folded && nd[2].fold_root == 1);
  assert_int_equal(nd[1].fold_output, 2);
  assert_false(nd[3].folded || nd[4].folded);
  assert_ptr_equal(nd[1].layer->folded_batchnorm, nd[2].layer);
  assert_null(nd[1].layer->folded_activation);
  assert_int_equal(nd[7].fold_output, 7);
  assert_null(nd[7].layer->folded_batchnorm);
  assert_null(nd[7].layer->folded_activation);
  assert_false(nd[8].folded);
  assert_true(nd[9].folded && nd[9].fold_root == 6);
  assert_true(nd[10].folded && nd[10].fold_root == 6);
  assert_int_equal(nd[6].fold_output, 10);
  assert_ptr_equal(nd[6].layer->folded_activation, nd[10].layer);
  nnlib_model_free(m);
}

/* The graph above predicts as its unfolded twin and as a workspace does;
 * its inference plan is smaller than the twin's (one region per group). */
static void test_graph_model_matches(void **s) {
  (void)s;
  const char *spec = GRAPH_SPEC;
  nnlib_model *a = NULL, *b = NULL;
  ASSERT_OK(nnlib_model_create(&a));
  ASSERT_OK(nnlib_model_create(&b));
  ASSERT_OK(nnlib_model_add_spec(a, spec));
  ASSERT_OK(nnlib_model_add_spec(b, spec));
  b->no_folding = true;
  ASSERT_OK(nnlib_model_compile_graph(a, 3, NNLIB_LOSS_MSE, NULL, 1));
  ASSERT_OK(nnlib_model_compile_graph(b, 3, NNLIB_LOSS_MSE, NULL, 1));
  uint32_t seed = 5;
  randomise_state(a, &seed);
  copy_state(a, b);
  int64_t shape[3] = {2, 6, 6};
  nnlib_tensor *x = images(7, shape, 9);
  nnlib_tensor *ya = outputs(a, 7), *yb = outputs(b, 7), *yw = outputs(a, 7);
  ASSERT_OK(nnlib_model_predict(a, x, ya));
  ASSERT_OK(nnlib_model_predict(b, x, yb));
  ASSERT_FOLDED_NEAR(ya, yb, "graph");
  nnlib_workspace *ws = NULL;
  ASSERT_OK(nnlib_workspace_create(&ws, a));
  ASSERT_OK(nnlib_workspace_predict(ws, x, yw));
  assert_memory_equal(nnlib_tensor_get_data(yw), nnlib_tensor_get_data(ya),
                      (size_t)nnlib_tensor_get_size(ya) * sizeof(float));
  nnlib_workspace_free(ws);
  nnlib_tensor_free(x);
  nnlib_tensor_free(ya);
  nnlib_tensor_free(yb);
  nnlib_tensor_free(yw);
  nnlib_model_free(a);
  nnlib_model_free(b);
}

static const block CHAIN[2] = {
    {4, 3, 3, {1, 1, 1, 1, 1, 1}, 1, 1, NNLIB_ACT_RELU, 0.0f},
    {3, 3, 3, {2, 2, 1, 1, 1, 1}, 0, 2, NNLIB_ACT_RELU, 0.0f}};
#define CHAIN_SPEC                                                             \
  "conv:4x3x3:s1x1:p1x1:d1x1,batchnorm,relu,"                                  \
  "conv:3x3x3:s2x2:p1x1:d1x1:nobias,batchnorm:0.1:0.001,relu"

/* Predictions against the naive loops after every kind of write. */
static void expect_reference(nnlib_model *m, nnlib_workspace *ws,
                             const nnlib_tensor *x, const char *after) {
  static const int64_t shape[3] = {2, 7, 7};
  int64_t n = nnlib_tensor_get_shape((nnlib_tensor *)x)[0];
  nnlib_tensor *y = outputs(m, n), *yw = outputs(m, n), *yr = outputs(m, n);
  ASSERT_OK(nnlib_model_predict(m, x, y));
  ASSERT_OK(nnlib_workspace_predict(ws, x, yw));
  reference(m, CHAIN, 2, x, shape, yr);
  ASSERT_FOLDED_NEAR(y, yr, after);
  ASSERT_FOLDED_NEAR(yw, yr, after);
  nnlib_tensor_free(y);
  nnlib_tensor_free(yw);
  nnlib_tensor_free(yr);
}

/* The folded weights follow every write: steps (fused SGD writes W and
 * the running statistics), the writable tensors nnlib_layer_get_param and
 * nnlib_layer_get_buffer gave before, the flat parameters, a model file;
 * a workspace made before the writes sees them too. */
static void test_folded_copy_follows_writes(void **s) {
  (void)s;
  int64_t shape[3] = {2, 7, 7};
  nnlib_optimizer *opt = NULL;
  ASSERT_OK(nnlib_sgd_create(&opt, 0.1f, 0, 0, 0));
  nnlib_model *m = compiled(CHAIN_SPEC, shape, 4, opt, false);
  uint32_t seed = 77;
  randomise_state(m, &seed);
  float *w0 = param(m, 0, 0), *gamma = param(m, 1, 0);
  float *var = buffer(m, 4, 1);
  nnlib_workspace *ws = NULL;
  ASSERT_OK(nnlib_workspace_create(&ws, m));
  nnlib_tensor *x = images(5, shape, 3), *xs = images(4, shape, 4);
  expect_reference(m, ws, x, "at the start");
  nnlib_tensor *t = outputs(m, 4);
  ts_fill_uniform(nnlib_tensor_get_data(t), nnlib_tensor_get_size(t), 0.0f,
                  1.0f, &seed);
  for (int i = 0; i < 3; i++)
    ASSERT_OK(nnlib_model_step(m, xs, t, NULL));
  expect_reference(m, ws, x, "after training steps");
  w0[3] += 0.75f;
  expect_reference(m, ws, x, "after writing a conv weight");
  gamma[1] = -2.0f;
  expect_reference(m, ws, x, "after writing gamma");
  var[2] = 9.0f;
  buffer(m, 4, 0)[0] = 1.5f;
  expect_reference(m, ws, x, "after writing the running statistics");
  float *flat = NULL;
  int64_t count = 0;
  ASSERT_OK(nnlib_model_get_flat_params(m, &flat, NULL, &count));
  for (int64_t i = 0; i < count; i += 3)
    flat[i] *= 0.5f;
  expect_reference(m, ws, x, "after writing the flat parameters");
  void *file = NULL;
  size_t size = 0;
  ASSERT_OK(nnlib_model_save_to_buffer(&file, &size, m, 0));
  nnlib_model *loaded = NULL;
  ASSERT_OK(nnlib_model_load_buffer(&loaded, file, size));
  nnlib_workspace *lws = NULL;
  ASSERT_OK(nnlib_workspace_create(&lws, loaded));
  expect_reference(loaded, lws, x, "loaded from a file");
  nnlib_workspace_free(lws);
  nnlib_model_free(loaded);
  nnlib_free(file);
  nnlib_workspace_free(ws);
  nnlib_tensor_free(x);
  nnlib_tensor_free(xs);
  nnlib_tensor_free(t);
  nnlib_model_free(m);
}

/* Training gives the same bits as with folding off, predictions and
 * evaluations between the steps included: for fused SGD (the conv
 * updates its weights in backward), momentum and Adam. */
static void check_training_bits(nnlib_optimizer_kind kind, float momentum) {
  int64_t shape[3] = {2, 7, 7};
  nnlib_model *m[2];
  for (int i = 0; i < 2; i++) {
    nnlib_optimizer_options o;
    ASSERT_OK(nnlib_optimizer_options_init(&o, kind));
    o.momentum = momentum;
    nnlib_optimizer *opt = NULL;
    ASSERT_OK(nnlib_optimizer_create(&opt, &o));
    m[i] = compiled(CHAIN_SPEC ",dropout:0.25,maxpool:2", shape, 4, opt,
                    i == 1);
  }
  assert_non_null(m[0]->layers[0]->folded_batchnorm);
  assert_null(m[1]->layers[0]->folded_batchnorm);
  assert_true(same_state(m[0], m[1]));
  nnlib_tensor *x = images(4, shape, 8), *xp = images(6, shape, 9);
  nnlib_tensor *t = outputs(m[0], 4), *y[2] = {outputs(m[0], 6),
                                               outputs(m[1], 6)};
  uint32_t seed = 12;
  ts_fill_uniform(nnlib_tensor_get_data(t), nnlib_tensor_get_size(t), 0.0f,
                  1.0f, &seed);
  for (int step = 0; step < 4; step++) {
    float loss[2];
    for (int i = 0; i < 2; i++) {
      ASSERT_OK(nnlib_model_step(m[i], x, t, &loss[i]));
      ASSERT_OK(nnlib_model_predict(m[i], xp, y[i]));
      ASSERT_OK(nnlib_model_evaluate(m[i], x, t, NULL, NULL));
    }
    assert_memory_equal(&loss[0], &loss[1], sizeof(float));
    if (!same_state(m[0], m[1]))
      fail_msg("step %d: parameters or running statistics differ", step);
    ASSERT_FOLDED_NEAR(y[0], y[1], "predictions between steps");
  }
  const nnlib_tensor *out[2];
  for (int i = 0; i < 2; i++)
    ASSERT_OK(nnlib_model_forward(m[i], x, &out[i]));
  assert_memory_equal(nnlib_tensor_get_data((nnlib_tensor *)out[0]),
                      nnlib_tensor_get_data((nnlib_tensor *)out[1]),
                      (size_t)nnlib_tensor_get_size((nnlib_tensor *)out[0]) *
                          sizeof(float));
  for (int i = 0; i < 2; i++) {
    nnlib_tensor_free(y[i]);
    nnlib_model_free(m[i]);
  }
  nnlib_tensor_free(x);
  nnlib_tensor_free(xp);
  nnlib_tensor_free(t);
}

static void test_training_bits_unchanged(void **s) {
  (void)s;
  check_training_bits(NNLIB_OPT_SGD, 0.0f);
  check_training_bits(NNLIB_OPT_SGD, 0.9f);
  check_training_bits(NNLIB_OPT_ADAM, 0.0f);
}

/* The same with the convolution's output in chunks of samples (the
 * batch's col and Z over 16 MB: chunks of 6, the last of 4 or 1), on one
 * thread and on two (each thread a range of the batch), and a batch
 * smaller than the compiled one: the plane statistics the convolution
 * offers its batchnorm give the bits the batchnorm computes itself. */
static void test_training_bits_in_chunks(void **s) {
  (void)s;
  int64_t shape[3] = {32, 14, 14};
  const char *spec = "conv:64x3x3:p1:nobias,batchnorm,relu,maxpool:2";
  nnlib_tensor *x = images(64, shape, 21), *x61 = images(61, shape, 22);
  int threads = nnlib_get_num_threads();
  for (int t = 1; t <= 2; t++) {
    ASSERT_OK(nnlib_set_num_threads(t));
    nnlib_model *m[2];
    for (int i = 0; i < 2; i++) {
      nnlib_optimizer_options o;
      ASSERT_OK(nnlib_optimizer_options_init(&o, NNLIB_OPT_SGD));
      nnlib_optimizer *opt = NULL;
      ASSERT_OK(nnlib_optimizer_create(&opt, &o));
      m[i] = compiled(spec, shape, 64, opt, i == 1);
    }
    assert_non_null(m[0]->layers[0]->folded_batchnorm);
    nnlib_tensor *target = outputs(m[0], 64), *target61 = outputs(m[0], 61);
    uint32_t seed = 23;
    ts_fill_uniform(nnlib_tensor_get_data(target), 64 * m[0]->output_size, 0.0f,
                    1.0f, &seed);
    ts_fill_uniform(nnlib_tensor_get_data(target61), 61 * m[0]->output_size,
                    0.0f, 1.0f, &seed);
    for (int step = 0; step < 2; step++) {
      float loss[2];
      for (int i = 0; i < 2; i++)
        ASSERT_OK(nnlib_model_step(m[i], step == 0 ? x : x61,
                                   step == 0 ? target : target61, &loss[i]));
      assert_memory_equal(&loss[0], &loss[1], sizeof(float));
      if (!same_state(m[0], m[1]))
        fail_msg("%d threads, step %d: parameters or running statistics "
                 "differ",
                 t, step);
    }
    for (int i = 0; i < 2; i++)
      nnlib_model_free(m[i]);
    nnlib_tensor_free(target);
    nnlib_tensor_free(target61);
  }
  ASSERT_OK(nnlib_set_num_threads(threads));
  nnlib_tensor_free(x);
  nnlib_tensor_free(x61);
}

/* The profile counts a folded group in its convolution's row during
 * predictions (the batchnorm and relu add no calls), and in training
 * steps every layer but the ReLUs, which run inside their batchnorms. */
static void test_profile_counts_the_group(void **s) {
  (void)s;
  int64_t shape[3] = {2, 7, 7};
  nnlib_optimizer *opt = NULL;
  ASSERT_OK(nnlib_sgd_create(&opt, 0.01f, 0, 0, 0));
  nnlib_model *m = compiled(CHAIN_SPEC, shape, 4, opt, false);
  nnlib_tensor *x = images(4, shape, 1), *y = outputs(m, 4);
  ASSERT_OK(nnlib_model_set_profiling(m, 1));
  for (int i = 0; i < 3; i++)
    ASSERT_OK(nnlib_model_predict(m, x, y));
  nnlib_layer_profile p[6];
  for (size_t i = 0; i < 6; i++) {
    memset(&p[i], 0, sizeof p[i]);
    p[i].struct_size = sizeof p[i];
    ASSERT_OK(nnlib_model_get_layer_profile(m, i, &p[i]));
  }
  assert_int_equal(p[0].forward_calls, 3);
  assert_int_equal(p[3].forward_calls, 3);
  assert_true(p[0].forward_flops > 0.0 && p[0].forward_seconds > 0.0);
  for (size_t i = 1; i < 6; i++)
    if (i != 3) {
      assert_int_equal(p[i].forward_calls, 0);
      assert_true(p[i].forward_seconds == 0.0);
      /* in training a batchnorm runs by itself, with the ReLU after it
       * fused in */
      assert_int_equal(p[i].fused, i == 2 || i == 5 ? 1 : 0);
    }
  ASSERT_OK(nnlib_model_step(m, x, y, NULL));
  ASSERT_OK(nnlib_model_get_layer_profile(m, 1, &p[1]));
  assert_int_equal(p[1].forward_calls, 1);
  assert_int_equal(p[1].backward_calls, 1);
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  nnlib_model_free(m);
}

/* The numerics check names the group by its nodes; a negative running
 * variance is refused naming the batchnorm, as without folding. */
static void test_numerics_and_state_name_the_nodes(void **s) {
  (void)s;
  int64_t shape[3] = {2, 7, 7};
  nnlib_model *m = compiled(CHAIN_SPEC, shape, 4, NULL, false);
  nnlib_tensor *x = images(2, shape, 1), *y = outputs(m, 2);
  ASSERT_OK(nnlib_model_set_check_numerics(m, 1));
  param(m, 4, 0)[1] = NAN; /* gamma of the second batchnorm */
  ASSERT_STATUS(NNLIB_ERR_NUMERICAL, nnlib_model_predict(m, x, y));
  ts_expect_message("layer 3 (conv2d, with layer 4 batchnorm, layer 5 relu "
                    "folded in) output is");
  param(m, 4, 0)[1] = 1.0f;
  ASSERT_OK(nnlib_model_predict(m, x, y));
  buffer(m, 1, 1)[2] = -0.25f;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_model_predict(m, x, y));
  ts_expect_message("layer 1 (batchnorm): batchnorm: running_var of channel 2 "
                    "(of 4) is -0.25");
  nnlib_workspace *ws = NULL;
  ASSERT_OK(nnlib_workspace_create(&ws, m));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_workspace_predict(ws, x, y));
  ts_expect_message("layer 1 (batchnorm)");
  nnlib_workspace_free(ws);
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  nnlib_model_free(m);
}

/* An inference-mode gradient check goes back through the batchnorm: it
 * runs the layers unfolded (the same bits as the twin without folding),
 * and its gradients hold. */
static void test_inference_gradcheck_unfolded(void **s) {
  (void)s;
  int64_t shape[3] = {2, 7, 7};
  const char *spec = "conv:4x3x3:p1,batchnorm,tanh,"
                     "conv:3x3x3:s2:p1:nobias,batchnorm:0.1:0.001,tanh";
  double err[2] = {1.0, 1.0};
  for (int i = 0; i < 2; i++) {
    nnlib_model *m = compiled(spec, shape, 3, NULL, i == 1);
    uint32_t seed = 31;
    randomise_state(m, &seed);
    nnlib_tensor *x = images(3, shape, 2), *t = outputs(m, 3);
    ts_fill_uniform(nnlib_tensor_get_data(t), nnlib_tensor_get_size(t), 0.0f,
                    1.0f, &seed);
    nnlib_gradcheck_options o;
    ASSERT_OK(nnlib_gradcheck_options_init(&o));
    o.inference = 1;
    ASSERT_OK(nnlib_model_gradcheck(m, x, t, &o, &err[i]));
    nnlib_tensor_free(x);
    nnlib_tensor_free(t);
    nnlib_model_free(m);
  }
  if (!(err[0] < 1e-2))
    fail_msg("inference gradcheck relative error %g", err[0]);
  assert_memory_equal(&err[0], &err[1], sizeof err[0]);
}

/* An inference buffer set gives a group one region: the convolution's,
 * the batchnorm's and the relu's outputs are one buffer. The set then
 * grows by the scaled weights at most (here the convolutions' lowered
 * inputs, which live alone with their outputs, set the peak). */
static void test_inference_set_shares_group_region(void **s) {
  (void)s;
  int64_t shape[3] = {2, 7, 7};
  nnlib_model *a = compiled(CHAIN_SPEC, shape, 8, NULL, false);
  nnlib_model *b = compiled(CHAIN_SPEC, shape, 8, NULL, true);
  nnlib__buffers set;
  ASSERT_OK(nnlib__buffers_alloc(a, &set, false));
  assert_ptr_equal(set.acts[1], set.acts[3]);
  assert_ptr_equal(set.acts[2], set.acts[3]);
  assert_ptr_equal(set.acts[4], set.acts[6]);
  assert_ptr_not_equal(set.acts[3], set.acts[6]);
  nnlib__buffers_free(&set);
  int64_t folded = nnlib__buffers_floats(a, false);
  int64_t unfolded = nnlib__buffers_floats(b, false);
  print_message("  inference set: %lld floats folded, %lld unfolded\n",
                (long long)folded, (long long)unfolded);
  int64_t scaled = (2 * 9 + 2) * 4 + 16 + (4 * 9 + 2) * 3 + 16;
  assert_true(folded <= unfolded + scaled);
  nnlib_model_free(a);
  nnlib_model_free(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_random_models_match),
      cmocka_unit_test(test_which_nodes_fold),
      cmocka_unit_test(test_graph_model_matches),
      cmocka_unit_test(test_folded_copy_follows_writes),
      cmocka_unit_test(test_training_bits_unchanged),
      cmocka_unit_test(test_training_bits_in_chunks),
      cmocka_unit_test(test_profile_counts_the_group),
      cmocka_unit_test(test_numerics_and_state_name_the_nodes),
      cmocka_unit_test(test_inference_gradcheck_unfolded),
      cmocka_unit_test(test_inference_set_shares_group_region),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
