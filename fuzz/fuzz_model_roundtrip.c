/* fuzz_model_roundtrip: the input bytes choose a small valid model (layers,
 * widths, activations, loss, optimizer and its options, seed, a few training
 * steps on data from the bytes). The harness saves it, loads it and saves
 * it again: the two files must be byte-identical, predictions bitwise equal,
 * and, when the optimizer was saved, one more training step on the original
 * and on the loaded model must give byte-identical files again (resume is
 * exact). Any failure of a valid model to save or load is a finding. */
#include "fuzz_common.h"

#include <math.h>

typedef struct bytes {
  const uint8_t *p;
  size_t left;
} bytes;

/* The next byte, or 0 once the input is used up. */
static unsigned take(bytes *b) {
  if (b->left == 0)
    return 0;
  b->left--;
  return *b->p++;
}

/* A float from four bytes, kept to finite values in [-4, 4]. */
static float take_float(bytes *b) {
  uint32_t bits = take(b) | take(b) << 8 | take(b) << 16 | (uint32_t)take(b) << 24;
  float v;
  memcpy(&v, &bits, sizeof v);
  if (!isfinite(v))
    return 0.5f;
  return fmodf(v, 4.0f);
}

static nnlib_optimizer *make_optimizer(bytes *b) {
  unsigned kind = take(b) % 5;
  if (kind == 0)
    return NULL;
  nnlib_optimizer_options o;
  FUZZ_CHECK(nnlib_optimizer_options_init(&o, (nnlib_optimizer_kind)kind) ==
             NNLIB_OK);
  o.learning_rate = (float)(1 + take(b)) / 1024.0f;
  unsigned flags = take(b);
  if (kind == NNLIB_OPT_SGD || kind == NNLIB_OPT_RMSPROP)
    o.momentum = (flags & 1) ? 0.9f : 0.0f;
  if (kind == NNLIB_OPT_SGD && o.momentum > 0.0f)
    o.nesterov = (flags >> 1) & 1;
  if (flags & 4)
    o.weight_decay = 0.01f;
  o.schedule = (nnlib_schedule)((flags >> 3) % 3);
  o.step_size = 1 + (flags >> 5);
  o.total_steps = 2 + take(b) % 8;
  if (flags & 0x80)
    o.clip_norm = 0.5f;
  nnlib_optimizer *opt = NULL;
  nnlib_status st = nnlib_optimizer_create(&opt, &o);
  fuzz_expect(st);
  FUZZ_CHECK(st == NNLIB_OK || st == NNLIB_ERR_OUT_OF_MEMORY);
  return opt;
}

/* Builds and compiles a model from the bytes; NULL if it cannot (only an
 * allocation may fail: every choice is valid). */
static nnlib_model *make_model(bytes *b, int64_t *max_batch) {
  nnlib_model *m = NULL;
  if (nnlib_model_create(&m) != NNLIB_OK)
    return NULL;
  int64_t in = 1 + take(b) % 12, width = in;
  unsigned layers = 1 + take(b) % 6;
  for (unsigned i = 0; i < layers; i++) {
    unsigned c = take(b);
    nnlib_layer *l = NULL;
    nnlib_status st;
    if (c % 3 != 0 || i == 0) {
      int64_t out = 1 + (c >> 2) % 10;
      /* 0: take the input size from the previous layer at compile */
      st = nnlib_dense_create(&l, (c & 2) ? 0 : width, out, (c >> 6) & 1);
      width = out;
    } else {
      unsigned kind = (c >> 2) % 8;
      float slope = kind == NNLIB_ACT_LEAKY_RELU ? fabsf(take_float(b)) : 0.0f;
      st = nnlib_activation_create(&l, (nnlib_activation)kind, slope);
    }
    fuzz_expect(st);
    if (st == NNLIB_OK)
      st = nnlib_model_add(m, l);
    if (st != NNLIB_OK) {
      FUZZ_CHECK(st == NNLIB_ERR_OUT_OF_MEMORY);
      nnlib_model_free(m);
      return NULL;
    }
  }
  nnlib_optimizer *opt = make_optimizer(b);
  nnlib_loss loss = (nnlib_loss)(1 + take(b) % 3);
  if (opt == NULL && (take(b) & 1))
    loss = NNLIB_LOSS_NONE;
  *max_batch = 1 + take(b) % 4;
  uint64_t seed = take(b) | (uint64_t)take(b) << 8;
  nnlib_status st =
      nnlib_model_compile(m, &in, 1, *max_batch, loss, opt, seed);
  fuzz_expect(st);
  if (st != NNLIB_OK) {
    FUZZ_CHECK(st == NNLIB_ERR_OUT_OF_MEMORY);
    nnlib_model_free(m);
    return NULL;
  }
  return m;
}

