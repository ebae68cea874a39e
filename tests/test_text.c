/* The text data source (nnlib_text_*): which files a directory contributes
 * and in what order, the split, sampled windows (against a second,
 * test-side implementation of the generator: splitmix64 seeding,
 * xoshiro256**, rejection sampling below a bound), the tiling of
 * nnlib_text_window, every refused input with its exact status, and loading
 * under allocation failure at every allocation. Every case runs under the
 * counting allocator and must end with nothing live. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, symlink, ftruncate */
#include "test_support.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static ts_alloc_stats alloc_stats;

static int count_allocations(void **state) {
  (void)state;
  ts_alloc_install(&alloc_stats);
  return 0;
}

static int check_no_leak(void **state) {
  (void)state;
  long live = alloc_stats.live;
  ts_alloc_uninstall();
  if (live != 0)
    fprintf(stderr, "leak: %ld nnlib allocations still live\n", live);
  return live == 0 ? 0 : -1;
}

/* ------------------------------------------------- the corpus directory */

/* tmp/corpus holds four texts, named so that byte order differs from a
 * locale's order ("Z" < "a" < "b.txt" < "\xc3\xa9", 'é' in UTF-8), and
 * five entries a directory does not contribute: an index, a dotfile, a
 * subdirectory (with a text inside), a symlink to a text (as Debian's
 * NAME.u8 links) and a dotted copy. tmp/empty is an empty directory and
 * tmp/skipped holds only entries that are not texts. */
static char tmp_dir[] = "/tmp/nnlib_text_XXXXXX";

typedef struct named_text {
  const char *name;
  const char *bytes;
} named_text;

static const named_text texts[] = {
    {"b.txt", "bravo text\n"},
    {"Z", "Zulu: capital first.\n"},
    {"\xc3\xa9", "e acute, last: bytes above 0x7f sort after ASCII\n"},
    {"a", "alpha\n%\n"},
};
/* The concatenation in byte order of the names. */
static const char *const in_order[] = {"Z", "a", "b.txt", "\xc3\xa9"};
static const named_text skipped[] = {
    {"a.dat", "index bytes\x01\x02"},
    {".hidden", "a dotfile"},
    {"sub/inner", "in a subdirectory"},
};

static void path_in(char *out, size_t cap, const char *rel) {
  snprintf(out, cap, "%s/%s", tmp_dir, rel);
}

static void write_file(const char *rel, const char *bytes) {
  char path[256];
  path_in(path, sizeof path, rel);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(bytes, 1, strlen(bytes), f), strlen(bytes));
  assert_int_equal(fclose(f), 0);
}

static void make_dir(const char *rel) {
  char path[256];
  path_in(path, sizeof path, rel);
  assert_int_equal(mkdir(path, 0700), 0);
}

static const char *text_of(const char *name) {
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
    if (strcmp(texts[i].name, name) == 0)
      return texts[i].bytes;
  return NULL;
}

/* The expected concatenation of tmp/corpus, in buf; its length. */
static size_t corpus_bytes(char *buf, size_t cap) {
  size_t n = 0;
  for (size_t i = 0; i < sizeof in_order / sizeof in_order[0]; i++) {
    const char *t = text_of(in_order[i]);
    assert_true(n + strlen(t) < cap);
    memcpy(buf + n, t, strlen(t));
    n += strlen(t);
  }
  return n;
}

static int make_corpus(void **state) {
  (void)state;
  if (mkdtemp(tmp_dir) == NULL)
    return -1;
  make_dir("corpus");
  make_dir("corpus/sub");
  make_dir("empty");
  make_dir("skipped");
  char rel[64];
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    snprintf(rel, sizeof rel, "corpus/%s", texts[i].name);
    write_file(rel, texts[i].bytes);
  }
  for (size_t i = 0; i < sizeof skipped / sizeof skipped[0]; i++) {
    snprintf(rel, sizeof rel, "corpus/%s", skipped[i].name);
    write_file(rel, skipped[i].bytes);
    snprintf(rel, sizeof rel, "skipped/%s", skipped[i].name);
    if (strchr(skipped[i].name, '/') == NULL)
      write_file(rel, skipped[i].bytes);
  }
  char link[256];
  path_in(link, sizeof link, "corpus/a.u8");
  assert_int_equal(symlink("a", link), 0);
  path_in(link, sizeof link, "skipped/b.u8");
  assert_int_equal(symlink("../corpus/b.txt", link), 0);
  return 0;
}

