/* make_corpus.c - writes the committed seed corpora of the fuzz targets:
 * small valid inputs that reach deep into each parser from the first run.
 *
 *   make_corpus <dir>    writes <dir>/{idx,model_load,model_roundtrip,spec,text}/
 *
 * Run through fuzz/make_corpus.sh; the output is committed under
 * fuzz/corpus/. Deterministic: the same library gives the same files. */
#define _POSIX_C_SOURCE 200809L
#include <nnlib.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

static const char *root;

static void die(const char *what) {
  fprintf(stderr, "make_corpus: %s: %s\n", what, nnlib_last_error_message());
  exit(1);
}

static void ok(nnlib_status st, const char *what) {
  if (st != NNLIB_OK)
    die(what);
}

static void write_seed(const char *target, const char *name, const void *data,
                       size_t size) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", root, target);
  if (mkdir(path, 0777) != 0 && errno != EEXIST)
    die(path);
  snprintf(path, sizeof path, "%s/%s/%s", root, target, name);
  FILE *f = fopen(path, "wb");
  if (f == NULL || fwrite(data, 1, size, f) != size || fclose(f) != 0)
    die(path);
}

/* ------------------------------------------------------------------ idx */

static size_t be32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
  return 4;
}

/* An IDX file of unsigned bytes: magic, dims, then values i * step. */
static size_t idx_file(unsigned char *out, const uint32_t *dims, int rank,
                       unsigned step) {
  size_t n = 0, count = 1;
  out[n++] = 0;
  out[n++] = 0;
  out[n++] = 0x08;
  out[n++] = (unsigned char)rank;
  for (int i = 0; i < rank; i++) {
    n += be32(out + n, dims[i]);
    count *= dims[i];
  }
  for (size_t i = 0; i < count; i++)
    out[n++] = (unsigned char)(i * step);
  return n;
}

static size_t gzip(unsigned char *out, size_t cap, const unsigned char *in,
                   size_t size) {
  z_stream z;
  memset(&z, 0, sizeof z);
  if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    die("deflateInit2");
  z.next_in = (Bytef *)(uintptr_t)in;
  z.avail_in = (uInt)size;
  z.next_out = out;
  z.avail_out = (uInt)cap;
  if (deflate(&z, Z_FINISH) != Z_STREAM_END)
    die("deflate");
  size_t n = z.total_out;
  deflateEnd(&z);
  return n;
}

/* The idx target reads one mode byte first (see fuzz_idx.c). */
static void idx_seed(const char *name, unsigned mode, const unsigned char *file,
                     size_t size) {
  unsigned char buf[1024];
  buf[0] = (unsigned char)mode;
  memcpy(buf + 1, file, size);
  write_seed("idx", name, buf, size + 1);
}

static void idx_seeds(void) {
  unsigned char file[512], zipped[600];
  const uint32_t images[3] = {2, 3, 4}, labels[1] = {6}, one[3] = {1, 1, 1};
  size_t n = idx_file(file, images, 3, 37);
  idx_seed("images", 0, file, n);
  idx_seed("images-gzip-by-harness", 1, file, n);
  idx_seed("images-limit-1", 2, file, n);
  idx_seed("images-gzip-stream", 0, zipped, gzip(zipped, sizeof zipped, file, n));
  n = idx_file(file, one, 3, 1);
  idx_seed("images-1x1x1", 0, file, n);
  n = idx_file(file, labels, 1, 1);
  idx_seed("labels", 0, file, n);
  idx_seed("labels-gzip-by-harness-limit-3", 1 | 4, file, n);
  idx_seed("labels-gzip-stream", 0, zipped, gzip(zipped, sizeof zipped, file, n));
  n = idx_file(file, labels, 1, 41);
  idx_seed("labels-256-classes", 8, file, n);
}

/* ---------------------------------------------------------- model files */

static nnlib_layer *dense(int64_t in, int64_t out, int bias) {
  nnlib_layer *l = NULL;
  ok(nnlib_dense_create(&l, in, out, bias), "dense");
  return l;
}

static nnlib_layer *act(nnlib_activation kind, float param) {
  nnlib_layer *l = NULL;
  ok(nnlib_activation_create(&l, kind, param), "activation");
  return l;
}

