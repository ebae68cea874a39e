#!/usr/bin/env bash
# The command-line tool end to end on real data: train a small model on a
# few thousand Fashion-MNIST samples, save it, describe it, evaluate it;
# train byte-level language models on a few KB of text and generate with
# them; and every error is one line with a non-zero exit status.
#   cli_test.sh NNLIB [text|mnist]   (default: both; text needs no data set)
set -euo pipefail
nnlib=$1
part=${2:-all}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# errors: one line on stderr, non-zero exit (besides the warning about
# OpenBLAS's kernels that a machine where they are a fallback prints first)
expect_fail() {
  if "$@" > "$dir/out" 2> "$dir/all"; then echo "should fail: $*"; exit 1; fi
  grep -v '^nnlib: warning: OpenBLAS runs its' "$dir/all" > "$dir/err" || true
  [ "$(wc -l < "$dir/err")" -eq 1 ] || { echo "not one line: $*"; cat "$dir/all"; exit 1; }
}
# the same, and the line says what is wrong
expect_message() {
  local message=$1
  shift
  expect_fail "$@"
  grep -q -- "$message" "$dir/err" || { echo "no '$message': $*"; cat "$dir/err"; exit 1; }
}
# the same with this exit status (1: the library refused, 2: usage)
expect_status() {
  local status=$1 rc=0
  shift
  expect_message "$@"
  shift
  "$@" > /dev/null 2>&1 || rc=$?
  [ "$rc" -eq "$status" ] || { echo "exit $rc, not $status: $*"; exit 1; }
}

"$nnlib" --help | grep -q 'commands:'
"$nnlib" --help | grep -q '  generate '
for cmd in train eval info bench generate convert; do "$nnlib" $cmd --help | grep -q "usage: nnlib $cmd"; done
# -h is --help for every command: the same text on stdout, nothing on
# stderr, exit 0; and every help says so
for cmd in train eval info bench generate convert "train --text x"; do
  rc=0
  "$nnlib" $cmd -h > "$dir/h.out" 2> "$dir/h.err" || rc=$?
  [ "$rc" -eq 0 ] || { echo "$cmd -h: exit $rc"; cat "$dir/h.err"; exit 1; }
  [ ! -s "$dir/h.err" ] || { echo "$cmd -h: stderr:"; cat "$dir/h.err"; exit 1; }
  "$nnlib" $cmd --help > "$dir/help.out"
  cmp -s "$dir/h.out" "$dir/help.out" || { echo "$cmd -h is not $cmd --help"; exit 1; }
  grep -q -- '^ *-h, --help' "$dir/h.out" || { echo "$cmd --help: no -h"; exit 1; }
done
[ -z "$("$nnlib" info -h --help -h 2>&1 > /dev/null)" ]
"$nnlib" --help | grep -q -- '--help, or -h)$' || { echo "nnlib --help: no -h"; exit 1; }
"$nnlib" train --help | grep -q -- '--text PATH'
"$nnlib" train --text --help | grep -q -- '--eval-every'
# every option the parsers take is described in --help
"$nnlib" train --help > "$dir/help"
for opt in data model epochs batch optimizer lr momentum weight-decay schedule \
           loss seed limit threads validation patience out; do
  grep -q -- "^  --$opt " "$dir/help" || { echo "train --help: no --$opt"; exit 1; }
done
"$nnlib" train --text x --help > "$dir/help"
for opt in model steps batch lr warmup weight-decay seed eval-every threads out; do
  grep -q -- "^  --$opt " "$dir/help" || { echo "train --text --help: no --$opt"; exit 1; }
done

