/* layer.c - what every layer kind shares, and the public layer accessors. */
#include "layers/layer.h"
#include "core/vecmath.h"

#include <stdio.h>
#include <string.h>

void nnlib__layer_init(nnlib_layer *l, const nnlib__layer_ops *ops) {
  memset(l, 0, sizeof *l);
  l->ops = ops;
}

void nnlib__layer_declare_param(nnlib_layer *l, const char *name,
                                const int64_t *shape, size_t rank) {
  nnlib__param *p = &l->params[l->param_count++];
  p->name = name;
  p->shape.rank = rank;
  p->size = 1;
  for (size_t i = 0; i < rank; i++) {
    p->shape.dims[i] = shape[i];
    p->size *= shape[i];
  }
}

void nnlib__layer_declare_buffer(nnlib_layer *l, const char *name,
                                 const int64_t *shape, size_t rank) {
  nnlib__param *p = &l->buffers[l->buffer_count++];
  p->name = name;
  p->shape.rank = rank;
  p->size = 1;
  for (size_t i = 0; i < rank; i++) {
    p->shape.dims[i] = shape[i];
    p->size *= shape[i];
  }
}

int64_t nnlib__shape_numel(const nnlib__shape *s) {
  int64_t n = 1;
  for (size_t i = 0; i < s->rank; i++)
    n *= s->dims[i];
  return n;
}

void nnlib_layer_free(nnlib_layer *l) {
  if (l == NULL)
    return;
  if (l->ops->destroy != NULL)
    l->ops->destroy(l);
  nnlib__free(l);
}

nnlib_layer_kind nnlib_layer_get_kind(const nnlib_layer *l) {
  return l ? l->ops->kind : (nnlib_layer_kind)0;
}

const char *nnlib_layer_get_name(const nnlib_layer *l) {
  return l ? l->ops->name(l) : "";
}

nnlib_status nnlib_layer_get_output_shape(const nnlib_layer *l, int64_t *dims,
                                          size_t capacity, size_t *rank) {
  NNLIB_CHECK_ARG(l != NULL && rank != NULL,
                  "nnlib_layer_get_output_shape: layer or rank is NULL");
  if (!l->compiled)
    return nnlib__error(NNLIB_ERR_WRONG_STATE,
                        "%s: output shape is known after compile",
                        l->ops->name(l));
  NNLIB_CHECK_ARG(dims != NULL || capacity == 0,
                  "nnlib_layer_get_output_shape: dims is NULL");
  *rank = l->out_shape.rank;
  for (size_t i = 0; i < l->out_shape.rank && i < capacity; i++)
    dims[i] = l->out_shape.dims[i];
  return NNLIB_OK;
}

size_t nnlib_layer_get_param_tensor_count(const nnlib_layer *l) {
  return l ? l->param_count : 0;
}

/* The 1.0 name (deprecated: the model's param_count counts scalars). */
size_t nnlib_layer_get_param_count(const nnlib_layer *l) {
  return nnlib_layer_get_param_tensor_count(l);
}

nnlib_status nnlib_layer_get_param(nnlib_layer *l, size_t index,
                                   nnlib_tensor **value, nnlib_tensor **grad) {
  NNLIB_CHECK_ARG(l != NULL, "nnlib_layer_get_param: layer is NULL");
  if (!l->compiled)
    return nnlib__error(NNLIB_ERR_WRONG_STATE,
                        "%s: parameters exist after compile", l->ops->name(l));
  if (index >= l->param_count)
    return nnlib__error(NNLIB_ERR_OUT_OF_RANGE,
                        "%s: parameter %zu requested, layer has %zu",
                        l->ops->name(l), index, l->param_count);
  if (value != NULL)
    *value = &l->params[index].value;
  if (grad != NULL)
    *grad = &l->params[index].grad;
  return NNLIB_OK;
}

const char *nnlib_layer_get_param_name(const nnlib_layer *l, size_t index) {
  if (l == NULL || index >= l->param_count)
    return NULL;
  return l->params[index].name;
}

size_t nnlib_layer_get_buffer_count(const nnlib_layer *l) {
  return l ? l->buffer_count : 0;
}

nnlib_status nnlib_layer_get_buffer(nnlib_layer *l, size_t index,
                                    nnlib_tensor **value) {
  NNLIB_CHECK_ARG(l != NULL && value != NULL,
                  "nnlib_layer_get_buffer: layer or value is NULL");
  if (!l->compiled)
    return nnlib__error(NNLIB_ERR_WRONG_STATE,
                        "%s: buffers exist after compile", l->ops->name(l));
  if (index >= l->buffer_count)
    return nnlib__error(NNLIB_ERR_OUT_OF_RANGE,
                        "%s: buffer %zu requested, layer has %zu",
                        l->ops->name(l), index, l->buffer_count);
  *value = &l->buffers[index].value;
  return NNLIB_OK;
}

const char *nnlib_layer_get_buffer_name(const nnlib_layer *l, size_t index) {
  if (l == NULL || index >= l->buffer_count)
    return NULL;
  return l->buffers[index].name;
}

bool nnlib__shape_equal(const nnlib__shape *a, const nnlib__shape *b) {
  if (a->rank != b->rank)
    return false;
  for (size_t i = 0; i < a->rank; i++)
    if (a->dims[i] != b->dims[i])
      return false;
  return true;
}

