/* plan.c - where every buffer of a pass lies, planned once at compile by
 * liveness: each buffer is a region with the time it is first written and
 * the time it is last read, and regions whose times overlap never share
 * bytes. Placing them in time order, each in the free space of buffers
 * already spent (see place), reuses that memory in forward and in
 * backward.
 *
 * Time, for a graph of N nodes: forward runs node v at time v, the loss is
 * at N, backward runs node v at time 2N - v (a fused group, such as a dense
 * layer and its activation, runs all at its last node's). In training an output
 * is read again by its own node's backward (y) and its readers' (x), so it
 * lives from v to 2N - v; the gradient dL/dv lives from the backward of its
 * last reader, which writes it first, to its own node's backward. In inference
 * an output lives from v to its last reader's forward. The model's output, and
 * gradients of model inputs, live to the end: callers read them.
 *
 * A fold group (a convolution with the batchnorm and activation folded
 * into it, compile.c) shares one activation region in an inference set,
 * born at the convolution and read until the group's last node's last
 * reader: a folded pass writes it at the convolution's time, and an
 * unfolded one runs the batchnorm and the activation in place over it
 * (elementwise passes whose input nothing else reads). A training set
 * needs no such care for predictions on the model's own buffers: there
 * every region born in forward lives until backward, so none shares
 * bytes with another, and the group's last region may be written before
 * its own node's time.
 *
 * A view (flatten: y is x, dx is dy, element for element) whose input
 * node it alone reads takes that node's activation region as its output
 * and, in training, lends it its own gradient region, each region living
 * until the later of the two nodes' last use; the kind then copies
 * nothing (lays_over_input). */
#include "nnlib_internal.h"

#include <string.h>

typedef struct region {
  int64_t floats;  /* padded to 64 bytes */
  int64_t born, dies;
  int64_t offset;  /* planned */
} region;

typedef struct plan {
  const nnlib_model *m;
  bool training;
  int64_t end;        /* after everything */
  region *regions;    /* acts, workspaces, grads, the fan-out scratch */
  int64_t *act_of;    /* node -> region index, -1 none */
  int64_t *grad_of;
  int64_t *ws_of;
  int64_t accum;      /* region of the fan-out scratch, -1 none */
  size_t count;
} plan;

static int64_t padded(int64_t floats) { return (floats + 15) / 16 * 16; }

/* The node whose layer runs for v: a fused-away activation or pool runs
 * inside the layer that starts its group. */
static size_t runner(const nnlib_model *m, size_t v) {
  return nnlib__fused_root(m, v);
}

/* Backward time of the layer that runs for node v (a fused group runs at
 * its last node's slot). */
static int64_t backward_time(const nnlib_model *m, size_t v) {
  size_t n = m->node_count;
  return (int64_t)(2 * n - nnlib__fused_last(m, nnlib__fused_root(m, v)));
}

static int64_t add_region(plan *p, int64_t floats, int64_t born,
                          int64_t dies) {
  region *r = &p->regions[p->count];
  r->floats = padded(floats);
  r->born = born;
  r->dies = dies;
  r->offset = 0;
  return (int64_t)p->count++;
}

/* When v's only input u is a layer node whose gradient v writes first (v
 * is its last reader), v's kind may write dL/du over its own spent output
 * (dx_over_output, as 1.2's chain did): the gradient then needs no region.
 * Not when v's output is the model's (callers read it after a step). */
static bool grad_over_output(const nnlib_model *m, size_t v) {
  const nnlib__node *node = &m->nodes[v];
  const nnlib_layer *l = node->layer;
  if (l == NULL || l->fused_away || node->input_count != 1)
    return false;
  size_t u = node->inputs[0];
  size_t out = nnlib__fused_last(m, v);
  const nnlib__node *in = &m->nodes[u];
  return in->layer != NULL && in->last_reader == v && in->readers == 1 &&
         l->ops->dx_over_output && m->nodes[out].size >= in->size &&
         out != m->output;
}

/* Node v is a view of its input u (is_view: flatten) that takes u's
 * activation region as its own output and, in training, gives u its own
 * gradient region: then it copies nothing. Only when u is a layer node
 * that v alone reads (so nothing else writes dL/du) and neither is the
 * model's output (callers read that buffer after a step). */
