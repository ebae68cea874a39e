/* blas.c - the GEMM seam: every matrix product in nnlib goes through here,
 * and this is the only file that includes cblas.h. */
#include "core/core.h"

#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

static bool fits_blas(int64_t v) { return v >= 0 && v <= NNLIB__BLAS_DIM_MAX; }

/* Threads. OpenBLAS runs on one thread; nnlib splits each large product
 * over its own pass pool (parallel.c), one part per thread, each part an
 * sgemm that OpenBLAS runs on the thread that calls it.
 *
 * Why not OpenBLAS's threads: after every threaded product they spin for
 * the next one (its THREAD_TIMEOUT, about 2^28 cycles), on the core that
 * nnlib's pool needs for the pass that follows, so the passes between the
 * products ran no faster on two threads than on one. And OpenBLAS's split
 * of a product with fewer than 32 columns in C ran at 0.52x-0.75x of one
 * thread. With the products on nnlib's pool (whose workers then slept
 * 20 us after a job; 200 us now, parallel.c) the benchmark's two-thread
 * steps ran faster than with OpenBLAS's threads (idle machine, medians of
 * 4, interleaved; benchmarks/MEASUREMENTS.md):
 * gpt training 1.21x and inference 1.12x, LSTM training 1.19x, CNN
 * 1.05x-1.10x, mlp-small at batch 256 1.52x (training) and 2.35x
 * (inference); mlp-large 0.97x-1.10x, where OpenBLAS's threads share
 * their packed operand and each part here packs its own. */

/* The smallest part worth a thread: below it, waking and joining the
 * other thread costs about what the part saves. 2^18 multiply-adds take
 * about 6 us on one core; with parts of 2^17, mlp-small at batch 32 (two
 * products of 401k) trained 0.88x as fast on two threads as on one, with
 * 2^18 (those products whole) 1.00x. */
#define MIN_PART_MNK 262144.0
/* Parts are whole multiples of this many rows (or columns): OpenBLAS's
 * Haswell and SkylakeX sgemm kernels work in blocks of 16 along the side
 * we cut (its column-major M) and 4, 8 or 16 along the other. */
#define PART_UNIT 16

static atomic_int threads_set; /* 0: not chosen yet */

/* The thread count in force; on first use, OpenBLAS's default (all cores,
 * or OPENBLAS_NUM_THREADS), after which OpenBLAS is kept to one thread. */
static int threads_in_force(void) {
  int t = atomic_load(&threads_set);
  if (t > 0)
    return t;
  int want = openblas_get_num_threads();
  if (want < 1)
    want = 1;
  int expected = 0;
  if (atomic_compare_exchange_strong(&threads_set, &expected, want))
    openblas_set_num_threads(1);
  return atomic_load(&threads_set);
}

nnlib__gemm_split nnlib__gemm_split_for(int64_t m, int64_t n, int64_t k,
                                        int threads) {
  nnlib__gemm_split s = {m >= n ? NNLIB__CUT_M : NNLIB__CUT_N, 1, 0};
  int64_t along = m >= n ? m : n, across = m >= n ? n : m;
  s.units = (along + PART_UNIT - 1) / PART_UNIT;
  double unit_mnk = (double)PART_UNIT * (double)across * (double)k;
  if (threads <= 1 || unit_mnk <= 0.0)
    return s;
  double fit = (double)s.units * unit_mnk / MIN_PART_MNK;
  int64_t parts = fit < (double)threads ? (int64_t)fit : threads;
  if (parts > s.units)
    parts = s.units;
  s.parts = parts < 1 ? 1 : parts;
  return s;
}

/* Per thread, so profiling one model never counts another thread's work;
 * one add per GEMM, so it is always on. */
static _Thread_local double flops_issued;

double nnlib__gemm_flops_issued(void) { return flops_issued; }

/* A product with one row (m = 1) or one column (n = 1) of C as the
 * matrix-vector product it is: OpenBLAS's sgemm runs such products at a
 * few GFLOP/s, its sgemv at the speed the matrix streams in (mlp-large's
 * batch-1 prediction, three such products: 596 us through sgemm, 92 us
 * through sgemv). With one row, c = op(B)^T a, a the row of
 * op(A) (stride 1, or lda when A is transposed); with one column,
 * c = op(A) b, b the column of op(B) (stride ldb, or 1 when B is
 * transposed), written at stride ldc. beta 0 must ignore what C held, as
 * sgemm does, so C is cleared first. */
