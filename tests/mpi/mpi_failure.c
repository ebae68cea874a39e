/* mpi_failure.c - under mpirun -np K: a failure on one rank (a missing or
 * corrupt file, a NaN loss, a bad argument, mismatched options, a cancel on
 * rank 0) makes every rank return an error, and none waits forever (ctest's
 * timeout would catch a hang).
 *   mpirun -np K mpi_failure DIR      (DIR: where scratch files go) */
#include "mpi_common.h"

#include <stdio.h>

static int rank_, size_;

/* The message every rank holds after an agreed failure of `culprit`. */
static void check_blames(int culprit) {
  char expect[64];
  snprintf(expect, sizeof expect, "rank %d", culprit);
  CHECK(strstr(nnlib_mpi_last_error_message(), expect) != NULL);
}

static void basics(nnlib_mpi *mpi) {
  CHECK(nnlib_mpi_version() == nnlib_version());
  CHECK(nnlib_mpi_get_rank(mpi) == rank_ && nnlib_mpi_get_size(mpi) == size_);
  CHECK(nnlib_mpi_get_rank(NULL) == -1);
  /* shares of 10 tile [0, 10) in rank order */
  int64_t first = -1, n = -1, mine[2], all[2 * 16];
  CHECK_OK(nnlib_mpi_get_share(mpi, 10, &first, &n));
  mine[0] = first;
  mine[1] = n;
  if (size_ <= 16) {
    MPI_Allgather(mine, 2, MPI_INT64_T, all, 2, MPI_INT64_T, MPI_COMM_WORLD);
    int64_t next = 0;
    for (int r = 0; r < size_; r++) {
      CHECK(all[2 * r] == next);
      CHECK(all[2 * r + 1] == 10 / size_ + (r < 10 % size_));
      next += all[2 * r + 1];
    }
    CHECK(next == 10);
  }
  CHECK(nnlib_mpi_get_share(mpi, -1, &first, &n) ==
        NNLIB_ERR_INVALID_ARGUMENT);
  CHECK(nnlib_mpi_agree(mpi, NNLIB_OK) == NNLIB_OK);
  nnlib_mpi_stats s = {sizeof s, -1, 0, 0, 0, 0, 0};
  CHECK_OK(nnlib_mpi_get_stats(mpi, &s));
  CHECK(s.steps == 0);
  s.struct_size = 1;
  CHECK(nnlib_mpi_get_stats(mpi, &s) == NNLIB_ERR_STRUCT_SIZE);
}

/* The last rank cannot read its file: every rank learns it at the next
 * agreement. */
