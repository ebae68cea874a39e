"""Layers: one class per C constructor.

A layer object starts out owning its nnlib_layer. ``Model.add`` hands the
handle to the model (nnlib_model_add takes it, also when it fails); from
then on the Python object is a borrowed view that keeps its model alive and
never frees the handle itself.

Parameters exist after the model is compiled. ``get_param``/``weight``/
``bias`` return copies; ``set_param`` (and assigning ``weight``/``bias``)
copies into the model; ``param_view``/``grad_view`` return writable numpy
views of the model's own memory, valid until the model is closed.

Threads: every method of a layer that belongs to a model (the getters,
``get_param``/``set_param``, ``get_buffer``/``set_buffer``,
``set_initial_state``, and making a view) holds that model's lock, so it
waits for a ``fit``, ``step``, ``predict`` or other call on the model
running in another thread rather than entering C beside it. What is not
serialised: reads and writes through a numpy view (``param_view``,
``grad_view``, ``buffer_view``, or an array they returned) happen in
numpy, outside any lock. While other threads may use the model, use
``get_param``/``set_param`` (and ``get_buffer``/``set_buffer``) instead of
a view.

Merge layers (Add, Concat, Multiply) read several nodes of a graph model;
they are called on a list of nodes of the functional API (nnlib.graph).

Adding a layer kind takes a signature line in _lib.SIGNATURES, a class
here whose __init__ calls ``_create``, and its kind in ``_KINDS``::

    class Dropout(Layer):
        def __init__(self, p=0.5):
            super().__init__(_create("nnlib_dropout_create", float(p)))
"""

import contextlib
import ctypes
import enum

from . import errors
from ._core import as_float32, check, float_view, lib, read_shape


class LayerKind(enum.IntEnum):
    """nnlib_layer_kind; values are pinned by the C ABI."""

    DENSE = 1
    ACTIVATION = 2
    CONV2D = 3
    MAXPOOL2D = 4
    MINPOOL2D = 5
    AVGPOOL2D = 6
    GLOBAL_AVGPOOL = 7
    BATCHNORM = 8
    DROPOUT = 9
    FLATTEN = 10
    RNN = 11
    LSTM = 12
    GRU = 13
    ADD = 14
    CONCAT = 15
    MULTIPLY = 16
    EMBEDDING = 17   # text layers (library 1.4)
    POSITIONAL = 18
    LAYERNORM = 19
    ATTENTION = 20
    LINEAR = 21
    TRANSPOSE = 22   # library 1.6


class ActivationKind(enum.IntEnum):
    """nnlib_activation; values are pinned by the C ABI."""

    IDENTITY = 0
    STEP = 1
    SIGMOID = 2
    TANH = 3
    RELU = 4
    LEAKY_RELU = 5
    SOFTPLUS = 6
    SOFTMAX = 7
    GELU = 8        # x Phi(x), the exact erf (library 1.4)
    GELU_TANH = 9   # PyTorch's approximate='tanh' (library 1.4)


def _create(fn_name, *args):
    """Calls an nnlib_*_create(nnlib_layer **out, ...) and returns the
    handle."""
    handle = ctypes.c_void_p()
    check(getattr(lib, fn_name)(ctypes.byref(handle), *args))
    return handle.value


