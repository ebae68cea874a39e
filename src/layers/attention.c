/* attention.c - multi-head self-attention on [T, D] samples, as PyTorch's
 * nn.MultiheadAttention(D, heads, batch_first=True) called as mha(x, x, x),
 * with hd = D / heads and R = n T rows:
 *
 * forward:  QKV = X W_in^T + b_in        [R,D] x [D,3D]      one GEMM
 *           per sample and head h (Q_h, K_h, V_h read in place from the
 *           packed rows q | k | v, ld 3D, at columns h hd, D + h hd,
 *           2D + h hd):
 *             S   = Q_h K_h^T / sqrt(hd) [T,hd] x [hd,T]     one GEMM
 *             P   = softmax(S + causal mask), row by row, one pass
 *             P~  = P * M                dropout (training): M = 0 or
 *                                        1/(1-rate), kept for backward
 *             O_h = P~ V_h               [T,T] x [T,hd]      one GEMM into
 *                                        columns h hd of O [R,D]
 *           Y = O W_out^T + b_out        [R,D] x [D,D]       one GEMM
 *   2 + 2 n heads GEMMs; with the causal mask and without dropout each
 *   per-head one goes as ceil(T / 32) blocks that skip the masked scores
 *   (score_block, below).
 *
 * backward: dW_out = dY^T O, db_out = column sums of dY, dO = dY W_out;
 *           per sample and head: dV_h = P~^T dO_h, dP~ = dO_h V_h^T,
 *             dP = dP~ * M, dS = P * (dP - rowsum(dP * P)),
 *             dQ_h = dS K_h / sqrt(hd), dK_h = dS^T Q_h / sqrt(hd),
 *             all written into dQKV [R,3D] where QKV had them;
 *           dW_in = dQKV^T X, db_in = column sums of dQKV, dX = dQKV W_in.
 *   4 + 4 n heads GEMMs (3 + 4 n heads without dX), the per-head ones
 *   in blocks as in forward.
 *
 * Decoding (run->cache, causal only): the cache of a sample holds the keys
 * [T,D] then the values [T,D] of every position so far; a call with
 * positions [p, p+S) computes QKV for its S rows, stores their keys and
 * values at rows p.. of the cache, and query i (position p + i) attends
 * over cache rows 0 .. p + i: scores [S, p+S] per head.
 *
 * Parameters, PyTorch's layout and order: in_proj_weight [3D,D],
 * in_proj_bias [3D], out_proj.weight [D,D], out_proj.bias [D]. */
/* no FMA contraction under clang either (GCC makes none in ISO C mode):
 * the same bits from every clone of the softmax loops (core/vecmath.h) */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif
#include "layers/layer.h"
#include "core/vecmath.h"

#include <math.h>
#include <string.h>

/* Workspace areas, in floats from the start; what backward needs from
 * forward first (QKV, P per sample and head, the dropout masks, O), then
 * backward's own scratch. Sized for the planned batch, they hold any call
 * of n <= max batch samples of S <= T positions (scores [S, p + S] fit a
 * head's T x T block). */
typedef struct attention_areas {
  int64_t qkv, p, mask, o;   /* forward, kept for backward */
  int64_t dqkv, d_o, dp, pd; /* backward scratch (dp: dP of one head, or of
                                a group's heads without dropout; pd: P~ of
                                one head) */
  int64_t total;
} attention_areas;

typedef struct attention_layer {
  nnlib_layer base;
  int64_t heads;
  nnlib_attention_options o; /* as created */
  /* set by plan */
  int64_t t, d, hd;
  attention_areas areas;
} attention_layer;

static const char *attention_name(const nnlib_layer *l) {
  (void)l;
  return "attention";
}

/* Training and whole-sequence passes without dropout go in groups of
 * samples: every per-head GEMM of the group on the calling thread, then
 * one softmax pass (forward or backward) over the group's (sample, head)
 * score blocks on the pass pool, then the next GEMMs. A group of
 * GROUP_BLOCKS blocks (1 MB of scores at T = 128) stays in cache between
 * the GEMMs and the pass. */
enum { GROUP_BLOCKS = 16 };

static int64_t samples_per_group(int64_t heads) {
  return heads >= GROUP_BLOCKS ? 1 : (GROUP_BLOCKS + heads - 1) / heads;
}

/* Lays the areas out for a batch of n [t, d] samples; false on overflow. */
static bool attention_layout(const attention_layer *a, int64_t n,
                             attention_areas *out) {
  int64_t rows, tt, heads_tt, qkv, o, p, group_dp;
  bool dropout = a->o.dropout > 0.0f;
  int64_t group = samples_per_group(a->heads);
  if (nnlib__mul_overflows(n, a->t, &rows) ||
      nnlib__mul_overflows(rows, 3 * a->d, &qkv) ||
      nnlib__mul_overflows(rows, a->d, &o) ||
      nnlib__mul_overflows(a->t, a->t, &tt) ||
      nnlib__mul_overflows(tt, a->heads, &heads_tt) ||
      nnlib__mul_overflows(heads_tt, n, &p) ||
      nnlib__mul_overflows(heads_tt, n < group ? n : group, &group_dp))
    return false;
  /* dp: dP of one head with dropout, of a group's heads without */
  int64_t sizes[8] = {qkv, p,  dropout ? p : 0, o,
                      qkv, o,  dropout ? tt : group_dp, dropout ? tt : 0};
  int64_t *offsets[8] = {&out->qkv, &out->p,  &out->mask, &out->o,
                         &out->dqkv, &out->d_o, &out->dp,  &out->pd};
  int64_t at = 0;
  for (int i = 0; i < 8; i++) {
    *offsets[i] = at;
    if (sizes[i] > INT64_MAX - at)
      return false;
    at += sizes[i];
  }
  out->total = at;
  return (uint64_t)at <= SIZE_MAX / sizeof(float);
}

