/* layernorm.c - layer normalisation over the last axis of any-rank samples
 * (torch.nn.LayerNorm(D, eps, elementwise_affine)). Every row of D values
 * along the last axis is normalised by itself, in training and inference
 * alike (no running statistics).
 *
 * forward:  mu = mean x, var = mean (x - mu)^2 (biased), r = 1/sqrt(var+eps)
 *           xh = (x - mu) r,  y = gamma xh + beta   (y = xh without affine)
 *           mu and r of each row go to the workspace for backward, mu
 *           as a float pair hi + lo: x - hi is exact when x is near the
 *           mean (Sterbenz), so a mean far from 0 costs no accuracy
 * backward: dbeta = sum over rows of dy, dgamma = sum over rows of dy xh
 *           dxh = dy gamma
 *           dx = r (dxh - mean(dxh) - xh mean(dxh xh))   per row
 * A call with run->steps = S processes n S (times the middle axes) rows:
 * the rows of one position never read another, so decoding needs no cache.
 */
/* no FMA contraction under clang either (GCC makes none in ISO C mode):
 * the same bits from every clone of the row loops (core/vecmath.h) */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif
#include "layers/layer.h"
#include "core/vecmath.h"

#include <math.h>

typedef struct layernorm_layer {
  nnlib_layer base;
  float epsilon;
  bool with_affine;
  int64_t features; /* D, planned */
} layernorm_layer;

enum { GAMMA = 0, BETA = 1 };

/* The workspace of a call of `rows` rows: mu_hi[rows], mu_lo[rows],
 * r[rows]. */
enum { STATS_PER_ROW = 3 };
typedef struct row_stats {
  float *hi, *lo, *r;
} row_stats;

static row_stats stats_of(const nnlib__run *run, int64_t rows) {
  row_stats s = {run->workspace, run->workspace + rows,
                 run->workspace + 2 * rows};
  return s;
}

/* PyTorch's default */
#define LAYERNORM_DEFAULT_EPSILON 1e-5f

static const char *layernorm_name(const nnlib_layer *l) {
  (void)l;
  return "layernorm";
}

static nnlib_status layernorm_plan(nnlib_layer *l, const nnlib__shape *in,
                                   int64_t max_batch) {
  layernorm_layer *ln = (layernorm_layer *)l;
  if (in->rank < 1)
    return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                        "layernorm: input of rank 0 has no last axis");
  int64_t d = in->dims[in->rank - 1];
  int64_t rows_per_sample = nnlib__shape_numel(in) / d;
  int64_t rows, floats;
  /* mu (hi, lo) and r for each row of a full batch */
  if (nnlib__mul_overflows(rows_per_sample, max_batch, &rows) ||
      nnlib__mul_overflows(rows, STATS_PER_ROW, &floats))
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "layernorm: statistics of %lld rows of %lld samples "
                        "overflow",
                        (long long)rows_per_sample, (long long)max_batch);
  ln->features = d;
  l->out_shape = *in;
  if (ln->with_affine) {
    nnlib__layer_declare_param(l, "weight", &d, 1);
    nnlib__layer_declare_param(l, "bias", &d, 1);
  }
  l->workspace_floats = (size_t)floats;
  return NNLIB_OK;
}

static void layernorm_init(nnlib_layer *l, nnlib__rng *rng) {
  (void)rng;
  const layernorm_layer *ln = (const layernorm_layer *)l;
  if (!ln->with_affine)
    return;
  for (int64_t i = 0; i < ln->features; i++) {
    l->params[GAMMA].value.data[i] = 1.0f;
    l->params[BETA].value.data[i] = 0.0f;
  }
}

/* The row sums below run in LANES independent double accumulators, so GCC
 * vectorises them (a single accumulator is a serial chain it must keep in
 * order: four cycles an element); each lane sums d / LANES values, so the
 * sums are at least as accurate as one running double sum. */
enum { LANES = 8 };

/* GCC vectorises the lane sums (SLP) in a function of their own, not once
 * they are inlined into the loop over rows; a call per row is cheap.
 * (clang refuses noinline beside target_clones, and never inlines a
 * multiversioned function anyway.) */
