/* train.h - what `nnlib train` (cmd_train.c) shares with its data-parallel
 * variant under mpirun (cmd_train_mpi.c, built where MPI is found). */
#ifndef NNLIB_CLI_TRAIN_H
#define NNLIB_CLI_TRAIN_H

#include "cli.h"

typedef struct train_config {
  const char *data, *spec, *out, *optimizer, *schedule, *loss;
  int64_t epochs, batch, seed, limit, threads;
  float lr, momentum, weight_decay;
} train_config;

typedef struct run_data {
  nnlib_tensor *x, *y, *tx, *ty;
  nnlib_model *model;
} run_data;

/* Loads the data sets and compiles the model the flags describe (maximum
 * batch: --batch, or the sample count if smaller). On failure prints one
 * line and returns the status. */
nnlib_status train_build(const train_config *c, run_data *r);
void train_free(run_data *r);
/* The lines nnlib train prints: the model before training, one per epoch,
 * the key=value summary at the end. */
void train_print_model(const train_config *c, const run_data *r);
void train_print_epoch(int64_t epoch, int64_t epochs, float train_loss,
                       float test_loss, float accuracy, double seconds);
void train_print_summary(const train_config *c, float accuracy,
                         double seconds);

#ifdef NNLIB_HAVE_MPI
/* True when this process was started by mpirun (Open MPI's
 * OMPI_COMM_WORLD_SIZE, or PMI_SIZE). */
bool train_under_mpirun(void);
/* nnlib train, data-parallel over the ranks of MPI_COMM_WORLD. */
int cmd_train_mpi(const train_config *c);
#endif

#endif
