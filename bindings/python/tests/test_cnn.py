"""The convolutional layers through the bindings: a small CNN built from
the layer classes against the same net in PyTorch (same weights): training
loss, every gradient, one SGD step and the running statistics, then the
inference output on the updated running statistics; layer classes read
back from a model; buffers; the description round trip."""


import numpy as np
import pytest

import nnlib
from conftest import require_torch

torch = require_torch()

TOLERANCE = 1e-4
N = 5


def rel_error(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def nets():
    m = nnlib.Model([
        nnlib.Conv2d(4, 3, padding=1, bias=False), nnlib.BatchNorm(),
        nnlib.ReLU(),
        nnlib.MaxPool2d(2), nnlib.Conv2d(3, (3, 2), stride=(1, 2),
                                         bias=False),
        nnlib.AvgPool2d(2, stride=1), nnlib.Flatten(), nnlib.Dense(5)])
    m.compile((2, 8, 10), "softmax_ce", nnlib.SGD(0.1), max_batch=N, seed=3)
    net = torch.nn.Sequential(
        # no bias before batchnorm: its gradient is zero up to rounding
        torch.nn.Conv2d(2, 4, 3, padding=1, bias=False),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 3, (3, 2), stride=(1, 2), bias=False),
        torch.nn.AvgPool2d(2, stride=1), torch.nn.Flatten(),
        torch.nn.Linear(3, 5))
    rng = np.random.default_rng(7)
    pairs = [(0, 0), (1, 1), (4, 4), (7, 7)]
    with torch.no_grad():
        for i, j in pairs:
            layer = m.layers[i]
            for name in layer.param_names:
                v = rng.uniform(-0.5, 0.5, layer.get_param(name).shape)
                if i == 1 and name == "weight":
                    v = v + 1.0
                layer.set_param(name, v)
                getattr(net[j], name).copy_(torch.from_numpy(
                    layer.get_param(name)))
    return m, net


def test_cnn_matches_torch():
    m, net = nets()
    rng = np.random.default_rng(11)
    x = rng.standard_normal((N, 2, 8, 10)).astype(np.float32)
    t = rng.integers(0, 5, N).astype(np.float32)
    loss = m.backward(x, t)
    out = net(torch.from_numpy(x))
    t_loss = torch.nn.functional.cross_entropy(out, torch.from_numpy(t).long())
    net.zero_grad()
    t_loss.backward()
    errors = {"loss": rel_error(loss, t_loss.item())}
    for i, j in [(0, 0), (1, 1), (4, 4), (7, 7)]:
        for name in m.layers[i].param_names:
            errors["grad %d.%s" % (i, name)] = rel_error(
                m.layers[i].get_grad(name),
                getattr(net[j], name).grad.numpy())
    assert max(errors.values()) < TOLERANCE, errors

    # one step each; backward above moved the running statistics once, as
    # torch's forward did, and the step moves them again on both sides
    m.step(x, t)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    opt.zero_grad()
    torch.nn.functional.cross_entropy(
        net(torch.from_numpy(x)), torch.from_numpy(t).long()).backward()
    opt.step()
    bn = m.layers[1]
    assert bn.buffer_names == ["running_mean", "running_var"]
    errors = {
        "running_mean": rel_error(bn.get_buffer("running_mean"),
                                  net[1].running_mean.numpy()),
        "running_var": rel_error(bn.get_buffer("running_var"),
                                 net[1].running_var.numpy()),
        "conv weight after": rel_error(m.layers[0].weight,
                                       net[0].weight.detach().numpy()),
    }
    net.eval()
    errors["inference"] = rel_error(m.predict(x),
                                    net(torch.from_numpy(x)).detach().numpy())
    assert max(errors.values()) < TOLERANCE, errors
    m.close()


