/* The GEMM seam's pieces (src/core/blas.c): on more than one thread, a
 * product that OpenBLAS would split over its threads although that costs
 * more than it saves goes as pieces OpenBLAS runs on the calling thread.
 * Checked: the rule (the longest side cut, each piece at most 2^18
 * multiply-adds, two pieces, nothing cut on one thread or for small and
 * large products, except that products with fewer than 32 columns are cut
 * at any size into pieces at least 32 long), and
 * the results of every transpose case with leading dimensions wider than
 * the matrices, alpha and beta, against a double-precision loop and the
 * same product issued whole on one thread (not bit for bit: OpenBLAS's
 * edge kernels round some elements of a piece differently). */
#include "test_support.h"

#include "core/core.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void test_piece_rule(void **state) {
  (void)state;
  nnlib__gemm_axis axis;
  /* one thread, tiny, large: whole */
  assert_int_equal(nnlib__gemm_pieces(32, 16, 784, 1, &axis), 0);
  assert_int_equal(nnlib__gemm_pieces(64, 64, 64, 2, &axis), 0);
  assert_int_equal(nnlib__gemm_pieces(64, 1024, 784, 2, &axis), 0);
  assert_int_equal(nnlib__gemm_pieces(128, 128, 32, 2, &axis), 0);
  static const int64_t shapes[][3] = {
      {32, 16, 784}, {16, 784, 32}, {127, 128, 31}, {33, 77, 129},
      {100, 800, 5}};
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
    int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
    for (int threads = 2; threads <= 4; threads++) {
      int64_t piece = nnlib__gemm_pieces(m, n, k, threads, &axis);
      assert_true(piece > 0);
      int64_t along = k >= m && k >= n ? k : m >= n ? m : n;
      assert_int_equal(axis, k >= m && k >= n ? NNLIB__CUT_K
                             : m >= n         ? NNLIB__CUT_M
                                              : NNLIB__CUT_N);
      int64_t across = m * n * k / along;
      assert_true(piece * across <= 262144);      /* OpenBLAS: alone */
      assert_true((piece + 1) * across > 262144); /* as long as can be */
      assert_true((along + piece - 1) / piece <= 2);
    }
  }
  /* narrow products: cut at any size, into as many pieces as it takes */
  static const int64_t narrow[][4] = {
      {256, 16, 784, 13}, {4096, 16, 128, 32}, {300, 10, 900, 11}};
  for (size_t s = 0; s < sizeof narrow / sizeof *narrow; s++) {
    int64_t m = narrow[s][0], n = narrow[s][1], k = narrow[s][2];
    int64_t piece = nnlib__gemm_pieces(m, n, k, 2, &axis);
    int64_t along = k >= m ? k : m;
    assert_int_equal(axis, k >= m ? NNLIB__CUT_K : NNLIB__CUT_M);
    assert_int_equal((along + piece - 1) / piece, narrow[s][3]);
    assert_true(piece * (m * n * k / along) <= 262144);
  }
  /* 32 columns are wide enough for OpenBLAS's own split, and pieces
   * thinner than 32 cost more than it */
  assert_int_equal(nnlib__gemm_pieces(256, 32, 784, 2, &axis), 0);
  assert_int_equal(nnlib__gemm_pieces(1024, 16, 784, 2, &axis), 0);
  assert_int_equal(nnlib__gemm_pieces(512, 28, 7168, 2, &axis), 0);
}

typedef struct product {
  nnlib__trans ta, tb;
  int64_t m, n, k, lda, ldb, ldc;
  float alpha, beta;
} product;

static void reference(const product *p, const float *a, const float *b,
                      const float *c0, double *out) {
  for (int64_t i = 0; i < p->m; i++)
    for (int64_t j = 0; j < p->n; j++) {
      double sum = 0;
      for (int64_t l = 0; l < p->k; l++) {
        double x = p->ta ? a[l * p->lda + i] : a[i * p->lda + l];
        double y = p->tb ? b[j * p->ldb + l] : b[l * p->ldb + j];
        sum += x * y;
      }
      out[i * p->n + j] = p->alpha * sum + p->beta * c0[i * p->ldc + j];
    }
}

