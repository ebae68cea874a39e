/* fit.c - nnlib_model_fit: epochs of minibatches over a data set, in a
 * new shuffled order each epoch, with validation and early stopping after
 * each epoch. Allocates per call (the sample order, the gather buffers and
 * the best parameters for restore_best), never per step. */
#include "nnlib_internal.h"

#include <math.h>
#include <string.h>

nnlib_status nnlib_fit_options_init_size(nnlib_fit_options *o,
                                         size_t struct_size) {
  nnlib_fit_options d;
  memset(&d, 0, sizeof d);
  d.epochs = 1;
  d.batch_size = 0;
  d.shuffle = 1;
  return nnlib__init_options(o, struct_size, &d, sizeof d,
                             "nnlib_fit_options_init");
}

/* The entry point of programs built against 1.0-1.2 headers (the header's
 * macro of this name passes the caller's sizeof instead): their struct
 * ends at epoch_losses. The parentheses keep the macro out. */
nnlib_status(nnlib_fit_options_init)(nnlib_fit_options *o) {
  return nnlib_fit_options_init_size(
      o, NNLIB__SIZE_THROUGH(nnlib_fit_options, epoch_losses));
}

typedef struct fit_data {
  nnlib__batch whole;         /* every sample: inputs, targets, steps */
  int64_t t_stride;           /* target floats per sample */
  int64_t *order;             /* NULL: in order, zero-copy */
  float *batch_x[NNLIB__MAX_INPUTS], *batch_t; /* gathered shuffled batches */
} fit_data;

static void gather(float *dst, const float *src, const int64_t *order,
                   int64_t n, int64_t stride) {
  size_t bytes = (size_t)stride * sizeof(float);
  for (int64_t i = 0; i < n; i++)
    memcpy(dst + i * stride, src + order[i] * stride, bytes);
}

/* batch = samples [start, start + n) of the epoch's order: straight into
 * the data set when not shuffled, else gathered into fit's batch buffers. */
static void batch_view(const nnlib_model *m, const fit_data *d, int64_t start,
                       int64_t n, nnlib__batch *batch) {
  nnlib__batch_chunk(m, &d->whole, start, n, batch);
  if (d->order == NULL)
    return;
  for (size_t k = 0; k < m->input_count; k++) {
    gather(d->batch_x[k], d->whole.x[k], d->order + start, n,
           nnlib__input_stride(m, k, d->whole.steps));
    batch->x[k] = d->batch_x[k];
  }
  gather(d->batch_t, d->whole.target, d->order + start, n, d->t_stride);
  batch->target = d->batch_t;
}

static nnlib_status fit_epoch(nnlib_model *m, const fit_data *d,
                              int64_t samples, const nnlib_fit_options *o,
                              nnlib_progress *p) {
  int64_t bs = o->batch_size;
  double sum = 0.0;
  p->batches = (samples + bs - 1) / bs;
  p->samples = samples;
  for (int64_t b = 0; b < p->batches; b++) {
    int64_t start = b * bs;
    int64_t n = samples - start < bs ? samples - start : bs;
    nnlib__batch batch;
    batch_view(m, d, start, n, &batch);
    double loss;
    NNLIB_TRY(nnlib__train_batch(m, &batch, &loss));
    sum += loss * (double)n;
    p->batch = b;
    p->samples_done = start + n;
    p->loss = (float)loss;
    p->epoch_loss = (float)(sum / (double)(start + n));
    if (o->progress != NULL && o->progress(p, o->user) != 0)
      return nnlib__error(NNLIB_ERR_CANCELLED,
                          "fit: stopped by the progress callback in epoch "
                          "%lld, batch %lld",
                          (long long)p->epoch, (long long)b);
  }
  return NNLIB_OK;
}

static nnlib_status fit_args(nnlib_model *m, const nnlib_tensor *const *x,
                             size_t count, const nnlib_tensor *target,
                             const nnlib_fit_options *options,
                             nnlib_fit_options *o, fit_data *d) {
  NNLIB_TRY(nnlib__check_trainable(m, "nnlib_model_fit"));
  if (m->optimizer == NULL)
    return nnlib__error(NNLIB_ERR_WRONG_STATE,
                        "nnlib_model_fit: the model has no optimizer");
  nnlib_fit_options_init(o);
  NNLIB_TRY(nnlib__read_options(o, sizeof *o, options, "nnlib_fit_options"));
  if (o->batch_size == 0)
    o->batch_size = m->max_batch;
  NNLIB_CHECK_ARG(o->epochs >= 0, "fit: epochs is %lld, must be >= 0",
                  (long long)o->epochs);
  NNLIB_CHECK_ARG(o->batch_size >= 1, "fit: batch_size is %lld, must be >= 1",
                  (long long)o->batch_size);
  if (o->batch_size > m->max_batch)
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "fit: batch_size %lld exceeds the compiled maximum "
                        "batch of %lld",
                        (long long)o->batch_size, (long long)m->max_batch);
  NNLIB_CHECK_ARG(o->shuffle == 0 || o->shuffle == 1,
                  "fit: shuffle must be 0 or 1");
  NNLIB_TRY(nnlib__check_inputs(m, x, count, 0, &d->whole));
  NNLIB_TRY(nnlib__check_target(m, target, &d->whole));
  d->t_stride = nnlib__target_stride(m, &d->whole);
  return NNLIB_OK;
}

