/* conv2d.c - 2-D convolution over NCHW batches, lowered (im2col) to GEMMs
 * over chunks of m samples at a time.
 *
 * Shapes: x [N, C, H, W], W [Co, C, kH, kW] viewed as [Co, K] with
 * K = C kH kW, P = OH OW output positions per sample.
 *
 * Per chunk of m samples (s0 .. s0+m-1; chunk_samples picks m; on several
 * threads each thread, its lane, takes a range of the batch and runs its
 * chunks alone, see lanes_planned and backward_run):
 * forward:  col [K, m P]: col[(c, i, j), (s, oh, ow)] =
 *               x[s, c, oh sh - ph + i dh, ow sw - pw + j dw]  (0 outside)
 *           (at stride 1 along the width, where the CPU has AVX-512F, a
 *           row at a time under masks: conv2d_rows.c; col2im likewise)
 *           Z  = W col          [Co,K] x [K,mP]   one sgemm, Z [Co, m, P]
 *           y[s, co, p] = Z[co, s, p] + b[co]      (block copy to NCHW)
 *           With m = 1, Z [Co, P] is y[s] itself: the GEMM writes y.
 *           In training, with a batchnorm as the only reader of y
 *           (folded_batchnorm), the same pass computes each plane's
 *           statistics while it is in cache and the layer offers them to
 *           the batchnorm (nnlib__batchnorm_plane_stats, layers/layer.h).
 * backward: db = sums of dy over samples and positions (first, whole batch)
 *           then per chunk: col again from x (not kept from forward, unless
 *           the batch was one chunk: then forward's col is still there)
 *           dZ[co, s, p] = dy[s, co, p]            (block copy; with m = 1
 *                                                   dy[s] is dZ itself)
 *           dW (+)= dZ col^T    [Co,mP] x [mP,K]  one sgemm, beta 0 for
 *                                                  the first chunk of its
 *                                                  part, then 1; the parts'
 *                                                  dW added at the end
 *           dcol = W^T dZ       [K,Co] x [Co,mP]  one sgemm (not for the
 *                                                  first layer), over col
 *           dx = col2im(dcol): the transpose of the im2col gather
 *           (where forward went by Winograd, below, dx goes by Winograd
 *           too, after every chunk's dW: dy convolved by the turned
 *           filters, winograd_input_grad)
 *           Plain SGD, when fused, updates W after the last chunk: every
 *           chunk's dcol needs W as forward saw it.
 * Workspace (planned at compile): per lane col [K, m P], and Z (the dZ of
 * backward) [Co, m P] when m > 1; the parts' dW. A batch is lowered whole
 * when col and Z fit 16 MB, as for small feature maps; otherwise chunks
 * keep them within 2 MB, in cache between the gather and the GEMMs (see
 * chunk_samples). For examples/fashion_cnn.c at batch 256 the second
 * convolution takes chunks of 6 images (1.6 MB) and plans 1.6 MB per lane
 * instead of 71 MB for the whole batch.
 *
 * Inference with a batchnorm folded in (predict, evaluate, workspaces;
 * the model decides at compile, see folded_batchnorm in layers/layer.h):
 * with s = gamma / sqrt(running_var + eps) per output channel,
 *           y = s (W col + b - mean) + beta = W' col + b',
 *           W' = s W (row co of W times s[co]), b' = (b - mean) s + beta,
 * so the GEMM runs on W' and the output pass adds b' (and applies the
 * folded activation, ReLU in the same loop): the batchnorm's and the
 * activation's passes over the output do not run. W' and b' are made at
 * every call in the call's workspace (Co K products against the GEMM's
 * n Co K P), so they follow every write to the weights and statistics,
 * also through the writable tensors the API hands out, and threads that
 * predict at once through their own workspaces share nothing.
 * A 2x2 max (min) pool at stride 2 after the group folds too
 * (folded_pool): the pool's rows add the bias and apply a ReLU as they
 * load Z (another activation runs over Z in place first) and write only
 * the pooled map (pooled_channels), so Z is planned for chunks of one
 * sample as well.
 *
 * Forward of a 3x3 convolution at stride 1 and padding 1 with at least
 * WINOGRAD_MIN_CHANNELS channels in and out goes by Winograd's F(2x2, 3x3)
 * instead of the lowering, in inference always, in training when the
 * batch is more than one chunk (backward lowers x again then, see
 * conv2d_forward, and backward's input gradient goes by Winograd too)
 * (winograd_forward; the transforms and their
 * math in conv2d_winograd.c): per chunk, V from x, 16 GEMMs M_xi = U_xi
 * V_xi with U made from W (or W') at every call like W', then y from M
 * with the output pass in the output transform (winograd_finishes), or
 * Z from M and the same output pass. On several threads each thread takes
 * a range of the batch and runs its chunks whole, transforms and GEMMs,
 * with a V, M and Z of its own (lanes_planned). */
#include "core/short_runs.h"
#include "core/vecmath.h"
#include "layers/layer.h"

#include <math.h>
#include <string.h>