static int remove_corpus(void **state) {
  (void)state;
  static const char *const rels[] = {
      "corpus/b.txt",   "corpus/Z",       "corpus/\xc3\xa9",  "corpus/a",
      "corpus/a.dat",   "corpus/.hidden", "corpus/sub/inner", "corpus/a.u8",
      "skipped/a.dat",  "skipped/.hidden", "skipped/b.u8",    "big"};
  static const char *const dirs[] = {"corpus/sub", "corpus", "empty",
                                     "skipped"};
  char path[256];
  for (size_t i = 0; i < sizeof rels / sizeof rels[0]; i++) {
    path_in(path, sizeof path, rels[i]);
    unlink(path);
  }
  for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
    path_in(path, sizeof path, dirs[i]);
    rmdir(path);
  }
  return rmdir(tmp_dir);
}

/* -------------------------------------------------------------- helpers */

/* The generator of src/core/rng.c written again from the published
 * algorithms (Vigna's splitmix64 and xoshiro256**), and the rejection
 * sampling of nnlib__rng_below, so that offsets are checked against an
 * implementation the library does not share. */
typedef struct ref_rng {
  uint64_t s[4];
} ref_rng;

static uint64_t ref_splitmix(uint64_t *x) {
  uint64_t z = *x += UINT64_C(0x9e3779b97f4a7c15);
  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}

static void ref_seed(ref_rng *r, uint64_t seed) {
  for (int i = 0; i < 4; i++)
    r->s[i] = ref_splitmix(&seed);
}

static uint64_t ref_rotl(uint64_t v, int k) {
  return (v << k) | (v >> (64 - k));
}

static uint64_t ref_next(ref_rng *r) {
  uint64_t *s = r->s;
  uint64_t out = ref_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = ref_rotl(s[3], 45);
  return out;
}

static uint64_t ref_below(ref_rng *r, uint64_t bound) {
  uint64_t limit = UINT64_MAX - UINT64_MAX % bound, v;
  do
    v = ref_next(r);
  while (v >= limit);
  return v % bound;
}

static nnlib_tensor *ids(int64_t rows, int64_t cols) {
  nnlib_tensor *t = NULL;
  int64_t shape[2] = {rows, cols};
  ASSERT_OK(nnlib_tensor_create_int32(&t, shape, 2));
  return t;
}

/* A text of `size` bytes b[i] = i mod 256 (each byte is its own offset
 * while size <= 256). */
static nnlib_text *counting_text(size_t size, double fraction,
                                 uint64_t seed) {
  uint8_t bytes[1024];
  assert_true(size <= sizeof bytes);
  for (size_t i = 0; i < size; i++)
    bytes[i] = (uint8_t)i;
  nnlib_text *t = NULL;
  ASSERT_OK(nnlib_text_from_bytes(&t, bytes, size, fraction, seed));
  return t;
}

/* Row b of x then y's last element: the T + 1 bytes of window b. */
static void window_bytes(const nnlib_tensor *x, const nnlib_tensor *y,
                         int64_t b, uint8_t *out) {
  int64_t T = nnlib_tensor_get_dim(x, 1);
  const int32_t *xd = nnlib_tensor_get_data_int32_const(x);
  const int32_t *yd = nnlib_tensor_get_data_int32_const(y);
  for (int64_t t = 0; t < T; t++) {
    assert_true(xd[b * T + t] >= 0 && xd[b * T + t] <= 255);
    out[t] = (uint8_t)xd[b * T + t];
  }
  out[T] = (uint8_t)yd[b * T + T - 1];
}

/* y is x shifted by one within every row. */
static void assert_shifted(const nnlib_tensor *x, const nnlib_tensor *y) {
  int64_t B = nnlib_tensor_get_dim(x, 0), T = nnlib_tensor_get_dim(x, 1);
  const int32_t *xd = nnlib_tensor_get_data_int32_const(x);
  const int32_t *yd = nnlib_tensor_get_data_int32_const(y);
  for (int64_t b = 0; b < B; b++)
    for (int64_t t = 0; t + 1 < T; t++)
      assert_int_equal(yd[b * T + t], xd[b * T + t + 1]);
}

