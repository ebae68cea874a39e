/* conv2d: forward against a naive direct convolution in double on odd
 * shapes (kernels 1x1, 3x3, 5x5 and non-square; stride 1 and 2; padding 0,
 * 1, 2; dilation; non-square inputs; batch 1 and 7; C_in 1 and 3), gradient
 * checks by finite differences, bad shapes and arguments with their exact
 * statuses and messages at compile, and the description items. */
#include "test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct conv_case {
  int n, cin, h, w, cout, kh, kw, sh, sw, ph, pw, dh, dw, bias;
} conv_case;

static int out_size(int in, int k, int s, int p, int d) {
  return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}

/* y[n,co,oh,ow] = b[co] + sum x[n,ci,oh sh - ph + i dh, ow sw - pw + j dw]
 *                              w[co,ci,i,j]   (zero outside x) */
static void naive_conv(const conv_case *c, const float *x, const float *w,
                       const float *b, double *y) {
  int oh_n = out_size(c->h, c->kh, c->sh, c->ph, c->dh);
  int ow_n = out_size(c->w, c->kw, c->sw, c->pw, c->dw);
  for (int s = 0; s < c->n; s++)
    for (int co = 0; co < c->cout; co++)
      for (int oh = 0; oh < oh_n; oh++)
        for (int ow = 0; ow < ow_n; ow++) {
          double acc = c->bias ? b[co] : 0.0;
          for (int ci = 0; ci < c->cin; ci++)
            for (int i = 0; i < c->kh; i++)
              for (int j = 0; j < c->kw; j++) {
                int ih = oh * c->sh - c->ph + i * c->dh;
                int iw = ow * c->sw - c->pw + j * c->dw;
                if (ih < 0 || ih >= c->h || iw < 0 || iw >= c->w)
                  continue;
                acc += (double)x[((s * c->cin + ci) * c->h + ih) * c->w + iw] *
                       w[((co * c->cin + ci) * c->kh + i) * c->kw + j];
              }
          y[((s * c->cout + co) * oh_n + oh) * ow_n + ow] = acc;
        }
}

static nnlib_layer *make_conv(const conv_case *c) {
  const int geom[6] = {c->sh, c->sw, c->ph, c->pw, c->dh, c->dw};
  return ts_conv(c->cin, c->cout, c->kh, c->kw, geom, c->bias);
}

static nnlib_model *compiled(nnlib_layer **layers, size_t count,
                             const int64_t *shape, int64_t batch,
                             nnlib_loss loss, nnlib_optimizer *opt) {
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  for (size_t i = 0; i < count; i++)
    ASSERT_OK(nnlib_model_add(m, layers[i]));
  ASSERT_OK(nnlib_model_compile(m, shape, 3, batch, loss, opt, 5));
  return m;
}

