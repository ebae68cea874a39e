/* model.c - the sequential model: create, add, compile (check the shapes,
 * fuse dense+activation pairs, plan and allocate every buffer once), and the
 * getters. Running it lives in train.c. */
#include "nnlib_internal.h"

#include <stdio.h>
#include <string.h>

nnlib_status nnlib_model_create(nnlib_model **out) {
  NNLIB_CHECK_ARG(out != NULL, "nnlib_model_create: out is NULL");
  *out = nnlib__calloc(1, sizeof **out);
  if (*out == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY, "nnlib_model_create: no memory");
  return NNLIB_OK;
}

/* Everything compile allocates; the model returns to its uncompiled state. */
static void release_plan(nnlib_model *m) {
  nnlib__free(m->params);
  nnlib__free(m->grads);
  nnlib__free(m->layer_state);
  m->layer_state = NULL;
  nnlib__buffers_free(&m->bufs);
  nnlib__free(m->grad_a);
  nnlib__free(m->grad_b);
  nnlib__free(m->input_grads);
  m->input_grads = NULL;
  m->params = m->grads = m->grad_a = m->grad_b = NULL;
  for (size_t i = 0; i < m->layer_count; i++) {
    nnlib_layer *l = m->layers[i];
    l->compiled = false;
    l->fused_activation = NULL;
    l->fused_away = false;
  }
  m->compiled = false;
}

void nnlib_model_free(nnlib_model *m) {
  if (m == NULL)
    return;
  release_plan(m);
  for (size_t i = 0; i < m->layer_count; i++)
    nnlib_layer_free(m->layers[i]);
  nnlib__free(m->layers);
  nnlib_optimizer_free(m->optimizer);
  nnlib__free(m);
}

nnlib_status nnlib_model_add(nnlib_model *m, nnlib_layer *layer) {
  nnlib_status st = NNLIB_OK;
  if (m == NULL || layer == NULL)
    st = nnlib__error(NNLIB_ERR_INVALID_ARGUMENT,
                      "nnlib_model_add: model or layer is NULL");
  else if (m->compiled)
    st = nnlib__error(NNLIB_ERR_WRONG_STATE,
                      "nnlib_model_add: the model is already compiled");
  else if (m->layer_count == m->layer_capacity) {
    size_t cap = m->layer_capacity ? m->layer_capacity * 2 : 8;
    nnlib_layer **grown = nnlib__alloc(cap * sizeof *grown);
    if (grown == NULL) {
      st = nnlib__error(NNLIB_ERR_OUT_OF_MEMORY, "nnlib_model_add: no memory");
    } else {
      if (m->layer_count > 0)
        memcpy(grown, m->layers, m->layer_count * sizeof *grown);
      nnlib__free(m->layers);
      m->layers = grown;
      m->layer_capacity = cap;
    }
  }
  if (st != NNLIB_OK) {
    nnlib_layer_free(layer); /* the model owns the layer, also on failure */
    return st;
  }
  m->layers[m->layer_count++] = layer;
  return NNLIB_OK;
}

/* dense followed by an elementwise activation: the dense layer applies it in
 * its bias pass and the activation layer shares its output buffer. */
static void fuse_pairs(nnlib_model *m) {
  for (size_t i = 0; i + 1 < m->layer_count; i++) {
    nnlib_layer *l = m->layers[i], *next = m->layers[i + 1];
    if (!nnlib__layer_is_dense(l))
      continue;
    if (nnlib__activation_is_elementwise(next)) {
      l->fused_activation = next;
      next->fused_away = true;
    }
    nnlib__dense_set_init_activation(l, nnlib__activation_kind(next));
  }
}

static nnlib_status plan_layers(nnlib_model *m) {
  nnlib__shape shape = m->input_shape;
  for (size_t i = 0; i < m->layer_count; i++) {
    nnlib_layer *l = m->layers[i];
    NNLIB_TRY(nnlib__layer_plan(l, i, &shape, m->max_batch, ""));
    int64_t batch_floats;
    if (nnlib__mul_overflows(l->out_size, m->max_batch, &batch_floats))
      return nnlib__error(NNLIB_ERR_TOO_LARGE,
                          "layer %zu (%s): a batch of %lld outputs of %lld "
                          "overflows",
                          i, l->ops->name(l), (long long)m->max_batch,
                          (long long)l->out_size);
    shape = l->out_shape;
  }
  m->output_size = m->layers[m->layer_count - 1]->out_size;
  return NNLIB_OK;
}

/* Rounds a float count up to a 64-byte boundary. */
static int64_t padded(int64_t floats) { return (floats + 15) / 16 * 16; }

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

/* Parameters and gradients: one flat block each, layers get views. */
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

