/* fashion_cnn.c - a convolutional network on Fashion-MNIST (28x28 grey
 * images of 10 kinds of clothing) through nnlib's C API.
 *
 *   fashion_cnn [--data DIR] [--epochs N] [--batch B] [--limit N] [--seed S]
 *               [--lr X] [--out FILE.nnl]
 *
 * Two conv+pool blocks with batch normalisation, then dense layers:
 *
 *   conv 32 3x3 pad 1 -> batchnorm -> relu -> maxpool 2    [32, 14, 14]
 *   conv 64 3x3 pad 1 -> batchnorm -> relu -> maxpool 2    [64, 7, 7]
 *   flatten -> dense 256 -> relu -> dropout 0.5 -> dense 10
 *
 * built from the model description in CNN_SPEC, which `nnlib train --model`
 * takes as it is. The convolutions have no bias: the batch normalisation
 * after them has its own shift. Softmax cross-entropy, Adam (lr 1e-3) with
 * the rate decaying along a cosine to 0 over the run, batches of 64, no
 * augmentation. --limit N trains on the first N training images; the test
 * set is whole. Evaluation runs in inference mode (running batchnorm
 * statistics, no dropout). nnlib uses every core unless
 * OPENBLAS_NUM_THREADS says otherwise.
 * Prints one line per epoch, then one key=value summary line. */
#include <nnlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CNN_SPEC                                                               \
  "conv:32x3x3:p1:nobias,batchnorm,relu,maxpool:2,"                            \
  "conv:64x3x3:p1:nobias,batchnorm,relu,maxpool:2,"                            \
  "flatten,dense:256,relu,dropout:0.5,dense:10"

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
  const char *out;      /* save the trained model here, or NULL */
  int64_t epochs, limit, batch;
  uint64_t seed;
  float lr;
} config;

static void usage(const char *program) {
  fprintf(stderr, "usage: %s [--data DIR] [--epochs N] [--batch B] "
                  "[--limit N] [--seed S] [--lr X] [--out FILE.nnl]\n",
          program);
  exit(2);
}

static config parse_args(int argc, char **argv) {
  config c = {NULL, NULL, 15, 0, 64, 1, 1e-3f};
  for (int i = 1; i < argc; i++) {
    const char *option = argv[i];
    if (i + 1 == argc)
      usage(argv[0]);
    const char *value = argv[++i];
    if (strcmp(option, "--data") == 0)
      c.data_dir = value;
    else if (strcmp(option, "--out") == 0)
      c.out = value;
    else if (strcmp(option, "--epochs") == 0)
      c.epochs = strtoll(value, NULL, 10);
    else if (strcmp(option, "--batch") == 0)
      c.batch = strtoll(value, NULL, 10);
    else if (strcmp(option, "--limit") == 0)
      c.limit = strtoll(value, NULL, 10);
    else if (strcmp(option, "--seed") == 0)
      c.seed = strtoull(value, NULL, 10);
    else if (strcmp(option, "--lr") == 0)
      c.lr = strtof(value, NULL);
    else
      usage(argv[0]);
  }
  if (c.epochs < 1 || c.limit < 0 || c.batch < 1 || !(c.lr > 0.0f))
    usage(argv[0]);
  return c;
}

static nnlib_model *build_model(const config *c, int64_t steps) {
  nnlib_model *m;
  nnlib_optimizer_options o;
  nnlib_optimizer *opt;
  CHECK(nnlib_model_create(&m));
  CHECK(nnlib_model_add_spec(m, CNN_SPEC));
  CHECK(nnlib_optimizer_options_init(&o, NNLIB_OPT_ADAM));
  o.learning_rate = c->lr;
  o.schedule = NNLIB_SCHEDULE_COSINE;
  o.total_steps = steps;
  CHECK(nnlib_optimizer_create(&opt, &o));
  /* one channel of 28x28: the images as NCHW samples */
  int64_t input[3] = {1, 28, 28};
  CHECK(nnlib_model_compile(m, input, 3, c->batch, NNLIB_LOSS_SOFTMAX_CE, opt,
                            c->seed));
  return m;
}

static double now_seconds(void) {
  struct timespec t;
  timespec_get(&t, TIME_UTC);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* [N, 28, 28] images as [N, 1, 28, 28]: the same floats. */
static void as_nchw(nnlib_tensor *images) {
  int64_t shape[4] = {nnlib_tensor_get_dim(images, 0), 1,
                      nnlib_tensor_get_dim(images, 1),
                      nnlib_tensor_get_dim(images, 2)};
  CHECK(nnlib_tensor_set_shape(images, shape, 4));
}

int main(int argc, char **argv) {
  config c = parse_args(argc, argv);
  nnlib_tensor *train_x, *train_y, *test_x, *test_y;
  CHECK(nnlib_dataset_load_split(&train_x, &train_y, c.data_dir,
                                 NNLIB_SPLIT_TRAIN, c.limit, 0));
  CHECK(nnlib_dataset_load_split(&test_x, &test_y, c.data_dir, NNLIB_SPLIT_TEST,
                                 0, 0));
  as_nchw(train_x);
  as_nchw(test_x);
  int64_t samples = nnlib_tensor_get_dim(train_x, 0), params = 0;
  int64_t steps = c.epochs * ((samples + c.batch - 1) / c.batch);
  nnlib_model *m = build_model(&c, steps);
  CHECK(nnlib_model_get_param_count(m, &params));
  printf("%s\n%lld parameters, %lld training samples, batch %lld, %d BLAS "
         "threads\n",
         CNN_SPEC, (long long)params, (long long)samples, (long long)c.batch,
         nnlib_get_num_threads());

  nnlib_fit_options fit;
  CHECK(nnlib_fit_options_init(&fit));
  fit.batch_size = c.batch;
  float train_loss = 0.0f, test_loss = 0.0f, accuracy = 0.0f;
  fit.epoch_losses = &train_loss; /* fit runs one epoch per call */
  double start = now_seconds(), evaluating = 0.0;
  for (int64_t e = 0; e < c.epochs; e++) {
    double epoch_start = now_seconds();
    CHECK(nnlib_model_fit(m, train_x, train_y, &fit));
    double trained = now_seconds();
    CHECK(nnlib_model_evaluate(m, test_x, test_y, &test_loss, &accuracy));
    evaluating += now_seconds() - trained;
    printf("epoch %2lld  train_loss %.4f  test_loss %.4f  test_accuracy "
           "%.4f  %.1fs\n",
           (long long)e + 1, (double)train_loss, (double)test_loss,
           (double)accuracy, trained - epoch_start);
    fflush(stdout);
  }
  double seconds = now_seconds() - start;
  if (c.out != NULL)
    CHECK(nnlib_model_save(m, c.out, 0));
  printf("model=cnn params=%lld test_accuracy=%.4f epochs=%lld "
         "seconds=%.1f train_seconds=%.1f\n",
         (long long)params, (double)accuracy, (long long)c.epochs, seconds,
         seconds - evaluating);
  nnlib_model_free(m);
  nnlib_tensor_free(train_x);
  nnlib_tensor_free(train_y);
  nnlib_tensor_free(test_x);
  nnlib_tensor_free(test_y);
  return 0;
}
