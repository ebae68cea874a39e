/* replicas.c - keeping the ranks' models equal: broadcasting weights,
 * checkpoints written by rank 0 alone, loading on rank 0 and broadcasting
 * the file's bytes. */
#include "mpi_internal.h"

#include <stdlib.h>

int64_t nnlib_mpi__buffer_floats(nnlib_model *model) {
  int64_t total = 0;
  size_t layers = nnlib_model_get_layer_count(model);
  for (size_t i = 0; i < layers; i++) {
    nnlib_layer *l = nnlib_model_get_layer(model, i);
    size_t count = nnlib_layer_get_buffer_count(l);
    for (size_t b = 0; b < count; b++) {
      nnlib_tensor *t = NULL;
      if (nnlib_layer_get_buffer(l, b, &t) == NNLIB_OK)
        total += nnlib_tensor_get_size(t);
    }
  }
  return total;
}

/* root's values (root >= 0), or the mean over the ranks (root < 0). */
static nnlib_status sync_tensor(nnlib_mpi *m, nnlib_tensor *t, int root) {
  float *data = nnlib_tensor_get_data(t);
  int64_t n = nnlib_tensor_get_size(t);
  if (root >= 0)
    return nnlib_mpi__bcast(m, data, n, MPI_FLOAT, sizeof(float), root);
  for (int64_t done = 0; done < n; done += NNLIB_MPI__CHUNK) {
    int64_t chunk = n - done < NNLIB_MPI__CHUNK ? n - done : NNLIB_MPI__CHUNK;
    int rc = MPI_Allreduce(MPI_IN_PLACE, data + done, (int)chunk, MPI_FLOAT,
                           MPI_SUM, m->comm);
    if (rc != MPI_SUCCESS)
      return nnlib_mpi__from_mpi(rc, "averaging layer buffers");
  }
  for (int64_t i = 0; i < n; i++)
    data[i] /= (float)m->size;
  return NNLIB_OK;
}

nnlib_status nnlib_mpi__sync_buffers(nnlib_mpi *m, nnlib_model *model,
                                     int root) {
  size_t layers = nnlib_model_get_layer_count(model);
  for (size_t i = 0; i < layers; i++) {
    nnlib_layer *l = nnlib_model_get_layer(model, i);
    size_t count = nnlib_layer_get_buffer_count(l);
    for (size_t b = 0; b < count; b++) {
      nnlib_tensor *t = NULL;
      nnlib_status st = nnlib_layer_get_buffer(l, b, &t);
      if (st != NNLIB_OK) /* compiled and checked equal: cannot happen */
        return nnlib_mpi__from_nnlib(m, st, "layer buffer");
      NNLIB_MPI__TRY(sync_tensor(m, t, root));
    }
  }
  return NNLIB_OK;
}

nnlib_status nnlib_mpi_broadcast_model(nnlib_mpi *m, nnlib_model *model,
                                       int root) {
  if (m == NULL)
    return nnlib_mpi__error(NNLIB_ERR_INVALID_ARGUMENT,
                            "nnlib_mpi_broadcast_model: context is NULL");
  float *params = NULL;
  int64_t count = 0;
  nnlib_status st = nnlib_model_get_flat_params(model, &params, NULL, &count);
  if (st != NNLIB_OK)
    nnlib_mpi__from_nnlib(m, st, "nnlib_mpi_broadcast_model");
  else if (root < 0 || root >= m->size)
    st = nnlib_mpi__error(NNLIB_ERR_INVALID_ARGUMENT,
                          "rank %d: nnlib_mpi_broadcast_model: root %d is not "
                          "a rank of %d",
                          m->rank, root, m->size);
  NNLIB_MPI__TRY(nnlib_mpi__agree(m, st));
  int64_t same[] = {count, nnlib_mpi__buffer_floats(model), root};
  NNLIB_MPI__TRY(nnlib_mpi__check_same(m, same, 3, NNLIB_ERR_SHAPE_MISMATCH,
                                       "nnlib_mpi_broadcast_model: parameter "
                                       "and buffer counts, root"));
  NNLIB_MPI__TRY(
      nnlib_mpi__bcast(m, params, count, MPI_FLOAT, sizeof(float), root));
  return nnlib_mpi__sync_buffers(m, model, root);
}

