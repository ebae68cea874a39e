"""The transpose layer through the bindings (library 1.6): nnlib.Transpose
against numpy's transpose forward and backward (the input gradient of a
given output gradient is that gradient permuted back), against the same
channels-last network in PyTorch (permute, Linear over the channels,
permute back: loss and every gradient), the class read back from a model,
the description and file round trips, and the errors."""

import numpy as np
import pytest

import nnlib
from conftest import require_torch

torch = require_torch()


def rel_error(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


@pytest.mark.parametrize("shape,perm", [((3, 5), (1, 0)),
                                        ((2, 3, 4), (1, 2, 0)),
                                        ((2, 3, 4), (2, 0, 1)),
                                        ((2, 3, 4, 5), (3, 1, 0, 2))])
def test_forward_and_backward_are_numpy_transposes(shape, perm):
    m = nnlib.Model([nnlib.Transpose(perm)])
    m.compile(shape, None, max_batch=4)
    full = (0,) + tuple(p + 1 for p in perm)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4,) + shape).astype(np.float32)
    y = m.forward(x)
    np.testing.assert_array_equal(y, np.transpose(x, full))
    assert m.output_shape == tuple(shape[p] for p in perm)
    m.set_input_gradients(True)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    (dx,) = m.backward_output(dy)
    np.testing.assert_array_equal(dx, np.transpose(dy, np.argsort(full)))
    m.close()


def test_channels_last_network_matches_torch():
    m = nnlib.Model([nnlib.Transpose((1, 2, 0)), nnlib.Linear(5),
                     nnlib.Transpose((2, 0, 1)), nnlib.Flatten(),
                     nnlib.Dense(3)])
    m.compile((4, 3, 2), "mse", nnlib.SGD(0.1), max_batch=6, seed=5)
    linear = torch.nn.Linear(4, 5)
    dense = torch.nn.Linear(30, 3)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(m.layers[1].weight))
        linear.bias.copy_(torch.from_numpy(m.layers[1].bias))
        dense.weight.copy_(torch.from_numpy(m.layers[4].weight))
        dense.bias.copy_(torch.from_numpy(m.layers[4].bias))
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 4, 3, 2)).astype(np.float32)
    target = rng.standard_normal((6, 3)).astype(np.float32)
    loss = m.backward(x, target)
    xt = torch.from_numpy(x)
    z = linear(xt.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    want = torch.nn.functional.mse_loss(dense(z.flatten(1)),
                                        torch.from_numpy(target))
    want.backward()
    assert abs(loss - want.item()) <= 1e-5 * abs(want.item())
    errors = {
        "linear.weight": rel_error(m.layers[1].get_grad(0), linear.weight.grad),
        "linear.bias": rel_error(m.layers[1].get_grad(1), linear.bias.grad),
        "dense.weight": rel_error(m.layers[4].get_grad(0), dense.weight.grad),
        "dense.bias": rel_error(m.layers[4].get_grad(1), dense.bias.grad),
    }
    assert max(errors.values()) < 1e-5, errors
    m.close()


def test_read_back_description_and_file():
    m = nnlib.Model([nnlib.Transpose([2, 0, 1]), nnlib.Flatten(),
                     nnlib.Dense(2)])
    m.compile((2, 3, 4), "mse", max_batch=2)
    assert m.spec == "transpose:2x0x1,flatten,dense:2"
    layer = m.layers[0]
    assert type(layer).__name__ == "Transpose"
    assert layer.kind == nnlib.LayerKind.TRANSPOSE == 22
    assert layer.name == "transpose"
    assert layer.output_shape == (4, 2, 3)
    again = nnlib.Model.from_bytes(m.to_bytes())
    assert again.spec == m.spec
    x = np.arange(48, dtype=np.float32).reshape(2, 2, 3, 4)
    np.testing.assert_array_equal(again.predict(x), m.predict(x))
    again.close()
    m.close()


def test_errors():
    with pytest.raises(nnlib.InvalidArgumentError, match=r"perm\[1\] is 1 "
                       r"again"):
        nnlib.Transpose((1, 1))
    with pytest.raises(nnlib.InvalidArgumentError, match=r"perm\[0\] is 2, "
                       r"outside 0 .. 1"):
        nnlib.Transpose((2, 0))
    with pytest.raises(nnlib.InvalidArgumentError, match="rank 0"):
        nnlib.Transpose(())
    with pytest.raises(nnlib.InvalidArgumentError, match="rank 8"):
        nnlib.Transpose(range(8))
    bad = nnlib.Model([nnlib.Transpose((1, 0))])
    with pytest.raises(nnlib.ShapeMismatchError, match=r"layer 0 "
                       r"\(transpose\).*input is \[2, 3, 4\], of rank 3"):
        bad.compile((2, 3, 4), None)
    bad.close()
