#!/usr/bin/python3
"""Compare nnlib with PyTorch on CPU: the same models, batch sizes and
thread counts, interleaved in one run, then a ratio table.

    /usr/bin/python3 benchmarks/compare_pytorch.py --bench BUILD/benchmarks/nnlib-bench
        [--model mlp-large] [--batch 256] [--threads 1] [--kind train]
        [--rounds 3] [--seconds 1.0] [--json out.jsonl]

Needs Debian's python3-torch (it uses the system OpenBLAS, like nnlib).

Fair threads: OpenBLAS reads its thread count when it loads, so every
PyTorch setup runs in its own worker process with OPENBLAS_NUM_THREADS set
explicitly. With T > 1 threads PyTorch is measured three ways and the best
counts:
  omp-spin     torch.set_num_threads(T), GNU OpenMP's default wait policy
               (its pool spins after each parallel region, competing with
               OpenBLAS's own pool for the same cores)
  omp-passive  the same with OMP_WAIT_POLICY=PASSIVE (idle threads sleep)
  blas-only    torch.set_num_threads(1): only OpenBLAS runs threads
With one thread: torch.set_num_threads(1) and OPENBLAS_NUM_THREADS=1.

Each round runs nnlib-bench for one measurement, then every PyTorch setup
for one; the medians of the rounds' medians are compared, so both sides
see the same machine noise. Alongside, each worker times its own GEMMs
alone (torch.mm with the step's shapes), giving PyTorch's gemm_efficiency.

The `gpt` model is examples/char_gpt.c's (the class of
benchmarks/char_gpt_torch.py, AdamW lr 1e-3 weight decay 0.01) on random
int64 ids [32, 128] and targets; its lines also carry tokens_per_s (batch
x context / step). For every model, every setup above is measured three ways:
with glibc's malloc defaults and with GLIBC_TUNABLES=MALLOC_TUNABLES (no mmap
for large blocks, no trimming: PyTorch's large activations then stay in the
heap instead of being mapped and unmapped every step, which decides the
CNN's training speed), labelled "+glibc-tuned", and with those tunables
plus glibc.malloc.hugetlb=1 (glibc advises its heap for transparent huge
pages, as nnlib does for its activation block), labelled
"+glibc-tuned-thp"; the best of all counts.
Inference runs the net in eval mode (net.eval(): running batchnorm
statistics, no dropout) under torch.inference_mode(), as nnlib's predict. --kind generate (gpt only, one
thread) times generation: nnlib_model_generate with and without its cache
(nnlib-bench --bench generate) against PyTorch re-running the newest
min(len, 128) tokens for every new token (model.eval(), torch.no_grad()),
prompt 16, 256 new tokens.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

MODELS = {
    # name: (layer sizes, hidden activation, output activation, loss, batches)
    "mlp-small": ([784, 16, 10], "sigmoid", "sigmoid", "mse", [32, 256]),
    "mlp-large": ([784, 1024, 1024, 10], "relu", None, "ce", [64, 256, 1024]),
    # examples/sequence_lstm.c: (steps, features, hidden, classes), an
    # nn.LSTM whose last step feeds nn.Linear
    "lstm": ((28, 28, 128, 10), "lstm", None, "ce", [64, 256]),
    # the same with an nn.GRU (nnlib-bench's gru: gru:128,last,dense:10)
    "gru": ((28, 28, 128, 10), "gru", None, "ce", [64, 256]),
    # examples/fashion_cnn.c: (channels, height, width, classes)
    "cnn": ((1, 28, 28, 10), "cnn", None, "ce", [64, 256]),
    # examples/char_gpt.c: (context, vocabulary, width, heads, blocks)
    "gpt": ((128, 256, 128, 4, 4), "gpt", None, "ce", [32]),
}
THREADS = [1, 2]
SETUPS = {1: ["single"], 2: ["omp-spin", "omp-passive", "blas-only"]}
# glibc's malloc never returning large blocks to the system (see above)
MALLOC_TUNABLES = ("glibc.malloc.mmap_threshold=2147483647:"
                "glibc.malloc.trim_threshold=4294967295")
TUNED = "+glibc-tuned"
# the same, with the heap on transparent huge pages (glibc 2.35 and later)
TUNED_THP = "+glibc-tuned-thp"
HUGE_PAGES_TUNABLE = ":glibc.malloc.hugetlb=1"
GEN_PROMPT, GEN_TOKENS = 16, 256


def setups_for(model, threads):
    """The PyTorch setups measured: each as it comes, with the malloc
    tunables, and with them and huge pages (labelled), so that no row
    depends on glibc's defaults. (glibc before 2.35 ignores hugetlb: there
    the third is the second again.)"""
    base = SETUPS[threads]
    return base + [s + TUNED for s in base] + [s + TUNED_THP for s in base]


def split_setup(setup):
    """(thread setup, GLIBC_TUNABLES or None) of a setup's name."""
    if setup.endswith(TUNED_THP):
        return setup[:-len(TUNED_THP)], MALLOC_TUNABLES + HUGE_PAGES_TUNABLE
    if setup.endswith(TUNED):
        return setup[:-len(TUNED)], MALLOC_TUNABLES
    return setup, None


