/* bench_models.c - the models of the benchmark suite (issue 9) and the
 * GEMM list each runs, so the bench can time "the same GEMMs with the same
 * shapes" alone.
 *
 * The convolutions' GEMMs are in conv_gemms, the recurrent layers' in
 * recurrent_gemms. */
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

/* The LSTM of examples/sequence_lstm.c: Fashion-MNIST rows as 28 steps of
 * 28 features, lstm:128 (last step), dense:10 logits. */
static nnlib_status build_lstm(nnlib_model *m) {
  nnlib_layer *l = NULL;
  TRY(nnlib_lstm_create(&l, 28, 128, 1, 0));
  TRY(nnlib_model_add(m, l));
  return add_dense(m, 128, 10);
}

/* The CNN of examples/fashion_cnn.c (the same description): two conv+pool
 * blocks with batch normalisation on 1x28x28 images, then dense layers. */
static nnlib_status build_cnn(nnlib_model *m) {
  return nnlib_model_add_spec(
      m, "conv:32x3x3:p1:nobias,batchnorm,relu,maxpool:2,"
         "conv:64x3x3:p1:nobias,batchnorm,relu,maxpool:2,"
         "flatten,dense:256,relu,dropout:0.5,dense:10");
}

/* A small residual CNN like examples/fashion_resnet.c, in one line of
 * description text: a stem, then three stages of one basic block each;
 * stages 2 and 3 halve the resolution with a strided convolution and a
 * 1x1 projection shortcut. For the memory benchmark's graph row. */
static nnlib_status build_resnet(nnlib_model *m) {
  return nnlib_model_add_spec(
      m, "conv:16x3x3:p1:nobias,batchnorm,r0=relu,"
         "conv:16x3x3:p1:nobias,batchnorm,relu,conv:16x3x3:p1:nobias,"
         "b1=batchnorm,add(r0,b1),r1=relu,"
         "conv:32x3x3:s2:p1:nobias,batchnorm,relu,conv:32x3x3:p1:nobias,"
         "b2=batchnorm,conv:32x1x1:s2:nobias(r1),p2=batchnorm,add(b2,p2),"
         "r2=relu,"
         "conv:64x3x3:s2:p1:nobias,batchnorm,relu,conv:64x3x3:p1:nobias,"
         "b3=batchnorm,conv:64x1x1:s2:nobias(r2),p3=batchnorm,add(b3,p3),"
         "relu,global_avgpool,dense:10");
}

const bench_model_def bench_resnet = {
    "resnet", "residual CNN: stem 16, stages 16-32-64, one block each",
    {128}, 1, {1, 28, 28}, 3, 10, NNLIB_LOSS_SOFTMAX_CE, build_resnet, NULL};

const bench_model_def bench_models[] = {
    {"mlp-small", "784-16-10 sigmoid, MSE", {32, 256}, 2, {784}, 1, 10,
     NNLIB_LOSS_MSE, build_mlp_small, NULL},
    {"mlp-large", "784-1024-1024-10 ReLU, softmax CE", {64, 256, 1024}, 3,
     {784}, 1, 10, NNLIB_LOSS_SOFTMAX_CE, build_mlp_large, NULL},
    {"cnn", "examples/fashion_cnn.c: conv32-bn-pool, conv64-bn-pool, 256, 10",
     {64, 256}, 2, {1, 28, 28}, 3, 10, NNLIB_LOSS_SOFTMAX_CE, build_cnn, NULL},
    {"lstm", "lstm:128,last,dense:10 over 28 steps of 28, softmax CE",
     {64, 256}, 2, {28, 28}, 2, 10, NNLIB_LOSS_SOFTMAX_CE, build_lstm, NULL},
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
  count = push(out, count, cap, (bench_gemm){"forward", index, 'N', 'T', n, o,
                                             in, 1.0f, 0.0f, 1});
  if (!training)
    return count;
  count = push(out, count, cap,
               (bench_gemm){"weight_grad", index, 'T', 'N', o, in, n,
                            sgd_fused ? -0.01f : 1.0f, sgd_fused ? 1.0f : 0.0f,
                            1});
  if (index > 0)
    count = push(out, count, cap, (bench_gemm){"input_grad", index, 'N', 'N',
                                               n, in, o, 1.0f, 0.0f, 1});
  return count;
}

