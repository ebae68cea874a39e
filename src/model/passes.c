/* passes.c - one forward and one backward pass over the graph, and the
 * optimizer step around them. Forward runs the nodes in order; backward
 * runs them in reverse, each layer writing dL/dx for every input node. The
 * last reader of a node (the first to run backward) writes its gradient
 * buffer directly; later ones write into the fan-out scratch and add it,
 * so a node read by several layers receives the sum. Nothing here
 * allocates. */
#include "nnlib_internal.h"
#include "numerics.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* The output of node v in this pass: a model input's data or a buffer. */
static const float *node_output(const nnlib_model *m, const nnlib__buffers *b,
                                const nnlib__batch *batch, size_t v) {
  const nnlib__node *node = &m->nodes[v];
  return node->layer == NULL ? batch->x[node->input_index] : b->acts[v];
}

static nnlib__run run_of(const nnlib_model *m, const nnlib__buffers *b,
                         const nnlib__batch *batch, size_t v, nnlib__rng *rng,
                         bool training) {
  bool steps = batch->decoding || m->nodes[v].runs_at_steps;
  nnlib__run run = {training,
                    b->workspace[v],
                    rng,
                    batch->sgd_fused,
                    batch->sgd_lr,
                    steps ? batch->steps : 0,
                    batch->position,
                    batch->caches != NULL ? batch->caches[v] : NULL,
                    batch->folded};
  return run;
}

/* The node whose output node v's pass writes: its fold group's last when
 * the call folds (v runs the group), else v. */
static size_t written_by(const nnlib_model *m, const nnlib__batch *batch,
                         size_t v) {
  return batch->folded ? m->nodes[v].fold_output : v;
}

static nnlib_status forward_node(const nnlib_model *m, const nnlib__buffers *b,
                                 const nnlib__batch *batch, size_t v,
                                 nnlib__rng *rng) {
  const nnlib__node *node = &m->nodes[v];
  nnlib_layer *l = node->layer;
  nnlib__run run = run_of(m, b, batch, v, rng, rng != NULL);
  if (!nnlib__layer_is_merge(l))
    return l->ops->forward(l, &run, node_output(m, b, batch, node->inputs[0]),
                           b->acts[written_by(m, batch, v)], batch->n);
  for (size_t i = 0; i < node->input_count; i++)
    b->xs[i] = node_output(m, b, batch, node->inputs[i]);
  return l->ops->forward_merge(l, &run, b->xs, node->input_count, b->acts[v],
                               batch->n);
}

/* A layer's refusal (a batchnorm's negative running variance, a recurrent
 * initial state of the wrong batch) prefixed with the node's label. */
static nnlib_status labelled(const nnlib_model *m, size_t v, nnlib_status st) {
  if (st == NNLIB_OK)
    return st;
  char label[NNLIB__LABEL_SIZE], detail[400];
  snprintf(detail, sizeof detail, "%s", nnlib_last_error_message());
  return nnlib__error(st, "%s: %s", nnlib__node_label(m, v, label,
                                                      sizeof label),
                      detail);
}

/* A folded batchnorm's state is checked before its convolution runs it,
 * so that a refusal names the batchnorm's node as the unfolded pass does
 * (the nodes of a fold group follow their convolution). */
static nnlib_status check_folded_state(const nnlib_model *m,
                                       const nnlib__batch *batch, size_t v) {
  if (!batch->folded)
    return NNLIB_OK;
  for (size_t u = v + 1; u <= m->nodes[v].fold_output; u++) {
    const nnlib__node *node = &m->nodes[u];
    if (node->folded && node->fold_root == v &&
        node->layer->ops->check_state != NULL)
      NNLIB_TRY(labelled(m, u, node->layer->ops->check_state(node->layer)));
  }
  return NNLIB_OK;
}

nnlib_status nnlib__forward(const nnlib_model *m, const nnlib__buffers *b,
                            const nnlib__batch *batch, nnlib__rng *rng,
                            const float **out) {
  /* profiled only on the model's own buffers: the caller owns the model */
  bool timed = m->profiling && b == &m->bufs;
  if (m->check_numerics)
    NNLIB_TRY(nnlib__numerics_check_inputs(m, batch));
  for (size_t v = 0; v < m->node_count; v++) {
    nnlib_layer *l = m->nodes[v].layer;
    if (l == NULL || l->fused_away || (batch->folded && m->nodes[v].folded))
      continue; /* runs inside the dense layer or convolution before it */
    NNLIB_TRY(check_folded_state(m, batch, v));
    nnlib__profile_mark mark = {0.0, 0.0};
    if (timed)
      mark = nnlib__profile_start();
    NNLIB_TRY(labelled(m, v, forward_node(m, b, batch, v, rng)));
    if (timed)
      nnlib__profile_stop(l, false, mark);
    if (m->check_numerics)
      NNLIB_TRY(nnlib__numerics_after_forward(
          m, v, b->acts[written_by(m, batch, v)], batch));
  }
  *out = b->acts[m->output];
  return NNLIB_OK;
}

