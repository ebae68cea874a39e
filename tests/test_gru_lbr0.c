/* The GRU of linear_before_reset 0 (ONNX's default form, the description
 * option "lbr0"), where the reset gate multiplies h before W_hn:
 *
 *   n = tanh(W_in x + b_in + W_hn (r h) + b_hn)
 *
 * - predictions equal a naive double-precision loop of that formula (with
 *   and without bias, whole sequence and last step, from zeros and from an
 *   initial state, batches of 1 and 3, shorter sequences than compiled);
 * - gradient checks through time (sequence with a state, last step, two
 *   stacked layers) within 1e-3, as test_rnn.c's for the other cells;
 * - the fused plain-SGD step equals the optimizer's update;
 * - the description item prints back as "gru:H[:nobias]:lbr0" and parses
 *   to the same layer; the model file keeps the form (4 more config bytes
 *   than PyTorch's form, whose files are unchanged), and a config whose
 *   extra field is not 0 is NNLIB_ERR_CORRUPT_FILE.
 * ONNX's own data for this form is checked by onnx_conformance
 * (test_gru_*). */
#include "file_parts.h"
#include "test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ helpers */

static nnlib_model *spec_model(const char *spec, int64_t steps, int64_t f,
                               int64_t max_batch, nnlib_loss loss,
                               nnlib_optimizer *opt, uint64_t seed) {
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, spec));
  int64_t in[2] = {steps, f};
  ASSERT_OK(nnlib_model_compile(m, in, 2, max_batch, loss, opt, seed));
  return m;
}

static nnlib_tensor *random3(int64_t a, int64_t b, int64_t c, float lo,
                             float hi, uint32_t seed) {
  nnlib_tensor *t = NULL;
  int64_t shape[3] = {a, b, c};
  ASSERT_OK(nnlib_tensor_create(&t, shape, 3));
  ts_fill_uniform(nnlib_tensor_get_data(t), a * b * c, lo, hi, &seed);
  return t;
}

static const float *param(nnlib_layer *l, size_t i) {
  nnlib_tensor *v = NULL;
  ASSERT_OK(nnlib_layer_get_param(l, i, &v, NULL));
  return nnlib_tensor_get_data(v);
}

static double sigmoid(double v) { return 1.0 / (1.0 + exp(-v)); }

/* The reference: ONNX's GRU with linear_before_reset 0 in nnlib's gate
 * order r, z, n, double precision, one sample x [T, F] from h0 [H] (NULL:
 * zeros); every h_t into out [T, H]. */
static void reference(nnlib_layer *l, int64_t steps, int64_t f, int64_t h,
                      bool bias, const float *x, const float *h0,
                      double *out) {
  const float *wi = param(l, 0), *wh = param(l, 1);
  const float *bi = bias ? param(l, 2) : NULL, *bh = bias ? param(l, 3) : NULL;
  double *hp = calloc((size_t)h, sizeof *hp), *rh = calloc((size_t)h, 8);
  double *r = calloc((size_t)h, 8), *z = calloc((size_t)h, 8);
  for (int64_t j = 0; j < h; j++)
    hp[j] = h0 != NULL ? h0[j] : 0.0;
  for (int64_t t = 0; t < steps; t++) {
    const float *xt = x + t * f;
    for (int64_t j = 0; j < h; j++) {
      double a[2];
      for (int g = 0; g < 2; g++) {
        int64_t row = g * h + j;
        a[g] = bias ? (double)bi[row] + bh[row] : 0.0;
        for (int64_t k = 0; k < f; k++)
          a[g] += (double)wi[row * f + k] * xt[k];
        for (int64_t k = 0; k < h; k++)
          a[g] += (double)wh[row * h + k] * hp[k];
      }
      r[j] = sigmoid(a[0]);
      z[j] = sigmoid(a[1]);
      rh[j] = r[j] * hp[j];
    }
    for (int64_t j = 0; j < h; j++) {
      int64_t row = 2 * h + j;
      double a = bias ? (double)bi[row] + bh[row] : 0.0;
      for (int64_t k = 0; k < f; k++)
        a += (double)wi[row * f + k] * xt[k];
      for (int64_t k = 0; k < h; k++)
        a += (double)wh[row * h + k] * rh[k];
      out[t * h + j] = (1.0 - z[j]) * tanh(a) + z[j] * hp[j];
    }
    for (int64_t j = 0; j < h; j++)
      hp[j] = out[t * h + j];
  }
  free(hp);
  free(rh);
  free(r);
  free(z);
}

