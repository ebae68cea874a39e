"""The loaded library, status checking, and numpy <-> nnlib_tensor.

Arrays go to C without a copy when they are already float32, C-contiguous
and aligned (nnlib_tensor_wrap over the array's own memory); anything else
is converted once, into an aligned C-contiguous copy. Aligned means what
numpy's ``flags.aligned`` says: the address a multiple of the element's
alignment (4 bytes for float32 and int32), which C requires of a float * or
int32_t *; an unaligned array (e.g. np.frombuffer at an odd offset) is
never handed to C, it is copied.

int32 tensors (library 1.4) carry token ids and class indices without a
round trip through float: an aligned int32 C-contiguous array is wrapped
as it is (nnlib_tensor_wrap_int32), another integer array is converted once
after checking that every value fits int32 (``as_int32``), and a float
array is refused (DtypeError) rather than truncated.
"""

import ctypes
import enum

import numpy as np

from . import _lib, errors

lib = _lib.load()
errors._status_text = lambda code: lib.nnlib_status_string(code).decode()

_MAX_RANK = 8


def check(status):
    """Raises the nnlib.Error subclass for a non-OK status."""
    if status != 0:
        message = lib.nnlib_last_error_message()
        raise errors.error_for(status, message.decode("utf-8", "replace"))


_UINT64_MAX = 2 ** 64 - 1


def seed_value(seed, what="seed"):
    """`seed` as an int for a C uint64_t seed. nnlib takes any value in
    0 .. 2**64 - 1; a negative or larger one raises InvalidArgumentError
    instead of wrapping modulo 2**64 as ctypes would (seed=-1 would
    otherwise silently be 18446744073709551615)."""
    value = int(seed)
    if not 0 <= value <= _UINT64_MAX:
        raise errors.InvalidArgumentError(
            "%s must be an integer in 0 .. 2**64 - 1 (a C uint64_t), got %d"
            % (what, value), code=errors.Status.INVALID_ARGUMENT)
    return value


def shape_array(shape):
    """A C int64_t array of the dimensions in `shape`, and its length."""
    dims = [int(d) for d in shape]
    return (ctypes.c_int64 * max(len(dims), 1))(*dims), len(dims)


class DType(enum.IntEnum):
    """nnlib_dtype (library 1.4); values are pinned by the C ABI."""

    FLOAT32 = 0
    INT32 = 1


_NUMPY_DTYPES = {DType.FLOAT32: np.dtype(np.float32),
                 DType.INT32: np.dtype(np.int32)}

_INT32_MIN, _INT32_MAX = -2 ** 31, 2 ** 31 - 1


def dtype_of(dtype):
    """A DType from a DType, a numpy dtype (float32 or int32) or a name."""
    if isinstance(dtype, DType):
        return dtype
    if isinstance(dtype, str) and dtype.upper() in DType.__members__:
        return DType[dtype.upper()]
    d = np.dtype(dtype)
    for k, v in _NUMPY_DTYPES.items():
        if d == v:
            return k
    raise errors.InvalidArgumentError(
        "nnlib tensors hold float32 or int32 elements, not %s" % d,
        code=errors.Status.INVALID_ARGUMENT)


def is_integer_array(array):
    """True if np.asarray(array) holds integers (any width, signed or
    not); bool is not an integer here."""
    return np.issubdtype(np.asarray(array).dtype, np.integer)


def as_int32(array, what="token ids"):
    """`array` as an aligned int32 C-contiguous array (the same object when
    it already is one). Integer arrays of another width are converted only
    after checking that every value fits int32 (OutOfRangeError, a
    ValueError, names the first value that does not); float, bool and other
    arrays raise DtypeError (a TypeError): ids are never truncated or
    rounded silently. `what` names the data in messages."""
    a = np.asarray(array)
    if a.dtype == np.int32:
        return _aligned(np.ascontiguousarray(a))
    if not np.issubdtype(a.dtype, np.integer):
        if a.size == 0 and a.dtype == np.float64:
            return np.zeros(a.shape, np.int32)  # [] from an empty list
        raise errors.DtypeError(
            "%s must be integers (int32, or an integer array whose values "
            "fit int32), got an array of %s; a float array is not cast to "
            "int32 token ids implicitly: convert it yourself (e.g. "
            "np.rint(a).astype(np.int32)) if its values are ids"
            % (what, a.dtype), code=errors.Status.DTYPE)
    if a.size:
        low, high = int(a.min()), int(a.max())
        if low < _INT32_MIN or high > _INT32_MAX:
            bad = low if low < _INT32_MIN else high
            index = np.unravel_index(int(np.argmax(a == bad)), a.shape)
            raise errors.OutOfRangeError(
                "%s: value %d at index %s does not fit int32 (%d .. %d)"
                % (what, bad, tuple(int(i) for i in index), _INT32_MIN,
                   _INT32_MAX), code=errors.Status.OUT_OF_RANGE)
    return _aligned(np.ascontiguousarray(a, dtype=np.int32))