static bool same_ids(const nnlib_tensor *a, const nnlib_tensor *b) {
  return memcmp(nnlib_tensor_get_data_int32_const(a),
                nnlib_tensor_get_data_int32_const(b),
                (size_t)nnlib_tensor_get_size(a) * sizeof(int32_t)) == 0;
}

/* ------------------------------------------------------------- loading */

static void test_directory_order_and_skips(void **state) {
  (void)state;
  char want[512], dir[256];
  size_t n = corpus_bytes(want, sizeof want);
  path_in(dir, sizeof dir, "corpus");
  const char *paths[1] = {dir};
  nnlib_text *t = NULL;
  ASSERT_OK(nnlib_text_load(&t, paths, 1, 0.25, 1));
  int64_t valid = (int64_t)floor(0.25 * (double)n);
  assert_int_equal(nnlib_text_get_size(t, NNLIB_TEXT_TRAIN), (int64_t)n - valid);
  assert_int_equal(nnlib_text_get_size(t, NNLIB_TEXT_VALID), valid);
  const uint8_t *train = nnlib_text_get_bytes(t, NNLIB_TEXT_TRAIN);
  const uint8_t *vb = nnlib_text_get_bytes(t, NNLIB_TEXT_VALID);
  assert_memory_equal(train, want, n - (size_t)valid);
  assert_memory_equal(vb, want + n - (size_t)valid, (size_t)valid);
  nnlib_text_free(t);

  /* the same directory with a trailing slash */
  char slash[260];
  snprintf(slash, sizeof slash, "%s/", dir);
  paths[0] = slash;
  ASSERT_OK(nnlib_text_load(&t, paths, 1, 0.0, 1));
  assert_int_equal(nnlib_text_get_size(t, NNLIB_TEXT_TRAIN), (int64_t)n);
  assert_int_equal(nnlib_text_get_size(t, NNLIB_TEXT_VALID), 0);
  assert_memory_equal(nnlib_text_get_bytes(t, NNLIB_TEXT_TRAIN), want, n);
  nnlib_text_free(t);
}

/* Paths in the order given: a file, the directory, a symlink named
 * directly (followed), the file again. */
static void test_paths_in_given_order(void **state) {
  (void)state;
  char file[256], dir[256], link[256], want[1024];
  path_in(file, sizeof file, "corpus/b.txt");
  path_in(dir, sizeof dir, "corpus");
  path_in(link, sizeof link, "corpus/a.u8");
  const char *paths[4] = {file, dir, link, file};
  size_t n = 0;
  n += (size_t)sprintf(want + n, "%s", text_of("b.txt"));
  n += corpus_bytes(want + n, sizeof want - n);
  n += (size_t)sprintf(want + n, "%s%s", text_of("a"), text_of("b.txt"));
  nnlib_text *t = NULL;
  ASSERT_OK(nnlib_text_load(&t, paths, 4, 0.0, 7));
  assert_int_equal(nnlib_text_get_size(t, NNLIB_TEXT_TRAIN), (int64_t)n);
  assert_memory_equal(nnlib_text_get_bytes(t, NNLIB_TEXT_TRAIN), want, n);
  nnlib_text_free(t);
}

static void test_load_refusals(void **state) {
  (void)state;
  char dir[256], missing[256], empty[256], skip_only[256];
  path_in(dir, sizeof dir, "corpus");
  path_in(missing, sizeof missing, "no-such-file");
  path_in(empty, sizeof empty, "empty");
  path_in(skip_only, sizeof skip_only, "skipped");
  const char *paths[2] = {dir, NULL};
  nnlib_text *t = (nnlib_text *)&t; /* must come back NULL */
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_text_load(NULL, paths, 1, 0.1, 1));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_text_load(&t, NULL, 1, 0.1, 1));
  assert_null(t);
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_text_load(&t, paths, 0, 0.1, 1));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_text_load(&t, paths, 2, 0.1, 1));
  ts_expect_message("paths[1]");
  const double bad_fractions[3] = {1.0, -0.1, NAN};
  for (int i = 0; i < 3; i++) {
    ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                  nnlib_text_load(&t, paths, 1, bad_fractions[i], 1));
    ts_expect_message("valid_fraction");
    assert_null(t);
  }
  const char *const bad_paths[3] = {missing, empty, skip_only};
  for (int i = 0; i < 3; i++) {
    const char *one[2] = {dir, bad_paths[i]}; /* after a good path */
    ASSERT_STATUS(NNLIB_ERR_IO, nnlib_text_load(&t, one, 2, 0.1, 1));
    ts_expect_message(bad_paths[i]);
    assert_null(t);
  }
  const char *dev[1] = {"/dev/null"}; /* neither a file nor a directory */
  ASSERT_STATUS(NNLIB_ERR_IO, nnlib_text_load(&t, dev, 1, 0.1, 1));
  ts_expect_message("/dev/null");
}

