/* import_softmax.c - Softmax's function body (ONNX 1.12's `_expanded`
 * node tests) onto nnlib's softmax activation.
 *
 * Over the last axis, x a graph tensor:
 *   m = ReduceMax(x, axes [-1], keepdims 1), d = Sub(x, m), e = Exp(d),
 *   s = ReduceSum(e, axes [-1], keepdims 1), y = Div(e, s)
 * which is exp(x - max) / sum(exp(x - max)) over the last axis: nnlib's
 * softmax (it subtracts the row's maximum too). ReduceSum's axes are an
 * int64 constant input from opset 13 on (the body's Constant node), an
 * attribute before; ReduceMax's are an attribute at every opset read.
 *
 * The match starts at the root, the ReduceMax reading x, and requires:
 * each reduction over the last axis only (-1 or rank - 1 of ONNX's full
 * rank) with keepdims 1 (and ReduceSum's noop_with_empty_axes 0); the
 * operand orders above (Sub and Div do not commute); and no intermediate
 * value read from outside the subgraph or a graph output: m, d and s have
 * one reader, e exactly the two above. Anything else is not the pattern:
 * the nodes map one by one and the ReduceMax is refused (nnlib has no
 * reduction layer), naming the node. The import_ops.c mapping of the
 * Softmax operator makes the same layer. */
#include "onnx/import.h"

typedef nnlib__onnx_import imp;
typedef nnlib__onnx_node onode;
typedef nnlib__onnx_value oval;

enum { SM_MAX, SM_SUB, SM_EXP, SM_SUM, SM_DIV, SM_NODES };

static const onode *node_at(const imp *im, size_t j) {
  return &im->onnx->graph.nodes[j];
}

/* Node j is `op` of the default domain with one named output, neither
 * done (mapped or pruned) nor made yet. */
static bool is_op(imp *im, size_t j, const char *op) {
  const onode *n = node_at(im, j);
  return !im->done[j] && nnlib__onnx_str_is(n->op_type, op) &&
         (n->domain.n == 0 || nnlib__onnx_str_is(n->domain, "ai.onnx")) &&
         n->output_count == 1 && n->outputs[0].n > 0 &&
         nnlib__onnx_find(im, n->outputs[0]) == NULL;
}

/* Whether `axis` is the last of a tensor of full rank `rank`. */
static bool last_axis(int64_t axis, size_t rank) {
  return axis == -1 || axis == (int64_t)rank - 1;
}

/* The axes attribute of n: exactly one, the last. */
static bool attr_last_axis(const onode *n, size_t rank) {
  const nnlib__onnx_attr *axes = nnlib__onnx_find_attr(n, "axes");
  return axes != NULL && axes->int_count == 1 && !axes->list_overflow &&
         last_axis(axes->ints[0], rank);
}

/* A reduction that keeps the reduced axis (keepdims, default 1). */
static bool keeps_dims(const onode *n) {
  return nnlib__onnx_attr_int(n, "keepdims", 1) == 1;
}

/* ReduceSum's axes: the attribute before opset 13, the constant input
 * from 13 on (one int64 value, the last axis; the empty-axes no-op off). */
static bool sum_last_axis(imp *im, const onode *n, size_t rank) {
  if (nnlib__onnx_opset(im) < 13)
    return n->input_count == 1 && attr_last_axis(n, rank);
  if (n->input_count != 2 || nnlib__onnx_find_attr(n, "axes") != NULL ||
      nnlib__onnx_attr_int(n, "noop_with_empty_axes", 0) != 0)
    return false;
  const oval *axes = nnlib__onnx_find(im, n->inputs[1]);
  return axes != NULL && axes->kind == NNLIB__VALUE_CONST &&
         axes->dtype == NNLIB__ONNX_INT64 && axes->count == 1 &&
         last_axis(axes->i[0], rank);
}

/* The only reader of node j's output (no graph output among them), or
 * SIZE_MAX. */
static size_t only_reader(const imp *im, size_t j) {
  size_t first = SIZE_MAX;
  if (nnlib__onnx_readers(im, node_at(im, j)->outputs[0], &first) != 1)
    return SIZE_MAX;
  return first;
}

/* Node r reads exactly (a, b), in this order. */
static bool reads(const onode *r, nnlib__onnx_str a, nnlib__onnx_str b) {
  return r->input_count == 2 && nnlib__onnx_same(r->inputs[0], a) &&
         nnlib__onnx_same(r->inputs[1], b);
}

