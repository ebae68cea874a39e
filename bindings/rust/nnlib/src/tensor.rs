//! Tensors: owned ones, and zero-copy wraps of Rust slices. Float32
//! tensors (`Tensor`) carry features; int32 tensors (`IntTensor`, library
//! 1.4) carry token ids and class indices without a round trip through
//! float.

use std::marker::PhantomData;
use std::ptr;

use nnlib_sys as sys;

use crate::error::{check, Error, Result, Status};

fn element_count(shape: &[i64]) -> Result<usize> {
    if shape.is_empty() || shape.len() > sys::NNLIB_MAX_RANK {
        return Err(Error::new(
            Status::InvalidArgument,
            format!("rank {} is outside 1..={}", shape.len(), sys::NNLIB_MAX_RANK),
        ));
    }
    let mut n: usize = 1;
    for &d in shape {
        if d < 1 {
            return Err(Error::new(Status::InvalidArgument, format!("dimension {} in {:?} is < 1", d, shape)));
        }
        n = n
            .checked_mul(d as usize)
            .ok_or_else(|| Error::new(Status::TooLarge, format!("shape {:?} overflows", shape)))?;
    }
    Ok(n)
}

fn check_len(len: usize, shape: &[i64]) -> Result<()> {
    let n = element_count(shape)?;
    if n != len {
        return Err(Error::new(
            Status::ShapeMismatch,
            format!("a slice of {} values does not have shape {:?} ({} values)", len, shape, n),
        ));
    }
    Ok(())
}

/// nnlib_dtype: the element type of a tensor (library 1.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    Float32,
    Int32,
}

impl Dtype {
    pub fn code(self) -> sys::nnlib_dtype {
        match self {
            Dtype::Float32 => sys::NNLIB_DTYPE_FLOAT32,
            Dtype::Int32 => sys::NNLIB_DTYPE_INT32,
        }
    }

    /// The element type of a C tensor handle (Float32 for NULL).
    pub fn of(tensor: *const sys::nnlib_tensor) -> Dtype {
        // SAFETY: the getter accepts NULL and only reads.
        match unsafe { sys::nnlib_tensor_get_dtype(tensor) } {
            sys::NNLIB_DTYPE_INT32 => Dtype::Int32,
            _ => Dtype::Float32,
        }
    }
}

/// `values` as int32 token ids or class indices, checked: a value outside
/// i32's range is `Status::OutOfRange`, naming the value and its index
/// (nothing is truncated).
pub fn checked_ids(values: &[i64]) -> Result<Vec<i32>> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            i32::try_from(v).map_err(|_| {
                Error::new(
                    Status::OutOfRange,
                    format!("value {} at index {} does not fit int32 ({} ..= {})", v, i, i32::MIN, i32::MAX),
                )
            })
        })
        .collect()
}

/// A float32 tensor that owns its memory (nnlib_tensor_create, or returned
/// by a loader). Freed on drop.
pub struct Tensor {
    raw: *mut sys::nnlib_tensor,
}

// SAFETY: a tensor handle may move between threads (distinct handles are
// independent); shared references only read it.
unsafe impl Send for Tensor {}
unsafe impl Sync for Tensor {}

impl Tensor {
    /// A zero-filled tensor of `shape` (1 to 8 dimensions, each >= 1).
    pub fn new(shape: &[i64]) -> Result<Tensor> {
        let mut raw = ptr::null_mut();
        // SAFETY: shape is a valid array of shape.len() dimensions.
        check(unsafe { sys::nnlib_tensor_create(&mut raw, shape.as_ptr(), shape.len()) })?;
        Ok(Tensor { raw })
    }

    /// A tensor of `shape` holding a copy of `data`.
    pub fn from_slice(data: &[f32], shape: &[i64]) -> Result<Tensor> {
        check_len(data.len(), shape)?;
        let mut t = Tensor::new(shape)?;
        t.as_mut_slice().copy_from_slice(data);
        Ok(t)
    }

    /// Takes ownership of a handle the library returned.
    pub(crate) unsafe fn from_raw(raw: *mut sys::nnlib_tensor) -> Tensor {
        Tensor { raw }
    }

    pub fn as_raw(&self) -> *const sys::nnlib_tensor {
        self.raw
    }

    /// Always `Dtype::Float32` (int32 tensors are `IntTensor`s).
    pub fn dtype(&self) -> Dtype {
        Dtype::of(self.raw)
    }

