/* transpose.c - a permutation of the per-sample axes: output axis k is
 * input axis perm[k] (torch's x.permute(0, 1 + perm[0], ...), the batch
 * axis never moves).
 *
 * forward:  y[i_perm[0], ..., i_perm[r-1]] = x[i_0, ..., i_{r-1}]
 * backward: dx = dy permuted by the inverse, inv[perm[k]] = k
 *
 * Both are one strided copy. Plan reduces each direction to the fewest
 * axes (unit axes dropped, runs of input axes that stay adjacent and in
 * order merged), so [C, H, W] -> [H, W, C] is a 2-D transpose of [C, HW].
 * The copy then walks every axis but two with an odometer; the two are
 * the source's last axis (contiguous in x) and the one that becomes the
 * destination's last (contiguous in y), transposed in tiles
 * (nnlib__transpose_tiles), so both sides are read and written in cache
 * lines. When the
 * source's last axis stays last, the copy is a memcpy per row. */
#include "layers/layer.h"

#include <stdio.h>
#include <string.h>

/* Per-sample ranks go up to NNLIB_MAX_RANK - 1; the batch makes one more
 * loop. */
#define AXES NNLIB_MAX_RANK

/* One direction's copy, over the source's axes after plan_permute merged
 * them (shapes only: plan sets it, the passes read it). */
typedef struct permute_plan {
  size_t rank;
  int64_t dims[AXES];
  int64_t perm[AXES]; /* destination axis k is source axis perm[k] */
  int64_t size;       /* elements per sample */
} permute_plan;

typedef struct transpose_layer {
  nnlib_layer base;
  size_t rank;
  int64_t perm[AXES];
  permute_plan forward, backward; /* set by plan */
} transpose_layer;

static const char *transpose_name(const nnlib_layer *l) {
  (void)l;
  return "transpose";
}

/* -------------------------------------------------------- the plan */

/* Drops the source axes of size 1 (they move no element) from dims and
 * perm, renumbering the rest; returns how many are left. */
static size_t drop_unit_axes(const int64_t *dims, const int64_t *perm,
                             size_t rank, int64_t *out_dims,
                             int64_t *out_perm) {
  int64_t renumbered[AXES];
  size_t kept = 0;
  for (size_t a = 0; a < rank; a++) {
    renumbered[a] = dims[a] == 1 ? -1 : (int64_t)kept;
    if (dims[a] != 1)
      out_dims[kept++] = dims[a];
  }
  size_t k = 0;
  for (size_t i = 0; i < rank; i++)
    if (renumbered[perm[i]] >= 0)
      out_perm[k++] = renumbered[perm[i]];
  return kept;
}

/* The copy of a source of `dims` into its permutation over the fewest
 * axes: source axis a joins axis a - 1 when the destination has it right
 * after a - 1, since the two then stay one contiguous run on both sides. */
static void plan_permute(const int64_t *dims, const int64_t *perm,
                         size_t rank, permute_plan *p) {
  /* zeroed though drop_unit_axes writes the first r of each: that perm is
   * a permutation is beyond clang's analyzer */
  int64_t d[AXES] = {0}, q[AXES] = {0};
  size_t r = drop_unit_axes(dims, perm, rank, d, q);
  p->size = 1;
  for (size_t a = 0; a < rank; a++)
    p->size *= dims[a];
  if (r == 0) { /* one element */
    p->rank = 1;
    p->dims[0] = 1;
    p->perm[0] = 0;
    return;
  }
  bool starts[AXES] = {0};
  for (size_t a = 0; a < r; a++)
    starts[a] = true;
  for (size_t k = 1; k < r; k++)
    if (q[k] == q[k - 1] + 1)
      starts[q[k]] = false;
  int64_t merged[AXES] = {0};
  size_t g = 0;
  for (size_t a = 0; a < r; a++) {
    if (starts[a])
      p->dims[g++] = d[a];
    else
      p->dims[g - 1] *= d[a];
    merged[a] = (int64_t)g - 1;
  }
  p->rank = g;
  size_t k = 0;
  for (size_t i = 0; i < r; i++)
    if (starts[q[i]])
      p->perm[k++] = merged[q[i]];
}

static nnlib_status transpose_plan(nnlib_layer *l, const nnlib__shape *in,
                                   int64_t max_batch) {
  (void)max_batch;
  transpose_layer *t = (transpose_layer *)l;
  if (in->rank != t->rank) {
    char shape[160];
    nnlib__shape_text(in, shape, sizeof shape);
    return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                        "transpose: a permutation of %zu axes, but the input "
                        "is %s, of rank %zu",
                        t->rank, shape, in->rank);
  }
  int64_t inverse[AXES];
  l->out_shape.rank = t->rank;
  for (size_t k = 0; k < t->rank; k++) {
    l->out_shape.dims[k] = in->dims[t->perm[k]];
    inverse[t->perm[k]] = (int64_t)k;
  }
  plan_permute(in->dims, t->perm, t->rank, &t->forward);
  plan_permute(l->out_shape.dims, inverse, t->rank, &t->backward);
  return NNLIB_OK;
}

