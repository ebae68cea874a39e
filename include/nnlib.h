/*
 * nnlib.h - the one public header of nnlib, a neural-network library in C11
 * whose forward and backward passes are GEMM calls into OpenBLAS.
 *
 * Conventions (read once, they hold for every function below):
 *
 *  - Every fallible function returns nnlib_status: NNLIB_OK (0) on success, a
 *    negative code on failure. Values are pinned forever. nnlib_status_string()
 *    gives the fixed text of a code; nnlib_last_error_message() the detail of
 *    the last failure on the calling thread. The comment above each function
 *    names the codes it returns. NNLIB_ERR_INVALID_ARGUMENT always covers a
 *    NULL handle or pointer that the comment does not call optional, and
 *    NNLIB_ERR_OUT_OF_MEMORY a failed allocation; a call that fails changes
 *    nothing unless its comment says otherwise. NNLIB_ERR_INTERNAL (a bug
 *    in nnlib) is not listed.
 *  - Ownership and parameter order. What a call hands over for the caller to
 *    release comes back through its FIRST parameters: the handle of
 *    *_create, *_wrap and *_load (`T **out`), the tensors of the data
 *    loaders, the buffer of nnlib_model_save_to_buffer. The caller releases
 *    it with the matching *_free (nnlib_free for buffers; NULL is a no-op);
 *    on failure *out is set to NULL. Everything else a call returns (counts,
 *    shapes, losses, borrowed pointers) comes through its LAST parameters.
 *    (Two 1.0 calls broke this order; they are kept and deprecated.)
 *    Tensors passed into a call are borrowed for the duration of the call.
 *    Pointers returned by getters are borrowed and live as long as their
 *    owner. nnlib_model_add and nnlib_model_apply take the layer, and
 *    nnlib_model_compile, nnlib_model_compile_graph and
 *    nnlib_model_set_optimizer the optimizer, also when they fail.
 *  - Counts say what they count: a layer's parameter *tensors*
 *    (nnlib_layer_get_param_tensor_count), a model's trainable *scalars*
 *    (nnlib_model_get_param_count).
 *  - Shapes are int64_t arrays with an explicit rank, row-major, batch first.
 *    Model and layer shapes are per sample: the batch dimension is left out.
 *  - Option structs start with `size_t struct_size` and grow at their end in
 *    minor releases. Fill one with its *_options_init(&options, ...), a macro
 *    that calls *_options_init_size(&options, ..., sizeof options) so the
 *    library learns the size your program was compiled with; then set the
 *    fields you want. The library writes and reads only those struct_size
 *    bytes: a program built against an older header gets the defaults of the
 *    fields added since, and the fields of a newer header that this library
 *    does not know must stay as init left them (0), else
 *    NNLIB_ERR_STRUCT_SIZE. A NULL options pointer means defaults. Output
 *    structs (nnlib_layer_profile, nnlib_model_file_info, nnlib_node_info,
 *    nnlib_blas_info, and nnlib_optimizer_options from
 *    nnlib_optimizer_get_options) follow the
 *    same rule: the caller sets struct_size, the library writes that many
 *    bytes. See docs/ABI_POLICY.md.
 *  - Deprecated names (NNLIB_DEPRECATED, listed at the end of this file) keep
 *    working for all of 1.x; the compiler's warning names the replacement.
 *    Define NNLIB_NO_DEPRECATION_WARNINGS before including this header to
 *    silence it.
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

/* Marks a name kept for compatibility; msg names its replacement. */
#if defined(NNLIB_NO_DEPRECATION_WARNINGS)
#define NNLIB_DEPRECATED(msg)
#elif defined(__GNUC__) || defined(__clang__)
#define NNLIB_DEPRECATED(msg) __attribute__((deprecated(msg)))
#else
#define NNLIB_DEPRECATED(msg)
#endif

/* --------------------------------------------------------------- version */

#define NNLIB_VERSION_MAJOR 1
#define NNLIB_VERSION_MINOR 7
#define NNLIB_VERSION_PATCH 0
/* MAJOR * 10000 + MINOR * 100 + PATCH */
#define NNLIB_VERSION_NUMBER                                                   \
  (NNLIB_VERSION_MAJOR * 10000 + NNLIB_VERSION_MINOR * 100 + NNLIB_VERSION_PATCH)
#define NNLIB_VERSION_STRING "1.7.0" /* MAJOR.MINOR.PATCH (a test checks) */
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
  NNLIB_ERR_INTERNAL = -18,          /* a bug in nnlib; please report it      */
  NNLIB_ERR_DTYPE = -19              /* a tensor of the wrong element type
                                        (since 1.4.0)                         */
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

/* Sets the number of threads nnlib computes on (process-wide; not safe to
 * call while another thread computes). nnlib splits the large matrix
 * products (at least 2^19 multiply-adds) into one part per thread, and the
 * passes between them (lowering, normalisation, activations, pooling,
 * softmax, optimizer updates) into ranges, over a pool of its own whose
 * threads sleep when idle; a convolution's forward gives each thread a
 * range of the batch, which it lowers, multiplies and finishes alone, and
 * its backward gives each thread whole parts of the batch, each summing
 * its own weight gradient (parts that do not depend on the thread
 * count); an LSTM or GRU with at least 32 samples a thread gives each
 * thread a range of the batch and runs every step's products and passes
 * on it. The passes give the same bits for every thread
 * count; a product's bits depend on its shape and the thread count only.
 * n <= 0 restores the default: OPENBLAS_NUM_THREADS when set, else every
 * core.
 *
 * OpenBLAS itself is kept to one thread (openblas_set_num_threads(1)) from
 * the first product or the first call to this function on: its threads
 * spin between products on the cores nnlib's passes need. This also holds
 * for OpenBLAS calls the program makes itself; a program that sets
 * OpenBLAS's count again makes each of nnlib's parts use that many threads
 * on top of nnlib's. Always returns NNLIB_OK. */
NNLIB_API nnlib_status nnlib_set_num_threads(int n);
/* The number of threads nnlib computes on now: the last count set, or the
 * default (OpenBLAS's thread count when nnlib first needs one).
 * Process-wide. */
NNLIB_API int nnlib_get_num_threads(void);

/* The vector instructions a set of matrix kernels uses, or a CPU offers
 * (since 1.7.0). Ordered: a larger value is a wider, faster set. */
typedef enum nnlib_simd {
  NNLIB_SIMD_UNKNOWN = 0, /* not x86, or kernels nnlib has no entry for */
  NNLIB_SIMD_SSE = 1,     /* 128-bit vectors, no FMA (Prescott, Nehalem) */
  NNLIB_SIMD_AVX = 2,     /* 256-bit vectors, no FMA (Sandy Bridge)      */
  NNLIB_SIMD_AVX2 = 3,    /* AVX2 and FMA (Haswell, Zen)                  */
  NNLIB_SIMD_AVX512 = 4   /* AVX-512 F, BW, DQ and VL (Skylake-X onwards) */
} nnlib_simd;

/* The BLAS every product runs on, and whether it suits the CPU (since
 * 1.7.0; an output struct: the caller sets struct_size). */
typedef struct nnlib_blas_info {
  size_t struct_size;      /* set by the caller: sizeof(nnlib_blas_info)      */
  const char *config;      /* OpenBLAS's build line, e.g. "OpenBLAS 0.3.21
                              NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Haswell
                              MAX_THREADS=64"; static storage                 */
  const char *kernels;     /* the kernel set OpenBLAS chose at load time, e.g.
                              "Haswell", "SkylakeX", "Prescott"; static       */
  nnlib_simd kernels_simd; /* what those kernels use                       */
  nnlib_simd cpu_simd;     /* what this CPU and operating system allow
                              (UNKNOWN off x86)                               */
  /* 1 when the kernels lack the AVX2 and FMA this CPU has, and every
   * product runs several times slower than it could (on an Emerald Rapids
   * core, the benchmark's mlp-large trains 4.3x slower on Prescott kernels
   * than on SkylakeX ones): OpenBLAS did not recognise the CPU (OpenBLAS
   * 0.3.21, Debian 12's, takes an Intel model newer than it knows, such as
   * Emerald Rapids, for a Prescott; fixed in OpenBLAS 0.3.25),
   * OPENBLAS_CORETYPE asked for such kernels, or OpenBLAS was built for an
   * older CPU only. Set OPENBLAS_CORETYPE to `suggested_kernels` in the
   * environment before the program starts: OpenBLAS reads it once, when it
   * is loaded. 0 otherwise, also when the environment chose narrower
   * kernels on purpose (OPENBLAS_CORETYPE=Haswell on an AVX-512 CPU). */
  int kernels_are_fallback;
  /* When kernels_are_fallback and OpenBLAS was built with DYNAMIC_ARCH (in
   * config; a build for one CPU has no other kernels to choose):
   * "SkylakeX" on an AVX-512 CPU, "Haswell" on an AVX2 one; NULL
   * otherwise. */
  const char *suggested_kernels;
} nnlib_blas_info;

/* Fills the first info->struct_size bytes of *info (an output struct).
 * Needs no model; OpenBLAS's choice is fixed for the life of the process,
 * and nnlib copies its build line once (OpenBLAS's openblas_get_config
 * rewrites a shared buffer on each call).
 * NNLIB_ERR_INVALID_ARGUMENT for NULL, NNLIB_ERR_STRUCT_SIZE for a
 * struct_size below sizeof(size_t). Thread-safe. The library never prints:
 * `nnlib` (the command-line tool) warns on stderr when
 * kernels_are_fallback is set. */
NNLIB_API nnlib_status nnlib_blas_get_info(nnlib_blas_info *info);

/* Optional allocator hook. Every heap allocation nnlib makes goes through it
 * (OpenBLAS's own buffers do not). alloc returns memory aligned to
 * `alignment` (a power of two, at most 64) or NULL; free accepts NULL; user
 * is passed to both. Tests use it to count allocations and to inject
 * failures. */
typedef struct nnlib_allocator {
  size_t struct_size; /* set by the caller: sizeof(nnlib_allocator)      */
  void *(*alloc)(size_t size, size_t alignment, void *user);
  void (*free)(void *ptr, void *user);
  void *user;
} nnlib_allocator;
/* Installs `allocator` (copied; NULL restores the default: the C library's
 * allocator, except that on Linux a model's activation block of 2 MiB and
 * more is an anonymous mapping of its own, starting on a 2 MiB boundary
 * and advised for transparent huge pages, madvise(MADV_HUGEPAGE); a user
 * allocator receives that block's request as any other).
 * Process-wide and not thread-safe: call it before any other nnlib call, or
 * while no nnlib object or buffer is alive (memory is always freed through
 * the hook installed at the time of the free).
 * NNLIB_ERR_INVALID_ARGUMENT when alloc or free is NULL,
 * NNLIB_ERR_STRUCT_SIZE for a struct_size below sizeof(size_t) or a longer
 * struct with unknown fields set. */
NNLIB_API nnlib_status nnlib_set_allocator(const nnlib_allocator *allocator);

/* Frees memory that nnlib handed to the caller (the buffer of
 * nnlib_model_save_to_buffer) through the allocator hook. NULL is a no-op. */
NNLIB_API void nnlib_free(void *ptr);

/* ---------------------------------------------------------------- tensor */

typedef struct nnlib_tensor nnlib_tensor;

#define NNLIB_MAX_RANK 8

/* A new float32 tensor of shape shape[0 .. rank) into *out, zero-filled,
 * 64-byte aligned; the tensor owns its elements and the caller owns the
 * tensor (nnlib_tensor_free). The shape is copied.
 * NNLIB_ERR_INVALID_ARGUMENT for a rank outside 1 .. NNLIB_MAX_RANK or a
 * dimension below 1, NNLIB_ERR_TOO_LARGE when the element count overflows
 * or is not addressable, NNLIB_ERR_OUT_OF_MEMORY. */
NNLIB_API nnlib_status nnlib_tensor_create(nnlib_tensor **out,
                                           const int64_t *shape, size_t rank);
/* A new tensor over caller memory (zero-copy) into *out. The caller owns the
 * tensor (nnlib_tensor_free) and keeps owning `data`: it keeps the floats
 * alive while the tensor lives, and nnlib never frees them. Statuses as
 * nnlib_tensor_create: NNLIB_ERR_INVALID_ARGUMENT (also for NULL data),
 * NNLIB_ERR_TOO_LARGE, NNLIB_ERR_OUT_OF_MEMORY (the handle). */
NNLIB_API nnlib_status nnlib_tensor_wrap(nnlib_tensor **out, float *data,
                                         const int64_t *shape, size_t rank);
/* Frees a tensor and, unless it wraps caller memory, its elements. NULL is
 * a no-op. */
NNLIB_API void nnlib_tensor_free(nnlib_tensor *tensor);

/* The tensor's rank; 0 for NULL. */
NNLIB_API size_t nnlib_tensor_get_rank(const nnlib_tensor *tensor);
/* Dimension `axis`; 0 for an axis out of range or a NULL tensor. */
NNLIB_API int64_t nnlib_tensor_get_dim(const nnlib_tensor *tensor, size_t axis);
/* The shape array (rank entries), borrowed from the tensor until its shape
 * changes or it is freed; NULL for NULL. */
NNLIB_API const int64_t *nnlib_tensor_get_shape(const nnlib_tensor *tensor);
/* The element count (the product of the dimensions); 0 for NULL. */
NNLIB_API int64_t nnlib_tensor_get_size(const nnlib_tensor *tensor);
/* The element buffer (row-major), borrowed and writable; NULL for NULL. */
NNLIB_API float *nnlib_tensor_get_data(nnlib_tensor *tensor);
/* The element buffer of a const tensor, borrowed; NULL for NULL. */
NNLIB_API const float *nnlib_tensor_get_data_const(const nnlib_tensor *tensor);

/* Changes the shape in place (the elements stay where they are); the
 * element count must stay the same. NNLIB_ERR_INVALID_ARGUMENT for a bad
 * rank or dimension (as nnlib_tensor_create), NNLIB_ERR_TOO_LARGE,
 * NNLIB_ERR_SHAPE_MISMATCH when the element count differs. */
NNLIB_API nnlib_status nnlib_tensor_set_shape(nnlib_tensor *tensor,
                                              const int64_t *shape, size_t rank);
/* Sets every element to `value`. NNLIB_ERR_INVALID_ARGUMENT for NULL. */
NNLIB_API nnlib_status nnlib_tensor_fill(nnlib_tensor *tensor, float value);
/* Copies src's elements into dst in order (the shapes may differ; the two
 * may overlap). NNLIB_ERR_INVALID_ARGUMENT for NULL,
 * NNLIB_ERR_SHAPE_MISMATCH when the element counts differ. */
NNLIB_API nnlib_status nnlib_tensor_copy(nnlib_tensor *dst,
                                         const nnlib_tensor *src);

