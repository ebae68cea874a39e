/* Dense layer forward and backward against naive double-precision loops on
 * odd shapes, among them the few-rows shapes whose product the layer
 * issues transposed (2 to 128 rows, at least twice as many outputs). */
#include "test_support.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Copies `values` into parameter p of layer li. */
static void set_param(nnlib_model *m, size_t li, size_t p, const float *values) {
  nnlib_tensor *t;
  ASSERT_OK(nnlib_layer_get_param(nnlib_model_get_layer(m, li), p, &t, NULL));
  memcpy(nnlib_tensor_get_data(t), values,
         (size_t)nnlib_tensor_get_size(t) * sizeof(float));
}

static const float *grad_of(nnlib_model *m, size_t li, size_t p) {
  nnlib_tensor *g;
  ASSERT_OK(nnlib_layer_get_param(nnlib_model_get_layer(m, li), p, NULL, &g));
  return nnlib_tensor_get_data(g);
}

/* y[n,o] = sum_i x[n,i] w[o,i] + b[o] */
static void naive_dense(const float *x, const float *w, const float *b,
                        double *y, int n, int in, int out) {
  for (int r = 0; r < n; r++)
    for (int o = 0; o < out; o++) {
      double acc = b ? b[o] : 0.0;
      for (int i = 0; i < in; i++)
        acc += (double)x[r * in + i] * w[o * in + i];
      y[r * out + o] = acc;
    }
}

static void check_forward(int n, int in, int out, int bias) {
  uint32_t st = (uint32_t)(n * 131 + in * 17 + out);
  float *x = malloc(sizeof(float) * n * in), *w = malloc(sizeof(float) * out * in);
  float *b = malloc(sizeof(float) * out);
  double *y = malloc(sizeof(double) * n * out);
  ts_fill_uniform(x, n * in, -1, 1, &st);
  ts_fill_uniform(w, out * in, -1, 1, &st);
  ts_fill_uniform(b, out, -1, 1, &st);
  nnlib_model *m = ts_model(in, n, NNLIB_LOSS_NONE, NULL, 1,
                            ts_dense(in, out, bias), NULL);
  set_param(m, 0, 0, w);
  if (bias)
    set_param(m, 0, 1, b);
  nnlib_tensor *X = ts_tensor2(n, in, x), *Y = ts_tensor2(n, out, NULL);
  ASSERT_OK(nnlib_model_predict(m, X, Y));
  naive_dense(x, w, bias ? b : NULL, y, n, in, out);
  for (int i = 0; i < n * out; i++)
    ASSERT_NEAR(nnlib_tensor_get_data(Y)[i], y[i], 1e-5 * (1 + sqrt(in)));
  nnlib_tensor_free(X);
  nnlib_tensor_free(Y);
  nnlib_model_free(m);
  free(x), free(w), free(b), free(y);
}

static void test_forward_shapes(void **s) {
  (void)s;
  const int shapes[][3] = {{1, 1, 1},     {3, 7, 5},      {1, 7, 5},
                           {33, 7, 5},    {33, 64, 3},    {5, 3, 64},
                           /* transposed: 2 <= n <= 128, out >= 2n */
                           {2, 9, 4},     {31, 17, 300},  {64, 40, 128},
                           {128, 20, 256}, /* and just past the rules */
                           {65, 40, 129}, {129, 20, 300}};
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
    for (int bias = 0; bias <= 1; bias++)
      check_forward(shapes[i][0], shapes[i][1], shapes[i][2], bias);
}

/* Two dense layers, MSE: every gradient against naive backprop in double,
 * which also checks the first-to-second layer dX = dY W path. */
static void check_backward(int n, int in, int hidden, int out) {
  uint32_t st = 99u + (uint32_t)n;
  int sizes[6] = {n * in, hidden * in, hidden, out * hidden, out, n * out};
  float *v[6];
  for (int i = 0; i < 6; i++) {
    v[i] = malloc(sizeof(float) * sizes[i]);
    ts_fill_uniform(v[i], sizes[i], -1, 1, &st);
  }
  float *x = v[0], *a = v[1], *ab = v[2], *bw = v[3], *bb = v[4], *t = v[5];
  nnlib_optimizer *opt;
  ASSERT_OK(nnlib_sgd_create(&opt, 0.1f, 0, 0, 0));
  nnlib_model *m = ts_model(in, n, NNLIB_LOSS_MSE, opt, 1,
                            ts_dense(in, hidden, 1), ts_dense(hidden, out, 1),
                            NULL);
  set_param(m, 0, 0, a), set_param(m, 0, 1, ab);
  set_param(m, 1, 0, bw), set_param(m, 1, 1, bb);
  nnlib_tensor *X = ts_tensor2(n, in, x), *T = ts_tensor2(n, out, t);
  float loss;
  ASSERT_OK(nnlib_model_backward(m, X, T, &loss));

  double *y1 = calloc((size_t)n * hidden, sizeof(double));
  double *y2 = calloc((size_t)n * out, sizeof(double));
  float *y1f = calloc((size_t)n * hidden, sizeof(float));
  naive_dense(x, a, ab, y1, n, in, hidden);
  for (int i = 0; i < n * hidden; i++)
    y1f[i] = (float)y1[i];
  naive_dense(y1f, bw, bb, y2, n, hidden, out);
  double want_loss = 0.0;
  double *dy2 = calloc((size_t)n * out, sizeof(double));
  for (int i = 0; i < n * out; i++) {
    want_loss += (y2[i] - t[i]) * (y2[i] - t[i]);
    dy2[i] = 2.0 * (y2[i] - t[i]) / (n * out);
  }
  ASSERT_NEAR(loss, want_loss / (n * out), 1e-5 * want_loss);
  const float *gB = grad_of(m, 1, 0), *gb = grad_of(m, 1, 1);
  const float *gA = grad_of(m, 0, 0), *ga = grad_of(m, 0, 1);
  for (int o = 0; o < out; o++) {
    double db = 0.0;
    for (int r = 0; r < n; r++)
      db += dy2[r * out + o];
    ASSERT_NEAR(gb[o], db, 1e-5);
    for (int h = 0; h < hidden; h++) {
      double dw = 0.0;
      for (int r = 0; r < n; r++)
        dw += dy2[r * out + o] * y1[r * hidden + h];
      ASSERT_NEAR(gB[o * hidden + h], dw, 1e-5);
    }
  }
  for (int h = 0; h < hidden; h++) {
    double da = 0.0;
    double *dy1 = calloc((size_t)n, sizeof(double));
    for (int r = 0; r < n; r++) {
      for (int o = 0; o < out; o++)
        dy1[r] += dy2[r * out + o] * bw[o * hidden + h];
      da += dy1[r];
    }
    ASSERT_NEAR(ga[h], da, 1e-5);
    for (int i = 0; i < in; i++) {
      double dw = 0.0;
      for (int r = 0; r < n; r++)
        dw += dy1[r] * x[r * in + i];
      ASSERT_NEAR(gA[h * in + i], dw, 1e-5);
    }
    free(dy1);
  }
  nnlib_tensor_free(X);
  nnlib_tensor_free(T);
  nnlib_model_free(m);
  for (int i = 0; i < 6; i++)
    free(v[i]);
  free(y1), free(y2), free(y1f), free(dy2);
}

