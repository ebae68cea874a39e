/* A convolution's lowering at stride 1 along the width goes row by row
 * under AVX-512 masks where the CPU has AVX-512F (conv2d_rows.c), else by
 * conv2d.c's portable path: both must give the same bits for the output,
 * the loss, every parameter gradient and the input gradient (col2im).
 * Covered: "same" maps whose scatter runs over the whole plane (14x14
 * and rows of two and three chunks), "valid" maps (the rows' gather with
 * the portable scatter), dilation, a row stride of 2, a kernel wider than
 * the input, rows of exactly 16 and 17 columns, batches lowered in
 * several chunks, and a width stride of 2, which neither path changes.
 * On a CPU without AVX-512F (and under valgrind, which has none) both
 * runs would take the portable path, so the test reports itself skipped.
 * test_conv.c checks the same geometries against a direct convolution
 * and finite differences. */
#include "nnlib_internal.h"
#include "test_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rows_case {
  int n, cin, h, w, cout, kh, kw, sh, sw, ph, pw, dh, dw;
} rows_case;

/* What one backward pass gives, copied out. */
typedef struct pass_result {
  float *y, *dw, *db, *dx;
  float loss;
  int64_t ys, ws, bs, xs;
} pass_result;

static nnlib_model *model_of(const rows_case *c) {
  const int geom[6] = {c->sh, c->sw, c->ph, c->pw, c->dh, c->dw};
  nnlib_layer *l = ts_conv(c->cin, c->cout, c->kh, c->kw, geom, 1);
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add(m, l));
  int64_t shape[3] = {c->cin, c->h, c->w};
  ASSERT_OK(nnlib_model_compile(m, shape, 3, c->n, NNLIB_LOSS_MSE, NULL, 7));
  ASSERT_OK(nnlib_model_set_input_gradients(m, 1));
  return m;
}

static pass_result run_pass(const rows_case *c, bool plain) {
  nnlib__lowered_rows_force_plain(plain);
  nnlib_model *m = model_of(c);
  int64_t out[3];
  size_t rank;
  ASSERT_OK(nnlib_model_get_output_shape(m, out, 3, &rank));
  int64_t xs = (int64_t)c->cin * c->h * c->w, ys = out[0] * out[1] * out[2];
  uint32_t seed = (uint32_t)(xs * 131 + ys);
  float *x = malloc(sizeof(float) * (size_t)(c->n * xs));
  float *t = malloc(sizeof(float) * (size_t)(c->n * ys));
  ts_fill_uniform(x, c->n * xs, -1, 1, &seed);
  ts_fill_uniform(t, c->n * ys, -1, 1, &seed);
  nnlib_tensor *X = ts_tensor2(c->n, xs, x), *T = ts_tensor2(c->n, ys, t);
  pass_result r = {0};
  ASSERT_OK(nnlib_model_backward(m, X, T, &r.loss));
  const nnlib_tensor *y = NULL, *dx = NULL;
  ASSERT_OK(nnlib_model_get_input_gradient(m, 0, &dx));
  nnlib_layer *conv = nnlib_model_get_layer(m, 0);
  nnlib_tensor *w, *gw, *b, *gb;
  ASSERT_OK(nnlib_layer_get_param(conv, 0, &w, &gw));
  ASSERT_OK(nnlib_layer_get_param(conv, 1, &b, &gb));
  r.xs = c->n * xs;
  r.ws = nnlib_tensor_get_size(gw);
  r.bs = nnlib_tensor_get_size(gb);
  r.dx = ts_copy_floats(nnlib_tensor_get_data_const(dx), r.xs);
  r.dw = ts_copy_floats(nnlib_tensor_get_data(gw), r.ws);
  r.db = ts_copy_floats(nnlib_tensor_get_data(gb), r.bs);
  ASSERT_OK(nnlib_model_forward(m, X, &y));
  r.ys = c->n * ys;
  r.y = ts_copy_floats(nnlib_tensor_get_data_const(y), r.ys);
  nnlib_tensor_free(X);
  nnlib_tensor_free(T);
  nnlib_model_free(m);
  free(x);
  free(t);
  nnlib__lowered_rows_force_plain(false);
  return r;
}

