/*
 * nnlib.h - the one public header of nnlib, a neural-network library in C11
 * whose forward and backward passes are GEMM calls into OpenBLAS.
 *
 * Conventions (read once, they hold for every function below):
 *
 *  - Every fallible function returns nnlib_status: NNLIB_OK (0) on success, a
 *    negative code on failure. Values are pinned forever. nnlib_status_string()
 *    gives the fixed text of a code; nnlib_last_error_message() the detail of
 *    the last failure on the calling thread.
 *  - Results come back through `T **out` parameters, which come first in
 *    constructors and last elsewhere. On failure *out is set to NULL.
 *  - Ownership: a handle returned by *_create or *_load belongs to the caller,
 *    who releases it with the matching *_free (NULL is a no-op). Tensors passed
 *    into a call are borrowed for the duration of the call. Pointers returned by
 *    getters are borrowed and live as long as their owner. nnlib_model_add takes
 *    the layer, also when it fails; nnlib_model_compile takes the optimizer,
 *    also when it fails.
 *  - Shapes are int64_t arrays with an explicit rank, row-major, batch first.
 *    Model and layer shapes are per sample: the batch dimension is left out.
 *  - Options are structs whose first field is struct_size, filled with defaults
 *    by the matching *_options_init(); a NULL options pointer means defaults.
 *  - Thread safety: distinct handles may be used from different threads at the
 *    same time; one handle is used by one thread at a time unless a function
 *    says otherwise. Process-wide state: the allocator hook and the BLAS thread
 *    count.
 *  - The library never prints, never exits and never aborts on bad input.
 */
#ifndef NNLIB_H
#define NNLIB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- export */

#if defined(NNLIB_STATIC_DEFINE)
#define NNLIB_API
#elif defined(_WIN32)
#ifdef NNLIB_BUILDING
#define NNLIB_API __declspec(dllexport)
#else
#define NNLIB_API __declspec(dllimport)
#endif
#elif defined(__GNUC__)
#define NNLIB_API __attribute__((visibility("default")))
#else
#define NNLIB_API
#endif

/* --------------------------------------------------------------- version */

#define NNLIB_VERSION_MAJOR 1
#define NNLIB_VERSION_MINOR 2
#define NNLIB_VERSION_PATCH 0
/* MAJOR * 10000 + MINOR * 100 + PATCH */
#define NNLIB_VERSION_NUMBER                                                   \
  (NNLIB_VERSION_MAJOR * 10000 + NNLIB_VERSION_MINOR * 100 + NNLIB_VERSION_PATCH)
#define NNLIB_VERSION_STRING "1.2.0" /* MAJOR.MINOR.PATCH (a test checks) */
#define NNLIB_VERSION_AT_LEAST(major, minor, patch)                            \
  (NNLIB_VERSION_NUMBER >= ((major) * 10000 + (minor) * 100 + (patch)))

/* The version of the library loaded at run time, as NNLIB_VERSION_NUMBER.
 * Bindings compare its major (value / 10000) with the one they were written
 * for. Thread-safe. */
NNLIB_API unsigned nnlib_version(void);
/* NNLIB_VERSION_STRING, e.g. "1.1.0"; static storage. Thread-safe. */
NNLIB_API const char *nnlib_version_string(void);

/* ---------------------------------------------------------------- status */

typedef enum nnlib_status {
  NNLIB_OK = 0,
  NNLIB_ERR_INVALID_ARGUMENT = -1,   /* NULL handle, negative size, bad enum  */
  NNLIB_ERR_OUT_OF_MEMORY = -2,      /* an allocation failed                  */
  NNLIB_ERR_SHAPE_MISMATCH = -3,     /* shapes do not chain or do not match   */
  NNLIB_ERR_UNSUPPORTED = -4,        /* valid request this build cannot do    */
  NNLIB_ERR_WRONG_STATE = -5,        /* e.g. step before compile              */
  NNLIB_ERR_STRUCT_SIZE = -6,        /* options struct_size not understood    */
  NNLIB_ERR_TOO_LARGE = -7,          /* a size over what BLAS or memory takes */
  NNLIB_ERR_IO = -8,                 /* open/read/write/rename failed         */
  NNLIB_ERR_CORRUPT_FILE = -9,       /* inconsistent or trailing file content */
  NNLIB_ERR_UNSUPPORTED_VERSION = -10, /* file format newer than this library */
  NNLIB_ERR_NUMERICAL = -11,         /* NaN or Inf in loss, activations, grads */
  NNLIB_ERR_BAD_MAGIC = -12,         /* not a file of the expected kind       */
  NNLIB_ERR_CHECKSUM = -13,          /* stored checksum does not match        */
  NNLIB_ERR_TRUNCATED = -14,         /* file shorter than its header says     */
  NNLIB_ERR_CANCELLED = -15,         /* a callback asked to stop              */
  NNLIB_ERR_OUT_OF_RANGE = -16,      /* a value outside its range (a label)   */
  NNLIB_ERR_PARSE = -17,             /* a model description that does not parse */
  NNLIB_ERR_INTERNAL = -18           /* a bug in nnlib; please report it      */
} nnlib_status;

/* Fixed English text of a status code ("shape mismatch"); never NULL, static
 * storage, thread-safe. Unknown codes give "unknown status". */
NNLIB_API const char *nnlib_status_string(nnlib_status status);

/* Detail of the last failure on the calling thread, e.g. "dense: input has
 * 783 features, layer expects 784". Never NULL ("" when nothing failed yet).
 * Thread-local; valid until the next nnlib call on the same thread. */
NNLIB_API const char *nnlib_last_error_message(void);
/* Clears the calling thread's message. */
NNLIB_API void nnlib_clear_error(void);

/* ------------------------------------------------ process-wide settings */

/* Number of threads OpenBLAS uses for matrix products (process-wide; not safe
 * to call while another thread computes). n <= 0 restores the default (all
 * cores or OPENBLAS_NUM_THREADS). */
NNLIB_API nnlib_status nnlib_set_num_threads(int n);
NNLIB_API int nnlib_get_num_threads(void);

