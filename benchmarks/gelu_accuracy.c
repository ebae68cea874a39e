/* gelu_accuracy.c - the activation layer's GELU (exact and tanh) against
 * long double references: the worst ulp of the value, and the worst
 * absolute and relative error of the derivative, over every float in
 * [-16, 16] with |x| >= 2^-12, every 64th float below that (down to the
 * smallest subnormal), and every 256th float beyond 16 up to FLT_MAX; each
 * with both signs. Not part of the CMake build; built like gelu_bench.c:
 *
 *   gcc -O2 -std=c11 -Iinclude -Isrc benchmarks/gelu_accuracy.c \
 *       build-rel/libnnlib.a $(pkg-config --libs openblas) -lz -lm \
 *       -o build-rel/gelu-accuracy
 *   build-rel/gelu-accuracy          (about 2 minutes on one core)
 *
 * The ulp is the float spacing at the exact value (2^-149 below the normal
 * range). The derivative's relative error is taken where |f'| >= 1e-3
 * (below, its absolute error is the measure). The bits line is a hash
 * (FNV-1a) of every value and derivative computed: equal on two machines
 * (or two clones: AVX-512F, x86-64-v3, baseline), the results are the same
 * bits. */
#define _POSIX_C_SOURCE 200809L
#include "nnlib_internal.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 4096

static const long double SQRT_2_PI_L =
    0.797884560802865355879892119868763737L; /* sqrt(2/pi) */
static const long double INV_SQRT_2PI_L =
    0.398942280401432677939946059934381868L; /* 1/sqrt(2 pi) */

static long double ref_value(nnlib_activation kind, long double x) {
  if (kind == NNLIB_ACT_GELU)
    return 0.5L * x * erfcl(-x / sqrtl(2.0L));
  long double u = SQRT_2_PI_L * (x + 0.044715L * x * x * x);
  return x / (1.0L + expl(-2.0L * u));
}

static long double ref_derivative(nnlib_activation kind, long double x) {
  if (kind == NNLIB_ACT_GELU)
    return 0.5L * erfcl(-x / sqrtl(2.0L)) +
           x * INV_SQRT_2PI_L * expl(-0.5L * x * x);
  long double u = SQRT_2_PI_L * (x + 0.044715L * x * x * x);
  long double du = SQRT_2_PI_L * (1.0L + 3.0L * 0.044715L * x * x);
  long double e = expl(-2.0L * u), s = 1.0L / (1.0L + e);
  if (isinf(e)) /* x far below: s = 0 */
    return 0.0L;
  return s + x * s * (e * s) * 2.0L * du;
}

static double ulp_error(float y, long double want) {
  long double a = fabsl(want);
  int e;
  frexpl(a, &e);
  long double ulp = a < 0x1p-126L ? 0x1p-149L : ldexpl(1.0L, e - 24);
  return (double)(fabsl((long double)y - want) / ulp);
}

typedef struct worst {
  double ulp, d_abs, d_rel;
  float ulp_at, d_abs_at, d_rel_at;
  long long count;
  uint64_t hash;
} worst;

static uint64_t fnv1a(uint64_t hash, float v) {
  uint32_t bits;
  memcpy(&bits, &v, sizeof bits);
  for (int i = 0; i < 4; i++) {
    hash ^= (bits >> (8 * i)) & 0xffu;
    hash *= 0x100000001b3ull;
  }
  return hash;
}

typedef struct sweep {
  nnlib_activation kind;
  nnlib_layer *layer;
  nnlib_model *model;
  float x[CHUNK], y[CHUNK], dy[CHUNK], dx[CHUNK];
  int fill;
  worst w;
} sweep;

