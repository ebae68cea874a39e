/* idx.c - the IDX files of MNIST and Fashion-MNIST, plain or gzip.
 *
 * An IDX file is a 4-byte magic (0x00 0x00 type rank), `rank` big-endian
 * uint32 dimensions, then the elements row-major. nnlib reads type 0x08
 * (unsigned byte): idx3 images [N, rows, cols] and idx1 labels [N].
 *
 * The header is untrusted. Nothing is allocated that the header and the data
 * actually present do not both justify: a plain file is measured before its
 * data is allocated; a gzip stream, whose decompressed size is unknown until
 * it is read, goes into a buffer that grows only as bytes arrive. zlib's
 * gzread reads both kinds, so there is one reading path. */
#define _POSIX_C_SOURCE 200809L /* open, fstat */
#include "nnlib_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

enum {
  IDX_TYPE_UBYTE = 0x08,
  IDX_IMAGE_RANK = 3,
  IDX_LABEL_RANK = 1,
  IDX_MAX_RANK = 3,
  GZ_BUFFER_BYTES = 128 * 1024, /* zlib's read buffer; its default is 8 KiB */
  FIRST_CHUNK_BYTES = 1 << 20   /* a gzip payload buffer starts here */
};

typedef struct idx_file {
  gzFile gz;
  const char *path;
  int64_t file_bytes;  /* size on disk of a regular file, else -1 */
  int64_t plain_bytes; /* file_bytes once the content proved not gzip */
  int64_t offset;      /* (decompressed) bytes consumed so far */
} idx_file;

typedef struct idx_items {
  int64_t dims[IDX_MAX_RANK]; /* dims[0] is the number of items read */
  size_t rank;
  uint8_t *bytes; /* dims[0] items, row-major; owned */
  int64_t size;   /* bytes in `bytes` */
} idx_items;

static nnlib_status idx_open(idx_file *f, const char *path) {
  *f = (idx_file){NULL, path, -1, -1, 0};
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return nnlib__error(NNLIB_ERR_IO, "idx: %s: cannot open: %s", path,
                        strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return nnlib__error(NNLIB_ERR_IO, "idx: %s: cannot stat: %s", path,
                        strerror(err));
  }
  if (S_ISDIR(st.st_mode)) {
    close(fd);
    return nnlib__error(NNLIB_ERR_IO, "idx: %s: a directory, not a file",
                        path);
  }
  if (S_ISREG(st.st_mode))
    f->file_bytes = (int64_t)st.st_size;
  f->gz = gzdopen(fd, "rb");
  if (f->gz == NULL) { /* zlib fails here only when it has no memory */
    close(fd);
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "idx: %s: zlib has no memory for a stream", path);
  }
  gzbuffer(f->gz, GZ_BUFFER_BYTES);
  return NNLIB_OK;
}

static void idx_close(idx_file *f) {
  if (f->gz != NULL)
    gzclose_r(f->gz);
  f->gz = NULL;
}

/* A gzread failure: a gzip stream that stops early is truncated, one that
 * does not inflate is corrupt. */
static nnlib_status stream_error(const idx_file *f, const char *what) {
  int code = Z_OK;
  const char *zmsg = gzerror(f->gz, &code);
  nnlib_status st = code == Z_BUF_ERROR   ? NNLIB_ERR_TRUNCATED
                    : code == Z_MEM_ERROR ? NNLIB_ERR_OUT_OF_MEMORY
                    : code == Z_ERRNO     ? NNLIB_ERR_IO
                                          : NNLIB_ERR_CORRUPT_FILE;
  return nnlib__error(st, "idx: %s: %s, at byte %lld in the %s", f->path,
                      code == Z_ERRNO ? strerror(errno) : zmsg,
                      (long long)f->offset, what);
}

/* Reads exactly n bytes; `what` names the part of the file for messages. */
static nnlib_status idx_read(idx_file *f, uint8_t *buf, int64_t n,
                             const char *what) {
  while (n > 0) {
    unsigned chunk = n > INT_MAX ? (unsigned)INT_MAX : (unsigned)n;
    int got = gzread(f->gz, buf, chunk); /* returns int: chunk <= INT_MAX */
    if (got < 0)
      return stream_error(f, what);
    if (got == 0)
      return nnlib__error(NNLIB_ERR_TRUNCATED,
                          "idx: %s: the file ends after %lld bytes, in the %s",
                          f->path, (long long)f->offset, what);
    buf += got;
    n -= got;
    f->offset += got;
  }
  return NNLIB_OK;
}

static uint32_t read_be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         (uint32_t)p[3];
}

