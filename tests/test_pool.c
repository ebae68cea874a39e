/* Pooling: max, min and average pooling and global average pooling against
 * naive loops (forward), gradients routed to the selected element or spread
 * over the window (backward, through a 1x1 convolution in front whose
 * weight gradient is sum(dx * x)), finite-difference checks, bad shapes and
 * arguments, and the description items. */
#include "test_support.h"

#include <float.h>
#include <stdbool.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pool_case {
  nnlib_layer_kind kind;
  int n, c, h, w, kh, kw, sh, sw, ph, pw;
} pool_case;

static int out_size(int in, int k, int s, int p) {
  return (in + 2 * p - k) / s + 1;
}

/* Naive pooling; *at gets the input index of each max/min (first on ties). */
static void naive_pool(const pool_case *p, const float *x, float *y,
                       int *at) {
  int oh_n = out_size(p->h, p->kh, p->sh, p->ph);
  int ow_n = out_size(p->w, p->kw, p->sw, p->pw);
  for (int q = 0; q < p->n * p->c; q++)
    for (int oh = 0; oh < oh_n; oh++)
      for (int ow = 0; ow < ow_n; ow++) {
        double sum = 0.0;
        float best = p->kind == NNLIB_LAYER_MAXPOOL2D ? -FLT_MAX : FLT_MAX;
        int best_at = -1;
        for (int i = 0; i < p->kh; i++)
          for (int j = 0; j < p->kw; j++) {
            int ih = oh * p->sh - p->ph + i, iw = ow * p->sw - p->pw + j;
            if (ih < 0 || ih >= p->h || iw < 0 || iw >= p->w)
              continue;
            int idx = (q * p->h + ih) * p->w + iw;
            float v = x[idx];
            sum += v;
            bool better = p->kind == NNLIB_LAYER_MAXPOOL2D ? v > best
                                                           : v < best;
            if (best_at < 0 || better) {
              best = v;
              best_at = idx;
            }
          }
        int o = (q * oh_n + oh) * ow_n + ow;
        y[o] = p->kind == NNLIB_LAYER_AVGPOOL2D
                   ? (float)(sum / (p->kh * p->kw))
                   : best;
        at[o] = best_at;
      }
}

static nnlib_layer *make_pool(const pool_case *p) {
  nnlib_pool2d_options o;
  ASSERT_OK(nnlib_pool2d_options_init(&o));
  o.stride_h = p->sh;
  o.stride_w = p->sw;
  o.padding_h = p->ph;
  o.padding_w = p->pw;
  nnlib_layer *l = NULL;
  ASSERT_OK(nnlib_pool2d_create(&l, p->kind, p->kh, p->kw, &o));
  return l;
}

static const pool_case cases[] = {
    {NNLIB_LAYER_MAXPOOL2D, 3, 2, 8, 6, 2, 2, 2, 2, 0, 0},
    {NNLIB_LAYER_MAXPOOL2D, 1, 3, 7, 9, 2, 2, 2, 2, 0, 0}, /* odd: clipped */
    {NNLIB_LAYER_MAXPOOL2D, 2, 2, 9, 10, 3, 3, 2, 2, 1, 1},
    {NNLIB_LAYER_MAXPOOL2D, 2, 1, 6, 9, 2, 3, 1, 2, 0, 1},
    {NNLIB_LAYER_MINPOOL2D, 3, 2, 8, 6, 2, 2, 2, 2, 0, 0},
    {NNLIB_LAYER_MINPOOL2D, 2, 2, 9, 10, 3, 3, 2, 2, 1, 1},
    {NNLIB_LAYER_MINPOOL2D, 1, 1, 5, 5, 5, 5, 5, 5, 0, 0},
    {NNLIB_LAYER_AVGPOOL2D, 3, 2, 8, 6, 2, 2, 2, 2, 0, 0},
    {NNLIB_LAYER_AVGPOOL2D, 2, 2, 9, 10, 3, 3, 2, 2, 1, 1},
    {NNLIB_LAYER_AVGPOOL2D, 2, 3, 7, 5, 3, 2, 1, 1, 1, 1},
};

