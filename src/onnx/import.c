/* import.c - ONNX models into nnlib graph models: the entry points, the
 * table of named values, the walk over the nodes in dependency order
 * (import_ops.c maps each operator, import_fold.c folds constants), then
 * compile without drawing weights and the initializers copied into the
 * layers' parameters. Everything is freed on every path. */
#include "onnx/import.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ options */

static const nnlib_onnx_options default_options = {
    sizeof(nnlib_onnx_options), 64, NNLIB_LOSS_NONE, NULL, 1, NULL, 0};

nnlib_status nnlib_onnx_options_init_size(nnlib_onnx_options *o,
                                          size_t struct_size) {
  return nnlib__init_options(o, struct_size, &default_options,
                             sizeof default_options, "nnlib_onnx_options");
}

/* -------------------------------------------------------------- arena */

void *nnlib__onnx_arena(nnlib__onnx_import *im, size_t count, size_t size) {
  if (im->arena_count == im->arena_capacity) {
    size_t cap = im->arena_capacity ? 2 * im->arena_capacity : 32;
    void **grown = nnlib__calloc(cap, sizeof *grown);
    if (grown == NULL) {
      nnlib__error(NNLIB_ERR_OUT_OF_MEMORY, "ONNX: no memory");
      return NULL;
    }
    if (im->arena_count)
      memcpy(grown, im->arena, im->arena_count * sizeof *grown);
    nnlib__free(im->arena);
    im->arena = grown;
    im->arena_capacity = cap;
  }
  void *p = nnlib__calloc(count ? count : 1, size);
  if (p == NULL) {
    nnlib__error(NNLIB_ERR_OUT_OF_MEMORY, "ONNX: no memory for %zu x %zu bytes",
                 count, size);
    return NULL;
  }
  im->arena[im->arena_count++] = p;
  return p;
}

/* ------------------------------------------------------------- values */

uint64_t nnlib__onnx_hash(nnlib__onnx_str s) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (size_t k = 0; k < s.n; k++)
    h = (h ^ (unsigned char)s.p[k]) * 1099511628211ull;
  return h;
}

bool nnlib__onnx_same(nnlib__onnx_str a, nnlib__onnx_str b) {
  return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* The table slot of s: its value's, or the empty one it would take. */
static size_t slot_of(const nnlib__onnx_import *im, nnlib__onnx_str s) {
  size_t mask = im->table_size - 1;
  size_t k = (size_t)nnlib__onnx_hash(s) & mask;
  while (im->table[k] != 0 &&
         !nnlib__onnx_same(im->values[im->table[k] - 1].name, s))
    k = (k + 1) & mask;
  return k;
}

nnlib__onnx_value *nnlib__onnx_find(nnlib__onnx_import *im,
                                    nnlib__onnx_str s) {
  size_t k = slot_of(im, s);
  return im->table[k] ? &im->values[im->table[k] - 1] : NULL;
}

static nnlib_status new_value(nnlib__onnx_import *im, nnlib__onnx_str s,
                              nnlib__onnx_value **out) {
  size_t k = slot_of(im, s);
  if (im->table[k] != 0)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "ONNX: the name '%.*s' is defined twice", (int)s.n,
                        s.p);
  if (im->value_count == im->value_capacity) /* counted up front */
    return nnlib__error(NNLIB_ERR_INTERNAL, "ONNX: value table full");
  nnlib__onnx_value *v = &im->values[im->value_count++];
  memset(v, 0, sizeof *v);
  v->name = s;
  im->table[k] = im->value_count;
  *out = v;
  return NNLIB_OK;
}

nnlib_status nnlib__onnx_define(nnlib__onnx_import *im, nnlib__onnx_str s,
                                nnlib__onnx_value **out) {
  nnlib_status st = new_value(im, s, out);
  if (st == NNLIB_ERR_CORRUPT_FILE)
    return nnlib__onnx_node_error(
        im, st, "output '%.*s' is also made elsewhere (ONNX names one tensor "
                "once)",
        (int)s.n, s.p);
  return st;
}

nnlib_status nnlib__onnx_add_fill(nnlib__onnx_import *im, nnlib_layer *l,
                                  bool buffer, size_t index, const float *data,
                                  int64_t count) {
  if (im->fill_count == im->fill_capacity) {
    size_t cap = im->fill_capacity ? 2 * im->fill_capacity : 16;
    nnlib__onnx_fill *grown = nnlib__calloc(cap, sizeof *grown);
    if (grown == NULL)
      return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY, "ONNX: no memory");
    if (im->fill_count)
      memcpy(grown, im->fills, im->fill_count * sizeof *grown);
    nnlib__free(im->fills);
    im->fills = grown;
    im->fill_capacity = cap;
  }
  nnlib__onnx_fill f = {l, buffer, index, data, count};
  im->fills[im->fill_count++] = f;
  return NNLIB_OK;
}

