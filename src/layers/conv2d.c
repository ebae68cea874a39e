/* conv2d.c - 2-D convolution over NCHW batches, lowered to one GEMM over the
 * whole minibatch (im2col).
 *
 * Shapes: x [N, C, H, W], W [Co, C, kH, kW] viewed as [Co, K] with
 * K = C kH kW, P = OH OW output positions per sample.
 *
 * forward:  col [K, N P]: col[(c, i, j), (s, oh, ow)] =
 *               x[s, c, oh sh - ph + i dh, ow sw - pw + j dw]  (0 outside)
 *           Z  = W col          [Co,K] x [K,NP]   one sgemm, Z [Co, N, P]
 *           y[s, co, p] = Z[co, s, p] + b[co]      (block copy to NCHW)
 * backward: dZ[co, s, p] = dy[s, co, p]             (block copy back)
 *           db = row sums of dZ
 *           dW = dZ col^T       [Co,NP] x [NP,K]  one sgemm
 *           dcol = W^T dZ       [K,Co] x [Co,NP]  one sgemm (not for the
 *                                                  first layer)
 *           dx = col2im(dcol): the transpose of the im2col gather
 * Workspace (planned at compile for the maximum batch): col, then Z. col is
 * written by forward and read by backward; dcol reuses it after dW. */
#include "nnlib_internal.h"

#include <math.h>
#include <string.h>

typedef struct conv2d_layer {
  nnlib_layer base;
  nnlib_conv2d_options o;  /* as created (in_channels 0: from the input) */
  int64_t out_c, kh, kw;
  /* planned */
  int64_t in_c, in_h, in_w, out_h, out_w;
} conv2d_layer;

static const char *conv2d_name(const nnlib_layer *l) {
  (void)l;
  return "conv2d";
}

static int64_t patch_size(const conv2d_layer *c) {
  return c->in_c * c->kh * c->kw;
}

static int64_t positions(const conv2d_layer *c) {
  return c->out_h * c->out_w;
}

static nnlib_status check_input(conv2d_layer *c, const nnlib__shape *in) {
  char shape[160];
  nnlib__shape_text(in, shape, sizeof shape);
  if (in->rank != 3)
    return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                        "conv2d: input is %s per sample, expects [C, H, W] "
                        "(channels, height, width)",
                        shape);
  if (c->o.in_channels != 0 && c->o.in_channels != in->dims[0])
    return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                        "conv2d: input %s has %lld channels, layer expects "
                        "%lld",
                        shape, (long long)in->dims[0],
                        (long long)c->o.in_channels);
  c->in_c = in->dims[0];
  c->in_h = in->dims[1];
  c->in_w = in->dims[2];
  c->out_h = nnlib__window_out(c->in_h, c->kh, c->o.stride_h, c->o.padding_h,
                               c->o.dilation_h);
  c->out_w = nnlib__window_out(c->in_w, c->kw, c->o.stride_w, c->o.padding_w,
                               c->o.dilation_w);
  if (c->out_h < 1 || c->out_w < 1)
    return nnlib__error(
        NNLIB_ERR_SHAPE_MISMATCH,
        "conv2d: kernel %lldx%lld (dilation %lldx%lld) is larger than the "
        "padded input %lldx%lld (%lldx%lld with padding %lldx%lld)",
        (long long)c->kh, (long long)c->kw, (long long)c->o.dilation_h,
        (long long)c->o.dilation_w,
        (long long)(c->in_h + 2 * c->o.padding_h),
        (long long)(c->in_w + 2 * c->o.padding_w), (long long)c->in_h,
        (long long)c->in_w, (long long)c->o.padding_h,
        (long long)c->o.padding_w);
  /* patch_size() and positions() multiply these unchecked afterwards: a
   * file or description may hold a 2^31 kernel or padding */
  int64_t area, patch, outputs;
  if (nnlib__mul_overflows(c->kh, c->kw, &area) ||
      nnlib__mul_overflows(c->in_c, area, &patch) ||
      nnlib__mul_overflows(c->out_h, c->out_w, &outputs))
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "conv2d: %lld channels with a %lldx%lld kernel over "
                        "%lldx%lld output positions overflow",
                        (long long)c->in_c, (long long)c->kh,
                        (long long)c->kw, (long long)c->out_h,
                        (long long)c->out_w);
  return NNLIB_OK;
}

