/* batchnorm.c - batch normalisation per channel of [C, ...] samples
 * (PyTorch's BatchNorm2d for [C, H, W], BatchNorm1d for [C] or [C, L]).
 * A channel's statistics run over the M = N S values of the batch, S the
 * positions per channel.
 *
 * training:  mu = mean x, var = mean (x - mu)^2 (biased), r = 1/sqrt(var+eps)
 *            summed plane by plane (a plane: one sample's S values of the
 *            channel): its sum, and its squares about its own mean, then
 *            combined exactly about mu (plane_square_sum); a convolution
 *            whose only reader is this layer computes the planes' sums
 *            while its output is in cache and offers them
 *            (nnlib__batchnorm_offer_stats), saving two of the three
 *            passes over x
 *            xh = (x - mu) r,  y = gamma xh + beta
 *            running_mean = (1 - m) running_mean + m mu
 *            running_var  = (1 - m) running_var + m var M / (M - 1)
 *            mu and r go to the workspace for backward:
 *            dbeta = sum dy, dgamma = sum dy xh
 *            dx = gamma r (dy - dbeta / M - xh dgamma / M)
 * inference: mu, var = the running statistics (the layer is only read);
 *            y = gamma (x - mu) r + beta, dx = gamma r dy
 * A ReLU that alone reads the layer is fused into it at compile
 * (fused_activation, as a dense layer fuses its activation): forward
 * applies it in the normalising loop, backward takes dy through it from
 * the output y first, the same expressions as the activation layer's.
 * A 2x2 max pool at stride 2 that alone reads that ReLU is fused too
 * (fused_pool): forward has the pool's rows normalise x as they load it
 * and select the windows (nnlib__pool2x2_rows_pre), so y is the pooled
 * map and each window's winner goes to the workspace as the pool's code;
 * backward takes dy at the winners only (the pooled gradient, through the
 * ReLU from the pooled y) and is zero elsewhere. The normalised map and the
 * pool's gradient over it are never stored. Sums and dx come out as the
 * three layers' passes give them, bit for bit (pooled_* below).
 * The running statistics are the one piece of state a forward pass changes,
 * and only in training. In predictions a batchnorm that alone reads a
 * convolution does not run: the convolution applies scale and shift from
 * nnlib__batchnorm_fold_terms itself (conv2d.c). */
/* no FMA contraction under clang either (GCC makes none in ISO C mode):
 * the scalar expressions give the bits of the vector loops and of the
 * separate layers' passes */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif
#include "layers/layer.h"
#include "core/vecmath.h"

#include <math.h>
#include <string.h>

typedef struct batchnorm_layer {
  nnlib_layer base;
  float momentum, epsilon;
  int64_t channels, positions; /* planned */
  int64_t height, width;       /* planned with a fused pool: the plane */
  /* the plane statistics the convolution before the layer offered for its
   * output y of n samples (nnlib__batchnorm_offer_stats; NULL: none):
   * taken by the next training forward over that y, then dropped */
  const double *offered_stats;
  const float *offered_y;
  int64_t offered_n;
} batchnorm_layer;

enum { GAMMA = 0, BETA = 1, RUNNING_MEAN = 0, RUNNING_VAR = 1 };

static const char *batchnorm_name(const nnlib_layer *l) {
  (void)l;
  return "batchnorm";
}

static nnlib_status batchnorm_plan(nnlib_layer *l, const nnlib__shape *in,
                                   int64_t max_batch) {
  batchnorm_layer *b = (batchnorm_layer *)l;
  b->channels = in->dims[0];
  b->positions = nnlib__shape_numel(in) / b->channels;
  /* an offer points into a workspace that compiling replaces */
  b->offered_stats = NULL;
  b->offered_y = NULL;
  b->offered_n = 0;
  l->out_shape = *in;
  nnlib__layer_declare_param(l, "weight", &b->channels, 1);
  nnlib__layer_declare_param(l, "bias", &b->channels, 1);
  nnlib__layer_declare_buffer(l, "running_mean", &b->channels, 1);
  nnlib__layer_declare_buffer(l, "running_var", &b->channels, 1);
  l->workspace_floats = (size_t)(2 * b->channels); /* mu, r */
  if (l->fused_pool == NULL)
    return NNLIB_OK;
  /* then the fused pool's codes, a byte per pooled output (the pool's own
   * plan checks the shape; a plane that is not [C, H, W] fails there) */
  b->height = in->rank == 3 ? in->dims[1] : 1;
  b->width = in->rank == 3 ? in->dims[2] : 1;
  int64_t codes;
  if (nnlib__mul_overflows(b->channels * (b->height / 2), b->width / 2,
                           &codes) ||
      nnlib__mul_overflows(codes, max_batch, &codes) ||
      (uint64_t)codes / 4 + 1 > SIZE_MAX / sizeof(float) - l->workspace_floats)
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "batchnorm: the pool's codes for a batch of %lld "
                        "overflow",
                        (long long)max_batch);
  l->workspace_floats += (size_t)((codes + 3) / 4);
  return NNLIB_OK;
}

static void batchnorm_init(nnlib_layer *l, nnlib__rng *rng) {
  (void)rng;
  const batchnorm_layer *b = (const batchnorm_layer *)l;
  for (int64_t c = 0; c < b->channels; c++) {
    l->params[GAMMA].value.data[c] = 1.0f;
    l->params[BETA].value.data[c] = 0.0f;
    l->buffers[RUNNING_MEAN].value.data[c] = 0.0f;
    l->buffers[RUNNING_VAR].value.data[c] = 1.0f;
  }
}

