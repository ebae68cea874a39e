/* activation.c - step, sigmoid, tanh, relu, leaky relu, softplus, softmax,
 * identity and GELU (exact and tanh): the layer, and the kernels the dense
 * layer fuses into its bias pass. Derivatives are written in terms of the
 * output y, so a fused dense+activation pair keeps one buffer; GELU is not
 * monotonic, so y does not tell x: its forward keeps each value's
 * derivative in the layer's workspace (one float per value) for backward,
 * and it is never fused (nnlib__activation_is_elementwise). */
/* no FMA contraction under clang either (GCC makes none in ISO C mode):
 * the same bits from every clone of a loop (core/vecmath.h) */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif
#include "layers/layer.h"
#include "core/vecmath.h"

#include <math.h>
#include <string.h>

typedef struct activation_layer {
  nnlib_layer base;
  nnlib_activation kind;
  float param;
} activation_layer;

/* Above this, softplus(x) == x in float32 (PyTorch's threshold). */
#define SOFTPLUS_THRESHOLD 20.0f

/* 1/sqrt(2 pi) and sqrt(2/pi) */
#define GELU_INV_SQRT_2PI 0.39894228040143267794
#define GELU_SQRT_2_PI 0.79788456080286535588
#define GELU_TANH_CUBIC 0.044715

/* GELU's kernels are branch-free float arithmetic with fmaf (core/
 * vecmath.h's selects and e^z), so a loop over them vectorises like the
 * recurrent gates' and runs 16 lanes a vector under AVX-512F; every
 * operation rounds once, so every clone gives the same bits. The price
 * is the baseline clone (CPUs without FMA, and builds without clones such
 * as ThreadSanitizer's): its fmaf is libm's, correctly rounded, a call
 * per operation, about 57 ns an element against 0.8 (4.4 for the double
 * code this replaced), as in the recurrent gates. Accuracy
 * (benchmarks/gelu_accuracy.c, every float in [-16, 16] and samples
 * beyond, against long double): see the numbers in
 * tests/test_internal_linear_gelu.c. Beyond the ends below each value is
 * its exact limit: x itself above, -0 below. */

/* x raised to -end if below (gelu_low), and clamped to [-end, end]
 * (gelu_clamp). Both tests are on x itself (a select on a select's result
 * stops GCC 12's vectoriser), and NaN fails both and passes. */
static inline float gelu_low(float x, float end) {
  return nnlib__select_f(x < -end, -end, x);
}

static inline float gelu_clamp(float x, float end) {
  return nnlib__select_f(x > end, end, gelu_low(x, end));
}

/* |x| > 14.5: GELU(x) is x, or -0 (14.5 Q(14.5) < 2^-150: a Q(a) rounds
 * to a float zero from a = 14.356 on). */
#define GELU_END 14.5f

/* R(a) = Q(a) e^{a^2/2}, Q the upper normal tail (Q(a) = Phi(-a) =
 * erfc(a/sqrt 2)/2): R(0) = 1/2, and R falls slowly, like 1/(a sqrt(2
 * pi)) far out. Fitted on [0, 14.5] as P4(a) / D5(a) (minimax relative,
 * 5.9e-9, benchmarks/gelu_fit.py), coefficients rounded to float. Every
 * coefficient is positive, so nothing cancels for a >= 0 and D has no
 * root there. */
static inline float gelu_tail_ratio(float a) {
  float p = 0.0041163117f, d = 0.010317944f;
  p = fmaf(p, a, 0.040633243f);
  d = fmaf(d, a, 0.101858884f);
  p = fmaf(p, a, 0.18323518f);
  d = fmaf(d, a, 0.46947077f);
  p = fmaf(p, a, 0.438295f);
  d = fmaf(d, a, 1.2025033f);
  p = fmaf(p, a, 0.5f);
  d = fmaf(d, a, 1.6744751f);
  d = fmaf(d, a, 1.0f);
  return p / d;
}

/* t e^{-a^2/2} for 0 <= a <= 14.5 and t of moderate size, rounded once
 * where the result is subnormal. a^2 = h + l exactly (l from fmaf), so
 * the exponent carries no rounding of its argument: e^{-a^2/2} = e^{-h/2}
 * (1 - l/2) to within (l/2)^2 < 2^-36, and e^{-h/2} = 2^n (1 + q)
 * (nnlib__expm1_float_parts; -h/2 >= -105.125, n >= -152). 2^n is applied
 * as 2^max(n, -63) (exact: the product stays normal) and then the rest
 * (one rounding, into the subnormals if it must). */
