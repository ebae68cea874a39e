/* The recurrent cells' float sigmoid and tanh (nnlib__sigmoid_gate,
 * nnlib__tanh_gate in core/vecmath.h):
 *
 *   - within MAX_ULP_SIGMOID and MAX_ULP_TANH of the exact value (long
 *     double), over every float whose bits are a multiple of a prime
 *     stride (~65 000 values over every exponent, subnormals and both
 *     signs) and a dense sweep of [-40, 40] in steps of 1/512, through the
 *     vectorised loop the cells run (the gate clones);
 *   - the ends exactly: NaN gives NaN (of either sign and any payload),
 *     infinities saturate, tanh keeps the sign of zero and returns a
 *     subnormal x as itself, sigmoid reaches subnormal results before 0;
 *   - the same bits from every clone: the AVX-512F loop, the AVX2+FMA loop
 *     and the baseline (libm's fmaf, one call an element), each run where
 *     this CPU can, on the same inputs;
 *   - the loader picks the clone the CPU can run: AVX-512F where it has it,
 *     else the AVX2+FMA one where it has those (an arch= clone such as
 *     arch=haswell is picked only on that CPU model), else the baseline.
 *
 * NNLIB_EXHAUSTIVE=1 runs the first check over all 2^32 floats (minutes:
 * the reference is long double) and prints the largest errors. Over all
 * floats against double e^x and tanh the largest are 2.444 ulp (sigmoid,
 * x = -16.64; 1.684 at x = -1.104 above -16.29) and 1.907 ulp (tanh, x =
 * 0.508), vecmath.h's documented bounds. */
/* no contraction besides the gates' own fmaf, as in the cell files */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif
#include "core/vecmath.h"
#include "test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ULP_SIGMOID 2.45
#define MAX_ULP_TANH 1.91

enum { SWEEP = 40960 + 1, BITS_STRIDE = 65521 /* prime */, BLOCK = 65536 };

typedef enum { SIGMOID, TANH } gate_kind;

static const char *name_of(gate_kind kind) {
  return kind == SIGMOID ? "sigmoid" : "tanh";
}

/* The loop the cells compile: the gate clones. */
NNLIB__GATE_CLONES
static void gates_cloned(gate_kind kind, const float *restrict x,
                         float *restrict y, int64_t n) {
  if (kind == SIGMOID)
    for (int64_t i = 0; i < n; i++)
      y[i] = nnlib__sigmoid_gate(x[i]);
  else
    for (int64_t i = 0; i < n; i++)
      y[i] = nnlib__tanh_gate(x[i]);
}

static long double exact(gate_kind kind, long double x) {
  return kind == SIGMOID ? 1.0L / (1.0L + expl(-x)) : tanhl(x);
}

/* The largest error of y = gate(x) over finite x; fails past `bound`. */
static double check_ulps(gate_kind kind, const float *x, const float *y,
                         int64_t count, double bound, float *worst_x) {
  double worst = 0.0;
  for (int64_t i = 0; i < count; i++) {
    if (!isfinite(x[i]))
      continue;
    long double want = exact(kind, x[i]);
    double err = ts_ulp_error(y[i], want);
    if (!(err <= bound))
      fail_msg("%s(%a = %.9g) = %.9g, %.3f ulp from %.12Lg", name_of(kind),
               (double)x[i], (double)x[i], (double)y[i], err, want);
    if (err > worst) {
      worst = err;
      *worst_x = x[i];
    }
  }
  return worst;
}

static double bound_of(gate_kind kind) {
  return kind == SIGMOID ? MAX_ULP_SIGMOID : MAX_ULP_TANH;
}