/* ------------------------------------------------------- the copy */

/* The axes the odometer walks: sizes and strides in source and
 * destination, outermost first. */
typedef struct loops {
  size_t count;
  int64_t dims[AXES + 1], src[AXES + 1], dst[AXES + 1];
} loops;

/* Row-major strides of `dims`. */
static void strides_of(const int64_t *dims, size_t rank, int64_t *out) {
  int64_t s = 1;
  for (size_t a = rank; a-- > 0;) {
    out[a] = s;
    s *= dims[a];
  }
}

/* Moves (src, dst) to the next position of the odometer; false after the
 * last. */
static bool advance(const loops *o, int64_t *at, int64_t *src, int64_t *dst) {
  for (size_t a = o->count; a-- > 0;) {
    *src += o->src[a];
    *dst += o->dst[a];
    if (++at[a] < o->dims[a])
      return true;
    *src -= o->src[a] * o->dims[a];
    *dst -= o->dst[a] * o->dims[a];
    at[a] = 0;
  }
  return false;
}

/* The strides of each source axis a: xs[a] in the source, ys[a] in the
 * destination. */
static void plan_strides(const permute_plan *p, int64_t *xs, int64_t *ys) {
  int64_t od[AXES], ys_at[AXES];
  strides_of(p->dims, p->rank, xs);
  for (size_t k = 0; k < p->rank; k++)
    od[k] = p->dims[p->perm[k]];
  strides_of(od, p->rank, ys_at);
  for (size_t k = 0; k < p->rank; k++)
    ys[p->perm[k]] = ys_at[k];
}

/* The odometer over n samples and every source axis but `last` and
 * `inner`, the outer ones in destination order (writes stay near). */
static loops outer_loops(const permute_plan *p, int64_t n, const int64_t *xs,
                         const int64_t *ys, size_t last, size_t inner) {
  loops o = {.count = 1, .dims = {n}, .src = {p->size}, .dst = {p->size}};
  for (size_t k = 0; k < p->rank; k++) {
    size_t a = (size_t)p->perm[k];
    if (a == last || a == inner)
      continue;
    o.dims[o.count] = p->dims[a];
    o.src[o.count] = xs[a];
    o.dst[o.count++] = ys[a];
  }
  return o;
}

/* n samples of x permuted into y as p says: at each odometer position
 * either one row copied (the source's last axis stays last) or one tiled
 * 2-D transpose of the axes contiguous in x and in y. */
static void permute(const permute_plan *p, const float *x, float *y,
                    int64_t n) {
  if (n <= 0)
    return;
  int64_t xs[AXES], ys[AXES];
  size_t last = p->rank - 1, inner = (size_t)p->perm[last];
  plan_strides(p, xs, ys);
  loops o = outer_loops(p, n, xs, ys, last, inner);
  int64_t at[AXES + 1] = {0}, src = 0, dst = 0;
  do {
    if (inner == last)
      memcpy(y + dst, x + src, (size_t)p->dims[last] * sizeof(float));
    else
      nnlib__transpose_tiles(x + src, y + dst, p->dims[inner], p->dims[last],
                      xs[inner], ys[last]);
  } while (advance(&o, at, &src, &dst));
}

static nnlib_status transpose_forward(nnlib_layer *l, const nnlib__run *run,
                                      const float *x, float *y, int64_t n) {
  (void)run;
  permute(&((transpose_layer *)l)->forward, x, y, n);
  return NNLIB_OK;
}

static nnlib_status transpose_backward(nnlib_layer *l, const nnlib__run *run,
                                       const float *x, const float *y,
                                       float *dy, float *dx, int64_t n) {
  (void)run;
  (void)x;
  (void)y;
  if (dx != NULL)
    permute(&((transpose_layer *)l)->backward, dy, dx, n);
  return NNLIB_OK;
}

static const nnlib__layer_ops transpose_ops = {
    .kind = NNLIB_LAYER_TRANSPOSE,
    .plan = transpose_plan,
    .forward = transpose_forward,
    .backward = transpose_backward,
    .name = transpose_name,
    .dx_over_output = true, /* backward never reads y */
};

/* NNLIB_OK when perm holds each of 0 .. rank - 1 once; else the status
 * with a message naming the first wrong value. */
static nnlib_status check_perm(const int64_t *perm, size_t rank) {
  bool seen[AXES] = {false};
  for (size_t k = 0; k < rank; k++) {
    if (perm[k] < 0 || perm[k] >= (int64_t)rank)
      return nnlib__error(NNLIB_ERR_INVALID_ARGUMENT,
                          "nnlib_transpose_create: perm[%zu] is %lld, "
                          "outside 0 .. %zu",
                          k, (long long)perm[k], rank - 1);
    if (seen[perm[k]])
      return nnlib__error(NNLIB_ERR_INVALID_ARGUMENT,
                          "nnlib_transpose_create: perm[%zu] is %lld again "
                          "(not a permutation)",
                          k, (long long)perm[k]);
    seen[perm[k]] = true;
  }
  return NNLIB_OK;
}

