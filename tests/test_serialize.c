/* Model files (docs/FILE_FORMAT.md): round trips of every layer kind with
 * bit-identical predictions and byte-identical re-saves, training resumed
 * bit for bit from a saved optimizer, and the loader against every damaged
 * or hostile file this test can make: each truncation, each byte flipped
 * (with and without repaired checksums, as a fuzzer past the checksums
 * would), and one crafted file per rule with its exact status. Every load
 * runs under a counting allocator: no leaks, nothing half-built. Saves are
 * atomic: a failed save leaves the old file as it was. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, mkfifo */
#include "file_parts.h"
#include "test_support.h"

#include <dirent.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------ helpers */

/* A compiled model from a description. */
static nnlib_model *spec_model(const char *spec, int64_t in, int64_t batch,
                               nnlib_loss loss, nnlib_optimizer *opt,
                               uint64_t seed) {
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, spec));
  ASSERT_OK(nnlib_model_compile(m, &in, 1, batch, loss, opt, seed));
  return m;
}

static unsigned char *save_bytes(const nnlib_model *m, unsigned flags,
                                 size_t *size) {
  void *data = NULL;
  ASSERT_OK(nnlib_model_save_to_buffer(&data, size, m, flags));
  return data;
}

static int64_t input_size(nnlib_model *m) {
  int64_t dims[NNLIB_MAX_RANK], n = 1;
  size_t rank;
  ASSERT_OK(nnlib_model_get_input_shape(m, dims, NNLIB_MAX_RANK, &rank));
  for (size_t i = 0; i < rank; i++)
    n *= dims[i];
  return n;
}

static int64_t output_size(nnlib_model *m) {
  int64_t dims[NNLIB_MAX_RANK], n = 1;
  size_t rank;
  ASSERT_OK(nnlib_model_get_output_shape(m, dims, NNLIB_MAX_RANK, &rank));
  for (size_t i = 0; i < rank; i++)
    n *= dims[i];
  return n;
}

/* Predictions on n fixed pseudo-random samples, into a malloc'd array. */
static float *predict_fixed(nnlib_model *m, int64_t n) {
  int64_t in = input_size(m), out = output_size(m);
  nnlib_tensor *x = ts_tensor2(n, in, NULL), *y = ts_tensor2(n, out, NULL);
  uint32_t seed = 12345;
  ts_fill_uniform(nnlib_tensor_get_data(x), n * in, -3.0f, 3.0f, &seed);
  ASSERT_OK(nnlib_model_predict(m, x, y));
  float *copy = malloc((size_t)(n * out) * sizeof *copy);
  memcpy(copy, nnlib_tensor_get_data(y), (size_t)(n * out) * sizeof *copy);
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  return copy;
}

/* Every parameter of a, bit for bit equal to b's. */
static void assert_same_params(nnlib_model *a, nnlib_model *b) {
  assert_int_equal(nnlib_model_get_layer_count(a),
                   nnlib_model_get_layer_count(b));
  for (size_t i = 0; i < nnlib_model_get_layer_count(a); i++) {
    nnlib_layer *la = nnlib_model_get_layer(a, i);
    nnlib_layer *lb = nnlib_model_get_layer(b, i);
    assert_int_equal(nnlib_layer_get_param_tensor_count(la),
                     nnlib_layer_get_param_tensor_count(lb));
    for (size_t p = 0; p < nnlib_layer_get_param_tensor_count(la); p++) {
      nnlib_tensor *ta, *tb;
      ASSERT_OK(nnlib_layer_get_param(la, p, &ta, NULL));
      ASSERT_OK(nnlib_layer_get_param(lb, p, &tb, NULL));
      assert_int_equal(nnlib_tensor_get_size(ta), nnlib_tensor_get_size(tb));
      assert_memory_equal(nnlib_tensor_get_data(ta), nnlib_tensor_get_data(tb),
                          (size_t)nnlib_tensor_get_size(ta) * sizeof(float));
    }
  }
}

/* An allocator that refuses single allocations above `cap` bytes (what a
 * fuzz harness should install too), counting live blocks and the largest
 * request. */
typedef struct capped {
  long live;
  size_t cap, largest;
} capped;

static void *capped_alloc(size_t size, size_t alignment, void *user) {
  capped *c = user;
  if (size > c->largest)
    c->largest = size;
  if (size > c->cap)
    return NULL;
  void *p = aligned_alloc(alignment, (size + alignment - 1) / alignment *
                                         alignment);
  if (p != NULL)
    c->live++;
  return p;
}

static void capped_free(void *ptr, void *user) {
  capped *c = user;
  if (ptr != NULL) {
    c->live--;
    free(ptr);
  }
}

static void capped_install(capped *c, size_t cap) {
  memset(c, 0, sizeof *c);
  c->cap = cap;
  nnlib_allocator a = {sizeof a, capped_alloc, capped_free, c};
  ASSERT_OK(nnlib_set_allocator(&a));
}

/* Loads data under the capped allocator; a model that loads must predict
 * (and is freed); nothing may stay allocated. Returns the status. */
static nnlib_status load_checked(const unsigned char *data, size_t size) {
  capped c;
  capped_install(&c, (size_t)256 << 20);
  nnlib_model *m = (nnlib_model *)1;
  nnlib_status st = nnlib_model_load_buffer(&m, data, size);
  if (st == NNLIB_OK) {
    assert_non_null(m);
    int64_t in = input_size(m), out = output_size(m);
    nnlib_tensor *x = NULL, *y = NULL;
    int64_t xs[2] = {1, in}, ys[2] = {1, out};
    if (nnlib_tensor_create(&x, xs, 2) == NNLIB_OK &&
        nnlib_tensor_create(&y, ys, 2) == NNLIB_OK) {
      nnlib_status p = nnlib_model_predict(m, x, y);
      assert_true(p == NNLIB_OK || p == NNLIB_ERR_NUMERICAL);
    }
    nnlib_tensor_free(x);
    nnlib_tensor_free(y);
    nnlib_model_free(m);
  } else {
    assert_null(m);
    assert_true(nnlib_last_error_message()[0] != '\0');
  }
  nnlib_set_allocator(NULL);
  if (c.live != 0)
    fail_msg("%ld blocks leaked (status %s: %s)", c.live,
             nnlib_status_string(st), nnlib_last_error_message());
  return st;
}

/* ------------------------------------------- the container, test side */

static void wrf(unsigned char *p, float v) {
  uint32_t bits;
  memcpy(&bits, &v, 4);
  ts_wr32(p, bits);
}


typedef ts_file_parts parts;




/* Recomputes every checksum in place, at the positions the undamaged file
 * had (so a flipped length does not move them). */
static void repair_checksums(unsigned char *d, const unsigned char *orig,
                             size_t size) {
  size_t pos = TS_PREAMBLE, count = ts_rd32(orig + 12);
  for (size_t i = 0; i < count; i++) {
    size_t length = (size_t)ts_rd64(orig + pos + 4);
    ts_wr32(d + pos + 12 + length, ts_crc32_ieee(d + pos, 12 + length));
    pos += 16 + length;
  }
  ts_wr32(d + size - 4, ts_crc32_ieee(d, size - 4));
}

enum { HEAD = 0, ARCH = 1, PARM = 2, OPTM = 3 };

/* ------------------------------------------------------- round trips */

static const char *const specs[] = {
    "dense:5",
    "dense:5:nobias",
    "dense:6,relu,dense:3",
    "dense:6,step,dense:2:nobias,identity",
    "dense:6,sigmoid,dense:4,tanh,dense:3",
    "dense:7,leaky_relu,dense:5,leaky_relu:0.3,dense:3,softmax",
    "dense:6:nobias,softplus,dense:6,softmax",
    "relu,dense:4,tanh",
    "sigmoid",
    "dense:6:nobias,batchnorm,relu,dropout:0.3,dense:3",
    "batchnorm:0.2:0.001,dropout:0,flatten,dense:2",
};

/* save -> load: same description, shapes, loss, maximum batch, parameters
 * and predictions to the bit; load -> save: the same bytes. */
static void test_round_trip_every_kind(void **s) {
  (void)s;
  const nnlib_loss losses[] = {NNLIB_LOSS_MSE, NNLIB_LOSS_NONE,
                               NNLIB_LOSS_SOFTMAX_CE, NNLIB_LOSS_BCE_LOGITS};
  for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
    nnlib_loss loss = losses[i % 4];
    nnlib_model *a = spec_model(specs[i], 4, 3, loss, NULL, 1000 + i);
    size_t n1, n2;
    unsigned char *b1 = save_bytes(a, 0, &n1);
    nnlib_model *b = NULL;
    ASSERT_OK(nnlib_model_load_buffer(&b, b1, n1));
    char sa[256], sb[256];
    ASSERT_OK(nnlib_model_get_spec(a, sa, sizeof sa, NULL));
    ASSERT_OK(nnlib_model_get_spec(b, sb, sizeof sb, NULL));
    assert_string_equal(sa, sb);
    assert_int_equal(nnlib_model_get_loss(b), loss);
    assert_int_equal(nnlib_model_get_max_batch(b), 3);
    assert_int_equal(input_size(b), 4);
    assert_null(nnlib_model_get_optimizer(b));
    assert_same_params(a, b);
    float *ya = predict_fixed(a, 7), *yb = predict_fixed(b, 7);
    assert_memory_equal(ya, yb, (size_t)(7 * output_size(a)) * sizeof(float));
    unsigned char *b2 = save_bytes(b, 0, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1);
    free(ya);
    free(yb);
    nnlib_free(b1);
    nnlib_free(b2);
    nnlib_model_free(a);
    nnlib_model_free(b);
  }
}

