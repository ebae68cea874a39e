/* model.c - the model as a graph: create, declare inputs, apply layers to
 * nodes, name them, and the getters. Compiling it (checks, fusion, buffer
 * plan) is compile.c and plan.c; running it train.c. */
#include "nnlib_internal.h"

#include <stdio.h>
#include <string.h>

nnlib_status nnlib_model_create(nnlib_model **out) {
  static uint32_t next_tag; /* tells the nodes of two models apart */
  NNLIB_CHECK_ARG(out != NULL, "nnlib_model_create: out is NULL");
  *out = nnlib__calloc(1, sizeof **out);
  if (*out == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY, "nnlib_model_create: no memory");
  uint32_t tag = __atomic_add_fetch(&next_tag, 1, __ATOMIC_RELAXED);
  (*out)->tag = tag != 0 ? tag : __atomic_add_fetch(&next_tag, 1,
                                                     __ATOMIC_RELAXED);
  return NNLIB_OK;
}

static void free_node(nnlib__node *node) {
  nnlib_layer_free(node->layer);
  nnlib__free(node->inputs);
  nnlib__free(node->handles);
  nnlib__free(node->name);
  memset(node, 0, sizeof *node);
}

/* Whether some node breaks the chain shape (a second input, a layer not
 * reading the node before it, a name): the slow check behind
 * m->branched, run again when nodes are dropped. */
static bool scan_branched(const nnlib_model *m) {
  for (size_t v = 0; v < m->node_count; v++) {
    const nnlib__node *n = &m->nodes[v];
    if (n->name != NULL || (v > 0 && (n->layer == NULL ||
                                      n->input_count != 1 ||
                                      n->inputs[0] != v - 1)))
      return true;
  }
  return false;
}

void nnlib__model_truncate(nnlib_model *m, size_t count) {
  while (m->node_count > count) {
    nnlib__node *node = &m->nodes[--m->node_count];
    if (node->layer != NULL)
      m->layer_count--;
    else
      m->input_count--;
    free_node(node);
  }
  if (m->input_count == 0)
    m->implicit_input = false;
  if (m->output_set && m->output >= m->node_count)
    m->output_set = false;
  m->branched = scan_branched(m);
}

void nnlib_model_free(nnlib_model *m) {
  if (m == NULL)
    return;
  nnlib__model_release(m);
  nnlib__model_truncate(m, 0);
  nnlib__free(m->nodes);
  nnlib__free(m->layers);
  nnlib__free(m->inputs);
  nnlib_optimizer_free(m->optimizer);
  nnlib__free(m);
}

/* Room for one more element in an array of `size`-byte items. */
static bool grow(void **items, size_t *capacity, size_t count, size_t size) {
  if (count < *capacity)
    return true;
  size_t cap = *capacity ? *capacity * 2 : 8;
  void *grown = nnlib__calloc(cap, size);
  if (grown == NULL)
    return false;
  if (count > 0)
    memcpy(grown, *items, count * size);
  nnlib__free(*items);
  *items = grown;
  *capacity = cap;
  return true;
}

static nnlib_status check_growable(nnlib_model *m, const char *what) {
  NNLIB_CHECK_ARG(m != NULL, "%s: model is NULL", what);
  if (m->compiled)
    return nnlib__error(NNLIB_ERR_WRONG_STATE,
                        "%s: the model is already compiled", what);
  return NNLIB_OK;
}

/* A new node at the end, zeroed; NULL when out of memory. */
static nnlib__node *new_node(nnlib_model *m) {
  if (!grow((void **)&m->nodes, &m->node_capacity, m->node_count,
            sizeof *m->nodes))
    return NULL;
  nnlib__node *node = &m->nodes[m->node_count];
  memset(node, 0, sizeof *node);
  node->input_index = node->layer_index = -1;
  return node;
}

static nnlib_node handle_of(const nnlib_model *m, size_t index) {
  return ((nnlib_node)m->tag << 32) | (nnlib_node)index;
}

