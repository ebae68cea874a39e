"""The loaded library, status checking, and numpy <-> nnlib_tensor.

Arrays go to C without a copy when they are already float32, C-contiguous
and aligned (nnlib_tensor_wrap over the array's own memory); anything else
is converted once with numpy.ascontiguousarray.
"""

import ctypes

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


def shape_array(shape):
    """A C int64_t array of the dimensions in `shape`, and its length."""
    dims = [int(d) for d in shape]
    return (ctypes.c_int64 * max(len(dims), 1))(*dims), len(dims)


def as_float32(array):
    """`array` as float32 C-contiguous, the same object if it already is."""
    return np.ascontiguousarray(array, dtype=np.float32)


def is_zero_copy(array):
    """True if `array` can be handed to C as it is (nnlib_tensor_wrap)."""
    return (isinstance(array, np.ndarray) and array.dtype == np.float32
            and array.flags.c_contiguous and array.flags.aligned)


class _ArrayMemory:
    """Exposes C memory to numpy, holding `owner` alive as the array's base."""

    def __init__(self, owner, address, shape, readonly):
        self._owner = owner
        self.__array_interface__ = {
            "version": 3,
            "typestr": "<f4",
            "shape": tuple(int(d) for d in shape),
            "data": (address, bool(readonly)),
        }


def float_view(owner, address, shape, readonly=False):
    """A numpy array over `address` (float32, C order) that keeps `owner`
    alive for as long as the array lives."""
    if not address:
        raise errors.InternalError("NULL data pointer from the library")
    return np.asarray(_ArrayMemory(owner, address, shape, readonly))


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
    a numpy array's memory without a copy.

    ``numpy()`` gives a view of the tensor's memory that keeps the tensor
    alive; ``numpy(copy=True)`` an independent copy. ``close()`` frees the
    handle now (views taken before become invalid); otherwise the garbage
    collector frees it once no view refers to it.
    """

    def __init__(self, shape):
        dims, rank = shape_array(shape)
        handle = ctypes.c_void_p()
        check(lib.nnlib_tensor_create(ctypes.byref(handle), dims, rank))
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
    def wrap(cls, array):
        """A tensor over `array`'s memory (zero-copy when `array` is float32
        and C-contiguous; otherwise over a float32 copy made once). The
        tensor keeps the array alive."""
        array = as_float32(array)
        if array.ndim == 0:
            array = array.reshape(1)
        dims, rank = shape_array(array.shape)
        handle = ctypes.c_void_p()
        data = array.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        check(lib.nnlib_tensor_wrap(ctypes.byref(handle), data, dims, rank))
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

    def numpy(self, copy=False):
        """The elements as a numpy array of the tensor's shape."""
        ptr = self._ptr()
        address = ctypes.cast(lib.nnlib_tensor_get_data(ptr),
                              ctypes.c_void_p).value
        view = float_view(self, address, tensor_shape(ptr))
        return view.copy() if copy else view

    def fill(self, value):
        check(lib.nnlib_tensor_fill(self._ptr(), float(value)))

    def set_shape(self, shape):
        dims, rank = shape_array(shape)
        check(lib.nnlib_tensor_set_shape(self._ptr(), dims, rank))

    def copy_from(self, other):
        """Copies the elements of another Tensor (or array) into this one."""
        if not isinstance(other, Tensor):
            with Tensor.wrap(other) as t:
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
        return "<nnlib.Tensor shape=%s>" % (self.shape,)
