"""The functional API: symbolic nodes that describe a graph model.

``Input(shape)`` makes a model input; calling a layer on a node (or, for
the merge layers Add, Concat and Multiply, on a list of nodes) records
that application and returns the layer's node. Nothing runs and nothing
reaches the library until ``Model(inputs=..., outputs=...)`` walks back
from the output and builds the C model in the order the nodes were made
(nnlib_model_input, nnlib_model_apply, nnlib_model_set_output)::

    x = nnlib.Input((1, 28, 28), name="img")
    y = nnlib.Conv2d(16, 3, padding=1)(x)
    y = nnlib.ReLU()(y)
    y = nnlib.add([x, y])          # or x + y
    model = nnlib.Model(inputs=x, outputs=nnlib.Dense(10)(nnlib.Flatten()(y)))

A layer object makes one node: a second call is an error (weights are not
shared between nodes; make another layer). Once a model is built, its
layers belong to it, so its layer nodes cannot go into another model.
"""

import itertools
import weakref

from . import errors

_serials = itertools.count()


def _invalid(message):
    return errors.InvalidArgumentError(
        message, code=errors.Status.INVALID_ARGUMENT)


class Node:
    """A symbolic node: a model input (``layer`` None) or a layer applied
    to earlier nodes (``inputs``). ``name`` names it in the model (its
    description text, messages and ``Model.nodes``)."""

    def __init__(self, layer, inputs, shape=None, name=None):
        self.layer = layer
        self.inputs = tuple(inputs)
        self.name = name
        self._shape = shape
        # made in order, so sorting by serial is a topological order
        self._serial = next(_serials)
        self._model = None  # weak reference to the Model built from it

    @property
    def is_input(self):
        return self.layer is None

    @property
    def shape(self):
        """Per-sample shape: declared for an input; for a layer's node the
        layer's output shape once its model is compiled, else None."""
        if self.layer is None:
            return self._shape
        try:
            return self.layer.output_shape
        except errors.Error:
            return None

    @property
    def model(self):
        """The Model built from this node, or None."""
        return self._model() if self._model is not None else None

    def _label(self):
        kind = "input" if self.layer is None else _layer_name(self.layer)
        if self.name:
            return "%r (%s)" % (self.name, kind)
        return "a %s node" % kind

    def __add__(self, other):
        return add([self, other])

    def __mul__(self, other):
        return multiply([self, other])

    def __repr__(self):
        shape = "" if self.layer is not None else " shape=%s" % (self._shape,)
        return "<nnlib.Node %s%s>" % (self._label(), shape)


def _layer_name(layer):
    try:
        return layer.name
    except errors.Error:
        return type(layer).__name__


def Input(shape, name=None):
    """A model input of per-sample shape `shape` (an int or a tuple, batch
    left out: (1, 28, 28) for MNIST images, (4,) for 4 features)."""
    if isinstance(shape, int):
        shape = (shape,)
    shape = tuple(int(d) for d in shape)
    if not shape or any(d < 1 for d in shape):
        raise _invalid("Input shape %s: every dimension must be >= 1 and "
                       "there must be at least one" % (shape,))
    return Node(None, (), shape=shape, name=_checked_name(name))


def _checked_name(name):
    if name is None:
        return None
    if not isinstance(name, str):
        raise _invalid("a node name is a string, got %r" % (name,))
    return name  # the library checks the characters when the model is built


def _spent(node):
    """The message for a layer node whose layer already belongs to a model
    (or was freed), else None."""
    if node.layer is None or node.layer.owned:
        return None
    return ("%s belongs to a model that was already built (a node of "
            "another graph): its layer is that model's now; apply new "
            "layers to build another model" % node._label())


def apply(layer, inputs, name=None):
    """Records `layer` applied to `inputs` (a node, or a list of nodes for
    a merge layer) and returns the new node. Layer.__call__ lands here."""
    nodes = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    for n in nodes:
        if not isinstance(n, Node):
            raise _invalid("%s takes nnlib nodes (from nnlib.Input or a "
                           "layer call), got %r" % (_layer_name(layer), n))
    if layer._applied is not None:
        raise _invalid("this %s layer was already applied (%s): a layer "
                       "makes one node; create another layer for another "
                       "node" % (_layer_name(layer), layer._applied))
    if not layer.owned:
        raise _invalid("this %s layer belongs to a model (or was freed)"
                       % _layer_name(layer))
    if layer._merge and len(nodes) < 2:
        raise _invalid("%s merges two or more nodes, got %d"
                       % (_layer_name(layer), len(nodes)))
    if not layer._merge and len(nodes) != 1:
        raise _invalid("%s reads one node, got %d (join nodes with Add, "
                       "Concat or Multiply)" % (_layer_name(layer),
                                                 len(nodes)))
    for n in nodes:
        spent = _spent(n)
        if spent:
            raise _invalid(spent)
    node = Node(layer, nodes, name=_checked_name(name))
    layer._applied = node._label()
    return node


def add(nodes, name=None):
    """y = x1 + x2 + ...: an Add layer applied to `nodes`."""
    from .layers import Add
    return Add()(nodes, name=name)


def multiply(nodes, name=None):
    """y = x1 * x2 * ... elementwise: a Multiply layer applied to `nodes`."""
    from .layers import Multiply
    return Multiply()(nodes, name=name)


def concat(nodes, axis=0, name=None):
    """The nodes joined along per-sample axis `axis` (0: features of [F],
    channels of [C, H, W]; -1: the last): a Concat layer."""
    from .layers import Concat
    return Concat(axis)(nodes, name=name)


def _as_nodes(value, what):
    nodes = list(value) if isinstance(value, (list, tuple)) else [value]
    if not nodes:
        raise _invalid("%s: no nodes given" % what)
    for n in nodes:
        if not isinstance(n, Node):
            raise _invalid("%s takes nnlib nodes, got %r" % (what, n))
    return nodes


def collect(inputs, outputs):
    """Checks a graph from `inputs` to `outputs` before anything is built:
    (input nodes in the order given, layer nodes in the order made, the
    output node). Raises InvalidArgumentError naming the node at fault."""
    ins = _as_nodes(inputs, "Model inputs")
    outs = _as_nodes(outputs, "Model outputs")
    if len(outs) != 1:
        raise _invalid("a model has one output node, got %d" % len(outs))
    out = outs[0]
    for n in ins:
        if not n.is_input:
            raise _invalid("Model inputs must be nnlib.Input nodes; %s is "
                           "a layer's output" % n._label())
    if len({id(n) for n in ins}) != len(ins):
        raise _invalid("an input is given twice in Model inputs")
    seen = {}
    stack = [out]
    while stack:
        n = stack.pop()
        if id(n) not in seen:
            seen[id(n)] = n
            stack.extend(n.inputs)
    given = {id(n) for n in ins}
    for n in seen.values():
        if n.is_input and id(n) not in given:
            raise _invalid("the output depends on %s, which is not among "
                           "the model's inputs (a node of another graph)"
                           % n._label())
    layers = sorted((n for n in seen.values() if not n.is_input),
                    key=lambda n: n._serial)
    for n in layers:
        spent = _spent(n)
        if spent:
            raise _invalid(spent)
    return ins, layers, out


def mark_built(nodes, model):
    """Remembers which model the nodes went into."""
    ref = weakref.ref(model)
    for n in nodes:
        n._model = ref
