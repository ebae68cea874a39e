/* bench_models.h - the benchmark models and the GEMMs each one runs. */
#ifndef NNLIB_BENCH_MODELS_H
#define NNLIB_BENCH_MODELS_H

#include <nnlib.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_MAX_BATCHES 4

typedef struct bench_model_def {
  const char *name;        /* --model NAME                                  */
  const char *description; /* "784-16-10 sigmoid, MSE"                     */
  int64_t batches[BENCH_MAX_BATCHES]; /* the batch sizes of the suite        */
  int batch_count;
  int64_t input_shape[3];  /* per sample                                    */
  size_t input_rank;
  int64_t outputs;         /* per sample                                    */
  nnlib_loss loss;
  /* Appends the layers; NULL while the layers it needs do not exist yet
   * (then `missing` says which). */
  nnlib_status (*build)(nnlib_model *m);
  const char *missing;
  /* Language models (since the text layers): vocab > 0 means int32 token
   * ids in [0, vocab) as input and int32 next-token targets, one per
   * position of the input_shape[0] = context positions; outputs is then
   * the vocabulary (logits [context, vocab] per sample). */
  int64_t vocab;
  const char *optim; /* the model's optimizer unless --optim says; NULL: sgd */
} bench_model_def;

/* The table: mlp-small, mlp-large, cnn, lstm and gpt. */
extern const bench_model_def bench_models[];
extern const size_t bench_model_count;
/* A graph model, for the memory benchmark only. */
extern const bench_model_def bench_resnet;
const bench_model_def *bench_model_find(const char *name);

/* Where one operand of a GEMM lives. All zero: a packed buffer of its
 * own (the plain layers). Otherwise it is in shared buffer `buf` (numbered
 * from 1, see bench_buffers) at `offset` floats, with leading dimension
 * `ld` (0: packed), and call r of a repeated GEMM reads it further on by
 * (r / inner) outer_step + (r % inner) inner_step floats: how attention
 * addresses each sample's and head's columns of its packed QKV rows. */
typedef struct bench_operand {
  int buf;
  int ld;
  int64_t offset, outer_step, inner_step;
} bench_operand;

/* One sgemm as the library issues it: C[m,n] = alpha op(A) op(B) + beta C,
 * row-major, trans 'N' or 'T'; issued `repeat` times in a row (a layer
 * that lowers its batch in chunks issues one per chunk, attention one per
 * sample and head). Consecutive GEMMs with the same nonzero `group` run
 * interleaved, call r of each in turn, as attention's per-head products
 * (dV, dP, dQ, dK of one head, then the next head). */
typedef struct bench_gemm {
  const char *role; /* "forward", "weight_grad", "input_grad" */
  int layer;        /* index of the layer in the model */
  char ta, tb;
  int m, n, k;
  float alpha, beta;
  int repeat;
  bench_operand a, b, c; /* zero: own packed buffers */
  int inner;             /* calls per outer step (0: 1) */
  int group;
} bench_gemm;

/* A GEMM on packed buffers of its own. */
bench_gemm bench_gemm_plain(const char *role, int layer, char ta, char tb,
                            int m, int n, int k, float alpha, float beta,
                            int repeat);

#define BENCH_MAX_BUFFERS 96

/* The sizes in floats of the shared buffers the GEMMs address (buffer i
 * is floats[i - 1]); the replay allocates them once, like the layer's own
 * workspace. */
typedef struct bench_buffers {
  int count;
  int64_t floats[BENCH_MAX_BUFFERS];
} bench_buffers;

/* The GEMMs a compiled model runs on a batch of n, in the order of the
 * step: forward over the layers in order, then (training) backward over
 * them in reverse. sgd_fused: the weight update of plain SGD is folded
 * into the weight-gradient GEMM (beta = 1, alpha = -lr), as the library
 * does. buffers (may be NULL for a model without shared operands) gets
 * the shared buffers. Returns the count of the whole list (only the first
 * cap are written when it is larger), or -1 for
 * a layer kind whose GEMMs this file does not know yet. */
int bench_model_gemms(nnlib_model *model, int64_t n, bool training,
                      bool sgd_fused, bench_gemm *out, int cap,
                      bench_buffers *buffers);

/* 2 m n k (times repeat) summed over the list. */
double bench_gemm_flops(const bench_gemm *g, int count);

#endif
