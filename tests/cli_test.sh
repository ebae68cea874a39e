#!/usr/bin/env bash
# The command-line tool end to end on real data: train a small model on a
# few thousand Fashion-MNIST samples, save it, describe it, evaluate it; and
# every error is one line with a non-zero exit status.
set -euo pipefail
nnlib=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

"$nnlib" --help | grep -q 'commands:'
for cmd in train eval info bench; do "$nnlib" $cmd --help | grep -q "usage: nnlib $cmd"; done

"$nnlib" train --limit 3000 --epochs 2 --batch 64 --model dense:64,relu,dense:10 \
  --optimizer adam --lr 0.002 --seed 3 --out "$dir/m.nnl" > "$dir/train.out"
grep -q '^epoch 2/2 train_loss=' "$dir/train.out"
acc=$(sed -n 's/^test_accuracy=\([0-9.]*\) epochs=2 seconds=.*/\1/p' "$dir/train.out")
awk -v a="$acc" 'BEGIN { exit !(a > 0.70) }'

"$nnlib" info "$dir/m.nnl" > "$dir/info.out"
grep -q 'format 1' "$dir/info.out"
grep -q '^parameters 50890$' "$dir/info.out"   # 784*64+64 + 64*10+10
grep -q '^description dense:64,relu,dense:10$' "$dir/info.out"

# a recurrent first layer reads each image as 28 steps of 28 pixels
"$nnlib" train --limit 1000 --epochs 1 --batch 50 --model lstm:16,last,dense:10 \
  --seed 3 --out "$dir/lstm.nnl" > "$dir/lstm.out"
grep -q '^test_accuracy=' "$dir/lstm.out"
"$nnlib" info "$dir/lstm.nnl" > "$dir/lstm_info.out"
grep -q '^input    \[28, 28\]$' "$dir/lstm_info.out"
grep -q '^parameters 3114$' "$dir/lstm_info.out"  # 4*16*(28+16)+2*64 + 16*10+10
grep -q '^description lstm:16,last,dense:10$' "$dir/lstm_info.out"
"$nnlib" eval "$dir/lstm.nnl" > "$dir/lstm_eval.out"
grep -q '^test_accuracy=' "$dir/lstm_eval.out"

"$nnlib" eval "$dir/m.nnl" > "$dir/eval.out"
grep -q 'Ankle boot' "$dir/eval.out"
grep -q "^test_accuracy=$acc " "$dir/eval.out"   # same model, same data

# a small CNN from a description: trains, saves, and info shows its layers
cnn=conv:8x3x3:p1:nobias,batchnorm,relu,maxpool:2,conv:8x3x3,relu,maxpool:2,flatten,dropout:0.25,dense:10
"$nnlib" train --limit 3000 --epochs 2 --lr 0.003 --model "$cnn" --seed 5 \
  --out "$dir/c.nnl" > "$dir/cnn.out"
acc=$(sed -n 's/^test_accuracy=\([0-9.]*\) epochs=2 seconds=.*/\1/p' "$dir/cnn.out")
awk -v a="$acc" 'BEGIN { exit !(a > 0.60) }'
"$nnlib" info "$dir/c.nnl" > "$dir/info.out"
grep -q "^description $cnn\$" "$dir/info.out"
grep -q '^0   conv2d       -> \[8, 28, 28\]  72 parameters$' "$dir/info.out"
grep -q 'batchnorm .* buffers running_mean \[8\], running_var \[8\]$' "$dir/info.out"
grep -q '^6   maxpool2d    -> \[8, 6, 6\]' "$dir/info.out"
"$nnlib" eval "$dir/c.nnl" | grep -q "^test_accuracy=$acc "

# a residual graph from a description: trains, saves as format 2, and info
# lists its nodes with their inputs; eval agrees
res='x=input:1x28x28,s=conv:4x3x3:p1,relu,c=conv:4x3x3:p1,add(s,c),relu,maxpool:4,flatten,dense:10'
"$nnlib" train --limit 2000 --epochs 1 --lr 0.003 --model "$res" --seed 3 \
  --out "$dir/r.nnl" > "$dir/res.out"
