/* bench_models.c - the models of the benchmark suite (issue 9) and the
 * GEMM list each runs, so the bench can time "the same GEMMs with the same
 * shapes" alone.
 *
 * Extension points: when the CNN and recurrent layers land, give `cnn` and
 * `lstm` a build function (the shapes of their issues), and teach
 * bench_model_gemms the GEMMs of NNLIB_LAYER_CONV2D (im2col lowering: one
 * [N*OH*OW, C*kH*kW] x [C*kH*kW, C_out] product forward, two backward) and
 * NNLIB_LAYER_LSTM (one input projection over all steps, one recurrent
 * product per step, and their transposes backward). */
#include "bench_models.h"

#include <string.h>

static nnlib_status add_dense(nnlib_model *m, int64_t in, int64_t out) {
  nnlib_layer *l = NULL;
  nnlib_status st = nnlib_dense_create(&l, in, out, 1);
  return st != NNLIB_OK ? st : nnlib_model_add(m, l);
}

static nnlib_status add_act(nnlib_model *m, nnlib_activation kind) {
  nnlib_layer *l = NULL;
  nnlib_status st = nnlib_activation_create(&l, kind, 0.0f);
  return st != NNLIB_OK ? st : nnlib_model_add(m, l);
}

#define TRY(expr)                                                              \
  do {                                                                         \
    nnlib_status st_ = (expr);                                                 \
    if (st_ != NNLIB_OK)                                                       \
      return st_;                                                              \
  } while (0)

/* 784-16-10, sigmoid after both layers, trained with MSE. */
static nnlib_status build_mlp_small(nnlib_model *m) {
  TRY(add_dense(m, 784, 16));
  TRY(add_act(m, NNLIB_ACT_SIGMOID));
  TRY(add_dense(m, 16, 10));
  return add_act(m, NNLIB_ACT_SIGMOID);
}

/* 784-1024-1024-10, ReLU, logits into softmax cross-entropy. */
static nnlib_status build_mlp_large(nnlib_model *m) {
  TRY(add_dense(m, 784, 1024));
  TRY(add_act(m, NNLIB_ACT_RELU));
  TRY(add_dense(m, 1024, 1024));
  TRY(add_act(m, NNLIB_ACT_RELU));
  return add_dense(m, 1024, 10);
}

const bench_model_def bench_models[] = {
    {"mlp-small", "784-16-10 sigmoid, MSE", {32, 256}, 2, {784}, 1, 10,
     NNLIB_LOSS_MSE, build_mlp_small, NULL},
    {"mlp-large", "784-1024-1024-10 ReLU, softmax CE", {64, 256, 1024}, 3,
     {784}, 1, 10, NNLIB_LOSS_SOFTMAX_CE, build_mlp_large, NULL},
    /* placeholders: the shapes come with the CNN and recurrent issues */
    {"cnn", "convolutional net of the CNN issue", {64, 256}, 2, {1, 28, 28},
     3, 10, NNLIB_LOSS_SOFTMAX_CE, NULL, "the conv2d and pooling layers"},
    {"lstm", "LSTM of the recurrent issue", {64, 256}, 2, {28, 28}, 2, 10,
     NNLIB_LOSS_SOFTMAX_CE, NULL, "the lstm layer"},
};
const size_t bench_model_count = sizeof bench_models / sizeof bench_models[0];

const bench_model_def *bench_model_find(const char *name) {
  for (size_t i = 0; i < bench_model_count; i++)
    if (strcmp(bench_models[i].name, name) == 0)
      return &bench_models[i];
  return NULL;
}

static int push(bench_gemm *out, int count, int cap, bench_gemm g) {
  if (count < cap)
    out[count] = g;
  return count + 1;
}

/* Dense (src/layers/dense.c), W [out, in]:
 *   forward      Y  = X W^T   NT  [n,in] x [in,out]
 *   weight_grad  dW = dZ^T X  TN  [out,n] x [n,in]   (or W -= lr dZ^T X)
 *   input_grad   dX = dZ W    NN  [n,out] x [out,in] (not for layer 0)   */
static int dense_gemms(nnlib_layer *l, int index, int n, bool training,
                       bool sgd_fused, bench_gemm *out, int count, int cap) {
  nnlib_tensor *w = NULL;
  if (nnlib_layer_get_param(l, 0, &w, NULL) != NNLIB_OK)
    return -1;
  int o = (int)nnlib_tensor_get_dim(w, 0), in = (int)nnlib_tensor_get_dim(w, 1);
  count = push(out, count, cap,
               (bench_gemm){"forward", index, 'N', 'T', n, o, in, 1.0f, 0.0f});
  if (!training)
    return count;
  count = push(out, count, cap,
               (bench_gemm){"weight_grad", index, 'T', 'N', o, in, n,
                            sgd_fused ? -0.01f : 1.0f, sgd_fused ? 1.0f : 0.0f});
  if (index > 0)
    count = push(out, count, cap, (bench_gemm){"input_grad", index, 'N', 'N',
                                               n, in, o, 1.0f, 0.0f});
  return count;
}

int bench_model_gemms(nnlib_model *model, int64_t n, bool training,
                      bool sgd_fused, bench_gemm *out, int cap) {
  int count = 0;
  size_t layers = nnlib_model_get_layer_count(model);
  for (size_t i = 0; i < layers; i++) {
    nnlib_layer *l = nnlib_model_get_layer(model, i);
    switch (nnlib_layer_get_kind(l)) {
    case NNLIB_LAYER_DENSE:
      count = dense_gemms(l, (int)i, (int)n, training, sgd_fused, out, count,
                          cap);
      if (count < 0)
        return -1;
      break;
    case NNLIB_LAYER_ACTIVATION:
    case NNLIB_LAYER_FLATTEN:
    case NNLIB_LAYER_DROPOUT:
      break; /* elementwise: no GEMM */
    default:
      return -1; /* conv2d, lstm, ...: see the note at the top */
    }
  }
  return count < cap ? count : cap;
}

double bench_gemm_flops(const bench_gemm *g, int count) {
  double flops = 0.0;
  for (int i = 0; i < count; i++)
    flops += 2.0 * g[i].m * (double)g[i].n * g[i].k;
  return flops;
}
