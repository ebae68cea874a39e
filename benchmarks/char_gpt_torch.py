#!/usr/bin/python3
"""char_gpt_torch.py - the PyTorch twin of examples/char_gpt.c: a GPT-style
character model trained on Debian's fortunes with the same data, the same
training windows and the same schedule, so that the two can be compared
loss for loss and second for second.

  /usr/bin/python3 benchmarks/char_gpt_torch.py [options]

Model (dropout 0 everywhere): bytes as tokens (vocabulary 256); a token
embedding nn.Embedding(256, 128) plus a learned positional embedding
nn.Parameter [context, 128] initialised N(0, 0.02); 4 pre-norm blocks,
  x = x + attn(ln1(x))   nn.MultiheadAttention(128, 4, batch_first=True),
                         causal mask (position t sees positions <= t)
  x = x + mlp(ln2(x))    Linear(128, 512), exact GELU, Linear(512, 128)
then a final LayerNorm and a Linear(128, 256) head giving the next byte's
logits. The loss is softmax cross-entropy averaged over every position of
the batch. 875 520 parameters at context 128.

Optimizer: AdamW (betas 0.9, 0.999, eps 1e-8, weight decay 0.01 on every
parameter) with nnlib's schedule (nnlib__optimizer_lr_at): step t (from 0)
uses lr (t + 1) / W while t < W (--warmup), then
lr (1 + cos(pi (t - W) / (S - W))) / 2, reaching 0 at S (--steps).

Data: the files nnlib_text_load reads for --dir, in its order: a file is
read whole; a directory contributes the entries lstat calls regular files
(so not subdirectories and not symlinks, such as Debian's NAME.u8 links),
whose names do not start with '.' nor end in ".dat" (fortune's indexes), in
byte order of their names. For /usr/share/games/fortunes (fortunes
1:1.99.1-7.3) that is the 43 texts art, ascii-art, computers, ..., zippy,
2 576 674 bytes. The last floor(0.1 size) bytes validate, the rest train.
Training windows are nnlib_text_sample's: offset = below(train_size - T)
drawn from nnlib's generator (splitmix64 seeding, xoshiro256**, rejection
sampling; re-implemented below, checked against the library by the ctest
text_offsets_*) seeded with --seed, one draw per row in row order; x is the
T bytes at the offset, y the T bytes one further.

Output: every --eval-every steps (and after the last)
  step=N train_loss=X valid_loss=Y
with train_loss the mean training loss of the steps since the previous line
and valid_loss the mean loss over the first --eval-windows validation
windows in nnlib_text_window order (window i starts at byte i T); then
  valid_bpc=B steps=S seconds=W
with B the mean loss over ALL validation windows (floor((size - 1) / T) of
them) divided by ln 2, and W the wall time of the training loop (steps and
the periodic estimates; not the final evaluation, nor set-up).

--print-offsets K prints "train_size=N valid_size=M" and the first K
training offsets, one per line, and exits (without importing torch).

--init-out FILE writes the initial parameters (before the first step) in
this format, all little-endian:
  8 bytes   magic "CHARGPT1"
  uint32    number of tensors
  then per tensor, in state_dict order:
    uint32  name length, then the name (ASCII, PyTorch's state_dict key)
    uint32  rank, then rank int64 dimensions
    float32 elements, row-major
PyTorch's layouts: nn.Linear weight [out, in] (y = x W^T + b); attention
in_proj_weight [3 x 128, 128] stacks the query, key and value projections
(rows 0-127 query, 128-255 key, 256-383 value; heads are consecutive
blocks of 32 rows within each), in_proj_bias [384] likewise, out_proj a
Linear(128, 128); LayerNorm weight then bias; pos [context, 128].
"""
import argparse
import math
import os
import stat
import struct
import sys
import time

MASK64 = (1 << 64) - 1


class NnlibRng:
    """nnlib's generator (src/core/rng.c): xoshiro256** seeded by four
    splitmix64 outputs, and nnlib__rng_below's rejection sampling."""

    def __init__(self, seed):
        x = seed & MASK64
        self.s = []
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & MASK64
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
            self.s.append(z ^ (z >> 31))

    @staticmethod
    def _rotl(v, k):
        return ((v << k) | (v >> (64 - k))) & MASK64

    def next(self):
        s = self.s
        result = (self._rotl((s[1] * 5) & MASK64, 7) * 9) & MASK64
        t = (s[1] << 17) & MASK64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = self._rotl(s[3], 45)
        return result

    def below(self, bound):
        limit = MASK64 - MASK64 % bound
        while True:
            r = self.next()
            if r < limit:
                return r % bound


def corpus_files(path):
    """The files nnlib_text_load reads for one path, in its order."""
    if not os.path.isdir(path):  # followed, as stat(2) does
        return [path]
    raw = os.fsencode(path)
    names = []
    for name in os.listdir(raw):
        if name.startswith(b".") or name.endswith(b".dat"):
            continue
        if stat.S_ISREG(os.lstat(os.path.join(raw, name)).st_mode):
            names.append(name)
    if not names:
        sys.exit(f"char_gpt_torch: directory {path} holds no text")
    return [os.fsdecode(os.path.join(raw, n)) for n in sorted(names)]


def load_text(path, valid_fraction):
    """(train bytes, valid bytes) as nnlib_text_load splits them."""
    data = b"".join(open(f, "rb").read() for f in corpus_files(path))
    valid = int(valid_fraction * len(data))  # floor, in double as in C
    return data[: len(data) - valid], data[len(data) - valid:]


