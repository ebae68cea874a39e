/* fixed_order_sgemm.c - a cblas_sgemm whose bits depend on no thread
 * count, for the tests that compare runs at 1, 2 and 3 threads bit for bit
 * (test_cnn_threads, test_parallel_passes). OpenBLAS's own results differ
 * in the last bits between its thread counts for some shapes; linked into
 * a test executable, this definition comes first, so libnnlib's one BLAS
 * call (src/core/blas.c) resolves to it, as in nnlib-bench
 * (benchmarks/bench_record.h). What is left to differ between thread
 * counts is nnlib's own passes. */
#include <cblas.h>
#include <stdint.h>

#include "test_support.h"

/* C = alpha op(A) op(B) + beta C, row-major (all nnlib__gemm passes), in
 * one fixed order: for each row i, p ascending, j ascending. */
void cblas_sgemm(const enum CBLAS_ORDER order,
                 const enum CBLAS_TRANSPOSE trans_a,
                 const enum CBLAS_TRANSPOSE trans_b, const blasint m,
                 const blasint n, const blasint k, const float alpha,
                 const float *a, const blasint lda, const float *b,
                 const blasint ldb, const float beta, float *c,
                 const blasint ldc) {
  assert_int_equal(order, CblasRowMajor);
  for (blasint i = 0; i < m; i++) {
    float *row = c + (int64_t)i * ldc;
    for (blasint j = 0; j < n; j++)
      row[j] = beta == 0.0f ? 0.0f : beta * row[j];
    for (blasint p = 0; p < k; p++) {
      float av = alpha * (trans_a == CblasNoTrans ? a[(int64_t)i * lda + p]
                                                  : a[(int64_t)p * lda + i]);
      if (trans_b == CblasNoTrans)
        for (blasint j = 0; j < n; j++)
          row[j] += av * b[(int64_t)p * ldb + j];
      else
        for (blasint j = 0; j < n; j++)
          row[j] += av * b[(int64_t)j * ldb + p];
    }
  }
}
