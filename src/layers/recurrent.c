/* recurrent.c - what the rnn, lstm and gru layers share: construction,
 * planning (shapes, parameters, workspace areas), PyTorch's initialisation,
 * the initial state and the decoding cache that carries the state between
 * calls, the GEMMs of the forward and backward passes, and the description
 * items and file configs. The cells themselves are in rnn.c,
 * lstm.c and gru.c. */
#include "recurrent.h"

#include <math.h>
#include <string.h>

enum { P_W_IH = 0, P_W_HH = 1, P_B_IH = 2, P_B_HH = 3 };

static nnlib__recurrent *rec(nnlib_layer *l) { return (nnlib__recurrent *)l; }
static const nnlib__recurrent *crec(const nnlib_layer *l) {
  return (const nnlib__recurrent *)l;
}

/* ------------------------------------------------------- construction */

static nnlib_status check_args(const char *kind, int64_t gates,
                               const nnlib__recurrent_args *a) {
  NNLIB_CHECK_ARG(a->input_size >= 0,
                  "%s: input_size is %lld, must be >= 0 (0: infer)", kind,
                  (long long)a->input_size);
  NNLIB_CHECK_ARG(a->hidden_size >= 1, "%s: hidden_size is %lld, must be >= 1",
                  kind, (long long)a->hidden_size);
  NNLIB_CHECK_ARG(a->with_bias == 0 || a->with_bias == 1,
                  "%s: with_bias is %d, must be 0 or 1", kind, a->with_bias);
  NNLIB_CHECK_ARG(a->return_sequences == 0 || a->return_sequences == 1,
                  "%s: return_sequences is %d, must be 0 or 1", kind,
                  a->return_sequences);
  if (a->input_size > NNLIB__BLAS_DIM_MAX ||
      a->hidden_size > NNLIB__BLAS_DIM_MAX / gates)
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "%s: %lld x %lld gate rows exceed the BLAS limit of "
                        "%lld",
                        kind, (long long)gates, (long long)a->hidden_size,
                        (long long)NNLIB__BLAS_DIM_MAX);
  return NNLIB_OK;
}

nnlib_status nnlib__recurrent_create(nnlib_layer **out,
                                     const nnlib__layer_ops *ops,
                                     const char *kind, int64_t gates,
                                     const nnlib__recurrent_args *args) {
  NNLIB_CHECK_ARG(out != NULL, "nnlib_%s_create: out is NULL", kind);
  *out = NULL;
  NNLIB_TRY(check_args(kind, gates, args));
  nnlib__recurrent *r = nnlib__alloc(sizeof *r);
  if (r == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY, "nnlib_%s_create: no memory",
                        kind);
  memset(r, 0, sizeof *r);
  nnlib__layer_init(&r->base, ops);
  r->gates = gates;
  r->declared_in = args->input_size;
  r->features = args->input_size;
  r->hidden = args->hidden_size;
  r->with_bias = args->with_bias == 1;
  r->return_sequences = args->return_sequences == 1;
  r->nonlinearity = NNLIB_ACT_TANH;
  r->linear_before_reset = true;
  *out = &r->base;
  return NNLIB_OK;
}

void nnlib__recurrent_destroy(nnlib_layer *l) {
  nnlib__free(rec(l)->h0);
  nnlib__free(rec(l)->c0);
}

bool nnlib__layer_is_recurrent(const nnlib_layer *l) {
  nnlib_layer_kind k = l->ops->kind;
  return k == NNLIB_LAYER_RNN || k == NNLIB_LAYER_LSTM || k == NNLIB_LAYER_GRU;
}

/* --------------------------------------------------------------- plan */

/* Every leading dimension and row count the GEMMs use fits the 32-bit BLAS
 * interface: rows N*T, widths F and G*H, strides T*G*H and T*H. */
static nnlib_status check_dims(const nnlib__recurrent *r, const char *kind,
                               int64_t steps, int64_t max_batch) {
  int64_t rows, stride, weights;
  if (nnlib__mul_overflows(max_batch, steps, &rows) ||
      rows > NNLIB__BLAS_DIM_MAX ||
      nnlib__mul_overflows(steps, r->gates * r->hidden, &stride) ||
      stride > NNLIB__BLAS_DIM_MAX || r->features > NNLIB__BLAS_DIM_MAX ||
      nnlib__mul_overflows(r->gates * r->hidden, r->features, &weights))
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "%s: %lld steps of %lld features in batches of %lld "
                        "exceed the BLAS limit",
                        kind, (long long)steps, (long long)r->features,
                        (long long)max_batch);
  return NNLIB_OK;
}

