/* conv2d_rows.c - a convolution's lowering row by row under AVX-512
 * masks, for stride 1 along the width (conv2d.c's gather_row and
 * scatter_row; nnlib__lowered_rows in layers/layer.h).
 *
 * For kernel offset (i, j), output row oh of a sample's lowered row reads
 * input row ih = row_start + oh row_stride, and its column ow reads input
 * column ow + col_offset, which lies inside the plane for ow in [lo, hi);
 * everything else is padding (0). Each output row goes in chunks of 16
 * columns: one load under the mask of its valid columns (the others load
 * as 0 and are not read, so a mask may point before or past the plane)
 * and one store under the mask of the row's columns. A 14x14 map costs
 * 14 such pairs a plane, where conv2d.c's portable path copies a run with
 * a libc call and then zeroes the run's wrapped columns one float at a
 * time: in the benchmark CNN's training step the lowering and its
 * transpose took about 8% of the time on one thread, and the step ran
 * 1.02x-1.04x faster this way on one thread, 1.01x-1.07x on two (batch
 * 64, three runs of ten rounds alternated in one process, medians;
 * Haswell kernels, a shared host). A gather over the plane as one run
 * (as the scatter) measured slower than row by row.
 *
 * The transpose (scatter) adds a row of dcol into dx under the same
 * masks, in the same order of kernel offsets as the portable path, so
 * each element of dx gets the same additions and the same bits; the
 * gather copies. Both paths give the same bits (tests/
 * test_internal_lowering_rows.c). */
#include "layers/layer.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define ROWS_AVX512 1
#endif

/* Output columns a row may have: chunks of 16, masks on the stack. */
enum { CHUNK = 16, MAX_CHUNKS = 64 };

static bool plain_forced;

void nnlib__lowered_rows_force_plain(bool on) { plain_forced = on; }

#if defined(ROWS_AVX512)
static bool avx512_rows(void) {
  return !plain_forced && __builtin_cpu_supports("avx512f");
}
#endif

#if defined(ROWS_AVX512)
/* The bits of [from, to) within chunk c's 16 columns. */
static __mmask16 chunk_bits(int64_t c, int64_t from, int64_t to) {
  int64_t first = from - c * CHUNK, last = to - c * CHUNK;
  first = first > 0 ? first : 0;
  last = last < CHUNK ? last : CHUNK;
  if (last <= first)
    return 0;
  uint32_t ones = (1u << (last - first)) - 1u;
  return (__mmask16)(ones << first);
}

/* Per chunk: the valid columns (loads) and the row's columns (stores). */
static int64_t row_masks(const nnlib__lowered_rows *r, __mmask16 *valid,
                         __mmask16 *row) {
  int64_t chunks = (r->out_w + CHUNK - 1) / CHUNK;
  for (int64_t c = 0; c < chunks; c++) {
    valid[c] = chunk_bits(c, r->lo, r->hi);
    row[c] = chunk_bits(c, 0, r->out_w);
  }
  return chunks;
}

/* Input row of output row oh, or -1 when it is padding. */
static inline int64_t input_row(const nnlib__lowered_rows *r, int64_t oh) {
  int64_t ih = r->row_start + oh * r->row_stride;
  return ih >= 0 && ih < r->in_h ? ih : -1;
}

__attribute__((target("avx512f"))) static void
gather_avx512(const nnlib__lowered_rows *r, const float *x, int64_t x_stride,
              float *dst, int64_t n) {
  __mmask16 valid[MAX_CHUNKS], row[MAX_CHUNKS];
  int64_t chunks = row_masks(r, valid, row);
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t s = 0; s < n; s++) {
    const float *plane = x + s * x_stride;
    for (int64_t oh = 0; oh < r->out_h; oh++, dst += r->out_w) {
      int64_t ih = input_row(r, oh);
      if (ih < 0) {
        for (int64_t c = 0; c < chunks; c++)
          _mm512_mask_storeu_ps(dst + c * CHUNK, row[c], zero);
        continue;
      }
      /* column ow reads src[ow]; only the valid ones are loaded */
      const float *src = plane + ih * r->in_w + r->col_offset;
      for (int64_t c = 0; c < chunks; c++)
        _mm512_mask_storeu_ps(dst + c * CHUNK, row[c],
                              _mm512_maskz_loadu_ps(valid[c], src + c * CHUNK));
    }
  }
}

