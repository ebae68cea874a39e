/* sequence_lstm.c - Fashion-MNIST read as sequences: each 28x28 image is 28
 * steps (its rows, top to bottom) of 28 pixels, read by an LSTM with 128
 * hidden units; a dense layer classifies its state after the last row.
 *
 *   sequence_lstm [--data DIR] [--epochs N] [--limit N] [--seed S]
 *                 [--hidden H] [--batch B]
 *
 * The data set loader gives images [N, 28, 28], which is exactly the
 * [N, T, F] batch layout of nnlib's recurrent layers (T = 28 steps of
 * F = 28 features), so no copy or reshape is needed.
 * Model "lstm:128,last,dense:10" (82186 parameters, the same as PyTorch's
 * nn.LSTM(28, 128) + nn.Linear(128, 10)), softmax cross-entropy, Adam
 * (lr 2e-3, decayed along a cosine to 0 over the run), batches of 64.
 * nnlib uses every core unless OPENBLAS_NUM_THREADS says otherwise.
 * Prints one line per epoch, then one key=value summary line. */
#include <nnlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECK(call)                                                            \
  do {                                                                         \
    nnlib_status st_ = (call);                                                 \
    if (st_ != NNLIB_OK) {                                                     \
      fprintf(stderr, "%s: %s\n", nnlib_status_string(st_),                    \
              nnlib_last_error_message());                                     \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

typedef struct config {
  const char *data_dir; /* NULL: nnlib_dataset_default_dir() */
  int64_t epochs, limit, batch, hidden;
  uint64_t seed;
} config;

static void usage(const char *program) {
  fprintf(stderr, "usage: %s [--data DIR] [--epochs N] [--limit N] "
                  "[--seed S] [--hidden H] [--batch B]\n", program);
  exit(2);
}

static config parse_args(int argc, char **argv) {
  config c = {NULL, 10, 0, 64, 128, 1};
  for (int i = 1; i < argc; i++) {
    const char *option = argv[i];
    if (i + 1 == argc)
      usage(argv[0]);
    const char *value = argv[++i];
    if (strcmp(option, "--data") == 0)
      c.data_dir = value;
    else if (strcmp(option, "--epochs") == 0)
      c.epochs = strtoll(value, NULL, 10);
    else if (strcmp(option, "--limit") == 0)
      c.limit = strtoll(value, NULL, 10);
    else if (strcmp(option, "--seed") == 0)
      c.seed = strtoull(value, NULL, 10);
    else if (strcmp(option, "--hidden") == 0)
      c.hidden = strtoll(value, NULL, 10);
    else if (strcmp(option, "--batch") == 0)
      c.batch = strtoll(value, NULL, 10);
    else
      usage(argv[0]);
  }
  if (c.epochs < 1 || c.limit < 0 || c.hidden < 1 || c.batch < 1)
    usage(argv[0]);
  return c;
}

/* steps: optimizer updates over the whole run, for the cosine schedule */
static nnlib_model *build_model(const config *c, int64_t rows, int64_t cols,
                                int64_t steps) {
  nnlib_model *m;
  char spec[64];
  /* "last": the lstm passes on only its state after the last row; the
   * dense layer's outputs are the logits of softmax cross-entropy */
  snprintf(spec, sizeof spec, "lstm:%lld,last,dense:10", (long long)c->hidden);
  CHECK(nnlib_model_create(&m));
  CHECK(nnlib_model_add_spec(m, spec));
  nnlib_optimizer_options o;
  CHECK(nnlib_optimizer_options_init(&o, NNLIB_OPT_ADAM));
  o.learning_rate = 2e-3f;
  o.schedule = NNLIB_SCHEDULE_COSINE;
  o.total_steps = steps;
  nnlib_optimizer *opt;
  CHECK(nnlib_optimizer_create(&opt, &o));
  int64_t input[2] = {rows, cols}; /* [T, F] per sample */
  CHECK(nnlib_model_compile(m, input, 2, c->batch, NNLIB_LOSS_SOFTMAX_CE, opt,
                            c->seed));
  return m;
}

static double now_seconds(void) {
  struct timespec t;
  timespec_get(&t, TIME_UTC);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
  config c = parse_args(argc, argv);
  nnlib_tensor *train_x, *train_y, *test_x, *test_y;
  /* images [N, 28, 28] in [0, 1], labels as class indices */
  CHECK(nnlib_dataset_load_split(&train_x, &train_y, c.data_dir,
                                 NNLIB_SPLIT_TRAIN, c.limit, 0));
  CHECK(nnlib_dataset_load_split(&test_x, &test_y, c.data_dir, NNLIB_SPLIT_TEST,
                                 0, 0));
  int64_t samples = nnlib_tensor_get_dim(train_x, 0), params = 0;
  int64_t rows = nnlib_tensor_get_dim(train_x, 1);
  int64_t cols = nnlib_tensor_get_dim(train_x, 2);
  int64_t steps = c.epochs * ((samples + c.batch - 1) / c.batch);
  nnlib_model *m = build_model(&c, rows, cols, steps);
  CHECK(nnlib_model_get_param_count(m, &params));
  printf("lstm:%lld,last,dense:10 over %lld rows of %lld pixels: %lld "
         "parameters, %lld training samples, batch %lld\n",
         (long long)c.hidden, (long long)rows, (long long)cols,
         (long long)params, (long long)samples, (long long)c.batch);

  nnlib_fit_options fit;
  CHECK(nnlib_fit_options_init(&fit));
  fit.batch_size = c.batch;
  float train_loss = 0.0f, test_loss = 0.0f, accuracy = 0.0f;
  fit.epoch_losses = &train_loss; /* fit runs one epoch per call */
  double start = now_seconds();
  for (int64_t e = 0; e < c.epochs; e++) {
    double epoch_start = now_seconds();
    CHECK(nnlib_model_fit(m, train_x, train_y, &fit));
    CHECK(nnlib_model_evaluate(m, test_x, test_y, &test_loss, &accuracy));
    printf("epoch %2lld  train_loss %.4f  test_loss %.4f  test_accuracy "
           "%.4f  %.1fs\n",
           (long long)e + 1, (double)train_loss, (double)test_loss,
           (double)accuracy, now_seconds() - epoch_start);
    fflush(stdout);
  }
  printf("test_accuracy=%.4f epochs=%lld seconds=%.1f\n", (double)accuracy,
         (long long)c.epochs, now_seconds() - start);
  nnlib_model_free(m);
  nnlib_tensor_free(train_x);
  nnlib_tensor_free(train_y);
  nnlib_tensor_free(test_x);
  nnlib_tensor_free(test_y);
  return 0;
}