static void free_result(pass_result *r) {
  free(r->y), free(r->dw), free(r->db), free(r->dx);
}

static void assert_same_bits(const float *a, const float *b, int64_t n,
                             const char *what, const rows_case *c) {
  if (memcmp(a, b, (size_t)n * sizeof(float)) == 0)
    return;
  for (int64_t i = 0; i < n; i++)
    if (memcmp(&a[i], &b[i], sizeof(float)) != 0) {
      fprintf(stderr,
              "%s differs at %lld (%.9g plain, %.9g rows) for %dx%d map, "
              "%dx%d kernel, stride %d,%d, padding %d,%d, dilation %d,%d\n",
              what, (long long)i, a[i], b[i], c->h, c->w, c->kh, c->kw, c->sh,
              c->sw, c->ph, c->pw, c->dh, c->dw);
      break;
    }
  fail();
}

static void check_case(const rows_case *c) {
  pass_result plain = run_pass(c, true), rows = run_pass(c, false);
  assert_int_equal(plain.ys, rows.ys);
  assert_same_bits(plain.y, rows.y, plain.ys, "output", c);
  assert_same_bits(&plain.loss, &rows.loss, 1, "loss", c);
  assert_same_bits(plain.dw, rows.dw, plain.ws, "weight gradient", c);
  assert_same_bits(plain.db, rows.db, plain.bs, "bias gradient", c);
  assert_same_bits(plain.dx, rows.dx, plain.xs, "input gradient", c);
  free_result(&plain);
  free_result(&rows);
}

static void test_same_bits_as_portable(void **s) {
  (void)s;
  if (!__builtin_cpu_supports("avx512f")) {
    fprintf(stderr, "skipped: this CPU has no AVX-512F, so the masked "
                    "lowering cannot run here\n");
    skip();
  }
  /* n cin h w cout kh kw sh sw ph pw dh dw */
  static const rows_case cases[] = {
      {5, 3, 14, 14, 4, 3, 3, 1, 1, 1, 1, 1, 1},   /* benchmark-like */
      {2, 2, 28, 28, 3, 3, 3, 1, 1, 1, 1, 1, 1},   /* rows of 2 chunks */
      {3, 2, 20, 33, 2, 5, 5, 1, 1, 2, 2, 1, 1},   /* 3 chunks, 5x5 */
      {3, 3, 9, 17, 2, 3, 3, 1, 1, 0, 0, 1, 1},    /* valid: 15 wide */
      {2, 2, 7, 18, 2, 3, 3, 1, 1, 0, 0, 1, 1},    /* valid: 16 wide */
      {2, 2, 7, 17, 2, 1, 1, 1, 1, 0, 0, 1, 1},    /* 1x1: 17 wide */
      {3, 2, 12, 12, 3, 3, 3, 1, 1, 2, 2, 2, 2},   /* dilation 2 */
      {3, 2, 11, 16, 2, 1, 3, 2, 1, 0, 1, 1, 1},   /* row stride 2 */
      {4, 2, 3, 4, 2, 5, 5, 1, 1, 2, 2, 1, 1},     /* kernel > input */
      {3, 1, 1, 1, 2, 3, 3, 1, 1, 1, 1, 1, 1},     /* 1x1 map */
      {2, 2, 9, 9, 2, 3, 2, 1, 1, 0, 1, 2, 3},     /* dilation 2x3 */
      {40, 16, 40, 40, 8, 3, 3, 1, 1, 1, 1, 1, 1}, /* several chunks */
      {3, 2, 11, 13, 2, 3, 3, 1, 2, 1, 1, 1, 1},   /* width stride 2 */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    check_case(&cases[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_same_bits_as_portable),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
