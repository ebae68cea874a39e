/* import_fold.c - constants at import: initializers and Constant nodes
 * decoded into float or int64 arrays, and the shape-computing nodes
 * exporters put around real layers (Shape, Size, Gather, Slice,
 * Unsqueeze, Concat, Cast, Expand, Flatten, arithmetic, ...) evaluated
 * once when their inputs are known. A Shape of a graph tensor gives an
 * element marked as the batch size (nnlib__onnx_value.batch) for the
 * batch axis; the marks travel with the elements the folds copy, Reshape
 * later keeps the batch there, and arithmetic on it is refused. */
#include "onnx/import.h"

#include <math.h>
#include <string.h>

/* Folded results are small shape tensors or copies of weights; anything
 * larger than this is a hostile file. */
#define FOLD_MAX_ELEMENTS ((int64_t)1 << 28)

/* The element count of a tensor of `dims` into *count. The product of
 * its nonzero dims must fit an int64 as well: a tensor with a 0 dim holds
 * nothing, but the folds multiply and add its other dims (Flatten, Gather,
 * Concat), which a file could otherwise make overflow. */
static nnlib_status dims_count(nnlib__onnx_str name, const int64_t *dims,
                               size_t rank, int64_t *count) {
  int nl = (int)(name.n > 60 ? 60 : name.n);
  int64_t nonzero = 1;
  for (size_t k = 0; k < rank; k++) {
    if (dims[k] < 0)
      return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                          "ONNX: tensor '%.*s' has a negative dimension %lld",
                          nl, name.p, (long long)dims[k]);
    if (dims[k] != 0 && nnlib__mul_overflows(nonzero, dims[k], &nonzero))
      return nnlib__error(NNLIB_ERR_TOO_LARGE,
                          "ONNX: tensor '%.*s': the product of its dims "
                          "overflows",
                          nl, name.p);
  }
  *count = nonzero;
  for (size_t k = 0; k < rank; k++)
    if (dims[k] == 0)
      *count = 0;
  return NNLIB_OK;
}

nnlib_status nnlib__onnx_const_alloc(nnlib__onnx_import *im,
                                     nnlib__onnx_value *v, int32_t dtype,
                                     const int64_t *dims, size_t rank) {
  if (rank > NNLIB__ONNX_MAX_RANK)
    return nnlib__error(NNLIB_ERR_UNSUPPORTED,
                        "ONNX: constant '%.*s' of rank %zu (at most %d)",
                        (int)v->name.n, v->name.p, rank, NNLIB__ONNX_MAX_RANK);
  int64_t count = 0;
  NNLIB_TRY(dims_count(v->name, dims, rank, &count));
  if (count > FOLD_MAX_ELEMENTS)
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "ONNX: tensor '%.*s' of %lld elements (at most 2^28)",
                        (int)v->name.n, v->name.p, (long long)count);
  v->kind = NNLIB__VALUE_CONST;
  v->dtype = dtype;
  v->rank = rank;
  if (rank)
    memcpy(v->dims, dims, rank * sizeof *dims);
  v->count = count;
  v->f = NULL;
  v->i = NULL;
  v->batch = NULL;
  if (dtype == NNLIB__ONNX_FLOAT)
    v->f = nnlib__onnx_arena(im, (size_t)count, sizeof(float));
  else
    v->i = nnlib__onnx_arena(im, (size_t)count, sizeof(int64_t));
  if (v->f == NULL && v->i == NULL)
    return NNLIB_ERR_OUT_OF_MEMORY;
  return NNLIB_OK;
}

nnlib_status nnlib__onnx_const_from_tensor(nnlib__onnx_import *im,
                                           const nnlib__onnx_tensor *t,
                                           nnlib__onnx_value *v) {
  int nl = (int)(t->name.n > 60 ? 60 : t->name.n);
  if (t->external)
    return nnlib__error(NNLIB_ERR_UNSUPPORTED,
                        "ONNX: tensor '%.*s' keeps its data in an external "
                        "file (not read: pass a model with its weights "
                        "inside)",
                        nl, t->name.p);
  if (t->rank_overflow)
    return nnlib__error(NNLIB_ERR_UNSUPPORTED,
                        "ONNX: tensor '%.*s' has more than %d dims", nl,
                        t->name.p, NNLIB__ONNX_MAX_RANK);
  int32_t dtype = 0;
  switch (t->data_type) {
  case NNLIB__ONNX_FLOAT:
  case NNLIB__ONNX_DOUBLE:
    dtype = NNLIB__ONNX_FLOAT;
    break;
  case NNLIB__ONNX_INT32:
  case NNLIB__ONNX_INT64:
    dtype = NNLIB__ONNX_INT64;
    break;
  default:
    return nnlib__error(NNLIB_ERR_UNSUPPORTED,
                        "ONNX: tensor '%.*s' of data type %d (float, double, "
                        "int32 and int64 are read)",
                        nl, t->name.p, (int)t->data_type);
  }
  int64_t count = 0;
  NNLIB_TRY(dims_count(t->name, t->dims, t->rank, &count));
  /* the data must hold the dims' elements before anything is allocated */
  NNLIB_TRY(nnlib__onnx_tensor_data(t, count, NULL, NULL));
  NNLIB_TRY(nnlib__onnx_const_alloc(im, v, dtype, t->dims, t->rank));
  return nnlib__onnx_tensor_data(t, count, v->f, v->i);
}

/* ----------------------------------------------------------- helpers */

static double elem(const nnlib__onnx_value *v, int64_t k) {
  return v->dtype == NNLIB__ONNX_FLOAT ? (double)v->f[k] : (double)v->i[k];
}

static bool has_batch(const nnlib__onnx_value *v) {
  for (int64_t k = 0; v->batch != NULL && k < v->count; k++)
    if (v->batch[k])
      return true;
  return false;
}

/* Room for out's batch marks (all clear) when int64 source src has any:
 * the elements put_elem copies from src keep theirs. */
static nnlib_status mark_room(nnlib__onnx_import *im, nnlib__onnx_value *out,
                              const nnlib__onnx_value *src) {
  if (src->batch == NULL || out->dtype != NNLIB__ONNX_INT64 ||
      out->batch != NULL)
    return NNLIB_OK;
  out->batch = nnlib__onnx_arena(im, (size_t)out->count, sizeof *out->batch);
  return out->batch == NULL ? NNLIB_ERR_OUT_OF_MEMORY : NNLIB_OK;
}