static nnlib_status attention_plan(nnlib_layer *l, const nnlib__shape *in,
                                   int64_t max_batch) {
  attention_layer *a = (attention_layer *)l;
  if (in->rank != 2) {
    char got[160];
    nnlib__shape_text(in, got, sizeof got);
    return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                        "attention: input is %s, must be [T, D] (rank 2, "
                        "got rank %zu)",
                        got, in->rank);
  }
  int64_t t = in->dims[0], d = in->dims[1];
  if (d % a->heads != 0)
    return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                        "attention: D = %lld is not divisible by heads = %lld",
                        (long long)d, (long long)a->heads);
  if (d > NNLIB__BLAS_DIM_MAX / 3 || t > NNLIB__BLAS_DIM_MAX)
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "attention: [%lld, %lld] exceeds the BLAS limit",
                        (long long)t, (long long)d);
  a->t = t;
  a->d = d;
  a->hd = d / a->heads;
  int64_t cache;
  if (!attention_layout(a, max_batch, &a->areas) ||
      nnlib__mul_overflows(2 * t, d, &cache))
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "attention: workspace for a batch of %lld [%lld, %lld] "
                        "samples overflows",
                        (long long)max_batch, (long long)t, (long long)d);
  l->out_shape = *in;
  l->workspace_floats = (size_t)a->areas.total;
  l->cache_floats = (size_t)cache;
  int64_t w_in[2] = {3 * d, d}, b_in = 3 * d, w_out[2] = {d, d};
  nnlib__layer_declare_param(l, "in_proj_weight", w_in, 2);
  if (a->o.with_bias)
    nnlib__layer_declare_param(l, "in_proj_bias", &b_in, 1);
  nnlib__layer_declare_param(l, "out_proj.weight", w_out, 2);
  if (a->o.with_bias)
    nnlib__layer_declare_param(l, "out_proj.bias", &d, 1);
  return NNLIB_OK;
}

/* The parameters by role (biases NULL without with_bias). */
typedef struct attention_params {
  nnlib__param *w_in, *b_in, *w_out, *b_out;
} attention_params;

static attention_params params_of(nnlib_layer *l) {
  bool bias = ((attention_layer *)l)->o.with_bias != 0;
  attention_params p = {&l->params[0], bias ? &l->params[1] : NULL,
                        &l->params[bias ? 2 : 1], bias ? &l->params[3] : NULL};
  return p;
}

static void fill_uniform(nnlib__param *p, float limit, nnlib__rng *rng) {
  for (int64_t i = 0; i < p->size; i++)
    p->value.data[i] = limit * (2.0f * nnlib__rng_uniform(rng) - 1.0f);
}

/* PyTorch's: xavier_uniform_ on in_proj_weight (fan_in D, fan_out 3D),
 * out_proj.weight as nn.Linear's kaiming_uniform_(a = sqrt 5), which is
 * U(-1/sqrt(D), 1/sqrt(D)), and zero biases. */
static void attention_init(nnlib_layer *l, nnlib__rng *rng) {
  const attention_layer *a = (const attention_layer *)l;
  attention_params p = params_of(l);
  float d = (float)a->d;
  fill_uniform(p.w_in, sqrtf(6.0f / (d + 3.0f * d)), rng);
  fill_uniform(p.w_out, 1.0f / sqrtf(d), rng);
  if (p.b_in != NULL) {
    memset(p.b_in->value.data, 0, (size_t)p.b_in->size * sizeof(float));
    memset(p.b_out->value.data, 0, (size_t)p.b_out->size * sizeof(float));
  }
}

/* Dropout on P only when training with a generator, a rate above 0 and not
 * decoding. */
static bool drops(const attention_layer *a, const nnlib__run *run) {
  return run->training && run->rng != NULL && a->o.dropout > 0.0f &&
         run->cache == NULL;
}

/* The passes between the GEMMs run over the pass pool. A part holds at
 * least MIN_PART_VALUES floats of work (some 30 microseconds for these
 * cheap passes), so a small call stays on the calling thread. Every index
 * of a split (a row, a block of columns, a score block) is computed alone,
 * so the bits never depend on the thread count. */
enum { MIN_PART_VALUES = 32768 };

static int64_t min_part(int64_t values_per_index) {
  return nnlib__parallel_grain(values_per_index, MIN_PART_VALUES);
}

/* The row loops below keep LANES independent partial maxima and sums, so
 * GCC vectorises them without reassociating (a float reduction in one
 * accumulator is a serial chain it must keep in order). */
enum { LANES = 8 };

/* max of row[0 .. count), count >= 1; a NaN in row[0] comes through, one
 * elsewhere reaches the softmax through e^(NaN - max) */
static inline float row_max(const float *restrict row, int64_t count) {
  float lanes[LANES];
  for (int k = 0; k < LANES; k++)
    lanes[k] = row[0];
  int64_t j = 0;
  for (; j + LANES <= count; j += LANES)
    for (int k = 0; k < LANES; k++)
      lanes[k] = row[j + k] > lanes[k] ? row[j + k] : lanes[k];
  float max = lanes[0];
  for (int k = 1; k < LANES; k++)
    max = lanes[k] > max ? lanes[k] : max;
  for (; j < count; j++)
    max = row[j] > max ? row[j] : max;
  return max;
}

/* sum of a[j] b[j] over [0, count); b NULL: of a[j] */
static inline float row_dot(const float *restrict a, const float *restrict b,
                            int64_t count) {
  float lanes[LANES] = {0};
  int64_t j = 0;
  if (b != NULL)
    for (; j + LANES <= count; j += LANES)
      for (int k = 0; k < LANES; k++)
        lanes[k] += a[j + k] * b[j + k];
  else
    for (; j + LANES <= count; j += LANES)
      for (int k = 0; k < LANES; k++)
        lanes[k] += a[j + k];
  float sum = 0.0f;
  for (int k = 0; k < LANES; k++)
    sum += lanes[k];
  for (; j < count; j++)
    sum += b != NULL ? a[j] * b[j] : a[j];
  return sum;
}

