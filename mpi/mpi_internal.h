/* mpi_internal.h - what the files of libnnlib_mpi share. Only nnlib.h's
 * public functions are used: the companion never sees the model's insides
 * except through nnlib_model_get_flat_params. */
#ifndef NNLIB_MPI_INTERNAL_H
#define NNLIB_MPI_INTERNAL_H

#include "nnlib_mpi.h"

#include <mpi.h>
#include <stdbool.h>

/* Messages travel between ranks in fixed-size records. */
#define NNLIB_MPI__MESSAGE_SIZE 512

struct nnlib_mpi {
  MPI_Comm comm;          /* private duplicate, errors returned, not fatal */
  int rank, size;
  MPI_Datatype tally_type; /* one nnlib_mpi__tally */
  MPI_Op tally_op;         /* sums counts, takes maxima of bounds */
  nnlib_mpi_stats stats;
};

/* What the ranks exchange before a gradient reduction, in one small
 * allreduce: whether anyone failed, how many samples they hold, their
 * summed loss, and the parameter count's maximum and minimum (as -min), so
 * that a mismatch is an error instead of a reduction of unequal buffers. */
typedef struct nnlib_mpi__tally {
  double failed;       /* summed: ranks that failed                  */
  double samples;      /* summed: N                                  */
  double loss_sum;     /* summed: sum_r n_r loss_r                   */
  double count_max;    /* max of parameter counts                    */
  double count_neg_max;/* max of -parameter count, i.e. -min          */
} nnlib_mpi__tally;

/* Sets the calling thread's companion message; returns status. */
nnlib_status nnlib_mpi__error(nnlib_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* A failure of an nnlib call on this rank: the message becomes
 * "rank R: <what>: <nnlib_last_error_message()>". Returns status. */
nnlib_status nnlib_mpi__from_nnlib(const nnlib_mpi *m, nnlib_status status,
                                   const char *what);
/* An MPI call that did not return MPI_SUCCESS: NNLIB_ERR_IO with MPI's
 * text. */
nnlib_status nnlib_mpi__from_mpi(int rc, const char *what);

/* Agreement on `local` (whose message is already this thread's companion
 * message when it is an error): NNLIB_OK everywhere or an error
 * everywhere. */
nnlib_status nnlib_mpi__agree(nnlib_mpi *m, nnlib_status local);
/* After an exchange showed that some rank failed: finds the lowest failing
 * rank, sends its status and message to all, and returns `local` on a rank
 * that failed, the failing rank's status elsewhere. */
nnlib_status nnlib_mpi__resolve_failure(nnlib_mpi *m, nnlib_status local);
/* Every rank passed the same `count` values (after an agreement, so it
 * cannot block on a failed rank): NNLIB_OK, else `mismatch` with a message
 * naming `what`, on every rank. */
nnlib_status nnlib_mpi__check_same(nnlib_mpi *m, const int64_t *values,
                                   int count, nnlib_status mismatch,
                                   const char *what);

/* The data-parallel gradient of one global batch, for nnlib_mpi_backward,
 * nnlib_mpi_step and fit. `pending` is a failure this rank already has (it
 * then skips its local pass but still takes part). */
nnlib_status nnlib_mpi__backward(nnlib_mpi *m, nnlib_model *model,
                                 const nnlib_tensor *x,
                                 const nnlib_tensor *target,
                                 nnlib_status pending, double *loss);
/* nnlib__backward, then the optimizer update (timed). */
nnlib_status nnlib_mpi__step(nnlib_mpi *m, nnlib_model *model,
                             const nnlib_tensor *x, const nnlib_tensor *target,
                             nnlib_status pending, double *loss);

#define NNLIB_MPI__TRY(expr)                                                   \
  do {                                                                         \
    nnlib_status nnlib_mpi__st = (expr);                                       \
    if (nnlib_mpi__st != NNLIB_OK)                                             \
      return nnlib_mpi__st;                                                    \
  } while (0)

/* Floats in all layer buffers of a compiled model (batchnorm running
 * statistics), which are state but not parameters. */
int64_t nnlib_mpi__buffer_floats(nnlib_model *model);
/* Every layer buffer set to root's (root >= 0) or to the mean over the
 * ranks (root < 0). Collective; the layouts were checked equal. */
nnlib_status nnlib_mpi__sync_buffers(nnlib_mpi *m, nnlib_model *model,
                                     int root);

/* The largest element count one MPI call takes (its count is an int). */
#define NNLIB_MPI__CHUNK ((int64_t)1 << 30)
/* MPI_Bcast of n floats or bytes in chunks of at most NNLIB_MPI__CHUNK. */
nnlib_status nnlib_mpi__bcast(nnlib_mpi *m, void *data, int64_t n,
                              MPI_Datatype type, size_t type_size, int root);

#endif /* NNLIB_MPI_INTERNAL_H */