static inline float gelu_times_gauss(float t, float a) {
  float h = a * a, l = fmaf(a, a, -h);
  int32_t e; /* n + 127 */
  float q = nnlib__expm1_float_parts(-0.5f * h, &e);
  t = fmaf(t, q, t);
  t = fmaf(t, -0.5f * l, t);
  int32_t big = nnlib__max_i32(e, 64);
  return (t * nnlib__pow2_biased(big)) * nnlib__pow2_biased(e - big + 127);
}

/* GELU(x) = x Phi(x) = max(x, 0) - a Q(a) with a = |x| (Phi(x) = 1 - Q(x)
 * above 0, Q(-x) below): the textbook 1 + erf(x/sqrt 2) cancels for
 * negative x (all digits lost by x = -5), the tail does not. |x| clamped
 * to 14.5 gives x above and -0 below; max(x, 0) is -0 for x = -0, so
 * GELU(-0) = -0. NaN flows through a. */
static inline float gelu(float x) {
  float relu = nnlib__select_f(x >= 0.0f, x, -0.0f);
  float a = fabsf(gelu_clamp(x, GELU_END));
  return relu - gelu_times_gauss(a * gelu_tail_ratio(a), a);
}

/* GELU'(x) = Phi(x) + x phi(x), phi(x) = e^{-x^2/2} / sqrt(2 pi): with
 * x clamped, 1 beyond +14.5, and below -14.5 the value at -14.5, -2^-149
 * (a phi(a) - Q(a) there rounds to the smallest subnormal; the exact
 * derivative rounds to -0 from x = -14.541). Phi(x) = H(x) - s Q(a) with s the
 * sign of x and H 1 for positive x, 0 for negative, both taken from the sign
 * bit (so -0 and +0 both give 1/2), and x phi(x) = s a phi(a), so GELU'(x)
 * = H - s e^{-a^2/2} (R(a) - a / sqrt(2 pi)): one fmaf for the difference,
 * which vanishes at a = 0.7518 (GELU's minimum), one rounding there. */
static inline float gelu_derivative(float x) {
  float a = fabsf(gelu_clamp(x, GELU_END));
  float sign = copysignf(1.0f, x), step = 0.5f + 0.5f * sign; /* exact */
  float t = fmaf(-a, (float)GELU_INV_SQRT_2PI, gelu_tail_ratio(a));
  return step - sign * gelu_times_gauss(t, a);
}

/* PyTorch's approximate='tanh': x/2 (1 + tanh(u)), u = sqrt(2/pi) (x +
 * 0.044715 x^3), computed as x / (1 + E), E = e^{-2u} (the same value: 1 +
 * tanh u = 2 / (1 + e^{-2u})), which does not cancel for negative x. E is
 * taken at x clamped to +-11, where 2u = +-112.5: above 11, E < 2^-162
 * and the value is x itself; below -11 the numerator is clamped too, and
 * -11 / (1 + e^112.5) < 2^-150 gives -0 (the exact value rounds to -0
 * from x = -10.6 on). NaN passes. */
#define GELU_TANH_END 11.0f

/* E = e^{-2u} of the clamped x */
static inline double gelu_tanh_e(double vc) {
  return nnlib__exp_for_float(
      vc * (-2.0 * GELU_SQRT_2_PI +
            (-2.0 * GELU_SQRT_2_PI * GELU_TANH_CUBIC) * (vc * vc)));
}

static inline float gelu_tanh(float x) {
  double low = gelu_low(x, GELU_TANH_END);
  return (float)(low / (1.0 + gelu_tanh_e(gelu_clamp(x, GELU_TANH_END))));
}

/* d/dx x s = s + x s (1 - s) 2u' with s = 1 / (1 + E), 1 - s = E s and
 * 2u' = 2 sqrt(2/pi) (1 + 3 0.044715 x^2): with x clamped, 1 or 0
 * beyond +-11. */
static inline float gelu_tanh_derivative(float x) {
  double vc = gelu_clamp(x, GELU_TANH_END), e = gelu_tanh_e(vc);
  double s = 1.0 / (1.0 + e);
  double du2 = 2.0 * GELU_SQRT_2_PI +
               (2.0 * GELU_SQRT_2_PI * 3.0 * GELU_TANH_CUBIC) * (vc * vc);
  return (float)(s + vc * (s * (e * s)) * du2);
}

