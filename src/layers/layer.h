/* layer.h - what a layer kind sees: the layer struct and its ops, shapes,
 * parameters, the per-call run, the codec through which a kind takes part
 * in descriptions and files, the registry, and the helpers layers share.
 * Nothing here knows the model. */
#ifndef NNLIB_LAYER_H
#define NNLIB_LAYER_H

#include "core/codec.h"
#include "core/core.h"
#include "tensor/tensor.h"

/* ------------------------------------------------------------- layers */

typedef struct nnlib__shape {
  size_t rank;
  int64_t dims[NNLIB_MAX_RANK];
} nnlib__shape;

int64_t nnlib__shape_numel(const nnlib__shape *s);

#define NNLIB__MAX_PARAMS 8
#define NNLIB__MAX_BUFFERS 4

typedef struct nnlib__param {
  const char *name;
  nnlib__shape shape;
  int64_t size;
  nnlib_tensor value; /* views into the model's flat parameter buffer */
  nnlib_tensor grad;  /* views into the model's flat gradient buffer  */
} nnlib__param;

/* What one forward or backward call of a layer gets besides its data. The
 * layer keeps no per-call state in itself: whatever backward needs from
 * forward (pooling indices, dropout masks, normalised inputs) goes in the
 * workspace, so inference in several threads can share one model, each
 * thread with its own workspaces. In inference mode (training false) a
 * forward pass only reads the layer. */
typedef struct nnlib__run {
  bool training;
  float *workspace;  /* this layer's workspace_floats floats for this call */
  nnlib__rng *rng;   /* randomness of training mode (dropout); NULL in
                        inference */
  /* Plain SGD fused into backward (train.c sets it only when every layer
   * with parameters has ops->fuses_sgd): backward then updates its
   * parameters in place, p -= sgd_lr * dL/dp, instead of writing the
   * gradients, and must read a parameter for dx before updating it. */
  bool sgd_fused;
  float sgd_lr;
  /* Sequence length of this call for the recurrent layers that read the
   * model's input sequence (nnlib__node's at_steps), at most the planned
   * T; 0: as planned. */
  int64_t steps;
  /* Decoding, one stretch of positions at a time (nnlib_model_generate;
   * layers whose ops->decodes is set): this call holds positions
   * [position, position + steps) of each of the n sequences, steps of them
   * per sample (x is n * steps rows of the sample's last axis, compact),
   * and `cache` is this layer's n * cache_floats floats, kept by the caller
   * between the calls of one sequence (zeroed before position 0). NULL
   * outside decoding (position then 0). */
  int64_t position;
  float *cache;
  /* Inference without backward (predict, evaluate, workspaces), for
   * every layer: a convolution also applies the batchnorm and activation
   * the model folded into it (nnlib_layer's folded_batchnorm,
   * folded_activation; NULL when none folded), whose own passes do not
   * run, and a 2x2 max pool keeps no winners. False in training and in
   * gradient checks. */
  bool folded;
} nnlib__run;

/* Per-layer counters of nnlib_model_set_profiling (profile.c). */
typedef struct nnlib__layer_profile {
  int64_t forward_calls, backward_calls;
  double forward_flops, backward_flops;     /* 2 m n k per GEMM */
  double forward_seconds, backward_seconds;
} nnlib__layer_profile;

/* A point in time and in the calling thread's GEMM FLOP count. */
typedef struct nnlib__profile_mark {
  double seconds, flops;
} nnlib__profile_mark;
nnlib__profile_mark nnlib__profile_start(void);
/* Adds the time and FLOPs since `start` to the layer's counters. */
void nnlib__profile_stop(nnlib_layer *l, bool backward,
                         nnlib__profile_mark start);