static nnlib_optimizer *optimizer(nnlib_optimizer_kind kind, float momentum,
                                  nnlib_schedule schedule, float clip) {
  nnlib_optimizer_options o;
  ok(nnlib_optimizer_options_init(&o, kind), "options");
  o.momentum = kind == NNLIB_OPT_SGD || kind == NNLIB_OPT_RMSPROP ? momentum : 0;
  o.schedule = schedule;
  o.step_size = 2;
  o.total_steps = 5;
  o.clip_norm = clip;
  nnlib_optimizer *opt = NULL;
  ok(nnlib_optimizer_create(&opt, &o), "optimizer");
  return opt;
}

/* Compiles layers[0..count) for an input of `rank` dims, trains `steps`
 * steps, and writes the saved file. */
static void model_seed(const char *name, const int64_t *input, size_t rank,
                       nnlib_layer **layers, size_t count, nnlib_loss loss,
                       nnlib_optimizer *opt, int steps, unsigned flags) {
  nnlib_model *m = NULL;
  ok(nnlib_model_create(&m), "model");
  for (size_t i = 0; i < count; i++)
    ok(nnlib_model_add(m, layers[i]), "add");
  ok(nnlib_model_compile(m, input, rank, 3, loss, opt, 42), name);
  int64_t shape[NNLIB_MAX_RANK + 1], out[NNLIB_MAX_RANK];
  size_t out_rank = 0;
  shape[0] = 3;
  memcpy(shape + 1, input, rank * sizeof *input);
  ok(nnlib_model_get_output_shape(m, out, NNLIB_MAX_RANK, &out_rank), "shape");
  int64_t tshape[2] = {3, out[0]};
  nnlib_tensor *x = NULL, *t = NULL;
  ok(nnlib_tensor_create(&x, shape, rank + 1), "x");
  ok(nnlib_tensor_create(&t, tshape, 2), "t");
  float *xd = nnlib_tensor_get_data(x), *td = nnlib_tensor_get_data(t);
  for (int64_t i = 0; i < nnlib_tensor_get_size(x); i++)
    xd[i] = (float)(i % 5) / 2.0f - 1.0f;
  for (int64_t r = 0; r < 3; r++)
    td[r * out[0] + r % out[0]] = 1.0f;
  for (int s = 0; s < steps; s++)
    ok(nnlib_model_step(m, x, t, NULL), "step");
  void *data = NULL;
  size_t size = 0;
  ok(nnlib_model_save_to_buffer(&data, &size, m, flags), "save");
  write_seed("model_load", name, data, size);
  nnlib_free(data);
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
  nnlib_model_free(m);
}

/* The same from a model description (layer kinds without a constructor
 * call here). */
static void spec_model_seed(const char *name, const char *spec,
                            const int64_t *input, size_t rank, nnlib_loss loss,
                            nnlib_optimizer *opt, int steps, unsigned flags) {
  nnlib_model *m = NULL;
  ok(nnlib_model_create(&m), "model");
  ok(nnlib_model_add_spec(m, spec), spec);
  int64_t shape[NNLIB_MAX_RANK + 1], out[NNLIB_MAX_RANK];
  size_t out_rank = 0;
  ok(nnlib_model_compile(m, input, rank, 3, loss, opt, 42), name);
  shape[0] = 3;
  memcpy(shape + 1, input, rank * sizeof *input);
  ok(nnlib_model_get_output_shape(m, out + 1, NNLIB_MAX_RANK - 1, &out_rank),
     "shape");
  out[0] = 3;
  nnlib_tensor *x = NULL, *t = NULL;
  ok(nnlib_tensor_create(&x, shape, rank + 1), "x");
  ok(nnlib_tensor_create(&t, out, out_rank + 1), "t");
  float *xd = nnlib_tensor_get_data(x), *td = nnlib_tensor_get_data(t);
  for (int64_t i = 0; i < nnlib_tensor_get_size(x); i++)
    xd[i] = (float)(i % 5) / 2.0f - 1.0f;
  int64_t per = nnlib_tensor_get_size(t) / 3;
  for (int64_t r = 0; r < 3; r++)
    td[r * per + r % per] = 1.0f;
  for (int s = 0; s < steps; s++)
    ok(nnlib_model_step(m, x, t, NULL), "step");
  void *data = NULL;
  size_t size = 0;
  ok(nnlib_model_save_to_buffer(&data, &size, m, flags), "save");
  write_seed("model_load", name, data, size);
  nnlib_free(data);
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
  nnlib_model_free(m);
}

/* ------------------------------------------------ graph model files */

/* Trains `steps` steps of a compiled graph model on fixed inputs (one
 * tensor per input) and writes the saved file: version 2. */