typedef struct conv2d_layer {
  nnlib_layer base;
  nnlib_conv2d_options o;  /* as created (in_channels 0: from the input) */
  int64_t out_c, kh, kw;
  /* planned */
  int64_t in_c, in_h, in_w, out_h, out_w;
  int64_t chunk; /* samples lowered at once */
  /* the batch of the last forward outside inference when it ran as one
   * chunk (0: none since planning): col still holds it */
  int64_t lowered_chunk;
  int64_t fold_at;  /* workspace offset of W', b' and s when folding */
  /* workspace offset of the plane statistics offered to the batchnorm
   * that alone reads the output in training ([max_batch, Co, 2] doubles,
   * over W', b' and s; 0: none, no such batchnorm) */
  int64_t stats_at;
  /* forward by Winograd F(2x2, 3x3) (winograd_applies): samples per
   * chunk (0: not used) and the workspace offset of its U, V, M and Z
   * (0: over col and Z; else after W', b' and s) */
  int64_t wino_chunk, wino_at;
  /* the lanes planned (see LANES_MAX): the lowering's areas from the
   * workspace's start, the first for chunks of `chunk` samples (col and
   * Z: first_floats), each other for chunks of lane_chunk (lane_floats);
   * Winograd's from wino_at after U, winograd_lane_floats apart */
  int64_t lanes, lane_chunk, first_floats, lane_floats;
  /* backward's parts of the batch, each with a dW of its own (the first
   * in the gradient, the others from partials_at on) */
  int64_t grad_parts, partials_at;
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

/* Chunk sizes (measured on the benchmark CNN and on small feature maps,
 * one and two threads). A batch whose col and Z fit WHOLE_BATCH_BYTES is
 * lowered at once: they stay in the last-level cache, and backward reuses
 * forward's col instead of lowering x again (which costs about 1/Co of the
 * GEMMs, as much as a fifth of the layer on two threads for a 4x4 map).
 * Larger batches go in chunks of at least CHUNK_COLUMNS lowered columns
 * (m P; narrower GEMMs lose speed, on two threads most, as each call is
 * split and synchronised) whose col and Z stay within CHUNK_BYTES, so the
 * GEMMs read col from cache (a core's L2, then L3) right after the gather
 * wrote it instead of streaming a lowered batch of tens of MB through
 * DRAM. On several threads each thread (lane) runs its own chunks, its
 * GEMMs whole: when every chunk's GEMM was split over the threads
 * instead, each call waited for the other thread, and beside a busy
 * process (a thread missing a whole time slice) the ~550 small GEMMs of a
 * batch-256 step of examples/fashion_cnn.c trained 2-3x slower. */
#define WHOLE_BATCH_BYTES ((int64_t)16 << 20)
#define CHUNK_BYTES ((int64_t)2 << 20)
#define CHUNK_COLUMNS ((int64_t)1024)

/* A thin lowering, K < THIN_PATCH (one input channel under a 3x3 or 5x5
 * kernel: the first layer of an image model), goes one sample at a time
 * on every lane. Its GEMM does 2K flops per output value, about what
 * copying Z into y's layout costs; with one sample the GEMM writes y
 * itself, backward takes dy as dZ, and the sample's col stays in L1. The
 * benchmark CNN (K = 9) trained 1.04x-1.05x faster on one thread (batch
 * 256 and 64, medians of 5-9 alternated rounds; inference unchanged). On
 * more threads each lane runs the same one-sample chunks. */
#define THIN_PATCH 32

/* Samples lowered at once, 1 to max_batch, on every lane. One sample
 * needs no Z (its GEMM writes y[s] itself), so a sample too large for the
 * budget goes alone. */
static int64_t chunk_samples(const conv2d_layer *c, int64_t max_batch) {
  if (patch_size(c) < THIN_PATCH)
    return 1;
  const int64_t whole = WHOLE_BATCH_BYTES / (int64_t)sizeof(float);
  const int64_t budget = CHUNK_BYTES / (int64_t)sizeof(float);
  int64_t p = positions(c), per_sample; /* col and Z floats per sample */
  if (nnlib__mul_overflows(patch_size(c) + c->out_c, p, &per_sample))
    return 1;
  if (per_sample <= whole / max_batch)
    return max_batch;
  int64_t chunk = (CHUNK_COLUMNS + p - 1) / p, fits = budget / per_sample;
  chunk = chunk < fits ? chunk : fits;
  chunk = chunk < max_batch ? chunk : max_batch;
  return chunk > 1 ? chunk : 1;
}

/* Inference without backward lowers fewer samples at once on each lane:
 * nothing reuses forward's col, so chunks whose Z fits INFER_Z_BYTES (a
 * core's L2) keep col and Z in cache from the gather through the GEMM to
 * the output pass (the benchmark CNN at batch 64: 2 and 5 samples instead
 * of the whole batch, whose col is 14 MB for the second convolution). A
 * chunk of one sample has its GEMM write y itself. (When the chunks' GEMMs
 * were split over the threads instead of lanes, the small chunks ran
 * inference on two threads 13-16% slower.) Training keeps its chunks:
 * backward reuses col when the batch is one chunk.
 * benchmarks/bench_models.c (conv_chunk, lane_chunks_push) follows these
 * sizes. */
#define INFER_Z_BYTES ((int64_t)256 << 10)

static int64_t infer_chunk(const conv2d_layer *c) {
  int64_t fits = INFER_Z_BYTES / (int64_t)sizeof(float) /
                 (c->out_c * positions(c));
  fits = fits > 1 ? fits : 1;
  return fits < c->chunk ? fits : c->chunk;
}

static int64_t forward_chunk(const conv2d_layer *c, const nnlib__run *run) {
  return run->folded ? infer_chunk(c) : c->chunk;
}

/* Forward runs a 3x3 convolution at stride 1, dilation 1 and padding 1
 * (the output as large as the input) by Winograd's F(2x2, 3x3)
 * (conv2d_winograd.c): 16 GEMMs of [Co, C] x [C, tiles] replace the one of
 * [Co, 9 C] x [9 C, m P], 2.25x fewer multiply-adds on even maps, for
 * transforms that read and write about what the lowering does. With fewer
 * than WINOGRAD_MIN_CHANNELS input or output channels the products are too thin
 * to gain (a first layer over one channel keeps its lowering), and on maps
 * so small that ragged tiles make the 16 products more than 3/4 of the
 * lowering's multiply-adds (16 tiles > 27 P / 4: a 1x1 or 3x3 map) the
 * transforms would cost more than they save. Training does so only when
 * the batch is more than one chunk: a batch of one chunk keeps the
 * lowering, whose col backward reuses, while chunks are lowered again in
 * backward anyway (winograd_trains). Backward's dW stays the lowering's;
 * its dx, the convolution of dy by the filters turned by 180 degrees,
 * goes by Winograd too (winograd_input_grad). The gradients are those of
 * the direct sum, within rounding (tests/test_conv_chunks.c checks them
 * against it in double). The benchmark CNN at batch 64 trained 1.25x
 * faster on one thread and 1.18x on two (benchmarks/MEASUREMENTS.md). */
#define WINOGRAD_MIN_CHANNELS 16
/* Samples per chunk: the chunk's V, M and Z within WINOGRAD_CHUNK_BYTES,
 * so that the GEMMs read V and the output pass reads M from cache. */
#define WINOGRAD_CHUNK_BYTES ((int64_t)2 << 20)

static int64_t winograd_tiles(const conv2d_layer *c) {
  return (c->out_h + 1) / 2 * ((c->out_w + 1) / 2);
}

static bool winograd_applies(const conv2d_layer *c) {
  const nnlib_conv2d_options *o = &c->o;
  return c->kh == 3 && c->kw == 3 && o->stride_h == 1 && o->stride_w == 1 &&
         o->dilation_h == 1 && o->dilation_w == 1 && o->padding_h == 1 &&
         o->padding_w == 1 && c->in_c >= WINOGRAD_MIN_CHANNELS &&
         c->out_c >= WINOGRAD_MIN_CHANNELS &&
         64 * winograd_tiles(c) <= 27 * positions(c);
}

/* A lane's V [16, C, N], M [16, Co, N] and Z [Co, m P] for chunks of m
 * samples, N = m tiles. */
static int64_t winograd_lane_floats(const conv2d_layer *c, int64_t m) {
  int64_t n = m * winograd_tiles(c);
  return 16 * (c->in_c + c->out_c) * n + c->out_c * m * positions(c);
}

/* U [16, Co, C], then each lane's V, M and Z. */
static int64_t winograd_floats(const conv2d_layer *c, int64_t m,
                               int64_t lanes) {
  return 16 * c->out_c * c->in_c + lanes * winograd_lane_floats(c, m);
}

/* 0 where Winograd does not apply, or where U or one sample's areas
 * would pass the BLAS limit (the lowering then runs, and reports sizes it
 * cannot take); else the chunk's samples. */
static int64_t winograd_chunk(const conv2d_layer *c, int64_t max_batch) {
  if (!winograd_applies(c))
    return 0;
  int64_t u, one, per_sample;
  if (nnlib__mul_overflows(16 * c->out_c, c->in_c, &u) ||
      u > NNLIB__BLAS_DIM_MAX ||
      nnlib__mul_overflows(16 * (c->in_c + c->out_c), winograd_tiles(c),
                           &one) ||
      nnlib__mul_overflows(c->out_c, positions(c), &per_sample) ||
      winograd_tiles(c) > NNLIB__BLAS_DIM_MAX || one > NNLIB__BLAS_DIM_MAX)
    return 0;
  per_sample += one;
  int64_t m = WINOGRAD_CHUNK_BYTES / (int64_t)sizeof(float) / per_sample;
  int64_t most = NNLIB__BLAS_DIM_MAX / winograd_tiles(c);
  m = m < most ? m : most;
  m = m < max_batch ? m : max_batch;
  return m > 1 ? m : 1;
}

/* Forward's lanes (nnlib__gemm_units_run): one per thread in force at
 * planning, up to LANES_MAX and one per sample. Each lane takes a range
 * of the batch and runs its chunks whole (lowering or input transform,
 * GEMMs, output pass) in an area of its own, so that what a pass reads
 * was written by its own core and is still in that core's cache. Split by
 * channels and columns instead, each pass read what the other core's
 * part wrote: Winograd's second convolution in the benchmark CNN ran no
 * faster on two threads than on one. */
#define LANES_MAX 8

static int64_t lanes_planned(int64_t max_batch) {
  int64_t lanes = nnlib_get_num_threads();
  lanes = lanes < LANES_MAX ? lanes : LANES_MAX;
  lanes = lanes < max_batch ? lanes : max_batch;
  return lanes > 1 ? lanes : 1;
}

/* A batch of n cut into lanes, each lane's range into chunks of at most
 * `chunk` samples and of near-equal size; unit u is one chunk. The lanes'
 * chunk counts differ by at most one, the larger first, so the units of
 * lane j are those nnlib__gemm_units_run gives it. */
typedef struct batch_lanes {
  int64_t n, lanes, chunk, units;
} batch_lanes;

static int64_t lane_chunks(const batch_lanes *b, int64_t lane,
                           int64_t *samples) {
  *samples = nnlib__range_start(b->n, b->lanes, lane + 1) -
             nnlib__range_start(b->n, b->lanes, lane);
  return (*samples + b->chunk - 1) / b->chunk;
}

/* Lanes for this call: the threads in force, up to those planned, `most`
 * and one per sample. */
static batch_lanes lanes_over(const conv2d_layer *c, int64_t n, int64_t chunk,
                              int64_t most) {
  batch_lanes b = {n, nnlib_get_num_threads(), chunk, 0};
  b.lanes = b.lanes < c->lanes ? b.lanes : c->lanes;
  b.lanes = b.lanes < most ? b.lanes : most;
  b.lanes = b.lanes < n ? b.lanes : n;
  b.lanes = b.lanes > 1 ? b.lanes : 1;
  for (int64_t j = 0; j < b.lanes; j++) {
    int64_t samples;
    b.units += lane_chunks(&b, j, &samples);
  }
  return b;
}

/* Unit u's first sample and sample count. */
static void unit_samples(const batch_lanes *b, int64_t unit, int64_t lane,
                         int64_t *s, int64_t *m) {
  int64_t samples, chunks = lane_chunks(b, lane, &samples);
  int64_t i = unit - nnlib__range_start(b->units, b->lanes, lane);
  int64_t first = nnlib__range_start(samples, chunks, i);
  *s = nnlib__range_start(b->n, b->lanes, lane) + first;
  *m = nnlib__range_start(samples, chunks, i + 1) - first;
}

/* col [K, m P] and Z [Co, m P] (Z when m > 1 or a pool is folded: y is
 * then the pooled map) for chunks of m samples, rounded up to 16 floats;
 * -1 when it overflows. */
static int64_t chunk_floats(const nnlib_layer *l, int64_t m) {
  const conv2d_layer *c = (const conv2d_layer *)l;
  int64_t mp, col, z = 0;
  if (nnlib__mul_overflows(m, positions(c), &mp) ||
      nnlib__mul_overflows(patch_size(c), mp, &col) ||
      ((m > 1 || l->folded_pool != NULL) &&
       nnlib__mul_overflows(c->out_c, mp, &z)) ||
      col > INT64_MAX / 2 - z)
    return -1;
  return (col + z + 15) / 16 * 16;
}

/* Backward's parts (backward_run): one per chunk of the largest batch, up
 * to LANES_MAX, and no more than keep the parts' dW after the first
 * within PARTS_BYTES. Not the thread count: the bits do not depend on it.
 * The threads take whole parts, so a layer with one part (a batch of one
 * chunk, or a large dW) runs its chunks on one lane, each product split
 * over the threads. */
#define PARTS_BYTES ((int64_t)8 << 20)

static int64_t grad_parts(const conv2d_layer *c, int64_t max_batch) {
  int64_t parts = (max_batch + c->chunk - 1) / c->chunk;
  int64_t dw = c->out_c * patch_size(c) * (int64_t)sizeof(float);
  parts = parts < LANES_MAX ? parts : LANES_MAX;
  if (dw > 0 && parts > 1 + PARTS_BYTES / dw)
    parts = 1 + PARTS_BYTES / dw;
  return parts > 1 ? parts : 1;
}

/* Samples the lanes after the first have room for: a share of the batch
 * in forward's chunks (inference's, and training's when the batch is not
 * one chunk: a batch of one chunk trains on the first lane alone, so that
 * backward finds it lowered), and whole chunks when backward has parts
 * for the lanes to take. */
static int64_t lane_chunk(const conv2d_layer *c, int64_t max_batch) {
  int64_t share = (max_batch + c->lanes - 1) / c->lanes;
  int64_t need = infer_chunk(c) < share ? infer_chunk(c) : share;
  if (c->chunk < max_batch && need < (c->chunk < share ? c->chunk : share))
    need = c->chunk < share ? c->chunk : share;
  if (c->grad_parts > 1)
    need = c->chunk;
  return need;
}

/* Lane `lane`'s col and Z. */
static float *lane_area(const conv2d_layer *c, float *workspace, int64_t lane,
                        float **z) {
  int64_t room = lane == 0 ? c->chunk : c->lane_chunk;
  float *col = lane == 0
                   ? workspace
                   : workspace + c->first_floats + (lane - 1) * c->lane_floats;
  *z = col + patch_size(c) * room * positions(c);
  return col;
}

/* Workspace, every GEMM dimension within the 32-bit BLAS interface: the
 * lanes (lane_area: the first's col and Z for chunks of `chunk` samples,
 * the others' for lane_chunk; forward's, then backward's), then
 * backward's parts' dW after the first. With a
 * batchnorm folded in, then W' [Co, K], b' [Co] and s [Co], from a
 * 64-byte boundary. Winograd's area (U, then V, M, Z per lane:
 * winograd_floats) over the lanes where it fits, else after the rest. */
static nnlib_status plan_workspace(nnlib_layer *l, int64_t max_batch) {
  conv2d_layer *c = (conv2d_layer *)l;
  int64_t k = patch_size(c), p = positions(c);
  if (k > NNLIB__BLAS_DIM_MAX || p > NNLIB__BLAS_DIM_MAX)
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "conv2d: the lowered matrix of one sample, %lld x "
                        "%lld, is over the BLAS limit",
                        (long long)k, (long long)p);
  c->chunk = chunk_samples(c, max_batch);
  c->lowered_chunk = 0;
  c->lanes = lanes_planned(max_batch);
  c->grad_parts = grad_parts(c, max_batch);
  c->lane_chunk = lane_chunk(c, max_batch);
  c->first_floats = chunk_floats(l, c->chunk);
  c->lane_floats = chunk_floats(l, c->lane_chunk);
  int64_t lanes_floats;
  if (c->first_floats < 0 || c->lane_floats < 0 ||
      nnlib__mul_overflows(c->lanes - 1, c->lane_floats, &lanes_floats) ||
      lanes_floats > INT64_MAX / 2 - c->first_floats ||
      (uint64_t)(lanes_floats + c->first_floats) > SIZE_MAX / sizeof(float) / 2)
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "conv2d: the lowered matrix of one sample, %lld x "
                        "%lld, overflows",
                        (long long)k, (long long)p);
  c->partials_at = c->first_floats + lanes_floats;
  c->fold_at =
      c->partials_at + ((c->grad_parts - 1) * c->out_c * k + 15) / 16 * 16;
  int64_t fold_floats = l->folded_batchnorm != NULL ? (k + 2) * c->out_c : 0;
  /* the batchnorm's statistics in training share the area of W', b' and
   * s, which only inference uses; doubles, from a 64-byte line */
  int64_t stats_floats = 0;
  c->stats_at = 0;
  if (l->folded_batchnorm != NULL) {
    c->stats_at = (c->fold_at + 15) / 16 * 16;
    if (nnlib__mul_overflows(max_batch, 4 * c->out_c, &stats_floats) ||
        stats_floats > INT64_MAX / 2 - c->stats_at)
      return nnlib__error(NNLIB_ERR_TOO_LARGE,
                          "conv2d: the batchnorm statistics of a batch of "
                          "%lld overflow",
                          (long long)max_batch);
  }
  int64_t end = c->fold_at + fold_floats;
  if (c->stats_at + stats_floats > end)
    end = c->stats_at + stats_floats;
  /* Winograd's area over the lanes, which it does not use (training's
   * backward lowers again whatever Winograd's forward overwrote; the
   * statistics are past fold_at), when it fits there: a training step
   * keeps the workspace from forward to backward, and should not keep a
   * larger one for it */
  c->wino_chunk = winograd_chunk(c, max_batch);
  int64_t wino_floats =
      c->wino_chunk > 0 ? winograd_floats(c, c->wino_chunk, c->lanes) : 0;
  c->wino_at = wino_floats <= c->fold_at ? 0 : (end + 15) / 16 * 16;
  if (c->wino_at + wino_floats > end)
    end = c->wino_at + wino_floats;
  if ((uint64_t)end > SIZE_MAX / sizeof(float))
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "conv2d: the workspace of %lld floats overflows",
                        (long long)end);
  l->workspace_floats = (size_t)end;
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

