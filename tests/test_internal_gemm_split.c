/* The GEMM seam's split over threads (src/core/blas.c): on more than one
 * thread, nnlib__gemm runs a large product as parts on its pass pool, each
 * an sgemm OpenBLAS runs on one thread. Checked: the rule (the longer of m
 * and n cut, parts of whole 16-row blocks, as many as the threads but none
 * under 2^18 multiply-adds, nothing cut on one thread); the results of
 * every transpose case with leading dimensions wider than the matrices,
 * alpha and beta, against a double-precision loop and the same product on
 * one thread (not bit for bit: OpenBLAS's edge kernels round some elements
 * of a part differently); and that the parts give the same bits when the
 * pool is busy and the caller runs them all itself. A batch of products
 * (nnlib__gemm_batch) gives each call the bits of nnlib__gemm on one
 * thread, on one thread or two, and refuses a call too large before it
 * runs any. Units (nnlib__gemm_units_run) run each lane's units in order
 * with the lane's own scratch, give each call the bits of nnlib__gemm on
 * one thread, and refuse a call too large before any unit runs. */
#include "test_support.h"

#include "core/core.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void test_split_rule(void **state) {
  (void)state;
  /* one thread: whole */
  assert_int_equal(nnlib__gemm_split_for(4096, 512, 128, 1).parts, 1);
  /* under 2^19 multiply-adds: too small to share */
  assert_int_equal(nnlib__gemm_split_for(64, 64, 32, 2).parts, 1);
  assert_int_equal(nnlib__gemm_split_for(32, 16, 784, 2).parts, 1);
  assert_int_equal(nnlib__gemm_split_for(16, 784, 10, 2).parts, 1);
  static const int64_t shapes[][3] = {
      {32, 16, 784},  {16, 784, 32},   {127, 128, 31},  {33, 77, 129},
      {100, 800, 5},  {256, 16, 784},  {4096, 512, 128}, {512, 28, 7168},
      {17, 4000, 3},  {2000, 7, 40}};
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
    int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
    for (int threads = 2; threads <= 4; threads++) {
      nnlib__gemm_split sp = nnlib__gemm_split_for(m, n, k, threads);
      int64_t along = m >= n ? m : n, across = m >= n ? n : m;
      assert_int_equal(sp.axis, m >= n ? NNLIB__CUT_M : NNLIB__CUT_N);
      assert_int_equal(sp.units, (along + 15) / 16);
      assert_true(sp.parts >= 1 && sp.parts <= threads &&
                  sp.parts <= sp.units);
      double unit = 16.0 * (double)across * (double)k;
      /* every part holds at least 2^18 multiply-adds' worth of blocks */
      assert_true(sp.parts == 1 ||
                  (double)sp.units * unit >= 262144.0 * (double)sp.parts);
      /* and one more part would not */
      if (sp.parts < threads && sp.parts < sp.units)
        assert_true((double)sp.units * unit < 262144.0 * (sp.parts + 1));
    }
  }
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
      /* beta 0 ignores what C held (BLAS's rule), NaN included */
      double kept = p->beta != 0.0f ? p->beta * c0[i * p->ldc + j] : 0.0;
      out[i * p->n + j] = p->alpha * sum + kept;
    }
}