/* Element `from` of src into element `to` of out, of src's dtype, with
 * its batch mark (mark_room made room for it). */
static void put_elem(nnlib__onnx_value *out, int64_t to,
                     const nnlib__onnx_value *src, int64_t from) {
  if (out->dtype == NNLIB__ONNX_FLOAT) {
    out->f[to] = src->f[from];
    return;
  }
  out->i[to] = src->i[from];
  if (out->batch != NULL)
    out->batch[to] = nnlib__onnx_is_batch(src, from);
}

static nnlib_status batch_refused(nnlib__onnx_import *im) {
  return nnlib__onnx_node_error(im, NNLIB_ERR_UNSUPPORTED,
                                "computes with the batch size, which is not "
                                "known at import");
}

/* A list of int64 from a constant (axes, shapes); v is NULL where the
 * node leaves the input out (an empty name). The elements that are the
 * batch size are marked in marks, or with marks NULL refused. */
static nnlib_status marked_list(nnlib__onnx_import *im,
                                const nnlib__onnx_value *v, const char *what,
                                int64_t *out, bool *marks, size_t *count) {
  if (v == NULL)
    return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE, "no %s", what);
  if (v->kind != NNLIB__VALUE_CONST || v->dtype != NNLIB__ONNX_INT64 ||
      v->rank > 1 || v->count > NNLIB__ONNX_MAX_RANK)
    return nnlib__onnx_node_error(im, NNLIB_ERR_UNSUPPORTED,
                                  "%s must be a constant int64 list of at "
                                  "most %d values",
                                  what, NNLIB__ONNX_MAX_RANK);
  /* const_alloc never makes a negative count; said here, as one would
   * leave out unwritten and *count huge (the analyzer's path) */
  if (v->count < 0)
    return nnlib__onnx_node_error(im, NNLIB_ERR_INTERNAL, "%s of %lld values",
                                  what, (long long)v->count);
  if (marks == NULL && has_batch(v))
    return batch_refused(im);
  for (int64_t k = 0; k < v->count; k++) {
    out[k] = v->i[k];
    if (marks != NULL)
      marks[k] = nnlib__onnx_is_batch(v, k);
  }
  *count = (size_t)v->count;
  return NNLIB_OK;
}

static nnlib_status int_list(nnlib__onnx_import *im, const nnlib__onnx_value *v,
                             const char *what, int64_t *out, size_t *count) {
  return marked_list(im, v, what, out, NULL, count);
}

static nnlib_status out_value(nnlib__onnx_import *im,
                              const nnlib__onnx_node *n,
                              nnlib__onnx_value **out) {
  if (n->output_count < 1 || n->outputs[0].n == 0)
    return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE, "no output");
  for (size_t k = 1; k < n->output_count; k++)
    if (n->outputs[k].n > 0)
      return nnlib__onnx_node_error(im, NNLIB_ERR_UNSUPPORTED,
                                    "output %zu ('%.*s') is not made", k,
                                    (int)n->outputs[k].n, n->outputs[k].p);
  return nnlib__onnx_define(im, n->outputs[0], out);
}

static nnlib_status copy_const(nnlib__onnx_import *im,
                               const nnlib__onnx_value *src, int32_t dtype,
                               const int64_t *dims, size_t rank,
                               nnlib__onnx_value *out) {
  if (dtype == NNLIB__ONNX_FLOAT && has_batch(src))
    return batch_refused(im);
  NNLIB_TRY(nnlib__onnx_const_alloc(im, out, dtype, dims, rank));
  if (out->count != src->count)
    return nnlib__onnx_node_error(im, NNLIB_ERR_SHAPE_MISMATCH,
                                  "%lld elements into a shape of %lld",
                                  (long long)src->count,
                                  (long long)out->count);
  NNLIB_TRY(mark_room(im, out, src));
  for (int64_t k = 0; k < src->count; k++) {
    if (dtype == src->dtype)
      put_elem(out, k, src, k);
    else if (dtype == NNLIB__ONNX_FLOAT)
      out->f[k] = (float)src->i[k];
    else if (isfinite(src->f[k]) && fabs(src->f[k]) < 9.2e18)
      out->i[k] = (int64_t)src->f[k];
    else
      return nnlib__onnx_node_error(im, NNLIB_ERR_UNSUPPORTED,
                                    "a float that no int64 holds");
  }
  return NNLIB_OK;
}

static int64_t norm_axis(int64_t axis, size_t rank) {
  return axis < 0 ? axis + (int64_t)rank : axis;
}

/* ----------------------------------------------------------- the ops */

static nnlib_status fold_constant(nnlib__onnx_import *im,
                                  const nnlib__onnx_node *n,
                                  nnlib__onnx_value *out) {
  if (n->attr_count != 1)
    return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE,
                                  "needs exactly one value attribute");
  const nnlib__onnx_attr *a = &n->attrs[0];
  if (a->list_overflow)
    return nnlib__onnx_node_error(im, NNLIB_ERR_UNSUPPORTED,
                                  "a list of more than %d values",
                                  NNLIB__ONNX_MAX_LIST);
  int64_t dims[1];
  if (nnlib__onnx_str_is(a->name, "value") && a->has_t) {
    nnlib__onnx_tensor t = a->t;
    t.name = out->name;
    return nnlib__onnx_const_from_tensor(im, &t, out);
  }
  if (nnlib__onnx_str_is(a->name, "value_float")) {
    NNLIB_TRY(nnlib__onnx_const_alloc(im, out, NNLIB__ONNX_FLOAT, dims, 0));
    out->f[0] = a->f;
    return NNLIB_OK;
  }
  if (nnlib__onnx_str_is(a->name, "value_int")) {
    NNLIB_TRY(nnlib__onnx_const_alloc(im, out, NNLIB__ONNX_INT64, dims, 0));
    out->i[0] = a->i;
    return NNLIB_OK;
  }
  if (nnlib__onnx_str_is(a->name, "value_floats")) {
    dims[0] = (int64_t)a->float_count;
    NNLIB_TRY(nnlib__onnx_const_alloc(im, out, NNLIB__ONNX_FLOAT, dims, 1));
    memcpy(out->f, a->floats, a->float_count * sizeof(float));
    return NNLIB_OK;
  }
  if (nnlib__onnx_str_is(a->name, "value_ints")) {
    dims[0] = (int64_t)a->int_count;
    NNLIB_TRY(nnlib__onnx_const_alloc(im, out, NNLIB__ONNX_INT64, dims, 1));
    memcpy(out->i, a->ints, a->int_count * sizeof(int64_t));
    return NNLIB_OK;
  }
  return nnlib__onnx_node_error(im, NNLIB_ERR_UNSUPPORTED,
                                "attribute '%.*s' (value, value_float(s) and "
                                "value_int(s) are read)",
                                (int)a->name.n, a->name.p);
}