/* the function itself, not import.h's analyzer-only macro over it */
nnlib_status(nnlib__onnx_node_error)(const nnlib__onnx_import *im,
                                     nnlib_status status, const char *fmt,
                                     ...) {
  char detail[400];
  va_list ap;
  va_start(ap, fmt);
  /* clang 14's valist checker calls ap uninitialised right after its
   * va_start here (a false positive; the same lines in text.c draw none) */
  // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized)
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  const nnlib__onnx_node *n = &im->onnx->graph.nodes[im->current];
  return nnlib__error(status, "ONNX node %zu '%.*s' (%.*s): %s", im->current,
                      (int)(n->name.n > 40 ? 40 : n->name.n), n->name.p,
                      (int)(n->op_type.n > 40 ? 40 : n->op_type.n),
                      n->op_type.p, detail);
}

/* ------------------------------------------------------------ layers */

nnlib__onnx_value *nnlib__onnx_float_tensor(nnlib__onnx_import *im,
                                            nnlib__onnx_str s) {
  nnlib__onnx_value *x = nnlib__onnx_find(im, s);
  if (x == NULL || x->ids || x->batch_axis != 0 ||
      (x->kind != NNLIB__VALUE_NODE && x->kind != NNLIB__VALUE_MATMUL) ||
      x->shape.rank == 0)
    return NULL;
  return x;
}

nnlib_status nnlib__onnx_apply_matched(nnlib__onnx_import *im, nnlib_layer *l,
                                       nnlib_status made,
                                       nnlib__onnx_value *x,
                                       nnlib__onnx_str name,
                                       const size_t *chain, size_t count) {
  nnlib__onnx_value *out = NULL;
  if (made == NNLIB_OK)
    made = nnlib__onnx_define(im, name, &out);
  if (made != NNLIB_OK) {
    nnlib_layer_free(l);
    return made;
  }
  nnlib__shape shape = x->shape;
  size_t in = x->node;
  NNLIB_TRY(nnlib__onnx_apply(im, l, &in, 1, out));
  out->shape = shape;
  for (size_t s = 0; s < count; s++) {
    im->done[chain[s]] = true;
    im->left--;
  }
  return NNLIB_OK;
}

nnlib_status nnlib__onnx_apply(nnlib__onnx_import *im, nnlib_layer *l,
                               const size_t *inputs, size_t count,
                               nnlib__onnx_value *out) {
  nnlib_model *m = im->model;
  nnlib__shape in[NNLIB__MAX_INPUTS];
  if (count > NNLIB__MAX_INPUTS) {
    nnlib_layer_free(l);
    return nnlib__onnx_node_error(im, NNLIB_ERR_UNSUPPORTED,
                                  "%zu inputs (at most %d)", count,
                                  NNLIB__MAX_INPUTS);
  }
  for (size_t k = 0; k < count; k++)
    in[k] = m->nodes[inputs[k]].shape;
  char label[96];
  const nnlib__onnx_node *n = &im->onnx->graph.nodes[im->current];
  snprintf(label, sizeof label, "ONNX node %zu '%.*s' (%.*s)", im->current,
           (int)(n->name.n > 30 ? 30 : n->name.n), n->name.p,
           (int)(n->op_type.n > 30 ? 30 : n->op_type.n), n->op_type.p);
  nnlib_status st =
      nnlib__layer_plan_inputs(l, label, in, count, im->max_batch, "");
  if (st == NNLIB_ERR_INVALID_ARGUMENT)
    st = nnlib__error(NNLIB_ERR_SHAPE_MISMATCH, "%s",
                      nnlib_last_error_message());
  if (st != NNLIB_OK) {
    nnlib_layer_free(l);
    return st;
  }
  nnlib__shape shape = l->out_shape;
  size_t node = 0;
  NNLIB_TRY(nnlib__model_apply(m, l, inputs, count, &node)); /* takes l */
  m->nodes[node].shape = shape; /* compile plans again; shapes for later */
  m->nodes[node].size = nnlib__shape_numel(&shape);
  out->kind = NNLIB__VALUE_NODE;
  out->node = node;
  out->shape = shape;
  return NNLIB_OK;
}