#if defined(__GNUC__) && !defined(__clang__)
#define ROW_SUMS NNLIB__VECTOR_CLONES __attribute__((noinline))
#else
#define ROW_SUMS NNLIB__VECTOR_CLONES
#endif

static inline double lanes_total(const double *lanes) {
  double sum = 0.0;
  for (int k = 0; k < LANES; k++)
    sum += lanes[k];
  return sum;
}

/* Mean (as hi + lo) and 1/sqrt(biased variance + eps) of one row, in
 * double: two passes, the second centred on the mean, so a mean far from 0
 * does not cancel the variance away. */
ROW_SUMS
static void row_statistics(const float *restrict x, int64_t d, float eps,
                           float *hi, float *lo, float *r) {
  double lanes[LANES] = {0};
  int64_t i = 0;
  for (; i + LANES <= d; i += LANES)
    for (int k = 0; k < LANES; k++)
      lanes[k] += x[i + k];
  double sum = lanes_total(lanes);
  for (; i < d; i++)
    sum += x[i];
  double mean = sum / (double)d;
  for (int k = 0; k < LANES; k++)
    lanes[k] = 0.0;
  for (i = 0; i + LANES <= d; i += LANES)
    for (int k = 0; k < LANES; k++) {
      double c = (double)x[i + k] - mean;
      lanes[k] += c * c;
    }
  double sq = lanes_total(lanes);
  for (; i < d; i++) {
    double c = (double)x[i] - mean;
    sq += c * c;
  }
  *hi = (float)mean;
  *lo = (float)(mean - (double)*hi);
  *r = (float)(1.0 / sqrt(sq / (double)d + (double)eps));
}

/* Every row's statistics into st and its normalised values into y (times
 * gamma plus beta; gamma NULL: none). AVX2 clone: the double sums run 4
 * lanes a vector there, 2 with SSE2. */
NNLIB__VECTOR_CLONES
static void normalise_rows(const float *restrict x, float *restrict y,
                           int64_t rows, int64_t d, float eps,
                           const float *restrict gamma,
                           const float *restrict beta, row_stats st) {
  for (int64_t row = 0; row < rows; row++) {
    const float *restrict xr = x + row * d;
    float *restrict yr = y + row * d;
    row_statistics(xr, d, eps, &st.hi[row], &st.lo[row], &st.r[row]);
    float hi = st.hi[row], lo = st.lo[row], s = st.r[row];
    if (gamma != NULL)
      for (int64_t i = 0; i < d; i++)
        yr[i] = ((xr[i] - hi) - lo) * s * gamma[i] + beta[i];
    else
      for (int64_t i = 0; i < d; i++)
        yr[i] = ((xr[i] - hi) - lo) * s;
  }
}

/* The passes over the pass pool: rows never read each other, so the rows
 * of a call split freely; a part holds at least MIN_PART_VALUES values
 * (some 30 microseconds of work), so small calls stay on one thread. */
enum { MIN_PART_VALUES = 32768 };

static int64_t min_rows_per_part(int64_t d) {
  return nnlib__parallel_grain(d, MIN_PART_VALUES);
}

typedef struct layernorm_pass {
  const float *x, *dy;
  float *y, *dx; /* forward's output, backward's input gradient */
  int64_t rows, d;
  float eps;
  const float *gamma, *beta;
  float *dgamma, *dbeta;
  row_stats st;
} layernorm_pass;

static row_stats stats_from(row_stats st, int64_t row) {
  row_stats s = {st.hi + row, st.lo + row, st.r + row};
  return s;
}

static void forward_range(void *ctx, int64_t begin, int64_t end) {
  const layernorm_pass *p = ctx;
  normalise_rows(p->x + begin * p->d, p->y + begin * p->d, end - begin, p->d,
                 p->eps, p->gamma, p->beta, stats_from(p->st, begin));
}

