//! The model: a chain of layers or a graph (see `graph.rs` for the graph
//! calls), its training and inference calls, files and workspaces.

use std::any::Any;
use std::ffi::CString;
use std::marker::PhantomData;
use std::os::raw::{c_int, c_void};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::Path;
use std::ptr;

use nnlib_sys as sys;

use crate::error::{check, Error, Result, Status};
use crate::layer::{slice_of_mut, Layer, LayerKind, LayerRef};
use crate::optim::Optimizer;
use crate::tensor::Wrap;

/// nnlib_loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// Inference only.
    None,
    /// Mean over all elements of (y - t)^2.
    Mse,
    /// Binary cross-entropy on logits, mean over all elements.
    BceLogits,
    /// Softmax + cross-entropy on logits, mean over the batch; targets are
    /// one-hot rows or class indices.
    SoftmaxCe,
}

impl Loss {
    pub fn code(self) -> sys::nnlib_loss {
        match self {
            Loss::None => sys::NNLIB_LOSS_NONE,
            Loss::Mse => sys::NNLIB_LOSS_MSE,
            Loss::BceLogits => sys::NNLIB_LOSS_BCE_LOGITS,
            Loss::SoftmaxCe => sys::NNLIB_LOSS_SOFTMAX_CE,
        }
    }

    pub fn from_code(code: sys::nnlib_loss) -> Option<Loss> {
        match code {
            sys::NNLIB_LOSS_NONE => Some(Loss::None),
            sys::NNLIB_LOSS_MSE => Some(Loss::Mse),
            sys::NNLIB_LOSS_BCE_LOGITS => Some(Loss::BceLogits),
            sys::NNLIB_LOSS_SOFTMAX_CE => Some(Loss::SoftmaxCe),
            _ => None,
        }
    }
}

/// What the fit progress closure sees after every batch.
pub type Progress = sys::nnlib_progress;

/// Options of `Model::fit`. The progress closure returns true to go on and
/// false to stop (fit then fails with `Status::Cancelled`); a panic in it
/// stops training cleanly and is resumed after the C call returns.
pub struct FitOptions<'a> {
    pub epochs: i64,
    /// 0: the compiled maximum batch.
    pub batch_size: i64,
    pub shuffle: bool,
    pub progress: Option<&'a mut dyn FnMut(&Progress) -> bool>,
}

impl Default for FitOptions<'_> {
    fn default() -> Self {
        FitOptions { epochs: 1, batch_size: 0, shuffle: true, progress: None }
    }
}

/// Validation and early stopping for `Model::fit_validated` (library 1.1):
/// after every epoch the mean loss over these samples in inference mode.
pub struct Validation<'a> {
    pub x: &'a [f32],
    pub target: &'a [f32],
    /// > 0: stop once the validation loss has not improved for this many
    /// epochs; 0: run every epoch.
    pub patience: i64,
    /// An improvement is a loss below the best so far by more than this.
    pub min_delta: f32,
    /// End with the parameters (and batchnorm statistics) of the epoch with
    /// the lowest validation loss.
    pub restore_best: bool,
}

/// What `Model::fit_validated` returns, one entry per epoch run.
#[derive(Clone, Debug, PartialEq)]
pub struct FitHistory {
    pub losses: Vec<f32>,
    pub validation_losses: Vec<f32>,
}

struct CallbackState<'a, 'b> {
    f: &'a mut (dyn FnMut(&Progress) -> bool + 'b),
    panic: Option<Box<dyn Any + Send + 'static>>,
}

unsafe extern "C" fn progress_trampoline(progress: *const sys::nnlib_progress, user: *mut c_void) -> c_int {
    // SAFETY: user is the CallbackState that fit passed, alive for the call.
    let state = &mut *(user as *mut CallbackState);
    let p = &*progress;
    match catch_unwind(AssertUnwindSafe(|| (state.f)(p))) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(payload) => {
            // unwinding through C is undefined: stop, and resume it later
            state.panic = Some(payload);
            1
        }
    }
}

pub(crate) fn c_path(path: &Path) -> Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::new(Status::InvalidArgument, format!("path {:?} contains a NUL byte", path)))
}

/// Checks that the loaded library has the major version these bindings
/// were written for.
pub fn check_version() -> Result<()> {
    // SAFETY: no arguments, thread-safe.
    let v = unsafe { sys::nnlib_version() };
    if v / 10000 != sys::NNLIB_VERSION_MAJOR {
        return Err(Error::new(
            Status::Unsupported,
            format!("libnnlib version {} has major {}, these bindings need {}", v, v / 10000, sys::NNLIB_VERSION_MAJOR),
        ));
    }
    Ok(())
}

