/* A 2x2 pool at stride 2 that alone reads a convolution's fold group
 * (conv2d, then a batchnorm and an activation, either optional) is folded
 * into the convolution's output pass in predictions (compile.c
 * fold_into_convolutions, conv2d.c pooled_channels): the prediction must
 * be the bits of the same model without the pool, pooled by the loop
 * written out here (the first best of each window in row-major order
 * under strict comparison, or its first NaN). Covered: odd output sizes
 * (the last row and column in no window), rows longer than the stack
 * piece of the output pass, one-sample chunks (whose GEMM otherwise
 * writes y itself), an activation other than ReLU, a convolution without
 * batchnorm or activation, and pools that must not fold (padding, ceil
 * mode). Both the AVX-512 rows and the plain ones. */
#include "nnlib_internal.h"
#include "test_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fold_case {
  const char *group, *pool; /* the model is group,pool */
  int64_t c, h, w, batch;
  bool folds;
} fold_case;

static nnlib_model *model_of(const char *spec, const int64_t *shape,
                             int64_t batch) {
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, spec));
  ASSERT_OK(nnlib_model_compile(m, shape, 3, batch, NNLIB_LOSS_NONE, NULL, 5));
  return m;
}

/* Running statistics and an affine map away from the identity, the same
 * in both models (layer 1 when it is a batchnorm). */
static void set_statistics(nnlib_model *m) {
  nnlib_layer *bn = nnlib_model_get_layer(m, 1);
  if (nnlib_layer_get_kind(bn) != NNLIB_LAYER_BATCHNORM)
    return;
  for (size_t i = 0; i < 2; i++) {
    nnlib_tensor *param, *buffer;
    ASSERT_OK(nnlib_layer_get_param(bn, i, &param, NULL));
    ASSERT_OK(nnlib_layer_get_buffer(bn, i, &buffer));
    for (int64_t c = 0; c < nnlib_tensor_get_size(param); c++) {
      nnlib_tensor_get_data(param)[c] = i == 0 ? 0.7f + 0.1f * (float)c
                                               : 0.05f * (float)(c % 3 - 1);
      nnlib_tensor_get_data(buffer)[c] = i == 0 ? 0.1f * (float)(c % 4)
                                                : 0.5f + 0.2f * (float)c;
    }
  }
}

/* y = pool(v) over planes of h x w, floor sizes */
static void pool_written_out(bool max, const float *v, float *y,
                             int64_t planes, int64_t h, int64_t w) {
  int64_t ph = h / 2, pw = w / 2;
  for (int64_t q = 0; q < planes; q++)
    for (int64_t i = 0; i < ph; i++)
      for (int64_t j = 0; j < pw; j++) {
        const float *plane = v + q * h * w;
        const float cand[4] = {plane[2 * i * w + 2 * j],
                               plane[2 * i * w + 2 * j + 1],
                               plane[(2 * i + 1) * w + 2 * j],
                               plane[(2 * i + 1) * w + 2 * j + 1]};
        float best = cand[0];
        for (int k = 1; k < 4; k++)
          if (max ? cand[k] > best : cand[k] < best)
            best = cand[k];
        for (int k = 0; k < 4; k++)
          if (cand[k] != cand[k]) {
            best = cand[k];
            break;
          }
        y[(q * ph + i) * pw + j] = best;
      }
}

/* which rows the 2x2 pools run: the CPU's own, or forced */
typedef enum { NATIVE_ROWS, PLAIN_ROWS, AVX2_ROWS } rows_mode;
static const char *const ROWS_NAME[] = {"the CPU's", "plain", "AVX2"};

static void check_case(const fold_case *fc, rows_mode mode) {
  nnlib__pool2d_force_plain_rows(mode == PLAIN_ROWS);
  nnlib__pool2d_force_avx2_rows(mode == AVX2_ROWS);
  char spec[200];
  snprintf(spec, sizeof spec, "%s,%s", fc->group, fc->pool);
  int64_t shape[3] = {fc->c, fc->h, fc->w};
  nnlib_model *pooled = model_of(spec, shape, fc->batch);
  nnlib_model *group = model_of(fc->group, shape, fc->batch);
  assert_true((pooled->layers[0]->folded_pool != NULL) == fc->folds);
  if (!fc->folds) { /* a pool that runs by itself: test_internal_pool_select */
    nnlib_model_free(pooled);
    nnlib_model_free(group);
    return;
  }
  set_statistics(pooled);
  set_statistics(group);
  const nnlib__shape *gs = &group->nodes[group->output].shape;
  int64_t co = gs->dims[0], gh = gs->dims[1], gw = gs->dims[2];
  int64_t in = fc->c * fc->h * fc->w, mid = co * gh * gw;
  int64_t out = pooled->output_size;
  assert_int_equal(out, co * (gh / 2) * (gw / 2));
  nnlib_tensor *x = ts_tensor2(fc->batch, in, NULL);
  nnlib_tensor *ym = ts_tensor2(fc->batch, mid, NULL);
  nnlib_tensor *yp = ts_tensor2(fc->batch, out, NULL);
  uint32_t seed = 4;
  ts_fill_uniform(nnlib_tensor_get_data(x), fc->batch * in, -1, 1, &seed);
  nnlib_tensor_get_data(x)[3] = 0.0f / 0.0f; /* a NaN reaches a window */
  ASSERT_OK(nnlib_model_predict(group, x, ym));
  ASSERT_OK(nnlib_model_predict(pooled, x, yp));
  float *want = malloc((size_t)(fc->batch * out) * sizeof(float));
  bool max = strncmp(fc->pool, "max", 3) == 0;
  pool_written_out(max, nnlib_tensor_get_data(ym), want, fc->batch * co, gh,
                   gw);
  const float *got = nnlib_tensor_get_data(yp);
  for (int64_t i = 0; i < fc->batch * out; i++)
    if (memcmp(&got[i], &want[i], sizeof(float)) != 0)
      fail_msg("%s (%s rows): element %lld is %.9g, expected %.9g", spec,
               ROWS_NAME[mode], (long long)i, (double)got[i], (double)want[i]);
  free(want);
  nnlib_tensor_free(x);
  nnlib_tensor_free(ym);
  nnlib_tensor_free(yp);
  nnlib_model_free(pooled);
  nnlib_model_free(group);
  nnlib__pool2d_force_plain_rows(false);
  nnlib__pool2d_force_avx2_rows(false);
}

static const fold_case cases[] = {
    {"conv:6x3x3:p1,batchnorm,relu", "maxpool:2", 2, 9, 11, 5, true},
    /* Z of one sample is 256 KB: predictions lower one sample at a time */
    {"conv:16x3x3:p1,batchnorm,relu", "maxpool:2", 1, 64, 64, 3, true},
    {"conv:4x3x3:p1,batchnorm,relu", "maxpool:2", 1, 4, 262, 2, true},
    {"conv:4x3x3,sigmoid", "minpool:2", 3, 8, 8, 4, true},
    {"conv:4x3x3:p1:nobias", "maxpool:2", 2, 6, 7, 4, true},
    {"conv:4x3x3:p1,relu", "maxpool:2:p1", 2, 6, 6, 4, false},
    {"conv:4x3x3:p1,relu", "maxpool:2:ceil", 2, 7, 7, 4, false},
};

static void folded_pool_matches_pooled_group(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    check_case(&cases[i], NATIVE_ROWS);
    check_case(&cases[i], PLAIN_ROWS);
    check_case(&cases[i], AVX2_ROWS); /* plain again without AVX2 */
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(folded_pool_matches_pooled_group),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
