/* dense.c - fully connected layer, y = x W^T + b, W [out, in], b [out],
 * and the linear layer, the same map over the last axis of any-rank samples
 * [..., in] -> [..., out] (torch.nn.Linear). Both run the same GEMMs over
 * N rows: a dense layer's row is a whole (flattened) sample, a linear
 * layer's a row of the last axis, N = n * (in_size / in) samples' worth
 * (n * run->steps * ... when decoding, see nnlib__run_rows).
 *
 * forward:  Y  = X W^T          [N,in] x [in,out]   one sgemm
 *           Y  = f(Y + b)       one fused pass (f: a following elementwise
 *                               activation the model fused in, or identity)
 *           With a bias and f the identity, Y starts as the bias rows
 *           and the sgemm adds onto them (beta 1): no pass follows.
 *           With few rows (2 <= N <= 128 and 2N <= out) the product is
 *           issued as its transpose, Y^T = W X^T, into the workspace and
 *           copied over in tiles (see transposed_rows).
 * backward: dZ = dY * f'(Y)     fused with db = column sums of dZ
 *           dX = dZ W           [N,out] x [out,in]  one sgemm (not for the
 *                                                   first layer)
 *           dW = dZ^T X         [out,N] x [N,in]    one sgemm, or with plain
 *                               SGD the update W -= lr dZ^T X in that sgemm
 */
#include "layers/layer.h"

#include <math.h>

typedef struct dense_layer {
  nnlib_layer base;
  int64_t declared_in;               /* as created; 0: take it at compile */
  int64_t in_features, out_features; /* in_features as planned */
  bool with_bias;
  nnlib_activation init_for; /* the activation that follows, for init
                                (dense only: linear keeps PyTorch's) */
  float init_param;
  bool last_axis; /* linear: rows of the last axis, not whole samples */
} dense_layer;

/* The rows the GEMMs run over in one call of n samples. */
static int64_t gemm_rows(const nnlib_layer *l, const nnlib__run *run,
                         int64_t n) {
  return ((const dense_layer *)l)->last_axis ? nnlib__run_rows(l, run, n) : n;
}

/* OpenBLAS 0.3.21 runs a row-major product with few rows and many columns
 * well below one with the shapes swapped, and more so the fewer the rows:
 * one thread, [N,1024] = [N,1024] x [1024,1024] against its transpose,
 * GFLOP/s (benchmarks/MEASUREMENTS.md, "Few rows"):
 *
 *   N                          8     16    32    64    128   256
 *   Haswell kernels   Y        44    61    77    89    95    97
 *                     Y^T      61    76    90    95    98    98
 *   OpenBLAS's own    Y        36    64    96   136   151   171
 *                     Y^T      60   114   142   167   177   183
 *
 * So a forward with at most TRANSPOSED_MAX_ROWS rows and at least twice as
 * many outputs computes Y^T = W X^T into the workspace and transposes it
 * into y (a tiled copy over at most 128 x out floats, in cache). One row
 * is a matrix-vector product either way (blas.c). */
enum { TRANSPOSED_MAX_ROWS = 128 };

/* Beyond this workspace (16 MB) the layer keeps the plain product. */
#define TRANSPOSED_MAX_FLOATS ((int64_t)1 << 22)

static bool transposed_rows(const nnlib_layer *l, const nnlib__run *run,
                            int64_t rows) {
  int64_t out = ((const dense_layer *)l)->out_features;
  return run->workspace != NULL && rows >= 2 && 2 * rows <= out &&
         rows <= TRANSPOSED_MAX_ROWS &&
         (size_t)(rows * out) <= l->workspace_floats;
}

/* The workspace of the transposed product: out floats for each of the
 * rows a call can have that transposed_rows takes (at most
 * TRANSPOSED_MAX_ROWS and out / 2; none for fewer than 2, none past
 * TRANSPOSED_MAX_FLOATS). */
static void plan_transposed_room(nnlib_layer *l, int64_t rows_per_sample,
                                 int64_t max_batch) {
  int64_t out = ((dense_layer *)l)->out_features;
  int64_t rows = out / 2 < TRANSPOSED_MAX_ROWS ? out / 2 : TRANSPOSED_MAX_ROWS;
  if (rows_per_sample < rows && max_batch < rows &&
      rows_per_sample * max_batch < rows)
    rows = rows_per_sample * max_batch;
  bool fits = rows >= 2 && out <= TRANSPOSED_MAX_FLOATS / rows;
  l->workspace_floats = fits ? (size_t)(rows * out) : 0;
  l->workspace_scratch = true; /* backward reads no workspace */
}

