/* conv2d_winograd.c - the transforms of Winograd's minimal filtering
 * algorithm F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for
 * Convolutional Neural Networks", 2016), with which conv2d.c runs a 3x3
 * convolution at stride 1 and padding 1 (forward, and backward's input
 * gradient as the convolution of dy by the turned filters).
 *
 * The output is cut into 2x2 tiles (a ragged last row or column of tiles
 * where the size is odd); tile (ty, tx) of a plane reads the 4x4 input
 * patch d whose top left is x[2 ty - 1, 2 tx - 1] (zeros outside the
 * plane) and gives
 *
 *   Y = A^T [ (G g G^T) .* (B^T d B) ] A                    (.* elementwise)
 *
 *   B^T = | 1  0 -1  0 |   G = | 1    0    0  |   A^T = | 1  1  1  0 |
 *         | 0  1  1  0 |       | 1/2  1/2  1/2|         | 0  1 -1 -1 |
 *         | 0 -1  1  0 |       | 1/2 -1/2  1/2|
 *         | 0  1  0 -1 |       | 0    0    1  |
 *
 * Summed over input channels c, the 16 elementwise products of each tile
 * become 16 GEMMs over all tiles at once, one per position xi of the 4x4
 * transformed tile:  M_xi [Co, N] = U_xi [Co, C] V_xi [C, N],  with U_xi
 * = (G g G^T)[xi] over (co, c), V_xi = (B^T d B)[xi] over (c, tile) and N
 * the tiles of the chunk. A tile's four outputs take 16 C multiply-adds
 * in the GEMMs where the direct convolution takes 36 C: 2.25x fewer, less
 * where an odd height or width leaves ragged tiles whose extra outputs are
 * dropped. The transforms add and subtract only (G's halves are exact),
 * so finite results differ from the direct sum by rounding alone; an
 * infinite input gives NaN (Inf - Inf in B^T d B) where the direct sum
 * would give an infinity. */
#include "layers/layer.h"

#include <math.h>
#include <string.h>

/* U of one filter g (3x3) to u[xi stride], xi = 4 r + q: G g G^T in
 * double, rounded once. */
static void weights_one(const float *g, float *u, int64_t stride) {
  double t[4][3]; /* G g */
  for (int j = 0; j < 3; j++) {
    t[0][j] = g[j];
    t[1][j] = 0.5 * ((double)g[j] + g[3 + j] + g[6 + j]);
    t[2][j] = 0.5 * ((double)g[j] - g[3 + j] + g[6 + j]);
    t[3][j] = g[6 + j];
  }
  for (int r = 0; r < 4; r++) { /* (G g) G^T */
    float *row = u + (int64_t)4 * r * stride;
    row[0] = (float)t[r][0];
    row[stride] = (float)(0.5 * (t[r][0] + t[r][1] + t[r][2]));
    row[2 * stride] = (float)(0.5 * (t[r][0] - t[r][1] + t[r][2]));
    row[3 * stride] = (float)t[r][2];
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define WINOGRAD_VECTORS 1

/* weights_one for 8 filters at once, one per double lane (g[j]: tap j of
 * each), in its operations and order: the same bits. The 16 rows of U
 * are stored 8 floats at a time instead of one float 8 KB from the
 * last (the benchmark CNN's 64 x 32 filters). */
__attribute__((target("avx512f"))) static void
weights8_avx512(const __m512d g[9], float *u, int64_t stride) {
  const __m512d half = _mm512_set1_pd(0.5);
  __m512d t[4][3];
  for (int j = 0; j < 3; j++) {
    t[0][j] = g[j];
    t[1][j] = _mm512_mul_pd(
        half, _mm512_add_pd(_mm512_add_pd(g[j], g[3 + j]), g[6 + j]));
    t[2][j] = _mm512_mul_pd(
        half, _mm512_add_pd(_mm512_sub_pd(g[j], g[3 + j]), g[6 + j]));
    t[3][j] = g[6 + j];
  }
  for (int r = 0; r < 4; r++) {
    float *row = u + (int64_t)4 * r * stride;
    __m512d sum = _mm512_add_pd(t[r][0], t[r][1]);
    __m512d diff = _mm512_sub_pd(t[r][0], t[r][1]);
    _mm256_storeu_ps(row, _mm512_cvtpd_ps(t[r][0]));
    _mm256_storeu_ps(row + stride, _mm512_cvtpd_ps(_mm512_mul_pd(
                                       half, _mm512_add_pd(sum, t[r][2]))));
    _mm256_storeu_ps(
        row + 2 * stride,
        _mm512_cvtpd_ps(_mm512_mul_pd(half, _mm512_add_pd(diff, t[r][2]))));
    _mm256_storeu_ps(row + 3 * stride, _mm512_cvtpd_ps(t[r][2]));
  }
}

/* Filters [0, count) with count a multiple of 16: 16 filters' taps
 * gathered at a time (filter f's tap j at w[9 f + j]). */
__attribute__((target("avx512f"))) static void
weights_avx512(const float *w, int64_t count, float *u, int64_t stride) {
  const __m512i nines = _mm512_setr_epi32(0, 9, 18, 27, 36, 45, 54, 63, 72, 81,
                                          90, 99, 108, 117, 126, 135);
  for (int64_t i = 0; i < count; i += 16) {
    __m512d low[9], high[9];
    for (int j = 0; j < 9; j++) {
      __m512 taps = _mm512_i32gather_ps(nines, w + 9 * i + j, 4);
      low[j] = _mm512_cvtps_pd(_mm512_castps512_ps256(taps));
      high[j] = _mm512_cvtps_pd(
          _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(taps), 1)));
    }
    weights8_avx512(low, u + i, stride);
    weights8_avx512(high, u + i + 8, stride);
  }
}
#endif

