/* import_attention.c - the subgraph torch.onnx.export (torch 1.13, opset
 * 13 to 17) writes for nn.MultiheadAttention(D, H, batch_first=True)
 * called as mha(x, x, x, need_weights=False), with no mask or a float
 * causal attn_mask, onto nnlib's attention layer.
 *
 * For x [N, T, D] (ONNX's axes; N the batch) torch writes:
 *   X   = Transpose(x, perm [1, 0, 2])                  [T, N, D]
 *   P   = MatMul(X, B_in) + b_in     B_in = W_in^T      [T, N, 3D]
 *   Q,K,V = Slice(P, kD, (k+1)D, axis -1), k = 0, 1, 2   [T, N, D]
 *   Qh  = Transpose(Reshape(Q, [T, N*H, hd]), [1, 0, 2])  [N*H, T, hd]
 *   Kh  = Transpose(Reshape(K, [T, N*H, hd]), [1, 2, 0])  [N*H, hd, T]
 *   Vh  = Transpose(Reshape(V, [T, N*H, hd]), [1, 0, 2])  [N*H, T, hd]
 *   S   = MatMul(Qh / sqrt(hd), Kh)  (* 1, + mask [1, T, T] when masked)
 *   O   = MatMul(Softmax(S, -1), Vh)                      [N*H, T, hd]
 *   G   = Gemm(Reshape(Transpose(O, [1, 0, 2]), [T*N, D]), W_out, b_out,
 *              transB 1)                                  [T*N, D]
 *         (without biases: MatMul with W_out^T)
 *   y   = Transpose(Reshape(G, [T, N, D]), [1, 0, 2])     [N, T, D]
 * and around it the shape arithmetic that computes the Reshape targets
 * and Slice bounds from Shape(X), Shape(P), ... (Gather, Unsqueeze,
 * Concat, Add, Mul, Div, Cast). Those involve the batch N, which the
 * importer's folding does not compute with, so the whole subgraph is read
 * here.
 *
 * The match starts at a Transpose [1, 0, 2] of a batch-first [T, D] graph
 * tensor that a MatMul reads (nothing else imports such a Transpose: a
 * MatMul of the time-major view is refused). From there every node that
 * reads a value of the subgraph is evaluated, in dependency order, until
 * y: tensors carry their role in the pattern above and their shape as
 * products c * N^p of a number and the batch; integer shape values carry
 * the same products. A node that fits no step of the pattern, a shape
 * value that is not what the pattern needs (the head count comes from
 * Q's Reshape, [T, N*H, hd] with H hd = D, and K's and V's must agree),
 * a scale whose product is not 1/sqrt(hd) within a relative 1e-6, a mask
 * other than the causal one (0 on and below the diagonal, -inf or at most
 * -1e9 above it), weights that are not constants, a node reading a tensor
 * from outside the subgraph, or an intermediate that is a graph output,
 * is NNLIB_ERR_UNSUPPORTED naming that node.
 *
 * nnlib's own export of its attention layer (export_sequence.c) is the
 * same computation batch first, with the projection split by one Split
 * and constant Reshape targets whose 0s copy the input's axes:
 *   P   = MatMul(x, B_in) + b_in                          [N, T, 3D]
 *   Q,K,V = Split(P, [D, D, D], axis -1)                  [N, T, D]
 *   Qh  = Transpose(Reshape(Q, [0, 0, H, hd]), [0, 2, 1, 3])  [N, H, T, hd]
 *   Kh  = Transpose(Reshape(K, [0, 0, H, hd]), [0, 2, 3, 1])  [N, H, hd, T]
 *   Vh  likewise Qh; S = MatMul(Qh, Kh) * 1/sqrt(hd) (+ mask [T, T])
 *   O   = MatMul(Softmax(S, -1), Vh)                      [N, H, T, hd]
 *   y   = MatMul(Reshape(Transpose(O, [0, 2, 1, 3]), [0, 0, D]), W_out^T)
 *         + b_out                                         [N, T, D]
 * Its match starts at the first MatMul (of a batch-first [T, D] graph
 * tensor by a constant [D, 3D], read by a Split directly or after an Add)
 * and runs through the same steps, checks and messages; only the shapes
 * each step makes (dims_of) and hence the Reshape targets and Transpose
 * permutations differ, and y is the out-projection itself. */
#include "onnx/import.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef nnlib__onnx_import imp;
typedef nnlib__onnx_node onode;
typedef nnlib__onnx_value oval;

/* The subgraph of one attention: torch writes about 70 nodes. */
#define MAX_NODES 256
#define MAX_DIMS 8

/* c * N^p, N the batch size */
typedef struct mono {
  int64_t c;
  int p;
} mono;

typedef enum role {
  R_INTS,   /* integer shape values, not a tensor of the graph */
  R_X,      /* the time-major input view (torch's form only) */
  R_PROJ,   /* x W_in^T (+ b_in) */
  R_SLICE,  /* q, k or v */
  R_HEADS,  /* its Reshape into heads */
  R_QT,     /* Q per head */
  R_KT,     /* K per head, transposed */
  R_VT,     /* V per head */
  R_SCORES, /* Q K^T (scaled) */
  R_MASKED, /* + the mask */
  R_PROBS,  /* softmax */
  R_OUTH,   /* P V */
  R_OUTT,   /* transposed back */
  R_OUTF,   /* heads joined */
  R_OUTP,   /* out projection */
  R_OUTTM,  /* reshaped (torch's form only) */
  R_Y,      /* the attention's output, batch first [N, T, D] */
  R_COUNT
} role;

/* The shape of each role's tensor, one letter per axis: T steps, N the
 * batch, D the width, 3 3D, H heads, E the head size D/H, M N*H, B T*N.
 * Letters never repeat where a Transpose reads or makes the tensor, so
 * the two strings spell its permutation. NULL: no such step. */
static const char *const torch_dims[R_COUNT] = {
    [R_X] = "TND",     [R_PROJ] = "TN3",   [R_SLICE] = "TND",
    [R_HEADS] = "TME", [R_QT] = "MTE",     [R_KT] = "MET",
    [R_VT] = "MTE",    [R_SCORES] = "MTT", [R_MASKED] = "MTT",
    [R_PROBS] = "MTT", [R_OUTH] = "MTE",   [R_OUTT] = "TME",
    [R_OUTF] = "BD",   [R_OUTP] = "BD",    [R_OUTTM] = "TND",
    [R_Y] = "NTD"};
