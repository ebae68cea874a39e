/* conv2d inference by Winograd's F(2x2, 3x3), through the public API only.
 * Predictions (nnlib_model_predict, nnlib_workspace_predict) of models whose
 * first layer is a conv2d of 3x3 kernels at stride 1, dilation 1 and
 * padding 1 with at least 16 input and 16 output channels - the shape that
 * inference computes by Winograd - alone or followed by a batchnorm (folded
 * into it; running statistics), a ReLU and a 2x2 max pool at stride 2, are
 * checked against a naive direct convolution in double written out here
 * (zero padding), then batchnorm in eval mode with PyTorch's epsilon,
 * gamma (z - mean) / sqrt(var + eps) + beta, ReLU, and max pooling that
 * floors odd sizes. Each output must be within 1e-5 of its bound: the sum
 * over its receptive field of |w x|, plus |b|; through a batchnorm
 * |s| (that + |mean|) + |beta|, s = gamma / sqrt(var + eps); a pool takes
 * the largest bound of its window.
 * The profile's GEMM flops of the convolution name the path each case took.
 * Cases: even and odd maps (ragged edge tiles), 1x1 and 2x3 maps, batches
 * of 1 to 70, predictions of more samples than compiled and of fewer, with
 * and without bias, at 1 and (outside valgrind) 2 threads. Control shapes
 * that keep the im2col lowering (8 channels, stride 2, padding 0) prove the
 * reference on a path that existed before. Repeated predictions give the
 * same bits, a model compiled on eight threads predicts right on fewer
 * (whose ranges of the batch outgrow the lanes' planned areas unless the
 * chunks shrink), a workspace gives the model's bits, and predictions follow
 * writes to the weights and statistics made through the writable tensors
 * of nnlib_layer_get_param and nnlib_layer_get_buffer. */
#include "test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Per output: |predicted - reference| <= TOLERANCE * bound (see above). */
#define TOLERANCE 1e-5
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* A conv2d of 3x3 kernels at dilation 1, then optionally a batchnorm, a
 * ReLU and a 2x2 max pool at stride 2. */
typedef struct conv_case {
  const char *name;
  int cin, cout, h, w;
  int stride, pad;
  int bias;
  int batchnorm; /* 1: a batchnorm of epsilon eps */
  float eps;
  int relu, pool;
} conv_case;

/* A prediction of n samples by a model compiled for `compiled`. */
typedef struct run {
  int64_t compiled, n;
} run;

/* ---------------------------------------------------------------- sizes */

static int conv_out(const conv_case *c, int in) {
  return (in + 2 * c->pad - 3) / c->stride + 1;
}

static int out_h(const conv_case *c) {
  int h = conv_out(c, c->h);
  return c->pool ? h / 2 : h;
}

static int out_w(const conv_case *c) {
  int w = conv_out(c, c->w);
  return c->pool ? w / 2 : w;
}

static int64_t in_floats(const conv_case *c) {
  return (int64_t)c->cin * c->h * c->w;
}

static int64_t conv_floats(const conv_case *c) {
  return (int64_t)c->cout * conv_out(c, c->h) * conv_out(c, c->w);
}

static int64_t out_floats(const conv_case *c) {
  return (int64_t)c->cout * out_h(c) * out_w(c);
}

static int64_t weight_floats(const conv_case *c) {
  return (int64_t)c->cout * c->cin * 9;
}

/* ----------------------------------------------------------- parameters */

/* The values the test gives a model (it owns them): b NULL without bias,
 * the batchnorm's four NULL without batchnorm. */
typedef struct case_params {
  float *w, *b, *gamma, *beta, *mean, *var;
} case_params;

static float *floats(int64_t n) {
  float *v = malloc(sizeof(float) * (size_t)n);
  assert_non_null(v);
  return v;
}

static float *uniform(int64_t n, float lo, float hi, uint32_t *seed) {
  float *v = floats(n);
  ts_fill_uniform(v, n, lo, hi, seed);
  return v;
}

/* He-scaled weights: uniform in +-sqrt(6 / fan_in), variance 2 / fan_in. */
static void fill_weights(const conv_case *c, float *w, uint32_t *seed) {
  float a = (float)sqrt(6.0 / (9.0 * c->cin));
  ts_fill_uniform(w, weight_floats(c), -a, a, seed);
}

