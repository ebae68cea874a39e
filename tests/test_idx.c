/* The IDX reader and the data set loader on files this test writes itself,
 * plain and gzip: exact values of good files, and one exact status with a
 * message naming the file for every kind of broken one. Every case runs
 * under the counting allocator and must end with nothing live. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, setenv, truncate, opendir */
#include "test_support.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* ------------------------------------------------------------ fixtures */

static char tmp_dir[] = "/tmp/nnlib_idx_XXXXXX";
static ts_alloc_stats alloc_stats;

static int make_tmp_dir(void **state) {
  (void)state;
  return mkdtemp(tmp_dir) == NULL ? -1 : 0;
}

static int remove_tmp_dir(void **state) {
  (void)state;
  DIR *d = opendir(tmp_dir);
  if (d == NULL)
    return -1;
  char path[512];
  for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    snprintf(path, sizeof path, "%s/%s", tmp_dir, e->d_name);
    unlink(path);
  }
  closedir(d);
  return rmdir(tmp_dir);
}

static int count_allocations(void **state) {
  (void)state;
  ts_alloc_install(&alloc_stats);
  return 0;
}

/* Every case must leave no nnlib allocation alive. */
static int check_no_leak(void **state) {
  (void)state;
  long live = alloc_stats.live;
  ts_alloc_uninstall();
  if (live != 0)
    fprintf(stderr, "leak: %ld nnlib allocations still live\n", live);
  return live == 0 ? 0 : -1;
}

/* ------------------------------------------------------- file builders */

typedef struct blob {
  uint8_t bytes[1 << 12];
  size_t size;
} blob;

static void put_bytes(blob *b, const void *data, size_t n) {
  assert_true(b->size + n <= sizeof b->bytes);
  memcpy(b->bytes + b->size, data, n);
  b->size += n;
}

static void put_be32(blob *b, uint32_t v) {
  uint8_t raw[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8),
                    (uint8_t)v};
  put_bytes(b, raw, 4);
}

/* Magic 00 00 type rank, then the dimensions. */
static void put_header(blob *b, uint8_t type, uint8_t rank,
                       const uint32_t *dims) {
  uint8_t magic[4] = {0, 0, type, rank};
  put_bytes(b, magic, 4);
  for (uint8_t i = 0; i < rank; i++)
    put_be32(b, dims[i]);
}

/* Writes n bytes to tmp_dir/name, gzip-compressed when gz; returns the path
 * in a static buffer (one per name is enough for a case). */
static const char *write_file(const char *name, const void *data, size_t n,
                              int gz) {
  static char path[4][512];
  static int next;
  char *p = path[next++ % 4];
  snprintf(p, sizeof path[0], "%s/%s", tmp_dir, name);
  if (gz) {
    gzFile f = gzopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(gzwrite(f, data, (unsigned)n), (int)n);
    assert_int_equal(gzclose(f), Z_OK);
  } else {
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
  }
  return p;
}

static const char *write_blob(const char *name, const blob *b, int gz) {
  return write_file(name, b->bytes, b->size, gz);
}

/* Three 2x3 images covering 0, 255 and values between. */
enum { N_IMAGES = 3, ROWS = 2, COLS = 3, PIXELS = N_IMAGES * ROWS * COLS };
static const uint8_t pixels[PIXELS] = {0,   1,   2,   127, 128, 254,
                                       255, 37,  74,  111, 148, 185,
                                       222, 3,   40,  77,  114, 255};
static const uint32_t image_dims[3] = {N_IMAGES, ROWS, COLS};

static blob good_images(void) {
  blob b = {{0}, 0};
  put_header(&b, 0x08, 3, image_dims);
  put_bytes(&b, pixels, PIXELS);
  return b;
}

enum { N_LABELS = 4 };
static const uint8_t label_values[N_LABELS] = {3, 0, 9, 1};

