/* nnlib's own ONNX export read back by nnlib's importer
 * (nnlib_model_save_onnx_to_buffer, then nnlib_model_load_onnx_buffer).
 *
 * Every layer kind, every activation and the example models (MLP, CNN,
 * residual CNN, LSTM, GRU, RNN, the character GPT of the transformer item)
 * are built with a fixed seed, their rank-1 parameters and batchnorm's
 * running statistics drawn away from their initial values, exported,
 * imported, and:
 *   - the imported model predicts what the original predicts on a random
 *     batch, within 1e-5 relative (|b - a| <= 1e-5 |a| + 1e-6);
 *   - its parameters and buffers, in layer order, are the original's bit
 *     for bit (a positional table exports only the T rows the model reads:
 *     those rows);
 *   - exporting it again gives the first export's bytes, and its
 *     description is the original's, except in the cases listed with the
 *     reason (an Identity that leaves no layer, node names, ...); there the
 *     second export is a fixed point: importing and exporting it again
 *     gives its bytes.
 * The test checks that the cases reach every layer kind the header lists.
 * nnlib's attention export made to break each check the attention
 * recogniser shares with torch's form (scale, mask, head count, split
 * sizes) is NNLIB_ERR_UNSUPPORTED naming the node; an allocation failure
 * at every allocation of the attention import is NNLIB_ERR_OUT_OF_MEMORY
 * with nothing leaked. */
#include "test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 3

typedef enum {
  SAME,       /* the same bytes again, the same description */
  SAME_BYTES, /* the same bytes again; the description differs */
  DIFFERENT   /* another export (a fixed point from then on) */
} outcome;

typedef struct reimport_case {
  const char *name;
  const char *spec;
  int32_t vocab; /* ids in [0, vocab) for int32 inputs */
  outcome outcome;
  const char *why; /* what differs and why, for SAME_BYTES and DIFFERENT */
} reimport_case;

