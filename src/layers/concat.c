/* concat.c - merge layer joining k >= 2 inputs along per-sample axis `axis`
 * (0: the features of [F], the channels of [C, H, W]; -1: the last axis).
 *
 * Row-major, a sample of input i is `outer` blocks of inner_i floats, with
 * outer = prod(dims[:axis]) (the same for every input) and inner_i =
 * prod(dims_i[axis:]); the output's block is the inputs' blocks side by
 * side, inner = sum_i inner_i. Over a batch the samples just add blocks,
 * so both passes walk n * outer rows:
 *
 * forward:  y[r, off_i : off_i + inner_i] = x_i[r, :]
 * backward: dx_i[r, :] = dy[r, off_i : off_i + inner_i]
 *
 * Plan may not allocate (the model-file loader dry-runs it), so the inner
 * sizes live in the layer, for at most CONCAT_MAX_INPUTS inputs.
 */
#include "layers/layer.h"

#include <string.h>

#define CONCAT_MAX_INPUTS 16

typedef struct concat_layer {
  nnlib_layer base;
  int axis;      /* as created; -1: the last */
  /* as planned */
  size_t count;
  int64_t outer; /* blocks per sample */
  int64_t inner; /* floats per output block */
  int64_t input_inner[CONCAT_MAX_INPUTS];
} concat_layer;

static const char *concat_name(const nnlib_layer *l) {
  (void)l;
  return "concat";
}

/* The axis `axis` of rank-`rank` inputs (-1 resolved), or -1 if out of
 * range. */
static int64_t resolve_axis(int axis, size_t rank) {
  int64_t a = axis < 0 ? (int64_t)rank - 1 : axis;
  return a >= 0 && a < (int64_t)rank ? a : -1;
}

/* Input i has input 0's rank and dims, except along `axis`. */
static nnlib_status check_input(const nnlib__shape *in, size_t i,
                                int64_t axis) {
  bool match = in[i].rank == in[0].rank;
  for (size_t d = 0; match && d < in[0].rank; d++)
    match = (int64_t)d == axis || in[i].dims[d] == in[0].dims[d];
  if (match)
    return NNLIB_OK;
  char got[160], first[160];
  nnlib__shape_text(&in[i], got, sizeof got);
  nnlib__shape_text(&in[0], first, sizeof first);
  return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                      "concat: input %zu is %s, input 0 is %s; every axis "
                      "but %lld must match",
                      i, got, first, (long long)axis);
}

static nnlib_status check_counts(const concat_layer *c,
                                 const nnlib__shape *in, size_t count) {
  if (count < 2)
    return nnlib__error(NNLIB_ERR_INVALID_ARGUMENT,
                        "concat: reads %zu input(s), needs at least 2", count);
  if (count > CONCAT_MAX_INPUTS)
    return nnlib__error(NNLIB_ERR_UNSUPPORTED,
                        "concat of more than %d inputs (%zu); join them in "
                        "steps",
                        CONCAT_MAX_INPUTS, count);
  if (resolve_axis(c->axis, in[0].rank) >= 0)
    return NNLIB_OK;
  char shape[160];
  nnlib__shape_text(&in[0], shape, sizeof shape);
  return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                      "concat: axis %d, but input 0 is %s (rank %zu)",
                      c->axis, shape, in[0].rank);
}

static nnlib_status concat_plan(nnlib_layer *l, const nnlib__shape *in,
                                size_t count, int64_t max_batch) {
  (void)max_batch;
  concat_layer *c = (concat_layer *)l;
  NNLIB_TRY(check_counts(c, in, count));
  int64_t axis = resolve_axis(c->axis, in[0].rank);
  nnlib__shape out = in[0];
  for (size_t i = 1; i < count; i++) {
    NNLIB_TRY(check_input(in, i, axis));
    if (out.dims[axis] > INT64_MAX - in[i].dims[axis])
      return nnlib__error(NNLIB_ERR_TOO_LARGE, "concat: axis %lld overflows",
                          (long long)axis);
    out.dims[axis] += in[i].dims[axis];
  }
  int64_t out_size;
  NNLIB_TRY(nnlib__shape_size(out.dims, out.rank, &out_size, "concat output"));
  c->outer = 1; /* prod(dims[:axis]), a factor of out_size: no overflow */
  for (int64_t d = 0; d < axis; d++)
    c->outer *= in[0].dims[d];
  c->inner = out_size / c->outer;
  for (size_t i = 0; i < count; i++)
    c->input_inner[i] = nnlib__shape_numel(&in[i]) / c->outer;
  c->count = count;
  l->out_shape = out;
  return NNLIB_OK;
}