/* Steps T of the sequence layer `index` reads: the first dimension of its
 * input [T, F] (the model's input or the previous layer's output). */
static int input_steps(nnlib_model *model, size_t index) {
  int64_t dims[NNLIB_MAX_RANK];
  size_t rank = 0;
  nnlib_status st =
      index == 0
          ? nnlib_model_get_input_shape(model, dims, NNLIB_MAX_RANK, &rank)
          : nnlib_layer_get_output_shape(nnlib_model_get_layer(model, index - 1),
                                         dims, NNLIB_MAX_RANK, &rank);
  return st == NNLIB_OK && rank == 2 ? (int)dims[0] : -1;
}

/* rnn, lstm, gru (src/layers/recurrent.c), W_ih [G*H, F], W_hh [G*H, H],
 * T steps from a zero initial state:
 *   forward      P = X W_ih^T        NT  [n*T,F] x [F,GH]   once
 *                h_{t-1} W_hh^T      NT  [n,H] x [H,GH]     per step after
 *                                        the first; added to P (beta 1),
 *                                        gru keeps it apart (beta 0)
 *   input_grad   dh_{t-1} = dP_t W_hh NN [n,GH] x [GH,H]   per step after
 *                                        the first (gru adds: beta 1)
 *                dX = dP W_ih        NN  [n*T,GH] x [GH,F]  (not layer 0)
 *   weight_grad  dW_ih = dP^T X      TN  [GH,n*T] x [n*T,F]
 *                dW_hh = dP^T Hprev  TN  [GH,n*T] x [n*T,H] (or the
 *                                        plain-SGD update in both)      */
static int recurrent_gemms(nnlib_model *model, size_t index, int n,
                           bool training, bool sgd_fused, bench_gemm *out,
                           int count, int cap) {
  nnlib_layer *l = nnlib_model_get_layer(model, index);
  nnlib_tensor *w_ih = NULL, *w_hh = NULL;
  int steps = input_steps(model, index);
  if (steps < 1 || nnlib_layer_get_param(l, 0, &w_ih, NULL) != NNLIB_OK ||
      nnlib_layer_get_param(l, 1, &w_hh, NULL) != NNLIB_OK)
    return -1;
  int gh = (int)nnlib_tensor_get_dim(w_ih, 0), f = (int)nnlib_tensor_get_dim(w_ih, 1);
  int h = (int)nnlib_tensor_get_dim(w_hh, 1), i = (int)index, rows = n * steps;
  float step_beta = nnlib_layer_get_kind(l) == NNLIB_LAYER_GRU ? 0.0f : 1.0f;
  count = push(out, count, cap, (bench_gemm){"forward", i, 'N', 'T', rows, gh,
                                             f, 1.0f, 0.0f, 1});
  for (int t = 1; t < steps; t++)
    count = push(out, count, cap, (bench_gemm){"forward", i, 'N', 'T', n, gh,
                                               h, 1.0f, step_beta, 1});
  if (!training)
    return count;
  for (int t = 1; t < steps; t++)
    count = push(out, count, cap, (bench_gemm){"input_grad", i, 'N', 'N', n,
                                               h, gh, 1.0f, 1.0f - step_beta,
                                               1});
  if (index > 0)
    count = push(out, count, cap, (bench_gemm){"input_grad", i, 'N', 'N', rows,
                                               f, gh, 1.0f, 0.0f, 1});
  float alpha = sgd_fused ? -0.01f : 1.0f, beta = sgd_fused ? 1.0f : 0.0f;
  count = push(out, count, cap, (bench_gemm){"weight_grad", i, 'T', 'N', gh, f,
                                             rows, alpha, beta, 1});
  return push(out, count, cap, (bench_gemm){"weight_grad", i, 'T', 'N', gh, h,
                                            rows, alpha, beta, 1});
}

/* Samples conv2d lowers at once for a batch of n (the model's maximum) on
 * the BLAS threads now set: src/layers/conv2d.c chunk_samples with its
 * constants, kept in step by hand. per_sample: the floats of col and Z per
 * sample, (K + Co) P. */
