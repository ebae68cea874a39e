/* Pooling's window options (since 1.5.0): ceil mode, dilation, padding per
 * side up to kernel - 1, and averages that leave the padding
 * out (count_include_pad 0). Each case against a naive loop written from
 * the header's definition (every tap of every window, in double), forward
 * and backward (through a 1x1 convolution in front whose weight gradient is
 * sum(dx * x)); every bad option
 * with its status and message; description items; model files (a pool of
 * the defaults keeps its 48-byte config, the others write 88 bytes and
 * load back the same). Finite differences through networks with these pools
 * are in test_pool; PyTorch's values for the same options are checked
 * in test_internal_torch (tests/make_torch_fixtures.py). */
#include "file_parts.h"
#include "test_support.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pool_case {
  nnlib_layer_kind kind;
  int n, c, h, w, kh, kw, sh, sw;
  int pt, pl, pb, pr; /* top, left, bottom, right */
  int dh, dw, ceil, exclude;
} pool_case;

/* The header's output size, PyTorch's ceil rule included. */
static int out_size(int in, int k, int s, int d, int pad_begin, int pad_end,
                    int ceil_mode) {
  int room = in + pad_begin + pad_end - (d * (k - 1) + 1);
  int out = (ceil_mode ? (room + s - 1) / s : room / s) + 1;
  if (ceil_mode && (out - 1) * s >= in + pad_begin)
    out--;
  return out;
}

static int out_h(const pool_case *p) {
  return out_size(p->h, p->kh, p->sh, p->dh, p->pt, p->pb, p->ceil);
}

static int out_w(const pool_case *p) {
  return out_size(p->w, p->kw, p->sw, p->dw, p->pl, p->pr, p->ceil);
}

/* The taps of window (oh, ow): input index or -1 (padding), and whether
 * the tap lies inside the padded input; `count` taps. */
typedef struct taps {
  int at[64];
  bool padded[64];
  int count;
} taps;

static void window_taps(const pool_case *p, int plane, int oh, int ow,
                        taps *t) {
  t->count = 0;
  for (int i = 0; i < p->kh; i++)
    for (int j = 0; j < p->kw; j++) {
      int ih = oh * p->sh - p->pt + i * p->dh;
      int iw = ow * p->sw - p->pl + j * p->dw;
      bool real = ih >= 0 && ih < p->h && iw >= 0 && iw < p->w;
      t->at[t->count] = real ? (plane * p->h + ih) * p->w + iw : -1;
      t->padded[t->count] = ih < p->h + p->pb && iw < p->w + p->pr;
      t->count++;
    }
}

/* What an average divides by: taps inside the padded input, or real ones. */
static int divisor(const pool_case *p, const taps *t) {
  int d = 0;
  for (int k = 0; k < t->count; k++)
    d += p->exclude ? t->at[k] >= 0 : t->padded[k];
  return d;
}

/* Naive forward; *at gets the input index of each max/min (first on
 * ties). */
static void naive_pool(const pool_case *p, const float *x, float *y, int *at) {
  int oh_n = out_h(p), ow_n = out_w(p);
  for (int q = 0; q < p->n * p->c; q++)
    for (int oh = 0; oh < oh_n; oh++)
      for (int ow = 0; ow < ow_n; ow++) {
        taps t;
        window_taps(p, q, oh, ow, &t);
        double sum = 0.0;
        int best = -1;
        for (int k = 0; k < t.count; k++) {
          int i = t.at[k];
          if (i < 0)
            continue;
          sum += x[i];
          if (best < 0 || (p->kind == NNLIB_LAYER_MAXPOOL2D ? x[i] > x[best]
                                                            : x[i] < x[best]))
            best = i;
        }
        assert_true(best >= 0); /* every window reads an input element */
        int o = (q * oh_n + oh) * ow_n + ow;
        y[o] = p->kind == NNLIB_LAYER_AVGPOOL2D
                   ? (float)(sum / divisor(p, &t))
                   : x[best];
        at[o] = best;
      }
}

