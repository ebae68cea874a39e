"""One training step of a small MLP in nnlib and in PyTorch (Debian's
python3-torch) from the same weights: loss, gradients and updated weights
agree within 1e-5 (normwise relative error per tensor).

Conventions that make this a like-for-like comparison: dense weight [out,
in] as torch.nn.Linear; MSE and BCE-with-logits are means over all
elements, softmax cross-entropy the mean over the batch (torch's defaults);
nnlib's optimizers are torch.optim's update rules.
"""


import numpy as np
import pytest

import nnlib
from conftest import require_torch

torch = require_torch()

TOLERANCE = 1e-5
N, IN, HIDDEN, OUT = 6, 5, 8, 3


def rel_error(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def data(loss, seed=3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, IN)).astype(np.float32)
    if loss == "mse":
        t = rng.standard_normal((N, OUT)).astype(np.float32)
    elif loss == "bce_logits":
        t = (rng.random((N, OUT)) > 0.5).astype(np.float32)
    elif loss == "softmax_ce_index":
        t = rng.integers(0, OUT, N).astype(np.float32)
    else:  # softmax_ce one-hot
        t = np.eye(OUT, dtype=np.float32)[rng.integers(0, OUT, N)]
    return x, t


def nnlib_model(loss, optimizer):
    m = nnlib.Model([nnlib.Dense(HIDDEN, IN), nnlib.Tanh(),
                     nnlib.Dense(HIDDEN), nnlib.ReLU(), nnlib.Dense(OUT)])
    m.compile((IN,), "softmax_ce" if loss.startswith("softmax") else loss,
              optimizer, max_batch=N, seed=11)
    # non-zero biases so that their gradients and updates are exercised
    rng = np.random.default_rng(5)
    for layer in m.layers[::2]:
        layer.bias = rng.uniform(-0.1, 0.1, layer.bias.shape)
    return m


def torch_model(m):
    linears = []
    for layer in m.layers[::2]:
        out_f, in_f = layer.weight.shape
        lin = torch.nn.Linear(in_f, out_f)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(layer.weight))
            lin.bias.copy_(torch.from_numpy(layer.bias))
        linears.append(lin)
    return torch.nn.Sequential(linears[0], torch.nn.Tanh(), linears[1],
                               torch.nn.ReLU(), linears[2])


def torch_loss(loss, y, t):
    t = torch.from_numpy(t)
    if loss == "mse":
        return torch.nn.functional.mse_loss(y, t)
    if loss == "bce_logits":
        return torch.nn.functional.binary_cross_entropy_with_logits(y, t)
    if loss == "softmax_ce_index":
        return torch.nn.functional.cross_entropy(y, t.long())
    return torch.nn.functional.cross_entropy(y, t)  # probabilities


def run(loss, make_nnlib_opt, make_torch_opt, steps=1):
    x, t = data(loss)
    m = nnlib_model(loss, make_nnlib_opt())
    net = torch_model(m)
    opt = make_torch_opt(net.parameters())
    errors = {}
    for step in range(steps):
        if step == 0:  # gradients of the first step, before any update
            nn_loss = m.backward(x, t)
            opt.zero_grad()
            out = net(torch.from_numpy(x))
            t_loss = torch_loss(loss, out, t)
            t_loss.backward()
            errors["loss"] = rel_error(nn_loss, t_loss.item())
            for i, (layer, lin) in enumerate(zip(m.layers[::2],
                                                 net[::2])):
                errors["grad W%d" % i] = rel_error(layer.get_grad("weight"),
                                                   lin.weight.grad.numpy())
                errors["grad b%d" % i] = rel_error(layer.get_grad("bias"),
                                                   lin.bias.grad.numpy())
        m.step(x, t)
        opt.zero_grad()
        torch_loss(loss, net(torch.from_numpy(x)), t).backward()
        opt.step()
    for i, (layer, lin) in enumerate(zip(m.layers[::2], net[::2])):
        errors["W%d after" % i] = rel_error(layer.weight,
                                            lin.weight.detach().numpy())
        errors["b%d after" % i] = rel_error(layer.bias,
                                            lin.bias.detach().numpy())
    m.close()
    return errors


LOSSES = ["mse", "bce_logits", "softmax_ce_index", "softmax_ce_onehot"]
worst = {}


@pytest.mark.parametrize("loss", LOSSES)
def test_one_sgd_step_matches_torch(loss):
    errors = run(loss, lambda: nnlib.SGD(0.1),
                 lambda p: torch.optim.SGD(p, lr=0.1))
    worst[loss] = max(errors.values())
    assert max(errors.values()) < TOLERANCE, errors


@pytest.mark.parametrize("loss", ["mse", "softmax_ce_index"])
def test_one_sgd_step_with_momentum_nesterov_decay_matches_torch(loss):
    errors = run(loss,
                 lambda: nnlib.SGD(0.05, momentum=0.9, nesterov=True,
                                   weight_decay=0.01),
                 lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9,
                                           nesterov=True, weight_decay=0.01))
    assert max(errors.values()) < TOLERANCE, errors


@pytest.mark.parametrize("name, make_nnlib, make_torch", [
    ("sgd momentum", lambda: nnlib.SGD(0.05, momentum=0.9),
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
    ("adam", lambda: nnlib.Adam(0.01),
     lambda p: torch.optim.Adam(p, lr=0.01)),
    ("adamw", lambda: nnlib.AdamW(0.01),
     lambda p: torch.optim.AdamW(p, lr=0.01)),
    ("rmsprop", lambda: nnlib.RMSprop(0.01),
     lambda p: torch.optim.RMSprop(p, lr=0.01)),
])
def test_three_steps_of_each_optimizer_match_torch(name, make_nnlib,
                                                   make_torch):
    errors = run("mse", make_nnlib, make_torch, steps=3)
    assert max(errors.values()) < TOLERANCE, (name, errors)


def test_report_worst_error():
    """Prints the measured worst relative error of the one-step runs."""
    if worst:
        print("\nworst relative error, one SGD step vs torch: %.3g (%s)"
              % (max(worst.values()), ", ".join(
                  "%s %.2g" % kv for kv in sorted(worst.items()))))
