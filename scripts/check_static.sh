#!/usr/bin/env bash
# Static analysis (docs/RELIABILITY.md): cppcheck over the library (src/),
# the command-line tool (tools/) and the examples, C11, with its warning,
# portability and performance checks. Any finding fails the run; cppcheck
# prints the file, line, check name and the path it followed. No build
# directory: cppcheck reads the sources with include/ and src/ on its path.
#   scripts/check_static.sh
# A finding that is wrong (cppcheck cannot see an invariant) is better met by
# code that states the invariant than by a suppression; if a suppression is
# the only way, write it inline (// cppcheck-suppress <id>) with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
command -v cppcheck >/dev/null ||
  { echo "check_static: cppcheck is not installed (scripts/setup.sh)" >&2; exit 1; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! cppcheck --quiet --std=c11 --enable=warning,portability,performance \
    --inline-suppr --suppress=missingIncludeSystem --error-exitcode=1 \
    -I include -I src -j "$(nproc)" src tools examples 2>"$log"; then
  cat "$log"
  echo "FAIL check_static: cppcheck findings above ($(cppcheck --version))"
  exit 1
fi
if [ -s "$log" ]; then # notes without a finding (a configuration cppcheck skipped)
  cat "$log"
fi
echo "ok: cppcheck found nothing in src, tools and examples ($(cppcheck --version), $((SECONDS - start)) s)"