static bool is_gelu(nnlib_activation kind) {
  return kind == NNLIB_ACT_GELU || kind == NNLIB_ACT_GELU_TANH;
}

static inline float activate(nnlib_activation kind, float param, float x) {
  switch (kind) {
  /* written so that NaN compares false and passes through (reliability R4:
   * a NaN in the data must reach the loss, not be silently zeroed) */
  case NNLIB_ACT_STEP: return x > 0.0f ? 1.0f : x <= 0.0f ? 0.0f : x;
  case NNLIB_ACT_SIGMOID: return nnlib__sigmoid(x); /* core/vecmath.h */
  case NNLIB_ACT_TANH: return nnlib__tanh(x);
  case NNLIB_ACT_RELU: return x <= 0.0f ? 0.0f : x;
  case NNLIB_ACT_LEAKY_RELU: return x > 0.0f ? x : param * x;
  case NNLIB_ACT_SOFTPLUS:
    return x > SOFTPLUS_THRESHOLD ? x : log1pf(expf(x));
  case NNLIB_ACT_GELU: return gelu(x);
  case NNLIB_ACT_GELU_TANH: return gelu_tanh(x);
  default: return x;
  }
}

/* f'(x) expressed through y = f(x). */
static inline float derivative(nnlib_activation kind, float param, float y) {
  switch (kind) {
  case NNLIB_ACT_SIGMOID: return y * (1.0f - y);
  case NNLIB_ACT_TANH: return 1.0f - y * y;
  case NNLIB_ACT_RELU: return y > 0.0f ? 1.0f : 0.0f;
  case NNLIB_ACT_LEAKY_RELU: return y > 0.0f ? 1.0f : param;
  /* softplus' = sigmoid(x) = 1 - e^{-y}; expm1 keeps it exact for tiny y */
  case NNLIB_ACT_SOFTPLUS: return -expm1f(-y);
  default: return 1.0f; /* identity, and step's straight-through */
  }
}

/* The switch sits outside the loops so each loop is a tight vectorisable
 * pass; a macro stamps one loop per kind.
 * In place (x == y: the dense layer's fused pass) has loops of its own:
 * a loop that reads and writes the same element vectorises, while a loop
 * over two pointers that might overlap is versioned on a run-time overlap
 * test, which exact aliasing fails, so it would run the scalar copy. */
#define APPLY_ROW(SRC, EXPR)                                                   \
  if (bias != NULL) {                                                          \
    for (int64_t c = 0; c < cols; c++) {                                       \
      float v = (SRC)[c] + bias[c];                                            \
      yr[c] = (EXPR);                                                          \
    }                                                                          \
  } else {                                                                     \
    for (int64_t c = 0; c < cols; c++) {                                       \
      float v = (SRC)[c];                                                      \
      yr[c] = (EXPR);                                                          \
    }                                                                          \
  }

#define APPLY_LOOP(EXPR)                                                       \
  for (int64_t r = 0; r < rows; r++) {                                         \
    const float *xr = x + r * cols;                                            \
    float *yr = y + r * cols;                                                  \
    if (xr == yr) {                                                            \
      APPLY_ROW(yr, EXPR)                                                      \
    } else {                                                                   \
      APPLY_ROW(xr, EXPR)                                                      \
    }                                                                          \
  }

#define APPLY_SWITCH                                                           \
  switch (kind) {                                                              \
  case NNLIB_ACT_RELU: APPLY_LOOP(v <= 0.0f ? 0.0f : v); break; /* NaN stays */\
  case NNLIB_ACT_LEAKY_RELU: APPLY_LOOP(v > 0.0f ? v : param * v); break;      \
  case NNLIB_ACT_IDENTITY: APPLY_LOOP(v); break;                               \
  default: APPLY_LOOP(activate(kind, param, v)); break;                        \
  }

/* sigmoid and tanh cost tens of vector operations per element, and
 * over short rows (a small MLP's 16 or 10 outputs) a per-row loop leaves
 * part of every row to its scalar remainder. So they take the bias (or
 * the copy) row by row first, then one flat pass over all rows * cols:
 * the same operations in the same order, so the same bits. GELU too,
 * with passes of its own (gelu_forward_*). */