static void graph_seed(const char *name, nnlib_model *m, int steps,
                       unsigned flags) {
  size_t count = nnlib_model_get_input_count(m);
  nnlib_tensor *xs[4] = {NULL}, *t = NULL;
  int64_t shape[NNLIB_MAX_RANK + 1];
  size_t rank = 0;
  for (size_t k = 0; k < count; k++) {
    ok(nnlib_model_get_input_shape_at(m, k, shape + 1, NNLIB_MAX_RANK, &rank),
       "input shape");
    shape[0] = 3;
    ok(nnlib_tensor_create(&xs[k], shape, rank + 1), "x");
    float *xd = nnlib_tensor_get_data(xs[k]);
    for (int64_t i = 0; i < nnlib_tensor_get_size(xs[k]); i++)
      xd[i] = (float)((i + (int64_t)k) % 5) / 2.0f - 1.0f;
  }
  ok(nnlib_model_get_output_shape(m, shape + 1, NNLIB_MAX_RANK, &rank),
     "output shape");
  shape[0] = 3;
  ok(nnlib_tensor_create(&t, shape, rank + 1), "t");
  float *td = nnlib_tensor_get_data(t);
  int64_t per = nnlib_tensor_get_size(t) / 3;
  for (int64_t r = 0; r < 3; r++)
    td[r * per + r % per] = 1.0f;
  for (int s = 0; s < steps; s++)
    ok(nnlib_model_step_inputs(m, (const nnlib_tensor *const *)xs, count, t,
                               NULL),
       "step");
  void *data = NULL;
  size_t size = 0;
  ok(nnlib_model_save_to_buffer(&data, &size, m, flags), "save");
  if (size < 12 || ((const unsigned char *)data)[8] != 2)
    die("a graph model file is not version 2");
  write_seed("model_load", name, data, size);
  nnlib_free(data);
  for (size_t k = 0; k < count; k++)
    nnlib_tensor_free(xs[k]);
  nnlib_tensor_free(t);
  nnlib_model_free(m);
}

static nnlib_node node_input(nnlib_model *m, const int64_t *shape,
                             size_t rank, const char *name) {
  nnlib_node node = 0;
  ok(nnlib_model_input(m, shape, rank, &node), "input");
  if (name != NULL)
    ok(nnlib_model_set_node_name(m, node, name), "name");
  return node;
}

static nnlib_node node_apply(nnlib_model *m, nnlib_layer *l, nnlib_node a,
                             const nnlib_node *b, const char *name) {
  nnlib_node in[2] = {a, b != NULL ? *b : 0}, node = 0;
  ok(nnlib_model_apply(m, l, in, b != NULL ? 2 : 1, &node), "apply");
  if (name != NULL)
    ok(nnlib_model_set_node_name(m, node, name), "name");
  return node;
}

static nnlib_layer *merge(nnlib_layer_kind kind) {
  nnlib_layer *l = NULL;
  if (kind == NNLIB_LAYER_ADD)
    ok(nnlib_add_create(&l), "add");
  else if (kind == NNLIB_LAYER_MULTIPLY)
    ok(nnlib_multiply_create(&l), "multiply");
  else
    ok(nnlib_concat_create(&l, 0), "concat");
  return l;
}

/* Version-2 files: a residual block with batchnorm and a multiply gate
 * (one input, named nodes, Adam state), and an image and a vector input
 * joined by concat (SGD with momentum). */
