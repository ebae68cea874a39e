#!/usr/bin/python3
"""Reference values from PyTorch for two tiny GPT-style language models.

Writes tests/fixtures/torch_gpt.txt, which tests/test_transformer.c reads
(the C tests never need PyTorch). Run it again, with Debian's python3-torch,
only to change the cases:

    /usr/bin/python3 tests/make_torch_gpt_fixtures.py

Each case is the PyTorch twin of the nnlib description

    input:T,embedding:V:D,positional,transformer:D:H[:mlpM][:causal],
    transformer:D:H[:mlpM][:causal],layernorm,linear:V

built from stock modules: nn.Embedding, a positional Parameter [T, D], per
block LayerNorm -> nn.MultiheadAttention (batch_first, a boolean causal
mask, need_weights=False) -> residual -> LayerNorm -> Linear(D, M) -> GELU
(exact erf) -> Linear(M, D) -> residual, then a final LayerNorm and a
Linear head. The loss is CrossEntropyLoss (mean over the N*T tokens) of the
logits reshaped to [N*T, V] against the targets [N*T].

Weights, ids and targets are drawn in float32 (so the C test holds exactly
the same numbers; layernorm weights and biases are drawn away from 1 and 0
so that they matter); the passes run in float64, so the reference carries
no float32 rounding of its own.

A case "NAME" records, parameters in nnlib's order (nnlib_model_get_layer
in node order, each layer's tensors in nnlib_layer_get_param order; every
parameter's name contains a '.', and ends in nnlib's name of it):

    x, y             ids and targets [N, T] (integers stored as floats)
    embedding.weight, positional.weight,
    bK.ln1.weight, bK.ln1.bias, bK.attn.in_proj_weight, bK.attn.in_proj_bias,
    bK.attn.out_proj.weight, bK.attn.out_proj.bias, bK.ln2.weight,
    bK.ln2.bias, bK.mlp1.weight, bK.mlp1.bias, bK.mlp2.weight, bK.mlp2.bias
                     (K = 0, 1), lnf.weight, lnf.bias, head.weight, head.bias
    logits, loss     the training-mode logits [N, T, V] and the mean loss
    step_losses      [3] the loss of each of 3 AdamW steps on the same batch
                     (lr 1e-2, weight decay 0.01, default betas, eps 1e-8),
                     computed before that step's update
    loss_after       the loss after the 3 updates
    logits_after     the logits of the updated model in eval mode

and a case "NAME_grads" the gradient of every parameter before any update,
named d.<parameter> (two cases because a fixture case holds at most 48
tensors).

File format (the one of make_torch_fixtures.py; every float printed with 9
significant digits, which reads back as the nearest float32):

    torch <version>
    case <name> <key>=<int or float> ...
    tensor <name> <rank> <dims...>
    <values, 8 per line>
    ...
    end
"""
import os
import sys

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "torch_gpt.txt")

ADAMW = dict(lr=1e-2, weight_decay=0.01, betas=(0.9, 0.999), eps=1e-8)
STEPS = 3


def put_tensor(lines, name, t):
    t = t.detach().to(torch.float32).contiguous()
    dims = list(t.shape) if t.dim() > 0 else [1]
    lines.append("tensor %s %d %s" % (name, len(dims),
                                      " ".join(str(d) for d in dims)))
    values = ["%.9g" % v for v in t.flatten().tolist()]
    for i in range(0, len(values), 8):
        lines.append(" ".join(values[i:i + 8]))


def put_case(lines, name, config, tensors):
    lines.append("case %s %s" % (name, " ".join(
        "%s=%s" % (k, v) for k, v in config.items())))
    for tname, t in tensors:
        put_tensor(lines, tname, t)
    lines.append("end")


class Block(nn.Module):
    """Pre-norm: r = x + attn(ln1(x)); y = r + mlp2(gelu(mlp1(ln2(r))))."""

    def __init__(self, d, heads, mlp, causal, t):
        super().__init__()
        self.ln1 = nn.LayerNorm(d, eps=1e-5)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(d, eps=1e-5)
        self.mlp1 = nn.Linear(d, mlp)
        self.gelu = nn.GELU()
        self.mlp2 = nn.Linear(mlp, d)
        # True above the diagonal: position t attends to 0 .. t
        self.mask = (torch.triu(torch.ones(t, t, dtype=torch.bool), 1)
                     if causal else None)

    def forward(self, x):
        h = self.ln1(x)
        a, _ = self.attn(h, h, h, attn_mask=self.mask, need_weights=False)
        r = x + a
        return r + self.mlp2(self.gelu(self.mlp1(self.ln2(r))))


