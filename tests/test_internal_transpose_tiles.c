/* nnlib__transpose_tiles (src/core/transpose.c): the AVX2 8 x 8 blocks and
 * the plain loop both against an index-by-index copy, exactly, on shapes
 * with ragged edges in both directions and on rows wider than the matrix
 * (leading dimensions above the extents), with the destination's padding
 * left as it was. */
#include "test_support.h"

#include "core/core.h"

#include <stdlib.h>

static void check_shape(int64_t rows, int64_t cols, int64_t ss, int64_t ds) {
  size_t src_floats = (size_t)(rows * ss), dst_floats = (size_t)(cols * ds);
  float *src = malloc(src_floats * sizeof(float));
  float *dst = malloc(dst_floats * sizeof(float));
  for (size_t i = 0; i < src_floats; i++)
    src[i] = (float)i + 0.5f;
  for (int plain = 0; plain <= 1; plain++) {
    for (size_t i = 0; i < dst_floats; i++)
      dst[i] = -1.0f;
    nnlib__transpose_force_plain(plain != 0);
    nnlib__transpose_tiles(src, dst, rows, cols, ss, ds);
    for (int64_t i = 0; i < cols; i++)
      for (int64_t j = 0; j < ds; j++) {
        float want = j < rows ? src[j * ss + i] : -1.0f; /* padding kept */
        if (dst[j + i * ds] != want)
          fail_msg("%lld x %lld (ss %lld, ds %lld, plain %d): dst[%lld][%lld] "
                   "is %g, want %g",
                   (long long)rows, (long long)cols, (long long)ss,
                   (long long)ds, plain, (long long)i, (long long)j,
                   (double)dst[j + i * ds], (double)want);
      }
  }
  nnlib__transpose_force_plain(false);
  free(src);
  free(dst);
}

static void test_shapes(void **state) {
  (void)state;
  static const int64_t shapes[][2] = {
      {1, 1},   {1, 9},    {9, 1},    {8, 8},    {7, 9},   {16, 24},
      {37, 29}, {256, 8},  {257, 9},  {300, 17}, {1000, 37}, {64, 1024},
      {1024, 64}, {513, 130}};
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
    int64_t r = shapes[s][0], c = shapes[s][1];
    check_shape(r, c, c, r);         /* compact */
    check_shape(r, c, c + 5, r + 3); /* rows wider than the matrix */
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_shapes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