/* Optional allocator hook. Every heap allocation nnlib makes goes through it
 * (OpenBLAS's own buffers do not). Must be set before any other nnlib call,
 * or when no nnlib object is alive; NULL restores the C library's allocator.
 * alloc returns memory aligned to `alignment` (a power of two, at most 64) or
 * NULL; free accepts NULL. Tests use it to count allocations and to inject
 * failures. */
typedef struct nnlib_allocator {
  size_t struct_size;
  void *(*alloc)(size_t size, size_t alignment, void *user);
  void (*free)(void *ptr, void *user);
  void *user;
} nnlib_allocator;
NNLIB_API nnlib_status nnlib_set_allocator(const nnlib_allocator *allocator);

/* Frees memory that nnlib returned to the caller (nnlib_model_save_buffer). */
NNLIB_API void nnlib_free(void *ptr);

/* ---------------------------------------------------------------- tensor */

typedef struct nnlib_tensor nnlib_tensor;

#define NNLIB_MAX_RANK 8

/* A float32 tensor of the given shape (1 <= rank <= NNLIB_MAX_RANK, every
 * dimension >= 1), zero-filled, 64-byte aligned, owned by the tensor. */
NNLIB_API nnlib_status nnlib_tensor_create(nnlib_tensor **out,
                                           const int64_t *shape, size_t rank);
/* A tensor over caller memory (zero-copy). The caller keeps ownership of
 * `data`, keeps it alive while the tensor lives, and nnlib never frees it. */
NNLIB_API nnlib_status nnlib_tensor_wrap(nnlib_tensor **out, float *data,
                                         const int64_t *shape, size_t rank);
NNLIB_API void nnlib_tensor_free(nnlib_tensor *tensor);

/* Rank, one dimension (0 for an axis out of range or a NULL tensor), the
 * borrowed shape array, and the element count (0 for NULL). */
NNLIB_API size_t nnlib_tensor_get_rank(const nnlib_tensor *tensor);
NNLIB_API int64_t nnlib_tensor_get_dim(const nnlib_tensor *tensor, size_t axis);
NNLIB_API const int64_t *nnlib_tensor_get_shape(const nnlib_tensor *tensor);
NNLIB_API int64_t nnlib_tensor_get_size(const nnlib_tensor *tensor);
/* The element buffer (row-major), borrowed; NULL for a NULL tensor. */
NNLIB_API float *nnlib_tensor_get_data(nnlib_tensor *tensor);
NNLIB_API const float *nnlib_tensor_get_data_const(const nnlib_tensor *tensor);

/* Changes the shape in place; the element count must stay the same. */
NNLIB_API nnlib_status nnlib_tensor_set_shape(nnlib_tensor *tensor,
                                              const int64_t *shape, size_t rank);
NNLIB_API nnlib_status nnlib_tensor_fill(nnlib_tensor *tensor, float value);
/* Copies src's elements into dst; both must have the same element count. */
NNLIB_API nnlib_status nnlib_tensor_copy(nnlib_tensor *dst,
                                         const nnlib_tensor *src);

/* ---------------------------------------------------------------- layers */

typedef struct nnlib_layer nnlib_layer;

/* Pinned values: used in model files and bindings. */
typedef enum nnlib_layer_kind {
  NNLIB_LAYER_DENSE = 1,
  NNLIB_LAYER_ACTIVATION = 2,
  NNLIB_LAYER_CONV2D = 3,
  NNLIB_LAYER_MAXPOOL2D = 4,
  NNLIB_LAYER_MINPOOL2D = 5,
  NNLIB_LAYER_AVGPOOL2D = 6,
  NNLIB_LAYER_GLOBAL_AVGPOOL = 7,
  NNLIB_LAYER_BATCHNORM = 8,
  NNLIB_LAYER_DROPOUT = 9,
  NNLIB_LAYER_FLATTEN = 10,
  NNLIB_LAYER_RNN = 11,
  NNLIB_LAYER_LSTM = 12,
  NNLIB_LAYER_GRU = 13
} nnlib_layer_kind;

typedef enum nnlib_activation {
  NNLIB_ACT_IDENTITY = 0,
  NNLIB_ACT_STEP = 1,       /* Heaviside (x > 0); backward straight-through  */
  NNLIB_ACT_SIGMOID = 2,
  NNLIB_ACT_TANH = 3,
  NNLIB_ACT_RELU = 4,
  NNLIB_ACT_LEAKY_RELU = 5, /* x > 0 ? x : slope * x                         */
  NNLIB_ACT_SOFTPLUS = 6,   /* log(1 + e^x), linear above x = 20 like PyTorch */
  NNLIB_ACT_SOFTMAX = 7     /* over the last axis                            */
} nnlib_activation;

/* A fully connected layer y = x W^T + b with W [out, in] and b [out].
 * in_features = 0 takes the input size from the previous layer at compile;
 * an input of rank > 1 per sample is flattened. with_bias: 0 or 1. */
NNLIB_API nnlib_status nnlib_dense_create(nnlib_layer **out,
                                          int64_t in_features,
                                          int64_t out_features, int with_bias);
/* An activation layer. `param` is the negative slope of LEAKY_RELU (PyTorch's
 * default is 0.01) and ignored by the others. */
NNLIB_API nnlib_status nnlib_activation_create(nnlib_layer **out,
                                               nnlib_activation kind,
                                               float param);

/* Convolutional layers work on NCHW batches: a sample is [C, H, W]. Output
 * sizes follow PyTorch (floor division):
 *   OH = (H + 2 padding_h - dilation_h (kernel_h - 1) - 1) / stride_h + 1
 * and likewise OW. A kernel larger than the padded input, a channel count
 * that does not match, or an input that is not [C, H, W] is
 * NNLIB_ERR_SHAPE_MISMATCH at compile. */
typedef struct nnlib_conv2d_options {
  size_t struct_size;
  int64_t in_channels;            /* default 0: taken from the input       */
  int64_t stride_h, stride_w;     /* default 1                             */
  int64_t padding_h, padding_w;   /* zeros on each side; default 0         */
  int64_t dilation_h, dilation_w; /* default 1                             */
  int with_bias;                  /* default 1                             */
} nnlib_conv2d_options;
NNLIB_API nnlib_status nnlib_conv2d_options_init(
    nnlib_conv2d_options *options);
