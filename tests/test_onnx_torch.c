/* test_onnx_torch - PyTorch models exported as ONNX (opset 17) by
 * tests/make_onnx_fixtures.py, imported and compared with PyTorch: the
 * eval-mode predictions (relative 1e-5 with an absolute floor of 1e-5) of
 * an MLP (Gemm), a last-axis linear + LayerNorm model (MatMul + Add), a
 * convolutional network (fashion_cnn.c's layers at reduced width, batchnorm
 * folded by the exporter) and an embedding (Gather over int32 ids); and
 * for the MLP and the linear model three plain-SGD steps with softmax
 * cross-entropy, whose losses must equal PyTorch's for the same steps;
 * the same for an LSTM, a GRU and a relu RNN classifier (batch_first, the
 * last step, the final state and the whole sequence read) and an MLP with
 * both GELU forms; a residual CNN (identity and projection shortcuts,
 * batchnorm kept by a TrainingMode.PRESERVE export: the steps train it
 * with batch statistics like torch's train mode, and the eval-mode output
 * after them checks the running statistics), and the same network exported
 * in eval mode (batchnorm folded: predictions); nn.MultiheadAttention
 * without mask and bias, and with the causal mask, read as one attention
 * layer; and a GPT-like model (embedding, learned positions, two pre-norm
 * blocks with causal attention and a GELU MLP) whose per-token
 * cross-entropy steps give torch's losses and whose imported model exports
 * again as ONNX; nn.LayerNorm exported at opset 14 (primitive operators,
 * read as one layernorm) between two Linears, predictions and steps; and
 * a ViT-style patch embedding (conv, flatten(2), transpose(1, 2),
 * LayerNorm, Linear) onto a transpose layer. */
#include "test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct series {
  float *v;
  int64_t n;
} series;

/* "key count v1 v2 ..." lines of tests/fixtures/onnx/<name>.txt. */
static series read_series(const char *name, const char *key) {
  char path[1024];
  const char *root = getenv("NNLIB_SOURCE_DIR");
  snprintf(path, sizeof path, "%s/tests/fixtures/onnx/%s.txt",
           root ? root : "..", name);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    fail_msg("cannot open %s", path);
  char k[64];
  long long n;
  series s = {NULL, 0};
  while (fscanf(f, "%63s %lld", k, &n) == 2) {
    float *v = malloc((size_t)n * sizeof *v + 1);
    assert_non_null(v);
    for (long long i = 0; i < n; i++)
      assert_int_equal(fscanf(f, "%f", &v[i]), 1);
    if (strcmp(k, key) == 0 && s.v == NULL) {
      s.v = v;
      s.n = n;
    } else {
      free(v);
    }
  }
  fclose(f);
  if (s.v == NULL)
    fail_msg("%s: no '%s'", path, key);
  return s;
}

static nnlib_model *load(const char *name, nnlib_loss loss) {
  char path[1024];
  const char *root = getenv("NNLIB_SOURCE_DIR");
  snprintf(path, sizeof path, "%s/tests/fixtures/onnx/%s.onnx",
           root ? root : "..", name);
  nnlib_onnx_options o;
  ASSERT_OK(nnlib_onnx_options_init(&o));
  o.max_batch = 8;
  o.loss = loss;
  if (loss != NNLIB_LOSS_NONE)
    ASSERT_OK(nnlib_sgd_create(&o.optimizer, 0.1f, 0.0f, 0, 0.0f));
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_load_onnx(&m, path, &o));
  return m;
}

/* x of n samples of the model's input shape (int32 ids when `ids`). */
static nnlib_tensor *input(nnlib_model *m, const series *x, bool ids) {
  int64_t dims[NNLIB_MAX_RANK + 1];
  size_t rank = 0;
  ASSERT_OK(nnlib_model_get_input_shape_at(m, 0, dims + 1, NNLIB_MAX_RANK,
                                           &rank));
  int64_t per = 1;
  for (size_t k = 1; k <= rank; k++)
    per *= dims[k];
  dims[0] = x->n / per;
  nnlib_tensor *t = NULL;
  if (ids) {
    ASSERT_OK(nnlib_tensor_create_int32(&t, dims, rank + 1));
    for (int64_t k = 0; k < x->n; k++)
      nnlib_tensor_get_data_int32(t)[k] = (int32_t)x->v[k];
  } else {
    ASSERT_OK(nnlib_tensor_create(&t, dims, rank + 1));
    memcpy(nnlib_tensor_get_data(t), x->v, (size_t)x->n * sizeof(float));
  }
  return t;
}

