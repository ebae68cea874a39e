"""ONNX through the Python bindings: Model.to_onnx and Model.from_onnx.

A model exported and imported again predicts exactly as before (an MLP and
a CNN, as bytes and through files); a PyTorch MLP exported by
torch.onnx.export (opset 17) predicts as PyTorch does within 1e-5; bytes
that are not ONNX fail with the library's status; an import with a loss
and an optimizer trains; `output` picks one output of a graph of two (each
as PyTorch computes it), and no choice or a name that is no output fails
with the library's status; `whole_sample` imports a fixed-shape export
whose bias varies along axis 0 as one sample, predicting as PyTorch.
"""

import io
import pathlib

import numpy as np
import pytest

import nnlib
from conftest import require_torch

TOLERANCE = 1e-5


def rel_error(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def mlp():
    m = nnlib.Model([nnlib.Dense(16), nnlib.Tanh(), nnlib.Dense(8),
                     nnlib.ReLU(), nnlib.Dense(3)])
    m.compile((6,), max_batch=8, seed=3)
    return m


def cnn():
    m = nnlib.Model.from_spec(
        "conv:4x3x3:p1,batchnorm,relu,maxpool:2,conv:6x3x3,relu,flatten,"
        "dense:5")
    m.compile((2, 8, 8), max_batch=8, seed=4)
    # batchnorm's running statistics away from 0 and 1, so that the
    # exported mean and variance matter
    bn = m.layers[1]
    rng = np.random.default_rng(9)
    bn.set_buffer("running_mean", rng.uniform(-0.5, 0.5, 4))
    bn.set_buffer("running_var", rng.uniform(0.5, 2.0, 4))
    bn.weight = rng.uniform(0.5, 1.5, 4)
    bn.bias = rng.uniform(-0.2, 0.2, 4)
    return m


def inputs(shape, seed=1):
    return np.random.default_rng(seed).standard_normal(
        (5,) + shape).astype(np.float32)


@pytest.mark.parametrize("make, shape", [(mlp, (6,)), (cnn, (2, 8, 8))],
                         ids=["mlp", "cnn"])
def test_round_trip_through_bytes_predicts_the_same(make, shape):
    x = inputs(shape)
    with make() as m:
        expected = m.predict(x)
        data = m.to_onnx()
    assert isinstance(data, bytes) and data[:2] == b"\x08\x08"  # ir_version 8
    for source in (data, bytearray(data), memoryview(data)):
        with nnlib.Model.from_onnx(source) as back:
            assert back.loss == nnlib.Loss.NONE
            assert back.max_batch == 64
            assert back.input_shape == shape
            np.testing.assert_array_equal(back.predict(x), expected)


def test_round_trip_through_files(tmp_path):
    x = inputs((2, 8, 8), seed=2)
    with cnn() as m:
        expected = m.predict(x)
        path = tmp_path / "cnn.onnx"
        assert m.to_onnx(path) is None
        assert path.read_bytes() == m.to_onnx()
    for source in (path, str(path)):
        with nnlib.Model.from_onnx(source, max_batch=5) as back:
            assert back.max_batch == 5
            np.testing.assert_array_equal(back.predict(x), expected)


def test_torch_export_imports_and_predicts_like_torch():
    torch = require_torch()
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(7, 12), torch.nn.ReLU(),
                              torch.nn.Linear(12, 9), torch.nn.Tanh(),
                              torch.nn.Linear(9, 4)).eval()
    buffer = io.BytesIO()
    torch.onnx.export(net, torch.zeros(2, 7), buffer, opset_version=17,
                      input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    x = np.random.default_rng(4).standard_normal((11, 7)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    with nnlib.Model.from_onnx(buffer.getvalue(), max_batch=16) as m:
        assert m.input_shape == (7,)
        assert m.output_shape == (4,)
        assert [layer.name for layer in m.layers] == [
            "dense", "relu", "dense", "tanh", "dense"]
        got = m.predict(x)
    assert got.shape == expected.shape
    assert rel_error(got, expected) < TOLERANCE


def two_outputs(torch):
    """A PyTorch export whose graph has two outputs, y = relu(h) and
    s = sigmoid(h) of one linear layer h, with x and both of PyTorch's
    outputs."""
    torch.manual_seed(5)
    linear = torch.nn.Linear(5, 4).eval()

    class Two(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = linear

        def forward(self, x):
            h = self.linear(x)
            return torch.relu(h), torch.sigmoid(h)

    buffer = io.BytesIO()
    torch.onnx.export(Two().eval(), torch.zeros(2, 5), buffer,
                      opset_version=17, input_names=["x"],
                      output_names=["y", "s"],
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"},
                                    "s": {0: "N"}})
    x = np.random.default_rng(6).standard_normal((7, 5)).astype(np.float32)
    with torch.no_grad():
        h = linear(torch.from_numpy(x))
    return buffer.getvalue(), x, torch.relu(h).numpy(), \
        torch.sigmoid(h).numpy()


def test_output_picks_one_of_several_graph_outputs():
    torch = require_torch()
    data, x, y, s = two_outputs(torch)
    for name, expected, last in (("y", y, "relu"), ("s", s, "sigmoid")):
        with nnlib.Model.from_onnx(data, output=name) as m:
            assert [layer.name for layer in m.layers] == ["dense", last]
            assert rel_error(m.predict(x), expected) < TOLERANCE
    with pytest.raises(nnlib.UnsupportedError) as e:
        nnlib.Model.from_onnx(data)
    assert "the graph has 2 outputs ('y', 's')" in str(e.value)
    with pytest.raises(nnlib.InvalidArgumentError) as e:
        nnlib.Model.from_onnx(data, output="z")
    assert "output 'z' is not an output of the graph" in str(e.value)


def test_whole_sample_reads_a_fixed_input_as_one_sample():
    torch = require_torch()
    torch.manual_seed(8)

    class RowBias(torch.nn.Module):
        """linear(x) + P with P [3, 2]: a bias per row of x [3, 4]."""

        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 2)
            self.rows = torch.nn.Parameter(torch.randn(3, 2))

        def forward(self, x):
            return torch.tanh(self.linear(x) + self.rows)

    model = RowBias().eval()
    buffer = io.BytesIO()
    torch.onnx.export(model, torch.zeros(3, 4), buffer, opset_version=17,
                      input_names=["x"], output_names=["y"])
    x = np.random.default_rng(3).standard_normal((3, 4)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    with nnlib.Model.from_onnx(buffer.getvalue(), max_batch=1,
                               whole_sample=True) as m:
        assert m.input_shape == (3, 4)
        assert m.output_shape == (3, 2)
        assert [layer.name for layer in m.layers] == [
            "linear", "positional", "tanh"]
        got = m.predict(x[np.newaxis])
    assert got.shape == (1, 3, 2)
    assert rel_error(got[0], expected) < TOLERANCE
    with pytest.raises(nnlib.UnsupportedError) as e:
        nnlib.Model.from_onnx(buffer.getvalue())
    assert "a constant added to a graph tensor" in str(e.value)


def test_garbage_bytes_fail_with_the_library_status():
    with pytest.raises(nnlib.CorruptFileError) as e:
        nnlib.Model.from_onnx(b"\x0a\xff\x01 these are not an ONNX model")
    assert e.value.code == nnlib.Status.CORRUPT_FILE
    assert "ONNX" in str(e.value)
    with mlp() as m:
        data = m.to_onnx()
    with pytest.raises(nnlib.CorruptFileError):
        nnlib.Model.from_onnx(data[:len(data) // 2])
    with pytest.raises(nnlib.IOError_) as e:
        nnlib.Model.from_onnx(pathlib.Path("/nonexistent/model.onnx"))
    assert e.value.code == nnlib.Status.IO


def test_optimizer_is_consumed_by_a_failed_import():
    opt = nnlib.SGD(0.1)
    with pytest.raises(nnlib.CorruptFileError):
        nnlib.Model.from_onnx(b"\x0a\xff\x01", loss="mse", optimizer=opt)
    with pytest.raises(nnlib.WrongStateError):
        opt.learning_rate


def test_fine_tuning_an_import_changes_the_loss():
    x = inputs((6,), seed=5)
    target = np.eye(3, dtype=np.float32)[[0, 1, 2, 1, 0]]
    with mlp() as m:
        data = m.to_onnx()
    opt = nnlib.Adam(0.01)
    with nnlib.Model.from_onnx(data, max_batch=8, loss="softmax_ce",
                               optimizer=opt, seed=2) as m:
        assert m.loss == nnlib.Loss.SOFTMAX_CE
        assert m.optimizer.step_count == 0
        before = m.predict(x)
        first = m.step(x, target)
        assert m.optimizer.step_count == 1
        assert opt.step_count == 1  # the Optimizer passed in is the model's
        second, _ = m.evaluate(x, target)
        assert np.isfinite(first) and second < first
        assert not np.array_equal(m.predict(x), before)
    # without an optimizer a loss gets plain SGD
    with nnlib.Model.from_onnx(data, loss="softmax_ce") as m:
        assert m.optimizer.learning_rate == pytest.approx(0.01)
        first = m.step(x, target)
        assert m.evaluate(x, target)[0] < first