/* A 2-D convolution (PyTorch's Conv2d, zero padding): [C_in, H, W] ->
 * [out_channels, OH, OW], weight [out_channels, C_in, kernel_h, kernel_w],
 * bias [out_channels]. options NULL: the defaults. Weights start He
 * (Kaiming) normal, std sqrt(2 / (C_in kernel_h kernel_w)); biases zero. */
NNLIB_API nnlib_status nnlib_conv2d_create(nnlib_layer **out,
                                           int64_t out_channels,
                                           int64_t kernel_h, int64_t kernel_w,
                                           const nnlib_conv2d_options *options);

typedef struct nnlib_pool2d_options {
  size_t struct_size;
  int64_t stride_h, stride_w;   /* default 0: the kernel size (PyTorch)   */
  int64_t padding_h, padding_w; /* default 0; at most half the kernel      */
} nnlib_pool2d_options;
NNLIB_API nnlib_status nnlib_pool2d_options_init(
    nnlib_pool2d_options *options);
/* Pooling over kernel_h x kernel_w windows of each channel: kind is
 * NNLIB_LAYER_MAXPOOL2D, NNLIB_LAYER_MINPOOL2D (padding never wins) or
 * NNLIB_LAYER_AVGPOOL2D (divides by the whole window, padding included, like
 * PyTorch's count_include_pad). [C, H, W] -> [C, OH, OW] (dilation 1).
 * Backward routes each gradient to the selected element (max, min; the
 * first one on ties) or spreads it over the window (average). */
NNLIB_API nnlib_status nnlib_pool2d_create(nnlib_layer **out,
                                           nnlib_layer_kind kind,
                                           int64_t kernel_h, int64_t kernel_w,
                                           const nnlib_pool2d_options *options);
/* Global average pooling: [C, H, W] -> [C], the mean of each channel. */
NNLIB_API nnlib_status nnlib_global_avgpool_create(nnlib_layer **out);
/* Batch normalisation per channel of [C, ...] samples: over the batch and
 * the positions of [C, H, W] feature maps (PyTorch's BatchNorm2d), over the
 * batch for [C] features (BatchNorm1d). Training: y = gamma (x - mean) /
 * sqrt(var + epsilon) + beta with the batch's mean and biased variance, and
 * running = (1 - momentum) running + momentum batch (unbiased variance;
 * a batch of one value per channel leaves them as they are). Inference
 * (predict, evaluate, workspaces): the running statistics. Parameters
 * weight (gamma, init 1) and bias (beta, init 0) [C]; buffers running_mean
 * (init 0) and running_var (init 1) [C]. PyTorch's defaults: momentum 0.1,
 * epsilon 1e-5. */
NNLIB_API nnlib_status nnlib_batchnorm_create(nnlib_layer **out,
                                              float momentum, float epsilon);
/* Inverted dropout: in training each element is zeroed with probability
 * `rate` (0 <= rate < 1) and the others are scaled by 1 / (1 - rate); the
 * mask comes from the model's seeded generator. Identity in inference. */
NNLIB_API nnlib_status nnlib_dropout_create(nnlib_layer **out, float rate);
/* [d0, d1, ...] -> [d0 * d1 * ...], e.g. between convolutional and dense
 * layers (dense layers also flatten their input themselves). */
NNLIB_API nnlib_status nnlib_flatten_create(nnlib_layer **out);

/* Recurrent layers over sequences: a sample is [T, F] (T steps of F
 * features; batches [N, T, F], batch first), and the output is the hidden
 * state h_t of every step, [T, H] (return_sequences = 1, stackable: it feeds
 * the next recurrent layer), or of the last step only, [H]
 * (return_sequences = 0). Parameters follow PyTorch's torch.nn.RNN, LSTM and
 * GRU (one layer, batch_first) so weights transfer: weight_ih [G*H, F],
 * weight_hh [G*H, H], then with_bias: bias_ih [G*H], bias_hh [G*H]; G gate
 * blocks of H rows: 1 for rnn, i f g o for lstm, r z n for gru (gru's
 * n = tanh(W_in x + b_in + r (W_hn h + b_hn)) as PyTorch). Initialised like
 * PyTorch: every parameter uniform in +-1/sqrt(H).
 * The model's input shape [T, F] sets the longest sequence: a batch
 * [N, T', F] with T' above it is NNLIB_ERR_TOO_LARGE ("sequence length ...
 * above the compiled maximum"), with other F NNLIB_ERR_SHAPE_MISMATCH.
 * Shorter sequences (since 1.2.0): when the model's recurrent layers come
 * first and end in one returning only its last step (e.g. lstm:128,last,
 * dense:10 or lstm:64,gru:32,last,dense:1), every call (predict, evaluate,
 * forward, backward, step, fit and its validation data, gradcheck,
 * workspaces) takes [N, T', F] batches with any 1 <= T' <= T, each batch
 * its own T' (group sequences by length; no padding needed), and the
 * output keeps its shape. Other models (a sequence as the output, another
 * layer inside the time axis) refuse T' < T with NNLIB_ERR_SHAPE_MISMATCH:
 * pad the sequences or compile a model for their length. A flat batch
 * [N, T' F] is never read as shorter sequences. input_size = 0 takes F
 * from the input at compile; another F than a nonzero input_size is
 * NNLIB_ERR_SHAPE_MISMATCH at compile. with_bias, return_sequences: 0 or 1.
 * Backpropagation through time runs over the whole sequence. */
/* h_t = f(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), f NNLIB_ACT_TANH or
 * NNLIB_ACT_RELU. */
NNLIB_API nnlib_status nnlib_rnn_create(nnlib_layer **out, int64_t input_size,
                                        int64_t hidden_size,
                                        nnlib_activation nonlinearity,
                                        int with_bias, int return_sequences);
NNLIB_API nnlib_status nnlib_lstm_create(nnlib_layer **out,
                                         int64_t input_size,
                                         int64_t hidden_size, int with_bias,
                                         int return_sequences);
