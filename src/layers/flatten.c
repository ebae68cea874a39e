/* flatten.c - [d0, d1, ...] -> [d0 d1 ...] per sample. The data is already
 * row-major and contiguous, so forward and backward are copies, and none
 * when the model lays y over x and dx over dy (is_view, plan.c). */
#include "layers/layer.h"

#include <string.h>

static const char *flatten_name(const nnlib_layer *l) {
  (void)l;
  return "flatten";
}

static nnlib_status flatten_plan(nnlib_layer *l, const nnlib__shape *in,
                                 int64_t max_batch) {
  (void)max_batch;
  l->out_shape.rank = 1;
  l->out_shape.dims[0] = nnlib__shape_numel(in);
  return NNLIB_OK;
}

static nnlib_status flatten_forward(nnlib_layer *l, const nnlib__run *run,
                                    const float *x, float *y, int64_t n) {
  (void)run;
  if (y != x)
    memcpy(y, x, (size_t)(n * l->in_size) * sizeof(float));
  return NNLIB_OK;
}

static nnlib_status flatten_backward(nnlib_layer *l, const nnlib__run *run,
                                     const float *x, const float *y,
                                     float *dy, float *dx, int64_t n) {
  (void)run;
  (void)x;
  (void)y;
  if (dx != NULL && dx != dy)
    memcpy(dx, dy, (size_t)(n * l->in_size) * sizeof(float));
  return NNLIB_OK;
}

static const nnlib__layer_ops flatten_ops = {
    .kind = NNLIB_LAYER_FLATTEN,
    .plan = flatten_plan,
    .forward = flatten_forward,
    .backward = flatten_backward,
    .name = flatten_name,
    .dx_over_output = true, /* dx = dy; y unread */
    .is_view = true,
};

nnlib_status nnlib_flatten_create(nnlib_layer **out) {
  NNLIB_CHECK_ARG(out != NULL, "nnlib_flatten_create: out is NULL");
  *out = NULL;
  nnlib_layer *l = nnlib__alloc(sizeof *l);
  if (l == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "nnlib_flatten_create: no memory");
  nnlib__layer_init(l, &flatten_ops);
  *out = l;
  return NNLIB_OK;
}

/* ------------------------- model description and model file (codec) */

/* "flatten", no arguments; an empty config */
static nnlib_status flatten_parse_spec(const nnlib__spec_item *item,
                                       nnlib_layer **out) {
  NNLIB_TRY(nnlib__spec_fields(item, 1, 1));
  return nnlib_flatten_create(out);
}

static void flatten_write_spec(const nnlib_layer *l, nnlib__text *t) {
  (void)l;
  nnlib__text_append(t, "flatten");
}

static void flatten_write_config(const nnlib_layer *l, nnlib__writer *w) {
  (void)l;
  (void)w;
}

static nnlib_status flatten_read_config(nnlib__reader *r, nnlib_layer **out) {
  (void)r;
  return nnlib_flatten_create(out);
}

const nnlib__layer_codec nnlib__flatten_codec = {
    .kind = NNLIB_LAYER_FLATTEN,
    .spec_names = {"flatten"},
    .parse_spec = flatten_parse_spec,
    .write_spec = flatten_write_spec,
    .write_config = flatten_write_config,
    .read_config = flatten_read_config,
};