static bool lays_over_input(const nnlib_model *m, size_t v) {
  const nnlib__node *node = &m->nodes[v];
  const nnlib_layer *l = node->layer;
  if (l == NULL || l->fused_away || !l->ops->is_view ||
      node->input_count != 1 || v == m->output)
    return false;
  size_t u = node->inputs[0];
  const nnlib__node *in = &m->nodes[u];
  return in->layer != NULL && in->readers == 1 && u != m->output &&
         in->size == node->size;
}

/* Whether node u's only reader lays over it (lays_over_input). */
static bool laid_over(const nnlib_model *m, size_t u) {
  const nnlib__node *node = &m->nodes[u];
  return node->readers == 1 && lays_over_input(m, node->last_reader);
}

static void extend(plan *p, int64_t r, int64_t dies) {
  if (p->regions[r].dies < dies)
    p->regions[r].dies = dies;
}

/* The node whose output region node v's region is: the last of its fused
 * group (the activation after a dense layer), or in an inference set its
 * fold group's last. */
static size_t region_node(const plan *p, size_t v) {
  const nnlib__node *node = &p->m->nodes[v];
  if (nnlib__fused_last(p->m, v) != v)
    return nnlib__fused_last(p->m, v);
  return p->training ? v : node->fold_output;
}

/* When the output of node v (its region's node's) is last read. */
static int64_t act_dies(const plan *p, size_t v) {
  const nnlib_model *m = p->m;
  size_t out = region_node(p, v);
  const nnlib__node *o = &m->nodes[out];
  if (out == m->output)
    return p->end;
  if (p->training)
    return backward_time(m, v);
  return o->readers > 0 ? (int64_t)o->last_reader : (int64_t)v;
}

static void plan_acts(plan *p) {
  const nnlib_model *m = p->m;
  for (size_t v = 0; v < m->node_count; v++) {
    const nnlib__node *node = &m->nodes[v];
    p->act_of[v] = p->grad_of[v] = p->ws_of[v] = -1;
    if (node->layer == NULL || node->layer->fused_away)
      continue;
    if (!p->training && node->folded) { /* the group's region, below */
      p->ws_of[v] = add_region(p, (int64_t)node->layer->workspace_floats,
                               (int64_t)v, (int64_t)v);
      continue;
    }
    int64_t dies = act_dies(p, v);
    if (!lays_over_input(m, v)) /* else u's region, below */
      p->act_of[v] = add_region(
          p, m->nodes[region_node(p, v)].size * m->max_batch, (int64_t)v, dies);
    bool kept = p->training && !node->layer->workspace_scratch;
    p->ws_of[v] = add_region(p, (int64_t)node->layer->workspace_floats,
                             (int64_t)v, kept ? dies : (int64_t)v);
  }
  for (size_t v = 0; v < m->node_count; v++) {
    const nnlib__node *node = &m->nodes[v];
    if (node->layer != NULL && node->layer->fused_away) {
      p->act_of[v] = p->act_of[nnlib__fused_root(m, v)];
      p->ws_of[v] = p->ws_of[nnlib__fused_root(m, v)];
    } else if (node->layer != NULL && !p->training && node->folded) {
      p->act_of[v] = p->act_of[node->fold_root];
    }
  }
  for (size_t v = 0; v < m->node_count; v++) /* in order: views of views */
    if (lays_over_input(m, v)) {
      p->act_of[v] = p->act_of[m->nodes[v].inputs[0]];
      extend(p, p->act_of[v], act_dies(p, v));
    }
}

/* Gradients of layer nodes (model inputs get theirs from
 * nnlib_model_set_input_gradients). */
static void plan_grads(plan *p) {
  const nnlib_model *m = p->m;
  int64_t n = (int64_t)m->node_count;
  for (size_t v = 0; v < m->node_count; v++) {
    const nnlib__node *node = &m->nodes[v];
    if (node->layer == NULL ||
        nnlib__fused_last(m, nnlib__fused_root(m, v)) != v)
      continue; /* a fused group has the gradient of its last node only */
    if (laid_over(m, v))
      continue; /* its reader's gradient region, below */
    size_t reader = node->last_reader;
    int64_t born = v == m->output ? n : backward_time(m, reader);
    int64_t dies = backward_time(m, runner(m, v));
    if (v != m->output && grad_over_output(m, reader)) {
      region *r = &p->regions[p->act_of[reader]];
      r->dies = dies > r->dies ? dies : r->dies;
      p->grad_of[v] = p->act_of[reader];
      continue;
    }
    p->grad_of[v] = add_region(p, node->size * m->max_batch, born, dies);
  }
  for (size_t v = m->node_count; v-- > 0;) /* views of views: last first */
    if (lays_over_input(m, v)) {
      size_t u = m->nodes[v].inputs[0];
      p->grad_of[u] = p->grad_of[v];
      extend(p, p->grad_of[u], backward_time(m, runner(m, u)));
    }
  int64_t widest = 0;
  for (size_t v = 0; v < m->node_count; v++)
    if (m->nodes[v].readers > 1 && m->nodes[v].size > widest)
      widest = m->nodes[v].size;
  p->accum = widest > 0 ? add_region(p, widest * m->max_batch, n, p->end) : -1;
}

