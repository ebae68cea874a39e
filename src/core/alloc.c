/* alloc.c - the only place nnlib allocates: 64-byte aligned blocks through
 * the (optional) user allocator hook, and the checked size arithmetic. */
#define _DEFAULT_SOURCE /* madvise, MADV_HUGEPAGE */
#include "core/core.h"

#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

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

/* A model's activation block (activations, workspaces, gradients) of
 * HUGE_BLOCK bytes and more starts on a 2 MiB boundary and is offered to
 * Linux's transparent huge pages (MADV_HUGEPAGE; in the systems' default
 * "madvise" mode no other memory gets them). The passes and OpenBLAS's
 * packing walk these arrays by rows of a few cache lines spread over
 * megabytes, and with 4 KiB pages many such rows cost a TLB miss:
 * measured (benchmarks/README.md, alternated runs), the gpt's training
 * step 1.027x as fast on one thread and its inference 1.048x, the LSTM's
 * inference at batch 256 1.055x, the GRU's 1.039x; the MLP and the CNN,
 * whose arrays are small or walked in order, unchanged. Only there: the
 * parameters stay on 4 KiB pages, whose scattered physical addresses
 * spread a matrix with power-of-two rows (1024 floats) over the cache
 * sets, where one 2 MiB page maps its rows onto few sets (mlp-large
 * trained 0.98x-0.995x as fast with its weights on huge pages too). The
 * advice is a hint: where huge pages are off or none is free, the kernel
 * keeps 4 KiB pages. A user allocator (nnlib_set_allocator) gets the
 * call as any other. */
#define HUGE_BLOCK ((size_t)2 << 20)

void *nnlib__calloc_huge(size_t count, size_t size) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (current.alloc == default_alloc && size != 0 && count <= SIZE_MAX / size &&
      count * size >= HUGE_BLOCK) {
    void *p = NULL;
    if (posix_memalign(&p, HUGE_BLOCK, count * size) != 0)
      return NULL;
    (void)madvise(p, count * size, MADV_HUGEPAGE);
    memset(p, 0, count * size);
    return p;
  }
#endif
  return nnlib__calloc(count, size);
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
