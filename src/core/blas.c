/* blas.c - the GEMM seam: every matrix product in nnlib goes through here,
 * and this is the only file that includes cblas.h. */
#include "core/core.h"

#include <cblas.h>

static bool fits_blas(int64_t v) { return v >= 0 && v <= NNLIB__BLAS_DIM_MAX; }

/* OpenBLAS 0.3 runs an sgemm of at most this many multiply-adds (m n k) on
 * the calling thread and larger ones on all its threads (its interface:
 * SMP_THRESHOLD_MIN 65536 x GEMM_MULTITHREAD_THRESHOLD 4). */
#define OPENBLAS_ALONE_MNK 262144.0
/* Between that and this, a second OpenBLAS thread costs more than it saves:
 * waking it and splitting the panels took longer than the product (a 32 x
 * 16 x 784 product, mlp-small's first layer, ran 2.2x to 5x slower on two
 * threads than on one; 128 x 128 x 32, an attention head, 3.7x).
 * nnlib__gemm issues such a product as pieces of at most
 * OPENBLAS_ALONE_MNK, each of which OpenBLAS runs on the calling thread,
 * so the process-wide thread count is never touched (another thread may be
 * inside a GEMM). The pieces depend on the shape and the thread count
 * only: the same settings give the same bits. */
#define PIECES_BELOW_MNK (4.0 * 1024 * 1024)
/* More pieces than this cost more in calls than the thread saves. */
#define MAX_PIECES 16

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

int64_t nnlib__gemm_piece_rows(int64_t m, int64_t n, int64_t k, int threads,
                               bool *by_rows) {
  double mnk = (double)m * (double)n * (double)k;
  *by_rows = m >= n;
  if (threads <= 1 || mnk <= OPENBLAS_ALONE_MNK || mnk >= PIECES_BELOW_MNK)
    return 0;
  double across = (double)(*by_rows ? n : m) * (double)k;
  int64_t along = *by_rows ? m : n;
  int64_t piece = (int64_t)(OPENBLAS_ALONE_MNK / across);
  if (piece < 1 || (along + piece - 1) / piece > MAX_PIECES)
    return 0;
  return piece;
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
  bool by_rows;
  int64_t piece = nnlib__gemm_piece_rows(m, n, k, nnlib_get_num_threads(),
                                         &by_rows);
  if (piece == 0) {
    sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return NNLIB_OK;
  }
  /* rows i.. of op(A) and C, or columns j.. of op(B) and C */
  int64_t along = by_rows ? m : n;
  for (int64_t i = 0; i < along; i += piece) {
    int64_t len = along - i < piece ? along - i : piece;
    if (by_rows)
      sgemm(ta, tb, len, n, k, alpha, ta ? a + i : a + i * lda, lda, b, ldb,
            beta, c + i * ldc, ldc);
    else
      sgemm(ta, tb, m, len, k, alpha, a, lda, tb ? b + i * ldb : b + i, ldb,
            beta, c + i, ldc);
  }
  return NNLIB_OK;
}

nnlib_status nnlib_set_num_threads(int n) {
  if (n <= 0)
    n = openblas_get_num_procs();
  openblas_set_num_threads(n);
  return NNLIB_OK;
}

int nnlib_get_num_threads(void) { return openblas_get_num_threads(); }