# a value missing after an option, an option given twice: said so, exit 2
# (usage), before any data is read
expect_status 2 '^nnlib: --epochs needs a value$' "$nnlib" train --epochs
expect_status 2 '^nnlib: --out needs a value$' "$nnlib" train --out --epochs 2
expect_status 2 '^nnlib: --epochs is given twice$' "$nnlib" train --epochs 1 --epochs 2
expect_status 2 '^nnlib: --steps is given twice$' "$nnlib" train --text x --steps 1 --steps 2
expect_status 2 '^nnlib: --model needs a value$' "$nnlib" bench --model
expect_status 2 '^nnlib: --prompt needs a value$' "$nnlib" generate x.nnl --prompt
expect_status 2 '^nnlib: --no-cache is given twice$' \
  "$nnlib" generate x.nnl --prompt ab --no-cache --no-cache
expect_status 2 '^nnlib: --max-batch needs a value$' "$nnlib" convert x.onnx x.nnl --max-batch
[ -z "$("$nnlib" info --help --help 2>&1 > /dev/null)" ]
# a learning rate of 0 (or one that underflows to it) is no default, and
# Adam has no momentum to set
expect_status 2 '^nnlib: --lr 0: expected a number > 0$' "$nnlib" train --lr 0
expect_status 2 '^nnlib: --lr 1e-60: expected a number > 0$' "$nnlib" train --lr 1e-60
expect_status 2 '^nnlib: --lr 0: expected a number > 0$' "$nnlib" train --text x --lr 0
expect_status 2 '^nnlib train: --momentum is for --optimizer sgd or rmsprop; adam has none$' \
  "$nnlib" train --momentum 0.9
expect_status 2 'adamw has none$' "$nnlib" train --optimizer adamw --momentum 0
# an --out that cannot be saved to is refused before training, not after
expect_status 1 "^nnlib train: --out $dir/none/m.nnl: cannot create a file there: No such file or directory\$" \
  "$nnlib" train --limit 100 --epochs 1 --model dense:10 --out "$dir/none/m.nnl"
[ ! -s "$dir/out" ]
expect_status 1 "^nnlib train: --out $dir exists and is not a regular file\$" \
  "$nnlib" train --text "$dir/no-such-text" --out "$dir"
# output that cannot be written fails the command (exit 1, the reason said)
expect_status 1 '^nnlib: writing to stdout: No space left on device$' \
  bash -c '"$0" --help > /dev/full' "$nnlib"

# --version: the version, then OpenBLAS's build line and its kernels. A
# command warns before its work exactly when those kernels are SSE or AVX
# ones on a CPU with AVX2 or AVX-512 (OpenBLAS's fallback for a CPU it does
# not know); under the environment's Haswell kernels, never.
"$nnlib" --version > "$dir/version"
head -1 "$dir/version" | grep -q '^nnlib [0-9]*\.[0-9]*\.[0-9]*$'
grep -q '^OpenBLAS ' "$dir/version"
if [ "${OPENBLAS_CORETYPE:-}" = Haswell ]; then
  grep -q '^kernels: Haswell (AVX2); CPU: ' "$dir/version"
