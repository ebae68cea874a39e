/* import_layernorm.c - layer normalisation over the last axis written in
 * primitive operators, onto nnlib's layernorm layer.
 *
 * torch.onnx.export of nn.LayerNorm at opsets 13 to 16 (torch 1.13; opset
 * 17 has the LayerNormalization operator, which import_ops.c maps), x a
 * graph tensor:
 *   m = ReduceMean(x, axes [-1]), d = Sub(x, m), p = Pow(d, 2),
 *   v = ReduceMean(p, axes [-1]), e = Add(v, eps), s = Sqrt(e),
 *   n = Div(d, s), y = Add(Mul(n, weight), bias)
 * LayerNormalization's function body (ONNX 1.12's `_expanded` node tests;
 * over the last axis, stash_type float):
 *   f = Flatten(x, axis -1) [rows, D], u = Cast(f, float),
 *   m = ReduceMean(u, axes [1]), q = ReduceMean(Mul(u, u), axes [1]),
 *   v = Sub(q, Mul(m, m)), s = Sqrt(Add(v, eps)), d = Sub(u, m),
 *   n = Cast(Div(d, s), float),
 *   y = Reshape(Add(Mul(n, Flatten(W, 0)), Flatten(B, 0)), Shape(x)),
 *   and the statistics Mean = Reshape(m, ...) and
 *   InvStdDev = Reshape(Reciprocal(s), ...).
 * Both are y = (x - mean) / sqrt(var + eps) * W + B over the last axis,
 * which nnlib's layernorm computes (its variance as the mean of squared
 * deviations; var = E[x^2] - E[x]^2 is the same number, less stable).
 *
 * Read with their variations: a square as Pow(t, 2) or Mul(t, t); the
 * variance either way; n as Div(d, s) or Mul(d, Reciprocal(s)); a Cast to
 * float after the Flatten and after n; either operand order of Add and
 * Mul; the scale Mul and the bias Add each optional. The match starts at
 * the input x (any node reading it that the pattern holds: the Flatten,
 * the ReduceMean, or the square of x) and requires: ReduceMean over the
 * last axis only with keepdims 1; the exponent exactly 2; eps a float
 * scalar > 0; W and B constants of D values (leading unit axes allowed);
 * the Flatten at the last axis and the Reshape back to x's own shape; and
 * no intermediate value read from outside the subgraph or a graph output.
 * Anything else is not the pattern: the nodes map one by one and are
 * refused (nnlib has no ReduceMean layer), naming the node.
 *
 * The statistics: the nodes the chosen graph output does not need start
 * done (import_outputs.c). The structure is matched through them, so that
 * when the chosen output is the mean m or Reciprocal(s) (the function
 * body's Mean and InvStdDev outputs), those values are defined as values
 * nnlib does not make, refused where they are read and named, as for
 * LayerNormalization's own Mean and InvStdDev (import_ops.c). Constants
 * are checked on the nodes that are needed. */
#include "onnx/import.h"

#include <math.h>
#include <string.h>

typedef nnlib__onnx_import imp;
typedef nnlib__onnx_node onode;
typedef nnlib__onnx_value oval;

#define LN_MAX_NODES 24
#define NONE SIZE_MAX

typedef struct ln_match {
  size_t nodes[LN_MAX_NODES]; /* claimed node indices */
  size_t count;
  nnlib__onnx_str x;    /* the graph tensor normalised */
  nnlib__onnx_str u;    /* what the reductions read: x, or its flatten */
  size_t rank;          /* u's full rank (2 for the flatten) */
  bool flat;
  nnlib__onnx_str mean, inv, end; /* inv: empty when no Reciprocal */
  int64_t d;            /* the normalised axis' length */
  oval *eps, *scale, *bias;
  size_t end_node;
} ln_match;

static const onode *node_at(const imp *im, size_t j) {
  return &im->onnx->graph.nodes[j];
}