/* The loops over planes are compiled for AVX2 and AVX-512F too
 * (core/vecmath.h: the same lanes, so the same bits); GCC vectorises
 * them in a function of its own, not inlined (layernorm.c has the
 * same). */
#if defined(__GNUC__) && !defined(__clang__)
#define VECTOR_LOOPS NNLIB__VECTOR_CLONES __attribute__((noinline))
#else
#define VECTOR_LOOPS NNLIB__VECTOR_CLONES
#endif

/* Sums run in LANES float lanes, so the loops vectorise; each plane's
 * total is added in double. */
enum { LANES = 8 };

/* The LANES partial sums as one vector of GCC's extension (clang has it
 * too): written as a loop over lanes, GCC vectorised sum_grads with a
 * permute per element (the pass took 6.3% of the benchmark CNN's training
 * step, 4.6% as a vector); the vector does lane k's sum in the same
 * order, so the bits are those of the loop. Only ever a local: a 32-byte
 * vector passed by value would change the ABI of the SSE2 clone. */
typedef float lanes_f __attribute__((vector_size(LANES * sizeof(float))));
typedef int32_t lanes_i __attribute__((vector_size(LANES * sizeof(float))));

/* *acc += one vector's term of sum_centred (vectors by pointer only, see
 * lanes_f). */
static inline __attribute__((always_inline)) void
add_centred(lanes_f *acc, const float *v, const lanes_f *mu, bool square) {
  lanes_f vl;
  memcpy(&vl, v, sizeof vl);
  vl -= *mu;
  if (square)
    vl *= vl;
  *acc += vl;
}

/* The lanes' total in double, pairwise (a chain of three additions). */
static inline __attribute__((always_inline)) double
lanes_total(const lanes_f *v) {
  _Static_assert(LANES == 8, "lanes_total adds 8 lanes");
  double d[LANES];
  for (int k = 0; k < LANES; k++)
    d[k] = (*v)[k];
  return ((d[0] + d[1]) + (d[2] + d[3])) + ((d[4] + d[5]) + (d[6] + d[7]));
}

static inline __attribute__((always_inline)) double
centred_total(const float *v, int64_t n, float mu, bool square) {
  const int64_t block = (int64_t)4 * LANES;
  lanes_f acc[4] = {{0}}, zero = {0};
  lanes_f mul = zero + mu;
  int64_t i = 0;
  for (; i + block <= n; i += block)
    for (int64_t j = 0; j < 4; j++)
      add_centred(&acc[j], v + i + j * LANES, &mul, square);
  for (int j = 0; i + LANES <= n; i += LANES, j++)
    add_centred(&acc[j], v + i, &mul, square);
  lanes_f sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
  double total = lanes_total(&sum);
  for (; i < n; i++)
    total += square ? (double)(v[i] - mu) * (v[i] - mu) : (double)(v[i] - mu);
  return total;
}

/* sum (v - mu) or sum (v - mu)^2 over one plane of n values in four
 * vectors of LANES lanes (element e to vector e / LANES % 4), added
 * pairwise into one, then its lanes pairwise in double, then the tail in
 * order. Four independent chains: a plane in L1 (a convolution's output
 * as it offers its statistics) is summed at the adder's throughput, where
 * one chain waited on its latency. */
VECTOR_LOOPS
static double sum_centred(const float *v, int64_t n, float mu, bool square) {
  return centred_total(v, n, mu, square);
}

/* dy through the fused ReLU, from its output y: the activation layer's
 * expression (the gradient at 0 is 0), selected through the bits: a
 * loop with ?: here would branch instead of vectorising */
#define RELU_GRAD(y, g, e) nnlib__select_f((y)[e] > 0.0f, (g)[e], 0.0f)

/* sum g and sum g (v - mu) over one plane in one pass, each in LANES
 * float lanes, the lanes and the tail added in double as sum_centred;
 * g = dy through the fused ReLU (relu_y its output) or dy itself. */
VECTOR_LOOPS
static void sum_grads(const float *g, const float *relu_y, const float *v,
                      int64_t n, float mu, double *sum_g, double *sum_gv) {
  lanes_f acc = {0}, accv = {0}, zero = {0}, gl, vl, yl;
  lanes_f mul = zero + mu;
  int64_t i = 0;
  for (; i + LANES <= n; i += LANES) {
    memcpy(&gl, g + i, sizeof gl);
    memcpy(&vl, v + i, sizeof vl);
    if (relu_y != NULL) { /* the same select as RELU_GRAD */
      memcpy(&yl, relu_y + i, sizeof yl);
      gl = (lanes_f)((lanes_i)gl & (yl > zero));
    }
    acc += gl;
    accv += gl * (vl - mul);
  }
  for (int k = 0; k < LANES; k++) {
    *sum_g += acc[k];
    *sum_gv += accv[k];
  }
  for (int64_t e = i; e < n; e++) {
    float ge = relu_y != NULL ? RELU_GRAD(relu_y, g, e) : g[e];
    *sum_g += ge;
    *sum_gv += (double)ge * (v[e] - mu);
  }
}

/* The sums of channels [c0, c0 + count) over the batch, sample by sample
 * (each sample's planes of those channels are one contiguous stretch, so
 * the pass reads memory in order, where a channel at a time jumps from
 * plane to plane); each channel still adds its planes in sample order,
 * each plane's sum as nnlib__batchnorm_plane_stats has it. */