/* A sparse file of 2^31 bytes is refused before anything is read. */
static void test_load_too_large(void **state) {
  (void)state;
  char big[256];
  path_in(big, sizeof big, "big");
  int fd = open(big, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  int truncated = ftruncate(fd, (off_t)1 << 31);
  close(fd);
  if (truncated != 0) {
    unlink(big);
    print_message("skipped: this file system cannot hold a sparse 2 GiB "
                  "file\n");
    skip();
  }
  const char *paths[1] = {big};
  nnlib_text *t = NULL;
  ASSERT_STATUS(NNLIB_ERR_TOO_LARGE, nnlib_text_load(&t, paths, 1, 0.1, 1));
  ts_expect_message(big);
  assert_null(t);
  unlink(big);
}

static void test_from_bytes(void **state) {
  (void)state;
  const char s[] = "0123456789";
  nnlib_text *t = NULL;
  ASSERT_OK(nnlib_text_from_bytes(&t, s, 10, 0.35, 3));
  assert_int_equal(nnlib_text_get_size(t, NNLIB_TEXT_TRAIN), 7); /* 10-3 */
  assert_int_equal(nnlib_text_get_size(t, NNLIB_TEXT_VALID), 3);
  assert_memory_equal(nnlib_text_get_bytes(t, NNLIB_TEXT_VALID), "789", 3);
  assert_int_equal(nnlib_text_get_size(t, (nnlib_text_split)2), 0);
  assert_null(nnlib_text_get_bytes(t, (nnlib_text_split)2));
  nnlib_text_free(t);
  assert_int_equal(nnlib_text_get_size(NULL, NNLIB_TEXT_TRAIN), 0);
  assert_null(nnlib_text_get_bytes(NULL, NNLIB_TEXT_TRAIN));
  nnlib_text_free(NULL);

  t = (nnlib_text *)&t;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_text_from_bytes(NULL, s, 10, 0.1, 1));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_text_from_bytes(&t, NULL, 10, 0.1, 1));
  assert_null(t);
  const double bad_fractions[3] = {1.0, -0.1, NAN};
  for (int i = 0; i < 3; i++)
    ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                  nnlib_text_from_bytes(&t, s, 10, bad_fractions[i], 1));
  /* the size is checked before a byte is read */
  ASSERT_STATUS(NNLIB_ERR_TOO_LARGE,
                nnlib_text_from_bytes(&t, s, (size_t)1 << 31, 0.1, 1));
  assert_null(t);
  /* an empty text is a text; it has no window */
  ASSERT_OK(nnlib_text_from_bytes(&t, s, 0, 0.5, 1));
  assert_int_equal(nnlib_text_get_size(t, NNLIB_TEXT_TRAIN), 0);
  assert_int_equal(nnlib_text_window_count(t, NNLIB_TEXT_TRAIN, 1), 0);
  nnlib_text_free(t);
}

/* ------------------------------------------------------------- sampling */

/* Offsets are the reference generator's draws below size - T, in row
 * order, batch after batch; bytes b[i] = i make x[b][0] the offset. */
