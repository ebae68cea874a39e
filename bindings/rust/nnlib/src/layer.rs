//! Layers: owned until `Model::add` takes them.
//!
//! A new layer kind is a few lines: a constructor calling `Layer::create`
//! with its C function, e.g.
//! `pub fn dropout(p: f32) -> Result<Layer> { Layer::create(|out| unsafe { sys::nnlib_dropout_create(out, p) }) }`

use std::ffi::CStr;
use std::ptr;

use nnlib_sys as sys;

use crate::error::{check, Result};

/// nnlib_layer_kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKind {
    Dense,
    Activation,
    Conv2d,
    MaxPool2d,
    MinPool2d,
    AvgPool2d,
    GlobalAvgPool,
    BatchNorm,
    Dropout,
    Flatten,
    Rnn,
    Lstm,
    Gru,
    Add,
    Concat,
    Multiply,
    /// Text layers (library 1.4).
    Embedding,
    Positional,
    LayerNorm,
    Attention,
    Linear,
    /// A permutation of the per-sample axes (library 1.6).
    Transpose,
    Unknown(i32),
}

impl LayerKind {
    pub fn from_code(code: sys::nnlib_layer_kind) -> LayerKind {
        match code {
            sys::NNLIB_LAYER_DENSE => LayerKind::Dense,
            sys::NNLIB_LAYER_ACTIVATION => LayerKind::Activation,
            sys::NNLIB_LAYER_CONV2D => LayerKind::Conv2d,
            sys::NNLIB_LAYER_MAXPOOL2D => LayerKind::MaxPool2d,
            sys::NNLIB_LAYER_MINPOOL2D => LayerKind::MinPool2d,
            sys::NNLIB_LAYER_AVGPOOL2D => LayerKind::AvgPool2d,
            sys::NNLIB_LAYER_GLOBAL_AVGPOOL => LayerKind::GlobalAvgPool,
            sys::NNLIB_LAYER_BATCHNORM => LayerKind::BatchNorm,
            sys::NNLIB_LAYER_DROPOUT => LayerKind::Dropout,
            sys::NNLIB_LAYER_FLATTEN => LayerKind::Flatten,
            sys::NNLIB_LAYER_RNN => LayerKind::Rnn,
            sys::NNLIB_LAYER_LSTM => LayerKind::Lstm,
            sys::NNLIB_LAYER_GRU => LayerKind::Gru,
            sys::NNLIB_LAYER_ADD => LayerKind::Add,
            sys::NNLIB_LAYER_CONCAT => LayerKind::Concat,
            sys::NNLIB_LAYER_MULTIPLY => LayerKind::Multiply,
            sys::NNLIB_LAYER_EMBEDDING => LayerKind::Embedding,
            sys::NNLIB_LAYER_POSITIONAL => LayerKind::Positional,
            sys::NNLIB_LAYER_LAYERNORM => LayerKind::LayerNorm,
            sys::NNLIB_LAYER_ATTENTION => LayerKind::Attention,
            sys::NNLIB_LAYER_LINEAR => LayerKind::Linear,
            sys::NNLIB_LAYER_TRANSPOSE => LayerKind::Transpose,
            other => LayerKind::Unknown(other),
        }
    }
}

/// nnlib_activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Identity,
    Step,
    Sigmoid,
    Tanh,
    Relu,
    LeakyRelu,
    Softplus,
    Softmax,
    /// x Phi(x) with the exact erf (library 1.4).
    Gelu,
    /// PyTorch's approximate='tanh' GELU (library 1.4).
    GeluTanh,
}

