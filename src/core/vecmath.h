/* vecmath.h - branch-free float e^x, sigmoid and tanh that vectorise, and
 * the attribute that compiles a loop over them for SSE2 and AVX2. Used by
 * the recurrent gate passes and the activation layer. */
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
 * so loops over them vectorise; errors stay within a few float ulps, below
 * PyTorch's own float32 differences (test_internal_rnn_torch.c,
 * test_activations.c). NaN propagates. */

/* Loops over these are compiled twice on x86-64, for the baseline (SSE2, 4
 * floats per vector) and for AVX2 (8), and the dynamic loader picks one
 * for the machine. Not for FMA: both round every operation alike, so the
 * results are the same bits on every machine. */
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
#define NNLIB__VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define NNLIB__VECTOR_CLONES
#endif

/* c ? a : b through the bits. A float select written with ?: becomes a
 * branch around the arithmetic of one side (GCC does not speculate a float
 * operation that may trap), and a loop with a branch does not vectorise;
 * this one has no float operation to guard. */
static inline float nnlib__select_f(bool c, float a, float b) {
  uint32_t mask = (uint32_t)0 - (uint32_t)c, ua, ub;
  memcpy(&ua, &a, sizeof ua);
  memcpy(&ub, &b, sizeof ub);
  uint32_t bits = (ua & mask) | (ub & ~mask);
  float v;
  memcpy(&v, &bits, sizeof v);
  return v;
}

/* e^x for x <= 0: x = n ln2 + r with n = round(x / ln2) and |r| <= ln2/2
 * (ln2 split in a part exact in float for n up to 2^7, and the rest), e^r
 * by its Taylor polynomial to r^7 (remainder < 6e-9 relative), 2^n from
 * the exponent bits. Below -87, where 2^n would leave the normal range,
 * it gives 0. NaN gives some finite value: callers select NaN through. */
static inline float nnlib__exp_nonpositive(float x) {
  float xc = nnlib__select_f(x > -87.0f, x, -87.0f); /* NaN too */
  float t = xc * 1.44269504f;
  int32_t n = (int32_t)(t - 0.5f); /* t <= 0: rounds to nearest */
  float fn = (float)n;
  float r = (xc - fn * 0.693145752f) - fn * 1.42860677e-6f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  uint32_t bits = (uint32_t)(n + 127) << 23; /* n >= -126 */
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return nnlib__select_f(x > -87.0f, scale * p, 0.0f);
}

/* 1 / (1 + e^-x) from e = e^{-|x|} <= 1, so nothing overflows. */
static inline float nnlib__sigmoid(float x) {
  float e = nnlib__exp_nonpositive(-fabsf(x));
  float s = 1.0f / (1.0f + e);
  return nnlib__select_f(x != x, x, nnlib__select_f(x >= 0.0f, s, e * s));
}

/* tanh |x| = (1 - e) / (1 + e) with e = e^{-2|x|}; below 0.125, where
 * 1 - e cancels, the series |x| - |x|^3/3 + 2|x|^5/15 - 17|x|^7/315 +
 * 62|x|^9/2835 (remainder < 1e-11 relative) instead. */
static inline float nnlib__tanh(float x) {
  float a = fabsf(x), a2 = a * a;
  float e = nnlib__exp_nonpositive(-2.0f * a);
  float far = (1.0f - e) / (1.0f + e);
  float series = 62.0f / 2835.0f;
  series = series * a2 - 17.0f / 315.0f;
  series = series * a2 + 2.0f / 15.0f;
  series = series * a2 - 1.0f / 3.0f;
  series = a + a * a2 * series;
  float y = copysignf(nnlib__select_f(a < 0.125f, series, far), x);
  return nnlib__select_f(x != x, x, y);
}

#endif
