#!/usr/bin/env python3
"""Turn benchmark JSON lines into markdown tables.

    python3 benchmarks/to_markdown.py results.jsonl [more.jsonl ...] > out.md
    nnlib-bench | python3 benchmarks/to_markdown.py

Reads the lines of nnlib-bench, fann-bench ("library": "fann"),
compare_pytorch.py ("library": "pytorch") and compare_onnxruntime.py
("library": "onnxruntime"), in any mix, and prints: the machine, training
and inference (with gemm_efficiency), raw GEMMs, peak memory, the ratios
against FANN, PyTorch and ONNX Runtime, and the issue-9 targets.
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
                        (", OPENBLAS_CORETYPE=" + r["openblas_coretype_env"]
                         if r.get("openblas_coretype_env") else "") +
                        (", a fallback narrower than the CPU"
                         if r.get("openblas_fallback") else ""),
                        r.get("peak_gflops_per_core") or 0.0,
                        r.get("peak_isa"), r.get("nnlib")))
    return ""


def primary_kernels(rows):
    """The kernels of the main run: the machine line's (OPENBLAS_CORETYPE
    if the environment sets it, else OpenBLAS's own choice)."""
    for r in rows:
        if r.get("bench") == "machine":
            return r.get("openblas_core")
    return None


def kernel_sets(rows):
    """Every kernels value the nnlib lines carry, the primary one first."""
    primary = primary_kernels(rows)
    seen = [primary] if primary else []
    for r in rows:
        k = r.get("kernels")
        if k and "library" not in r and k not in seen:
            seen.append(k)
    return seen


def nnlib_rows(rows, bench, kernels=None):
    """nnlib's lines of one kind; kernels None: the primary run's (lines
    without a kernels field predate it and count as primary)."""
    want = kernels or primary_kernels(rows)
    return [r for r in rows if r.get("bench") == bench and "library" not in r
            and r.get("kernels", want) == want]


def steps_table(rows, all_rows=False):
    out = []
    picked = rows if all_rows else (nnlib_rows(rows, "train") +
                                    nnlib_rows(rows, "infer"))
    for r in picked:
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
    """One row per distinct product of the bench's GEMM list (model, batch,
    role, transposes, shape, threads). A list entry may stand for several
    identical calls (its gflops counts them all), and a step repeats the
    same product per layer, per block of heads or per time step (the gpt
    list has 819 entries), so a row adds its entries' times and flops:
    the time of all of them and their GFLOP/s together."""
    groups = {}
    for r in nnlib_rows(rows, "gemm"):
        key = (r["model"], r["batch"], r["role"], r["trans"], r["m"],
               r["n"], r["k"], r["threads"])
        groups.setdefault(key, []).append(r)
    out = []
    for key, rs in groups.items():
        model, batch, role, trans, m, n, k, threads = key
        seconds = sum(r["median_s"] for r in rs)
        gflops = sum(r["gflops"] * r["median_s"] for r in rs) / seconds
        peak = rs[0].get("peak_gflops")
        out.append([model, str(batch) if batch else "-", role, trans,
                    "%dx%dx%d" % (m, n, k), str(threads), str(len(rs)),
                    us(seconds), fmt(gflops),
                    "%.0f%%" % (100 * gflops / peak) if peak else "-"])
    if not out:
        return ""
    return md_table(["model", "batch", "role", "trans", "m x n x k",
                     "threads", "entries", "µs, all entries", "GFLOP/s",
                     "of peak"], out)


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
        if r.get("library") != "pytorch" or not r.get("best") or \
                "nnlib_samples_per_s" not in r:
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


def ort_rows(rows):
    """compare_onnxruntime.py's lines, the newest per model, batch, threads
    and kernels (results files are appended to), in the order first seen."""
    latest = {}
    for r in rows:
        if r.get("library") == "onnxruntime" and "ort_samples_per_s" in r:
            key = (r["model"], r["batch"], r["threads"],
                   r.get("openblas_kernels"))
            latest.pop(key, None)
            latest[key] = r
    return list(latest.values())


