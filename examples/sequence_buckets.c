/* sequence_buckets.c - sequences of different lengths without padding: the
 * adding problem (Hochreiter & Schmidhuber 1997) at lengths 5 to 30, with
 * one LSTM model compiled for the longest, trained and evaluated on
 * batches that each hold sequences of one length ("buckets").
 *
 * A sequence has T steps of two features: a number in [0, 1) and a marker
 * that is 1 at two steps, one in each half; the target is the sum of the
 * two marked numbers. Answering the mean scores var(a + b) = 2/12 = 0.167.
 *
 *   sequence_buckets [--epochs N] [--seed S]
 *
 * Prints the test error per length and, last, "worst_mse=... baseline=0.167"
 * (exit status 1 when the worst length is not below 0.02). */
#include <nnlib.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MIN_T = 5, MAX_T = 30, LENGTHS = MAX_T - MIN_T + 1, FEATURES = 2 };
enum { TRAIN_PER_LENGTH = 192, TEST_PER_LENGTH = 64, BATCH = 32 };

/* One bucket: n sequences [n, t, 2] of length t and their targets [n, 1]. */
typedef struct bucket {
  int64_t t;
  nnlib_tensor *x, *y;
} bucket;

static uint64_t rng_state;

/* Uniform in [0, 1) from xorshift64* (the example's own data, not nnlib's). */
static float uniform(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (float)((rng_state * 2685821657736338717ull) >> 40) / 16777216.0f;
}

static int fail(const char *what, nnlib_status st) {
  fprintf(stderr, "sequence_buckets: %s: %s: %s\n", what,
          nnlib_status_string(st), nnlib_last_error_message());
  return 1;
}

/* n adding-problem sequences of length t. */
static nnlib_status make_bucket(bucket *b, int64_t t, int64_t n) {
  int64_t xs[3] = {n, t, FEATURES}, ys[2] = {n, 1};
  b->t = t;
  b->x = b->y = NULL;
  nnlib_status st = nnlib_tensor_create(&b->x, xs, 3);
  if (st == NNLIB_OK)
    st = nnlib_tensor_create(&b->y, ys, 2);
  if (st != NNLIB_OK)
    return st;
  float *x = nnlib_tensor_get_data(b->x), *y = nnlib_tensor_get_data(b->y);
  int64_t half = t / 2;
  for (int64_t s = 0; s < n; s++) {
    float *seq = x + s * t * FEATURES;
    for (int64_t i = 0; i < t; i++)
      seq[i * FEATURES] = uniform();
    int64_t first = (int64_t)(uniform() * (float)half);
    int64_t second = half + (int64_t)(uniform() * (float)(t - half));
    seq[first * FEATURES + 1] = seq[second * FEATURES + 1] = 1.0f;
    y[s] = seq[first * FEATURES] + seq[second * FEATURES];
  }
  return NNLIB_OK;
}

static void free_buckets(bucket *b, int count) {
  for (int i = 0; i < count; i++) {
    nnlib_tensor_free(b[i].x);
    nnlib_tensor_free(b[i].y);
  }
}

/* A batch of one bucket: a view of samples [from, from + n). */
static nnlib_status batch_of(const bucket *b, int64_t from, int64_t n,
                             nnlib_tensor **x, nnlib_tensor **y) {
  int64_t xs[3] = {n, b->t, FEATURES}, ys[2] = {n, 1};
  float *xd = nnlib_tensor_get_data(b->x) + from * b->t * FEATURES;
  nnlib_status st = nnlib_tensor_wrap(x, xd, xs, 3);
  if (st == NNLIB_OK)
    st = nnlib_tensor_wrap(y, nnlib_tensor_get_data(b->y) + from, ys, 2);
  return st;
}