static void test_forward_against_naive(void **s) {
  (void)s;
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    const pool_case *p = &cases[k];
    int in = p->c * p->h * p->w;
    int out = p->c * out_size(p->h, p->kh, p->sh, p->ph) *
              out_size(p->w, p->kw, p->sw, p->pw);
    float *x = malloc(sizeof(float) * p->n * in);
    float *want = malloc(sizeof(float) * p->n * out);
    int *at = malloc(sizeof(int) * p->n * out);
    uint32_t seed = 5u + (uint32_t)k;
    ts_fill_uniform(x, p->n * in, -2, 2, &seed);
    naive_pool(p, x, want, at);
    nnlib_layer *l = make_pool(p);
    int64_t shape[3] = {p->c, p->h, p->w};
    nnlib_model *m = ts_chain3(&l, 1, shape, p->n, NNLIB_LOSS_NONE);
    nnlib_tensor *X = ts_tensor2(p->n, in, x), *Y = ts_tensor2(p->n, out, NULL);
    ASSERT_OK(nnlib_model_predict(m, X, Y));
    for (int i = 0; i < p->n * out; i++)
      ASSERT_NEAR(nnlib_tensor_get_data(Y)[i], want[i], 1e-6);
    nnlib_tensor_free(X);
    nnlib_tensor_free(Y);
    nnlib_model_free(m);
    free(x), free(want), free(at);
  }
}

/* conv 1x1 (one channel, weight w = 1, bias 0) -> pool, MSE against t:
 * dL/dw = sum dx * x and dL/db = sum dx, with dx what the pool routes back
 * from dy = 2 (y - t) / count. Compared with the same sums from the naive
 * routing. Also a gradient check, whose 1x1 weight > 0 never reorders the
 * window (no kinks for max/min). */
static void check_routing(const pool_case *p) {
  int in = p->h * p->w;
  int out = out_size(p->h, p->kh, p->sh, p->ph) *
            out_size(p->w, p->kw, p->sw, p->pw);
  float *x = malloc(sizeof(float) * p->n * in);
  float *t = malloc(sizeof(float) * p->n * out);
  float *y = malloc(sizeof(float) * p->n * out);
  int *at = malloc(sizeof(int) * p->n * out);
  uint32_t seed = 41;
  ts_fill_uniform(x, p->n * in, -2, 2, &seed);
  ts_fill_uniform(t, p->n * out, -1, 1, &seed);
  pool_case one = *p;
  one.c = 1;
  naive_pool(&one, x, y, at);
  double dw = 0.0, db = 0.0;
  for (int o = 0; o < p->n * out; o++) {
    double dy = 2.0 * (y[o] - t[o]) / (p->n * out);
    if (p->kind != NNLIB_LAYER_AVGPOOL2D) {
      dw += dy * x[at[o]];
      db += dy;
      continue;
    }
    /* the window of o, spread evenly (padding takes its share) */
    int ow_n = out_size(p->w, p->kw, p->sw, p->pw);
    int q = o / out, oh = o % out / ow_n, ow = o % ow_n;
    for (int i = 0; i < p->kh; i++)
      for (int j = 0; j < p->kw; j++) {
        int ih = oh * p->sh - p->ph + i, iw = ow * p->sw - p->pw + j;
        if (ih < 0 || ih >= p->h || iw < 0 || iw >= p->w)
          continue;
        double g = dy / (p->kh * p->kw);
        dw += g * x[(q * p->h + ih) * p->w + iw];
        db += g;
      }
  }
  nnlib_layer *layers[2];
  ASSERT_OK(nnlib_conv2d_create(&layers[0], 1, 1, 1, NULL));
  layers[1] = make_pool(&one);
  int64_t shape[3] = {1, p->h, p->w};
  nnlib_model *m = ts_chain3(layers, 2, shape, p->n, NNLIB_LOSS_MSE);
  nnlib_tensor *w, *gw, *gb;
  nnlib_layer *conv = nnlib_model_get_layer(m, 0);
  ASSERT_OK(nnlib_layer_get_param(conv, 0, &w, &gw));
  ASSERT_OK(nnlib_layer_get_param(conv, 1, NULL, &gb));
  nnlib_tensor_get_data(w)[0] = 1.0f;
  nnlib_tensor *X = ts_tensor2(p->n, in, x), *T = ts_tensor2(p->n, out, t);
  ASSERT_OK(nnlib_model_backward(m, X, T, NULL));
  ASSERT_NEAR(nnlib_tensor_get_data(gw)[0], dw, 1e-5 * (1 + fabs(dw)));
  ASSERT_NEAR(nnlib_tensor_get_data(gb)[0], db, 1e-5 * (1 + fabs(db)));
  nnlib_gradcheck_options o;
  ASSERT_OK(nnlib_gradcheck_options_init(&o));
  o.step = 1e-3f;
  double err;
  ASSERT_OK(nnlib_model_gradcheck(m, X, T, &o, &err));
  if (!(err <= 1e-3))
    fail_msg("pool kind %d: gradcheck %.3g", (int)p->kind, err);
  nnlib_tensor_free(X);
  nnlib_tensor_free(T);
  nnlib_model_free(m);
  free(x), free(t), free(y), free(at);
}

static void test_backward_routing(void **s) {
  (void)s;
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
    check_routing(&cases[k]);
}

/* conv -> pool -> conv -> dense: every parameter through the pool, with
 * several channels, against finite differences. A step of 1e-3 keeps the
 * max/min choices of these inputs where they are. */