/* Shape of a graph tensor (batch first; in whole-sample mode every axis
 * known) or of a constant. */
static nnlib_status fold_shape(nnlib__onnx_import *im,
                               const nnlib__onnx_node *n,
                               const nnlib__onnx_value *x,
                               nnlib__onnx_value *out) {
  int64_t full[NNLIB__ONNX_MAX_RANK + 1];
  size_t rank = 0;
  if (x->kind == NNLIB__VALUE_CONST) {
    rank = x->rank;
    memcpy(full, x->dims, rank * sizeof *full);
  } else {
    if (x->kind == NNLIB__VALUE_ZEROS || x->kind == NNLIB__VALUE_UNUSABLE)
      return nnlib__onnx_node_error(im, NNLIB_ERR_UNSUPPORTED,
                                    "the shape of a tensor nnlib does not "
                                    "make");
    /* ONNX's shape (MATMUL and RECURRENT keep it), the batch unknown */
    rank = nnlib__onnx_full_dims(im, x, full);
  }
  int64_t start = norm_axis(nnlib__onnx_attr_int(n, "start", 0), rank);
  int64_t end = norm_axis(nnlib__onnx_attr_int(n, "end", (int64_t)rank), rank);
  start = start < 0 ? 0 : start > (int64_t)rank ? (int64_t)rank : start;
  end = end < start ? start : end > (int64_t)rank ? (int64_t)rank : end;
  int64_t dims[1] = {end - start};
  NNLIB_TRY(nnlib__onnx_const_alloc(im, out, NNLIB__ONNX_INT64, dims, 1));
  memcpy(out->i, full + start, (size_t)(end - start) * sizeof *full);
  for (int64_t k = 0; k < dims[0]; k++) /* no file dim is negative */
    if (full[start + k] == NNLIB__ONNX_BATCH) {
      if (out->batch == NULL)
        out->batch = nnlib__onnx_arena(im, (size_t)dims[0], sizeof(bool));
      if (out->batch == NULL)
        return NNLIB_ERR_OUT_OF_MEMORY;
      out->batch[k] = true;
    }
  return NNLIB_OK;
}

/* Gather of constants along `axis`. */
static nnlib_status fold_gather(nnlib__onnx_import *im,
                                const nnlib__onnx_node *n,
                                const nnlib__onnx_value *data,
                                const nnlib__onnx_value *idx,
                                nnlib__onnx_value *out) {
  if (idx->dtype != NNLIB__ONNX_INT64 || data->rank == 0)
    return nnlib__onnx_node_error(im, NNLIB_ERR_UNSUPPORTED,
                                  "int64 indices into a tensor of rank >= 1");
  int64_t axis = norm_axis(nnlib__onnx_attr_int(n, "axis", 0), data->rank);
  if (axis < 0 || axis >= (int64_t)data->rank)
    return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE,
                                  "axis outside the data's rank");
  size_t rank = data->rank - 1 + idx->rank;
  if (rank > NNLIB__ONNX_MAX_RANK)
    return nnlib__onnx_node_error(im, NNLIB_ERR_UNSUPPORTED, "rank too high");
  int64_t dims[NNLIB__ONNX_MAX_RANK];
  size_t r = 0;
  int64_t outer = 1, inner = 1, len = data->dims[axis];
  for (int64_t k = 0; k < axis; k++)
    dims[r++] = data->dims[k], outer *= data->dims[k];
  for (size_t k = 0; k < idx->rank; k++)
    dims[r++] = idx->dims[k];
  for (size_t k = (size_t)axis + 1; k < data->rank; k++)
    dims[r++] = data->dims[k], inner *= data->dims[k];
  if (has_batch(idx))
    return batch_refused(im);
  NNLIB_TRY(nnlib__onnx_const_alloc(im, out, data->dtype, dims, rank));
  NNLIB_TRY(mark_room(im, out, data));
  for (int64_t j = 0; j < idx->count; j++) {
    int64_t at = idx->i[j] < 0 ? idx->i[j] + len : idx->i[j];
    if (at < 0 || at >= len)
      return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE,
                                    "index %lld outside 0..%lld",
                                    (long long)idx->i[j], (long long)len - 1);
    for (int64_t o = 0; o < outer; o++)
      for (int64_t i = 0; i < inner; i++)
        put_elem(out, (o * idx->count + j) * inner + i, data,
                 (o * len + at) * inner + i);
  }
  return NNLIB_OK;
}

