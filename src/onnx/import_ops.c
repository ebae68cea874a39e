/* import_ops.c - ONNX operators onto nnlib layers. Each mapping checks the
 * attributes it understands, refuses the rest with NNLIB_ERR_UNSUPPORTED
 * naming the node, the op and the attribute or input, converts constant
 * weights into nnlib's (PyTorch's) layouts and records them to be copied
 * once the model is compiled. Per-sample shapes are ONNX's without the
 * batch axis; docs/ONNX.md lists what maps and what is refused. */
#include "onnx/import.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef nnlib__onnx_import imp;
typedef nnlib__onnx_node onode;
typedef nnlib__onnx_value oval;

/* ----------------------------------------------------------- helpers */

static nnlib_status refuse(imp *im, const char *fmt, const char *what) {
  return nnlib__onnx_node_error(im, NNLIB_ERR_UNSUPPORTED, fmt, what);
}

static bool is_graph(const oval *v) {
  return v != NULL &&
         (v->kind == NNLIB__VALUE_NODE || v->kind == NNLIB__VALUE_MATMUL ||
          v->kind == NNLIB__VALUE_RECURRENT);
}

/* Input k as a graph tensor (materialized). */
static nnlib_status graph_input(imp *im, const onode *n, size_t k,
                                oval **out) {
  oval *v = nnlib__onnx_input(im, n, k);
  if (v != NULL && (v->kind == NNLIB__VALUE_ZEROS ||
                    v->kind == NNLIB__VALUE_UNUSABLE))
    return nnlib__onnx_node_error(
        im, NNLIB_ERR_UNSUPPORTED,
        "input %zu is %s", k,
        v->kind == NNLIB__VALUE_ZEROS
            ? "zeros of a batch-sized shape (read only as a recurrent "
              "layer's initial state)"
            : v->unusable);
  /* v == NULL as is_graph says, spelled out for the analyzer */
  if (v == NULL || !is_graph(v))
    return nnlib__onnx_node_error(
        im, v == NULL ? NNLIB_ERR_CORRUPT_FILE : NNLIB_ERR_UNSUPPORTED,
        "input %zu must be a tensor computed from the graph's inputs%s", k,
        v == NULL ? " (it is missing)" : " (it is a constant)");
  if (v->ids)
    return nnlib__onnx_node_error(im, NNLIB_ERR_UNSUPPORTED,
                                  "input %zu holds int64 token ids, which only "
                                  "an embedding (Gather) reads",
                                  k);
  NNLIB_TRY(nnlib__onnx_materialize(im, v));
  if (v->batch_axis != 0)
    return nnlib__onnx_node_error(im, NNLIB_ERR_UNSUPPORTED,
                                  "input %zu has the batch at axis %zu (a "
                                  "time-major view that only a recurrent "
                                  "operator, a Transpose or a Squeeze reads)",
                                  k, v->batch_axis);
  *out = v;
  return NNLIB_OK;
}

/* Input k as a graph tensor that may be a time-major view or a recurrent
 * output not yet made into its layer (Transpose, Squeeze, Identity). */
static nnlib_status view_input(imp *im, const onode *n, size_t k,
                               oval **out) {
  oval *v = nnlib__onnx_input(im, n, k);
  if (v != NULL && v->kind == NNLIB__VALUE_RECURRENT) {
    *out = v;
    return NNLIB_OK;
  }
  if (v != NULL && v->kind == NNLIB__VALUE_NODE && !v->ids) {
    *out = v;
    return NNLIB_OK;
  }
  return graph_input(im, n, k, out);
}

/* Input k as a float constant of `rank` dims (rank 0: any). */
static nnlib_status const_input(imp *im, const onode *n, size_t k,
                                const char *what, oval **out) {
  oval *v = nnlib__onnx_input(im, n, k);
  if (v == NULL)
    return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE,
                                  "input %zu (%s) is missing", k, what);
  if (v->kind != NNLIB__VALUE_CONST || v->dtype != NNLIB__ONNX_FLOAT)
    return nnlib__onnx_node_error(im, NNLIB_ERR_UNSUPPORTED,
                                  "input %zu (%s) must be a float initializer "
                                  "or constant (nnlib learns it as a "
                                  "parameter)",
                                  k, what);
  *out = v;
  return NNLIB_OK;
}

/* Defines output 0; other outputs must be absent (empty names). */
static nnlib_status output(imp *im, const onode *n, oval **out) {
  if (n->output_count < 1 || n->outputs[0].n == 0)
    return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE, "no output");
  for (size_t k = 1; k < n->output_count; k++)
    if (n->outputs[k].n > 0)
      return nnlib__onnx_node_error(im, NNLIB_ERR_UNSUPPORTED,
                                    "output %zu ('%.*s') is not made (only "
                                    "the first output maps)",
                                    k, (int)n->outputs[k].n, n->outputs[k].p);
  return nnlib__onnx_define(im, n->outputs[0], out);
}

static void alias(oval *out, const oval *x) {
  nnlib__onnx_str name = out->name;
  *out = *x;
  out->name = name;
}

static float *floats(imp *im, int64_t count) {
  return nnlib__onnx_arena(im, (size_t)count, sizeof(float));
}

static bool ints_attr(const onode *n, const char *name, size_t want,
                      int64_t *out, int64_t fallback) {
  const nnlib__onnx_attr *a = nnlib__onnx_find_attr(n, name);
  for (size_t k = 0; k < want; k++)
    out[k] = fallback;
  if (a == NULL)
    return true;
  if (a->list_overflow || a->int_count != want)
    return false;
  memcpy(out, a->ints, want * sizeof *out);
  return true;
}

/* Applies a one-input layer and gives out ONNX's shape `shape`. */
static nnlib_status apply1(imp *im, nnlib_layer *l, oval *x, oval *out,
                           const nnlib__shape *shape) {
  size_t in = x->node;
  NNLIB_TRY(nnlib__onnx_apply(im, l, &in, 1, out));
  if (shape != NULL)
    out->shape = *shape;
  return NNLIB_OK;
}

/* Node n's output made by layer l applied to x, once l's set-up `st`
 * (its weights filled, say) succeeded: l is freed on any failure before
 * the model takes it. */
static nnlib_status apply_made(imp *im, const onode *n, nnlib_layer *l,
                               oval *x, nnlib_status st,
                               const nnlib__shape *shape) {
  oval *out = NULL;
  if (st == NNLIB_OK)
    st = output(im, n, &out);
  if (st != NNLIB_OK) {
    nnlib_layer_free(l);
    return st;
  }
  return apply1(im, l, x, out, shape);
}

/* A constructor's INVALID_ARGUMENT is a value nnlib cannot take. */
static nnlib_status made(imp *im, nnlib_status st) {
  if (st == NNLIB_ERR_INVALID_ARGUMENT || st == NNLIB_ERR_TOO_LARGE) {
    char detail[300];
    snprintf(detail, sizeof detail, "%s", nnlib_last_error_message());
    return nnlib__onnx_node_error(im, NNLIB_ERR_UNSUPPORTED, "%s", detail);
  }
  return st;
}

/* How many of ONNX's leading axes are not in the sample: the batch, or
 * none in whole-sample mode. */
static size_t lead_axes(const imp *im) { return im->whole ? 0 : 1; }

/* Per-sample axis of an ONNX axis over the sample's rank plus the lead
 * axes; -1 for the batch, -2 outside the rank. */
static int64_t sample_axis(const imp *im, int64_t axis, size_t sample_rank) {
  int64_t lead = (int64_t)lead_axes(im), full = (int64_t)sample_rank + lead;
  if (axis < 0)
    axis += full;
  if (axis < 0 || axis >= full)
    return -2;
  return axis - lead;
}

/* Operators that read ONNX's axis 0 as the batch ([N, C, H, W], a
 * sequence's batch) have no form in whole-sample mode, where axis 0 is
 * part of the sample. */
static nnlib_status need_batch_axis(imp *im) {
  if (!im->whole)
    return NNLIB_OK;
  return refuse(im, "%s: whole-sample import makes ONNX's axis 0 part of "
                    "the sample, and this operator reads it as the batch "
                    "(import without whole_sample)",
                "input 0");
}

/* x with its sample's axes permuted by perm (whole-sample mode: ONNX's
 * axes are the sample's): a transpose layer's new node in *out. */
static nnlib_status transposed(imp *im, const oval *x, const int64_t *perm,
                               oval *out) {
  nnlib_layer *l = NULL;
  NNLIB_TRY(made(im, nnlib_transpose_create(&l, perm, x->shape.rank)));
  size_t in = x->node;
  *out = *x;
  return nnlib__onnx_apply(im, l, &in, 1, out);
}

/* ------------------------------------------------------ activations */

/* Softmax before opset 13 coerces its input to 2-D at `axis` (default 1):
 * [d0 ... d(a-1), da ... dn] -> [prod before, prod from a on], softmax
 * over the second. With a the last axis that is nnlib's last-axis
 * softmax over that axis alone; with a the first of the sample (all of
 * it) a flatten first gives it, and the output keeps ONNX's shape (the
 * same elements, relabelled). Another axis would need a reshape nnlib has
 * no layer for. */
