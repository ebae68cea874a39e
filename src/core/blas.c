/* blas.c - the GEMM seam: every matrix product in nnlib goes through here,
 * and this is the only file that includes cblas.h. */
#include "core/core.h"

#include <cblas.h>

static bool fits_blas(int64_t v) { return v >= 0 && v <= NNLIB__BLAS_DIM_MAX; }

/* Per thread, so profiling one model never counts another thread's work;
 * one add per GEMM, so it is always on. */
static _Thread_local double flops_issued;

double nnlib__gemm_flops_issued(void) { return flops_issued; }

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
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
              tb ? CblasTrans : CblasNoTrans, (blasint)m, (blasint)n,
              (blasint)k, alpha, a, (blasint)lda, b, (blasint)ldb, beta, c,
              (blasint)ldc);
  return NNLIB_OK;
}

nnlib_status nnlib_set_num_threads(int n) {
  if (n <= 0)
    n = openblas_get_num_procs();
  openblas_set_num_threads(n);
  return NNLIB_OK;
}

int nnlib_get_num_threads(void) { return openblas_get_num_threads(); }
