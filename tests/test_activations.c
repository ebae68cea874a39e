/* Every activation against its closed form (computed here in double),
 * including the extremes where naive formulas overflow. */
#include "test_support.h"

#include <float.h>
#include <math.h>
#include <string.h>

static const float inputs[] = {-100.0f, -20.5f, -3.0f, -0.5f, 0.0f,
                               0.25f,   2.0f,   19.0f, 21.0f, 100.0f};
enum { K = sizeof inputs / sizeof inputs[0] };

static double ref(nnlib_activation kind, double x, double slope) {
  switch (kind) {
  case NNLIB_ACT_IDENTITY: return x;
  case NNLIB_ACT_STEP: return x > 0 ? 1.0 : 0.0;
  case NNLIB_ACT_SIGMOID: return 1.0 / (1.0 + exp(-x));
  case NNLIB_ACT_TANH: return tanh(x);
  case NNLIB_ACT_RELU: return x > 0 ? x : 0.0;
  case NNLIB_ACT_LEAKY_RELU: return x > 0 ? x : slope * x;
  case NNLIB_ACT_SOFTPLUS: return x > 20 ? x : log1p(exp(x));
  default: return NAN;
  }
}

/* Runs `kind` over the inputs through a one-layer model. */
static void run(nnlib_activation kind, float param, const float *x, float *y,
                int64_t k) {
  nnlib_model *m = ts_model(k, 1, NNLIB_LOSS_NONE, NULL, 1,
                            ts_act(kind, param), NULL);
  nnlib_tensor *X = ts_tensor2(1, k, x), *Y = ts_tensor2(1, k, NULL);
  ASSERT_OK(nnlib_model_predict(m, X, Y));
  for (int64_t i = 0; i < k; i++)
    y[i] = nnlib_tensor_get_data(Y)[i];
  nnlib_tensor_free(X);
  nnlib_tensor_free(Y);
  nnlib_model_free(m);
}

static void check_elementwise(nnlib_activation kind, float param) {
  float y[K];
  run(kind, param, inputs, y, K);
  for (int i = 0; i < K; i++) {
    double want = ref(kind, inputs[i], param);
    assert_true(isfinite(y[i]));
    /* float32 evaluation: a few ulps relative, or absolute near zero */
    ASSERT_NEAR(y[i], want, 1e-6 + 4e-7 * fabs(want));
  }
}

static void test_identity(void **s) { (void)s; check_elementwise(NNLIB_ACT_IDENTITY, 0); }
static void test_step(void **s) { (void)s; check_elementwise(NNLIB_ACT_STEP, 0); }
static void test_sigmoid(void **s) { (void)s; check_elementwise(NNLIB_ACT_SIGMOID, 0); }
static void test_tanh(void **s) { (void)s; check_elementwise(NNLIB_ACT_TANH, 0); }
static void test_relu(void **s) { (void)s; check_elementwise(NNLIB_ACT_RELU, 0); }
static void test_leaky(void **s) {
  (void)s;
  check_elementwise(NNLIB_ACT_LEAKY_RELU, 0.01f);
  check_elementwise(NNLIB_ACT_LEAKY_RELU, 0.2f);
}
static void test_softplus(void **s) { (void)s; check_elementwise(NNLIB_ACT_SOFTPLUS, 0); }

static void test_sigmoid_extremes_exact(void **s) {
  (void)s;
  float x[2] = {-100.0f, 100.0f}, y[2];
  run(NNLIB_ACT_SIGMOID, 0, x, y, 2);
  assert_true(y[0] >= 0.0f && y[0] < 1e-40f + 4e-44f); /* e^-100 ~ 3.7e-44 */
  assert_true(y[1] == 1.0f);
  float sp[1] = {100.0f}, out[1];
  run(NNLIB_ACT_SOFTPLUS, 0, sp, out, 1);
  assert_true(out[0] == 100.0f); /* linear branch: exactly x */
}

static void test_softmax_stable(void **s) {
  (void)s;
  float x[3] = {1000.0f, 0.0f, -1000.0f}, y[3];
  run(NNLIB_ACT_SOFTMAX, 0, x, y, 3);
  assert_true(y[0] == 1.0f && y[1] == 0.0f && y[2] == 0.0f);
  float x2[3] = {88.8f, 88.8f, -1e30f}, y2[3];
  run(NNLIB_ACT_SOFTMAX, 0, x2, y2, 3);
  ASSERT_NEAR(y2[0], 0.5, 1e-6);
  ASSERT_NEAR(y2[1], 0.5, 1e-6);
  assert_true(y2[2] == 0.0f);
}

