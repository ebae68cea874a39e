/* The activation block's allocator (src/core/alloc.c, nnlib__calloc_huge):
 *
 *   - a block of 2 MiB and more, where such blocks are mapped (Linux, the
 *     default allocator, no sanitizer), comes zeroed, on a 2 MiB boundary,
 *     in a mapping advised for transparent huge pages (VmFlags "hg" in
 *     /proc/self/smaps) from its first byte to its last, and freeing it
 *     unmaps it;
 *   - a block just under 2 MiB, or any block while a user allocator is
 *     installed, is an ordinary zeroed 64-byte aligned one from the
 *     allocator in force (which sees one request a block);
 *   - a size that overflows is refused. */
#define _DEFAULT_SOURCE /* MADV_HUGEPAGE */
#include "test_support.h"

#include "core/core.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

enum { MIB = 1 << 20 };

static bool all_zero(const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != 0)
      return false;
  return true;
}

#if defined(__linux__) && defined(MADV_HUGEPAGE)
enum { LINE = 512 };

/* The VmFlags line of the mapping that holds `p` in /proc/self/smaps into
 * flags ("" when the mapping has none); false when no mapping holds p.
 * Skips the test where the file cannot be read. */
static bool vm_flags_of(const void *p, char flags[LINE]) {
  FILE *f = fopen("/proc/self/smaps", "r");
  if (f == NULL)
    skip();
  char line[LINE];
  bool inside = false, found = false;
  uintptr_t at = (uintptr_t)p;
  flags[0] = '\0';
  while (fgets(line, sizeof line, f) != NULL) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
      if (found)
        break; /* the next mapping */
      inside = lo <= at && at < hi;
      found = inside;
    } else if (inside && strncmp(line, "VmFlags:", 8) == 0)
      memcpy(flags, line, LINE);
  }
  fclose(f);
  return found;
}

/* Whether the kernel has transparent huge pages and lists VmFlags (not a
 * sandbox kernel that leaves them out). */
static bool flags_are_listed(void) {
  char flags[LINE];
  static int here;
  return access("/sys/kernel/mm/transparent_hugepage/enabled", R_OK) == 0 &&
         vm_flags_of(&here, flags) && flags[0] != '\0';
}

/* A mapped block of `bytes`: its alignment, zeroes, and the advice on its
 * first and last byte; then freed, and unmapped. */
static void check_mapped_block(size_t bytes) {
  unsigned char *p = nnlib__calloc_huge(bytes, 1);
  assert_non_null(p);
  assert_int_equal((uintptr_t)p % (2u * MIB), 0);
  assert_true(all_zero(p, bytes));
  p[bytes - 1] = 1; /* writable to the end */
  if (flags_are_listed()) {
    char flags[LINE];
    const unsigned char *ends[2] = {p, p + bytes - 1};
    for (int i = 0; i < 2; i++) {
      assert_true(vm_flags_of(ends[i], flags));
      if (strstr(flags, " hg") == NULL)
        fail_msg("byte %zu of the block is not advised for huge pages: %s",
                 i == 0 ? (size_t)0 : bytes - 1, flags);
    }
  }
  nnlib__free_huge(p);
  char flags[LINE];
  assert_false(vm_flags_of(p, flags)); /* unmapped, no mapping leaked */
}
#endif

static void test_large_block_is_mapped_on_huge_pages(void **state) {
  (void)state;
  if (!nnlib__huge_blocks())
    skip(); /* not Linux, or a sanitizer's build */
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  check_mapped_block(2u * MIB);              /* the least that is mapped */
  check_mapped_block(12u * MIB + 12345 * 4); /* not a page multiple */
#endif
}

static void test_ordinary_blocks(void **state) {
  (void)state;
  size_t sizes[2] = {2u * MIB - 4, MIB / 8};
  for (int i = 0; i < 2; i++) {
    unsigned char *p = nnlib__calloc_huge(sizes[i] / 4, 4);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % 64, 0);
    assert_true(all_zero(p, sizes[i]));
    p[sizes[i] - 1] = 1;
    nnlib__free_huge(p);
  }
  nnlib__free_huge(NULL);
}

static void test_overflow_is_refused(void **state) {
  (void)state;
  assert_null(nnlib__calloc_huge(SIZE_MAX / 2, 4));
  assert_null(nnlib__calloc_huge(SIZE_MAX - 16, 1));
}

typedef struct counter {
  int allocs, frees;
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
  counter *c = user;
  c->frees += p != NULL;
  free(p);
}

static void test_user_allocator_gets_the_block(void **state) {
  (void)state;
  counter c = {0, 0, 0, 0};
  nnlib_allocator a = {sizeof a, counting_alloc, counting_free, &c};
  ASSERT_OK(nnlib_set_allocator(&a));
  assert_false(nnlib__huge_blocks());
  size_t count = 4u * MIB;
  float *p = nnlib__calloc_huge(count, sizeof(float));
  assert_non_null(p);
  assert_int_equal(c.allocs, 1);
  assert_true(c.last_size >= count * sizeof(float));
  assert_true(c.last_size <= count * sizeof(float) + 64);
  assert_int_equal(c.last_alignment, 64);
  assert_int_equal((uintptr_t)p % 64, 0);
  assert_true(all_zero((const unsigned char *)p, count * sizeof(float)));
  nnlib__free_huge(p);
  assert_int_equal(c.frees, 1);
  ASSERT_OK(nnlib_set_allocator(NULL));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_large_block_is_mapped_on_huge_pages),
      cmocka_unit_test(test_ordinary_blocks),
      cmocka_unit_test(test_overflow_is_refused),
      cmocka_unit_test(test_user_allocator_gets_the_block),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
