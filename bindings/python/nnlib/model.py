"""The model: sequential (a list of layers, a description) or a graph
(the functional API of nnlib.graph, or a graph description)."""

import ctypes
import enum
import os
import threading
import weakref
from collections import namedtuple

import numpy as np

from . import _lib, errors
from . import graph as _graph
from ._core import (DType, Tensor, as_int32, check, float_view,
                    is_integer_array, lib, read_shape, seed_value,
                    shape_array, tensor_shape)
from .layers import Layer, LayerKind
from .optim import Optimizer, OptimizerKind

#: nnlib_model_save flag: also save the optimizer and its state
SAVE_OPTIMIZER = 1


class Loss(enum.IntEnum):
    """nnlib_loss; values are pinned by the C ABI."""

    NONE = 0
    MSE = 1
    BCE_LOGITS = 2
    SOFTMAX_CE = 3


_LOSS_NAMES = {
    "none": Loss.NONE, "mse": Loss.MSE, "bce_logits": Loss.BCE_LOGITS,
    "bce": Loss.BCE_LOGITS, "softmax_ce": Loss.SOFTMAX_CE,
    "cross_entropy": Loss.SOFTMAX_CE,
}

#: What the fit callback receives after every batch (nnlib_progress).
Progress = namedtuple("Progress", [
    "epoch", "epochs", "batch", "batches", "samples_done", "samples", "loss",
    "epoch_loss"])


#: One node of a model's graph (Model.nodes): its index, its name (None
#: when unnamed), its layer (None for a model input), the model input
#: number (None for a layer), the indices of the nodes it reads, its
#: per-sample output shape (None for a layer before compile) and whether
#: it is the model's output.
GraphNode = namedtuple("GraphNode", [
    "index", "name", "layer", "input_index", "inputs", "shape", "is_output"])

#: nnlib_node handles are (model tag << 32) | node index
_NODE_INDEX_MASK = 0xFFFFFFFF


class History(list):
    """What fit returns: the mean training loss of each epoch run (a list,
    shorter than `epochs` when early stopping ended training), and
    `validation_losses`, the validation loss after each of them (empty
    without validation data)."""

    def __init__(self, losses, validation_losses=()):
        super().__init__(losses)
        self.validation_losses = list(validation_losses)


class _ModelLock:
    """The lock of one model: exclusive for every call on the model, its
    layers and its optimizer (``with lock:``, re-entrant), shared for
    predictions through its workspaces (``predict_shared``).

    nnlib.h lets workspaces of one model predict at the same time, but the
    model must not be trained, changed or freed while any of them predicts.
    So an exclusive holder waits until no workspace prediction is in C, and
    a workspace prediction waits while an exclusive holder runs or waits
    (no starvation of training or close() by a stream of predictions)."""

    def __init__(self):
        self._mutex = threading.RLock()
        self._cond = threading.Condition(self._mutex)
        self._local = threading.local()
        self._readers = 0   # workspace predictions now in C
        self._waiting = 0   # exclusive holders waiting for them to end

    def _depth(self):
        return getattr(self._local, "depth", 0)

    def held(self):
        """True when this thread holds the lock."""
        return self._depth() > 0

    def acquire(self):
        self._mutex.acquire()
        depth = self._depth()
        self._local.depth = depth + 1
        if depth == 0 and self._readers:
            self._waiting += 1
            try:
                while self._readers:
                    self._cond.wait()
            except BaseException:  # e.g. KeyboardInterrupt in the wait
                self._waiting -= 1
                self._local.depth = 0
                self._cond.notify_all()
                self._mutex.release()
                raise
            self._waiting -= 1

    def release(self):
        self._local.depth -= 1
        if self._local.depth == 0:
            self._cond.notify_all()  # predictions waiting for a writer
        self._mutex.release()

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()

    def predict_shared(self, prepare, run):
        """prepare() under the lock (no exclusive holder runs meanwhile,
        other workspaces' predictions may), then run(prepared) outside it,
        counted so that exclusive holders wait for it to return. Refused
        (WrongStateError) on a thread that holds the lock already: that is
        a call on the model from inside its own fit callback."""
        with self._mutex:
            if self.held():
                raise errors.WrongStateError(
                    "a workspace predicted from inside a call on its model "
                    "(fit's callback): the model must not be trained "
                    "while a workspace predicts",
                    code=errors.Status.WRONG_STATE)
            while self._waiting:
                self._cond.wait()
            self._local.depth = 1  # prepare() may call locked getters
            try:
                prepared = prepare()
            finally:
                self._local.depth = 0
            self._readers += 1
        try:
            return run(prepared)
        finally:
            with self._mutex:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()


def _loss(value):
    if value is None:
        return Loss.NONE
    if isinstance(value, str):
        try:
            return _LOSS_NAMES[value.lower()]
        except KeyError:
            raise errors.InvalidArgumentError(
                "unknown loss %r (known: %s)" % (value, ", ".join(_LOSS_NAMES)),
                code=errors.Status.INVALID_ARGUMENT) from None
    return Loss(value)


def _path(path):
    return os.fsencode(os.fspath(path))


