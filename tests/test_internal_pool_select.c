/* Max and min pooling against a naive loop, bit for bit: forward (training
 * and prediction, which keeps no winners) and the input gradient. The
 * 2x2 windows at stride 2 run their own rows (pool2d.c select_2x2: AVX-512
 * where the CPU has it, else AVX2, else plain loops, each checked here on
 * one machine where it can run); windows that must not take that path (padding,
 * ceil mode that adds a clipped window, overlapping and 3x3 windows) run the
 * general loop and are checked the same way. The data are drawn from few
 * values, so windows hold ties, +0 beside -0 and NaNs with distinct payloads:
 * the winner is the first best in row-major order under strict comparison, or
 * the window's first NaN, and the input gradient is 0.0f + dy there (a
 * zeroed dx plus dy: -0 becomes +0), summed over overlapping windows in
 * output order. */
/* pre_reference rounds each operation, as the library does */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif
#include "nnlib_internal.h"
#include "test_support.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { BATCH = 5 };

typedef struct pool_case {
  const char *spec;
  bool max;
  int64_t k, s, pad, c, h, w;
  bool ceil_mode;
} pool_case;

static float from_bits(uint32_t bits) {
  float v;
  memcpy(&v, &bits, sizeof v);
  return v;
}

/* Few distinct values: ties, signed zeros, and now and then a NaN (of one
 * of two payloads, so the first NaN is told from a later one). */
static float draw(uint32_t *seed) {
  static const float values[] = {-2.0f, -1.0f, -0.0f, 0.0f, 1.0f, 2.0f};
  *seed = *seed * 1664525u + 1013904223u;
  uint32_t r = *seed >> 8;
  if (r % 37 == 0)
    return from_bits(r % 2 ? 0x7fc00001u : 0xffc00002u);
  return values[r % 6];
}

/* PyTorch's output length (pool2d.c axis_out, dilation 1). */
static int64_t out_len(int64_t in, int64_t k, int64_t s, int64_t pad,
                       bool ceil_mode) {
  int64_t room = in + 2 * pad - k;
  int64_t out = (ceil_mode ? (room + s - 1) / s : room / s) + 1;
  if (ceil_mode && (out - 1) * s >= in + pad)
    out--;
  return out;
}

/* The winner of each window (plane index) and y, naively. */
static void naive_forward(const pool_case *pc, const float *x, float *y,
                          int64_t *at, int64_t oh_count, int64_t ow_count) {
  for (int64_t q = 0; q < BATCH * pc->c; q++) {
    const float *plane = x + q * pc->h * pc->w;
    for (int64_t oh = 0; oh < oh_count; oh++)
      for (int64_t ow = 0; ow < ow_count; ow++) {
        int64_t best = -1, nan = -1;
        for (int64_t i = oh * pc->s - pc->pad; i < oh * pc->s - pc->pad + pc->k;
             i++)
          for (int64_t j = ow * pc->s - pc->pad;
               j < ow * pc->s - pc->pad + pc->k; j++) {
            if (i < 0 || j < 0 || i >= pc->h || j >= pc->w)
              continue;
            int64_t e = i * pc->w + j;
            float v = plane[e];
            if (v != v && nan < 0)
              nan = e;
            if (best < 0 || (pc->max ? v > plane[best] : v < plane[best]))
              best = e;
          }
        int64_t o = (q * oh_count + oh) * ow_count + ow;
        at[o] = nan >= 0 ? nan : best;
        y[o] = plane[at[o]];
      }
  }
}

static void naive_backward(const pool_case *pc, const float *dy,
                           const int64_t *at, float *dx, int64_t per_plane) {
  int64_t plane = pc->h * pc->w;
  memset(dx, 0, (size_t)(BATCH * pc->c * plane) * sizeof(float));
  for (int64_t q = 0; q < BATCH * pc->c; q++)
    for (int64_t o = 0; o < per_plane; o++)
      dx[q * plane + at[q * per_plane + o]] += dy[q * per_plane + o];
}

static void expect_bits(const char *spec, const char *what, const float *got,
                        const float *want, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    if (memcmp(&got[i], &want[i], sizeof(float)) != 0)
      fail_msg("%s: %s element %lld is %g (bits differ), expected %g", spec,
               what, (long long)i, (double)got[i], (double)want[i]);
}

