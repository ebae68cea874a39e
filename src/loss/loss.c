/* loss.c - mean squared error, binary cross-entropy on logits and softmax
 * cross-entropy on logits, each with its gradient, written to be finite for
 * any finite input. Reductions follow PyTorch's defaults: MSE and BCE average
 * over all N*K elements, softmax cross-entropy over the N samples. */
/* no FMA contraction under clang either (GCC makes none in ISO C mode):
 * the same bits from every clone of the row loops (core/vecmath.h) */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif
#include "loss/loss.h"
#include "core/vecmath.h"

#include <math.h>

/* L = mean (y - t)^2,  dL/dy = 2 (y - t) / (N K) */
static void mse(const float *y, const float *t, float *dy, int64_t count,
                double *loss) {
  double sum = 0.0;
  float scale = 2.0f / (float)count;
  for (int64_t i = 0; i < count; i++) {
    float diff = y[i] - t[i];
    sum += (double)diff * diff;
    if (dy != NULL)
      dy[i] = scale * diff;
  }
  *loss = sum / (double)count;
}

/* Per element, on logit x and target t:
 *   l = max(x, 0) - x t + log(1 + e^{-|x|})   (never exponentiates a large x)
 *   dl/dx = sigmoid(x) - t                                                   */
static void bce_logits(const float *x, const float *t, float *dy,
                       int64_t count, double *loss) {
  double sum = 0.0;
  float scale = 1.0f / (float)count;
  for (int64_t i = 0; i < count; i++) {
    float xi = x[i], ti = t[i];
    float e = expf(-fabsf(xi));
    sum += (double)(fmaxf(xi, 0.0f) - xi * ti + log1pf(e));
    if (dy != NULL) {
      float sig = xi >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
      dy[i] = scale * (sig - ti);
    }
  }
  *loss = sum / (double)count;
}

double nnlib__target_index(const nnlib__target *t, int64_t r) {
  if (t->is_int32)
    return (double)((const int32_t *)(const void *)t->data)[r];
  return (double)t->data[r];
}

/* The row loops of softmax cross-entropy keep LANES independent maxima
 * and sums, so GCC vectorises them (one accumulator is a serial chain it
 * must keep in order). */
enum { LANES = 8 };

/* max z over a row of k >= 1 logits */
static inline float row_max(const float *restrict z, int64_t k) {
  float lanes[LANES];
  for (int i = 0; i < LANES; i++)
    lanes[i] = z[0];
  int64_t c = 0;
  for (; c + LANES <= k; c += LANES)
    for (int i = 0; i < LANES; i++)
      lanes[i] = z[c + i] > lanes[i] ? z[c + i] : lanes[i];
  float m = lanes[0];
  for (int i = 1; i < LANES; i++)
    m = lanes[i] > m ? lanes[i] : m;
  for (; c < k; c++)
    m = z[c] > m ? z[c] : m;
  return m;
}

/* e^{z - m} for z - m <= 0 (or NaN), through vecmath's branch-free e^z in
 * double (within 3.1e-9 relative: a twentieth of a float ulp) so the loop
 * vectorises where expf's calls would not. Below -700 e^z is far under
 * the smallest float, so the argument is clamped there (the exponent field
 * cannot wrap); NaN fails the test and stays NaN. */
static inline double shifted_exp(float z, float m) {
  float a = z - m;
  return nnlib__exp_for_float((double)nnlib__select_f(a < -700.0f, -700.0f, a));
}

/* sum over the row of e^{z_c - m} in double; e (NULL: not kept) gets each
 * term rounded to float */
NNLIB__VECTOR_CLONES
static double row_exp_sum(const float *restrict z, float *restrict e,
                          int64_t k, float m) {
  double lanes[LANES] = {0};
  int64_t c = 0;
  if (e != NULL)
    for (; c + LANES <= k; c += LANES)
      for (int i = 0; i < LANES; i++) {
        float v = (float)shifted_exp(z[c + i], m);
        e[c + i] = v;
        lanes[i] += v;
      }
  else
    for (; c + LANES <= k; c += LANES)
      for (int i = 0; i < LANES; i++)
        lanes[i] += (float)shifted_exp(z[c + i], m);
  double s = 0.0;
  for (int i = 0; i < LANES; i++)
    s += lanes[i];
  for (; c < k; c++) {
    float v = (float)shifted_exp(z[c], m);
    if (e != NULL)
      e[c] = v;
    s += v;
  }
  return s;
}

/* dl/dz = scale (p tsum - t) over a row held as e^{z - m} in d, p = e / s
 * (times 1/s in double: within a double ulp of the quotient); t NULL: an
 * index target, whose one label gets its -1 afterwards */
NNLIB__VECTOR_CLONES
static void row_gradient(float *restrict d, const float *restrict t,
                         int64_t k, double s, float tsum, float scale) {
  double inv = 1.0 / s;
  if (t != NULL)
    for (int64_t c = 0; c < k; c++)
      d[c] = scale * ((float)(d[c] * inv) * tsum - t[c]);
  else
    for (int64_t c = 0; c < k; c++)
      d[c] = scale * ((float)(d[c] * inv) * tsum);
}

