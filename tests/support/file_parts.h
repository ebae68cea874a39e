/* file_parts.h - model files taken apart and put together again on the
 * test side, written independently of the library: little-endian fields, a
 * CRC-32 of zlib's polynomial computed bit by bit, and the container of
 * docs/FILE_FORMAT.md (preamble, then sections of tag, length, payload and
 * CRC, then the file's CRC). Crafted-file tests edit a payload and join the
 * file again with correct sizes and checksums. */
#ifndef NNLIB_TEST_FILE_PARTS_H
#define NNLIB_TEST_FILE_PARTS_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32 (IEEE, reflected 0xEDB88320). */
uint32_t ts_crc32_ieee(const unsigned char *p, size_t n);
uint32_t ts_rd32(const unsigned char *p);
uint64_t ts_rd64(const unsigned char *p);
void ts_wr32(unsigned char *p, uint32_t v);
void ts_wr64(unsigned char *p, uint64_t v);

enum { TS_PREAMBLE = 24, TS_MAX_SECTIONS = 5 };

/* A file taken apart: the preamble and each section's payload (copies,
 * free to edit and resize: each has 64 bytes of room to grow). */
typedef struct ts_file_parts {
  unsigned char preamble[TS_PREAMBLE];
  size_t count;
  char tag[TS_MAX_SECTIONS][4];
  unsigned char *payload[TS_MAX_SECTIONS];
  size_t length[TS_MAX_SECTIONS];
} ts_file_parts;

void ts_split_file(const unsigned char *d, size_t size, ts_file_parts *p);
/* Reassembles with correct sizes and checksums (malloc'd). */
unsigned char *ts_join_file(const ts_file_parts *p, size_t *size);
void ts_free_parts(ts_file_parts *p);
/* The first layer's config in the ARCH section (per layer u32 kind, u32
 * length, then the bytes): a pointer into p; fails the test without one. */
unsigned char *ts_first_config(ts_file_parts *p, uint32_t *kind,
                               uint32_t *length);

#endif