# ------------------------------------------------------------- the worker

def build_recurrent(torch, name):
    (steps, features, hidden, classes), kind, _, _, _ = MODELS[name]
    cell = torch.nn.LSTM if kind == "lstm" else torch.nn.GRU

    class LastStep(torch.nn.Module):
        """nnlib's lstm:H,last,dense:C (or gru:H)."""

        def __init__(self):
            super().__init__()
            self.rnn = cell(features, hidden, batch_first=True)
            self.head = torch.nn.Linear(hidden, classes)

        def forward(self, x):
            out, _ = self.rnn(x)
            return self.head(out[:, -1])

    return LastStep(), torch.nn.CrossEntropyLoss()


def recurrent_gemms(torch, name, batch, training):
    """nnlib's GEMMs of lstm:H,last,dense:C or gru:H,... (benchmarks/
    bench_models.c): the input projection of all steps, a recurrent product
    per step after the first; backward a carry product per step after the
    first and the two weight gradients over all steps; the head as in
    gemm_list. 4 gates for the LSTM, 3 for the GRU."""
    (steps, features, hidden, classes), kind, _, _, _ = MODELS[name]
    rows, gates = batch * steps, (4 if kind == "lstm" else 3) * hidden
    x, w_ih = torch.rand(rows, features), torch.rand(gates, features)
    h, w_hh = torch.rand(batch, hidden), torch.rand(gates, hidden)
    dg, dg_all = torch.rand(batch, gates), torch.rand(rows, gates)
    hprev = torch.rand(rows, hidden)
    w, z = torch.rand(classes, hidden), torch.rand(batch, classes)
    calls = [(x, w_ih.t())] + [(h, w_hh.t())] * (steps - 1) + [(h, w.t())]
    if training:
        calls += [(z.t(), h), (z, w)] + [(dg, w_hh)] * (steps - 1)
        calls += [(dg_all.t(), x), (dg_all.t(), hprev)]
    return calls


