/* vecmath.h - branch-free sigmoid and tanh of floats (through e^x in
 * double), e^z to float accuracy, and float e^z parts, all of which
 * vectorise, and the attributes that compile a loop over them for SSE2,
 * AVX2 and AVX-512F. Used by the recurrent gate passes, the activation
 * layer, attention and the losses. */
#ifndef NNLIB_CORE_VECMATH_H
#define NNLIB_CORE_VECMATH_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* The recurrent gate passes evaluate a few sigmoids and tanhs per hidden
 * unit, per step and sample: through libm's expf and tanhf they took two
 * thirds of the forward pass, and libm calls bound the activation layer's
 * sigmoid and tanh passes too. These are branch-free (selects, no calls),
 * so loops over them vectorise, and within 0.5 ulp and a hair of the
 * exact value (below). NaN propagates. */

/* Loops over these are compiled three times on x86-64, for the baseline
 * (SSE2, 4 floats per vector), for AVX2 (8) and for AVX-512F (16), and
 * the dynamic loader picks one for the machine. Not for FMA: all three
 * round every operation alike, so the results are the same bits on every
 * machine. GCC contracts nothing into FMA in ISO C mode (-std=c11); clang,
 * whose avx512f implies FMA, is told not to by #pragma STDC FP_CONTRACT
 * OFF in every file whose cloned loops multiply and add. */
/* Every function here is inlined by force. The gate passes' clones are
 * built with arch=x86-64-v3 (AVX2 with FMA) and GCC inlines no plain
 * function across a change of arch=: their AVX2 clone called a scalar,
 * FMA-less sigmoid and tanh (fmaf through libm) for every value, so an
 * AVX2 machine ran the LSTM, GRU and RNN cells unvectorised. */
#if defined(__GNUC__)
#define NNLIB__VECMATH static inline __attribute__((always_inline))
#else
#define NNLIB__VECMATH static inline
#endif

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define NNLIB__TSAN 1
#endif
#endif
/* Not under ThreadSanitizer: the clones' resolver runs while the dynamic
 * loader relocates the library, before the TSan runtime is up, and its
 * instrumented entry crashes the process at load. */
#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__) &&          \
    !defined(__SANITIZE_THREAD__) && !defined(NNLIB__TSAN)
#define NNLIB__VECTOR_CLONES                                                   \
  __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define NNLIB__VECTOR_CLONES
#endif

/* Before a loop whose iterations touch disjoint floats: a cell's loop
 * reads and writes many blocks of one row (p + j, p + H + j, ...), and
 * GCC gives up on vectorising once proving them apart at run time takes
 * more than 10 checks (its vect-max-version-for-alias-checks); it then
 * runs scalar, 1.5 times slower for the GRU's backward cell. clang's
 * cost model declines the checks too; its pragma also asks for the
 * vectorisation, and where instrumentation forbids it (the fuzz build's
 * coverage) says so as a warning, which is no error here. */
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpass-failed"
#define NNLIB__INDEPENDENT_ITERATIONS                                          \
  _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define NNLIB__INDEPENDENT_ITERATIONS _Pragma("GCC ivdep")
#else
#define NNLIB__INDEPENDENT_ITERATIONS
#endif

/* c ? a : b through the bits. A float select written with ?: becomes a
 * branch around the arithmetic of one side (GCC does not speculate a float
 * operation that may trap), and a loop with a branch does not vectorise;
 * this one has no float operation to guard. */
NNLIB__VECMATH float nnlib__select_f(bool c, float a, float b) {
  uint32_t mask = (uint32_t)0 - (uint32_t)c, ua, ub;
  memcpy(&ua, &a, sizeof ua);
  memcpy(&ub, &b, sizeof ub);
  uint32_t bits = (ua & mask) | (ub & ~mask);
  float v;
  memcpy(&v, &bits, sizeof v);
  return v;
}

/* z clamped to [-104, 104], NaN to -104: beyond, e^z < 2^-150 already
 * rounds every sigmoid to 0 or 1 and every tanh to +-1. */
NNLIB__VECMATH float nnlib__clamp_exp_arg(float z) {
  float low = nnlib__select_f(z > -104.0f, z, -104.0f); /* NaN too */
  return nnlib__select_f(low < 104.0f, low, 104.0f);
}