class Model:
    """A model (nnlib_model): a chain of layers, or a graph.

    Sequential::

        with nnlib.Model([nnlib.Dense(4), nnlib.Sigmoid(),
                          nnlib.Dense(1), nnlib.Sigmoid()]) as m:
            m.compile((2,), loss="mse", optimizer=nnlib.SGD(0.5, 0.9),
                      max_batch=4, seed=7)
            m.fit(X, y, epochs=2000)
            print(m.predict(X))

    Functional (a graph; see nnlib.graph)::

        x = nnlib.Input((4,), name="x")
        d = nnlib.Dense(4)(x)
        y = nnlib.Dense(2)(nnlib.add([x, d]))
        m = nnlib.Model(inputs=x, outputs=y)
        m.compile(loss="mse", optimizer="adam", max_batch=16)

    A model of several inputs takes a list of arrays, one per input in the
    order of ``inputs``, wherever data goes in (predict, evaluate, fit and
    its validation data, step, backward, forward, gradcheck, workspaces).

    The handle is freed by ``close()``, by leaving a ``with`` block, or by
    the garbage collector once nothing (no layer, optimizer or parameter
    view) refers to the model. One model is used by one thread at a time:
    calls on the same model from several Python threads are serialised by
    the model's lock (the GIL is released during C calls), and so are the
    calls on its layers (getters, get_param/set_param, weight/bias
    assignment, get_buffer/set_buffer, set_initial_state) and on its
    optimizer (learning_rate, step_count, options): each waits for a fit
    or step running in another thread. Not serialised: reads and writes
    through the numpy views param_view, grad_view and buffer_view, which
    numpy does without any lock; use get_param/set_param while other
    threads may run the model. fit's callback runs on fit's thread, which
    holds the lock, so it may call these too (the lock is re-entrant).
    Predictions through workspaces (``workspace()``) are the exception
    nnlib.h allows: those of one model run at the same time, and every
    other call (close included) waits until they have returned; see
    Workspace.
    """

    def __init__(self, layers=None, outputs=None, *, inputs=None):
        """`layers`: a list of layers, or a description string
        ("dense:4,sigmoid", as from_spec). Or a graph: `inputs` (an
        nnlib.Input node, or a list of them: the model's inputs in order)
        and `outputs` (the output node), also as Model(inputs, outputs)."""
        if outputs is not None and inputs is None:
            layers, inputs = None, layers  # Model(inputs, outputs)
        if isinstance(layers, _graph.Node) or (
                isinstance(layers, (list, tuple))
                and any(isinstance(n, _graph.Node) for n in layers)):
            inputs = layers  # nodes without outputs: refused below
        if (inputs is None) != (outputs is None):
            raise errors.InvalidArgumentError(
                "a graph model needs both inputs= and outputs=",
                code=errors.Status.INVALID_ARGUMENT)
        if inputs is not None and layers is not None:
            raise errors.InvalidArgumentError(
                "give either layers or inputs= and outputs=, not both",
                code=errors.Status.INVALID_ARGUMENT)
        # a graph is checked before anything is made
        graph = _graph.collect(inputs, outputs) if inputs is not None \
            else None
        handle = ctypes.c_void_p()
        check(lib.nnlib_model_create(ctypes.byref(handle)))
        self._init(handle.value)
        if graph is not None:
            self._build(*graph)
            return
        if isinstance(layers, str):
            self.add_spec(layers)
            return
        for layer in layers or ():
            self.add(layer)

    def _init(self, handle):
        self._handle = handle
        self._lock = _ModelLock()
        self._busy = None          # name of the running fit, if any
        self._workspaces = weakref.WeakSet()
        self._input_grads = False  # nnlib_model_set_input_gradients
        self._dtypes = None        # element type of each input, once compiled
        # copies of the last forward pass's inputs, which the library reads
        # again in backward_output
        self._forward_inputs = None

    @classmethod
    def from_spec(cls, spec):
        """A model with the layers of a description ("dense:4,sigmoid")."""
        model = cls()
        model.add_spec(spec)
        return model

    # ------------------------------------------------------------ handle

    def _ptr(self):
        if self._handle is None:
            raise errors.WrongStateError("the model is closed",
                                         code=errors.Status.WRONG_STATE)
        return self._handle

    def _running(self, what):
        """Refuses a call that runs the model from inside fit's callback."""
        if self._busy is not None:
            raise errors.WrongStateError(
                "%s called from inside %s's progress callback" % (
                    what, self._busy), code=errors.Status.WRONG_STATE)
        return self._ptr()

    def close(self):
        """Frees the model, its layers and its optimizer. Layer, optimizer
        and parameter views taken from it become invalid."""
        with self._lock:
            if self._busy is not None:
                raise errors.WrongStateError(
                    "close() called from inside the progress callback",
                    code=errors.Status.WRONG_STATE)
            for workspace in list(self._workspaces):
                workspace.close()  # they must not outlive the model
            handle, self._handle = self._handle, None
            if handle is not None:
                lib.nnlib_model_free(handle)
            self._forward_inputs = None

    @property
    def closed(self):
        return self._handle is None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            handle, self._handle = self._handle, None
            if handle is not None:
                lib.nnlib_model_free(handle)
        except Exception:
            pass

    # ---------------------------------------------------------- building

    def add(self, layer):
        """Appends a layer; the model takes its handle (also if this fails,
        and then the layer is freed). Returns the layer."""
        if not isinstance(layer, Layer):
            raise errors.InvalidArgumentError(
                "add() takes an nnlib layer, got %r" % (layer,),
                code=errors.Status.INVALID_ARGUMENT)
        with self._lock:
            ptr = self._running("add")
            if not layer.owned:
                raise errors.InvalidArgumentError(
                    "this layer already belongs to a model (or was freed)",
                    code=errors.Status.INVALID_ARGUMENT)
            if layer._applied is not None:
                raise errors.InvalidArgumentError(
                    "this layer was applied to a node (%s): build its "
                    "model with Model(inputs=..., outputs=...)"
                    % layer._applied, code=errors.Status.INVALID_ARGUMENT)
            handle, layer._handle = layer._handle, None
            check(lib.nnlib_model_add(ptr, handle))
            layer._handle = handle
            layer._model = self
        return layer

    def _build(self, ins, layer_nodes, out):
        """Builds the graph that graph.collect checked: the inputs in their
        order, then the layer nodes in the order they were made. On failure
        nothing half-built remains: the C model and the layers it took are
        freed, and the exception propagates."""
        ptr = self._ptr()
        handles = {}
        try:
            for node in ins:
                dims, rank = shape_array(node.shape)
                made = _lib.NODE()
                check(lib.nnlib_model_input(ptr, dims, rank,
                                            ctypes.byref(made)))
                handles[id(node)] = self._named(ptr, made.value, node.name)
            for node in layer_nodes:
                handles[id(node)] = self._apply(ptr, node, handles)
            check(lib.nnlib_model_set_output(ptr, handles[id(out)]))
        except BaseException:
            self._discard(layer_nodes)
            raise
        _graph.mark_built(layer_nodes, self)

    def _apply(self, ptr, node, handles):
        """nnlib_model_apply of a node's layer to its inputs' nodes; the
        model takes the layer, also when this fails."""
        refs = [handles[id(n)] for n in node.inputs]
        layer = node.layer
        handle, layer._handle = layer._handle, None
        made = _lib.NODE()
        check(lib.nnlib_model_apply(ptr, handle,
                                    (_lib.NODE * len(refs))(*refs),
                                    len(refs), ctypes.byref(made)))
        layer._handle = handle
        layer._model = self
        return self._named(ptr, made.value, node.name)

    @staticmethod
    def _named(ptr, node, name):
        if name is not None:
            check(lib.nnlib_model_set_node_name(ptr, node, name.encode()))
        return node

    def _discard(self, layer_nodes):
        """Frees a model whose build failed, and forgets the layers it
        took (the C model frees them)."""
        handle, self._handle = self._handle, None
        if handle is not None:
            lib.nnlib_model_free(handle)
        for node in layer_nodes:
            if node.layer._model is self:
                node.layer._handle = None
                node.layer._model = None

    def add_spec(self, spec):
        """Appends the layers of a description, e.g.
        "dense:256,relu,dense:10"."""
        with self._lock:
            check(lib.nnlib_model_add_spec(self._running("add_spec"),
                                           spec.encode()))

    @property
    def spec(self):
        """The description of the layers (the inverse of add_spec)."""
        with self._lock:
            ptr = self._ptr()
            needed = ctypes.c_size_t()
            check(lib.nnlib_model_get_spec(ptr, None, 0, ctypes.byref(needed)))
            buf = ctypes.create_string_buffer(needed.value + 1)
            check(lib.nnlib_model_get_spec(ptr, buf, len(buf),
                                           ctypes.byref(needed)))
            return buf.value.decode()

    @property
    def layers(self):
        """The model's layers (new borrowed views on each access; they keep
        the model alive)."""
        with self._lock:
            ptr = self._ptr()
            count = lib.nnlib_model_get_layer_count(ptr)
            return [Layer._borrowed(lib.nnlib_model_get_layer(ptr, i), self)
                    for i in range(count)]

    def compile(self, input_shape=None, loss="none", optimizer=None, *,
                max_batch=32, seed=0):
        """Plans the model for batches of up to `max_batch` and initialises
        the weights from `seed` (an integer in 0 .. 2**64 - 1, C's
        uint64_t; a negative one raises InvalidArgumentError rather than
        wrapping, checked before the optimizer is taken). `input_shape`: the
        per-sample input shape
        of a sequential model; None for a graph whose inputs are declared
        (nnlib.Input, or input: items of a description), which compiles
        with nnlib_model_compile_graph.
        `loss`: "mse", "bce_logits", "softmax_ce" or "none" (inference).
        `optimizer`: an Optimizer (the model takes it, also on failure), a
        kind name ("sgd", "adam", ...) for its defaults, or None."""
        if isinstance(input_shape, int):
            input_shape = (input_shape,)
        if isinstance(optimizer, (str, OptimizerKind)):
            optimizer = Optimizer(optimizer)
        loss = _loss(loss)
        seed = seed_value(seed)  # before the optimizer is taken
        with self._lock:
            ptr = self._running("compile")
            handle = optimizer._take() if optimizer is not None else None
            if input_shape is None:
                status = lib.nnlib_model_compile_graph(
                    ptr, int(max_batch), int(loss), handle, seed)
            else:
                dims, rank = shape_array(input_shape)
                status = lib.nnlib_model_compile(
                    ptr, dims, rank, int(max_batch), int(loss), handle,
                    seed)
            check(status)
            if optimizer is not None:
                optimizer._attach(handle, self)

    def set_optimizer(self, optimizer):
        """Replaces the optimizer of a compiled model (the model takes it,
        also on failure)."""
        if isinstance(optimizer, (str, OptimizerKind)):
            optimizer = Optimizer(optimizer)
        with self._lock:
            ptr = self._running("set_optimizer")
            check(lib.nnlib_model_set_optimizer(ptr, optimizer._take()))
            optimizer._attach(lib.nnlib_model_get_optimizer(ptr), self)

    # ----------------------------------------------------------- getters

    @property
    def optimizer(self):
        """The model's optimizer (a borrowed view), or None."""
        with self._lock:
            handle = lib.nnlib_model_get_optimizer(self._ptr())
            return Optimizer._borrowed(handle, self) if handle else None

    @property
    def loss(self):
        with self._lock:
            return Loss(lib.nnlib_model_get_loss(self._ptr()))

    @property
    def param_count(self):
        count = ctypes.c_int64()
        with self._lock:
            check(lib.nnlib_model_get_param_count(self._ptr(),
                                                  ctypes.byref(count)))
        return count.value

    @property
    def input_shape(self):
        with self._lock:
            return read_shape(lib.nnlib_model_get_input_shape, self._ptr())

    @property
    def output_shape(self):
        with self._lock:
            return read_shape(lib.nnlib_model_get_output_shape, self._ptr())

    @property
    def input_count(self):
        """Number of model inputs (arrays each data call takes)."""
        with self._lock:
            ptr = self._ptr()
            if not lib.has("nnlib_model_get_input_count"):
                return 1  # a library before 1.3: one input
            return lib.nnlib_model_get_input_count(ptr)

    @property
    def input_shapes(self):
        """The per-sample shape of every input, in order (after compile)."""
        out = []
        with self._lock:
            ptr = self._ptr()
            for i in range(lib.nnlib_model_get_input_count(ptr)):
                dims = (ctypes.c_int64 * 8)()
                rank = ctypes.c_size_t()
                check(lib.nnlib_model_get_input_shape_at(
                    ptr, i, dims, 8, ctypes.byref(rank)))
                out.append(tuple(dims[:rank.value]))
        return out

    @property
    def nodes(self):
        """The graph, node by node in the order they were made (inputs
        included): a list of GraphNode tuples."""
        with self._lock:
            ptr = self._ptr()
            return [self._node(ptr, i)
                    for i in range(lib.nnlib_model_get_node_count(ptr))]

    def _node(self, ptr, index):
        info = _lib.NodeInfo()
        info.struct_size = ctypes.sizeof(info)
        check(lib.nnlib_model_get_node(ptr, index, ctypes.byref(info)))
        return GraphNode(
            index=index,
            name=info.name.decode() if info.name else None,
            layer=Layer._borrowed(info.layer, self) if info.layer else None,
            input_index=info.input_index if info.input_index >= 0 else None,
            inputs=tuple(info.inputs[k] & _NODE_INDEX_MASK
                         for k in range(info.input_count)),
            shape=tuple(info.shape[:info.rank]) if info.rank else None,
            is_output=bool(info.is_output))

    @property
    def max_batch(self):
        with self._lock:
            return lib.nnlib_model_get_max_batch(self._ptr())

    def get_weights(self):
        """Copies of every parameter, layer by layer, in order (all under
        the model's lock: one consistent snapshot)."""
        with self._lock:
            return [layer.get_param(i) for layer in self.layers
                    for i in range(len(layer.param_names))]

    def set_weights(self, weights):
        """Copies arrays (in get_weights' order) into the parameters."""
        slots = [(layer, i) for layer in self.layers
                 for i in range(len(layer.param_names))]
        if len(weights) != len(slots):
            raise errors.ShapeMismatchError(
                "the model has %d parameter tensors, got %d" % (
                    len(slots), len(weights)),
                code=errors.Status.SHAPE_MISMATCH)
        with self._lock:  # one hold: no other call runs in between
            for (layer, i), w in zip(slots, weights):
                layer.set_param(i, w)

    # ----------------------------------------------------------- running

    def _several(self, x):
        """`x` as a list of arrays when it holds one array per model input
        (any list or tuple for a model of several inputs; a list of one
        numpy array for a one-input model), else None: one array-like, as
        the one-tensor calls of 1.2 take it."""
        if not isinstance(x, (list, tuple)):
            return None
        if self.input_count > 1:
            return list(x)
        if len(x) == 1 and isinstance(x[0], np.ndarray):
            return list(x)
        return None

    # ------------------------------------------------- element types (1.4)

    def _input_dtypes(self):
        """The element type of every model input: INT32 for an input that
        an embedding reads (token ids), FLOAT32 for the others. The library
        has no getter for it; its rule (an input read by an embedding holds
        int32 ids, and only embeddings may read it) is applied to the graph
        read back with nnlib_model_get_node. Cached once compiled."""
        with self._lock:
            return self._read_input_dtypes()

    def _read_input_dtypes(self):
        if self._dtypes is not None:
            return self._dtypes
        ptr = self._ptr()
        count = self.input_count
        if not (lib.has("nnlib_tensor_create_int32")
                and lib.has("nnlib_model_get_node")):
            return [DType.FLOAT32] * count  # a library before 1.4
        input_of = {}  # node index -> model input number
        ids = set()    # node indices an embedding reads
        for i in range(lib.nnlib_model_get_node_count(ptr)):
            info = _lib.NodeInfo()
            info.struct_size = ctypes.sizeof(info)
            check(lib.nnlib_model_get_node(ptr, i, ctypes.byref(info)))
            if info.input_index >= 0:
                input_of[i] = info.input_index
            elif (info.layer and lib.nnlib_layer_get_kind(info.layer)
                  == LayerKind.EMBEDDING):
                ids.update(info.inputs[k] & _NODE_INDEX_MASK
                           for k in range(info.input_count))
        dtypes = [DType.FLOAT32] * count
        for node, k in input_of.items():
            if node in ids and k < count:
                dtypes[k] = DType.INT32
        if lib.nnlib_model_get_max_batch(ptr) > 0:  # compiled: fixed now
            self._dtypes = dtypes
        return dtypes

    def _input_label(self, k):
        if self.input_count == 1:
            return "the model's input"
        return "model input %d" % k

    def _input(self, k, array):
        """The tensor for model input k: int32 token ids for an input an
        embedding reads (integer arrays, checked to fit int32; float arrays
        raise DtypeError), float32 features otherwise (any numeric array,
        as in 1.3)."""
        dtypes = self._input_dtypes()
        if k < len(dtypes) and dtypes[k] == DType.INT32:
            ids = as_int32(array, "%s (int32 token ids: an embedding reads "
                                  "it)" % self._input_label(k))
            return Tensor.wrap(ids, np.int32)
        return Tensor.wrap(array)

    def _target(self, target):
        """The tensor for a target. With softmax_ce, an integer array of
        class indices ([N], or [N, T] for logits [T, V]) becomes an int32
        tensor (checked to fit; no float round trip); an integer array of
        one-hot rows (its last axis the output's class axis, and one more
        axis than the output) stays float32 as in 1.3. Every other target
        is float32."""
        if self.loss != Loss.SOFTMAX_CE or not is_integer_array(target):
            return Tensor.wrap(target)
        a = np.asarray(target)
        out = self.output_shape
        if (out and a.ndim == len(out) + 1 and a.shape[-1] == out[-1]
                and out[-1] > 1):
            return Tensor.wrap(a)  # one-hot rows written as integers
        return Tensor.wrap(as_int32(a, "class index targets"), np.int32)

    # -------------------------------------------------------- generation

    def generate(self, prompt, count, temperature=1.0, top_k=0, seed=1,
                 use_cache=True):
        """Continues `prompt` by `count` tokens sampled from a language
        model (one int32 input [T] of token ids, output logits [T, V];
        library 1.4) and returns the new tokens only, as a numpy int32
        array of length `count` (the prompt is not repeated).

        `prompt`: bytes (or bytearray), a str (encoded as UTF-8: byte
        tokens for a byte-level model), or a sequence/array of integer
        token ids (checked to fit int32; floats refused), 1 to T of them.
        Each token is drawn from softmax(logits / temperature) over the
        `top_k` likeliest tokens (0: all) with a generator seeded by
        `seed` (0 .. 2**64 - 1; negative raises InvalidArgumentError): the
        same seed gives the same tokens, with or without
        `use_cache` (which runs one position per new token instead of the
        whole window). Bad values (temperature <= 0, top_k < 0, count < 0,
        an empty prompt, a prompt longer than T or with ids outside the
        vocabulary) raise the library's error (InvalidArgumentError,
        TooLargeError, OutOfRangeError, ...), whose ``code`` is its
        status. See generate_bytes for byte-level models."""
        ids = _prompt_ids(prompt)
        opts = _lib.GenerateOptions()
        check(lib.nnlib_generate_options_init_size(ctypes.byref(opts),
                                                   ctypes.sizeof(opts)))
        opts.temperature = float(temperature)
        opts.top_k = int(top_k)
        opts.seed = seed_value(seed)
        opts.use_cache = int(bool(use_cache))
        count = int(count)
        out = np.zeros(max(count, 0), np.int32)
        i32 = ctypes.POINTER(ctypes.c_int32)
        with self._lock:
            ptr = self._running("generate")
            check(lib.nnlib_model_generate(
                ptr, ids.ctypes.data_as(i32), ids.size, count,
                ctypes.byref(opts), out.ctypes.data_as(i32)))
        return out

    def generate_bytes(self, prompt, count, **options):
        """generate() for a byte-level model (vocabulary 256, as Text
        gives): the new tokens as bytes. A token above 255 (a model with a
        larger vocabulary) raises ValueError naming it. `options` as
        generate (temperature, top_k, seed, use_cache)."""
        tokens = self.generate(prompt, count, **options)
        bad = tokens[(tokens < 0) | (tokens > 255)]
        if bad.size:
            raise ValueError("generate_bytes: token %d is not a byte (the "
                             "model's vocabulary is larger than 256); use "
                             "generate()" % int(bad[0]))
        return tokens.astype(np.uint8).tobytes()

    def predict(self, x, out=None):
        """Outputs [N, output...] for inputs [N, input...] (inference mode);
        for a model of several inputs, `x` is a list of arrays, one per
        input, each of N samples. `out`, if given, must be a writable,
        aligned (numpy's flags.aligned), float32 C-contiguous array of the
        right size, else InvalidArgumentError; it is written in place and
        returned.

        A model compiled for sequences (T, F) whose recurrent layers come
        first and end in one returning its last step ("lstm:16,last,
        dense:10") or make up the whole model ("lstm:16", whose output is
        the sequence [N, T', H]) also takes shorter sequences [N, T', F],
        1 <= T' <= T (library 1.2; likewise evaluate, step, backward,
        forward, fit and gradcheck); after "last" the output shape does not
        depend on T'. Other models raise ShapeMismatchError for T' < T, and
        T' > T is TooLargeError. A flat [N, T' * F] array is not taken as
        shorter."""
        with self._lock:
            ptr = self._running("predict")
            return _predict("nnlib_model_predict", ptr, self, x, out)

    def workspace(self):
        """A Workspace: inference buffers of its own, so that several
        threads can predict with this model at the same time (each with
        its own workspace; other calls on the model wait for them)."""
        return Workspace(self)

    def forward(self, x):
        """Training-mode forward pass of one batch; a copy of the output.

        The library keeps pointers to the input data of this pass for a
        following backward_output, so the model keeps a private copy of
        the inputs until then (changing or freeing `x` afterwards does not
        change that backward pass)."""
        with self._lock:
            ptr = self._running("forward")
            out = ctypes.c_void_p()
            with _Data(self, x, copy=True) as data:
                check(data.call("nnlib_model_forward", ptr,
                                ctypes.byref(out)))
                # the arrays C reads again in backward_output (replaced
                # only now: a call refused before it ran keeps the
                # previous pass pending)
                self._forward_inputs = [t._array for t in data.tensors]
                # borrowed from the model until its next call: copy it
                return self._copy_of(out.value)

    def _copy_of(self, tensor):
        """A numpy copy of a tensor the model lends until its next call."""
        address = ctypes.cast(lib.nnlib_tensor_get_data(tensor),
                              ctypes.c_void_p).value
        return float_view(self, address, tensor_shape(tensor)).copy()

    def backward(self, x, target):
        """Forward, loss and backward on one batch; returns the loss and
        leaves the gradients in the layers (get_grad/grad_view), and in
        the inputs while input gradients are on."""
        return self._batch("nnlib_model_backward", "backward", x, target)

    def step(self, x, target):
        """One training step on one batch; returns the batch's loss. `x` may
        hold sequences shorter than compiled ([N, T', F], see predict)."""
        return self._batch("nnlib_model_step", "step", x, target)

    def _batch(self, fn, what, x, target):
        with self._lock:
            ptr = self._running(what)
            loss = ctypes.c_float()
            with _Data(self, x) as data, self._target(target) as tt:
                check(data.call(fn, ptr, tt._ptr(), ctypes.byref(loss)))
            return loss.value

    # ---------------------------------------------------- input gradients

    def set_input_gradients(self, on=True):
        """on: every backward pass (backward, step, fit, backward_output)
        also leaves dL/dx of each model input (get_input_gradients); off
        frees those buffers. Off by default."""
        with self._lock:
            check(lib.nnlib_model_set_input_gradients(
                self._running("set_input_gradients"), int(bool(on))))
            self._input_grads = bool(on)

    def get_input_gradients(self):
        """Copies of dL/dx from the last backward pass: a list of arrays
        [N, input...], one per model input. WrongStateError when input
        gradients are off or no backward pass ran since they were
        switched on."""
        with self._lock:
            ptr = self._running("get_input_gradients")
            grads = []
            for i in range(self.input_count):
                tensor = ctypes.c_void_p()
                check(lib.nnlib_model_get_input_gradient(
                    ptr, i, ctypes.byref(tensor)))
                grads.append(self._copy_of(tensor.value))
            return grads

    def input_gradients(self, x, target):
        """The gradient of the mean loss on (x, target) with respect to the
        inputs (saliency maps, adversarial examples): one array of x's
        shape, or a list of arrays, one per input, when `x` is a list.
        Runs backward (so the parameter gradients are written too) with
        input gradients on, and leaves them as they were."""
        with self._lock:
            several = self._several(x) is not None
            was_on = self._input_grads
            if not was_on:
                self.set_input_gradients(True)
            try:
                self.backward(x, target)
                grads = self.get_input_gradients()
            finally:
                if not was_on:
                    self.set_input_gradients(False)
        return grads if several else grads[0]

    def backward_output(self, output_grad):
        """Backward from a gradient of the output that the caller gives
        (custom losses, models in sequence): after forward(x) on a batch of
        N, `output_grad` [N, output...] is dL/dy. Writes every parameter
        gradient (applies no update: optimizer_step does) and returns the
        input gradients as get_input_gradients does when they are on,
        else None."""
        with self._lock:
            ptr = self._running("backward_output")
            with Tensor.wrap(output_grad) as tg:
                status = lib.nnlib_model_backward_output(ptr, tg._ptr())
            if status == 0:  # the pass is spent: its inputs may go
                self._forward_inputs = None
            check(status)
            return self.get_input_gradients() if self._input_grads else None

    def set_check_numerics(self, on=True):
        """Checks every activation, gradient and updated parameter for NaN or
        Inf and stops at the first with NumericalError naming the layer."""
        with self._lock:
            check(lib.nnlib_model_set_check_numerics(
                self._running("set_check_numerics"), int(bool(on))))

    def optimizer_step(self):
        """Applies the optimizer to the gradients already in the model."""
        with self._lock:
            check(lib.nnlib_optimizer_step(self._running("optimizer_step")))

    def fit(self, x, y, epochs=1, batch_size=None, shuffle=True,
            callback=None, validation=None, patience=0, min_delta=0.0,
            restore_best=False):
        """Trains for `epochs` epochs of minibatches of `batch_size` (default:
        the compiled maximum batch) and returns a History: the mean loss of
        each epoch run (a list), and `.validation_losses`.

        `callback(progress)` runs after every batch with a Progress tuple. If
        it returns a true value, training stops and CancelledError is raised;
        if it raises, training stops cleanly and that exception propagates.

        `validation=(x_val, y_val)` evaluates the loss on those samples after
        every epoch; then `patience` > 0 stops once it has not improved (by
        more than `min_delta`) for that many epochs, and `restore_best` ends
        with the weights of the best epoch (needs library 1.1).

        A model of several inputs takes `x` (and `x_val`) as lists of
        arrays, one per input (nnlib_model_fit_inputs, library 1.3).

        Sequences may be shorter than the compiled T as in predict: `x`
        [N, T', F] with 1 <= T' <= T, and `x_val` of its own length T''
        (library 1.2).
        """
        if validation is None and (patience or restore_best):
            raise errors.InvalidArgumentError(
                "patience and restore_best need validation=(x, y)",
                code=errors.Status.INVALID_ARGUMENT)
        opts = _lib.FitOptions()
        check(lib.nnlib_fit_options_init(ctypes.byref(opts)))
        opts.epochs = int(epochs)
        opts.batch_size = 0 if batch_size is None else int(batch_size)
        opts.shuffle = int(bool(shuffle))
        losses = (ctypes.c_float * max(int(epochs), 1))()
        opts.epoch_losses = losses
        raised = []

        def trampoline(progress, user):
            p = progress.contents
            try:
                stop = callback(Progress(p.epoch, p.epochs, p.batch, p.batches,
                                         p.samples_done, p.samples, p.loss,
                                         p.epoch_loss))
                return 1 if stop else 0
            except BaseException as e:  # also KeyboardInterrupt
                raised.append(e)
                return 1

        if callback is not None:
            c_callback = _lib.PROGRESS_FN(trampoline)
            opts.progress = c_callback
        run = ctypes.c_int64(int(epochs))
        val_losses = (ctypes.c_float * max(int(epochs), 1))()
        v = None
        if validation is not None:
            v = _validation_options(patience, min_delta, restore_best,
                                    val_losses, run)
        with self._lock:
            ptr = self._running("fit")
            with _Data(self, x) as data, self._target(y) as ty:
                self._busy = "fit"
                try:
                    if data.several:
                        status = self._fit_inputs(ptr, data, ty, opts,
                                                  validation, v)
                    elif validation is None:
                        status = lib.nnlib_model_fit(ptr, data.tensor(),
                                                     ty._ptr(),
                                                     ctypes.byref(opts))
                    else:
                        status = self._fit_validated(ptr, data, ty, opts,
                                                     validation, v)
                finally:
                    self._busy = None
            if raised:
                raise raised[0]
            check(status)
        n = run.value
        return History([losses[i] for i in range(n)],
                       [val_losses[i] for i in range(n)]
                       if validation is not None else ())

    def _fit_validated(self, ptr, data, ty, opts, validation, v):
        vx, vy = validation
        with self._input(0, vx) as tvx, self._target(vy) as tvy:
            v.x = tvx._ptr()
            v.target = tvy._ptr()
            return lib.nnlib_model_fit_validated(
                ptr, data.tensor(), ty._ptr(), ctypes.byref(opts),
                ctypes.byref(v))

    def _fit_inputs(self, ptr, data, ty, opts, validation, v):
        if validation is None:
            return lib.nnlib_model_fit_inputs(
                ptr, data.array, data.count, ty._ptr(), ctypes.byref(opts),
                None, None)
        vx, vy = validation
        vxs = list(vx) if isinstance(vx, (list, tuple)) else [vx]
        with _TensorList(vxs, self._input) as tvx, \
                self._target(vy) as tvy:
            v.x = None  # the validation inputs go as a list
            v.target = tvy._ptr()
            return lib.nnlib_model_fit_inputs(
                ptr, data.array, data.count, ty._ptr(), ctypes.byref(opts),
                ctypes.byref(v), tvx.array)

    def evaluate(self, x, y):
        """(mean loss, accuracy) over all samples in inference mode; the loss
        is None for a model compiled without one. `x` may hold sequences
        shorter than compiled ([N, T', F], see predict), or be a list of
        arrays, one per input."""
        with self._lock:
            ptr = self._running("evaluate")
            loss = ctypes.c_float()
            accuracy = ctypes.c_float()
            has_loss = self.loss != Loss.NONE
            with _Data(self, x) as data, self._target(y) as ty:
                check(data.call(
                    "nnlib_model_evaluate", ptr, ty._ptr(),
                    ctypes.byref(loss) if has_loss else None,
                    ctypes.byref(accuracy)))
            return (loss.value if has_loss else None), accuracy.value

    def set_profiling(self, on=True):
        """on: clear every layer's counts and start counting time and FLOPs;
        off: stop (the counts stay readable with layer_profile)."""
        with self._lock:
            check(lib.nnlib_model_set_profiling(
                self._running("set_profiling"), int(bool(on))))

    def layer_profile(self, index):
        """A dict of layer `index`'s counts (nnlib_layer_profile)."""
        info = _lib.LayerProfile()
        info.struct_size = ctypes.sizeof(info)
        with self._lock:
            check(lib.nnlib_model_get_layer_profile(self._ptr(), int(index),
                                                    ctypes.byref(info)))
        out = {name: getattr(info, name) for name, _ in info._fields_
               if name != "struct_size"}
        out["fused"] = bool(out["fused"])
        return out

    def gradcheck(self, x, y, step=None, random_direction=False, seed=None,
                  inference=False):
        """Worst normwise relative error between backprop and central
        finite differences; inference=True checks the inference-mode
        function (dropout off, batchnorm on running statistics). `step`
        None and `seed` None keep the library's defaults
        (nnlib_gradcheck_options_init: step 1e-2, seed 1); `seed` (0 ..
        2**64 - 1) drives the random direction of random_direction=True."""
        opts = _lib.GradcheckOptions()
        check(lib.nnlib_gradcheck_options_init(ctypes.byref(opts)))
        if step is not None:
            opts.step = float(step)
        opts.random_direction = int(bool(random_direction))
        if seed is not None:
            opts.seed = seed_value(seed)
        opts.inference = int(bool(inference))
        err = ctypes.c_double()
        with self._lock:
            ptr = self._running("gradcheck")
            with _Data(self, x) as data, self._target(y) as ty:
                check(data.call("nnlib_model_gradcheck", ptr, ty._ptr(),
                                ctypes.byref(opts), ctypes.byref(err)))
        return err.value

    # ------------------------------------------------------------- files

    def save(self, path, optimizer=False):
        """Writes the compiled model to `path` (atomically); with
        optimizer=True also the optimizer and its state."""
        flags = SAVE_OPTIMIZER if optimizer else 0
        with self._lock:
            check(lib.nnlib_model_save(self._ptr(), _path(path), flags))

    def to_bytes(self, optimizer=False):
        """The bytes save() would write."""
        flags = SAVE_OPTIMIZER if optimizer else 0
        data = ctypes.c_void_p()
        size = ctypes.c_size_t()
        with self._lock:
            check(lib.nnlib_model_save_buffer(self._ptr(), flags,
                                              ctypes.byref(data),
                                              ctypes.byref(size)))
        try:
            return ctypes.string_at(data.value, size.value)
        finally:
            lib.nnlib_free(data.value)

    @classmethod
    def load(cls, path):
        """A compiled model read from a file."""
        handle = ctypes.c_void_p()
        check(lib.nnlib_model_load(ctypes.byref(handle), _path(path)))
        model = cls.__new__(cls)
        model._init(handle.value)
        return model

    @classmethod
    def from_bytes(cls, data):
        """A compiled model read from bytes (as to_bytes gives)."""
        data = bytes(data)
        handle = ctypes.c_void_p()
        check(lib.nnlib_model_load_buffer(ctypes.byref(handle), data,
                                          len(data)))
        model = cls.__new__(cls)
        model._init(handle.value)
        return model

    # -------------------------------------------------------------- ONNX

    @classmethod
    def from_onnx(cls, source, max_batch=64, loss=None, optimizer=None,
                  seed=1, output=None, whole_sample=False):
        """A compiled model imported from ONNX (opsets 13 to 17; see
        docs/ONNX.md for the operators that map). `source`: a path (str or
        os.PathLike) or the bytes of the file (bytes, bytearray,
        memoryview). The model is compiled for batches of up to
        `max_batch`; `loss` None ("none") imports it for inference, another
        loss ("softmax_ce", ...) makes it trainable with `optimizer` (an
        Optimizer, taken by the model also on failure, or a kind name; None:
        plain SGD at 0.01). `seed` (0 .. 2**64 - 1; a negative one raises
        InvalidArgumentError) drives dropout. `output`: the name of
        the graph output the model computes, for a graph of several (None:
        the graph's only output); the other outputs are not computed. A
        time-major recurrent input [T, N, F] (layout 0) is taken batch
        first, [N, T, F], and its Y and Y_h outputs come batch first.
        `whole_sample` True: each graph input, of a fixed shape, is one
        whole sample (ONNX's axis 0 is no batch axis, so operators may mix
        it): predict on [1, ...shape], outputs come as [1, ...ONNX's
        output shape]."""
        if isinstance(optimizer, (str, OptimizerKind)):
            optimizer = Optimizer(optimizer)
        options = _lib.OnnxOptions()
        check(lib.nnlib_onnx_options_init_size(ctypes.byref(options),
                                               ctypes.sizeof(options)))
        options.max_batch = int(max_batch)
        options.loss = int(_loss(loss))
        options.seed = seed_value(seed)
        options.whole_sample = 1 if whole_sample else 0
        # the encoded name lives until the call returns (the library reads
        # it during the import only)
        if output is None or isinstance(output, bytes):
            output_name = output
        else:
            output_name = str(output).encode("utf-8")
        options.output = output_name
        data = None
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)  # a contiguous copy the call can read
        else:
            path = _path(source)  # before the optimizer is taken
        handle = ctypes.c_void_p()
        options.optimizer = optimizer._take() if optimizer is not None \
            else None
        if data is not None:
            status = lib.nnlib_model_load_onnx_buffer(
                ctypes.byref(handle), data, len(data), ctypes.byref(options))
        else:
            status = lib.nnlib_model_load_onnx(ctypes.byref(handle), path,
                                               ctypes.byref(options))
        check(status)
        model = cls.__new__(cls)
        model._init(handle.value)
        if optimizer is not None:
            optimizer._attach(lib.nnlib_model_get_optimizer(handle.value),
                              model)
        return model

    def to_onnx(self, path=None):
        """Exports the compiled model as ONNX (opset 17, IR 8): to the file
        at `path`, or, with path None, returns the bytes."""
        with self._lock:
            if path is not None:
                check(lib.nnlib_model_save_onnx(self._ptr(), _path(path)))
                return None
            data = ctypes.c_void_p()
            size = ctypes.c_size_t()
            check(lib.nnlib_model_save_onnx_to_buffer(
                ctypes.byref(data), ctypes.byref(size), self._ptr()))
        try:
            return ctypes.string_at(data.value, size.value)
        finally:
            lib.nnlib_free(data.value)

    def __repr__(self):
        with self._lock:
            if self._handle is None:
                return "<nnlib.Model closed>"
            return "<nnlib.Model %d layers>" % \
                lib.nnlib_model_get_layer_count(self._handle)


