/* cmd_train.c - nnlib train: a model description trained on an MNIST-format
 * directory, one line per epoch, a key=value summary line at the end. */
#define _POSIX_C_SOURCE 200809L
#include "train.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_SPEC "dense:256,relu,dense:128,relu,dense:10"

static void train_usage(void) {
  printf(
      "usage: nnlib train [--data DIR] [--model SPEC] [--epochs N] [--batch B]\n"
      "                   [--optimizer NAME] [--lr X] [--momentum X]\n"
      "                   [--weight-decay X] [--schedule cosine|constant]\n"
      "                   [--loss ce|mse] [--seed S] [--limit N] [--threads T]\n"
      "                   [--out FILE.nnl]\n\n"
      "  --data       MNIST-format directory (default: $NNLIB_DATA_DIR or\n"
      "               %s)\n"
      "  --model      model description, default " DEFAULT_SPEC "\n"
      "               (starting with rnn, lstm or gru, e.g.\n"
      "               lstm:128,last,dense:10, it reads each image as a\n"
      "               sequence of its rows)\n"
      "  --epochs     default 10        --batch  default 64\n"
      "  --optimizer  sgd, adam (default), adamw, rmsprop\n"
      "  --lr         learning rate (default: the optimizer's)\n"
      "  --limit      train on the first N training samples only\n"
      "  --out        save the trained model (.nnl)\n",
      nnlib_dataset_default_dir());
#ifdef NNLIB_HAVE_MPI
  printf("\nUnder mpirun -np K: data-parallel over K ranks, each batch split "
         "across them;\nrank 0 prints and saves. --threads defaults to the "
         "cores per rank.\n");
#endif
}

static const char *const optimizer_names[] = {"sgd", "adam", "adamw",
                                              "rmsprop", NULL};
static const nnlib_optimizer_kind optimizer_kinds[] = {
    NNLIB_OPT_SGD, NNLIB_OPT_ADAM, NNLIB_OPT_ADAMW, NNLIB_OPT_RMSPROP};
static const char *const schedule_names[] = {"constant", "cosine", NULL};
static const char *const loss_names[] = {"ce", "mse", NULL};

/* Index of `name` in the NULL-terminated list, or -1. */
static int name_index(const char *name, const char *const *names) {
  for (int i = 0; names[i] != NULL; i++)
    if (strcmp(names[i], name) == 0)
      return i;
  return -1;
}

static bool name_known(const char *name, const char *const *names,
                       const char *flag) {
  if (name_index(name, names) >= 0)
    return true;
  fprintf(stderr, "nnlib train: %s %s: expected one of", flag, name);
  for (int i = 0; names[i] != NULL; i++)
    fprintf(stderr, " %s", names[i]);
  fprintf(stderr, "\n");
  return false;
}

static bool parse_config(cli_args *a, train_config *c) {
  c->data = cli_get(a, "data", NULL);
  c->spec = cli_get(a, "model", DEFAULT_SPEC);
  c->out = cli_get(a, "out", NULL);
  c->optimizer = cli_get(a, "optimizer", "adam");
  c->schedule = cli_get(a, "schedule", "cosine");
  c->loss = cli_get(a, "loss", "ce");
  return name_known(c->optimizer, optimizer_names, "--optimizer") &&
         name_known(c->schedule, schedule_names, "--schedule") &&
         name_known(c->loss, loss_names, "--loss") &&
         cli_get_i64(a, "epochs", 10, 1, 100000, &c->epochs) &&
         cli_get_i64(a, "batch", 64, 1, 1 << 20, &c->batch) &&
         cli_get_i64(a, "seed", 1, 0, INT64_MAX, &c->seed) &&
         cli_get_i64(a, "limit", 0, 0, INT64_MAX, &c->limit) &&
         cli_get_i64(a, "threads", 0, 0, 1024, &c->threads) &&
         cli_get_float(a, "lr", 0.0f, &c->lr) &&
         cli_get_float(a, "momentum", 0.0f, &c->momentum) &&
         cli_get_float(a, "weight-decay", -1.0f, &c->weight_decay) &&
         cli_all_used(a, "train");
}

/* The optimizer the flags describe; schedules count steps of the whole run. */
static nnlib_status make_optimizer(const train_config *c, int64_t steps,
                                   nnlib_optimizer **out) {
  nnlib_optimizer_options o;
  nnlib_optimizer_options_init(
      &o, optimizer_kinds[name_index(c->optimizer, optimizer_names)]);
  if (c->lr > 0.0f)
    o.learning_rate = c->lr;
  o.momentum = c->momentum;
  if (c->weight_decay >= 0.0f)
    o.weight_decay = c->weight_decay;
  if (strcmp(c->schedule, "cosine") == 0) {
    o.schedule = NNLIB_SCHEDULE_COSINE;
    o.total_steps = steps;
  }
  return nnlib_optimizer_create(out, &o);
}

void train_print_epoch(int64_t epoch, int64_t epochs, float train_loss,
                       float test_loss, float accuracy, double seconds) {
  printf("epoch %lld/%lld train_loss=%.4f test_loss=%.4f test_accuracy=%.4f "
         "seconds=%.1f\n",
         (long long)epoch + 1, (long long)epochs, train_loss, test_loss,
         accuracy, seconds);
  fflush(stdout);
}

static int report_epoch(nnlib_model *m, const nnlib_tensor *tx,
                        const nnlib_tensor *ty, int64_t epoch, int64_t epochs,
                        float train_loss, double seconds, float *acc) {
  float test_loss;
  nnlib_status st = nnlib_model_evaluate(m, tx, ty, &test_loss, acc);
  if (st != NNLIB_OK)
    return cli_fail("train", "evaluating", st);
  train_print_epoch(epoch, epochs, train_loss, test_loss, *acc, seconds);
  return 0;
}

