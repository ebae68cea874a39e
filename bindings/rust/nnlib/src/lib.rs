//! Safe Rust bindings for nnlib, a neural-network library in C
//! (libnnlib.so.1, through the raw declarations of `nnlib-sys`).
//!
//! Every handle type owns its C object and frees it on drop; every fallible
//! call returns `Result<T, Error>` with the library's status and message.
//! Data goes in and out as `&[f32]` slices (row-major, batch first), handed
//! to C without copies (nnlib_tensor_wrap). A graph model (library 1.3:
//! `Model::input`, `apply`, `set_output`, merge layers) takes one slice
//! per model input in the `*_inputs` calls. Token ids and class indices
//! (library 1.4) go in as `&[i32]` (int32 tensors, no float round trip):
//! `predict_ids`, `step_ids`, `evaluate_ids`, `fit_ids`, `step_classes`,
//! `evaluate_classes`, `generate`; `checked_ids` converts `&[i64]` after
//! checking every value fits. `Text` holds a byte corpus for language
//! models. ONNX (library 1.4): `Model::from_onnx_file`,
//! `Model::from_onnx_bytes` (with `OnnxOptions`), `save_onnx`,
//! `to_onnx_bytes`.
//!
//! ```no_run
//! use nnlib::{Layer, Loss, Model, Optimizer, FitOptions};
//! # fn main() -> nnlib::Result<()> {
//! let mut m = Model::new()?
//!     .with(Layer::dense(2, 4, true))?.with(Layer::sigmoid())?
//!     .with(Layer::dense(4, 1, true))?.with(Layer::sigmoid())?;
//! m.compile(&[2], 4, Loss::Mse, Some(Optimizer::sgd(0.5, 0.9, false, 0.0)?), 7)?;
//! let x = [0., 0., 0., 1., 1., 0., 1., 1.];
//! let t = [0., 1., 1., 0.];
//! m.fit(&x, &t, FitOptions { epochs: 2000, ..Default::default() })?;
//! println!("{:?}", m.predict(&x)?);
//! # Ok(()) }
//! ```

mod data;
mod error;
mod graph;
mod layer;
mod model;
mod onnx;
mod optim;
mod tensor;
mod text;

pub use nnlib_sys as sys;

pub use data::{dataset_default_dir, load_dataset, load_idx_images, load_idx_labels, Split};
pub use error::{Error, Result, Status};
pub use graph::{Node, NodeInfo, ValidationInputs};
pub use layer::{Activation, AttentionOptions, Conv2dOptions, Layer, LayerKind, LayerRef, Pool2dOptions, PoolKind};
pub use model::{check_version, model_file_info, FitHistory, FitOptions, Loss, Model, Progress, Validation, Workspace};
pub use onnx::OnnxOptions;
pub use optim::{optimizer_options, Optimizer, OptimizerKind};
pub use tensor::{checked_ids, Dtype, IntTensor, Tensor};
pub use text::{GenerateOptions, Text, TextSplit};

/// The loaded library's version as MAJOR * 10000 + MINOR * 100 + PATCH.
pub fn version() -> u32 {
    // SAFETY: thread-safe, no arguments.
    unsafe { sys::nnlib_version() }
}

/// "1.0.0".
pub fn version_string() -> String {
    // SAFETY: static storage, never NULL.
    unsafe { std::ffi::CStr::from_ptr(sys::nnlib_version_string()) }.to_string_lossy().into_owned()
}

/// Threads nnlib computes on (process-wide; not while another thread
/// computes), all on a pool of nnlib's own: the large matrix products split
/// into one part per thread, and the passes between them, which give the
/// same bits on any thread count. n <= 0 restores the default
/// (OPENBLAS_NUM_THREADS, else every core). OpenBLAS itself is kept to one
/// thread from nnlib's first product on, also for the program's own calls.
pub fn set_num_threads(n: i32) -> Result<()> {
    // SAFETY: no pointers.
    error::check(unsafe { sys::nnlib_set_num_threads(n) })
}

/// The threads nnlib computes on now (process-wide).
pub fn num_threads() -> i32 {
    // SAFETY: no pointers.
    unsafe { sys::nnlib_get_num_threads() }
}

/// The vector instructions of a set of matrix kernels or of a CPU, from
/// narrow to wide (nnlib_simd).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Simd {
    Unknown,
    Sse,
    Avx,
    Avx2,
    Avx512,
}

impl Simd {
    fn from_code(code: sys::nnlib_simd) -> Simd {
        match code {
            sys::NNLIB_SIMD_SSE => Simd::Sse,
            sys::NNLIB_SIMD_AVX => Simd::Avx,
            sys::NNLIB_SIMD_AVX2 => Simd::Avx2,
            sys::NNLIB_SIMD_AVX512 => Simd::Avx512,
            _ => Simd::Unknown,
        }
    }
}

/// The BLAS every product runs on, and whether its kernels suit the CPU
/// (nnlib_blas_info).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlasInfo {
    /// OpenBLAS's build line.
    pub config: String,
    /// The kernel set OpenBLAS chose when it was loaded ("Haswell").
    pub kernels: String,
    pub kernels_simd: Simd,
    pub cpu_simd: Simd,
    /// The kernels lack the AVX2 and FMA the CPU has: OpenBLAS did not
    /// recognise the CPU and products run several times slower.
    pub kernels_are_fallback: bool,
    /// Then, for an OpenBLAS built with DYNAMIC_ARCH, the OPENBLAS_CORETYPE
    /// to set before the program starts.
    pub suggested_kernels: Option<String>,
}

fn static_text(p: *const std::os::raw::c_char) -> Option<String> {
    if p.is_null() {
        None
    } else {
        // SAFETY: the library's strings are static and NUL-terminated.
        Some(unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }
}

/// What nnlib_blas_get_info reports.
pub fn blas_info() -> Result<BlasInfo> {
    // SAFETY: a zeroed C struct of plain fields, its size set as the
    // output-struct rule asks; the library writes that many bytes.
    let mut info: sys::nnlib_blas_info = unsafe { std::mem::zeroed() };
    info.struct_size = std::mem::size_of::<sys::nnlib_blas_info>();
    error::check(unsafe { sys::nnlib_blas_get_info(&mut info) })?;
    Ok(BlasInfo {
        config: static_text(info.config).unwrap_or_default(),
        kernels: static_text(info.kernels).unwrap_or_default(),
        kernels_simd: Simd::from_code(info.kernels_simd),
        cpu_simd: Simd::from_code(info.cpu_simd),
        kernels_are_fallback: info.kernels_are_fallback != 0,
        suggested_kernels: static_text(info.suggested_kernels),
    })
}
