/* fuzz_text: the text data source (nnlib_text_from_bytes, _sample,
 * _window_count, _window) on arbitrary bytes.
 *
 * Input: four header bytes, then the text. Byte 0 picks the validation
 * fraction (byte mod 10, in tenths: 0 .. 0.9), byte 1 the seed, byte 2 the
 * batch B (1 .. 4) and the window to start from, byte 3 the context T
 * (1 .. 16). Checked: the split sizes, that sampling succeeds exactly when
 * a split holds T + 1 bytes, that every sampled row is T + 1 consecutive
 * bytes of its split (found by search) with y one byte after x, that a
 * second text of the same seed draws the same rows, and that windows are
 * refused exactly past the end and otherwise read bytes i T onwards. */
#include "fuzz_common.h"

enum { HEADER_BYTES = 4 };

static nnlib_tensor *fuzz_ids(int64_t rows, int64_t cols) {
  nnlib_tensor *t = NULL;
  int64_t shape[2] = {rows, cols};
  nnlib_status st = nnlib_tensor_create_int32(&t, shape, 2);
  fuzz_expect(st);
  return st == NNLIB_OK ? t : NULL;
}

/* Whether w[0..len) occurs in hay[0..n). */
static bool occurs(const uint8_t *hay, int64_t n, const uint8_t *w,
                   int64_t len) {
  for (int64_t i = 0; i + len <= n; i++)
    if (memcmp(hay + i, w, (size_t)len) == 0)
      return true;
  return false;
}

/* Every row of x, y is a window of T + 1 bytes of `bytes`. */
static void check_rows(const nnlib_tensor *x, const nnlib_tensor *y,
                       const uint8_t *bytes, int64_t size) {
  int64_t B = nnlib_tensor_get_dim(x, 0), T = nnlib_tensor_get_dim(x, 1);
  const int32_t *xd = nnlib_tensor_get_data_int32_const(x);
  const int32_t *yd = nnlib_tensor_get_data_int32_const(y);
  uint8_t w[17];
  FUZZ_CHECK(T + 1 <= (int64_t)sizeof w);
  for (int64_t b = 0; b < B; b++) {
    for (int64_t t = 0; t < T; t++) {
      FUZZ_CHECK(xd[b * T + t] >= 0 && xd[b * T + t] <= 255);
      if (t + 1 < T)
        FUZZ_CHECK(yd[b * T + t] == xd[b * T + t + 1]);
      w[t] = (uint8_t)xd[b * T + t];
    }
    w[T] = (uint8_t)yd[b * T + T - 1];
    FUZZ_CHECK(occurs(bytes, size, w, T + 1));
  }
}

static void check_sample(nnlib_text *a, nnlib_text *b, nnlib_text_split split,
                         int64_t B, int64_t T) {
  nnlib_tensor *xa = fuzz_ids(B, T), *ya = fuzz_ids(B, T),
               *xb = fuzz_ids(B, T), *yb = fuzz_ids(B, T);
  if (xa != NULL && ya != NULL && xb != NULL && yb != NULL) {
    int64_t size = nnlib_text_get_size(a, split);
    nnlib_status st = nnlib_text_sample(a, split, xa, ya);
    fuzz_expect(st);
    FUZZ_CHECK((st == NNLIB_OK) == (size >= T + 1));
    FUZZ_CHECK(st == NNLIB_OK || st == NNLIB_ERR_TOO_LARGE);
    if (st == NNLIB_OK) {
      check_rows(xa, ya, nnlib_text_get_bytes(a, split), size);
      FUZZ_CHECK(nnlib_text_sample(b, split, xb, yb) == NNLIB_OK);
      FUZZ_CHECK(memcmp(nnlib_tensor_get_data_int32_const(xa),
                        nnlib_tensor_get_data_int32_const(xb),
                        (size_t)(B * T) * sizeof(int32_t)) == 0);
    }
  }
  nnlib_tensor_free(xa);
  nnlib_tensor_free(ya);
  nnlib_tensor_free(xb);
  nnlib_tensor_free(yb);
}

static void check_window(nnlib_text *t, nnlib_text_split split, int64_t B,
                         int64_t T, int64_t first) {
  nnlib_tensor *x = fuzz_ids(B, T), *y = fuzz_ids(B, T);
  if (x != NULL && y != NULL) {
    int64_t size = nnlib_text_get_size(t, split);
    int64_t count = nnlib_text_window_count(t, split, T);
    FUZZ_CHECK(count == (size >= 1 ? (size - 1) / T : 0));
    nnlib_status st = nnlib_text_window(t, split, first, x, y);
    fuzz_expect(st);
    if (size < T + 1)
      FUZZ_CHECK(st == NNLIB_ERR_TOO_LARGE);
    else
      FUZZ_CHECK(st == (first + B <= count ? NNLIB_OK
                                           : NNLIB_ERR_OUT_OF_RANGE));
    const uint8_t *bytes = nnlib_text_get_bytes(t, split);
    const int32_t *xd = nnlib_tensor_get_data_int32_const(x);
    const int32_t *yd = nnlib_tensor_get_data_int32_const(y);
    for (int64_t i = 0; st == NNLIB_OK && i < B * T; i++) {
      FUZZ_CHECK(xd[i] == bytes[first * T + i]);
      FUZZ_CHECK(yd[i] == bytes[first * T + i + 1]);
    }
  }
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < HEADER_BYTES)
    return 0;
  fuzz_begin();
  double fraction = (double)(data[0] % 10) / 10.0;
  uint64_t seed = data[1];
  int64_t B = 1 + (data[2] & 3), first = data[2] >> 2;
  int64_t T = 1 + (data[3] & 15);
  const uint8_t *bytes = data + HEADER_BYTES;
  size_t n = size - HEADER_BYTES;

  nnlib_text *a = NULL, *b = NULL;
  nnlib_status st = nnlib_text_from_bytes(&a, bytes, n, fraction, seed);
  fuzz_expect(st);
  FUZZ_CHECK((st == NNLIB_OK) == (a != NULL));
  if (st == NNLIB_OK) {
    st = nnlib_text_from_bytes(&b, bytes, n, fraction, seed);
    fuzz_expect(st);
  }
  if (st == NNLIB_OK) {
    int64_t valid = nnlib_text_get_size(a, NNLIB_TEXT_VALID);
    FUZZ_CHECK(valid == (int64_t)(fraction * (double)n));
    FUZZ_CHECK(nnlib_text_get_size(a, NNLIB_TEXT_TRAIN) + valid ==
               (int64_t)n);
    FUZZ_CHECK(n == 0 ||
               memcmp(nnlib_text_get_bytes(a, NNLIB_TEXT_TRAIN), bytes, n) ==
                   0);
    for (int s = 0; s < 2; s++) {
      nnlib_text_split split = s ? NNLIB_TEXT_VALID : NNLIB_TEXT_TRAIN;
      check_sample(a, b, split, B, T);
      check_window(a, split, B, T, first);
      check_window(a, split, 1, T, 0);
    }
  }
  nnlib_text_free(a);
  nnlib_text_free(b);
  fuzz_end();
  return 0;
}