class Layer:
    """A layer handle; see the module documentation for ownership.

    Calling a layer on a node of the functional API (``Dense(4)(x)``)
    records it in a graph and returns its node (see nnlib.graph)."""

    #: merge layers read two or more nodes, the others one
    _merge = False
    #: what the layer was applied to, once called on a node
    _applied = None

    def __init__(self, handle):
        self._handle = handle
        self._model = None  # the Model that owns the handle, once added

    @classmethod
    def _borrowed(cls, handle, model):
        """A view of a layer the model owns, of the class of its kind."""
        kind = lib.nnlib_layer_get_kind(handle)
        layer_cls = _KINDS.get(kind, Layer)
        layer = layer_cls.__new__(layer_cls)
        layer._handle = handle
        layer._model = model
        return layer

    def _guard(self):
        """The lock of the model that owns this layer (a context manager;
        calls on one model are serialised), or a no-op for a layer that no
        model has taken (used by its creator's thread only)."""
        if self._model is not None:
            return self._model._lock
        return contextlib.nullcontext()

    def _ptr(self):
        if self._model is not None:
            self._model._ptr()  # raises if the model is closed
        if self._handle is None:
            raise errors.WrongStateError(
                "the layer was freed (closed, or consumed by a failed "
                "Model.add)", code=errors.Status.WRONG_STATE)
        return self._handle

    def __call__(self, inputs, name=None):
        """Applies the layer to a node (a list of nodes for Add, Concat and
        Multiply) of the functional API and returns the new node, named
        `name` in the model if given. Once only per layer."""
        from .graph import apply
        return apply(self, inputs, name)

    @property
    def owned(self):
        """True while this object owns its handle (not added to a model)."""
        return self._model is None and self._handle is not None

    @property
    def kind(self):
        with self._guard():
            k = lib.nnlib_layer_get_kind(self._ptr())
        try:
            return LayerKind(k)
        except ValueError:
            return k

    @property
    def name(self):
        with self._guard():
            return lib.nnlib_layer_get_name(self._ptr()).decode()

    @property
    def output_shape(self):
        """Per-sample output shape (after compile)."""
        with self._guard():
            return read_shape(lib.nnlib_layer_get_output_shape, self._ptr())

    @property
    def param_names(self):
        with self._guard():
            ptr = self._ptr()
            count = lib.nnlib_layer_get_param_count(ptr)
            return [lib.nnlib_layer_get_param_name(ptr, i).decode()
                    for i in range(count)]

    def _index(self, key):
        if isinstance(key, str):
            names = self.param_names
            if key not in names:
                raise errors.OutOfRangeError(
                    "%s has no parameter %r (it has %s)"
                    % (self.name, key, ", ".join(names) or "none"),
                    code=errors.Status.OUT_OF_RANGE)
            return names.index(key)
        return int(key)

    def _tensor(self, key, grad):
        ptr = self._ptr()
        value = ctypes.c_void_p()
        gradient = ctypes.c_void_p()
        check(lib.nnlib_layer_get_param(ptr, self._index(key),
                                        ctypes.byref(value),
                                        ctypes.byref(gradient)))
        return gradient.value if grad else value.value

    def _view(self, key, grad):
        with self._guard():
            tensor = self._tensor(key, grad)
            rank = lib.nnlib_tensor_get_rank(tensor)
            shape = [lib.nnlib_tensor_get_dim(tensor, i) for i in range(rank)]
            address = ctypes.cast(lib.nnlib_tensor_get_data(tensor),
                                  ctypes.c_void_p).value
        # the view keeps the model alive; close() still invalidates it
        return float_view(self._model if self._model is not None else self,
                          address, shape)

    def param_view(self, key):
        """Writable numpy view of a parameter (index or name) in the model's
        memory: writes change the model. Valid until the model is closed.
        Reads and writes through the view take no lock: while other
        threads may use the model, use get_param/set_param instead."""
        return self._view(key, grad=False)

    def grad_view(self, key):
        """Numpy view of a parameter's gradient (after backward/step); not
        serialised with other threads (see param_view)."""
        return self._view(key, grad=True)

    def get_param(self, key):
        """A copy of a parameter, by index or name ("weight", "bias"),
        made under the model's lock."""
        with self._guard():
            return self._view(key, grad=False).copy()

    def get_grad(self, key):
        """A copy of a parameter's gradient, made under the model's lock."""
        with self._guard():
            return self._view(key, grad=True).copy()

    def set_param(self, key, value):
        """Copies `value` (any array-like of the parameter's shape) into the
        parameter, under the model's lock (it waits for a call on the model
        running in another thread)."""
        import numpy as np
        value = np.asarray(value, dtype=np.float32)
        with self._guard():
            view = self._view(key, grad=False)
            if value.shape != view.shape:
                raise errors.ShapeMismatchError(
                    "%s.%s has shape %s, got %s" % (
                        self.name, self.param_names[self._index(key)],
                        view.shape, value.shape),
                    code=errors.Status.SHAPE_MISMATCH)
            view[...] = value

    def params(self):
        """{name: copy} of every parameter."""
        with self._guard():
            return {n: self.get_param(i)
                    for i, n in enumerate(self.param_names)}

    @property
    def buffer_names(self):
        """Untrained state the layer keeps (batchnorm: running_mean,
        running_var)."""
        with self._guard():
            ptr = self._ptr()
            return [lib.nnlib_layer_get_buffer_name(ptr, i).decode()
                    for i in range(lib.nnlib_layer_get_buffer_count(ptr))]

    def buffer_view(self, key):
        """Writable numpy view of a buffer (index or name) in the model's
        memory, after compile; not serialised with other threads (see
        param_view)."""
        with self._guard():
            return self._buffer_view(key)

    def _buffer_view(self, key):
        names = self.buffer_names
        if isinstance(key, str):
            if key not in names:
                raise errors.OutOfRangeError(
                    "%s has no buffer %r (it has %s)"
                    % (self.name, key, ", ".join(names) or "none"),
                    code=errors.Status.OUT_OF_RANGE)
            key = names.index(key)
        tensor = ctypes.c_void_p()
        check(lib.nnlib_layer_get_buffer(self._ptr(), int(key),
                                         ctypes.byref(tensor)))
        rank = lib.nnlib_tensor_get_rank(tensor.value)
        shape = [lib.nnlib_tensor_get_dim(tensor.value, i)
                 for i in range(rank)]
        address = ctypes.cast(lib.nnlib_tensor_get_data(tensor.value),
                              ctypes.c_void_p).value
        return float_view(self._model if self._model is not None else self,
                          address, shape)

    def get_buffer(self, key):
        """A copy of a buffer, by index or name, made under the model's
        lock."""
        with self._guard():
            return self._buffer_view(key).copy()

    def set_buffer(self, key, value):
        """Copies `value` into a buffer (e.g. PyTorch's running_var), under
        the model's lock."""
        import numpy as np
        value = np.asarray(value, dtype=np.float32)
        with self._guard():
            view = self._buffer_view(key)
            if value.shape != view.shape:
                raise errors.ShapeMismatchError(
                    "%s buffer %r has shape %s, got %s"
                    % (self.name, key, view.shape, value.shape),
                    code=errors.Status.SHAPE_MISMATCH)
            view[...] = value

    weight = property(lambda self: self.get_param("weight"),
                      lambda self, v: self.set_param("weight", v),
                      doc="Copy of the weight; assigning copies in.")
    bias = property(lambda self: self.get_param("bias"),
                    lambda self, v: self.set_param("bias", v),
                    doc="Copy of the bias; assigning copies in.")

    def close(self):
        """Frees the layer if this object still owns it; a no-op for a layer
        that belongs to a model."""
        if self._model is None and self._handle is not None:
            handle, self._handle = self._handle, None
            lib.nnlib_layer_free(handle)

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
            return "<nnlib.%s freed>" % type(self).__name__
        try:
            return "<nnlib.%s %s>" % (type(self).__name__, self.name)
        except errors.Error:
            return "<nnlib.%s (model closed)>" % type(self).__name__


