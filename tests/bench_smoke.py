#!/usr/bin/env python3
"""nnlib-bench end to end, briefly: the JSON fields scripts outside the
project read (issue 9) are there, with sane values, and to_markdown.py
turns the lines into its tables. Speed is not judged here (benchmarks do
that); this only keeps the output format from drifting. And the replay
behind gemm_efficiency (issue 17): for every model, training and
inference, 1 and 2 threads, `--bench check` must find the bench's GEMM
list equal to the calls the step really makes (shapes, transposes, alpha,
beta, leading dimensions; nnlib-bench exits nonzero naming the first
difference otherwise) and the replay of those calls on the step's own
buffers must leave the model as it was.

    bench_smoke.py NNLIB_BENCH TO_MARKDOWN_PY
"""
import json
import subprocess
import sys

COMMON = ["bench", "model", "batch", "threads", "reps", "median_s", "min_s",
          "max_s", "samples_per_s", "gflops"]
STEP = COMMON + ["gemm_s", "gemm_efficiency", "kernels", "gemm_calls",
                 "gemm_replay"]
GEMM = ["bench", "m", "n", "k", "trans", "role", "peak_gflops",
        "peak_fraction", "median_s", "gflops", "kernels"]
MEMORY = ["peak_bytes", "needed_bytes", "peak_ratio", "params_bytes",
          "grads_bytes", "optimizer_bytes", "activations_bytes"]
GPT_STEP = STEP + ["context", "tokens_per_s", "gemm_calls"]
PROFILE = ["layer", "name", "forward_s", "backward_s", "forward_flops",
           "backward_flops", "list_forward_flops", "list_backward_flops"]
GENERATE = COMMON + ["use_cache", "prompt", "new_tokens", "context",
                     "cache_restarts", "tokens_per_s", "cache_speedup"]
CHECK = ["model", "batch", "threads", "mode", "gemm_calls", "list_entries",
         "list_matches", "replay_restored_bytes", "replay_nonfinite",
         "replay_subnormal", "replay_leaves_trace"]
# Small batches, except the cnn's: at 64 its convolutions lower the batch
# in several chunks at one thread, so the check sees their interleaving.
CHECK_BATCHES = {"mlp-small": 32, "mlp-large": 8, "cnn": 64, "lstm": 4,
                 "gru": 4, "gpt": 2}


def run(bench, *args):
    out = subprocess.run([bench, *args, "--seconds", "0.05"], check=True,
                         capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line]


def require(line, keys):
    missing = [k for k in keys if k not in line]
    if missing:
        sys.exit("bench_smoke: %s line lacks %s: %s" % (
            line.get("bench"), missing, line))


def main():
    bench, to_markdown = sys.argv[1], sys.argv[2]
    lines = run(bench, "--model", "mlp-small", "--batch", "32", "--threads",
                "1")
    lines += run(bench, "--model", "mlp-large", "--batch", "64", "--threads",
                 "1", "--bench", "memory")
    kinds = {}
    for line in lines:
        kinds.setdefault(line["bench"], []).append(line)
    if set(kinds) != {"machine", "gemm", "train", "infer", "memory"}:
        sys.exit("bench_smoke: line kinds %s" % sorted(kinds))
    machine = kinds["machine"][0]
    require(machine, ["cpu", "cpu_family", "cpu_model", "cores", "openblas",
                      "openblas_core", "peak_gflops_per_core",
                      "peak_avx2_gflops_per_core",
                      "peak_avx512_gflops_per_core"])
    widths = [machine[k] for k in ("peak_avx2_gflops_per_core",
                                   "peak_avx512_gflops_per_core")
              if machine[k] is not None]
    if widths and abs(max(widths) - machine["peak_gflops_per_core"]) > 1e-3:
        sys.exit("bench_smoke: the peak is not the faster width's %s" %
                 machine)
    for line in kinds["train"] + kinds["infer"]:
        require(line, STEP)
        if not (line["min_s"] <= line["median_s"] <= line["max_s"] and
                line["samples_per_s"] > 0 and line["gemm_s"] > 0 and
                line["model"] == "mlp-small" and line["batch"] == 32):
            sys.exit("bench_smoke: implausible step line %s" % line)
        expect = line["batch"] / line["median_s"]
        if abs(line["samples_per_s"] - expect) > 1e-3 * expect:
            sys.exit("bench_smoke: samples_per_s is not batch / median_s")
        if line["gemm_replay"] != "recorded":
            sys.exit("bench_smoke: gemm_s not from the recorded calls: %s"
                     % line)
    for line in kinds["gemm"]:
        require(line, GEMM)
    memory = kinds["memory"][0]
    require(memory, MEMORY)
    parts = sum(memory[k] for k in ("params_bytes", "grads_bytes",
                                    "optimizer_bytes", "activations_bytes"))
    if parts != memory["needed_bytes"] or memory["peak_ratio"] < 1.0:
        sys.exit("bench_smoke: memory line does not add up: %s" % memory)
    text = subprocess.run([sys.executable, to_markdown], check=True,
                          input="\n".join(json.dumps(x) for x in lines),
                          capture_output=True, text=True).stdout
    for title in ("### Training steps and inference", "### Targets (issue 9)",
                  "### Peak memory", "### Raw sgemm"):
        if title not in text:
            sys.exit("bench_smoke: to_markdown printed no %r" % title)
    checks = check_replay(bench)
    calls_agree(kinds["train"] + kinds["infer"], checks)
    check_gpt(bench, checks)
    print("bench_smoke: %d lines, fields and tables present; the GEMM "
          "lists of %d models match their steps" % (len(lines),
                                                    len(CHECK_BATCHES)))