/* The node index of a handle, or INVALID_ARGUMENT naming the problem. */
static nnlib_status index_of(const nnlib_model *m, nnlib_node node,
                             const char *what, size_t *index) {
  if ((uint32_t)(node >> 32) != m->tag)
    return nnlib__error(NNLIB_ERR_INVALID_ARGUMENT,
                        "%s: node %#llx is not a node of this model", what,
                        (unsigned long long)node);
  uint64_t i = node & 0xffffffffu;
  if (i >= m->node_count)
    return nnlib__error(NNLIB_ERR_INVALID_ARGUMENT,
                        "%s: node %llu does not exist (the model has %zu)",
                        what, (unsigned long long)i, m->node_count);
  *index = (size_t)i;
  return NNLIB_OK;
}

nnlib_status nnlib__model_add_input(nnlib_model *m, const nnlib__shape *shape,
                                    size_t *node) {
  if (m->input_count >= NNLIB__MAX_INPUTS)
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "nnlib_model_input: a model takes at most %d inputs",
                        NNLIB__MAX_INPUTS);
  if (!grow((void **)&m->inputs, &m->input_capacity, m->input_count,
            sizeof *m->inputs))
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY, "nnlib_model_input: no memory");
  nnlib__node *n = new_node(m);
  if (n == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY, "nnlib_model_input: no memory");
  n->shape = *shape;
  n->size = shape->rank > 0 ? nnlib__shape_numel(shape) : 0;
  n->input_index = (int64_t)m->input_count;
  if (m->node_count > 0)
    m->branched = true; /* an input after other nodes */
  m->inputs[m->input_count++] = m->node_count;
  *node = m->node_count++;
  return NNLIB_OK;
}

nnlib_status nnlib_model_input(nnlib_model *m, const int64_t *shape,
                               size_t rank, nnlib_node *node) {
  NNLIB_TRY(check_growable(m, "nnlib_model_input"));
  NNLIB_CHECK_ARG(node != NULL, "nnlib_model_input: node is NULL");
  if (m->implicit_input)
    return nnlib__error(NNLIB_ERR_WRONG_STATE,
                        "nnlib_model_input: layers were added to the model's "
                        "implicit input already (nnlib_model_add); declare "
                        "inputs first");
  NNLIB_CHECK_ARG(shape != NULL && rank >= 1 && rank < NNLIB_MAX_RANK,
                  "nnlib_model_input: shape must have rank 1..%d (per "
                  "sample, without the batch)",
                  NNLIB_MAX_RANK - 1);
  int64_t size;
  NNLIB_TRY(nnlib__shape_size(shape, rank, &size, "nnlib_model_input: shape"));
  nnlib__shape s = {rank, {0}};
  memcpy(s.dims, shape, rank * sizeof *shape);
  size_t index = 0;
  NNLIB_TRY(nnlib__model_add_input(m, &s, &index));
  *node = handle_of(m, index);
  return NNLIB_OK;
}

static nnlib_status check_apply(const nnlib_model *m, const nnlib_layer *l,
                                const size_t *inputs, size_t count) {
  const char *name = l->ops->name(l);
  size_t min = nnlib__layer_min_inputs(l);
  if (nnlib__layer_is_merge(l) ? count < min : count != 1)
    return nnlib__error(NNLIB_ERR_INVALID_ARGUMENT,
                        "nnlib_model_apply: %s reads %s %zu node%s, given "
                        "%zu",
                        name, nnlib__layer_is_merge(l) ? "at least" : "exactly",
                        min, min == 1 ? "" : "s", count);
  for (size_t i = 0; i < count; i++)
    if (inputs[i] >= m->node_count)
      return nnlib__error(NNLIB_ERR_INVALID_ARGUMENT,
                          "nnlib_model_apply: %s input %zu is node %zu, which "
                          "does not exist yet (the model has %zu)",
                          name, i, inputs[i], m->node_count);
  return NNLIB_OK;
}

