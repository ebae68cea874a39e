/* import_integers.c - uint8 and int8 graph inputs.
 *
 * nnlib computes in float32 (and reads int32 token ids). Every uint8 and
 * int8 value is a float32 exactly, so such an input can be fed as floats
 * where ONNX's integer result is what float32 gives too. That holds for
 * operators that only select or move values: MaxPool (a maximum of the
 * input's values), Relu (max(x, 0)), Identity, Flatten and Reshape (the
 * same values), whose integer outputs are again read this way; a Cast to
 * float ends the chain (from there the graph is float). Arithmetic such as
 * Add or Mul wraps around in uint8 and int8, and is refused.
 *
 * So an integer graph input is read as a float input when every node the
 * chosen output needs that reads it, or reads an integer value made from
 * it by the operators above, is one of those operators reading it as its
 * data (input 0), or a Cast to float. A graph output among those values
 * comes back as floats holding the integers. Anything else is
 * NNLIB_ERR_UNSUPPORTED naming the input, its element type and the node. */
#include "onnx/import.h"

#include <stdio.h>

typedef nnlib__onnx_import imp;
typedef nnlib__onnx_node onode;

/* Operators whose integer result float32 computes exactly. */
static const char *const exact_ops[] = {"MaxPool", "Relu", "Identity",
                                        "Flatten", "Reshape"};

static bool exact(const onode *n) {
  for (size_t k = 0; k < sizeof exact_ops / sizeof exact_ops[0]; k++)
    if (nnlib__onnx_str_is(n->op_type, exact_ops[k]))
      return true;
  return false;
}

/* Whether n reads s; *elsewhere when at another input than the first. */
static bool reads(const onode *n, nnlib__onnx_str s, bool *elsewhere) {
  bool any = false;
  *elsewhere = false;
  for (size_t i = 0; i < n->input_count; i++)
    if (nnlib__onnx_same(n->inputs[i], s)) {
      any = true;
      *elsewhere |= i > 0;
    }
  return any;
}

static const char *type_name(int32_t elem_type) {
  return elem_type == NNLIB__ONNX_UINT8 ? "uint8" : "int8";
}

static nnlib_status refused(const imp *im, const nnlib__onnx_value_info *info,
                            size_t j, const char *why) {
  const onode *n = &im->onnx->graph.nodes[j];
  int nl = (int)(info->name.n > 60 ? 60 : info->name.n);
  return nnlib__error(
      NNLIB_ERR_UNSUPPORTED,
      "ONNX: graph input '%.*s' has element type %s: node %zu '%.*s' (%.*s) "
      "%s (an integer input is read as floats only where MaxPool, Relu, "
      "Identity, Flatten and Reshape move its values or a Cast to float "
      "reads them: float32 gives their integer results exactly)",
      nl, info->name.p, type_name(info->elem_type), j,
      (int)(n->name.n > 40 ? 40 : n->name.n), n->name.p,
      (int)(n->op_type.n > 40 ? 40 : n->op_type.n), n->op_type.p, why);
}

nnlib_status nnlib__onnx_check_integer_input(
    nnlib__onnx_import *im, const nnlib__onnx_value_info *info) {
  const nnlib__onnx_graph *g = &im->onnx->graph;
  /* the integer values, as the nodes that make them (SIZE_MAX: the input);
   * a node joins once, so the walk ends */
  size_t *queue = nnlib__onnx_arena(im, g->node_count + 1, sizeof *queue);
  bool *seen = nnlib__onnx_arena(im, g->node_count + 1, sizeof *seen);
  if (queue == NULL || seen == NULL)
    return NNLIB_ERR_OUT_OF_MEMORY;
  size_t head = 0, tail = 0;
  queue[tail++] = SIZE_MAX;
  while (head < tail) {
    size_t from = queue[head++];
    nnlib__onnx_str s =
        from == SIZE_MAX ? info->name : g->nodes[from].outputs[0];
    for (size_t j = 0; j < g->node_count; j++) {
      const onode *n = &g->nodes[j];
      bool elsewhere = false;
      if (im->done[j] || !reads(n, s, &elsewhere))
        continue;
      if (nnlib__onnx_str_is(n->op_type, "Cast")) {
        if (nnlib__onnx_attr_int(n, "to", 0) != NNLIB__ONNX_FLOAT)
          return refused(im, info, j, "casts it to another type than float");
        continue;
      }
      if (!exact(n))
        return refused(im, info, j, "computes with its values");
      if (elsewhere || n->output_count < 1 || n->outputs[0].n == 0)
        return refused(im, info, j, "reads it as another input than data");
      if (!seen[j]) {
        seen[j] = true;
        queue[tail++] = j;
      }
    }
  }
  return NNLIB_OK;
}