/* Convolutional kinds on images [C, H, W] = [2, 7, 6]: the same round
 * trip, after three training passes have moved batchnorm's running
 * statistics (buffers, saved after the parameters) away from 0 and 1. */
static const char *const image_specs[] = {
    "conv:3x3x3",
    "conv:4x3x2:s2x1:p1x2:d1x2:nobias,batchnorm,relu,flatten,dense:3",
    "conv:3x3x3:p1,maxpool:2,conv:2x1x1:nobias,avgpool:2:s1,dense:2",
    "minpool:3:s2:p1,conv:2x2x2,global_avgpool",
    ("conv:5x3x3:p1:nobias,batchnorm:0.3:0.001,relu,maxpool:3:s1:p1,"
     "dropout:0.4,flatten,dense:4,softmax"), /* clang -Wstring-concatenation */
    "avgpool:2x3:s1x2:p1,batchnorm,global_avgpool,dropout:0.5,dense:2",
    /* the pooling options of 1.5 (88-byte pool configs) */
    ("maxpool:3:s2:p2x1x1x2:ceil,conv:2x2x2,minpool:2:s1:d2x1,"
     "avgpool:2:s1:p1:exclude_pad,dense:2"),
};

static void assert_same_buffers(nnlib_model *a, nnlib_model *b) {
  for (size_t i = 0; i < nnlib_model_get_layer_count(a); i++) {
    nnlib_layer *la = nnlib_model_get_layer(a, i);
    nnlib_layer *lb = nnlib_model_get_layer(b, i);
    assert_int_equal(nnlib_layer_get_buffer_count(la),
                     nnlib_layer_get_buffer_count(lb));
    for (size_t k = 0; k < nnlib_layer_get_buffer_count(la); k++) {
      nnlib_tensor *ta, *tb;
      ASSERT_OK(nnlib_layer_get_buffer(la, k, &ta));
      ASSERT_OK(nnlib_layer_get_buffer(lb, k, &tb));
      assert_string_equal(nnlib_layer_get_buffer_name(la, k),
                          nnlib_layer_get_buffer_name(lb, k));
      assert_memory_equal(nnlib_tensor_get_data(ta), nnlib_tensor_get_data(tb),
                          (size_t)nnlib_tensor_get_size(ta) * sizeof(float));
    }
  }
}

static void test_round_trip_images(void **s) {
  (void)s;
  for (size_t i = 0; i < sizeof image_specs / sizeof image_specs[0]; i++) {
    nnlib_model *a = NULL;
    int64_t in[3] = {2, 7, 6};
    ASSERT_OK(nnlib_model_create(&a));
    ASSERT_OK(nnlib_model_add_spec(a, image_specs[i]));
    ASSERT_OK(nnlib_model_compile(a, in, 3, 3,
                                  i % 2 ? NNLIB_LOSS_MSE : NNLIB_LOSS_NONE,
                                  NULL, 70 + i));
    nnlib_tensor *x = ts_tensor2(3, 84, NULL);
    uint32_t seed = 5;
    ts_fill_uniform(nnlib_tensor_get_data(x), 3 * 84, -1, 2, &seed);
    const nnlib_tensor *y;
    for (int k = 0; k < 3; k++)
      ASSERT_OK(nnlib_model_forward(a, x, &y));
    nnlib_tensor_free(x);
    size_t n1, n2;
    unsigned char *b1 = save_bytes(a, 0, &n1);
    nnlib_model *b = NULL;
    ASSERT_OK(nnlib_model_load_buffer(&b, b1, n1));
    char sb[256];
    ASSERT_OK(nnlib_model_get_spec(b, sb, sizeof sb, NULL));
    assert_string_equal(sb, image_specs[i]);
    assert_same_params(a, b);
    assert_same_buffers(a, b);
    float *ya = predict_fixed(a, 7), *yb = predict_fixed(b, 7);
    assert_memory_equal(ya, yb, (size_t)(7 * output_size(a)) * sizeof(float));
    unsigned char *b2 = save_bytes(b, 0, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1);
    free(ya);
    free(yb);
    nnlib_free(b1);
    nnlib_free(b2);
    nnlib_model_free(a);
    nnlib_model_free(b);
  }
}

/* Recurrent kinds on sequences [T, F] = [5, 3]: the same round trip. */
static const char *const sequence_specs[] = {
    "rnn:4",
    "rnn:4:relu:nobias,last",
    "lstm:6,last,dense:2",
    "lstm:5:nobias,gru:4,last",
    "gru:3:nobias",
    "gru:6,rnn:3:relu,lstm:2,last,dense:3,softmax",
};

static nnlib_model *sequence_model(const char *spec, nnlib_loss loss,
                                   uint64_t seed) {
  nnlib_model *m = NULL;
  int64_t in[2] = {5, 3};
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, spec));
  ASSERT_OK(nnlib_model_compile(m, in, 2, 3, loss, NULL, seed));
  return m;
}

static void test_round_trip_sequences(void **s) {
  (void)s;
  for (size_t i = 0; i < sizeof sequence_specs / sizeof sequence_specs[0];
       i++) {
    nnlib_model *a = sequence_model(
        sequence_specs[i], i % 2 ? NNLIB_LOSS_MSE : NNLIB_LOSS_NONE, 50 + i);
    size_t n1, n2;
    unsigned char *b1 = save_bytes(a, 0, &n1);
    nnlib_model *b = NULL;
    ASSERT_OK(nnlib_model_load_buffer(&b, b1, n1));
    char sb[256];
    ASSERT_OK(nnlib_model_get_spec(b, sb, sizeof sb, NULL));
    assert_string_equal(sb, sequence_specs[i]);
    int64_t dims[NNLIB_MAX_RANK];
    size_t rank;
    ASSERT_OK(nnlib_model_get_input_shape(b, dims, NNLIB_MAX_RANK, &rank));
    assert_int_equal(rank, 2);
    assert_int_equal(dims[0], 5);
    assert_int_equal(dims[1], 3);
    assert_same_params(a, b);
    float *ya = predict_fixed(a, 7), *yb = predict_fixed(b, 7);
    assert_memory_equal(ya, yb, (size_t)(7 * output_size(a)) * sizeof(float));
    unsigned char *b2 = save_bytes(b, 0, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1);
    free(ya);
    free(yb);
    nnlib_free(b1);
    nnlib_free(b2);
    nnlib_model_free(a);
    nnlib_model_free(b);
  }
}

/* The recurrent configs of docs/FILE_FORMAT.md, and values no constructor
 * takes (CORRUPT_FILE). */
static void test_sequence_configs(void **s) {
  (void)s;
  nnlib_model *m = NULL;
  nnlib_layer *rnn = NULL, *lstm = NULL;
  ASSERT_OK(nnlib_rnn_create(&rnn, 3, 4, NNLIB_ACT_RELU, 0, 1));
  ASSERT_OK(nnlib_lstm_create(&lstm, 0, 2, 1, 0));
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add(m, rnn));
  ASSERT_OK(nnlib_model_add(m, lstm));
  int64_t in[2] = {5, 3};
  ASSERT_OK(nnlib_model_compile(m, in, 2, 2, NNLIB_LOSS_MSE, NULL, 1));
  size_t n;
  unsigned char *d = save_bytes(m, 0, &n);
  parts p;
  ts_split_file(d, n, &p);
  unsigned char *a = p.payload[ARCH];
  assert_int_equal(ts_rd32(a), NNLIB_LAYER_RNN);
  assert_int_equal(ts_rd32(a + 4), 28);
  assert_int_equal(ts_rd64(a + 8), 3);  /* input_size as created */
  assert_int_equal(ts_rd64(a + 16), 4); /* hidden_size */
  assert_int_equal(ts_rd32(a + 24), 0); /* with_bias */
  assert_int_equal(ts_rd32(a + 28), 1); /* return_sequences */
  assert_int_equal(ts_rd32(a + 32), NNLIB_ACT_RELU);
  unsigned char *c = a + 36;
  assert_int_equal(ts_rd32(c), NNLIB_LAYER_LSTM);
  assert_int_equal(ts_rd32(c + 4), 24);
  assert_int_equal(ts_rd64(c + 8), 0);
  assert_int_equal(ts_rd64(c + 16), 2);
  assert_int_equal(ts_rd32(c + 24), 1);
  assert_int_equal(ts_rd32(c + 28), 0);
  /* PARM: rnn weight_ih [4, 3], weight_hh [4, 4]; lstm four tensors */
  assert_int_equal(ts_rd32(p.payload[PARM]), 2);
  struct {
    unsigned char *at;
    uint32_t value;
    const char *message;
  } bad[] = {{a + 24, 2, "with_bias 2 and return_sequences 1 must be 0 or 1"},
             {c + 28, 7, "with_bias 1 and return_sequences 7"},
             {a + 32, NNLIB_ACT_SIGMOID, "rnn: nonlinearity 2 is neither"},
             {c + 16, 0, "hidden_size is 0"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint32_t saved = ts_rd32(bad[i].at);
    ts_wr32(bad[i].at, bad[i].value);
    size_t size;
    unsigned char *f = ts_join_file(&p, &size);
    nnlib_model *b = NULL;
    ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE, nnlib_model_load_buffer(&b, f, size));
    ts_expect_message(bad[i].message);
    assert_null(b);
    free(f);
    ts_wr32(bad[i].at, saved);
  }
  /* a layer whose created input_size does not match the input */
  ts_wr64(a + 8, 4);
  size_t size;
  unsigned char *f = ts_join_file(&p, &size);
  nnlib_model *b = NULL;
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH, nnlib_model_load_buffer(&b, f, size));
  ts_expect_message("rnn: input has 3 features per step, layer expects 4");
  free(f);
  ts_free_parts(&p);
  nnlib_free(d);
  nnlib_model_free(m);
}