static void test_sample_offsets_match_reference(void **state) {
  (void)state;
  const uint64_t seeds[3] = {0, 1, UINT64_C(0x123456789abcdef)};
  for (int s = 0; s < 3; s++) {
    nnlib_text *t = counting_text(200, 0.25, seeds[s]); /* 150 train */
    nnlib_tensor *x = ids(5, 8), *y = ids(5, 8);
    ref_rng ref;
    ref_seed(&ref, seeds[s]);
    for (int batch = 0; batch < 4; batch++) {
      nnlib_text_split split = batch % 2 ? NNLIB_TEXT_VALID : NNLIB_TEXT_TRAIN;
      int64_t base = split == NNLIB_TEXT_TRAIN ? 0 : 150;
      int64_t size = nnlib_text_get_size(t, split);
      ASSERT_OK(nnlib_text_sample(t, split, x, y));
      assert_shifted(x, y);
      const int32_t *xd = nnlib_tensor_get_data_int32_const(x);
      const int32_t *yd = nnlib_tensor_get_data_int32_const(y);
      for (int64_t b = 0; b < 5; b++) {
        int64_t want = (int64_t)ref_below(&ref, (uint64_t)(size - 8));
        assert_int_equal(xd[b * 8] - base, want);
        for (int64_t k = 0; k < 8; k++) {
          assert_int_equal(xd[b * 8 + k], base + want + k);
          assert_int_equal(yd[b * 8 + k], base + want + k + 1);
        }
      }
    }
    nnlib_tensor_free(x);
    nnlib_tensor_free(y);
    nnlib_text_free(t);
  }
}

/* Every offset 0 .. size - T - 1 occurs, none past it, in roughly equal
 * numbers (a window of 5 bytes in a split of 12: 8 offsets). */
static void test_sample_covers_every_offset(void **state) {
  (void)state;
  nnlib_text *t = counting_text(12, 0.0, 99);
  nnlib_tensor *x = ids(64, 4), *y = ids(64, 4);
  long hits[12] = {0};
  for (int i = 0; i < 100; i++) {
    ASSERT_OK(nnlib_text_sample(t, NNLIB_TEXT_TRAIN, x, y));
    const int32_t *xd = nnlib_tensor_get_data_int32_const(x);
    for (int b = 0; b < 64; b++) {
      assert_in_range(xd[b * 4], 0, 7);
      hits[xd[b * 4]]++;
    }
  }
  for (int o = 0; o < 8; o++) /* 800 expected each, sd about 26 */
    assert_in_range(hits[o], 650, 950);
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  nnlib_text_free(t);
}

static bool is_substring(const uint8_t *hay, int64_t n, const uint8_t *w,
                         int64_t len) {
  for (int64_t i = 0; i + len <= n; i++)
    if (memcmp(hay + i, w, (size_t)len) == 0)
      return true;
  return false;
}

/* On real text (the corpus directory): every window is T + 1 consecutive
 * bytes of its own split; the same seed gives the same batches, another
 * seed others, and the generator advances between batches. */
static void test_sample_windows_are_substrings(void **state) {
  (void)state;
  char dir[256];
  path_in(dir, sizeof dir, "corpus");
  const char *paths[1] = {dir};
  nnlib_text *a = NULL, *b = NULL, *c = NULL;
  ASSERT_OK(nnlib_text_load(&a, paths, 1, 0.3, 42));
  ASSERT_OK(nnlib_text_load(&b, paths, 1, 0.3, 42));
  ASSERT_OK(nnlib_text_load(&c, paths, 1, 0.3, 43));
  const int64_t B = 6, T = 7;
  nnlib_tensor *xa = ids(B, T), *ya = ids(B, T), *xb = ids(B, T),
               *yb = ids(B, T), *xc = ids(B, T), *yc = ids(B, T),
               *first = ids(B, T);
  bool other_seed_differs = false;
  uint8_t w[16];
  for (int batch = 0; batch < 8; batch++) {
    nnlib_text_split split = batch % 3 == 2 ? NNLIB_TEXT_VALID
                                            : NNLIB_TEXT_TRAIN;
    ASSERT_OK(nnlib_text_sample(a, split, xa, ya));
    ASSERT_OK(nnlib_text_sample(b, split, xb, yb));
    ASSERT_OK(nnlib_text_sample(c, split, xc, yc));
    assert_true(same_ids(xa, xb) && same_ids(ya, yb));
    other_seed_differs |= !same_ids(xa, xc);
    assert_shifted(xa, ya);
    for (int64_t r = 0; r < B; r++) {
      window_bytes(xa, ya, r, w);
      assert_true(is_substring(nnlib_text_get_bytes(a, split),
                               nnlib_text_get_size(a, split), w, T + 1));
    }
    if (batch == 0)
      ASSERT_OK(nnlib_tensor_copy(first, xa));
    else if (batch == 1)
      assert_false(same_ids(first, xa)); /* the generator advanced */
  }
  assert_true(other_seed_differs);
  nnlib_tensor *all[7] = {xa, ya, xb, yb, xc, yc, first};
  for (int i = 0; i < 7; i++)
    nnlib_tensor_free(all[i]);
  nnlib_text_free(a);
  nnlib_text_free(b);
  nnlib_text_free(c);
}

