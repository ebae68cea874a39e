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

and, each drawn from its own seed (so that writing them leaves the cases
above as they are):

  resnet     a residual CNN in the spirit of examples/fashion_resnet.c at
             width 4/8 over [1, 12, 12]: stem conv 3x3 + BN + ReLU; a basic
             block (conv-BN-ReLU-conv-BN) added to its input (identity
             shortcut), ReLU; a block whose first conv has stride 2, added
             to a 1x1 stride-2 projection conv + BN, ReLU; global average
             pool, flatten, Linear 8-10. Exported with training=
             TrainingMode.PRESERVE from eval mode: torch then keeps every
             BatchNormalization (inference form, the running statistics)
             instead of folding it into the conv as an eval-mode export
             does, so the imported model has nnlib batchnorm layers that
             train. y is the eval-mode output; the steps are taken by torch
             in train mode (batch statistics, as nnlib's batchnorm trains),
             and y_after is the eval-mode output after them, which also
             checks the running statistics' update.
  resnet_folded  the same network and weights exported in eval mode (each
             BN folded into its conv by torch): predictions only.
  attention  nn.MultiheadAttention(8, 2, bias=False, batch_first=True) as
             self-attention over [5, 8] without a mask (need_weights=False),
             Flatten, Linear 40-3
  attention_causal  nn.MultiheadAttention(8, 4, batch_first=True) with the
             float causal attn_mask (-inf above the diagonal), Flatten,
             Linear 40-3
  bad_attention_*  broken attention subgraphs for tests/test_onnx_import.c
             (refused naming the node): _heads (attention_causal with the
             head count of the q/k/v Reshape targets 2 instead of 4: 2 heads
             of 2 do not make D = 8), _scale (the 1/sqrt(head size) divisor
             3 instead of sqrt 2), _weights (the in-projection weight a
             graph input instead of an initializer), and _mask (a torch
             export with an arbitrary float attn_mask, not the causal one)
  gpt        a GPT-like language model over ids [6] (vocabulary 13): token
             nn.Embedding(13, 8) plus learned positions (an nn.Parameter
             [6, 8]), two pre-norm blocks x + attn(ln1(x)) (2 heads, causal) and x + Linear(GELU(Linear(ln2(x)))) (width 16), a final
             LayerNorm and a Linear head to the 13 logits per position;
             targets [N, 6] and the steps' losses are per-token softmax
             cross-entropy (mean over the N*6 tokens). LayerNorm weights and
             the attention biases are drawn away from torch's 1 and 0.
  layernorm14  Linear 6-8, LayerNorm(8) (weights drawn away from 1 and 0),
             Linear 8-3, exported at opset 14 (no LayerNormalization
             operator yet: torch writes it as ReduceMean, Sub, Pow,
             ReduceMean, Add, Sqrt, Div, Mul, Add)
  layernorm14_seq  the same at opset 14 over [4, 6] per sample: Linear 6-8
             on the last axis (MatMul + Add), LayerNorm(8) without affine
             parameters, Flatten, Linear 32-3
  bad_layernorm_*  layernorm14 broken for tests/test_onnx_import.c: _pow
             (the exponent 3), _eps (epsilon 0), _axes (the variance's
             ReduceMean over axis 0), _outside (x - mean also added to the
             result), _scale (the scale [5, 8], one row per sample)
  vit        a ViT-style patch embedding over [1, 16, 16]: Conv2d(1, 8, 4,
             stride=4), flatten(2), transpose(1, 2) (Reshape of a target
             from Shape, Slice and Concat, then Transpose [0, 2, 1]: 16
             tokens of 8), LayerNorm(8) (weights drawn away from 1 and 0),
             Linear(8, 4): predictions only.

Run with /usr/bin/python3 (python3-torch 1.13) from the repository root;
with no argument it writes every case, with names (e.g. `resnet vit`) only
those of the second list.
"""
import os
import sys

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "onnx")
SEEDS = os.path.join(HERE, "..", "fuzz", "corpus", "onnx")


def line(name, values):
    flat = [float(v) for v in torch.as_tensor(values).reshape(-1).tolist()]
    return "%s %d %s\n" % (name, len(flat), " ".join(repr(v) for v in flat))


def export(model, x, name, opset=17):
    model.eval()
    path = os.path.join(OUT, name + ".onnx")
    torch.onnx.export(model, x, path, opset_version=opset,
                      input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"}},
                      do_constant_folding=True)
    return path


def write(name, text):
    with open(os.path.join(OUT, name + ".txt"), "w") as f:
        f.write(text)


def trained(name, model, x, classes, steps=3, lr=0.1, fast_path=True,
            opset=17):
    """Eval outputs, then `steps` SGD steps (eval mode: the layers the
    export keeps train alike) and their losses. fast_path False takes the
    eval outputs with gradients on, which keeps nn.MultiheadAttention off
    its inference fast path (torch 1.13's fails without biases)."""
    export(model, x, name, opset)
    model.eval()
    with torch.set_grad_enabled(not fast_path):
        y = model(x).detach()
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


def export_preserved(model, x, name):
    """Export keeping BatchNormalization (not folded into the conv)."""
    model.eval()
    torch.onnx.export(model, x, os.path.join(OUT, name + ".onnx"),
                      opset_version=17, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"}},
                      do_constant_folding=True,
                      training=torch.onnx.TrainingMode.PRESERVE)


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()

        def conv_bn(i, o, stride=1):
            return [nn.Conv2d(i, o, 3, stride, 1, bias=False),
                    nn.BatchNorm2d(o)]

        self.stem = nn.Sequential(*conv_bn(1, 4), nn.ReLU())
        self.block1 = nn.Sequential(*conv_bn(4, 4), nn.ReLU(),
                                    *conv_bn(4, 4))
        self.block2 = nn.Sequential(*conv_bn(4, 8, 2), nn.ReLU(),
                                    *conv_bn(8, 8))
        self.shortcut = nn.Sequential(nn.Conv2d(4, 8, 1, 2, bias=False),
                                      nn.BatchNorm2d(8))
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(x + self.block1(x))
        x = torch.relu(self.shortcut(x) + self.block2(x))
        x = nn.functional.adaptive_avg_pool2d(x, 1)
        return self.head(torch.flatten(x, 1))


def resnet_cases():
    torch.manual_seed(2024)
    net = ResNet()
    with torch.no_grad():  # statistics and affine maps as after training
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    x = torch.randn(4, 1, 12, 12)
    net.eval()
    with torch.no_grad():
        y = net(x)
    export(net, x, "resnet_folded")
    write("resnet_folded", line("x", x) + line("y", y))

    export_preserved(net, x, "resnet")
    g = torch.Generator().manual_seed(7)
    target = torch.randint(0, 10, (x.shape[0],), generator=g)
    lr = 0.1
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    net.train()
    losses = []
    for _ in range(3):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(x), target)
        losses.append(loss.item())
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        y_after = net(x)
    write("resnet", line("x", x) + line("y", y) + line("target", target) +
          line("lr", [lr]) + line("losses", losses) +
          line("y_after", y_after))


class SelfAttention(nn.Module):
    def __init__(self, dim, heads, steps, causal, bias, classes):
        super().__init__()
        self.mha = nn.MultiheadAttention(dim, heads, bias=bias,
                                         batch_first=True)
        mask = torch.triu(torch.full((steps, steps), float("-inf")), 1)
        self.register_buffer("mask", mask if causal else None)
        self.head = nn.Linear(steps * dim, classes)

    def forward(self, x):
        y = self.mha(x, x, x, attn_mask=self.mask, need_weights=False)[0]
        return self.head(torch.flatten(y, 1))


def attention_cases():
    torch.manual_seed(99)
    plain = SelfAttention(8, 2, 5, False, False, 3)
    trained("attention", plain, torch.randn(4, 5, 8), 3, fast_path=False)
    causal = SelfAttention(8, 4, 5, True, True, 3)
    with torch.no_grad():
        causal.mha.in_proj_bias.uniform_(-0.3, 0.3)
        causal.mha.out_proj.bias.uniform_(-0.3, 0.3)
    trained("attention_causal", causal, torch.randn(4, 5, 8), 3)
    broken_attention()


def broken_attention():
    """Copies of attention_causal.onnx, each with one thing broken, and an
    export with an arbitrary mask."""
    import onnx
    from onnx import numpy_helper

    def load():
        return onnx.load(os.path.join(OUT, "attention_causal.onnx"))

    def constant(model, node_name):
        for n in model.graph.node:
            if n.name == node_name:
                return n.attribute[0]
        raise KeyError(node_name)

    def save(model, name):
        onnx.save(model, os.path.join(OUT, "bad_attention_" + name + ".onnx"))

    m = load()  # the head count of every q/k/v Reshape target (N * heads)
    a = constant(m, "/mha/Constant_11")
    assert numpy_helper.to_array(a.t).item() == 4
    a.t.CopyFrom(numpy_helper.from_array(
        numpy_helper.to_array(a.t) * 0 + 2, a.t.name))
    save(m, "heads")

    m = load()  # Q divided by 3 instead of sqrt(8 / 4)
    a = constant(m, "/mha/Constant_14")
    assert abs(numpy_helper.to_array(a.t).item() - 2 ** 0.5) < 1e-6
    a.t.CopyFrom(numpy_helper.from_array(
        numpy_helper.to_array(a.t) * 0 + 3, a.t.name))
    save(m, "scale")

    m = load()  # the packed in-projection weight [8, 24] as a graph input
    w = next(t for t in m.graph.initializer if list(t.dims) == [8, 24])
    m.graph.initializer.remove(w)
    m.graph.input.append(onnx.helper.make_tensor_value_info(
        w.name, onnx.TensorProto.FLOAT, [8, 24]))
    save(m, "weights")

    torch.manual_seed(5)
    masked = SelfAttention(8, 2, 5, True, True, 3)
    masked.mask.copy_(torch.randn(5, 5))
    export(masked, torch.randn(2, 5, 8), "bad_attention_mask")


class Block(nn.Module):
    def __init__(self, dim, heads, width, steps):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, width), nn.GELU(),
                                 nn.Linear(width, dim))
        self.register_buffer(
            "mask", torch.triu(torch.full((steps, steps), float("-inf")), 1))

    def forward(self, x):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=self.mask,
                          need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, vocab=13, dim=8, heads=2, width=16, steps=6):
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(0.1 * torch.randn(steps, dim))
        self.blocks = nn.Sequential(Block(dim, heads, width, steps),
                                    Block(dim, heads, width, steps))
        self.lnf = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab)

    def forward(self, ids):
        return self.head(self.lnf(self.blocks(self.tok(ids) + self.pos)))