/* e^z for z = score - max <= 0 (or NaN) in float with fmaf: e^z = 2^n (1
 * + q) (core/vecmath.h's nnlib__expm1_float_parts, q within about 0.6
 * ulp), so the result is within about 1.1 ulp and 16 lanes a vector run
 * under AVX-512F. 2^n goes on as 2^max(n, -63), exact, then the rest,
 * which rounds a subnormal result once. Below -104 e^z rounds to 0, so z
 * is clamped there; NaN fails the test and stays NaN. */
static inline float softmax_exp(float z) {
  float clamped = nnlib__select_f(z < -104.0f, -104.0f, z);
  int32_t e; /* n + 127 */
  float q = nnlib__expm1_float_parts(clamped, &e);
  int32_t big = nnlib__max_i32(e, 64);
  return ((1.0f + q) * nnlib__pow2_biased(big)) *
         nnlib__pow2_biased(e - big + 127);
}

/* One fused pass over the scaled scores s [tq, tk] (ld tk): row i is query
 * position first + i, which sees keys 0 .. first + i under the causal mask;
 * each row becomes its softmax, masked entries exactly 0 (their scores are
 * never read, so none is exponentiated). */
NNLIB__GATE_CLONES
static void masked_softmax(float *restrict s, int64_t tq, int64_t tk,
                           int64_t first, bool causal) {
  for (int64_t i = 0; i < tq; i++) {
    float *restrict row = s + i * tk;
    int64_t seen = causal ? first + i + 1 : tk;
    float max = row_max(row, seen);
    for (int64_t j = 0; j < seen; j++)
      row[j] = softmax_exp(row[j] - max);
    float inv = 1.0f / row_dot(row, NULL, seen);
    for (int64_t j = 0; j < seen; j++)
      row[j] *= inv;
    if (seen < tk)
      memset(row + seen, 0, (size_t)(tk - seen) * sizeof(float));
  }
}

/* Where one sample's keys and values are read from: the packed QKV rows
 * (ld 3D) in a pass over whole sequences, the cache (ld D) in decoding. */
typedef struct kv_source {
  const float *k, *v; /* column 0 of head 0 */
  int64_t ld;
  int64_t count; /* key positions */
} kv_source;

/* Attention of one sample's tq queries (q: its first row in QKV, ld 3D)
 * at positions first.., head by head, into its rows of O (ld D). p and
 * mask are the sample's areas (heads blocks of t*t floats; mask NULL
 * without dropout), pd one [tq, tk] scratch. */
static nnlib_status attend_sample(const attention_layer *a,
                                  const nnlib__run *run, const float *q,
                                  const kv_source *kv, int64_t tq,
                                  int64_t first, float *p, float *mask,
                                  float *pd, float *o) {
  int64_t d = a->d, hd = a->hd, tk = kv->count, block = a->t * a->t;
  float scale = 1.0f / sqrtf((float)hd), keep = 1.0f / (1.0f - a->o.dropout);
  for (int64_t h = 0; h < a->heads; h++) {
    float *ph = p + h * block;
    NNLIB_TRY(nnlib__gemm(NNLIB__NO_TRANS, NNLIB__TRANS, tq, tk, hd, scale,
                          q + h * hd, 3 * d, kv->k + h * hd, kv->ld, 0.0f, ph,
                          tk));
    masked_softmax(ph, tq, tk, first, a->o.causal != 0);
    const float *weights = ph;
    if (mask != NULL) {
      float *mh = mask + h * block;
      nnlib__rng_keep_mask(run->rng, a->o.dropout, keep, mh, tq * tk);
      for (int64_t i = 0; i < tq * tk; i++)
        pd[i] = ph[i] * mh[i];
      weights = pd;
    }
    NNLIB_TRY(nnlib__gemm(NNLIB__NO_TRANS, NNLIB__NO_TRANS, tq, hd, tk, 1.0f,
                          weights, tk, kv->v + h * hd, kv->ld, 0.0f,
                          o + h * hd, d));
  }
  return NNLIB_OK;
}

/* The softmax pass over score blocks [first_block, ...) of a group: in the
 * forward pass the masked softmax of each [tq, tk] block of p, in the
 * backward pass dS from P (p) and dP (dp) over each [t, t] block of dp. */
typedef struct softmax_pass {
  float *p;           /* P blocks, block_stride apart (backward reads them) */
  float *dp;          /* backward: dP blocks, tq tk apart; NULL: forward */
  int64_t block_stride, tq, tk;
  bool causal;
} softmax_pass;

/* dS = P * (dP - rowsum(dP * P)) in place over dp [t, t]: the softmax's
 * Jacobian. Masked entries have P = 0 and get dS = 0: under the causal
 * mask row i only reads and computes its keys 0..i and zeroes the rest. */
NNLIB__VECTOR_CLONES
static void softmax_backward(const float *restrict p, float *restrict dp,
                             int64_t t, bool causal) {
  for (int64_t i = 0; i < t; i++) {
    const float *restrict pr = p + i * t;
    float *restrict dr = dp + i * t;
    int64_t seen = causal ? i + 1 : t;
    float dot = row_dot(dr, pr, seen);
    for (int64_t j = 0; j < seen; j++)
      dr[j] = pr[j] * (dr[j] - dot);
    if (seen < t)
      memset(dr + seen, 0, (size_t)(t - seen) * sizeof(float));
  }
}

