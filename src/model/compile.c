/* compile.c - nnlib_model_compile: check the graph (every node reaches the
 * output), count each node's readers, fuse dense+activation and
 * batchnorm+ReLU pairs, fold batchnorms, activations and 2x2 pools into
 * convolutions for inference, plan
 * every layer's shapes in node order, and allocate the parameters and the
 * buffers once (plan.c places them). Steps and predictions allocate
 * nothing afterwards. */
#include "nnlib_internal.h"

#include <string.h>

void nnlib__model_release(nnlib_model *m) {
  nnlib__free(m->params);
  nnlib__free(m->grads);
  nnlib__free(m->layer_state);
  m->params = m->grads = m->layer_state = NULL;
  nnlib__buffers_free(&m->bufs);
  nnlib_model_set_input_gradients(m, 0);
  for (size_t i = 0; i < m->layer_count; i++) {
    nnlib_layer *l = m->layers[i];
    l->compiled = false;
    l->fused_activation = l->fused_pool = NULL;
    l->fused_away = false;
    l->folded_batchnorm = l->folded_activation = l->folded_pool = NULL;
  }
  m->compiled = false;
}

static nnlib_status check_compile_args(nnlib_model *m, int64_t max_batch,
                                       nnlib_loss loss,
                                       const nnlib_optimizer *opt) {
  NNLIB_CHECK_ARG(m != NULL, "nnlib_model_compile: model is NULL");
  if (m->compiled)
    return nnlib__error(NNLIB_ERR_WRONG_STATE,
                        "nnlib_model_compile: the model is already compiled");
  if (m->layer_count == 0)
    return nnlib__error(NNLIB_ERR_WRONG_STATE,
                        "nnlib_model_compile: the model has no layers");
  NNLIB_CHECK_ARG(max_batch >= 1, "compile: max_batch is %lld, must be >= 1",
                  (long long)max_batch);
  if (max_batch > NNLIB__BLAS_DIM_MAX)
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "compile: max_batch %lld exceeds the BLAS limit",
                        (long long)max_batch);
  NNLIB_CHECK_ARG(loss >= NNLIB_LOSS_NONE && loss <= NNLIB_LOSS_SOFTMAX_CE,
                  "compile: unknown loss %d", (int)loss);
  NNLIB_CHECK_ARG(opt == NULL || loss != NNLIB_LOSS_NONE,
                  "compile: an optimizer needs a loss to minimise");
  return NNLIB_OK;
}

static bool same_shape(const nnlib__shape *a, const int64_t *dims,
                       size_t rank) {
  if (a->rank != rank)
    return false;
  for (size_t i = 0; i < rank; i++)
    if (a->dims[i] != dims[i])
      return false;
  return true;
}

/* nnlib_model_compile's input shape: the implicit input's, or the one
 * declared input's (which it must equal). NULL: every input declared. */
static nnlib_status set_input_shape(nnlib_model *m, const int64_t *shape,
                                    size_t rank) {
  nnlib__node *first = &m->nodes[m->inputs[0]];
  if (shape == NULL) {
    if (m->implicit_input)
      return nnlib__error(NNLIB_ERR_WRONG_STATE,
                          "nnlib_model_compile_graph: the model's input has "
                          "no declared shape (layers were added with "
                          "nnlib_model_add): use nnlib_model_compile");
    return NNLIB_OK;
  }
  NNLIB_CHECK_ARG(rank >= 1 && rank < NNLIB_MAX_RANK,
                  "nnlib_model_compile: input shape must have rank 1..%d "
                  "(per sample, without the batch)",
                  NNLIB_MAX_RANK - 1);
  int64_t size;
  NNLIB_TRY(nnlib__shape_size(shape, rank, &size, "compile: input shape"));
  if (m->input_count != 1)
    return nnlib__error(NNLIB_ERR_INVALID_ARGUMENT,
                        "nnlib_model_compile: the model has %zu inputs: use "
                        "nnlib_model_compile_graph",
                        m->input_count);
  if (!m->implicit_input && !same_shape(&first->shape, shape, rank))
    return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                        "nnlib_model_compile: input_shape differs from the "
                        "shape declared by nnlib_model_input");
  first->shape.rank = rank;
  memcpy(first->shape.dims, shape, rank * sizeof *shape);
  first->size = size;
  return NNLIB_OK;
}