static nnlib_status layernorm_forward(nnlib_layer *l, const nnlib__run *run,
                                      const float *x, float *y, int64_t n) {
  const layernorm_layer *ln = (const layernorm_layer *)l;
  int64_t rows = nnlib__run_rows(l, run, n), d = ln->features;
  const float *gamma = ln->with_affine ? l->params[GAMMA].value.data : NULL;
  const float *beta = ln->with_affine ? l->params[BETA].value.data : NULL;
  layernorm_pass p = {.x = x, .y = y, .rows = rows, .d = d,
                      .eps = ln->epsilon, .gamma = gamma, .beta = beta,
                      .st = stats_of(run, rows)};
  nnlib__parallel_for(rows, min_rows_per_part(d), forward_range, &p);
  return NNLIB_OK;
}

/* sum of g and of g xh over one row, in double, with g = dy gamma (gamma
 * NULL: dy) and xh = ((x - hi) - lo) r as the forward pass formed it */
ROW_SUMS
static void row_grad_sums(const float *restrict x, const float *restrict dy,
                          const float *restrict gamma, int64_t d, float hi,
                          float lo, float r, double *sum_g, double *sum_gx) {
  double lanes_g[LANES] = {0}, lanes_gx[LANES] = {0};
  int64_t i = 0;
  if (gamma != NULL)
    for (; i + LANES <= d; i += LANES)
      for (int k = 0; k < LANES; k++) {
        float g = dy[i + k] * gamma[i + k];
        lanes_g[k] += g;
        lanes_gx[k] += (double)g * (((x[i + k] - hi) - lo) * r);
      }
  else
    for (; i + LANES <= d; i += LANES)
      for (int k = 0; k < LANES; k++) {
        float g = dy[i + k];
        lanes_g[k] += g;
        lanes_gx[k] += (double)g * (((x[i + k] - hi) - lo) * r);
      }
  *sum_g = lanes_total(lanes_g);
  *sum_gx = lanes_total(lanes_gx);
  for (; i < d; i++) {
    float g = gamma != NULL ? dy[i] * gamma[i] : dy[i];
    *sum_g += g;
    *sum_gx += (double)g * (((x[i] - hi) - lo) * r);
  }
}

/* dx of one row, r (dxh - mean(dxh) - xh mean(dxh xh)) with dxh = dy gamma
 * (gamma NULL: 1); reads x and dy of the row, writes dx at each element
 * after reading it, so dx may be the spent output. */
static inline void row_input_grad(const float *restrict x,
                                  const float *restrict dy, float *dx,
                                  const float *restrict gamma, int64_t d,
                                  float hi, float lo, float r) {
  double sum_g, sum_gx;
  row_grad_sums(x, dy, gamma, d, hi, lo, r, &sum_g, &sum_gx);
  float mean_g = (float)(sum_g / (double)d);
  float mean_gx = (float)(sum_gx / (double)d);
  if (gamma != NULL)
    for (int64_t i = 0; i < d; i++) {
      float xh = ((x[i] - hi) - lo) * r;
      dx[i] = r * (dy[i] * gamma[i] - mean_g - xh * mean_gx);
    }
  else
    for (int64_t i = 0; i < d; i++) {
      float xh = ((x[i] - hi) - lo) * r;
      dx[i] = r * (dy[i] - mean_g - xh * mean_gx);
    }
}

/* Row by row, while its x and dy are in cache: dgamma += dy xh and dbeta
 * += dy (dgamma NULL: no affine parameters), then dx (NULL: not wanted). */
NNLIB__VECTOR_CLONES
static void backward_rows(const float *restrict x, const float *restrict dy,
                          float *dx, int64_t rows, int64_t d,
                          const float *restrict gamma, float *restrict dgamma,
                          float *restrict dbeta, row_stats st) {
  for (int64_t row = 0; row < rows; row++) {
    const float *restrict xr = x + row * d, *restrict g = dy + row * d;
    float hi = st.hi[row], lo = st.lo[row], s = st.r[row];
    if (dgamma != NULL)
      for (int64_t i = 0; i < d; i++) {
        dgamma[i] += g[i] * (((xr[i] - hi) - lo) * s);
        dbeta[i] += g[i];
      }
    if (dx != NULL)
      row_input_grad(xr, g, dx + row * d, gamma, d, hi, lo, s);
  }
}

/* dgamma and dbeta of columns [c0, c1), summed over all rows in row order:
 * each column's sum is the one backward_rows forms, term for term, so the
 * bits do not depend on how the columns are split. */