nnlib_status nnlib__onnx_materialize(nnlib__onnx_import *im,
                                     nnlib__onnx_value *v) {
  if (v->kind == NNLIB__VALUE_RECURRENT)
    return nnlib__onnx_make_recurrent(im, v);
  if (v->kind != NNLIB__VALUE_MATMUL)
    return NNLIB_OK;
  size_t saved = im->current;
  im->current = v->mm_onnx_node;
  nnlib_layer *l = NULL;
  nnlib_status st = v->mm_shape.rank > 1
                        ? nnlib_linear_create(&l, v->mm_out, 0)
                        : nnlib_dense_create(&l, v->mm_in, v->mm_out, 0);
  if (st == NNLIB_OK)
    st = nnlib__onnx_add_fill(im, l, false, 0, v->mm_weight,
                              v->mm_in * v->mm_out);
  if (st != NNLIB_OK) {
    nnlib_layer_free(l);
    im->current = saved;
    return st;
  }
  nnlib__shape want = v->mm_shape;
  want.dims[want.rank - 1] = v->mm_out;
  st = nnlib__onnx_apply(im, l, &v->mm_input, 1, v);
  v->shape = want;
  im->current = saved;
  return st;
}

nnlib_status nnlib__onnx_need_shape(nnlib__onnx_import *im,
                                    nnlib__onnx_value *v, const char *what) {
  NNLIB_TRY(nnlib__onnx_materialize(im, v));
  if (v->batch_axis != 0)
    return nnlib__onnx_node_error(
        im, NNLIB_ERR_UNSUPPORTED,
        "%s '%.*s' has the batch at axis %zu (a time-major view that only a "
        "recurrent operator, a Transpose or a Squeeze reads)",
        what, (int)v->name.n, v->name.p, v->batch_axis);
  const nnlib__shape *have = &im->model->nodes[v->node].shape;
  if (nnlib__shape_equal(have, &v->shape))
    return NNLIB_OK;
  if (v->shape.rank == 1) { /* ONNX flattened it: so do we */
    nnlib_layer *l = NULL;
    NNLIB_TRY(nnlib_flatten_create(&l));
    nnlib__onnx_value copy = *v;
    NNLIB_TRY(nnlib__onnx_apply(im, l, &copy.node, 1, v));
    return NNLIB_OK;
  }
  char a[96], b[96];
  nnlib__shape_text(have, a, sizeof a);
  nnlib__shape_text(&v->shape, b, sizeof b);
  return nnlib__onnx_node_error(
      im, NNLIB_ERR_UNSUPPORTED,
      "%s '%.*s' is %s per sample in ONNX but %s in nnlib (a reshape nnlib "
      "has no layer for)",
      what, (int)v->name.n, v->name.p, b, a);
}

/* ------------------------------------------------------------ readers */

static size_t reader_slot(const nnlib__onnx_import *im, nnlib__onnx_str s) {
  size_t mask = im->reader_table_size - 1;
  size_t k = (size_t)nnlib__onnx_hash(s) & mask;
  while (im->reader_counts[k] != 0 &&
         !nnlib__onnx_same(im->reader_names[k], s))
    k = (k + 1) & mask;
  return k;
}

static void count_reader(nnlib__onnx_import *im, nnlib__onnx_str s,
                         size_t node) {
  if (s.n == 0)
    return;
  size_t k = reader_slot(im, s);
  if (im->reader_counts[k]++ == 0) {
    im->reader_names[k] = s;
    im->first_reader[k] = node;
  }
}

/* Every input of a node the output needs, and the chosen graph output,
 * counted per name (nodes pruned away and the other graph outputs read
 * nothing: they are not computed). */
static nnlib_status count_readers(nnlib__onnx_import *im) {
  const nnlib__onnx_graph *g = &im->onnx->graph;
  size_t uses = 1;
  for (size_t k = 0; k < g->node_count; k++)
    uses += g->nodes[k].input_count;
  im->reader_table_size = 16;
  while (im->reader_table_size < 2 * uses)
    im->reader_table_size *= 2;
  size_t n = im->reader_table_size;
  im->reader_names = nnlib__onnx_arena(im, n, sizeof *im->reader_names);
  im->reader_counts = nnlib__onnx_arena(im, n, sizeof *im->reader_counts);
  im->first_reader = nnlib__onnx_arena(im, n, sizeof *im->first_reader);
  if (!im->reader_names || !im->reader_counts || !im->first_reader)
    return NNLIB_ERR_OUT_OF_MEMORY;
  for (size_t k = 0; k < g->node_count; k++)
    for (size_t i = 0; i < g->nodes[k].input_count && !im->done[k]; i++)
      count_reader(im, g->nodes[k].inputs[i], k);
  count_reader(im, g->outputs[im->output].name, SIZE_MAX);
  return NNLIB_OK;
}