static bool plain_forced, avx2_forced;

/* U [16, Co, C] = G g G^T for every (co, c), g = w[co, c] (3x3): 16
 * filters at a time with AVX-512 where the CPU has it (and the plain
 * loops are not forced), the rest one by one. */
void nnlib__winograd_weights(const float *w, int64_t co_count, int64_t c_count,
                             float *u) {
  int64_t stride = co_count * c_count, done = 0;
#ifdef WINOGRAD_VECTORS
  if (!plain_forced && __builtin_cpu_supports("avx512f")) {
    done = stride / 16 * 16;
    weights_avx512(w, done, u, stride);
  }
#endif
  for (int64_t i = done; i < stride; i++)
    weights_one(w + 9 * i, u + i, stride);
}

/* U' [16, C, Co] of the transposed convolution that backward's input
 * gradient is: dx is dy (Co channels) convolved, padding 1, with every
 * filter turned by 180 degrees, g'[i][j] = g[2 - i][2 - j], filter (c, co)
 * of it being w[co, c] turned. With R the reversal, G R = S G for S the
 * swap of rows 0 and 3, so G g' G^T = S (G g G^T) S^T: U of w[co, c] with
 * positions 0 and 3 swapped along both axes of the 4x4 tile, stored at
 * (c, co). Plain loops: Co C filters, next to the GEMMs' 16 Co C per
 * tile. */
void nnlib__winograd_weights_turned(const float *w, int64_t co_count,
                                    int64_t c_count, float *u) {
  static const int swapped[4] = {3, 1, 2, 0};
  int64_t stride = co_count * c_count;
  for (int64_t co = 0; co < co_count; co++)
    for (int64_t c = 0; c < c_count; c++) {
      float one[16];
      weights_one(w + 9 * (co * c_count + c), one, 1);
      for (int xi = 0; xi < 16; xi++)
        u[xi * stride + c * co_count + co] =
            one[4 * swapped[xi / 4] + swapped[xi % 4]];
    }
}

/* The 4x4 patch of tile (ty, tx) from an h x w plane, zeros outside. */
static void load_patch(const float *plane, int64_t h, int64_t w, int64_t ty,
                       int64_t tx, float d[4][4]) {
  int64_t top = 2 * ty - 1, left = 2 * tx - 1;
  if (top >= 0 && top + 4 <= h && left >= 0 && left + 4 <= w) {
    for (int r = 0; r < 4; r++)
      for (int q = 0; q < 4; q++)
        d[r][q] = plane[(top + r) * w + left + q];
    return;
  }
  for (int r = 0; r < 4; r++)
    for (int q = 0; q < 4; q++) {
      int64_t y = top + r, x = left + q;
      d[r][q] = y >= 0 && y < h && x >= 0 && x < w ? plane[y * w + x] : 0.0f;
    }
}

/* v[16] = B^T d B, row transform first. */
static void transform_patch(float d[4][4], float v[16]) {
  float t[4][4];
  for (int q = 0; q < 4; q++) {
    t[0][q] = d[0][q] - d[2][q];
    t[1][q] = d[1][q] + d[2][q];
    t[2][q] = d[2][q] - d[1][q];
    t[3][q] = d[1][q] - d[3][q];
  }
  for (int r = 0; r < 4; r++) {
    v[4 * r + 0] = t[r][0] - t[r][2];
    v[4 * r + 1] = t[r][1] + t[r][2];
    v[4 * r + 2] = t[r][2] - t[r][1];
    v[4 * r + 3] = t[r][1] - t[r][3];
  }
}

/* V of one h x w plane, one tile at a time: tile t = ty tw + tx of
 * position xi goes to dst[xi stride + t]. */
static void input_plane_plain(const float *plane, int64_t h, int64_t w,
                              float *dst, int64_t stride) {
  int64_t tw = (w + 1) / 2, th = (h + 1) / 2;
  for (int64_t ty = 0; ty < th; ty++)
    for (int64_t tx = 0; tx < tw; tx++) {
      float d[4][4], t[16];
      load_patch(plane, h, w, ty, tx, d);
      transform_patch(d, t);
      for (int xi = 0; xi < 16; xi++)
        dst[xi * stride + ty * tw + tx] = t[xi];
    }
}

/* o[2][2] = A^T mx A. */
static void transform_tile(const float mx[16], float o[2][2]) {
  float t[2][4];
  for (int q = 0; q < 4; q++) {
    t[0][q] = mx[q] + mx[4 + q] + mx[8 + q];
    t[1][q] = mx[4 + q] - mx[8 + q] - mx[12 + q];
  }
  for (int r = 0; r < 2; r++) {
    o[r][0] = t[r][0] + t[r][1] + t[r][2];
    o[r][1] = t[r][1] - t[r][2] - t[r][3];
  }
}