static void graph_model_seeds(void) {
  nnlib_model *m = NULL;
  ok(nnlib_model_create(&m), "model");
  const int64_t in6[1] = {6};
  nnlib_node x = node_input(m, in6, 1, "x");
  nnlib_layer *bn = NULL;
  ok(nnlib_batchnorm_create(&bn, 0.1f, 1e-5f), "batchnorm");
  nnlib_node h = node_apply(m, dense(0, 6, 1), x, NULL, NULL);
  h = node_apply(m, bn, h, NULL, NULL);
  h = node_apply(m, act(NNLIB_ACT_RELU, 0), h, NULL, "h");
  nnlib_node gate = node_apply(m, dense(0, 6, 1), x, NULL, NULL);
  gate = node_apply(m, act(NNLIB_ACT_SIGMOID, 0), gate, NULL, "gate");
  nnlib_node g = node_apply(m, merge(NNLIB_LAYER_MULTIPLY), h, &gate, NULL);
  nnlib_node sum = node_apply(m, merge(NNLIB_LAYER_ADD), x, &g, "sum");
  node_apply(m, dense(0, 3, 1), sum, NULL, "logits");
  ok(nnlib_model_compile_graph(m, 3, NNLIB_LOSS_SOFTMAX_CE,
                               optimizer(NNLIB_OPT_ADAM, 0,
                                         NNLIB_SCHEDULE_CONSTANT, 0),
                               42),
     "residual");
  graph_seed("graph-residual-gate-adam", m, 2, NNLIB_SAVE_OPTIMIZER);

  ok(nnlib_model_create(&m), "model");
  const int64_t image[3] = {1, 5, 5}, vec[1] = {3};
  nnlib_node img = node_input(m, image, 3, "img");
  nnlib_node v = node_input(m, vec, 1, "vec");
  nnlib_conv2d_options co;
  ok(nnlib_conv2d_options_init(&co), "conv options");
  co.padding_h = co.padding_w = 1;
  nnlib_layer *conv = NULL, *flatten = NULL;
  ok(nnlib_conv2d_create(&conv, 2, 3, 3, &co), "conv");
  ok(nnlib_flatten_create(&flatten), "flatten");
  h = node_apply(m, conv, img, NULL, NULL);
  h = node_apply(m, act(NNLIB_ACT_RELU, 0), h, NULL, NULL);
  h = node_apply(m, flatten, h, NULL, NULL);
  h = node_apply(m, dense(0, 4, 1), h, NULL, "f");
  h = node_apply(m, merge(NNLIB_LAYER_CONCAT), h, &v, NULL);
  node_apply(m, dense(0, 2, 1), h, NULL, NULL);
  ok(nnlib_model_compile_graph(m, 3, NNLIB_LOSS_SOFTMAX_CE,
                               optimizer(NNLIB_OPT_SGD, 0.9f,
                                         NNLIB_SCHEDULE_STEP, 0),
                               42),
     "two inputs");
  graph_seed("graph-two-inputs-sgd", m, 2, NNLIB_SAVE_OPTIMIZER);
}

static void model_seeds(void) {
  const int64_t in4[1] = {4}, in23[2] = {2, 3};
  nnlib_layer *mlp[] = {dense(4, 5, 1), act(NNLIB_ACT_RELU, 0), dense(0, 3, 1)};
  model_seed("mlp-sgd-momentum", in4, 1, mlp, 3, NNLIB_LOSS_SOFTMAX_CE,
             optimizer(NNLIB_OPT_SGD, 0.9f, NNLIB_SCHEDULE_STEP, 0), 2,
             NNLIB_SAVE_OPTIMIZER);
  nnlib_layer *bce[] = {dense(4, 2, 0), act(NNLIB_ACT_SIGMOID, 0),
                        dense(2, 1, 1)};
  model_seed("bce-adam", in4, 1, bce, 3, NNLIB_LOSS_BCE_LOGITS,
             optimizer(NNLIB_OPT_ADAM, 0, NNLIB_SCHEDULE_CONSTANT, 1.0f), 2,
             NNLIB_SAVE_OPTIMIZER);
  nnlib_layer *rms[] = {dense(6, 3, 1), act(NNLIB_ACT_LEAKY_RELU, 0.2f),
                        dense(3, 2, 1), act(NNLIB_ACT_SOFTPLUS, 0)};
  model_seed("rank2-input-rmsprop", in23, 2, rms, 4, NNLIB_LOSS_MSE,
             optimizer(NNLIB_OPT_RMSPROP, 0.5f, NNLIB_SCHEDULE_COSINE, 0), 1,
             NNLIB_SAVE_OPTIMIZER);
  nnlib_layer *adamw[] = {dense(4, 2, 1), act(NNLIB_ACT_TANH, 0)};
  model_seed("adamw-not-saved", in4, 1, adamw, 2, NNLIB_LOSS_MSE,
             optimizer(NNLIB_OPT_ADAMW, 0, NNLIB_SCHEDULE_COSINE, 0), 1, 0);
  nnlib_layer *all[] = {dense(4, 3, 1),        act(NNLIB_ACT_IDENTITY, 0),
                        act(NNLIB_ACT_STEP, 0), dense(3, 3, 1),
                        act(NNLIB_ACT_SIGMOID, 0), act(NNLIB_ACT_TANH, 0),
                        act(NNLIB_ACT_RELU, 0), act(NNLIB_ACT_LEAKY_RELU, 0.01f),
                        act(NNLIB_ACT_SOFTPLUS, 0), act(NNLIB_ACT_SOFTMAX, 0)};
  model_seed("every-activation-inference", in4, 1, all, 10, NNLIB_LOSS_NONE,
             NULL, 0, 0);
  const int64_t image[3] = {1, 6, 6}, seq[2] = {4, 3};
  spec_model_seed("cnn-adam",
                  "conv:3x3x3:p1,relu,maxpool:2,batchnorm,conv:2x2x2:s2:nobias,"
                  "avgpool:1,dropout:0.25,flatten,dense:3",
                  image, 3, NNLIB_LOSS_SOFTMAX_CE,
                  optimizer(NNLIB_OPT_ADAM, 0, NNLIB_SCHEDULE_CONSTANT, 0), 2,
                  NNLIB_SAVE_OPTIMIZER);
  spec_model_seed("cnn-pools-inference",
                  "conv:2x3x3:d2:p2,minpool:2:s1,batchnorm:0.2,global_avgpool",
                  image, 3, NNLIB_LOSS_NONE, NULL, 0, 0);
  spec_model_seed("rnn-lstm-gru-sgd", "lstm:4,gru:3,rnn:2:relu,last,dense:2",
                  seq, 2, NNLIB_LOSS_MSE,
                  optimizer(NNLIB_OPT_SGD, 0.9f, NNLIB_SCHEDULE_CONSTANT, 0), 2,
                  NNLIB_SAVE_OPTIMIZER);
}