/* dx of the naive pool for upstream dy (dx zeroed here). */
static void naive_backward(const pool_case *p, const int *at,
                           const double *dy, double *dx) {
  int oh_n = out_h(p), ow_n = out_w(p);
  memset(dx, 0, sizeof(double) * (size_t)(p->n * p->c * p->h * p->w));
  for (int q = 0; q < p->n * p->c; q++)
    for (int oh = 0; oh < oh_n; oh++)
      for (int ow = 0; ow < ow_n; ow++) {
        int o = (q * oh_n + oh) * ow_n + ow;
        if (p->kind != NNLIB_LAYER_AVGPOOL2D) {
          dx[at[o]] += dy[o];
          continue;
        }
        taps t;
        window_taps(p, q, oh, ow, &t);
        for (int k = 0; k < t.count; k++)
          if (t.at[k] >= 0)
            dx[t.at[k]] += dy[o] / divisor(p, &t);
      }
}

static nnlib_layer *make_pool(const pool_case *p) {
  nnlib_pool2d_options o;
  ASSERT_OK(nnlib_pool2d_options_init(&o));
  o.stride_h = p->sh;
  o.stride_w = p->sw;
  o.padding_h = p->pt;
  o.padding_w = p->pl;
  o.padding_bottom = p->pb;
  o.padding_right = p->pr;
  o.dilation_h = p->dh;
  o.dilation_w = p->dw;
  o.ceil_mode = p->ceil;
  o.count_include_pad = !p->exclude;
  nnlib_layer *l = NULL;
  ASSERT_OK(nnlib_pool2d_create(&l, p->kind, p->kh, p->kw, &o));
  return l;
}

#define MAX NNLIB_LAYER_MAXPOOL2D
#define MIN NNLIB_LAYER_MINPOOL2D
#define AVG NNLIB_LAYER_AVGPOOL2D

