/* pool2d.c - max, min and average pooling over kH x kW windows of each
 * channel of NCHW batches, with PyTorch's and ONNX's window options:
 * stride, dilation, padding on each side (begin and end may differ, up to
 * k - 1), ceil mode, and for averages whether padding counts.
 *
 * Along one axis the window of output o has taps start + i d, i < k, with
 * start = o s - pad_begin; the taps inside [0, in) are the real ones (the
 * header's nnlib_pool2d_options gives the output size).
 *
 * max/min:  y[s,c,oh,ow] = max (min) of x over the window's real taps
 *           (padding never wins); the winner's position in its plane goes
 *           to the workspace (int32 per output; 2x2 windows at stride 2
 *           keep a byte, see select_2x2), and backward adds dy there:
 *           dx[s,c,idx] += dy[s,c,oh,ow].
 * average:  y = (sum of x over the real taps) / divisor, the divisor being
 *           rows x columns of the taps inside the padded input
 *           [-pad_begin, in + pad_end) with count_include_pad (PyTorch's
 *           rule: a ceil-mode window reaching past the padding counts only
 *           what lies inside it), else of the real taps. Backward spreads
 *           dy / divisor over the real taps. No workspace. */
#include "layers/layer.h"
#include "core/vecmath.h"

#include <math.h>
#include <string.h>

/* pre's (x - m) scale + shift must round after each operation, as the
 * passes it stands for do: GCC contracts nothing in ISO C mode, clang is
 * told here */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

typedef struct pool2d_layer {
  nnlib_layer base;
  nnlib_layer_kind kind;
  int64_t kh, kw, sh, sw;
  int64_t pt, pl, pb, pr; /* padding top, left, bottom, right */
  int64_t dh, dw;
  bool ceil_mode, count_pad;
  /* planned */
  int64_t channels, in_h, in_w, out_h, out_w;
} pool2d_layer;

/* One axis of the window geometry. */
typedef struct pool_axis {
  int64_t in, k, s, d, pad_begin, pad_end;
} pool_axis;

static pool_axis rows_of(const pool2d_layer *p) {
  pool_axis a = {p->in_h, p->kh, p->sh, p->dh, p->pt, p->pb};
  return a;
}

static pool_axis cols_of(const pool2d_layer *p) {
  pool_axis a = {p->in_w, p->kw, p->sw, p->dw, p->pl, p->pr};
  return a;
}

/* The taps of one window along one axis: the real ones are first, first +
 * d, ... below end (`real` of them, possibly none); `padded` counts the
 * taps inside the padded input. */
typedef struct pool_taps {
  int64_t first, end, real, padded;
} pool_taps;

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Taps i < k with start + i d < limit: min(k, ceil((limit - start) / d)),
 * 0 when limit <= start. */
static int64_t taps_below(const pool_axis *a, int64_t start, int64_t limit) {
  if (limit <= start)
    return 0;
  return min64(a->k, (limit - start + a->d - 1) / a->d);
}

/* axis_taps with dilation: taps before 0 are ceil(-start / d). */
static pool_taps dilated_taps(const pool_axis *a, int64_t o) {
  int64_t start = o * a->s - a->pad_begin;
  int64_t skip = start >= 0 ? 0 : min64(a->k, (-start + a->d - 1) / a->d);
  int64_t below_in = taps_below(a, start, a->in);
  pool_taps t;
  t.first = start + skip * a->d;
  t.end = start + below_in * a->d;
  t.real = below_in > skip ? below_in - skip : 0;
  t.padded = taps_below(a, start, a->in + a->pad_end);
  return t;
}

/* axis_taps without dilation (averages, and max/min pools of dilation 1):
 * no divisions, and no call inside the window loops. */
static inline pool_taps unit_taps(const pool_axis *a, int64_t o) {
  int64_t start = o * a->s - a->pad_begin, stop = start + a->k;
  pool_taps t;
  t.first = start > 0 ? start : 0;
  t.end = min64(stop, a->in);
  t.real = t.end > t.first ? t.end - t.first : 0;
  t.padded = min64(stop, a->in + a->pad_end) - start;
  return t;
}

static pool_taps axis_taps(const pool_axis *a, int64_t o) {
  return a->d != 1 ? dilated_taps(a, o) : unit_taps(a, o);
}

/* Output length along one axis (the header's formula); 0 when the window
 * is longer than the padded input. Every operand is at most 2^31 - 1 (the
 * constructor checks the window span and padding, plan the input), so
 * nothing overflows. */
static int64_t axis_out(const pool_axis *a, bool ceil_mode) {
  int64_t span = a->d * (a->k - 1) + 1;
  int64_t room = a->in + a->pad_begin + a->pad_end - span;
  if (room < 0)
    return 0;
  int64_t out = (ceil_mode ? (room + a->s - 1) / a->s : room / a->s) + 1;
  if (ceil_mode && (out - 1) * a->s >= a->in + a->pad_begin)
    out--; /* PyTorch: the last window starts inside the input or the
              begin padding */
  return out;
}

static const char *pool2d_name(const nnlib_layer *l) {
  switch (((const pool2d_layer *)l)->kind) {
  case NNLIB_LAYER_MAXPOOL2D: return "maxpool2d";
  case NNLIB_LAYER_MINPOOL2D: return "minpool2d";
  default: return "avgpool2d";
  }
}

/* The first window along the axis whose taps all fall in the padding, or
 * -1. A window starts inside the input or the begin padding (axis_out),
 * and the begin padding is at most k - 1 <= (k - 1) d, so its first tap
 * at or past 0 is below d: with in >= d (always, for dilation 1) every
 * window holds a real tap, and no loop over a long axis is needed. Only a
 * dilated window over an input shorter than d can jump over it all; then
 * the window span, at most the padded input, leaves a handful of windows. */
static int64_t empty_window(const pool_axis *a, int64_t out) {
  if (a->in >= a->d)
    return -1;
  for (int64_t o = 0; o < out; o++)
    if (axis_taps(a, o).real < 1)
      return o;
  return -1;
}

static nnlib_status check_windows(const nnlib_layer *l) {
  const pool2d_layer *p = (const pool2d_layer *)l;
  pool_axis rows = rows_of(p), cols = cols_of(p);
  int64_t r = empty_window(&rows, p->out_h), c = empty_window(&cols, p->out_w);
  if (r < 0 && c < 0)
    return NNLIB_OK;
  const pool_axis *a = r >= 0 ? &rows : &cols;
  return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                      "%s: window %lld along the %s reads only padding "
                      "(input %lld, kernel %lld, dilation %lld, stride "
                      "%lld, padding %lld and %lld)",
                      pool2d_name(l), (long long)(r >= 0 ? r : c),
                      r >= 0 ? "height" : "width", (long long)a->in,
                      (long long)a->k, (long long)a->d, (long long)a->s,
                      (long long)a->pad_begin, (long long)a->pad_end);
}

static nnlib_status window_too_large(const nnlib_layer *l) {
  const pool2d_layer *p = (const pool2d_layer *)l;
  return nnlib__error(
      NNLIB_ERR_SHAPE_MISMATCH,
      "%s: kernel %lldx%lld spans %lldx%lld (dilation %lldx%lld), more than "
      "the padded input %lldx%lld (%lldx%lld with padding top %lld, bottom "
      "%lld, left %lld, right %lld)",
      pool2d_name(l), (long long)p->kh, (long long)p->kw,
      (long long)(p->dh * (p->kh - 1) + 1), (long long)(p->dw * (p->kw - 1) + 1),
      (long long)p->dh, (long long)p->dw, (long long)(p->in_h + p->pt + p->pb),
      (long long)(p->in_w + p->pl + p->pr), (long long)p->in_h,
      (long long)p->in_w, (long long)p->pt, (long long)p->pb,
      (long long)p->pl, (long long)p->pr);
}

/* 2x2 windows at stride 2 without padding: never clipped (floor mode, or
 * ceil mode that adds no window, drops an odd last row or column). */
static bool two_by_two(const pool2d_layer *p) {
  return p->kh == 2 && p->kw == 2 && p->sh == 2 && p->sw == 2 &&
         p->pt == 0 && p->pl == 0 && p->pb == 0 && p->pr == 0 &&
         p->dh == 1 && p->dw == 1 && 2 * p->out_h <= p->in_h &&
         2 * p->out_w <= p->in_w;
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
  if (p->in_h * p->in_w > INT32_MAX)
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "%s: a %lldx%lld plane is too large to index",
                        pool2d_name(l), (long long)p->in_h,
                        (long long)p->in_w);
  pool_axis rows = rows_of(p), cols = cols_of(p);
  p->out_h = axis_out(&rows, p->ceil_mode);
  p->out_w = axis_out(&cols, p->ceil_mode);
  if (p->out_h < 1 || p->out_w < 1)
    return window_too_large(l);
  NNLIB_TRY(check_windows(l));
  l->out_shape.rank = 3;
  l->out_shape.dims[0] = p->channels;
  l->out_shape.dims[1] = p->out_h;
  l->out_shape.dims[2] = p->out_w;
  int64_t outputs;
  if (p->kind != NNLIB_LAYER_AVGPOOL2D) {
    /* int32 winner indices, one float's room each (or codes, below) */
    if (nnlib__mul_overflows(nnlib__shape_numel(&l->out_shape), max_batch,
                             &outputs) ||
        (uint64_t)outputs > SIZE_MAX / sizeof(float))
      return nnlib__error(NNLIB_ERR_TOO_LARGE,
                          "%s: workspace for a batch of %lld overflows",
                          pool2d_name(l), (long long)max_batch);
    /* 2x2 windows at stride 2 keep one byte per output (select_2x2) */
    l->workspace_floats =
        (size_t)(two_by_two(p) ? (outputs + 3) / 4 : outputs);
  }
  return NNLIB_OK;
}

