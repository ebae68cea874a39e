//! Graph models (library 1.3): model inputs, layers applied to earlier
//! nodes (merge layers to several), the calls that take one slice per
//! model input, and the gradients with respect to the inputs.
//!
//! ```no_run
//! use nnlib::{Layer, Loss, Model};
//! # fn main() -> nnlib::Result<()> {
//! let mut m = Model::new()?;
//! let x = m.input(&[4])?;
//! let h = m.apply(Layer::dense(0, 4, true)?, &[x])?;
//! let sum = m.apply(Layer::add()?, &[x, h])?; // a residual connection
//! let y = m.apply(Layer::dense(0, 2, true)?, &[sum])?;
//! m.set_output(y)?;
//! m.compile_graph(16, Loss::Mse, None, 1)?;
//! # Ok(()) }
//! ```
//!
//! A layer is moved into the model when it is applied, so it makes exactly
//! one node. A node is only valid with the model that made it; another
//! model's node is `Status::InvalidArgument`.

use std::ffi::CString;
use std::marker::PhantomData;
use std::os::raw::c_int;
use std::ptr;

use nnlib_sys as sys;

use crate::error::{check, Error, Result, Status};
use crate::layer::{cstr, slice_of, Layer, LayerRef};
use crate::model::{batch_dims, FitHistory, FitOptions, Model};
use crate::optim::Optimizer;
use crate::tensor::Wrap;
use crate::Loss;

/// A node of a graph model: a model input or a layer's output. Only valid
/// with the model that made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Node(sys::nnlib_node);

impl Node {
    /// The C handle, (model tag << 32) | node index.
    pub fn raw(self) -> sys::nnlib_node {
        self.0
    }

    /// The node's number in its model: 0, 1, ... in the order made.
    pub fn index(self) -> usize {
        (self.0 & 0xffff_ffff) as usize
    }
}

/// One node of a model's graph, read back (nnlib_node_info).
pub struct NodeInfo<'m> {
    pub node: Node,
    pub name: Option<String>,
    /// None for a model input.
    pub layer: Option<LayerRef<'m>>,
    /// As `Model::layer`; None for a model input.
    pub layer_index: Option<usize>,
    /// The model input number; None for a layer.
    pub input_index: Option<usize>,
    /// The nodes it reads.
    pub inputs: Vec<Node>,
    /// Per-sample output shape; None for a layer before compile.
    pub shape: Option<Vec<i64>>,
    pub is_output: bool,
}

/// Validation and early stopping for `Model::fit_validated_inputs`: as
/// `Validation`, with one slice of samples per model input.
pub struct ValidationInputs<'a> {
    pub x: &'a [&'a [f32]],
    pub target: &'a [f32],
    pub patience: i64,
    pub min_delta: f32,
    pub restore_best: bool,
}

/// Tensors over one slice per model input and the C array of their
/// handles (`const nnlib_tensor *const *`); freed on drop.
pub(crate) struct Inputs<'a> {
    _wraps: Vec<Wrap<'a>>,
    pub(crate) raw: Vec<*const sys::nnlib_tensor>,
    /// N, the samples of the first input (the library checks the others)
    pub(crate) samples: i64,
}