def ort_table(rows):
    """nnlib against ONNX Runtime on nnlib's own ONNX export of the model;
    then batch 1 as latencies, beside ORT's cost of an Identity call."""
    picked = ort_rows(rows)
    out = [[r["model"], str(r["batch"]), str(r["threads"]),
            r.get("openblas_kernels", "-"), fmt(r["nnlib_samples_per_s"]),
            fmt(r["ort_samples_per_s"]), "%.2fx" % r["ratio"],
            fmt(r.get("nnlib_gemm_efficiency")),
            "%.1f" % r["ort_call_overhead_us"],
            fmt(r.get("load_average"))] for r in picked]
    if not out:
        return ""
    text = md_table(["model", "batch", "threads", "nnlib's OpenBLAS kernels",
                     "nnlib samples/s", "ONNX Runtime samples/s",
                     "nnlib / ORT", "nnlib gemm_efficiency",
                     "ORT Identity call µs", "load average"], out)
    ones = [[r["model"], str(r["threads"]), r.get("openblas_kernels", "-"),
             us(r["nnlib_median_s"]),
             fmt(r.get("nnlib_beyond_gemm_us")), us(r["ort_median_s"]),
             "%.1f" % r["ort_call_overhead_us"],
             us(r["ort_median_s"] - r["ort_call_overhead_us"] * 1e-6),
             "%.2fx" % (r["ort_median_s"] / r["nnlib_median_s"])]
            for r in picked if r["batch"] == 1]
    if ones:
        text += "\nBatch 1, median latency per call:\n\n" + md_table(
            ["model", "threads", "nnlib's OpenBLAS kernels",
             "nnlib predict µs", "nnlib beyond its GEMMs µs", "ORT run µs",
             "ORT Identity call µs",
             "ORT run - Identity µs", "ORT / nnlib"], ones)
    return text


def gpt_table(rows):
    """Language models (lines with tokens_per_s): nnlib's training and
    inference tokens/s, and every PyTorch setup's beside them."""
    out = []
    for r in nnlib_rows(rows, "train") + nnlib_rows(rows, "infer"):
        if "tokens_per_s" in r:
            out.append([r["bench"], r["model"], str(r["batch"]),
                        str(r["context"]), str(r["threads"]), "nnlib",
                        fmt(r["tokens_per_s"]),
                        fmt(r.get("gemm_efficiency")), "-"])
    for r in rows:
        if (r.get("library") == "pytorch" and "nnlib_tokens_per_s" in r):
            out.append([r["bench"], r["model"], str(r["batch"]),
                        str(r["context"]), str(r["threads"]),
                        "PyTorch %s%s" % (r["setup"],
                                          " (best)" if r.get("best") else ""),
                        fmt(r["tokens_per_s"]), fmt(r["gemm_efficiency"]),
                        "%.2fx" % r["ratio"]])
    if not out:
        return ""
    return md_table(["bench", "model", "batch", "context", "threads",
                     "library", "tokens/s", "gemm_efficiency",
                     "nnlib / this"], out)


def generate_table(rows):
    """nnlib_model_generate with and without the cache, and PyTorch
    re-running the window per token."""
    out = []
    for r in nnlib_rows(rows, "generate"):
        out.append([r["model"], "nnlib, %s" % (
            "cache (restarts %d)" % r["cache_restarts"] if r["use_cache"]
            else "no cache"), str(r["threads"]), str(r["prompt"]),
            str(r["new_tokens"]), fmt(r["tokens_per_s"])])
    for r in rows:
        if r.get("library") == "pytorch" and r.get("bench") == "generate":
            out.append([r["model"], "PyTorch, re-run per token",
                        str(r["threads"]), str(r["prompt"]),
                        str(r["new_tokens"]), fmt(r["tokens_per_s"])])
    if not out:
        return ""
    return md_table(["model", "how", "threads", "prompt", "new tokens",
                     "tokens/s"], out)


def profile_table(rows):
    """Where a step's time goes, by layer name (nnlib-bench --bench
    profile), and what is outside the layers (loss, optimizer)."""
    out = []
    ms = lambda v: "-" if v is None else "%.1f" % (v * 1e3)
    for r in nnlib_rows(rows, "profile_name"):
        out.append([r["model"], str(r["batch"]), str(r["threads"]),
                    r["name"], str(r["layers"]), ms(r["seconds"]),
                    "%.1f%%" % (100 * r["share"]), ms(r.get("gemm_s")),
                    ms(r.get("beyond_gemm_s"))])
    for r in nnlib_rows(rows, "profile_step"):
        out.append([r["model"], str(r["batch"]), str(r["threads"]),
                    "(loss, optimizer, rest)", "-", ms(r["rest_s"]),
                    "%.1f%%" % (100 * r["rest_share"]), "0.0",
                    ms(r["rest_s"])])
        out.append([r["model"], str(r["batch"]), str(r["threads"]),
                    "**step (mean)**", "-", ms(r["mean_s"]), "100%", "-",
                    "-"])
    if not out:
        return ""
    return md_table(["model", "batch", "threads", "layer name", "layers",
                     "ms per step", "share of step", "its GEMMs alone ms",
                     "beyond its GEMMs ms"], out)


def find(rows, bench, model, batch, threads, kernels=None):
    for r in nnlib_rows(rows, bench, kernels):
        if (r["model"], r["batch"], r["threads"]) == (model, batch, threads):
            return r
    return None