class GPT(nn.Module):
    def __init__(self, v, d, heads, mlp, causal, t, blocks):
        super().__init__()
        self.embedding = nn.Embedding(v, d)
        self.positional = nn.Parameter(torch.zeros(t, d))
        self.blocks = nn.ModuleList(
            [Block(d, heads, mlp, causal, t) for _ in range(blocks)])
        self.lnf = nn.LayerNorm(d, eps=1e-5)
        self.head = nn.Linear(d, v)

    def forward(self, ids):
        x = self.embedding(ids) + self.positional
        for block in self.blocks:
            x = block(x)
        return self.head(self.lnf(x))

    def named_in_nnlib_order(self):
        """(fixture name, parameter) in nnlib's parameter order."""
        out = [("embedding.weight", self.embedding.weight),
               ("positional.weight", self.positional)]
        for k, b in enumerate(self.blocks):
            p = "b%d." % k
            out += [(p + "ln1.weight", b.ln1.weight),
                     (p + "ln1.bias", b.ln1.bias),
                     (p + "attn.in_proj_weight", b.attn.in_proj_weight),
                     (p + "attn.in_proj_bias", b.attn.in_proj_bias),
                     (p + "attn.out_proj.weight", b.attn.out_proj.weight),
                     (p + "attn.out_proj.bias", b.attn.out_proj.bias),
                     (p + "ln2.weight", b.ln2.weight),
                     (p + "ln2.bias", b.ln2.bias),
                     (p + "mlp1.weight", b.mlp1.weight),
                     (p + "mlp1.bias", b.mlp1.bias),
                     (p + "mlp2.weight", b.mlp2.weight),
                     (p + "mlp2.bias", b.mlp2.bias)]
        out += [("lnf.weight", self.lnf.weight), ("lnf.bias", self.lnf.bias),
                ("head.weight", self.head.weight),
                ("head.bias", self.head.bias)]
        return out


def drawn(*shape, scale=1.0, shift=0.0):
    """A float32 draw held in float64: both sides see the same numbers."""
    return (torch.randn(*shape) * scale + shift).to(torch.float32).double()


def draw_weights(model):
    """Every parameter redrawn in float32: layernorm weights near 1 and
    biases near 0 but clearly not equal, the rest N(0, 0.3^2) (the
    embedding and positions N(0, 1) and N(0, 0.1^2))."""
    with torch.no_grad():
        for name, p in model.named_in_nnlib_order():
            if "ln" in name and name.endswith("weight"):
                p.copy_(drawn(*p.shape, scale=0.2, shift=1.0))
            elif "ln" in name:
                p.copy_(drawn(*p.shape, scale=0.2))
            elif name == "embedding.weight":
                p.copy_(drawn(*p.shape))
            elif name == "positional.weight":
                p.copy_(drawn(*p.shape, scale=0.1))
            else:
                p.copy_(drawn(*p.shape, scale=0.3))


def mean_ce(logits, y, v):
    return nn.functional.cross_entropy(logits.reshape(-1, v), y.reshape(-1))


def gpt_case(lines, name, v, d, heads, t, n, mlp, causal, blocks=2):
    model = GPT(v, d, heads, mlp, causal, t, blocks).double()
    draw_weights(model)
    model.train()
    x = torch.randint(0, v, (n, t))
    y = torch.randint(0, v, (n, t))
    logits = model(x)
    loss = mean_ce(logits, y, v)
    loss.backward()
    params = model.named_in_nnlib_order()
    grads = [("d." + pname, p.grad.clone()) for pname, p in params]
    before = [(pname, p.detach().clone()) for pname, p in params]

    # AdamW on the same batch; step k's loss is taken before its update
    opt = torch.optim.AdamW(model.parameters(), **ADAMW)
    step_losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        step_loss = mean_ce(model(x), y, v)
        step_loss.backward()
        opt.step()
        step_losses.append(float(step_loss))
    model.eval()
    with torch.no_grad():
        logits_after = model(x)
        loss_after = mean_ce(logits_after, y, v)

    config = dict(v=v, d=d, heads=heads, t=t, n=n, mlp=mlp,
                  causal=int(causal), blocks=blocks, steps=STEPS)
    tensors = [("x", x.double()), ("y", y.double())] + before
    tensors += [("logits", logits), ("loss", loss),
                ("step_losses", torch.tensor(step_losses)),
                ("loss_after", loss_after), ("logits_after", logits_after)]
    put_case(lines, name, config, tensors)
    put_case(lines, name + "_grads", config, grads)


def main():
    torch.manual_seed(20261404)
    torch.set_num_threads(1)
    lines = ["torch %s" % torch.__version__]
    gpt_case(lines, "gpt_causal", v=11, d=8, heads=2, t=5, n=3, mlp=32,
             causal=True)
    gpt_case(lines, "gpt_full_mlp20", v=7, d=12, heads=3, t=4, n=2, mlp=20,
             causal=False)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %s (torch %s)" % (OUT, torch.__version__), file=sys.stderr)


if __name__ == "__main__":
    main()