static blob good_labels(void) {
  blob b = {{0}, 0};
  uint32_t n = N_LABELS;
  put_header(&b, 0x08, 1, &n);
  put_bytes(&b, label_values, N_LABELS);
  return b;
}

/* Loading `path` as images fails with exactly `want` and a message that
 * names the file. */
static void expect_images_fail(nnlib_status want, const char *path,
                               int64_t limit) {
  nnlib_tensor *t = (nnlib_tensor *)&t; /* must be reset to NULL */
  ASSERT_STATUS(want, nnlib_idx_load_images(&t, path, limit));
  assert_null(t);
  assert_non_null(strstr(nnlib_last_error_message(), path));
}

static void expect_labels_fail(nnlib_status want, const char *path) {
  nnlib_tensor *t = (nnlib_tensor *)&t;
  ASSERT_STATUS(want, nnlib_idx_load_labels(&t, path, 10, 0, 0));
  assert_null(t);
  assert_non_null(strstr(nnlib_last_error_message(), path));
}

/* ------------------------------------------------------- good files */

static void check_images(nnlib_tensor *t, int64_t n) {
  assert_int_equal(nnlib_tensor_get_rank(t), 3);
  assert_int_equal(nnlib_tensor_get_dim(t, 0), n);
  assert_int_equal(nnlib_tensor_get_dim(t, 1), ROWS);
  assert_int_equal(nnlib_tensor_get_dim(t, 2), COLS);
  const float *v = nnlib_tensor_get_data_const(t);
  for (int64_t i = 0; i < n * ROWS * COLS; i++)
    assert_true(v[i] == (float)pixels[i] / 255.0f);
  assert_true(v[0] == 0.0f);
  if (n > 1)
    assert_true(v[6] == 1.0f);
}

static void test_images_plain_and_gzip(void **s) {
  (void)s;
  blob b = good_images();
  for (int gz = 0; gz <= 1; gz++) {
    nnlib_tensor *t = NULL;
    ASSERT_OK(nnlib_idx_load_images(&t, write_blob("img", &b, gz), 0));
    check_images(t, N_IMAGES);
    nnlib_tensor_free(t);
  }
}

static void test_labels_indices_and_one_hot(void **s) {
  (void)s;
  blob b = good_labels();
  for (int gz = 0; gz <= 1; gz++) {
    const char *path = write_blob("lbl", &b, gz);
    nnlib_tensor *idx = NULL, *hot = NULL;
    ASSERT_OK(nnlib_idx_load_labels(&idx, path, 10, 0, 0));
    ASSERT_OK(nnlib_idx_load_labels(&hot, path, 10, 1, 0));
    assert_int_equal(nnlib_tensor_get_rank(idx), 1);
    assert_int_equal(nnlib_tensor_get_dim(idx, 0), N_LABELS);
    assert_int_equal(nnlib_tensor_get_rank(hot), 2);
    assert_int_equal(nnlib_tensor_get_dim(hot, 1), 10);
    const float *vi = nnlib_tensor_get_data_const(idx);
    const float *vh = nnlib_tensor_get_data_const(hot);
    for (int i = 0; i < N_LABELS; i++) {
      assert_true(vi[i] == (float)label_values[i]);
      for (int k = 0; k < 10; k++)
        assert_true(vh[i * 10 + k] == (k == label_values[i] ? 1.0f : 0.0f));
    }
    nnlib_tensor_free(idx);
    nnlib_tensor_free(hot);
  }
}