static case_params params_make(const conv_case *c, uint32_t seed) {
  case_params p = {NULL, NULL, NULL, NULL, NULL, NULL};
  p.w = floats(weight_floats(c));
  fill_weights(c, p.w, &seed);
  if (c->bias)
    p.b = uniform(c->cout, -0.5f, 0.5f, &seed);
  if (c->batchnorm) {
    p.gamma = uniform(c->cout, 0.5f, 1.5f, &seed);
    p.beta = uniform(c->cout, -0.5f, 0.5f, &seed);
    p.mean = uniform(c->cout, -0.5f, 0.5f, &seed);
    p.var = uniform(c->cout, 0.5f, 2.0f, &seed);
  }
  return p;
}

static void params_free(case_params *p) {
  free(p->w), free(p->b), free(p->gamma), free(p->beta), free(p->mean);
  free(p->var);
}

static nnlib_tensor *param_named(nnlib_layer *l, const char *name) {
  for (size_t i = 0; i < nnlib_layer_get_param_tensor_count(l); i++)
    if (strcmp(nnlib_layer_get_param_name(l, i), name) == 0) {
      nnlib_tensor *t = NULL;
      ASSERT_OK(nnlib_layer_get_param(l, i, &t, NULL));
      return t;
    }
  fail_msg("%s has no parameter %s", nnlib_layer_get_name(l), name);
  return NULL;
}

static nnlib_tensor *buffer_named(nnlib_layer *l, const char *name) {
  for (size_t i = 0; i < nnlib_layer_get_buffer_count(l); i++)
    if (strcmp(nnlib_layer_get_buffer_name(l, i), name) == 0) {
      nnlib_tensor *t = NULL;
      ASSERT_OK(nnlib_layer_get_buffer(l, i, &t));
      return t;
    }
  fail_msg("%s has no buffer %s", nnlib_layer_get_name(l), name);
  return NULL;
}

static void copy_into(nnlib_tensor *t, const float *v, int64_t n) {
  assert_int_equal(nnlib_tensor_get_size(t), n);
  memcpy(nnlib_tensor_get_data(t), v, sizeof(float) * (size_t)n);
}

/* Writes p into the model's tensors (layer 0 the conv2d, 1 the batchnorm). */
static void params_write(nnlib_model *m, const conv_case *c,
                         const case_params *p) {
  nnlib_layer *conv = nnlib_model_get_layer(m, 0);
  copy_into(param_named(conv, "weight"), p->w, weight_floats(c));
  if (c->bias)
    copy_into(param_named(conv, "bias"), p->b, c->cout);
  if (!c->batchnorm)
    return;
  nnlib_layer *bn = nnlib_model_get_layer(m, 1);
  copy_into(param_named(bn, "weight"), p->gamma, c->cout);
  copy_into(param_named(bn, "bias"), p->beta, c->cout);
  copy_into(buffer_named(bn, "running_mean"), p->mean, c->cout);
  copy_into(buffer_named(bn, "running_var"), p->var, c->cout);
}

/* ---------------------------------------------------------------- model */

static nnlib_layer *conv_layer(const conv_case *c) {
  const int geom[6] = {c->stride, c->stride, c->pad, c->pad, 1, 1};
  return ts_conv(c->cin, c->cout, 3, 3, geom, c->bias);
}

static void add_layers(nnlib_model *m, const conv_case *c) {
  nnlib_layer *l = NULL;
  ASSERT_OK(nnlib_model_add(m, conv_layer(c)));
  if (c->batchnorm) {
    ASSERT_OK(nnlib_batchnorm_create(&l, 0.1f, c->eps));
    ASSERT_OK(nnlib_model_add(m, l));
  }
  if (c->relu)
    ASSERT_OK(nnlib_model_add(m, ts_act(NNLIB_ACT_RELU, 0.0f)));
  if (c->pool) {
    ASSERT_OK(nnlib_pool2d_create(&l, NNLIB_LAYER_MAXPOOL2D, 2, 2, NULL));
    ASSERT_OK(nnlib_model_add(m, l));
  }
}

static void expect_output_shape(nnlib_model *m, const conv_case *c) {
  int64_t dims[4];
  size_t rank = 0;
  ASSERT_OK(nnlib_model_get_output_shape(m, dims, 4, &rank));
  assert_int_equal(rank, 3);
  assert_int_equal(dims[0], c->cout);
  assert_int_equal(dims[1], out_h(c));
  assert_int_equal(dims[2], out_w(c));
}