/* Where the layer running for node r writes the gradient of its input u:
 * u's own buffer when r writes it first (r is u's last reader and this is
 * the first of r's inputs that is u), else NULL with *accumulate set. */
static float *gradient_target(const nnlib_model *m, size_t r, size_t slot,
                              bool *accumulate) {
  const nnlib__node *node = &m->nodes[r];
  size_t u = node->inputs[slot];
  const nnlib__node *in = &m->nodes[u];
  *accumulate = false;
  if (in->holds_ids)
    return NULL; /* token ids have no gradient */
  float *own = in->layer == NULL
                   ? (m->input_grads != NULL ? m->input_grads[in->input_index]
                                             : NULL)
                   : m->bufs.grads[u];
  *accumulate = false;
  if (own == NULL)
    return NULL;
  bool first = in->last_reader == r;
  for (size_t i = 0; i < slot && first; i++)
    first = node->inputs[i] != u;
  if (first)
    return own;
  *accumulate = true;
  return own;
}

/* g[i] += scratch[i] over the batch's gradient of node u. */
static void add_scratch(const nnlib_model *m, const nnlib__batch *batch,
                        size_t u, float *g) {
  int64_t count = batch->n * nnlib__node_size_at(m, u, batch->steps);
  const float *s = m->bufs.accum;
  for (int64_t i = 0; i < count; i++)
    g[i] += s[i];
}

/* A one-input layer running backward for node v (a fused dense layer runs
 * for its activation's node: y and dy are the activation's). */
static nnlib_status backward_single(nnlib_model *m, const nnlib__batch *batch,
                                    size_t e, size_t v, nnlib__run *run) {
  const nnlib__node *node = &m->nodes[e];
  nnlib_layer *l = node->layer;
  size_t u = node->inputs[0];
  bool accumulate;
  float *target = gradient_target(m, e, 0, &accumulate);
  float *dx = accumulate ? m->bufs.accum : target;
  const float *x = node_output(m, &m->bufs, batch, u);
  NNLIB_TRY(l->ops->backward(l, run, x, m->bufs.acts[v], m->bufs.grads[v], dx,
                             batch->n));
  if (accumulate)
    add_scratch(m, batch, u, target);
  return NNLIB_OK;
}

/* A merge layer: one call for the inputs whose buffers it writes first,
 * then one per input that accumulates (merge layers never write dy). */
static nnlib_status backward_merge(nnlib_model *m, const nnlib__batch *batch,
                                   size_t v, nnlib__run *run) {
  const nnlib__node *node = &m->nodes[v];
  nnlib_layer *l = node->layer;
  size_t count = node->input_count;
  bool accumulate;
  for (size_t i = 0; i < count; i++) {
    m->bufs.xs[i] = node_output(m, &m->bufs, batch, node->inputs[i]);
    float *target = gradient_target(m, v, i, &accumulate);
    m->bufs.dxs[i] = accumulate ? NULL : target;
  }
  NNLIB_TRY(l->ops->backward_merge(l, run, m->bufs.xs, count, m->bufs.acts[v],
                                   m->bufs.grads[v], m->bufs.dxs, batch->n));
  for (size_t i = 0; i < count; i++) {
    float *target = gradient_target(m, v, i, &accumulate);
    if (!accumulate)
      continue;
    for (size_t j = 0; j < count; j++)
      m->bufs.dxs[j] = j == i ? m->bufs.accum : NULL;
    NNLIB_TRY(l->ops->backward_merge(l, run, m->bufs.xs, count,
                                     m->bufs.acts[v], m->bufs.grads[v],
                                     m->bufs.dxs, batch->n));
    add_scratch(m, batch, node->inputs[i], target);
  }
  return NNLIB_OK;
}

static nnlib_status backward_node(nnlib_model *m, const nnlib__batch *batch,
                                  size_t v) {
  size_t e = nnlib__fused_root(m, v); /* the node whose layer runs */
  nnlib_layer *runs = m->nodes[e].layer;
  nnlib__run run = run_of(m, &m->bufs, batch, e,
                          batch->training ? &m->rng : NULL, batch->training);
  nnlib__profile_mark mark = {0.0, 0.0};
  if (m->profiling)
    mark = nnlib__profile_start();
  if (nnlib__layer_is_merge(runs))
    NNLIB_TRY(labelled(m, e, backward_merge(m, batch, e, &run)));
  else
    NNLIB_TRY(labelled(m, e, backward_single(m, batch, e, v, &run)));
  if (m->profiling)
    nnlib__profile_stop(runs, true, mark);
  if (m->check_numerics)
    NNLIB_TRY(nnlib__numerics_after_backward(m, e, batch));
  return NNLIB_OK;
}

