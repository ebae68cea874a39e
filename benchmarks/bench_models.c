/* bench_models.c - the models of the benchmark suite (issue 9) and the
 * GEMM list each runs, call for call: shapes, transposes, alpha, beta and
 * leading dimensions. nnlib-bench checks it against the calls a step
 * really makes (bench_replay.c) and replays those; the list attributes
 * each call to its layer and role and gives the gemm kind its shapes.
 *
 * The convolutions' GEMMs are in conv_gemms, the recurrent layers' in
 * recurrent_gemms, the linear layers' in dense_gemms and attention's (per
 * sample and head, on strided columns of its packed QKV rows) in
 * attention_gemms. */
#include "bench_models.h"

#include <math.h>
#include <stdlib.h>
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

/* The same sequences through a GRU: gru:128 (last step), dense:10. */
static nnlib_status build_gru(nnlib_model *m) {
  nnlib_layer *l = NULL;
  TRY(nnlib_gru_create(&l, 28, 128, 1, 0));
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
    {128}, 1, {1, 28, 28}, 3, 10, NNLIB_LOSS_SOFTMAX_CE, build_resnet, NULL,
    0, NULL};

/* The character GPT of examples/char_gpt.c at its defaults (context 128,
 * width 128, 4 blocks of 4 heads, MLP 512): 875,520 parameters. */
#define GPT_SPEC                                                               \
  "input:128,embedding:256:128,positional,transformer:128:4:causal,"           \
  "transformer:128:4:causal,transformer:128:4:causal,"                         \
  "transformer:128:4:causal,layernorm,linear:256"

static nnlib_status build_gpt(nnlib_model *m) {
  return nnlib_model_add_spec(m, GPT_SPEC);
}

const bench_model_def bench_models[] = {
    {"mlp-small", "784-16-10 sigmoid, MSE", {32, 256}, 2, {784}, 1, 10,
     NNLIB_LOSS_MSE, build_mlp_small, NULL, 0, NULL},
    {"mlp-large", "784-1024-1024-10 ReLU, softmax CE", {64, 256, 1024}, 3,
     {784}, 1, 10, NNLIB_LOSS_SOFTMAX_CE, build_mlp_large, NULL, 0, NULL},
    {"cnn", "examples/fashion_cnn.c: conv32-bn-pool, conv64-bn-pool, 256, 10",
     {64, 256}, 2, {1, 28, 28}, 3, 10, NNLIB_LOSS_SOFTMAX_CE, build_cnn, NULL, 0, NULL},
    {"lstm", "lstm:128,last,dense:10 over 28 steps of 28, softmax CE",
     {64, 256}, 2, {28, 28}, 2, 10, NNLIB_LOSS_SOFTMAX_CE, build_lstm, NULL, 0, NULL},
    {"gru", "gru:128,last,dense:10 over 28 steps of 28, softmax CE",
     {64, 256}, 2, {28, 28}, 2, 10, NNLIB_LOSS_SOFTMAX_CE, build_gru, NULL, 0, NULL},
    {"gpt", GPT_SPEC, {32}, 1, {128}, 1, 256, NNLIB_LOSS_SOFTMAX_CE,
     build_gpt, NULL, 256, "adamw"},
};
const size_t bench_model_count = sizeof bench_models / sizeof bench_models[0];

const bench_model_def *bench_model_find(const char *name) {
  for (size_t i = 0; i < bench_model_count; i++)
    if (strcmp(bench_models[i].name, name) == 0)
      return &bench_models[i];
  return NULL;
}

bench_gemm bench_gemm_plain(const char *role, int layer, char ta, char tb,
                            int m, int n, int k, float alpha, float beta,
                            int repeat) {
  return (bench_gemm){.role = role, .layer = layer, .ta = ta, .tb = tb,
                      .m = m, .n = n, .k = k, .alpha = alpha, .beta = beta,
                      .repeat = repeat};
}

/* The list being written: entries past cap are counted, not stored. */
typedef struct gemm_list {
  bench_gemm *out;
  int count, cap;
} gemm_list;

static void push(gemm_list *list, bench_gemm g) {
  if (list->count < list->cap)
    list->out[list->count] = g;
  list->count++;
}

/* What every layer kind's GEMMs depend on besides the layer. */
typedef struct layer_call {
  nnlib_model *model;
  nnlib_layer *l;
  int index;      /* of the layer in the model                         */
  int n;          /* samples in the batch                              */
  bool training;
  bool sgd_fused;
  bool dx;        /* backward computes the input's gradient            */
  int first_buf;  /* attention: its first shared buffer                */
} layer_call;

/* Rows of the layer's GEMMs: the samples for a dense layer, every row of
 * the last axis (n times the leading dimensions of the output) for a
 * linear layer (src/layers/dense.c, gemm_rows). */
static int dense_rows(const layer_call *c) {
  if (nnlib_layer_get_kind(c->l) != NNLIB_LAYER_LINEAR)
    return c->n;
  int64_t dims[NNLIB_MAX_RANK], rows = c->n;
  size_t rank = 0;
  if (nnlib_layer_get_output_shape(c->l, dims, NNLIB_MAX_RANK, &rank) !=
      NNLIB_OK)
    return -1;
  for (size_t i = 0; i + 1 < rank; i++)
    rows *= dims[i];
  return (int)rows;
}

/* dense_forward's beta: with a bias and no activation applied after the
 * product (none fused into the layer, or an identity), Y starts as the
 * bias rows and the product adds onto them (beta 1); else beta 0. Not for
 * the transposed product, which always has beta 0. */