impl Activation {
    pub fn code(self) -> sys::nnlib_activation {
        match self {
            Activation::Identity => sys::NNLIB_ACT_IDENTITY,
            Activation::Step => sys::NNLIB_ACT_STEP,
            Activation::Sigmoid => sys::NNLIB_ACT_SIGMOID,
            Activation::Tanh => sys::NNLIB_ACT_TANH,
            Activation::Relu => sys::NNLIB_ACT_RELU,
            Activation::LeakyRelu => sys::NNLIB_ACT_LEAKY_RELU,
            Activation::Softplus => sys::NNLIB_ACT_SOFTPLUS,
            Activation::Softmax => sys::NNLIB_ACT_SOFTMAX,
            Activation::Gelu => sys::NNLIB_ACT_GELU,
            Activation::GeluTanh => sys::NNLIB_ACT_GELU_TANH,
        }
    }
}

/// What `Layer::conv2d` takes besides the channels and the kernel
/// (pairs are (height, width)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dOptions {
    /// 0: taken from the input at compile.
    pub in_channels: i64,
    pub stride: (i64, i64),
    pub padding: (i64, i64),
    pub dilation: (i64, i64),
    pub bias: bool,
}

impl Default for Conv2dOptions {
    fn default() -> Self {
        Conv2dOptions { in_channels: 0, stride: (1, 1), padding: (0, 0), dilation: (1, 1), bias: true }
    }
}

/// What `Layer::attention` takes besides the number of heads (library
/// 1.4; the defaults are nnlib_attention_options').
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionOptions {
    /// Each position attends to itself and earlier ones (language models).
    pub causal: bool,
    /// Dropout rate on the attention weights in training, in [0, 1).
    pub dropout: f32,
    pub bias: bool,
}

impl Default for AttentionOptions {
    fn default() -> Self {
        AttentionOptions { causal: false, dropout: 0.0, bias: true }
    }
}

/// What `Layer::pool2d_with` takes besides the kind and the kernel
/// (PyTorch's MaxPool2d and AvgPool2d options; the defaults are
/// nnlib_pool2d_options'). All but `stride` and a padding equal on both
/// sides of each axis need library 1.5.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dOptions {
    /// None: the kernel.
    pub stride: Option<(i64, i64)>,
    /// Top, left, bottom, right (ONNX's pads order), each at most the
    /// kernel - 1.
    pub padding: (i64, i64, i64, i64),
    /// Max and min pooling only.
    pub dilation: (i64, i64),
    /// PyTorch's ceil mode: a last window may reach past the input, never
    /// start in the end padding.
    pub ceil_mode: bool,
    /// Average pooling: divide by the window's positions inside the padded
    /// input (true, PyTorch's default) or by its input elements only.
    pub count_include_pad: bool,
}

impl Default for Pool2dOptions {
    fn default() -> Self {
        Pool2dOptions { stride: None, padding: (0, 0, 0, 0), dilation: (1, 1), ceil_mode: false, count_include_pad: true }
    }
}

/// The pooling layers of `Layer::pool2d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    Min,
    Average,
}

/// A layer not yet added to a model; freed on drop.
pub struct Layer {
    raw: *mut sys::nnlib_layer,
}

// SAFETY: an unshared layer handle may move between threads.
unsafe impl Send for Layer {}

impl Layer {
    /// Calls an `nnlib_*_create(nnlib_layer **out, ...)` constructor.
    pub fn create<F>(constructor: F) -> Result<Layer>
    where
        F: FnOnce(*mut *mut sys::nnlib_layer) -> sys::nnlib_status,
    {
        let mut raw = ptr::null_mut();
        check(constructor(&mut raw))?;
        Ok(Layer { raw })
    }

    /// y = x W^T + b with W [out, in]; `in_features` 0 takes the size of
    /// the previous layer at compile.
    pub fn dense(in_features: i64, out_features: i64, bias: bool) -> Result<Layer> {
        // SAFETY: out is a valid pointer to a handle slot.
        Layer::create(|out| unsafe { sys::nnlib_dense_create(out, in_features, out_features, bias as i32) })
    }

    /// An activation layer; `param` is LeakyRelu's negative slope.
    pub fn activation(kind: Activation, param: f32) -> Result<Layer> {
        // SAFETY: as above.
        Layer::create(|out| unsafe { sys::nnlib_activation_create(out, kind.code(), param) })
    }

