"""numpy round trips: zero-copy inputs, conversions, parameters, tensors."""

import gc

import numpy as np
import pytest

import nnlib
from conftest import xor_model

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)


def test_float32_contiguous_input_is_wrapped_without_copy():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert nnlib.is_zero_copy(a)
    with nnlib.Tensor.wrap(a) as t:
        assert t.shape == (2, 3)
        view = t.numpy()
        assert np.shares_memory(view, a)
        a[1, 2] = 42.0  # the tensor sees the caller's memory
        assert view[1, 2] == 42.0
        t.fill(1.5)     # and nnlib writes into it
    assert np.all(a == 1.5)


def unaligned(values, dtype=np.float32):
    """A C-contiguous array of `values` one byte past an aligned address
    (numpy allocates its buffers aligned), so flags.aligned is False."""
    values = np.asarray(values, dtype)
    raw = np.zeros(values.nbytes + 1, np.uint8)
    a = np.frombuffer(raw, dtype, values.size, offset=1).reshape(values.shape)
    a.setflags(write=True)
    a[...] = values
    assert a.ctypes.data % 4 == 1 and not a.flags.aligned
    assert a.flags.c_contiguous
    return a


def c_address(tensor):
    """The element address the library gives for `tensor`
    (nnlib_tensor_get_data, or _int32 for an int32 tensor)."""
    import ctypes
    from nnlib._core import lib
    get = (lib.nnlib_tensor_get_data_int32 if tensor.dtype == np.int32
           else lib.nnlib_tensor_get_data)
    return ctypes.cast(get(tensor._ptr()), ctypes.c_void_p).value


@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_unaligned_array_is_copied_to_aligned_memory(dtype):
    values = np.arange(1, 7).reshape(2, 3)
    a = unaligned(values, dtype)
    assert not nnlib.is_zero_copy(a)
    with nnlib.Tensor.wrap(a, dtype) as t:
        address = c_address(t)
        assert address % 4 == 0
        assert address != a.ctypes.data
        np.testing.assert_array_equal(t.numpy(), values.astype(dtype))
        t.fill(9)  # a copy: the caller's unaligned array is not written
    np.testing.assert_array_equal(a, values.astype(dtype))


def test_unaligned_inputs_predict_and_train_as_aligned_ones():
    x = X[:3]
    with xor_model() as m:
        expected = m.predict(x)
        np.testing.assert_array_equal(m.predict(unaligned(x)), expected)
        with m.workspace() as ws:
            np.testing.assert_array_equal(ws.predict(unaligned(x)), expected)
        y = np.array([[0], [1], [1]], np.float32)
        assert m.evaluate(unaligned(x), unaligned(y)) == m.evaluate(x, y)


def test_unaligned_out_is_refused():
    with xor_model() as m:
        out = unaligned(np.zeros((4, 1)))
        with pytest.raises(nnlib.InvalidArgumentError) as info:
            m.predict(X, out=out)
        assert "aligned" in str(info.value)
        np.testing.assert_array_equal(out, np.zeros((4, 1)))
        with m.workspace() as ws, pytest.raises(nnlib.InvalidArgumentError):
            ws.predict(X, out=out)
        aligned = np.empty((4, 1), np.float32)
        assert m.predict(X, out=aligned) is aligned
        np.testing.assert_array_equal(aligned, m.predict(X))


def test_unaligned_initial_state_is_copied():
    with nnlib.Model([nnlib.RNN(3, return_sequences=False)]) as m:
        m.compile((2, 1), max_batch=1, seed=1)
        x = np.zeros((1, 2, 1), np.float32)
        h0 = np.array([0.5, -0.5, 0.25], np.float32)
        m.layers[0].set_initial_state(h0)
        expected = m.predict(x)
        m.layers[0].set_initial_state()
        m.layers[0].set_initial_state(unaligned(h0))
        np.testing.assert_array_equal(m.predict(x), expected)


@pytest.mark.parametrize("make", [
    lambda: np.arange(6, dtype=np.float64).reshape(2, 3),
    lambda: np.arange(6, dtype=np.int32).reshape(2, 3),
    lambda: np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)),
    lambda: np.arange(12, dtype=np.float32).reshape(2, 6)[:, ::2],
    lambda: [[0, 1, 2], [3, 4, 5]],
])
def test_other_inputs_are_converted_once(make):
    a = make()
    with nnlib.Tensor.wrap(a) as t:
        np.testing.assert_array_equal(t.numpy(), np.asarray(a, np.float32))
        assert not nnlib.is_zero_copy(a)


