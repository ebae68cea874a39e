//! Optimizers (PyTorch's rules): owned until `Model::compile` or
//! `Model::set_optimizer` takes them.

use std::ptr;

use nnlib_sys as sys;

use crate::error::{check, Result};

/// nnlib_optimizer_kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizerKind {
    Sgd,
    Adam,
    AdamW,
    RmsProp,
}

impl OptimizerKind {
    pub fn code(self) -> sys::nnlib_optimizer_kind {
        match self {
            OptimizerKind::Sgd => sys::NNLIB_OPT_SGD,
            OptimizerKind::Adam => sys::NNLIB_OPT_ADAM,
            OptimizerKind::AdamW => sys::NNLIB_OPT_ADAMW,
            OptimizerKind::RmsProp => sys::NNLIB_OPT_RMSPROP,
        }
    }
}

/// The options struct, filled with the defaults of `kind` by the library
/// (nnlib_optimizer_options_init_size with this struct's size, so that the
/// library reads warmup_steps, library 1.4); change its public fields,
/// then `Optimizer::new`. `warmup_steps` W > 0 makes step t < W use the
/// learning rate lr (t + 1) / W; the schedule then runs from t - W.
pub fn optimizer_options(kind: OptimizerKind) -> Result<sys::nnlib_optimizer_options> {
    // SAFETY: a plain C struct; init writes every field of its size.
    let mut o: sys::nnlib_optimizer_options = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<sys::nnlib_optimizer_options>();
    check(unsafe { sys::nnlib_optimizer_options_init_size(&mut o, kind.code(), size) })?;
    Ok(o)
}

/// The options a live optimizer runs with (nnlib_optimizer_get_options,
/// since 1.1.0; the learning rate as last set).
pub(crate) fn read_options(raw: *const sys::nnlib_optimizer) -> Result<sys::nnlib_optimizer_options> {
    // SAFETY: a plain C struct; the library writes every field it knows.
    let mut o: sys::nnlib_optimizer_options = unsafe { std::mem::zeroed() };
    o.struct_size = std::mem::size_of::<sys::nnlib_optimizer_options>();
    // SAFETY: raw is a live handle, o a valid out struct with its size.
    check(unsafe { sys::nnlib_optimizer_get_options(raw, &mut o) })?;
    Ok(o)
}

/// An optimizer not yet given to a model; freed on drop.
pub struct Optimizer {
    raw: *mut sys::nnlib_optimizer,
}

// SAFETY: an unshared handle may move between threads.
unsafe impl Send for Optimizer {}

impl Optimizer {
    pub fn new(options: &sys::nnlib_optimizer_options) -> Result<Optimizer> {
        let mut raw = ptr::null_mut();
        // SAFETY: options is a valid struct with its struct_size.
        check(unsafe { sys::nnlib_optimizer_create(&mut raw, options) })?;
        Ok(Optimizer { raw })
    }

    /// torch.optim.SGD(lr, momentum, nesterov, weight_decay).
    pub fn sgd(learning_rate: f32, momentum: f32, nesterov: bool, weight_decay: f32) -> Result<Optimizer> {
        let mut raw = ptr::null_mut();
        // SAFETY: a valid out pointer.
        check(unsafe { sys::nnlib_sgd_create(&mut raw, learning_rate, momentum, nesterov as i32, weight_decay) })?;
        Ok(Optimizer { raw })
    }

    /// A kind with the library's defaults and this learning rate.
    pub fn with_defaults(kind: OptimizerKind, learning_rate: f32) -> Result<Optimizer> {
        let mut o = optimizer_options(kind)?;
        o.learning_rate = learning_rate;
        Optimizer::new(&o)
    }

    /// A kind with the library's defaults, this learning rate and a linear
    /// warmup over the first `warmup_steps` steps (library 1.4).
    pub fn with_warmup(kind: OptimizerKind, learning_rate: f32, warmup_steps: i64) -> Result<Optimizer> {
        let mut o = optimizer_options(kind)?;
        o.learning_rate = learning_rate;
        o.warmup_steps = warmup_steps;
        Optimizer::new(&o)
    }

    pub fn learning_rate(&self) -> f32 {
        // SAFETY: a live handle.
        unsafe { sys::nnlib_optimizer_get_learning_rate(self.raw) }
    }

    /// The options it runs with.
    pub fn options(&self) -> Result<sys::nnlib_optimizer_options> {
        read_options(self.raw)
    }

    pub(crate) fn into_raw(self) -> *mut sys::nnlib_optimizer {
        let raw = self.raw;
        std::mem::forget(self);
        raw
    }
}

impl Drop for Optimizer {
    fn drop(&mut self) {
        // SAFETY: owned, freed once.
        unsafe { sys::nnlib_optimizer_free(self.raw) }
    }
}
