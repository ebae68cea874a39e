/* The last-axis linear layer (nnlib_linear_create) and GELU
 * (NNLIB_ACT_GELU, NNLIB_ACT_GELU_TANH):
 *  - linear forward against a double-precision naive loop and backward (dx,
 *    dW, db) against central finite differences of that loop's loss sum(y
 *    g), samples of rank 1, 2 and 3, with and without bias; fused SGD;
 *    PyTorch's initialisation bound; a call with run->steps = S (decoding)
 *    maps n S rows and writes nothing past them;
 *  - GELU values within MAX_ULP(kind) of a long double reference over a dense
 *    sweep, a sample of every binade and special values; the vector and
 *    scalar paths give the same bits; the limits beyond the kernels'
 *    clamps (x itself, -0 of the right sign, NaN); the derivative (taken
 *    from x: y is NaN in the call) against the analytic long double
 *    derivative and central differences of the reference;
 *  - fusion: linear + relu fuse like dense + relu (checked against a naive
 *    loop and nnlib_model_gradcheck); dense or linear + GELU never fuse
 *    (GELU's derivative needs x) and still train right (gradcheck);
 *  - PyTorch (nn.Linear, nn.GELU(), nn.GELU(approximate='tanh') in float64,
 *    tests/fixtures/torch_text_layers.txt): y, loss, dx and parameter
 *    gradients within 1e-5 relative;
 *  - descriptions, model-file configs, model files, bad arguments and bad
 *    configs with their exact statuses. */
#include "nnlib_internal.h"
#include "fixtures.h"
#include "test_support.h"
#include "layer_harness.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BAR 1e-5     /* PyTorch's answer */
#define REF_BAR 1e-6 /* the naive loop and differences */
/* Exact GELU is float arithmetic with fmaf (a rational tail and e^z):
 * measured 6.64 ulp at most (at x = -5.481, mostly the rounding of the
 * rational's Horner steps) over every float in [-16, 16] with |x| >=
 * 2^-12 and samples of the rest (benchmarks/gelu_accuracy.c). The tanh
 * form is double arithmetic rounded to float once: 0.551 ulp. 7 and 1
 * leave room for another libm's erfcl in the reference. The derivatives:
 * measured within 1.34e-7 (exact) and 6.0e-8 (tanh) absolute, held to
 * DERIVATIVE_BAR times max(1, |f'|). */
#define GELU_MAX_ULP 7.0
#define GELU_TANH_MAX_ULP 1.0
#define MAX_ULP(kind)                                                          \
  ((kind) == NNLIB_ACT_GELU ? GELU_MAX_ULP : GELU_TANH_MAX_ULP)
#define DERIVATIVE_BAR 2e-7

/* ------------------------------------------------------------ helpers */

static float *param_of(nnlib_model *m, size_t layer, size_t index, bool grad) {
  return lh_param(m, layer, index, grad);
}

static float *param(nnlib_model *m, size_t index, bool grad) {
  return lh_param(m, 0, index, grad);
}

static float *floats(int64_t count) {
  float *f = malloc((size_t)count * sizeof *f);
  assert_non_null(f);
  return f;
}

/* ------------------------------------------- linear: the naive reference */

typedef struct linear_ref {
  double *x, *w, *b, *g; /* b NULL: no bias */
  int64_t rows, in, out;
} linear_ref;

static void ref_linear(const linear_ref *c, double *y) {
  for (int64_t r = 0; r < c->rows; r++)
    for (int64_t o = 0; o < c->out; o++) {
      double sum = c->b != NULL ? c->b[o] : 0.0;
      for (int64_t i = 0; i < c->in; i++)
        sum += c->x[r * c->in + i] * c->w[o * c->in + i];
      y[r * c->out + o] = sum;
    }
}

static double ref_linear_loss(const linear_ref *c) {
  double *y = malloc((size_t)(c->rows * c->out) * sizeof *y);
  assert_non_null(y);
  ref_linear(c, y);
  double loss = 0.0;
  for (int64_t i = 0; i < c->rows * c->out; i++)
    loss += y[i] * c->g[i];
  free(y);
  return loss;
}

static void linear_diff(linear_ref *c, double *v, int64_t count,
                        double *out) {
  for (int64_t i = 0; i < count; i++) {
    double keep = v[i], h = 1e-4;
    v[i] = keep + h;
    double up = ref_linear_loss(c);
    v[i] = keep - h;
    double down = ref_linear_loss(c);
    v[i] = keep;
    out[i] = (up - down) / (2.0 * h);
  }
}

static void check_linear(const int64_t *shape, size_t rank, int64_t n,
                         int64_t out, int bias) {
  nnlib_layer *l;
  ASSERT_OK(nnlib_linear_create(&l, out, bias));
  nnlib_model *m = lh_one_layer(l, shape, rank, n);
  int64_t in = shape[rank - 1], size = n;
  for (size_t i = 0; i < rank; i++)
    size *= shape[i];
  int64_t rows = size / in, ysize = rows * out;
  /* the output shape: the input's with the last axis out */
  int64_t dims[NNLIB_MAX_RANK];
  size_t out_rank;
  ASSERT_OK(nnlib_layer_get_output_shape(l, dims, NNLIB_MAX_RANK, &out_rank));
  assert_int_equal(out_rank, rank);
  for (size_t i = 0; i + 1 < rank; i++)
    assert_int_equal(dims[i], shape[i]);
  assert_int_equal(dims[rank - 1], out);
  assert_int_equal(nnlib_layer_get_param_tensor_count(l), bias ? 2 : 1);

  uint32_t seed = 3u + (uint32_t)rank * 17u + (uint32_t)bias;
  float *x = floats(size), *g = floats(ysize), *y = floats(ysize);
  float *dy = floats(ysize), *dx = floats(size);
  ts_fill_uniform(x, size, -1.0f, 1.0f, &seed);
  ts_fill_uniform(g, ysize, -1.0f, 1.0f, &seed);
  linear_ref c = {lh_to_double(x, size), lh_to_double(param(m, 0, false), out * in),
                  bias ? lh_to_double(param(m, 1, false), out) : NULL,
                  lh_to_double(g, ysize), rows, in, out};
  nnlib__run run = lh_run(m, 0);
  ASSERT_OK(l->ops->forward(l, &run, x, y, n));
  double *want = malloc((size_t)(size > out * in ? size : out * in) *
                        sizeof *want);
  double *ywant = malloc((size_t)ysize * sizeof *ywant);
  ref_linear(&c, ywant);
  char what[96];
  snprintf(what, sizeof what, "linear rank %zu bias %d: y", rank, bias);
  lh_expect_rel(what, y, ywant, ysize, REF_BAR);
  memcpy(dy, g, (size_t)ysize * sizeof *dy);
  ASSERT_OK(l->ops->backward(l, &run, x, y, dy, dx, n));
  linear_diff(&c, c.x, size, want);
  lh_expect_rel("  dx vs differences", dx, want, size, REF_BAR);
  linear_diff(&c, c.w, out * in, want);
  lh_expect_rel("  dW vs differences", param(m, 0, true), want, out * in,
             REF_BAR);
  if (bias) {
    linear_diff(&c, c.b, out, want);
    lh_expect_rel("  db vs differences", param(m, 1, true), want, out, REF_BAR);
  }
  free(c.x);
  free(c.w);
  free(c.b);
  free(c.g);
  free(want);
  free(ywant);
  free(x);
  free(g);
  free(y);
  free(dy);
  free(dx);
  nnlib_model_free(m);
}