static bool claimed(const ln_match *m, size_t j) {
  for (size_t k = 0; k < m->count; k++)
    if (m->nodes[k] == j)
      return true;
  return false;
}

static bool claim(ln_match *m, size_t j) {
  if (j == NONE || m->count == LN_MAX_NODES)
    return false;
  m->nodes[m->count++] = j;
  return true;
}

/* Whether node j is needed by the chosen output. The pattern's nodes all
 * come after x is made, and none is mapped before the match (their outputs
 * are not defined): done here means pruned. */
static bool needed(const imp *im, size_t j) { return !im->done[j]; }

/* Node j may join the pattern as `op`: default domain, one output, not yet
 * made (its output undefined), not claimed already. */
static bool candidate(imp *im, const ln_match *m, size_t j, const char *op) {
  const onode *n = node_at(im, j);
  return nnlib__onnx_str_is(n->op_type, op) &&
         (n->domain.n == 0 || nnlib__onnx_str_is(n->domain, "ai.onnx")) &&
         n->output_count == 1 && n->outputs[0].n > 0 &&
         nnlib__onnx_find(im, n->outputs[0]) == NULL && !claimed(m, j);
}

static nnlib__onnx_str out_of(const imp *im, size_t j) {
  return node_at(im, j)->outputs[0];
}

/* A candidate `op` node of one input, a. */
static size_t unary(imp *im, const ln_match *m, const char *op,
                    nnlib__onnx_str a) {
  const nnlib__onnx_graph *g = &im->onnx->graph;
  for (size_t j = 0; j < g->node_count; j++)
    if (candidate(im, m, j, op) && g->nodes[j].input_count == 1 &&
        nnlib__onnx_same(g->nodes[j].inputs[0], a))
      return j;
  return NONE;
}

/* A candidate `op` node reading (a, b), or (b, a) when `commute`. */
static size_t binary(imp *im, const ln_match *m, const char *op,
                     nnlib__onnx_str a, nnlib__onnx_str b, bool commute) {
  const nnlib__onnx_graph *g = &im->onnx->graph;
  for (size_t j = 0; j < g->node_count; j++) {
    const onode *n = &g->nodes[j];
    if (!candidate(im, m, j, op) || n->input_count != 2)
      continue;
    nnlib__onnx_str p = n->inputs[0], q = n->inputs[1];
    if ((nnlib__onnx_same(p, a) && nnlib__onnx_same(q, b)) ||
        (commute && nnlib__onnx_same(p, b) && nnlib__onnx_same(q, a)))
      return j;
  }
  return NONE;
}

/* The node that makes s, or NONE. */
static size_t producer(const imp *im, nnlib__onnx_str s) {
  const nnlib__onnx_graph *g = &im->onnx->graph;
  for (size_t j = 0; j < g->node_count; j++)
    for (size_t o = 0; o < g->nodes[j].output_count; o++)
      if (nnlib__onnx_same(g->nodes[j].outputs[o], s))
        return j;
  return NONE;
}

/* The constant named s, or NULL. A constant the walk has not reached yet
 * (the function body's Cast of epsilon, Flatten of W, Shape of x may
 * come after the pattern's first node) is folded now, as the walk would
 * fold it; `depth` bounds the chain followed back. */
