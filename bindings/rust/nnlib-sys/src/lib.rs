//! Raw declarations of `include/nnlib.h`, the C ABI of libnnlib.so.1.
//!
//! Written by hand to match the header exactly, in its order; the test
//! `tests/header.rs` parses the header and fails on any difference in a
//! function's name, parameter or result types, an enum value, a constant or
//! a struct's fields. C enums are `c_int` aliases with constants (a Rust
//! `enum` would be undefined behaviour for a value the library adds later).
//!
//! Everything here is `unsafe` and follows the header's rules; the `nnlib`
//! crate is the safe wrapper.
#![allow(non_camel_case_types)]

use std::marker::{PhantomData, PhantomPinned};
pub use std::os::raw::c_void;
use std::os::raw::{c_char, c_int, c_uint};

macro_rules! opaque {
    ($($name:ident),*) => {$(
        /// An opaque handle type of the C library; only used behind pointers.
        #[repr(C)]
        pub struct $name {
            _private: [u8; 0],
            _marker: PhantomData<(*mut u8, PhantomPinned)>,
        }
    )*};
}

// ------------------------------------------------------------------ version

pub const NNLIB_VERSION_MAJOR: c_uint = 1;
pub const NNLIB_VERSION_MINOR: c_uint = 7;
pub const NNLIB_VERSION_PATCH: c_uint = 0;
pub const NNLIB_VERSION_NUMBER: c_uint =
    NNLIB_VERSION_MAJOR * 10000 + NNLIB_VERSION_MINOR * 100 + NNLIB_VERSION_PATCH;

// ------------------------------------------------------------------- status

pub type nnlib_status = c_int;
pub const NNLIB_OK: nnlib_status = 0;
pub const NNLIB_ERR_INVALID_ARGUMENT: nnlib_status = -1;
pub const NNLIB_ERR_OUT_OF_MEMORY: nnlib_status = -2;
pub const NNLIB_ERR_SHAPE_MISMATCH: nnlib_status = -3;
pub const NNLIB_ERR_UNSUPPORTED: nnlib_status = -4;
pub const NNLIB_ERR_WRONG_STATE: nnlib_status = -5;
pub const NNLIB_ERR_STRUCT_SIZE: nnlib_status = -6;
pub const NNLIB_ERR_TOO_LARGE: nnlib_status = -7;
pub const NNLIB_ERR_IO: nnlib_status = -8;
pub const NNLIB_ERR_CORRUPT_FILE: nnlib_status = -9;
pub const NNLIB_ERR_UNSUPPORTED_VERSION: nnlib_status = -10;
pub const NNLIB_ERR_NUMERICAL: nnlib_status = -11;
pub const NNLIB_ERR_BAD_MAGIC: nnlib_status = -12;
pub const NNLIB_ERR_CHECKSUM: nnlib_status = -13;
pub const NNLIB_ERR_TRUNCATED: nnlib_status = -14;
pub const NNLIB_ERR_CANCELLED: nnlib_status = -15;
pub const NNLIB_ERR_OUT_OF_RANGE: nnlib_status = -16;
pub const NNLIB_ERR_PARSE: nnlib_status = -17;
pub const NNLIB_ERR_INTERNAL: nnlib_status = -18;
/// A tensor of the wrong element type (since 1.4.0).
pub const NNLIB_ERR_DTYPE: nnlib_status = -19;

// ------------------------------------------------------- process-wide state

#[repr(C)]
#[derive(Clone, Copy)]
pub struct nnlib_allocator {
    pub struct_size: usize,
    pub alloc: Option<unsafe extern "C" fn(size: usize, alignment: usize, user: *mut c_void) -> *mut c_void>,
    pub free: Option<unsafe extern "C" fn(ptr: *mut c_void, user: *mut c_void)>,
    pub user: *mut c_void,
}

// ------------------------------------------------------------------- tensor

opaque!(nnlib_tensor);
pub const NNLIB_MAX_RANK: usize = 8;

/// Element types (since 1.4.0).
pub type nnlib_dtype = c_int;
pub const NNLIB_DTYPE_FLOAT32: nnlib_dtype = 0;
pub const NNLIB_DTYPE_INT32: nnlib_dtype = 1;

// ------------------------------------------------------------------- layers

opaque!(nnlib_layer);

