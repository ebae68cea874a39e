"""Shorter sequences than compiled (library 1.2): a model compiled for
input (T, F) whose recurrent layers come first and end in one returning its
last step takes batches [N, T', F] with 1 <= T' <= T. Checked against
PyTorch (torch.nn.RNN / LSTM / GRU + Linear, same weights, run on the same
T'-step sequences): predict at T' = 3 and 1, evaluate's MSE at T' = 3, one
SGD step at T' = 3; fit on T' = 4 with validation at T' = 2; and the
statuses of the models and batches that must be refused."""


import numpy as np
import pytest

import nnlib
from conftest import require_torch

torch = require_torch()

TOLERANCE = 1e-5  # absolute, on outputs, losses and parameters
N, T, F, H, K = 5, 7, 3, 6, 4
KINDS = ["rnn", "lstm", "gru"]
worst = {}


def record(name, diff):
    worst[name] = max(worst.get(name, 0.0), diff)
    return diff


def max_diff(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b)))


def sequences(n, steps, seed):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n, steps, F)).astype(np.float32)


def targets(n, seed):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n, K)).astype(np.float32)


def nets(kind, lr=0.1):
    """`kind:H,last,dense:K` compiled for (T, F), and the same network in
    PyTorch (batch_first recurrent layer, its last step, Linear)."""
    m = nnlib.Model.from_spec("%s:%d,last,dense:%d" % (kind, H, K))
    m.compile((T, F), "mse", nnlib.SGD(lr), max_batch=8, seed=13)
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
    cell, head = cls[kind](F, H, batch_first=True), torch.nn.Linear(H, K)
    rnn, dense = m.layers
    with torch.no_grad():
        for name in rnn.param_names:
            getattr(cell, name + "_l0").copy_(
                torch.from_numpy(rnn.get_param(name)))
        # non-zero head bias, so that its update is exercised too
        dense.bias = np.linspace(-0.2, 0.2, K, dtype=np.float32)
        head.weight.copy_(torch.from_numpy(dense.get_param("weight")))
        head.bias.copy_(torch.from_numpy(dense.get_param("bias")))
    return m, cell, head


def torch_out(cell, head, x):
    out, _ = cell(torch.from_numpy(x))
    return head(out[:, -1, :])


@pytest.mark.parametrize("kind", KINDS)
def test_predict_at_shorter_lengths_matches_torch(kind):
    m, cell, head = nets(kind)
    full = m.predict(sequences(N, T, 1))  # the compiled length still works
    with torch.no_grad():
        ref = torch_out(cell, head, sequences(N, T, 1)).numpy()
    assert record("predict T'=7", max_diff(full, ref)) < TOLERANCE
    for steps in (3, 1):
        x = sequences(N, steps, 2 + steps)
        y = m.predict(x)
        assert y.shape == (N, K)
        with torch.no_grad():
            ref = torch_out(cell, head, x).numpy()
        assert record("predict T'=%d" % steps,
                      max_diff(y, ref)) < TOLERANCE, (kind, steps)
        # the per-thread workspace and the training-mode forward agree
        with m.workspace() as ws:
            np.testing.assert_array_equal(ws.predict(x), y)
        assert max_diff(m.forward(x), ref) < TOLERANCE
    m.close()


@pytest.mark.parametrize("kind", KINDS)
def test_evaluate_at_three_steps_matches_torch_mse(kind):
    m, cell, head = nets(kind)
    x, t = sequences(N, 3, 20), targets(N, 21)
    loss, _ = m.evaluate(x, t)
    with torch.no_grad():
        ref = torch.nn.functional.mse_loss(torch_out(cell, head, x),
                                           torch.from_numpy(t)).item()
    assert record("evaluate loss T'=3", abs(loss - ref)) < TOLERANCE, (
        kind, loss, ref)
    m.close()


@pytest.mark.parametrize("kind", KINDS)
def test_one_sgd_step_at_three_steps_matches_torch(kind):
    m, cell, head = nets(kind, lr=0.1)
    x, t = sequences(N, 3, 30), targets(N, 31)
    params = list(cell.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=0.1)
    # gradients before the update
    loss = m.backward(x, t)
    t_loss = torch.nn.functional.mse_loss(torch_out(cell, head, x),
                                          torch.from_numpy(t))
    t_loss.backward()
    assert record("backward loss T'=3",
                  abs(loss - t_loss.item())) < TOLERANCE
    rnn, dense = m.layers
    for name in rnn.param_names:
        assert record("gradient T'=3", max_diff(
            rnn.get_grad(name), getattr(cell, name + "_l0").grad.numpy())
        ) < TOLERANCE, (kind, name)
    # one step each
    step_loss = m.step(x, t)
    assert abs(step_loss - loss) < TOLERANCE
    opt.step()
    for name in rnn.param_names:
        assert record("parameter after step T'=3", max_diff(
            rnn.get_param(name),
            getattr(cell, name + "_l0").detach().numpy())
        ) < TOLERANCE, (kind, name)
    for name in ("weight", "bias"):
        assert record("parameter after step T'=3", max_diff(
            dense.get_param(name), getattr(head, name).detach().numpy())
        ) < TOLERANCE, (kind, name)
    m.close()