/* kind, n, c, h, w, kh, kw, sh, sw, pt, pl, pb, pr, dh, dw, ceil, exclude */
static const pool_case cases[] = {
    /* ceil mode adds a last window that starts inside the input */
    {MAX, 2, 2, 10, 9, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 0},
    /* 2x2 at stride 2 with ceil on odd sizes: clipped last windows */
    {MAX, 2, 1, 7, 9, 2, 2, 2, 2, 0, 0, 0, 0, 1, 1, 1, 0},
    /* padding 2 for a 3x3 window (ONNX's limit, not PyTorch's) */
    {MAX, 1, 2, 6, 5, 3, 3, 1, 2, 2, 2, 2, 2, 1, 1, 0, 0},
    /* ceil mode drops the window that would start in the end padding
     * (rows: 5 windows by the formula, 4 kept; columns: 4, all kept) */
    {MAX, 1, 1, 6, 5, 3, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 0},
    {AVG, 2, 1, 7, 4, 2, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0},
    /* dilation, with padding up to kernel - 1 */
    {MAX, 2, 2, 9, 11, 3, 2, 1, 2, 2, 1, 1, 0, 2, 3, 0, 0},
    {MAX, 1, 1, 4, 4, 2, 2, 1, 1, 0, 0, 0, 0, 2, 2, 0, 0},
    /* asymmetric padding: SAME_LOWER-like and arbitrary */
    {MAX, 2, 1, 6, 7, 2, 2, 1, 1, 1, 1, 0, 0, 1, 1, 0, 0},
    {MAX, 1, 3, 8, 7, 3, 3, 2, 2, 0, 1, 2, 0, 1, 1, 0, 0},
    {MIN, 2, 2, 9, 8, 3, 3, 2, 2, 1, 1, 1, 1, 2, 2, 1, 0},
    {MIN, 1, 2, 7, 6, 3, 2, 2, 1, 0, 1, 2, 0, 1, 1, 1, 0},
    /* averages: the divisor with ceil mode, padding left out, both */
    {AVG, 2, 2, 10, 9, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 0},
    {AVG, 2, 2, 9, 10, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 0, 1},
    {AVG, 1, 2, 8, 7, 3, 2, 2, 1, 2, 0, 0, 1, 1, 1, 1, 1},
    {AVG, 2, 1, 8, 8, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
    {AVG, 1, 2, 6, 6, 3, 3, 1, 1, 2, 2, 2, 2, 1, 1, 0, 0},
    {AVG, 1, 1, 6, 5, 2, 3, 2, 2, 1, 0, 0, 2, 1, 1, 0, 0},
};
#define CASES (sizeof cases / sizeof cases[0])

static void test_forward_against_naive(void **s) {
  (void)s;
  for (size_t k = 0; k < CASES; k++) {
    const pool_case *p = &cases[k];
    int in = p->c * p->h * p->w, out = p->c * out_h(p) * out_w(p);
    float *x = malloc(sizeof(float) * p->n * in);
    float *want = malloc(sizeof(float) * p->n * out);
    int *at = malloc(sizeof(int) * p->n * out);
    uint32_t seed = 17u + (uint32_t)k;
    ts_fill_uniform(x, p->n * in, -2, 2, &seed);
    naive_pool(p, x, want, at);
    nnlib_layer *l = make_pool(p);
    int64_t shape[3] = {p->c, p->h, p->w};
    nnlib_model *m = ts_chain3(&l, 1, shape, p->n, NNLIB_LOSS_NONE);
    int64_t dims[3];
    size_t rank;
    ASSERT_OK(nnlib_model_get_output_shape(m, dims, 3, &rank));
    assert_int_equal(dims[1], out_h(p));
    assert_int_equal(dims[2], out_w(p));
    nnlib_tensor *X = ts_tensor2(p->n, in, x), *Y = ts_tensor2(p->n, out, NULL);
    ASSERT_OK(nnlib_model_predict(m, X, Y));
    for (int i = 0; i < p->n * out; i++)
      if (fabs(nnlib_tensor_get_data(Y)[i] - want[i]) > 1e-6)
        fail_msg("case %zu output %d: %.7g, naive %.7g", k, i,
                 (double)nnlib_tensor_get_data(Y)[i], (double)want[i]);
    nnlib_tensor_free(X);
    nnlib_tensor_free(Y);
    nnlib_model_free(m);
    free(x), free(want), free(at);
  }
}

/* conv 1x1 (w = 1, b = 0) -> pool, MSE against t: dL/dw = sum dx x and
 * dL/db = sum dx, with dx the naive routing of dy = 2 (y - t) / count;
 * then a gradient check (w > 0 never reorders a window). */
static void check_routing(const pool_case *given, size_t k) {
  pool_case p = *given;
  p.c = 1;
  int in = p.h * p.w, out = out_h(&p) * out_w(&p);
  float *x = malloc(sizeof(float) * p.n * in);
  float *t = malloc(sizeof(float) * p.n * out);
  float *y = malloc(sizeof(float) * p.n * out);
  int *at = malloc(sizeof(int) * p.n * out);
  double *dy = malloc(sizeof(double) * p.n * out);
  double *dx = malloc(sizeof(double) * p.n * in);
  uint32_t seed = 41u + (uint32_t)k;
  ts_fill_uniform(x, p.n * in, -2, 2, &seed);
  ts_fill_uniform(t, p.n * out, -1, 1, &seed);
  naive_pool(&p, x, y, at);
  for (int o = 0; o < p.n * out; o++)
    dy[o] = 2.0 * (y[o] - t[o]) / (p.n * out);
  naive_backward(&p, at, dy, dx);
  double dw = 0.0, db = 0.0;
  for (int i = 0; i < p.n * in; i++)
    dw += dx[i] * x[i], db += dx[i];
  nnlib_layer *layers[2];
  ASSERT_OK(nnlib_conv2d_create(&layers[0], 1, 1, 1, NULL));
  layers[1] = make_pool(&p);
  int64_t shape[3] = {1, p.h, p.w};
  nnlib_model *m = ts_chain3(layers, 2, shape, p.n, NNLIB_LOSS_MSE);
  nnlib_tensor *w, *gw, *gb;
  nnlib_layer *conv = nnlib_model_get_layer(m, 0);
  ASSERT_OK(nnlib_layer_get_param(conv, 0, &w, &gw));
  ASSERT_OK(nnlib_layer_get_param(conv, 1, NULL, &gb));
  nnlib_tensor_get_data(w)[0] = 1.0f;
  nnlib_tensor *X = ts_tensor2(p.n, in, x), *T = ts_tensor2(p.n, out, t);
  ASSERT_OK(nnlib_model_backward(m, X, T, NULL));
  if (fabs(nnlib_tensor_get_data(gw)[0] - dw) > 1e-5 * (1 + fabs(dw)) ||
      fabs(nnlib_tensor_get_data(gb)[0] - db) > 1e-5 * (1 + fabs(db)))
    fail_msg("case %zu: dw %.7g db %.7g, naive %.7g %.7g", k,
             (double)nnlib_tensor_get_data(gw)[0],
             (double)nnlib_tensor_get_data(gb)[0], dw, db);
  nnlib_gradcheck_options o;
  ASSERT_OK(nnlib_gradcheck_options_init(&o));
  o.step = 1e-3f;
  double err;
  ASSERT_OK(nnlib_model_gradcheck(m, X, T, &o, &err));
  if (!(err <= 1e-3))
    fail_msg("case %zu: gradcheck %.3g", k, err);
  nnlib_tensor_free(X);
  nnlib_tensor_free(T);
  nnlib_model_free(m);
  free(x), free(t), free(y), free(at), free(dy), free(dx);
}

static void test_backward_routing(void **s) {
  (void)s;
  for (size_t k = 0; k < CASES; k++)
    check_routing(&cases[k], k);
}

/* The same pool by default options and by the new fields set to what
 * they default to: the same predictions, the same description. */
static void test_defaults_are_the_old_pool(void **s) {
  (void)s;
  nnlib_pool2d_options o;
  ASSERT_OK(nnlib_pool2d_options_init(&o));
  o.stride_h = o.stride_w = 2;
  o.padding_h = o.padding_w = 1;
  nnlib_layer *a = NULL, *b = NULL;
  ASSERT_OK(nnlib_pool2d_create(&a, AVG, 3, 3, &o));
  o.padding_bottom = o.padding_right = 1;
  o.ceil_mode = 0;
  o.count_include_pad = 1;
  ASSERT_OK(nnlib_pool2d_create(&b, AVG, 3, 3, &o));
  int64_t shape[3] = {2, 7, 8};
  nnlib_model *ma = ts_chain3(&a, 1, shape, 2, NNLIB_LOSS_NONE);
  nnlib_model *mb = ts_chain3(&b, 1, shape, 2, NNLIB_LOSS_NONE);
  char sa[64], sb[64];
  ASSERT_OK(nnlib_model_get_spec(ma, sa, sizeof sa, NULL));
  ASSERT_OK(nnlib_model_get_spec(mb, sb, sizeof sb, NULL));
  assert_string_equal(sa, "avgpool:3:s2:p1");
  assert_string_equal(sb, "avgpool:3:s2:p1");
  nnlib_tensor *X = ts_tensor2(2, 112, NULL);
  uint32_t seed = 3;
  ts_fill_uniform(nnlib_tensor_get_data(X), 224, -1, 1, &seed);
  nnlib_tensor *Ya = ts_tensor2(2, 2 * 4 * 4, NULL);
  nnlib_tensor *Yb = ts_tensor2(2, 2 * 4 * 4, NULL);
  ASSERT_OK(nnlib_model_predict(ma, X, Ya));
  ASSERT_OK(nnlib_model_predict(mb, X, Yb));
  assert_memory_equal(nnlib_tensor_get_data(Ya), nnlib_tensor_get_data(Yb),
                      64 * sizeof(float));
  nnlib_tensor_free(X);
  nnlib_tensor_free(Ya);
  nnlib_tensor_free(Yb);
  nnlib_model_free(ma);
  nnlib_model_free(mb);
}

/* One bad option: the status and the message naming it, *out NULL. */
static void expect_refused(nnlib_layer_kind kind, int64_t kh, int64_t kw,
                           const nnlib_pool2d_options *o, const char *text) {
  nnlib_layer *l = (nnlib_layer *)1;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_pool2d_create(&l, kind, kh, kw, o));
  ts_expect_message(text);
  assert_null(l);
}

