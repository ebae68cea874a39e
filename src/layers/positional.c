/* positional.c - learned positional embeddings (GPT-2's wpe) added to a
 * [T, D] sample, W [P, D]:
 *   y[t] = x[t] + W[position + t]
 *   dx = dy,  dW = 0, then dW[position + t] += sum over the batch of dy[t]
 * position is run->position (0 outside decoding), and a call holds
 * run->steps positions of each sample (T when 0). P is max_positions, or
 * the planned T when max_positions is 0. */
#include "layers/layer.h"

#include <string.h>

typedef struct positional_layer {
  nnlib_layer base;
  int64_t max_positions; /* as constructed: 0 takes T at plan */
  int64_t rows, dim;     /* P and D of W, set by plan */
} positional_layer;

static positional_layer *pos(nnlib_layer *l) { return (positional_layer *)l; }
static const positional_layer *cpos(const nnlib_layer *l) {
  return (const positional_layer *)l;
}

static const char *positional_name(const nnlib_layer *l) {
  (void)l;
  return "positional";
}

static nnlib_status positional_plan(nnlib_layer *l, const nnlib__shape *in,
                                    int64_t max_batch) {
  (void)max_batch;
  positional_layer *p = pos(l);
  char got[160];
  nnlib__shape_text(in, got, sizeof got);
  if (in->rank != 2)
    return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                        "positional: input is %s, must be [T, D]", got);
  int64_t steps = in->dims[0];
  if (p->max_positions > 0 && steps > p->max_positions)
    return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                        "positional: input %s has %lld positions, the layer "
                        "keeps %lld (max_positions)",
                        got, (long long)steps, (long long)p->max_positions);
  int64_t wshape[2] = {p->max_positions > 0 ? p->max_positions : steps,
                       in->dims[1]},
          size;
  NNLIB_TRY(nnlib__shape_size(wshape, 2, &size, "positional weight"));
  p->rows = wshape[0];
  p->dim = wshape[1];
  l->out_shape = *in;
  nnlib__layer_declare_param(l, "weight", wshape, 2);
  return NNLIB_OK;
}

/* N(0, 0.02^2), as GPT-2's wpe */
static void positional_init(nnlib_layer *l, nnlib__rng *rng) {
  nnlib__param *w = &l->params[0];
  for (int64_t i = 0; i < w->size; i++)
    w->value.data[i] = 0.02f * nnlib__rng_normal(rng);
}

static int64_t call_steps(const nnlib_layer *l, const nnlib__run *run) {
  return run->steps > 0 ? run->steps : l->in_shape.dims[0];
}

/* Positions [run->position, + steps) must be rows of W. */
static nnlib_status check_positions(const nnlib_layer *l,
                                    const nnlib__run *run, int64_t steps) {
  int64_t rows = cpos(l)->rows;
  if (run->position < 0 || run->position > rows - steps)
    return nnlib__error(NNLIB_ERR_OUT_OF_RANGE,
                        "positional: positions %lld to %lld requested, the "
                        "layer keeps %lld (0 to %lld)",
                        (long long)run->position,
                        (long long)(run->position + steps - 1),
                        (long long)rows, (long long)(rows - 1));
  return NNLIB_OK;
}

/* The passes split over the pass pool, by sample forward and by column of
 * one sample's block backward (each column summed over the samples in
 * sample order): every index computed alone, so any split gives the same
 * bits. A part holds at least MIN_PART_VALUES floats (some 30
 * microseconds of these cheap passes). */
enum { MIN_PART_VALUES = 65536, COLUMN_CHUNK = 64 };

typedef struct positional_pass {
  const float *x, *w, *dy;
  float *y, *dst;
  int64_t n, block;
  float scale;
} positional_pass;

static int64_t min_part(int64_t values_per_index) {
  return nnlib__parallel_grain(values_per_index, MIN_PART_VALUES);
}

static void forward_range(void *ctx, int64_t begin, int64_t end) {
  const positional_pass *p = ctx;
  for (int64_t s = begin; s < end; s++) {
    const float *x = p->x + s * p->block;
    float *y = p->y + s * p->block;
    for (int64_t i = 0; i < p->block; i++)
      y[i] = x[i] + p->w[i];
  }
}

static nnlib_status positional_forward(nnlib_layer *l, const nnlib__run *run,
                                       const float *x, float *y, int64_t n) {
  int64_t steps = call_steps(l, run), dim = cpos(l)->dim;
  NNLIB_TRY(check_positions(l, run, steps));
  /* one sample: rows position.. of W */
  positional_pass p = {.x = x,
                       .w = l->params[0].value.data + run->position * dim,
                       .y = y,
                       .n = n,
                       .block = steps * dim};
  nnlib__parallel_for(n, min_part(p.block), forward_range, &p);
  return NNLIB_OK;
}

/* dst[i] += scale * sum over the n samples of dy[s][i] for the chunks
 * [begin, end) of COLUMN_CHUNK of one sample's steps * dim floats: the
 * gradient (scale 1 into zeros) or the fused SGD step (scale -lr into W).
 * Each element summed from 0 in sample order. */
