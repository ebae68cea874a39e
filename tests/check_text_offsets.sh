#!/usr/bin/env bash
# The training windows of benchmarks/char_gpt_torch.py are nnlib's: its
# --print-offsets output (its own Python generator and file rules) must
# equal text_offsets' (the library's) for the same directory and seed.
#   check_text_offsets.sh TEXT_OFFSETS PYTHON SCRIPT DIR
# Exit 77 (skipped) when DIR is missing.
set -euo pipefail
offsets=$1 python=$2 script=$3 dir=$4
if [ ! -d "$dir" ]; then
  echo "skipped: $dir is missing (the fortunes package, scripts/setup.sh)"
  exit 77
fi
status=0
for seed in 1 12345; do
  for context in 128 7; do
    want=$("$offsets" "$dir" "$seed" 1000 "$context")
    got=$("$python" "$script" --dir "$dir" --seed "$seed" \
          --context "$context" --print-offsets 1000)
    if [ "$want" != "$got" ]; then
      echo "FAIL seed=$seed context=$context: nnlib and the script differ:"
      diff <(echo "$want") <(echo "$got") | head -10
      status=1
    else
      echo "ok seed=$seed context=$context: $(echo "$want" | head -1)," \
           "1000 offsets equal"
    fi
  done
done
exit $status