static nnlib_status map_softmax_coerced(imp *im, const onode *n, oval *x) {
  int64_t given = nnlib__onnx_attr_int(n, "axis", 1);
  int64_t axis = sample_axis(im, given, x->shape.rank);
  if (axis != 0 && axis != (int64_t)x->shape.rank - 1)
    return nnlib__onnx_node_error(
        im, NNLIB_ERR_UNSUPPORTED,
        "axis %lld at opset %lld: Softmax before opset 13 runs over all "
        "axes from `axis` on, which nnlib has a layer for only when that is "
        "the last axis or the whole sample",
        (long long)given, (long long)nnlib__onnx_opset(im));
  nnlib__shape s = x->shape;
  oval flat;
  if (axis == 0 && s.rank > 1) { /* the whole sample: flatten first */
    flat = *x;
    flat.shape.rank = 1;
    flat.shape.dims[0] = nnlib__shape_numel(&x->shape);
    x = &flat;
  }
  NNLIB_TRY(nnlib__onnx_need_shape(im, x, "input"));
  oval *out = NULL;
  NNLIB_TRY(output(im, n, &out));
  nnlib_layer *l = NULL;
  NNLIB_TRY(made(im, nnlib_activation_create(&l, NNLIB_ACT_SOFTMAX, 0.0f)));
  return apply1(im, l, x, out, &s);
}

static nnlib_status map_activation(imp *im, const onode *n,
                                   nnlib_activation kind, float param) {
  oval *x = NULL, *out = NULL;
  NNLIB_TRY(graph_input(im, n, 0, &x));
  if (kind == NNLIB_ACT_SOFTMAX && nnlib__onnx_opset(im) < 13)
    return map_softmax_coerced(im, n, x);
  if (kind == NNLIB_ACT_SOFTMAX) {
    int64_t axis =
        sample_axis(im, nnlib__onnx_attr_int(n, "axis", -1), x->shape.rank);
    if (axis != (int64_t)x->shape.rank - 1)
      return nnlib__onnx_node_error(im, NNLIB_ERR_UNSUPPORTED,
                                    "axis %lld: nnlib's softmax runs over the "
                                    "last axis only",
                                    (long long)nnlib__onnx_attr_int(n, "axis",
                                                                    -1));
    NNLIB_TRY(nnlib__onnx_need_shape(im, x, "input"));
  }
  NNLIB_TRY(output(im, n, &out)); /* first: a failure then holds no layer */
  nnlib_layer *l = NULL;
  NNLIB_TRY(made(im, nnlib_activation_create(&l, kind, param)));
  nnlib__shape s = x->shape;
  return apply1(im, l, x, out, &s);
}

/* ----------------------------------------------------- dense, linear */

/* A graph tensor a layer over the last axis (linear, layernorm) reads: one
 * whose node ends in ONNX's last axis does, whatever the axes before it
 * (a Reshape merged some: the rows are the same), since such a layer
 * treats them all alike. Anything else as nnlib__onnx_need_shape. */
static nnlib_status need_last_axis(imp *im, oval *x, const char *what) {
  NNLIB_TRY(nnlib__onnx_materialize(im, x));
  const nnlib__shape *have = &im->model->nodes[x->node].shape;
  if (x->batch_axis == 0 && x->shape.rank > 1 && have->rank > 1 &&
      have->dims[have->rank - 1] == x->shape.dims[x->shape.rank - 1])
    return NNLIB_OK;
  return nnlib__onnx_need_shape(im, x, what);
}

/* A dense (rank-1 sample) or linear (last axis) layer with W [out, in]
 * and bias b (NULL: none). */
static nnlib_status dense_layer(imp *im, oval *x, const nnlib__shape *xs,
                                int64_t in, int64_t outf, float *w, float *b,
                                oval *out) {
  nnlib_layer *l = NULL;
  nnlib_status st = xs->rank > 1 ? nnlib_linear_create(&l, outf, b != NULL)
                                 : nnlib_dense_create(&l, in, outf, b != NULL);
  NNLIB_TRY(made(im, st));
  st = nnlib__onnx_add_fill(im, l, false, 0, w, in * outf);
  if (st == NNLIB_OK && b != NULL)
    st = nnlib__onnx_add_fill(im, l, false, 1, b, outf);
  if (st != NNLIB_OK) {
    nnlib_layer_free(l);
    return st;
  }
  nnlib__shape s = *xs;
  s.dims[s.rank - 1] = outf;
  return apply1(im, l, x, out, &s);
}

/* A constant fits as a bias of M values: one value, or M values along the
 * last axis with unit axes before it. */
static bool bias_fits(const oval *c, int64_t m) {
  return c->dtype == NNLIB__ONNX_FLOAT &&
         (c->count == 1 || (c->rank > 0 && c->dims[c->rank - 1] == m &&
                            c->count == m));
}

/* The bias beta c broadcast to M values (NULL: no memory). */
static float *bias_of(imp *im, const oval *c, int64_t m, float beta) {
  float *b = floats(im, m);
  if (b != NULL)
    for (int64_t k = 0; k < m; k++)
      b[k] = beta * (c->count == 1 ? c->f[0] : c->f[k]);
  return b;
}

/* A whole-sample Gemm's C that varies along M: [M, N] or [M, 1] (ONNX's
 * unidirectional broadcast to [M, N]), any axis of size 1 or the full
 * one. */
static bool matrix_bias_fits(const oval *c, int64_t rows, int64_t m) {
  if (c->dtype != NNLIB__ONNX_FLOAT || c->rank != 2)
    return false;
  return (c->dims[0] == 1 || c->dims[0] == rows) &&
         (c->dims[1] == 1 || c->dims[1] == m);
}

/* beta C broadcast to [rows, m] (NULL: no memory). */
static float *matrix_bias_of(imp *im, const oval *c, int64_t rows, int64_t m,
                             float beta) {
  float *t = floats(im, rows * m);
  if (t != NULL)
    for (int64_t i = 0; i < rows; i++)
      for (int64_t j = 0; j < m; j++)
        t[i * m + j] = beta * c->f[(c->dims[0] == 1 ? 0 : i) * c->dims[1] +
                                   (c->dims[1] == 1 ? 0 : j)];
  return t;
}

/* Gemm's C as a layer's bias (M values) or, in whole-sample mode, as a
 * table [rows, m] that varies along the rows. */
static nnlib_status gemm_bias(imp *im, const oval *c, int64_t rows, int64_t m,
                              float beta, float **bias, float **table) {
  *bias = *table = NULL;
  if (c == NULL)
    return NNLIB_OK;
  if (bias_fits(c, m))
    *bias = bias_of(im, c, m, beta);
  else if (im->whole && matrix_bias_fits(c, rows, m))
    *table = matrix_bias_of(im, c, rows, m, beta);
  else if (im->whole)
    return refuse(im, "%s does not broadcast to [M, N]", "input C");
  else
    return refuse(im, "%s varies along the batch axis (a per-row bias is "
                      "not a layer's parameter; whole_sample imports it)",
                  "input C");
  return *bias != NULL || *table != NULL ? NNLIB_OK : NNLIB_ERR_OUT_OF_MEMORY;
}

/* y = x + table over a [rows, m] sample: nnlib's positional layer, whose
 * y[t] = x[t] + W[t] with W the [rows, m] table is exactly that. */
static nnlib_status add_table(imp *im, oval *x, const float *table,
                              int64_t count) {
  nnlib_layer *l = NULL;
  NNLIB_TRY(made(im, nnlib_positional_create(&l, 0)));
  nnlib_status st = nnlib__onnx_add_fill(im, l, false, 0, table, count);
  if (st != NNLIB_OK) {
    nnlib_layer_free(l);
    return st;
  }
  nnlib__shape s = x->shape;
  return apply1(im, l, x, x, &s);
}

/* Gemm in whole-sample mode: A [M, K] is the sample (transA: [K, M], made
 * [M, K] by a transpose layer). M = 1 is a dense layer over the sample's
 * K values, M > 1 a linear layer over A's last axis; a bias varying along
 * M is added after it (add_table). The result is ONNX's [M, N]. */
static nnlib_status gemm_whole(imp *im, oval *a, bool ta, int64_t rows,
                               int64_t k, int64_t m, float *w, float *bias,
                               const float *table, oval *out) {
  static const int64_t swap[2] = {1, 0};
  nnlib__shape xs = {1, {k}}; /* M = 1: [1, K] and [K, 1] hold A in order */
  if (rows > 1) {
    xs = (nnlib__shape){2, {rows, k}};
    NNLIB_TRY(nnlib__onnx_need_shape(im, a, "input A"));
  }
  oval x = *a;
  if (ta && rows > 1)
    NNLIB_TRY(transposed(im, a, swap, &x));
  NNLIB_TRY(dense_layer(im, &x, &xs, k, m, w, bias, out));
  if (table != NULL)
    NNLIB_TRY(add_table(im, out, table, rows * m));
  out->shape = (nnlib__shape){2, {rows, m}};
  return NNLIB_OK;
}

/* Y = alpha op(A) op(B) + beta C with B and C constants: a dense layer of
 * weight alpha op(B)^T over A [batch, K] (whole-sample mode: gemm_whole). */