NNLIB_API nnlib_status nnlib_gru_create(nnlib_layer **out, int64_t input_size,
                                        int64_t hidden_size, int with_bias,
                                        int return_sequences);
/* The state h_{-1} (and for lstm c_{-1}) the layer starts every sequence
 * from; zero until set. h0 and c0 hold `rows` rows of H floats each and are
 * copied: rows = 1 gives every sample the same state, rows > 1 one row per
 * sample, and every batch through the layer must then have exactly `rows`
 * samples (else the pass fails with NNLIB_ERR_SHAPE_MISMATCH; predictions
 * of more than the compiled maximum batch run in chunks and so fail).
 * h0 NULL: zero h; c0 NULL: zero c (c0 must be NULL for rnn and gru);
 * both NULL: back to zero states. Like PyTorch's h0/c0 arguments, the
 * state is not a parameter (no gradient reaches it) and model files do not
 * keep it. Not to be called while the model runs in any thread. Statuses:
 * NNLIB_ERR_INVALID_ARGUMENT (not a recurrent layer, rows < 1, c0 for rnn
 * or gru), NNLIB_ERR_TOO_LARGE, NNLIB_ERR_OUT_OF_MEMORY (the previous
 * state stays). */
NNLIB_API nnlib_status nnlib_recurrent_set_initial_state(nnlib_layer *layer,
                                                         const float *h0,
                                                         const float *c0,
                                                         int64_t rows);

NNLIB_API void nnlib_layer_free(nnlib_layer *layer);

NNLIB_API nnlib_layer_kind nnlib_layer_get_kind(const nnlib_layer *layer);
/* "dense", "relu", ...: static storage. */
NNLIB_API const char *nnlib_layer_get_name(const nnlib_layer *layer);
/* Per-sample output shape, known after compile: writes up to `capacity`
 * dimensions and the rank. NNLIB_ERR_WRONG_STATE before compile. */
NNLIB_API nnlib_status nnlib_layer_get_output_shape(const nnlib_layer *layer,
                                                    int64_t *dims,
                                                    size_t capacity,
                                                    size_t *rank);
/* Number of parameter tensors (dense: weight, then bias if any). */
NNLIB_API size_t nnlib_layer_get_param_count(const nnlib_layer *layer);
/* The i-th parameter tensor and its gradient (borrowed, writable), after
 * compile. Writing a parameter's data changes the model. */
NNLIB_API nnlib_status nnlib_layer_get_param(nnlib_layer *layer, size_t index,
                                             nnlib_tensor **value,
                                             nnlib_tensor **grad);
/* "weight", "bias", ...; NULL for an index out of range. */
NNLIB_API const char *nnlib_layer_get_param_name(const nnlib_layer *layer,
                                                 size_t index);
/* Buffers: state that is not trained but that inference needs and model
 * files keep (batchnorm: running_mean, running_var). Count, the i-th buffer
 * (borrowed, writable, after compile; NNLIB_ERR_OUT_OF_RANGE for a bad
 * index) and its name (NULL out of range). */
NNLIB_API size_t nnlib_layer_get_buffer_count(const nnlib_layer *layer);
NNLIB_API nnlib_status nnlib_layer_get_buffer(nnlib_layer *layer, size_t index,
                                              nnlib_tensor **value);
NNLIB_API const char *nnlib_layer_get_buffer_name(const nnlib_layer *layer,
                                                  size_t index);

/* ------------------------------------------------------------ optimizers */

typedef struct nnlib_optimizer nnlib_optimizer;

typedef enum nnlib_optimizer_kind {
  NNLIB_OPT_SGD = 1,     /* with momentum, Nesterov, weight decay           */
  NNLIB_OPT_ADAM = 2,    /* weight decay as L2 added to the gradient         */
  NNLIB_OPT_ADAMW = 3,   /* decoupled weight decay                           */
  NNLIB_OPT_RMSPROP = 4
} nnlib_optimizer_kind;

typedef enum nnlib_schedule {
  NNLIB_SCHEDULE_CONSTANT = 0,
  NNLIB_SCHEDULE_STEP = 1,   /* lr * gamma^floor(t / step_size)              */
  NNLIB_SCHEDULE_COSINE = 2  /* lr_min + (lr - lr_min)(1 + cos(pi t / T)) / 2 */
} nnlib_schedule;

/* The update rules are PyTorch's (torch.optim.SGD, Adam, AdamW, RMSprop),
 * so trajectories transfer. t counts optimizer steps from 0. */
typedef struct nnlib_optimizer_options {
  size_t struct_size;
  nnlib_optimizer_kind kind; /* default NNLIB_OPT_SGD                        */
  float learning_rate;       /* default 0.01 (SGD, RMSProp), 0.001 (Adam/W)  */
  float momentum;            /* SGD and RMSProp; default 0                   */
  int nesterov;              /* SGD; needs momentum > 0; default 0           */
  float weight_decay;        /* default 0 (0.01 for AdamW)                   */
  float beta1, beta2;        /* Adam/AdamW; default 0.9, 0.999              */
  float alpha;               /* RMSProp smoothing; default 0.99              */
  float epsilon;             /* Adam/AdamW/RMSProp; default 1e-8             */
  nnlib_schedule schedule;   /* default constant                             */
  int64_t step_size;         /* STEP: steps between decays                  */
  float gamma;               /* STEP: factor per decay; default 0.1          */
  int64_t total_steps;       /* COSINE: T; lr stays at lr_min after it       */
  float min_learning_rate;   /* COSINE: lr_min; default 0                    */
  float clip_norm;           /* clip gradients to this global L2 norm; 0=off */
} nnlib_optimizer_options;

/* Fills `options` with the defaults of `kind`. */
NNLIB_API nnlib_status nnlib_optimizer_options_init(
    nnlib_optimizer_options *options, nnlib_optimizer_kind kind);
/* An optimizer from options (NULL: plain SGD, lr 0.01). */
NNLIB_API nnlib_status nnlib_optimizer_create(
    nnlib_optimizer **out, const nnlib_optimizer_options *options);
