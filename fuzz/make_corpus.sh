#!/usr/bin/env bash
# Regenerates the committed seed corpora, fuzz/corpus/<target>/, with
# fuzz/make_corpus.c (built in build-fuzz by clang, as scripts/check_fuzz.sh
# does). Run it after a change to the model-file format or to a target's
# input encoding, then commit fuzz/corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_PREFIX:-build}-fuzz
CC=clang cmake -S fuzz -B "$build" >/dev/null
cmake --build "$build" -j "$(nproc)" --target make_corpus >/dev/null
rm -rf fuzz/corpus
OPENBLAS_NUM_THREADS=1 "$build/make_corpus" fuzz/corpus
find fuzz/corpus -type f | sort | sed 's/^/wrote /'