static nnlib_status concat_forward(nnlib_layer *l, const nnlib__run *run,
                                   const float *const *x, size_t count,
                                   float *y, int64_t n) {
  (void)run;
  const concat_layer *c = (const concat_layer *)l;
  int64_t rows = n * c->outer, offset = 0;
  for (size_t i = 0; i < count; i++) {
    int64_t w = c->input_inner[i];
    for (int64_t r = 0; r < rows; r++)
      memcpy(y + r * c->inner + offset, x[i] + r * w,
             (size_t)w * sizeof(float));
    offset += w;
  }
  return NNLIB_OK;
}

static nnlib_status concat_backward(nnlib_layer *l, const nnlib__run *run,
                                    const float *const *x, size_t count,
                                    const float *y, float *dy,
                                    float *const *dx, int64_t n) {
  (void)run;
  (void)x;
  (void)y;
  const concat_layer *c = (const concat_layer *)l;
  int64_t rows = n * c->outer, offset = 0;
  for (size_t i = 0; i < count; i++) {
    int64_t w = c->input_inner[i];
    for (int64_t r = 0; dx[i] != NULL && r < rows; r++)
      memcpy(dx[i] + r * w, dy + r * c->inner + offset,
             (size_t)w * sizeof(float));
    offset += w;
  }
  return NNLIB_OK;
}

static const nnlib__layer_ops concat_ops = {
    .kind = NNLIB_LAYER_CONCAT,
    .name = concat_name,
    .min_inputs = 2,
    .plan_merge = concat_plan,
    .forward_merge = concat_forward,
    .backward_merge = concat_backward,
};

nnlib_status nnlib_concat_create(nnlib_layer **out, int axis) {
  NNLIB_CHECK_ARG(out != NULL, "nnlib_concat_create: out is NULL");
  *out = NULL;
  NNLIB_CHECK_ARG(axis >= -1 && axis <= NNLIB_MAX_RANK - 2,
                  "nnlib_concat_create: axis %d, must be -1 (the last) or "
                  "0 to %d",
                  axis, NNLIB_MAX_RANK - 2);
  concat_layer *c = nnlib__alloc(sizeof *c);
  if (c == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "nnlib_concat_create: no memory");
  nnlib__layer_init(&c->base, &concat_ops);
  c->axis = axis;
  c->count = 0;
  c->outer = c->inner = 0;
  memset(c->input_inner, 0, sizeof c->input_inner);
  *out = &c->base;
  return NNLIB_OK;
}

/* ------------------------- model description and model file (codec) */

/* AXIS of "concat:AXIS": -1 or 0 .. NNLIB_MAX_RANK - 2 (nnlib__spec_int
 * reads digits only, so -1 is matched as a word) */
static nnlib_status parse_axis(const nnlib__spec_item *item, int64_t *axis) {
  if (nnlib__spec_field_is(item, 1, "-1")) {
    *axis = -1;
    return NNLIB_OK;
  }
  if (nnlib__spec_int(item, 1, 0, INT32_MAX, axis) == NNLIB_OK &&
      *axis <= NNLIB_MAX_RANK - 2)
    return NNLIB_OK;
  return nnlib__spec_error(item,
                           "the axis of concat is -1 (the last) or 0 to %d",
                           NNLIB_MAX_RANK - 2);
}

/* "concat" (axis 0) or "concat:AXIS"; the inputs are the graph's, written
 * by the description parser as "concat(a,b)". Printed without the axis
 * when it is 0. */
static nnlib_status concat_parse_spec(const nnlib__spec_item *item,
                                      nnlib_layer **out) {
  int64_t axis = 0;
  NNLIB_TRY(nnlib__spec_fields(item, 1, 2));
  if (item->field_count == 2)
    NNLIB_TRY(parse_axis(item, &axis));
  return nnlib_concat_create(out, (int)axis);
}

static void concat_write_spec(const nnlib_layer *l, nnlib__text *t) {
  int axis = ((const concat_layer *)l)->axis;
  if (axis == 0)
    nnlib__text_append(t, "concat");
  else
    nnlib__text_append(t, "concat:%d", axis);
}

/* config: i64 axis as created (-1: the last), 8 bytes */
static void concat_write_config(const nnlib_layer *l, nnlib__writer *w) {
  nnlib__put_i64(w, ((const concat_layer *)l)->axis);
}

static nnlib_status concat_read_config(nnlib__reader *r, nnlib_layer **out) {
  int64_t axis;
  NNLIB_TRY(nnlib__get_i64(r, &axis));
  if (axis < -1 || axis > NNLIB_MAX_RANK - 2)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "concat: axis %lld, must be -1 to %d",
                        (long long)axis, NNLIB_MAX_RANK - 2);
  return nnlib_concat_create(out, (int)axis);
}

const nnlib__layer_codec nnlib__concat_codec = {
    .kind = NNLIB_LAYER_CONCAT,
    .spec_names = {"concat"},
    .parse_spec = concat_parse_spec,
    .write_spec = concat_write_spec,
    .write_config = concat_write_config,
    .read_config = concat_read_config,
};
