"""IDX (MNIST-family) files and MNIST-format data set directories.

Loaders return numpy arrays that are views of the tensors nnlib allocated
(no copy); each array keeps its tensor alive and the tensor is freed when
the last array over it goes away.
"""

import ctypes
import enum
import os

from ._core import Tensor, check, lib


class Split(enum.IntEnum):
    TRAIN = 0
    TEST = 1


def _adopt_numpy(handle):
    return Tensor._adopt(handle).numpy()


def load_idx_images(path, limit=0):
    """An idx3 file of bytes (plain or gzip) as [N, rows, cols] floats in
    [0, 1]; limit > 0 reads only the first `limit` images."""
    out = ctypes.c_void_p()
    check(lib.nnlib_idx_load_images(ctypes.byref(out),
                                    os.fsencode(os.fspath(path)), int(limit)))
    return _adopt_numpy(out.value)


def load_idx_labels(path, num_classes=10, one_hot=False, limit=0):
    """An idx1 file of bytes as [N] class indices (floats) or [N,
    num_classes] one-hot rows."""
    out = ctypes.c_void_p()
    check(lib.nnlib_idx_load_labels(ctypes.byref(out),
                                    os.fsencode(os.fspath(path)),
                                    int(num_classes), int(bool(one_hot)),
                                    int(limit)))
    return _adopt_numpy(out.value)


def dataset_default_dir():
    """$NNLIB_DATA_DIR, else Debian's dataset-fashion-mnist directory."""
    return os.fsdecode(lib.nnlib_dataset_default_dir())


def load_dataset(directory=None, split="train", limit=0, one_hot=False):
    """(images, labels) of one split of an MNIST-format directory (None:
    dataset_default_dir())."""
    if isinstance(split, str):
        split = Split[split.upper()]
    images = ctypes.c_void_p()
    labels = ctypes.c_void_p()
    path = None if directory is None else os.fsencode(os.fspath(directory))
    check(lib.nnlib_dataset_load(path, int(split), int(limit),
                                 int(bool(one_hot)), ctypes.byref(images),
                                 ctypes.byref(labels)))
    return _adopt_numpy(images.value), _adopt_numpy(labels.value)
