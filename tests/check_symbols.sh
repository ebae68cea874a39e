#!/usr/bin/env bash
# The shared library exports nnlib_ functions and nothing else, and every
# exported function is declared in the public header.
set -euo pipefail
lib=$1 header=$2
exported=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRW]$/ {print $3}' | sed 's/@.*//' | sort -u)
bad=$(echo "$exported" | grep -v -E '^(nnlib_|NNLIB_[0-9_]+$)' || true)
if [ -n "$bad" ]; then
  echo "symbols outside the nnlib_ prefix are exported:"; echo "$bad"; exit 1
fi
missing=0
for sym in $(echo "$exported" | grep '^nnlib_'); do
  if ! grep -q -E "\\b$sym\\(" "$header"; then
    echo "exported but not declared in $header: $sym"; missing=1
  fi
done
[ $missing -eq 0 ] || exit 1
count=$(echo "$exported" | grep -c '^nnlib_')
echo "ok: $count nnlib_ functions exported, all declared"