static void check_forward(const conv_case *c) {
  int oh = out_size(c->h, c->kh, c->sh, c->ph, c->dh);
  int ow = out_size(c->w, c->kw, c->sw, c->pw, c->dw);
  int xs = c->n * c->cin * c->h * c->w, ws = c->cout * c->cin * c->kh * c->kw;
  int ys = c->n * c->cout * oh * ow;
  uint32_t seed = (uint32_t)(xs * 31 + ws);
  float *x = malloc(sizeof(float) * xs), *w = malloc(sizeof(float) * ws);
  float *b = malloc(sizeof(float) * c->cout);
  double *want = malloc(sizeof(double) * ys);
  ts_fill_uniform(x, xs, -1, 1, &seed);
  ts_fill_uniform(w, ws, -1, 1, &seed);
  ts_fill_uniform(b, c->cout, -1, 1, &seed);
  nnlib_layer *l = make_conv(c);
  int64_t shape[3] = {c->cin, c->h, c->w};
  nnlib_model *m = compiled(&l, 1, shape, c->n, NNLIB_LOSS_NONE, NULL);
  nnlib_tensor *t;
  ASSERT_OK(nnlib_layer_get_param(nnlib_model_get_layer(m, 0), 0, &t, NULL));
  memcpy(nnlib_tensor_get_data(t), w, sizeof(float) * ws);
  if (c->bias) {
    ASSERT_OK(nnlib_layer_get_param(nnlib_model_get_layer(m, 0), 1, &t, NULL));
    memcpy(nnlib_tensor_get_data(t), b, sizeof(float) * c->cout);
  }
  int64_t out_dims[3];
  size_t rank;
  ASSERT_OK(nnlib_model_get_output_shape(m, out_dims, 3, &rank));
  assert_int_equal(rank, 3);
  assert_int_equal(out_dims[0], c->cout);
  assert_int_equal(out_dims[1], oh);
  assert_int_equal(out_dims[2], ow);
  nnlib_tensor *X = ts_tensor2(c->n, xs / c->n, x);
  nnlib_tensor *Y = ts_tensor2(c->n, ys / c->n, NULL);
  ASSERT_OK(nnlib_model_predict(m, X, Y));
  naive_conv(c, x, w, b, want);
  double tol = 1e-5 * (1 + sqrt((double)(c->cin * c->kh * c->kw)));
  for (int i = 0; i < ys; i++)
    ASSERT_NEAR(nnlib_tensor_get_data(Y)[i], want[i], tol);
  nnlib_tensor_free(X);
  nnlib_tensor_free(Y);
  nnlib_model_free(m);
  free(x), free(w), free(b), free(want);
}

