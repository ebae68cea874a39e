//! Library 1.4 for text: token ids and class indices as `&[i32]`, text
//! corpora of byte tokens (`Text`), and generation (`Model::generate`).
//!
//! ```no_run
//! use nnlib::{GenerateOptions, Loss, Model, Optimizer, OptimizerKind, Text, TextSplit};
//! # fn main() -> nnlib::Result<()> {
//! let mut text = Text::from_bytes(b"the quick brown fox jumps over the lazy dog. ", 0.1, 1)?;
//! let mut m = Model::from_spec("input:16,embedding:256:32,positional,transformer:32:2:causal,layernorm,linear:256")?;
//! m.compile_graph(8, Loss::SoftmaxCe, Some(Optimizer::with_warmup(OptimizerKind::AdamW, 3e-3, 10)?), 1)?;
//! let (x, y) = text.sample(TextSplit::Train, 8, 16)?;
//! let loss = m.step_ids(&x, &y)?;
//! let tokens = m.generate(&[116, 104, 101], 20, &GenerateOptions::default())?;
//! # Ok(()) }
//! ```

use std::ffi::CString;
use std::os::raw::{c_char, c_void};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr;

use nnlib_sys as sys;

use crate::error::{check, Error, Result, Status};
use crate::model::{batch_dims, FitOptions, Loss, Model};
use crate::tensor::Wrap;

/// Which part of a `Text` (nnlib_text_split).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextSplit {
    Train,
    Valid,
}

impl TextSplit {
    pub fn code(self) -> sys::nnlib_text_split {
        match self {
            TextSplit::Train => sys::NNLIB_TEXT_TRAIN,
            TextSplit::Valid => sys::NNLIB_TEXT_VALID,
        }
    }
}

/// A text corpus of byte tokens (vocabulary 256), split at a fixed point:
/// the first (1 - valid_fraction) of the bytes train, the rest validate.
/// Freed on drop.
pub struct Text {
    raw: *mut sys::nnlib_text,
}

// SAFETY: an unshared handle may move between threads.
unsafe impl Send for Text {}

/// x and y of `rows` windows of `context` tokens, for the library to fill.
fn window_buffers(rows: usize, context: usize) -> Result<(Vec<i32>, Vec<i32>, Vec<i64>)> {
    if rows == 0 || context == 0 {
        return Err(Error::new(
            Status::InvalidArgument,
            format!("text windows: batch ({}) and context ({}) must be >= 1", rows, context),
        ));
    }
    let n = rows
        .checked_mul(context)
        .ok_or_else(|| Error::new(Status::TooLarge, format!("{} windows of {} overflow", rows, context)))?;
    Ok((vec![0; n], vec![0; n], vec![rows as i64, context as i64]))
}

impl Text {
    /// Byte tokens, so an embedding over a Text has vocabulary 256.
    pub const VOCAB_SIZE: i64 = 256;

    /// The bytes of `paths` concatenated in order: a file whole, a
    /// directory's regular files (not subdirectories, not names starting
    /// with '.', not fortune's ".dat" index files) in byte order of their
    /// names. `valid_fraction` in [0, 1); `seed` seeds the generator of
    /// `sample`.
    pub fn load<P: AsRef<Path>>(paths: &[P], valid_fraction: f64, seed: u64) -> Result<Text> {
        let owned = paths
            .iter()
            .map(|p| {
                let p = p.as_ref();
                CString::new(p.as_os_str().as_bytes())
                    .map_err(|_| Error::new(Status::InvalidArgument, format!("path {:?} contains a NUL byte", p)))
            })
            .collect::<Result<Vec<_>>>()?;
        let pointers: Vec<*const c_char> = owned.iter().map(|c| c.as_ptr()).collect();
        let mut raw = ptr::null_mut();
        // SAFETY: pointers holds owned.len() NUL-terminated strings that
        // live for the call.
        check(unsafe { sys::nnlib_text_load(&mut raw, pointers.as_ptr(), pointers.len(), valid_fraction, seed) })?;
        Ok(Text { raw })
    }

