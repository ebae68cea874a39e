/* pool2d.c - max, min and average pooling over kH x kW windows of each
 * channel of NCHW batches.
 *
 * max/min:  y[s,c,oh,ow] = max (min) of x over the window clipped to the
 *           input (padding never wins); the winner's position in its plane
 *           goes to the workspace (int32 per output), and backward adds
 *           dy there: dx[s,c,idx] += dy[s,c,oh,ow].
 * average:  y = (sum of x over the clipped window) / (kH kW): padding counts
 *           as zeros (PyTorch's count_include_pad); backward spreads
 *           dy / (kH kW) over the clipped window. No workspace. */
#include "layers/layer.h"

#include <string.h>

typedef struct pool2d_layer {
  nnlib_layer base;
  nnlib_layer_kind kind;
  int64_t kh, kw, sh, sw, ph, pw;
  /* planned */
  int64_t channels, in_h, in_w, out_h, out_w;
} pool2d_layer;

static const char *pool2d_name(const nnlib_layer *l) {
  switch (((const pool2d_layer *)l)->kind) {
  case NNLIB_LAYER_MAXPOOL2D: return "maxpool2d";
  case NNLIB_LAYER_MINPOOL2D: return "minpool2d";
  default: return "avgpool2d";
  }
}

static nnlib_status pool2d_plan(nnlib_layer *l, const nnlib__shape *in,
                                int64_t max_batch) {
  pool2d_layer *p = (pool2d_layer *)l;
  char shape[160];
  nnlib__shape_text(in, shape, sizeof shape);
  if (in->rank != 3)
    return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                        "%s: input is %s per sample, expects [C, H, W] "
                        "(channels, height, width)",
                        pool2d_name(l), shape);
  p->channels = in->dims[0];
  p->in_h = in->dims[1];
  p->in_w = in->dims[2];
  p->out_h = nnlib__window_out(p->in_h, p->kh, p->sh, p->ph, 1);
  p->out_w = nnlib__window_out(p->in_w, p->kw, p->sw, p->pw, 1);
  if (p->out_h < 1 || p->out_w < 1)
    return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                        "%s: kernel %lldx%lld is larger than the padded "
                        "input %lldx%lld (%lldx%lld with padding %lldx%lld)",
                        pool2d_name(l), (long long)p->kh, (long long)p->kw,
                        (long long)(p->in_h + 2 * p->ph),
                        (long long)(p->in_w + 2 * p->pw), (long long)p->in_h,
                        (long long)p->in_w, (long long)p->ph,
                        (long long)p->pw);
  if (p->in_h * p->in_w > INT32_MAX)
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "%s: a %lldx%lld plane is too large to index",
                        pool2d_name(l), (long long)p->in_h,
                        (long long)p->in_w);
  l->out_shape.rank = 3;
  l->out_shape.dims[0] = p->channels;
  l->out_shape.dims[1] = p->out_h;
  l->out_shape.dims[2] = p->out_w;
  int64_t outputs;
  if (p->kind != NNLIB_LAYER_AVGPOOL2D) {
    /* int32 winner indices, one float's room each */
    if (nnlib__mul_overflows(nnlib__shape_numel(&l->out_shape), max_batch,
                             &outputs) ||
        (uint64_t)outputs > SIZE_MAX / sizeof(float))
      return nnlib__error(NNLIB_ERR_TOO_LARGE,
                          "%s: workspace for a batch of %lld overflows",
                          pool2d_name(l), (long long)max_batch);
    l->workspace_floats = (size_t)outputs;
  }
  return NNLIB_OK;
}

/* The window of output (oh, ow) clipped to the input: rows [*r0, *r1),
 * columns [*c0, *c1). */
static void window(const pool2d_layer *p, int64_t oh, int64_t ow, int64_t *r0,
                   int64_t *r1, int64_t *c0, int64_t *c1) {
  int64_t top = oh * p->sh - p->ph, left = ow * p->sw - p->pw;
  *r0 = top > 0 ? top : 0;
  *c0 = left > 0 ? left : 0;
  *r1 = top + p->kh < p->in_h ? top + p->kh : p->in_h;
  *c1 = left + p->kw < p->in_w ? left + p->kw : p->in_w;
}