/* Every node must reach the output: walking back from it marks the nodes
 * it depends on (reach, node_count flags). */
static nnlib_status check_reach(nnlib_model *m, bool *reach) {
  memset(reach, 0, m->node_count * sizeof *reach);
  reach[m->output] = true;
  for (size_t v = m->output + 1; v-- > 0;)
    if (reach[v])
      for (size_t i = 0; i < m->nodes[v].input_count; i++)
        reach[m->nodes[v].inputs[i]] = true;
  for (size_t v = 0; v < m->node_count; v++) {
    if (reach[v])
      continue;
    char label[NNLIB__LABEL_SIZE];
    nnlib__node_label(m, v, label, sizeof label);
    return nnlib__error(NNLIB_ERR_INVALID_ARGUMENT,
                        "compile: %s %s: the output does not depend on it",
                        label,
                        m->nodes[v].layer == NULL ? "is never used"
                                                  : "is a dead end");
  }
  return NNLIB_OK;
}

static void count_readers(nnlib_model *m) {
  for (size_t v = 0; v < m->node_count; v++)
    m->nodes[v].readers = m->nodes[v].last_reader = 0;
  for (size_t v = 0; v < m->node_count; v++)
    for (size_t i = 0; i < m->nodes[v].input_count; i++) {
      nnlib__node *in = &m->nodes[m->nodes[v].inputs[i]];
      in->readers++;
      in->last_reader = v;
    }
}

/* Token ids: an embedding reads a model input, which then holds int32
 * ids, and nothing else may read that input as features. */
static nnlib_status mark_id_inputs(nnlib_model *m) {
  char a[NNLIB__LABEL_SIZE], b[NNLIB__LABEL_SIZE];
  for (size_t v = 0; v < m->node_count; v++)
    m->nodes[v].holds_ids = false;
  for (size_t v = 0; v < m->node_count; v++) {
    const nnlib__node *node = &m->nodes[v];
    if (node->layer == NULL || !nnlib__layer_reads_ids(node->layer))
      continue;
    size_t u = node->inputs[0];
    if (m->nodes[u].layer != NULL)
      return nnlib__error(NNLIB_ERR_DTYPE,
                          "compile: %s reads %s, which is not a model input: "
                          "an embedding reads int32 token ids from an input",
                          nnlib__node_label(m, v, a, sizeof a),
                          nnlib__node_label(m, u, b, sizeof b));
    m->nodes[u].holds_ids = true;
  }
  for (size_t v = 0; v < m->node_count; v++) {
    const nnlib__node *node = &m->nodes[v];
    for (size_t i = 0; i < node->input_count && node->layer != NULL; i++)
      if (m->nodes[node->inputs[i]].holds_ids &&
          !nnlib__layer_reads_ids(node->layer))
        return nnlib__error(NNLIB_ERR_DTYPE,
                            "compile: %s reads %s, which holds token ids "
                            "(an embedding reads it): only embeddings read "
                            "token ids",
                            nnlib__node_label(m, v, a, sizeof a),
                            nnlib__node_label(m, node->inputs[i], b,
                                              sizeof b));
  }
  return NNLIB_OK;
}

static nnlib_status check_graph(nnlib_model *m) {
  if (!m->output_set)
    m->output = m->node_count - 1;
  if (m->nodes[m->output].layer == NULL)
    return nnlib__error(NNLIB_ERR_INVALID_ARGUMENT,
                        "compile: the output node is a model input");
  bool *reach = nnlib__calloc(m->node_count, sizeof *reach);
  if (reach == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY, "compile: no memory");
  nnlib_status st = check_reach(m, reach);
  nnlib__free(reach);
  count_readers(m);
  if (st == NNLIB_OK)
    st = mark_id_inputs(m);
  return st;
}

/* A batchnorm whose only reader is a ReLU made right after it applies it
 * in its own passes (batchnorm.c): the ReLU's read and write of the
 * whole activation, forward and backward, are saved. */
