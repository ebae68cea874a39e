/* serialize_format.h - what the model-file writer, reader and entry points
 * share: the constants of docs/FILE_FORMAT.md and the parsed views of a
 * file. Private to src/model/serialize*.c. */
#ifndef NNLIB_SERIALIZE_FORMAT_H
#define NNLIB_SERIALIZE_FORMAT_H

#include "nnlib_internal.h"

/* The format version this library writes and the newest it reads. Bump it
 * for any change an older reader would misread; new layer kinds and new
 * layer configs need no bump (see nnlib__layer_codec). */
#define NNLIB__FILE_VERSION 1u

#define NNLIB__FILE_MAGIC "NNLIBMDL"
#define NNLIB__MAGIC_SIZE 8
/* magic, u32 version, u32 section count, u64 file size */
#define NNLIB__PREAMBLE_SIZE 24
/* tag, u64 payload length ... u32 crc */
#define NNLIB__SECTION_OVERHEAD 16
#define NNLIB__TRAILER_SIZE 4

/* Sections, in the order they appear. */
#define NNLIB__TAG_HEAD "HEAD"
#define NNLIB__TAG_ARCH "ARCH"
#define NNLIB__TAG_PARM "PARM"
#define NNLIB__TAG_OPTM "OPTM"

/* Caps that keep a hostile file from asking for absurd work or memory
 * before anything is checked against the bytes actually present. */
#define NNLIB__FILE_MAX_LAYERS 65536u
#define NNLIB__FILE_MAX_CONFIG 65536u
/* activations + workspaces a loaded model may plan, in floats (2^40) */
#define NNLIB__FILE_MAX_PLAN_FLOATS ((int64_t)1 << 40)

/* Optimizer state present: bit 0 state1, bit 1 state2 (nnlib_optimizer). */
#define NNLIB__STATE1 1u
#define NNLIB__STATE2 2u

void nnlib__put_tag(nnlib__writer *w, const char tag[4]);
uint32_t nnlib__crc32(const unsigned char *data, size_t size);

/* Encodes a compiled model (every layer has a codec) into w; total is the
 * file size, known from a first counting pass (0 in that pass). */
void nnlib__model_encode(const nnlib_model *m, bool with_optimizer,
                         uint64_t total, nnlib__writer *w);

typedef struct nnlib__section {
  const unsigned char *payload;
  size_t length;
} nnlib__section;

/* The container checked: magic, version, sizes, checksums, section order. */
typedef struct nnlib__file_view {
  uint32_t version;
  uint64_t file_size;
  nnlib__section head, arch, parm, optm;
  bool has_optm;
} nnlib__file_view;

/* The HEAD section, every value range-checked. */
typedef struct nnlib__file_head {
  uint32_t library_version;
  nnlib_loss loss;
  nnlib__shape input;
  int64_t max_batch;
  uint64_t seed;
  nnlib__rng rng;
  uint32_t layer_count;
  int64_t param_total;
} nnlib__file_head;

/* The fixed part of the OPTM section. */
typedef struct nnlib__file_optm {
  nnlib_optimizer_options options;
  int64_t step_count;
  int64_t state_size;
  uint32_t state_mask;
  const unsigned char *state; /* the state floats that follow */
} nnlib__file_optm;

/* On NNLIB_ERR_UNSUPPORTED_VERSION view->version is still set. */
nnlib_status nnlib__file_view_parse(const unsigned char *data, size_t size,
                                    nnlib__file_view *view);
nnlib_status nnlib__file_head_parse(const nnlib__file_view *view,
                                    nnlib__file_head *head);
nnlib_status nnlib__file_optm_parse(const nnlib__file_view *view,
                                    const nnlib__file_head *head,
                                    nnlib__file_optm *optm);
/* Checks every section, then builds and compiles the model. */
nnlib_status nnlib__model_decode(const unsigned char *data, size_t size,
                                 nnlib_model **out);

#endif