static void sgemv(nnlib__trans ta, nnlib__trans tb, int64_t m, int64_t n,
                  int64_t k, float alpha, const float *a, int64_t lda,
                  const float *b, int64_t ldb, float beta, float *c,
                  int64_t ldc) {
  int64_t len = m == 1 ? n : m, inc_c = m == 1 ? 1 : ldc;
  if (beta == 0.0f)
    for (int64_t i = 0; i < len; i++)
      c[i * inc_c] = 0.0f;
  if (m == 1) /* B is [k, n] (tb N) or [n, k] (tb T) */
    cblas_sgemv(CblasRowMajor, tb ? CblasNoTrans : CblasTrans,
                (blasint)(tb ? n : k), (blasint)(tb ? k : n), alpha, b,
                (blasint)ldb, a, (blasint)(ta ? lda : 1), beta, c, 1);
  else /* A is [m, k] (ta N) or [k, m] (ta T) */
    cblas_sgemv(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
                (blasint)(ta ? k : m), (blasint)(ta ? m : k), alpha, a,
                (blasint)lda, b, (blasint)(tb ? 1 : ldb), beta, c,
                (blasint)ldc);
}

static void sgemm(nnlib__trans ta, nnlib__trans tb, int64_t m, int64_t n,
                  int64_t k, float alpha, const float *a, int64_t lda,
                  const float *b, int64_t ldb, float beta, float *c,
                  int64_t ldc) {
  if ((m == 1 || n == 1) && k > 0) {
    sgemv(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
              tb ? CblasTrans : CblasNoTrans, (blasint)m, (blasint)n,
              (blasint)k, alpha, a, (blasint)lda, b, (blasint)ldb, beta, c,
              (blasint)ldc);
}

typedef struct gemm_job {
  nnlib__trans ta, tb;
  int64_t m, n, k, lda, ldb, ldc;
  float alpha, beta;
  const float *a, *b;
  float *c;
  nnlib__gemm_split split;
} gemm_job;

/* Parts [begin, end) of a split product: part i is range i of the U
 * blocks of PART_UNIT rows (or columns) cut into P parts, as parallel.c
 * cuts a pass (nnlib__range_start). Each part is one sgemm
 * whether the pool or the caller runs it, so the bits depend only on the
 * shape and the thread count. */
static void gemm_parts(void *ctx, int64_t begin, int64_t end) {
  const gemm_job *j = ctx;
  int64_t units = j->split.units, parts = j->split.parts;
  int64_t along = j->split.axis == NNLIB__CUT_M ? j->m : j->n;
  for (int64_t i = begin; i < end; i++) {
    int64_t lo = nnlib__range_start(units, parts, i) * PART_UNIT;
    int64_t hi = nnlib__range_start(units, parts, i + 1) * PART_UNIT;
    hi = hi < along ? hi : along;
    if (j->split.axis == NNLIB__CUT_M)
      sgemm(j->ta, j->tb, hi - lo, j->n, j->k, j->alpha,
            j->ta ? j->a + lo : j->a + lo * j->lda, j->lda, j->b, j->ldb,
            j->beta, j->c + lo * j->ldc, j->ldc);
    else
      sgemm(j->ta, j->tb, j->m, hi - lo, j->k, j->alpha, j->a, j->lda,
            j->tb ? j->b + lo * j->ldb : j->b + lo, j->ldb, j->beta,
            j->c + lo, j->ldc);
  }
}

/* One checked call, split over the threads when it is large enough (in
 * parts the caller runs alone inside a job). */
static void split_call(const nnlib__gemm_call *g) {
  if (g->m == 0 || g->n == 0)
    return;
  nnlib__gemm_split split =
      nnlib__gemm_split_for(g->m, g->n, g->k, threads_in_force());
  if (split.parts <= 1) {
    sgemm(g->ta, g->tb, g->m, g->n, g->k, g->alpha, g->a, g->lda, g->b, g->ldb,
          g->beta, g->c, g->ldc);
    return;
  }
  gemm_job job = {g->ta,  g->tb,    g->m,    g->n, g->k, g->lda, g->ldb,
                  g->ldc, g->alpha, g->beta, g->a, g->b, g->c,   split};
  nnlib__parallel_for(split.parts, 1, gemm_parts, &job);
}

nnlib_status nnlib__gemm(nnlib__trans ta, nnlib__trans tb, int64_t m,
                         int64_t n, int64_t k, float alpha, const float *a,
                         int64_t lda, const float *b, int64_t ldb, float beta,
                         float *c, int64_t ldc) {
  if (!fits_blas(m) || !fits_blas(n) || !fits_blas(k) || !fits_blas(lda) ||
      !fits_blas(ldb) || !fits_blas(ldc))
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "gemm: a dimension (m=%lld n=%lld k=%lld) exceeds the "
                        "32-bit BLAS interface",
                        (long long)m, (long long)n, (long long)k);
  if (m == 0 || n == 0)
    return NNLIB_OK;
  flops_issued += 2.0 * (double)m * (double)n * (double)k;
  nnlib__gemm_call call = {ta,  tb, m,   n,    k, alpha, a,
                           lda, b,  ldb, beta, c, ldc};
  split_call(&call);
  return NNLIB_OK;
}