static void channel_sums(const batchnorm_layer *b, const float *x, int64_t n,
                         int64_t c0, int64_t count, double *sum) {
  int64_t s = b->positions, stride = b->channels * s;
  for (int64_t c = 0; c < count; c++)
    sum[c] = 0.0;
  for (int64_t i = 0; i < n; i++)
    for (int64_t c = 0; c < count; c++)
      sum[c] += sum_centred(x + i * stride + (c0 + c) * s, s, 0.0f, false);
}

/* sum_centred's two sums in one call (a plane of 196 values costs little
 * more than the calls and the totals) */
VECTOR_LOOPS
static void plane_stats(const float *v, int64_t s, double stats[2]) {
  stats[0] = centred_total(v, s, 0.0f, false);
  stats[1] = centred_total(v, s, (float)(stats[0] / (double)s), true);
}

/* not cloned itself: a clone's resolver would be an exported symbol */
void nnlib__batchnorm_plane_stats(const float *v, int64_t s, double stats[2]) {
  plane_stats(v, s, stats);
}

/* A plane's share of its channel's sum of squares about the batch mean
 * mu, from its statistics (sum S and Q = sum (x - a)^2, a = S / s
 * rounded to float): with d = S - s a,
 *   sum (x - mu)^2 = Q + 2 (a - mu) d + s (a - mu)^2
 * exactly (Chan, Golub and LeVeque's pairwise update): the plane's
 * squares were summed about a value near its own mean, so a mean far
 * from 0 cancels nothing. */
static double plane_square_sum(const double stats[2], int64_t s, double mu) {
  double a = (float)(stats[0] / (double)s), e = a - mu;
  double d = stats[0] - (double)s * a;
  return stats[1] + e * (2.0 * d + (double)s * e);
}

/* The biased variance of channel c about the batch mean mu from the sum
 * of its planes' shares (in sample order), each plane's statistics
 * offered by the convolution (`stats`, [n, C, 2]) or computed here from
 * x: the same bits either way. Rounding can leave a share of a constant
 * channel just below 0; the variance is then 0 (NaN stays NaN). */
static double channel_variance(const batchnorm_layer *b, const float *x,
                               const double *stats, int64_t n, int64_t c,
                               double mu) {
  int64_t s = b->positions, stride = b->channels * s;
  double sq = 0.0;
  for (int64_t i = 0; i < n; i++) {
    double own[2];
    if (stats == NULL)
      nnlib__batchnorm_plane_stats(x + i * stride + c * s, s, own);
    sq += plane_square_sum(
        stats != NULL ? stats + 2 * (i * b->channels + c) : own, s, mu);
  }
  if (sq < 0.0)
    sq = 0.0;
  return sq / (double)(n * s);
}

/* The sum of channel c from the offered statistics, in sample order: the
 * bits channel_sums gives. */
static double offered_sum(const batchnorm_layer *b, const double *stats,
                          int64_t n, int64_t c) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; i++)
    sum += stats[2 * (i * b->channels + c)];
  return sum;
}

/* The passes run over channels (a channel's statistics, gradients and
 * outputs depend on that channel alone, summed in the same order whatever
 * the split) or, in inference, over planes; split over nnlib's threads
 * when a part holds at least GRAIN_FLOATS floats. */
#define GRAIN_FLOATS ((int64_t)32768)

static int64_t per_part(int64_t floats_per_index) {
  if (floats_per_index < 1)
    return 1;
  return (GRAIN_FLOATS + floats_per_index - 1) / floats_per_index;
}

/* Channels whose sums one sample-ordered pass takes */
enum { SUM_BLOCK = 64 };

/* What a pass reads and writes. */
typedef struct bn_pass {
  nnlib_layer *l;
  const float *x, *relu_y; /* relu_y: backward's y with a fused ReLU */
  float *dy;               /* a fused pool's is taken through the ReLU in
                              place */
  float *y, *dx, *mu, *r;
  uint8_t *codes;      /* a fused pool's (NULL: none, or none kept) */
  const double *stats; /* the offered plane statistics (NULL: none) */
  int64_t n;
  const nnlib__run *run;
} bn_pass;

VECTOR_LOOPS
static void normalise_plane(const float *xv, float *yv, int64_t s, float m,
                            float scale, float shift, bool relu) {
  if (relu)
    for (int64_t q = 0; q < s; q++) {
      float v = (xv[q] - m) * scale + shift;
      yv[q] = v <= 0.0f ? 0.0f : v;
    }
  else
    for (int64_t q = 0; q < s; q++)
      yv[q] = (xv[q] - m) * scale + shift;
}

/* The pooled plane of sample i, channel c: the pool selects among the
 * normalised values (with the ReLU) as normalise_plane computes them,
 * computing them itself as it loads x, into y's pooled plane and its
 * codes: the unpooled map is never stored. */
static void normalise_pooled(const batchnorm_layer *b, const bn_pass *t,
                             int64_t i, int64_t c, float m, float scale,
                             float shift) {
  int64_t out_h = b->height / 2, out_w = b->width / 2;
  int64_t plane = (i * b->channels + c), out_plane = out_h * out_w;
  const nnlib__pool2x2_pre pre = {m, scale, shift, true};
  nnlib__pool2x2_rows_pre(
      b->base.fused_pool, t->x + plane * b->positions, b->width, out_h, &pre,
      t->y + plane * out_plane,
      t->codes != NULL ? t->codes + plane * out_plane : NULL, out_w);
}