/// A model, a chain of layers or a graph of nodes (`input`, `apply`,
/// `set_output`); frees itself, its layers and its optimizer on drop.
///
/// `Send` (a model may move to another thread) but not `Sync`: the C
/// library lets one thread at a time use a model. For concurrent inference
/// use `workspaces`.
pub struct Model {
    pub(crate) raw: *mut sys::nnlib_model,
    /// Copies of the inputs of the last forward pass that ran:
    /// nnlib_model_forward keeps pointers to them and
    /// nnlib_model_backward_output reads them again, after the caller's
    /// slices were released.
    pub(crate) forward_inputs: Vec<Vec<f32>>,
}

// SAFETY: distinct handles may be used from different threads.
unsafe impl Send for Model {}

impl Model {
    pub fn new() -> Result<Model> {
        check_version()?;
        let mut raw = ptr::null_mut();
        // SAFETY: a valid out pointer.
        check(unsafe { sys::nnlib_model_create(&mut raw) })?;
        Ok(Model::from_raw(raw))
    }

    /// A model with the layers of a description ("dense:4,sigmoid,dense:1").
    pub fn from_spec(spec: &str) -> Result<Model> {
        let mut m = Model::new()?;
        m.add_spec(spec)?;
        Ok(m)
    }

    /// Takes ownership of a model handle the library returned.
    pub(crate) fn from_raw(raw: *mut sys::nnlib_model) -> Model {
        Model { raw, forward_inputs: Vec::new() }
    }

    pub fn as_raw(&self) -> *const sys::nnlib_model {
        self.raw
    }

    pub fn as_mut_raw(&mut self) -> *mut sys::nnlib_model {
        self.raw
    }

    /// Appends a layer; the model takes it, also when this fails.
    pub fn add(&mut self, layer: Layer) -> Result<()> {
        // SAFETY: the handle is handed over; the model owns it from now on.
        check(unsafe { sys::nnlib_model_add(self.raw, layer.into_raw()) })
    }

    /// Builder form of `add`.
    pub fn with(mut self, layer: Result<Layer>) -> Result<Model> {
        self.add(layer?)?;
        Ok(self)
    }

    /// Appends the layers of a description.
    pub fn add_spec(&mut self, spec: &str) -> Result<()> {
        let spec = CString::new(spec).map_err(|_| Error::new(Status::InvalidArgument, "spec contains a NUL byte"))?;
        // SAFETY: a NUL-terminated string.
        check(unsafe { sys::nnlib_model_add_spec(self.raw, spec.as_ptr()) })
    }

    /// The description of the layers (the inverse of add_spec).
    pub fn spec(&self) -> Result<String> {
        let mut needed = 0usize;
        // SAFETY: capacity 0 with a NULL buffer asks for the length.
        check(unsafe { sys::nnlib_model_get_spec(self.raw, ptr::null_mut(), 0, &mut needed) })?;
        let mut buf = vec![0u8; needed + 1];
        // SAFETY: buf has needed + 1 bytes.
        check(unsafe { sys::nnlib_model_get_spec(self.raw, buf.as_mut_ptr() as *mut _, buf.len(), &mut needed) })?;
        buf.truncate(needed);
        String::from_utf8(buf).map_err(|_| Error::new(Status::Internal, "spec is not UTF-8"))
    }

    /// Plans the model for per-sample inputs of `input_shape` and batches of
    /// up to `max_batch`, and initialises the weights from `seed`. The
    /// model takes the optimizer, also when this fails.
    pub fn compile(
        &mut self,
        input_shape: &[i64],
        max_batch: i64,
        loss: Loss,
        optimizer: Option<Optimizer>,
        seed: u64,
    ) -> Result<()> {
        let opt = optimizer.map_or(ptr::null_mut(), Optimizer::into_raw);
        // SAFETY: a valid shape array; the optimizer is handed over.
        check(unsafe {
            sys::nnlib_model_compile(self.raw, input_shape.as_ptr(), input_shape.len(), max_batch, loss.code(), opt, seed)
        })
    }

    /// Replaces the optimizer of a compiled model (taken also on failure).
    pub fn set_optimizer(&mut self, optimizer: Optimizer) -> Result<()> {
        // SAFETY: the handle is handed over.
        check(unsafe { sys::nnlib_model_set_optimizer(self.raw, optimizer.into_raw()) })
    }

    // ------------------------------------------------------------ getters

    pub fn layer_count(&self) -> usize {
        // SAFETY: a live handle.
        unsafe { sys::nnlib_model_get_layer_count(self.raw) }
    }