/* Fills a new layer node; false when out of memory. */
static bool fill_layer_node(nnlib_model *m, nnlib__node *n, nnlib_layer *l,
                            const size_t *inputs, size_t count) {
  /* an array of layer pointers: its element is the pointer */
  if (!grow((void **)&m->layers, &m->layer_capacity, m->layer_count,
            sizeof *m->layers)) // NOLINT(bugprone-sizeof-expression)
    return false;
  n->inputs = nnlib__calloc(count, sizeof *n->inputs);
  n->handles = nnlib__calloc(count, sizeof *n->handles);
  if (n->inputs == NULL || n->handles == NULL) {
    nnlib__free(n->inputs);
    nnlib__free(n->handles);
    n->inputs = NULL;
    n->handles = NULL;
    return false;
  }
  for (size_t i = 0; i < count; i++) {
    n->inputs[i] = inputs[i];
    n->handles[i] = handle_of(m, inputs[i]);
  }
  n->input_count = count;
  if (count != 1 || inputs[0] + 1 != m->node_count)
    m->branched = true; /* this node is made at index node_count */
  n->layer = l;
  n->layer_index = (int64_t)m->layer_count;
  m->layers[m->layer_count++] = l;
  l->applied = true;
  return true;
}

nnlib_status nnlib__model_apply(nnlib_model *m, nnlib_layer *l,
                                const size_t *inputs, size_t count,
                                size_t *node) {
  nnlib_status st = check_apply(m, l, inputs, count);
  nnlib__node *n = st == NNLIB_OK ? new_node(m) : NULL;
  if (st == NNLIB_OK && (n == NULL || !fill_layer_node(m, n, l, inputs, count)))
    st = nnlib__error(NNLIB_ERR_OUT_OF_MEMORY, "nnlib_model_apply: no memory");
  if (st != NNLIB_OK) {
    nnlib_layer_free(l); /* the model owns the layer, also on failure */
    return st;
  }
  if (node != NULL)
    *node = m->node_count;
  m->node_count++;
  return NNLIB_OK;
}

/* Checks shared by add and apply; frees the layer on failure unless it
 * already belongs to a model (freeing it would pull it out from there). */
static nnlib_status check_layer(nnlib_model *m, nnlib_layer *l,
                                const char *what) {
  nnlib_status st = NNLIB_OK;
  if (l == NULL)
    return nnlib__error(NNLIB_ERR_INVALID_ARGUMENT, "%s: layer is NULL", what);
  if (l->applied)
    return nnlib__error(NNLIB_ERR_INVALID_ARGUMENT,
                        "%s: this %s layer belongs to a model node already "
                        "(a layer is applied once; make another)",
                        what, l->ops->name(l));
  if (m == NULL)
    st = nnlib__error(NNLIB_ERR_INVALID_ARGUMENT, "%s: model is NULL", what);
  else if (m->compiled)
    st = nnlib__error(NNLIB_ERR_WRONG_STATE,
                      "%s: the model is already compiled", what);
  if (st != NNLIB_OK)
    nnlib_layer_free(l);
  return st;
}

nnlib_status nnlib_model_apply(nnlib_model *m, nnlib_layer *layer,
                               const nnlib_node *inputs, size_t count,
                               nnlib_node *node) {
  NNLIB_TRY(check_layer(m, layer, "nnlib_model_apply"));
  size_t index[NNLIB__MAX_INPUTS];
  nnlib_status st = NNLIB_OK;
  if (inputs == NULL || count == 0)
    st = nnlib__error(NNLIB_ERR_INVALID_ARGUMENT,
                      "nnlib_model_apply: no input nodes given");
  else if (count > NNLIB__MAX_INPUTS)
    st = nnlib__error(NNLIB_ERR_TOO_LARGE,
                      "nnlib_model_apply: %zu input nodes, at most %d", count,
                      NNLIB__MAX_INPUTS);
  for (size_t i = 0; st == NNLIB_OK && i < count; i++)
    st = index_of(m, inputs[i], "nnlib_model_apply", &index[i]);
  if (st != NNLIB_OK) {
    nnlib_layer_free(layer);
    return st;
  }
  size_t made;
  NNLIB_TRY(nnlib__model_apply(m, layer, index, count, &made));
  if (node != NULL)
    *node = handle_of(m, made);
  return NNLIB_OK;
}