/* which rows the 2x2 pools run: the CPU's own, or forced */
typedef enum { NATIVE_ROWS, PLAIN_ROWS, AVX2_ROWS } rows_mode;

static void check_case(const pool_case *pc, rows_mode mode) {
  nnlib__pool2d_force_plain_rows(mode == PLAIN_ROWS);
  nnlib__pool2d_force_avx2_rows(mode == AVX2_ROWS);
  int64_t shape[3] = {pc->c, pc->h, pc->w};
  int64_t oh = out_len(pc->h, pc->k, pc->s, pc->pad, pc->ceil_mode);
  int64_t ow = out_len(pc->w, pc->k, pc->s, pc->pad, pc->ceil_mode);
  int64_t in = pc->c * pc->h * pc->w, out = pc->c * oh * ow;
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, pc->spec));
  ASSERT_OK(nnlib_model_compile(m, shape, 3, BATCH, NNLIB_LOSS_NONE, NULL, 1));
  ASSERT_OK(nnlib_model_set_input_gradients(m, 1));
  assert_int_equal(m->output_size, out);
  nnlib_tensor *x = ts_tensor2(BATCH, in, NULL);
  nnlib_tensor *g = ts_tensor2(BATCH, out, NULL);
  nnlib_tensor *pred = ts_tensor2(BATCH, out, NULL);
  uint32_t seed = (uint32_t)(in + 11 * out);
  for (int64_t i = 0; i < BATCH * in; i++)
    nnlib_tensor_get_data(x)[i] = draw(&seed);
  for (int64_t i = 0; i < BATCH * out; i++) { /* finite, some -0 */
    float v = draw(&seed);
    nnlib_tensor_get_data(g)[i] = v != v ? 0.5f : v;
  }
  float *y = malloc((size_t)(BATCH * out) * sizeof(float));
  float *dx = malloc((size_t)(BATCH * in) * sizeof(float));
  int64_t *at = malloc((size_t)(BATCH * out) * sizeof(int64_t));
  naive_forward(pc, nnlib_tensor_get_data(x), y, at, oh, ow);
  naive_backward(pc, nnlib_tensor_get_data(g), at, dx, oh * ow);

  ASSERT_OK(nnlib_model_predict(m, x, pred));
  expect_bits(pc->spec, "prediction", nnlib_tensor_get_data(pred), y,
              BATCH * out);
  const nnlib_tensor *fwd, *dxt;
  ASSERT_OK(nnlib_model_forward(m, x, &fwd));
  expect_bits(pc->spec, "forward", nnlib_tensor_get_data_const(fwd), y,
              BATCH * out);
  ASSERT_OK(nnlib_model_backward_output(m, g));
  ASSERT_OK(nnlib_model_get_input_gradient(m, 0, &dxt));
  expect_bits(pc->spec, "input gradient", nnlib_tensor_get_data_const(dxt), dx,
              BATCH * in);
  free(y);
  free(dx);
  free(at);
  nnlib_tensor_free(x);
  nnlib_tensor_free(g);
  nnlib_tensor_free(pred);
  nnlib_model_free(m);
  nnlib__pool2d_force_plain_rows(false);
  nnlib__pool2d_force_avx2_rows(false);
}

static const pool_case cases[] = {
    /* 2x2 at stride 2: the rows of select_2x2 */
    {"maxpool:2", true, 2, 2, 0, 3, 8, 12, false},
    {"minpool:2", false, 2, 2, 0, 2, 7, 9, false},    /* odd: last row/col */
    {"maxpool:2", true, 2, 2, 0, 2, 34, 37, false},   /* 18 windows a row */
    {"minpool:2", false, 2, 2, 0, 2, 6, 33, false},   /* 16: whole vectors */
    {"maxpool:2", true, 2, 2, 0, 2, 4, 26, false},    /* 13: vector spread */
    {"maxpool:2", true, 2, 2, 0, 4, 2, 2, false},     /* one window a plane */
    {"maxpool:2", true, 2, 2, 0, 2, 14, 14, false},   /* 7 rows of 7: pairs */
    {"minpool:2", false, 2, 2, 0, 3, 11, 17, false},  /* pairs of 8, odd */
    {"maxpool:2:ceil", true, 2, 2, 0, 2, 6, 8, true}, /* adds no window */
    /* the general loop */
    {"maxpool:2:ceil", true, 2, 2, 0, 2, 7, 7, true}, /* a clipped window */
    {"maxpool:2:p1", true, 2, 2, 1, 2, 6, 7, false},
    {"minpool:2:s1", false, 2, 1, 0, 2, 5, 6, false}, /* overlapping */
    {"maxpool:3:s2:p1", true, 3, 2, 1, 2, 9, 8, false},
};

