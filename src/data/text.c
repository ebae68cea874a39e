/* text.c - a text corpus as byte tokens (vocabulary 256) for character
 * language models: files and directories read whole and concatenated, split
 * once into training and validation bytes, and batches of windows cut from
 * either split.
 *
 * Which files make a corpus. Each path given is followed (a symlink given
 * by name is read as its target). A directory contributes the entries that
 * lstat(2) calls regular files, in byte order of their names (strcmp),
 * skipping names that start with '.' and fortune's index files ending in
 * ".dat"; subdirectories are not entered and symbolic links are skipped,
 * since a link is not a regular file. Debian's `fortunes` package is the
 * case this is made for: /usr/share/games/fortunes holds, for each of its
 * 43 English collections (art, ascii-art, ..., zippy), the text itself, its
 * strfile index NAME.dat and a symlink NAME.u8 to the same text; the rules
 * keep each text once, 2 576 674 bytes in all (fortunes 1:1.99.1-7.3).
 * benchmarks/char_gpt_torch.py applies the same rules in Python.
 *
 * The split. valid = floor(valid_fraction * size) bytes at the end validate,
 * the size - valid before them train (computed in double, which holds every
 * size up to 2^31 - 1 exactly).
 *
 * Windows. A window of context T is T + 1 consecutive bytes at `offset`: x
 * the first T, y the T after the first (each y[t] is the byte after x[t]).
 * nnlib_text_sample draws each offset as nnlib__rng_below(rng, size - T),
 * uniform over the size - T offsets whose window fits, one draw per row in
 * row order from the text's own generator; nnlib_text_window reads window i
 * at offset i T. */
#define _POSIX_C_SOURCE 200809L /* opendir, lstat, open with O_CLOEXEC */
#include "core/core.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TEXT_MAX_BYTES ((int64_t)0x7fffffff) /* 2^31 - 1 */

struct nnlib_text {
  uint8_t *bytes;     /* the training bytes, then the validation bytes */
  int64_t size;       /* both splits */
  int64_t train_size; /* bytes [0, train_size) train, the rest validate */
  nnlib__rng rng;     /* draws the offsets of nnlib_text_sample */
};

/* ------------------------------------------------------------ the text */

/* A text over `bytes` (taken: freed on failure too). */
static nnlib_status text_make(nnlib_text **out, uint8_t *bytes, int64_t size,
                              double valid_fraction, uint64_t seed) {
  nnlib_text *t = nnlib__alloc(sizeof *t);
  if (t == NULL) {
    nnlib__free(bytes);
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "text: no memory for the text handle");
  }
  int64_t valid = (int64_t)(valid_fraction * (double)size); /* floor: >= 0 */
  t->bytes = bytes;
  t->size = size;
  t->train_size = size - valid;
  nnlib__rng_seed(&t->rng, seed);
  *out = t;
  return NNLIB_OK;
}

static nnlib_status check_fraction(double valid_fraction, const char *what) {
  NNLIB_CHECK_ARG(valid_fraction >= 0.0 && valid_fraction < 1.0,
                  "%s: valid_fraction %g is outside [0, 1)", what,
                  valid_fraction);
  return NNLIB_OK;
}

nnlib_status nnlib_text_from_bytes(nnlib_text **out, const void *bytes,
                                   size_t size, double valid_fraction,
                                   uint64_t seed) {
  NNLIB_CHECK_ARG(out != NULL, "nnlib_text_from_bytes: out is NULL");
  *out = NULL;
  NNLIB_CHECK_ARG(bytes != NULL || size == 0,
                  "nnlib_text_from_bytes: bytes is NULL with size %zu", size);
  NNLIB_TRY(check_fraction(valid_fraction, "nnlib_text_from_bytes"));
  if (size > (size_t)TEXT_MAX_BYTES)
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "nnlib_text_from_bytes: %zu bytes, above 2^31 - 1",
                        size);
  uint8_t *copy = nnlib__alloc(size);
  if (copy == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "nnlib_text_from_bytes: no memory for %zu bytes",
                        size);
  if (size > 0)
    memcpy(copy, bytes, size);
  return text_make(out, copy, (int64_t)size, valid_fraction, seed);
}

void nnlib_text_free(nnlib_text *text) {
  if (text == NULL)
    return;
  nnlib__free(text->bytes);
  nnlib__free(text);
}

static bool split_known(nnlib_text_split split) {
  return split == NNLIB_TEXT_TRAIN || split == NNLIB_TEXT_VALID;
}

int64_t nnlib_text_get_size(const nnlib_text *text, nnlib_text_split split) {
  if (text == NULL || !split_known(split))
    return 0;
  return split == NNLIB_TEXT_TRAIN ? text->train_size
                                   : text->size - text->train_size;
}