static bool flat_kind(nnlib_activation kind) {
  return kind == NNLIB_ACT_SIGMOID || kind == NNLIB_ACT_TANH ||
         is_gelu(kind);
}

/* GELU over count values, in place or from x (no copy pass first) */
NNLIB__GATE_CLONES
static void gelu_forward_in_place(nnlib_activation kind, float *restrict y,
                                  int64_t count) {
  if (kind == NNLIB_ACT_GELU)
    for (int64_t i = 0; i < count; i++)
      y[i] = gelu(y[i]);
  else
    for (int64_t i = 0; i < count; i++)
      y[i] = gelu_tanh(y[i]);
}

NNLIB__GATE_CLONES
static void gelu_forward_separate(nnlib_activation kind,
                                  const float *restrict x, float *restrict y,
                                  int64_t count) {
  if (kind == NNLIB_ACT_GELU)
    for (int64_t i = 0; i < count; i++)
      y[i] = gelu(x[i]);
  else
    for (int64_t i = 0; i < count; i++)
      y[i] = gelu_tanh(x[i]);
}

/* GELU over count values as gelu_forward_*, and each value's derivative
 * into slope for backward: both from the same normal tail (or e^-2u),
 * which the compiler computes once, so this costs little more than
 * GELU alone, and backward becomes one product per value. The slope is
 * what gelu_derivative gives, bit for bit. x may be y (read first). */
NNLIB__GATE_CLONES
static void gelu_forward_keep(nnlib_activation kind, const float *x,
                              float *y, float *restrict slope,
                              int64_t count) {
  if (kind == NNLIB_ACT_GELU)
    for (int64_t i = 0; i < count; i++) {
      float v = x[i];
      slope[i] = gelu_derivative(v);
      y[i] = gelu(v);
    }
  else
    for (int64_t i = 0; i < count; i++) {
      float v = x[i];
      slope[i] = gelu_tanh_derivative(v);
      y[i] = gelu_tanh(v);
    }
}

NNLIB__VECTOR_CLONES
static void apply_flat(nnlib_activation kind, float *restrict y,
                       int64_t count) {
  if (kind == NNLIB_ACT_SIGMOID)
    for (int64_t i = 0; i < count; i++)
      y[i] = nnlib__sigmoid(y[i]);
  else if (kind == NNLIB_ACT_TANH)
    for (int64_t i = 0; i < count; i++)
      y[i] = nnlib__tanh(y[i]);
  else
    gelu_forward_in_place(kind, y, count);
}

/* The dense layer's fused pass, y = f(y + b): with restrict the loops need
 * no run-time overlap test at all, which short rows (16 or 10 outputs)
 * would not amortise, so the vector loop runs for them too. */
NNLIB__VECTOR_CLONES
static void apply_in_place(nnlib_activation kind, float param,
                           float *restrict y, const float *restrict bias,
                           int64_t rows, int64_t cols) {
  const float *x = y;
  if (flat_kind(kind)) {
    if (bias != NULL)
      APPLY_LOOP(v);
    apply_flat(kind, y, rows * cols);
    return;
  }
  APPLY_SWITCH
}

/* x and y are distinct buffers (x == y goes to apply_in_place) */
NNLIB__VECTOR_CLONES
static void apply_separate(nnlib_activation kind, float param, const float *x,
                           const float *bias, float *y, int64_t rows,
                           int64_t cols) {
  if (flat_kind(kind)) {
    APPLY_LOOP(v); /* y = x (+ b) */
    apply_flat(kind, y, rows * cols);
    return;
  }
  APPLY_SWITCH
}

/* GELU without a bias (the activation layer's case) calls its own passes
 * from here, outside the cloned functions: a clone's call to another
 * cloned function goes straight to the callee's clone for the same
 * target, so the AVX2 apply_* would never reach GELU's AVX-512 clones. */
void nnlib__activation_apply(nnlib_activation kind, float param,
                             const float *x, const float *bias, float *y,
                             int64_t rows, int64_t cols) {
  if (is_gelu(kind) && bias == NULL) {
    if (x == y)
      gelu_forward_in_place(kind, y, rows * cols);
    else /* distinct buffers */
      gelu_forward_separate(kind, x, y, rows * cols);
  } else if (x == y)
    apply_in_place(kind, param, y, bias, rows, cols);
  else
    apply_separate(kind, param, x, bias, y, rows, cols);
}