/* Magic, element type, rank and dimensions; dims[0] is the item count. */
static nnlib_status idx_read_header(idx_file *f, size_t rank, int64_t *dims) {
  uint8_t magic[4], raw[4 * IDX_MAX_RANK];
  NNLIB_TRY(idx_read(f, magic, sizeof magic, "magic number"));
  /* after the first read zlib knows whether the content is gzip */
  if (gzdirect(f->gz))
    f->plain_bytes = f->file_bytes;
  if (magic[0] != 0 || magic[1] != 0)
    return nnlib__error(NNLIB_ERR_BAD_MAGIC,
                        "idx: %s: starts with %02x %02x, not the 00 00 of an "
                        "IDX file",
                        f->path, (unsigned)magic[0], (unsigned)magic[1]);
  if (magic[2] != IDX_TYPE_UBYTE)
    return nnlib__error(NNLIB_ERR_UNSUPPORTED,
                        "idx: %s: element type 0x%02x; nnlib reads only 0x08 "
                        "(unsigned byte)",
                        f->path, (unsigned)magic[2]);
  if ((size_t)magic[3] != rank)
    return nnlib__error(NNLIB_ERR_UNSUPPORTED,
                        "idx: %s: rank %u, expected %zu (%s)", f->path,
                        (unsigned)magic[3], rank,
                        rank == IDX_IMAGE_RANK ? "idx3 images" : "idx1 labels");
  NNLIB_TRY(idx_read(f, raw, 4 * (int64_t)rank, "header dimensions"));
  for (size_t i = 0; i < rank; i++) {
    dims[i] = read_be32(raw + 4 * i);
    if (dims[i] == 0)
      return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                          "idx: %s: header dimension %zu is 0", f->path, i);
  }
  return NNLIB_OK;
}

/* A plain file's size must match the header before its data is allocated.
 * Bytes after the last item are an error only when all items are read. */
static nnlib_status check_plain_size(const idx_file *f, int64_t need,
                                     bool whole_file) {
  int64_t have = f->plain_bytes - f->offset;
  if (have < need)
    return nnlib__error(NNLIB_ERR_TRUNCATED,
                        "idx: %s: the header promises %lld data bytes, the "
                        "file holds %lld",
                        f->path, (long long)need, (long long)have);
  if (whole_file && have > need)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "idx: %s: %lld bytes follow the %lld data bytes the "
                        "header declares",
                        f->path, (long long)(have - need), (long long)need);
  return NNLIB_OK;
}

/* Moves the first `have` bytes of *buf into a buffer of twice *cap bytes
 * (at most need). */
static nnlib_status grow(const idx_file *f, uint8_t **buf, int64_t have,
                         int64_t *cap, int64_t need) {
  int64_t next = *cap > need / 2 ? need : *cap * 2;
  uint8_t *bigger = nnlib__alloc((size_t)next);
  if (bigger == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "idx: %s: no memory for %lld data bytes", f->path,
                        (long long)next);
  memcpy(bigger, *buf, (size_t)have);
  nnlib__free(*buf);
  *buf = bigger;
  *cap = next;
  return NNLIB_OK;
}

/* The next `need` bytes into a new buffer. A gzip stream is read in chunks
 * that double as data arrives, so a lying header meets end of file long
 * before its claim is allocated. */
static nnlib_status read_data(idx_file *f, int64_t need, uint8_t **out) {
  bool plain = f->plain_bytes >= 0;
  int64_t cap = plain || need < FIRST_CHUNK_BYTES ? need : FIRST_CHUNK_BYTES;
  int64_t start = f->offset;
  uint8_t *buf = nnlib__alloc((size_t)cap);
  if (buf == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "idx: %s: no memory for %lld data bytes", f->path,
                        (long long)cap);
  nnlib_status st = idx_read(f, buf, cap, "data");
  int64_t have = cap;
  while (st == NNLIB_OK && have < need) {
    st = grow(f, &buf, have, &cap, need);
    if (st == NNLIB_OK)
      st = idx_read(f, buf + have, cap - have, "data");
    have = cap;
  }
  if (st != NNLIB_OK) {
    nnlib__free(buf);
    if (st == NNLIB_ERR_TRUNCATED)
      return nnlib__error(st,
                          "idx: %s: the header promises %lld data bytes, the "
                          "%s holds %lld",
                          f->path, (long long)need, plain ? "file" : "stream",
                          (long long)(f->offset - start));
    return st;
  }
  *out = buf;
  return NNLIB_OK;
}

/* After the last declared item the stream must end. */
static nnlib_status check_stream_end(idx_file *f, int64_t data_bytes) {
  uint8_t extra;
  int got = gzread(f->gz, &extra, 1);
  if (got < 0)
    return stream_error(f, "data");
  if (got > 0)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "idx: %s: trailing bytes after the %lld data bytes "
                        "the header declares",
                        f->path, (long long)data_bytes);
  return NNLIB_OK;
}

/* Reads the header and the first `limit` items (all if limit is 0 or at
 * least the count) of an IDX file of unsigned bytes and the given rank. */
