"""Graph models (library 1.3): the functional API against the same graph
built by the C library from its description text, several inputs as lists
of arrays, input gradients against finite differences, and the errors."""

import os
import traceback

import numpy as np
import pytest

import nnlib
from conftest import needs

pytestmark = needs("nnlib_model_input", "nnlib_model_apply",
                   "nnlib_model_compile_graph", "nnlib_model_predict_inputs")

def data(*shapes, seed=13):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, s).astype(np.float32) for s in shapes]


def twin_of(functional, spec, seed=11, loss="mse", max_batch=8):
    """Compiles the functional model and the model the C library parses
    from `spec`, copies the functional model's weights into the parsed
    one, and returns both."""
    functional.compile(loss=loss, max_batch=max_batch, seed=seed)
    parsed = nnlib.Model.from_spec(spec)
    parsed.compile(loss=loss, max_batch=max_batch, seed=seed + 1)
    assert [l.name for l in parsed.layers] == \
        [l.name for l in functional.layers]
    parsed.set_weights(functional.get_weights())
    return functional, parsed


# ------------------------------------------------ against the C library

RESIDUAL = "x=input:6,dense:8,tanh,d=dense:6,add(x,d),relu,dense:3"


def residual_block():
    x = nnlib.Input((6,), name="x")
    h = nnlib.Tanh()(nnlib.Dense(8)(x))
    d = nnlib.Dense(6)(h, name="d")
    y = nnlib.ReLU()(nnlib.add([x, d]))
    return nnlib.Model(inputs=x, outputs=nnlib.Dense(3)(y))


def test_residual_block_predicts_as_its_description():
    m, parsed = twin_of(residual_block(), RESIDUAL)
    (x,) = data((5, 6))
    assert m.input_count == 1 and m.input_shapes == [(6,)]
    assert m.output_shape == (3,)
    np.testing.assert_array_equal(m.predict(x), parsed.predict(x))
    assert m.spec == RESIDUAL
    # the residual connection is real: zeroing the block leaves relu(x)
    layers = m.layers
    for layer in layers[:-1]:
        for name in layer.param_names:
            layer.set_param(name, np.zeros_like(layer.get_param(name)))
    head = layers[-1]
    expected = np.maximum(x, 0) @ head.weight.T + head.bias
    np.testing.assert_allclose(m.predict(x), expected, rtol=1e-5, atol=1e-6)


CONV_RESIDUAL = ("x=input:2x5x5,conv:2x3x3:p1,relu,c=conv:2x3x3:p1,"
                 "add(x,c),relu,flatten,dense:3")


def test_convolutional_residual_block_in_keras_style():
    x = nnlib.Input((2, 5, 5), name="x")
    y = nnlib.Conv2d(2, 3, padding=1)(x)
    y = nnlib.ReLU()(y)
    c = nnlib.Conv2d(2, 3, padding=1)(y, name="c")
    y = nnlib.ReLU()(x + c)  # the + of nodes is an Add layer
    y = nnlib.Dense(3)(nnlib.Flatten()(y))
    m, parsed = twin_of(nnlib.Model(inputs=x, outputs=y), CONV_RESIDUAL)
    (images,) = data((4, 2, 5, 5))
    np.testing.assert_array_equal(m.predict(images), parsed.predict(images))
    assert m.spec == CONV_RESIDUAL


TWO_INPUTS = ("a=input:3,b=input:2,da=dense:4(a),db=dense:4(b),"
              "concat(da,db),tanh,dense:2")


def two_inputs():
    a = nnlib.Input((3,), name="a")
    b = nnlib.Input(2, name="b")
    da = nnlib.Dense(4)(a, name="da")
    db = nnlib.Dense(4)(b, name="db")
    h = nnlib.Tanh()(nnlib.concat([da, db]))
    return nnlib.Model(inputs=[a, b], outputs=nnlib.Dense(2)(h))


def test_two_input_model_predicts_as_its_description():
    m, parsed = twin_of(two_inputs(), TWO_INPUTS)
    xa, xb = data((7, 3), (7, 2))
    assert m.input_count == 2 and m.input_shapes == [(3,), (2,)]
    out = m.predict([xa, xb])
    assert out.shape == (7, 2)
    np.testing.assert_array_equal(out, parsed.predict([xa, xb]))
    assert m.spec == TWO_INPUTS
    # the same numbers by hand: concat is [da, db] along the features
    da, db, head = m.layers[0], m.layers[1], m.layers[4]
    h = np.tanh(np.concatenate([xa @ da.weight.T + da.bias,
                                xb @ db.weight.T + db.bias], axis=1))
    np.testing.assert_allclose(out, h @ head.weight.T + head.bias,
                               rtol=1e-5, atol=1e-6)
    # more samples than the compiled batch go in chunks, also for lists
    xa, xb = data((19, 3), (19, 2))
    np.testing.assert_array_equal(m.predict([xa, xb]),
                                  parsed.predict([xa, xb]))
    with m.workspace() as w:
        np.testing.assert_array_equal(w.predict([xa, xb]),
                                      parsed.predict([xa, xb]))