nnlib_status nnlib__buffers_alloc(const nnlib_model *m, nnlib__buffers *b) {
  int64_t total = 0;
  for (size_t i = 0; i < m->layer_count; i++) {
    const nnlib_layer *l = m->layers[i];
    if (!l->fused_away)
      NNLIB_TRY(sum_checked(&total, padded(l->out_size * m->max_batch)));
    NNLIB_TRY(sum_checked(&total, padded((int64_t)l->workspace_floats)));
  }
  b->acts = nnlib__calloc(2 * m->layer_count, sizeof(float *));
  if (b->acts == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY, "buffers: no memory");
  b->workspace = b->acts + m->layer_count;
  nnlib_status st = alloc_floats(&b->block, total, "activations");
  if (st != NNLIB_OK) {
    nnlib__buffers_free(b);
    return st;
  }
  float *next = b->block;
  for (size_t i = 0; i < m->layer_count; i++) {
    const nnlib_layer *l = m->layers[i];
    if (l->fused_away) {
      b->acts[i] = b->acts[i - 1];
    } else {
      b->acts[i] = next;
      next += padded(l->out_size * m->max_batch);
    }
    b->workspace[i] = next;
    next += padded((int64_t)l->workspace_floats);
  }
  return NNLIB_OK;
}

void nnlib__buffers_free(nnlib__buffers *b) {
  nnlib__free(b->block);
  nnlib__free(b->acts);
  b->acts = b->workspace = NULL;
  b->block = NULL;
}

/* The last layer backward runs (a fused-away activation runs inside the
 * dense before it): the layer whose output is the model's. */
static size_t last_computed_layer(const nnlib_model *m) {
  size_t last = m->layer_count - 1;
  while (last > 0 && m->layers[last]->fused_away)
    last--;
  return last;
}

/* Layer i may write dL/dx over its own output: its kind reads y only before
 * it writes dx (dx_over_output), the output is at least as large as dx, and
 * it is not the model's output, which callers read after a step. By the time
 * layer i runs backward its output is spent: the layer above has run. */
static bool dx_over_output(const nnlib_model *m, size_t i, size_t last) {
  const nnlib_layer *l = m->layers[i];
  return i != last && l->ops->dx_over_output && l->out_size >= l->in_size;
}

/* Where backward writes each layer's dL/dx. The loss gradient (dy of the
 * last layer) is in grad_a; a layer that cannot write dx over its output
 * writes it into whichever of grad_a and grad_b does not hold its dy. Each
 * is sized (in floats per sample) for the widest gradient routed to it, so
 * grad_b may end up unused. With assign, also fills m->input_grads. */
static void route_input_grads(nnlib_model *m, bool assign, int64_t *width_a,
                              int64_t *width_b) {
  enum { IN_OUTPUT, IN_A, IN_B } dy_in = IN_A;
  size_t last = last_computed_layer(m);
  *width_a = m->layers[last]->out_size;
  *width_b = 0;
  for (size_t i = last; i > 0; i--) {
    nnlib_layer *l = m->layers[i];
    if (l->fused_away)
      continue;
    float *dx;
    if (dx_over_output(m, i, last)) {
      dx = m->bufs.acts[i];
      dy_in = IN_OUTPUT;
    } else if (dy_in != IN_A) {
      dx = m->grad_a;
      *width_a = l->in_size > *width_a ? l->in_size : *width_a;
      dy_in = IN_A;
    } else {
      dx = m->grad_b;
      *width_b = l->in_size > *width_b ? l->in_size : *width_b;
      dy_in = IN_B;
    }
    if (assign)
      m->input_grads[i] = dx;
  }
}

static nnlib_status alloc_batch_floats(float **out, int64_t width,
                                       int64_t max_batch) {
  int64_t floats;
  if (nnlib__mul_overflows(width, max_batch, &floats))
    return nnlib__error(NNLIB_ERR_TOO_LARGE, "compile: buffer sizes overflow");
  return alloc_floats(out, floats, "gradient buffers");
}

/* The training buffers: activations and workspaces, and the gradient
 * buffers backward passes between layers (route_input_grads). (fit
 * allocates the buffers it gathers shuffled batches into, so a model that
 * is only stepped or predicted does not carry them.) */
static nnlib_status alloc_buffers(nnlib_model *m) {
  int64_t width_a, width_b;
  NNLIB_TRY(nnlib__buffers_alloc(m, &m->bufs));
  route_input_grads(m, false, &width_a, &width_b);
  NNLIB_TRY(alloc_batch_floats(&m->grad_a, width_a, m->max_batch));
  if (width_b > 0)
    NNLIB_TRY(alloc_batch_floats(&m->grad_b, width_b, m->max_batch));
  m->input_grads = nnlib__calloc(m->layer_count, sizeof(float *));
  if (m->input_grads == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "compile: no memory for gradient routes");
  route_input_grads(m, true, &width_a, &width_b);
  return NNLIB_OK;
}

