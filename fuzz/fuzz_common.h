/* fuzz_common.h - what the fuzz targets share: a capped allocator, invariant
 * checks that crash loudly, and small helpers over the public API.
 *
 * Each target is one fuzz/fuzz_<name>.c defining LLVMFuzzerTestOneInput. It
 * is linked with libFuzzer in the fuzz build (fuzz/CMakeLists.txt, clang,
 * ASan+UBSan, FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION) and with
 * fuzz/replay.c in every normal build, where ctest replays the committed
 * corpus and regressions through it (tests/reliability.cmake). */
#ifndef NNLIB_FUZZ_COMMON_H
#define NNLIB_FUZZ_COMMON_H

#include <nnlib.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A violated invariant is a finding: say which, then crash so that libFuzzer
 * (or ctest) records the input. */
#define FUZZ_CHECK(cond)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: invariant failed: %s (last error: %s)\n",       \
              __FILE__, __LINE__, #cond, nnlib_last_error_message());          \
      abort();                                                                 \
    }                                                                          \
  } while (0)

/* Largest single allocation the harness lets nnlib make, and the most it
 * may hold at once. A hostile file may ask for a huge (valid) maximum
 * batch; the loader must then return NNLIB_ERR_OUT_OF_MEMORY, which is what
 * programs that load untrusted files get with such an allocator
 * (docs/FILE_FORMAT.md). Also keeps libFuzzer's -malloc_limit_mb quiet. */
#ifndef FUZZ_MAX_ALLOC /* a target may set a smaller one first */
#define FUZZ_MAX_ALLOC ((size_t)64 << 20)
#endif
#define FUZZ_MAX_LIVE ((size_t)256 << 20)

static size_t fuzz_live_bytes;

/* The block's size sits in the 64 bytes before the pointer returned. */
static inline void *fuzz_alloc(size_t size, size_t alignment, void *user) {
  (void)user;
  if (alignment > 64 || size > FUZZ_MAX_ALLOC ||
      fuzz_live_bytes + size > FUZZ_MAX_LIVE)
    return NULL;
  size_t total = (size + 64 + 63) / 64 * 64;
  unsigned char *p = aligned_alloc(64, total);
  if (p == NULL)
    return NULL;
  memcpy(p, &size, sizeof size);
  fuzz_live_bytes += size;
  return p + 64;
}

static inline void fuzz_free(void *ptr, void *user) {
  (void)user;
  if (ptr == NULL)
    return;
  unsigned char *p = (unsigned char *)ptr - 64;
  size_t size;
  memcpy(&size, p, sizeof size);
  fuzz_live_bytes -= size;
  free(p);
}

/* Installs the capped allocator once; every input must leave nothing live
 * (checked with fuzz_end). */
static inline void fuzz_begin(void) {
  static bool installed;
  if (!installed) {
    nnlib_allocator a = {sizeof a, fuzz_alloc, fuzz_free, NULL};
    FUZZ_CHECK(nnlib_set_allocator(&a) == NNLIB_OK);
    installed = true;
  }
  FUZZ_CHECK(fuzz_live_bytes == 0);
}

static inline void fuzz_end(void) { FUZZ_CHECK(fuzz_live_bytes == 0); }

/* Statuses a call on untrusted data may return; anything else (notably
 * NNLIB_ERR_INTERNAL or NNLIB_ERR_INVALID_ARGUMENT for arguments the
 * harness got right) is a finding. */
static inline bool fuzz_status_ok(nnlib_status st) {
  switch (st) {
  case NNLIB_OK:
  case NNLIB_ERR_OUT_OF_MEMORY:
  case NNLIB_ERR_SHAPE_MISMATCH:
  case NNLIB_ERR_UNSUPPORTED:
  case NNLIB_ERR_TOO_LARGE:
  case NNLIB_ERR_IO:
  case NNLIB_ERR_CORRUPT_FILE:
  case NNLIB_ERR_UNSUPPORTED_VERSION:
  case NNLIB_ERR_NUMERICAL:
  case NNLIB_ERR_BAD_MAGIC:
  case NNLIB_ERR_CHECKSUM:
  case NNLIB_ERR_TRUNCATED:
  case NNLIB_ERR_OUT_OF_RANGE:
  case NNLIB_ERR_PARSE:
  case NNLIB_ERR_DTYPE: /* e.g. an embedding reading a layer's output */
    return true;
  default:
    return false;
  }
}

/* Every failure comes with a message. */
static inline void fuzz_expect(nnlib_status st) {
  FUZZ_CHECK(fuzz_status_ok(st));
  if (st != NNLIB_OK)
    FUZZ_CHECK(nnlib_last_error_message()[0] != '\0');
}