/* What the output transform does to each output of one plane before it
 * stores it: nothing (add false: Z), or the convolution's output pass,
 * v = o + bias, then ReLU (relu), then the 2x2 pool whose windows are the
 * tiles (pool 1 max, -1 min, 0 none). */
typedef struct plane_finish {
  bool add, relu;
  int pool;
  float bias;
} plane_finish;

/* The output pass's expressions: bias_activate's (conv2d.c) and the
 * pool's selection (pool2d.c): the first best under strict comparison in
 * row-major order, or the window's first NaN. */
static float finish_value(const plane_finish *f, float v) {
  if (!f->add)
    return v;
  v = v + f->bias;
  return f->relu && v <= 0.0f ? 0.0f : v;
}

static float pick(int pool, float w, float x) {
  bool better = pool > 0 ? x > w : x < w;
  return !isnan(w) && (isnan(x) || better) ? x : w;
}

/* One h x w plane from its tiles in M (tile t of position xi at
 * src[xi stride + t]): Z or y (h x w) without a pool, a ragged tile
 * writing only its part inside the plane; the pooled y (h/2 x w/2) with
 * one, where a ragged tile is in no window. */
static void output_plane_plain(const float *src, int64_t stride, int64_t h,
                               int64_t w, const plane_finish *f, float *dst) {
  int64_t tw = (w + 1) / 2, th = (h + 1) / 2;
  for (int64_t ty = 0; ty < th; ty++)
    for (int64_t tx = 0; tx < tw; tx++) {
      float t[16], o[2][2];
      for (int xi = 0; xi < 16; xi++)
        t[xi] = src[xi * stride + ty * tw + tx];
      transform_tile(t, o);
      for (int r = 0; r < 2; r++)
        for (int q = 0; q < 2; q++)
          o[r][q] = finish_value(f, o[r][q]);
      if (f->pool != 0) {
        if (2 * ty + 1 < h && 2 * tx + 1 < w)
          dst[ty * (w / 2) + tx] = pick(
              f->pool, pick(f->pool, pick(f->pool, o[0][0], o[0][1]), o[1][0]),
              o[1][1]);
        continue;
      }
      for (int64_t r = 0; r < 2 && 2 * ty + r < h; r++)
        for (int64_t q = 0; q < 2 && 2 * tx + q < w; q++)
          dst[(2 * ty + r) * w + 2 * tx + q] = o[r][q];
    }
}

#ifdef WINOGRAD_VECTORS

/* The vector transforms work on a row of tiles at once, LANES (16 with
 * AVX-512, 8 with AVX2) tiles per vector, in the plain loops' operations
 * and order, so they give the same bits.
 *
 * Input: the patch of tile tx covers padded columns 2 tx .. 2 tx + 3 of
 * its four padded rows (padded column j is plane column j - 1, padded
 * row i plane row i - 1), so column q of every tile in a row of tiles
 * is one of E[tx] (q = 0), O[tx] (1), E[tx + 1] (2), O[tx + 1] (3), E
 * and O the even and odd padded columns of the row: a row is loaded at
 * 2 tx and at 2 tx + 2, each load split into its even and odd lanes by
 * two permutations, the rows are combined (t = B^T d) lane by lane, then the
 * columns (v = t B) the same way, and v's 16 rows are stored whole.
 * The padded rows are first copied into a band on the stack whose
 * padding stays zero, so the loads need no masks and read no memory
 * outside the plane. Planes of at most 8 tiles a row (14 columns for the
 * input) take two rows of tiles to an AVX-512 vector instead, the input
 * loaded from the plane itself under a mask (input_pairs_avx512,
 * output_pairs_avx512). */
enum { BAND_FLOATS = 4096 };

/* The band of a plane w wide: its columns and the tile rows it holds at
 * once (0: w too wide; then the plain loops run). A group of tiles from
 * tx loads two vectors at padded columns 2 tx and 2 tx + 2; for the last
 * group (tx <= tw - 1) the second ends before 2 tw + 2 lanes, the width. */
static int64_t band_width(int64_t w, int64_t lanes) {
  return 2 * ((w + 1) / 2) + 2 * lanes;
}

static int64_t band_tile_rows(int64_t w, int64_t lanes) {
  int64_t rows = BAND_FLOATS / band_width(w, lanes);
  return rows >= 4 ? (rows - 2) / 2 : 0;
}

/* Band rows [0, rows) from padded rows first.. of an h x w plane: plane
 * rows copied to columns 1..w, rows outside the plane zero; the band's
 * other columns were zeroed once and are never written. */
static void fill_band(const float *plane, int64_t h, int64_t w, int64_t first,
                      int64_t rows, int64_t pw, float *band) {
  for (int64_t q = 0; q < rows; q++) {
    int64_t i = first + q - 1;
    if (i < 0 || i >= h)
      memset(band + q * pw, 0, (size_t)pw * sizeof(float));
    else
      memcpy(band + q * pw + 1, plane + i * w, (size_t)w * sizeof(float));
  }
}

/* Lanes [0, count) of a 16-lane mask. */
static inline __mmask16 lanes16(int64_t count) {
  return count >= 16  ? (__mmask16)0xFFFF
         : count <= 0 ? (__mmask16)0
                      : (__mmask16)((1u << count) - 1u);
}

