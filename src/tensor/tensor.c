/* tensor.c - row-major tensors of float32 or int32 elements (4 bytes
 * either way), owned or wrapping caller memory. */
#include "tensor/tensor.h"

#include <string.h>

static nnlib_status check_shape(const int64_t *shape, size_t rank,
                                int64_t *size, const char *what) {
  NNLIB_CHECK_ARG(shape != NULL, "%s: shape is NULL", what);
  NNLIB_CHECK_ARG(rank >= 1 && rank <= NNLIB_MAX_RANK,
                  "%s: rank %zu is outside 1..%d", what, rank, NNLIB_MAX_RANK);
  return nnlib__shape_size(shape, rank, size, what);
}

void nnlib__tensor_view(nnlib_tensor *t, float *data, const int64_t *shape,
                        size_t rank) {
  memset(t, 0, sizeof *t);
  t->data = data;
  t->rank = rank;
  t->size = 1;
  for (size_t i = 0; i < rank; i++) {
    t->shape[i] = shape[i];
    t->size *= shape[i];
  }
  t->owns_data = false;
}

_Static_assert(sizeof(int32_t) == sizeof(float),
               "int32 and float tensors share one element size");

static nnlib_status new_tensor(nnlib_tensor **out, float *data,
                               nnlib_dtype dtype, const int64_t *shape,
                               size_t rank, const char *what) {
  NNLIB_CHECK_ARG(out != NULL, "%s: out is NULL", what);
  *out = NULL;
  int64_t size;
  NNLIB_TRY(check_shape(shape, rank, &size, what));
  nnlib_tensor *t = nnlib__alloc(sizeof *t);
  if (t == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY, "%s: no memory for the handle",
                        what);
  bool owns = data == NULL;
  if (owns) {
    data = nnlib__calloc((size_t)size, sizeof(float));
    if (data == NULL) {
      nnlib__free(t);
      return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                          "%s: no memory for %lld floats", what,
                          (long long)size);
    }
  }
  nnlib__tensor_view(t, data, shape, rank);
  t->owns_data = owns;
  t->dtype = dtype;
  *out = t;
  return NNLIB_OK;
}

nnlib_status nnlib_tensor_create(nnlib_tensor **out, const int64_t *shape,
                                 size_t rank) {
  return new_tensor(out, NULL, NNLIB_DTYPE_FLOAT32, shape, rank,
                    "nnlib_tensor_create");
}

nnlib_status nnlib_tensor_create_int32(nnlib_tensor **out,
                                       const int64_t *shape, size_t rank) {
  return new_tensor(out, NULL, NNLIB_DTYPE_INT32, shape, rank,
                    "nnlib_tensor_create_int32");
}

nnlib_status nnlib_tensor_wrap_int32(nnlib_tensor **out, int32_t *data,
                                     const int64_t *shape, size_t rank) {
  if (out != NULL)
    *out = NULL;
  NNLIB_CHECK_ARG(data != NULL, "nnlib_tensor_wrap_int32: data is NULL");
  return new_tensor(out, (float *)(void *)data, NNLIB_DTYPE_INT32, shape,
                    rank, "nnlib_tensor_wrap_int32");
}

nnlib_dtype nnlib_tensor_get_dtype(const nnlib_tensor *t) {
  return t ? t->dtype : NNLIB_DTYPE_FLOAT32;
}

int32_t *nnlib_tensor_get_data_int32(nnlib_tensor *t) {
  return (t && t->dtype == NNLIB_DTYPE_INT32) ? (int32_t *)(void *)t->data
                                               : NULL;
}

const int32_t *nnlib_tensor_get_data_int32_const(const nnlib_tensor *t) {
  return (t && t->dtype == NNLIB_DTYPE_INT32)
             ? (const int32_t *)(const void *)t->data
             : NULL;
}

