#!/usr/bin/python3
"""Writes tests/data/torch_rnn.txt: reference forward and backward passes of
torch.nn.RNN / LSTM / GRU for tests/test_internal_rnn_torch.c, which reads
the file without PyTorch.

Run once, with Debian's python3-torch, and commit the output:

    /usr/bin/python3 tests/make_torch_rnn_fixtures.py

Each case draws float32 inputs, weights, an initial state (or none) and an
output gradient dY from a fixed seed, then runs PyTorch's module in float64
on those exact values (batch_first=True), so the file holds the exact
answer (printed to 12 digits; inputs to 9, exact for float32); nnlib
(float32) is checked against it. The header
also records how far PyTorch's own float32 run is from it, as a yardstick.
With return_sequences 0 the output is the last step, out[:, -1, :].
Parameters and gradients are PyTorch's weight_ih_l{k}, weight_hh_l{k},
bias_ih_l{k}, bias_hh_l{k}; stacked cases (layers 2) are num_layers=2.

Format (text): "#" comment lines, then per case
    case NAME
    kind rnn|lstm|gru   nonlinearity tanh|relu   layers L
    batch N  steps T  features F  hidden H  bias 0|1  sequences 0|1
    state_rows R        (0: zero initial state)
    tensor NAME COUNT   followed by COUNT numbers
    end
"""
import sys

import numpy as np
import torch

OUT = "tests/data/torch_rnn.txt"

# name, kind, nonlinearity, layers, N, T, F, H, bias, sequences, state_rows
CASES = [
    ("rnn_tanh_seq", "rnn", "tanh", 1, 3, 4, 3, 5, 1, 1, 0),
    ("rnn_tanh_last_nobias", "rnn", "tanh", 1, 2, 5, 4, 3, 0, 0, 0),
    ("rnn_relu_seq_h0", "rnn", "relu", 1, 3, 4, 3, 5, 1, 1, 1),
    ("lstm_seq", "lstm", "tanh", 1, 3, 4, 3, 5, 1, 1, 0),
    ("lstm_last_nobias", "lstm", "tanh", 1, 2, 5, 4, 3, 0, 0, 0),
    ("lstm_seq_state_per_sample", "lstm", "tanh", 1, 3, 3, 2, 4, 1, 1, 3),
    ("lstm_stacked_last", "lstm", "tanh", 2, 3, 4, 3, 5, 1, 0, 0),
    ("lstm_wide", "lstm", "tanh", 1, 5, 7, 6, 16, 1, 1, 0),
    ("gru_seq", "gru", "tanh", 1, 3, 4, 3, 5, 1, 1, 0),
    ("gru_last_nobias", "gru", "tanh", 1, 2, 5, 4, 3, 0, 0, 0),
    ("gru_seq_h0_broadcast", "gru", "tanh", 1, 3, 3, 2, 4, 1, 1, 1),
    ("gru_stacked_seq", "gru", "tanh", 2, 3, 4, 3, 5, 1, 1, 0),
]


def module(kind, nonlinearity, layers, f, h, bias):
    if kind == "rnn":
        return torch.nn.RNN(f, h, num_layers=layers, nonlinearity=nonlinearity,
                            bias=bool(bias), batch_first=True)
    cls = torch.nn.LSTM if kind == "lstm" else torch.nn.GRU
    return cls(f, h, num_layers=layers, bias=bool(bias), batch_first=True)


def run(mod, x, h0, c0, dy, sequences):
    """Forward and backward; returns y, dx and the parameter gradients."""
    x = x.clone().requires_grad_(True)
    for p in mod.parameters():
        p.grad = None
    if h0 is None:
        out, _ = mod(x)
    elif c0 is None:
        out, _ = mod(x, h0)
    else:
        out, _ = mod(x, (h0, c0))
    y = out if sequences else out[:, -1, :]
    (y * dy).sum().backward()
    grads = {name: p.grad.clone() for name, p in mod.named_parameters()}
    return y.detach(), x.grad.detach(), grads


def rel(a, b):
    a, b = a.double(), b.double()
    return float((a - b).norm() / max(float(b.norm()), 1e-30))


def emit(out, name, t, exact=False):
    """float32 values exactly (9 digits), float64 results to 12."""
    values = t.detach().double().flatten().tolist()
    fmt = "%.12g" if exact else "%.9g"
    out.append("tensor %s %d" % (name, len(values)))
    for i in range(0, len(values), 6):
        out.append(" ".join(fmt % v for v in values[i:i + 6]))


def make_case(case, seed, out, worst):
    name, kind, act, layers, n, t, f, h, bias, seq, rows = case
    g = torch.Generator().manual_seed(seed)
    mod32 = module(kind, act, layers, f, h, bias)
    with torch.no_grad():
        for p in mod32.parameters():
            p.copy_(torch.rand(p.shape, generator=g) * 1.2 - 0.6)
    x = torch.rand(n, t, f, generator=g) * 4.0 - 2.0
    dy = torch.rand(n, t if seq else 1, h, generator=g) * 2.0 - 1.0
    if not seq:
        dy = dy[:, 0, :]
    h0 = c0 = None
    if rows:
        h0 = torch.rand(layers, rows, h, generator=g) - 0.5
        if kind == "lstm":
            c0 = torch.rand(layers, rows, h, generator=g) * 2.0 - 1.0
        # nnlib broadcasts one row itself; PyTorch wants one per sample
        h0 = h0.expand(layers, n, h).contiguous()
        c0 = c0.expand(layers, n, h).contiguous() if c0 is not None else None
    mod64 = module(kind, act, layers, f, h, bias).double()
    mod64.load_state_dict({k: v.double() for k, v in mod32.state_dict().items()})
    d = lambda v: None if v is None else v.double()
    y, dx, grads = run(mod64, x.double(), d(h0), d(c0), dy.double(), seq)
    y32, dx32, grads32 = run(mod32, x, h0, c0, dy, seq)
    errors = [rel(y32, y), rel(dx32, dx)] + [rel(grads32[k], grads[k])
                                             for k in grads]
    worst.append((name, max(errors)))
    out += ["case " + name,
            "kind %s nonlinearity %s layers %d" % (kind, act, layers),
            "batch %d steps %d features %d hidden %d bias %d sequences %d"
            % (n, t, f, h, bias, seq),
            "state_rows %d" % rows]
    emit(out, "x", x)
    for k, p in mod32.named_parameters():
        emit(out, k, p)
    if rows:
        emit(out, "h0", h0[:, :rows] if rows == 1 else h0)
        if c0 is not None:
            emit(out, "c0", c0[:, :rows] if rows == 1 else c0)
    emit(out, "dy", dy)
    emit(out, "y", y, exact=True)
    emit(out, "dx", dx, exact=True)
    for k in grads:
        emit(out, "grad_" + k, grads[k], exact=True)
    out.append("end")


def main():
    torch.manual_seed(0)
    body, worst = [], []
    for i, case in enumerate(CASES):
        make_case(case, 1000 + i, body, worst)
    head = ["# generated by tests/make_torch_rnn_fixtures.py; do not edit",
            "# torch %s, numpy %s, python %s" % (torch.__version__,
                                                 np.__version__,
                                                 sys.version.split()[0]),
            "# reference: PyTorch in float64 on float32 inputs and weights",
            "# PyTorch float32 vs this reference, worst normwise relative "
            "error per case:"]
    head += ["#   %-28s %.2e" % w for w in worst]
    with open(OUT, "w") as f:
        f.write("\n".join(head + body) + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
