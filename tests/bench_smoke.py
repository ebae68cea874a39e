#!/usr/bin/env python3
"""nnlib-bench end to end, briefly: the JSON fields scripts outside the
project read (issue 9) are there, with sane values, and to_markdown.py
turns the lines into its tables. Speed is not judged here (benchmarks do
that); this only keeps the output format from drifting.

    bench_smoke.py NNLIB_BENCH TO_MARKDOWN_PY
"""
import json
import subprocess
import sys

COMMON = ["bench", "model", "batch", "threads", "reps", "median_s", "min_s",
          "max_s", "samples_per_s", "gflops"]
STEP = COMMON + ["gemm_s", "gemm_efficiency", "kernels"]
GEMM = ["bench", "m", "n", "k", "trans", "role", "peak_gflops",
        "peak_fraction", "median_s", "gflops", "kernels"]
MEMORY = ["peak_bytes", "needed_bytes", "peak_ratio", "params_bytes",
          "grads_bytes", "optimizer_bytes", "activations_bytes"]


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
    require(kinds["machine"][0], ["cpu", "cores", "openblas",
                                  "openblas_core", "peak_gflops_per_core"])
    for line in kinds["train"] + kinds["infer"]:
        require(line, STEP)
        if not (line["min_s"] <= line["median_s"] <= line["max_s"] and
                line["samples_per_s"] > 0 and line["gemm_s"] > 0 and
                line["model"] == "mlp-small" and line["batch"] == 32):
            sys.exit("bench_smoke: implausible step line %s" % line)
        expect = line["batch"] / line["median_s"]
        if abs(line["samples_per_s"] - expect) > 1e-3 * expect:
            sys.exit("bench_smoke: samples_per_s is not batch / median_s")
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
    print("bench_smoke: %d lines, fields and tables present" % len(lines))


if __name__ == "__main__":
    main()
