"""Finding and declaring libnnlib: the raw C functions, nothing Pythonic.

Every function of include/nnlib.h is declared below in C's own words (the
``SIGNATURES`` table); ``C_TYPES`` maps each C type to its ctypes
equivalent. A test parses the header and checks that the table matches it
exactly, so a function added to the header without a line here fails the
test suite.

Functions are bound lazily: a function the loaded library does not export
(an older build) raises ``NotImplementedError`` when it is first used, not
when the package is imported.
"""

import ctypes
import ctypes.util
import os
import subprocess

#: The major version of the C ABI these bindings were written for.
ABI_MAJOR = 1

# --------------------------------------------------------------- structs


class Allocator(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("alloc", ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_size_t,
                                   ctypes.c_size_t, ctypes.c_void_p)),
        ("free", ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)),
        ("user", ctypes.c_void_p),
    ]


class OptimizerOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("kind", ctypes.c_int),
        ("learning_rate", ctypes.c_float),
        ("momentum", ctypes.c_float),
        ("nesterov", ctypes.c_int),
        ("weight_decay", ctypes.c_float),
        ("beta1", ctypes.c_float),
        ("beta2", ctypes.c_float),
        ("alpha", ctypes.c_float),
        ("epsilon", ctypes.c_float),
        ("schedule", ctypes.c_int),
        ("step_size", ctypes.c_int64),
        ("gamma", ctypes.c_float),
        ("total_steps", ctypes.c_int64),
        ("min_learning_rate", ctypes.c_float),
        ("clip_norm", ctypes.c_float),
        ("warmup_steps", ctypes.c_int64),  # since 1.4.0
    ]


class Progress(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("epoch", ctypes.c_int64),
        ("epochs", ctypes.c_int64),
        ("batch", ctypes.c_int64),
        ("batches", ctypes.c_int64),
        ("samples_done", ctypes.c_int64),
        ("samples", ctypes.c_int64),
        ("loss", ctypes.c_float),
        ("epoch_loss", ctypes.c_float),
    ]


#: int (*)(const nnlib_progress *progress, void *user)
PROGRESS_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(Progress),
                               ctypes.c_void_p)


class FitOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("epochs", ctypes.c_int64),
        ("batch_size", ctypes.c_int64),
        ("shuffle", ctypes.c_int),
        ("progress", PROGRESS_FN),
        ("user", ctypes.c_void_p),
        ("epoch_losses", ctypes.POINTER(ctypes.c_float)),
    ]


class ValidationOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("x", ctypes.c_void_p),
        ("target", ctypes.c_void_p),
        ("losses", ctypes.POINTER(ctypes.c_float)),
        ("patience", ctypes.c_int64),
        ("min_delta", ctypes.c_float),
        ("restore_best", ctypes.c_int),
        ("epochs_run", ctypes.POINTER(ctypes.c_int64)),
    ]


class LayerProfile(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("fused", ctypes.c_int),
        ("forward_calls", ctypes.c_int64),
        ("backward_calls", ctypes.c_int64),
        ("forward_flops", ctypes.c_double),
        ("backward_flops", ctypes.c_double),
        ("forward_seconds", ctypes.c_double),
        ("backward_seconds", ctypes.c_double),
        ("forward_gflops", ctypes.c_double),
        ("backward_gflops", ctypes.c_double),
    ]


class GradcheckOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("step", ctypes.c_float),
        ("random_direction", ctypes.c_int),
        ("seed", ctypes.c_uint64),
        ("inference", ctypes.c_int),
    ]


class Conv2dOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("in_channels", ctypes.c_int64),
        ("stride_h", ctypes.c_int64),
        ("stride_w", ctypes.c_int64),
        ("padding_h", ctypes.c_int64),
        ("padding_w", ctypes.c_int64),
        ("dilation_h", ctypes.c_int64),
        ("dilation_w", ctypes.c_int64),
        ("with_bias", ctypes.c_int),
    ]


class Pool2dOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("stride_h", ctypes.c_int64),
        ("stride_w", ctypes.c_int64),
        ("padding_h", ctypes.c_int64),
        ("padding_w", ctypes.c_int64),
        # library 1.5
        ("padding_bottom", ctypes.c_int64),
        ("padding_right", ctypes.c_int64),
        ("dilation_h", ctypes.c_int64),
        ("dilation_w", ctypes.c_int64),
        ("ceil_mode", ctypes.c_int),
        ("count_include_pad", ctypes.c_int),
    ]


