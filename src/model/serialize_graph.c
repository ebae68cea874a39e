/* serialize_graph.c - the graph of a version-2 model file (section GRPH,
 * docs/FILE_FORMAT.md). The loader parses and checks it before anything is
 * built (references in range and to earlier nodes only, which excludes
 * cycles; each layer used by one node; the output a layer node; every node
 * reaching the output; names valid and unique), plans the file's layers
 * over it in a dry run (input counts, shapes that chain), and only then
 * makes its nodes in a model through the internal graph API. */
#include "serialize_format.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t le32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

/* Node k of node v's inputs. */
static uint32_t input_of(const nnlib__file_node *n, uint32_t k) {
  return le32(n->inputs + 4 * (size_t)k);
}

static bool is_input(const nnlib__file_node *n) { return n->input_number >= 0; }

/* How messages name node v: `node 3 'skip' (add)` (the node's index, for
 * a file is read by index, then as nnlib__node_label); the name once it is
 * read and checked, the layer's kind once the layer is built (l), else
 * which input or layer the node is. Returns buf. */
static const char *node_label(const nnlib__file_graph *g, uint32_t v,
                              const nnlib_layer *l, char *buf, size_t size) {
  const nnlib__file_node *n = &g->nodes[v];
  nnlib__text t = {buf, size, 0};
  nnlib__text_append(&t, "node %u", v);
  if (n->name != NULL)
    nnlib__text_append(&t, " '%.*s'", (int)n->name_length,
                       (const char *)n->name);
  if (l != NULL)
    nnlib__text_append(&t, " (%s)", l->ops->name(l));
  else if (is_input(n))
    nnlib__text_append(&t, " (input %lld)", (long long)n->input_number);
  else
    nnlib__text_append(&t, " (layer %u)", n->layer);
  return buf;
}

#define LABEL_SIZE (NNLIB__LABEL_SIZE + 48)

/* ------------------------------------------------------------ parsing */

/* The nodes are read with r; the input shapes, which come before them,
 * with `shapes`, as their input nodes come. */
typedef struct graph_reader {
  nnlib__reader r, shapes;
  uint32_t inputs_seen, layers_seen, layer_count;
} graph_reader;

static nnlib_status no_trailing(const nnlib__reader *r) {
  if (r->left != 0)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: %zu trailing bytes in the %s", r->left,
                        r->what);
  return NNLIB_OK;
}

/* u32 input count, then each input's shape (checked, skipped: the input
 * nodes read them again) */
static nnlib_status skip_input_shapes(graph_reader *gr, nnlib__file_graph *g) {
  NNLIB_TRY(nnlib__file_input_count(&gr->r, &g->input_count));
  gr->shapes = gr->r;
  for (uint32_t k = 0; k < g->input_count; k++) {
    char what[32];
    nnlib__shape scratch;
    snprintf(what, sizeof what, "input %u", k);
    NNLIB_TRY(nnlib__file_input_shape(&gr->r, what, &scratch));
  }
  return NNLIB_OK;
}

/* Every input and every layer is one node; each node takes at least 8
 * bytes (a model input: kind and name length), which bounds what the
 * node arrays may cost before they are allocated. */
static nnlib_status check_node_count(const nnlib__file_graph *g,
                                     const graph_reader *gr) {
  uint32_t expected = g->input_count + gr->layer_count;
  if (g->node_count != expected)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: %u nodes, expected %u (%u inputs and "
                        "%u layers)",
                        g->node_count, expected, g->input_count,
                        gr->layer_count);
  if (g->node_count > gr->r.left / 8)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: %u nodes need at least %llu bytes, the "
                        "graph section has %zu left",
                        g->node_count, 8ull * g->node_count, gr->r.left);
  return NNLIB_OK;
}

/* The k-th input node in node order is model input k. */
static nnlib_status input_node(graph_reader *gr, nnlib__file_graph *g,
                               uint32_t v) {
  char what[32];
  if (gr->inputs_seen == g->input_count)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: node %u is a model input, the graph "
                        "declares %u inputs",
                        v, g->input_count);
  g->nodes[v].input_number = gr->inputs_seen;
  snprintf(what, sizeof what, "input %u", gr->inputs_seen);
  NNLIB_TRY(nnlib__file_input_shape(&gr->shapes, what, &g->shapes[v]));
  gr->inputs_seen++;
  return NNLIB_OK;
}