/* One pass per kind, like APPLY_LOOP: dz = dy * f'(y) from g = dy[i] and
 * v = y[i], with the bias gradient (column sums of dz) summed in the same
 * pass. Both operands are loaded unconditionally, so a select such as
 * ReLU's becomes a vector blend instead of an unpredictable branch. */
#define BACKWARD_ROW(SRC, EXPR)                                                \
  if (bias_grad != NULL) {                                                     \
    for (int64_t c = 0; c < cols; c++) {                                       \
      float g = (SRC)[c], v = yr[c];                                           \
      (void)v;                                                                 \
      float z = (EXPR);                                                        \
      dzr[c] = z;                                                              \
      bias_grad[c] += z;                                                       \
    }                                                                          \
  } else {                                                                     \
    for (int64_t c = 0; c < cols; c++) {                                       \
      float g = (SRC)[c], v = yr[c];                                           \
      (void)v;                                                                 \
      dzr[c] = (EXPR);                                                         \
    }                                                                          \
  }

/* in place (dz == dy) separately, for the reason given at APPLY_ROW */
#define BACKWARD_LOOP(EXPR)                                                    \
  for (int64_t r = 0; r < rows; r++) {                                         \
    const float *yr = y + r * cols, *dyr = dy + r * cols;                      \
    float *dzr = dz + r * cols;                                                \
    if (dyr == dzr) {                                                          \
      BACKWARD_ROW(dzr, EXPR)                                                  \
    } else {                                                                   \
      BACKWARD_ROW(dyr, EXPR)                                                  \
    }                                                                          \
  }

/* Not for GELU (its derivative needs x, see gelu_backward): the dense
 * layer never fuses it. */
void nnlib__activation_backward(nnlib_activation kind, float param,
                                const float *y, const float *dy, float *dz,
                                float *bias_grad, int64_t rows, int64_t cols) {
  if (bias_grad != NULL)
    for (int64_t c = 0; c < cols; c++)
      bias_grad[c] = 0.0f;
  switch (kind) {
  case NNLIB_ACT_RELU: BACKWARD_LOOP(v > 0.0f ? g : 0.0f); break;
  case NNLIB_ACT_LEAKY_RELU: BACKWARD_LOOP(v > 0.0f ? g : param * g); break;
  case NNLIB_ACT_SIGMOID: BACKWARD_LOOP(g * (v * (1.0f - v))); break;
  case NNLIB_ACT_TANH: BACKWARD_LOOP(g * (1.0f - v * v)); break;
  case NNLIB_ACT_IDENTITY:
  case NNLIB_ACT_STEP: BACKWARD_LOOP(g); break;
  default: BACKWARD_LOOP(g * derivative(kind, param, v)); break;
  }
}

/* dx[i] = dy[i] GELU'(x[i]) computed afresh, for a call without a
 * workspace (the layer driven alone; a model always gives one, and then
 * forward kept the derivatives): reads x[i] and dy[i] before writing
 * dx[i], so dx may be the spent output y or dy itself. In place (dx == dy) has its
 * own loops, for the reason given at APPLY_ROW; with restrict neither
 * needs a run-time overlap test. */
NNLIB__GATE_CLONES
static void gelu_backward_in_place(nnlib_activation kind,
                                   const float *restrict x,
                                   float *restrict dx, int64_t count) {
  if (kind == NNLIB_ACT_GELU)
    for (int64_t i = 0; i < count; i++)
      dx[i] *= gelu_derivative(x[i]);
  else
    for (int64_t i = 0; i < count; i++)
      dx[i] *= gelu_tanh_derivative(x[i]);
}

NNLIB__GATE_CLONES
static void gelu_backward_separate(nnlib_activation kind,
                                   const float *restrict x,
                                   const float *restrict dy,
                                   float *restrict dx, int64_t count) {
  if (kind == NNLIB_ACT_GELU)
    for (int64_t i = 0; i < count; i++)
      dx[i] = dy[i] * gelu_derivative(x[i]);
  else
    for (int64_t i = 0; i < count; i++)
      dx[i] = dy[i] * gelu_tanh_derivative(x[i]);
}