static void test_forward_against_naive(void **s) {
  (void)s;
  /* n cin h w cout kh kw sh sw ph pw dh dw bias */
  static const conv_case cases[] = {
      {1, 1, 5, 7, 2, 1, 1, 1, 1, 0, 0, 1, 1, 1},
      {7, 3, 5, 7, 4, 1, 1, 2, 2, 0, 0, 1, 1, 0},
      {1, 1, 9, 6, 3, 3, 3, 1, 1, 0, 0, 1, 1, 1},
      {7, 3, 9, 6, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1},
      {7, 1, 8, 11, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1},
      {1, 3, 11, 8, 5, 3, 3, 2, 2, 2, 2, 1, 1, 0},
      {1, 1, 6, 9, 2, 5, 5, 1, 1, 0, 0, 1, 1, 1},
      {7, 3, 6, 9, 4, 5, 5, 1, 1, 2, 2, 1, 1, 1},
      {7, 1, 13, 10, 2, 5, 5, 2, 2, 2, 2, 1, 1, 0},
      {1, 3, 10, 13, 3, 5, 5, 2, 2, 1, 1, 1, 1, 1},
      {7, 3, 12, 7, 2, 5, 3, 2, 1, 2, 0, 1, 1, 1},  /* non-square kernel */
      {7, 1, 12, 9, 2, 3, 3, 1, 2, 1, 2, 2, 1, 1},  /* dilation, stride */
      {1, 3, 9, 9, 2, 3, 2, 1, 1, 0, 1, 2, 3, 1},   /* dilation 2x3 */
      {7, 3, 5, 5, 3, 5, 5, 1, 1, 0, 0, 1, 1, 1},   /* 1x1 output */
      {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1},   /* all 1 */
      {7, 3, 3, 4, 2, 5, 5, 2, 2, 2, 2, 1, 1, 1},   /* kernel > input */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    check_forward(&cases[i]);
}

static nnlib_optimizer *sgd(void) {
  nnlib_optimizer *o = NULL;
  ASSERT_OK(nnlib_sgd_create(&o, 0.1f, 0, 0, 0));
  return o;
}

/* conv -> conv (so the first one's weights see the second's input
 * gradient), MSE on fixed random targets, every scalar. */
static double gradcheck_pair(const conv_case *c, const conv_case *c2) {
  nnlib_layer *layers[2] = {make_conv(c), make_conv(c2)};
  int64_t shape[3] = {c->cin, c->h, c->w};
  nnlib_model *m = compiled(layers, 2, shape, c->n, NNLIB_LOSS_MSE, sgd());
  int64_t out[3];
  size_t rank;
  ASSERT_OK(nnlib_model_get_output_shape(m, out, 3, &rank));
  int64_t in_size = shape[0] * shape[1] * shape[2];
  int64_t out_size_ = out[0] * out[1] * out[2];
  nnlib_tensor *X = ts_tensor2(c->n, in_size, NULL);
  nnlib_tensor *T = ts_tensor2(c->n, out_size_, NULL);
  uint32_t seed = 17;
  ts_fill_uniform(nnlib_tensor_get_data(X), c->n * in_size, -1, 1, &seed);
  ts_fill_uniform(nnlib_tensor_get_data(T), c->n * out_size_, -1, 1, &seed);
  nnlib_gradcheck_options o;
  ASSERT_OK(nnlib_gradcheck_options_init(&o));
  double err = -1;
  ASSERT_OK(nnlib_model_gradcheck(m, X, T, &o, &err));
  nnlib_tensor_free(X);
  nnlib_tensor_free(T);
  nnlib_model_free(m);
  return err;
}

static void test_gradcheck(void **s) {
  (void)s;
  static const conv_case first[] = {
      {3, 2, 6, 7, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1},
      {2, 1, 9, 8, 2, 5, 3, 2, 1, 2, 0, 1, 1, 1},
      {2, 3, 9, 9, 2, 3, 3, 2, 2, 1, 1, 2, 2, 0},
      {1, 2, 5, 6, 3, 1, 1, 1, 1, 0, 0, 1, 1, 1},
  };
  for (size_t i = 0; i < sizeof first / sizeof first[0]; i++) {
    conv_case second = {first[i].n, first[i].cout, 0, 0, 2, 2, 2, 1, 1,
                        1, 0, 1, 1, 1};
    second.h = out_size(first[i].h, first[i].kh, first[i].sh, first[i].ph,
                        first[i].dh);
    second.w = out_size(first[i].w, first[i].kw, first[i].sw, first[i].pw,
                        first[i].dw);
    double err = gradcheck_pair(&first[i], &second);
    print_message("  conv case %zu: gradcheck %.2e\n", i, err);
    if (!(err <= 1e-3))
      fail_msg("conv case %zu: gradcheck error %.3g", i, err);
  }
}

/* compile of `layer` on a [c, h, w] input: status and message */
static void expect_compile(nnlib_layer *layer, int64_t c, int64_t h,
                           int64_t w, nnlib_status want, const char *msg) {
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add(m, layer));
  int64_t shape[3] = {c, h, w};
  ASSERT_STATUS(want, nnlib_model_compile(m, shape, 3, 4, NNLIB_LOSS_MSE,
                                          NULL, 1));
  ts_expect_message(msg);
  nnlib_model_free(m);
}