/* Layers are stored in the order of their nodes: the node's layer index
 * is the number of layer nodes before it, so every layer has one node. */
static nnlib_status check_layer_index(const graph_reader *gr,
                                      const nnlib__file_graph *g, uint32_t v) {
  uint32_t layer = g->nodes[v].layer;
  char label[LABEL_SIZE];
  node_label(g, v, NULL, label, sizeof label);
  if (layer == gr->layers_seen)
    return NNLIB_OK;
  if (layer >= gr->layer_count)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: %s: layer %u, the file has %u layers",
                        label, layer, gr->layer_count);
  for (uint32_t e = 0; layer < gr->layers_seen && e < v; e++)
    if (!is_input(&g->nodes[e]) && g->nodes[e].layer == layer)
      return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                          "model file: %s: node %u already uses layer %u (a "
                          "layer belongs to one node)",
                          label, e, layer);
  return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                      "model file: %s: layers are stored in the order of "
                      "their nodes, this node's is layer %u",
                      label, gr->layers_seen);
}

/* A node reads only nodes made before it: no cycle can form. */
static nnlib_status check_reference(const nnlib__file_graph *g, uint32_t v,
                                    uint32_t ref) {
  char label[LABEL_SIZE];
  if (ref < v)
    return NNLIB_OK;
  node_label(g, v, NULL, label, sizeof label);
  if (ref >= g->node_count)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: %s reads node %u, the graph has %u "
                        "nodes",
                        label, ref, g->node_count);
  if (ref == v)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: %s reads itself (a cycle)", label);
  return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                      "model file: %s reads node %u, which comes after it (a "
                      "cycle or a forward reference)",
                      label, ref);
}

/* u32 layer index, u32 input count k >= 1, k u32 node indices */
static nnlib_status layer_node(graph_reader *gr, nnlib__file_graph *g,
                               uint32_t v) {
  nnlib__file_node *n = &g->nodes[v];
  char label[LABEL_SIZE];
  n->input_number = -1;
  NNLIB_TRY(nnlib__get_u32(&gr->r, &n->layer));
  NNLIB_TRY(check_layer_index(gr, g, v));
  gr->layers_seen++;
  NNLIB_TRY(nnlib__get_u32(&gr->r, &n->input_count));
  node_label(g, v, NULL, label, sizeof label);
  if (n->input_count == 0)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: %s reads no node", label);
  if (n->input_count > gr->r.left / 4)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: %s reads %u nodes, the graph section "
                        "has %zu bytes left",
                        label, n->input_count, gr->r.left);
  n->inputs = gr->r.p;
  gr->r.p += 4 * (size_t)n->input_count;
  gr->r.left -= 4 * (size_t)n->input_count;
  for (uint32_t k = 0; k < n->input_count; k++)
    NNLIB_TRY(check_reference(g, v, input_of(n, k)));
  if (n->input_count > g->widest)
    g->widest = n->input_count;
  return NNLIB_OK;
}

/* 1..31 characters of [A-Za-z0-9_], the first not a digit (what
 * nnlib_model_set_node_name accepts) */