static nnlib_status map_gemm(imp *im, const onode *n) {
  oval *a = NULL, *b = NULL, *c = NULL, *out = NULL;
  NNLIB_TRY(graph_input(im, n, 0, &a));
  NNLIB_TRY(const_input(im, n, 1, "B", &b));
  if (nnlib__onnx_input(im, n, 2) != NULL)
    NNLIB_TRY(const_input(im, n, 2, "C", &c));
  bool ta = nnlib__onnx_attr_int(n, "transA", 0) != 0;
  if (ta && !im->whole)
    return refuse(im, "%s: transA = 1 would put the batch axis inside the "
                      "product (whole_sample imports it)",
                  "attribute transA");
  if (a->shape.rank != 2 - lead_axes(im) || b->rank != 2)
    return refuse(im, im->whole ? "%s: A and B must be matrices"
                                : "%s: A must be [batch, K] and B a matrix",
                  "input shapes");
  bool tb = nnlib__onnx_attr_int(n, "transB", 0) != 0;
  float alpha = nnlib__onnx_attr_float(n, "alpha", 1.0f);
  float beta = nnlib__onnx_attr_float(n, "beta", 1.0f);
  int64_t k = tb ? b->dims[1] : b->dims[0], m = tb ? b->dims[0] : b->dims[1];
  /* A's rows (1 per sample outside whole-sample mode) and columns */
  int64_t rows = !im->whole ? 1 : a->shape.dims[ta ? 1 : 0];
  int64_t ka = a->shape.dims[ta ? 0 : a->shape.rank - 1];
  if (k != ka || im->model->nodes[a->node].size != rows * k)
    return nnlib__onnx_node_error(im, NNLIB_ERR_SHAPE_MISMATCH,
                                  "A has %lld columns, B %lld rows",
                                  (long long)ka, (long long)k);
  float *w = floats(im, m * k); /* W [M, K] = alpha op(B)^T */
  if (w == NULL)
    return NNLIB_ERR_OUT_OF_MEMORY;
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < k; j++)
      w[i * k + j] = alpha * (tb ? b->f[i * k + j] : b->f[j * m + i]);
  float *bias = NULL, *table = NULL;
  NNLIB_TRY(gemm_bias(im, c, rows, m, beta, &bias, &table));
  NNLIB_TRY(output(im, n, &out));
  if (im->whole)
    return gemm_whole(im, a, ta, rows, k, m, w, bias, table, out);
  return dense_layer(im, a, &a->shape, k, m, w, bias, out);
}

static nnlib_status map_matmul(imp *im, const onode *n) {
  oval *a = NULL, *b = NULL, *out = NULL;
  NNLIB_TRY(graph_input(im, n, 0, &a));
  NNLIB_TRY(const_input(im, n, 1, "B", &b));
  if (b->rank != 2)
    return refuse(im, "%s must be a matrix (a batched product has no layer)",
                  "input B");
  int64_t k = b->dims[0], m = b->dims[1];
  if (a->shape.rank > 1)
    NNLIB_TRY(need_last_axis(im, a, "input A"));
  if (a->shape.dims[a->shape.rank - 1] != k ||
      (a->shape.rank == 1 && im->model->nodes[a->node].size != k))
    return nnlib__onnx_node_error(im, NNLIB_ERR_SHAPE_MISMATCH,
                                  "A's last axis is %lld, B has %lld rows",
                                  (long long)a->shape.dims[a->shape.rank - 1],
                                  (long long)k);
  float *w = floats(im, m * k);
  if (w == NULL)
    return NNLIB_ERR_OUT_OF_MEMORY;
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < k; j++)
      w[i * k + j] = b->f[j * m + i];
  NNLIB_TRY(output(im, n, &out));
  out->kind = NNLIB__VALUE_MATMUL;
  out->mm_input = a->node;
  out->mm_shape = a->shape;
  out->mm_weight = w;
  out->mm_in = k;
  out->mm_out = m;
  out->mm_onnx_node = im->current;
  out->shape = a->shape;
  out->shape.dims[out->shape.rank - 1] = m;
  return NNLIB_OK;
}

/* --------------------------------------------------------- elementwise */

/* A float constant of a [T, D] sample's shape (leading unit axes allowed)
 * added to a [T, D] graph tensor: learned positions, y[t] = x[t] + P[t]
 * (torch's nn.Parameter [T, D] added to an embedding's output). */
static bool positions_fit(const oval *x, const oval *c) {
  if (c->dtype != NNLIB__ONNX_FLOAT || x->ids || x->batch_axis != 0 ||
      x->shape.rank != 2 || c->rank < 2 ||
      (x->kind != NNLIB__VALUE_NODE && x->kind != NNLIB__VALUE_MATMUL))
    return false;
  for (size_t k = 0; k + 2 < c->rank; k++)
    if (c->dims[k] != 1)
      return false;
  return c->dims[c->rank - 2] == x->shape.dims[0] &&
         c->dims[c->rank - 1] == x->shape.dims[1];
}

/* nnlib's positional layer with T rows, the constant its weight. */
static nnlib_status map_positional(imp *im, const onode *n, size_t slot,
                                   const oval *c) {
  oval *x = NULL;
  NNLIB_TRY(graph_input(im, n, slot, &x));
  NNLIB_TRY(nnlib__onnx_need_shape(im, x, "input"));
  nnlib_layer *l = NULL;
  /* the constant holds T rows: max_positions 0, T at compile, is that */
  NNLIB_TRY(made(im, nnlib_positional_create(&l, 0)));
  nnlib_status st = nnlib__onnx_add_fill(im, l, false, 0, c->f, c->count);
  return apply_made(im, n, l, x, st, NULL);
}

static nnlib_status map_add_mul(imp *im, const onode *n, bool add) {
  oval *a = nnlib__onnx_input(im, n, 0), *b = nnlib__onnx_input(im, n, 1);
  oval *out = NULL;
  if (a == NULL || b == NULL)
    return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE,
                                  "needs two inputs");
  if (add && (a->kind == NNLIB__VALUE_CONST) != (b->kind == NNLIB__VALUE_CONST)) {
    oval *mm = a->kind == NNLIB__VALUE_CONST ? b : a;
    oval *c = a->kind == NNLIB__VALUE_CONST ? a : b;
    if (positions_fit(mm, c) &&
        (mm->kind != NNLIB__VALUE_MATMUL || !bias_fits(c, mm->mm_out)))
      return map_positional(im, n, a->kind == NNLIB__VALUE_CONST ? 1 : 0, c);
    if (mm->kind != NNLIB__VALUE_MATMUL || c->dtype != NNLIB__ONNX_FLOAT)
      return refuse(im, "%s: a constant added to a graph tensor maps only as "
                        "the bias right after a MatMul",
                    "inputs");
    if (!bias_fits(c, mm->mm_out))
      return refuse(im, "%s: the bias after MatMul must have the output's "
                        "last-axis size",
                    "constant input");
    float *bias = bias_of(im, c, mm->mm_out, 1.0f);
    if (bias == NULL)
      return NNLIB_ERR_OUT_OF_MEMORY;
    oval pending = *mm;
    NNLIB_TRY(output(im, n, &out));
    size_t saved = im->current;
    NNLIB_TRY(dense_layer(im, &(oval){.node = pending.mm_input},
                          &pending.mm_shape, pending.mm_in, pending.mm_out,
                          pending.mm_weight, bias, out));
    im->current = saved;
    return NNLIB_OK;
  }
  NNLIB_TRY(graph_input(im, n, 0, &a));
  NNLIB_TRY(graph_input(im, n, 1, &b));
  if (!nnlib__shape_equal(&a->shape, &b->shape))
    return refuse(im, "%s of different shapes (nnlib's merges do not "
                      "broadcast)",
                  "inputs");
  NNLIB_TRY(nnlib__onnx_need_shape(im, a, "input A"));
  NNLIB_TRY(nnlib__onnx_need_shape(im, b, "input B"));
  NNLIB_TRY(output(im, n, &out));
  nnlib_layer *l = NULL;
  NNLIB_TRY(made(im, add ? nnlib_add_create(&l) : nnlib_multiply_create(&l)));
  size_t in[2] = {a->node, b->node};
  return nnlib__onnx_apply(im, l, in, 2, out);
}

static nnlib_status map_concat(imp *im, const onode *n) {
  size_t in[NNLIB__MAX_INPUTS];
  if (n->input_count > NNLIB__MAX_INPUTS)
    return refuse(im, "%s: too many", "inputs");
  oval *first = NULL, *out;
  for (size_t k = 0; k < n->input_count; k++) {
    oval *v = NULL;
    NNLIB_TRY(graph_input(im, n, k, &v));
    NNLIB_TRY(nnlib__onnx_need_shape(im, v, "input"));
    in[k] = v->node;
    if (first == NULL)
      first = v;
  }
  if (first == NULL)
    return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE, "no inputs");
  int64_t axis =
      sample_axis(im, nnlib__onnx_attr_int(n, "axis", 0), first->shape.rank);
  if (axis < 0)
    return refuse(im, "%s: the batch axis (or none) cannot be joined",
                  "attribute axis");
  NNLIB_TRY(output(im, n, &out));
  if (n->input_count == 1) {
    alias(out, first);
    return NNLIB_OK;
  }
  nnlib_layer *l = NULL;
  NNLIB_TRY(made(im, nnlib_concat_create(&l, (int)axis)));
  return nnlib__onnx_apply(im, l, in, n->input_count, out);
}

