/* add.c - merge layer y = x_1 + x_2 + ... + x_k over k >= 2 inputs of one
 * per-sample shape (residual connections).
 *
 * forward:  y = x_1 + ... + x_k, summed in input order
 * backward: dL/dx_i = dL/dy for every input (a copy each)
 */
#include "layers/layer.h"

#include <string.h>

static const char *add_name(const nnlib_layer *l) {
  (void)l;
  return "add";
}

static nnlib_status add_plan(nnlib_layer *l, const nnlib__shape *in,
                             size_t count, int64_t max_batch) {
  (void)max_batch;
  return nnlib__plan_same_shapes(l, in, count);
}

/* Both passes split over the pass pool by element: each element is summed
 * (or copied) alone, so any split gives the same bits. These passes move
 * memory and compute little: a part of at least MIN_PART_VALUES elements
 * (some 30 microseconds) pays for waking a worker. */
enum { MIN_PART_VALUES = 65536 };

typedef struct add_pass {
  const float *const *x; /* forward: the inputs */
  float *const *dx;      /* backward: the input gradients */
  const float *dy;
  float *y;
  size_t count;
} add_pass;

static void forward_range(void *ctx, int64_t begin, int64_t end) {
  const add_pass *p = ctx;
  const float *const *x = p->x;
  float *y = p->y;
  for (int64_t j = begin; j < end; j++)
    y[j] = x[0][j] + x[1][j];
  for (size_t i = 2; i < p->count; i++)
    for (int64_t j = begin; j < end; j++)
      y[j] += x[i][j];
}

static nnlib_status add_forward(nnlib_layer *l, const nnlib__run *run,
                                const float *const *x, size_t count, float *y,
                                int64_t n) {
  add_pass p = {.x = x, .y = y, .count = count};
  nnlib__parallel_for(nnlib__run_elements(l, run, n), MIN_PART_VALUES,
                      forward_range, &p);
  return NNLIB_OK;
}

static void backward_range(void *ctx, int64_t begin, int64_t end) {
  const add_pass *p = ctx;
  size_t bytes = (size_t)(end - begin) * sizeof(float);
  for (size_t i = 0; i < p->count; i++)
    if (p->dx[i] != NULL && p->dx[i] != p->dy)
      memcpy(p->dx[i] + begin, p->dy + begin, bytes);
}

static nnlib_status add_backward(nnlib_layer *l, const nnlib__run *run,
                                 const float *const *x, size_t count,
                                 const float *y, float *dy, float *const *dx,
                                 int64_t n) {
  (void)x;
  (void)y;
  add_pass p = {.dx = dx, .dy = dy, .count = count};
  nnlib__parallel_for(nnlib__run_elements(l, run, n), MIN_PART_VALUES,
                      backward_range, &p);
  return NNLIB_OK;
}

static const nnlib__layer_ops add_ops = {
    .kind = NNLIB_LAYER_ADD,
    .name = add_name,
    .min_inputs = 2,
    .plan_merge = add_plan,
    .forward_merge = add_forward,
    .backward_merge = add_backward,
    .decodes = true,
};

nnlib_status nnlib_add_create(nnlib_layer **out) {
  NNLIB_CHECK_ARG(out != NULL, "nnlib_add_create: out is NULL");
  *out = NULL;
  nnlib_layer *l = nnlib__alloc(sizeof *l);
  if (l == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY, "nnlib_add_create: no memory");
  nnlib__layer_init(l, &add_ops);
  *out = l;
  return NNLIB_OK;
}

/* ------------------------- model description and model file (codec) */

/* "add", no arguments (the inputs are the graph's, written by the
 * description parser as "add(a,b)"); an empty config */
static nnlib_status add_parse_spec(const nnlib__spec_item *item,
                                   nnlib_layer **out) {
  NNLIB_TRY(nnlib__spec_fields(item, 1, 1));
  return nnlib_add_create(out);
}

static void add_write_spec(const nnlib_layer *l, nnlib__text *t) {
  (void)l;
  nnlib__text_append(t, "add");
}

static void add_write_config(const nnlib_layer *l, nnlib__writer *w) {
  (void)l;
  (void)w;
}

static nnlib_status add_read_config(nnlib__reader *r, nnlib_layer **out) {
  (void)r;
  return nnlib_add_create(out);
}

const nnlib__layer_codec nnlib__add_codec = {
    .kind = NNLIB_LAYER_ADD,
    .spec_names = {"add"},
    .parse_spec = add_parse_spec,
    .write_spec = add_write_spec,
    .write_config = add_write_config,
    .read_config = add_read_config,
};
