/* fuzz_model_load: nnlib_model_load_buffer on arbitrary bytes, model files
 * of version 1 (chains), 2 (graphs: several inputs, merges, names) and 3
 * (version 2 with the optimizer's warmup).
 * What loads must also work: it predicts one batch (one tensor per input),
 * its description re-parses, and it saves to bytes that load again and save
 * to the same bytes, with the same predictions bit for bit and, for a
 * language model, the same generated tokens (fuzz_generate); inputs an
 * embedding reads get int32 token ids, and an id outside the vocabulary
 * fails prediction as out of range. A model with a loss takes one
 * training step (one backward pass without an optimizer; softmax_ce over
 * [T, V] logits also one with int32 class indices),
 * and with an optimizer two epochs of fit with validation, early stopping
 * and restore-best; a one-input sequence model runs sequences shorter than
 * compiled or refuses them. Nothing may leak, whatever fails.
 *
 * In the fuzz build (FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION) the loader
 * skips checksum mismatches. The replay in normal builds has real checks,
 * so it first rewrites the CRCs of whatever sections the bytes frame (as
 * docs/FILE_FORMAT.md lays them out), so that a regression file still
 * reaches the parser code it was found in. */
#include "fuzz_common.h"

#include <zlib.h>

#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
static uint64_t get_le(const unsigned char *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static void put_le32(unsigned char *p, uint32_t v) {
  for (size_t i = 0; i < 4; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t crc(const unsigned char *p, size_t n) {
  return (uint32_t)crc32(crc32(0L, Z_NULL, 0), p, (uInt)n);
}

/* Preamble of 24 bytes, sections (tag, u64 length, payload, u32 CRC of the
 * three), u32 trailer CRC of everything before it. */
static void repair_checksums(unsigned char *b, size_t size) {
  size_t at = 24;
  while (at + 12 <= size) {
    uint64_t len = get_le(b + at + 4, 8);
    if (len > size - at - 12 || size - at - 12 - len < 4)
      break;
    put_le32(b + at + 12 + len, crc(b + at, 12 + (size_t)len));
    at += 12 + (size_t)len + 4;
  }
  if (size >= 28)
    put_le32(b + size - 4, crc(b, size - 4));
}
#endif

static void *saved(nnlib_model *m, unsigned flags, size_t *size) {
  void *bytes = NULL;
  nnlib_status st = nnlib_model_save_to_buffer(&bytes, size, m, flags);
  fuzz_expect(st);
  FUZZ_CHECK(st == NNLIB_OK || st == NNLIB_ERR_OUT_OF_MEMORY);
  return bytes;
}

/* Tokens a loaded model generates (fuzz_generate with the cache, seed 7),
 * and the status. */
typedef struct generated {
  nnlib_status st;
  int32_t tokens[5];
} generated;

static generated generate(nnlib_model *m) {
  generated g;
  memset(&g, 0, sizeof g);
  g.st = fuzz_generate(m, 1, 7, g.tokens, 5);
  return g;
}

/* Save, load, save: identical bytes, identical predictions and, for a
 * language model, the same generated tokens. */
static void check_round_trip(nnlib_model *m, const nnlib_tensor *y,
                             const generated *g) {
  size_t size1 = 0, size2 = 0;
  void *bytes1 = saved(m, NNLIB_SAVE_OPTIMIZER, &size1);
  if (bytes1 == NULL)
    return;
  nnlib_model *again = NULL;
  nnlib_status st = nnlib_model_load_buffer(&again, bytes1, size1);
  fuzz_expect(st);
  FUZZ_CHECK(st == NNLIB_OK || st == NNLIB_ERR_OUT_OF_MEMORY);
  if (again != NULL) {
    void *bytes2 = saved(again, NNLIB_SAVE_OPTIMIZER, &size2);
    if (bytes2 != NULL)
      FUZZ_CHECK(size1 == size2 && memcmp(bytes1, bytes2, size1) == 0);
    nnlib_free(bytes2);
    nnlib_tensor *y2 = NULL;
    if (y != NULL && fuzz_predict(again, 1, &y2) == NNLIB_OK && y2 != NULL)
      FUZZ_CHECK(fuzz_same_bits(y, y2));
    nnlib_tensor_free(y2);
    generated g2 = generate(again);
    if (g->st == NNLIB_OK && g2.st == NNLIB_OK)
      FUZZ_CHECK(memcmp(g->tokens, g2.tokens, sizeof g->tokens) == 0);
    else if (g->st != NNLIB_ERR_OUT_OF_MEMORY &&
             g2.st != NNLIB_ERR_OUT_OF_MEMORY)
      FUZZ_CHECK(g->st == g2.st);
  }
  nnlib_model_free(again);
  nnlib_free(bytes1);
}

/* The description of a loaded model parses back into as many layers. */
static void check_spec(nnlib_model *m) {
  size_t needed = 0;
  char buf[4096];
  nnlib_status st = nnlib_model_get_spec(m, buf, sizeof buf, &needed);
  FUZZ_CHECK(st == NNLIB_OK);
  if (needed >= sizeof buf)
    return;
  nnlib_model *parsed = NULL;
  if (nnlib_model_create(&parsed) != NNLIB_OK)
    return;
  st = nnlib_model_add_spec(parsed, buf);
  fuzz_expect(st);
  if (st != NNLIB_ERR_OUT_OF_MEMORY) {
    if (st != NNLIB_OK)
      fprintf(stderr, "spec \"%s\" does not parse back: %s\n", buf,
              nnlib_last_error_message());
    FUZZ_CHECK(st == NNLIB_OK);
    FUZZ_CHECK(nnlib_model_get_layer_count(parsed) ==
               nnlib_model_get_layer_count(m));
  }
  nnlib_model_free(parsed);
}

/* Two epochs of fit on the batch with itself as validation data, patience
 * 1 and restore-best: the best epoch's parameters and layer buffers go
 * back, whatever the architecture. */
static void check_fit_validated(nnlib_model *m, nnlib_tensor **xs,
                                size_t count, const nnlib_tensor *t) {
  nnlib_fit_options o;
  nnlib_validation_options v;
  FUZZ_CHECK(nnlib_fit_options_init(&o) == NNLIB_OK);
  FUZZ_CHECK(nnlib_validation_options_init(&v) == NNLIB_OK);
  o.epochs = 2;
  v.x = NULL; /* the inputs are validation_inputs */
  v.target = t;
  v.patience = 1;
  v.restore_best = 1;
  int64_t run = -1;
  v.epochs_run = &run;
  const nnlib_tensor *const *in = (const nnlib_tensor *const *)xs;
  nnlib_status st = nnlib_model_fit_inputs(m, in, count, t, &o, &v, in);
  fuzz_expect(st);
  /* out of memory: the harness's capped allocator refused the copy of the
   * best parameters (or the gathered sample) next to a big model */
  FUZZ_CHECK(st == NNLIB_OK || st == NNLIB_ERR_NUMERICAL ||
             st == NNLIB_ERR_OUT_OF_MEMORY);
  FUZZ_CHECK(run >= 0 && run <= 2);
  FUZZ_CHECK(st != NNLIB_ERR_OUT_OF_MEMORY || run == 0);
}

/* Softmax cross-entropy over logits [T, V] also takes T int32 class
 * indices per sample (a language model's next tokens): one backward pass
 * with indices in [0, V). */
static void check_index_targets(nnlib_model *m, nnlib_tensor **xs,
                                size_t count) {
  int64_t out[NNLIB_MAX_RANK];
  size_t rank = 0;
  if (nnlib_model_get_loss(m) != NNLIB_LOSS_SOFTMAX_CE)
    return;
  FUZZ_CHECK(nnlib_model_get_output_shape(m, out, NNLIB_MAX_RANK, &rank) ==
             NNLIB_OK);
  if (rank < 2)
    return;
  int64_t classes = out[rank - 1], rows = 1;
  for (size_t i = 0; i + 1 < rank; i++)
    rows *= out[i];
  int64_t shape[2] = {1, rows};
  nnlib_tensor *t = NULL;
  if (nnlib_tensor_create_int32(&t, shape, 2) != NNLIB_OK)
    return;
  int32_t *ids = nnlib_tensor_get_data_int32(t);
  for (int64_t r = 0; r < rows; r++)
    ids[r] = (int32_t)((r * 3 + 1) % classes);
  float loss = 0;
  nnlib_status st = nnlib_model_backward_inputs(
      m, (const nnlib_tensor *const *)xs, count, t, &loss);
  fuzz_expect(st);
  FUZZ_CHECK(st == NNLIB_OK || st == NNLIB_ERR_NUMERICAL);
  nnlib_tensor_free(t);
}

/* One step on fixed inputs (a backward pass where the file has no
 * optimizer): it trains or reports a numerical problem. Backward writes
 * layers' input gradients into buffers planned by liveness and sums
 * fan-out, which ASan checks here for whatever graph a file describes. */
static void check_step(nnlib_model *m) {
  if (nnlib_model_get_loss(m) == NNLIB_LOSS_NONE || !fuzz_cheap_enough(m, 3))
    return;
  int64_t shape[NNLIB_MAX_RANK + 1];
  size_t rank = 0, count = 0;
  nnlib_tensor **xs = NULL, *t = NULL;
  if (fuzz_make_inputs(m, 1, &xs, &count) != NNLIB_OK)
    return;
  FUZZ_CHECK(nnlib_model_get_output_shape(m, shape + 1, NNLIB_MAX_RANK,
                                          &rank) == NNLIB_OK);
  shape[0] = 1;
  if (nnlib_tensor_create(&t, shape, rank + 1) == NNLIB_OK) {
    const nnlib_tensor *const *in = (const nnlib_tensor *const *)xs;
    nnlib_status st = nnlib_model_get_optimizer(m) != NULL
                          ? nnlib_model_step_inputs(m, in, count, t, NULL)
                          : nnlib_model_backward_inputs(m, in, count, t, NULL);
    fuzz_expect(st);
    FUZZ_CHECK(st == NNLIB_OK || st == NNLIB_ERR_NUMERICAL);
    check_index_targets(m, xs, count);
    /* two epochs and two validation passes: about 8 single passes */
    if (nnlib_model_get_optimizer(m) != NULL && fuzz_cheap_enough(m, 8))
      check_fit_validated(m, xs, count, t);
  }
  fuzz_free_inputs(xs, count);
  nnlib_tensor_free(t);
}

/* A model over sequences [T, F] with T > 1 runs sequences of one step (two,
 * or one for a maximum batch of 1): predicted (and with a loss, a backward
 * pass) when its recurrent layers come first and end in "last" or make up
 * the model, else refused as a shape mismatch. */
static void check_short_sequences(nnlib_model *m) {
  int64_t in[NNLIB_MAX_RANK], shape[NNLIB_MAX_RANK + 1];
  size_t rank = 0, out_rank = 0;
  if (nnlib_model_get_input_count(m) != 1)
    return;
  FUZZ_CHECK(nnlib_model_get_input_shape(m, in, NNLIB_MAX_RANK, &rank) ==
             NNLIB_OK);
  if (rank != 2 || in[0] < 2 || !fuzz_cheap_enough(m, 2))
    return;
  int64_t n = nnlib_model_get_max_batch(m) > 1 ? 2 : 1;
  int64_t x_shape[3] = {n, 1, in[1]};
  FUZZ_CHECK(nnlib_model_get_output_shape(m, shape + 1, NNLIB_MAX_RANK,
                                          &out_rank) == NNLIB_OK);
  shape[0] = n;
  if (out_rank == 2 && shape[1] == in[0])
    shape[1] = 1; /* a sequence output [T', H] */
  nnlib_tensor *x = NULL, *y = NULL;
  if (nnlib_tensor_create(&x, x_shape, 3) == NNLIB_OK &&
      nnlib_tensor_create(&y, shape, out_rank + 1) == NNLIB_OK) {
    nnlib_status st = nnlib_model_predict(m, x, y);
    fuzz_expect(st);
    FUZZ_CHECK(st == NNLIB_OK || st == NNLIB_ERR_SHAPE_MISMATCH ||
               st == NNLIB_ERR_NUMERICAL);
    if (st == NNLIB_OK && nnlib_model_get_loss(m) != NNLIB_LOSS_NONE) {
      float loss;
      st = nnlib_model_backward(m, x, y, &loss); /* y as the target */
      fuzz_expect(st);
      FUZZ_CHECK(st == NNLIB_OK || st == NNLIB_ERR_NUMERICAL);
    }
  }
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_begin();
  const void *bytes = data;
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
  unsigned char *copy = malloc(size + 1);
  FUZZ_CHECK(copy != NULL);
  memcpy(copy, data, size);
  repair_checksums(copy, size);
  bytes = copy;
#endif
  { /* the header summary reads the same bytes */
    nnlib_model_file_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    fuzz_expect(nnlib_model_file_get_info(bytes, size, &info));
  }
  nnlib_model *m = (nnlib_model *)&size; /* must be overwritten */
  nnlib_status st = nnlib_model_load_buffer(&m, bytes, size);
  fuzz_expect(st);
  FUZZ_CHECK((st == NNLIB_OK) == (m != NULL));
  if (m != NULL) {
    nnlib_tensor *y = NULL;
    st = fuzz_predict(m, 1, &y);
    fuzz_expect(st);
    fuzz_check_bad_ids(m, 1);
    generated g = generate(m);
    check_spec(m);
    check_round_trip(m, y, &g);
    check_step(m);
    check_short_sequences(m);
    nnlib_tensor_free(y);
    nnlib_model_free(m);
  }
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
  free(copy);
#endif
  fuzz_end();
  return 0;
}
