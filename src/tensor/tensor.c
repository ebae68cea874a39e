/* tensor.c - float32 row-major tensors, owned or wrapping caller memory. */
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

static nnlib_status new_tensor(nnlib_tensor **out, float *data,
                               const int64_t *shape, size_t rank,
                               const char *what) {
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
  *out = t;
  return NNLIB_OK;
}

nnlib_status nnlib_tensor_create(nnlib_tensor **out, const int64_t *shape,
                                 size_t rank) {
  return new_tensor(out, NULL, shape, rank, "nnlib_tensor_create");
}

nnlib_status nnlib_tensor_wrap(nnlib_tensor **out, float *data,
                               const int64_t *shape, size_t rank) {
  if (out != NULL)
    *out = NULL;
  NNLIB_CHECK_ARG(data != NULL, "nnlib_tensor_wrap: data is NULL");
  return new_tensor(out, data, shape, rank, "nnlib_tensor_wrap");
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

float *nnlib_tensor_get_data(nnlib_tensor *t) { return t ? t->data : NULL; }

const float *nnlib_tensor_get_data_const(const nnlib_tensor *t) {
  return t ? t->data : NULL;
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
  nnlib__tensor_view(t, data, shape, rank);
  t->owns_data = owns;
  return NNLIB_OK;
}

nnlib_status nnlib_tensor_fill(nnlib_tensor *t, float value) {
  NNLIB_CHECK_ARG(t != NULL, "nnlib_tensor_fill: tensor is NULL");
  for (int64_t i = 0; i < t->size; i++)
    t->data[i] = value;
  return NNLIB_OK;
}

nnlib_status nnlib_tensor_copy(nnlib_tensor *dst, const nnlib_tensor *src) {
  NNLIB_CHECK_ARG(dst != NULL && src != NULL,
                  "nnlib_tensor_copy: dst or src is NULL");
  if (dst->size != src->size)
    return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                        "nnlib_tensor_copy: dst has %lld elements, src %lld",
                        (long long)dst->size, (long long)src->size);
  memmove(dst->data, src->data, (size_t)dst->size * sizeof(float));
  return NNLIB_OK;
}