class Dense(Layer):
    """y = x W^T + b with W [out, in], b [out]; in_features 0 takes the size
    of the previous layer at compile."""

    def __init__(self, out_features, in_features=0, bias=True):
        super().__init__(_create("nnlib_dense_create", int(in_features),
                                 int(out_features), int(bool(bias))))


class Activation(Layer):
    """An activation layer; `param` is LEAKY_RELU's negative slope. `kind`
    is an ActivationKind or its name ("relu", "gelu", "gelu_tanh", ...);
    an unknown name raises nnlib.UnknownNameError (an InvalidArgumentError
    that is also a KeyError)."""

    def __init__(self, kind, param=0.0):
        if isinstance(kind, str):
            kind = errors._lookup_name(ActivationKind, kind, "activation")
        super().__init__(_create("nnlib_activation_create", int(kind),
                                 float(param)))


def _activation(name, kind, doc):
    def __init__(self):
        Activation.__init__(self, kind)
    return type(name, (Activation,), {"__init__": __init__, "__doc__": doc})


Identity = _activation("Identity", ActivationKind.IDENTITY, "f(x) = x")
Step = _activation("Step", ActivationKind.STEP,
                   "Heaviside forward, straight-through backward")
Sigmoid = _activation("Sigmoid", ActivationKind.SIGMOID, "1 / (1 + e^-x)")
Tanh = _activation("Tanh", ActivationKind.TANH, "tanh(x)")
ReLU = _activation("ReLU", ActivationKind.RELU, "max(x, 0)")
Softplus = _activation("Softplus", ActivationKind.SOFTPLUS, "log(1 + e^x)")
Softmax = _activation("Softmax", ActivationKind.SOFTMAX,
                      "softmax over the last axis")
