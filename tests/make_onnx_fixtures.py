#!/usr/bin/python3
"""PyTorch models exported with torch.onnx.export (opset 17) for
tests/test_onnx_torch.c, and small ONNX seeds for fuzz/fuzz_onnx.c.

Writes tests/fixtures/onnx/<name>.onnx and tests/fixtures/onnx/<name>.txt:
lines "key count v1 v2 ..." with the input batch (x, or ids for token ids),
PyTorch's eval-mode outputs (y), and for the trainable ones the class
targets and the loss of each of a few plain-SGD steps with softmax
cross-entropy (steps, lr, losses), taken by PyTorch on the same model.

  mlp        Linear 12-16, ReLU, Linear 16-8, Tanh, Linear 8-4 (Gemm)
  seq        Linear over the last axis of [3, 6] (MatMul + Add), LayerNorm,
             ReLU, Flatten, Linear (Gemm)
  cnn        fashion_cnn.c's description at reduced width (conv 4 and 8
             instead of 32 and 64, dense 16 instead of 256): conv 3x3 p1
             without bias, batchnorm, relu, maxpool 2, twice, flatten,
             dense, relu, dropout 0.5, dense 10. Exported in eval mode,
             where torch folds each batchnorm into its convolution and
             drops the dropout: predictions only.
  embedding  Embedding 10x6 over [5] int64 ids (Gather), Flatten, Linear
  lstm       nn.LSTM(5, 8, batch_first=True) over [6, 5], its last step
             (y[:, -1]: Gather of Y), Linear 8-3
  gru        nn.GRU(5, 8, batch_first=True), the final state (h[-1]:
             Y_h), Linear 8-3
  rnn        nn.RNN(4, 6, nonlinearity='relu', batch_first=True), the whole
             sequence flattened (Y), Linear 30-3
  gelu       Linear 10-16, GELU (Erf form), Linear 16-16, GELU (tanh form),
             Linear 16-4

Run with /usr/bin/python3 (python3-torch 1.13) from the repository root.
"""
import os

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "onnx")
SEEDS = os.path.join(HERE, "..", "fuzz", "corpus", "onnx")


def line(name, values):
    flat = [float(v) for v in torch.as_tensor(values).reshape(-1).tolist()]
    return "%s %d %s\n" % (name, len(flat), " ".join(repr(v) for v in flat))


def export(model, x, name):
    model.eval()
    path = os.path.join(OUT, name + ".onnx")
    torch.onnx.export(model, x, path, opset_version=17,
                      input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"}},
                      do_constant_folding=True)
    return path


def write(name, text):
    with open(os.path.join(OUT, name + ".txt"), "w") as f:
        f.write(text)


def trained(name, model, x, classes, steps=3, lr=0.1):
    """Eval outputs, then `steps` SGD steps (eval mode: the layers the
    export keeps train alike) and their losses."""
    export(model, x, name)
    model.eval()
    with torch.no_grad():
        y = model(x)
    g = torch.Generator().manual_seed(7)
    target = torch.randint(0, classes, (x.shape[0],), generator=g)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), target)
        losses.append(loss.item())
        loss.backward()
        opt.step()
    write(name, line("x", x) + line("y", y) + line("target", target) +
          line("lr", [lr]) + line("losses", losses))


def main():
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(SEEDS, exist_ok=True)
    torch.manual_seed(1234)

    mlp = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 8),
                        nn.Tanh(), nn.Linear(8, 4))
    trained("mlp", mlp, torch.randn(5, 12), 4)

    class Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(6, 5)
            self.norm = nn.LayerNorm(5)
            self.head = nn.Linear(15, 3)

        def forward(self, x):
            h = torch.relu(self.norm(self.lin(x)))
            return self.head(torch.flatten(h, 1))

    trained("seq", Seq(), torch.randn(4, 3, 6), 3)

    cnn = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4),
        nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
        nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8 * 7 * 7, 16), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(16, 10))
    # running statistics that are not the identity, as after training
    with torch.no_grad():
        for m in cnn:
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    x = torch.rand(3, 1, 28, 28)
    export(cnn, x, "cnn")
    with torch.no_grad():
        y = cnn(x)
    write("cnn", line("x", x) + line("y", y))

    class Emb(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 6)
            self.head = nn.Linear(30, 4)

        def forward(self, ids):
            return self.head(torch.flatten(self.emb(ids), 1))

    emb = Emb().eval()
    ids = torch.randint(0, 10, (3, 5))
    export(emb, ids, "embedding")
    with torch.no_grad():
        y = emb(ids)
    write("embedding", line("ids", ids) + line("y", y))

    class Recurrent(nn.Module):
        def __init__(self, cell, take, hidden, head_in, **kw):
            super().__init__()
            self.cell = cell(kw.pop("features", 5), hidden, batch_first=True,
                             **kw)
            self.take = take
            self.head = nn.Linear(head_in, 3)

        def forward(self, x):
            y, h = self.cell(x)
            if self.take == "last":
                z = y[:, -1]
            elif self.take == "state":
                z = (h[0] if isinstance(h, tuple) else h)[-1]
            else:
                z = torch.flatten(y, 1)
            return self.head(z)

    trained("lstm", Recurrent(nn.LSTM, "last", 8, 8), torch.randn(4, 6, 5), 3)
    trained("gru", Recurrent(nn.GRU, "state", 8, 8), torch.randn(4, 6, 5), 3)
    trained("rnn", Recurrent(nn.RNN, "sequence", 6, 30, features=4,
                             nonlinearity="relu"), torch.randn(4, 5, 4), 3)

    gelu = nn.Sequential(nn.Linear(10, 16), nn.GELU(), nn.Linear(16, 16),
                         nn.GELU(approximate="tanh"), nn.Linear(16, 4))
    trained("gelu", gelu, torch.randn(5, 10), 4)

    # fuzz seeds: the small models (the cnn is 30 KB; the others < 2 KB)
    for name in ("mlp", "seq", "embedding", "lstm", "gru", "rnn", "gelu"):
        with open(os.path.join(OUT, name + ".onnx"), "rb") as f:
            data = f.read()
        with open(os.path.join(SEEDS, "torch_" + name + ".onnx"), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