static const char *dense_name(const nnlib_layer *l) {
  (void)l;
  return "dense";
}

static nnlib_status dense_plan(nnlib_layer *l, const nnlib__shape *in,
                               int64_t max_batch) {
  dense_layer *d = (dense_layer *)l;
  int64_t features = nnlib__shape_numel(in);
  if (d->declared_in != 0 && d->declared_in != features)
    return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                        "dense: input has %lld features, layer expects %lld",
                        (long long)features, (long long)d->declared_in);
  if (features > NNLIB__BLAS_DIM_MAX)
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "dense: %lld input features exceed the BLAS limit",
                        (long long)features);
  int64_t weight_size;
  if (nnlib__mul_overflows(features, d->out_features, &weight_size))
    return nnlib__error(NNLIB_ERR_TOO_LARGE, "dense: weight size overflows");
  d->in_features = features;
  plan_transposed_room(l, 1, max_batch);
  l->out_shape.rank = 1;
  l->out_shape.dims[0] = d->out_features;
  l->param_count = 0;
  int64_t wshape[2] = {d->out_features, features};
  nnlib__layer_declare_param(l, "weight", wshape, 2);
  if (d->with_bias)
    nnlib__layer_declare_param(l, "bias", &d->out_features, 1);
  return NNLIB_OK;
}

/* Xavier/Glorot uniform before sigmoid, tanh and identity; He (Kaiming)
 * normal with the leaky slope's gain before the ReLU family. Biases zero. */
static void dense_init(nnlib_layer *l, nnlib__rng *rng) {
  dense_layer *d = (dense_layer *)l;
  nnlib__param *w = &l->params[0];
  float fan_in = (float)d->in_features, fan_out = (float)d->out_features;
  bool relu_family = d->init_for == NNLIB_ACT_RELU ||
                     d->init_for == NNLIB_ACT_LEAKY_RELU;
  if (relu_family) {
    float a = d->init_param;
    float std = sqrtf(2.0f / ((1.0f + a * a) * fan_in));
    for (int64_t i = 0; i < w->size; i++)
      w->value.data[i] = std * nnlib__rng_normal(rng);
  } else {
    float limit = sqrtf(6.0f / (fan_in + fan_out));
    for (int64_t i = 0; i < w->size; i++)
      w->value.data[i] = limit * (2.0f * nnlib__rng_uniform(rng) - 1.0f);
  }
  if (d->with_bias)
    for (int64_t i = 0; i < l->params[1].size; i++)
      l->params[1].value.data[i] = 0.0f;
}

/* The bias passes (forward's bias rows, backward's bias gradient of a
 * layer without a fused activation) are split over nnlib's threads when a
 * part holds at least this many values. */
#define BIAS_GRAIN ((int64_t)32768)

static nnlib_status dense_forward(nnlib_layer *l, const nnlib__run *run,
                                  const float *x, float *y, int64_t samples) {
  dense_layer *d = (dense_layer *)l;
  int64_t in = d->in_features, out = d->out_features;
  int64_t n = gemm_rows(l, run, samples);
  const float *w = l->params[0].value.data;
  const float *b = d->with_bias ? l->params[1].value.data : NULL;
  nnlib_activation act = NNLIB_ACT_IDENTITY;
  float param = 0.0f;
  if (l->fused_activation != NULL) {
    act = nnlib__activation_kind(l->fused_activation);
    param = nnlib__activation_param(l->fused_activation);
  }
  if (transposed_rows(l, run, n)) {
    float *yt = run->workspace; /* [out, n] */
    NNLIB_TRY(nnlib__gemm(NNLIB__NO_TRANS, NNLIB__TRANS, out, n, in, 1.0f, w,
                          in, x, in, 0.0f, yt, n));
    nnlib__transpose_tiles(yt, y, out, n, n, out);
  } else if (b != NULL && act == NNLIB_ACT_IDENTITY) {
    /* y = b + x W^T: the product adds onto the bias rows, and no pass
     * follows it (nnlib__rows_broadcast) */
    nnlib__rows_broadcast(y, b, n, out, BIAS_GRAIN);
    return nnlib__gemm(NNLIB__NO_TRANS, NNLIB__TRANS, n, out, in, 1.0f, x, in,
                       w, in, 1.0f, y, out);
  } else {
    NNLIB_TRY(nnlib__gemm(NNLIB__NO_TRANS, NNLIB__TRANS, n, out, in, 1.0f, x,
                          in, w, in, 0.0f, y, out));
  }
  if (b != NULL || act != NNLIB_ACT_IDENTITY)
    nnlib__activation_apply(act, param, y, b, y, n, out);
  return NNLIB_OK;
}

