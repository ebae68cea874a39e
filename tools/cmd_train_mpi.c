/* cmd_train_mpi.c - nnlib train under `mpirun -np K`: every rank loads the
 * data and builds the same model, rank 0's weights are broadcast, each
 * global batch of --batch samples is split across the ranks
 * (libnnlib_mpi), and rank 0 alone evaluates, prints and saves. Built only
 * where CMake finds MPI (NNLIB_HAVE_MPI). */
#define _POSIX_C_SOURCE 200809L
#include "train.h"

#include <nnlib_mpi.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

bool train_under_mpirun(void) {
  return getenv("OMPI_COMM_WORLD_SIZE") != NULL || getenv("PMI_SIZE") != NULL;
}

typedef struct mpi_run {
  nnlib_mpi *mpi;
  int rank, size;
  bool printed; /* this rank already reported its own failure */
} mpi_run;

/* An agreed failure, reported once: by rank 0, unless it printed its own. */
static int mpi_fail(const mpi_run *run, const char *what, nnlib_status st) {
  if (run->rank == 0 && !run->printed)
    fprintf(stderr, "nnlib train: %s: %s: %s\n", what,
            nnlib_status_string(st), nnlib_mpi_last_error_message());
  return 1;
}

/* --threads, else the cores shared among this machine's ranks, so K ranks
 * do not oversubscribe the cores with K OpenBLAS pools. */
static void set_threads(const train_config *c) {
  if (c->threads > 0) {
    nnlib_set_num_threads((int)c->threads);
    return;
  }
  const char *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  long ranks = local != NULL ? atol(local) : 1;
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  long threads = ranks > 0 && cores > 0 ? cores / ranks : 1;
  nnlib_set_num_threads(threads > 0 ? (int)threads : 1);
}

/* Every rank loads and compiles; then all agree and take rank 0's weights. */
static int setup(const mpi_run *run, const train_config *c, run_data *r) {
  nnlib_status local = train_build(c, r);
  nnlib_status st = nnlib_mpi_agree(run->mpi, local);
  if (st == NNLIB_OK)
    st = nnlib_mpi_broadcast_model(run->mpi, r->model, 0);
  if (st != NNLIB_OK) {
    mpi_run quiet = *run;
    quiet.printed = local != NNLIB_OK;
    return mpi_fail(&quiet, "setting up the ranks", st);
  }
  if (run->rank == 0) {
    train_print_model(c, r);
    printf("data-parallel over %d MPI ranks: each takes about %lld of every "
           "batch of %lld\n",
           run->size,
           (long long)((nnlib_model_get_max_batch(r->model) + run->size - 1) /
                       run->size),
           (long long)nnlib_model_get_max_batch(r->model));
    fflush(stdout);
  }
  return 0;
}

/* Rank 0 evaluates the validation and test sets and prints the epoch
 * line; with --patience every rank computes the validation loss (the
 * replicas are equal, so they all see the same one). */
static int report_epoch(mpi_run *run, const train_config *c, run_data *r,
                        epoch_line *line) {
  nnlib_status local = NNLIB_OK;
  if (run->rank == 0 || c->patience > 0)
    local = train_evaluate_valid(r->model, r, line);
  if (local == NNLIB_OK && run->rank == 0) {
    local = nnlib_model_evaluate(r->model, r->tx, r->ty, &line->test_loss,
                                 &line->accuracy);
    if (local == NNLIB_OK)
      train_print_epoch(line);
  }
  nnlib_status st = nnlib_mpi_agree(run->mpi, local);
  return st == NNLIB_OK ? 0 : mpi_fail(run, "evaluating", st);
}

/* --patience on every rank: each keeps its own best model; one agreement
 * on failures, then one on stopping, where any rank that wants to stop
 * stops them all, so no rank is ever left waiting in a collective. */
static int watch_epoch(mpi_run *run, const train_config *c, run_data *r,
                       const epoch_line *line, best_model *best, bool *stop) {
  bool mine = false;
  nnlib_status local = train_watch_epoch(c, r->model, line, best, &mine);
  nnlib_status st = nnlib_mpi_agree(run->mpi, local);
  if (st != NNLIB_OK)
    return mpi_fail(run, "keeping the best epoch", st);
  *stop = nnlib_mpi_agree(run->mpi, mine ? NNLIB_ERR_CANCELLED : NNLIB_OK) !=
          NNLIB_OK;
  return 0;
}