/* ------------------------------------------------------------- windows */

static void test_window_count(void **state) {
  (void)state;
  nnlib_text *t = counting_text(21, 0.0, 1);
  assert_int_equal(nnlib_text_window_count(t, NNLIB_TEXT_TRAIN, 4), 5);
  assert_int_equal(nnlib_text_window_count(t, NNLIB_TEXT_TRAIN, 5), 4);
  assert_int_equal(nnlib_text_window_count(t, NNLIB_TEXT_TRAIN, 20), 1);
  assert_int_equal(nnlib_text_window_count(t, NNLIB_TEXT_TRAIN, 21), 0);
  assert_int_equal(nnlib_text_window_count(t, NNLIB_TEXT_TRAIN, 0), 0);
  assert_int_equal(nnlib_text_window_count(t, NNLIB_TEXT_VALID, 1), 0);
  assert_int_equal(nnlib_text_window_count(t, (nnlib_text_split)5, 1), 0);
  assert_int_equal(nnlib_text_window_count(NULL, NNLIB_TEXT_TRAIN, 1), 0);
  nnlib_text_free(t);
}

/* All windows of a split in one call tile it: x reads bytes 0 .. nT - 1,
 * y bytes 1 .. nT; then the same windows two at a time from the end. */
static void test_windows_tile_the_split(void **state) {
  (void)state;
  nnlib_text *t = counting_text(100, 0.3, 1); /* 70 train, 30 valid */
  for (int s = 0; s < 2; s++) {
    nnlib_text_split split = s ? NNLIB_TEXT_VALID : NNLIB_TEXT_TRAIN;
    const uint8_t *bytes = nnlib_text_get_bytes(t, split);
    const int64_t T = 6;
    int64_t n = nnlib_text_window_count(t, split, T);
    assert_int_equal(n, s ? 4 : 11); /* floor(29/6), floor(69/6) */
    nnlib_tensor *x = ids(n, T), *y = ids(n, T);
    ASSERT_OK(nnlib_text_window(t, split, 0, x, y));
    const int32_t *xd = nnlib_tensor_get_data_int32_const(x);
    const int32_t *yd = nnlib_tensor_get_data_int32_const(y);
    for (int64_t i = 0; i < n * T; i++) {
      assert_int_equal(xd[i], bytes[i]);
      assert_int_equal(yd[i], bytes[i + 1]);
    }
    nnlib_tensor *x2 = ids(2, T), *y2 = ids(2, T);
    ASSERT_OK(nnlib_text_window(t, split, n - 2, x2, y2));
    assert_memory_equal(nnlib_tensor_get_data_int32_const(x2),
                        xd + (n - 2) * T, 2 * T * sizeof(int32_t));
    assert_memory_equal(nnlib_tensor_get_data_int32_const(y2),
                        yd + (n - 2) * T, 2 * T * sizeof(int32_t));
    ASSERT_STATUS(NNLIB_ERR_OUT_OF_RANGE,
                  nnlib_text_window(t, split, n - 1, x2, y2));
    ASSERT_STATUS(NNLIB_ERR_OUT_OF_RANGE,
                  nnlib_text_window(t, split, -1, x2, y2));
    ASSERT_STATUS(NNLIB_ERR_OUT_OF_RANGE,
                  nnlib_text_window(t, split, INT64_MAX, x2, y2));
    nnlib_tensor_free(x);
    nnlib_tensor_free(y);
    nnlib_tensor_free(x2);
    nnlib_tensor_free(y2);
  }
  nnlib_text_free(t);
}