static nnlib_status known_const(imp *im, nnlib__onnx_str s, int depth,
                                oval **out) {
  *out = NULL;
  oval *v = nnlib__onnx_find(im, s);
  if (v != NULL) {
    *out = v->kind == NNLIB__VALUE_CONST ? v : NULL;
    return NNLIB_OK;
  }
  size_t j = producer(im, s);
  if (j == NONE || im->done[j] || depth == 0)
    return NNLIB_OK;
  const onode *n = node_at(im, j);
  if (n->domain.n > 0 && !nnlib__onnx_str_is(n->domain, "ai.onnx"))
    return NNLIB_OK;
  bool shape = nnlib__onnx_str_is(n->op_type, "Shape"); /* of any tensor */
  for (size_t i = 0; i < n->input_count; i++) {
    oval *in = NULL;
    if (n->inputs[i].n == 0)
      continue;
    if (shape)
      in = nnlib__onnx_find(im, n->inputs[i]);
    else
      NNLIB_TRY(known_const(im, n->inputs[i], depth - 1, &in));
    if (in == NULL)
      return NNLIB_OK;
  }
  size_t saved = im->current;
  bool folded = false;
  im->current = j;
  nnlib_status st = nnlib__onnx_check_opset(im, n);
  if (st == NNLIB_OK)
    st = nnlib__onnx_fold_node(im, j, &folded);
  im->current = saved;
  NNLIB_TRY(st);
  if (folded) {
    im->done[j] = true;
    im->left--;
  }
  v = nnlib__onnx_find(im, s);
  *out = v != NULL && v->kind == NNLIB__VALUE_CONST ? v : NULL;
  return NNLIB_OK;
}

/* A float scalar constant (any rank of one element). */
static bool scalar(const oval *v, double *value) {
  if (v == NULL || v->count != 1 || nnlib__onnx_is_batch(v, 0))
    return false;
  *value = v->dtype == NNLIB__ONNX_FLOAT ? (double)v->f[0] : (double)v->i[0];
  return true;
}

/* A constant of the last axis' D values: float, leading unit axes. */
static bool per_feature(const oval *v, int64_t d) {
  if (v == NULL || v->dtype != NNLIB__ONNX_FLOAT || v->count != d ||
      v->rank == 0 || v->dims[v->rank - 1] != d)
    return false;
  return true;
}

/* The other operand of binary node j besides `name`. */
static nnlib__onnx_str other_operand(const imp *im, size_t j,
                                     nnlib__onnx_str name) {
  const onode *n = node_at(im, j);
  return nnlib__onnx_same(n->inputs[0], name) ? n->inputs[1] : n->inputs[0];
}

/* A candidate `op` node reading `a` (first, or either when `commute`) and
 * a second operand that is not `a`: its index, or NONE. */
static size_t with_other(imp *im, const ln_match *m, const char *op,
                         nnlib__onnx_str a, bool commute) {
  const nnlib__onnx_graph *g = &im->onnx->graph;
  for (size_t j = 0; j < g->node_count; j++) {
    const onode *n = &g->nodes[j];
    if (!candidate(im, m, j, op) || n->input_count != 2 ||
        nnlib__onnx_same(n->inputs[0], n->inputs[1]))
      continue;
    if (nnlib__onnx_same(n->inputs[0], a) ||
        (commute && nnlib__onnx_same(n->inputs[1], a)))
      return j;
  }
  return NONE;
}

/* t squared: Pow(t, 2) (the exponent checked where the node is needed or
 * known) or Mul(t, t). */
static nnlib_status square_of(imp *im, ln_match *m, nnlib__onnx_str t,
                              size_t *out) {
  *out = NONE;
  size_t j = binary(im, m, "Mul", t, t, false);
  if (j == NONE) {
    j = with_other(im, m, "Pow", t, false);
    if (j == NONE)
      return NNLIB_OK;
    oval *e = NULL;
    double two = 0.0;
    NNLIB_TRY(known_const(im, node_at(im, j)->inputs[1], 4, &e));
    if (e == NULL ? needed(im, j) : !scalar(e, &two) || two != 2.0)
      return NNLIB_OK;
  }
  *out = j;
  return NNLIB_OK;
}

/* ReduceMean(t) over the last axis only, keepdims 1. */
static size_t mean_of(imp *im, const ln_match *m, nnlib__onnx_str t) {
  size_t j = unary(im, m, "ReduceMean", t);
  if (j == NONE)
    return NONE;
  const onode *n = node_at(im, j);
  const nnlib__onnx_attr *axes = nnlib__onnx_find_attr(n, "axes");
  if (axes == NULL || axes->int_count != 1 || axes->list_overflow ||
      nnlib__onnx_attr_int(n, "keepdims", 1) != 1)
    return NONE;
  int64_t axis = axes->ints[0], rank = (int64_t)m->rank;
  return axis == -1 || axis == rank - 1 ? j : NONE;
}

