/* agree.c - ranks agree on success before any exchange that a failed rank
 * would never join, so one rank's failure is every rank's error, never a
 * hang. */
#include "mpi_internal.h"

#include <stdio.h>
#include <string.h>

/* What the lowest failing rank sends to all. */
typedef struct failure_record {
  int status;
  int rank;
  char message[NNLIB_MPI__MESSAGE_SIZE];
} failure_record;

nnlib_status nnlib_mpi__resolve_failure(nnlib_mpi *m, nnlib_status local) {
  int mine = local != NNLIB_OK ? m->rank : m->size, first = m->size;
  int rc = MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, m->comm);
  if (rc != MPI_SUCCESS)
    return nnlib_mpi__from_mpi(rc, "agreeing on a failure");
  if (first == m->size) /* a caller bug: nobody failed */
    return nnlib_mpi__error(NNLIB_ERR_INTERNAL,
                            "agreement: a failure was reported, none found");
  failure_record r;
  memset(&r, 0, sizeof r);
  /* messages name their rank: "rank 1: x" there, "rank 1 failed: x" here */
  char prefix[32];
  int length = snprintf(prefix, sizeof prefix, "rank %d: ", first);
  if (m->rank == first) {
    r.status = (int)local;
    r.rank = m->rank;
    const char *own = nnlib_mpi_last_error_message();
    bool named = length > 0 && strncmp(own, prefix, (size_t)length) == 0;
    strncpy(r.message, named ? own + length : own, sizeof r.message - 1);
    if (!named)
      nnlib_mpi__error(local, "%s%s", prefix, r.message);
  }
  rc = MPI_Bcast(&r, (int)sizeof r, MPI_BYTE, first, m->comm);
  if (rc != MPI_SUCCESS)
    return nnlib_mpi__from_mpi(rc, "sending a failure");
  if (local != NNLIB_OK)
    return local;
  r.message[sizeof r.message - 1] = '\0';
  return nnlib_mpi__error((nnlib_status)r.status, "rank %d failed: %s", r.rank,
                          r.message);
}

nnlib_status nnlib_mpi__agree(nnlib_mpi *m, nnlib_status local) {
  int failed = local != NNLIB_OK, any = 0;
  double start = MPI_Wtime();
  int rc = MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, m->comm);
  m->stats.agree_seconds += MPI_Wtime() - start;
  if (rc != MPI_SUCCESS)
    return nnlib_mpi__from_mpi(rc, "agreeing on a status");
  return any ? nnlib_mpi__resolve_failure(m, local) : NNLIB_OK;
}

nnlib_status nnlib_mpi_agree(nnlib_mpi *m, nnlib_status local) {
  if (m == NULL)
    return nnlib_mpi__error(NNLIB_ERR_INVALID_ARGUMENT,
                            "nnlib_mpi_agree: context is NULL");
  if (local != NNLIB_OK)
    nnlib_mpi__from_nnlib(m, local, nnlib_status_string(local));
  return nnlib_mpi__agree(m, local);
}

/* One MPI_MAX over (v, ~v) pairs gives max and ~min of each value at once:
 * ~ reverses the order of int64 values without the overflow of -v. */
nnlib_status nnlib_mpi__check_same(nnlib_mpi *m, const int64_t *values,
                                   int count, nnlib_status mismatch,
                                   const char *what) {
  enum { MAX_VALUES = 8 };
  int64_t both[2 * MAX_VALUES];
  if (count > MAX_VALUES)
    return nnlib_mpi__error(NNLIB_ERR_INTERNAL, "check_same: too many values");
  for (int i = 0; i < count; i++) {
    both[i] = values[i];
    both[count + i] = ~values[i];
  }
  int rc = MPI_Allreduce(MPI_IN_PLACE, both, 2 * count, MPI_INT64_T, MPI_MAX,
                         m->comm);
  if (rc != MPI_SUCCESS)
    return nnlib_mpi__from_mpi(rc, what);
  for (int i = 0; i < count; i++)
    if (both[i] != ~both[count + i])
      return nnlib_mpi__error(mismatch,
                              "%s: ranks disagree (value %d ranges from %lld "
                              "to %lld)",
                              what, i, (long long)~both[count + i],
                              (long long)both[i]);
  return NNLIB_OK;
}
