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
} bench_model_def;

/* The table: mlp-small, mlp-large, cnn and lstm. */
extern const bench_model_def bench_models[];
extern const size_t bench_model_count;
/* A graph model, for the memory benchmark only. */
extern const bench_model_def bench_resnet;
const bench_model_def *bench_model_find(const char *name);

/* One sgemm as the library issues it: C[m,n] = alpha op(A) op(B) + beta C,
 * row-major, trans 'N' or 'T'; issued `repeat` times in a row (a layer
 * that lowers its batch in chunks issues one per chunk). */
typedef struct bench_gemm {
  const char *role; /* "forward", "weight_grad", "input_grad" */
  int layer;        /* index of the layer in the model */
  char ta, tb;
  int m, n, k;
  float alpha, beta;
  int repeat;
} bench_gemm;

/* The GEMMs a compiled model runs on a batch of n: forward only
 * (training = false) or forward and backward. sgd_fused: the weight update
 * of plain SGD is folded into the weight-gradient GEMM (beta = 1, alpha =
 * -lr), as the library does. Returns the count written (at most cap), or
 * -1 for a layer kind whose GEMMs this file does not know yet. */
int bench_model_gemms(nnlib_model *model, int64_t n, bool training,
                      bool sgd_fused, bench_gemm *out, int cap);

/* 2 m n k (times repeat) summed over the list. */
double bench_gemm_flops(const bench_gemm *g, int count);

#endif
