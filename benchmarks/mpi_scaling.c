/* mpi_scaling.c - data-parallel scaling of the large MLP (784-1024-1024-10
 * ReLU, softmax cross-entropy, global batch 256, SGD) over MPI ranks, one
 * OpenBLAS thread per rank. Prints one JSON line (rank 0):
 *
 *   mpi_scaling [--steps N] [--batch B] [--threads T]     under mpirun -np K
 *   mpi_scaling --core [...]       the baseline: nnlib_model_step, no MPI
 *
 * Per step it reports where each rank's time went (the slowest rank's
 * numbers, as the step waits for it): local forward+backward, the small
 * agreement allreduce (mostly waiting for the slowest rank), the gradient
 * allreduce and the update; plus a bare MPI_Allreduce of the same gradient
 * size timed alone, from which the achieved bus bandwidth follows. */
#define _POSIX_C_SOURCE 200809L
#include <nnlib.h>
#include <nnlib_mpi.h>

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SPEC "dense:1024,relu,dense:1024,relu,dense:10"

typedef struct config {
  int64_t steps, warmup, batch;
  int threads;
  int core; /* 1: nnlib_model_step in one process, no MPI */
} config;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int parse(int argc, char **argv, config *c) {
  *c = (config){50, 5, 256, 1, 0};
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--core") == 0)
      c->core = 1;
    else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc)
      c->steps = atoll(argv[++i]);
    else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
      c->batch = atoll(argv[++i]);
    else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
      c->threads = atoi(argv[++i]);
    else
      return 0;
  }
  return c->steps > 0 && c->batch > 0 && c->threads > 0;
}

/* The model, compiled for `max_batch`, and a batch of random inputs and
 * class indices (the values do not change the cost). */
static nnlib_status setup(int64_t max_batch, nnlib_model **model,
                          nnlib_tensor **x, nnlib_tensor **y) {
  int64_t in[1] = {784}, xs[2] = {max_batch, 784}, ys[1] = {max_batch};
  nnlib_optimizer *opt = NULL;
  nnlib_status st;
  if ((st = nnlib_model_create(model)) != NNLIB_OK ||
      (st = nnlib_model_add_spec(*model, SPEC)) != NNLIB_OK ||
      (st = nnlib_sgd_create(&opt, 0.01f, 0.0f, 0, 0.0f)) != NNLIB_OK ||
      (st = nnlib_model_compile(*model, in, 1, max_batch,
                                NNLIB_LOSS_SOFTMAX_CE, opt, 7)) != NNLIB_OK ||
      (st = nnlib_tensor_create(x, xs, 2)) != NNLIB_OK ||
      (st = nnlib_tensor_create(y, ys, 1)) != NNLIB_OK)
    return st;
  float *xd = nnlib_tensor_get_data(*x), *yd = nnlib_tensor_get_data(*y);
  srand(1);
  for (int64_t i = 0; i < max_batch * 784; i++)
    xd[i] = (float)rand() / (float)RAND_MAX;
  for (int64_t i = 0; i < max_batch; i++)
    yd[i] = (float)(i % 10);
  return NNLIB_OK;
}

static int run_core(const config *c) {
  nnlib_model *model = NULL;
  nnlib_tensor *x = NULL, *y = NULL;
  nnlib_status st = setup(c->batch, &model, &x, &y);
  double start = 0.0;
  for (int64_t s = 0; st == NNLIB_OK && s < c->warmup + c->steps; s++) {
    if (s == c->warmup)
      start = now();
    st = nnlib_model_step(model, x, y, NULL);
  }
  double seconds = now() - start;
  if (st != NNLIB_OK) {
    fprintf(stderr, "mpi_scaling: %s: %s\n", nnlib_status_string(st),
            nnlib_last_error_message());
    return 1;
  }
  printf("{\"bench\":\"mpi_scaling\",\"mode\":\"core\",\"ranks\":1,"
         "\"threads\":%d,\"batch\":%lld,\"steps\":%lld,\"step_ms\":%.3f,"
         "\"samples_per_s\":%.1f}\n",
         c->threads, (long long)c->batch, (long long)c->steps,
         1e3 * seconds / (double)c->steps,
         (double)(c->batch * c->steps) / seconds);
  nnlib_model_free(model);
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  return 0;
}

/* Seconds per bare MPI_Allreduce of `count` floats (the gradient size). */
static double bare_allreduce(int64_t count, int repeats) {
  float *buf = calloc((size_t)count, sizeof *buf);
  if (buf == NULL)
    return -1.0;
  MPI_Barrier(MPI_COMM_WORLD);
  double start = MPI_Wtime();
  for (int i = 0; i < repeats; i++)
    MPI_Allreduce(MPI_IN_PLACE, buf, (int)count, MPI_FLOAT, MPI_SUM,
                  MPI_COMM_WORLD);
  double seconds = (MPI_Wtime() - start) / repeats;
  free(buf);
  return seconds;
}

