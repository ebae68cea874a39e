/* numerics.c - nnlib_model_set_check_numerics: find the first layer whose
 * output, input gradient or parameter gradient holds a NaN or an Inf, so a
 * diverging run stops with a name instead of training on NaN. The passes in
 * train.c call in here only when the option is on. */
#include "numerics.h"

#include <math.h>
#include <stdio.h>

nnlib_status nnlib_model_set_check_numerics(nnlib_model *m, int on) {
  NNLIB_CHECK_ARG(m != NULL, "nnlib_model_set_check_numerics: model is NULL");
  NNLIB_CHECK_ARG(on == 0 || on == 1,
                  "nnlib_model_set_check_numerics: on is %d, must be 0 or 1",
                  on);
  m->check_numerics = on == 1;
  return NNLIB_OK;
}

/* Index of the first non-finite value in v[0..count), or -1. The common
 * case, all finite, is one branch-free pass: x * 0 is 0 for every finite x
 * and NaN for NaN and +-Inf. */
static int64_t first_non_finite(const float *v, int64_t count) {
  float probe = 0.0f;
  for (int64_t i = 0; i < count; i++)
    probe += v[i] * 0.0f;
  if (probe == 0.0f)
    return -1;
  for (int64_t i = 0; i < count; i++)
    if (!isfinite(v[i]))
      return i;
  return -1; /* not reached */
}

/* "layer 2 (dense)" or, for a dense layer that runs the activation after it
 * in its own pass, "layer 2 (dense, with layer 3 relu fused in)". */
static void layer_label(const nnlib_model *m, size_t i, char *buf,
                        size_t size) {
  const nnlib_layer *l = m->layers[i];
  const nnlib_layer *fused = l->fused_activation;
  if (fused != NULL && i + 1 < m->layer_count)
    snprintf(buf, size, "layer %zu (%s, with layer %zu %s fused in)", i,
             l->ops->name(l), i + 1, fused->ops->name(fused));
  else
    snprintf(buf, size, "layer %zu (%s)", i, l->ops->name(l));
}

/* NNLIB_ERR_NUMERICAL naming where: `what` of `whose`, element `at` of rows
 * of `per_row` values. */
static nnlib_status report(const char *whose, const char *what,
                           const float *v, int64_t at, int64_t per_row,
                           const char *pass) {
  return nnlib__error(NNLIB_ERR_NUMERICAL,
                      "numerics check: %s %s is %g at sample %lld, element "
                      "%lld (%s)",
                      whose, what, (double)v[at], (long long)(at / per_row),
                      (long long)(at % per_row), pass);
}

nnlib_status nnlib__numerics_after_forward(const nnlib_model *m, size_t i,
                                           const float *x, const float *y,
                                           int64_t n, int64_t steps) {
  const nnlib_layer *l = m->layers[i];
  int64_t in = nnlib__size_at_steps(m, i, &l->in_shape, l->in_size, steps);
  int64_t out = nnlib__size_at_steps(m, i, &l->out_shape, l->out_size, steps);
  int64_t at;
  if (i == 0 && (at = first_non_finite(x, n * in)) >= 0)
    return report("the input batch", "value", x, at, in,
                  "before the first layer");
  if ((at = first_non_finite(y, n * out)) < 0)
    return NNLIB_OK;
  char name[160];
  layer_label(m, i, name, sizeof name);
  const nnlib_layer *last =
      l->fused_activation != NULL ? l->fused_activation : l;
  return report(name, "output", y, at,
                last == l ? out : last->out_size, "forward pass");
}

nnlib_status nnlib__numerics_after_backward(const nnlib_model *m, size_t i,
                                            const float *dx, int64_t n,
                                            int64_t steps) {
  const nnlib_layer *l = m->layers[i];
  char name[160];
  for (size_t p = 0; p < l->param_count; p++) {
    const nnlib__param *param = &l->params[p];
    int64_t at = first_non_finite(param->grad.data, param->size);
    if (at >= 0) {
      layer_label(m, i, name, sizeof name);
      return nnlib__error(NNLIB_ERR_NUMERICAL,
                          "numerics check: %s gradient of %s is %g at "
                          "element %lld (backward pass)",
                          name, param->name, (double)param->grad.data[at],
                          (long long)at);
    }
  }
  int64_t in = nnlib__size_at_steps(m, i, &l->in_shape, l->in_size, steps);
  int64_t at;
  if (dx == NULL || (at = first_non_finite(dx, n * in)) < 0)
    return NNLIB_OK;
  layer_label(m, i, name, sizeof name);
  return report(name, "input gradient", dx, at, in, "backward pass");
}

nnlib_status nnlib__numerics_after_update(const nnlib_model *m) {
  for (size_t i = 0; i < m->layer_count; i++) {
    const nnlib_layer *l = m->layers[i];
    for (size_t p = 0; p < l->param_count; p++) {
      const nnlib__param *param = &l->params[p];
      int64_t at = first_non_finite(param->value.data, param->size);
      if (at < 0)
        continue;
      char name[160];
      layer_label(m, i, name, sizeof name);
      return nnlib__error(NNLIB_ERR_NUMERICAL,
                          "numerics check: the optimizer step made %s %s %g "
                          "at element %lld (learning rate too high?); the "
                          "weights are no longer usable",
                          name, param->name, (double)param->value.data[at],
                          (long long)at);
    }
  }
  return NNLIB_OK;
}