/* The case's model, inference only, compiled for max_batch, holding p. */
static nnlib_model *model_make(const conv_case *c, int64_t max_batch,
                               const case_params *p) {
  nnlib_model *m = NULL;
  int64_t shape[3] = {c->cin, c->h, c->w};
  ASSERT_OK(nnlib_model_create(&m));
  add_layers(m, c);
  ASSERT_OK(
      nnlib_model_compile(m, shape, 3, max_batch, NNLIB_LOSS_NONE, NULL, 5));
  expect_output_shape(m, c);
  params_write(m, c, p);
  return m;
}

/* The first n samples of x; NaN in the output until predict writes it. */
static nnlib_tensor *input_of(const conv_case *c, const float *x, int64_t n) {
  return ts_tensor2(n, in_floats(c), x);
}

static nnlib_tensor *output_for(const conv_case *c, int64_t n) {
  nnlib_tensor *y = ts_tensor2(n, out_floats(c), NULL);
  ASSERT_OK(nnlib_tensor_fill(y, NAN));
  return y;
}

static nnlib_tensor *predict(nnlib_model *m, const conv_case *c, const float *x,
                             int64_t n) {
  nnlib_tensor *in = input_of(c, x, n), *y = output_for(c, n);
  ASSERT_OK(nnlib_model_predict(m, in, y));
  nnlib_tensor_free(in);
  return y;
}

static nnlib_tensor *predict_in(nnlib_workspace *ws, const conv_case *c,
                                const float *x, int64_t n) {
  nnlib_tensor *in = input_of(c, x, n), *y = output_for(c, n);
  ASSERT_OK(nnlib_workspace_predict(ws, in, y));
  nnlib_tensor_free(in);
  return y;
}

/* ------------------------------------------------------------ reference */

/* Outputs and their error bounds, [n, per-sample output] in double. */
typedef struct reference {
  double *y, *bound;
} reference;

/* One sample's convolution z [Co, OH, OW] and its bound zb: the sum of
 * |w x| over the receptive field, plus |b|. */
static void naive_conv(const conv_case *c, const case_params *p, const float *x,
                       double *z, double *zb) {
  int oh_n = conv_out(c, c->h), ow_n = conv_out(c, c->w);
  for (int co = 0; co < c->cout; co++)
    for (int oh = 0; oh < oh_n; oh++)
      for (int ow = 0; ow < ow_n; ow++) {
        double acc = p->b != NULL ? p->b[co] : 0.0, mag = fabs(acc);
        for (int ci = 0; ci < c->cin; ci++)
          for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++) {
              int ih = oh * c->stride - c->pad + i;
              int iw = ow * c->stride - c->pad + j;
              if (ih < 0 || ih >= c->h || iw < 0 || iw >= c->w)
                continue;
              double prod = (double)x[(ci * c->h + ih) * c->w + iw] *
                            p->w[((co * c->cin + ci) * 3 + i) * 3 + j];
              acc += prod;
              mag += fabs(prod);
            }
        int64_t at = ((int64_t)co * oh_n + oh) * ow_n + ow;
        z[at] = acc;
        zb[at] = mag;
      }
}

/* Eval-mode batchnorm in place over [Co, plane]. */
static void naive_batchnorm(const conv_case *c, const case_params *p,
                            int64_t plane, double *z, double *zb) {
  for (int co = 0; co < c->cout; co++) {
    double s = p->gamma[co] / sqrt((double)p->var[co] + (double)c->eps);
    for (int64_t q = co * plane; q < (co + 1) * plane; q++) {
      z[q] = s * (z[q] - p->mean[co]) + p->beta[co];
      zb[q] = fabs(s) * (zb[q] + fabs(p->mean[co])) + fabs(p->beta[co]);
    }
  }
}

static void naive_relu(double *z, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    z[i] = z[i] > 0.0 ? z[i] : 0.0;
}

/* 2x2 max pool at stride 2 (floor) of [Co, OH, OW] into y; yb the largest
 * bound of each window. */