/* Element types (since 1.4.0). Every tensor holds float32 elements unless
 * made by the int32 calls below; int32 tensors carry token ids (the input of
 * an embedding layer) and class indices (targets of softmax cross-entropy)
 * without a round trip through float. The float calls above refuse int32
 * tensors where they would reinterpret bits: nnlib_tensor_get_data(_const)
 * returns NULL for an int32 tensor, nnlib_tensor_fill stores the value as
 * an integer (NNLIB_ERR_INVALID_ARGUMENT unless it is an integer in int32's
 * range), nnlib_tensor_copy needs the same element type on both sides
 * (NNLIB_ERR_DTYPE). Shape calls work on both. */
typedef enum nnlib_dtype {
  NNLIB_DTYPE_FLOAT32 = 0,
  NNLIB_DTYPE_INT32 = 1
} nnlib_dtype;

/* A new zero-filled int32 tensor; as nnlib_tensor_create otherwise
 * (NNLIB_ERR_INVALID_ARGUMENT, NNLIB_ERR_TOO_LARGE,
 * NNLIB_ERR_OUT_OF_MEMORY). */
NNLIB_API nnlib_status nnlib_tensor_create_int32(nnlib_tensor **out,
                                                 const int64_t *shape,
                                                 size_t rank);
/* An int32 tensor over caller memory (zero-copy); as nnlib_tensor_wrap
 * (NNLIB_ERR_INVALID_ARGUMENT also for NULL data, NNLIB_ERR_TOO_LARGE,
 * NNLIB_ERR_OUT_OF_MEMORY). */
NNLIB_API nnlib_status nnlib_tensor_wrap_int32(nnlib_tensor **out,
                                               int32_t *data,
                                               const int64_t *shape,
                                               size_t rank);
/* The element type; NNLIB_DTYPE_FLOAT32 for NULL. */
NNLIB_API nnlib_dtype nnlib_tensor_get_dtype(const nnlib_tensor *tensor);
/* The elements of an int32 tensor, borrowed; NULL for NULL or a float32
 * tensor. */
NNLIB_API int32_t *nnlib_tensor_get_data_int32(nnlib_tensor *tensor);
/* The same for a const tensor. */
NNLIB_API const int32_t *
nnlib_tensor_get_data_int32_const(const nnlib_tensor *tensor);

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
  NNLIB_LAYER_GRU = 13,
  NNLIB_LAYER_ADD = 14,      /* merge layers (since 1.3.0), see graph models */
  NNLIB_LAYER_CONCAT = 15,
  NNLIB_LAYER_MULTIPLY = 16,
  NNLIB_LAYER_EMBEDDING = 17, /* text layers (since 1.4.0), see below */
  NNLIB_LAYER_POSITIONAL = 18,
  NNLIB_LAYER_LAYERNORM = 19,
  NNLIB_LAYER_ATTENTION = 20,
  NNLIB_LAYER_LINEAR = 21,
  NNLIB_LAYER_TRANSPOSE = 22 /* since 1.6.0 */
} nnlib_layer_kind;