/* Every rank swaps in its best model; rank 0 reports it. */
static int restore_best(mpi_run *run, run_data *r, const best_model *best,
                        int64_t epochs_run, float *acc) {
  bool restored = false;
  float test_loss = 0.0f;
  nnlib_status local = train_restore_best(r, best, epochs_run, &restored);
  if (local == NNLIB_OK && restored && run->rank == 0)
    local = nnlib_model_evaluate(r->model, r->tx, r->ty, &test_loss, acc);
  nnlib_status st = nnlib_mpi_agree(run->mpi, local);
  if (st != NNLIB_OK)
    return mpi_fail(run, "restoring the best epoch", st);
  if (restored && run->rank == 0)
    train_print_restored(best, test_loss, *acc);
  return 0;
}

static int train_epochs(mpi_run *run, const train_config *c, run_data *r,
                        double start, float *acc, int64_t *epochs_run,
                        best_model *best) {
  cli_progress bar = {run->rank == 0 && isatty(2) != 0, 0.0, 0, c->epochs,
                      0.0};
  nnlib_mpi_fit_options fo;
  nnlib_mpi_fit_options_init(&fo);
  fo.batch_size = nnlib_model_get_max_batch(r->model);
  fo.progress = cli_progress_callback;
  fo.user = &bar;
  bool stop = false;
  for (int64_t e = 0; e < c->epochs && !stop; e++) {
    epoch_line line = {.epoch = e, .epochs = c->epochs};
    fo.epoch_losses = &line.train_loss;
    /* one fit per epoch (for the test line between them): a seed of its
     * own, so that every epoch has its own order */
    fo.seed = (uint64_t)c->seed * 0x9E3779B97F4A7C15ull + (uint64_t)e;
    bar.epoch = e;
    bar.start = cli_now();
    nnlib_status st = nnlib_mpi_fit(run->mpi, r->model, r->x, r->y, &fo);
    cli_progress_clear(&bar);
    if (st != NNLIB_OK)
      return mpi_fail(run, "training", st);
    line.seconds = cli_now() - start;
    if (report_epoch(run, c, r, &line))
      return 1;
    *acc = line.accuracy;
    *epochs_run = e + 1;
    if (c->patience > 0 && watch_epoch(run, c, r, &line, best, &stop))
      return 1;
  }
  if (stop && run->rank == 0)
    train_print_early_stop(c, best);
  return c->patience > 0 ? restore_best(run, r, best, *epochs_run, acc) : 0;
}

static int run_ranks(mpi_run *run, const train_config *c) {
  set_threads(c);
  double start = cli_now();
  run_data r = {0};
  best_model best = {INFINITY, -1, NULL, 0};
  float acc = 0.0f;
  int64_t epochs_run = 0;
  int rc = setup(run, c, &r);
  if (rc == 0)
    rc = train_epochs(run, c, &r, start, &acc, &epochs_run, &best);
  nnlib_free(best.file);
  if (rc == 0 && c->out != NULL) {
    nnlib_status st = nnlib_mpi_model_save(run->mpi, r.model, c->out, 0);
    if (st != NNLIB_OK)
      rc = mpi_fail(run, c->out, st);
  }
  if (rc == 0 && run->rank == 0)
    train_print_summary(c, acc, epochs_run, cli_now() - start);
  train_free(&r);
  return rc;
}

int cmd_train_mpi(const train_config *c) {
  mpi_run run = {NULL, 0, 1, false};
  nnlib_status st = nnlib_mpi_init();
  if (st == NNLIB_OK)
    st = nnlib_mpi_create(&run.mpi, NNLIB_MPI_WORLD);
  if (st != NNLIB_OK) {
    fprintf(stderr, "nnlib train: starting MPI: %s: %s\n",
            nnlib_status_string(st), nnlib_mpi_last_error_message());
    nnlib_mpi_finalize();
    return 1;
  }
  run.rank = nnlib_mpi_get_rank(run.mpi);
  run.size = nnlib_mpi_get_size(run.mpi);
  int rc = run_ranks(&run, c);
  nnlib_mpi_free(run.mpi);
  nnlib_mpi_finalize();
  return rc;
}
