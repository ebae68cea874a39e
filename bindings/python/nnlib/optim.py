"""Optimizers (PyTorch's update rules: SGD, Adam, AdamW, RMSprop).

An optimizer object owns its handle until ``Model.compile`` (or
``Model.set_optimizer``) takes it, also when that call fails; afterwards it
is a borrowed view of the model's optimizer (learning rate, step count,
options) and keeps the model alive. Every call on such a view (reading or
setting the learning rate, the step count, the options) holds the model's
lock: it waits for a fit or step running in another thread rather than
entering C beside it.
"""

import contextlib
import ctypes
import enum

from . import _lib, errors
from ._core import check, lib


class OptimizerKind(enum.IntEnum):
    SGD = 1
    ADAM = 2
    ADAMW = 3
    RMSPROP = 4


class Schedule(enum.IntEnum):
    CONSTANT = 0
    STEP = 1
    COSINE = 2


_FIELDS = [name for name, _ in _lib.OptimizerOptions._fields_
           if name not in ("struct_size", "kind")]


def _init_options(kind):
    """nnlib_optimizer_options with the defaults of `kind`, for the size of
    this struct (the 1.3 function of the old name fills the 1.3 size, which
    would hide warmup_steps from the library)."""
    opts = _lib.OptimizerOptions()
    if lib.has("nnlib_optimizer_options_init_size"):
        check(lib.nnlib_optimizer_options_init_size(
            ctypes.byref(opts), int(kind), ctypes.sizeof(opts)))
    else:  # a library before 1.3
        check(lib.nnlib_optimizer_options_init(ctypes.byref(opts), int(kind)))
    return opts


class Optimizer:
    """Optimizer(kind, **options): any field of nnlib_optimizer_options
    (learning_rate, momentum, nesterov, weight_decay, beta1, beta2, alpha,
    epsilon, schedule, step_size, gamma, total_steps, min_learning_rate,
    clip_norm, warmup_steps); the others keep the defaults of `kind`.

    warmup_steps (library 1.4): W > 0 makes step t < W use the learning
    rate lr (t + 1) / W, after which the schedule runs from t - W (COSINE
    needs W < total_steps).

    `kind` is an OptimizerKind or its name ("sgd", "adam", "adamw",
    "rmsprop", any case), `schedule` a Schedule or its name; an unknown
    name raises nnlib.UnknownNameError, an InvalidArgumentError that is
    also a KeyError."""

    def __init__(self, kind="sgd", **options):
        if isinstance(kind, str):
            kind = errors._lookup_name(OptimizerKind, kind, "optimizer")
        opts = _init_options(kind)
        for name, value in options.items():
            if name not in _FIELDS:
                raise errors.InvalidArgumentError(
                    "unknown optimizer option %r (known: %s)"
                    % (name, ", ".join(_FIELDS)),
                    code=errors.Status.INVALID_ARGUMENT)
            if name == "nesterov":
                value = int(bool(value))
            elif name == "schedule" and isinstance(value, str):
                value = errors._lookup_name(Schedule, value, "schedule")
            setattr(opts, name, value)
        handle = ctypes.c_void_p()
        check(lib.nnlib_optimizer_create(ctypes.byref(handle),
                                         ctypes.byref(opts)))
        self._handle = handle.value
        self._model = None
        self.kind = OptimizerKind(kind)

    @classmethod
    def _borrowed(cls, handle, model):
        opt = cls.__new__(cls)
        opt._handle = handle
        opt._model = model
        opt.kind = OptimizerKind(opt._read_options().kind)
        return opt

    def _take(self):
        """Hands the handle to a C call that takes ownership."""
        if self._model is not None or self._handle is None:
            raise errors.InvalidArgumentError(
                "this optimizer already belongs to a model (or was freed)",
                code=errors.Status.INVALID_ARGUMENT)
        handle, self._handle = self._handle, None
        return handle

    def _attach(self, handle, model):
        self._handle = handle
        self._model = model

    def _guard(self):
        """The lock of the model that took this optimizer, or a no-op for an
        optimizer no model has taken."""
        if self._model is not None:
            return self._model._lock
        return contextlib.nullcontext()

    def _ptr(self):
        if self._model is not None:
            current = lib.nnlib_model_get_optimizer(self._model._ptr())
            if current != self._handle:
                raise errors.WrongStateError(
                    "this optimizer was replaced by set_optimizer and freed",
                    code=errors.Status.WRONG_STATE)
        if self._handle is None:
            raise errors.WrongStateError(
                "the optimizer was freed (closed, or consumed by a failed "
                "compile)", code=errors.Status.WRONG_STATE)
        return self._handle

    @property
    def learning_rate(self):
        """Base learning rate (before the schedule). Setting it holds the
        model's lock: it waits for a fit or step in another thread to
        return (the library forbids it during training)."""
        with self._guard():
            return lib.nnlib_optimizer_get_learning_rate(self._ptr())

    @learning_rate.setter
    def learning_rate(self, value):
        with self._guard():
            check(lib.nnlib_optimizer_set_learning_rate(self._ptr(),
                                                        float(value)))

    @property
    def step_count(self):
        """Updates applied so far."""
        with self._guard():
            return lib.nnlib_optimizer_get_step_count(self._ptr())

    def _read_options(self):
        opts = _lib.OptimizerOptions()
        opts.struct_size = ctypes.sizeof(opts)
        with self._guard():
            check(lib.nnlib_optimizer_get_options(self._ptr(),
                                                  ctypes.byref(opts)))
        return opts

    @property
    def options(self):
        """The options it runs with, as a dict of the constructor's keyword
        arguments (learning_rate as last set; schedule as a Schedule)."""
        opts = self._read_options()
        out = {name: getattr(opts, name) for name in _FIELDS}
        out["nesterov"] = bool(out["nesterov"])
        out["schedule"] = Schedule(out["schedule"])
        return out

    def close(self):
        if self._model is None and self._handle is not None:
            handle, self._handle = self._handle, None
            lib.nnlib_optimizer_free(handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class SGD(Optimizer):
    """torch.optim.SGD: momentum, Nesterov, weight decay."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False,
                 weight_decay=0.0, **options):
        super().__init__("sgd", learning_rate=learning_rate,
                         momentum=momentum, nesterov=nesterov,
                         weight_decay=weight_decay, **options)


class Adam(Optimizer):
    """torch.optim.Adam (weight decay as L2 on the gradient)."""

    def __init__(self, learning_rate=1e-3, **options):
        super().__init__("adam", learning_rate=learning_rate, **options)


class AdamW(Optimizer):
    """torch.optim.AdamW (decoupled weight decay, default 0.01)."""

    def __init__(self, learning_rate=1e-3, **options):
        super().__init__("adamw", learning_rate=learning_rate, **options)


class RMSprop(Optimizer):
    """torch.optim.RMSprop."""

    def __init__(self, learning_rate=1e-2, **options):
        super().__init__("rmsprop", learning_rate=learning_rate, **options)