/* B^T d over four rows: t0 = d0 - d2, t1 = d1 + d2, t2 = d2 - d1,
 * t3 = d1 - d3 (transform_patch's first loop). */
__attribute__((target("avx512f"))) static inline void rows_bt16(__m512 d[4]) {
  __m512 t0 = _mm512_sub_ps(d[0], d[2]), t1 = _mm512_add_ps(d[1], d[2]);
  __m512 t2 = _mm512_sub_ps(d[2], d[1]), t3 = _mm512_sub_ps(d[1], d[3]);
  d[0] = t0;
  d[1] = t1;
  d[2] = t2;
  d[3] = t3;
}

/* B^T d B of the patches whose four rows' columns 0..3 are e, o, e1, o1
 * (a tile per lane): the rows combined, then the columns, as
 * transform_patch does; position xi = 4 r + q to at + xi stride, lanes
 * `out`. */
__attribute__((target("avx512f"))) static inline void
store_patches16(__m512 e[4], __m512 o[4], __m512 e1[4], __m512 o1[4],
                __mmask16 out, float *at, int64_t stride) {
  rows_bt16(e);
  rows_bt16(o);
  rows_bt16(e1);
  rows_bt16(o1);
  for (int r = 0; r < 4; r++) { /* transform_patch's second loop */
    float *row = at + (int64_t)4 * r * stride;
    _mm512_mask_storeu_ps(row, out, _mm512_sub_ps(e[r], e1[r]));
    _mm512_mask_storeu_ps(row + stride, out, _mm512_add_ps(o[r], e1[r]));
    _mm512_mask_storeu_ps(row + 2 * stride, out, _mm512_sub_ps(e1[r], o[r]));
    _mm512_mask_storeu_ps(row + 3 * stride, out, _mm512_sub_ps(o[r], o1[r]));
  }
}

/* V of tile rows [0, tile_rows) of a band pw wide, tile row ty to
 * dst + ty tw, 16 tiles at a time. */
__attribute__((target("avx512f"))) static void
input_rows_avx512(const float *band, int64_t pw, int64_t tile_rows, int64_t tw,
                  float *dst, int64_t stride) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20,
                                         22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  for (int64_t ty = 0; ty < tile_rows; ty++)
    for (int64_t k = 0; k < tw; k += 16) {
      __m512 e[4], o[4], e1[4], o1[4]; /* E, O, E and O one tile on */
      for (int r = 0; r < 4; r++) {
        const float *p = band + (2 * ty + r) * pw + 2 * k;
        __m512 a = _mm512_loadu_ps(p), b = _mm512_loadu_ps(p + 16);
        __m512 c = _mm512_loadu_ps(p + 2), d = _mm512_loadu_ps(p + 18);
        e[r] = _mm512_permutex2var_ps(a, even, b);
        o[r] = _mm512_permutex2var_ps(a, odd, b);
        e1[r] = _mm512_permutex2var_ps(c, even, d);
        o1[r] = _mm512_permutex2var_ps(c, odd, d);
      }
      store_patches16(e, o, e1, o1, lanes16(tw - k), dst + ty * tw + k, stride);
    }
}

/* finish_value and pick on 16 lanes. */
__attribute__((target("avx512f"))) static inline __m512
finish16(const plane_finish *f, __m512 v) {
  if (!f->add)
    return v;
  const __m512 zero = _mm512_setzero_ps();
  v = _mm512_add_ps(v, _mm512_set1_ps(f->bias));
  if (!f->relu)
    return v;
  return _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, zero, _CMP_LE_OQ), zero);
}

__attribute__((target("avx512f"))) static inline __m512
pick16(int pool, __m512 w, __m512 x) {
  __mmask16 better = pool > 0 ? _mm512_cmp_ps_mask(x, w, _CMP_GT_OQ)
                              : _mm512_cmp_ps_mask(x, w, _CMP_LT_OQ);
  __mmask16 w_nan = _mm512_cmp_ps_mask(w, w, _CMP_UNORD_Q);
  __mmask16 x_nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  return _mm512_mask_mov_ps(w, (__mmask16)(~w_nan & (x_nan | better)), x);
}

/* A^T M A of the tiles in lanes `in` of the 16 vectors at src + xi
 * stride, each output finished: o[r][q] (transform_tile's loops). */
__attribute__((target("avx512f"))) static inline void
tiles16(const float *src, int64_t stride, __mmask16 in, const plane_finish *f,
        __m512 o[2][2]) {
  __m512 mx[16], t[2][4];
  for (int xi = 0; xi < 16; xi++)
    mx[xi] = in == 0xFFFF ? _mm512_loadu_ps(src + xi * stride)
                          : _mm512_maskz_loadu_ps(in, src + xi * stride);
  for (int q = 0; q < 4; q++) {
    t[0][q] = _mm512_add_ps(_mm512_add_ps(mx[q], mx[4 + q]), mx[8 + q]);
    t[1][q] = _mm512_sub_ps(_mm512_sub_ps(mx[4 + q], mx[8 + q]), mx[12 + q]);
  }
  for (int r = 0; r < 2; r++) {
    o[r][0] =
        finish16(f, _mm512_add_ps(_mm512_add_ps(t[r][0], t[r][1]), t[r][2]));
    o[r][1] =
        finish16(f, _mm512_sub_ps(_mm512_sub_ps(t[r][1], t[r][2]), t[r][3]));
  }
}