const uint8_t *nnlib_text_get_bytes(const nnlib_text *text,
                                    nnlib_text_split split) {
  if (text == NULL || !split_known(split))
    return NULL;
  return split == NNLIB_TEXT_TRAIN ? text->bytes
                                   : text->bytes + text->train_size;
}

/* --------------------------------------------------------- the files */

typedef struct file_entry {
  char *path;   /* owned */
  int64_t size; /* as stat(2) saw it; the read must find exactly this */
} file_entry;

typedef struct file_list {
  file_entry *items;
  size_t count, cap;
} file_list;

static void list_free(file_list *l) {
  for (size_t i = 0; i < l->count; i++)
    nnlib__free(l->items[i].path);
  nnlib__free(l->items);
}

/* Appends (path, size), taking `path` (freed on failure too). */
static nnlib_status list_push(file_list *l, char *path, int64_t size) {
  if (l->count == l->cap) {
    size_t cap = l->cap == 0 ? 16 : 2 * l->cap;
    file_entry *items = nnlib__calloc(cap, sizeof *items);
    if (items == NULL) {
      nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                   "nnlib_text_load: no memory for a list of %zu files (at %s)",
                   cap, path);
      nnlib__free(path);
      return NNLIB_ERR_OUT_OF_MEMORY;
    }
    if (l->count > 0)
      memcpy(items, l->items, l->count * sizeof *items);
    nnlib__free(l->items);
    l->items = items;
    l->cap = cap;
  }
  l->items[l->count++] = (file_entry){path, size};
  return NNLIB_OK;
}

/* A new string "dir/name" (no second '/' when dir ends in one). */
static char *join_path(const char *dir, const char *name) {
  size_t dir_len = strlen(dir), name_len = strlen(name);
  bool slash = dir_len > 0 && dir[dir_len - 1] == '/';
  size_t size = dir_len + !slash + name_len + 1;
  char *path = nnlib__alloc(size);
  if (path == NULL)
    return NULL;
  snprintf(path, size, "%s%s%s", dir, slash ? "" : "/", name);
  return path;
}

static char *copy_string(const char *s) {
  size_t bytes = strlen(s) + 1;
  char *copy = nnlib__alloc(bytes);
  if (copy != NULL)
    memcpy(copy, s, bytes);
  return copy;
}

/* Whether a directory entry's name may be a text: not hidden (nor "." and
 * ".."), not a fortune index. */
static bool text_name(const char *name) {
  size_t len = strlen(name);
  return name[0] != '.' &&
         !(len >= 4 && strcmp(name + len - 4, ".dat") == 0);
}

static int entry_order(const void *a, const void *b) {
  return strcmp(((const file_entry *)a)->path, ((const file_entry *)b)->path);
}

/* Appends the texts of directory `dir` (see the top of the file), sorted by
 * name: every path in it starts with the same "dir/", so comparing paths
 * compares names. */
static nnlib_status add_directory(file_list *l, const char *dir) {
  DIR *d = opendir(dir);
  if (d == NULL)
    return nnlib__error(NNLIB_ERR_IO, "nnlib_text_load: cannot open "
                        "directory %s: %s", dir, strerror(errno));
  size_t first = l->count;
  nnlib_status st = NNLIB_OK;
  for (;;) {
    errno = 0;
    struct dirent *e = readdir(d);
    if (e == NULL) {
      if (errno != 0)
        st = nnlib__error(NNLIB_ERR_IO, "nnlib_text_load: cannot read "
                          "directory %s: %s", dir, strerror(errno));
      break;
    }
    if (!text_name(e->d_name))
      continue;
    char *path = join_path(dir, e->d_name);
    if (path == NULL) {
      st = nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "nnlib_text_load: no memory for the path of %s in %s",
                        e->d_name, dir);
      break;
    }
    struct stat sb;
    if (lstat(path, &sb) != 0) {
      st = nnlib__error(NNLIB_ERR_IO, "nnlib_text_load: cannot stat %s: %s",
                        path, strerror(errno));
      nnlib__free(path);
      break;
    }
    if (!S_ISREG(sb.st_mode)) {
      nnlib__free(path); /* a subdirectory, a symlink, a device */
      continue;
    }
    if ((st = list_push(l, path, (int64_t)sb.st_size)) != NNLIB_OK)
      break;
  }
  closedir(d);
  if (st == NNLIB_OK && l->count == first)
    st = nnlib__error(NNLIB_ERR_IO,
                      "nnlib_text_load: directory %s holds no text (regular "
                      "files whose names neither start with '.' nor end in "
                      ".dat)",
                      dir);
  if (st == NNLIB_OK)
    qsort(l->items + first, l->count - first, sizeof *l->items, entry_order);
  return st;
}

/* Appends what `path` names: itself if a regular file, its texts if a
 * directory. */