/* New dims for Unsqueeze (insert) or Squeeze (remove) along axes. */
static nnlib_status squeeze_dims(nnlib__onnx_import *im, bool unsqueeze,
                                 const int64_t *dims, size_t rank,
                                 const int64_t *axes, size_t naxes,
                                 int64_t *out, size_t *out_rank) {
  size_t new_rank = unsqueeze ? rank + naxes : rank - (naxes ? naxes : 0);
  bool mark[2 * NNLIB__ONNX_MAX_RANK + 2] = {false};
  size_t span = unsqueeze ? new_rank : rank;
  /* out holds NNLIB__ONNX_MAX_RANK dims: refuse a longer result before
   * writing it (fuzz_onnx: an Unsqueeze past it overflowed the stack) */
  if (span > 2 * (size_t)NNLIB__ONNX_MAX_RANK ||
      (unsqueeze && new_rank > NNLIB__ONNX_MAX_RANK))
    return nnlib__onnx_node_error(im, NNLIB_ERR_UNSUPPORTED,
                                  "rank %zu above %d", new_rank,
                                  NNLIB__ONNX_MAX_RANK);
  for (size_t k = 0; k < naxes; k++) {
    int64_t a = norm_axis(axes[k], span);
    if (a < 0 || a >= (int64_t)span || mark[a])
      return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE,
                                    "axis %lld outside the rank or repeated",
                                    (long long)axes[k]);
    mark[a] = true;
  }
  size_t r = 0, from = 0;
  if (unsqueeze) {
    for (size_t k = 0; k < new_rank; k++)
      out[r++] = mark[k] ? 1 : dims[from++];
  } else {
    for (size_t k = 0; k < rank; k++) {
      bool drop = naxes ? mark[k] : dims[k] == 1;
      if (drop && dims[k] != 1)
        return nnlib__onnx_node_error(im, NNLIB_ERR_SHAPE_MISMATCH,
                                      "squeezes an axis of size %lld",
                                      (long long)dims[k]);
      if (!drop)
        out[r++] = dims[k];
    }
  }
  if (r > NNLIB__ONNX_MAX_RANK)
    return nnlib__onnx_node_error(im, NNLIB_ERR_UNSUPPORTED, "rank too high");
  *out_rank = r;
  return NNLIB_OK;
}

nnlib_status nnlib__onnx_squeeze_shape(nnlib__onnx_import *im, bool unsqueeze,
                                       const int64_t *dims, size_t rank,
                                       const int64_t *axes, size_t naxes,
                                       int64_t *out, size_t *out_rank) {
  return squeeze_dims(im, unsqueeze, dims, rank, axes, naxes, out, out_rank);
}

/* The axes of (Un)Squeeze: input 1 since opset 13, the attribute `axes`
 * before. */
static nnlib_status axes_of(nnlib__onnx_import *im, const nnlib__onnx_node *n,
                            int64_t *axes, size_t *count) {
  *count = 0;
  if (nnlib__onnx_opset(im) < 13) {
    const nnlib__onnx_attr *at = nnlib__onnx_find_attr(n, "axes");
    if (n->input_count > 1 && n->inputs[1].n > 0)
      return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE,
                                    "an axes input before opset 13 (axes "
                                    "were an attribute)");
    if (at == NULL)
      return NNLIB_OK;
    if (at->list_overflow || at->int_count > NNLIB__ONNX_MAX_RANK)
      return nnlib__onnx_node_error(im, NNLIB_ERR_UNSUPPORTED,
                                    "more than %d axes", NNLIB__ONNX_MAX_RANK);
    memcpy(axes, at->ints, at->int_count * sizeof *axes);
    *count = at->int_count;
    return NNLIB_OK;
  }
  nnlib__onnx_value *a = nnlib__onnx_input(im, n, 1);
  if (a == NULL)
    return NNLIB_OK;
  return int_list(im, a, "axes", axes, count);
}

nnlib_status nnlib__onnx_axes(nnlib__onnx_import *im,
                              const nnlib__onnx_node *n, int64_t *axes,
                              size_t *count) {
  return axes_of(im, n, axes, count);
}

/* Reshape's target: 0 copies the input's dim (unless allowzero), -1 is
 * inferred. */
nnlib_status nnlib__onnx_reshape_dims(nnlib__onnx_import *im,
                                      const nnlib__onnx_node *n,
                                      const int64_t *in, size_t in_rank,
                                      int64_t in_count,
                                      const int64_t *spec, size_t rank,
                                      int64_t *out) {
  bool allowzero = nnlib__onnx_attr_int(n, "allowzero", 0) != 0;
  int64_t known = 1, infer = -1;
  for (size_t k = 0; k < rank; k++) {
    int64_t d = spec[k];
    if (d == 0 && !allowzero) {
      if (k >= in_rank)
        return nnlib__onnx_node_error(im, NNLIB_ERR_SHAPE_MISMATCH,
                                      "0 copies a missing axis");
      d = in[k];
    }
    if (d == -1) {
      if (infer >= 0)
        return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE,
                                      "two -1 in the shape");
      infer = (int64_t)k;
      out[k] = 1;
      continue;
    }
    if (d < 0 || nnlib__mul_overflows(known, d, &known))
      return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE,
                                    "shape value %lld", (long long)spec[k]);
    out[k] = d;
  }
  if (infer >= 0) {
    if (known == 0 || in_count % known != 0)
      return nnlib__onnx_node_error(im, NNLIB_ERR_SHAPE_MISMATCH,
                                    "cannot infer -1 from %lld elements",
                                    (long long)in_count);
    out[infer] = in_count / known;
    known = in_count;
  }
  if (known != in_count)
    return nnlib__onnx_node_error(im, NNLIB_ERR_SHAPE_MISMATCH,
                                  "%lld elements into a shape of %lld",
                                  (long long)in_count, (long long)known);
  return NNLIB_OK;
}

