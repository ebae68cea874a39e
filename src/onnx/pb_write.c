/* pb_write.c - the protobuf writer of the ONNX exporter (pb_write.h). */
#include "onnx/pb_write.h"

#include <string.h>

enum { WIRE_VARINT = 0, WIRE_LEN = 2, WIRE_FIXED32 = 5 };
#define VARINT_MAX 10 /* bytes of a 64-bit varint */

void pb_init(pb_writer *w) {
  memset(w, 0, sizeof *w);
  w->status = NNLIB_OK;
}

void pb_release(pb_writer *w) {
  nnlib__free(w->data);
  w->data = NULL;
  w->size = w->capacity = 0;
}

nnlib_status pb_status(const pb_writer *w) { return w->status; }

static void fail(pb_writer *w, nnlib_status st) {
  if (w->status == NNLIB_OK)
    w->status = st;
}

/* Room for `more` bytes after size; doubles the capacity (from 4 KiB). */
static bool grow(pb_writer *w, size_t more) {
  if (w->status != NNLIB_OK)
    return false;
  if (more <= w->capacity - w->size)
    return true;
  if (more > SIZE_MAX / 2 - w->size) {
    fail(w, nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                         "ONNX export: the file would exceed %zu bytes",
                         SIZE_MAX / 2));
    return false;
  }
  size_t capacity = w->capacity > 0 ? w->capacity : 4096;
  while (capacity - w->size < more)
    capacity *= 2;
  unsigned char *data = nnlib__alloc(capacity);
  if (data == NULL) {
    fail(w, nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                         "ONNX export: out of memory growing the file "
                         "buffer to %zu bytes",
                         capacity));
    return false;
  }
  if (w->size > 0)
    memcpy(data, w->data, w->size);
  nnlib__free(w->data);
  w->data = data;
  w->capacity = capacity;
  return true;
}

static size_t varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

/* Writes v at p (which has room); returns the bytes written. */
static size_t varint_at(unsigned char *p, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    p[n++] = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  p[n++] = (unsigned char)v;
  return n;
}

static void varint(pb_writer *w, uint64_t v) {
  if (grow(w, VARINT_MAX))
    w->size += varint_at(w->data + w->size, v);
}

static void tag(pb_writer *w, uint32_t field, unsigned wire) {
  varint(w, ((uint64_t)field << 3) | wire);
}

void pb_varint_field(pb_writer *w, uint32_t field, uint64_t value) {
  tag(w, field, WIRE_VARINT);
  varint(w, value);
}

/* int64 fields are varints of the two's complement (10 bytes when < 0). */
void pb_int64_field(pb_writer *w, uint32_t field, int64_t value) {
  pb_varint_field(w, field, (uint64_t)value);
}

void pb_float_field(pb_writer *w, uint32_t field, float value) {
  tag(w, field, WIRE_FIXED32);
  if (grow(w, 4)) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    for (int i = 0; i < 4; i++)
      w->data[w->size + (size_t)i] = (unsigned char)(bits >> (8 * i));
    w->size += 4;
  }
}

unsigned char *pb_reserve_bytes_field(pb_writer *w, uint32_t field,
                                      size_t length) {
  tag(w, field, WIRE_LEN);
  varint(w, length);
  if (!grow(w, length))
    return NULL;
  unsigned char *p = w->data + w->size;
  w->size += length;
  return p;
}

void pb_bytes_field(pb_writer *w, uint32_t field, const void *bytes,
                    size_t length) {
  unsigned char *p = pb_reserve_bytes_field(w, field, length);
  if (p != NULL && length > 0)
    memcpy(p, bytes, length);
}

void pb_string_field(pb_writer *w, uint32_t field, const char *text) {
  pb_bytes_field(w, field, text, strlen(text));
}

void pb_begin(pb_writer *w, uint32_t field) {
  tag(w, field, WIRE_LEN);
  if (w->depth == PB_MAX_DEPTH) {
    fail(w, nnlib__error(NNLIB_ERR_INTERNAL,
                         "ONNX export: messages nest deeper than %d",
                         PB_MAX_DEPTH));
    return;
  }
  w->open[w->depth++] = w->size;
}

/* The message's bytes [start, size) move up by the size of their length. */
void pb_end(pb_writer *w) {
  if (w->depth == 0) {
    fail(w, nnlib__error(NNLIB_ERR_INTERNAL,
                         "ONNX export: pb_end without pb_begin"));
    return;
  }
  size_t start = w->open[--w->depth];
  if (w->status != NNLIB_OK)
    return;
  size_t length = w->size - start;
  size_t shift = varint_size(length);
  if (!grow(w, shift))
    return;
  memmove(w->data + start + shift, w->data + start, length);
  varint_at(w->data + start, length);
  w->size += shift;
}

void pb_put_f32le(unsigned char *p, float v) {
  uint32_t bits;
  memcpy(&bits, &v, sizeof bits);
  for (int i = 0; i < 4; i++)
    p[i] = (unsigned char)(bits >> (8 * i));
}

void pb_put_i64le(unsigned char *p, int64_t v) {
  uint64_t bits = (uint64_t)v;
  for (int i = 0; i < 8; i++)
    p[i] = (unsigned char)(bits >> (8 * i));
}