static void select_matches_naive(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    check_case(&cases[i], NATIVE_ROWS);
    check_case(&cases[i], PLAIN_ROWS);
    check_case(&cases[i], AVX2_ROWS); /* plain again without AVX2 */
  }
}

/* A fused pass's values (layer.h's nnlib__pool2x2_pre), computed apart
 * as the passes it stands for compute them: batchnorm's (x - m) scale +
 * shift, a convolution's x + b (m = +0, scale 1). */
static float pre_reference(const nnlib__pool2x2_pre *pre, float x) {
  bool add = pre->m == 0.0f && !signbit(pre->m) && pre->scale == 1.0f;
  float v = add ? x + pre->shift : (x - pre->m) * pre->scale + pre->shift;
  return pre->relu && v <= 0.0f ? 0.0f : v;
}

/* Ties, signed zeros and NaNs (draw), infinities, and values whose
 * products and sums round, so that an FMA would show. */
static void fill_pre_input(float *x, int64_t n, uint32_t *seed) {
  for (int64_t i = 0; i < n; i++) {
    x[i] = i % 3 == 0 ? draw(seed) : (float)(*seed % 9973) / 97.0f - 50.0f;
    *seed = *seed * 1664525u + 1013904223u;
    if (i % 23 == 7)
      x[i] = i % 2 ? INFINITY : -INFINITY;
  }
}

/* One pre over an h x w plane, pool (max or min) in one way of running
 * the rows, with or without codes: against the plain rows over the
 * values computed first, bit for bit, nothing written past y and codes,
 * x unchanged. */
static void check_pre(nnlib_layer *pool, const nnlib__pool2x2_pre *pre,
                      const float *x, int64_t h, int64_t w, rows_mode mode,
                      bool codes) {
  int64_t oh = h / 2, ow = w / 2, n = oh * ow;
  float *v = malloc((size_t)(h * w) * sizeof(float));
  float *want = malloc((size_t)n * sizeof(float));
  float *got = malloc((size_t)(n + 1) * sizeof(float));
  uint8_t *want_code = malloc((size_t)n), *got_code = malloc((size_t)n + 1);
  assert_true(v && want && got && want_code && got_code);
  for (int64_t i = 0; i < h * w; i++)
    v[i] = pre_reference(pre, x[i]);
  nnlib__pool2d_force_plain_rows(true);
  nnlib__pool2x2_rows(pool, v, w, oh, want, want_code, ow);
  nnlib__pool2d_force_plain_rows(mode == PLAIN_ROWS);
  nnlib__pool2d_force_avx2_rows(mode == AVX2_ROWS);
  memset(got, 0x5a, (size_t)(n + 1) * sizeof(float));
  memset(got_code, 0x5a, (size_t)n + 1);
  nnlib__pool2x2_rows_pre(pool, x, w, oh, pre, got, codes ? got_code : NULL,
                          ow);
  nnlib__pool2d_force_plain_rows(false);
  nnlib__pool2d_force_avx2_rows(false);
  expect_bits("pre", "y", got, want, n);
  if (codes) {
    assert_memory_equal(got_code, want_code, (size_t)n);
    assert_int_equal(got_code[n], 0x5a);
  }
  uint32_t past;
  memcpy(&past, &got[n], sizeof past);
  assert_int_equal(past, 0x5a5a5a5au);
  free(v);
  free(want);
  free(got);
  free(want_code);
  free(got_code);
}

/* nnlib__pool2x2_rows_pre in every way the rows run. The pres: a
 * batchnorm's, a bias (x + b), an infinite scale (0 inf is NaN: NaNs made
 * by pre itself), a -0 shift (-0 + -0 under the ReLU must give +0),
 * values that round; widths of one window, ragged vectors, rows of up
 * to 8 windows (two a vector, an odd count of them) and more windows than
 * the plain rows' block holds (256). */