/* ------------------------------------------------ text model files */

/* Trains `steps` steps of a compiled model whose input 0 holds token ids
 * [T] (an embedding reads it) on fixed ids, with T int32 class indices per
 * sample as targets for softmax_ce over logits [T, V] and a float32
 * one-hot target otherwise, and writes the saved file, whose format
 * version must be `version`. */
static void text_model_seed(const char *name, nnlib_model *m, int steps,
                            unsigned flags, unsigned version) {
  int64_t shape[NNLIB_MAX_RANK + 1], in[NNLIB_MAX_RANK];
  size_t rank = 0, in_rank = 0;
  ok(nnlib_model_get_input_shape_at(m, 0, in, NNLIB_MAX_RANK, &in_rank),
     "input shape");
  ok(nnlib_model_get_output_shape(m, shape + 1, NNLIB_MAX_RANK, &rank),
     "output shape");
  if (in_rank != 1)
    die("a text seed's input is not [T]");
  int64_t ids_shape[2] = {3, in[0]};
  nnlib_tensor *x = NULL, *t = NULL;
  ok(nnlib_tensor_create_int32(&x, ids_shape, 2), "ids");
  int32_t *ids = nnlib_tensor_get_data_int32(x);
  int64_t vocab = 1 << 30; /* the smallest embedding's, found below */
  for (size_t v = 0; v < nnlib_model_get_node_count(m); v++) {
    nnlib_node_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    ok(nnlib_model_get_node(m, v, &info), "node");
    nnlib_tensor *w = NULL;
    if (info.layer != NULL &&
        nnlib_layer_get_kind(info.layer) == NNLIB_LAYER_EMBEDDING) {
      ok(nnlib_layer_get_param(info.layer, 0, &w, NULL), "embedding weight");
      if (nnlib_tensor_get_dim(w, 0) < vocab)
        vocab = nnlib_tensor_get_dim(w, 0);
    }
  }
  for (int64_t i = 0; i < 3 * in[0]; i++)
    ids[i] = (int32_t)((i * 5 + 2) % vocab);
  shape[0] = 3;
  bool indices = nnlib_model_get_loss(m) == NNLIB_LOSS_SOFTMAX_CE && rank == 2;
  if (indices) {
    ok(nnlib_tensor_create_int32(&t, shape, 2), "index target");
    int32_t *td = nnlib_tensor_get_data_int32(t);
    for (int64_t i = 0; i < nnlib_tensor_get_size(t); i++)
      td[i] = (int32_t)((i * 3 + 1) % shape[2]);
  } else if (nnlib_model_get_loss(m) != NNLIB_LOSS_NONE) {
    ok(nnlib_tensor_create(&t, shape, rank + 1), "target");
    float *td = nnlib_tensor_get_data(t);
    int64_t per = nnlib_tensor_get_size(t) / 3;
    for (int64_t r = 0; r < 3; r++)
      td[r * per + r % per] = 1.0f;
  }
  for (int s = 0; s < steps; s++)
    ok(nnlib_model_step(m, x, t, NULL), "step");
  void *data = NULL;
  size_t size = 0;
  ok(nnlib_model_save_to_buffer(&data, &size, m, flags), "save");
  if (size < 12 || ((const unsigned char *)data)[8] != version)
    die(name);
  write_seed("model_load", name, data, size);
  nnlib_free(data);
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
  nnlib_model_free(m);
}