/* y of sample i, channel c: y = (x - mu) gamma r + beta, then the fused
 * ReLU, if any, in the same loop with the activation layer's expression
 * (NaN stays NaN): the same bits as the two passes; then the fused
 * pool's selection, if any. */
static void normalise_channel(const batchnorm_layer *b, const bn_pass *t,
                              int64_t i, int64_t c) {
  const float *gamma = b->base.params[GAMMA].value.data;
  const float *beta = b->base.params[BETA].value.data;
  int64_t s = b->positions;
  /* centred first: x scale + (beta - mu scale) would cancel badly for a
   * mean far from 0 */
  float scale = gamma[c] * t->r[c], m = t->mu[c], shift = beta[c];
  if (b->base.fused_pool != NULL) {
    normalise_pooled(b, t, i, c, m, scale, shift);
    return;
  }
  normalise_plane(t->x + (i * b->channels + c) * s,
                  t->y + (i * b->channels + c) * s, s, m, scale, shift,
                  b->base.fused_activation != NULL);
}

/* Channels [begin, end) in training: the batch's mu and r into the
 * workspace, the running statistics move towards them (not for a single
 * value per channel, whose unbiased variance does not exist), then the
 * channel's outputs while its inputs are still in cache. The sums come
 * from the offered plane statistics, or a pass of their own over memory
 * in order; the variance from the offered statistics, or a second pass
 * a channel at a time (which leaves the channel in cache for its
 * outputs). */
static void train_channels(void *ctx, int64_t begin, int64_t end) {
  const bn_pass *t = ctx;
  const batchnorm_layer *b = (const batchnorm_layer *)t->l;
  float *rm = t->l->buffers[RUNNING_MEAN].value.data;
  float *rv = t->l->buffers[RUNNING_VAR].value.data;
  int64_t count = t->n * b->positions;
  double sums[SUM_BLOCK] = {0}; /* channel_sums fills each block first */
  for (int64_t c = begin; c < end; c++) {
    double sum;
    if (t->stats != NULL) {
      sum = offered_sum(b, t->stats, t->n, c);
    } else {
      if ((c - begin) % SUM_BLOCK == 0)
        channel_sums(b, t->x, t->n, c,
                     end - c < SUM_BLOCK ? end - c : SUM_BLOCK, sums);
      sum = sums[(c - begin) % SUM_BLOCK];
    }
    double mean = sum / (double)count;
    double var = channel_variance(b, t->x, t->stats, t->n, c, mean);
    t->mu[c] = (float)mean;
    t->r[c] = (float)(1.0 / sqrt(var + (double)b->epsilon));
    if (count > 1) {
      double unbiased = var * (double)count / (double)(count - 1);
      rm[c] = (1.0f - b->momentum) * rm[c] + b->momentum * (float)mean;
      rv[c] = (1.0f - b->momentum) * rv[c] + b->momentum * (float)unbiased;
    }
    for (int64_t i = 0; i < t->n; i++)
      normalise_channel(b, t, i, c);
  }
}

/* Planes [begin, end) of the batch (plane = sample * C + channel) with the
 * statistics already in mu and r. */
static void normalise_planes(void *ctx, int64_t begin, int64_t end) {
  const bn_pass *t = ctx;
  const batchnorm_layer *b = (const batchnorm_layer *)t->l;
  for (int64_t q = begin; q < end; q++)
    normalise_channel(b, t, q / b->channels, q % b->channels);
}

/* Training only averages variances, so it never writes a negative one;
 * callers (nnlib_layer_get_buffer) and model files may, and then r =
 * 1/sqrt(var + eps) is NaN (or, above -eps, a scale that means nothing)
 * for every output of the channel: refused before a pass reads it. NaN
 * passes, as NaN data does (training on NaN data leaves a NaN variance,
 * and the loss or the numerics check reports that at its source). */
static nnlib_status batchnorm_check_state(const nnlib_layer *l) {
  const batchnorm_layer *b = (const batchnorm_layer *)l;
  const float *rv = l->buffers[RUNNING_VAR].value.data;
  for (int64_t c = 0; c < b->channels; c++)
    if (rv[c] < 0.0f)
      return nnlib__error(NNLIB_ERR_INVALID_ARGUMENT,
                          "batchnorm: running_var of channel %lld (of %lld) "
                          "is %g, a variance must be >= 0",
                          (long long)c, (long long)b->channels,
                          (double)rv[c]);
  return NNLIB_OK;
}

/* The running statistics as mu and r (inference). */
static nnlib_status running_statistics(const nnlib_layer *l, float *mu,
                                       float *r) {
  const batchnorm_layer *b = (const batchnorm_layer *)l;
  const float *rm = l->buffers[RUNNING_MEAN].value.data;
  const float *rv = l->buffers[RUNNING_VAR].value.data;
  NNLIB_TRY(batchnorm_check_state(l));
  for (int64_t c = 0; c < b->channels; c++) {
    mu[c] = rm[c];
    r[c] = (float)(1.0 / sqrt((double)rv[c] + (double)b->epsilon));
  }
  return NNLIB_OK;
}

/* What a convolution folded in inference applies instead of this layer's
 * pass (layer.h): the same r and gamma r as running_statistics and the
 * forward loop, and the shift centred first, (bias - mean) scale + beta,
 * for the reason the forward loop gives. */
