/* flat_params.c - the public view of the model's flat parameter and gradient
 * buffers, so that a companion library (libnnlib_mpi) can reduce them
 * without reaching into the model's internals. */
#include "nnlib_internal.h"

nnlib_status nnlib_model_get_flat_params(nnlib_model *m, float **params,
                                         float **grads, int64_t *count) {
  NNLIB_TRY(nnlib__check_compiled(m, "nnlib_model_get_flat_params"));
  NNLIB_CHECK_ARG(count != NULL, "nnlib_model_get_flat_params: count is NULL");
  if (params != NULL)
    *params = m->params;
  if (grads != NULL)
    *grads = m->grads;
  *count = m->param_size;
  return NNLIB_OK;
}