static void flush(sweep *s) {
  if (s->fill == 0)
    return;
  nnlib__activation_apply(s->kind, 0.0f, s->x, NULL, s->y, 1, s->fill);
  /* no workspace: backward then takes each derivative from x afresh
   * (with one, it would read the slopes a model's forward keeps there,
   * which nnlib__activation_apply does not write) */
  nnlib__run run = {.training = true, .workspace = NULL,
                    .rng = &s->model->rng};
  for (int i = s->fill; i < CHUNK; i++)
    s->x[i] = 0.0f; /* the layer is planned for CHUNK values */
  s->layer->ops->backward(s->layer, &run, s->x, s->y, s->dy, s->dx, 1);
  for (int i = 0; i < s->fill; i++) {
    s->w.hash = fnv1a(fnv1a(s->w.hash, s->y[i]), s->dx[i]);
    long double x = s->x[i];
    double u = ulp_error(s->y[i], ref_value(s->kind, x));
    if (!(u <= s->w.ulp)) {
      s->w.ulp = u;
      s->w.ulp_at = s->x[i];
    }
    long double d = ref_derivative(s->kind, x);
    double abs_err = (double)fabsl((long double)s->dx[i] - d);
    if (!(abs_err <= s->w.d_abs)) {
      s->w.d_abs = abs_err;
      s->w.d_abs_at = s->x[i];
    }
    if (fabsl(d) >= 1e-3L && !(abs_err / (double)fabsl(d) <= s->w.d_rel)) {
      s->w.d_rel = abs_err / (double)fabsl(d);
      s->w.d_rel_at = s->x[i];
    }
  }
  s->w.count += s->fill;
  s->fill = 0;
}

static void add(sweep *s, float x) {
  s->x[s->fill++] = x;
  if (s->fill == CHUNK)
    flush(s);
}

/* every `stride`-th float with bits in [from, to), both signs */
static void sweep_bits(sweep *s, uint32_t from, uint32_t to, uint32_t stride) {
  for (uint64_t b = from; b < to; b += stride) {
    uint32_t bits = (uint32_t)b;
    float x;
    memcpy(&x, &bits, sizeof x);
    add(s, x);
    add(s, -x);
  }
}

static uint32_t bits_of(float x) {
  uint32_t b;
  memcpy(&b, &x, sizeof b);
  return b;
}

int main(void) {
  const nnlib_activation kinds[] = {NNLIB_ACT_GELU, NNLIB_ACT_GELU_TANH};
  int64_t shape[1] = {CHUNK};
  for (int k = 0; k < 2; k++) {
    static sweep s;
    memset(&s, 0, sizeof s);
    s.kind = kinds[k];
    s.w.hash = 0xcbf29ce484222325ull;
    for (int i = 0; i < CHUNK; i++)
      s.dy[i] = 1.0f;
    if (nnlib_activation_create(&s.layer, s.kind, 0.0f) != NNLIB_OK ||
        nnlib_model_create(&s.model) != NNLIB_OK ||
        nnlib_model_add(s.model, s.layer) != NNLIB_OK ||
        nnlib_model_compile(s.model, shape, 1, 1, NNLIB_LOSS_MSE, NULL, 1) !=
            NNLIB_OK) {
      fprintf(stderr, "setup failed\n");
      return 1;
    }
    add(&s, 0.0f);
    add(&s, -0.0f);
    sweep_bits(&s, 1, bits_of(0x1p-12f), 64);
    sweep_bits(&s, bits_of(0x1p-12f), bits_of(16.0f), 1);
    sweep_bits(&s, bits_of(16.0f), bits_of(FLT_MAX) + 1u, 256);
    flush(&s);
    printf("%-9s %lld values: worst %.4f ulp at x = %.9g; derivative "
           "worst |error| %.3g at x = %.9g, worst relative %.3g at x = "
           "%.9g; bits %016llx\n",
           nnlib_layer_get_name(s.layer), s.w.count, s.w.ulp,
           (double)s.w.ulp_at, s.w.d_abs, (double)s.w.d_abs_at, s.w.d_rel,
           (double)s.w.d_rel_at, (unsigned long long)s.w.hash);
    nnlib_model_free(s.model);
  }
  return 0;
}