typedef enum nnlib_activation {
  NNLIB_ACT_IDENTITY = 0,
  NNLIB_ACT_STEP = 1,       /* Heaviside (x > 0); backward straight-through  */
  NNLIB_ACT_SIGMOID = 2,
  NNLIB_ACT_TANH = 3,
  NNLIB_ACT_RELU = 4,
  NNLIB_ACT_LEAKY_RELU = 5, /* x > 0 ? x : slope * x                         */
  NNLIB_ACT_SOFTPLUS = 6,   /* log(1 + e^x), linear above x = 20 like PyTorch */
  NNLIB_ACT_SOFTMAX = 7,    /* over the last axis                            */
  NNLIB_ACT_GELU = 8,       /* x Phi(x) with the exact erf (since 1.4.0)     */
  NNLIB_ACT_GELU_TANH = 9   /* PyTorch's approximate='tanh' (since 1.4.0):
                               x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
} nnlib_activation;

/* Every *_create below makes a new layer into *out. The caller owns it
 * until it hands it to nnlib_model_add or nnlib_model_apply, which take it
 * (also when they fail); a layer never handed over is freed with
 * nnlib_layer_free. Shapes are checked when the model compiles
 * (nnlib_model_compile names the layer). */

/* A fully connected layer y = x W^T + b with W [out, in] and b [out].
 * in_features = 0 takes the input size from the previous layer at compile;
 * an input of rank > 1 per sample is flattened. with_bias: 0 or 1.
 * NNLIB_ERR_INVALID_ARGUMENT for in_features < 0, out_features < 1 or
 * with_bias not 0 or 1, NNLIB_ERR_TOO_LARGE for a size above 2^31 - 1 (the
 * BLAS interface), NNLIB_ERR_OUT_OF_MEMORY. At compile, an input of another
 * size than a nonzero in_features is NNLIB_ERR_SHAPE_MISMATCH. */
NNLIB_API nnlib_status nnlib_dense_create(nnlib_layer **out,
                                          int64_t in_features,
                                          int64_t out_features, int with_bias);
/* An activation layer (any input shape). `param` is the negative slope of
 * LEAKY_RELU (PyTorch's default is 0.01) and ignored by the others.
 * NNLIB_ERR_INVALID_ARGUMENT for an unknown kind or a slope that is
 * negative or not finite, NNLIB_ERR_OUT_OF_MEMORY. */
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
/* Fills the first struct_size bytes of *options with the defaults above
 * and sets options->struct_size (pass sizeof *options; see the preamble).
 * Since 1.3.0. NNLIB_ERR_INVALID_ARGUMENT for NULL, NNLIB_ERR_STRUCT_SIZE
 * for a struct_size below sizeof(size_t). */
NNLIB_API nnlib_status nnlib_conv2d_options_init_size(
    nnlib_conv2d_options *options, size_t struct_size);
/* Fills *options with the defaults. A macro over _init_size with the
 * caller's sizeof (since 1.3.0); the function of this name serves programs
 * built against older headers. NNLIB_ERR_INVALID_ARGUMENT for NULL. */
NNLIB_API nnlib_status nnlib_conv2d_options_init(
    nnlib_conv2d_options *options);
#define nnlib_conv2d_options_init(options)                                     \
  nnlib_conv2d_options_init_size((options), sizeof *(options))
/* A 2-D convolution (PyTorch's Conv2d, zero padding): [C_in, H, W] ->
 * [out_channels, OH, OW], weight [out_channels, C_in, kernel_h, kernel_w],
 * bias [out_channels]. options NULL: the defaults; the options are copied.
 * Weights start He (Kaiming) normal, std sqrt(2 / (C_in kernel_h
 * kernel_w)); biases zero. NNLIB_ERR_INVALID_ARGUMENT for out_channels or a
 * kernel size below 1 or above 2^31 - 1, or an option out of its range
 * (in_channels < 0, stride or dilation < 1, padding < 0, with_bias not 0 or
 * 1), NNLIB_ERR_STRUCT_SIZE (options), NNLIB_ERR_OUT_OF_MEMORY. */
NNLIB_API nnlib_status nnlib_conv2d_create(nnlib_layer **out,
                                           int64_t out_channels,
                                           int64_t kernel_h, int64_t kernel_w,
                                           const nnlib_conv2d_options *options);

/* Pooling windows (PyTorch's nn.MaxPool2d and nn.AvgPool2d, ONNX's MaxPool
 * and AveragePool). Along each axis, with input size H, kernel k, stride s,
 * dilation d, padding top pt and bottom pb (likewise the width with left
 * and right), the window of output row o reads rows
 *   o s - pt + i d,  i = 0 .. k - 1,
 * and the padded input is rows -pt .. H + pb - 1. The output size is
 *   OH = floor((H + pt + pb - d (k - 1) - 1) / s) + 1      (ceil_mode 0)
 *   OH = ceil((H + pt + pb - d (k - 1) - 1) / s) + 1       (ceil_mode 1)
 * where ceil_mode 1 then drops a last window that would start in the
 * bottom padding, (OH - 1) s >= H + pt (PyTorch's rule), so every window
 * starts inside the input or its top padding; ceil mode's last window may
 * reach past the padded input. Padding is at most k - 1 on each side
 * (ONNX's limit; PyTorch's is k / 2), and at compile every window must
 * read at least one input row and column (else NNLIB_ERR_SHAPE_MISMATCH). */
typedef struct nnlib_pool2d_options {
  size_t struct_size;
  int64_t stride_h, stride_w;   /* default 0: the kernel size (PyTorch)   */
  int64_t padding_h, padding_w; /* default 0: top and left, and bottom and
                                   right while those are -1 */
  /* since 1.5.0 (under the struct_size rule: a program built against an
   * older header gets these defaults, so its pools are as before): */
  int64_t padding_bottom;       /* default -1: padding_h (ONNX's pads end) */
  int64_t padding_right;        /* default -1: padding_w                  */
  int64_t dilation_h, dilation_w; /* default 1; max and min pooling only
                                   (PyTorch's AvgPool2d has none)          */
  int ceil_mode;                /* default 0 (floor); 1: the formula above */
  int count_include_pad;        /* default 1: average pooling divides by the
                                   window's positions inside the padded
                                   input (PyTorch's count_include_pad=True);
                                   0: by its input elements only (PyTorch's
                                   False, ONNX's default). Average only: must
                                   stay 1 for max and min pooling */
} nnlib_pool2d_options;
/* Fills the first struct_size bytes of *options with the defaults above
 * and sets options->struct_size (pass sizeof *options; see the preamble).
 * Since 1.3.0. NNLIB_ERR_INVALID_ARGUMENT for NULL, NNLIB_ERR_STRUCT_SIZE
 * for a struct_size below sizeof(size_t). */
NNLIB_API nnlib_status nnlib_pool2d_options_init_size(
    nnlib_pool2d_options *options, size_t struct_size);
/* Fills *options with the defaults. A macro over _init_size with the
 * caller's sizeof (since 1.3.0); the function of this name serves programs
 * built against older headers. NNLIB_ERR_INVALID_ARGUMENT for NULL. */
NNLIB_API nnlib_status nnlib_pool2d_options_init(
    nnlib_pool2d_options *options);
#define nnlib_pool2d_options_init(options)                                     \
  nnlib_pool2d_options_init_size((options), sizeof *(options))
/* Pooling over kernel_h x kernel_w windows of each channel (see the window
 * above): kind is NNLIB_LAYER_MAXPOOL2D, NNLIB_LAYER_MINPOOL2D (padding never
 * wins) or NNLIB_LAYER_AVGPOOL2D (the sum of the window's input elements
 * divided as count_include_pad says; with the defaults, by kernel_h
 * kernel_w). [C, H, W] -> [C, OH, OW]. Backward routes each gradient to the
 * selected element (max, min; the first one on ties) or spreads it over the
 * window's input elements with the same divisor (average). options NULL:
 * the defaults. NNLIB_ERR_INVALID_ARGUMENT, naming the option, for another
 * kind, a kernel size below 1 or above 2^31 - 1, a negative stride, a
 * dilation below 1, a stride or dilated window d (k - 1) + 1 above
 * 2^31 - 1, padding_h or padding_w outside 0 .. kernel - 1,
 * padding_bottom or padding_right outside -1 .. kernel - 1, dilation on an
 * average pool, ceil_mode or count_include_pad not 0 or 1, or
 * count_include_pad 0 on a max or min pool; NNLIB_ERR_STRUCT_SIZE
 * (options), NNLIB_ERR_OUT_OF_MEMORY. At compile, an input that is not
 * [C, H, W], smaller than the window, or with a window that reads only
 * padding is NNLIB_ERR_SHAPE_MISMATCH. */
NNLIB_API nnlib_status nnlib_pool2d_create(nnlib_layer **out,
                                           nnlib_layer_kind kind,
                                           int64_t kernel_h, int64_t kernel_w,
                                           const nnlib_pool2d_options *options);
/* Global average pooling: [C, H, W] -> [C], the mean of each channel.
 * NNLIB_ERR_INVALID_ARGUMENT for NULL out, NNLIB_ERR_OUT_OF_MEMORY; an
 * input that is not [C, H, W] is NNLIB_ERR_SHAPE_MISMATCH at compile. */
NNLIB_API nnlib_status nnlib_global_avgpool_create(nnlib_layer **out);
/* Batch normalisation per channel of [C, ...] samples: over the batch and
 * the positions of [C, H, W] feature maps (PyTorch's BatchNorm2d), over the
 * batch for [C] features (BatchNorm1d). Training: y = gamma (x - mean) /
 * sqrt(var + epsilon) + beta with the batch's mean and biased variance, and
 * running = (1 - momentum) running + momentum batch (unbiased variance;
 * a batch of one value per channel leaves them as they are). Inference
 * (predict, evaluate, workspaces): the running statistics. Parameters
 * weight (gamma, init 1) and bias (beta, init 0) [C]; buffers running_mean
 * (init 0) and running_var (init 1) [C]; a negative running_var (written
 * through nnlib_layer_get_buffer or read from a model file) is refused,
 * see there. PyTorch's defaults: momentum 0.1,
 * epsilon 1e-5. NNLIB_ERR_INVALID_ARGUMENT for a momentum outside [0, 1]
 * or an epsilon that is not finite and > 0, NNLIB_ERR_OUT_OF_MEMORY. */
NNLIB_API nnlib_status nnlib_batchnorm_create(nnlib_layer **out,
                                              float momentum, float epsilon);
/* Inverted dropout: in training each element is zeroed with probability
 * `rate` (0 <= rate < 1) and the others are scaled by 1 / (1 - rate); the
 * mask comes from the model's seeded generator. Identity in inference.
 * NNLIB_ERR_INVALID_ARGUMENT for a rate outside [0, 1),
 * NNLIB_ERR_OUT_OF_MEMORY. */
NNLIB_API nnlib_status nnlib_dropout_create(nnlib_layer **out, float rate);
/* [d0, d1, ...] -> [d0 * d1 * ...], e.g. between convolutional and dense
 * layers (dense layers also flatten their input themselves).
 * NNLIB_ERR_INVALID_ARGUMENT for NULL out, NNLIB_ERR_OUT_OF_MEMORY. */
NNLIB_API nnlib_status nnlib_flatten_create(nnlib_layer **out);
/* A permutation of the per-sample axes (since 1.6.0): output axis k is
 * input axis perm[k], as torch's x.permute(0, 1 + perm[0], 1 + perm[1],
 * ...) with the batch axis left first; e.g. perm {1, 2, 0} turns [C, H, W]
 * into [H, W, C], and {1, 0} transposes [T, D] into [D, T]. perm (copied)
 * holds each of 0 .. rank - 1 once, and rank must be the per-sample rank of
 * the input (NNLIB_ERR_SHAPE_MISMATCH at compile, naming the node). No
 * parameters; backward applies the inverse permutation to dL/dy.
 * NNLIB_ERR_INVALID_ARGUMENT for NULL out or perm, a rank of 0 or above
 * NNLIB_MAX_RANK - 1, or a perm that is not a permutation of 0 .. rank - 1
 * (the message names the first wrong value), NNLIB_ERR_OUT_OF_MEMORY. */
NNLIB_API nnlib_status nnlib_transpose_create(nnlib_layer **out,
                                              const int64_t *perm,
                                              size_t rank);

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
 * first and either end in one returning only its last step (e.g.
 * lstm:128,last,dense:10 or lstm:64,gru:32,last,dense:1) or make up the
 * whole model (lstm:64 or gru:32,lstm:16: the output is the sequence),
 * every call (predict, evaluate, forward, backward, step, fit and its
 * validation data, gradcheck, workspaces) takes [N, T', F] batches with
 * any 1 <= T' <= T, each batch its own T' (group sequences by length; no
 * padding needed). After "last" the output keeps its shape; a sequence
 * output is [N, T', H] (outputs and targets of T' H values a sample).
 * Other models (another layer inside the time axis) refuse T' < T with
 * NNLIB_ERR_SHAPE_MISMATCH: pad the sequences or compile a model for their
 * length. A flat batch
 * [N, T' F] is never read as shorter sequences. input_size = 0 takes F
 * from the input at compile; another F than a nonzero input_size is
 * NNLIB_ERR_SHAPE_MISMATCH at compile. with_bias, return_sequences: 0 or 1.
 * Backpropagation through time runs over the whole sequence. */
/* A simple recurrent layer: h_t = f(x_t W_ih^T + b_ih + h_{t-1} W_hh^T +
 * b_hh), f NNLIB_ACT_TANH or NNLIB_ACT_RELU. NNLIB_ERR_INVALID_ARGUMENT
 * for another nonlinearity, input_size < 0, hidden_size < 1, or with_bias
 * or return_sequences not 0 or 1; NNLIB_ERR_TOO_LARGE for a size above
 * 2^31 - 1 (the BLAS interface); NNLIB_ERR_OUT_OF_MEMORY. */
NNLIB_API nnlib_status nnlib_rnn_create(nnlib_layer **out, int64_t input_size,
                                        int64_t hidden_size,
                                        nnlib_activation nonlinearity,
                                        int with_bias, int return_sequences);
/* A long short-term memory layer (torch.nn.LSTM; gates i f g o, cell state
 * c_t). NNLIB_ERR_INVALID_ARGUMENT for input_size < 0, hidden_size < 1, or
 * with_bias or return_sequences not 0 or 1; NNLIB_ERR_TOO_LARGE when
 * 4 hidden_size or input_size exceeds 2^31 - 1; NNLIB_ERR_OUT_OF_MEMORY. */
NNLIB_API nnlib_status nnlib_lstm_create(nnlib_layer **out,
                                         int64_t input_size,
                                         int64_t hidden_size, int with_bias,
                                         int return_sequences);
/* A gated recurrent unit layer (torch.nn.GRU; gates r z n).
 * NNLIB_ERR_INVALID_ARGUMENT for input_size < 0, hidden_size < 1, or
 * with_bias or return_sequences not 0 or 1; NNLIB_ERR_TOO_LARGE when
 * 3 hidden_size or input_size exceeds 2^31 - 1; NNLIB_ERR_OUT_OF_MEMORY. */
NNLIB_API nnlib_status nnlib_gru_create(nnlib_layer **out, int64_t input_size,
                                        int64_t hidden_size, int with_bias,
                                        int return_sequences);
/* The state h_{-1} (and for lstm c_{-1}) the layer starts every sequence
 * from; zero until set. h0 and c0 hold `rows` rows of H floats each and are
 * copied: rows = 1 gives every sample the same state, rows > 1 one row per
 * sample, and every batch through the layer must then have exactly `rows`
 * samples (else the pass fails with NNLIB_ERR_SHAPE_MISMATCH; predictions
 * of more than the compiled maximum batch run in chunks and so fail).
 * rows > 1 must therefore not exceed the compiled maximum batch: once the
 * layer's model is compiled more rows are NNLIB_ERR_TOO_LARGE here, and a
 * state set before makes the compile for a smaller maximum batch fail
 * with NNLIB_ERR_TOO_LARGE.
 * h0 NULL: zero h; c0 NULL: zero c (c0 must be NULL for rnn and gru);
 * both NULL: back to zero states. Like PyTorch's h0/c0 arguments, the
 * state is not a parameter (no gradient reaches it) and model files do not
 * keep it. Not to be called while the model runs in any thread. Statuses:
 * NNLIB_ERR_INVALID_ARGUMENT (not a recurrent layer, rows < 1, c0 for rnn
 * or gru), NNLIB_ERR_TOO_LARGE (rows above the compiled maximum batch, or
 * too large to allocate), NNLIB_ERR_OUT_OF_MEMORY; on failure the previous
 * state stays. */
NNLIB_API nnlib_status nnlib_recurrent_set_initial_state(nnlib_layer *layer,
                                                         const float *h0,
                                                         const float *c0,
                                                         int64_t rows);

/* Text layers (since 1.4.0): token embeddings, learned positions, layer
 * normalisation, last-axis linear maps and multi-head self-attention, the
 * parts of a GPT-style transformer. A sample is a sequence of T positions:
 * [T] token ids into an embedding, [T, D] vectors after it. Parameters are
 * laid out as in PyTorch, so a state_dict copies over tensor by tensor. All
 * of them run one position at a time with a cache (nnlib_model_generate).
 */

/* Token ids [T] (an int32 input) -> vectors [T, dim], y[t] = W[id[t]]:
 * torch.nn.Embedding with W [vocab_size, dim], initialised N(0, 1) like
 * PyTorch. Backward adds dy[t] into row id[t] (ids repeat). The input node
 * of an embedding takes int32 tensors (NNLIB_ERR_DTYPE for float32 ones)
 * and no other layer may read it; an id outside [0, vocab_size) fails the
 * pass with NNLIB_ERR_OUT_OF_RANGE naming the sample, the position and the
 * id. NNLIB_ERR_INVALID_ARGUMENT for vocab_size or dim < 1,
 * NNLIB_ERR_TOO_LARGE above 2^31 - 1 (or for a table whose size in
 * bytes overflows), NNLIB_ERR_OUT_OF_MEMORY (at compile too, for a table
 * that cannot be allocated). At compile, an input that is not [T]
 * is NNLIB_ERR_SHAPE_MISMATCH, an output too large NNLIB_ERR_TOO_LARGE.
 * Token-id inputs have no gradient: nnlib_model_get_input_gradient of one
 * gives zeros. */
NNLIB_API nnlib_status nnlib_embedding_create(nnlib_layer **out,
                                              int64_t vocab_size, int64_t dim);
/* Learned positional embeddings added to [T, D]: y[t] = x[t] + P[t] with P
 * [max_positions, D] (GPT-2's wpe; initialised N(0, 0.02^2)). max_positions
 * = 0 takes T from the input at compile; a larger value keeps rows for
 * longer contexts than the compiled one. NNLIB_ERR_INVALID_ARGUMENT for
 * max_positions < 0; at compile NNLIB_ERR_SHAPE_MISMATCH for an input not
 * [T, D] or T above max_positions, NNLIB_ERR_TOO_LARGE for a table whose
 * size in bytes overflows, NNLIB_ERR_OUT_OF_MEMORY for one that cannot be
 * allocated. */
NNLIB_API nnlib_status nnlib_positional_create(nnlib_layer **out,
                                               int64_t max_positions);
/* Layer normalisation over the last axis (torch.nn.LayerNorm(D, eps)):
 * y = (x - mean) / sqrt(var + eps) * gamma + beta, the biased variance,
 * gamma = 1 and beta = 0 at first (with_affine 0: neither). PyTorch's eps
 * is 1e-5. NNLIB_ERR_INVALID_ARGUMENT for an eps that is not finite and
 * > 0 or with_affine not 0 or 1. Any input rank. */
NNLIB_API nnlib_status nnlib_layernorm_create(nnlib_layer **out, float eps,
                                              int with_affine);
/* y = x W^T + b over the last axis of an input of any rank, [..., in] ->
 * [..., out_features] (torch.nn.Linear, with its initialisation), where
 * nnlib_dense_create flattens the sample. NNLIB_ERR_INVALID_ARGUMENT for
 * out_features < 1 or with_bias not 0 or 1, NNLIB_ERR_TOO_LARGE above
 * 2^31 - 1, NNLIB_ERR_OUT_OF_MEMORY. */
NNLIB_API nnlib_status nnlib_linear_create(nnlib_layer **out,
                                           int64_t out_features,
                                           int with_bias);

/* Multi-head self-attention on [T, D] (torch.nn.MultiheadAttention with
 * batch_first=True, called as mha(x, x, x)), D = heads * head_dim:
 *   [Q K V] = x W_in^T + b_in     W_in [3D, D] (in_proj_weight), b_in [3D]
 *   per head h: P = softmax(Q_h K_h^T / sqrt(head_dim) + mask), O_h = P V_h
 *   y = [O_1 .. O_heads] W_out^T + b_out   W_out [D, D], b_out [D]
 * with the causal mask (-inf above the diagonal: position t sees 0..t)
 * when `causal`, and dropout on P in training when dropout > 0. Parameters
 * in this order: in_proj_weight, in_proj_bias, out_proj.weight,
 * out_proj.bias (the biases only with with_bias). */
typedef struct nnlib_attention_options {
  size_t struct_size;
  int causal;       /* default 0; 1: each position attends to itself and
                       earlier ones (language models)                      */
  float dropout;    /* default 0: dropout rate on the attention weights    */
  int with_bias;    /* default 1                                           */
} nnlib_attention_options;
/* Fills the caller's options (of struct_size bytes) with the defaults.
 * NNLIB_ERR_INVALID_ARGUMENT for NULL, NNLIB_ERR_STRUCT_SIZE below
 * sizeof(size_t). */
NNLIB_API nnlib_status
nnlib_attention_options_init_size(nnlib_attention_options *options,
                                  size_t struct_size);
#define nnlib_attention_options_init(o)                                        \
  nnlib_attention_options_init_size((o), sizeof *(o))
/* options NULL: the defaults. NNLIB_ERR_INVALID_ARGUMENT for heads < 1, a
 * dropout outside [0, 1), causal or with_bias not 0 or 1; at compile
 * NNLIB_ERR_SHAPE_MISMATCH for an input not [T, D] or a D that heads does
 * not divide (the message says both). */
NNLIB_API nnlib_status
nnlib_attention_create(nnlib_layer **out, int64_t heads,
                       const nnlib_attention_options *options);

/* Merge layers (since 1.3.0) read two or more nodes of a graph model (see
 * nnlib_model_apply):
 *   add       y = x_1 + x_2 + ... + x_k, every input of one shape;
 *             dL/dx_i = dL/dy.
 *   multiply  y = x_1 * x_2 * ... * x_k elementwise (gates), one shape;
 *             dL/dx_i = dL/dy * (the product of the other inputs).
 *   concat    joins the inputs along per-sample axis `axis` (0 <= axis <
 *             rank, or -1 for the last axis): axis 0 is the features of
 *             [F] vectors and the channels of [C, H, W] images; every other
 *             axis must match. Backward hands each input its slice of dL/dy.
 *             At most 16 inputs (more is NNLIB_ERR_UNSUPPORTED at compile:
 *             concat in steps). An axis outside -1 .. NNLIB_MAX_RANK - 2 is
 *             NNLIB_ERR_INVALID_ARGUMENT here, one not below the inputs'
 *             rank NNLIB_ERR_SHAPE_MISMATCH at compile.
 * None has parameters. */
/* An add layer. NNLIB_ERR_INVALID_ARGUMENT for NULL out,
 * NNLIB_ERR_OUT_OF_MEMORY; inputs of different shapes are
 * NNLIB_ERR_SHAPE_MISMATCH at compile. */
NNLIB_API nnlib_status nnlib_add_create(nnlib_layer **out);
/* A multiply layer. NNLIB_ERR_INVALID_ARGUMENT for NULL out,
 * NNLIB_ERR_OUT_OF_MEMORY; inputs of different shapes are
 * NNLIB_ERR_SHAPE_MISMATCH at compile. */
NNLIB_API nnlib_status nnlib_multiply_create(nnlib_layer **out);
/* A concat layer along `axis`. NNLIB_ERR_INVALID_ARGUMENT for an axis
 * outside -1 .. NNLIB_MAX_RANK - 2, NNLIB_ERR_OUT_OF_MEMORY; at compile
 * NNLIB_ERR_SHAPE_MISMATCH and NNLIB_ERR_UNSUPPORTED as above. */
NNLIB_API nnlib_status nnlib_concat_create(nnlib_layer **out, int axis);

/* Frees a layer that no model took (a model frees its own layers). NULL is
 * a no-op. */
NNLIB_API void nnlib_layer_free(nnlib_layer *layer);

/* The layer's kind; 0 (no kind) for NULL. */
NNLIB_API nnlib_layer_kind nnlib_layer_get_kind(const nnlib_layer *layer);
/* "dense", "relu", ...: static storage; "" for NULL. */
NNLIB_API const char *nnlib_layer_get_name(const nnlib_layer *layer);
/* The per-sample output shape, known after compile: writes up to `capacity`
 * dimensions into dims (NULL allowed with capacity 0) and the rank into
 * *rank. NNLIB_ERR_INVALID_ARGUMENT for NULL, NNLIB_ERR_WRONG_STATE before
 * compile. */
NNLIB_API nnlib_status nnlib_layer_get_output_shape(const nnlib_layer *layer,
                                                    int64_t *dims,
                                                    size_t capacity,
                                                    size_t *rank);
/* The number of parameter tensors (dense: weight, then bias if any), the
 * indexes of nnlib_layer_get_param, known after compile; 0 before compile
 * and for NULL. For the number of scalars see nnlib_model_get_param_count.
 * Since 1.3.0 (before: nnlib_layer_get_param_count). */
NNLIB_API size_t nnlib_layer_get_param_tensor_count(const nnlib_layer *layer);
/* Parameter tensor `index` into *value and its gradient into *grad (either
 * may be NULL), after compile: borrowed from the layer and writable;
 * writing a parameter's data changes the model. NNLIB_ERR_INVALID_ARGUMENT
 * for a NULL layer, NNLIB_ERR_WRONG_STATE before compile,
 * NNLIB_ERR_OUT_OF_RANGE for an index not below the tensor count. */
NNLIB_API nnlib_status nnlib_layer_get_param(nnlib_layer *layer, size_t index,
                                             nnlib_tensor **value,
                                             nnlib_tensor **grad);
/* "weight", "bias", ...: static storage; NULL for an index out of range. */
NNLIB_API const char *nnlib_layer_get_param_name(const nnlib_layer *layer,
                                                 size_t index);
/* Buffers: state that is not trained but that inference needs and model
 * files keep (batchnorm: running_mean, running_var). Count, the i-th buffer
 * (borrowed, writable, after compile; NNLIB_ERR_OUT_OF_RANGE for a bad
 * index) and its name (NULL out of range). */
/* The number of buffer tensors; 0 for NULL. */
NNLIB_API size_t nnlib_layer_get_buffer_count(const nnlib_layer *layer);
/* Buffer `index` into *value, borrowed from the layer and writable.
 * NNLIB_ERR_INVALID_ARGUMENT for NULL, NNLIB_ERR_WRONG_STATE before
 * compile, NNLIB_ERR_OUT_OF_RANGE for an index not below the count. What
 * is written is checked by the next pass that reads it: a negative
 * batchnorm running_var makes every later forward pass through the layer
 * (training or inference) and inference backward pass fail with
 * NNLIB_ERR_INVALID_ARGUMENT naming the channel, and a model file holding
 * one does not load (NNLIB_ERR_CORRUPT_FILE). */
NNLIB_API nnlib_status nnlib_layer_get_buffer(nnlib_layer *layer, size_t index,
                                              nnlib_tensor **value);
/* "running_mean", ...: static storage; NULL for an index out of range. */
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
  int64_t warmup_steps;      /* since 1.4.0; default 0. W > 0: step t < W
                                uses lr (t + 1) / W, then the schedule runs
                                from t - W (COSINE reaches lr_min at
                                total_steps, so it needs W < total_steps) */
} nnlib_optimizer_options;

/* Fills the first struct_size bytes of *options with the defaults of
 * `kind` (the comments above) and sets options->struct_size (pass sizeof
 * *options; see the preamble). Since 1.3.0. NNLIB_ERR_INVALID_ARGUMENT for
 * NULL or an unknown kind, NNLIB_ERR_STRUCT_SIZE for a struct_size below
 * sizeof(size_t). */
NNLIB_API nnlib_status nnlib_optimizer_options_init_size(
    nnlib_optimizer_options *options, nnlib_optimizer_kind kind,
    size_t struct_size);
/* Fills *options with the defaults of `kind`. A macro over _init_size with
 * the caller's sizeof (since 1.3.0); the function of this name serves
 * programs built against older headers. NNLIB_ERR_INVALID_ARGUMENT for NULL
 * or an unknown kind. */
NNLIB_API nnlib_status nnlib_optimizer_options_init(
    nnlib_optimizer_options *options, nnlib_optimizer_kind kind);
#define nnlib_optimizer_options_init(options, kind)                            \
  nnlib_optimizer_options_init_size((options), (kind), sizeof *(options))
/* A new optimizer into *out, from options (copied; NULL: plain SGD, lr
 * 0.01). The caller owns it until nnlib_model_compile,
 * nnlib_model_compile_graph or nnlib_model_set_optimizer takes it (its
 * state is allocated then); one never handed over is freed with
 * nnlib_optimizer_free. NNLIB_ERR_INVALID_ARGUMENT for an unknown kind or
 * schedule or a value out of its range (a learning rate, weight decay,
 * gamma, min_learning_rate or clip_norm negative or not finite; momentum,
 * beta1, beta2 or alpha outside [0, 1); epsilon <= 0; nesterov without
 * momentum; STEP without step_size >= 1; COSINE without total_steps >= 1),
 * NNLIB_ERR_STRUCT_SIZE (options), NNLIB_ERR_OUT_OF_MEMORY. */
NNLIB_API nnlib_status nnlib_optimizer_create(
    nnlib_optimizer **out, const nnlib_optimizer_options *options);
/* Shortcut for nnlib_optimizer_create with SGD, momentum, Nesterov (0 or
 * 1) and weight decay; the other options take their defaults. Ownership
 * and statuses as nnlib_optimizer_create: NNLIB_ERR_INVALID_ARGUMENT,
 * NNLIB_ERR_OUT_OF_MEMORY. */
NNLIB_API nnlib_status nnlib_sgd_create(nnlib_optimizer **out,
                                        float learning_rate, float momentum,
                                        int nesterov, float weight_decay);
/* Frees an optimizer that no model took (a model frees its own). NULL is a
 * no-op. */
NNLIB_API void nnlib_optimizer_free(nnlib_optimizer *optimizer);
/* Sets the base learning rate (the schedules scale it). Not to be called
 * while the model trains in another thread. NNLIB_ERR_INVALID_ARGUMENT for
 * NULL or a rate that is negative or not finite. */
NNLIB_API nnlib_status nnlib_optimizer_set_learning_rate(
    nnlib_optimizer *optimizer, float learning_rate);
/* The base learning rate (before the schedule); 0 for NULL. */
NNLIB_API float nnlib_optimizer_get_learning_rate(
    const nnlib_optimizer *optimizer);
/* Number of updates applied so far (the t of the schedules and of Adam);
 * 0 for NULL. */
NNLIB_API int64_t nnlib_optimizer_get_step_count(
    const nnlib_optimizer *optimizer);
/* The options the optimizer runs with (the learning rate as last set),
 * into `options`, whose struct_size the caller sets (sizeof, or an older
 * header's size: a shorter struct gets the fields it has, a longer one the
 * fields this library lacks zeroed). Since 1.1.0.
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

/* A new, empty model into *out; the caller owns it (nnlib_model_free).
 * NNLIB_ERR_INVALID_ARGUMENT for NULL out, NNLIB_ERR_OUT_OF_MEMORY. */
NNLIB_API nnlib_status nnlib_model_create(nnlib_model **out);
/* Frees a model with its layers, optimizer and buffers. Its workspaces
 * must be freed first. NULL is a no-op. */
NNLIB_API void nnlib_model_free(nnlib_model *model);

/* Appends a layer that reads the model's newest node (see graph models).
 * The model owns the layer from now on, also when this fails (then it is
 * freed) - except a layer that already belongs to a model, which is
 * refused and left there. NNLIB_ERR_INVALID_ARGUMENT for NULL or a layer
 * already in a model, NNLIB_ERR_WRONG_STATE after compile,
 * NNLIB_ERR_OUT_OF_MEMORY. */
NNLIB_API nnlib_status nnlib_model_add(nnlib_model *model, nnlib_layer *layer);

/* Plans the model: checks that every layer's shape chains into the next for
 * a per-sample input of `input_shape`, initialises the weights from `seed`
 * (Xavier for sigmoid/tanh/identity, He for the ReLU family; biases zero) and
 * allocates every buffer a batch of up to `max_batch` samples needs. Training
 * steps and predictions allocate nothing afterwards.
 * `optimizer` may be NULL for an inference-only model; otherwise the model
 * takes it, also when compile fails. `loss` may be NNLIB_LOSS_NONE only
 * without an optimizer. A model compiles once; after a failure it is as
 * before and may be compiled again. Statuses: NNLIB_ERR_INVALID_ARGUMENT
 * (NULL, max_batch < 1, an unknown loss, an optimizer without a loss, a bad
 * input rank or dimension, a model of several inputs, a node the output
 * does not depend on), NNLIB_ERR_WRONG_STATE (compiled already, no
 * layers), NNLIB_ERR_SHAPE_MISMATCH (shapes that do not chain, naming the
 * layer; an input_shape other than the declared input's),
 * NNLIB_ERR_TOO_LARGE (max_batch or a buffer over the limits),
 * NNLIB_ERR_UNSUPPORTED (a concat of more than 16 inputs), NNLIB_ERR_DTYPE
 * (an embedding reading a layer's output, or token ids read by another
 * layer), NNLIB_ERR_OUT_OF_MEMORY. */
NNLIB_API nnlib_status nnlib_model_compile(nnlib_model *model,
                                           const int64_t *input_shape,
                                           size_t input_rank, int64_t max_batch,
                                           nnlib_loss loss,
                                           nnlib_optimizer *optimizer,
                                           uint64_t seed);

/* The number of layers (every node but the inputs); 0 for NULL. */
NNLIB_API size_t nnlib_model_get_layer_count(const nnlib_model *model);
/* Layer `index` in the order added, borrowed from the model; NULL if index
 * is out of range. */
NNLIB_API nnlib_layer *nnlib_model_get_layer(nnlib_model *model, size_t index);
/* The model's optimizer, borrowed; NULL for an inference-only or
 * uncompiled model. */
NNLIB_API nnlib_optimizer *nnlib_model_get_optimizer(nnlib_model *model);
/* The loss the model was compiled with; NNLIB_LOSS_NONE for NULL or before
 * compile. */
NNLIB_API nnlib_loss nnlib_model_get_loss(const nnlib_model *model);
/* Total number of trainable scalars (784-16-10 dense: 12730), after
 * compile. NNLIB_ERR_INVALID_ARGUMENT for NULL, NNLIB_ERR_WRONG_STATE
 * before compile. */
NNLIB_API nnlib_status nnlib_model_get_param_count(const nnlib_model *model,
                                                   int64_t *count);
/* The per-sample shape of input 0 (see nnlib_model_get_input_shape_at),
 * after compile: up to `capacity` dimensions into dims (NULL allowed with
 * capacity 0) and the rank into *rank. NNLIB_ERR_INVALID_ARGUMENT for
 * NULL, NNLIB_ERR_WRONG_STATE before compile. */
NNLIB_API nnlib_status nnlib_model_get_input_shape(const nnlib_model *model,
                                                   int64_t *dims,
                                                   size_t capacity,
                                                   size_t *rank);
/* The per-sample output shape, after compile, as
 * nnlib_model_get_input_shape (a sequence output gives the compiled T).
 * NNLIB_ERR_INVALID_ARGUMENT for NULL, NNLIB_ERR_WRONG_STATE before
 * compile. */
NNLIB_API nnlib_status nnlib_model_get_output_shape(const nnlib_model *model,
                                                    int64_t *dims,
                                                    size_t capacity,
                                                    size_t *rank);
/* The compiled maximum batch; 0 for NULL or before compile. */
NNLIB_API int64_t nnlib_model_get_max_batch(const nnlib_model *model);

/* Inference: x [N, input...] with any N >= 1 (processed in chunks of the
 * compiled maximum batch), writes y [N, output...] (the caller's tensor, of
 * matching element count; [N, T', H] for a sequence output at T', see the
 * recurrent layers). Uses inference mode (dropout off, batchnorm running
 * statistics). Predictions and evaluations (also through workspaces) run
 * a conv2d layer whose only reader is a batchnorm folded with it, on
 * weights scaled per output channel that are made from the current
 * weights and statistics at every call, with the elementwise activation
 * that alone reads them in the same pass; and a conv2d with a 3x3 kernel
 * at stride 1, dilation 1 and padding 1 and at least 16 input and output
 * channels by Winograd's F(2x2, 3x3) algorithm (fewer multiplications, a
 * different rounding; an infinite input gives NaN there): the results
 * equal the layer by layer computation up to float rounding. Training
 * never folds; it runs such a convolution's forward and input gradient by
 * Winograd too when the batch is larger than the convolution lowers at
 * once (a lowered batch over 16 MB, as 64 images through a 32 -> 64
 * channel convolution on 14x14 maps), with the same rounding difference and
 * NaN for an infinite input or gradient; its gradients are those of the
 * direct sum. The calls that take data share these statuses:
 * NNLIB_ERR_INVALID_ARGUMENT (NULL; a wrong number of input tensors),
 * NNLIB_ERR_WRONG_STATE (before compile), NNLIB_ERR_DTYPE (an int32
 * tensor where the model takes float32, or the reverse: token-id inputs,
 * class-index targets, outputs and gradients), NNLIB_ERR_SHAPE_MISMATCH (a
 * tensor that does not fit the model, naming it; an initial state of other
 * rows than the batch), NNLIB_ERR_TOO_LARGE (sequences longer than
 * compiled), NNLIB_ERR_NUMERICAL (NaN or Inf found by the numerics check,
 * when it is on). */
NNLIB_API nnlib_status nnlib_model_predict(nnlib_model *model,
                                           const nnlib_tensor *x,
                                           nnlib_tensor *y);

/* Per-thread inference. A workspace holds the scratch buffers of inference
 * for one compiled model, so that several threads can predict with one
 * shared model at once, each with its own workspace. The model must outlive
 * its workspaces and must not be trained, changed or freed while any thread
 * predicts with it. */
typedef struct nnlib_workspace nnlib_workspace;
/* A new workspace for `model` into *out (the model stays the caller's and
 * is only read); the caller owns the workspace (nnlib_workspace_free).
 * NNLIB_ERR_INVALID_ARGUMENT for NULL, NNLIB_ERR_WRONG_STATE for an
 * uncompiled model, NNLIB_ERR_OUT_OF_MEMORY. */
NNLIB_API nnlib_status nnlib_workspace_create(nnlib_workspace **out,
                                              const nnlib_model *model);
/* Frees a workspace (before its model). NULL is a no-op. */
NNLIB_API void nnlib_workspace_free(nnlib_workspace *workspace);
/* nnlib_model_predict with the workspace's buffers. Thread-safe: calls on
 * different workspaces (of the same model or not) may run concurrently.
 * Statuses as nnlib_model_predict: NNLIB_ERR_INVALID_ARGUMENT,
 * NNLIB_ERR_SHAPE_MISMATCH, NNLIB_ERR_TOO_LARGE, NNLIB_ERR_NUMERICAL. */
NNLIB_API nnlib_status nnlib_workspace_predict(nnlib_workspace *workspace,
                                               const nnlib_tensor *x,
                                               nnlib_tensor *y);

/* Training-mode forward pass of one batch (1 <= N <= max batch). *output is
 * the model's own output buffer, borrowed until the next call on the model;
 * its shape is [N, output...] ([N, T', H] for a sequence output at T').
 * Statuses as nnlib_model_predict (NNLIB_ERR_INVALID_ARGUMENT,
 * NNLIB_ERR_WRONG_STATE, NNLIB_ERR_SHAPE_MISMATCH, NNLIB_ERR_NUMERICAL),
 * and NNLIB_ERR_TOO_LARGE also for N above the maximum batch. */
NNLIB_API nnlib_status nnlib_model_forward(nnlib_model *model,
                                           const nnlib_tensor *x,
                                           const nnlib_tensor **output);
/* Forward, loss and backward on one batch (1 <= N <= max batch): leaves
 * the gradient of the mean loss in every parameter's grad tensor
 * (overwritten, not accumulated) and the loss in *loss (may be NULL).
 * Applies no update. *loss is written on success and on
 * NNLIB_ERR_NUMERICAL (the loss computed, which is not finite when the
 * loss is what failed; NaN when the numerics check stopped the pass
 * before the loss), and left as it was after any other failure. Targets are
 * checked before the pass runs. Statuses as nnlib_model_forward
 * (NNLIB_ERR_INVALID_ARGUMENT, NNLIB_ERR_SHAPE_MISMATCH also for the target,
 * NNLIB_ERR_TOO_LARGE, NNLIB_ERR_NUMERICAL), and NNLIB_ERR_WRONG_STATE also for
 * a model compiled without a loss, NNLIB_ERR_OUT_OF_RANGE for a class index
 * target outside 0 .. K-1. */
NNLIB_API nnlib_status nnlib_model_backward(nnlib_model *model,
                                            const nnlib_tensor *x,
                                            const nnlib_tensor *target,
                                            float *loss);
/* One training step: backward, then the optimizer's update. If the loss is
 * not finite the weights are left untouched and NNLIB_ERR_NUMERICAL is
 * returned (*loss as nnlib_model_backward writes it). Other statuses as
 * nnlib_model_backward (NNLIB_ERR_INVALID_ARGUMENT, NNLIB_ERR_SHAPE_MISMATCH,
 * NNLIB_ERR_TOO_LARGE, NNLIB_ERR_OUT_OF_RANGE), and NNLIB_ERR_WRONG_STATE
 * also for a model without an optimizer. */
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
 * on: 0 or 1. Not to be called while other threads predict with the model.
 * NNLIB_ERR_INVALID_ARGUMENT for NULL or another value of on. */
NNLIB_API nnlib_status nnlib_model_set_check_numerics(nnlib_model *model,
                                                      int on);
/* Applies the optimizer's update to the gradients already in the model
 * (after nnlib_model_backward or nnlib_model_backward_output, for callers
 * that edit or reduce gradients first). Since 1.3.0 (before:
 * nnlib_optimizer_step). NNLIB_ERR_INVALID_ARGUMENT for NULL,
 * NNLIB_ERR_WRONG_STATE before compile or without a loss or optimizer,
 * NNLIB_ERR_NUMERICAL when the numerics check is on and a parameter became
 * NaN or Inf. */
NNLIB_API nnlib_status nnlib_model_apply_gradients(nnlib_model *model);
/* The model's flat parameter and gradient buffers, for reductions across
 * processes (average the gradients between nnlib_model_backward and
 * nnlib_model_apply_gradients; broadcast the weights). Every layer's
 * parameters lie in one array of *count floats in layer order
 * (nnlib_layer_get_param gives views into it), their gradients in a second
 * array of the same layout. Borrowed and writable, valid as long as the
 * model. nnlib_model_backward writes the gradients; nnlib_model_step with
 * plain SGD may fold the update into backward and leave them stale. params
 * or grads may be NULL; a model without parameters gives count 0 and
 * pointers that must not be read. NNLIB_ERR_INVALID_ARGUMENT for a NULL
 * model or count, NNLIB_ERR_WRONG_STATE before compile. */
NNLIB_API nnlib_status nnlib_model_get_flat_params(nnlib_model *model,
                                                   float **params,
                                                   float **grads,
                                                   int64_t *count);

/* Progress report passed to the fit callback after every batch. The
 * library fills it (struct_size is its size: a callback built against an
 * older header reads the fields it knows). */
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

/* Fills the first struct_size bytes of *options with the defaults above
 * and sets options->struct_size (pass sizeof *options; see the preamble).
 * Since 1.3.0. NNLIB_ERR_INVALID_ARGUMENT for NULL, NNLIB_ERR_STRUCT_SIZE
 * for a struct_size below sizeof(size_t). */
NNLIB_API nnlib_status nnlib_fit_options_init_size(nnlib_fit_options *options,
                                                   size_t struct_size);
/* Fills *options with the defaults. A macro over _init_size with the
 * caller's sizeof (since 1.3.0); the function of this name serves programs
 * built against older headers. NNLIB_ERR_INVALID_ARGUMENT for NULL. */
NNLIB_API nnlib_status nnlib_fit_options_init(nnlib_fit_options *options);
#define nnlib_fit_options_init(options)                                        \
  nnlib_fit_options_init_size((options), sizeof *(options))
/* Trains on the samples of x [S, input...] with targets [S, ...] for
 * options->epochs epochs of minibatches (the last one may be smaller;
 * options NULL: the defaults). Shuffling gathers each batch into a buffer
 * allocated per call; the data set is never copied as a whole. x, target
 * and the options' pointers are borrowed for the call. A failure during
 * training leaves the updates of the batches before it. Statuses:
 * NNLIB_ERR_INVALID_ARGUMENT (NULL; epochs < 0, batch_size < 0, shuffle
 * not 0 or 1), NNLIB_ERR_WRONG_STATE (before compile, no loss or no
 * optimizer), NNLIB_ERR_STRUCT_SIZE (options), NNLIB_ERR_SHAPE_MISMATCH,
 * NNLIB_ERR_TOO_LARGE (batch_size above the maximum batch, sequences
 * longer than compiled), NNLIB_ERR_OUT_OF_RANGE (a class index target;
 * every target is checked before the first batch), NNLIB_ERR_NUMERICAL (a
 * loss that is not finite: the weights of that batch stay untouched), NNLIB_ERR_CANCELLED (the progress callback),
 * NNLIB_ERR_OUT_OF_MEMORY. */
NNLIB_API nnlib_status nnlib_model_fit(nnlib_model *model,
                                       const nnlib_tensor *x,
                                       const nnlib_tensor *target,
                                       const nnlib_fit_options *options);

/* Validation and early stopping for nnlib_model_fit_validated (since
 * 1.1.0; a struct of its own, from before option structs could grow). */
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

/* Fills the first struct_size bytes of *options with the defaults above
 * (every field 0 or NULL) and sets options->struct_size (pass sizeof
 * *options; see the preamble). Since 1.3.0. NNLIB_ERR_INVALID_ARGUMENT for
 * NULL, NNLIB_ERR_STRUCT_SIZE for a struct_size below sizeof(size_t). */
NNLIB_API nnlib_status nnlib_validation_options_init_size(
    nnlib_validation_options *options, size_t struct_size);
/* Fills *options with the defaults. A macro over _init_size with the
 * caller's sizeof (since 1.3.0); the function of this name serves programs
 * built against older headers. NNLIB_ERR_INVALID_ARGUMENT for NULL. */
NNLIB_API nnlib_status nnlib_validation_options_init(
    nnlib_validation_options *options);
#define nnlib_validation_options_init(options)                                 \
  nnlib_validation_options_init_size((options), sizeof *(options))
/* nnlib_model_fit with a validation pass after every epoch (validation
 * NULL: exactly nnlib_model_fit). The validation tensors are checked before
 * any training (their shapes as for nnlib_model_evaluate); a loss that is
 * not finite never counts as an improvement. restore_best allocates one
 * copy of the parameters per call. Since 1.1.0. Statuses as
 * nnlib_model_fit (NNLIB_ERR_INVALID_ARGUMENT also for validation options
 * without x or target, a negative patience or min_delta, restore_best not
 * 0 or 1; NNLIB_ERR_STRUCT_SIZE also for the validation options;
 * NNLIB_ERR_WRONG_STATE, NNLIB_ERR_SHAPE_MISMATCH, NNLIB_ERR_TOO_LARGE,
 * NNLIB_ERR_OUT_OF_RANGE, NNLIB_ERR_NUMERICAL, NNLIB_ERR_CANCELLED,
 * NNLIB_ERR_OUT_OF_MEMORY). */
NNLIB_API nnlib_status nnlib_model_fit_validated(
    nnlib_model *model, const nnlib_tensor *x, const nnlib_tensor *target,
    const nnlib_fit_options *options,
    const nnlib_validation_options *validation);

/* Mean loss and accuracy over all samples in inference mode. Accuracy is the
 * share of samples whose arg-max output matches the target's class (one
 * output: output > 0 for BCE, > 0.5 otherwise, against target > 0.5).
 * Either output pointer may be NULL. Statuses as nnlib_model_predict
 * (NNLIB_ERR_INVALID_ARGUMENT, NNLIB_ERR_SHAPE_MISMATCH also for the target,
 * NNLIB_ERR_TOO_LARGE, NNLIB_ERR_NUMERICAL), NNLIB_ERR_WRONG_STATE also when
 * a loss is asked of a model compiled without one, NNLIB_ERR_OUT_OF_RANGE
 * for a class index target outside 0 .. K-1. */
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
  int fused;               /* 1: the layer runs inside an earlier layer's
                              pass (an activation fused into a dense layer
                              or a batchnorm; a 2x2 max pool fused into a
                              batchnorm after its ReLU) and is counted
                              there; its own counts stay 0.
                              A batchnorm and activation folded into a
                              conv2d (see nnlib_model_predict) keep 0 here:
                              they run by themselves in training, and
                              count no forward calls in predictions, whose
                              time is in the conv2d's counts */
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
 * uses the model. NNLIB_ERR_INVALID_ARGUMENT for NULL or another value of
 * on. */
NNLIB_API nnlib_status nnlib_model_set_profiling(nnlib_model *model, int on);
/* The counts of layer `index` (as nnlib_model_get_layer) into *out, whose
 * struct_size the caller sets first; a shorter (older) struct gets the
 * fields it has. NNLIB_ERR_INVALID_ARGUMENT for NULL,
 * NNLIB_ERR_OUT_OF_RANGE for a bad index, NNLIB_ERR_STRUCT_SIZE if
 * struct_size is below sizeof(size_t). */
NNLIB_API nnlib_status nnlib_model_get_layer_profile(
    const nnlib_model *model, size_t index, nnlib_layer_profile *out);

/* ------------------------------------------------------- gradient check */

typedef struct nnlib_gradcheck_options {
  size_t struct_size;
  float step;                /* central-difference step h; default 1e-2    */
  int random_direction;      /* 1: one directional derivative over all
                                parameters; 0 (default): every scalar      */
  uint64_t seed;             /* for the random direction; default 1        */
  int inference;             /* 1: check the inference-mode function
                                (dropout off, batchnorm on its running
                                statistics); 0 (default): training mode   */
} nnlib_gradcheck_options;

/* Fills the first struct_size bytes of *options with the defaults above
 * and sets options->struct_size (pass sizeof *options; see the preamble).
 * Since 1.3.0. NNLIB_ERR_INVALID_ARGUMENT for NULL, NNLIB_ERR_STRUCT_SIZE
 * for a struct_size below sizeof(size_t). */
NNLIB_API nnlib_status nnlib_gradcheck_options_init_size(
    nnlib_gradcheck_options *options, size_t struct_size);
/* Fills *options with the defaults. A macro over _init_size with the
 * caller's sizeof (since 1.3.0); the function of this name serves programs
 * built against older headers. NNLIB_ERR_INVALID_ARGUMENT for NULL. */
NNLIB_API nnlib_status nnlib_gradcheck_options_init(
    nnlib_gradcheck_options *options);
#define nnlib_gradcheck_options_init(options)                                  \
  nnlib_gradcheck_options_init_size((options), sizeof *(options))
/* Compares the backpropagated gradient of the mean loss on (x, target) with
 * central finite differences (f(p + h) - f(p - h)) / 2h, computed in double
 * from float losses. Per parameter tensor the error is the normwise relative
 * error |g_bp - g_fd| / max(|g_bp| + |g_fd|, 1e-12); *max_rel_error is the
 * worst over all tensors (or the directional one). Parameters are restored
 * exactly afterwards. Needs a compiled model with a loss. Every pass starts
 * from the generator state the check began with, so dropout draws the same
 * masks in each, and the gradients, layer buffers (batchnorm running
 * statistics) and the generator are restored afterwards and input
 * gradients (nnlib_model_set_input_gradients) left alone: the check
 * leaves the model as it was, but for a pending nnlib_model_forward,
 * which it spends. Allocates copies of the parameters and gradients
 * per call. Statuses:
 * NNLIB_ERR_INVALID_ARGUMENT (NULL; a step that is not finite and > 0,
 * inference not 0 or 1), NNLIB_ERR_WRONG_STATE (before compile, no loss),
 * NNLIB_ERR_STRUCT_SIZE (options), and those of nnlib_model_backward:
 * NNLIB_ERR_SHAPE_MISMATCH, NNLIB_ERR_TOO_LARGE, NNLIB_ERR_OUT_OF_RANGE,
 * NNLIB_ERR_NUMERICAL; NNLIB_ERR_OUT_OF_MEMORY. */
NNLIB_API nnlib_status nnlib_model_gradcheck(
    nnlib_model *model, const nnlib_tensor *x, const nnlib_tensor *target,
    const nnlib_gradcheck_options *options, double *max_rel_error);

/* ----------------------------------------------- graph models (1.3.0) */

/* A model is a directed acyclic graph of nodes: model inputs, and layers
 * applied to earlier nodes. Residual blocks add a block's input to its
 * output, branches are joined by concat, a model may have several inputs
 * (an image and a vector) joined before its head. Nodes are made in order
 * and a node only reads nodes made before it, so the order they were made
 * in is the order forward runs them (backward runs it backwards).
 *
 * nnlib_model_add(model, layer) applies the layer to the newest node; a
 * model built only with it is a chain, as every model was in 1.2, with
 * one implicit input whose shape nnlib_model_compile gives: code written
 * for 1.2 builds, trains, predicts and saves it unchanged, as version 1
 * of the model file (which 1.2 reads when it knows every layer). Within
 * one version of nnlib the same seed and thread count give the same bits;
 * a later version may round differently where it computes faster (within
 * the tolerance the tests hold against PyTorch).
 *
 * A node read by several layers (fan-out) receives the sum of their
 * gradients. Every node must contribute to the output: a declared input or
 * a layer that the output does not depend on is refused at compile
 * (NNLIB_ERR_INVALID_ARGUMENT, naming the node). Nodes are named in
 * messages by their name when they have one, else as "node 3 (dense)".
 *
 * A node is an nnlib_node value handed out by the model; it is only valid
 * with that model (a node of another model, or one not made yet, is
 * NNLIB_ERR_INVALID_ARGUMENT). */
typedef uint64_t nnlib_node;

/* Declares model input number nnlib_model_get_input_count() (0, 1, ...) of
 * per-sample shape shape[rank] (1 <= rank < NNLIB_MAX_RANK; copied) and
 * returns its node in *node. Every call that takes data takes one tensor
 * per input, in this order; a model takes at most 64.
 * NNLIB_ERR_INVALID_ARGUMENT for NULL, a bad rank or a dimension below 1,
 * NNLIB_ERR_TOO_LARGE beyond 64 inputs or for a shape too large,
 * NNLIB_ERR_WRONG_STATE after compile, or once layers were added to the
 * model's implicit input, NNLIB_ERR_OUT_OF_MEMORY. */
NNLIB_API nnlib_status nnlib_model_input(nnlib_model *model,
                                         const int64_t *shape, size_t rank,
                                         nnlib_node *node);
/* Applies `layer` to the nodes inputs[0 .. count): a merge layer (add,
 * concat, multiply) to two or more, any other layer to exactly one. The
 * new node goes to *node (may be NULL). The model owns the layer from now
 * on, also when this fails (then it is freed) - except a layer that
 * already belongs to a model, which is refused and left there: a layer is
 * applied once (one node per layer). Statuses: NNLIB_ERR_INVALID_ARGUMENT
 * (NULL, a foreign or unknown node, a wrong input count, a layer already
 * in a model), NNLIB_ERR_TOO_LARGE (more than 64 inputs),
 * NNLIB_ERR_WRONG_STATE (compiled), NNLIB_ERR_OUT_OF_MEMORY. */
NNLIB_API nnlib_status nnlib_model_apply(nnlib_model *model,
                                         nnlib_layer *layer,
                                         const nnlib_node *inputs,
                                         size_t count, nnlib_node *node);
/* Makes `node` the model's output (default: the newest node). Once only.
 * NNLIB_ERR_INVALID_ARGUMENT for NULL, a foreign or unknown node, or a
 * model input (an input cannot be the output); NNLIB_ERR_WRONG_STATE for a
 * second call or after compile. */
NNLIB_API nnlib_status nnlib_model_set_output(nnlib_model *model,
                                              nnlib_node node);
/* Names a node for description text, messages and `nnlib info`: 1 to 31
 * characters of [A-Za-z0-9_], starting with a letter or '_', unique within
 * the model (the name is copied). NNLIB_ERR_INVALID_ARGUMENT for NULL, a
 * foreign or unknown node, a malformed name or one another node has,
 * NNLIB_ERR_WRONG_STATE after compile, NNLIB_ERR_OUT_OF_MEMORY. */
NNLIB_API nnlib_status nnlib_model_set_node_name(nnlib_model *model,
                                                 nnlib_node node,
                                                 const char *name);
/* nnlib_model_compile for a model whose inputs were all declared with
 * nnlib_model_input (nnlib_model_compile accepts such a model too when it
 * has exactly one input and input_shape equals the declared one). Takes
 * the optimizer, also when it fails. Statuses as nnlib_model_compile
 * (NNLIB_ERR_INVALID_ARGUMENT, NNLIB_ERR_SHAPE_MISMATCH,
 * NNLIB_ERR_TOO_LARGE, NNLIB_ERR_UNSUPPORTED, NNLIB_ERR_OUT_OF_MEMORY), and
 * NNLIB_ERR_WRONG_STATE also for a model built on an implicit input
 * (nnlib_model_add without nnlib_model_input), whose shape only
 * nnlib_model_compile can give. */
NNLIB_API nnlib_status nnlib_model_compile_graph(nnlib_model *model,
                                                 int64_t max_batch,
                                                 nnlib_loss loss,
                                                 nnlib_optimizer *optimizer,
                                                 uint64_t seed);

/* The graph, read back: nodes are numbered 0 .. count-1 in the order they
 * were made (inputs included). */
/* The number of model inputs (declared or implicit); 0 for NULL. */
NNLIB_API size_t nnlib_model_get_input_count(const nnlib_model *model);
/* The number of nodes, inputs included; 0 for NULL. */
NNLIB_API size_t nnlib_model_get_node_count(const nnlib_model *model);
typedef struct nnlib_node_info {
  size_t struct_size;       /* set by the caller: sizeof(nnlib_node_info)  */
  nnlib_node node;          /* the node's handle                           */
  const char *name;         /* NULL when unnamed; borrowed                 */
  nnlib_layer *layer;       /* NULL for a model input; borrowed            */
  int64_t layer_index;      /* as nnlib_model_get_layer; -1 for an input   */
  int64_t input_index;      /* model input number; -1 for a layer          */
  size_t input_count;       /* nodes it reads                              */
  const nnlib_node *inputs; /* borrowed, input_count handles               */
  size_t rank;              /* per-sample output shape; rank 0 for a layer */
  int64_t shape[NNLIB_MAX_RANK]; /* before compile                         */
  int is_output;            /* 1 for the model's output node               */
} nnlib_node_info;
/* Node number `index` into *info (whose struct_size the caller sets; a
 * shorter struct gets the fields it has). The pointers in it are borrowed
 * from the model. NNLIB_ERR_INVALID_ARGUMENT for NULL,
 * NNLIB_ERR_OUT_OF_RANGE for a bad index, NNLIB_ERR_STRUCT_SIZE for a
 * struct_size below sizeof(size_t). */
NNLIB_API nnlib_status nnlib_model_get_node(const nnlib_model *model,
                                            size_t index,
                                            nnlib_node_info *info);
/* Per-sample shape of model input `input`, after compile, as
 * nnlib_model_get_input_shape. NNLIB_ERR_INVALID_ARGUMENT for NULL,
 * NNLIB_ERR_WRONG_STATE before compile, NNLIB_ERR_OUT_OF_RANGE for a bad
 * input number. */
NNLIB_API nnlib_status nnlib_model_get_input_shape_at(
    const nnlib_model *model, size_t input, int64_t *dims, size_t capacity,
    size_t *rank);
/* The element type model input `input` takes, after compile:
 * NNLIB_DTYPE_INT32 for token ids (an input read by embeddings), else
 * NNLIB_DTYPE_FLOAT32 (since 1.4.0). NNLIB_ERR_INVALID_ARGUMENT for NULL,
 * NNLIB_ERR_WRONG_STATE before compile, NNLIB_ERR_OUT_OF_RANGE for a bad
 * input number. */
NNLIB_API nnlib_status nnlib_model_get_input_dtype(const nnlib_model *model,
                                                   size_t input,
                                                   nnlib_dtype *dtype);

/* The calls that take data, with one tensor per model input (inputs[0 ..
 * count), count = nnlib_model_get_input_count(); every tensor with the same
 * number of samples N). The one-tensor calls are these with count 1 and
 * keep working for one-input models. A wrong count is
 * NNLIB_ERR_INVALID_ARGUMENT, a tensor of the wrong shape
 * NNLIB_ERR_SHAPE_MISMATCH naming the input. */
/* nnlib_model_predict over several inputs. Statuses as nnlib_model_predict:
 * NNLIB_ERR_INVALID_ARGUMENT, NNLIB_ERR_WRONG_STATE,
 * NNLIB_ERR_SHAPE_MISMATCH, NNLIB_ERR_TOO_LARGE, NNLIB_ERR_NUMERICAL. */
NNLIB_API nnlib_status nnlib_model_predict_inputs(
    nnlib_model *model, const nnlib_tensor *const *inputs, size_t count,
    nnlib_tensor *y);
/* nnlib_workspace_predict over several inputs. Statuses as
 * nnlib_workspace_predict: NNLIB_ERR_INVALID_ARGUMENT,
 * NNLIB_ERR_SHAPE_MISMATCH, NNLIB_ERR_TOO_LARGE, NNLIB_ERR_NUMERICAL. */
NNLIB_API nnlib_status nnlib_workspace_predict_inputs(
    nnlib_workspace *workspace, const nnlib_tensor *const *inputs,
    size_t count, nnlib_tensor *y);
/* nnlib_model_forward over several inputs; the input tensors must keep
 * their data until a following nnlib_model_backward_output. Statuses as
 * nnlib_model_forward: NNLIB_ERR_INVALID_ARGUMENT, NNLIB_ERR_WRONG_STATE,
 * NNLIB_ERR_SHAPE_MISMATCH, NNLIB_ERR_TOO_LARGE, NNLIB_ERR_NUMERICAL. */
NNLIB_API nnlib_status nnlib_model_forward_inputs(
    nnlib_model *model, const nnlib_tensor *const *inputs, size_t count,
    const nnlib_tensor **output);
/* nnlib_model_backward over several inputs. Statuses as
 * nnlib_model_backward: NNLIB_ERR_INVALID_ARGUMENT, NNLIB_ERR_WRONG_STATE,
 * NNLIB_ERR_SHAPE_MISMATCH, NNLIB_ERR_TOO_LARGE, NNLIB_ERR_OUT_OF_RANGE,
 * NNLIB_ERR_NUMERICAL. */
NNLIB_API nnlib_status nnlib_model_backward_inputs(
    nnlib_model *model, const nnlib_tensor *const *inputs, size_t count,
    const nnlib_tensor *target, float *loss);
/* nnlib_model_step over several inputs. Statuses as nnlib_model_step:
 * NNLIB_ERR_INVALID_ARGUMENT, NNLIB_ERR_WRONG_STATE,
 * NNLIB_ERR_SHAPE_MISMATCH, NNLIB_ERR_TOO_LARGE, NNLIB_ERR_OUT_OF_RANGE,
 * NNLIB_ERR_NUMERICAL. */
NNLIB_API nnlib_status nnlib_model_step_inputs(
    nnlib_model *model, const nnlib_tensor *const *inputs, size_t count,
    const nnlib_tensor *target, float *loss);
/* nnlib_model_evaluate over several inputs. Statuses as
 * nnlib_model_evaluate: NNLIB_ERR_INVALID_ARGUMENT, NNLIB_ERR_WRONG_STATE,
 * NNLIB_ERR_SHAPE_MISMATCH, NNLIB_ERR_TOO_LARGE, NNLIB_ERR_OUT_OF_RANGE,
 * NNLIB_ERR_NUMERICAL. */
NNLIB_API nnlib_status nnlib_model_evaluate_inputs(
    nnlib_model *model, const nnlib_tensor *const *inputs, size_t count,
    const nnlib_tensor *target, float *loss, float *accuracy);
/* nnlib_model_fit_validated with several inputs: the validation samples
 * are validation_inputs[0 .. count) (NULL when validation is NULL) and
 * validation->target; validation->x must be NULL (validation_inputs NULL:
 * validation->x, for a one-input model). Statuses as
 * nnlib_model_fit_validated: NNLIB_ERR_INVALID_ARGUMENT,
 * NNLIB_ERR_WRONG_STATE, NNLIB_ERR_STRUCT_SIZE, NNLIB_ERR_SHAPE_MISMATCH,
 * NNLIB_ERR_TOO_LARGE, NNLIB_ERR_OUT_OF_RANGE, NNLIB_ERR_NUMERICAL,
 * NNLIB_ERR_CANCELLED, NNLIB_ERR_OUT_OF_MEMORY. */
NNLIB_API nnlib_status nnlib_model_fit_inputs(
    nnlib_model *model, const nnlib_tensor *const *inputs, size_t count,
    const nnlib_tensor *target, const nnlib_fit_options *options,
    const nnlib_validation_options *validation,
    const nnlib_tensor *const *validation_inputs);
/* nnlib_model_gradcheck over several inputs. Statuses as
 * nnlib_model_gradcheck: NNLIB_ERR_INVALID_ARGUMENT,
 * NNLIB_ERR_WRONG_STATE, NNLIB_ERR_STRUCT_SIZE, NNLIB_ERR_SHAPE_MISMATCH,
 * NNLIB_ERR_TOO_LARGE, NNLIB_ERR_OUT_OF_RANGE, NNLIB_ERR_NUMERICAL,
 * NNLIB_ERR_OUT_OF_MEMORY. */
NNLIB_API nnlib_status nnlib_model_gradcheck_inputs(
    nnlib_model *model, const nnlib_tensor *const *inputs, size_t count,
    const nnlib_tensor *target, const nnlib_gradcheck_options *options,
    double *max_rel_error);

/* Gradients with respect to the model's inputs (saliency maps, adversarial
 * examples, chaining nnlib with other code). Off by default (it costs the
 * first layers' input-gradient products); on = 1 allocates one buffer per
 * input for the compiled maximum batch, on = 0 frees them. While on, every
 * backward pass (backward, step, fit, backward_output) leaves dL/dx of each
 * input for the batch it ran on. NNLIB_ERR_INVALID_ARGUMENT for NULL or
 * another value of on, NNLIB_ERR_WRONG_STATE for on = 1 before compile,
 * NNLIB_ERR_OUT_OF_MEMORY (then they stay off). */
NNLIB_API nnlib_status nnlib_model_set_input_gradients(nnlib_model *model,
                                                       int on);
/* The gradient of input `input` from the last backward pass: [N, input
 * shape...], borrowed until the next call on the model.
 * NNLIB_ERR_INVALID_ARGUMENT for NULL, NNLIB_ERR_OUT_OF_RANGE for a bad
 * input number, NNLIB_ERR_WRONG_STATE before compile, when input gradients
 * are off, or when no backward pass ran since they were switched on. */
NNLIB_API nnlib_status nnlib_model_get_input_gradient(
    nnlib_model *model, size_t input, const nnlib_tensor **grad);
/* Backward from a gradient of the output that the caller gives, instead of
 * from the loss (custom losses, models in sequence): after
 * nnlib_model_forward or nnlib_model_forward_inputs on a batch of N,
 * output_grad [N, output...] is dL/dy. Writes every parameter gradient
 * (overwritten), and the input gradients when they are on; applies no
 * update (nnlib_model_apply_gradients does). Works for models compiled
 * without a loss too. The input tensors of that forward pass must still
 * hold the same data (backward reads them). Once per forward pass:
 * NNLIB_ERR_WRONG_STATE when no forward pass precedes it (a call that
 * runs the model in between: backward, step, predict, evaluate, fit,
 * gradcheck, or a previous backward_output, spends it) or before compile.
 * NNLIB_ERR_INVALID_ARGUMENT for NULL, NNLIB_ERR_SHAPE_MISMATCH for an
 * output_grad of another element count, NNLIB_ERR_NUMERICAL (numerics
 * check on). */
NNLIB_API nnlib_status nnlib_model_backward_output(
    nnlib_model *model, const nnlib_tensor *output_grad);

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
 *   maxpool:P[:sP][:pQ][:dP][:ceil], minpool:... (the same),
 *   avgpool:P[:sP][:pQ][:ceil][:exclude_pad]
 *                                           kernel P (maxpool:2 is 2x2),
 *                                           stride (default: the kernel),
 *                                           padding Q (0): N, HxW, or
 *                                           TOPxLEFTxBOTTOMxRIGHT (ONNX's
 *                                           pads order), dilation d (1),
 *                                           ceil mode, and averages over
 *                                           the input elements only
 *                                           (count_include_pad 0); since
 *                                           1.5.0 all but s and pN/pHxW,
 *                                           e.g. maxpool:3:s2:p1:d2:ceil
 *   global_avgpool                          [C, H, W] -> [C]
 *   batchnorm[:MOMENTUM[:EPSILON]]          default 0.1 and 1e-5
 *   dropout[:RATE]                          default 0.5
 *   flatten
 *   transpose:P0xP1x...                     the per-sample axes permuted
 *                                           (since 1.6.0), as
 *                                           nnlib_transpose_create with
 *                                           perm {P0, P1, ...}, e.g.
 *                                           transpose:1x2x0 ([C, H, W] to
 *                                           [H, W, C]); of any rank
 * e.g. "conv:32x5x5,relu,maxpool:2,conv:64x5x5,relu,maxpool:2,flatten,
 * dense:10". nnlib_model_get_spec prints defaults left out (dropout always
 * with its rate).
 * Recurrent items: rnn:H[:tanh|:relu][:nobias] (tanh by default),
 * lstm:H[:nobias], gru:H[:nobias][:lbr0], each returning the whole
 * sequence (lbr0, since 1.5.0: ONNX's GRU of linear_before_reset 0, n =
 * tanh(W_in x + b_in + W_hn (r h) + b_hn), the reset gate applied before
 * W_hn; without it PyTorch's form above, nnlib_gru_create's); the
 * item `last` right after one makes it return only its last step, so
 * "lstm:128,last,dense:10" is two layers (an lstm of the last step, then a
 * dense layer).
 * Text items (since 1.4.0; see text layers above): embedding:VOCAB:DIM,
 * positional[:MAX], layernorm[:EPS], linear:N[:nobias], gelu, gelu_tanh,
 * attention:HEADS[:causal][:dropoutR][:nobias], and one item that makes a
 * whole pre-norm transformer block of width D out of the others:
 *   transformer:D:HEADS[:mlpM][:causal][:dropoutR]
 *     r = x + attention(layernorm(x)),  y = r + linear:D(gelu(linear:M(
 *     layernorm(r)))), M = 4 D by default; R > 0 adds dropout on the
 *     attention weights and on both branches before their sums.
 * It reads one node like a layer item (NAME= names its last node) and
 * prints back as its layers. A character-level GPT:
 *   input:128,embedding:256:128,positional,transformer:128:4:causal,
 *   transformer:128:4:causal,transformer:128:4:causal,
 *   transformer:128:4:causal,layernorm,linear:256
 * Graphs (since 1.3.0; see graph models above). The full grammar:
 *   spec  := item (',' item)*     commas inside parentheses separate REFs
 *   item  := [NAME '='] body ['(' REF (',' REF)* ')']
 *   body  := 'input:' DIMS        a model input of per-sample shape DIMS,
 *                                 1 to 7 integers joined by 'x' (1x28x28,
 *                                 8); never with REFs
 *          | any item above (dense:10, relu, conv:..., last, ...)
 *          | add | multiply | concat[:AXIS]   merge items (AXIS as in
 *                                 nnlib_concat_create, -1 for the last)
 *   NAME  := [A-Za-z_][A-Za-z0-9_]*, 1 to 31 characters; REF := NAME
 * Whitespace is allowed only around items. NAME= names the node the item
 * makes; names are unique in the model, and a name given by an earlier
 * add_spec call on the same model can be referenced. A layer item without
 * REFs reads the node of the item before it; the first item of the text
 * reads the model's newest node (a new implicit input when the model is
 * empty, exactly as nnlib_model_add). With REFs it reads the named nodes,
 * in order: a merge item two or more, any other item exactly one. `last`
 * makes no node: it takes no NAME and no REFs. The model's output is the
 * last item's node. A residual block and a two-input model:
 *   x=input:16x8x8,conv:16x3x3:p1,relu,c=conv:16x3x3:p1,add(x,c),relu
 *   img=input:1x28x28,vec=input:4,conv:8x3x3:p1(img),relu,flatten,
 *   f=dense:32,concat(f,vec),dense:10
 * A REF may only name a node made before it (an earlier item or call), so
 * cycles cannot be written. NNLIB_ERR_PARSE, with the item number, the
 * column and the offending name, for: a REF no earlier item defines, a
 * NAME used twice, a malformed NAME or REF, REFs on an input or on `last`,
 * a merge item with fewer than two REFs, another item with more than one,
 * unbalanced parentheses. Shapes that do not match are found by compile.
 * On any failure the model is left exactly as before the call. Statuses:
 * NNLIB_ERR_INVALID_ARGUMENT (NULL), NNLIB_ERR_WRONG_STATE (compiled),
 * NNLIB_ERR_PARSE (every problem of the text, layer arguments out of range
 * included), NNLIB_ERR_OUT_OF_MEMORY. */