/* rows > 1 rows of initial state need batches of exactly that many
 * samples, which a model compiled for at most max_batch never runs (longer
 * predictions run in chunks of max_batch): every call would fail. */
static nnlib_status check_rows_fit(const char *kind, int64_t rows,
                                   int64_t max_batch) {
  if (rows <= 1 || rows <= max_batch)
    return NNLIB_OK;
  return nnlib__error(NNLIB_ERR_TOO_LARGE,
                      "%s: an initial state of %lld rows (one per sample) "
                      "needs batches of %lld samples, above the compiled "
                      "maximum batch of %lld",
                      kind, (long long)rows, (long long)rows,
                      (long long)max_batch);
}

nnlib_status nnlib__recurrent_plan(nnlib_layer *l, const nnlib__shape *in,
                                   int64_t max_batch) {
  nnlib__recurrent *r = rec(l);
  const char *kind = l->ops->name(l);
  if (in->rank != 2)
    return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                        "%s: input must be a sequence [T, F] per sample "
                        "(batches [N, T, F]), got rank %zu",
                        kind, in->rank);
  int64_t steps = in->dims[0], features = in->dims[1];
  if (r->declared_in != 0 && r->declared_in != features)
    return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                        "%s: input has %lld features per step, layer expects "
                        "%lld",
                        kind, (long long)features, (long long)r->declared_in);
  r->features = features;
  NNLIB_TRY(check_dims(r, kind, steps, max_batch));
  NNLIB_TRY(check_rows_fit(kind, r->state_rows, max_batch)); /* set before */
  r->steps = steps;
  r->max_batch = max_batch;
  if (r->return_sequences) {
    l->out_shape.rank = 2;
    l->out_shape.dims[0] = steps;
    l->out_shape.dims[1] = r->hidden;
  } else {
    l->out_shape.rank = 1;
    l->out_shape.dims[0] = r->hidden;
  }
  int64_t rows = r->gates * r->hidden;
  int64_t w_ih[2] = {rows, features}, w_hh[2] = {rows, r->hidden};
  nnlib__layer_declare_param(l, "weight_ih", w_ih, 2);
  nnlib__layer_declare_param(l, "weight_hh", w_hh, 2);
  if (r->with_bias) {
    nnlib__layer_declare_param(l, "bias_ih", &rows, 1);
    nnlib__layer_declare_param(l, "bias_hh", &rows, 1);
  }
  /* decoding keeps h (and lstm's c) per sample; H <= BLAS_DIM_MAX / G */
  l->cache_floats =
      (size_t)((l->ops->kind == NNLIB_LAYER_LSTM ? 2 : 1) * r->hidden);
  memset(r->area_per_sample, 0, sizeof r->area_per_sample);
  memset(r->area_fixed, 0, sizeof r->area_fixed);
  r->area_fixed[RNN_WS_ZEROS] = r->hidden;
  r->area_fixed[RNN_WS_W_HH_T] = rows * r->hidden;
  return NNLIB_OK;
}

/* Areas start on 64-byte boundaries, so the gate passes vectorise. */
static int64_t padded(int64_t floats) { return (floats + 15) / 16 * 16; }

static bool area_size(const nnlib__recurrent *r, int a, int64_t *size) {
  int64_t batch;
  if (nnlib__mul_overflows(r->area_per_sample[a], r->max_batch, &batch) ||
      batch > INT64_MAX - 16 - r->area_fixed[a])
    return false;
  *size = padded(batch + r->area_fixed[a]);
  return true;
}

nnlib_status nnlib__recurrent_plan_workspace(nnlib_layer *l) {
  nnlib__recurrent *r = rec(l);
  int64_t total = 0, size;
  for (int a = 0; a < RNN_WS_COUNT; a++)
    if (!area_size(r, a, &size) || __builtin_add_overflow(total, size, &total))
      return nnlib__error(NNLIB_ERR_TOO_LARGE,
                          "%s: the workspace size overflows", l->ops->name(l));
  if ((uint64_t)total > SIZE_MAX / sizeof(float))
    return nnlib__error(NNLIB_ERR_TOO_LARGE, "%s: the workspace size overflows",
                        l->ops->name(l));
  l->workspace_floats = (size_t)total;
  return NNLIB_OK;
}

const float *nnlib__recurrent_zeros(const nnlib_layer *l,
                                    const nnlib__run *run) {
  float *zeros = nnlib__recurrent_area(l, run, RNN_WS_ZEROS);
  memset(zeros, 0, (size_t)crec(l)->hidden * sizeof(float));
  return zeros;
}