static const reimport_case cases[] = {
    /* the MLP of the README and examples */
    {"mlp", "input:784,dense:256,relu,dense:128,relu,dense:10", 0, SAME, 0},
    /* every activation after a dense layer */
    {"act_identity", "input:6,dense:8,identity", 0, SAME, 0},
    {"identity_only", "input:2x3,identity", 0, SAME, 0},
    {"act_step", "input:6,dense:8,step", 0, SAME, 0},
    {"act_sigmoid", "input:6,dense:8,sigmoid", 0, SAME, 0},
    {"act_tanh", "input:6,dense:8,tanh", 0, SAME, 0},
    {"act_relu", "input:6,dense:8,relu", 0, SAME, 0},
    {"act_leaky_relu", "input:6,dense:8,leaky_relu:0.2", 0, SAME, 0},
    {"act_softplus", "input:6,dense:8,softplus", 0, SAME, 0},
    {"act_softmax", "input:6,dense:8,softmax", 0, SAME, 0},
    {"act_gelu", "input:6,dense:8,gelu", 0, SAME, 0},
    {"act_gelu_tanh", "input:6,dense:8,gelu_tanh", 0, SAME, 0},
    {"act_step_on_conv", "input:2x5x5,conv:3x3x3:p1,step", 0, SAME, 0},
    {"dense_rank3", "input:2x3x4,dense:5:nobias,sigmoid", 0, DIFFERENT,
     "dense flattens a [2, 3, 4] sample: Flatten + Gemm come back as a "
     "flatten and a dense layer"},
    /* the CNN of examples/fashion_cnn.c */
    {"fashion_cnn",
     "input:1x28x28,conv:32x3x3:p1:nobias,batchnorm,relu,maxpool:2,"
     "conv:64x3x3:p1:nobias,batchnorm,relu,maxpool:2,"
     "flatten,dense:256,relu,dropout:0.5,dense:10",
     0, SAME, 0},
    {"conv_geometry",
     "input:3x13x11,conv:4x3x2:s2x1:p1x0:d1x2,tanh,"
     "conv:5x3x3:p2:d2:nobias,relu,softmax",
     0, SAME, 0},
    {"maxpool_padded", "input:2x9x8,maxpool:3:s2:p1", 0, SAME, 0},
    {"minpool_padded", "input:2x9x8,minpool:3:s2:p1", 0, SAME, 0},
    {"minpool_plain", "input:2x8x8,minpool:2", 0, SAME, 0},
    {"avgpool_padded", "input:2x9x8,avgpool:3x2:s2x1:p1", 0, SAME, 0},
    {"global_avgpool", "input:3x5x4,conv:6x3x3,global_avgpool,batchnorm", 0,
     SAME, 0},
    {"batchnorm_features", "input:5,dense:6,batchnorm:0.1:0.001,relu", 0,
     SAME, 0},
    {"batchnorm_momentum", "input:2x3x3,batchnorm:0.03:0.01", 0, SAME, 0},
    {"flatten_dense", "input:2x3x4,flatten,dense:3", 0, SAME, 0},
    {"dropout_flatten", "input:2x3x4,dropout:0.3,flatten,dense:3", 0, SAME,
     0},
    {"dropout_only", "input:4,dropout:0.25", 0, SAME, 0},
    /* merges: a graph description names its nodes, and the import names
     * none (ONNX value names are not node names) */
    {"merges",
     "a=input:4,b=input:4,da=dense:6(a),db=dense:6(b),dc=dense:6(a),"
     "s=add(da,db,dc),p=multiply(da,db,dc),q=multiply(s,s),"
     "c=concat(s,p,q),dense:3",
     0, DIFFERENT,
     "node names do not come back, and a merge of three inputs exports as "
     "a chain of two Adds (two Muls): two add (multiply) layers"},
    {"concat_channels",
     "x=input:2x5x5,c1=conv:3x3x3:p1(x),c2=conv:4x1x1(x),c3=conv:3x1x1(x),"
     "k=concat(c1,c2),l=concat:-1(c1,c3),flatten(k),f=dense:4,"
     "flatten(l),g=dense:4,add(f,g)",
     0, DIFFERENT, "node names do not come back"},
    /* the residual CNN of examples/fashion_resnet.c, width 4 */
    {"fashion_resnet_w4",
     "image=input:1x28x28,conv:4x3x3:p1:nobias,batchnorm,stem=relu,"
     "conv:4x3x3:s1:p1:nobias(stem),batchnorm,relu,conv:4x3x3:p1:nobias,"
     "h1=batchnorm,add(h1,stem),out1=relu,"
     "conv:8x3x3:s2:p1:nobias(out1),batchnorm,relu,conv:8x3x3:p1:nobias,"
     "h2=batchnorm,conv:8x1x1:s2:nobias(out1),p2=batchnorm,add(h2,p2),"
     "out2=relu,"
     "conv:16x3x3:s2:p1:nobias(out2),batchnorm,relu,conv:16x3x3:p1:nobias,"
     "h3=batchnorm,conv:16x1x1:s2:nobias(out2),p3=batchnorm,add(h3,p3),"
     "out3=relu,global_avgpool,dropout:0.3,dense:10",
     0, DIFFERENT, "node names do not come back"},
    /* recurrent models: every step and the last one */
    {"lstm_classifier", "input:28x28,lstm:32,last,dense:10", 0, SAME, 0},
    {"rnn_tanh_seq", "input:5x3,rnn:4", 0, SAME, 0},
    {"rnn_relu_last", "input:5x3,rnn:4:relu:nobias,last", 0, SAME, 0},
    {"gru_seq_last", "input:6x4,gru:5,gru:3:nobias,last,dense:2", 0, SAME,
     0},
    {"lstm_nobias_seq", "input:4x3,lstm:5:nobias,lstm:2", 0, SAME, 0},
    {"gru_lbr0", "input:5x3,gru:4:lbr0,gru:2:nobias:lbr0,last", 0, SAME, 0},
    /* text layers; the character GPT of the transformer item */
    {"char_gpt",
     "input:8,embedding:256:16,positional,transformer:16:2:causal,"
     "transformer:16:2:causal,layernorm,linear:256",
     256, SAME, 0},
    {"transformer_plain", "input:6x8,transformer:8:4,transformer:8:1", 0,
     SAME, 0},
    {"text_plain",
     "input:6,embedding:20:8,positional,layernorm:0.001,"
     "attention:2:nobias,layernorm:noaffine,linear:5:nobias,gelu_tanh",
     20, SAME, 0},
    {"positional_longer", "input:6,embedding:20:8,positional:10,linear:3",
     20, SAME_BYTES,
     "the export holds the T = 6 rows the model reads: positional:10 comes "
     "back as positional (T rows)"},
    {"attention_bias", "input:5x8,attention:2", 0, SAME, 0},
    {"attention_causal", "input:5x8,attention:4:causal", 0, SAME, 0},
    /* transposes: channels last and back around a linear, and a rank-4
     * permutation */
    {"transpose_channels_last",
     "input:3x4x5,conv:4x3x3:p1,transpose:1x2x0,linear:3,transpose:2x0x1,"
     "flatten,dense:2",
     0, SAME, 0},
    {"transpose_rank4", "input:2x3x4x5,transpose:3x1x0x2", 0, SAME, 0},
    {"attention_nobias_causal", "input:5x8,attention:2:causal:nobias", 0,
     SAME, 0},
    {"attention_one_head", "input:3x4,attention:1:causal", 0, SAME, 0},
    {"attention_dropout", "input:5x8,attention:2:causal:dropout0.1", 0,
     SAME_BYTES,
     "dropout is training's: the export has none, the import has rate 0"},
    {"attention_after_linear", "input:5x6,linear:8:nobias,attention:2,relu",
     0, SAME, 0},
    {"char_lstm", "input:7,embedding:30:6,lstm:8,linear:30", 30, SAME, 0},
    {"linear_rank3", "input:2x3x4,linear:5,relu,linear:2:nobias", 0, SAME,
     0},
};
#define CASE_COUNT (sizeof cases / sizeof cases[0])