/* A window holding a NaN selects its first NaN, as PyTorch's max pooling
 * propagates it; rare, so it is looked for only when the window's values
 * say there is one (the selection itself stays branch-free). */
static int32_t first_nan(const pool2d_layer *p, const float *src, int64_t r0,
                         int64_t r1, int64_t c0, int64_t c1) {
  for (int64_t r = r0; r < r1; r++)
    for (int64_t c = c0; c < c1; c++)
      if (src[r * p->in_w + c] != src[r * p->in_w + c])
        return (int32_t)(r * p->in_w + c);
  return (int32_t)(r0 * p->in_w + c0);
}

/* The first maximum (BETTER: v > bv) or minimum (v < bv) of each clipped
 * window and its index. Ties keep the earlier element. NaN never wins a
 * comparison, so `nan` collects the window's NaNs on the side. */
#define SELECT_LOOP(BETTER)                                                    \
  for (int64_t q = 0; q < planes; q++) {                                       \
    const float *src = x + q * in_plane;                                       \
    for (int64_t oh = 0; oh < p->out_h; oh++)                                  \
      for (int64_t ow = 0; ow < p->out_w; ow++, y++, winners++) {              \
        int64_t r0, r1, c0, c1;                                                \
        window(p, oh, ow, &r0, &r1, &c0, &c1);                                 \
        int32_t best = (int32_t)(r0 * p->in_w + c0);                           \
        float bv = src[best];                                                  \
        int nan = 0;                                                           \
        for (int64_t r = r0; r < r1; r++)                                      \
          for (int64_t c = c0; c < c1; c++) {                                  \
            int32_t at = (int32_t)(r * p->in_w + c);                           \
            float v = src[at];                                                 \
            int take = BETTER;                                                 \
            nan |= v != v;                                                     \
            best = take ? at : best;                                           \
            bv = take ? v : bv;                                                \
          }                                                                    \
        if (nan) {                                                             \
          best = first_nan(p, src, r0, r1, c0, c1);                            \
          bv = src[best];                                                      \
        }                                                                      \
        *winners = best;                                                       \
        *y = bv;                                                               \
      }                                                                        \
  }

/* The common case, 2x2 windows at stride 2 without padding: never clipped
 * (the output size drops an odd last row or column), so the four
 * candidates a b / c d are read directly, in SELECT_LOOP's order. The
 * inner loop is calls- and branch-free so it vectorises; a row with a NaN
 * is fixed up after it. */
#define SELECT_2X2(BETTER)                                                     \
  for (int64_t q = 0; q < planes; q++) {                                       \
    const float *src = x + q * in_plane;                                       \
    for (int64_t oh = 0; oh < p->out_h; oh++) {                                \
      const float *top = src + 2 * oh * p->in_w, *bottom = top + p->in_w;      \
      int32_t base = (int32_t)(2 * oh * p->in_w), w = (int32_t)p->in_w;        \
      float *yr = y + (q * p->out_h + oh) * p->out_w;                          \
      int32_t *wr = winners + (q * p->out_h + oh) * p->out_w;                  \
      int nan = 0;                                                             \
      for (int64_t ow = 0; ow < p->out_w; ow++) {                              \
        float a = top[2 * ow], b = top[2 * ow + 1];                            \
        float c = bottom[2 * ow], d = bottom[2 * ow + 1], v, bv = a;           \
        int32_t at = base + 2 * (int32_t)ow, best = at;                        \
        v = b, best = (BETTER) ? at + 1 : best, bv = (BETTER) ? v : bv;        \
        v = c, best = (BETTER) ? at + w : best, bv = (BETTER) ? v : bv;        \
        v = d, best = (BETTER) ? at + w + 1 : best, bv = (BETTER) ? v : bv;    \
        nan |= (a != a) | (b != b) | (c != c) | (d != d);                      \
        yr[ow] = bv;                                                           \
        wr[ow] = best;                                                         \
      }                                                                        \
      for (int64_t ow = 0; nan && ow < p->out_w; ow++) {                       \
        int32_t at = base + 2 * (int32_t)ow;                                   \
        if (src[at] != src[at] || src[at + 1] != src[at + 1] ||                \
            src[at + w] != src[at + w] || src[at + w + 1] != src[at + w + 1]) { \
          wr[ow] = first_nan(p, src, 2 * oh, 2 * oh + 2, 2 * ow, 2 * ow + 2);  \
          yr[ow] = src[wr[ow]];                                                \
        }                                                                      \
      }                                                                        \
    }                                                                          \
  }