/* Workspace: col [K, N P] and Z [Co, N P]; every GEMM dimension within the
 * 32-bit BLAS interface. */
static nnlib_status plan_workspace(nnlib_layer *l, int64_t max_batch) {
  conv2d_layer *c = (conv2d_layer *)l;
  int64_t k = patch_size(c), cols, col_floats, z_floats, total;
  if (k > NNLIB__BLAS_DIM_MAX ||
      nnlib__mul_overflows(positions(c), max_batch, &cols) ||
      cols > NNLIB__BLAS_DIM_MAX)
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "conv2d: a batch of %lld gives a %lld x %lld x %lld "
                        "lowered matrix, over the BLAS limit",
                        (long long)max_batch, (long long)k,
                        (long long)max_batch, (long long)positions(c));
  if (nnlib__mul_overflows(k, cols, &col_floats) ||
      nnlib__mul_overflows(c->out_c, cols, &z_floats) ||
      __builtin_add_overflow(col_floats, z_floats, &total) ||
      (uint64_t)total > SIZE_MAX / sizeof(float))
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "conv2d: workspace for a batch of %lld overflows",
                        (long long)max_batch);
  l->workspace_floats = (size_t)total;
  return NNLIB_OK;
}

static nnlib_status conv2d_plan(nnlib_layer *l, const nnlib__shape *in,
                                int64_t max_batch) {
  conv2d_layer *c = (conv2d_layer *)l;
  NNLIB_TRY(check_input(c, in));
  NNLIB_TRY(plan_workspace(l, max_batch));
  l->out_shape.rank = 3;
  l->out_shape.dims[0] = c->out_c;
  l->out_shape.dims[1] = c->out_h;
  l->out_shape.dims[2] = c->out_w;
  int64_t wshape[4] = {c->out_c, c->in_c, c->kh, c->kw};
  nnlib__layer_declare_param(l, "weight", wshape, 4);
  if (c->o.with_bias)
    nnlib__layer_declare_param(l, "bias", &c->out_c, 1);
  return NNLIB_OK;
}

/* He (Kaiming) normal, std = sqrt(2 / fan_in) with fan_in = C kH kW:
 * convolutions feed ReLU-family activations, directly or through a
 * normalisation. Biases zero. */
static void conv2d_init(nnlib_layer *l, nnlib__rng *rng) {
  conv2d_layer *c = (conv2d_layer *)l;
  nnlib__param *w = &l->params[0];
  float std = sqrtf(2.0f / (float)patch_size(c));
  for (int64_t i = 0; i < w->size; i++)
    w->value.data[i] = std * nnlib__rng_normal(rng);
  if (c->o.with_bias)
    memset(l->params[1].value.data, 0,
           (size_t)l->params[1].size * sizeof(float));
}

/* The output columns [lo, hi) whose input column ow sw + offset lies in
 * [0, w); outside them the lowered row holds padding zeros. */
static void valid_range(int64_t offset, int64_t stride, int64_t w,
                        int64_t out, int64_t *lo, int64_t *hi) {
  int64_t first = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  int64_t last = w - offset <= 0 ? 0 : (w - offset + stride - 1) / stride;
  *lo = first < out ? first : out;
  *hi = last < out ? last : out;
  if (*hi < *lo)
    *hi = *lo;
}

/* The geometry im2col and col2im share: input and output sizes, stride,
 * padding and dilation per axis. */
typedef struct lowering {
  int64_t in_h, in_w, out_h, out_w, sh, sw, ph, pw, dh, dw;
} lowering;

static lowering lowering_of(const conv2d_layer *c) {
  return (lowering){c->in_h,        c->in_w,        c->out_h,
                    c->out_w,       c->o.stride_h,  c->o.stride_w,
                    c->o.padding_h, c->o.padding_w, c->o.dilation_h,
                    c->o.dilation_w};
}