/* A rank-3 input, a wider model, and weights nobody could guess. */
static void test_round_trip_shapes_and_values(void **s) {
  (void)s;
  nnlib_model *a = NULL;
  ASSERT_OK(nnlib_model_create(&a));
  ASSERT_OK(nnlib_model_add_spec(a, "dense:64,relu,dense:10"));
  int64_t in[3] = {2, 3, 5};
  ASSERT_OK(nnlib_model_compile(a, in, 3, 16, NNLIB_LOSS_SOFTMAX_CE, NULL, 5));
  /* NaN, infinities, -0 and denormals are kept to the bit */
  nnlib_tensor *w;
  ASSERT_OK(nnlib_layer_get_param(nnlib_model_get_layer(a, 2), 1, &w, NULL));
  float *bias = nnlib_tensor_get_data(w);
  bias[0] = -0.0f;
  bias[1] = 1e-40f;
  bias[2] = INFINITY;
  size_t n1, n2;
  unsigned char *b1 = save_bytes(a, 0, &n1);
  nnlib_model *b = NULL;
  ASSERT_OK(nnlib_model_load_buffer(&b, b1, n1));
  int64_t dims[NNLIB_MAX_RANK];
  size_t rank;
  ASSERT_OK(nnlib_model_get_input_shape(b, dims, NNLIB_MAX_RANK, &rank));
  assert_int_equal(rank, 3);
  assert_int_equal(dims[0], 2);
  assert_int_equal(dims[1], 3);
  assert_int_equal(dims[2], 5);
  assert_same_params(a, b);
  unsigned char *b2 = save_bytes(b, 0, &n2);
  assert_int_equal(n1, n2);
  assert_memory_equal(b1, b2, n1);
  nnlib_free(b1);
  nnlib_free(b2);
  nnlib_model_free(a);
  nnlib_model_free(b);
}

/* The layout FILE_FORMAT.md documents, checked on real bytes. */
static void test_documented_layout(void **s) {
  (void)s;
  nnlib_model *m = spec_model("dense:3,relu", 2, 4, NNLIB_LOSS_MSE, NULL, 77);
  size_t n;
  unsigned char *d = save_bytes(m, 0, &n);
  assert_memory_equal(d, "NNLIBMDL", 8);
  assert_int_equal(ts_rd32(d + 8), 1); /* a chain: version 1 */
  assert_int_equal(ts_rd32(d + 12), 3);
  assert_int_equal(ts_rd64(d + 16), n);
  assert_int_equal(ts_rd32(d + n - 4), ts_crc32_ieee(d, n - 4));
  parts p;
  ts_split_file(d, n, &p);
  assert_memory_equal(p.tag[HEAD], "HEAD", 4);
  assert_memory_equal(p.tag[ARCH], "ARCH", 4);
  assert_memory_equal(p.tag[PARM], "PARM", 4);
  const unsigned char *h = p.payload[HEAD];
  assert_int_equal(ts_rd32(h), NNLIB_VERSION_NUMBER);
  assert_int_equal(ts_rd32(h + 4), NNLIB_LOSS_MSE);
  assert_int_equal(ts_rd32(h + 8), 1);  /* input rank */
  assert_int_equal(ts_rd64(h + 12), 2); /* input dims */
  assert_int_equal(ts_rd64(h + 20), 4); /* max batch */
  assert_int_equal(ts_rd64(h + 28), 77); /* seed */
  assert_int_equal(ts_rd32(h + 68), 2);  /* layers */
  assert_int_equal(ts_rd64(h + 72), 9);  /* parameters: 3x2 + 3 */
  assert_int_equal(p.length[HEAD], 80);
  const unsigned char *a = p.payload[ARCH];
  assert_int_equal(ts_rd32(a), NNLIB_LAYER_DENSE);
  assert_int_equal(ts_rd32(a + 4), 20);
  assert_int_equal(ts_rd64(a + 8), 0);  /* in_features: inferred */
  assert_int_equal(ts_rd64(a + 16), 3); /* out_features */
  assert_int_equal(ts_rd32(a + 24), 1); /* bias */
  assert_int_equal(ts_rd32(a + 28), NNLIB_LAYER_ACTIVATION);
  assert_int_equal(ts_rd32(a + 32), 8);
  assert_int_equal(ts_rd32(a + 36), NNLIB_ACT_RELU);
  const unsigned char *q = p.payload[PARM];
  assert_int_equal(ts_rd32(q), 2);      /* weight, bias */
  assert_int_equal(ts_rd32(q + 4), 2);  /* weight rank */
  assert_int_equal(ts_rd64(q + 8), 3);  /* [out, in] */
  assert_int_equal(ts_rd64(q + 16), 2);
  nnlib_tensor *w;
  ASSERT_OK(nnlib_layer_get_param(nnlib_model_get_layer(m, 0), 0, &w, NULL));
  uint32_t bits;
  memcpy(&bits, nnlib_tensor_get_data(w), 4);
  assert_int_equal(ts_rd32(q + 24), bits); /* little-endian IEEE-754 */
  ts_free_parts(&p);
  nnlib_free(d);
  nnlib_model_free(m);
}

/* ------------------------------------------------------ files on disk */

static char tmpdir[256];

static int make_tmpdir(void **s) {
  (void)s;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/nnlib-serialize-XXXXXX");
  return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int remove_tmpdir(void **s) {
  (void)s;
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  return system(cmd) == 0 ? 0 : -1;
}

static unsigned char *read_whole(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *d = malloc((size_t)n + 1);
  assert_int_equal(fread(d, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  *size = (size_t)n;
  return d;
}

/* Names in tmpdir other than `keep`: a failed save must leave no temp. */
static int stray_files(const char *keep) {
  DIR *dir = opendir(tmpdir);
  assert_non_null(dir);
  int stray = 0;
  for (struct dirent *e; (e = readdir(dir)) != NULL;)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
        (keep == NULL || strcmp(e->d_name, keep) != 0))
      stray++;
  closedir(dir);
  return stray;
}

static void test_file_round_trip(void **s) {
  (void)s;
  char path[400];
  snprintf(path, sizeof path, "%s/model.nnl", tmpdir);
  nnlib_model *a = spec_model("dense:8,tanh,dense:2", 3, 2, NNLIB_LOSS_MSE,
                              NULL, 9);
  ASSERT_OK(nnlib_model_save(a, path, 0));
  ASSERT_OK(nnlib_model_save(a, path, 0)); /* over an existing file */
  size_t n, nb;
  unsigned char *disk = read_whole(path, &n);
  unsigned char *mem = save_bytes(a, 0, &nb);
  assert_int_equal(n, nb);
  assert_memory_equal(disk, mem, n);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0644);
  nnlib_model *b = NULL;
  ASSERT_OK(nnlib_model_load(&b, path));
  float *ya = predict_fixed(a, 5), *yb = predict_fixed(b, 5);
  assert_memory_equal(ya, yb, 5 * 2 * sizeof(float));
  assert_int_equal(stray_files("model.nnl"), 0);
  /* a path without a directory: the temporary file goes in "." */
  char cwd[400];
  assert_non_null(getcwd(cwd, sizeof cwd));
  assert_int_equal(chdir(tmpdir), 0);
  nnlib_status rel = nnlib_model_save(a, "relative.nnl", 0);
  assert_int_equal(chdir(cwd), 0);
  ASSERT_OK(rel);
  char relpath[500];
  snprintf(relpath, sizeof relpath, "%s/relative.nnl", tmpdir);
  assert_int_equal(unlink(relpath), 0);
  /* a replaced file keeps its mode */
  assert_int_equal(chmod(path, 0600), 0);
  ASSERT_OK(nnlib_model_save(b, path, 0));
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  free(ya);
  free(yb);
  free(disk);
  nnlib_free(mem);
  nnlib_model_free(a);
  nnlib_model_free(b);
  unlink(path);
}

static void test_load_errors(void **s) {
  (void)s;
  nnlib_model *m = (nnlib_model *)1;
  char path[400];
  snprintf(path, sizeof path, "%s/missing.nnl", tmpdir);
  ASSERT_STATUS(NNLIB_ERR_IO, nnlib_model_load(&m, path));
  ts_expect_message("missing.nnl");
  assert_null(m);
  ASSERT_STATUS(NNLIB_ERR_IO, nnlib_model_load(&m, tmpdir));
  ts_expect_message("not a regular file");
  snprintf(path, sizeof path, "%s/fifo", tmpdir);
  assert_int_equal(mkfifo(path, 0600), 0);
  ASSERT_STATUS(NNLIB_ERR_IO, nnlib_model_load(&m, path)); /* no blocking */
  unlink(path);
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_model_load(NULL, path));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_model_load(&m, NULL));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_model_load_buffer(NULL, "x", 1));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_model_load_buffer(&m, NULL, 4));
  ASSERT_STATUS(NNLIB_ERR_TRUNCATED, nnlib_model_load_buffer(&m, NULL, 0));
  /* a damaged file's message names the file */
  snprintf(path, sizeof path, "%s/junk.nnl", tmpdir);
  FILE *f = fopen(path, "wb");
  fputs("PK\x03\x04 not a model", f);
  fclose(f);
  ASSERT_STATUS(NNLIB_ERR_BAD_MAGIC, nnlib_model_load(&m, path));
  ts_expect_message("junk.nnl: model file: does not start with");
  unlink(path);
}