def _validation_options(patience, min_delta, restore_best, losses, run):
    """nnlib_validation_options without its data (set by the caller)."""
    v = _lib.ValidationOptions()
    check(lib.nnlib_validation_options_init(ctypes.byref(v)))
    v.patience = int(patience)
    v.min_delta = float(min_delta)
    v.restore_best = int(bool(restore_best))
    v.losses = losses
    v.epochs_run = ctypes.pointer(run)
    return v


def _prompt_ids(prompt):
    """A prompt as a 1-D int32 C-contiguous array of token ids."""
    if isinstance(prompt, str):
        prompt = prompt.encode("utf-8")
    if isinstance(prompt, (bytes, bytearray, memoryview)):
        return np.frombuffer(bytes(prompt), dtype=np.uint8).astype(np.int32)
    ids = as_int32(prompt, "the prompt's token ids")
    if ids.ndim != 1:
        raise errors.ShapeMismatchError(
            "the prompt is one sequence of token ids (1-D), got shape %s"
            % (ids.shape,), code=errors.Status.SHAPE_MISMATCH)
    return ids


class _TensorList:
    """Tensors over a list of arrays (one per model input; make(k, array)
    makes input k's tensor) and the C array of their handles,
    `const nnlib_tensor *const *`; freed on exit."""

    def __init__(self, arrays, make):
        self.tensors = []
        try:
            for k, a in enumerate(arrays):
                self.tensors.append(make(k, a))
        except BaseException:
            self.close()
            raise
        self.count = len(self.tensors)
        self.array = (ctypes.c_void_p * max(self.count, 1))(
            *[t._ptr() for t in self.tensors])

    def close(self):
        for t in self.tensors:
            t.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Data(_TensorList):
    """The inputs of one call: one array-like, for the one-tensor calls of
    1.2, or a list of arrays, one per model input, for the *_inputs calls
    (see Model._several)."""

    def __init__(self, model, x, copy=False):
        xs = model._several(x)
        self.several = xs is not None
        arrays = xs if self.several else [x]
        if copy:  # private copies the caller cannot change or free
            arrays = [np.array(a, copy=True) for a in arrays]
        super().__init__(arrays, model._input)

    def tensor(self):
        return self.tensors[0]._ptr()

    def call(self, name, handle, *rest):
        """C function `name`(handle, x, *rest), or for several inputs
        `name`_inputs(handle, xs, count, *rest)."""
        if self.several:
            fn = getattr(lib, name + "_inputs")
            return fn(handle, self.array, self.count, *rest)
        return getattr(lib, name)(handle, self.tensor(), *rest)


