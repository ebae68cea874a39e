#!/usr/bin/python3
"""Reference values from PyTorch for the embedding and positional layers.

Writes tests/fixtures/torch_embedding.txt, which
tests/test_internal_embedding.c reads (the C test never needs PyTorch). Run
it again, with Debian's python3-torch, only to change the cases:

    /usr/bin/python3 tests/make_torch_embedding_fixtures.py

Each case is a token embedding followed by learned positions, in float32:

    emb = torch.nn.Embedding(V, D)          weight N(0, 1), seeded
    pos = torch.nn.Parameter [P, D]         N(0, 0.02^2), seeded
    y   = emb(ids) + pos[:T]                ids [N, T], with repeats
    L   = sum(y * R)                        R [N, T, D] fixed, random

and records ids (as floats: the fixture format has no integers; the C test
turns them into int32), both weights, R, y, L and the gradients of both
weights after L.backward().

File format: see tests/make_torch_fixtures.py (torch <version>, then
"case NAME key=value ...", "tensor NAME RANK DIMS..." with 8 values a line,
"end").
"""
import os

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "torch_embedding.txt")

# name, vocab V, dim D, batch N, steps T, max_positions P (0: P = T)
CASES = [
    ("small_repeats", 7, 5, 3, 6, 8),
    ("tiny_vocab_many_repeats", 3, 4, 4, 9, 0),
    ("wider", 50, 16, 4, 10, 12),
    ("one_position", 11, 6, 5, 1, 4),
]


def put_tensor(lines, name, t):
    t = t.detach().to(torch.float32).contiguous()
    dims = list(t.shape) if t.dim() > 0 else [1]
    lines.append("tensor %s %d %s" % (name, len(dims),
                                      " ".join(str(d) for d in dims)))
    values = ["%.9g" % v for v in t.flatten().tolist()]
    for i in range(0, len(values), 8):
        lines.append(" ".join(values[i:i + 8]))


def ids_with_repeats(vocab, n, steps):
    """Random ids in [0, V), each sample's first id repeated at its last
    position (rows repeat), and ids 0 and V - 1 both present."""
    ids = torch.randint(0, vocab, (n, steps))
    ids[0, 0] = 0
    ids[n - 1, 0] = vocab - 1  # every case has n > 1
    if steps > 1:
        ids[:, -1] = ids[:, 0]
    return ids


def case(lines, name, vocab, dim, n, steps, max_positions):
    rows = max_positions if max_positions > 0 else steps
    emb = torch.nn.Embedding(vocab, dim)
    pos = torch.nn.Parameter(torch.randn(rows, dim) * 0.02)
    ids = ids_with_repeats(vocab, n, steps)
    r = torch.randn(n, steps, dim)
    y = emb(ids) + pos[:steps]
    loss = (y * r).sum()
    loss.backward()
    lines.append("case %s vocab=%d dim=%d n=%d steps=%d max_positions=%d" %
                 (name, vocab, dim, n, steps, max_positions))
    put_tensor(lines, "ids", ids.to(torch.float32))
    put_tensor(lines, "w_emb", emb.weight)
    put_tensor(lines, "w_pos", pos)
    put_tensor(lines, "r", r)
    put_tensor(lines, "y", y)
    put_tensor(lines, "loss", loss)
    put_tensor(lines, "dw_emb", emb.weight.grad)
    put_tensor(lines, "dw_pos", pos.grad)
    lines.append("end")


def main():
    torch.manual_seed(20261201)
    lines = ["torch %s" % torch.__version__]
    for c in CASES:
        case(lines, *c)
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
