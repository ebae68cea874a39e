/* rng.c - xoshiro256** (Blackman & Vigna) seeded by splitmix64. One stream
 * per model: same seed, same initial weights, same shuffles. */
#include "core/core.h"
#include "core/vecmath.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void nnlib__rng_seed(nnlib__rng *rng, uint64_t seed) {
  for (int i = 0; i < 4; i++)
    rng->s[i] = splitmix64(&seed);
}

static inline uint64_t next_of(nnlib__rng *rng) {
  uint64_t *s = rng->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

uint64_t nnlib__rng_next(nnlib__rng *rng) { return next_of(rng); }

float nnlib__rng_uniform(nnlib__rng *rng) {
  /* top 24 bits: exactly representable floats in [0, 1) */
  return (float)(nnlib__rng_next(rng) >> 40) * (1.0f / 16777216.0f);
}

/* The state in locals for the whole run, and no branch on the draw
 * (random, so mispredicted half the time at rate 0.5): a call and a
 * branch per value cost dropout's 16K values a step in the benchmark CNN
 * about 8 ns each. */
void nnlib__rng_keep_mask(nnlib__rng *rng, float rate, float keep, float *mask,
                          int64_t count) {
  nnlib__rng r = *rng;
  for (int64_t i = 0; i < count; i++) {
    float u = (float)(next_of(&r) >> 40) * (1.0f / 16777216.0f);
    mask[i] = nnlib__select_f(u < rate, 0.0f, keep);
  }
  *rng = r;
}

float nnlib__rng_normal(nnlib__rng *rng) {
  /* Box-Muller; u1 in (0, 1] keeps the log finite */
  double u1 = ((double)(nnlib__rng_next(rng) >> 11) + 1.0) / 9007199254740992.0;
  double u2 = (double)(nnlib__rng_next(rng) >> 11) / 9007199254740992.0;
  return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint64_t nnlib__rng_below(nnlib__rng *rng, uint64_t bound) {
  /* rejection sampling removes the modulo bias */
  uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
  uint64_t r;
  do {
    r = nnlib__rng_next(rng);
  } while (r >= limit);
  return r % bound;
}

void nnlib__rng_shuffle(nnlib__rng *rng, int64_t *items, int64_t count) {
  for (int64_t i = count - 1; i > 0; i--) {
    int64_t j = (int64_t)nnlib__rng_below(rng, (uint64_t)i + 1);
    int64_t tmp = items[i];
    items[i] = items[j];
    items[j] = tmp;
  }
}