/* What a layer kind implements. Shapes are per sample; n is the batch. */
typedef struct nnlib__layer_ops {
  nnlib_layer_kind kind;
  /* Checks `in`, sets l->out_shape, declares parameters (l->params[].name,
   * shape) and the workspace floats a batch of max_batch needs. A failure
   * carries a message that names the layer. */
  nnlib_status (*plan)(nnlib_layer *l, const nnlib__shape *in,
                       int64_t max_batch);
  /* Fills the parameters (already allocated) from the rng. */
  void (*init)(nnlib_layer *l, nnlib__rng *rng);
  /* y = f(x) for n samples. */
  nnlib_status (*forward)(nnlib_layer *l, const nnlib__run *run,
                          const float *x, float *y, int64_t n);
  /* Given x, y = f(x) and dy = dL/dy, writes parameter gradients and, unless
   * dx is NULL, dx = dL/dx. May overwrite dy. */
  nnlib_status (*backward)(nnlib_layer *l, const nnlib__run *run,
                           const float *x, const float *y, float *dy,
                           float *dx, int64_t n);
  void (*destroy)(nnlib_layer *l); /* frees what the kind allocated itself */
  const char *(*name)(const nnlib_layer *l);
  /* Optional (NULL: any values do): checks the state in the buffers, which
   * callers write through nnlib_layer_get_buffer and model files restore
   * (batchnorm: no negative running variance), and fails with
   * NNLIB_ERR_INVALID_ARGUMENT and a message naming the layer and the
   * element. The model-file loader calls it once it has filled the
   * buffers; the kind calls it itself in the passes that read them. */
  nnlib_status (*check_state)(const nnlib_layer *l);
  /* forward runs on run->steps positions of a [T, ...] sample (any T'
   * <= T; 0: all T) starting at run->position, and in decoding keeps what
   * later positions need in run->cache (cache_floats per sample, set by
   * plan): the layers a language model is made of (embedding, positional,
   * layernorm, linear, attention, elementwise activations, add, dropout,
   * recurrent layers). */
  bool decodes;
  /* backward honours run->sgd_fused (see nnlib__run) */
  bool fuses_sgd;
  /* backward reads y, if at all, only before it writes dx or at the same
   * element it writes, so the model may pass dx == y (its output buffer,
   * spent by then) when the output is at least as large as dx */
  bool dx_over_output;
  /* forward copies x to y and backward dy to dx, element for element
   * (flatten): the model may give y the bytes of x and dx those of dy
   * (plan.c), and the kind then copies nothing */
  bool is_view;
  /* Merge layers (add, concat, multiply) read min_inputs or more nodes and
   * implement the three calls below instead of plan, forward and backward
   * (which stay NULL); every other kind reads exactly one node (min_inputs
   * 0). in[i], x[i] and dx[i] belong to input i; dx[i] may be NULL (no
   * gradient wanted for that input). backward_merge never writes dy (the
   * model may call it once per input to accumulate fan-out). */
  size_t min_inputs;
  nnlib_status (*plan_merge)(nnlib_layer *l, const nnlib__shape *in,
                             size_t count, int64_t max_batch);
  nnlib_status (*forward_merge)(nnlib_layer *l, const nnlib__run *run,
                                const float *const *x, size_t count, float *y,
                                int64_t n);
  nnlib_status (*backward_merge)(nnlib_layer *l, const nnlib__run *run,
                                 const float *const *x, size_t count,
                                 const float *y, float *dy, float *const *dx,
                                 int64_t n);
} nnlib__layer_ops;