/* dx[i] = dy[i] slope[i] with the slopes forward kept; dx may be dy. */
NNLIB__VECTOR_CLONES
static void gelu_backward_kept(const float *restrict slope, const float *dy,
                               float *dx, int64_t count) {
  for (int64_t i = 0; i < count; i++)
    dx[i] = dy[i] * slope[i];
}

static void gelu_backward(nnlib_activation kind, const float *x,
                          const float *slope, const float *dy, float *dx,
                          int64_t count) {
  if (slope != NULL)
    gelu_backward_kept(slope, dy, dx, count);
  else if (dx == dy)
    gelu_backward_in_place(kind, x, dx, count);
  else
    gelu_backward_separate(kind, x, dy, dx, count);
}

/* The activation layer's GELU passes over the pass pool, in blocks of
 * GELU_BLOCK values: each value is computed alone (the same operations in
 * a vector lane as in the scalar remainder), so any split gives the same
 * bits. A part of at least GELU_MIN_BLOCKS blocks (32k values, some 30
 * microseconds) pays for waking a worker. */
enum { GELU_BLOCK = 64, GELU_MIN_BLOCKS = 512 };

typedef struct gelu_pass {
  nnlib_activation kind;
  const float *x;  /* the layer's input */
  const float *dy; /* backward only; NULL: forward */
  float *out;      /* y forward, dx backward */
  float *slope;    /* the derivatives forward keeps for backward; NULL:
                      none (forward without backward after it) */
  int64_t count;
} gelu_pass;

static void gelu_range(void *ctx, int64_t begin, int64_t end) {
  const gelu_pass *p = ctx;
  int64_t first = begin * GELU_BLOCK;
  int64_t last = end * GELU_BLOCK < p->count ? end * GELU_BLOCK : p->count;
  const float *x = p->x + first;
  float *out = p->out + first, *slope = p->slope ? p->slope + first : NULL;
  if (p->dy != NULL)
    gelu_backward(p->kind, x, slope, p->dy + first, out, last - first);
  else if (slope != NULL)
    gelu_forward_keep(p->kind, x, out, slope, last - first);
  else if (x == out)
    gelu_forward_in_place(p->kind, out, last - first);
  else
    gelu_forward_separate(p->kind, x, out, last - first);
}

static void gelu_parallel(nnlib_activation kind, const float *x,
                          const float *dy, float *out, float *slope,
                          int64_t count) {
  gelu_pass p = {kind, x, dy, out, slope, count};
  nnlib__parallel_for((count + GELU_BLOCK - 1) / GELU_BLOCK, GELU_MIN_BLOCKS,
                      gelu_range, &p);
}

void nnlib__softmax_rows(const float *x, float *y, int64_t rows,
                         int64_t cols) {
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * cols;
    float *yr = y + r * cols;
    float max = xr[0];
    for (int64_t c = 1; c < cols; c++)
      if (xr[c] > max || isnan(xr[c]))
        max = xr[c];
    double sum = 0.0;
    for (int64_t c = 0; c < cols; c++) {
      yr[c] = expf(xr[c] - max);
      sum += yr[c];
    }
    float inv = (float)(1.0 / sum);
    for (int64_t c = 0; c < cols; c++)
      yr[c] *= inv;
  }
}

static const char *kind_name(nnlib_activation kind) {
  switch (kind) {
  case NNLIB_ACT_IDENTITY: return "identity";
  case NNLIB_ACT_STEP: return "step";
  case NNLIB_ACT_SIGMOID: return "sigmoid";
  case NNLIB_ACT_TANH: return "tanh";
  case NNLIB_ACT_RELU: return "relu";
  case NNLIB_ACT_LEAKY_RELU: return "leaky_relu";
  case NNLIB_ACT_SOFTPLUS: return "softplus";
  case NNLIB_ACT_SOFTMAX: return "softmax";
  case NNLIB_ACT_GELU: return "gelu";
  case NNLIB_ACT_GELU_TANH: return "gelu_tanh";
  }
  return "activation";
}

static const char *activation_name(const nnlib_layer *l) {
  return kind_name(((const activation_layer *)l)->kind);
}

/* GELU's workspace: one derivative per value of the batch, written by a
 * forward that backward may follow (not nnlib__run.folded) and read by
 * backward (gelu_forward_keep). */
