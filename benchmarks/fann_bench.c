/* fann_bench.c - fann-bench: the MLPs of nnlib-bench trained and run with
 * FANN 2.2 (Debian's libfann-dev), JSON lines in nnlib-bench's format.
 *
 * FANN has no minibatch GEMM path: every sample walks the connections one
 * by one. Training is timed two ways on a batch of B samples:
 *   batch        FANN_TRAIN_BATCH, fann_train_epoch over the B samples:
 *                one weight update per B samples, like a minibatch step
 *   incremental  FANN_TRAIN_INCREMENTAL, the same: B updates of one sample
 * FANN 2.2 has no ReLU and no softmax: mlp-large uses FANN_LINEAR_PIECE (a
 * ReLU clipped at 1) in the hidden layers and a linear output under FANN's
 * MSE; the cost is the same weight traffic.
 *
 *   fann-bench [--model mlp-small|mlp-large] [--batch B]
 *              [--bench train|infer] [--seconds S]                       */
#define _POSIX_C_SOURCE 200809L
#include "bench_util.h"

#include <floatfann.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fann_model {
  const char *name;
  unsigned layers[4];
  unsigned layer_count;
  enum fann_activationfunc_enum hidden, output;
  unsigned batches[3];
  unsigned batch_count;
} fann_model;

static const fann_model models[] = {
    {"mlp-small", {784, 16, 10}, 3, FANN_SIGMOID, FANN_SIGMOID, {32, 256}, 2},
    {"mlp-large", {784, 1024, 1024, 10}, 4, FANN_LINEAR_PIECE, FANN_LINEAR,
     {64, 256, 1024}, 3},
};

static struct fann *make_net(const fann_model *m) {
  struct fann *ann = fann_create_standard_array(m->layer_count, m->layers);
  if (ann == NULL) {
    fprintf(stderr, "fann-bench: fann_create_standard_array failed\n");
    exit(1);
  }
  fann_set_activation_function_hidden(ann, m->hidden);
  fann_set_activation_function_output(ann, m->output);
  fann_randomize_weights(ann, -0.05f, 0.05f);
  fann_set_learning_rate(ann, 0.01f);
  return ann;
}

/* B random samples in [0, 1) with one-hot targets. */
static struct fann_train_data *make_data(const fann_model *m, unsigned batch) {
  unsigned in = m->layers[0], out = m->layers[m->layer_count - 1];
  struct fann_train_data *d = fann_create_train(batch, in, out);
  uint32_t seed = 1;
  for (unsigned i = 0; i < batch; i++) {
    bench_fill(d->input[i], in, 0.0f, 1.0f, &seed);
    memset(d->output[i], 0, out * sizeof(fann_type));
    d->output[i][(i * 7 + 3) % out] = 1.0f;
  }
  return d;
}

typedef enum { TRAIN_BATCH, TRAIN_INCREMENTAL, INFER } fann_work;

static void run_once(struct fann *ann, struct fann_train_data *d,
                     fann_work w) {
  if (w == INFER) {
    for (unsigned i = 0; i < d->num_data; i++)
      fann_run(ann, d->input[i]);
  } else {
    fann_train_epoch(ann, d);
  }
}

static void run(const fann_model *m, unsigned batch, fann_work w,
                double seconds) {
  struct fann *ann = make_net(m);
  struct fann_train_data *d = make_data(m, batch);
  fann_set_training_algorithm(ann, w == TRAIN_INCREMENTAL
                                       ? FANN_TRAIN_INCREMENTAL
                                       : FANN_TRAIN_BATCH);
  double t0 = bench_now();
  run_once(ann, d, w);
  int reps = bench_reps_for(seconds, bench_now() - t0, 3, 100000);
  double *times = malloc((size_t)reps * sizeof *times);
  for (int r = 0; r < reps; r++) {
    double s = bench_now();
    run_once(ann, d, w);
    times[r] = bench_now() - s;
  }
  bench_stats st = bench_summarise(times, reps);
  /* multiply-adds per sample: forward, and twice that again backward */
  double macs = 0.0;
  for (unsigned l = 1; l < m->layer_count; l++)
    macs += (double)m->layers[l - 1] * m->layers[l];
  double flops = 2.0 * macs * batch * (w == INFER ? 1.0 : 3.0);
  bench_json_begin();
  bench_json_str("bench", w == INFER ? "infer" : "train");
  bench_json_str("model", m->name);
  bench_json_int("batch", batch);
  bench_json_int("threads", 1);
  bench_json_stats(&st);
  bench_json_num("samples_per_s", batch / st.median_s);
  bench_json_num("gflops", flops / st.median_s * 1e-9);
  bench_json_str("library", "fann");
  if (w != INFER)
    bench_json_str("algorithm", w == TRAIN_BATCH ? "batch" : "incremental");
  bench_json_end();
  free(times);
  fann_destroy_train(d);
  fann_destroy(ann);
}

int main(int argc, char **argv) {
  const char *model = NULL, *kind = NULL;
  unsigned batch = 0;
  double seconds = 2.0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--model") == 0)
      model = argv[i + 1];
    else if (strcmp(argv[i], "--batch") == 0)
      batch = (unsigned)atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--bench") == 0)
      kind = argv[i + 1];
    else if (strcmp(argv[i], "--seconds") == 0)
      seconds = atof(argv[i + 1]);
    else {
      fprintf(stderr, "usage: fann-bench [--model NAME] [--batch B] "
                      "[--bench train|infer] [--seconds S]\n");
      return 2;
    }
  }
  for (size_t mi = 0; mi < sizeof models / sizeof models[0]; mi++) {
    const fann_model *m = &models[mi];
    if (model != NULL && strcmp(model, m->name) != 0)
      continue;
    for (unsigned bi = 0; bi < m->batch_count; bi++) {
      unsigned b = m->batches[bi];
      if (batch != 0 && batch != b)
        continue;
      if (kind == NULL || strcmp(kind, "train") == 0) {
        run(m, b, TRAIN_BATCH, seconds);
        run(m, b, TRAIN_INCREMENTAL, seconds);
      }
      if (kind == NULL || strcmp(kind, "infer") == 0)
        run(m, b, INFER, seconds);
    }
  }
  return 0;
}