def _aligned(array):
    """`array` itself when numpy calls it aligned, else an aligned copy
    (numpy allocates its own memory aligned)."""
    return array if array.flags.aligned else array.copy()


def as_float32(array):
    """`array` as an aligned float32 C-contiguous array, the same object if
    it already is one (see is_zero_copy)."""
    return _aligned(np.ascontiguousarray(array, dtype=np.float32))


def is_zero_copy(array):
    """True if `array` can be handed to C as it is (nnlib_tensor_wrap)."""
    return (isinstance(array, np.ndarray) and array.dtype == np.float32
            and array.flags.c_contiguous and array.flags.aligned)


class _ArrayMemory:
    """Exposes C memory to numpy, holding `owner` alive as the array's base."""

    def __init__(self, owner, address, shape, readonly, typestr="<f4"):
        self._owner = owner
        self.__array_interface__ = {
            "version": 3,
            "typestr": typestr,
            "shape": tuple(int(d) for d in shape),
            "data": (address, bool(readonly)),
        }


def float_view(owner, address, shape, readonly=False):
    """A numpy array over `address` (float32, C order) that keeps `owner`
    alive for as long as the array lives."""
    if not address:
        raise errors.InternalError("NULL data pointer from the library")
    return np.asarray(_ArrayMemory(owner, address, shape, readonly))


def int32_view(owner, address, shape, readonly=False):
    """The same for int32 elements."""
    if not address:
        raise errors.InternalError("NULL data pointer from the library")
    return np.asarray(_ArrayMemory(owner, address, shape, readonly, "<i4"))


def tensor_shape(handle):
    rank = lib.nnlib_tensor_get_rank(handle)
    return tuple(lib.nnlib_tensor_get_dim(handle, i) for i in range(rank))


def read_shape(getter, handle):
    """Calls a (handle, dims, capacity, &rank) shape getter."""
    dims = (ctypes.c_int64 * _MAX_RANK)()
    rank = ctypes.c_size_t()
    check(getter(handle, dims, _MAX_RANK, ctypes.byref(rank)))
    return tuple(dims[i] for i in range(min(rank.value, _MAX_RANK)))


