/* tensor.h - the tensor handle's struct, for the files that make views. */
#ifndef NNLIB_TENSOR_H
#define NNLIB_TENSOR_H

#include "core/core.h"

/* ------------------------------------------------------------- tensor */

struct nnlib_tensor {
  /* The elements, 4 bytes each: floats, or int32 when dtype says so (token
   * ids, class indices); the passes hand them on as float pointers and the
   * layers that read ids (embedding) and the loss reinterpret them. */
  float *data;
  nnlib_dtype dtype;
  int64_t shape[NNLIB_MAX_RANK];
  size_t rank;
  int64_t size;
  bool owns_data;
};

/* Initialises a tensor struct in place as a view of `data` (for parameters
 * and gradients living in a model's flat buffers). */
void nnlib__tensor_view(nnlib_tensor *t, float *data, const int64_t *shape,
                        size_t rank);

#endif /* NNLIB_TENSOR_H */