/* A model from a description (whose input is T token ids), compiled. */
static nnlib_model *text_model(const char *spec, int64_t context,
                               nnlib_loss loss, nnlib_optimizer *opt) {
  nnlib_model *m = NULL;
  ok(nnlib_model_create(&m), "model");
  ok(nnlib_model_add_spec(m, spec), spec);
  ok(nnlib_model_compile(m, &context, 1, 3, loss, opt, 42), spec);
  return m;
}

/* Every text layer kind (17 embedding, 18 positional, 19 layernorm, 20
 * attention, 21 linear) and the activations gelu and gelu_tanh: a chain
 * (version 1), layers made by their constructors (layernorm without
 * affine, attention options through the struct), a graph with a merge
 * (version 2), transformer blocks with warmup (version 3), and an LSTM
 * language model. */
static void text_model_seeds(void) {
  text_model_seed(
      "text-every-kind-chain-sgd",
      text_model("embedding:7:4,positional:8,layernorm:0.001,"
                 "linear:6:nobias,gelu,linear:4,gelu_tanh,"
                 "attention:2:nobias,attention:4:causal:dropout0.2,"
                 "linear:7",
                 5, NNLIB_LOSS_SOFTMAX_CE,
                 optimizer(NNLIB_OPT_SGD, 0.9f, NNLIB_SCHEDULE_CONSTANT, 0)),
      2, NNLIB_SAVE_OPTIMIZER, 1);

  nnlib_model *m = NULL;
  nnlib_layer *emb = NULL, *pos = NULL, *ln = NULL, *att = NULL, *lin = NULL;
  nnlib_attention_options ao;
  ok(nnlib_attention_options_init(&ao), "attention options");
  ao.causal = 1;
  ao.with_bias = 0;
  ok(nnlib_embedding_create(&emb, 6, 6), "embedding");
  ok(nnlib_positional_create(&pos, 0), "positional");
  ok(nnlib_layernorm_create(&ln, 1e-5f, 0), "layernorm without affine");
  ok(nnlib_attention_create(&att, 3, &ao), "attention");
  ok(nnlib_linear_create(&lin, 6, 1), "linear");
  nnlib_layer *layers[] = {emb, pos, ln, att, act(NNLIB_ACT_GELU_TANH, 0), lin};
  ok(nnlib_model_create(&m), "model");
  for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++)
    ok(nnlib_model_add(m, layers[i]), "add");
  const int64_t context = 4;
  ok(nnlib_model_compile(m, &context, 1, 3, NNLIB_LOSS_NONE, NULL, 42),
     "text layers by constructors");
  text_model_seed("text-constructors-inference", m, 0, 0, 1);

  text_model_seed(
      "text-graph-add-adam",
      text_model("x=input:5,e=embedding:6:4(x),a=attention:2(e),"
                 "l=linear:4(e),s=add(a,l),layernorm(s),linear:6",
                 5, NNLIB_LOSS_SOFTMAX_CE,
                 optimizer(NNLIB_OPT_ADAM, 0, NNLIB_SCHEDULE_CONSTANT, 1.0f)),
      2, NNLIB_SAVE_OPTIMIZER, 2);

  nnlib_optimizer_options o;
  ok(nnlib_optimizer_options_init(&o, NNLIB_OPT_ADAMW), "options");
  o.schedule = NNLIB_SCHEDULE_COSINE;
  o.total_steps = 6;
  o.warmup_steps = 2;
  nnlib_optimizer *warm = NULL;
  ok(nnlib_optimizer_create(&warm, &o), "warmup optimizer");
  text_model_seed(
      "char-gpt-adamw-warmup-v3",
      text_model("embedding:11:8,positional,transformer:8:2:causal,"
                 "transformer:8:4:mlp12:causal:dropout0.1,layernorm,"
                 "linear:11",
                 6, NNLIB_LOSS_SOFTMAX_CE, warm),
      3, NNLIB_SAVE_OPTIMIZER, 3);

  text_model_seed(
      "lstm-lm-linear",
      text_model("embedding:9:5,lstm:6,linear:9", 4, NNLIB_LOSS_SOFTMAX_CE,
                 optimizer(NNLIB_OPT_RMSPROP, 0, NNLIB_SCHEDULE_STEP, 0)),
      2, 0, 1);

  const int64_t in4[1] = {4};
  spec_model_seed("features-layernorm-gelu-linear",
                  "dense:5,layernorm,gelu,linear:3:nobias,gelu_tanh,dense:2",
                  in4, 1, NNLIB_LOSS_MSE,
                  optimizer(NNLIB_OPT_ADAM, 0, NNLIB_SCHEDULE_CONSTANT, 0), 1,
                  NNLIB_SAVE_OPTIMIZER);

  /* transposes (1.6): channels last and back around a linear */
  const int64_t in234[3] = {2, 3, 4};
  spec_model_seed("image-transpose-linear",
                  "transpose:1x2x0,linear:3,transpose:2x0x1,flatten,dense:2",
                  in234, 3, NNLIB_LOSS_MSE,
                  optimizer(NNLIB_OPT_SGD, 0, NNLIB_SCHEDULE_CONSTANT, 0), 1,
                  0);
}