static nnlib_status fold_concat(nnlib__onnx_import *im,
                                const nnlib__onnx_node *n,
                                nnlib__onnx_value *out) {
  const nnlib__onnx_value *first = nnlib__onnx_input(im, n, 0);
  if (first == NULL || first->rank == 0)
    return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE,
                                  "inputs of rank >= 1");
  int64_t axis = norm_axis(nnlib__onnx_attr_int(n, "axis", 0), first->rank);
  if (axis < 0 || axis >= (int64_t)first->rank)
    return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE, "bad axis");
  int64_t dims[NNLIB__ONNX_MAX_RANK];
  memcpy(dims, first->dims, first->rank * sizeof *dims);
  dims[axis] = 0;
  int32_t dtype = first->dtype;
  for (size_t k = 0; k < n->input_count; k++) {
    const nnlib__onnx_value *v = nnlib__onnx_input(im, n, k);
    if (v == NULL || v->rank != first->rank)
      return nnlib__onnx_node_error(im, NNLIB_ERR_SHAPE_MISMATCH,
                                    "inputs of different ranks");
    for (size_t d = 0; d < v->rank; d++)
      if ((int64_t)d != axis && v->dims[d] != first->dims[d])
        return nnlib__onnx_node_error(im, NNLIB_ERR_SHAPE_MISMATCH,
                                      "inputs differ off the axis");
    if (v->dtype == NNLIB__ONNX_FLOAT)
      dtype = NNLIB__ONNX_FLOAT;
    /* each input's dims fit (dims_count), their sum along axis may not */
    if (__builtin_add_overflow(dims[axis], v->dims[axis], &dims[axis]))
      return nnlib__onnx_node_error(im, NNLIB_ERR_TOO_LARGE,
                                    "the concatenated axis overflows");
  }
  NNLIB_TRY(nnlib__onnx_const_alloc(im, out, dtype, dims, first->rank));
  for (size_t k = 0; k < n->input_count; k++) {
    const nnlib__onnx_value *v = nnlib__onnx_input(im, n, k);
    if (dtype == NNLIB__ONNX_FLOAT && has_batch(v))
      return batch_refused(im);
    NNLIB_TRY(mark_room(im, out, v));
  }
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; d++)
    outer *= dims[d];
  for (size_t d = (size_t)axis + 1; d < first->rank; d++)
    inner *= dims[d];
  int64_t at = 0;
  for (size_t k = 0; k < n->input_count; k++) {
    const nnlib__onnx_value *v = nnlib__onnx_input(im, n, k);
    int64_t w = v->dims[axis] * inner;
    for (int64_t o = 0; o < outer; o++)
      for (int64_t j = 0; j < w; j++) {
        int64_t to = o * dims[axis] * inner + at + j;
        if (dtype == NNLIB__ONNX_FLOAT)
          out->f[to] = (float)elem(v, o * w + j);
        else
          put_elem(out, to, v, o * w + j);
      }
    at += w;
  }
  return NNLIB_OK;
}

/* numpy broadcasting of a and b into dims; false when they do not. */
static bool broadcast(const nnlib__onnx_value *a, const int64_t *bdims,
                      size_t brank, int64_t *dims, size_t *rank) {
  size_t r = a->rank > brank ? a->rank : brank;
  for (size_t k = 0; k < r; k++) {
    int64_t da = k < r - a->rank ? 1 : a->dims[k - (r - a->rank)];
    int64_t db = k < r - brank ? 1 : bdims[k - (r - brank)];
    if (da != db && da != 1 && db != 1)
      return false;
    dims[k] = da == 1 ? db : da;
  }
  *rank = r;
  return true;
}

/* Flat index into v of the element at out's flat index k. */
static int64_t source_index(const int64_t *dims, size_t rank, int64_t k,
                            const int64_t *vdims, size_t vrank) {
  int64_t at = 0, stride = 1;
  for (size_t d = rank; d-- > 0;) {
    int64_t coord = k % dims[d];
    k /= dims[d];
    size_t vd = d + vrank - rank;
    if (d >= rank - vrank) {
      if (vdims[vd] != 1)
        at += coord * stride;
      stride *= vdims[vd];
    }
  }
  return at;
}

static nnlib_status fold_binary(nnlib__onnx_import *im, char op,
                                const nnlib__onnx_value *a,
                                const nnlib__onnx_value *b,
                                nnlib__onnx_value *out) {
  if (has_batch(a) || has_batch(b))
    return batch_refused(im);
  int64_t dims[NNLIB__ONNX_MAX_RANK];
  size_t rank = 0;
  if (!broadcast(a, b->dims, b->rank, dims, &rank))
    return nnlib__onnx_node_error(im, NNLIB_ERR_SHAPE_MISMATCH,
                                  "shapes that do not broadcast");
  int32_t dtype = a->dtype == NNLIB__ONNX_FLOAT || b->dtype == NNLIB__ONNX_FLOAT
                      ? NNLIB__ONNX_FLOAT
                      : NNLIB__ONNX_INT64;
  NNLIB_TRY(nnlib__onnx_const_alloc(im, out, dtype, dims, rank));
  for (int64_t k = 0; k < out->count; k++) {
    int64_t ia = source_index(dims, rank, k, a->dims, a->rank);
    int64_t ib = source_index(dims, rank, k, b->dims, b->rank);
    if (dtype == NNLIB__ONNX_FLOAT) {
      double x = elem(a, ia), y = elem(b, ib);
      double r = op == '+' ? x + y : op == '-' ? x - y : op == '*' ? x * y
                                                                   : x / y;
      out->f[k] = (float)r;
      continue;
    }
    int64_t x = a->i[ia], y = b->i[ib], r;
    bool bad = false;
    if (op == '+')
      bad = __builtin_add_overflow(x, y, &r);
    else if (op == '-')
      bad = __builtin_sub_overflow(x, y, &r);
    else if (op == '*')
      bad = __builtin_mul_overflow(x, y, &r);
    else if (y == 0 || (x == INT64_MIN && y == -1))
      bad = true;
    else /* ONNX integer Div truncates like C */
      r = x / y;
    if (bad)
      return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE,
                                    "integer overflow or division by zero");
    out->i[k] = r;
  }
  return NNLIB_OK;
}

static nnlib_status fold_expand(nnlib__onnx_import *im,
                                const nnlib__onnx_value *x,
                                const nnlib__onnx_value *shape,
                                nnlib__onnx_value *out) {
  int64_t spec[NNLIB__ONNX_MAX_RANK] = {0}, dims[NNLIB__ONNX_MAX_RANK];
  size_t n = 0, rank = 0;
  NNLIB_TRY(int_list(im, shape, "Expand's shape", spec, &n));
  for (size_t k = 0; k < n; k++)
    if (spec[k] < 0)
      return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE,
                                    "a negative dimension %lld",
                                    (long long)spec[k]);
  if (has_batch(x))
    return batch_refused(im);
  if (!broadcast(x, spec, n, dims, &rank))
    return nnlib__onnx_node_error(im, NNLIB_ERR_SHAPE_MISMATCH,
                                  "shapes that do not broadcast");
  NNLIB_TRY(nnlib__onnx_const_alloc(im, out, x->dtype, dims, rank));
  for (int64_t k = 0; k < out->count; k++) {
    put_elem(out, k, x, source_index(dims, rank, k, x->dims, x->rank));
  }
  return NNLIB_OK;
}