static void test_linear_reference(void **s) {
  (void)s;
  int64_t r1[1] = {5}, r2[2] = {4, 3}, r3[3] = {2, 3, 4};
  for (int bias = 0; bias <= 1; bias++) {
    check_linear(r1, 1, 3, 4, bias);
    check_linear(r2, 2, 2, 5, bias);
    check_linear(r3, 3, 2, 3, bias);
  }
}

/* Planned [T, (H,) in]; steps S: n S positions, compact; the rows held
 * are mapped and nothing past them is written. */
static void check_linear_steps(const int64_t *shape, size_t rank,
                               int64_t steps) {
  nnlib_layer *l;
  int64_t n = 3, out = 4, in = shape[rank - 1], per_position = 1;
  ASSERT_OK(nnlib_linear_create(&l, out, 1));
  nnlib_model *m = lh_one_layer(l, shape, rank, n);
  for (size_t i = 1; i < rank; i++)
    per_position *= shape[i];
  int64_t rows = n * steps * per_position / in;
  int64_t full_rows = n * shape[0] * per_position / in;
  float *x = floats(full_rows * in), *y = floats(full_rows * out);
  float *dy = floats(full_rows * out), *dx = floats(full_rows * in);
  uint32_t seed = 41u;
  ts_fill_uniform(x, full_rows * in, -1.0f, 1.0f, &seed);
  ts_fill_uniform(dy, full_rows * out, -1.0f, 1.0f, &seed);
  for (int64_t i = 0; i < full_rows * out; i++)
    y[i] = -7.0f;
  for (int64_t i = 0; i < full_rows * in; i++)
    dx[i] = -7.0f;
  nnlib__run run = lh_run(m, steps);
  ASSERT_OK(l->ops->forward(l, &run, x, y, n));
  linear_ref c = {lh_to_double(x, rows * in),
                  lh_to_double(param(m, 0, false), out * in),
                  lh_to_double(param(m, 1, false), out), NULL, rows, in, out};
  double *want = malloc((size_t)(rows * out) * sizeof *want);
  ref_linear(&c, want);
  lh_expect_rel("linear steps: y of the rows held", y, want, rows * out,
             REF_BAR);
  ASSERT_OK(l->ops->backward(l, &run, x, y, dy, dx, n));
  for (int64_t i = rows * out; i < full_rows * out; i++)
    assert_true(y[i] == -7.0f);
  for (int64_t i = rows * in; i < full_rows * in; i++)
    assert_true(dx[i] == -7.0f);
  /* db is the column sums of the rows held, nothing more */
  for (int64_t o = 0; o < out; o++) {
    double sum = 0.0;
    for (int64_t r = 0; r < rows; r++)
      sum += dy[r * out + o];
    ASSERT_NEAR(param(m, 1, true)[o], sum, 1e-5);
  }
  free(c.x);
  free(c.w);
  free(c.b);
  free(want);
  free(x);
  free(y);
  free(dy);
  free(dx);
  nnlib_model_free(m);
}

static void test_linear_steps(void **s) {
  (void)s;
  int64_t td[2] = {5, 3}, thd[3] = {4, 2, 3};
  check_linear_steps(td, 2, 2);
  check_linear_steps(td, 2, 1);
  check_linear_steps(thd, 3, 3);
}

/* torch.nn.Linear: W and b uniform in +-1/sqrt(in) */
static void test_linear_init(void **s) {
  (void)s;
  nnlib_layer *l;
  ASSERT_OK(nnlib_linear_create(&l, 256, 1));
  int64_t shape[2] = {2, 64};
  nnlib_model *m = lh_one_layer(l, shape, 2, 1);
  double bound = 1.0 / 8.0;
  const float *w = param(m, 0, false), *b = param(m, 1, false);
  double sum = 0.0, sq = 0.0, top = 0.0;
  int64_t count = 256 * 64;
  for (int64_t i = 0; i < count; i++) {
    assert_true(fabs(w[i]) <= bound);
    sum += w[i];
    sq += (double)w[i] * w[i];
    top = fmax(top, fabs(w[i]));
  }
  double mean = sum / (double)count, var = sq / (double)count - mean * mean;
  /* U(-a, a): mean 0 (sd a/sqrt(3 count)), variance a^2/3 */
  assert_true(fabs(mean) < 4.0 * bound / sqrt(3.0 * (double)count));
  assert_true(fabs(var / (bound * bound / 3.0) - 1.0) < 0.05);
  assert_true(top > 0.999 * bound);
  double btop = 0.0;
  for (int i = 0; i < 256; i++) {
    assert_true(fabs(b[i]) <= bound);
    btop = fmax(btop, fabs(b[i]));
  }
  assert_true(btop > 0.9 * bound); /* not zeros as the dense layer's */
  nnlib_model_free(m);
}