struct nnlib_layer {
  const nnlib__layer_ops *ops;
  /* set by plan; a merge layer's in_shape is its first input's */
  nnlib__shape in_shape, out_shape;
  int64_t in_size, out_size;        /* per-sample element counts */
  bool applied; /* the layer belongs to a model node (nnlib_model_apply) */
  size_t param_count;
  nnlib__param params[NNLIB__MAX_PARAMS];
  /* Untrained state inference needs and model files keep (batchnorm running
   * statistics): plan declares them like params (name, shape, size; plan
   * itself never allocates, the loader dry-runs it); after compile each
   * buffers[i].value is a view of buffers[i].size floats. Optimizers never
   * see them; serialize.c saves them after the layer's parameters. */
  size_t buffer_count;
  nnlib__param buffers[NNLIB__MAX_BUFFERS];
  size_t workspace_floats; /* set by plan; the model allocates them */
  /* set by plan: forward uses the workspace as scratch and backward never
   * reads it, so in training it need not live until backward (plan.c) */
  bool workspace_scratch;
  size_t cache_floats; /* set by plan: per sample, what decoding keeps
                          between positions (nnlib__run.cache) */
  bool compiled;
  /* Fusion, decided at compile: a dense layer followed by an elementwise
   * activation applies it in its own bias pass; the activation is skipped.
   * A batchnorm fuses the ReLU after it the same way, and then the 2x2
   * pool that alone reads the ReLU (fused_pool): its passes write the
   * pooled map and read the pooled gradient, and neither the ReLU's nor
   * the pool's node runs (fused_away). */
  nnlib_layer *fused_activation, *fused_pool;
  bool fused_away;
  /* Folding, decided at compile, for inference only (nnlib__run.folded):
   * a convolution whose only reader is a batchnorm computes y = gamma
   * (conv(x) - mean) / sqrt(var + eps) + beta itself, from weights scaled
   * per output channel, and applies the elementwise activation that is
   * the only reader after it (either may be NULL). Training runs every
   * layer as it is. */
  nnlib_layer *folded_batchnorm, *folded_activation;
  /* and, after them, the 2x2 max (min) pool at stride 2 that alone reads
   * the group (nnlib__layer_is_pool2x2): the convolution's output pass
   * then writes the pooled map only (NULL: none) */
  nnlib_layer *folded_pool;
  nnlib__layer_profile profile; /* profile.c; counts while m->profiling */
};

/* Shared setup for every layer kind's constructor. */
void nnlib__layer_init(nnlib_layer *l, const nnlib__layer_ops *ops);
/* Plans layer `index` for a per-sample input shape: resets what plan
 * declares, calls the kind's plan, sets in/out sizes, and prefixes a failure
 * message with `context` (e.g. "model file: ") and the layer's index and
 * name. Shared by compile and the model-file loader's dry run. */
nnlib_status nnlib__layer_plan(nnlib_layer *l, size_t index,
                               const nnlib__shape *in, int64_t max_batch,
                               const char *context);
/* The same for `count` input shapes (merge layers take them all, other
 * kinds exactly one); `node` names the layer's node in a failure message
 * ("node 4 (add)" or its name). */
nnlib_status nnlib__layer_plan_inputs(nnlib_layer *l, const char *node,
                                      const nnlib__shape *in, size_t count,
                                      int64_t max_batch, const char *context);
/* The number of inputs a layer kind reads: [min, max] (max SIZE_MAX for
 * the merge layers). */
size_t nnlib__layer_min_inputs(const nnlib_layer *l);
bool nnlib__shape_equal(const nnlib__shape *a, const nnlib__shape *b);
/* plan_merge of the elementwise merges (add, multiply): two or more inputs
 * of one shape, which is the output's; SHAPE_MISMATCH names the input. */
nnlib_status nnlib__plan_same_shapes(nnlib_layer *l, const nnlib__shape *in,
                                     size_t count);
/* Room for a node's label in messages ("node 4 (dense)", a layer's
 * "layer 2 (conv2d)", or a name). */
#define NNLIB__LABEL_SIZE 64
bool nnlib__layer_is_merge(const nnlib_layer *l);
/* Declares parameter i with a shape (called from plan). */
void nnlib__layer_declare_param(nnlib_layer *l, const char *name,
                                const int64_t *shape, size_t rank);
/* Declares buffer i (state inference needs, see `buffers`) from plan. */
void nnlib__layer_declare_buffer(nnlib_layer *l, const char *name,
                                 const int64_t *shape, size_t rank);

/* out[j] = sum over the rows of m[i ld + j] for j < cols (out does not
 * overlap m): each column summed in row order from 0, so the same bits
 * on any thread count; split over nnlib's threads in blocks of 16 columns
 * when a part holds at least min_values values. */
void nnlib__column_sums(const float *m, int64_t rows, int64_t cols, int64_t ld,
                        float *out, int64_t min_values);

/* y = rows copies of the row b [cols] (ld cols), so that a GEMM at beta 1
 * then adds onto the bias: OpenBLAS's beta 0 zeroes C in a pass of its
 * own, so copying b in its place saves the separate read-and-write pass of
 * adding b after the GEMM. Split over nnlib's threads by rows when a part
 * holds at least min_values values. */