/* Shortcut for SGD with momentum/Nesterov/weight decay. */
NNLIB_API nnlib_status nnlib_sgd_create(nnlib_optimizer **out,
                                        float learning_rate, float momentum,
                                        int nesterov, float weight_decay);
NNLIB_API void nnlib_optimizer_free(nnlib_optimizer *optimizer);
/* Base learning rate (before the schedule). */
NNLIB_API nnlib_status nnlib_optimizer_set_learning_rate(
    nnlib_optimizer *optimizer, float learning_rate);
NNLIB_API float nnlib_optimizer_get_learning_rate(
    const nnlib_optimizer *optimizer);
/* Number of updates applied so far (the t of the schedules and of Adam). */
NNLIB_API int64_t nnlib_optimizer_get_step_count(
    const nnlib_optimizer *optimizer);
/* The options the optimizer runs with (the learning rate as last set),
 * into `options`, whose struct_size the caller sets (sizeof, or an older
 * header's size: a shorter struct gets the fields it has). Since 1.1.0.
 * NNLIB_ERR_INVALID_ARGUMENT for NULL, NNLIB_ERR_STRUCT_SIZE for a
 * struct_size below sizeof(size_t). */
NNLIB_API nnlib_status nnlib_optimizer_get_options(
    const nnlib_optimizer *optimizer, nnlib_optimizer_options *options);

/* ---------------------------------------------------------------- model */

typedef struct nnlib_model nnlib_model;

typedef enum nnlib_loss {
  NNLIB_LOSS_NONE = 0,        /* inference only                              */
  NNLIB_LOSS_MSE = 1,         /* mean over all elements of (y - t)^2         */
  NNLIB_LOSS_BCE_LOGITS = 2,  /* binary cross-entropy on logits, mean over all elements */
  NNLIB_LOSS_SOFTMAX_CE = 3   /* softmax + cross-entropy on logits, mean over the batch */
} nnlib_loss;

/* Targets: MSE and BCE take a tensor of the output's shape. SOFTMAX_CE takes
 * either one-hot (or probability) rows [N, K] or class indices [N] stored as
 * floats (0 .. K-1). */

NNLIB_API nnlib_status nnlib_model_create(nnlib_model **out);
NNLIB_API void nnlib_model_free(nnlib_model *model);

/* Appends a layer. The model owns it from now on, also when this fails
 * (then it is freed). NNLIB_ERR_WRONG_STATE after compile. */
NNLIB_API nnlib_status nnlib_model_add(nnlib_model *model, nnlib_layer *layer);

/* Plans the model: checks that every layer's shape chains into the next for
 * a per-sample input of `input_shape`, initialises the weights from `seed`
 * (Xavier for sigmoid/tanh/identity, He for the ReLU family; biases zero) and
 * allocates every buffer a batch of up to `max_batch` samples needs. Training
 * steps and predictions allocate nothing afterwards.
 * `optimizer` may be NULL for an inference-only model; otherwise the model
 * takes it, also when compile fails. `loss` may be NNLIB_LOSS_NONE only
 * without an optimizer. A model compiles once. */
NNLIB_API nnlib_status nnlib_model_compile(nnlib_model *model,
                                           const int64_t *input_shape,
                                           size_t input_rank, int64_t max_batch,
                                           nnlib_loss loss,
                                           nnlib_optimizer *optimizer,
                                           uint64_t seed);

NNLIB_API size_t nnlib_model_get_layer_count(const nnlib_model *model);
/* Borrowed; NULL if index is out of range. */
NNLIB_API nnlib_layer *nnlib_model_get_layer(nnlib_model *model, size_t index);
/* Borrowed; NULL for an inference-only or uncompiled model. */
NNLIB_API nnlib_optimizer *nnlib_model_get_optimizer(nnlib_model *model);
NNLIB_API nnlib_loss nnlib_model_get_loss(const nnlib_model *model);
/* Total number of trainable scalars (784-16-10 dense: 12730). After compile. */
NNLIB_API nnlib_status nnlib_model_get_param_count(const nnlib_model *model,
                                                   int64_t *count);
/* Per-sample input and output shapes, after compile. */
NNLIB_API nnlib_status nnlib_model_get_input_shape(const nnlib_model *model,
                                                   int64_t *dims,
                                                   size_t capacity,
                                                   size_t *rank);
NNLIB_API nnlib_status nnlib_model_get_output_shape(const nnlib_model *model,
                                                    int64_t *dims,
                                                    size_t capacity,
                                                    size_t *rank);
NNLIB_API int64_t nnlib_model_get_max_batch(const nnlib_model *model);

/* Inference: x [N, input...] with any N >= 1 (processed in chunks of the
 * compiled maximum batch), writes y [N, output...] (the caller's tensor, of
 * matching element count). Uses inference mode (dropout off, batchnorm
 * running statistics). */
NNLIB_API nnlib_status nnlib_model_predict(nnlib_model *model,
                                           const nnlib_tensor *x,
                                           nnlib_tensor *y);

/* Per-thread inference. A workspace holds the scratch buffers of inference
 * for one compiled model, so that several threads can predict with one
 * shared model at once, each with its own workspace. The model must outlive
 * its workspaces and must not be trained, changed or freed while any thread
 * predicts with it. */
typedef struct nnlib_workspace nnlib_workspace;
NNLIB_API nnlib_status nnlib_workspace_create(nnlib_workspace **out,
                                              const nnlib_model *model);
NNLIB_API void nnlib_workspace_free(nnlib_workspace *workspace);
/* nnlib_model_predict with the workspace's buffers. Thread-safe: calls on
 * different workspaces (of the same model or not) may run concurrently. */
NNLIB_API nnlib_status nnlib_workspace_predict(nnlib_workspace *workspace,
                                               const nnlib_tensor *x,
                                               nnlib_tensor *y);

/* Training-mode forward pass of one batch (1 <= N <= max batch). *output is
 * the model's own output buffer, borrowed until the next call on the model. */
NNLIB_API nnlib_status nnlib_model_forward(nnlib_model *model,
                                           const nnlib_tensor *x,
                                           const nnlib_tensor **output);
/* Forward, loss and backward on one batch: leaves the gradient of the mean
 * loss in every parameter's grad tensor (overwritten, not accumulated) and
 * the loss in *loss (may be NULL). Applies no update. */
