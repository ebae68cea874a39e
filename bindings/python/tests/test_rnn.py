"""The recurrent layers through the bindings: RNN, LSTM and GRU against
torch.nn.RNN / LSTM / GRU on the same weights (loss, every gradient, one
SGD step), with an initial state; classes read back from a model; the
description with "last"; the sequence-length and feature errors."""


import numpy as np
import pytest

import nnlib
from conftest import require_torch

torch = require_torch()

TOLERANCE = 1e-4
N, T, F, H, CLASSES = 4, 6, 3, 5, 3


def rel_error(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def torch_cell(kind):
    if kind == "rnn_relu":
        return torch.nn.RNN(F, H, nonlinearity="relu", batch_first=True)
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
    return cls[kind](F, H, batch_first=True)


def nnlib_cell(kind):
    if kind == "rnn_relu":
        return nnlib.RNN(H, "relu", return_sequences=False)
    cls = {"rnn": nnlib.RNN, "lstm": nnlib.LSTM, "gru": nnlib.GRU}
    return cls[kind](H, return_sequences=False)


def nets(kind):
    """recurrent (last step) -> dense on both sides, same weights."""
    m = nnlib.Model([nnlib_cell(kind), nnlib.Dense(CLASSES)])
    m.compile((T, F), "softmax_ce", nnlib.SGD(0.1), max_batch=N, seed=5)
    cell, head = torch_cell(kind), torch.nn.Linear(H, CLASSES)
    with torch.no_grad():
        for name in m.layers[0].param_names:
            getattr(cell, name + "_l0").copy_(
                torch.from_numpy(m.layers[0].get_param(name)))
        for name in ("weight", "bias"):
            getattr(head, name).copy_(
                torch.from_numpy(m.layers[1].get_param(name)))
    return m, cell, head


def torch_loss(kind, cell, head, x, t, state):
    out, _ = cell(torch.from_numpy(x), *state)
    logits = head(out[:, -1, :])
    return torch.nn.functional.cross_entropy(logits,
                                             torch.from_numpy(t).long())


@pytest.mark.parametrize("kind", ["rnn", "rnn_relu", "lstm", "gru"])
def test_matches_torch(kind):
    m, cell, head = nets(kind)
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (N, T, F)).astype(np.float32)
    t = rng.integers(0, CLASSES, N).astype(np.float32)
    h0 = rng.uniform(-0.5, 0.5, (N, H)).astype(np.float32)
    c0 = rng.uniform(-0.5, 0.5, (N, H)).astype(np.float32)
    state = ()
    if kind == "lstm":
        m.layers[0].set_initial_state(h0, c0)
        state = ((torch.from_numpy(h0)[None], torch.from_numpy(c0)[None]),)
    elif kind == "gru":
        m.layers[0].set_initial_state(h0[0])  # one row: every sample
        state = (torch.from_numpy(np.tile(h0[0], (N, 1)))[None],)
    loss = m.backward(x, t)
    t_loss = torch_loss(kind, cell, head, x, t, state)
    t_loss.backward()
    errors = {"loss": rel_error(loss, t_loss.item())}
    for name in m.layers[0].param_names:
        errors[name] = rel_error(m.layers[0].get_grad(name),
                                 getattr(cell, name + "_l0").grad.numpy())
    assert max(errors.values()) < TOLERANCE, errors
    m.step(x, t)
    opt = torch.optim.SGD(list(cell.parameters()) + list(head.parameters()),
                          lr=0.1)
    opt.zero_grad()
    torch_loss(kind, cell, head, x, t, state).backward()
    opt.step()
    after = rel_error(m.layers[0].get_param("weight_hh"),
                      cell.weight_hh_l0.detach().numpy())
    assert after < TOLERANCE
    m.close()


def test_description_classes_and_state():
    m = nnlib.Model.from_spec("gru:6,lstm:4,last,dense:2")
    assert [type(layer).__name__ for layer in m.layers] == [
        "GRU", "LSTM", "Dense"]
    m.compile((T, F), "mse", max_batch=N)
    assert m.spec == "gru:6,lstm:4,last,dense:2"
    assert m.layers[0].output_shape == (T, 6)
    assert m.layers[1].output_shape == (4,)
    assert m.layers[1].param_names == ["weight_ih", "weight_hh", "bias_ih",
                                       "bias_hh"]
    assert m.layers[1].get_param("weight_ih").shape == (16, 6)
    x = np.linspace(-1, 1, N * T * F, dtype=np.float32).reshape(N, T, F)
    plain = m.predict(x)
    lstm = m.layers[1]  # read back: its size comes from weight_hh
    lstm.set_initial_state(np.full(4, 0.5), np.full(4, -0.5))
    assert not np.array_equal(m.predict(x), plain)
    lstm.set_initial_state()
    np.testing.assert_array_equal(m.predict(x), plain)
    with pytest.raises(nnlib.ShapeMismatchError):
        lstm.set_initial_state(np.zeros(3))
    with pytest.raises(nnlib.InvalidArgumentError, match="only lstm"):
        m.layers[0].set_initial_state(np.zeros(6), np.zeros(6))
    again = nnlib.Model.from_bytes(m.to_bytes())
    np.testing.assert_array_equal(again.predict(x), plain)
    again.close()
    m.close()


def test_sequence_errors():
    m = nnlib.Model([nnlib.LSTM(H, input_size=F)])
    m.compile((T, F), "mse", max_batch=N)
    with pytest.raises(nnlib.TooLargeError,
                       match="sequence length 7 above the compiled maximum 6"):
        m.predict(np.zeros((2, T + 1, F), np.float32))
    with pytest.raises(nnlib.ShapeMismatchError,
                       match="input has 4 features per step, layer "
                             "expects 3"):
        m.predict(np.zeros((2, T, F + 1), np.float32))
    m.close()
    bad = nnlib.Model([nnlib.GRU(H, input_size=F + 1)])
    with pytest.raises(nnlib.ShapeMismatchError, match="features per step"):
        bad.compile((T, F), "mse")
    bad.close()
    with pytest.raises(nnlib.InvalidArgumentError, match="nonlinearity"):
        nnlib.RNN(3, nonlinearity=nnlib.ActivationKind.SIGMOID)