float *nnlib__recurrent_area(const nnlib_layer *l, const nnlib__run *run,
                             int area) {
  const nnlib__recurrent *r = crec(l);
  int64_t offset = 0, size = 0;
  for (int a = 0; a < area; a++) {
    area_size(r, a, &size); /* plan checked every size */
    offset += size;
  }
  return run->workspace + offset;
}

/* --------------------------------------------------------- parameters */

void nnlib__recurrent_init(nnlib_layer *l, nnlib__rng *rng) {
  float k = 1.0f / sqrtf((float)crec(l)->hidden);
  for (size_t p = 0; p < l->param_count; p++) {
    float *v = l->params[p].value.data;
    for (int64_t i = 0; i < l->params[p].size; i++)
      v[i] = k * (2.0f * nnlib__rng_uniform(rng) - 1.0f);
  }
}

const float *nnlib__recurrent_w_ih(const nnlib_layer *l) {
  return l->params[P_W_IH].value.data;
}
const float *nnlib__recurrent_w_hh(const nnlib_layer *l) {
  return l->params[P_W_HH].value.data;
}
const float *nnlib__recurrent_b_ih(const nnlib_layer *l) {
  return crec(l)->with_bias ? l->params[P_B_IH].value.data : NULL;
}
const float *nnlib__recurrent_b_hh(const nnlib_layer *l) {
  return crec(l)->with_bias ? l->params[P_B_HH].value.data : NULL;
}

/* ------------------------------------------------------ initial state */

static nnlib_status copy_state(float **dst, const float *src, int64_t floats,
                               const char *kind) {
  *dst = NULL;
  if (src == NULL)
    return NNLIB_OK;
  *dst = nnlib__alloc((size_t)floats * sizeof(float));
  if (*dst == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "%s: no memory for an initial state of %lld floats",
                        kind, (long long)floats);
  memcpy(*dst, src, (size_t)floats * sizeof(float));
  return NNLIB_OK;
}

nnlib_status nnlib_recurrent_set_initial_state(nnlib_layer *layer,
                                               const float *h0, const float *c0,
                                               int64_t rows) {
  NNLIB_CHECK_ARG(layer != NULL,
                  "nnlib_recurrent_set_initial_state: layer is NULL");
  const char *kind = layer->ops->name(layer);
  NNLIB_CHECK_ARG(nnlib__layer_is_recurrent(layer),
                  "nnlib_recurrent_set_initial_state: the layer is %s, not "
                  "rnn, lstm or gru",
                  kind);
  nnlib__recurrent *r = rec(layer);
  NNLIB_CHECK_ARG(c0 == NULL || layer->ops->kind == NNLIB_LAYER_LSTM,
                  "%s: only lstm has a cell state; c0 must be NULL", kind);
  int64_t floats = 0;
  if (h0 != NULL || c0 != NULL) {
    NNLIB_CHECK_ARG(rows >= 1,
                    "%s: initial state rows is %lld, must be >= 1 (1: the "
                    "same state for every sample)",
                    kind, (long long)rows);
    if (rows > NNLIB__BLAS_DIM_MAX ||
        nnlib__mul_overflows(rows, r->hidden, &floats) ||
        (uint64_t)floats > SIZE_MAX / sizeof(float))
      return nnlib__error(NNLIB_ERR_TOO_LARGE,
                          "%s: an initial state of %lld rows is too large",
                          kind, (long long)rows);
    if (layer->compiled)
      NNLIB_TRY(check_rows_fit(kind, rows, r->max_batch));
  }
  float *h = NULL, *c = NULL;
  nnlib_status st = copy_state(&h, h0, floats, kind);
  if (st == NNLIB_OK)
    st = copy_state(&c, c0, floats, kind);
  if (st != NNLIB_OK) {
    nnlib__free(h); /* the previous state stays */
    return st;
  }
  nnlib__free(r->h0);
  nnlib__free(r->c0);
  r->h0 = h;
  r->c0 = c;
  r->state_rows = (h != NULL || c != NULL) ? rows : 0;
  return NNLIB_OK;
}

nnlib_status nnlib__recurrent_check_state(const nnlib_layer *l, int64_t n) {
  const nnlib__recurrent *r = crec(l);
  if (r->state_rows <= 1 || r->state_rows == n)
    return NNLIB_OK;
  return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                      "%s: the initial state has %lld rows (one per sample), "
                      "the batch has %lld samples",
                      l->ops->name(l), (long long)r->state_rows, (long long)n);
}