static const char *const packed_dims[R_COUNT] = {
    [R_PROJ] = "NT3",   [R_SLICE] = "NTD",   [R_HEADS] = "NTHE",
    [R_QT] = "NHTE",    [R_KT] = "NHET",     [R_VT] = "NHTE",
    [R_SCORES] = "NHTT", [R_MASKED] = "NHTT", [R_PROBS] = "NHTT",
    [R_OUTH] = "NHTE",  [R_OUTT] = "NTHE",   [R_OUTF] = "NTD",
    [R_OUTP] = "NTD",   [R_Y] = "NTD"};

typedef struct aval {
  nnlib__onnx_str name;
  role role;
  int part;      /* R_SLICE, R_HEADS: 0 q, 1 k, 2 v */
  double scale;  /* R_QT, R_KT, R_SCORES: the product of the scalars */
  size_t rank;   /* R_INTS: 0 (one value) or 1 */
  size_t count;  /* R_INTS: number of values */
  mono v[MAX_DIMS]; /* tensors: the shape; R_INTS: the values */
} aval;

typedef struct match {
  imp *im;
  aval *vals;
  size_t val_count;
  size_t *pending; /* nodes reading subgraph values, not yet evaluated */
  bool *evaluated;
  size_t pending_count;
  int64_t t, d, heads, hd;
  bool made[R_COUNT][3];
  const float *w_in, *b_in, *w_out, *b_out; /* the constants as found */
  bool w_out_trans;                          /* Gemm transB */
  bool out_matmul; /* out_proj as MatMul (+ Add of its bias), not Gemm */
  float alpha, beta;
  int64_t b_out_count;
  bool causal;
  bool packed;     /* nnlib's own export, not torch's */
  size_t y;        /* index of y in vals */
  bool have_y;
} match;

static mono num(int64_t c) {
  mono m = {c, 0};
  return m;
}

static mono batch_times(int64_t c) {
  mono m = {c, 1};
  return m;
}

static bool mono_eq(mono a, mono b) { return a.c == b.c && a.p == b.p; }

