/* cmd_train.c - nnlib train: a model description trained on an MNIST-format
 * directory, one line per epoch, a key=value summary line at the end; with
 * --text, a byte-level language model instead (train_text.c). */
#define _POSIX_C_SOURCE 200809L
#include "train.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_SPEC "dense:256,relu,dense:128,relu,dense:10"

static void train_usage(void) {
  printf(
      "usage: nnlib train [--data DIR] [--model SPEC] [--epochs N] [--batch "
      "B]\n"
      "                   [--optimizer NAME] [--lr X] [--momentum X]\n"
      "                   [--weight-decay X] [--schedule cosine|constant]\n"
      "                   [--loss ce|mse] [--seed S] [--limit N] [--threads "
      "T]\n"
      "                   [--validation N [--patience P]] [--out FILE.nnl]\n\n"
      "  --data       MNIST-format directory (default: $NNLIB_DATA_DIR or\n"
      "               %s)\n"
      "  --model      model description, default " DEFAULT_SPEC "\n"
      "               (starting with rnn, lstm or gru, e.g.\n"
      "               lstm:128,last,dense:10, it reads each image as a\n"
      "               sequence of its rows)\n"
      "  --epochs     default 10\n"
      "  --batch      default 64\n"
      "  --optimizer  sgd, adam (default), adamw, rmsprop\n"
      "  --lr         learning rate, > 0 (default: the optimizer's)\n"
      "  --momentum   sgd and rmsprop only, in [0, 1) (default 0)\n"
      "  --weight-decay  default: the optimizer's (0; adamw 0.01)\n"
      "  --schedule   the learning rate's, over the whole run: cosine\n"
      "               (default, decays to 0) or constant\n"
      "  --loss       ce (softmax cross-entropy on class indices, default)\n"
      "               or mse (on one-hot rows)\n"
      "  --seed       default 1: the same seed trains the same model\n"
      "  --limit      train on the first N training samples only\n"
      "  --threads    default 0: OpenBLAS's own choice\n"
      "  --validation hold out the last N training samples; each epoch's\n"
      "               line adds their loss (valid_loss=)\n"
      "  --patience   stop after P epochs without a lower valid_loss and\n"
      "               keep the model of the epoch with the lowest\n"
      "  --out        save the trained model (.nnl); a path that cannot be\n"
      "               written is refused before training\n",
      nnlib_dataset_default_dir());
#ifdef NNLIB_HAVE_MPI
  printf("\nUnder mpirun -np K: data-parallel over K ranks, each batch split "
         "across them;\nrank 0 prints and saves. --threads defaults to the "
         "cores per rank.\n");
#endif
  printf("\nWith --text, a byte-level language model on text files instead:\n"
         "\n");
  cli_train_text_usage();
}

static const char *const schedule_names[] = {"constant", "cosine", NULL};
static const char *const loss_names[] = {"ce", "mse", NULL};

static bool name_known(const char *name, const char *const *names,
                       const char *flag) {
  if (train_name_index(name, names) >= 0)
    return true;
  fprintf(stderr, "nnlib train: %s %s: expected one of", flag, name);
  for (int i = 0; names[i] != NULL; i++)
    fprintf(stderr, " %s", names[i]);
  fprintf(stderr, "\n");
  return false;
}

static bool patience_has_validation(const train_config *c) {
  if (c->patience == 0 || c->validation > 0)
    return true;
  fprintf(stderr, "nnlib train: --patience %lld needs --validation N (the "
                  "held-out samples whose loss it watches)\n",
          (long long)c->patience);
  return false;
}

/* Adam and AdamW have no momentum (their betas play its part): a
 * --momentum they would ignore is refused. */
static bool momentum_fits(const train_config *c) {
  if (c->momentum < 0.0f || strcmp(c->optimizer, "sgd") == 0 ||
      strcmp(c->optimizer, "rmsprop") == 0)
    return true;
  fprintf(stderr,
          "nnlib train: --momentum is for --optimizer sgd or "
          "rmsprop; %s has none\n",
          c->optimizer);
  return false;
}