static void check_product(const product *p, int threads, uint32_t *seed) {
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
  ASSERT_OK(nnlib_set_num_threads(threads));
  assert_true(nnlib__gemm_split_for(p->m, p->n, p->k, threads).parts > 1);
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

static void test_parts_match_whole_product(void **state) {
  (void)state;
  uint32_t seed = 7;
  static const int64_t shapes[][3] = {
      {64, 16, 784}, {16, 784, 64},  {127, 128, 63}, {33, 77, 300},
      {100, 800, 9}, {300, 10, 900}, {2000, 7, 40},  {17, 4000, 9}};
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
    for (int t = 0; t < 4; t++) {
      product p = {t & 1 ? NNLIB__TRANS : NNLIB__NO_TRANS,
                   t & 2 ? NNLIB__TRANS : NNLIB__NO_TRANS,
                   shapes[s][0], shapes[s][1], shapes[s][2], 0, 0, 0,
                   0.75f, t == 3 ? 0.0f : 0.5f};
      p.lda = (p.ta ? p.m : p.k) + 3;
      p.ldb = (p.tb ? p.k : p.n) + 5;
      p.ldc = p.n + 2;
      check_product(&p, 2 + t % 2, &seed);
    }
  ASSERT_OK(nnlib_set_num_threads(1));
}

/* The caller runs every part itself when the pool is taken (here: from
 * inside a pass, as a layer's pass would): the same sgemm per part, so the
 * same bits as on the pool. */
typedef struct inside_job {
  const float *a, *b;
  float *c[2]; /* one product per index, each into its own C */
  int64_t m, n, k;
} inside_job;

static void product_inside(void *ctx, int64_t begin, int64_t end) {
  const inside_job *j = ctx;
  for (int64_t i = begin; i < end; i++)
    assert_int_equal(nnlib__gemm(NNLIB__NO_TRANS, NNLIB__TRANS, j->m, j->n,
                                 j->k, 1.0f, j->a, j->k, j->b, j->k, 0.0f,
                                 j->c[i], j->n),
                     NNLIB_OK);
}

static void test_busy_pool_same_bits(void **state) {
  (void)state;
  uint32_t seed = 11;
  int64_t m = 200, n = 96, k = 333;
  float *a = malloc((size_t)(m * k) * sizeof *a);
  float *b = malloc((size_t)(n * k) * sizeof *b);
  float *pooled = malloc((size_t)(m * n) * sizeof *pooled);
  float *inline_c = malloc((size_t)(2 * m * n) * sizeof *inline_c);
  assert_true(a && b && pooled && inline_c);
  ts_fill_uniform(a, m * k, -1, 1, &seed);
  ts_fill_uniform(b, n * k, -1, 1, &seed);
  ASSERT_OK(nnlib_set_num_threads(2));
  assert_true(nnlib__gemm_split_for(m, n, k, 2).parts == 2);
  ASSERT_OK(nnlib__gemm(NNLIB__NO_TRANS, NNLIB__TRANS, m, n, k, 1.0f, a, k, b,
                        k, 0.0f, pooled, n));
  /* two ranges: the caller runs one, a worker the other, and inside a job
   * each runs its product's parts itself */
  inside_job j = {a, b, {inline_c, inline_c + m * n}, m, n, k};
  nnlib__parallel_for(2, 1, product_inside, &j);
  assert_memory_equal(pooled, inline_c, (size_t)(m * n) * sizeof *pooled);
  assert_memory_equal(pooled, inline_c + m * n,
                      (size_t)(m * n) * sizeof *pooled);
  ASSERT_OK(nnlib_set_num_threads(1));
  free(a), free(b), free(pooled), free(inline_c);
}

/* Products with one row or one column of C go to sgemv (blas.c): every
 * transpose case, leading dimensions wider than the matrices, on one and
 * two threads, against the double loop; with beta 0 a C full of NaN must
 * not leak into the result (sgemv would scale it by 0), and the padding
 * between C's rows is never written. */
static void check_vector_product(const product *p, int threads,
                                 uint32_t *seed) {
  int64_t arows = p->ta ? p->k : p->m, brows = p->tb ? p->n : p->k;
  size_t asz = (size_t)(arows * p->lda), bsz = (size_t)(brows * p->ldb);
  size_t csz = (size_t)((p->m - 1) * p->ldc + p->n);
  float *a = malloc(asz * sizeof *a), *b = malloc(bsz * sizeof *b);
  float *c0 = malloc(csz * sizeof *c0), *c = malloc(csz * sizeof *c);
  double *ref = malloc((size_t)(p->m * p->n) * sizeof *ref);
  assert_true(a && b && c0 && c && ref);
  ts_fill_uniform(a, (int64_t)asz, -1, 1, seed);
  ts_fill_uniform(b, (int64_t)bsz, -1, 1, seed);
  ts_fill_uniform(c0, (int64_t)csz, -1, 1, seed);
  for (int64_t i = 0; i < p->m; i++) /* C's elements, not its padding */
    for (int64_t j = 0; j < p->n && p->beta == 0.0f; j++)
      c0[i * p->ldc + j] = NAN;
  memcpy(c, c0, csz * sizeof *c);
  ASSERT_OK(nnlib_set_num_threads(threads));
  ASSERT_OK(nnlib__gemm(p->ta, p->tb, p->m, p->n, p->k, p->alpha, a, p->lda,
                        b, p->ldb, p->beta, c, p->ldc));
  reference(p, a, b, c0, ref);
  for (size_t at = 0; at < csz; at++) {
    int64_t i = (int64_t)at / p->ldc, j = (int64_t)at % p->ldc;
    if (j >= p->n) {
      assert_true(memcmp(&c[at], &c0[at], sizeof *c) == 0);
      continue;
    }
    double want = ref[i * p->n + j];
    assert_false(isnan(c[at]));
    assert_true(fabs(c[at] - want) <= 1e-5 * (fabs(want) + sqrt((double)p->k)));
  }
  ASSERT_OK(nnlib_set_num_threads(1));
  free(a), free(b), free(c0), free(c), free(ref);
}

static void test_vector_products(void **state) {
  (void)state;
  uint32_t seed = 5;
  static const int64_t shapes[][3] = {
      {1, 37, 53}, {41, 1, 29}, {1, 1, 17}, {1, 3000, 400}, {3000, 1, 400}};
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
    for (int t = 0; t < 8; t++) {
      product p = {t & 1 ? NNLIB__TRANS : NNLIB__NO_TRANS,
                   t & 2 ? NNLIB__TRANS : NNLIB__NO_TRANS,
                   shapes[s][0], shapes[s][1], shapes[s][2], 0, 0, 0,
                   0.75f, t & 4 ? 0.0f : 0.5f};
      p.lda = (p.ta ? p.m : p.k) + 3;
      p.ldb = (p.tb ? p.k : p.n) + 5;
      p.ldc = p.n + 2;
      check_vector_product(&p, 1 + s % 2, &seed);
    }
}

enum { BATCH = 40, SIDE = 96 };

/* Call i of the batch: shape, transposes and alpha from i, its C a block
 * of its own in c (ld SIDE + 3), A and B read from a and b. */
static nnlib__gemm_call batch_call(int i, const float *a, const float *b,
                                   float *c) {
  int64_t m = 1 + (i * 7) % 33, n = 1 + (i * 11) % 29, k = 1 + (i * 5) % 64;
  if (i == BATCH - 1) /* one above the size nnlib__gemm would split */
    m = n = k = SIDE;
  nnlib__trans ta = i % 2 ? NNLIB__TRANS : NNLIB__NO_TRANS;
  nnlib__trans tb = i % 3 ? NNLIB__TRANS : NNLIB__NO_TRANS;
  nnlib__gemm_call call = {ta,
                           tb,
                           m,
                           n,
                           k,
                           1.0f + 0.125f * (float)(i % 4),
                           a,
                           SIDE,
                           b,
                           SIDE,
                           i % 5 == 0 ? 0.5f : 0.0f,
                           c + (int64_t)i * SIDE * (SIDE + 3),
                           SIDE + 3};
  return call;
}

static void run_one_by_one(const nnlib__gemm_call *calls, int count) {
  for (int i = 0; i < count; i++) {
    const nnlib__gemm_call *g = &calls[i];
    ASSERT_OK(nnlib__gemm(g->ta, g->tb, g->m, g->n, g->k, g->alpha, g->a,
                          g->lda, g->b, g->ldb, g->beta, g->c, g->ldc));
  }
}

static void test_batch_matches_single_calls(void **state) {
  (void)state;
  int64_t operand = SIDE * SIDE, out = (int64_t)BATCH * SIDE * (SIDE + 3);
  float *a = malloc((size_t)operand * sizeof *a);
  float *b = malloc((size_t)operand * sizeof *b);
  float *want = malloc((size_t)out * sizeof *want);
  float *got = malloc((size_t)out * sizeof *got);
  float *start = malloc((size_t)out * sizeof *start);
  assert_true(a != NULL && b != NULL && want != NULL && got != NULL &&
              start != NULL);
  uint32_t seed = 9;
  ts_fill_uniform(a, operand, -1.0f, 1.0f, &seed);
  ts_fill_uniform(b, operand, -1.0f, 1.0f, &seed);
  ts_fill_uniform(start, out, -1.0f, 1.0f, &seed);
  nnlib__gemm_call calls[BATCH];
  ASSERT_OK(nnlib_set_num_threads(1));
  memcpy(want, start, (size_t)out * sizeof *want);
  for (int i = 0; i < BATCH; i++)
    calls[i] = batch_call(i, a, b, want);
  run_one_by_one(calls, BATCH);
  for (int threads = 1; threads <= 2; threads++) {
    ASSERT_OK(nnlib_set_num_threads(threads));
    memcpy(got, start, (size_t)out * sizeof *got);
    for (int i = 0; i < BATCH; i++)
      calls[i] = batch_call(i, a, b, got);
    ASSERT_OK(nnlib__gemm_batch(calls, BATCH));
    assert_memory_equal(got, want, (size_t)out * sizeof *got);
    /* a call too large: refused, nothing written */
    memcpy(got, start, (size_t)out * sizeof *got);
    calls[3].k = NNLIB__BLAS_DIM_MAX + 1;
    ASSERT_STATUS(NNLIB_ERR_TOO_LARGE, nnlib__gemm_batch(calls, BATCH));
    ts_expect_message("call 3 of a batch");
    assert_memory_equal(got, start, (size_t)out * sizeof *got);
    ASSERT_OK(nnlib__gemm_batch(calls, 0));
  }
  ASSERT_OK(nnlib_set_num_threads(1));
  free(a);
  free(b);
  free(want);
  free(got);
  free(start);
}

/* Units (nnlib__gemm_units_run): UNITS units of UNIT_CALLS products each.
 * Unit u's pass before copies its input X_u into its lane's scratch A;
 * its calls multiply A by the shared B_i into the lane's scratch C_i;
 * its pass after copies the C_i out to Y_u. Lanes sharing scratch, or a
 * unit run out of its lane or out of order, gives wrong Y. */
enum { UNITS = 7, UNIT_CALLS = 3, UNIT_SIDE = 64, MAX_LANES = 8 };
#define UNIT_FLOATS ((int64_t)UNIT_SIDE * UNIT_SIDE)

typedef struct units_case {
  const float *x, *b; /* X [UNITS][SIDE^2], B [UNIT_CALLS][SIDE^2] */
  float *y;           /* Y [UNITS][UNIT_CALLS][SIDE^2] */
  float *scratch;     /* per lane: A, then C_0 .. C_{UNIT_CALLS-1} */
  int64_t lanes, calls_per_unit, bad_unit;
  int64_t seen[MAX_LANES][UNITS + 1], seen_count[MAX_LANES];
  int64_t after_count[MAX_LANES];
} units_case;

static float *lane_scratch(const units_case *t, int64_t lane) {
  return t->scratch + lane * (1 + UNIT_CALLS) * UNIT_FLOATS;
}

static void unit_before(void *ctx, int64_t unit, int64_t lane) {
  units_case *t = ctx;
  t->seen[lane][t->seen_count[lane]++] = unit;
  memcpy(lane_scratch(t, lane), t->x + unit * UNIT_FLOATS,
         (size_t)UNIT_FLOATS * sizeof(float));
}

static void unit_calls(void *ctx, int64_t unit, int64_t lane,
                       nnlib__gemm_call *out) {
  const units_case *t = ctx;
  float *a = lane_scratch(t, lane);
  for (int i = 0; i < UNIT_CALLS; i++)
    out[i] = (nnlib__gemm_call){
        NNLIB__NO_TRANS,
        i == 1 ? NNLIB__TRANS : NNLIB__NO_TRANS,
        UNIT_SIDE,
        UNIT_SIDE,
        unit == t->bad_unit && i == 1 ? NNLIB__BLAS_DIM_MAX + 1 : UNIT_SIDE,
        1.0f,
        a,
        UNIT_SIDE,
        t->b + i * UNIT_FLOATS,
        UNIT_SIDE,
        0.0f,
        a + (1 + i) * UNIT_FLOATS,
        UNIT_SIDE};
}

static void unit_after(void *ctx, int64_t unit, int64_t lane) {
  units_case *t = ctx;
  t->after_count[lane]++;
  memcpy(t->y + unit * UNIT_CALLS * UNIT_FLOATS,
         lane_scratch(t, lane) + UNIT_FLOATS,
         (size_t)(UNIT_CALLS * UNIT_FLOATS) * sizeof(float));
}

static nnlib_status run_units(units_case *t) {
  memset(t->seen_count, 0, sizeof t->seen_count);
  memset(t->after_count, 0, sizeof t->after_count);
  nnlib__gemm_units u = {UNITS,      t->lanes,    t->calls_per_unit,
                         unit_calls, unit_before, unit_after,
                         t,          false,       NULL};
  return nnlib__gemm_units_run(&u);
}

/* Lane j ran units [range_start(UNITS, lanes, j), ...) in order, each once,
 * and no other lane ran any. */
static void expect_lanes(const units_case *t) {
  int64_t lanes = t->lanes < UNITS ? t->lanes : UNITS;
  for (int64_t j = 0; j < lanes; j++) {
    int64_t first = nnlib__range_start(UNITS, lanes, j);
    int64_t last = nnlib__range_start(UNITS, lanes, j + 1);
    assert_int_equal(t->seen_count[j], last - first);
    assert_int_equal(t->after_count[j], last - first);
    for (int64_t u = first; u < last; u++) {
      assert_int_equal(t->seen[j][u - first], u);
    }
  }
  for (int64_t j = lanes; j < MAX_LANES; j++)
    assert_int_equal(t->seen_count[j], 0);
}

static void test_units_match_single_calls(void **state) {
  (void)state;
  int64_t y_floats = (int64_t)UNITS * UNIT_CALLS * UNIT_FLOATS;
  float *x = malloc((size_t)(UNITS * UNIT_FLOATS) * sizeof *x);
  float *b = malloc((size_t)(UNIT_CALLS * UNIT_FLOATS) * sizeof *b);
  float *want = malloc((size_t)y_floats * sizeof *want);
  float *y = malloc((size_t)y_floats * sizeof *y);
  float *scratch = malloc((size_t)(MAX_LANES * (1 + UNIT_CALLS) * UNIT_FLOATS) *
                          sizeof *scratch);
  assert_true(x != NULL && b != NULL && want != NULL && y != NULL &&
              scratch != NULL);
  uint32_t seed = 17;
  ts_fill_uniform(x, UNITS * UNIT_FLOATS, -1.0f, 1.0f, &seed);
  ts_fill_uniform(b, UNIT_CALLS * UNIT_FLOATS, -1.0f, 1.0f, &seed);
  ASSERT_OK(nnlib_set_num_threads(1));
  for (int64_t u = 0; u < UNITS; u++)
    for (int i = 0; i < UNIT_CALLS; i++)
      ASSERT_OK(nnlib__gemm(
          NNLIB__NO_TRANS, i == 1 ? NNLIB__TRANS : NNLIB__NO_TRANS, UNIT_SIDE,
          UNIT_SIDE, UNIT_SIDE, 1.0f, x + u * UNIT_FLOATS, UNIT_SIDE,
          b + i * UNIT_FLOATS, UNIT_SIDE, 0.0f,
          want + (u * UNIT_CALLS + i) * UNIT_FLOATS, UNIT_SIDE));
  static const int64_t lane_counts[] = {1, 2, 3, 7, 9};
  for (int threads = 1; threads <= 2; threads++) {
    ASSERT_OK(nnlib_set_num_threads(threads));
    for (size_t l = 0; l < sizeof lane_counts / sizeof *lane_counts; l++) {
      units_case t = {x,          b,  y,     scratch, lane_counts[l],
                      UNIT_CALLS, -1, {{0}}, {0},     {0}};
      memset(y, 0, (size_t)y_floats * sizeof *y);
      ASSERT_OK(run_units(&t));
      expect_lanes(&t);
      assert_memory_equal(y, want, (size_t)y_floats * sizeof *y);
      /* a call too large: refused before any unit runs */
      memset(y, 0, (size_t)y_floats * sizeof *y);
      t.bad_unit = 5;
      ASSERT_STATUS(NNLIB_ERR_TOO_LARGE, run_units(&t));
      ts_expect_message("call 1 of unit 5");
      for (int64_t j = 0; j < MAX_LANES; j++)
        assert_int_equal(t.seen_count[j], 0);
      assert_float_equal(y[0], 0.0f, 0.0f);
      t.bad_unit = -1;
      t.calls_per_unit = 0;
      ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, run_units(&t));
      ts_expect_message("0 calls per unit");
      t.calls_per_unit = NNLIB__UNIT_CALLS_MAX + 1;
      ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, run_units(&t));
    }
  }
  ASSERT_OK(nnlib_set_num_threads(1));
  free(x);
  free(b);
  free(want);
  free(y);
  free(scratch);
}