/* Most multiply-adds a pass of n samples may take before the harness
 * skips running it. Memory is capped by the allocator, work is not: a
 * 600-byte model file may hold a 10000-wide pooling window that a valid
 * input takes minutes to slide, which is the file's request, not a bug. */
#define FUZZ_MAX_WORK ((int64_t)1 << 27)

/* Per-sample floats of node v's output (0 if it cannot be read). */
static inline int64_t fuzz_node_size(nnlib_model *m, size_t v) {
  nnlib_node_info info;
  int64_t dims[NNLIB_MAX_RANK], size = 1;
  size_t rank = 0;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  if (nnlib_model_get_node(m, v, &info) != NNLIB_OK)
    return 0;
  nnlib_status st =
      info.layer != NULL
          ? nnlib_layer_get_output_shape(info.layer, dims, NNLIB_MAX_RANK,
                                         &rank)
          : nnlib_model_get_input_shape_at(m, (size_t)info.input_index, dims,
                                           NNLIB_MAX_RANK, &rank);
  if (st != NNLIB_OK)
    return 0;
  for (size_t i = 0; i < rank; i++)
    size *= dims[i]; /* each <= 2^31, the product checked at compile */
  return size;
}

/* Whether a pass over n samples stays under FUZZ_MAX_WORK, bounding each
 * layer's work by (its inputs' sizes) x (output size) per sample: a dense
 * layer's exactly, and an upper bound for a pooling window, a recurrent
 * step or a merge (they read at most their whole inputs per output).
 * Convolutions read at most their im2col workspace, which the allocator
 * caps. Works on graphs: each layer node counts the nodes it reads. */
static inline bool fuzz_cheap_enough(nnlib_model *m, int64_t n) {
  size_t count = nnlib_model_get_node_count(m);
  int64_t *sizes = malloc((count + 1) * sizeof *sizes), work = 0;
  bool cheap = sizes != NULL;
  for (size_t v = 0; cheap && v < count; v++) {
    nnlib_node_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    sizes[v] = fuzz_node_size(m, v);
    cheap = sizes[v] > 0 && nnlib_model_get_node(m, v, &info) == NNLIB_OK;
    int64_t in = 0, node_work;
    for (size_t k = 0; cheap && info.layer != NULL && k < info.input_count;
         k++) {
      size_t from = (size_t)(info.inputs[k] & 0xffffffffu); /* node index */
      cheap = from < v && !__builtin_add_overflow(in, sizes[from], &in);
    }
    cheap = cheap && !__builtin_mul_overflow(in, sizes[v], &node_work) &&
            !__builtin_mul_overflow(node_work, n, &node_work) &&
            !__builtin_add_overflow(work, node_work, &work) &&
            work <= FUZZ_MAX_WORK;
  }
  free(sizes);
  return cheap;
}

/* The vocabulary that model input k's token ids must fit: the smallest of
 * the embeddings that read it (rows of their weight [vocab, dim]), or 0
 * when no embedding reads it and the input takes float32 tensors. Compile
 * (mark_id_inputs) makes exactly the inputs an embedding reads int32 and
 * lets nothing else read them, so the public graph getters tell. */
static inline int64_t fuzz_input_vocab(nnlib_model *m, size_t k) {
  int64_t vocab = 0;
  for (size_t v = 0; v < nnlib_model_get_node_count(m); v++) {
    nnlib_node_info info, from;
    memset(&info, 0, sizeof info);
    memset(&from, 0, sizeof from);
    info.struct_size = from.struct_size = sizeof info;
    if (nnlib_model_get_node(m, v, &info) != NNLIB_OK || info.layer == NULL ||
        nnlib_layer_get_kind(info.layer) != NNLIB_LAYER_EMBEDDING ||
        info.input_count != 1)
      continue;
    size_t u = (size_t)(info.inputs[0] & 0xffffffffu); /* node index */
    nnlib_tensor *w = NULL;
    FUZZ_CHECK(nnlib_model_get_node(m, u, &from) == NNLIB_OK);
    if (from.layer != NULL || from.input_index != (int64_t)k)
      continue;
    FUZZ_CHECK(nnlib_layer_get_param(info.layer, 0, &w, NULL) == NNLIB_OK);
    FUZZ_CHECK(nnlib_tensor_get_rank(w) == 2);
    int64_t rows = nnlib_tensor_get_dim(w, 0);
    FUZZ_CHECK(rows >= 1);
    vocab = vocab == 0 || rows < vocab ? rows : vocab;
  }
  return vocab;
}

/* One tensor per model input, [n, input k's shape], into *xs, a malloc'd
 * array of *count (the model's input count; free with fuzz_free_inputs):
 * int32 token ids in range for an input an embedding reads
 * (fuzz_input_vocab), else float32 from a fixed pattern with both signs.
 * Returns the status of the tensors' creation (*xs NULL when one
 * failed). */
