#!/usr/bin/python3
"""Compare nnlib's inference with ONNX Runtime's on the same model (issues
14 and 17): nnlib-bench exports each benchmark model with nnlib's own ONNX
export, ONNX Runtime (onnxruntime-node, benchmarks/ort_bench.js) runs that
file, and the two are timed in interleaved rounds.

    /usr/bin/python3 benchmarks/compare_onnxruntime.py \\
        --bench BUILD/benchmarks/nnlib-bench [--ort-dir build-ort]
        [--model cnn] [--batch 64] [--threads 1] [--rounds 5] [--seconds 1]
        [--json benchmarks/results.jsonl] [--openblas-default]

Needs node and onnxruntime-node (scripts/ort_setup.sh installs both into
build-ort/); exits 77 with a SKIP line when either is missing.

For each model, batch (1; 32 where nnlib-bench's suite uses 32, else 64;
256) and thread count (1, 2):

1. `nnlib-bench --export-onnx` writes the model the bench times (same
   layers and seed, so the same weights) as ONNX, with one batch of the
   bench's inputs and nnlib's predictions for it, into --work-dir.
2. ort_bench.js --check runs that batch in ONNX Runtime (the session
   options of the timing) and compares: a model whose output differs from
   nnlib's by more than --tolerance (1e-4) of the output's largest
   magnitude is refused, not timed.
3. --rounds rounds, each one `nnlib-bench --bench infer` (nnlib_model_predict
   and its GEMMs replayed alone, for gemm_efficiency) and one ort_bench.js
   run (intraOpNumThreads = threads, interOpNumThreads 1, every graph
   optimisation), alternating which goes first; ort_bench.js also times an
   Identity model at batch 1 (written here with python3-onnx), ONNX
   Runtime's fixed cost per call through Node. The medians of the rounds'
   medians are compared.

Prints a table (nnlib / ONNX Runtime samples/s) and the batch-1 latencies,
and appends one JSON line per model, batch and thread count to --json
(default benchmarks/results.jsonl; --json '' writes none):
bench "infer", library "onnxruntime", model, batch, threads, rounds,
nnlib_samples_per_s, ort_samples_per_s, ratio (nnlib / ort),
nnlib_median_s, ort_median_s, ort_call_overhead_us, nnlib_gemm_efficiency,
openblas_kernels, check_relative_error, load_average and the versions.

OPENBLAS_CORETYPE is passed on as the environment sets it, and the rows'
openblas_kernels say which (its value, or "openblas-default" when unset).
--openblas-default unsets it for the nnlib-bench processes only (ONNX
Runtime does not use OpenBLAS) and labels the rows "openblas-default".
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ORT_BENCH = os.path.join(HERE, "ort_bench.js")
MODELS = ["mlp-small", "mlp-large", "cnn", "lstm", "gru", "gpt"]
# the middle batch is nnlib-bench's own first batch: 32 for these, else 64
SUITE_32 = {"mlp-small", "gpt"}
THREADS = [1, 2]
SKIP = 77


def batches_for(model):
    return [1, 32 if model in SUITE_32 else 64, 256]


def say(text):
    print("compare_onnxruntime: " + text, file=sys.stderr, flush=True)


def json_lines(out):
    return [json.loads(l) for l in out.splitlines() if l.startswith("{")]


def run(cmd, env=None):
    """stdout of cmd; exits naming the command and its stderr on failure."""
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("compare_onnxruntime: %s failed (status %d): %s%s" % (
            " ".join(cmd), p.returncode, p.stderr.strip(), p.stdout.strip()))
    return p.stdout


# ------------------------------------------------------------ the setup

def find_ort(args):
    """(node, version) or exit 77 when node or onnxruntime-node is absent."""
    node = shutil.which(args.node)
    if node is None:
        print("SKIP: node not found (scripts/ort_setup.sh installs it)")
        sys.exit(SKIP)
    package = os.path.join(args.ort_dir, "node_modules", "onnxruntime-node",
                           "package.json")
    try:
        with open(package) as f:
            version = json.load(f)["version"]
    except (OSError, ValueError, KeyError) as e:
        print("SKIP: onnxruntime-node is not installed in %s "
              "(scripts/ort_setup.sh installs it): %s" % (args.ort_dir, e))
        sys.exit(SKIP)
    return node, version


def nnlib_env(args):
    env = dict(os.environ)
    if args.openblas_default:
        env.pop("OPENBLAS_CORETYPE", None)
    return env


def kernels_label(args):
    if args.openblas_default:
        return "openblas-default"
    return os.environ.get("OPENBLAS_CORETYPE") or "openblas-default"


def write_identity(path):
    """An Identity graph float32 [N, 1] -> [N, 1] (opset 17, as nnlib's
    exports): calling it costs only ONNX Runtime's per-call work."""
    import onnx
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])],
                              "identity", [x], [y])
    model = helper.make_model(graph, producer_name="compare_onnxruntime.py",
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def export(args, model, batch):
    """nnlib-bench --export-onnx: the export line (files, shapes, vocab)."""
    path = os.path.join(args.work_dir, "%s-b%d.onnx" % (model, batch))
    out = run([args.bench, "--model", model, "--batch", str(batch),
               "--threads", "1", "--export-onnx", path], env=nnlib_env(args))
    return json_lines(out)[-1]


def ort_cmd(args, node, onnx, batch, threads):
    return [node, ORT_BENCH, "--ort-dir", args.ort_dir, "--model", onnx,
            "--batch", str(batch), "--threads", str(threads)]


def check(args, node, exported, threads):
    """ort_bench.js --check: its line (ok, relative_error, ...)."""
    cmd = ort_cmd(args, node, exported["onnx"], exported["batch"], threads)
    cmd += ["--check", exported["input"], exported["output"],
            "--tolerance", str(args.tolerance)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    lines = json_lines(p.stdout)
    if p.returncode not in (0, 1) or not lines:
        sys.exit("compare_onnxruntime: %s failed (status %d): %s" % (
            " ".join(cmd), p.returncode, p.stderr.strip()))
    return lines[-1]


# ------------------------------------------------------------ the rounds

def nnlib_once(args, model, batch, threads):
    """nnlib-bench --bench infer: (machine line, infer line)."""
    lines = json_lines(run(
        [args.bench, "--model", model, "--batch", str(batch), "--threads",
         str(threads), "--bench", "infer", "--seconds", str(args.seconds)],
        env=nnlib_env(args)))
    machine = [l for l in lines if l.get("bench") == "machine"]
    infer = [l for l in lines if l.get("bench") == "infer"]
    return machine[0], infer[-1]


def ort_once(args, node, exported, threads, identity):
    """ort_bench.js: (the model's line, the identity model's line)."""
    cmd = ort_cmd(args, node, exported["onnx"], exported["batch"], threads)
    cmd += ["--seconds", str(args.seconds), "--identity", identity]
    if exported["vocab"] > 0:
        cmd += ["--vocab", str(exported["vocab"])]
    lines = json_lines(run(cmd))
    kind = {l["bench"]: l for l in lines}
    return kind["ort_infer"], kind["ort_identity"]


def median_of(rows, key):
    return statistics.median(r[key] for r in rows)


def compare(args, node, version, exported, threads, identity, checked):
    model, batch = exported["model"], exported["batch"]
    nn, ort, ident, machine = [], [], [], None
    load_before = os.getloadavg()[0]
    for r in range(args.rounds):
        order = ("nnlib", "ort") if r % 2 == 0 else ("ort", "nnlib")
        for side in order:
            if side == "nnlib":
                machine, line = nnlib_once(args, model, batch, threads)
                nn.append(line)
            else:
                line, id_line = ort_once(args, node, exported, threads,
                                         identity)
                ort.append(line)
                ident.append(id_line)
    nn_med, ort_med = median_of(nn, "median_s"), median_of(ort, "median_s")
    row = {
        "bench": "infer", "library": "onnxruntime", "model": model,
        "batch": batch, "threads": threads, "rounds": args.rounds,
        "seconds": args.seconds,
        "nnlib_samples_per_s": batch / nn_med,
        "ort_samples_per_s": batch / ort_med,
        "ratio": ort_med / nn_med,  # = nnlib samples/s over ort's
        "nnlib_median_s": nn_med, "ort_median_s": ort_med,
        "ort_call_overhead_us": median_of(ident, "median_s") * 1e6,
        "nnlib_gemm_efficiency": median_of(nn, "gemm_efficiency"),
        # nnlib's time beyond its GEMMs per call (batch 1: its overhead)
        "nnlib_beyond_gemm_us": median_of(nn, "overhead_s") * 1e6,
        "openblas_kernels": kernels_label(args),
        "nnlib_openblas_core": nn[0].get("kernels"),
        "check_relative_error": checked["relative_error"],
        "tolerance": args.tolerance,
        "input_type": exported["input_type"],
        "input_shape": exported["input_shape"],
        "ort_graph_optimization": "all", "ort_inter_op_threads": 1,
        "onnxruntime": version, "nnlib": machine.get("nnlib"),
        "cpu": machine.get("cpu"),
        "cpu_family": machine.get("cpu_family"),
        "cpu_model": machine.get("cpu_model"),
        "peak_avx2_gflops_per_core": machine.get("peak_avx2_gflops_per_core"),
        "peak_avx512_gflops_per_core":
            machine.get("peak_avx512_gflops_per_core"),
        "load_average": round(max(load_before, os.getloadavg()[0]), 2)}
    if exported["vocab"] > 0:  # a language model: every position a token
        context = int(exported["input_shape"].split("x")[1])
        row.update({"context": context,
                    "nnlib_tokens_per_s": batch * context / nn_med,
                    "ort_tokens_per_s": batch * context / ort_med})
    return row


# ------------------------------------------------------------ the tables

def machine_text(rows):
    """The CPU and its two FMA peaks: ONNX Runtime runs AVX-512 kernels,
    which double the Haswell kernels' peak on a Zen 5 and match it on a
    Zen 4, so no ratio below means anything without this line."""
    if not rows:
        return ""
    r = rows[0]
    avx2, avx512 = (r.get("peak_avx2_gflops_per_core"),
                    r.get("peak_avx512_gflops_per_core"))
    text = "machine: %s (cpu family %s, model %s)" % (
        r.get("cpu"), r.get("cpu_family"), r.get("cpu_model"))
    if avx2 and avx512:
        text += ("; FMA peak of one core: AVX2 %.0f GFLOP/s, AVX-512 %.0f "
                 "GFLOP/s (%.2fx)" % (avx2, avx512, avx512 / avx2))
    return text


def table(rows):
    lines = ["| model | batch | threads | nnlib samples/s | "
             "ONNX Runtime samples/s | nnlib / ORT | nnlib gemm_eff | "
             "ORT call overhead µs |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append("| %s | %d | %d | %.0f | %.0f | %.2fx | %.3f | %.1f |" % (
            r["model"], r["batch"], r["threads"], r["nnlib_samples_per_s"],
            r["ort_samples_per_s"], r["ratio"], r["nnlib_gemm_efficiency"],
            r["ort_call_overhead_us"]))
    return "\n".join(lines)


def latency_table(rows):
    """Batch 1: one predict call against one session.run, with ORT's cost
    of calling an Identity model beside it."""
    ones = [r for r in rows if r["batch"] == 1]
    if not ones:
        return ""
    lines = ["| model | threads | nnlib predict µs | nnlib beyond its GEMMs µs "
             "| ORT run µs | ORT Identity run µs | ORT run - Identity µs | "
             "ORT / nnlib |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in ones:
        n, o = r["nnlib_median_s"] * 1e6, r["ort_median_s"] * 1e6
        lines.append("| %s | %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.2fx |"
                     % (r["model"], r["threads"], n, r["nnlib_beyond_gemm_us"],
                        o, r["ort_call_overhead_us"],
                        o - r["ort_call_overhead_us"], o / n))
    return "Batch 1 latency (median per call):\n\n" + "\n".join(lines)


# ------------------------------------------------------------ the driver

def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", required=True, help="path of nnlib-bench")
    ap.add_argument("--ort-dir", default=os.environ.get(
        "NNLIB_ORT_DIR", os.path.join(HERE, "..", "build-ort")),
        help="where scripts/ort_setup.sh installed onnxruntime-node "
             "(default $NNLIB_ORT_DIR, else build-ort/ of the checkout)")
    ap.add_argument("--node", default="node", help="the node program")
    ap.add_argument("--model", choices=MODELS, action="append",
                    help="repeatable; default all")
    ap.add_argument("--batch", type=int, action="append",
                    help="repeatable; default 1, 32 or 64, 256")
    ap.add_argument("--threads", type=int, choices=THREADS, action="append",
                    help="repeatable; default 1 and 2")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.0,
                    help="time per measurement of each side")
    ap.add_argument("--tolerance", type=float, default=1e-4,
                    help="largest output difference relative to the "
                         "output's scale before a model is refused")
    ap.add_argument("--json", default=os.path.join(HERE, "results.jsonl"),
                    help="append the result lines here ('' for none)")
    ap.add_argument("--work-dir", help="exported models (default: "
                    "ort_compare/ beside nnlib-bench)")
    ap.add_argument("--openblas-default", action="store_true",
                    help="unset OPENBLAS_CORETYPE for nnlib-bench only")
    args = ap.parse_args()
    if args.rounds < 1 or not args.seconds > 0 or not args.tolerance > 0:
        ap.error("--rounds, --seconds and --tolerance must be positive")
    args.bench = os.path.abspath(args.bench)
    args.ort_dir = os.path.abspath(args.ort_dir)
    args.work_dir = os.path.abspath(args.work_dir or os.path.join(
        os.path.dirname(args.bench), "ort_compare"))
    return args


def main():
    args = parse_args()
    node, version = find_ort(args)
    os.makedirs(args.work_dir, exist_ok=True)
    identity = os.path.join(args.work_dir, "identity.onnx")
    write_identity(identity)
    rows, refused = [], []
    for model in args.model or MODELS:
        for batch in args.batch or batches_for(model):
            exported = export(args, model, batch)
            for threads in args.threads or THREADS:
                checked = check(args, node, exported, threads)
                if not checked["ok"]:
                    refused.append(checked)
                    say("%s batch %d threads %d REFUSED: ONNX Runtime's "
                        "output differs from nnlib's by %.3g of its scale "
                        "(tolerance %g): %s" % (
                            model, batch, threads,
                            checked["relative_error"], args.tolerance,
                            json.dumps(checked)))
                    continue
                say("%s batch %d threads %d (outputs agree to %.2g)" % (
                    model, batch, threads, checked["relative_error"]))
                rows.append(compare(args, node, version, exported, threads,
                                    identity, checked))
    if args.json and rows:
        with open(args.json, "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    parts = [machine_text(rows), table(rows), latency_table(rows)]
    print("\n\n".join(p for p in parts if p))
    if refused:
        say("%d model/batch/thread case(s) refused: outputs disagree" %
            len(refused))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