/* Softmax cross-entropy goes over the pass pool in chunks of CHUNK_ROWS
 * rows: each chunk sums its rows' losses in row order into a partial of
 * its own, and the partials are added in chunk order, so the total does
 * not depend on the thread count. At most CHUNKS_AT_ONCE partials live on
 * the caller's stack; larger batches take several rounds. A part holds at
 * least MIN_PART_VALUES logits (some 30 microseconds of work). */
enum { CHUNK_ROWS = 32, CHUNKS_AT_ONCE = 256, MIN_PART_VALUES = 32768 };

typedef struct softmax_ce_pass {
  const float *z;
  const nnlib__target *target;
  float *dy;
  int64_t n, k, first_chunk;
  float scale;
  double *partial; /* one per chunk of the round */
} softmax_ce_pass;

/* Loss of row r (its share before the mean), and its gradient into dy
 * when given. The target is valid (checked before the pass).
 *   l = sum_k t_k (lse(z) - z_k),  lse(z) = m + log sum e^{z - m}, m = max z
 *   dl/dz_k = p_k sum(t) - t_k,    p = softmax(z)                         */
static double softmax_ce_row(const softmax_ce_pass *p, int64_t r) {
  int64_t k = p->k;
  const float *zr = p->z + r * k, *t = p->target->data;
  bool is_index = p->target->is_index;
  float m = row_max(zr, k);
  /* e^{z - m} is kept in dy (when given) to form p without a second exp */
  float *dr = p->dy != NULL ? p->dy + r * k : NULL;
  double s = row_exp_sum(zr, dr, k, m);
  double lse = m + log(s), loss = 0.0, tsum = 1.0;
  int64_t label = -1;
  if (is_index) {
    label = (int64_t)nnlib__target_index(p->target, r);
    loss = lse - zr[label];
  } else {
    tsum = 0.0;
    for (int64_t c = 0; c < k; c++) {
      float tc = t[r * k + c];
      tsum += tc;
      if (tc != 0.0f)
        loss += tc * (lse - zr[c]);
    }
  }
  if (dr != NULL) {
    float p_label = is_index ? (float)(dr[label] * (1.0 / s)) : 0.0f;
    row_gradient(dr, is_index ? NULL : t + r * k, k, s, (float)tsum,
                 p->scale);
    if (is_index)
      dr[label] = p->scale * (p_label - 1.0f);
  }
  return loss;
}

static void softmax_ce_range(void *ctx, int64_t begin, int64_t end) {
  const softmax_ce_pass *p = ctx;
  for (int64_t c = begin; c < end; c++) {
    int64_t r0 = (p->first_chunk + c) * CHUNK_ROWS;
    int64_t r1 = r0 + CHUNK_ROWS < p->n ? r0 + CHUNK_ROWS : p->n;
    double sum = 0.0;
    for (int64_t r = r0; r < r1; r++)
      sum += softmax_ce_row(p, r);
    p->partial[c] = sum;
  }
}

nnlib_status nnlib__check_index_targets(const nnlib__target *target, int64_t n,
                                        int64_t k) {
  for (int64_t r = 0; r < n; r++) {
    double v = nnlib__target_index(target, r);
    if (!(v >= 0.0 && v < (double)k && v == floor(v)))
      return nnlib__error(NNLIB_ERR_OUT_OF_RANGE,
                          "the target of row %lld is %g, must be a class "
                          "index in 0..%lld",
                          (long long)r, v, (long long)(k - 1));
  }
  return NNLIB_OK;
}

/* The loss per row as softmax_ce_row, averaged over the N rows. */
static nnlib_status softmax_ce(const float *z, const nnlib__target *target,
                               float *dy, int64_t n, int64_t k, double *loss) {
  if (target->is_index)
    NNLIB_TRY(nnlib__check_index_targets(target, n, k));
  double partial[CHUNKS_AT_ONCE], total = 0.0;
  softmax_ce_pass p = {z, target, dy, n, k, 0, 1.0f / (float)n, partial};
  int64_t chunks = (n + CHUNK_ROWS - 1) / CHUNK_ROWS;
  int64_t chunk_values = CHUNK_ROWS * k;
  int64_t min_chunks = nnlib__parallel_grain(chunk_values, MIN_PART_VALUES);
  for (; p.first_chunk < chunks; p.first_chunk += CHUNKS_AT_ONCE) {
    int64_t count = chunks - p.first_chunk < CHUNKS_AT_ONCE
                        ? chunks - p.first_chunk
                        : CHUNKS_AT_ONCE;
    nnlib__parallel_for(count, min_chunks, softmax_ce_range, &p);
    for (int64_t c = 0; c < count; c++)
      total += partial[c];
  }
  *loss = total / (double)n;
  return NNLIB_OK;
}

nnlib_status nnlib__loss(nnlib_loss loss, const float *y, nnlib__target target,
                         float *dy, int64_t n, int64_t k, double *loss_out) {
  switch (loss) {
  case NNLIB_LOSS_MSE:
    mse(y, target.data, dy, n * k, loss_out);
    return NNLIB_OK;
  case NNLIB_LOSS_BCE_LOGITS:
    bce_logits(y, target.data, dy, n * k, loss_out);
    return NNLIB_OK;
  case NNLIB_LOSS_SOFTMAX_CE:
    return softmax_ce(y, &target, dy, n, k, loss_out);
  case NNLIB_LOSS_NONE:
    break;
  }
  return nnlib__error(NNLIB_ERR_WRONG_STATE, "model has no loss");
}