NNLIB_API nnlib_status nnlib_model_add_spec(nnlib_model *model,
                                            const char *spec);
/* Writes the description of the model (the inverse of add_spec) into buf
 * (NUL-terminated, truncated to capacity); *needed receives the length
 * without the NUL. A chain model (one input, every layer reading the one
 * before, built by nnlib_model_add or 1.2 descriptions) prints its layers
 * only, exactly as 1.2 did, also when its input was declared
 * (nnlib_model_input, an input item, an ONNX import): the text then
 * leaves the input's shape out, and the parsed model compiles with
 * nnlib_model_compile and that shape. Any other graph prints every input as
 * NAME=input:DIMS and every node in the order made; a node gets NAME= (its
 * own name, else an invented one such as n3 that no node of the model
 * uses) when an item with REFs reads it, and an item gets (REFS) when it
 * does not read exactly the previous item's node. Parsing the text builds
 * the same graph (for a chain, up to the input's declared shape), which
 * prints the same text. NNLIB_ERR_INVALID_ARGUMENT
 * for a NULL model, or a NULL buf with capacity > 0 (buf NULL with
 * capacity 0 asks for *needed only); NNLIB_ERR_UNSUPPORTED when the output
 * (nnlib_model_set_output) is not the newest node, or the implicit input
 * is read by a node other than the first layer. */
