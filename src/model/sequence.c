/* sequence.c - batches of sequences shorter than the model was planned for
 * ([N, T', F] with T' < T). A recurrent layer runs any T' <= T; the layers
 * after it see the same shapes once the time axis has ended (a layer that
 * returns its last step). So a model takes shorter sequences when its one
 * input of rank 2 is read only by recurrent layers, and their sequence
 * outputs only by recurrent layers again, or form the model's output. */
#include "nnlib_internal.h"

static bool reads_a_sequence(const nnlib_model *m, const nnlib__node *node) {
  for (size_t i = 0; i < node->input_count; i++)
    if (m->nodes[node->inputs[i]].at_steps)
      return true;
  return false;
}

static void clear_sequences(nnlib_model *m) {
  for (size_t v = 0; v < m->node_count; v++)
    m->nodes[v].at_steps = m->nodes[v].runs_at_steps = false;
  m->takes_shorter = false;
}

void nnlib__plan_sequences(nnlib_model *m) {
  clear_sequences(m);
  if (m->input_count != 1 || m->nodes[m->inputs[0]].shape.rank != 2)
    return;
  m->nodes[m->inputs[0]].at_steps = true;
  bool any = false;
  for (size_t v = 0; v < m->node_count; v++) {
    nnlib__node *node = &m->nodes[v];
    if (node->layer == NULL || !reads_a_sequence(m, node))
      continue;
    if (node->input_count != 1 || !nnlib__layer_is_recurrent(node->layer)) {
      clear_sequences(m); /* another layer inside the time axis */
      return;
    }
    node->runs_at_steps = true;
    node->at_steps = nnlib__recurrent_returns_sequences(node->layer);
    any = true;
  }
  m->takes_shorter = any;
  if (!any)
    clear_sequences(m);
}

/* The first recurrent layer that sees input k unchanged (only
 * shape-keeping one-input layers before it), or NULL. */
static const nnlib_layer *input_recurrent(const nnlib_model *m, size_t k) {
  size_t current = m->inputs[k];
  for (size_t v = current + 1; v < m->node_count; v++) {
    const nnlib__node *node = &m->nodes[v];
    if (node->layer == NULL || node->input_count != 1 ||
        node->inputs[0] != current)
      continue;
    if (nnlib__layer_is_recurrent(node->layer))
      return node->layer;
    if (!nnlib__shape_equal(&m->nodes[current].shape, &node->shape))
      return NULL;
    current = v;
  }
  return NULL;
}

nnlib_status nnlib__check_sequence_input(const nnlib_model *m, size_t k,
                                         const nnlib_tensor *x,
                                         int64_t *shorter) {
  *shorter = 0;
  const nnlib__shape *planned = &m->nodes[m->inputs[k]].shape;
  if (x->rank != 3 || planned->rank != 2)
    return NNLIB_OK;
  const nnlib_layer *l = input_recurrent(m, k);
  if (l == NULL)
    return NNLIB_OK;
  const char *kind = l->ops->name(l);
  int64_t steps = planned->dims[0], features = planned->dims[1];
  if (x->shape[2] != features)
    return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                        "%s: input has %lld features per step, layer expects "
                        "%lld",
                        kind, (long long)x->shape[2], (long long)features);
  if (x->shape[1] > steps)
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "%s: sequence length %lld above the compiled maximum "
                        "%lld (the model's input shape [T, F] fixes T)",
                        kind, (long long)x->shape[1], (long long)steps);
  if (x->shape[1] < steps && !m->takes_shorter)
    return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                        "%s: sequence length %lld differs from the compiled "
                        "%lld: only models whose recurrent layers come first "
                        "and either end in one returning its last step "
                        "(\"last\") or make up the whole model take shorter "
                        "sequences; pad them or compile a model for this "
                        "length",
                        kind, (long long)x->shape[1], (long long)steps);
  if (x->shape[1] < steps)
    *shorter = x->shape[1];
  return NNLIB_OK;
}

int64_t nnlib__node_size_at(const nnlib_model *m, size_t v, int64_t steps) {
  const nnlib__node *node = &m->nodes[v];
  if (steps == 0 || !node->at_steps)
    return node->size;
  return steps * node->shape.dims[1]; /* [T, width] per sample at T = steps */
}

int64_t nnlib__output_size_at(const nnlib_model *m, int64_t steps) {
  return nnlib__node_size_at(m, m->output, steps);
}

int64_t nnlib__input_stride(const nnlib_model *m, size_t k, int64_t steps) {
  return nnlib__node_size_at(m, m->inputs[k], steps);
}