void nnlib__recurrent_load_state(const nnlib_layer *l, const float *state,
                                 float *dst, int64_t ld, int64_t n) {
  const nnlib__recurrent *r = crec(l);
  size_t bytes = (size_t)r->hidden * sizeof(float);
  for (int64_t s = 0; s < n; s++) {
    if (state == NULL)
      memset(dst + s * ld, 0, bytes);
    else
      memcpy(dst + s * ld, state + (r->state_rows == 1 ? 0 : s) * r->hidden,
             bytes);
  }
}

int64_t nnlib__recurrent_steps(const nnlib_layer *l, const nnlib__run *run) {
  return run->steps > 0 ? run->steps : crec(l)->steps;
}

/* ----------------------------------------------------------- decoding */

bool nnlib__recurrent_reads_cache(const nnlib_layer *l, const nnlib__run *run) {
  return run->cache != NULL && !(run->position == 0 && crec(l)->state_rows > 0);
}

bool nnlib__recurrent_starts_at_zero(const nnlib_layer *l,
                                     const nnlib__run *run) {
  return !nnlib__recurrent_reads_cache(l, run) && crec(l)->h0 == NULL;
}

void nnlib__recurrent_load_initial(const nnlib_layer *l, const nnlib__run *run,
                                   bool cell, float *dst, int64_t ld,
                                   int64_t n) {
  const nnlib__recurrent *r = crec(l);
  if (!nnlib__recurrent_reads_cache(l, run)) {
    nnlib__recurrent_load_state(l, cell ? r->c0 : r->h0, dst, ld, n);
    return;
  }
  int64_t h = r->hidden, row = (int64_t)l->cache_floats;
  const float *from = run->cache + (cell ? h : 0);
  for (int64_t s = 0; s < n; s++)
    memcpy(dst + s * ld, from + s * row, (size_t)h * sizeof(float));
}

void nnlib__recurrent_save_state(const nnlib_layer *l, const nnlib__run *run,
                                 const float *y, const float *cell, int64_t n,
                                 int64_t steps) {
  if (run->cache == NULL)
    return;
  const nnlib__recurrent *r = crec(l);
  int64_t h = r->hidden, row = (int64_t)l->cache_floats;
  size_t bytes = (size_t)h * sizeof(float);
  for (int64_t s = 0; s < n; s++) {
    int64_t last = (s * steps + steps - 1) * h; /* step T'-1 of sample s */
    memcpy(run->cache + s * row, r->return_sequences ? y + last : y + s * h,
           bytes);
    if (cell != NULL)
      memcpy(run->cache + s * row + h, cell + last, bytes);
  }
}

/* ------------------------------------------------------ forward GEMMs */

nnlib_status nnlib__recurrent_project_inputs(const nnlib_layer *l,
                                             const float *x, float *gates,
                                             int64_t n, int64_t steps) {
  const nnlib__recurrent *r = crec(l);
  int64_t gh = r->gates * r->hidden;
  return nnlib__gemm(NNLIB__NO_TRANS, NNLIB__TRANS, n * steps, gh, r->features,
                     1.0f, x, r->features, nnlib__recurrent_w_ih(l),
                     r->features, 0.0f, gates, gh);
}

/* A call as nnlib__gemm issues it. */
static nnlib_status issue(const nnlib__gemm_call *c) {
  return nnlib__gemm(c->ta, c->tb, c->m, c->n, c->k, c->alpha, c->a, c->lda,
                     c->b, c->ldb, c->beta, c->c, c->ldc);
}

const float *nnlib__recurrent_w_hh_t(const nnlib_layer *l,
                                     const nnlib__run *run, int64_t products) {
  if (products < RNN_TRANSPOSED_MIN_PRODUCTS)
    return NULL;
  const nnlib__recurrent *r = crec(l);
  int64_t gh = r->gates * r->hidden;
  float *w_hh_t = nnlib__recurrent_area(l, run, RNN_WS_W_HH_T);
  nnlib__transpose_tiles(nnlib__recurrent_w_hh(l), w_hh_t, gh, r->hidden,
                         r->hidden, gh);
  return w_hh_t;
}

nnlib_status nnlib__recurrent_step_product(const nnlib_layer *l,
                                           const float *w_hh_t,
                                           const float *in_all, int64_t t,
                                           int64_t col, int64_t width,
                                           float beta, float *out_all,
                                           int64_t n, int64_t steps) {
  nnlib__gemm_call c = nnlib__recurrent_step_call(
      l, w_hh_t, in_all, t, col, width, beta, out_all, 0, n, steps);
  return issue(&c);
}

/* A product of alpha 1 with W_hh (leading dimension H) as its B, from
 * its row w_row on; a transposed B (tb) read from W_hh^T (leading
 * dimension G*H, from its column w_row on) when w_hh_t is not NULL. */
