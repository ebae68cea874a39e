/* numerics.c - nnlib_model_set_check_numerics: find the first layer whose
 * output, input gradient or parameter gradient holds a NaN or an Inf, so a
 * diverging run stops with a name instead of training on NaN. The passes in
 * passes.c call in here only when the option is on. */
#include "numerics.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

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

/* "layer 2 (dense)" or, for a layer that runs the nodes after it in its
 * own passes, "layer 2 (dense, with layer 3 relu fused in)" or "layer 1
 * (batchnorm, with layer 2 relu, layer 3 maxpool2d fused in)" (in a graph:
 * its node's label, see nnlib__node_label). */
static void node_label(const nnlib_model *m, size_t v, char *buf, size_t size) {
  char own[NNLIB__LABEL_SIZE], next[NNLIB__LABEL_SIZE];
  nnlib__node_label(m, v, own, sizeof own);
  size_t last = nnlib__fused_last(m, v);
  if (last == v) {
    snprintf(buf, size, "%s", own);
    return;
  }
  size_t len = strlen(own);
  if (len > 0 && own[len - 1] == ')')
    own[len - 1] = '\0';
  int used = snprintf(buf, size, "%s, with", own);
  for (size_t u = v + 1; u <= last; u++) {
    nnlib__node_label(m, u, next, sizeof next);
    char *paren = strchr(next, '(');
    if (paren != NULL && paren > next)
      *(paren - 1) = '\0'; /* "layer 3 (relu)" -> "layer 3" */
    const nnlib_layer *l = m->nodes[u].layer;
    if (used >= 0 && (size_t)used < size)
      used += snprintf(buf + used, size - (size_t)used, "%s%s %s",
                       u == v + 1 ? " " : ", ", next, l->ops->name(l));
  }
  if (used >= 0 && (size_t)used < size)
    snprintf(buf + used, size - (size_t)used, " fused in)");
}

/* node_label for a convolution that ran its fold group in one pass (a
 * folding call): "layer 0 (conv2d, with layer 1 batchnorm, layer 2 relu
 * folded in)". */
static void group_label(const nnlib_model *m, size_t v, char *buf,
                        size_t size) {
  char own[NNLIB__LABEL_SIZE], next[NNLIB__LABEL_SIZE];
  nnlib__node_label(m, v, own, sizeof own);
  size_t len = strlen(own);
  if (len > 0 && own[len - 1] == ')')
    own[len - 1] = '\0';
  int used = snprintf(buf, size, "%s, with", own);
  const char *sep = " ";
  for (size_t u = v + 1; u <= m->nodes[v].fold_output; u++) {
    if (!m->nodes[u].folded || m->nodes[u].fold_root != v)
      continue;
    nnlib__node_label(m, u, next, sizeof next);
    char *paren = strchr(next, '(');
    if (paren != NULL && paren > next)
      *(paren - 1) = '\0'; /* "layer 1 (batchnorm)" -> "layer 1" */
    const nnlib_layer *l = m->nodes[u].layer;
    if (used >= 0 && (size_t)used < size)
      used += snprintf(buf + used, size - (size_t)used, "%s%s %s", sep, next,
                       l->ops->name(l));
    sep = ", ";
  }
  if (used >= 0 && (size_t)used < size)
    snprintf(buf + used, size - (size_t)used, " folded in)");
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

nnlib_status nnlib__numerics_check_inputs(const nnlib_model *m,
                                          const nnlib__batch *batch) {
  for (size_t k = 0; k < m->input_count; k++) {
    if (m->nodes[m->inputs[k]].holds_ids)
      continue; /* int32 token ids: always finite */
    int64_t in = nnlib__input_stride(m, k, batch->steps);
    int64_t at = first_non_finite(batch->x[k], batch->n * in);
    if (at < 0)
      continue;
    char what[48];
    if (m->input_count == 1)
      snprintf(what, sizeof what, "the input batch");
    else
      snprintf(what, sizeof what, "input batch %zu", k);
    return report(what, "value", batch->x[k], at, in,
                  "before the first layer");
  }
  return NNLIB_OK;
}

nnlib_status nnlib__numerics_after_forward(const nnlib_model *m, size_t v,
                                           const float *y,
                                           const nnlib__batch *batch) {
  /* a fused group's output is its last node's, a fold group's its last
   * node's (a fused or folded pool's is smaller) */
  size_t out = nnlib__fused_last(m, v);
  if (batch->folded)
    out = m->nodes[v].fold_output;
  int64_t per_row = nnlib__node_size_at(m, out, batch->steps);
  int64_t at = first_non_finite(y, batch->n * per_row);
  if (at < 0)
    return NNLIB_OK;
  char name[240];
  if (batch->folded && m->nodes[v].fold_output != v)
    group_label(m, v, name, sizeof name);
  else
    node_label(m, v, name, sizeof name);
  return report(name, "output", y, at, per_row, "forward pass");
}

static nnlib_status check_param_grads(const nnlib_model *m, size_t v) {
  const nnlib_layer *l = m->nodes[v].layer;
  for (size_t p = 0; p < l->param_count; p++) {
    const nnlib__param *param = &l->params[p];
    int64_t at = first_non_finite(param->grad.data, param->size);
    if (at < 0)
      continue;
    char name[160];
    node_label(m, v, name, sizeof name);
    return nnlib__error(NNLIB_ERR_NUMERICAL,
                        "numerics check: %s gradient of %s is %g at "
                        "element %lld (backward pass)",
                        name, param->name, (double)param->grad.data[at],
                        (long long)at);
  }
  return NNLIB_OK;
}

nnlib_status nnlib__numerics_after_backward(const nnlib_model *m, size_t v,
                                            const nnlib__batch *batch) {
  NNLIB_TRY(check_param_grads(m, v));
  const nnlib__node *node = &m->nodes[v];
  for (size_t i = 0; i < node->input_count; i++) {
    size_t u = node->inputs[i];
    const nnlib__node *in = &m->nodes[u];
    const float *dx =
        in->layer != NULL
            ? m->bufs.grads[u]
            : (m->input_grads != NULL ? m->input_grads[in->input_index]
                                      : NULL);
    int64_t per_row = nnlib__node_size_at(m, u, batch->steps);
    int64_t at;
    if (dx == NULL || (at = first_non_finite(dx, batch->n * per_row)) < 0)
      continue;
    char name[160];
    node_label(m, v, name, sizeof name);
    return report(name, "input gradient", dx, at, per_row, "backward pass");
  }
  return NNLIB_OK;
}

nnlib_status nnlib__numerics_after_update(const nnlib_model *m) {
  for (size_t v = 0; v < m->node_count; v++) {
    const nnlib_layer *l = m->nodes[v].layer;
    for (size_t p = 0; l != NULL && p < l->param_count; p++) {
      const nnlib__param *param = &l->params[p];
      int64_t at = first_non_finite(param->value.data, param->size);
      if (at < 0)
        continue;
      char name[160];
      node_label(m, v, name, sizeof name);
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