def check_replay(bench):
    """--bench check for every model at 1 and 2 threads: one training and
    one inference line each, the list matching and the replay leaving no
    trace. A mismatch makes nnlib-bench exit nonzero with the first
    difference on stderr, shown here."""
    checks = []
    for model, batch in CHECK_BATCHES.items():
        for threads in (1, 2):
            args = [bench, "--model", model, "--batch", str(batch),
                    "--threads", str(threads), "--bench", "check",
                    "--seconds", "0.05"]
            done = subprocess.run(args, capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit("bench_smoke: %s failed (%d): %s" % (
                    " ".join(args[1:]), done.returncode, done.stderr))
            lines = [json.loads(x) for x in done.stdout.splitlines() if x]
            found = [x for x in lines if x["bench"] == "check"]
            if sorted(x["mode"] for x in found) != ["infer", "train"]:
                sys.exit("bench_smoke: check lines of %s: %s" % (model,
                                                                 found))
            for line in found:
                require(line, CHECK)
                if not (line["model"] == model and line["batch"] == batch
                        and line["threads"] == threads
                        and line["list_matches"] == 1
                        and line["gemm_calls"] >= line["list_entries"] > 0
                        and line["replay_leaves_trace"] == 0
                        and line["replay_nonfinite"] == 0):
                    sys.exit("bench_smoke: check failed: %s" % line)
            checks += found
    return checks


def calls_agree(steps, checks):
    """A train or infer line replays as many calls as the check found for
    the same model, batch, threads and mode."""
    by_key = {(x["model"], x["batch"], x["threads"], x["mode"]): x
              for x in checks}
    for line in steps:
        key = (line["model"], line["batch"], line["threads"], line["bench"])
        if key not in by_key:
            sys.exit("bench_smoke: no check line for %s" % (key,))
        if line["gemm_calls"] != by_key[key]["gemm_calls"]:
            sys.exit("bench_smoke: %s replays %d calls, the check found %d"
                     % (key, line["gemm_calls"], by_key[key]["gemm_calls"]))


def close(a, b):
    return abs(a - b) <= 1e-4 * max(abs(a), abs(b), 1e-9)  # 6 digits printed


def check_gpt(bench, checks):
    """The gpt model on a small batch: tokens/s, the profile (whose GEMM
    FLOPs per layer, counted by the library, must equal those of the
    step's recorded GEMMs the bench's list attributes to that layer) and
    generation with and without the cache."""
    lines = run(bench, "--model", "gpt", "--batch", "2", "--threads", "1",
                "--bench", "train")
    lines += run(bench, "--model", "gpt", "--batch", "2", "--threads", "1",
                 "--bench", "profile")
    lines += run(bench, "--model", "gpt", "--threads", "1", "--bench",
                 "generate", "--new-tokens", "4")
    kinds = {}
    for line in lines:
        kinds.setdefault(line["bench"], []).append(line)
    train = kinds["train"][0]
    require(train, GPT_STEP)
    calls_agree([train], checks)
    tokens = train["batch"] * train["context"] / train["median_s"]
    if train["context"] != 128 or not close(train["tokens_per_s"], tokens) \
            or train["optim"] != "adamw" or train["gemm_s"] <= 0:
        sys.exit("bench_smoke: implausible gpt train line %s" % train)
    layers = kinds["profile"]
    names = {line["name"] for line in layers}
    if len(layers) != 36 or not {"attention", "linear", "layernorm",
                                 "embedding", "positional", "gelu",
                                 "add"} <= names:
        sys.exit("bench_smoke: gpt profile layers %s" % sorted(names))
    for line in layers:
        require(line, PROFILE)
        for part in ("forward", "backward"):
            if not close(line[part + "_flops"],
                         line["list_" + part + "_flops"]):
                sys.exit("bench_smoke: the GEMM list of layer %d (%s) "
                         "differs from the step's %s FLOPs: %s" % (
                             line["layer"], line["name"], part, line))
    require(kinds["profile_step"][0], ["mean_s", "layers_s", "rest_s"])
    gen = {line["use_cache"]: line for line in kinds["generate"]}
    for line in gen.values():
        require(line, GENERATE)
        if not close(line["tokens_per_s"], 4 / line["median_s"]):
            sys.exit("bench_smoke: generate tokens_per_s %s" % line)
    if sorted(gen) != [0, 1]:
        sys.exit("bench_smoke: generate lines %s" % kinds["generate"])


if __name__ == "__main__":
    main()
