/* idx.c - the IDX files of MNIST and Fashion-MNIST, plain or gzip.
 *
 * An IDX file is a 4-byte magic (0x00 0x00 type rank), `rank` big-endian
 * uint32 dimensions, then the elements row-major. nnlib reads type 0x08
 * (unsigned byte): idx3 images [N, rows, cols] and idx1 labels [N].
 *
 * The header is untrusted. Nothing is allocated that the header and the data
 * actually present do not both justify: a plain file is measured before its
 * data is allocated; a gzip stream, whose decompressed size is unknown until
 * it is read, goes into a buffer that grows only as bytes arrive.
 *
 * The file is read with read(2) and, when its first two bytes are gzip's
 * 1f 8b, inflated with zlib's inflate API, whose zalloc/zfree hooks lead to
 * nnlib's allocator: the read buffer, the inflate state and its window all
 * go through nnlib_set_allocator (zlib's gz* API takes no allocator). Like
 * gzread and gzip -d, the reader takes concatenated gzip members as one
 * stream and ignores bytes after a complete member that do not start
 * another one (padding some tools append); a member cut short, also in its
 * 8-byte trailer, is truncated. */
#define _POSIX_C_SOURCE 200809L /* open, fstat, read */
#include "nnlib_internal.h"

#include <errno.h>
#include <fcntl.h>
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
  IN_BUFFER_BYTES = 128 * 1024, /* one read(2); gzread's buffer was as big */
  IO_CHUNK_BYTES = 1 << 30,     /* per read(2) or inflate: fits uInt */
  GZIP_WINDOW_BITS = 15 + 16,   /* a 32 KiB window, gzip framing only */
  FIRST_CHUNK_BYTES = 1 << 20   /* a gzip payload buffer starts here */
};

/* What the content is: decided from its first two bytes, as gzread did. */
typedef enum idx_kind { KIND_UNKNOWN, KIND_PLAIN, KIND_GZIP } idx_kind;

typedef struct idx_file {
  int fd;
  const char *path;
  uint8_t *in; /* IN_BUFFER_BYTES; z.next_in/avail_in: its unread part */
  z_stream z;  /* zalloc/zfree are nnlib's; inflate state once gzip */
  idx_kind kind;
  bool inflating;     /* inflateInit2 succeeded: inflateEnd is owed */
  bool eof;           /* read(2) returned 0 */
  bool member_done;   /* a gzip member ended; the next bytes decide */
  bool stream_done;   /* no more data: end of input or ignored trailing bytes */
  bool cut_short;     /* the input ended inside a gzip member */
  int64_t file_bytes; /* size on disk of a regular file, else -1 */
  int64_t plain_bytes; /* file_bytes once the content proved not gzip */
  int64_t offset;      /* (decompressed) bytes consumed so far */
} idx_file;

typedef struct idx_items {
  int64_t dims[IDX_MAX_RANK]; /* dims[0] is the number of items read */
  size_t rank;
  uint8_t *bytes; /* dims[0] items, row-major; owned */
  int64_t size;   /* bytes in `bytes` */
} idx_items;

/* zlib's memory through nnlib's allocator, so the hook sees (and may fail)
 * the inflate state and window too. */
static voidpf zlib_alloc(voidpf opaque, uInt items, uInt size) {
  (void)opaque;
  if (size != 0 && items > SIZE_MAX / size)
    return Z_NULL;
  return nnlib__alloc((size_t)items * size);
}

static void zlib_free(voidpf opaque, voidpf address) {
  (void)opaque;
  nnlib__free(address);
}

/* Opens path read-only; a regular file's size goes to *file_bytes. */
static nnlib_status open_file(const char *path, int *fd_out,
                              int64_t *file_bytes) {
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
    return nnlib__error(NNLIB_ERR_IO, "idx: %s: a directory, not a file", path);
  }
  if (S_ISREG(st.st_mode))
    *file_bytes = (int64_t)st.st_size;
  *fd_out = fd;
  return NNLIB_OK;
}

