/* mpi_equivalence.c - under mpirun -np K: K ranks, each taking a share of a
 * global batch, end with the weights one process gets on the whole batch
 * (within 1e-5 relative), and all ranks' weights are identical bit for bit.
 *   mpirun -np K mpi_equivalence DIR      (DIR: where checkpoints go)
 * Cases: even shares with SGD + momentum (one process steps on K*B samples),
 * uneven and empty shares with Adam, nnlib_mpi_fit against the same fit on
 * one rank (MPI_COMM_SELF), and a checkpoint saved by rank 0 and loaded
 * everywhere that resumes bit-identically. */
#include "mpi_common.h"

#define TOLERANCE 1e-5

static void report(nnlib_mpi *mpi, const char *what, double rel) {
  double worst = rel;
  MPI_Allreduce(&rel, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  if (nnlib_mpi_get_rank(mpi) == 0)
    printf("%s, %d ranks: relative error %.3g\n", what,
           nnlib_mpi_get_size(mpi), worst);
  CHECK(rel <= TOLERANCE);
}

/* Replicas start from different seeds: the broadcast must make them equal
 * to rank 0's, which the reference shares. */
static nnlib_model *replica(nnlib_mpi *mpi, nnlib_optimizer_kind kind,
                            float lr, uint64_t seed, int64_t max_batch) {
  nnlib_model *m =
      make_model(kind, lr, seed + (uint64_t)nnlib_mpi_get_rank(mpi), max_batch);
  CHECK_OK(nnlib_mpi_broadcast_model(mpi, m, 0));
  return m;
}

/* K ranks x B samples against one process on K*B, N steps. */
static void even_shares(nnlib_mpi *mpi, const dataset *d) {
  const int64_t B = 5, N = 8;
  int64_t K = nnlib_mpi_get_size(mpi), rank = nnlib_mpi_get_rank(mpi);
  nnlib_model *ref = make_model(NNLIB_OPT_SGD, 0.1f, 100, K * B);
  nnlib_model *m = replica(mpi, NNLIB_OPT_SGD, 0.1f, 100, B);
  CHECK(replicas_identical(m));
  CHECK(relative_error(m, ref) == 0.0);
  for (int64_t s = 0; s < N; s++) {
    nnlib_tensor *x, *y, *gx, *gy;
    float loss = 0.0f, ref_loss = 0.0f;
    rows(d, s * K * B + rank * B, B, &x, &y);
    rows(d, s * K * B, K * B, &gx, &gy);
    CHECK_OK(nnlib_mpi_step(mpi, m, x, y, &loss));
    CHECK_OK(nnlib_model_step(ref, gx, gy, &ref_loss));
    CHECK(fabsf(loss - ref_loss) <= 1e-5f * fabsf(ref_loss));
    nnlib_tensor_free(x);
    nnlib_tensor_free(y);
    nnlib_tensor_free(gx);
    nnlib_tensor_free(gy);
  }
  report(mpi, "even shares, SGD momentum", relative_error(m, ref));
  CHECK(replicas_identical(m));
  nnlib_model_free(m);
  nnlib_model_free(ref);
}

/* Global batches that do not divide by K, and some smaller than K (ranks
 * with no sample), with Adam. */
static void uneven_shares(nnlib_mpi *mpi, const dataset *d) {
  int64_t K = nnlib_mpi_get_size(mpi);
  const int64_t batches[] = {7, 5, K - 1 > 0 ? K - 1 : 1, 11, 4, 1, 10};
  const int64_t count = (int64_t)(sizeof batches / sizeof batches[0]);
  nnlib_model *ref = make_model(NNLIB_OPT_ADAM, 0.01f, 200, 11);
  nnlib_model *m = replica(mpi, NNLIB_OPT_ADAM, 0.01f, 200, 11);
  int64_t start = 0;
  for (int64_t s = 0; s < count; s++) {
    int64_t first = 0, n = 0;
    nnlib_tensor *x = NULL, *y = NULL, *gx, *gy;
    CHECK_OK(nnlib_mpi_get_share(mpi, batches[s], &first, &n));
    if (n > 0)
      rows(d, start + first, n, &x, &y);
    rows(d, start, batches[s], &gx, &gy);
    float loss = 0.0f, ref_loss = 0.0f;
    CHECK_OK(nnlib_mpi_step(mpi, m, x, y, &loss));
    CHECK_OK(nnlib_model_step(ref, gx, gy, &ref_loss));
    CHECK(fabsf(loss - ref_loss) <= 1e-5f * fabsf(ref_loss));
    nnlib_tensor_free(x);
    nnlib_tensor_free(y);
    nnlib_tensor_free(gx);
    nnlib_tensor_free(gy);
    start += batches[s];
  }
  report(mpi, "uneven and empty shares, Adam", relative_error(m, ref));
  CHECK(replicas_identical(m));
  nnlib_model_free(m);
  nnlib_model_free(ref);
}

static int count_calls(const nnlib_progress *p, void *user) {
  (void)p;
  ++*(int *)user;
  return 0;
}

static nnlib_mpi_fit_options fit_options(float *losses, int *calls) {
  nnlib_mpi_fit_options o;
  nnlib_mpi_fit_options_init(&o);
  o.epochs = 3;
  o.batch_size = 10;
  o.seed = 42;
  o.epoch_losses = losses;
  o.progress = count_calls;
  o.user = calls;
  return o;
}

/* nnlib_mpi_fit over all ranks against the same fit on one rank: the same
 * seed gives the same epoch orders, so the same global batches. 53 samples
 * in batches of 10: the last batch of 3 is uneven or leaves ranks empty. */
static nnlib_model *fit_against_one_rank(nnlib_mpi *mpi, const dataset *d) {
  nnlib_mpi *self = NULL;
  REQUIRE_OK(nnlib_mpi_create(&self, MPI_Comm_c2f(MPI_COMM_SELF)));
  nnlib_model *ref = make_model(NNLIB_OPT_SGD, 0.05f, 300, 10);
  nnlib_model *m = replica(mpi, NNLIB_OPT_SGD, 0.05f, 300, 10);
  int64_t xs[2] = {53, FEATURES}, ys[1] = {53};
  nnlib_tensor *x, *y;
  REQUIRE_OK(nnlib_tensor_wrap(&x, d->x, xs, 2));
  REQUIRE_OK(nnlib_tensor_wrap(&y, d->y, ys, 1));
  float losses[3] = {0}, ref_losses[3] = {0};
  int calls = 0, ref_calls = 0;
  nnlib_mpi_fit_options o = fit_options(losses, &calls);
  nnlib_mpi_fit_options ro = fit_options(ref_losses, &ref_calls);
  CHECK_OK(nnlib_mpi_fit(mpi, m, x, y, &o));
  CHECK_OK(nnlib_mpi_fit(self, ref, x, y, &ro));
  report(mpi, "nnlib_mpi_fit against one rank", relative_error(m, ref));
  for (int e = 0; e < 3; e++)
    CHECK(fabsf(losses[e] - ref_losses[e]) <= 1e-5f * fabsf(ref_losses[e]));
  CHECK(losses[2] < losses[0]);
  /* progress on rank 0 only: 3 epochs of 6 batches */
  CHECK(calls == (nnlib_mpi_get_rank(mpi) == 0 ? 18 : 0));
  CHECK(replicas_identical(m));
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  nnlib_model_free(ref);
  nnlib_mpi_free(self);
  return m;
}

/* Rank 0 saves (optimizer included), every rank loads rank 0's file; one
 * more step from the loaded and the original model gives the same bits. */
static void checkpoint(nnlib_mpi *mpi, nnlib_model *m, const dataset *d,
                       const char *dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/mpi_checkpoint_%d.nnl", dir,
           nnlib_mpi_get_size(mpi));
  CHECK_OK(nnlib_mpi_model_save(mpi, m, path, NNLIB_SAVE_OPTIMIZER));
  nnlib_model *loaded = NULL;
  CHECK_OK(nnlib_mpi_model_load(mpi, &loaded,
                                nnlib_mpi_get_rank(mpi) == 0 ? path : NULL));
  if (loaded == NULL)
    MPI_Abort(MPI_COMM_WORLD, 1);
  CHECK(relative_error(loaded, m) == 0.0);
  int64_t first = 0, n = 0;
  nnlib_tensor *x = NULL, *y = NULL;
  CHECK_OK(nnlib_mpi_get_share(mpi, 9, &first, &n));
  rows(d, 20 + first, n, &x, &y);
  CHECK_OK(nnlib_mpi_step(mpi, m, x, y, NULL));
  CHECK_OK(nnlib_mpi_step(mpi, loaded, x, y, NULL));
  CHECK(relative_error(loaded, m) == 0.0);
  CHECK(replicas_identical(loaded));
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  nnlib_model_free(loaded);
}

