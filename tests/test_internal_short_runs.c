/* Short runs of floats (src/core/short_runs.h): nnlib__zero_run and
 * nnlib__copy_run write exactly dst[0 .. n), for every length from 0 past
 * the vector width and past the length where they hand over to libc, at
 * every alignment of a vector, and nothing before or after the run. */
#include "test_support.h"

#include "core/short_runs.h"

#include <stdint.h>

enum { MAX_RUN = 2 * NNLIB__SHORT_RUN_FLOATS + 9, GUARD = 16 };
enum { AREA = GUARD + 8 + MAX_RUN + GUARD };

static const float GUARD_VALUE = -7.25f;

static void fill_guard(float *area) {
  for (int64_t q = 0; q < AREA; q++)
    area[q] = GUARD_VALUE;
}

/* The area holds `expect(q)` over [start, start + n) and the guard value
 * everywhere else. */
static void check_run(const float *area, int64_t start, int64_t n,
                      const float *expect) {
  for (int64_t q = 0; q < AREA; q++) {
    bool inside = q >= start && q < start + n;
    float want = inside ? expect[q - start] : GUARD_VALUE;
    if (area[q] != want)
      fail_msg("n %lld at offset %lld: float %lld is %g, want %g", (long long)n,
               (long long)start, (long long)q, area[q], want);
  }
}

static void test_zero_run_writes_exactly_the_run(void **state) {
  (void)state;
  float area[AREA], zeros[MAX_RUN] = {0};
  for (int64_t offset = 0; offset < 8; offset++)
    for (int64_t n = 0; n <= MAX_RUN; n++) {
      fill_guard(area);
      nnlib__zero_run(area + GUARD + offset, n);
      check_run(area, GUARD + offset, n, zeros);
    }
}

static void test_negative_length_writes_nothing(void **state) {
  (void)state;
  float area[AREA], none[1] = {0};
  fill_guard(area);
  nnlib__zero_run(area + GUARD, -3);
  check_run(area, GUARD, 0, none);
}

static void test_copy_run_copies_exactly_the_run(void **state) {
  (void)state;
  float area[AREA], src[MAX_RUN + 8];
  for (int64_t q = 0; q < MAX_RUN + 8; q++)
    src[q] = (float)(q * 3 + 1);
  for (int64_t offset = 0; offset < 8; offset++)
    for (int64_t n = 0; n <= MAX_RUN; n++) {
      fill_guard(area);
      /* source and destination at different alignments */
      nnlib__copy_run(area + GUARD + offset, src + (7 - offset), n);
      check_run(area, GUARD + offset, n, src + (7 - offset));
    }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_zero_run_writes_exactly_the_run),
      cmocka_unit_test(test_negative_length_writes_nothing),
      cmocka_unit_test(test_copy_run_copies_exactly_the_run),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