static void naive_pool(const conv_case *c, const double *z, const double *zb,
                       double *y, double *yb) {
  int zh = conv_out(c, c->h), zw = conv_out(c, c->w);
  int ph = zh / 2, pw = zw / 2;
  for (int co = 0; co < c->cout; co++)
    for (int py = 0; py < ph; py++)
      for (int px = 0; px < pw; px++) {
        int64_t first = ((int64_t)co * zh + 2 * py) * zw + 2 * px;
        int64_t to = ((int64_t)co * ph + py) * pw + px;
        y[to] = z[first];
        yb[to] = zb[first];
        for (int k = 1; k < 4; k++) {
          int64_t at = first + (k / 2) * zw + k % 2;
          y[to] = fmax(y[to], z[at]);
          yb[to] = fmax(yb[to], zb[at]);
        }
      }
}

static reference reference_make(const conv_case *c, const case_params *p,
                                const float *x, int64_t n) {
  int64_t zs = conv_floats(c), ys = out_floats(c), xs = in_floats(c);
  reference r = {malloc(sizeof(double) * (size_t)(n * ys)),
                 malloc(sizeof(double) * (size_t)(n * ys))};
  double *z = malloc(sizeof(double) * (size_t)zs);
  double *zb = malloc(sizeof(double) * (size_t)zs);
  assert_true(r.y != NULL && r.bound != NULL && z != NULL && zb != NULL);
  for (int64_t s = 0; s < n; s++) {
    naive_conv(c, p, x + s * xs, z, zb);
    if (c->batchnorm)
      naive_batchnorm(c, p, zs / c->cout, z, zb);
    if (c->relu)
      naive_relu(z, zs);
    if (c->pool) {
      naive_pool(c, z, zb, r.y + s * ys, r.bound + s * ys);
    } else {
      memcpy(r.y + s * ys, z, sizeof(double) * (size_t)zs);
      memcpy(r.bound + s * ys, zb, sizeof(double) * (size_t)zs);
    }
  }
  free(z), free(zb);
  return r;
}

static void reference_free(reference *r) { free(r->y), free(r->bound); }

/* ------------------------------------------------------------- checking */

/* Fails at the first of the n samples' outputs beyond TOLERANCE times its
 * bound, naming `label` and the output; else returns the largest
 * error / (TOLERANCE bound). */
static double expect_within(const char *label, const conv_case *c,
                            const nnlib_tensor *got, const reference *r,
                            int64_t n) {
  const float *y = nnlib_tensor_get_data_const(got);
  int64_t ys = out_floats(c), oh = out_h(c), ow = out_w(c);
  double worst = 0.0;
  for (int64_t i = 0; i < n * ys; i++) {
    double err = fabs((double)y[i] - r->y[i]), tol = TOLERANCE * r->bound[i];
    if (!(err <= tol)) {
      int64_t q = i % ys;
      fail_msg("%s: sample %lld, output [channel %lld, row %lld, column "
               "%lld] = %.9g, reference %.9g: error %.3g above %.3g",
               label, (long long)(i / ys), (long long)(q / (oh * ow)),
               (long long)(q / ow % oh), (long long)(q % ow), (double)y[i],
               r->y[i], err, tol);
    }
    if (tol > 0.0)
      worst = fmax(worst, err / tol);
  }
  return worst;
}

static void expect_same_bits(const char *label, const nnlib_tensor *a,
                             const nnlib_tensor *b) {
  int64_t n = nnlib_tensor_get_size(a);
  assert_int_equal(n, nnlib_tensor_get_size(b));
  const float *va = nnlib_tensor_get_data_const(a);
  const float *vb = nnlib_tensor_get_data_const(b);
  for (int64_t i = 0; i < n; i++)
    if (memcmp(&va[i], &vb[i], sizeof(float)) != 0)
      fail_msg("%s: element %lld is %.9g, then %.9g", label, (long long)i,
               (double)va[i], (double)vb[i]);
}

static int64_t count_changed(const nnlib_tensor *a, const nnlib_tensor *b) {
  const float *va = nnlib_tensor_get_data_const(a);
  const float *vb = nnlib_tensor_get_data_const(b);
  int64_t changed = 0;
  for (int64_t i = 0; i < nnlib_tensor_get_size(a); i++)
    changed += memcmp(&va[i], &vb[i], sizeof(float)) != 0;
  return changed;
}