NNLIB_API nnlib_status nnlib_model_backward(nnlib_model *model,
                                            const nnlib_tensor *x,
                                            const nnlib_tensor *target,
                                            float *loss);
/* One training step: backward, then the optimizer's update. If the loss is
 * not finite the weights are left untouched and NNLIB_ERR_NUMERICAL is
 * returned. */
NNLIB_API nnlib_status nnlib_model_step(nnlib_model *model,
                                        const nnlib_tensor *x,
                                        const nnlib_tensor *target,
                                        float *loss);
/* Numerics check, off by default. When on, every pass over the model
 * (forward, backward, step, fit, predict, evaluate, workspace predict) checks
 * the input batch, each layer's output and input gradient and each parameter
 * gradient for NaN or Inf, and stops at the first one with
 * NNLIB_ERR_NUMERICAL; the message names the layer and the element ("layer 2
 * (dense) output is inf at sample 0, element 3"). A backward pass that finds
 * one applies no update. After an update, every parameter is checked too: a
 * learning rate that overflowed the weights is reported by the step that did
 * it (the weights are then unusable). Costs one read of each buffer per pass;
 * nothing when off. Without it, a step still refuses a non-finite loss.
 * on: 0 or 1. Not to be called while other threads predict with the model. */
NNLIB_API nnlib_status nnlib_model_set_check_numerics(nnlib_model *model,
                                                      int on);
/* Applies the optimizer's update to the gradients already in the model (after
 * nnlib_model_backward, for callers that edit or reduce gradients first). */
NNLIB_API nnlib_status nnlib_optimizer_step(nnlib_model *model);
/* The model's flat parameter and gradient buffers, for reductions across
 * processes (average the gradients between nnlib_model_backward and
 * nnlib_optimizer_step; broadcast the weights). Every layer's parameters lie
 * in one array of *count floats in layer order (nnlib_layer_get_param gives
 * views into it), their gradients in a second array of the same layout.
 * Borrowed and writable, valid as long as the model; after compile
 * (NNLIB_ERR_WRONG_STATE before). nnlib_model_backward writes the gradients;
 * nnlib_model_step with plain SGD may fold the update into backward and leave
 * them stale. params or grads may be NULL; a model without parameters gives
 * count 0 and pointers that must not be read. */
NNLIB_API nnlib_status nnlib_model_get_flat_params(nnlib_model *model,
                                                   float **params,
                                                   float **grads,
                                                   int64_t *count);

/* Progress report passed to the fit callback after every batch. */
typedef struct nnlib_progress {
  size_t struct_size;
  int64_t epoch;        /* 0-based                                          */
  int64_t epochs;
  int64_t batch;        /* 0-based, within the epoch                        */
  int64_t batches;      /* per epoch                                        */
  int64_t samples_done; /* within the epoch                                 */
  int64_t samples;      /* per epoch                                        */
  float loss;           /* this batch's mean loss                           */
  float epoch_loss;     /* mean loss over the epoch so far                  */
} nnlib_progress;

/* Return 0 to go on; anything else stops fit with NNLIB_ERR_CANCELLED. */
typedef int (*nnlib_progress_fn)(const nnlib_progress *progress, void *user);

typedef struct nnlib_fit_options {
  size_t struct_size;
  int64_t epochs;               /* default 1                                */
  int64_t batch_size;           /* default: the compiled max batch          */
  int shuffle;                  /* default 1: a new order every epoch from
                                   the model's seeded generator            */
  nnlib_progress_fn progress;   /* default NULL                             */
  void *user;                   /* passed to progress                       */
  float *epoch_losses;          /* optional, `epochs` floats: mean loss per
                                   epoch                                    */
} nnlib_fit_options;

NNLIB_API nnlib_status nnlib_fit_options_init(nnlib_fit_options *options);
/* Trains on the samples of x [S, input...] with targets [S, ...] for
 * options->epochs epochs of minibatches (the last one may be smaller).
 * Shuffling gathers each batch into a model buffer; the data set is never
 * copied as a whole. */
NNLIB_API nnlib_status nnlib_model_fit(nnlib_model *model,
                                       const nnlib_tensor *x,
                                       const nnlib_tensor *target,
                                       const nnlib_fit_options *options);

/* Validation and early stopping for nnlib_model_fit_validated (since
 * 1.1.0; a struct of its own because option structs with an _init
 * function never grow, see docs/ABI_POLICY.md). */
typedef struct nnlib_validation_options {
  size_t struct_size;
  const nnlib_tensor *x;      /* required: after every epoch, the mean loss */
  const nnlib_tensor *target; /* over these samples in inference mode (as
                                 nnlib_model_evaluate)                      */
  float *losses;              /* optional, `epochs` floats                  */
  int64_t patience;           /* > 0: stop once the validation loss has not
                                 improved for this many epochs; default 0:
                                 run every epoch                            */
  float min_delta;            /* an improvement is a loss below the best so
                                 far by more than this; default 0           */
  int restore_best;           /* 1: end with the parameters and layer
                                 buffers (batchnorm statistics) of the epoch
                                 with the lowest validation loss; the
                                 optimizer's state stays as it ended.
                                 default 0                                  */
  int64_t *epochs_run;        /* optional out: epochs trained (fewer than
                                 `epochs` when early stopping ended it);
                                 written on every return once the options
                                 are accepted, also on an error (0 when it
                                 failed before the first epoch ended)       */
} nnlib_validation_options;

NNLIB_API nnlib_status nnlib_validation_options_init(
    nnlib_validation_options *options);
/* nnlib_model_fit with a validation pass after every epoch (validation
 * NULL: exactly nnlib_model_fit). The validation tensors are checked before
 * any training (their shapes as for nnlib_model_evaluate); a loss that is
 * not finite never counts as an improvement. restore_best allocates one
 * copy of the parameters per call. Since 1.1.0. */
NNLIB_API nnlib_status nnlib_model_fit_validated(
    nnlib_model *model, const nnlib_tensor *x, const nnlib_tensor *target,
    const nnlib_fit_options *options,
    const nnlib_validation_options *validation);

