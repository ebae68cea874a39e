#!/usr/bin/env bash
# ThreadSanitizer (docs/RELIABILITY.md): a clang -fsanitize=thread build in
# build-tsan, then tests/test_threads (eight threads predicting with one
# shared model through their own nnlib_workspace, and threads training
# their own models at once, results bitwise equal to lone runs) and the
# tests of the pass pool (src/core/parallel.c) and of the layers that split
# their passes over it, at 1, 2 and 3 threads. Any report fails
# (halt_on_error=1, exit status 66).
#
# OpenBLAS is not instrumented. The test runs twice: with
# OPENBLAS_NUM_THREADS=1 (nnlib's threads call sgemm concurrently, the case
# the header promises) and with 2 (OpenBLAS's own pthread pool alive too).
# Both are clean today with no suppression at all. Should OpenBLAS's pool
# ever give reports inside OpenBLAS alone, run with
#   TSAN_EXTRA=ignore_noninstrumented_modules=1
# which drops reports whose accesses all lie in uninstrumented code; reports
# that involve nnlib's own code are never suppressed.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_PREFIX:-build}-tsan
start=$SECONDS
CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DNNLIB_SANITIZE=thread -DNNLIB_WERROR=ON -DNNLIB_BUILD_BENCHMARKS=OFF \
  -DNNLIB_BUILD_EXAMPLES=OFF -DNNLIB_BUILD_TOOLS=OFF >/dev/null
pool_tests=(test_internal_parallel test_cnn_threads test_internal_rnn_threads
            test_parallel_passes test_conv2d_winograd)
cmake --build "$build" -j "$(nproc)" --target test_threads "${pool_tests[@]}" \
  >/dev/null
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1${TSAN_EXTRA:+:$TSAN_EXTRA}"
for blas_threads in 1 2; do
  echo "== test_threads, OPENBLAS_NUM_THREADS=$blas_threads"
  OPENBLAS_NUM_THREADS=$blas_threads "$build/tests/test_threads"
done
for t in "${pool_tests[@]}"; do
  echo "== $t"
  OPENBLAS_NUM_THREADS=1 NNLIB_SOURCE_DIR=$PWD "$build/tests/$t"
done
echo "ok: thread tests clean under ThreadSanitizer in $((SECONDS - start)) s"