/* Every float whose bit pattern is a multiple of `stride`, in blocks. */
static void sweep_bits(gate_kind kind, uint64_t stride) {
  static float x[BLOCK], y[BLOCK];
  double worst = 0.0;
  float worst_x = 0.0f;
  int64_t total = 0;
  for (uint64_t start = 0; start < (1ull << 32);
       start += (uint64_t)BLOCK * stride) {
    int64_t count = 0;
    for (uint64_t bits = start; count < BLOCK && bits < (1ull << 32);
         bits += stride) {
      uint32_t b = (uint32_t)bits;
      memcpy(&x[count++], &b, sizeof b);
    }
    gates_cloned(kind, x, y, count);
    float at = 0.0f;
    double err = check_ulps(kind, x, y, count, bound_of(kind), &at);
    if (err > worst) {
      worst = err;
      worst_x = at;
    }
    total += count;
  }
  print_message("%s: %lld floats, largest error %.4f ulp at %a\n",
                name_of(kind), (long long)total, worst, (double)worst_x);
}

static void test_within_bound(void **s) {
  (void)s;
  static float x[SWEEP], y[SWEEP];
  for (int i = 0; i < SWEEP; i++)
    x[i] = -40.0f + (float)i / 512.0f;
  const char *all = getenv("NNLIB_EXHAUSTIVE");
  uint64_t stride = all != NULL && strcmp(all, "1") == 0 ? 1 : BITS_STRIDE;
  for (gate_kind kind = SIGMOID; kind <= TANH; kind++) {
    float at;
    gates_cloned(kind, x, y, SWEEP);
    check_ulps(kind, x, y, SWEEP, bound_of(kind), &at);
    sweep_bits(kind, stride);
  }
}

static void assert_bits(float got, float want, const char *what) {
  if (memcmp(&got, &want, sizeof got) != 0)
    fail_msg("%s: %a, want %a", what, (double)got, (double)want);
}

static void test_specials(void **s) {
  (void)s;
  const float tiny = 0x1p-149f, nan_payload = nanf("0x123");
  float x[] = {INFINITY, -INFINITY, 0.0f, -0.0f, tiny, -tiny, nan_payload,
               -nan_payload};
  float y[8], t[8];
  gates_cloned(SIGMOID, x, y, 8);
  gates_cloned(TANH, x, t, 8);
  assert_bits(y[0], 1.0f, "sigmoid(inf)");
  assert_bits(y[1], 0.0f, "sigmoid(-inf)");
  assert_bits(y[2], 0.5f, "sigmoid(0)");
  assert_bits(y[3], 0.5f, "sigmoid(-0)");
  assert_bits(y[4], 0.5f, "sigmoid(tiny)");
  assert_bits(t[0], 1.0f, "tanh(inf)");
  assert_bits(t[1], -1.0f, "tanh(-inf)");
  assert_bits(t[2], 0.0f, "tanh(0)");
  assert_bits(t[3], -0.0f, "tanh(-0)");
  assert_bits(t[4], tiny, "tanh(tiny)");
  assert_bits(t[5], -tiny, "tanh(-tiny)");
  for (int i = 6; i < 8; i++) {
    assert_true(isnan(y[i]));
    assert_true(isnan(t[i]));
  }
  /* subnormal sigmoids, then 0: e^-100 = 3.72e-44, e^-104 = 6.8e-46 */
  float low[] = {-90.0f, -100.0f, -103.0f, -110.0f};
  float ly[4];
  gates_cloned(SIGMOID, low, ly, 4);
  for (int i = 0; i < 3; i++) {
    assert_true(ly[i] > 0.0f && ly[i] < 0x1p-126f);
    assert_true(ts_ulp_error(ly[i], expl((long double)low[i])) <= 1.0);
  }
  assert_bits(ly[3], 0.0f, "sigmoid(-110)");
}

#if defined(NNLIB__TSAN) || defined(__SANITIZE_THREAD__) ||                    \
    !(defined(__x86_64__) && defined(__GNUC__) && defined(__linux__))
#define ONE_CLONE 1 /* no clones to compare */
#else
/* Each clone's loop, compiled for its target here as the dispatcher's
 * clones are; the baseline one calls libm's fmaf per element. */