static nnlib_status check_compile_args(nnlib_model *m, const int64_t *shape,
                                       size_t rank, int64_t max_batch,
                                       nnlib_loss loss,
                                       const nnlib_optimizer *opt) {
  NNLIB_CHECK_ARG(m != NULL, "nnlib_model_compile: model is NULL");
  if (m->compiled)
    return nnlib__error(NNLIB_ERR_WRONG_STATE,
                        "nnlib_model_compile: the model is already compiled");
  if (m->layer_count == 0)
    return nnlib__error(NNLIB_ERR_WRONG_STATE,
                        "nnlib_model_compile: the model has no layers");
  NNLIB_CHECK_ARG(shape != NULL && rank >= 1 && rank < NNLIB_MAX_RANK,
                  "nnlib_model_compile: input shape must have rank 1..%d "
                  "(per sample, without the batch)",
                  NNLIB_MAX_RANK - 1);
  int64_t size;
  NNLIB_TRY(nnlib__shape_size(shape, rank, &size, "compile: input shape"));
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

static nnlib_status compile_plan(nnlib_model *m, nnlib_optimizer *opt) {
  fuse_pairs(m);
  NNLIB_TRY(plan_layers(m));
  int64_t output_floats;
  if (nnlib__mul_overflows(m->output_size, m->max_batch, &output_floats))
    return nnlib__error(NNLIB_ERR_TOO_LARGE, "compile: output buffer overflows");
  NNLIB_TRY(alloc_params(m));
  NNLIB_TRY(alloc_layer_state(m));
  NNLIB_TRY(alloc_buffers(m));
  if (opt != NULL)
    NNLIB_TRY(nnlib__optimizer_attach(opt, m->param_size));
  return NNLIB_OK;
}

nnlib_status nnlib_model_compile(nnlib_model *m, const int64_t *input_shape,
                                 size_t input_rank, int64_t max_batch,
                                 nnlib_loss loss, nnlib_optimizer *opt,
                                 uint64_t seed) {
  return nnlib__model_compile(m, input_shape, input_rank, max_batch, loss, opt,
                              seed, true);
}

nnlib_status nnlib__model_compile(nnlib_model *m, const int64_t *input_shape,
                                  size_t input_rank, int64_t max_batch,
                                  nnlib_loss loss, nnlib_optimizer *opt,
                                  uint64_t seed, bool init_weights) {
  nnlib_status st =
      check_compile_args(m, input_shape, input_rank, max_batch, loss, opt);
  if (st != NNLIB_OK) {
    nnlib_optimizer_free(opt); /* the model takes it, also on failure */
    return st;
  }
  m->input_shape.rank = input_rank;
  for (size_t i = 0; i < input_rank; i++)
    m->input_shape.dims[i] = input_shape[i];
  m->input_size = nnlib__shape_numel(&m->input_shape);
  m->max_batch = max_batch;
  m->loss = loss;
  st = compile_plan(m, opt);
  if (st != NNLIB_OK) {
    release_plan(m);
    nnlib_optimizer_free(opt);
    return st;
  }
  m->optimizer = opt;
  m->seq_layers = nnlib__recurrent_seq_layers(m);
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

nnlib_status nnlib__check_compiled(const nnlib_model *m, const char *what) {
  NNLIB_CHECK_ARG(m != NULL, "%s: model is NULL", what);
  if (!m->compiled)
    return nnlib__error(NNLIB_ERR_WRONG_STATE,
                        "%s: the model is not compiled (call "
                        "nnlib_model_compile first)",
                        what);
  return NNLIB_OK;
}

size_t nnlib_model_get_layer_count(const nnlib_model *m) {
  return m ? m->layer_count : 0;
}

nnlib_layer *nnlib_model_get_layer(nnlib_model *m, size_t index) {
  return (m && index < m->layer_count) ? m->layers[index] : NULL;
}

nnlib_optimizer *nnlib_model_get_optimizer(nnlib_model *m) {
  return m ? m->optimizer : NULL;
}

nnlib_loss nnlib_model_get_loss(const nnlib_model *m) {
  return m ? m->loss : NNLIB_LOSS_NONE;
}

int64_t nnlib_model_get_max_batch(const nnlib_model *m) {
  return (m && m->compiled) ? m->max_batch : 0;
}

nnlib_status nnlib_model_get_param_count(const nnlib_model *m,
                                         int64_t *count) {
  NNLIB_TRY(nnlib__check_compiled(m, "nnlib_model_get_param_count"));
  NNLIB_CHECK_ARG(count != NULL, "nnlib_model_get_param_count: count is NULL");
  *count = m->param_size;
  return NNLIB_OK;
}

static nnlib_status copy_shape(const nnlib__shape *s, int64_t *dims,
                               size_t capacity, size_t *rank) {
  NNLIB_CHECK_ARG(rank != NULL && (dims != NULL || capacity == 0),
                  "shape getter: dims or rank is NULL");
  *rank = s->rank;
  for (size_t i = 0; i < s->rank && i < capacity; i++)
    dims[i] = s->dims[i];
  return NNLIB_OK;
}

nnlib_status nnlib_model_get_input_shape(const nnlib_model *m, int64_t *dims,
                                         size_t capacity, size_t *rank) {
  NNLIB_TRY(nnlib__check_compiled(m, "nnlib_model_get_input_shape"));
  return copy_shape(&m->input_shape, dims, capacity, rank);
}

nnlib_status nnlib_model_get_output_shape(const nnlib_model *m, int64_t *dims,
                                          size_t capacity, size_t *rank) {
  NNLIB_TRY(nnlib__check_compiled(m, "nnlib_model_get_output_shape"));
  return copy_shape(&m->layers[m->layer_count - 1]->out_shape, dims, capacity,
                    rank);
}