/* Thread counts to run at: 2 splits the products over nnlib's pool, which
 * valgrind would run one thread at a time (docs/RELIABILITY.md). */
static int thread_counts(void) { return ts_split_gemms_checkable() ? 2 : 1; }

static int threads_before;

static int save_threads(void **state) {
  (void)state;
  threads_before = nnlib_get_num_threads();
  return 0;
}

static int restore_threads(void **state) {
  (void)state;
  nnlib_set_num_threads(threads_before);
  return 0;
}

/* Whether inference takes Winograd's path for the case (src/layers/
 * conv2d.c, winograd_applies: 3x3 at stride 1 and padding 1, at least 16
 * channels in and out, 16 tiles <= 27 P / 4), and the GEMM flops its path
 * issues for n samples, 2 m n k summed: 16 products [Co, C] x [C, tiles]
 * per sample, or the lowering's [Co, 9 C] x [9 C, P]. */
static bool takes_winograd(const conv_case *c) {
  int64_t oh = conv_out(c, c->h), ow = conv_out(c, c->w);
  int64_t tiles = (oh + 1) / 2 * ((ow + 1) / 2);
  return c->stride == 1 && c->pad == 1 && c->cin >= 16 && c->cout >= 16 &&
         64 * tiles <= 27 * oh * ow;
}

static double path_flops(const conv_case *c, int64_t n) {
  int64_t oh = conv_out(c, c->h), ow = conv_out(c, c->w);
  double tiles = (double)((oh + 1) / 2 * ((ow + 1) / 2)), p = (double)(oh * ow);
  return takes_winograd(c) ? 2.0 * 16 * c->cout * c->cin * tiles * (double)n
                           : 2.0 * c->cout * 9 * c->cin * p * (double)n;
}

/* The profile's flops of the convolution (layer 0) name the path it ran. */
static void expect_path(const char *label, const conv_case *c, nnlib_model *m,
                        int64_t n) {
  nnlib_layer_profile prof;
  memset(&prof, 0, sizeof prof);
  prof.struct_size = sizeof prof;
  ASSERT_OK(nnlib_model_get_layer_profile(m, 0, &prof));
  if (prof.forward_flops != path_flops(c, n))
    fail_msg("%s: the convolution issued %.0f GEMM flops, the %s path "
             "%.0f",
             label, prof.forward_flops,
             takes_winograd(c) ? "Winograd" : "lowering", path_flops(c, n));
}

/* One run of a case: a fresh model holding p predicts the first r.n
 * samples of x; returns the worst error ratio. */
static double check_run(const conv_case *c, const case_params *p,
                        const float *x, const reference *ref, run r,
                        int threads) {
  char label[200];
  snprintf(label, sizeof label, "%s, batch %lld (compiled %lld), %d thread(s)",
           c->name, (long long)r.n, (long long)r.compiled, threads);
  nnlib_model *m = model_make(c, r.compiled, p);
  ASSERT_OK(nnlib_model_set_profiling(m, 1));
  nnlib_tensor *y = predict(m, c, x, r.n);
  expect_path(label, c, m, r.n);
  double worst = expect_within(label, c, y, ref, r.n);
  nnlib_tensor_free(y);
  nnlib_model_free(m);
  return worst;
}

static int64_t most_samples(const run *runs, size_t count) {
  int64_t most = 0;
  for (size_t i = 0; i < count; i++)
    most = runs[i].n > most ? runs[i].n : most;
  return most;
}

/* Every run of a case, at every thread count, against one reference of the
 * largest batch (a smaller batch predicts its first samples). */
static void check_case(const conv_case *c, const run *runs, size_t count) {
  uint32_t seed = 17;
  int64_t most = most_samples(runs, count);
  float *x = uniform(most * in_floats(c), -1.0f, 1.0f, &seed);
  case_params p = params_make(c, 23);
  reference ref = reference_make(c, &p, x, most);
  double worst = 0.0;
  for (int threads = 1; threads <= thread_counts(); threads++) {
    ASSERT_OK(nnlib_set_num_threads(threads));
    for (size_t i = 0; i < count; i++)
      worst = fmax(worst, check_run(c, &p, x, &ref, runs[i], threads));
  }
  print_message("  %s: largest error %.3g of the tolerance\n", c->name, worst);
  reference_free(&ref);
  params_free(&p);
  free(x);
}