/* The refusals sample and window share, each with its exact status. */
static void test_window_refusals(void **state) {
  (void)state;
  nnlib_text *t = counting_text(10, 0.0, 1); /* 10 train, 0 valid */
  nnlib_tensor *x = ids(2, 4), *y = ids(2, 4), *y5 = ids(2, 5),
               *y3 = ids(3, 4), *big_x = ids(1, 10), *big_y = ids(1, 10),
               *fx = NULL, *fy = NULL, *flat = NULL;
  int64_t shape[2] = {2, 4}, one[1] = {8};
  ASSERT_OK(nnlib_tensor_create(&fx, shape, 2));
  ASSERT_OK(nnlib_tensor_create(&fy, shape, 2));
  ASSERT_OK(nnlib_tensor_create_int32(&flat, one, 1));
  for (int which = 0; which < 2; which++) {
#define CALL(tx, sp, a, b)                                                     \
  (which ? nnlib_text_window(tx, sp, 0, a, b) : nnlib_text_sample(tx, sp, a, b))
    ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, CALL(NULL, NNLIB_TEXT_TRAIN, x, y));
    ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, CALL(t, NNLIB_TEXT_TRAIN, NULL, y));
    ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, CALL(t, NNLIB_TEXT_TRAIN, x, NULL));
    ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, CALL(t, (nnlib_text_split)2, x, y));
    ASSERT_STATUS(NNLIB_ERR_DTYPE, CALL(t, NNLIB_TEXT_TRAIN, fx, fy));
    ASSERT_STATUS(NNLIB_ERR_DTYPE, CALL(t, NNLIB_TEXT_TRAIN, x, fy));
    ASSERT_STATUS(NNLIB_ERR_DTYPE, CALL(t, NNLIB_TEXT_TRAIN, fx, y));
    ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH, CALL(t, NNLIB_TEXT_TRAIN, x, y5));
    ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH, CALL(t, NNLIB_TEXT_TRAIN, x, y3));
    ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH,
                  CALL(t, NNLIB_TEXT_TRAIN, flat, flat));
    /* 10 bytes hold a window of 9 + 1 but not of 10 + 1 */
    ASSERT_STATUS(NNLIB_ERR_TOO_LARGE,
                  CALL(t, NNLIB_TEXT_TRAIN, big_x, big_y));
    ts_expect_message("holds 10 bytes");
    ASSERT_STATUS(NNLIB_ERR_TOO_LARGE, CALL(t, NNLIB_TEXT_VALID, x, y));
    ts_expect_message("validation split holds 0 bytes");
#undef CALL
  }
  /* the window fits exactly: one offset, one window */
  nnlib_tensor *x9 = ids(1, 9), *y9 = ids(1, 9);
  ASSERT_OK(nnlib_text_sample(t, NNLIB_TEXT_TRAIN, x9, y9));
  assert_int_equal(nnlib_tensor_get_data_int32(x9)[0], 0);
  assert_int_equal(nnlib_tensor_get_data_int32(y9)[8], 9);
  ASSERT_OK(nnlib_text_window(t, NNLIB_TEXT_TRAIN, 0, x9, y9));
  nnlib_tensor *all[11] = {x, y, y5, y3, big_x, big_y, fx, fy, flat, x9, y9};
  for (int i = 0; i < 11; i++)
    nnlib_tensor_free(all[i]);
  nnlib_text_free(t);
}

/* ---------------------------------------------------- out of memory */

/* Loads [file, directory] and the same bytes from memory; the status of
 * the first failure. */
static nnlib_status load_scenario(void) {
  char file[256], dir[256];
  path_in(file, sizeof file, "corpus/a");
  path_in(dir, sizeof dir, "corpus");
  const char *paths[2] = {file, dir};
  nnlib_text *t = NULL;
  nnlib_status st = nnlib_text_load(&t, paths, 2, 0.2, 5);
  if (st != NNLIB_OK) {
    assert_null(t);
    return st;
  }
  nnlib_text *copy = NULL;
  st = nnlib_text_from_bytes(&copy, nnlib_text_get_bytes(t, NNLIB_TEXT_TRAIN),
                             (size_t)nnlib_text_get_size(t, NNLIB_TEXT_TRAIN),
                             0.1, 5);
  if (st != NNLIB_OK)
    assert_null(copy);
  nnlib_text_free(copy);
  nnlib_text_free(t);
  return st;
}

