//! Models in ONNX's format (library 1.4): import into an ordinary model
//! (`Model::from_onnx_file`, `Model::from_onnx_bytes`) and export
//! (`Model::save_onnx`, `Model::to_onnx_bytes`). docs/ONNX.md lists the
//! operators that map onto nnlib's layers.

use std::ffi::CString;
use std::os::raw::{c_int, c_void};
use std::path::Path;
use std::ptr;

use nnlib_sys as sys;

use crate::error::{check, Error, Result, Status};
use crate::model::{c_path, check_version, Loss, Model};
use crate::optim::Optimizer;

/// What an imported model is compiled with (nnlib_onnx_options). The
/// optimizer is given by its options, not as a handle: every import makes
/// its own from them, so one `OnnxOptions` serves any number of imports.
#[derive(Clone, Debug)]
pub struct OnnxOptions {
    /// The compiled maximum batch (default 64).
    pub max_batch: i64,
    /// `Loss::None` (the default) imports for inference; another loss makes
    /// the model trainable.
    pub loss: Loss,
    /// The optimizer a loss trains with (e.g. from
    /// `nnlib::optimizer_options`); None: plain SGD at 0.01.
    pub optimizer: Option<sys::nnlib_optimizer_options>,
    /// The model's generator (dropout); default 1.
    pub seed: u64,
    /// The name of the graph output the model computes, for a graph of
    /// several; None (the default): the graph's only output. The other
    /// outputs are not computed.
    pub output: Option<String>,
    /// true: each graph input, of a fixed shape, is one whole sample
    /// (ONNX's axis 0 is no batch axis, so operators may mix it); the model
    /// then takes [1, ...shape] and gives [1, ...ONNX's output shape].
    /// Default false: axis 0 is the batch.
    pub whole_sample: bool,
}

impl Default for OnnxOptions {
    /// The defaults of nnlib_onnx_options_init.
    fn default() -> OnnxOptions {
        OnnxOptions {
            max_batch: 64,
            loss: Loss::None,
            optimizer: None,
            seed: 1,
            output: None,
            whole_sample: false,
        }
    }
}

/// The C options for one import; `make` runs the import with them. The
/// optimizer is made last, right before the call that takes it (also on
/// failure), so no early return can leak it.
fn import<F>(options: &OnnxOptions, make: F) -> Result<Model>
where
    F: FnOnce(*mut *mut sys::nnlib_model, *const sys::nnlib_onnx_options) -> sys::nnlib_status,
{
    check_version()?;
    // the name outlives the call (the library reads it during the import)
    let output = match &options.output {
        Some(name) => Some(
            CString::new(name.as_str())
                .map_err(|_| Error::new(Status::InvalidArgument, "OnnxOptions::output contains a NUL byte"))?,
        ),
        None => None,
    };
    // SAFETY: a plain C struct; zero is a valid value of every field, and
    // the init call below fills it for its own size.
    let mut c: sys::nnlib_onnx_options = unsafe { std::mem::zeroed() };
    // SAFETY: a valid struct of the size passed.
    check(unsafe { sys::nnlib_onnx_options_init_size(&mut c, std::mem::size_of::<sys::nnlib_onnx_options>()) })?;
    c.max_batch = options.max_batch;
    c.loss = options.loss.code();
    c.seed = options.seed;
    c.output = output.as_ref().map_or(ptr::null(), |s| s.as_ptr());
    c.whole_sample = c_int::from(options.whole_sample);
    c.optimizer = match &options.optimizer {
        Some(o) => Optimizer::new(o)?.into_raw(),
        None => ptr::null_mut(),
    };
    let mut raw = ptr::null_mut();
    check(make(&mut raw, &c))?;
    Ok(Model::from_raw(raw))
}

impl Model {
    /// A compiled model imported from the ONNX file at `path`.
    pub fn from_onnx_file<P: AsRef<Path>>(path: P, options: &OnnxOptions) -> Result<Model> {
        let p = c_path(path.as_ref())?;
        // SAFETY: a NUL-terminated path, valid out and options pointers.
        import(options, |out, o| unsafe { sys::nnlib_model_load_onnx(out, p.as_ptr(), o) })
    }

    /// A compiled model imported from the bytes of an ONNX file.
    pub fn from_onnx_bytes(data: &[u8], options: &OnnxOptions) -> Result<Model> {
        // SAFETY: data is valid for data.len() bytes.
        import(options, |out, o| unsafe {
            sys::nnlib_model_load_onnx_buffer(out, data.as_ptr() as *const c_void, data.len(), o)
        })
    }

    /// Writes the compiled model as ONNX (opset 17, IR 8) to `path`.
    pub fn save_onnx<P: AsRef<Path>>(&self, path: P) -> Result<()> {
        let p = c_path(path.as_ref())?;
        // SAFETY: a NUL-terminated path.
        check(unsafe { sys::nnlib_model_save_onnx(self.raw, p.as_ptr()) })
    }

    /// The bytes `save_onnx` would write.
    pub fn to_onnx_bytes(&self) -> Result<Vec<u8>> {
        let mut data: *mut c_void = ptr::null_mut();
        let mut size = 0usize;
        // SAFETY: valid out pointers; data is freed with nnlib_free below.
        check(unsafe { sys::nnlib_model_save_onnx_to_buffer(&mut data, &mut size, self.raw) })?;
        // SAFETY: the library wrote size bytes at data.
        let bytes = unsafe { std::slice::from_raw_parts(data as *const u8, size) }.to_vec();
        // SAFETY: allocated by the library, freed once.
        unsafe { sys::nnlib_free(data) };
        Ok(bytes)
    }
}