/* A window holding a NaN selects its first NaN, as PyTorch's max pooling
 * propagates it; rare, so it is looked for only when the window's values
 * say there is one (the selection itself stays branch-free). */
static int32_t first_nan(const pool2d_layer *p, const float *src,
                         const pool_taps *r, const pool_taps *c) {
  for (int64_t i = r->first; i < r->end; i += p->dh)
    for (int64_t j = c->first; j < c->end; j += p->dw)
      if (src[i * p->in_w + j] != src[i * p->in_w + j])
        return (int32_t)(i * p->in_w + j);
  return (int32_t)(r->first * p->in_w + c->first);
}

/* The first maximum (BETTER: v > bv) or minimum (v < bv) of each window's
 * real taps and its index, the taps DH and DW apart and found by TAPS
 * (literal 1s and unit_taps where there is no dilation, so the loops keep
 * a unit step and call nothing). Ties keep the earlier element. NaN never
 * wins a comparison, so `nan` collects the window's NaNs on the side. */
#define SELECT_LOOP(BETTER, DH, DW, TAPS)                                      \
  for (int64_t q = 0; q < planes; q++) {                                       \
    const float *src = x + q * in_plane;                                       \
    for (int64_t oh = 0; oh < p->out_h; oh++) {                                \
      pool_taps r = TAPS(&rows, oh);                                           \
      for (int64_t ow = 0; ow < p->out_w; ow++, y++, winners++) {              \
        pool_taps c = TAPS(&cols, ow);                                         \
        int32_t best = (int32_t)(r.first * p->in_w + c.first);                 \
        float bv = src[best];                                                  \
        int nan = 0;                                                           \
        for (int64_t i = r.first; i < r.end; i += (DH))                        \
          for (int64_t j = c.first; j < c.end; j += (DW)) {                    \
            int32_t at = (int32_t)(i * p->in_w + j);                           \
            float v = src[at];                                                 \
            int take = BETTER;                                                 \
            nan |= v != v;                                                     \
            best = take ? at : best;                                           \
            bv = take ? v : bv;                                                \
          }                                                                    \
        if (nan) {                                                             \
          best = first_nan(p, src, &r, &c);                                    \
          bv = src[best];                                                      \
        }                                                                      \
        *winners = best;                                                       \
        *y = bv;                                                               \
      }                                                                        \
    }                                                                          \
  }

/* ------------------------- 2x2 windows at stride 2 without padding
 *
 * The common case (the benchmark CNN, examples/fashion_cnn.c): every
 * window lies whole in the input (floor mode, or a ceil mode that adds no
 * window, drops an odd last row or column), so its four candidates a b /
 * c d (top left, top right, bottom left, bottom right) are read directly.
 * The winner is SELECT_LOOP's: the first best in a, b, c, d order under
 * strict comparison. Selecting within the pairs a b and c d first and then
 * between the pairs, keeping the first pair on a tie, finds the same
 * element: the first best of a b is the first best overall unless c d
 * holds a strictly better value, and then that pair's first best is (so
 * ties and signed zeros pick as before). NaN never wins a comparison: a
 * window holding one selects its first NaN, fixed up after its row.
 *
 * The winner is kept as a code, 0..3 for a, b, c, d, one byte per output
 * (a quarter of an int32 index, and read back by a vectorised backward);
 * a prediction that no backward follows (run->folded) keeps none. Rows of
 * windows are short (14 and 7 outputs in the benchmark CNN), too short for
 * GCC's vectorised loops and their scalar tails: on a CPU with AVX-512
 * one row of up to 16 windows is a few masked vector operations (the even
 * and odd columns split by a permutation; two rows at once when they have
 * 8 windows or fewer), with AVX2 8 windows at a time the same way,
 * elsewhere a plain loop runs. All select the same
 * elements, so results are the same bits. A fused pass's values
 * (nnlib__pool2x2_rows_pre) are computed in registers as the rows load,
 * by the same operations in every path. The AVX2 rows run the
 * benchmark CNN 1.12x as fast as the plain ones in training and 1.14x in
 * prediction (forced on a Zen 4, batch 64, one thread, medians of 5
 * alternated rounds); they are what a CPU without AVX-512 runs. */
enum { CODE_A = 0, CODE_B = 1, CODE_C = 2, CODE_D = 3 };

/* What the rows compute from x before they select (layer.h's
 * nnlib__pool2x2_pre), decided once a call: nothing; x + shift alone when
 * m is +0 and scale 1 (a convolution's bias: exactly its x + b, where
 * (x - 0) 1 would differ from x in a directed rounding mode); or the
 * whole (x - m) scale + shift. */
typedef enum { PRE_NONE, PRE_ADD, PRE_AFFINE } pre_form;

typedef struct pre_terms {
  pre_form form;
  bool relu;
  float m, scale, shift;
} pre_terms;

static const pre_terms NO_PRE = {PRE_NONE, false, 0.0f, 1.0f, 0.0f};

static pre_terms pre_terms_of(const nnlib__pool2x2_pre *pre) {
  bool add = pre->m == 0.0f && !signbit(pre->m) && pre->scale == 1.0f;
  pre_terms t = {add ? PRE_ADD : PRE_AFFINE, pre->relu, pre->m, pre->scale,
                 pre->shift};
  return t;
}

static float pre_value(const pre_terms *p, float x) {
  float v = x;
  if (p->form == PRE_ADD)
    v = x + p->shift;
  else if (p->form == PRE_AFFINE)
    v = (x - p->m) * p->scale + p->shift;
  return p->relu && v <= 0.0f ? 0.0f : v;
}

/* Windows of a row holding a NaN (among pre's values): their first NaN
 * and its code. */
static void fix_nan_windows(const float *top, const float *bottom,
                            const pre_terms *pre, float *y, uint8_t *code,
                            int64_t out_w) {
  for (int64_t ow = 0; ow < out_w; ow++) {
    const float v[4] = {
        pre_value(pre, top[2 * ow]), pre_value(pre, top[2 * ow + 1]),
        pre_value(pre, bottom[2 * ow]), pre_value(pre, bottom[2 * ow + 1])};
    for (int i = 0; i < 4; i++)
      if (v[i] != v[i]) {
        y[ow] = v[i];
        if (code != NULL)
          code[ow] = (uint8_t)i;
        break;
      }
  }
}

/* One row of windows, BETTER(v, bv) comparing; codes unless code is NULL
 * (the loop is written twice, so neither has a branch inside). */
#define SELECT_ROW(BETTER)                                                     \
  do {                                                                         \
    if (code != NULL)                                                          \
      for (int64_t ow = 0; ow < out_w; ow++) {                                 \
      float a = top[2 * ow], b = top[2 * ow + 1];                              \
      float c = bottom[2 * ow], d = bottom[2 * ow + 1];                        \
      int32_t tb = BETTER(b, a), td = BETTER(d, c);                            \
      float ab = nnlib__select_f(tb, b, a), cd = nnlib__select_f(td, d, c);    \
      int32_t t = BETTER(cd, ab);                                              \
      y[ow] = nnlib__select_f(t, cd, ab);                                      \
      /* t ? CODE_C + td : CODE_A + tb, without a branch */                   \
      code[ow] = (uint8_t)(2 * t + (tb ^ ((tb ^ td) & -t)));                   \
      nan |= (a != a) | (b != b) | (c != c) | (d != d);                        \
    }                                                                          \
    else                                                                       \
      for (int64_t ow = 0; ow < out_w; ow++) {                                 \
      float a = top[2 * ow], b = top[2 * ow + 1];                              \
      float c = bottom[2 * ow], d = bottom[2 * ow + 1];                        \
      float ab = nnlib__select_f(BETTER(b, a), b, a);                          \
      float cd = nnlib__select_f(BETTER(d, c), d, c);                          \
      y[ow] = nnlib__select_f(BETTER(cd, ab), cd, ab);                         \
      nan |= (a != a) | (b != b) | (c != c) | (d != d);                        \
    }                                                                          \
  } while (0)
#define GREATER(v, bv) ((v) > (bv))
#define LESS(v, bv) ((v) < (bv))

static void select_row_plain(bool max, const float *restrict top,
                             const float *restrict bottom, float *restrict y,
                             uint8_t *restrict code, int64_t out_w) {
  int nan = 0;
  /* NOLINTs: called on a block select_rows_plain_pre filled for exactly
   * out_w windows, which clang's analyzer cannot follow through its loop */
  if (max)
    SELECT_ROW(GREATER); // NOLINT(clang-analyzer-core.uninitialized.Assign)
  else
    SELECT_ROW(LESS); // NOLINT(clang-analyzer-core.uninitialized.Assign)
  if (nan)
    fix_nan_windows(top, bottom, &NO_PRE, y, code, out_w);
}