/* More than the reader's first gzip chunk (1 MiB), so its buffer grows. */
static void test_large_file_grows(void **s) {
  (void)s;
  enum { N = 1500, SIDE = 28, HEADER = 16 };
  size_t bytes = HEADER + (size_t)N * SIDE * SIDE;
  uint8_t *file = malloc(bytes);
  assert_non_null(file);
  uint8_t head[HEADER] = {0, 0, 8, 3, 0, 0, N >> 8, N & 0xff,
                          0, 0, 0, SIDE, 0, 0, 0, SIDE};
  memcpy(file, head, HEADER);
  for (size_t i = HEADER; i < bytes; i++)
    file[i] = (uint8_t)(i * 7 % 251);
  for (int gz = 0; gz <= 1; gz++) {
    nnlib_tensor *t = NULL;
    ASSERT_OK(nnlib_idx_load_images(&t, write_file("big", file, bytes, gz), 0));
    assert_int_equal(nnlib_tensor_get_dim(t, 0), N);
    const float *v = nnlib_tensor_get_data_const(t);
    for (size_t i = HEADER; i < bytes; i += 997)
      assert_true(v[i - HEADER] == (float)file[i] / 255.0f);
    assert_true(v[bytes - HEADER - 1] == (float)file[bytes - 1] / 255.0f);
    nnlib_tensor_free(t);
  }
  free(file);
}

static void test_limit(void **s) {
  (void)s;
  blob b = good_images();
  blob extra = b; /* a limited read ignores what follows its items */
  put_bytes(&extra, "tail", 4);
  for (int gz = 0; gz <= 1; gz++) {
    nnlib_tensor *t = NULL;
    ASSERT_OK(nnlib_idx_load_images(&t, write_blob("img", &b, gz), 2));
    check_images(t, 2);
    nnlib_tensor_free(t);
    ASSERT_OK(nnlib_idx_load_images(&t, write_blob("img", &extra, gz), 1));
    check_images(t, 1);
    nnlib_tensor_free(t);
    /* a limit beyond the count reads everything, and checks the end */
    ASSERT_OK(nnlib_idx_load_images(&t, write_blob("img", &b, gz), 99));
    check_images(t, N_IMAGES);
    nnlib_tensor_free(t);
    expect_images_fail(NNLIB_ERR_CORRUPT_FILE,
                       write_blob("img", &extra, gz), 99);
  }
  blob lb = good_labels();
  nnlib_tensor *l = NULL;
  ASSERT_OK(nnlib_idx_load_labels(&l, write_blob("lbl", &lb, 1), 10, 1, 2));
  assert_int_equal(nnlib_tensor_get_dim(l, 0), 2);
  assert_true(nnlib_tensor_get_data(l)[3] == 1.0f); /* label 3 */
  nnlib_tensor_free(l);
}

/* ------------------------------------------------------- broken files */

static void test_truncated_header(void **s) {
  (void)s;
  blob b = good_images();
  size_t cuts[] = {0, 2, 4, 9, 15}; /* in the magic and in the dimensions */
  for (int gz = 0; gz <= 1; gz++)
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
      expect_images_fail(NNLIB_ERR_TRUNCATED,
                         write_file("img", b.bytes, cuts[i], gz), 0);
}

static void test_truncated_data(void **s) {
  (void)s;
  blob b = good_images();
  for (int gz = 0; gz <= 1; gz++) {
    expect_images_fail(NNLIB_ERR_TRUNCATED,
                       write_file("img", b.bytes, 16, gz), 0);
    expect_images_fail(NNLIB_ERR_TRUNCATED,
                       write_file("img", b.bytes, b.size - 1, gz), 0);
  }
  blob lb = good_labels();
  expect_labels_fail(NNLIB_ERR_TRUNCATED,
                     write_file("lbl", lb.bytes, lb.size - 2, 1));
}

/* A gzip file cut short inside its compressed stream. */
static void test_truncated_gzip_stream(void **s) {
  (void)s;
  blob b = good_images();
  const char *path = write_blob("img", &b, 1);
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  uint8_t gz[256];
  size_t n = fread(gz, 1, sizeof gz, f);
  fclose(f);
  assert_true(n > 20);
  expect_images_fail(NNLIB_ERR_TRUNCATED, write_file("cut", gz, n - 12, 0),
                     0);
}