def gpt_case():
    torch.manual_seed(4242)
    gpt = GPT()
    with torch.no_grad():
        for m in gpt.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.6, 1.4)
                m.bias.uniform_(-0.2, 0.2)
            if isinstance(m, nn.MultiheadAttention):
                m.in_proj_bias.uniform_(-0.2, 0.2)
                m.out_proj.bias.uniform_(-0.2, 0.2)
    ids = torch.randint(0, 13, (3, 6))
    target = torch.randint(0, 13, (3, 6))
    export(gpt, ids, "gpt")
    gpt.eval()
    with torch.no_grad():
        y = gpt(ids)
    lr = 0.1
    opt = torch.optim.SGD(gpt.parameters(), lr=lr)
    losses = []
    for _ in range(3):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(gpt(ids).reshape(-1, 13),
                                           target.reshape(-1))
        losses.append(loss.item())
        loss.backward()
        opt.step()
    write("gpt", line("ids", ids) + line("y", y) + line("target", target) +
          line("lr", [lr]) + line("losses", losses))


def layernorm_cases():
    """nn.LayerNorm exported at opset 14, before LayerNormalization existed:
    torch writes ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul,
    Add. Broken copies for tests/test_onnx_import.c follow."""
    torch.manual_seed(1414)
    net = nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.Linear(8, 3))
    with torch.no_grad():  # away from torch's initial ones and zeros
        net[1].weight.uniform_(0.6, 1.4)
        net[1].bias.uniform_(-0.2, 0.2)
    trained("layernorm14", net, torch.randn(5, 6), 3, opset=14)

    class Seq(nn.Module):  # [4, 6] per sample, a LayerNorm without affine
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(6, 8)
            self.norm = nn.LayerNorm(8, elementwise_affine=False)
            self.head = nn.Linear(32, 3)

        def forward(self, x):
            return self.head(torch.flatten(self.norm(self.lin(x)), 1))

    trained("layernorm14_seq", Seq(), torch.randn(5, 4, 6), 3, opset=14)
    broken_layernorm()