    pub fn shape(&self) -> Vec<i64> {
        // SAFETY: a live handle.
        unsafe { shape_of(self.raw) }
    }

    pub fn len(&self) -> usize {
        // SAFETY: a live handle.
        unsafe { sys::nnlib_tensor_get_size(self.raw) as usize }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn as_slice(&self) -> &[f32] {
        // SAFETY: the tensor owns len() floats, alive as long as &self.
        unsafe { std::slice::from_raw_parts(sys::nnlib_tensor_get_data_const(self.raw), self.len()) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: as above, and &mut self makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(sys::nnlib_tensor_get_data(self.raw), self.len()) }
    }

    /// Changes the shape in place (same element count).
    pub fn reshape(&mut self, shape: &[i64]) -> Result<()> {
        // SAFETY: a live handle and a valid shape array.
        check(unsafe { sys::nnlib_tensor_set_shape(self.raw, shape.as_ptr(), shape.len()) })
    }

    pub fn fill(&mut self, value: f32) -> Result<()> {
        // SAFETY: a live handle.
        check(unsafe { sys::nnlib_tensor_fill(self.raw, value) })
    }

    /// Copies `src`'s elements into this tensor (same element count).
    pub fn copy_from(&mut self, src: &Tensor) -> Result<()> {
        // SAFETY: two live handles; distinct because of &mut self.
        check(unsafe { sys::nnlib_tensor_copy(self.raw, src.raw) })
    }
}

impl Drop for Tensor {
    fn drop(&mut self) {
        // SAFETY: the handle is owned and freed once.
        unsafe { sys::nnlib_tensor_free(self.raw) }
    }
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor{:?}", self.shape())
    }
}

/// An int32 tensor that owns its memory (nnlib_tensor_create_int32, library
/// 1.4): token ids, class indices. Freed on drop.
pub struct IntTensor {
    raw: *mut sys::nnlib_tensor,
}

// SAFETY: as for Tensor.
unsafe impl Send for IntTensor {}
unsafe impl Sync for IntTensor {}

impl IntTensor {
    /// A zero-filled int32 tensor of `shape`.
    pub fn new(shape: &[i64]) -> Result<IntTensor> {
        let mut raw = ptr::null_mut();
        // SAFETY: shape is a valid array of shape.len() dimensions.
        check(unsafe { sys::nnlib_tensor_create_int32(&mut raw, shape.as_ptr(), shape.len()) })?;
        Ok(IntTensor { raw })
    }

    /// A tensor of `shape` holding a copy of `data`.
    pub fn from_slice(data: &[i32], shape: &[i64]) -> Result<IntTensor> {
        check_len(data.len(), shape)?;
        let mut t = IntTensor::new(shape)?;
        t.as_mut_slice().copy_from_slice(data);
        Ok(t)
    }

    /// A tensor of `shape` holding `data` converted to int32 after checking
    /// every value fits (`checked_ids`: `Status::OutOfRange` otherwise).
    pub fn from_i64(data: &[i64], shape: &[i64]) -> Result<IntTensor> {
        check_len(data.len(), shape)?;
        IntTensor::from_slice(&checked_ids(data)?, shape)
    }

    pub fn as_raw(&self) -> *const sys::nnlib_tensor {
        self.raw
    }

    pub fn shape(&self) -> Vec<i64> {
        // SAFETY: a live handle.
        unsafe { shape_of(self.raw) }
    }

