/* codec.h - bytes and text of model files and model descriptions, below
 * the layers: the little-endian writer and reader (bytes.c), and text
 * appending plus the fields of one description item (text.c). The layer
 * codecs build on these; the model's parser and file code too. */
#ifndef NNLIB_CODEC_H
#define NNLIB_CODEC_H

#include "core/core.h"


/* Little-endian encoder for model files (docs/FILE_FORMAT.md). With
 * data == NULL it only counts, so a file is sized in one pass and written in
 * a second; writing past capacity is a bug and is caught by the caller
 * comparing the two passes' sizes. */
typedef struct nnlib__writer {
  unsigned char *data;
  size_t size;     /* bytes written (or counted) so far */
  size_t capacity; /* of data */
} nnlib__writer;
void nnlib__put_u32(nnlib__writer *w, uint32_t v);
void nnlib__put_u64(nnlib__writer *w, uint64_t v);
void nnlib__put_i64(nnlib__writer *w, int64_t v);
void nnlib__put_f32(nnlib__writer *w, float v); /* its IEEE-754 bits */

/* Decoder over a byte range whose length the container already checked.
 * Reading past its end is NNLIB_ERR_CORRUPT_FILE, with `what` (e.g. "layer 2
 * config") in the message. */
typedef struct nnlib__reader {
  const unsigned char *p;
  size_t left;
  const char *what;
} nnlib__reader;
nnlib_status nnlib__get_u32(nnlib__reader *r, uint32_t *v);
nnlib_status nnlib__get_u64(nnlib__reader *r, uint64_t *v);
nnlib_status nnlib__get_i64(nnlib__reader *r, int64_t *v);
nnlib_status nnlib__get_f32(nnlib__reader *r, float *v);

/* Text of nnlib_model_get_spec: appends like snprintf into buf[capacity]
 * (always NUL-terminated when capacity > 0) and counts the full length. */
typedef struct nnlib__text {
  char *buf;
  size_t capacity;
  size_t length;
} nnlib__text;
void nnlib__text_append(nnlib__text *t, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* The shortest decimal that reads back as exactly v, with '.' whatever the
 * C locale says. */
void nnlib__text_append_float(nnlib__text *t, float v);

/* One item of a model description, split at ':' into fields; fields[0] is
 * the item's name ("dense" in "dense:10:nobias"). */
#define NNLIB__SPEC_MAX_FIELDS 16
typedef struct nnlib__spec_field {
  const char *text; /* not NUL-terminated */
  size_t length;
} nnlib__spec_field;
typedef struct nnlib__spec_item {
  size_t index;  /* 1-based item number */
  size_t column; /* 1-based character position of the item in the text */
  const char *text;
  size_t length;
  size_t field_count;
  nnlib__spec_field fields[NNLIB__SPEC_MAX_FIELDS];
} nnlib__spec_item;
/* NNLIB_ERR_PARSE with a message naming the item and its position. */
nnlib_status nnlib__spec_error(const nnlib__spec_item *item, const char *fmt,
                               ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Characters of an item or field quoted in a message at most. */
#define NNLIB__SPEC_SHOWN 48
/* NNLIB_ERR_PARSE: argument `field` of the item, quoted, then `what`. */
nnlib_status nnlib__spec_field_error(const nnlib__spec_item *item,
                                     size_t field, const char *what);
#ifdef __clang_analyzer__ /* the contract shown, as core.h's nnlib__error */
#define nnlib__spec_error(item, ...)                                           \
  (nnlib__spec_error((item), __VA_ARGS__), NNLIB_ERR_PARSE)
#define nnlib__spec_field_error(item, field, what)                             \
  (nnlib__spec_field_error((item), (field), (what)), NNLIB_ERR_PARSE)
#endif
/* The item has min..max fields (name included). */
nnlib_status nnlib__spec_fields(const nnlib__spec_item *item, size_t min,
                                size_t max);
/* Field `field` as a decimal integer in [min, max]. */
nnlib_status nnlib__spec_int(const nnlib__spec_item *item, size_t field,
                             int64_t min, int64_t max, int64_t *out);
/* Field `field` as a finite float ("0.2", "1e-3"; '.' in every locale). */
nnlib_status nnlib__spec_float(const nnlib__spec_item *item, size_t field,
                               float *out);
bool nnlib__spec_field_is(const nnlib__spec_item *item, size_t field,
                          const char *word);

#endif /* NNLIB_CODEC_H */
