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
