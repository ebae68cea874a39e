// ort_bench.js - one ONNX model in ONNX Runtime (onnxruntime-node, CPU):
// inference time per call, or a check of its output against nnlib's.
//
//   node ort_bench.js --ort-dir DIR --model FILE.onnx --batch B
//        [--threads T] [--seconds S] [--vocab V] [--identity ID.onnx]
//   node ort_bench.js --ort-dir DIR --model FILE.onnx --batch B
//        [--threads T] --check INPUT.bin OUTPUT.bin [--tolerance 1e-4]
//
// DIR is where scripts/ort_setup.sh installed onnxruntime-node (its
// node_modules/ inside). The session runs with intraOpNumThreads T,
// interOpNumThreads 1, sequential execution and every graph optimisation
// ('all', ONNX Runtime's default), the settings a deployment would use.
//
// Timing: a batch of B random inputs of the model's input shape (the
// symbolic batch axis set to B; float32 uniform in [0, 1), or int32/int64
// token ids uniform in [0, V) as the model's input type declares), made
// once; warm-up calls for at least 5 calls and a tenth of S, then as many
// timed calls as fit S (at least 11). Each call is `await session.run`,
// output tensors included: what a Node program pays per call. With
// --identity, the same is then done for that model (an Identity graph) at
// batch 1 for a quarter of S (its calls are short: thousands fit):
// ONNX Runtime's fixed cost per call through Node, to read batch-1
// figures against. One JSON line per model timed.
//
// Check: the model run once on INPUT.bin (raw little-endian, of the input
// type, B samples) against nnlib's predictions OUTPUT.bin (float32), with
// the same session options as the timing. Passes when
// max |ort - nnlib| <= tolerance * max |nnlib| over the whole output
// (relative to the output's scale: an element near zero is not held to a
// relative error of its own). Prints one JSON line; exit status 0 when it
// passes, 1 when it does not.
//
// Exit status 77 (ctest's skip) when onnxruntime-node is not installed, 2
// for bad arguments.
'use strict';
const fs = require('fs');
const path = require('path');

const USAGE = 'usage: node ort_bench.js --ort-dir DIR --model FILE --batch B ' +
    '[--threads T] [--seconds S] [--vocab V] [--identity FILE] ' +
    '[--check INPUT OUTPUT] [--tolerance X]';

function fail(message, status) {
  console.error(`ort_bench: ${message}`);
  process.exit(status);
}

function parseArgs(argv) {
  const a = {threads: 1, seconds: 1.0, vocab: 0, tolerance: 1e-4,
             identity: null, check: null, batch: 0, model: null,
             ortDir: null};
  for (let i = 0; i < argv.length; i++) {
    const next = () => {
      if (i + 1 >= argv.length) fail(`${argv[i]} needs a value\n${USAGE}`, 2);
      return argv[++i];
    };
    switch (argv[i]) {
      case '--ort-dir': a.ortDir = next(); break;
      case '--model': a.model = next(); break;
      case '--batch': a.batch = Number(next()); break;
      case '--threads': a.threads = Number(next()); break;
      case '--seconds': a.seconds = Number(next()); break;
      case '--vocab': a.vocab = Number(next()); break;
      case '--identity': a.identity = next(); break;
      case '--tolerance': a.tolerance = Number(next()); break;
      case '--check': a.check = {input: next(), output: next()}; break;
      default: fail(`unknown argument ${argv[i]}\n${USAGE}`, 2);
    }
  }
  const positive = (v) => Number.isInteger(v) && v > 0;
  if (!a.ortDir || !a.model || !positive(a.batch) || !positive(a.threads) ||
      !(a.seconds > 0) || !(a.tolerance > 0) || a.vocab < 0)
    fail(`bad or missing arguments\n${USAGE}`, 2);
  return a;
}

function loadOrt(ortDir) {
  try {
    return require(path.resolve(ortDir, 'node_modules', 'onnxruntime-node'));
  } catch (e) {
    console.log(`SKIP: onnxruntime-node is not installed in ${ortDir} ` +
                `(scripts/ort_setup.sh installs it): ` +
                `${e.message.split('\n')[0]}`);
    process.exit(77);
  }
}

function ortVersion(ortDir) {
  return require(path.resolve(ortDir, 'node_modules', 'onnxruntime-node',
                              'package.json')).version;
}

async function openSession(ort, file, threads) {
  const session = await ort.InferenceSession.create(file, {
    intraOpNumThreads: threads, interOpNumThreads: 1,
    executionMode: 'sequential', graphOptimizationLevel: 'all'});
  if (session.inputNames.length !== 1)
    fail(`${file}: ${session.inputNames.length} inputs; the benchmark ` +
         'models have one', 1);
  return session;
}

// The input's element type and its shape with the batch axis (the
// symbolic one) set to `batch`.
function inputSpec(session, batch) {
  const meta = session.inputMetadata[0];
  if (!meta.isTensor) fail('the model input is not a tensor', 1);
  const dims = meta.shape.map((d, i) =>
      typeof d === 'number' && d > 0 && i > 0 ? d : batch);
  return {type: meta.type, dims};
}