GELU = _activation("GELU", ActivationKind.GELU,
                   "x Phi(x) with the exact erf (torch.nn.GELU(); "
                   "library 1.4)")
GELUTanh = _activation("GELUTanh", ActivationKind.GELU_TANH,
                       "x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) "
                       "(torch.nn.GELU(approximate='tanh'); library 1.4)")


class LeakyReLU(Activation):
    """x > 0 ? x : slope * x (PyTorch's default slope 0.01)."""

    def __init__(self, slope=0.01):
        super().__init__(ActivationKind.LEAKY_RELU, slope)


def _pair(v):
    """An int or an (h, w) pair, as two ints."""
    if isinstance(v, (tuple, list)):
        h, w = v
        return int(h), int(w)
    return int(v), int(v)


class Conv2d(Layer):
    """2-D convolution over NCHW samples [C, H, W] (PyTorch's Conv2d):
    weight [out_channels, C, kH, kW], bias [out_channels]. kernel_size,
    stride, padding, dilation: an int or an (h, w) pair; in_channels 0
    takes C from the input at compile."""

    def __init__(self, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, bias=True, in_channels=0):
        from ._lib import Conv2dOptions
        o = Conv2dOptions()
        check(lib.nnlib_conv2d_options_init(ctypes.byref(o)))
        o.in_channels = int(in_channels)
        o.stride_h, o.stride_w = _pair(stride)
        o.padding_h, o.padding_w = _pair(padding)
        o.dilation_h, o.dilation_w = _pair(dilation)
        o.with_bias = int(bool(bias))
        kh, kw = _pair(kernel_size)
        super().__init__(_create("nnlib_conv2d_create", int(out_channels),
                                 kh, kw, ctypes.byref(o)))


def _padding4(padding):
    """An int, (h, w), or (top, left, bottom, right) as four ints."""
    if isinstance(padding, (tuple, list)) and len(padding) == 4:
        return tuple(int(p) for p in padding)
    h, w = _pair(padding)
    return h, w, h, w


def _pool(kind, kernel_size, stride, padding, dilation=1, ceil_mode=False,
          count_include_pad=True):
    from ._lib import Pool2dOptions
    o = Pool2dOptions()
    check(lib.nnlib_pool2d_options_init_size(ctypes.byref(o),
                                             ctypes.sizeof(o)))
    o.stride_h, o.stride_w = _pair(stride if stride is not None else 0)
    (o.padding_h, o.padding_w, o.padding_bottom,
     o.padding_right) = _padding4(padding)
    o.dilation_h, o.dilation_w = _pair(dilation)
    o.ceil_mode = int(bool(ceil_mode))
    o.count_include_pad = int(bool(count_include_pad))
    kh, kw = _pair(kernel_size)
    return _create("nnlib_pool2d_create", int(kind), kh, kw, ctypes.byref(o))