class ModelFileInfo(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("format_version", ctypes.c_uint32),
        ("library_version", ctypes.c_uint32),
        ("file_size", ctypes.c_uint64),
        ("loss", ctypes.c_int),
        ("input_rank", ctypes.c_size_t),
        ("input_shape", ctypes.c_int64 * 8),
        ("max_batch", ctypes.c_int64),
        ("seed", ctypes.c_uint64),
        ("layer_count", ctypes.c_int64),
        ("param_count", ctypes.c_int64),
        ("has_optimizer", ctypes.c_int),
        ("optimizer_kind", ctypes.c_int),
        ("optimizer_steps", ctypes.c_int64),
    ]


class BlasInfo(ctypes.Structure):
    """nnlib_blas_info (since 1.7.0)."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("config", ctypes.c_char_p),
        ("kernels", ctypes.c_char_p),
        ("kernels_simd", ctypes.c_int),
        ("cpu_simd", ctypes.c_int),
        ("kernels_are_fallback", ctypes.c_int),
        ("suggested_kernels", ctypes.c_char_p),
    ]


#: nnlib_node: a node of a graph model, (model tag << 32) | node index
NODE = ctypes.c_uint64


class NodeInfo(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("node", NODE),
        ("name", ctypes.c_char_p),
        ("layer", ctypes.c_void_p),
        ("layer_index", ctypes.c_int64),
        ("input_index", ctypes.c_int64),
        ("input_count", ctypes.c_size_t),
        ("inputs", ctypes.POINTER(NODE)),
        ("rank", ctypes.c_size_t),
        ("shape", ctypes.c_int64 * 8),
        ("is_output", ctypes.c_int),
    ]


class AttentionOptions(ctypes.Structure):
    """nnlib_attention_options (since 1.4.0)."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("causal", ctypes.c_int),
        ("dropout", ctypes.c_float),
        ("with_bias", ctypes.c_int),
    ]


class GenerateOptions(ctypes.Structure):
    """nnlib_generate_options (since 1.4.0)."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("temperature", ctypes.c_float),
        ("top_k", ctypes.c_int64),
        ("seed", ctypes.c_uint64),
        ("use_cache", ctypes.c_int),
    ]


class OnnxOptions(ctypes.Structure):
    """nnlib_onnx_options (since 1.4.0)."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("max_batch", ctypes.c_int64),
        ("loss", ctypes.c_int),
        ("optimizer", ctypes.c_void_p),
        ("seed", ctypes.c_uint64),
        ("output", ctypes.c_char_p),
        ("whole_sample", ctypes.c_int),
    ]


#: The header's option structs, by C name, for the struct_size test.
STRUCTS = {
    "nnlib_model_file_info": ModelFileInfo,
    "nnlib_allocator": Allocator,
    "nnlib_optimizer_options": OptimizerOptions,
    "nnlib_progress": Progress,
    "nnlib_fit_options": FitOptions,
    "nnlib_validation_options": ValidationOptions,
    "nnlib_layer_profile": LayerProfile,
    "nnlib_gradcheck_options": GradcheckOptions,
    "nnlib_node_info": NodeInfo,
    "nnlib_conv2d_options": Conv2dOptions,
    "nnlib_pool2d_options": Pool2dOptions,
    "nnlib_attention_options": AttentionOptions,
    "nnlib_generate_options": GenerateOptions,
    "nnlib_onnx_options": OnnxOptions,
    "nnlib_blas_info": BlasInfo,
}

# ----------------------------------------------------------------- types

_P = ctypes.POINTER
_HANDLE = ctypes.c_void_p        # every opaque handle travels as void *
_HANDLE_OUT = _P(ctypes.c_void_p)