void nnlib__rows_broadcast(float *y, const float *b, int64_t rows, int64_t cols,
                           int64_t min_values);

/* Activation kernels, shared between the activation layer and the dense
 * layer's fused pass. Elementwise kinds only (not softmax). */
bool nnlib__activation_is_elementwise(const nnlib_layer *l);
nnlib_activation nnlib__activation_kind(const nnlib_layer *l);
float nnlib__activation_param(const nnlib_layer *l);
/* y[i] = f(x[i] + bias[i % cols]) over rows x cols; bias may be NULL; x and y
 * may alias. */
void nnlib__activation_apply(nnlib_activation kind, float param,
                             const float *x, const float *bias, float *y,
                             int64_t rows, int64_t cols);
/* dz[i] = dy[i] * f'(y[i]) written from the output y; dz and dy may alias.
 * If bias_grad is non-NULL it receives the column sums of dz. */
void nnlib__activation_backward(nnlib_activation kind, float param,
                                const float *y, const float *dy, float *dz,
                                float *bias_grad, int64_t rows, int64_t cols);
/* softmax of each row, stable (max subtracted). */
void nnlib__softmax_rows(const float *x, float *y, int64_t rows, int64_t cols);

/* Batchnorm's inference affine map per channel c, y = scale[c] x +
 * shift[c] for a layer input x = z + bias[c] (bias NULL: 0): scale =
 * gamma / sqrt(running_var + eps), shift = (bias - running_mean) scale +
 * beta, the terms a convolution folds in (batchnorm.c). Fails as the
 * layer's passes do on a negative running variance. */
nnlib_status nnlib__batchnorm_fold_terms(const nnlib_layer *l,
                                         const float *bias, float *scale,
                                         float *shift);
bool nnlib__layer_is_batchnorm(const nnlib_layer *l);
/* Batchnorm's training statistics come from each plane (a sample's s
 * values of one channel): stats[0] its sum, stats[1] the sum of squares
 * about stats[0] / s rounded to float. A convolution whose only reader is
 * the batchnorm (nnlib_layer's folded_batchnorm) computes them while its
 * output is in cache and offers them, [n, C, 2] for its output y of n
 * samples; the batchnorm's next training forward takes them if its input
 * is that y of n samples, and computes the same bits itself otherwise.
 * The offer points into the convolution's workspace, which a training
 * step keeps until backward. */
void nnlib__batchnorm_plane_stats(const float *v, int64_t s, double stats[2]);
void nnlib__batchnorm_offer_stats(nnlib_layer *l, const float *y, int64_t n,
                                  const double *stats);
/* Internal tests: 2x2 pools at stride 2 use their plain rows even where
 * vector rows would run (pool2d.c), or their AVX2 rows where AVX-512 ones
 * would, to check them all on one machine. Not for use while a pass runs. */
void nnlib__pool2d_force_plain_rows(bool on);
void nnlib__pool2d_force_avx2_rows(bool on);
/* A max or min pool of 2x2 windows at stride 2, without padding, dilation
 * or ceil mode: every window lies whole in its input, whatever its size
 * (an odd last row or column is dropped), so a convolution can fold it. */
bool nnlib__layer_is_pool2x2(const nnlib_layer *l);
/* `rows` rows of such a pool's windows over a plane x of width w, as the
 * pool's own pass selects them: y[i, j] = the first best of the window
 * whose top left is x[2i, 2j] (or its first NaN), j < out_w; and, unless
 * codes is NULL, where it lies in the window: codes[i out_w + j] = 2 dr +
 * dc for the winner x[2i + dr, 2j + dc]. */
void nnlib__pool2x2_rows(const nnlib_layer *l, const float *x, int64_t w,
                         int64_t rows, float *y, uint8_t *codes, int64_t out_w);
/* What a fused pass (batchnorm's normalisation, a convolution's bias)
 * makes of each input before the pool selects: v = (x - m) scale + shift,
 * each operation rounded on its own (with m = +0 and scale = 1, x + shift
 * alone), then with relu v <= 0 ? 0 : v (NaN stays NaN). Where x and a
 * term are both NaN, which of the NaNs comes out is the compiler's
 * choice, as in the passes this stands for. */