pub type nnlib_layer_kind = c_int;
pub const NNLIB_LAYER_DENSE: nnlib_layer_kind = 1;
pub const NNLIB_LAYER_ACTIVATION: nnlib_layer_kind = 2;
pub const NNLIB_LAYER_CONV2D: nnlib_layer_kind = 3;
pub const NNLIB_LAYER_MAXPOOL2D: nnlib_layer_kind = 4;
pub const NNLIB_LAYER_MINPOOL2D: nnlib_layer_kind = 5;
pub const NNLIB_LAYER_AVGPOOL2D: nnlib_layer_kind = 6;
pub const NNLIB_LAYER_GLOBAL_AVGPOOL: nnlib_layer_kind = 7;
pub const NNLIB_LAYER_BATCHNORM: nnlib_layer_kind = 8;
pub const NNLIB_LAYER_DROPOUT: nnlib_layer_kind = 9;
pub const NNLIB_LAYER_FLATTEN: nnlib_layer_kind = 10;
pub const NNLIB_LAYER_RNN: nnlib_layer_kind = 11;
pub const NNLIB_LAYER_LSTM: nnlib_layer_kind = 12;
pub const NNLIB_LAYER_GRU: nnlib_layer_kind = 13;
pub const NNLIB_LAYER_ADD: nnlib_layer_kind = 14;
pub const NNLIB_LAYER_CONCAT: nnlib_layer_kind = 15;
pub const NNLIB_LAYER_MULTIPLY: nnlib_layer_kind = 16;
pub const NNLIB_LAYER_EMBEDDING: nnlib_layer_kind = 17;
pub const NNLIB_LAYER_POSITIONAL: nnlib_layer_kind = 18;
pub const NNLIB_LAYER_LAYERNORM: nnlib_layer_kind = 19;
pub const NNLIB_LAYER_ATTENTION: nnlib_layer_kind = 20;
pub const NNLIB_LAYER_LINEAR: nnlib_layer_kind = 21;
pub const NNLIB_LAYER_TRANSPOSE: nnlib_layer_kind = 22;

pub type nnlib_activation = c_int;
pub const NNLIB_ACT_IDENTITY: nnlib_activation = 0;
pub const NNLIB_ACT_STEP: nnlib_activation = 1;
pub const NNLIB_ACT_SIGMOID: nnlib_activation = 2;
pub const NNLIB_ACT_TANH: nnlib_activation = 3;
pub const NNLIB_ACT_RELU: nnlib_activation = 4;
pub const NNLIB_ACT_LEAKY_RELU: nnlib_activation = 5;
pub const NNLIB_ACT_SOFTPLUS: nnlib_activation = 6;
pub const NNLIB_ACT_SOFTMAX: nnlib_activation = 7;
pub const NNLIB_ACT_GELU: nnlib_activation = 8;
pub const NNLIB_ACT_GELU_TANH: nnlib_activation = 9;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct nnlib_conv2d_options {
    pub struct_size: usize,
    pub in_channels: i64,
    pub stride_h: i64,
    pub stride_w: i64,
    pub padding_h: i64,
    pub padding_w: i64,
    pub dilation_h: i64,
    pub dilation_w: i64,
    pub with_bias: c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct nnlib_pool2d_options {
    pub struct_size: usize,
    pub stride_h: i64,
    pub stride_w: i64,
    pub padding_h: i64,
    pub padding_w: i64,
    /// Since 1.5.0 (-1: padding_h).
    pub padding_bottom: i64,
    /// Since 1.5.0 (-1: padding_w).
    pub padding_right: i64,
    pub dilation_h: i64,
    pub dilation_w: i64,
    pub ceil_mode: c_int,
    pub count_include_pad: c_int,
}

/// Options of nnlib_attention_create (since 1.4.0).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct nnlib_attention_options {
    pub struct_size: usize,
    pub causal: c_int,
    pub dropout: f32,
    pub with_bias: c_int,
}

// --------------------------------------------------------------- optimizers

opaque!(nnlib_optimizer);

pub type nnlib_optimizer_kind = c_int;
pub const NNLIB_OPT_SGD: nnlib_optimizer_kind = 1;
pub const NNLIB_OPT_ADAM: nnlib_optimizer_kind = 2;
pub const NNLIB_OPT_ADAMW: nnlib_optimizer_kind = 3;
pub const NNLIB_OPT_RMSPROP: nnlib_optimizer_kind = 4;

pub type nnlib_schedule = c_int;
pub const NNLIB_SCHEDULE_CONSTANT: nnlib_schedule = 0;
pub const NNLIB_SCHEDULE_STEP: nnlib_schedule = 1;
pub const NNLIB_SCHEDULE_COSINE: nnlib_schedule = 2;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct nnlib_optimizer_options {
    pub struct_size: usize,
    pub kind: nnlib_optimizer_kind,
    pub learning_rate: f32,
    pub momentum: f32,
    pub nesterov: c_int,
    pub weight_decay: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub alpha: f32,
    pub epsilon: f32,
    pub schedule: nnlib_schedule,
    pub step_size: i64,
    pub gamma: f32,
    pub total_steps: i64,
    pub min_learning_rate: f32,
    pub clip_norm: f32,
    /// since 1.4.0
    pub warmup_steps: i64,
}

// -------------------------------------------------------------------- model

opaque!(nnlib_model);