    pub fn identity() -> Result<Layer> {
        Layer::activation(Activation::Identity, 0.0)
    }
    pub fn step() -> Result<Layer> {
        Layer::activation(Activation::Step, 0.0)
    }
    pub fn sigmoid() -> Result<Layer> {
        Layer::activation(Activation::Sigmoid, 0.0)
    }
    pub fn tanh() -> Result<Layer> {
        Layer::activation(Activation::Tanh, 0.0)
    }
    pub fn relu() -> Result<Layer> {
        Layer::activation(Activation::Relu, 0.0)
    }
    pub fn leaky_relu(slope: f32) -> Result<Layer> {
        Layer::activation(Activation::LeakyRelu, slope)
    }
    pub fn softplus() -> Result<Layer> {
        Layer::activation(Activation::Softplus, 0.0)
    }
    pub fn softmax() -> Result<Layer> {
        Layer::activation(Activation::Softmax, 0.0)
    }
    /// GELU with the exact erf (torch.nn.GELU(); library 1.4).
    pub fn gelu() -> Result<Layer> {
        Layer::activation(Activation::Gelu, 0.0)
    }
    /// GELU's tanh approximation (torch.nn.GELU(approximate='tanh')).
    pub fn gelu_tanh() -> Result<Layer> {
        Layer::activation(Activation::GeluTanh, 0.0)
    }

    /// Token ids [T] -> vectors [T, dim] (torch.nn.Embedding, weight
    /// [vocab_size, dim]). The model input it reads takes int32 ids: the
    /// `*_ids` calls of `Model` (float slices fail with `Status::Dtype`).
    /// Library 1.4.
    pub fn embedding(vocab_size: i64, dim: i64) -> Result<Layer> {
        // SAFETY: out is a valid pointer to a handle slot.
        Layer::create(|out| unsafe { sys::nnlib_embedding_create(out, vocab_size, dim) })
    }

    /// Learned positional embeddings added to [T, D] (weight
    /// [max_positions, D]); 0 takes T from the input at compile.
    pub fn positional(max_positions: i64) -> Result<Layer> {
        // SAFETY: as above.
        Layer::create(|out| unsafe { sys::nnlib_positional_create(out, max_positions) })
    }

    /// Layer normalisation over the last axis (torch.nn.LayerNorm(D, eps);
    /// PyTorch's eps is 1e-5), with weight and bias [D] when `affine`.
    pub fn layer_norm(eps: f32, affine: bool) -> Result<Layer> {
        // SAFETY: as above.
        Layer::create(|out| unsafe { sys::nnlib_layernorm_create(out, eps, affine as i32) })
    }

    /// y = x W^T + b over the last axis, [..., in] -> [..., out_features]
    /// (torch.nn.Linear; `dense` flattens the sample instead).
    pub fn linear(out_features: i64, bias: bool) -> Result<Layer> {
        // SAFETY: as above.
        Layer::create(|out| unsafe { sys::nnlib_linear_create(out, out_features, bias as i32) })
    }

    /// Multi-head self-attention on [T, D] (torch.nn.MultiheadAttention,
    /// batch_first, mha(x, x, x)); `heads` divides D. Parameters
    /// in_proj_weight, in_proj_bias, out_proj.weight, out_proj.bias.
    pub fn attention(heads: i64, options: AttentionOptions) -> Result<Layer> {
        // SAFETY: init fills a valid struct of its own size; the pointers
        // live for the calls.
        unsafe {
            let mut o: sys::nnlib_attention_options = std::mem::zeroed();
            check(sys::nnlib_attention_options_init_size(&mut o, std::mem::size_of::<sys::nnlib_attention_options>()))?;
            o.causal = options.causal as i32;
            o.dropout = options.dropout;
            o.with_bias = options.bias as i32;
            Layer::create(|out| sys::nnlib_attention_create(out, heads, &o))
        }
    }