size_t nnlib__onnx_readers(const nnlib__onnx_import *im, nnlib__onnx_str s,
                           size_t *first) {
  size_t k = reader_slot(im, s);
  if (first != NULL)
    *first = im->reader_counts[k] ? im->first_reader[k] : SIZE_MAX;
  return im->reader_counts[k];
}


/* ------------------------------------------------------ node helpers */

const nnlib__onnx_attr *nnlib__onnx_find_attr(const nnlib__onnx_node *n,
                                         const char *name) {
  for (size_t k = n->attr_count; k-- > 0;) /* the last one wins */
    if (nnlib__onnx_str_is(n->attrs[k].name, name))
      return &n->attrs[k];
  return NULL;
}

int64_t nnlib__onnx_attr_int(const nnlib__onnx_node *n, const char *name,
                             int64_t fallback) {
  const nnlib__onnx_attr *a = nnlib__onnx_find_attr(n, name);
  return a ? a->i : fallback;
}

float nnlib__onnx_attr_float(const nnlib__onnx_node *n, const char *name,
                             float fallback) {
  const nnlib__onnx_attr *a = nnlib__onnx_find_attr(n, name);
  return a ? a->f : fallback;
}

nnlib__onnx_value *nnlib__onnx_input(nnlib__onnx_import *im,
                                     const nnlib__onnx_node *n, size_t k) {
  if (k >= n->input_count || n->inputs[k].n == 0)
    return NULL;
  return nnlib__onnx_find(im, n->inputs[k]);
}

/* ------------------------------------------------------ graph inputs */

static bool has_initializer(const nnlib__onnx_graph *g, nnlib__onnx_str s) {
  for (size_t k = 0; k < g->initializer_count; k++)
    if (nnlib__onnx_same(g->initializers[k].name, s))
      return true;
  return false;
}

size_t nnlib__onnx_full_dims(const nnlib__onnx_import *im,
                             const nnlib__onnx_value *v, int64_t *full) {
  if (im->whole) {
    memcpy(full, v->shape.dims, v->shape.rank * sizeof *full);
    return v->shape.rank;
  }
  size_t rank = v->shape.rank + 1;
  for (size_t k = 0, from = 0; k < rank; k++)
    full[k] = k == v->batch_axis ? NNLIB__ONNX_BATCH : v->shape.dims[from++];
  return rank;
}

/* The model input's per-sample shape of graph input `info`: its dims
 * without the batch axis (the first, or the second of a time-major [T,
 * batch, F] that only layout-0 recurrent nodes read: the model input is
 * then batch first, [batch, T, F]); in whole-sample mode all its dims.
 * Every axis kept must be a fixed number. */
static nnlib_status input_sample_shape(const nnlib__onnx_import *im,
                                       const nnlib__onnx_value_info *info,
                                       nnlib__shape *s, size_t *batch) {
  int nl = (int)(info->name.n > 60 ? 60 : info->name.n);
  size_t lead = im->whole ? 0 : 1;
  if (!info->has_shape || info->rank_overflow || info->rank < lead + 1 ||
      info->rank - lead > NNLIB_MAX_RANK - 1)
    return nnlib__error(NNLIB_ERR_UNSUPPORTED,
                        "ONNX: graph input '%.*s' has rank %zu; nnlib needs "
                        "%s1 to %d axes per sample",
                        nl, info->name.p, info->rank,
                        im->whole ? "" : "a batch axis first and ",
                        NNLIB_MAX_RANK - 1);
  *batch = im->whole                                ? SIZE_MAX
           : nnlib__onnx_time_major_input(im, info) ? 1
                                                    : 0;
  s->rank = info->rank - lead;
  for (size_t k = 0, at = 0; k < info->rank; k++) {
    if (k == *batch)
      continue;
    if (info->dims[k] <= 0)
      return nnlib__error(NNLIB_ERR_UNSUPPORTED,
                          "ONNX: graph input '%.*s': axis %zu is symbolic or "
                          "0 (%s)",
                          nl, info->name.p, k,
                          im->whole ? "whole-sample import needs every axis "
                                      "fixed"
                                    : "only the batch axis may vary");
    s->dims[at++] = info->dims[k];
  }
  return NNLIB_OK;
}