/* The scatter goes over the plane as one run instead (stride 1, output
 * as wide as the input: conv2d.c's runs_contiguous): output position q
 * adds into input position q + shift, in chunks of 16 positions under the
 * mask of the valid ones. Row by row, a row's masked load overlapped the
 * 16 floats the row before had just stored (rows of 14 floats), and the
 * load waited for that store to reach the cache: the benchmark CNN's
 * backward took 6% longer than the portable path. */
enum { MAX_PLANE_CHUNKS = 1024 };

static bool plane_run(const nnlib__lowered_rows *r) {
  return r->row_stride == 1 && r->in_w == r->out_w &&
         r->out_h * r->out_w <= (int64_t)CHUNK * MAX_PLANE_CHUNKS;
}

/* Per chunk of 16 output positions, the valid ones; the chunk count. */
static int64_t plane_masks(const nnlib__lowered_rows *r, __mmask16 *valid) {
  int64_t area = r->out_h * r->out_w, chunks = (area + CHUNK - 1) / CHUNK;
  for (int64_t c = 0; c < chunks; c++)
    valid[c] = 0;
  for (int64_t oh = 0; oh < r->out_h; oh++) {
    if (input_row(r, oh) < 0)
      continue;
    int64_t from = oh * r->out_w + r->lo, to = oh * r->out_w + r->hi;
    for (int64_t c = from / CHUNK; c * CHUNK < to; c++)
      valid[c] |= chunk_bits(c, from, to);
  }
  return chunks;
}

__attribute__((target("avx512f"))) static void
scatter_avx512(const nnlib__lowered_rows *r, float *dx, int64_t x_stride,
               const float *src, int64_t n) {
  __mmask16 valid[MAX_PLANE_CHUNKS];
  int64_t chunks = plane_masks(r, valid), area = r->out_h * r->out_w;
  int64_t shift = r->row_start * r->in_w + r->col_offset;
  for (int64_t s = 0; s < n; s++, src += area) {
    float *d = dx + s * x_stride + shift;
    for (int64_t c = 0; c < chunks; c++) {
      if (valid[c] == 0)
        continue;
      __m512 sum =
          _mm512_add_ps(_mm512_maskz_loadu_ps(valid[c], d + c * CHUNK),
                        _mm512_maskz_loadu_ps(valid[c], src + c * CHUNK));
      _mm512_mask_storeu_ps(d + c * CHUNK, valid[c], sum);
    }
  }
}
#endif

bool nnlib__lowered_rows_gather(const nnlib__lowered_rows *r, const float *x,
                                int64_t x_stride, float *dst, int64_t n) {
#if defined(ROWS_AVX512)
  if (!avx512_rows() || r->out_w > (int64_t)CHUNK * MAX_CHUNKS)
    return false;
  gather_avx512(r, x, x_stride, dst, n);
  return true;
#else
  (void)r;
  (void)x;
  (void)x_stride;
  (void)dst;
  (void)n;
  return false;
#endif
}

bool nnlib__lowered_rows_scatter(const nnlib__lowered_rows *r, float *dx,
                                 int64_t x_stride, const float *src,
                                 int64_t n) {
#if defined(ROWS_AVX512)
  if (!avx512_rows() || !plane_run(r))
    return false;
  scatter_avx512(r, dx, x_stride, src, n);
  return true;
#else
  (void)r;
  (void)dx;
  (void)x_stride;
  (void)src;
  (void)n;
  return false;
#endif
}
