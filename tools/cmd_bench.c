/* cmd_bench.c - nnlib bench: training-step and inference time of a model
 * description on random data, for people who want to know what their machine
 * does. The full suite with raw GEMM baselines is benchmarks/nnlib-bench. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>

static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Median seconds of `reps` timed calls of a training step or a prediction. */
static nnlib_status time_calls(nnlib_model *m, nnlib_tensor *x, nnlib_tensor *t,
                               nnlib_tensor *y, bool train, int reps,
                               double *median) {
  double *times = malloc(sizeof(double) * (size_t)reps);
  if (times == NULL)
    return NNLIB_ERR_OUT_OF_MEMORY;
  nnlib_status st = NNLIB_OK;
  for (int r = -2; r < reps && st == NNLIB_OK; r++) { /* 2 warm-up calls */
    double t0 = cli_now();
    st = train ? nnlib_model_step(m, x, t, NULL) : nnlib_model_predict(m, x, y);
    if (r >= 0)
      times[r] = cli_now() - t0;
  }
  if (st == NNLIB_OK) { /* a failed call left the times unset */
    qsort(times, (size_t)reps, sizeof(double), compare_doubles);
    *median = times[reps / 2];
  }
  free(times);
  return st;
}

static int run(const char *spec, int64_t input, int64_t batch, int64_t reps) {
  nnlib_model *m = NULL;
  nnlib_optimizer *opt = NULL;
  nnlib_tensor *x = NULL, *t = NULL, *y = NULL;
  int64_t xs[2] = {batch, input}, params = 0, out = 0;
  size_t rank;
  nnlib_status st;
  int rc = 1;
  if ((st = nnlib_model_create(&m)) || (st = nnlib_model_add_spec(m, spec)) ||
      (st = nnlib_sgd_create(&opt, 1e-3f, 0.0f, 0, 0.0f)) ||
      (st = nnlib_model_compile(m, &input, 1, batch, NNLIB_LOSS_SOFTMAX_CE, opt,
                                1)) ||
      (st = nnlib_model_get_param_count(m, &params)) ||
      (st = nnlib_model_get_output_shape(m, &out, 1, &rank)) ||
      (st = nnlib_tensor_create(&x, xs, 2)) ||
      (st = nnlib_tensor_create(&t, xs, 1)))
    goto done;
  int64_t ys[2] = {batch, out};
  if ((st = nnlib_tensor_create(&y, ys, 2)))
    goto done;
  float *xd = nnlib_tensor_get_data(x);
  for (int64_t i = 0; i < batch * input; i++)
    xd[i] = (float)((i * 7919) % 1000) / 1000.0f;
  double step_s, infer_s;
  if ((st = time_calls(m, x, t, y, true, (int)reps, &step_s)) ||
      (st = time_calls(m, x, t, y, false, (int)reps, &infer_s)))
    goto done;
  /* each weight: 2 flops per sample forward, 2 for its gradient and 2 for
   * the input gradient, which the first layer skips */
  nnlib_tensor *w0;
  int64_t first = 0;
  if (nnlib_layer_get_param_tensor_count(nnlib_model_get_layer(m, 0)) > 0 &&
      nnlib_layer_get_param(nnlib_model_get_layer(m, 0), 0, &w0, NULL) ==
          NNLIB_OK)
    first = nnlib_tensor_get_size(w0);
  double flops = (6.0 * (double)params - 2.0 * (double)first) * (double)batch;
  const char *kernels = cli_blas_kernels();
  printf("{\"bench\":\"train\",\"model\":\"%s\",\"batch\":%lld,\"threads\":%d,"
         "\"kernels\":\"%s\",\"median_s\":%.6g,\"samples_per_s\":%.1f,"
         "\"gflops\":%.2f}\n",
         spec, (long long)batch, nnlib_get_num_threads(), kernels, step_s,
         (double)batch / step_s, flops / step_s * 1e-9);
  printf("{\"bench\":\"infer\",\"model\":\"%s\",\"batch\":%lld,\"threads\":%d,"
         "\"kernels\":\"%s\",\"median_s\":%.6g,\"samples_per_s\":%.1f,"
         "\"gflops\":%.2f}\n",
         spec, (long long)batch, nnlib_get_num_threads(), kernels, infer_s,
         (double)batch / infer_s, flops / 3.0 / infer_s * 1e-9);
  rc = 0;
done:
  if (st != NNLIB_OK)
    rc = cli_fail("bench", spec, st);
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
  nnlib_tensor_free(y);
  nnlib_model_free(m);
  return rc;
}

int cmd_bench(int argc, char **argv) {
  cli_args a;
  if (!cli_args_init(&a, argc, argv))
    return 1;
  if (cli_has_flag(&a, "help")) {
    printf("usage: nnlib bench [--model SPEC] [--input N] [--batch B] "
           "[--threads T] [--reps R]\n\n"
           "Median time of a training step (SGD, softmax cross-entropy) and "
           "of\ninference for a dense model description on random data; one "
           "JSON line\neach, with the OpenBLAS kernels that ran. Defaults:\n"
           "dense:1024,relu,dense:1024,relu,dense:10, input 784, batch 256, "
           "50\nrepetitions. The whole suite with raw GEMM baselines is\n"
           "benchmarks/nnlib-bench.\n-h, --help: this help.\n");
    cli_args_free(&a);
    return 0;
  }
  const char *spec =
      cli_get(&a, "model", "dense:1024,relu,dense:1024,relu,dense:10");
  int64_t input, batch, threads, reps;
  bool ok = cli_get_i64(&a, "input", 784, 1, 1 << 24, &input) &&
            cli_get_i64(&a, "batch", 256, 1, 1 << 16, &batch) &&
            cli_get_i64(&a, "threads", 0, 0, 1024, &threads) &&
            cli_get_i64(&a, "reps", 50, 1, 1000000, &reps) &&
            cli_all_used(&a, "bench");
  cli_args_free(&a);
  if (!ok)
    return 2;
  if (threads > 0)
    nnlib_set_num_threads((int)threads);
  return run(spec, input, batch, reps);
}
