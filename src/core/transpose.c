/* transpose.c - the tiled 2-D transpose that the transpose layer's copies
 * and the dense layer's transposed products (dense.c) share.
 *
 * Tiles of TILE_J source rows by TILE_I source columns: the destination
 * is written TILE_I rows at a time, each a run of TILE_J contiguous
 * floats, so a destination whose rows are 4 KiB apart does not pile its
 * lines into a few cache sets (square 32 x 32 tiles ran at 0.6 ns a float
 * on a 1024 x 64 source, these at 0.2). Inside a tile, where the CPU has
 * AVX2, whole 8 x 8 blocks go through registers (eight row loads, the
 * unpack/shuffle/permute network, eight row stores) instead of one float
 * at a time. Both copy values exactly, so the choice never changes a bit. */
#include "core/core.h"

#include <stdbool.h>

#define TILE_J 256 /* src rows */
#define TILE_I 8   /* src columns: dst rows */

/* dst[j + i ds] = src[j ss + i], j in [j0, j1), i in [i0, i1) */
static void transpose_plain(const float *src, float *dst, int64_t j0,
                            int64_t j1, int64_t i0, int64_t i1, int64_t ss,
                            int64_t ds) {
  for (int64_t i = i0; i < i1; i++)
    for (int64_t j = j0; j < j1; j++)
      dst[j + i * ds] = src[j * ss + i];
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define TRANSPOSE_AVX2 1

/* One 8 x 8 block: rows of src (ss apart) become rows of dst (ds apart). */
__attribute__((target("avx2"))) static inline void
block8(const float *src, float *dst, int64_t ss, int64_t ds) {
  __m256 r[8], t[8];
  for (int k = 0; k < 8; k++)
    r[k] = _mm256_loadu_ps(src + k * ss);
  for (int k = 0; k < 8; k += 2) { /* pairs of rows interleaved */
    t[k] = _mm256_unpacklo_ps(r[k], r[k + 1]);
    t[k + 1] = _mm256_unpackhi_ps(r[k], r[k + 1]);
  }
  for (int k = 0; k < 8; k += 4) { /* then pairs of pairs */
    r[k] = _mm256_shuffle_ps(t[k], t[k + 2], 0x44);
    r[k + 1] = _mm256_shuffle_ps(t[k], t[k + 2], 0xEE);
    r[k + 2] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0x44);
    r[k + 3] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0xEE);
  }
  for (int k = 0; k < 4; k++) { /* then the 128-bit halves */
    _mm256_storeu_ps(dst + k * ds, _mm256_permute2f128_ps(r[k], r[k + 4], 0x20));
    _mm256_storeu_ps(dst + (k + 4) * ds,
                     _mm256_permute2f128_ps(r[k], r[k + 4], 0x31));
  }
}

/* A tile: whole 8 x 8 blocks in registers, the ragged edges plainly. */
__attribute__((target("avx2"))) static void
tile_avx2(const float *src, float *dst, int64_t j0, int64_t j1, int64_t i0,
          int64_t i1, int64_t ss, int64_t ds) {
  int64_t j8 = j0 + (j1 - j0) / 8 * 8, i8 = i0 + (i1 - i0) / 8 * 8;
  for (int64_t j = j0; j < j8; j += 8)
    for (int64_t i = i0; i < i8; i += 8)
      block8(src + j * ss + i, dst + j + i * ds, ss, ds);
  transpose_plain(src, dst, j8, j1, i0, i1, ss, ds);
  transpose_plain(src, dst, j0, j8, i8, i1, ss, ds);
}
#endif

/* Internal tests switch the blocks off to check the plain loop on the
 * same machine (core.h). */
static bool plain_forced;

void nnlib__transpose_force_plain(bool on) { plain_forced = on; }

void nnlib__transpose_tiles(const float *src, float *dst, int64_t rows,
                            int64_t cols, int64_t ss, int64_t ds) {
#ifdef TRANSPOSE_AVX2
  bool blocks = !plain_forced && __builtin_cpu_supports("avx2");
#else
  bool blocks = false;
#endif
  for (int64_t i0 = 0; i0 < cols; i0 += TILE_I) {
    int64_t i1 = i0 + TILE_I < cols ? i0 + TILE_I : cols;
    for (int64_t j0 = 0; j0 < rows; j0 += TILE_J) {
      int64_t j1 = j0 + TILE_J < rows ? j0 + TILE_J : rows;
#ifdef TRANSPOSE_AVX2
      if (blocks) {
        tile_avx2(src, dst, j0, j1, i0, i1, ss, ds);
        continue;
      }
#endif
      (void)blocks;
      transpose_plain(src, dst, j0, j1, i0, i1, ss, ds);
    }
  }
}