/* One row of col for kernel offset (i, j) of one input plane. */
static void gather_plane(const lowering *g, const float *plane, float *dst,
                         int64_t i, int64_t j) {
  int64_t offset = j * g->dw - g->pw, lo, hi;
  valid_range(offset, g->sw, g->in_w, g->out_w, &lo, &hi);
  for (int64_t oh = 0; oh < g->out_h; oh++, dst += g->out_w) {
    int64_t ih = oh * g->sh - g->ph + i * g->dh;
    if (ih < 0 || ih >= g->in_h) {
      for (int64_t ow = 0; ow < g->out_w; ow++)
        dst[ow] = 0.0f;
      continue;
    }
    /* plain loops, not memcpy/memset: rows are short (a 14-wide feature
     * map), and three library calls per row cost more than the copy */
    const float *src = plane + ih * g->in_w + offset;
    for (int64_t ow = 0; ow < lo; ow++)
      dst[ow] = 0.0f;
    if (g->sw == 1)
      for (int64_t ow = lo; ow < hi; ow++)
        dst[ow] = src[ow];
    else
      for (int64_t ow = lo; ow < hi; ow++)
        dst[ow] = src[ow * g->sw];
    for (int64_t ow = hi; ow < g->out_w; ow++)
      dst[ow] = 0.0f;
  }
}

/* The transpose of gather_plane: adds a row of dcol into the plane's dx. */
static void scatter_plane(const lowering *g, float *plane, const float *src,
                          int64_t i, int64_t j) {
  int64_t offset = j * g->dw - g->pw, lo, hi;
  valid_range(offset, g->sw, g->in_w, g->out_w, &lo, &hi);
  for (int64_t oh = 0; oh < g->out_h; oh++, src += g->out_w) {
    int64_t ih = oh * g->sh - g->ph + i * g->dh;
    if (ih < 0 || ih >= g->in_h)
      continue;
    float *dst = plane + ih * g->in_w + offset;
    for (int64_t ow = lo; ow < hi; ow++)
      dst[ow * g->sw] += src[ow];
  }
}

/* col[K, n P] from x[n, C, H, W]; rows in (c, i, j) order like W's. */
static void im2col(const conv2d_layer *c, const float *x, float *col,
                   int64_t n) {
  lowering g = lowering_of(c);
  int64_t p = positions(c), plane = c->in_h * c->in_w, row = 0;
  for (int64_t ch = 0; ch < c->in_c; ch++)
    for (int64_t i = 0; i < c->kh; i++)
      for (int64_t j = 0; j < c->kw; j++, row++) {
        float *dst = col + row * n * p;
        for (int64_t s = 0; s < n; s++)
          gather_plane(&g, x + (s * c->in_c + ch) * plane, dst + s * p, i, j);
      }
}

/* dx[n, C, H, W] = col2im(dcol); dx is overwritten. */
static void col2im(const conv2d_layer *c, const float *dcol, float *dx,
                   int64_t n) {
  lowering g = lowering_of(c);
  int64_t p = positions(c), plane = c->in_h * c->in_w, row = 0;
  memset(dx, 0, (size_t)(n * c->in_c * plane) * sizeof(float));
  for (int64_t ch = 0; ch < c->in_c; ch++)
    for (int64_t i = 0; i < c->kh; i++)
      for (int64_t j = 0; j < c->kw; j++, row++) {
        const float *src = dcol + row * n * p;
        for (int64_t s = 0; s < n; s++)
          scatter_plane(&g, dx + (s * c->in_c + ch) * plane, src + s * p, i,
                        j);
      }
}

static nnlib_status conv2d_forward(nnlib_layer *l, const nnlib__run *run,
                                   const float *x, float *y, int64_t n) {
  conv2d_layer *c = (conv2d_layer *)l;
  int64_t k = patch_size(c), p = positions(c), np = n * p;
  float *col = run->workspace, *z = col + k * np;
  im2col(c, x, col, n);
  NNLIB_TRY(nnlib__gemm(NNLIB__NO_TRANS, NNLIB__NO_TRANS, c->out_c, np, k,
                        1.0f, l->params[0].value.data, k, col, np, 0.0f, z,
                        np));
  const float *b = c->o.with_bias ? l->params[1].value.data : NULL;
  for (int64_t co = 0; co < c->out_c; co++)
    for (int64_t s = 0; s < n; s++) {
      const float *src = z + co * np + s * p;
      float *dst = y + (s * c->out_c + co) * p;
      float bias = b != NULL ? b[co] : 0.0f;
      for (int64_t q = 0; q < p; q++)
        dst[q] = src[q] + bias;
    }
  return NNLIB_OK;
}

