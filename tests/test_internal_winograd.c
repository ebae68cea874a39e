/* The Winograd F(2x2, 3x3) transforms of conv2d_winograd.c, called
 * directly: V = B^T d B of every tile against the definition in double
 * (zeros outside the plane), Z = A^T M A the same way, and the three
 * ways the library runs them (AVX-512 where the CPU has it, AVX2, plain
 * loops; each forced here where the CPU can run it) against each other
 * bit for bit, over data that holds signed zeros, infinities and NaNs.
 * The planes cover odd and even sizes, a tile row wider than one vector
 * (16 and 8 tiles), rows of 8 tiles or fewer (two to an AVX-512 vector),
 * planes that take several bands of the stack block, and one too wide
 * for it (plain loops whatever the CPU). The output
 * transform with the convolution's output pass folded in (bias, ReLU,
 * 2x2 max or min pool) is checked, every way, against Z followed by that
 * pass as the layers define it, an infinite bias over the opposite
 * infinity and windows of tied signed zeros included. Whole convolutions are
 * checked in test_conv2d_winograd.c. */
#include "nnlib_internal.h"
#include "test_support.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum { NATIVE, PLAIN, AVX2 } transforms;

static void force(transforms t) {
  nnlib__winograd_force_plain(t == PLAIN);
  nnlib__winograd_force_avx2(t == AVX2);
}

typedef struct plane_case {
  int64_t c, h, w, m;
} plane_case;

static const plane_case CASES[] = {
    {3, 14, 14, 2}, /* the benchmark CNN's map: 7 tiles a row */
    {2, 7, 9, 3},   /* odd: ragged last row and column of tiles */
    {2, 1, 1, 1},
    {1, 2, 3, 2},
    {2, 3, 3, 1},
    {2, 6, 40, 1},   /* 20 tiles a row: more than one vector */
    {1, 5, 33, 2},   /* 17 tiles a row, the last ragged */
    {1, 120, 14, 1}, /* 60 rows of tiles: more than one band */
    {1, 119, 14, 1}, /* odd height over bands: the last band's padded row */
    {1, 12, 600, 1}, /* a band holds a few rows of tiles */
    {1, 4, 2500, 1}, /* too wide for the band: plain loops */
    /* at most 8 tiles a row: two rows of tiles to an AVX-512 vector (the
     * input at most 14 wide, from the plane itself) */
    {2, 13, 13, 2}, /* 7 tiles a row, both ragged, odd rows of tiles */
    {1, 5, 14, 3},  /* odd height: the last row of tiles alone */
    {2, 4, 12, 3},  /* even everywhere, 6 tiles a row */
    {1, 6, 5, 2},   /* 3 tiles a row, the last ragged */
    {1, 16, 2, 2},  /* one tile a row */
    {1, 1, 14, 2},  /* one row of tiles, no pool window */
    {2, 9, 16, 2},  /* 8 tiles a row: output in pairs, input through a band */
    {1, 11, 15, 2}, /* the same, ragged */
};

static uint32_t next(uint32_t *seed) {
  *seed = *seed * 1664525u + 1013904223u;
  return *seed >> 8;
}

/* Uniform in [-1, 1), with now and then -0, +0, an infinity or a NaN
 * when `specials`. */
static float draw(uint32_t *seed, bool specials) {
  uint32_t r = next(seed);
  if (specials && r % 53 == 0) {
    static const float odd[] = {-0.0f, 0.0f, INFINITY, -INFINITY, NAN};
    return odd[next(seed) % 5];
  }
  return (float)(r % 65536) / 32768.0f - 1.0f;
}

static float *filled(int64_t count, uint32_t seed, bool specials) {
  float *v = malloc((size_t)count * sizeof(float));
  assert_non_null(v);
  for (int64_t i = 0; i < count; i++)
    v[i] = draw(&seed, specials);
  return v;
}

