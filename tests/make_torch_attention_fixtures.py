#!/usr/bin/python3
"""Reference values from PyTorch for the attention layer.

Writes tests/fixtures/torch_attention.txt, which
tests/test_internal_attention.c reads (the C tests never need PyTorch).
Run it again, with Debian's python3-torch, only to change the cases:

    /usr/bin/python3 tests/make_torch_attention_fixtures.py

Each case builds nn.MultiheadAttention(D, heads, batch_first=True,
bias=...) with seeded random weights (biases too, so they matter), runs
mha(x, x, x, attn_mask=<causal bool mask or None>, need_weights=False) in
float32, takes the loss L = sum(y * g) for a fixed random g, and records
x, the four parameters (in PyTorch's order), y, g, L, dx and every
parameter gradient. The format is tests/make_torch_fixtures.py's.
"""
import os

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "torch_attention.txt")


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


def attention_case(lines, name, n, t, d, heads, causal, bias):
    mha = torch.nn.MultiheadAttention(d, heads, batch_first=True, bias=bias)
    with torch.no_grad():  # random biases as well, so they are checked
        for p in mha.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    x = torch.randn(n, t, d).requires_grad_(True)
    mask = torch.triu(torch.ones(t, t, dtype=torch.bool), 1) if causal \
        else None
    y, _ = mha(x, x, x, attn_mask=mask, need_weights=False)
    g = torch.randn_like(y)
    loss = (y * g).sum()
    loss.backward()
    config = dict(n=n, t=t, d=d, heads=heads, causal=int(causal),
                  bias=int(bias))
    tensors = [("x", x), ("in_proj_weight", mha.in_proj_weight)]
    if bias:
        tensors.append(("in_proj_bias", mha.in_proj_bias))
    tensors.append(("out_proj_weight", mha.out_proj.weight))
    if bias:
        tensors.append(("out_proj_bias", mha.out_proj.bias))
    tensors += [("y", y), ("g", g), ("loss", loss), ("dx", x.grad),
                ("d_in_proj_weight", mha.in_proj_weight.grad)]
    if bias:
        tensors.append(("d_in_proj_bias", mha.in_proj_bias.grad))
    tensors.append(("d_out_proj_weight", mha.out_proj.weight.grad))
    if bias:
        tensors.append(("d_out_proj_bias", mha.out_proj.bias.grad))
    put_case(lines, name, config, tensors)


def main():
    torch.manual_seed(20261201)
    lines = ["torch %s" % torch.__version__]
    attention_case(lines, "attention_h2_full", 2, 5, 8, 2, False, True)
    attention_case(lines, "attention_h2_causal", 2, 5, 8, 2, True, True)
    attention_case(lines, "attention_h4_full", 3, 6, 12, 4, False, True)
    attention_case(lines, "attention_h4_causal", 3, 6, 12, 4, True, True)
    attention_case(lines, "attention_h1_causal_nobias", 1, 7, 6, 1, True,
                   False)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %s" % OUT)


if __name__ == "__main__":
    main()