typedef struct nnlib__pool2x2_pre {
  float m, scale, shift;
  bool relu;
} nnlib__pool2x2_pre;
/* nnlib__pool2x2_rows over pre's values of x, computed as the pool loads
 * x (x is not written): the same y and codes as computing them first. */
void nnlib__pool2x2_rows_pre(const nnlib_layer *l, const float *x, int64_t w,
                             int64_t rows, const nnlib__pool2x2_pre *pre,
                             float *y, uint8_t *codes, int64_t out_w);
/* The pool's backward over one h x w plane: dx = 0.0f + dy at each
 * window's winner (from its code), 0 elsewhere, an odd last row or column
 * included; dy and codes are the pooled plane's. */
void nnlib__pool2x2_spread_plane(const float *dy, const uint8_t *codes,
                                 float *dx, int64_t h, int64_t w);
bool nnlib__layer_is_conv2d(const nnlib_layer *l);
/* Winograd F(2x2, 3x3) transforms of a 3x3 convolution at stride 1 and
 * padding 1 (conv2d_winograd.c, which gives the math): c input and co
 * output channels over h x w planes (the output's size too), cut into
 * tiles(h, w) = ceil(h / 2) ceil(w / 2) tiles of 2x2 outputs per plane.
 * For a chunk of m samples, N = m tiles(h, w):
 *   weights: U [16, Co, C] from w [Co, C, 3, 3];
 *   input:   V [16, C, N] from x [m, C, h, w], channels [c_begin, c_end);
 *   output:  Z [Co, m, h w] from M [16, Co, N], channels [co_begin,
 *            co_end), where M_xi = U_xi V_xi are the 16 GEMMs between,
 *            or the output pass's y (nnlib__winograd_finish). */
typedef struct nnlib__winograd {
  int64_t c, co, h, w;
} nnlib__winograd;
void nnlib__winograd_weights(const float *w, int64_t co_count, int64_t c_count,
                             float *u);
/* U' [16, C, Co] for the input gradient: dx = dy convolved by the
 * filters turned by 180 degrees, Co channels in and C out (run with
 * nnlib__winograd {c = Co, co = C}). */
void nnlib__winograd_weights_turned(const float *w, int64_t co_count,
                                    int64_t c_count, float *u);
void nnlib__winograd_input(const nnlib__winograd *g, const float *x, int64_t m,
                           float *v, int64_t c_begin, int64_t c_end);
/* What the output transform applies before it stores (NULL: nothing, it
 * writes Z): the convolution's output pass, v = o + bias[co] (+ 0.0f
 * without a bias), then ReLU (v <= 0 ? 0 : v) when relu, then, pool 1
 * (max) or -1 (min), the 2x2 pool at stride 2 whose windows are the tiles
 * (the first best under strict comparison, or the window's first NaN,
 * as pool2d.c picks). It then writes y [m, Co, h, w], or [m, Co, h/2,
 * w/2] with the pool: the bits of Z followed by those passes. */
typedef struct nnlib__winograd_finish {
  const float *bias;
  bool relu;
  int pool;
} nnlib__winograd_finish;
void nnlib__winograd_output(const nnlib__winograd *g, const float *mx,
                            int64_t m, const nnlib__winograd_finish *f,
                            float *out, int64_t co_begin, int64_t co_end);
/* The transforms run with AVX-512 where the CPU has it, else AVX2, else
 * plain loops, all with the same bits; internal tests force the plain or
 * the AVX2 ones (not while a transform runs). */
void nnlib__winograd_force_plain(bool on);
void nnlib__winograd_force_avx2(bool on);

/* A convolution's lowering at stride 1 along the width, row by row under
 * AVX-512 masks (conv2d_rows.c): for kernel offset (i, j), output row oh
 * of a sample's lowered row reads input row row_start + oh row_stride
 * (padding outside [0, in_h)), and output column ow reads input column
 * ow + col_offset, inside the plane for ow in [lo, hi). */