static nnlib_status activation_plan(nnlib_layer *l, const nnlib__shape *in,
                                    int64_t max_batch) {
  l->out_shape = *in;
  int64_t values;
  if (is_gelu(((const activation_layer *)l)->kind)) {
    if (nnlib__mul_overflows(nnlib__shape_numel(in), max_batch, &values))
      return nnlib__error(NNLIB_ERR_TOO_LARGE,
                          "%s: %lld samples overflow its workspace",
                          activation_name(l), (long long)max_batch);
    l->workspace_floats = (size_t)values;
  }
  return NNLIB_OK;
}

/* One call holds rows of the last axis (all of n samples, or run->steps
 * positions of each when decoding: nnlib__run_rows). */
static int64_t last_axis(const nnlib_layer *l) {
  return l->in_shape.dims[l->in_shape.rank - 1];
}

static nnlib_status activation_forward(nnlib_layer *l, const nnlib__run *run,
                                       const float *x, float *y, int64_t n) {
  const activation_layer *a = (const activation_layer *)l;
  int64_t rows = nnlib__run_rows(l, run, n), cols = last_axis(l);
  if (rows == 0)
    return NNLIB_OK;
  if (a->kind == NNLIB_ACT_SOFTMAX)
    nnlib__softmax_rows(x, y, rows, cols);
  else if (is_gelu(a->kind))
    gelu_parallel(a->kind, x, NULL, y, run->folded ? NULL : run->workspace,
                  rows * cols);
  else /* n rows of a sample's values each, as before decoding existed */
    nnlib__activation_apply(a->kind, a->param, x, NULL, y, n,
                            rows * cols / n);
  return NNLIB_OK;
}

/* softmax: dx_i = y_i (dy_i - sum_j dy_j y_j) per row */
static void softmax_backward(const float *y, const float *dy, float *dx,
                             int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; r++) {
    const float *yr = y + r * cols, *dyr = dy + r * cols;
    float *dxr = dx + r * cols;
    double dot = 0.0;
    for (int64_t c = 0; c < cols; c++)
      dot += (double)dyr[c] * yr[c];
    for (int64_t c = 0; c < cols; c++)
      dxr[c] = yr[c] * (dyr[c] - (float)dot);
  }
}

static nnlib_status activation_backward(nnlib_layer *l, const nnlib__run *run,
                                        const float *x, const float *y,
                                        float *dy, float *dx, int64_t n) {
  const activation_layer *a = (const activation_layer *)l;
  if (dx == NULL)
    return NNLIB_OK;
  int64_t rows = nnlib__run_rows(l, run, n), cols = last_axis(l);
  if (rows == 0)
    return NNLIB_OK;
  if (a->kind == NNLIB_ACT_SOFTMAX)
    softmax_backward(y, dy, dx, rows, cols);
  else if (is_gelu(a->kind))
    gelu_parallel(a->kind, x, dy, dx, run->workspace, rows * cols);
  else
    nnlib__activation_backward(a->kind, a->param, y, dy, dx, NULL, n,
                               rows * cols / n);
  return NNLIB_OK;
}

static const nnlib__layer_ops activation_ops = {
    .kind = NNLIB_LAYER_ACTIVATION,
    .plan = activation_plan,
    .forward = activation_forward,
    .backward = activation_backward,
    .name = activation_name,
    .decodes = true, /* position by position, no cache */
    .dx_over_output = true, /* dx[i] from y[i] (GELU: x[i]) and dy[i]
                               (softmax: the row dot product first) */
};

nnlib_status nnlib_activation_create(nnlib_layer **out, nnlib_activation kind,
                                     float param) {
  NNLIB_CHECK_ARG(out != NULL, "nnlib_activation_create: out is NULL");
  *out = NULL;
  NNLIB_CHECK_ARG(kind >= NNLIB_ACT_IDENTITY && kind <= NNLIB_ACT_GELU_TANH,
                  "nnlib_activation_create: unknown activation %d", (int)kind);
  /* a negative slope would make the sign of y no longer tell the sign of x,
   * which the output-based derivative relies on */
  NNLIB_CHECK_ARG(kind != NNLIB_ACT_LEAKY_RELU ||
                      (isfinite(param) && param >= 0.0f),
                  "leaky_relu: slope %g must be finite and >= 0",
                  (double)param);
  activation_layer *a = nnlib__alloc(sizeof *a);
  if (a == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "nnlib_activation_create: no memory");
  nnlib__layer_init(&a->base, &activation_ops);
  a->kind = kind;
  a->param = kind == NNLIB_ACT_LEAKY_RELU ? param : 0.0f;
  *out = &a->base;
  return NNLIB_OK;
}