static void test_softmax_values(void **s) {
  (void)s;
  float x[4] = {0.5f, -1.0f, 2.0f, 0.0f}, y[4];
  run(NNLIB_ACT_SOFTMAX, 0, x, y, 4);
  double z = 0.0, sum = 0.0;
  for (int i = 0; i < 4; i++)
    z += exp(x[i]);
  for (int i = 0; i < 4; i++) {
    ASSERT_NEAR(y[i], exp(x[i]) / z, 1e-7);
    sum += y[i];
  }
  ASSERT_NEAR(sum, 1.0, 1e-6);
}

/* sigmoid and tanh run vectorised code (core/vecmath.h, not libm), which
 * promises at most 0.5 ulp and a hair (it rounds a double evaluation once)
 * over the whole float range. Measured against long double: every float
 * whose bits are a multiple of a prime stride (~65 000 values over every
 * exponent, subnormals and both signs), and a dense sweep of [-40, 40] in
 * steps of 1/512 through the layer (separate input and output) and
 * through a fused dense pass (in place, bias added). */
#define MAX_ULP 0.51

static long double ref_exact(nnlib_activation kind, long double x) {
  return kind == NNLIB_ACT_SIGMOID ? 1.0L / (1.0L + expl(-x)) : tanhl(x);
}

/* y[i] = f(x[i] + offset) within MAX_ULP; returns the largest error. */
static double check_ulps(nnlib_activation kind, const float *x,
                         const float *y, int64_t count, float offset) {
  double worst = 0.0;
  for (int64_t i = 0; i < count; i++) {
    float v = x[i] + offset;
    double err = ts_ulp_error(y[i], ref_exact(kind, v));
    if (!(err <= MAX_ULP))
      fail_msg("%s(%a = %.9g) = %.9g, %.3f ulp from %.12Lg",
               kind == NNLIB_ACT_SIGMOID ? "sigmoid" : "tanh", (double)v,
               (double)v, (double)y[i], err, ref_exact(kind, v));
    worst = err > worst ? err : worst;
  }
  return worst;
}

enum { SWEEP = 40960 + 1, BITS_STRIDE = 65521 /* prime */ };

static void sweep_dense(nnlib_activation kind) {
  static float x[SWEEP], y[SWEEP];
  for (int i = 0; i < SWEEP; i++)
    x[i] = -40.0f + (float)i / 512.0f;
  run(kind, 0, x, y, SWEEP);
  check_ulps(kind, x, y, SWEEP, 0.0f);
  /* dense 1->SWEEP with weight x and bias 0.5 on input 1: the fused pass */
  nnlib_layer *d = ts_dense(1, SWEEP, 1);
  nnlib_model *m = ts_model(1, 1, NNLIB_LOSS_NONE, NULL, 1, d,
                            ts_act(kind, 0), NULL);
  nnlib_tensor *w, *b;
  ASSERT_OK(nnlib_layer_get_param(d, 0, &w, NULL));
  ASSERT_OK(nnlib_layer_get_param(d, 1, &b, NULL));
  memcpy(nnlib_tensor_get_data(w), x, sizeof x);
  ASSERT_OK(nnlib_tensor_fill(b, 0.5f));
  float one = 1.0f;
  nnlib_tensor *X = ts_tensor2(1, 1, &one), *Y = ts_tensor2(1, SWEEP, NULL);
  ASSERT_OK(nnlib_model_predict(m, X, Y));
  check_ulps(kind, x, nnlib_tensor_get_data(Y), SWEEP, 0.5f);
  nnlib_tensor_free(X);
  nnlib_tensor_free(Y);
  nnlib_model_free(m);
}