fi
"$nnlib" bench --model dense:4 --input 4 --batch 2 --reps 1 > "$dir/bench" 2> "$dir/bench.err"
# one JSON line each for training and inference, naming the kernels
kernels=$(sed -n 's/^kernels: \([^ ]*\) .*/\1/p' "$dir/version")
[ "$(grep -c "^{\"bench\":\"\(train\|infer\)\",.*\"kernels\":\"$kernels\"" "$dir/bench")" -eq 2 ] ||
  { echo "nnlib bench lines without kernels $kernels:"; cat "$dir/bench"; exit 1; }
# a model whose step fails: the library's message, exit 1, and (under
# valgrind, where installed) no read of the times never measured
expect_status 1 '^nnlib bench: embedding:10:4,linear:3: wrong element type: ' \
  "$nnlib" bench --model embedding:10:4,linear:3 --input 4 --batch 2 --reps 3
if command -v valgrind > /dev/null; then
  rc=0
  valgrind -q --error-exitcode=99 "$nnlib" bench --model embedding:10:4,linear:3 \
    --input 4 --batch 2 --reps 3 > /dev/null 2> "$dir/valgrind" || rc=$?
  [ "$rc" -eq 1 ] || { echo "valgrind: exit $rc"; cat "$dir/valgrind"; exit 1; }
fi
if grep -Eq '^kernels: .* \((SSE|AVX)\); CPU: AVX(2|-512)$' "$dir/version"; then
  grep -q '^nnlib: warning: OpenBLAS runs its .* several times slower' "$dir/bench.err" ||
    { echo "no warning on fallback kernels:"; cat "$dir/version" "$dir/bench.err"; exit 1; }
elif grep -q 'warning' "$dir/bench.err"; then
  echo "a warning without fallback kernels:"; cat "$dir/version" "$dir/bench.err"; exit 1
fi

# ---- text: byte-level language models (nnlib train --text, generate) ----
text_part() {
  local text="$dir/text" gpt
  mkdir "$text"
  for i in $(seq 1 40); do
    echo "the quick brown fox jumps over the lazy dog $i times; a bird in the hand is worth two in the bush."
  done > "$text/a.txt"
  for i in $(seq 1 30); do
    echo "all work and no play makes jack a dull boy, says line $i of the second file."
  done > "$text/b.txt"
  gpt="input:16,embedding:256:16,positional,transformer:16:2:causal,layernorm,linear:256"
  "$nnlib" train --text "$text" --model "$gpt" --steps 30 --batch 8 \
    --eval-every 10 --out "$dir/gpt.nnl" > "$dir/gpt.out"
  grep -q '^model .*: 12016 parameters, context 16$' "$dir/gpt.out"
  [ "$(grep -c '^step=[0-9]* train_loss=[0-9.]* valid_loss=[0-9.]*$' "$dir/gpt.out")" -eq 3 ]
  grep -q '^step=30 ' "$dir/gpt.out"
  grep -q '^valid_bpc=[0-9.]* steps=30 seconds=[0-9.]* model=' "$dir/gpt.out"
  # the training loss falls: the first line's above the last's
  sed -n 's/^step=[0-9]* train_loss=\([0-9.]*\) .*/\1/p' "$dir/gpt.out" > "$dir/losses"
  awk 'NR == 1 { first = $1 } { last = $1 } END { exit !(first > last) }' "$dir/losses"
  # bits per byte: below the 8 of a uniform guess, above 0
  bpc=$(sed -n 's/^valid_bpc=\([0-9.]*\) .*/\1/p' "$dir/gpt.out")
  awk -v b="$bpc" 'BEGIN { exit !(b > 0 && b < 8) }'

  # info lists the text layers with their shapes
  "$nnlib" info "$dir/gpt.nnl" > "$dir/gpt_info.out"
  grep -q '^#0   -            input                        -> \[16\]$' "$dir/gpt_info.out"
  grep -q '^#1   -            embedding    #0              -> \[16, 16\]  4096 parameters$' "$dir/gpt_info.out"
  grep -q '^#2   -            positional   #1              -> \[16, 16\]  256 parameters$' "$dir/gpt_info.out"
  grep -q ' layernorm .* -> \[16, 16\]  32 parameters$' "$dir/gpt_info.out"
  grep -q ' attention .* -> \[16, 16\]  1088 parameters$' "$dir/gpt_info.out"
  grep -q ' linear .* -> \[16, 256\]  4352 parameters  (output)$' "$dir/gpt_info.out"
  grep -q '^parameters 12016$' "$dir/gpt_info.out"
  expect_status 1 '^nnlib: writing to stdout: No space left on device$' \
    bash -c '"$0" info "$1" > /dev/full' "$nnlib" "$dir/gpt.nnl"
  expect_status 1 "^nnlib info: $text: cannot read the file: Is a directory\$" \
    "$nnlib" info "$text"

  # generation: the prompt, 50 bytes and a newline; the same seed the same
  # bytes, another seed (almost surely) others
  "$nnlib" generate "$dir/gpt.nnl" --prompt "ab" --tokens 50 --seed 3 > "$dir/g1"
  "$nnlib" generate "$dir/gpt.nnl" --prompt "ab" --tokens 50 --seed 3 > "$dir/g2"
  "$nnlib" generate "$dir/gpt.nnl" --prompt "ab" --tokens 50 --seed 4 > "$dir/g3"
  [ "$(wc -c < "$dir/g1")" -eq 53 ]
  [ "$(head -c 2 "$dir/g1")" = ab ]
  [ "$(tail -c 1 "$dir/g1" | od -An -c | tr -d ' ')" = '\n' ]
  cmp -s "$dir/g1" "$dir/g2"
  if cmp -s "$dir/g1" "$dir/g3"; then echo "seeds 3 and 4 gave the same bytes"; exit 1; fi
  # without the cache: the same bytes while prompt + tokens fit the context
  "$nnlib" generate "$dir/gpt.nnl" --prompt "ab" --tokens 10 --seed 5 \
    --temperature 0.8 --top-k 40 > "$dir/c1"
  "$nnlib" generate "$dir/gpt.nnl" --prompt "ab" --tokens 10 --seed 5 \
    --temperature 0.8 --top-k 40 --no-cache > "$dir/c2"
  cmp -s "$dir/c1" "$dir/c2"
  "$nnlib" generate "$dir/gpt.nnl" --prompt "ab" --tokens 20 --stats \
    2> "$dir/stats" > /dev/null
  grep -q '^tokens_per_second=[0-9.]* tokens=20 ' "$dir/stats"
  # bytes that cannot be written: one line (not generate's and main's
  # both), exit 1, and no --stats line
  expect_status 1 '^nnlib: writing to stdout: No space left on device$' \
    bash -c '"$0" generate "$1" --prompt ab --tokens 3 --stats > /dev/full' "$nnlib" "$dir/gpt.nnl"

  # ONNX round trip of the transformer: .nnl -> .onnx -> .nnl gives the
  # same description and parameters, generates the same bytes, and exports
  # the same .onnx bytes again
  "$nnlib" convert "$dir/gpt.nnl" "$dir/gpt.onnx"
  "$nnlib" convert "$dir/gpt.onnx" "$dir/gpt_back.nnl"
  "$nnlib" convert "$dir/gpt_back.nnl" "$dir/gpt_again.onnx"
  cmp "$dir/gpt.onnx" "$dir/gpt_again.onnx"
  # an export that fails (here: past a 20 KB file size limit) leaves the
  # file that was there, and no temporary file
  cp "$dir/gpt.onnx" "$dir/keep.onnx"
  expect_status 1 '^nnlib convert: .*/keep.onnx: input/output error: nnlib_model_save_onnx: writing .*/keep.onnx.tmp-.*: File too large$' \
    bash -c 'trap "" XFSZ; ulimit -f 20; "$0" convert "$1" "$2"' \
    "$nnlib" "$dir/gpt.nnl" "$dir/keep.onnx"
  cmp "$dir/gpt.onnx" "$dir/keep.onnx"
  if ls "$dir" | grep -q 'tmp-'; then echo "a temporary file was left"; exit 1; fi
  "$nnlib" info "$dir/gpt_back.nnl" > "$dir/gpt_back_info.out"
  grep -q ' attention .* -> \[16, 16\]  1088 parameters$' "$dir/gpt_back_info.out"
  for line in '^description ' '^parameters '; do
    [ "$(grep "$line" "$dir/gpt_info.out")" = "$(grep "$line" "$dir/gpt_back_info.out")" ] ||
      { echo "gpt_back.nnl: $line differs"; exit 1; }
  done
  grep -q '^description .*attention:2:causal' "$dir/gpt_back_info.out"
  "$nnlib" generate "$dir/gpt_back.nnl" --prompt "ab" --tokens 50 --seed 3 > "$dir/g1_back"
  cmp "$dir/g1" "$dir/g1_back"

  # the LSTM baseline trains and generates too
  "$nnlib" train --text "$text/a.txt" --text "$text/b.txt" \
    --model "input:16,embedding:256:8,lstm:32,linear:256" --steps 30 \
    --batch 8 --eval-every 10 --lr 0.01 --out "$dir/lstm.nnl" > "$dir/lstm.out"
  sed -n 's/^step=[0-9]* train_loss=\([0-9.]*\) .*/\1/p' "$dir/lstm.out" > "$dir/losses"
  awk 'NR == 1 { first = $1 } { last = $1 } END { exit !(first > last) }' "$dir/losses"
  grep -q '^valid_bpc=' "$dir/lstm.out"
  "$nnlib" info "$dir/lstm.nnl" | grep -q '^1   lstm         -> \[16, 32\]'
  "$nnlib" generate "$dir/lstm.nnl" --prompt "the " --tokens 30 --seed 2 > "$dir/l1"
  [ "$(wc -c < "$dir/l1")" -eq 35 ]
  "$nnlib" generate "$dir/lstm.nnl" --prompt "the " --tokens 10 --seed 2 > "$dir/l2"
  "$nnlib" generate "$dir/lstm.nnl" --prompt "the " --tokens 10 --seed 2 --no-cache > "$dir/l3"
  cmp -s "$dir/l2" "$dir/l3"

  # what nnlib train --text refuses
  expect_message '--text needs a path' "$nnlib" train --text
  expect_message '--text needs a path' "$nnlib" train --text --model "$gpt"
  expect_message 'cannot open' "$nnlib" train --text "$dir/no-such-text" --model "$gpt"
  expect_message 'input is \[T\] token ids .* not \[1, 28, 28\]' \
    "$nnlib" train --text "$text" --model "input:1x28x28,flatten,dense:10"
  expect_message 'first layer embeds the byte ids' \
    "$nnlib" train --text "$text" --model "input:16,dense:10"
  expect_message 'output is logits \[16, 256\] .* not \[16, 100\]' \
    "$nnlib" train --text "$text" --model "input:16,embedding:256:8,linear:100"
  expect_message 'not \[256\]' \
    "$nnlib" train --text "$text" --model "input:16,embedding:256:8,lstm:8,last,linear:256"
  expect_message 'must start with input:T' \
    "$nnlib" train --text "$text" --model "embedding:256:8,linear:256"
  expect_message 'embedding:100 holds fewer ids than the 256 byte values' \
    "$nnlib" train --text "$text" --model "input:16,embedding:100:8,linear:256"
  expect_message 'shorter than one window of 4000 + 1 bytes' \
    "$nnlib" train --text "$text" --model "input:4000,embedding:256:8,linear:256"
  expect_message '--warmup 10: must be below --steps 10' \
    "$nnlib" train --text "$text" --model "$gpt" --steps 10 --warmup 10
  expect_message "'--epochs'" "$nnlib" train --text "$text" --epochs 2
  # a step that fails (a learning rate that overflows the weights): the
  # library's message, exit 1; on a terminal (script(1), where installed)
  # the progress bar is cleared first, not left on the message's line
  local huge=("$nnlib" train --text "$text" --model "$gpt" --steps 20 --batch 4 --lr 1e30 --warmup 0)
  expect_status 1 '^nnlib train: training: numerical error (NaN, Inf or float32 overflow): ' "${huge[@]}"
  if command -v script > /dev/null; then
    rc=0
    script -qec "$(printf '%q ' "${huge[@]}")" /dev/null < /dev/null > "$dir/tty" 2>&1 || rc=$?
    [ "$rc" -eq 1 ] || { echo "on a terminal: exit $rc"; cat -v "$dir/tty"; exit 1; }
    tr '\r' '\n' < "$dir/tty" | grep -q '^nnlib train: training: numerical error (NaN, Inf or float32 overflow): ' ||
      { echo "the progress bar was not cleared before the message:"; cat -v "$dir/tty"; exit 1; }
  fi

  # what nnlib generate refuses (the library's messages)
  expect_message 'prompt is empty' "$nnlib" generate "$dir/gpt.nnl" --prompt ""
  expect_message 'prompt has 17 tokens, the model.s context is 16' \
    "$nnlib" generate "$dir/gpt.nnl" --prompt "abcdefghijklmnopq"
  expect_message 'temperature 0 must be' "$nnlib" generate "$dir/gpt.nnl" --prompt ab --temperature 0
  expect_message 'temperature -1 must be' "$nnlib" generate "$dir/gpt.nnl" --prompt ab --temperature -1
  # a temperature that is no finite float is refused as given (exit 2), not
  # as strtof converts it (1e39 -> inf, 1e-60 -> 0)
  for t in 1e39 -1e39 inf nan; do
    expect_status 2 "^nnlib generate: --temperature $t: expected a finite number (a float: up to 3.40282e+38 in magnitude)\$" \
      "$nnlib" generate "$dir/gpt.nnl" --prompt ab --temperature "$t"
  done
  expect_status 2 '^nnlib generate: --temperature 1e-60: too small for a float (it rounds to 0)$' \
    "$nnlib" generate "$dir/gpt.nnl" --prompt ab --temperature 1e-60
  expect_message 'top_k -1 must be >= 0' "$nnlib" generate "$dir/gpt.nnl" --prompt ab --top-k -1
  expect_message '--prompt TEXT is needed' "$nnlib" generate "$dir/gpt.nnl"
  expect_message 'which model file' "$nnlib" generate --prompt ab
  expect_message 'No such file' "$nnlib" generate "$dir/missing.nnl" --prompt ab
  # attention without the causal mask trains, but cannot decode with a cache
  "$nnlib" train --text "$text" --model "input:16,embedding:256:8,attention:2,linear:256" \
    --steps 10 --batch 4 --out "$dir/nc.nnl" > /dev/null
  expect_message 'needs causal attention' "$nnlib" generate "$dir/nc.nnl" --prompt ab
  echo "ok: nnlib train --text, generate and their errors"
}
# --onnx-output picks the output of an ONNX graph of two (y = relu(h),
# s = sigmoid(h); tests/make_onnx_outputs_fixture.py); no data needed
onnx_output_part() {
  local two
  two="$(dirname "$0")/fixtures/onnx/two_outputs.onnx"
  expect_status 1 "the graph has 2 outputs ('y', 's'); an nnlib model computes one" \
    "$nnlib" info "$two"
  "$nnlib" info "$two" --onnx-output s | grep -q '^description dense:3,sigmoid$'
  "$nnlib" convert "$two" "$dir/two_y.nnl" --onnx-output y
  "$nnlib" info "$dir/two_y.nnl" | grep -q '^description dense:3,relu$'
  expect_status 1 "output 'z' is not an output of the graph ('y', 's')" \
    "$nnlib" convert "$two" "$dir/z.nnl" --onnx-output z
  [ ! -e "$dir/z.nnl" ]
  expect_status 1 "output 'z' is not an output" \
    "$nnlib" eval "$two" --onnx-output z
  expect_status 2 '--onnx-output is for .onnx files' \
    "$nnlib" info "$dir/two_y.nnl" --onnx-output y
  expect_status 2 '--onnx-output is for .onnx files' \
    "$nnlib" convert "$dir/two_y.nnl" "$dir/two.onnx" --onnx-output y
  expect_status 2 '--onnx-output is for .onnx files' \
    "$nnlib" eval "$dir/two_y.nnl" --onnx-output y
}

# --onnx-whole-sample: a graph of the fixed input x [3, 4] whose bias varies
# along axis 0 (tests/make_onnx_whole_fixture.py); no data needed
onnx_whole_part() {
  local whole two
  whole="$(dirname "$0")/fixtures/onnx/whole_sample.onnx"
  two="$(dirname "$0")/fixtures/onnx/two_outputs.onnx"
  expect_status 1 "node 1 '/Add' (Add): inputs: a constant added to a graph tensor" \
    "$nnlib" info "$whole"
  "$nnlib" info "$whole" --onnx-whole-sample > "$dir/whole.out"
  grep -q '^input    \[3, 4\]$' "$dir/whole.out"
  grep -q '^description linear:2,positional,sigmoid,flatten$' "$dir/whole.out"
  "$nnlib" convert "$whole" "$dir/whole.nnl" --onnx-whole-sample --max-batch 1
  "$nnlib" info "$dir/whole.nnl" | grep -q '^description linear:2,positional,sigmoid,flatten$'
  expect_status 1 "graph input 'x': axis 0 is symbolic or 0 (whole-sample import needs every axis fixed)" \
    "$nnlib" info "$two" --onnx-output y --onnx-whole-sample
  expect_status 1 "whole-sample import needs every axis fixed" \
    "$nnlib" eval "$two" --onnx-output y --onnx-whole-sample
  expect_status 2 '--onnx-whole-sample is for .onnx files' \
    "$nnlib" info "$dir/whole.nnl" --onnx-whole-sample
  expect_status 2 '--onnx-whole-sample is for .onnx files' \
    "$nnlib" convert "$dir/whole.nnl" "$dir/whole.onnx" --onnx-whole-sample
  expect_status 2 '--onnx-whole-sample is for .onnx files' \
    "$nnlib" eval "$dir/whole.nnl" --onnx-whole-sample
}

if [ "$part" != mnist ]; then text_part; onnx_output_part; onnx_whole_part; fi
if [ "$part" = text ]; then exit 0; fi

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

# ONNX: the model exported (nnlib convert), imported back to .nnl; info
# reads all three alike, and eval scores the .onnx exactly as the .nnl
"$nnlib" convert "$dir/m.nnl" "$dir/m.onnx"
"$nnlib" convert "$dir/m.onnx" "$dir/back.nnl"
head -c 2 "$dir/m.onnx" | od -An -tx1 | grep -q "^ 08 08$"   # field 1, ir_version, is 8
for f in m.nnl m.onnx back.nnl; do
  "$nnlib" info "$dir/$f" > "$dir/$f.info"
  grep -q '^parameters 50890$' "$dir/$f.info"
  grep -q '^input    \[1, 28, 28\]$' "$dir/$f.info"
  grep -q '^[0-9]   dense        -> \[64\]  50240 parameters$' "$dir/$f.info"
  grep -q '^[0-9]   dense        -> \[10\]  650 parameters$' "$dir/$f.info"
done
grep -q '^file .*m.onnx: ONNX model, [0-9]* bytes, imported$' "$dir/m.onnx.info"
grep -q '^max_batch 64$' "$dir/m.onnx.info"
"$nnlib" eval "$dir/m.onnx" > "$dir/onnx_eval.out"
grep "^test_accuracy=" "$dir/eval.out" > "$dir/eval.line"
grep "^test_accuracy=" "$dir/onnx_eval.out" > "$dir/onnx_eval.line"
cmp -s "$dir/eval.line" "$dir/onnx_eval.line" || { cat "$dir/eval.line" "$dir/onnx_eval.line"; exit 1; }
grep -q 'Ankle boot' "$dir/onnx_eval.out"
# the .nnl of an import has no loss: eval scores it against one-hot labels
"$nnlib" eval "$dir/back.nnl" | grep -q "^test_accuracy=$acc test_loss=0.0000 "
"$nnlib" convert "$dir/m.onnx" "$dir/b5.nnl" --max-batch 5
"$nnlib" info "$dir/b5.nnl" | grep -q '^max_batch 5$'
# [784] inputs take the images too; a model that ends in a softmax is
# scored without a loss (cross-entropy on logits would misjudge it)
"$nnlib" train --limit 500 --epochs 1 --model "x=input:784,dense:10,softmax" \
  --seed 2 --out "$dir/s.nnl" > /dev/null
"$nnlib" convert "$dir/s.nnl" "$dir/s.onnx"
"$nnlib" info "$dir/s.onnx" | grep -q '^input    \[784\]$'
"$nnlib" eval "$dir/s.nnl" | grep '^test_accuracy=' > "$dir/s.line"
sacc=$(sed -n 's/^test_accuracy=\([0-9.]*\) .*/\1/p' "$dir/s.line")
"$nnlib" eval "$dir/s.onnx" | grep -q "^test_accuracy=$sacc test_loss=0.0000 samples=10000$"
if grep -q ' test_loss=0.0000 ' "$dir/s.line"; then echo "the .nnl should report its loss"; exit 1; fi
# what nnlib convert refuses: a damaged file (the library's message, exit
# 1), names whose direction is unknown and misplaced options (exit 2)
head -c 300 "$dir/m.onnx" > "$dir/cut.onnx"
expect_status 1 'corrupt file: ONNX: a length runs past its message' \
  "$nnlib" convert "$dir/cut.onnx" "$dir/cut.nnl"
[ ! -e "$dir/cut.nnl" ]
expect_status 1 'corrupt file' "$nnlib" info "$dir/cut.onnx"
expect_status 1 'corrupt file' "$nnlib" eval "$dir/cut.onnx"
expect_status 1 'cannot open' "$nnlib" convert "$dir/missing.onnx" "$dir/x.nnl"
expect_status 2 'give IN.onnx OUT.nnl (import) or IN.nnl OUT.onnx (export)' \
  "$nnlib" convert "$dir/m.nnl" "$dir/m.txt"
expect_status 2 'IN.onnx OUT.nnl' "$nnlib" convert "$dir/m.onnx" "$dir/m2.onnx"
expect_status 2 'IN.onnx OUT.nnl' "$nnlib" convert "$dir/m.nnl" "$dir/m2.nnl"
expect_status 2 'which files' "$nnlib" convert "$dir/m.onnx"
expect_status 2 '--max-batch is for imports' \
  "$nnlib" convert "$dir/m.nnl" "$dir/x.onnx" --max-batch 8
expect_status 2 '--max-batch 0: expected a whole number' \
  "$nnlib" convert "$dir/m.onnx" "$dir/x.nnl" --max-batch 0

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
"$nnlib" eval "$dir/c.nnl" > "$dir/cnn_eval.out"
grep -q "^test_accuracy=$acc " "$dir/cnn_eval.out"
# the CNN through ONNX: the same layers (dropout too, through Dropout's
# ratio), the same description and the same accuracy line
"$nnlib" convert "$dir/c.nnl" "$dir/c.onnx"
"$nnlib" info "$dir/c.onnx" > "$dir/cnn_onnx_info.out"
grep -q "^description $cnn\$" "$dir/cnn_onnx_info.out"
grep -q '^0   conv2d       -> \[8, 28, 28\]  72 parameters$' "$dir/cnn_onnx_info.out"
grep -q 'batchnorm .* buffers running_mean \[8\], running_var \[8\]$' "$dir/cnn_onnx_info.out"
grep -q '^parameters 3562$' "$dir/cnn_onnx_info.out"
[ "$("$nnlib" eval "$dir/c.onnx" | grep '^test_accuracy=')" = "$(grep '^test_accuracy=' "$dir/cnn_eval.out")" ]

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
[ "$ran" -eq $((best + 2)) ]
[ "$ran" -lt 30 ]
[ "$(grep -c '^epoch ' "$dir/patience.out")" -eq "$ran" ]
# the best epoch's own line, the restored line and the summary agree
acc=$(sed -n "s/^epoch $best\/30 .* test_accuracy=\([0-9.]*\) .*/\1/p" "$dir/patience.out")
grep -q "^restored epoch $best: valid_loss=.* test_accuracy=$acc\$" "$dir/patience.out"
grep -q "^test_accuracy=$acc epochs=$ran " "$dir/patience.out"
"$nnlib" eval "$dir/p.nnl" | grep -q "^test_accuracy=$acc "

# errors: one line on stderr, non-zero exit
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
# an image classifier is no language model: generate says so
expect_message 'token ids' "$nnlib" generate "$dir/m.nnl" --prompt ab
echo "ok: nnlib train/info/eval and their errors"