static void test_linear_fused_sgd(void **s) {
  (void)s;
  nnlib_layer *l;
  ASSERT_OK(nnlib_linear_create(&l, 3, 1));
  int64_t shape[2] = {2, 4};
  nnlib_model *m = lh_one_layer(l, shape, 2, 2);
  float x[16], y[12], dy[12], dy2[12], dx[16], dx2[16], w[12], b[3], dw[12],
      db[3];
  uint32_t seed = 8u;
  ts_fill_uniform(x, 16, -1.0f, 1.0f, &seed);
  ts_fill_uniform(dy, 12, -1.0f, 1.0f, &seed);
  memcpy(dy2, dy, sizeof dy);
  memcpy(w, param(m, 0, false), sizeof w);
  memcpy(b, param(m, 1, false), sizeof b);
  nnlib__run run = lh_run(m, 0);
  ASSERT_OK(l->ops->forward(l, &run, x, y, 2));
  ASSERT_OK(l->ops->backward(l, &run, x, y, dy, dx, 2));
  memcpy(dw, param(m, 0, true), sizeof dw);
  memcpy(db, param(m, 1, true), sizeof db);
  run.sgd_fused = true;
  run.sgd_lr = 0.25f;
  ASSERT_OK(l->ops->backward(l, &run, x, y, dy2, dx2, 2));
  assert_memory_equal(dx, dx2, sizeof dx); /* read the old W */
  for (int i = 0; i < 12; i++)
    ASSERT_NEAR(param(m, 0, false)[i], w[i] - 0.25f * dw[i], 1e-6);
  for (int i = 0; i < 3; i++)
    assert_true(param(m, 1, false)[i] == b[i] - 0.25f * db[i]);
  nnlib_model_free(m);
}

/* --------------------------------------------------- GELU: the reference */

static long double ref_gelu(nnlib_activation kind, long double x) {
  if (kind == NNLIB_ACT_GELU)
    return 0.5L * x * erfcl(-x / sqrtl(2.0L));
  /* 1 + tanh(u) = 2 / (1 + e^{-2u}): no cancellation for negative x */
  long double u = sqrtl(2.0L / 3.14159265358979323846264338327950288L) *
                  (x + 0.044715L * x * x * x);
  return x / (1.0L + expl(-2.0L * u));
}

/* The tanh form as PyTorch writes it, where it does not cancel. */
static long double ref_gelu_tanh_textbook(long double x) {
  long double u = sqrtl(2.0L / 3.14159265358979323846264338327950288L) *
                  (x + 0.044715L * x * x * x);
  return 0.5L * x * (1.0L + tanhl(u));
}

/* GELU'(x) = Phi(x) + x phi(x); the tanh form's d/dx x s(2u) = s + x s
 * (1 - s) 2u' with s = 1 / (1 + e^{-2u}) */
static long double ref_gelu_derivative(nnlib_activation kind, long double x) {
  const long double pi = 3.14159265358979323846264338327950288L;
  if (kind == NNLIB_ACT_GELU)
    return 0.5L * erfcl(-x / sqrtl(2.0L)) +
           x * expl(-0.5L * x * x) / sqrtl(2.0L * pi);
  long double c = sqrtl(2.0L / pi), u = c * (x + 0.044715L * x * x * x);
  /* s and 1 - s from t = e^{-2|u|} <= 1, which cannot overflow */
  long double t = expl(-2.0L * fabsl(u)), big = 1.0L / (1.0L + t);
  long double s = x >= 0.0L ? big : t * big, rest = x >= 0.0L ? t * big : big;
  return s + x * s * rest * 2.0L * c * (1.0L + 3.0L * 0.044715L * x * x);
}

static nnlib_layer *gelu_layer(nnlib_activation kind) {
  nnlib_layer *l;
  ASSERT_OK(nnlib_activation_create(&l, kind, 0.0f));
  return l;
}

/* every GELU_STRIDE-th float pattern in [0, 16], both signs: a sample of
 * every binade, subnormals included */
#define GELU_STRIDE 16411u
#define GELU_SAMPLE (2 * (0x41800000u / GELU_STRIDE + 1))
#define GELU_INPUTS (32 * 256 + 1 + GELU_SAMPLE + 32)

/* x: a sweep of [-16, 16] in steps of 1/256, the sample, then specials */
static int64_t gelu_inputs(float *x) {
  int64_t count = 0;
  for (int i = -16 * 256; i <= 16 * 256; i++)
    x[count++] = (float)i / 256.0f;
  for (uint32_t bits = 0; bits <= 0x41800000u; bits += GELU_STRIDE) {
    float v;
    memcpy(&v, &bits, sizeof v);
    x[count++] = v;
    x[count++] = -v;
  }
  const float specials[] = {-0.0f,        FLT_MIN,   -FLT_MIN,  1e-30f,
                            -1e-30f,      0x1p-149f, -0x1p-149f, 1e-4f,
                            -1e-4f,       20.0f,     -20.0f,    1e6f,
                            -1e6f,        3e38f,     -3e38f,    -13.9f,
                            -14.5f,       -17.0f,    0.1f,      -0.7517915f,
                            -10.6f,       -10.9f,    -11.0f,    -14.3f,
                            -14.4f,       14.5f,     11.0f,     -11.5f};
  for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++)
    x[count++] = specials[i];
  assert_true(count <= GELU_INPUTS);
  return count;
}

static void check_gelu_values(nnlib_activation kind) {
  nnlib_layer *l = gelu_layer(kind);
  int64_t shape[1] = {GELU_INPUTS};
  nnlib_model *m = lh_one_layer(l, shape, 1, 1);
  float *x = floats(shape[0]), *y = floats(shape[0]);
  memset(x, 0, (size_t)shape[0] * sizeof *x);
  int64_t count = gelu_inputs(x);
  nnlib__run run = lh_run(m, 0);
  ASSERT_OK(l->ops->forward(l, &run, x, y, 1));
  double worst = 0.0;
  for (int64_t i = 0; i < count; i++) {
    long double want = ref_gelu(kind, x[i]);
    double err = ts_ulp_error(y[i], want);
    if (!(err <= MAX_ULP(kind)))
      fail_msg("%s(%.9g) = %.9g, want %.12Lg: %.2f ulp",
               nnlib_layer_get_name(l), (double)x[i], (double)y[i], want, err);
    worst = fmax(worst, err);
    /* one value at a time runs the scalar code: the same bits */
    float alone;
    nnlib__activation_apply(kind, 0.0f, &x[i], NULL, &alone, 1, 1);
    if (memcmp(&alone, &y[i], sizeof alone) != 0)
      fail_msg("%s(%.9g): %.9g alone, %.9g in a vector",
               nnlib_layer_get_name(l), (double)x[i], (double)alone,
               (double)y[i]);
  }
  print_message("  %-10s worst %.3f ulp over %lld values\n",
                nnlib_layer_get_name(l), worst, (long long)count);
  /* the reference's tanh identity against PyTorch's form where the
   * latter is exact enough (1e-12: valgrind runs long double as double) */
  if (kind == NNLIB_ACT_GELU_TANH)
    for (int i = -4 * 64; i <= 6 * 64; i++) {
      long double v = (long double)i / 64.0L;
      long double a = ref_gelu(kind, v), b = ref_gelu_tanh_textbook(v);
      assert_true(fabsl(a - b) <= 1e-12L * fmaxl(1e-3L, fabsl(b)));
    }
  /* NaN passes */
  float nan_in = NAN, nan_out = 0.0f;
  nnlib__activation_apply(kind, 0.0f, &nan_in, NULL, &nan_out, 1, 1);
  assert_true(isnan(nan_out));
  free(x);
  free(y);
  nnlib_model_free(m);
}