static void check_cases(const conv_case *cases, size_t case_count,
                        const run *runs, size_t run_count) {
  for (size_t i = 0; i < case_count; i++)
    check_case(&cases[i], runs, run_count);
}

/* ---------------------------------------------------------------- tests */

/* name, cin, cout, h, w, stride, pad, bias, batchnorm, eps, relu, pool */

static void conv_16_to_16_even_maps(void **state) {
  (void)state;
  static const conv_case c = {
      "conv 16->16 14x14", 16, 16, 14, 14, 1, 1, 1, 0, 0.0f, 0, 0};
  static const run runs[] = {{1, 1}, {2, 2}, {5, 5}, {64, 64}};
  check_case(&c, runs, COUNT(runs));
}

static void conv_20_to_24_odd_and_tiny_maps(void **state) {
  (void)state;
  static const conv_case cases[] = {
      {"conv 20->24 7x9", 20, 24, 7, 9, 1, 1, 1, 0, 0.0f, 0, 0},
      {"conv 20->24 5x5", 20, 24, 5, 5, 1, 1, 1, 0, 0.0f, 0, 0},
      {"conv 20->24 1x1", 20, 24, 1, 1, 1, 1, 1, 0, 0.0f, 0, 0},
      {"conv 20->24 2x3", 20, 24, 2, 3, 1, 1, 1, 0, 0.0f, 0, 0},
  };
  static const run runs[] = {{3, 3}, {13, 13}};
  check_cases(cases, COUNT(cases), runs, COUNT(runs));
}

/* The benchmark CNN's second convolution, and odd maps the pool floors. */
static void conv_batchnorm_relu_pool_32_to_64(void **state) {
  (void)state;
  static const conv_case cases[] = {
      {"conv 32->64 14x14, batchnorm, relu, max pool", 32, 64, 14, 14, 1, 1, 1,
       1, 1e-5f, 1, 1},
      {"conv 32->64 9x11, batchnorm, relu, max pool", 32, 64, 9, 11, 1, 1, 1, 1,
       1e-5f, 1, 1},
  };
  static const run runs[] = {{1, 1}, {7, 7}, {64, 64}};
  check_cases(cases, COUNT(cases), runs, COUNT(runs));
}

/* A ReLU without batchnorm, with and without bias; a batchnorm without
 * bias (epsilon 0.1, so that where it goes shows) and without ReLU. */
static void folds_with_and_without_bias(void **state) {
  (void)state;
  static const conv_case cases[] = {
      {"conv 16->32 8x8, relu", 16, 32, 8, 8, 1, 1, 1, 0, 0.0f, 1, 0},
      {"conv 16->32 8x8 no bias, relu", 16, 32, 8, 8, 1, 1, 0, 0, 0.0f, 1, 0},
      {"conv 24->16 6x10 no bias, batchnorm eps 0.1", 24, 16, 6, 10, 1, 1, 0, 1,
       0.1f, 0, 0},
      {"conv 16->16 7x7 no bias, batchnorm, relu, max pool", 16, 16, 7, 7, 1, 1,
       0, 1, 1e-5f, 1, 1},
  };
  static const run runs[] = {{17, 17}};
  check_cases(cases, COUNT(cases), runs, COUNT(runs));
}

/* 70 samples compiled whole, in chunks of 32 (32, 32, 6) and one at a
 * time; 5 samples on a model compiled for 64. */
static void batches_in_chunks_and_short(void **state) {
  (void)state;
  static const conv_case cases[] = {
      {"conv 16->16 14x14", 16, 16, 14, 14, 1, 1, 1, 0, 0.0f, 0, 0},
      {"conv 16->32 10x10, batchnorm, relu, max pool", 16, 32, 10, 10, 1, 1, 1,
       1, 1e-5f, 1, 1},
  };
  static const run runs[] = {{70, 70}, {32, 70}, {1, 70}, {64, 5}};
  check_cases(cases, COUNT(cases), runs, COUNT(runs));
}

/* A model compiled on eight threads predicts on fewer: each thread's
 * range of the batch is then larger than the share the workspace's lanes
 * were planned for, and the chunks must shrink to fit them (a small map
 * lowered whole, and Winograd's lanes). */