static int64_t tiles_of(const plane_case *k) {
  return ((k->h + 1) / 2) * ((k->w + 1) / 2);
}

/* B^T and A^T of the algorithm (conv2d_winograd.c). */
static const double BT[4][4] = {
    {1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
static const double AT[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};

static double at_plane(const float *p, const plane_case *k, int64_t y,
                       int64_t x) {
  return y >= 0 && y < k->h && x >= 0 && x < k->w ? p[y * k->w + x] : 0.0;
}

/* V of channel c, sample s against sum_{a,b} BT[i][a] d[a][b] BT[j][b]. */
static void check_input_values(const plane_case *k, const float *x,
                               const float *v, int64_t c, int64_t s) {
  int64_t tw = (k->w + 1) / 2, n = k->m * tiles_of(k);
  const float *p = x + (s * k->c + c) * k->h * k->w;
  for (int64_t t = 0; t < tiles_of(k); t++) {
    int64_t ty = t / tw, tx = t % tw;
    for (int xi = 0; xi < 16; xi++) {
      double want = 0.0, scale = 0.0;
      for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) {
          double d = at_plane(p, k, 2 * ty - 1 + a, 2 * tx - 1 + b);
          want += BT[xi / 4][a] * d * BT[xi % 4][b];
          scale += fabs(d);
        }
      float got = v[(xi * k->c + c) * n + s * tiles_of(k) + t];
      if (!(fabs(got - want) <= 1e-6 * scale))
        fail_msg("input %lldx%lld: c %lld s %lld tile %lld xi %d: %.9g, "
                 "want %.9g",
                 (long long)k->h, (long long)k->w, (long long)c, (long long)s,
                 (long long)t, xi, (double)got, want);
    }
  }
}

/* Z of channel co, sample s against sum_{a,b} AT[r][a] M_{a,b} AT[q][b]. */
static void check_output_values(const plane_case *k, const float *mx,
                                const float *z, int64_t co, int64_t s) {
  int64_t tw = (k->w + 1) / 2, n = k->m * tiles_of(k);
  const float *plane = z + (co * k->m + s) * k->h * k->w;
  for (int64_t y = 0; y < k->h; y++)
    for (int64_t x = 0; x < k->w; x++) {
      int64_t t = (y / 2) * tw + x / 2;
      double want = 0.0, scale = 0.0;
      for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) {
          double mv = mx[((4 * a + b) * k->c + co) * n + s * tiles_of(k) + t];
          want += AT[y % 2][a] * mv * AT[x % 2][b];
          scale += fabs(mv);
        }
      float got = plane[y * k->w + x];
      if (!(fabs(got - want) <= 1e-6 * scale))
        fail_msg("output %lldx%lld: co %lld s %lld (%lld, %lld): %.9g, "
                 "want %.9g",
                 (long long)k->h, (long long)k->w, (long long)co, (long long)s,
                 (long long)y, (long long)x, (double)got, want);
    }
}

/* b[i] (by transforms t) and a[i] (expected) have the same bits, or are both
 * NaN (which NaN an operation on two NaNs returns depends on the order of its
 * operands, which a compiler may swap in scalar code); the float past the end
 * of b is still the sentinel. */
static void check_same(const float *a, const float *b, int64_t count,
                       const plane_case *k, const char *what, int t) {
  for (int64_t i = 0; i < count; i++)
    if (memcmp(&a[i], &b[i], sizeof(float)) != 0 &&
        !(isnan(a[i]) && isnan(b[i])))
      fail_msg("%s %lldx%lld: transforms %d give %.9g at %lld, expected "
               "%.9g",
               what, (long long)k->h, (long long)k->w, t, (double)b[i],
               (long long)i, (double)a[i]);
  uint32_t end;
  memcpy(&end, &b[count], sizeof end);
  if (end != 0x5a5a5a5au)
    fail_msg("%s %lldx%lld: transforms %d wrote past the end", what,
             (long long)k->h, (long long)k->w, t);
}