/* Stride 1 with out_w == in_w (a "same" width, as with a 3x3 kernel and
 * padding 1): the lowered row of kernel offset (i, j) is then, over its
 * valid rows, one contiguous run of the input plane shifted by `shift`,
 * from `first` to `last` (row-major indices into the lowered row), except
 * for the columns outside [lo, hi) where the run wraps into a neighbouring
 * input row. */
typedef struct plane_run {
  int64_t lo, hi, top, bottom; /* valid columns and rows */
  int64_t first, last, shift;  /* first == last: all padding */
} plane_run;

static bool runs_contiguous(const lowering *g) {
  return g->sh == 1 && g->sw == 1 && g->out_w == g->in_w;
}

static plane_run run_of(const lowering *g, int64_t i, int64_t j) {
  plane_run r;
  int64_t w = g->out_w;
  valid_range(j * g->dw - g->pw, 1, g->in_w, w, &r.lo, &r.hi);
  valid_range(i * g->dh - g->ph, 1, g->in_h, g->out_h, &r.top, &r.bottom);
  r.shift = (i * g->dh - g->ph) * w + j * g->dw - g->pw;
  r.first = r.last = 0;
  if (r.lo < r.hi && r.top < r.bottom) {
    r.first = r.top * w + r.lo;
    r.last = (r.bottom - 1) * w + r.hi;
  }
  return r;
}