/* Past the kernels' clamps (14.5 exact, 11 tanh) each value is its exact
 * limit: x itself above, -0 below; zeros keep their sign; the derivative
 * is 1 above, 0 (or a subnormal) below; NaN passes both. */
static void check_gelu_limits(nnlib_activation kind, float end) {
  const float far[] = {end,     nextafterf(end, INFINITY), end + 0.5f,
                       20.0f,   1e6f,     3e38f,           FLT_MAX,
                       INFINITY};
  int count = (int)(sizeof far / sizeof far[0]);
  float x[2 * 8 + 3], y[2 * 8 + 3], dy[2 * 8 + 3], dx[2 * 8 + 3];
  for (int i = 0; i < count; i++) {
    x[2 * i] = far[i];
    x[2 * i + 1] = -far[i];
  }
  x[2 * count] = 0.0f;
  x[2 * count + 1] = -0.0f;
  x[2 * count + 2] = NAN;
  int64_t n = 2 * count + 3;
  nnlib_layer *l = gelu_layer(kind);
  nnlib_model *m = lh_one_layer(l, &n, 1, 1);
  nnlib__run run = lh_run(m, 0);
  ASSERT_OK(l->ops->forward(l, &run, x, y, 1));
  for (int64_t i = 0; i < n; i++)
    dy[i] = 1.0f;
  ASSERT_OK(l->ops->backward(l, &run, x, y, dy, dx, 1));
  for (int i = 0; i < count; i++) {
    assert_true(y[2 * i] == far[i]);
    assert_true(y[2 * i + 1] == 0.0f && signbit(y[2 * i + 1]));
    assert_true(dx[2 * i] == 1.0f);
    assert_true(fabsf(dx[2 * i + 1]) <= 0x1p-140f);
  }
  assert_true(y[2 * count] == 0.0f && !signbit(y[2 * count]));
  assert_true(y[2 * count + 1] == 0.0f && signbit(y[2 * count + 1]));
  assert_true(dx[2 * count] == 0.5f && dx[2 * count + 1] == 0.5f);
  assert_true(isnan(y[2 * count + 2]) && isnan(dx[2 * count + 2]));
  nnlib_model_free(m);
}

static void test_gelu_values(void **s) {
  (void)s;
  check_gelu_values(NNLIB_ACT_GELU);
  check_gelu_values(NNLIB_ACT_GELU_TANH);
  check_gelu_limits(NNLIB_ACT_GELU, 14.5f);
  check_gelu_limits(NNLIB_ACT_GELU_TANH, 11.0f);
  /* a few exact anchors: GELU(0) = 0, GELU(x) = x for large x */
  float x[4] = {0.0f, 40.0f, 1e6f, -40.0f}, y[4];
  nnlib__activation_apply(NNLIB_ACT_GELU, 0.0f, x, NULL, y, 1, 4);
  assert_true(y[0] == 0.0f && y[1] == 40.0f && y[2] == 1e6f);
  assert_true(y[3] == 0.0f); /* -40 Phi(-40) underflows (sign: -0) */
}

/* The derivative through the layer's backward, with dy = 1 and y all NaN
 * (it is taken from x: forward keeps it in the workspace). */
static void check_gelu_derivative(nnlib_activation kind) {
  nnlib_layer *l = gelu_layer(kind);
  int64_t count = 16 * 32 + 1;
  nnlib_model *m = lh_one_layer(l, &count, 1, 1);
  float *x = floats(count), *y = floats(count), *dy = floats(count),
        *dx = floats(count);
  for (int64_t i = 0; i < count; i++) {
    x[i] = (float)(i - count / 2) / 32.0f; /* [-8, 8] */
    y[i] = NAN;
    dy[i] = 1.0f;
  }
  nnlib__run run = lh_run(m, 0);
  ASSERT_OK(l->ops->forward(l, &run, x, dx, 1));
  ASSERT_OK(l->ops->backward(l, &run, x, y, dy, dx, 1));
  double worst = 0.0;
  for (int64_t i = 0; i < count; i++) {
    long double h = 1e-4L, v = x[i];
    long double fd = (ref_gelu(kind, v + h) - ref_gelu(kind, v - h)) / (2 * h);
    double err = (double)fabsl((long double)dx[i] - fd);
    if (!(err <= 1e-7 + 2e-7 * fabs((double)fd)))
      fail_msg("%s'(%.9g) = %.9g, differences say %.12Lg",
               nnlib_layer_get_name(l), (double)x[i], (double)dx[i], fd);
    worst = fmax(worst, err);
  }
  print_message("  %-10s derivative: worst |error| %.2e\n",
                nnlib_layer_get_name(l), worst);
  /* dy scales it, in place too (dx == dy) */
  for (int64_t i = 0; i < count; i++)
    dy[i] = -3.0f;
  float *keep = floats(count);
  memcpy(keep, dx, (size_t)count * sizeof *keep);
  ASSERT_OK(l->ops->backward(l, &run, x, y, dy, dy, 1));
  for (int64_t i = 0; i < count; i++)
    assert_true(dy[i] == -3.0f * keep[i]);
  free(keep);
  free(x);
  free(y);
  free(dy);
  free(dx);
  nnlib_model_free(m);
}

/* Over the values' inputs: the analytic derivative, and one value at a
 * time (the scalar code) gives the same bits. */