static void softmax_range(void *ctx, int64_t begin, int64_t end) {
  const softmax_pass *s = ctx;
  for (int64_t b = begin; b < end; b++) {
    float *p = s->p + b * s->block_stride;
    if (s->dp != NULL)
      softmax_backward(p, s->dp + b * s->tq * s->tk, s->tq, s->causal);
    else
      masked_softmax(p, s->tq, s->tk, 0, s->causal);
  }
}

static void softmax_blocks(float *p, float *dp, int64_t blocks,
                           int64_t block_stride, int64_t tq, int64_t tk,
                           bool causal) {
  softmax_pass s = {p, dp, block_stride, tq, tk, causal};
  nnlib__parallel_for(blocks, min_part(tq * tk), softmax_range, &s);
}

/* Under the causal mask the scores above the diagonal are never used, so
 * the passes over whole sequences skip them: the queries go in blocks of
 * CAUSAL_BLOCK rows, and block [r0, r1) multiplies with keys [0, r1)
 * only; in backward key block [c0, c1) gathers from queries [c0, t) only.
 * At T = 128 that is 5/8 of the per-head multiply-adds, and the blocks'
 * products (at most 2^17 of them) run whole on the calling thread. Blocks of
 * 32 rows trained the benchmark's gpt 2% faster than blocks of 64 (with
 * 1/8 more to do) on one thread, and as fast on two. What a
 * block leaves unwritten in a score row lies past the row's last key,
 * which the softmax passes set to 0 (masked_softmax, softmax_backward).
 * Without the mask there is one block of all t rows and keys. */
enum { CAUSAL_BLOCK = 32 };

typedef struct score_block {
  int64_t r0, r1; /* query rows [r0, r1), and as key block columns */
  int64_t keys;   /* queries r0.. see keys [0, keys) */
  int64_t from;   /* key block [r0, r1) is seen from queries [from, t) */
} score_block;

static int64_t score_blocks(const attention_layer *a, int64_t t) {
  return a->o.causal ? (t + CAUSAL_BLOCK - 1) / CAUSAL_BLOCK : 1;
}

static score_block score_block_at(const attention_layer *a, int64_t i,
                                  int64_t t) {
  score_block s = {0, t, t, 0};
  if (a->o.causal) {
    s.r0 = i * CAUSAL_BLOCK;
    s.r1 = s.r0 + CAUSAL_BLOCK < t ? s.r0 + CAUSAL_BLOCK : t;
    s.keys = s.r1;
    s.from = s.r0;
  }
  return s;
}

/* The per-head products of a group go to the GEMM seam in batches
 * (nnlib__gemm_batch), which spreads them over nnlib's threads call by
 * call: each is below the size worth splitting (2^18 multiply-adds at T
 * = 128, hd = 32), so one at a time they ran on the calling thread alone.
 * A batch holds up to BATCH_CALLS calls (a group's S or O products at T =
 * 128: 16 heads' blocks of 4); the calls of one batch write disjoint
 * blocks. */
enum { BATCH_CALLS = 64 };

typedef struct gemm_batch {
  nnlib__gemm_call call[BATCH_CALLS];
  int64_t count;
} gemm_batch;

static nnlib_status batch_flush(gemm_batch *g) {
  nnlib_status st = nnlib__gemm_batch(g->call, g->count);
  g->count = 0;
  return st;
}

/* C = alpha op(A) op(B) + beta C into the batch, as nnlib__gemm's
 * arguments. Beta is 0 for the score blocks (P, dP) and 1 for the head
 * columns of O and dQKV, which the group zeroes first in one pass: with
 * beta 0 OpenBLAS zeroes C itself, row by row of 32 floats, and that
 * took about 2% of the gpt training step. The same bits either way (its
 * kernel adds the product onto the zeroed C). */
static nnlib_status batch_add(gemm_batch *g, nnlib__trans ta, nnlib__trans tb,
                              int64_t m, int64_t n, int64_t k, float alpha,
                              const float *a, int64_t lda, const float *b,
                              int64_t ldb, float beta, float *c, int64_t ldc) {
  nnlib__gemm_call call = {ta,  tb, m,   n,    k, alpha, a,
                           lda, b,  ldb, beta, c, ldc};
  g->call[g->count++] = call;
  return g->count == BATCH_CALLS ? batch_flush(g) : NNLIB_OK;
}

/* S of one (sample, head) block by block: S = Q_h K_h^T / sqrt(hd), q its
 * first row in QKV (ld 3D), ph its [t, t] block of P. */
static nnlib_status head_scores(const attention_layer *a, gemm_batch *g,
                                const float *q, float *ph, int64_t t) {
  int64_t ld = 3 * a->d, blocks = score_blocks(a, t);
  float scale = 1.0f / sqrtf((float)a->hd);
  for (int64_t i = 0; i < blocks; i++) {
    score_block s = score_block_at(a, i, t);
    NNLIB_TRY(batch_add(g, NNLIB__NO_TRANS, NNLIB__TRANS, s.r1 - s.r0, s.keys,
                        a->hd, scale, q + s.r0 * ld, ld, q + a->d, ld, 0.0f,
                        ph + s.r0 * t, t));
  }
  return NNLIB_OK;
}

/* O_h += P V_h block by block onto zeroed rows, v the head's first value
 * in QKV, o its first column in O (ld D). */
static nnlib_status head_values(const attention_layer *a, gemm_batch *g,
                                const float *ph, const float *v, float *o,
                                int64_t t) {
  int64_t ld = 3 * a->d, blocks = score_blocks(a, t);
  for (int64_t i = 0; i < blocks; i++) {
    score_block s = score_block_at(a, i, t);
    NNLIB_TRY(batch_add(g, NNLIB__NO_TRANS, NNLIB__NO_TRANS, s.r1 - s.r0, a->hd,
                        s.keys, 1.0f, ph + s.r0 * t, t, v, ld, 1.0f,
                        o + s.r0 * a->d, a->d));
  }
  return NNLIB_OK;
}