def _output_shape_for(model, x_shape):
    """The per-sample output shape for inputs of `x_shape`: a model over
    sequences [T, F] whose output is a sequence [T, H] gives [T', H] for
    shorter inputs [N, T', F] (library 1.2)."""
    shape = model.output_shape
    if model.input_count != 1:
        return shape
    inputs = model.input_shape
    if (len(shape) == 2 and len(inputs) == 2 and len(x_shape) == 3
            and shape[0] == inputs[0] and x_shape[1] < inputs[0]):
        return (x_shape[1], shape[1])
    return shape


def _predict_tensors(model, x, out):
    """The input tensors (a _Data, to close) and the output array and
    tensor of a prediction, checked."""
    data = _Data(model, x)
    try:
        if not data.tensors:
            raise errors.InvalidArgumentError(
                "predict: an empty list of input arrays (the model has %d "
                "inputs)" % model.input_count,
                code=errors.Status.INVALID_ARGUMENT)
        x_shape = data.tensors[0].shape
        if out is None:
            out = np.empty((x_shape[0],) + _output_shape_for(model, x_shape),
                           dtype=np.float32)
        elif not (isinstance(out, np.ndarray) and out.dtype == np.float32
                  and out.flags.c_contiguous and out.flags.aligned
                  and out.flags.writeable):
            # C writes into out's own memory (a copy would leave out
            # unwritten): an unaligned float * is undefined behaviour
            raise errors.InvalidArgumentError(
                "out must be a writable, aligned, float32 C-contiguous "
                "array (numpy's flags.aligned; e.g. not np.frombuffer at "
                "an offset that is not a multiple of 4)",
                code=errors.Status.INVALID_ARGUMENT)
        return data, out, Tensor.wrap(out)
    except BaseException:
        data.close()
        raise


