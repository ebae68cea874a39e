/* The allocator (src/core/alloc.c): a model's activation block of 2 MiB
 * and more comes zeroed, on a 2 MiB boundary, in a mapping advised for
 * transparent huge pages (Linux's VmFlags "hg"); a smaller block, or any
 * block while a user allocator is installed, is an ordinary 64-byte
 * aligned one from the allocator in force; a size that overflows is
 * refused. */
#define _POSIX_C_SOURCE 200809L
#include "test_support.h"

#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { MIB = 1 << 20, LINE = 512 };

static bool all_zero(const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != 0)
      return false;
  return true;
}

/* The VmFlags line of the mapping that holds `p` in /proc/self/smaps into
 * flags; false when there is no such file or mapping. */
static bool vm_flags_of(const void *p, char flags[LINE]) {
  FILE *f = fopen("/proc/self/smaps", "r");
  if (f == NULL)
    return false;
  char line[LINE];
  bool inside = false, found = false;
  uintptr_t at = (uintptr_t)p;
  while (!found && fgets(line, sizeof line, f) != NULL) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
      inside = lo <= at && at < hi;
    else if (inside && strncmp(line, "VmFlags:", 8) == 0) {
      memcpy(flags, line, LINE);
      found = true;
    }
  }
  fclose(f);
  return found;
}

/* Linux with transparent huge pages built in: the mode file exists. */
static bool kernel_has_huge_pages(void) {
  return access("/sys/kernel/mm/transparent_hugepage/enabled", R_OK) == 0;
}

static void test_large_block_is_advised_for_huge_pages(void **state) {
  (void)state;
  size_t count = 3 * MIB + 12345, size = sizeof(float);
  float *p = nnlib__calloc_huge(count, size);
  assert_non_null(p);
  assert_true(all_zero((const unsigned char *)p, count * size));
#if defined(__linux__)
  assert_int_equal((uintptr_t)p % (2u * MIB), 0);
  char flags[LINE];
  if (kernel_has_huge_pages()) {
    assert_true(vm_flags_of(p, flags));
    if (strstr(flags, " hg") == NULL)
      fail_msg("the block's mapping is not advised for huge pages: %s", flags);
    /* the last byte too: the advice covers the whole block */
    assert_true(vm_flags_of((const char *)p + count * size - 1, flags));
    assert_non_null(strstr(flags, " hg"));
  }
#endif
  p[count - 1] = 1.0f; /* writable to the end */
  nnlib__free(p);
}

static void test_small_block_is_ordinary(void **state) {
  (void)state;
  size_t count = MIB / 8; /* 512 KiB of floats */
  float *p = nnlib__calloc_huge(count, sizeof(float));
  assert_non_null(p);
  assert_int_equal((uintptr_t)p % 64, 0);
  assert_true(all_zero((const unsigned char *)p, count * sizeof(float)));
  nnlib__free(p);
}

static void test_overflow_is_refused(void **state) {
  (void)state;
  assert_null(nnlib__calloc_huge(SIZE_MAX / 2, 4));
}

typedef struct counter {
  int allocs;
  size_t last_size, last_alignment;
} counter;

static void *counting_alloc(size_t size, size_t alignment, void *user) {
  counter *c = user;
  c->allocs++;
  c->last_size = size;
  c->last_alignment = alignment;
  return aligned_alloc(alignment,
                       (size + alignment - 1) / alignment * alignment);
}

static void counting_free(void *p, void *user) {
  (void)user;
  free(p);
}

static void test_user_allocator_gets_the_call(void **state) {
  (void)state;
  counter c = {0, 0, 0};
  nnlib_allocator a = {sizeof a, counting_alloc, counting_free, &c};
  ASSERT_OK(nnlib_set_allocator(&a));
  size_t count = 4 * MIB;
  float *p = nnlib__calloc_huge(count, sizeof(float));
  assert_non_null(p);
  assert_int_equal(c.allocs, 1);
  assert_int_equal(c.last_size, count * sizeof(float));
  assert_int_equal(c.last_alignment, 64);
  assert_true(all_zero((const unsigned char *)p, count * sizeof(float)));
  nnlib__free(p);
  ASSERT_OK(nnlib_set_allocator(NULL));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_large_block_is_advised_for_huge_pages),
      cmocka_unit_test(test_small_block_is_ordinary),
      cmocka_unit_test(test_overflow_is_refused),
      cmocka_unit_test(test_user_allocator_gets_the_call),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