static void check_gelu_derivative_dense(nnlib_activation kind) {
  nnlib_layer *l = gelu_layer(kind), *one = gelu_layer(kind);
  int64_t shape[1] = {GELU_INPUTS}, single = 1;
  nnlib_model *m = lh_one_layer(l, shape, 1, 1), *m1 = lh_one_layer(one, &single,
                                                             1, 1);
  float *x = floats(shape[0]), *y = floats(shape[0]), *dy = floats(shape[0]),
        *dx = floats(shape[0]);
  memset(x, 0, (size_t)shape[0] * sizeof *x);
  int64_t count = gelu_inputs(x);
  for (int64_t i = 0; i < shape[0]; i++) {
    y[i] = NAN;
    dy[i] = 1.0f;
  }
  nnlib__run run = lh_run(m, 0), run1 = lh_run(m1, 0);
  ASSERT_OK(l->ops->forward(l, &run, x, dx, 1));
  ASSERT_OK(l->ops->backward(l, &run, x, y, dy, dx, 1));
  /* what forward kept is the derivative computed afresh (a call without
   * a workspace), bit for bit */
  float *fresh = floats(shape[0]);
  nnlib__run bare = run;
  bare.workspace = NULL;
  ASSERT_OK(l->ops->backward(l, &bare, x, y, dy, fresh, 1));
  assert_memory_equal(fresh, dx, (size_t)shape[0] * sizeof *dx);
  free(fresh);
  double worst = 0.0;
  for (int64_t i = 0; i < count; i++) {
    long double want = ref_gelu_derivative(kind, x[i]);
    double err = (double)fabsl((long double)dx[i] - want);
    if (!(err <= DERIVATIVE_BAR * fmax(1.0, (double)fabsl(want))))
      fail_msg("%s'(%.9g) = %.9g, want %.12Lg", nnlib_layer_get_name(l),
               (double)x[i], (double)dx[i], want);
    worst = fmax(worst, err);
    float alone, g = 1.0f, nan_y = NAN;
    ASSERT_OK(one->ops->forward(one, &run1, &x[i], &alone, 1));
    ASSERT_OK(one->ops->backward(one, &run1, &x[i], &nan_y, &g, &alone, 1));
    if (memcmp(&alone, &dx[i], sizeof alone) != 0)
      fail_msg("%s'(%.9g): %.9g alone, %.9g in a vector",
               nnlib_layer_get_name(l), (double)x[i], (double)alone,
               (double)dx[i]);
  }
  print_message("  %-10s derivative vs analytic: worst |error| %.2e over "
                "%lld values\n",
                nnlib_layer_get_name(l), worst, (long long)count);
  free(x);
  free(y);
  free(dy);
  free(dx);
  nnlib_model_free(m);
  nnlib_model_free(m1);
}

static void test_gelu_derivative(void **s) {
  (void)s;
  check_gelu_derivative(NNLIB_ACT_GELU);
  check_gelu_derivative(NNLIB_ACT_GELU_TANH);
  check_gelu_derivative_dense(NNLIB_ACT_GELU);
  check_gelu_derivative_dense(NNLIB_ACT_GELU_TANH);
}

/* Activations on [T, D] samples with steps S: n S D values, nothing past
 * them; softmax per row of the last axis. */
static void check_activation_steps(nnlib_activation kind) {
  nnlib_layer *l;
  ASSERT_OK(nnlib_activation_create(&l, kind, 0.0f));
  int64_t shape[2] = {5, 3}, n = 2, steps = 2;
  nnlib_model *m = lh_one_layer(l, shape, 2, n);
  int64_t used = n * steps * 3, full = n * 5 * 3;
  float x[30], y[30], dy[30], dx[30];
  uint32_t seed = 77u;
  ts_fill_uniform(x, full, -2.0f, 2.0f, &seed);
  ts_fill_uniform(dy, full, -1.0f, 1.0f, &seed);
  for (int64_t i = 0; i < full; i++)
    y[i] = dx[i] = -7.0f;
  nnlib__run run = lh_run(m, steps);
  ASSERT_OK(l->ops->forward(l, &run, x, y, n));
  ASSERT_OK(l->ops->backward(l, &run, x, y, dy, dx, n));
  for (int64_t i = 0; i < full; i++) {
    if (i >= used) {
      assert_true(y[i] == -7.0f && dx[i] == -7.0f);
      continue;
    }
    if (kind == NNLIB_ACT_SOFTMAX) {
      int64_t row = i / 3;
      long double sum = 0.0L;
      for (int c = 0; c < 3; c++)
        sum += expl(x[row * 3 + c]);
      ASSERT_NEAR(y[i], expl(x[i]) / sum, 1e-7);
    } else if (kind == NNLIB_ACT_RELU) {
      assert_true(y[i] == (x[i] > 0.0f ? x[i] : 0.0f));
      assert_true(dx[i] == (x[i] > 0.0f ? dy[i] : 0.0f));
    } else {
      assert_true(ts_ulp_error(y[i], ref_gelu(kind, x[i])) <= MAX_ULP(kind));
    }
  }
  nnlib_model_free(m);
}

static void test_activation_steps(void **s) {
  (void)s;
  check_activation_steps(NNLIB_ACT_GELU);
  check_activation_steps(NNLIB_ACT_GELU_TANH);
  check_activation_steps(NNLIB_ACT_RELU);
  check_activation_steps(NNLIB_ACT_SOFTMAX);
}

/* ------------------------------------------------------------- fusion */

static nnlib_model *spec_model(const char *spec, const int64_t *shape,
                               size_t rank, int64_t n, uint64_t seed) {
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, spec));
  ASSERT_OK(nnlib_model_compile(m, shape, rank, n, NNLIB_LOSS_MSE, NULL,
                                seed));
  return m;
}

static double gradcheck(nnlib_model *m, int64_t n, const int64_t *shape,
                        size_t rank, int64_t out_size) {
  int64_t xdims[NNLIB_MAX_RANK + 1] = {n}, size = n;
  for (size_t i = 0; i < rank; i++) {
    xdims[i + 1] = shape[i];
    size *= shape[i];
  }
  float *xv = floats(size), *tv = floats(n * out_size);
  uint32_t seed = 123u;
  ts_fill_uniform(xv, size, -1.0f, 1.0f, &seed);
  ts_fill_uniform(tv, n * out_size, -1.0f, 1.0f, &seed);
  int64_t tdims[2] = {n, out_size};
  nnlib_tensor *x, *t;
  ASSERT_OK(nnlib_tensor_wrap(&x, xv, xdims, rank + 1));
  ASSERT_OK(nnlib_tensor_wrap(&t, tv, tdims, 2));
  nnlib_gradcheck_options o;
  ASSERT_OK(nnlib_gradcheck_options_init(&o));
  o.step = 1e-2f;
  double err = 1.0;
  ASSERT_OK(nnlib_model_gradcheck(m, x, t, &o, &err));
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
  free(xv);
  free(tv);
  return err;
}