static void test_save_errors(void **s) {
  (void)s;
  nnlib_model *m = NULL;
  void *data = (void *)1;
  size_t size = 1;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_STATUS(NNLIB_ERR_WRONG_STATE,
                nnlib_model_save_to_buffer(&data, &size, m, 0));
  assert_null(data);
  ASSERT_STATUS(NNLIB_ERR_WRONG_STATE, nnlib_model_save(m, "/tmp/x.nnl", 0));
  nnlib_model_free(m);
  m = spec_model("dense:2", 2, 1, NNLIB_LOSS_MSE, NULL, 1);
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_model_save_to_buffer(&data, &size, m, 2u));
  ts_expect_message("unknown flags 0x2");
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_model_save_to_buffer(&data, &size, NULL, 0));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_model_save_to_buffer(NULL, &size, m, 0));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_model_save(m, NULL, 0));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_model_save(m, "", 0));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_model_save(NULL, "/tmp/x", 0));
  nnlib_model_free(m);
}

static nnlib_status save_plain(const nnlib_model *m, const char *path) {
  return nnlib_model_save(m, path, 0);
}

/* Each way the save can fail leaves the previous file byte for byte, and
 * no temporary file behind. */
static void test_atomic_save(void **s) {
  (void)s;
  char path[400], dirpath[400], missing[400];
  snprintf(path, sizeof path, "%s/keep.nnl", tmpdir);
  snprintf(missing, sizeof missing, "%s/no/such/dir/m.nnl", tmpdir);
  snprintf(dirpath, sizeof dirpath, "%s/adir.nnl", tmpdir);
  nnlib_model *old = spec_model("dense:3", 2, 1, NNLIB_LOSS_MSE, NULL, 1);
  nnlib_model *big = spec_model("dense:300,relu,dense:300", 50, 1,
                                NNLIB_LOSS_MSE, NULL, 2);
  ASSERT_OK(nnlib_model_save(old, path, 0));
  size_t n0;
  unsigned char *before = read_whole(path, &n0);

  /* a directory that does not exist */
  ASSERT_STATUS(NNLIB_ERR_IO, nnlib_model_save(big, missing, 0));
  ts_expect_message("temporary file");

  /* the target is a directory (or a device: never replaced) */
  assert_int_equal(mkdir(dirpath, 0700), 0);
  ASSERT_STATUS(NNLIB_ERR_IO, nnlib_model_save(big, dirpath, 0));
  ts_expect_message("is not a regular file");
  ASSERT_STATUS(NNLIB_ERR_IO, nnlib_model_save(big, "/dev/full", 0));
  struct stat st;
  assert_int_equal(stat(dirpath, &st), 0);
  assert_true(S_ISDIR(st.st_mode));
  rmdir(dirpath);

  /* the disk fills up (RLIMIT_FSIZE: writes past 4 KiB fail with EFBIG) */
  ASSERT_STATUS(NNLIB_ERR_IO,
                ts_save_with_file_limit(save_plain, big, path, 4096));
  ts_expect_message("writing");

  /* no memory, at each allocation the save makes */
  ts_alloc_stats stats;
  for (long fail_at = 1; fail_at <= 2; fail_at++) {
    stats.fail_at = fail_at;
    ts_alloc_install(&stats);
    nnlib_status st_oom = nnlib_model_save(big, path, 0);
    ts_alloc_uninstall();
    assert_int_equal(st_oom, NNLIB_ERR_OUT_OF_MEMORY);
    assert_int_equal(stats.live, 0);
  }

  size_t n1;
  unsigned char *after = read_whole(path, &n1);
  assert_int_equal(n0, n1);
  assert_memory_equal(before, after, n0);
  assert_int_equal(stray_files("keep.nnl"), 0);
  free(before);
  free(after);
  nnlib_model_free(old);
  nnlib_model_free(big);
  unlink(path);
}

/* --------------------------------------------------- damaged files */

static unsigned char *sample_file(size_t *size, bool with_optimizer) {
  nnlib_optimizer *opt = NULL;
  if (with_optimizer) {
    nnlib_optimizer_options o;
    ASSERT_OK(nnlib_optimizer_options_init(&o, NNLIB_OPT_ADAM));
    ASSERT_OK(nnlib_optimizer_create(&opt, &o));
  }
  nnlib_model *m = spec_model("dense:5,leaky_relu:0.2,dense:3:nobias,softmax",
                              4, 2, NNLIB_LOSS_MSE, opt, 3);
  unsigned char *d = save_bytes(m, NNLIB_SAVE_OPTIMIZER, size);
  nnlib_model_free(m);
  return d;
}

/* A file cut at every length is truncated, never more. */
static void test_truncated_everywhere(void **s) {
  (void)s;
  for (int opt = 0; opt < 2; opt++) {
    size_t n;
    unsigned char *d = sample_file(&n, opt);
    for (size_t len = 0; len < n; len++) {
      nnlib_status st = load_checked(d, len);
      if (st != NNLIB_ERR_TRUNCATED)
        fail_msg("cut at %zu of %zu: %s (%s)", len, n,
                 nnlib_status_string(st), nnlib_last_error_message());
    }
    assert_int_equal(load_checked(d, n), NNLIB_OK);
    nnlib_free(d);
  }
}

/* Every byte flipped (and every bit of the preamble and header section):
 * always an error, because the checksums catch what the parser may not. */
static void test_flipped_bytes(void **s) {
  (void)s;
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
  skip(); /* checksums do not reject in the fuzz build */
#endif
  size_t n;
  unsigned char *d = sample_file(&n, true);
  unsigned char *copy = malloc(n);
  size_t head_end = TS_PREAMBLE + 16 + (size_t)ts_rd64(d + TS_PREAMBLE + 4);
  for (size_t i = 0; i < n; i++) {
    for (int bit = 0; bit < 9; bit++) {
      if (bit < 8 && i >= head_end)
        continue; /* single bits: preamble and header; 0xff: everywhere */
      memcpy(copy, d, n);
      copy[i] ^= bit < 8 ? (unsigned char)(1u << bit) : 0xffu;
      nnlib_status st = load_checked(copy, n);
      if (st == NNLIB_OK)
        fail_msg("byte %zu flipped (%d) loaded", i, bit);
    }
  }
  free(copy);
  nnlib_free(d);
}

/* What a fuzzer sees past the checksums: each byte flipped, checksums
 * repaired. Any status is allowed, a crash or a leak is not; a model that
 * loads predicts. Counts the outcomes. */
static void test_flipped_bytes_repaired(void **s) {
  (void)s;
  size_t n;
  unsigned char *d = sample_file(&n, true);
  unsigned char *copy = malloc(n);
  int loaded = 0, refused = 0;
  const unsigned char masks[] = {0x01, 0x80, 0xff, 0x40};
  for (size_t i = 0; i < n; i++) {
    for (size_t k = 0; k < sizeof masks; k++) {
      memcpy(copy, d, n);
      copy[i] ^= masks[k];
      repair_checksums(copy, d, n);
      nnlib_status st = load_checked(copy, n);
      if (st == NNLIB_OK)
        loaded++;
      else
        refused++;
      /* a flipped length moves where a checksum is read: CHECKSUM */
      assert_true(st == NNLIB_OK || st == NNLIB_ERR_CORRUPT_FILE ||
                  st == NNLIB_ERR_CHECKSUM ||
                  st == NNLIB_ERR_TRUNCATED || st == NNLIB_ERR_BAD_MAGIC ||
                  st == NNLIB_ERR_UNSUPPORTED_VERSION ||
                  st == NNLIB_ERR_SHAPE_MISMATCH ||
                  st == NNLIB_ERR_TOO_LARGE ||
                  st == NNLIB_ERR_OUT_OF_MEMORY);
    }
  }
  print_message("repaired flips over %zu bytes: %d loaded, %d refused\n", n,
                loaded, refused);
  assert_true(loaded > 0 && refused > 0);
  free(copy);
  nnlib_free(d);
}

/* One hostile file per rule: mutate the parts, reassemble with correct
 * checksums, expect one status and message. */
typedef void (*mutation)(parts *p);

static void expect_crafted(mutation mutate, nnlib_status want,
                           const char *needle) {
  size_t n, m;
  unsigned char *d = sample_file(&n, true);
  parts p;
  ts_split_file(d, n, &p);
  mutate(&p);
  unsigned char *crafted = ts_join_file(&p, &m);
  nnlib_clear_error();
  nnlib_status st = load_checked(crafted, m);
  if (st != want)
    fail_msg("got %s, expected %s: %s", nnlib_status_string(st),
             nnlib_status_string(want), nnlib_last_error_message());
  ts_expect_message(needle);
  free(crafted);
  ts_free_parts(&p);
  nnlib_free(d);
}

/* HEAD offsets for a rank-1 input (FILE_FORMAT.md) */
enum { H_LOSS = 4, H_RANK = 8, H_DIM0 = 12, H_BATCH = 20, H_RNG = 36,
       H_LAYERS = 68, H_PARAMS = 72 };
/* ARCH: layer 0 is dense (config 20 bytes), layer 1 leaky_relu (8) */
enum { A_KIND0 = 0, A_LEN0 = 4, A_IN0 = 8, A_OUT0 = 16, A_BIAS0 = 24,
       A_KIND1 = 28, A_ACT1 = 36, A_SLOPE1 = 40, A_KIND3 = 72, A_ACT3 = 80,
       A_PARAM3 = 84 };