typedef struct nnlib__lowered_rows {
  int64_t in_h, in_w, out_h, out_w;
  int64_t row_start, row_stride, col_offset, lo, hi;
} nnlib__lowered_rows;
/* dst [n, out_h, out_w] = the lowered row of n planes of x (x_stride
 * floats apart), padding 0. False, writing nothing, where this does not
 * apply (no AVX-512F, rows over 1024 columns, or forced off): the caller
 * then lowers through its portable path. Stride 1 along the width only. */
bool nnlib__lowered_rows_gather(const nnlib__lowered_rows *r, const float *x,
                                int64_t x_stride, float *dst, int64_t n);
/* Its transpose: adds src [n, out_h, out_w] into the n planes of dx; for
 * row_stride 1 and in_w == out_w only (one run per plane), else false as
 * above. */
bool nnlib__lowered_rows_scatter(const nnlib__lowered_rows *r, float *dx,
                                 int64_t x_stride, const float *src, int64_t n);
/* Tests: true makes conv2d.c lower through its portable path. */
void nnlib__lowered_rows_force_plain(bool on);

/* Dense: the initialiser's gain depends on the activation that follows. */
void nnlib__dense_set_init_activation(nnlib_layer *l, nnlib_activation next);
bool nnlib__layer_is_dense(const nnlib_layer *l);

/* EXTENSION POINT: how a layer kind takes part in model descriptions
 * (src/model/spec.c) and model files (src/model/serialize*.c). A new kind
 * (conv2d, pooling, batchnorm, dropout, flatten, rnn/lstm/gru):
 *   1. in its own src/layers/<kind>.c, writes the four functions below and
 *      one `const nnlib__layer_codec nnlib__<kind>_codec = {...}`;
 *   2. declares that codec here, next to the others;
 *   3. adds `&nnlib__<kind>_codec` to the registry in src/layers/registry.c.
 * Nothing else changes: the file format stores each layer as (kind, config
 * bytes), then its parameter and buffer tensors with shapes, so a new kind
 * needs no format version bump. Parameters and buffers are saved by the
 * model, not by the codec. */
#define NNLIB__CODEC_MAX_NAMES 12
typedef struct nnlib__layer_codec {
  nnlib_layer_kind kind; /* the pinned number stored in files */
  /* The description items this kind parses ("dense"; the activation codec
   * lists all eight activation names). NULL-terminated when shorter. */
  const char *spec_names[NNLIB__CODEC_MAX_NAMES];
  /* Builds a layer from an item whose name is one of spec_names. Errors are
   * nnlib__spec_error (a constructor's INVALID_ARGUMENT/TOO_LARGE is turned
   * into NNLIB_ERR_PARSE by the caller). */
  nnlib_status (*parse_spec)(const nnlib__spec_item *item, nnlib_layer **out);
  /* Appends the item that parse_spec turns back into an equal layer. */
  void (*write_spec)(const nnlib_layer *l, nnlib__text *out);
  /* The layer's constructor arguments (not its weights), little-endian.
   * read_config must consume exactly what write_config wrote; a value no
   * constructor accepts is NNLIB_ERR_CORRUPT_FILE (a constructor's
   * INVALID_ARGUMENT is turned into it by the loader). */
  void (*write_config)(const nnlib_layer *l, nnlib__writer *w);
  nnlib_status (*read_config)(nnlib__reader *r, nnlib_layer **out);
} nnlib__layer_codec;

extern const nnlib__layer_codec nnlib__dense_codec;
extern const nnlib__layer_codec nnlib__activation_codec;
extern const nnlib__layer_codec nnlib__conv2d_codec;
extern const nnlib__layer_codec nnlib__maxpool2d_codec;
extern const nnlib__layer_codec nnlib__minpool2d_codec;
extern const nnlib__layer_codec nnlib__avgpool2d_codec;
extern const nnlib__layer_codec nnlib__global_avgpool_codec;
extern const nnlib__layer_codec nnlib__batchnorm_codec;
extern const nnlib__layer_codec nnlib__dropout_codec;
extern const nnlib__layer_codec nnlib__flatten_codec;
extern const nnlib__layer_codec nnlib__transpose_codec;
extern const nnlib__layer_codec nnlib__add_codec;
extern const nnlib__layer_codec nnlib__concat_codec;
extern const nnlib__layer_codec nnlib__multiply_codec;
/* The text layers (src/layers/embedding.c, positional.c, layernorm.c,
 * attention.c; linear lives in dense.c). */