NNLIB_API nnlib_status nnlib_model_get_spec(const nnlib_model *model,
                                            char *buf, size_t capacity,
                                            size_t *needed);

/* Replaces the optimizer of a compiled model (the model takes it, also on
 * failure), e.g. to train a loaded model further. The new optimizer's state
 * starts fresh; passing the model's current optimizer changes nothing.
 * NNLIB_ERR_INVALID_ARGUMENT for a NULL model or optimizer or a model
 * compiled without a loss, NNLIB_ERR_WRONG_STATE for an uncompiled model,
 * NNLIB_ERR_OUT_OF_MEMORY (the optimizer's state; the model keeps its old
 * optimizer). */
NNLIB_API nnlib_status nnlib_model_set_optimizer(nnlib_model *model,
                                                 nnlib_optimizer *optimizer);

/* ------------------------------------------------------------ model files */

/* Save flags. */
#define NNLIB_SAVE_OPTIMIZER 1u /* also the optimizer and its state (step
                                   count, moments), so training resumes
                                   bit-identically; ignored for a model
                                   without an optimizer */

/* The newest model-file format version this library writes and reads
 * (docs/FILE_FORMAT.md): 2 stores a graph. A chain model (one input, every
 * layer reading the one before, no node names; every model of 1.0 to 1.2)
 * is still written as version 1, which nnlib 1.0 to 1.2 read; every other
 * model as version 2, and a file that keeps an optimizer with
 * warmup_steps as version 3 (version 2 plus that field; since 1.4.0). Since 1.4.0 (2 in
 * 1.3, 1 before). */