/* ------------------------------------------------------- predictions */

/* One layer "gru:H[:nobias]:lbr0[,last]" compiled for T = 5, run at
 * `steps` <= 5, against the reference. */
static double predict_error(bool bias, bool sequences, int64_t n,
                            int64_t steps, bool state) {
  const int64_t f = 3, h = 4, planned = 5;
  char spec[64];
  snprintf(spec, sizeof spec, "gru:4%s:lbr0%s", bias ? "" : ":nobias",
           sequences ? "" : ",last");
  nnlib_model *m = spec_model(spec, planned, f, 3, NNLIB_LOSS_NONE, NULL, 7);
  nnlib_layer *l = nnlib_model_get_layer(m, 0);
  float h0[3 * 4];
  uint32_t seed = 17;
  ts_fill_uniform(h0, n * h, -0.9f, 0.9f, &seed);
  if (state)
    ASSERT_OK(nnlib_recurrent_set_initial_state(l, h0, NULL, n));
  nnlib_tensor *x = random3(n, steps, f, -1.5f, 1.5f, 23);
  int64_t per = sequences ? steps * h : h;
  nnlib_tensor *y = NULL;
  ASSERT_OK(nnlib_tensor_create(&y, (int64_t[]){n, per}, 2));
  ASSERT_OK(nnlib_model_predict(m, x, y));
  double *want = malloc((size_t)(steps * h) * sizeof *want), worst = 0.0;
  for (int64_t s = 0; s < n; s++) {
    reference(l, steps, f, h, bias, nnlib_tensor_get_data(x) + s * steps * f,
              state ? h0 + s * h : NULL, want);
    const double *w = sequences ? want : want + (steps - 1) * h;
    for (int64_t k = 0; k < per; k++) {
      double e = fabs(nnlib_tensor_get_data(y)[s * per + k] - w[k]);
      worst = e > worst ? e : worst;
    }
  }
  free(want);
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  nnlib_model_free(m);
  return worst;
}

static void test_predictions_match_reference(void **s) {
  (void)s;
  double worst = 0.0;
  for (int bias = 0; bias < 2; bias++)
    for (int seq = 0; seq < 2; seq++)
      for (int state = 0; state < 2; state++)
        for (int64_t n = 1; n <= 3; n += 2)
          for (int64_t steps = 1; steps <= 5; steps += 2) {
            double e = predict_error(bias, seq, n, steps, state);
            if (!(e <= 2e-6))
              fail_msg("bias %d sequences %d state %d N %lld T %lld: error "
                       "%.3g",
                       bias, seq, state, (long long)n, (long long)steps, e);
            worst = e > worst ? e : worst;
          }
  print_message("  worst |nnlib - double reference|: %.2g\n", worst);
}

/* PyTorch's form and this one differ once h is not zero (T > 1), so the
 * option reaches the layer. */
static void test_differs_from_pytorch_form(void **s) {
  (void)s;
  nnlib_model *a = spec_model("gru:4", 3, 2, 1, NNLIB_LOSS_NONE, NULL, 5);
  nnlib_model *b = spec_model("gru:4:lbr0", 3, 2, 1, NNLIB_LOSS_NONE, NULL, 5);
  nnlib_tensor *x = random3(1, 3, 2, -1.0f, 1.0f, 9);
  nnlib_tensor *ya = ts_tensor2(1, 12, NULL), *yb = ts_tensor2(1, 12, NULL);
  ASSERT_OK(nnlib_model_predict(a, x, ya));
  ASSERT_OK(nnlib_model_predict(b, x, yb));
  /* step 0 from h = 0: r h = 0 and r (W_hn 0 + b_hn) = r b_hn differ only
   * by the bias term, so compare the last step */
  double diff = 0.0;
  for (int k = 8; k < 12; k++)
    diff += fabs(nnlib_tensor_get_data(ya)[k] - nnlib_tensor_get_data(yb)[k]);
  assert_true(diff > 1e-3);
  nnlib_tensor_free(x);
  nnlib_tensor_free(ya);
  nnlib_tensor_free(yb);
  nnlib_model_free(a);
  nnlib_model_free(b);
}

/* --------------------------------------------------- gradient checks */