static uint32_t rng_state = 2024;

static nnlib_model *build(const char *spec) {
  nnlib_model *m;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, spec));
  ASSERT_OK(nnlib_model_compile_graph(m, BATCH, NNLIB_LOSS_NONE, NULL, 7));
  ts_randomise_state(m, &rng_state);
  return m;
}

static nnlib_model *import(const void *data, size_t size) {
  nnlib_onnx_options o;
  ASSERT_OK(nnlib_onnx_options_init(&o));
  o.max_batch = BATCH;
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_load_onnx_buffer(&m, data, size, &o));
  return m;
}

/* A random batch for each input: floats in [-1.5, 1.5), ids below vocab. */
static size_t make_inputs(nnlib_model *m, int32_t vocab, nnlib_tensor **x) {
  size_t count = nnlib_model_get_input_count(m);
  assert_true(count <= 4);
  for (size_t k = 0; k < count; k++) {
    int64_t shape[NNLIB_MAX_RANK + 1] = {BATCH};
    size_t rank;
    nnlib_dtype dtype;
    ASSERT_OK(nnlib_model_get_input_shape_at(m, k, shape + 1, NNLIB_MAX_RANK,
                                             &rank));
    ASSERT_OK(nnlib_model_get_input_dtype(m, k, &dtype));
    if (dtype == NNLIB_DTYPE_INT32) {
      ASSERT_OK(nnlib_tensor_create_int32(&x[k], shape, rank + 1));
      int32_t *ids = nnlib_tensor_get_data_int32(x[k]);
      for (int64_t i = 0; i < nnlib_tensor_get_size(x[k]); i++) {
        rng_state = rng_state * 1664525u + 1013904223u;
        ids[i] = (int32_t)((rng_state >> 8) % (uint32_t)vocab);
      }
    } else {
      ASSERT_OK(nnlib_tensor_create(&x[k], shape, rank + 1));
      ts_fill_uniform(nnlib_tensor_get_data(x[k]), nnlib_tensor_get_size(x[k]),
                      -1.5f, 1.5f, &rng_state);
    }
  }
  return count;
}

static nnlib_tensor *predict(nnlib_model *m, nnlib_tensor **x, size_t count) {
  int64_t shape[NNLIB_MAX_RANK + 1] = {BATCH};
  size_t rank;
  ASSERT_OK(nnlib_model_get_output_shape(m, shape + 1, NNLIB_MAX_RANK, &rank));
  nnlib_tensor *y;
  ASSERT_OK(nnlib_tensor_create(&y, shape, rank + 1));
  ASSERT_OK(nnlib_model_predict_inputs(m, (const nnlib_tensor *const *)x,
                                       count, y));
  return y;
}

static double worst_relative = 0.0;

/* |b - a| <= 1e-5 |a| + 1e-6 everywhere. */
static void outputs_agree(const reimport_case *c, nnlib_tensor *a,
                          nnlib_tensor *b) {
  assert_int_equal(nnlib_tensor_get_size(a), nnlib_tensor_get_size(b));
  const float *p = nnlib_tensor_get_data(a), *q = nnlib_tensor_get_data(b);
  for (int64_t i = 0; i < nnlib_tensor_get_size(a); i++) {
    double diff = fabs((double)q[i] - (double)p[i]);
    if (!(diff <= 1e-5 * fabs((double)p[i]) + 1e-6))
      fail_msg("%s: output %lld is %.9g after the round trip, %.9g before",
               c->name, (long long)i, (double)q[i], (double)p[i]);
    if (p[i] != 0.0f && diff / fabs((double)p[i]) > worst_relative)
      worst_relative = diff / fabs((double)p[i]);
  }
}