static nnlib_status read_items(idx_file *f, size_t rank, int64_t limit,
                               idx_items *items) {
  NNLIB_TRY(idx_read_header(f, rank, items->dims));
  items->rank = rank;
  char what[600];
  snprintf(what, sizeof what, "idx: %s: header dimensions", f->path);
  int64_t total;
  NNLIB_TRY(nnlib__shape_size(items->dims, rank, &total, what));
  int64_t count = items->dims[0];
  bool whole_file = limit == 0 || limit >= count;
  if (!whole_file)
    items->dims[0] = limit;
  NNLIB_TRY(nnlib__shape_size(items->dims, rank, &items->size, what));
  if (f->plain_bytes >= 0)
    NNLIB_TRY(check_plain_size(f, items->size, whole_file));
  NNLIB_TRY(read_data(f, items->size, &items->bytes));
  if (whole_file && f->plain_bytes < 0) {
    nnlib_status st = check_stream_end(f, items->size);
    if (st != NNLIB_OK) {
      nnlib__free(items->bytes);
      items->bytes = NULL;
      return st;
    }
  }
  return NNLIB_OK;
}

/* Opens, reads and closes: items->bytes is owned by the caller on success
 * and NULL on failure. */
static nnlib_status load_items(const char *path, size_t rank, int64_t limit,
                               idx_items *items) {
  items->bytes = NULL;
  idx_file f;
  NNLIB_TRY(idx_open(&f, path));
  nnlib_status st = read_items(&f, rank, limit, items);
  idx_close(&f);
  return st;
}

static nnlib_status check_load_args(void *out, const char *path,
                                    int64_t limit, const char *what) {
  NNLIB_CHECK_ARG(out != NULL, "%s: out is NULL", what);
  NNLIB_CHECK_ARG(path != NULL, "%s: path is NULL", what);
  NNLIB_CHECK_ARG(limit >= 0, "%s: limit is %lld, must be >= 0", what,
                  (long long)limit);
  return NNLIB_OK;
}

nnlib_status nnlib_idx_load_images(nnlib_tensor **out, const char *path,
                                   int64_t limit) {
  if (out != NULL)
    *out = NULL;
  NNLIB_TRY(check_load_args(out, path, limit, "nnlib_idx_load_images"));
  idx_items items;
  NNLIB_TRY(load_items(path, IDX_IMAGE_RANK, limit, &items));
  nnlib_tensor *t = NULL;
  nnlib_status st = nnlib_tensor_create(&t, items.dims, items.rank);
  if (st == NNLIB_OK) {
    /* pixel / 255: the byte range 0..255 onto [0, 1] */
    for (int64_t i = 0; i < items.size; i++)
      t->data[i] = (float)items.bytes[i] / 255.0f;
    *out = t;
  }
  nnlib__free(items.bytes);
  return st;
}

/* Every label must name one of num_classes classes. */
static nnlib_status check_labels(const idx_items *items, int64_t num_classes,
                                 const char *path) {
  for (int64_t i = 0; i < items->size; i++)
    if (items->bytes[i] >= num_classes)
      return nnlib__error(NNLIB_ERR_OUT_OF_RANGE,
                          "idx: %s: label %u of item %lld is outside the "
                          "%lld classes 0..%lld",
                          path, (unsigned)items->bytes[i], (long long)i,
                          (long long)num_classes, (long long)(num_classes - 1));
  return NNLIB_OK;
}

/* Class indices as floats [N], or one-hot rows [N, num_classes]. */
static nnlib_status labels_tensor(nnlib_tensor **out, const idx_items *items,
                                  int64_t num_classes, int one_hot,
                                  const char *path) {
  int64_t shape[2] = {items->size, num_classes};
  size_t rank = one_hot ? 2 : 1;
  char what[600];
  snprintf(what, sizeof what, "idx: %s: one-hot labels", path);
  int64_t elements;
  NNLIB_TRY(nnlib__shape_size(shape, rank, &elements, what));
  nnlib_tensor *t = NULL;
  NNLIB_TRY(nnlib_tensor_create(&t, shape, rank));
  for (int64_t i = 0; i < items->size; i++) {
    if (one_hot)
      t->data[i * num_classes + items->bytes[i]] = 1.0f; /* rest is zero */
    else
      t->data[i] = (float)items->bytes[i];
  }
  *out = t;
  return NNLIB_OK;
}

nnlib_status nnlib_idx_load_labels(nnlib_tensor **out, const char *path,
                                   int64_t num_classes, int one_hot,
                                   int64_t limit) {
  if (out != NULL)
    *out = NULL;
  NNLIB_TRY(check_load_args(out, path, limit, "nnlib_idx_load_labels"));
  NNLIB_CHECK_ARG(num_classes >= 1,
                  "nnlib_idx_load_labels: num_classes is %lld, must be >= 1",
                  (long long)num_classes);
  NNLIB_CHECK_ARG(one_hot == 0 || one_hot == 1,
                  "nnlib_idx_load_labels: one_hot must be 0 or 1");
  idx_items items;
  NNLIB_TRY(load_items(path, IDX_LABEL_RANK, limit, &items));
  nnlib_status st = check_labels(&items, num_classes, path);
  if (st == NNLIB_OK)
    st = labels_tensor(out, &items, num_classes, one_hot, path);
  nnlib__free(items.bytes);
  return st;
}