/* From the ReduceMax (chain[SM_MAX]) through Sub and Exp: false when they
 * are not the pattern's. */
static bool max_sub_exp(imp *im, nnlib__onnx_str x, size_t rank,
                        size_t *chain) {
  const onode *max = node_at(im, chain[SM_MAX]);
  if (!is_op(im, chain[SM_MAX], "ReduceMax") || max->input_count != 1 ||
      !attr_last_axis(max, rank) || !keeps_dims(max))
    return false;
  chain[SM_SUB] = only_reader(im, chain[SM_MAX]);
  if (chain[SM_SUB] == SIZE_MAX || !is_op(im, chain[SM_SUB], "Sub") ||
      !reads(node_at(im, chain[SM_SUB]), x, max->outputs[0]))
    return false;
  chain[SM_EXP] = only_reader(im, chain[SM_SUB]);
  if (chain[SM_EXP] == SIZE_MAX || !is_op(im, chain[SM_EXP], "Exp"))
    return false;
  const onode *exp = node_at(im, chain[SM_EXP]);
  return exp->input_count == 1;
}

/* The ReduceSum and the Div after e = Exp(...): e read by exactly those
 * two, the sum only by the Div. */
static bool sum_div(imp *im, size_t rank, size_t *chain) {
  nnlib__onnx_str e = node_at(im, chain[SM_EXP])->outputs[0];
  if (nnlib__onnx_readers(im, e, NULL) != 2)
    return false;
  const nnlib__onnx_graph *g = &im->onnx->graph;
  chain[SM_SUM] = SIZE_MAX;
  for (size_t j = 0; j < g->node_count && chain[SM_SUM] == SIZE_MAX; j++)
    if (is_op(im, j, "ReduceSum") && g->nodes[j].input_count >= 1 &&
        nnlib__onnx_same(g->nodes[j].inputs[0], e))
      chain[SM_SUM] = j;
  if (chain[SM_SUM] == SIZE_MAX)
    return false;
  const onode *sum = node_at(im, chain[SM_SUM]);
  if (!sum_last_axis(im, sum, rank) || !keeps_dims(sum))
    return false;
  chain[SM_DIV] = only_reader(im, chain[SM_SUM]);
  return chain[SM_DIV] != SIZE_MAX && is_op(im, chain[SM_DIV], "Div") &&
         reads(node_at(im, chain[SM_DIV]), e, sum->outputs[0]);
}

/* The graph tensor x node k's ReduceMax reads, batch first, or NULL. */
static oval *root_input(imp *im, size_t k) {
  const onode *n = node_at(im, k);
  if (!nnlib__onnx_str_is(n->op_type, "ReduceMax") || n->input_count != 1)
    return NULL;
  return nnlib__onnx_float_tensor(im, n->inputs[0]);
}

/* The opset of each node (Exp before 6, for one). */
static nnlib_status check_opsets(imp *im, const size_t *chain) {
  size_t saved = im->current;
  nnlib_status st = NNLIB_OK;
  for (size_t s = 0; s < SM_NODES && st == NNLIB_OK; s++) {
    im->current = chain[s];
    st = nnlib__onnx_check_opset(im, node_at(im, chain[s]));
  }
  im->current = saved;
  return st;
}

nnlib_status nnlib__onnx_match_softmax(nnlib__onnx_import *im, size_t k,
                                       bool *matched) {
  *matched = false;
  oval *x = root_input(im, k);
  if (x == NULL)
    return NNLIB_OK;
  size_t rank = x->shape.rank + (im->whole ? 0 : 1); /* ONNX's full rank */
  size_t chain[SM_NODES] = {k};
  if (!max_sub_exp(im, x->name, rank, chain) || !sum_div(im, rank, chain))
    return NNLIB_OK;
  NNLIB_TRY(check_opsets(im, chain));
  NNLIB_TRY(nnlib__onnx_need_shape(im, x, "input"));
  nnlib_layer *l = NULL;
  nnlib_status st = nnlib_activation_create(&l, NNLIB_ACT_SOFTMAX, 0.0f);
  NNLIB_TRY(nnlib__onnx_apply_matched(
      im, l, st, x, node_at(im, chain[SM_DIV])->outputs[0], chain, SM_NODES));
  *matched = true;
  return NNLIB_OK;
}
