/* import_gelu.c - the activation subgraphs: the GELU forms
 * torch.onnx.export writes (opset 17 has no Gelu operator) and nnlib's own
 * export writes, onto nnlib's gelu and gelu_tanh activations, and nnlib's
 * step activation.
 *
 * nn.GELU() (torch 1.13), x a graph tensor:
 *   d = x / 1.41421354 (or x * 0.707106769), e = Erf(d), a = e + 1,
 *   m = x * a, y = m * 0.5                        -> gelu(x)
 * nn.GELU(approximate='tanh'):
 *   s = x * x, c = x * s, k = 0.044715 * c, p = x + k,
 *   q = 0.797884583 * p, t = Tanh(q), u = 1 + t, v = x * u,
 *   y = 0.5 * v                                   -> gelu_tanh(x)
 * nnlib's export ends either form with h = x * 0.5, y = h * a (or h * u)
 * instead of the last two Muls (export_layers.c), and writes step as
 *   g = Greater(x, 0), y = Cast(g, to float)      -> step(x)
 * which means 1 where x > 0 and 0 elsewhere (NaN included), nnlib's step.
 * Either operand order of each Add and Mul is accepted. The match starts
 * at the first node (the only one that reads x alone), and every value
 * inside must have that one reader, so no node outside the pattern sees
 * an intermediate; the inner nodes are then marked done and y is defined
 * as the activation's output. Constants are float scalars within a
 * relative 1e-6 of the values above (torch writes them as float32); the
 * step's threshold is exactly 0. */
#include "onnx/import.h"

#include <math.h>
#include <string.h>

typedef nnlib__onnx_import imp;
typedef nnlib__onnx_node onode;
typedef nnlib__onnx_value oval;

#define SQRT2 1.41421356237309515
#define SQRT_2_OVER_PI 0.79788456080286541

static bool op_is(const onode *n, const char *op) {
  return nnlib__onnx_str_is(n->op_type, op) &&
         (n->domain.n == 0 || nnlib__onnx_str_is(n->domain, "ai.onnx")) &&
         n->output_count == 1 && n->outputs[0].n > 0;
}