/* V and Z of one case by transforms t; channels in two calls, as threads
 * split them. */
static void run(const plane_case *k, transforms t, const float *x,
                const float *mx, float *v, float *z) {
  nnlib__winograd g = {k->c, k->c, k->h, k->w};
  force(t);
  nnlib__winograd_input(&g, x, k->m, v, 0, k->c / 2);
  nnlib__winograd_input(&g, x, k->m, v, k->c / 2, k->c);
  nnlib__winograd_output(&g, mx, k->m, NULL, z, 0, (k->c + 1) / 2);
  nnlib__winograd_output(&g, mx, k->m, NULL, z, (k->c + 1) / 2, k->c);
  force(NATIVE);
}

static void check_case(const plane_case *k, bool specials) {
  int64_t x_count = k->m * k->c * k->h * k->w;
  int64_t v_count = 16 * k->c * k->m * tiles_of(k);
  float *x = filled(x_count, 11u, specials);
  float *mx = filled(v_count, 29u, specials);
  float *v[3], *z[3];
  for (int t = 0; t < 3; t++) {
    /* a sentinel past each end: no transform writes outside its output */
    v[t] = malloc((size_t)(v_count + 1) * sizeof(float));
    z[t] = malloc((size_t)(x_count + 1) * sizeof(float));
    assert_true(v[t] != NULL && z[t] != NULL);
    memset(v[t], 0x5a, (size_t)(v_count + 1) * sizeof(float));
    memset(z[t], 0x5a, (size_t)(x_count + 1) * sizeof(float));
    run(k, (transforms)t, x, mx, v[t], z[t]);
  }
  for (int t = 0; t < 3; t++) {
    check_same(v[0], v[t], v_count, k, "input", t);
    check_same(z[0], z[t], x_count, k, "output", t);
  }
  if (!specials)
    for (int64_t c = 0; c < k->c; c++)
      for (int64_t s = 0; s < k->m; s++) {
        check_input_values(k, x, v[0], c, s);
        check_output_values(k, mx, z[0], c, s);
      }
  for (int t = 0; t < 3; t++) {
    free(v[t]);
    free(z[t]);
  }
  free(x);
  free(mx);
}

static void test_transforms_match_definition(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
    check_case(&CASES[i], false);
}

/* Infinities, NaNs and signed zeros: every way gives the same bits. */
static void test_transforms_same_bits_on_specials(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
    check_case(&CASES[i], true);
}

/* The output pass as the layers run it after Z: v = z + bias (+ 0.0f
 * without one), ReLU as v <= 0 ? 0 : v, then the 2x2 pool: the first
 * best in row-major order under strict comparison, or the first NaN. */
static float finished(const nnlib__winograd_finish *f, int64_t co, float z) {
  float v = z + (f->bias != NULL ? f->bias[co] : 0.0f);
  return f->relu && v <= 0.0f ? 0.0f : v;
}

static float window_pick(int pool, const float v[4]) {
  float w = v[0];
  for (int i = 1; i < 4 && !isnan(w); i++)
    if (isnan(v[i]) || (pool > 0 ? v[i] > w : v[i] < w))
      w = v[i];
  return w;
}

/* y [m, Co, ...] of the output pass from Z [Co, m, h w]. */
static void output_pass(const plane_case *k, const nnlib__winograd_finish *f,
                        const float *z, float *y) {
  int64_t oh = f->pool != 0 ? k->h / 2 : k->h;
  int64_t ow = f->pool != 0 ? k->w / 2 : k->w;
  for (int64_t co = 0; co < k->c; co++)
    for (int64_t s = 0; s < k->m; s++) {
      const float *zp = z + (co * k->m + s) * k->h * k->w;
      float *yp = y + (s * k->c + co) * oh * ow;
      for (int64_t i = 0; i < oh; i++)
        for (int64_t j = 0; j < ow; j++) {
          if (f->pool == 0) {
            yp[i * ow + j] = finished(f, co, zp[i * k->w + j]);
            continue;
          }
          float v[4];
          for (int q = 0; q < 4; q++)
            v[q] = finished(f, co, zp[(2 * i + q / 2) * k->w + 2 * j + q % 2]);
          yp[i * ow + j] = window_pick(f->pool, v);
        }
    }
}