static nnlib_status fold_transpose(nnlib__onnx_import *im,
                                   const nnlib__onnx_node *n,
                                   const nnlib__onnx_value *x,
                                   nnlib__onnx_value *out) {
  int64_t perm[NNLIB__ONNX_MAX_RANK], dims[NNLIB__ONNX_MAX_RANK];
  const nnlib__onnx_attr *p = nnlib__onnx_find_attr(n, "perm");
  bool seen[NNLIB__ONNX_MAX_RANK] = {false};
  for (size_t k = 0; k < x->rank; k++)
    perm[k] = p ? (k < p->int_count ? p->ints[k] : -1)
                : (int64_t)(x->rank - 1 - k);
  if (p != NULL && p->int_count != x->rank)
    return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE,
                                  "perm of another length than the rank");
  for (size_t k = 0; k < x->rank; k++) {
    if (perm[k] < 0 || perm[k] >= (int64_t)x->rank || seen[perm[k]])
      return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE, "bad perm");
    seen[perm[k]] = true;
    dims[k] = x->dims[perm[k]];
  }
  NNLIB_TRY(nnlib__onnx_const_alloc(im, out, x->dtype, dims, x->rank));
  NNLIB_TRY(mark_room(im, out, x));
  int64_t stride[NNLIB__ONNX_MAX_RANK] = {0};
  int64_t s = 1;
  for (size_t k = x->rank; k-- > 0;)
    stride[k] = s, s *= x->dims[k];
  for (int64_t k = 0; k < out->count; k++) {
    int64_t rest = k, from = 0;
    for (size_t d = x->rank; d-- > 0;) {
      from += (rest % dims[d]) * stride[perm[d]];
      rest /= dims[d];
    }
    put_elem(out, k, x, from);
  }
  return NNLIB_OK;
}

/* Input k of a Slice as an int64 list of `want` values (absent: NULL,
 * *given false). */
static nnlib_status slice_list(nnlib__onnx_import *im,
                               const nnlib__onnx_node *n, size_t k,
                               const char *what, size_t want, int64_t *out,
                               bool *given) {
  const nnlib__onnx_value *v = nnlib__onnx_input(im, n, k);
  size_t count = 0;
  *given = v != NULL;
  if (v == NULL)
    return NNLIB_OK;
  NNLIB_TRY(int_list(im, v, what, out, &count));
  if (count != want)
    return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE,
                                  "%s holds %zu values, starts %zu", what,
                                  count, want);
  return NNLIB_OK;
}

/* One axis of a Slice: ONNX's clamping of start and end into the axis of
 * size dim, and how many elements the step then takes. */
static int64_t slice_axis(int64_t dim, int64_t start, int64_t end,
                          int64_t step, int64_t *first) {
  start = start < 0 ? start + dim : start;
  end = end < 0 ? end + dim : end;
  if (step > 0) {
    start = start < 0 ? 0 : start > dim ? dim : start;
    end = end < 0 ? 0 : end > dim ? dim : end;
    *first = start;
    return end > start ? (end - start - 1) / step + 1 : 0;
  }
  start = start < 0 ? 0 : start > dim - 1 ? dim - 1 : start;
  end = end < -1 ? -1 : end > dim - 1 ? dim - 1 : end;
  *first = start;
  if (step < -dim) /* takes one element, as any step past the axis */
    step = -dim - 1;
  return start > end ? (start - end - 1) / -step + 1 : 0;
}

/* Slice (opset 10 on: starts, ends, axes and steps are inputs) of a
 * constant, such as the leading dims of a Shape that torch's flatten(2)
 * keeps. */
static nnlib_status fold_slice(nnlib__onnx_import *im,
                               const nnlib__onnx_node *n,
                               const nnlib__onnx_value *x,
                               nnlib__onnx_value *out) {
  int64_t starts[NNLIB__ONNX_MAX_RANK], ends[NNLIB__ONNX_MAX_RANK];
  int64_t axes[NNLIB__ONNX_MAX_RANK], steps[NNLIB__ONNX_MAX_RANK];
  size_t count = 0;
  bool given = false, seen[NNLIB__ONNX_MAX_RANK] = {false};
  NNLIB_TRY(int_list(im, nnlib__onnx_input(im, n, 1), "Slice's starts",
                     starts, &count));
  NNLIB_TRY(slice_list(im, n, 2, "Slice's ends", count, ends, &given));
  if (!given)
    return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE, "no ends");
  NNLIB_TRY(slice_list(im, n, 3, "Slice's axes", count, axes, &given));
  for (size_t k = 0; k < count && !given; k++)
    axes[k] = (int64_t)k;
  NNLIB_TRY(slice_list(im, n, 4, "Slice's steps", count, steps, &given));
  for (size_t k = 0; k < count && !given; k++)
    steps[k] = 1;
  int64_t first[NNLIB__ONNX_MAX_RANK], step[NNLIB__ONNX_MAX_RANK];
  int64_t dims[NNLIB__ONNX_MAX_RANK], stride[NNLIB__ONNX_MAX_RANK];
  for (size_t d = 0; d < x->rank; d++) {
    first[d] = 0;
    step[d] = 1;
    dims[d] = x->dims[d];
  }
  for (size_t k = 0; k < count; k++) {
    int64_t a = norm_axis(axes[k], x->rank);
    if (a < 0 || a >= (int64_t)x->rank || seen[a] || steps[k] == 0)
      return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE,
                                    "axis %lld or step %lld out of place",
                                    (long long)axes[k], (long long)steps[k]);
    seen[a] = true;
    step[a] = steps[k];
    dims[a] = slice_axis(x->dims[a], starts[k], ends[k], steps[k], &first[a]);
  }
  NNLIB_TRY(nnlib__onnx_const_alloc(im, out, x->dtype, dims, x->rank));
  NNLIB_TRY(mark_room(im, out, x));
  for (size_t d = 0; d < x->rank; d++)
    if (dims[d] == 0) /* an empty slice: nothing to copy (nor divide by) */
      return NNLIB_OK;
  int64_t s = 1;
  for (size_t d = x->rank; d-- > 0;)
    stride[d] = s, s *= x->dims[d];
  for (int64_t k = 0; k < out->count; k++) {
    int64_t rest = k, from = 0;
    for (size_t d = x->rank; d-- > 0;) {
      from += (first[d] + (rest % dims[d]) * step[d]) * stride[d];
      rest /= dims[d];
    }
    put_elem(out, k, x, from);
  }
  return NNLIB_OK;
}

