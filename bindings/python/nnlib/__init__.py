"""nnlib: Python bindings (ctypes + numpy) over libnnlib's C ABI.

The library is found through $NNLIB_LIBRARY (a path to libnnlib.so.1), then
the system loader, then ``pkg-config --variable=libdir nnlib``; its major
version must be the one these bindings were written for (1).
"""

import ctypes
import enum

from . import errors
from ._core import DType, Tensor, as_int32, is_zero_copy, lib
from ._lib import ABI_MAJOR, LibraryNotFoundError
from .data import (Split, dataset_default_dir, load_dataset, load_idx_images,
                   load_idx_labels)
from .errors import *  # noqa: F401,F403  (Error and one class per status)
from .errors import Error, Status
from .layers import (Activation, ActivationKind, Dense, Identity, Layer,
                     LayerKind, LeakyReLU, ReLU, Sigmoid, Softmax, Softplus,
                     Step, Tanh)
from .layers import (AvgPool2d, BatchNorm, Conv2d, Dropout, Flatten,
                     GlobalAvgPool, MaxPool2d, MinPool2d, Transpose)
from .layers import GRU, LSTM, RNN
from .layers import Add, Concat, Multiply
from .layers import (GELU, Attention, Embedding, GELUTanh, LayerNorm, Linear,
                     Positional)
from .graph import Input, Node, add, concat, multiply
from .model import (SAVE_OPTIMIZER, GraphNode, History, Loss, Model,
                    Progress, Workspace, model_file_info)
from .optim import (SGD, Adam, AdamW, Optimizer, OptimizerKind, RMSprop,
                    Schedule)
from .text import Text, TextSplit

__version__ = "1.7.0"


def version():
    """The loaded library's version as MAJOR*10000 + MINOR*100 + PATCH."""
    return lib.nnlib_version()


def version_string():
    return lib.nnlib_version_string().decode()


def library_path():
    """Where the loaded libnnlib came from: an absolute path when it was
    loaded by path ($NNLIB_LIBRARY relative or not, pkg-config), else the
    name the system loader resolved."""
    return lib.path


def set_num_threads(n):
    """Threads nnlib computes on (process-wide), all on a pool of nnlib's
    own: the large matrix products split into one part per thread, and the
    passes between them, which give the same bits on any thread count.
    n <= 0 restores the default (OPENBLAS_NUM_THREADS, else every core).
    OpenBLAS itself is kept to one thread from nnlib's first product on,
    also for numpy's products in the same process."""
    from ._core import check
    check(lib.nnlib_set_num_threads(int(n)))


def get_num_threads():
    """The threads nnlib computes on now (process-wide)."""
    return lib.nnlib_get_num_threads()


class Simd(enum.IntEnum):
    """nnlib_simd: the vector instructions of a set of matrix kernels or of
    a CPU, ordered from narrow to wide."""
    UNKNOWN = 0
    SSE = 1
    AVX = 2
    AVX2 = 3
    AVX512 = 4


def blas_info():
    """The BLAS every product runs on and whether its kernels suit the CPU:
    a dict of nnlib_blas_info's fields. `config` (OpenBLAS's build line),
    `kernels` (the kernel set OpenBLAS chose when it was loaded, e.g.
    "Haswell"), `kernels_simd` and `cpu_simd` (Simd), `kernels_are_fallback`
    (True when the kernels lack the AVX2 and FMA the CPU has: OpenBLAS did
    not recognise the CPU, and products run several times slower) and
    `suggested_kernels` (then, for an OpenBLAS built with DYNAMIC_ARCH, the
    OPENBLAS_CORETYPE to set before Python starts; else None)."""
    from . import _lib as lib_types
    from ._core import check
    info = lib_types.BlasInfo()
    info.struct_size = ctypes.sizeof(info)
    check(lib.nnlib_blas_get_info(ctypes.byref(info)))

    def text(raw):
        return None if raw is None else raw.decode()

    def simd(value):  # a later library's set these bindings do not know
        return Simd(value) if value in Simd._value2member_map_ else Simd.UNKNOWN
    return {
        "config": text(info.config),
        "kernels": text(info.kernels),
        "kernels_simd": simd(info.kernels_simd),
        "cpu_simd": simd(info.cpu_simd),
        "kernels_are_fallback": bool(info.kernels_are_fallback),
        "suggested_kernels": text(info.suggested_kernels),
    }
