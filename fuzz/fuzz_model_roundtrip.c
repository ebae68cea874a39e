/* fuzz_model_roundtrip: the input bytes choose a small model (a family of
 * input and layers written as a model description, loss, optimizer and its
 * options, seed, a few training steps on data from the bytes). The harness saves it, loads it and saves
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
  uint32_t bits = 0;
  for (int i = 0; i < 4; i++)
    bits |= (uint32_t)take(b) << (8 * i);
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

/* Appends one description item for the family: 0 features [F] (dense,
 * activations, dropout, batchnorm), 1 images [C, H, W] (conv, pooling,
 * batchnorm, dropout, flatten, activations), 2 sequences [T, F]
 * (rnn/lstm/gru, last, dense). A layer kind that later issues add joins
 * its family's list here. */
static void append_item(bytes *b, unsigned family, char *text, size_t cap) {
  static const char *acts[] = {"identity", "step",    "sigmoid", "tanh",
                               "relu",     "softplus", "softmax"};
  char item[96];
  unsigned c = take(b), v = take(b);
  switch (family == 0 ? c % 5 : family == 1 ? 5 + c % 8 : 13 + c % 5) {
  case 0: snprintf(item, sizeof item, "dense:%u%s", 1 + v % 9, c & 32 ? ":nobias" : ""); break;
  case 1: snprintf(item, sizeof item, "%s", acts[v % 7]); break;
  case 2: snprintf(item, sizeof item, "leaky_relu:%g", (double)(v % 50) / 100.0); break;
  case 3: snprintf(item, sizeof item, "dropout:%g", (double)(v % 9) / 10.0); break;
  case 4: case 10: snprintf(item, sizeof item, "batchnorm%s", v & 1 ? ":0.3" : ""); break;
  case 5: case 6:
    snprintf(item, sizeof item, "conv:%ux%ux%u%s%s%s", 1 + v % 4, 1 + (v >> 2) % 3,
             1 + (v >> 4) % 3, c & 32 ? ":s2" : "", c & 64 ? ":p1" : "",
             c & 128 ? ":nobias" : "");
    break;
  case 7: snprintf(item, sizeof item, "%s:%u%s", v % 3 == 0 ? "maxpool" : v % 3 == 1 ? "minpool" : "avgpool", 1 + (v >> 2) % 2, c & 32 ? ":s1" : ""); break;
  case 8: snprintf(item, sizeof item, "%s", c & 32 ? "global_avgpool" : "flatten"); break;
  case 9: snprintf(item, sizeof item, "%s", acts[v % 7]); break;
  case 11: case 12: snprintf(item, sizeof item, "dropout:0.5"); break;
  /* `last` may only follow a recurrent item */
  case 13: snprintf(item, sizeof item, "rnn:%u%s%s%s", 1 + v % 5, c & 32 ? ":relu" : "", c & 64 ? ":nobias" : "", c & 128 ? ",last" : ""); break;
  case 14: snprintf(item, sizeof item, "lstm:%u%s%s", 1 + v % 5, c & 32 ? ":nobias" : "", c & 128 ? ",last" : ""); break;
  case 15: snprintf(item, sizeof item, "gru:%u%s%s", 1 + v % 5, c & 32 ? ":nobias" : "", c & 128 ? ",last" : ""); break;
  default: snprintf(item, sizeof item, "dense:%u", 1 + v % 5); break;
  }
  size_t used = strlen(text);
  snprintf(text + used, cap - used, "%s%s", used ? "," : "", item);
}

/* Builds and compiles a model from the bytes; NULL if the choices do not
 * make a model (shapes that do not chain, descriptions a family does not
 * take) or an allocation fails. Every description the harness writes must
 * parse, though. */
static nnlib_model *make_model(bytes *b, int64_t *max_batch) {
  unsigned family = take(b) % 3;
  int64_t input[3];
  size_t rank;
  if (family == 0) {
    rank = 1;
    input[0] = 1 + take(b) % 12;
  } else if (family == 1) {
    rank = 3;
    input[0] = 1 + take(b) % 3;
    input[1] = 3 + take(b) % 6;
    input[2] = 3 + take(b) % 6;
  } else {
    rank = 2;
    input[0] = 1 + take(b) % 5;
    input[1] = 1 + take(b) % 6;
  }
  char text[1024] = "";
  unsigned items = 1 + take(b) % 6;
  for (unsigned i = 0; i < items; i++)
    append_item(b, family, text, sizeof text);
  nnlib_model *m = NULL;
  if (nnlib_model_create(&m) != NNLIB_OK)
    return NULL;
  nnlib_status st = nnlib_model_add_spec(m, text);
  fuzz_expect(st);
  if (st != NNLIB_OK && st != NNLIB_ERR_OUT_OF_MEMORY)
    fprintf(stderr, "\"%s\": %s\n", text, nnlib_last_error_message());
  FUZZ_CHECK(st == NNLIB_OK || st == NNLIB_ERR_OUT_OF_MEMORY);
  nnlib_optimizer *opt = make_optimizer(b);
  nnlib_loss loss = (nnlib_loss)(1 + take(b) % 3);
  if (opt == NULL && (take(b) & 1))
    loss = NNLIB_LOSS_NONE;
  *max_batch = 1 + take(b) % 4;
  uint64_t seed = take(b);
  seed |= (uint64_t)take(b) << 8;
  if (st == NNLIB_OK)
    st = nnlib_model_compile(m, input, rank, *max_batch, loss, opt, seed);
  else
    nnlib_optimizer_free(opt);
  fuzz_expect(st);
  if (st != NNLIB_OK) {
    nnlib_model_free(m);
    return NULL;
  }
  return m;
}

/* x [n, input...] and one-hot targets [n, output...] from the bytes. */
static bool make_batch(nnlib_model *m, bytes *b, int64_t n, nnlib_tensor **x,
                       nnlib_tensor **t) {
  int64_t xs[NNLIB_MAX_RANK + 1], ts[NNLIB_MAX_RANK + 1];
  size_t rank_in = 0, rank_out = 0;
  FUZZ_CHECK(nnlib_model_get_input_shape(m, xs + 1, NNLIB_MAX_RANK,
                                         &rank_in) == NNLIB_OK);
  FUZZ_CHECK(nnlib_model_get_output_shape(m, ts + 1, NNLIB_MAX_RANK,
                                          &rank_out) == NNLIB_OK);
  xs[0] = ts[0] = n;
  *x = *t = NULL;
  if (nnlib_tensor_create(x, xs, rank_in + 1) != NNLIB_OK ||
      nnlib_tensor_create(t, ts, rank_out + 1) != NNLIB_OK) {
    nnlib_tensor_free(*x);
    *x = NULL;
    return false;
  }
  float *xd = nnlib_tensor_get_data(*x), *td = nnlib_tensor_get_data(*t);
  for (int64_t i = 0; i < nnlib_tensor_get_size(*x); i++)
    xd[i] = take_float(b);
  int64_t per_sample = nnlib_tensor_get_size(*t) / n;
  for (int64_t r = 0; r < n; r++)
    td[r * per_sample + (int64_t)take(b) % per_sample] = 1.0f;
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
        fuzz_predict(loaded, max_batch, &y2) == NNLIB_OK && y1 != NULL &&
        y2 != NULL)
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