/* --------------------------------------------------- shape-only ops */

/* Dropout: nnlib's dropout with its ratio (an input from opset 12, an
 * attribute before; 0.5 when absent), the identity in inference as ONNX's
 * is without training_mode. */
static nnlib_status map_dropout(imp *im, const onode *n) {
  oval *x = NULL, *out = NULL;
  NNLIB_TRY(graph_input(im, n, 0, &x));
  oval *t = nnlib__onnx_input(im, n, 2);
  if (t != NULL && (t->kind != NNLIB__VALUE_CONST || t->count != 1 ||
                    (t->dtype == NNLIB__ONNX_INT64 ? t->i[0] != 0
                                                   : t->f[0] != 0.0f)))
    return refuse(im, "%s: training mode is not imported (inference only)",
                  "input training_mode");
  float ratio = nnlib__onnx_attr_float(n, "ratio", 0.5f);
  oval *r = nnlib__onnx_opset(im) >= 12 ? nnlib__onnx_input(im, n, 1) : NULL;
  if (nnlib__onnx_opset(im) >= 12)
    ratio = 0.5f;
  if (r != NULL && (r->kind != NNLIB__VALUE_CONST ||
                    r->dtype != NNLIB__ONNX_FLOAT || r->count != 1))
    return refuse(im, "%s must be a float constant", "input ratio");
  if (r != NULL)
    ratio = r->f[0];
  NNLIB_TRY(output(im, n, &out));
  nnlib_layer *l = NULL;
  NNLIB_TRY(made(im, nnlib_dropout_create(&l, ratio)));
  nnlib__shape s = x->shape;
  return apply1(im, l, x, out, &s);
}

/* Cast of a (float) graph tensor to float: the same tensor. */
static nnlib_status map_cast(imp *im, const onode *n) {
  oval *x = NULL, *out = NULL;
  NNLIB_TRY(graph_input(im, n, 0, &x));
  if (nnlib__onnx_attr_int(n, "to", 0) != NNLIB__ONNX_FLOAT)
    return refuse(im, "%s: a graph tensor cast to another type than float",
                  "attribute to");
  NNLIB_TRY(output(im, n, &out));
  alias(out, x);
  return NNLIB_OK;
}

/* A new ONNX shape for the same elements: flattened when rank 1. */
static nnlib_status reshaped(imp *im, const onode *n, oval *x,
                             const int64_t *dims, size_t rank) {
  oval *out = NULL;
  if (rank < 1 || rank > NNLIB_MAX_RANK - 1)
    return refuse(im, "%s: a per-sample rank nnlib has no room for",
                  "the new shape");
  NNLIB_TRY(output(im, n, &out));
  alias(out, x);
  out->shape.rank = rank;
  memcpy(out->shape.dims, dims, rank * sizeof *dims);
  if (rank == 1)
    return nnlib__onnx_need_shape(im, out, "the result");
  return NNLIB_OK;
}

/* Flatten in whole-sample mode: ONNX's result at axis a is two axes, the
 * product of the dims before a and of those from a on: the same elements
 * in the same order. Unless the node already has that shape, nnlib's
 * flatten layer copies them into a node of [size] (a layer's, so that it
 * may be the graph output) which the result relabels. */
static nnlib_status flatten_whole(imp *im, const onode *n, oval *x,
                                  int64_t axis) {
  int64_t rank = (int64_t)x->shape.rank;
  if (axis < 0)
    axis += rank;
  if (axis < 0 || axis > rank)
    return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE,
                                  "axis %lld outside the input's rank %lld",
                                  (long long)axis, (long long)rank);
  nnlib__shape two = {2, {1, 1}};
  for (int64_t k = 0; k < rank; k++)
    two.dims[k < axis ? 0 : 1] *= x->shape.dims[k];
  oval *out = NULL;
  if (nnlib__shape_equal(&im->model->nodes[x->node].shape, &two)) {
    NNLIB_TRY(output(im, n, &out));
    alias(out, x);
    out->shape = two;
    return NNLIB_OK;
  }
  nnlib_layer *l = NULL;
  NNLIB_TRY(made(im, nnlib_flatten_create(&l)));
  return apply_made(im, n, l, x, NNLIB_OK, &two);
}

static nnlib_status map_flatten(imp *im, const onode *n) {
  oval *x = NULL;
  NNLIB_TRY(graph_input(im, n, 0, &x));
  int64_t given = nnlib__onnx_attr_int(n, "axis", 1);
  if (im->whole)
    return flatten_whole(im, n, x, given);
  if (sample_axis(im, given, x->shape.rank) != 0)
    return refuse(im, "%s: only axis 1 keeps the batch axis apart (any axis "
                      "maps with whole_sample)",
                  "attribute axis");
  int64_t size = nnlib__shape_numel(&x->shape);
  return reshaped(im, n, x, &size, 1);
}

/* Reshape's first value must keep the batch axis (0, -1 or the batch
 * size from Shape), and no other may be the batch. A value below -1 that
 * is not the batch size is no ONNX shape. */
static nnlib_status check_reshape_batch(imp *im, const onode *n,
                                        const oval *s) {
  bool infer = false, other_infer = false;
  for (int64_t k = 0; k < s->count; k++) {
    bool batch = nnlib__onnx_is_batch(s, k);
    if (!batch && s->i[k] < -1)
      return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE,
                                    "input shape: value %lld (ONNX allows "
                                    "no dim below -1)",
                                    (long long)s->i[k]);
    if (batch && k > 0)
      return refuse(im, "%s moves the batch axis", "input shape");
    if (!batch && s->i[k] == -1 && k == 0)
      infer = true;
    else if (!batch && s->i[k] == -1)
      other_infer = true;
  }
  bool zero = !nnlib__onnx_is_batch(s, 0) && s->i[0] == 0 &&
              nnlib__onnx_attr_int(n, "allowzero", 0) == 0;
  if (!(nnlib__onnx_is_batch(s, 0) || infer || zero) || (infer && other_infer))
    return refuse(im,
                  "%s: its first value must keep the batch axis (0, -1 "
                  "or the input's own batch size from Shape)",
                  "input shape");
  return NNLIB_OK;
}

/* A target [-1, d1 ...] asks ONNX to infer the batch from the element
 * count: valid ONNX, but unless d1 ... make exactly one sample the batch
 * size changes, which nnlib's batch-first layers cannot follow. Targets
 * that are malformed otherwise are left to nnlib__onnx_reshape_dims. */
static nnlib_status keeps_batch_size(imp *im, const onode *n, const oval *s,
                                     const oval *x) {
  if (nnlib__onnx_is_batch(s, 0) || s->i[0] != -1)
    return NNLIB_OK;
  bool allowzero = nnlib__onnx_attr_int(n, "allowzero", 0) != 0;
  int64_t per = 1, sample = nnlib__shape_numel(&x->shape);
  for (int64_t k = 1; k < s->count; k++) {
    int64_t d = s->i[k];
    if (d == 0 && !allowzero && k - 1 < (int64_t)x->shape.rank)
      d = x->shape.dims[k - 1];
    if (d < 0 || nnlib__mul_overflows(per, d, &per))
      return NNLIB_OK;
  }
  if (per == sample)
    return NNLIB_OK;
  return nnlib__onnx_node_error(
      im, NNLIB_ERR_UNSUPPORTED,
      "input shape: the reshape would change the batch size (a leading -1 "
      "with %lld values after it, where a sample holds %lld; nnlib keeps "
      "the batch)",
      (long long)per, (long long)sample);
}

/* The target shape's values after the lead axes (the batch's, or none in
 * whole-sample mode) are the sample's; ONNX's 0 copies the same axis of
 * the full shape, which is the sample's axis k - lead. */
static nnlib_status map_reshape(imp *im, const onode *n) {
  oval *x = NULL, *s = nnlib__onnx_input(im, n, 1);
  NNLIB_TRY(graph_input(im, n, 0, &x));
  int64_t lead = (int64_t)lead_axes(im);
  if (s == NULL || s->kind != NNLIB__VALUE_CONST ||
      s->dtype != NNLIB__ONNX_INT64 || s->rank != 1 || s->count < lead + 1 ||
      s->count > NNLIB__ONNX_MAX_RANK)
    return refuse(im, im->whole ? "%s must be a constant int64 list of 1 to 8 "
                                  "values"
                                : "%s must be a constant int64 list of 2 to 8 "
                                  "values (batch first)",
                  "input shape");
  if (!im->whole) {
    NNLIB_TRY(check_reshape_batch(im, n, s));
    NNLIB_TRY(keeps_batch_size(im, n, s, x));
  }
  int64_t in[NNLIB__ONNX_MAX_RANK], dims[NNLIB__ONNX_MAX_RANK];
  memcpy(in, x->shape.dims, x->shape.rank * sizeof *in);
  size_t rank = (size_t)(s->count - lead);
  NNLIB_TRY(nnlib__onnx_reshape_dims(im, n, in, x->shape.rank,
                                     nnlib__shape_numel(&x->shape),
                                     s->i + lead, rank, dims));
  return reshaped(im, n, x, dims, rank);
}