/* Zeros the wrapped columns of the run's rows in a lowered row. */
static void zero_wrapped(const lowering *g, const plane_run *r, float *row) {
  float zero = nnlib__opaque_zero(); /* a column or two: no memset calls */
  for (int64_t oh = r->top; oh < r->bottom; oh++) {
    float *dst = row + oh * g->out_w;
    for (int64_t ow = 0; ow < r->lo; ow++)
      dst[ow] = zero;
    for (int64_t ow = r->hi; ow < g->out_w; ow++)
      dst[ow] = zero;
  }
}

/* gather_plane for contiguous runs: one copy, zeros around it and over
 * the wrapped columns. */
static void gather_run(const lowering *g, const plane_run *r,
                       const float *plane, float *dst) {
  int64_t area = g->out_h * g->out_w;
  if (r->first == r->last) {
    nnlib__zero_run(dst, area);
    return;
  }
  nnlib__zero_run(dst, r->first);
  nnlib__copy_run(dst + r->first, plane + r->first + r->shift,
                  r->last - r->first);
  nnlib__zero_run(dst + r->last, area - r->last);
  zero_wrapped(g, r, dst);
}

/* scatter_plane for contiguous runs: src is scratch (a row of dcol), so
 * its wrapped columns are zeroed and the run added in one loop; adding
 * those zeros leaves dx unchanged. */
static void scatter_run(const lowering *g, const plane_run *r, float *plane,
                        float *src) {
  if (r->first == r->last)
    return;
  zero_wrapped(g, r, src);
  float *dst = plane + r->first + r->shift;
  for (int64_t q = 0; q < r->last - r->first; q++)
    dst[q] += src[r->first + q];
}