/* Tensor k of layer l: parameter (buffers false) or buffer. */
static nnlib_tensor *state_tensor(nnlib_layer *l, bool buffers, size_t k) {
  nnlib_tensor *t = NULL;
  if (buffers)
    ASSERT_OK(nnlib_layer_get_buffer(l, k, &t));
  else
    ASSERT_OK(nnlib_layer_get_param(l, k, &t, NULL));
  return t;
}

/* The parameters (or buffers) of all layers in layer order, as one list:
 * the imported model's are the original's bit for bit; of a positional
 * table, the first rows. */
static void state_agrees(const reimport_case *c, nnlib_model *a,
                         nnlib_model *b, bool buffers) {
  size_t la = 0, lb = 0, ka = 0, kb = 0;
  for (;;) {
    nnlib_layer *x = NULL, *y = NULL;
    for (; la < nnlib_model_get_layer_count(a); la++, ka = 0) {
      x = nnlib_model_get_layer(a, la);
      if (ka < (buffers ? nnlib_layer_get_buffer_count(x)
                        : nnlib_layer_get_param_tensor_count(x)))
        break;
      x = NULL;
    }
    for (; lb < nnlib_model_get_layer_count(b); lb++, kb = 0) {
      y = nnlib_model_get_layer(b, lb);
      if (kb < (buffers ? nnlib_layer_get_buffer_count(y)
                        : nnlib_layer_get_param_tensor_count(y)))
        break;
      y = NULL;
    }
    if (x == NULL || y == NULL) {
      if (x != y)
        fail_msg("%s: the imported model has %s %s", c->name,
                 x ? "fewer" : "more", buffers ? "buffers" : "parameters");
      return;
    }
    assert_int_equal(nnlib_layer_get_kind(x), nnlib_layer_get_kind(y));
    nnlib_tensor *s = state_tensor(x, buffers, ka++);
    nnlib_tensor *t = state_tensor(y, buffers, kb++);
    int64_t n = nnlib_tensor_get_size(t);
    if (n != nnlib_tensor_get_size(s) &&
        !(nnlib_layer_get_kind(x) == NNLIB_LAYER_POSITIONAL &&
          n < nnlib_tensor_get_size(s)))
      fail_msg("%s: layer %zu tensor %zu holds %lld values, the original's "
               "%lld",
               c->name, lb, kb - 1, (long long)n,
               (long long)nnlib_tensor_get_size(s));
    if (memcmp(nnlib_tensor_get_data(s), nnlib_tensor_get_data(t),
               (size_t)n * sizeof(float)) != 0)
      fail_msg("%s: layer %zu tensor %zu differs from the original's",
               c->name, lb, kb - 1);
  }
}

static char *spec_of(nnlib_model *m) {
  size_t needed = 0;
  ASSERT_OK(nnlib_model_get_spec(m, NULL, 0, &needed));
  char *text = malloc(needed + 1);
  assert_non_null(text);
  ASSERT_OK(nnlib_model_get_spec(m, text, needed + 1, NULL));
  return text;
}

static bool same_bytes(const void *a, size_t na, const void *b, size_t nb) {
  return na == nb && memcmp(a, b, na) == 0;
}

/* What the second export, of the imported model, must be. */
static void second_export(const reimport_case *c, nnlib_model *original,
                          nnlib_model *back, const void *first,
                          size_t first_size) {
  void *again;
  size_t again_size;
  ASSERT_OK(nnlib_model_save_onnx_to_buffer(&again, &again_size, back));
  bool same = same_bytes(first, first_size, again, again_size);
  if (c->outcome != DIFFERENT && !same)
    fail_msg("%s: the export of the import differs from the first (%zu and "
             "%zu bytes)",
             c->name, again_size, first_size);
  if (c->outcome == DIFFERENT) {
    if (same) /* fixed: make it SAME and drop the reason */
      fail_msg("%s: listed as coming back different (%s) but is the same",
               c->name, c->why);
    nnlib_model *third = import(again, again_size);
    void *last;
    size_t last_size;
    ASSERT_OK(nnlib_model_save_onnx_to_buffer(&last, &last_size, third));
    if (!same_bytes(again, again_size, last, last_size))
      fail_msg("%s: the second export is not a fixed point", c->name);
    nnlib_free(last);
    nnlib_model_free(third);
  }
  nnlib_free(again);
  char *a = spec_of(original), *b = spec_of(back);
  if (c->outcome == SAME && strcmp(a, b) != 0)
    fail_msg("%s: description\n  %s\ncame back as\n  %s", c->name, a, b);
  if (c->outcome != SAME && strcmp(a, b) == 0)
    fail_msg("%s: listed as another description (%s) but is the same",
             c->name, c->why);
  free(a);
  free(b);
}