/* PARM: layer 0: count, weight rank, dims [5, 4] */
enum { P_COUNT0 = 0, P_RANK0 = 4, P_DIM00 = 8, P_DIM01 = 16 };
/* OPTM */
enum { O_KIND = 0, O_LR = 4, O_NESTEROV = 12, O_SCHEDULE = 36, O_T = 68,
       O_SIZE = 76, O_MASK = 84 };

static void m_version4(parts *p) { ts_wr32(p->preamble + 8, 4); }
static void m_version0(parts *p) { ts_wr32(p->preamble + 8, 0); }
static void m_magic(parts *p) { p->preamble[7] = 'X'; }
static void m_order(parts *p) {
  memcpy(p->tag[ARCH], "PARM", 4);
  memcpy(p->tag[PARM], "ARCH", 4);
}
static void m_loss(parts *p) { ts_wr32(p->payload[HEAD] + H_LOSS, 9); }
static void m_rank0(parts *p) { ts_wr32(p->payload[HEAD] + H_RANK, 0); }
static void m_rank8(parts *p) { ts_wr32(p->payload[HEAD] + H_RANK, 8); }
static void m_dim0(parts *p) { ts_wr64(p->payload[HEAD] + H_DIM0, 0); }
static void m_dim_huge(parts *p) {
  ts_wr64(p->payload[HEAD] + H_DIM0, (uint64_t)1 << 31);
}
static void m_dims_overflow(parts *p) {
  /* a rank-3 input of 2^31-1 cubed: the product overflows int64 */
  unsigned char *h = p->payload[HEAD];
  memmove(h + H_BATCH + 16, h + H_BATCH, p->length[HEAD] - H_BATCH);
  ts_wr32(h + H_RANK, 3);
  for (int i = 0; i < 3; i++)
    ts_wr64(h + H_DIM0 + 8 * i, 0x7fffffff);
  p->length[HEAD] += 16;
}
static void m_batch0(parts *p) { ts_wr64(p->payload[HEAD] + H_BATCH, 0); }
static void m_batch_huge(parts *p) {
  /* legal, but its activations would not fit any allocator */
  ts_wr64(p->payload[HEAD] + H_BATCH, 0x7fffffff);
}
static void m_rng0(parts *p) { memset(p->payload[HEAD] + H_RNG, 0, 32); }
static void m_layers0(parts *p) { ts_wr32(p->payload[HEAD] + H_LAYERS, 0); }
static void m_layers_many(parts *p) {
  ts_wr32(p->payload[HEAD] + H_LAYERS, 70000);
}
static void m_layers_5(parts *p) { ts_wr32(p->payload[HEAD] + H_LAYERS, 5); }
static void m_params_total(parts *p) {
  ts_wr64(p->payload[HEAD] + H_PARAMS, 26);
}
static void m_head_trailing(parts *p) {
  memset(p->payload[HEAD] + p->length[HEAD], 0, 4);
  p->length[HEAD] += 4;
}
static void m_kind255(parts *p) { ts_wr32(p->payload[ARCH] + A_KIND0, 255); }
static void m_kind_conv(parts *p) {
  /* a known kind with dense's 20-byte config: conv2d reads 84 */
  ts_wr32(p->payload[ARCH] + A_KIND0, NNLIB_LAYER_CONV2D);
}
static void m_config_long(parts *p) {
  ts_wr32(p->payload[ARCH] + A_LEN0, 0x7fffffff);
}
static void m_config_short(parts *p) {
  /* dense's config without its last field: dense reads past the end */
  unsigned char *a = p->payload[ARCH];
  memmove(a + 24, a + 28, p->length[ARCH] - 28);
  ts_wr32(a + A_LEN0, 16);
  p->length[ARCH] -= 4;
}
static void m_config_extra(parts *p) {
  /* a 24-byte config whose last 4 bytes dense never reads */
  unsigned char *a = p->payload[ARCH];
  memmove(a + 32, a + 28, p->length[ARCH] - 28);
  memset(a + 28, 0, 4);
  ts_wr32(a + A_LEN0, 24);
  p->length[ARCH] += 4;
}
static void m_bias2(parts *p) { ts_wr32(p->payload[ARCH] + A_BIAS0, 2); }
static void m_out0(parts *p) { ts_wr64(p->payload[ARCH] + A_OUT0, 0); }
static void m_out6(parts *p) { ts_wr64(p->payload[ARCH] + A_OUT0, 6); }
static void m_in5(parts *p) { ts_wr64(p->payload[ARCH] + A_IN0, 5); }
static void m_act99(parts *p) { ts_wr32(p->payload[ARCH] + A_ACT1, 99); }
static void m_slope_nan(parts *p) {
  wrf(p->payload[ARCH] + A_SLOPE1, NAN);
}
static void m_softmax_param(parts *p) {
  wrf(p->payload[ARCH] + A_PARAM3, 0.5f);
}
static void m_relu_for_softmax(parts *p) {
  /* layer 3 becomes relu: chains, same parameters, loads */
  ts_wr32(p->payload[ARCH] + A_ACT3, NNLIB_ACT_RELU);
}
static void m_tensor_count(parts *p) {
  ts_wr32(p->payload[PARM] + P_COUNT0, 0x80000000u);
}
static void m_tensor_rank9(parts *p) { ts_wr32(p->payload[PARM] + P_RANK0, 9); }
static void m_tensor_dim0(parts *p) { ts_wr64(p->payload[PARM] + P_DIM00, 0); }
static void m_tensor_bytes_overflow(parts *p) {
  ts_wr64(p->payload[PARM] + P_DIM00, 0x7fffffff);
  ts_wr64(p->payload[PARM] + P_DIM01, 0x7fffffff);
}
static void m_tensor_past_end(parts *p) {
  ts_wr64(p->payload[PARM] + P_DIM00, 1000000);
  ts_wr64(p->payload[PARM] + P_DIM01, 1000);
}
static void m_tensor_rank1(parts *p) {
  /* the weight as a vector of 20: same values, wrong rank */
  unsigned char *q = p->payload[PARM];
  memmove(q + P_DIM01, q + P_DIM01 + 8, p->length[PARM] - P_DIM01 - 8);
  ts_wr32(q + P_RANK0, 1);
  ts_wr64(q + P_DIM00, 20);
  p->length[PARM] -= 8;
}
static void m_tensor_shape(parts *p) {
  /* [5, 4] read as [4, 5]: same bytes, wrong shape */
  ts_wr64(p->payload[PARM] + P_DIM00, 4);
  ts_wr64(p->payload[PARM] + P_DIM01, 5);
}
static void m_parm_trailing(parts *p) {
  memset(p->payload[PARM] + p->length[PARM], 0, 8);
  p->length[PARM] += 8;
}
static void m_opt_kind(parts *p) { ts_wr32(p->payload[OPTM] + O_KIND, 9); }
static void m_opt_lr(parts *p) { wrf(p->payload[OPTM] + O_LR, NAN); }
static void m_opt_nesterov(parts *p) {
  ts_wr32(p->payload[OPTM] + O_NESTEROV, 2);
}
static void m_opt_schedule(parts *p) {
  ts_wr32(p->payload[OPTM] + O_SCHEDULE, 3);
}
static void m_opt_steps(parts *p) {
  ts_wr64(p->payload[OPTM] + O_T, (uint64_t)-1);
}
static void m_opt_size(parts *p) { ts_wr64(p->payload[OPTM] + O_SIZE, 26); }
static void m_opt_mask4(parts *p) { ts_wr32(p->payload[OPTM] + O_MASK, 4); }
static void m_opt_mask1(parts *p) {
  /* one state buffer where Adam keeps two: the bytes still add up */
  ts_wr32(p->payload[OPTM] + O_MASK, 1);
  p->length[OPTM] -= 40 * 4; /* 40 parameters: 5x4 + 5, 3x5 */
}
static void m_opt_sgd_with_state(parts *p) {
  /* plain SGD keeps no state, the file has two buffers of it */
  ts_wr32(p->payload[OPTM] + O_KIND, NNLIB_OPT_SGD);
}

typedef struct crafted_case {
  const char *name;
  mutation mutate;
  nnlib_status want;
  const char *needle;
} crafted_case;