/* Sum of v[0, n) in 8 float lanes (so the loop vectorises), in double. */
static double plane_sum(const float *v, int64_t n) {
  float lanes[8] = {0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++)
      lanes[k] += v[i + k];
  double total = 0.0;
  for (int k = 0; k < 8; k++)
    total += lanes[k];
  for (; i < n; i++)
    total += v[i];
  return total;
}

/* dZ [Co, N P] from dy [N, Co, P], with db = its row sums (if wanted). */
static void gather_output_grad(const conv2d_layer *c, const float *dy,
                               float *dz, float *db, int64_t n) {
  int64_t p = positions(c), np = n * p;
  for (int64_t co = 0; co < c->out_c; co++) {
    double sum = 0.0;
    for (int64_t s = 0; s < n; s++) {
      const float *src = dy + (s * c->out_c + co) * p;
      memcpy(dz + co * np + s * p, src, (size_t)p * sizeof(float));
      if (db != NULL)
        sum += plane_sum(src, p);
    }
    if (db != NULL)
      db[co] = (float)sum;
  }
}

/* Plain SGD folded into backward: p -= lr g over one parameter tensor. */
static void sgd_apply(nnlib__param *p, float lr) {
  for (int64_t i = 0; i < p->size; i++)
    p->value.data[i] -= lr * p->grad.data[i];
}

static nnlib_status conv2d_backward(nnlib_layer *l, const nnlib__run *run,
                                    const float *x, const float *y, float *dy,
                                    float *dx, int64_t n) {
  (void)x;
  (void)y;
  conv2d_layer *c = (conv2d_layer *)l;
  int64_t k = patch_size(c), p = positions(c), np = n * p;
  float *col = run->workspace, *dz = col + k * np;
  float *w = l->params[0].value.data;
  gather_output_grad(c, dy, dz,
                     c->o.with_bias ? l->params[1].grad.data : NULL, n);
  NNLIB_TRY(nnlib__gemm(NNLIB__NO_TRANS, NNLIB__TRANS, c->out_c, k, np, 1.0f,
                        dz, np, col, np, 0.0f, l->params[0].grad.data, k));
  if (dx != NULL) {
    /* col is spent: dcol overwrites it, with W as forward saw it */
    NNLIB_TRY(nnlib__gemm(NNLIB__TRANS, NNLIB__NO_TRANS, k, np, c->out_c, 1.0f,
                          w, k, dz, np, 0.0f, col, np));
    col2im(c, col, dx, n);
  }
  if (run->sgd_fused)
    for (size_t i = 0; i < l->param_count; i++)
      sgd_apply(&l->params[i], run->sgd_lr);
  return NNLIB_OK;
}

static const nnlib__layer_ops conv2d_ops = {
    .kind = NNLIB_LAYER_CONV2D,
    .plan = conv2d_plan,
    .init = conv2d_init,
    .forward = conv2d_forward,
    .backward = conv2d_backward,
    .name = conv2d_name,
    .fuses_sgd = true,
};

nnlib_status nnlib_conv2d_options_init(nnlib_conv2d_options *o) {
  NNLIB_CHECK_ARG(o != NULL, "nnlib_conv2d_options_init: options is NULL");
  memset(o, 0, sizeof *o);
  o->struct_size = sizeof *o;
  o->stride_h = o->stride_w = 1;
  o->dilation_h = o->dilation_w = 1;
  o->with_bias = 1;
  return NNLIB_OK;
}