static void test_bad_options(void **s) {
  (void)s;
  nnlib_pool2d_options o;
  ASSERT_OK(nnlib_pool2d_options_init(&o));
  o.padding_bottom = -2;
  expect_refused(MAX, 3, 3, &o,
                 "maxpool2d: padding_bottom -2, must be in 0..2 (kernel - 1), "
                 "or -1 (as padding_h)");
  ASSERT_OK(nnlib_pool2d_options_init(&o));
  o.padding_right = 3;
  expect_refused(MIN, 3, 3, &o, "minpool2d: padding_right 3, must be in 0..2");
  o.dilation_w = 2; /* the limit is the kernel's, dilated or not */
  expect_refused(MIN, 3, 3, &o, "minpool2d: padding_right 3, must be in 0..2");
  o.padding_right = 2;
  nnlib_layer *l = NULL;
  ASSERT_OK(nnlib_pool2d_create(&l, MIN, 3, 3, &o));
  nnlib_layer_free(l);
  ASSERT_OK(nnlib_pool2d_options_init(&o));
  o.padding_h = 3;
  expect_refused(MAX, 3, 4, &o,
                 "maxpool2d: padding 3x0, must be in 0..2x3 (kernel - 1)");
  ASSERT_OK(nnlib_pool2d_options_init(&o));
  o.dilation_h = 0;
  expect_refused(MAX, 2, 2, &o, "maxpool2d: dilation 0x1, must be at least 1");
  o.dilation_h = (int64_t)1 << 40; /* too large, not too small */
  expect_refused(MAX, 2, 2, &o,
                 "maxpool2d: dilation 1099511627776x1, must be at least 1 "
                 "and at most 2147483647");
  ASSERT_OK(nnlib_pool2d_options_init(&o));
  o.dilation_w = 4;
  expect_refused(MAX, 1, (int64_t)1 << 30, &o,
                 "maxpool2d: kernel 1x1073741824 with dilation 1x4 spans more "
                 "than 2^31 - 1");
  ASSERT_OK(nnlib_pool2d_options_init(&o));
  o.dilation_h = 2;
  expect_refused(AVG, 2, 2, &o,
                 "avgpool2d: dilation 2x1; average pooling has none (must be "
                 "1x1, as PyTorch's AvgPool2d)");
  ASSERT_OK(nnlib_pool2d_options_init(&o));
  o.ceil_mode = 2;
  expect_refused(AVG, 2, 2, &o, "avgpool2d: ceil_mode 2, must be 0 or 1");
  ASSERT_OK(nnlib_pool2d_options_init(&o));
  o.count_include_pad = -1;
  expect_refused(AVG, 2, 2, &o,
                 "avgpool2d: count_include_pad -1, must be 0 or 1");
  o.count_include_pad = 0;
  expect_refused(MAX, 2, 2, &o,
                 "maxpool2d: count_include_pad 0 applies to average pooling "
                 "only (must stay 1)");
  expect_refused(MIN, 2, 2, &o, "minpool2d: count_include_pad 0 applies");
}