static void test_bad_shapes_at_compile(void **s) {
  (void)s;
  conv_case c = {1, 1, 0, 0, 2, 5, 5, 1, 1, 1, 1, 1, 1, 1};
  expect_compile(make_conv(&c), 1, 2, 9, NNLIB_ERR_SHAPE_MISMATCH,
                 "layer 0 (conv2d): conv2d: kernel 5x5 (dilation 1x1) is "
                 "larger than the padded input 4x11 (2x9 with padding 1x1)");
  conv_case dil = {1, 1, 0, 0, 2, 3, 3, 1, 1, 0, 0, 3, 1, 1};
  expect_compile(make_conv(&dil), 1, 6, 9, NNLIB_ERR_SHAPE_MISMATCH,
                 "kernel 3x3 (dilation 3x1) is larger than the padded input "
                 "6x9");
  conv_case three = {1, 3, 0, 0, 2, 3, 3, 1, 1, 0, 0, 1, 1, 1};
  expect_compile(make_conv(&three), 2, 6, 6, NNLIB_ERR_SHAPE_MISMATCH,
                 "conv2d: input [2, 6, 6] has 2 channels, layer expects 3");
  /* a conv after a dense layer: [10] does not chain into [C, H, W] */
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, "dense:10,conv:2x3x3"));
  int64_t in = 4;
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH,
                nnlib_model_compile(m, &in, 1, 2, NNLIB_LOSS_MSE, NULL, 1));
  ts_expect_message("layer 1 (conv2d): conv2d: input is [10] per sample, "
                 "expects [C, H, W] (channels, height, width)");
  nnlib_model_free(m);
  /* the second of two convs: channels come from the first */
  ASSERT_OK(nnlib_model_create(&m));
  nnlib_layer *l = NULL;
  ASSERT_OK(nnlib_model_add_spec(m, "conv:4x3x3:p1"));
  conv_case wrong = {1, 3, 0, 0, 2, 3, 3, 1, 1, 0, 0, 1, 1, 1};
  l = make_conv(&wrong);
  ASSERT_OK(nnlib_model_add(m, l));
  int64_t shape[3] = {1, 8, 8};
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH,
                nnlib_model_compile(m, shape, 3, 2, NNLIB_LOSS_MSE, NULL, 1));
  ts_expect_message("layer 1 (conv2d): conv2d: input [4, 8, 8] has 4 channels, "
                 "layer expects 3");
  nnlib_model_free(m);
}

static void test_bad_arguments(void **s) {
  (void)s;
  nnlib_layer *l = (nnlib_layer *)1;
  nnlib_conv2d_options o;
  ASSERT_OK(nnlib_conv2d_options_init(&o));
  o.stride_h = 0;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_conv2d_create(&l, 2, 3, 3, &o));
  ts_expect_message("conv2d: stride 0x1, must be at least 1");
  assert_null(l);
  ASSERT_OK(nnlib_conv2d_options_init(&o));
  o.padding_w = -1;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_conv2d_create(&l, 2, 3, 3, &o));
  ts_expect_message("padding 0x-1, must be at least 0");
  ASSERT_OK(nnlib_conv2d_options_init(&o));
  o.dilation_h = 0;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_conv2d_create(&l, 2, 3, 3, &o));
  ts_expect_message("dilation 0x1, must be at least 1");
  ASSERT_OK(nnlib_conv2d_options_init(&o));
  o.with_bias = 2;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_conv2d_create(&l, 2, 3, 3, &o));
  o.with_bias = 1;
  o.in_channels = -1;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_conv2d_create(&l, 2, 3, 3, &o));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_conv2d_create(&l, 0, 3, 3, NULL));
  ts_expect_message("out_channels is 0");
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_conv2d_create(&l, 2, 0, 3, NULL));
  ts_expect_message("kernel 0x3, must be at least 1x1");
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_conv2d_create(NULL, 2, 3, 3, NULL));
  /* NULL through the function (the macro of that name takes sizeof) */
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, (nnlib_conv2d_options_init)(NULL));
  /* an options struct from a newer header with unknown non-zero bytes */
  struct {
    nnlib_conv2d_options o;
    int64_t future;
  } bigger;
  memset(&bigger, 0, sizeof bigger);
  ASSERT_OK(nnlib_conv2d_options_init(&bigger.o));
  bigger.o.struct_size = sizeof bigger;
  bigger.future = 1;
  ASSERT_STATUS(NNLIB_ERR_STRUCT_SIZE,
                nnlib_conv2d_create(&l, 2, 3, 3, &bigger.o));
  bigger.future = 0;
  ASSERT_OK(nnlib_conv2d_create(&l, 2, 3, 3, &bigger.o));
  assert_int_equal(nnlib_layer_get_kind(l), NNLIB_LAYER_CONV2D);
  assert_string_equal(nnlib_layer_get_name(l), "conv2d");
  nnlib_layer_free(l);
}

static void expect_spec(nnlib_model *m, const char *want) {
  char buf[512];
  ASSERT_OK(nnlib_model_get_spec(m, buf, sizeof buf, NULL));
  assert_string_equal(buf, want);
}

