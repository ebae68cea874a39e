/* multiply.c - merge layer y = x_1 * x_2 * ... * x_k elementwise over
 * k >= 2 inputs of one per-sample shape (gates).
 *
 * forward:  y = x_1 * ... * x_k, multiplied in input order
 * backward: dL/dx_i = dL/dy * prod_{j != i} x_j, formed directly (k - 1
 *           products per element) rather than as y / x_i, which fails
 *           where x_i is zero
 */
#include "layers/layer.h"

static const char *multiply_name(const nnlib_layer *l) {
  (void)l;
  return "multiply";
}

static nnlib_status multiply_plan(nnlib_layer *l, const nnlib__shape *in,
                                  size_t count, int64_t max_batch) {
  (void)max_batch;
  return nnlib__plan_same_shapes(l, in, count);
}

static nnlib_status multiply_forward(nnlib_layer *l, const nnlib__run *run,
                                     const float *const *x, size_t count,
                                     float *y, int64_t n) {
  int64_t size = nnlib__run_elements(l, run, n);
  for (int64_t j = 0; j < size; j++)
    y[j] = x[0][j] * x[1][j];
  for (size_t i = 2; i < count; i++)
    for (int64_t j = 0; j < size; j++)
      y[j] *= x[i][j];
  return NNLIB_OK;
}

/* dx = dy * (every input but `skip`) */
static void gradient_of_input(const float *const *x, size_t count,
                              size_t skip, const float *dy, float *dx,
                              int64_t size) {
  for (int64_t j = 0; j < size; j++)
    dx[j] = dy[j];
  for (size_t i = 0; i < count; i++)
    if (i != skip)
      for (int64_t j = 0; j < size; j++)
        dx[j] *= x[i][j];
}

static nnlib_status multiply_backward(nnlib_layer *l, const nnlib__run *run,
                                      const float *const *x, size_t count,
                                      const float *y, float *dy,
                                      float *const *dx, int64_t n) {
  (void)y;
  int64_t size = nnlib__run_elements(l, run, n);
  for (size_t i = 0; i < count; i++)
    if (dx[i] != NULL)
      gradient_of_input(x, count, i, dy, dx[i], size);
  return NNLIB_OK;
}

static const nnlib__layer_ops multiply_ops = {
    .kind = NNLIB_LAYER_MULTIPLY,
    .name = multiply_name,
    .min_inputs = 2,
    .plan_merge = multiply_plan,
    .forward_merge = multiply_forward,
    .backward_merge = multiply_backward,
    .decodes = true,
};

nnlib_status nnlib_multiply_create(nnlib_layer **out) {
  NNLIB_CHECK_ARG(out != NULL, "nnlib_multiply_create: out is NULL");
  *out = NULL;
  nnlib_layer *l = nnlib__alloc(sizeof *l);
  if (l == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "nnlib_multiply_create: no memory");
  nnlib__layer_init(l, &multiply_ops);
  *out = l;
  return NNLIB_OK;
}

/* ------------------------- model description and model file (codec) */

/* "multiply", no arguments (the inputs are the graph's, written by the
 * description parser as "multiply(a,b)"); an empty config */
static nnlib_status multiply_parse_spec(const nnlib__spec_item *item,
                                        nnlib_layer **out) {
  NNLIB_TRY(nnlib__spec_fields(item, 1, 1));
  return nnlib_multiply_create(out);
}

static void multiply_write_spec(const nnlib_layer *l, nnlib__text *t) {
  (void)l;
  nnlib__text_append(t, "multiply");
}

static void multiply_write_config(const nnlib_layer *l, nnlib__writer *w) {
  (void)l;
  (void)w;
}

static nnlib_status multiply_read_config(nnlib__reader *r, nnlib_layer **out) {
  (void)r;
  return nnlib_multiply_create(out);
}

const nnlib__layer_codec nnlib__multiply_codec = {
    .kind = NNLIB_LAYER_MULTIPLY,
    .spec_names = {"multiply"},
    .parse_spec = multiply_parse_spec,
    .write_spec = multiply_write_spec,
    .write_config = multiply_write_config,
    .read_config = multiply_read_config,
};
