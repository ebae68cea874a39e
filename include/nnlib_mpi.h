/*
 * nnlib_mpi.h - data-parallel training of one nnlib model across MPI ranks
 * (libnnlib_mpi, an optional companion of libnnlib built where MPI is found).
 *
 * Each rank holds a full replica of the model. A global minibatch is split
 * across the ranks; each rank runs forward and backward on its share, the
 * gradients are averaged with one MPI_Allreduce over the model's flat
 * gradient buffer (each rank's mean weighted by its sample count, so the
 * result is the mean over the whole global batch, exactly what one process
 * would compute on it), and every rank applies the same optimizer update.
 * Replicas start equal (nnlib_mpi_broadcast_model) and so stay equal, bit
 * for bit.
 *
 * Conventions are nnlib.h's: nnlib_status results (the codes of nnlib.h),
 * `T **out` parameters, options structs with struct_size, nothing printed,
 * nothing aborted. This header does not include <mpi.h>: a communicator is
 * passed as its Fortran handle (C: MPI_Comm_c2f(comm); mpi4py:
 * comm.py2f()) or as NNLIB_MPI_WORLD, so foreign-function interfaces need no
 * MPI types.
 *
 * Collective calls: every function marked "collective" must be called by
 * every rank of the context's communicator, in the same order. A failure on
 * one rank (a file it cannot read, a NaN loss) never leaves the others
 * waiting: before each exchange the ranks agree on a status, and if any rank
 * failed every rank returns an error. The rank that failed returns its own
 * status; the others return the same status, and
 * nnlib_mpi_last_error_message() names the rank and its message on all.
 *
 * Threads: a context is used by one thread at a time; the library makes MPI
 * calls only from the calling thread (MPI_THREAD_FUNNELED suffices).
 * Memory: the companion allocates with the C library (not nnlib's allocator
 * hook).
 */
#ifndef NNLIB_MPI_H
#define NNLIB_MPI_H

#include "nnlib.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(NNLIB_STATIC_DEFINE)
#define NNLIB_MPI_API
#elif defined(_WIN32)
#ifdef NNLIB_MPI_BUILDING
#define NNLIB_MPI_API __declspec(dllexport)
#else
#define NNLIB_MPI_API __declspec(dllimport)
#endif
#elif defined(__GNUC__)
#define NNLIB_MPI_API __attribute__((visibility("default")))
#else
#define NNLIB_MPI_API
#endif

/* The companion is versioned with nnlib: a libnnlib_mpi of version V works
 * with the libnnlib of the same version. NNLIB_VERSION_NUMBER of the build;
 * bindings compare it with nnlib_version(). Thread-safe. */
NNLIB_MPI_API unsigned nnlib_mpi_version(void);

/* ---------------------------------------------------------------- MPI */

/* Starts MPI (MPI_Init_thread, FUNNELED) unless it is already running, for
 * callers that have no MPI binding of their own (ctypes, the command-line
 * tool). Not collective in nnlib's sense, but MPI_Init is: every rank calls
 * it. NNLIB_ERR_WRONG_STATE after MPI was finalized. */
NNLIB_MPI_API nnlib_status nnlib_mpi_init(void);
/* Finalizes MPI if nnlib_mpi_init started it, else does nothing. Free every
 * context first. Collective. */
NNLIB_MPI_API nnlib_status nnlib_mpi_finalize(void);

/* -------------------------------------------------------------- context */

typedef struct nnlib_mpi nnlib_mpi;

/* comm: MPI_COMM_WORLD. Any other value is a communicator's Fortran handle. */
#define NNLIB_MPI_WORLD (-1)

/* A context over a private duplicate of the communicator (so that nnlib's
 * messages never match the caller's). MPI must be initialized
 * (NNLIB_ERR_WRONG_STATE otherwise). Collective. */
NNLIB_MPI_API nnlib_status nnlib_mpi_create(nnlib_mpi **out, int64_t comm);
/* Collective (frees the duplicate communicator); NULL is a no-op. */
NNLIB_MPI_API void nnlib_mpi_free(nnlib_mpi *mpi);

/* This process's rank and the number of ranks (-1 for NULL). */
NNLIB_MPI_API int nnlib_mpi_get_rank(const nnlib_mpi *mpi);
NNLIB_MPI_API int nnlib_mpi_get_size(const nnlib_mpi *mpi);

/* This rank's contiguous share of n items split over K ranks: the first
 * n mod K ranks take floor(n / K) + 1 items, the others floor(n / K), in rank
 * order; *start is the first item and *count may be 0. Not collective. */
NNLIB_MPI_API nnlib_status nnlib_mpi_get_share(const nnlib_mpi *mpi,
                                               int64_t n, int64_t *start,
                                               int64_t *count);

/* Agreement on a status: returns NNLIB_OK on every rank if every rank passed
 * NNLIB_OK, else an error on every rank (see "Collective calls" above). Use
 * it after any local work that may fail on some ranks only (loading data)
 * and before the next collective call. Collective. */
NNLIB_MPI_API nnlib_status nnlib_mpi_agree(nnlib_mpi *mpi, nnlib_status local);

/* Detail of the last failure of an nnlib_mpi_ call on the calling thread,
 * e.g. "rank 1 failed: idx: cannot open ...". Never NULL ("" when nothing
 * failed). Thread-local; valid until the next nnlib_mpi_ call. */
NNLIB_MPI_API const char *nnlib_mpi_last_error_message(void);

/* ------------------------------------------------------------- replicas */

/* Copies the root rank's parameters (MPI_Bcast of the flat parameter
 * buffer) and layer buffers (batchnorm running statistics) to every rank;
 * not the optimizer state (fresh after compile, equal after
 * nnlib_mpi_model_load). The models must be compiled with the same layers:
 * different parameter or buffer sizes are NNLIB_ERR_SHAPE_MISMATCH on every
 * rank. Collective. */