    pub fn layer(&self, index: usize) -> Option<LayerRef<'_>> {
        // SAFETY: the getter only reads; NULL for an index out of range.
        let raw = unsafe { sys::nnlib_model_get_layer(self.raw, index) };
        if raw.is_null() {
            None
        } else {
            Some(LayerRef { raw, _model: PhantomData })
        }
    }

    pub fn layers(&self) -> Vec<LayerRef<'_>> {
        (0..self.layer_count()).filter_map(|i| self.layer(i)).collect()
    }

    /// Writable parameter `param` of layer `layer` (after compile): writes
    /// change the model.
    pub fn param_mut(&mut self, layer: usize, param: usize) -> Result<&mut [f32]> {
        let l = self
            .layer(layer)
            .ok_or_else(|| Error::new(Status::OutOfRange, format!("layer {} of {}", layer, self.layer_count())))?;
        let (value, _) = l.tensors(param)?;
        // SAFETY: the memory lives in the model, borrowed uniquely.
        Ok(unsafe { slice_of_mut(value) })
    }

    /// The state recurrent layer `layer` starts every sequence from (after
    /// compile): `h0` (and `c0`, lstm only) hold `rows` rows of H floats,
    /// one row for every sample or one per sample (every batch then has
    /// `rows` samples); `None` is zeros. Not saved in model files.
    pub fn set_initial_state(&mut self, layer: usize, h0: Option<&[f32]>, c0: Option<&[f32]>, rows: i64) -> Result<()> {
        let l = self
            .layer(layer)
            .ok_or_else(|| Error::new(Status::OutOfRange, format!("layer {} of {}", layer, self.layer_count())))?;
        if !matches!(l.kind(), LayerKind::Rnn | LayerKind::Lstm | LayerKind::Gru) {
            return Err(Error::new(Status::InvalidArgument, format!("layer {} is {}, not recurrent", layer, l.name())));
        }
        let hidden = l.param_shape(1)?[1]; // weight_hh [G*H, H]
        for state in [h0, c0].iter().flatten() {
            if rows < 1 || state.len() as i64 != rows * hidden {
                return Err(Error::new(
                    Status::ShapeMismatch,
                    format!("initial state has {} floats, {} rows of {} need {}", state.len(), rows, hidden, rows * hidden),
                ));
            }
        }
        let raw = l.raw;
        let ptr = |s: Option<&[f32]>| s.map_or(std::ptr::null(), |v| v.as_ptr());
        // SAFETY: the slices hold rows * H floats, read during the call.
        check(unsafe { sys::nnlib_recurrent_set_initial_state(raw, ptr(h0), ptr(c0), rows) })
    }

    pub fn loss(&self) -> Option<Loss> {
        // SAFETY: a live handle.
        Loss::from_code(unsafe { sys::nnlib_model_get_loss(self.raw) })
    }

    /// Trainable scalars (after compile).
    pub fn param_count(&self) -> Result<i64> {
        let mut n = 0i64;
        // SAFETY: a valid out pointer.
        check(unsafe { sys::nnlib_model_get_param_count(self.raw, &mut n) })?;
        Ok(n)
    }

    fn shape(&self, getter: unsafe extern "C" fn(*const sys::nnlib_model, *mut i64, usize, *mut usize) -> i32) -> Result<Vec<i64>> {
        let mut dims = [0i64; sys::NNLIB_MAX_RANK];
        let mut rank = 0usize;
        // SAFETY: dims has NNLIB_MAX_RANK slots.
        check(unsafe { getter(self.raw, dims.as_mut_ptr(), dims.len(), &mut rank) })?;
        Ok(dims[..rank.min(dims.len())].to_vec())
    }

    /// Per-sample input shape (after compile).
    pub fn input_shape(&self) -> Result<Vec<i64>> {
        self.shape(sys::nnlib_model_get_input_shape)
    }

    /// Per-sample output shape (after compile).
    pub fn output_shape(&self) -> Result<Vec<i64>> {
        self.shape(sys::nnlib_model_get_output_shape)
    }

    pub fn max_batch(&self) -> i64 {
        // SAFETY: a live handle.
        unsafe { sys::nnlib_model_get_max_batch(self.raw) }
    }

    fn optimizer_raw(&self) -> Result<*mut sys::nnlib_optimizer> {
        // SAFETY: the getter only reads.
        let opt = unsafe { sys::nnlib_model_get_optimizer(self.raw) };
        if opt.is_null() {
            Err(Error::new(Status::WrongState, "the model has no optimizer"))
        } else {
            Ok(opt)
        }
    }

    pub fn learning_rate(&self) -> Result<f32> {
        // SAFETY: a live optimizer of this model.
        Ok(unsafe { sys::nnlib_optimizer_get_learning_rate(self.optimizer_raw()?) })
    }

    pub fn set_learning_rate(&mut self, learning_rate: f32) -> Result<()> {
        // SAFETY: as above, with the model uniquely borrowed.
        check(unsafe { sys::nnlib_optimizer_set_learning_rate(self.optimizer_raw()?, learning_rate) })
    }

    /// The options the model's optimizer runs with (also after a load).
    pub fn optimizer_options(&self) -> Result<sys::nnlib_optimizer_options> {
        crate::optim::read_options(self.optimizer_raw()?)
    }

    /// Optimizer updates applied so far.
    pub fn step_count(&self) -> Result<i64> {
        // SAFETY: as above.
        Ok(unsafe { sys::nnlib_optimizer_get_step_count(self.optimizer_raw()?) })
    }

    // --------------------------------------------------------- shapes of data

    pub(crate) fn per_sample(shape: &[i64]) -> usize {
        shape.iter().product::<i64>() as usize
    }

    /// [N, input...] for a slice of N samples.
    pub(crate) fn input_dims(&self, x: &[f32]) -> Result<Vec<i64>> {
        let count = self.input_count();
        if count > 1 {
            return Err(Error::new(
                Status::InvalidArgument,
                format!("the model has {} inputs: give one slice per input (predict_inputs, ...)", count),
            ));
        }
        let input = self.input_shape()?;
        batch_dims(x.len(), Self::per_sample(&input), &input, "input")
    }

    /// [N, steps, F] for a slice of N sequences of `steps` steps of the F
    /// features of a model compiled for input [T, F]. `steps` may differ
    /// from T: the library takes 1 <= steps <= T where the model allows it.
    fn sequence_dims(&self, x: &[f32], steps: usize) -> Result<Vec<i64>> {
        let input = self.input_shape()?;
        if input.len() != 2 {
            return Err(Error::new(
                Status::ShapeMismatch,
                format!("sequences need a model compiled for input [T, F]; this one takes {:?}", input),
            ));
        }
        if steps == 0 {
            return Err(Error::new(Status::InvalidArgument, "a sequence needs at least one step"));
        }
        let features = input[1] as usize;
        let per_sequence = steps
            .checked_mul(features)
            .ok_or_else(|| Error::new(Status::TooLarge, format!("{} steps of {} features overflow", steps, features)))?;
        if x.is_empty() || x.len() % per_sequence != 0 {
            return Err(Error::new(
                Status::ShapeMismatch,
                format!(
                    "input of {} floats is not a whole number of sequences of {} steps of {} features ({} floats each)",
                    x.len(),
                    steps,
                    features,
                    per_sequence
                ),
            ));
        }
        Ok(vec![(x.len() / per_sequence) as i64, steps as i64, input[1]])
    }

    /// [N, k] for N samples of k target values each.
    pub(crate) fn target_dims(n: i64, t: &[f32]) -> Result<Vec<i64>> {
        if n <= 0 || t.len() % n as usize != 0 || t.is_empty() {
            return Err(Error::new(
                Status::ShapeMismatch,
                format!("{} target values do not divide into {} samples", t.len(), n),
            ));
        }
        Ok(vec![n, t.len() as i64 / n])
    }

    // ----------------------------------------------------------- running

    /// Outputs for the samples in `x` (any number, in inference mode),
    /// [N * output size] in row-major order.
    pub fn predict(&mut self, x: &[f32]) -> Result<Vec<f32>> {
        let xd = self.input_dims(x)?;
        self.predict_dims(x, &xd)
    }

    /// `predict` on N sequences of `steps` steps ([N, steps, F] row-major;
    /// N = x.len() / (steps * F)) for a model compiled for input [T, F]. A
    /// model whose recurrent layers come first and end in one returning its
    /// last step takes any 1 <= steps <= T (library 1.2), with outputs of
    /// the same size as at T; one made of recurrent layers only outputs
    /// the sequence, N * steps * H floats; other models fail with
    /// `Status::ShapeMismatch` for steps < T, and steps > T is
    /// `Status::TooLarge`. A slice that is not a whole number of sequences
    /// is `Status::ShapeMismatch`, steps = 0 `Status::InvalidArgument`.
    pub fn predict_sequences(&mut self, x: &[f32], steps: usize) -> Result<Vec<f32>> {
        let xd = self.sequence_dims(x, steps)?;
        self.predict_dims(x, &xd)
    }

    fn predict_dims(&mut self, x: &[f32], xd: &[i64]) -> Result<Vec<f32>> {
        let mut out = self.output_shape()?;
        let input = self.input_shape()?;
        // a sequence output [T, H] is [steps, H] for sequences of `steps`
        if xd.len() == 3 && out.len() == 2 && input.len() == 2 && out[0] == input[0] {
            out[0] = xd[1];
        }
        let mut y = vec![0f32; xd[0] as usize * Self::per_sample(&out)];
        self.predict_into_dims(x, xd, &mut y)?;
        Ok(y)
    }

    /// `predict` into a caller's slice of exactly N * output size floats.
    pub fn predict_into(&mut self, x: &[f32], y: &mut [f32]) -> Result<()> {
        let xd = self.input_dims(x)?;
        self.predict_into_dims(x, &xd, y)
    }

    fn predict_into_dims(&mut self, x: &[f32], xd: &[i64], y: &mut [f32]) -> Result<()> {
        let yd = vec![xd[0], y.len() as i64 / xd[0].max(1)];
        let tx = Wrap::input(x, xd)?;
        let mut ty = Wrap::output(y, &yd)?;
        // SAFETY: live handles; the wraps borrow x and y for the call.
        check(unsafe { sys::nnlib_model_predict(self.raw, tx.as_const(), ty.as_mut()) })
    }

    /// Training-mode forward pass of one batch; a copy of the output. The
    /// model keeps a copy of `x` for a following `backward_output` (the
    /// library reads the pass's inputs again there).
    pub fn forward(&mut self, x: &[f32]) -> Result<Vec<f32>> {
        let xd = self.input_dims(x)?;
        let kept = x.to_vec();
        let tx = Wrap::input(&kept, &xd)?;
        let mut out: *const sys::nnlib_tensor = ptr::null();
        // SAFETY: live handles; *out is borrowed until the next call. The
        // library keeps a pointer to kept's elements, which move into the
        // model below (a Vec's heap buffer does not move with it).
        check(unsafe { sys::nnlib_model_forward(self.raw, tx.as_const(), &mut out) })?;
        drop(tx);
        self.forward_inputs = vec![kept];
        // SAFETY: a live tensor of the model.
        Ok(unsafe {
            std::slice::from_raw_parts(sys::nnlib_tensor_get_data_const(out), sys::nnlib_tensor_get_size(out) as usize)
        }
        .to_vec())
    }

    fn batch(&mut self, x: &[f32], xd: &[i64], t: &[f32], step: bool) -> Result<f32> {
        let td = Self::target_dims(xd[0], t)?;
        let tx = Wrap::input(x, xd)?;
        let tt = Wrap::input(t, &td)?;
        let mut loss = 0f32;
        // SAFETY: live handles and a valid out pointer.
        check(unsafe {
            if step {
                sys::nnlib_model_step(self.raw, tx.as_const(), tt.as_const(), &mut loss)
            } else {
                sys::nnlib_model_backward(self.raw, tx.as_const(), tt.as_const(), &mut loss)
            }
        })?;
        Ok(loss)
    }

    /// One training step on one batch (at most the maximum batch); the loss.
    pub fn step(&mut self, x: &[f32], target: &[f32]) -> Result<f32> {
        let xd = self.input_dims(x)?;
        self.batch(x, &xd, target, true)
    }

    /// `step` on N sequences of `steps` steps ([N, steps, F], as
    /// `predict_sequences`); `target` holds N rows of targets.
    pub fn step_sequences(&mut self, x: &[f32], steps: usize, target: &[f32]) -> Result<f32> {
        let xd = self.sequence_dims(x, steps)?;
        self.batch(x, &xd, target, true)
    }

    /// Forward, loss and backward on one batch: the loss, and gradients in
    /// the layers (`LayerRef::grad`).
    pub fn backward(&mut self, x: &[f32], target: &[f32]) -> Result<f32> {
        let xd = self.input_dims(x)?;
        self.batch(x, &xd, target, false)
    }

    /// `backward` on N sequences of `steps` steps ([N, steps, F], as
    /// `predict_sequences`).
    pub fn backward_sequences(&mut self, x: &[f32], steps: usize, target: &[f32]) -> Result<f32> {
        let xd = self.sequence_dims(x, steps)?;
        self.batch(x, &xd, target, false)
    }

    /// Checks every activation, gradient and updated parameter for NaN or
    /// Inf, failing with `Status::Numerical` that names the layer.
    pub fn set_check_numerics(&mut self, on: bool) -> Result<()> {
        // SAFETY: a live handle.
        check(unsafe { sys::nnlib_model_set_check_numerics(self.raw, on as c_int) })
    }

    /// Applies the optimizer to the gradients already in the model.
    pub fn optimizer_step(&mut self) -> Result<()> {
        // SAFETY: a live handle.
        check(unsafe { sys::nnlib_optimizer_step(self.raw) })
    }

    /// Trains on all samples; returns the mean loss of each epoch.
    pub fn fit(&mut self, x: &[f32], target: &[f32], options: FitOptions<'_>) -> Result<Vec<f32>> {
        Ok(self.fit_inner(x, target, options, None)?.losses)
    }

    /// `fit` with a validation pass after every epoch, early stopping and
    /// restore-best (nnlib_model_fit_validated, library 1.1).
    pub fn fit_validated(&mut self, x: &[f32], target: &[f32], options: FitOptions<'_>, validation: &Validation<'_>) -> Result<FitHistory> {
        self.fit_inner(x, target, options, Some(validation))
    }

    fn fit_inner(&mut self, x: &[f32], target: &[f32], options: FitOptions<'_>, validation: Option<&Validation<'_>>) -> Result<FitHistory> {
        let xd = self.input_dims(x)?;
        let td = Self::target_dims(xd[0], target)?;
        let tx = Wrap::input(x, &xd)?;
        let tt = Wrap::input(target, &td)?;
        let held_out = match validation {
            None => None,
            Some(val) => {
                let vxd = self.input_dims(val.x)?;
                let vtd = Self::target_dims(vxd[0], val.target)?;
                Some((Wrap::input(val.x, &vxd)?, Wrap::input(val.target, &vtd)?))
            }
        };
        let settings = validation.map(|v| (v.patience, v.min_delta, v.restore_best));
        self.fit_run(options, settings, |raw, o, v| match (v, &held_out) {
            (Some(mut v), Some((vx, vt))) => {
                v.x = vx.as_const();
                v.target = vt.as_const();
                // SAFETY: live handles; every buffer outlives the call.
                unsafe { sys::nnlib_model_fit_validated(raw, tx.as_const(), tt.as_const(), o, &v) }
            }
            // SAFETY: live handles; options, losses and state outlive the call.
            _ => unsafe { sys::nnlib_model_fit(raw, tx.as_const(), tt.as_const(), o) },
        })
    }

    /// What every fit shares: the options, the loss buffers, the progress
    /// closure and its panic, and the validation settings (patience,
    /// min_delta, restore_best) as nnlib_validation_options without data.
    /// `run` makes the C call with them.
    pub(crate) fn fit_run<F>(&mut self, options: FitOptions<'_>, validation: Option<(i64, f32, bool)>, run: F) -> Result<FitHistory>
    where
        F: FnOnce(*mut sys::nnlib_model, &sys::nnlib_fit_options, Option<sys::nnlib_validation_options>) -> sys::nnlib_status,
    {
        let epochs = options.epochs.max(0) as usize;
        let mut losses = vec![0f32; epochs];
        let mut val_losses = vec![0f32; epochs];
        let mut epochs_run = options.epochs.max(0);
        // SAFETY: a plain C struct, filled by init.
        let mut o: sys::nnlib_fit_options = unsafe { std::mem::zeroed() };
        check(unsafe { sys::nnlib_fit_options_init(&mut o) })?;
        o.epochs = options.epochs;
        o.batch_size = options.batch_size;
        o.shuffle = options.shuffle as c_int;
        o.epoch_losses = if losses.is_empty() { ptr::null_mut() } else { losses.as_mut_ptr() };
        let v = match validation {
            None => None,
            Some((patience, min_delta, restore_best)) => {
                // SAFETY: a plain C struct, filled by init.
                let mut v: sys::nnlib_validation_options = unsafe { std::mem::zeroed() };
                check(unsafe { sys::nnlib_validation_options_init(&mut v) })?;
                v.losses = if val_losses.is_empty() { ptr::null_mut() } else { val_losses.as_mut_ptr() };
                v.patience = patience;
                v.min_delta = min_delta;
                v.restore_best = restore_best as c_int;
                v.epochs_run = &mut epochs_run;
                Some(v)
            }
        };
        let mut state = options.progress.map(|f| CallbackState { f, panic: None });
        if let Some(s) = state.as_mut() {
            o.progress = Some(progress_trampoline);
            o.user = s as *mut CallbackState as *mut c_void;
        }
        let status = run(self.raw, &o, v);
        if let Some(payload) = state.and_then(|s| s.panic) {
            resume_unwind(payload);
        }
        check(status)?;
        let n = epochs_run as usize;
        losses.truncate(n);
        val_losses.truncate(if validation.is_some() { n } else { 0 });
        Ok(FitHistory { losses, validation_losses: val_losses })
    }

    /// (mean loss, accuracy) over all samples in inference mode; the loss
    /// is None for a model compiled without one.
    pub fn evaluate(&mut self, x: &[f32], target: &[f32]) -> Result<(Option<f32>, f32)> {
        let xd = self.input_dims(x)?;
        self.evaluate_dims(x, &xd, target)
    }

    /// `evaluate` on N sequences of `steps` steps ([N, steps, F], as
    /// `predict_sequences`).
    pub fn evaluate_sequences(&mut self, x: &[f32], steps: usize, target: &[f32]) -> Result<(Option<f32>, f32)> {
        let xd = self.sequence_dims(x, steps)?;
        self.evaluate_dims(x, &xd, target)
    }

    fn evaluate_dims(&mut self, x: &[f32], xd: &[i64], target: &[f32]) -> Result<(Option<f32>, f32)> {
        let td = Self::target_dims(xd[0], target)?;
        let tx = Wrap::input(x, xd)?;
        let tt = Wrap::input(target, &td)?;
        let has_loss = self.loss() != Some(Loss::None);
        let (mut loss, mut acc) = (0f32, 0f32);
        let loss_ptr: *mut f32 = if has_loss { &mut loss } else { ptr::null_mut() };
        // SAFETY: live handles, valid out pointers.
        check(unsafe { sys::nnlib_model_evaluate(self.raw, tx.as_const(), tt.as_const(), loss_ptr, &mut acc) })?;
        Ok((if has_loss { Some(loss) } else { None }, acc))
    }

    /// on: clear every layer's counts and start counting; off: stop.
    pub fn set_profiling(&mut self, on: bool) -> Result<()> {
        // SAFETY: a live handle.
        check(unsafe { sys::nnlib_model_set_profiling(self.raw, on as c_int) })
    }

    /// Time and FLOPs of layer `index` since profiling was switched on.
    pub fn layer_profile(&self, index: usize) -> Result<sys::nnlib_layer_profile> {
        // SAFETY: a plain C struct; the library fills struct_size bytes.
        let mut p: sys::nnlib_layer_profile = unsafe { std::mem::zeroed() };
        p.struct_size = std::mem::size_of::<sys::nnlib_layer_profile>();
        check(unsafe { sys::nnlib_model_get_layer_profile(self.raw, index, &mut p) })?;
        Ok(p)
    }

    /// Worst normwise relative error of backprop against finite differences.
    pub fn gradcheck(&mut self, x: &[f32], target: &[f32]) -> Result<f64> {
        let xd = self.input_dims(x)?;
        let td = Self::target_dims(xd[0], target)?;
        let tx = Wrap::input(x, &xd)?;
        let tt = Wrap::input(target, &td)?;
        // SAFETY: a plain C struct, filled by init.
        let mut o: sys::nnlib_gradcheck_options = unsafe { std::mem::zeroed() };
        check(unsafe { sys::nnlib_gradcheck_options_init(&mut o) })?;
        let mut err = 0f64;
        // SAFETY: live handles, valid pointers.
        check(unsafe { sys::nnlib_model_gradcheck(self.raw, tx.as_const(), tt.as_const(), &o, &mut err) })?;
        Ok(err)
    }

    /// Inference workspaces: each may predict on its own thread at the same
    /// time as the others (the model is borrowed by all of them, so it
    /// cannot be trained or changed meanwhile).
    pub fn workspaces(&mut self, count: usize) -> Result<Vec<Workspace<'_>>> {
        let inputs = (0..self.input_count()).map(|i| self.input_shape_at(i)).collect::<Result<Vec<_>>>()?;
        let output = self.output_shape()?;
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let mut raw = ptr::null_mut();
            // SAFETY: a compiled, live model.
            check(unsafe { sys::nnlib_workspace_create(&mut raw, self.raw) })?;
            out.push(Workspace { raw, inputs: inputs.clone(), output: output.clone(), _model: PhantomData });
        }
        Ok(out)
    }

    // ------------------------------------------------------------- files

    /// Writes the compiled model to `path` (atomically).
    pub fn save<P: AsRef<Path>>(&self, path: P, with_optimizer: bool) -> Result<()> {
        let p = c_path(path.as_ref())?;
        let flags = if with_optimizer { sys::NNLIB_SAVE_OPTIMIZER } else { 0 };
        // SAFETY: a NUL-terminated path.
        check(unsafe { sys::nnlib_model_save(self.raw, p.as_ptr(), flags) })
    }

    /// The bytes `save` would write.
    pub fn to_bytes(&self, with_optimizer: bool) -> Result<Vec<u8>> {
        let flags = if with_optimizer { sys::NNLIB_SAVE_OPTIMIZER } else { 0 };
        let mut data: *mut c_void = ptr::null_mut();
        let mut size = 0usize;
        // SAFETY: valid out pointers; data is freed with nnlib_free below.
        check(unsafe { sys::nnlib_model_save_buffer(self.raw, flags, &mut data, &mut size) })?;
        let bytes = unsafe { std::slice::from_raw_parts(data as *const u8, size) }.to_vec();
        unsafe { sys::nnlib_free(data) };
        Ok(bytes)
    }

    /// A compiled model read from a file.
    pub fn load<P: AsRef<Path>>(path: P) -> Result<Model> {
        check_version()?;
        let p = c_path(path.as_ref())?;
        let mut raw = ptr::null_mut();
        // SAFETY: a NUL-terminated path, a valid out pointer.
        check(unsafe { sys::nnlib_model_load(&mut raw, p.as_ptr()) })?;
        Ok(Model::from_raw(raw))
    }

    /// A compiled model read from bytes.
    pub fn from_bytes(data: &[u8]) -> Result<Model> {
        check_version()?;
        let mut raw = ptr::null_mut();
        // SAFETY: data is valid for data.len() bytes.
        check(unsafe { sys::nnlib_model_load_buffer(&mut raw, data.as_ptr() as *const c_void, data.len()) })?;
        Ok(Model::from_raw(raw))
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: owned, freed once; frees the layers and optimizer too.
        unsafe { sys::nnlib_model_free(self.raw) }
    }
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.layers().iter().map(|l| l.name()).collect();
        write!(f, "Model{:?}", names)
    }
}