/* ------------------------------------------------ roundtrip and spec */

static void roundtrip_seeds(void) {
  uint32_t state = 12345;
  for (int s = 0; s < 8; s++) {
    unsigned char buf[96];
    for (size_t i = 0; i < sizeof buf; i++) {
      state = state * 1664525u + 1013904223u;
      buf[i] = (unsigned char)(state >> 24);
    }
    char name[32];
    snprintf(name, sizeof name, "choices-%d", s);
    write_seed("model_roundtrip", name, buf, sizeof buf);
  }
  /* the graph family (first byte 3 mod 4): one input, two features
   * inputs, a vector and an image, each with six steps */
  for (int s = 0; s < 6; s++) {
    unsigned char buf[160];
    for (size_t i = 0; i < sizeof buf; i++) {
      state = state * 1664525u + 1013904223u;
      buf[i] = (unsigned char)(state >> 24);
    }
    buf[0] = 3;          /* family: graph */
    buf[2] = (unsigned char)(s % 3); /* second input: none, vector, image */
    char name[32];
    snprintf(name, sizeof name, "graph-choices-%d", s);
    write_seed("model_roundtrip", name, buf, sizeof buf);
  }
  /* the text family (first byte 4 mod 5): token ids through an embedding
   * into text layers; buf[3] picks how many items follow it */
  for (int s = 0; s < 8; s++) {
    unsigned char buf[128];
    for (size_t i = 0; i < sizeof buf; i++) {
      state = state * 1664525u + 1013904223u;
      buf[i] = (unsigned char)(state >> 24);
    }
    buf[0] = 4;                          /* family: text */
    buf[4] = (unsigned char)(2 + s % 4); /* items after the embedding */
    char name[32];
    snprintf(name, sizeof name, "text-choices-%d", s);
    write_seed("model_roundtrip", name, buf, sizeof buf);
  }
  /* transposes (1.6): images (first byte 1; buf[5] 8 mod 9 makes the
   * first item a transpose, buf[6] its permutation) and sequences (first
   * byte 2; buf[4] 5 mod 6, buf[5] 1x0 or 0x1) */
  for (int s = 0; s < 6; s++) {
    unsigned char buf[96];
    for (size_t i = 0; i < sizeof buf; i++) {
      state = state * 1664525u + 1013904223u;
      buf[i] = (unsigned char)(state >> 24);
    }
    bool image = s < 4;
    buf[0] = image ? 1 : 2;
    if (image) {
      buf[4] = 2;                /* three items */
      buf[5] = 8;                /* transpose */
      buf[6] = (unsigned char)s; /* of perms3[s] */
    } else {
      buf[3] = 2;
      buf[4] = 5;
      buf[5] = (unsigned char)s;
    }
    char name[32];
    snprintf(name, sizeof name, "transpose-choices-%d", s);
    write_seed("model_roundtrip", name, buf, sizeof buf);
  }
}