/* (Un)Squeeze of a graph tensor: ONNX's full shape is the sample's with
 * the batch at x->batch_axis (in whole-sample mode the sample's alone);
 * the batch axis itself cannot be squeezed, and where it lands gives the
 * result's batch_axis (a time-major view when it is not 0, as around
 * recurrent operators). */
static nnlib_status map_squeeze(imp *im, const onode *n, bool unsqueeze) {
  oval *x = NULL, *out = NULL;
  NNLIB_TRY(view_input(im, n, 0, &x));
  int64_t axes[NNLIB__ONNX_MAX_RANK], full[NNLIB__ONNX_MAX_RANK + 1];
  int64_t dims[2 * NNLIB__ONNX_MAX_RANK + 2];
  size_t naxes = 0, rank = 0, full_rank = nnlib__onnx_full_dims(im, x, full);
  NNLIB_TRY(nnlib__onnx_axes(im, n, axes, &naxes));
  size_t span = full_rank + (unsqueeze ? naxes : 0);
  for (size_t k = 0; k < naxes && !unsqueeze && !im->whole; k++)
    if (axes[k] == (int64_t)x->batch_axis ||
        axes[k] + (int64_t)span == (int64_t)x->batch_axis)
      return refuse(im, "%s: the batch axis cannot be squeezed",
                    "input axes");
  if (unsqueeze && naxes == 0)
    return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE, "no axes");
  /* the batch is a value no axis has (never 1: a bare Squeeze keeps it) */
  NNLIB_TRY(nnlib__onnx_squeeze_shape(im, unsqueeze, full, full_rank, axes,
                                      naxes, dims, &rank));
  size_t batch = 0, lead = lead_axes(im);
  while (batch < rank && dims[batch] != NNLIB__ONNX_BATCH)
    batch++;
  if ((batch == rank && !im->whole) || rank < lead + 1 ||
      rank - lead > NNLIB_MAX_RANK - 1)
    return refuse(im, "%s: a per-sample rank nnlib has no room for",
                  "the new shape");
  NNLIB_TRY(output(im, n, &out));
  alias(out, x);
  out->batch_axis = batch == rank ? 0 : batch;
  out->shape.rank = rank - lead;
  for (size_t k = 0, to = 0; k < rank; k++)
    if (k != batch)
      out->shape.dims[to++] = dims[k];
  if (out->batch_axis == 0 && out->shape.rank == 1 &&
      out->kind == NNLIB__VALUE_NODE)
    return nnlib__onnx_need_shape(im, out, "the result");
  return NNLIB_OK;
}

/* The first node axis of each of ONNX's axes of x, when each ONNX axis is
 * a run of consecutive node axes (a Reshape that merged axes, as torch's
 * flatten(2), leaves the node finer than ONNX's shape): first[k] ..
 * first[k + 1] - 1, first[rank] the node's rank. False when ONNX's shape
 * splits a node axis. */
static bool axis_runs(const nnlib__shape *node, const nnlib__shape *onnx,
                      size_t *first) {
  size_t a = 0;
  for (size_t k = 0; k < onnx->rank; k++) {
    first[k] = a;
    int64_t size = 1;
    while (a < node->rank && size < onnx->dims[k])
      size *= node->dims[a++];
    if (size != onnx->dims[k])
      return false;
  }
  first[onnx->rank] = node->rank; /* unit axes left over join the last */
  return true;
}

/* A per-sample permutation of ONNX's axes of x (not the identity) as a
 * transpose layer over the node's axes, each ONNX axis moving as its run
 * of node axes; the result has ONNX's permuted shape. */
static nnlib_status transpose_layer(imp *im, const onode *n,
                                    const int64_t *perm) {
  oval *x = NULL, *out = NULL;
  NNLIB_TRY(graph_input(im, n, 0, &x));
  const nnlib__shape *node = &im->model->nodes[x->node].shape;
  size_t first[NNLIB_MAX_RANK + 1], r = x->shape.rank, k = 0;
  if (!axis_runs(node, &x->shape, first))
    return nnlib__onnx_need_shape(im, x, "input data"); /* refused */
  int64_t node_perm[NNLIB_MAX_RANK];
  nnlib__shape s = {.rank = r};
  for (size_t i = 0; i < r; i++) {
    size_t from = (size_t)perm[i];
    s.dims[i] = x->shape.dims[from];
    for (size_t a = first[from]; a < first[from + 1]; a++)
      node_perm[k++] = (int64_t)a;
  }
  NNLIB_TRY(output(im, n, &out));
  nnlib_layer *l = NULL;
  NNLIB_TRY(made(im, nnlib_transpose_create(&l, node_perm, k)));
  return apply1(im, l, x, out, &s);
}

/* Transpose's perm over the full rank (its default reverses the axes):
 * CORRUPT_FILE when it is not a permutation. */
static nnlib_status perm_of(imp *im, const onode *n, size_t full_rank,
                            int64_t *perm) {
  const nnlib__onnx_attr *p = nnlib__onnx_find_attr(n, "perm");
  bool seen[NNLIB__ONNX_MAX_RANK + 1] = {false};
  if (p != NULL && (p->list_overflow || p->int_count != full_rank))
    return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE,
                                  "perm of another length than the rank");
  for (size_t k = 0; k < full_rank; k++) {
    perm[k] = p ? p->ints[k] : (int64_t)(full_rank - 1 - k);
    if (perm[k] < 0 || perm[k] >= (int64_t)full_rank || seen[perm[k]])
      return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE,
                                    "perm is not a permutation of 0 .. %zu",
                                    full_rank - 1);
    seen[perm[k]] = true;
  }
  return NNLIB_OK;
}

/* Transpose in whole-sample mode permutes the sample's own axes (ONNX's
 * full shape): nothing for the identity, else a transpose layer. */
static nnlib_status transpose_whole(imp *im, const onode *n, oval *x) {
  int64_t perm[NNLIB__ONNX_MAX_RANK + 1];
  NNLIB_TRY(perm_of(im, n, x->shape.rank, perm));
  bool identity = true;
  for (size_t k = 0; k < x->shape.rank; k++)
    identity &= perm[k] == (int64_t)k;
  if (!identity)
    return transpose_layer(im, n, perm);
  oval *out = NULL;
  NNLIB_TRY(output(im, n, &out));
  alias(out, x);
  return NNLIB_OK;
}

/* A Transpose that keeps the batch axis first and moves others is a
 * transpose layer. One that moves only the batch axis (the other axes keep
 * their order) relabels the same elements: the result is x with the batch
 * at another axis (the time-major views around recurrent operators). Any
 * other permutation moves the batch axis among the others, which no layer
 * does. In whole-sample mode: transpose_whole. */
static nnlib_status map_transpose(imp *im, const onode *n) {
  oval *x = NULL, *out = NULL;
  NNLIB_TRY(view_input(im, n, 0, &x));
  if (im->whole)
    return transpose_whole(im, n, x);
  size_t full_rank = x->shape.rank + 1;
  int64_t perm[NNLIB__ONNX_MAX_RANK + 1], sample_perm[NNLIB_MAX_RANK];
  NNLIB_TRY(perm_of(im, n, full_rank, perm));
  size_t batch = 0;
  int64_t last = -1;
  bool order_kept = true;
  for (size_t k = 0; k < full_rank; k++) {
    if (perm[k] == (int64_t)x->batch_axis) {
      batch = k;
      continue;
    }
    order_kept &= perm[k] > last;
    last = perm[k];
  }
  if (x->batch_axis == 0 && batch == 0 && !order_kept) {
    for (size_t k = 1; k < full_rank; k++)
      sample_perm[k - 1] = perm[k] - 1;
    return transpose_layer(im, n, sample_perm);
  }
  if (!order_kept && x->batch_axis != 0)
    return nnlib__onnx_node_error(
        im, NNLIB_ERR_UNSUPPORTED,
        "attribute perm: a time-major view (the batch at axis %zu) maps "
        "only through a permutation that moves the batch axis alone",
        x->batch_axis);
  if (!order_kept)
    return refuse(im, "%s moves the batch axis and reorders the others "
                      "(nnlib's transpose keeps the batch axis first; a "
                      "permutation that moves the batch axis alone makes a "
                      "time-major view)",
                  "attribute perm");
  NNLIB_TRY(output(im, n, &out));
  alias(out, x);
  out->batch_axis = batch;
  return NNLIB_OK;
}

/* --------------------------------------------------------- conv, pool */

typedef struct window {
  int64_t kernel[2], stride[2], dilation[2];
  int64_t pad[2], pad_end[2]; /* [height, width] at the start and end */
} window;

/* auto_pad SAME_UPPER / SAME_LOWER along one axis (opset 11's definition):
 * the output is ceil(in / stride) and the padding that needs, split with
 * the odd one at the end (UPPER) or the start (LOWER). Kernel, stride and
 * dilation are in 1 .. 2^31 - 1 (window_in_range): (outd - 1) s - in lies
 * in [-s, 0) and the dilated span below 2^62, so nothing overflows for
 * any in. */