static bool valid_name(const unsigned char *p, uint32_t length) {
  if (length < 1 || length > NNLIB__FILE_MAX_NAME ||
      (p[0] >= '0' && p[0] <= '9'))
    return false;
  for (uint32_t i = 0; i < length; i++) {
    unsigned char c = p[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_'))
      return false;
  }
  return true;
}

/* u32 length (0: unnamed), then the name's bytes */
static nnlib_status node_name(nnlib__reader *r, nnlib__file_graph *g,
                              uint32_t v) {
  uint32_t length;
  char label[LABEL_SIZE];
  NNLIB_TRY(nnlib__get_u32(r, &length));
  if (length == 0)
    return NNLIB_OK;
  node_label(g, v, NULL, label, sizeof label);
  if (length > NNLIB__FILE_MAX_NAME)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: %s has a name of %u bytes, at most %u",
                        label, length, NNLIB__FILE_MAX_NAME);
  if (length > r->left)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: %s: its name of %u bytes runs past the "
                        "graph section",
                        label, length);
  if (!valid_name(r->p, length)) {
    char shown[NNLIB__FILE_MAX_NAME + 1];
    for (uint32_t i = 0; i < length; i++) /* printable ASCII, else '?' */
      shown[i] = (char)(r->p[i] >= 0x20 && r->p[i] < 0x7f ? r->p[i] : '?');
    shown[length] = '\0';
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: %s: name \"%s\" is not 1 to %u of "
                        "[A-Za-z0-9_] starting with a letter or '_'",
                        label, shown, NNLIB__FILE_MAX_NAME);
  }
  g->nodes[v].name = r->p;
  g->nodes[v].name_length = length;
  r->p += length;
  r->left -= length;
  return NNLIB_OK;
}

/* u32 kind, the kind's fields, the name */
static nnlib_status parse_node(graph_reader *gr, nnlib__file_graph *g,
                               uint32_t v) {
  uint32_t kind;
  NNLIB_TRY(nnlib__get_u32(&gr->r, &kind));
  if (kind == NNLIB__NODE_INPUT)
    NNLIB_TRY(input_node(gr, g, v));
  else if (kind == NNLIB__NODE_LAYER)
    NNLIB_TRY(layer_node(gr, g, v));
  else
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: node %u has kind %u, must be %u (a "
                        "model input) or %u (a layer)",
                        v, kind, NNLIB__NODE_INPUT, NNLIB__NODE_LAYER);
  return node_name(&gr->r, g, v);
}

/* ------------------------------------------------------ whole-graph rules */

static nnlib_status check_output(const nnlib__file_graph *g) {
  char label[LABEL_SIZE];
  if (g->output >= g->node_count)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: the output is node %u, the graph has %u "
                        "nodes",
                        g->output, g->node_count);
  if (is_input(&g->nodes[g->output]))
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: the output is %s, a model input; it "
                        "must be a layer node",
                        node_label(g, g->output, NULL, label, sizeof label));
  return NNLIB_OK;
}

/* Marks what the output depends on, walking back from it (inputs come
 * before their readers, so one backward sweep reaches everything), and
 * names the first node left unmarked. */
static nnlib_status check_reach(const nnlib__file_graph *g) {
  bool *reached = nnlib__calloc(g->node_count, sizeof *reached);
  if (reached == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "model file: no memory for a graph of %u nodes",
                        g->node_count);
  reached[g->output] = true;
  for (uint32_t v = g->output + 1; v-- > 0;)
    for (uint32_t k = 0; reached[v] && k < g->nodes[v].input_count; k++)
      reached[input_of(&g->nodes[v], k)] = true;
  uint32_t v = 0;
  while (v < g->node_count && reached[v])
    v++;
  nnlib__free(reached);
  if (v == g->node_count)
    return NNLIB_OK;
  char label[LABEL_SIZE];
  node_label(g, v, NULL, label, sizeof label);
  if (is_input(&g->nodes[v]))
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: %s is never used: the output, node %u, "
                        "does not depend on it",
                        label, g->output);
  return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                      "model file: %s does not reach the output, node %u",
                      label, g->output);
}

typedef struct named_node {
  const unsigned char *name;
  uint32_t length, node;
} named_node;

/* by name, then by node */
static int compare_names(const void *a, const void *b) {
  const named_node *x = a, *y = b;
  uint32_t common = x->length < y->length ? x->length : y->length;
  int c = memcmp(x->name, y->name, common);
  if (c != 0)
    return c;
  if (x->length != y->length)
    return x->length < y->length ? -1 : 1;
  return x->node < y->node ? -1 : x->node > y->node;
}