/* t, or the output of the Cast to float that reads it (claimed). */
static nnlib__onnx_str through_cast(imp *im, ln_match *m, nnlib__onnx_str t) {
  size_t j = unary(im, m, "Cast", t);
  if (j == NONE ||
      nnlib__onnx_attr_int(node_at(im, j), "to", 0) != NNLIB__ONNX_FLOAT ||
      !claim(m, j))
    return t;
  return out_of(im, j);
}

/* The variance of u's last axis, either form; its node in *out. */
static nnlib_status variance(imp *im, ln_match *m, nnlib__onnx_str dev,
                             size_t *out) {
  size_t sq = NONE, at = m->count;
  *out = NONE;
  NNLIB_TRY(square_of(im, m, dev, &sq)); /* E[(u - m)^2] */
  if (sq != NONE && claim(m, sq)) {
    *out = mean_of(im, m, out_of(im, sq));
    return NNLIB_OK;
  }
  m->count = at;
  size_t sqx = NONE, sqm = NONE; /* E[u^2] - m^2 */
  NNLIB_TRY(square_of(im, m, m->u, &sqx));
  if (sqx == NONE || !claim(m, sqx))
    return NNLIB_OK;
  size_t msq = mean_of(im, m, out_of(im, sqx));
  if (msq == NONE || !claim(m, msq))
    return NNLIB_OK;
  NNLIB_TRY(square_of(im, m, m->mean, &sqm));
  if (sqm == NONE || !claim(m, sqm))
    return NNLIB_OK;
  *out = binary(im, m, "Sub", out_of(im, msq), out_of(im, sqm), false);
  return NNLIB_OK;
}

/* Whether e is an epsilon nnlib's layernorm takes: a float scalar > 0.
 * NULL (not a known constant) is not; scalar refuses it too, but is not
 * always followed by the analyzer. */
static bool valid_eps(const oval *e) {
  double eps = 0.0;
  return e != NULL && scalar(e, &eps) && e->dtype == NNLIB__ONNX_FLOAT &&
         eps > 0.0 && isfinite((float)eps);
}

/* eps: Add(var, eps), eps a scalar > 0 where the node is needed. */
static nnlib_status plus_eps(imp *im, ln_match *m, nnlib__onnx_str var,
                             size_t *out) {
  *out = with_other(im, m, "Add", var, true);
  if (*out == NONE)
    return NNLIB_OK;
  NNLIB_TRY(known_const(im, other_operand(im, *out, var), 4, &m->eps));
  if (needed(im, *out) && !valid_eps(m->eps))
    *out = NONE;
  return NNLIB_OK;
}

/* n = Div(d, s), or Mul(d, Reciprocal(s)); the Reciprocal (m->inv) is
 * also the function body's InvStdDev. */
static size_t normalized(imp *im, ln_match *m, nnlib__onnx_str dev,
                         nnlib__onnx_str std) {
  size_t r = unary(im, m, "Reciprocal", std);
  if (r != NONE && claim(m, r))
    m->inv = out_of(im, r);
  size_t j = binary(im, m, "Div", dev, std, false);
  if (j == NONE && r != NONE)
    j = binary(im, m, "Mul", dev, m->inv, true);
  return j;
}

/* The optional scale Mul and bias Add after n, whose constants must be
 * D values where the node is needed (else the pattern ends before). */