nnlib_status nnlib__plan_same_shapes(nnlib_layer *l, const nnlib__shape *in,
                                     size_t count) {
  const char *kind = l->ops->name(l);
  if (count < 2)
    return nnlib__error(NNLIB_ERR_INVALID_ARGUMENT,
                        "%s: reads %zu input(s), needs at least 2", kind,
                        count);
  for (size_t i = 1; i < count; i++) {
    if (nnlib__shape_equal(&in[i], &in[0]))
      continue;
    char got[160], want[160];
    nnlib__shape_text(&in[i], got, sizeof got);
    nnlib__shape_text(&in[0], want, sizeof want);
    return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                        "%s: input %zu is %s, input 0 is %s; every input "
                        "must have the same shape",
                        kind, i, got, want);
  }
  l->out_shape = in[0];
  return NNLIB_OK;
}

size_t nnlib__layer_min_inputs(const nnlib_layer *l) {
  return l->ops->min_inputs > 0 ? l->ops->min_inputs : 1;
}

bool nnlib__layer_is_merge(const nnlib_layer *l) {
  return l->ops->plan_merge != NULL;
}

bool nnlib__layer_reads_ids(const nnlib_layer *l) {
  return l->ops->kind == NNLIB_LAYER_EMBEDDING;
}

int64_t nnlib__run_elements(const nnlib_layer *l, const nnlib__run *run,
                            int64_t n) {
  const nnlib__shape *s = &l->in_shape;
  if (run->steps <= 0 || s->rank < 2 || s->dims[0] <= 0)
    return n * l->in_size;
  return n * (l->in_size / s->dims[0]) * run->steps;
}

int64_t nnlib__run_rows(const nnlib_layer *l, const nnlib__run *run,
                        int64_t n) {
  const nnlib__shape *s = &l->in_shape;
  int64_t last = s->rank > 0 ? s->dims[s->rank - 1] : 1;
  int64_t per_sample = last > 0 ? l->in_size / last : 0;
  if (run->steps > 0 && s->rank >= 2 && s->dims[0] > 0)
    per_sample = per_sample / s->dims[0] * run->steps;
  return n * per_sample;
}

/* Resets what plan declares, runs the kind's plan and sets the sizes; a
 * failure message is prefixed with context and the node's label. */
nnlib_status nnlib__layer_plan_inputs(nnlib_layer *l, const char *node,
                                      const nnlib__shape *in, size_t count,
                                      int64_t max_batch, const char *context) {
  l->in_shape = in[0];
  l->in_size = nnlib__shape_numel(&in[0]);
  l->param_count = 0;
  l->buffer_count = 0;
  l->workspace_floats = 0;
  l->cache_floats = 0;
  nnlib_status st;
  if (nnlib__layer_is_merge(l))
    st = l->ops->plan_merge(l, in, count, max_batch);
  else if (count != 1)
    st = nnlib__error(NNLIB_ERR_INVALID_ARGUMENT,
                      "%s reads exactly one node, got %zu", l->ops->name(l),
                      count);
  else
    st = l->ops->plan(l, in, max_batch);
  if (st != NNLIB_OK) {
    char detail[400];
    snprintf(detail, sizeof detail, "%s", nnlib_last_error_message());
    return nnlib__error(st, "%s%s: %s", context, node, detail);
  }
  l->out_size = nnlib__shape_numel(&l->out_shape);
  return NNLIB_OK;
}

nnlib_status nnlib__layer_plan(nnlib_layer *l, size_t index,
                               const nnlib__shape *in, int64_t max_batch,
                               const char *context) {
  char label[NNLIB__LABEL_SIZE];
  snprintf(label, sizeof label, "layer %zu (%s)", index, l->ops->name(l));
  return nnlib__layer_plan_inputs(l, label, in, 1, max_batch, context);
}

/* Column sums run over blocks of this many columns (a cache line); a part
 * of the split holds whole blocks. */
enum { COLUMN_BLOCK = 16 };

typedef struct column_sums_job {
  const float *m;
  int64_t rows, cols, ld;
  float *out;
} column_sums_job;

/* The columns of blocks [begin, end), rows outer: each row's stretch is
 * one contiguous read and the sums stay in L1, where a column-block-outer
 * loop reads one cache line per row of a matrix that does not fit. Each
 * column is still summed in row order from 0. */
NNLIB__VECTOR_CLONES
static void column_sums_range(void *ctx, int64_t begin, int64_t end) {
  const column_sums_job *job = ctx;
  int64_t from = begin * COLUMN_BLOCK, to = end * COLUMN_BLOCK;
  if (to > job->cols)
    to = job->cols;
  float *restrict out = job->out + from;
  int64_t width = to - from;
  memset(out, 0, (size_t)width * sizeof(float));
  for (int64_t i = 0; i < job->rows; i++) {
    const float *restrict row = job->m + i * job->ld + from;
    for (int64_t j = 0; j < width; j++)
      out[j] += row[j];
  }
}

void nnlib__column_sums(const float *m, int64_t rows, int64_t cols, int64_t ld,
                        float *out, int64_t min_values) {
  column_sums_job job = {m, rows, cols, ld, out};
  nnlib__parallel_for((cols + COLUMN_BLOCK - 1) / COLUMN_BLOCK,
                      nnlib__parallel_grain(rows * COLUMN_BLOCK, min_values),
                      column_sums_range, &job);
}

typedef struct rows_broadcast_job {
  float *y;
  const float *b;
  int64_t cols;
} rows_broadcast_job;

static void rows_broadcast_range(void *ctx, int64_t begin, int64_t end) {
  const rows_broadcast_job *job = ctx;
  for (int64_t r = begin; r < end; r++)
    memcpy(job->y + r * job->cols, job->b, (size_t)job->cols * sizeof(float));
}

void nnlib__rows_broadcast(float *y, const float *b, int64_t rows, int64_t cols,
                           int64_t min_values) {
  rows_broadcast_job job = {y, b, cols};
  nnlib__parallel_for(rows, nnlib__parallel_grain(cols, min_values),
                      rows_broadcast_range, &job);
}
