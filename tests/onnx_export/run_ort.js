// Runs every model test_onnx_export wrote in ONNX Runtime (onnxruntime-node,
// CPU) and compares its output with nnlib's predictions.
//
//   node run_ort.js DIR ORT_DIR
//
// DIR holds cases.txt and, per case NAME, NAME.onnx, NAME.txt (its inputs
// and output: "input f32|i32 DIMS... FILE", "output DIMS... FILE") and the
// raw little-endian data files. ORT_DIR is where scripts/ort_setup.sh
// installed onnxruntime-node (its node_modules/ inside). A case passes when
// max |ort - nnlib| <= 1e-5 * max(1, max |nnlib|) over the output: relative
// to the output's scale, so an element near zero (a softmax tail, a GELU
// of a large negative) is not held to a relative error of its own. Exit
// status 0 when all pass, 1 otherwise, 77 (ctest's skip) when
// onnxruntime-node is not installed.
'use strict';
const fs = require('fs');
const path = require('path');

const TOLERANCE = 1e-5;
const [dir, ortDir] = process.argv.slice(2);
if (!dir || !ortDir) {
  console.error('usage: node run_ort.js DIR ORT_DIR');
  process.exit(2);
}

let ort;
try {
  ort = require(path.resolve(ortDir, 'node_modules', 'onnxruntime-node'));
} catch (e) {
  console.log(`SKIP: onnxruntime-node is not installed in ${ortDir} ` +
              `(scripts/ort_setup.sh installs it): ${e.message.split('\n')[0]}`);
  process.exit(77);
}

function readManifest(name) {
  const inputs = [];
  let output = null;
  for (const line of fs.readFileSync(path.join(dir, name + '.txt'), 'utf8')
           .split('\n')) {
    const w = line.trim().split(/\s+/);
    if (w[0] === 'input')
      inputs.push({type: w[1], dims: w.slice(2, -1).map(Number),
                   file: w[w.length - 1]});
    else if (w[0] === 'output')
      output = {dims: w.slice(1, -1).map(Number), file: w[w.length - 1]};
  }
  return {inputs, output};
}

// A copy of the file's bytes as a typed array (aligned for the view).
function readArray(file, Type) {
  const bytes = fs.readFileSync(path.join(dir, file));
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  return new Type(copy.buffer);
}

async function runCase(name) {
  const {inputs, output} = readManifest(name);
  const session = await ort.InferenceSession.create(
      path.join(dir, name + '.onnx'),
      {graphOptimizationLevel: 'disabled', intraOpNumThreads: 1});
  if (session.inputNames.length !== inputs.length)
    throw new Error(`${session.inputNames.length} inputs, manifest ` +
                    `${inputs.length}`);
  const feeds = {};
  inputs.forEach((input, k) => {
    const data = input.type === 'i32' ? readArray(input.file, Int32Array)
                                      : readArray(input.file, Float32Array);
    feeds[session.inputNames[k]] =
        new ort.Tensor(input.type === 'i32' ? 'int32' : 'float32', data,
                       input.dims);
  });
  const results = await session.run(feeds);
  const got = results[session.outputNames[0]];
  const want = readArray(output.file, Float32Array);
  if (got.dims.join('x') !== output.dims.join('x'))
    throw new Error(`output dims ${got.dims} (nnlib ${output.dims})`);
  let scale = 1, worst = 0, at = -1;
  for (const v of want) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got.data[i] - want[i]);
    if (!(d <= worst)) { worst = d; at = i; }
  }
  return {error: worst / scale, at, got: got.data[at], want: want[at],
          count: want.length};
}

async function main() {
  const cases = fs.readFileSync(path.join(dir, 'cases.txt'), 'utf8')
                    .split('\n').map((s) => s.trim()).filter((s) => s);
  if (cases.length === 0) {
    console.log(`FAIL: no cases in ${dir}/cases.txt`);
    return 1;
  }
  let failed = 0, worstAll = 0;
  for (const name of cases) {
    try {
      const r = await runCase(name);
      worstAll = Math.max(worstAll, r.error);
      const line = `${name}: ${r.count} outputs, max error ` +
                   `${r.error.toExponential(2)} of the output scale`;
      if (r.error <= TOLERANCE) {
        console.log(`ok   ${line}`);
      } else {
        failed++;
        console.log(`FAIL ${line} (element ${r.at}: onnxruntime ${r.got}, ` +
                    `nnlib ${r.want})`);
      }
    } catch (e) {
      failed++;
      console.log(`FAIL ${name}: ${e.message}`);
    }
  }
  console.log(`run_ort: onnxruntime-node ${require(path.resolve(ortDir,
      'node_modules', 'onnxruntime-node', 'package.json')).version}, ` +
      `worst error ${worstAll.toExponential(2)} (tolerance ${TOLERANCE})`);
  console.log(`run_ort: ${cases.length - failed} passed, ${failed} failed`);
  return failed ? 1 : 0;
}

main().then((status) => process.exit(status), (e) => {
  console.log(`FAIL: ${e.stack}`);
  process.exit(1);
});