/* sigmoid and tanh are evaluated in double and rounded to float once, so
 * the float result is the correctly rounded one except where the exact
 * value lies within about 0.005 ulp of a rounding midpoint: at most 0.51
 * ulp from the exact value over the whole float range, subnormal results
 * included (test_activations.c sweeps every float exponent). The float
 * evaluation this replaces rounded each of its ~20 operations and was up
 * to 4 ulp off (sigmoid 2.8, and 0 for the subnormal results below -87):
 * a tanh output saturating towards 1 then changed the gradient 1 - y^2 in
 * its last bits, which Adam made visible. The cost: about 1.4 (tanh) and
 * 1.7 (sigmoid) times the float version's time per element.
 *
 * e^z = 2^n (1 + q) for |z| <= 104, returned as q = e^r - 1 with *scale =
 * 2^n: z = n ln2 + r with n = round(z / ln2), |r| <= ln2/2, and q = r +
 * r^2 P(r), P of degree 5 fitted to the relative error of q (minimax over
 * |r| <= ln2/2: at most 2.4e-10; Taylor's coefficients to r^8 give
 * 5.8e-10). r is exact for n = 0 and otherwise off by under 2e-14 (the
 * rounding of n ln2): a float result needs no two-part ln2. Keeping q
 * apart gives e^z - 1 without cancelling (tanh near 0) as well as e^z. */
NNLIB__VECMATH double nnlib__expm1_parts(double z, double *scale) {
  const double shifter = 0x1.8p52; /* t + shifter rounds t to an integer */
  double shifted = z * 1.4426950408889634 + shifter;
  double n = shifted - shifter;
  double r = z - n * 0.6931471805599453; /* off by < 2e-14: see above */
  double p = 0.00019845877986575562;
  p = p * r + 0.0013940627247966825;
  p = p * r + 0.008333389368399235;
  p = p * r + 0.04166636091449126;
  p = p * r + 0.1666666637046772;
  p = p * r + 0.5000000044163547;
  /* the low bits of `shifted` hold n (|n| <= 151): n + 1023 is the biased
   * exponent of 2^n */
  uint64_t bits;
  memcpy(&bits, &shifted, sizeof bits);
  bits = (bits + 1023u) << 52;
  memcpy(scale, &bits, sizeof *scale);
  return r * (1.0 + r * p); /* r = -0 gives q = -0: tanh keeps the sign */
}

/* 1 / (1 + e^-x): e^-x is finite in double for every clamped x. */
NNLIB__VECMATH float nnlib__sigmoid(float x) {
  double scale, q = nnlib__expm1_parts(nnlib__clamp_exp_arg(-x), &scale);
  float y = (float)(1.0 / (1.0 + (scale + scale * q)));
  return nnlib__select_f(x != x, x, y);
}

/* tanh x = -m / (2 + m) with m = e^{-2x} - 1, which keeps its relative
 * accuracy down to the smallest |x| (there m = -2x), so no series is
 * needed near 0, and 2 + m does not cancel (m > -1). -2x is exact in
 * float (or infinite, then clamped). The sign of a zero comes through:
 * x = +0 gives q = -0 (x = -0: +0), which subtracting 1 - 2^0 = +0 keeps,
 * and m / (-2 - m) turns back. */
NNLIB__VECMATH float nnlib__tanh(float x) {
  double scale,
      q = nnlib__expm1_parts(nnlib__clamp_exp_arg(-2.0f * x), &scale);
  double m = scale * q - (1.0 - scale); /* 1 - 2^n is exact */
  float y = (float)(m / (-2.0 - m));
  return nnlib__select_f(x != x, x, y);
}

/* ?: for doubles through the bits, as nnlib__select_f. */
NNLIB__VECMATH double nnlib__select_d(bool c, double a, double b) {
  uint64_t mask = (uint64_t)0 - (uint64_t)c, ua, ub;
  memcpy(&ua, &a, sizeof ua);
  memcpy(&ub, &b, sizeof ub);
  uint64_t bits = (ua & mask) | (ub & ~mask);
  double v;
  memcpy(&v, &bits, sizeof v);
  return v;
}

/* e^z for |z| <= 708 to a relative error under 3.1e-9 (a twentieth of a
 * float ulp), for results rounded to float (the tanh GELU's, the softmax
 * losses). Cheaper than
 * nnlib__expm1_parts (degree 6, not 7), and it gives e^z itself. z = n ln2
 * + r, n = round(z / ln2), |r| <= ln2/2 (off by under 1e-13 for |n| <=
 * 1022: see nnlib__expm1_parts), and e^r = 1 + r + r^2 (c2 + ... + c6
 * r^4), c2..c6 fitted (minimax, relative) by benchmarks/gelu_fit.py. NaN
 * gives NaN; outside |z| <= 708 the result is meaningless (the exponent
 * field wraps), so callers clamp z first. */