/* dx of one row of windows: 0.0f + dy at the winner (what adding dy to a
 * zeroed dx gives, -0 included), zero at the other three. */
static void spread_row_plain(const float *restrict dy,
                             const uint8_t *restrict code, float *restrict top,
                             float *restrict bottom, int64_t out_w) {
  for (int64_t ow = 0; ow < out_w; ow++) {
    float g = 0.0f + dy[ow];
    top[2 * ow] = nnlib__select_f(code[ow] == CODE_A, g, 0.0f);
    top[2 * ow + 1] = nnlib__select_f(code[ow] == CODE_B, g, 0.0f);
    bottom[2 * ow] = nnlib__select_f(code[ow] == CODE_C, g, 0.0f);
    bottom[2 * ow + 1] = nnlib__select_f(code[ow] == CODE_D, g, 0.0f);
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define POOL_AVX512 1

/* Load masks of the 2k inputs under k <= 16 windows: the first vector's
 * and the second's. */
static inline __mmask16 lanes(int64_t count) {
  return count >= 16 ? (__mmask16)0xFFFF
         : count <= 0 ? (__mmask16)0
                      : (__mmask16)((1u << count) - 1u);
}

__attribute__((target("avx512f"))) static inline __mmask16
better(bool max, __m512 v, __m512 bv) {
  /* v > bv or v < bv: false when either is NaN, as in C */
  return max ? _mm512_cmp_ps_mask(v, bv, _CMP_GT_OQ)
             : _mm512_cmp_ps_mask(v, bv, _CMP_LT_OQ);
}

/* pre_value of 16 inputs, k holding m, scale and shift (broadcast once a
 * call): the same operations, each rounded, and the ReLU as the
 * activation layer's expression (NaN stays NaN). */
__attribute__((target("avx512f"))) static inline __m512
pre16(const pre_terms *p, const __m512 k[3], __m512 x) {
  __m512 v = x;
  if (p->form == PRE_ADD)
    v = _mm512_add_ps(x, k[2]);
  else if (p->form == PRE_AFFINE)
    v = _mm512_add_ps(_mm512_mul_ps(_mm512_sub_ps(x, k[0]), k[1]), k[2]);
  if (!p->relu)
    return v;
  __m512 zero = _mm512_setzero_ps();
  return _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, zero, _CMP_LE_OQ), zero);
}

/* Up to 16 windows whose candidates are the even (a, c) and odd (b, d)
 * lanes of the top rows t0, t1 and the bottom rows u0, u1, as the
 * permutations even and odd pick them: their values into y and codes into
 * code (unless NULL), lanes `out`; the lanes holding a NaN returned (the
 * windows' lanes only: pre may turn a masked-off zero into NaN, which
 * would cost a needless pass over the row). */
__attribute__((target("avx512f"))) static inline __mmask16
select16(bool max, __m512 t0, __m512 t1, __m512 u0, __m512 u1, __m512i even,
         __m512i odd, __mmask16 out, float *y, uint8_t *code) {
  __m512 a = _mm512_permutex2var_ps(t0, even, t1);
  __m512 b = _mm512_permutex2var_ps(t0, odd, t1);
  __m512 c = _mm512_permutex2var_ps(u0, even, u1);
  __m512 d = _mm512_permutex2var_ps(u0, odd, u1);
  __mmask16 tb = better(max, b, a), td = better(max, d, c);
  __m512 ab = _mm512_mask_blend_ps(tb, a, b);
  __m512 cd = _mm512_mask_blend_ps(td, c, d);
  __mmask16 tt = better(max, cd, ab);
  _mm512_mask_storeu_ps(y, out, _mm512_mask_blend_ps(tt, ab, cd));
  if (code != NULL) {
    __m512i cab = _mm512_maskz_mov_epi32(tb, _mm512_set1_epi32(CODE_B));
    __m512i ccd = _mm512_mask_mov_epi32(_mm512_set1_epi32(CODE_C), td,
                                        _mm512_set1_epi32(CODE_D));
    _mm512_mask_cvtepi32_storeu_epi8(code, out,
                                     _mm512_mask_blend_epi32(tt, cab, ccd));
  }
  return _mm512_mask_cmp_ps_mask(out, a, b, _CMP_UNORD_Q) |
         _mm512_mask_cmp_ps_mask(out, c, d, _CMP_UNORD_Q);
}

/* Rows of at most 8 windows (the benchmark CNN's 14-wide maps have 7)
 * would leave half of every vector idle: two rows of windows go in one,
 * row r's windows in lanes [0, out_w) and row r + 1's in [out_w,
 * 2 out_w), where y and the codes hold them one after the other too. */
__attribute__((target("avx512f"))) static void
select_row_pairs_avx512(bool max, const float *x, int64_t w, int64_t rows,
                        const pre_terms *pre, float *y, uint8_t *code,
                        int64_t out_w) {
  const __m512 pk[3] = {_mm512_set1_ps(pre->m), _mm512_set1_ps(pre->scale),
                        _mm512_set1_ps(pre->shift)};
  /* lane j < out_w: column 2 j of the first row's (t0, u0); lane out_w + i:
   * column 2 i of the second's (t1, u1: indices from 16); lanes from
   * 2 out_w on are masked off. Made in registers: a vector loaded from an
   * array just stored would wait for the stores. */
  const __m512i j =
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i twice = _mm512_add_epi32(j, j);
  const __m512i even = _mm512_mask_blend_epi32(
      _mm512_cmpge_epi32_mask(j, _mm512_set1_epi32((int)out_w)), twice,
      _mm512_sub_epi32(twice, _mm512_set1_epi32((int)(2 * out_w - 16))));
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __mmask16 in = lanes(2 * out_w);
  for (int64_t r = 0; r < rows; r += 2) {
    const float *top = x + 2 * r * w, *bottom = top + w;
    bool two = r + 1 < rows; /* an odd last row goes alone */
    __mmask16 next = two ? in : 0, out = lanes((two ? 2 : 1) * out_w);
    uint8_t *row_code = code != NULL ? code + r * out_w : NULL;
    __m512 t0 = pre16(pre, pk, _mm512_maskz_loadu_ps(in, top));
    __m512 u0 = pre16(pre, pk, _mm512_maskz_loadu_ps(in, bottom));
    __m512 t1 = pre16(pre, pk, _mm512_maskz_loadu_ps(next, top + 2 * w));
    __m512 u1 = pre16(pre, pk, _mm512_maskz_loadu_ps(next, bottom + 2 * w));
    __mmask16 nan =
        select16(max, t0, t1, u0, u1, even, odd, out, y + r * out_w, row_code);
    if (nan & lanes(out_w))
      fix_nan_windows(top, bottom, pre, y + r * out_w, row_code, out_w);
    if (nan >> out_w)
      fix_nan_windows(top + 2 * w, bottom + 2 * w, pre, y + (r + 1) * out_w,
                      row_code != NULL ? row_code + out_w : NULL, out_w);
  }
}

/* select_row_plain over `rows` rows of windows, 16 windows at a time:
 * row r's top row is x + 2 r w, its bottom row w further; its outputs
 * (and codes) out_w apart. One call per plane, so the constants are set
 * up once and the rows overlap in the core; inlined into
 * select_rows_avx512 once for each comparison and form of pre, so that
 * the loop tests neither (pre by value: through a pointer, every store
 * to y might change it, and the loop reloaded and tested it per vector). */
__attribute__((target("avx512f"), always_inline)) static inline void
rows_of_windows_avx512(bool max, const float *x, int64_t w, int64_t rows,
                       const pre_terms terms, float *y, uint8_t *code,
                       int64_t out_w) {
  const pre_terms *pre = &terms;
  const __m512 pk[3] = {_mm512_set1_ps(pre->m), _mm512_set1_ps(pre->scale),
                        _mm512_set1_ps(pre->shift)};
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20,
                                         22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  for (int64_t r = 0; r < rows; r++, y += out_w) {
    const float *top = x + 2 * r * w, *bottom = top + w;
    /* no arithmetic on a NULL code (predictions keep none) */
    uint8_t *row_code = code != NULL ? code + r * out_w : NULL;
    __mmask16 nan = 0;
    for (int64_t ow = 0; ow < out_w; ow += 16) {
      int64_t k = out_w - ow < 16 ? out_w - ow : 16;
      __mmask16 lo = lanes(2 * k), hi = lanes(2 * k - 16), out = lanes(k);
      const float *t = top + 2 * ow, *u = bottom + 2 * ow;
      __m512 t0 = pre16(pre, pk,
                        lo == 0xFFFF ? _mm512_loadu_ps(t)
                                     : _mm512_maskz_loadu_ps(lo, t));
      __m512 u0 = pre16(pre, pk,
                        lo == 0xFFFF ? _mm512_loadu_ps(u)
                                     : _mm512_maskz_loadu_ps(lo, u));
      __m512 t1 = pre16(pre, pk, _mm512_maskz_loadu_ps(hi, t + 16));
      __m512 u1 = pre16(pre, pk, _mm512_maskz_loadu_ps(hi, u + 16));
      nan |= select16(max, t0, t1, u0, u1, even, odd, out, y + ow,
                      row_code != NULL ? row_code + ow : NULL);
    }
    if (nan)
      fix_nan_windows(top, bottom, pre, y, row_code, out_w);
  }
}