nnlib_status nnlib__batchnorm_fold_terms(const nnlib_layer *l,
                                         const float *bias, float *scale,
                                         float *shift) {
  const batchnorm_layer *b = (const batchnorm_layer *)l;
  const float *rm = l->buffers[RUNNING_MEAN].value.data;
  const float *rv = l->buffers[RUNNING_VAR].value.data;
  const float *gamma = l->params[GAMMA].value.data;
  const float *beta = l->params[BETA].value.data;
  NNLIB_TRY(batchnorm_check_state(l));
  for (int64_t c = 0; c < b->channels; c++) {
    float r = (float)(1.0 / sqrt((double)rv[c] + (double)b->epsilon));
    scale[c] = gamma[c] * r;
    shift[c] = ((bias != NULL ? bias[c] : 0.0f) - rm[c]) * scale[c] + beta[c];
  }
  return NNLIB_OK;
}

/* The fused pool's codes, after mu and r in the workspace. */
static uint8_t *pool_codes(const batchnorm_layer *b, const nnlib__run *run) {
  if (b->base.fused_pool == NULL)
    return NULL;
  return (uint8_t *)(void *)(run->workspace + 2 * b->channels);
}

void nnlib__batchnorm_offer_stats(nnlib_layer *l, const float *y, int64_t n,
                                  const double *stats) {
  batchnorm_layer *b = (batchnorm_layer *)l;
  b->offered_stats = stats;
  b->offered_y = y;
  b->offered_n = n;
}

/* The statistics offered for exactly this input, taken once. */
static const double *take_offered_stats(batchnorm_layer *b, const float *x,
                                        int64_t n) {
  const double *stats =
      b->offered_y == x && b->offered_n == n ? b->offered_stats : NULL;
  b->offered_stats = NULL;
  b->offered_y = NULL;
  b->offered_n = 0;
  return stats;
}

static nnlib_status batchnorm_forward(nnlib_layer *l, const nnlib__run *run,
                                      const float *x, float *y, int64_t n) {
  batchnorm_layer *b = (batchnorm_layer *)l;
  float *mu = run->workspace, *r = mu + b->channels;
  bn_pass t = {.l = l, .x = x, .y = y, .mu = mu, .r = r, .n = n};
  /* a folded call runs no backward: no codes */
  t.codes = run->folded ? NULL : pool_codes(b, run);
  t.stats = run->training ? take_offered_stats(b, x, n) : NULL;
  if (run->training) {
    /* training blends the running variance into the next one */
    NNLIB_TRY(batchnorm_check_state(l));
    nnlib__parallel_for(b->channels, per_part(n * b->positions),
                        train_channels, &t);
    return NNLIB_OK;
  }
  NNLIB_TRY(running_statistics(l, mu, r));
  nnlib__parallel_for(n * b->channels, per_part(b->positions),
                      normalise_planes, &t);
  return NNLIB_OK;
}

/* Backward's first pass over a channel reads a plane of s values every
 * C s values, of dy, x and y. A plane of up to SMALL_PLANE values (a 14x14
 * map is 196) is too short for the hardware prefetcher to get ahead of
 * the reads, so the next planes are asked for while this one is summed:
 * the benchmark CNN's second batchnorm (64 channels of 14x14) ran its
 * backward 10-20% faster on one thread and 6-20% on two (medians of 7 and
 * 9 rounds of the profile, two runs each). For 28x28 planes it did not
 * help, nor in forward's variance pass, which finds its data in cache
 * after the sums, nor as a prefetch for writing forward's output. */
enum { SMALL_PLANE = 256, FLOATS_PER_LINE = 16 };

static void prefetch_plane(const float *plane, int64_t s) {
  if (s > SMALL_PLANE)
    return;
  for (int64_t q = 0; q < s; q += FLOATS_PER_LINE)
    __builtin_prefetch(plane + q);
}

/* dbeta[c] = sum dy, dgamma[c] = sum dy xh over channel c. */
static void channel_grads(const batchnorm_layer *b, const float *x,
                          const float *dy, const float *relu_y, int64_t n,
                          int64_t c, float mu, float r, double *dbeta,
                          double *dgamma) {
  int64_t s = b->positions, stride = b->channels * s;
  double sb = 0.0, sg = 0.0;
  for (int64_t i = 0; i < n; i++) {
    int64_t at = i * stride + c * s;
    if (i + 1 < n) { /* the channel's next planes */
      prefetch_plane(dy + at + stride, s);
      prefetch_plane(x + at + stride, s);
      if (relu_y != NULL)
        prefetch_plane(relu_y + at + stride, s);
    }
    sum_grads(dy + at, relu_y != NULL ? relu_y + at : NULL, x + at, s, mu,
              &sb, &sg);
  }
  *dbeta = sb;
  *dgamma = sg * r; /* sum dy xh = r sum dy (x - mu) */
}

/* dx of channel c: gamma r (dy - dbeta/M - xh dgamma/M) in training (the
 * batch statistics depend on x), gamma r dy in inference. */
VECTOR_LOOPS
static void channel_input_grad(const batchnorm_layer *b, const float *x,
                               const float *dy, const float *relu_y,
                               float *dx, int64_t n, int64_t c, float mu,
                               float r, float gamma, const double sums[2],
                               bool training) {
  int64_t s = b->positions, stride = b->channels * s;
  double m = (double)(n * s);
  float k = gamma * r;
  float mean_db = training ? (float)(sums[0] / m) : 0.0f;
  float mean_dg = training ? (float)(sums[1] / m) : 0.0f;
  for (int64_t i = 0; i < n; i++) {
    int64_t at = i * stride + c * s;
    const float *xv = x + at, *g = dy + at;
    float *d = dx + at; /* may be relu_y + at: each element is read first */
    if (relu_y != NULL)
      for (int64_t q = 0; q < s; q++)
        d[q] = k * (RELU_GRAD(relu_y + at, g, q) - mean_db -
                    (xv[q] - mu) * r * mean_dg);
    else
      for (int64_t q = 0; q < s; q++)
        d[q] = k * (g[q] - mean_db - (xv[q] - mu) * r * mean_dg);
  }
}