const ARRAYS = {float32: Float32Array, int32: Int32Array,
                int64: BigInt64Array};

function count(dims) { return dims.reduce((p, d) => p * d, 1); }

// Deterministic uniform numbers (an LCG; the values do not matter to the
// speed, only that ids lie in the embedding's range).
function randomInput(ort, spec, vocab) {
  const Type = ARRAYS[spec.type];
  if (!Type) fail(`input type ${spec.type} is not float32, int32 or int64`, 1);
  if (spec.type !== 'float32' && !(vocab > 0))
    fail(`the model reads ${spec.type} token ids: --vocab V is needed`, 1);
  const data = new Type(count(spec.dims));
  let seed = 1;
  for (let i = 0; i < data.length; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    const u = (seed >>> 8) / 16777216;
    data[i] = spec.type === 'float32' ? u
        : spec.type === 'int32' ? Math.floor(u * vocab)
        : BigInt(Math.floor(u * vocab));
  }
  return new ort.Tensor(spec.type, data, spec.dims);
}

// A copy of the file's bytes as a typed array (aligned for the view).
function readArray(file, Type) {
  const bytes = fs.readFileSync(file);
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  return new Type(copy.buffer);
}

function median(sorted) {
  const n = sorted.length;
  return n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

async function timeCalls(session, feeds, seconds) {
  const now = () => Number(process.hrtime.bigint()) * 1e-9;
  const start = now(), warm = [];
  while (warm.length < 5 || now() - start < 0.1 * seconds) {
    const s = now();
    await session.run(feeds);
    warm.push(now() - s);
  }
  // the median warm-up call: the first calls (allocation, JIT) would
  // make a mean promise far fewer calls than the budget holds
  const one = median(warm.sort((x, y) => x - y));
  const reps = Math.min(Math.max(Math.floor(seconds / one), 11), 100000);
  const times = new Float64Array(reps);
  for (let i = 0; i < reps; i++) {
    const s = now();
    await session.run(feeds);
    times[i] = now() - s;
  }
  times.sort();
  return {reps, median_s: median(times), min_s: times[0],
          max_s: times[reps - 1]};
}

async function timeModel(ort, a, file, batch, bench, seconds) {
  const session = await openSession(ort, file, a.threads);
  const input = randomInput(ort, inputSpec(session, batch), a.vocab);
  const st = await timeCalls(session, {[session.inputNames[0]]: input},
                             seconds);
  console.log(JSON.stringify({
    bench, library: 'onnxruntime', onnx: file, batch, threads: a.threads,
    ...st, samples_per_s: batch / st.median_s,
    input_type: input.type, input_shape: input.dims.join('x'),
    graph_optimization: 'all', inter_op_threads: 1,
    onnxruntime: ortVersion(a.ortDir)}));
  return st;
}

async function check(ort, a) {
  const session = await openSession(ort, a.model, a.threads);
  const spec = inputSpec(session, a.batch);
  const Type = ARRAYS[spec.type];
  if (!Type) fail(`input type ${spec.type} is not float32, int32 or int64`, 1);
  let data = readArray(a.check.input, spec.type === 'int64' ? Int32Array
                                                            : Type);
  if (spec.type === 'int64') data = BigInt64Array.from(data, BigInt);
  if (data.length !== count(spec.dims))
    fail(`${a.check.input}: ${data.length} values, the input ` +
         `${spec.dims.join('x')} needs ${count(spec.dims)}`, 1);
  const feeds = {[session.inputNames[0]]:
                 new ort.Tensor(spec.type, data, spec.dims)};
  const got = (await session.run(feeds))[session.outputNames[0]];
  const want = readArray(a.check.output, Float32Array);
  if (got.data.length !== want.length)
    fail(`output of ${got.data.length} values (${got.dims.join('x')}), ` +
         `nnlib's ${want.length}`, 1);
  let scale = 0, worst = 0, at = 0;
  for (const v of want) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got.data[i] - want[i]);
    if (!(d <= worst)) { worst = d; at = i; }
  }
  const relative = worst / (scale > 0 ? scale : 1);
  const ok = relative <= a.tolerance;
  console.log(JSON.stringify({
    bench: 'ort_check', library: 'onnxruntime', onnx: a.model,
    batch: a.batch, threads: a.threads, outputs: want.length,
    output_shape: got.dims.join('x'), max_abs_error: worst,
    output_scale: scale, relative_error: relative, tolerance: a.tolerance,
    worst_element: at, ort_value: got.data[at], nnlib_value: want[at], ok,
    onnxruntime: ortVersion(a.ortDir)}));
  return ok ? 0 : 1;
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const ort = loadOrt(a.ortDir);
  if (a.check) return check(ort, a);
  await timeModel(ort, a, a.model, a.batch, 'ort_infer', a.seconds);
  if (a.identity)
    await timeModel(ort, a, a.identity, 1, 'ort_identity', a.seconds / 4);
  return 0;
}

main().then((status) => process.exit(status), (e) => {
  console.error(`ort_bench: ${e.stack}`);
  process.exit(1);
});
