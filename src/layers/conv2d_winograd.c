/* conv2d_winograd.c - the transforms of Winograd's minimal filtering
 * algorithm F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for
 * Convolutional Neural Networks", 2016), with which conv2d.c runs a 3x3
 * convolution at stride 1 and padding 1 in inference.
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

/* U [16, Co, C] = G g G^T for every (co, c), g = w[co, c] (3x3); in
 * double, rounded once. */
void nnlib__winograd_weights(const float *w, int64_t co_count, int64_t c_count,
                             float *u) {
  int64_t stride = co_count * c_count;
  for (int64_t i = 0; i < stride; i++) {
    const float *g = w + 9 * i;
    double t[4][3]; /* G g */
    for (int j = 0; j < 3; j++) {
      t[0][j] = g[j];
      t[1][j] = 0.5 * ((double)g[j] + g[3 + j] + g[6 + j]);
      t[2][j] = 0.5 * ((double)g[j] - g[3 + j] + g[6 + j]);
      t[3][j] = g[6 + j];
    }
    for (int r = 0; r < 4; r++) { /* (G g) G^T */
      float *row = u + 4 * r * stride + i;
      row[0] = (float)t[r][0];
      row[stride] = (float)(0.5 * (t[r][0] + t[r][1] + t[r][2]));
      row[2 * stride] = (float)(0.5 * (t[r][0] - t[r][1] + t[r][2]));
      row[3 * stride] = (float)t[r][2];
    }
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

/* V [16, C, N] for input channels [c_begin, c_end) of m samples x [m, C,
 * h, w], N = m tiles(h, w), tile column s tiles + ty tw + tx. */
void nnlib__winograd_input(const nnlib__winograd *g, const float *x, int64_t m,
                           float *v, int64_t c_begin, int64_t c_end) {
  int64_t tw = (g->w + 1) / 2, th = (g->h + 1) / 2, n = m * th * tw;
  int64_t stride = g->c * n, plane = g->h * g->w;
  for (int64_t c = c_begin; c < c_end; c++)
    for (int64_t s = 0; s < m; s++) {
      const float *src = x + (s * g->c + c) * plane;
      float *dst = v + c * n + s * th * tw;
      for (int64_t ty = 0; ty < th; ty++)
        for (int64_t tx = 0; tx < tw; tx++) {
          float d[4][4], t[16];
          load_patch(src, g->h, g->w, ty, tx, d);
          transform_patch(d, t);
          for (int xi = 0; xi < 16; xi++)
            dst[xi * stride + ty * tw + tx] = t[xi];
        }
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

/* Z [Co, m, h w] for output channels [co_begin, co_end) from M [16, Co,
 * N]; a ragged tile writes only its part inside the plane. */
void nnlib__winograd_output(const nnlib__winograd *g, const float *mx,
                            int64_t m, float *z, int64_t co_begin,
                            int64_t co_end) {
  int64_t tw = (g->w + 1) / 2, th = (g->h + 1) / 2, n = m * th * tw;
  int64_t stride = g->co * n, plane = g->h * g->w;
  for (int64_t co = co_begin; co < co_end; co++)
    for (int64_t s = 0; s < m; s++) {
      const float *src = mx + co * n + s * th * tw;
      float *dst = z + (co * m + s) * plane;
      for (int64_t ty = 0; ty < th; ty++)
        for (int64_t tx = 0; tx < tw; tx++) {
          float t[16], o[2][2];
          for (int xi = 0; xi < 16; xi++)
            t[xi] = src[xi * stride + ty * tw + tx];
          transform_tile(t, o);
          for (int64_t r = 0; r < 2 && 2 * ty + r < g->h; r++)
            for (int64_t q = 0; q < 2 && 2 * tx + q < g->w; q++)
              dst[(2 * ty + r) * g->w + 2 * tx + q] = o[r][q];
        }
    }
}