static bool call_fits(const nnlib__gemm_call *c) {
  return fits_blas(c->m) && fits_blas(c->n) && fits_blas(c->k) &&
         fits_blas(c->lda) && fits_blas(c->ldb) && fits_blas(c->ldc);
}

static double call_mnk(const nnlib__gemm_call *c) {
  return (double)c->m * (double)c->n * (double)c->k;
}

static void batch_parts(void *ctx, int64_t begin, int64_t end) {
  const nnlib__gemm_call *calls = ctx;
  for (int64_t i = begin; i < end; i++) {
    const nnlib__gemm_call *c = &calls[i];
    if (c->m > 0 && c->n > 0)
      sgemm(c->ta, c->tb, c->m, c->n, c->k, c->alpha, c->a, c->lda, c->b,
            c->ldb, c->beta, c->c, c->ldc);
  }
}

/* calls[0 .. count), mnk multiply-adds in all, over the threads in parts
 * of about MIN_PART_MNK multiply-adds, as nnlib__gemm's (inline inside a
 * job). */
static void spread_calls(const nnlib__gemm_call *calls, int64_t count,
                         double mnk) {
  double per_call = mnk / (double)count;
  int64_t grain =
      per_call >= MIN_PART_MNK
          ? 1
          : (int64_t)(MIN_PART_MNK / (per_call > 1.0 ? per_call : 1.0)) + 1;
  nnlib__parallel_for(count, grain, batch_parts, (void *)calls);
}

nnlib_status nnlib__gemm_batch(const nnlib__gemm_call *calls, int64_t count) {
  double mnk = 0.0;
  for (int64_t i = 0; i < count; i++) {
    if (!call_fits(&calls[i]))
      return nnlib__error(NNLIB_ERR_TOO_LARGE,
                          "gemm: a dimension (m=%lld n=%lld k=%lld) of call "
                          "%lld of a batch exceeds the 32-bit BLAS interface",
                          (long long)calls[i].m, (long long)calls[i].n,
                          (long long)calls[i].k, (long long)i);
    mnk += call_mnk(&calls[i]);
  }
  if (count <= 0)
    return NNLIB_OK;
  flops_issued += 2.0 * mnk;
  threads_in_force(); /* OpenBLAS kept to one thread before any part runs */
  spread_calls(calls, count, mnk);
  return NNLIB_OK;
}

/* Lanes as run: 1 to count. */
static int64_t lanes_of(int64_t count, int64_t lanes) {
  return lanes < 1 || count < 1 ? 1 : lanes > count ? count : lanes;
}

static double calls_mnk(const nnlib__gemm_call *c, int64_t count) {
  double mnk = 0.0;
  for (int64_t i = 0; i < count; i++)
    mnk += call_mnk(&c[i]);
  return mnk;
}

static int64_t lane_first(const nnlib__gemm_units *u, int64_t lane) {
  return u->lane_start != NULL ? u->lane_start[lane]
                               : nnlib__range_start(u->count, u->lanes, lane);
}

/* One unit's calls: in one lane, inside a job, each whole on this thread;
 * on the caller (one lane) split or spread over the threads. */
static void unit_calls(const nnlib__gemm_units *u, const nnlib__gemm_call *c) {
  bool alone = u->lanes == 1;
  if (u->ordered || u->calls_per_unit == 1) {
    for (int64_t i = 0; i < u->calls_per_unit; i++)
      if (alone)
        split_call(&c[i]);
      else
        batch_parts((void *)&c[i], 0, 1);
    return;
  }
  spread_calls(c, u->calls_per_unit, calls_mnk(c, u->calls_per_unit));
}

static void units_lanes(void *ctx, int64_t begin, int64_t end) {
  const nnlib__gemm_units *u = ctx;
  nnlib__gemm_call c[NNLIB__UNIT_CALLS_MAX];
  for (int64_t lane = begin; lane < end; lane++)
    for (int64_t unit = lane_first(u, lane); unit < lane_first(u, lane + 1);
         unit++) {
      if (u->before != NULL)
        u->before(u->ctx, unit, lane);
      u->calls(u->ctx, unit, lane, c);
      unit_calls(u, c);
      if (u->after != NULL)
        u->after(u->ctx, unit, lane);
    }
}

