"""Text corpora as byte tokens (nnlib_text, library 1.4).

A Text holds the bytes of some files (or of a bytes object) as a sequence
of tokens 0..255, split at a fixed point: the first (1 - valid_fraction)
for training, the rest for validation. It hands out windows for a
language model over a context of T bytes as int32 numpy arrays (x, y),
each [B, T]: x the bytes of the window, y the byte after each of them::

    text = nnlib.Text.from_bytes(b"the quick brown fox ... " * 50)
    model = nnlib.Model("input:32,embedding:256:32,positional,"
                        "transformer:32:2:causal,layernorm,linear:256")
    model.compile(loss="softmax_ce", optimizer="adamw", max_batch=8)
    x, y = text.sample("train", 8, 32)
    loss = model.step(x, y)

The arrays are ordinary numpy arrays (the library fills them in place, no
copy); they go into Model.step/evaluate/fit as token ids and class index
targets as they are.
"""

import ctypes
import enum
import os

import numpy as np

from . import errors
from ._core import Tensor, check, lib, seed_value


class TextSplit(enum.IntEnum):
    """nnlib_text_split; values are pinned by the C ABI."""

    TRAIN = 0
    VALID = 1


def _split(split):
    """A TextSplit from a TextSplit, 0/1, or "train"/"valid"
    ("validation" too)."""
    if isinstance(split, str):
        name = split.upper()
        if name == "VALIDATION":
            name = "VALID"
        if name not in TextSplit.__members__:
            raise errors.InvalidArgumentError(
                "unknown text split %r (train or valid)" % split,
                code=errors.Status.INVALID_ARGUMENT)
        return TextSplit[name]
    return TextSplit(split)


class Text:
    """A text corpus of byte tokens (vocabulary 256), split into a training
    and a validation part. Make one with ``Text.load(paths)`` or
    ``Text.from_bytes(data)``; ``close()`` (or leaving a ``with`` block)
    frees it, otherwise the garbage collector does."""

    #: byte tokens: an embedding over a Text has vocab_size 256
    vocab_size = 256

    def __init__(self, handle):
        """Takes a handle from nnlib_text_load/from_bytes; use the class
        methods."""
        self._handle = handle

    @classmethod
    def load(cls, paths, valid_fraction=0.1, seed=1):
        """The bytes of `paths` (a path, or a list of them) concatenated in
        order: a file is read whole, a directory contributes its regular
        files (not subdirectories, not names starting with '.', not
        fortune's .dat index files) in byte order of their names.
        valid_fraction in [0, 1): the last share validates. `seed` (0 ..
        2**64 - 1; a negative one raises InvalidArgumentError) seeds the
        generator that draws training windows (sample)."""
        if isinstance(paths, (str, bytes, os.PathLike)):
            paths = [paths]
        encoded = [os.fsencode(os.fspath(p)) for p in paths]
        array = (ctypes.c_char_p * max(len(encoded), 1))(*encoded)
        handle = ctypes.c_void_p()
        check(lib.nnlib_text_load(ctypes.byref(handle), array, len(encoded),
                                  float(valid_fraction),
                                  seed_value(seed)))
        return cls(handle.value)

    @classmethod
    def from_bytes(cls, data, valid_fraction=0.1, seed=1):
        """A Text over `data` (bytes-like, copied; a str is encoded as
        UTF-8), split and seeded as in load."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        data = bytes(data)
        handle = ctypes.c_void_p()
        check(lib.nnlib_text_from_bytes(ctypes.byref(handle), data, len(data),
                                        float(valid_fraction),
                                        seed_value(seed)))
        return cls(handle.value)

    def _ptr(self):
        if self._handle is None:
            raise errors.WrongStateError("the text is closed",
                                         code=errors.Status.WRONG_STATE)
        return self._handle

    def size(self, split="train"):
        """Bytes in a split ("train" or "valid")."""
        return lib.nnlib_text_get_size(self._ptr(), int(_split(split)))

    def __len__(self):
        """Bytes in both splits."""
        return self.size(TextSplit.TRAIN) + self.size(TextSplit.VALID)

    def bytes(self, split="train"):
        """A copy of a split's bytes."""
        ptr = self._ptr()
        s = int(_split(split))
        n = lib.nnlib_text_get_size(ptr, s)
        if n == 0:
            return b""
        return ctypes.string_at(lib.nnlib_text_get_bytes(ptr, s), n)

    def sample(self, split, batch, context):
        """(x, y): `batch` windows of `context` + 1 consecutive bytes drawn
        at random offsets of a split from the text's seeded generator
        (which advances: the same seed gives the same batches); x the
        first `context` bytes of each, y the next byte of each position.
        Both int32 numpy arrays [batch, context]. TooLargeError when the
        split holds fewer than context + 1 bytes."""
        x, y = _pair(batch, context)
        with Tensor.wrap(x, np.int32) as tx, Tensor.wrap(y, np.int32) as ty:
            check(lib.nnlib_text_sample(self._ptr(), int(_split(split)),
                                        tx._ptr(), ty._ptr()))
        return x, y

    def window_count(self, split, context):
        """The number of consecutive windows of `context` bytes that
        windows() reads from a split: floor((size - 1) / context)."""
        return lib.nnlib_text_window_count(self._ptr(), int(_split(split)),
                                           int(context))

    def windows(self, split, first, count, context):
        """(x, y) of windows first .. first + count - 1 of a split (window i
        starts at byte i * context), int32 [count, context] each: together
        the windows 0 .. window_count - 1 predict every byte after the
        first once (for a validation loss). OutOfRangeError for windows
        past the end."""
        x, y = _pair(count, context)
        with Tensor.wrap(x, np.int32) as tx, Tensor.wrap(y, np.int32) as ty:
            check(lib.nnlib_text_window(self._ptr(), int(_split(split)),
                                        int(first), tx._ptr(), ty._ptr()))
        return x, y

    def close(self):
        handle, self._handle = self._handle, None
        if handle is not None:
            lib.nnlib_text_free(handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        if self._handle is None:
            return "<nnlib.Text closed>"
        return "<nnlib.Text train=%d valid=%d bytes>" % (
            self.size(TextSplit.TRAIN), self.size(TextSplit.VALID))


def _pair(rows, context):
    """Two zeroed int32 arrays [rows, context] for the library to fill.
    Sizes below 1 are refused here (a tensor cannot have them, so the
    library would never see the call) with the status it uses for them."""
    rows, context = int(rows), int(context)
    if rows < 1 or context < 1:
        raise errors.InvalidArgumentError(
            "text windows: batch (%d) and context (%d) must be >= 1"
            % (rows, context), code=errors.Status.INVALID_ARGUMENT)
    return (np.zeros((rows, context), np.int32),
            np.zeros((rows, context), np.int32))