/* A graph input becomes a model input of its per-sample shape. */
static nnlib_status add_graph_input(nnlib__onnx_import *im,
                                    const nnlib__onnx_value_info *info) {
  int nl = (int)(info->name.n > 60 ? 60 : info->name.n);
  bool ids = info->elem_type == NNLIB__ONNX_INT64 ||
             info->elem_type == NNLIB__ONNX_INT32;
  bool small = info->elem_type == NNLIB__ONNX_UINT8 ||
               info->elem_type == NNLIB__ONNX_INT8; /* read as floats */
  if (info->elem_type != NNLIB__ONNX_FLOAT && !ids && !small)
    return nnlib__error(NNLIB_ERR_UNSUPPORTED,
                        "ONNX: graph input '%.*s' has element type %d (float "
                        "inputs, int64 token ids for an embedding, and uint8 "
                        "or int8 inputs that operators exact in float32 read "
                        "are read)",
                        nl, info->name.p, (int)info->elem_type);
  if (small)
    NNLIB_TRY(nnlib__onnx_check_integer_input(im, info));
  nnlib__shape s = {0, {0}};
  size_t batch = 0;
  NNLIB_TRY(input_sample_shape(im, info, &s, &batch));
  int64_t size = 0;
  nnlib_status st = nnlib__shape_size(s.dims, s.rank, &size, "ONNX input");
  if (st != NNLIB_OK || size > INT32_MAX)
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "ONNX: graph input '%.*s': its dims make more than "
                        "2^31 - 1 elements per sample",
                        nl, info->name.p);
  nnlib__onnx_value *v = NULL;
  NNLIB_TRY(new_value(im, info->name, &v));
  size_t node = 0;
  NNLIB_TRY(nnlib__model_add_input(im->model, &s, &node));
  v->kind = NNLIB__VALUE_NODE;
  v->node = node;
  v->shape = s;
  v->ids = ids;
  v->batch_axis = batch == 1 ? 1 : 0;
  return NNLIB_OK;
}

static nnlib_status declare_values(nnlib__onnx_import *im) {
  const nnlib__onnx_graph *g = &im->onnx->graph;
  for (size_t k = 0; k < g->initializer_count; k++) {
    nnlib__onnx_value *v = NULL;
    NNLIB_TRY(new_value(im, g->initializers[k].name, &v));
    NNLIB_TRY(nnlib__onnx_const_from_tensor(im, &g->initializers[k], v));
  }
  for (size_t k = 0; k < g->input_count; k++)
    if (!has_initializer(g, g->inputs[k].name)) /* else a default: constant */
      NNLIB_TRY(add_graph_input(im, &g->inputs[k]));
  return NNLIB_OK;
}

/* -------------------------------------------------------------- walk */

static bool node_ready(nnlib__onnx_import *im, const nnlib__onnx_node *n) {
  for (size_t k = 0; k < n->input_count; k++)
    if (n->inputs[k].n > 0 && nnlib__onnx_find(im, n->inputs[k]) == NULL)
      return false;
  return true;
}

/* No node could run: a name nothing makes, or a cycle. */
static nnlib_status explain_stuck(nnlib__onnx_import *im, const bool *done) {
  const nnlib__onnx_graph *g = &im->onnx->graph;
  for (size_t k = 0; k < g->node_count; k++) {
    if (done[k])
      continue;
    const nnlib__onnx_node *n = &g->nodes[k];
    for (size_t i = 0; i < n->input_count; i++) {
      nnlib__onnx_str s = n->inputs[i];
      if (s.n == 0 || nnlib__onnx_find(im, s) != NULL)
        continue;
      bool made = false;
      for (size_t j = 0; j < g->node_count && !made; j++)
        for (size_t o = 0; o < g->nodes[j].output_count && !made; o++)
          made = nnlib__onnx_same(g->nodes[j].outputs[o], s);
      if (!made) {
        im->current = k;
        return nnlib__onnx_node_error(
            im, NNLIB_ERR_CORRUPT_FILE,
            "input '%.*s' is made by no node, initializer or graph input",
            (int)(s.n > 60 ? 60 : s.n), s.p);
      }
    }
  }
  return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                      "ONNX: the graph has a cycle (its nodes wait on each "
                      "other)");
}

static nnlib_status map_one(nnlib__onnx_import *im, size_t k) {
  im->current = k;
  NNLIB_TRY(nnlib__onnx_map_node(im, k));
  if (!im->done[k]) {
    im->done[k] = true;
    im->left--;
  }
  return NNLIB_OK;
}