static void select_forward(const pool2d_layer *p, const float *x, float *y,
                           int32_t *winners, int64_t planes) {
  int64_t in_plane = p->in_h * p->in_w;
  bool two = p->kh == 2 && p->kw == 2 && p->sh == 2 && p->sw == 2 &&
             p->ph == 0 && p->pw == 0;
  bool max = p->kind == NNLIB_LAYER_MAXPOOL2D;
  if (two && max)
    SELECT_2X2(v > bv)
  else if (two)
    SELECT_2X2(v < bv)
  else if (max)
    SELECT_LOOP(v > bv)
  else
    SELECT_LOOP(v < bv)
}

static void average_forward(const pool2d_layer *p, const float *x, float *y,
                            int64_t planes) {
  int64_t in_plane = p->in_h * p->in_w;
  float inv = 1.0f / (float)(p->kh * p->kw);
  for (int64_t q = 0; q < planes; q++) {
    const float *src = x + q * in_plane;
    for (int64_t oh = 0; oh < p->out_h; oh++)
      for (int64_t ow = 0; ow < p->out_w; ow++, y++) {
        int64_t r0, r1, c0, c1;
        window(p, oh, ow, &r0, &r1, &c0, &c1);
        float sum = 0.0f;
        for (int64_t r = r0; r < r1; r++)
          for (int64_t c = c0; c < c1; c++)
            sum += src[r * p->in_w + c];
        *y = sum * inv;
      }
  }
}

static nnlib_status pool2d_forward(nnlib_layer *l, const nnlib__run *run,
                                   const float *x, float *y, int64_t n) {
  const pool2d_layer *p = (const pool2d_layer *)l;
  int64_t planes = n * p->channels;
  if (p->kind == NNLIB_LAYER_AVGPOOL2D)
    average_forward(p, x, y, planes);
  else /* the workspace is int32 indices; nothing reads it as floats */
    select_forward(p, x, y, (int32_t *)(void *)run->workspace, planes);
  return NNLIB_OK;
}

static void average_backward(const pool2d_layer *p, const float *dy,
                             float *dx, int64_t planes) {
  int64_t in_plane = p->in_h * p->in_w;
  float inv = 1.0f / (float)(p->kh * p->kw);
  for (int64_t q = 0; q < planes; q++) {
    float *dst = dx + q * in_plane;
    for (int64_t oh = 0; oh < p->out_h; oh++)
      for (int64_t ow = 0; ow < p->out_w; ow++, dy++) {
        int64_t r0, r1, c0, c1;
        window(p, oh, ow, &r0, &r1, &c0, &c1);
        float g = *dy * inv;
        for (int64_t r = r0; r < r1; r++)
          for (int64_t c = c0; c < c1; c++)
            dst[r * p->in_w + c] += g;
      }
  }
}

static nnlib_status pool2d_backward(nnlib_layer *l, const nnlib__run *run,
                                    const float *x, const float *y, float *dy,
                                    float *dx, int64_t n) {
  (void)x;
  (void)y;
  const pool2d_layer *p = (const pool2d_layer *)l;
  if (dx == NULL)
    return NNLIB_OK;
  int64_t planes = n * p->channels, in_plane = p->in_h * p->in_w;
  int64_t out_plane = p->out_h * p->out_w;
  memset(dx, 0, (size_t)(planes * in_plane) * sizeof(float));
  if (p->kind == NNLIB_LAYER_AVGPOOL2D) {
    average_backward(p, dy, dx, planes);
    return NNLIB_OK;
  }
  const int32_t *winners = (const int32_t *)(const void *)run->workspace;
  for (int64_t q = 0; q < planes; q++)
    for (int64_t o = 0; o < out_plane; o++)
      dx[q * in_plane + winners[q * out_plane + o]] += dy[q * out_plane + o];
  return NNLIB_OK;
}