static nnlib_status affine(imp *im, ln_match *m, const char *op,
                           oval **out) {
  size_t j = with_other(im, m, op, m->end, true);
  if (j == NONE || (needed(im, m->end_node) && !needed(im, j)))
    return NNLIB_OK; /* y itself is what the output needs */
  oval *c = NULL;
  NNLIB_TRY(known_const(im, other_operand(im, j, m->end), 4, &c));
  if (needed(im, j) && !per_feature(c, m->d))
    return NNLIB_OK;
  if (claim(m, j)) {
    *out = c;
    m->end = out_of(im, j);
    m->end_node = j;
  }
  return NNLIB_OK;
}

/* The Reshape of the flattened result back to x's shape: [batch (from
 * Shape, or 0 or -1), x's sample dims]. */
static nnlib_status reshape_back(imp *im, ln_match *m, const oval *x,
                                 bool *ok) {
  *ok = false;
  size_t j = with_other(im, m, "Reshape", m->end, false);
  if (j == NONE || (needed(im, m->end_node) && !needed(im, j)))
    return NNLIB_OK;
  oval *s = NULL;
  NNLIB_TRY(known_const(im, node_at(im, j)->inputs[1], 4, &s));
  if (needed(im, j)) {
    if (s == NULL || s->dtype != NNLIB__ONNX_INT64 ||
        s->count != (int64_t)x->shape.rank + 1)
      return NNLIB_OK;
    int64_t lead = nnlib__onnx_is_batch(s, 0) ? -1 : s->i[0];
    if (!(lead == -1 ||
          (lead == 0 &&
           nnlib__onnx_attr_int(node_at(im, j), "allowzero", 0) == 0)))
      return NNLIB_OK;
    for (size_t k = 0; k < x->shape.rank; k++)
      if (nnlib__onnx_is_batch(s, (int64_t)k + 1) ||
          s->i[k + 1] != x->shape.dims[k])
        return NNLIB_OK;
  }
  if (claim(m, j)) {
    m->end = out_of(im, j);
    m->end_node = j;
    *ok = true;
  }
  return NNLIB_OK;
}

/* From u to the end of the pattern; *ok false when it is not there. */
static nnlib_status core(imp *im, ln_match *m, const oval *x, bool *ok) {
  *ok = false;
  size_t mean = mean_of(im, m, m->u);
  if (mean == NONE || !claim(m, mean))
    return NNLIB_OK;
  m->mean = out_of(im, mean);
  size_t dev = binary(im, m, "Sub", m->u, m->mean, false);
  if (dev == NONE || !claim(m, dev))
    return NNLIB_OK;
  size_t var = NONE, veps = NONE;
  NNLIB_TRY(variance(im, m, out_of(im, dev), &var));
  if (var == NONE || !claim(m, var))
    return NNLIB_OK;
  NNLIB_TRY(plus_eps(im, m, out_of(im, var), &veps));
  if (veps == NONE || !claim(m, veps))
    return NNLIB_OK;
  size_t std = unary(im, m, "Sqrt", out_of(im, veps));
  if (std == NONE || !claim(m, std))
    return NNLIB_OK;
  size_t norm = normalized(im, m, out_of(im, dev), out_of(im, std));
  if (norm == NONE || !claim(m, norm))
    return NNLIB_OK;
  m->end_node = norm;
  m->end = through_cast(im, m, out_of(im, norm));
  if (!nnlib__onnx_same(m->end, out_of(im, norm)))
    m->end_node = m->nodes[m->count - 1];
  NNLIB_TRY(affine(im, m, "Mul", &m->scale));
  NNLIB_TRY(affine(im, m, "Add", &m->bias));
  if (m->flat)
    return reshape_back(im, m, x, ok);
  *ok = true;
  return NNLIB_OK;
}