/* Forward of samples [b0, b0 + count) over whole sequences of t positions
 * without dropout: S GEMMs of every (sample, head), one softmax pass over
 * their blocks, then the O GEMMs. */
static nnlib_status attend_group(const attention_layer *a, const float *qkv,
                                 float *p, float *o, int64_t b0, int64_t count,
                                 int64_t t) {
  int64_t d = a->d, hd = a->hd, block = a->t * a->t;
  gemm_batch g = {.count = 0};
  for (int64_t b = b0; b < b0 + count; b++)
    for (int64_t h = 0; h < a->heads; h++)
      NNLIB_TRY(head_scores(a, &g, qkv + b * t * 3 * d + h * hd,
                            p + (b * a->heads + h) * block, t));
  NNLIB_TRY(batch_flush(&g));
  softmax_blocks(p + b0 * a->heads * block, NULL, count * a->heads, block, t,
                 t, a->o.causal != 0);
  memset(o + b0 * t * d, 0, (size_t)(count * t * d) * sizeof(float));
  for (int64_t b = b0; b < b0 + count; b++)
    for (int64_t h = 0; h < a->heads; h++)
      NNLIB_TRY(head_values(a, &g, p + (b * a->heads + h) * block,
                            qkv + b * t * 3 * d + 2 * d + h * hd,
                            o + b * t * d + h * hd, t));
  return batch_flush(&g);
}

/* Decoding: keys and values of the call's rows into the sample's cache at
 * rows first.., then the sources of attention are the cache's rows. */
static kv_source cache_sample(const attention_layer *a, const float *qkv,
                              float *cache, int64_t tq, int64_t first) {
  int64_t d = a->d;
  float *keys = cache, *values = cache + a->t * d;
  for (int64_t i = 0; i < tq; i++) {
    memcpy(keys + (first + i) * d, qkv + i * 3 * d + d,
           (size_t)d * sizeof(float));
    memcpy(values + (first + i) * d, qkv + i * 3 * d + 2 * d,
           (size_t)d * sizeof(float));
  }
  kv_source kv = {keys, values, d, first + tq};
  return kv;
}

/* The positions of a call: tq per sample from run->position; refused when
 * they leave [0, T) or when decoding without the causal mask. */
static nnlib_status call_positions(const attention_layer *a,
                                   const nnlib__run *run, int64_t *tq,
                                   int64_t *first) {
  *tq = run->steps > 0 ? run->steps : a->t;
  *first = run->cache != NULL ? run->position : 0;
  if (run->steps < 0 || *first < 0 || *tq > a->t - *first)
    return nnlib__error(NNLIB_ERR_OUT_OF_RANGE,
                        "attention: positions %lld .. %lld are outside the "
                        "planned sequence of %lld",
                        (long long)*first, (long long)(*first + *tq - 1),
                        (long long)a->t);
  if (run->cache != NULL && !a->o.causal)
    return nnlib__error(NNLIB_ERR_UNSUPPORTED,
                        "attention: decoding with a cache needs causal "
                        "attention (a position would see later ones)");
  return NNLIB_OK;
}

static nnlib_status attention_forward(nnlib_layer *l, const nnlib__run *run,
                                      const float *x, float *y, int64_t n) {
  const attention_layer *a = (const attention_layer *)l;
  attention_params prm = params_of(l);
  int64_t tq, first, d = a->d;
  NNLIB_TRY(call_positions(a, run, &tq, &first));
  int64_t rows = n * tq, block = a->heads * a->t * a->t;
  const attention_areas w = a->areas;
  float *qkv = run->workspace + w.qkv, *o = run->workspace + w.o;
  bool dropout = drops(a, run);
  if (prm.b_in != NULL)
    nnlib__rows_broadcast(qkv, prm.b_in->value.data, rows, 3 * d,
                          MIN_PART_VALUES);
  NNLIB_TRY(nnlib__gemm(NNLIB__NO_TRANS, NNLIB__TRANS, rows, 3 * d, d, 1.0f, x,
                        d, prm.w_in->value.data, d,
                        prm.b_in != NULL ? 1.0f : 0.0f, qkv, 3 * d));
  int64_t group = samples_per_group(a->heads);
  for (int64_t b = 0; !dropout && run->cache == NULL && b < n; b += group)
    NNLIB_TRY(attend_group(a, qkv, run->workspace + w.p, o, b,
                           n - b < group ? n - b : group, tq));
  for (int64_t b = 0; (dropout || run->cache != NULL) && b < n; b++) {
    const float *q = qkv + b * tq * 3 * d;
    kv_source kv = {q + d, q + 2 * d, 3 * d, tq};
    if (run->cache != NULL)
      kv = cache_sample(a, q, run->cache + b * (int64_t)l->cache_floats, tq,
                        first);
    NNLIB_TRY(attend_sample(a, run, q, &kv, tq, first,
                            run->workspace + w.p + b * block,
                            dropout ? run->workspace + w.mask + b * block
                                    : NULL,
                            run->workspace + w.pd, o + b * tq * d));
  }
  if (prm.b_out != NULL)
    nnlib__rows_broadcast(y, prm.b_out->value.data, rows, d, MIN_PART_VALUES);
  NNLIB_TRY(nnlib__gemm(NNLIB__NO_TRANS, NNLIB__TRANS, rows, d, d, 1.0f, o, d,
                        prm.w_out->value.data, d,
                        prm.b_out != NULL ? 1.0f : 0.0f, y, d));
  return NNLIB_OK;
}

/* One sample's head-by-head backward from dO (its rows, ld D) into its
 * rows of dQKV (ld 3D), with QKV its rows of the forward's. */