static void free_shuffling(fit_data *d) {
  nnlib__free(d->order);
  nnlib__free(d->batch_t);
  d->order = NULL;
  d->batch_t = NULL;
  for (size_t k = 0; k < NNLIB__MAX_INPUTS; k++) {
    nnlib__free(d->batch_x[k]);
    d->batch_x[k] = NULL;
  }
}

/* The sample order and the buffers shuffled batches are gathered into:
 * allocated per fit call, never per step, and not kept by the model. A
 * batch is never larger than the data set, so neither are the buffers (a
 * model compiled for a huge batch fits a few samples without asking for
 * its maximum batch twice over). */
static nnlib_status alloc_shuffling(const nnlib_model *m, fit_data *d,
                                    int64_t samples, int64_t batch) {
  bool ok = true;
  d->order = nnlib__calloc((size_t)samples, sizeof *d->order);
  for (size_t k = 0; k < m->input_count; k++) {
    int64_t stride = nnlib__input_stride(m, k, d->whole.steps);
    d->batch_x[k] = nnlib__calloc((size_t)(batch * stride), sizeof(float));
    ok = ok && d->batch_x[k] != NULL;
  }
  d->batch_t = nnlib__calloc((size_t)(batch * d->t_stride), sizeof(float));
  if (!ok || d->order == NULL || d->batch_t == NULL) {
    free_shuffling(d);
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "fit: no memory for the shuffled order of %lld samples "
                        "and a gathered batch of %lld",
                        (long long)samples, (long long)batch);
  }
  for (int64_t i = 0; i < samples; i++)
    d->order[i] = i;
  return NNLIB_OK;
}

/* ------------------------------------------- validation, early stopping */

nnlib_status nnlib_validation_options_init_size(nnlib_validation_options *o,
                                                size_t struct_size) {
  nnlib_validation_options d;
  memset(&d, 0, sizeof d);
  return nnlib__init_options(o, struct_size, &d, sizeof d,
                             "nnlib_validation_options_init");
}

/* For programs built against 1.1-1.2 headers, whose struct ends at
 * epochs_run (see nnlib_fit_options_init). */
nnlib_status(nnlib_validation_options_init)(nnlib_validation_options *o) {
  return nnlib_validation_options_init_size(
      o, NNLIB__SIZE_THROUGH(nnlib_validation_options, epochs_run));
}

/* Reads the caller's validation options into *v (defaults where the
 * caller's struct is shorter) and checks them and the tensors' shapes:
 * validation->x, or for several inputs the given tensors. */
static nnlib_status validation_args(const nnlib_model *m,
                                    const nnlib_validation_options *given,
                                    const nnlib_tensor *const *inputs,
                                    nnlib_validation_options *v) {
  nnlib_validation_options_init(v);
  NNLIB_TRY(nnlib__read_options(v, sizeof *v, given,
                                "nnlib_validation_options"));
  if (inputs != NULL)
    NNLIB_CHECK_ARG(v->x == NULL,
                    "fit: validation->x must be NULL when the validation "
                    "inputs are given separately");
  NNLIB_CHECK_ARG((v->x != NULL || inputs != NULL) && v->target != NULL,
                  "fit: validation options need x and target");
  NNLIB_CHECK_ARG(inputs != NULL || m->input_count == 1,
                  "fit: the model has %zu inputs: give the validation "
                  "inputs to nnlib_model_fit_inputs (validation->x holds "
                  "one tensor)",
                  m->input_count);
  NNLIB_CHECK_ARG(v->patience >= 0, "fit: patience is %lld, must be >= 0",
                  (long long)v->patience);
  NNLIB_CHECK_ARG(isfinite(v->min_delta) && v->min_delta >= 0.0f,
                  "fit: min_delta is %g, must be finite and >= 0",
                  (double)v->min_delta);
  NNLIB_CHECK_ARG(v->restore_best == 0 || v->restore_best == 1,
                  "fit: restore_best must be 0 or 1");
  nnlib__batch batch;
  NNLIB_TRY(nnlib__check_inputs(m, inputs != NULL ? inputs : &v->x,
                                m->input_count, 0, &batch));
  return nnlib__check_target(m, v->target, &batch);
}

/* Early stopping's state: the validation options, the best loss so far,
 * its epoch, the epochs since, and (restore_best) the parameters and layer
 * buffers of that epoch. */
typedef struct fit_watch {
  nnlib_validation_options v;
  const nnlib_tensor *const *x; /* the validation inputs */
  float best;
  int64_t best_epoch, since_best;
  float *saved; /* param_size + layer_state_size floats, or NULL */
} fit_watch;