static void batch_sum_range(void *ctx, int64_t begin, int64_t end) {
  const positional_pass *p = ctx;
  int64_t last = end * COLUMN_CHUNK < p->block ? end * COLUMN_CHUNK : p->block;
  for (int64_t i0 = begin * COLUMN_CHUNK; i0 < last; i0 += COLUMN_CHUNK) {
    int64_t width = last - i0 < COLUMN_CHUNK ? last - i0 : COLUMN_CHUNK;
    float sum[COLUMN_CHUNK] = {0};
    for (int64_t s = 0; s < p->n; s++)
      for (int64_t i = 0; i < width; i++)
        sum[i] += p->dy[s * p->block + i0 + i];
    for (int64_t i = 0; i < width; i++)
      p->dst[i0 + i] += p->scale * sum[i];
  }
}

static void add_batch_sum(float *dst, const float *dy, int64_t n,
                          int64_t block, float scale) {
  positional_pass p = {.dy = dy, .dst = dst, .n = n, .block = block,
                       .scale = scale};
  nnlib__parallel_for((block + COLUMN_CHUNK - 1) / COLUMN_CHUNK,
                      min_part(n * COLUMN_CHUNK), batch_sum_range, &p);
}

static void copy_range(void *ctx, int64_t begin, int64_t end) {
  const positional_pass *p = ctx;
  memcpy(p->y + begin, p->dy + begin, (size_t)(end - begin) * sizeof(float));
}

/* dx = dy: in parts over the pool when the two do not overlap */
static void copy_gradient(float *dx, const float *dy, int64_t count) {
  if (dx + count <= dy || dy + count <= dx) {
    positional_pass p = {.dy = dy, .y = dx};
    nnlib__parallel_for(count, MIN_PART_VALUES, copy_range, &p);
  } else {
    memmove(dx, dy, (size_t)count * sizeof(float));
  }
}

static nnlib_status positional_backward(nnlib_layer *l, const nnlib__run *run,
                                        const float *x, const float *y,
                                        float *dy, float *dx, int64_t n) {
  (void)x;
  (void)y;
  int64_t steps = call_steps(l, run), dim = cpos(l)->dim;
  NNLIB_TRY(check_positions(l, run, steps));
  int64_t block = steps * dim, offset = run->position * dim;
  nnlib__param *w = &l->params[0];
  if (run->sgd_fused) {
    add_batch_sum(w->value.data + offset, dy, n, block, -run->sgd_lr);
  } else {
    memset(w->grad.data, 0, (size_t)w->size * sizeof(float));
    add_batch_sum(w->grad.data + offset, dy, n, block, 1.0f);
  }
  /* dx = dy, after dW has read dy (dx may be the model's y or dy itself) */
  if (dx != NULL && dx != dy)
    copy_gradient(dx, dy, n * block);
  return NNLIB_OK;
}

static const nnlib__layer_ops positional_ops = {
    .kind = NNLIB_LAYER_POSITIONAL,
    .plan = positional_plan,
    .init = positional_init,
    .forward = positional_forward,
    .backward = positional_backward,
    .name = positional_name,
    .decodes = true,
    .fuses_sgd = true,      /* W[t] -= lr sum dy[t]; dx never reads W */
    .dx_over_output = true, /* y is never read */
};

nnlib_status nnlib_positional_create(nnlib_layer **out,
                                     int64_t max_positions) {
  NNLIB_CHECK_ARG(out != NULL, "nnlib_positional_create: out is NULL");
  *out = NULL;
  NNLIB_CHECK_ARG(max_positions >= 0,
                  "positional: max_positions is %lld, must be >= 0 (0: the "
                  "input's T)",
                  (long long)max_positions);
  positional_layer *p = nnlib__alloc(sizeof *p);
  if (p == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "nnlib_positional_create: no memory");
  nnlib__layer_init(&p->base, &positional_ops);
  p->max_positions = max_positions;
  p->rows = 0;
  p->dim = 0;
  *out = &p->base;
  return NNLIB_OK;
}

/* ------------------------- model description and model file (codec) */

/* "positional" (P from the input) or "positional:MAX" */
static nnlib_status positional_parse_spec(const nnlib__spec_item *item,
                                          nnlib_layer **out) {
  int64_t max_positions = 0;
  NNLIB_TRY(nnlib__spec_fields(item, 1, 2));
  if (item->field_count == 2)
    NNLIB_TRY(nnlib__spec_int(item, 1, 0, INT64_MAX, &max_positions));
  return nnlib_positional_create(out, max_positions);
}

static void positional_write_spec(const nnlib_layer *l, nnlib__text *t) {
  nnlib__text_append(t, "positional");
  if (cpos(l)->max_positions > 0)
    nnlib__text_append(t, ":%lld", (long long)cpos(l)->max_positions);
}

/* config: i64 max_positions (0: T of the input), 8 bytes */
static void positional_write_config(const nnlib_layer *l, nnlib__writer *w) {
  nnlib__put_i64(w, cpos(l)->max_positions);
}

static nnlib_status positional_read_config(nnlib__reader *r,
                                           nnlib_layer **out) {
  int64_t max_positions;
  NNLIB_TRY(nnlib__get_i64(r, &max_positions));
  if (max_positions < 0)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "positional: config max_positions %lld, must be >= 0",
                        (long long)max_positions);
  return nnlib_positional_create(out, max_positions);
}

const nnlib__layer_codec nnlib__positional_codec = {
    .kind = NNLIB_LAYER_POSITIONAL,
    .spec_names = {"positional"},
    .parse_spec = positional_parse_spec,
    .write_spec = positional_write_spec,
    .write_config = positional_write_config,
    .read_config = positional_read_config,
};