static bool fuses_relu(const nnlib_layer *l, const nnlib_layer *a) {
  return nnlib__layer_is_batchnorm(l) && nnlib__activation_is_elementwise(a) &&
         nnlib__activation_kind(a) == NNLIB_ACT_RELU;
}

/* Node v's only reader is node v + 1, and v is not the output (which
 * callers read). */
static bool read_by_next(const nnlib_model *m, size_t v) {
  const nnlib__node *d = &m->nodes[v];
  return v + 1 < m->node_count && d->layer != NULL && d->readers == 1 &&
         d->last_reader == v + 1 && v != m->output;
}

/* A 2x2 max pool at stride 2 alone reading a batchnorm's fused ReLU goes
 * into the batchnorm's passes too (batchnorm.c): the normalised map is
 * then never stored, nor the pool's gradient over it, and each pass reads
 * the batchnorm's input and the pooled map instead. Min pools stay apart:
 * after a ReLU their windows tie at 0 for most positions. */
static void fuse_pool(nnlib_model *m, size_t v) {
  if (m->no_pool_fusion || !read_by_next(m, v + 1)) /* v + 2 exists then */
    return;
  nnlib_layer *pool = m->nodes[v + 2].layer;
  if (!nnlib__layer_is_pool2x2(pool) ||
      nnlib_layer_get_kind(pool) != NNLIB_LAYER_MAXPOOL2D)
    return;
  m->nodes[v].layer->fused_pool = pool;
  pool->fused_away = true;
}

/* A dense layer whose only reader is an elementwise activation made right
 * after it applies the activation in its own bias pass; the activation's
 * node shares its output buffer. The initialiser's gain follows the
 * activation that reads the dense layer. So does a batchnorm a ReLU reads
 * (fuses_relu), and the pool after that (fuse_pool). */
static void fuse_pairs(nnlib_model *m) {
  for (size_t v = 0; v + 1 < m->node_count; v++) {
    nnlib__node *d = &m->nodes[v], *next = &m->nodes[v + 1];
    if (!read_by_next(m, v) || d->layer->fused_away)
      continue;
    nnlib_layer *a = next->layer;
    if (fuses_relu(d->layer, a)) {
      d->layer->fused_activation = a;
      a->fused_away = true;
      fuse_pool(m, v);
    }
    if (!nnlib__layer_is_dense(d->layer))
      continue;
    if (nnlib__activation_is_elementwise(a)) {
      d->layer->fused_activation = a;
      a->fused_away = true;
    }
    nnlib__dense_set_init_activation(d->layer, nnlib__activation_kind(a));
  }
}

/* The node that alone reads node v, when it is a layer of the kind `is`
 * accepts (and v is not the output, which callers read); else -1. A
 * layer fused away into another group than v's does not count (the ReLU
 * and pool fused into a batchnorm fold with it). */
static int64_t sole_reader(const nnlib_model *m, size_t v,
                           bool (*is)(const nnlib_layer *)) {
  const nnlib__node *node = &m->nodes[v];
  if (node->readers != 1 || v == m->output)
    return -1;
  size_t r = node->last_reader;
  const nnlib_layer *l = m->nodes[r].layer;
  bool own = l != NULL && (!l->fused_away ||
                           nnlib__fused_root(m, r) == nnlib__fused_root(m, v));
  return own && is(l) ? (int64_t)r : -1;
}

static void fold_node(nnlib_model *m, size_t root, size_t v) {
  m->nodes[v].folded = true;
  m->nodes[v].fold_root = root;
  m->nodes[root].fold_output = v;
}

/* Inference folding (before planning: a convolution that folds a
 * batchnorm plans room for its scaled weights). A convolution whose only
 * reader is a batchnorm folds it, the elementwise activation that alone
 * reads the last of them folds too, and so does a 2x2 pool at stride 2
 * that alone reads the last; in predict and evaluate the convolution then
 * writes the group's output itself (conv2d.c has the math). Training runs
 * every node: its bits stay as they were. */