static void bad_file_on_one_rank(nnlib_mpi *mpi, const char *dir) {
  char good[4096], missing[4096], corrupt[4096];
  snprintf(good, sizeof good, "%s/mpi_failure_%d.nnl", dir, size_);
  snprintf(missing, sizeof missing, "%s/mpi_failure_missing.nnl", dir);
  snprintf(corrupt, sizeof corrupt, "%s/mpi_failure_corrupt_%d.nnl", dir,
           size_);
  nnlib_model *m = make_model(NNLIB_OPT_SGD, 0.1f, 1, 4);
  if (rank_ == 0) {
    CHECK_OK(nnlib_model_save(m, good, 0));
    FILE *f = fopen(corrupt, "wb");
    CHECK(f != NULL && fwrite("NNLIB garbage", 1, 13, f) == 13);
    if (f != NULL)
      fclose(f);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  const char *paths[2] = {missing, corrupt};
  for (int i = 0; i < 2; i++) {
    nnlib_model *loaded = NULL;
    nnlib_status local =
        nnlib_model_load(&loaded, rank_ == size_ - 1 ? paths[i] : good);
    nnlib_status st = nnlib_mpi_agree(mpi, local);
    CHECK(st != NNLIB_OK);
    CHECK(rank_ == size_ - 1 ? st == local : local == NNLIB_OK);
    check_blames(size_ - 1);
    nnlib_model_free(loaded);
  }
  /* checkpoints: rank 0 cannot write, or cannot read */
  CHECK(nnlib_mpi_model_save(mpi, m, "/nonexistent-dir/model.nnl", 0) ==
        NNLIB_ERR_IO);
  check_blames(0);
  nnlib_model *loaded = NULL;
  CHECK(nnlib_mpi_model_load(mpi, &loaded, missing) == NNLIB_ERR_IO);
  CHECK(loaded == NULL);
  check_blames(0);
  nnlib_model_free(m);
}

/* A NaN in the last rank's share: every rank reports the numerical error
 * and no rank changes its weights. */
static void nan_on_one_rank(nnlib_mpi *mpi) {
  dataset d = make_data(40);
  nnlib_model *m = make_model(NNLIB_OPT_SGD, 0.1f, 5, 4);
  CHECK_OK(nnlib_mpi_broadcast_model(mpi, m, 0));
  int64_t count = 0;
  float *p = params_of(m, &count);
  float *before = malloc((size_t)count * sizeof *before);
  if (before == NULL)
    MPI_Abort(MPI_COMM_WORLD, 1);
  memcpy(before, p, (size_t)count * sizeof *before);
  if (rank_ == size_ - 1)
    d.x[rank_ * 4 * FEATURES + 3] = NAN;
  nnlib_tensor *x, *y;
  rows(&d, rank_ * 4, 4, &x, &y);
  nnlib_status st = nnlib_mpi_step(mpi, m, x, y, NULL);
  CHECK(st == NNLIB_ERR_NUMERICAL);
  check_blames(size_ - 1);
  CHECK(memcmp(before, p, (size_t)count * sizeof *before) == 0);
  /* the same through fit, with the NaN in every rank's copy of the data:
   * only the rank whose share holds that sample sees it */
  d.x[(size_ - 1) * 4 * FEATURES + 3] = NAN;
  int64_t xs[2] = {40, FEATURES}, ys[1] = {40};
  nnlib_tensor *ax, *ay;
  REQUIRE_OK(nnlib_tensor_wrap(&ax, d.x, xs, 2));
  REQUIRE_OK(nnlib_tensor_wrap(&ay, d.y, ys, 1));
  nnlib_mpi_fit_options o;
  nnlib_mpi_fit_options_init(&o);
  o.batch_size = 4;
  o.epochs = 2;
  CHECK(nnlib_mpi_fit(mpi, m, ax, ay, &o) == NNLIB_ERR_NUMERICAL);
  CHECK(replicas_identical(m));
  nnlib_tensor_free(ax);
  nnlib_tensor_free(ay);
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  free(before);
  nnlib_model_free(m);
  free_data(&d);
}

static int cancel_at(const nnlib_progress *p, void *user) {
  return p->batch == *(int64_t *)user;
}

/* Failures before or between fit's exchanges. */
static void fit_failures(nnlib_mpi *mpi) {
  dataset d = make_data(30);
  nnlib_model *m = make_model(NNLIB_OPT_SGD, 0.1f, 5, 10);
  int64_t xs[2] = {30, FEATURES}, ys[1] = {30};
  nnlib_tensor *x, *y;
  REQUIRE_OK(nnlib_tensor_wrap(&x, d.x, xs, 2));
  REQUIRE_OK(nnlib_tensor_wrap(&y, d.y, ys, 1));
  nnlib_mpi_fit_options o;
  nnlib_mpi_fit_options_init(&o);
  o.batch_size = 6;
  /* the last rank has no data (its file failed to load) */
  nnlib_status st =
      nnlib_mpi_fit(mpi, m, rank_ == size_ - 1 ? NULL : x, y, &o);
  CHECK(st == NNLIB_ERR_INVALID_ARGUMENT);
  check_blames(size_ - 1);
  /* rank 1 asks for another number of epochs */
  nnlib_mpi_fit_options odd = o;
  odd.epochs = rank_ == 1 ? 2 : 1;
  CHECK(nnlib_mpi_fit(mpi, m, x, y, &odd) == NNLIB_ERR_INVALID_ARGUMENT);
  /* a share larger than the compiled maximum batch (10) */
  nnlib_mpi_fit_options big = o;
  big.batch_size = 10 * size_ + 1;
  CHECK(nnlib_mpi_fit(mpi, m, x, y, &big) == NNLIB_ERR_TOO_LARGE);
  /* a newer caller's options with a field this library does not know */
  struct {
    nnlib_mpi_fit_options o;
    int64_t future;
  } newer = {o, rank_ == 0 ? 1 : 0};
  newer.o.struct_size = sizeof newer;
  CHECK(nnlib_mpi_fit(mpi, m, x, y, &newer.o) == NNLIB_ERR_STRUCT_SIZE);
  check_blames(0);
  /* a model without an optimizer on the last rank */
  nnlib_model *inference = NULL;
  int64_t in[1] = {FEATURES};
  REQUIRE_OK(nnlib_model_create(&inference));
  REQUIRE_OK(nnlib_model_add_spec(inference, SPEC));
  REQUIRE_OK(nnlib_model_compile(inference, in, 1, 10, NNLIB_LOSS_SOFTMAX_CE,
                                 NULL, 5));
  CHECK(nnlib_mpi_fit(mpi, rank_ == size_ - 1 ? inference : m, x, y, &o) ==
        NNLIB_ERR_WRONG_STATE);
  check_blames(size_ - 1);
  nnlib_model_free(inference);
  /* rank 0's progress callback stops it mid-epoch, and at the last batch */
  int64_t stops[2] = {2, 4};
  for (int i = 0; i < 2; i++) {
    nnlib_mpi_fit_options c = o;
    c.progress = cancel_at;
    c.user = &stops[i];
    CHECK(nnlib_mpi_fit(mpi, m, x, y, &c) == NNLIB_ERR_CANCELLED);
    check_blames(0);
  }
  CHECK(replicas_identical(m));
  /* no rank has a sample */
  CHECK(nnlib_mpi_backward(mpi, m, NULL, NULL, NULL) ==
        NNLIB_ERR_INVALID_ARGUMENT);
  /* one rank passes x without a target */
  nnlib_tensor *sx, *sy;
  rows(&d, 0, 2, &sx, &sy);
  CHECK(nnlib_mpi_backward(mpi, m, sx, rank_ == 0 ? NULL : sy, NULL) ==
        NNLIB_ERR_INVALID_ARGUMENT);
  check_blames(0);
  nnlib_tensor_free(sx);
  nnlib_tensor_free(sy);
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  nnlib_model_free(m);
  free_data(&d);
}

/* Replicas of different models cannot be reduced or broadcast. */
static void mismatched_models(nnlib_mpi *mpi) {
  nnlib_model *m = NULL;
  nnlib_optimizer *opt = NULL;
  int64_t in[1] = {FEATURES};
  REQUIRE_OK(nnlib_model_create(&m));
  REQUIRE_OK(nnlib_model_add_spec(
      m, rank_ == size_ - 1 ? "dense:5,relu,dense:4" : "dense:6,relu,dense:4"));
  REQUIRE_OK(nnlib_sgd_create(&opt, 0.1f, 0.0f, 0, 0.0f));
  REQUIRE_OK(nnlib_model_compile(m, in, 1, 4, NNLIB_LOSS_SOFTMAX_CE, opt, 1));
  CHECK(nnlib_mpi_broadcast_model(mpi, m, 0) == NNLIB_ERR_SHAPE_MISMATCH);
  dataset d = make_data(4);
  nnlib_tensor *x, *y;
  rows(&d, 0, 4, &x, &y);
  CHECK(nnlib_mpi_step(mpi, m, x, y, NULL) == NNLIB_ERR_SHAPE_MISMATCH);
  CHECK(nnlib_mpi_broadcast_model(mpi, m, size_) ==
        NNLIB_ERR_INVALID_ARGUMENT);
  /* an uncompiled model on rank 0 */
  nnlib_model *bare = NULL;
  REQUIRE_OK(nnlib_model_create(&bare));
  CHECK(nnlib_mpi_broadcast_model(mpi, rank_ == 0 ? bare : m, 0) ==
        NNLIB_ERR_WRONG_STATE);
  check_blames(0);
  nnlib_model_free(bare);
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  free_data(&d);
  nnlib_model_free(m);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  nnlib_set_num_threads(1);
  nnlib_mpi *mpi = NULL;
  CHECK(nnlib_mpi_create(&mpi, -5) == NNLIB_ERR_INVALID_ARGUMENT);
  REQUIRE_OK(nnlib_mpi_create(&mpi, NNLIB_MPI_WORLD));
  basics(mpi);
  bad_file_on_one_rank(mpi, argc > 1 ? argv[1] : ".");
  nan_on_one_rank(mpi);
  fit_failures(mpi);
  mismatched_models(mpi);
  nnlib_mpi_free(mpi);
  int rc = mpi_check_finish("mpi_failure");
  MPI_Finalize();
  return rc;
}