static inline nnlib_status fuzz_make_inputs(nnlib_model *m, int64_t n,
                                            nnlib_tensor ***xs,
                                            size_t *count) {
  *count = nnlib_model_get_input_count(m);
  FUZZ_CHECK(*count >= 1);
  nnlib_tensor **made = calloc(*count, sizeof *made);
  FUZZ_CHECK(made != NULL);
  *xs = NULL;
  for (size_t k = 0; k < *count; k++) {
    int64_t shape[NNLIB_MAX_RANK + 1];
    size_t rank = 0;
    nnlib_status st = nnlib_model_get_input_shape_at(m, k, shape + 1,
                                                     NNLIB_MAX_RANK, &rank);
    FUZZ_CHECK(st == NNLIB_OK && rank >= 1 && rank < NNLIB_MAX_RANK);
    shape[0] = n;
    int64_t vocab = fuzz_input_vocab(m, k);
    st = vocab > 0 ? nnlib_tensor_create_int32(&made[k], shape, rank + 1)
                   : nnlib_tensor_create(&made[k], shape, rank + 1);
    if (st != NNLIB_OK) {
      for (size_t j = 0; j < k; j++)
        nnlib_tensor_free(made[j]);
      free(made);
      return st;
    }
    int64_t size = nnlib_tensor_get_size(made[k]);
    if (vocab > 0) {
      int32_t *ids = nnlib_tensor_get_data_int32(made[k]);
      for (int64_t i = 0; i < size; i++)
        ids[i] = (int32_t)((i * 7 + (int64_t)k) % vocab);
    } else {
      float *xd = nnlib_tensor_get_data(made[k]);
      for (int64_t i = 0; i < size; i++)
        xd[i] = (float)((i * 7 + (int64_t)k) % 11) / 5.0f - 1.0f;
    }
  }
  *xs = made;
  return NNLIB_OK;
}

static inline void fuzz_free_inputs(nnlib_tensor **xs, size_t count) {
  for (size_t k = 0; xs != NULL && k < count; k++)
    nnlib_tensor_free(xs[k]);
  free(xs);
}

/* Inference on one batch of `n` samples of a compiled model, one tensor
 * per input (fuzz_make_inputs). *out (may be NULL) receives the outputs,
 * to be freed with nnlib_tensor_free, or NULL when the pass was skipped as
 * too much work (fuzz_cheap_enough). Returns the status of predict (or of
 * an allocation before it). */
static inline nnlib_status fuzz_predict(nnlib_model *m, int64_t n,
                                        nnlib_tensor **out) {
  int64_t shape[NNLIB_MAX_RANK + 1];
  size_t rank = 0, count = 0;
  nnlib_tensor *y = NULL;
  if (out != NULL)
    *out = NULL;
  if (!fuzz_cheap_enough(m, n))
    return NNLIB_OK;
  nnlib_tensor **xs = NULL;
  nnlib_status st = fuzz_make_inputs(m, n, &xs, &count);
  if (st != NNLIB_OK)
    return st;
  st = nnlib_model_get_output_shape(m, shape + 1, NNLIB_MAX_RANK, &rank);
  FUZZ_CHECK(st == NNLIB_OK && rank >= 1 && rank < NNLIB_MAX_RANK);
  shape[0] = n;
  if ((st = nnlib_tensor_create(&y, shape, rank + 1)) == NNLIB_OK)
    st = nnlib_model_predict_inputs(m, (const nnlib_tensor *const *)xs, count,
                                    y);
  fuzz_free_inputs(xs, count);
  if (st == NNLIB_OK && out != NULL)
    *out = y;
  else
    nnlib_tensor_free(y);
  return st;
}

/* A token id outside an embedding's vocabulary (its size, then -1) in the
 * last position of the last sample of each id input fails prediction with
 * NNLIB_ERR_OUT_OF_RANGE, never a read outside the weight. */
static inline void fuzz_check_bad_ids(nnlib_model *m, int64_t n) {
  size_t count = nnlib_model_get_input_count(m);
  int64_t shape[NNLIB_MAX_RANK + 1];
  size_t rank = 0;
  if (!fuzz_cheap_enough(m, n) ||
      nnlib_model_get_output_shape(m, shape + 1, NNLIB_MAX_RANK, &rank) !=
          NNLIB_OK)
    return;
  shape[0] = n;
  for (size_t k = 0; k < count; k++) {
    int64_t vocab = fuzz_input_vocab(m, k);
    for (int bad = 0; vocab > 0 && bad < 2; bad++) {
      nnlib_tensor **xs = NULL, *y = NULL;
      size_t made = 0;
      if (fuzz_make_inputs(m, n, &xs, &made) != NNLIB_OK)
        return;
      int32_t *ids = nnlib_tensor_get_data_int32(xs[k]);
      FUZZ_CHECK(ids != NULL);
      ids[nnlib_tensor_get_size(xs[k]) - 1] =
          bad == 0 ? (int32_t)(vocab > INT32_MAX ? INT32_MAX : vocab) : -1;
      nnlib_status st = nnlib_tensor_create(&y, shape, rank + 1);
      if (st == NNLIB_OK) {
        st = nnlib_model_predict_inputs(m, (const nnlib_tensor *const *)xs,
                                        made, y);
        fuzz_expect(st);
        FUZZ_CHECK(st == NNLIB_ERR_OUT_OF_RANGE);
      }
      nnlib_tensor_free(y);
      fuzz_free_inputs(xs, made);
    }
  }
}

