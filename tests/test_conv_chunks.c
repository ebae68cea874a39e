/* conv2d lowering in chunks: batches too large to be lowered at once
 * (several chunks of several samples, an uneven last chunk, one sample per
 * chunk) and batches lowered whole, against a naive convolution in double,
 * forward and backward: the weight and bias gradients of two stacked
 * convolutions, so the first layer's also check the second one's input
 * gradient (col2im). The shapes cover the contiguous gather and scatter of
 * stride-1 "same"-width convolutions (padding, dilation, rows cut off at
 * the top and bottom) and the general one (stride 2). A batch in chunks
 * through a 3x3 convolution at stride 1 and padding 1 with 16 channels in
 * and out or more runs forward by Winograd's F(2x2, 3x3) in training too
 * (even and odd maps), and so does its input gradient (the dW of the
 * layer before checks it); its dW by the lowering. */
#include "test_support.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct conv_case {
  int cin, h, w, cout, kh, kw, sh, sw, ph, pw, dh, dw, bias;
} conv_case;

static int out_size(int in, int k, int s, int p, int d) {
  return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}

static int out_h(const conv_case *c) {
  return out_size(c->h, c->kh, c->sh, c->ph, c->dh);
}

static int out_w(const conv_case *c) {
  return out_size(c->w, c->kw, c->sw, c->pw, c->dw);
}

/* The input index that output (oh, ow) reads at kernel offset (i, j), or
 * -1 in the padding. */
static int input_at(const conv_case *c, int oh, int ow, int i, int j) {
  int ih = oh * c->sh - c->ph + i * c->dh, iw = ow * c->sw - c->pw + j * c->dw;
  return ih < 0 || ih >= c->h || iw < 0 || iw >= c->w ? -1 : ih * c->w + iw;
}

/* y[s,co,oh,ow] = b[co] + sum x[s,ci,ih,iw] w[co,ci,i,j] */
static void naive_forward(const conv_case *c, int n, const double *x,
                          const float *w, const float *b, double *y) {
  int oh_n = out_h(c), ow_n = out_w(c), plane = c->h * c->w;
  for (int s = 0; s < n; s++)
    for (int co = 0; co < c->cout; co++)
      for (int oh = 0; oh < oh_n; oh++)
        for (int ow = 0; ow < ow_n; ow++) {
          double acc = c->bias ? b[co] : 0.0;
          for (int ci = 0; ci < c->cin; ci++)
            for (int i = 0; i < c->kh; i++)
              for (int j = 0; j < c->kw; j++) {
                int at = input_at(c, oh, ow, i, j);
                if (at >= 0)
                  acc += x[(s * c->cin + ci) * plane + at] *
                         w[((co * c->cin + ci) * c->kh + i) * c->kw + j];
              }
          y[((s * c->cout + co) * oh_n + oh) * ow_n + ow] = acc;
        }
}

/* The transpose: dw, db and dx (zeroed here) from dy. */
static void naive_backward(const conv_case *c, int n, const double *x,
                           const float *w, const double *dy, double *dw,
                           double *db, double *dx) {
  int oh_n = out_h(c), ow_n = out_w(c), plane = c->h * c->w;
  memset(dw, 0, sizeof(double) * c->cout * c->cin * c->kh * c->kw);
  memset(db, 0, sizeof(double) * c->cout);
  memset(dx, 0, sizeof(double) * n * c->cin * plane);
  for (int s = 0; s < n; s++)
    for (int co = 0; co < c->cout; co++)
      for (int oh = 0; oh < oh_n; oh++)
        for (int ow = 0; ow < ow_n; ow++) {
          double g = dy[((s * c->cout + co) * oh_n + oh) * ow_n + ow];
          db[co] += g;
          for (int ci = 0; ci < c->cin; ci++)
            for (int i = 0; i < c->kh; i++)
              for (int j = 0; j < c->kw; j++) {
                int at = input_at(c, oh, ow, i, j), k =
                    ((co * c->cin + ci) * c->kh + i) * c->kw + j;
                if (at < 0)
                  continue;
                dw[k] += g * x[(s * c->cin + ci) * plane + at];
                dx[(s * c->cin + ci) * plane + at] += g * w[k];
              }
        }
}

static nnlib_layer *make_conv(const conv_case *c) {
  const int geom[6] = {c->sh, c->sw, c->ph, c->pw, c->dh, c->dw};
  return ts_conv(c->cin, c->cout, c->kh, c->kw, geom, c->bias);
}

static int64_t in_floats(const conv_case *c) {
  return (int64_t)c->cin * c->h * c->w;
}

static int64_t out_floats(const conv_case *c) {
  return (int64_t)c->cout * out_h(c) * out_w(c);
}

