/* mpi_check.h - a tiny check harness for tests that run under mpirun.
 * A failed check is counted and printed (with the rank), never fatal: every
 * rank must go on to reach the same collective calls, or the test would
 * hang instead of failing. mpi_check_finish sums the counts over all ranks;
 * rank 0 prints "N passed, N failed". */
#ifndef NNLIB_MPI_CHECK_H
#define NNLIB_MPI_CHECK_H

#include <nnlib.h>
#include <nnlib_mpi.h>

#include <mpi.h>
#include <stdio.h>

static int mpi_check_passed, mpi_check_failed;

static inline void mpi_check_record(int ok, const char *file, int line,
                             const char *what) {
  if (ok) {
    mpi_check_passed++;
    return;
  }
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  mpi_check_failed++;
  fprintf(stderr, "rank %d: %s:%d: FAILED: %s\n", rank, file, line, what);
  fflush(stderr);
}

#define CHECK(cond) mpi_check_record((cond) != 0, __FILE__, __LINE__, #cond)

/* An nnlib or nnlib_mpi call that must succeed; prints the messages. */
#define CHECK_OK(call)                                                         \
  do {                                                                         \
    nnlib_status st_ = (call);                                                 \
    if (st_ != NNLIB_OK)                                                       \
      fprintf(stderr, "%s -> %s: %s | %s\n", #call, nnlib_status_string(st_), \
              nnlib_mpi_last_error_message(), nnlib_last_error_message());    \
    mpi_check_record(st_ == NNLIB_OK, __FILE__, __LINE__, #call);              \
  } while (0)

/* Setup that cannot go on after a failure: ends every rank at once. */
#define REQUIRE_OK(call)                                                       \
  do {                                                                         \
    nnlib_status st_ = (call);                                                 \
    if (st_ != NNLIB_OK) {                                                     \
      fprintf(stderr, "%s:%d: %s -> %s: %s | %s\n", __FILE__, __LINE__,       \
              #call, nnlib_status_string(st_),                                 \
              nnlib_mpi_last_error_message(), nnlib_last_error_message());    \
      MPI_Abort(MPI_COMM_WORLD, 1);                                            \
    }                                                                          \
  } while (0)

/* Returns the process exit code: 0 if no rank failed a check. */
static inline int mpi_check_finish(const char *name) {
  int counts[2] = {mpi_check_passed, mpi_check_failed}, sums[2] = {0, 0};
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Allreduce(counts, sums, 2, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0) {
    printf("%s: %d passed, %d failed\n", name, sums[0], sums[1]);
    fflush(stdout);
  }
  return sums[1] == 0 ? 0 : 1;
}

#endif