static nnlib_status backward_sample(const attention_layer *a,
                                    const float *qkv, const float *p,
                                    const float *mask, const float *d_o,
                                    float *dqkv, float *dp, float *pd,
                                    int64_t t) {
  int64_t d = a->d, hd = a->hd, ld = 3 * d, block = a->t * a->t;
  float scale = 1.0f / sqrtf((float)hd);
  for (int64_t h = 0; h < a->heads; h++) {
    const float *ph = p + h * block, *weights = ph;
    const float *q = qkv + h * hd, *k = q + d, *v = q + 2 * d;
    if (mask != NULL) {
      const float *mh = mask + h * block;
      for (int64_t i = 0; i < t * t; i++)
        pd[i] = ph[i] * mh[i];
      weights = pd;
    }
    /* dV_h = P~^T dO_h  [t,t] x [t,hd] */
    NNLIB_TRY(nnlib__gemm(NNLIB__TRANS, NNLIB__NO_TRANS, t, hd, t, 1.0f,
                          weights, t, d_o + h * hd, d, 0.0f,
                          dqkv + 2 * d + h * hd, ld));
    /* dP~ = dO_h V_h^T  [t,hd] x [hd,t] */
    NNLIB_TRY(nnlib__gemm(NNLIB__NO_TRANS, NNLIB__TRANS, t, t, hd, 1.0f,
                          d_o + h * hd, d, v, ld, 0.0f, dp, t));
    if (mask != NULL) {
      const float *mh = mask + h * block;
      for (int64_t i = 0; i < t * t; i++)
        dp[i] *= mh[i];
    }
    softmax_backward(ph, dp, t, a->o.causal != 0);
    /* dQ_h = dS K_h / sqrt(hd), dK_h = dS^T Q_h / sqrt(hd) */
    NNLIB_TRY(nnlib__gemm(NNLIB__NO_TRANS, NNLIB__NO_TRANS, t, hd, t, scale,
                          dp, t, k, ld, 0.0f, dqkv + h * hd, ld));
    NNLIB_TRY(nnlib__gemm(NNLIB__TRANS, NNLIB__NO_TRANS, t, hd, t, scale, dp,
                          t, q, ld, 0.0f, dqkv + d + h * hd, ld));
  }
  return NNLIB_OK;
}

/* The first products of one (sample, head)'s backward, block by block:
 * dV_h = P^T dO_h onto dv's zeroed rows (ld 3D), then dP = dO_h V_h^T
 * into dph [t, t]. doh is the head's first column of dO (ld D). */
static nnlib_status head_grads_pv(const attention_layer *a, gemm_batch *g,
                                  const float *ph, const float *doh,
                                  const float *v, float *dv, float *dph,
                                  int64_t t) {
  int64_t d = a->d, ld = 3 * d, blocks = score_blocks(a, t);
  for (int64_t i = 0; i < blocks; i++) {
    score_block s = score_block_at(a, i, t);
    /* dV rows [r0, r1) = P[from.., r0..r1)^T dO[from..]  [t-from,w]^T x
     * [t-from,hd] */
    NNLIB_TRY(batch_add(g, NNLIB__TRANS, NNLIB__NO_TRANS, s.r1 - s.r0, a->hd,
                        t - s.from, 1.0f, ph + s.from * t + s.r0, t,
                        doh + s.from * d, d, 1.0f, dv + s.r0 * ld, ld));
  }
  for (int64_t i = 0; i < blocks; i++) {
    score_block s = score_block_at(a, i, t);
    NNLIB_TRY(batch_add(g, NNLIB__NO_TRANS, NNLIB__TRANS, s.r1 - s.r0, s.keys,
                        a->hd, 1.0f, doh + s.r0 * d, d, v, ld, 0.0f,
                        dph + s.r0 * t, t));
  }
  return NNLIB_OK;
}

/* The last products of one (sample, head)'s backward from dS (dsh [t, t]):
 * dQ_h = dS K_h / sqrt(hd) onto dq's zeroed rows, dK_h = dS^T Q_h /
 * sqrt(hd) onto dq + D's (ld 3D), q the head's first query in QKV. */
static nnlib_status head_grads_qk(const attention_layer *a, gemm_batch *g,
                                  const float *dsh, const float *q, float *dq,
                                  int64_t t) {
  int64_t d = a->d, ld = 3 * d, blocks = score_blocks(a, t);
  float scale = 1.0f / sqrtf((float)a->hd);
  for (int64_t i = 0; i < blocks; i++) {
    score_block s = score_block_at(a, i, t);
    NNLIB_TRY(batch_add(g, NNLIB__NO_TRANS, NNLIB__NO_TRANS, s.r1 - s.r0, a->hd,
                        s.keys, scale, dsh + s.r0 * t, t, q + d, ld, 1.0f,
                        dq + s.r0 * ld, ld));
  }
  for (int64_t i = 0; i < blocks; i++) {
    score_block s = score_block_at(a, i, t);
    NNLIB_TRY(batch_add(g, NNLIB__TRANS, NNLIB__NO_TRANS, s.r1 - s.r0, a->hd,
                        t - s.from, scale, dsh + s.from * t + s.r0, t,
                        q + s.from * ld, ld, 1.0f, dq + d + s.r0 * ld, ld));
  }
  return NNLIB_OK;
}

/* Backward of samples [b0, b0 + count) without dropout, from dO into
 * dQKV: per (sample, head) dV and dP (into the group's dp blocks), one
 * softmax backward pass over the blocks, then dQ and dK. */