/* Names are unique: sorted, equal names are neighbours. */
static nnlib_status check_names(const nnlib__file_graph *g) {
  uint32_t count = 0;
  for (uint32_t v = 0; v < g->node_count; v++)
    count += g->nodes[v].name != NULL;
  if (count < 2)
    return NNLIB_OK;
  named_node *list = nnlib__alloc(count * sizeof *list);
  if (list == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "model file: no memory for %u node names", count);
  for (uint32_t v = 0, i = 0; v < g->node_count; v++)
    if (g->nodes[v].name != NULL)
      list[i++] = (named_node){g->nodes[v].name, g->nodes[v].name_length, v};
  qsort(list, count, sizeof *list, compare_names);
  nnlib_status st = NNLIB_OK;
  for (uint32_t i = 1; i < count && st == NNLIB_OK; i++)
    if (list[i].length == list[i - 1].length &&
        memcmp(list[i].name, list[i - 1].name, list[i].length) == 0) {
      char label[LABEL_SIZE];
      st = nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: %s: node %u has the same name (names "
                        "are unique)",
                        node_label(g, list[i].node, NULL, label, sizeof label),
                        list[i - 1].node);
    }
  nnlib__free(list);
  return st;
}

nnlib_status nnlib__file_graph_parse(const nnlib__file_view *view,
                                     const nnlib__file_head *head,
                                     nnlib__file_graph *g) {
  graph_reader gr = {{view->grph.payload, view->grph.length, "graph section"},
                     {NULL, 0, NULL}, 0, 0, head->layer_count};
  memset(g, 0, sizeof *g);
  NNLIB_TRY(skip_input_shapes(&gr, g));
  NNLIB_TRY(nnlib__get_u32(&gr.r, &g->node_count));
  NNLIB_TRY(check_node_count(g, &gr));
  g->nodes = nnlib__calloc(g->node_count, sizeof *g->nodes);
  g->shapes = nnlib__calloc(g->node_count, sizeof *g->shapes);
  if (g->nodes == NULL || g->shapes == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "model file: no memory for a graph of %u nodes",
                        g->node_count);
  for (uint32_t v = 0; v < g->node_count; v++)
    NNLIB_TRY(parse_node(&gr, g, v));
  NNLIB_TRY(nnlib__get_u32(&gr.r, &g->output));
  NNLIB_TRY(no_trailing(&gr.r));
  if (gr.inputs_seen != g->input_count) /* node count: then a layer is
                                           missing, caught above */
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: %u input nodes, the graph declares %u "
                        "inputs",
                        gr.inputs_seen, g->input_count);
  NNLIB_TRY(check_output(g));
  NNLIB_TRY(check_reach(g));
  return check_names(g);
}

void nnlib__file_graph_free(nnlib__file_graph *g) {
  nnlib__free(g->nodes);
  nnlib__free(g->shapes);
  g->nodes = NULL;
  g->shapes = NULL;
}

/* ---------------------------------------------------------- dry run */

/* A merge layer reads min_inputs or more nodes, any other exactly one. */
static nnlib_status check_input_count(const nnlib__file_graph *g, uint32_t v,
                                      const nnlib_layer *l,
                                      const char *label) {
  uint32_t count = g->nodes[v].input_count;
  if (nnlib__layer_is_merge(l) && count < nnlib__layer_min_inputs(l))
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: %s reads %u node%s, %s reads at least "
                        "%zu",
                        label, count, count == 1 ? "" : "s", l->ops->name(l),
                        nnlib__layer_min_inputs(l));
  if (!nnlib__layer_is_merge(l) && count != 1)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "model file: %s reads %u nodes, %s reads exactly one",
                        label, count, l->ops->name(l));
  return NNLIB_OK;
}

/* Plans node v's layer on its inputs' shapes (in: room for g->widest). A
 * file whose shapes do not chain is corrupt: compile would refuse it. */
