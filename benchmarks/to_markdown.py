#!/usr/bin/env python3
"""Turn benchmark JSON lines into markdown tables.

    python3 benchmarks/to_markdown.py results.jsonl [more.jsonl ...] > out.md
    nnlib-bench | python3 benchmarks/to_markdown.py

Reads the lines of nnlib-bench, fann-bench ("library": "fann") and
compare_pytorch.py ("library": "pytorch"), in any mix, and prints: the
machine, training and inference (with gemm_efficiency), raw GEMMs, peak
memory, the ratios against FANN and PyTorch, and the issue-9 targets.
Lines it does not know are skipped.
"""
import json
import sys


def load(paths):
    rows = []
    files = [open(p) for p in paths] if paths else [sys.stdin]
    for f in files:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    return rows


def fmt(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if abs(v) >= 1000:
            return "{:,.0f}".format(v)
        return "{:.{}g}".format(float(v), digits)
    return str(v)


def us(seconds):
    return "-" if seconds is None else "%.1f" % (seconds * 1e6)


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def machine(rows):
    for r in rows:
        if r.get("bench") == "machine":
            return ("Machine: %s, %s cores; %s (kernels: %s%s); measured FP32 "
                    "peak %.0f GFLOP/s per core (%s); nnlib %s\n" % (
                        r.get("cpu"), r.get("cores"), r.get("openblas"),
                        r.get("openblas_core"),
                        ", OPENBLAS_CORETYPE=" + r["openblas_coretype_env"]
                        if r.get("openblas_coretype_env") else "",
                        r.get("peak_gflops_per_core") or 0.0,
                        r.get("peak_isa"), r.get("nnlib")))
    return ""


def nnlib_rows(rows, bench):
    return [r for r in rows if r.get("bench") == bench and "library" not in r]


def steps_table(rows):
    out = []
    for r in nnlib_rows(rows, "train") + nnlib_rows(rows, "infer"):
        out.append([r["bench"], r["model"], str(r["batch"]),
                    str(r["threads"]), us(r["median_s"]), us(r["min_s"]),
                    us(r["max_s"]), fmt(r["samples_per_s"]),
                    fmt(r["gflops"]), us(r.get("gemm_s")),
                    fmt(r.get("gemm_efficiency"))])
    if not out:
        return ""
    return md_table(["bench", "model", "batch", "threads", "median µs",
                     "min µs", "max µs", "samples/s", "GFLOP/s",
                     "GEMMs alone µs", "gemm_efficiency"], out)


def gemm_table(rows):
    out = []
    for r in nnlib_rows(rows, "gemm"):
        shape = "%dx%dx%d" % (r["m"], r["n"], r["k"])
        out.append([r["model"], str(r["batch"]) if r["batch"] else "-",
                    r["role"], r["trans"], shape, str(r["threads"]),
                    us(r["median_s"]), fmt(r["gflops"]),
                    "%.0f%%" % (100 * r["peak_fraction"])
                    if r.get("peak_fraction") else "-"])
    if not out:
        return ""
    return md_table(["model", "batch", "role", "trans", "m x n x k",
                     "threads", "median µs", "GFLOP/s", "of peak"], out)


def memory_table(rows):
    out = []
    for r in nnlib_rows(rows, "memory"):
        mib = lambda b: "%.1f" % (b / 2**20)
        out.append([r["model"], str(r["batch"]), r.get("optim", "-"),
                    mib(r["peak_bytes"]), mib(r["needed_bytes"]),
                    "%.2f" % r["peak_ratio"], mib(r["params_bytes"]),
                    mib(r["grads_bytes"]), mib(r["optimizer_bytes"]),
                    mib(r["activations_bytes"]),
                    mib(r["rss_growth_bytes"])])
    if not out:
        return ""
    return md_table(["model", "batch", "optim", "peak heap MiB",
                     "needed MiB", "ratio", "params", "grads",
                     "optimizer", "activations", "RSS growth MiB"], out)


def fann_table(rows):
    nn = {(r["bench"], r["model"], r["batch"]): r
          for r in nnlib_rows(rows, "train") + nnlib_rows(rows, "infer")
          if r["threads"] == 1}
    best = {}
    for r in rows:
        if r.get("library") != "fann":
            continue
        key = (r["bench"], r["model"], r["batch"])
        if key not in best or r["samples_per_s"] > best[key]["samples_per_s"]:
            best[key] = r
    out = []
    for key, f in sorted(best.items()):
        n = nn.get(key)
        if n is None:
            continue
        out.append([key[0], key[1], str(key[2]), fmt(n["samples_per_s"]),
                    "%s (%s)" % (fmt(f["samples_per_s"]),
                                 f.get("algorithm", "run")),
                    "%.0fx" % (n["samples_per_s"] / f["samples_per_s"])])
    if not out:
        return ""
    return md_table(["bench", "model", "batch", "nnlib samples/s (1 thread)",
                     "FANN samples/s (best)", "nnlib / FANN"], out)


def torch_table(rows):
    out = []
    for r in rows:
        if r.get("library") != "pytorch" or not r.get("best"):
            continue
        out.append([r["bench"], r["model"], str(r["batch"]),
                    str(r["threads"]), fmt(r["nnlib_samples_per_s"]),
                    "%s (%s)" % (fmt(r["samples_per_s"]), r["setup"]),
                    "%.2fx" % r["ratio"], fmt(r["nnlib_gemm_efficiency"]),
                    fmt(r["gemm_efficiency"])])
    if not out:
        return ""
    return md_table(["bench", "model", "batch", "threads", "nnlib samples/s",
                     "PyTorch samples/s (best setup)", "nnlib / PyTorch",
                     "nnlib gemm_efficiency", "PyTorch gemm_efficiency"], out)


def find(rows, bench, model, batch, threads):
    for r in nnlib_rows(rows, bench):
        if (r["model"], r["batch"], r["threads"]) == (model, batch, threads):
            return r
    return None


def targets(rows):
    out = []

    def check(name, value, goal, ok, show):
        if value is None:
            out.append([name, goal, "not measured", "-"])
        else:
            out.append([name, goal, show(value), "met" if ok(value) else
                        "not met"])

    for threads, goal in ((1, 0.95), (2, 0.90)):
        r = find(rows, "train", "mlp-large", 256, threads)
        check("mlp-large train b256, %d thread%s: gemm_efficiency" % (
            threads, "s" if threads > 1 else ""), r and r["gemm_efficiency"],
            ">= %.2f" % goal, lambda v, g=goal: v >= g, lambda v: "%.3f" % v)
    r = find(rows, "train", "mlp-small", 32, 1)
    check("mlp-small train b32, 1 thread: samples/s",
          r and r["samples_per_s"], ">= 1,600,000",
          lambda v: v >= 1.6e6, lambda v: "{:,.0f}".format(v))
    for batch in (64, 256, 1024):
        r = find(rows, "infer", "mlp-large", batch, 1)
        check("mlp-large infer b%d, 1 thread: gemm_efficiency" % batch,
              r and r["gemm_efficiency"], ">= 0.97",
              lambda v: v >= 0.97, lambda v: "%.3f" % v)
    mem = nnlib_rows(rows, "memory")
    check("mlp-large train b1024: peak / needed bytes",
          mem[0]["peak_ratio"] if mem else None, "<= 1.25",
          lambda v: v <= 1.25, lambda v: "%.2f" % v)
    return md_table(["target", "goal", "measured", "status"], out)


def main():
    rows = load(sys.argv[1:])
    parts = [machine(rows)]
    for title, body in (("Training steps and inference", steps_table(rows)),
                        ("Targets (issue 9)", targets(rows)),
                        ("Against PyTorch", torch_table(rows)),
                        ("Against FANN", fann_table(rows)),
                        ("Peak memory", memory_table(rows)),
                        ("Raw sgemm", gemm_table(rows))):
        if body:
            parts.append("### %s\n\n%s" % (title, body))
    sys.stdout.write("\n".join(parts))


if __name__ == "__main__":
    main()