/* Checks every unit's calls; their multiply-adds in *mnk. */
static nnlib_status check_units(const nnlib__gemm_units *u, double *mnk) {
  nnlib__gemm_call c[NNLIB__UNIT_CALLS_MAX];
  *mnk = 0.0;
  for (int64_t lane = 0; lane < u->lanes; lane++)
    for (int64_t unit = lane_first(u, lane); unit < lane_first(u, lane + 1);
         unit++) {
      u->calls(u->ctx, unit, lane, c);
      for (int64_t i = 0; i < u->calls_per_unit; i++)
        if (!call_fits(&c[i]))
          return nnlib__error(NNLIB_ERR_TOO_LARGE,
                              "gemm: a dimension (m=%lld n=%lld k=%lld) of "
                              "call %lld of unit %lld exceeds the 32-bit "
                              "BLAS interface",
                              (long long)c[i].m, (long long)c[i].n,
                              (long long)c[i].k, (long long)i, (long long)unit);
      *mnk += calls_mnk(c, u->calls_per_unit);
    }
  return NNLIB_OK;
}

static nnlib_status check_lane_start(const nnlib__gemm_units *u) {
  if (u->lane_start == NULL)
    return NNLIB_OK;
  if (u->lanes < 1 || u->lanes > NNLIB__UNIT_LANES_MAX)
    return nnlib__error(NNLIB_ERR_INVALID_ARGUMENT,
                        "gemm: %lld lanes with their starts; 1 to %d are "
                        "allowed",
                        (long long)u->lanes, NNLIB__UNIT_LANES_MAX);
  bool rising = u->lane_start[0] == 0 && u->lane_start[u->lanes] == u->count;
  for (int64_t j = 0; rising && j < u->lanes; j++)
    rising = u->lane_start[j] <= u->lane_start[j + 1];
  if (!rising)
    return nnlib__error(NNLIB_ERR_INVALID_ARGUMENT,
                        "gemm: the lanes' first units do not rise from 0 to "
                        "the %lld units",
                        (long long)u->count);
  return NNLIB_OK;
}

nnlib_status nnlib__gemm_units_run(const nnlib__gemm_units *u) {
  if (u->calls_per_unit < 1 || u->calls_per_unit > NNLIB__UNIT_CALLS_MAX)
    return nnlib__error(NNLIB_ERR_INVALID_ARGUMENT,
                        "gemm: %lld calls per unit; 1 to %d are allowed",
                        (long long)u->calls_per_unit, NNLIB__UNIT_CALLS_MAX);
  NNLIB_TRY(check_lane_start(u));
  if (u->count <= 0)
    return NNLIB_OK;
  nnlib__gemm_units run = *u;
  if (u->lane_start == NULL)
    run.lanes = lanes_of(u->count, u->lanes);
  double mnk;
  NNLIB_TRY(check_units(&run, &mnk));
  flops_issued += 2.0 * mnk;
  threads_in_force(); /* OpenBLAS kept to one thread before any unit runs */
  nnlib__parallel_for(run.lanes, 1, units_lanes, &run);
  return NNLIB_OK;
}

nnlib_status nnlib_set_num_threads(int n) {
  if (n <= 0) {
    /* the default: OPENBLAS_NUM_THREADS when set, else every core */
    const char *env = getenv("OPENBLAS_NUM_THREADS");
    n = env != NULL && atoi(env) > 0 ? atoi(env) : openblas_get_num_procs();
  }
  atomic_store(&threads_set, n);
  openblas_set_num_threads(1);
  return NNLIB_OK;
}

int nnlib_get_num_threads(void) { return threads_in_force(); }

/* openblas_get_config rebuilds one static buffer of OpenBLAS's on every
 * call: two threads calling it at once race. nnlib reads it once, into a
 * copy of its own. */
static pthread_once_t config_once = PTHREAD_ONCE_INIT;
static char config_copy[256];

static void copy_config(void) {
  snprintf(config_copy, sizeof config_copy, "%s", openblas_get_config());
}

nnlib_status nnlib_blas_get_info(nnlib_blas_info *info) {
  NNLIB_CHECK_ARG(info != NULL, "nnlib_blas_get_info: info is NULL");
  pthread_once(&config_once, copy_config);
  nnlib_blas_info full;
  nnlib__blas_assess(&full, config_copy, openblas_get_corename(),
                     nnlib__cpu_simd());
  return nnlib__write_struct(info, &full, sizeof full, "nnlib_blas_get_info");
}