static void check_close(const float *got, const series *want) {
  for (int64_t k = 0; k < want->n; k++)
    if (!(fabs(got[k] - want->v[k]) <= 1e-5 * fabs(want->v[k]) + 1e-5))
      fail_msg("element %lld: nnlib %.9g, torch %.9g", (long long)k, got[k],
               want->v[k]);
}

static void predicts_like_torch(const char *name, const char *xkey) {
  nnlib_model *m = load(name, NNLIB_LOSS_NONE);
  series x = read_series(name, xkey), y = read_series(name, "y");
  nnlib_tensor *xt = input(m, &x, strcmp(xkey, "ids") == 0), *yt = NULL;
  int64_t ys[1] = {y.n};
  ASSERT_OK(nnlib_tensor_create(&yt, ys, 1));
  ASSERT_OK(nnlib_model_predict(m, xt, yt));
  check_close(nnlib_tensor_get_data(yt), &y);
  nnlib_tensor_free(xt);
  nnlib_tensor_free(yt);
  nnlib_model_free(m);
  free(x.v);
  free(y.v);
}

/* The fixture's steps on a model with a loss: each loss equals torch's. */
static void steps_like_torch(nnlib_model *m, const char *name,
                             const nnlib_tensor *xt, const nnlib_tensor *tt) {
  series losses = read_series(name, "losses");
  for (int64_t s = 0; s < losses.n; s++) {
    float loss = 0;
    ASSERT_OK(nnlib_model_step(m, xt, tt, &loss));
    if (!(fabs(loss - losses.v[s]) <= 1e-5 * fabs(losses.v[s]) + 1e-6))
      fail_msg("%s step %lld: nnlib loss %.9g, torch %.9g", name,
               (long long)s, loss, losses.v[s]);
  }
  free(losses.v);
}

/* Class targets [N, 1] (floats), or token targets [N, T] (int32) when
 * `tokens`. */
static nnlib_tensor *targets(const series *target, const nnlib_tensor *xt,
                             bool tokens) {
  nnlib_tensor *tt = NULL;
  if (tokens) {
    const int64_t *dims = nnlib_tensor_get_shape(xt); /* [N, T] */
    ASSERT_OK(nnlib_tensor_create_int32(&tt, dims, 2));
    for (int64_t k = 0; k < target->n; k++)
      nnlib_tensor_get_data_int32(tt)[k] = (int32_t)target->v[k];
    return tt;
  }
  int64_t ts[2] = {target->n, 1};
  ASSERT_OK(nnlib_tensor_create(&tt, ts, 2));
  memcpy(nnlib_tensor_get_data(tt), target->v, (size_t)target->n * 4);
  return tt;
}

/* The steps, then (when the fixture has y_after) the eval-mode output
 * after them. */
static void trains_then_predicts(const char *name, const char *xkey,
                                 bool tokens) {
  nnlib_model *m = load(name, NNLIB_LOSS_SOFTMAX_CE);
  series x = read_series(name, xkey), target = read_series(name, "target");
  nnlib_tensor *xt = input(m, &x, strcmp(xkey, "ids") == 0);
  nnlib_tensor *tt = targets(&target, xt, tokens);
  steps_like_torch(m, name, xt, tt);
  if (!tokens && strcmp(name, "resnet") == 0) {
    series after = read_series(name, "y_after");
    nnlib_tensor *yt = NULL;
    int64_t ys[1] = {after.n};
    ASSERT_OK(nnlib_tensor_create(&yt, ys, 1));
    ASSERT_OK(nnlib_model_predict(m, xt, yt));
    check_close(nnlib_tensor_get_data(yt), &after);
    nnlib_tensor_free(yt);
    free(after.v);
  }
  nnlib_tensor_free(xt);
  nnlib_tensor_free(tt);
  nnlib_model_free(m);
  free(x.v);
  free(target.v);
}

static void trains_like_torch(const char *name) {
  nnlib_model *m = load(name, NNLIB_LOSS_SOFTMAX_CE);
  series x = read_series(name, "x"), target = read_series(name, "target");
  series losses = read_series(name, "losses");
  nnlib_tensor *xt = input(m, &x, false), *tt = NULL;
  int64_t ts[2] = {target.n, 1};
  ASSERT_OK(nnlib_tensor_create(&tt, ts, 2));
  memcpy(nnlib_tensor_get_data(tt), target.v, (size_t)target.n * 4);
  for (int64_t s = 0; s < losses.n; s++) {
    float loss = 0;
    ASSERT_OK(nnlib_model_step(m, xt, tt, &loss));
    if (!(fabs(loss - losses.v[s]) <= 1e-5 * fabs(losses.v[s]) + 1e-6))
      fail_msg("%s step %lld: nnlib loss %.9g, torch %.9g", name,
               (long long)s, loss, losses.v[s]);
  }
  nnlib_tensor_free(xt);
  nnlib_tensor_free(tt);
  nnlib_model_free(m);
  free(x.v);
  free(target.v);
  free(losses.v);
}