static bool parse_config(cli_args *a, train_config *c) {
  c->data = cli_get(a, "data", NULL);
  c->spec = cli_get(a, "model", DEFAULT_SPEC);
  c->out = cli_get(a, "out", NULL);
  c->optimizer = cli_get(a, "optimizer", "adam");
  c->schedule = cli_get(a, "schedule", "cosine");
  c->loss = cli_get(a, "loss", "ce");
  return cli_ok(a) &&
         name_known(c->optimizer, train_optimizer_names, "--optimizer") &&
         name_known(c->schedule, schedule_names, "--schedule") &&
         name_known(c->loss, loss_names, "--loss") &&
         cli_get_i64(a, "epochs", 10, 1, 100000, &c->epochs) &&
         cli_get_i64(a, "batch", 64, 1, 1 << 20, &c->batch) &&
         cli_get_i64(a, "seed", 1, 0, INT64_MAX, &c->seed) &&
         cli_get_i64(a, "limit", 0, 0, INT64_MAX, &c->limit) &&
         cli_get_i64(a, "threads", 0, 0, 1024, &c->threads) &&
         cli_get_i64(a, "validation", 0, 0, INT64_MAX, &c->validation) &&
         cli_get_i64(a, "patience", 0, 0, 100000, &c->patience) &&
         cli_get_float(a, "lr", 0.0f, true, &c->lr) &&
         cli_get_float(a, "momentum", -1.0f, false, &c->momentum) &&
         cli_get_float(a, "weight-decay", -1.0f, false, &c->weight_decay) &&
         cli_all_used(a, "train") && patience_has_validation(c) &&
         momentum_fits(c);
}

/* Swaps in the best epoch's model when a later one ended the run, and
 * reports it with its test accuracy. */
static int restore_best(run_data *r, const best_model *best,
                        int64_t epochs_run, float *acc) {
  bool restored = false;
  float test_loss;
  nnlib_status st = train_restore_best(r, best, epochs_run, &restored);
  if (st != NNLIB_OK)
    return cli_fail("train", "restoring the best epoch", st);
  if (!restored)
    return 0;
  if ((st = nnlib_model_evaluate(r->model, r->tx, r->ty, &test_loss, acc)) !=
      NNLIB_OK)
    return cli_fail("train", "evaluating", st);
  train_print_restored(best, test_loss, *acc);
  return 0;
}

/* The epochs, each followed by its line; *epochs_run counts them. */
static int train_epochs(const train_config *c, run_data *r, double start,
                        float *acc, int64_t *epochs_run, best_model *best) {
  cli_progress bar = {isatty(2) != 0, 0.0, 0, c->epochs, 0.0};
  nnlib_fit_options fo;
  nnlib_fit_options_init(&fo);
  fo.epochs = 1;
  fo.batch_size = nnlib_model_get_max_batch(r->model);
  fo.progress = cli_progress_callback;
  fo.user = &bar;
  bool stop = false;
  for (int64_t e = 0; e < c->epochs && !stop; e++) {
    epoch_line line = {.epoch = e, .epochs = c->epochs};
    fo.epoch_losses = &line.train_loss;
    bar.epoch = e;
    bar.start = cli_now();
    nnlib_status st = nnlib_model_fit(r->model, r->x, r->y, &fo);
    cli_progress_clear(&bar);
    if (st == NNLIB_OK)
      st = train_evaluate_epoch(r->model, r, &line);
    if (st != NNLIB_OK)
      return cli_fail("train", "training", st);
    line.seconds = cli_now() - start;
    train_print_epoch(&line);
    *acc = line.accuracy;
    *epochs_run = e + 1;
    if (c->patience > 0 &&
        (st = train_watch_epoch(c, r->model, &line, best, &stop)) !=
            NNLIB_OK)
      return cli_fail("train", "keeping the best epoch", st);
  }
  if (stop)
    train_print_early_stop(c, best);
  return c->patience > 0 ? restore_best(r, best, *epochs_run, acc) : 0;
}

int cmd_train(int argc, char **argv) {
  if (cli_wants_text(argc, argv)) {
#ifdef NNLIB_HAVE_MPI
    if (train_under_mpirun()) {
      fprintf(stderr, "nnlib train: --text does not train data-parallel; run "
                      "it without mpirun\n");
      return 2;
    }
#endif
    return cmd_train_text(argc, argv);
  }
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
  if (c.out != NULL && !cli_can_save("train", c.out))
    return 1;
#ifdef NNLIB_HAVE_MPI
  if (train_under_mpirun())
    return cmd_train_mpi(&c);
#endif
  if (c.threads > 0)
    nnlib_set_num_threads((int)c.threads);
  double start = cli_now();
  run_data r = {0};
  best_model best = {INFINITY, -1, NULL, 0};
  float acc = 0.0f;
  int64_t epochs_run = 0;
  int rc = train_build(&c, &r) != NNLIB_OK;
  if (rc == 0) {
    train_print_model(&c, &r);
    rc = train_epochs(&c, &r, start, &acc, &epochs_run, &best);
  }
  nnlib_free(best.file);
  nnlib_status st;
  if (rc == 0 && c.out != NULL &&
      (st = nnlib_model_save(r.model, c.out, 0)) != NNLIB_OK)
    rc = cli_fail("train", c.out, st);
  if (rc == 0)
    train_print_summary(&c, acc, epochs_run, cli_now() - start);
  train_free(&r);
  return rc;
}
