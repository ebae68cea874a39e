/* train.h - what `nnlib train` (cmd_train.c) shares with its data-parallel
 * variant under mpirun (cmd_train_mpi.c, built where MPI is found). */
#ifndef NNLIB_CLI_TRAIN_H
#define NNLIB_CLI_TRAIN_H

#include "cli.h"

typedef struct train_config {
  const char *data, *spec, *out, *optimizer, *schedule, *loss;
  int64_t epochs, batch, seed, limit, threads;
  int64_t validation; /* training samples held out (the last ones), or 0 */
  int64_t patience;   /* epochs without a better validation loss, or 0 */
  float lr;           /* 0: the optimizer's default */
  float momentum, weight_decay; /* -1: the optimizer's default */
} train_config;

/* x, y: what training sees; vx, vy: the held-out validation samples
 * (--validation), views over the end of the loaded set, or NULL; all_x,
 * all_y own the loaded training set when it is split. */
typedef struct run_data {
  nnlib_tensor *x, *y, *tx, *ty;
  nnlib_tensor *vx, *vy, *all_x, *all_y;
  nnlib_model *model;
} run_data;

/* Loads the data sets, holds out the --validation samples and compiles the
 * model the flags describe (maximum batch: --batch, or the sample count if
 * smaller). On failure prints one line and returns the status. */
nnlib_status train_build(const train_config *c, run_data *r);
void train_free(run_data *r);
/* The lines nnlib train prints: the model before training, one per epoch,
 * the key=value summary at the end. */
void train_print_model(const train_config *c, const run_data *r);
typedef struct epoch_line {
  int64_t epoch, epochs;
  float train_loss, test_loss, accuracy;
  float valid_loss; /* printed when the run holds samples out */
  bool has_valid;
  double seconds;
} epoch_line;
void train_print_epoch(const epoch_line *line);
/* Fills the line's losses and accuracy: the validation set (when held
 * out), then the test set; _valid the first only. */
nnlib_status train_evaluate_epoch(nnlib_model *m, const run_data *r,
                                  epoch_line *line);
nnlib_status train_evaluate_valid(nnlib_model *m, const run_data *r,
                                  epoch_line *line);

/* --patience: the lowest validation loss so far, its epoch, and the model
 * as it was then (saved to memory). */
typedef struct best_model {
  float loss; /* INFINITY before the first epoch */
  int64_t epoch;
  void *file;
  size_t size;
} best_model;
/* After an epoch: keeps the model when its validation loss is the lowest
 * yet (NaN never is); *stop once --patience epochs passed without one. */
nnlib_status train_watch_epoch(const train_config *c, nnlib_model *m,
                               const epoch_line *line, best_model *best,
                               bool *stop);
/* Replaces r->model by the best epoch's when a later epoch ended the run
 * (*restored says whether it did). */
nnlib_status train_restore_best(run_data *r, const best_model *best,
                                int64_t epochs_run, bool *restored);
void train_print_early_stop(const train_config *c, const best_model *best);
void train_print_restored(const best_model *best, float test_loss,
                          float accuracy);
/* --optimizer's names, NULL-terminated, and a name's index in such a list
 * (-1 when absent). */
extern const char *const train_optimizer_names[];
int train_name_index(const char *name, const char *const *names);
/* `epochs`: how many ran (fewer than --epochs after early stopping). */
void train_print_summary(const train_config *c, float accuracy,
                         int64_t epochs, double seconds);

#ifdef NNLIB_HAVE_MPI
/* True when this process was started by mpirun (Open MPI's
 * OMPI_COMM_WORLD_SIZE, or PMI_SIZE). */
bool train_under_mpirun(void);
/* nnlib train, data-parallel over the ranks of MPI_COMM_WORLD. */
int cmd_train_mpi(const train_config *c);
#endif

#endif