/* The placement walks time once, as an allocator would at run time: at
 * each time it first gives the regions born then a place (the free block
 * that fits most tightly, else the top of the block), then frees the
 * regions whose last reader ran then, merging free neighbours. A region
 * that dies at t and one born at t never share bytes (the latter is
 * written while the former is read). Linear in the regions times the free
 * blocks, which stay few. */
typedef struct heap {
  region *free;   /* free blocks below top, sorted by offset */
  size_t count;
  int64_t top;    /* the block's size so far */
} heap;

static int64_t heap_take(heap *h, int64_t floats) {
  size_t best = h->count;
  for (size_t i = 0; i < h->count; i++)
    if (h->free[i].floats >= floats &&
        (best == h->count || h->free[i].floats < h->free[best].floats))
      best = i;
  if (best == h->count) { /* grow the top, reusing a free block ending at it */
    int64_t at = h->top;
    if (h->count > 0 &&
        h->free[h->count - 1].offset + h->free[h->count - 1].floats == h->top)
      at = h->free[--h->count].offset;
    h->top = at + floats;
    return at;
  }
  int64_t at = h->free[best].offset;
  h->free[best].offset += floats;
  h->free[best].floats -= floats;
  if (h->free[best].floats == 0) {
    memmove(&h->free[best], &h->free[best + 1],
            (h->count - best - 1) * sizeof *h->free);
    h->count--;
  }
  return at;
}

static void heap_give(heap *h, int64_t offset, int64_t floats) {
  size_t i = 0;
  while (i < h->count && h->free[i].offset < offset)
    i++;
  memmove(&h->free[i + 1], &h->free[i], (h->count - i) * sizeof *h->free);
  h->free[i].offset = offset;
  h->free[i].floats = floats;
  h->count++;
  if (i + 1 < h->count &&
      offset + floats == h->free[i + 1].offset) { /* merge the next */
    h->free[i].floats += h->free[i + 1].floats;
    memmove(&h->free[i + 1], &h->free[i + 2],
            (h->count - i - 2) * sizeof *h->free);
    h->count--;
  }
  if (i > 0 && h->free[i - 1].offset + h->free[i - 1].floats == offset) {
    h->free[i - 1].floats += h->free[i].floats; /* merge into the previous */
    memmove(&h->free[i], &h->free[i + 1], (h->count - i - 1) * sizeof *h->free);
    h->count--;
  }
}

/* Region indices by the time `born` (or `dies`) in order[], counting sort
 * over the times 0 .. end; starts[t] .. starts[t + 1] are time t's. */
static void by_time(const plan *p, bool births, size_t *order,
                    size_t *starts) {
  size_t times = (size_t)p->end + 2;
  memset(starts, 0, times * sizeof *starts);
  for (size_t i = 0; i < p->count; i++)
    starts[(births ? p->regions[i].born : p->regions[i].dies) + 1]++;
  for (size_t t = 1; t < times; t++)
    starts[t] += starts[t - 1];
  size_t *next = starts + times; /* scratch: where each time's next goes */
  memcpy(next, starts, times * sizeof *starts);
  for (size_t i = 0; i < p->count; i++)
    order[next[births ? p->regions[i].born : p->regions[i].dies]++] = i;
}