/* Rows of windows (rows_of_windows_avx512, or two rows to a vector for
 * rows of at most 8 windows). */
__attribute__((target("avx512f"))) static void
select_rows_avx512(bool max, const float *x, int64_t w, int64_t rows,
                   const pre_terms *pre, float *y, uint8_t *code,
                   int64_t out_w) {
  if (out_w <= 8) {
    select_row_pairs_avx512(max, x, w, rows, pre, y, code, out_w);
    return;
  }
  const pre_terms p = *pre;
#define ROWS_OF(MAX, FORM, RELU)                                               \
  rows_of_windows_avx512(MAX, x, w, rows,                                      \
                         (pre_terms){FORM, RELU, p.m, p.scale, p.shift}, y,    \
                         code, out_w)
#define ROWS_OF_FORMS(MAX)                                                     \
  do {                                                                         \
    if (p.form == PRE_NONE)                                                    \
      p.relu ? ROWS_OF(MAX, PRE_NONE, true) : ROWS_OF(MAX, PRE_NONE, false);   \
    else if (p.form == PRE_ADD)                                                \
      p.relu ? ROWS_OF(MAX, PRE_ADD, true) : ROWS_OF(MAX, PRE_ADD, false);     \
    else                                                                       \
      p.relu ? ROWS_OF(MAX, PRE_AFFINE, true)                                  \
             : ROWS_OF(MAX, PRE_AFFINE, false);                                \
  } while (0)
  if (max)
    ROWS_OF_FORMS(true);
  else
    ROWS_OF_FORMS(false);
#undef ROWS_OF_FORMS
#undef ROWS_OF
}

/* Codes [0, k) of a row, 0 <= k <= 16, as 16 bytes (those from k on 0),
 * read in place with 8-byte loads: copied into a stack buffer first, the
 * vector load after the copy's narrower stores missed store forwarding
 * and stalled (43% of spread_row_avx512's samples on a Zen 4). */
static inline uint64_t codes_low(const uint8_t *code, int64_t k) {
  uint64_t v = 0;
  if (k >= 8)
    memcpy(&v, code, sizeof v);
  else
    for (int64_t i = 0; i < k; i++)
      v |= (uint64_t)code[i] << (8 * i);
  return v;
}

static inline uint64_t codes_high(const uint8_t *code, int64_t k) {
  uint64_t v = 0;
  if (k <= 8)
    return 0;
  memcpy(&v, code + k - 8, sizeof v); /* codes k - 8 .. k - 1 */
  return v >> (8 * (16 - k));         /* codes 8 .. k - 1 */
}

/* The k <= 16 windows' gradients 0.0f + dy (what the plain loop adds) in
 * the lanes whose code names candidate a, b, c or d, +0 elsewhere. */
__attribute__((target("avx512f"))) static inline void
named16(const uint8_t *code, int64_t k, const float *dy, __m512 *ga, __m512 *gb,
        __m512 *gc, __m512 *gd) {
  __m512i cv = _mm512_cvtepu8_epi32(_mm_set_epi64x(
      (long long)codes_high(code, k), (long long)codes_low(code, k)));
  __m512 g =
      _mm512_add_ps(_mm512_setzero_ps(), _mm512_maskz_loadu_ps(lanes(k), dy));
  *ga = _mm512_maskz_mov_ps(
      _mm512_cmpeq_epi32_mask(cv, _mm512_set1_epi32(CODE_A)), g);
  *gb = _mm512_maskz_mov_ps(
      _mm512_cmpeq_epi32_mask(cv, _mm512_set1_epi32(CODE_B)), g);
  *gc = _mm512_maskz_mov_ps(
      _mm512_cmpeq_epi32_mask(cv, _mm512_set1_epi32(CODE_C)), g);
  *gd = _mm512_maskz_mov_ps(
      _mm512_cmpeq_epi32_mask(cv, _mm512_set1_epi32(CODE_D)), g);
}

/* spread_row_plain, 16 windows at a time: the four candidates' values
 * interleaved back into the rows by a permutation. */
__attribute__((target("avx512f"))) static void
spread_row_avx512(const float *dy, const uint8_t *code, float *top,
                  float *bottom, int64_t out_w) {
  const __m512i first = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20,
                                          5, 21, 6, 22, 7, 23);
  const __m512i second = _mm512_add_epi32(first, _mm512_set1_epi32(8));
  for (int64_t ow = 0; ow < out_w; ow += 16) {
    int64_t k = out_w - ow < 16 ? out_w - ow : 16;
    __mmask16 lo = lanes(2 * k), hi = lanes(2 * k - 16);
    __m512 ga, gb, gc, gd;
    named16(code + ow, k, dy + ow, &ga, &gb, &gc, &gd);
    float *t = top + 2 * ow, *u = bottom + 2 * ow;
    __m512 t0 = _mm512_permutex2var_ps(ga, first, gb);
    __m512 u0 = _mm512_permutex2var_ps(gc, first, gd);
    if (lo == 0xFFFF) { /* plain stores where they can: masked ones are
                           slower */
      _mm512_storeu_ps(t, t0);
      _mm512_storeu_ps(u, u0);
    } else {
      _mm512_mask_storeu_ps(t, lo, t0);
      _mm512_mask_storeu_ps(u, lo, u0);
    }
    _mm512_mask_storeu_ps(t + 16, hi, _mm512_permutex2var_ps(ga, second, gb));
    _mm512_mask_storeu_ps(u + 16, hi, _mm512_permutex2var_ps(gc, second, gd));
  }
}

/* spread_row_avx512 over two rows of at most 8 windows at once (as
 * select_row_pairs_avx512): row r's windows in lanes [0, out_w), row
 * r + 1's in [out_w, 2 out_w); the first row's dx at top and bottom, the
 * second's two rows of x further (w apart within a row pair). */
__attribute__((target("avx512f"))) static void
spread_row_pair_avx512(const float *dy, const uint8_t *code, float *top,
                       int64_t w, int64_t out_w, bool two) {
  /* a_j b_j interleaved for the first row, j < out_w; out_w on for the
   * second */
  const __m512i first =
      _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i second = _mm512_add_epi32(first, _mm512_set1_epi32((int)out_w));
  __m512 ga, gb, gc, gd;
  named16(code, (two ? 2 : 1) * out_w, dy, &ga, &gb, &gc, &gd);
  __mmask16 row = lanes(2 * out_w);
  _mm512_mask_storeu_ps(top, row, _mm512_permutex2var_ps(ga, first, gb));
  _mm512_mask_storeu_ps(top + w, row, _mm512_permutex2var_ps(gc, first, gd));
  if (!two)
    return;
  _mm512_mask_storeu_ps(top + 2 * w, row,
                        _mm512_permutex2var_ps(ga, second, gb));
  _mm512_mask_storeu_ps(top + 3 * w, row,
                        _mm512_permutex2var_ps(gc, second, gd));
}

/* The same rows with AVX2, 8 windows at a time, for CPUs without
 * AVX-512: lanes [0, count) of a mask for the masked loads and stores. */
__attribute__((target("avx2"))) static inline __m256i lanes8(int64_t count) {
  int32_t n = count < 0 ? 0 : count > 8 ? 8 : (int32_t)count;
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* The even (pick 0x88) or odd (0xDD) floats of the 16 in v0, v1, in
 * order: the shuffle takes them lane by lane, the permutation puts the
 * four 64-bit pieces back in order. */
#define DEINTERLEAVE(v0, v1, pick)                                             \
  _mm256_castpd_ps(_mm256_permute4x64_pd(                                      \
      _mm256_castps_pd(_mm256_shuffle_ps(v0, v1, pick)), 0xD8))

__attribute__((target("avx2"))) static inline __m256 better8(bool max, __m256 v,
                                                             __m256 bv) {
  /* v > bv or v < bv: false when either is NaN, as in C */
  return max ? _mm256_cmp_ps(v, bv, _CMP_GT_OQ)
             : _mm256_cmp_ps(v, bv, _CMP_LT_OQ);
}

/* 16 floats from p, the first `count` of them loaded, the rest 0 */
__attribute__((target("avx2"))) static inline void
load16(const float *p, int64_t count, __m256 *v0, __m256 *v1) {
  if (count >= 16) {
    *v0 = _mm256_loadu_ps(p);
    *v1 = _mm256_loadu_ps(p + 8);
  } else {
    *v0 = _mm256_maskload_ps(p, lanes8(count));
    *v1 = _mm256_maskload_ps(p + 8, lanes8(count - 8));
  }
}

/* pre16 with AVX2, 8 inputs */
__attribute__((target("avx2"))) static inline __m256
pre8(const pre_terms *p, const __m256 k[3], __m256 x) {
  __m256 v = x;
  if (p->form == PRE_ADD)
    v = _mm256_add_ps(x, k[2]);
  else if (p->form == PRE_AFFINE)
    v = _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(x, k[0]), k[1]), k[2]);
  if (!p->relu)
    return v;
  __m256 zero = _mm256_setzero_ps();
  return _mm256_blendv_ps(v, zero, _mm256_cmp_ps(v, zero, _CMP_LE_OQ));
}