/* Mean loss and accuracy over all samples in inference mode. Accuracy is the
 * share of samples whose arg-max output matches the target's class (one
 * output: output > 0 for BCE, > 0.5 otherwise, against target > 0.5).
 * Either output pointer may be NULL. */
NNLIB_API nnlib_status nnlib_model_evaluate(nnlib_model *model,
                                            const nnlib_tensor *x,
                                            const nnlib_tensor *target,
                                            float *loss, float *accuracy);

/* ------------------------------------------------------------- profile */

/* Where the time goes, per layer: wall time and FLOPs of each layer's
 * forward and backward passes, summed over the calls since profiling was
 * switched on. FLOPs are those of the layer's matrix products, 2 m n k per
 * GEMM (elementwise work adds time, not FLOPs), so GFLOP/s shows how close
 * a layer runs to the machine's GEMM speed. */
typedef struct nnlib_layer_profile {
  size_t struct_size;      /* set by the caller: sizeof(nnlib_layer_profile) */
  int fused;               /* 1: the layer runs inside the previous layer's
                              pass (an activation fused into a dense layer)
                              and is counted there; its own counts stay 0 */
  int64_t forward_calls;   /* forward passes counted                        */
  int64_t backward_calls;  /* backward passes counted                       */
  double forward_flops;    /* summed over those calls                       */
  double backward_flops;   /* with plain SGD, includes the weight update
                              done inside the weight-gradient GEMM          */
  double forward_seconds;
  double backward_seconds;
  double forward_gflops;   /* flops / seconds / 1e9; 0 before any call      */
  double backward_gflops;
} nnlib_layer_profile;

/* on = 1 clears every layer's counts and starts counting; 0 stops (the
 * counts stay readable). Counted: training steps, forward, backward, fit,
 * evaluate and predict on the model itself (not predictions through
 * separate workspaces). Off by default; when off it reads no clock and
 * costs one test per layer call. Not to be called while another thread
 * uses the model. */
NNLIB_API nnlib_status nnlib_model_set_profiling(nnlib_model *model, int on);
/* The counts of layer `index` (as nnlib_model_get_layer) into *out, whose
 * struct_size the caller sets first; a shorter (older) struct gets the
 * fields it has. NNLIB_ERR_OUT_OF_RANGE for a bad index,
 * NNLIB_ERR_STRUCT_SIZE if struct_size is too small. */
NNLIB_API nnlib_status nnlib_model_get_layer_profile(
    const nnlib_model *model, size_t index, nnlib_layer_profile *out);

/* ------------------------------------------------------- gradient check */

typedef struct nnlib_gradcheck_options {
  size_t struct_size;
  float step;                /* central-difference step h; default 1e-2    */
  int random_direction;      /* 1: one directional derivative over all
                                parameters; 0 (default): every scalar      */
  uint64_t seed;             /* for the random direction                   */
  int inference;             /* 1: check the inference-mode function
                                (dropout off, batchnorm on its running
                                statistics); 0 (default): training mode   */
} nnlib_gradcheck_options;

NNLIB_API nnlib_status nnlib_gradcheck_options_init(
    nnlib_gradcheck_options *options);
/* Compares the backpropagated gradient of the mean loss on (x, target) with
 * central finite differences (f(p + h) - f(p - h)) / 2h, computed in double
 * from float losses. Per parameter tensor the error is the normwise relative
 * error |g_bp - g_fd| / max(|g_bp| + |g_fd|, 1e-12); *max_rel_error is the
 * worst over all tensors (or the directional one). Parameters are restored
 * exactly afterwards. Needs a compiled model with a loss. Every pass starts
 * from the generator state the check began with, so dropout draws the same
 * masks in each, and layer buffers (batchnorm running statistics) and the
 * generator are restored afterwards: the check leaves the model as it was. */
NNLIB_API nnlib_status nnlib_model_gradcheck(
    nnlib_model *model, const nnlib_tensor *x, const nnlib_tensor *target,
    const nnlib_gradcheck_options *options, double *max_rel_error);

/* ---------------------------------------------- model description text */

/* Parses a short model description and appends its layers, in order, e.g.
 * "dense:256,relu,dense:128,relu,dense:10". Items: dense:N, dense:N:nobias,
 * step, sigmoid, tanh, relu, leaky_relu[:slope], softplus, softmax, identity,
 * and the items below. NNLIB_ERR_PARSE names the item and its position; on
 * failure no layer is added.
 * Convolutional items, on [C, H, W] samples ("P" is N, or HxW for height and
 * width; options in any order, each at most once):
 *   conv:OUTxKHxKW[:sP][:pP][:dP][:nobias]  conv2d, stride s (default 1),
 *                                           zero padding p (0), dilation
 *                                           d (1), e.g. conv:32x3x3:s1:p1
 *   maxpool:P[:sP][:pP], minpool:..., avgpool:...  kernel P (maxpool:2 is
 *                                           2x2), stride (default: the
 *                                           kernel), padding (0)
 *   global_avgpool                          [C, H, W] -> [C]
 *   batchnorm[:MOMENTUM[:EPSILON]]          default 0.1 and 1e-5
 *   dropout[:RATE]                          default 0.5
 *   flatten
 * e.g. "conv:32x5x5,relu,maxpool:2,conv:64x5x5,relu,maxpool:2,flatten,
 * dense:10". nnlib_model_get_spec prints defaults left out (dropout always
 * with its rate).
 * Recurrent items: rnn:H[:tanh|:relu][:nobias] (tanh by default),
 * lstm:H[:nobias], gru:H[:nobias], each returning the whole sequence; the
 * item `last` right after one makes it return only its last step, so
 * "lstm:128,last,dense:10" is two layers (an lstm of the last step, then a
 * dense layer). */
NNLIB_API nnlib_status nnlib_model_add_spec(nnlib_model *model,
                                            const char *spec);
/* Writes the description of the model's layers (the inverse of add_spec)
 * into buf (NUL-terminated, truncated to capacity); *needed receives the
 * length without the NUL. */
NNLIB_API nnlib_status nnlib_model_get_spec(const nnlib_model *model,
                                            char *buf, size_t capacity,
                                            size_t *needed);

