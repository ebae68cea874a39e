/* core.h - what every file of the library shares: errors and their
 * messages, memory, the seeded generator and the one GEMM seam. It sits
 * below everything else and includes only the public header. */
#ifndef NNLIB_CORE_H
#define NNLIB_CORE_H

#include "nnlib.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------- errors */

/* Records a formatted message for the calling thread and returns status. */
nnlib_status nnlib__error(nnlib_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#ifdef __clang_analyzer__
/* For clang's static analyzer only (scripts/check_tidy.sh): it reads one
 * file at a time and cannot see that nnlib__error returns the status it is
 * given, so on its paths a failed check could return NNLIB_OK and the
 * caller go on with what the check refused. The comma shows the contract.
 * Compiled code never sees this macro. */
#define nnlib__error(status, ...)                                              \
  (nnlib__error((status), __VA_ARGS__), (status))
#endif

#define NNLIB_CHECK_ARG(cond, ...)                                             \
  do {                                                                         \
    if (!(cond))                                                               \
      return nnlib__error(NNLIB_ERR_INVALID_ARGUMENT, __VA_ARGS__);            \
  } while (0)

#define NNLIB_TRY(expr)                                                        \
  do {                                                                         \
    nnlib_status nnlib__st = (expr);                                           \
    if (nnlib__st != NNLIB_OK)                                                 \
      return nnlib__st;                                                        \
  } while (0)

/* The whole of the regular file `path` into *data (nnlib__free it), its
 * length in *size; NNLIB_ERR_IO naming `who` (the entry point) for a file
 * that cannot be opened or read or is not a regular file (a directory, a
 * FIFO), NNLIB_ERR_OUT_OF_MEMORY (file.c). */
nnlib_status nnlib__read_file(const char *who, const char *path,
                              unsigned char **data, size_t *size);
/* size bytes of data as the file `path`, whole or not at all: written to
 * <path>.tmp-XXXXXX beside it (rename is atomic only within a file
 * system), synced, closed, renamed over path, the directory synced; a
 * replaced file keeps its mode, a new one gets 0644. A path that exists and
 * is no regular file (a directory, a device) is not replaced. On failure
 * the temporary file is removed and path is as it was: NNLIB_ERR_IO naming
 * `who` and what failed, NNLIB_ERR_OUT_OF_MEMORY (file.c). */
nnlib_status nnlib__write_file_atomically(const char *who, const char *path,
                                          const unsigned char *data,
                                          size_t size);
/* Reads a caller's options struct (first field size_t struct_size) into
 * `dst`, already filled with defaults: a shorter struct keeps the defaults of
 * the fields it lacks, a longer one is accepted only if its extra bytes are
 * zero. `what` names the struct in messages. */
nnlib_status nnlib__read_options(void *dst, size_t dst_size, const void *src,
                                 const char *what);
/* The output twin: copies the fields of `src` (a full struct of src_size
 * bytes, first field struct_size) that the caller's struct at `dst`, of
 * the struct_size the caller set, has room for; the caller's struct_size
 * stays, fields this library lacks are zeroed. NNLIB_ERR_STRUCT_SIZE for a
 * struct_size below sizeof(size_t). */
nnlib_status nnlib__write_struct(void *dst, const void *src, size_t src_size,
                                 const char *what);
/* The *_options_init_size twin: fills the caller's struct of `struct_size`
 * bytes from `defaults` (a full struct of lib_size bytes): the fields both
 * know get the defaults, bytes past lib_size (a newer caller's fields) are
 * zeroed, nothing past struct_size is written, and struct_size is stored.
 * NNLIB_ERR_INVALID_ARGUMENT for NULL, NNLIB_ERR_STRUCT_SIZE below
 * sizeof(size_t). */
nnlib_status nnlib__init_options(void *dst, size_t struct_size,
                                 const void *defaults, size_t lib_size,
                                 const char *what);
/* sizeof(type) as it was when `last` was its last field: what the
 * *_options_init entry points of programs built against those headers
 * fill. A field added later starts at or after this size. */
#define NNLIB__SIZE_THROUGH(type, last)                                        \
  ((offsetof(type, last) + sizeof(((type *)0)->last) + _Alignof(type) - 1) /   \
   _Alignof(type) * _Alignof(type))

/* ------------------------------------------------------------- memory */

void *nnlib__alloc(size_t bytes);             /* 64-byte aligned, or NULL  */
void *nnlib__calloc(size_t count, size_t size); /* zeroed, overflow-checked */
/* A model's activation block, zeroed, 64-byte aligned: on Linux with the
 * default allocator and 2 MiB or more, a mapping of its own on 2 MiB
 * pages where the kernel gives them (alloc.c). Freed by nnlib__free_huge
 * only. nnlib__huge_blocks: whether such blocks are mapped (for tests). */
void *nnlib__calloc_huge(size_t count, size_t size);
void nnlib__free_huge(void *ptr);
bool nnlib__huge_blocks(void);
void nnlib__free(void *ptr);

/* a * b into *out; false (and *out untouched) if it overflows int64. Every
 * product of sizes from outside (shapes, file headers) goes through it. */
bool nnlib__mul_overflows(int64_t a, int64_t b, int64_t *out);
/* Product of dims[0..rank) into *out, with overflow and positivity checks. */
nnlib_status nnlib__shape_size(const int64_t *dims, size_t rank, int64_t *out,
                               const char *what);

/* ---------------------------------------------------------------- rng */

/* xoshiro256** seeded through splitmix64: same seed, same sequence. */
typedef struct nnlib__rng {
  uint64_t s[4];
} nnlib__rng;

void nnlib__rng_seed(nnlib__rng *rng, uint64_t seed);
uint64_t nnlib__rng_next(nnlib__rng *rng);
float nnlib__rng_uniform(nnlib__rng *rng); /* [0, 1) */
/* Dropout's mask, `count` values of nnlib__rng_uniform in turn: keep
 * where the draw is at least rate, else 0 (the same stream as a loop
 * over nnlib__rng_uniform, without a call per value). */
void nnlib__rng_keep_mask(nnlib__rng *rng, float rate, float keep, float *mask,
                          int64_t count);
float nnlib__rng_normal(nnlib__rng *rng);  /* N(0, 1) */
uint64_t nnlib__rng_below(nnlib__rng *rng, uint64_t bound); /* [0, bound) */
void nnlib__rng_shuffle(nnlib__rng *rng, int64_t *items, int64_t count);

/* --------------------------------------------------------------- BLAS */

typedef enum { NNLIB__NO_TRANS = 0, NNLIB__TRANS = 1 } nnlib__trans;

/* C[m,n] = alpha * op(A)[m,k] op(B)[k,n] + beta * C, row-major, with leading
 * dimensions lda/ldb/ldc. The only place nnlib calls a matrix product. Checks
 * every dimension fits the 32-bit BLAS interface. */
nnlib_status nnlib__gemm(nnlib__trans ta, nnlib__trans tb, int64_t m,
                         int64_t n, int64_t k, float alpha, const float *a,
                         int64_t lda, const float *b, int64_t ldb, float beta,
                         float *c, int64_t ldc);
/* One product of nnlib__gemm_batch, nnlib__gemm's arguments. */
typedef struct nnlib__gemm_call {
  nnlib__trans ta, tb;
  int64_t m, n, k;
  float alpha;
  const float *a;
  int64_t lda;
  const float *b;
  int64_t ldb;
  float beta;
  float *c;
  int64_t ldc;
} nnlib__gemm_call;
/* calls[0 .. count) as nnlib__gemm would run each, but spread over
 * nnlib's threads call by call, each call whole on one thread: for many
 * products each too small to split (attention's per-head blocks). No
 * call's C may overlap another call's operands or C. Each call gets the
 * bits nnlib__gemm gives it on one thread, whatever the thread count.
 * Every call is checked first (NNLIB_ERR_TOO_LARGE, nothing run). */
nnlib_status nnlib__gemm_batch(const nnlib__gemm_call *calls, int64_t count);
/* Work cut into units that each run a pass, some products, and another
 * pass on one thread, so that what a unit writes is read back from that
 * core's cache (a convolution's chunk of samples: its transform, its
 * GEMMs, its output pass). The units are cut into `lanes` runs of
 * consecutive units: lane j takes units [lane_start[j], lane_start[j +
 * 1]) (lane_start[0] = 0, lane_start[lanes] = count), or, with lane_start
 * NULL, [nnlib__range_start(count, lanes, j), nnlib__range_start(count,
 * lanes, j + 1)) as parallel.c cuts a pass. A lane's units run in order on
 * one thread, so each lane may keep scratch of its own, and a lane's
 * calls may add (beta 1) into what its earlier units' calls wrote. Unit u
 * runs before(ctx, u, lane), then the calls_per_unit products that
 * calls(ctx, u, lane, out) describes, then after(ctx, u, lane). With two
 * lanes or more each lane runs inside a job: its passes'
 * nnlib__parallel_for and its calls run whole on its thread. With one
 * lane the units run on the caller, their passes may spread over the
 * threads, and their calls too: a unit's one call, or each call of an
 * ordered unit in turn, split as nnlib__gemm splits it, else all of them
 * at once as nnlib__gemm_batch spreads them. Without `ordered` no two
 * calls of a unit may share a C or write what another reads (with it,
 * they run one after the other); no two lanes may ever. */
#define NNLIB__UNIT_CALLS_MAX 16
#define NNLIB__UNIT_LANES_MAX 64
typedef void (*nnlib__unit_fn)(void *ctx, int64_t unit, int64_t lane);
typedef void (*nnlib__unit_calls_fn)(void *ctx, int64_t unit, int64_t lane,
                                     nnlib__gemm_call *out);
typedef struct nnlib__gemm_units {
  int64_t count, lanes;   /* lanes: 1 to count (more are cut to count;
                             with lane_start, lanes may be empty) */
  int64_t calls_per_unit; /* 1 to NNLIB__UNIT_CALLS_MAX */
  nnlib__unit_calls_fn calls;
  nnlib__unit_fn before, after; /* NULL: none */
  void *ctx;
  bool ordered;              /* a unit's calls one after the other */
  const int64_t *lane_start; /* lanes + 1 entries, or NULL */
} nnlib__gemm_units;
/* Every call of every unit is checked first (NNLIB_ERR_TOO_LARGE, nothing
 * run); calls_per_unit out of range, more than NNLIB__UNIT_LANES_MAX
 * lanes with lane_start, or lane_start not rising from 0 to count is
 * NNLIB_ERR_INVALID_ARGUMENT. */
nnlib_status nnlib__gemm_units_run(const nnlib__gemm_units *u);
/* How nnlib__gemm splits an m x n x k product over `threads` threads:
 * along the longer of m and n (the other operand is then packed once per
 * part), in `units` blocks of 16 rows or columns, into `parts` parts of
 * whole blocks (1: issued whole), as many as the threads but none under
 * 2^18 multiply-adds. blas.c. */
typedef enum { NNLIB__CUT_M, NNLIB__CUT_N } nnlib__gemm_axis;
typedef struct nnlib__gemm_split {
  nnlib__gemm_axis axis;
  int64_t parts, units;
} nnlib__gemm_split;
nnlib__gemm_split nnlib__gemm_split_for(int64_t m, int64_t n, int64_t k,
                                        int threads);
/* FLOPs (2 m n k each) of every nnlib__gemm the calling thread has issued;
 * the profiler takes differences of it. */
double nnlib__gemm_flops_issued(void);
/* The BLAS underneath, judged (blas_info.c): the vector set of an OpenBLAS
 * kernel name (case ignored: "Haswell" from a DYNAMIC_ARCH build, "HASWELL"
 * from a fixed one), and the whole verdict of nnlib_blas_info from the
 * build line, the kernel name and the CPU's own set. */
nnlib_simd nnlib__blas_kernels_simd(const char *kernels);
void nnlib__blas_assess(nnlib_blas_info *info, const char *config,
                        const char *kernels, nnlib_simd cpu);
/* The widest set this CPU and its operating system allow (cpu.c), from
 * libgcc's reading of CPUID and XGETBV at load time. */
nnlib_simd nnlib__cpu_simd(void);
/* Largest dimension nnlib__gemm accepts. */
#define NNLIB__BLAS_DIM_MAX ((int64_t)0x7fffffff)

/* dst[j + i ds] = src[j ss + i] for j < rows, i < cols: src's rows are
 * contiguous, dst's columns are; copied in square tiles that stay in L1,
 * 8 x 8 blocks through AVX2 registers where the CPU has them. src and dst
 * must not overlap. transpose.c. */
void nnlib__transpose_tiles(const float *src, float *dst, int64_t rows,
                            int64_t cols, int64_t ss, int64_t ds);
/* Tests: true makes nnlib__transpose_tiles use its plain loop only. */
void nnlib__transpose_force_plain(bool on);

/* ----------------------------------------------------------- threads */

/* The work of indices [begin, end) of a pass. It must give each index the
 * same result whatever range it arrives in: no sum across indices that a
 * split could cut. Then the thread count never changes a bit. */
typedef void (*nnlib__range_fn)(void *ctx, int64_t begin, int64_t end);

/* Runs fn over [0, n) in contiguous ranges, one per thread of
 * nnlib_get_num_threads() (the caller runs the first), each range at least
 * min_per_part indices long; inline when one range is all there is, when
 * called from inside a range, or while another thread's job runs. Returns
 * when every range is done. parallel.c. */
void nnlib__parallel_for(int64_t n, int64_t min_per_part, nnlib__range_fn fn,
                         void *ctx);
/* Where range `part` of [0, n) cut into `parts` starts: the first
 * n % parts ranges are one index longer than the rest. parallel.c's split,
 * and the parts of a split product (blas.c). */
int64_t nnlib__range_start(int64_t n, int64_t parts, int64_t part);
/* The min_per_part that gives each range at least min_values values when
 * every index holds values_per_index of them (at least 1). */
int64_t nnlib__parallel_grain(int64_t values_per_index, int64_t min_values);

#endif /* NNLIB_CORE_H */
