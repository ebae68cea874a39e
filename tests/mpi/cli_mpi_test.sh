#!/usr/bin/env bash
# nnlib train under mpirun: rank 0 alone prints (one line per epoch), the
# saved model evaluates to the accuracy it reported, an uneven split over 3
# ranks trains too, and a bad data directory on one rank stops every rank
# with an error that names it (no hang: ctest's timeout).
#   cli_mpi_test.sh <nnlib> <mpirun and its flags...>
set -euo pipefail
nnlib=$1
shift
mpirun=("$@")
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
args=(--limit 3000 --epochs 2 --model dense:64,relu,dense:10 --optimizer adam
      --lr 0.002 --seed 3)

"${mpirun[@]}" -np 2 "$nnlib" train "${args[@]}" --batch 64 --out "$dir/m.nnl" \
  > "$dir/train.out"
cat "$dir/train.out"
grep -q '^data-parallel over 2 MPI ranks' "$dir/train.out"
[ "$(grep -c '^epoch 2/2 train_loss=' "$dir/train.out")" -eq 1 ]
[ "$(grep -c '^model dense:64,relu,dense:10: 50890 parameters' "$dir/train.out")" -eq 1 ]
acc=$(sed -n 's/^test_accuracy=\([0-9.]*\) epochs=2 seconds=.*/\1/p' "$dir/train.out")
awk -v a="$acc" 'BEGIN { exit !(a > 0.70) }'
"$nnlib" eval "$dir/m.nnl" > "$dir/eval.out"
grep -q "^test_accuracy=$acc " "$dir/eval.out"

# 3 ranks, batches of 50: shares of 17, 17 and 16; rank 0 reports the
# loss of the 500 held-out samples
"${mpirun[@]}" -np 3 "$nnlib" train "${args[@]}" --batch 50 --validation 500 \
  > "$dir/train3.out"
[ "$(grep -c '^epoch 2/2 train_loss=.* valid_loss=[0-9.]*$' "$dir/train3.out")" -eq 1 ]
grep -q '^model .* 2500 training samples' "$dir/train3.out"
grep -q 'each takes about 17 of every batch of 50' "$dir/train3.out"

# early stopping on 2 ranks: they stop together after the same epoch, and
# the saved model is the best epoch's (rank 0 reports it once)
"${mpirun[@]}" -np 2 "$nnlib" train --limit 1500 --validation 500 --epochs 30 \
  --patience 2 --model dense:64,relu,dense:10 --lr 0.01 --schedule constant \
  --seed 4 --out "$dir/p.nnl" > "$dir/pat.out"
[ "$(grep -c '^early stop: no lower valid_loss in the 2 epochs after epoch ' "$dir/pat.out")" -eq 1 ]
ran=$(sed -n 's/^test_accuracy=[0-9.]* epochs=\([0-9]*\) .*/\1/p' "$dir/pat.out")
best=$(sed -n 's/^early stop: .* after epoch \([0-9]*\)$/\1/p' "$dir/pat.out")
[ "$ran" -eq $((best + 2)) ] && [ "$ran" -lt 30 ]
acc=$(sed -n "s/^epoch $best\/30 .* test_accuracy=\([0-9.]*\) .*/\1/p" "$dir/pat.out")
[ "$(grep -c "^restored epoch $best: .* test_accuracy=$acc\$" "$dir/pat.out")" -eq 1 ]
grep -q "^test_accuracy=$acc epochs=$ran " "$dir/pat.out"
"$nnlib" eval "$dir/p.nnl" | grep -q "^test_accuracy=$acc "

# rank 1 cannot read its data: every rank stops, rank 0 names rank 1
if "${mpirun[@]}" -np 1 "$nnlib" train "${args[@]}" : \
     -np 1 "$nnlib" train "${args[@]}" --data "$dir/none" \
     > "$dir/bad.out" 2> "$dir/bad.err"; then
  echo "should fail: one rank without data"; exit 1
fi
grep -q 'rank 1 failed: input/output error' "$dir/bad.err"
if grep -q '^epoch' "$dir/bad.out"; then echo "trained without rank 1"; exit 1; fi
echo "ok: nnlib train under mpirun (2 and 3 ranks, early stopping, a failing rank)"