/* With a fused pool, dy at the normalised map is the pooled gradient at
 * each window's winner, taken through the ReLU from the pooled y (the
 * winner's value), and 0 elsewhere: the pool's backward writes 0.0f + dy
 * there (-0 becomes +0), and the ReLU passes it where y > 0. */
static inline float winner_grad(const float *pooled_y, const float *dy,
                                int64_t q) {
  return RELU_GRAD(pooled_y, dy, q) + 0.0f;
}

/* The position in its plane of the winner of window q (row oh, column ow
 * of the pooled plane) from its code 2 dr + dc. */
static inline int64_t winner_at(int64_t w, int64_t oh, int64_t ow,
                                uint8_t code) {
  return (2 * oh + (code >> 1)) * w + 2 * ow + (code & 1);
}

/* The gradient at a plane of the normalised map, as the pool's and the
 * ReLU's backward passes give it, into g [s]: the pooled gradient through
 * the ReLU, in place over dy (read once), then the pool's spread. */
static void plane_grad(const batchnorm_layer *b, const float *pooled_y,
                       float *dy, const uint8_t *codes, float *g) {
  int64_t out_plane = (b->height / 2) * (b->width / 2);
  for (int64_t q = 0; q < out_plane; q++)
    dy[q] = RELU_GRAD(pooled_y, dy, q);
  nnlib__pool2x2_spread_plane(dy, codes, g, b->height, b->width);
}

/* sum_grads over a plane larger than the stack block, from its pooled
 * gradient, adding what sum_grads adds in the same order: position p's
 * terms go to lane p % LANES (to the double tail past the last whole
 * group of LANES), each lane in increasing p, so a pooled row's top-row
 * winners go before its bottom-row ones. The other positions' terms are
 * zeros, which leave every sum as it is (a lane starting at +0 never
 * holds -0). */
static void pooled_sums(const batchnorm_layer *b, const float *x,
                        const float *pooled_y, const float *dy,
                        const uint8_t *codes, float mu, double *sum_g,
                        double *sum_gv) {
  int64_t w = b->width, out_h = b->height / 2, out_w = w / 2;
  int64_t s = b->positions, whole = s - s % LANES;
  float acc[LANES] = {0}, accv[LANES] = {0};
  float tail_g[LANES] = {0}, tail_v[LANES] = {0};
  bool tail[LANES] = {false};
  for (int64_t oh = 0; oh < out_h; oh++)
    for (uint8_t row = 0; row < 2; row++)
      for (int64_t ow = 0; ow < out_w; ow++) {
        int64_t q = oh * out_w + ow;
        if (codes[q] >> 1 != row)
          continue;
        int64_t p = winner_at(w, oh, ow, codes[q]);
        float g = winner_grad(pooled_y, dy, q), v = x[p] - mu;
        if (p < whole) {
          acc[p % LANES] += g;
          accv[p % LANES] += g * v;
        } else {
          tail[p - whole] = true;
          tail_g[p - whole] = g;
          tail_v[p - whole] = v;
        }
      }
  for (int k = 0; k < LANES; k++) {
    *sum_g += acc[k];
    *sum_gv += accv[k];
  }
  for (int k = 0; k < LANES; k++)
    if (tail[k]) {
      *sum_g += tail_g[k];
      *sum_gv += (double)tail_g[k] * tail_v[k];
    }
}

/* The floats of the stack block a plane's gradient goes to when no dx is
 * wanted (pooled_channel_grads) */
enum { POOL_BLOCK = 4096 };

/* channel_grads with a fused pool and no dx wanted: dbeta and dgamma of
 * channel c, plane by plane through plane_grad into the stack block and
 * sum_grads (pooled_sums for planes larger than it). */
static void pooled_channel_grads(const batchnorm_layer *b, const bn_pass *t,
                                 int64_t c, double *dbeta, double *dgamma) {
  int64_t s = b->positions, out_plane = (b->height / 2) * (b->width / 2);
  double sb = 0.0, sg = 0.0;
  float block[POOL_BLOCK];
  for (int64_t i = 0; i < t->n; i++) {
    int64_t plane = i * b->channels + c;
    const float *x = t->x + plane * s, *py = t->relu_y + plane * out_plane;
    float *dy = t->dy + plane * out_plane;
    const uint8_t *codes = t->codes + plane * out_plane;
    if (i + 1 < t->n) { /* the channel's next planes, as channel_grads */
      prefetch_plane(x + b->channels * s, s);
      prefetch_plane(dy + b->channels * out_plane, out_plane);
      prefetch_plane(py + b->channels * out_plane, out_plane);
    }
    if (s > POOL_BLOCK) {
      pooled_sums(b, x, py, dy, codes, t->mu[c], &sb, &sg);
      continue;
    }
    plane_grad(b, py, dy, codes, block);
    sum_grads(block, NULL, x, s, t->mu[c], &sb, &sg);
  }
  *dbeta = sb;
  *dgamma = sg * t->r[c];
}