#: C type (as spelled in the header, normalised) -> ctypes type. Enums are
#: C ints.
C_TYPES = {
    "void": None,
    "int": ctypes.c_int,
    "unsigned": ctypes.c_uint,
    "float": ctypes.c_float,
    "double": ctypes.c_double,
    "size_t": ctypes.c_size_t,
    "int64_t": ctypes.c_int64,
    "uint64_t": ctypes.c_uint64,
    "nnlib_status": ctypes.c_int,
    "nnlib_activation": ctypes.c_int,
    "nnlib_layer_kind": ctypes.c_int,
    "nnlib_optimizer_kind": ctypes.c_int,
    "nnlib_loss": ctypes.c_int,
    "nnlib_split": ctypes.c_int,
    "nnlib_dtype": ctypes.c_int,
    "nnlib_text_split": ctypes.c_int,
    # char * results are read as raw pointers and decoded by the caller.
    "const char *": ctypes.c_char_p,
    "char *": ctypes.c_char_p,
    "void *": ctypes.c_void_p,
    "const void *": ctypes.c_void_p,
    "void **": _P(ctypes.c_void_p),
    "float *": _P(ctypes.c_float),
    "float **": _P(_P(ctypes.c_float)),
    "const float *": _P(ctypes.c_float),
    "double *": _P(ctypes.c_double),
    "size_t *": _P(ctypes.c_size_t),
    "int64_t *": _P(ctypes.c_int64),
    "const int64_t *": _P(ctypes.c_int64),
    "int32_t *": _P(ctypes.c_int32),
    "nnlib_dtype *": _P(ctypes.c_int),
    "const int32_t *": _P(ctypes.c_int32),
    # borrowed bytes of a text, read with ctypes.string_at
    "const uint8_t *": ctypes.c_void_p,
    "const char *const *": _P(ctypes.c_char_p),
    "const nnlib_allocator *": _P(Allocator),
    "nnlib_optimizer_options *": _P(OptimizerOptions),
    "const nnlib_optimizer_options *": _P(OptimizerOptions),
    "nnlib_fit_options *": _P(FitOptions),
    "const nnlib_fit_options *": _P(FitOptions),
    "nnlib_validation_options *": _P(ValidationOptions),
    "const nnlib_validation_options *": _P(ValidationOptions),
    "nnlib_gradcheck_options *": _P(GradcheckOptions),
    "const nnlib_gradcheck_options *": _P(GradcheckOptions),
    "nnlib_conv2d_options *": _P(Conv2dOptions),
    "const nnlib_conv2d_options *": _P(Conv2dOptions),
    "nnlib_pool2d_options *": _P(Pool2dOptions),
    "const nnlib_pool2d_options *": _P(Pool2dOptions),
    "nnlib_model_file_info *": _P(ModelFileInfo),
    "nnlib_blas_info *": _P(BlasInfo),
    "nnlib_layer_profile *": _P(LayerProfile),
    "nnlib_node": NODE,
    "nnlib_node *": _P(NODE),
    "const nnlib_node *": _P(NODE),
    "nnlib_node_info *": _P(NodeInfo),
    "nnlib_attention_options *": _P(AttentionOptions),
    "const nnlib_attention_options *": _P(AttentionOptions),
    "nnlib_generate_options *": _P(GenerateOptions),
    "const nnlib_generate_options *": _P(GenerateOptions),
    "nnlib_onnx_options *": _P(OnnxOptions),
    "const nnlib_onnx_options *": _P(OnnxOptions),
    # an array of tensor handles (one per model input)
    "const nnlib_tensor *const *": _P(ctypes.c_void_p),
}
for _h in ("tensor", "layer", "optimizer", "model", "workspace", "text"):
    C_TYPES["nnlib_%s *" % _h] = _HANDLE
    C_TYPES["const nnlib_%s *" % _h] = _HANDLE
    C_TYPES["nnlib_%s **" % _h] = _HANDLE_OUT
    C_TYPES["const nnlib_%s **" % _h] = _HANDLE_OUT

# ------------------------------------------------------------- functions

#: One tensor per model input: `const nnlib_tensor *const *inputs`.
_TENSORS = "const nnlib_tensor *const *"

