/* The generator's dropout masks (src/core/rng.c, nnlib__rng_keep_mask):
 * the same draws as a loop over nnlib__rng_uniform from the same state,
 * value for value (0.0f where the draw is below the rate, `keep`
 * elsewhere), and the generator left where that loop leaves it. */
#include "nnlib_internal.h"
#include "test_support.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The mask a plain loop draws, and the state after it. */
static void loop_mask(nnlib__rng *rng, float rate, float keep, float *mask,
                      int64_t count) {
  for (int64_t i = 0; i < count; i++)
    mask[i] = nnlib__rng_uniform(rng) < rate ? 0.0f : keep;
}

static void test_mask_is_the_loops(void **state) {
  (void)state;
  static const float rates[] = {0.0f, 0.3f, 0.5f, 0.999f};
  static const int64_t counts[] = {0, 1, 7, 1000, 4099};
  float *want = malloc(4099 * sizeof(float));
  float *got = malloc(4100 * sizeof(float));
  assert_true(want != NULL && got != NULL);
  for (size_t r = 0; r < sizeof rates / sizeof rates[0]; r++)
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
      float keep = 1.0f / (1.0f - rates[r]);
      int64_t n = counts[c];
      nnlib__rng a, b;
      nnlib__rng_seed(&a, 42u + r);
      nnlib__rng_seed(&b, 42u + r);
      loop_mask(&a, rates[r], keep, want, n);
      got[n] = -1.0f; /* nothing written past the mask */
      nnlib__rng_keep_mask(&b, rates[r], keep, got, n);
      assert_memory_equal(got, want, (size_t)n * sizeof(float));
      assert_true(got[n] == -1.0f);
      assert_memory_equal(&a, &b, sizeof a); /* the same state after */
      assert_true(nnlib__rng_next(&a) == nnlib__rng_next(&b));
    }
  free(want);
  free(got);
}

/* About `rate` of the values dropped, the rest exactly keep. */
static void test_mask_drops_the_rate(void **state) {
  (void)state;
  enum { N = 200000 };
  float *mask = malloc(N * sizeof(float));
  assert_true(mask != NULL);
  nnlib__rng rng;
  nnlib__rng_seed(&rng, 7u);
  nnlib__rng_keep_mask(&rng, 0.25f, 4.0f / 3.0f, mask, N);
  int64_t dropped = 0;
  for (int64_t i = 0; i < N; i++) {
    assert_true(mask[i] == 0.0f || mask[i] == 4.0f / 3.0f);
    assert_false(signbit(mask[i]));
    dropped += mask[i] == 0.0f;
  }
  ASSERT_NEAR((double)dropped / N, 0.25, 0.005);
  free(mask);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_mask_is_the_loops),
      cmocka_unit_test(test_mask_drops_the_rate),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