# g is not named: a name prints only where an item refers to it
GATE = "x=input:4,h=dense:4,dense:4(x),s=sigmoid,multiply(h,s),dense:2"


def test_multiply_gate_predicts_as_its_description():
    x = nnlib.Input((4,), name="x")
    h = nnlib.Dense(4)(x, name="h")
    g = nnlib.Dense(4)(x)
    s = nnlib.Sigmoid()(g, name="s")
    m = nnlib.Model(x, nnlib.Dense(2)(nnlib.multiply([h, s])))
    m, parsed = twin_of(m, GATE)
    (xs,) = data((6, 4))
    np.testing.assert_array_equal(m.predict(xs), parsed.predict(xs))
    assert m.spec == GATE


def test_nodes_describe_the_graph():
    m = two_inputs()
    nodes = m.nodes
    assert [n.name for n in nodes] == ["a", "b", "da", "db", None, None,
                                       None]
    assert [n.input_index for n in nodes[:2]] == [0, 1]
    assert nodes[0].layer is None and nodes[0].shape == (3,)
    assert nodes[4].layer.kind == nnlib.LayerKind.CONCAT
    assert nodes[4].inputs == (2, 3)
    assert nodes[2].inputs == (0,) and nodes[3].inputs == (1,)
    assert [n.is_output for n in nodes] == [False] * 6 + [True]
    m.compile(loss="mse", max_batch=2)
    assert m.nodes[4].shape == (8,)
    assert isinstance(m.layers[2], nnlib.Concat)


def test_graph_model_round_trips_through_bytes():
    m, _ = twin_of(two_inputs(), TWO_INPUTS)
    xa, xb = data((5, 3), (5, 2))
    again = nnlib.Model.from_bytes(m.to_bytes())
    assert again.input_count == 2 and again.spec == m.spec
    np.testing.assert_array_equal(again.predict([xa, xb]),
                                  m.predict([xa, xb]))


# ------------------------------------------------------ input gradients

def mean_loss(m, xs, t):
    return float(m.evaluate(xs, t)[0])


def finite_differences(m, xs, t, h=1e-2):
    """Central differences of the mean loss over every input element."""
    grads = []
    for x in xs:
        g = np.zeros_like(x, dtype=np.float64)
        for i in np.ndindex(x.shape):
            keep = x[i]
            x[i] = keep + h
            up, plus = mean_loss(m, xs, t), x[i]
            x[i] = keep - h
            down, minus = mean_loss(m, xs, t), x[i]
            x[i] = keep
            g[i] = (up - down) / (float(plus) - float(minus))
        grads.append(g)
    return grads


def test_input_gradients_match_finite_differences():
    m = two_inputs()
    m.compile(loss="mse", max_batch=4, seed=3)
    xa, xb = data((3, 3), (3, 2), seed=5)
    (t,) = data((3, 2), seed=6)
    grads = m.input_gradients([xa, xb], t)
    assert [g.shape for g in grads] == [(3, 3), (3, 2)]
    for g, fd in zip(grads, finite_differences(m, [xa, xb], t)):
        np.testing.assert_allclose(g, fd, rtol=2e-2, atol=2e-4)
    # one input, one array in and out; the fan-out of x sums both paths
    x = nnlib.Input((6,))
    d = nnlib.Dense(6)(nnlib.Tanh()(nnlib.Dense(8)(x)))
    r = nnlib.Model(x, nnlib.Dense(3)(nnlib.Tanh()(x + d)))
    r.compile(loss="mse", max_batch=4, seed=4)
    (x,) = data((2, 6), seed=1)
    (t,) = data((2, 3), seed=2)
    g = r.input_gradients(x, t)
    assert isinstance(g, np.ndarray) and g.shape == (2, 6)
    np.testing.assert_allclose(g, finite_differences(r, [x], t)[0],
                               rtol=2e-2, atol=2e-4)


