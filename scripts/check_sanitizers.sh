#!/usr/bin/env bash
# Warning and sanitizer builds (docs/RELIABILITY.md):
#   1. clang -fsanitize=address,undefined -fno-sanitize-recover=all, Debug,
#      warnings as errors, the whole project; then the whole ctest suite
#      under it, except the tests that cannot run under ASan (below).
#   2. gcc, Release, -Wall -Wextra -Wpedantic -Werror, the whole project.
#   3. clang, Release, -Wall -Wextra -Wpedantic -Werror, the whole project.
# Build dirs: build-asan, build-gcc, build-clang (override the prefix with
# BUILD_PREFIX). Exit status non-zero on the first failure.
#
# Excluded under ASan (ctest -E):
#   install_consumers   compiles outside programs with a plain `cc` and no
#                       sanitizer flags against the installed library; a
#                       sanitized libnnlib.so needs the ASan runtime in the
#                       executable, so they cannot link. The normal build
#                       runs it.
#   python*/rust*/binding*  binding tests run inside python3 / cargo test
#                       binaries that carry no ASan runtime (ASan must be
#                       the first DSO loaded); the normal build runs them.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${BUILD_PREFIX:-build}
jobs=$(nproc)
start=$SECONDS
exclude='^install_consumers$|python|rust|binding'

step() { printf '\n== %s\n' "$*"; }

step "clang ASan+UBSan build (${prefix}-asan)"
CC=clang cmake -S . -B "${prefix}-asan" -DCMAKE_BUILD_TYPE=Debug \
  -DNNLIB_SANITIZE=address,undefined -DNNLIB_WERROR=ON >/dev/null
cmake --build "${prefix}-asan" -j "$jobs"

step "ctest under ASan+UBSan (excluding: $exclude)"
export ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
t=$SECONDS
ctest --test-dir "${prefix}-asan" --output-on-failure -j "$jobs" -E "$exclude"
echo "asan ctest: $((SECONDS - t)) s"
unset ASAN_OPTIONS UBSAN_OPTIONS

step "gcc -Werror build (${prefix}-gcc)"
t=$SECONDS
CC=gcc cmake -S . -B "${prefix}-gcc" -DCMAKE_BUILD_TYPE=Release \
  -DNNLIB_WERROR=ON >/dev/null
cmake --build "${prefix}-gcc" -j "$jobs" >/dev/null
echo "gcc build: $((SECONDS - t)) s"

step "clang -Werror build (${prefix}-clang)"
t=$SECONDS
CC=clang cmake -S . -B "${prefix}-clang" -DCMAKE_BUILD_TYPE=Release \
  -DNNLIB_WERROR=ON >/dev/null
cmake --build "${prefix}-clang" -j "$jobs" >/dev/null
echo "clang build: $((SECONDS - t)) s"

echo "ok: sanitizers and warning builds passed in $((SECONDS - start)) s"