/* The output pass folded into the output transform, every way, against
 * Z followed by the pass: with and without bias and ReLU, without a pool
 * and with a max and a min pool. */
static void check_finish(const plane_case *k, bool specials) {
  int64_t y_count = k->m * k->c * k->h * k->w;
  int64_t v_count = 16 * k->c * k->m * tiles_of(k);
  float *mx = filled(v_count, 31u, specials);
  float *bias = filled(k->c, 37u, specials);
  float *z = malloc((size_t)y_count * sizeof(float));
  float *want = malloc((size_t)y_count * sizeof(float));
  float *got = malloc((size_t)(y_count + 1) * sizeof(float));
  assert_true(z != NULL && want != NULL && got != NULL);
  nnlib__winograd g = {k->c, k->c, k->h, k->w};
  force(PLAIN);
  nnlib__winograd_output(&g, mx, k->m, NULL, z, 0, k->c);
  for (int variant = 0; variant < 12; variant++) {
    nnlib__winograd_finish f = {variant % 2 ? bias : NULL, variant / 2 % 2,
                                variant / 4 - 1};
    output_pass(k, &f, z, want);
    int64_t count =
        f.pool != 0 ? k->m * k->c * (k->h / 2) * (k->w / 2) : y_count;
    for (int t = 0; t < 3; t++) {
      memset(got, 0x5a, (size_t)(y_count + 1) * sizeof(float));
      force((transforms)t);
      nnlib__winograd_output(&g, mx, k->m, &f, got, 0, k->c / 2);
      nnlib__winograd_output(&g, mx, k->m, &f, got, k->c / 2, k->c);
      force(NATIVE);
      check_same(want, got, count, k, f.pool ? "pooled output" : "output", t);
    }
  }
  free(mx);
  free(bias);
  free(z);
  free(want);
  free(got);
}

static void test_output_pass_folded_in(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
    check_finish(&CASES[i], false);
    check_finish(&CASES[i], true);
  }
}

/* A window whose top-left output is one NaN and bottom-right another
 * (M_0 feeds only the first, M_15 only the last): the pool keeps the
 * first, whichever way runs, for max and min alike. */
static void test_pool_keeps_first_nan(void **state) {
  (void)state;
  const plane_case k = {2, 6, 6, 1};
  int64_t n = tiles_of(&k), v_count = 16 * k.c * n;
  float *mx = filled(v_count, 41u, false), y[2 * 9];
  uint32_t first_bits = 0x7fc00123u, last_bits = 0xffc00456u;
  float first_nan, last_nan;
  memcpy(&first_nan, &first_bits, sizeof first_nan);
  memcpy(&last_nan, &last_bits, sizeof last_nan);
  for (int64_t i = 0; i < k.c * n; i++) {
    mx[i] = first_nan;               /* xi 0 */
    mx[15 * k.c * n + i] = last_nan; /* xi 15 */
  }
  nnlib__winograd g = {k.c, k.c, k.h, k.w};
  for (int pool = -1; pool <= 1; pool += 2)
    for (int t = 0; t < 3; t++) {
      nnlib__winograd_finish f = {NULL, true, pool};
      force((transforms)t);
      nnlib__winograd_output(&g, mx, k.m, &f, y, 0, k.c);
      force(NATIVE);
      for (int i = 0; i < 2 * 9; i++) {
        uint32_t bits;
        memcpy(&bits, &y[i], sizeof bits);
        if (bits != first_bits)
          fail_msg("pool %d, transforms %d: window %d is 0x%08x, want the "
                   "first NaN 0x%08x",
                   pool, t, i, bits, first_bits);
      }
    }
  free(mx);
}