/* Allocation k of the scenario fails alone (transient) or with every later
 * one (persistent): the result is NNLIB_OK or NNLIB_ERR_OUT_OF_MEMORY with
 * a message, and nothing stays allocated. */
static void test_load_out_of_memory(void **state) {
  (void)state;
  ts_alloc_uninstall(); /* the setup's; this test counts on its own */
  ts_alloc_stats stats = {0};
  ts_alloc_install(&stats);
  ASSERT_OK(load_scenario());
  ts_alloc_uninstall();
  long total = stats.allocs, failures = 0;
  assert_int_equal(stats.live, 0);
  assert_true(total >= 8); /* paths, the list, bytes, handles, the copy */
  for (int persistent = 0; persistent <= 1; persistent++)
    for (long k = 1; k <= total; k++) {
      stats = (ts_alloc_stats){0};
      stats.fail_at = k;
      ts_alloc_install(&stats);
      ts_alloc_fail_persistent(persistent);
      nnlib_clear_error();
      nnlib_status st = load_scenario();
      long live = stats.live;
      ts_alloc_uninstall();
      if (st != NNLIB_OK && st != NNLIB_ERR_OUT_OF_MEMORY)
        fail_msg("allocation %ld of %ld failing gave %s: %s", k, total,
                 nnlib_status_string(st), nnlib_last_error_message());
      if (st != NNLIB_OK)
        assert_true(nnlib_last_error_message()[0] != '\0');
      if (live != 0)
        fail_msg("allocation %ld of %ld failing (%s) leaked %ld blocks", k,
                 total, persistent ? "persistent" : "transient", live);
      failures += st == NNLIB_ERR_OUT_OF_MEMORY;
    }
  assert_int_equal(failures, 2 * total); /* every allocation is needed */
  print_message("text load: %ld allocations, every one's failure reported\n",
                total);
  ts_alloc_install(&alloc_stats); /* for the teardown */
}

/* ------------------------------------------------------ Debian fortunes */

static void test_debian_fortunes(void **state) {
  (void)state;
  const char *dir = "/usr/share/games/fortunes";
  struct stat sb;
  if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
    print_message("skipped: %s is missing (Debian package fortunes; "
                  "scripts/setup.sh installs it)\n", dir);
    skip();
  }
  const char *paths[1] = {dir};
  nnlib_text *t = NULL;
  ASSERT_OK(nnlib_text_load(&t, paths, 1, 0.1, 1));
  int64_t train = nnlib_text_get_size(t, NNLIB_TEXT_TRAIN);
  int64_t valid = nnlib_text_get_size(t, NNLIB_TEXT_VALID);
  int64_t size = train + valid;
  assert_true(size >= 1000000);
  assert_int_equal(valid, (int64_t)(0.1 * (double)size));
  /* the first text in byte order is "art", whose fortunes end in "%" lines */
  const uint8_t *bytes = nnlib_text_get_bytes(t, NNLIB_TEXT_TRAIN);
  assert_non_null(memchr(bytes, '%', 4096));
  print_message("%s: %lld bytes, %lld train, %lld valid\n", dir,
                (long long)size, (long long)train, (long long)valid);
  nnlib_text_free(t);
}

int main(void) {
#define CASE(fn) cmocka_unit_test_setup_teardown(fn, count_allocations, check_no_leak)
  const struct CMUnitTest tests[] = {
      CASE(test_directory_order_and_skips),
      CASE(test_paths_in_given_order),
      CASE(test_load_refusals),
      CASE(test_load_too_large),
      CASE(test_from_bytes),
      CASE(test_sample_offsets_match_reference),
      CASE(test_sample_covers_every_offset),
      CASE(test_sample_windows_are_substrings),
      CASE(test_window_count),
      CASE(test_windows_tile_the_split),
      CASE(test_window_refusals),
      CASE(test_load_out_of_memory),
      CASE(test_debian_fortunes),
  };
#undef CASE
  return cmocka_run_group_tests(tests, make_corpus, remove_corpus);
}