/* What the dense layer's fused pass can apply: elementwise, with the
 * derivative written from y (so not softmax, and not GELU, whose
 * derivative needs x, which the fused pair does not keep). */
bool nnlib__activation_is_elementwise(const nnlib_layer *l) {
  if (l->ops != &activation_ops)
    return false;
  nnlib_activation kind = ((const activation_layer *)l)->kind;
  return kind != NNLIB_ACT_SOFTMAX && !is_gelu(kind);
}

nnlib_activation nnlib__activation_kind(const nnlib_layer *l) {
  return l->ops == &activation_ops ? ((const activation_layer *)l)->kind
                                   : NNLIB_ACT_IDENTITY;
}

float nnlib__activation_param(const nnlib_layer *l) {
  return l->ops == &activation_ops ? ((const activation_layer *)l)->param
                                   : 0.0f;
}

/* ------------------------- model description and model file (codec) */

/* "leaky_relu" without a slope means PyTorch's default. */
#define LEAKY_RELU_DEFAULT_SLOPE 0.01f

/* The codec's spec_names are in nnlib_activation order, so the index of the
 * matching name is the kind. */
static nnlib_status activation_parse_spec(const nnlib__spec_item *item,
                                          nnlib_layer **out) {
  nnlib_activation kind = NNLIB_ACT_IDENTITY;
  for (int k = NNLIB_ACT_IDENTITY;
       k <= NNLIB_ACT_GELU_TANH; k++)
    if (nnlib__activation_codec.spec_names[k] != NULL &&
        nnlib__spec_field_is(item, 0, nnlib__activation_codec.spec_names[k]))
      kind = (nnlib_activation)k;
  float slope = LEAKY_RELU_DEFAULT_SLOPE;
  if (kind == NNLIB_ACT_LEAKY_RELU) {
    NNLIB_TRY(nnlib__spec_fields(item, 1, 2));
    if (item->field_count == 2)
      NNLIB_TRY(nnlib__spec_float(item, 1, &slope));
  } else {
    NNLIB_TRY(nnlib__spec_fields(item, 1, 1));
  }
  return nnlib_activation_create(out, kind, slope);
}

static void activation_write_spec(const nnlib_layer *l, nnlib__text *t) {
  const activation_layer *a = (const activation_layer *)l;
  nnlib__text_append(t, "%s", kind_name(a->kind));
  if (a->kind == NNLIB_ACT_LEAKY_RELU &&
      a->param != LEAKY_RELU_DEFAULT_SLOPE) {
    nnlib__text_append(t, ":");
    nnlib__text_append_float(t, a->param);
  }
}

/* config: u32 nnlib_activation, f32 parameter (the leaky slope; +0 for the
 * other kinds) */
static void activation_write_config(const nnlib_layer *l, nnlib__writer *w) {
  const activation_layer *a = (const activation_layer *)l;
  nnlib__put_u32(w, (uint32_t)a->kind);
  nnlib__put_f32(w, a->param);
}

static nnlib_status activation_read_config(nnlib__reader *r,
                                           nnlib_layer **out) {
  uint32_t kind, bits;
  float param;
  NNLIB_TRY(nnlib__get_u32(r, &kind));
  NNLIB_TRY(nnlib__get_f32(r, &param));
  if (kind > (uint32_t)NNLIB_ACT_GELU_TANH)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "activation: unknown kind %u", kind);
  memcpy(&bits, &param, sizeof bits);
  if (kind != (uint32_t)NNLIB_ACT_LEAKY_RELU && bits != 0)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "activation %s: parameter bits 0x%08x, must be 0",
                        kind_name((nnlib_activation)kind), bits);
  return nnlib_activation_create(out, (nnlib_activation)kind, param);
}

const nnlib__layer_codec nnlib__activation_codec = {
    .kind = NNLIB_LAYER_ACTIVATION,
    .spec_names = {"identity", "step", "sigmoid", "tanh", "relu",
                   "leaky_relu", "softplus", "softmax", "gelu", "gelu_tanh"},
    .parse_spec = activation_parse_spec,
    .write_spec = activation_write_spec,
    .write_config = activation_write_config,
    .read_config = activation_read_config,
};