/* Replaces the optimizer of a compiled model (the model takes it, also on
 * failure), e.g. to train a loaded model further. The new optimizer's state
 * starts fresh; passing the model's current optimizer changes nothing.
 * NNLIB_ERR_INVALID_ARGUMENT for a NULL model or optimizer or a model
 * compiled without a loss, NNLIB_ERR_WRONG_STATE for an uncompiled model. */
NNLIB_API nnlib_status nnlib_model_set_optimizer(nnlib_model *model,
                                                 nnlib_optimizer *optimizer);

/* ------------------------------------------------------------ model files */

/* Save flags. */
#define NNLIB_SAVE_OPTIMIZER 1u /* also the optimizer and its state (step
                                   count, moments), so training resumes
                                   bit-identically; ignored for a model
                                   without an optimizer */

/* The model-file format version this library writes, and the newest it
 * reads (docs/FILE_FORMAT.md). */
#define NNLIB_FILE_FORMAT_VERSION 1

/* Writes a compiled model to `path` (extension .nnl by convention) in the
 * format of docs/FILE_FORMAT.md. Atomic: the data goes to a temporary file
 * in the same directory that is renamed over `path` only when complete, so
 * a failed save leaves any previous file intact. */
NNLIB_API nnlib_status nnlib_model_save(const nnlib_model *model,
                                        const char *path, unsigned flags);
/* The same bytes into a new buffer; the caller frees *data with nnlib_free. */
NNLIB_API nnlib_status nnlib_model_save_buffer(const nnlib_model *model,
                                               unsigned flags, void **data,
                                               size_t *size);
/* Reads a model file and returns a compiled model (same input shape, maximum
 * batch, loss and, if saved, optimizer). Every byte is validated before any
 * model is built: NNLIB_ERR_BAD_MAGIC, _TRUNCATED, _CHECKSUM,
 * _UNSUPPORTED_VERSION, _CORRUPT_FILE, _SHAPE_MISMATCH, _TOO_LARGE, _IO. */
NNLIB_API nnlib_status nnlib_model_load(nnlib_model **out, const char *path);
NNLIB_API nnlib_status nnlib_model_load_buffer(nnlib_model **out,
                                               const void *data, size_t size);

/* What a model file's header says, read without building the model (for
 * tools such as `nnlib info`). */
typedef struct nnlib_model_file_info {
  size_t struct_size;       /* set by the caller: sizeof(nnlib_model_file_info) */
  uint32_t format_version;  /* of the file                                    */
  uint32_t library_version; /* NNLIB_VERSION_NUMBER of the library that wrote it */
  uint64_t file_size;       /* bytes                                          */
  nnlib_loss loss;
  size_t input_rank;        /* per-sample input shape                         */
  int64_t input_shape[NNLIB_MAX_RANK];
  int64_t max_batch;
  uint64_t seed;
  int64_t layer_count;
  int64_t param_count;      /* trainable scalars                              */
  int has_optimizer;        /* saved with NNLIB_SAVE_OPTIMIZER                */
  int optimizer_kind;       /* an nnlib_optimizer_kind; 0 without optimizer   */
  int64_t optimizer_steps;  /* updates applied before the save               */
} nnlib_model_file_info;

/* Checks the container of a model file in memory (magic, version, sizes,
 * checksums) and its header section, and fills the first info->struct_size
 * bytes of *info (a shorter struct from an older header gets its prefix).
 * Layers and parameters are not checked (nnlib_model_load_buffer does).
 * Statuses as for loading, plus NNLIB_ERR_STRUCT_SIZE; on
 * NNLIB_ERR_UNSUPPORTED_VERSION format_version is still filled. Thread-safe.
 */
NNLIB_API nnlib_status nnlib_model_file_get_info(const void *data, size_t size,
                                                 nnlib_model_file_info *info);

/* ------------------------------------------------------------------- data */

/* IDX (MNIST-family) files, plain or gzip-compressed (detected by content).
 * Images: an idx3 file of unsigned bytes -> [N, rows, cols] floats in [0, 1].
 * Labels: an idx1 file of unsigned bytes -> [N] class indices stored as
 * floats (one_hot = 0) or [N, num_classes] one-hot rows (one_hot = 1); a
 * label >= num_classes is NNLIB_ERR_OUT_OF_RANGE. limit > 0 reads only the
 * first `limit` items. Failures name the file: NNLIB_ERR_IO, _BAD_MAGIC,
 * _UNSUPPORTED (element type or rank), _TOO_LARGE (dimension products),
 * _TRUNCATED, _CORRUPT_FILE (trailing bytes). */
NNLIB_API nnlib_status nnlib_idx_load_images(nnlib_tensor **out,
                                             const char *path, int64_t limit);
NNLIB_API nnlib_status nnlib_idx_load_labels(nnlib_tensor **out,
                                             const char *path,
                                             int64_t num_classes, int one_hot,
                                             int64_t limit);

typedef enum nnlib_split {
  NNLIB_SPLIT_TRAIN = 0, /* train-images-idx3-ubyte[.gz], train-labels-... */
  NNLIB_SPLIT_TEST = 1   /* t10k-images-idx3-ubyte[.gz], t10k-labels-...   */
} nnlib_split;

/* The directory nnlib reads data from when none is given: $NNLIB_DATA_DIR if
 * set, else /usr/share/datasets/fashion-mnist (Debian's
 * dataset-fashion-mnist). Static or environment storage; do not free. */
NNLIB_API const char *nnlib_dataset_default_dir(void);
/* Loads one split of an MNIST-format directory (dir NULL: the default):
 * images [N, rows, cols] in [0, 1] and labels for 10 classes as with
 * nnlib_idx_load_labels. Image and label counts must match
 * (NNLIB_ERR_SHAPE_MISMATCH). */
NNLIB_API nnlib_status nnlib_dataset_load(const char *dir, nnlib_split split,
                                          int64_t limit, int one_hot,
                                          nnlib_tensor **images,
                                          nnlib_tensor **labels);

#ifdef __cplusplus
}
#endif

#endif /* NNLIB_H */