static int64_t weight_floats(const conv_case *c) {
  return (int64_t)c->cout * c->cin * c->kh * c->kw;
}

/* Fails unless got (float) matches want (double) within tol times the
 * largest |want|. */
static void expect_close(const char *what, const float *got,
                         const double *want, int64_t count, double tol) {
  double scale = 1e-30;
  for (int64_t i = 0; i < count; i++)
    scale = fmax(scale, fabs(want[i]));
  for (int64_t i = 0; i < count; i++)
    if (!(fabs(got[i] - want[i]) <= tol * scale))
      fail_msg("%s[%lld] = %.9g, naive %.9g (scale %.3g)", what,
               (long long)i, (double)got[i], want[i], scale);
}

/* One layer's parameters, as floats in the model, and its gradients. */
typedef struct layer_params {
  float *w, *b, *dw, *db;
} layer_params;

static layer_params params_of(nnlib_model *m, size_t index,
                              const conv_case *c) {
  nnlib_layer *l = nnlib_model_get_layer(m, index);
  nnlib_tensor *v, *g;
  layer_params p = {NULL, NULL, NULL, NULL};
  ASSERT_OK(nnlib_layer_get_param(l, 0, &v, &g));
  p.w = nnlib_tensor_get_data(v);
  p.dw = nnlib_tensor_get_data(g);
  if (c->bias) {
    ASSERT_OK(nnlib_layer_get_param(l, 1, &v, &g));
    p.b = nnlib_tensor_get_data(v);
    p.db = nnlib_tensor_get_data(g);
  }
  return p;
}

/* The naive passes of a pair on n samples: its output y, then, from
 * dy = dL/dy of MSE against t, every parameter gradient. */
typedef struct naive_pair {
  double *y, *dw1, *dw2, *db1, *db2;
} naive_pair;

static naive_pair naive_pair_run(const conv_case *first,
                                 const conv_case *second, int n,
                                 const float *xf, const float *t,
                                 const layer_params *p1,
                                 const layer_params *p2) {
  int64_t xs = in_floats(first), hs = out_floats(first),
          ys = out_floats(second);
  naive_pair r;
  double *x = malloc(sizeof(double) * n * xs);
  double *dx = malloc(sizeof(double) * n * xs);
  double *h = malloc(sizeof(double) * n * hs);
  double *dh = malloc(sizeof(double) * n * hs);
  double *dy = malloc(sizeof(double) * n * ys);
  r.y = malloc(sizeof(double) * n * ys);
  r.dw1 = malloc(sizeof(double) * weight_floats(first));
  r.dw2 = malloc(sizeof(double) * weight_floats(second));
  r.db1 = malloc(sizeof(double) * first->cout);
  r.db2 = malloc(sizeof(double) * second->cout);
  for (int64_t i = 0; i < n * xs; i++)
    x[i] = xf[i];
  naive_forward(first, n, x, p1->w, p1->b, h);
  naive_forward(second, n, h, p2->w, p2->b, r.y);
  /* MSE over all n ys outputs: dL/dy = 2 (y - t) / (n ys) */
  for (int64_t i = 0; i < n * ys; i++)
    dy[i] = 2.0 * (r.y[i] - t[i]) / (double)(n * ys);
  naive_backward(second, n, h, p2->w, dy, r.dw2, r.db2, dh);
  naive_backward(first, n, x, p1->w, dh, r.dw1, r.db1, dx);
  free(x), free(dx), free(h), free(dh), free(dy);
  return r;
}

static void naive_pair_free(naive_pair *r) {
  free(r->y), free(r->dw1), free(r->dw2), free(r->db1), free(r->db2);
}

/* first -> second (second's input is first's output) on n samples, MSE on
 * random targets: the output of nnlib_model_forward and every parameter
 * gradient of nnlib_model_backward against the naive passes. */