nnlib_status nnlib_model_add(nnlib_model *m, nnlib_layer *layer) {
  NNLIB_TRY(check_layer(m, layer, "nnlib_model_add"));
  if (m->node_count == 0) {
    nnlib__shape unknown = {0, {0}}; /* compile gives it */
    size_t input;
    nnlib_status st = nnlib__model_add_input(m, &unknown, &input);
    if (st != NNLIB_OK) {
      nnlib_layer_free(layer);
      return st;
    }
    m->implicit_input = true;
  }
  size_t last = m->node_count - 1;
  return nnlib__model_apply(m, layer, &last, 1, NULL);
}

nnlib_status nnlib__model_set_output(nnlib_model *m, size_t node) {
  if (m->output_set)
    return nnlib__error(NNLIB_ERR_WRONG_STATE,
                        "nnlib_model_set_output: the output is set already");
  if (m->nodes[node].layer == NULL)
    return nnlib__error(NNLIB_ERR_INVALID_ARGUMENT,
                        "nnlib_model_set_output: node %zu is a model input, "
                        "not a layer",
                        node);
  m->output = node;
  m->output_set = true;
  return NNLIB_OK;
}

nnlib_status nnlib_model_set_output(nnlib_model *m, nnlib_node node) {
  NNLIB_TRY(check_growable(m, "nnlib_model_set_output"));
  size_t index = 0;
  NNLIB_TRY(index_of(m, node, "nnlib_model_set_output", &index));
  return nnlib__model_set_output(m, index);
}

static bool valid_name(const char *name, size_t length) {
  if (length == 0 || length > 31 || (name[0] >= '0' && name[0] <= '9'))
    return false;
  for (size_t i = 0; i < length; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_'))
      return false;
  }
  return true;
}

int64_t nnlib__model_find_name(const nnlib_model *m, const char *name,
                               size_t length) {
  for (size_t v = 0; v < m->node_count; v++) {
    const char *own = m->nodes[v].name;
    if (own != NULL && strlen(own) == length && memcmp(own, name, length) == 0)
      return (int64_t)v;
  }
  return -1;
}

nnlib_status nnlib__model_set_name(nnlib_model *m, size_t node,
                                   const char *name, size_t length) {
  if (!valid_name(name, length))
    return nnlib__error(NNLIB_ERR_INVALID_ARGUMENT,
                        "node name '%.*s': use 1 to 31 characters of "
                        "[A-Za-z0-9_], not starting with a digit",
                        (int)(length > 40 ? 40 : length), name);
  int64_t other = nnlib__model_find_name(m, name, length);
  if (other >= 0 && (size_t)other != node)
    return nnlib__error(NNLIB_ERR_INVALID_ARGUMENT,
                        "node name '%.*s' is used twice (node %lld has it)",
                        (int)length, name, (long long)other);
  char *copy = nnlib__alloc(length + 1);
  if (copy == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY, "node name: no memory");
  memcpy(copy, name, length);
  copy[length] = '\0';
  nnlib__free(m->nodes[node].name);
  m->nodes[node].name = copy;
  m->branched = true; /* descriptions and files name it: not a 1.2 chain */
  return NNLIB_OK;
}

nnlib_status nnlib_model_set_node_name(nnlib_model *m, nnlib_node node,
                                       const char *name) {
  NNLIB_TRY(check_growable(m, "nnlib_model_set_node_name"));
  NNLIB_CHECK_ARG(name != NULL, "nnlib_model_set_node_name: name is NULL");
  size_t index = 0;
  NNLIB_TRY(index_of(m, node, "nnlib_model_set_node_name", &index));
  return nnlib__model_set_name(m, index, name, strlen(name));
}

bool nnlib__model_is_chain(const nnlib_model *m) {
  if (m->branched || m->input_count != 1 || m->inputs[0] != 0)
    return false;
  return !m->output_set || m->output == m->node_count - 1;
}