class Tensor:
    """An nnlib_tensor: owned (created, or returned by a loader) or wrapping
    a numpy array's memory without a copy; float32 elements, or int32 (token
    ids, class indices; library 1.4) when made with dtype=np.int32.

    ``numpy()`` gives a view of the tensor's memory (float32 or int32) that
    keeps the tensor alive; ``numpy(copy=True)`` an independent copy.
    ``close()`` frees the handle now (views taken before become invalid);
    otherwise the garbage collector frees it once no view refers to it.
    """

    def __init__(self, shape, dtype=np.float32):
        dims, rank = shape_array(shape)
        handle = ctypes.c_void_p()
        create = (lib.nnlib_tensor_create_int32
                  if dtype_of(dtype) == DType.INT32 else lib.nnlib_tensor_create)
        check(create(ctypes.byref(handle), dims, rank))
        self._handle = handle.value
        self._array = None

    @classmethod
    def _adopt(cls, handle):
        """Takes ownership of a handle the library returned."""
        t = cls.__new__(cls)
        t._handle = handle
        t._array = None
        return t

    @classmethod
    def wrap(cls, array, dtype=np.float32):
        """A tensor over `array`'s memory. dtype float32 (the default, as in
        1.3: any numeric array): zero-copy when `array` is float32,
        C-contiguous and aligned (is_zero_copy), otherwise over a float32
        copy made once. dtype int32: zero-copy for an aligned int32
        C-contiguous array, otherwise over a checked copy (see as_int32:
        other integer widths if every value fits, float arrays refused).
        The tensor keeps the array alive. Writes to the tensor reach
        `array` only when it was zero-copy."""
        if dtype_of(dtype) == DType.INT32:
            array = as_int32(array, "int32 tensor data")
            c_type, wrap = ctypes.c_int32, lib.nnlib_tensor_wrap_int32
        else:
            array = as_float32(array)
            c_type, wrap = ctypes.c_float, lib.nnlib_tensor_wrap
        if array.ndim == 0:
            array = array.reshape(1)
        dims, rank = shape_array(array.shape)
        handle = ctypes.c_void_p()
        data = array.ctypes.data_as(ctypes.POINTER(c_type))
        check(wrap(ctypes.byref(handle), data, dims, rank))
        t = cls._adopt(handle.value)
        t._array = array
        return t

    def _ptr(self):
        if self._handle is None:
            raise errors.WrongStateError("the tensor is closed",
                                         code=errors.Status.WRONG_STATE)
        return self._handle

    @property
    def shape(self):
        return tensor_shape(self._ptr())

    @property
    def size(self):
        return lib.nnlib_tensor_get_size(self._ptr())

    @property
    def dtype(self):
        """The element type as a numpy dtype (float32 or int32)."""
        if not lib.has("nnlib_tensor_get_dtype"):
            return _NUMPY_DTYPES[DType.FLOAT32]  # a library before 1.4
        return _NUMPY_DTYPES[DType(lib.nnlib_tensor_get_dtype(self._ptr()))]

    def numpy(self, copy=False):
        """The elements as a numpy array (float32 or int32) of the tensor's
        shape."""
        ptr = self._ptr()
        if self.dtype == np.int32:
            address = ctypes.cast(lib.nnlib_tensor_get_data_int32(ptr),
                                  ctypes.c_void_p).value
            view = int32_view(self, address, tensor_shape(ptr))
        else:
            address = ctypes.cast(lib.nnlib_tensor_get_data(ptr),
                                  ctypes.c_void_p).value
            view = float_view(self, address, tensor_shape(ptr))
        return view.copy() if copy else view

    def fill(self, value):
        """Sets every element; an int32 tensor takes only integral values
        in int32's range (else InvalidArgumentError). nnlib_tensor_fill
        takes a float, which holds integers exactly only up to 2^24: an
        int32 tensor gets larger values written here instead."""
        ptr = self._ptr()
        if self.dtype == np.int32:
            v = float(value)
            if not (v.is_integer() and _INT32_MIN <= v <= _INT32_MAX
                    and (not isinstance(value, (int, np.integer))
                         or _INT32_MIN <= int(value) <= _INT32_MAX)):
                raise errors.InvalidArgumentError(
                    "an int32 tensor is filled with an integer in %d .. %d, "
                    "not %r" % (_INT32_MIN, _INT32_MAX, value),
                    code=errors.Status.INVALID_ARGUMENT)
            if abs(v) > 2 ** 24:
                iv = int(value) if isinstance(value, (int, np.integer)) \
                    else int(v)
                self.numpy()[...] = iv
                return
        check(lib.nnlib_tensor_fill(ptr, float(value)))

    def set_shape(self, shape):
        dims, rank = shape_array(shape)
        check(lib.nnlib_tensor_set_shape(self._ptr(), dims, rank))

    def copy_from(self, other):
        """Copies the elements of another Tensor (or array, converted to
        this tensor's element type) into this one."""
        if not isinstance(other, Tensor):
            with Tensor.wrap(other, self.dtype) as t:
                return self.copy_from(t)
        check(lib.nnlib_tensor_copy(self._ptr(), other._ptr()))

    def close(self):
        handle, self._handle = self._handle, None
        if handle is not None:
            lib.nnlib_tensor_free(handle)
        self._array = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may be gone
            pass

    def __repr__(self):
        if self._handle is None:
            return "<nnlib.Tensor closed>"
        if self.dtype == np.int32:
            return "<nnlib.Tensor shape=%s dtype=int32>" % (self.shape,)
        return "<nnlib.Tensor shape=%s>" % (self.shape,)