/* Constants first (they read nothing), so that a subgraph pattern sees the
 * constants of its later nodes; then every node once its inputs exist.
 * A pattern may mark later nodes done (nnlib__onnx_match_gelu). */
static nnlib_status walk_nodes(nnlib__onnx_import *im) {
  const nnlib__onnx_graph *g = &im->onnx->graph;
  im->left = 0;
  for (size_t k = 0; k < g->node_count; k++)
    im->left += !im->done[k];
  for (size_t k = 0; k < g->node_count; k++)
    if (!im->done[k] && nnlib__onnx_str_is(g->nodes[k].op_type, "Constant") &&
        g->nodes[k].input_count == 0)
      NNLIB_TRY(map_one(im, k));
  while (im->left > 0) {
    size_t before = im->left;
    for (size_t k = 0; k < g->node_count; k++) {
      if (im->done[k] || !node_ready(im, &g->nodes[k]))
        continue;
      NNLIB_TRY(map_one(im, k));
    }
    if (im->left == before)
      return explain_stuck(im, im->done);
  }
  return NNLIB_OK;
}

/* The chosen graph output becomes the model's output. A time-major one
 * (batch not first: a layout-0 recurrent Y [T, 1, batch, H] or Y_h [1,
 * batch, H], or a Transpose that moved the batch) is given batch first:
 * nnlib's data is always batch first, the other axes keep their order. */
static nnlib_status set_output(nnlib__onnx_import *im) {
  const nnlib__onnx_graph *g = &im->onnx->graph;
  nnlib__onnx_str s = g->outputs[im->output].name;
  nnlib__onnx_value *v = nnlib__onnx_find(im, s);
  int nl = (int)(s.n > 60 ? 60 : s.n);
  if (v == NULL)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "ONNX: graph output '%.*s' is made by no node", nl,
                        s.p);
  if (v->kind == NNLIB__VALUE_UNUSABLE)
    return nnlib__error(NNLIB_ERR_UNSUPPORTED,
                        "ONNX: graph output '%.*s' is %s; nnlib does not "
                        "compute it",
                        nl, s.p, v->unusable);
  if (v->kind == NNLIB__VALUE_CONST || v->kind == NNLIB__VALUE_ZEROS)
    return nnlib__error(NNLIB_ERR_UNSUPPORTED,
                        "ONNX: graph output '%.*s' is a constant (no layer "
                        "computes it)",
                        nl, s.p);
  NNLIB_TRY(nnlib__onnx_materialize(im, v));
  if (im->model->nodes[v->node].layer == NULL)
    return nnlib__error(NNLIB_ERR_UNSUPPORTED,
                        "ONNX: graph output '%.*s' is a graph input: the "
                        "model has no layer",
                        nl, s.p);
  return nnlib__model_set_output(im->model, v->node);
}

static nnlib_status fill_parameters(nnlib__onnx_import *im) {
  for (size_t k = 0; k < im->fill_count; k++) {
    const nnlib__onnx_fill *f = &im->fills[k];
    nnlib__param *p =
        f->buffer ? &f->layer->buffers[f->index] : &f->layer->params[f->index];
    if ((f->buffer ? f->layer->buffer_count : f->layer->param_count) <=
            f->index ||
        p->size != f->count)
      return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                          "ONNX: %s's %s holds %lld values, the file gives "
                          "%lld",
                          f->layer->ops->name(f->layer),
                          f->index < NNLIB__MAX_PARAMS && p->name ? p->name
                                                                  : "tensor",
                          (long long)p->size, (long long)f->count);
    memcpy(p->value.data, f->data, (size_t)f->count * sizeof(float));
  }
  return NNLIB_OK;
}

/* --------------------------------------------------------- the import */

static nnlib_status check_model(const nnlib__onnx_model *o) {
  if (!o->has_graph)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE, "ONNX: the model has no graph");
  if (o->opset < 1 || o->opset > 17)
    return nnlib__error(NNLIB_ERR_UNSUPPORTED_VERSION,
                        "ONNX: opset %lld of the default domain; nnlib reads "
                        "opsets up to 17 (older ones as far as each "
                        "operator's definition allows)",
                        (long long)o->opset);
  if (o->graph.has_sparse)
    return nnlib__error(NNLIB_ERR_UNSUPPORTED,
                        "ONNX: sparse initializers are not read");
  return NNLIB_OK;
}

/* Orders names by length, then bytes (for qsort). */
static int compare_names(const void *a, const void *b) {
  const nnlib__onnx_str *x = a, *y = b;
  if (x->n != y->n)
    return x->n < y->n ? -1 : 1;
  return memcmp(x->p, y->p, x->n);
}