static nnlib__gemm_call
product_with_w_hh(const nnlib_layer *l, const float *w_hh_t, nnlib__trans tb,
                  int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                  int64_t w_row, float beta, float *c, int64_t ldc) {
  const nnlib__recurrent *r = crec(l);
  bool stored_rows = w_hh_t != NULL && tb == NNLIB__TRANS;
  nnlib__gemm_call call = {NNLIB__NO_TRANS,
                           stored_rows ? NNLIB__NO_TRANS : tb,
                           m,
                           n,
                           k,
                           1.0f,
                           a,
                           lda,
                           stored_rows
                               ? w_hh_t + w_row
                               : nnlib__recurrent_w_hh(l) + w_row * r->hidden,
                           stored_rows ? r->gates * r->hidden : r->hidden,
                           beta,
                           c,
                           ldc};
  return call;
}

nnlib__gemm_call
nnlib__recurrent_step_call(const nnlib_layer *l, const float *w_hh_t,
                           const float *hprev_all, int64_t t, int64_t col,
                           int64_t width, float beta, float *out_all,
                           int64_t s0, int64_t m, int64_t steps) {
  const nnlib__recurrent *r = crec(l);
  int64_t h = r->hidden, gh = r->gates * h;
  return product_with_w_hh(
      l, w_hh_t, NNLIB__TRANS, m, width, h, hprev_all + (s0 * steps + t) * h,
      steps * h, col, beta, out_all + (s0 * steps + t) * gh + col, steps * gh);
}

void nnlib__recurrent_bias_sum(const nnlib_layer *l, float *sum) {
  const float *bi = nnlib__recurrent_b_ih(l), *bh = nnlib__recurrent_b_hh(l);
  int64_t gh = crec(l)->gates * crec(l)->hidden;
  for (int64_t j = 0; j < gh; j++)
    sum[j] = bi != NULL ? bi[j] + bh[j] : 0.0f;
}

float *nnlib__recurrent_h_slot(const nnlib_layer *l, float *hprev_all, float *y,
                               int64_t s, int64_t t, int64_t steps) {
  const nnlib__recurrent *r = crec(l);
  int64_t h = r->hidden;
  if (r->return_sequences)
    return y + (s * steps + t) * h;
  if (t + 1 < steps)
    return hprev_all + (s * steps + t + 1) * h;
  return y + s * h;
}

void nnlib__recurrent_h_share(const nnlib_layer *l, float *hprev_all,
                              const float *y, int64_t s, int64_t t,
                              int64_t steps) {
  const nnlib__recurrent *r = crec(l);
  int64_t h = r->hidden;
  if (r->return_sequences && t + 1 < steps)
    memcpy(hprev_all + (s * steps + t + 1) * h, y + (s * steps + t) * h,
           (size_t)h * sizeof(float));
}

const float *nnlib__recurrent_dy_at(const nnlib_layer *l, const float *dy,
                                    const float *zeros, int64_t s, int64_t t,
                                    int64_t steps) {
  const nnlib__recurrent *r = crec(l);
  int64_t h = r->hidden;
  if (r->return_sequences)
    return dy + (s * steps + t) * h;
  return t + 1 == steps ? dy + s * h : zeros;
}

/* --------------------------------------------------- per-step passes */

/* The least work a range of a pass gets, in RNN_COST_* units (0.19 ns a
 * unit on one core: recurrent.h), about 3 microseconds: lstm:128's
 * forward cells (about 1150 units a sample) split from 30 samples, the
 * backward ones from a few more. Measured on 2 threads with the float
 * gates, against the earlier grain of 262144 units (cells whole below 456
 * samples), interleaved medians of 3-5 rounds, samples/s: lstm:128 at
 * batch 64 inference 27,569 against 26,275 (gemm_efficiency 0.813
 * against 0.793), training 10,752 against 10,402; at batch 256 inference
 * 30,037 against 26,510, training 11,858 against 10,522; at batch 32 and
 * 1 within 1%. A grain of 8192 measured the same as this one. Each
 * sample's cell is computed alone, so the split never changes a bit. */
#define PASS_GRAIN 16384

static int64_t pass_grain = PASS_GRAIN;

void nnlib__recurrent_set_pass_grain(int64_t grain) {
  pass_grain = grain > 0 ? grain : PASS_GRAIN;
}

void nnlib__recurrent_pass(int64_t n, int64_t cost, nnlib__range_fn fn,
                           void *ctx) {
  int64_t min_samples = (pass_grain + cost - 1) / cost;
  nnlib__parallel_for(n, min_samples, fn, ctx);
}

/* Lanes of at least this many samples: a lane's products, [m, H] x [H,
 * G H], pack all of W_hh where a product split over the threads packs a
 * share of it, which smaller lanes do not repay. */