static void same_padding(window *w, int d, int64_t in, bool lower) {
  int64_t k = w->kernel[d], s = w->stride[d];
  int64_t outd = in / s + (in % s != 0);
  int64_t total = (outd - 1) * s - in + (k - 1) * w->dilation[d] + 1;
  if (total < 0)
    total = 0;
  w->pad[d] = lower ? total - total / 2 : total / 2;
  w->pad_end[d] = total - w->pad[d];
}

/* nnlib's windows are at most 2^31 - 1 along an axis (the layers' 32-bit
 * BLAS range); checked before same_padding computes with them. */
static nnlib_status window_in_range(imp *im, const window *w) {
  const char *names[3] = {"kernel_shape", "strides", "dilations"};
  const int64_t *values[3] = {w->kernel, w->stride, w->dilation};
  for (int a = 0; a < 3; a++)
    for (int d = 0; d < 2; d++)
      if (values[a][d] > NNLIB__BLAS_DIM_MAX)
        return nnlib__onnx_node_error(im, NNLIB_ERR_UNSUPPORTED,
                                      "attribute %s: %lld is above %lld, "
                                      "the largest window nnlib's layers "
                                      "take",
                                      names[a], (long long)values[a][d],
                                      (long long)NNLIB__BLAS_DIM_MAX);
  return NNLIB_OK;
}

/* kernel_shape, strides, dilations, and pads [top, left, bottom, right] or
 * auto_pad, into w. */
static nnlib_status window_of(imp *im, const onode *n, const oval *x,
                              window *w, bool have_kernel) {
  if (!have_kernel && !ints_attr(n, "kernel_shape", 2, w->kernel, 0))
    return refuse(im, "%s must hold 2 values (2-D windows only)",
                  "attribute kernel_shape");
  if (!have_kernel && nnlib__onnx_find_attr(n, "kernel_shape") == NULL)
    return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE,
                                  "no kernel_shape");
  int64_t pads[4];
  if (!ints_attr(n, "strides", 2, w->stride, 1) ||
      !ints_attr(n, "dilations", 2, w->dilation, 1) ||
      !ints_attr(n, "pads", 4, pads, 0))
    return refuse(im, "%s: strides, dilations or pads of another length than "
                      "2-D needs",
                  "attributes");
  const nnlib__onnx_attr *ap = nnlib__onnx_find_attr(n, "auto_pad");
  nnlib__onnx_str mode = ap ? ap->s : (nnlib__onnx_str){"NOTSET", 6};
  NNLIB_TRY(window_in_range(im, w));
  for (int d = 0; d < 2; d++) {
    int64_t in = x->shape.dims[1 + d];
    if (w->kernel[d] < 1 || w->stride[d] < 1 || w->dilation[d] < 1)
      return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE,
                                    "a kernel, stride or dilation below 1");
    if (nnlib__onnx_str_is(mode, "SAME_UPPER") ||
        nnlib__onnx_str_is(mode, "SAME_LOWER")) {
      same_padding(w, d, in, nnlib__onnx_str_is(mode, "SAME_LOWER"));
    } else if (nnlib__onnx_str_is(mode, "VALID")) {
      w->pad[d] = w->pad_end[d] = 0;
    } else if (nnlib__onnx_str_is(mode, "NOTSET")) {
      if (pads[d] < 0 || pads[d + 2] < 0)
        return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE,
                                      "negative pads");
      w->pad[d] = pads[d];
      w->pad_end[d] = pads[d + 2];
    } else {
      return refuse(im, "%s: an unknown value", "attribute auto_pad");
    }
  }
  return NNLIB_OK;
}

static nnlib_status map_conv(imp *im, const onode *n) {
  oval *x = NULL, *wt = NULL, *b = NULL;
  NNLIB_TRY(graph_input(im, n, 0, &x));
  NNLIB_TRY(need_batch_axis(im));
  NNLIB_TRY(const_input(im, n, 1, "W", &wt));
  if (nnlib__onnx_input(im, n, 2) != NULL)
    NNLIB_TRY(const_input(im, n, 2, "B", &b));
  if (x->shape.rank != 3 || wt->rank != 4)
    return refuse(im, "%s: 2-D convolutions of [batch, C, H, W] only",
                  "input shapes");
  NNLIB_TRY(nnlib__onnx_need_shape(im, x, "input X"));
  if (nnlib__onnx_attr_int(n, "group", 1) != 1)
    return refuse(im, "%s: grouped convolutions have no nnlib layer",
                  "attribute group");
  window w;
  w.kernel[0] = wt->dims[2];
  w.kernel[1] = wt->dims[3];
  int64_t ks[2];
  if (nnlib__onnx_find_attr(n, "kernel_shape") != NULL &&
      (!ints_attr(n, "kernel_shape", 2, ks, 0) || ks[0] != w.kernel[0] ||
       ks[1] != w.kernel[1]))
    return nnlib__onnx_node_error(im, NNLIB_ERR_SHAPE_MISMATCH,
                                  "kernel_shape differs from W's");
  NNLIB_TRY(window_of(im, n, x, &w, true));
  if (w.pad[0] != w.pad_end[0] || w.pad[1] != w.pad_end[1])
    return refuse(im, "%s: padding that differs between the start and the "
                      "end of an axis (nnlib's conv2d pads both sides "
                      "alike)",
                  nnlib__onnx_find_attr(n, "auto_pad") != NULL
                      ? "attribute auto_pad"
                      : "attribute pads");
  int64_t m = wt->dims[0], c = wt->dims[1];
  if (c != x->shape.dims[0])
    return nnlib__onnx_node_error(im, NNLIB_ERR_SHAPE_MISMATCH,
                                  "W has %lld input channels, X %lld",
                                  (long long)c, (long long)x->shape.dims[0]);
  if (b != NULL && b->count != m)
    return nnlib__onnx_node_error(im, NNLIB_ERR_SHAPE_MISMATCH,
                                  "B holds %lld values for %lld channels",
                                  (long long)b->count, (long long)m);
  nnlib_conv2d_options o;
  nnlib_conv2d_options_init(&o);
  o.in_channels = c;
  o.stride_h = w.stride[0], o.stride_w = w.stride[1];
  o.padding_h = w.pad[0], o.padding_w = w.pad[1];
  o.dilation_h = w.dilation[0], o.dilation_w = w.dilation[1];
  o.with_bias = b != NULL;
  nnlib_layer *l = NULL;
  NNLIB_TRY(made(im, nnlib_conv2d_create(&l, m, w.kernel[0], w.kernel[1], &o)));
  nnlib_status st = nnlib__onnx_add_fill(im, l, false, 0, wt->f, wt->count);
  if (st == NNLIB_OK && b != NULL)
    st = nnlib__onnx_add_fill(im, l, false, 1, b->f, m);
  return apply_made(im, n, l, x, st, NULL);
}

/* The pooling layer of `kind` with node n's window over x: pads begin and
 * end, auto_pad, dilations (MaxPool; AveragePool has none before opset
 * 19), ceil_mode (PyTorch's rule for the last window, which ONNX Runtime
 * follows), count_include_pad (AveragePool, default 0). */
static nnlib_status pool_layer(imp *im, const onode *n, oval *x,
                               nnlib_layer_kind kind, nnlib_layer **l) {
  NNLIB_TRY(need_batch_axis(im));
  if (x->shape.rank != 3)
    return refuse(im, "%s: 2-D pooling of [batch, C, H, W] only",
                  "input shape");
  NNLIB_TRY(nnlib__onnx_need_shape(im, x, "input X"));
  window w;
  NNLIB_TRY(window_of(im, n, x, &w, false));
  bool average = kind == NNLIB_LAYER_AVGPOOL2D;
  if (average && (w.dilation[0] != 1 || w.dilation[1] != 1))
    return refuse(im, "%s: a dilated average (opset 19) has no nnlib layer",
                  "attribute dilations");
  nnlib_pool2d_options o;
  nnlib_pool2d_options_init(&o);
  o.stride_h = w.stride[0], o.stride_w = w.stride[1];
  o.padding_h = w.pad[0], o.padding_w = w.pad[1];
  o.padding_bottom = w.pad_end[0], o.padding_right = w.pad_end[1];
  o.dilation_h = w.dilation[0], o.dilation_w = w.dilation[1];
  o.ceil_mode = nnlib__onnx_attr_int(n, "ceil_mode", 0) != 0;
  /* without padding the two divisors agree: keep the plain form */
  bool padded = w.pad[0] || w.pad[1] || w.pad_end[0] || w.pad_end[1];
  if (average && padded)
    o.count_include_pad = nnlib__onnx_attr_int(n, "count_include_pad", 0) != 0;
  return made(im, nnlib_pool2d_create(l, kind, w.kernel[0], w.kernel[1], &o));
}

static nnlib_status map_pool(imp *im, const onode *n, nnlib_layer_kind kind) {
  oval *x = NULL;
  NNLIB_TRY(graph_input(im, n, 0, &x));
  nnlib_layer *l = NULL;
  NNLIB_TRY(pool_layer(im, n, x, kind, &l));
  return apply_made(im, n, l, x, NNLIB_OK, NULL);
}

