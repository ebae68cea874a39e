/* error.c - status strings and the thread-local message of the last failure. */
#include "core/core.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Fixed size so that reporting out-of-memory never allocates. */
static _Thread_local char last_message[512];

const char *nnlib_status_string(nnlib_status status) {
  switch (status) {
  case NNLIB_OK: return "ok";
  case NNLIB_ERR_INVALID_ARGUMENT: return "invalid argument";
  case NNLIB_ERR_OUT_OF_MEMORY: return "out of memory";
  case NNLIB_ERR_SHAPE_MISMATCH: return "shape mismatch";
  case NNLIB_ERR_UNSUPPORTED: return "unsupported";
  case NNLIB_ERR_WRONG_STATE: return "wrong state";
  case NNLIB_ERR_STRUCT_SIZE: return "options struct size not understood";
  case NNLIB_ERR_TOO_LARGE: return "size too large";
  case NNLIB_ERR_IO: return "input/output error";
  case NNLIB_ERR_CORRUPT_FILE: return "corrupt file";
  case NNLIB_ERR_UNSUPPORTED_VERSION: return "unsupported file version";
  case NNLIB_ERR_NUMERICAL: return "numerical error (NaN, Inf or float32 overflow)";
  case NNLIB_ERR_BAD_MAGIC: return "bad magic number";
  case NNLIB_ERR_CHECKSUM: return "checksum mismatch";
  case NNLIB_ERR_TRUNCATED: return "truncated file";
  case NNLIB_ERR_CANCELLED: return "cancelled by callback";
  case NNLIB_ERR_OUT_OF_RANGE: return "value out of range";
  case NNLIB_ERR_PARSE: return "parse error";
  case NNLIB_ERR_INTERNAL: return "internal error";
  case NNLIB_ERR_DTYPE: return "wrong element type";
  }
  return "unknown status";
}

const char *nnlib_last_error_message(void) { return last_message; }

void nnlib_clear_error(void) { last_message[0] = '\0'; }

/* the function itself, not core.h's analyzer-only macro over it */
nnlib_status(nnlib__error)(nnlib_status status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  /* clang 14's valist checker calls ap uninitialised right after its
   * va_start here (a false positive; the same lines in text.c draw none) */
  // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized)
  vsnprintf(last_message, sizeof last_message, fmt, ap);
  va_end(ap);
  return status;
}

nnlib_status nnlib__read_options(void *dst, size_t dst_size, const void *src,
                                 const char *what) {
  if (src == NULL)
    return NNLIB_OK;
  size_t given;
  memcpy(&given, src, sizeof given);
  if (given < sizeof(size_t))
    return nnlib__error(NNLIB_ERR_STRUCT_SIZE,
                        "%s: struct_size %zu is too small (call the "
                        "*_options_init function first)",
                        what, given);
  if (given > dst_size) {
    const unsigned char *extra = (const unsigned char *)src + dst_size;
    for (size_t i = 0; i < given - dst_size; i++)
      if (extra[i] != 0)
        return nnlib__error(NNLIB_ERR_STRUCT_SIZE,
                            "%s: struct_size %zu is larger than this library "
                            "knows (%zu) and the extra fields are set",
                            what, given, dst_size);
    given = dst_size;
  }
  memcpy(dst, src, given);
  memcpy(dst, &dst_size, sizeof dst_size);
  return NNLIB_OK;
}

nnlib_status nnlib__init_options(void *dst, size_t struct_size,
                                 const void *defaults, size_t lib_size,
                                 const char *what) {
  NNLIB_CHECK_ARG(dst != NULL, "%s: options is NULL", what);
  if (struct_size < sizeof(size_t))
    return nnlib__error(NNLIB_ERR_STRUCT_SIZE,
                        "%s: struct_size %zu is too small (pass sizeof the "
                        "struct)",
                        what, struct_size);
  size_t known = struct_size < lib_size ? struct_size : lib_size;
  memcpy(dst, defaults, known);
  if (struct_size > lib_size) /* a newer caller's fields: 0 reads as unset */
    memset((unsigned char *)dst + lib_size, 0, struct_size - lib_size);
  memcpy(dst, &struct_size, sizeof struct_size);
  return NNLIB_OK;
}

nnlib_status nnlib__write_struct(void *dst, const void *src, size_t src_size,
                                 const char *what) {
  size_t given;
  memcpy(&given, dst, sizeof given);
  if (given < sizeof(size_t))
    return nnlib__error(NNLIB_ERR_STRUCT_SIZE,
                        "%s: struct_size %zu is too small (set it to the "
                        "size of the struct)",
                        what, given);
  size_t n = given < src_size ? given : src_size;
  memcpy((unsigned char *)dst + sizeof(size_t),
         (const unsigned char *)src + sizeof(size_t), n - sizeof(size_t));
  if (given > src_size) /* a newer caller's fields this library lacks */
    memset((unsigned char *)dst + src_size, 0, given - src_size);
  return NNLIB_OK;
}