/* Explicit lane starts (one lane empty) and ordered units whose calls
 * depend on each other: unit u of lane j computes T = X_u B_0, then adds
 * T B_1 into the lane's sum S_j (beta 0 for the lane's first unit, 1
 * after), so S_j = sum over its units of X_u B_0 B_1, in unit order.
 * Against the same calls one by one; then the refusals of bad starts. */
typedef struct chain_case {
  const float *x, *b;
  float *t, *sum; /* per lane: T, S */
  const int64_t *start;
} chain_case;

static void chain_calls(void *ctx, int64_t unit, int64_t lane,
                        nnlib__gemm_call *out) {
  const chain_case *t = ctx;
  float *tl = t->t + lane * UNIT_FLOATS, *sl = t->sum + lane * UNIT_FLOATS;
  bool first = unit == t->start[lane];
  out[0] = (nnlib__gemm_call){NNLIB__NO_TRANS,
                              NNLIB__NO_TRANS,
                              UNIT_SIDE,
                              UNIT_SIDE,
                              UNIT_SIDE,
                              1.0f,
                              t->x + unit * UNIT_FLOATS,
                              UNIT_SIDE,
                              t->b,
                              UNIT_SIDE,
                              0.0f,
                              tl,
                              UNIT_SIDE};
  out[1] = (nnlib__gemm_call){NNLIB__NO_TRANS,
                              NNLIB__NO_TRANS,
                              UNIT_SIDE,
                              UNIT_SIDE,
                              UNIT_SIDE,
                              1.0f,
                              tl,
                              UNIT_SIDE,
                              t->b + UNIT_FLOATS,
                              UNIT_SIDE,
                              first ? 0.0f : 1.0f,
                              sl,
                              UNIT_SIDE};
}