/* Valid gzip framing around a deflate stream that does not decode. */
static void test_corrupt_gzip_stream(void **s) {
  (void)s;
  uint8_t bad[] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff,
                   0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0};
  expect_images_fail(NNLIB_ERR_CORRUPT_FILE,
                     write_file("bad", bad, sizeof bad, 0), 0);
}

/* Appends n bytes as one more gzip member (gzopen "ab" starts a new one). */
static void append_gzip(const char *path, const void *data, size_t n) {
  gzFile f = gzopen(path, "ab");
  assert_non_null(f);
  if (n > 0)
    assert_int_equal(gzwrite(f, data, (unsigned)n), (int)n);
  assert_int_equal(gzclose(f), Z_OK);
}

/* The bytes of `b` gzipped as one member, into out; returns their count. */
static size_t gzip_blob(const blob *b, uint8_t *out, size_t cap) {
  const char *path = write_blob("member", b, 1);
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  size_t n = fread(out, 1, cap, f);
  assert_int_equal(fclose(f), 0);
  assert_true(n > 18 && n < cap);
  return n;
}

/* Members split inside the magic, the dimensions and the data, with an
 * empty member between: one stream, as gzread and gzip -d read it. */
static void test_gzip_members(void **s) {
  (void)s;
  blob b = good_images();
  const char *path = write_file("img", b.bytes, 2, 1);
  append_gzip(path, b.bytes + 2, 8);
  append_gzip(path, NULL, 0);
  append_gzip(path, b.bytes + 10, 12);
  append_gzip(path, b.bytes + 22, b.size - 22);
  nnlib_tensor *t = NULL;
  ASSERT_OK(nnlib_idx_load_images(&t, path, 0));
  check_images(t, N_IMAGES);
  nnlib_tensor_free(t);
  append_gzip(path, "x", 1); /* a member with data after the last item */
  expect_images_fail(NNLIB_ERR_CORRUPT_FILE, path, 0);
}

/* After a complete member, bytes that do not start another one are
 * ignored (gzread's and gzip -d's rule: tools pad .gz files); bytes that
 * do (1f 8b) must form a valid member. */
static void test_gzip_trailing_garbage(void **s) {
  (void)s;
  blob b = good_images();
  uint8_t gz[512];
  size_t n = gzip_blob(&b, gz, sizeof gz - 16);
  const uint8_t *tails[] = {(const uint8_t *)"garbage\0\0\0",
                            (const uint8_t *)"\x1f",
                            (const uint8_t *)"\x1f\x8bjunkjunk"};
  size_t tail_bytes[] = {10, 1, 10};
  for (int i = 0; i < 3; i++) {
    memcpy(gz + n, tails[i], tail_bytes[i]);
    const char *path = write_file("pad", gz, n + tail_bytes[i], 0);
    nnlib_tensor *t = NULL;
    if (i < 2) {
      ASSERT_OK(nnlib_idx_load_images(&t, path, 0));
      check_images(t, N_IMAGES);
      nnlib_tensor_free(t);
    } else {
      expect_images_fail(NNLIB_ERR_CORRUPT_FILE, path, 0);
    }
  }
}

/* A member without all of its 8-byte trailer (CRC-32, size) is cut short,
 * also when the data is complete; a limited read stops before it. */
static void test_gzip_cut_in_trailer(void **s) {
  (void)s;
  blob b = good_images();
  uint8_t gz[512];
  size_t n = gzip_blob(&b, gz, sizeof gz);
  size_t cuts[] = {1, 4, 8};
  for (size_t i = 0; i < 3; i++) {
    const char *path = write_file("cut", gz, n - cuts[i], 0);
    expect_images_fail(NNLIB_ERR_TRUNCATED, path, 0);
    ts_expect_message("cut short");
    nnlib_tensor *t = NULL;
    ASSERT_OK(nnlib_idx_load_images(&t, path, 1));
    check_images(t, 1);
    nnlib_tensor_free(t);
  }
  /* a second member that stops inside its header */
  memcpy(gz + n, gz, 5);
  expect_images_fail(NNLIB_ERR_TRUNCATED, write_file("cut", gz, n + 5, 0), 0);
}