static void expect_compile_refused(const char *spec, const int64_t *shape,
                                   const char *text) {
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, spec));
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH,
                nnlib_model_compile(m, shape, 3, 2, NNLIB_LOSS_NONE, NULL, 1));
  ts_expect_message(text);
  nnlib_model_free(m);
}

static void test_bad_shapes(void **s) {
  (void)s;
  /* a dilated window that straddles a short input: taps -1 and 2 of rows
   * 0..1 */
  const int64_t small[3] = {1, 2, 4};
  expect_compile_refused("maxpool:2:s1:p1x0:d3x1", small,
                         "layer 0 (maxpool2d): maxpool2d: window 0 along the "
                         "height reads only padding (input 2, kernel 2, "
                         "dilation 3, stride 1, padding 1 and 1)");
  const int64_t wide[3] = {1, 4, 2};
  expect_compile_refused("minpool:1x2:s1:p0x1:d1x3", wide,
                         "window 0 along the width reads only padding");
  /* the dilated span counts against the padded input */
  const int64_t image[3] = {1, 4, 4};
  expect_compile_refused("maxpool:3:d2", image,
                         "maxpool2d: kernel 3x3 spans 5x5 (dilation 2x2), "
                         "more than the padded input 4x4");
}

static void test_description_items(void **s) {
  (void)s;
  static const char *const items[][2] = {
      {"maxpool:3:s2:p1:d2:ceil", "maxpool:3:s2:p1:d2:ceil"},
      {"maxpool:3:ceil:d2x1:s1", "maxpool:3:s1:d2x1:ceil"},
      {"maxpool:2:d1", "maxpool:2"},
      {"maxpool:3:p1x2x1x2", "maxpool:3:p1x2"},
      {"maxpool:3:p0x1x2x0", "maxpool:3:p0x1x2x0"},
      {"minpool:3x2:s1:p2x0x0x1:d1x2", "minpool:3x2:s1:p2x0x0x1:d1x2"},
      {"avgpool:3:p1:exclude_pad", "avgpool:3:p1:exclude_pad"},
      {"avgpool:2:exclude_pad:ceil", "avgpool:2:ceil:exclude_pad"},
      {"avgpool:3:s2:p2x2x1x1:ceil", "avgpool:3:s2:p2x2x1x1:ceil"},
  };
  ts_check_spec_items(items, sizeof items / sizeof items[0]);
  static const char *const bad[][2] = {
      {"maxpool:2:exclude_pad", "count_include_pad 0 applies to average"},
      {"avgpool:2:d2", "average pooling has none"},
      {"maxpool:3:p1x2x3", "\"p1x2x3\" is not pN, pHxW or "
                           "pTOPxLEFTxBOTTOMxRIGHT"},
      {"maxpool:3:p1x2x3x4x5", "is not pN, pHxW or pTOPxLEFTxBOTTOMxRIGHT"},
      {"maxpool:3:p1xx2x3", "\"p1xx2x3\" is not pN, pHxW or "
                            "pTOPxLEFTxBOTTOMxRIGHT with integers in 0.."},
      {"maxpool:3:p-1", "\"p-1\" is not pN, pHxW or"},
      {"maxpool:3:p3", "padding 3x3, must be in 0..2x2"},
      {"maxpool:3:p0x0x3x0", "padding_bottom 3, must be in 0..2"},
      {"maxpool:2:ceil:ceil", "argument 3 repeats an option"},
      {"maxpool:2:d0", "\"d0\" is not N or AxB with integers in 1.."},
      {"maxpool:2:ceiling", "pooling options are sN (stride)"},
      {"maxpool:2:s1:p1:d1:ceil:exclude_pad:s1",
       "takes 1 to 6 arguments, got 7"},
  };
  ts_check_spec_errors(bad, sizeof bad / sizeof bad[0]);
}