impl<'a> Inputs<'a> {
    /// Wraps xs[i] as [N_i, shapes[i]...].
    pub(crate) fn wrap(xs: &[&'a [f32]], shapes: &[Vec<i64>]) -> Result<Inputs<'a>> {
        if xs.len() != shapes.len() {
            return Err(Error::new(
                Status::InvalidArgument,
                format!("the model has {} inputs, got {} slices", shapes.len(), xs.len()),
            ));
        }
        let mut wraps = Vec::with_capacity(xs.len());
        let mut samples = 0;
        for (i, (x, shape)) in xs.iter().zip(shapes).enumerate() {
            let what = if shapes.len() == 1 { "input".to_string() } else { format!("input {}", i) };
            let dims = batch_dims(x.len(), Model::per_sample(shape), shape, &what)?;
            if i == 0 {
                samples = dims[0];
            }
            wraps.push(Wrap::input(x, &dims)?);
        }
        let raw = wraps.iter().map(|w| w.as_const()).collect();
        Ok(Inputs { _wraps: wraps, raw, samples })
    }
}

fn c_name(name: &str) -> Result<CString> {
    CString::new(name).map_err(|_| Error::new(Status::InvalidArgument, "a node name contains a NUL byte"))
}

impl Model {
    // ---------------------------------------------------------- building

    /// Declares the next model input (0, 1, ...) of per-sample shape
    /// `shape`; every call that takes data takes one slice per input, in
    /// this order.
    pub fn input(&mut self, shape: &[i64]) -> Result<Node> {
        let mut node = 0;
        // SAFETY: a valid shape array and out pointer.
        check(unsafe { sys::nnlib_model_input(self.raw, shape.as_ptr(), shape.len(), &mut node) })?;
        Ok(Node(node))
    }

    /// Applies `layer` to `inputs` (two or more for a merge layer, one for
    /// any other) and returns its node. The model takes the layer, also
    /// when this fails.
    pub fn apply(&mut self, layer: Layer, inputs: &[Node]) -> Result<Node> {
        let handles: Vec<sys::nnlib_node> = inputs.iter().map(|n| n.0).collect();
        let mut node = 0;
        // SAFETY: the layer is handed over; the array holds inputs.len()
        // handles, read during the call.
        check(unsafe { sys::nnlib_model_apply(self.raw, layer.into_raw(), handles.as_ptr(), handles.len(), &mut node) })?;
        Ok(Node(node))
    }

    /// Makes `node` the model's output (default: the newest node); once.
    pub fn set_output(&mut self, node: Node) -> Result<()> {
        // SAFETY: a live handle; the library checks the node.
        check(unsafe { sys::nnlib_model_set_output(self.raw, node.0) })
    }

    /// Names a node for description text, messages and `nodes`: 1 to 31
    /// characters of [A-Za-z0-9_], not starting with a digit, unique.
    pub fn set_node_name(&mut self, node: Node, name: &str) -> Result<()> {
        let name = c_name(name)?;
        // SAFETY: a NUL-terminated string, copied by the library.
        check(unsafe { sys::nnlib_model_set_node_name(self.raw, node.0, name.as_ptr()) })
    }

    /// `compile` for a model whose inputs are declared (`input`, or input
    /// items of a description). The model takes the optimizer, also when
    /// this fails.
    pub fn compile_graph(&mut self, max_batch: i64, loss: Loss, optimizer: Option<Optimizer>, seed: u64) -> Result<()> {
        let opt = optimizer.map_or(ptr::null_mut(), Optimizer::into_raw);
        // SAFETY: the optimizer is handed over.
        check(unsafe { sys::nnlib_model_compile_graph(self.raw, max_batch, loss.code(), opt, seed) })
    }

    // ----------------------------------------------------------- reading

    /// Number of model inputs (slices each `*_inputs` call takes).
    pub fn input_count(&self) -> usize {
        // SAFETY: a live handle.
        unsafe { sys::nnlib_model_get_input_count(self.raw) }
    }

    /// Number of nodes, inputs included.
    pub fn node_count(&self) -> usize {
        // SAFETY: a live handle.
        unsafe { sys::nnlib_model_get_node_count(self.raw) }
    }

    /// Node number `index` (in the order made).
    pub fn node(&self, index: usize) -> Result<NodeInfo<'_>> {
        // SAFETY: a plain C struct whose struct_size we set.
        let mut info: sys::nnlib_node_info = unsafe { std::mem::zeroed() };
        info.struct_size = std::mem::size_of::<sys::nnlib_node_info>();
        check(unsafe { sys::nnlib_model_get_node(self.raw, index, &mut info) })?;
        let inputs = if info.input_count == 0 {
            Vec::new()
        } else {
            // SAFETY: input_count handles, borrowed from the model.
            unsafe { std::slice::from_raw_parts(info.inputs, info.input_count) }.iter().map(|&h| Node(h)).collect()
        };
        let index_of = |i: i64| if i >= 0 { Some(i as usize) } else { None };
        Ok(NodeInfo {
            node: Node(info.node),
            // SAFETY: NULL or a NUL-terminated string of the model.
            name: if info.name.is_null() { None } else { Some(unsafe { cstr(info.name) }) },
            layer: if info.layer.is_null() { None } else { Some(LayerRef { raw: info.layer, _model: PhantomData }) },
            layer_index: index_of(info.layer_index),
            input_index: index_of(info.input_index),
            inputs,
            shape: if info.rank == 0 { None } else { Some(info.shape[..info.rank.min(sys::NNLIB_MAX_RANK)].to_vec()) },
            is_output: info.is_output != 0,
        })
    }

    /// Every node, in the order made.
    pub fn nodes(&self) -> Result<Vec<NodeInfo<'_>>> {
        (0..self.node_count()).map(|i| self.node(i)).collect()
    }