static bool all_const(nnlib__onnx_import *im, const nnlib__onnx_node *n) {
  for (size_t k = 0; k < n->input_count; k++) {
    nnlib__onnx_value *v = nnlib__onnx_input(im, n, k);
    if (v != NULL && v->kind != NNLIB__VALUE_CONST)
      return false;
  }
  return true;
}

/* Zeros of a batch-sized shape pass through Identity, Cast and (Un)Squeeze
 * as zeros of the new shape (the batch kept as the dim NNLIB__ONNX_BATCH). */
static nnlib_status fold_zeros(nnlib__onnx_import *im,
                               const nnlib__onnx_node *n,
                               const nnlib__onnx_value *x,
                               nnlib__onnx_value *out, bool *folded) {
  nnlib__onnx_str op = n->op_type;
  bool squeeze = nnlib__onnx_str_is(op, "Squeeze"),
       unsqueeze = nnlib__onnx_str_is(op, "Unsqueeze");
  if (!squeeze && !unsqueeze && !nnlib__onnx_str_is(op, "Identity") &&
      !nnlib__onnx_str_is(op, "Cast"))
    return NNLIB_OK;
  for (size_t k = 1; k < n->input_count; k++) {
    nnlib__onnx_value *v = nnlib__onnx_input(im, n, k);
    if (v != NULL && v->kind != NNLIB__VALUE_CONST)
      return NNLIB_OK;
  }
  NNLIB_TRY(out_value(im, n, &out));
  *folded = true;
  int64_t dims[2 * NNLIB__ONNX_MAX_RANK + 2];
  size_t rank = x->rank;
  memcpy(dims, x->dims, rank * sizeof *dims);
  if (squeeze || unsqueeze) {
    int64_t axes[NNLIB__ONNX_MAX_RANK];
    size_t naxes = 0;
    NNLIB_TRY(axes_of(im, n, axes, &naxes));
    NNLIB_TRY(squeeze_dims(im, unsqueeze, x->dims, x->rank, axes, naxes, dims,
                           &rank));
  }
  out->kind = NNLIB__VALUE_ZEROS;
  out->dtype = x->dtype;
  out->rank = rank;
  memcpy(out->dims, dims, rank * sizeof *dims);
  return NNLIB_OK;
}

static nnlib_status fold_reshape(nnlib__onnx_import *im,
                                 const nnlib__onnx_node *n,
                                 const nnlib__onnx_value *x,
                                 const nnlib__onnx_value *shape,
                                 nnlib__onnx_value *out) {
  int64_t spec[NNLIB__ONNX_MAX_RANK], dims[NNLIB__ONNX_MAX_RANK];
  size_t rank = 0;
  NNLIB_TRY(int_list(im, shape, "Reshape's shape", spec, &rank));
  NNLIB_TRY(nnlib__onnx_reshape_dims(im, n, x->dims, x->rank, x->count, spec,
                                     rank, dims));
  return copy_const(im, x, x->dtype, dims, rank, out);
}

static nnlib_status fold_squeeze(nnlib__onnx_import *im,
                                 const nnlib__onnx_node *n, bool unsqueeze,
                                 const nnlib__onnx_value *x,
                                 nnlib__onnx_value *out) {
  int64_t axes[NNLIB__ONNX_MAX_RANK], dims[NNLIB__ONNX_MAX_RANK];
  size_t naxes = 0, rank = 0;
  NNLIB_TRY(axes_of(im, n, axes, &naxes));
  NNLIB_TRY(squeeze_dims(im, unsqueeze, x->dims, x->rank, axes, naxes, dims,
                         &rank));
  return copy_const(im, x, x->dtype, dims, rank, out);
}

static nnlib_status fold_constant_of_shape(nnlib__onnx_import *im,
                                           const nnlib__onnx_node *n,
                                           const nnlib__onnx_value *shape,
                                           nnlib__onnx_value *out) {
  int64_t dims[NNLIB__ONNX_MAX_RANK];
  bool marks[NNLIB__ONNX_MAX_RANK];
  size_t rank = 0;
  NNLIB_TRY(
      marked_list(im, shape, "ConstantOfShape's shape", dims, marks, &rank));
  const nnlib__onnx_attr *a = nnlib__onnx_find_attr(n, "value");
  nnlib__onnx_value fill;
  memset(&fill, 0, sizeof fill);
  fill.name = out->name;
  if (a != NULL && a->has_t)
    NNLIB_TRY(nnlib__onnx_const_from_tensor(im, &a->t, &fill));
  if (a != NULL && fill.count != 1)
    return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE,
                                  "value must hold one element");
  bool batch = false;
  for (size_t k = 0; k < rank; k++) {
    if (dims[k] < 0 && !marks[k])
      return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE,
                                    "a negative dimension");
    if (marks[k]) /* ZEROS' dims hold the batch as NNLIB__ONNX_BATCH */
      dims[k] = NNLIB__ONNX_BATCH;
    batch |= marks[k];
  }
  int32_t dtype = a != NULL ? fill.dtype : NNLIB__ONNX_FLOAT;
  if (batch) { /* e.g. a recurrent layer's zero initial state */
    if (a != NULL && (dtype == NNLIB__ONNX_FLOAT ? fill.f[0] != 0.0f
                                                 : fill.i[0] != 0))
      return batch_refused(im);
    out->kind = NNLIB__VALUE_ZEROS;
    out->dtype = dtype;
    out->rank = rank;
    memcpy(out->dims, dims, rank * sizeof *dims);
    return NNLIB_OK;
  }
  NNLIB_TRY(nnlib__onnx_const_alloc(im, out, dtype, dims, rank));
  for (int64_t k = 0; k < out->count; k++) {
    if (dtype == NNLIB__ONNX_FLOAT)
      out->f[k] = a != NULL ? fill.f[0] : 0.0f;
    else
      out->i[k] = fill.i[0];
  }
  return NNLIB_OK;
}