def lr_at(step, lr, warmup, steps):
    """nnlib__optimizer_lr_at with a cosine schedule to 0 at `steps`."""
    if step < warmup:
        return lr * (step + 1) / warmup
    span = steps - warmup
    frac = 1.0 if step - warmup >= span else (step - warmup) / span
    return lr * 0.5 * (1.0 + math.cos(math.pi * frac))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dir", default="/usr/share/games/fortunes")
    p.add_argument("--valid-fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--context", type=int, default=128)
    p.add_argument("--threads", type=int, default=0,
                   help="torch.set_num_threads (0: PyTorch's default)")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--eval-windows", type=int, default=20)
    p.add_argument("--print-offsets", type=int, default=0, metavar="K")
    p.add_argument("--init-out", metavar="FILE")
    a = p.parse_args()
    if not 0 <= a.warmup < a.steps:
        p.error("--warmup must be >= 0 and below --steps")
    return a


def print_offsets(args, train, valid):
    print(f"train_size={len(train)} valid_size={len(valid)}")
    rng = NnlibRng(args.seed)
    for _ in range(args.print_offsets):
        print(rng.below(len(train) - args.context))


# ------------------------------------------------------------------ torch

def build_model(torch, context):
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1 = nn.LayerNorm(128)
            self.attn = nn.MultiheadAttention(128, 4, dropout=0.0,
                                              batch_first=True)
            self.ln2 = nn.LayerNorm(128)
            self.mlp = nn.Sequential(nn.Linear(128, 512), nn.GELU(),
                                     nn.Linear(512, 128))

        def forward(self, x, mask):
            h = self.ln1(x)
            a, _ = self.attn(h, h, h, attn_mask=mask, need_weights=False)
            x = x + a
            return x + self.mlp(self.ln2(x))

    class CharGPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(256, 128)
            self.pos = nn.Parameter(torch.randn(context, 128) * 0.02)
            self.blocks = nn.ModuleList(Block() for _ in range(4))
            self.ln_f = nn.LayerNorm(128)
            self.head = nn.Linear(128, 256)
            # True above the diagonal: position t does not see t' > t
            self.register_buffer(
                "mask", torch.triu(torch.ones(context, context,
                                              dtype=torch.bool), 1),
                persistent=False)

        def forward(self, ids):
            t = ids.shape[1]
            x = self.tok(ids) + self.pos[:t]
            for block in self.blocks:
                x = block(x, self.mask[:t, :t])
            return self.head(self.ln_f(x))

    return CharGPT()


def write_init(path, model):
    with open(path, "wb") as f:
        state = model.state_dict()
        f.write(b"CHARGPT1" + struct.pack("<I", len(state)))
        for name, tensor in state.items():
            key = name.encode("ascii")
            t = tensor.detach().float().contiguous()
            f.write(struct.pack("<I", len(key)) + key)
            f.write(struct.pack("<I", t.dim()))
            f.write(struct.pack(f"<{t.dim()}q", *t.shape))
            f.write(t.numpy().astype("<f4").tobytes())


def main():
    args = parse_args()
    train, valid = load_text(args.dir, args.valid_fraction)
    T, B = args.context, args.batch
    if len(train) < T + 1:
        sys.exit(f"char_gpt_torch: {len(train)} training bytes are too "
                 f"short for context {T}")
    if args.print_offsets:
        print_offsets(args, train, valid)
        return
    if len(valid) < T + 1:
        sys.exit(f"char_gpt_torch: {len(valid)} validation bytes are too "
                 f"short for context {T}")

    import numpy as np
    import torch
    import torch.nn.functional as F

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = build_model(torch, T)
    params = sum(p.numel() for p in model.parameters())
    if args.init_out:
        write_init(args.init_out, model)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr,
                            betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)

    train_np = np.frombuffer(train, dtype=np.uint8)
    valid_np = np.frombuffer(valid, dtype=np.uint8)
    span = np.arange(T)

    def windows(data, offsets):
        idx = np.asarray(offsets, dtype=np.int64)[:, None] + span
        return (torch.from_numpy(data[idx].astype(np.int64)),
                torch.from_numpy(data[idx + 1].astype(np.int64)))

    def valid_loss(count):
        """Mean loss over validation windows 0 .. count - 1."""
        model.eval()
        total = 0.0
        with torch.no_grad():
            for first in range(0, count, 64):
                n = min(64, count - first)
                x, y = windows(valid_np, [(first + i) * T for i in range(n)])
                logits = model(x)
                total += F.cross_entropy(logits.reshape(-1, 256),
                                         y.reshape(-1)).item() * n
        model.train()
        return total / count

    all_windows = (len(valid) - 1) // T
    print(f"char_gpt_torch: {params} parameters, train {len(train)} bytes, "
          f"valid {len(valid)} bytes ({all_windows} windows), "
          f"threads {torch.get_num_threads()}", flush=True)
    rng = NnlibRng(args.seed)
    loss_sum, loss_count = 0.0, 0
    start = time.perf_counter()
    for step in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.lr, args.warmup, args.steps)
        x, y = windows(train_np,
                       [rng.below(len(train) - T) for _ in range(B)])
        loss = F.cross_entropy(model(x).reshape(-1, 256), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.item()
        loss_count += 1
        done = step + 1
        if done % args.eval_every == 0 or done == args.steps:
            vl = valid_loss(min(args.eval_windows, all_windows))
            print(f"step={done} train_loss={loss_sum / loss_count:.4f} "
                  f"valid_loss={vl:.4f}", flush=True)
            loss_sum, loss_count = 0.0, 0
    seconds = time.perf_counter() - start
    bpc = valid_loss(all_windows) / math.log(2)
    print(f"valid_bpc={bpc:.4f} steps={args.steps} seconds={seconds:.2f}")


if __name__ == "__main__":
    main()