/* ONNX names each tensor once. A name two nodes make is refused before
 * the walk: the operator matchers (layer normalisation, attention) follow
 * names ahead of it, before the second definition would be refused, and a
 * name made twice led them into nodes the output does not need. */
static nnlib_status outputs_named_once(const nnlib__onnx_graph *g) {
  size_t count = 0, used = 0;
  for (size_t k = 0; k < g->node_count; k++)
    count += g->nodes[k].output_count;
  if (count < 2)
    return NNLIB_OK;
  nnlib__onnx_str *names = nnlib__calloc(count, sizeof *names);
  if (names == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY, "ONNX: no memory");
  for (size_t k = 0; k < g->node_count; k++)
    for (size_t o = 0; o < g->nodes[k].output_count; o++)
      if (g->nodes[k].outputs[o].n > 0) /* "": an output left out */
        names[used++] = g->nodes[k].outputs[o];
  qsort(names, used, sizeof *names, compare_names);
  nnlib_status st = NNLIB_OK;
  for (size_t k = 1; k < used && st == NNLIB_OK; k++)
    if (compare_names(&names[k - 1], &names[k]) == 0)
      st = nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "ONNX: two nodes make the output '%.*s' (ONNX names "
                        "one tensor once)",
                        (int)names[k].n, names[k].p);
  nnlib__free(names);
  return st;
}

static nnlib_status setup(nnlib__onnx_import *im) {
  const nnlib__onnx_graph *g = &im->onnx->graph;
  size_t names = g->initializer_count + g->input_count;
  for (size_t k = 0; k < g->node_count; k++)
    names += g->nodes[k].output_count;
  im->value_capacity = names;
  im->values = nnlib__calloc(names ? names : 1, sizeof *im->values);
  im->table_size = 16;
  while (im->table_size < 2 * names)
    im->table_size *= 2;
  im->table = nnlib__calloc(im->table_size, sizeof *im->table);
  if (im->values == NULL || im->table == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY, "ONNX: no memory");
  return NNLIB_OK;
}

static void teardown(nnlib__onnx_import *im) {
  for (size_t k = 0; k < im->arena_count; k++)
    nnlib__free(im->arena[k]);
  nnlib__free(im->arena);
  nnlib__free(im->fills);
  nnlib__free(im->values);
  nnlib__free(im->table);
}

/* Builds, compiles (taking opt) and fills the model. */
static nnlib_status build(nnlib__onnx_import *im, const nnlib_onnx_options *o,
                          nnlib_optimizer *opt) {
  nnlib_status st = setup(im);
  if (st == NNLIB_OK)
    st = outputs_named_once(&im->onnx->graph);
  if (st == NNLIB_OK)
    st = nnlib__onnx_choose_output(im, o->output);
  if (st == NNLIB_OK)
    st = nnlib__onnx_prune(im);
  if (st == NNLIB_OK)
    st = count_readers(im);
  if (st == NNLIB_OK)
    st = declare_values(im);
  if (st == NNLIB_OK)
    st = walk_nodes(im);
  if (st == NNLIB_OK)
    st = set_output(im);
  if (st != NNLIB_OK) {
    nnlib_optimizer_free(opt);
    return st;
  }
  st = nnlib__model_compile(im->model, NULL, 0, o->max_batch, o->loss, opt,
                             o->seed, false);
  if (st == NNLIB_ERR_INVALID_ARGUMENT || st == NNLIB_ERR_WRONG_STATE) {
    /* a graph nnlib cannot compile, such as an input the output does not
     * depend on (legal in ONNX) */
    char detail[400];
    snprintf(detail, sizeof detail, "%s", nnlib_last_error_message());
    return nnlib__error(NNLIB_ERR_UNSUPPORTED, "ONNX: %s", detail);
  }
  NNLIB_TRY(st);
  return fill_parameters(im);
}

/* The caller's options, checked before any byte of the model is read:
 * compile would refuse a bad loss only after the whole import. */