/* One ops table per kind, so nnlib_layer_get_kind and model files see the
 * kind's pinned number; the functions are shared. */
static const nnlib__layer_ops maxpool2d_ops = {
    .kind = NNLIB_LAYER_MAXPOOL2D,
    .plan = pool2d_plan,
    .forward = pool2d_forward,
    .backward = pool2d_backward,
    .name = pool2d_name,
};
static const nnlib__layer_ops minpool2d_ops = {
    .kind = NNLIB_LAYER_MINPOOL2D,
    .plan = pool2d_plan,
    .forward = pool2d_forward,
    .backward = pool2d_backward,
    .name = pool2d_name,
};
static const nnlib__layer_ops avgpool2d_ops = {
    .kind = NNLIB_LAYER_AVGPOOL2D,
    .plan = pool2d_plan,
    .forward = pool2d_forward,
    .backward = pool2d_backward,
    .name = pool2d_name,
};

nnlib_status nnlib_pool2d_options_init_size(nnlib_pool2d_options *o,
                                            size_t struct_size) {
  nnlib_pool2d_options d;
  memset(&d, 0, sizeof d);
  return nnlib__init_options(o, struct_size, &d, sizeof d,
                             "nnlib_pool2d_options_init");
}

/* The entry point of programs built against 1.0-1.2 headers (the header's
 * macro of this name passes the caller's sizeof instead); the parentheses
 * keep the macro out. */
nnlib_status(nnlib_pool2d_options_init)(nnlib_pool2d_options *o) {
  return nnlib_pool2d_options_init_size(
      o, NNLIB__SIZE_THROUGH(nnlib_pool2d_options, padding_w));
}

static const char *kind_name(nnlib_layer_kind kind) {
  return kind == NNLIB_LAYER_MAXPOOL2D   ? "maxpool2d"
         : kind == NNLIB_LAYER_MINPOOL2D ? "minpool2d"
                                         : "avgpool2d";
}

/* PyTorch's rule: padding at most half the kernel, so that every window
 * holds at least one input element. */
static nnlib_status check_pool_args(nnlib_layer_kind kind, int64_t kh,
                                    int64_t kw, const nnlib_pool2d_options *o) {
  const int64_t limit = NNLIB__BLAS_DIM_MAX;
  const char *name = kind_name(kind);
  NNLIB_CHECK_ARG(kh >= 1 && kw >= 1 && kh <= limit && kw <= limit,
                  "%s: kernel %lldx%lld, must be at least 1x1", name,
                  (long long)kh, (long long)kw);
  NNLIB_CHECK_ARG(o->stride_h >= 0 && o->stride_w >= 0 &&
                      o->stride_h <= limit && o->stride_w <= limit,
                  "%s: stride %lldx%lld, must be at least 1 (0: the kernel "
                  "size)",
                  name, (long long)o->stride_h, (long long)o->stride_w);
  NNLIB_CHECK_ARG(o->padding_h >= 0 && o->padding_w >= 0 &&
                      /* p <= k / 2, not 2 p <= k: p may come from a
                       * file, and 2 p overflow */
                      o->padding_h <= kh / 2 && o->padding_w <= kw / 2,
                  "%s: padding %lldx%lld, must be in 0..half the kernel "
                  "%lldx%lld",
                  name, (long long)o->padding_h, (long long)o->padding_w,
                  (long long)kh, (long long)kw);
  return NNLIB_OK;
}