/* The node of type op that alone reads n's output, as its first input. */
static const onode *sole_reader(imp *im, const onode *n, const char *op,
                                size_t *index) {
  size_t first = SIZE_MAX;
  if (n->output_count < 1 || n->outputs[0].n == 0 ||
      nnlib__onnx_readers(im, n->outputs[0], &first) != 1 ||
      first == SIZE_MAX || im->done[first])
    return NULL;
  const onode *r = &im->onnx->graph.nodes[first];
  bool ok = nnlib__onnx_str_is(r->op_type, op) && r->input_count == 1 &&
            (r->domain.n == 0 || nnlib__onnx_str_is(r->domain, "ai.onnx")) &&
            r->inputs[0].n == n->outputs[0].n &&
            memcmp(r->inputs[0].p, n->outputs[0].p, n->outputs[0].n) == 0;
  *index = first;
  return ok ? r : NULL;
}

/* Neg -> MaxPool -> Neg, -max(-x), is nnlib's min pooling (its export
 * writes it so); padding never wins in either. The MaxPool and the second
 * Neg are taken with the first; a Neg of anything else has no layer. */
static nnlib_status map_neg(imp *im, const onode *n) {
  size_t pool_at = 0, neg_at = 0, saved = im->current;
  const onode *pool = sole_reader(im, n, "MaxPool", &pool_at);
  const onode *neg = pool ? sole_reader(im, pool, "Neg", &neg_at) : NULL;
  if (neg == NULL)
    return refuse(im, "%s: a negation maps only as Neg -> MaxPool -> Neg "
                      "(nnlib's min pooling)",
                  "operator Neg");
  oval *x = NULL, *out = NULL;
  NNLIB_TRY(graph_input(im, n, 0, &x));
  im->current = pool_at; /* messages name the MaxPool, then the Neg */
  NNLIB_TRY(nnlib__onnx_check_opset(im, pool));
  nnlib_layer *l = NULL;
  NNLIB_TRY(pool_layer(im, pool, x, NNLIB_LAYER_MINPOOL2D, &l));
  nnlib_status st = output(im, pool, &out); /* no Indices output */
  if (st == NNLIB_OK) {
    out->kind = NNLIB__VALUE_UNUSABLE; /* -max(-x): only the Neg reads it */
    im->current = neg_at;
    st = nnlib__onnx_check_opset(im, neg);
  }
  if (st == NNLIB_OK)
    st = output(im, neg, &out);
  if (st != NNLIB_OK) {
    nnlib_layer_free(l);
    return st;
  }
  NNLIB_TRY(apply1(im, l, x, out, NULL));
  im->done[pool_at] = im->done[neg_at] = true;
  im->left -= 2;
  im->current = saved;
  return NNLIB_OK;
}

static nnlib_status map_global_avgpool(imp *im, const onode *n) {
  oval *x = NULL;
  NNLIB_TRY(graph_input(im, n, 0, &x));
  NNLIB_TRY(need_batch_axis(im));
  if (x->shape.rank != 3)
    return refuse(im, "%s: [batch, C, H, W] only", "input shape");
  NNLIB_TRY(nnlib__onnx_need_shape(im, x, "input X"));
  nnlib_layer *l = NULL;
  NNLIB_TRY(made(im, nnlib_global_avgpool_create(&l)));
  nnlib__shape s = {3, {x->shape.dims[0], 1, 1}}; /* ONNX keeps 1x1 */
  return apply_made(im, n, l, x, NNLIB_OK, &s);
}

/* ------------------------------------------------------- normalisation */

/* ONNX: running = momentum running + (1 - momentum) batch; nnlib and
 * PyTorch weigh the batch by their momentum, 1 - ONNX's. In float32 1 - m
 * loses digits (0.9 gives 0.10000002): of the floats c with 1 - c = m,
 * the one of fewest significant digits (0.1), which is what nnlib's
 * export and torch's started from. */
static float batch_weight(float m) {
  double want = 1.0 - (double)m;
  if (!(want > 0.0 && want <= 1.0))
    return (float)want;
  int e = (int)floor(log10(want));
  for (int digits = 1; digits <= 9; digits++) {
    double scale = pow(10.0, digits - 1 - e);
    float c = (float)(nearbyint(want * scale) / scale);
    if (1.0f - c == m)
      return c;
  }
  return (float)want;
}

static nnlib_status map_batchnorm(imp *im, const onode *n) {
  oval *x, *p[4];
  const char *names[4] = {"scale", "B", "input_mean", "input_var"};
  NNLIB_TRY(graph_input(im, n, 0, &x));
  NNLIB_TRY(need_batch_axis(im));
  NNLIB_TRY(nnlib__onnx_need_shape(im, x, "input X"));
  if (nnlib__onnx_attr_int(n, "training_mode", 0) != 0)
    return refuse(im, "%s = 1: only inference-mode batch normalisation is "
                      "imported",
                  "attribute training_mode");
  int64_t c = x->shape.dims[0];
  for (int k = 0; k < 4; k++) {
    NNLIB_TRY(const_input(im, n, (size_t)k + 1, names[k], &p[k]));
    if (p[k]->count != c)
      return nnlib__onnx_node_error(im, NNLIB_ERR_SHAPE_MISMATCH,
                                    "%s holds %lld values for %lld channels",
                                    names[k], (long long)p[k]->count,
                                    (long long)c);
  }
  for (int64_t k = 0; k < c; k++)
    if (!(p[3]->f[k] >= 0.0f))
      return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE,
                                    "input_var[%lld] is negative or NaN",
                                    (long long)k);
  float mom = batch_weight(nnlib__onnx_attr_float(n, "momentum", 0.9f));
  if (!(mom >= 0.0f && mom <= 1.0f))
    mom = 0.1f; /* inference ignores it; keep the model trainable */
  nnlib_layer *l = NULL;
  NNLIB_TRY(made(im, nnlib_batchnorm_create(
                         &l, mom, nnlib__onnx_attr_float(n, "epsilon", 1e-5f))));
  nnlib_status st = NNLIB_OK;
  for (int k = 0; k < 4 && st == NNLIB_OK; k++)
    st = nnlib__onnx_add_fill(im, l, k >= 2, (size_t)(k % 2), p[k]->f, c);
  return apply_made(im, n, l, x, st, NULL);
}

/* Y, and the optional Mean and InvStdDev (the statistics ONNX keeps for
 * training), which nnlib's layernorm does not output: defined as values
 * refused where they are read or chosen as the graph output. */
static nnlib_status layernorm_outputs(imp *im, const onode *n, oval **out) {
  static const char *const what[3] = {
      NULL,
      "LayerNormalization's Mean (nnlib's layernorm outputs only Y; its "
      "statistics stay inside)",
      "LayerNormalization's InvStdDev (nnlib's layernorm outputs only Y; its "
      "statistics stay inside)"};
  if (n->output_count < 1 || n->outputs[0].n == 0)
    return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE, "no output Y");
  if (n->output_count > 3)
    return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE,
                                  "more than three outputs");
  for (size_t k = 1; k < n->output_count; k++) {
    oval *v = NULL;
    if (n->outputs[k].n == 0)
      continue;
    NNLIB_TRY(nnlib__onnx_define(im, n->outputs[k], &v));
    v->kind = NNLIB__VALUE_UNUSABLE;
    v->unusable = what[k];
  }
  return nnlib__onnx_define(im, n->outputs[0], out);
}

static nnlib_status map_layernorm(imp *im, const onode *n) {
  oval *x = NULL, *scale = NULL, *b = NULL, *out = NULL;
  NNLIB_TRY(graph_input(im, n, 0, &x));
  int64_t axis =
      sample_axis(im, nnlib__onnx_attr_int(n, "axis", -1), x->shape.rank);
  if (axis != (int64_t)x->shape.rank - 1)
    return refuse(im, "%s: nnlib normalises over the last axis only",
                  "attribute axis");
  NNLIB_TRY(need_last_axis(im, x, "input X"));
  NNLIB_TRY(const_input(im, n, 1, "Scale", &scale));
  if (nnlib__onnx_input(im, n, 2) != NULL)
    NNLIB_TRY(const_input(im, n, 2, "B", &b));
  int64_t d = x->shape.dims[x->shape.rank - 1];
  if (scale->count != d || (b != NULL && b->count != d))
    return nnlib__onnx_node_error(im, NNLIB_ERR_SHAPE_MISMATCH,
                                  "Scale or B do not hold %lld values",
                                  (long long)d);
  /* no bias and a scale of ones: a layer without affine parameters (as
   * nnlib exports one); else both, the bias zeros when there is none */
  bool affine = b != NULL;
  for (int64_t k = 0; k < d && !affine; k++)
    affine = scale->f[k] != 1.0f;
  float *bias = b != NULL ? b->f : floats(im, d);
  if (bias == NULL)
    return NNLIB_ERR_OUT_OF_MEMORY;
  nnlib_layer *l = NULL;
  NNLIB_TRY(made(im, nnlib_layernorm_create(
                         &l, nnlib__onnx_attr_float(n, "epsilon", 1e-5f),
                         affine)));
  nnlib_status st = NNLIB_OK;
  if (affine)
    st = nnlib__onnx_add_fill(im, l, false, 0, scale->f, d);
  if (affine && st == NNLIB_OK)
    st = nnlib__onnx_add_fill(im, l, false, 1, bias, d);
  if (st == NNLIB_OK)
    st = layernorm_outputs(im, n, &out);
  if (st != NNLIB_OK) {
    nnlib_layer_free(l);
    return st;
  }
  nnlib__shape same = x->shape; /* ONNX's, which the node may group */
  return apply1(im, l, x, out, &same);
}