acc=$(sed -n 's/^test_accuracy=\([0-9.]*\) epochs=1 seconds=.*/\1/p' "$dir/res.out")
awk -v a="$acc" 'BEGIN { exit !(a > 0.40) }'
"$nnlib" info "$dir/r.nnl" > "$dir/rinfo.out"
grep -q 'format 2' "$dir/rinfo.out"
grep -q "^description $res\$" "$dir/rinfo.out"
grep -q '^#4   -            add          s,c             -> \[4, 28, 28\]  0 parameters$' "$dir/rinfo.out"
grep -q '^#0   x            input' "$dir/rinfo.out"
"$nnlib" eval "$dir/r.nnl" | grep -q "^test_accuracy=$acc "

# --validation holds out the last samples, --patience stops when their loss
# stops falling and keeps the best epoch: the restored line, the summary and
# the saved model (nnlib eval) agree
"$nnlib" train --limit 1500 --validation 500 --epochs 30 --patience 2 \
  --model dense:64,relu,dense:10 --lr 0.01 --schedule constant --threads 1 \
  --seed 4 --out "$dir/p.nnl" > "$dir/patience.out"
grep -q '^model .* 1000 training samples' "$dir/patience.out"
grep -q '^validation: the last 500 training samples, held out$' "$dir/patience.out"
grep -q '^epoch 1/30 train_loss=.* test_accuracy=.* seconds=.* valid_loss=[0-9.]*$' "$dir/patience.out"
grep -q '^early stop: no lower valid_loss in the 2 epochs after epoch ' "$dir/patience.out"
ran=$(sed -n 's/^test_accuracy=[0-9.]* epochs=\([0-9]*\) .*/\1/p' "$dir/patience.out")
best=$(sed -n 's/^early stop: .* after epoch \([0-9]*\)$/\1/p' "$dir/patience.out")
[ "$ran" -eq $((best + 2)) ] && [ "$ran" -lt 30 ]
[ "$(grep -c '^epoch ' "$dir/patience.out")" -eq "$ran" ]
# the best epoch's own line, the restored line and the summary agree
acc=$(sed -n "s/^epoch $best\/30 .* test_accuracy=\([0-9.]*\) .*/\1/p" "$dir/patience.out")
grep -q "^restored epoch $best: valid_loss=.* test_accuracy=$acc\$" "$dir/patience.out"
grep -q "^test_accuracy=$acc epochs=$ran " "$dir/patience.out"
"$nnlib" eval "$dir/p.nnl" | grep -q "^test_accuracy=$acc "

# errors: one line on stderr, non-zero exit
expect_fail() {
  if "$@" > "$dir/out" 2> "$dir/err"; then echo "should fail: $*"; exit 1; fi
  [ "$(wc -l < "$dir/err")" -eq 1 ] || { echo "not one line: $*"; cat "$dir/err"; exit 1; }
}
head -c 200 "$dir/m.nnl" > "$dir/cut.nnl"
expect_fail "$nnlib" info "$dir/cut.nnl"
grep -q 'truncated' "$dir/err"
expect_fail "$nnlib" info "$dir/missing.nnl"
expect_fail "$nnlib" eval "$dir/cut.nnl"
expect_fail "$nnlib" train --epochs zero
expect_fail "$nnlib" train --no-such-flag
expect_fail "$nnlib" train --model dense:10,nonsense --limit 100
expect_fail "$nnlib" train --model conv:4x29x29 --limit 100
grep -q "larger than the padded input" "$dir/err"
expect_fail "$nnlib" train --data "$dir" --limit 100
expect_fail "$nnlib" train --patience 2 --limit 100
grep -q -- '--patience 2 needs --validation N' "$dir/err"
expect_fail "$nnlib" train --validation 100 --limit 100
grep -q -- '--validation 100: must be below the 100 training samples' "$dir/err"
expect_fail "$nnlib" frobnicate
echo "ok: nnlib train/info/eval and their errors"