/* Every size at most 2^31 - 1 keeps the output-size arithmetic in int64. */
static nnlib_status check_options(const nnlib_conv2d_options *o) {
  const int64_t limit = NNLIB__BLAS_DIM_MAX;
  NNLIB_CHECK_ARG(o->in_channels >= 0 && o->in_channels <= limit,
                  "conv2d: in_channels is %lld, must be in 0..%lld (0: from "
                  "the input)",
                  (long long)o->in_channels, (long long)limit);
  NNLIB_CHECK_ARG(o->stride_h >= 1 && o->stride_w >= 1 &&
                      o->stride_h <= limit && o->stride_w <= limit,
                  "conv2d: stride %lldx%lld, must be at least 1",
                  (long long)o->stride_h, (long long)o->stride_w);
  NNLIB_CHECK_ARG(o->padding_h >= 0 && o->padding_w >= 0 &&
                      o->padding_h <= limit && o->padding_w <= limit,
                  "conv2d: padding %lldx%lld, must be >= 0",
                  (long long)o->padding_h, (long long)o->padding_w);
  NNLIB_CHECK_ARG(o->dilation_h >= 1 && o->dilation_w >= 1 &&
                      o->dilation_h <= limit && o->dilation_w <= limit,
                  "conv2d: dilation %lldx%lld, must be at least 1",
                  (long long)o->dilation_h, (long long)o->dilation_w);
  NNLIB_CHECK_ARG(o->with_bias == 0 || o->with_bias == 1,
                  "conv2d: with_bias is %d, must be 0 or 1", o->with_bias);
  return NNLIB_OK;
}

nnlib_status nnlib_conv2d_create(nnlib_layer **out, int64_t out_channels,
                                 int64_t kernel_h, int64_t kernel_w,
                                 const nnlib_conv2d_options *options) {
  NNLIB_CHECK_ARG(out != NULL, "nnlib_conv2d_create: out is NULL");
  *out = NULL;
  nnlib_conv2d_options o;
  nnlib_conv2d_options_init(&o);
  NNLIB_TRY(nnlib__read_options(&o, sizeof o, options, "nnlib_conv2d_options"));
  NNLIB_CHECK_ARG(out_channels >= 1 && out_channels <= NNLIB__BLAS_DIM_MAX,
                  "conv2d: out_channels is %lld, must be in 1..%lld",
                  (long long)out_channels, (long long)NNLIB__BLAS_DIM_MAX);
  NNLIB_CHECK_ARG(kernel_h >= 1 && kernel_w >= 1 &&
                      kernel_h <= NNLIB__BLAS_DIM_MAX &&
                      kernel_w <= NNLIB__BLAS_DIM_MAX,
                  "conv2d: kernel %lldx%lld, must be at least 1x1",
                  (long long)kernel_h, (long long)kernel_w);
  NNLIB_TRY(check_options(&o));
  conv2d_layer *c = nnlib__alloc(sizeof *c);
  if (c == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "nnlib_conv2d_create: no memory");
  nnlib__layer_init(&c->base, &conv2d_ops);
  c->o = o;
  c->o.struct_size = sizeof c->o;
  c->out_c = out_channels;
  c->kh = kernel_h;
  c->kw = kernel_w;
  *out = &c->base;
  return NNLIB_OK;
}

/* ------------------------- model description and model file (codec) */

/* conv:COxKHxKW[:sS|:sSHxSW][:pP|:pPHxPW][:dD|:dDHxDW][:nobias], options
 * in any order, each at most once. */
static nnlib_status conv2d_parse_option(const nnlib__spec_item *item,
                                        size_t field,
                                        nnlib_conv2d_options *o,
                                        unsigned *seen) {
  const nnlib__spec_field *f = &item->fields[field];
  const char *letters = "spd";
  int64_t *hs[3] = {&o->stride_h, &o->padding_h, &o->dilation_h};
  int64_t *ws[3] = {&o->stride_w, &o->padding_w, &o->dilation_w};
  int64_t mins[3] = {1, 0, 1};
  unsigned bit;
  if (nnlib__spec_field_is(item, field, "nobias")) {
    bit = 8;
    o->with_bias = 0;
  } else {
    const char *at = f->length > 1 ? strchr(letters, f->text[0]) : NULL;
    if (at == NULL || *at == '\0')
      return nnlib__spec_error(item,
                               "argument %zu: conv options are sN (stride), "
                               "pN (padding), dN (dilation), each N or HxW, "
                               "and nobias",
                               field);
    int i = (int)(at - letters);
    int64_t pair[2];
    NNLIB_TRY(nnlib__spec_dims(item, field, 1, 2, true, mins[i],
                               NNLIB__BLAS_DIM_MAX, pair));
    *hs[i] = pair[0];
    *ws[i] = pair[1];
    bit = 1u << i;
  }
  if (*seen & bit)
    return nnlib__spec_error(item, "argument %zu repeats an option", field);
  *seen |= bit;
  return NNLIB_OK;
}

