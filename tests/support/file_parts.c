/* file_parts.c - see file_parts.h. */
#include "file_parts.h"
#include "test_support.h"

#include <stdlib.h>
#include <string.h>

uint32_t ts_crc32_ieee(const unsigned char *p, size_t n) {
  uint32_t crc = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    crc ^= p[i];
    for (int k = 0; k < 8; k++)
      crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

uint32_t ts_rd32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

uint64_t ts_rd64(const unsigned char *p) {
  return (uint64_t)ts_rd32(p) | (uint64_t)ts_rd32(p + 4) << 32;
}

void ts_wr32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

void ts_wr64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

void ts_split_file(const unsigned char *d, size_t size, ts_file_parts *p) {
  memset(p, 0, sizeof *p);
  memcpy(p->preamble, d, TS_PREAMBLE);
  p->count = ts_rd32(d + 12);
  assert_true(p->count <= TS_MAX_SECTIONS);
  size_t pos = TS_PREAMBLE;
  for (size_t i = 0; i < p->count; i++) {
    memcpy(p->tag[i], d + pos, 4);
    p->length[i] = (size_t)ts_rd64(d + pos + 4);
    p->payload[i] = malloc(p->length[i] + 64);
    memcpy(p->payload[i], d + pos + 12, p->length[i]);
    pos += 16 + p->length[i];
  }
  assert_int_equal(pos + 4, size);
}

unsigned char *ts_join_file(const ts_file_parts *p, size_t *size) {
  size_t total = TS_PREAMBLE + 4;
  for (size_t i = 0; i < p->count; i++)
    total += 16 + p->length[i];
  unsigned char *d = malloc(total);
  memcpy(d, p->preamble, TS_PREAMBLE);
  ts_wr32(d + 12, (uint32_t)p->count);
  ts_wr64(d + 16, total);
  size_t pos = TS_PREAMBLE;
  for (size_t i = 0; i < p->count; i++) {
    memcpy(d + pos, p->tag[i], 4);
    ts_wr64(d + pos + 4, p->length[i]);
    memcpy(d + pos + 12, p->payload[i], p->length[i]);
    ts_wr32(d + pos + 12 + p->length[i],
            ts_crc32_ieee(d + pos, 12 + p->length[i]));
    pos += 16 + p->length[i];
  }
  ts_wr32(d + pos, ts_crc32_ieee(d, pos));
  *size = total;
  return d;
}

void ts_free_parts(ts_file_parts *p) {
  for (size_t i = 0; i < p->count; i++)
    free(p->payload[i]);
}

unsigned char *ts_first_config(ts_file_parts *p, uint32_t *kind,
                               uint32_t *length) {
  for (size_t k = 0; k < p->count; k++)
    if (memcmp(p->tag[k], "ARCH", 4) == 0) {
      *kind = ts_rd32(p->payload[k]);
      *length = ts_rd32(p->payload[k] + 4);
      return p->payload[k] + 8;
    }
  fail_msg("no ARCH section");
  return NULL;
}