/* Most tokens fuzz_generate asks for. */
#define FUZZ_GENERATE_MAX 8

/* nnlib_model_generate on any compiled model: a prompt of up to three ids
 * (in range of input 0's embeddings, or 0 for a model without one), then
 * `count` (<= FUZZ_GENERATE_MAX) tokens into out, with or without the
 * cache, top-k 0 or 3. A model that is not a language model (one int32
 * input [T], logits [T, V]) is refused as unsupported, and so is one with
 * a layer that cannot decode; an output vocabulary larger than the
 * embedding's may sample an id the embedding refuses (out of range).
 * What succeeds gives tokens in [0, V) and gives them again for the same
 * seed. NNLIB_ERR_UNSUPPORTED without a call when the passes would be too
 * much work. */
static inline nnlib_status fuzz_generate(nnlib_model *m, int use_cache,
                                         uint64_t seed, int32_t *out,
                                         int64_t count) {
  FUZZ_CHECK(count >= 0 && count <= FUZZ_GENERATE_MAX);
  if (!fuzz_cheap_enough(m, 2 * (count + 1)))
    return NNLIB_ERR_UNSUPPORTED;
  int64_t in[NNLIB_MAX_RANK], vocab = fuzz_input_vocab(m, 0), context = 1;
  int64_t y[NNLIB_MAX_RANK], outputs = 0;
  size_t rank = 0, out_rank = 0;
  if (nnlib_model_get_input_shape_at(m, 0, in, NNLIB_MAX_RANK, &rank) ==
          NNLIB_OK &&
      rank == 1)
    context = in[0];
  if (nnlib_model_get_output_shape(m, y, NNLIB_MAX_RANK, &out_rank) ==
          NNLIB_OK &&
      out_rank >= 1)
    outputs = y[out_rank - 1];
  int32_t prompt[3], again[FUZZ_GENERATE_MAX];
  int64_t length = context < 3 ? context : 3;
  for (int64_t i = 0; i < length; i++)
    prompt[i] = vocab > 0 ? (int32_t)((i * 5 + 1) % vocab) : 0;
  nnlib_generate_options o;
  FUZZ_CHECK(nnlib_generate_options_init(&o) == NNLIB_OK);
  o.use_cache = use_cache;
  o.seed = seed;
  o.top_k = seed & 1 ? 3 : 0;
  o.temperature = seed & 2 ? 0.5f : 1.0f;
  nnlib_status st = nnlib_model_generate(m, prompt, length, count, &o, out);
  fuzz_expect(st);
  FUZZ_CHECK(st == NNLIB_OK || st == NNLIB_ERR_UNSUPPORTED ||
             st == NNLIB_ERR_OUT_OF_RANGE || st == NNLIB_ERR_NUMERICAL ||
             st == NNLIB_ERR_OUT_OF_MEMORY);
  FUZZ_CHECK(st != NNLIB_ERR_OUT_OF_RANGE || outputs > vocab);
  if (st != NNLIB_OK)
    return st;
  FUZZ_CHECK(vocab > 0 && outputs > 0);
  for (int64_t i = 0; i < count; i++)
    FUZZ_CHECK(out[i] >= 0 && out[i] < outputs);
  nnlib_status st2 = nnlib_model_generate(m, prompt, length, count, &o, again);
  FUZZ_CHECK(st2 == NNLIB_OK || st2 == NNLIB_ERR_OUT_OF_MEMORY);
  if (st2 == NNLIB_OK)
    FUZZ_CHECK(memcmp(out, again, (size_t)count * sizeof *out) == 0);
  return st;
}

/* Two tensors hold the same bits (NaN payloads included). */
static inline bool fuzz_same_bits(const nnlib_tensor *a,
                                  const nnlib_tensor *b) {
  return nnlib_tensor_get_size(a) == nnlib_tensor_get_size(b) &&
         memcmp(nnlib_tensor_get_data_const(a), nnlib_tensor_get_data_const(b),
                (size_t)nnlib_tensor_get_size(a) * sizeof(float)) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