static nnlib_status conv2d_parse_spec(const nnlib__spec_item *item,
                                      nnlib_layer **out) {
  int64_t dims[3];
  nnlib_conv2d_options o;
  unsigned seen = 0;
  nnlib_conv2d_options_init(&o);
  NNLIB_TRY(nnlib__spec_fields(item, 2, 6));
  NNLIB_TRY(nnlib__spec_dims(item, 1, 0, 3, false, 1, NNLIB__BLAS_DIM_MAX,
                             dims));
  for (size_t f = 2; f < item->field_count; f++)
    NNLIB_TRY(conv2d_parse_option(item, f, &o, &seen));
  return nnlib_conv2d_create(out, dims[0], dims[1], dims[2], &o);
}

static void conv2d_write_spec(const nnlib_layer *l, nnlib__text *t) {
  const conv2d_layer *c = (const conv2d_layer *)l;
  const nnlib_conv2d_options *o = &c->o;
  nnlib__text_append(t, "conv:%lldx%lldx%lld", (long long)c->out_c,
                     (long long)c->kh, (long long)c->kw);
  if (o->stride_h != 1 || o->stride_w != 1)
    nnlib__text_append_pair(t, "s", o->stride_h, o->stride_w);
  if (o->padding_h != 0 || o->padding_w != 0)
    nnlib__text_append_pair(t, "p", o->padding_h, o->padding_w);
  if (o->dilation_h != 1 || o->dilation_w != 1)
    nnlib__text_append_pair(t, "d", o->dilation_h, o->dilation_w);
  if (!o->with_bias)
    nnlib__text_append(t, ":nobias");
}

/* config: i64 in_channels as created (0: from the input), i64 out_channels,
 * kernel_h, kernel_w, stride_h, stride_w, padding_h, padding_w, dilation_h,
 * dilation_w, u32 with_bias: 84 bytes */
static void conv2d_write_config(const nnlib_layer *l, nnlib__writer *w) {
  const conv2d_layer *c = (const conv2d_layer *)l;
  const nnlib_conv2d_options *o = &c->o;
  const int64_t v[10] = {o->in_channels, c->out_c,      c->kh,
                         c->kw,          o->stride_h,   o->stride_w,
                         o->padding_h,   o->padding_w,  o->dilation_h,
                         o->dilation_w};
  for (int i = 0; i < 10; i++)
    nnlib__put_i64(w, v[i]);
  nnlib__put_u32(w, o->with_bias ? 1u : 0u);
}

static nnlib_status conv2d_read_config(nnlib__reader *r, nnlib_layer **out) {
  int64_t v[10];
  uint32_t bias;
  for (int i = 0; i < 10; i++)
    NNLIB_TRY(nnlib__get_i64(r, &v[i]));
  NNLIB_TRY(nnlib__get_u32(r, &bias));
  if (bias > 1)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "conv2d: with_bias is %u, must be 0 or 1", bias);
  nnlib_conv2d_options o;
  nnlib_conv2d_options_init(&o);
  o.in_channels = v[0];
  o.stride_h = v[4];
  o.stride_w = v[5];
  o.padding_h = v[6];
  o.padding_w = v[7];
  o.dilation_h = v[8];
  o.dilation_w = v[9];
  o.with_bias = (int)bias;
  return nnlib_conv2d_create(out, v[1], v[2], v[3], &o);
}

const nnlib__layer_codec nnlib__conv2d_codec = {
    .kind = NNLIB_LAYER_CONV2D,
    .spec_names = {"conv"},
    .parse_spec = conv2d_parse_spec,
    .write_spec = conv2d_write_spec,
    .write_config = conv2d_write_config,
    .read_config = conv2d_read_config,
};