static void test_backward_shapes(void **s) {
  (void)s;
  check_backward(1, 1, 1, 1);
  check_backward(3, 7, 5, 2);
  check_backward(33, 7, 5, 3);
  check_backward(1, 9, 4, 6);
  /* both layers' forward products transposed (hidden, out >= 2n) */
  check_backward(6, 5, 40, 12);
}

/* A model compiled for 200 samples, ReLU fused into the dense layer, run
 * on batches below, at and past the transposed product's 128 rows: each
 * against the naive loop, the ReLU applied after the transpose. */
static void test_relu_batches(void **s) {
  (void)s;
  enum { IN = 24, OUT = 260, MAX = 200 };
  uint32_t st = 7u;
  float *w = malloc(sizeof(float) * OUT * IN), *b = malloc(sizeof(float) * OUT);
  float *x = malloc(sizeof(float) * MAX * IN);
  double *y = malloc(sizeof(double) * MAX * OUT);
  ts_fill_uniform(w, OUT * IN, -1, 1, &st);
  ts_fill_uniform(b, OUT, -1, 1, &st);
  ts_fill_uniform(x, MAX * IN, -1, 1, &st);
  nnlib_model *m = ts_model(IN, MAX, NNLIB_LOSS_NONE, NULL, 1,
                            ts_dense(IN, OUT, 1), ts_act(NNLIB_ACT_RELU, 0),
                            NULL);
  set_param(m, 0, 0, w);
  set_param(m, 0, 1, b);
  naive_dense(x, w, b, y, MAX, IN, OUT);
  const int batches[] = {1, 2, 3, 17, 64, 127, 128, 129, 130, MAX};
  for (size_t k = 0; k < sizeof batches / sizeof *batches; k++) {
    int n = batches[k];
    nnlib_tensor *X = ts_tensor2(n, IN, x), *Y = ts_tensor2(n, OUT, NULL);
    ASSERT_OK(nnlib_model_predict(m, X, Y));
    for (int i = 0; i < n * OUT; i++)
      ASSERT_NEAR(nnlib_tensor_get_data(Y)[i], y[i] > 0 ? y[i] : 0.0,
                  1e-5 * (1 + sqrt(IN)));
    nnlib_tensor_free(X);
    nnlib_tensor_free(Y);
  }
  nnlib_model_free(m);
  free(w), free(b), free(x), free(y);
}

static void test_param_names_and_shapes(void **s) {
  (void)s;
  nnlib_model *m = ts_model(784, 8, NNLIB_LOSS_NONE, NULL, 1,
                            ts_dense(0, 16, 1), ts_dense(16, 10, 0), NULL);
  nnlib_layer *l0 = nnlib_model_get_layer(m, 0), *l1 = nnlib_model_get_layer(m, 1);
  assert_int_equal(nnlib_layer_get_param_tensor_count(l0), 2);
  assert_int_equal(nnlib_layer_get_param_tensor_count(l1), 1);
  assert_string_equal(nnlib_layer_get_param_name(l0, 0), "weight");
  assert_string_equal(nnlib_layer_get_param_name(l0, 1), "bias");
  assert_null(nnlib_layer_get_param_name(l1, 1));
  nnlib_tensor *w;
  ASSERT_OK(nnlib_layer_get_param(l0, 0, &w, NULL));
  assert_int_equal(nnlib_tensor_get_rank(w), 2);
  assert_int_equal(nnlib_tensor_get_dim(w, 0), 16);
  assert_int_equal(nnlib_tensor_get_dim(w, 1), 784); /* in taken at compile */
  int64_t dims[4];
  size_t rank;
  ASSERT_OK(nnlib_layer_get_output_shape(l1, dims, 4, &rank));
  assert_int_equal(rank, 1);
  assert_int_equal(dims[0], 10);
  ASSERT_STATUS(NNLIB_ERR_OUT_OF_RANGE, nnlib_layer_get_param(l1, 1, &w, NULL));
  nnlib_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_forward_shapes),
      cmocka_unit_test(test_backward_shapes),
      cmocka_unit_test(test_relu_batches),
      cmocka_unit_test(test_param_names_and_shapes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
