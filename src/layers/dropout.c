/* dropout.c - inverted dropout.
 *   training:  m_i = 1 / (1 - rate) with probability 1 - rate, else 0,
 *              drawn from the model's seeded generator (run->rng);
 *              y = x * m, and m goes to the workspace for backward:
 *              dx = dy * m
 *   inference: y = x, dx = dy
 * With the same seed a run draws the same masks; nnlib_model_gradcheck
 * rewinds the generator before every pass, so its finite differences see
 * the mask backward used. */
#include "layers/layer.h"

#include <math.h>
#include <string.h>

typedef struct dropout_layer {
  nnlib_layer base;
  float rate;
} dropout_layer;

static const char *dropout_name(const nnlib_layer *l) {
  (void)l;
  return "dropout";
}

static nnlib_status dropout_plan(nnlib_layer *l, const nnlib__shape *in,
                                 int64_t max_batch) {
  int64_t mask;
  if (nnlib__mul_overflows(nnlib__shape_numel(in), max_batch, &mask) ||
      (uint64_t)mask > SIZE_MAX / sizeof(float))
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "dropout: mask for a batch of %lld overflows",
                        (long long)max_batch);
  l->out_shape = *in;
  l->workspace_floats = (size_t)mask;
  return NNLIB_OK;
}

/* Training with a rate above 0 draws a mask; everything else is identity. */
static bool masks(const dropout_layer *d, const nnlib__run *run) {
  return run->training && run->rng != NULL && d->rate > 0.0f;
}

static nnlib_status dropout_forward(nnlib_layer *l, const nnlib__run *run,
                                    const float *x, float *y, int64_t n) {
  const dropout_layer *d = (const dropout_layer *)l;
  int64_t count = nnlib__run_elements(l, run, n);
  if (!masks(d, run)) {
    memcpy(y, x, (size_t)count * sizeof(float));
    return NNLIB_OK;
  }
  float keep = 1.0f / (1.0f - d->rate), *mask = run->workspace;
  nnlib__rng_keep_mask(run->rng, d->rate, keep, mask, count);
  for (int64_t i = 0; i < count; i++)
    y[i] = x[i] * mask[i];
  return NNLIB_OK;
}

static nnlib_status dropout_backward(nnlib_layer *l, const nnlib__run *run,
                                     const float *x, const float *y,
                                     float *dy, float *dx, int64_t n) {
  (void)x;
  (void)y;
  const dropout_layer *d = (const dropout_layer *)l;
  int64_t count = nnlib__run_elements(l, run, n);
  if (dx == NULL)
    return NNLIB_OK;
  if (!masks(d, run)) {
    memcpy(dx, dy, (size_t)count * sizeof(float));
    return NNLIB_OK;
  }
  const float *mask = run->workspace;
  for (int64_t i = 0; i < count; i++)
    dx[i] = dy[i] * mask[i];
  return NNLIB_OK;
}

static const nnlib__layer_ops dropout_ops = {
    .kind = NNLIB_LAYER_DROPOUT,
    .plan = dropout_plan,
    .forward = dropout_forward,
    .backward = dropout_backward,
    .name = dropout_name,
    .dx_over_output = true, /* dx = dy mask; y unread */
    .decodes = true,
};

nnlib_status nnlib_dropout_create(nnlib_layer **out, float rate) {
  NNLIB_CHECK_ARG(out != NULL, "nnlib_dropout_create: out is NULL");
  *out = NULL;
  NNLIB_CHECK_ARG(rate >= 0.0f && rate < 1.0f,
                  "dropout: rate %g must be in [0, 1)", (double)rate);
  dropout_layer *d = nnlib__alloc(sizeof *d);
  if (d == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "nnlib_dropout_create: no memory");
  nnlib__layer_init(&d->base, &dropout_ops);
  d->rate = rate + 0.0f; /* -0 becomes +0: one spelling in files */
  *out = &d->base;
  return NNLIB_OK;
}

/* ------------------------- model description and model file (codec) */

/* PyTorch's default rate */
#define DROPOUT_DEFAULT_RATE 0.5f

/* "dropout" (rate 0.5) or "dropout:RATE"; printed with its rate */
static nnlib_status dropout_parse_spec(const nnlib__spec_item *item,
                                       nnlib_layer **out) {
  float rate = DROPOUT_DEFAULT_RATE;
  NNLIB_TRY(nnlib__spec_fields(item, 1, 2));
  if (item->field_count == 2)
    NNLIB_TRY(nnlib__spec_float(item, 1, &rate));
  return nnlib_dropout_create(out, rate);
}

static void dropout_write_spec(const nnlib_layer *l, nnlib__text *t) {
  nnlib__text_append(t, "dropout:");
  nnlib__text_append_float(t, ((const dropout_layer *)l)->rate);
}

/* config: f32 rate, 4 bytes */
static void dropout_write_config(const nnlib_layer *l, nnlib__writer *w) {
  nnlib__put_f32(w, ((const dropout_layer *)l)->rate);
}

static nnlib_status dropout_read_config(nnlib__reader *r, nnlib_layer **out) {
  float rate;
  NNLIB_TRY(nnlib__get_f32(r, &rate));
  return nnlib_dropout_create(out, rate);
}

const nnlib__layer_codec nnlib__dropout_codec = {
    .kind = NNLIB_LAYER_DROPOUT,
    .spec_names = {"dropout"},
    .parse_spec = dropout_parse_spec,
    .write_spec = dropout_write_spec,
    .write_config = dropout_write_config,
    .read_config = dropout_read_config,
};
