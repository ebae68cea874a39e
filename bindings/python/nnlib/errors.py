"""nnlib's status codes as exceptions: one class per code.

Every C call that returns a status other than NNLIB_OK raises the subclass
of :class:`Error` for that code, carrying ``code`` (the C value),
``status`` (the library's fixed text for it) and ``message`` (the library's
detail of that failure, from nnlib_last_error_message()).
"""

import enum


class Status(enum.IntEnum):
    """nnlib_status; values are pinned by the C ABI."""

    OK = 0
    INVALID_ARGUMENT = -1
    OUT_OF_MEMORY = -2
    SHAPE_MISMATCH = -3
    UNSUPPORTED = -4
    WRONG_STATE = -5
    STRUCT_SIZE = -6
    TOO_LARGE = -7
    IO = -8
    CORRUPT_FILE = -9
    UNSUPPORTED_VERSION = -10
    NUMERICAL = -11
    BAD_MAGIC = -12
    CHECKSUM = -13
    TRUNCATED = -14
    CANCELLED = -15
    OUT_OF_RANGE = -16
    PARSE = -17
    INTERNAL = -18
    DTYPE = -19  # since 1.4.0


class Error(Exception):
    """A failed nnlib call. ``code`` is the nnlib_status value."""

    code = None

    def __init__(self, message="", code=None, status=None):
        if code is not None:
            self.code = int(code)
        self.status = status if status is not None else _text(self.code)
        self.message = message
        super().__init__("%s: %s" % (self.status, message) if message
                         else self.status)


class InvalidArgumentError(Error, ValueError):
    code = Status.INVALID_ARGUMENT


class UnknownNameError(InvalidArgumentError, KeyError):
    """An unknown name where the bindings take one from a fixed set (an
    optimizer kind, a schedule, an activation, an RNN nonlinearity). An
    InvalidArgumentError (code NNLIB_ERR_INVALID_ARGUMENT, and a
    ValueError) like the library's own refusals, and also a KeyError, which
    those lookups raised before, so ``except KeyError`` keeps working.
    ``name`` is the name given; str() is the message (not KeyError's
    quoted repr)."""

    __str__ = BaseException.__str__

    def __init__(self, kind, name, known):
        self.name = name
        super().__init__("unknown %s %r (known: %s)"
                         % (kind, name, ", ".join(known)),
                         code=Status.INVALID_ARGUMENT)


def _lookup_name(enum_class, name, kind):
    """enum_class[name.upper()], or UnknownNameError naming the known
    names (lower case, as the bindings take them)."""
    try:
        return enum_class[str(name).upper()]
    except KeyError:
        raise UnknownNameError(
            kind, name, [m.lower() for m in enum_class.__members__]) from None


class OutOfMemoryError(Error, MemoryError):
    code = Status.OUT_OF_MEMORY


class ShapeMismatchError(Error, ValueError):
    code = Status.SHAPE_MISMATCH


class UnsupportedError(Error):
    code = Status.UNSUPPORTED


class WrongStateError(Error):
    code = Status.WRONG_STATE


class StructSizeError(Error):
    code = Status.STRUCT_SIZE


class TooLargeError(Error, ValueError):
    code = Status.TOO_LARGE


class IOError_(Error):
    """NNLIB_ERR_IO (named with a trailing _ so it does not shadow the
    builtin IOError, an alias of OSError)."""

    code = Status.IO


class CorruptFileError(Error):
    code = Status.CORRUPT_FILE


class UnsupportedVersionError(Error):
    code = Status.UNSUPPORTED_VERSION


class NumericalError(Error, ArithmeticError):
    code = Status.NUMERICAL


class BadMagicError(Error):
    code = Status.BAD_MAGIC


class ChecksumError(Error):
    code = Status.CHECKSUM


class TruncatedError(Error):
    code = Status.TRUNCATED


class CancelledError(Error):
    code = Status.CANCELLED


class OutOfRangeError(Error, ValueError):
    code = Status.OUT_OF_RANGE


class ParseError(Error, ValueError):
    code = Status.PARSE


class InternalError(Error):
    code = Status.INTERNAL


class DtypeError(Error, TypeError):
    """NNLIB_ERR_DTYPE (library 1.4): a tensor of the wrong element type,
    e.g. float features where a model takes int32 token ids. The bindings
    raise it themselves, with the same code, for a float array given where
    token ids go."""

    code = Status.DTYPE


class UnknownStatusError(Error):
    """A status code this version of the bindings does not know (a newer
    library); ``code`` holds it."""


#: status code -> exception class
ERRORS = {cls.code: cls for cls in (
    InvalidArgumentError, OutOfMemoryError, ShapeMismatchError,
    UnsupportedError, WrongStateError, StructSizeError, TooLargeError,
    IOError_, CorruptFileError, UnsupportedVersionError, NumericalError,
    BadMagicError, ChecksumError, TruncatedError, CancelledError,
    OutOfRangeError, ParseError, InternalError, DtypeError)}

_status_text = None  # set by the package once the library is loaded


def _text(code):
    if _status_text is not None and code is not None:
        return _status_text(code)
    return "status %s" % code


def error_for(code, message):
    """The exception object for a non-OK status code."""
    cls = ERRORS.get(code)
    if cls is None:
        return UnknownStatusError(message, code=code)
    return cls(message)