static bool same_name(nnlib__onnx_str a, nnlib__onnx_str b) {
  return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static const char *dims_of(const match *mt, role r) {
  return (mt->packed ? packed_dims : torch_dims)[r];
}

static mono dim_of(const match *mt, char letter) {
  switch (letter) {
  case 'T': return num(mt->t);
  case 'N': return batch_times(1);
  case 'D': return num(mt->d);
  case '3': return num(3 * mt->d);
  case 'H': return num(mt->heads);
  case 'E': return num(mt->hd);
  case 'M': return batch_times(mt->heads);
  default: return batch_times(mt->t); /* 'B' */
  }
}

/* "[T, N*H, D/H]" for "TME", for messages. */
static const char *dims_text(const match *mt, role r, char *buf, size_t n) {
  static const char *const names[] = {"T", "N", "D", "3D", "H",
                                      "D/H", "N*H", "T*N"};
  const char *letters = dims_of(mt, r), *order = "TND3HEMB";
  size_t at = (size_t)snprintf(buf, n, "[");
  for (size_t k = 0; letters != NULL && letters[k] && at < n; k++)
    at += (size_t)snprintf(buf + at, n - at, "%s%s", k ? ", " : "",
                           names[strchr(order, letters[k]) - order]);
  if (at < n)
    snprintf(buf + at, n - at, "]");
  return buf;
}

static nnlib_status refuse(match *mt, const char *fmt, const char *what) {
  return nnlib__onnx_node_error(mt->im, NNLIB_ERR_UNSUPPORTED, fmt, what);
}

static aval *find_val(match *mt, nnlib__onnx_str s) {
  for (size_t k = 0; k < mt->val_count; k++)
    if (same_name(mt->vals[k].name, s))
      return &mt->vals[k];
  return NULL;
}

static bool is_graph_output(const imp *im, nnlib__onnx_str s) {
  const nnlib__onnx_graph *g = &im->onnx->graph;
  for (size_t k = 0; k < g->output_count; k++)
    if (same_name(g->outputs[k].name, s))
      return true;
  return false;
}

/* ------------------------------------------------------- the worklist */

/* Adds every node that reads s (and is not done) to the pending list. */
static nnlib_status find_readers(match *mt, nnlib__onnx_str s) {
  const nnlib__onnx_graph *g = &mt->im->onnx->graph;
  for (size_t j = 0; j < g->node_count; j++) {
    if (mt->im->done[j] || mt->evaluated[j])
      continue;
    bool reads = false;
    for (size_t i = 0; i < g->nodes[j].input_count && !reads; i++)
      reads = same_name(g->nodes[j].inputs[i], s);
    bool listed = false;
    for (size_t p = 0; p < mt->pending_count && !listed; p++)
      listed = mt->pending[p] == j;
    if (!reads || listed)
      continue;
    if (mt->pending_count == MAX_NODES) {
      mt->im->current = j;
      return refuse(mt, "%s: more than 256 nodes read the attention "
                        "subgraph",
                    "inputs");
    }
    mt->pending[mt->pending_count++] = j;
  }
  return NNLIB_OK;
}

/* A new value named `name`, an output of the current node. */
static nnlib_status new_named(match *mt, nnlib__onnx_str name, role r,
                              aval **out) {
  if (find_val(mt, name) != NULL || nnlib__onnx_find(mt->im, name) != NULL)
    return nnlib__onnx_node_error(mt->im, NNLIB_ERR_CORRUPT_FILE,
                                  "output '%.*s' is also made elsewhere",
                                  (int)name.n, name.p);
  if (mt->val_count == MAX_NODES)
    return refuse(mt, "%s: more than 256 values in the attention subgraph",
                  "outputs");
  aval *v = &mt->vals[mt->val_count++];
  memset(v, 0, sizeof *v);
  v->name = name;
  v->role = r;
  v->scale = 1.0;
  *out = v;
  return NNLIB_OK;
}

/* A new value for output 0 of node n (the only output). */
static nnlib_status new_val(match *mt, const onode *n, role r, aval **out) {
  if (n->output_count != 1 || n->outputs[0].n == 0)
    return refuse(mt, "%s: one output expected in the attention subgraph",
                  "outputs");
  return new_named(mt, n->outputs[0], r, out);
}

/* The tensor of role r (part) named `name`, made once, shaped as the
 * form's dims say. */
static nnlib_status new_part(match *mt, nnlib__onnx_str name, role r,
                             int part, aval **out) {
  const char *dims = dims_of(mt, r);
  if (dims == NULL)
    return nnlib__onnx_node_error(mt->im, NNLIB_ERR_INTERNAL,
                                  "no shape for role %d", (int)r);
  if (mt->made[r][part])
    return refuse(mt, "%s: this step of the attention pattern is made "
                      "twice",
                  "output");
  mt->made[r][part] = true;
  NNLIB_TRY(new_named(mt, name, r, out));
  (*out)->part = part;
  (*out)->rank = strlen(dims);
  for (size_t k = 0; k < (*out)->rank; k++)
    (*out)->v[k] = dim_of(mt, dims[k]);
  return NNLIB_OK;
}

/* The tensor of role r (part) made by node n, its only output. */
static nnlib_status new_tensor(match *mt, const onode *n, role r, int part,
                               aval **out) {
  if (n->output_count != 1 || n->outputs[0].n == 0)
    return refuse(mt, "%s: one output expected in the attention subgraph",
                  "outputs");
  return new_part(mt, n->outputs[0], r, part, out);
}

/* ------------------------------------------------------------- inputs */

/* Input k as integer shape values: a subgraph R_INTS or an int64
 * constant (its batch placeholder read as N). */
static bool ints_in(match *mt, const onode *n, size_t k, aval *out) {
  if (k >= n->input_count)
    return false;
  aval *a = find_val(mt, n->inputs[k]);
  if (a != NULL) {
    *out = *a;
    return a->role == R_INTS;
  }
  oval *c = nnlib__onnx_find(mt->im, n->inputs[k]);
  if (c == NULL || c->kind != NNLIB__VALUE_CONST ||
      c->dtype != NNLIB__ONNX_INT64 || c->rank > 1 || c->count > MAX_DIMS)
    return false;
  memset(out, 0, sizeof *out);
  out->role = R_INTS;
  out->rank = c->rank;
  out->count = (size_t)c->count;
  for (int64_t i = 0; i < c->count; i++)
    out->v[i] = nnlib__onnx_is_batch(c, i) ? batch_times(1) : num(c->i[i]);
  return true;
}

/* Input k as a float constant, or NULL. */
static const oval *const_in(match *mt, const onode *n, size_t k) {
  if (k >= n->input_count || n->inputs[k].n == 0 ||
      find_val(mt, n->inputs[k]) != NULL)
    return NULL;
  const oval *c = nnlib__onnx_find(mt->im, n->inputs[k]);
  return c != NULL && c->kind == NNLIB__VALUE_CONST &&
                 c->dtype == NNLIB__ONNX_FLOAT
             ? c
             : NULL;
}

/* Number of elements of a constant along all but leading unit axes equal
 * to `want` (a vector or a matrix of that shape). */
static bool const_shape_is(const oval *c, const int64_t *want, size_t rank) {
  if (c->rank < rank)
    return false;
  for (size_t k = 0; k < c->rank - rank; k++)
    if (c->dims[k] != 1)
      return false;
  for (size_t k = 0; k < rank; k++)
    if (c->dims[c->rank - rank + k] != want[k])
      return false;
  return true;
}

static bool scalar_of(const oval *c, double *out) {
  if (c == NULL || c->count != 1)
    return false;
  *out = (double)c->f[0];
  return isfinite(*out) && *out != 0.0;
}

static bool perm_is(const onode *n, int64_t a, int64_t b, int64_t c) {
  const nnlib__onnx_attr *p = nnlib__onnx_find_attr(n, "perm");
  return p != NULL && !p->list_overflow && p->int_count == 3 &&
         p->ints[0] == a && p->ints[1] == b && p->ints[2] == c;
}

/* Node n's perm takes axes spelled `from` to `to` (out[i] = in[perm[i]]). */
static bool perm_turns(const onode *n, const char *from, const char *to) {
  const nnlib__onnx_attr *p = nnlib__onnx_find_attr(n, "perm");
  size_t rank = strlen(to);
  if (p == NULL || p->list_overflow || p->int_count != rank ||
      strlen(from) != rank)
    return false;
  for (size_t k = 0; k < rank; k++)
    if (p->ints[k] < 0 || p->ints[k] >= (int64_t)rank ||
        from[p->ints[k]] != to[k])
      return false;
  return true;
}

/* ------------------------------------------------ integer shape values */

static bool mono_binary(char op, mono a, mono b, mono *r) {
  switch (op) {
  case '+':
  case '-':
    if (a.p != b.p && !(a.c == 0 || b.c == 0))
      return false;
    if (op == '+' ? __builtin_add_overflow(a.c, b.c, &r->c)
                  : __builtin_sub_overflow(a.c, b.c, &r->c))
      return false;
    r->p = r->c == 0 ? 0 : a.c != 0 ? a.p : b.p;
    return true;
  case '*':
    if (a.p + b.p > 1 || __builtin_mul_overflow(a.c, b.c, &r->c))
      return false;
    r->p = r->c == 0 ? 0 : a.p + b.p;
    return true;
  default: /* ONNX's integer Div truncates; N times c only if exact */
    if (b.p != 0 || b.c == 0 || (a.c == INT64_MIN && b.c == -1))
      return false;
    if (a.p == 1 && a.c % b.c != 0)
      return false;
    r->c = a.c / b.c;
    r->p = r->c == 0 ? 0 : a.p;
    return true;
  }
}

static nnlib_status ints_binary(match *mt, const onode *n, char op,
                                const aval *a, const aval *b) {
  if (a->count != b->count && a->count != 1 && b->count != 1)
    return refuse(mt, "%s: shape values that do not broadcast", "inputs");
  aval *out = NULL;
  NNLIB_TRY(new_val(mt, n, R_INTS, &out));
  out->rank = a->rank > b->rank ? a->rank : b->rank;
  out->count = a->count > b->count ? a->count : b->count;
  for (size_t k = 0; k < out->count; k++)
    if (!mono_binary(op, a->v[a->count == 1 ? 0 : k],
                     b->v[b->count == 1 ? 0 : k], &out->v[k]))
      return refuse(mt, "%s: arithmetic on the batch size that is not a "
                        "multiple of it",
                    "inputs");
  return NNLIB_OK;
}

static nnlib_status eval_shape(match *mt, const onode *n, const aval *x) {
  if (x->role == R_INTS || n->input_count != 1 ||
      nnlib__onnx_find_attr(n, "start") || nnlib__onnx_find_attr(n, "end"))
    return refuse(mt, "%s: only the whole shape of a tensor of the "
                      "attention subgraph is read",
                  "input");
  aval *out = NULL;
  NNLIB_TRY(new_val(mt, n, R_INTS, &out));
  out->rank = 1;
  out->count = x->rank;
  memcpy(out->v, x->v, x->rank * sizeof *x->v);
  return NNLIB_OK;
}

static nnlib_status eval_gather(match *mt, const onode *n) {
  aval x, idx;
  if (!ints_in(mt, n, 0, &x) || !ints_in(mt, n, 1, &idx) || x.rank != 1 ||
      idx.count != 1 || idx.v[0].p != 0 ||
      nnlib__onnx_attr_int(n, "axis", 0) != 0)
    return refuse(mt, "%s: only one value of a shape is taken here",
                  "inputs");
  int64_t at = idx.v[0].c < 0 ? idx.v[0].c + (int64_t)x.count : idx.v[0].c;
  if (at < 0 || at >= (int64_t)x.count)
    return nnlib__onnx_node_error(mt->im, NNLIB_ERR_CORRUPT_FILE,
                                  "index %lld out of range",
                                  (long long)idx.v[0].c);
  aval *out = NULL;
  NNLIB_TRY(new_val(mt, n, R_INTS, &out));
  out->rank = idx.rank;
  out->count = 1;
  out->v[0] = x.v[at];
  return NNLIB_OK;
}

static nnlib_status eval_unsqueeze(match *mt, const onode *n) {
  aval x;
  int64_t axes[NNLIB__ONNX_MAX_RANK];
  size_t naxes = 0;
  if (!ints_in(mt, n, 0, &x))
    return refuse(mt, "%s: only shape values are unsqueezed here", "input");
  NNLIB_TRY(nnlib__onnx_axes(mt->im, n, axes, &naxes));
  if (x.rank != 0 || naxes != 1 || (axes[0] != 0 && axes[0] != -1))
    return refuse(mt, "%s: one value made a list of one", "axes");
  aval *out = NULL;
  NNLIB_TRY(new_val(mt, n, R_INTS, &out));
  out->rank = 1;
  out->count = 1;
  out->v[0] = x.v[0];
  return NNLIB_OK;
}

static nnlib_status eval_concat(match *mt, const onode *n) {
  aval parts[MAX_DIMS];
  size_t total = 0;
  if (n->input_count > MAX_DIMS || nnlib__onnx_attr_int(n, "axis", 0) != 0)
    return refuse(mt, "%s: lists of shape values joined on axis 0",
                  "inputs");
  for (size_t k = 0; k < n->input_count; k++) {
    if (!ints_in(mt, n, k, &parts[k]) || parts[k].rank != 1)
      return refuse(mt, "%s: lists of shape values joined on axis 0",
                    "inputs");
    total += parts[k].count;
  }
  if (total > MAX_DIMS)
    return refuse(mt, "%s: more than 8 values", "inputs");
  aval *out = NULL;
  NNLIB_TRY(new_val(mt, n, R_INTS, &out));
  out->rank = 1;
  for (size_t k = 0; k < n->input_count; k++)
    for (size_t i = 0; i < parts[k].count; i++)
      out->v[out->count++] = parts[k].v[i];
  return NNLIB_OK;
}

static nnlib_status eval_cast(match *mt, const onode *n, const aval *x) {
  int64_t to = nnlib__onnx_attr_int(n, "to", 0);
  if (x->role != R_INTS ||
      (to != NNLIB__ONNX_INT64 && to != NNLIB__ONNX_INT32))
    return refuse(mt, "%s: only shape values cast to integers", "attribute "
                                                                "to");
  aval *out = NULL;
  NNLIB_TRY(new_val(mt, n, R_INTS, &out));
  memcpy(out->v, x->v, sizeof out->v);
  out->rank = x->rank;
  out->count = x->count;
  return NNLIB_OK;
}

/* ------------------------------------------------------------ tensors */

static nnlib_status eval_matmul(match *mt, const onode *n, const aval *a) {
  const aval *b = n->input_count == 2 ? find_val(mt, n->inputs[1]) : NULL;
  int64_t d = mt->d;
  aval *out = NULL;
  if (a->role == R_X && b == NULL) {
    const oval *w = const_in(mt, n, 1);
    int64_t want[2] = {d, 3 * d};
    if (w == NULL || w->rank != 2 || !const_shape_is(w, want, 2))
      return refuse(mt, "%s must be a constant [D, 3D] (the packed in_proj "
                        "weight, transposed)",
                    "input B");
    mt->w_in = w->f;
    return new_tensor(mt, n, R_PROJ, 0, &out);
  }
  if (a->role == R_OUTF && b == NULL) { /* out_proj as MatMul */
    const oval *w = const_in(mt, n, 1);
    int64_t want[2] = {d, d};
    if (w == NULL || w->rank != 2 || !const_shape_is(w, want, 2))
      return refuse(mt, "%s must be a constant [D, D] (out_proj's weight, "
                        "transposed)",
                    "input B");
    mt->w_out = w->f;
    mt->w_out_trans = false;
    mt->alpha = 1.0f;
    mt->out_matmul = true;
    /* nnlib's form ends here, or at the Add of the bias when it has one */
    bool last = mt->packed && mt->b_in == NULL;
    return new_tensor(mt, n, last ? R_Y : R_OUTP, 0, &out);
  }
  if (a->role == R_QT && b != NULL && b->role == R_KT) {
    NNLIB_TRY(new_tensor(mt, n, R_SCORES, 0, &out));
    out->scale = a->scale * b->scale;
    return NNLIB_OK;
  }
  if (a->role == R_PROBS && b != NULL && b->role == R_VT)
    return new_tensor(mt, n, R_OUTH, 0, &out);
  return refuse(mt, "%s: not a product of the attention pattern (x W_in, "
                    "Q K^T, or the weights times V)",
                "inputs");
}

/* The mask: 0 on and below the diagonal; above it all -inf or at most
 * -1e9 (causal), or all 0 (none). */
static nnlib_status check_mask(match *mt, const oval *c) {
  int64_t t = mt->t, want[2] = {t, t};
  if (!const_shape_is(c, want, 2))
    return refuse(mt, "%s: the mask must be a constant [T, T] (leading unit "
                      "axes allowed)",
                  "input");
  bool any = false, all = true;
  for (int64_t i = 0; i < t; i++)
    for (int64_t j = 0; j < t; j++) {
      float m = c->f[i * t + j];
      if (j <= i) {
        if (m != 0.0f)
          return refuse(mt, "%s: not the causal mask (a value on or below "
                            "the diagonal is not 0)",
                        "input mask");
        continue;
      }
      bool masked = m <= -1e9f; /* -inf included */
      if (!masked && m != 0.0f)
        return refuse(mt, "%s: not the causal mask (a value above the "
                          "diagonal is neither 0, -inf nor at most -1e9)",
                      "input mask");
      any |= masked;
      all &= masked;
    }
  if (any && !all)
    return refuse(mt, "%s: masks some positions above the diagonal but not "
                      "all (only the causal mask maps)",
                  "input mask");
  mt->causal = any;
  return NNLIB_OK;
}

/* Add: the in-projection's bias, or the mask onto the scores. */
static nnlib_status eval_add(match *mt, const onode *n, const aval *a,
                             size_t at) {
  const oval *c = const_in(mt, n, 1 - at);
  if (n->input_count != 2 || c == NULL)
    return refuse(mt, "%s: the attention subgraph adds only constants (the "
                      "bias, the mask)",
                  "inputs");
  aval *out = NULL;
  if (a->role == R_PROJ && mt->b_in == NULL) {
    int64_t want = 3 * mt->d;
    if (nnlib__onnx_readers(mt->im, a->name, NULL) != 1)
      return refuse(mt, "%s: the in-projection is read before and after its "
                        "bias",
                    "inputs");
    if (!const_shape_is(c, &want, 1))
      return refuse(mt, "%s: the in_proj bias must hold 3D values",
                    "constant input");
    mt->b_in = c->f;
    NNLIB_TRY(new_val(mt, n, R_PROJ, &out));
    *out = *a;
    out->name = n->outputs[0];
    return NNLIB_OK;
  }
  if (a->role == R_OUTP && mt->out_matmul && mt->b_out == NULL) {
    if (!const_shape_is(c, &mt->d, 1))
      return refuse(mt, "%s: the out_proj bias must hold D values",
                    "constant input");
    mt->b_out = c->f;
    mt->b_out_count = mt->d;
    mt->beta = 1.0f;
    if (mt->packed) /* nnlib's form: this is the attention's output */
      return new_tensor(mt, n, R_Y, 0, &out);
    NNLIB_TRY(new_val(mt, n, R_OUTP, &out));
    *out = *a;
    out->name = n->outputs[0];
    return NNLIB_OK;
  }
  if (a->role == R_SCORES) {
    NNLIB_TRY(check_mask(mt, c));
    NNLIB_TRY(new_tensor(mt, n, R_MASKED, 0, &out));
    out->scale = a->scale;
    return NNLIB_OK;
  }
  return refuse(mt, "%s: a constant added where the attention pattern has "
                    "none",
                "inputs");
}

/* Mul or Div by a float scalar of Q, K or the scores (before the mask). */
static nnlib_status eval_scale(match *mt, const onode *n, const aval *a,
                               size_t at, bool div) {
  double s = 0.0;
  if (n->input_count != 2 || (div && at != 0) ||
      !scalar_of(const_in(mt, n, 1 - at), &s) ||
      (a->role != R_QT && a->role != R_KT && a->role != R_SCORES))
    return refuse(mt, "%s: only Q, K or the scores are scaled, by a float "
                      "constant",
                  "inputs");
  aval *out = NULL;
  NNLIB_TRY(new_val(mt, n, a->role, &out));
  *out = *a;
  out->name = n->outputs[0];
  out->scale = div ? a->scale / s : a->scale * s;
  return NNLIB_OK;
}

static nnlib_status eval_slice(match *mt, const onode *n, const aval *a) {
  aval starts, ends, axes, steps;
  if (a->role != R_PROJ || n->input_count < 4 || n->input_count > 5 ||
      !ints_in(mt, n, 1, &starts) || !ints_in(mt, n, 2, &ends) ||
      !ints_in(mt, n, 3, &axes) || starts.count != 1 || ends.count != 1 ||
      axes.count != 1 || starts.v[0].p != 0 || ends.v[0].p != 0)
    return refuse(mt, "%s: only q, k and v are sliced from the "
                      "in-projection, along its last axis",
                  "inputs");
  if (n->input_count == 5 && n->inputs[4].n > 0 &&
      (!ints_in(mt, n, 4, &steps) || steps.count != 1 ||
       !mono_eq(steps.v[0], num(1))))
    return refuse(mt, "%s must be 1", "input steps");
  if (axes.v[0].c != -1 && axes.v[0].c != 2)
    return refuse(mt, "%s: q, k and v are sliced along the last axis",
                  "input axes");
  int64_t d = mt->d, lo = starts.v[0].c, hi = ends.v[0].c;
  /* d and lo are checked before lo + d and 3 d, which then cannot
   * overflow on a crafted file */
  if (d <= 0 || d > INT64_MAX / 4 || lo < 0 || lo % d != 0 || lo / d > 2 ||
      !(hi == lo + d || (lo / d == 2 && hi >= 3 * d)))
    return refuse(mt, "%s: q, k and v are [0, D), [D, 2D) and [2D, 3D)",
                  "inputs starts and ends");
  int part = (int)(lo / d);
  aval *out = NULL;
  return new_tensor(mt, n, R_SLICE, part, &out);
}

/* Split's sizes are D, D, D: an input (opset 13 on), an attribute
 * (before), or none (equal parts). */
static bool split_in_d(match *mt, const onode *n) {
  const nnlib__onnx_attr *given = nnlib__onnx_find_attr(n, "split");
  aval s;
  if (n->input_count > 1 && n->inputs[1].n > 0) {
    if (!ints_in(mt, n, 1, &s) || s.count != 3)
      return false;
    for (int k = 0; k < 3; k++)
      if (!mono_eq(s.v[k], num(mt->d)))
        return false;
    return true;
  }
  if (given == NULL)
    return true;
  if (given->list_overflow || given->int_count != 3)
    return false;
  for (int k = 0; k < 3; k++)
    if (given->ints[k] != mt->d)
      return false;
  return true;
}

/* Split of the projection into q, k and v along its last axis. */
static nnlib_status eval_split(match *mt, const onode *n, const aval *a) {
  bool ok = a->role == R_PROJ && n->output_count == 3 && split_in_d(mt, n);
  for (int k = 0; ok && k < 3; k++)
    ok = n->outputs[k].n > 0;
  if (!ok)
    return refuse(mt, "%s: only the in-projection is split, into q, k and "
                      "v of D values each",
                  "inputs and outputs");
  int64_t axis = nnlib__onnx_attr_int(n, "axis", 0);
  if (axis != -1 && axis != 2)
    return refuse(mt, "%s: q, k and v are split along the last axis",
                  "attribute axis");
  for (int k = 0; k < 3; k++) {
    aval *out = NULL;
    NNLIB_TRY(new_part(mt, n->outputs[k], R_SLICE, k, &out));
  }
  return NNLIB_OK;
}

/* The head count from a target for q, k or v's heads, at the axis the
 * dims spell M (N*H) or H; the first one sets it, the others must agree.
 * A target it does not fit is refused by the shape check after. */
static nnlib_status learn_heads(match *mt, const char *dims, const aval *s) {
  size_t at = strcspn(dims, "MH");
  mono h = at < s->count ? s->v[at] : num(0);
  if (h.c < 1 || h.p != (dims[at] == 'M') || mt->d % h.c != 0)
    return NNLIB_OK;
  if (mt->heads != 0 && mt->heads != h.c)
    return refuse(mt, "%s: q, k and v are split into different head counts",
                  "input shape");
  mt->heads = h.c;
  mt->hd = mt->d / h.c;
  return NNLIB_OK;
}

/* Reshape targets (a 0 copies the input's axis, allowzero 0): q, k, v
 * into heads; the heads' output joined; torch's out-projection back to
 * [T, N, D]. The head count is read from q's target. */
static nnlib_status eval_reshape(match *mt, const onode *n, const aval *a) {
  aval s;
  if (!ints_in(mt, n, 1, &s) || s.rank != 1 ||
      nnlib__onnx_attr_int(n, "allowzero", 0) != 0)
    return refuse(mt, "%s must be shape values of the subgraph",
                  "input shape");
  for (size_t k = 0; k < s.count && k < a->rank; k++)
    if (mono_eq(s.v[k], num(0)))
      s.v[k] = a->v[k];
  role r = a->role == R_SLICE  ? R_HEADS
           : a->role == R_OUTT ? R_OUTF
           : a->role == R_OUTP ? R_OUTTM
                               : R_INTS;
  const char *dims = r == R_INTS ? NULL : dims_of(mt, r);
  if (dims == NULL)
    return refuse(mt, "%s: not a reshape of the attention pattern", "input");
  char text[48];
  const char *what[] = {"q, k and v are reshaped into",
                        "the heads' output is reshaped to",
                        "the out-projection is reshaped to"};
  int which = r == R_HEADS ? 0 : r == R_OUTF ? 1 : 2;
  if (r == R_HEADS)
    NNLIB_TRY(learn_heads(mt, dims, &s));
  bool same = s.count == strlen(dims) && mt->heads != 0;
  for (size_t k = 0; same && k < s.count; k++)
    same = mono_eq(s.v[k], dim_of(mt, dims[k]));
  if (!same) {
    char why[96];
    snprintf(why, sizeof why, "%%s: %s %s", what[which],
             dims_text(mt, r, text, sizeof text));
    return refuse(mt, why, "input shape");
  }
  aval *out = NULL;
  return new_tensor(mt, n, r, a->part, &out);
}

/* q, k, v's heads to Q, K^T, V per head; the heads' output back; torch's
 * out-projection to batch first: each perm is the one the dims spell. */
static nnlib_status eval_transpose(match *mt, const onode *n,
                                   const aval *a) {
  static const role parts[3] = {R_QT, R_KT, R_VT};
  role r = a->role == R_HEADS  ? parts[a->part]
           : a->role == R_OUTH  ? R_OUTT
           : a->role == R_OUTTM ? R_Y
                                : R_INTS;
  if (r == R_INTS || !perm_turns(n, dims_of(mt, a->role), dims_of(mt, r)))
    return refuse(mt, "%s: not a transpose of the attention pattern (K's "
                      "heads to [.., hd, T], the others swap T and the "
                      "heads)",
                  "attribute perm");
  aval *out = NULL;
  return new_tensor(mt, n, r, 0, &out);
}

static nnlib_status eval_softmax(match *mt, const onode *n, const aval *a) {
  bool old = nnlib__onnx_opset(mt->im) < 13; /* default axis 1 then */
  int64_t axis = nnlib__onnx_attr_int(n, "axis", old ? 1 : -1);
  if (a->role != R_SCORES && a->role != R_MASKED)
    return refuse(mt, "%s: the softmax is of the scores", "input");
  if (axis != -1 && axis != (int64_t)a->rank - 1)
    return refuse(mt, "%s: the softmax runs over the last axis",
                  "attribute axis");
  double want = 1.0 / sqrt((double)mt->hd);
  if (!(fabs(a->scale - want) <= 1e-6 * want))
    return refuse(mt, "%s: the scores are not scaled by 1/sqrt(head size)",
                  "input");
  aval *out = NULL;
  return new_tensor(mt, n, R_PROBS, 0, &out);
}

static nnlib_status eval_gemm(match *mt, const onode *n, const aval *a) {
  const oval *b = const_in(mt, n, 1);
  const oval *c = n->input_count > 2 ? const_in(mt, n, 2) : NULL;
  int64_t d = mt->d, want[2] = {d, d};
  if (a->role != R_OUTF || mt->packed || b == NULL || b->rank != 2 ||
      !const_shape_is(b, want, 2) ||
      (n->input_count > 2 && n->inputs[2].n > 0 && c == NULL))
    return refuse(mt, "%s: the out-projection is Gemm of the heads' output "
                      "and constant [D, D] weights and bias",
                  "inputs");
  if (nnlib__onnx_attr_int(n, "transA", 0) != 0)
    return refuse(mt, "%s must be 0", "attribute transA");
  if (c != NULL && c->count != d && c->count != 1)
    return refuse(mt, "%s: the out_proj bias must hold D values", "input C");
  mt->w_out = b->f;
  mt->w_out_trans = nnlib__onnx_attr_int(n, "transB", 0) != 0;
  mt->alpha = nnlib__onnx_attr_float(n, "alpha", 1.0f);
  mt->beta = nnlib__onnx_attr_float(n, "beta", 1.0f);
  mt->b_out = c != NULL ? c->f : NULL;
  mt->b_out_count = c != NULL ? c->count : 0;
  aval *out = NULL;
  return new_tensor(mt, n, R_OUTP, 0, &out);
}

/* The first input of n that is a subgraph value, and its slot. */
static aval *first_val(match *mt, const onode *n, size_t *at) {
  for (size_t k = 0; k < n->input_count; k++) {
    aval *a = find_val(mt, n->inputs[k]);
    if (a != NULL) {
      *at = k;
      return a;
    }
  }
  return NULL;
}

static nnlib_status eval_binary(match *mt, const onode *n, char op) {
  size_t at = 0;
  aval *a = first_val(mt, n, &at), x, y;
  if (n->input_count != 2)
    return nnlib__onnx_node_error(mt->im, NNLIB_ERR_CORRUPT_FILE,
                                  "needs two inputs");
  if (a->role == R_INTS) {
    if (!ints_in(mt, n, 0, &x) || !ints_in(mt, n, 1, &y))
      return refuse(mt, "%s: shape values combined with something else",
                    "inputs");
    return ints_binary(mt, n, op, &x, &y);
  }
  if (op == '+')
    return eval_add(mt, n, a, at);
  if (op == '*' || op == '/')
    return eval_scale(mt, n, a, at, op == '/');
  return refuse(mt, "%s: a subtraction in the attention subgraph", "op");
}

static nnlib_status eval_node(match *mt, const onode *n) {
  size_t at = 0;
  const aval *a = first_val(mt, n, &at);
  if (n->domain.n > 0 && !nnlib__onnx_str_is(n->domain, "ai.onnx"))
    return refuse(mt, "%s: another domain inside the attention subgraph",
                  "domain");
  NNLIB_TRY(nnlib__onnx_check_opset(mt->im, n));
  nnlib__onnx_str op = n->op_type;
  if (a == NULL)
    return nnlib__onnx_node_error(mt->im, NNLIB_ERR_INTERNAL,
                                  "not a reader of the subgraph");
  const char *names[4] = {"Add", "Sub", "Mul", "Div"};
  for (int k = 0; k < 4; k++)
    if (nnlib__onnx_str_is(op, names[k]))
      return eval_binary(mt, n, "+-*/"[k]);
  if (nnlib__onnx_str_is(op, "Shape"))
    return eval_shape(mt, n, a);
  if (nnlib__onnx_str_is(op, "Gather"))
    return eval_gather(mt, n);
  if (nnlib__onnx_str_is(op, "Unsqueeze"))
    return eval_unsqueeze(mt, n);
  if (nnlib__onnx_str_is(op, "Concat"))
    return eval_concat(mt, n);
  if (nnlib__onnx_str_is(op, "Cast"))
    return eval_cast(mt, n, a);
  if (a->role != R_INTS && at == 0) {
    if (nnlib__onnx_str_is(op, "MatMul"))
      return eval_matmul(mt, n, a);
    if (nnlib__onnx_str_is(op, "Slice"))
      return eval_slice(mt, n, a);
    if (nnlib__onnx_str_is(op, "Split"))
      return eval_split(mt, n, a);
    if (nnlib__onnx_str_is(op, "Reshape"))
      return eval_reshape(mt, n, a);
    if (nnlib__onnx_str_is(op, "Transpose"))
      return eval_transpose(mt, n, a);
    if (nnlib__onnx_str_is(op, "Softmax"))
      return eval_softmax(mt, n, a);
    if (nnlib__onnx_str_is(op, "Gemm"))
      return eval_gemm(mt, n, a);
  }
  return refuse(mt, "%s: not a step of the nn.MultiheadAttention pattern "
                    "(docs/ONNX.md)",
                "op");
}

/* ------------------------------------------------------------ the walk */

/* Every input is a subgraph value or a constant: ready. A graph tensor
 * from outside is refused; a name not yet made waits. */
static nnlib_status ready(match *mt, const onode *n, bool *ok) {
  *ok = true;
  for (size_t k = 0; k < n->input_count; k++) {
    if (n->inputs[k].n == 0)
      continue;
    aval *a = find_val(mt, n->inputs[k]);
    if (a != NULL && a->role == R_Y)
      return refuse(mt, "%s: reads the attention's output together with "
                        "its intermediates",
                    "inputs");
    if (a != NULL)
      continue;
    oval *v = nnlib__onnx_find(mt->im, n->inputs[k]);
    if (v == NULL)
      *ok = false;
    else if (v->kind != NNLIB__VALUE_CONST)
      return nnlib__onnx_node_error(
          mt->im, NNLIB_ERR_UNSUPPORTED,
          "input %zu ('%.*s') is a graph tensor from outside the attention "
          "subgraph (weights must be initializers or constants)",
          k, (int)(n->inputs[k].n > 60 ? 60 : n->inputs[k].n),
          n->inputs[k].p);
  }
  return NNLIB_OK;
}

/* Evaluates pending nodes until none is ready; new values add their
 * readers (y's readers are outside). */
static nnlib_status run(match *mt) {
  const nnlib__onnx_graph *g = &mt->im->onnx->graph;
  bool progress = true;
  while (progress) {
    progress = false;
    for (size_t p = 0; p < mt->pending_count; p++) {
      size_t j = mt->pending[p];
      if (mt->evaluated[j])
        continue;
      mt->im->current = j;
      bool ok = false;
      NNLIB_TRY(ready(mt, &g->nodes[j], &ok));
      if (!ok)
        continue;
      size_t before = mt->val_count;
      NNLIB_TRY(eval_node(mt, &g->nodes[j]));
      mt->evaluated[j] = true;
      progress = true;
      for (size_t v = before; v < mt->val_count; v++) {
        if (mt->vals[v].role == R_Y) {
          mt->y = v;
          mt->have_y = true;
          continue;
        }
        if (is_graph_output(mt->im, mt->vals[v].name))
          return refuse(mt, "%s: an intermediate of the attention subgraph "
                            "is a graph output",
                        "output");
        NNLIB_TRY(find_readers(mt, mt->vals[v].name));
      }
    }
  }
  for (size_t p = 0; p < mt->pending_count; p++)
    if (!mt->evaluated[mt->pending[p]]) {
      mt->im->current = mt->pending[p];
      return refuse(mt, "%s: reads a name the attention subgraph does not "
                        "make (only constants and the subgraph's own values "
                        "are read inside it)",
                    "inputs");
    }
  return NNLIB_OK;
}

/* ------------------------------------------------------- the layer */

/* nnlib's (PyTorch's) parameters from the constants found. */
static nnlib_status fill_layer(match *mt, nnlib_layer *l, bool bias) {
  imp *im = mt->im;
  int64_t d = mt->d;
  float *w_in = nnlib__onnx_arena(im, (size_t)(3 * d * d), sizeof(float));
  float *w_out = nnlib__onnx_arena(im, (size_t)(d * d), sizeof(float));
  float *b_out = nnlib__onnx_arena(im, (size_t)d, sizeof(float));
  if (w_in == NULL || w_out == NULL || b_out == NULL)
    return NNLIB_ERR_OUT_OF_MEMORY;
  for (int64_t r = 0; r < 3 * d; r++) /* B_in [D, 3D] = W_in^T */
    for (int64_t c = 0; c < d; c++)
      w_in[r * d + c] = mt->w_in[c * 3 * d + r];
  for (int64_t r = 0; r < d; r++) /* y = alpha A op(B) + beta C */
    for (int64_t c = 0; c < d; c++)
      w_out[r * d + c] = mt->alpha * (mt->w_out_trans ? mt->w_out[r * d + c]
                                                      : mt->w_out[c * d + r]);
  size_t at = 0;
  NNLIB_TRY(nnlib__onnx_add_fill(im, l, false, at++, w_in, 3 * d * d));
  if (bias)
    NNLIB_TRY(nnlib__onnx_add_fill(im, l, false, at++, mt->b_in, 3 * d));
  NNLIB_TRY(nnlib__onnx_add_fill(im, l, false, at++, w_out, d * d));
  if (bias) {
    for (int64_t k = 0; k < d; k++)
      b_out[k] = mt->beta * mt->b_out[mt->b_out_count == 1 ? 0 : k];
    NNLIB_TRY(nnlib__onnx_add_fill(im, l, false, at, b_out, d));
  }
  return NNLIB_OK;
}

static nnlib_status make_layer(match *mt, oval *x, size_t anchor) {
  imp *im = mt->im;
  bool bias = mt->b_in != NULL;
  im->current = anchor;
  if (bias != (mt->b_out != NULL))
    return refuse(mt, "%s: one of the in- and out-projections has a bias "
                      "and the other not (nnlib's attention has both or "
                      "neither)",
                  "weights");
  nnlib_attention_options o;
  NNLIB_TRY(nnlib_attention_options_init(&o));
  o.causal = mt->causal;
  o.with_bias = bias;
  nnlib_layer *l = NULL;
  NNLIB_TRY(nnlib_attention_create(&l, mt->heads, &o));
  nnlib_status st = fill_layer(mt, l, bias);
  return nnlib__onnx_apply_matched(im, l, st, x, mt->vals[mt->y].name, NULL,
                                   0);
}

/* A batch-first [T, D] graph tensor named s, or NULL. */
static oval *rows_of(imp *im, nnlib__onnx_str s) {
  oval *v = nnlib__onnx_find(im, s);
  if (v == NULL || v->ids || v->batch_axis != 0 || v->shape.rank != 2 ||
      (v->kind != NNLIB__VALUE_NODE && v->kind != NNLIB__VALUE_MATMUL))
    return NULL;
  return v;
}

/* The first node that reads output 0 of n and is of type op, or NULL. */
static const onode *read_by(imp *im, const onode *n, const char *op) {
  size_t first = SIZE_MAX;
  if (n->output_count != 1 || n->outputs[0].n == 0 ||
      nnlib__onnx_readers(im, n->outputs[0], &first) == 0 ||
      first == SIZE_MAX || im->done[first])
    return NULL;
  const onode *r = &im->onnx->graph.nodes[first];
  return nnlib__onnx_str_is(r->op_type, op) ? r : NULL;
}

/* Node k, nnlib's own form: a MatMul of a batch-first [T, D] tensor by a
 * constant [D, 3D] that a Split reads, directly or after an Add. */
static bool starts_packed(imp *im, const onode *n, oval **x, oval **w) {
  if (!nnlib__onnx_str_is(n->op_type, "MatMul") || n->input_count != 2 ||
      n->output_count != 1 || n->outputs[0].n == 0)
    return false;
  oval *v = rows_of(im, n->inputs[0]), *c = nnlib__onnx_find(im, n->inputs[1]);
  if (v == NULL || c == NULL || c->kind != NNLIB__VALUE_CONST ||
      c->dtype != NNLIB__ONNX_FLOAT || c->rank != 2 ||
      c->dims[0] != v->shape.dims[1] || c->dims[1] != 3 * v->shape.dims[1])
    return false;
  const onode *bias = read_by(im, n, "Add");
  if (read_by(im, bias != NULL ? bias : n, "Split") == NULL)
    return false;
  *x = v;
  *w = c;
  return true;
}

/* Node k, torch's form: a Transpose [1, 0, 2] of a batch-first [T, D]
 * tensor that a MatMul reads. */
static bool starts_attention(imp *im, const onode *n, oval **x) {
  if (!nnlib__onnx_str_is(n->op_type, "Transpose") || n->input_count != 1 ||
      n->output_count != 1 || n->outputs[0].n == 0 || !perm_is(n, 1, 0, 2))
    return false;
  oval *v = rows_of(im, n->inputs[0]);
  if (v == NULL)
    return false;
  const nnlib__onnx_graph *g = &im->onnx->graph;
  for (size_t j = 0; j < g->node_count; j++) {
    const onode *r = &g->nodes[j];
    if (!im->done[j] && nnlib__onnx_str_is(r->op_type, "MatMul") &&
        r->input_count > 0 && same_name(r->inputs[0], n->outputs[0])) {
      *x = v;
      return true;
    }
  }
  return false;
}

static nnlib_status setup(match *mt, imp *im) {
  memset(mt, 0, sizeof *mt);
  mt->im = im;
  mt->vals = nnlib__onnx_arena(im, MAX_NODES, sizeof *mt->vals);
  mt->pending = nnlib__onnx_arena(im, MAX_NODES, sizeof *mt->pending);
  mt->evaluated = nnlib__onnx_arena(im, im->onnx->graph.node_count,
                                    sizeof *mt->evaluated);
  if (mt->vals == NULL || mt->pending == NULL || mt->evaluated == NULL)
    return NNLIB_ERR_OUT_OF_MEMORY;
  return NNLIB_OK;
}

nnlib_status nnlib__onnx_match_attention(nnlib__onnx_import *im, size_t k,
                                         bool *matched) {
  *matched = false;
  if (im->whole) /* the pattern's shapes hold the batch N as an unknown;
                    in whole-sample mode its nodes map one by one */
    return NNLIB_OK;
  const onode *n = &im->onnx->graph.nodes[k];
  oval *x = NULL, *w_in = NULL;
  bool packed = starts_packed(im, n, &x, &w_in);
  if (!packed && !starts_attention(im, n, &x))
    return NNLIB_OK;
  NNLIB_TRY(nnlib__onnx_need_shape(im, x, "input"));
  match mt;
  NNLIB_TRY(setup(&mt, im));
  mt.t = x->shape.dims[0];
  mt.d = x->shape.dims[1];
  mt.packed = packed;
  mt.w_in = packed ? w_in->f : NULL;
  mt.evaluated[k] = true;
  aval *root = NULL;
  NNLIB_TRY(new_tensor(&mt, n, packed ? R_PROJ : R_X, 0, &root));
  if (is_graph_output(im, root->name))
    return refuse(&mt, "%s: an intermediate of the attention subgraph is a "
                       "graph output",
                  "output");
  NNLIB_TRY(find_readers(&mt, n->outputs[0]));
  NNLIB_TRY(run(&mt));
  im->current = k;
  if (!mt.have_y)
    return refuse(&mt, packed ? "%s: the attention subgraph that starts "
                                "here does not reach its output (the "
                                "out-projection MatMul, and its bias)"
                              : "%s: the attention subgraph that starts "
                                "here does not reach its output (Transpose "
                                "[1, 0, 2] of the out-projection)",
                  "output");
  NNLIB_TRY(make_layer(&mt, x, k));
  for (size_t p = 0; p < mt.pending_count; p++) {
    im->done[mt.pending[p]] = true;
    im->left--;
  }
  *matched = true;
  return NNLIB_OK;
}