_POOL_ARGS = """stride None: the kernel. padding: an int, (h, w), or
    (top, left, bottom, right) as ONNX's pads, each side at most the
    kernel - 1. ceil_mode: PyTorch's (a last window may reach past the
    input, never start in the end padding). dilation, ceil_mode and
    padding per side need library 1.5."""


class MaxPool2d(Layer):
    """Max over kernel windows of each channel (nn.MaxPool2d). """

    __doc__ += _POOL_ARGS

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 ceil_mode=False):
        super().__init__(_pool(LayerKind.MAXPOOL2D, kernel_size, stride,
                               padding, dilation, ceil_mode))


class MinPool2d(Layer):
    """Min over kernel windows of each channel (padding never wins). """

    __doc__ += _POOL_ARGS

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 ceil_mode=False):
        super().__init__(_pool(LayerKind.MINPOOL2D, kernel_size, stride,
                               padding, dilation, ceil_mode))


class AvgPool2d(Layer):
    """Mean over kernel windows (nn.AvgPool2d): count_include_pad True
    divides by the window's positions inside the padded input (PyTorch's
    default), False by its input elements only (ONNX's default). """

    __doc__ += _POOL_ARGS

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):
        super().__init__(_pool(LayerKind.AVGPOOL2D, kernel_size, stride,
                               padding, 1, ceil_mode, count_include_pad))


class GlobalAvgPool(Layer):
    """[C, H, W] -> [C]: the mean of each channel."""

    def __init__(self):
        super().__init__(_create("nnlib_global_avgpool_create"))


class BatchNorm(Layer):
    """Batch normalisation per channel (BatchNorm2d on [C, H, W],
    BatchNorm1d on [C]); running statistics in inference."""

    def __init__(self, momentum=0.1, eps=1e-5):
        super().__init__(_create("nnlib_batchnorm_create", float(momentum),
                                 float(eps)))


class Dropout(Layer):
    """Inverted dropout with rate p in training; identity in inference."""

    def __init__(self, p=0.5):
        super().__init__(_create("nnlib_dropout_create", float(p)))


class Flatten(Layer):
    """[d0, d1, ...] -> [d0 * d1 * ...] per sample."""

    def __init__(self):
        super().__init__(_create("nnlib_flatten_create"))


class Transpose(Layer):
    """A permutation of the per-sample axes: output axis k is input axis
    perm[k], as torch's x.permute(0, 1 + perm[0], 1 + perm[1], ...) (the
    batch axis stays first). Transpose((1, 2, 0)) turns [C, H, W] into
    [H, W, C]; len(perm) must be the input's per-sample rank. Library
    1.6."""

    def __init__(self, perm):
        values = [int(p) for p in perm]
        array = (ctypes.c_int64 * max(len(values), 1))(*values)
        super().__init__(_create("nnlib_transpose_create", array,
                                 len(values)))