/* Gather(table, ids) with the table constant and the ids a graph input of
 * int64 token ids: an embedding. */
static nnlib_status map_gather(imp *im, const onode *n) {
  oval *table = NULL, *ids = nnlib__onnx_input(im, n, 1), *out = NULL;
  oval *data = nnlib__onnx_input(im, n, 0);
  if (is_graph(data)) { /* the last step of a recurrent sequence */
    bool done = false;
    NNLIB_TRY(nnlib__onnx_gather_last_step(im, n, data, &done));
    if (done)
      return NNLIB_OK;
  }
  NNLIB_TRY(const_input(im, n, 0, "data", &table));
  if (ids == NULL || !ids->ids || im->model->nodes[ids->node].layer != NULL ||
      table->rank != 2 || nnlib__onnx_attr_int(n, "axis", 0) != 0)
    return refuse(im, "%s: only an embedding maps (a constant [V, D] table, "
                      "axis 0, indexed by an int64 graph input)",
                  "inputs");
  if (ids->shape.rank != 1)
    return refuse(im, im->whole ? "%s: token ids must be [T]"
                                : "%s: token ids must be [batch, T]",
                  "input indices");
  nnlib_layer *l = NULL;
  NNLIB_TRY(made(im, nnlib_embedding_create(&l, table->dims[0],
                                            table->dims[1])));
  nnlib_status st =
      nnlib__onnx_add_fill(im, l, false, 0, table->f, table->count);
  if (st == NNLIB_OK)
    st = output(im, n, &out);
  if (st != NNLIB_OK) {
    nnlib_layer_free(l);
    return st;
  }
  size_t in = ids->node;
  NNLIB_TRY(nnlib__onnx_apply(im, l, &in, 1, out));
  return NNLIB_OK;
}

/* ---------------------------------------------------------- dispatch */

typedef struct op_entry {
  const char *name;
  int kind; /* what map_node switches on */
} op_entry;

enum {
  OP_RELU, OP_SIGMOID, OP_TANH, OP_LEAKY, OP_SOFTPLUS, OP_SOFTMAX, OP_GEMM,
  OP_MATMUL, OP_ADD, OP_MUL, OP_CONCAT, OP_IDENTITY, OP_FLATTEN, OP_RESHAPE,
  OP_SQUEEZE, OP_UNSQUEEZE, OP_TRANSPOSE, OP_CONV, OP_MAXPOOL, OP_AVGPOOL,
  OP_GAP, OP_BATCHNORM, OP_LAYERNORM, OP_GATHER, OP_LSTM, OP_GRU, OP_RNN,
  OP_NEG, OP_DROPOUT, OP_CAST
};

static const op_entry ops[] = {
    {"Relu", OP_RELU},           {"Sigmoid", OP_SIGMOID},
    {"Tanh", OP_TANH},           {"LeakyRelu", OP_LEAKY},
    {"Softplus", OP_SOFTPLUS},   {"Softmax", OP_SOFTMAX},
    {"Gemm", OP_GEMM},           {"MatMul", OP_MATMUL},
    {"Add", OP_ADD},             {"Mul", OP_MUL},
    {"Concat", OP_CONCAT},       {"Identity", OP_IDENTITY},
    {"Dropout", OP_DROPOUT},     {"Cast", OP_CAST},
    {"Flatten", OP_FLATTEN},     {"Reshape", OP_RESHAPE},
    {"Squeeze", OP_SQUEEZE},     {"Unsqueeze", OP_UNSQUEEZE},
    {"Transpose", OP_TRANSPOSE}, {"Conv", OP_CONV},
    {"MaxPool", OP_MAXPOOL},     {"AveragePool", OP_AVGPOOL},
    {"GlobalAveragePool", OP_GAP}, {"BatchNormalization", OP_BATCHNORM},
    {"LayerNormalization", OP_LAYERNORM}, {"Gather", OP_GATHER},
    {"LSTM", OP_LSTM},           {"GRU", OP_GRU},
    {"RNN", OP_RNN},             {"Neg", OP_NEG},
};

static nnlib_status dispatch(imp *im, const onode *n, int kind) {
  switch (kind) {
  case OP_RELU:
    return map_activation(im, n, NNLIB_ACT_RELU, 0.0f);
  case OP_SIGMOID:
    return map_activation(im, n, NNLIB_ACT_SIGMOID, 0.0f);
  case OP_TANH:
    return map_activation(im, n, NNLIB_ACT_TANH, 0.0f);
  case OP_LEAKY:
    return map_activation(im, n, NNLIB_ACT_LEAKY_RELU,
                          nnlib__onnx_attr_float(n, "alpha", 0.01f));
  case OP_SOFTPLUS:
    return map_activation(im, n, NNLIB_ACT_SOFTPLUS, 0.0f);
  case OP_SOFTMAX:
    return map_activation(im, n, NNLIB_ACT_SOFTMAX, 0.0f);
  case OP_GEMM:
    return map_gemm(im, n);
  case OP_MATMUL:
    return map_matmul(im, n);
  case OP_ADD:
  case OP_MUL:
    return map_add_mul(im, n, kind == OP_ADD);
  case OP_CONCAT:
    return map_concat(im, n);
  case OP_IDENTITY: /* nnlib's identity activation, which exports so */
    return map_activation(im, n, NNLIB_ACT_IDENTITY, 0.0f);
  case OP_CAST:
    return map_cast(im, n);
  case OP_FLATTEN:
    return map_flatten(im, n);
  case OP_RESHAPE:
    return map_reshape(im, n);
  case OP_SQUEEZE:
  case OP_UNSQUEEZE:
    return map_squeeze(im, n, kind == OP_UNSQUEEZE);
  case OP_TRANSPOSE:
    return map_transpose(im, n);
  case OP_CONV:
    return map_conv(im, n);
  case OP_MAXPOOL:
    return map_pool(im, n, NNLIB_LAYER_MAXPOOL2D);
  case OP_AVGPOOL:
    return map_pool(im, n, NNLIB_LAYER_AVGPOOL2D);
  case OP_GAP:
    return map_global_avgpool(im, n);
  case OP_BATCHNORM:
    return map_batchnorm(im, n);
  case OP_LAYERNORM:
    return map_layernorm(im, n);
  case OP_LSTM:
    return nnlib__onnx_map_recurrent(im, n, NNLIB_LAYER_LSTM);
  case OP_GRU:
    return nnlib__onnx_map_recurrent(im, n, NNLIB_LAYER_GRU);
  case OP_RNN:
    return nnlib__onnx_map_recurrent(im, n, NNLIB_LAYER_RNN);
  case OP_NEG:
    return map_neg(im, n);
  case OP_DROPOUT:
    return map_dropout(im, n);
  default:
    return map_gather(im, n);
  }
}

nnlib_status nnlib__onnx_map_node(nnlib__onnx_import *im, size_t k) {
  const onode *n = &im->onnx->graph.nodes[k];
  if (n->domain.n > 0 && !nnlib__onnx_str_is(n->domain, "ai.onnx"))
    return nnlib__onnx_node_error(im, NNLIB_ERR_UNSUPPORTED,
                                  "domain '%.*s' (only the default ONNX "
                                  "domain is read)",
                                  (int)(n->domain.n > 40 ? 40 : n->domain.n),
                                  n->domain.p);
  NNLIB_TRY(nnlib__onnx_check_opset(im, n));
  bool folded;
  NNLIB_TRY(nnlib__onnx_fold_node(im, k, &folded));
  if (folded)
    return NNLIB_OK;
  bool gelu = false, attention = false, layernorm = false, softmax = false;
  NNLIB_TRY(nnlib__onnx_match_gelu(im, k, &gelu));
  if (!gelu)
    NNLIB_TRY(nnlib__onnx_match_attention(im, k, &attention));
  if (!gelu && !attention)
    NNLIB_TRY(nnlib__onnx_match_layernorm(im, k, &layernorm));
  if (!gelu && !attention && !layernorm)
    NNLIB_TRY(nnlib__onnx_match_softmax(im, k, &softmax));
  if (gelu || attention || layernorm || softmax)
    return NNLIB_OK;
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
    if (nnlib__onnx_str_is(n->op_type, ops[i].name))
      return dispatch(im, n, ops[i].kind);
  return nnlib__onnx_node_error(im, NNLIB_ERR_UNSUPPORTED,
                                "operator '%.*s' has no nnlib layer",
                                (int)(n->op_type.n > 40 ? 40 : n->op_type.n),
                                n->op_type.p);
}