static void test_gradcheck_in_a_network(void **s) {
  (void)s;
  const char *specs[] = {
      "conv:3x3x3:p1,maxpool:2,conv:2x2x2,flatten,dense:3",
      "conv:3x3x3:p1,minpool:3:s2:p1,conv:2x2x2,flatten,dense:3",
      "conv:3x3x3:p1,avgpool:2x3:s1x2:p1,conv:2x2x2,flatten,dense:3",
      "conv:3x3x3,global_avgpool,dense:3",
      /* the window options: ceil mode, padding per side, dilation,
       * averages over the real elements only */
      "conv:3x3x3:p1,maxpool:3:s2:p2:ceil,conv:2x2x2,flatten,dense:3",
      "conv:3x3x3:p1,minpool:2:s1:p1x0x0x1:d2,conv:2x2x2,flatten,dense:3",
      "conv:3x3x3:p1,avgpool:3:s2:p1:ceil:exclude_pad,conv:2x2x2,flatten,"
      "dense:3",
      "conv:3x3x3:p1,avgpool:3x2:s2x1:p2x0x0x1:exclude_pad,conv:2x2x2,"
      "flatten,dense:3",
  };
  for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
    nnlib_model *m = NULL;
    nnlib_optimizer *opt = NULL;
    ASSERT_OK(nnlib_sgd_create(&opt, 0.1f, 0, 0, 0));
    ASSERT_OK(nnlib_model_create(&m));
    ASSERT_OK(nnlib_model_add_spec(m, specs[i]));
    int64_t shape[3] = {2, 8, 9};
    ASSERT_OK(nnlib_model_compile(m, shape, 3, 3, NNLIB_LOSS_MSE, opt, 9));
    nnlib_tensor *X = ts_tensor2(3, 2 * 8 * 9, NULL), *T = ts_tensor2(3, 3, NULL);
    uint32_t seed = 99;
    ts_fill_uniform(nnlib_tensor_get_data(X), 3 * 144, -1, 1, &seed);
    ts_fill_uniform(nnlib_tensor_get_data(T), 9, -1, 1, &seed);
    nnlib_gradcheck_options o;
    ASSERT_OK(nnlib_gradcheck_options_init(&o));
    o.step = 1e-3f;
    double err;
    ASSERT_OK(nnlib_model_gradcheck(m, X, T, &o, &err));
    print_message("  %-70s %.2e\n", specs[i], err);
    if (!(err <= 1e-3))
      fail_msg("%s: gradcheck %.3g", specs[i], err);
    nnlib_tensor_free(X);
    nnlib_tensor_free(T);
    nnlib_model_free(m);
  }
}

/* NaN wins a max window (as in PyTorch) and is passed on, not hidden. */
static void test_nan_propagates(void **s) {
  (void)s;
  pool_case p = {NNLIB_LAYER_MAXPOOL2D, 1, 1, 2, 2, 2, 2, 2, 2, 0, 0};
  nnlib_layer *l = make_pool(&p);
  int64_t shape[3] = {1, 2, 2};
  nnlib_model *m = ts_chain3(&l, 1, shape, 1, NNLIB_LOSS_NONE);
  float x[4] = {1.0f, NAN, 3.0f, 2.0f};
  nnlib_tensor *X = ts_tensor2(1, 4, x), *Y = ts_tensor2(1, 1, NULL);
  ASSERT_OK(nnlib_model_predict(m, X, Y));
  assert_true(isnan(nnlib_tensor_get_data(Y)[0]));
  nnlib_tensor_free(X);
  nnlib_tensor_free(Y);
  nnlib_model_free(m);
}

static void test_global_avgpool(void **s) {
  (void)s;
  nnlib_layer *l = NULL;
  ASSERT_OK(nnlib_global_avgpool_create(&l));
  assert_int_equal(nnlib_layer_get_kind(l), NNLIB_LAYER_GLOBAL_AVGPOOL);
  int64_t shape[3] = {3, 4, 5};
  nnlib_model *m = ts_chain3(&l, 1, shape, 2, NNLIB_LOSS_NONE);
  float x[120];
  for (int i = 0; i < 120; i++)
    x[i] = (float)i;
  nnlib_tensor *X = ts_tensor2(2, 60, x), *Y = ts_tensor2(2, 3, NULL);
  ASSERT_OK(nnlib_model_predict(m, X, Y));
  for (int q = 0; q < 6; q++) /* mean of 20q .. 20q + 19 */
    ASSERT_NEAR(nnlib_tensor_get_data(Y)[q], 20.0 * q + 9.5, 1e-5);
  int64_t dims[3];
  size_t rank;
  ASSERT_OK(nnlib_model_get_output_shape(m, dims, 3, &rank));
  assert_int_equal(rank, 1);
  assert_int_equal(dims[0], 3);
  nnlib_tensor_free(X);
  nnlib_tensor_free(Y);
  nnlib_model_free(m);
  /* a rank-1 input has no positions to pool */
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, "global_avgpool"));
  int64_t in = 5;
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH,
                nnlib_model_compile(m, &in, 1, 2, NNLIB_LOSS_NONE, NULL, 1));
  ts_expect_message("global_avgpool: input is [5] per sample, expects [C, H, W]");
  nnlib_model_free(m);
}