static nnlib_status dense_backward(nnlib_layer *l, const nnlib__run *run,
                                   const float *x, const float *y, float *dy,
                                   float *dx, int64_t samples) {
  dense_layer *d = (dense_layer *)l;
  int64_t in = d->in_features, out = d->out_features;
  int64_t n = gemm_rows(l, run, samples);
  float *db = d->with_bias ? l->params[1].grad.data : NULL;
  if (l->fused_activation != NULL) {
    nnlib_activation act = nnlib__activation_kind(l->fused_activation);
    float param = nnlib__activation_param(l->fused_activation);
    nnlib__activation_backward(act, param, y, dy, dy, db, n, out);
  } else if (db != NULL) { /* dZ is dY itself: only its column sums */
    nnlib__column_sums(dy, n, out, out, db, BIAS_GRAIN);
  }
  /* dX reads W, so it goes first: a fused update changes W below */
  float *w = l->params[0].value.data;
  if (dx != NULL)
    NNLIB_TRY(nnlib__gemm(NNLIB__NO_TRANS, NNLIB__NO_TRANS, n, in, out, 1.0f,
                          dy, out, w, in, 0.0f, dx, in));
  if (!run->sgd_fused)
    return nnlib__gemm(NNLIB__TRANS, NNLIB__NO_TRANS, out, in, n, 1.0f, dy, out,
                       x, in, 0.0f, l->params[0].grad.data, in);
  /* plain SGD: W = W - lr dZ^T X is the weight-gradient GEMM itself with
   * alpha = -lr, beta = 1; b = b - lr db */
  NNLIB_TRY(nnlib__gemm(NNLIB__TRANS, NNLIB__NO_TRANS, out, in, n,
                        -run->sgd_lr, dy, out, x, in, 1.0f, w, in));
  if (db != NULL) {
    float *b = l->params[1].value.data;
    for (int64_t j = 0; j < out; j++)
      b[j] -= run->sgd_lr * db[j];
  }
  return NNLIB_OK;
}

static const nnlib__layer_ops dense_ops = {
    .kind = NNLIB_LAYER_DENSE,
    .plan = dense_plan,
    .init = dense_init,
    .forward = dense_forward,
    .backward = dense_backward,
    .name = dense_name,
    .fuses_sgd = true,
    .dx_over_output = true, /* y is read (activation derivative) first */
};

nnlib_status nnlib_dense_create(nnlib_layer **out, int64_t in_features,
                                int64_t out_features, int with_bias) {
  NNLIB_CHECK_ARG(out != NULL, "nnlib_dense_create: out is NULL");
  *out = NULL;
  NNLIB_CHECK_ARG(in_features >= 0,
                  "dense: in_features is %lld, must be >= 0 (0: infer)",
                  (long long)in_features);
  NNLIB_CHECK_ARG(out_features >= 1, "dense: out_features is %lld, must be >= 1",
                  (long long)out_features);
  NNLIB_CHECK_ARG(with_bias == 0 || with_bias == 1,
                  "dense: with_bias is %d, must be 0 or 1", with_bias);
  if (in_features > NNLIB__BLAS_DIM_MAX || out_features > NNLIB__BLAS_DIM_MAX)
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "dense: %lld x %lld exceeds the BLAS limit of %lld",
                        (long long)out_features, (long long)in_features,
                        (long long)NNLIB__BLAS_DIM_MAX);
  dense_layer *d = nnlib__alloc(sizeof *d);
  if (d == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY, "nnlib_dense_create: no memory");
  nnlib__layer_init(&d->base, &dense_ops);
  d->declared_in = in_features;
  d->in_features = in_features;
  d->out_features = out_features;
  d->with_bias = with_bias != 0;
  d->init_for = NNLIB_ACT_IDENTITY;
  d->last_axis = false;
  *out = &d->base;
  return NNLIB_OK;
}

void nnlib__dense_set_init_activation(nnlib_layer *l, nnlib_activation next) {
  dense_layer *d = (dense_layer *)l;
  d->init_for = next;
  d->init_param = next == NNLIB_ACT_LEAKY_RELU && l->fused_activation
                      ? nnlib__activation_param(l->fused_activation)
                      : 0.0f;
}