/* A loss that is not a finite float (the caller receives a float) says
 * which of the three it is: NaN, infinite, or finite in double but above
 * FLT_MAX (a diverging training passes there before it reaches Inf). */
static nnlib_status loss_not_finite(double loss) {
  if (isfinite(loss))
    return nnlib__error(NNLIB_ERR_NUMERICAL,
                        "the loss is %g, too large for float32 (above %g): "
                        "the weights were left untouched (learning rate too "
                        "high?)",
                        loss, (double)FLT_MAX);
  return nnlib__error(NNLIB_ERR_NUMERICAL,
                      "the loss is %s: the weights were left untouched "
                      "(learning rate too high, or NaN/Inf in the data?)",
                      isnan(loss) ? "NaN" : loss > 0 ? "+Inf" : "-Inf");
}

/* dL/dy of the output into its gradient buffer: the loss's, or the
 * caller's. */
static nnlib_status output_gradient(nnlib_model *m, const nnlib__batch *batch,
                                    const float *dy_out, double *loss) {
  float *dy = m->bufs.grads[m->output];
  int64_t k = nnlib__output_size_at(m, batch->steps);
  if (dy_out != NULL) {
    memcpy(dy, dy_out, (size_t)(batch->n * k) * sizeof(float));
    *loss = 0.0;
    return NNLIB_OK;
  }
  NNLIB_TRY(nnlib__batch_loss(m, m->bufs.acts[m->output], batch, dy, loss));
  /* a fused update changes the weights during backward: check first */
  if (batch->sgd_fused && !isfinite((float)*loss))
    return loss_not_finite(*loss);
  return NNLIB_OK;
}

nnlib_status nnlib__backward(nnlib_model *m, const nnlib__batch *batch,
                             const float *dy_out, double *loss) {
  NNLIB_TRY(output_gradient(m, batch, dy_out, loss));
  for (size_t v = m->node_count; v-- > 0;) {
    nnlib_layer *l = m->nodes[v].layer;
    if (l == NULL || nnlib__fused_last(m, nnlib__fused_root(m, v)) != v)
      continue; /* a fused group runs at its last node */
    NNLIB_TRY(backward_node(m, batch, v));
  }
  m->input_grads_n = m->input_grads != NULL ? batch->n : 0;
  return NNLIB_OK;
}

nnlib_status nnlib__gradients(nnlib_model *m, const nnlib__batch *batch,
                              double *loss) {
  const float *out;
  NNLIB_TRY(nnlib__forward(m, &m->bufs, batch, &m->rng, &out));
  NNLIB_TRY(nnlib__backward(m, batch, NULL, loss));
  /* as the float the caller gets: a double loss over FLT_MAX is Inf too */
  if (!isfinite((float)*loss))
    return loss_not_finite(*loss);
  return NNLIB_OK;
}

/* Plain SGD can be folded into backward (p -= lr g inside each layer's
 * weight-gradient GEMM, no separate pass over parameters and gradients)
 * when every layer with parameters supports it. */
static bool sgd_fusable(const nnlib_model *m, float *lr) {
  if (!nnlib__optimizer_is_plain_sgd(m->optimizer, lr))
    return false;
  for (size_t i = 0; i < m->layer_count; i++) {
    const nnlib_layer *l = m->layers[i];
    if (l->param_count > 0 && !l->ops->fuses_sgd)
      return false;
  }
  return true;
}

nnlib_status nnlib__train_batch(nnlib_model *m, nnlib__batch *batch,
                                double *loss) {
  float lr;
  batch->training = true;
  /* the numerics check reads the gradients, which fused SGD never writes */
  if (!m->check_numerics && sgd_fusable(m, &lr)) {
    batch->sgd_fused = true;
    batch->sgd_lr = lr;
    nnlib_status st = nnlib__gradients(m, batch, loss);
    batch->sgd_fused = false;
    if (st == NNLIB_OK)
      nnlib__optimizer_count_update(m->optimizer);
    return st;
  }
  NNLIB_TRY(nnlib__gradients(m, batch, loss));
  nnlib__optimizer_update(m->optimizer, m->params, m->grads, m->param_size);
  return m->check_numerics ? nnlib__numerics_after_update(m) : NNLIB_OK;
}
