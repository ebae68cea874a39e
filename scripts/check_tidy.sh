#!/usr/bin/env bash
# Static analysis, second tool (docs/RELIABILITY.md): clang-tidy's path
# analyzer and its bugprone checks over the library (src/), with the check
# list of .clang-tidy and every finding an error. It needs the compile
# commands of a clang configuration (build-tidy, configured, never built).
# The analyzer reads one file at a time: the error helpers' contract (they
# return the status they are given) is shown to it by macros under
# __clang_analyzer__ in src/core/core.h, src/core/codec.h and
# src/onnx/import.h.
#   scripts/check_tidy.sh
# A finding that is wrong is better met by code that states the invariant;
# where code cannot say it, a NOLINT(check) comment gives the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
build=${BUILD_PREFIX:-build}-tidy
for tool in clang clang-tidy; do
  command -v $tool >/dev/null ||
    { echo "check_tidy: $tool is not installed (scripts/setup.sh)" >&2; exit 1; }
done
CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON -DNNLIB_BUILD_TESTS=OFF \
  -DNNLIB_BUILD_EXAMPLES=OFF -DNNLIB_BUILD_BENCHMARKS=OFF \
  -DNNLIB_BUILD_TOOLS=OFF -DNNLIB_BUILD_MPI=OFF >/dev/null
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# one clang-tidy per file, as many at once as there are cores: given
# several files, clang-tidy 14 reported an uninitialised va_list in
# src/core/text.c whenever src/core/rng.c came before it in the same
# process (text.c alone is clean)
if ! find src -name '*.c' | sort |
    xargs -P "$(nproc)" -n 1 clang-tidy -p "$build" --quiet >"$log" 2>&1; then
  grep -v -e '^[0-9]* warnings* generated' -e '^Suppressed [0-9]* warnings' "$log"
  echo "FAIL check_tidy: clang-tidy findings above ($(clang-tidy --version | grep -o 'version [0-9.]*'))"
  exit 1
fi
echo "ok: clang-tidy found nothing in src ($(clang-tidy --version | grep -o 'version [0-9.]*'), $(find src -name '*.c' | wc -l) files, $((SECONDS - start)) s)"