static nnlib_status backward_group(const attention_layer *a, const float *qkv,
                                   float *p, const float *d_o,
                                   float *dqkv, float *dp, int64_t b0,
                                   int64_t count, int64_t t) {
  int64_t d = a->d, hd = a->hd, ld = 3 * d, block = a->t * a->t;
  gemm_batch g = {.count = 0};
  memset(dqkv + b0 * t * ld, 0, (size_t)(count * t * ld) * sizeof(float));
  for (int64_t b = b0; b < b0 + count; b++)
    for (int64_t h = 0; h < a->heads; h++)
      NNLIB_TRY(head_grads_pv(
          a, &g, p + (b * a->heads + h) * block, d_o + b * t * d + h * hd,
          qkv + b * t * ld + 2 * d + h * hd, dqkv + b * t * ld + 2 * d + h * hd,
          dp + ((b - b0) * a->heads + h) * t * t, t));
  NNLIB_TRY(batch_flush(&g));
  softmax_blocks(p + b0 * a->heads * block, dp, count * a->heads, block, t, t,
                 a->o.causal != 0);
  for (int64_t b = b0; b < b0 + count; b++)
    for (int64_t h = 0; h < a->heads; h++)
      NNLIB_TRY(head_grads_qk(a, &g, dp + ((b - b0) * a->heads + h) * t * t,
                              qkv + b * t * ld + h * hd,
                              dqkv + b * t * ld + h * hd, t));
  return batch_flush(&g);
}

static nnlib_status attention_backward(nnlib_layer *l, const nnlib__run *run,
                                       const float *x, const float *y,
                                       float *dy, float *dx, int64_t n) {
  (void)y;
  const attention_layer *a = (const attention_layer *)l;
  attention_params prm = params_of(l);
  if (run->cache != NULL)
    return nnlib__error(NNLIB_ERR_UNSUPPORTED,
                        "attention: no backward pass while decoding");
  int64_t t, first, d = a->d;
  NNLIB_TRY(call_positions(a, run, &t, &first));
  int64_t rows = n * t, block = a->heads * a->t * a->t;
  const attention_areas w = a->areas;
  float *ws = run->workspace;
  if (ws == NULL) /* the model always gives one: plan asked for it */
    return nnlib__error(NNLIB_ERR_INTERNAL, "attention: no workspace");
  bool dropout = drops(a, run);
  /* dW_out = dY^T O [D,R] x [R,D]; dO = dY W_out [R,D] x [D,D] */
  if (prm.b_out != NULL)
    nnlib__column_sums(dy, rows, d, d, prm.b_out->grad.data, MIN_PART_VALUES);
  NNLIB_TRY(nnlib__gemm(NNLIB__TRANS, NNLIB__NO_TRANS, d, d, rows, 1.0f, dy, d,
                        ws + w.o, d, 0.0f, prm.w_out->grad.data, d));
  NNLIB_TRY(nnlib__gemm(NNLIB__NO_TRANS, NNLIB__NO_TRANS, rows, d, d, 1.0f, dy,
                        d, prm.w_out->value.data, d, 0.0f, ws + w.d_o, d));
  int64_t group = samples_per_group(a->heads);
  for (int64_t b = 0; !dropout && b < n; b += group)
    NNLIB_TRY(backward_group(a, ws + w.qkv, ws + w.p, ws + w.d_o, ws + w.dqkv,
                             ws + w.dp, b, n - b < group ? n - b : group, t));
  for (int64_t b = 0; dropout && b < n; b++)
    NNLIB_TRY(backward_sample(
        a, ws + w.qkv + b * t * 3 * d, ws + w.p + b * block,
        dropout ? ws + w.mask + b * block : NULL, ws + w.d_o + b * t * d,
        ws + w.dqkv + b * t * 3 * d, ws + w.dp, ws + w.pd, t));
  /* dW_in = dQKV^T X [3D,R] x [R,D]; dX = dQKV W_in [R,3D] x [3D,D] */
  const float *dqkv = ws + w.dqkv;
  if (prm.b_in != NULL)
    nnlib__column_sums(dqkv, rows, 3 * d, 3 * d, prm.b_in->grad.data,
                       MIN_PART_VALUES);
  NNLIB_TRY(nnlib__gemm(NNLIB__TRANS, NNLIB__NO_TRANS, 3 * d, d, rows, 1.0f,
                        dqkv, 3 * d, x, d, 0.0f, prm.w_in->grad.data, d));
  if (dx != NULL)
    NNLIB_TRY(nnlib__gemm(NNLIB__NO_TRANS, NNLIB__NO_TRANS, rows, d, 3 * d,
                          1.0f, dqkv, 3 * d, prm.w_in->value.data, d, 0.0f, dx,
                          d));
  return NNLIB_OK;
}

static const nnlib__layer_ops attention_ops = {
    .kind = NNLIB_LAYER_ATTENTION,
    .plan = attention_plan,
    .init = attention_init,
    .forward = attention_forward,
    .backward = attention_backward,
    .name = attention_name,
    .decodes = true,
    .dx_over_output = true, /* backward never reads y */
};

nnlib_status nnlib_attention_options_init_size(nnlib_attention_options *o,
                                               size_t struct_size) {
  nnlib_attention_options d;
  memset(&d, 0, sizeof d);
  d.with_bias = 1;
  return nnlib__init_options(o, struct_size, &d, sizeof d,
                             "nnlib_attention_options_init");
}