#define LANE_MIN_SAMPLES 32
#define LANE_ROWS 16

static int64_t lane_min_samples = LANE_MIN_SAMPLES, lane_rows = LANE_ROWS;

void nnlib__recurrent_set_lanes(int64_t min_samples, int64_t rows) {
  lane_min_samples = min_samples > 0 ? min_samples : LANE_MIN_SAMPLES;
  lane_rows = rows > 0 ? rows : LANE_ROWS;
}

typedef struct steps_lanes {
  const nnlib__recurrent_stepper *s;
  int64_t lanes;
  int64_t unit_start[NNLIB__UNIT_LANES_MAX + 1];   /* per lane: steps */
  int64_t sample_start[NNLIB__UNIT_LANES_MAX + 1]; /* per lane: samples */
} steps_lanes;

static int64_t step_of(const steps_lanes *r, int64_t unit, int64_t lane) {
  int64_t k = unit - r->unit_start[lane];
  return r->s->backward ? r->s->steps - 1 - k : r->s->first + k;
}

static void lane_calls(void *ctx, int64_t unit, int64_t lane,
                       nnlib__gemm_call *calls) {
  const steps_lanes *r = ctx;
  int64_t s0 = r->sample_start[lane];
  r->s->calls(r->s->ctx, step_of(r, unit, lane), s0,
              r->sample_start[lane + 1] - s0, calls);
}

typedef struct cells_at {
  const nnlib__recurrent_stepper *s;
  int64_t t;
} cells_at;

static void cells_range(void *ctx, int64_t begin, int64_t end) {
  const cells_at *at = ctx;
  at->s->cells(at->s->ctx, at->t, begin, end);
}

static void lane_cells(void *ctx, int64_t unit, int64_t lane) {
  const steps_lanes *r = ctx;
  cells_at at = {r->s, step_of(r, unit, lane)};
  if (r->lanes == 1) /* split over the threads, as its products were */
    nnlib__recurrent_pass(r->s->n, r->s->cell_cost, cells_range, &at);
  else
    cells_range(&at, r->sample_start[lane], r->sample_start[lane + 1]);
}

nnlib_status nnlib__recurrent_run_steps(const nnlib__recurrent_stepper *s) {
  int64_t count = s->steps - s->first;
  if (count <= 0 || s->n <= 0)
    return NNLIB_OK;
  steps_lanes r = {.s = s};
  int64_t lanes = nnlib_get_num_threads();
  if (lanes > s->n / lane_min_samples)
    lanes = s->n / lane_min_samples;
  if (lanes > NNLIB__UNIT_LANES_MAX)
    lanes = NNLIB__UNIT_LANES_MAX;
  r.lanes = lanes > 1 ? lanes : 1;
  for (int64_t lane = 0; lane <= r.lanes; lane++) {
    r.unit_start[lane] = lane * count;
    r.sample_start[lane] =
        lane == r.lanes ? s->n : s->n * lane / r.lanes / lane_rows * lane_rows;
  }
  nnlib__gemm_units u = {r.lanes * count,
                         r.lanes,
                         s->calls_per_step,
                         lane_calls,
                         s->backward ? lane_cells : NULL,
                         s->backward ? NULL : lane_cells,
                         &r,
                         true,
                         r.unit_start};
  return nnlib__gemm_units_run(&u);
}

/* ----------------------------------------------------- backward GEMMs */

nnlib_status nnlib__recurrent_carry_product(const nnlib_layer *l,
                                            const float *dpre_all, int64_t t,
                                            float beta, float *carry, int64_t n,
                                            int64_t steps) {
  nnlib__gemm_call c =
      nnlib__recurrent_carry_call(l, dpre_all, t, beta, carry, 0, n, steps);
  return issue(&c);
}

nnlib__gemm_call nnlib__recurrent_carry_call(const nnlib_layer *l,
                                             const float *dpre_all, int64_t t,
                                             float beta, float *carry,
                                             int64_t s0, int64_t m,
                                             int64_t steps) {
  const nnlib__recurrent *r = crec(l);
  int64_t h = r->hidden, gh = r->gates * h;
  return product_with_w_hh(l, NULL, NNLIB__NO_TRANS, m, h, gh,
                           dpre_all + (s0 * steps + t) * gh, steps * gh, 0,
                           beta, carry + s0 * h, h);
}

/* db = the column sums of m ([rows, cols] at leading dimension ld; into
 * the gradient tensor), except its first `copied` columns: a copy of
 * `same`, the other bias's gradient, where both come from the same values
 * of dG; with fused SGD b -= lr db. */