/* --------------------------------------------------------- model files */

static nnlib_model *compiled(const char *spec, const int64_t *shape) {
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, spec));
  ASSERT_OK(nnlib_model_compile(m, shape, 3, 2, NNLIB_LOSS_NONE, NULL, 5));
  return m;
}

static unsigned char *saved(nnlib_model *m, size_t *size) {
  void *data = NULL;
  ASSERT_OK(nnlib_model_save_to_buffer(&data, size, m, 0));
  unsigned char *copy = malloc(*size);
  memcpy(copy, data, *size);
  nnlib_free(data);
  return copy;
}

static void test_model_file_configs(void **s) {
  (void)s;
  const int64_t image[3] = {2, 9, 8};
  /* the defaults: the 48 bytes of 1.4, kernel, stride, padding */
  nnlib_model *plain = compiled("maxpool:3:s2:p1", image);
  size_t plain_size;
  unsigned char *file = saved(plain, &plain_size);
  ts_file_parts parts;
  ts_split_file(file, plain_size, &parts);
  uint32_t kind, length;
  unsigned char *c = ts_first_config(&parts, &kind, &length);
  assert_int_equal(kind, 4);
  assert_int_equal(length, 48);
  const int64_t want[6] = {3, 3, 2, 2, 1, 1};
  for (int i = 0; i < 6; i++)
    assert_int_equal((int64_t)ts_rd64(c + 8 * i), want[i]);
  ts_free_parts(&parts);
  free(file);
  nnlib_model_free(plain);
  /* every option: 88 bytes, the second part as used */
  nnlib_model *m = compiled("minpool:3:s2:p1x0x2x1:d2:ceil", image);
  size_t size;
  file = saved(m, &size);
  ts_split_file(file, size, &parts);
  c = ts_first_config(&parts, &kind, &length);
  assert_int_equal(kind, 5);
  assert_int_equal(length, 88);
  const int64_t more[10] = {3, 3, 2, 2, 1, 0, 2, 1, 2, 2};
  for (int i = 0; i < 10; i++)
    assert_int_equal((int64_t)ts_rd64(c + 8 * i), more[i]);
  assert_int_equal(ts_rd32(c + 80), 1); /* ceil_mode */
  assert_int_equal(ts_rd32(c + 84), 1); /* count_include_pad */
  nnlib_model *back = NULL;
  ASSERT_OK(nnlib_model_load_buffer(&back, file, size));
  char a[96], b[96];
  ASSERT_OK(nnlib_model_get_spec(back, b, sizeof b, NULL));
  assert_string_equal(b, "minpool:3:s2:p1x0x2x1:d2:ceil");
  nnlib_tensor *x = ts_tensor2(2, 144, NULL);
  uint32_t seed = 8;
  ts_fill_uniform(nnlib_tensor_get_data(x), 288, -1, 1, &seed);
  const nnlib_tensor *ya, *yb;
  ASSERT_OK(nnlib_model_forward(m, x, &ya));
  ASSERT_OK(nnlib_model_forward(back, x, &yb));
  assert_int_equal(nnlib_tensor_get_size(ya), nnlib_tensor_get_size(yb));
  assert_memory_equal(nnlib_tensor_get_data_const(ya),
                      nnlib_tensor_get_data_const(yb),
                      (size_t)nnlib_tensor_get_size(ya) * sizeof(float));
  nnlib_tensor_free(x);
  nnlib_model_free(back);
  /* a corrupt second part: ceil_mode 2, then a padding beyond the window */
  unsigned char *edited_at = c + 80;
  ts_wr32(edited_at, 2);
  size_t bad_size;
  unsigned char *bad = ts_join_file(&parts, &bad_size);
  ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE,
                nnlib_model_load_buffer(&back, bad, bad_size));
  ts_expect_message("minpool2d: padding_bottom 2, padding_right 1, ceil_mode 2");
  assert_null(back);
  free(bad);
  ts_wr32(edited_at, 1);
  ts_wr64(c + 48, 5); /* padding_bottom 5 > 3 - 1 */
  bad = ts_join_file(&parts, &bad_size);
  ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE,
                nnlib_model_load_buffer(&back, bad, bad_size));
  ts_expect_message("padding_bottom 5, must be in 0..2");
  free(bad);
  ts_free_parts(&parts);
  free(file);
  (void)a;
  nnlib_model_free(m);
}