static float dense_forward_beta(const layer_call *c) {
  nnlib_tensor *b = NULL;
  if (nnlib_layer_get_param(c->l, 1, &b, NULL) != NNLIB_OK)
    return 0.0f;
  size_t next = (size_t)c->index + 1;
  if (next >= nnlib_model_get_layer_count(c->model))
    return 1.0f;
  nnlib_layer_profile p = {.struct_size = sizeof p};
  const nnlib_layer *a = nnlib_model_get_layer(c->model, next);
  bool fused =
      nnlib_model_get_layer_profile(c->model, next, &p) == NNLIB_OK && p.fused;
  return fused && strcmp(nnlib_layer_get_name(a), "identity") != 0 ? 0.0f
                                                                   : 1.0f;
}

/* Dense and linear (src/layers/dense.c), W [out, in], N rows:
 *   forward      Y  = X W^T   NT  [N,in] x [in,out] (onto the bias rows,
 *                             see dense_forward_beta)
 *                or, for 2 <= N <= 128 rows and out >= 2N (and N out at
 *                most 2^22), Y^T = W X^T  NT  [out,in] x [in,N]
 *   input_grad   dX = dZ W    NN  [N,out] x [out,in] (not on a model input)
 *   weight_grad  dW = dZ^T X  TN  [out,N] x [N,in]   (or W -= lr dZ^T X) */
