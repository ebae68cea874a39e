/* layer_harness.h - what the internal tests of one layer share: a model
 * of that one layer, a training-mode nnlib__run of it, its parameters,
 * and the relative error against a double reference. Include after
 * nnlib_internal.h and test_support.h. */
#ifndef NNLIB_LAYER_HARNESS_H
#define NNLIB_LAYER_HARNESS_H

#include <math.h>
#include <stdlib.h>

/* A compiled model of the one layer l on samples `shape` (MSE, no
 * optimizer, seed 1). */
static inline nnlib_model *lh_one_layer(nnlib_layer *l, const int64_t *shape,
                                        size_t rank, int64_t max_batch) {
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add(m, l));
  ASSERT_OK(nnlib_model_compile(m, shape, rank, max_batch, NNLIB_LOSS_MSE,
                                NULL, 1));
  return m;
}

/* A training-mode call of layer 0 (node 1), steps positions (0: all). */
static inline nnlib__run lh_run(nnlib_model *m, int64_t steps) {
  nnlib__run run = {.training = true,
                    .workspace = m->bufs.workspace[1],
                    .rng = &m->rng,
                    .steps = steps};
  return run;
}

/* Parameter `index` of layer `layer`, or its gradient. */
static inline float *lh_param(nnlib_model *m, size_t layer, size_t index,
                              bool grad) {
  nnlib_tensor *value, *g;
  ASSERT_OK(nnlib_layer_get_param(m->layers[layer], index, &value, &g));
  return nnlib_tensor_get_data(grad ? g : value);
}

/* max |a - b| / max |b| (NaN counts as the largest error) */
static inline double lh_rel_error(const float *a, const double *b,
                                  int64_t count) {
  double diff = 0.0, scale = 0.0;
  for (int64_t i = 0; i < count; i++) {
    double d = fabs((double)a[i] - b[i]);
    if (d > diff || isnan(d))
      diff = d;
    if (fabs(b[i]) > scale)
      scale = fabs(b[i]);
  }
  return diff / (scale > 0.0 ? scale : 1.0);
}

static inline void lh_expect_rel(const char *what, const float *a,
                                 const double *b, int64_t count, double bar) {
  double err = lh_rel_error(a, b, count);
  print_message("  %-44s %.2e\n", what, err);
  if (!(err <= bar))
    fail_msg("%s: relative error %.3g exceeds %.0e", what, err, bar);
}

/* A malloc'ed double copy of count floats (free it). */
static inline double *lh_to_double(const float *v, int64_t count) {
  double *d = malloc((size_t)(count > 0 ? count : 1) * sizeof *d);
  assert_non_null(d);
  for (int64_t i = 0; i < count; i++)
    d[i] = v[i];
  return d;
}

#endif /* NNLIB_LAYER_HARNESS_H */