def test_layer_classes_and_description():
    m, _ = nets()
    kinds = [type(layer).__name__ for layer in m.layers]
    assert kinds == ["Conv2d", "BatchNorm", "Activation", "MaxPool2d",
                     "Conv2d", "AvgPool2d", "Flatten", "Dense"]
    assert m.spec == ("conv:4x3x3:p1:nobias,batchnorm,relu,maxpool:2,"
                      "conv:3x3x2:s1x2:nobias,avgpool:2:s1,flatten,dense:5")
    assert m.layers[4].output_shape == (3, 2, 2)
    again = nnlib.Model.from_bytes(m.to_bytes())
    assert again.spec == m.spec
    np.testing.assert_array_equal(again.layers[1].get_buffer(1),
                                  m.layers[1].get_buffer(1))
    x = np.ones((2, 2, 8, 10), np.float32)
    np.testing.assert_array_equal(again.predict(x), m.predict(x))
    with pytest.raises(nnlib.OutOfRangeError):
        m.layers[1].get_buffer("nope")
    with pytest.raises(nnlib.ShapeMismatchError):
        m.layers[1].set_buffer(0, np.zeros(3))
    m.layers[1].set_buffer("running_var", np.full(4, 2.0))
    assert m.layers[1].get_buffer(1).tolist() == [2.0] * 4
    again.close()
    m.close()


def test_other_layers_and_errors():
    m = nnlib.Model([nnlib.Conv2d(2, 3), nnlib.MinPool2d(2, padding=1),
                     nnlib.GlobalAvgPool(), nnlib.Dropout(0.25),
                     nnlib.Dense(2)])
    m.compile((1, 6, 6), "mse", nnlib.SGD(0.01), max_batch=4)
    assert m.output_shape == (2,)
    assert m.layers[2].output_shape == (2,)
    assert m.spec == ("conv:2x3x3,minpool:2:p1,global_avgpool,dropout:0.25,"
                      "dense:2")
    err = m.gradcheck(np.linspace(-1, 1, 4 * 36, dtype=np.float32)
                      .reshape(4, 1, 6, 6), np.zeros((4, 2), np.float32))
    assert err < 1e-2
    m.close()
    bad = nnlib.Model([nnlib.Conv2d(2, 7)])
    with pytest.raises(nnlib.ShapeMismatchError, match="larger than the "
                       "padded input"):
        bad.compile((1, 6, 6), "mse")
    bad.close()
    with pytest.raises(nnlib.InvalidArgumentError, match="stride"):
        nnlib.Conv2d(2, 3, stride=0)
    with pytest.raises(nnlib.InvalidArgumentError, match="rate"):
        nnlib.Dropout(1.0)


def test_pool_options_match_torch():
    """ceil_mode, dilation, count_include_pad=False and padding per side
    (library 1.5) against torch's pools on the same input."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 2, 9, 10)).astype(np.float32)
    tx = torch.from_numpy(x)
    F = torch.nn.functional
    cases = [
        (nnlib.MaxPool2d(3, 2, padding=1, dilation=2, ceil_mode=True),
         "maxpool:3:s2:p1:d2:ceil",
         F.max_pool2d(tx, 3, 2, 1, dilation=2, ceil_mode=True)),
        (nnlib.MinPool2d((2, 3), (1, 2), dilation=(2, 1)),
         "minpool:2x3:s1x2:d2x1",
         -F.max_pool2d(-tx, (2, 3), (1, 2), dilation=(2, 1))),
        (nnlib.AvgPool2d(3, 2, padding=1, ceil_mode=True,
                         count_include_pad=False),
         "avgpool:3:s2:p1:ceil:exclude_pad",
         F.avg_pool2d(tx, 3, 2, 1, ceil_mode=True, count_include_pad=False)),
        # (top, left, bottom, right): F.pad takes left, right, top, bottom
        (nnlib.MaxPool2d(3, 2, padding=(0, 1, 2, 0)),
         "maxpool:3:s2:p0x1x2x0",
         F.max_pool2d(F.pad(tx, (1, 0, 0, 2), value=float("-inf")), 3, 2)),
    ]
    for layer, spec, want in cases:
        m = nnlib.Model([layer])
        m.compile((2, 9, 10), max_batch=3)
        assert m.spec == spec
        got = m.predict(x)
        assert got.shape == tuple(want.shape)
        assert rel_error(got, want.numpy()) < 1e-6, spec
        m.close()
    with pytest.raises(nnlib.InvalidArgumentError, match="padding 3x3, must "
                       "be in 0..2x2"):
        nnlib.AvgPool2d(3, padding=3)