    /// Per-sample shape of model input `input` (after compile).
    pub fn input_shape_at(&self, input: usize) -> Result<Vec<i64>> {
        let mut dims = [0i64; sys::NNLIB_MAX_RANK];
        let mut rank = 0usize;
        // SAFETY: dims has NNLIB_MAX_RANK slots.
        check(unsafe { sys::nnlib_model_get_input_shape_at(self.raw, input, dims.as_mut_ptr(), dims.len(), &mut rank) })?;
        Ok(dims[..rank.min(dims.len())].to_vec())
    }

    // ------------------------------------------------- several inputs

    /// One slice per model input, each of the same number N of samples
    /// of that input's shape.
    fn wrap_inputs<'a>(&self, xs: &[&'a [f32]]) -> Result<Inputs<'a>> {
        let shapes = (0..self.input_count()).map(|i| self.input_shape_at(i)).collect::<Result<Vec<_>>>()?;
        Inputs::wrap(xs, &shapes)
    }

    /// Outputs for the samples of `xs`, one slice per model input (any N,
    /// inference mode): N * output size floats.
    pub fn predict_inputs(&mut self, xs: &[&[f32]]) -> Result<Vec<f32>> {
        let n = self.wrap_inputs(xs)?.samples as usize;
        let mut y = vec![0f32; n * Model::per_sample(&self.output_shape()?)];
        self.predict_inputs_into(xs, &mut y)?;
        Ok(y)
    }

    /// `predict_inputs` into a caller's slice of N * output size floats.
    pub fn predict_inputs_into(&mut self, xs: &[&[f32]], y: &mut [f32]) -> Result<()> {
        let inputs = self.wrap_inputs(xs)?;
        let n = inputs.samples.max(1);
        let mut ty = Wrap::output(y, &[n, y.len() as i64 / n])?;
        // SAFETY: live handles; the wraps borrow the slices and y.
        check(unsafe { sys::nnlib_model_predict_inputs(self.raw, inputs.raw.as_ptr(), inputs.raw.len(), ty.as_mut()) })
    }

    /// Training-mode forward pass of one batch; a copy of the output. The
    /// model keeps a copy of the inputs for a following `backward_output`
    /// (the library reads the pass's inputs again there).
    pub fn forward_inputs(&mut self, xs: &[&[f32]]) -> Result<Vec<f32>> {
        let kept: Vec<Vec<f32>> = xs.iter().map(|x| x.to_vec()).collect();
        let refs: Vec<&[f32]> = kept.iter().map(|x| x.as_slice()).collect();
        let inputs = self.wrap_inputs(&refs)?;
        let mut out: *const sys::nnlib_tensor = ptr::null();
        // SAFETY: live handles; *out is borrowed until the next call. The
        // library keeps pointers to kept's elements, which move into the
        // model below (the heap buffers do not move).
        check(unsafe { sys::nnlib_model_forward_inputs(self.raw, inputs.raw.as_ptr(), inputs.raw.len(), &mut out) })?;
        drop(inputs);
        drop(refs);
        self.forward_inputs = kept;
        // SAFETY: a live tensor of the model.
        Ok(unsafe { slice_of(out as *mut sys::nnlib_tensor) }.to_vec())
    }

    fn batch_inputs(&mut self, xs: &[&[f32]], target: &[f32], step: bool) -> Result<f32> {
        let inputs = self.wrap_inputs(xs)?;
        let td = Model::target_dims(inputs.samples, target)?;
        let tt = Wrap::input(target, &td)?;
        let (p, n) = (inputs.raw.as_ptr(), inputs.raw.len());
        let mut loss = 0f32;
        // SAFETY: live handles and a valid out pointer.
        check(unsafe {
            if step {
                sys::nnlib_model_step_inputs(self.raw, p, n, tt.as_const(), &mut loss)
            } else {
                sys::nnlib_model_backward_inputs(self.raw, p, n, tt.as_const(), &mut loss)
            }
        })?;
        Ok(loss)
    }

    /// Forward, loss and backward on one batch: the loss; gradients in the
    /// layers, and in the inputs while input gradients are on.
    pub fn backward_inputs(&mut self, xs: &[&[f32]], target: &[f32]) -> Result<f32> {
        self.batch_inputs(xs, target, false)
    }

    /// One training step on one batch; the loss.
    pub fn step_inputs(&mut self, xs: &[&[f32]], target: &[f32]) -> Result<f32> {
        self.batch_inputs(xs, target, true)
    }

    /// (mean loss, accuracy) over all samples in inference mode.
    pub fn evaluate_inputs(&mut self, xs: &[&[f32]], target: &[f32]) -> Result<(Option<f32>, f32)> {
        let inputs = self.wrap_inputs(xs)?;
        let td = Model::target_dims(inputs.samples, target)?;
        let tt = Wrap::input(target, &td)?;
        let has_loss = self.loss() != Some(Loss::None);
        let (mut loss, mut acc) = (0f32, 0f32);
        let loss_ptr: *mut f32 = if has_loss { &mut loss } else { ptr::null_mut() };
        // SAFETY: live handles, valid out pointers.
        check(unsafe {
            sys::nnlib_model_evaluate_inputs(self.raw, inputs.raw.as_ptr(), inputs.raw.len(), tt.as_const(), loss_ptr, &mut acc)
        })?;
        Ok((if has_loss { Some(loss) } else { None }, acc))
    }

    /// Trains on all samples of `xs` (one slice per input); the mean loss
    /// of each epoch.
    pub fn fit_inputs(&mut self, xs: &[&[f32]], target: &[f32], options: FitOptions<'_>) -> Result<Vec<f32>> {
        Ok(self.fit_inputs_inner(xs, target, options, None)?.losses)
    }

    /// `fit_inputs` with a validation pass after every epoch, early
    /// stopping and restore-best.
    pub fn fit_validated_inputs(
        &mut self,
        xs: &[&[f32]],
        target: &[f32],
        options: FitOptions<'_>,
        validation: &ValidationInputs<'_>,
    ) -> Result<FitHistory> {
        self.fit_inputs_inner(xs, target, options, Some(validation))
    }

    fn fit_inputs_inner(
        &mut self,
        xs: &[&[f32]],
        target: &[f32],
        options: FitOptions<'_>,
        validation: Option<&ValidationInputs<'_>>,
    ) -> Result<FitHistory> {
        let inputs = self.wrap_inputs(xs)?;
        let td = Model::target_dims(inputs.samples, target)?;
        let tt = Wrap::input(target, &td)?;
        let held_out = match validation {
            None => None,
            Some(val) => {
                let vx = self.wrap_inputs(val.x)?;
                let vtd = Model::target_dims(vx.samples, val.target)?;
                let vt = Wrap::input(val.target, &vtd)?;
                Some((vx, vt))
            }
        };
        let settings = validation.map(|v| (v.patience, v.min_delta, v.restore_best));
        let (p, n) = (inputs.raw.as_ptr(), inputs.raw.len());
        self.fit_run(options, settings, |raw, o, v| match (v, &held_out) {
            (Some(mut v), Some((vx, vt))) => {
                v.x = ptr::null(); // the validation inputs go as a list
                v.target = vt.as_const();
                // SAFETY: live handles; every buffer outlives the call.
                unsafe { sys::nnlib_model_fit_inputs(raw, p, n, tt.as_const(), o, &v, vx.raw.as_ptr()) }
            }
            // SAFETY: as above.
            _ => unsafe { sys::nnlib_model_fit_inputs(raw, p, n, tt.as_const(), o, ptr::null(), ptr::null()) },
        })
    }

    /// Worst normwise relative error of backprop against finite
    /// differences on a batch of several inputs.
    pub fn gradcheck_inputs(&mut self, xs: &[&[f32]], target: &[f32]) -> Result<f64> {
        let inputs = self.wrap_inputs(xs)?;
        let td = Model::target_dims(inputs.samples, target)?;
        let tt = Wrap::input(target, &td)?;
        // SAFETY: a plain C struct, filled by init.
        let mut o: sys::nnlib_gradcheck_options = unsafe { std::mem::zeroed() };
        check(unsafe { sys::nnlib_gradcheck_options_init(&mut o) })?;
        let mut err = 0f64;
        // SAFETY: live handles, valid pointers.
        check(unsafe {
            sys::nnlib_model_gradcheck_inputs(self.raw, inputs.raw.as_ptr(), inputs.raw.len(), tt.as_const(), &o, &mut err)
        })?;
        Ok(err)
    }

    // ------------------------------------------------- input gradients

    /// on: every backward pass (backward, step, fit, backward_output) also
    /// leaves dL/dx of each model input (`input_gradients`); off frees
    /// those buffers. Off by default.
    pub fn set_input_gradients(&mut self, on: bool) -> Result<()> {
        // SAFETY: a live handle.
        check(unsafe { sys::nnlib_model_set_input_gradients(self.raw, on as c_int) })
    }

    /// dL/dx of model input `input` from the last backward pass, N *
    /// input size floats. `Status::WrongState` when input gradients are off
    /// or no backward pass ran since they were switched on.
    pub fn input_gradient(&mut self, input: usize) -> Result<Vec<f32>> {
        let mut grad: *const sys::nnlib_tensor = ptr::null();
        // SAFETY: a valid out pointer; the tensor is the model's.
        check(unsafe { sys::nnlib_model_get_input_gradient(self.raw, input, &mut grad) })?;
        // SAFETY: a live tensor, copied before the next call.
        Ok(unsafe { slice_of(grad as *mut sys::nnlib_tensor) }.to_vec())
    }

    /// `input_gradient` of every model input, in order.
    pub fn input_gradients(&mut self) -> Result<Vec<Vec<f32>>> {
        (0..self.input_count()).map(|i| self.input_gradient(i)).collect()
    }

    /// Backward from a gradient of the output that the caller gives (custom
    /// losses, models in sequence): after `forward` or `forward_inputs` on
    /// a batch of N, `output_grad` (N * output size floats) is dL/dy.
    /// Writes every parameter gradient and, when on, the input gradients;
    /// applies no update (`optimizer_step` does). Reads the copies of the
    /// inputs that `forward` kept, so the caller's slices may have changed.
    pub fn backward_output(&mut self, output_grad: &[f32]) -> Result<()> {
        let out = self.output_shape()?;
        let dims = batch_dims(output_grad.len(), Model::per_sample(&out), &out, "output gradient")?;
        let tg = Wrap::input(output_grad, &dims)?;
        // SAFETY: live handles; the wrap borrows output_grad for the call;
        // the forward pass's inputs are the model's own copies.
        check(unsafe { sys::nnlib_model_backward_output(self.raw, tg.as_const()) })?;
        self.forward_inputs = Vec::new(); // the pass is spent
        Ok(())
    }
}