static void compiled_on_more_threads(void **state) {
  (void)state;
  static const conv_case cases[] = {
      {"conv 8->16 6x6 padding 0", 8, 16, 6, 6, 1, 0, 1, 0, 0.0f, 0, 0},
      {"conv 16->16 14x14", 16, 16, 14, 14, 1, 1, 1, 0, 0.0f, 0, 0},
  };
  enum { N = 64 };
  for (size_t i = 0; i < COUNT(cases); i++) {
    const conv_case *c = &cases[i];
    uint32_t seed = 31;
    float *x = uniform(N * in_floats(c), -1.0f, 1.0f, &seed);
    case_params p = params_make(c, 37);
    reference ref = reference_make(c, &p, x, N);
    ASSERT_OK(nnlib_set_num_threads(8));
    nnlib_model *m = model_make(c, N, &p);
    for (int threads = 1; threads <= thread_counts(); threads++) {
      char label[160];
      snprintf(label, sizeof label, "%s, compiled on 8 threads, %d thread(s)",
               c->name, threads);
      ASSERT_OK(nnlib_set_num_threads(threads));
      nnlib_tensor *y = predict(m, c, x, N);
      expect_within(label, c, y, &ref, N);
      nnlib_tensor_free(y);
    }
    nnlib_model_free(m);
    reference_free(&ref);
    params_free(&p);
    free(x);
  }
}

/* Shapes that keep the lowering, with the same reference. */
static void control_shapes_on_the_lowering(void **state) {
  (void)state;
  static const conv_case cases[] = {
      {"control: conv 8->16 14x14, batchnorm, relu, max pool", 8, 16, 14, 14, 1,
       1, 1, 1, 1e-5f, 1, 1},
      {"control: conv 16->8 9x11", 16, 8, 9, 11, 1, 1, 1, 0, 0.0f, 0, 0},
      {"control: conv 16->16 14x14 stride 2", 16, 16, 14, 14, 2, 1, 1, 0, 0.0f,
       0, 0},
      {"control: conv 16->16 9x11 padding 0, batchnorm, relu, max pool", 16, 16,
       9, 11, 1, 0, 1, 1, 1e-5f, 1, 1},
      {"control: conv 16->16 3x3 map (ragged tiles: no gain)", 16, 16, 3, 3, 1,
       1, 1, 0, 0.0f, 0, 0},
  };
  static const run runs[] = {{1, 1}, {9, 9}};
  check_cases(cases, COUNT(cases), runs, COUNT(runs));
}

/* Two predictions of one model, and one through a workspace: the same
 * bits. */
static void check_repeatable(const conv_case *c, int64_t n) {
  uint32_t seed = 31;
  float *x = uniform(n * in_floats(c), -1.0f, 1.0f, &seed);
  case_params p = params_make(c, 37);
  nnlib_model *m = model_make(c, n, &p);
  nnlib_workspace *ws = NULL;
  ASSERT_OK(nnlib_workspace_create(&ws, m));
  nnlib_tensor *first = predict(m, c, x, n), *again = predict(m, c, x, n);
  nnlib_tensor *in_ws = predict_in(ws, c, x, n);
  expect_same_bits(c->name, first, again);
  expect_same_bits(c->name, first, in_ws);
  nnlib_tensor_free(first), nnlib_tensor_free(again), nnlib_tensor_free(in_ws);
  nnlib_workspace_free(ws);
  nnlib_model_free(m);
  params_free(&p);
  free(x);
}

static void repeated_predictions_same_bits(void **state) {
  (void)state;
  static const conv_case cases[] = {
      {"conv 32->64 14x14, batchnorm, relu, max pool", 32, 64, 14, 14, 1, 1, 1,
       1, 1e-5f, 1, 1},
      {"conv 20->24 7x9", 20, 24, 7, 9, 1, 1, 1, 0, 0.0f, 0, 0},
  };
  for (int threads = 1; threads <= thread_counts(); threads++) {
    ASSERT_OK(nnlib_set_num_threads(threads));
    for (size_t i = 0; i < COUNT(cases); i++)
      check_repeatable(&cases[i], 6);
  }
}

/* A model, its workspace and the values it holds, for the write tests. */
typedef struct live_model {
  const conv_case *c;
  case_params p;
  float *x;
  int64_t n;
  nnlib_model *m;
  nnlib_workspace *ws;
  nnlib_tensor *last; /* the latest prediction */
} live_model;

