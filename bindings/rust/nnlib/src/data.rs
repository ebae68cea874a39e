//! IDX (MNIST-family) files and MNIST-format directories.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr;

use nnlib_sys as sys;

use crate::error::{check, Error, Result, Status};
use crate::tensor::Tensor;

fn c_path(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::new(Status::InvalidArgument, format!("path {:?} contains a NUL byte", path)))
}

/// Which half of a data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// An idx3 file of bytes as [N, rows, cols] floats in [0, 1]; limit > 0
/// reads only the first `limit` images.
pub fn load_idx_images<P: AsRef<Path>>(path: P, limit: i64) -> Result<Tensor> {
    let p = c_path(path.as_ref())?;
    let mut raw = ptr::null_mut();
    // SAFETY: a NUL-terminated path, a valid out pointer.
    check(unsafe { sys::nnlib_idx_load_images(&mut raw, p.as_ptr(), limit) })?;
    // SAFETY: the caller owns the returned tensor.
    Ok(unsafe { Tensor::from_raw(raw) })
}

/// An idx1 file of bytes as [N] class indices (floats) or, with
/// `one_hot`, [N, num_classes] rows.
pub fn load_idx_labels<P: AsRef<Path>>(path: P, num_classes: i64, one_hot: bool, limit: i64) -> Result<Tensor> {
    let p = c_path(path.as_ref())?;
    let mut raw = ptr::null_mut();
    // SAFETY: as above.
    check(unsafe { sys::nnlib_idx_load_labels(&mut raw, p.as_ptr(), num_classes, one_hot as i32, limit) })?;
    Ok(unsafe { Tensor::from_raw(raw) })
}

/// $NNLIB_DATA_DIR, else Debian's dataset-fashion-mnist directory.
pub fn dataset_default_dir() -> PathBuf {
    // SAFETY: never NULL per the header; copied at once.
    let s = unsafe { CStr::from_ptr(sys::nnlib_dataset_default_dir()) };
    PathBuf::from(std::ffi::OsStr::from_bytes(s.to_bytes()))
}

/// (images, labels) of one split of an MNIST-format directory (None: the
/// default directory).
pub fn load_dataset(dir: Option<&Path>, split: Split, limit: i64, one_hot: bool) -> Result<(Tensor, Tensor)> {
    let d = dir.map(c_path).transpose()?;
    let split = match split {
        Split::Train => sys::NNLIB_SPLIT_TRAIN,
        Split::Test => sys::NNLIB_SPLIT_TEST,
    };
    let (mut images, mut labels) = (ptr::null_mut(), ptr::null_mut());
    // SAFETY: a NUL-terminated directory or NULL, valid out pointers.
    check(unsafe {
        sys::nnlib_dataset_load(
            d.as_ref().map_or(ptr::null(), |c| c.as_ptr()),
            split,
            limit,
            one_hot as i32,
            &mut images,
            &mut labels,
        )
    })?;
    Ok(unsafe { (Tensor::from_raw(images), Tensor::from_raw(labels)) })
}