def broken_layernorm():
    """Copies of layernorm14.onnx with one thing changed: the pattern is
    then not read and the ReduceMean (or the node named) is refused."""
    import onnx
    from onnx import numpy_helper

    def load():
        return onnx.load(os.path.join(OUT, "layernorm14.onnx"))

    def node(model, name):
        return next(n for n in model.graph.node if n.name == name)

    def set_constant(model, name, value):
        a = node(model, name).attribute[0]
        a.t.CopyFrom(numpy_helper.from_array(
            numpy_helper.to_array(a.t) * 0 + value, a.t.name))

    def save(model, name):
        onnx.save(model, os.path.join(OUT, "bad_layernorm_" + name + ".onnx"))

    m = load()  # (x - mean)^3
    set_constant(m, "/1/Constant", 3.0)
    save(m, "pow")

    m = load()  # eps 0: nnlib's layernorm needs eps > 0
    set_constant(m, "/1/Constant_1", 0.0)
    save(m, "eps")

    m = load()  # the variance over the batch axis
    a = node(m, "/1/ReduceMean_1").attribute[0]
    del a.ints[:]
    a.ints.append(0)
    save(m, "axes")

    m = load()  # x - mean also read after the subgraph
    n = node(m, "/2/Gemm")
    mix = onnx.helper.make_node("Add", [n.input[0], "/1/Sub_output_0"],
                                ["mixed"], name="mix")
    n.input[0] = "mixed"
    m.graph.node.insert(list(m.graph.node).index(n), mix)
    save(m, "outside")

    m = load()  # a scale that differs per batch row: not LayerNorm's
    w = next(t for t in m.graph.initializer if t.name == "1.weight")
    w.CopyFrom(numpy_helper.from_array(
        numpy_helper.to_array(w)[None, :].repeat(5, 0), w.name))
    save(m, "scale")