static void bias_backward(nnlib_layer *l, const nnlib__run *run, int which,
                          const float *m, int64_t ld, const float *same,
                          int64_t copied, int64_t rows, int64_t cols) {
  float *db = l->params[which].grad.data;
  if (copied > 0)
    memcpy(db, same, (size_t)copied * sizeof(float));
  /* an addition costs about what a gate value of a backward cell does */
  if (copied < cols)
    nnlib__column_sums(m + copied, rows, cols - copied, ld, db + copied,
                       pass_grain / RNN_COST_GATE);
  if (!run->sgd_fused)
    return;
  float *b = l->params[which].value.data;
  for (int64_t j = 0; j < cols; j++)
    b[j] -= run->sgd_lr * db[j];
}

/* The leading columns of dG_hh that hold the same values as dG_in's, so
 * that db_hh copies db_ih there instead of summing again: all (rnn, lstm:
 * one array; gru with linear_before_reset 0: dQ_n = dpre_n); gru's r and
 * z blocks with 1 (each gate's dL/d(pre) reaches both sides; dQ_n = dpre_n
 * r). */
static int64_t shared_bias_columns(const nnlib_layer *l) {
  const nnlib__recurrent *r = crec(l);
  int64_t gh = r->gates * r->hidden;
  if (l->ops->kind == NNLIB_LAYER_GRU && r->linear_before_reset)
    return 2 * r->hidden;
  return gh;
}

int64_t nnlib__recurrent_step_sums_width(const nnlib_layer *l) {
  const nnlib__recurrent *r = crec(l);
  int64_t gh = r->gates * r->hidden;
  return 2 * gh - shared_bias_columns(l);
}

float *nnlib__recurrent_step_sums(const nnlib_layer *l, const nnlib__run *run,
                                  int64_t n) {
  float *sums = nnlib__recurrent_area(l, run, RNN_WS_STEP_SUMS);
  memset(sums, 0,
         (size_t)(n * nnlib__recurrent_step_sums_width(l)) * sizeof(float));
  return sums;
}

/* db_ih and db_hh, from the step sums (N rows) or from dG (N*T rows) */
static void biases_backward(nnlib_layer *l, const nnlib__run *run,
                            const float *dg_in, const float *dg_hh,
                            const float *step_sums, int64_t n) {
  const nnlib__recurrent *r = crec(l);
  int64_t gh = r->gates * r->hidden, shared = shared_bias_columns(l);
  const float *same = l->params[P_B_IH].grad.data;
  if (step_sums != NULL) {
    /* dG_hh's column j >= shared is column gh + j - shared of a row */
    int64_t width = nnlib__recurrent_step_sums_width(l);
    bias_backward(l, run, P_B_IH, step_sums, width, NULL, 0, n, gh);
    bias_backward(l, run, P_B_HH, step_sums + (gh - shared), width, same,
                  shared, n, gh);
    return;
  }
  int64_t rows = n * nnlib__recurrent_steps(l, run);
  bias_backward(l, run, P_B_IH, dg_in, gh, NULL, 0, rows, gh);
  bias_backward(l, run, P_B_HH, dg_hh, gh, same, shared, rows, gh);
}

nnlib_status nnlib__recurrent_finish_backward(
    nnlib_layer *l, const nnlib__run *run, const float *x, const float *dg_in,
    const float *dg_hh, const float *hprev_all, const float *last_block_in,
    const float *step_sums, float *dx, int64_t n) {
  const nnlib__recurrent *r = crec(l);
  int64_t h = r->hidden, gh = r->gates * h, f = r->features;
  int64_t rows = n * nnlib__recurrent_steps(l, run);
  float *w_ih = l->params[P_W_IH].value.data;
  float *w_hh = l->params[P_W_HH].value.data;
  /* dX reads W_ih, so it goes before a fused update changes W_ih */
  if (dx != NULL)
    NNLIB_TRY(nnlib__gemm(NNLIB__NO_TRANS, NNLIB__NO_TRANS, rows, f, gh, 1.0f,
                          dg_in, gh, w_ih, f, 0.0f, dx, f));
  /* plain SGD: W -= lr dG^T X is the weight-gradient GEMM itself with
   * alpha = -lr and beta = 1 */
  float alpha = run->sgd_fused ? -run->sgd_lr : 1.0f;
  float beta = run->sgd_fused ? 1.0f : 0.0f;
  float *out_ih = run->sgd_fused ? w_ih : l->params[P_W_IH].grad.data;
  float *out_hh = run->sgd_fused ? w_hh : l->params[P_W_HH].grad.data;
  NNLIB_TRY(nnlib__gemm(NNLIB__TRANS, NNLIB__NO_TRANS, gh, f, rows, alpha,
                        dg_in, gh, x, f, beta, out_ih, f));
  /* the rows of W_hh that multiply h_{t-1}: every block, or all but the
   * last, whose rows multiply last_block_in */
  int64_t hprev_rows = last_block_in != NULL ? gh - h : gh;
  NNLIB_TRY(nnlib__gemm(NNLIB__TRANS, NNLIB__NO_TRANS, hprev_rows, h, rows,
                        alpha, dg_hh, gh, hprev_all, h, beta, out_hh, h));
  if (last_block_in != NULL)
    NNLIB_TRY(nnlib__gemm(NNLIB__TRANS, NNLIB__NO_TRANS, h, h, rows, alpha,
                          dg_hh + hprev_rows, gh, last_block_in, h, beta,
                          out_hh + hprev_rows * h, h));
  if (r->with_bias)
    biases_backward(l, run, dg_in, dg_hh, step_sums, n);
  return NNLIB_OK;
}

