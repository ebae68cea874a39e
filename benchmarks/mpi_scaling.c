/* mpi_scaling.c - data-parallel scaling of the large MLP (784-1024-1024-10
 * ReLU, softmax cross-entropy, global batch 256, SGD) over MPI ranks, one
 * OpenBLAS thread per rank. Prints one JSON line (rank 0):
 *
 *   mpi_scaling [--steps N] [--batch B] [--threads T]     under mpirun -np K
 *   mpi_scaling --core [...]       the baseline: nnlib_model_step, no MPI
 *
 * It reports medians over the steps (the slowest rank's, as a step waits
 * for it) of the step and of where it went: local forward+backward, the
 * small agreement allreduce (mostly waiting for the slowest rank), the
 * gradient allreduce and the update; plus a bare MPI_Allreduce of the same
 * gradient size timed alone, from which the achieved bus bandwidth follows.
 * Medians, not means: on a shared machine a step is now and then
 * descheduled, and one such step would dominate a mean. */
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

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Median of n values (sorts them). Medians, not means: a step on a shared
 * machine is now and then descheduled, and one such step would dominate. */
static double median(double *v, int64_t n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int run_core(const config *c) {
  nnlib_model *model = NULL;
  nnlib_tensor *x = NULL, *y = NULL;
  double *times = calloc((size_t)c->steps, sizeof *times);
  nnlib_status st = times ? setup(c->batch, &model, &x, &y)
                          : NNLIB_ERR_OUT_OF_MEMORY;
  for (int64_t s = 0; st == NNLIB_OK && s < c->warmup + c->steps; s++) {
    double start = now();
    st = nnlib_model_step(model, x, y, NULL);
    if (s >= c->warmup)
      times[s - c->warmup] = now() - start;
  }
  if (st != NNLIB_OK) {
    fprintf(stderr, "mpi_scaling: %s: %s\n", nnlib_status_string(st),
            nnlib_last_error_message());
    return 1;
  }
  double step = median(times, c->steps);
  printf("{\"bench\":\"mpi_scaling\",\"mode\":\"core\",\"ranks\":1,"
         "\"threads\":%d,\"batch\":%lld,\"steps\":%lld,\"step_ms\":%.3f,"
         "\"samples_per_s\":%.1f,\"best_step_ms\":%.3f}\n",
         c->threads, (long long)c->batch, (long long)c->steps, step * 1e3,
         (double)c->batch / step, times[0] * 1e3);
  free(times);
  nnlib_model_free(model);
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  return 0;
}

/* Median and fastest seconds of a bare MPI_Allreduce of `count` floats
 * (the gradient size), each started together after a barrier. */
static void bare_allreduce(int64_t count, int repeats, double *out) {
  float *buf = calloc((size_t)count, sizeof *buf);
  double times[64];
  out[0] = out[1] = -1.0;
  if (buf == NULL || repeats > 64)
    return;
  for (int i = 0; i < repeats; i++) {
    MPI_Barrier(MPI_COMM_WORLD);
    double start = MPI_Wtime();
    MPI_Allreduce(MPI_IN_PLACE, buf, (int)count, MPI_FLOAT, MPI_SUM,
                  MPI_COMM_WORLD);
    times[i] = MPI_Wtime() - start;
  }
  free(buf);
  out[0] = median(times, repeats);
  out[1] = times[0];
}

/* The slowest rank's value. */
static double slowest(double v) {
  double out = v;
  MPI_Allreduce(&v, &out, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return out;
}

/* Per-step times of one rank: the step and its parts, from the stats. */
typedef struct step_times {
  double *step, *compute, *agree, *reduce, *update;
} step_times;

static nnlib_status timed_steps(const config *c, nnlib_mpi *mpi,
                                nnlib_model *model, nnlib_tensor *x,
                                nnlib_tensor *y, step_times *t) {
  nnlib_status st = NNLIB_OK;
  for (int64_t s = 0; st == NNLIB_OK && s < c->warmup; s++)
    st = nnlib_mpi_step(mpi, model, x, y, NULL);
  MPI_Barrier(MPI_COMM_WORLD);
  nnlib_mpi_stats a = {sizeof a, 0, 0, 0, 0, 0, 0}, b = a;
  nnlib_mpi_get_stats(mpi, &a);
  for (int64_t s = 0; st == NNLIB_OK && s < c->steps; s++) {
    double start = MPI_Wtime();
    st = nnlib_mpi_step(mpi, model, x, y, NULL);
    t->step[s] = MPI_Wtime() - start;
    nnlib_mpi_get_stats(mpi, &b);
    t->compute[s] = b.compute_seconds - a.compute_seconds;
    t->agree[s] = b.agree_seconds - a.agree_seconds;
    t->reduce[s] = b.allreduce_seconds - a.allreduce_seconds;
    t->update[s] = b.update_seconds - a.update_seconds;
    a = b;
  }
  return st;
}

/* Collective (the maxima over ranks: a step waits for the slowest);
 * rank 0 prints. */
/* A ring allreduce moves 2 (K-1)/K of the buffer through each link. */
static double ring_bytes(int ranks, double bytes) {
  return 2.0 * (ranks - 1) / ranks * bytes;
}

/* bare: median and fastest seconds of the bare allreduce. */
static void report(const config *c, int rank, int ranks, step_times *t,
                   int64_t params, const double *bare) {
  double step = slowest(median(t->step, c->steps)) * 1e3;
  double compute = slowest(median(t->compute, c->steps)) * 1e3;
  double agree = slowest(median(t->agree, c->steps)) * 1e3;
  double reduce = slowest(median(t->reduce, c->steps)) * 1e3;
  double update = slowest(median(t->update, c->steps)) * 1e3;
  /* after median's sort, [0] is the fastest: the machine at its quietest */
  double best_step = slowest(t->step[0]) * 1e3;
  double best_reduce = slowest(t->reduce[0]) * 1e3;
  double bytes = (double)params * sizeof(float);
  if (rank != 0)
    return;
  printf("{\"bench\":\"mpi_scaling\",\"mode\":\"mpi\",\"ranks\":%d,"
         "\"threads\":%d,\"batch\":%lld,\"share\":%lld,\"steps\":%lld,"
         "\"step_ms\":%.3f,\"samples_per_s\":%.1f,\"compute_ms\":%.3f,"
         "\"agree_ms\":%.3f,\"allreduce_ms\":%.3f,\"update_ms\":%.3f,"
         "\"allreduce_share\":%.4f,\"gradient_bytes\":%.0f,"
         "\"bare_allreduce_ms\":%.3f,\"bus_gbytes_per_s\":%.3f,"
         "\"best_step_ms\":%.3f,\"best_allreduce_ms\":%.3f,"
         "\"best_bare_allreduce_ms\":%.3f}\n",
         ranks, c->threads, (long long)c->batch,
         (long long)((c->batch + ranks - 1) / ranks), (long long)c->steps,
         step, (double)c->batch / (step / 1e3), compute, agree, reduce, update,
         reduce / step, bytes, bare[0] * 1e3,
         ranks > 1 ? ring_bytes(ranks, bytes) / bare[0] / 1e9 : 0.0, best_step,
         best_reduce, bare[1] * 1e3);
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
  size_t n = (size_t)c->steps;
  double *block = calloc(5 * n, sizeof *block);
  step_times t = {block, block + n, block + 2 * n, block + 3 * n,
                  block + 4 * n};
  if (st == NNLIB_OK)
    st = nnlib_mpi_agree(mpi, block ? NNLIB_OK : NNLIB_ERR_OUT_OF_MEMORY);
  if (st == NNLIB_OK)
    st = timed_steps(c, mpi, model, x, y, &t);
  if (st == NNLIB_OK) {
    nnlib_model_get_param_count(model, &params);
    double bare[2];
    bare_allreduce(params, 21, bare);
    report(c, rank, ranks, &t, params, bare);
  } else if (rank == 0) {
    fprintf(stderr, "mpi_scaling: %s: %s\n", nnlib_status_string(st),
            nnlib_mpi_last_error_message());
  }
  free(block);
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
