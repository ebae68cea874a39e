/* fit.c - nnlib_model_fit: epochs of minibatches over a data set, in a
 * new shuffled order each epoch, with validation and early stopping after
 * each epoch. Allocates per call (the sample order, the gather buffers and
 * the best parameters for restore_best), never per step. */
#include "nnlib_internal.h"

#include <math.h>
#include <string.h>

nnlib_status nnlib_fit_options_init(nnlib_fit_options *o) {
  NNLIB_CHECK_ARG(o != NULL, "nnlib_fit_options_init: options is NULL");
  memset(o, 0, sizeof *o);
  o->struct_size = sizeof *o;
  o->epochs = 1;
  o->batch_size = 0;
  o->shuffle = 1;
  return NNLIB_OK;
}

typedef struct fit_data {
  const float *x, *t;
  int64_t x_stride, t_stride; /* floats per sample */
  bool is_index;
  int64_t *order;             /* NULL: in order, zero-copy */
  float *batch_x, *batch_t;   /* gathered shuffled batches */
  int64_t steps;              /* sequence length when shorter than planned */
} fit_data;

/* Points *x and *t at samples [start, start + n) of the epoch's order:
 * straight into the data set when not shuffled, else gathered into fit's
 * batch buffers. */
static void batch_view(const fit_data *d, int64_t start, int64_t n,
                       const float **x, const float **t) {
  if (d->order == NULL) {
    *x = d->x + start * d->x_stride;
    *t = d->t + start * d->t_stride;
    return;
  }
  size_t xb = (size_t)d->x_stride * sizeof(float);
  size_t tb = (size_t)d->t_stride * sizeof(float);
  for (int64_t i = 0; i < n; i++) {
    int64_t s = d->order[start + i];
    memcpy(d->batch_x + i * d->x_stride, d->x + s * d->x_stride, xb);
    memcpy(d->batch_t + i * d->t_stride, d->t + s * d->t_stride, tb);
  }
  *x = d->batch_x;
  *t = d->batch_t;
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
    const float *x, *t;
    batch_view(d, start, n, &x, &t);
    double loss;
    m->bufs.steps = d->steps; /* validation may have left its own */
    NNLIB_TRY(nnlib__train_batch(m, x, t, d->is_index, n, &loss));
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

static nnlib_status fit_args(nnlib_model *m, const nnlib_tensor *x,
                             const nnlib_tensor *target,
                             const nnlib_fit_options *options,
                             nnlib_fit_options *o, fit_data *d,
                             int64_t *samples) {
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
  NNLIB_TRY(nnlib__check_input(m, x, 0, samples, &d->steps));
  NNLIB_TRY(
      nnlib__check_target(m, target, *samples, d->steps, &d->is_index));
  d->x = x->data;
  d->t = target->data;
  d->x_stride = nnlib__input_stride(x);
  d->t_stride = d->is_index ? 1 : nnlib__output_size_at(m, d->steps);
  d->order = NULL;
  d->batch_x = d->batch_t = NULL;
  return NNLIB_OK;
}

static void free_shuffling(fit_data *d) {
  nnlib__free(d->order);
  nnlib__free(d->batch_x);
  nnlib__free(d->batch_t);
  d->order = NULL;
  d->batch_x = d->batch_t = NULL;
}

/* The sample order and the buffers shuffled batches are gathered into:
 * allocated per fit call, never per step, and not kept by the model. A
 * batch is never larger than the data set, so neither are the buffers (a
 * model compiled for a huge batch fits a few samples without asking for
 * its maximum batch twice over). */
static nnlib_status alloc_shuffling(fit_data *d, int64_t samples,
                                    int64_t batch) {
  d->order = nnlib__calloc((size_t)samples, sizeof *d->order);
  d->batch_x = nnlib__calloc((size_t)(batch * d->x_stride), sizeof(float));
  d->batch_t = nnlib__calloc((size_t)(batch * d->t_stride), sizeof(float));
  if (d->order == NULL || d->batch_x == NULL || d->batch_t == NULL) {
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

nnlib_status nnlib_validation_options_init(nnlib_validation_options *o) {
  NNLIB_CHECK_ARG(o != NULL, "nnlib_validation_options_init: options is NULL");
  memset(o, 0, sizeof *o);
  o->struct_size = sizeof *o;
  return NNLIB_OK;
}

/* Reads the caller's validation options into *v (defaults where the
 * caller's struct is shorter) and checks them and the tensors' shapes. */
static nnlib_status validation_args(const nnlib_model *m,
                                    const nnlib_validation_options *given,
                                    nnlib_validation_options *v) {
  nnlib_validation_options_init(v);
  NNLIB_TRY(nnlib__read_options(v, sizeof *v, given,
                                "nnlib_validation_options"));
  NNLIB_CHECK_ARG(v->x != NULL && v->target != NULL,
                  "fit: validation options need x and target");
  NNLIB_CHECK_ARG(v->patience >= 0, "fit: patience is %lld, must be >= 0",
                  (long long)v->patience);
  NNLIB_CHECK_ARG(isfinite(v->min_delta) && v->min_delta >= 0.0f,
                  "fit: min_delta is %g, must be finite and >= 0",
                  (double)v->min_delta);
  NNLIB_CHECK_ARG(v->restore_best == 0 || v->restore_best == 1,
                  "fit: restore_best must be 0 or 1");
  int64_t n = 0;
  bool is_index;
  int64_t steps = 0;
  NNLIB_TRY(nnlib__check_input(m, v->x, 0, &n, &steps));
  return nnlib__check_target(m, v->target, n, steps, &is_index);
}

/* Early stopping's state: the validation options, the best loss so far,
 * its epoch, the epochs since, and (restore_best) the parameters and layer
 * buffers of that epoch. */
typedef struct fit_watch {
  nnlib_validation_options v;
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
  NNLIB_TRY(nnlib_model_evaluate(m, w->v.x, w->v.target, &loss, NULL));
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

nnlib_status nnlib_model_fit_validated(
    nnlib_model *m, const nnlib_tensor *x, const nnlib_tensor *target,
    const nnlib_fit_options *options,
    const nnlib_validation_options *validation) {
  nnlib_fit_options o;
  fit_data d = {NULL, NULL, 0, 0, false, NULL, NULL, NULL, 0};
  fit_watch w = {.best = 0.0f};
  int64_t samples = 0, run = 0;
  NNLIB_TRY(fit_args(m, x, target, options, &o, &d, &samples));
  if (validation != NULL)
    NNLIB_TRY(validation_args(m, validation, &w.v));
  nnlib_status st = NNLIB_OK;
  if (o.shuffle)
    st = alloc_shuffling(&d, samples,
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

nnlib_status nnlib_model_fit(nnlib_model *m, const nnlib_tensor *x,
                             const nnlib_tensor *target,
                             const nnlib_fit_options *options) {
  return nnlib_model_fit_validated(m, x, target, options, NULL);
}