static nnlib_status watch_start(const nnlib_model *m, fit_watch *w) {
  w->best = INFINITY;
  w->best_epoch = -1;
  w->since_best = 0;
  w->saved = NULL;
  if (!w->v.restore_best)
    return NNLIB_OK;
  w->saved = nnlib__calloc((size_t)(m->param_size + m->layer_state_size),
                           sizeof(float));
  if (w->saved == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "fit: no memory for the best parameters (%lld floats)",
                        (long long)(m->param_size + m->layer_state_size));
  return NNLIB_OK;
}

/* Copies the parameters and layer buffers into (to_saved) or out of the
 * watch's copy. */
static void swap_best(nnlib_model *m, float *saved, bool to_saved) {
  size_t pb = (size_t)m->param_size * sizeof(float);
  size_t sb = (size_t)m->layer_state_size * sizeof(float);
  if (to_saved) {
    memcpy(saved, m->params, pb);
    memcpy(saved + m->param_size, m->layer_state, sb);
  } else {
    memcpy(m->params, saved, pb);
    memcpy(m->layer_state, saved + m->param_size, sb);
  }
}

/* After epoch e: the validation loss, and whether to stop. A loss that is
 * not finite never counts as an improvement (NaN compares false). */
static nnlib_status watch_epoch(nnlib_model *m, fit_watch *w, int64_t e,
                                bool *stop) {
  float loss;
  NNLIB_TRY(nnlib_model_evaluate_inputs(m, w->x, m->input_count, w->v.target,
                                        &loss, NULL));
  if (w->v.losses != NULL)
    w->v.losses[e] = loss;
  if (loss < w->best - w->v.min_delta) {
    w->best = loss;
    w->best_epoch = e;
    w->since_best = 0;
    if (w->saved != NULL)
      swap_best(m, w->saved, true);
  } else {
    w->since_best++;
  }
  *stop = w->v.patience > 0 && w->since_best >= w->v.patience;
  return NNLIB_OK;
}

/* The epochs; *run counts those completed. */
static nnlib_status fit_epochs(nnlib_model *m, fit_data *d, int64_t samples,
                               const nnlib_fit_options *o, fit_watch *w,
                               int64_t *run) {
  nnlib_progress p = {sizeof p, 0, o->epochs, 0, 0, 0, 0, 0.0f, 0.0f};
  bool stop = false;
  for (int64_t e = 0; e < o->epochs && !stop; e++) {
    if (d->order != NULL)
      nnlib__rng_shuffle(&m->rng, d->order, samples);
    p.epoch = e;
    NNLIB_TRY(fit_epoch(m, d, samples, o, &p));
    if (o->epoch_losses != NULL)
      o->epoch_losses[e] = p.epoch_loss;
    *run = e + 1;
    if (w != NULL)
      NNLIB_TRY(watch_epoch(m, w, e, &stop));
  }
  return NNLIB_OK;
}

nnlib_status nnlib_model_fit_inputs(
    nnlib_model *m, const nnlib_tensor *const *x, size_t count,
    const nnlib_tensor *target, const nnlib_fit_options *options,
    const nnlib_validation_options *validation,
    const nnlib_tensor *const *validation_inputs) {
  nnlib_fit_options o;
  fit_data d;
  memset(&d, 0, sizeof d);
  fit_watch w = {.best = 0.0f};
  int64_t run = 0;
  NNLIB_TRY(fit_args(m, x, count, target, options, &o, &d));
  int64_t samples = d.whole.n;
  if (validation != NULL) {
    NNLIB_TRY(validation_args(m, validation, validation_inputs, &w.v));
    w.x = validation_inputs != NULL ? validation_inputs : &w.v.x;
  }
  m->forward_n = 0;
  nnlib_status st = NNLIB_OK;
  if (o.shuffle)
    st = alloc_shuffling(m, &d, samples,
                         o.batch_size < samples ? o.batch_size : samples);
  if (st == NNLIB_OK && validation != NULL)
    st = watch_start(m, &w);
  if (st == NNLIB_OK)
    st = fit_epochs(m, &d, samples, &o, validation != NULL ? &w : NULL, &run);
  if (validation != NULL) {
    if (st == NNLIB_OK && w.saved != NULL && w.best_epoch >= 0)
      swap_best(m, w.saved, false);
    if (w.v.epochs_run != NULL)
      *w.v.epochs_run = run;
    nnlib__free(w.saved);
  }
  free_shuffling(&d);
  return st;
}

nnlib_status nnlib_model_fit_validated(
    nnlib_model *m, const nnlib_tensor *x, const nnlib_tensor *target,
    const nnlib_fit_options *options,
    const nnlib_validation_options *validation) {
  return nnlib_model_fit_inputs(m, &x, 1, target, options, validation, NULL);
}

nnlib_status nnlib_model_fit(nnlib_model *m, const nnlib_tensor *x,
                             const nnlib_tensor *target,
                             const nnlib_fit_options *options) {
  return nnlib_model_fit_validated(m, x, target, options, NULL);
}