static nnlib_status fold_cast(nnlib__onnx_import *im,
                              const nnlib__onnx_node *n,
                              const nnlib__onnx_value *x,
                              nnlib__onnx_value *out) {
  int64_t to = nnlib__onnx_attr_int(n, "to", 0);
  int32_t dtype = 0;
  if (to == NNLIB__ONNX_FLOAT || to == NNLIB__ONNX_DOUBLE)
    dtype = NNLIB__ONNX_FLOAT;
  else if (to == NNLIB__ONNX_INT64 || to == NNLIB__ONNX_INT32)
    dtype = NNLIB__ONNX_INT64;
  else
    return nnlib__onnx_node_error(im, NNLIB_ERR_UNSUPPORTED,
                                  "to = %lld (float, double, int32 and int64 "
                                  "are folded)",
                                  (long long)to);
  return copy_const(im, x, dtype, x->dims, x->rank, out);
}

/* Flatten of a constant: [prod(dims before axis), prod(dims from axis)],
 * the same elements (e.g. a LayerNormalization scale flattened to [1, D]
 * in the operator's function body). */
static nnlib_status fold_flatten(nnlib__onnx_import *im,
                                 const nnlib__onnx_node *n,
                                 const nnlib__onnx_value *x,
                                 nnlib__onnx_value *out) {
  int64_t axis = norm_axis(nnlib__onnx_attr_int(n, "axis", 1), x->rank);
  if (axis < 0 || axis > (int64_t)x->rank)
    return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE,
                                  "axis outside 0..rank");
  int64_t dims[2] = {1, 1};
  for (size_t k = 0; k < x->rank; k++)
    dims[(int64_t)k < axis ? 0 : 1] *= x->dims[k];
  return copy_const(im, x, x->dtype, dims, 2, out);
}

/* Size: the element count of a constant (a shape vector's is its rank,
 * known even when it holds the batch). */
static nnlib_status fold_size(nnlib__onnx_import *im,
                              const nnlib__onnx_value *x,
                              nnlib__onnx_value *out) {
  int64_t dims[1] = {0}; /* rank 0: a scalar */
  NNLIB_TRY(nnlib__onnx_const_alloc(im, out, NNLIB__ONNX_INT64, dims, 0));
  out->i[0] = x->count;
  return NNLIB_OK;
}

static nnlib_status fold_neg(nnlib__onnx_import *im,
                             const nnlib__onnx_value *x,
                             nnlib__onnx_value *out) {
  if (has_batch(x))
    return batch_refused(im);
  NNLIB_TRY(copy_const(im, x, x->dtype, x->dims, x->rank, out));
  for (int64_t k = 0; k < out->count; k++) {
    if (out->dtype == NNLIB__ONNX_FLOAT)
      out->f[k] = -out->f[k];
    else if (out->i[k] == INT64_MIN) /* a file's value: no int64 negates it */
      return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE,
                                    "integer overflow");
    else
      out->i[k] = -out->i[k];
  }
  return NNLIB_OK;
}

nnlib_status nnlib__onnx_fold_node(nnlib__onnx_import *im, size_t k,
                                   bool *folded) {
  const nnlib__onnx_node *n = &im->onnx->graph.nodes[k];
  nnlib__onnx_str op = n->op_type;
  *folded = false;
  nnlib__onnx_value *x = nnlib__onnx_input(im, n, 0);
  nnlib__onnx_value *y = nnlib__onnx_input(im, n, 1);
  bool is_shape = nnlib__onnx_str_is(op, "Shape");
  if (nnlib__onnx_str_is(op, "Constant")) {
    if (n->input_count != 0)
      return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE,
                                    "a Constant with inputs");
  } else if (!is_shape && x != NULL && x->kind == NNLIB__VALUE_ZEROS) {
    return fold_zeros(im, n, x, NULL, folded);
  } else if (!is_shape && (x == NULL || !all_const(im, n))) {
    return NNLIB_OK;
  } else if (is_shape && x == NULL) {
    return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE, "no input");
  }
  nnlib__onnx_value *out = NULL;
  NNLIB_TRY(out_value(im, n, &out));
  *folded = true;
  if (nnlib__onnx_str_is(op, "Constant"))
    return fold_constant(im, n, out);
  if (is_shape)
    return fold_shape(im, n, x, out);
  if (nnlib__onnx_str_is(op, "Identity") || nnlib__onnx_str_is(op, "Dropout"))
    return copy_const(im, x, x->dtype, x->dims, x->rank, out);
  if (nnlib__onnx_str_is(op, "Cast"))
    return fold_cast(im, n, x, out);
  if (nnlib__onnx_str_is(op, "Unsqueeze") || nnlib__onnx_str_is(op, "Squeeze"))
    return fold_squeeze(im, n, nnlib__onnx_str_is(op, "Unsqueeze"), x, out);
  if (nnlib__onnx_str_is(op, "Concat"))
    return fold_concat(im, n, out);
  if (nnlib__onnx_str_is(op, "ConstantOfShape"))
    return fold_constant_of_shape(im, n, x, out);
  if (nnlib__onnx_str_is(op, "Transpose"))
    return fold_transpose(im, n, x, out);
  if (nnlib__onnx_str_is(op, "Flatten"))
    return fold_flatten(im, n, x, out);
  if (nnlib__onnx_str_is(op, "Size"))
    return fold_size(im, x, out);
  if (nnlib__onnx_str_is(op, "Neg"))
    return fold_neg(im, x, out);
  if (nnlib__onnx_str_is(op, "Slice"))
    return fold_slice(im, n, x, out);
  if (y == NULL)
    return nnlib__onnx_node_error(im, NNLIB_ERR_UNSUPPORTED,
                                  "not folded (all inputs are constant, but "
                                  "this operator is not evaluated at import)");
  if (nnlib__onnx_str_is(op, "Gather"))
    return fold_gather(im, n, x, y, out);
  if (nnlib__onnx_str_is(op, "Reshape"))
    return fold_reshape(im, n, x, y, out);
  if (nnlib__onnx_str_is(op, "Expand"))
    return fold_expand(im, x, y, out);
  const char *ops[4] = {"Add", "Sub", "Mul", "Div"};
  for (int b = 0; b < 4; b++)
    if (nnlib__onnx_str_is(op, ops[b]))
      return fold_binary(im, "+-*/"[b], x, y, out);
  return nnlib__onnx_node_error(im, NNLIB_ERR_UNSUPPORTED,
                                "not folded (all inputs are constant, but "
                                "this operator is not evaluated at import)");
}