/* The pool's pick over each lane's window, in pick's order. */
__attribute__((target("avx512f"))) static inline __m512
window16(int pool, __m512 o[2][2]) {
  __m512 top = pick16(pool, o[0][0], o[0][1]);
  return pick16(pool, pick16(pool, top, o[1][0]), o[1][1]);
}

/* output_plane_plain, 16 tiles at a time: A^T M A lane by lane, then
 * each output row's two columns of tiles interleaved by a permutation,
 * or the pool's window picked lane by lane. */
__attribute__((target("avx512f"))) static void
output_plane_avx512(const float *src, int64_t stride, int64_t h, int64_t w,
                    const plane_finish *f, float *dst) {
  const __m512i first =
      _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i second = _mm512_add_epi32(first, _mm512_set1_epi32(8));
  int64_t tw = (w + 1) / 2, th = f->pool != 0 ? h / 2 : (h + 1) / 2;
  for (int64_t ty = 0; ty < th; ty++)
    for (int64_t k = 0; k < tw; k += 16) {
      int64_t count = tw - k < 16 ? tw - k : 16;
      __m512 o[2][2];
      tiles16(src + ty * tw + k, stride, lanes16(count), f, o);
      if (f->pool != 0) {
        int64_t pw = w / 2, windows = pw - k < count ? pw - k : count;
        _mm512_mask_storeu_ps(dst + ty * pw + k, lanes16(windows),
                              window16(f->pool, o));
        continue;
      }
      int64_t cols = w - 2 * k < 2 * count ? w - 2 * k : 2 * count;
      for (int64_t r = 0; r < 2 && 2 * ty + r < h; r++) {
        float *row = dst + (2 * ty + r) * w + 2 * k;
        _mm512_mask_storeu_ps(row, lanes16(cols),
                              _mm512_permutex2var_ps(o[r][0], first, o[r][1]));
        if (cols > 16)
          _mm512_mask_storeu_ps(
              row + 16, lanes16(cols - 16),
              _mm512_permutex2var_ps(o[r][0], second, o[r][1]));
      }
    }
}

/* Planes of few tiles a row, two rows of tiles to a vector (AVX-512): row
 * ty's tw tiles in lanes [0, tw), row ty + 1's in [tw, 2 tw), where a
 * tile's V and M columns lie one after the other anyway (the benchmark
 * CNN's second convolution has 7 tiles a row: one row alone would leave
 * 9 of 16 lanes empty). Same operations lane by lane, same bits. */
enum { PAIR_OUTPUT_TILES = 8, PAIR_INPUT_WIDTH = 14 };

/* Lane L's column of tiles in its row (L, or L - tw in the second row),
 * times two, plus 16 in the second row: where the second operand of a
 * two-row permutation starts. */
__attribute__((target("avx512f"))) static inline __m512i
pair_columns(int64_t tw) {
  const __m512i iota =
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i twv = _mm512_set1_epi32((int)tw);
  __mmask16 second = _mm512_cmpge_epi32_mask(iota, twv);
  __m512i q = _mm512_mask_sub_epi32(iota, second, iota, twv);
  __m512i twice = _mm512_slli_epi32(q, 1);
  return _mm512_mask_add_epi32(twice, second, twice, _mm512_set1_epi32(16));
}

/* V of one plane at most PAIR_INPUT_WIDTH wide, straight from the plane:
 * a plane row is loaded into lanes [0, w) (plane column j in lane j,
 * padded column j + 1; lanes from w on zero), so tile q's padded columns
 * 2q .. 2q + 3 are lanes 2q - 1 .. 2q + 2 (the first a zero for q = 0,
 * the last at most lane 2 tw <= 14). Two rows' permutations pick them for
 * tile rows ty (rows 2 ty - 1 ..) and ty + 1 (rows 2 ty + 1 ..). The
 * padding's lane -1 needs no mask: a permutation reads its index modulo
 * 32, so -1 and 16 - 1 pick lane 15 of the other row, zero since w < 16. */
__attribute__((target("avx512f"))) static void
input_pairs_avx512(const float *plane, int64_t h, int64_t w, float *dst,
                   int64_t stride) {
  int64_t tw = (w + 1) / 2, th = (h + 1) / 2;
  const __m512i one = _mm512_set1_epi32(1), cols = pair_columns(tw);
  const __m512i at0 = _mm512_sub_epi32(cols, one),
                at2 = _mm512_add_epi32(cols, one);
  const __m512i at3 = _mm512_add_epi32(at2, one);
  const __mmask16 row_lanes = lanes16(w);
  for (int64_t ty = 0; ty < th; ty += 2) {
    __m512 rows[6];
    for (int q = 0; q < 6; q++) {
      int64_t i = 2 * ty - 1 + q;
      rows[q] = i >= 0 && i < h
                    ? _mm512_maskz_loadu_ps(row_lanes, plane + i * w)
                    : _mm512_setzero_ps();
    }
    __m512 e[4], o[4], e1[4], o1[4];
    for (int r = 0; r < 4; r++) {
      e[r] = _mm512_permutex2var_ps(rows[r], at0, rows[r + 2]);
      o[r] = _mm512_permutex2var_ps(rows[r], cols, rows[r + 2]);
      e1[r] = _mm512_permutex2var_ps(rows[r], at2, rows[r + 2]);
      o1[r] = _mm512_permutex2var_ps(rows[r], at3, rows[r + 2]);
    }
    store_patches16(e, o, e1, o1, lanes16((ty + 1 < th ? 2 : 1) * tw),
                    dst + ty * tw, stride);
  }
}