static const crafted_case crafted[] = {
    {"newer version", m_version4, NNLIB_ERR_UNSUPPORTED_VERSION,
     "format version 4; this library"},
    {"version 0", m_version0, NNLIB_ERR_CORRUPT_FILE, "version 0"},
    {"bad magic", m_magic, NNLIB_ERR_BAD_MAGIC, "NNLIBMDL"},
    {"order", m_order, NNLIB_ERR_CORRUPT_FILE, "section 2 is \"PARM\""},
    {"loss", m_loss, NNLIB_ERR_CORRUPT_FILE, "unknown loss 9"},
    {"rank 0", m_rank0, NNLIB_ERR_CORRUPT_FILE, "input rank 0"},
    {"rank 8", m_rank8, NNLIB_ERR_CORRUPT_FILE, "input rank 8"},
    {"dim 0", m_dim0, NNLIB_ERR_CORRUPT_FILE, "dimension 0 is 0"},
    {"dim 2^31", m_dim_huge, NNLIB_ERR_CORRUPT_FILE, "is 2147483648"},
    {"dims overflow", m_dims_overflow, NNLIB_ERR_TOO_LARGE,
     "input shape: the product of the dimensions overflows"},
    {"batch 0", m_batch0, NNLIB_ERR_CORRUPT_FILE, "maximum batch 0"},
    {"batch 2^31-1", m_batch_huge, NNLIB_ERR_OUT_OF_MEMORY, "no memory"},
    {"rng 0", m_rng0, NNLIB_ERR_CORRUPT_FILE, "all zero"},
    {"0 layers", m_layers0, NNLIB_ERR_CORRUPT_FILE, "0 layers"},
    {"70000 layers", m_layers_many, NNLIB_ERR_CORRUPT_FILE, "70000 layers"},
    {"5 layers", m_layers_5, NNLIB_ERR_CORRUPT_FILE,
     "architecture section ends early"},
    {"param total", m_params_total, NNLIB_ERR_CORRUPT_FILE,
     "header says 26"},
    {"head trailing", m_head_trailing, NNLIB_ERR_CORRUPT_FILE,
     "4 trailing bytes in the header section"},
    {"kind 255", m_kind255, NNLIB_ERR_CORRUPT_FILE, "unknown kind 255"},
    {"kind conv2d", m_kind_conv, NNLIB_ERR_CORRUPT_FILE,
     "layer 0 config ends early"},
    {"config long", m_config_long, NNLIB_ERR_CORRUPT_FILE,
     "config of 2147483647 bytes"},
    {"config short", m_config_short, NNLIB_ERR_CORRUPT_FILE,
     "layer 0 config ends early"},
    {"config extra", m_config_extra, NNLIB_ERR_CORRUPT_FILE,
     "4 trailing bytes in the layer 0 config"},
    {"bias 2", m_bias2, NNLIB_ERR_CORRUPT_FILE, "with_bias is 2"},
    {"out 0", m_out0, NNLIB_ERR_CORRUPT_FILE, "out_features is 0"},
    {"out 6", m_out6, NNLIB_ERR_SHAPE_MISMATCH,
     "layer 0 (dense) parameter weight is [5, 4], the layer needs [6, 4]"},
    {"in 5", m_in5, NNLIB_ERR_SHAPE_MISMATCH, "input has 4 features"},
    {"activation 99", m_act99, NNLIB_ERR_CORRUPT_FILE, "unknown kind 99"},
    {"slope nan", m_slope_nan, NNLIB_ERR_CORRUPT_FILE, "slope"},
    {"softmax param", m_softmax_param, NNLIB_ERR_CORRUPT_FILE,
     "activation softmax: parameter bits"},
    {"relu for softmax", m_relu_for_softmax, NNLIB_OK, ""},
    {"tensor count", m_tensor_count, NNLIB_ERR_CORRUPT_FILE,
     "2147483648 tensors"},
    {"tensor rank 9", m_tensor_rank9, NNLIB_ERR_CORRUPT_FILE, "rank 9"},
    {"tensor dim 0", m_tensor_dim0, NNLIB_ERR_CORRUPT_FILE,
     "tensor dimension 0 is 0"},
    {"tensor bytes overflow", m_tensor_bytes_overflow, NNLIB_ERR_TOO_LARGE,
     "too large"},
    {"tensor past end", m_tensor_past_end, NNLIB_ERR_CORRUPT_FILE,
     "needs 4000000000 bytes"},
    {"tensor rank 1", m_tensor_rank1, NNLIB_ERR_SHAPE_MISMATCH,
     "weight is [20], the layer needs [5, 4]"},
    {"tensor shape", m_tensor_shape, NNLIB_ERR_SHAPE_MISMATCH,
     "is [4, 5], the layer needs [5, 4]"},
    {"parm trailing", m_parm_trailing, NNLIB_ERR_CORRUPT_FILE,
     "trailing bytes in the parameter section"},
    {"optimizer kind", m_opt_kind, NNLIB_ERR_CORRUPT_FILE,
     "optimizer kind is 9"},
    {"optimizer lr", m_opt_lr, NNLIB_ERR_CORRUPT_FILE, "learning rate"},
    {"nesterov", m_opt_nesterov, NNLIB_ERR_CORRUPT_FILE, "nesterov is 2"},
    {"schedule", m_opt_schedule, NNLIB_ERR_CORRUPT_FILE, "schedule is 3"},
    {"steps", m_opt_steps, NNLIB_ERR_CORRUPT_FILE, "negative optimizer step"},
    {"state size", m_opt_size, NNLIB_ERR_CORRUPT_FILE,
     "state for 26 parameters"},
    {"state mask", m_opt_mask4, NNLIB_ERR_CORRUPT_FILE, "state mask 0x4"},
    {"state one", m_opt_mask1, NNLIB_ERR_CORRUPT_FILE,
     "state buffers 0x1, these options keep 0x3"},
    {"sgd state", m_opt_sgd_with_state, NNLIB_ERR_CORRUPT_FILE,
     "these options keep 0x0"},
};

static void test_crafted_files(void **s) {
  (void)s;
  for (size_t i = 0; i < sizeof crafted / sizeof crafted[0]; i++) {
    print_message("crafted: %s\n", crafted[i].name);
    expect_crafted(crafted[i].mutate, crafted[i].want, crafted[i].needle);
  }
}

/* Damage outside the parser's reach: checksums, sizes, trailing bytes. */
static void test_container_damage(void **s) {
  (void)s;
  size_t n;
  unsigned char *d = sample_file(&n, false);
  unsigned char *copy = malloc(n + 8);
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
  memcpy(copy, d, n);
  copy[n - 1] ^= 1; /* the file checksum itself */
  assert_int_equal(load_checked(copy, n), NNLIB_ERR_CHECKSUM);
  ts_expect_message("checksum");
  memcpy(copy, d, n);
  copy[TS_PREAMBLE + 12 + 80] ^= 1; /* HEAD's checksum, file checksum fixed */
  ts_wr32(copy + n - 4, ts_crc32_ieee(copy, n - 4));
  assert_int_equal(load_checked(copy, n), NNLIB_ERR_CHECKSUM);
  ts_expect_message("section HEAD checksum");
#endif
  memcpy(copy, d, n);
  copy[n] = 0; /* one byte more than the header says */
  assert_int_equal(load_checked(copy, n + 1), NNLIB_ERR_CORRUPT_FILE);
  ts_expect_message("1 trailing bytes");
  memcpy(copy, d, n);
  ts_wr64(copy + 16, n + 1000); /* the header promises more */
  assert_int_equal(load_checked(copy, n), NNLIB_ERR_TRUNCATED);
  /* bytes between the last section and the checksum */
  memcpy(copy, d, n - 4);
  memset(copy + n - 4, 0, 4);
  ts_wr64(copy + 16, n + 4);
  ts_wr32(copy + n, ts_crc32_ieee(copy, n));
  assert_int_equal(load_checked(copy, n + 4), NNLIB_ERR_CORRUPT_FILE);
  ts_expect_message("4 unexplained bytes");
  memcpy(copy, d, n);
  ts_wr32(copy + 12, 4); /* four sections, three present */
  repair_checksums(copy, d, n);
  assert_int_equal(load_checked(copy, n), NNLIB_ERR_CORRUPT_FILE);
  ts_expect_message("section OPTM missing");
  memcpy(copy, d, n);
  ts_wr32(copy + 12, 5); /* five sections */
  repair_checksums(copy, d, n);
  assert_int_equal(load_checked(copy, n), NNLIB_ERR_CORRUPT_FILE);
  ts_expect_message("5 sections");
  /* magic prefixes and strangers */
  assert_int_equal(load_checked((const unsigned char *)"NNL", 3),
                   NNLIB_ERR_TRUNCATED);
  assert_int_equal(load_checked((const unsigned char *)"abc", 3),
                   NNLIB_ERR_BAD_MAGIC);
  assert_int_equal(load_checked((const unsigned char *)"\x89PNG\r\n\x1a\n"
                                                       "0000000000000000000",
                                27),
                   NNLIB_ERR_BAD_MAGIC);
  memcpy(copy, d, n);
  ts_wr32(copy + 8, 0xffffffffu);
  assert_int_equal(load_checked(copy, 12), NNLIB_ERR_UNSUPPORTED_VERSION);
  free(copy);
  nnlib_free(d);
}

/* A hostile size never turns into a large allocation: the loader compares
 * it with the bytes present before allocating anything. */
static void test_no_large_allocation(void **s) {
  (void)s;
  size_t n, m;
  unsigned char *d = sample_file(&n, true);
  parts p;
  ts_split_file(d, n, &p);
  m_tensor_past_end(&p);
  unsigned char *crafted = ts_join_file(&p, &m);
  capped c;
  capped_install(&c, (size_t)1 << 40);
  nnlib_model *model = NULL;
  nnlib_status st = nnlib_model_load_buffer(&model, crafted, m);
  nnlib_set_allocator(NULL);
  assert_int_equal(st, NNLIB_ERR_CORRUPT_FILE);
  assert_int_equal(c.live, 0);
  assert_true(c.largest < ((size_t)1 << 20));
  free(crafted);
  ts_free_parts(&p);
  nnlib_free(d);
}

/* A maximum batch whose activations would exceed 2^40 floats is refused
 * before compile allocates anything. */
static void test_plan_too_large(void **s) {
  (void)s;
  nnlib_model *m = spec_model("dense:600,relu", 4, 2, NNLIB_LOSS_MSE, NULL, 1);
  size_t n, k;
  unsigned char *d = save_bytes(m, 0, &n);
  parts p;
  ts_split_file(d, n, &p);
  ts_wr64(p.payload[HEAD] + H_BATCH, 0x7fffffff); /* x (4 + 600 + 600) floats */
  unsigned char *crafted = ts_join_file(&p, &k);
  assert_int_equal(load_checked(crafted, k), NNLIB_ERR_TOO_LARGE);
  ts_expect_message("more than 2^40 floats");
  free(crafted);
  ts_free_parts(&p);
  nnlib_free(d);
  nnlib_model_free(m);
}