/* The slowest rank's value. */
static double slowest(double v) {
  double out = v;
  MPI_Allreduce(&v, &out, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return out;
}

static nnlib_status timed_steps(const config *c, nnlib_mpi *mpi,
                                nnlib_model *model, nnlib_tensor *x,
                                nnlib_tensor *y, double *seconds,
                                nnlib_mpi_stats *stats) {
  nnlib_status st = NNLIB_OK;
  for (int64_t s = 0; st == NNLIB_OK && s < c->warmup; s++)
    st = nnlib_mpi_step(mpi, model, x, y, NULL);
  nnlib_mpi_stats before = {sizeof before, 0, 0, 0, 0, 0, 0};
  nnlib_mpi_get_stats(mpi, &before);
  MPI_Barrier(MPI_COMM_WORLD);
  double start = MPI_Wtime();
  for (int64_t s = 0; st == NNLIB_OK && s < c->steps; s++)
    st = nnlib_mpi_step(mpi, model, x, y, NULL);
  *seconds = MPI_Wtime() - start;
  stats->struct_size = sizeof *stats;
  nnlib_mpi_get_stats(mpi, stats);
  stats->compute_seconds -= before.compute_seconds;
  stats->agree_seconds -= before.agree_seconds;
  stats->allreduce_seconds -= before.allreduce_seconds;
  stats->update_seconds -= before.update_seconds;
  stats->allreduce_bytes -= before.allreduce_bytes;
  return st;
}

/* Collective (the maxima); rank 0 prints. */
static void report(const config *c, int rank, int ranks, double seconds,
                   const nnlib_mpi_stats *s, int64_t params, double bare) {
  double ms = 1e3 / (double)c->steps;
  double step = slowest(seconds) * ms, compute = slowest(s->compute_seconds);
  double agree = slowest(s->agree_seconds);
  double reduce = slowest(s->allreduce_seconds);
  double update = slowest(s->update_seconds);
  double bytes = (double)params * sizeof(float);
  /* a ring allreduce moves 2 (K-1)/K of the buffer through each link */
  double bus = ranks > 1 ? 2.0 * (ranks - 1) / ranks * bytes / bare : 0.0;
  if (rank != 0)
    return;
  printf("{\"bench\":\"mpi_scaling\",\"mode\":\"mpi\",\"ranks\":%d,"
         "\"threads\":%d,\"batch\":%lld,\"share\":%lld,\"steps\":%lld,"
         "\"step_ms\":%.3f,\"samples_per_s\":%.1f,\"compute_ms\":%.3f,"
         "\"agree_ms\":%.3f,\"allreduce_ms\":%.3f,\"update_ms\":%.3f,"
         "\"allreduce_share\":%.4f,\"gradient_bytes\":%.0f,"
         "\"bare_allreduce_ms\":%.3f,\"bus_gbytes_per_s\":%.3f}\n",
         ranks, c->threads, (long long)c->batch,
         (long long)((c->batch + ranks - 1) / ranks), (long long)c->steps,
         step, (double)c->batch / (step / 1e3), compute * ms, agree * ms,
         reduce * ms, update * ms, reduce * ms / step, bytes, bare * 1e3,
         bus / 1e9);
}

static int run_mpi(const config *c) {
  nnlib_mpi *mpi = NULL;
  nnlib_status st = nnlib_mpi_create(&mpi, NNLIB_MPI_WORLD);
  if (st != NNLIB_OK) {
    fprintf(stderr, "mpi_scaling: %s\n", nnlib_mpi_last_error_message());
    return 1;
  }
  int rank = nnlib_mpi_get_rank(mpi), ranks = nnlib_mpi_get_size(mpi);
  int64_t first = 0, share = 0, params = 0;
  nnlib_mpi_get_share(mpi, c->batch, &first, &share);
  nnlib_model *model = NULL;
  nnlib_tensor *x = NULL, *y = NULL;
  st = nnlib_mpi_agree(mpi, setup(share, &model, &x, &y));
  if (st == NNLIB_OK)
    st = nnlib_mpi_broadcast_model(mpi, model, 0);
  double seconds = 0.0;
  nnlib_mpi_stats stats;
  if (st == NNLIB_OK)
    st = timed_steps(c, mpi, model, x, y, &seconds, &stats);
  if (st == NNLIB_OK) {
    nnlib_model_get_param_count(model, &params);
    double bare = bare_allreduce(params, 20);
    report(c, rank, ranks, seconds, &stats, params, bare);
  } else if (rank == 0) {
    fprintf(stderr, "mpi_scaling: %s: %s\n", nnlib_status_string(st),
            nnlib_mpi_last_error_message());
  }
  nnlib_model_free(model);
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  nnlib_mpi_free(mpi);
  return st == NNLIB_OK ? 0 : 1;
}

int main(int argc, char **argv) {
  config c;
  if (!parse(argc, argv, &c)) {
    fprintf(stderr, "usage: mpi_scaling [--core] [--steps N] [--batch B] "
                    "[--threads T]\n");
    return 2;
  }
  nnlib_set_num_threads(c.threads);
  if (c.core)
    return run_core(&c);
  if (nnlib_mpi_init() != NNLIB_OK) {
    fprintf(stderr, "mpi_scaling: %s\n", nnlib_mpi_last_error_message());
    return 1;
  }
  int rc = run_mpi(&c);
  nnlib_mpi_finalize();
  return rc;
}