static bool same_name(nnlib__onnx_str a, nnlib__onnx_str b) {
  return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static bool scalar_is(imp *im, nnlib__onnx_str s, double want) {
  oval *v = nnlib__onnx_find(im, s);
  return v != NULL && v->kind == NNLIB__VALUE_CONST &&
         v->dtype == NNLIB__ONNX_FLOAT && v->count == 1 &&
         fabs((double)v->f[0] - want) <= 1e-6 * fabs(want);
}

/* A binary node reading `name` and, as its other operand, `other` (a
 * name) or a scalar constant `value` (other NULL). */
static bool binary_of(imp *im, const onode *n, nnlib__onnx_str name,
                      const nnlib__onnx_str *other, double value) {
  if (n->input_count != 2)
    return false;
  for (int k = 0; k < 2; k++) {
    if (!same_name(n->inputs[k], name))
      continue;
    nnlib__onnx_str o = n->inputs[1 - k];
    if (other != NULL ? same_name(o, *other) : scalar_is(im, o, value))
      return true;
  }
  return false;
}

/* The one node that reads the output of n (not a graph output), or NULL. */
static const onode *only_reader(imp *im, const onode *n, size_t *index) {
  size_t first = SIZE_MAX;
  if (nnlib__onnx_readers(im, n->outputs[0], &first) != 1 ||
      first == SIZE_MAX || im->done[first])
    return NULL;
  *index = first;
  return &im->onnx->graph.nodes[first];
}

/* The node whose only reader is r and that makes r's operand other than
 * `name` as x * 0.5 (either order): nnlib's half of x. */
static bool half_x_of(imp *im, const onode *r, nnlib__onnx_str name,
                      nnlib__onnx_str x, size_t *index) {
  if (r->input_count != 2)
    return false;
  nnlib__onnx_str h = same_name(r->inputs[0], name) ? r->inputs[1]
                                                    : r->inputs[0];
  const nnlib__onnx_graph *g = &im->onnx->graph;
  if (nnlib__onnx_readers(im, h, NULL) != 1)
    return false;
  for (size_t j = 0; j < g->node_count; j++) {
    const onode *m = &g->nodes[j];
    if (op_is(m, "Mul") && same_name(m->outputs[0], h)) {
      *index = j;
      return !im->done[j] && binary_of(im, m, x, NULL, 0.5);
    }
  }
  return false;
}

/* Follows `count` steps from node k; each step names the op and whether
 * its other operand is x (OTHER_X), a scalar (OTHER_SCALAR), x * 0.5
 * (OTHER_HALF_X) or nothing (a unary op). chain[] receives the node
 * indices (a half of x's too); their number, 0 when the steps do not
 * follow. */
enum { OTHER_NONE, OTHER_X, OTHER_SCALAR, OTHER_HALF_X };
typedef struct step {
  const char *op;
  int other;
  double value;
} step;

static size_t follow(imp *im, size_t k, nnlib__onnx_str x, const step *steps,
                     size_t count, size_t *chain) {
  const onode *n = &im->onnx->graph.nodes[k];
  size_t used = 0;
  for (size_t s = 0; s < count; s++) {
    size_t next = 0;
    const onode *r = only_reader(im, n, &next);
    if (r == NULL || !op_is(r, steps[s].op))
      return 0;
    int other = steps[s].other;
    bool ok = other == OTHER_NONE
                  ? r->input_count == 1 && same_name(r->inputs[0],
                                                     n->outputs[0])
              : other == OTHER_X
                  ? binary_of(im, r, n->outputs[0], &x, 0.0)
              : other == OTHER_HALF_X
                  ? half_x_of(im, r, n->outputs[0], x, &chain[used++])
                  : binary_of(im, r, n->outputs[0], NULL, steps[s].value);
    if (!ok)
      return 0;
    chain[used++] = next;
    n = r;
  }
  return used;
}

/* Each form: the steps after the entry node up to 1 + phi, then torch's
 * ending (x times it, times 0.5) or nnlib's ((x * 0.5) times it). */
static const step erf_steps[] = {
    {"Erf", OTHER_NONE, 0.0},
    {"Add", OTHER_SCALAR, 1.0},
};
static const step tanh_steps[] = {
    {"Mul", OTHER_X, 0.0},
    {"Mul", OTHER_SCALAR, 0.044715},
    {"Add", OTHER_X, 0.0},
    {"Mul", OTHER_SCALAR, SQRT_2_OVER_PI},
    {"Tanh", OTHER_NONE, 0.0},
    {"Add", OTHER_SCALAR, 1.0},
};
static const step torch_end[] = {
    {"Mul", OTHER_X, 0.0},
    {"Mul", OTHER_SCALAR, 0.5},
};
static const step nnlib_end[] = {{"Mul", OTHER_HALF_X, 0.0}};
static const step step_steps[] = {{"Cast", OTHER_NONE, 0.0}};

enum { FORM_NONE, FORM_ERF, FORM_TANH, FORM_STEP };

/* Which form node n starts, with x's name. */
static int entry(imp *im, const onode *n, nnlib__onnx_str *x) {
  if (n->input_count != 2 || n->output_count != 1 || n->outputs[0].n == 0)
    return FORM_NONE;
  nnlib__onnx_str a = n->inputs[0], b = n->inputs[1];
  *x = a;
  if (op_is(n, "Div") && scalar_is(im, b, SQRT2))
    return FORM_ERF;
  if (op_is(n, "Mul") && same_name(a, b))
    return FORM_TANH;
  if (op_is(n, "Greater") && scalar_is(im, b, 0.0))
    return FORM_STEP;
  if (op_is(n, "Mul") && (scalar_is(im, b, 1.0 / SQRT2) ||
                          scalar_is(im, a, 1.0 / SQRT2))) {
    *x = scalar_is(im, b, 1.0 / SQRT2) ? a : b;
    return FORM_ERF;
  }
  return FORM_NONE;
}

/* The nodes after node k that make the form's output: chain[], their
 * number (0: not the form). */
static size_t chain_of(imp *im, size_t k, int form, nnlib__onnx_str x,
                       size_t *chain) {
  if (form == FORM_STEP) {
    if (follow(im, k, x, step_steps, 1, chain) == 0)
      return 0;
    const onode *cast = &im->onnx->graph.nodes[chain[0]];
    return nnlib__onnx_attr_int(cast, "to", 0) == NNLIB__ONNX_FLOAT ? 1 : 0;
  }
  const step *steps = form == FORM_ERF ? erf_steps : tanh_steps;
  size_t count = form == FORM_ERF ? sizeof erf_steps / sizeof erf_steps[0]
                                  : sizeof tanh_steps / sizeof tanh_steps[0];
  size_t used = follow(im, k, x, steps, count, chain);
  if (used == 0)
    return 0;
  size_t end = follow(im, chain[used - 1], x, torch_end, 2, chain + used);
  if (end == 0)
    end = follow(im, chain[used - 1], x, nnlib_end, 1, chain + used);
  return end == 0 ? 0 : used + end;
}

nnlib_status nnlib__onnx_match_gelu(nnlib__onnx_import *im, size_t k,
                                    bool *matched) {
  *matched = false;
  const onode *n = &im->onnx->graph.nodes[k];
  nnlib__onnx_str xname = {NULL, 0};
  int form = entry(im, n, &xname);
  if (form == FORM_NONE)
    return NNLIB_OK;
  oval *x = nnlib__onnx_find(im, xname);
  if (x == NULL || x->ids || x->batch_axis != 0 ||
      (x->kind != NNLIB__VALUE_NODE && x->kind != NNLIB__VALUE_MATMUL))
    return NNLIB_OK;
  size_t chain[10];
  size_t count = chain_of(im, k, form, xname, chain);
  if (count == 0)
    return NNLIB_OK;
  for (size_t s = 0; s < count; s++) { /* Erf's opset, for one */
    size_t saved = im->current;
    im->current = chain[s];
    nnlib_status st =
        nnlib__onnx_check_opset(im, &im->onnx->graph.nodes[chain[s]]);
    im->current = saved;
    NNLIB_TRY(st);
  }
  NNLIB_TRY(nnlib__onnx_materialize(im, x));
  const onode *last = &im->onnx->graph.nodes[chain[count - 1]];
  nnlib_activation kind = form == FORM_ERF    ? NNLIB_ACT_GELU
                          : form == FORM_TANH ? NNLIB_ACT_GELU_TANH
                                              : NNLIB_ACT_STEP;
  nnlib_layer *l = NULL;
  nnlib_status st = nnlib_activation_create(&l, kind, 0.0f);
  NNLIB_TRY(nnlib__onnx_apply_matched(im, l, st, x, last->outputs[0], chain,
                                      count));
  *matched = true;
  return NNLIB_OK;
}