    /// A 2-D convolution over NCHW samples [C, H, W] (PyTorch's Conv2d):
    /// weight [out_channels, C, kernel.0, kernel.1], bias [out_channels].
    pub fn conv2d(out_channels: i64, kernel: (i64, i64), options: Conv2dOptions) -> Result<Layer> {
        // SAFETY: init fills a valid struct; the pointers live for the calls.
        unsafe {
            let mut o: sys::nnlib_conv2d_options = std::mem::zeroed();
            check(sys::nnlib_conv2d_options_init(&mut o))?;
            o.in_channels = options.in_channels;
            (o.stride_h, o.stride_w) = options.stride;
            (o.padding_h, o.padding_w) = options.padding;
            (o.dilation_h, o.dilation_w) = options.dilation;
            o.with_bias = options.bias as i32;
            Layer::create(|out| sys::nnlib_conv2d_create(out, out_channels, kernel.0, kernel.1, &o))
        }
    }

    /// Max, min or average pooling over `kernel` windows of each channel;
    /// `stride` None: the kernel; `padding` (h, w) on both sides.
    pub fn pool2d(kind: PoolKind, kernel: (i64, i64), stride: Option<(i64, i64)>, padding: (i64, i64)) -> Result<Layer> {
        let (h, w) = padding;
        Layer::pool2d_with(kind, kernel, Pool2dOptions { stride, padding: (h, w, h, w), ..Default::default() })
    }

    /// Pooling with every window option (see `Pool2dOptions`).
    pub fn pool2d_with(kind: PoolKind, kernel: (i64, i64), options: Pool2dOptions) -> Result<Layer> {
        let code = match kind {
            PoolKind::Max => sys::NNLIB_LAYER_MAXPOOL2D,
            PoolKind::Min => sys::NNLIB_LAYER_MINPOOL2D,
            PoolKind::Average => sys::NNLIB_LAYER_AVGPOOL2D,
        };
        // SAFETY: init fills a valid struct of its own size; the pointers
        // live for the calls.
        unsafe {
            let mut o: sys::nnlib_pool2d_options = std::mem::zeroed();
            check(sys::nnlib_pool2d_options_init_size(&mut o, std::mem::size_of::<sys::nnlib_pool2d_options>()))?;
            (o.stride_h, o.stride_w) = options.stride.unwrap_or((0, 0));
            (o.padding_h, o.padding_w, o.padding_bottom, o.padding_right) = options.padding;
            (o.dilation_h, o.dilation_w) = options.dilation;
            o.ceil_mode = options.ceil_mode as i32;
            o.count_include_pad = options.count_include_pad as i32;
            Layer::create(|out| sys::nnlib_pool2d_create(out, code, kernel.0, kernel.1, &o))
        }
    }

    /// Max pooling with a square kernel and stride.
    pub fn max_pool2d(kernel: i64) -> Result<Layer> {
        Layer::pool2d(PoolKind::Max, (kernel, kernel), None, (0, 0))
    }

    /// [C, H, W] -> [C], the mean of each channel.
    pub fn global_avg_pool() -> Result<Layer> {
        // SAFETY: out is a valid pointer to a handle slot.
        Layer::create(|out| unsafe { sys::nnlib_global_avgpool_create(out) })
    }

    /// Batch normalisation per channel; PyTorch's defaults are 0.1, 1e-5.
    pub fn batch_norm(momentum: f32, epsilon: f32) -> Result<Layer> {
        // SAFETY: as above.
        Layer::create(|out| unsafe { sys::nnlib_batchnorm_create(out, momentum, epsilon) })
    }

    /// Inverted dropout in training, identity in inference.
    pub fn dropout(rate: f32) -> Result<Layer> {
        // SAFETY: as above.
        Layer::create(|out| unsafe { sys::nnlib_dropout_create(out, rate) })
    }

    /// [d0, d1, ...] -> [d0 * d1 * ...] per sample.
    pub fn flatten() -> Result<Layer> {
        // SAFETY: as above.
        Layer::create(|out| unsafe { sys::nnlib_flatten_create(out) })
    }