nnlib_status nnlib_mpi_model_save(nnlib_mpi *m, const nnlib_model *model,
                                  const char *path, unsigned flags) {
  if (m == NULL)
    return nnlib_mpi__error(NNLIB_ERR_INVALID_ARGUMENT,
                            "nnlib_mpi_model_save: context is NULL");
  nnlib_status st = NNLIB_OK;
  if (m->rank == 0) {
    st = nnlib_model_save(model, path, flags);
    if (st != NNLIB_OK)
      nnlib_mpi__from_nnlib(m, st, "nnlib_mpi_model_save");
  }
  return nnlib_mpi__agree(m, st);
}

/* Rank 0: the file's model and its bytes as nnlib_model_save_to_buffer
 * writes them (the optimizer state included). */
static nnlib_status load_root(nnlib_mpi *m, const char *path,
                              nnlib_model **model, void **data,
                              uint64_t *size) {
  size_t bytes = 0;
  nnlib_status st = nnlib_model_load(model, path);
  if (st == NNLIB_OK)
    st = nnlib_model_save_to_buffer(data, &bytes, *model, NNLIB_SAVE_OPTIMIZER);
  if (st != NNLIB_OK)
    return nnlib_mpi__from_nnlib(m, st, "nnlib_mpi_model_load");
  *size = bytes;
  return NNLIB_OK;
}

/* The other ranks: room for the bytes. */
static nnlib_status receive_room(nnlib_mpi *m, uint64_t size, void **data) {
  *data = malloc(size > 0 ? (size_t)size : 1);
  if (*data == NULL)
    return nnlib_mpi__error(NNLIB_ERR_OUT_OF_MEMORY,
                            "rank %d: nnlib_mpi_model_load: no memory for "
                            "%llu bytes",
                            m->rank, (unsigned long long)size);
  return NNLIB_OK;
}

static void release(const nnlib_mpi *m, void *data) {
  if (m->rank == 0)
    nnlib_free(data);
  else
    free(data);
}

nnlib_status nnlib_mpi_model_load(nnlib_mpi *m, nnlib_model **out,
                                  const char *path) {
  if (m == NULL || out == NULL)
    return nnlib_mpi__error(NNLIB_ERR_INVALID_ARGUMENT,
                            "nnlib_mpi_model_load: context or out is NULL");
  *out = NULL;
  nnlib_model *model = NULL;
  void *data = NULL;
  uint64_t size = 0;
  nnlib_status st =
      m->rank == 0 ? load_root(m, path, &model, &data, &size) : NNLIB_OK;
  st = nnlib_mpi__agree(m, st);
  if (st == NNLIB_OK)
    st = nnlib_mpi__bcast(m, &size, 1, MPI_UINT64_T, sizeof size, 0);
  if (st == NNLIB_OK)
    st = nnlib_mpi__agree(m, m->rank == 0 ? NNLIB_OK
                                          : receive_room(m, size, &data));
  if (st == NNLIB_OK)
    st = nnlib_mpi__bcast(m, data, (int64_t)size, MPI_BYTE, 1, 0);
  if (st == NNLIB_OK && m->rank != 0) {
    st = nnlib_model_load_buffer(&model, data, (size_t)size);
    if (st != NNLIB_OK)
      nnlib_mpi__from_nnlib(m, st, "nnlib_mpi_model_load");
    st = nnlib_mpi__agree(m, st);
  } else if (st == NNLIB_OK) {
    st = nnlib_mpi__agree(m, NNLIB_OK);
  }
  release(m, data);
  if (st != NNLIB_OK) {
    nnlib_model_free(model);
    return st;
  }
  *out = model;
  return NNLIB_OK;
}