/* The gzip trailer checks the data: a wrong CRC-32 or size is corrupt. */
static void test_gzip_bad_check(void **s) {
  (void)s;
  blob b = good_images();
  uint8_t gz[512];
  size_t n = gzip_blob(&b, gz, sizeof gz);
  size_t fields[] = {n - 8, n - 4}; /* CRC-32, then the size */
  for (size_t i = 0; i < 2; i++) {
    gz[fields[i]] ^= 1;
    expect_images_fail(NNLIB_ERR_CORRUPT_FILE,
                       write_file("check", gz, n, 0), 0);
    ts_expect_message(i == 0 ? "incorrect data check"
                             : "incorrect length check");
    gz[fields[i]] ^= 1;
  }
}

/* zlib's inflate state and window now come from the allocator hook: the
 * same images cost more allocations gzipped than plain (two more with
 * zlib 1.2 and 1.3: the state, then the window on the first output). */
static void test_gzip_allocates_through_hook(void **s) {
  (void)s;
  blob b = good_images();
  long allocs[2];
  for (int gz = 0; gz <= 1; gz++) {
    const char *path = write_blob("img", &b, gz);
    long before = alloc_stats.allocs;
    nnlib_tensor *t = NULL;
    ASSERT_OK(nnlib_idx_load_images(&t, path, 0));
    allocs[gz] = alloc_stats.allocs - before;
    nnlib_tensor_free(t);
    assert_int_equal(alloc_stats.live, 0);
  }
  assert_true(allocs[1] > allocs[0]);
}

/* Every allocation of a gzip read fails in turn, alone and with all later
 * ones: out of memory with a message, nothing left allocated, and zlib's
 * own allocations among those that failed. */
static void test_gzip_out_of_memory(void **s) {
  (void)s;
  blob b = good_labels();
  const char *path = write_blob("lbl", &b, 1);
  int zlib_failures = 0;
  for (int persistent = 0; persistent <= 1; persistent++) {
    ts_alloc_fail_persistent(persistent);
    for (long k = 1;; k++) {
      alloc_stats.fail_at = alloc_stats.allocs + k;
      nnlib_tensor *t = (nnlib_tensor *)&t;
      nnlib_status st = nnlib_idx_load_labels(&t, path, 10, 1, 0);
      int injected = alloc_stats.allocs >= alloc_stats.fail_at;
      alloc_stats.fail_at = 0;
      if (!injected) { /* k passed the last allocation: all were failed */
        ASSERT_OK(st);
        nnlib_tensor_free(t);
        break;
      }
      assert_int_equal(alloc_stats.live, 0);
      assert_int_equal(st, NNLIB_ERR_OUT_OF_MEMORY);
      assert_null(t);
      assert_true(nnlib_last_error_message()[0] != '\0');
      zlib_failures += strstr(nnlib_last_error_message(), "zlib") != NULL;
    }
  }
  ts_alloc_fail_persistent(0);
  assert_true(zlib_failures >= 2); /* one per mode at least */
}

/* A read(2) that fails: /proc/self/mem opens, but address 0 is unmapped. */
static void test_read_error(void **s) {
  (void)s;
  if (access("/proc/self/mem", R_OK) != 0)
    skip();
  expect_images_fail(NNLIB_ERR_IO, "/proc/self/mem", 0);
  ts_expect_message("in the magic number");
}

static void test_wrong_magic(void **s) {
  (void)s;
  blob b = good_images();
  b.bytes[0] = 0x01;
  blob c = good_images();
  c.bytes[1] = 0x08;
  for (int gz = 0; gz <= 1; gz++) {
    expect_images_fail(NNLIB_ERR_BAD_MAGIC, write_blob("img", &b, gz), 0);
    expect_images_fail(NNLIB_ERR_BAD_MAGIC, write_blob("img", &c, gz), 0);
  }
  expect_images_fail(NNLIB_ERR_BAD_MAGIC,
                     write_file("txt", "hello, world\n", 13, 0), 0);
}