extern const nnlib__layer_codec nnlib__embedding_codec;
extern const nnlib__layer_codec nnlib__positional_codec;
extern const nnlib__layer_codec nnlib__layernorm_codec;
extern const nnlib__layer_codec nnlib__attention_codec;
extern const nnlib__layer_codec nnlib__linear_codec;
/* True for an embedding layer: its input node holds int32 token ids. */
bool nnlib__layer_reads_ids(const nnlib_layer *l);
/* The ids an embedding layer reads: 0 .. its vocabulary - 1. */
int64_t nnlib__embedding_vocab(const nnlib_layer *l);
/* Rows of the last axis in one call of a layer whose sample is [T, ...,
 * D] (decodes): n samples of run->steps positions (all T when 0), times
 * the axes between T and D. */
int64_t nnlib__run_rows(const nnlib_layer *l, const nnlib__run *run,
                        int64_t n);
/* Input elements of one call of an elementwise layer: n * in_size, or n
 * samples of run->steps positions when steps is set. */
int64_t nnlib__run_elements(const nnlib_layer *l, const nnlib__run *run,
                            int64_t n);

/* What conv2d and the pools share (src/layers/spatial.c). Output length of
 * one spatial axis, floor((in + 2 pad - dilation (kernel - 1) - 1) / stride)
 * + 1, or 0 when the dilated kernel does not fit the padded input. */
int64_t nnlib__window_out(int64_t in, int64_t kernel, int64_t stride,
                          int64_t pad, int64_t dilation);
/* Description field `field` after its first `skip` characters as `count`
 * integers in [min, max] separated by 'x' ("32x5x5"); with `square`, a
 * single integer stands for all of them ("2" is "2x2"). */
nnlib_status nnlib__spec_dims(const nnlib__spec_item *item, size_t field,
                              size_t skip, size_t count, bool square,
                              int64_t min, int64_t max, int64_t *out);
/* ":<prefix>A" when a == b, else ":<prefix>AxB". */
void nnlib__text_append_pair(nnlib__text *t, const char *prefix, int64_t a,
                             int64_t b);
/* "[3, 28, 28]" into buf, for messages. */
void nnlib__shape_text(const nnlib__shape *s, char *buf, size_t size);

/* The recurrent layers (src/layers/rnn.c, lstm.c, gru.c; what they share
 * is in src/layers/recurrent.c). */
extern const nnlib__layer_codec nnlib__rnn_codec;
extern const nnlib__layer_codec nnlib__lstm_codec;
extern const nnlib__layer_codec nnlib__gru_codec;
/* The description item "last": makes `previous` (the layer of the item
 * before, NULL for none), which must be recurrent, return only its last
 * step. NNLIB_ERR_PARSE otherwise. */
nnlib_status nnlib__recurrent_spec_last(const nnlib__spec_item *item,
                                        nnlib_layer *previous);
/* nnlib_gru_create with the form of the new gate chosen: linear_before_reset
 * true is PyTorch's (public) form, false ONNX's default, n = tanh(W_in x +
 * b_in + W_hn (r h) + b_hn) (gru.c; the description option "lbr0"). */
nnlib_status nnlib__gru_create(nnlib_layer **out, int64_t input_size,
                               int64_t hidden_size, int with_bias,
                               int return_sequences,
                               bool linear_before_reset);
/* Recurrent layer facts the model's sequence planning reads. */
bool nnlib__layer_is_recurrent(const nnlib_layer *l);
bool nnlib__recurrent_returns_sequences(const nnlib_layer *l);

/* The registry: the codec of a kind, or of a description item's name;
 * NULL when none is registered. */
const nnlib__layer_codec *nnlib__codec_for_kind(uint32_t kind);
const nnlib__layer_codec *nnlib__codec_for_name(const char *name,
                                                size_t length);
/* "dense, step, sigmoid, ..." (every registered item name) into t, for the
 * unknown-item message. */
void nnlib__codec_append_names(nnlib__text *t);

#endif /* NNLIB_LAYER_H */