/* One row of col for kernel offset (i, j) of one input plane. */
static void gather_plane(const lowering *g, const float *plane, float *dst,
                         int64_t i, int64_t j) {
  int64_t offset = j * g->dw - g->pw, lo, hi;
  valid_range(offset, g->sw, g->in_w, g->out_w, &lo, &hi);
  for (int64_t oh = 0; oh < g->out_h; oh++, dst += g->out_w) {
    int64_t ih = oh * g->sh - g->ph + i * g->dh;
    if (ih < 0 || ih >= g->in_h) {
      nnlib__zero_run(dst, g->out_w);
      continue;
    }
    const float *src = plane + ih * g->in_w + offset;
    nnlib__zero_run(dst, lo);
    if (g->sw == 1)
      nnlib__copy_run(dst + lo, src + lo, hi - lo);
    else
      for (int64_t ow = lo; ow < hi; ow++)
        dst[ow] = src[ow * g->sw];
    nnlib__zero_run(dst + hi, g->out_w - hi);
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

/* Kernel offset (i, j) row by row for conv2d_rows.c (stride 1 along the
 * width). */
static nnlib__lowered_rows rows_of(const lowering *g, int64_t i, int64_t j) {
  nnlib__lowered_rows r = {
      g->in_h, g->in_w,           g->out_h, g->out_w, i * g->dh - g->ph,
      g->sh,   j * g->dw - g->pw, 0,        0};
  valid_range(r.col_offset, 1, g->in_w, g->out_w, &r.lo, &r.hi);
  return r;
}

/* Row (c, i, j) of col for n samples, from x's planes of channel c
 * (x_stride floats apart); the run of (i, j) is the same for every plane. */
static void gather_row(const lowering *g, const float *x, int64_t x_stride,
                       float *dst, int64_t n, int64_t i, int64_t j) {
  int64_t area = g->out_h * g->out_w;
  nnlib__lowered_rows rows = rows_of(g, i, j);
  if (g->sw == 1 && nnlib__lowered_rows_gather(&rows, x, x_stride, dst, n))
    return;
  if (!runs_contiguous(g)) {
    for (int64_t s = 0; s < n; s++)
      gather_plane(g, x + s * x_stride, dst + s * area, i, j);
    return;
  }
  plane_run r = run_of(g, i, j);
  for (int64_t s = 0; s < n; s++)
    gather_run(g, &r, x + s * x_stride, dst + s * area);
}

/* The transpose of gather_row, adding into dx; src is scratch. */
static void scatter_row(const lowering *g, float *dx, int64_t x_stride,
                        float *src, int64_t n, int64_t i, int64_t j) {
  int64_t area = g->out_h * g->out_w;
  nnlib__lowered_rows rows = rows_of(g, i, j);
  if (g->sw == 1 && nnlib__lowered_rows_scatter(&rows, dx, x_stride, src, n))
    return;
  if (!runs_contiguous(g)) {
    for (int64_t s = 0; s < n; s++)
      scatter_plane(g, dx + s * x_stride, src + s * area, i, j);
    return;
  }
  plane_run r = run_of(g, i, j);
  for (int64_t s = 0; s < n; s++)
    scatter_run(g, &r, dx + s * x_stride, src + s * area);
}

/* The passes around the GEMMs run over independent indices (rows of col,
 * input channels of dx, output channels), split over nnlib's threads when
 * a part holds at least GRAIN_FLOATS floats and the pass runs on the
 * caller (one lane); inside a lane they run on its thread alone. */
#define GRAIN_FLOATS ((int64_t)32768)

static int64_t per_part(int64_t floats_per_index) {
  if (floats_per_index < 1)
    return 1;
  return (GRAIN_FLOATS + floats_per_index - 1) / floats_per_index;
}

/* What a pass over a chunk of m samples reads and writes. */
typedef struct chunk_pass {
  const conv2d_layer *c;
  const float *x, *b; /* what the pass reads (x or dy); the output pass's
                         bias (NULL: none) */
  float *col, *y, *z;
  const nnlib_layer *act, *pool; /* the output pass's folded layers */
  double *stats; /* the output pass's plane statistics [m, Co, 2] for the
                    batchnorm (NULL: none) */
  int64_t m;
} chunk_pass;

/* Rows [begin, end) of col (row = (c, i, j)). */
static void im2col_rows(void *ctx, int64_t begin, int64_t end) {
  const chunk_pass *t = ctx;
  const conv2d_layer *c = t->c;
  lowering g = lowering_of(c);
  int64_t p = positions(c), plane = c->in_h * c->in_w, area = c->kh * c->kw;
  for (int64_t row = begin; row < end; row++) {
    int64_t ch = row / area, i = row % area / c->kw, j = row % c->kw;
    gather_row(&g, t->x + ch * plane, c->in_c * plane, t->col + row * t->m * p,
               t->m, i, j);
  }
}

/* col[K, n P] from x[n, C, H, W]; rows in (c, i, j) order like W's. */
static void im2col(const conv2d_layer *c, const float *x, float *col,
                   int64_t n) {
  chunk_pass t = {.c = c, .x = x, .col = col, .m = n};
  nnlib__parallel_for(patch_size(c), per_part(n * positions(c)), im2col_rows,
                      &t);
}

/* dx of input channels [begin, end): each channel's planes are zeroed and
 * its kH kW rows of dcol added, in row order. */
static void col2im_channels(void *ctx, int64_t begin, int64_t end) {
  const chunk_pass *t = ctx;
  const conv2d_layer *c = t->c;
  lowering g = lowering_of(c);
  int64_t p = positions(c), plane = c->in_h * c->in_w, n = t->m;
  for (int64_t ch = begin; ch < end; ch++) {
    float *dx = t->y + ch * plane;
    for (int64_t s = 0; s < n; s++)
      nnlib__zero_run(dx + s * c->in_c * plane, plane);
    int64_t row = ch * c->kh * c->kw;
    for (int64_t i = 0; i < c->kh; i++)
      for (int64_t j = 0; j < c->kw; j++, row++)
        scatter_row(&g, dx, c->in_c * plane, t->col + row * n * p, n, i, j);
  }
}

/* dx[n, C, H, W] = col2im(dcol); dx is overwritten, dcol is scratch. */
static void col2im(const conv2d_layer *c, float *dcol, float *dx,
                   int64_t n) {
  chunk_pass t = {.c = c, .col = dcol, .y = dx, .m = n};
  nnlib__parallel_for(c->in_c, per_part(c->kh * c->kw * n * positions(c)),
                      col2im_channels, &t);
}

/* What forward multiplies and adds: W and b, or in a folded call W', b'
 * and the activation after them (NULL: none). */
typedef struct output_terms {
  const float *w, *b;
  const nnlib_layer *act, *pool;
} output_terms;

/* The terms of this call; a folded batchnorm's W' = s W and b' = (b -
 * mean) s + beta are made into the workspace. */
static nnlib_status terms_of(const nnlib_layer *l, const nnlib__run *run,
                             output_terms *t) {
  const conv2d_layer *c = (const conv2d_layer *)l;
  t->w = l->params[0].value.data;
  t->b = c->o.with_bias ? l->params[1].value.data : NULL;
  t->act = run->folded ? l->folded_activation : NULL;
  t->pool = run->folded ? l->folded_pool : NULL;
  if (!run->folded || l->folded_batchnorm == NULL)
    return NNLIB_OK;
  int64_t k = patch_size(c);
  float *w = run->workspace + c->fold_at, *b = w + c->out_c * k;
  float *scale = b + c->out_c;
  NNLIB_TRY(nnlib__batchnorm_fold_terms(l->folded_batchnorm, t->b, scale, b));
  for (int64_t co = 0; co < c->out_c; co++)
    for (int64_t i = 0; i < k; i++)
      w[co * k + i] = t->w[co * k + i] * scale[co];
  t->w = w;
  t->b = b;
  return NNLIB_OK;
}

/* dst = f(src + bias) over `count` values, f the folded activation or
 * none; dst may be src. ReLU is applied in the copy's loop, with the
 * activation layer's expression (NaN stays NaN); another activation runs
 * over the values right after the copy wrote them, while they are in L1.
 * Compiled for AVX2 and AVX-512F too (core/vecmath.h: the same bits);
 * GCC vectorises the loops in a function of its own, not inlined
 * (batchnorm.c has the same). */
#if defined(__GNUC__) && !defined(__clang__)
NNLIB__VECTOR_CLONES __attribute__((noinline))
#else
NNLIB__VECTOR_CLONES
#endif
static void
bias_activate(const float *src, float *dst, float bias, const nnlib_layer *act,
              bool relu, int64_t count) {
  if (relu) {
    for (int64_t q = 0; q < count; q++) {
      float v = src[q] + bias;
      dst[q] = v <= 0.0f ? 0.0f : v;
    }
    return;
  }
  for (int64_t q = 0; q < count; q++)
    dst[q] = src[q] + bias;
  if (act != NULL)
    nnlib__activation_apply(nnlib__activation_kind(act),
                            nnlib__activation_param(act), dst, NULL, dst, 1,
                            count);
}

/* y[s, co, p] = f(Z[co, s, p] + b[co]) for output channels [begin, end)
 * of the m samples of a chunk, Z [Co, m P], f the folded activation or
 * none, plane by plane. In place when Z is y itself (m = 1). */
static void output_channels(void *ctx, int64_t begin, int64_t end) {
  const chunk_pass *t = ctx;
  const conv2d_layer *c = t->c;
  const nnlib_layer *act = t->act;
  int64_t p = positions(c), m = t->m, mp = m * p;
  bool relu = act != NULL && nnlib__activation_kind(act) == NNLIB_ACT_RELU;
  for (int64_t co = begin; co < end; co++)
    for (int64_t s = 0; s < m; s++) {
      float *plane = t->y + (s * c->out_c + co) * p;
      if (t->z != t->y || t->b != NULL || act != NULL)
        bias_activate(t->z + co * mp + s * p, plane,
                      t->b != NULL ? t->b[co] : 0.0f, act, relu, p);
      if (t->stats != NULL) /* the plane is still in cache */
        nnlib__batchnorm_plane_stats(plane, p,
                                     t->stats + 2 * (s * c->out_c + co));
    }
}

/* output_channels with the folded 2x2 pool, so the unpooled map is never
 * stored: y[s, co] is [OH / 2, OW / 2] (an odd last row or column is in
 * no window). With no activation or a ReLU the pool computes Z + b and
 * the ReLU as it loads Z (m = +0 and scale 1: the addition alone); another
 * activation is applied in place over the rows under a window (Z is
 * scratch: nothing reads it after this pass) before the pool selects.
 * The same values and the same selection as the convolution's output
 * followed by the pool's pass. */
static void pooled_channels(void *ctx, int64_t begin, int64_t end) {
  const chunk_pass *t = ctx;
  const conv2d_layer *c = t->c;
  int64_t p = positions(c), mp = t->m * p, w = c->out_w;
  int64_t ph = c->out_h / 2, pw = c->out_w / 2;
  bool relu =
      t->act != NULL && nnlib__activation_kind(t->act) == NNLIB_ACT_RELU;
  bool in_pool = t->act == NULL || relu;
  for (int64_t co = begin; co < end; co++)
    for (int64_t s = 0; s < t->m; s++) {
      float *src = t->z + co * mp + s * p;
      float *dst = t->y + (s * c->out_c + co) * ph * pw;
      float bias = t->b != NULL ? t->b[co] : 0.0f;
      if (in_pool) {
        const nnlib__pool2x2_pre pre = {0.0f, 1.0f, bias, relu};
        nnlib__pool2x2_rows_pre(t->pool, src, w, ph, &pre, dst, NULL, pw);
        continue;
      }
      bias_activate(src, src, bias, t->act, false, 2 * ph * w);
      nnlib__pool2x2_rows(t->pool, src, w, ph, dst, NULL, pw);
    }
}

/* y from Z (in place when Z is y), and the plane statistics a batchnorm
 * reading y in training takes (stats: NULL when none). */
static void store_output(const conv2d_layer *c, float *z, float *y, int64_t m,
                         const output_terms *o, double *stats) {
  if (z == y && o->b == NULL && o->act == NULL && stats == NULL)
    return;
  chunk_pass t = {.c = c,
                  .b = o->b,
                  .y = y,
                  .z = z,
                  .act = o->act,
                  .pool = o->pool,
                  .stats = stats,
                  .m = m};
  nnlib__parallel_for(c->out_c, per_part(m * positions(c)),
                      o->pool != NULL ? pooled_channels : output_channels,
                      &t);
}

/* A Winograd pass over a chunk of m samples: x and V (input) or M and Z
 * or y (output, with finish: the output pass too). */
typedef struct winograd_pass {
  nnlib__winograd g;
  const float *src;
  float *dst;
  int64_t m;
  const nnlib__winograd_finish *finish;
} winograd_pass;

static void winograd_input_channels(void *ctx, int64_t begin, int64_t end) {
  const winograd_pass *t = ctx;
  nnlib__winograd_input(&t->g, t->src, t->m, t->dst, begin, end);
}

static void winograd_output_channels(void *ctx, int64_t begin, int64_t end) {
  const winograd_pass *t = ctx;
  nnlib__winograd_output(&t->g, t->src, t->m, t->finish, t->dst, begin, end);
}

/* The output pass the output transform applies itself: bias (or b'),
 * then ReLU or no activation, then the folded pool, if any; another
 * activation goes through Z and store_output. The transform writes y
 * straight from M, so the unpooled map is never stored and read back. */
static bool winograd_finishes(const output_terms *t,
                              nnlib__winograd_finish *f) {
  if (t->act != NULL && nnlib__activation_kind(t->act) != NNLIB_ACT_RELU)
    return false;
  f->bias = t->b;
  f->relu = t->act != NULL;
  f->pool = t->pool == NULL                               ? 0
            : t->pool->ops->kind == NNLIB_LAYER_MAXPOOL2D ? 1
                                                          : -1;
  return true;
}

/* A Winograd forward over a batch in lanes (batch_lanes, chunks of at
 * most wino_chunk samples), each lane with its own V, M and Z. */
typedef struct winograd_run {
  const conv2d_layer *c;
  const output_terms *t;
  nnlib__winograd g;
  nnlib__winograd_finish finish;
  bool finishes;
  const float *x, *u; /* the input, U */
  float *y, *lane0;   /* the output, the first lane's V */
  double *stats;      /* the batchnorm's plane statistics [n, Co, 2] (NULL) */
  int64_t x_size, y_size;
  batch_lanes b;
} winograd_run;

/* Unit u's samples [s, s + m) and its lane's V, M and Z. */
typedef struct winograd_chunk_at {
  int64_t s, m;
  float *v, *mx, *z;
} winograd_chunk_at;

static winograd_chunk_at chunk_at(const winograd_run *r, int64_t unit,
                                  int64_t lane) {
  const conv2d_layer *c = r->c;
  int64_t tiles = c->wino_chunk * winograd_tiles(c);
  winograd_chunk_at a;
  unit_samples(&r->b, unit, lane, &a.s, &a.m);
  a.v = r->lane0 + lane * winograd_lane_floats(c, c->wino_chunk);
  a.mx = a.v + 16 * r->g.c * tiles;
  a.z = a.mx + 16 * r->g.co * tiles;
  return a;
}

/* V from the chunk's x, all input channels. */
static void winograd_before(void *ctx, int64_t unit, int64_t lane) {
  const winograd_run *r = ctx;
  winograd_chunk_at a = chunk_at(r, unit, lane);
  winograd_pass in = {r->g, r->x + a.s * r->x_size, a.v, a.m, NULL};
  nnlib__parallel_for(r->g.c, per_part(16 * a.m * winograd_tiles(r->c)),
                      winograd_input_channels, &in);
}

/* M_xi [Co, N] = U_xi [Co, C] V_xi [C, N] for the 16 positions xi. */
static void winograd_calls(void *ctx, int64_t unit, int64_t lane,
                           nnlib__gemm_call *calls) {
  const winograd_run *r = ctx;
  const conv2d_layer *c = r->c;
  winograd_chunk_at a = chunk_at(r, unit, lane);
  int64_t n = a.m * winograd_tiles(c), u_size = r->g.co * r->g.c;
  for (int xi = 0; xi < 16; xi++)
    calls[xi] = (nnlib__gemm_call){NNLIB__NO_TRANS,
                                   NNLIB__NO_TRANS,
                                   r->g.co,
                                   n,
                                   r->g.c,
                                   1.0f,
                                   r->u + xi * u_size,
                                   r->g.c,
                                   a.v + xi * r->g.c * n,
                                   n,
                                   0.0f,
                                   a.mx + xi * r->g.co * n,
                                   n};
}

/* y from M with the output pass (winograd_finishes), or Z from M and the
 * output pass as after the lowering's GEMM. */
static void winograd_after(void *ctx, int64_t unit, int64_t lane) {
  const winograd_run *r = ctx;
  winograd_chunk_at a = chunk_at(r, unit, lane);
  float *ys = r->y + a.s * r->y_size;
  winograd_pass out = {r->g, a.mx, r->finishes ? ys : a.z, a.m,
                       r->finishes ? &r->finish : NULL};
  nnlib__parallel_for(r->g.co, per_part(16 * a.m * winograd_tiles(r->c)),
                      winograd_output_channels, &out);
  double *stats = r->stats != NULL ? r->stats + 2 * a.s * r->c->out_c : NULL;
  /* the transform applied the terms: only the statistics are left */
  const output_terms none = {NULL, NULL, NULL, NULL};
  if (!r->finishes)
    store_output(r->c, a.z, ys, a.m, r->t, stats);
  else if (stats != NULL)
    store_output(r->c, ys, ys, a.m, &none, stats);
}

/* r's chunks as units (nnlib__gemm_units_run) on as many lanes as
 * threads, up to those planned, with U (made) at u and the lanes' V, M
 * and Z after it. */
static nnlib_status winograd_run_units(winograd_run *r, float *u) {
  r->u = u;
  r->lane0 = u + 16 * r->g.co * r->g.c;
  nnlib__gemm_units units = {r->b.units,
                             r->b.lanes,
                             16,
                             winograd_calls,
                             winograd_before,
                             winograd_after,
                             r,
                             false,
                             NULL};
  return nnlib__gemm_units_run(&units);
}

/* A batch of n goes by Winograd outside inference (forward, and
 * backward's input gradient) when the lowering would cut it into chunks:
 * a batch of one chunk keeps the lowering, whose col backward reuses. */
static bool winograd_trains(const conv2d_layer *c, int64_t n) {
  return c->wino_chunk > 0 && n > c->chunk;
}

/* Forward by Winograd (winograd_applies): U from W (or W'), then the
 * chunks; in training each chunk's plane statistics for the batchnorm
 * (stats, NULL when none) right after its output transform. */
static nnlib_status winograd_forward(const conv2d_layer *c,
                                     const nnlib__run *run,
                                     const output_terms *t, const float *x,
                                     float *y, int64_t n, int64_t y_size,
                                     double *stats) {
  winograd_run r = {.c = c,
                    .t = t,
                    .g = {c->in_c, c->out_c, c->in_h, c->in_w},
                    .x = x,
                    .y = y,
                    .stats = stats,
                    .x_size = c->in_c * c->in_h * c->in_w,
                    .y_size = y_size,
                    .b = lanes_over(c, n, c->wino_chunk, LANES_MAX)};
  float *u = run->workspace + c->wino_at;
  nnlib__winograd_weights(t->w, c->out_c, c->in_c, u);
  r.finishes = winograd_finishes(t, &r.finish);
  return winograd_run_units(&r, u);
}

/* Backward's dx by Winograd: dy [n, Co, H, W] convolved by the filters
 * turned by 180 degrees (nnlib__winograd_weights_turned), Co channels in
 * and C out, the output transform writing dx itself (no bias, no
 * activation). It replaces dcol = W^T dZ [K, Co] x [Co, m P] and col2im:
 * 16 C Co multiply-adds per 2x2 tile instead of 36, and no scatter. */
static nnlib_status winograd_input_grad(const conv2d_layer *c,
                                        const nnlib__run *run, const float *w,
                                        const float *dy, float *dx, int64_t n) {
  static const output_terms none = {NULL, NULL, NULL, NULL};
  winograd_run r = {.c = c,
                    .t = &none,
                    .g = {c->out_c, c->in_c, c->in_h, c->in_w},
                    .x = dy,
                    .y = dx,
                    .x_size = c->out_c * positions(c),
                    .y_size = c->in_c * c->in_h * c->in_w,
                    .b = lanes_over(c, n, c->wino_chunk, LANES_MAX)};
  float *u = run->workspace + c->wino_at;
  nnlib__winograd_weights_turned(w, c->out_c, c->in_c, u);
  r.finishes = winograd_finishes(&none, &r.finish);
  return winograd_run_units(&r, u);
}

/* A lowered forward over a batch in lanes (batch_lanes), each lane with
 * its own col and Z. */
typedef struct lowered_run {
  const conv2d_layer *c;
  const output_terms *t;
  const float *x;
  float *y, *workspace;
  double *stats; /* the batchnorm's plane statistics [n, Co, 2] (NULL) */
  int64_t x_size, y_size;
  batch_lanes b;
} lowered_run;

/* Unit u's samples [s, s + m), its lane's col and Z, and where its GEMM
 * writes (y itself for one sample with no folded pool). */
typedef struct lowered_chunk_at {
  int64_t s, m;
  float *col, *z, *out;
} lowered_chunk_at;

static lowered_chunk_at lowered_at(const lowered_run *r, int64_t unit,
                                   int64_t lane) {
  const conv2d_layer *c = r->c;
  lowered_chunk_at a;
  unit_samples(&r->b, unit, lane, &a.s, &a.m);
  a.col = lane_area(c, r->workspace, lane, &a.z);
  a.out = a.m == 1 && r->t->pool == NULL ? r->y + a.s * r->y_size : a.z;
  return a;
}

static void lowered_before(void *ctx, int64_t unit, int64_t lane) {
  const lowered_run *r = ctx;
  lowered_chunk_at a = lowered_at(r, unit, lane);
  im2col(r->c, r->x + a.s * r->x_size, a.col, a.m);
}

/* Z = W col [Co, K] x [K, m P]. */
static void lowered_calls(void *ctx, int64_t unit, int64_t lane,
                          nnlib__gemm_call *calls) {
  const lowered_run *r = ctx;
  const conv2d_layer *c = r->c;
  lowered_chunk_at a = lowered_at(r, unit, lane);
  int64_t k = patch_size(c), mp = a.m * positions(c);
  calls[0] = (nnlib__gemm_call){NNLIB__NO_TRANS,
                                NNLIB__NO_TRANS,
                                c->out_c,
                                mp,
                                k,
                                1.0f,
                                r->t->w,
                                k,
                                a.col,
                                mp,
                                0.0f,
                                a.out,
                                mp};
}

static void lowered_after(void *ctx, int64_t unit, int64_t lane) {
  const lowered_run *r = ctx;
  lowered_chunk_at a = lowered_at(r, unit, lane);
  store_output(r->c, a.out, r->y + a.s * r->y_size, a.m, r->t,
               r->stats != NULL ? r->stats + 2 * a.s * r->c->out_c : NULL);
}

static nnlib_status conv2d_forward(nnlib_layer *l, const nnlib__run *run,
                                   const float *x, float *y, int64_t n) {
  conv2d_layer *c = (conv2d_layer *)l;
  output_terms t;
  NNLIB_TRY(terms_of(l, run, &t));
  /* a folded pool's output is the pooled map */
  int64_t y_size = c->out_c * (t.pool != NULL ? (c->out_h / 2) * (c->out_w / 2)
                                              : positions(c));
  /* in training, the statistics for the batchnorm that alone reads y
   * (folded_batchnorm, as inference folds it) */
  double *stats = NULL;
  if (run->training && !run->folded && c->stats_at > 0)
    stats = (double *)(void *)(run->workspace + c->stats_at);
  /* training lowers a batch of one chunk as one unit on the first lane
   * (its passes and GEMM split over the threads), so that backward finds
   * it in col (lowering x again costs about 1/Co of the GEMMs) */
  int64_t chunk = forward_chunk(c, run);
  bool whole = !run->folded && n <= chunk;
  if (c->wino_chunk > 0 && (run->folded || winograd_trains(c, n))) {
    if (!run->folded)
      c->lowered_chunk = 0;
    NNLIB_TRY(winograd_forward(c, run, &t, x, y, n, y_size, stats));
    if (stats != NULL)
      nnlib__batchnorm_offer_stats(l->folded_batchnorm, y, n, stats);
    return NNLIB_OK;
  }
  lowered_run r = {c,
                   &t,
                   x,
                   y,
                   run->workspace,
                   stats,
                   c->in_c * c->in_h * c->in_w,
                   y_size,
                   lanes_over(c, n, chunk, whole ? 1 : LANES_MAX)};
  /* the lanes after the first have room for lane_chunk samples: their
   * share of the largest batch on the lanes planned, which is less than
   * a lane's share on fewer threads (a model compiled on 8 threads that
   * predicts on 2) */
  if (r.b.lanes > 1 && r.b.chunk > c->lane_chunk)
    r.b = lanes_over(c, n, c->lane_chunk, LANES_MAX);
  /* inference may run on several threads at once, and leaves it alone */
  if (!run->folded)
    c->lowered_chunk = whole ? n : 0;
  nnlib__gemm_units units = {
      r.b.units,     r.b.lanes, 1,     lowered_calls, lowered_before,
      lowered_after, &r,        false, NULL};
  NNLIB_TRY(nnlib__gemm_units_run(&units));
  if (stats != NULL)
    nnlib__batchnorm_offer_stats(l->folded_batchnorm, y, n, stats);
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

/* db[co] = sum over s, p of dy[s, co, p], in double over the batch, for
 * output channels [begin, end) (x is dy, z is db). */
static void bias_grad_channels(void *ctx, int64_t begin, int64_t end) {
  const chunk_pass *t = ctx;
  int64_t p = positions(t->c), co_count = t->c->out_c;
  for (int64_t co = begin; co < end; co++) {
    double sum = 0.0;
    for (int64_t s = 0; s < t->m; s++)
      sum += plane_sum(t->x + (s * co_count + co) * p, p);
    t->z[co] = (float)sum;
  }
}

static void bias_grad(const conv2d_layer *c, const float *dy, float *db,
                      int64_t n) {
  chunk_pass t = {.c = c, .x = dy, .z = db, .m = n};
  nnlib__parallel_for(c->out_c, per_part(n * positions(c)),
                      bias_grad_channels, &t);
}

/* dZ [Co, m P] from dy [m, Co, P] for output channels [begin, end): the
 * transpose of the output pass's copy (x is dy, z is dZ). */
static void output_grad_channels(void *ctx, int64_t begin, int64_t end) {
  const chunk_pass *t = ctx;
  int64_t p = positions(t->c), mp = t->m * p;
  for (int64_t co = begin; co < end; co++)
    for (int64_t s = 0; s < t->m; s++)
      nnlib__copy_run(t->z + co * mp + s * p, t->x + (s * t->c->out_c + co) * p,
                      p);
}

static void gather_output_grad(const conv2d_layer *c, const float *dy,
                               float *dz, int64_t m) {
  chunk_pass t = {.c = c, .x = dy, .z = dz, .m = m};
  nnlib__parallel_for(c->out_c, per_part(m * positions(c)),
                      output_grad_channels, &t);
}

/* Backward over a batch of n in C chunks of near-equal size (at most
 * `chunk` samples), cut into V parts of consecutive chunks (V =
 * grad_parts, or fewer when fewer chunks would do; C a multiple of V
 * where the batch allows, so the parts are even): part v sums its chunks' dW
 * into a dW of its own (part 0 into the gradient, the others into the
 * workspace), which are then added in part order. The parts do not depend on
 * the thread count, so neither do the bits; the threads (lanes, up to V) take
 * whole parts, each lane in its own col and Z. */
typedef struct backward_run {
  const conv2d_layer *c;
  const float *x, *dy, *w;
  float *dx, *workspace, *dw, *partials;
  int64_t n, chunks, parts, x_size;
  bool lowered; /* one chunk, and col still holds forward's */
  int64_t lane_start[LANES_MAX + 1];
} backward_run;

/* The part of chunk u. */
static int64_t part_of(const backward_run *r, int64_t unit) {
  int64_t v = 0;
  while (v + 1 < r->parts &&
         nnlib__range_start(r->chunks, r->parts, v + 1) <= unit)
    v++;
  return v;
}

typedef struct backward_chunk_at {
  int64_t s, m;
  float *col, *z;
  const float *dz;
} backward_chunk_at;

static backward_chunk_at backward_at(const backward_run *r, int64_t unit,
                                     int64_t lane) {
  const conv2d_layer *c = r->c;
  backward_chunk_at a;
  a.s = nnlib__range_start(r->n, r->chunks, unit);
  a.m = nnlib__range_start(r->n, r->chunks, unit + 1) - a.s;
  a.col = lane_area(c, r->workspace, lane, &a.z);
  /* one sample's dy is its dZ */
  a.dz = a.m > 1 ? a.z : r->dy + a.s * c->out_c * positions(c);
  return a;
}

/* dZ from dy, and col from x unless col still holds it. */
static void backward_before(void *ctx, int64_t unit, int64_t lane) {
  const backward_run *r = ctx;
  backward_chunk_at a = backward_at(r, unit, lane);
  if (a.m > 1)
    gather_output_grad(r->c, r->dy + a.s * r->c->out_c * positions(r->c), a.z,
                       a.m);
  if (!r->lowered)
    im2col(r->c, r->x + a.s * r->x_size, a.col, a.m);
}

/* dW_v (+)= dZ col^T (beta 0 for the part's first chunk), then dcol = W^T
 * dZ over col. */
static void backward_calls(void *ctx, int64_t unit, int64_t lane,
                           nnlib__gemm_call *calls) {
  const backward_run *r = ctx;
  const conv2d_layer *c = r->c;
  backward_chunk_at a = backward_at(r, unit, lane);
  int64_t k = patch_size(c), mp = a.m * positions(c), v = part_of(r, unit);
  float *dw = v == 0 ? r->dw : r->partials + (v - 1) * c->out_c * k;
  bool first = unit == nnlib__range_start(r->chunks, r->parts, v);
  calls[0] = (nnlib__gemm_call){NNLIB__NO_TRANS,
                                NNLIB__TRANS,
                                c->out_c,
                                k,
                                mp,
                                1.0f,
                                a.dz,
                                mp,
                                a.col,
                                mp,
                                first ? 0.0f : 1.0f,
                                dw,
                                k};
  calls[1] = (nnlib__gemm_call){
      NNLIB__TRANS, NNLIB__NO_TRANS, k, mp, c->out_c, 1.0f, r->w, k, a.dz, mp,
      0.0f,         a.col,           mp};
}

static void backward_after(void *ctx, int64_t unit, int64_t lane) {
  const backward_run *r = ctx;
  backward_chunk_at a = backward_at(r, unit, lane);
  if (r->dx != NULL)
    col2im(r->c, a.col, r->dx + a.s * r->x_size, a.m);
}

/* dW[i] += the parts' dW[i], in part order. */
static void add_parts(void *ctx, int64_t begin, int64_t end) {
  const backward_run *r = ctx;
  int64_t size = r->c->out_c * patch_size(r->c);
  for (int64_t v = 1; v < r->parts; v++)
    for (int64_t i = begin; i < end; i++)
      r->dw[i] += r->partials[(v - 1) * size + i];
}

static nnlib_status backward_lanes(nnlib_layer *l, const nnlib__run *run,
                                   const float *x, const float *dy, float *dx,
                                   int64_t n) {
  conv2d_layer *c = (conv2d_layer *)l;
  backward_run r = {.c = c,
                    .x = x,
                    .dy = dy,
                    .w = l->params[0].value.data,
                    .dx = dx,
                    .workspace = run->workspace,
                    .dw = l->params[0].grad.data,
                    .partials = run->workspace + c->partials_at,
                    .n = n,
                    .x_size = c->in_c * c->in_h * c->in_w};
  /* as many chunks in every part (each part's chunks smaller if need be),
   * so that lanes taking as many parts take as much work */
  int64_t wanted = (n + c->chunk - 1) / c->chunk;
  r.parts = c->grad_parts < wanted ? c->grad_parts : wanted;
  r.chunks = (wanted + r.parts - 1) / r.parts * r.parts;
  r.chunks = r.chunks < n ? r.chunks : n;
  /* a batch that forward lowered in one chunk, and backward takes in one
   * chunk: forward's col is still in the workspace */
  r.lowered = r.chunks == 1 && n == c->lowered_chunk;
  int64_t lanes = nnlib_get_num_threads();
  lanes = lanes < c->lanes ? lanes : c->lanes;
  lanes = lanes < r.parts ? lanes : r.parts;
  lanes = lanes > 1 ? lanes : 1;
  for (int64_t j = 0; j <= lanes; j++)
    r.lane_start[j] = nnlib__range_start(r.chunks, r.parts,
                                         nnlib__range_start(r.parts, lanes, j));
  /* dx by Winograd after the chunks (whose col, Z and partial dW its
   * area may overlap), else each chunk's dcol and col2im */
  bool winograd_dx = dx != NULL && winograd_trains(c, n);
  if (winograd_dx)
    r.dx = NULL;
  nnlib__gemm_units units = {r.chunks,
                             lanes,
                             r.dx != NULL ? 2 : 1,
                             backward_calls,
                             backward_before,
                             backward_after,
                             &r,
                             true,
                             r.lane_start};
  NNLIB_TRY(nnlib__gemm_units_run(&units));
  if (r.parts > 1)
    nnlib__parallel_for(c->out_c * patch_size(c), GRAIN_FLOATS, add_parts, &r);
  if (winograd_dx)
    return winograd_input_grad(c, run, r.w, dy, dx, n);
  return NNLIB_OK;
}

/* Plain SGD folded into backward: p -= lr g over one parameter tensor. */
static void sgd_apply(nnlib__param *p, float lr) {
  for (int64_t i = 0; i < p->size; i++)
    p->value.data[i] -= lr * p->grad.data[i];
}

static nnlib_status conv2d_backward(nnlib_layer *l, const nnlib__run *run,
                                    const float *x, const float *y, float *dy,
                                    float *dx, int64_t n) {
  (void)y;
  conv2d_layer *c = (conv2d_layer *)l;
  if (c->o.with_bias)
    bias_grad(c, dy, l->params[1].grad.data, n);
  NNLIB_TRY(backward_lanes(l, run, x, dy, dx, n));
  /* after every chunk: each dcol needs W as forward saw it */
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
    .dx_over_output = true, /* backward reads x and dy, never y */
};

bool nnlib__layer_is_conv2d(const nnlib_layer *l) {
  return l != NULL && l->ops == &conv2d_ops;
}

nnlib_status nnlib_conv2d_options_init_size(nnlib_conv2d_options *o,
                                            size_t struct_size) {
  nnlib_conv2d_options d;
  memset(&d, 0, sizeof d);
  d.stride_h = d.stride_w = 1;
  d.dilation_h = d.dilation_w = 1;
  d.with_bias = 1;
  return nnlib__init_options(o, struct_size, &d, sizeof d,
                             "nnlib_conv2d_options_init");
}

/* The entry point of programs built against 1.0-1.2 headers (the header's
 * macro of this name passes the caller's sizeof instead); the parentheses
 * keep the macro out. */
nnlib_status(nnlib_conv2d_options_init)(nnlib_conv2d_options *o) {
  return nnlib_conv2d_options_init_size(
      o, NNLIB__SIZE_THROUGH(nnlib_conv2d_options, with_bias));
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
                  "conv2d: stride %lldx%lld, must be at least 1 and at most "
                  "%lld",
                  (long long)o->stride_h, (long long)o->stride_w,
                  (long long)limit);
  NNLIB_CHECK_ARG(o->padding_h >= 0 && o->padding_w >= 0 &&
                      o->padding_h <= limit && o->padding_w <= limit,
                  "conv2d: padding %lldx%lld, must be at least 0 and at most "
                  "%lld",
                  (long long)o->padding_h, (long long)o->padding_w,
                  (long long)limit);
  NNLIB_CHECK_ARG(o->dilation_h >= 1 && o->dilation_w >= 1 &&
                      o->dilation_h <= limit && o->dilation_w <= limit,
                  "conv2d: dilation %lldx%lld, must be at least 1 and at most "
                  "%lld",
                  (long long)o->dilation_h, (long long)o->dilation_w,
                  (long long)limit);
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
  NNLIB_CHECK_ARG(
      kernel_h >= 1 && kernel_w >= 1 && kernel_h <= NNLIB__BLAS_DIM_MAX &&
          kernel_w <= NNLIB__BLAS_DIM_MAX,
      "conv2d: kernel %lldx%lld, must be at least 1x1 and at most "
      "%lld each",
      (long long)kernel_h, (long long)kernel_w, (long long)NNLIB__BLAS_DIM_MAX);
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