static void test_units_ordered_lane_starts(void **state) {
  (void)state;
  enum { LANES = 3 };
  static const int64_t start[LANES + 1] = {0, 4, 4, UNITS};
  float *x = malloc((size_t)(UNITS * UNIT_FLOATS) * sizeof *x);
  float *b = malloc((size_t)(2 * UNIT_FLOATS) * sizeof *b);
  float *t = malloc((size_t)(LANES * UNIT_FLOATS) * sizeof *t);
  float *got = malloc((size_t)(LANES * UNIT_FLOATS) * sizeof *got);
  float *want = malloc((size_t)(LANES * UNIT_FLOATS) * sizeof *want);
  assert_true(x != NULL && b != NULL && t != NULL && got != NULL &&
              want != NULL);
  uint32_t seed = 29;
  ts_fill_uniform(x, UNITS * UNIT_FLOATS, -1.0f, 1.0f, &seed);
  ts_fill_uniform(b, 2 * UNIT_FLOATS, -1.0f, 1.0f, &seed);
  ASSERT_OK(nnlib_set_num_threads(1));
  chain_case want_case = {x, b, t, want, start};
  memset(want, 0, (size_t)(LANES * UNIT_FLOATS) * sizeof *want);
  for (int64_t lane = 0; lane < LANES; lane++)
    for (int64_t u = start[lane]; u < start[lane + 1]; u++) {
      nnlib__gemm_call c[2];
      chain_calls(&want_case, u, lane, c);
      run_one_by_one(c, 2);
    }
  for (int threads = 1; threads <= 2; threads++) {
    ASSERT_OK(nnlib_set_num_threads(threads));
    memset(got, 0, (size_t)(LANES * UNIT_FLOATS) * sizeof *got);
    chain_case cc = {x, b, t, got, start};
    nnlib__gemm_units u = {UNITS, LANES, 2,    chain_calls, NULL,
                           NULL,  &cc,   true, start};
    ASSERT_OK(nnlib__gemm_units_run(&u));
    assert_memory_equal(got, want, (size_t)(LANES * UNIT_FLOATS) * sizeof *got);
    /* one lane: on two threads the caller runs the calls, which would
     * race if they were spread */
    static const int64_t one[2] = {0, UNITS};
    chain_case lone = {x, b, t, got, one};
    nnlib__gemm_units v = {UNITS, 1,     2,    chain_calls, NULL,
                           NULL,  &lone, true, one};
    ASSERT_OK(nnlib__gemm_units_run(&v));
    memset(want, 0, (size_t)UNIT_FLOATS * sizeof *want);
    for (int64_t i = 0; i < UNITS; i++) {
      nnlib__gemm_call c[2];
      chain_case w = {x, b, t + UNIT_FLOATS, want, one};
      chain_calls(&w, i, 0, c);
      run_one_by_one(c, 2);
    }
    assert_memory_equal(got, want, (size_t)UNIT_FLOATS * sizeof *got);
    memset(want, 0, (size_t)(LANES * UNIT_FLOATS) * sizeof *want);
    for (int64_t lane = 0; lane < LANES; lane++)
      for (int64_t i = start[lane]; i < start[lane + 1]; i++) {
        nnlib__gemm_call c[2];
        chain_calls(&want_case, i, lane, c);
        run_one_by_one(c, 2);
      }
    int64_t bad[LANES + 1] = {0, 5, 4, UNITS};
    u.lane_start = bad;
    ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib__gemm_units_run(&u));
    ts_expect_message("do not rise");
    bad[1] = 4;
    bad[3] = UNITS - 1;
    ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib__gemm_units_run(&u));
    u.lane_start = start;
    u.lanes = NNLIB__UNIT_LANES_MAX + 1;
    ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib__gemm_units_run(&u));
    ts_expect_message("65 lanes");
  }
  ASSERT_OK(nnlib_set_num_threads(1));
  free(x);
  free(b);
  free(t);
  free(got);
  free(want);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_split_rule),
      cmocka_unit_test(test_parts_match_whole_product),
      cmocka_unit_test(test_busy_pool_same_bits),
      cmocka_unit_test(test_vector_products),
      cmocka_unit_test(test_batch_matches_single_calls),
      cmocka_unit_test(test_units_match_single_calls),
      cmocka_unit_test(test_units_ordered_lane_starts),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
