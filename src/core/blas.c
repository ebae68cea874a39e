/* blas.c - the GEMM seam: every matrix product in nnlib goes through here,
 * and this is the only file that includes cblas.h. */
#include "core/core.h"

#include <cblas.h>

static bool fits_blas(int64_t v) { return v >= 0 && v <= NNLIB__BLAS_DIM_MAX; }

/* OpenBLAS 0.3 runs an sgemm of at most this many multiply-adds (m n k) on
 * the calling thread and larger ones on all its threads (its interface:
 * SMP_THRESHOLD_MIN 65536 x GEMM_MULTITHREAD_THRESHOLD 4). */
#define OPENBLAS_ALONE_MNK 262144.0
/* Just above that, a second OpenBLAS thread gains nothing even on an idle
 * machine (a 32 x 16 x 784 product, mlp-small's first layer: 12.85 us on
 * one thread, 12.83 us on two), and costs 2x to 5x when the other core is
 * busy, since waking OpenBLAS's worker then waits for the scheduler. Larger
 * products gain from it when the core is free (64 x 16 x 784: 0.83 of the
 * one-thread time; 128 x 128 x 32: 0.90). nnlib__gemm issues the products
 * between the two bounds as pieces of at most OPENBLAS_ALONE_MNK, each of
 * which OpenBLAS runs on the calling thread, so the process-wide thread
 * count is never touched (another thread may be inside a GEMM). The pieces
 * depend on the shape and the thread count only: the same settings give
 * the same bits. */
#define PIECES_BELOW_MNK (2.0 * OPENBLAS_ALONE_MNK)
/* More pieces than this cost more in calls than the thread saves. */
#define MAX_PIECES 16
/* OpenBLAS's threads share out the columns of a row-major C (its
 * column-major rows). With fewer than this many columns, two threads ran
 * slower than one at every size measured (idle machine, medians of 9:
 * m x 16 x 784 at 0.54x-0.75x of one thread for m = 64..1024, 4096 x 16 x
 * 128 at 0.52x), so such products always go as pieces on the calling
 * thread, however many (256 x 16 x 784: 106 us as 13 pieces, 144 us on two
 * threads, 96 us whole on one). From 32 columns on, pieces cost as much as
 * OpenBLAS's split (256 x 32 x 784: 191 us against 189 us). */
#define NARROW_N 32
/* ... unless the pieces come out thinner than this: each piece re-reads
 * and re-writes C (a cut along k) or re-packs B (along m) once per that
 * many rows, and thin pieces lose more than OpenBLAS's split does (512 x 28
 * x 7168, an LSTM's input weight gradient at batch 256, in pieces of 18:
 * 5% slower training; 1024 x 16 x 784 in pieces of 20: 461 us against 515
 * us on two threads and 338 us whole on one). */
#define NARROW_MIN_PIECE 32

/* Per thread, so profiling one model never counts another thread's work;
 * one add per GEMM, so it is always on. */
static _Thread_local double flops_issued;

double nnlib__gemm_flops_issued(void) { return flops_issued; }

static void sgemm(nnlib__trans ta, nnlib__trans tb, int64_t m, int64_t n,
                  int64_t k, float alpha, const float *a, int64_t lda,
                  const float *b, int64_t ldb, float beta, float *c,
                  int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
              tb ? CblasTrans : CblasNoTrans, (blasint)m, (blasint)n,
              (blasint)k, alpha, a, (blasint)lda, b, (blasint)ldb, beta, c,
              (blasint)ldc);
}

int64_t nnlib__gemm_pieces(int64_t m, int64_t n, int64_t k, int threads,
                           nnlib__gemm_axis *axis) {
  double mnk = (double)m * (double)n * (double)k;
  /* cut the longest side: each piece then re-packs only the smaller
   * operands (a cut along k re-packs nothing) */
  *axis = k >= m && k >= n ? NNLIB__CUT_K : m >= n ? NNLIB__CUT_M : NNLIB__CUT_N;
  bool narrow = n < NARROW_N;
  if (threads <= 1 || mnk <= OPENBLAS_ALONE_MNK ||
      (mnk >= PIECES_BELOW_MNK && !narrow))
    return 0;
  int64_t along = *axis == NNLIB__CUT_K ? k : *axis == NNLIB__CUT_M ? m : n;
  int64_t piece = (int64_t)(OPENBLAS_ALONE_MNK / (mnk / (double)along));
  if (piece < 1 || (narrow && piece < NARROW_MIN_PIECE) ||
      (!narrow && (along + piece - 1) / piece > MAX_PIECES))
    return 0;
  return piece;
}

/* Piece [i, i + len) along `axis` of C = alpha op(A) op(B) + beta C. A cut
 * along k adds each later piece onto the earlier ones (beta 1). */
static void gemm_piece(nnlib__gemm_axis axis, int64_t i, int64_t len,
                       nnlib__trans ta, nnlib__trans tb, int64_t m, int64_t n,
                       int64_t k, float alpha, const float *a, int64_t lda,
                       const float *b, int64_t ldb, float beta, float *c,
                       int64_t ldc) {
  if (axis == NNLIB__CUT_M)
    sgemm(ta, tb, len, n, k, alpha, ta ? a + i : a + i * lda, lda, b, ldb,
          beta, c + i * ldc, ldc);
  else if (axis == NNLIB__CUT_N)
    sgemm(ta, tb, m, len, k, alpha, a, lda, tb ? b + i * ldb : b + i, ldb,
          beta, c + i, ldc);
  else
    sgemm(ta, tb, m, n, len, alpha, ta ? a + i * lda : a + i, lda,
          tb ? b + i : b + i * ldb, ldb, i == 0 ? beta : 1.0f, c, ldc);
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
  nnlib__gemm_axis axis;
  int64_t piece = nnlib__gemm_pieces(m, n, k, nnlib_get_num_threads(), &axis);
  if (piece == 0) {
    sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return NNLIB_OK;
  }
  int64_t along = axis == NNLIB__CUT_K ? k : axis == NNLIB__CUT_M ? m : n;
  for (int64_t i = 0; i < along; i += piece)
    gemm_piece(axis, i, along - i < piece ? along - i : piece, ta, tb, m, n,
               k, alpha, a, lda, b, ldb, beta, c, ldc);
  return NNLIB_OK;
}

nnlib_status nnlib_set_num_threads(int n) {
  if (n <= 0)
    n = openblas_get_num_procs();
  openblas_set_num_threads(n);
  return NNLIB_OK;
}

int nnlib_get_num_threads(void) { return openblas_get_num_threads(); }