static void check_product(const product *p, uint32_t *seed) {
  int64_t arows = p->ta ? p->k : p->m, brows = p->tb ? p->n : p->k;
  size_t asz = (size_t)(arows * p->lda), bsz = (size_t)(brows * p->ldb);
  size_t csz = (size_t)(p->m * p->ldc);
  float *a = malloc(asz * sizeof *a), *b = malloc(bsz * sizeof *b);
  float *c0 = malloc(csz * sizeof *c0), *whole = malloc(csz * sizeof *whole);
  float *cut = malloc(csz * sizeof *cut);
  double *ref = malloc((size_t)(p->m * p->n) * sizeof *ref);
  assert_true(a && b && c0 && whole && cut && ref);
  ts_fill_uniform(a, (int64_t)asz, -1, 1, seed);
  ts_fill_uniform(b, (int64_t)bsz, -1, 1, seed);
  ts_fill_uniform(c0, (int64_t)csz, -1, 1, seed);
  memcpy(whole, c0, csz * sizeof *c0);
  memcpy(cut, c0, csz * sizeof *c0);
  ASSERT_OK(nnlib_set_num_threads(1));
  ASSERT_OK(nnlib__gemm(p->ta, p->tb, p->m, p->n, p->k, p->alpha, a, p->lda,
                        b, p->ldb, p->beta, whole, p->ldc));
  ASSERT_OK(nnlib_set_num_threads(2));
  nnlib__gemm_axis axis;
  assert_true(nnlib__gemm_pieces(p->m, p->n, p->k, 2, &axis) > 0);
  ASSERT_OK(nnlib__gemm(p->ta, p->tb, p->m, p->n, p->k, p->alpha, a, p->lda,
                        b, p->ldb, p->beta, cut, p->ldc));
  reference(p, a, b, c0, ref);
  for (int64_t i = 0; i < p->m; i++)
    for (int64_t j = 0; j < p->ldc; j++) {
      float got = cut[i * p->ldc + j];
      if (j >= p->n) { /* the padding between rows is never written */
        assert_true(memcmp(&got, &c0[i * p->ldc + j], sizeof got) == 0);
        continue;
      }
      double want = ref[i * p->n + j];
      double scale = fabs(want) + sqrt((double)p->k);
      assert_true(fabs(got - want) <= 1e-5 * scale);
      assert_true(fabs(got - whole[i * p->ldc + j]) <= 1e-5 * scale);
    }
  free(a), free(b), free(c0), free(whole), free(cut), free(ref);
}

static void test_pieces_match_whole_product(void **state) {
  (void)state;
  uint32_t seed = 7;
  static const int64_t shapes[][3] = {
      {32, 16, 784}, {16, 784, 32}, {127, 128, 31}, {33, 77, 129}, {100, 800, 5},
      {300, 10, 900}, {2000, 7, 40}};
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
    for (int t = 0; t < 4; t++) {
      product p = {t & 1 ? NNLIB__TRANS : NNLIB__NO_TRANS,
                   t & 2 ? NNLIB__TRANS : NNLIB__NO_TRANS,
                   shapes[s][0], shapes[s][1], shapes[s][2], 0, 0, 0,
                   0.75f, t == 3 ? 0.0f : 0.5f};
      p.lda = (p.ta ? p.m : p.k) + 3;
      p.ldb = (p.tb ? p.k : p.n) + 5;
      p.ldc = p.n + 2;
      check_product(&p, &seed);
    }
  ASSERT_OK(nnlib_set_num_threads(1));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_piece_rule),
      cmocka_unit_test(test_pieces_match_whole_product),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
