/* short_runs.h - zeroing and copying runs of floats, short ones without
 * a call into libc.
 *
 * A convolution's lowering (layers/conv2d.c) writes, for every input plane
 * and kernel offset, runs from one float (a padded column of a row) to a
 * plane (196 floats of a 14x14 map). A memset or memcpy call for a run of
 * a few floats costs more than its stores: the benchmark CNN's training
 * step spent about 4% of its time in such calls. GCC and clang turn a
 * plain zeroing or copying loop back into the library call (GCC's loop
 * distribution, clang's loop idiom recognition), so the short path keeps
 * the pattern from matching: the zero is read through a volatile, so the
 * compiler cannot see what the stores write, and the copy moves 8-float
 * vectors of GCC's vector extension (which clang has too), then the tail.
 * From NNLIB__SHORT_RUN_FLOATS on, libc's own memset and memcpy (which
 * pick the widest vectors of the machine, where this code is built for
 * the baseline ISA) are faster. */
#ifndef NNLIB_CORE_SHORT_RUNS_H
#define NNLIB_CORE_SHORT_RUNS_H

#include <stdint.h>
#include <string.h>

enum { NNLIB__SHORT_RUN_FLOATS = 64 };

/* 0.0f, which the compiler cannot see: a loop that stores it stays a
 * loop. Read it once before such loops. */
static inline float nnlib__opaque_zero(void) {
  static const volatile float zero_value = 0.0f;
  return zero_value;
}

/* dst[0 .. n) = 0; n <= 0 writes nothing. */
static inline void nnlib__zero_run(float *dst, int64_t n) {
  if (n >= NNLIB__SHORT_RUN_FLOATS) {
    memset(dst, 0, (size_t)n * sizeof(float));
    return;
  }
  float zero = nnlib__opaque_zero();
  for (int64_t q = 0; q < n; q++)
    dst[q] = zero;
}

#if defined(__GNUC__)
typedef float nnlib__run_vector __attribute__((vector_size(8 * sizeof(float))));
#endif

/* dst[0 .. n) = src[0 .. n); the runs do not overlap. */
static inline void nnlib__copy_run(float *dst, const float *src, int64_t n) {
  if (n >= NNLIB__SHORT_RUN_FLOATS) {
    memcpy(dst, src, (size_t)n * sizeof(float));
    return;
  }
  int64_t q = 0;
#if defined(__GNUC__)
  nnlib__run_vector v;
  for (; q + 8 <= n; q += 8) {
    memcpy(&v, src + q, sizeof v);
    memcpy(dst + q, &v, sizeof v);
  }
#endif
  for (; q < n; q++)
    dst[q] = src[q];
}

#endif