static int dense_gemms(const layer_call *c, bool backward, gemm_list *list) {
  nnlib_tensor *w = NULL;
  int n = dense_rows(c);
  if (n < 0 || nnlib_layer_get_param(c->l, 0, &w, NULL) != NNLIB_OK)
    return -1;
  int o = (int)nnlib_tensor_get_dim(w, 0), in = (int)nnlib_tensor_get_dim(w, 1);
  int index = c->index;
  if (!backward) {
    bool transposed = n >= 2 && n <= 128 && 2 * n <= o &&
                      (int64_t)n * o <= ((int64_t)1 << 22);
    push(list, transposed
                   ? bench_gemm_plain("forward", index, 'N', 'T', o, n, in,
                                      1.0f, 0.0f, 1)
                   : bench_gemm_plain("forward", index, 'N', 'T', n, o, in,
                                      1.0f, dense_forward_beta(c), 1));
    return 0;
  }
  if (c->dx)
    push(list, bench_gemm_plain("input_grad", index, 'N', 'N', n, in, o, 1.0f,
                            0.0f, 1));
  push(list, bench_gemm_plain("weight_grad", index, 'T', 'N', o, in, n,
                          c->sgd_fused ? -0.01f : 1.0f,
                          c->sgd_fused ? 1.0f : 0.0f, 1));
  return 0;
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

/* The same GEMM on strided views: leading dimensions lda, ldb, ldc. */
static bench_gemm strided(bench_gemm g, int lda, int ldb, int ldc) {
  g.a.ld = lda;
  g.b.ld = ldb;
  g.c.ld = ldc;
  return g;
}

/* rnn, lstm, gru (src/layers/recurrent.c), W_ih [G*H, F], W_hh [G*H, H],
 * T steps from a zero initial state; the gates P of all steps are one
 * [n, T, GH] array and the previous states one [n, T, H] array, so the
 * products of step t read and write their rows of step t (leading
 * dimensions T H and T GH) and one W_hh:
 *   forward      P = X W_ih^T        NT  [n*T,F] x [F,GH]   once
 *                h_{t-1} W_hh^T      NN  [n,H] x [H,GH]     per step after
 *                                        the first, lda T H, ldc T GH,
 *                                        from W_hh^T (ldb GH) made for 4
 *                                        such steps and more, else NT
 *                                        from W_hh (ldb H),
 *                                        per lane of samples (lane by
 *                                        lane: recurrent_lanes);
 *                                        added to P (beta 1); gru adds
 *                                        its r and z columns to P ([n,H]
 *                                        x [H,2H], beta 1) and keeps n's
 *                                        apart ([n,H] x [H,H], beta 0)
 *   input_grad   dh_{t-1} = dP_t W_hh NN [n,GH] x [GH,H]   per step after
 *                                        the first, lda T GH (gru adds:
 *                                        beta 1), per lane as forward's
 *                dX = dP W_ih        NN  [n*T,GH] x [GH,F]  (not layer 0)
 *   weight_grad  dW_ih = dP^T X      TN  [GH,n*T] x [n*T,F]
 *                dW_hh = dP^T Hprev  TN  [GH,n*T] x [n*T,H] (or the
 *                                        plain-SGD update in both)      */
/* The steps' lanes, forward's and backward's (src/layers/recurrent.c,
 * nnlib__recurrent_run_steps): as many as the threads, each of at least 32
 * samples, up to 64; lane j from sample n j / lanes rounded down to a
 * multiple of 16. */
static int recurrent_lanes(int n) {
  int lanes = nnlib_get_num_threads();
  lanes = lanes < n / 32 ? lanes : n / 32;
  lanes = lanes < 64 ? lanes : 64;
  return lanes > 1 ? lanes : 1;
}

static int recurrent_lane_start(int n, int lanes, int lane) {
  return lane == lanes ? n : (int)((int64_t)n * lane / lanes / 16 * 16);
}

static int recurrent_gemms(const layer_call *c, bool backward,
                           gemm_list *list) {
  nnlib_tensor *w_ih = NULL, *w_hh = NULL;
  int steps = input_steps(c->model, (size_t)c->index), n = c->n;
  if (steps < 1 || nnlib_layer_get_param(c->l, 0, &w_ih, NULL) != NNLIB_OK ||
      nnlib_layer_get_param(c->l, 1, &w_hh, NULL) != NNLIB_OK)
    return -1;
  int gh = (int)nnlib_tensor_get_dim(w_ih, 0), f = (int)nnlib_tensor_get_dim(w_ih, 1);
  int h = (int)nnlib_tensor_get_dim(w_hh, 1), i = c->index, rows = n * steps;
  float step_beta =
      nnlib_layer_get_kind(c->l) == NNLIB_LAYER_GRU ? 0.0f : 1.0f;
  if (!backward) {
    push(list, bench_gemm_plain("forward", i, 'N', 'T', rows, gh, f, 1.0f, 0.0f,
                            1));
    /* W_hh^T [H, GH] made for 4 step products and more: B as stored */
    bool rows_of_t = steps - 1 >= 4;
    char tb = rows_of_t ? 'N' : 'T';
    int ldb = rows_of_t ? gh : h;
    int lanes = recurrent_lanes(n);
    for (int lane = 0; lane < lanes; lane++) {
      int m = recurrent_lane_start(n, lanes, lane + 1) -
              recurrent_lane_start(n, lanes, lane);
      for (int t = 1; t < steps; t++) {
        if (step_beta == 1.0f) {
          push(list, strided(bench_gemm_plain("forward", i, 'N', tb, m, gh, h,
                                              1.0f, 1.0f, 1),
                             steps * h, ldb, steps * gh));
          continue;
        }
        push(list, strided(bench_gemm_plain("forward", i, 'N', tb, m, 2 * h, h,
                                            1.0f, 1.0f, 1),
                           steps * h, ldb, steps * gh));
        push(list, strided(bench_gemm_plain("forward", i, 'N', tb, m, h, h,
                                            1.0f, 0.0f, 1),
                           steps * h, ldb, steps * gh));
      }
    }
    return 0;
  }
  int lanes = recurrent_lanes(n);
  for (int lane = 0; lane < lanes; lane++) {
    int m = recurrent_lane_start(n, lanes, lane + 1) -
            recurrent_lane_start(n, lanes, lane);
    for (int t = 1; t < steps; t++)
      push(list, strided(bench_gemm_plain("input_grad", i, 'N', 'N', m, h, gh,
                                          1.0f, 1.0f - step_beta, 1),
                         steps * gh, h, h));
  }
  if (c->dx)
    push(list, bench_gemm_plain("input_grad", i, 'N', 'N', rows, f, gh, 1.0f,
                            0.0f, 1));
  float alpha = c->sgd_fused ? -0.01f : 1.0f, beta = c->sgd_fused ? 1.0f : 0.0f;
  push(list, bench_gemm_plain("weight_grad", i, 'T', 'N', gh, f, rows, alpha,
                          beta, 1));
  push(list, bench_gemm_plain("weight_grad", i, 'T', 'N', gh, h, rows, alpha,
                          beta, 1));
  return 0;
}

/* Samples conv2d lowers at once for a batch of n (the model's maximum):
 * src/layers/conv2d.c chunk_samples with its constants, kept in step by
 * hand. K rows of col, Co output channels, P
 * positions; per_sample: the floats of col and Z per sample, (K + Co) P. */
static int conv_chunk(int64_t k, int64_t co, int64_t p, int64_t n) {
  if (k < 32) /* THIN_PATCH */
    return 1;
  const int64_t per_sample = (k + co) * p;
  const int64_t whole = ((int64_t)16 << 20) / 4;
  const int64_t budget = ((int64_t)2 << 20) / 4;
  if (per_sample <= whole / n)
    return (int)n;
  int64_t chunk = (1024 + p - 1) / p, fits = budget / per_sample;
  chunk = chunk < fits ? chunk : fits;
  chunk = chunk < n ? chunk : n;
  return chunk > 1 ? (int)chunk : 1;
}

/* Where range `part` of [0, n) cut into `parts` starts (parallel.c). */
static int range_start(int n, int parts, int part) {
  return part * (n / parts) + (part < n % parts ? part : n % parts);
}

/* The `which`-th item of the model's description that starts with
 * `prefix` (the public API has no getter for attention's heads and mask
 * or a convolution's stride and padding), whose items are in node order:
 * what follows the prefix up to the next item; false when there is none. */
static bool spec_item(nnlib_model *model, const char *prefix, int which,
                      char *item, size_t size) {
  size_t needed = 0;
  if (nnlib_model_get_spec(model, NULL, 0, &needed) != NNLIB_OK)
    return false;
  char *text = malloc(needed + 1);
  bool found = false;
  if (text != NULL &&
      nnlib_model_get_spec(model, text, needed + 1, NULL) == NNLIB_OK) {
    const char *at = text;
    for (int i = 0; at != NULL && i <= which; i++) {
      at = strstr(at, prefix);
      if (at != NULL)
        at += strlen(prefix);
    }
    if (at != NULL) {
      size_t len = strcspn(at, ",\n");
      len = len < size - 1 ? len : size - 1;
      memcpy(item, at, len);
      item[len] = '\0';
      found = true;
    }
  }
  free(text);
  return found;
}

/* Inference runs a 3x3 convolution at stride 1, dilation 1 and padding 1
 * with at least 16 input and output channels by Winograd's F(2x2, 3x3)
 * on maps where 16 tiles <= 27 P / 4 (src/layers/conv2d.c,
 * winograd_applies): the layer's description item is "conv:COx3x3:p1"
 * with no stride or dilation. */
static bool conv_is_winograd(const layer_call *c, int co, int in_c, int p,
                             int tiles) {
  int which = 0;
  for (int i = 0; i < c->index; i++)
    which += nnlib_layer_get_kind(nnlib_model_get_layer(c->model, (size_t)i)) ==
             NNLIB_LAYER_CONV2D;
  char item[128];
  if (co < 16 || in_c < 16 || 64 * (int64_t)tiles > 27 * (int64_t)p ||
      !spec_item(c->model, "conv:", which, item, sizeof item))
    return false;
  const char *pad = strstr(item, "x3x3:p1");
  char next = pad != NULL ? pad[strlen("x3x3:p1")] : 'x';
  return (next == '\0' || next == ':' || next == '(') &&
         strstr(item, ":s") == NULL && strstr(item, ":d") == NULL;
}

/* A convolution's forward lanes (src/layers/conv2d.c, lanes_planned and
 * lanes_over): as many as the threads, up to 8 and one per sample; each
 * lane's range of the batch in ceil(range / m) chunks of near-equal size,
 * lane by lane, chunk by chunk; per chunk of s samples `per_chunk`
 * products NN [Co, K] x [K, s cols] (Winograd: 16, K = C; the lowering:
 * 1, K = C kH kW, cols = P). */
static void lane_chunks_push(const layer_call *c, const char *name, int n,
                             int m, int most, int per_chunk, int co, int cols,
                             int k, gemm_list *list) {
  int lanes = nnlib_get_num_threads();
  lanes = lanes < most ? lanes : most;
  lanes = lanes < n ? lanes : n;
  lanes = lanes > 1 ? lanes : 1;
  for (int j = 0; j < lanes; j++) {
    int samples = n / lanes + (j < n % lanes);
    int chunks = (samples + m - 1) / m;
    for (int i = 0; i < chunks; i++) {
      int size = samples / chunks + (i < samples % chunks);
      push(list, bench_gemm_plain(name, c->index, 'N', 'N', co, size * cols, k,
                                  1.0f, 0.0f, per_chunk));
    }
  }
}

/* Its chunks (winograd_chunk): V [16, C, N], M [16, Co, N] and Z [Co, m P]
 * within 2 MB, N = m tiles, tiles = ceil(OH / 2) ceil(OW / 2), in lanes
 * (lane_chunks_push); per chunk the 16 products M_xi = U_xi V_xi, NN
 * [Co,C] x [C,N]; backward's input gradient (winograd_input_grad) the
 * same chunks with C and Co swapped, NN [C,Co] x [Co,N]. */
static void winograd_gemms(const layer_call *c, bool backward, int co, int in_c,
                           int p, int tiles, gemm_list *list) {
  int64_t per_sample = 16 * (int64_t)(in_c + co) * tiles + (int64_t)co * p;
  int m = (int)((((int64_t)2 << 20) / 4) / per_sample);
  m = m < c->n ? m : c->n;
  m = m > 1 ? m : 1;
  if (backward)
    lane_chunks_push(c, "input_grad", c->n, m, 8, 16, in_c, tiles, co, list);
  else
    lane_chunks_push(c, "forward", c->n, m, 8, 16, co, tiles, in_c, list);
}

/* conv2d (src/layers/conv2d.c), W [Co, C, kH, kW] as [Co, K], K = C kH kW,
 * P = OH OW output positions, the batch lowered in chunks of at most m
 * samples (conv_chunk; forward's per lane, lane_chunks_push; backward's
 * over the batch, in parts), per chunk of s samples:
 *   forward      Z = W col        NN  [Co,K] x [K,s*P]
 * and backward, chunk by chunk (src/layers/conv2d.c, backward_run):
 *   weight_grad  dW (+)= dZ col^T NT  [Co,s*P] x [s*P,K]  (beta 0 for the
 *                                     first chunk of a part, then 1; plain
 *                                     SGD then updates W in a pass of its
 *                                     own)
 *   input_grad   dcol = W^T dZ    TN  [K,Co] x [Co,s*P]   (not layer 0) */
static int conv_gemms(const layer_call *c, bool backward, gemm_list *list) {
  nnlib_tensor *w = NULL;
  int64_t dims[NNLIB_MAX_RANK];
  size_t rank = 0;
  if (nnlib_layer_get_param(c->l, 0, &w, NULL) != NNLIB_OK ||
      nnlib_layer_get_output_shape(c->l, dims, NNLIB_MAX_RANK, &rank) !=
          NNLIB_OK ||
      rank != 3)
    return -1;
  int co = (int)nnlib_tensor_get_dim(w, 0), n = c->n, index = c->index;
  int k = (int)(nnlib_tensor_get_size(w) / co), p = (int)(dims[1] * dims[2]);
  int tiles = (int)((dims[1] + 1) / 2 * ((dims[2] + 1) / 2));
  /* Winograd forward, and in training backward's input gradient, when
   * the batch is more than one chunk (src/layers/conv2d.c,
   * winograd_trains) */
  bool winograd = k % 9 == 0 && (!c->training || conv_chunk(k, co, p, n) < n) &&
                  conv_is_winograd(c, co, k / 9, p, tiles);
  if (!backward && winograd) {
    winograd_gemms(c, false, co, k / 9, p, tiles, list);
    return 0;
  }
  if (!backward) {
    /* one-thread chunks on each lane; in inference chunks whose Z [Co,
     * m P] fits 256 KB (src/layers/conv2d.c, forward_chunk) */
    int m = conv_chunk(k, co, p, n);
    if (!c->training) {
      int fits = (int)(((int64_t)256 << 10) / 4 / ((int64_t)co * p));
      fits = fits > 1 ? fits : 1;
      m = fits < m ? fits : m;
    }
    /* a training batch of one chunk: one unit on the first lane */
    lane_chunks_push(c, "forward", n, m, c->training && m >= n ? 1 : 8, 1, co,
                     p, k, list);
    return 0;
  }
  /* backward (src/layers/conv2d.c, backward_run): the batch in C chunks
   * of near-equal size (at most m), cut into V parts of consecutive chunks
   * (one per chunk up to 8, and the parts' dW after the first within 8
   * MB; C a multiple of V where the batch allows); chunk by chunk, its dW (beta
   * 0 for its part's first chunk) and dcol products in turn (a group) */
  int m = conv_chunk(k, co, p, n), wanted = (n + m - 1) / m;
  int64_t dw = (int64_t)co * k * 4, parts = wanted < 8 ? wanted : 8;
  if (parts > 1 + (((int64_t)8 << 20) / dw))
    parts = 1 + (((int64_t)8 << 20) / dw);
  /* as many chunks in every part, where the batch allows */
  int chunks = (int)((wanted + parts - 1) / parts * parts);
  chunks = chunks < n ? chunks : n;
  for (int u = 0, v = 0; u < chunks; u++) {
    int size = range_start(n, chunks, u + 1) - range_start(n, chunks, u);
    bool first = u == range_start(chunks, (int)parts, v);
    if (first)
      v++;
    bool dcol = c->dx && !winograd;
    int group = dcol ? 1000 * (index + 1) + 2 + u : 0;
    bench_gemm wg = bench_gemm_plain("weight_grad", index, 'N', 'T', co, k,
                                     size * p, 1.0f, first ? 0.0f : 1.0f, 1);
    wg.group = group;
    push(list, wg);
    if (!dcol)
      continue;
    bench_gemm ig = bench_gemm_plain("input_grad", index, 'T', 'N', k, size * p,
                                     co, 1.0f, 0.0f, 1);
    ig.group = group;
    push(list, ig);
  }
  if (c->dx && winograd)
    winograd_gemms(c, true, co, k / 9, p, tiles, list);
  return 0;
}

/* ------------------------------------------------------------ attention */

/* The shared buffers of one attention layer, numbered from its first
 * (layer_call.first_buf): the layer's input, its workspace areas (QKV, P
 * per sample and head, O, dQKV, dO, one head's dP), its output and
 * output gradient, the input gradient, the weights and their gradients. */
enum {
  ATT_X, ATT_QKV, ATT_P, ATT_O, ATT_DQKV, ATT_DO, ATT_DP, ATT_Y, ATT_DY,
  ATT_DX, ATT_W_IN, ATT_W_OUT, ATT_G_IN, ATT_G_OUT, ATT_BUFFERS
};

typedef struct attention_shape {
  int t, d, heads, hd;
  bool causal;
} attention_shape;

static bool attention_shape_of(const layer_call *c, attention_shape *s) {
  int64_t dims[NNLIB_MAX_RANK];
  size_t rank = 0;
  int which = 0;
  for (int i = 0; i < c->index; i++)
    which += nnlib_layer_get_kind(nnlib_model_get_layer(c->model, (size_t)i)) ==
             NNLIB_LAYER_ATTENTION;
  if (nnlib_layer_get_output_shape(c->l, dims, NNLIB_MAX_RANK, &rank) !=
          NNLIB_OK ||
      rank != 2)
    return false;
  s->t = (int)dims[0];
  s->d = (int)dims[1];
  char item[128];
  if (!spec_item(c->model, "attention:", which, item, sizeof item))
    return false;
  s->heads = atoi(item);
  s->causal = strstr(item, ":causal") != NULL;
  if (s->heads < 1 || s->d % s->heads != 0)
    return false;
  s->hd = s->d / s->heads;
  return true;
}

/* Samples per group of the layer's passes without dropout: all per-head
 * GEMMs of a group, one softmax pass over its (sample, head) blocks, the
 * next GEMMs; a group holds 16 blocks (samples_per_group in
 * src/layers/attention.c), or the whole batch if smaller. */
static int attention_group(int heads, int n) {
  int group = heads >= 16 ? 1 : (16 + heads - 1) / heads;
  return group < n ? group : n;
}

/* The blocks of the per-head products (score_block in
 * src/layers/attention.c): under the causal mask the queries go in blocks
 * of 32 rows; block [r0, r1) sees keys [0, r1), and key block [r0, r1) is
 * seen from queries [r0, t). Without the mask, one block of all t. */
enum { ATT_CAUSAL_BLOCK = 32 };

typedef struct att_block {
  int r0, r1, keys, from;
} att_block;

static int att_blocks(const attention_shape *s) {
  return s->causal ? (s->t + ATT_CAUSAL_BLOCK - 1) / ATT_CAUSAL_BLOCK : 1;
}

static att_block att_block_at(const attention_shape *s, int i) {
  att_block k = {0, s->t, s->t, 0};
  if (s->causal) {
    k.r0 = ATT_CAUSAL_BLOCK * i;
    k.r1 = k.r0 + ATT_CAUSAL_BLOCK < s->t ? k.r0 + ATT_CAUSAL_BLOCK : s->t;
    k.keys = k.r1;
    k.from = k.r0;
  }
  return k;
}

/* Floats of each shared buffer of an attention layer on a batch of n. */
static void attention_buffer_sizes(const attention_shape *s, int n,
                                   int64_t sizes[ATT_BUFFERS]) {
  int64_t rows = (int64_t)n * s->t, d = s->d, tt = (int64_t)s->t * s->t;
  int64_t per[ATT_BUFFERS] = {
      [ATT_X] = rows * d,      [ATT_QKV] = rows * 3 * d,
      [ATT_P] = n * s->heads * tt, [ATT_O] = rows * d,
      [ATT_DQKV] = rows * 3 * d, [ATT_DO] = rows * d,
      [ATT_DP] = attention_group(s->heads, n) * s->heads * tt,
      [ATT_Y] = rows * d,
      [ATT_DY] = rows * d,     [ATT_DX] = rows * d,
      [ATT_W_IN] = 3 * d * d,  [ATT_W_OUT] = d * d,
      [ATT_G_IN] = 3 * d * d,  [ATT_G_OUT] = d * d};
  memcpy(sizes, per, sizeof per);
}

/* Operand in buffer `which` of the layer at `offset`, leading dimension
 * ld, moving by outer_step per sample and inner_step per head. */
static bench_operand att(const layer_call *c, int which, int64_t offset,
                         int ld, int64_t outer_step, int64_t inner_step) {
  return (bench_operand){c->first_buf + which, ld, offset, outer_step,
                         inner_step};
}

/* One GEMM of the layer whose operands all live in its buffers. */
static bench_gemm att_gemm(const char *role, const layer_call *c, char ta,
                           char tb, int m, int n, int k, float alpha,
                           int repeat, int inner, int group, bench_operand a,
                           bench_operand b, bench_operand out) {
  bench_gemm g =
      bench_gemm_plain(role, c->index, ta, tb, m, n, k, alpha, 0.0f, repeat);
  g.a = a;
  g.b = b;
  g.c = out;
  g.inner = inner;
  g.group = group;
  return g;
}

static bench_gemm with_beta(bench_gemm g, float beta) {
  g.beta = beta;
  return g;
}

/* Attention (src/layers/attention.c) on n samples [T, D], R = n T rows,
 * H heads of hd = D / H columns; the QKV rows hold q | k | v (ld 3D) and
 * head h's columns start at h hd within each; per sample and head
 * (n H calls each), in groups of samples (attention_group): all score
 * GEMMs of a group, then all P V_h, likewise in backward:
 *   forward     QKV = X W_in^T          NT [R,D] x [D,3D]   beta 1 onto
 *                                                           b_in's rows
 *               S = Q_h K_h^T / sqrt hd NT [T,hd] x [hd,T]  ld 3D, 3D -> T
 *               O_h = P V_h             NN [T,T] x [T,hd]   ld T, 3D -> D,
 *                                                           beta 1 onto
 *                                                           the group's
 *                                                           zeroed rows
 *               Y = O W_out^T           NT [R,D] x [D,D]    beta 1 onto
 *                                                           b_out's rows
 *   backward    dW_out = dY^T O         TN [D,R] x [R,D]
 *               dO = dY W_out           NN [R,D] x [D,D]
 *               then per group: dV_h = P^T dO_h (TN, ld T, D -> 3D)
 *               and dP = dO_h V_h^T (NT, ld D, 3D -> T) head by head,
 *               then dQ_h = dS K_h sqrt(hd)^-1 (NN, ld T, 3D -> 3D) and
 *               dK_h = dS^T Q_h sqrt(hd)^-1 (TN, likewise) head by head;
 *               dV, dQ and dK with beta 1 onto the group's zeroed dQKV
 *               dW_in = dQKV^T X        TN [3D,R] x [R,D]
 *               dX = dQKV W_in          NN [R,3D] x [3D,D]  (with dX)
 * Under the causal mask each per-head product goes block by block
 * (att_block: rows and columns shrink to what the mask lets through).
 * Without dropout (the bench's models have none); the scale multiplies
 * as alpha, exactly as the layer passes it. */
static int attention_gemms(const layer_call *c, bool backward,
                           gemm_list *list) {
  attention_shape s;
  if (c->first_buf < 1 || !attention_shape_of(c, &s))
    return -1;
  int t = s.t, d = s.d, hd = s.hd, heads = s.heads, rows = c->n * t;
  int ld3 = 3 * d;
  int64_t tt = (int64_t)t * t, qkv_rows = (int64_t)t * ld3;
  int64_t o_rows = (int64_t)t * d, p_sample = heads * tt;
  float scale = 1.0f / sqrtf((float)hd);
  int group = attention_group(heads, c->n), blocks = att_blocks(&s);
  /* with biases (4 parameter tensors) the projections add onto the bias
   * rows broadcast into their output first */
  float bias_beta = nnlib_layer_get_param_tensor_count(c->l) == 4 ? 1.0f : 0.0f;
  if (!backward) {
    push(list, with_beta(att_gemm("forward", c, 'N', 'T', rows, ld3, d, 1.0f,
                                  1, 0, 0, att(c, ATT_X, 0, d, 0, 0),
                                  att(c, ATT_W_IN, 0, d, 0, 0),
                                  att(c, ATT_QKV, 0, ld3, 0, 0)),
                         bias_beta));
    /* per group of samples: the scores of each (sample, head) block by
     * block, then (after one softmax pass over them) P V_h of each */
    for (int b0 = 0; b0 < c->n; b0 += group) {
      int count = (c->n - b0 < group ? c->n - b0 : group) * heads;
      int64_t q0 = b0 * qkv_rows, p0 = b0 * p_sample, o0 = b0 * o_rows;
      int id = 100000 * (c->index + 1) + 50000 + 2 * (b0 / group) + 1;
      for (int i = 0; i < blocks; i++) {
        att_block k = att_block_at(&s, i);
        push(list, att_gemm("forward", c, 'N', 'T', k.r1 - k.r0, k.keys, hd,
                            scale, count, heads, id,
                            att(c, ATT_QKV, q0 + k.r0 * ld3, ld3, qkv_rows, hd),
                            att(c, ATT_QKV, q0 + d, ld3, qkv_rows, hd),
                            att(c, ATT_P, p0 + k.r0 * t, t, p_sample, tt)));
      }
      for (int i = 0; i < blocks; i++) {
        att_block k = att_block_at(&s, i);
        push(list,
             with_beta(att_gemm("forward", c, 'N', 'N', k.r1 - k.r0, hd, k.keys,
                                1.0f, count, heads, id + 1,
                                att(c, ATT_P, p0 + k.r0 * t, t, p_sample, tt),
                                att(c, ATT_QKV, q0 + 2 * d, ld3, qkv_rows, hd),
                                att(c, ATT_O, o0 + k.r0 * d, d, o_rows, hd)),
                       1.0f));
      }
    }
    push(list, with_beta(att_gemm("forward", c, 'N', 'T', rows, d, d, 1.0f, 1,
                                  0, 0, att(c, ATT_O, 0, d, 0, 0),
                                  att(c, ATT_W_OUT, 0, d, 0, 0),
                                  att(c, ATT_Y, 0, d, 0, 0)),
                         bias_beta));
    return 0;
  }
  push(list, att_gemm("weight_grad", c, 'T', 'N', d, d, rows, 1.0f, 1, 0, 0,
                      att(c, ATT_DY, 0, d, 0, 0), att(c, ATT_O, 0, d, 0, 0),
                      att(c, ATT_G_OUT, 0, d, 0, 0)));
  push(list, att_gemm("input_grad", c, 'N', 'N', rows, d, d, 1.0f, 1, 0, 0,
                      att(c, ATT_DY, 0, d, 0, 0),
                      att(c, ATT_W_OUT, 0, d, 0, 0),
                      att(c, ATT_DO, 0, d, 0, 0)));
  /* per group of samples: dV_h = P^T dO_h and dP = dO_h V_h^T of each
   * (sample, head) block by block, dP into the group's blocks; after one
   * softmax backward pass over them, dQ_h = dS K_h / sqrt(hd) and dK_h =
   * dS^T Q_h / sqrt(hd) of each */
  for (int b0 = 0; b0 < c->n; b0 += group) {
    int count = (c->n - b0 < group ? c->n - b0 : group) * heads;
    int64_t q0 = b0 * qkv_rows, p0 = b0 * p_sample, o0 = b0 * o_rows;
    /* interleaved sets: an id of their own, apart from the neighbours' */
    int first_pair = 100000 * (c->index + 1) + 2 * (b0 / group) + 1;
    for (int i = 0; i < blocks; i++) {
      att_block k = att_block_at(&s, i);
      push(list,
           with_beta(
               att_gemm("input_grad", c, 'T', 'N', k.r1 - k.r0, hd, t - k.from,
                        1.0f, count, heads, first_pair,
                        att(c, ATT_P, p0 + k.from * t + k.r0, t, p_sample, tt),
                        att(c, ATT_DO, o0 + k.from * d, d, o_rows, hd),
                        att(c, ATT_DQKV, q0 + 2 * d + k.r0 * ld3, ld3, qkv_rows,
                            hd)),
               1.0f));
    }
    for (int i = 0; i < blocks; i++) {
      att_block k = att_block_at(&s, i);
      push(list, att_gemm("input_grad", c, 'N', 'T', k.r1 - k.r0, k.keys, hd,
                          1.0f, count, heads, first_pair,
                          att(c, ATT_DO, o0 + k.r0 * d, d, o_rows, hd),
                          att(c, ATT_QKV, q0 + 2 * d, ld3, qkv_rows, hd),
                          att(c, ATT_DP, k.r0 * t, t, p_sample, tt)));
    }
    for (int i = 0; i < blocks; i++) {
      att_block k = att_block_at(&s, i);
      push(list, with_beta(att_gemm("input_grad", c, 'N', 'N', k.r1 - k.r0, hd,
                                    k.keys, scale, count, heads, first_pair + 1,
                                    att(c, ATT_DP, k.r0 * t, t, p_sample, tt),
                                    att(c, ATT_QKV, q0 + d, ld3, qkv_rows, hd),
                                    att(c, ATT_DQKV, q0 + k.r0 * ld3, ld3,
                                        qkv_rows, hd)),
                           1.0f));
    }
    for (int i = 0; i < blocks; i++) {
      att_block k = att_block_at(&s, i);
      push(list,
           with_beta(
               att_gemm(
                   "input_grad", c, 'T', 'N', k.r1 - k.r0, hd, t - k.from,
                   scale, count, heads, first_pair + 1,
                   att(c, ATT_DP, k.from * t + k.r0, t, p_sample, tt),
                   att(c, ATT_QKV, q0 + k.from * ld3, ld3, qkv_rows, hd),
                   att(c, ATT_DQKV, q0 + d + k.r0 * ld3, ld3, qkv_rows, hd)),
               1.0f));
    }
  }
  push(list, att_gemm("weight_grad", c, 'T', 'N', ld3, d, rows, 1.0f, 1, 0, 0,
                      att(c, ATT_DQKV, 0, ld3, 0, 0),
                      att(c, ATT_X, 0, d, 0, 0),
                      att(c, ATT_G_IN, 0, d, 0, 0)));
  if (c->dx)
    push(list, att_gemm("input_grad", c, 'N', 'N', rows, d, ld3, 1.0f, 1, 0,
                        0, att(c, ATT_DQKV, 0, ld3, 0, 0),
                        att(c, ATT_W_IN, 0, d, 0, 0),
                        att(c, ATT_DX, 0, d, 0, 0)));
  return 0;
}

/* ------------------------------------------------------------ the model */

/* True when layer `index` reads a model input directly: backward then
 * computes no input gradient (src/model/passes.c, gradient_target). */
static bool reads_model_input(nnlib_model *model, size_t index) {
  nnlib_layer *l = nnlib_model_get_layer(model, index);
  size_t nodes = nnlib_model_get_node_count(model);
  nnlib_node_info info, in;
  for (size_t v = 0; v < nodes; v++) {
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    if (nnlib_model_get_node(model, v, &info) != NNLIB_OK ||
        info.layer != l)
      continue;
    for (size_t u = 0; u < nodes && info.input_count > 0; u++) {
      memset(&in, 0, sizeof in);
      in.struct_size = sizeof in;
      if (nnlib_model_get_node(model, u, &in) == NNLIB_OK &&
          in.node == info.inputs[0])
        return in.layer == NULL;
    }
  }
  return index == 0;
}

/* The GEMMs of one layer in one pass; -1 for a kind unknown here. */
static int layer_gemms(const layer_call *c, bool backward, gemm_list *list) {
  switch (nnlib_layer_get_kind(c->l)) {
  case NNLIB_LAYER_DENSE:
  case NNLIB_LAYER_LINEAR:
    return dense_gemms(c, backward, list);
  case NNLIB_LAYER_RNN:
  case NNLIB_LAYER_LSTM:
  case NNLIB_LAYER_GRU:
    return recurrent_gemms(c, backward, list);
  case NNLIB_LAYER_CONV2D:
    return conv_gemms(c, backward, list);
  case NNLIB_LAYER_ATTENTION:
    return attention_gemms(c, backward, list);
  case NNLIB_LAYER_ACTIVATION:
  case NNLIB_LAYER_FLATTEN:
  case NNLIB_LAYER_DROPOUT:
  case NNLIB_LAYER_MAXPOOL2D:
  case NNLIB_LAYER_MINPOOL2D:
  case NNLIB_LAYER_AVGPOOL2D:
  case NNLIB_LAYER_GLOBAL_AVGPOOL:
  case NNLIB_LAYER_BATCHNORM:
  case NNLIB_LAYER_ADD:       /* merge layers: elementwise */
  case NNLIB_LAYER_MULTIPLY:
  case NNLIB_LAYER_CONCAT:
  case NNLIB_LAYER_EMBEDDING: /* a gather; backward a scatter-add   */
  case NNLIB_LAYER_POSITIONAL: /* adds its rows                      */
  case NNLIB_LAYER_LAYERNORM: /* row statistics and a scale          */
  case NNLIB_LAYER_TRANSPOSE: /* a strided copy                     */
    return 0; /* elementwise, row-wise or windowed passes: no GEMM */
  default:
    return -1; /* a kind this file does not know */
  }
}

/* Shared buffers for the layers that address them (attention), numbered
 * after those already in `buffers`; first[i] is layer i's first (0:
 * none). false when they do not fit BENCH_MAX_BUFFERS or a layer's shape
 * cannot be read. */
static bool plan_buffers(nnlib_model *model, int n, bench_buffers *buffers,
                         int *first) {
  size_t layers = nnlib_model_get_layer_count(model);
  for (size_t i = 0; i < layers; i++) {
    layer_call c = {model, nnlib_model_get_layer(model, i), (int)i, n,
                    false, false, false, 0};
    first[i] = 0;
    if (nnlib_layer_get_kind(c.l) != NNLIB_LAYER_ATTENTION)
      continue;
    attention_shape s;
    if (buffers == NULL || buffers->count + ATT_BUFFERS > BENCH_MAX_BUFFERS ||
        !attention_shape_of(&c, &s))
      return false;
    first[i] = buffers->count + 1;
    attention_buffer_sizes(&s, n, buffers->floats + buffers->count);
    buffers->count += ATT_BUFFERS;
  }
  return true;
}

int bench_model_gemms(nnlib_model *model, int64_t n, bool training,
                      bool sgd_fused, bench_gemm *out, int cap,
                      bench_buffers *buffers) {
  size_t layers = nnlib_model_get_layer_count(model);
  int *first = calloc(layers ? layers : 1, sizeof *first);
  gemm_list list = {out, 0, cap};
  if (buffers != NULL)
    buffers->count = 0;
  bool ok = first != NULL && plan_buffers(model, (int)n, buffers, first);
  for (int pass = 0; ok && pass < (training ? 2 : 1); pass++)
    for (size_t j = 0; ok && j < layers; j++) {
      size_t i = pass == 0 ? j : layers - 1 - j; /* backward in reverse */
      layer_call c = {model, nnlib_model_get_layer(model, i), (int)i, (int)n,
                      training, sgd_fused, !reads_model_input(model, i),
                      first[i]};
      ok = layer_gemms(&c, pass == 1, &list) == 0;
    }
  free(first);
  if (!ok)
    return -1;
  return list.count;
}

double bench_gemm_flops(const bench_gemm *g, int count) {
  double flops = 0.0;
  for (int i = 0; i < count; i++)
    flops += 2.0 * g[i].m * (double)g[i].n * g[i].k * g[i].repeat;
  return flops;
}
