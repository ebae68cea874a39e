/* fit.c - data-parallel fit: every rank draws the same permutation of the
 * data set from the same seed, cuts it into global batches, and takes its
 * own contiguous share of each, so the shares never overlap and together
 * they are the epoch. */
#include "mpi_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

nnlib_status nnlib_mpi_fit_options_init(nnlib_mpi_fit_options *o) {
  if (o == NULL)
    return nnlib_mpi__error(NNLIB_ERR_INVALID_ARGUMENT,
                            "nnlib_mpi_fit_options_init: options is NULL");
  memset(o, 0, sizeof *o);
  o->struct_size = sizeof *o;
  o->epochs = 1;
  o->shuffle = 1;
  o->seed = 1;
  return NNLIB_OK;
}

/* splitmix64 (Steele, Lea, Flood 2014): a full-period 64-bit stream; every
 * rank running it from the same seed gets the same numbers. */
static uint64_t next_random(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* Fisher-Yates. The modulo's bias is below n / 2^64: irrelevant here. */
static void shuffle(int64_t *order, int64_t n, uint64_t *state) {
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = (int64_t)(next_random(state) % (uint64_t)(i + 1));
    int64_t t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
}

/* One rank's view of a fit. */
typedef struct fit_plan {
  nnlib_mpi_fit_options o;
  int64_t samples, max_share;
  const float *x, *t;
  int64_t x_stride, t_stride;          /* floats per sample */
  int64_t x_shape[NNLIB_MAX_RANK], t_shape[NNLIB_MAX_RANK];
  size_t x_rank, t_rank;
  int64_t *order;                      /* owned */
  float *batch_x, *batch_t;            /* owned: this rank's share */
  nnlib_tensor *view_x, *view_t;       /* over them, for view_n samples */
  int64_t view_n;
} fit_plan;

static void plan_free(fit_plan *p) {
  free(p->order);
  free(p->batch_x);
  free(p->batch_t);
  nnlib_tensor_free(p->view_x);
  nnlib_tensor_free(p->view_t);
}

static nnlib_status read_options(const nnlib_mpi_fit_options *in,
                                 nnlib_mpi_fit_options *o) {
  nnlib_mpi_fit_options_init(o);
  if (in == NULL)
    return NNLIB_OK;
  size_t given = in->struct_size;
  if (given < sizeof(size_t))
    return nnlib_mpi__error(NNLIB_ERR_STRUCT_SIZE,
                            "nnlib_mpi_fit: struct_size %zu is too small "
                            "(call nnlib_mpi_fit_options_init first)",
                            given);
  /* a newer caller's struct is fine while its extra fields are unset */
  for (size_t i = sizeof *o; i < given; i++)
    if (((const unsigned char *)in)[i] != 0)
      return nnlib_mpi__error(NNLIB_ERR_STRUCT_SIZE,
                              "nnlib_mpi_fit: struct_size %zu is larger than "
                              "this library knows (%zu) and the extra fields "
                              "are set",
                              given, sizeof *o);
  memcpy(o, in, given < sizeof *o ? given : sizeof *o);
  o->struct_size = sizeof *o;
  return NNLIB_OK;
}

static nnlib_status copy_shape(const nnlib_tensor *t, int64_t *shape,
                               size_t *rank, int64_t *stride) {
  *rank = nnlib_tensor_get_rank(t);
  memcpy(shape, nnlib_tensor_get_shape(t), *rank * sizeof *shape);
  *stride = nnlib_tensor_get_size(t) / shape[0];
  return NNLIB_OK;
}

static nnlib_status check_args(nnlib_mpi *m, nnlib_model *model,
                               const nnlib_tensor *x,
                               const nnlib_tensor *target, fit_plan *p) {
  if (model == NULL || x == NULL || target == NULL)
    return nnlib_mpi__error(NNLIB_ERR_INVALID_ARGUMENT,
                            "rank %d: nnlib_mpi_fit: model, x or target is "
                            "NULL",
                            m->rank);
  int64_t max_batch = nnlib_model_get_max_batch(model);
  if (max_batch < 1 || nnlib_model_get_optimizer(model) == NULL)
    return nnlib_mpi__error(NNLIB_ERR_WRONG_STATE,
                            "rank %d: nnlib_mpi_fit: the model is not "
                            "compiled with an optimizer",
                            m->rank);
  if (p->o.batch_size == 0)
    p->o.batch_size = max_batch;
  if (p->o.epochs < 0 || p->o.batch_size < 1 ||
      (p->o.shuffle != 0 && p->o.shuffle != 1))
    return nnlib_mpi__error(NNLIB_ERR_INVALID_ARGUMENT,
                            "rank %d: nnlib_mpi_fit: epochs %lld, batch_size "
                            "%lld, shuffle %d",
                            m->rank, (long long)p->o.epochs,
                            (long long)p->o.batch_size, p->o.shuffle);
  p->max_share = (p->o.batch_size + m->size - 1) / m->size;
  if (p->max_share > max_batch)
    return nnlib_mpi__error(NNLIB_ERR_TOO_LARGE,
                            "rank %d: nnlib_mpi_fit: a share of %lld samples "
                            "exceeds the compiled maximum batch of %lld",
                            m->rank, (long long)p->max_share,
                            (long long)max_batch);
  p->samples = nnlib_tensor_get_dim(x, 0);
  if (nnlib_tensor_get_dim(target, 0) != p->samples)
    return nnlib_mpi__error(NNLIB_ERR_SHAPE_MISMATCH,
                            "rank %d: nnlib_mpi_fit: %lld inputs, %lld targets",
                            m->rank, (long long)p->samples,
                            (long long)nnlib_tensor_get_dim(target, 0));
  return NNLIB_OK;
}

/* A share never holds more than the data set, nor do its buffers (a model
 * compiled for a huge batch fits a few samples cheaply, as nnlib's fit). */
static nnlib_status allocate(nnlib_mpi *m, fit_plan *p) {
  size_t share = (size_t)(p->max_share < p->samples ? p->max_share
                                                     : p->samples);
  p->order = malloc((size_t)p->samples * sizeof *p->order);
  p->batch_x = malloc(share * (size_t)p->x_stride * sizeof(float));
  p->batch_t = malloc(share * (size_t)p->t_stride * sizeof(float));
  if (p->order == NULL || p->batch_x == NULL || p->batch_t == NULL)
    return nnlib_mpi__error(NNLIB_ERR_OUT_OF_MEMORY,
                            "rank %d: nnlib_mpi_fit: no memory for the order "
                            "of %lld samples and a share of %lld",
                            m->rank, (long long)p->samples,
                            (long long)p->max_share);
  for (int64_t i = 0; i < p->samples; i++)
    p->order[i] = i;
  return NNLIB_OK;
}

/* Everything a rank can check alone; agreed on afterwards. */
static nnlib_status prepare(nnlib_mpi *m, nnlib_model *model,
                            const nnlib_tensor *x, const nnlib_tensor *target,
                            const nnlib_mpi_fit_options *options,
                            fit_plan *p) {
  nnlib_status st = read_options(options, &p->o);
  if (st == NNLIB_OK)
    st = check_args(m, model, x, target, p);
  if (st != NNLIB_OK)
    return st;
  copy_shape(x, p->x_shape, &p->x_rank, &p->x_stride);
  copy_shape(target, p->t_shape, &p->t_rank, &p->t_stride);
  p->x = nnlib_tensor_get_data_const(x);
  p->t = nnlib_tensor_get_data_const(target);
  return allocate(m, p);
}

/* Tensors over the share buffers for n samples, rebuilt only when n
 * changes (at most twice an epoch). */
static nnlib_status share_views(nnlib_mpi *m, fit_plan *p, int64_t n) {
  if (p->view_n == n)
    return NNLIB_OK;
  nnlib_tensor_free(p->view_x);
  nnlib_tensor_free(p->view_t);
  p->view_x = p->view_t = NULL;
  p->view_n = 0;
  p->x_shape[0] = p->t_shape[0] = n;
  nnlib_status st = nnlib_tensor_wrap(&p->view_x, p->batch_x, p->x_shape,
                                      p->x_rank);
  if (st == NNLIB_OK)
    st = nnlib_tensor_wrap(&p->view_t, p->batch_t, p->t_shape, p->t_rank);
  if (st != NNLIB_OK)
    return nnlib_mpi__from_nnlib(m, st, "nnlib_mpi_fit: wrapping a share");
  p->view_n = n;
  return NNLIB_OK;
}

/* Copies this rank's share of order[first, first + n) into the buffers. */
static void gather(const fit_plan *p, int64_t first, int64_t n) {
  size_t xb = (size_t)p->x_stride * sizeof(float);
  size_t tb = (size_t)p->t_stride * sizeof(float);
  for (int64_t i = 0; i < n; i++) {
    int64_t s = p->order[first + i];
    memcpy(p->batch_x + i * p->x_stride, p->x + s * p->x_stride, xb);
    memcpy(p->batch_t + i * p->t_stride, p->t + s * p->t_stride, tb);
  }
}

/* One global batch [start, start + n) of the order. `pending` carries a
 * failure (a cancel on rank 0) into the step's agreement. */
static nnlib_status fit_batch(nnlib_mpi *m, nnlib_model *model, fit_plan *p,
                              int64_t start, int64_t n, nnlib_status pending,
                              double *loss) {
  int64_t first = 0, count = 0;
  nnlib_mpi_get_share(m, n, &first, &count);
  if (pending == NNLIB_OK && count > 0) {
    gather(p, start + first, count);
    pending = share_views(m, p, count);
  }
  bool some = count > 0 && pending == NNLIB_OK;
  return nnlib_mpi__step(m, model, some ? p->view_x : NULL,
                         some ? p->view_t : NULL, pending, loss);
}

static nnlib_status fit_epoch(nnlib_mpi *m, nnlib_model *model, fit_plan *p,
                              nnlib_progress *pr) {
  int64_t bs = p->o.batch_size;
  double sum = 0.0;
  nnlib_status pending = NNLIB_OK;
  pr->batches = (p->samples + bs - 1) / bs;
  pr->samples = p->samples;
  for (int64_t b = 0; b < pr->batches; b++) {
    int64_t start = b * bs;
    int64_t n = p->samples - start < bs ? p->samples - start : bs;
    double loss = NAN;
    nnlib_status st = fit_batch(m, model, p, start, n, pending, &loss);
    if (st != NNLIB_OK)
      return st;
    sum += loss * (double)n;
    pr->batch = b;
    pr->samples_done = start + n;
    pr->loss = (float)loss;
    pr->epoch_loss = (float)(sum / (double)(start + n));
    if (m->rank == 0 && p->o.progress != NULL &&
        p->o.progress(pr, p->o.user) != 0)
      pending = nnlib_mpi__error(NNLIB_ERR_CANCELLED,
                                 "rank 0: nnlib_mpi_fit: stopped by the "
                                 "progress callback in epoch %lld, batch %lld",
                                 (long long)pr->epoch, (long long)b);
  }
  return nnlib_mpi__agree(m, pending);
}

static nnlib_status fit_loop(nnlib_mpi *m, nnlib_model *model, fit_plan *p) {
  uint64_t state = p->o.seed;
  nnlib_progress pr = {sizeof pr, 0, p->o.epochs, 0, 0, 0, 0, 0.0f, 0.0f};
  for (int64_t e = 0; e < p->o.epochs; e++) {
    if (p->o.shuffle)
      shuffle(p->order, p->samples, &state);
    pr.epoch = e;
    nnlib_status st = fit_epoch(m, model, p, &pr);
    if (st != NNLIB_OK)
      return st;
    if (p->o.epoch_losses != NULL)
      p->o.epoch_losses[e] = pr.epoch_loss;
  }
  /* each rank's running statistics saw only its shares: their mean makes
   * the replicas equal again */
  return p->o.epochs > 0 ? nnlib_mpi__sync_buffers(m, model, -1) : NNLIB_OK;
}

nnlib_status nnlib_mpi_fit(nnlib_mpi *m, nnlib_model *model,
                           const nnlib_tensor *x, const nnlib_tensor *target,
                           const nnlib_mpi_fit_options *options) {
  if (m == NULL)
    return nnlib_mpi__error(NNLIB_ERR_INVALID_ARGUMENT,
                            "nnlib_mpi_fit: context is NULL");
  fit_plan p;
  memset(&p, 0, sizeof p);
  nnlib_status st = nnlib_mpi__agree(m, prepare(m, model, x, target, options,
                                                &p));
  if (st == NNLIB_OK) {
    int64_t same[] = {p.samples,   p.o.epochs,         p.o.batch_size,
                      p.o.shuffle, (int64_t)p.o.seed,
                      nnlib_mpi__buffer_floats(model)};
    st = nnlib_mpi__check_same(m, same, 6, NNLIB_ERR_INVALID_ARGUMENT,
                               "nnlib_mpi_fit: samples, epochs, batch size, "
                               "shuffle, seed and layer buffer sizes");
  }
  if (st == NNLIB_OK)
    st = fit_loop(m, model, &p);
  plan_free(&p);
  return st;
}