    pub fn len(&self) -> usize {
        // SAFETY: a live handle.
        unsafe { sys::nnlib_tensor_get_size(self.raw) as usize }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dtype(&self) -> Dtype {
        Dtype::of(self.raw)
    }

    pub fn as_slice(&self) -> &[i32] {
        // SAFETY: an int32 tensor owns len() values, alive as long as &self.
        unsafe { std::slice::from_raw_parts(sys::nnlib_tensor_get_data_int32_const(self.raw), self.len()) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [i32] {
        // SAFETY: as above, and &mut self makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(sys::nnlib_tensor_get_data_int32(self.raw), self.len()) }
    }

    /// Changes the shape in place (same element count).
    pub fn reshape(&mut self, shape: &[i64]) -> Result<()> {
        // SAFETY: a live handle and a valid shape array.
        check(unsafe { sys::nnlib_tensor_set_shape(self.raw, shape.as_ptr(), shape.len()) })
    }

    /// Sets every element to `value`. nnlib_tensor_fill takes a float,
    /// which holds integers exactly only up to 2^24: larger values are
    /// written here instead.
    pub fn fill(&mut self, value: i32) -> Result<()> {
        if value.unsigned_abs() <= 1 << 24 {
            // SAFETY: a live handle; the value is an exact integer.
            check(unsafe { sys::nnlib_tensor_fill(self.raw, value as f32) })
        } else {
            self.as_mut_slice().iter_mut().for_each(|v| *v = value);
            Ok(())
        }
    }

    /// Copies `src`'s elements into this tensor (same element count).
    pub fn copy_from(&mut self, src: &IntTensor) -> Result<()> {
        // SAFETY: two live handles; distinct because of &mut self.
        check(unsafe { sys::nnlib_tensor_copy(self.raw, src.raw) })
    }
}

impl Drop for IntTensor {
    fn drop(&mut self) {
        // SAFETY: the handle is owned and freed once.
        unsafe { sys::nnlib_tensor_free(self.raw) }
    }
}

impl std::fmt::Debug for IntTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IntTensor{:?}", self.shape())
    }
}

pub(crate) unsafe fn shape_of(t: *const sys::nnlib_tensor) -> Vec<i64> {
    let rank = sys::nnlib_tensor_get_rank(t);
    (0..rank).map(|i| sys::nnlib_tensor_get_dim(t, i)).collect()
}

/// A tensor over a borrowed slice (nnlib_tensor_wrap, or
/// nnlib_tensor_wrap_int32 for i32 slices; no copy), freed on drop; the
/// slice stays borrowed as long as the wrap lives. Made from a shared slice
/// it is only ever passed as a `const nnlib_tensor *`.
pub(crate) struct Wrap<'a> {
    raw: *mut sys::nnlib_tensor,
    _data: PhantomData<&'a mut [u8]>,
}

impl<'a> Wrap<'a> {
    /// Read-only input: C gets a `const nnlib_tensor *` only.
    pub(crate) fn input(data: &'a [f32], shape: &[i64]) -> Result<Wrap<'a>> {
        check_len(data.len(), shape)?;
        // the header's wrap takes float *; nnlib never writes through a
        // tensor it receives as const
        Self::make(data.as_ptr() as *mut f32, shape)
    }

    pub(crate) fn output(data: &'a mut [f32], shape: &[i64]) -> Result<Wrap<'a>> {
        check_len(data.len(), shape)?;
        Self::make(data.as_mut_ptr(), shape)
    }

    /// Read-only int32 input (token ids, class indices).
    pub(crate) fn input_ids(data: &'a [i32], shape: &[i64]) -> Result<Wrap<'a>> {
        check_len(data.len(), shape)?;
        let mut raw = ptr::null_mut();
        // SAFETY: data holds the product of shape values (checked above);
        // nnlib never writes through a tensor it receives as const.
        check(unsafe { sys::nnlib_tensor_wrap_int32(&mut raw, data.as_ptr() as *mut i32, shape.as_ptr(), shape.len()) })?;
        Ok(Wrap { raw, _data: PhantomData })
    }

    /// Writable int32 output (text windows).
    pub(crate) fn output_ids(data: &'a mut [i32], shape: &[i64]) -> Result<Wrap<'a>> {
        check_len(data.len(), shape)?;
        let mut raw = ptr::null_mut();
        // SAFETY: data holds the product of shape values (checked above).
        check(unsafe { sys::nnlib_tensor_wrap_int32(&mut raw, data.as_mut_ptr(), shape.as_ptr(), shape.len()) })?;
        Ok(Wrap { raw, _data: PhantomData })
    }

    fn make(data: *mut f32, shape: &[i64]) -> Result<Wrap<'a>> {
        let mut raw = ptr::null_mut();
        // SAFETY: data holds the product of shape floats (checked above).
        check(unsafe { sys::nnlib_tensor_wrap(&mut raw, data, shape.as_ptr(), shape.len()) })?;
        Ok(Wrap { raw, _data: PhantomData })
    }

    pub(crate) fn as_const(&self) -> *const sys::nnlib_tensor {
        self.raw
    }

    pub(crate) fn as_mut(&mut self) -> *mut sys::nnlib_tensor {
        self.raw
    }
}

impl Drop for Wrap<'_> {
    fn drop(&mut self) {
        // SAFETY: owned wrap handle; the wrapped memory is not freed.
        unsafe { sys::nnlib_tensor_free(self.raw) }
    }
}