static nnlib_status add_path(file_list *l, const char *path) {
  struct stat sb;
  if (stat(path, &sb) != 0)
    return nnlib__error(NNLIB_ERR_IO, "nnlib_text_load: cannot open %s: %s",
                        path, strerror(errno));
  if (S_ISDIR(sb.st_mode))
    return add_directory(l, path);
  if (!S_ISREG(sb.st_mode))
    return nnlib__error(NNLIB_ERR_IO, "nnlib_text_load: %s is neither a "
                        "regular file nor a directory", path);
  char *copy = copy_string(path);
  if (copy == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "nnlib_text_load: no memory for the path %s", path);
  return list_push(l, copy, (int64_t)sb.st_size);
}

/* read(2) until `size` bytes or the end; -1 on an error (errno set). */
static int64_t read_fully(int fd, uint8_t *dst, int64_t size) {
  int64_t got = 0;
  while (got < size) {
    size_t chunk = (size_t)(size - got < (1 << 30) ? size - got : (1 << 30));
    ssize_t n = read(fd, dst + got, chunk);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -1;
    if (n == 0)
      break;
    got += n;
  }
  return got;
}

/* Reads file `e` whole into dst, which has room for exactly e->size bytes:
 * a file that shrank or grew since it was measured is an error. */
static nnlib_status read_file(const file_entry *e, uint8_t *dst) {
  int fd = open(e->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return nnlib__error(NNLIB_ERR_IO, "nnlib_text_load: cannot open %s: %s",
                        e->path, strerror(errno));
  uint8_t extra;
  int64_t got = read_fully(fd, dst, e->size);
  int64_t more = got == e->size ? read_fully(fd, &extra, 1) : 0;
  int saved = errno;
  close(fd);
  if (got < 0 || more < 0)
    return nnlib__error(NNLIB_ERR_IO, "nnlib_text_load: cannot read %s: %s",
                        e->path, strerror(saved));
  if (got != e->size || more != 0)
    return nnlib__error(NNLIB_ERR_IO,
                        "nnlib_text_load: %s changed while read (%lld bytes "
                        "when measured)",
                        e->path, (long long)e->size);
  return NNLIB_OK;
}

/* The files' bytes concatenated, in a new buffer of *size bytes. */
static nnlib_status read_all(const file_list *l, uint8_t **out,
                             int64_t *size) {
  int64_t total = 0;
  for (size_t i = 0; i < l->count; i++) {
    total += l->items[i].size; /* each <= 2^31 - 1 after the check below */
    if (l->items[i].size > TEXT_MAX_BYTES || total > TEXT_MAX_BYTES)
      return nnlib__error(NNLIB_ERR_TOO_LARGE,
                          "nnlib_text_load: the text reaches more than "
                          "2^31 - 1 bytes at %s",
                          l->items[i].path);
  }
  uint8_t *bytes = nnlib__alloc((size_t)total);
  if (bytes == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "nnlib_text_load: no memory for %lld bytes of text",
                        (long long)total);
  int64_t at = 0;
  for (size_t i = 0; i < l->count; i++) {
    nnlib_status st = read_file(&l->items[i], bytes + at);
    if (st != NNLIB_OK) {
      nnlib__free(bytes);
      return st;
    }
    at += l->items[i].size;
  }
  *out = bytes;
  *size = total;
  return NNLIB_OK;
}

nnlib_status nnlib_text_load(nnlib_text **out, const char *const *paths,
                             size_t count, double valid_fraction,
                             uint64_t seed) {
  NNLIB_CHECK_ARG(out != NULL, "nnlib_text_load: out is NULL");
  *out = NULL;
  NNLIB_CHECK_ARG(paths != NULL, "nnlib_text_load: paths is NULL");
  NNLIB_CHECK_ARG(count > 0, "nnlib_text_load: count is 0");
  for (size_t i = 0; i < count; i++)
    NNLIB_CHECK_ARG(paths[i] != NULL, "nnlib_text_load: paths[%zu] is NULL",
                    i);
  NNLIB_TRY(check_fraction(valid_fraction, "nnlib_text_load"));
  file_list l = {NULL, 0, 0};
  nnlib_status st = NNLIB_OK;
  for (size_t i = 0; i < count && st == NNLIB_OK; i++)
    st = add_path(&l, paths[i]);
  uint8_t *bytes = NULL;
  int64_t size = 0;
  if (st == NNLIB_OK)
    st = read_all(&l, &bytes, &size);
  list_free(&l);
  if (st != NNLIB_OK)
    return st;
  return text_make(out, bytes, size, valid_fraction, seed);
}

/* ------------------------------------------------------------ windows */

/* Checks the arguments of sample and window; *batch and *context are x's
 * [B, T]. */
static nnlib_status check_windows(const nnlib_text *text,
                                  nnlib_text_split split,
                                  const nnlib_tensor *x, const nnlib_tensor *y,
                                  int64_t *batch, int64_t *context,
                                  const char *what) {
  NNLIB_CHECK_ARG(text != NULL && x != NULL && y != NULL,
                  "%s: text, x and y must not be NULL", what);
  NNLIB_CHECK_ARG(split_known(split), "%s: unknown split %d", what,
                  (int)split);
  if (nnlib_tensor_get_dtype(x) != NNLIB_DTYPE_INT32 ||
      nnlib_tensor_get_dtype(y) != NNLIB_DTYPE_INT32)
    return nnlib__error(NNLIB_ERR_DTYPE, "%s: x and y must be int32 tensors "
                        "(x is %s, y is %s)", what,
                        nnlib_tensor_get_dtype(x) == NNLIB_DTYPE_INT32
                            ? "int32" : "float32",
                        nnlib_tensor_get_dtype(y) == NNLIB_DTYPE_INT32
                            ? "int32" : "float32");
  if (nnlib_tensor_get_rank(x) != 2 || nnlib_tensor_get_rank(y) != 2 ||
      nnlib_tensor_get_dim(x, 0) != nnlib_tensor_get_dim(y, 0) ||
      nnlib_tensor_get_dim(x, 1) != nnlib_tensor_get_dim(y, 1))
    return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                        "%s: x and y must both be [B, T] (ranks %zu and %zu)",
                        what, nnlib_tensor_get_rank(x),
                        nnlib_tensor_get_rank(y));
  int64_t size = nnlib_text_get_size(text, split);
  int64_t t = nnlib_tensor_get_dim(x, 1);
  if (size < t + 1)
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "%s: the %s split holds %lld bytes, fewer than the "
                        "%lld a window of context %lld needs",
                        what, split == NNLIB_TEXT_TRAIN ? "training"
                                                        : "validation",
                        (long long)size, (long long)(t + 1), (long long)t);
  *batch = nnlib_tensor_get_dim(x, 0);
  *context = t;
  return NNLIB_OK;
}