/* output_plane_avx512 for planes of at most PAIR_OUTPUT_TILES tiles a
 * row. A pooled pair of rows is stored at once (its lanes packed first
 * where w is odd: the ragged tile of each row is in no window); without
 * a pool, each output row's two columns of tiles are interleaved from
 * the lanes of its row of tiles. */
__attribute__((target("avx512f"))) static void
output_pairs_avx512(const float *src, int64_t stride, int64_t h, int64_t w,
                    const plane_finish *f, float *dst) {
  int64_t tw = (w + 1) / 2, th = f->pool != 0 ? h / 2 : (h + 1) / 2;
  /* lane 2q from o[.][0], 2q + 1 from o[.][1], of tile q of row j */
  const __m512i iota =
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i half = _mm512_srli_epi32(iota, 1);
  const __m512i from_second =
      _mm512_slli_epi32(_mm512_and_si512(iota, _mm512_set1_epi32(1)), 4);
  const __m512i interleave[2] = {
      _mm512_add_epi32(half, from_second),
      _mm512_add_epi32(_mm512_add_epi32(half, from_second),
                       _mm512_set1_epi32((int)tw))};
  for (int64_t ty = 0; ty < th; ty += 2) {
    int64_t rows = ty + 1 < th ? 2 : 1;
    __m512 o[2][2];
    tiles16(src + ty * tw, stride, lanes16(rows * tw), f, o);
    if (f->pool != 0) {
      int64_t pw = w / 2;
      __m512 v = window16(f->pool, o);
      if (pw < tw)
        v = _mm512_maskz_compress_ps(
            (__mmask16)(lanes16(pw) | (rows == 2 ? lanes16(pw) << tw : 0)), v);
      _mm512_mask_storeu_ps(dst + ty * pw, lanes16(rows * pw), v);
      continue;
    }
    for (int64_t j = 0; j < rows; j++)
      for (int64_t r = 0; r < 2 && 2 * (ty + j) + r < h; r++)
        _mm512_mask_storeu_ps(
            dst + (2 * (ty + j) + r) * w, lanes16(w),
            _mm512_permutex2var_ps(o[r][0], interleave[j], o[r][1]));
  }
}

/* The same with AVX2, 8 tiles at a time, for CPUs without AVX-512:
 * lanes [0, count) of a mask for the masked loads and stores. */