class _Recurrent(Layer):
    """What RNN, LSTM and GRU share: sequences [N, T, F] in, the hidden
    state of every step [N, T, H] out (return_sequences) or of the last
    step [N, H]; PyTorch's parameters weight_ih, weight_hh, bias_ih,
    bias_hh; the model's input shape (T, F) fixes T."""

    def _hidden_size(self):
        hidden = getattr(self, "_hidden", None)
        if hidden is None:  # read back from a model: after compile only
            hidden = self.get_param("weight_hh").shape[1]
        return hidden

    def set_initial_state(self, h0=None, c0=None):
        """Starts every sequence from h0 (and, for LSTM, c0) instead of
        zeros: arrays [H] (every sample) or [rows, H] (one row per sample;
        every batch must then have `rows` samples). Copied; not a
        parameter, not saved in model files. No arguments: zeros again.
        Holds the model's lock (waits for a call on the model running in
        another thread)."""
        with self._guard():
            self._set_initial_state(h0, c0)

    def _set_initial_state(self, h0, c0):
        if h0 is None and c0 is None:
            check(lib.nnlib_recurrent_set_initial_state(self._ptr(), None,
                                                        None, 0))
            return
        import numpy as np
        hidden = self._hidden_size()
        arrays = []
        for state in (h0, c0):
            if state is None:
                arrays.append(None)
                continue
            a = as_float32(state)  # C reads it: aligned, C order
            if a.ndim not in (1, 2) or a.shape[-1] != hidden:
                raise errors.ShapeMismatchError(
                    "%s initial state has shape %s, expected (%d,) or "
                    "(rows, %d)" % (self.name, a.shape, hidden, hidden),
                    code=errors.Status.SHAPE_MISMATCH)
            arrays.append(a.reshape(-1, hidden))
        given = [a for a in arrays if a is not None]
        rows = given[0].shape[0]
        if any(a.shape[0] != rows for a in given):
            raise errors.ShapeMismatchError(
                "%s: h0 and c0 have different row counts" % self.name,
                code=errors.Status.SHAPE_MISMATCH)
        pointers = [None if a is None else
                    a.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
                    for a in arrays]
        check(lib.nnlib_recurrent_set_initial_state(
            self._ptr(), pointers[0], pointers[1], rows))


class RNN(_Recurrent):
    """Elman RNN, h_t = f(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) with
    nonlinearity "tanh" or "relu", any case (torch.nn.RNN; another name
    raises nnlib.UnknownNameError, an InvalidArgumentError and KeyError)."""

    def __init__(self, hidden_size, nonlinearity="tanh", bias=True,
                 return_sequences=True, input_size=0):
        names = {"tanh": ActivationKind.TANH, "relu": ActivationKind.RELU}
        if isinstance(nonlinearity, str):
            if nonlinearity.lower() not in names:
                raise errors.UnknownNameError("RNN nonlinearity",
                                              nonlinearity, names)
            kind = names[nonlinearity.lower()]
        else:
            kind = nonlinearity
        super().__init__(_create("nnlib_rnn_create", int(input_size),
                                 int(hidden_size), int(kind),
                                 int(bool(bias)),
                                 int(bool(return_sequences))))
        self._hidden = int(hidden_size)


class LSTM(_Recurrent):
    """LSTM with gates i, f, g, o (torch.nn.LSTM)."""

    def __init__(self, hidden_size, bias=True, return_sequences=True,
                 input_size=0):
        super().__init__(_create("nnlib_lstm_create", int(input_size),
                                 int(hidden_size), int(bool(bias)),
                                 int(bool(return_sequences))))
        self._hidden = int(hidden_size)


class GRU(_Recurrent):
    """GRU with gates r, z, n (torch.nn.GRU)."""

    def __init__(self, hidden_size, bias=True, return_sequences=True,
                 input_size=0):
        super().__init__(_create("nnlib_gru_create", int(input_size),
                                 int(hidden_size), int(bool(bias)),
                                 int(bool(return_sequences))))
        self._hidden = int(hidden_size)


class Add(Layer):
    """y = x1 + x2 + ... of two or more nodes of one shape (residual
    connections); call it on a list of nodes."""

    _merge = True

    def __init__(self):
        super().__init__(_create("nnlib_add_create"))


class Multiply(Layer):
    """y = x1 * x2 * ... elementwise, of two or more nodes of one shape
    (gates); call it on a list of nodes."""

    _merge = True

    def __init__(self):
        super().__init__(_create("nnlib_multiply_create"))