static int conv_chunk(int64_t per_sample, int64_t p, int64_t n) {
  const int64_t whole = ((int64_t)16 << 20) / 4;
  const int64_t budget = ((int64_t)2 << 20) / 4;
  const int64_t fill = ((int64_t)8 << 20) / 4; /* with several threads */
  if (per_sample <= whole / n)
    return (int)n;
  int64_t chunk = (1024 + p - 1) / p, fits = budget / per_sample;
  chunk = chunk < fits ? chunk : fits;
  if (nnlib_get_num_threads() > 1 && fill / per_sample > chunk)
    chunk = fill / per_sample;
  chunk = chunk < n ? chunk : n;
  return chunk > 1 ? (int)chunk : 1;
}

/* conv2d (src/layers/conv2d.c), W [Co, C, kH, kW] as [Co, K], K = C kH kW,
 * P = OH OW output positions, the batch lowered in chunks of m samples
 * (conv_chunk: n / m chunks of m, then one of the rest), per chunk:
 *   forward      Z = W col        NN  [Co,K] x [K,m*P]
 *   weight_grad  dW (+)= dZ col^T NT  [Co,m*P] x [m*P,K]  (beta 0 for the
 *                                     first chunk, then 1; plain SGD then
 *                                     updates W in a pass of its own)
 *   input_grad   dcol = W^T dZ    TN  [K,Co] x [Co,m*P]   (not layer 0) */
static int conv_gemms(nnlib_layer *l, int index, int n, bool training,
                      bench_gemm *out, int count, int cap) {
  nnlib_tensor *w = NULL;
  int64_t dims[NNLIB_MAX_RANK];
  size_t rank = 0;
  if (nnlib_layer_get_param(l, 0, &w, NULL) != NNLIB_OK ||
      nnlib_layer_get_output_shape(l, dims, NNLIB_MAX_RANK, &rank) !=
          NNLIB_OK ||
      rank != 3)
    return -1;
  int co = (int)nnlib_tensor_get_dim(w, 0);
  int k = (int)(nnlib_tensor_get_size(w) / co), p = (int)(dims[1] * dims[2]);
  int m = conv_chunk((int64_t)(k + co) * p, p, n);
  /* chunk sizes in columns, and how many chunks of each */
  int cols[2] = {m * p, n % m * p}, times[2] = {n / m, n % m > 0};
  for (int c = 0; c < 2; c++)
    if (times[c] > 0)
      count = push(out, count, cap, (bench_gemm){"forward", index, 'N', 'N',
                                                 co, cols[c], k, 1.0f, 0.0f,
                                                 times[c]});
  if (!training)
    return count;
  count = push(out, count, cap, (bench_gemm){"weight_grad", index, 'N', 'T',
                                             co, k, cols[0], 1.0f, 0.0f, 1});
  for (int c = 0; c < 2; c++)
    if (times[c] - (c == 0) > 0)
      count = push(out, count, cap, (bench_gemm){"weight_grad", index, 'N',
                                                 'T', co, k, cols[c], 1.0f,
                                                 1.0f, times[c] - (c == 0)});
  for (int c = 0; c < 2 && index > 0; c++)
    if (times[c] > 0)
      count = push(out, count, cap, (bench_gemm){"input_grad", index, 'T', 'N',
                                                 k, cols[c], co, 1.0f, 0.0f,
                                                 times[c]});
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
    case NNLIB_LAYER_RNN:
    case NNLIB_LAYER_LSTM:
    case NNLIB_LAYER_GRU:
      count = recurrent_gemms(model, i, (int)n, training, sgd_fused, out,
                              count, cap);
      if (count < 0)
        return -1;
      break;
    case NNLIB_LAYER_CONV2D:
      count = conv_gemms(l, (int)i, (int)n, training, out, count, cap);
      if (count < 0)
        return -1;
      break;
    case NNLIB_LAYER_ACTIVATION:
    case NNLIB_LAYER_FLATTEN:
    case NNLIB_LAYER_DROPOUT:
    case NNLIB_LAYER_MAXPOOL2D:
    case NNLIB_LAYER_MINPOOL2D:
    case NNLIB_LAYER_AVGPOOL2D:
    case NNLIB_LAYER_GLOBAL_AVGPOOL:
    case NNLIB_LAYER_BATCHNORM:
      break; /* elementwise or windowed passes: no GEMM */
    default:
      return -1; /* a kind this file does not know */
    }
  }
  return count < cap ? count : cap;
}

double bench_gemm_flops(const bench_gemm *g, int count) {
  double flops = 0.0;
  for (int i = 0; i < count; i++)
    flops += 2.0 * g[i].m * (double)g[i].n * g[i].k * g[i].repeat;
  return flops;
}