def best_fann(rows, bench, model, batch):
    best = None
    for r in rows:
        if (r.get("library") == "fann" and
                (r["bench"], r["model"], r["batch"]) == (bench, model, batch)
                and (best is None or r["samples_per_s"] > best["samples_per_s"])):
            best = r
    return best


def target_values(rows, kernels):
    """(name, goal, value, ok, show) of each issue-9 target, measured with
    the given kernels."""
    out = []
    ratio = lambda v: "%.3f" % v
    for threads, goal in ((1, 0.95), (2, 0.90)):
        r = find(rows, "train", "mlp-large", 256, threads, kernels)
        out.append(("mlp-large train b256, %d thread%s: gemm_efficiency" % (
            threads, "s" if threads > 1 else ""), ">= %.2f" % goal,
            r and r["gemm_efficiency"], lambda v, g=goal: v >= g, ratio))
    r = find(rows, "train", "mlp-small", 32, 1, kernels)
    out.append(("mlp-small train b32, 1 thread: samples/s", ">= 1,600,000",
                r and r["samples_per_s"], lambda v: v >= 1.6e6,
                lambda v: "{:,.0f}".format(v)))
    r = find(rows, "train", "mlp-small", 32, 1, kernels)
    out.append(("mlp-small train b32, 1 thread: µs beyond its GEMMs",
                "<= 5", r and r.get("gemm_s") and
                (r["median_s"] - r["gemm_s"]) * 1e6,
                lambda v: v <= 5.0, lambda v: "%.1f" % v))
    for batch in (64, 256, 1024):
        r = find(rows, "infer", "mlp-large", batch, 1, kernels)
        out.append(("mlp-large infer b%d, 1 thread: gemm_efficiency" % batch,
                    ">= 0.97", r and r["gemm_efficiency"],
                    lambda v: v >= 0.97, ratio))
    f = best_fann(rows, "train", "mlp-large", 256)
    for threads in (1, 2):  # FANN runs one thread either way
        r = find(rows, "train", "mlp-large", 256, threads, kernels)
        out.append(("mlp-large train b256, %d thread%s: nnlib / FANN (best, "
                    "1 thread)" % (threads, "s" if threads > 1 else ""),
                    ">= 25x",
                    r and f and r["samples_per_s"] / f["samples_per_s"],
                    lambda v: v >= 25.0, lambda v: "%.1fx" % v))
    # memory does not depend on the kernels: any run's line will do
    mem = nnlib_rows(rows, "memory", kernels) or nnlib_rows(rows, "memory")
    out.append(("mlp-large train b1024: peak / needed bytes", "<= 1.25",
                mem[0]["peak_ratio"] if mem else None, lambda v: v <= 1.25,
                lambda v: "%.2f" % v))
    return out


def targets(rows):
    """One measured/status column pair per kernels the lines ran on: the
    environment's first, then OpenBLAS's own choice if run_all added it."""
    sets = kernel_sets(rows) or [None]
    columns = [target_values(rows, k) for k in sets]
    header = ["target", "goal"]
    for k in sets:
        header += ["measured (%s kernels)" % k if k else "measured", "status"]
    out = []
    for i, (name, goal, _, _, _) in enumerate(columns[0]):
        line = [name, goal]
        for col in columns:
            value, ok, show = col[i][2], col[i][3], col[i][4]
            if value is None:
                line += ["not measured", "-"]
            else:
                line += [show(value), "met" if ok(value) else "not met"]
        out.append(line)
    return md_table(header, out)


def other_kernels_table(rows):
    """The lines measured with kernels other than the main run's."""
    primary = primary_kernels(rows)
    extra = [r for r in rows if "library" not in r and r.get("kernels")
             and r["kernels"] != primary and r.get("bench") in
             ("train", "infer")]
    return steps_table(extra, all_rows=True) if extra else ""


def main():
    rows = load(sys.argv[1:])
    parts = [machine(rows)]
    for title, body in (("Training steps and inference", steps_table(rows)),
                        ("Targets (issue 9)", targets(rows)),
                        ("With OpenBLAS's own kernels",
                         other_kernels_table(rows)),
                        ("Against PyTorch", torch_table(rows)),
                        ("Against ONNX Runtime", ort_table(rows)),
                        ("Language model (tokens/s)", gpt_table(rows)),
                        ("Generation", generate_table(rows)),
                        ("Per-layer profile", profile_table(rows)),
                        ("Against FANN", fann_table(rows)),
                        ("Peak memory", memory_table(rows)),
                        ("Raw sgemm", gemm_table(rows))):
        if body:
            parts.append("### %s\n\n%s" % (title, body))
    sys.stdout.write("\n".join(parts))


if __name__ == "__main__":
    main()