#define NNLIB_FILE_FORMAT_VERSION 3

/* Writes a compiled model to `path` (extension .nnl by convention) in the
 * format of docs/FILE_FORMAT.md. Atomic: the data goes to a temporary file
 * in the same directory that is renamed over `path` only when complete, so
 * a failed save leaves any previous file intact. flags: 0 or
 * NNLIB_SAVE_OPTIMIZER. NNLIB_ERR_INVALID_ARGUMENT for NULL, an empty path
 * or unknown flags, NNLIB_ERR_WRONG_STATE before compile,
 * NNLIB_ERR_TOO_LARGE for more layers or inputs than a file holds,
 * NNLIB_ERR_IO (creating, writing, syncing or renaming; the message names
 * the path and the reason), NNLIB_ERR_OUT_OF_MEMORY. */
NNLIB_API nnlib_status nnlib_model_save(const nnlib_model *model,
                                        const char *path, unsigned flags);
/* The same bytes into a new buffer: *data (the caller frees it with
 * nnlib_free) of *size bytes. Since 1.3.0 (before: nnlib_model_save_buffer,
 * with the outputs last). NNLIB_ERR_INVALID_ARGUMENT for NULL or unknown
 * flags, NNLIB_ERR_WRONG_STATE before compile, NNLIB_ERR_TOO_LARGE as for
 * nnlib_model_save, NNLIB_ERR_OUT_OF_MEMORY. */