def _predict(fn, handle, model, x, out):
    data, out, ty = _predict_tensors(model, x, out)
    with data, ty:
        check(data.call(fn, handle, ty._ptr()))
    return out


class Workspace:
    """Per-thread inference buffers for one compiled model
    (nnlib_workspace). ``predict`` on different workspaces of a model runs
    in parallel threads (the GIL is released during the C call), as
    nnlib.h allows; two threads predicting with the same workspace take
    turns. The model must not be trained, changed or freed while any
    workspace predicts, so every other call on the model, its layers or its
    optimizer (fit, step, set_param, learning_rate =, close, ...) waits
    until the predictions in C have returned, and predictions starting
    meanwhile wait for it. Closing the workspace waits for its own
    prediction (and the others of its model) likewise; closing the model
    closes its workspaces. A prediction from inside fit's callback is
    refused with WrongStateError."""

    def __init__(self, model):
        handle = ctypes.c_void_p()
        with model._lock:
            check(lib.nnlib_workspace_create(ctypes.byref(handle),
                                             model._ptr()))
            self._handle = handle.value
            self._model = model
            self._turn = threading.Lock()  # one prediction at a time here
            model._workspaces.add(self)

    def _ptr(self):
        self._model._ptr()
        if self._handle is None:
            raise errors.WrongStateError("the workspace is closed",
                                         code=errors.Status.WRONG_STATE)
        return self._handle

    def predict(self, x, out=None):
        """Model.predict with this workspace's buffers (a list of arrays
        for a model of several inputs)."""
        model = self._model

        def prepare():  # under the model's lock: checks and conversions
            model._running("predict")
            return (self._ptr(),) + _predict_tensors(model, x, out)

        def run(prepared):  # in C beside other workspaces' predictions
            handle, data, result, ty = prepared
            with data, ty:
                check(data.call("nnlib_workspace_predict", handle,
                                ty._ptr()))
            return result

        with self._turn:
            return model._lock.predict_shared(prepare, run)

    def close(self):
        """Frees the workspace, after any prediction in C with this model's
        workspaces has returned (it takes the model's lock). Later
        predictions raise WrongStateError."""
        with self._model._lock:
            handle, self._handle = self._handle, None
            if handle is not None:
                lib.nnlib_workspace_free(handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def model_file_info(source):
    """What a model file's header says, without building the model: a dict
    of nnlib_model_file_info's fields. `source`: bytes, or a path."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        with open(source, "rb") as f:
            data = f.read()
    info = _lib.ModelFileInfo()
    info.struct_size = ctypes.sizeof(info)
    check(lib.nnlib_model_file_get_info(data, len(data), ctypes.byref(info)))
    out = {name: getattr(info, name) for name, _ in info._fields_
           if name not in ("struct_size", "input_rank", "input_shape")}
    out["input_shape"] = tuple(info.input_shape[:info.input_rank])
    out["loss"] = Loss(info.loss)
    out["has_optimizer"] = bool(info.has_optimizer)
    return out