static void mlp(void **state) {
  (void)state;
  predicts_like_torch("mlp", "x");
  trains_like_torch("mlp");
}

static void last_axis_linear(void **state) {
  (void)state;
  predicts_like_torch("seq", "x");
  trains_like_torch("seq");
}

static void cnn(void **state) {
  (void)state;
  predicts_like_torch("cnn", "x");
}

static void embedding(void **state) {
  (void)state;
  predicts_like_torch("embedding", "ids");
}

/* LSTM, GRU and RNN: the layer's gates reordered from ONNX's, the
 * Transpose/Squeeze/Gather torch writes around it folded into a layer that
 * returns the last step (lstm: y[:, -1]; gru: h[-1]) or the sequence
 * (rnn, relu, flattened). */
static void lstm(void **state) {
  (void)state;
  predicts_like_torch("lstm", "x");
  trains_like_torch("lstm");
}

static void gru(void **state) {
  (void)state;
  predicts_like_torch("gru", "x");
  trains_like_torch("gru");
}

static void rnn(void **state) {
  (void)state;
  predicts_like_torch("rnn", "x");
  trains_like_torch("rnn");
}

/* nn.GELU() and nn.GELU(approximate='tanh') subgraphs onto gelu and
 * gelu_tanh: the model's layers are dense, gelu, dense, gelu_tanh, dense
 * (no node of the subgraphs left over). */
static void gelu(void **state) {
  (void)state;
  predicts_like_torch("gelu", "x");
  trains_like_torch("gelu");
  nnlib_model *m = load("gelu", NNLIB_LOSS_NONE);
  assert_int_equal(nnlib_model_get_layer_count(m), 5);
  const char *want[5] = {"dense", "gelu", "dense", "gelu_tanh", "dense"};
  for (size_t k = 0; k < 5; k++)
    assert_string_equal(nnlib_layer_get_name(nnlib_model_get_layer(m, k)),
                        want[k]);
  nnlib_model_free(m);
}

/* The layers of the imported model, in order, are `want`. */
static void layers_are(const char *name, const char *const *want,
                       size_t count) {
  nnlib_model *m = load(name, NNLIB_LOSS_NONE);
  if (nnlib_model_get_layer_count(m) != count)
    fail_msg("%s: %zu layers, want %zu", name, nnlib_model_get_layer_count(m),
             count);
  for (size_t k = 0; k < count; k++)
    assert_string_equal(nnlib_layer_get_name(nnlib_model_get_layer(m, k)),
                        want[k]);
  nnlib_model_free(m);
}

/* Residual CNN: conv, batchnorm, relu, merges add; the BatchNormalization
 * nodes kept (TrainingMode.PRESERVE) become batchnorm layers that train
 * with batch statistics; the eval export (folded) predicts alike. */
static void resnet(void **state) {
  (void)state;
  predicts_like_torch("resnet", "x");
  trains_then_predicts("resnet", "x", false);
  predicts_like_torch("resnet_folded", "x");
  /* stem; block 1 and its sum; the projection shortcut, block 2 and the
   * sum; the head */
  const char *want[21] = {
      "conv2d", "batchnorm", "relu",
      "conv2d", "batchnorm", "relu", "conv2d", "batchnorm", "add", "relu",
      "conv2d", "batchnorm",
      "conv2d", "batchnorm", "relu", "conv2d", "batchnorm", "add", "relu",
      "global_avgpool", "dense"};
  layers_are("resnet", want, 21);
}

/* nn.MultiheadAttention's subgraph (70-odd nodes) as one attention layer:
 * without bias and mask (2 heads), and with biases and the causal mask (4
 * heads). */
static void attention(void **state) {
  (void)state;
  predicts_like_torch("attention", "x");
  trains_like_torch("attention");
  predicts_like_torch("attention_causal", "x");
  trains_like_torch("attention_causal");
  const char *want[3] = {"attention", "flatten", "dense"};
  layers_are("attention", want, 3);
  layers_are("attention_causal", want, 3);
}

/* The GPT-like model: logits [T, V] per sample, per-token cross-entropy
 * steps, and nnlib's ONNX export of the imported model. */