NNLIB_API nnlib_status nnlib_model_save_to_buffer(void **data, size_t *size,
                                                  const nnlib_model *model,
                                                  unsigned flags);
/* Reads a model file and returns a compiled model (same input shape, maximum
 * batch, loss and, if saved, optimizer) into *out, which the caller owns
 * (nnlib_model_free). Every byte is validated before any model is built;
 * the message names the path: NNLIB_ERR_IO (opening or reading, or not a
 * regular file), NNLIB_ERR_BAD_MAGIC, NNLIB_ERR_TRUNCATED,
 * NNLIB_ERR_CHECKSUM, NNLIB_ERR_UNSUPPORTED_VERSION,
 * NNLIB_ERR_CORRUPT_FILE, NNLIB_ERR_SHAPE_MISMATCH, NNLIB_ERR_TOO_LARGE,
 * NNLIB_ERR_OUT_OF_MEMORY; NNLIB_ERR_INVALID_ARGUMENT for NULL. */
NNLIB_API nnlib_status nnlib_model_load(nnlib_model **out, const char *path);
/* nnlib_model_load from `size` bytes at `data` (borrowed for the call; the
 * model copies what it keeps). Statuses as nnlib_model_load without
 * NNLIB_ERR_IO: NNLIB_ERR_INVALID_ARGUMENT (NULL out, NULL data with size >
 * 0), NNLIB_ERR_BAD_MAGIC, NNLIB_ERR_TRUNCATED, NNLIB_ERR_CHECKSUM,
 * NNLIB_ERR_UNSUPPORTED_VERSION, NNLIB_ERR_CORRUPT_FILE,
 * NNLIB_ERR_SHAPE_MISMATCH, NNLIB_ERR_TOO_LARGE, NNLIB_ERR_OUT_OF_MEMORY. */
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
 * Statuses as nnlib_model_load_buffer (NNLIB_ERR_INVALID_ARGUMENT,
 * NNLIB_ERR_BAD_MAGIC, NNLIB_ERR_TRUNCATED, NNLIB_ERR_CHECKSUM,
 * NNLIB_ERR_CORRUPT_FILE, NNLIB_ERR_TOO_LARGE), plus NNLIB_ERR_STRUCT_SIZE
 * for a struct_size below sizeof(size_t); on
 * NNLIB_ERR_UNSUPPORTED_VERSION format_version is still filled. Thread-safe.
 */
NNLIB_API nnlib_status nnlib_model_file_get_info(const void *data, size_t size,
                                                 nnlib_model_file_info *info);

/* ------------------------------------------------------------------- data */

/* IDX (MNIST-family) files, plain or gzip-compressed (detected by content).
 * Images: an idx3 file of unsigned bytes -> [N, rows, cols] floats in [0, 1].
 * Labels: an idx1 file of unsigned bytes -> [N] class indices stored as
 * floats (one_hot = 0) or [N, num_classes] one-hot rows (one_hot = 1).
 * limit > 0 reads only the first `limit` items; 0 reads them all. The new
 * tensor goes to *out and belongs to the caller (nnlib_tensor_free).
 * Failures name the file. */
/* The images of an idx3 file. NNLIB_ERR_INVALID_ARGUMENT for NULL or
 * limit < 0, NNLIB_ERR_IO (opening, reading, gzip), NNLIB_ERR_BAD_MAGIC,
 * NNLIB_ERR_UNSUPPORTED (an element type or rank other than unsigned bytes
 * and 3), NNLIB_ERR_TOO_LARGE (dimension products), NNLIB_ERR_TRUNCATED,
 * NNLIB_ERR_CORRUPT_FILE (trailing bytes), NNLIB_ERR_OUT_OF_MEMORY. */
NNLIB_API nnlib_status nnlib_idx_load_images(nnlib_tensor **out,
                                             const char *path, int64_t limit);
/* The labels of an idx1 file. Statuses as nnlib_idx_load_images
 * (NNLIB_ERR_INVALID_ARGUMENT also for num_classes < 1 or one_hot not 0 or
 * 1; NNLIB_ERR_IO, NNLIB_ERR_BAD_MAGIC, NNLIB_ERR_UNSUPPORTED,
 * NNLIB_ERR_TOO_LARGE, NNLIB_ERR_TRUNCATED, NNLIB_ERR_CORRUPT_FILE,
 * NNLIB_ERR_OUT_OF_MEMORY), plus NNLIB_ERR_OUT_OF_RANGE for a label >=
 * num_classes. */
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
 * images [N, rows, cols] in [0, 1] into *images and labels for 10 classes
 * as with nnlib_idx_load_labels into *labels; the caller owns both
 * (nnlib_tensor_free), and on failure both are NULL. Since 1.3.0 (before:
 * nnlib_dataset_load, with the outputs last). NNLIB_ERR_INVALID_ARGUMENT
 * for NULL outputs, an unknown split, limit < 0 or one_hot not 0 or 1;
 * NNLIB_ERR_IO when neither name.gz nor name exists, and the statuses of
 * nnlib_idx_load_labels (NNLIB_ERR_BAD_MAGIC, NNLIB_ERR_UNSUPPORTED,
 * NNLIB_ERR_TOO_LARGE, NNLIB_ERR_TRUNCATED, NNLIB_ERR_CORRUPT_FILE,
 * NNLIB_ERR_OUT_OF_RANGE, NNLIB_ERR_OUT_OF_MEMORY);
 * NNLIB_ERR_SHAPE_MISMATCH when the image and label counts differ. */
NNLIB_API nnlib_status nnlib_dataset_load_split(nnlib_tensor **images,
                                                nnlib_tensor **labels,
                                                const char *dir,
                                                nnlib_split split,
                                                int64_t limit, int one_hot);

/* ------------------------------------------------------------ text data */

/* A text corpus as a sequence of byte tokens (vocabulary 256), split in two
 * at a fixed point: the first (1 - valid_fraction) of the concatenated
 * bytes for training, the rest for validation (since 1.4.0). */
typedef struct nnlib_text nnlib_text;

typedef enum nnlib_text_split {
  NNLIB_TEXT_TRAIN = 0,
  NNLIB_TEXT_VALID = 1
} nnlib_text_split;

