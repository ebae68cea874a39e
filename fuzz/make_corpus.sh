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
# only the targets make_corpus writes: other targets may keep seeds of
# their own under fuzz/corpus/
written=(idx model_load model_roundtrip spec text)
for t in "${written[@]}"; do rm -rf "fuzz/corpus/$t"; done
OPENBLAS_NUM_THREADS=1 "$build/make_corpus" fuzz/corpus
for t in "${written[@]}"; do find "fuzz/corpus/$t" -type f; done | sort |
  sed 's/^/wrote /'