/* Row `row` of x and y from the window at `offset` of `bytes`. */
static void fill_row(const uint8_t *bytes, int64_t offset, int64_t context,
                     int64_t row, int32_t *x, int32_t *y) {
  const uint8_t *w = bytes + offset;
  int32_t *xr = x + row * context, *yr = y + row * context;
  for (int64_t t = 0; t < context; t++) {
    xr[t] = w[t];
    yr[t] = w[t + 1];
  }
}

nnlib_status nnlib_text_sample(nnlib_text *text, nnlib_text_split split,
                               nnlib_tensor *x, nnlib_tensor *y) {
  int64_t batch = 0, context = 0; /* set by check_windows */
  NNLIB_TRY(check_windows(text, split, x, y, &batch, &context,
                          "nnlib_text_sample"));
  const uint8_t *bytes = nnlib_text_get_bytes(text, split);
  uint64_t offsets = (uint64_t)(nnlib_text_get_size(text, split) - context);
  int32_t *xd = nnlib_tensor_get_data_int32(x);
  int32_t *yd = nnlib_tensor_get_data_int32(y);
  for (int64_t b = 0; b < batch; b++) {
    int64_t offset = (int64_t)nnlib__rng_below(&text->rng, offsets);
    fill_row(bytes, offset, context, b, xd, yd);
  }
  return NNLIB_OK;
}

int64_t nnlib_text_window_count(const nnlib_text *text,
                                nnlib_text_split split, int64_t context) {
  int64_t size = nnlib_text_get_size(text, split);
  if (context < 1 || size < 1)
    return 0;
  return (size - 1) / context;
}

nnlib_status nnlib_text_window(const nnlib_text *text, nnlib_text_split split,
                               int64_t first, nnlib_tensor *x,
                               nnlib_tensor *y) {
  int64_t batch = 0, context = 0; /* set by check_windows */
  NNLIB_TRY(check_windows(text, split, x, y, &batch, &context,
                          "nnlib_text_window"));
  int64_t count = nnlib_text_window_count(text, split, context);
  if (first < 0 || first > count - batch)
    return nnlib__error(NNLIB_ERR_OUT_OF_RANGE,
                        "nnlib_text_window: %lld windows from window %lld "
                        "(context %lld) are outside the split's %lld windows",
                        (long long)batch, (long long)first,
                        (long long)context, (long long)count);
  const uint8_t *bytes = nnlib_text_get_bytes(text, split);
  int32_t *xd = nnlib_tensor_get_data_int32(x);
  int32_t *yd = nnlib_tensor_get_data_int32(y);
  for (int64_t b = 0; b < batch; b++)
    fill_row(bytes, (first + b) * context, context, b, xd, yd);
  return NNLIB_OK;
}