def in_child_process(test):
    """Runs `test` in a forked child, so that a crash in a new path of the
    library fails this test instead of ending the whole run."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without pytest's teardown
        os.close(read)
        try:
            test()
            report = b""
        except BaseException:
            report = traceback.format_exc().encode()
        os.write(write, report)
        os._exit(1 if report else 0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        report = f.read().decode()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        pytest.fail("the child crashed with signal %d" % os.WTERMSIG(status))
    assert os.WEXITSTATUS(status) == 0, report


def test_backward_output_is_backward_from_the_loss_gradient():
    in_child_process(backward_output_against_backward)


def backward_output_against_backward():
    m = two_inputs()
    m.compile(loss="mse", max_batch=4, seed=5)
    xa, xb = data((4, 3), (4, 2), seed=7)
    (t,) = data((4, 2), seed=8)
    m.set_input_gradients(True)
    m.backward([xa, xb], t)
    from_loss = m.get_input_gradients()
    param_grads = [l.get_grad(i) for l in m.layers
                   for i in range(len(l.param_names))]
    y = m.forward([xa, xb])
    dy = 2 * (y - t) / y.size  # d/dy of mean((y - t)^2)
    from_dy = m.backward_output(dy)
    for a, b in zip(from_dy, from_loss):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    for (l, i), g in zip([(l, i) for l in m.layers
                          for i in range(len(l.param_names))], param_grads):
        np.testing.assert_allclose(l.get_grad(i), g, rtol=1e-5, atol=1e-7)
    m.set_input_gradients(False)
    with pytest.raises(nnlib.WrongStateError):
        m.get_input_gradients()
    m.predict([xa, xb])  # a pass that spends the forward pass
    with pytest.raises(nnlib.WrongStateError):
        m.backward_output(dy)


def test_backward_output_reads_the_inputs_forward_was_given():
    in_child_process(backward_output_after_the_inputs_went_away)


def backward_output_after_the_inputs_went_away():
    """The library keeps pointers to forward's input data and reads them
    again in backward_output: a float64 x (converted to a temporary
    float32 copy) freed after forward, or a float32 x the caller changes,
    must not change the gradients. For y = x W^T + b and dL/dy = 1,
    dL/dW = 1^T x: every row is the column sums of x."""
    rng = np.random.default_rng(3)
    x64 = rng.uniform(-1, 1, (32, 64))  # float64: converted for C
    expected = np.tile(x64.astype(np.float32).sum(axis=0), (3, 1))
    for make in (lambda: x64, lambda: x64.astype(np.float32)):
        m = nnlib.Model([nnlib.Dense(3)])
        m.compile((64,), max_batch=32, seed=1)
        x = make()
        m.forward(x)
        if x.dtype == np.float32:
            x[...] = 1000.0  # the caller's array changes after forward
        del x
        junk = [np.full((32, 64), 7.0 * (i + 1), np.float32)
                for i in range(64)]  # takes the memory a copy freed
        m.backward_output(np.ones((32, 3), np.float32))
        np.testing.assert_allclose(m.layers[0].get_grad("weight"), expected,
                                   rtol=1e-5, atol=1e-5)
        del junk
    # a forward refused before it ran (7 features, not 64) leaves the
    # pending pass, and its inputs, in place
    m = nnlib.Model([nnlib.Dense(3)])
    m.compile((64,), max_batch=32, seed=1)
    m.forward(x64)
    with pytest.raises(nnlib.ShapeMismatchError):
        m.forward(np.zeros((32, 7)))
    junk = [np.full((32, 64), 7.0 * (i + 1), np.float32) for i in range(64)]
    m.backward_output(np.ones((32, 3), np.float32))
    np.testing.assert_allclose(m.layers[0].get_grad("weight"), expected,
                               rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------- training

def test_two_input_model_trains_with_lists():
    m = two_inputs()
    m.compile(loss="mse", optimizer=nnlib.Adam(0.02), max_batch=16, seed=2)
    def target(a, b):
        return np.stack([a[:, 0] + 0.5 * b[:, 1], a[:, 1] - b[:, 0]], axis=1)

    xa, xb = data((64, 3), (64, 2), seed=3)
    va, vb = data((16, 3), (16, 2), seed=4)
    t, vt = target(xa, xb), target(va, vb)
    before = m.evaluate([va, vb], vt)[0]
    history = m.fit([xa, xb], t, epochs=40, batch_size=16,
                    validation=([va, vb], vt))
    assert len(history) == 40 and len(history.validation_losses) == 40
    assert history[-1] < 0.3 * history[0]
    after = m.evaluate([va, vb], vt)[0]
    assert after < 0.3 * before
    assert history.validation_losses[-1] == pytest.approx(after, rel=1e-5)
    first = m.step([xa[:8], xb[:8]], t[:8])
    assert np.isfinite(first)
    assert m.gradcheck([xa[:4], xb[:4]], t[:4]) < 1e-2


# --------------------------------------------------------------- errors

def test_wrong_number_of_arrays_is_invalid_argument():
    m = two_inputs()
    m.compile(loss="mse", optimizer="sgd", max_batch=4)
    xa, xb = data((2, 3), (2, 2))
    (t,) = data((2, 2))
    for bad in ([xa], [xa, xb, xb], xa):
        with pytest.raises(nnlib.InvalidArgumentError) as info:
            m.predict(bad)
        assert info.value.code == nnlib.Status.INVALID_ARGUMENT
    with pytest.raises(nnlib.InvalidArgumentError):
        m.step([xa], t)
    with pytest.raises(nnlib.InvalidArgumentError):
        m.fit([xa, xb, xb], t)
    with pytest.raises(nnlib.ShapeMismatchError) as info:
        m.predict([xa, np.zeros((2, 5), np.float32)])
    assert info.value.message


def test_a_layer_applied_twice_is_an_error():
    x = nnlib.Input((4,))
    dense = nnlib.Dense(4)
    dense(x)
    with pytest.raises(nnlib.InvalidArgumentError) as info:
        dense(x)
    assert "already applied" in info.value.message
    assert info.value.code == nnlib.Status.INVALID_ARGUMENT
    with pytest.raises(nnlib.InvalidArgumentError):
        nnlib.Model([dense])  # nor can it go into a sequential model


def test_nodes_of_another_graph_are_refused():
    x, other = nnlib.Input((4,), name="x"), nnlib.Input((4,), name="other")
    y = nnlib.add([nnlib.Dense(4)(x), other])
    with pytest.raises(nnlib.InvalidArgumentError) as info:
        nnlib.Model(inputs=x, outputs=y)
    assert "'other'" in info.value.message
    assert "another graph" in info.value.message
    first = nnlib.Model(inputs=[x, other], outputs=y)
    # y's layers belong to `first` now: no second model from them
    with pytest.raises(nnlib.InvalidArgumentError) as info:
        nnlib.Dense(2)(y)
    assert "another graph" in info.value.message
    with pytest.raises(nnlib.InvalidArgumentError):
        nnlib.Model(inputs=[x, other], outputs=y)
    # an input node may start another graph with new layers
    second = nnlib.Model(inputs=x, outputs=nnlib.Dense(2)(x))
    second.compile(loss="mse", max_batch=2)
    first.compile(loss="mse", max_batch=2)
    a, b = data((2, 4), (2, 4))
    assert first.predict([a, b]).shape == (2, 4)


def test_bad_graphs_are_refused_with_the_mapped_exceptions():
    x = nnlib.Input((4,), name="x")
    with pytest.raises(nnlib.InvalidArgumentError):
        nnlib.Add()(x)  # a merge reads two or more nodes
    with pytest.raises(nnlib.InvalidArgumentError):
        nnlib.Dense(2)([x, x])  # the others one
    with pytest.raises(nnlib.InvalidArgumentError):
        nnlib.Dense(2)(np.zeros(4))
    d = nnlib.Dense(4)(x)
    with pytest.raises(nnlib.InvalidArgumentError):
        nnlib.Model(inputs=d, outputs=d)  # inputs are Input nodes
    with pytest.raises(nnlib.InvalidArgumentError):
        nnlib.Model(inputs=x, outputs=[d, d])  # one output
    with pytest.raises(nnlib.InvalidArgumentError):
        nnlib.Input((0, 3))
    with pytest.raises(nnlib.InvalidArgumentError):
        nnlib.Model(x)  # nodes need outputs=
    # a merge of mismatched shapes fails at compile and names the node
    a, b = nnlib.Input((3,), name="a"), nnlib.Input((2,), name="b")
    m = nnlib.Model(inputs=[a, b], outputs=nnlib.add([a, b], name="sum"))
    with pytest.raises(nnlib.ShapeMismatchError) as info:
        m.compile(loss="mse", max_batch=2)
    assert "sum" in info.value.message
    # an input the output does not use is refused at compile
    u, v = nnlib.Input((3,), name="u"), nnlib.Input((3,), name="unused")
    m = nnlib.Model(inputs=[u, v], outputs=nnlib.Dense(1)(u))
    with pytest.raises(nnlib.InvalidArgumentError) as info:
        m.compile(loss="mse", max_batch=2)
    assert "unused" in info.value.message
    # a bad node name fails the build, which leaves nothing half-built
    w = nnlib.Input((3,))
    layer = nnlib.Dense(2)
    out = layer(w, name="not a name")
    with pytest.raises(nnlib.InvalidArgumentError):
        nnlib.Model(inputs=w, outputs=out)
    assert not layer.owned


def test_sequential_models_keep_their_one_array_calls():
    m = nnlib.Model("dense:3,tanh,dense:1")
    m.compile((2,), "mse", "sgd", max_batch=4, seed=1)
    assert m.input_count == 1
    x = np.array([[0, 1], [1, 0]], np.float32)
    t = np.array([[1], [0]], np.float32)
    # one array, or a list of one array: the same call
    np.testing.assert_array_equal(m.predict(x), m.predict([x]))
    g = m.input_gradients(x, t)
    assert g.shape == (2, 2)
    assert m.input_gradients([x], t)[0].shape == (2, 2)
    np.testing.assert_array_equal(m.input_gradients([x], t)[0], g)