    /// A Text over a copy of `bytes`, split and seeded as in `load`.
    pub fn from_bytes(bytes: &[u8], valid_fraction: f64, seed: u64) -> Result<Text> {
        let mut raw = ptr::null_mut();
        // SAFETY: bytes is valid for its length (the library copies it).
        check(unsafe {
            sys::nnlib_text_from_bytes(&mut raw, bytes.as_ptr() as *const c_void, bytes.len(), valid_fraction, seed)
        })?;
        Ok(Text { raw })
    }

    pub fn as_raw(&self) -> *const sys::nnlib_text {
        self.raw
    }

    /// Bytes in a split.
    pub fn size(&self, split: TextSplit) -> usize {
        // SAFETY: a live handle.
        unsafe { sys::nnlib_text_get_size(self.raw, split.code()) as usize }
    }

    /// The bytes of a split, borrowed from the text.
    pub fn bytes(&self, split: TextSplit) -> &[u8] {
        let n = self.size(split);
        if n == 0 {
            return &[];
        }
        // SAFETY: the text holds n bytes for this split while it lives.
        unsafe { std::slice::from_raw_parts(sys::nnlib_text_get_bytes(self.raw, split.code()), n) }
    }

    /// (x, y), `batch` windows of `context` + 1 consecutive bytes of a
    /// split at random offsets from the text's seeded generator (which
    /// advances: the same seed gives the same batches): x the first
    /// `context` bytes of each window, y the next byte of every position;
    /// both [batch, context] row-major. `Status::TooLarge` when the split
    /// holds fewer than context + 1 bytes.
    pub fn sample(&mut self, split: TextSplit, batch: usize, context: usize) -> Result<(Vec<i32>, Vec<i32>)> {
        let (mut x, mut y, dims) = window_buffers(batch, context)?;
        {
            let mut tx = Wrap::output_ids(&mut x, &dims)?;
            let mut ty = Wrap::output_ids(&mut y, &dims)?;
            // SAFETY: live handles; the wraps borrow x and y for the call.
            check(unsafe { sys::nnlib_text_sample(self.raw, split.code(), tx.as_mut(), ty.as_mut()) })?;
        }
        Ok((x, y))
    }

    /// The number of consecutive windows of `context` bytes in a split:
    /// floor((size - 1) / context).
    pub fn window_count(&self, split: TextSplit, context: usize) -> usize {
        // SAFETY: a live handle.
        unsafe { sys::nnlib_text_window_count(self.raw, split.code(), context as i64).max(0) as usize }
    }

    /// (x, y) of windows first .. first + count - 1 of a split (window i
    /// starts at byte i * context), each [count, context]; together the
    /// windows 0 .. window_count predict every byte after the first once.
    /// `Status::OutOfRange` for windows past the end.
    pub fn windows(&self, split: TextSplit, first: usize, count: usize, context: usize) -> Result<(Vec<i32>, Vec<i32>)> {
        let (mut x, mut y, dims) = window_buffers(count, context)?;
        {
            let mut tx = Wrap::output_ids(&mut x, &dims)?;
            let mut ty = Wrap::output_ids(&mut y, &dims)?;
            // SAFETY: live handles; the wraps borrow x and y for the call.
            check(unsafe { sys::nnlib_text_window(self.raw, split.code(), first as i64, tx.as_mut(), ty.as_mut()) })?;
        }
        Ok((x, y))
    }
}

impl Drop for Text {
    fn drop(&mut self) {
        // SAFETY: owned, freed once.
        unsafe { sys::nnlib_text_free(self.raw) }
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Text {{ train: {}, valid: {} }}", self.size(TextSplit::Train), self.size(TextSplit::Valid))
    }
}

/// Sampling options of `Model::generate` (nnlib_generate_options).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GenerateOptions {
    /// Logits are divided by it; must be > 0 (default 1).
    pub temperature: f32,
    /// 0: every token; k > 0: the k likeliest (default 0).
    pub top_k: i64,
    /// The same seed gives the same tokens (default 1).
    pub seed: u64,
    /// Keep each layer's keys and values so that a new token costs one
    /// position (default true); false re-runs the whole window per token.
    /// Both give the same tokens.
    pub use_cache: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions { temperature: 1.0, top_k: 0, seed: 1, use_cache: true }
    }
}