nnlib_status nnlib_attention_create(nnlib_layer **out, int64_t heads,
                                    const nnlib_attention_options *options) {
  NNLIB_CHECK_ARG(out != NULL, "nnlib_attention_create: out is NULL");
  *out = NULL;
  nnlib_attention_options o;
  nnlib_attention_options_init(&o);
  NNLIB_TRY(
      nnlib__read_options(&o, sizeof o, options, "nnlib_attention_options"));
  NNLIB_CHECK_ARG(heads >= 1 && heads <= NNLIB__BLAS_DIM_MAX,
                  "attention: heads is %lld, must be in 1..%lld",
                  (long long)heads, (long long)NNLIB__BLAS_DIM_MAX);
  NNLIB_CHECK_ARG(o.dropout >= 0.0f && o.dropout < 1.0f,
                  "attention: dropout %g must be in [0, 1)",
                  (double)o.dropout);
  NNLIB_CHECK_ARG(o.causal == 0 || o.causal == 1,
                  "attention: causal is %d, must be 0 or 1", o.causal);
  NNLIB_CHECK_ARG(o.with_bias == 0 || o.with_bias == 1,
                  "attention: with_bias is %d, must be 0 or 1", o.with_bias);
  attention_layer *a = nnlib__alloc(sizeof *a);
  if (a == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "nnlib_attention_create: no memory");
  memset(a, 0, sizeof *a);
  nnlib__layer_init(&a->base, &attention_ops);
  a->heads = heads;
  a->o = o;
  a->o.struct_size = sizeof a->o;
  a->o.dropout = o.dropout + 0.0f; /* -0 becomes +0: one spelling in files */
  *out = &a->base;
  return NNLIB_OK;
}

/* ------------------------- model description and model file (codec) */

/* Field `field` "dropoutR" with R a decimal number. */
static nnlib_status parse_dropout(const nnlib__spec_item *item, size_t field,
                                  float *rate) {
  static const char prefix[] = "dropout";
  const size_t skip = sizeof prefix - 1;
  nnlib__spec_item rest = *item;
  rest.fields[field].text += skip;
  rest.fields[field].length -= skip;
  if (rest.fields[field].length == 0)
    return nnlib__spec_error(item, "argument %zu: dropout needs a rate, "
                                   "e.g. dropout0.1",
                             field);
  return nnlib__spec_float(&rest, field, rate);
}

/* One option of attention:HEADS[:causal][:dropoutR][:nobias]; each at
 * most once, in any order. */
static nnlib_status attention_parse_option(const nnlib__spec_item *item,
                                           size_t field,
                                           nnlib_attention_options *o,
                                           unsigned *seen) {
  const nnlib__spec_field *f = &item->fields[field];
  unsigned bit;
  if (nnlib__spec_field_is(item, field, "causal")) {
    bit = 1;
    o->causal = 1;
  } else if (nnlib__spec_field_is(item, field, "nobias")) {
    bit = 2;
    o->with_bias = 0;
  } else if (f->length >= 7 && memcmp(f->text, "dropout", 7) == 0) {
    bit = 4;
    NNLIB_TRY(parse_dropout(item, field, &o->dropout));
  } else {
    return nnlib__spec_error(item,
                             "argument %zu: attention options are causal, "
                             "dropoutR (a rate in [0, 1)) and nobias",
                             field);
  }
  if (*seen & bit)
    return nnlib__spec_error(item, "argument %zu repeats an option", field);
  *seen |= bit;
  return NNLIB_OK;
}

static nnlib_status attention_parse_spec(const nnlib__spec_item *item,
                                         nnlib_layer **out) {
  int64_t heads;
  nnlib_attention_options o;
  unsigned seen = 0;
  nnlib_attention_options_init(&o);
  NNLIB_TRY(nnlib__spec_fields(item, 2, 5));
  NNLIB_TRY(nnlib__spec_int(item, 1, 1, NNLIB__BLAS_DIM_MAX, &heads));
  for (size_t f = 2; f < item->field_count; f++)
    NNLIB_TRY(attention_parse_option(item, f, &o, &seen));
  return nnlib_attention_create(out, heads, &o);
}

static void attention_write_spec(const nnlib_layer *l, nnlib__text *t) {
  const attention_layer *a = (const attention_layer *)l;
  nnlib__text_append(t, "attention:%lld", (long long)a->heads);
  if (a->o.causal)
    nnlib__text_append(t, ":causal");
  if (a->o.dropout > 0.0f) {
    nnlib__text_append(t, ":dropout");
    nnlib__text_append_float(t, a->o.dropout);
  }
  if (!a->o.with_bias)
    nnlib__text_append(t, ":nobias");
}

/* config: i64 heads, u32 causal, f32 dropout, u32 with_bias: 20 bytes */
static void attention_write_config(const nnlib_layer *l, nnlib__writer *w) {
  const attention_layer *a = (const attention_layer *)l;
  nnlib__put_i64(w, a->heads);
  nnlib__put_u32(w, a->o.causal ? 1u : 0u);
  nnlib__put_f32(w, a->o.dropout);
  nnlib__put_u32(w, a->o.with_bias ? 1u : 0u);
}

static nnlib_status attention_read_config(nnlib__reader *r,
                                          nnlib_layer **out) {
  int64_t heads;
  uint32_t causal, bias;
  float dropout;
  *out = NULL;
  NNLIB_TRY(nnlib__get_i64(r, &heads));
  NNLIB_TRY(nnlib__get_u32(r, &causal));
  NNLIB_TRY(nnlib__get_f32(r, &dropout));
  NNLIB_TRY(nnlib__get_u32(r, &bias));
  if (heads < 1 || heads > NNLIB__BLAS_DIM_MAX || causal > 1 || bias > 1 ||
      !(dropout >= 0.0f && dropout < 1.0f))
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "attention: config heads %lld, causal %u, dropout "
                        "%g, with_bias %u is not a valid layer",
                        (long long)heads, causal, (double)dropout, bias);
  nnlib_attention_options o;
  nnlib_attention_options_init(&o);
  o.causal = (int)causal;
  o.dropout = dropout;
  o.with_bias = (int)bias;
  return nnlib_attention_create(out, heads, &o);
}

const nnlib__layer_codec nnlib__attention_codec = {
    .kind = NNLIB_LAYER_ATTENTION,
    .spec_names = {"attention"},
    .parse_spec = attention_parse_spec,
    .write_spec = attention_write_spec,
    .write_config = attention_write_config,
    .read_config = attention_read_config,
};