/* The pattern on x, with the Flatten (`flat`) or without. */
static nnlib_status try_form(imp *im, ln_match *m, const oval *x, bool flat,
                             bool *ok) {
  memset(m, 0, sizeof *m);
  m->x = x->name;
  m->u = x->name;
  m->flat = flat;
  m->rank = x->shape.rank + 1;
  m->d = x->shape.dims[x->shape.rank - 1];
  m->end_node = NONE;
  *ok = false;
  if (flat) {
    size_t f = unary(im, m, "Flatten", x->name);
    int64_t axis = f == NONE ? 0 : nnlib__onnx_attr_int(node_at(im, f),
                                                       "axis", 1);
    if (f == NONE || !(axis == -1 || axis == (int64_t)m->rank - 1) ||
        !claim(m, f))
      return NNLIB_OK;
    m->rank = 2;
    m->u = through_cast(im, m, out_of(im, f));
  }
  return core(im, m, x, ok);
}

/* ------------------------------------------------ what the match reads */

/* Input slots of needed pattern nodes that read s. */
static size_t inside_reads(const imp *im, const ln_match *m,
                           nnlib__onnx_str s) {
  size_t count = 0;
  for (size_t k = 0; k < m->count; k++) {
    const onode *n = node_at(im, m->nodes[k]);
    for (size_t i = 0; i < n->input_count && needed(im, m->nodes[k]); i++)
      count += nnlib__onnx_same(n->inputs[i], s);
  }
  return count;
}

/* Which values are read from outside: only the end (y) and the
 * statistics may be; *ok false when another is. */
static void outside_reads(const imp *im, const ln_match *m, bool *ok,
                          bool *mean_out, bool *inv_out) {
  *ok = true;
  *mean_out = *inv_out = false;
  for (size_t k = 0; k < m->count && *ok; k++) {
    if (!needed(im, m->nodes[k]) || m->nodes[k] == m->end_node)
      continue;
    nnlib__onnx_str s = out_of(im, m->nodes[k]);
    if (nnlib__onnx_readers(im, s, NULL) == inside_reads(im, m, s))
      continue;
    if (nnlib__onnx_same(s, m->mean))
      *mean_out = true;
    else if (m->inv.n > 0 && nnlib__onnx_same(s, m->inv))
      *inv_out = true;
    else
      *ok = false;
  }
}

/* A statistic nnlib's layernorm keeps inside, as a value refused where it
 * is read (the messages of import_ops.c's LayerNormalization). */
static nnlib_status define_statistic(imp *im, nnlib__onnx_str s,
                                     const char *what) {
  oval *v = NULL;
  NNLIB_TRY(nnlib__onnx_define(im, s, &v));
  v->kind = NNLIB__VALUE_UNUSABLE;
  v->unusable = what;
  return NNLIB_OK;
}

/* ------------------------------------------------------- the layer */

static nnlib_status make_layer(imp *im, const ln_match *m, oval *x) {
  NNLIB_TRY(nnlib__onnx_need_shape(im, x, "input X"));
  int64_t d = m->d;
  /* no bias and a scale of ones (or none): a layer without affine
   * parameters, as import_ops.c reads LayerNormalization */
  bool affine = m->bias != NULL;
  for (int64_t k = 0; k < d && !affine && m->scale != NULL; k++)
    affine = m->scale->f[k] != 1.0f;
  float *ones = NULL, *zeros = NULL;
  if (affine && (m->scale == NULL || m->bias == NULL)) {
    ones = nnlib__onnx_arena(im, (size_t)d, sizeof *ones);
    zeros = nnlib__onnx_arena(im, (size_t)d, sizeof *zeros);
    if (ones == NULL || zeros == NULL)
      return NNLIB_ERR_OUT_OF_MEMORY;
    for (int64_t k = 0; k < d; k++)
      ones[k] = 1.0f;
  }
  /* plus_eps checks eps only where its Add is needed: checked again, so
   * the layer is never made from a missing one (import.c refuses the
   * graphs, with an output named twice, where that Add was pruned) */
  if (!valid_eps(m->eps))
    return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE,
                                  "the layer normalisation's epsilon is not "
                                  "a constant float scalar > 0");
  nnlib_layer *l = NULL;
  nnlib_status st = nnlib_layernorm_create(&l, m->eps->f[0], affine);
  if (st != NNLIB_OK)
    return st; /* eps was checked: only OUT_OF_MEMORY */
  if (affine)
    st = nnlib__onnx_add_fill(im, l, false, 0,
                              m->scale ? m->scale->f : ones, d);
  if (affine && st == NNLIB_OK)
    st = nnlib__onnx_add_fill(im, l, false, 1,
                              m->bias ? m->bias->f : zeros, d);
  return nnlib__onnx_apply_matched(im, l, st, x, m->end, NULL, 0);
}