static nnlib_status idx_open(idx_file *f, const char *path) {
  *f = (idx_file){.fd = -1, .path = path, .file_bytes = -1, .plain_bytes = -1};
  int fd = -1;
  NNLIB_TRY(open_file(path, &fd, &f->file_bytes));
  f->in = nnlib__alloc(IN_BUFFER_BYTES);
  if (f->in == NULL) {
    close(fd);
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "idx: %s: no memory for a %d-byte read buffer", path,
                        (int)IN_BUFFER_BYTES);
  }
  f->fd = fd;
  f->z.zalloc = zlib_alloc;
  f->z.zfree = zlib_free;
  f->z.opaque = Z_NULL;
  f->z.next_in = f->in;
  f->z.avail_in = 0;
  return NNLIB_OK;
}

static void idx_close(idx_file *f) {
  if (f->inflating)
    inflateEnd(&f->z);
  f->inflating = false;
  nnlib__free(f->in);
  f->in = NULL;
  if (f->fd >= 0)
    close(f->fd);
  f->fd = -1;
}

static nnlib_status io_error(const idx_file *f, int err, const char *what) {
  return nnlib__error(NNLIB_ERR_IO, "idx: %s: %s, at byte %lld in the %s",
                      f->path, strerror(err), (long long)f->offset, what);
}

/* An inflate failure: zlib had no memory, or the stream does not inflate. */
static nnlib_status zlib_error(const idx_file *f, int ret, const char *what) {
  if (ret == Z_MEM_ERROR)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "idx: %s: zlib has no memory to inflate, at byte "
                        "%lld in the %s",
                        f->path, (long long)f->offset, what);
  return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                      "idx: %s: %s, at byte %lld in the %s", f->path,
                      f->z.msg != NULL ? f->z.msg : "compressed data error",
                      (long long)f->offset, what);
}

/* Moves the unread input to the front and appends one read(2). Called only
 * while fewer than two bytes are unread, so there is always room. */
static nnlib_status refill(idx_file *f, const char *what) {
  memmove(f->in, f->z.next_in, f->z.avail_in);
  f->z.next_in = f->in;
  ssize_t got;
  do
    got = read(f->fd, f->in + f->z.avail_in, IN_BUFFER_BYTES - f->z.avail_in);
  while (got < 0 && errno == EINTR);
  if (got < 0)
    return io_error(f, errno, what);
  f->eof = got == 0;
  f->z.avail_in += (uInt)got;
  return NNLIB_OK;
}

/* Two unread bytes, unless the input ends first. */
static nnlib_status fill_two(idx_file *f, const char *what) {
  while (f->z.avail_in < 2 && !f->eof)
    NNLIB_TRY(refill(f, what));
  return NNLIB_OK;
}

static bool gzip_magic_next(const idx_file *f) {
  return f->z.avail_in >= 2 && f->z.next_in[0] == 0x1f &&
         f->z.next_in[1] == 0x8b;
}

/* 1f 8b is gzip; anything else, also a file shorter than two bytes, is read
 * as it is (gzread's rule). */
static nnlib_status detect_kind(idx_file *f, const char *what) {
  NNLIB_TRY(fill_two(f, what));
  if (!gzip_magic_next(f)) {
    f->kind = KIND_PLAIN;
    f->plain_bytes = f->file_bytes;
    return NNLIB_OK;
  }
  f->kind = KIND_GZIP;
  int ret = inflateInit2(&f->z, GZIP_WINDOW_BITS);
  if (ret != Z_OK)
    return zlib_error(f, ret, what);
  f->inflating = true;
  return NNLIB_OK;
}

/* Plain content: the bytes read ahead to decide the kind, then read(2)
 * straight into buf. */
static nnlib_status pull_plain(idx_file *f, uint8_t *buf, int64_t n,
                               int64_t *got, const char *what) {
  int64_t done = n < (int64_t)f->z.avail_in ? n : (int64_t)f->z.avail_in;
  memcpy(buf, f->z.next_in, (size_t)done);
  f->z.next_in += done;
  f->z.avail_in -= (uInt)done;
  f->offset += done;
  while (done < n && !f->eof) {
    size_t chunk =
        n - done > IO_CHUNK_BYTES ? (size_t)IO_CHUNK_BYTES : (size_t)(n - done);
    ssize_t r = read(f->fd, buf + done, chunk);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return io_error(f, errno, what);
    f->eof = r == 0;
    done += r;
    f->offset += r;
  }
  *got = done;
  return NNLIB_OK;
}

