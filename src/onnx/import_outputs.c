/* import_outputs.c - the edges of the imported graph: which graph output
 * the model computes (nnlib_onnx_options.output; an nnlib model has one
 * output), the nodes that output needs (the others are not mapped), and
 * which graph inputs are time-major sequences of layout-0 recurrent nodes
 * ([T, batch, F], made batch-first model inputs [batch, T, F]). */
#include "onnx/import.h"

#include <stdio.h>
#include <string.h>

/* "'a', 'b', 'c'" (cut short with "..." when it does not fit). */
static void list_outputs(const nnlib__onnx_graph *g, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (size_t k = 0; k < g->output_count && used + 1 < size; k++) {
    nnlib__onnx_str s = g->outputs[k].name;
    int w = snprintf(buf + used, size - used, "%s'%.*s'", k ? ", " : "",
                     (int)(s.n > 40 ? 40 : s.n), s.p);
    if (w < 0 || (size_t)w >= size - used) {
      snprintf(buf + (size > 4 ? size - 4 : 0), size > 4 ? 4 : size, "...");
      return;
    }
    used += (size_t)w;
  }
}

nnlib_status nnlib__onnx_choose_output(nnlib__onnx_import *im,
                                       const char *name) {
  const nnlib__onnx_graph *g = &im->onnx->graph;
  char names[240];
  if (g->output_count == 0)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "ONNX: the graph has no output");
  list_outputs(g, names, sizeof names);
  if (name == NULL) {
    if (g->output_count > 1)
      return nnlib__error(NNLIB_ERR_UNSUPPORTED,
                          "ONNX: the graph has %zu outputs (%s); an nnlib "
                          "model computes one: choose it with "
                          "nnlib_onnx_options.output",
                          g->output_count, names);
    im->output = 0;
    return NNLIB_OK;
  }
  for (size_t k = 0; k < g->output_count; k++)
    if (nnlib__onnx_str_is(g->outputs[k].name, name)) {
      im->output = k;
      return NNLIB_OK;
    }
  return nnlib__error(NNLIB_ERR_INVALID_ARGUMENT,
                      "nnlib_onnx_options: output '%.200s' is not an output "
                      "of the graph (%s)",
                      name, names);
}

/* ------------------------------------------------------------ pruning */

/* name -> the node making it, by open addressing (size a power of two) */
typedef struct producers {
  nnlib__onnx_str *names;
  size_t *nodes; /* node + 1; 0: empty */
  size_t size;
} producers;

static size_t producer_slot(const producers *p, nnlib__onnx_str s) {
  size_t k = (size_t)nnlib__onnx_hash(s) & (p->size - 1);
  while (p->nodes[k] != 0 && !nnlib__onnx_same(p->names[k], s))
    k = (k + 1) & (p->size - 1);
  return k;
}

static nnlib_status index_producers(nnlib__onnx_import *im, producers *p) {
  const nnlib__onnx_graph *g = &im->onnx->graph;
  size_t outputs = 0;
  for (size_t k = 0; k < g->node_count; k++)
    outputs += g->nodes[k].output_count;
  p->size = 16;
  while (p->size < 2 * outputs)
    p->size *= 2;
  p->names = nnlib__onnx_arena(im, p->size, sizeof *p->names);
  p->nodes = nnlib__onnx_arena(im, p->size, sizeof *p->nodes);
  if (p->names == NULL || p->nodes == NULL)
    return NNLIB_ERR_OUT_OF_MEMORY;
  for (size_t k = 0; k < g->node_count; k++)
    for (size_t o = 0; o < g->nodes[k].output_count; o++) {
      nnlib__onnx_str s = g->nodes[k].outputs[o];
      size_t slot = producer_slot(p, s);
      if (s.n == 0 || p->nodes[slot] != 0)
        continue; /* a name made twice is refused when it is defined */
      p->names[slot] = s;
      p->nodes[slot] = k + 1;
    }
  return NNLIB_OK;
}

/* From the chosen output back through the nodes that make what is read:
 * each node is expanded once, so the work list holds at most one entry
 * per node input, plus the output. */
nnlib_status nnlib__onnx_prune(nnlib__onnx_import *im) {
  const nnlib__onnx_graph *g = &im->onnx->graph;
  im->done = nnlib__onnx_arena(im, g->node_count, sizeof *im->done);
  if (im->done == NULL)
    return NNLIB_ERR_OUT_OF_MEMORY;
  producers p;
  NNLIB_TRY(index_producers(im, &p));
  size_t capacity = 1;
  for (size_t k = 0; k < g->node_count; k++)
    capacity += g->nodes[k].input_count;
  nnlib__onnx_str *work = nnlib__onnx_arena(im, capacity, sizeof *work);
  bool *needed = nnlib__onnx_arena(im, g->node_count, sizeof *needed);
  if (work == NULL || needed == NULL)
    return NNLIB_ERR_OUT_OF_MEMORY;
  size_t count = 0;
  work[count++] = g->outputs[im->output].name;
  while (count > 0) {
    nnlib__onnx_str s = work[--count];
    if (s.n == 0)
      continue;
    size_t node = p.nodes[producer_slot(&p, s)];
    if (node == 0 || needed[node - 1])
      continue; /* a graph input or initializer, or expanded already */
    needed[node - 1] = true;
    const nnlib__onnx_node *n = &g->nodes[node - 1];
    for (size_t i = 0; i < n->input_count; i++)
      work[count++] = n->inputs[i];
  }
  for (size_t k = 0; k < g->node_count; k++)
    im->done[k] = !needed[k];
  return NNLIB_OK;
}

/* ------------------------------------------------ time-major inputs */

static bool is_recurrent_op(const nnlib__onnx_node *n) {
  return nnlib__onnx_str_is(n->op_type, "LSTM") ||
         nnlib__onnx_str_is(n->op_type, "GRU") ||
         nnlib__onnx_str_is(n->op_type, "RNN");
}

bool nnlib__onnx_time_major_input(const nnlib__onnx_import *im,
                                  const nnlib__onnx_value_info *info) {
  const nnlib__onnx_graph *g = &im->onnx->graph;
  if (!info->has_shape || info->rank != 3)
    return false;
  size_t as_x = 0;
  for (size_t k = 0; k < g->node_count; k++) {
    const nnlib__onnx_node *n = &g->nodes[k];
    if (im->done[k] || !is_recurrent_op(n) || n->input_count == 0 ||
        !nnlib__onnx_same(n->inputs[0], info->name))
      continue;
    if (nnlib__onnx_attr_int(n, "layout", 0) != 0)
      return false;
    as_x++;
  }
  /* no other reader: every read of the name is such an X */
  return as_x > 0 && nnlib__onnx_readers(im, info->name, NULL) == as_x;
}
