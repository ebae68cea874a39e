/* alloc.c - the only place nnlib allocates: 64-byte aligned blocks through
 * the (optional) user allocator hook, and the checked size arithmetic. */
#include "core/core.h"

#include <stdlib.h>
#include <string.h>

enum { ALIGNMENT = 64 };

static void *default_alloc(size_t size, size_t alignment, void *user) {
  (void)user;
  /* aligned_alloc wants a size that is a multiple of the alignment */
  size_t rounded = (size + alignment - 1) / alignment * alignment;
  return aligned_alloc(alignment, rounded);
}

static void default_free(void *ptr, void *user) {
  (void)user;
  free(ptr);
}

static nnlib_allocator current = {sizeof(nnlib_allocator), default_alloc,
                                  default_free, NULL};

nnlib_status nnlib_set_allocator(const nnlib_allocator *allocator) {
  if (allocator == NULL) {
    current = (nnlib_allocator){sizeof(nnlib_allocator), default_alloc,
                                default_free, NULL};
    return NNLIB_OK;
  }
  nnlib_allocator a = {sizeof(nnlib_allocator), NULL, NULL, NULL};
  NNLIB_TRY(nnlib__read_options(&a, sizeof a, allocator, "nnlib_allocator"));
  NNLIB_CHECK_ARG(a.alloc != NULL && a.free != NULL,
                  "nnlib_set_allocator: alloc and free must both be set");
  current = a;
  return NNLIB_OK;
}

void *nnlib__alloc(size_t bytes) {
  if (bytes == 0)
    bytes = 1;
  if (bytes > SIZE_MAX - ALIGNMENT)
    return NULL;
  return current.alloc(bytes, ALIGNMENT, current.user);
}

void *nnlib__calloc(size_t count, size_t size) {
  if (size != 0 && count > SIZE_MAX / size)
    return NULL;
  void *p = nnlib__alloc(count * size);
  if (p != NULL)
    memset(p, 0, count * size);
  return p;
}

void nnlib__free(void *ptr) {
  if (ptr != NULL)
    current.free(ptr, current.user);
}

void nnlib_free(void *ptr) { nnlib__free(ptr); }

bool nnlib__mul_overflows(int64_t a, int64_t b, int64_t *out) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r))
    return true;
  *out = r;
  return false;
}

nnlib_status nnlib__shape_size(const int64_t *dims, size_t rank, int64_t *out,
                               const char *what) {
  int64_t size = 1;
  for (size_t i = 0; i < rank; i++) {
    if (dims[i] < 1)
      return nnlib__error(NNLIB_ERR_INVALID_ARGUMENT,
                          "%s: dimension %zu is %lld, must be >= 1", what, i,
                          (long long)dims[i]);
    if (nnlib__mul_overflows(size, dims[i], &size))
      return nnlib__error(NNLIB_ERR_TOO_LARGE,
                          "%s: the product of the dimensions overflows", what);
  }
  /* every element must stay addressable in bytes */
  if (size > (int64_t)(SIZE_MAX / sizeof(float) / 2))
    return nnlib__error(NNLIB_ERR_TOO_LARGE, "%s: %lld elements is too many",
                        what, (long long)size);
  *out = size;
  return NNLIB_OK;
}