static int64_t place(plan *p) {
  size_t times = (size_t)p->end + 2;
  region *free_blocks = nnlib__calloc(p->count + 1, sizeof *free_blocks);
  size_t *index = nnlib__calloc(2 * p->count + 4 * times, sizeof *index);
  if (free_blocks == NULL || index == NULL) {
    nnlib__free(free_blocks);
    nnlib__free(index);
    return -1;
  }
  size_t *born = index, *dies = born + p->count;
  size_t *born_at = dies + p->count, *dies_at = born_at + 2 * times;
  by_time(p, true, born, born_at);
  by_time(p, false, dies, dies_at);
  heap h = {free_blocks, 0, 0};
  for (size_t t = 0; t + 1 < times; t++) {
    for (size_t k = born_at[t]; k < born_at[t + 1]; k++) {
      region *r = &p->regions[born[k]];
      r->offset = r->floats > 0 ? heap_take(&h, r->floats) : 0;
    }
    for (size_t k = dies_at[t]; k < dies_at[t + 1]; k++) {
      const region *r = &p->regions[dies[k]];
      if (r->floats > 0)
        heap_give(&h, r->offset, r->floats);
    }
  }
  nnlib__free(free_blocks);
  nnlib__free(index);
  return h.top;
}

static nnlib_status make_plan(const nnlib_model *m, bool training, plan *p) {
  memset(p, 0, sizeof *p);
  p->m = m;
  p->training = training;
  p->end = 2 * (int64_t)m->node_count + 2;
  size_t n = m->node_count;
  p->regions = nnlib__calloc(3 * n + 1, sizeof *p->regions);
  p->act_of = nnlib__calloc(3 * n, sizeof *p->act_of);
  if (p->regions == NULL || p->act_of == NULL) {
    nnlib__free(p->regions);
    nnlib__free(p->act_of);
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY, "compile: no memory to plan");
  }
  p->grad_of = p->act_of + n;
  p->ws_of = p->grad_of + n;
  p->accum = -1;
  plan_acts(p);
  if (training)
    plan_grads(p);
  return NNLIB_OK;
}

static void free_plan(plan *p) {
  nnlib__free(p->regions);
  nnlib__free(p->act_of);
}

int64_t nnlib__buffers_floats(const nnlib_model *m, bool training) {
  plan p;
  if (make_plan(m, training, &p) != NNLIB_OK)
    return -1;
  int64_t total = place(&p);
  free_plan(&p);
  return total;
}

static size_t widest_fan_in(const nnlib_model *m) {
  size_t widest = 1;
  for (size_t v = 0; v < m->node_count; v++)
    if (m->nodes[v].input_count > widest)
      widest = m->nodes[v].input_count;
  return widest;
}

static nnlib_status alloc_pointers(const nnlib_model *m, nnlib__buffers *b,
                                   bool training) {
  size_t n = m->node_count, fan = widest_fan_in(m);
  size_t count = 3 * n + 2 * fan;
  void **all = nnlib__calloc(count, sizeof *all);
  if (all == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY, "buffers: no memory");
  b->pointers = all;
  b->acts = (float **)all;
  b->workspace = (float **)all + n;
  b->grads = training ? (float **)all + 2 * n : NULL;
  b->xs = (const float **)(all + 3 * n);
  b->dxs = (float **)(all + 3 * n + fan);
  return NNLIB_OK;
}

static float *at(const nnlib__buffers *b, const plan *p, int64_t region) {
  return region < 0 ? NULL : b->block + p->regions[region].offset;
}

nnlib_status nnlib__buffers_alloc(const nnlib_model *m, nnlib__buffers *b,
                                  bool training) {
  memset(b, 0, sizeof *b);
  plan p;
  NNLIB_TRY(make_plan(m, training, &p));
  int64_t total = place(&p);
  nnlib_status st = total < 0 ? nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                                             "compile: no memory to plan")
                              : alloc_pointers(m, b, training);
  if (st == NNLIB_OK) {
    b->block =
        nnlib__calloc_huge((size_t)(total > 0 ? total : 1), sizeof(float));
    if (b->block == NULL)
      st = nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "compile: no memory for activations (%lld floats)",
                        (long long)total);
  }
  if (st != NNLIB_OK) {
    free_plan(&p);
    nnlib__buffers_free(b);
    return st;
  }
  for (size_t v = 0; v < m->node_count; v++) {
    b->acts[v] = at(b, &p, p.act_of[v]);
    b->workspace[v] = at(b, &p, p.ws_of[v]);
    if (training)
      b->grads[v] = at(b, &p, p.grad_of[v]);
  }
  b->accum = at(b, &p, p.accum);
  free_plan(&p);
  return NNLIB_OK;
}

void nnlib__buffers_free(nnlib__buffers *b) {
  nnlib__free_huge(b->block);
  nnlib__free(b->pointers);
  memset(b, 0, sizeof *b);
}