/* Collective: every layer buffer equals rank 0's bit for bit. */
static int buffers_identical(nnlib_model *m) {
  int same = 1, all = 0;
  for (size_t i = 0; i < nnlib_model_get_layer_count(m); i++) {
    nnlib_layer *l = nnlib_model_get_layer(m, i);
    for (size_t b = 0; b < nnlib_layer_get_buffer_count(l); b++) {
      nnlib_tensor *t = NULL;
      REQUIRE_OK(nnlib_layer_get_buffer(l, b, &t));
      int n = (int)nnlib_tensor_get_size(t);
      float *mine = nnlib_tensor_get_data(t), root[64];
      if (n > 64)
        MPI_Abort(MPI_COMM_WORLD, 1);
      memcpy(root, mine, (size_t)n * sizeof *root);
      MPI_Bcast(root, n, MPI_FLOAT, 0, MPI_COMM_WORLD);
      same &= memcmp(root, mine, (size_t)n * sizeof *root) == 0;
    }
  }
  MPI_Allreduce(&same, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return all;
}

/* Batchnorm: the broadcast carries the running statistics, and fit ends
 * with their mean on every rank (each rank normalised its own shares). */
static void batchnorm_buffers(nnlib_mpi *mpi, const dataset *d) {
  nnlib_model *m = NULL;
  nnlib_optimizer *opt = NULL;
  int64_t in[1] = {FEATURES};
  REQUIRE_OK(nnlib_model_create(&m));
  REQUIRE_OK(nnlib_model_add_spec(m, "dense:8,batchnorm,relu,dense:4"));
  REQUIRE_OK(nnlib_sgd_create(&opt, 0.05f, 0.9f, 0, 0.0f));
  REQUIRE_OK(nnlib_model_compile(m, in, 1, 8, NNLIB_LOSS_SOFTMAX_CE, opt,
                                 (uint64_t)(9 + nnlib_mpi_get_rank(mpi))));
  nnlib_tensor *mean = NULL;
  REQUIRE_OK(nnlib_layer_get_buffer(nnlib_model_get_layer(m, 1), 0, &mean));
  nnlib_tensor_fill(mean, (float)nnlib_mpi_get_rank(mpi));
  CHECK_OK(nnlib_mpi_broadcast_model(mpi, m, 0));
  CHECK(replicas_identical(m) && buffers_identical(m));
  CHECK(nnlib_tensor_get_data(mean)[0] == 0.0f);
  int64_t xs[2] = {64, FEATURES}, ys[1] = {64};
  nnlib_tensor *x, *y;
  REQUIRE_OK(nnlib_tensor_wrap(&x, d->x, xs, 2));
  REQUIRE_OK(nnlib_tensor_wrap(&y, d->y, ys, 1));
  nnlib_mpi_fit_options o;
  nnlib_mpi_fit_options_init(&o);
  o.epochs = 2;
  o.batch_size = 12;
  CHECK_OK(nnlib_mpi_fit(mpi, m, x, y, &o));
  CHECK(replicas_identical(m) && buffers_identical(m));
  CHECK(nnlib_tensor_get_data(mean)[0] != 0.0f);
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  nnlib_model_free(m);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  nnlib_set_num_threads(1);
  nnlib_mpi *mpi = NULL;
  REQUIRE_OK(nnlib_mpi_create(&mpi, NNLIB_MPI_WORLD));
  dataset d = make_data(400);
  even_shares(mpi, &d);
  uneven_shares(mpi, &d);
  nnlib_model *fitted = fit_against_one_rank(mpi, &d);
  checkpoint(mpi, fitted, &d, argc > 1 ? argv[1] : ".");
  batchnorm_buffers(mpi, &d);
  nnlib_model_free(fitted);
  free_data(&d);
  nnlib_mpi_free(mpi);
  int rc = mpi_check_finish("mpi_equivalence");
  MPI_Finalize();
  return rc;
}