static void pre_matches_values_then_select(void **state) {
  (void)state;
  static const nnlib__pool2x2_pre pres[] = {
      {0.5f, 2.0f, -1.0f, true},  {0.0f, 1.0f, 0.25f, false},
      {0.0f, 1.0f, -0.75f, true}, {1.0f, INFINITY, 0.0f, true},
      {0.0f, 1.0f, -0.0f, true},  {-0.0f, 1.0f, -0.0f, true},
      {2.0f, -3.0f, 0.5f, false}, {0.1f, 1.7f, -0.3f, true}};
  static const int64_t sizes[][2] = {{2, 2},   {3, 5},  {4, 28},
                                     {2, 33},  {6, 40}, {3, 1030},
                                     {14, 14}, {5, 16}, {6, 15}};
  nnlib_layer *pools[2] = {NULL, NULL};
  ASSERT_OK(nnlib_pool2d_create(&pools[0], NNLIB_LAYER_MAXPOOL2D, 2, 2, NULL));
  ASSERT_OK(nnlib_pool2d_create(&pools[1], NNLIB_LAYER_MINPOOL2D, 2, 2, NULL));
  uint32_t seed = 5u;
  for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
    int64_t h = sizes[z][0], w = sizes[z][1];
    float *x = malloc((size_t)(h * w) * sizeof(float));
    float *x_copy = malloc((size_t)(h * w) * sizeof(float));
    assert_true(x != NULL && x_copy != NULL);
    fill_pre_input(x, h * w, &seed);
    memcpy(x_copy, x, (size_t)(h * w) * sizeof(float));
    for (size_t k = 0; k < sizeof pres / sizeof pres[0]; k++)
      for (int pool = 0; pool < 2; pool++)
        for (int mode = NATIVE_ROWS; mode <= AVX2_ROWS; mode++) {
          check_pre(pools[pool], &pres[k], x, h, w, (rows_mode)mode, true);
          check_pre(pools[pool], &pres[k], x, h, w, (rows_mode)mode, false);
        }
    assert_memory_equal(x, x_copy, (size_t)(h * w) * sizeof(float));
    free(x);
    free(x_copy);
  }
  nnlib_layer_free(pools[0]);
  nnlib_layer_free(pools[1]);
}

/* A NaN term (a batchnorm's statistics over a channel holding a NaN)
 * makes every value NaN: each window's output is NaN, its code the top
 * left (its first). Which NaN is unspecified (layer.h). */
static void pre_nan_terms_give_nan(void **state) {
  (void)state;
  const nnlib__pool2x2_pre pres[] = {{NAN, 1.0f, 0.0f, true},
                                     {0.0f, NAN, 0.0f, false},
                                     {0.0f, 1.0f, NAN, true}};
  nnlib_layer *pool = NULL;
  ASSERT_OK(nnlib_pool2d_create(&pool, NNLIB_LAYER_MAXPOOL2D, 2, 2, NULL));
  float x[4 * 36];
  uint32_t seed = 9u;
  fill_pre_input(x, 4 * 36, &seed);
  for (size_t k = 0; k < sizeof pres / sizeof pres[0]; k++)
    for (int mode = NATIVE_ROWS; mode <= AVX2_ROWS; mode++) {
      float y[2 * 18];
      uint8_t codes[2 * 18];
      nnlib__pool2d_force_plain_rows(mode == PLAIN_ROWS);
      nnlib__pool2d_force_avx2_rows(mode == AVX2_ROWS);
      nnlib__pool2x2_rows_pre(pool, x, 36, 2, &pres[k], y, codes, 18);
      nnlib__pool2d_force_plain_rows(false);
      nnlib__pool2d_force_avx2_rows(false);
      for (int i = 0; i < 2 * 18; i++) {
        assert_true(y[i] != y[i]);
        assert_int_equal(codes[i], 0);
      }
    }
  nnlib_layer_free(pool);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(select_matches_naive),
      cmocka_unit_test(pre_matches_values_then_select),
      cmocka_unit_test(pre_nan_terms_give_nan),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