/// [N, k] for N samples of k targets each.
fn target_dims(n: i64, len: usize) -> Result<Vec<i64>> {
    if n <= 0 || len == 0 || len % n as usize != 0 {
        return Err(Error::new(
            Status::ShapeMismatch,
            format!("{} targets do not divide into {} samples", len, n),
        ));
    }
    Ok(vec![n, len as i64 / n])
}

impl Model {
    /// [N, T] for a slice of token ids of a one-input model of input [T].
    fn ids_dims(&self, ids: &[i32]) -> Result<Vec<i64>> {
        let count = self.input_count();
        if count != 1 {
            return Err(Error::new(
                Status::InvalidArgument,
                format!("the *_ids calls take models of one input; this one has {}", count),
            ));
        }
        let input = self.input_shape()?;
        batch_dims(ids.len(), Model::per_sample(&input), &input, "token ids")
    }

    /// Outputs (logits) for N sequences of token ids [N, T] (int32, as an
    /// embedding reads them), N * output size floats, inference mode.
    pub fn predict_ids(&mut self, ids: &[i32]) -> Result<Vec<f32>> {
        let xd = self.ids_dims(ids)?;
        let per_out = Model::per_sample(&self.output_shape()?);
        let mut y = vec![0f32; xd[0] as usize * per_out];
        {
            let tx = Wrap::input_ids(ids, &xd)?;
            let mut ty = Wrap::output(&mut y, &[xd[0], per_out as i64])?;
            // SAFETY: live handles; the wraps borrow ids and y for the call.
            check(unsafe { sys::nnlib_model_predict(self.raw, tx.as_const(), ty.as_mut()) })?;
        }
        Ok(y)
    }

    fn class_batch(&mut self, x: &Wrap<'_>, n: i64, targets: &[i32], step: bool) -> Result<f32> {
        let tt = Wrap::input_ids(targets, &target_dims(n, targets.len())?)?;
        let mut loss = 0f32;
        // SAFETY: live handles and a valid out pointer.
        check(unsafe {
            if step {
                sys::nnlib_model_step(self.raw, x.as_const(), tt.as_const(), &mut loss)
            } else {
                sys::nnlib_model_backward(self.raw, x.as_const(), tt.as_const(), &mut loss)
            }
        })?;
        Ok(loss)
    }

    fn class_evaluate(&mut self, x: &Wrap<'_>, n: i64, targets: &[i32]) -> Result<(Option<f32>, f32)> {
        let tt = Wrap::input_ids(targets, &target_dims(n, targets.len())?)?;
        let has_loss = self.loss() != Some(Loss::None);
        let (mut loss, mut acc) = (0f32, 0f32);
        let loss_ptr: *mut f32 = if has_loss { &mut loss } else { ptr::null_mut() };
        // SAFETY: live handles, valid out pointers.
        check(unsafe { sys::nnlib_model_evaluate(self.raw, x.as_const(), tt.as_const(), loss_ptr, &mut acc) })?;
        Ok((if has_loss { Some(loss) } else { None }, acc))
    }

    /// One training step on token ids [N, T] with softmax_ce class index
    /// targets: [N] (one class per sample) or [N, T] (the next token of
    /// every position, logits [T, V]). The loss (mean over the targets).
    pub fn step_ids(&mut self, ids: &[i32], targets: &[i32]) -> Result<f32> {
        let xd = self.ids_dims(ids)?;
        let tx = Wrap::input_ids(ids, &xd)?;
        self.class_batch(&tx, xd[0], targets, true)
    }

    /// `step_ids` without the update: the loss, and gradients in the layers.
    pub fn backward_ids(&mut self, ids: &[i32], targets: &[i32]) -> Result<f32> {
        let xd = self.ids_dims(ids)?;
        let tx = Wrap::input_ids(ids, &xd)?;
        self.class_batch(&tx, xd[0], targets, false)
    }