static double gradcheck(nnlib_model *m, const nnlib_tensor *x,
                        const nnlib_tensor *t) {
  nnlib_gradcheck_options o;
  ASSERT_OK(nnlib_gradcheck_options_init(&o));
  o.step = 1e-2f;
  double err = -1.0;
  ASSERT_OK(nnlib_model_gradcheck(m, x, t, &o, &err));
  return err;
}

static void set_state(nnlib_model *m, size_t layer, int64_t rows, int64_t h,
                      uint32_t seed) {
  float v[3 * 4];
  ts_fill_uniform(v, rows * h, -0.8f, 0.8f, &seed);
  ASSERT_OK(nnlib_recurrent_set_initial_state(nnlib_model_get_layer(m, layer),
                                              v, NULL, rows));
}

static double check(int kind, int64_t steps, int64_t n) {
  static const char *const specs[3] = {
      "gru:4:lbr0", "gru:4:nobias:lbr0,last,dense:2",
      "gru:4:lbr0,gru:3:nobias:lbr0"};
  nnlib_loss loss = kind == 1 ? NNLIB_LOSS_SOFTMAX_CE : NNLIB_LOSS_MSE;
  nnlib_model *m = spec_model(specs[kind], steps, 3, n, loss, NULL, 11);
  if (kind != 1)
    set_state(m, 0, n, 4, 5);
  if (kind == 2)
    set_state(m, 1, n, 3, 6);
  nnlib_tensor *x = random3(n, steps, 3, -1.5f, 1.5f, 21);
  nnlib_tensor *t = kind == 1 ? ts_tensor2(n, 1, NULL)
                              : random3(n, steps, kind == 2 ? 3 : 4, -0.9f,
                                        0.9f, 22);
  if (kind == 1)
    for (int64_t i = 0; i < n; i++)
      nnlib_tensor_get_data(t)[i] = (float)(i % 2);
  double err = gradcheck(m, x, t);
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
  nnlib_model_free(m);
  return err;
}

static void test_gradcheck_through_time(void **s) {
  (void)s;
  const int64_t steps[3] = {1, 2, 5}, batches[2] = {1, 3};
  static const char *const names[3] = {"sequence", "last", "stacked"};
  for (int kind = 0; kind < 3; kind++) {
    double worst = 0.0;
    for (int i = 0; i < 3; i++)
      for (int j = 0; j < 2; j++) {
        double e = check(kind, steps[i], batches[j]);
        if (!(e <= 1e-3))
          fail_msg("%s T=%lld N=%lld: gradcheck error %.3g exceeds 1e-3",
                   names[kind], (long long)steps[i], (long long)batches[j], e);
        worst = e > worst ? e : worst;
      }
    print_message("  gru lbr0 %-8s T=1,2,5 N=1,3 worst: %.1e\n", names[kind],
                  worst);
  }
}

/* Plain SGD folded into backward (the weight GEMMs, W_hn's over r h among
 * them, update in place) against the optimizer's update: the numerics
 * check turns the folding off. */
static void test_fused_sgd_matches_plain_update(void **s) {
  (void)s;
  nnlib_model *m[2];
  for (int i = 0; i < 2; i++) {
    nnlib_optimizer *o = NULL;
    ASSERT_OK(nnlib_sgd_create(&o, 0.5f, 0, 0, 0));
    m[i] = spec_model("gru:5:lbr0,gru:4:nobias:lbr0,last,dense:3", 6, 3, 4,
                      NNLIB_LOSS_SOFTMAX_CE, o, 77);
  }
  ASSERT_OK(nnlib_model_set_check_numerics(m[1], 1));
  nnlib_tensor *x = random3(4, 6, 3, -1.0f, 1.0f, 3);
  nnlib_tensor *t = ts_tensor2(4, 1, (const float[]){0, 2, 1, 2});
  for (int step = 0; step < 3; step++)
    for (int i = 0; i < 2; i++)
      ASSERT_OK(nnlib_model_step(m[i], x, t, NULL));
  ts_assert_params_near(m[0], m[1], 3, 1e-5);
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
  nnlib_model_free(m[0]);
  nnlib_model_free(m[1]);
}

/* ------------------------------------------ description and model file */