/* ------------------------- model description and model file (codec) */

/* "dense:N" or "dense:N:nobias"; in_features is always taken at compile. */
static nnlib_status dense_parse_spec(const nnlib__spec_item *item,
                                     nnlib_layer **out) {
  int64_t units;
  NNLIB_TRY(nnlib__spec_fields(item, 2, 3));
  NNLIB_TRY(nnlib__spec_int(item, 1, 1, NNLIB__BLAS_DIM_MAX, &units));
  if (item->field_count == 3 && !nnlib__spec_field_is(item, 2, "nobias"))
    return nnlib__spec_error(item, "the only option of dense is \"nobias\"");
  return nnlib_dense_create(out, 0, units, item->field_count == 2);
}

static void dense_write_spec(const nnlib_layer *l, nnlib__text *t) {
  const dense_layer *d = (const dense_layer *)l;
  nnlib__text_append(t, "dense:%lld%s", (long long)d->out_features,
                     d->with_bias ? "" : ":nobias");
}

/* config: i64 in_features as created (0: inferred), i64 out_features,
 * u32 with_bias */
static void dense_write_config(const nnlib_layer *l, nnlib__writer *w) {
  const dense_layer *d = (const dense_layer *)l;
  nnlib__put_i64(w, d->declared_in);
  nnlib__put_i64(w, d->out_features);
  nnlib__put_u32(w, d->with_bias ? 1u : 0u);
}

static nnlib_status dense_read_config(nnlib__reader *r, nnlib_layer **out) {
  int64_t in, units;
  uint32_t bias;
  NNLIB_TRY(nnlib__get_i64(r, &in));
  NNLIB_TRY(nnlib__get_i64(r, &units));
  NNLIB_TRY(nnlib__get_u32(r, &bias));
  if (bias > 1)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "dense: with_bias is %u, must be 0 or 1", bias);
  return nnlib_dense_create(out, in, units, (int)bias);
}

const nnlib__layer_codec nnlib__dense_codec = {
    .kind = NNLIB_LAYER_DENSE,
    .spec_names = {"dense"},
    .parse_spec = dense_parse_spec,
    .write_spec = dense_write_spec,
    .write_config = dense_write_config,
    .read_config = dense_read_config,
};


/* ------------------------------------------------------------ linear */

static const char *linear_name(const nnlib_layer *l) {
  (void)l;
  return "linear";
}

/* [..., in] -> [..., out]: W [out, in] over the last axis. */
static nnlib_status linear_plan(nnlib_layer *l, const nnlib__shape *in,
                                int64_t max_batch) {
  dense_layer *d = (dense_layer *)l;
  if (in->rank < 1)
    return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                        "linear: input of rank 0 has no last axis");
  int64_t features = in->dims[in->rank - 1];
  if (features > NNLIB__BLAS_DIM_MAX)
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "linear: %lld input features exceed the BLAS limit",
                        (long long)features);
  int64_t weight_size, out_size;
  if (nnlib__mul_overflows(features, d->out_features, &weight_size))
    return nnlib__error(NNLIB_ERR_TOO_LARGE, "linear: weight size overflows");
  if (nnlib__mul_overflows(nnlib__shape_numel(in) / features, d->out_features,
                           &out_size))
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "linear: output size per sample overflows");
  d->in_features = features;
  plan_transposed_room(l, nnlib__shape_numel(in) / features, max_batch);
  l->out_shape = *in;
  l->out_shape.dims[in->rank - 1] = d->out_features;
  int64_t wshape[2] = {d->out_features, features};
  nnlib__layer_declare_param(l, "weight", wshape, 2);
  if (d->with_bias)
    nnlib__layer_declare_param(l, "bias", &d->out_features, 1);
  return NNLIB_OK;
}

/* torch.nn.Linear's initialisation: kaiming_uniform_(a = sqrt 5) for W,
 * whose bound gain sqrt(3 / fan_in) with gain sqrt(2 / (1 + 5)) is
 * 1/sqrt(fan_in), and U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for b. It does not
 * follow the activation after the layer (init_for), as PyTorch's does not. */
static void linear_init(nnlib_layer *l, nnlib__rng *rng) {
  dense_layer *d = (dense_layer *)l;
  float bound = 1.0f / sqrtf((float)d->in_features);
  for (size_t p = 0; p < l->param_count; p++) {
    nnlib__param *t = &l->params[p];
    for (int64_t i = 0; i < t->size; i++)
      t->value.data[i] = bound * (2.0f * nnlib__rng_uniform(rng) - 1.0f);
  }
}