NNLIB__VECMATH double nnlib__exp_for_float(double z) {
  const double shifter = 0x1.8p52; /* t + shifter rounds t to an integer */
  double shifted = z * 1.4426950408889634 + shifter;
  double n = shifted - shifter;
  double r = z - n * 0.6931471805599453;
  double p = 0.001381461120298827;
  p = p * r + 0.0083687102561656665;
  p = p * r + 0.04166838742138021;
  p = p * r + 0.16666520685744618;
  p = p * r + 0.49999993451372438;
  p = p * r + 1.0;
  p = p * r + 1.0; /* e^0 = 1 exactly */
  uint64_t bits; /* 2^n from the low bits of `shifted`, as above */
  memcpy(&bits, &shifted, sizeof bits);
  bits = (bits + 1023u) << 52;
  double scale;
  memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

/* ------------------------------------------ float gates of the cells */

/* The recurrent cells' sigmoid and tanh, in float with FMA: about 3.2
 * times as fast as nnlib__sigmoid and nnlib__tanh (0.22 and 0.23 against
 * 0.71 and 0.76 ns an element in an AVX-512F loop on the Zen 5 the
 * benchmarks run on), whose double e^x and division were most of an LSTM
 * step beyond its GEMMs (five per hidden unit). Their results differ from
 * those two in the last bits: measured against e^x and tanh in double over
 * every one of the 2^32 floats, at most 2.444 ulp (sigmoid, at x = -16.64;
 * 1.684 for x > -16.29, at x = -1.104) and 1.907 ulp (tanh, at x = 0.508)
 * from the exact value, subnormal results included; the activation layer
 * keeps the 0.51-ulp functions. NaN gives NaN (not necessarily the same
 * payload), signed zeros and infinities come out as tanh's and sigmoid's
 * limits (tests/test_internal_gate_math.c).
 *
 * Same bits on every machine: every operation is an IEEE float operation
 * rounded once (fmaf rounds the product-sum once), so the AVX-512F and
 * AVX2+FMA clones and the baseline (whose fmaf is libm's, correctly
 * rounded and slow: only CPUs without FMA run it) agree bit for bit. No
 * contraction besides the explicit fmaf: GCC in ISO C mode contracts
 * nothing, clang is told by the cell files' #pragma STDC FP_CONTRACT OFF.
 *
 * The AVX2+FMA clone is x86-64-v3 (AVX2, FMA and the rest of that ISA
 * level), which the loader picks on any CPU that has them. Not
 * arch=haswell: for an arch= clone GCC's resolver asks whether the CPU
 * *is* that model, so every AVX2 machine but an Intel Haswell (a Zen 3,
 * a Skylake, an Alder Lake) ran the baseline clone, scalar, with fmaf
 * calls: LSTM inference about 8 times slower than with the vector
 * clone. */
#if defined(__clang__)
/* clang 14 also picks an arch= clone by CPU model, x86-64-v3 included;
 * its "fma" clone (FMA and AVX: 256-bit float, 128-bit integer) is
 * picked by feature */
#define NNLIB__CLONE_AVX2_FMA "fma"
#else
#define NNLIB__CLONE_AVX2_FMA "arch=x86-64-v3"
#endif
#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__) &&          \
    !defined(__SANITIZE_THREAD__) && !defined(NNLIB__TSAN)
#define NNLIB__GATE_CLONES                                                     \
  __attribute__((target_clones("avx512f", NNLIB__CLONE_AVX2_FMA, "default")))
#define NNLIB__HAS_GATE_CLONES 1
#else
#define NNLIB__GATE_CLONES
#endif

NNLIB__VECMATH uint32_t nnlib__bits_of_float(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

NNLIB__VECMATH float nnlib__float_of_bits(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* 2^(e - 127) from its biased exponent e, 1 <= e <= 254 */
NNLIB__VECMATH float nnlib__pow2_biased(int32_t e) {
  return nnlib__float_of_bits((uint32_t)e << 23);
}

NNLIB__VECMATH int32_t nnlib__min_i32(int32_t a, int32_t b) {
  return a < b ? a : b;
}

NNLIB__VECMATH int32_t nnlib__max_i32(int32_t a, int32_t b) {
  return a > b ? a : b;
}

/* e^z = 2^n (1 + q) for |z| <= 105.125, returned as q with *e = n + 127, the
 * biased exponent of 2^n: z = n ln2 + r, n = round(z / ln2), r in two
 * parts (Cody and Waite: n C1 and z - n C1 are exact for C1 =
 * 0.693359375, 12 bits, and |n| <= 152), |r| <= ln2/2, and q = r + r^2
 * P(r) with P the degree-5 fit of the double nnlib__expm1_parts
 * (relative error 2.4e-10) with its coefficients rounded to float: q is
 * within about 0.6 ulp. A NaN z gives a NaN q (and any *e). */
NNLIB__VECMATH float nnlib__expm1_float_parts(float z, int32_t *e) {
  const float shifter = 0x1.8p23f; /* t + shifter rounds t to an integer */
  float shifted = fmaf(z, 1.44269504f, shifter);
  float k = shifted - shifter;
  float r = fmaf(k, -0.693359375f, z);
  r = fmaf(k, 2.12194440e-4f, r); /* C1 - ln2 */
  float p = 0.00019845877986575562f;
  p = fmaf(p, r, 0.0013940627247966825f);
  p = fmaf(p, r, 0.008333389368399235f);
  p = fmaf(p, r, 0.04166636091449126f);
  p = fmaf(p, r, 0.1666666637046772f);
  p = fmaf(p, r, 0.5000000044163547f);
  /* the low bits of `shifted` hold n; the wrap-around of the unsigned
   * difference and the conversion are defined (GCC, clang: modulo 2^32) */
  *e = (int32_t)(nnlib__bits_of_float(shifted) -
                 (nnlib__bits_of_float(shifter) - 127u));
  return fmaf(r * r, p, r); /* r = -0 gives q = -0 */
}

/* sigmoid x = 1 / (1 + e^-x) = u / (u + s (1 + q)) with e^-x = 2^n (1 +
 * q), s = 2^min(n, 64) and u = 2^-max(n - 64, 0), so that nothing
 * overflows for n up to 151 and a subnormal result is rounded once, by
 * the division. d = (u + s) + s q rounds once while u + s is exact (n <=
 * 23, x > -16.29); below, u + s rounds, and the result is within 2.44 ulp
 * instead of 1.68. Choosing (u + s q) + s there would keep 1.68 but cost
 * a fifth of the function's time in every lane, for gate inputs below
 * -16.29. -x is clamped to [-104, 104] in a way that keeps NaN, which then
 * flows through q and d: no select at the end. */
NNLIB__VECMATH float nnlib__sigmoid_gate(float x) {
  float z = nnlib__select_f(-x < -104.0f, -104.0f, -x);
  z = nnlib__select_f(z > 104.0f, 104.0f, z);
  int32_t e; /* n + 127 */
  float q = nnlib__expm1_float_parts(z, &e);
  float s = nnlib__pow2_biased(nnlib__min_i32(nnlib__max_i32(e, 63), 191));
  float u = nnlib__pow2_biased(318 - nnlib__max_i32(e, 191));
  return u / fmaf(s, q, u + s);
}

/* tanh a = (1 - e^{-2a}) / (1 + e^{-2a}) for a = |x| <= 9.1 (beyond, tanh
 * rounds to 1), with e^{-2a} = s (1 + q), s = 2^n: numerator (1 - s) - s
 * q and denominator (1 + s) + s q each round once (1 - s and 1 + s are
 * exact for n >= -24; below, tanh is within an ulp of 1), and near 0 (n =
 * 0) the numerator is -q exactly, so tanh keeps its relative accuracy
 * down to the subnormals. The sign of x goes on last: tanh(-0) = -0. The
 * clamp keeps NaN, which flows through to the result. */
NNLIB__VECMATH float nnlib__tanh_gate(float x) {
  float a = nnlib__float_of_bits(nnlib__bits_of_float(x) & 0x7fffffffu);
  a = nnlib__select_f(a > 9.1f, 9.1f, a);
  int32_t e;
  float q = nnlib__expm1_float_parts(-2.0f * a, &e);
  float s = nnlib__pow2_biased(e);
  float y = fmaf(-s, q, 1.0f - s) / fmaf(s, q, 1.0f + s);
  return nnlib__float_of_bits((nnlib__bits_of_float(y) & 0x7fffffffu) |
                              (nnlib__bits_of_float(x) & 0x80000000u));
}

#endif
