/* context.c - starting MPI, the context (a private communicator), shares,
 * statistics, and the companion's error messages. */
#include "mpi_internal.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char last_message[NNLIB_MPI__MESSAGE_SIZE];

/* True when nnlib_mpi_init started MPI (so nnlib_mpi_finalize ends it). */
static bool started_mpi;

unsigned nnlib_mpi_version(void) { return NNLIB_VERSION_NUMBER; }

const char *nnlib_mpi_last_error_message(void) { return last_message; }

nnlib_status nnlib_mpi__error(nnlib_status status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_message, sizeof last_message, fmt, ap);
  va_end(ap);
  return status;
}

nnlib_status nnlib_mpi__from_nnlib(const nnlib_mpi *m, nnlib_status status,
                                   const char *what) {
  return nnlib_mpi__error(status, "rank %d: %s: %s", m->rank, what,
                          nnlib_last_error_message());
}

nnlib_status nnlib_mpi__from_mpi(int rc, const char *what) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(rc, text, &length) != MPI_SUCCESS)
    snprintf(text, sizeof text, "MPI error %d", rc);
  return nnlib_mpi__error(NNLIB_ERR_IO, "%s: %s", what, text);
}

static bool mpi_running(void) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized && !finalized;
}

nnlib_status nnlib_mpi_init(void) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (finalized)
    return nnlib_mpi__error(NNLIB_ERR_WRONG_STATE,
                            "nnlib_mpi_init: MPI was already finalized");
  if (initialized)
    return NNLIB_OK;
  int provided = 0;
  int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
  if (rc != MPI_SUCCESS)
    return nnlib_mpi__from_mpi(rc, "nnlib_mpi_init: MPI_Init_thread");
  started_mpi = true;
  return NNLIB_OK;
}

nnlib_status nnlib_mpi_finalize(void) {
  if (!started_mpi || !mpi_running())
    return NNLIB_OK;
  started_mpi = false;
  int rc = MPI_Finalize();
  return rc == MPI_SUCCESS ? NNLIB_OK
                           : nnlib_mpi__from_mpi(rc, "nnlib_mpi_finalize");
}

/* The tally reduction: counts add up, bounds take the maximum. */
static void tally_reduce(void *in, void *inout, int *len, MPI_Datatype *type) {
  (void)type;
  const nnlib_mpi__tally *a = in;
  nnlib_mpi__tally *b = inout;
  for (int i = 0; i < *len; i++) {
    b[i].failed += a[i].failed;
    b[i].samples += a[i].samples;
    b[i].loss_sum += a[i].loss_sum;
    if (a[i].count_max > b[i].count_max)
      b[i].count_max = a[i].count_max;
    if (a[i].count_neg_max > b[i].count_neg_max)
      b[i].count_neg_max = a[i].count_neg_max;
  }
}

static nnlib_status base_comm(int64_t comm, MPI_Comm *out) {
  if (comm == NNLIB_MPI_WORLD) {
    *out = MPI_COMM_WORLD;
    return NNLIB_OK;
  }
  if (comm < 0 || comm > INT_MAX)
    return nnlib_mpi__error(NNLIB_ERR_INVALID_ARGUMENT,
                            "nnlib_mpi_create: %lld is not a Fortran "
                            "communicator handle",
                            (long long)comm);
  *out = MPI_Comm_f2c((MPI_Fint)comm);
  if (*out == MPI_COMM_NULL)
    return nnlib_mpi__error(NNLIB_ERR_INVALID_ARGUMENT,
                            "nnlib_mpi_create: handle %lld is MPI_COMM_NULL",
                            (long long)comm);
  return NNLIB_OK;
}

/* The duplicate's rank, size, tally type and op. */
static nnlib_status setup(nnlib_mpi *m) {
  int rc;
  if ((rc = MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN)) !=
          MPI_SUCCESS ||
      (rc = MPI_Comm_rank(m->comm, &m->rank)) != MPI_SUCCESS ||
      (rc = MPI_Comm_size(m->comm, &m->size)) != MPI_SUCCESS ||
      (rc = MPI_Type_contiguous(5, MPI_DOUBLE, &m->tally_type)) !=
          MPI_SUCCESS ||
      (rc = MPI_Type_commit(&m->tally_type)) != MPI_SUCCESS ||
      (rc = MPI_Op_create(tally_reduce, 1, &m->tally_op)) != MPI_SUCCESS)
    return nnlib_mpi__from_mpi(rc, "nnlib_mpi_create");
  m->stats.struct_size = sizeof m->stats;
  return NNLIB_OK;
}