def build_cnn(torch, name):
    """nnlib's conv:32x3x3:p1:nobias,batchnorm,relu,maxpool:2,
    conv:64x3x3:p1:nobias,batchnorm,relu,maxpool:2,flatten,dense:256,relu,
    dropout:0.5,dense:10."""
    (channels, height, width, classes), _, _, _, _ = MODELS[name]
    nn = torch.nn
    net = nn.Sequential(
        nn.Conv2d(channels, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32),
        nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64),
        nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(64 * (height // 4) * (width // 4), 256), nn.ReLU(),
        nn.Dropout(0.5), nn.Linear(256, classes))
    return net, nn.CrossEntropyLoss()


def conv_chunk(k, co, p, batch, threads):
    """Samples nnlib's conv2d lowers at once (src/layers/conv2d.c
    chunk_samples, benchmarks/bench_models.c conv_chunk): the whole batch
    if its col and Z fit 16 MB, else ceil(1024 / P) samples within 2 MB, or
    with several threads as many as fill 8 MB if that is more."""
    per_sample = (k + co) * p
    if per_sample <= (16 << 20) // 4 // batch:
        return batch
    chunk = min(-(-1024 // p), (2 << 20) // 4 // per_sample)
    if threads > 1:
        chunk = max(chunk, (8 << 20) // 4 // per_sample)
    return max(min(chunk, batch), 1)


def cnn_gemms(torch, name, batch, training, threads):
    """nnlib's GEMMs of the cnn (benchmarks/bench_models.c conv_gemms): per
    convolution and per chunk of m samples (conv_chunk), the lowered
    products W col, dZ col^T and (not the first layer) W^T dZ; the dense
    layers as in gemm_list."""
    (channels, height, width, classes), _, _, _, _ = MODELS[name]
    convs = [(32, channels * 9, height * width),
             (64, 32 * 9, (height // 2) * (width // 2))]
    calls = []
    for i, (co, k, p) in enumerate(convs):
        m = conv_chunk(k, co, p, batch, threads)
        for cols, times in [(m * p, batch // m), (batch % m * p, 1)]:
            if cols == 0 or times == 0:
                continue
            w, col, dz = torch.rand(co, k), torch.rand(k, cols), \
                torch.rand(co, cols)
            calls += [(w, col)] * times
            if training:
                calls += [(dz, col.t())] * times
                if i > 0:
                    calls += [(w.t(), dz)] * times
    for n_in, n_out in [(64 * (height // 4) * (width // 4), 256),
                        (256, classes)]:
        x, w, dz = torch.rand(batch, n_in), torch.rand(n_out, n_in), \
            torch.rand(batch, n_out)
        calls.append((x, w.t()))
        if training:
            calls += [(dz.t(), x), (dz, w)]
    return calls


def build_gpt(torch, name):
    """The model class of benchmarks/char_gpt_torch.py (the PyTorch twin
    of examples/char_gpt.c), imported from beside this file."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import char_gpt_torch
    (context, vocab, _, _, _), _, _, _, _ = MODELS[name]
    net = char_gpt_torch.build_model(torch, context)
    ce = torch.nn.CrossEntropyLoss()

    def lossf(logits, targets):  # every position's next token
        return ce(logits.reshape(-1, vocab), targets.reshape(-1))
    return net, lossf


def gpt_gemms(torch, name, batch, training):
    """nnlib's GEMMs of the gpt (benchmarks/bench_models.c dense_gemms and
    attention_gemms) as torch.matmul on own tensors, the per-head products
    batched over samples and heads as PyTorch runs them (bmm): per block
    the QKV projection, Q K^T, P V, the output projection and the MLP's two
    linear layers; the head; backward each one's weight and input
    gradients, and attention's dV, dP, dQ, dK."""
    (t, vocab, d, heads, blocks), _, _, _, _ = MODELS[name]
    rows, bh, hd, m = batch * t, batch * heads, d // heads, 4 * d
    r = torch.rand
    q, k, v = r(bh, t, hd), r(bh, t, hd), r(bh, t, hd)
    p, do_h = r(bh, t, t), r(bh, t, hd)

    def linear(n_in, n_out):
        x, w, dz = r(rows, n_in), r(n_out, n_in), r(rows, n_out)
        fwd = [(x, w.t())]
        return fwd, [(dz, w), (dz.t(), x)]

    calls, back = [], []
    for _ in range(blocks):
        f_in, b_in = linear(d, 3 * d)
        f_out, b_out = linear(d, d)
        f_1, b_1 = linear(d, m)
        f_2, b_2 = linear(m, d)
        calls += f_in + [(q, k.transpose(1, 2)), (p, v)] + f_out + f_1 + f_2
        back += b_2 + b_1 + b_out + [
            (p.transpose(1, 2), do_h), (do_h, v.transpose(1, 2)), (p, k),
            (p.transpose(1, 2), q)] + b_in
    f_head, b_head = linear(d, vocab)
    calls += f_head
    if training:
        calls += b_head + back[::-1]
    return calls


def build_torch(torch, name):
    if MODELS[name][1] == "gpt":
        return build_gpt(torch, name)
    if MODELS[name][1] in ("lstm", "gru"):
        return build_recurrent(torch, name)
    if MODELS[name][1] == "cnn":
        return build_cnn(torch, name)
    sizes, hidden, output, loss, _ = MODELS[name]
    act = {"sigmoid": torch.nn.Sigmoid, "relu": torch.nn.ReLU}
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        last = i == len(sizes) - 2
        kind = output if last else hidden
        if kind is not None:
            layers.append(act[kind]())
    net = torch.nn.Sequential(*layers)
    lossf = torch.nn.MSELoss() if loss == "mse" else torch.nn.CrossEntropyLoss()
    return net, lossf


def make_data(torch, name, batch):
    sizes, kind, _, loss, _ = MODELS[name]
    g = torch.Generator().manual_seed(1)
    if kind == "gpt":  # token ids and next-token targets [N, T]
        context, vocab = sizes[0], sizes[1]
        return (torch.randint(vocab, (batch, context), generator=g),
                torch.randint(vocab, (batch, context), generator=g))
    if kind in ("lstm", "gru"):  # [N, T, F] sequences, sizes[-1] classes
        x = torch.rand(batch, sizes[0], sizes[1], generator=g)
    elif kind == "cnn":  # [N, C, H, W] images
        x = torch.rand(batch, *sizes[:3], generator=g)
    else:
        x = torch.rand(batch, sizes[0], generator=g)
    labels = torch.arange(batch) * 7 % sizes[-1]
    if loss == "mse":
        t = torch.nn.functional.one_hot(labels, sizes[-1]).float()
    else:
        t = labels
    return x, t


def gemm_list(torch, name, batch, training, threads):
    """The GEMMs of one step as torch.mm calls on own tensors: forward
    X W^T, and backward dZ^T X (weight) and dZ W (input, not layer 0)."""
    if MODELS[name][1] == "gpt":
        return gpt_gemms(torch, name, batch, training)
    if MODELS[name][1] in ("lstm", "gru"):
        return recurrent_gemms(torch, name, batch, training)
    if MODELS[name][1] == "cnn":
        return cnn_gemms(torch, name, batch, training, threads)
    sizes = MODELS[name][0]
    calls = []
    for i in range(len(sizes) - 1):
        n_in, n_out = sizes[i], sizes[i + 1]
        x = torch.rand(batch, n_in)
        w = torch.rand(n_out, n_in)
        dz = torch.rand(batch, n_out)
        calls.append((x, w.t()))
        if training:
            calls.append((dz.t(), x))
            if i > 0:
                calls.append((dz, w))
    return calls


def time_worker(args):
    import torch
    torch.manual_seed(0)
    if split_setup(args.setup)[0] == "blas-only" or args.threads == 1:
        torch.set_num_threads(1)
    else:
        torch.set_num_threads(args.threads)
    net, lossf = build_torch(torch, args.model)
    gpt = MODELS[args.model][1] == "gpt"
    if gpt:  # as nnlib-bench's gpt and examples/char_gpt.c
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3, betas=(0.9, 0.999),
                                eps=1e-8, weight_decay=0.01)
    else:
        opt = torch.optim.SGD(net.parameters(), lr=0.01)
    if args.kind == "generate":
        generate_worker(torch, net, args)
        return
    x, t = make_data(torch, args.model, args.batch)
    training = args.kind == "train"
    # Inference as a user runs it: running batchnorm statistics, no dropout.
    net.train(training)
    calls = gemm_list(torch, args.model, args.batch, training, args.threads)

    def work():
        if training:
            opt.zero_grad(set_to_none=True)
            lossf(net(x), t).backward()
            opt.step()
        else:
            with torch.inference_mode():
                net(x)

    def gemms():
        for a, b in calls:
            torch.matmul(a, b)

    start = time.perf_counter()
    warm = 0
    while warm < 5 or time.perf_counter() - start < 0.1 * args.seconds:
        work()
        gemms()
        warm += 1
    one = (time.perf_counter() - start) / warm
    reps = int(min(max(args.seconds / one, 11), 100000))
    work_t, gemm_t = [], []
    for _ in range(reps):
        s = time.perf_counter()
        work()
        mid = time.perf_counter()
        gemms()
        gemm_t.append(time.perf_counter() - mid)
        work_t.append(mid - s)
    med, gmed = statistics.median(work_t), statistics.median(gemm_t)
    line = {
        "bench": args.kind, "model": args.model, "batch": args.batch,
        "threads": args.threads, "reps": reps, "median_s": med,
        "min_s": min(work_t), "max_s": max(work_t),
        "samples_per_s": args.batch / med, "gemm_s": gmed,
        "gemm_efficiency": gmed / med, "library": "pytorch",
        "setup": args.setup, "torch": torch.__version__}
    if gpt:
        line["context"] = MODELS[args.model][0][0]
        line["tokens_per_s"] = args.batch * line["context"] / med
    print(json.dumps(line))


def generate_worker(torch, net, args):
    """Generation without a cache: for each new token the newest
    min(len, context) tokens run whole (model.eval(), torch.no_grad()),
    the last position's logits give the next token by sampling
    softmax(logits) (temperature 1, every token, as nnlib's defaults)."""
    context = MODELS[args.model][0][0]
    vocab = MODELS[args.model][0][1]
    net.eval()
    g = torch.Generator().manual_seed(3)
    prompt = torch.randint(vocab, (GEN_PROMPT,), generator=g).tolist()

    def generate():
        ids = list(prompt)
        with torch.no_grad():
            for _ in range(GEN_TOKENS):
                window = torch.tensor([ids[-context:]])
                logits = net(window)[0, -1]
                probs = torch.softmax(logits, dim=0)
                ids.append(int(torch.multinomial(probs, 1, generator=g)))
        return ids

    start = time.perf_counter()
    generate()
    one = time.perf_counter() - start
    reps = int(min(max(args.seconds / one, 3), 1000))
    times = []
    for _ in range(reps):
        s = time.perf_counter()
        generate()
        times.append(time.perf_counter() - s)
    med = statistics.median(times)
    print(json.dumps({
        "bench": "generate", "model": args.model, "batch": 1,
        "threads": args.threads, "reps": reps, "median_s": med,
        "min_s": min(times), "max_s": max(times),
        "samples_per_s": 1.0 / med, "tokens_per_s": GEN_TOKENS / med,
        "use_cache": 0, "prompt": GEN_PROMPT, "new_tokens": GEN_TOKENS,
        "context": context, "library": "pytorch", "setup": args.setup,
        "torch": torch.__version__}))


def worker_env(threads, setup):
    env = dict(os.environ)
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    env.pop("OMP_WAIT_POLICY", None)
    env.pop("GLIBC_TUNABLES", None)
    setup, tunables = split_setup(setup)
    if tunables is not None:
        env["GLIBC_TUNABLES"] = tunables
    env["OMP_NUM_THREADS"] = "1" if setup in ("single", "blas-only") \
        else str(threads)
    if setup == "omp-passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    return env


# ---------------------------------------------------------- the driver

def run_json(cmd, env=None):
    out = subprocess.run(cmd, env=env, check=True, capture_output=True,
                         text=True).stdout
    lines = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    return [l for l in lines if l.get("bench") != "machine"]


def nnlib_once(args, model, batch, threads, kind):
    rows = run_json([args.bench, "--model", model, "--batch", str(batch),
                     "--threads", str(threads), "--bench", kind,
                     "--seconds", str(args.seconds)])
    return rows[-1]


def torch_once(args, model, batch, threads, kind, setup):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker",
           "--model", model, "--batch", str(batch), "--threads", str(threads),
           "--kind", kind, "--setup", setup, "--seconds", str(args.seconds)]
    return run_json(cmd, env=worker_env(threads, setup))[-1]


def median_of(rows, key):
    return statistics.median(r[key] for r in rows)


def compare(args, model, batch, threads, kind):
    if kind == "generate":
        return compare_generate(args, model)
    nn, th = [], {s: [] for s in setups_for(model, threads)}
    for _ in range(args.rounds):
        nn.append(nnlib_once(args, model, batch, threads, kind))
        for setup in setups_for(model, threads):
            th[setup].append(torch_once(args, model, batch, threads, kind,
                                        setup))
    nn_med = median_of(nn, "median_s")
    best_setup = min(th, key=lambda s: median_of(th[s], "median_s"))
    results = []
    for setup, rows in th.items():
        t_med = median_of(rows, "median_s")
        results.append({
            "bench": kind, "model": model, "batch": batch,
            "threads": threads, "reps": args.rounds, "library": "pytorch",
            "setup": setup, "best": setup == best_setup,
            "median_s": t_med, "min_s": min(r["min_s"] for r in rows),
            "max_s": max(r["max_s"] for r in rows),
            "samples_per_s": batch / t_med,
            "gemm_s": median_of(rows, "gemm_s"),
            "gemm_efficiency": median_of(rows, "gemm_efficiency"),
            "nnlib_median_s": nn_med,
            "nnlib_samples_per_s": batch / nn_med,
            "nnlib_gemm_efficiency": median_of(nn, "gemm_efficiency"),
            "ratio": t_med / nn_med, "torch": rows[0]["torch"]})
        if "context" in rows[0]:
            tokens = batch * rows[0]["context"]
            results[-1].update({"context": rows[0]["context"],
                                "tokens_per_s": tokens / t_med,
                                "nnlib_tokens_per_s": tokens / nn_med})
    return results


def compare_generate(args, model):
    """nnlib's generation with and without its cache against PyTorch's
    (generate_worker), one thread, interleaved round by round."""
    nn, th = [], []
    for _ in range(args.rounds):
        nn.append(run_json([args.bench, "--model", model, "--threads", "1",
                            "--bench", "generate",
                            "--seconds", str(args.seconds)]))
        cmd = [sys.executable, os.path.abspath(__file__), "--worker",
               "--model", model, "--batch", "1", "--threads", "1",
               "--kind", "generate", "--setup", "single",
               "--seconds", str(args.seconds)]
        th.append(run_json(cmd, env=worker_env(1, "single"))[-1])
    cached = [r for rows in nn for r in rows if r["use_cache"] == 1]
    whole = [r for rows in nn for r in rows if r["use_cache"] == 0]
    t_med = median_of(th, "median_s")
    c_med, w_med = median_of(cached, "median_s"), median_of(whole, "median_s")
    return [{
        "bench": "generate", "model": model, "batch": 1, "threads": 1,
        "reps": args.rounds, "library": "pytorch", "setup": "single",
        "best": False, "median_s": t_med,
        "min_s": min(r["min_s"] for r in th),
        "max_s": max(r["max_s"] for r in th),
        "tokens_per_s": GEN_TOKENS / t_med, "prompt": GEN_PROMPT,
        "new_tokens": GEN_TOKENS, "context": th[0]["context"],
        "nnlib_cache_tokens_per_s": GEN_TOKENS / c_med,
        "nnlib_nocache_tokens_per_s": GEN_TOKENS / w_med,
        "cache_restarts": cached[0]["cache_restarts"],
        "ratio_cache": t_med / c_med, "ratio_nocache": t_med / w_med,
        "cache_speedup": w_med / c_med, "torch": th[0]["torch"]}]


def gpt_table(results):
    """tokens/s of every PyTorch setup beside nnlib's, best marked; then
    generation."""
    tokens = ["| %s | %d | %s%s | %.0f | %.0f | %.2fx |" % (
        r["bench"], r["threads"], r["setup"], " (best)" if r["best"] else "",
        r["tokens_per_s"], r["nnlib_tokens_per_s"], r["ratio"])
        for r in results if "nnlib_tokens_per_s" in r]
    parts = []
    if tokens:
        parts.append("\n".join([
            "| bench | threads | PyTorch setup | PyTorch tokens/s | "
            "nnlib tokens/s | nnlib / PyTorch |",
            "|---|---:|---|---:|---:|---:|"] + tokens))
    for r in results:
        if r["bench"] != "generate":
            continue
        parts.append("\n".join([
            "Generation, 1 thread, prompt %d, %d new tokens (context %d; "
            "nnlib's cached window restarts %d times):" % (
                r["prompt"], r["new_tokens"], r["context"],
                r["cache_restarts"]),
            "",
            "| nnlib cache tokens/s | nnlib no cache tokens/s | "
            "PyTorch re-run tokens/s | cache / no cache | "
            "nnlib cache / PyTorch | nnlib no cache / PyTorch |",
            "|---:|---:|---:|---:|---:|---:|",
            "| %.0f | %.0f | %.0f | %.2fx | %.2fx | %.2fx |" % (
                r["nnlib_cache_tokens_per_s"],
                r["nnlib_nocache_tokens_per_s"], r["tokens_per_s"],
                r["cache_speedup"], r["ratio_cache"], r["ratio_nocache"])]))
    return "\n\n".join(parts)


def table(results):
    lines = ["| bench | model | batch | threads | nnlib samples/s | "
             "PyTorch samples/s (best setup) | nnlib / PyTorch | "
             "nnlib gemm_eff | PyTorch gemm_eff |",
             "|---|---|---:|---:|---:|---|---:|---:|---:|"]
    for r in results:
        if not r.get("best"):
            continue
        lines.append("| %s | %s | %d | %d | %.0f | %.0f (%s) | %.2fx | "
                     "%.3f | %.3f |" % (
                         r["bench"], r["model"], r["batch"], r["threads"],
                         r["nnlib_samples_per_s"], r["samples_per_s"],
                         r["setup"], r["ratio"], r["nnlib_gemm_efficiency"],
                         r["gemm_efficiency"]))
    return "\n".join(lines) if len(lines) > 2 else ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", help="path of nnlib-bench")
    ap.add_argument("--model", choices=sorted(MODELS))
    ap.add_argument("--batch", type=int)
    ap.add_argument("--threads", type=int, choices=THREADS)
    ap.add_argument("--kind", choices=["train", "infer", "generate"],
                    help="generate: gpt only, not run unless asked for")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--json", help="also write the result lines here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--setup", default="single", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        time_worker(args)
        return
    if not args.bench:
        ap.error("--bench PATH-OF-nnlib-bench is required")
    results = []
    for model, spec in MODELS.items():
        if args.model and model != args.model:
            continue
        for batch in spec[4]:
            if args.batch and batch != args.batch:
                continue
            for threads in THREADS:
                if args.threads and threads != args.threads:
                    continue
                for kind in ("train", "infer", "generate"):
                    if kind != (args.kind or kind) or (
                            kind == "generate" and (args.kind != kind or
                                                    model != "gpt" or
                                                    threads != 1)):
                        continue
                    print("compare_pytorch: %s %s batch %d threads %d" % (
                        kind, model, batch, threads), file=sys.stderr)
                    results += compare(args, model, batch, threads, kind)
    if args.json:
        with open(args.json, "w") as f:
            for r in results:
                f.write(json.dumps(r) + "\n")
    parts = [table(results), gpt_table(results)]
    print("\n\n".join(p for p in parts if p))


if __name__ == "__main__":
    main()