static void test_description_items(void **s) {
  (void)s;
  static const char *const items[][2] = {
      {"conv:32x5x5", "conv:32x5x5"},
      {"conv:8x3x3:s1:p0:d1", "conv:8x3x3"},
      {"conv:8x3x3:p1", "conv:8x3x3:p1"},
      {"conv:8x3x5:s2x1:p1x2:d1x2", "conv:8x3x5:s2x1:p1x2:d1x2"},
      {"conv:8x3x3:nobias:s2", "conv:8x3x3:s2:nobias"},
      {"conv:8x3x3:d2x2:p2", "conv:8x3x3:p2:d2"},
  };
  for (size_t i = 0; i < sizeof items / sizeof items[0]; i++) {
    nnlib_model *m = NULL;
    ASSERT_OK(nnlib_model_create(&m));
    ASSERT_OK(nnlib_model_add_spec(m, items[i][0]));
    expect_spec(m, items[i][1]);
    nnlib_model_free(m);
  }
  static const char *const bad[][2] = {
      {"conv", "takes 1 to 5 arguments, got 0"},
      {"conv:32", "argument 1 \"32\" is not AxBxC"},
      {"conv:32x5", "is not AxBxC"},
      {"conv:32x5x5x5", "is not AxBxC"},
      {"conv:32x5x", "is not AxBxC"},
      {"conv:0x5x5", "is not AxBxC with integers in 1..2147483647"},
      {"conv:8x3x3:s0", "argument 2 \"s0\" is not N or AxB with integers in "
                        "1..2147483647"},
      {"conv:8x3x3:p-1", "\"p-1\" is not N or AxB"},
      {"conv:8x3x3:q1", "conv options are sN (stride), pN (padding), dN "
                        "(dilation), each N or HxW, and nobias"},
      {"conv:8x3x3:s", "conv options are"},
      {"conv:8x3x3:s1:s2", "argument 3 repeats an option"},
      {"conv:8x3x3:nobias:nobias", "repeats an option"},
      {"conv:8x3x3:s1x2x3", "\"s1x2x3\" is not N or AxB"},
  };
  ts_check_spec_errors(bad, sizeof bad / sizeof bad[0]);
}

/* The example compiles to the expected shapes. */
static void test_lenet_shapes(void **s) {
  (void)s;
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, "conv:32x5x5,relu,maxpool:2,conv:64x5x5,"
                                    "relu,maxpool:2,flatten,dense:10"));
  int64_t shape[3] = {1, 28, 28}, count;
  ASSERT_OK(nnlib_model_compile(m, shape, 3, 8, NNLIB_LOSS_SOFTMAX_CE, NULL,
                                1));
  const int64_t want[8][3] = {{32, 24, 24}, {32, 24, 24}, {32, 12, 12},
                              {64, 8, 8},   {64, 8, 8},   {64, 4, 4},
                              {1024, 0, 0}, {10, 0, 0}};
  for (size_t i = 0; i < 8; i++) {
    int64_t dims[3];
    size_t rank;
    ASSERT_OK(nnlib_layer_get_output_shape(nnlib_model_get_layer(m, i), dims,
                                           3, &rank));
    assert_int_equal(rank, i < 6 ? 3 : 1);
    for (size_t k = 0; k < rank; k++)
      assert_int_equal(dims[k], want[i][k]);
  }
  ASSERT_OK(nnlib_model_get_param_count(m, &count));
  assert_int_equal(count, 32 * 25 + 32 + 64 * 32 * 25 + 64 + 1024 * 10 + 10);
  assert_string_equal(nnlib_layer_get_param_name(nnlib_model_get_layer(m, 0),
                                                 0),
                      "weight");
  nnlib_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_forward_against_naive),
      cmocka_unit_test(test_gradcheck),
      cmocka_unit_test(test_bad_shapes_at_compile),
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_description_items),
      cmocka_unit_test(test_lenet_shapes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