/* x [n, in] and targets [n, out] from the bytes. */
static bool make_batch(nnlib_model *m, bytes *b, int64_t n, nnlib_tensor **x,
                       nnlib_tensor **t) {
  int64_t in[NNLIB_MAX_RANK], out[NNLIB_MAX_RANK];
  size_t rank_in = 0, rank_out = 0;
  FUZZ_CHECK(nnlib_model_get_input_shape(m, in, NNLIB_MAX_RANK, &rank_in) ==
             NNLIB_OK);
  FUZZ_CHECK(nnlib_model_get_output_shape(m, out, NNLIB_MAX_RANK,
                                          &rank_out) == NNLIB_OK);
  int64_t xs[2] = {n, in[0]}, ts[2] = {n, out[0]};
  *x = *t = NULL;
  if (nnlib_tensor_create(x, xs, 2) != NNLIB_OK ||
      nnlib_tensor_create(t, ts, 2) != NNLIB_OK) {
    nnlib_tensor_free(*x);
    return false;
  }
  float *xd = nnlib_tensor_get_data(*x), *td = nnlib_tensor_get_data(*t);
  for (int64_t i = 0; i < n * in[0]; i++)
    xd[i] = take_float(b);
  /* targets in [0, 1], one-hot-like rows sum to at most 1 per row for CE */
  for (int64_t r = 0; r < n; r++)
    for (int64_t c = 0; c < out[0]; c++)
      td[r * out[0] + c] = c == (int64_t)(take(b) % (unsigned)out[0]) ? 1.0f
                                                                       : 0.0f;
  return true;
}

static void *save(nnlib_model *m, unsigned flags, size_t *size) {
  void *data = NULL;
  nnlib_status st = nnlib_model_save_buffer(m, flags, &data, size);
  fuzz_expect(st);
  FUZZ_CHECK(st == NNLIB_OK || st == NNLIB_ERR_OUT_OF_MEMORY);
  return data;
}

/* One step each on a and b with the same batch, then equal files. */
static void check_resume(nnlib_model *a, nnlib_model *b, nnlib_tensor *x,
                         nnlib_tensor *t) {
  nnlib_status sa = nnlib_model_step(a, x, t, NULL);
  nnlib_status sb = nnlib_model_step(b, x, t, NULL);
  fuzz_expect(sa);
  FUZZ_CHECK(sa == sb);
  size_t na = 0, nb = 0;
  void *fa = save(a, NNLIB_SAVE_OPTIMIZER, &na);
  void *fb = save(b, NNLIB_SAVE_OPTIMIZER, &nb);
  if (fa != NULL && fb != NULL)
    FUZZ_CHECK(na == nb && memcmp(fa, fb, na) == 0);
  nnlib_free(fa);
  nnlib_free(fb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_begin();
  bytes b = {data, size};
  int64_t max_batch = 1;
  nnlib_model *m = make_model(&b, &max_batch);
  if (m == NULL) {
    fuzz_end();
    return 0;
  }
  unsigned flags = take(&b) & 1 ? NNLIB_SAVE_OPTIMIZER : 0;
  unsigned steps = take(&b) % 4;
  nnlib_tensor *x = NULL, *t = NULL;
  bool have_batch = make_batch(m, &b, max_batch, &x, &t);
  bool trainable = nnlib_model_get_optimizer(m) != NULL;
  for (unsigned s = 0; have_batch && trainable && s < steps; s++) {
    nnlib_status st = nnlib_model_step(m, x, t, NULL);
    fuzz_expect(st);
    FUZZ_CHECK(st == NNLIB_OK || st == NNLIB_ERR_NUMERICAL);
  }

  size_t size1 = 0, size2 = 0;
  void *file1 = save(m, flags, &size1);
  nnlib_model *loaded = NULL;
  if (file1 != NULL) {
    nnlib_status st = nnlib_model_load_buffer(&loaded, file1, size1);
    fuzz_expect(st);
    FUZZ_CHECK(st == NNLIB_OK || st == NNLIB_ERR_OUT_OF_MEMORY);
  }
  if (loaded != NULL) {
    void *file2 = save(loaded, flags, &size2);
    if (file2 != NULL)
      FUZZ_CHECK(size1 == size2 && memcmp(file1, file2, size1) == 0);
    nnlib_free(file2);
    nnlib_tensor *y1 = NULL, *y2 = NULL;
    if (fuzz_predict(m, max_batch, &y1) == NNLIB_OK &&
        fuzz_predict(loaded, max_batch, &y2) == NNLIB_OK)
      FUZZ_CHECK(fuzz_same_bits(y1, y2));
    nnlib_tensor_free(y1);
    nnlib_tensor_free(y2);
    FUZZ_CHECK(nnlib_model_get_max_batch(loaded) == max_batch);
    FUZZ_CHECK(nnlib_model_get_loss(loaded) == nnlib_model_get_loss(m));
    if (have_batch && trainable && flags == NNLIB_SAVE_OPTIMIZER)
      check_resume(m, loaded, x, t);
  }
  nnlib_model_free(loaded);
  nnlib_free(file1);
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
  nnlib_model_free(m);
  fuzz_end();
  return 0;
}