nnlib_status nnlib_tensor_wrap(nnlib_tensor **out, float *data,
                               const int64_t *shape, size_t rank) {
  if (out != NULL)
    *out = NULL;
  NNLIB_CHECK_ARG(data != NULL, "nnlib_tensor_wrap: data is NULL");
  return new_tensor(out, data, NNLIB_DTYPE_FLOAT32, shape, rank,
                    "nnlib_tensor_wrap");
}

void nnlib_tensor_free(nnlib_tensor *t) {
  if (t == NULL)
    return;
  if (t->owns_data)
    nnlib__free(t->data);
  nnlib__free(t);
}

size_t nnlib_tensor_get_rank(const nnlib_tensor *t) {
  return t ? t->rank : 0;
}

int64_t nnlib_tensor_get_dim(const nnlib_tensor *t, size_t axis) {
  return (t && axis < t->rank) ? t->shape[axis] : 0;
}

const int64_t *nnlib_tensor_get_shape(const nnlib_tensor *t) {
  return t ? t->shape : NULL;
}

int64_t nnlib_tensor_get_size(const nnlib_tensor *t) { return t ? t->size : 0; }

float *nnlib_tensor_get_data(nnlib_tensor *t) {
  return (t && t->dtype == NNLIB_DTYPE_FLOAT32) ? t->data : NULL;
}

const float *nnlib_tensor_get_data_const(const nnlib_tensor *t) {
  return (t && t->dtype == NNLIB_DTYPE_FLOAT32) ? t->data : NULL;
}

nnlib_status nnlib_tensor_set_shape(nnlib_tensor *t, const int64_t *shape,
                                    size_t rank) {
  NNLIB_CHECK_ARG(t != NULL, "nnlib_tensor_set_shape: tensor is NULL");
  int64_t size;
  NNLIB_TRY(check_shape(shape, rank, &size, "nnlib_tensor_set_shape"));
  if (size != t->size)
    return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                        "nnlib_tensor_set_shape: new shape has %lld elements, "
                        "tensor has %lld",
                        (long long)size, (long long)t->size);
  float *data = t->data;
  bool owns = t->owns_data;
  nnlib_dtype dtype = t->dtype;
  nnlib__tensor_view(t, data, shape, rank);
  t->owns_data = owns;
  t->dtype = dtype;
  return NNLIB_OK;
}

nnlib_status nnlib_tensor_fill(nnlib_tensor *t, float value) {
  NNLIB_CHECK_ARG(t != NULL, "nnlib_tensor_fill: tensor is NULL");
  if (t->dtype == NNLIB_DTYPE_INT32) {
    /* the float range check first: converting an out-of-range float is UB */
    NNLIB_CHECK_ARG(value >= -2147483648.0f && value < 2147483648.0f &&
                        value == (float)(int32_t)value,
                    "nnlib_tensor_fill: %g is not an int32 value for an "
                    "int32 tensor",
                    (double)value);
    int32_t *ids = (int32_t *)(void *)t->data;
    for (int64_t i = 0; i < t->size; i++)
      ids[i] = (int32_t)value;
    return NNLIB_OK;
  }
  for (int64_t i = 0; i < t->size; i++)
    t->data[i] = value;
  return NNLIB_OK;
}

nnlib_status nnlib_tensor_copy(nnlib_tensor *dst, const nnlib_tensor *src) {
  NNLIB_CHECK_ARG(dst != NULL && src != NULL,
                  "nnlib_tensor_copy: dst or src is NULL");
  if (dst->dtype != src->dtype)
    return nnlib__error(NNLIB_ERR_DTYPE,
                        "nnlib_tensor_copy: dst holds %s, src %s",
                        dst->dtype == NNLIB_DTYPE_INT32 ? "int32" : "float32",
                        src->dtype == NNLIB_DTYPE_INT32 ? "int32" : "float32");
  if (dst->size != src->size)
    return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                        "nnlib_tensor_copy: dst has %lld elements, src %lld",
                        (long long)dst->size, (long long)src->size);
  memmove(dst->data, src->data, (size_t)dst->size * sizeof(float));
  return NNLIB_OK;
}
