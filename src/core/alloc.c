/* alloc.c - the only place nnlib allocates: 64-byte aligned blocks through
 * the (optional) user allocator hook, a model's activation block on huge
 * pages (a mapping of its own, below), and the checked size arithmetic. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE /* mmap's MAP_ANONYMOUS, madvise, MADV_HUGEPAGE */
#endif
#include "core/core.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
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
 * HUGE_BLOCK bytes and more is a mapping of its own, starting on a 2 MiB
 * boundary and offered to Linux's transparent huge pages (MADV_HUGEPAGE;
 * in the "madvise" mode, Debian's default, no other memory gets them). The
 * passes and OpenBLAS's packing walk these arrays by rows of a few cache
 * lines spread over megabytes, and with 4 KiB pages many such rows cost a
 * TLB miss: measured (benchmarks/MEASUREMENTS.md, alternated runs), the
 * gpt's training step 1.027x as fast on one thread and its inference 1.048x,
 * the LSTM's inference at batch 256 1.055x, the GRU's 1.039x; the MLP and
 * the CNN, whose arrays are small or walked in order, unchanged. Only
 * there: the parameters stay on 4 KiB pages, whose scattered physical
 * addresses spread a matrix with power-of-two rows (1024 floats) over the
 * cache sets, where one 2 MiB page maps its rows onto few sets (mlp-large
 * trained 0.98x-0.995x as fast with its weights on huge pages too). A
 * mapping of its own, not glibc's malloc: a block of a few MiB may come
 * from the heap (glibc raises its mmap threshold after freeing a larger
 * block), and the advice would then stay on that part of the heap for
 * whatever is allocated there later.
 *
 * The advice is a hint: where huge pages are off or none is free, the
 * kernel keeps 4 KiB pages (with "defrag" in its default mode the first
 * touch may compact memory first: compile touches every page, so the
 * steps do not). 2 MiB is the huge page of x86-64 and of arm64 with 4 KiB
 * pages; elsewhere the advice may do nothing. A user allocator
 * (nnlib_set_allocator), a build under a sanitizer (whose allocator
 * guards the block's ends) or another system gets an ordinary block from
 * the allocator in force. */
#define HUGE_BLOCK ((size_t)2 << 20)

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) ||           \
    defined(NNLIB__TSAN)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||     \
    __has_feature(memory_sanitizer)
#define SANITIZED 1
#endif
#endif
#if defined(__linux__) && defined(MADV_HUGEPAGE) && defined(MAP_ANONYMOUS) &&  \
    !defined(SANITIZED)
#define HUGE_MAPPINGS 1
#endif

/* The HEADER bytes before a block of nnlib__calloc_huge say where it came
 * from: a mapping of its own (base, length), or the allocator in force
 * (base, length 0). */
enum { HEADER = 64 };
typedef struct block_header {
  void *base;
  size_t length;
} block_header;

/* Writes the header at `at` and returns the block after it. */
static void *with_header(char *at, void *base, size_t length) {
  block_header h = {base, length};
  memcpy(at, &h, sizeof h);
  return at + HEADER;
}

bool nnlib__huge_blocks(void) {
#if defined(HUGE_MAPPINGS)
  return current.alloc == default_alloc;
#else
  return false;
#endif
}

#if defined(HUGE_MAPPINGS)
/* bytes (>= HUGE_BLOCK) at a 2 MiB boundary of a fresh mapping, with the
 * header in the page before; what the alignment left over is unmapped.
 * NULL when the system refuses. */
static void *map_block(size_t bytes) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  if (bytes > SIZE_MAX - HUGE_BLOCK - page)
    return NULL;
  size_t length = bytes + HUGE_BLOCK + page;
  char *base = mmap(NULL, length, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED)
    return NULL;
  uintptr_t at = ((uintptr_t)base + HEADER + HUGE_BLOCK - 1) &
                 ~(uintptr_t)(HUGE_BLOCK - 1);
  char *block = (char *)at;
  char *first = (char *)((at - HEADER) & ~(uintptr_t)(page - 1));
  char *end =
      (char *)(((uintptr_t)block + bytes + page - 1) & ~(uintptr_t)(page - 1));
  if (first > base)
    munmap(base, (size_t)(first - base));
  if (end < base + length)
    munmap(end, (size_t)(base + length - end));
  (void)madvise(block, bytes, MADV_HUGEPAGE);
  /* mapped memory reads as zero; writing it faults every page in now, at
   * compile, as calloc's memset did, not in the first step */
  memset(block, 0, bytes);
  return with_header(block - HEADER, first, (size_t)(end - first));
}
#endif

void *nnlib__calloc_huge(size_t count, size_t size) {
  if (size != 0 && count > SIZE_MAX / size)
    return NULL;
  size_t bytes = count * size;
#if defined(HUGE_MAPPINGS)
  if (nnlib__huge_blocks() && bytes >= HUGE_BLOCK) {
    void *p = map_block(bytes);
    if (p != NULL)
      return p;
  }
#endif
  if (bytes > SIZE_MAX - HEADER)
    return NULL;
  char *base = nnlib__calloc(bytes + HEADER, 1);
  return base == NULL ? NULL : with_header(base, base, 0);
}

void nnlib__free_huge(void *ptr) {
  if (ptr == NULL)
    return;
  block_header h;
  memcpy(&h, (char *)ptr - HEADER, sizeof h);
#if defined(HUGE_MAPPINGS)
  if (h.length > 0) {
    munmap(h.base, h.length);
    return;
  }
#endif
  nnlib__free(h.base);
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
