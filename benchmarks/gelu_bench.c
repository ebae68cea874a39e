/* gelu_bench.c - ns per element of the activation layer's GELU (exact and
 * tanh) forward and backward (the derivative from x, times dy), with tanh's
 * forward as a yardstick. Not part of the CMake build (the benchmarks'
 * CMakeLists is not this file's); build it against a Release static
 * library, e.g.
 *
 *   cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release -DNNLIB_BUILD_STATIC=ON
 *   make -C build-rel nnlib_static
 *   gcc -O2 -std=c11 -Iinclude -Isrc benchmarks/gelu_bench.c \
 *       build-rel/libnnlib.a $(pkg-config --libs openblas) -lz -lm \
 *       -o build-rel/gelu-bench
 *   OPENBLAS_NUM_THREADS=1 build-rel/gelu-bench [elements] [repeats]
 *
 * Each line gives the median and the fastest of `repeats` passes over
 * `elements` values uniform in [-6, 6] (the range GELU sees in a trained
 * network), one core. */
#define _POSIX_C_SOURCE 200809L
#include "nnlib_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

typedef struct bench {
  nnlib_layer *layer;
  nnlib_model *model;
  float *x, *y, *dy, *dx;
  int64_t count;
} bench;

/* the median and (through *least) the fastest pass: on a shared machine
 * the fastest is the one least disturbed */
static double median_ns(bench *b, int backward, int repeats, double *least) {
  double *t = malloc((size_t)repeats * sizeof *t);
  nnlib__run run = {.training = true,
                    .workspace = b->model->bufs.workspace[1],
                    .rng = &b->model->rng};
  for (int r = 0; r < repeats; r++) {
    double start = now();
    if (backward)
      b->layer->ops->backward(b->layer, &run, b->x, b->y, b->dy, b->dx, 1);
    else
      b->layer->ops->forward(b->layer, &run, b->x, b->y, 1);
    t[r] = (now() - start) * 1e9 / (double)b->count;
  }
  qsort(t, (size_t)repeats, sizeof *t, by_value);
  double m = t[repeats / 2];
  *least = t[0];
  free(t);
  return m;
}

int main(int argc, char **argv) {
  int64_t count = argc > 1 ? atoll(argv[1]) : 1 << 20;
  int repeats = argc > 2 ? atoi(argv[2]) : 21;
  bench b = {.count = count};
  b.x = malloc((size_t)count * sizeof *b.x);
  b.y = malloc((size_t)count * sizeof *b.y);
  b.dy = malloc((size_t)count * sizeof *b.dy);
  b.dx = malloc((size_t)count * sizeof *b.dx);
  uint64_t s = 12345;
  for (int64_t i = 0; i < count; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    b.x[i] = -6.0f + 12.0f * (float)(s >> 40) / (float)(1 << 24);
    b.dy[i] = 1.0f;
  }
  const nnlib_activation kinds[] = {NNLIB_ACT_TANH, NNLIB_ACT_GELU,
                                    NNLIB_ACT_GELU_TANH};
  for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
    if (nnlib_activation_create(&b.layer, kinds[k], 0.0f) != NNLIB_OK ||
        nnlib_model_create(&b.model) != NNLIB_OK ||
        nnlib_model_add(b.model, b.layer) != NNLIB_OK ||
        nnlib_model_compile(b.model, &count, 1, 1, NNLIB_LOSS_MSE, NULL, 1) !=
            NNLIB_OK) {
      fprintf(stderr, "setup failed\n");
      return 1;
    }
    for (int backward = 0; backward <= (kinds[k] != NNLIB_ACT_TANH);
         backward++) {
      double least, median = median_ns(&b, backward, repeats, &least);
      printf("%-10s %-8s median %6.2f  fastest %6.2f ns/element\n",
             nnlib_layer_get_name(b.layer),
             backward ? "backward" : "forward", median, least);
    }
    nnlib_model_free(b.model);
  }
  free(b.x);
  free(b.y);
  free(b.dy);
  free(b.dx);
  return 0;
}