def test_gradcheck_at_three_steps():
    m = nnlib.Model.from_spec("lstm:4,gru:3,last,dense:2")
    m.compile((T, F), "mse", max_batch=4, seed=3)
    err = m.gradcheck(sequences(2, 3, 40),
                      np.linspace(-1, 1, 4, dtype=np.float32).reshape(2, 2))
    assert err < 1e-3
    m.close()


def test_fit_on_four_steps_with_validation_on_two():
    def model():
        m = nnlib.Model.from_spec("lstm:%d,last,dense:%d" % (H, K))
        m.compile((T, F), "mse", nnlib.SGD(0.05, momentum=0.9), max_batch=4,
                  seed=17)
        return m

    x, t = sequences(16, 4, 50), targets(16, 51)
    vx, vt = sequences(5, 2, 52), targets(5, 53)
    m, lone = model(), model()
    history = m.fit(x, t, epochs=3, batch_size=4, shuffle=False,
                    validation=(vx, vt))
    assert len(history) == 3 and len(history.validation_losses) == 3
    assert all(np.isfinite(history + history.validation_losses))
    # validation at another length leaves training alone
    lone_history = lone.fit(x, t, epochs=3, batch_size=4, shuffle=False)
    assert list(history) == list(lone_history)
    for a, b in zip(m.get_weights(), lone.get_weights()):
        np.testing.assert_array_equal(a, b)
    # the last validation loss is evaluate's at T' = 2
    assert history.validation_losses[-1] == lone.evaluate(vx, vt)[0]
    m.close()
    lone.close()


@pytest.mark.parametrize("kind", KINDS)
def test_sequence_output_at_three_steps_matches_torch(kind):
    """A model of recurrent layers only outputs [N, T', H] at T'; its MSE
    and gradients against [N, T', H] targets are PyTorch's."""
    m = nnlib.Model.from_spec("%s:%d" % (kind, H))
    m.compile((T, F), "mse", nnlib.SGD(0.1), max_batch=8, seed=19)
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
    cell = cls[kind](F, H, batch_first=True)
    (rnn,) = m.layers
    with torch.no_grad():
        for name in rnn.param_names:
            getattr(cell, name + "_l0").copy_(
                torch.from_numpy(rnn.get_param(name)))
    x = sequences(N, 3, 70)
    t = np.random.default_rng(71).uniform(-1, 1, (N, 3, H)).astype(np.float32)
    y = m.predict(x)
    assert y.shape == (N, 3, H)
    out, _ = cell(torch.from_numpy(x))
    assert record("sequence output T'=3",
                  max_diff(y, out.detach().numpy())) < TOLERANCE
    loss = m.backward(x, t)
    t_loss = torch.nn.functional.mse_loss(out, torch.from_numpy(t))
    t_loss.backward()
    assert record("sequence loss T'=3", abs(loss - t_loss.item())) < TOLERANCE
    for name in rnn.param_names:
        assert record("sequence gradient T'=3", max_diff(
            rnn.get_grad(name), getattr(cell, name + "_l0").grad.numpy())
        ) < TOLERANCE, (kind, name)
    m.close()


def test_refusals():
    inside = nnlib.Model.from_spec("lstm:4,dropout:0.1,gru:3,last")
    inside.compile((T, F), "mse", max_batch=N)
    with pytest.raises(nnlib.ShapeMismatchError,
                       match="lstm: sequence length 3 differs from the "
                             "compiled 7: only models whose recurrent layers "
                             "come first and either end in one returning its "
                             "last step") as info:
        inside.forward(sequences(N, 3, 61))
    assert info.value.code == nnlib.Status.SHAPE_MISMATCH
    inside.close()

    m = nnlib.Model.from_spec("lstm:4,last,dense:2")
    m.compile((T, F), "mse", nnlib.SGD(0.1), max_batch=N)
    with pytest.raises(nnlib.TooLargeError,
                       match="lstm: sequence length 8 above the compiled "
                             "maximum 7") as info:
        m.predict(sequences(N, T + 1, 62))
    assert info.value.code == nnlib.Status.TOO_LARGE
    with pytest.raises(nnlib.TooLargeError):
        m.step(sequences(N, T + 1, 63), np.zeros((N, 2), np.float32))
    # a flat [N, T' * F] batch is not taken as shorter: only [N, T', F]
    with pytest.raises(nnlib.ShapeMismatchError,
                       match="input has %d features per sample, model "
                             "expects %d" % (3 * F, T * F)):
        m.predict(sequences(N, 3, 64).reshape(N, 3 * F))
    m.close()


def test_report_worst_difference():
    """Prints the measured worst absolute differences (run with -s)."""
    if worst:
        print("\nworst |nnlib - torch| at shorter lengths: %s" % ", ".join(
            "%s %.2g" % kv for kv in sorted(worst.items())))