NNLIB__VECTOR_CLONES
static void affine_grad_columns(const float *restrict x,
                                const float *restrict dy, int64_t rows,
                                int64_t d, int64_t c0, int64_t c1,
                                float *restrict dgamma, float *restrict dbeta,
                                row_stats st) {
  for (int64_t row = 0; row < rows; row++) {
    const float *restrict xr = x + row * d, *restrict g = dy + row * d;
    float hi = st.hi[row], lo = st.lo[row], s = st.r[row];
    for (int64_t i = c0; i < c1; i++) {
      dgamma[i] += g[i] * (((xr[i] - hi) - lo) * s);
      dbeta[i] += g[i];
    }
  }
}

/* Columns go in blocks of COLUMN_BLOCK (a cache line of floats) */
enum { COLUMN_BLOCK = 16 };

static void affine_grad_range(void *ctx, int64_t begin, int64_t end) {
  const layernorm_pass *p = ctx;
  int64_t c1 = end * COLUMN_BLOCK < p->d ? end * COLUMN_BLOCK : p->d;
  affine_grad_columns(p->x, p->dy, p->rows, p->d, begin * COLUMN_BLOCK, c1,
                      p->dgamma, p->dbeta, p->st);
}

static void input_grad_range(void *ctx, int64_t begin, int64_t end) {
  const layernorm_pass *p = ctx;
  backward_rows(p->x + begin * p->d, p->dy + begin * p->d,
                p->dx + begin * p->d, end - begin, p->d, p->gamma, NULL, NULL,
                stats_from(p->st, begin));
}

/* On one thread (or a call too small to split) one fused pass row by row;
 * otherwise the affine gradients split over columns, then dx over rows:
 * the same sums in the same order either way. The column pass runs first
 * so that it reads dy before any dx is written. */
static void backward_passes(const layernorm_pass *p) {
  int64_t min_rows = min_rows_per_part(p->d);
  if (nnlib_get_num_threads() < 2 || p->rows < 2 * min_rows) {
    backward_rows(p->x, p->dy, p->dx, p->rows, p->d, p->gamma, p->dgamma,
                  p->dbeta, p->st);
    return;
  }
  if (p->dgamma != NULL) {
    int64_t blocks = (p->d + COLUMN_BLOCK - 1) / COLUMN_BLOCK;
    int64_t block_values = p->rows * COLUMN_BLOCK;
    nnlib__parallel_for(blocks,
                        nnlib__parallel_grain(block_values, MIN_PART_VALUES),
                        affine_grad_range, (void *)p);
  }
  if (p->dx != NULL)
    nnlib__parallel_for(p->rows, min_rows, input_grad_range, (void *)p);
}

static nnlib_status layernorm_backward(nnlib_layer *l, const nnlib__run *run,
                                       const float *x, const float *y,
                                       float *dy, float *dx, int64_t n) {
  (void)y;
  const layernorm_layer *ln = (const layernorm_layer *)l;
  int64_t rows = nnlib__run_rows(l, run, n), d = ln->features;
  float *gamma = ln->with_affine ? l->params[GAMMA].value.data : NULL;
  float *dgamma = ln->with_affine ? l->params[GAMMA].grad.data : NULL;
  float *dbeta = ln->with_affine ? l->params[BETA].grad.data : NULL;
  if (ln->with_affine)
    for (int64_t i = 0; i < d; i++)
      dgamma[i] = dbeta[i] = 0.0f;
  layernorm_pass p = {.x = x, .dy = dy, .dx = dx, .rows = rows, .d = d,
                      .gamma = gamma, .dgamma = dgamma, .dbeta = dbeta,
                      .st = stats_of(run, rows)};
  backward_passes(&p);
  if (ln->with_affine && run->sgd_fused) { /* after dx, which read the old
                                              gamma */
    float *beta = l->params[BETA].value.data;
    for (int64_t i = 0; i < d; i++) {
      gamma[i] -= run->sgd_lr * dgamma[i];
      beta[i] -= run->sgd_lr * dbeta[i];
    }
  }
  return NNLIB_OK;
}