/* Predicts with the model and the workspace: both within tolerance of the
 * reference of lm->p, the same bits, and (after the first) other values
 * than the last prediction in some outputs. */
static void expect_follows(live_model *lm, const char *after) {
  char label[200];
  snprintf(label, sizeof label, "%s, after %s", lm->c->name, after);
  reference ref = reference_make(lm->c, &lm->p, lm->x, lm->n);
  nnlib_tensor *y = predict(lm->m, lm->c, lm->x, lm->n);
  nnlib_tensor *y_ws = predict_in(lm->ws, lm->c, lm->x, lm->n);
  expect_within(label, lm->c, y, &ref, lm->n);
  expect_same_bits(label, y, y_ws);
  if (lm->last != NULL && count_changed(lm->last, y) == 0)
    fail_msg("%s: the prediction did not change", label);
  nnlib_tensor_free(lm->last);
  nnlib_tensor_free(y_ws);
  lm->last = y;
  reference_free(&ref);
}

static float *conv_weight(live_model *lm) {
  return nnlib_tensor_get_data(
      param_named(nnlib_model_get_layer(lm->m, 0), "weight"));
}

/* New weights everywhere, then one weight, then one channel's batchnorm
 * gamma and running variance, each written into the tensors the getters
 * hand out (and into lm->p for the reference). */
static void write_and_check(live_model *lm) {
  const conv_case *c = lm->c;
  uint32_t seed = 41;
  expect_follows(lm, "compile");
  fill_weights(c, lm->p.w, &seed);
  memcpy(conv_weight(lm), lm->p.w, sizeof(float) * (size_t)weight_floats(c));
  expect_follows(lm, "new weights");
  int64_t one = ((5 * (int64_t)c->cin + 3) * 3 + 1) * 3 + 1; /* [5,3,1,1] */
  lm->p.w[one] += 0.75f;
  conv_weight(lm)[one] = lm->p.w[one];
  expect_follows(lm, "one new weight");
  nnlib_layer *bn = nnlib_model_get_layer(lm->m, 1);
  lm->p.gamma[9] = 1.375f;
  lm->p.var[9] = 0.625f;
  nnlib_tensor_get_data(param_named(bn, "weight"))[9] = lm->p.gamma[9];
  nnlib_tensor_get_data(buffer_named(bn, "running_var"))[9] = lm->p.var[9];
  expect_follows(lm, "new batchnorm gamma and running_var in channel 9");
}

static void predictions_follow_writes(void **state) {
  (void)state;
  static const conv_case c = {"conv 32->64 9x11, batchnorm, relu, max pool",
                              32,
                              64,
                              9,
                              11,
                              1,
                              1,
                              1,
                              1,
                              1e-5f,
                              1,
                              1};
  uint32_t seed = 43;
  live_model lm = {&c, params_make(&c, 47), NULL, 3, NULL, NULL, NULL};
  lm.x = uniform(lm.n * in_floats(&c), -1.0f, 1.0f, &seed);
  lm.m = model_make(&c, lm.n, &lm.p);
  ASSERT_OK(nnlib_workspace_create(&lm.ws, lm.m));
  write_and_check(&lm);
  nnlib_tensor_free(lm.last);
  nnlib_workspace_free(lm.ws);
  nnlib_model_free(lm.m);
  params_free(&lm.p);
  free(lm.x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(conv_16_to_16_even_maps, restore_threads),
      cmocka_unit_test_teardown(conv_20_to_24_odd_and_tiny_maps,
                                restore_threads),
      cmocka_unit_test_teardown(conv_batchnorm_relu_pool_32_to_64,
                                restore_threads),
      cmocka_unit_test_teardown(folds_with_and_without_bias, restore_threads),
      cmocka_unit_test_teardown(batches_in_chunks_and_short, restore_threads),
      cmocka_unit_test_teardown(compiled_on_more_threads, restore_threads),
      cmocka_unit_test_teardown(control_shapes_on_the_lowering,
                                restore_threads),
      cmocka_unit_test_teardown(repeated_predictions_same_bits,
                                restore_threads),
      cmocka_unit_test_teardown(predictions_follow_writes, restore_threads),
  };
  return cmocka_run_group_tests(tests, save_threads, NULL);
}