/* After a member, another one (1f 8b) continues the stream; anything else
 * ends it and is ignored, as gzread and gzip -d do. */
static nnlib_status next_member(idx_file *f, const char *what) {
  NNLIB_TRY(fill_two(f, what));
  f->member_done = false;
  if (!gzip_magic_next(f)) {
    f->stream_done = true;
    f->z.avail_in = 0;
    return NNLIB_OK;
  }
  int ret = inflateReset(&f->z);
  return ret == Z_OK ? NNLIB_OK : zlib_error(f, ret, what);
}

/* One inflate call into buf[0..room). Without input inflate may still
 * finish from the bits it holds; when it cannot move, the input ended
 * inside a member. */
static nnlib_status inflate_some(idx_file *f, uint8_t *buf, uInt room,
                                 int64_t *made, const char *what) {
  f->z.next_out = buf;
  f->z.avail_out = room;
  int ret = inflate(&f->z, Z_NO_FLUSH);
  *made = room - f->z.avail_out;
  f->offset += *made;
  if (ret == Z_STREAM_END)
    f->member_done = true;
  else if (ret == Z_BUF_ERROR && f->z.avail_in == 0 && f->eof)
    f->cut_short = f->stream_done = true;
  else if (ret != Z_OK)
    return zlib_error(f, ret, what);
  return NNLIB_OK;
}

/* Gzip content: inflates straight into buf, member after member. */
static nnlib_status pull_gzip(idx_file *f, uint8_t *buf, int64_t n,
                              int64_t *got, const char *what) {
  int64_t done = 0;
  while (done < n && !f->stream_done) {
    if (f->member_done) {
      NNLIB_TRY(next_member(f, what));
      continue;
    }
    if (f->z.avail_in == 0 && !f->eof)
      NNLIB_TRY(refill(f, what));
    uInt room =
        n - done > IO_CHUNK_BYTES ? (uInt)IO_CHUNK_BYTES : (uInt)(n - done);
    int64_t made;
    NNLIB_TRY(inflate_some(f, buf + done, room, &made, what));
    done += made;
  }
  *got = done;
  return NNLIB_OK;
}

/* Up to n bytes of content; *got < n only where the content ends. */
static nnlib_status pull(idx_file *f, uint8_t *buf, int64_t n, int64_t *got,
                         const char *what) {
  if (f->kind == KIND_UNKNOWN)
    NNLIB_TRY(detect_kind(f, what));
  return f->kind == KIND_PLAIN ? pull_plain(f, buf, n, got, what)
                               : pull_gzip(f, buf, n, got, what);
}

/* Reads exactly n bytes; `what` names the part of the file for messages. */
static nnlib_status idx_read(idx_file *f, uint8_t *buf, int64_t n,
                             const char *what) {
  int64_t got;
  NNLIB_TRY(pull(f, buf, n, &got, what));
  if (got < n)
    return nnlib__error(NNLIB_ERR_TRUNCATED,
                        "idx: %s: the %s after %lld bytes, in the %s", f->path,
                        f->cut_short ? "gzip stream is cut short" : "file ends",
                        (long long)f->offset, what);
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
                          f->path, (long long)need,
                          plain          ? "file"
                          : f->cut_short ? "gzip stream, cut short,"
                                         : "stream",
                          (long long)(f->offset - start));
    return st;
  }
  *out = buf;
  return NNLIB_OK;
}

/* After the last declared item the content must end: at the end of a
 * complete gzip member (what may follow it is above), or of a plain file
 * that is not a regular one. */
static nnlib_status check_stream_end(idx_file *f, int64_t data_bytes) {
  uint8_t extra;
  int64_t got;
  NNLIB_TRY(pull(f, &extra, 1, &got, "data"));
  if (got > 0)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "idx: %s: trailing bytes after the %lld data bytes "
                        "the header declares",
                        f->path, (long long)data_bytes);
  if (f->cut_short)
    return nnlib__error(NNLIB_ERR_TRUNCATED,
                        "idx: %s: the gzip stream is cut short after the "
                        "%lld data bytes the header declares",
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
  *items = (idx_items){.bytes = NULL}; /* every field known on every path */
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