static void test_wrong_type(void **s) {
  (void)s;
  uint8_t types[] = {0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0xFF};
  for (size_t i = 0; i < sizeof types; i++) {
    blob b = good_images();
    b.bytes[2] = types[i];
    expect_images_fail(NNLIB_ERR_UNSUPPORTED, write_blob("img", &b, 1), 0);
  }
}

static void test_wrong_rank(void **s) {
  (void)s;
  blob images = good_images(), labels = good_labels();
  expect_labels_fail(NNLIB_ERR_UNSUPPORTED, write_blob("img", &images, 0));
  expect_images_fail(NNLIB_ERR_UNSUPPORTED, write_blob("lbl", &labels, 0), 0);
  uint8_t ranks[] = {0, 2, 4, 255};
  for (size_t i = 0; i < sizeof ranks; i++) {
    blob b = good_images();
    b.bytes[3] = ranks[i];
    expect_images_fail(NNLIB_ERR_UNSUPPORTED, write_blob("img", &b, 0), 0);
  }
}

static void test_zero_dimension(void **s) {
  (void)s;
  for (int axis = 0; axis < 3; axis++) {
    uint32_t dims[3] = {N_IMAGES, ROWS, COLS};
    dims[axis] = 0;
    blob b = {{0}, 0};
    put_header(&b, 0x08, 3, dims);
    put_bytes(&b, pixels, PIXELS);
    expect_images_fail(NNLIB_ERR_CORRUPT_FILE, write_blob("img", &b, axis & 1),
                       0);
  }
  uint32_t zero = 0;
  blob lb = {{0}, 0};
  put_header(&lb, 0x08, 1, &zero);
  expect_labels_fail(NNLIB_ERR_CORRUPT_FILE, write_blob("lbl", &lb, 0));
}

static void test_overflowing_dimensions(void **s) {
  (void)s;
  uint32_t huge[][3] = {{0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu},
                        {0xFFFFFFFFu, 0xFFFFFFFFu, 2},
                        {0x80000000u, 0x80000000u, 0x80000000u}};
  for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++)
    for (int gz = 0; gz <= 1; gz++) {
      blob b = {{0}, 0};
      put_header(&b, 0x08, 3, huge[i]);
      put_bytes(&b, pixels, PIXELS);
      expect_images_fail(NNLIB_ERR_TOO_LARGE, write_blob("img", &b, gz), 0);
    }
}

/* An allocator that records the largest request, for the lying header. */
static size_t largest_request;
static long live_blocks;
static void *tracking_alloc(size_t size, size_t alignment, void *user) {
  (void)user;
  largest_request = size > largest_request ? size : largest_request;
  void *p = aligned_alloc(alignment, (size + alignment - 1) / alignment *
                                         alignment);
  live_blocks += p != NULL;
  return p;
}
static void tracking_free(void *p, void *user) {
  (void)user;
  live_blocks -= p != NULL;
  free(p);
}

/* 2^16 x 2^16 x 2^8 = 2^40 bytes claimed, 18 present: no product
 * overflows, so only the data actually present may bound the allocation. */
static void test_lying_header_allocates_little(void **s) {
  (void)s;
  ts_alloc_uninstall(); /* this case counts with its own allocator */
  nnlib_allocator a = {sizeof a, tracking_alloc, tracking_free, NULL};
  ASSERT_OK(nnlib_set_allocator(&a));
  uint32_t dims[3] = {1u << 16, 1u << 16, 1u << 8};
  blob b = {{0}, 0};
  put_header(&b, 0x08, 3, dims);
  put_bytes(&b, pixels, PIXELS);
  for (int gz = 0; gz <= 1; gz++) {
    largest_request = 0;
    expect_images_fail(NNLIB_ERR_TRUNCATED, write_blob("img", &b, gz), 0);
    assert_true(largest_request <= (size_t)2 << 20);
    assert_int_equal(live_blocks, 0);
  }
  ts_alloc_install(&alloc_stats);
}