nnlib_status nnlib_pool2d_create(nnlib_layer **out, nnlib_layer_kind kind,
                                 int64_t kernel_h, int64_t kernel_w,
                                 const nnlib_pool2d_options *options) {
  NNLIB_CHECK_ARG(out != NULL, "nnlib_pool2d_create: out is NULL");
  *out = NULL;
  NNLIB_CHECK_ARG(kind == NNLIB_LAYER_MAXPOOL2D ||
                      kind == NNLIB_LAYER_MINPOOL2D ||
                      kind == NNLIB_LAYER_AVGPOOL2D,
                  "nnlib_pool2d_create: kind %d is not MAXPOOL2D, MINPOOL2D "
                  "or AVGPOOL2D",
                  (int)kind);
  nnlib_pool2d_options o;
  nnlib_pool2d_options_init(&o);
  NNLIB_TRY(nnlib__read_options(&o, sizeof o, options, "nnlib_pool2d_options"));
  NNLIB_TRY(check_pool_args(kind, kernel_h, kernel_w, &o));
  pool2d_layer *p = nnlib__alloc(sizeof *p);
  if (p == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "nnlib_pool2d_create: no memory");
  nnlib__layer_init(&p->base, kind == NNLIB_LAYER_MAXPOOL2D   ? &maxpool2d_ops
                              : kind == NNLIB_LAYER_MINPOOL2D ? &minpool2d_ops
                                                              : &avgpool2d_ops);
  p->kind = kind;
  p->kh = kernel_h;
  p->kw = kernel_w;
  p->sh = o.stride_h != 0 ? o.stride_h : kernel_h;
  p->sw = o.stride_w != 0 ? o.stride_w : kernel_w;
  p->ph = o.padding_h;
  p->pw = o.padding_w;
  *out = &p->base;
  return NNLIB_OK;
}

/* ------------------------- model description and model file (codec) */

/* maxpool:K|KHxKW[:sS|:sSHxSW][:pP|:pPHxPW] (and minpool, avgpool); the
 * stride defaults to the kernel. */
static nnlib_status pool2d_parse_option(const nnlib__spec_item *item,
                                        size_t field, nnlib_pool2d_options *o,
                                        unsigned *seen) {
  const nnlib__spec_field *f = &item->fields[field];
  char letter = f->length > 1 ? f->text[0] : '\0';
  if (letter != 's' && letter != 'p')
    return nnlib__spec_error(item,
                             "argument %zu: pooling options are sN (stride) "
                             "and pN (padding), each N or HxW",
                             field);
  unsigned bit = letter == 's' ? 1u : 2u;
  if (*seen & bit)
    return nnlib__spec_error(item, "argument %zu repeats an option", field);
  *seen |= bit;
  int64_t pair[2];
  NNLIB_TRY(nnlib__spec_dims(item, field, 1, 2, true, letter == 's' ? 1 : 0,
                             NNLIB__BLAS_DIM_MAX, pair));
  if (letter == 's') {
    o->stride_h = pair[0];
    o->stride_w = pair[1];
  } else {
    o->padding_h = pair[0];
    o->padding_w = pair[1];
  }
  return NNLIB_OK;
}

static nnlib_status pool2d_parse_kind(const nnlib__spec_item *item,
                                      nnlib_layer_kind kind,
                                      nnlib_layer **out) {
  int64_t kernel[2];
  nnlib_pool2d_options o;
  unsigned seen = 0;
  nnlib_pool2d_options_init(&o);
  NNLIB_TRY(nnlib__spec_fields(item, 2, 4));
  NNLIB_TRY(nnlib__spec_dims(item, 1, 0, 2, true, 1, NNLIB__BLAS_DIM_MAX,
                             kernel));
  for (size_t f = 2; f < item->field_count; f++)
    NNLIB_TRY(pool2d_parse_option(item, f, &o, &seen));
  return nnlib_pool2d_create(out, kind, kernel[0], kernel[1], &o);
}