__attribute__((target("avx2"))) static void
select_rows_avx2(bool max, const float *x, int64_t w, int64_t rows,
                 const pre_terms *pre, float *y, uint8_t *code, int64_t out_w) {
  const __m256 pk[3] = {_mm256_set1_ps(pre->m), _mm256_set1_ps(pre->scale),
                        _mm256_set1_ps(pre->shift)};
  const __m256i two = _mm256_set1_epi32(2), one = _mm256_set1_epi32(1);
  for (int64_t r = 0; r < rows; r++, y += out_w) {
    const float *top = x + 2 * r * w, *bottom = top + w;
    uint8_t *row_code = code != NULL ? code + r * out_w : NULL;
    int nan = 0;
    for (int64_t ow = 0; ow < out_w; ow += 8) {
      int64_t k = out_w - ow < 8 ? out_w - ow : 8;
      __m256 t0, t1, u0, u1;
      load16(top + 2 * ow, 2 * k, &t0, &t1);
      load16(bottom + 2 * ow, 2 * k, &u0, &u1);
      t0 = pre8(pre, pk, t0);
      t1 = pre8(pre, pk, t1);
      u0 = pre8(pre, pk, u0);
      u1 = pre8(pre, pk, u1);
      __m256 a = DEINTERLEAVE(t0, t1, 0x88), b = DEINTERLEAVE(t0, t1, 0xDD);
      __m256 c = DEINTERLEAVE(u0, u1, 0x88), d = DEINTERLEAVE(u0, u1, 0xDD);
      __m256 tb = better8(max, b, a), td = better8(max, d, c);
      __m256 ab = _mm256_blendv_ps(a, b, tb), cd = _mm256_blendv_ps(c, d, td);
      __m256 tt = better8(max, cd, ab);
      __m256 best = _mm256_blendv_ps(ab, cd, tt);
      if (k == 8)
        _mm256_storeu_ps(y + ow, best);
      else
        _mm256_maskstore_ps(y + ow, lanes8(k), best);
      if (row_code != NULL) {
        /* t ? CODE_C + td : CODE_A + tb, the masks all ones or zeros */
        __m256i ti = _mm256_castps_si256(tt);
        __m256i pair = _mm256_blendv_epi8(_mm256_castps_si256(tb),
                                          _mm256_castps_si256(td), ti);
        __m256i codes = _mm256_or_si256(_mm256_and_si256(ti, two),
                                        _mm256_and_si256(pair, one));
        int32_t lanes[8];
        _mm256_storeu_si256((__m256i *)lanes, codes);
        for (int64_t i = 0; i < k; i++)
          row_code[ow + i] = (uint8_t)lanes[i];
      }
      /* the windows' lanes only: pre may turn a masked-off zero into NaN,
       * which would cost a needless pass over the row */
      nan |=
          _mm256_movemask_ps(_mm256_or_ps(_mm256_cmp_ps(a, b, _CMP_UNORD_Q),
                                          _mm256_cmp_ps(c, d, _CMP_UNORD_Q))) &
          ((1 << k) - 1);
    }
    if (nan)
      fix_nan_windows(top, bottom, pre, y, row_code, out_w);
  }
}

/* g where the window's code is `code`, +0 elsewhere */
__attribute__((target("avx2"))) static inline __m256 named8(__m256 g,
                                                            __m256i codes,
                                                            int32_t code) {
  __m256i hit = _mm256_cmpeq_epi32(codes, _mm256_set1_epi32(code));
  return _mm256_and_ps(g, _mm256_castsi256_ps(hit));
}

/* spread_row_plain, 8 windows at a time: each candidate's value where the
 * code names it (0.0f + dy, as the plain loop adds it), +0 elsewhere,
 * interleaved back into the rows. */
__attribute__((target("avx2"))) static void
spread_row_avx2(const float *dy, const uint8_t *code, float *top, float *bottom,
                int64_t out_w) {
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t ow = 0; ow < out_w; ow += 8) {
    int64_t k = out_w - ow < 8 ? out_w - ow : 8;
    __m256i cv = _mm256_cvtepu8_epi32(
        _mm_cvtsi64_si128((long long)codes_low(code + ow, k)));
    __m256 g = _mm256_add_ps(zero, _mm256_maskload_ps(dy + ow, lanes8(k)));
    __m256 ga = named8(g, cv, CODE_A), gb = named8(g, cv, CODE_B);
    __m256 gc = named8(g, cv, CODE_C), gd = named8(g, cv, CODE_D);
    /* unpack interleaves within 128-bit lanes; the lane permutes order
     * them: windows 0-3 first, then 4-7 */
    __m256 tl = _mm256_unpacklo_ps(ga, gb), th = _mm256_unpackhi_ps(ga, gb);
    __m256 ul = _mm256_unpacklo_ps(gc, gd), uh = _mm256_unpackhi_ps(gc, gd);
    float *t = top + 2 * ow, *u = bottom + 2 * ow;
    __m256 t0 = _mm256_permute2f128_ps(tl, th, 0x20);
    __m256 t1 = _mm256_permute2f128_ps(tl, th, 0x31);
    __m256 u0 = _mm256_permute2f128_ps(ul, uh, 0x20);
    __m256 u1 = _mm256_permute2f128_ps(ul, uh, 0x31);
    if (k == 8) {
      _mm256_storeu_ps(t, t0);
      _mm256_storeu_ps(t + 8, t1);
      _mm256_storeu_ps(u, u0);
      _mm256_storeu_ps(u + 8, u1);
    } else {
      __m256i lo = lanes8(2 * k), hi = lanes8(2 * k - 8);
      _mm256_maskstore_ps(t, lo, t0);
      _mm256_maskstore_ps(t + 8, hi, t1);
      _mm256_maskstore_ps(u, lo, u0);
      _mm256_maskstore_ps(u + 8, hi, u1);
    }
  }
}
#endif

/* Which rows run: AVX-512 where the CPU has it, else AVX2, else the plain
 * loops. Internal tests force the plain or the AVX2 rows to check them
 * on the same machine (layer.h). */
typedef enum { ROWS_PLAIN, ROWS_AVX2, ROWS_AVX512 } rows_kind;

static bool plain_rows_forced, avx2_rows_forced;

void nnlib__pool2d_force_plain_rows(bool on) { plain_rows_forced = on; }

void nnlib__pool2d_force_avx2_rows(bool on) { avx2_rows_forced = on; }

static rows_kind rows_for_cpu(void) {
#ifdef POOL_AVX512
  if (plain_rows_forced)
    return ROWS_PLAIN;
  if (!avx2_rows_forced && __builtin_cpu_supports("avx512f"))
    return ROWS_AVX512;
  if (__builtin_cpu_supports("avx2"))
    return ROWS_AVX2;
#endif
  return ROWS_PLAIN;
}

/* The plain rows over pre's values: the two rows under a run of at most
 * PRE_WINDOWS windows computed into a block on the stack, then selected. */
enum { PRE_WINDOWS = 256 };

static void select_rows_plain_pre(bool max, const float *x, int64_t w,
                                  int64_t rows, const pre_terms *pre, float *y,
                                  uint8_t *code, int64_t out_w) {
  float block[2][2 * PRE_WINDOWS];
  for (int64_t r = 0; r < rows; r++)
    for (int64_t ow = 0; ow < out_w; ow += PRE_WINDOWS) {
      int64_t k = out_w - ow < PRE_WINDOWS ? out_w - ow : PRE_WINDOWS;
      for (int64_t half = 0; half < 2; half++)
        for (int64_t j = 0; j < 2 * k; j++)
          block[half][j] = pre_value(pre, x[(2 * r + half) * w + 2 * ow + j]);
      int64_t at = r * out_w + ow;
      select_row_plain(max, block[0], block[1], y + at,
                       code != NULL ? code + at : NULL, k);
    }
}

/* `rows` rows of windows of a plane of width w (select_rows_avx512), over
 * pre's values of x. */
static void select_rows(bool max, const float *x, int64_t w, int64_t rows,
                        const pre_terms *pre, float *y, uint8_t *code,
                        int64_t out_w) {
#ifdef POOL_AVX512
  rows_kind kind = rows_for_cpu();
  if (kind == ROWS_AVX512) {
    select_rows_avx512(max, x, w, rows, pre, y, code, out_w);
    return;
  }
  if (kind == ROWS_AVX2) {
    select_rows_avx2(max, x, w, rows, pre, y, code, out_w);
    return;
  }
#endif
  if (pre->form != PRE_NONE || pre->relu) {
    select_rows_plain_pre(max, x, w, rows, pre, y, code, out_w);
    return;
  }
  for (int64_t r = 0; r < rows; r++)
    select_row_plain(max, x + 2 * r * w, x + (2 * r + 1) * w, y + r * out_w,
                     code != NULL ? code + r * out_w : NULL, out_w);
}