/* More layers than a file holds: the save refuses, it does not write a
 * file no loader would read. */
static void test_too_many_layers(void **s) {
  (void)s;
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  for (int i = 0; i < 65537; i++)
    ASSERT_OK(nnlib_model_add(m, ts_act(NNLIB_ACT_IDENTITY, 0)));
  int64_t in = 1;
  ASSERT_OK(nnlib_model_compile(m, &in, 1, 1, NNLIB_LOSS_NONE, NULL, 1));
  void *data = NULL;
  size_t size;
  ASSERT_STATUS(NNLIB_ERR_TOO_LARGE,
                nnlib_model_save_to_buffer(&data, &size, m, 0));
  ts_expect_message("65537 layers, model files hold at most 65536");
  nnlib_model_free(m);
}

/* ------------------------------------------------ memory exhaustion */

/* Allocation k of a load fails, for every k: out-of-memory or success,
 * never a leak, never half a model. */
static void test_oom_load(void **s) {
  (void)s;
  size_t n;
  unsigned char *d = sample_file(&n, true);
  ts_alloc_stats stats;
  long k;
  for (k = 1;; k++) {
    stats.fail_at = k;
    ts_alloc_install(&stats);
    nnlib_model *m = (nnlib_model *)1;
    nnlib_status st = nnlib_model_load_buffer(&m, d, n);
    bool injected = stats.allocs >= k;
    if (st == NNLIB_OK)
      nnlib_model_free(m);
    else
      assert_null(m);
    ts_alloc_uninstall();
    assert_int_equal(stats.live, 0);
    if (!injected) {
      ASSERT_OK(st);
      break;
    }
    if (st != NNLIB_ERR_OUT_OF_MEMORY)
      fail_msg("allocation %ld failed: %s (%s)", k, nnlib_status_string(st),
               nnlib_last_error_message());
  }
  print_message("load makes %ld allocations\n", k - 1);
  assert_true(k > 5);
  /* from a file: one allocation more, the file's bytes */
  char path[400];
  snprintf(path, sizeof path, "%s/oom.nnl", tmpdir);
  FILE *f = fopen(path, "wb");
  assert_int_equal(fwrite(d, 1, n, f), n);
  fclose(f);
  for (long j = 1; j <= k + 1; j++) {
    stats.fail_at = j;
    ts_alloc_install(&stats);
    nnlib_model *m = (nnlib_model *)1;
    nnlib_status st = nnlib_model_load(&m, path);
    if (st == NNLIB_OK)
      nnlib_model_free(m);
    else
      assert_null(m);
    ts_alloc_uninstall();
    assert_int_equal(stats.live, 0);
    assert_int_equal(st, j <= k ? NNLIB_ERR_OUT_OF_MEMORY : NNLIB_OK);
  }
  unlink(path);
  nnlib_free(d);
}

static void test_oom_save(void **s) {
  (void)s;
  nnlib_model *m = spec_model("dense:4,relu,dense:2", 3, 2, NNLIB_LOSS_MSE,
                              NULL, 1);
  ts_alloc_stats stats;
  for (long k = 1;; k++) {
    stats.fail_at = k;
    ts_alloc_install(&stats);
    void *data = (void *)1;
    size_t size = 1;
    nnlib_status st = nnlib_model_save_to_buffer(&data, &size, m, 0);
    bool injected = stats.allocs >= k;
    if (st == NNLIB_OK)
      nnlib_free(data);
    else
      assert_true(data == NULL && size == 0);
    ts_alloc_uninstall();
    assert_int_equal(stats.live, 0);
    if (!injected) {
      ASSERT_OK(st);
      break;
    }
    assert_int_equal(st, NNLIB_ERR_OUT_OF_MEMORY);
  }
  nnlib_model_free(m);
}

/* -------------------------------------------------- resumed training */

static nnlib_optimizer *make_optimizer(int which) {
  nnlib_optimizer_options o;
  nnlib_optimizer *opt = NULL;
  switch (which) {
  case 0: /* plain SGD */
    ASSERT_OK(nnlib_optimizer_options_init(&o, NNLIB_OPT_SGD));
    o.learning_rate = 0.05f;
    break;
  case 1: /* SGD, Nesterov momentum, weight decay, step schedule */
    ASSERT_OK(nnlib_optimizer_options_init(&o, NNLIB_OPT_SGD));
    o.momentum = 0.9f;
    o.nesterov = 1;
    o.weight_decay = 1e-3f;
    o.schedule = NNLIB_SCHEDULE_STEP;
    o.step_size = 3;
    o.gamma = 0.5f;
    break;
  case 2: /* Adam with clipping */
    ASSERT_OK(nnlib_optimizer_options_init(&o, NNLIB_OPT_ADAM));
    o.clip_norm = 0.5f;
    break;
  case 3: /* AdamW, cosine schedule */
    ASSERT_OK(nnlib_optimizer_options_init(&o, NNLIB_OPT_ADAMW));
    o.schedule = NNLIB_SCHEDULE_COSINE;
    o.total_steps = 8;
    o.min_learning_rate = 1e-4f;
    break;
  default: /* RMSProp with momentum */
    ASSERT_OK(nnlib_optimizer_options_init(&o, NNLIB_OPT_RMSPROP));
    o.momentum = 0.5f;
    break;
  }
  ASSERT_OK(nnlib_optimizer_create(&opt, &o));
  return opt;
}

enum { R_IN = 6, R_OUT = 3, R_N = 8 };

static void train_steps(nnlib_model *m, int first, int count) {
  nnlib_tensor *x = ts_tensor2(R_N, R_IN, NULL), *t = ts_tensor2(R_N, R_OUT, NULL);
  for (int step = first; step < first + count; step++) {
    uint32_t seed = 100u + (uint32_t)step;
    ts_fill_uniform(nnlib_tensor_get_data(x), R_N * R_IN, -1.0f, 1.0f, &seed);
    ts_fill_uniform(nnlib_tensor_get_data(t), R_N * R_OUT, 0.0f, 1.0f, &seed);
    ASSERT_OK(nnlib_model_step(m, x, t, NULL));
  }
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
}

/* Train 5 steps, save, train 5 more; a model loaded from the save and
 * trained the same 5 steps ends bit-identical, optimizer state included. */