/* Predictions of a compiled model on n samples of `size` values. */
static float *predict(nnlib_model *m, const float *xv, const int64_t *xdims,
                      size_t xrank, int64_t out_size) {
  nnlib_tensor *x, *y;
  ASSERT_OK(nnlib_tensor_wrap(&x, (float *)xv, xdims, xrank));
  int64_t ydims[2] = {xdims[0], out_size};
  ASSERT_OK(nnlib_tensor_create(&y, ydims, 2));
  ASSERT_OK(nnlib_model_predict(m, x, y));
  float *out = floats(xdims[0] * out_size);
  memcpy(out, nnlib_tensor_get_data(y),
         (size_t)(xdims[0] * out_size) * sizeof(float));
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  return out;
}

/* f(x W^T + b) per row, in double. */
static void ref_layer(const float *x, const float *w, const float *b,
                      nnlib_activation act, double *y, int64_t rows,
                      int64_t in, int64_t out) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t o = 0; o < out; o++) {
      double z = b != NULL ? b[o] : 0.0;
      for (int64_t i = 0; i < in; i++)
        z += (double)x[r * in + i] * w[o * in + i];
      if (act == NNLIB_ACT_RELU)
        z = z > 0.0 ? z : 0.0;
      else if (act == NNLIB_ACT_TANH)
        z = tanh(z);
      else if (act != NNLIB_ACT_IDENTITY)
        z = (double)ref_gelu(act, z);
      y[r * out + o] = z;
    }
}

/* linear:6,ACT,linear:2 on [T=4, D=3]: fused exactly when ACT's derivative
 * comes from y; predictions against the naive loop; gradcheck (every
 * weight) for the smooth ones. */
static void check_two_linear(const char *act_name, nnlib_activation act,
                             bool fused) {
  char spec[64];
  snprintf(spec, sizeof spec, "linear:6,%s,linear:2", act_name);
  int64_t shape[2] = {4, 3}, n = 3;
  nnlib_model *m = spec_model(spec, shape, 2, n, 5);
  nnlib_layer *l0 = nnlib_model_get_layer(m, 0);
  assert_true((l0->fused_activation == nnlib_model_get_layer(m, 1)) == fused);
  assert_true(nnlib_model_get_layer(m, 1)->fused_away == fused);
  float xv[36];
  uint32_t seed = 9u;
  ts_fill_uniform(xv, 36, -1.5f, 1.5f, &seed);
  int64_t xdims[3] = {n, 4, 3};
  float *got = predict(m, xv, xdims, 3, 8);
  double hidden[72], want[24];
  ref_layer(xv, param_of(m, 0, 0, false), param_of(m, 0, 1, false), act,
            hidden, 12, 3, 6);
  float hidden_f[72];
  for (int i = 0; i < 72; i++)
    hidden_f[i] = (float)hidden[i];
  ref_layer(hidden_f, param_of(m, 2, 0, false), param_of(m, 2, 1, false),
            NNLIB_ACT_IDENTITY, want, 12, 6, 2);
  char what[96];
  snprintf(what, sizeof what, "%s: predictions", spec);
  lh_expect_rel(what, got, want, 24, REF_BAR);
  free(got);
  if (act != NNLIB_ACT_RELU) { /* differences across ReLU's kink mislead */
    double err = gradcheck(m, n, shape, 2, 8);
    print_message("  %-44s %.2e\n", "  gradcheck", err);
    assert_true(err < 1e-3);
  }
  nnlib_model_free(m);
}

static void test_fusion(void **s) {
  (void)s;
  check_two_linear("relu", NNLIB_ACT_RELU, true);
  check_two_linear("tanh", NNLIB_ACT_TANH, true);
  /* GELU: never fused, and its derivative reaches the first layer */
  nnlib_layer *g = gelu_layer(NNLIB_ACT_GELU);
  assert_false(nnlib__activation_is_elementwise(g));
  nnlib_layer_free(g);
  g = gelu_layer(NNLIB_ACT_GELU_TANH);
  assert_false(nnlib__activation_is_elementwise(g));
  nnlib_layer_free(g);
  g = gelu_layer(NNLIB_ACT_RELU);
  assert_true(nnlib__activation_is_elementwise(g));
  nnlib_layer_free(g);
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add(m, ts_dense(0, 5, 1)));
  ASSERT_OK(nnlib_model_add(m, gelu_layer(NNLIB_ACT_GELU)));
  ASSERT_OK(nnlib_model_add(m, ts_dense(0, 2, 1)));
  int64_t in = 4;
  ASSERT_OK(nnlib_model_compile(m, &in, 1, 3, NNLIB_LOSS_MSE, NULL, 2));
  assert_null(nnlib_model_get_layer(m, 0)->fused_activation);
  double err = gradcheck(m, 3, &in, 1, 2);
  print_message("  %-44s %.2e\n", "dense,gelu,dense gradcheck", err);
  assert_true(err < 1e-3);
  nnlib_model_free(m);
#if NNLIB__CODEC_MAX_NAMES >= 10
  check_two_linear("gelu", NNLIB_ACT_GELU, false);
  check_two_linear("gelu_tanh", NNLIB_ACT_GELU_TANH, false);
#endif
}

/* ------------------------------------------------------------ PyTorch */