/* Max or min of `planes` planes of x into y, and each window's code
 * (codes NULL: none). */
static void select_2x2(const pool2d_layer *p, const float *x, float *y,
                       uint8_t *codes, int64_t planes) {
  bool max = p->kind == NNLIB_LAYER_MAXPOOL2D;
  int64_t out_plane = p->out_h * p->out_w;
  for (int64_t q = 0; q < planes; q++)
    select_rows(max, x + q * p->in_h * p->in_w, p->in_w, p->out_h, &NO_PRE,
                y + q * out_plane, codes != NULL ? codes + q * out_plane : NULL,
                p->out_w);
}

/* spread_plane's rows of windows two at a time (spread_row_pair_avx512) */
static void spread_row_pairs(const float *dy, const uint8_t *codes, float *dx,
                             int64_t oh_count, int64_t w, int64_t ow) {
#ifdef POOL_AVX512
  for (int64_t oh = 0; oh < oh_count; oh += 2)
    spread_row_pair_avx512(dy + oh * ow, codes + oh * ow, dx + 2 * oh * w, w,
                           ow, oh + 1 < oh_count);
#else
  (void)dy, (void)codes, (void)dx, (void)oh_count, (void)w, (void)ow;
#endif
}

/* dx of one h x w plane from dy and the codes of its windows; an odd
 * last row or column is in no window: zero. Each input lies in at most
 * one window, so dx is written once, with no zeroing pass before. */
static void spread_plane(const float *dy, const uint8_t *codes, float *dx,
                         int64_t h, int64_t w) {
  /* Rows of up to 8 windows go two at a time with AVX-512 (the benchmark
   * CNN's second batchnorm, 7 windows a row: its backward 0.60 ms against
   * 0.77 through the plain loop, one thread; 0.47 once the codes were
   * read in place, codes_low). Rows of 9 to 11 windows take the plain
   * loop, which beat a row at a time in vectors when each row's codes
   * still stalled on their copy (7 windows a row 0.37 ms against 0.43, 14
   * windows 0.57 against 0.48, over 3.2 and 6.4 MB of dx). */
  int64_t oh_count = h / 2, ow = w / 2;
  rows_kind kind = rows_for_cpu();
  if (ow <= 8 && kind == ROWS_AVX512)
    spread_row_pairs(dy, codes, dx, oh_count, w, ow);
  else
    for (int64_t oh = 0; oh < oh_count; oh++) {
      float *top = dx + 2 * oh * w, *bottom = top + w;
#ifdef POOL_AVX512
      if (kind == ROWS_AVX512 && ow >= 12)
        spread_row_avx512(dy + oh * ow, codes + oh * ow, top, bottom, ow);
      else if (kind == ROWS_AVX2 && ow >= 12)
        spread_row_avx2(dy + oh * ow, codes + oh * ow, top, bottom, ow);
      else
#endif
        spread_row_plain(dy + oh * ow, codes + oh * ow, top, bottom, ow);
    }
  for (int64_t i = 0; i < 2 * oh_count; i++) /* an odd last column */
    for (int64_t j = 2 * ow; j < w; j++)
      dx[i * w + j] = 0.0f;
  for (int64_t i = 2 * oh_count; i < h; i++) /* an odd last row */
    memset(dx + i * w, 0, (size_t)w * sizeof(float));
}

/* spread_plane over `planes` planes */
static void spread_2x2(const pool2d_layer *p, const float *dy,
                       const uint8_t *codes, float *dx, int64_t planes) {
  int64_t in_plane = p->in_h * p->in_w, out_plane = p->out_h * p->out_w;
  for (int64_t q = 0; q < planes; q++)
    spread_plane(dy + q * out_plane, codes + q * out_plane, dx + q * in_plane,
                 p->in_h, p->in_w);
}

/* Max or min of `planes` planes of x into y, and each winner's index
 * (any window but 2x2_s2). */
static void select_forward(const pool2d_layer *p, const float *x, float *y,
                           int32_t *winners, int64_t planes) {
  int64_t in_plane = p->in_h * p->in_w;
  pool_axis rows = rows_of(p), cols = cols_of(p);
  bool max = p->kind == NNLIB_LAYER_MAXPOOL2D;
  bool dense = p->dh == 1 && p->dw == 1;
  if (dense && max)
    SELECT_LOOP(v > bv, 1, 1, unit_taps)
  else if (dense)
    SELECT_LOOP(v < bv, 1, 1, unit_taps)
  else if (max)
    SELECT_LOOP(v > bv, p->dh, p->dw, axis_taps)
  else
    SELECT_LOOP(v < bv, p->dh, p->dw, axis_taps)
}

/* What an average window's sum is divided by (see the top of the file). */
static int64_t average_divisor(const pool2d_layer *p, const pool_taps *r,
                               const pool_taps *c) {
  return p->count_pad ? r->padded * c->padded : r->real * c->real;
}

/* Averages have no dilation (the constructor refuses it): unit steps.
 * The output columns [lo, hi) have windows inside the input's columns
 * (taps ow s - left .. + k, all real): their loops skip the clipping and
 * share one divisor per row. */
static void inner_columns(const pool2d_layer *p, int64_t *lo, int64_t *hi) {
  int64_t first = (p->pl + p->sw - 1) / p->sw; /* ow s >= left */
  int64_t room = p->in_w + p->pl - p->kw;      /* ow s + k <= W + left */
  int64_t last = room < 0 ? 0 : room / p->sw + 1;
  *lo = min64(first, p->out_w);
  *hi = min64(last, p->out_w);
  if (*hi < *lo)
    *hi = *lo;
}

static float window_sum(const pool2d_layer *p, const float *src,
                        const pool_taps *r, int64_t c0, int64_t c1) {
  float sum = 0.0f;
  for (int64_t i = r->first; i < r->end; i++)
    for (int64_t j = c0; j < c1; j++)
      sum += src[i * p->in_w + j];
  return sum;
}

/* One clipped window at a row's edge: its own divisor. */
static float edge_average(const pool2d_layer *p, const pool_axis *cols,
                          const float *src, const pool_taps *r, int64_t ow) {
  pool_taps c = unit_taps(cols, ow);
  float sum = window_sum(p, src, r, c.first, c.end);
  return sum * (1.0f / (float)average_divisor(p, r, &c));
}

/* The divisor of the inner windows of a row: rows x k. */
static float inner_reciprocal(const pool2d_layer *p, const pool_taps *r) {
  return 1.0f / (float)((p->count_pad ? r->padded : r->real) * p->kw);
}

static void average_forward(const pool2d_layer *p, const float *x, float *y,
                            int64_t planes) {
  int64_t in_plane = p->in_h * p->in_w, lo, hi;
  pool_axis rows = rows_of(p), cols = cols_of(p);
  inner_columns(p, &lo, &hi);
  for (int64_t q = 0; q < planes; q++) {
    const float *src = x + q * in_plane;
    for (int64_t oh = 0; oh < p->out_h; oh++) {
      pool_taps r = unit_taps(&rows, oh);
      float inv = inner_reciprocal(p, &r);
      int64_t ow = 0;
      for (; ow < lo; ow++)
        *y++ = edge_average(p, &cols, src, &r, ow);
      for (; ow < hi; ow++) {
        int64_t c0 = ow * p->sw - p->pl;
        *y++ = window_sum(p, src, &r, c0, c0 + p->kw) * inv;
      }
      for (; ow < p->out_w; ow++)
        *y++ = edge_average(p, &cols, src, &r, ow);
    }
  }
}

/* The passes run over planes [begin, end) of the batch (a plane's outputs
 * depend on that plane alone), split over nnlib's threads when a part
 * holds at least PLANE_GRAIN_FLOATS input floats: below that the hand-off
 * costs more than it saves. */
#define PLANE_GRAIN_FLOATS ((int64_t)32768)

static int64_t planes_per_part(const pool2d_layer *p) {
  int64_t in_plane = p->in_h * p->in_w;
  return (PLANE_GRAIN_FLOATS + in_plane - 1) / in_plane;
}

typedef struct pool_pass {
  const pool2d_layer *p;
  const float *x, *dy;
  float *y, *dx;
  int32_t *winners; /* NULL: none (average, 2x2 windows) */
  uint8_t *codes;   /* 2x2 windows' winners (NULL: none) */
} pool_pass;

/* A pass with its winners' room: the workspace is int32 indices, or
 * bytes for 2x2 windows; nothing reads it as floats. */
static pool_pass winner_pass(const pool2d_layer *p, const nnlib__run *run) {
  pool_pass t = {p, NULL, NULL, NULL, NULL, NULL, NULL};
  if (p->kind == NNLIB_LAYER_AVGPOOL2D)
    return t;
  if (two_by_two(p))
    t.codes = (uint8_t *)(void *)run->workspace;
  else
    t.winners = (int32_t *)(void *)run->workspace;
  return t;
}