static nnlib_status maxpool_parse_spec(const nnlib__spec_item *item,
                                       nnlib_layer **out) {
  return pool2d_parse_kind(item, NNLIB_LAYER_MAXPOOL2D, out);
}
static nnlib_status minpool_parse_spec(const nnlib__spec_item *item,
                                       nnlib_layer **out) {
  return pool2d_parse_kind(item, NNLIB_LAYER_MINPOOL2D, out);
}
static nnlib_status avgpool_parse_spec(const nnlib__spec_item *item,
                                       nnlib_layer **out) {
  return pool2d_parse_kind(item, NNLIB_LAYER_AVGPOOL2D, out);
}

static void pool2d_write_spec(const nnlib_layer *l, nnlib__text *t) {
  const pool2d_layer *p = (const pool2d_layer *)l;
  const char *item = p->kind == NNLIB_LAYER_MAXPOOL2D   ? "maxpool"
                     : p->kind == NNLIB_LAYER_MINPOOL2D ? "minpool"
                                                        : "avgpool";
  nnlib__text_append(t, "%s", item);
  nnlib__text_append_pair(t, "", p->kh, p->kw);
  if (p->sh != p->kh || p->sw != p->kw)
    nnlib__text_append_pair(t, "s", p->sh, p->sw);
  if (p->ph != 0 || p->pw != 0)
    nnlib__text_append_pair(t, "p", p->ph, p->pw);
}

/* config: i64 kernel_h, kernel_w, stride_h, stride_w (as used, never 0),
 * padding_h, padding_w: 48 bytes */
static void pool2d_write_config(const nnlib_layer *l, nnlib__writer *w) {
  const pool2d_layer *p = (const pool2d_layer *)l;
  const int64_t v[6] = {p->kh, p->kw, p->sh, p->sw, p->ph, p->pw};
  for (int i = 0; i < 6; i++)
    nnlib__put_i64(w, v[i]);
}

static nnlib_status pool2d_read_kind(nnlib__reader *r, nnlib_layer_kind kind,
                                     nnlib_layer **out) {
  int64_t v[6];
  for (int i = 0; i < 6; i++)
    NNLIB_TRY(nnlib__get_i64(r, &v[i]));
  if (v[2] < 1 || v[3] < 1)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "%s: stride %lldx%lld, must be at least 1",
                        kind_name(kind), (long long)v[2], (long long)v[3]);
  nnlib_pool2d_options o;
  nnlib_pool2d_options_init(&o);
  o.stride_h = v[2];
  o.stride_w = v[3];
  o.padding_h = v[4];
  o.padding_w = v[5];
  return nnlib_pool2d_create(out, kind, v[0], v[1], &o);
}

static nnlib_status maxpool_read_config(nnlib__reader *r, nnlib_layer **out) {
  return pool2d_read_kind(r, NNLIB_LAYER_MAXPOOL2D, out);
}
static nnlib_status minpool_read_config(nnlib__reader *r, nnlib_layer **out) {
  return pool2d_read_kind(r, NNLIB_LAYER_MINPOOL2D, out);
}
static nnlib_status avgpool_read_config(nnlib__reader *r, nnlib_layer **out) {
  return pool2d_read_kind(r, NNLIB_LAYER_AVGPOOL2D, out);
}

const nnlib__layer_codec nnlib__maxpool2d_codec = {
    .kind = NNLIB_LAYER_MAXPOOL2D,
    .spec_names = {"maxpool"},
    .parse_spec = maxpool_parse_spec,
    .write_spec = pool2d_write_spec,
    .write_config = pool2d_write_config,
    .read_config = maxpool_read_config,
};

const nnlib__layer_codec nnlib__minpool2d_codec = {
    .kind = NNLIB_LAYER_MINPOOL2D,
    .spec_names = {"minpool"},
    .parse_spec = minpool_parse_spec,
    .write_spec = pool2d_write_spec,
    .write_config = pool2d_write_config,
    .read_config = minpool_read_config,
};

const nnlib__layer_codec nnlib__avgpool2d_codec = {
    .kind = NNLIB_LAYER_AVGPOOL2D,
    .spec_names = {"avgpool"},
    .parse_spec = avgpool_parse_spec,
    .write_spec = pool2d_write_spec,
    .write_config = pool2d_write_config,
    .read_config = avgpool_read_config,
};