def test_predict_accepts_any_dtype_and_layout_with_same_result():
    with xor_model() as m:
        ref = m.predict(X)
        np.testing.assert_array_equal(m.predict(X.astype(np.float64)), ref)
        np.testing.assert_array_equal(m.predict(np.asfortranarray(X)), ref)
        np.testing.assert_array_equal(m.predict(X.tolist()), ref)
        out = np.zeros((4, 1), np.float32)
        assert m.predict(X, out=out) is out
        np.testing.assert_array_equal(out, ref)


def test_owned_tensor_round_trip_and_views_keep_it_alive():
    t = nnlib.Tensor((3, 4))
    assert t.size == 12 and t.shape == (3, 4)
    np.testing.assert_array_equal(t.numpy(), np.zeros((3, 4), np.float32))
    src = np.arange(12, dtype=np.float32)
    t.copy_from(src)
    t.set_shape((4, 3))
    view = t.numpy()
    np.testing.assert_array_equal(view, src.reshape(4, 3))
    copy = t.numpy(copy=True)
    del t
    gc.collect()
    view[0, 0] = 7.0  # still valid: the view holds the tensor
    assert copy[0, 0] == 0.0
    with pytest.raises(nnlib.ShapeMismatchError):
        nnlib.Tensor((2, 2)).copy_from(np.zeros(5, np.float32))


def test_parameters_read_write_round_trip():
    with xor_model() as m:
        dense = m.layers[0]
        assert dense.param_names == ["weight", "bias"]
        w = dense.weight
        assert w.shape == (4, 2) and w.dtype == np.float32
        assert np.all(dense.bias == 0)
        new_w = np.arange(8, dtype=np.float64).reshape(4, 2) / 10
        dense.weight = new_w
        np.testing.assert_array_equal(dense.weight, new_w.astype(np.float32))
        dense.bias = [1, 2, 3, 4]
        np.testing.assert_array_equal(dense.get_param(1), [1, 2, 3, 4])
        w[...] = 0  # a copy: the model is unchanged
        np.testing.assert_array_equal(dense.weight, new_w.astype(np.float32))
        with pytest.raises(nnlib.ShapeMismatchError):
            dense.weight = np.zeros((2, 4))
        with pytest.raises(nnlib.OutOfRangeError):
            dense.get_param("gamma")


def test_param_view_writes_change_the_model():
    with xor_model() as m:
        before = m.predict(X)
        view = m.layers[2].param_view("weight")
        assert view.shape == (1, 4)
        view[...] = 0.0
        m.layers[2].param_view("bias")[...] = 3.0
        after = m.predict(X)
        expected = 1 / (1 + np.exp(-3.0))
        np.testing.assert_allclose(after, np.full((4, 1), expected), rtol=1e-6)
        assert not np.allclose(before, after)


def test_get_and_set_weights_move_a_model():
    T = np.array([[0], [1], [1], [0]], np.float32)
    with xor_model(seed=7) as a, xor_model(seed=99) as b:
        for _ in range(300):
            a.step(X, T)
        b.set_weights(a.get_weights())
        np.testing.assert_array_equal(a.predict(X), b.predict(X))
        with pytest.raises(nnlib.ShapeMismatchError):
            b.set_weights(a.get_weights()[:2])


def test_gradients_after_backward():
    T = np.array([[0], [1], [1], [0]], np.float32)
    with xor_model() as m:
        loss = m.backward(X, T)
        assert loss > 0
        g = m.layers[0].get_grad("weight")
        assert g.shape == (4, 2) and np.any(g != 0)
        before = m.layers[0].weight
        m.optimizer_step()
        np.testing.assert_allclose(m.layers[0].weight, before - 0.5 * g,
                                   rtol=1e-6, atol=1e-7)


def test_forward_copies_the_training_output():
    with xor_model() as m:
        y = m.forward(X)
        np.testing.assert_array_equal(y, m.predict(X))
        y[...] = 9  # a copy
        assert np.all(m.predict(X) < 1)


def test_shapes_and_counts():
    with xor_model() as m:
        assert m.input_shape == (2,)
        assert m.output_shape == (1,)
        assert m.param_count == 4 * 2 + 4 + 4 + 1
        assert m.max_batch == 4
        assert m.loss == nnlib.Loss.MSE
        assert [l.output_shape for l in m.layers] == [(4,), (4,), (1,), (1,)]
        assert [l.kind for l in m.layers] == [nnlib.LayerKind.DENSE,
                                              nnlib.LayerKind.ACTIVATION] * 2
        assert [l.name for l in m.layers] == ["dense", "sigmoid"] * 2
        assert m.optimizer.learning_rate == 0.5
        m.optimizer.learning_rate = 0.25
        assert m.optimizer.learning_rate == 0.25
        assert m.predict(np.zeros((9, 2))).shape == (9, 1)  # > max_batch


def test_gradcheck_is_small():
    T = np.array([[0], [1], [1], [0]], np.float32)
    with xor_model() as m:
        assert m.gradcheck(X, T) < 1e-2
