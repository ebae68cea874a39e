/* nnlib_internal.h - what the library's files share and users never see. */
#ifndef NNLIB_INTERNAL_H
#define NNLIB_INTERNAL_H

#include "nnlib.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------- errors */

/* Records a formatted message for the calling thread and returns status. */
nnlib_status nnlib__error(nnlib_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#define NNLIB_CHECK_ARG(cond, ...)                                             \
  do {                                                                         \
    if (!(cond))                                                               \
      return nnlib__error(NNLIB_ERR_INVALID_ARGUMENT, __VA_ARGS__);            \
  } while (0)

#define NNLIB_TRY(expr)                                                        \
  do {                                                                         \
    nnlib_status nnlib__st = (expr);                                           \
    if (nnlib__st != NNLIB_OK)                                                 \
      return nnlib__st;                                                        \
  } while (0)

/* Reads a caller's options struct (first field size_t struct_size) into
 * `dst`, already filled with defaults: a shorter struct keeps the defaults of
 * the fields it lacks, a longer one is accepted only if its extra bytes are
 * zero. `what` names the struct in messages. */
nnlib_status nnlib__read_options(void *dst, size_t dst_size, const void *src,
                                 const char *what);
/* The output twin: copies the fields of `src` (a full struct of src_size
 * bytes, first field struct_size) that the caller's struct at `dst`, of
 * the struct_size the caller set, has room for; the caller's struct_size
 * stays, fields this library lacks are zeroed. NNLIB_ERR_STRUCT_SIZE for a
 * struct_size below sizeof(size_t). */
nnlib_status nnlib__write_struct(void *dst, const void *src, size_t src_size,
                                 const char *what);

/* ------------------------------------------------------------- memory */

void *nnlib__alloc(size_t bytes);             /* 64-byte aligned, or NULL  */
void *nnlib__calloc(size_t count, size_t size); /* zeroed, overflow-checked */
void nnlib__free(void *ptr);

/* a * b into *out; false (and *out untouched) if it overflows int64. Every
 * product of sizes from outside (shapes, file headers) goes through it. */
bool nnlib__mul_overflows(int64_t a, int64_t b, int64_t *out);
/* Product of dims[0..rank) into *out, with overflow and positivity checks. */
nnlib_status nnlib__shape_size(const int64_t *dims, size_t rank, int64_t *out,
                               const char *what);

/* ---------------------------------------------------------------- rng */

/* xoshiro256** seeded through splitmix64: same seed, same sequence. */
typedef struct nnlib__rng {
  uint64_t s[4];
} nnlib__rng;

void nnlib__rng_seed(nnlib__rng *rng, uint64_t seed);
uint64_t nnlib__rng_next(nnlib__rng *rng);
float nnlib__rng_uniform(nnlib__rng *rng); /* [0, 1) */
float nnlib__rng_normal(nnlib__rng *rng);  /* N(0, 1) */
uint64_t nnlib__rng_below(nnlib__rng *rng, uint64_t bound); /* [0, bound) */
void nnlib__rng_shuffle(nnlib__rng *rng, int64_t *items, int64_t count);

/* --------------------------------------------------------------- BLAS */

typedef enum { NNLIB__NO_TRANS = 0, NNLIB__TRANS = 1 } nnlib__trans;

/* C[m,n] = alpha * op(A)[m,k] op(B)[k,n] + beta * C, row-major, with leading
 * dimensions lda/ldb/ldc. The only place nnlib calls a matrix product. Checks
 * every dimension fits the 32-bit BLAS interface. */
nnlib_status nnlib__gemm(nnlib__trans ta, nnlib__trans tb, int64_t m,
                         int64_t n, int64_t k, float alpha, const float *a,
                         int64_t lda, const float *b, int64_t ldb, float beta,
                         float *c, int64_t ldc);
/* FLOPs (2 m n k each) of every nnlib__gemm the calling thread has issued;
 * the profiler takes differences of it. */
double nnlib__gemm_flops_issued(void);
/* Largest dimension nnlib__gemm accepts. */
#define NNLIB__BLAS_DIM_MAX ((int64_t)0x7fffffff)

/* ------------------------------------------------------------- tensor */

struct nnlib_tensor {
  float *data;
  int64_t shape[NNLIB_MAX_RANK];
  size_t rank;
  int64_t size;
  bool owns_data;
};

/* Initialises a tensor struct in place as a view of `data` (for parameters
 * and gradients living in a model's flat buffers). */
void nnlib__tensor_view(nnlib_tensor *t, float *data, const int64_t *shape,
                        size_t rank);

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
  /* backward honours run->sgd_fused (see nnlib__run) */
  bool fuses_sgd;
  /* backward reads y, if at all, only before it writes dx or at the same
   * element it writes, so the model may pass dx == y (its output buffer,
   * spent by then) when the output is at least as large as dx */
  bool dx_over_output;
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
  bool compiled;
  /* Fusion, decided at compile: a dense layer followed by an elementwise
   * activation applies it in its own bias pass; the activation is skipped. */
  nnlib_layer *fused_activation;
  bool fused_away;
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
bool nnlib__layer_is_merge(const nnlib_layer *l);
/* Declares parameter i with a shape (called from plan). */
void nnlib__layer_declare_param(nnlib_layer *l, const char *name,
                                const int64_t *shape, size_t rank);
/* Declares buffer i (state inference needs, see `buffers`) from plan. */
void nnlib__layer_declare_buffer(nnlib_layer *l, const char *name,
                                 const int64_t *shape, size_t rank);

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

/* Dense: the initialiser's gain depends on the activation that follows. */
void nnlib__dense_set_init_activation(nnlib_layer *l, nnlib_activation next);
bool nnlib__layer_is_dense(const nnlib_layer *l);

/* ------------------------------------ model descriptions and model files */

/* Little-endian encoder for model files (docs/FILE_FORMAT.md). With
 * data == NULL it only counts, so a file is sized in one pass and written in
 * a second; writing past capacity is a bug and is caught by the caller
 * comparing the two passes' sizes. */
typedef struct nnlib__writer {
  unsigned char *data;
  size_t size;     /* bytes written (or counted) so far */
  size_t capacity; /* of data */
} nnlib__writer;
void nnlib__put_u32(nnlib__writer *w, uint32_t v);
void nnlib__put_u64(nnlib__writer *w, uint64_t v);
void nnlib__put_i64(nnlib__writer *w, int64_t v);
void nnlib__put_f32(nnlib__writer *w, float v); /* its IEEE-754 bits */

/* Decoder over a byte range whose length the container already checked.
 * Reading past its end is NNLIB_ERR_CORRUPT_FILE, with `what` (e.g. "layer 2
 * config") in the message. */
typedef struct nnlib__reader {
  const unsigned char *p;
  size_t left;
  const char *what;
} nnlib__reader;
nnlib_status nnlib__get_u32(nnlib__reader *r, uint32_t *v);
nnlib_status nnlib__get_u64(nnlib__reader *r, uint64_t *v);
nnlib_status nnlib__get_i64(nnlib__reader *r, int64_t *v);
nnlib_status nnlib__get_f32(nnlib__reader *r, float *v);

/* Text of nnlib_model_get_spec: appends like snprintf into buf[capacity]
 * (always NUL-terminated when capacity > 0) and counts the full length. */
typedef struct nnlib__text {
  char *buf;
  size_t capacity;
  size_t length;
} nnlib__text;
void nnlib__text_append(nnlib__text *t, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* The shortest decimal that reads back as exactly v, with '.' whatever the
 * C locale says. */
void nnlib__text_append_float(nnlib__text *t, float v);

/* One item of a model description, split at ':' into fields; fields[0] is
 * the item's name ("dense" in "dense:10:nobias"). */
#define NNLIB__SPEC_MAX_FIELDS 16
typedef struct nnlib__spec_field {
  const char *text; /* not NUL-terminated */
  size_t length;
} nnlib__spec_field;
typedef struct nnlib__spec_item {
  size_t index;  /* 1-based item number */
  size_t column; /* 1-based character position of the item in the text */
  const char *text;
  size_t length;
  size_t field_count;
  nnlib__spec_field fields[NNLIB__SPEC_MAX_FIELDS];
} nnlib__spec_item;
/* NNLIB_ERR_PARSE with a message naming the item and its position. */
nnlib_status nnlib__spec_error(const nnlib__spec_item *item, const char *fmt,
                               ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* The item has min..max fields (name included). */
nnlib_status nnlib__spec_fields(const nnlib__spec_item *item, size_t min,
                                size_t max);
/* Field `field` as a decimal integer in [min, max]. */
nnlib_status nnlib__spec_int(const nnlib__spec_item *item, size_t field,
                             int64_t min, int64_t max, int64_t *out);
/* Field `field` as a finite float ("0.2", "1e-3"; '.' in every locale). */
nnlib_status nnlib__spec_float(const nnlib__spec_item *item, size_t field,
                               float *out);
bool nnlib__spec_field_is(const nnlib__spec_item *item, size_t field,
                          const char *word);

/* EXTENSION POINT: how a layer kind takes part in model descriptions
 * (src/model/spec.c) and model files (src/model/serialize*.c). A new kind
 * (conv2d, pooling, batchnorm, dropout, flatten, rnn/lstm/gru):
 *   1. in its own src/layers/<kind>.c, writes the four functions below and
 *      one `const nnlib__layer_codec nnlib__<kind>_codec = {...}`;
 *   2. declares that codec here, next to the others;
 *   3. adds `&nnlib__<kind>_codec` to the registry in src/model/spec.c.
 * Nothing else changes: the file format stores each layer as (kind, config
 * bytes), then its parameter and buffer tensors with shapes, so a new kind
 * needs no format version bump. Parameters and buffers are saved by the
 * model, not by the codec. */
#define NNLIB__CODEC_MAX_NAMES 8
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
extern const nnlib__layer_codec nnlib__add_codec;
extern const nnlib__layer_codec nnlib__concat_codec;
extern const nnlib__layer_codec nnlib__multiply_codec;

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
/* Recurrent layer facts the model's sequence planning reads. */
bool nnlib__layer_is_recurrent(const nnlib_layer *l);
bool nnlib__recurrent_returns_sequences(const nnlib_layer *l);

/* The registry: the codec of a kind, or of a description item's name;
 * NULL when none is registered. */
const nnlib__layer_codec *nnlib__codec_for_kind(uint32_t kind);
const nnlib__layer_codec *nnlib__codec_for_name(const char *name,
                                                size_t length);

/* --------------------------------------------------------------- loss */

/* Mean loss of y against target over n samples of k outputs; writes
 * dL/dy into dy (may be NULL). target_is_index: target holds n class
 * indices (SOFTMAX_CE only). */
nnlib_status nnlib__loss(nnlib_loss loss, const float *y, const float *target,
                         bool target_is_index, float *dy, int64_t n, int64_t k,
                         double *loss_out);

/* ---------------------------------------------------------- optimizer */

struct nnlib_optimizer {
  nnlib_optimizer_options o;
  int64_t t;       /* updates applied */
  float *state1;   /* momentum / first moment / square average (owned) */
  float *state2;   /* second moment (owned) */
  int64_t size;    /* parameters it was attached to */
};

/* Allocates state for `size` flat parameters. */
nnlib_status nnlib__optimizer_attach(nnlib_optimizer *opt, int64_t size);
/* The learning rate the schedule gives for update number t. */
float nnlib__optimizer_lr_at(const nnlib_optimizer *opt, int64_t t);
/* One update of params from grads (flat, `size` each); may scale grads. */
void nnlib__optimizer_update(nnlib_optimizer *opt, float *params, float *grads,
                             int64_t size);
/* Plain SGD (no momentum, weight decay or clipping) is p -= lr g, which the
 * layers can fold into their weight-gradient GEMM: true and this update's
 * rate in *lr if so. The caller then applies it and calls
 * nnlib__optimizer_count_update. */
bool nnlib__optimizer_is_plain_sgd(const nnlib_optimizer *opt, float *lr);
void nnlib__optimizer_count_update(nnlib_optimizer *opt);

/* The per-rule kernels, one file each. lr is this step's rate. */
void nnlib__sgd_update(const nnlib_optimizer_options *o, float lr,
                       float *params, const float *grads, float *velocity,
                       int64_t size, int64_t t);
void nnlib__adam_update(const nnlib_optimizer_options *o, float lr,
                        float *params, const float *grads, float *m, float *v,
                        int64_t size, int64_t t);
void nnlib__rmsprop_update(const nnlib_optimizer_options *o, float lr,
                           float *params, const float *grads, float *square_avg,
                           float *buffer, int64_t size);

/* -------------------------------------------------------------- model */

/* A node of the model's graph: a model input (layer NULL) or a layer
 * applied to earlier nodes. Nodes are made in order and read only nodes
 * made before them, so node order is a topological order: forward runs it
 * front to back, backward back to front. */
typedef struct nnlib__node {
  nnlib_layer *layer;     /* NULL: a model input; else owned by the model */
  size_t *inputs;         /* input_count node indices, each below this
                             node's; owned */
  nnlib_node *handles;    /* the same as handles, for nnlib_model_get_node */
  size_t input_count;
  int64_t input_index;    /* model input number, or -1 */
  int64_t layer_index;    /* index in nnlib_model's layers, or -1 */
  char *name;             /* owned; NULL when unnamed */
  nnlib__shape shape;     /* per-sample output: an input's declared shape,
                             a layer's from plan */
  int64_t size;           /* floats per sample of the output */
  /* set by compile */
  size_t readers;         /* layers that read this node */
  size_t last_reader;     /* the highest-numbered of them */
  bool at_steps;          /* its output is a sequence [T', F] when a call
                             runs shorter sequences */
  bool runs_at_steps;     /* a layer that gets run.steps in such a call */
} nnlib__node;

/* "node 4 (dense)" or the node's name, for messages; returns buf. */
const char *nnlib__node_label(const nnlib_model *m, size_t v, char *buf,
                              size_t size);
#define NNLIB__LABEL_SIZE 64

/* What one pass over the graph writes. acts[v] is the output of node v (NULL
 * for a model input: the call's data; a fused dense+activation pair shares
 * one), workspace[v] its layer's scratch, grads[v] dL/d(output of v) (only
 * in the model's training set). Where these lie is planned by liveness
 * (plan.c): a buffer is reused once its last reader has run. The model has
 * one set for training; each nnlib_workspace has an inference set of its
 * own, so threads can run inference on one model at once. */
typedef struct nnlib__buffers {
  float **acts;
  float **workspace;
  float **grads;      /* NULL in an inference set */
  const float **xs;   /* a merge layer's input pointers (the widest fan-in) */
  float **dxs;        /* and its input-gradient pointers */
  float *accum;       /* fan-out: a later reader's dx before it is added */
  float *block;       /* owns every buffer above, one allocation */
  void *pointers;     /* owns the pointer arrays */
} nnlib__buffers;

/* Allocates a set for the model's plan (max batch): training (acts kept
 * for backward, gradients) or inference only. Frees with _free. */
nnlib_status nnlib__buffers_alloc(const nnlib_model *m, nnlib__buffers *b,
                                  bool training);
void nnlib__buffers_free(nnlib__buffers *b);
/* Floats the buffer set of the model's plan holds (the memory benchmark). */
int64_t nnlib__buffers_floats(const nnlib_model *m, bool training);

/* The data of one call: everything a pass needs besides the model and its
 * buffers, so that nothing travels through model fields. */
#define NNLIB__MAX_INPUTS 64 /* model inputs (documented in nnlib.h) */
typedef struct nnlib__batch {
  const float *x[NNLIB__MAX_INPUTS]; /* one per model input, n samples each */
  const float *target;    /* NULL for a pass without a loss */
  bool target_is_index;
  int64_t n;
  int64_t steps;          /* sequence length when shorter than planned */
  bool training;          /* training mode (dropout, batch statistics) */
  bool sgd_fused;         /* plain SGD folded into backward (nnlib__run) */
  float sgd_lr;
} nnlib__batch;

struct nnlib_model {
  nnlib__node *nodes;
  size_t node_count, node_capacity;
  /* The layers of layer nodes in node order: nnlib_model_get_layer's
   * numbering, the order of the flat parameters and of model files. */
  nnlib_layer **layers;
  size_t layer_count, layer_capacity;
  size_t *inputs;         /* node index of each model input */
  size_t input_count, input_capacity;
  bool implicit_input;    /* input 0 was made by nnlib_model_add; compile
                             gives its shape */
  size_t output;          /* output node (after compile, or when set) */
  bool output_set;
  uint32_t tag;           /* the high half of this model's nnlib_node values */
  bool compiled;
  nnlib__shape input_shape; /* input 0's, after compile */
  int64_t input_size, output_size;
  int64_t max_batch;
  /* Calls may run sequences shorter than planned ([N, T', F], T' < T):
   * one rank-2 input read only by recurrent layers up to ones returning
   * their last step, or forming the output (nnlib__node's at_steps). */
  bool takes_shorter;
  nnlib_loss loss;
  nnlib_optimizer *optimizer;
  nnlib__rng rng;
  uint64_t seed;
  /* Flat buffers: every parameter and gradient lives in one block each, so
   * optimizers and reductions walk one array. */
  float *params, *grads;
  int64_t param_size;
  /* every layer's buffers (batchnorm running statistics), one block too */
  float *layer_state;
  int64_t layer_state_size;
  nnlib__buffers bufs;      /* activations, workspaces, gradients */
  /* nnlib_model_set_input_gradients: one buffer per input, and views */
  float **input_grads;
  nnlib_tensor *input_grad_views;
  int64_t input_grads_n;    /* batch of the last backward; 0: none yet */
  /* the batch of the last nnlib_model_forward, for backward_output; 0
   * once any other call has used the buffers */
  int64_t forward_n, forward_steps;
  const float *forward_x[NNLIB__MAX_INPUTS]; /* that pass's input data */
  nnlib_tensor output_view;
  bool profiling; /* nnlib_model_set_profiling (profile.c) */
  bool check_numerics; /* nnlib_model_set_check_numerics (numerics.c) */
};

/* nnlib_model_compile; without init_weights the parameters and layer
 * buffers stay zero (the model-file loader fills every one of them, so
 * drawing initial weights first would be wasted work). input_shape NULL:
 * every input was declared with its shape. */
nnlib_status nnlib__model_compile(nnlib_model *m, const int64_t *input_shape,
                                  size_t input_rank, int64_t max_batch,
                                  nnlib_loss loss, nnlib_optimizer *opt,
                                  uint64_t seed, bool init_weights);
/* Frees everything compile allocated; the model is uncompiled again. */
void nnlib__model_release(nnlib_model *m);
/* Graph building for the description parser and the model-file loader:
 * nnlib_model_input and nnlib_model_apply by node index. On failure
 * apply frees the layer. */
nnlib_status nnlib__model_add_input(nnlib_model *m, const nnlib__shape *shape,
                                    size_t *node);
nnlib_status nnlib__model_apply(nnlib_model *m, nnlib_layer *layer,
                                const size_t *inputs, size_t count,
                                size_t *node);
nnlib_status nnlib__model_set_output(nnlib_model *m, size_t node);
nnlib_status nnlib__model_set_name(nnlib_model *m, size_t node,
                                   const char *name, size_t length);
/* The node named name[0..length), or -1. */
int64_t nnlib__model_find_name(const nnlib_model *m, const char *name,
                               size_t length);
/* Drops the nodes from `count` on (and their layers): how a description
 * that fails to parse leaves the model as it was. Uncompiled models only. */
void nnlib__model_truncate(nnlib_model *m, size_t count);
/* The model is a chain: one input, every layer reads the node before it
 * and the output is the newest node (1.2's models and files). */
bool nnlib__model_is_chain(const nnlib_model *m);

/* The model is compiled (with a loss for _trainable; `what` names the
 * call in messages). */
nnlib_status nnlib__check_compiled(const nnlib_model *m, const char *what);
nnlib_status nnlib__check_trainable(const nnlib_model *m, const char *what);
/* Checks a call's data tensors against the model: count equal to the
 * input count, each of rank >= 1 with the input's per-sample size, one N
 * for all, 1 <= N <= limit (limit 0: no limit). Fills batch->x, n and
 * steps (the sequence length when shorter than planned, else 0). */
nnlib_status nnlib__check_inputs(const nnlib_model *m,
                                 const nnlib_tensor *const *x, size_t count,
                                 int64_t limit, nnlib__batch *batch);
/* Floats per sample of input k in a call at sequence length steps. */
int64_t nnlib__input_stride(const nnlib_model *m, size_t k, int64_t steps);
/* Floats per sample of node v's output in a call at `steps` (0: planned). */
int64_t nnlib__node_size_at(const nnlib_model *m, size_t v, int64_t steps);
/* Floats per sample of the model's output in a call at `steps`. */
int64_t nnlib__output_size_at(const nnlib_model *m, int64_t steps);
/* Checks a target tensor for the batch and sets target and its kind. */
nnlib_status nnlib__check_target(const nnlib_model *m, const nnlib_tensor *t,
                                 nnlib__batch *batch);

/* The passes (train.c). Forward over batch with a buffer set (in
 * inference mode it reads the model only; rng is the model's in training
 * mode, NULL in inference); *out is the output node's buffer. */
nnlib_status nnlib__forward(const nnlib_model *m, const nnlib__buffers *b,
                            const nnlib__batch *batch, nnlib__rng *rng,
                            const float **out);
/* Backward after a forward over the same batch on the model's own
 * buffers: from the loss of the batch's target (*loss gets it), or from
 * dy_out, a caller's dL/dy, when it is not NULL. */
nnlib_status nnlib__backward(nnlib_model *m, const nnlib__batch *batch,
                             const float *dy_out, double *loss);
/* forward + loss + backward in training mode; the loss must be finite. */
nnlib_status nnlib__gradients(nnlib_model *m, const nnlib__batch *batch,
                              double *loss);
/* One optimizer step: forward, loss, backward and the update (fused into
 * backward for plain SGD). */
nnlib_status nnlib__train_batch(nnlib_model *m, nnlib__batch *batch,
                                double *loss);
/* Inference over any number of samples, in chunks, with a buffer set. */
nnlib_status nnlib__model_predict(const nnlib_model *m, nnlib__buffers *b,
                                  const nnlib_tensor *const *x, size_t count,
                                  nnlib_tensor *y);
/* chunk = samples [start, start + n) of whole. */
void nnlib__batch_chunk(const nnlib_model *m, const nnlib__batch *whole,
                        int64_t start, int64_t n, nnlib__batch *chunk);

/* Shorter sequences (sequence.c): marks at_steps and runs_at_steps and
 * sets m->takes_shorter; checks a [N, T', F] input against it. */
void nnlib__plan_sequences(nnlib_model *m);
nnlib_status nnlib__check_sequence_input(const nnlib_model *m, size_t k,
                                         const nnlib_tensor *x,
                                         int64_t *shorter);

#endif /* NNLIB_INTERNAL_H */