class PatchEmbedding(nn.Module):
    """A ViT-style patch embedding: 4x4 patches of a 1x16x16 image as 16
    tokens of width 8 (Conv2d stride 4, flatten(2), transpose(1, 2)), then
    LayerNorm(8) and Linear(8, 4) per token."""

    def __init__(self):
        super().__init__()
        self.patches = nn.Conv2d(1, 8, 4, stride=4)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        tokens = self.patches(x).flatten(2).transpose(1, 2)
        return self.head(self.norm(tokens))


def vit_case():
    torch.manual_seed(2468)
    model = PatchEmbedding()
    with torch.no_grad():
        model.norm.weight.uniform_(0.6, 1.4)
        model.norm.bias.uniform_(-0.2, 0.2)
    x = torch.randn(3, 1, 16, 16)
    export(model, x, "vit")
    with torch.no_grad():
        y = model(x)
    write("vit", line("x", x) + line("y", y))


NEW_CASES = {
    "resnet": resnet_cases,  # also writes resnet_folded
    "attention": attention_cases,  # also writes attention_causal
    "gpt": gpt_case,
    "layernorm": layernorm_cases,  # also layernorm14_seq, bad_layernorm_*
    "vit": vit_case,
}
NEW_SEEDS = ("resnet", "attention", "attention_causal",
             "layernorm14", "vit")  # gpt: 40 KB


def write_seeds(names):
    for name in names:
        with open(os.path.join(OUT, name + ".onnx"), "rb") as f:
            data = f.read()
        with open(os.path.join(SEEDS, "torch_" + name + ".onnx"), "wb") as f:
            f.write(data)


def main_new(names):
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(SEEDS, exist_ok=True)
    for name in names:
        if name not in NEW_CASES:
            sys.exit("unknown case %s (one of %s)" %
                     (name, " ".join(NEW_CASES)))
        NEW_CASES[name]()
    written = {"resnet": ("resnet",),
               "attention": ("attention", "attention_causal"),
               "gpt": ("gpt",),
               "layernorm": ("layernorm14",), "vit": ("vit",)}
    write_seeds([s for n in names for s in written[n] if s in NEW_SEEDS])


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main_new(sys.argv[1:])
    else:
        main()
        main_new(list(NEW_CASES))
