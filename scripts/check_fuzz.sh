#!/usr/bin/env bash
# libFuzzer (docs/RELIABILITY.md): builds fuzz/ with clang, ASan+UBSan and
# FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION in build-fuzz, then runs every
# target fuzz/fuzz_<name>.c for FUZZ_SECONDS (default 120) from its
# committed seeds (fuzz/corpus/<name>) and regressions
# (fuzz/regressions/<name>), FUZZ_JOBS targets at a time (default: cores).
# New inputs go to build-fuzz/work/<name>, never into the repository; a
# crash, leak, timeout or out-of-memory fails the run and leaves the input in
# build-fuzz/artifacts/<name>/.
#   FUZZ_SECONDS=3600 scripts/check_fuzz.sh          longer
#   FUZZ_TARGETS="model_load spec" scripts/check_fuzz.sh  some targets
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_PREFIX:-build}-fuzz
seconds=${FUZZ_SECONDS:-120}
jobs=${FUZZ_JOBS:-$(nproc)}
start=$SECONDS
CC=clang cmake -S fuzz -B "$build" >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null
if [ -n "${FUZZ_TARGETS:-}" ]; then
  read -r -a targets <<<"$FUZZ_TARGETS"
else
  targets=()
  for f in fuzz/fuzz_*.c; do
    n=$(basename "$f" .c)
    targets+=("${n#fuzz_}")
  done
fi

# One target for $seconds; its output goes to $build/logs/<name>.log.
fuzz_one() {
  name=$1
  mkdir -p "$build/work/$name" "$build/artifacts/$name" "$build/logs"
  dirs=("$build/work/$name" "fuzz/corpus/$name")
  [ -d "fuzz/regressions/$name" ] && dirs+=("fuzz/regressions/$name")
  if OPENBLAS_NUM_THREADS=1 "$build/fuzz_$name" "${dirs[@]}" \
      -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=512 \
      -timeout=5 -print_final_stats=1 -close_fd_mask=1 \
      -artifact_prefix="$build/artifacts/$name/" \
      >"$build/logs/$name.log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$build/logs/$name.log")
    cov=$(grep -o 'cov: [0-9]*' "$build/logs/$name.log" | tail -n 1)
    echo "ok   fuzz_$name: $runs inputs in $seconds s, $cov"
  else
    echo "FAIL fuzz_$name: see $build/logs/$name.log; the input is in $build/artifacts/$name/"
    grep -E -A30 '^==[0-9]+==ERROR|invariant failed|^SUMMARY' "$build/logs/$name.log" | head -60
    echo "reproduce: $build/fuzz_$name <input>; once fixed, commit the input"
    echo "under fuzz/regressions/$name/ so every build replays it"
    return 1
  fi
}
export -f fuzz_one
export build seconds
printf '%s\n' "${targets[@]}" |
  xargs -P "$jobs" -I{} bash -c 'fuzz_one "$1"' _ {}
echo "ok: ${#targets[@]} fuzz targets, $seconds s each, no findings, in $((SECONDS - start)) s"