#: name -> (result type, [parameter types]), in the header's order.
SIGNATURES = {
    # version
    "nnlib_version": ("unsigned", []),
    "nnlib_version_string": ("const char *", []),
    # status
    "nnlib_status_string": ("const char *", ["nnlib_status"]),
    "nnlib_last_error_message": ("const char *", []),
    "nnlib_clear_error": ("void", []),
    # process-wide settings
    "nnlib_set_num_threads": ("nnlib_status", ["int"]),
    "nnlib_get_num_threads": ("int", []),
    "nnlib_blas_get_info": ("nnlib_status", ["nnlib_blas_info *"]),
    "nnlib_set_allocator": ("nnlib_status", ["const nnlib_allocator *"]),
    "nnlib_free": ("void", ["void *"]),
    # tensor
    "nnlib_tensor_create": ("nnlib_status",
                            ["nnlib_tensor **", "const int64_t *", "size_t"]),
    "nnlib_tensor_wrap": ("nnlib_status", ["nnlib_tensor **", "float *",
                                           "const int64_t *", "size_t"]),
    "nnlib_tensor_free": ("void", ["nnlib_tensor *"]),
    "nnlib_tensor_get_rank": ("size_t", ["const nnlib_tensor *"]),
    "nnlib_tensor_get_dim": ("int64_t", ["const nnlib_tensor *", "size_t"]),
    "nnlib_tensor_get_shape": ("const int64_t *", ["const nnlib_tensor *"]),
    "nnlib_tensor_get_size": ("int64_t", ["const nnlib_tensor *"]),
    "nnlib_tensor_get_data": ("float *", ["nnlib_tensor *"]),
    "nnlib_tensor_get_data_const": ("const float *", ["const nnlib_tensor *"]),
    "nnlib_tensor_set_shape": ("nnlib_status", ["nnlib_tensor *",
                                                "const int64_t *", "size_t"]),
    "nnlib_tensor_fill": ("nnlib_status", ["nnlib_tensor *", "float"]),
    "nnlib_tensor_copy": ("nnlib_status",
                          ["nnlib_tensor *", "const nnlib_tensor *"]),
    # layers
    "nnlib_dense_create": ("nnlib_status",
                           ["nnlib_layer **", "int64_t", "int64_t", "int"]),
    "nnlib_activation_create": ("nnlib_status", ["nnlib_layer **",
                                                 "nnlib_activation", "float"]),
    "nnlib_conv2d_options_init": ("nnlib_status", ["nnlib_conv2d_options *"]),
    "nnlib_conv2d_create": ("nnlib_status", [
        "nnlib_layer **", "int64_t", "int64_t", "int64_t",
        "const nnlib_conv2d_options *"]),
    "nnlib_pool2d_options_init": ("nnlib_status", ["nnlib_pool2d_options *"]),
    "nnlib_pool2d_create": ("nnlib_status", [
        "nnlib_layer **", "nnlib_layer_kind", "int64_t", "int64_t",
        "const nnlib_pool2d_options *"]),
    "nnlib_global_avgpool_create": ("nnlib_status", ["nnlib_layer **"]),
    "nnlib_batchnorm_create": ("nnlib_status",
                               ["nnlib_layer **", "float", "float"]),
    "nnlib_dropout_create": ("nnlib_status", ["nnlib_layer **", "float"]),
    "nnlib_flatten_create": ("nnlib_status", ["nnlib_layer **"]),
    "nnlib_transpose_create": ("nnlib_status", ["nnlib_layer **",
                                                "const int64_t *", "size_t"]),
    "nnlib_rnn_create": ("nnlib_status", [
        "nnlib_layer **", "int64_t", "int64_t", "nnlib_activation", "int",
        "int"]),
    "nnlib_lstm_create": ("nnlib_status", [
        "nnlib_layer **", "int64_t", "int64_t", "int", "int"]),
    "nnlib_gru_create": ("nnlib_status", [
        "nnlib_layer **", "int64_t", "int64_t", "int", "int"]),
    "nnlib_recurrent_set_initial_state": ("nnlib_status", [
        "nnlib_layer *", "const float *", "const float *", "int64_t"]),
    "nnlib_add_create": ("nnlib_status", ["nnlib_layer **"]),
    "nnlib_multiply_create": ("nnlib_status", ["nnlib_layer **"]),
    "nnlib_concat_create": ("nnlib_status", ["nnlib_layer **", "int"]),
    "nnlib_layer_free": ("void", ["nnlib_layer *"]),
    "nnlib_layer_get_kind": ("nnlib_layer_kind", ["const nnlib_layer *"]),
    "nnlib_layer_get_name": ("const char *", ["const nnlib_layer *"]),
    "nnlib_layer_get_output_shape": ("nnlib_status", [
        "const nnlib_layer *", "int64_t *", "size_t", "size_t *"]),
    "nnlib_layer_get_param_count": ("size_t", ["const nnlib_layer *"]),
    "nnlib_layer_get_param": ("nnlib_status", [
        "nnlib_layer *", "size_t", "nnlib_tensor **", "nnlib_tensor **"]),
    "nnlib_layer_get_param_name": ("const char *",
                                   ["const nnlib_layer *", "size_t"]),
    "nnlib_layer_get_buffer_count": ("size_t", ["const nnlib_layer *"]),
    "nnlib_layer_get_buffer": ("nnlib_status", [
        "nnlib_layer *", "size_t", "nnlib_tensor **"]),
    "nnlib_layer_get_buffer_name": ("const char *",
                                    ["const nnlib_layer *", "size_t"]),
    # optimizers
    "nnlib_optimizer_options_init": ("nnlib_status", [
        "nnlib_optimizer_options *", "nnlib_optimizer_kind"]),
    "nnlib_optimizer_create": ("nnlib_status", [
        "nnlib_optimizer **", "const nnlib_optimizer_options *"]),
    "nnlib_sgd_create": ("nnlib_status", ["nnlib_optimizer **", "float",
                                          "float", "int", "float"]),
    "nnlib_optimizer_free": ("void", ["nnlib_optimizer *"]),
    "nnlib_optimizer_set_learning_rate": ("nnlib_status",
                                          ["nnlib_optimizer *", "float"]),
    "nnlib_optimizer_get_learning_rate": ("float",
                                          ["const nnlib_optimizer *"]),
    "nnlib_optimizer_get_step_count": ("int64_t", ["const nnlib_optimizer *"]),
    "nnlib_optimizer_get_options": ("nnlib_status", [
        "const nnlib_optimizer *", "nnlib_optimizer_options *"]),
    # model
    "nnlib_model_create": ("nnlib_status", ["nnlib_model **"]),
    "nnlib_model_free": ("void", ["nnlib_model *"]),
    "nnlib_model_add": ("nnlib_status", ["nnlib_model *", "nnlib_layer *"]),
    "nnlib_model_compile": ("nnlib_status", [
        "nnlib_model *", "const int64_t *", "size_t", "int64_t", "nnlib_loss",
        "nnlib_optimizer *", "uint64_t"]),
    "nnlib_model_get_layer_count": ("size_t", ["const nnlib_model *"]),
    "nnlib_model_get_layer": ("nnlib_layer *", ["nnlib_model *", "size_t"]),
    "nnlib_model_get_optimizer": ("nnlib_optimizer *", ["nnlib_model *"]),
    "nnlib_model_get_loss": ("nnlib_loss", ["const nnlib_model *"]),
    "nnlib_model_get_param_count": ("nnlib_status",
                                    ["const nnlib_model *", "int64_t *"]),
    "nnlib_model_get_input_shape": ("nnlib_status", [
        "const nnlib_model *", "int64_t *", "size_t", "size_t *"]),
    "nnlib_model_get_output_shape": ("nnlib_status", [
        "const nnlib_model *", "int64_t *", "size_t", "size_t *"]),
    "nnlib_model_get_max_batch": ("int64_t", ["const nnlib_model *"]),
    "nnlib_model_predict": ("nnlib_status", [
        "nnlib_model *", "const nnlib_tensor *", "nnlib_tensor *"]),
    "nnlib_workspace_create": ("nnlib_status", ["nnlib_workspace **",
                                                "const nnlib_model *"]),
    "nnlib_workspace_free": ("void", ["nnlib_workspace *"]),
    "nnlib_workspace_predict": ("nnlib_status", [
        "nnlib_workspace *", "const nnlib_tensor *", "nnlib_tensor *"]),
    "nnlib_model_forward": ("nnlib_status", [
        "nnlib_model *", "const nnlib_tensor *", "const nnlib_tensor **"]),
    "nnlib_model_backward": ("nnlib_status", [
        "nnlib_model *", "const nnlib_tensor *", "const nnlib_tensor *",
        "float *"]),
    "nnlib_model_step": ("nnlib_status", [
        "nnlib_model *", "const nnlib_tensor *", "const nnlib_tensor *",
        "float *"]),
    "nnlib_model_set_check_numerics": ("nnlib_status",
                                       ["nnlib_model *", "int"]),
    "nnlib_optimizer_step": ("nnlib_status", ["nnlib_model *"]),
    "nnlib_model_get_flat_params": ("nnlib_status", [
        "nnlib_model *", "float **", "float **", "int64_t *"]),
    "nnlib_fit_options_init": ("nnlib_status", ["nnlib_fit_options *"]),
    "nnlib_model_fit": ("nnlib_status", [
        "nnlib_model *", "const nnlib_tensor *", "const nnlib_tensor *",
        "const nnlib_fit_options *"]),
    "nnlib_validation_options_init": ("nnlib_status", [
        "nnlib_validation_options *"]),
    "nnlib_model_fit_validated": ("nnlib_status", [
        "nnlib_model *", "const nnlib_tensor *", "const nnlib_tensor *",
        "const nnlib_fit_options *", "const nnlib_validation_options *"]),
    "nnlib_model_evaluate": ("nnlib_status", [
        "nnlib_model *", "const nnlib_tensor *", "const nnlib_tensor *",
        "float *", "float *"]),
    # profile
    "nnlib_model_set_profiling": ("nnlib_status", ["nnlib_model *", "int"]),
    "nnlib_model_get_layer_profile": ("nnlib_status", [
        "const nnlib_model *", "size_t", "nnlib_layer_profile *"]),
    # gradient check
    "nnlib_gradcheck_options_init": ("nnlib_status",
                                     ["nnlib_gradcheck_options *"]),
    "nnlib_model_gradcheck": ("nnlib_status", [
        "nnlib_model *", "const nnlib_tensor *", "const nnlib_tensor *",
        "const nnlib_gradcheck_options *", "double *"]),
    # graph models
    "nnlib_model_input": ("nnlib_status", [
        "nnlib_model *", "const int64_t *", "size_t", "nnlib_node *"]),
    "nnlib_model_apply": ("nnlib_status", [
        "nnlib_model *", "nnlib_layer *", "const nnlib_node *", "size_t",
        "nnlib_node *"]),
    "nnlib_model_set_output": ("nnlib_status",
                               ["nnlib_model *", "nnlib_node"]),
    "nnlib_model_set_node_name": ("nnlib_status", [
        "nnlib_model *", "nnlib_node", "const char *"]),
    "nnlib_model_compile_graph": ("nnlib_status", [
        "nnlib_model *", "int64_t", "nnlib_loss", "nnlib_optimizer *",
        "uint64_t"]),
    "nnlib_model_get_input_count": ("size_t", ["const nnlib_model *"]),
    "nnlib_model_get_node_count": ("size_t", ["const nnlib_model *"]),
    "nnlib_model_get_node": ("nnlib_status", [
        "const nnlib_model *", "size_t", "nnlib_node_info *"]),
    "nnlib_model_get_input_shape_at": ("nnlib_status", [
        "const nnlib_model *", "size_t", "int64_t *", "size_t", "size_t *"]),
    "nnlib_model_get_input_dtype": ("nnlib_status", [
        "const nnlib_model *", "size_t", "nnlib_dtype *"]),
    "nnlib_model_predict_inputs": ("nnlib_status", [
        "nnlib_model *", _TENSORS, "size_t", "nnlib_tensor *"]),
    "nnlib_workspace_predict_inputs": ("nnlib_status", [
        "nnlib_workspace *", _TENSORS, "size_t", "nnlib_tensor *"]),
    "nnlib_model_forward_inputs": ("nnlib_status", [
        "nnlib_model *", _TENSORS, "size_t", "const nnlib_tensor **"]),
    "nnlib_model_backward_inputs": ("nnlib_status", [
        "nnlib_model *", _TENSORS, "size_t", "const nnlib_tensor *",
        "float *"]),
    "nnlib_model_step_inputs": ("nnlib_status", [
        "nnlib_model *", _TENSORS, "size_t", "const nnlib_tensor *",
        "float *"]),
    "nnlib_model_evaluate_inputs": ("nnlib_status", [
        "nnlib_model *", _TENSORS, "size_t", "const nnlib_tensor *", "float *",
        "float *"]),
    "nnlib_model_fit_inputs": ("nnlib_status", [
        "nnlib_model *", _TENSORS, "size_t", "const nnlib_tensor *",
        "const nnlib_fit_options *", "const nnlib_validation_options *",
        _TENSORS]),
    "nnlib_model_gradcheck_inputs": ("nnlib_status", [
        "nnlib_model *", _TENSORS, "size_t", "const nnlib_tensor *",
        "const nnlib_gradcheck_options *", "double *"]),
    "nnlib_model_set_input_gradients": ("nnlib_status",
                                        ["nnlib_model *", "int"]),
    "nnlib_model_get_input_gradient": ("nnlib_status", [
        "nnlib_model *", "size_t", "const nnlib_tensor **"]),
    "nnlib_model_backward_output": ("nnlib_status",
                                    ["nnlib_model *", "const nnlib_tensor *"]),
    # model description text
    "nnlib_model_add_spec": ("nnlib_status", ["nnlib_model *", "const char *"]),
    "nnlib_model_get_spec": ("nnlib_status", [
        "const nnlib_model *", "char *", "size_t", "size_t *"]),
    "nnlib_model_set_optimizer": ("nnlib_status",
                                  ["nnlib_model *", "nnlib_optimizer *"]),
    # model files
    "nnlib_model_save": ("nnlib_status",
                         ["const nnlib_model *", "const char *", "unsigned"]),
    "nnlib_model_save_buffer": ("nnlib_status", [
        "const nnlib_model *", "unsigned", "void **", "size_t *"]),
    "nnlib_model_load": ("nnlib_status", ["nnlib_model **", "const char *"]),
    "nnlib_model_load_buffer": ("nnlib_status", [
        "nnlib_model **", "const void *", "size_t"]),
    "nnlib_model_file_get_info": ("nnlib_status", [
        "const void *", "size_t", "nnlib_model_file_info *"]),
    # data
    "nnlib_idx_load_images": ("nnlib_status", [
        "nnlib_tensor **", "const char *", "int64_t"]),
    "nnlib_idx_load_labels": ("nnlib_status", [
        "nnlib_tensor **", "const char *", "int64_t", "int", "int64_t"]),
    "nnlib_dataset_default_dir": ("const char *", []),
    "nnlib_dataset_load": ("nnlib_status", [
        "const char *", "nnlib_split", "int64_t", "int", "nnlib_tensor **",
        "nnlib_tensor **"]),
    # 1.3.0: the names that replace the deprecated ones above, and option
    # initialisation for the caller's struct size
    "nnlib_model_apply_gradients": ("nnlib_status", ["nnlib_model *"]),
    "nnlib_layer_get_param_tensor_count": ("size_t", ["const nnlib_layer *"]),
    "nnlib_model_save_to_buffer": ("nnlib_status", [
        "void **", "size_t *", "const nnlib_model *", "unsigned"]),
    "nnlib_dataset_load_split": ("nnlib_status", [
        "nnlib_tensor **", "nnlib_tensor **", "const char *", "nnlib_split",
        "int64_t", "int"]),
    "nnlib_conv2d_options_init_size": ("nnlib_status", [
        "nnlib_conv2d_options *", "size_t"]),
    "nnlib_pool2d_options_init_size": ("nnlib_status", [
        "nnlib_pool2d_options *", "size_t"]),
    "nnlib_optimizer_options_init_size": ("nnlib_status", [
        "nnlib_optimizer_options *", "nnlib_optimizer_kind", "size_t"]),
    "nnlib_fit_options_init_size": ("nnlib_status", [
        "nnlib_fit_options *", "size_t"]),
    "nnlib_validation_options_init_size": ("nnlib_status", [
        "nnlib_validation_options *", "size_t"]),
    "nnlib_gradcheck_options_init_size": ("nnlib_status", [
        "nnlib_gradcheck_options *", "size_t"]),
    # 1.4.0: int32 tensors
    "nnlib_tensor_create_int32": ("nnlib_status", [
        "nnlib_tensor **", "const int64_t *", "size_t"]),
    "nnlib_tensor_wrap_int32": ("nnlib_status", [
        "nnlib_tensor **", "int32_t *", "const int64_t *", "size_t"]),
    "nnlib_tensor_get_dtype": ("nnlib_dtype", ["const nnlib_tensor *"]),
    "nnlib_tensor_get_data_int32": ("int32_t *", ["nnlib_tensor *"]),
    "nnlib_tensor_get_data_int32_const": ("const int32_t *",
                                          ["const nnlib_tensor *"]),
    # 1.4.0: text layers
    "nnlib_embedding_create": ("nnlib_status",
                               ["nnlib_layer **", "int64_t", "int64_t"]),
    "nnlib_positional_create": ("nnlib_status", ["nnlib_layer **",
                                                 "int64_t"]),
    "nnlib_layernorm_create": ("nnlib_status",
                               ["nnlib_layer **", "float", "int"]),
    "nnlib_linear_create": ("nnlib_status",
                            ["nnlib_layer **", "int64_t", "int"]),
    "nnlib_attention_options_init_size": ("nnlib_status", [
        "nnlib_attention_options *", "size_t"]),
    "nnlib_attention_create": ("nnlib_status", [
        "nnlib_layer **", "int64_t", "const nnlib_attention_options *"]),
    # 1.4.0: text data
    "nnlib_text_load": ("nnlib_status", [
        "nnlib_text **", "const char *const *", "size_t", "double",
        "uint64_t"]),
    "nnlib_text_from_bytes": ("nnlib_status", [
        "nnlib_text **", "const void *", "size_t", "double", "uint64_t"]),
    "nnlib_text_free": ("void", ["nnlib_text *"]),
    "nnlib_text_get_size": ("int64_t", ["const nnlib_text *",
                                        "nnlib_text_split"]),
    "nnlib_text_get_bytes": ("const uint8_t *", ["const nnlib_text *",
                                                 "nnlib_text_split"]),
    "nnlib_text_sample": ("nnlib_status", [
        "nnlib_text *", "nnlib_text_split", "nnlib_tensor *",
        "nnlib_tensor *"]),
    "nnlib_text_window_count": ("int64_t", [
        "const nnlib_text *", "nnlib_text_split", "int64_t"]),
    "nnlib_text_window": ("nnlib_status", [
        "const nnlib_text *", "nnlib_text_split", "int64_t",
        "nnlib_tensor *", "nnlib_tensor *"]),
    # 1.4.0: generation
    "nnlib_generate_options_init_size": ("nnlib_status", [
        "nnlib_generate_options *", "size_t"]),
    "nnlib_model_generate": ("nnlib_status", [
        "nnlib_model *", "const int32_t *", "int64_t", "int64_t",
        "const nnlib_generate_options *", "int32_t *"]),
    # 1.4.0: ONNX (Model.from_onnx, Model.to_onnx)
    "nnlib_onnx_options_init_size": ("nnlib_status", [
        "nnlib_onnx_options *", "size_t"]),
    "nnlib_model_load_onnx": ("nnlib_status", [
        "nnlib_model **", "const char *", "const nnlib_onnx_options *"]),
    "nnlib_model_load_onnx_buffer": ("nnlib_status", [
        "nnlib_model **", "const void *", "size_t",
        "const nnlib_onnx_options *"]),
    "nnlib_model_save_onnx": ("nnlib_status", [
        "const nnlib_model *", "const char *"]),
    "nnlib_model_save_onnx_to_buffer": ("nnlib_status", [
        "void **", "size_t *", "const nnlib_model *"]),
}