#define GATE_LOOP(fn, target)                                                  \
  target static void fn(gate_kind kind, const float *restrict x,               \
                        float *restrict y, int64_t n) {                        \
    if (kind == SIGMOID)                                                       \
      for (int64_t i = 0; i < n; i++)                                          \
        y[i] = nnlib__sigmoid_gate(x[i]);                                      \
    else                                                                       \
      for (int64_t i = 0; i < n; i++)                                          \
        y[i] = nnlib__tanh_gate(x[i]);                                         \
  }
GATE_LOOP(gates_avx512, __attribute__((target("avx512f"))))
GATE_LOOP(gates_avx2_fma, __attribute__((target("avx2,fma"))))
GATE_LOOP(gates_baseline, )
#endif

static void test_same_bits_every_clone(void **s) {
  (void)s;
#ifdef ONE_CLONE
  skip();
#else
  /* a stride over every exponent and a dense stretch where gates live */
  static float x[2 * BLOCK], want[2 * BLOCK], got[2 * BLOCK];
  int64_t n = 0;
  for (uint64_t bits = 0; bits < (1ull << 32); bits += 65537)
    x[n++] = nnlib__float_of_bits((uint32_t)bits);
  for (int i = 0; n < 2 * BLOCK; i++)
    x[n++] = -16.0f + (float)i / 2048.0f;
  for (gate_kind kind = SIGMOID; kind <= TANH; kind++) {
    gates_baseline(kind, x, want, n);
    gates_cloned(kind, x, got, n);
    assert_memory_equal(got, want, sizeof got);
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
      gates_avx2_fma(kind, x, got, n);
      assert_memory_equal(got, want, sizeof got);
    }
    if (__builtin_cpu_supports("avx512f")) {
      gates_avx512(kind, x, got, n);
      assert_memory_equal(got, want, sizeof got);
    }
  }
#endif
}

#if defined(NNLIB__HAS_GATE_CLONES)
/* Functions cloned as the gate passes are, and the compiler's names for
 * the pieces: NAME.resolver returns the clone the loader installs for
 * this CPU (clang numbers its clones in the order listed). */
NNLIB__GATE_CLONES static int gate_probe(int x) { return x + 1; }
__attribute__((target_clones(NNLIB__CLONE_AVX2_FMA, "default"))) static int
tier_probe(int x) {
  return x + 2;
}
#if defined(__clang__)
#define CLONE_NAME(fn, clone, index) #fn "." clone "." #index
#else
#define CLONE_NAME(fn, clone, index) #fn "." clone
#endif
typedef int probe_fn(int);
extern probe_fn *gate_probe_resolver(void) __asm__("gate_probe.resolver");
extern int gate_probe_avx512f(int) __asm__(CLONE_NAME(gate_probe, "avx512f",
                                                      0));
extern int gate_probe_default(int) __asm__(CLONE_NAME(gate_probe, "default",
                                                      2));
extern probe_fn *tier_probe_resolver(void) __asm__("tier_probe.resolver");
extern int tier_probe_default(int) __asm__(CLONE_NAME(tier_probe, "default",
                                                      1));
#define CLONE_PROBES 1
#endif

static void test_loader_picks_by_features(void **s) {
  (void)s;
#ifndef CLONE_PROBES
  skip();
#else
  __builtin_cpu_init();
  bool avx512 = __builtin_cpu_supports("avx512f");
  bool avx2_fma =
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  probe_fn *gate = gate_probe_resolver(), *tier = tier_probe_resolver();
  assert_int_equal(gate(1) + tier(1), gate_probe(1) + tier_probe(1));
  /* the AVX2+FMA clone alone: picked on every CPU with the two */
  assert_int_equal(tier != tier_probe_default, avx2_fma);
  if (avx512)
    assert_ptr_equal(gate, gate_probe_avx512f);
  else if (avx2_fma)
    assert_true(gate != gate_probe_avx512f && gate != gate_probe_default);
  else
    assert_ptr_equal(gate, gate_probe_default);
#endif
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_within_bound),
      cmocka_unit_test(test_specials),
      cmocka_unit_test(test_same_bits_every_clone),
      cmocka_unit_test(test_loader_picks_by_features),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