/* Every finite float whose bit pattern is a multiple of BITS_STRIDE. */
static void sweep_bits(nnlib_activation kind) {
  static float x[(1ull << 32) / BITS_STRIDE + 1], y[sizeof x / sizeof x[0]];
  int64_t count = 0;
  for (uint64_t bits = 0; bits < (1ull << 32); bits += BITS_STRIDE) {
    uint32_t b = (uint32_t)bits;
    float v;
    memcpy(&v, &b, sizeof v);
    if (isfinite(v))
      x[count++] = v;
  }
  run(kind, 0, x, y, count);
  double worst = check_ulps(kind, x, y, count, 0.0f);
  print_message("%s: %lld floats, largest error %.4f ulp\n",
                kind == NNLIB_ACT_SIGMOID ? "sigmoid" : "tanh",
                (long long)count, worst);
}

static void test_sigmoid_tanh_sweep(void **s) {
  (void)s;
  sweep_dense(NNLIB_ACT_SIGMOID);
  sweep_dense(NNLIB_ACT_TANH);
}

static void test_sigmoid_tanh_every_exponent(void **s) {
  (void)s;
  sweep_bits(NNLIB_ACT_SIGMOID);
  sweep_bits(NNLIB_ACT_TANH);
}

/* The ends of the range exactly: infinities saturate, NaN passes through,
 * tanh keeps the sign of zero and is exact for subnormals, and sigmoid
 * reaches subnormal results before 0. */
static void test_sigmoid_tanh_specials(void **s) {
  (void)s;
  const float tiny = 0x1p-149f; /* the smallest subnormal */
  float x[] = {NAN,  INFINITY, -INFINITY, 0.0f,     -0.0f,
               tiny, -tiny,    FLT_MAX,   -FLT_MAX, -100.0f, -104.5f};
  enum { N = sizeof x / sizeof x[0] };
  float sig[N], th[N];
  run(NNLIB_ACT_SIGMOID, 0, x, sig, N);
  run(NNLIB_ACT_TANH, 0, x, th, N);
  assert_true(isnan(sig[0]) && isnan(th[0]));
  const float want_sig[] = {0, 1.0f, 0.0f, 0.5f, 0.5f, 0.5f, 0.5f, 1.0f,
                            0.0f, (float)(1.0L / (1.0L + expl(100.0L))), 0};
  const float want_th[] = {0, 1.0f, -1.0f, 0.0f, -0.0f, tiny, -tiny, 1.0f,
                           -1.0f, -1.0f, -1.0f};
  for (int i = 1; i < N; i++) {
    if (sig[i] != want_sig[i] || th[i] != want_th[i] ||
        signbit(th[i]) != signbit(want_th[i]))
      fail_msg("x = %a: sigmoid %a (want %a), tanh %a (want %a)",
               (double)x[i], (double)sig[i], (double)want_sig[i],
               (double)th[i], (double)want_th[i]);
  }
  assert_true(sig[9] > 0.0f && sig[9] < FLT_MIN); /* e^-100: subnormal */
}

static void test_negative_leaky_slope_rejected(void **s) {
  (void)s;
  nnlib_layer *l = (nnlib_layer *)1;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_activation_create(&l, NNLIB_ACT_LEAKY_RELU, -0.1f));
  assert_null(l);
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_activation_create(&l, (nnlib_activation)99, 0.0f));
}

static void test_names(void **s) {
  (void)s;
  const char *names[] = {"identity", "step", "sigmoid", "tanh", "relu",
                         "leaky_relu", "softplus", "softmax"};
  for (int k = 0; k <= NNLIB_ACT_SOFTMAX; k++) {
    nnlib_layer *l = ts_act((nnlib_activation)k, 0.0f);
    assert_string_equal(nnlib_layer_get_name(l), names[k]);
    assert_int_equal(nnlib_layer_get_kind(l), NNLIB_LAYER_ACTIVATION);
    nnlib_layer_free(l);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_identity),
      cmocka_unit_test(test_step),
      cmocka_unit_test(test_sigmoid),
      cmocka_unit_test(test_tanh),
      cmocka_unit_test(test_relu),
      cmocka_unit_test(test_leaky),
      cmocka_unit_test(test_softplus),
      cmocka_unit_test(test_sigmoid_extremes_exact),
      cmocka_unit_test(test_sigmoid_tanh_sweep),
      cmocka_unit_test(test_sigmoid_tanh_every_exponent),
      cmocka_unit_test(test_sigmoid_tanh_specials),
      cmocka_unit_test(test_softmax_stable),
      cmocka_unit_test(test_softmax_values),
      cmocka_unit_test(test_negative_leaky_slope_rejected),
      cmocka_unit_test(test_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