NNLIB_MPI_API nnlib_status nnlib_mpi_broadcast_model(nnlib_mpi *mpi,
                                                     nnlib_model *model,
                                                     int root);

/* Writes the model to `path` on rank 0 only (atomically, nnlib_model_save)
 * and gives every rank rank 0's status. Collective. */
NNLIB_MPI_API nnlib_status nnlib_mpi_model_save(nnlib_mpi *mpi,
                                                const nnlib_model *model,
                                                const char *path,
                                                unsigned flags);
/* Rank 0 loads `path` (nnlib_model_load; path is read on rank 0 only and
 * may be NULL elsewhere) and broadcasts the model, optimizer state
 * included, so every rank returns an equal compiled model in *out.
 * Collective. */
NNLIB_MPI_API nnlib_status nnlib_mpi_model_load(nnlib_mpi *mpi,
                                                nnlib_model **out,
                                                const char *path);

/* ------------------------------------------------------------- training */

/* Data-parallel backward: this rank's share x [n, input...] and target of
 * the global batch (both NULL for a rank with no samples), forward and
 * backward locally, then the gradients are averaged over all ranks,
 *   g = sum_r (n_r / N) g_r,  N = sum_r n_r,
 * which is the gradient of the mean loss over the N samples. Leaves g in the
 * model's gradients on every rank and the global mean loss in *loss (may be
 * NULL). NNLIB_ERR_INVALID_ARGUMENT if no rank has a sample. Layer
 * buffers (batchnorm running statistics) follow each rank's own shares;
 * nnlib_mpi_broadcast_model makes them equal again. Collective. */
NNLIB_MPI_API nnlib_status nnlib_mpi_backward(nnlib_mpi *mpi,
                                              nnlib_model *model,
                                              const nnlib_tensor *x,
                                              const nnlib_tensor *target,
                                              float *loss);
/* nnlib_mpi_backward, then the optimizer's update on every rank. A
 * non-finite loss on any rank leaves every rank's weights untouched and
 * returns NNLIB_ERR_NUMERICAL everywhere. Collective. */
NNLIB_MPI_API nnlib_status nnlib_mpi_step(nnlib_mpi *mpi, nnlib_model *model,
                                          const nnlib_tensor *x,
                                          const nnlib_tensor *target,
                                          float *loss);

typedef struct nnlib_mpi_fit_options {
  size_t struct_size;
  int64_t epochs;             /* default 1                                  */
  int64_t batch_size;         /* global batch, split over the ranks; default:
                                 the compiled max batch. Each rank's share,
                                 ceil(batch_size / ranks), must fit the
                                 compiled max batch                         */
  int shuffle;                /* default 1: a new order every epoch         */
  uint64_t seed;              /* of the shuffled orders; default 1          */
  nnlib_progress_fn progress; /* called on rank 0 only, after every global
                                 batch, with global counts and the mean loss
                                 over all ranks; non-zero stops every rank
                                 with NNLIB_ERR_CANCELLED                   */
  void *user;                 /* passed to progress                         */
  float *epoch_losses;        /* optional, `epochs` floats on each rank: the
                                 mean loss per epoch over all ranks         */
} nnlib_mpi_fit_options;

NNLIB_MPI_API nnlib_status nnlib_mpi_fit_options_init(
    nnlib_mpi_fit_options *options);

/* Data-parallel fit. Every rank passes the same data set (x [S, input...],
 * target [S, ...]) and options. Each epoch's order is a permutation of the
 * S samples drawn from `seed` identically on every rank; each global batch
 * of that order is split with nnlib_mpi_get_share, so ranks never share a
 * sample and together they see the whole epoch. Every step is
 * nnlib_mpi_step. Mismatched options or sample counts are
 * NNLIB_ERR_INVALID_ARGUMENT on every rank. The model's own random
 * generator is not used for the order (dropout still draws from it).
 * Batchnorm normalises each share with its own batch statistics (as
 * without MPI on a batch of that size); the running statistics each rank
 * gathers are averaged over the ranks when fit returns, so the replicas
 * end equal. Collective. */
NNLIB_MPI_API nnlib_status nnlib_mpi_fit(nnlib_mpi *mpi, nnlib_model *model,
                                         const nnlib_tensor *x,
                                         const nnlib_tensor *target,
                                         const nnlib_mpi_fit_options *options);

/* ---------------------------------------------------------------- stats */

/* Where this rank's training time went, summed over the data-parallel
 * steps and backward passes since the context was created. */
typedef struct nnlib_mpi_stats {
  size_t struct_size;       /* set by the caller: sizeof(nnlib_mpi_stats) */
  int64_t steps;            /* nnlib_mpi_backward calls (step and fit too) */
  double compute_seconds;   /* local forward and backward                  */
  double agree_seconds;     /* status and sample-count agreement: mostly
                               waiting for the slowest rank                */
  double allreduce_seconds; /* the gradient MPI_Allreduce                  */
  double update_seconds;    /* the optimizer update                        */
  double allreduce_bytes;   /* gradient bytes this rank passed to it       */
} nnlib_mpi_stats;

/* Fills the first stats->struct_size bytes (a shorter, older struct gets
 * its prefix); NNLIB_ERR_STRUCT_SIZE if smaller than the first field. */
NNLIB_MPI_API nnlib_status nnlib_mpi_get_stats(const nnlib_mpi *mpi,
                                               nnlib_mpi_stats *stats);

#ifdef __cplusplus
}
#endif

#endif /* NNLIB_MPI_H */
