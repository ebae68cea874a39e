/* fuzz_idx: the IDX reader (nnlib_idx_load_images / _labels) on arbitrary
 * file contents, plain or gzip.
 *
 * Input: one mode byte, then the file. Mode bit 0 set: the harness gzips the
 * rest first, so the fuzzer works on IDX headers behind the gzip path (whose
 * size checks differ: the decompressed size is unknown until read) without
 * having to forge deflate streams; the rest may also be a gzip stream
 * itself. Bits 1-2 pick the item limit. The file goes into a memfd, so the
 * public path-based API reads it as it would a file on disk. */
#define _GNU_SOURCE /* memfd_create */
#include "fuzz_common.h"

#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

/* gzip of data[0..size) into a new buffer (free with free). */
static unsigned char *gzip_bytes(const uint8_t *data, size_t size,
                                 size_t *out_size) {
  z_stream z;
  memset(&z, 0, sizeof z);
  if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return NULL;
  uLong cap = deflateBound(&z, (uLong)size);
  unsigned char *out = malloc(cap);
  if (out != NULL) {
    z.next_in = (Bytef *)(uintptr_t)data;
    z.avail_in = (uInt)size;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    FUZZ_CHECK(deflate(&z, Z_FINISH) == Z_STREAM_END);
    *out_size = z.total_out;
  }
  deflateEnd(&z);
  return out;
}

static void check_images(const nnlib_tensor *t, int64_t limit) {
  FUZZ_CHECK(nnlib_tensor_get_rank(t) == 3);
  FUZZ_CHECK(limit == 0 || nnlib_tensor_get_dim(t, 0) <= limit);
  const float *v = nnlib_tensor_get_data_const(t);
  for (int64_t i = 0; i < nnlib_tensor_get_size(t); i++)
    FUZZ_CHECK(v[i] >= 0.0f && v[i] <= 1.0f);
}

static void check_labels(const nnlib_tensor *t, int64_t classes, int one_hot) {
  FUZZ_CHECK(nnlib_tensor_get_rank(t) == (size_t)(one_hot ? 2 : 1));
  const float *v = nnlib_tensor_get_data_const(t);
  int64_t n = nnlib_tensor_get_dim(t, 0);
  for (int64_t i = 0; i < n; i++) {
    if (one_hot) {
      float sum = 0.0f;
      for (int64_t c = 0; c < classes; c++)
        sum += v[i * classes + c];
      FUZZ_CHECK(sum == 1.0f);
    } else {
      FUZZ_CHECK(v[i] >= 0.0f && v[i] < (float)classes);
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  fuzz_begin();
  uint8_t mode = data[0];
  const uint8_t *file = data + 1;
  size_t file_size = size - 1;
  unsigned char *zipped = NULL;
  if (mode & 1) {
    zipped = gzip_bytes(file, file_size, &file_size);
    if (zipped == NULL)
      return 0;
    file = zipped;
  }
  int fd = memfd_create("fuzz_idx", MFD_CLOEXEC);
  FUZZ_CHECK(fd >= 0);
  FUZZ_CHECK(write(fd, file, file_size) == (ssize_t)file_size);
  free(zipped);
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);

  const int64_t limits[4] = {0, 1, 3, 1000};
  int64_t limit = limits[(mode >> 1) & 3];
  nnlib_tensor *t = NULL;
  nnlib_status st = nnlib_idx_load_images(&t, path, limit);
  fuzz_expect(st);
  FUZZ_CHECK((st == NNLIB_OK) == (t != NULL));
  if (t != NULL)
    check_images(t, limit);
  nnlib_tensor_free(t);

  const int64_t classes[2] = {10, 256};
  for (int one_hot = 0; one_hot <= 1; one_hot++) {
    int64_t k = classes[(mode >> 3) & 1];
    st = nnlib_idx_load_labels(&t, path, k, one_hot, limit);
    fuzz_expect(st);
    FUZZ_CHECK((st == NNLIB_OK) == (t != NULL));
    if (t != NULL)
      check_labels(t, k, one_hot);
    nnlib_tensor_free(t);
  }
  close(fd);
  fuzz_end();
  return 0;
}