static void test_resume_training(void **s) {
  (void)s;
  for (int which = 0; which < 5; which++) {
    nnlib_model *a = spec_model("dense:8,tanh,dense:6,relu,dense:3", R_IN, R_N,
                                NNLIB_LOSS_MSE, make_optimizer(which), 21);
    train_steps(a, 0, 5);
    size_t n;
    unsigned char *saved = save_bytes(a, NNLIB_SAVE_OPTIMIZER, &n);
    train_steps(a, 5, 5);
    nnlib_model *b = NULL;
    ASSERT_OK(nnlib_model_load_buffer(&b, saved, n));
    assert_non_null(nnlib_model_get_optimizer(b));
    assert_int_equal(nnlib_optimizer_get_step_count(nnlib_model_get_optimizer(b)), 5);
    train_steps(b, 5, 5);
    assert_int_equal(nnlib_optimizer_get_step_count(nnlib_model_get_optimizer(b)), 10);
    assert_same_params(a, b);
    /* and the whole state, byte for byte */
    size_t na, nb;
    unsigned char *sa = save_bytes(a, NNLIB_SAVE_OPTIMIZER, &na);
    unsigned char *sb = save_bytes(b, NNLIB_SAVE_OPTIMIZER, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(sa, sb, na);
    nnlib_free(sa);
    nnlib_free(sb);
    nnlib_free(saved);
    nnlib_model_free(a);
    nnlib_model_free(b);
  }
}

/* fit shuffles from the model's generator: its position is saved too. */
static void test_resume_fit(void **s) {
  (void)s;
  enum { S = 40 };
  nnlib_tensor *x = ts_tensor2(S, R_IN, NULL), *t = ts_tensor2(S, R_OUT, NULL);
  uint32_t seed = 5;
  ts_fill_uniform(nnlib_tensor_get_data(x), S * R_IN, -1.0f, 1.0f, &seed);
  ts_fill_uniform(nnlib_tensor_get_data(t), S * R_OUT, 0.0f, 1.0f, &seed);
  nnlib_fit_options fo;
  ASSERT_OK(nnlib_fit_options_init(&fo));
  fo.epochs = 2;
  fo.batch_size = 8;
  nnlib_model *a = spec_model("dense:8,sigmoid,dense:3", R_IN, 8,
                              NNLIB_LOSS_MSE, make_optimizer(2), 4);
  ASSERT_OK(nnlib_model_fit(a, x, t, &fo));
  size_t n;
  unsigned char *saved = save_bytes(a, NNLIB_SAVE_OPTIMIZER, &n);
  ASSERT_OK(nnlib_model_fit(a, x, t, &fo));
  nnlib_model *b = NULL;
  ASSERT_OK(nnlib_model_load_buffer(&b, saved, n));
  ASSERT_OK(nnlib_model_fit(b, x, t, &fo));
  assert_same_params(a, b);
  nnlib_free(saved);
  nnlib_model_free(a);
  nnlib_model_free(b);
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
}

/* Saved without its optimizer, a model loads for inference; a new
 * optimizer makes it trainable again. */
static void test_without_optimizer(void **s) {
  (void)s;
  nnlib_model *a = spec_model("dense:4,relu,dense:3", R_IN, R_N,
                              NNLIB_LOSS_MSE, make_optimizer(2), 8);
  train_steps(a, 0, 3);
  size_t n, n_opt;
  unsigned char *plain = save_bytes(a, 0, &n);
  unsigned char *full = save_bytes(a, NNLIB_SAVE_OPTIMIZER, &n_opt);
  assert_true(n_opt > n);
  nnlib_model *b = NULL;
  ASSERT_OK(nnlib_model_load_buffer(&b, plain, n));
  assert_null(nnlib_model_get_optimizer(b));
  assert_same_params(a, b);
  nnlib_tensor *x = ts_tensor2(R_N, R_IN, NULL), *t = ts_tensor2(R_N, R_OUT, NULL);
  ASSERT_STATUS(NNLIB_ERR_WRONG_STATE, nnlib_model_step(b, x, t, NULL));
  ASSERT_OK(nnlib_model_set_optimizer(b, make_optimizer(1)));
  ASSERT_OK(nnlib_model_step(b, x, t, NULL));
  assert_int_equal(nnlib_optimizer_get_step_count(nnlib_model_get_optimizer(b)), 1);
  /* replacing an optimizer frees the old one (the counting allocator in
   * test_set_optimizer checks that) and starts from step 0 */
  ASSERT_OK(nnlib_model_set_optimizer(b, make_optimizer(0)));
  assert_int_equal(nnlib_optimizer_get_step_count(nnlib_model_get_optimizer(b)), 0);
  nnlib_optimizer *same = nnlib_model_get_optimizer(b);
  ASSERT_OK(nnlib_model_set_optimizer(b, same)); /* a no-op */
  ASSERT_OK(nnlib_model_step(b, x, t, NULL));
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
  nnlib_free(plain);
  nnlib_free(full);
  nnlib_model_free(a);
  nnlib_model_free(b);
}

static void test_set_optimizer(void **s) {
  (void)s;
  ts_alloc_stats stats;
  stats.fail_at = 0;
  ts_alloc_install(&stats);
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  /* the model takes the optimizer also when the call fails */
  ASSERT_STATUS(NNLIB_ERR_WRONG_STATE, nnlib_model_set_optimizer(m, make_optimizer(0)));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_model_set_optimizer(NULL, make_optimizer(1)));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_model_set_optimizer(m, NULL));
  nnlib_model_free(m);
  m = spec_model("dense:2", 2, 1, NNLIB_LOSS_NONE, NULL, 1);
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_model_set_optimizer(m, make_optimizer(2)));
  ts_expect_message("without a loss");
  nnlib_model_free(m);
  m = spec_model("dense:2", 2, 1, NNLIB_LOSS_MSE, make_optimizer(3), 1);
  ASSERT_OK(nnlib_model_set_optimizer(m, make_optimizer(4)));
  nnlib_model_free(m);
  assert_int_equal(stats.live, 0);
  /* no memory for the new state: the old optimizer stays */
  m = spec_model("dense:2", 2, 1, NNLIB_LOSS_MSE, make_optimizer(2), 1);
  nnlib_optimizer *old = nnlib_model_get_optimizer(m);
  nnlib_optimizer *next = make_optimizer(3);
  stats.fail_at = stats.allocs + 1;
  ASSERT_STATUS(NNLIB_ERR_OUT_OF_MEMORY, nnlib_model_set_optimizer(m, next));
  stats.fail_at = 0;
  assert_ptr_equal(nnlib_model_get_optimizer(m), old);
  nnlib_model_free(m);
  ts_alloc_uninstall();
  assert_int_equal(stats.live, 0);
}

/* ------------------------------------------------------- file info */

/* A version-1 file is a chain; a merge layer (add) in it reads two nodes,
 * which no chain has. The file fuzz_model_load found (kept in its
 * regressions; the fuzzer ignores checksums, so they are recomputed here)
 * loads as a corrupt file, not as a bad argument of the call, and gives
 * no model. */
static void test_v1_chain_with_merge_layer(void **s) {
  (void)s;
  const char *src = getenv("NNLIB_SOURCE_DIR");
  char path[1024];
  snprintf(path, sizeof path,
           "%s/fuzz/regressions/model_load/v1-chain-with-add-layer",
           src ? src : ".");
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    fail_msg("cannot open %s (set NNLIB_SOURCE_DIR)", path);
  unsigned char found[4096];
  size_t found_size = fread(found, 1, sizeof found, f);
  fclose(f);
  assert_true(found_size > 12 && found_size < sizeof found);
  assert_int_equal(ts_rd32(found + 8), 1); /* a version-1 chain */
  ts_file_parts parts;
  ts_split_file(found, found_size, &parts);
  size_t size;
  unsigned char *file = ts_join_file(&parts, &size);
  nnlib_model *m = NULL;
  ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE, nnlib_model_load_buffer(&m, file, size));
  ts_expect_message("chain");
  assert_null(m);
  free(file);
  ts_free_parts(&parts);
}

static void test_file_info(void **s) {
  (void)s;
  size_t n;
  nnlib_model *m = spec_model("dense:5,relu,dense:2", 3, 6,
                              NNLIB_LOSS_SOFTMAX_CE, make_optimizer(3), 44);
  nnlib_tensor *x = ts_tensor2(2, 3, NULL), *t = ts_tensor2(2, 2, NULL);
  ASSERT_OK(nnlib_model_step(m, x, t, NULL));
  ASSERT_OK(nnlib_model_step(m, x, t, NULL));
  unsigned char *d = save_bytes(m, NNLIB_SAVE_OPTIMIZER, &n);
  nnlib_model_file_info info;
  memset(&info, 0xab, sizeof info);
  info.struct_size = sizeof info;
  ASSERT_OK(nnlib_model_file_get_info(d, n, &info));
  assert_int_equal(info.struct_size, sizeof info);
  assert_int_equal(info.format_version, 1); /* a chain */
  assert_int_equal(info.library_version, NNLIB_VERSION_NUMBER);
  assert_int_equal(info.file_size, n);
  assert_int_equal(info.loss, NNLIB_LOSS_SOFTMAX_CE);
  assert_int_equal(info.input_rank, 1);
  assert_int_equal(info.input_shape[0], 3);
  assert_int_equal(info.max_batch, 6);
  assert_int_equal(info.seed, 44);
  assert_int_equal(info.layer_count, 3);
  assert_int_equal(info.param_count, 3 * 5 + 5 + 5 * 2 + 2);
  assert_int_equal(info.has_optimizer, 1);
  assert_int_equal(info.optimizer_kind, NNLIB_OPT_ADAMW);
  assert_int_equal(info.optimizer_steps, 2);
  /* an older, shorter struct gets its prefix and nothing beyond */
  unsigned char small[sizeof(nnlib_model_file_info)];
  memset(small, 0xcd, sizeof small);
  size_t short_size = offsetof(nnlib_model_file_info, library_version);
  memcpy(small, &short_size, sizeof short_size);
  ASSERT_OK(nnlib_model_file_get_info(d, n, (nnlib_model_file_info *)small));
  assert_int_equal(ts_rd32(small + offsetof(nnlib_model_file_info,
                                         format_version)),
                   1);
  assert_int_equal(small[short_size], 0xcd);
  /* a newer file: the version is still reported */
  ts_wr32(d + 8, 7);
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  ASSERT_STATUS(NNLIB_ERR_UNSUPPORTED_VERSION, nnlib_model_file_get_info(d, n, &info));
  assert_int_equal(info.format_version, 7);
  info.struct_size = 0;
  ASSERT_STATUS(NNLIB_ERR_STRUCT_SIZE, nnlib_model_file_get_info(d, n, &info));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_model_file_get_info(d, n, NULL));
  nnlib_model_file_info fresh = {.struct_size = sizeof fresh};
  ASSERT_STATUS(NNLIB_ERR_TRUNCATED, nnlib_model_file_get_info(d, 10, &fresh));
  nnlib_free(d);
  /* without optimizer */
  d = save_bytes(m, 0, &n);
  info.struct_size = sizeof info;
  ASSERT_OK(nnlib_model_file_get_info(d, n, &info));
  assert_int_equal(info.has_optimizer, 0);
  assert_int_equal(info.optimizer_kind, 0);
  nnlib_free(d);
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
  nnlib_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip_every_kind),
      cmocka_unit_test(test_round_trip_sequences),
      cmocka_unit_test(test_round_trip_images),
      cmocka_unit_test(test_sequence_configs),
      cmocka_unit_test(test_round_trip_shapes_and_values),
      cmocka_unit_test(test_documented_layout),
      cmocka_unit_test(test_file_round_trip),
      cmocka_unit_test(test_load_errors),
      cmocka_unit_test(test_save_errors),
      cmocka_unit_test(test_atomic_save),
      cmocka_unit_test(test_truncated_everywhere),
      cmocka_unit_test(test_flipped_bytes),
      cmocka_unit_test(test_flipped_bytes_repaired),
      cmocka_unit_test(test_crafted_files),
      cmocka_unit_test(test_container_damage),
      cmocka_unit_test(test_no_large_allocation),
      cmocka_unit_test(test_plan_too_large),
      cmocka_unit_test(test_too_many_layers),
      cmocka_unit_test(test_oom_load),
      cmocka_unit_test(test_oom_save),
      cmocka_unit_test(test_resume_training),
      cmocka_unit_test(test_resume_fit),
      cmocka_unit_test(test_without_optimizer),
      cmocka_unit_test(test_set_optimizer),
      cmocka_unit_test(test_file_info),
      cmocka_unit_test(test_v1_chain_with_merge_layer),
  };
  return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