/* An infinite bias over windows holding the opposite infinity: Inf - Inf
 * is NaN for that output alone, so the window's pooled value is NaN (its
 * first NaN), where picking the best before adding the bias would give
 * an infinity. M_0 feeds only a tile's top-left output: -Inf there in
 * channel 0 (bias +Inf), +Inf in channel 1 (bias -Inf), every other
 * tile; max and min pools, with and without ReLU, every way. */
static void test_pool_infinite_bias(void **state) {
  (void)state;
  const plane_case k = {2, 6, 6, 1};
  int64_t n = tiles_of(&k), v_count = 16 * k.c * n;
  float *mx = filled(v_count, 43u, false), bias[2] = {INFINITY, -INFINITY};
  float z[2 * 36], want[2 * 9], got[2 * 9 + 1];
  for (int64_t t = 0; t < n; t += 2) {
    mx[t] = -INFINITY;    /* xi 0, channel 0 */
    mx[n + t] = INFINITY; /* xi 0, channel 1 */
  }
  nnlib__winograd g = {k.c, k.c, k.h, k.w};
  force(PLAIN);
  nnlib__winograd_output(&g, mx, k.m, NULL, z, 0, k.c);
  force(NATIVE);
  assert_true(isinf(z[0]) && isinf(z[36]));
  for (int variant = 0; variant < 4; variant++) {
    nnlib__winograd_finish f = {bias, variant % 2, variant / 2 ? 1 : -1};
    output_pass(&k, &f, z, want);
    assert_true(isnan(want[0]) && isnan(want[9]));
    for (int t = 0; t < 3; t++) {
      memset(got, 0x5a, sizeof got);
      force((transforms)t);
      nnlib__winograd_output(&g, mx, k.m, &f, got, 0, k.c);
      force(NATIVE);
      check_same(want, got, 2 * 9, &k, "pooled output, infinite bias", t);
    }
  }
  free(mx);
}

/* Equal outputs of different bits: M all -0 gives a tile's top-left
 * output -0 and the other three +0 (-0 - -0 is +0), and a bias of -0
 * keeps them apart. Every window is a tie, whose first output (-0) the
 * max and min pools keep, without ReLU (which makes both +0), every
 * way. */
static void test_pool_ties_keep_first(void **state) {
  (void)state;
  const plane_case k = {1, 4, 4, 2};
  int64_t v_count = 16 * k.c * k.m * tiles_of(&k);
  float *mx = malloc((size_t)v_count * sizeof(float)), bias = -0.0f;
  float got[2 * 4 + 1];
  assert_non_null(mx);
  for (int64_t i = 0; i < v_count; i++)
    mx[i] = -0.0f;
  nnlib__winograd g = {k.c, k.c, k.h, k.w};
  for (int pool = -1; pool <= 1; pool += 2)
    for (int t = 0; t < 3; t++) {
      nnlib__winograd_finish f = {&bias, false, pool};
      memset(got, 0x5a, sizeof got);
      force((transforms)t);
      nnlib__winograd_output(&g, mx, k.m, &f, got, 0, k.c);
      force(NATIVE);
      for (int i = 0; i < 2 * 4; i++)
        if (!(got[i] == 0.0f && signbit(got[i])))
          fail_msg("pool %d, transforms %d: window %d is %g%s, want -0", pool,
                   t, i, (double)got[i], signbit(got[i]) ? " (sign set)" : "");
    }
  free(mx);
}

/* U = G g G^T of co x c filters: within 1e-6 of the definition in double
 * (the plain loops round once, from double), and the same bits from the
 * vector form and the plain loops, specials included. 16 filters go to a
 * vector step: 37 leaves a tail of 5, 16 and 48 none, 7 only a tail. */