static nnlib_status plan_node(nnlib__file_graph *g, uint32_t v,
                              nnlib_layer *l, nnlib__shape *in,
                              int64_t max_batch) {
  const nnlib__file_node *n = &g->nodes[v];
  char label[LABEL_SIZE];
  node_label(g, v, l, label, sizeof label);
  NNLIB_TRY(check_input_count(g, v, l, label));
  for (uint32_t k = 0; k < n->input_count; k++)
    in[k] = g->shapes[input_of(n, k)];
  nnlib_status st = nnlib__layer_plan_inputs(l, label, in, n->input_count,
                                             max_batch, "model file: ");
  if (st == NNLIB_ERR_SHAPE_MISMATCH || st == NNLIB_ERR_INVALID_ARGUMENT) {
    char detail[400];
    snprintf(detail, sizeof detail, "%s", nnlib_last_error_message());
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE, "%s", detail);
  }
  NNLIB_TRY(st);
  g->shapes[v] = l->out_shape;
  return NNLIB_OK;
}

/* What compile would allocate for activations and workspaces at the
 * maximum batch (every node's output counted, without the reuse liveness
 * planning finds: a bound), which the file does not bound. */
static nnlib_status check_plan_size(int64_t widths, int64_t work,
                                    int64_t max_batch) {
  int64_t floats;
  if (nnlib__mul_overflows(widths, max_batch, &floats) ||
      __builtin_add_overflow(floats, work, &floats) ||
      floats > NNLIB__FILE_MAX_PLAN_FLOATS)
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "model file: a batch of %lld would need more than "
                        "2^40 floats of activations",
                        (long long)max_batch);
  return NNLIB_OK;
}

nnlib_status nnlib__file_graph_plan(nnlib__file_graph *g,
                                    nnlib_layer *const *layers,
                                    int64_t max_batch) {
  nnlib__shape *in = nnlib__calloc(g->widest, sizeof *in);
  if (in == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "model file: no memory to plan the graph");
  nnlib_status st = NNLIB_OK;
  int64_t widths = 0, work = 0;
  for (uint32_t v = 0; v < g->node_count && st == NNLIB_OK; v++) {
    const nnlib__file_node *n = &g->nodes[v];
    const nnlib_layer *l = is_input(n) ? NULL : layers[n->layer];
    if (l != NULL)
      st = plan_node(g, v, layers[n->layer], in, max_batch);
    if (st == NNLIB_OK &&
        (__builtin_add_overflow(widths, nnlib__shape_numel(&g->shapes[v]),
                                &widths) ||
         __builtin_add_overflow(work,
                                l != NULL ? (int64_t)l->workspace_floats : 0,
                                &work)))
      st = nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "model file: layer sizes overflow");
  }
  nnlib__free(in);
  NNLIB_TRY(st);
  return check_plan_size(widths, work, max_batch);
}

/* ---------------------------------------------------------- building */

/* Node v in m: an input, or its layer (taken from layers[]) applied to its
 * inputs; then its name. */
static nnlib_status make_node(const nnlib__file_graph *g, uint32_t v,
                              nnlib_layer **layers, size_t *refs,
                              nnlib_model *m) {
  const nnlib__file_node *n = &g->nodes[v];
  size_t made = 0;
  if (is_input(n)) {
    NNLIB_TRY(nnlib__model_add_input(m, &g->shapes[v], &made));
  } else {
    nnlib_layer *l = layers[n->layer];
    layers[n->layer] = NULL; /* the model's now, also if apply fails */
    for (uint32_t k = 0; k < n->input_count; k++)
      refs[k] = input_of(n, k);
    NNLIB_TRY(nnlib__model_apply(m, l, refs, n->input_count, &made));
  }
  if (made != v)
    return nnlib__error(NNLIB_ERR_INTERNAL,
                        "model file: node %u was made as node %zu", v, made);
  if (n->name != NULL)
    NNLIB_TRY(nnlib__model_set_name(m, v, (const char *)n->name,
                                    n->name_length));
  return NNLIB_OK;
}

nnlib_status nnlib__file_graph_build(const nnlib__file_graph *g,
                                     nnlib_layer **layers, nnlib_model *m) {
  size_t *refs = nnlib__calloc(g->widest, sizeof *refs);
  if (refs == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "model file: no memory to build the graph");
  nnlib_status st = NNLIB_OK;
  for (uint32_t v = 0; v < g->node_count && st == NNLIB_OK; v++)
    st = make_node(g, v, layers, refs, m);
  nnlib__free(refs);
  NNLIB_TRY(st);
  return nnlib__model_set_output(m, g->output);
}