/* Prints the failure and passes its status on. */
static nnlib_status build_fail(const char *what, nnlib_status st) {
  cli_fail("train", what, st);
  return st;
}

nnlib_status train_build(const train_config *c, run_data *r) {
  nnlib_status st;
  int one_hot = strcmp(c->loss, "mse") == 0;
  if ((st = nnlib_dataset_load(c->data, NNLIB_SPLIT_TRAIN, c->limit, one_hot,
                               &r->x, &r->y)) != NNLIB_OK)
    return build_fail("loading the training set", st);
  if ((st = nnlib_dataset_load(c->data, NNLIB_SPLIT_TEST, 0, one_hot, &r->tx,
                               &r->ty)) != NNLIB_OK)
    return build_fail("loading the test set", st);
  if ((st = nnlib_model_create(&r->model)) != NNLIB_OK ||
      (st = nnlib_model_add_spec(r->model, c->spec)) != NNLIB_OK)
    return build_fail("model description", st);
  int64_t samples = nnlib_tensor_get_dim(r->x, 0);
  int64_t batch = c->batch < samples ? c->batch : samples;
  nnlib_optimizer *opt;
  if ((st = make_optimizer(c, c->epochs * ((samples + batch - 1) / batch),
                           &opt)) != NNLIB_OK)
    return build_fail("optimizer", st);
  /* images as one-channel NCHW samples (dense layers flatten them), or for
   * a recurrent first layer as sequences of their rows, [T, F] = [H, W] */
  int64_t in[3] = {1, nnlib_tensor_get_dim(r->x, 1), nnlib_tensor_get_dim(r->x, 2)};
  nnlib_layer_kind first =
      nnlib_layer_get_kind(nnlib_model_get_layer(r->model, 0));
  bool rows = first == NNLIB_LAYER_RNN || first == NNLIB_LAYER_LSTM ||
              first == NNLIB_LAYER_GRU;
  if ((st = nnlib_model_compile(r->model, rows ? in + 1 : in, rows ? 2 : 3,
                                batch,
                                one_hot ? NNLIB_LOSS_MSE : NNLIB_LOSS_SOFTMAX_CE,
                                opt, (uint64_t)c->seed)) != NNLIB_OK)
    return build_fail("compiling the model", st);
  return NNLIB_OK;
}

void train_free(run_data *r) {
  nnlib_model_free(r->model);
  nnlib_tensor_free(r->x);
  nnlib_tensor_free(r->y);
  nnlib_tensor_free(r->tx);
  nnlib_tensor_free(r->ty);
}

void train_print_model(const train_config *c, const run_data *r) {
  int64_t params = 0;
  nnlib_model_get_param_count(r->model, &params);
  printf("model %s: %lld parameters; %lld training samples, %lld test "
         "samples; %s, batch %lld\n",
         c->spec, (long long)params, (long long)nnlib_tensor_get_dim(r->x, 0),
         (long long)nnlib_tensor_get_dim(r->tx, 0), c->optimizer,
         (long long)nnlib_model_get_max_batch(r->model));
}

void train_print_summary(const train_config *c, float accuracy,
                         double seconds) {
  printf("test_accuracy=%.4f epochs=%lld seconds=%.1f%s%s\n", accuracy,
         (long long)c->epochs, seconds, c->out ? " model=" : "",
         c->out ? c->out : "");
}

static int train_epochs(const train_config *c, run_data *r, double start,
                        float *acc) {
  cli_progress bar = {isatty(2) != 0, 0.0, 0, c->epochs, 0.0};
  nnlib_fit_options fo;
  nnlib_fit_options_init(&fo);
  fo.epochs = 1;
  fo.batch_size = nnlib_model_get_max_batch(r->model);
  fo.progress = cli_progress_callback;
  fo.user = &bar;
  for (int64_t e = 0; e < c->epochs; e++) {
    float epoch_loss;
    fo.epoch_losses = &epoch_loss;
    bar.epoch = e;
    bar.start = cli_now();
    nnlib_status st = nnlib_model_fit(r->model, r->x, r->y, &fo);
    cli_progress_clear(&bar);
    if (st != NNLIB_OK)
      return cli_fail("train", "training", st);
    if (report_epoch(r->model, r->tx, r->ty, e, c->epochs, epoch_loss,
                     cli_now() - start, acc))
      return 1;
  }
  return 0;
}

int cmd_train(int argc, char **argv) {
  cli_args a;
  train_config c;
  if (!cli_args_init(&a, argc, argv))
    return 1;
  if (cli_has_flag(&a, "help")) {
    train_usage();
    cli_args_free(&a);
    return 0;
  }
  bool ok = parse_config(&a, &c);
  cli_args_free(&a);
  if (!ok)
    return 2;
#ifdef NNLIB_HAVE_MPI
  if (train_under_mpirun())
    return cmd_train_mpi(&c);
#endif
  if (c.threads > 0)
    nnlib_set_num_threads((int)c.threads);
  double start = cli_now();
  run_data r = {NULL, NULL, NULL, NULL, NULL};
  float acc = 0.0f;
  int rc = train_build(&c, &r) != NNLIB_OK;
  if (rc == 0) {
    train_print_model(&c, &r);
    rc = train_epochs(&c, &r, start, &acc);
  }
  nnlib_status st;
  if (rc == 0 && c.out != NULL &&
      (st = nnlib_model_save(r.model, c.out, 0)) != NNLIB_OK)
    rc = cli_fail("train", c.out, st);
  if (rc == 0)
    train_print_summary(&c, acc, cli_now() - start);
  train_free(&r);
  return rc;
}