static void spec_seeds(void) {
  const char *specs[] = {
      "dense:256,relu,dense:128,relu,dense:10",
      "dense:4:nobias,step",
      "dense:8,sigmoid,dense:3,tanh,softmax",
      "leaky_relu:0.2,dense:2,softplus,identity",
      " dense:16 , leaky_relu , dense:1 ",
      "dense:3,leaky_relu:1e-3,relu,softmax",
      "conv:8x3x3:p1,relu,maxpool:2,batchnorm,flatten,dropout:0.5,dense:10",
      ("conv:4x5x3:s2x1:p2x1:d1x2:nobias,avgpool:2x1:s1,minpool:3:p1,"
       "global_avgpool"),
      "lstm:16,last,dense:4",
      "rnn:8:relu:nobias,gru:4,last,batchnorm:0.1:1e-3",
      /* graphs: named nodes, references, a declared input, merges (a
       * description with two inputs waits for fuzz_spec.c to compile
       * graphs with nnlib_model_compile_graph) */
      "x=input:16x8x8,conv:16x3x3:p1,relu,c=conv:16x3x3:p1,add(x,c),relu",
      "a=input:6,b=dense:6(a),g=sigmoid(a),multiply(b,g),dense:2",
      "x=input:5x3,l=lstm:4(x),r=gru:4(x),concat:-1(l,r),dense:2",
      /* transposes (1.6) */
      "transpose:1x2x0,linear:4,transpose:2x0x1,flatten,dense:3",
      "x=input:2x3x4,a=transpose:2x1x0(x),b=transpose:0x2x1(x),flatten(a),"
      "f=dense:3,flatten(b),g=dense:3,add(f,g)",
  };
  for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
    char name[32];
    snprintf(name, sizeof name, "spec-%zu", i);
    write_seed("spec", name, specs[i], strlen(specs[i]));
  }
  /* text items (1.4): token ids [T] are the rank-1 input fuzz_spec tries
   * first, so a description that starts with an embedding compiles */
  static const struct {
    const char *name, *text;
  } text[] = {
      {"spec-attention-0",
       "input:8x16,attention:4:causal:dropout0.1,attention:2:nobias"},
      {"text-embedding", "embedding:16:8"},
      {"text-embedding-positional", "embedding:10:6,positional,linear:10"},
      {"text-positional-max", "embedding:5:4,positional:12,gelu"},
      {"text-layernorm", "dense:6,layernorm,layernorm:1e-3,dense:2"},
      {"text-linear", "input:3x5,linear:4,linear:2:nobias,gelu_tanh"},
      {"text-gelu", "dense:8,gelu,dense:4,gelu_tanh,dense:1"},
      {"text-attention-options",
       "embedding:7:8,attention:2,attention:4:causal,"
       "attention:1:dropout0.25:nobias,attention:8:causal:dropout0.5:nobias"},
      {"text-transformer",
       "embedding:9:8,transformer:8:2,transformer:8:4:mlp16:causal:dropout0.1"},
      {"text-char-gpt",
       "input:16,embedding:64:16,positional,transformer:16:4:causal,"
       "transformer:16:4:causal,layernorm,linear:64"},
      {"text-named-transformer",
       "x=input:6,e=embedding:12:6(x),b=transformer:6:3:causal(e),"
       "n=layernorm(b),linear:12(n)"},
      {"text-lstm-lm", "embedding:20:8,lstm:12,linear:20"},
      {"text-gru-rnn-lm", "embedding:8:4,gru:6,rnn:5:relu,linear:8:nobias"},
      {"text-embedding-misread", "dense:3,embedding:4:2"},
  };
  for (size_t i = 0; i < sizeof text / sizeof text[0]; i++)
    write_seed("spec", text[i].name, text[i].text, strlen(text[i].text));
}

/* ----------------------------------------------------------------- text */

/* The text target reads four header bytes first (see fuzz_text.c):
 * fraction in tenths, seed, batch and first window, context. */
static void text_seed(const char *name, const unsigned char header[4],
                      const char *text) {
  unsigned char buf[512];
  size_t n = strlen(text);
  if (n + 4 > sizeof buf)
    die(name);
  memcpy(buf, header, 4);
  memcpy(buf + 4, text, n);
  write_seed("text", name, buf, n + 4);
}

static void text_seeds(void) {
  static const char fortune[] =
      "A fortune is a short text.\n%\nAnother one follows the percent "
      "line.\n%\n";
  text_seed("fortunes-tenth-valid", (const unsigned char[4]){1, 7, 0x05, 7},
            fortune);
  text_seed("no-validation", (const unsigned char[4]){0, 1, 0x03, 15},
            fortune);
  text_seed("window-fits-exactly", (const unsigned char[4]){0, 2, 0x00, 3},
            "abcd");
  text_seed("too-short", (const unsigned char[4]){9, 3, 0x02, 15}, "short");
  text_seed("empty", (const unsigned char[4]){5, 4, 0x00, 0}, "");
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s <corpus-dir>\n", argv[0]);
    return 2;
  }
  root = argv[1];
  if (mkdir(root, 0777) != 0 && errno != EEXIST)
    die(root);
  idx_seeds();
  model_seeds();
  graph_model_seeds();
  text_model_seeds();
  roundtrip_seeds();
  spec_seeds();
  text_seeds();
  return 0;
}