static void test_trailing_bytes(void **s) {
  (void)s;
  blob b = good_images(), lb = good_labels();
  put_bytes(&b, "x", 1);
  put_bytes(&lb, "\0\0", 2);
  for (int gz = 0; gz <= 1; gz++) {
    expect_images_fail(NNLIB_ERR_CORRUPT_FILE, write_blob("img", &b, gz), 0);
    expect_labels_fail(NNLIB_ERR_CORRUPT_FILE, write_blob("lbl", &lb, gz));
  }
}

static void test_label_out_of_range(void **s) {
  (void)s;
  blob b = good_labels(); /* holds a 9 */
  const char *path = write_blob("lbl", &b, 1);
  nnlib_tensor *t = NULL;
  ASSERT_STATUS(NNLIB_ERR_OUT_OF_RANGE,
                nnlib_idx_load_labels(&t, path, 9, 1, 0));
  assert_null(t);
  assert_non_null(strstr(nnlib_last_error_message(), path));
  b.bytes[8 + 1] = 200;
  expect_labels_fail(NNLIB_ERR_OUT_OF_RANGE, write_blob("lbl", &b, 0));
}

static void test_missing_file_and_directory(void **s) {
  (void)s;
  char path[512];
  snprintf(path, sizeof path, "%s/no-such-file", tmp_dir);
  expect_images_fail(NNLIB_ERR_IO, path, 0);
  expect_labels_fail(NNLIB_ERR_IO, path);
  expect_images_fail(NNLIB_ERR_IO, tmp_dir, 0); /* a directory */
}

static void test_bad_arguments(void **s) {
  (void)s;
  blob b = good_labels();
  const char *path = write_blob("lbl", &b, 0);
  nnlib_tensor *t = NULL;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_idx_load_images(NULL, path, 0));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_idx_load_images(&t, NULL, 0));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_idx_load_images(&t, path, -1));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_idx_load_labels(&t, path, 0, 0, 0));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_idx_load_labels(&t, path, 10, 2, 0));
  nnlib_tensor *l = NULL;
  ASSERT_STATUS(
      NNLIB_ERR_INVALID_ARGUMENT,
      nnlib_dataset_load_split(&t, &l, tmp_dir, (nnlib_split)7, 0, 0));
  ASSERT_STATUS(
      NNLIB_ERR_INVALID_ARGUMENT,
      nnlib_dataset_load_split(NULL, &l, tmp_dir, NNLIB_SPLIT_TEST, 0, 0));
  assert_null(t);
  assert_null(l);
}

/* ------------------------------------------------------------ data set */

static void remove_file(const char *name) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", tmp_dir, name);
  unlink(path);
}