static nnlib_status read_options(const nnlib_onnx_options *options,
                                 nnlib_onnx_options *o) {
  *o = default_options;
  if (options != NULL)
    NNLIB_TRY(nnlib__read_options(o, sizeof *o, options, "nnlib_onnx_options"));
  if (o->max_batch < 1)
    return nnlib__error(NNLIB_ERR_INVALID_ARGUMENT,
                        "nnlib_onnx_options: max_batch %lld, must be >= 1",
                        (long long)o->max_batch);
  if (o->whole_sample != 0 && o->whole_sample != 1)
    return nnlib__error(NNLIB_ERR_INVALID_ARGUMENT,
                        "nnlib_onnx_options: whole_sample %d, must be 0 or 1",
                        o->whole_sample);
  if (!(o->loss >= NNLIB_LOSS_NONE && o->loss <= NNLIB_LOSS_SOFTMAX_CE))
    return nnlib__error(NNLIB_ERR_INVALID_ARGUMENT,
                        "nnlib_onnx_options: loss %d is no nnlib_loss",
                        (int)o->loss);
  if (o->loss == NNLIB_LOSS_NONE && o->optimizer != NULL)
    return nnlib__error(NNLIB_ERR_INVALID_ARGUMENT,
                        "nnlib_onnx_options: an optimizer with loss "
                        "NNLIB_LOSS_NONE (an optimizer needs a loss to "
                        "minimise)");
  return NNLIB_OK;
}

/* The optimizer the model will take: the caller's, or plain SGD (rate
 * 0.01) when a loss is set and none is given. */
static nnlib_status pick_optimizer(const nnlib_onnx_options *o,
                                   nnlib_optimizer **opt) {
  *opt = o->optimizer;
  if (*opt == NULL && o->loss != NNLIB_LOSS_NONE)
    return nnlib_sgd_create(opt, 0.01f, 0.0f, 0, 0.0f);
  return NNLIB_OK;
}

nnlib_status nnlib_model_load_onnx_buffer(nnlib_model **out, const void *data,
                                          size_t size,
                                          const nnlib_onnx_options *options) {
  nnlib_optimizer *given = options != NULL &&
                                   options->struct_size >=
                                       offsetof(nnlib_onnx_options, seed)
                               ? options->optimizer
                               : NULL;
  if (out != NULL)
    *out = NULL;
  if (out == NULL || (data == NULL && size > 0)) {
    nnlib_optimizer_free(given);
    return nnlib__error(NNLIB_ERR_INVALID_ARGUMENT,
                        "nnlib_model_load_onnx_buffer: out or data is NULL");
  }
  nnlib_onnx_options o;
  nnlib_status st = read_options(options, &o);
  nnlib_optimizer *opt = NULL;
  if (st == NNLIB_OK)
    st = pick_optimizer(&o, &opt);
  if (st != NNLIB_OK) {
    nnlib_optimizer_free(given);
    return st;
  }
  nnlib__onnx_model onnx;
  st = nnlib__onnx_parse(data, size, &onnx);
  if (st == NNLIB_OK)
    st = check_model(&onnx);
  nnlib_model *m = NULL;
  if (st == NNLIB_OK)
    st = nnlib_model_create(&m);
  if (st != NNLIB_OK) {
    nnlib__onnx_model_free(&onnx);
    nnlib_optimizer_free(opt);
    return st;
  }
  nnlib__onnx_import im;
  memset(&im, 0, sizeof im);
  im.onnx = &onnx;
  im.model = m;
  im.max_batch = o.max_batch;
  im.whole = o.whole_sample == 1;
  st = build(&im, &o, opt);
  teardown(&im);
  nnlib__onnx_model_free(&onnx);
  if (st != NNLIB_OK) {
    nnlib_model_free(m);
    return st;
  }
  *out = m;
  return NNLIB_OK;
}

nnlib_status nnlib_model_load_onnx(nnlib_model **out, const char *path,
                                   const nnlib_onnx_options *options) {
  nnlib_optimizer *given = options != NULL &&
                                   options->struct_size >=
                                       offsetof(nnlib_onnx_options, seed)
                               ? options->optimizer
                               : NULL;
  if (out != NULL)
    *out = NULL;
  if (out == NULL || path == NULL) {
    nnlib_optimizer_free(given);
    return nnlib__error(NNLIB_ERR_INVALID_ARGUMENT,
                        "nnlib_model_load_onnx: out or path is NULL");
  }
  nnlib_onnx_options o; /* bad options fail before the file is read */
  nnlib_status st = read_options(options, &o);
  if (st != NNLIB_OK) {
    nnlib_optimizer_free(given);
    return st;
  }
  unsigned char *bytes = NULL;
  size_t size = 0;
  st = nnlib__read_file("nnlib_model_load_onnx", path, &bytes, &size);
  if (st != NNLIB_OK) {
    nnlib_optimizer_free(given);
    return st;
  }
  st = nnlib_model_load_onnx_buffer(out, bytes, size, options);
  nnlib__free(bytes);
  return st;
}