    /// (mean loss, accuracy) over all sequences of token ids in inference
    /// mode; with [N, T] targets the accuracy counts positions.
    pub fn evaluate_ids(&mut self, ids: &[i32], targets: &[i32]) -> Result<(Option<f32>, f32)> {
        let xd = self.ids_dims(ids)?;
        let tx = Wrap::input_ids(ids, &xd)?;
        self.class_evaluate(&tx, xd[0], targets)
    }

    /// Trains on all sequences of token ids with class index targets (as
    /// `step_ids`); the mean loss of each epoch.
    pub fn fit_ids(&mut self, ids: &[i32], targets: &[i32], options: FitOptions<'_>) -> Result<Vec<f32>> {
        let xd = self.ids_dims(ids)?;
        let tx = Wrap::input_ids(ids, &xd)?;
        let tt = Wrap::input_ids(targets, &target_dims(xd[0], targets.len())?)?;
        // SAFETY (in the closure): live handles; options, losses and the
        // wraps outlive the call.
        let history = self.fit_run(options, None, |raw, o, _| unsafe {
            sys::nnlib_model_fit(raw, tx.as_const(), tt.as_const(), o)
        })?;
        Ok(history.losses)
    }

    /// One training step on float features with int32 class index targets
    /// (softmax_ce; no float round trip): [N] or [N, rows].
    pub fn step_classes(&mut self, x: &[f32], classes: &[i32]) -> Result<f32> {
        let xd = self.input_dims(x)?;
        let tx = Wrap::input(x, &xd)?;
        self.class_batch(&tx, xd[0], classes, true)
    }

    /// (mean loss, accuracy) of float features against int32 class indices.
    pub fn evaluate_classes(&mut self, x: &[f32], classes: &[i32]) -> Result<(Option<f32>, f32)> {
        let xd = self.input_dims(x)?;
        let tx = Wrap::input(x, &xd)?;
        self.class_evaluate(&tx, xd[0], classes)
    }

    /// Continues `prompt` (1 to T token ids) by `count` tokens sampled from
    /// a language model (one int32 input [T], logits [T, V]): the new
    /// tokens only. The same options give the same tokens, with or without
    /// the cache. Bad options are the library's errors: a temperature <= 0
    /// or NaN, top_k < 0 or an empty prompt `Status::InvalidArgument`, a
    /// prompt longer than T `Status::TooLarge`, ids outside the vocabulary
    /// `Status::OutOfRange`, a model that is no language model
    /// `Status::Unsupported`.
    pub fn generate(&mut self, prompt: &[i32], count: usize, options: &GenerateOptions) -> Result<Vec<i32>> {
        // SAFETY: a plain C struct; init fills the defaults for its size.
        let mut o: sys::nnlib_generate_options = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<sys::nnlib_generate_options>();
        check(unsafe { sys::nnlib_generate_options_init_size(&mut o, size) })?;
        o.temperature = options.temperature;
        o.top_k = options.top_k;
        o.seed = options.seed;
        o.use_cache = options.use_cache as i32;
        let mut out = vec![0i32; count];
        // SAFETY: prompt holds prompt.len() ids and out count slots, both
        // valid for the call.
        check(unsafe {
            sys::nnlib_model_generate(self.raw, prompt.as_ptr(), prompt.len() as i64, count as i64, &o, out.as_mut_ptr())
        })?;
        Ok(out)
    }

    /// `generate` for a byte-level model (vocabulary 256, as `Text` gives):
    /// a byte prompt in, the new bytes out. A token above 255 (a larger
    /// vocabulary) is `Status::OutOfRange`.
    pub fn generate_bytes(&mut self, prompt: &[u8], count: usize, options: &GenerateOptions) -> Result<Vec<u8>> {
        let ids: Vec<i32> = prompt.iter().map(|&b| b as i32).collect();
        self.generate(&ids, count, options)?
            .into_iter()
            .map(|t| {
                u8::try_from(t).map_err(|_| {
                    Error::new(Status::OutOfRange, format!("generate_bytes: token {} is not a byte; use generate", t))
                })
            })
            .collect()
    }
}