static void fold_into_convolutions(nnlib_model *m) {
  for (size_t v = 0; v < m->node_count; v++) {
    m->nodes[v].folded = false;
    m->nodes[v].fold_root = m->nodes[v].fold_output = v;
  }
  for (size_t v = 0; v < m->node_count && !m->no_folding; v++) {
    nnlib_layer *conv = m->nodes[v].layer;
    if (conv == NULL || !nnlib__layer_is_conv2d(conv))
      continue;
    size_t last = v;
    int64_t bn = sole_reader(m, last, nnlib__layer_is_batchnorm);
    if (bn >= 0) {
      conv->folded_batchnorm = m->nodes[bn].layer;
      fold_node(m, v, (size_t)bn);
      last = (size_t)bn;
    }
    int64_t act = sole_reader(m, last, nnlib__activation_is_elementwise);
    if (act >= 0) {
      conv->folded_activation = m->nodes[act].layer;
      fold_node(m, v, (size_t)act);
      last = (size_t)act;
    }
    int64_t pool = sole_reader(m, last, nnlib__layer_is_pool2x2);
    if (pool >= 0) {
      conv->folded_pool = m->nodes[pool].layer;
      fold_node(m, v, (size_t)pool);
    }
  }
}

static nnlib_status plan_node(nnlib_model *m, size_t v, nnlib__shape *in) {
  nnlib__node *node = &m->nodes[v];
  for (size_t i = 0; i < node->input_count; i++)
    in[i] = m->nodes[node->inputs[i]].shape;
  char label[NNLIB__LABEL_SIZE];
  nnlib__node_label(m, v, label, sizeof label);
  NNLIB_TRY(nnlib__layer_plan_inputs(node->layer, label, in,
                                     node->input_count, m->max_batch, ""));
  node->shape = node->layer->out_shape;
  node->size = node->layer->out_size;
  int64_t batch_floats;
  if (nnlib__mul_overflows(node->size, m->max_batch, &batch_floats))
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "%s: a batch of %lld outputs of %lld overflows", label,
                        (long long)m->max_batch, (long long)node->size);
  return NNLIB_OK;
}

static nnlib_status plan_layers(nnlib_model *m) {
  nnlib__shape in[NNLIB__MAX_INPUTS];
  for (size_t v = 0; v < m->node_count; v++)
    if (m->nodes[v].layer != NULL)
      NNLIB_TRY(plan_node(m, v, in));
  m->output_size = m->nodes[m->output].size;
  return NNLIB_OK;
}

static nnlib_status alloc_floats(float **out, int64_t count, const char *what) {
  *out = nnlib__calloc((size_t)(count > 0 ? count : 1), sizeof(float));
  if (*out == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "compile: no memory for %s (%lld floats)", what,
                        (long long)count);
  return NNLIB_OK;
}

static nnlib_status sum_checked(int64_t *total, int64_t add) {
  if (__builtin_add_overflow(*total, add, total))
    return nnlib__error(NNLIB_ERR_TOO_LARGE, "compile: buffer sizes overflow");
  return NNLIB_OK;
}

/* Parameters and gradients: one flat block each in layer order, layers
 * get views. */
static nnlib_status alloc_params(nnlib_model *m) {
  int64_t total = 0;
  for (size_t i = 0; i < m->layer_count; i++)
    for (size_t p = 0; p < m->layers[i]->param_count; p++)
      NNLIB_TRY(sum_checked(&total, m->layers[i]->params[p].size));
  m->param_size = total;
  NNLIB_TRY(alloc_floats(&m->params, total, "parameters"));
  NNLIB_TRY(alloc_floats(&m->grads, total, "gradients"));
  int64_t offset = 0;
  for (size_t i = 0; i < m->layer_count; i++) {
    nnlib_layer *l = m->layers[i];
    for (size_t p = 0; p < l->param_count; p++) {
      nnlib__param *prm = &l->params[p];
      nnlib__tensor_view(&prm->value, m->params + offset, prm->shape.dims,
                         prm->shape.rank);
      nnlib__tensor_view(&prm->grad, m->grads + offset, prm->shape.dims,
                         prm->shape.rank);
      offset += prm->size;
    }
  }
  return NNLIB_OK;
}

/* Layer buffers (untrained state such as running statistics): one flat
 * block, views like the parameters; the layers' init fills them. */
