/* A ReLU that alone reads a batchnorm runs inside the batchnorm's passes
 * (compile.c fuse_pairs): the model "batchnorm,relu" must give the bits
 * of a batchnorm by itself followed by the ReLU written out here, y =
 * v <= 0 ? 0 : v and dz = y > 0 ? dy : 0 (PyTorch's ReLU: NaN passes
 * forward, the gradient at 0 is 0), in training (output, input gradient,
 * gamma and beta gradients, running statistics) and in predictions. Many
 * inputs are exact zeros after normalisation (a constant plane gives 0
 * everywhere), so the boundary of the ReLU is crossed on purpose. */
#include "test_support.h"

#include <stdlib.h>
#include <string.h>

enum { BATCH = 6, C = 5, H = 7, W = 9 };
#define SIZE ((int64_t)C * H * W)

static nnlib_model *model_of(const char *spec) {
  int64_t shape[3] = {C, H, W};
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, spec));
  ASSERT_OK(nnlib_model_compile(m, shape, 3, BATCH, NNLIB_LOSS_NONE, NULL, 3));
  ASSERT_OK(nnlib_model_set_input_gradients(m, 1));
  return m;
}

/* gamma and beta away from 1 and 0, so that sign changes are not only
 * the input's */
static void set_affine(nnlib_model *m) {
  nnlib_tensor *gamma, *beta;
  nnlib_layer *bn = nnlib_model_get_layer(m, 0);
  ASSERT_OK(nnlib_layer_get_param(bn, 0, &gamma, NULL));
  ASSERT_OK(nnlib_layer_get_param(bn, 1, &beta, NULL));
  for (int64_t c = 0; c < C; c++) {
    nnlib_tensor_get_data(gamma)[c] = 0.5f + 0.25f * (float)c;
    nnlib_tensor_get_data(beta)[c] = 0.3f * (float)(c - 2);
  }
}

static void expect_bits(const char *what, const float *got, const float *want,
                        int64_t n) {
  for (int64_t i = 0; i < n; i++)
    if (memcmp(&got[i], &want[i], sizeof(float)) != 0)
      fail_msg("%s: element %lld is %.9g, expected %.9g", what, (long long)i,
               (double)got[i], (double)want[i]);
}

static const float *data_of(const nnlib_tensor *t) {
  return nnlib_tensor_get_data_const(t);
}

static void relu(float *v, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    v[i] = v[i] <= 0.0f ? 0.0f : v[i];
}

static void fused_matches_written_out(void **state) {
  (void)state;
  nnlib_model *fused = model_of("batchnorm,relu");
  nnlib_model *plain = model_of("batchnorm");
  set_affine(fused);
  set_affine(plain);
  nnlib_tensor *x = ts_tensor2(BATCH, SIZE, NULL);
  nnlib_tensor *g = ts_tensor2(BATCH, SIZE, NULL);
  nnlib_tensor *dz = ts_tensor2(BATCH, SIZE, NULL);
  uint32_t seed = 9;
  float *xv = nnlib_tensor_get_data(x);
  ts_fill_uniform(xv, BATCH * SIZE, -2, 3, &seed);
  for (int64_t s = 0; s < BATCH; s++) /* channel 1: a constant plane */
    for (int64_t q = 0; q < H * W; q++)
      xv[s * SIZE + H * W + q] = 1.5f;
  ts_fill_uniform(nnlib_tensor_get_data(g), BATCH * SIZE, -1, 1, &seed);

  const nnlib_tensor *yf, *yp, *dxf, *dxp;
  ASSERT_OK(nnlib_model_forward(fused, x, &yf));
  ASSERT_OK(nnlib_model_forward(plain, x, &yp));
  float *want = malloc((size_t)(BATCH * SIZE) * sizeof(float));
  memcpy(want, data_of(yp), (size_t)(BATCH * SIZE) * sizeof(float));
  relu(want, BATCH * SIZE);
  expect_bits("training output", data_of(yf), want, BATCH * SIZE);

  float *d = nnlib_tensor_get_data(dz);
  for (int64_t i = 0; i < BATCH * SIZE; i++)
    d[i] = want[i] > 0.0f ? nnlib_tensor_get_data(g)[i] : 0.0f;
  ASSERT_OK(nnlib_model_backward_output(fused, g));
  ASSERT_OK(nnlib_model_backward_output(plain, dz));
  ASSERT_OK(nnlib_model_get_input_gradient(fused, 0, &dxf));
  ASSERT_OK(nnlib_model_get_input_gradient(plain, 0, &dxp));
  expect_bits("input gradient", data_of(dxf), data_of(dxp), BATCH * SIZE);
  float *pf, *gf, *pp, *gp;
  int64_t nf, np;
  ASSERT_OK(nnlib_model_get_flat_params(fused, &pf, &gf, &nf));
  ASSERT_OK(nnlib_model_get_flat_params(plain, &pp, &gp, &np));
  assert_int_equal(nf, np);
  expect_bits("gamma and beta gradients", gf, gp, nf);
  for (size_t b = 0; b < 2; b++) {
    nnlib_tensor *rf, *rp;
    ASSERT_OK(nnlib_layer_get_buffer(nnlib_model_get_layer(fused, 0), b, &rf));
    ASSERT_OK(nnlib_layer_get_buffer(nnlib_model_get_layer(plain, 0), b, &rp));
    expect_bits("running statistics", data_of(rf), data_of(rp), C);
  }

  nnlib_tensor *pred_f = ts_tensor2(BATCH, SIZE, NULL);
  nnlib_tensor *pred_p = ts_tensor2(BATCH, SIZE, NULL);
  ASSERT_OK(nnlib_model_predict(fused, x, pred_f));
  ASSERT_OK(nnlib_model_predict(plain, x, pred_p));
  relu(nnlib_tensor_get_data(pred_p), BATCH * SIZE);
  expect_bits("prediction", nnlib_tensor_get_data(pred_f),
              nnlib_tensor_get_data(pred_p), BATCH * SIZE);

  free(want);
  nnlib_tensor_free(x);
  nnlib_tensor_free(g);
  nnlib_tensor_free(dz);
  nnlib_tensor_free(pred_f);
  nnlib_tensor_free(pred_p);
  nnlib_model_free(fused);
  nnlib_model_free(plain);
}

/* The profile says the ReLU ran inside the batchnorm. */
static void relu_reported_fused(void **state) {
  (void)state;
  nnlib_model *m = model_of("batchnorm,relu");
  nnlib_layer_profile p;
  memset(&p, 0, sizeof p);
  p.struct_size = sizeof p;
  ASSERT_OK(nnlib_model_get_layer_profile(m, 1, &p));
  assert_int_equal(p.fused, 1);
  ASSERT_OK(nnlib_model_get_layer_profile(m, 0, &p));
  assert_int_equal(p.fused, 0);
  nnlib_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(fused_matches_written_out),
      cmocka_unit_test(relu_reported_fused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