/* avgpool with exclude_pad alone (nothing else from the defaults moved)
 * needs the second part too; the round trip keeps it. */
static void test_model_file_exclude_pad(void **s) {
  (void)s;
  const int64_t image[3] = {1, 6, 6};
  nnlib_model *m = compiled("avgpool:3:s2:p1:exclude_pad", image);
  size_t size;
  unsigned char *file = saved(m, &size);
  nnlib_model *back = NULL;
  ASSERT_OK(nnlib_model_load_buffer(&back, file, size));
  char b[64];
  ASSERT_OK(nnlib_model_get_spec(back, b, sizeof b, NULL));
  assert_string_equal(b, "avgpool:3:s2:p1:exclude_pad");
  size_t again_size;
  unsigned char *again = saved(back, &again_size);
  assert_int_equal(size, again_size);
  assert_memory_equal(file, again, size);
  free(again);
  free(file);
  nnlib_model_free(back);
  nnlib_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_forward_against_naive),
      cmocka_unit_test(test_backward_routing),
      cmocka_unit_test(test_defaults_are_the_old_pool),
      cmocka_unit_test(test_bad_options),
      cmocka_unit_test(test_bad_shapes),
      cmocka_unit_test(test_description_items),
      cmocka_unit_test(test_model_file_configs),
      cmocka_unit_test(test_model_file_exclude_pad),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