static void mark_kinds(nnlib_model *m, bool *seen) {
  for (size_t i = 0; i < nnlib_model_get_layer_count(m); i++) {
    nnlib_layer_kind k = nnlib_layer_get_kind(nnlib_model_get_layer(m, i));
    assert_true(k >= 1 && k <= NNLIB_LAYER_TRANSPOSE);
    seen[k] = true;
  }
}

static void round_trip(const reimport_case *c, bool *seen) {
  nnlib_model *m = build(c->spec);
  mark_kinds(m, seen);
  void *data;
  size_t size;
  ASSERT_OK(nnlib_model_save_onnx_to_buffer(&data, &size, m));
  nnlib_model *back = import(data, size);
  nnlib_tensor *x[4] = {NULL};
  size_t count = make_inputs(m, c->vocab, x);
  nnlib_tensor *ya = predict(m, x, count), *yb = predict(back, x, count);
  outputs_agree(c, ya, yb);
  state_agrees(c, m, back, false);
  state_agrees(c, m, back, true);
  second_export(c, m, back, data, size);
  if (c->outcome != SAME)
    printf("%-24s %s\n", c->name, c->why);
  for (size_t k = 0; k < count; k++)
    nnlib_tensor_free(x[k]);
  nnlib_tensor_free(ya);
  nnlib_tensor_free(yb);
  nnlib_free(data);
  nnlib_model_free(back);
  nnlib_model_free(m);
}

static void test_every_kind_comes_back(void **state) {
  (void)state;
  bool seen[NNLIB_LAYER_TRANSPOSE + 1] = {false};
  for (size_t i = 0; i < CASE_COUNT; i++)
    round_trip(&cases[i], seen);
  for (int k = 1; k <= NNLIB_LAYER_TRANSPOSE; k++)
    if (!seen[k])
      fail_msg("no case has a layer of kind %d", k);
  /* every activation: the act_ cases name each one */
  static const char *const acts[] = {"identity", "step",       "sigmoid",
                                     "tanh",     "relu",       "leaky_relu",
                                     "softplus", "softmax",    "gelu",
                                     "gelu_tanh"};
  for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++) {
    char name[32];
    snprintf(name, sizeof name, "act_%s", acts[a]);
    bool found = false;
    for (size_t i = 0; i < CASE_COUNT && !found; i++)
      found = strcmp(cases[i].name, name) == 0;
    if (!found)
      fail_msg("no case %s", name);
  }
  printf("%zu models round-tripped; largest relative output difference "
         "%.3g\n",
         CASE_COUNT, worst_relative);
}

/* ------------------------------------------------ broken attention */

/* The raw_data of initializer `name` in an nnlib export: the TensorProto's
 * name (field 8) is followed by raw_data (field 9), exactly once. */
static unsigned char *raw_data(unsigned char *data, size_t size,
                               const char *name, size_t *bytes) {
  size_t n = strlen(name);
  unsigned char *found = NULL;
  for (size_t i = 0; i + n + 3 < size; i++) {
    if (data[i] != 0x42 || data[i + 1] != n ||
        memcmp(data + i + 2, name, n) != 0 || data[i + 2 + n] != 0x4a)
      continue;
    assert_null(found); /* once */
    found = data + i + 3 + n;
  }
  assert_non_null(found);
  int shift = 0; /* the length, a varint */
  for (*bytes = 0; *found & 0x80; shift += 7)
    *bytes |= (size_t)(*found++ & 0x7f) << shift;
  *bytes |= (size_t)*found << shift;
  return found + 1;
}

static void put_f32(unsigned char *p, float v) {
  uint32_t u;
  memcpy(&u, &v, 4);
  for (int k = 0; k < 4; k++)
    p[k] = (unsigned char)(u >> (8 * k));
}

static void put_i64(unsigned char *p, int64_t v) {
  for (int k = 0; k < 8; k++)
    p[k] = (unsigned char)((uint64_t)v >> (8 * k));
}

