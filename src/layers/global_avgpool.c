/* global_avgpool.c - global average pooling, [C, H, W] -> [C] (or any
 * [C, ...] -> [C]): the mean of each channel.
 *   forward:  y[s,c] = (1/S) sum_q x[s,c,q]     S = positions per channel
 *   backward: dx[s,c,q] = dy[s,c] / S */
#include "layers/layer.h"

typedef struct global_avgpool_layer {
  nnlib_layer base;
  int64_t channels, positions; /* planned */
} global_avgpool_layer;

static const char *global_avgpool_name(const nnlib_layer *l) {
  (void)l;
  return "global_avgpool";
}

static nnlib_status global_avgpool_plan(nnlib_layer *l, const nnlib__shape *in,
                                        int64_t max_batch) {
  (void)max_batch;
  global_avgpool_layer *g = (global_avgpool_layer *)l;
  if (in->rank < 2) {
    char shape[160];
    nnlib__shape_text(in, shape, sizeof shape);
    return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                        "global_avgpool: input is %s per sample, expects "
                        "[C, H, W] (or [C, ...])",
                        shape);
  }
  g->channels = in->dims[0];
  g->positions = nnlib__shape_numel(in) / g->channels;
  l->out_shape.rank = 1;
  l->out_shape.dims[0] = g->channels;
  return NNLIB_OK;
}

static nnlib_status global_avgpool_forward(nnlib_layer *l,
                                           const nnlib__run *run,
                                           const float *x, float *y,
                                           int64_t n) {
  (void)run;
  const global_avgpool_layer *g = (const global_avgpool_layer *)l;
  double inv = 1.0 / (double)g->positions;
  for (int64_t q = 0; q < n * g->channels; q++) {
    const float *src = x + q * g->positions;
    double sum = 0.0;
    for (int64_t i = 0; i < g->positions; i++)
      sum += src[i];
    y[q] = (float)(sum * inv);
  }
  return NNLIB_OK;
}

static nnlib_status global_avgpool_backward(nnlib_layer *l,
                                            const nnlib__run *run,
                                            const float *x, const float *y,
                                            float *dy, float *dx, int64_t n) {
  (void)run;
  (void)x;
  (void)y;
  const global_avgpool_layer *g = (const global_avgpool_layer *)l;
  if (dx == NULL)
    return NNLIB_OK;
  float inv = (float)(1.0 / (double)g->positions);
  for (int64_t q = 0; q < n * g->channels; q++) {
    float v = dy[q] * inv;
    float *dst = dx + q * g->positions;
    for (int64_t i = 0; i < g->positions; i++)
      dst[i] = v;
  }
  return NNLIB_OK;
}

static const nnlib__layer_ops global_avgpool_ops = {
    .kind = NNLIB_LAYER_GLOBAL_AVGPOOL,
    .plan = global_avgpool_plan,
    .forward = global_avgpool_forward,
    .backward = global_avgpool_backward,
    .name = global_avgpool_name,
};

nnlib_status nnlib_global_avgpool_create(nnlib_layer **out) {
  NNLIB_CHECK_ARG(out != NULL, "nnlib_global_avgpool_create: out is NULL");
  *out = NULL;
  global_avgpool_layer *g = nnlib__alloc(sizeof *g);
  if (g == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "nnlib_global_avgpool_create: no memory");
  nnlib__layer_init(&g->base, &global_avgpool_ops);
  *out = &g->base;
  return NNLIB_OK;
}

/* ------------------------- model description and model file (codec) */

/* "global_avgpool", no arguments; an empty config */
static nnlib_status global_avgpool_parse_spec(const nnlib__spec_item *item,
                                              nnlib_layer **out) {
  NNLIB_TRY(nnlib__spec_fields(item, 1, 1));
  return nnlib_global_avgpool_create(out);
}

static void global_avgpool_write_spec(const nnlib_layer *l, nnlib__text *t) {
  (void)l;
  nnlib__text_append(t, "global_avgpool");
}

static void global_avgpool_write_config(const nnlib_layer *l,
                                        nnlib__writer *w) {
  (void)l;
  (void)w;
}

static nnlib_status global_avgpool_read_config(nnlib__reader *r,
                                               nnlib_layer **out) {
  (void)r;
  return nnlib_global_avgpool_create(out);
}

const nnlib__layer_codec nnlib__global_avgpool_codec = {
    .kind = NNLIB_LAYER_GLOBAL_AVGPOOL,
    .spec_names = {"global_avgpool"},
    .parse_spec = global_avgpool_parse_spec,
    .write_spec = global_avgpool_write_spec,
    .write_config = global_avgpool_write_config,
    .read_config = global_avgpool_read_config,
};