static void test_description_round_trip(void **s) {
  (void)s;
  static const char *const items[][2] = {
      {"gru:4:lbr0", "gru:4:lbr0"},
      {"gru:4:lbr0:nobias", "gru:4:nobias:lbr0"},
      {"gru:4:nobias:lbr0,last", "gru:4:nobias:lbr0,last"},
      {"gru:4", "gru:4"}};
  for (size_t k = 0; k < 4; k++) {
    nnlib_model *m = spec_model(items[k][0], 3, 2, 1, NNLIB_LOSS_NONE, NULL, 1);
    char text[256];
    ASSERT_OK(nnlib_model_get_spec(m, text, sizeof text, NULL));
    if (strstr(text, items[k][1]) == NULL)
      fail_msg("'%s' printed as '%s'", items[k][0], text);
    nnlib_model *again = NULL;
    ASSERT_OK(nnlib_model_create(&again));
    ASSERT_OK(nnlib_model_add_spec(again, text));
    int64_t in[2] = {3, 2};
    ASSERT_OK(nnlib_model_compile(again, in, 2, 1, NNLIB_LOSS_NONE, NULL, 1));
    char text2[256];
    ASSERT_OK(nnlib_model_get_spec(again, text2, sizeof text2, NULL));
    assert_string_equal(text, text2);
    nnlib_model_free(again);
    nnlib_model_free(m);
  }
}

static unsigned char *saved(nnlib_model *m, size_t *size) {
  void *data = NULL;
  ASSERT_OK(nnlib_model_save_to_buffer(&data, size, m, 0));
  unsigned char *copy = malloc(*size);
  memcpy(copy, data, *size);
  nnlib_free(data);
  return copy;
}

static void test_model_file(void **s) {
  (void)s;
  nnlib_model *m = spec_model("gru:4:lbr0,last", 3, 2, 2, NNLIB_LOSS_NONE,
                              NULL, 3);
  nnlib_model *plain = spec_model("gru:4,last", 3, 2, 2, NNLIB_LOSS_NONE,
                                  NULL, 3);
  size_t size = 0, plain_size = 0;
  unsigned char *file = saved(m, &size);
  free(saved(plain, &plain_size));
  assert_int_equal(size, plain_size + 4); /* the one u32 field */
  nnlib_model *back = NULL;
  ASSERT_OK(nnlib_model_load_buffer(&back, file, size));
  char a[128], b[128];
  ASSERT_OK(nnlib_model_get_spec(m, a, sizeof a, NULL));
  ASSERT_OK(nnlib_model_get_spec(back, b, sizeof b, NULL));
  assert_string_equal(a, b);
  nnlib_tensor *x = random3(2, 3, 2, -1.0f, 1.0f, 4);
  nnlib_tensor *ya = ts_tensor2(2, 4, NULL), *yb = ts_tensor2(2, 4, NULL);
  ASSERT_OK(nnlib_model_predict(m, x, ya));
  ASSERT_OK(nnlib_model_predict(back, x, yb));
  assert_memory_equal(nnlib_tensor_get_data(ya), nnlib_tensor_get_data(yb),
                      8 * sizeof(float));
  /* the field set to 1 (never written: PyTorch's form has no field) */
  ts_file_parts parts;
  ts_split_file(file, size, &parts);
  bool edited = false;
  for (size_t k = 0; k < parts.count; k++) {
    if (memcmp(parts.tag[k], "ARCH", 4) != 0)
      continue;
    for (size_t o = 0; o + 8 + 28 <= parts.length[k] && !edited; o++)
      if (ts_rd32(parts.payload[k] + o) == 13 &&
          ts_rd32(parts.payload[k] + o + 4) == 28) {
        ts_wr32(parts.payload[k] + o + 8 + 24, 1);
        edited = true;
      }
  }
  assert_true(edited);
  size_t bad_size = 0;
  unsigned char *bad = ts_join_file(&parts, &bad_size);
  nnlib_model *refused = NULL;
  ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE,
                nnlib_model_load_buffer(&refused, bad, bad_size));
  ts_expect_message("gru: linear_before_reset 1");
  assert_null(refused);
  free(bad);
  ts_free_parts(&parts);
  nnlib_tensor_free(x);
  nnlib_tensor_free(ya);
  nnlib_tensor_free(yb);
  free(file);
  nnlib_model_free(back);
  nnlib_model_free(plain);
  nnlib_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_predictions_match_reference),
      cmocka_unit_test(test_differs_from_pytorch_form),
      cmocka_unit_test(test_gradcheck_through_time),
      cmocka_unit_test(test_fused_sgd_matches_plain_update),
      cmocka_unit_test(test_description_round_trip),
      cmocka_unit_test(test_model_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
