//! nnlib_status as a Rust error: the status and the library's message.

use std::ffi::CStr;
use std::fmt;

use nnlib_sys as sys;

/// A status code of the C library (values pinned by the ABI).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    InvalidArgument,
    OutOfMemory,
    ShapeMismatch,
    Unsupported,
    WrongState,
    StructSize,
    TooLarge,
    Io,
    CorruptFile,
    UnsupportedVersion,
    Numerical,
    BadMagic,
    Checksum,
    Truncated,
    Cancelled,
    OutOfRange,
    Parse,
    Internal,
    /// A tensor of the wrong element type, e.g. float features where a
    /// model takes int32 token ids (library 1.4).
    Dtype,
    /// A code this version of the bindings does not know (a newer library).
    Unknown(i32),
}

impl Status {
    /// The status for a non-OK C code.
    pub fn from_code(code: sys::nnlib_status) -> Status {
        match code {
            sys::NNLIB_ERR_INVALID_ARGUMENT => Status::InvalidArgument,
            sys::NNLIB_ERR_OUT_OF_MEMORY => Status::OutOfMemory,
            sys::NNLIB_ERR_SHAPE_MISMATCH => Status::ShapeMismatch,
            sys::NNLIB_ERR_UNSUPPORTED => Status::Unsupported,
            sys::NNLIB_ERR_WRONG_STATE => Status::WrongState,
            sys::NNLIB_ERR_STRUCT_SIZE => Status::StructSize,
            sys::NNLIB_ERR_TOO_LARGE => Status::TooLarge,
            sys::NNLIB_ERR_IO => Status::Io,
            sys::NNLIB_ERR_CORRUPT_FILE => Status::CorruptFile,
            sys::NNLIB_ERR_UNSUPPORTED_VERSION => Status::UnsupportedVersion,
            sys::NNLIB_ERR_NUMERICAL => Status::Numerical,
            sys::NNLIB_ERR_BAD_MAGIC => Status::BadMagic,
            sys::NNLIB_ERR_CHECKSUM => Status::Checksum,
            sys::NNLIB_ERR_TRUNCATED => Status::Truncated,
            sys::NNLIB_ERR_CANCELLED => Status::Cancelled,
            sys::NNLIB_ERR_OUT_OF_RANGE => Status::OutOfRange,
            sys::NNLIB_ERR_PARSE => Status::Parse,
            sys::NNLIB_ERR_INTERNAL => Status::Internal,
            sys::NNLIB_ERR_DTYPE => Status::Dtype,
            other => Status::Unknown(other),
        }
    }

    /// The C value of the status.
    pub fn code(self) -> sys::nnlib_status {
        match self {
            Status::InvalidArgument => sys::NNLIB_ERR_INVALID_ARGUMENT,
            Status::OutOfMemory => sys::NNLIB_ERR_OUT_OF_MEMORY,
            Status::ShapeMismatch => sys::NNLIB_ERR_SHAPE_MISMATCH,
            Status::Unsupported => sys::NNLIB_ERR_UNSUPPORTED,
            Status::WrongState => sys::NNLIB_ERR_WRONG_STATE,
            Status::StructSize => sys::NNLIB_ERR_STRUCT_SIZE,
            Status::TooLarge => sys::NNLIB_ERR_TOO_LARGE,
            Status::Io => sys::NNLIB_ERR_IO,
            Status::CorruptFile => sys::NNLIB_ERR_CORRUPT_FILE,
            Status::UnsupportedVersion => sys::NNLIB_ERR_UNSUPPORTED_VERSION,
            Status::Numerical => sys::NNLIB_ERR_NUMERICAL,
            Status::BadMagic => sys::NNLIB_ERR_BAD_MAGIC,
            Status::Checksum => sys::NNLIB_ERR_CHECKSUM,
            Status::Truncated => sys::NNLIB_ERR_TRUNCATED,
            Status::Cancelled => sys::NNLIB_ERR_CANCELLED,
            Status::OutOfRange => sys::NNLIB_ERR_OUT_OF_RANGE,
            Status::Parse => sys::NNLIB_ERR_PARSE,
            Status::Internal => sys::NNLIB_ERR_INTERNAL,
            Status::Dtype => sys::NNLIB_ERR_DTYPE,
            Status::Unknown(code) => code,
        }
    }

    /// The library's fixed text for the status ("shape mismatch").
    pub fn text(self) -> String {
        // SAFETY: never NULL, static storage.
        unsafe { CStr::from_ptr(sys::nnlib_status_string(self.code())) }
            .to_string_lossy()
            .into_owned()
    }
}

/// A failed nnlib call: the status and the library's detail message
/// (nnlib_last_error_message(), read on the failing thread right away).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub status: Status,
    pub message: String,
}

impl Error {
    /// An error made by the bindings themselves, with a status of the C
    /// library's vocabulary.
    pub fn new(status: Status, message: impl Into<String>) -> Error {
        Error { status, message: message.into() }
    }

    /// The C status code.
    pub fn code(&self) -> i32 {
        self.status.code()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{}", self.status.text())
        } else {
            write!(f, "{}: {}", self.status.text(), self.message)
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// Ok for NNLIB_OK, else the Error with the thread's last message.
pub(crate) fn check(code: sys::nnlib_status) -> Result<()> {
    if code == sys::NNLIB_OK {
        return Ok(());
    }
    // SAFETY: never NULL; valid until the next nnlib call on this thread.
    let message = unsafe { CStr::from_ptr(sys::nnlib_last_error_message()) }
        .to_string_lossy()
        .into_owned();
    Err(Error { status: Status::from_code(code), message })
}