static void check_pair(const conv_case *first, const conv_case *second,
                       int n) {
  nnlib_model *m = NULL;
  nnlib_optimizer *opt = NULL;
  ASSERT_OK(nnlib_sgd_create(&opt, 0.1f, 0, 0, 0));
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add(m, make_conv(first)));
  ASSERT_OK(nnlib_model_add(m, make_conv(second)));
  int64_t shape[3] = {first->cin, first->h, first->w};
  ASSERT_OK(nnlib_model_compile(m, shape, 3, n, NNLIB_LOSS_MSE, opt, 3));
  int64_t xs = in_floats(first), ys = out_floats(second);
  nnlib_tensor *X = ts_tensor2(n, xs, NULL), *T = ts_tensor2(n, ys, NULL);
  uint32_t seed = 11;
  ts_fill_uniform(nnlib_tensor_get_data(X), n * xs, -1, 1, &seed);
  ts_fill_uniform(nnlib_tensor_get_data(T), n * ys, -1, 1, &seed);
  layer_params p1 = params_of(m, 0, first), p2 = params_of(m, 1, second);
  naive_pair want = naive_pair_run(first, second, n, nnlib_tensor_get_data(X),
                                   nnlib_tensor_get_data(T), &p1, &p2);
  const nnlib_tensor *out = NULL;
  ASSERT_OK(nnlib_model_forward(m, X, &out));
  expect_close("y", nnlib_tensor_get_data_const(out), want.y, n * ys, 1e-5);
  /* twice: gradients are overwritten, not added to the last ones */
  ASSERT_OK(nnlib_model_backward(m, X, T, NULL));
  ASSERT_OK(nnlib_model_backward(m, X, T, NULL));
  expect_close("dW2", p2.dw, want.dw2, weight_floats(second), 1e-4);
  expect_close("dW1", p1.dw, want.dw1, weight_floats(first), 1e-4);
  if (second->bias)
    expect_close("db2", p2.db, want.db2, second->cout, 1e-4);
  if (first->bias)
    expect_close("db1", p1.db, want.db1, first->cout, 1e-4);
  naive_pair_free(&want);
  nnlib_tensor_free(X);
  nnlib_tensor_free(T);
  nnlib_model_free(m);
}

/* The first layer of a pair: a 1x1 convolution from 2 channels to the
 * input of `c` (K = 2 is a thin lowering, one sample a chunk: 41 chunks in
 * 8 parts in backward). */
static conv_case before(const conv_case *c) {
  conv_case f = {2, c->h, c->w, c->cin, 1, 1, 1, 1, 0, 0, 1, 1, 1};
  return f;
}

/* All cases on `threads` BLAS threads (conv2d picks its chunk size by
 * them). */
static void check_cases(int threads) {
  /* With conv2d.c's constants (a batch is lowered whole up to 16 MB of col
   * and Z; otherwise chunks of ceil(1024 / (OH OW)) samples within 2 MB;
   * on two threads forward's on each thread's half of the batch, 21 and 20
   * samples; backward's over the batch in up to 8 parts of as many chunks,
   * smaller where that needs), each case below is lowered in chunks at a
   * batch of 41: many input and few output channels make the lowered
   * matrix large and the naive passes cheap. Sizes given are forward's on
   * one thread.
   * cin h w cout kh kw sh sw ph pw dh dw bias */
  static const conv_case cases[] = {
      /* 3x3 padding 1, 512 positions: chunks of 2 (41 = 20 x 2 + 1) */
      {24, 16, 32, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1},
      /* dilation 2, padding 2 keeps the width: chunks of 3 (13 x 3 + 2) */
      {30, 16, 24, 2, 3, 3, 1, 1, 2, 2, 2, 2, 0},
      /* kernel 5x3, padding 1: rows cut at both ends, the width kept;
       * chunks of 3 */
      {18, 20, 21, 3, 5, 3, 1, 1, 1, 1, 1, 1, 1},
      /* stride 2 (the row-by-row gather): chunks of 5 (8 x 5 + 1) */
      {51, 30, 30, 2, 3, 3, 2, 2, 1, 1, 1, 1, 1},
      /* 4096 positions: one sample per chunk, whose GEMMs write y and read
       * dy directly */
      {3, 64, 64, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1},
      /* kernel 3x5, padding 0x2: the width kept, fewer rows; chunks of 3 */
      {14, 40, 13, 2, 3, 5, 1, 1, 0, 2, 1, 1, 0},
      /* 16 channels in and out, 3x3 padding 1: forward and dx by
       * Winograd in chunks, dW's lowering in chunks of 2 */
      {16, 24, 32, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1},
      /* the same on an odd map (ragged edge tiles), 17 channels out */
      {16, 25, 31, 17, 3, 3, 1, 1, 1, 1, 1, 1, 0},
      /* 32 channels in, 16 out (dx's transform has more channels in than
       * forward's): Winograd, dW in chunks of 3 */
      {32, 20, 20, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1},
  };
  ASSERT_OK(nnlib_set_num_threads(threads));
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    conv_case first = before(&cases[i]);
    print_message("  %d thread(s), case %zu\n", threads, i);
    check_pair(&first, &cases[i], 41);
    check_pair(&first, &cases[i], 1);
  }
}

static void test_chunks_against_naive(void **s) {
  (void)s;
  int before_threads = nnlib_get_num_threads();
  check_cases(1);
  if (ts_split_gemms_checkable()) /* not under valgrind or TSan */
    check_cases(2);
  ASSERT_OK(nnlib_set_num_threads(before_threads));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_chunks_against_naive),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