__attribute__((target("avx2"))) static inline __m256i lanes8(int64_t count) {
  int32_t c = count < 0 ? 0 : count > 8 ? 8 : (int32_t)count;
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(c),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* The even (odd) lanes of a and b in order: a0 a2 .. a6 b0 .. b6. */
__attribute__((target("avx2"))) static inline __m256 evens8(__m256 a,
                                                            __m256 b) {
  __m256 s = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
  return _mm256_castpd_ps(
      _mm256_permute4x64_pd(_mm256_castps_pd(s), _MM_SHUFFLE(3, 1, 2, 0)));
}

__attribute__((target("avx2"))) static inline __m256 odds8(__m256 a, __m256 b) {
  __m256 s = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
  return _mm256_castpd_ps(
      _mm256_permute4x64_pd(_mm256_castps_pd(s), _MM_SHUFFLE(3, 1, 2, 0)));
}

__attribute__((target("avx2"))) static inline void rows_bt8(__m256 d[4]) {
  __m256 t0 = _mm256_sub_ps(d[0], d[2]), t1 = _mm256_add_ps(d[1], d[2]);
  __m256 t2 = _mm256_sub_ps(d[2], d[1]), t3 = _mm256_sub_ps(d[1], d[3]);
  d[0] = t0;
  d[1] = t1;
  d[2] = t2;
  d[3] = t3;
}

__attribute__((target("avx2"))) static void
input_rows_avx2(const float *band, int64_t pw, int64_t tile_rows, int64_t tw,
                float *dst, int64_t stride) {
  for (int64_t ty = 0; ty < tile_rows; ty++)
    for (int64_t k = 0; k < tw; k += 8) {
      __m256 e[4], o[4], e1[4], o1[4];
      for (int r = 0; r < 4; r++) {
        const float *p = band + (2 * ty + r) * pw + 2 * k;
        __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
        __m256 c = _mm256_loadu_ps(p + 2), d = _mm256_loadu_ps(p + 10);
        e[r] = evens8(a, b);
        o[r] = odds8(a, b);
        e1[r] = evens8(c, d);
        o1[r] = odds8(c, d);
      }
      rows_bt8(e);
      rows_bt8(o);
      rows_bt8(e1);
      rows_bt8(o1);
      __m256i out = lanes8(tw - k);
      float *at = dst + ty * tw + k;
      for (int r = 0; r < 4; r++) {
        float *row = at + (int64_t)4 * r * stride;
        _mm256_maskstore_ps(row, out, _mm256_sub_ps(e[r], e1[r]));
        _mm256_maskstore_ps(row + stride, out, _mm256_add_ps(o[r], e1[r]));
        _mm256_maskstore_ps(row + 2 * stride, out, _mm256_sub_ps(e1[r], o[r]));
        _mm256_maskstore_ps(row + 3 * stride, out, _mm256_sub_ps(o[r], o1[r]));
      }
    }
}

__attribute__((target("avx2"))) static inline __m256
finish8(const plane_finish *f, __m256 v) {
  if (!f->add)
    return v;
  const __m256 zero = _mm256_setzero_ps();
  v = _mm256_add_ps(v, _mm256_set1_ps(f->bias));
  if (!f->relu)
    return v;
  return _mm256_blendv_ps(v, zero, _mm256_cmp_ps(v, zero, _CMP_LE_OQ));
}

__attribute__((target("avx2"))) static inline __m256 pick8(int pool, __m256 w,
                                                           __m256 x) {
  __m256 better = pool > 0 ? _mm256_cmp_ps(x, w, _CMP_GT_OQ)
                           : _mm256_cmp_ps(x, w, _CMP_LT_OQ);
  __m256 w_nan = _mm256_cmp_ps(w, w, _CMP_UNORD_Q);
  __m256 x_nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
  return _mm256_blendv_ps(w, x,
                          _mm256_andnot_ps(w_nan, _mm256_or_ps(x_nan, better)));
}

__attribute__((target("avx2"))) static void
output_plane_avx2(const float *src, int64_t stride, int64_t h, int64_t w,
                  const plane_finish *f, float *dst) {
  int64_t tw = (w + 1) / 2, th = f->pool != 0 ? h / 2 : (h + 1) / 2;
  for (int64_t ty = 0; ty < th; ty++)
    for (int64_t k = 0; k < tw; k += 8) {
      int64_t count = tw - k < 8 ? tw - k : 8;
      __m256i in = lanes8(count);
      __m256 mx[16], t[2][4], o[2][2];
      for (int xi = 0; xi < 16; xi++) {
        const float *p = src + xi * stride + ty * tw + k;
        mx[xi] = count == 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, in);
      }
      for (int q = 0; q < 4; q++) {
        t[0][q] = _mm256_add_ps(_mm256_add_ps(mx[q], mx[4 + q]), mx[8 + q]);
        t[1][q] =
            _mm256_sub_ps(_mm256_sub_ps(mx[4 + q], mx[8 + q]), mx[12 + q]);
      }
      for (int r = 0; r < 2; r++) {
        o[r][0] =
            finish8(f, _mm256_add_ps(_mm256_add_ps(t[r][0], t[r][1]), t[r][2]));
        o[r][1] =
            finish8(f, _mm256_sub_ps(_mm256_sub_ps(t[r][1], t[r][2]), t[r][3]));
      }
      if (f->pool != 0) {
        int64_t pw = w / 2, windows = pw - k < count ? pw - k : count;
        __m256 top = pick8(f->pool, o[0][0], o[0][1]);
        __m256 v = pick8(f->pool, pick8(f->pool, top, o[1][0]), o[1][1]);
        _mm256_maskstore_ps(dst + ty * pw + k, lanes8(windows), v);
        continue;
      }
      int64_t cols = w - 2 * k < 2 * count ? w - 2 * k : 2 * count;
      for (int64_t r = 0; r < 2 && 2 * ty + r < h; r++) {
        __m256 lo = _mm256_unpacklo_ps(o[r][0], o[r][1]);
        __m256 hi = _mm256_unpackhi_ps(o[r][0], o[r][1]);
        float *row = dst + (2 * ty + r) * w + 2 * k;
        _mm256_maskstore_ps(row, lanes8(cols),
                            _mm256_permute2f128_ps(lo, hi, 0x20));
        if (cols > 8)
          _mm256_maskstore_ps(row + 8, lanes8(cols - 8),
                              _mm256_permute2f128_ps(lo, hi, 0x31));
      }
    }
}
#endif

/* Which transforms run: AVX-512 where the CPU has it, else AVX2, else the
 * plain loops. Internal tests force the plain or the AVX2 ones to check
 * them on the same machine (layer.h). */
typedef enum {
  TRANSFORMS_PLAIN,
  TRANSFORMS_AVX2,
  TRANSFORMS_AVX512
} transforms_kind;

void nnlib__winograd_force_plain(bool on) { plain_forced = on; }

void nnlib__winograd_force_avx2(bool on) { avx2_forced = on; }

static transforms_kind transforms_for_cpu(void) {
#ifdef WINOGRAD_VECTORS
  if (plain_forced)
    return TRANSFORMS_PLAIN;
  if (!avx2_forced && __builtin_cpu_supports("avx512f"))
    return TRANSFORMS_AVX512;
  if (__builtin_cpu_supports("avx2"))
    return TRANSFORMS_AVX2;
#endif
  return TRANSFORMS_PLAIN;
}

#ifdef WINOGRAD_VECTORS
/* V of one plane through a band, band rows of at most tile_rows rows of
 * tiles at a time. */