static void test_bad_shapes_and_arguments(void **s) {
  (void)s;
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, "maxpool:3"));
  int64_t shape[3] = {1, 2, 5};
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH,
                nnlib_model_compile(m, shape, 3, 2, NNLIB_LOSS_NONE, NULL, 1));
  ts_expect_message("layer 0 (maxpool2d): maxpool2d: kernel 3x3 spans 3x3 "
                    "(dilation 1x1), more than the padded input 2x5 (2x5 "
                    "with padding top 0, bottom 0, left 0, right 0)");
  nnlib_model_free(m);
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, "dense:4,avgpool:2"));
  int64_t in = 3;
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH,
                nnlib_model_compile(m, &in, 1, 2, NNLIB_LOSS_NONE, NULL, 1));
  ts_expect_message("layer 1 (avgpool2d): avgpool2d: input is [4] per sample");
  nnlib_model_free(m);

  nnlib_layer *l = (nnlib_layer *)1;
  nnlib_pool2d_options o;
  ASSERT_OK(nnlib_pool2d_options_init(&o));
  o.padding_h = 3;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_pool2d_create(&l, NNLIB_LAYER_MINPOOL2D, 3, 3, &o));
  ts_expect_message("minpool2d: padding 3x0, must be in 0..2x2 (kernel - "
                    "1)");
  assert_null(l);
  ASSERT_OK(nnlib_pool2d_options_init(&o));
  o.stride_w = -1;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_pool2d_create(&l, NNLIB_LAYER_AVGPOOL2D, 2, 2, &o));
  ts_expect_message("stride 0x-1");
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_pool2d_create(&l, NNLIB_LAYER_MAXPOOL2D, 0, 2, NULL));
  ts_expect_message("kernel 0x2");
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_pool2d_create(&l, NNLIB_LAYER_CONV2D, 2, 2, NULL));
  ts_expect_message("kind 3 is not MAXPOOL2D, MINPOOL2D or AVGPOOL2D");
  /* NULL through the function (the macro of that name takes sizeof) */
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, (nnlib_pool2d_options_init)(NULL));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_global_avgpool_create(NULL));
  /* stride 0 is the kernel, like PyTorch's default */
  ASSERT_OK(nnlib_pool2d_create(&l, NNLIB_LAYER_MAXPOOL2D, 3, 2, NULL));
  assert_string_equal(nnlib_layer_get_name(l), "maxpool2d");
  nnlib_layer_free(l);
}

static void test_description_items(void **s) {
  (void)s;
  static const char *const items[][2] = {
      {"maxpool:2", "maxpool:2"},
      {"maxpool:2x2:s2", "maxpool:2"},
      {"maxpool:3:s2:p1", "maxpool:3:s2:p1"},
      {"minpool:2x3:p1x0", "minpool:2x3:p1x0"},
      {"avgpool:3:s1", "avgpool:3:s1"},
      {"avgpool:2:s1x2", "avgpool:2:s1x2"},
      {"global_avgpool", "global_avgpool"},
  };
  ts_check_spec_items(items, sizeof items / sizeof items[0]);
  static const char *const bad[][2] = {
      {"maxpool", "takes 1 to 6 arguments, got 0"},
      {"maxpool:0", "argument 1 \"0\" is not N or AxB"},
      {"maxpool:2x2x2", "is not N or AxB"},
      {"maxpool:2:x1", "pooling options are sN (stride), pN (padding), dN "
                       "(dilation)"},
      {"maxpool:2:s0", "\"s0\" is not N or AxB with integers in 1.."},
      {"maxpool:2:p2", "padding 2x2, must be in 0..1x1 (kernel - 1)"},
      {"avgpool:2:s1:s1", "argument 3 repeats an option"},
      {"global_avgpool:1", "takes 0 arguments, got 1"},
  };
  ts_check_spec_errors(bad, sizeof bad / sizeof bad[0]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_forward_against_naive),
      cmocka_unit_test(test_backward_routing),
      cmocka_unit_test(test_gradcheck_in_a_network),
      cmocka_unit_test(test_nan_propagates),
      cmocka_unit_test(test_global_avgpool),
      cmocka_unit_test(test_bad_shapes_and_arguments),
      cmocka_unit_test(test_description_items),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
