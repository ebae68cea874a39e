#!/usr/bin/python3
"""compare_onnxruntime.py end to end, briefly: nnlib-bench's ONNX export
runs in ONNX Runtime, the result lines carry the fields the README and
to_markdown.py read, with positive ratios, and a disagreeing output is
refused. Speed is not judged here.

    ort_bench_smoke.py NNLIB_BENCH ORT_DIR WORK_DIR

Exit status 77 (ctest's skip) when node or onnxruntime-node is absent.
"""
import array
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BENCHMARKS = os.path.join(HERE, "..", "benchmarks")
COMPARE = os.path.join(BENCHMARKS, "compare_onnxruntime.py")
ORT_BENCH = os.path.join(BENCHMARKS, "ort_bench.js")
TO_MARKDOWN = os.path.join(BENCHMARKS, "to_markdown.py")
FIELDS = ["bench", "library", "model", "batch", "threads", "rounds",
          "nnlib_samples_per_s", "ort_samples_per_s", "ratio",
          "nnlib_median_s", "ort_median_s", "ort_call_overhead_us",
          "openblas_kernels", "nnlib_gemm_efficiency",
          "check_relative_error", "onnxruntime", "load_average"]
SKIP = 77


def fail(message):
    sys.exit("ort_bench_smoke: " + message)


def compare(bench, ort_dir, work, json_path, *extra):
    cmd = [sys.executable, COMPARE, "--bench", bench, "--ort-dir", ort_dir,
           "--work-dir", work, "--json", json_path, "--threads", "1",
           "--rounds", "1", "--seconds", "0.05", *extra]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode == SKIP:
        print(p.stdout.strip())
        sys.exit(SKIP)
    return p


def read_lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def check_row(row, model, batch, kernels):
    missing = [k for k in FIELDS if k not in row]
    if missing:
        fail("row lacks %s: %s" % (missing, row))
    if (row["model"], row["batch"], row["threads"]) != (model, batch, 1) \
            or row["library"] != "onnxruntime" or row["bench"] != "infer":
        fail("row of another case: %s" % row)
    for key in ("nnlib_samples_per_s", "ort_samples_per_s", "ratio",
                "nnlib_median_s", "ort_median_s", "ort_call_overhead_us",
                "nnlib_gemm_efficiency"):
        if not row[key] > 0:
            fail("%s is not positive: %s" % (key, row))
    ratio = row["nnlib_samples_per_s"] / row["ort_samples_per_s"]
    if abs(row["ratio"] - ratio) > 1e-9 * ratio:
        fail("ratio is not nnlib / ort samples/s: %s" % row)
    if abs(row["nnlib_samples_per_s"] * row["nnlib_median_s"] - batch) > \
            1e-9 * batch:
        fail("nnlib_samples_per_s is not batch / nnlib_median_s: %s" % row)
    if not 0 <= row["check_relative_error"] <= 1e-4:
        fail("outputs timed although they differ: %s" % row)
    if row["openblas_kernels"] != kernels:
        fail("openblas_kernels %r, expected %r" % (row["openblas_kernels"],
                                                    kernels))


def check_refusal(bench, ort_dir, work):
    """ort_bench.js --check fails an output moved by 1e-3 of its scale,
    and compare_onnxruntime.py refuses to time (writes no row, exit 1)
    when the tolerance is below the runtimes' rounding differences."""
    onnx = os.path.join(work, "mlp-small-b32.onnx")
    values = array.array("f")
    with open(onnx + ".output.bin", "rb") as f:
        values.frombytes(f.read())
    scale = max(abs(v) for v in values)
    values[3] += 1e-3 * scale
    moved = os.path.join(work, "moved.output.bin")
    with open(moved, "wb") as f:
        f.write(values.tobytes())
    p = subprocess.run(["node", ORT_BENCH, "--ort-dir", ort_dir, "--model",
                        onnx, "--batch", "32", "--check",
                        onnx + ".input.bin", moved],
                       capture_output=True, text=True)
    line = json.loads(p.stdout.strip().splitlines()[-1])
    if p.returncode != 1 or line["ok"] or line["worst_element"] != 3:
        fail("a moved output passed the check: status %d, %s" % (
            p.returncode, line))
    json_path = os.path.join(work, "refused.jsonl")
    p = compare(bench, ort_dir, work, json_path, "--model", "mlp-small",
                "--batch", "32", "--tolerance", "1e-12")
    if p.returncode != 1 or "REFUSED" not in p.stderr or \
            read_lines(json_path):
        fail("a tolerance of 1e-12 did not refuse (status %d): %s" % (
            p.returncode, p.stderr))


def main():
    bench, ort_dir, work = sys.argv[1:4]
    if shutil.which("node") is None:
        print("SKIP: node not found (scripts/ort_setup.sh installs it)")
        return SKIP
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    p = subprocess.run([bench, "--export-onnx", os.path.join(work, "x.onnx")],
                       capture_output=True, text=True)
    if p.returncode != 2 or "--export-onnx needs --model" not in p.stderr:
        fail("--export-onnx without --model: status %d, %s" % (
            p.returncode, p.stderr))
    json_path = os.path.join(work, "rows.jsonl")
    kernels = os.environ.get("OPENBLAS_CORETYPE") or "openblas-default"
    runs = [("mlp-small", 32, [], kernels),
            ("gpt", 1, ["--openblas-default"], "openblas-default")]
    for model, batch, extra, label in runs:
        p = compare(bench, ort_dir, work, json_path, "--model", model,
                    "--batch", str(batch), *extra)
        if p.returncode != 0:
            fail("compare_onnxruntime.py %s failed (status %d): %s" % (
                model, p.returncode, p.stderr))
        rows = read_lines(json_path)
        check_row(rows[-1], model, batch, label)
        if "nnlib / ORT" not in p.stdout:
            fail("no table printed: %s" % p.stdout)
    gpt = read_lines(json_path)[-1]
    if gpt["input_type"] != "int32" or gpt["context"] != 128 or \
            not gpt["ort_tokens_per_s"] > 0:
        fail("gpt row: %s" % gpt)
    text = subprocess.run([sys.executable, TO_MARKDOWN, json_path],
                          check=True, capture_output=True, text=True).stdout
    for title in ("### Against ONNX Runtime", "Batch 1, median latency"):
        if title not in text:
            fail("to_markdown printed no %r:\n%s" % (title, text))
    check_refusal(bench, ort_dir, work)
    print("ort_bench_smoke: mlp-small and gpt timed in both runtimes, "
          "fields and tables present, disagreeing outputs refused")
    return 0


if __name__ == "__main__":
    sys.exit(main())