/* The opset of every needed node (ReduceMean, Sqrt, Pow, ...). */
static nnlib_status check_opsets(imp *im, const ln_match *m) {
  size_t saved = im->current;
  nnlib_status st = NNLIB_OK;
  for (size_t k = 0; k < m->count && st == NNLIB_OK; k++) {
    if (!needed(im, m->nodes[k]))
      continue;
    im->current = m->nodes[k];
    st = nnlib__onnx_check_opset(im, node_at(im, m->nodes[k]));
  }
  im->current = saved;
  return st;
}

static const char *const MEAN_TEXT =
    "LayerNormalization's Mean (nnlib's layernorm outputs only Y; its "
    "statistics stay inside)";
static const char *const INV_TEXT =
    "LayerNormalization's InvStdDev (nnlib's layernorm outputs only Y; its "
    "statistics stay inside)";

/* The matched subgraph made: the layer when y is needed, the statistics
 * read from outside as values refused there; the needed nodes done. */
static nnlib_status take(imp *im, const ln_match *m, oval *x, bool mean_out,
                         bool inv_out) {
  NNLIB_TRY(check_opsets(im, m));
  if (needed(im, m->end_node))
    NNLIB_TRY(make_layer(im, m, x));
  if (mean_out)
    NNLIB_TRY(define_statistic(im, m->mean, MEAN_TEXT));
  if (inv_out)
    NNLIB_TRY(define_statistic(im, m->inv, INV_TEXT));
  for (size_t k = 0; k < m->count; k++)
    if (needed(im, m->nodes[k])) {
      im->done[m->nodes[k]] = true;
      im->left--;
    }
  return NNLIB_OK;
}

/* Whether node k can start the pattern: it reads a float graph tensor x,
 * batch first, as a Flatten, a ReduceMean, or a square of x. */
static oval *entry(imp *im, const onode *n) {
  if (n->input_count < 1 ||
      !(nnlib__onnx_str_is(n->op_type, "Flatten") ||
        nnlib__onnx_str_is(n->op_type, "ReduceMean") ||
        nnlib__onnx_str_is(n->op_type, "Pow") ||
        (nnlib__onnx_str_is(n->op_type, "Mul") && n->input_count == 2 &&
         nnlib__onnx_same(n->inputs[0], n->inputs[1]))))
    return NULL;
  return nnlib__onnx_float_tensor(im, n->inputs[0]);
}

nnlib_status nnlib__onnx_match_layernorm(nnlib__onnx_import *im, size_t k,
                                         bool *matched) {
  *matched = false;
  oval *x = entry(im, node_at(im, k));
  if (x == NULL)
    return NNLIB_OK;
  ln_match m;
  bool ok = false, mean_out = false, inv_out = false;
  for (int flat = 1; flat >= 0; flat--) {
    NNLIB_TRY(try_form(im, &m, x, flat == 1, &ok));
    if (ok && claimed(&m, k))
      outside_reads(im, &m, &ok, &mean_out, &inv_out);
    if (ok && claimed(&m, k) &&
        (needed(im, m.end_node) || mean_out || inv_out))
      break;
    ok = false;
  }
  if (!ok)
    return NNLIB_OK;
  NNLIB_TRY(take(im, &m, x, mean_out, inv_out));
  *matched = true;
  return NNLIB_OK;
}