static nnlib_status alloc_layer_state(nnlib_model *m) {
  int64_t total = 0;
  for (size_t i = 0; i < m->layer_count; i++)
    for (size_t b = 0; b < m->layers[i]->buffer_count; b++)
      NNLIB_TRY(sum_checked(&total, m->layers[i]->buffers[b].size));
  m->layer_state_size = total;
  NNLIB_TRY(alloc_floats(&m->layer_state, total, "layer buffers"));
  int64_t offset = 0;
  for (size_t i = 0; i < m->layer_count; i++) {
    nnlib_layer *l = m->layers[i];
    for (size_t b = 0; b < l->buffer_count; b++) {
      nnlib__param *buf = &l->buffers[b];
      nnlib__tensor_view(&buf->value, m->layer_state + offset,
                         buf->shape.dims, buf->shape.rank);
      offset += buf->size;
    }
  }
  return NNLIB_OK;
}

static nnlib_status compile_plan(nnlib_model *m, nnlib_optimizer *opt) {
  NNLIB_TRY(check_graph(m));
  fuse_pairs(m);
  fold_into_convolutions(m);
  NNLIB_TRY(plan_layers(m));
  m->input_shape = m->nodes[m->inputs[0]].shape;
  m->input_size = m->nodes[m->inputs[0]].size;
  nnlib__plan_sequences(m);
  NNLIB_TRY(alloc_params(m));
  NNLIB_TRY(alloc_layer_state(m));
  NNLIB_TRY(nnlib__buffers_alloc(m, &m->bufs, true));
  if (opt != NULL)
    NNLIB_TRY(nnlib__optimizer_attach(opt, m->param_size));
  return NNLIB_OK;
}

nnlib_status nnlib_model_compile(nnlib_model *m, const int64_t *input_shape,
                                 size_t input_rank, int64_t max_batch,
                                 nnlib_loss loss, nnlib_optimizer *opt,
                                 uint64_t seed) {
  if (m != NULL && input_shape == NULL) {
    nnlib_optimizer_free(opt);
    return nnlib__error(NNLIB_ERR_INVALID_ARGUMENT,
                        "nnlib_model_compile: input shape is NULL");
  }
  return nnlib__model_compile(m, input_shape, input_rank, max_batch, loss, opt,
                              seed, true);
}

nnlib_status nnlib_model_compile_graph(nnlib_model *m, int64_t max_batch,
                                       nnlib_loss loss, nnlib_optimizer *opt,
                                       uint64_t seed) {
  return nnlib__model_compile(m, NULL, 0, max_batch, loss, opt, seed, true);
}

nnlib_status nnlib__model_compile(nnlib_model *m, const int64_t *input_shape,
                                  size_t input_rank, int64_t max_batch,
                                  nnlib_loss loss, nnlib_optimizer *opt,
                                  uint64_t seed, bool init_weights) {
  nnlib_status st = check_compile_args(m, max_batch, loss, opt);
  if (st != NNLIB_OK) {
    nnlib_optimizer_free(opt); /* the model takes it, also on failure */
    return st;
  }
  /* what a failed compile puts back: the model is as before */
  nnlib__node *first = &m->nodes[m->inputs[0]];
  nnlib__shape input_before = first->shape;
  int64_t size_before = first->size;
  st = set_input_shape(m, input_shape, input_rank);
  if (st == NNLIB_OK) {
    m->max_batch = max_batch;
    m->loss = loss;
    st = compile_plan(m, opt);
    if (st != NNLIB_OK)
      nnlib__model_release(m);
  }
  if (st != NNLIB_OK) {
    first->shape = input_before;
    first->size = size_before;
    m->max_batch = 0;
    m->loss = NNLIB_LOSS_NONE;
    nnlib_optimizer_free(opt);
    return st;
  }
  m->optimizer = opt;
  m->seed = seed;
  nnlib__rng_seed(&m->rng, seed);
  for (size_t i = 0; i < m->layer_count; i++) {
    nnlib_layer *l = m->layers[i];
    l->compiled = true;
    if (init_weights && l->ops->init != NULL)
      l->ops->init(l, &m->rng);
  }
  m->compiled = true;
  return NNLIB_OK;
}