pub(crate) fn batch_dims(len: usize, per_sample: usize, sample_shape: &[i64], what: &str) -> Result<Vec<i64>> {
    if per_sample == 0 || len == 0 || len % per_sample != 0 {
        return Err(Error::new(
            Status::ShapeMismatch,
            format!("{} of {} floats is not a whole number of samples of {} floats", what, len, per_sample),
        ));
    }
    let mut dims = vec![(len / per_sample) as i64];
    dims.extend_from_slice(sample_shape);
    Ok(dims)
}

/// Inference buffers of one model for one thread (nnlib_workspace); freed
/// on drop. `Send`, so each can go to its own thread.
pub struct Workspace<'m> {
    raw: *mut sys::nnlib_workspace,
    /// the per-sample shape of every model input
    inputs: Vec<Vec<i64>>,
    output: Vec<i64>,
    // the model is borrowed (unchangeable) while workspaces live; &mut keeps
    // Workspace Send without requiring Model: Sync
    _model: PhantomData<&'m mut Model>,
}

// SAFETY: the header allows calls on different workspaces of one model to
// run concurrently, and the model cannot change while they are borrowed.
unsafe impl Send for Workspace<'_> {}

impl Workspace<'_> {
    /// `Model::predict` with this workspace's buffers.
    pub fn predict(&mut self, x: &[f32]) -> Result<Vec<f32>> {
        self.predict_inputs(&[x])
    }

    /// `Model::predict_inputs` (one slice per model input) with this
    /// workspace's buffers.
    pub fn predict_inputs(&mut self, xs: &[&[f32]]) -> Result<Vec<f32>> {
        let inputs = crate::graph::Inputs::wrap(xs, &self.inputs)?;
        let per_out = Model::per_sample(&self.output);
        let mut y = vec![0f32; inputs.samples as usize * per_out];
        let yd = vec![inputs.samples, per_out as i64];
        let mut ty = Wrap::output(&mut y, &yd)?;
        // SAFETY: live handles; the wraps borrow the slices and y for the call.
        check(unsafe {
            if xs.len() == 1 {
                sys::nnlib_workspace_predict(self.raw, inputs.raw[0], ty.as_mut())
            } else {
                sys::nnlib_workspace_predict_inputs(self.raw, inputs.raw.as_ptr(), inputs.raw.len(), ty.as_mut())
            }
        })?;
        drop(ty);
        Ok(y)
    }
}

impl Drop for Workspace<'_> {
    fn drop(&mut self) {
        // SAFETY: owned, freed once, before the model (borrow).
        unsafe { sys::nnlib_workspace_free(self.raw) }
    }
}

/// What a model file's header says, without building the model.
pub fn model_file_info(data: &[u8]) -> Result<sys::nnlib_model_file_info> {
    // SAFETY: a plain C struct; the library fills struct_size bytes of it.
    let mut info: sys::nnlib_model_file_info = unsafe { std::mem::zeroed() };
    info.struct_size = std::mem::size_of::<sys::nnlib_model_file_info>();
    check(unsafe { sys::nnlib_model_file_get_info(data.as_ptr() as *const c_void, data.len(), &mut info) })?;
    Ok(info)
}