static void forward_planes(void *ctx, int64_t begin, int64_t end) {
  const pool_pass *t = ctx;
  const pool2d_layer *p = t->p;
  int64_t in_plane = p->in_h * p->in_w, out_plane = p->out_h * p->out_w;
  const float *x = t->x + begin * in_plane;
  float *y = t->y + begin * out_plane;
  if (p->kind == NNLIB_LAYER_AVGPOOL2D)
    average_forward(p, x, y, end - begin);
  else if (two_by_two(p))
    select_2x2(p, x, y, t->codes != NULL ? t->codes + begin * out_plane : NULL,
               end - begin);
  else
    select_forward(p, x, y, t->winners + begin * out_plane, end - begin);
}

static nnlib_status pool2d_forward(nnlib_layer *l, const nnlib__run *run,
                                   const float *x, float *y, int64_t n) {
  const pool2d_layer *p = (const pool2d_layer *)l;
  pool_pass t = winner_pass(p, run);
  t.x = x;
  t.y = y;
  if (run->folded) /* no backward follows: no winners */
    t.codes = NULL;
  nnlib__parallel_for(n * p->channels, planes_per_part(p), forward_planes,
                      &t);
  return NNLIB_OK;
}

static void spread(const pool2d_layer *p, float *dst, const pool_taps *r,
                   int64_t c0, int64_t c1, float g) {
  for (int64_t i = r->first; i < r->end; i++)
    for (int64_t j = c0; j < c1; j++)
      dst[i * p->in_w + j] += g;
}

static void spread_edge(const pool2d_layer *p, const pool_axis *cols,
                        float *dst, const pool_taps *r, int64_t ow, float dy) {
  pool_taps c = unit_taps(cols, ow);
  float g = dy * (1.0f / (float)average_divisor(p, r, &c));
  spread(p, dst, r, c.first, c.end, g);
}

/* average_forward's windows, each spreading dy / divisor. */
static void average_backward(const pool2d_layer *p, const float *dy,
                             float *dx, int64_t planes) {
  int64_t in_plane = p->in_h * p->in_w, lo, hi;
  pool_axis rows = rows_of(p), cols = cols_of(p);
  inner_columns(p, &lo, &hi);
  for (int64_t q = 0; q < planes; q++) {
    float *dst = dx + q * in_plane;
    for (int64_t oh = 0; oh < p->out_h; oh++) {
      pool_taps r = unit_taps(&rows, oh);
      float inv = inner_reciprocal(p, &r);
      int64_t ow = 0;
      for (; ow < lo; ow++)
        spread_edge(p, &cols, dst, &r, ow, *dy++);
      for (; ow < hi; ow++) {
        int64_t c0 = ow * p->sw - p->pl;
        spread(p, dst, &r, c0, c0 + p->kw, *dy++ * inv);
      }
      for (; ow < p->out_w; ow++)
        spread_edge(p, &cols, dst, &r, ow, *dy++);
    }
  }
}

/* dx of planes [begin, end): zeros, then every output's dy added at its
 * winner (in output order, as ties and overlapping windows need) or spread
 * over its window. */
