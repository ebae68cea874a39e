/* serialize_codec.c - what model files add to the little-endian values of
 * src/core/bytes.c: raw bytes, section tags and the CRC-32 of the
 * container. */
#include "nnlib_internal.h"
#include "serialize_format.h"

#include <string.h>
#include <zlib.h>

void nnlib__put_bytes(nnlib__writer *w, const void *data, size_t size) {
  if (w->data != NULL && w->size <= w->capacity &&
      size <= w->capacity - w->size && size > 0)
    memcpy(w->data + w->size, data, size);
  w->size += size;
}

void nnlib__put_tag(nnlib__writer *w, const char tag[4]) {
  nnlib__put_bytes(w, tag, 4);
}

/* zlib's crc32 takes a 32-bit length: feed it in chunks. */
uint32_t nnlib__crc32(const unsigned char *data, size_t size) {
  uLong crc = crc32(0L, Z_NULL, 0);
  while (size > 0) {
    uInt chunk = size > (1u << 30) ? (1u << 30) : (uInt)size;
    crc = crc32(crc, data, chunk);
    data += chunk;
    size -= chunk;
  }
  return (uint32_t)crc;
}