static const nnlib__layer_ops layernorm_ops = {
    .kind = NNLIB_LAYER_LAYERNORM,
    .plan = layernorm_plan,
    .init = layernorm_init,
    .forward = layernorm_forward,
    .backward = layernorm_backward,
    .name = layernorm_name,
    .decodes = true,
    .fuses_sgd = true,
    .dx_over_output = true, /* backward reads x, dy and the workspace, never
                               y */
};

nnlib_status nnlib_layernorm_create(nnlib_layer **out, float eps,
                                    int with_affine) {
  NNLIB_CHECK_ARG(out != NULL, "nnlib_layernorm_create: out is NULL");
  *out = NULL;
  NNLIB_CHECK_ARG(eps > 0.0f && isfinite(eps),
                  "layernorm: eps %g must be finite and > 0", (double)eps);
  NNLIB_CHECK_ARG(with_affine == 0 || with_affine == 1,
                  "layernorm: with_affine is %d, must be 0 or 1", with_affine);
  layernorm_layer *ln = nnlib__alloc(sizeof *ln);
  if (ln == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "nnlib_layernorm_create: no memory");
  nnlib__layer_init(&ln->base, &layernorm_ops);
  ln->epsilon = eps;
  ln->with_affine = with_affine != 0;
  *out = &ln->base;
  return NNLIB_OK;
}

/* ------------------------- model description and model file (codec) */

/* "layernorm", "layernorm:EPS", with ":noaffine" last for a layer without
 * gamma and beta ("layernorm:noaffine", "layernorm:1e-6:noaffine"). */
static nnlib_status layernorm_parse_spec(const nnlib__spec_item *item,
                                         nnlib_layer **out) {
  float eps = LAYERNORM_DEFAULT_EPSILON;
  NNLIB_TRY(nnlib__spec_fields(item, 1, 3));
  size_t fields = item->field_count;
  bool affine = true;
  if (fields >= 2 && nnlib__spec_field_is(item, fields - 1, "noaffine")) {
    affine = false;
    fields--;
  }
  if (fields == 3)
    return nnlib__spec_error(item, "layernorm takes an eps and \"noaffine\" "
                                   "(in that order) at most");
  if (fields == 2)
    NNLIB_TRY(nnlib__spec_float(item, 1, &eps));
  return nnlib_layernorm_create(out, eps, affine ? 1 : 0);
}

/* The shortest item that gives the same layer. */
static void layernorm_write_spec(const nnlib_layer *l, nnlib__text *t) {
  const layernorm_layer *ln = (const layernorm_layer *)l;
  nnlib__text_append(t, "layernorm");
  if (ln->epsilon != LAYERNORM_DEFAULT_EPSILON) {
    nnlib__text_append(t, ":");
    nnlib__text_append_float(t, ln->epsilon);
  }
  if (!ln->with_affine)
    nnlib__text_append(t, ":noaffine");
}

/* config: f32 eps, u32 with_affine: 8 bytes */
static void layernorm_write_config(const nnlib_layer *l, nnlib__writer *w) {
  const layernorm_layer *ln = (const layernorm_layer *)l;
  nnlib__put_f32(w, ln->epsilon);
  nnlib__put_u32(w, ln->with_affine ? 1u : 0u);
}

static nnlib_status layernorm_read_config(nnlib__reader *r,
                                          nnlib_layer **out) {
  float eps;
  uint32_t affine;
  *out = NULL;
  NNLIB_TRY(nnlib__get_f32(r, &eps));
  NNLIB_TRY(nnlib__get_u32(r, &affine));
  if (!(eps > 0.0f && isfinite(eps)))
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "layernorm: eps %g must be finite and > 0",
                        (double)eps);
  if (affine > 1)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "layernorm: with_affine is %u, must be 0 or 1", affine);
  return nnlib_layernorm_create(out, eps, (int)affine);
}

const nnlib__layer_codec nnlib__layernorm_codec = {
    .kind = NNLIB_LAYER_LAYERNORM,
    .spec_names = {"layernorm"},
    .parse_spec = layernorm_parse_spec,
    .write_spec = layernorm_write_spec,
    .write_config = layernorm_write_config,
    .read_config = layernorm_read_config,
};
