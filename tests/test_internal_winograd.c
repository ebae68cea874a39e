/* The Winograd F(2x2, 3x3) transforms of conv2d_winograd.c, called
 * directly: V = B^T d B of every tile against the definition in double
 * (zeros outside the plane), Z = A^T M A the same way, and the three
 * ways the library runs them (AVX-512 where the CPU has it, AVX2, plain
 * loops; each forced here where the CPU can run it) against each other
 * bit for bit, over data that holds signed zeros, infinities and NaNs.
 * The planes cover odd and even sizes, a tile row wider than one vector
 * (16 and 8 tiles), planes that take several bands of the stack block,
 * and one too wide for it (plain loops whatever the CPU). Whole
 * convolutions are checked in test_conv2d_winograd.c. */
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
    {2, 1, 1, 1},    {1, 2, 3, 2},
    {2, 3, 3, 1},    {2, 6, 40, 1}, /* 20 tiles a row: more than one vector */
    {1, 5, 33, 2},                  /* 17 tiles a row, the last ragged */
    {1, 120, 14, 1},                /* 60 rows of tiles: more than one band */
    {1, 12, 600, 1},                /* a band holds a few rows of tiles */
    {1, 4, 2500, 1},                /* too wide for the band: plain loops */
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

/* a[i] and b[i] have the same bits, or are both NaN (which NaN an
 * operation on two NaNs returns depends on the order of its operands,
 * which a compiler may swap in scalar code); the float past the end of b
 * is still the sentinel. */
static void check_same(const float *a, const float *b, int64_t count,
                       const plane_case *k, const char *what, int t) {
  for (int64_t i = 0; i < count; i++)
    if (memcmp(&a[i], &b[i], sizeof(float)) != 0 &&
        !(isnan(a[i]) && isnan(b[i])))
      fail_msg("%s %lldx%lld: transforms %d give %.9g at %lld, the CPU's "
               "own %.9g",
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
  nnlib__winograd_output(&g, mx, k->m, z, 0, (k->c + 1) / 2);
  nnlib__winograd_output(&g, mx, k->m, z, (k->c + 1) / 2, k->c);
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_transforms_match_definition),
      cmocka_unit_test(test_transforms_same_bits_on_specials),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