nnlib_status nnlib_mpi_create(nnlib_mpi **out, int64_t comm) {
  if (out == NULL)
    return nnlib_mpi__error(NNLIB_ERR_INVALID_ARGUMENT,
                            "nnlib_mpi_create: out is NULL");
  *out = NULL;
  if (!mpi_running())
    return nnlib_mpi__error(NNLIB_ERR_WRONG_STATE,
                            "nnlib_mpi_create: MPI is not running (call "
                            "MPI_Init or nnlib_mpi_init first)");
  MPI_Comm base;
  nnlib_status st = base_comm(comm, &base);
  if (st != NNLIB_OK)
    return st;
  MPI_Comm dup;
  int rc = MPI_Comm_dup(base, &dup);
  if (rc != MPI_SUCCESS)
    return nnlib_mpi__from_mpi(rc, "nnlib_mpi_create: MPI_Comm_dup");
  nnlib_mpi *m = calloc(1, sizeof *m);
  if (m != NULL) {
    m->comm = dup;
    m->tally_type = MPI_DATATYPE_NULL;
    m->tally_op = MPI_OP_NULL;
    st = setup(m);
  } else {
    st = nnlib_mpi__error(NNLIB_ERR_OUT_OF_MEMORY,
                          "nnlib_mpi_create: no memory for the context");
  }
  /* all ranks keep the context or none does */
  int ok = st == NNLIB_OK, all_ok = 0;
  rc = MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, dup);
  if (rc == MPI_SUCCESS && all_ok) {
    *out = m;
    return NNLIB_OK;
  }
  if (m != NULL) {
    nnlib_mpi_free(m);
  } else {
    MPI_Comm_free(&dup);
  }
  if (st == NNLIB_OK)
    st = rc != MPI_SUCCESS
             ? nnlib_mpi__from_mpi(rc, "nnlib_mpi_create")
             : nnlib_mpi__error(NNLIB_ERR_IO,
                                "nnlib_mpi_create: another rank failed");
  return st;
}

void nnlib_mpi_free(nnlib_mpi *m) {
  if (m == NULL)
    return;
  if (mpi_running()) {
    if (m->tally_op != MPI_OP_NULL)
      MPI_Op_free(&m->tally_op);
    if (m->tally_type != MPI_DATATYPE_NULL)
      MPI_Type_free(&m->tally_type);
    MPI_Comm_free(&m->comm);
  }
  free(m);
}

int nnlib_mpi_get_rank(const nnlib_mpi *m) { return m ? m->rank : -1; }

int nnlib_mpi_get_size(const nnlib_mpi *m) { return m ? m->size : -1; }

nnlib_status nnlib_mpi_get_share(const nnlib_mpi *m, int64_t n, int64_t *start,
                                 int64_t *count) {
  if (m == NULL || start == NULL || count == NULL || n < 0)
    return nnlib_mpi__error(NNLIB_ERR_INVALID_ARGUMENT,
                            "nnlib_mpi_get_share: NULL argument or n < 0");
  int64_t base = n / m->size, extra = n % m->size;
  *count = base + (m->rank < extra);
  *start = m->rank * base + (m->rank < extra ? m->rank : extra);
  return NNLIB_OK;
}

nnlib_status nnlib_mpi_get_stats(const nnlib_mpi *m, nnlib_mpi_stats *stats) {
  if (m == NULL || stats == NULL)
    return nnlib_mpi__error(NNLIB_ERR_INVALID_ARGUMENT,
                            "nnlib_mpi_get_stats: NULL argument");
  size_t size = stats->struct_size;
  if (size < sizeof(size_t))
    return nnlib_mpi__error(NNLIB_ERR_STRUCT_SIZE,
                            "nnlib_mpi_get_stats: struct_size %zu", size);
  nnlib_mpi_stats copy = m->stats;
  copy.struct_size = size < sizeof copy ? size : sizeof copy;
  memcpy(stats, &copy, copy.struct_size);
  return NNLIB_OK;
}

nnlib_status nnlib_mpi__bcast(nnlib_mpi *m, void *data, int64_t n,
                              MPI_Datatype type, size_t type_size, int root) {
  char *p = data;
  for (int64_t done = 0; done < n; done += NNLIB_MPI__CHUNK) {
    int64_t chunk = n - done < NNLIB_MPI__CHUNK ? n - done : NNLIB_MPI__CHUNK;
    int rc = MPI_Bcast(p + (size_t)done * type_size, (int)chunk, type, root,
                       m->comm);
    if (rc != MPI_SUCCESS)
      return nnlib_mpi__from_mpi(rc, "MPI_Bcast");
  }
  return NNLIB_OK;
}