pub type nnlib_loss = c_int;
pub const NNLIB_LOSS_NONE: nnlib_loss = 0;
pub const NNLIB_LOSS_MSE: nnlib_loss = 1;
pub const NNLIB_LOSS_BCE_LOGITS: nnlib_loss = 2;
pub const NNLIB_LOSS_SOFTMAX_CE: nnlib_loss = 3;

opaque!(nnlib_workspace);

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct nnlib_progress {
    pub struct_size: usize,
    pub epoch: i64,
    pub epochs: i64,
    pub batch: i64,
    pub batches: i64,
    pub samples_done: i64,
    pub samples: i64,
    pub loss: f32,
    pub epoch_loss: f32,
}

pub type nnlib_progress_fn =
    Option<unsafe extern "C" fn(progress: *const nnlib_progress, user: *mut c_void) -> c_int>;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct nnlib_fit_options {
    pub struct_size: usize,
    pub epochs: i64,
    pub batch_size: i64,
    pub shuffle: c_int,
    pub progress: nnlib_progress_fn,
    pub user: *mut c_void,
    pub epoch_losses: *mut f32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct nnlib_validation_options {
    pub struct_size: usize,
    pub x: *const nnlib_tensor,
    pub target: *const nnlib_tensor,
    pub losses: *mut f32,
    pub patience: i64,
    pub min_delta: f32,
    pub restore_best: c_int,
    pub epochs_run: *mut i64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct nnlib_layer_profile {
    pub struct_size: usize,
    pub fused: c_int,
    pub forward_calls: i64,
    pub backward_calls: i64,
    pub forward_flops: f64,
    pub backward_flops: f64,
    pub forward_seconds: f64,
    pub backward_seconds: f64,
    pub forward_gflops: f64,
    pub backward_gflops: f64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct nnlib_gradcheck_options {
    pub struct_size: usize,
    pub step: f32,
    pub random_direction: c_int,
    pub seed: u64,
    pub inference: c_int,
}

// ------------------------------------------------------------- graph models

/// A node of a graph model: (model tag << 32) | node index, valid only with
/// the model that made it.
pub type nnlib_node = u64;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct nnlib_node_info {
    pub struct_size: usize,
    pub node: nnlib_node,
    pub name: *const c_char,
    pub layer: *mut nnlib_layer,
    pub layer_index: i64,
    pub input_index: i64,
    pub input_count: usize,
    pub inputs: *const nnlib_node,
    pub rank: usize,
    pub shape: [i64; NNLIB_MAX_RANK],
    pub is_output: c_int,
}

// ------------------------------------------------------ the BLAS underneath

/// since 1.7.0: the vector instructions of a kernel set or of a CPU
pub type nnlib_simd = c_int;
pub const NNLIB_SIMD_UNKNOWN: nnlib_simd = 0;
pub const NNLIB_SIMD_SSE: nnlib_simd = 1;
pub const NNLIB_SIMD_AVX: nnlib_simd = 2;
pub const NNLIB_SIMD_AVX2: nnlib_simd = 3;
pub const NNLIB_SIMD_AVX512: nnlib_simd = 4;

/// since 1.7.0 (an output struct: the caller sets struct_size)
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct nnlib_blas_info {
    pub struct_size: usize,
    pub config: *const c_char,
    pub kernels: *const c_char,
    pub kernels_simd: nnlib_simd,
    pub cpu_simd: nnlib_simd,
    pub kernels_are_fallback: c_int,
    pub suggested_kernels: *const c_char,
}

// -------------------------------------------------------------- model files

pub const NNLIB_SAVE_OPTIMIZER: c_uint = 1;
pub const NNLIB_FILE_FORMAT_VERSION: c_uint = 3;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct nnlib_model_file_info {
    pub struct_size: usize,
    pub format_version: u32,
    pub library_version: u32,
    pub file_size: u64,
    pub loss: nnlib_loss,
    pub input_rank: usize,
    pub input_shape: [i64; NNLIB_MAX_RANK],
    pub max_batch: i64,
    pub seed: u64,
    pub layer_count: i64,
    pub param_count: i64,
    pub has_optimizer: c_int,
    pub optimizer_kind: c_int,
    pub optimizer_steps: i64,
}

// --------------------------------------------------------------------- data

pub type nnlib_split = c_int;
pub const NNLIB_SPLIT_TRAIN: nnlib_split = 0;
pub const NNLIB_SPLIT_TEST: nnlib_split = 1;

// ---------------------------------------------------------------- text data

opaque!(nnlib_text);

/// Since 1.4.0.
pub type nnlib_text_split = c_int;
pub const NNLIB_TEXT_TRAIN: nnlib_text_split = 0;
pub const NNLIB_TEXT_VALID: nnlib_text_split = 1;

// --------------------------------------------------------------- generation

/// Sampling options of nnlib_model_generate (since 1.4.0).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct nnlib_generate_options {
    pub struct_size: usize,
    pub temperature: f32,
    pub top_k: i64,
    pub seed: u64,
    pub use_cache: c_int,
}

// --------------------------------------------------------------------- ONNX

/// What an imported ONNX model is compiled with (since 1.4.0).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct nnlib_onnx_options {
    pub struct_size: usize,
    pub max_batch: i64,
    pub loss: nnlib_loss,
    pub optimizer: *mut nnlib_optimizer,
    pub seed: u64,
    /// since 1.5.0: the graph output to compute (NULL: the only one)
    pub output: *const c_char,
    /// since 1.6.0: 1 reads each graph input, of a fixed shape, as one
    /// whole sample (0: ONNX's axis 0 is the batch)
    pub whole_sample: c_int,
}

// ---------------------------------------------------------------- functions

extern "C" {
    // version
    pub fn nnlib_version() -> c_uint;
    pub fn nnlib_version_string() -> *const c_char;

    // status
    pub fn nnlib_status_string(status: nnlib_status) -> *const c_char;
    pub fn nnlib_last_error_message() -> *const c_char;
    pub fn nnlib_clear_error();

    // process-wide settings
    pub fn nnlib_set_num_threads(n: c_int) -> nnlib_status;
    pub fn nnlib_get_num_threads() -> c_int;
    // 1.7.0
    pub fn nnlib_blas_get_info(info: *mut nnlib_blas_info) -> nnlib_status;
    pub fn nnlib_set_allocator(allocator: *const nnlib_allocator) -> nnlib_status;
    pub fn nnlib_free(ptr: *mut c_void);

    // tensor
    pub fn nnlib_tensor_create(out: *mut *mut nnlib_tensor, shape: *const i64, rank: usize) -> nnlib_status;
    pub fn nnlib_tensor_wrap(out: *mut *mut nnlib_tensor, data: *mut f32, shape: *const i64, rank: usize) -> nnlib_status;
    pub fn nnlib_tensor_free(tensor: *mut nnlib_tensor);
    pub fn nnlib_tensor_get_rank(tensor: *const nnlib_tensor) -> usize;
    pub fn nnlib_tensor_get_dim(tensor: *const nnlib_tensor, axis: usize) -> i64;
    pub fn nnlib_tensor_get_shape(tensor: *const nnlib_tensor) -> *const i64;
    pub fn nnlib_tensor_get_size(tensor: *const nnlib_tensor) -> i64;
    pub fn nnlib_tensor_get_data(tensor: *mut nnlib_tensor) -> *mut f32;
    pub fn nnlib_tensor_get_data_const(tensor: *const nnlib_tensor) -> *const f32;
    pub fn nnlib_tensor_set_shape(tensor: *mut nnlib_tensor, shape: *const i64, rank: usize) -> nnlib_status;
    pub fn nnlib_tensor_fill(tensor: *mut nnlib_tensor, value: f32) -> nnlib_status;
    pub fn nnlib_tensor_copy(dst: *mut nnlib_tensor, src: *const nnlib_tensor) -> nnlib_status;

    // layers
    pub fn nnlib_dense_create(out: *mut *mut nnlib_layer, in_features: i64, out_features: i64, with_bias: c_int) -> nnlib_status;
    pub fn nnlib_activation_create(out: *mut *mut nnlib_layer, kind: nnlib_activation, param: f32) -> nnlib_status;
    pub fn nnlib_conv2d_options_init(options: *mut nnlib_conv2d_options) -> nnlib_status;
    pub fn nnlib_conv2d_create(out: *mut *mut nnlib_layer, out_channels: i64, kernel_h: i64, kernel_w: i64, options: *const nnlib_conv2d_options) -> nnlib_status;
    pub fn nnlib_pool2d_options_init(options: *mut nnlib_pool2d_options) -> nnlib_status;
    pub fn nnlib_pool2d_create(out: *mut *mut nnlib_layer, kind: nnlib_layer_kind, kernel_h: i64, kernel_w: i64, options: *const nnlib_pool2d_options) -> nnlib_status;
    pub fn nnlib_global_avgpool_create(out: *mut *mut nnlib_layer) -> nnlib_status;
    pub fn nnlib_batchnorm_create(out: *mut *mut nnlib_layer, momentum: f32, epsilon: f32) -> nnlib_status;
    pub fn nnlib_dropout_create(out: *mut *mut nnlib_layer, rate: f32) -> nnlib_status;
    pub fn nnlib_flatten_create(out: *mut *mut nnlib_layer) -> nnlib_status;
    pub fn nnlib_rnn_create(out: *mut *mut nnlib_layer, input_size: i64, hidden_size: i64, nonlinearity: nnlib_activation, with_bias: c_int, return_sequences: c_int) -> nnlib_status;
    pub fn nnlib_lstm_create(out: *mut *mut nnlib_layer, input_size: i64, hidden_size: i64, with_bias: c_int, return_sequences: c_int) -> nnlib_status;
    pub fn nnlib_gru_create(out: *mut *mut nnlib_layer, input_size: i64, hidden_size: i64, with_bias: c_int, return_sequences: c_int) -> nnlib_status;
    pub fn nnlib_recurrent_set_initial_state(layer: *mut nnlib_layer, h0: *const f32, c0: *const f32, rows: i64) -> nnlib_status;
    pub fn nnlib_add_create(out: *mut *mut nnlib_layer) -> nnlib_status;
    pub fn nnlib_multiply_create(out: *mut *mut nnlib_layer) -> nnlib_status;
    pub fn nnlib_concat_create(out: *mut *mut nnlib_layer, axis: c_int) -> nnlib_status;
    pub fn nnlib_layer_free(layer: *mut nnlib_layer);
    pub fn nnlib_layer_get_kind(layer: *const nnlib_layer) -> nnlib_layer_kind;
    pub fn nnlib_layer_get_name(layer: *const nnlib_layer) -> *const c_char;
    pub fn nnlib_layer_get_output_shape(layer: *const nnlib_layer, dims: *mut i64, capacity: usize, rank: *mut usize) -> nnlib_status;
    pub fn nnlib_layer_get_param_count(layer: *const nnlib_layer) -> usize;
    pub fn nnlib_layer_get_param(layer: *mut nnlib_layer, index: usize, value: *mut *mut nnlib_tensor, grad: *mut *mut nnlib_tensor) -> nnlib_status;
    pub fn nnlib_layer_get_param_name(layer: *const nnlib_layer, index: usize) -> *const c_char;
    pub fn nnlib_layer_get_buffer_count(layer: *const nnlib_layer) -> usize;
    pub fn nnlib_layer_get_buffer(layer: *mut nnlib_layer, index: usize, value: *mut *mut nnlib_tensor) -> nnlib_status;
    pub fn nnlib_layer_get_buffer_name(layer: *const nnlib_layer, index: usize) -> *const c_char;

    // optimizers
    pub fn nnlib_optimizer_options_init(options: *mut nnlib_optimizer_options, kind: nnlib_optimizer_kind) -> nnlib_status;
    pub fn nnlib_optimizer_create(out: *mut *mut nnlib_optimizer, options: *const nnlib_optimizer_options) -> nnlib_status;
    pub fn nnlib_sgd_create(out: *mut *mut nnlib_optimizer, learning_rate: f32, momentum: f32, nesterov: c_int, weight_decay: f32) -> nnlib_status;
    pub fn nnlib_optimizer_free(optimizer: *mut nnlib_optimizer);
    pub fn nnlib_optimizer_set_learning_rate(optimizer: *mut nnlib_optimizer, learning_rate: f32) -> nnlib_status;
    pub fn nnlib_optimizer_get_learning_rate(optimizer: *const nnlib_optimizer) -> f32;
    pub fn nnlib_optimizer_get_step_count(optimizer: *const nnlib_optimizer) -> i64;
    pub fn nnlib_optimizer_get_options(optimizer: *const nnlib_optimizer, options: *mut nnlib_optimizer_options) -> nnlib_status;

    // model
    pub fn nnlib_model_create(out: *mut *mut nnlib_model) -> nnlib_status;
    pub fn nnlib_model_free(model: *mut nnlib_model);
    pub fn nnlib_model_add(model: *mut nnlib_model, layer: *mut nnlib_layer) -> nnlib_status;
    pub fn nnlib_model_compile(model: *mut nnlib_model, input_shape: *const i64, input_rank: usize, max_batch: i64, loss: nnlib_loss, optimizer: *mut nnlib_optimizer, seed: u64) -> nnlib_status;
    pub fn nnlib_model_get_layer_count(model: *const nnlib_model) -> usize;
    pub fn nnlib_model_get_layer(model: *mut nnlib_model, index: usize) -> *mut nnlib_layer;
    pub fn nnlib_model_get_optimizer(model: *mut nnlib_model) -> *mut nnlib_optimizer;
    pub fn nnlib_model_get_loss(model: *const nnlib_model) -> nnlib_loss;
    pub fn nnlib_model_get_param_count(model: *const nnlib_model, count: *mut i64) -> nnlib_status;
    pub fn nnlib_model_get_input_shape(model: *const nnlib_model, dims: *mut i64, capacity: usize, rank: *mut usize) -> nnlib_status;
    pub fn nnlib_model_get_output_shape(model: *const nnlib_model, dims: *mut i64, capacity: usize, rank: *mut usize) -> nnlib_status;
    pub fn nnlib_model_get_max_batch(model: *const nnlib_model) -> i64;
    pub fn nnlib_model_predict(model: *mut nnlib_model, x: *const nnlib_tensor, y: *mut nnlib_tensor) -> nnlib_status;

    // per-thread inference
    pub fn nnlib_workspace_create(out: *mut *mut nnlib_workspace, model: *const nnlib_model) -> nnlib_status;
    pub fn nnlib_workspace_free(workspace: *mut nnlib_workspace);
    pub fn nnlib_workspace_predict(workspace: *mut nnlib_workspace, x: *const nnlib_tensor, y: *mut nnlib_tensor) -> nnlib_status;

    // training
    pub fn nnlib_model_forward(model: *mut nnlib_model, x: *const nnlib_tensor, output: *mut *const nnlib_tensor) -> nnlib_status;
    pub fn nnlib_model_backward(model: *mut nnlib_model, x: *const nnlib_tensor, target: *const nnlib_tensor, loss: *mut f32) -> nnlib_status;
    pub fn nnlib_model_step(model: *mut nnlib_model, x: *const nnlib_tensor, target: *const nnlib_tensor, loss: *mut f32) -> nnlib_status;
    pub fn nnlib_model_set_check_numerics(model: *mut nnlib_model, on: c_int) -> nnlib_status;
    pub fn nnlib_optimizer_step(model: *mut nnlib_model) -> nnlib_status;
    pub fn nnlib_model_get_flat_params(model: *mut nnlib_model, params: *mut *mut f32, grads: *mut *mut f32, count: *mut i64) -> nnlib_status;
    pub fn nnlib_fit_options_init(options: *mut nnlib_fit_options) -> nnlib_status;
    pub fn nnlib_model_fit(model: *mut nnlib_model, x: *const nnlib_tensor, target: *const nnlib_tensor, options: *const nnlib_fit_options) -> nnlib_status;
    pub fn nnlib_validation_options_init(options: *mut nnlib_validation_options) -> nnlib_status;
    pub fn nnlib_model_fit_validated(model: *mut nnlib_model, x: *const nnlib_tensor, target: *const nnlib_tensor, options: *const nnlib_fit_options, validation: *const nnlib_validation_options) -> nnlib_status;
    pub fn nnlib_model_evaluate(model: *mut nnlib_model, x: *const nnlib_tensor, target: *const nnlib_tensor, loss: *mut f32, accuracy: *mut f32) -> nnlib_status;

    // profile
    pub fn nnlib_model_set_profiling(model: *mut nnlib_model, on: c_int) -> nnlib_status;
    pub fn nnlib_model_get_layer_profile(model: *const nnlib_model, index: usize, out: *mut nnlib_layer_profile) -> nnlib_status;

    // gradient check
    pub fn nnlib_gradcheck_options_init(options: *mut nnlib_gradcheck_options) -> nnlib_status;
    pub fn nnlib_model_gradcheck(model: *mut nnlib_model, x: *const nnlib_tensor, target: *const nnlib_tensor, options: *const nnlib_gradcheck_options, max_rel_error: *mut f64) -> nnlib_status;

    // graph models
    pub fn nnlib_model_input(model: *mut nnlib_model, shape: *const i64, rank: usize, node: *mut nnlib_node) -> nnlib_status;
    pub fn nnlib_model_apply(model: *mut nnlib_model, layer: *mut nnlib_layer, inputs: *const nnlib_node, count: usize, node: *mut nnlib_node) -> nnlib_status;
    pub fn nnlib_model_set_output(model: *mut nnlib_model, node: nnlib_node) -> nnlib_status;
    pub fn nnlib_model_set_node_name(model: *mut nnlib_model, node: nnlib_node, name: *const c_char) -> nnlib_status;
    pub fn nnlib_model_compile_graph(model: *mut nnlib_model, max_batch: i64, loss: nnlib_loss, optimizer: *mut nnlib_optimizer, seed: u64) -> nnlib_status;
    pub fn nnlib_model_get_input_count(model: *const nnlib_model) -> usize;
    pub fn nnlib_model_get_node_count(model: *const nnlib_model) -> usize;
    pub fn nnlib_model_get_node(model: *const nnlib_model, index: usize, info: *mut nnlib_node_info) -> nnlib_status;
    pub fn nnlib_model_get_input_shape_at(model: *const nnlib_model, input: usize, dims: *mut i64, capacity: usize, rank: *mut usize) -> nnlib_status;
    pub fn nnlib_model_get_input_dtype(model: *const nnlib_model, input: usize, dtype: *mut nnlib_dtype) -> nnlib_status;
    pub fn nnlib_model_predict_inputs(model: *mut nnlib_model, inputs: *const *const nnlib_tensor, count: usize, y: *mut nnlib_tensor) -> nnlib_status;
    pub fn nnlib_workspace_predict_inputs(workspace: *mut nnlib_workspace, inputs: *const *const nnlib_tensor, count: usize, y: *mut nnlib_tensor) -> nnlib_status;
    pub fn nnlib_model_forward_inputs(model: *mut nnlib_model, inputs: *const *const nnlib_tensor, count: usize, output: *mut *const nnlib_tensor) -> nnlib_status;
    pub fn nnlib_model_backward_inputs(model: *mut nnlib_model, inputs: *const *const nnlib_tensor, count: usize, target: *const nnlib_tensor, loss: *mut f32) -> nnlib_status;
    pub fn nnlib_model_step_inputs(model: *mut nnlib_model, inputs: *const *const nnlib_tensor, count: usize, target: *const nnlib_tensor, loss: *mut f32) -> nnlib_status;
    pub fn nnlib_model_evaluate_inputs(model: *mut nnlib_model, inputs: *const *const nnlib_tensor, count: usize, target: *const nnlib_tensor, loss: *mut f32, accuracy: *mut f32) -> nnlib_status;
    pub fn nnlib_model_fit_inputs(model: *mut nnlib_model, inputs: *const *const nnlib_tensor, count: usize, target: *const nnlib_tensor, options: *const nnlib_fit_options, validation: *const nnlib_validation_options, validation_inputs: *const *const nnlib_tensor) -> nnlib_status;
    pub fn nnlib_model_gradcheck_inputs(model: *mut nnlib_model, inputs: *const *const nnlib_tensor, count: usize, target: *const nnlib_tensor, options: *const nnlib_gradcheck_options, max_rel_error: *mut f64) -> nnlib_status;
    pub fn nnlib_model_set_input_gradients(model: *mut nnlib_model, on: c_int) -> nnlib_status;
    pub fn nnlib_model_get_input_gradient(model: *mut nnlib_model, input: usize, grad: *mut *const nnlib_tensor) -> nnlib_status;
    pub fn nnlib_model_backward_output(model: *mut nnlib_model, output_grad: *const nnlib_tensor) -> nnlib_status;

    // model description text
    pub fn nnlib_model_add_spec(model: *mut nnlib_model, spec: *const c_char) -> nnlib_status;
    pub fn nnlib_model_get_spec(model: *const nnlib_model, buf: *mut c_char, capacity: usize, needed: *mut usize) -> nnlib_status;
    pub fn nnlib_model_set_optimizer(model: *mut nnlib_model, optimizer: *mut nnlib_optimizer) -> nnlib_status;

    // model files
    pub fn nnlib_model_save(model: *const nnlib_model, path: *const c_char, flags: c_uint) -> nnlib_status;
    pub fn nnlib_model_save_buffer(model: *const nnlib_model, flags: c_uint, data: *mut *mut c_void, size: *mut usize) -> nnlib_status;
    pub fn nnlib_model_load(out: *mut *mut nnlib_model, path: *const c_char) -> nnlib_status;
    pub fn nnlib_model_load_buffer(out: *mut *mut nnlib_model, data: *const c_void, size: usize) -> nnlib_status;
    pub fn nnlib_model_file_get_info(data: *const c_void, size: usize, info: *mut nnlib_model_file_info) -> nnlib_status;

    // data
    pub fn nnlib_idx_load_images(out: *mut *mut nnlib_tensor, path: *const c_char, limit: i64) -> nnlib_status;
    pub fn nnlib_idx_load_labels(out: *mut *mut nnlib_tensor, path: *const c_char, num_classes: i64, one_hot: c_int, limit: i64) -> nnlib_status;
    pub fn nnlib_dataset_default_dir() -> *const c_char;
    pub fn nnlib_dataset_load(dir: *const c_char, split: nnlib_split, limit: i64, one_hot: c_int, images: *mut *mut nnlib_tensor, labels: *mut *mut nnlib_tensor) -> nnlib_status;

    // 1.3.0: the names that replace the deprecated ones above, and option
    // initialisation for the caller's struct size
    pub fn nnlib_model_apply_gradients(model: *mut nnlib_model) -> nnlib_status;
    pub fn nnlib_layer_get_param_tensor_count(layer: *const nnlib_layer) -> usize;
    pub fn nnlib_model_save_to_buffer(data: *mut *mut c_void, size: *mut usize, model: *const nnlib_model, flags: c_uint) -> nnlib_status;
    pub fn nnlib_dataset_load_split(images: *mut *mut nnlib_tensor, labels: *mut *mut nnlib_tensor, dir: *const c_char, split: nnlib_split, limit: i64, one_hot: c_int) -> nnlib_status;
    pub fn nnlib_conv2d_options_init_size(options: *mut nnlib_conv2d_options, struct_size: usize) -> nnlib_status;
    pub fn nnlib_pool2d_options_init_size(options: *mut nnlib_pool2d_options, struct_size: usize) -> nnlib_status;
    pub fn nnlib_optimizer_options_init_size(options: *mut nnlib_optimizer_options, kind: nnlib_optimizer_kind, struct_size: usize) -> nnlib_status;
    pub fn nnlib_fit_options_init_size(options: *mut nnlib_fit_options, struct_size: usize) -> nnlib_status;
    pub fn nnlib_validation_options_init_size(options: *mut nnlib_validation_options, struct_size: usize) -> nnlib_status;
    pub fn nnlib_gradcheck_options_init_size(options: *mut nnlib_gradcheck_options, struct_size: usize) -> nnlib_status;

    // 1.4.0: int32 tensors
    pub fn nnlib_tensor_create_int32(out: *mut *mut nnlib_tensor, shape: *const i64, rank: usize) -> nnlib_status;
    pub fn nnlib_tensor_wrap_int32(out: *mut *mut nnlib_tensor, data: *mut i32, shape: *const i64, rank: usize) -> nnlib_status;
    pub fn nnlib_tensor_get_dtype(tensor: *const nnlib_tensor) -> nnlib_dtype;
    pub fn nnlib_tensor_get_data_int32(tensor: *mut nnlib_tensor) -> *mut i32;
    pub fn nnlib_tensor_get_data_int32_const(tensor: *const nnlib_tensor) -> *const i32;

    // 1.4.0: text layers
    pub fn nnlib_embedding_create(out: *mut *mut nnlib_layer, vocab_size: i64, dim: i64) -> nnlib_status;
    pub fn nnlib_positional_create(out: *mut *mut nnlib_layer, max_positions: i64) -> nnlib_status;
    pub fn nnlib_layernorm_create(out: *mut *mut nnlib_layer, eps: f32, with_affine: c_int) -> nnlib_status;
    pub fn nnlib_linear_create(out: *mut *mut nnlib_layer, out_features: i64, with_bias: c_int) -> nnlib_status;
    pub fn nnlib_attention_options_init_size(options: *mut nnlib_attention_options, struct_size: usize) -> nnlib_status;
    pub fn nnlib_attention_create(out: *mut *mut nnlib_layer, heads: i64, options: *const nnlib_attention_options) -> nnlib_status;

    // 1.6.0: the transpose layer
    pub fn nnlib_transpose_create(out: *mut *mut nnlib_layer, perm: *const i64, rank: usize) -> nnlib_status;

    // 1.4.0: text data
    pub fn nnlib_text_load(out: *mut *mut nnlib_text, paths: *const *const c_char, count: usize, valid_fraction: f64, seed: u64) -> nnlib_status;
    pub fn nnlib_text_from_bytes(out: *mut *mut nnlib_text, bytes: *const c_void, size: usize, valid_fraction: f64, seed: u64) -> nnlib_status;
    pub fn nnlib_text_free(text: *mut nnlib_text);
    pub fn nnlib_text_get_size(text: *const nnlib_text, split: nnlib_text_split) -> i64;
    pub fn nnlib_text_get_bytes(text: *const nnlib_text, split: nnlib_text_split) -> *const u8;
    pub fn nnlib_text_sample(text: *mut nnlib_text, split: nnlib_text_split, x: *mut nnlib_tensor, y: *mut nnlib_tensor) -> nnlib_status;
    pub fn nnlib_text_window_count(text: *const nnlib_text, split: nnlib_text_split, context: i64) -> i64;
    pub fn nnlib_text_window(text: *const nnlib_text, split: nnlib_text_split, first: i64, x: *mut nnlib_tensor, y: *mut nnlib_tensor) -> nnlib_status;

    // 1.4.0: generation
    pub fn nnlib_generate_options_init_size(options: *mut nnlib_generate_options, struct_size: usize) -> nnlib_status;
    pub fn nnlib_model_generate(model: *mut nnlib_model, prompt: *const i32, prompt_length: i64, count: i64, options: *const nnlib_generate_options, out: *mut i32) -> nnlib_status;

    // 1.4.0: ONNX
    pub fn nnlib_onnx_options_init_size(options: *mut nnlib_onnx_options, struct_size: usize) -> nnlib_status;
    pub fn nnlib_model_load_onnx(out: *mut *mut nnlib_model, path: *const c_char, options: *const nnlib_onnx_options) -> nnlib_status;
    pub fn nnlib_model_load_onnx_buffer(out: *mut *mut nnlib_model, data: *const c_void, size: usize, options: *const nnlib_onnx_options) -> nnlib_status;
    pub fn nnlib_model_save_onnx(model: *const nnlib_model, path: *const c_char) -> nnlib_status;
    pub fn nnlib_model_save_onnx_to_buffer(data: *mut *mut c_void, size: *mut usize, model: *const nnlib_model) -> nnlib_status;
}
