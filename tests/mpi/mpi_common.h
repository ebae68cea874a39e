/* mpi_common.h - models, data and comparisons shared by the MPI tests. */
#ifndef NNLIB_MPI_COMMON_H
#define NNLIB_MPI_COMMON_H

#include "mpi_check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FEATURES 12
#define CLASSES 4
#define SPEC "dense:16,tanh,dense:8,relu,dense:4"

/* A compiled 12-16-8-4 classifier (softmax CE on class indices). */
static inline nnlib_model *make_model(nnlib_optimizer_kind kind, float lr,
                                      uint64_t seed, int64_t max_batch) {
  nnlib_model *m = NULL;
  nnlib_optimizer *opt = NULL;
  nnlib_optimizer_options o;
  int64_t in[1] = {FEATURES};
  REQUIRE_OK(nnlib_model_create(&m));
  REQUIRE_OK(nnlib_model_add_spec(m, SPEC));
  REQUIRE_OK(nnlib_optimizer_options_init(&o, kind));
  o.learning_rate = lr;
  if (kind == NNLIB_OPT_SGD)
    o.momentum = 0.9f;
  REQUIRE_OK(nnlib_optimizer_create(&opt, &o));
  REQUIRE_OK(nnlib_model_compile(m, in, 1, max_batch, NNLIB_LOSS_SOFTMAX_CE,
                                 opt, seed));
  return m;
}

/* The same data set on every rank: features in [-1, 1) from an LCG and a
 * class that depends on them, so that training makes progress. */
typedef struct dataset {
  int64_t samples;
  float *x, *y;
} dataset;

static inline dataset make_data(int64_t samples) {
  dataset d = {samples, malloc((size_t)samples * FEATURES * sizeof(float)),
               malloc((size_t)samples * sizeof(float))};
  if (d.x == NULL || d.y == NULL)
    MPI_Abort(MPI_COMM_WORLD, 1);
  uint32_t state = 12345u;
  for (int64_t i = 0; i < samples * FEATURES; i++) {
    state = state * 1664525u + 1013904223u;
    d.x[i] = (float)(state >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
  }
  for (int64_t i = 0; i < samples; i++) {
    const float *r = d.x + i * FEATURES;
    d.y[i] = (float)((r[0] > 0) + 2 * (r[1] + r[2] > 0));
  }
  return d;
}

static inline void free_data(dataset *d) {
  free(d->x);
  free(d->y);
}

/* Tensors over rows [first, first + n) of the data set (n >= 1). */
static inline void rows(const dataset *d, int64_t first, int64_t n,
                        nnlib_tensor **x, nnlib_tensor **y) {
  int64_t xs[2] = {n, FEATURES}, ys[1] = {n};
  REQUIRE_OK(nnlib_tensor_wrap(x, d->x + first * FEATURES, xs, 2));
  REQUIRE_OK(nnlib_tensor_wrap(y, d->y + first, ys, 1));
}

static inline float *params_of(nnlib_model *m, int64_t *count) {
  float *p = NULL;
  REQUIRE_OK(nnlib_model_get_flat_params(m, &p, NULL, count));
  return p;
}

/* ||a - b|| / ||b||, in double. */
static inline double relative_error(nnlib_model *a, nnlib_model *b) {
  int64_t na = 0, nb = 0;
  const float *pa = params_of(a, &na), *pb = params_of(b, &nb);
  if (na != nb)
    return INFINITY;
  double diff = 0.0, norm = 0.0;
  for (int64_t i = 0; i < na; i++) {
    double d = (double)pa[i] - (double)pb[i];
    diff += d * d;
    norm += (double)pb[i] * (double)pb[i];
  }
  return sqrt(diff) / (norm > 0 ? sqrt(norm) : 1.0);
}

/* Collective: 1 on every rank if every rank's parameters equal rank 0's
 * bit for bit. */
static inline int replicas_identical(nnlib_model *m) {
  int64_t n = 0;
  float *p = params_of(m, &n);
  float *root = malloc((size_t)n * sizeof *root);
  if (root == NULL)
    MPI_Abort(MPI_COMM_WORLD, 1);
  memcpy(root, p, (size_t)n * sizeof *root);
  MPI_Bcast(root, (int)n, MPI_FLOAT, 0, MPI_COMM_WORLD);
  int same = memcmp(root, p, (size_t)n * sizeof *root) == 0, all = 0;
  free(root);
  MPI_Allreduce(&same, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return all;
}

static inline int world_rank(void) {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

#endif