# ------------------------------------------------------------ the library


class LibraryNotFoundError(OSError):
    """No loadable libnnlib was found; the message lists every place tried."""


class _Library:
    """The loaded libnnlib with its functions declared on first use."""

    def __init__(self, cdll, path):
        self._cdll = cdll
        self.path = path

    def has(self, name):
        """True if the loaded library exports `name`."""
        try:
            getattr(self._cdll, name)
        except AttributeError:
            return False
        return True

    def __getattr__(self, name):
        if name not in SIGNATURES:
            raise AttributeError(name)
        try:
            fn = getattr(self._cdll, name)
        except AttributeError:
            raise NotImplementedError(
                "%s is declared in nnlib.h but the library at %s does not "
                "export it (an older or unfinished build)" % (name, self.path)
            ) from None
        restype, argtypes = SIGNATURES[name]
        fn.restype = C_TYPES[restype]
        fn.argtypes = [C_TYPES[a] for a in argtypes]
        setattr(self, name, fn)
        return fn


def _candidates():
    """(description, path-or-name) pairs in lookup order."""
    env = os.environ.get("NNLIB_LIBRARY")
    if env:
        yield "NNLIB_LIBRARY=%s" % env, env
        return  # an explicit choice is not second-guessed
    found = ctypes.util.find_library("nnlib")
    if found:
        yield "the system loader (ctypes.util.find_library: %s)" % found, found
    yield "the system loader (libnnlib.so.%d)" % ABI_MAJOR, \
        "libnnlib.so.%d" % ABI_MAJOR
    try:
        libdir = subprocess.run(
            ["pkg-config", "--variable=libdir", "nnlib"],
            capture_output=True, text=True, timeout=30, check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        libdir = ""
    if libdir:
        path = os.path.join(libdir, "libnnlib.so.%d" % ABI_MAJOR)
        yield "pkg-config --variable=libdir nnlib (%s)" % path, path
    else:
        yield "pkg-config --variable=libdir nnlib (no answer)", None


def load():
    """Finds, loads and version-checks libnnlib; returns a _Library."""
    tried = []
    for what, target in _candidates():
        if target is None:
            tried.append(what)
            continue
        try:
            cdll = ctypes.CDLL(target)
        except OSError as e:
            tried.append("%s: %s" % (what, e))
            continue
        # a path with a slash was loaded relative to the working directory
        # at this moment: library_path() names it absolutely, so that it
        # still names the same file after a chdir (or in a child process
        # started elsewhere); a bare name is the loader's search
        lib = _Library(cdll, os.path.abspath(target) if "/" in target
                       else target)
        version = lib.nnlib_version()
        if version // 10000 != ABI_MAJOR:
            tried.append("%s: version %s has major %d, these bindings need "
                         "major %d" % (what, lib.nnlib_version_string()
                                       .decode(), version // 10000, ABI_MAJOR))
            continue
        return lib
    raise LibraryNotFoundError(
        "could not load libnnlib; tried, in order:\n  " + "\n  ".join(tried)
        + "\nSet NNLIB_LIBRARY to the path of libnnlib.so.%d, install nnlib "
        "where the loader finds it, or make pkg-config know it "
        "(PKG_CONFIG_PATH)." % ABI_MAJOR)