/* One epoch: the batches of every bucket, buckets in a new random order. */
static nnlib_status train_epoch(nnlib_model *m, const bucket *train,
                                double *mean_loss) {
  int order[LENGTHS];
  for (int i = 0; i < LENGTHS; i++)
    order[i] = i;
  for (int i = LENGTHS - 1; i > 0; i--) { /* Fisher-Yates */
    int j = (int)(uniform() * (float)(i + 1));
    j = j < i ? j : i;
    int swap = order[i];
    order[i] = order[j];
    order[j] = swap;
  }
  double sum = 0.0;
  int batches = 0;
  for (int k = 0; k < LENGTHS; k++) {
    const bucket *b = &train[order[k]];
    for (int64_t from = 0; from < TRAIN_PER_LENGTH; from += BATCH) {
      nnlib_tensor *x = NULL, *y = NULL;
      float loss = 0.0f;
      nnlib_status st = batch_of(b, from, BATCH, &x, &y);
      if (st == NNLIB_OK)
        st = nnlib_model_step(m, x, y, &loss);
      nnlib_tensor_free(x);
      nnlib_tensor_free(y);
      if (st != NNLIB_OK)
        return st;
      sum += loss;
      batches++;
    }
  }
  *mean_loss = sum / batches;
  return NNLIB_OK;
}

static int parse(int argc, char **argv, int64_t *epochs, uint64_t *seed) {
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--epochs") == 0)
      *epochs = strtoll(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--seed") == 0)
      *seed = strtoull(argv[i + 1], NULL, 10);
    else
      return 0;
  }
  return argc % 2 == 1 && *epochs >= 1;
}

static int run(nnlib_model *m, const bucket *train, const bucket *test,
               int64_t epochs) {
  nnlib_status st;
  for (int64_t e = 0; e < epochs; e++) {
    double loss;
    if ((st = train_epoch(m, train, &loss)) != NNLIB_OK)
      return fail("training", st);
    printf("epoch %lld/%lld train_loss=%.4f\n", (long long)e + 1,
           (long long)epochs, loss);
  }
  float worst = 0.0f;
  for (int i = 0; i < LENGTHS; i++) {
    float mse;
    if ((st = nnlib_model_evaluate(m, test[i].x, test[i].y, &mse, NULL)) !=
        NNLIB_OK)
      return fail("evaluating", st);
    printf("length %2lld: test_mse=%.4f\n", (long long)test[i].t, mse);
    worst = mse > worst ? mse : worst;
  }
  printf("worst_mse=%.4f baseline=0.167\n", worst);
  return worst < 0.02f ? 0 : 1;
}

int main(int argc, char **argv) {
  int64_t epochs = 30;
  uint64_t seed = 1;
  if (!parse(argc, argv, &epochs, &seed)) {
    fprintf(stderr, "usage: %s [--epochs N] [--seed S]\n", argv[0]);
    return 2;
  }
  rng_state = 0x9E3779B97F4A7C15ull ^ seed;
  bucket train[LENGTHS], test[LENGTHS];
  memset(train, 0, sizeof train);
  memset(test, 0, sizeof test);
  nnlib_model *m = NULL;
  nnlib_optimizer *opt = NULL;
  nnlib_optimizer_options o;
  nnlib_optimizer_options_init(&o, NNLIB_OPT_ADAM);
  o.learning_rate = 0.01f;
  int64_t longest[2] = {MAX_T, FEATURES};
  nnlib_status st = NNLIB_OK;
  for (int i = 0; i < LENGTHS && st == NNLIB_OK; i++) {
    st = make_bucket(&train[i], MIN_T + i, TRAIN_PER_LENGTH);
    if (st == NNLIB_OK)
      st = make_bucket(&test[i], MIN_T + i, TEST_PER_LENGTH);
  }
  /* compiled once for the longest sequence; every shorter one runs as is */
  if (st == NNLIB_OK && (st = nnlib_model_create(&m)) == NNLIB_OK &&
      (st = nnlib_model_add_spec(m, "lstm:16,last,dense:1")) == NNLIB_OK &&
      (st = nnlib_optimizer_create(&opt, &o)) == NNLIB_OK)
    st = nnlib_model_compile(m, longest, 2, BATCH, NNLIB_LOSS_MSE, opt, seed);
  int rc = st != NNLIB_OK ? fail("setting up", st) : run(m, train, test,
                                                         epochs);
  nnlib_model_free(m);
  free_buckets(train, LENGTHS);
  free_buckets(test, LENGTHS);
  return rc;
}