static void check_torch_case(const fx_case *c) {
  const char *kind = fx_value(c, "kind");
  const fx_tensor *x = fx_need(c, "x"), *g = fx_need(c, "g");
  const fx_tensor *yt = fx_need(c, "y");
  bool linear = strcmp(kind, "linear") == 0;
  bool bias = linear && fx_int(c, "bias") == 1;
  nnlib_layer *l;
  if (linear)
    ASSERT_OK(nnlib_linear_create(&l, fx_int(c, "out"), bias));
  else
    l = gelu_layer(strcmp(kind, "gelu") == 0 ? NNLIB_ACT_GELU
                                             : NNLIB_ACT_GELU_TANH);
  int64_t n = x->dims[0];
  nnlib_model *m = lh_one_layer(l, x->dims + 1, x->rank - 1, n);
  if (linear) {
    assert_string_equal(nnlib_layer_get_param_name(l, 0), "weight");
    memcpy(param(m, 0, false), fx_need(c, "weight")->data,
           (size_t)fx_need(c, "weight")->size * sizeof(float));
    if (bias) {
      assert_string_equal(nnlib_layer_get_param_name(l, 1), "bias");
      memcpy(param(m, 1, false), fx_need(c, "bias")->data,
             (size_t)fx_need(c, "bias")->size * sizeof(float));
    }
  }
  nnlib__batch batch;
  memset(&batch, 0, sizeof batch);
  batch.x[0] = x->data;
  batch.n = n;
  batch.training = true;
  const float *y;
  ASSERT_OK(nnlib__forward(m, &m->bufs, &batch, &m->rng, &y));
  char what[120];
  double *want = lh_to_double(yt->data, yt->size);
  snprintf(what, sizeof what, "%s y", c->name);
  lh_expect_rel(what, y, want, yt->size, BAR);
  free(want);
  double loss = 0.0;
  for (int64_t i = 0; i < yt->size; i++)
    loss += (double)y[i] * g->data[i];
  float lossf = (float)loss;
  double want_loss = fx_need(c, "loss")->data[0];
  snprintf(what, sizeof what, "%s loss", c->name);
  lh_expect_rel(what, &lossf, &want_loss, 1, BAR);
  float *dy = floats(g->size), *dx = floats(x->size);
  memcpy(dy, g->data, (size_t)g->size * sizeof *dy);
  nnlib__run run = lh_run(m, 0);
  ASSERT_OK(l->ops->backward(l, &run, x->data, y, dy, dx, n));
  const char *names[3] = {"dx", "dweight", "dbias"};
  const float *got[3] = {dx, linear ? param(m, 0, true) : NULL,
                         bias ? param(m, 1, true) : NULL};
  for (int k = 0; k < (bias ? 3 : linear ? 2 : 1); k++) {
    const fx_tensor *t = fx_need(c, names[k]);
    want = lh_to_double(t->data, t->size);
    snprintf(what, sizeof what, "%s %s", c->name, names[k]);
    lh_expect_rel(what, got[k], want, t->size, BAR);
    free(want);
  }
  free(dy);
  free(dx);
  nnlib_model_free(m);
}

static void test_torch(void **s) {
  (void)s;
  char version[64];
  FILE *f = fx_open("torch_text_layers.txt", version);
  print_message("  fixtures from torch %s\n", version);
  fx_case c;
  int cases = 0;
  while (fx_read_case(f, &c)) {
    if (strcmp(fx_value(&c, "kind"), "layernorm") != 0) {
      check_torch_case(&c);
      cases++;
    }
    fx_free_case(&c);
  }
  fclose(f);
  assert_int_equal(cases, 5);
}

/* ------------------------------------------ descriptions and configs */

static void test_linear_descriptions(void **s) {
  (void)s;
  const char *const items[][2] = {
      {"linear:5", "linear:5"},
      {"linear:5:nobias", "linear:5:nobias"},
      {"linear:3,relu,linear:2:nobias", "linear:3,relu,linear:2:nobias"},
      {"dense:4,linear:3", "dense:4,linear:3"},
  };
  ts_check_spec_items(items, sizeof items / sizeof items[0]);
  const char *const bad[][2] = {
      {"linear", "linear"},
      {"linear:0", "column 1"},
      {"linear:-2", "column 1"},
      {"linear:2147483648", "column 1"},
      {"linear:3:bias", "the only option of linear is \"nobias\""},
      {"linear:3:nobias:x", "linear"},
  };
  ts_check_spec_errors(bad, sizeof bad / sizeof bad[0]);
  /* the dense layer's items are as before */
  const char *const dense[][2] = {{"dense:4", "dense:4"},
                                  {"dense:4:nobias", "dense:4:nobias"}};
  ts_check_spec_items(dense, 2);
}

static void test_gelu_descriptions(void **s) {
  (void)s;
#if NNLIB__CODEC_MAX_NAMES >= 10
  const char *const items[][2] = {{"gelu", "gelu"},
                                  {"gelu_tanh", "gelu_tanh"},
                                  {"linear:4,gelu,linear:2",
                                   "linear:4,gelu,linear:2"}};
  ts_check_spec_items(items, sizeof items / sizeof items[0]);
  const char *const bad[][2] = {{"gelu:1", "gelu"}, {"gelu_tanh:0", "gelu"}};
  ts_check_spec_errors(bad, sizeof bad / sizeof bad[0]);
#else
  print_message("  layer.h's NNLIB__CODEC_MAX_NAMES is %d: no room for the "
                "gelu items (10 names)\n",
                NNLIB__CODEC_MAX_NAMES);
  skip();
#endif
}

static nnlib_status read_config(nnlib_layer_kind kind,
                                const unsigned char *bytes, size_t size,
                                nnlib_layer **out) {
  nnlib__reader r = {bytes, size, "config"};
  *out = NULL;
  return nnlib__codec_for_kind(kind)->read_config(&r, out);
}

/* write_config -> read_config -> write_config gives the same bytes. */
static void expect_config_round_trip(nnlib_layer *l, size_t size) {
  const nnlib__layer_codec *codec =
      nnlib__codec_for_kind(nnlib_layer_get_kind(l));
  unsigned char a[32], b[32];
  nnlib__writer wa = {a, 0, sizeof a}, wb = {b, 0, sizeof b};
  codec->write_config(l, &wa);
  assert_int_equal(wa.size, size);
  nnlib_layer *back;
  ASSERT_OK(read_config(nnlib_layer_get_kind(l), a, wa.size, &back));
  codec->write_config(back, &wb);
  assert_int_equal(wb.size, size);
  assert_memory_equal(a, b, size);
  assert_string_equal(nnlib_layer_get_name(back), nnlib_layer_get_name(l));
  nnlib_layer_free(back);
  nnlib_layer_free(l);
}