static const nnlib__layer_ops linear_ops = {
    .kind = NNLIB_LAYER_LINEAR,
    .plan = linear_plan,
    .init = linear_init,
    .forward = dense_forward,
    .backward = dense_backward,
    .name = linear_name,
    .decodes = true, /* rows are independent: no cache */
    .fuses_sgd = true,
    .dx_over_output = true,
};

nnlib_status nnlib_linear_create(nnlib_layer **out, int64_t out_features,
                                 int with_bias) {
  NNLIB_CHECK_ARG(out != NULL, "nnlib_linear_create: out is NULL");
  *out = NULL;
  NNLIB_CHECK_ARG(out_features >= 1,
                  "linear: out_features is %lld, must be >= 1",
                  (long long)out_features);
  NNLIB_CHECK_ARG(with_bias == 0 || with_bias == 1,
                  "linear: with_bias is %d, must be 0 or 1", with_bias);
  if (out_features > NNLIB__BLAS_DIM_MAX)
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "linear: out_features %lld exceeds the BLAS limit of "
                        "%lld",
                        (long long)out_features,
                        (long long)NNLIB__BLAS_DIM_MAX);
  dense_layer *d = nnlib__alloc(sizeof *d);
  if (d == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "nnlib_linear_create: no memory");
  nnlib__layer_init(&d->base, &linear_ops);
  d->declared_in = 0;
  d->in_features = 0;
  d->out_features = out_features;
  d->with_bias = with_bias != 0;
  d->init_for = NNLIB_ACT_IDENTITY;
  d->init_param = 0.0f;
  d->last_axis = true;
  *out = &d->base;
  return NNLIB_OK;
}

/* A linear layer is a dense layer over rows of the last axis: the model's
 * fusion with a following elementwise activation (compile.c) works the same
 * per element, over rows * out values. */
bool nnlib__layer_is_dense(const nnlib_layer *l) {
  return l->ops == &dense_ops || l->ops == &linear_ops;
}

/* "linear:N" or "linear:N:nobias"; in_features is the input's last axis. */
static nnlib_status linear_parse_spec(const nnlib__spec_item *item,
                                      nnlib_layer **out) {
  int64_t units;
  NNLIB_TRY(nnlib__spec_fields(item, 2, 3));
  NNLIB_TRY(nnlib__spec_int(item, 1, 1, NNLIB__BLAS_DIM_MAX, &units));
  if (item->field_count == 3 && !nnlib__spec_field_is(item, 2, "nobias"))
    return nnlib__spec_error(item, "the only option of linear is \"nobias\"");
  return nnlib_linear_create(out, units, item->field_count == 2);
}

static void linear_write_spec(const nnlib_layer *l, nnlib__text *t) {
  const dense_layer *d = (const dense_layer *)l;
  nnlib__text_append(t, "linear:%lld%s", (long long)d->out_features,
                     d->with_bias ? "" : ":nobias");
}

/* config: i64 out_features, u32 with_bias: 12 bytes */
static void linear_write_config(const nnlib_layer *l, nnlib__writer *w) {
  const dense_layer *d = (const dense_layer *)l;
  nnlib__put_i64(w, d->out_features);
  nnlib__put_u32(w, d->with_bias ? 1u : 0u);
}

static nnlib_status linear_read_config(nnlib__reader *r, nnlib_layer **out) {
  int64_t units;
  uint32_t bias;
  *out = NULL;
  NNLIB_TRY(nnlib__get_i64(r, &units));
  NNLIB_TRY(nnlib__get_u32(r, &bias));
  if (units < 1 || units > NNLIB__BLAS_DIM_MAX)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "linear: out_features is %lld, must be in 1..%lld",
                        (long long)units, (long long)NNLIB__BLAS_DIM_MAX);
  if (bias > 1)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "linear: with_bias is %u, must be 0 or 1", bias);
  return nnlib_linear_create(out, units, (int)bias);
}

const nnlib__layer_codec nnlib__linear_codec = {
    .kind = NNLIB_LAYER_LINEAR,
    .spec_names = {"linear"},
    .parse_spec = linear_parse_spec,
    .write_spec = linear_write_spec,
    .write_config = linear_write_config,
    .read_config = linear_read_config,
};
