/* step.c - one data-parallel step: local forward and backward on this
 * rank's share, one small allreduce that agrees on success and counts the
 * samples, one large allreduce of the flat gradient buffer, then the same
 * optimizer update on every rank. */
#include "mpi_internal.h"

#include <math.h>
#include <string.h>

/* This rank's forward and backward: the mean gradient over its n samples
 * in the model's gradient buffer, zeros if it has none. */
static nnlib_status local_backward(nnlib_mpi *m, nnlib_model *model,
                                   const nnlib_tensor *x,
                                   const nnlib_tensor *target, float *grads,
                                   int64_t count, int64_t *n, double *loss) {
  *n = 0;
  *loss = 0.0;
  if (x == NULL && target == NULL) {
    memset(grads, 0, (size_t)count * sizeof *grads);
    return NNLIB_OK;
  }
  if (x == NULL || target == NULL)
    return nnlib_mpi__error(NNLIB_ERR_INVALID_ARGUMENT,
                            "rank %d: nnlib_mpi_backward: x or target is NULL "
                            "(both NULL: no samples on this rank)",
                            m->rank);
  float l = NAN;
  nnlib_status st = nnlib_model_backward(model, x, target, &l);
  if (st != NNLIB_OK)
    return nnlib_mpi__from_nnlib(m, st, "backward");
  *n = nnlib_tensor_get_dim(x, 0);
  *loss = l;
  return NNLIB_OK;
}

/* The small exchange: anyone failed?, N, summed loss, parameter counts. */
static nnlib_status tally(nnlib_mpi *m, nnlib_status local, int64_t n,
                          double loss, int64_t count, nnlib_mpi__tally *t) {
  nnlib_mpi__tally mine = {local != NNLIB_OK, (double)n,
                           local == NNLIB_OK ? loss * (double)n : 0.0,
                           (double)count, -(double)count};
  double start = MPI_Wtime();
  int rc = MPI_Allreduce(&mine, t, 1, m->tally_type, m->tally_op, m->comm);
  m->stats.agree_seconds += MPI_Wtime() - start;
  if (rc != MPI_SUCCESS)
    return nnlib_mpi__from_mpi(rc, "agreeing on a step");
  if (t->failed > 0)
    return nnlib_mpi__resolve_failure(m, local);
  if (t->count_max != -t->count_neg_max)
    return nnlib_mpi__error(NNLIB_ERR_SHAPE_MISMATCH,
                            "nnlib_mpi_backward: the ranks' models have from "
                            "%.0f to %.0f parameters",
                            -t->count_neg_max, t->count_max);
  if (t->samples < 1)
    return nnlib_mpi__error(NNLIB_ERR_INVALID_ARGUMENT,
                            "nnlib_mpi_backward: no rank has a sample");
  return NNLIB_OK;
}

/* Sum over ranks of (n_r / N) g_r, in place. The weight makes uneven
 * shares exact: the result is the gradient of the mean loss over N. */
static nnlib_status reduce_gradients(nnlib_mpi *m, float *grads, int64_t count,
                                     int64_t n, double total) {
  if (m->size == 1)
    return NNLIB_OK;
  double start = MPI_Wtime();
  float weight = (float)((double)n / total);
  if (n > 0 && weight != 1.0f)
    for (int64_t i = 0; i < count; i++)
      grads[i] *= weight;
  double reduce_start = MPI_Wtime();
  m->stats.compute_seconds += reduce_start - start;
  for (int64_t done = 0; done < count; done += NNLIB_MPI__CHUNK) {
    int64_t chunk =
        count - done < NNLIB_MPI__CHUNK ? count - done : NNLIB_MPI__CHUNK;
    int rc = MPI_Allreduce(MPI_IN_PLACE, grads + done, (int)chunk, MPI_FLOAT,
                           MPI_SUM, m->comm);
    if (rc != MPI_SUCCESS)
      return nnlib_mpi__from_mpi(rc, "gradient MPI_Allreduce");
  }
  m->stats.allreduce_seconds += MPI_Wtime() - reduce_start;
  m->stats.allreduce_bytes += (double)count * sizeof(float);
  return NNLIB_OK;
}

nnlib_status nnlib_mpi__backward(nnlib_mpi *m, nnlib_model *model,
                                 const nnlib_tensor *x,
                                 const nnlib_tensor *target,
                                 nnlib_status pending, double *loss) {
  float *grads = NULL;
  int64_t count = 0, n = 0;
  double local_loss = 0.0;
  nnlib_status st = pending;
  if (st == NNLIB_OK) {
    st = nnlib_model_get_flat_params(model, NULL, &grads, &count);
    if (st != NNLIB_OK)
      nnlib_mpi__from_nnlib(m, st, "nnlib_mpi_backward");
  }
  double start = MPI_Wtime();
  if (st == NNLIB_OK)
    st = local_backward(m, model, x, target, grads, count, &n, &local_loss);
  m->stats.compute_seconds += MPI_Wtime() - start;
  nnlib_mpi__tally t;
  nnlib_status agreed = tally(m, st, n, local_loss, count, &t);
  if (agreed != NNLIB_OK)
    return agreed;
  m->stats.steps++;
  *loss = t.loss_sum / t.samples;
  return reduce_gradients(m, grads, count, n, t.samples);
}

nnlib_status nnlib_mpi__step(nnlib_mpi *m, nnlib_model *model,
                             const nnlib_tensor *x, const nnlib_tensor *target,
                             nnlib_status pending, double *loss) {
  nnlib_status st = nnlib_mpi__backward(m, model, x, target, pending, loss);
  if (st != NNLIB_OK)
    return st;
  double start = MPI_Wtime();
  /* the same gradients on every rank: the same result, no agreement */
  st = nnlib_model_apply_gradients(model);
  m->stats.update_seconds += MPI_Wtime() - start;
  return st == NNLIB_OK ? st : nnlib_mpi__from_nnlib(m, st, "update");
}

nnlib_status nnlib_mpi_backward(nnlib_mpi *m, nnlib_model *model,
                                const nnlib_tensor *x,
                                const nnlib_tensor *target, float *loss) {
  if (m == NULL)
    return nnlib_mpi__error(NNLIB_ERR_INVALID_ARGUMENT,
                            "nnlib_mpi_backward: context is NULL");
  double l = NAN;
  nnlib_status st = nnlib_mpi__backward(m, model, x, target, NNLIB_OK, &l);
  if (loss != NULL)
    *loss = (float)l;
  return st;
}

nnlib_status nnlib_mpi_step(nnlib_mpi *m, nnlib_model *model,
                            const nnlib_tensor *x, const nnlib_tensor *target,
                            float *loss) {
  if (m == NULL)
    return nnlib_mpi__error(NNLIB_ERR_INVALID_ARGUMENT,
                            "nnlib_mpi_step: context is NULL");
  double l = NAN;
  nnlib_status st = nnlib_mpi__step(m, model, x, target, NNLIB_OK, &l);
  if (loss != NULL)
    *loss = (float)l;
  return st;
}