/* channel_input_grad's expression over one plane, in place over its
 * gradient g (written there by pooled_grads_in_order). */
VECTOR_LOOPS
static void plane_input_grad(float *restrict g, const float *restrict xv,
                             int64_t s, float k, float mu, float r,
                             float mean_db, float mean_dg) {
  for (int64_t q = 0; q < s; q++)
    g[q] = k * (g[q] - mean_db - (xv[q] - mu) * r * mean_dg);
}

/* With a fused pool and dx wanted, backward runs sample by sample over a
 * block of channels (memory order: a sample's planes of those channels
 * are one stretch), twice: the gradient at the normalised map into dx
 * with each channel's sums, then dx finished over it. Channel by channel
 * (the second pass then finds the channel in L2), the first pass read x
 * a short plane at a time, 64 planes far apart, and waited on memory: the
 * benchmark CNN trained 1.05x-1.07x faster at batch 64 this way on one
 * thread (1.04x at 256; 1.00x on two; 5-7 alternated rounds). Each channel
 * still adds its planes in sample order: the same sums and dx.
 *
 * dbeta and dgamma of channels [c0, c0 + count), the gradient at their
 * normalised map left in dx. */
static void pooled_grads_in_order(const batchnorm_layer *b, const bn_pass *t,
                                  int64_t c0, int64_t count, double sums[][2]) {
  int64_t s = b->positions, out_plane = (b->height / 2) * (b->width / 2);
  for (int64_t k = 0; k < count; k++)
    sums[k][0] = sums[k][1] = 0.0;
  for (int64_t i = 0; i < t->n; i++)
    for (int64_t k = 0; k < count; k++) {
      int64_t c = c0 + k, plane = i * b->channels + c;
      plane_grad(b, t->relu_y + plane * out_plane, t->dy + plane * out_plane,
                 t->codes + plane * out_plane, t->dx + plane * s);
      sum_grads(t->dx + plane * s, NULL, t->x + plane * s, s, t->mu[c],
                &sums[k][0], &sums[k][1]);
    }
  for (int64_t k = 0; k < count; k++)
    sums[k][1] *= t->r[c0 + k];
}

/* dx of the same channels over that gradient, sample by sample:
 * channel_input_grad's expression. */
static void pooled_input_grads_in_order(const batchnorm_layer *b,
                                        const bn_pass *t, int64_t c0,
                                        int64_t count, double sums[][2],
                                        bool training) {
  int64_t s = b->positions;
  double m = (double)(t->n * s);
  const float *gamma = t->l->params[GAMMA].value.data;
  for (int64_t i = 0; i < t->n; i++)
    for (int64_t k = 0; k < count; k++) {
      int64_t c = c0 + k, plane = i * b->channels + c;
      float mean_db = training ? (float)(sums[k][0] / m) : 0.0f;
      float mean_dg = training ? (float)(sums[k][1] / m) : 0.0f;
      plane_input_grad(t->dx + plane * s, t->x + plane * s, s,
                       gamma[c] * t->r[c], t->mu[c], t->r[c], mean_db, mean_dg);
    }
}

/* The gradients of channel c from its sums, or the fused SGD step (after
 * dx, which read the old gamma). */
static void finish_channel(const bn_pass *t, int64_t c, const double sums[2]) {
  float *gamma = t->l->params[GAMMA].value.data;
  float *beta = t->l->params[BETA].value.data;
  float *dgamma = t->l->params[GAMMA].grad.data;
  float *dbeta = t->l->params[BETA].grad.data;
  dbeta[c] = (float)sums[0];
  dgamma[c] = (float)sums[1];
  if (t->run->sgd_fused) {
    gamma[c] -= t->run->sgd_lr * dgamma[c];
    beta[c] -= t->run->sgd_lr * dbeta[c];
  }
}

static void pooled_backward_in_order(const bn_pass *t, int64_t begin,
                                     int64_t end) {
  const batchnorm_layer *b = (const batchnorm_layer *)t->l;
  double sums[SUM_BLOCK][2];
  for (int64_t c0 = begin; c0 < end; c0 += SUM_BLOCK) {
    int64_t count = end - c0 < SUM_BLOCK ? end - c0 : SUM_BLOCK;
    pooled_grads_in_order(b, t, c0, count, sums);
    pooled_input_grads_in_order(b, t, c0, count, sums, t->run->training);
    for (int64_t k = 0; k < count; k++)
      finish_channel(t, c0 + k, sums[k]);
  }
}

/* Channels [begin, end) of backward: the sums, dx, the gradients (or
 * the fused SGD step). */
static void backward_channels(void *ctx, int64_t begin, int64_t end) {
  const bn_pass *t = ctx;
  const batchnorm_layer *b = (const batchnorm_layer *)t->l;
  const float *gamma = t->l->params[GAMMA].value.data;
  /* a fused ReLU's dy is taken through it on the fly, from its output y,
   * in both loops: y of a channel is read before that channel's dx is
   * written, and dx may be y's buffer (dx_over_output) */
  const float *relu_y = b->base.fused_activation != NULL ? t->relu_y : NULL;
  if (t->codes != NULL && t->dx != NULL) {
    pooled_backward_in_order(t, begin, end);
    return;
  }
  for (int64_t c = begin; c < end; c++) {
    double sums[2];
    if (t->codes != NULL)
      pooled_channel_grads(b, t, c, &sums[0], &sums[1]);
    else
      channel_grads(b, t->x, t->dy, relu_y, t->n, c, t->mu[c], t->r[c],
                    &sums[0], &sums[1]);
    if (t->dx != NULL)
      channel_input_grad(b, t->x, t->dy, relu_y, t->dx, t->n, c, t->mu[c],
                         t->r[c], gamma[c], sums, t->run->training);
    finish_channel(t, c, sums);
  }
}