class Concat(Layer):
    """Joins two or more nodes along per-sample axis `axis`: 0 is the
    features of [F] vectors and the channels of [C, H, W] images, -1 the
    last axis; every other axis must match. Call it on a list of nodes."""

    _merge = True

    def __init__(self, axis=0):
        super().__init__(_create("nnlib_concat_create", int(axis)))


class Embedding(Layer):
    """Token ids [T] -> vectors [T, dim] (torch.nn.Embedding, weight
    [vocab_size, dim], N(0, 1) at first). The model input it reads holds
    int32 token ids: the data calls take integer arrays there (int32 as it
    is, other integer widths checked to fit) and refuse float arrays with
    DtypeError; an id outside [0, vocab_size) fails the pass with
    OutOfRangeError. Library 1.4."""

    def __init__(self, vocab_size, dim):
        super().__init__(_create("nnlib_embedding_create", int(vocab_size),
                                 int(dim)))


class Positional(Layer):
    """Learned positional embeddings added to [T, D] (GPT-2's wpe, weight
    [max_positions, D]); max_positions 0 takes T from the input at
    compile. Library 1.4."""

    def __init__(self, max_positions=0):
        super().__init__(_create("nnlib_positional_create",
                                 int(max_positions)))


class LayerNorm(Layer):
    """Layer normalisation over the last axis (torch.nn.LayerNorm(D, eps)),
    with weight and bias [D] when `affine`. Library 1.4."""

    def __init__(self, eps=1e-5, affine=True):
        super().__init__(_create("nnlib_layernorm_create", float(eps),
                                 int(bool(affine))))


class Linear(Layer):
    """y = x W^T + b over the last axis, [..., in] -> [..., out_features]
    (torch.nn.Linear), where Dense flattens the sample. Library 1.4."""

    def __init__(self, out_features, bias=True):
        super().__init__(_create("nnlib_linear_create", int(out_features),
                                 int(bool(bias))))


class Attention(Layer):
    """Multi-head self-attention on [T, D] (torch.nn.MultiheadAttention,
    batch_first, called as mha(x, x, x)); `heads` divides D. `causal`: each
    position sees itself and the earlier ones (language models); `dropout`
    on the attention weights in training. Parameters in_proj_weight,
    in_proj_bias, out_proj.weight, out_proj.bias (biases with `bias`).
    Library 1.4."""

    def __init__(self, heads, causal=False, dropout=0.0, bias=True):
        from ._lib import AttentionOptions
        o = AttentionOptions()
        check(lib.nnlib_attention_options_init_size(ctypes.byref(o),
                                                    ctypes.sizeof(o)))
        o.causal = int(bool(causal))
        o.dropout = float(dropout)
        o.with_bias = int(bool(bias))
        super().__init__(_create("nnlib_attention_create", int(heads),
                                 ctypes.byref(o)))


#: nnlib_layer_kind -> class, for layers read back from a model
_KINDS = {
    LayerKind.DENSE: Dense,
    LayerKind.ACTIVATION: Activation,
    LayerKind.CONV2D: Conv2d,
    LayerKind.MAXPOOL2D: MaxPool2d,
    LayerKind.MINPOOL2D: MinPool2d,
    LayerKind.AVGPOOL2D: AvgPool2d,
    LayerKind.GLOBAL_AVGPOOL: GlobalAvgPool,
    LayerKind.BATCHNORM: BatchNorm,
    LayerKind.DROPOUT: Dropout,
    LayerKind.FLATTEN: Flatten,
    LayerKind.RNN: RNN,
    LayerKind.LSTM: LSTM,
    LayerKind.GRU: GRU,
    LayerKind.ADD: Add,
    LayerKind.CONCAT: Concat,
    LayerKind.MULTIPLY: Multiply,
    LayerKind.EMBEDDING: Embedding,
    LayerKind.POSITIONAL: Positional,
    LayerKind.LAYERNORM: LayerNorm,
    LayerKind.ATTENTION: Attention,
    LayerKind.LINEAR: Linear,
    LayerKind.TRANSPOSE: Transpose,
}