static void expect_refused(const void *data, size_t size, const char *node,
                           const char *why) {
  nnlib_model *m = (nnlib_model *)&m;
  ASSERT_STATUS(NNLIB_ERR_UNSUPPORTED,
                nnlib_model_load_onnx_buffer(&m, data, size, NULL));
  assert_null(m);
  ts_expect_message(node);
  ts_expect_message(why);
}

/* "input:5x8,attention:2:causal" exported (D 8, H 2, hd 4, T 5), then one
 * constant changed: each shared check refuses naming its node. */
static void test_broken_attention_export(void **state) {
  (void)state;
  nnlib_model *m = build("input:5x8,attention:2:causal");
  unsigned char *data;
  size_t size, n;
  ASSERT_OK(nnlib_model_save_onnx_to_buffer((void **)&data, &size, m));
  unsigned char *copy = malloc(size);
  assert_non_null(copy);

  memcpy(copy, data, size); /* scores times 1/3 instead of 1/sqrt(4) */
  unsigned char *p = raw_data(copy, size, "attention.1/scale", &n);
  assert_int_equal(n, 4);
  put_f32(p, 1.0f / 3.0f);
  expect_refused(copy, size, "'attention.1/weights' (Softmax)",
                 "not scaled by 1/sqrt(head size)");

  memcpy(copy, data, size); /* position 1 unmasked for query 0 */
  p = raw_data(copy, size, "attention.1/causal_mask", &n);
  assert_int_equal(n, 4 * 25);
  put_f32(p + 4, 0.0f);
  expect_refused(copy, size, "'attention.1/masked_scores' (Add)",
                 "masks some positions above the diagonal but not all");

  memcpy(copy, data, size); /* heads [0, 0, 2, 3]: 2 x 3 is not 8 */
  p = raw_data(copy, size, "attention.1/head_shape", &n);
  assert_int_equal(n, 32);
  put_i64(p + 24, 3);
  expect_refused(copy, size, "(Reshape)",
                 "q, k and v are reshaped into [N, T, H, D/H]");

  memcpy(copy, data, size); /* heads [0, 0, 4, 2]: hd 2, scale 1/sqrt 4 */
  p = raw_data(copy, size, "attention.1/head_shape", &n);
  put_i64(p + 16, 4);
  put_i64(p + 24, 2);
  expect_refused(copy, size, "'attention.1/weights' (Softmax)",
                 "not scaled by 1/sqrt(head size)");

  memcpy(copy, data, size); /* Split into 8, 4, 12 */
  p = raw_data(copy, size, "attention.1/split_sizes", &n);
  assert_int_equal(n, 24);
  put_i64(p + 8, 4);
  put_i64(p + 16, 12);
  expect_refused(copy, size, "'attention.1/q' (Split)",
                 "split, into q, k and v of D values each");

  free(copy);
  nnlib_free(data);
  nnlib_model_free(m);
}

/* OOM at every allocation of the import of nnlib's char GPT export (the
 * attention recogniser's, the GELU's among them): OUT_OF_MEMORY, *out
 * NULL, nothing leaked. */
static void test_out_of_memory(void **state) {
  (void)state;
  nnlib_model *m = build("input:4,embedding:16:8,positional,"
                         "transformer:8:2:causal,layernorm,linear:16");
  void *data;
  size_t size;
  ASSERT_OK(nnlib_model_save_onnx_to_buffer(&data, &size, m));
  ts_alloc_stats stats = {0};
  ts_alloc_install(&stats);
  nnlib_model *back = import(data, size);
  nnlib_model_free(back);
  long total = stats.allocs;
  ts_alloc_uninstall();
  assert_true(total > 20);
  for (long k = 1; k <= total; k++) {
    ts_alloc_stats s = {0};
    s.fail_at = k;
    ts_alloc_install(&s);
    back = (nnlib_model *)&back;
    nnlib_status st = nnlib_model_load_onnx_buffer(&back, data, size, NULL);
    long live = s.live;
    ts_alloc_uninstall();
    if (st != NNLIB_ERR_OUT_OF_MEMORY || back != NULL || live != 0)
      fail_msg("allocation %ld of %ld failed: %s (%s), %ld blocks live", k,
               total, nnlib_status_string(st), nnlib_last_error_message(),
               live);
  }
  printf("char GPT import: %ld allocations, each failing: OUT_OF_MEMORY, no "
         "leak\n",
         total);
  nnlib_free(data);
  nnlib_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_kind_comes_back),
      cmocka_unit_test(test_broken_attention_export),
      cmocka_unit_test(test_out_of_memory),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
