/* bytes.c - the little-endian values model files are built from, below
 * the layers (their codecs write their configs with them). Values are
 * encoded byte by byte with shifts, so the bytes are the same on every
 * host whatever its endianness or struct padding. */
#include "core/codec.h"

#include <string.h>

static void put_bytes_le(nnlib__writer *w, uint64_t v, size_t n) {
  if (w->data != NULL && w->size <= w->capacity &&
      n <= w->capacity - w->size)
    for (size_t i = 0; i < n; i++)
      w->data[w->size + i] = (unsigned char)(v >> (8 * i));
  w->size += n;
}

void nnlib__put_u32(nnlib__writer *w, uint32_t v) { put_bytes_le(w, v, 4); }
void nnlib__put_u64(nnlib__writer *w, uint64_t v) { put_bytes_le(w, v, 8); }

/* Two's complement: the conversion to uint64_t is defined modulo 2^64. */
void nnlib__put_i64(nnlib__writer *w, int64_t v) {
  put_bytes_le(w, (uint64_t)v, 8);
}

void nnlib__put_f32(nnlib__writer *w, float v) {
  uint32_t bits;
  memcpy(&bits, &v, sizeof bits);
  put_bytes_le(w, bits, 4);
}

static nnlib_status take(nnlib__reader *r, size_t n, uint64_t *v) {
  if (r->left < n)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: %s ends early (%zu more bytes needed, "
                        "%zu left)",
                        r->what ? r->what : "data", n, r->left);
  uint64_t x = 0;
  for (size_t i = 0; i < n; i++)
    x |= (uint64_t)r->p[i] << (8 * i);
  r->p += n;
  r->left -= n;
  *v = x;
  return NNLIB_OK;
}

nnlib_status nnlib__get_u32(nnlib__reader *r, uint32_t *v) {
  uint64_t x = 0;
  NNLIB_TRY(take(r, 4, &x));
  *v = (uint32_t)x;
  return NNLIB_OK;
}

nnlib_status nnlib__get_u64(nnlib__reader *r, uint64_t *v) {
  return take(r, 8, v);
}

/* Back from two's complement without relying on implementation-defined
 * unsigned-to-signed conversion. */
nnlib_status nnlib__get_i64(nnlib__reader *r, int64_t *v) {
  uint64_t x = 0;
  NNLIB_TRY(take(r, 8, &x));
  *v = x <= (uint64_t)INT64_MAX ? (int64_t)x
                                : -(int64_t)(~x) - 1;
  return NNLIB_OK;
}

nnlib_status nnlib__get_f32(nnlib__reader *r, float *v) {
  uint64_t x = 0;
  NNLIB_TRY(take(r, 4, &x));
  uint32_t bits = (uint32_t)x;
  memcpy(v, &bits, sizeof *v);
  return NNLIB_OK;
}