/* Train split gzipped, test split plain, as both layouts occur. */
static void test_dataset_load(void **s) {
  (void)s;
  blob img = good_images(), lbl = good_labels();
  uint32_t n = N_IMAGES;
  blob lbl3 = {{0}, 0};
  put_header(&lbl3, 0x08, 1, &n);
  put_bytes(&lbl3, label_values, N_IMAGES);
  write_blob("train-images-idx3-ubyte.gz", &img, 1);
  write_blob("train-labels-idx1-ubyte.gz", &lbl3, 1);
  write_blob("t10k-images-idx3-ubyte", &img, 0);
  write_blob("t10k-labels-idx1-ubyte", &lbl3, 0);
  nnlib_tensor *x = NULL, *y = NULL;
  ASSERT_OK(nnlib_dataset_load_split(&x, &y, tmp_dir, NNLIB_SPLIT_TRAIN, 0, 1));
  check_images(x, N_IMAGES);
  assert_int_equal(nnlib_tensor_get_dim(y, 1), 10);
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  ASSERT_OK(nnlib_dataset_load_split(&x, &y, tmp_dir, NNLIB_SPLIT_TEST, 2, 0));
  check_images(x, 2);
  assert_true(nnlib_tensor_get_data(y)[1] == (float)label_values[1]);
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);

  /* 3 images, 4 labels */
  write_blob("t10k-labels-idx1-ubyte", &lbl, 0);
  x = y = (nnlib_tensor *)&x;
  ASSERT_STATUS(
      NNLIB_ERR_SHAPE_MISMATCH,
      nnlib_dataset_load_split(&x, &y, tmp_dir, NNLIB_SPLIT_TEST, 0, 0));
  assert_null(x);
  assert_null(y);
  assert_non_null(strstr(nnlib_last_error_message(), "t10k-labels"));

  /* a missing file names what was looked for */
  remove_file("t10k-labels-idx1-ubyte");
  ASSERT_STATUS(NNLIB_ERR_IO, nnlib_dataset_load_split(&x, &y, tmp_dir,
                                                       NNLIB_SPLIT_TEST, 0, 0));
  assert_non_null(strstr(nnlib_last_error_message(), "t10k-labels-idx1-ubyte"));
  assert_null(x);
  assert_null(y);
  remove_file("t10k-images-idx3-ubyte");
  remove_file("train-images-idx3-ubyte.gz");
  remove_file("train-labels-idx1-ubyte.gz");
}

static void test_default_dir(void **s) {
  (void)s;
  const char *saved = getenv("NNLIB_DATA_DIR");
  char *copy = saved != NULL ? strdup(saved) : NULL;
  unsetenv("NNLIB_DATA_DIR");
  assert_string_equal(nnlib_dataset_default_dir(),
                      "/usr/share/datasets/fashion-mnist");
  setenv("NNLIB_DATA_DIR", tmp_dir, 1);
  assert_string_equal(nnlib_dataset_default_dir(), tmp_dir);
  /* dir NULL reads the default directory, here the empty temp dir */
  nnlib_tensor *x = NULL, *y = NULL;
  ASSERT_STATUS(NNLIB_ERR_IO, nnlib_dataset_load_split(
                                  &x, &y, NULL, NNLIB_SPLIT_TRAIN, 0, 0));
  assert_non_null(strstr(nnlib_last_error_message(), tmp_dir));
  if (copy != NULL)
    setenv("NNLIB_DATA_DIR", copy, 1);
  else
    unsetenv("NNLIB_DATA_DIR");
  free(copy);
}

#define CASE(f) cmocka_unit_test_setup_teardown(f, count_allocations, check_no_leak)

int main(void) {
  const struct CMUnitTest tests[] = {
      CASE(test_images_plain_and_gzip),
      CASE(test_labels_indices_and_one_hot),
      CASE(test_large_file_grows),
      CASE(test_limit),
      CASE(test_truncated_header),
      CASE(test_truncated_data),
      CASE(test_truncated_gzip_stream),
      CASE(test_corrupt_gzip_stream),
      CASE(test_gzip_members),
      CASE(test_gzip_trailing_garbage),
      CASE(test_gzip_cut_in_trailer),
      CASE(test_gzip_bad_check),
      CASE(test_gzip_allocates_through_hook),
      CASE(test_gzip_out_of_memory),
      CASE(test_read_error),
      CASE(test_wrong_magic),
      CASE(test_wrong_type),
      CASE(test_wrong_rank),
      CASE(test_zero_dimension),
      CASE(test_overflowing_dimensions),
      CASE(test_lying_header_allocates_little),
      CASE(test_trailing_bytes),
      CASE(test_label_out_of_range),
      CASE(test_missing_file_and_directory),
      CASE(test_bad_arguments),
      CASE(test_dataset_load),
      CASE(test_default_dir),
  };
  return cmocka_run_group_tests(tests, make_tmp_dir, remove_tmp_dir);
}