nnlib_status nnlib_transpose_create(nnlib_layer **out, const int64_t *perm,
                                    size_t rank) {
  NNLIB_CHECK_ARG(out != NULL, "nnlib_transpose_create: out is NULL");
  *out = NULL;
  NNLIB_CHECK_ARG(perm != NULL, "nnlib_transpose_create: perm is NULL");
  NNLIB_CHECK_ARG(rank >= 1 && rank < NNLIB_MAX_RANK,
                  "nnlib_transpose_create: rank %zu outside 1 .. %d", rank,
                  NNLIB_MAX_RANK - 1);
  NNLIB_TRY(check_perm(perm, rank));
  transpose_layer *t = nnlib__alloc(sizeof *t);
  if (t == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "nnlib_transpose_create: no memory");
  nnlib__layer_init(&t->base, &transpose_ops);
  t->rank = rank;
  memcpy(t->perm, perm, rank * sizeof *perm);
  *out = &t->base;
  return NNLIB_OK;
}

/* ------------------------- model description and model file (codec) */

/* Field 1 of the item, "P0xP1x...", as *rank integers in 0 .. *rank - 1
 * (whether they make a permutation the constructor says). */
static nnlib_status parse_perm(const nnlib__spec_item *item, int64_t *perm,
                               size_t *rank) {
  const nnlib__spec_field *f = &item->fields[1];
  size_t count = 1, k = 0;
  for (size_t i = 0; i < f->length; i++)
    count += f->text[i] == 'x';
  if (count >= NNLIB_MAX_RANK)
    return nnlib__spec_field_error(item, 1, "permutes more axes than a "
                                            "sample has at most (7)");
  char what[80];
  snprintf(what, sizeof what, "is not %zu integers in 0..%zu joined by 'x'",
           count, count - 1);
  int64_t v = 0;
  bool digits = false;
  for (size_t i = 0; i <= f->length; i++) {
    char c = 'x'; /* the end reads as one more separator */
    if (i < f->length)
      c = f->text[i];
    if (c == 'x' && digits) {
      perm[k++] = v;
      v = 0;
      digits = false;
      continue;
    }
    if (c < '0' || c > '9')
      return nnlib__spec_field_error(item, 1, what);
    v = v * 10 + (c - '0'); /* below count <= 7 before each step */
    digits = true;
    if (v >= (int64_t)count)
      return nnlib__spec_field_error(item, 1, what);
  }
  *rank = count;
  return NNLIB_OK;
}

/* "transpose:P0xP1x..." */
static nnlib_status transpose_parse_spec(const nnlib__spec_item *item,
                                         nnlib_layer **out) {
  NNLIB_TRY(nnlib__spec_fields(item, 2, 2));
  int64_t perm[AXES];
  size_t rank = 0;
  NNLIB_TRY(parse_perm(item, perm, &rank));
  return nnlib_transpose_create(out, perm, rank);
}

static void transpose_write_spec(const nnlib_layer *l, nnlib__text *t) {
  const transpose_layer *tl = (const transpose_layer *)l;
  nnlib__text_append(t, "transpose:");
  for (size_t k = 0; k < tl->rank; k++)
    nnlib__text_append(t, "%s%lld", k ? "x" : "", (long long)tl->perm[k]);
}

/* config: i64 rank, then rank i64 perm: 8 (rank + 1) bytes */
static void transpose_write_config(const nnlib_layer *l, nnlib__writer *w) {
  const transpose_layer *tl = (const transpose_layer *)l;
  nnlib__put_i64(w, (int64_t)tl->rank);
  for (size_t k = 0; k < tl->rank; k++)
    nnlib__put_i64(w, tl->perm[k]);
}

static nnlib_status transpose_read_config(nnlib__reader *r,
                                          nnlib_layer **out) {
  int64_t rank, perm[AXES];
  *out = NULL;
  NNLIB_TRY(nnlib__get_i64(r, &rank));
  if (rank < 1 || rank >= NNLIB_MAX_RANK)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "transpose: rank %lld outside 1 .. %d",
                        (long long)rank, NNLIB_MAX_RANK - 1);
  for (int64_t k = 0; k < rank; k++)
    NNLIB_TRY(nnlib__get_i64(r, &perm[k]));
  return nnlib_transpose_create(out, perm, (size_t)rank);
}

const nnlib__layer_codec nnlib__transpose_codec = {
    .kind = NNLIB_LAYER_TRANSPOSE,
    .spec_names = {"transpose"},
    .parse_spec = transpose_parse_spec,
    .write_spec = transpose_write_spec,
    .write_config = transpose_write_config,
    .read_config = transpose_read_config,
};