static void gpt(void **state) {
  (void)state;
  predicts_like_torch("gpt", "ids");
  trains_then_predicts("gpt", "ids", true);
  const char *block[8] = {"layernorm", "attention", "add", "layernorm",
                           "linear",    "gelu",      "linear", "add"};
  const char *want[20] = {"embedding", "positional"};
  for (size_t b = 0; b < 2; b++)
    for (size_t k = 0; k < 8; k++)
      want[2 + 8 * b + k] = block[k];
  want[18] = "layernorm";
  want[19] = "linear";
  layers_are("gpt", want, 20);
  nnlib_model *m = load("gpt", NNLIB_LOSS_NONE);
  void *data = NULL, *again = NULL;
  size_t size = 0, again_size = 0;
  ASSERT_OK(nnlib_model_save_onnx_to_buffer(&data, &size, m));
  ASSERT_OK(nnlib_model_save_onnx_to_buffer(&again, &again_size, m));
  assert_true(size > 1000);
  assert_int_equal(size, again_size);
  assert_memory_equal(data, again, size);
  nnlib_free(data);
  nnlib_free(again);
  nnlib_model_free(m);
}

/* nn.LayerNorm exported at opset 14, where torch writes it in primitive
 * operators (ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul, Add):
 * one layernorm layer, after a Gemm (dense) and, over [4, 6] per sample
 * without affine parameters, after a MatMul + Add (linear). */
static void layernorm_opset14(void **state) {
  (void)state;
  predicts_like_torch("layernorm14", "x");
  trains_like_torch("layernorm14");
  predicts_like_torch("layernorm14_seq", "x");
  trains_like_torch("layernorm14_seq");
  const char *affine[3] = {"dense", "layernorm", "dense"};
  layers_are("layernorm14", affine, 3);
  const char *plain[4] = {"linear", "layernorm", "flatten", "dense"};
  layers_are("layernorm14_seq", plain, 4);
}

/* A ViT-style patch embedding: Conv2d stride 4, flatten(2) (a Reshape of a
 * target folded from Shape, Slice and Concat), transpose(1, 2), LayerNorm
 * and Linear per token. nnlib keeps the conv's [8, 4, 4] and transposes it
 * as a whole to [4, 4, 8], the 16 tokens of 8 in torch's order. */
static void vit(void **state) {
  (void)state;
  predicts_like_torch("vit", "x");
  const char *want[4] = {"conv2d", "transpose", "layernorm", "linear"};
  layers_are("vit", want, 4);
  nnlib_model *m = load("vit", NNLIB_LOSS_NONE);
  char spec[128];
  ASSERT_OK(nnlib_model_get_spec(m, spec, sizeof spec, NULL));
  assert_string_equal(spec, "conv:8x4x4:s4,transpose:1x2x0,layernorm,"
                            "linear:4");
  nnlib_model_free(m);
}

/* An allocation failure at every allocation of importing the recurrent,
 * GELU, residual, attention and opset-14 layernorm models (views, pending
 * layers, pattern tables, the attention subgraph's values) fails with
 * NNLIB_ERR_OUT_OF_MEMORY and leaves no block behind. */
static void out_of_memory_everywhere(void **state) {
  (void)state;
  const char *names[7] = {"lstm",   "gru",
                          "rnn",    "gelu",
                          "resnet", "attention_causal",
                          "layernorm14_seq"};
  for (int f = 0; f < 7; f++) {
    char path[1024];
    const char *root = getenv("NNLIB_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/tests/fixtures/onnx/%s.onnx",
             root ? root : "..", names[f]);
    ts_alloc_stats stats = {0};
    ts_alloc_install(&stats);
    nnlib_model *m = NULL;
    ASSERT_OK(nnlib_model_load_onnx(&m, path, NULL));
    nnlib_model_free(m);
    long total = stats.allocs;
    ts_alloc_uninstall();
    assert_true(total > 10);
    for (long k = 1; k <= total; k++) {
      ts_alloc_stats s = {0};
      s.fail_at = k;
      ts_alloc_install(&s);
      m = (nnlib_model *)&m;
      nnlib_status st = nnlib_model_load_onnx(&m, path, NULL);
      long live = s.live;
      ts_alloc_uninstall();
      if (st != NNLIB_ERR_OUT_OF_MEMORY || m != NULL || live != 0)
        fail_msg("%s: allocation %ld of %ld failed: %s (%s), %ld blocks "
                 "live",
                 names[f], k, total, nnlib_status_string(st),
                 nnlib_last_error_message(), live);
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(mlp),
      cmocka_unit_test(last_axis_linear),
      cmocka_unit_test(cnn),
      cmocka_unit_test(embedding),
      cmocka_unit_test(lstm),
      cmocka_unit_test(gru),
      cmocka_unit_test(rnn),
      cmocka_unit_test(gelu),
      cmocka_unit_test(resnet),
      cmocka_unit_test(attention),
      cmocka_unit_test(gpt),
      cmocka_unit_test(layernorm_opset14),
      cmocka_unit_test(vit),
      cmocka_unit_test(out_of_memory_everywhere),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