static void backward_planes(void *ctx, int64_t begin, int64_t end) {
  const pool_pass *t = ctx;
  const pool2d_layer *p = t->p;
  int64_t in_plane = p->in_h * p->in_w, out_plane = p->out_h * p->out_w;
  float *dx = t->dx + begin * in_plane;
  const float *dy = t->dy + begin * out_plane;
  if (t->codes != NULL) {
    spread_2x2(p, dy, t->codes + begin * out_plane, dx, end - begin);
    return;
  }
  memset(dx, 0, (size_t)((end - begin) * in_plane) * sizeof(float));
  if (t->winners == NULL) {
    average_backward(p, dy, dx, end - begin);
    return;
  }
  const int32_t *winners = t->winners + begin * out_plane;
  for (int64_t q = 0; q < end - begin; q++) {
    float *plane = dx + q * in_plane;
    const float *g = dy + q * out_plane;
    const int32_t *at = winners + q * out_plane;
    for (int64_t o = 0; o < out_plane; o++)
      plane[at[o]] += g[o];
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
  pool_pass t = winner_pass(p, run);
  t.dy = dy;
  t.dx = dx;
  nnlib__parallel_for(n * p->channels, planes_per_part(p), backward_planes,
                      &t);
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

bool nnlib__layer_is_pool2x2(const nnlib_layer *l) {
  if (l == NULL || (l->ops != &maxpool2d_ops && l->ops != &minpool2d_ops))
    return false;
  const pool2d_layer *p = (const pool2d_layer *)l;
  return p->kh == 2 && p->kw == 2 && p->sh == 2 && p->sw == 2 &&
         p->pt == 0 && p->pl == 0 && p->pb == 0 && p->pr == 0 &&
         p->dh == 1 && p->dw == 1 && !p->ceil_mode;
}

void nnlib__pool2x2_rows(const nnlib_layer *l, const float *x, int64_t w,
                         int64_t rows, float *y, uint8_t *codes,
                         int64_t out_w) {
  bool max = ((const pool2d_layer *)l)->kind == NNLIB_LAYER_MAXPOOL2D;
  select_rows(max, x, w, rows, &NO_PRE, y, codes, out_w);
}

void nnlib__pool2x2_rows_pre(const nnlib_layer *l, const float *x, int64_t w,
                             int64_t rows, const nnlib__pool2x2_pre *pre,
                             float *y, uint8_t *codes, int64_t out_w) {
  bool max = ((const pool2d_layer *)l)->kind == NNLIB_LAYER_MAXPOOL2D;
  pre_terms terms = pre_terms_of(pre);
  select_rows(max, x, w, rows, &terms, y, codes, out_w);
}

void nnlib__pool2x2_spread_plane(const float *dy, const uint8_t *codes,
                                 float *dx, int64_t h, int64_t w) {
  spread_plane(dy, codes, dx, h, w);
}

nnlib_status nnlib_pool2d_options_init_size(nnlib_pool2d_options *o,
                                            size_t struct_size) {
  nnlib_pool2d_options d;
  memset(&d, 0, sizeof d);
  d.padding_bottom = -1;
  d.padding_right = -1;
  d.dilation_h = 1;
  d.dilation_w = 1;
  d.count_include_pad = 1;
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

/* Kernel, stride and dilation, each within the 32-bit BLAS range, and the
 * dilated window d (k - 1) + 1 too, so that the output size arithmetic
 * never overflows. */
static nnlib_status check_window_args(const char *name, int64_t kh, int64_t kw,
                                      const nnlib_pool2d_options *o) {
  const int64_t limit = NNLIB__BLAS_DIM_MAX;
  NNLIB_CHECK_ARG(kh >= 1 && kw >= 1 && kh <= limit && kw <= limit,
                  "%s: kernel %lldx%lld, must be at least 1x1 and at most "
                  "%lld each",
                  name, (long long)kh, (long long)kw, (long long)limit);
  NNLIB_CHECK_ARG(o->stride_h >= 0 && o->stride_w >= 0 &&
                      o->stride_h <= limit && o->stride_w <= limit,
                  "%s: stride %lldx%lld, must be at least 1 (0: the kernel "
                  "size) and at most %lld",
                  name, (long long)o->stride_h, (long long)o->stride_w,
                  (long long)limit);
  NNLIB_CHECK_ARG(o->dilation_h >= 1 && o->dilation_w >= 1 &&
                      o->dilation_h <= limit && o->dilation_w <= limit,
                  "%s: dilation %lldx%lld, must be at least 1 and at most "
                  "%lld",
                  name, (long long)o->dilation_h, (long long)o->dilation_w,
                  (long long)limit);
  /* both factors are below 2^31: the products fit */
  NNLIB_CHECK_ARG(o->dilation_h * (kh - 1) + 1 <= limit &&
                      o->dilation_w * (kw - 1) + 1 <= limit,
                  "%s: kernel %lldx%lld with dilation %lldx%lld spans more "
                  "than 2^31 - 1",
                  name, (long long)kh, (long long)kw,
                  (long long)o->dilation_h, (long long)o->dilation_w);
  return NNLIB_OK;
}

/* Padding on each side at most kernel - 1, ONNX's limit (ONNX Runtime
 * refuses more; PyTorch allows half the kernel): the first window then
 * holds an input element, dilated or not. Bottom and right may be -1: as
 * top and left. */
static nnlib_status check_padding(const char *name, int64_t kh, int64_t kw,
                                  const nnlib_pool2d_options *o) {
  int64_t most_h = kh - 1, most_w = kw - 1;
  NNLIB_CHECK_ARG(o->padding_h >= 0 && o->padding_w >= 0 &&
                      o->padding_h <= most_h && o->padding_w <= most_w,
                  "%s: padding %lldx%lld, must be in 0..%lldx%lld (kernel - "
                  "1)",
                  name, (long long)o->padding_h, (long long)o->padding_w,
                  (long long)most_h, (long long)most_w);
  NNLIB_CHECK_ARG(o->padding_bottom >= -1 && o->padding_bottom <= most_h,
                  "%s: padding_bottom %lld, must be in 0..%lld (kernel - 1), "
                  "or -1 (as padding_h)",
                  name, (long long)o->padding_bottom, (long long)most_h);
  NNLIB_CHECK_ARG(o->padding_right >= -1 && o->padding_right <= most_w,
                  "%s: padding_right %lld, must be in 0..%lld (kernel - 1), "
                  "or -1 (as padding_w)",
                  name, (long long)o->padding_right, (long long)most_w);
  return NNLIB_OK;
}

static nnlib_status check_modes(nnlib_layer_kind kind, const char *name,
                                const nnlib_pool2d_options *o) {
  NNLIB_CHECK_ARG(o->ceil_mode == 0 || o->ceil_mode == 1,
                  "%s: ceil_mode %d, must be 0 or 1", name, o->ceil_mode);
  NNLIB_CHECK_ARG(o->count_include_pad == 0 || o->count_include_pad == 1,
                  "%s: count_include_pad %d, must be 0 or 1", name,
                  o->count_include_pad);
  bool average = kind == NNLIB_LAYER_AVGPOOL2D;
  NNLIB_CHECK_ARG(!average || (o->dilation_h == 1 && o->dilation_w == 1),
                  "%s: dilation %lldx%lld; average pooling has none (must be "
                  "1x1, as PyTorch's AvgPool2d)",
                  name, (long long)o->dilation_h, (long long)o->dilation_w);
  NNLIB_CHECK_ARG(average || o->count_include_pad == 1,
                  "%s: count_include_pad 0 applies to average pooling only "
                  "(must stay 1)",
                  name);
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
  const char *name = kind_name(kind);
  NNLIB_TRY(check_window_args(name, kernel_h, kernel_w, &o));
  NNLIB_TRY(check_padding(name, kernel_h, kernel_w, &o));
  NNLIB_TRY(check_modes(kind, name, &o));
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
  p->pt = o.padding_h;
  p->pl = o.padding_w;
  p->pb = o.padding_bottom >= 0 ? o.padding_bottom : o.padding_h;
  p->pr = o.padding_right >= 0 ? o.padding_right : o.padding_w;
  p->dh = o.dilation_h;
  p->dw = o.dilation_w;
  p->ceil_mode = o.ceil_mode == 1;
  p->count_pad = o.count_include_pad == 1;
  *out = &p->base;
  return NNLIB_OK;
}

/* ------------------------- model description and model file (codec) */

enum { OPT_STRIDE = 1, OPT_PAD = 2, OPT_DILATION = 4, OPT_CEIL = 8,
       OPT_EXCLUDE = 16 };

/* pP, pHxW or pTxLxBxR (top, left, bottom, right: ONNX's pads order). */
static nnlib_status parse_padding(const nnlib__spec_item *item, size_t field,
                                  nnlib_pool2d_options *o) {
  const nnlib__spec_field *f = &item->fields[field];
  size_t crosses = 0;
  for (size_t i = 0; i < f->length; i++)
    crosses += f->text[i] == 'x';
  int64_t v[4];
  size_t count = crosses == 3 ? 4 : 2;
  if ((crosses != 3 && crosses > 1) ||
      nnlib__spec_dims(item, field, 1, count, count == 2, 0,
                       NNLIB__BLAS_DIM_MAX, v) != NNLIB_OK)
    return nnlib__spec_field_error(item, field,
                                   "is not pN, pHxW or pTOPxLEFTxBOTTOMxRIGHT "
                                   "with integers in 0..2147483647");
  o->padding_h = v[0], o->padding_w = v[1];
  if (count == 4)
    o->padding_bottom = v[2], o->padding_right = v[3];
  return NNLIB_OK;
}

static unsigned option_bit(const nnlib__spec_item *item, size_t field) {
  const nnlib__spec_field *f = &item->fields[field];
  if (nnlib__spec_field_is(item, field, "ceil"))
    return OPT_CEIL;
  if (nnlib__spec_field_is(item, field, "exclude_pad"))
    return OPT_EXCLUDE;
  char letter = '\0';
  if (f->length > 1)
    letter = f->text[0];
  return letter == 's' ? OPT_STRIDE : letter == 'p' ? OPT_PAD
         : letter == 'd' ? OPT_DILATION : 0u;
}

/* One option of maxpool:K|KHxKW[:sS][:pP][:dD][:ceil][:exclude_pad] (and
 * minpool, avgpool); the stride defaults to the kernel. */
static nnlib_status pool2d_parse_option(const nnlib__spec_item *item,
                                        size_t field, nnlib_pool2d_options *o,
                                        unsigned *seen) {
  unsigned bit = option_bit(item, field);
  if (bit == 0)
    return nnlib__spec_error(item,
                             "argument %zu: pooling options are sN (stride), "
                             "pN (padding), dN (dilation), each N or HxW "
                             "(padding also TOPxLEFTxBOTTOMxRIGHT), ceil "
                             "and exclude_pad",
                             field);
  if (*seen & bit)
    return nnlib__spec_error(item, "argument %zu repeats an option", field);
  *seen |= bit;
  int64_t pair[2];
  switch (bit) {
  case OPT_CEIL: o->ceil_mode = 1; return NNLIB_OK;
  case OPT_EXCLUDE: o->count_include_pad = 0; return NNLIB_OK;
  case OPT_PAD: return parse_padding(item, field, o);
  default: break;
  }
  NNLIB_TRY(nnlib__spec_dims(item, field, 1, 2, true, 1, NNLIB__BLAS_DIM_MAX,
                             pair));
  if (bit == OPT_STRIDE)
    o->stride_h = pair[0], o->stride_w = pair[1];
  else
    o->dilation_h = pair[0], o->dilation_w = pair[1];
  return NNLIB_OK;
}

static nnlib_status pool2d_parse_kind(const nnlib__spec_item *item,
                                      nnlib_layer_kind kind,
                                      nnlib_layer **out) {
  int64_t kernel[2];
  nnlib_pool2d_options o;
  unsigned seen = 0;
  nnlib_pool2d_options_init(&o);
  NNLIB_TRY(nnlib__spec_fields(item, 2, 7));
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
  if (p->pb != p->pt || p->pr != p->pl)
    nnlib__text_append(t, ":p%lldx%lldx%lldx%lld", (long long)p->pt,
                       (long long)p->pl, (long long)p->pb, (long long)p->pr);
  else if (p->pt != 0 || p->pl != 0)
    nnlib__text_append_pair(t, "p", p->pt, p->pl);
  if (p->dh != 1 || p->dw != 1)
    nnlib__text_append_pair(t, "d", p->dh, p->dw);
  if (p->ceil_mode)
    nnlib__text_append(t, ":ceil");
  if (!p->count_pad)
    nnlib__text_append(t, ":exclude_pad");
}

/* Whether the layer needs the config's second part (below). */
static bool has_extension(const pool2d_layer *p) {
  return p->pb != p->pt || p->pr != p->pl || p->dh != 1 || p->dw != 1 ||
         p->ceil_mode || !p->count_pad;
}

/* config: i64 kernel_h, kernel_w, stride_h, stride_w (as used, never 0),
 * padding_h, padding_w (top, left): 48 bytes; then, only for a pool whose
 * other options are not the defaults (since 1.5.0), i64 padding_bottom,
 * padding_right (as used, never -1), dilation_h, dilation_w, u32
 * ceil_mode, count_include_pad: 88 bytes. Pools of the defaults are
 * written as before 1.5.0. */
static void pool2d_write_config(const nnlib_layer *l, nnlib__writer *w) {
  const pool2d_layer *p = (const pool2d_layer *)l;
  const int64_t v[6] = {p->kh, p->kw, p->sh, p->sw, p->pt, p->pl};
  for (int i = 0; i < 6; i++)
    nnlib__put_i64(w, v[i]);
  if (!has_extension(p))
    return;
  const int64_t more[4] = {p->pb, p->pr, p->dh, p->dw};
  for (int i = 0; i < 4; i++)
    nnlib__put_i64(w, more[i]);
  nnlib__put_u32(w, p->ceil_mode ? 1u : 0u);
  nnlib__put_u32(w, p->count_pad ? 1u : 0u);
}

/* The second part of the config into o (its values are checked by
 * nnlib_pool2d_create, whose refusal the loader reports as a corrupt
 * file). */
static nnlib_status read_extension(nnlib__reader *r, const char *name,
                                   nnlib_pool2d_options *o) {
  int64_t v[4];
  uint32_t ceil_mode, count_pad;
  for (int i = 0; i < 4; i++)
    NNLIB_TRY(nnlib__get_i64(r, &v[i]));
  NNLIB_TRY(nnlib__get_u32(r, &ceil_mode));
  NNLIB_TRY(nnlib__get_u32(r, &count_pad));
  if (v[0] < 0 || v[1] < 0 || ceil_mode > 1 || count_pad > 1)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "%s: padding_bottom %lld, padding_right %lld, "
                        "ceil_mode %u, count_include_pad %u (paddings are "
                        "stored as used, the modes 0 or 1)",
                        name, (long long)v[0], (long long)v[1], ceil_mode,
                        count_pad);
  o->padding_bottom = v[0], o->padding_right = v[1];
  o->dilation_h = v[2], o->dilation_w = v[3];
  o->ceil_mode = (int)ceil_mode;
  o->count_include_pad = (int)count_pad;
  return NNLIB_OK;
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
  if (r->left > 0)
    NNLIB_TRY(read_extension(r, kind_name(kind), &o));
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
