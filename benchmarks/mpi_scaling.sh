#!/usr/bin/env bash
# Data-parallel scaling of the large MLP (benchmarks/README_MPI.md): the
# one-process baseline (nnlib_model_step, 1 thread), then 1 and 2 MPI ranks
# of 1 thread each on the same global batch of 256, interleaved REPEATS
# times so that a busy moment hits every setup alike; one JSON line per run,
# then the medians and the 2-rank / 1-process throughput ratio.
#   benchmarks/mpi_scaling.sh [build dir]     (default: build)
#   REPEATS=5 STEPS=50 MPI_FLAGS="..." benchmarks/mpi_scaling.sh
set -euo pipefail
build=${1:-build}
bin=$build/mpi/mpi_scaling
[ -x "$bin" ] || { echo "no $bin: build with MPI found (libopenmpi-dev)"; exit 1; }
repeats=${REPEATS:-5} steps=${STEPS:-50}
flags=(--oversubscribe --mca btl self,vader ${MPI_FLAGS:-})
[ "$(id -u)" -ne 0 ] || flags+=(--allow-run-as-root)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "load average before: $(cat /proc/loadavg)"
export OPENBLAS_NUM_THREADS=1
for ((i = 0; i < repeats; i++)); do
  "$bin" --core --steps "$steps" | tee -a "$out"
  mpirun "${flags[@]}" -np 1 "$bin" --steps "$steps" | tee -a "$out"
  mpirun "${flags[@]}" -np 2 "$bin" --steps "$steps" | tee -a "$out"
done
echo "load average after: $(cat /proc/loadavg)"
python3 - "$out" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def med(mode, ranks, key):
    v = [r[key] for r in runs if r["mode"] == mode and r["ranks"] == ranks]
    return statistics.median(v) if v else float("nan")
core = med("core", 1, "samples_per_s")
print("medians over %d runs each:" % (len(runs) // 3))
print("  1 process, 1 thread (nnlib_model_step): %.0f samples/s, %.1f ms/step"
      % (core, med("core", 1, "step_ms")))
for k in (1, 2):
    print("  %d rank(s) x 1 thread: %.0f samples/s, %.1f ms/step: compute %.1f,"
          " agree %.1f, allreduce %.1f, update %.1f ms; allreduce share %.1f%%;"
          " bare allreduce %.1f ms, bus %.2f GB/s"
          % (k, med("mpi", k, "samples_per_s"), med("mpi", k, "step_ms"),
             med("mpi", k, "compute_ms"), med("mpi", k, "agree_ms"),
             med("mpi", k, "allreduce_ms"), med("mpi", k, "update_ms"),
             100 * med("mpi", k, "allreduce_share"),
             med("mpi", k, "bare_allreduce_ms"),
             med("mpi", k, "bus_gbytes_per_s")))
print("throughput ratio, 2 ranks x 1 thread / 1 process x 1 thread: %.2f"
      % (med("mpi", 2, "samples_per_s") / core))
def best(mode, ranks, key):
    v = [r[key] for r in runs if r["mode"] == mode and r["ranks"] == ranks]
    return min(v) if v else float("nan")
print("fastest steps seen (the machine at its quietest): 1 process %.1f ms,"
      " 1 rank %.1f ms, 2 ranks %.1f ms (gradient allreduce %.1f ms, bare"
      " %.2f ms); ratio %.2f"
      % (best("core", 1, "best_step_ms"), best("mpi", 1, "best_step_ms"),
         best("mpi", 2, "best_step_ms"), best("mpi", 2, "best_allreduce_ms"),
         best("mpi", 2, "best_bare_allreduce_ms"),
         best("core", 1, "best_step_ms") / best("mpi", 2, "best_step_ms")))
PY