bool nnlib__recurrent_returns_sequences(const nnlib_layer *l) {
  return crec(l)->return_sequences;
}

/* ----------------------------------------------- descriptions and files */

void nnlib__recurrent_write_spec(const nnlib_layer *l, nnlib__text *t) {
  const nnlib__recurrent *r = crec(l);
  nnlib__text_append(t, "%s:%lld", l->ops->name(l), (long long)r->hidden);
  if (l->ops->kind == NNLIB_LAYER_RNN && r->nonlinearity == NNLIB_ACT_RELU)
    nnlib__text_append(t, ":relu");
  if (!r->with_bias)
    nnlib__text_append(t, ":nobias");
  if (l->ops->kind == NNLIB_LAYER_GRU && !r->linear_before_reset)
    nnlib__text_append(t, ":lbr0");
  if (!r->return_sequences)
    nnlib__text_append(t, ",last");
}

nnlib_status nnlib__recurrent_parse_common(const nnlib__spec_item *item,
                                           nnlib__recurrent_args *args,
                                           unsigned *rest_mask) {
  args->input_size = 0; /* always taken at compile */
  args->with_bias = 1;
  args->return_sequences = 1; /* a following "last" item clears it */
  NNLIB_TRY(
      nnlib__spec_int(item, 1, 1, NNLIB__BLAS_DIM_MAX, &args->hidden_size));
  *rest_mask = 0;
  for (size_t f = 2; f < item->field_count; f++) {
    if (!nnlib__spec_field_is(item, f, "nobias")) {
      *rest_mask |= 1u << f;
      continue;
    }
    if (args->with_bias == 0)
      return nnlib__spec_error(item, "\"nobias\" given twice");
    args->with_bias = 0;
  }
  return NNLIB_OK;
}

nnlib_status nnlib__recurrent_spec_last(const nnlib__spec_item *item,
                                        nnlib_layer *previous) {
  if (item->field_count != 1)
    return nnlib__spec_error(item, "\"last\" takes no arguments");
  if (previous == NULL || !nnlib__layer_is_recurrent(previous))
    return nnlib__spec_error(item, "\"last\" selects the last step of the "
                                   "rnn, lstm or gru item just before it");
  nnlib__recurrent *r = rec(previous);
  if (!r->return_sequences)
    return nnlib__spec_error(item,
                             "the %s before already returns only its "
                             "last step",
                             previous->ops->name(previous));
  r->return_sequences = false;
  return NNLIB_OK;
}

void nnlib__recurrent_write_config(const nnlib_layer *l, nnlib__writer *w) {
  const nnlib__recurrent *r = crec(l);
  nnlib__put_i64(w, r->declared_in);
  nnlib__put_i64(w, r->hidden);
  nnlib__put_u32(w, r->with_bias ? 1u : 0u);
  nnlib__put_u32(w, r->return_sequences ? 1u : 0u);
}

nnlib_status nnlib__recurrent_read_config(nnlib__reader *r, const char *kind,
                                          nnlib__recurrent_args *args) {
  uint32_t bias, sequences;
  NNLIB_TRY(nnlib__get_i64(r, &args->input_size));
  NNLIB_TRY(nnlib__get_i64(r, &args->hidden_size));
  NNLIB_TRY(nnlib__get_u32(r, &bias));
  NNLIB_TRY(nnlib__get_u32(r, &sequences));
  if (bias > 1 || sequences > 1)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "%s: with_bias %u and return_sequences %u must be 0 "
                        "or 1",
                        kind, bias, sequences);
  args->with_bias = (int)bias;
  args->return_sequences = (int)sequences;
  return NNLIB_OK;
}