    /// A permutation of the per-sample axes: output axis k is input axis
    /// `perm[k]`, as torch's `x.permute(0, 1 + perm[0], ...)` (the batch
    /// axis stays first); `&[1, 2, 0]` turns [C, H, W] into [H, W, C].
    /// `perm.len()` must be the input's per-sample rank (library 1.6).
    pub fn transpose(perm: &[i64]) -> Result<Layer> {
        // SAFETY: perm points to perm.len() values that live for the call
        // (which copies them).
        Layer::create(|out| unsafe { sys::nnlib_transpose_create(out, perm.as_ptr(), perm.len()) })
    }

    /// An Elman RNN (torch.nn.RNN) over sequences [N, T, F]: the model's
    /// input shape is [T, F]; the output is the hidden state of every step,
    /// [T, H] (`return_sequences`), or of the last step, [H]. tanh, or relu
    /// with `relu`. `input_size` 0 takes F at compile. Parameters:
    /// weight_ih [H, F], weight_hh [H, H], bias_ih, bias_hh [H].
    pub fn rnn(input_size: i64, hidden_size: i64, relu: bool, bias: bool, return_sequences: bool) -> Result<Layer> {
        let f = if relu { Activation::Relu } else { Activation::Tanh };
        // SAFETY: out is a valid pointer to a handle slot.
        Layer::create(|out| unsafe {
            sys::nnlib_rnn_create(out, input_size, hidden_size, f.code(), bias as i32, return_sequences as i32)
        })
    }

    /// An LSTM (torch.nn.LSTM, gates i, f, g, o), as `rnn` with 4H gate
    /// rows: weight_ih [4H, F], weight_hh [4H, H], bias_ih, bias_hh [4H].
    pub fn lstm(input_size: i64, hidden_size: i64, bias: bool, return_sequences: bool) -> Result<Layer> {
        // SAFETY: as above.
        Layer::create(|out| unsafe {
            sys::nnlib_lstm_create(out, input_size, hidden_size, bias as i32, return_sequences as i32)
        })
    }

    /// A GRU (torch.nn.GRU, gates r, z, n), as `rnn` with 3H gate rows.
    pub fn gru(input_size: i64, hidden_size: i64, bias: bool, return_sequences: bool) -> Result<Layer> {
        // SAFETY: as above.
        Layer::create(|out| unsafe {
            sys::nnlib_gru_create(out, input_size, hidden_size, bias as i32, return_sequences as i32)
        })
    }

    /// Merge layer: y = x_1 + ... + x_k of k >= 2 nodes of one shape
    /// (residual connections), for `Model::apply` on several nodes.
    pub fn add() -> Result<Layer> {
        // SAFETY: out is a valid pointer to a handle slot.
        Layer::create(|out| unsafe { sys::nnlib_add_create(out) })
    }

    /// Merge layer: y = x_1 * ... * x_k elementwise (gates).
    pub fn multiply() -> Result<Layer> {
        // SAFETY: as above.
        Layer::create(|out| unsafe { sys::nnlib_multiply_create(out) })
    }

    /// Merge layer: the inputs joined along per-sample axis `axis` (0: the
    /// features of [F], the channels of [C, H, W]; -1: the last axis).
    pub fn concat(axis: i32) -> Result<Layer> {
        // SAFETY: as above.
        Layer::create(|out| unsafe { sys::nnlib_concat_create(out, axis) })
    }

    pub fn kind(&self) -> LayerKind {
        // SAFETY: a live handle.
        LayerKind::from_code(unsafe { sys::nnlib_layer_get_kind(self.raw) })
    }

    pub fn name(&self) -> String {
        // SAFETY: a live handle; static storage.
        unsafe { cstr(sys::nnlib_layer_get_name(self.raw)) }
    }