static nnlib_status batchnorm_backward(nnlib_layer *l, const nnlib__run *run,
                                       const float *x, const float *y,
                                       float *dy, float *dx, int64_t n) {
  const batchnorm_layer *b = (const batchnorm_layer *)l;
  float *mu = run->workspace, *r = mu + b->channels;
  if (!run->training) /* forward left the running statistics there too, but
                         a caller may have changed them since */
    NNLIB_TRY(running_statistics(l, mu, r));
  bn_pass t = {.l = l, .x = x, .relu_y = y, .dy = dy, .dx = dx, .mu = mu,
               .r = r, .n = n, .run = run};
  t.codes = pool_codes(b, run);
  nnlib__parallel_for(b->channels, per_part(2 * n * b->positions),
                      backward_channels, &t);
  return NNLIB_OK;
}

static const nnlib__layer_ops batchnorm_ops = {
    .kind = NNLIB_LAYER_BATCHNORM,
    .plan = batchnorm_plan,
    .init = batchnorm_init,
    .forward = batchnorm_forward,
    .backward = batchnorm_backward,
    .name = batchnorm_name,
    .check_state = batchnorm_check_state,
    .fuses_sgd = true,
    /* backward reads x and dy, and y (a fused ReLU's output) for a
     * channel before it writes that channel's dx */
    .dx_over_output = true,
};

bool nnlib__layer_is_batchnorm(const nnlib_layer *l) {
  return l != NULL && l->ops == &batchnorm_ops;
}

nnlib_status nnlib_batchnorm_create(nnlib_layer **out, float momentum,
                                    float epsilon) {
  NNLIB_CHECK_ARG(out != NULL, "nnlib_batchnorm_create: out is NULL");
  *out = NULL;
  NNLIB_CHECK_ARG(momentum >= 0.0f && momentum <= 1.0f,
                  "batchnorm: momentum %g must be in [0, 1]",
                  (double)momentum);
  NNLIB_CHECK_ARG(epsilon > 0.0f && isfinite(epsilon),
                  "batchnorm: epsilon %g must be finite and > 0",
                  (double)epsilon);
  batchnorm_layer *b = nnlib__alloc(sizeof *b);
  if (b == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "nnlib_batchnorm_create: no memory");
  nnlib__layer_init(&b->base, &batchnorm_ops);
  b->momentum = momentum + 0.0f; /* -0 becomes +0: one spelling in files */
  b->epsilon = epsilon;
  *out = &b->base;
  return NNLIB_OK;
}

/* ------------------------- model description and model file (codec) */

/* PyTorch's defaults */
#define BATCHNORM_DEFAULT_MOMENTUM 0.1f
#define BATCHNORM_DEFAULT_EPSILON 1e-5f

/* "batchnorm", "batchnorm:MOMENTUM" or "batchnorm:MOMENTUM:EPSILON" */
static nnlib_status batchnorm_parse_spec(const nnlib__spec_item *item,
                                         nnlib_layer **out) {
  float momentum = BATCHNORM_DEFAULT_MOMENTUM;
  float epsilon = BATCHNORM_DEFAULT_EPSILON;
  NNLIB_TRY(nnlib__spec_fields(item, 1, 3));
  if (item->field_count >= 2)
    NNLIB_TRY(nnlib__spec_float(item, 1, &momentum));
  if (item->field_count == 3)
    NNLIB_TRY(nnlib__spec_float(item, 2, &epsilon));
  return nnlib_batchnorm_create(out, momentum, epsilon);
}

/* The shortest item that gives the same layer. */
static void batchnorm_write_spec(const nnlib_layer *l, nnlib__text *t) {
  const batchnorm_layer *b = (const batchnorm_layer *)l;
  nnlib__text_append(t, "batchnorm");
  bool default_eps = b->epsilon == BATCHNORM_DEFAULT_EPSILON;
  if (b->momentum == BATCHNORM_DEFAULT_MOMENTUM && default_eps)
    return;
  nnlib__text_append(t, ":");
  nnlib__text_append_float(t, b->momentum);
  if (default_eps)
    return;
  nnlib__text_append(t, ":");
  nnlib__text_append_float(t, b->epsilon);
}

/* config: f32 momentum, f32 epsilon: 8 bytes */
static void batchnorm_write_config(const nnlib_layer *l, nnlib__writer *w) {
  const batchnorm_layer *b = (const batchnorm_layer *)l;
  nnlib__put_f32(w, b->momentum);
  nnlib__put_f32(w, b->epsilon);
}

static nnlib_status batchnorm_read_config(nnlib__reader *r,
                                          nnlib_layer **out) {
  float momentum, epsilon;
  NNLIB_TRY(nnlib__get_f32(r, &momentum));
  NNLIB_TRY(nnlib__get_f32(r, &epsilon));
  return nnlib_batchnorm_create(out, momentum, epsilon);
}

const nnlib__layer_codec nnlib__batchnorm_codec = {
    .kind = NNLIB_LAYER_BATCHNORM,
    .spec_names = {"batchnorm"},
    .parse_spec = batchnorm_parse_spec,
    .write_spec = batchnorm_write_spec,
    .write_config = batchnorm_write_config,
    .read_config = batchnorm_read_config,
};