/* Reads `count` paths into *out: a regular file is read whole, a directory
 * contributes its regular files (not subdirectories, not names starting
 * with '.', and not fortune's index files ending in ".dat"), in byte order
 * of their names; the paths' bytes are concatenated in the order given.
 * valid_fraction in [0, 1) (0.1: the last 10% validate); the generator
 * that draws training windows is seeded with `seed`. Statuses:
 * NNLIB_ERR_INVALID_ARGUMENT (NULL, count 0, a fraction outside [0, 1)),
 * NNLIB_ERR_IO (a path that cannot be opened or read, or that names no
 * file at all), NNLIB_ERR_TOO_LARGE (above 2^31 - 1 bytes),
 * NNLIB_ERR_OUT_OF_MEMORY. On failure *out is NULL. */
NNLIB_API nnlib_status nnlib_text_load(nnlib_text **out,
                                       const char *const *paths, size_t count,
                                       double valid_fraction, uint64_t seed);
/* The same over caller bytes (copied; size 0 gives an empty text).
 * NNLIB_ERR_INVALID_ARGUMENT (NULL out, NULL bytes with size > 0, a
 * fraction outside [0, 1)), NNLIB_ERR_TOO_LARGE, NNLIB_ERR_OUT_OF_MEMORY. */
NNLIB_API nnlib_status nnlib_text_from_bytes(nnlib_text **out,
                                             const void *bytes, size_t size,
                                             double valid_fraction,
                                             uint64_t seed);
/* Frees a text; NULL is a no-op. */
NNLIB_API void nnlib_text_free(nnlib_text *text);
/* Bytes in a split; 0 for NULL or an unknown split. */
NNLIB_API int64_t nnlib_text_get_size(const nnlib_text *text,
                                      nnlib_text_split split);
/* The bytes of a split, borrowed from the text. */
NNLIB_API const uint8_t *nnlib_text_get_bytes(const nnlib_text *text,
                                              nnlib_text_split split);
/* Fills x and y, int32 tensors [B, T], with B training windows of T + 1
 * consecutive bytes: x the first T, y the last T (the next byte of each).
 * Each window starts at an offset drawn uniformly from the text's seeded
 * generator, which advances: the same seed gives the same batches.
 * NNLIB_ERR_INVALID_ARGUMENT (NULL), NNLIB_ERR_DTYPE (not int32),
 * NNLIB_ERR_SHAPE_MISMATCH (x and y not both [B, T]), NNLIB_ERR_TOO_LARGE
 * (the split holds fewer than T + 1 bytes; the message says how many). */
NNLIB_API nnlib_status nnlib_text_sample(nnlib_text *text,
                                         nnlib_text_split split,
                                         nnlib_tensor *x, nnlib_tensor *y);
/* The number of windows nnlib_text_window reads from a split at context T:
 * floor((size - 1) / T), so that consecutive windows predict every byte
 * after the first exactly once but the last (size - 1) mod T. */
NNLIB_API int64_t nnlib_text_window_count(const nnlib_text *text,
                                          nnlib_text_split split,
                                          int64_t context);
/* Fills x and y [B, T] with windows first .. first + B - 1 of the split
 * (window i starts at byte i T); statuses as nnlib_text_sample, plus
 * NNLIB_ERR_OUT_OF_RANGE for windows past the end. */
NNLIB_API nnlib_status nnlib_text_window(const nnlib_text *text,
                                         nnlib_text_split split, int64_t first,
                                         nnlib_tensor *x, nnlib_tensor *y);

/* ----------------------------------------------------------- generation */

/* Sampling options of nnlib_model_generate (since 1.4.0). */
typedef struct nnlib_generate_options {
  size_t struct_size;
  float temperature; /* default 1; logits are divided by it, must be > 0  */
  int64_t top_k;     /* default 0: every token; k > 0: the k likeliest     */
  uint64_t seed;     /* default 1: same seed, same tokens                  */
  int use_cache;     /* default 1: keep each layer's keys and values (and
                        recurrent state) so that a new token costs one
                        position; 0: re-run the whole window per token    */
} nnlib_generate_options;
/* Fills the caller's options (of struct_size bytes) with the defaults.
 * NNLIB_ERR_INVALID_ARGUMENT for NULL, NNLIB_ERR_STRUCT_SIZE below
 * sizeof(size_t). */
NNLIB_API nnlib_status
nnlib_generate_options_init_size(nnlib_generate_options *options,
                                 size_t struct_size);
#define nnlib_generate_options_init(o)                                         \
  nnlib_generate_options_init_size((o), sizeof *(o))
/* Continues `prompt` (prompt_length >= 1 token ids) by `count` tokens into
 * out[0 .. count), sampling each from softmax(logits / temperature) over
 * the top_k likeliest tokens, drawn from a generator seeded with
 * options->seed. The model is compiled, has one int32 input [T] and its
 * output holds logits [T, V] (a language model: position t predicts token
 * t + 1), V no more than the ids its embeddings read. With the cache, the
 * prompt runs once and then every token one position; when the context T is
 * full, the newest T/2 tokens are run again from position 0 and generation goes
 * on from there. Without it, every token re-runs the newest T tokens whole.
 * Either way the same seed gives the same tokens, and the model's own state
 * (parameters, training workspaces) is not changed: generation may not run at
 * the same time as training calls on the model. Statuses:
 * NNLIB_ERR_INVALID_ARGUMENT (NULL; an empty prompt; count < 0; a temperature
 * <= 0, infinite or NaN; top_k < 0; use_cache not 0 or 1),
 * NNLIB_ERR_STRUCT_SIZE (options->struct_size), NNLIB_ERR_WRONG_STATE (not
 * compiled), NNLIB_ERR_UNSUPPORTED (a model that is not a language model as
 * above, logits over more tokens than an embedding of the model reads, or a
 * layer that cannot run one position at a time, named), NNLIB_ERR_TOO_LARGE (a
 * prompt longer than T), NNLIB_ERR_OUT_OF_RANGE (a prompt id outside the
 * vocabulary), NNLIB_ERR_OUT_OF_MEMORY. */
NNLIB_API nnlib_status nnlib_model_generate(nnlib_model *model,
                                            const int32_t *prompt,
                                            int64_t prompt_length,
                                            int64_t count,
                                            const nnlib_generate_options *options,
                                            int32_t *out);

/* ----------------------------------------------------------------- ONNX */

/* Models in ONNX's format (since 1.4.0). Import reads ONNX files of opsets
 * 1 to 17 whose operators map onto nnlib's layers, as opsets 13 to 17
 * define them; a model of an older opset is read where each of its
 * operators means the same at that opset (docs/ONNX.md lists the
 * operators, their attributes, the opsets and what is refused). Export
 * writes opset 17, IR version 8, with the weights as initializers. */

/* What an imported model is compiled with. */
typedef struct nnlib_onnx_options {
  size_t struct_size;
  int64_t max_batch;          /* default 64: the compiled maximum batch     */
  nnlib_loss loss;            /* default NNLIB_LOSS_NONE (inference only);
                                 another loss makes the model trainable     */
  nnlib_optimizer *optimizer; /* default NULL: plain SGD when a loss is set;
                                 taken by the model, also on failure        */
  uint64_t seed;              /* default 1: the model's generator (dropout) */
  const char *output;         /* default NULL: the graph's only output; else
                                 the name of the graph output the model
                                 computes (since 1.5.0): only the nodes it
                                 needs are imported, the other outputs are
                                 not computed. Read during the call only. */
  int whole_sample;           /* default 0: ONNX's axis 0 of every graph
                                 input is the batch. 1 (since 1.6.0): each
                                 graph input, with its static shape, is one
                                 whole sample: the model's per-sample shape
                                 is the input's full ONNX shape and the
                                 model runs a batch of 1 (the caller passes
                                 [1, ...shape]); operators may then mix
                                 ONNX's axis 0 (Gemm's transA, a matrix
                                 bias C, Flatten at any axis, inputs of
                                 rank 1). Every graph input must have a
                                 fully static shape. The output is [1,
                                 ...ONNX's output shape]; operators that
                                 read axis 0 as a batch (Conv, pools,
                                 BatchNormalization, LSTM, GRU, RNN) are
                                 refused.                                   */
} nnlib_onnx_options;
/* Fills the caller's options (of struct_size bytes) with the defaults.
 * NNLIB_ERR_INVALID_ARGUMENT for NULL, NNLIB_ERR_STRUCT_SIZE below
 * sizeof(size_t). */
NNLIB_API nnlib_status nnlib_onnx_options_init_size(nnlib_onnx_options *options,
                                                   size_t struct_size);
#define nnlib_onnx_options_init(o)                                             \
  nnlib_onnx_options_init_size((o), sizeof *(o))
/* Reads an ONNX model from `path` into *out, compiled with `options` (NULL:
 * the defaults): an ordinary nnlib model (predict, fit, save as .nnl,
 * export again). Its inputs are the graph inputs without an initializer,
 * in the graph's order, batch first: the first axis of each is the batch,
 * except for a time-major sequence [T, batch, F] that only LSTM, GRU or
 * RNN nodes of layout 0 read as their X, which the model takes batch first
 * as [batch, T, F] (samples [T, F]). Its output is options->output (or the
 * only graph output), also batch first: a layout-0 recurrent Y [T, 1,
 * batch, H] is given as [batch, T, H] and Y_h [1, batch, H] as [batch, H]
 * (the same values, the batch axis moved first). With
 * options->whole_sample 1 nothing is a batch axis: each input's sample is
 * its whole ONNX shape and the model runs a batch of 1 (see the field).
 * Statuses: NNLIB_ERR_INVALID_ARGUMENT (NULL, max_batch
 * < 1, a loss that is no nnlib_loss, an optimizer with loss
 * NNLIB_LOSS_NONE, whole_sample other than 0 or 1: all before the file is
 * read; an output that is not a graph output, named),
 * NNLIB_ERR_STRUCT_SIZE (options->struct_size),
 * NNLIB_ERR_IO (a path that cannot be read or is not a regular file),
 * NNLIB_ERR_CORRUPT_FILE (bytes that are not a well-formed
 * ONNX model: a length or count past the end, a graph with no output, a
 * name nothing produces, a name two nodes produce, a cycle, an
 * initializer shorter than its dims),
 * NNLIB_ERR_UNSUPPORTED_VERSION (an opset above 17 or missing, or an
 * operator whose definition at the model's opset nnlib does not read,
 * named with its node),
 * NNLIB_ERR_UNSUPPORTED (an operator, attribute or input nnlib does not
 * map, named with its node; external data; several graph outputs and no
 * options->output; an output nnlib does not compute, such as
 * LayerNormalization's Mean; with whole_sample, a graph input axis that
 * is symbolic, named with the input), NNLIB_ERR_TOO_LARGE (dims
 * whose product overflows, the nonzero ones also in a tensor of no
 * elements), NNLIB_ERR_SHAPE_MISMATCH,
 * NNLIB_ERR_OUT_OF_MEMORY. On failure *out is NULL and nothing else
 * changed. */
NNLIB_API nnlib_status nnlib_model_load_onnx(nnlib_model **out,
                                             const char *path,
                                             const nnlib_onnx_options *options);
/* The same from `size` bytes in memory. Statuses as nnlib_model_load_onnx
 * (without NNLIB_ERR_IO). */
NNLIB_API nnlib_status
nnlib_model_load_onnx_buffer(nnlib_model **out, const void *data, size_t size,
                             const nnlib_onnx_options *options);
/* Writes a compiled model as ONNX (opset 17, IR 8) to `path`, atomically
 * as nnlib_model_save: through a temporary file in the same directory,
 * renamed over `path` only when complete, so a failed save leaves any
 * previous file intact; a path that is a directory or a device is not
 * replaced. Statuses:
 * NNLIB_ERR_INVALID_ARGUMENT (NULL), NNLIB_ERR_WRONG_STATE (not compiled),
 * NNLIB_ERR_UNSUPPORTED (a layer with no ONNX form, named), NNLIB_ERR_IO
 * (creating, writing, syncing or renaming; the message names the path and
 * the reason), NNLIB_ERR_OUT_OF_MEMORY. */
NNLIB_API nnlib_status nnlib_model_save_onnx(const nnlib_model *model,
                                             const char *path);
/* The same into a new buffer (*data, *size; free it with nnlib_free).
 * Statuses as nnlib_model_save_onnx (without NNLIB_ERR_IO). */
NNLIB_API nnlib_status nnlib_model_save_onnx_to_buffer(void **data,
                                                       size_t *size,
                                                       const nnlib_model *model);

/* ---------------------------------------------------- deprecated names */

/* Kept for programs written against 1.0-1.2; each is its replacement under
 * another name or parameter order, and keeps working for all of 1.x. */

/* Deprecated since 1.3.0: nnlib_model_apply_gradients (it acts on a model,
 * not on an optimizer). Statuses as that: NNLIB_ERR_INVALID_ARGUMENT,
 * NNLIB_ERR_WRONG_STATE, NNLIB_ERR_NUMERICAL. */
NNLIB_DEPRECATED("use nnlib_model_apply_gradients")
NNLIB_API nnlib_status nnlib_optimizer_step(nnlib_model *model);
/* Deprecated since 1.3.0: nnlib_layer_get_param_tensor_count (the count of
 * parameter tensors, where nnlib_model_get_param_count counts scalars). */
NNLIB_DEPRECATED("use nnlib_layer_get_param_tensor_count")
NNLIB_API size_t nnlib_layer_get_param_count(const nnlib_layer *layer);
/* Deprecated since 1.3.0: nnlib_model_save_to_buffer(data, size, model,
 * flags), whose outputs come first. Statuses as that:
 * NNLIB_ERR_INVALID_ARGUMENT, NNLIB_ERR_WRONG_STATE, NNLIB_ERR_TOO_LARGE,
 * NNLIB_ERR_OUT_OF_MEMORY. */
NNLIB_DEPRECATED("use nnlib_model_save_to_buffer(data, size, model, flags)")
NNLIB_API nnlib_status nnlib_model_save_buffer(const nnlib_model *model,
                                               unsigned flags, void **data,
                                               size_t *size);
/* Deprecated since 1.3.0: nnlib_dataset_load_split(images, labels, dir,
 * split, limit, one_hot), whose outputs come first. Statuses as that:
 * NNLIB_ERR_INVALID_ARGUMENT, NNLIB_ERR_IO, NNLIB_ERR_SHAPE_MISMATCH and
 * those of nnlib_idx_load_labels. */
NNLIB_DEPRECATED("use nnlib_dataset_load_split(images, labels, dir, ...)")
NNLIB_API nnlib_status nnlib_dataset_load(const char *dir, nnlib_split split,
                                          int64_t limit, int one_hot,
                                          nnlib_tensor **images,
                                          nnlib_tensor **labels);

#ifdef __cplusplus
}
#endif

#endif /* NNLIB_H */