static void check_weights(int64_t co, int64_t c, bool specials) {
  static const double G[4][3] = {
      {1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  int64_t filters = co * c;
  float *w = filled(9 * filters, 53u, specials), *u[2];
  for (int t = 0; t < 2; t++) {
    u[t] = malloc((size_t)(16 * filters + 1) * sizeof(float));
    assert_non_null(u[t]);
    memset(u[t], 0x5a, (size_t)(16 * filters + 1) * sizeof(float));
    force(t == 0 ? NATIVE : PLAIN);
    nnlib__winograd_weights(w, co, c, u[t]);
    force(NATIVE);
  }
  plane_case k = {c, co, c, 1}; /* check_same names it co x c */
  check_same(u[1], u[0], 16 * filters, &k, "weights", 0);
  for (int64_t f = 0; f < filters && !specials; f++)
    for (int xi = 0; xi < 16; xi++) {
      double want = 0;
      for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
          want += G[xi / 4][a] * w[9 * f + 3 * a + b] * G[xi % 4][b];
      float got = u[1][xi * filters + f];
      if (fabs(got - want) > 1e-6 * (1 + fabs(want)))
        fail_msg("weights of filter %lld, position %d: %.9g, want %.9g",
                 (long long)f, xi, (double)got, want);
    }
  free(u[0]);
  free(u[1]);
  free(w);
}

static void test_weights(void **state) {
  (void)state;
  static const int64_t sizes[][2] = {{37, 1}, {4, 4}, {16, 3}, {7, 1}};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    check_weights(sizes[i][0], sizes[i][1], false);
    check_weights(sizes[i][0], sizes[i][1], true);
  }
}

/* U' of the transposed convolution (backward's input gradient): U'_xi
 * [C, Co] at (c, co) is G g' G^T of g' = w[co, c] turned by 180 degrees,
 * g'[a][b] = g[2 - a][2 - b], within 1e-6 of that definition in double;
 * and nothing is written past the area. */
static void check_weights_turned(int64_t co, int64_t c) {
  static const double G[4][3] = {
      {1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  int64_t filters = co * c;
  float *w = filled(9 * filters, 59u, false);
  float *u = malloc((size_t)(16 * filters + 1) * sizeof(float));
  assert_non_null(u);
  memset(u, 0x5a, (size_t)(16 * filters + 1) * sizeof(float));
  nnlib__winograd_weights_turned(w, co, c, u);
  for (int64_t o = 0; o < co; o++)
    for (int64_t i = 0; i < c; i++)
      for (int xi = 0; xi < 16; xi++) {
        const float *g = w + 9 * (o * c + i);
        double want = 0;
        for (int a = 0; a < 3; a++)
          for (int b = 0; b < 3; b++)
            want += G[xi / 4][a] * g[3 * (2 - a) + 2 - b] * G[xi % 4][b];
        float got = u[xi * filters + i * co + o];
        if (fabs(got - want) > 1e-6 * (1 + fabs(want)))
          fail_msg("turned weights of filter (%lld, %lld), position %d: "
                   "%.9g, want %.9g",
                   (long long)o, (long long)i, xi, (double)got, want);
      }
  uint32_t pattern;
  memset(&pattern, 0x5a, sizeof pattern);
  assert_memory_equal(&u[16 * filters], &pattern, sizeof pattern);
  free(u);
  free(w);
}

static void test_weights_turned(void **state) {
  (void)state;
  check_weights_turned(3, 5);
  check_weights_turned(16, 32);
  check_weights_turned(1, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_weights_turned),
      cmocka_unit_test(test_transforms_match_definition),
      cmocka_unit_test(test_transforms_same_bits_on_specials),
      cmocka_unit_test(test_output_pass_folded_in),
      cmocka_unit_test(test_pool_keeps_first_nan),
      cmocka_unit_test(test_pool_infinite_bias),
      cmocka_unit_test(test_pool_ties_keep_first),
      cmocka_unit_test(test_weights),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