static void input_plane_banded(transforms_kind kind, const float *plane,
                               int64_t h, int64_t w, float *dst, int64_t stride,
                               float *band, int64_t tile_rows) {
  int64_t tw = (w + 1) / 2, th = (h + 1) / 2;
  int64_t pw = band_width(w, kind == TRANSFORMS_AVX512 ? 16 : 8);
  for (int64_t t0 = 0; t0 < th; t0 += tile_rows) {
    int64_t count = th - t0 < tile_rows ? th - t0 : tile_rows;
    fill_band(plane, h, w, 2 * t0, 2 * count + 2, pw, band);
    if (kind == TRANSFORMS_AVX512)
      input_rows_avx512(band, pw, count, tw, dst + t0 * tw, stride);
    else
      input_rows_avx2(band, pw, count, tw, dst + t0 * tw, stride);
  }
}

/* nnlib__winograd_input with the vector transforms (two rows of tiles to
 * a vector from the plane itself where AVX-512 and the width allow, else
 * through a band); false (nothing done) where a band cannot hold four
 * padded rows of the plane. */
static bool input_banded(const nnlib__winograd *g, const float *x, int64_t m,
                         float *v, int64_t c_begin, int64_t c_end,
                         transforms_kind kind) {
  int64_t tw = (g->w + 1) / 2, th = (g->h + 1) / 2, n = m * th * tw;
  int64_t stride = g->c * n, plane = g->h * g->w;
  if (kind == TRANSFORMS_AVX512 && g->w <= PAIR_INPUT_WIDTH) {
    for (int64_t c = c_begin; c < c_end; c++)
      for (int64_t s = 0; s < m; s++)
        input_pairs_avx512(x + (s * g->c + c) * plane, g->h, g->w,
                           v + c * n + s * th * tw, stride);
    return true;
  }
  int64_t tile_rows = band_tile_rows(g->w, kind == TRANSFORMS_AVX512 ? 16 : 8);
  if (tile_rows == 0)
    return false;
  float band[BAND_FLOATS];
  memset(band, 0, sizeof band); /* the padding, once */
  for (int64_t c = c_begin; c < c_end; c++)
    for (int64_t s = 0; s < m; s++)
      input_plane_banded(kind, x + (s * g->c + c) * plane, g->h, g->w,
                         v + c * n + s * th * tw, stride, band, tile_rows);
  return true;
}
#endif

/* V [16, C, N] for input channels [c_begin, c_end) of m samples x [m, C,
 * h, w], N = m tiles(h, w), tile column s tiles + ty tw + tx. */
void nnlib__winograd_input(const nnlib__winograd *g, const float *x, int64_t m,
                           float *v, int64_t c_begin, int64_t c_end) {
  int64_t tw = (g->w + 1) / 2, th = (g->h + 1) / 2, n = m * th * tw;
  int64_t stride = g->c * n, plane = g->h * g->w;
#ifdef WINOGRAD_VECTORS
  transforms_kind kind = transforms_for_cpu();
  if (kind != TRANSFORMS_PLAIN &&
      input_banded(g, x, m, v, c_begin, c_end, kind))
    return;
#endif
  for (int64_t c = c_begin; c < c_end; c++)
    for (int64_t s = 0; s < m; s++)
      input_plane_plain(x + (s * g->c + c) * plane, g->h, g->w,
                        v + c * n + s * th * tw, stride);
}

/* Output channels [co_begin, co_end) from M [16, Co, N]: Z [Co, m, h w]
 * (f NULL), or the output pass's y [m, Co, ...] (layer.h). */
void nnlib__winograd_output(const nnlib__winograd *g, const float *mx,
                            int64_t m, const nnlib__winograd_finish *f,
                            float *out, int64_t co_begin, int64_t co_end) {
  int64_t tw = (g->w + 1) / 2, th = (g->h + 1) / 2, n = m * th * tw;
  int64_t stride = g->co * n;
  int64_t plane =
      f != NULL && f->pool != 0 ? (g->h / 2) * (g->w / 2) : g->h * g->w;
  transforms_kind kind = transforms_for_cpu();
  (void)kind; /* plain loops only where the vectors are not compiled */
  for (int64_t co = co_begin; co < co_end; co++)
    for (int64_t s = 0; s < m; s++) {
      const float *src = mx + co * n + s * th * tw;
      plane_finish pf = {false, false, 0, 0.0f};
      float *dst = out + (co * m + s) * plane;
      if (f != NULL) {
        pf = (plane_finish){true, f->relu, f->pool,
                            f->bias != NULL ? f->bias[co] : 0.0f};
        dst = out + (s * g->co + co) * plane;
      }
#ifdef WINOGRAD_VECTORS
      if (kind == TRANSFORMS_AVX512 && tw <= PAIR_OUTPUT_TILES) {
        output_pairs_avx512(src, stride, g->h, g->w, &pf, dst);
        continue;
      }
      if (kind == TRANSFORMS_AVX512) {
        output_plane_avx512(src, stride, g->h, g->w, &pf, dst);
        continue;
      }
      if (kind == TRANSFORMS_AVX2) {
        output_plane_avx2(src, stride, g->h, g->w, &pf, dst);
        continue;
      }
#endif
      output_plane_plain(src, stride, g->h, g->w, &pf, dst);
    }
}