const char *nnlib__node_label(const nnlib_model *m, size_t v, char *buf,
                              size_t size) {
  const nnlib__node *n = &m->nodes[v];
  const char *kind = n->layer != NULL ? n->layer->ops->name(n->layer) : "input";
  if (n->name != NULL)
    snprintf(buf, size, "node '%s' (%s)", n->name, kind);
  else if (n->layer == NULL)
    snprintf(buf, size, "input %lld", (long long)n->input_index);
  else if (nnlib__model_is_chain(m))
    snprintf(buf, size, "layer %lld (%s)", (long long)n->layer_index, kind);
  else
    snprintf(buf, size, "node %zu (%s)", v, kind);
  return buf;
}

/* ------------------------------------------------------------ getters */

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

size_t nnlib_model_get_input_count(const nnlib_model *m) {
  return m ? m->input_count : 0;
}

size_t nnlib_model_get_node_count(const nnlib_model *m) {
  return m ? m->node_count : 0;
}

nnlib_status nnlib_model_get_node(const nnlib_model *m, size_t index,
                                  nnlib_node_info *info) {
  NNLIB_CHECK_ARG(m != NULL && info != NULL,
                  "nnlib_model_get_node: model or info is NULL");
  if (index >= m->node_count)
    return nnlib__error(NNLIB_ERR_OUT_OF_RANGE,
                        "nnlib_model_get_node: node %zu requested, the model "
                        "has %zu",
                        index, m->node_count);
  const nnlib__node *n = &m->nodes[index];
  nnlib_node_info full;
  memset(&full, 0, sizeof full);
  full.struct_size = sizeof full;
  full.node = handle_of(m, index);
  full.name = n->name;
  full.layer = n->layer;
  full.layer_index = n->layer_index;
  full.input_index = n->input_index;
  full.input_count = n->input_count;
  full.inputs = n->handles;
  bool known = n->layer == NULL || m->compiled;
  full.rank = known ? n->shape.rank : 0;
  for (size_t i = 0; i < full.rank; i++)
    full.shape[i] = n->shape.dims[i];
  full.is_output = m->compiled || m->output_set
                       ? index == m->output
                       : index + 1 == m->node_count && n->layer != NULL;
  return nnlib__write_struct(info, &full, sizeof full, "nnlib_node_info");
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

nnlib_status nnlib_model_get_input_shape_at(const nnlib_model *m,
                                            size_t input, int64_t *dims,
                                            size_t capacity, size_t *rank) {
  NNLIB_TRY(nnlib__check_compiled(m, "nnlib_model_get_input_shape_at"));
  if (input >= m->input_count)
    return nnlib__error(NNLIB_ERR_OUT_OF_RANGE,
                        "nnlib_model_get_input_shape_at: input %zu requested, "
                        "the model has %zu",
                        input, m->input_count);
  return copy_shape(&m->nodes[m->inputs[input]].shape, dims, capacity, rank);
}

nnlib_status nnlib_model_get_input_dtype(const nnlib_model *m, size_t input,
                                         nnlib_dtype *dtype) {
  NNLIB_CHECK_ARG(dtype != NULL, "nnlib_model_get_input_dtype: dtype is NULL");
  NNLIB_TRY(nnlib__check_compiled(m, "nnlib_model_get_input_dtype"));
  if (input >= m->input_count)
    return nnlib__error(NNLIB_ERR_OUT_OF_RANGE,
                        "nnlib_model_get_input_dtype: input %zu requested, "
                        "the model has %zu",
                        input, m->input_count);
  *dtype = m->nodes[m->inputs[input]].holds_ids ? NNLIB_DTYPE_INT32
                                                : NNLIB_DTYPE_FLOAT32;
  return NNLIB_OK;
}

nnlib_status nnlib_model_get_output_shape(const nnlib_model *m, int64_t *dims,
                                          size_t capacity, size_t *rank) {
  NNLIB_TRY(nnlib__check_compiled(m, "nnlib_model_get_output_shape"));
  return copy_shape(&m->nodes[m->output].shape, dims, capacity, rank);
}