static void test_configs(void **s) {
  (void)s;
  nnlib_layer *l;
  ASSERT_OK(nnlib_linear_create(&l, 7, 1));
  expect_config_round_trip(l, 12);
  ASSERT_OK(nnlib_linear_create(&l, 1, 0));
  expect_config_round_trip(l, 12);
  expect_config_round_trip(gelu_layer(NNLIB_ACT_GELU), 8);
  expect_config_round_trip(gelu_layer(NNLIB_ACT_GELU_TANH), 8);
  /* bad linear configs */
  const int64_t bad_units[] = {0, -1, (int64_t)1 << 31, INT64_MIN};
  unsigned char bytes[16];
  for (size_t i = 0; i < 4; i++) {
    nnlib__writer w = {bytes, 0, sizeof bytes};
    nnlib__put_i64(&w, bad_units[i]);
    nnlib__put_u32(&w, 1);
    ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE,
                  read_config(NNLIB_LAYER_LINEAR, bytes, w.size, &l));
    assert_null(l);
  }
  nnlib__writer w = {bytes, 0, sizeof bytes};
  nnlib__put_i64(&w, 3);
  nnlib__put_u32(&w, 2);
  ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE,
                read_config(NNLIB_LAYER_LINEAR, bytes, w.size, &l));
  ts_expect_message("with_bias is 2");
  ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE,
                read_config(NNLIB_LAYER_LINEAR, bytes, 11, &l));
  ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE,
                read_config(NNLIB_LAYER_LINEAR, bytes, 4, &l));
  /* bad activation configs: kind 10, GELU with a parameter */
  w.size = 0;
  nnlib__put_u32(&w, 10);
  nnlib__put_f32(&w, 0.0f);
  ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE,
                read_config(NNLIB_LAYER_ACTIVATION, bytes, w.size, &l));
  w.size = 0;
  nnlib__put_u32(&w, NNLIB_ACT_GELU);
  nnlib__put_f32(&w, 0.5f);
  ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE,
                read_config(NNLIB_LAYER_ACTIVATION, bytes, w.size, &l));
  ts_expect_message("activation gelu: parameter bits");
}

static void test_names_and_arguments(void **s) {
  (void)s;
  nnlib_layer *l = gelu_layer(NNLIB_ACT_GELU);
  assert_string_equal(nnlib_layer_get_name(l), "gelu");
  assert_int_equal(nnlib_layer_get_kind(l), NNLIB_LAYER_ACTIVATION);
  nnlib_layer_free(l);
  l = gelu_layer(NNLIB_ACT_GELU_TANH);
  assert_string_equal(nnlib_layer_get_name(l), "gelu_tanh");
  nnlib_layer_free(l);
  l = (nnlib_layer *)&l;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_activation_create(&l, (nnlib_activation)10, 0.0f));
  assert_null(l);
  ASSERT_OK(nnlib_linear_create(&l, 3, 0));
  assert_string_equal(nnlib_layer_get_name(l), "linear");
  assert_int_equal(nnlib_layer_get_kind(l), NNLIB_LAYER_LINEAR);
  assert_true(nnlib__layer_is_dense(l));
  nnlib_layer_free(l);
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_linear_create(NULL, 3, 1));
  const int64_t bad_out[] = {0, -1, INT64_MIN};
  for (size_t i = 0; i < 3; i++) {
    l = (nnlib_layer *)&l;
    ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                  nnlib_linear_create(&l, bad_out[i], 1));
    assert_null(l);
  }
  ts_expect_message("linear: out_features is");
  const int bad_bias[] = {-1, 2};
  for (size_t i = 0; i < 2; i++) {
    l = (nnlib_layer *)&l;
    ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                  nnlib_linear_create(&l, 3, bad_bias[i]));
    assert_null(l);
  }
  l = (nnlib_layer *)&l;
  ASSERT_STATUS(NNLIB_ERR_TOO_LARGE,
                nnlib_linear_create(&l, (int64_t)1 << 31, 1));
  assert_null(l);
  ASSERT_STATUS(NNLIB_ERR_TOO_LARGE,
                nnlib_linear_create(&l, INT64_MAX, 0));
  /* at compile: an output too large per sample */
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_linear_create(&l, (int64_t)1 << 30, 1));
  ASSERT_OK(nnlib_model_add(m, l));
  int64_t shape[2] = {(int64_t)1 << 34, 2};
  ASSERT_STATUS(NNLIB_ERR_TOO_LARGE,
                nnlib_model_compile(m, shape, 2, 1, NNLIB_LOSS_MSE, NULL, 1));
  nnlib_model_free(m);
}

/* A linear + GELU model saved and loaded: the same description (GELU
 * items permitting), configs and predictions. */
static void test_model_file(void **s) {
  (void)s;
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  nnlib_layer *l;
  ASSERT_OK(nnlib_linear_create(&l, 6, 1));
  ASSERT_OK(nnlib_model_add(m, l));
  ASSERT_OK(nnlib_model_add(m, gelu_layer(NNLIB_ACT_GELU_TANH)));
  ASSERT_OK(nnlib_linear_create(&l, 2, 0));
  ASSERT_OK(nnlib_model_add(m, l));
  ASSERT_OK(nnlib_model_add(m, gelu_layer(NNLIB_ACT_GELU)));
  int64_t shape[2] = {3, 4};
  ASSERT_OK(nnlib_model_compile(m, shape, 2, 2, NNLIB_LOSS_MSE, NULL, 4));
  float xv[24];
  uint32_t seed = 21u;
  ts_fill_uniform(xv, 24, -2.0f, 2.0f, &seed);
  int64_t xdims[3] = {2, 3, 4};
  float *p1 = predict(m, xv, xdims, 3, 6);
  void *data;
  size_t size;
  ASSERT_OK(nnlib_model_save_to_buffer(&data, &size, m, 0));
  nnlib_model *back;
  ASSERT_OK(nnlib_model_load_buffer(&back, data, size));
  nnlib_free(data);
  float *p2 = predict(back, xv, xdims, 3, 6);
  assert_memory_equal(p1, p2, 12 * sizeof(float));
  const char *names[4] = {"linear", "gelu_tanh", "linear", "gelu"};
  for (size_t i = 0; i < 4; i++)
    assert_string_equal(nnlib_layer_get_name(nnlib_model_get_layer(back, i)),
                        names[i]);
#if NNLIB__CODEC_MAX_NAMES >= 10
  char text[128];
  size_t needed;
  ASSERT_OK(nnlib_model_get_spec(back, text, sizeof text, &needed));
  assert_string_equal(text, "linear:6,gelu_tanh,linear:2:nobias,gelu");
#endif
  free(p1);
  free(p2);
  nnlib_model_free(m);
  nnlib_model_free(back);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_linear_reference),
      cmocka_unit_test(test_linear_steps),
      cmocka_unit_test(test_linear_init),
      cmocka_unit_test(test_linear_fused_sgd),
      cmocka_unit_test(test_gelu_values),
      cmocka_unit_test(test_gelu_derivative),
      cmocka_unit_test(test_activation_steps),
      cmocka_unit_test(test_fusion),
      cmocka_unit_test(test_torch),
      cmocka_unit_test(test_linear_descriptions),
      cmocka_unit_test(test_gelu_descriptions),
      cmocka_unit_test(test_configs),
      cmocka_unit_test(test_names_and_arguments),
      cmocka_unit_test(test_model_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