    /// Gives the handle away (to nnlib_model_add, which takes it).
    pub(crate) fn into_raw(self) -> *mut sys::nnlib_layer {
        let raw = self.raw;
        std::mem::forget(self);
        raw
    }
}

impl Drop for Layer {
    fn drop(&mut self) {
        // SAFETY: owned, freed once.
        unsafe { sys::nnlib_layer_free(self.raw) }
    }
}

pub(crate) unsafe fn cstr(p: *const std::os::raw::c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// A layer inside a model, borrowed from it.
pub struct LayerRef<'m> {
    pub(crate) raw: *mut sys::nnlib_layer,
    pub(crate) _model: std::marker::PhantomData<&'m crate::Model>,
}

impl<'m> LayerRef<'m> {
    pub fn kind(&self) -> LayerKind {
        // SAFETY: the model (and so the layer) outlives 'm.
        LayerKind::from_code(unsafe { sys::nnlib_layer_get_kind(self.raw) })
    }

    pub fn name(&self) -> String {
        // SAFETY: as above.
        unsafe { cstr(sys::nnlib_layer_get_name(self.raw)) }
    }

    /// Per-sample output shape (after compile).
    pub fn output_shape(&self) -> Result<Vec<i64>> {
        let mut dims = [0i64; sys::NNLIB_MAX_RANK];
        let mut rank = 0usize;
        // SAFETY: dims has NNLIB_MAX_RANK slots.
        check(unsafe { sys::nnlib_layer_get_output_shape(self.raw, dims.as_mut_ptr(), dims.len(), &mut rank) })?;
        Ok(dims[..rank.min(dims.len())].to_vec())
    }

    pub fn param_count(&self) -> usize {
        // SAFETY: as above.
        unsafe { sys::nnlib_layer_get_param_count(self.raw) }
    }

    pub fn param_names(&self) -> Vec<String> {
        // SAFETY: indices below the count.
        (0..self.param_count()).map(|i| unsafe { cstr(sys::nnlib_layer_get_param_name(self.raw, i)) }).collect()
    }

    /// The shape of parameter `index` (after compile).
    pub fn param_shape(&self, index: usize) -> Result<Vec<i64>> {
        let (value, _) = self.tensors(index)?;
        // SAFETY: a borrowed, live tensor.
        Ok(unsafe { crate::tensor::shape_of(value) })
    }

    /// Parameter `index` ("weight" is 0, "bias" 1 for dense), read-only.
    pub fn param(&self, index: usize) -> Result<&'m [f32]> {
        let (value, _) = self.tensors(index)?;
        // SAFETY: the tensor's memory lives in the model, borrowed for 'm;
        // nothing mutates it while a shared borrow of the model exists.
        Ok(unsafe { slice_of(value) })
    }

    /// The gradient of parameter `index` (after backward or a step).
    pub fn grad(&self, index: usize) -> Result<&'m [f32]> {
        let (_, grad) = self.tensors(index)?;
        // SAFETY: as for param.
        Ok(unsafe { slice_of(grad) })
    }

    pub(crate) fn tensors(&self, index: usize) -> Result<(*mut sys::nnlib_tensor, *mut sys::nnlib_tensor)> {
        let mut value = ptr::null_mut();
        let mut grad = ptr::null_mut();
        // SAFETY: out pointers are valid; the call only reads the layer.
        check(unsafe { sys::nnlib_layer_get_param(self.raw, index, &mut value, &mut grad) })?;
        Ok((value, grad))
    }
}

pub(crate) unsafe fn slice_of<'a>(t: *mut sys::nnlib_tensor) -> &'a [f32] {
    std::slice::from_raw_parts(sys::nnlib_tensor_get_data_const(t), sys::nnlib_tensor_get_size(t) as usize)
}

pub(crate) unsafe fn slice_of_mut<'a>(t: *mut sys::nnlib_tensor) -> &'a mut [f32] {
    std::slice::from_raw_parts_mut(sys::nnlib_tensor_get_data(t), sys::nnlib_tensor_get_size(t) as usize)
}
