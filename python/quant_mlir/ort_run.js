// Runs an ONNX model with onnxruntime-node (the independent CPU reference)
// on int64 input ids from a .npy file and writes the first output as .npy.
//   node python/quant_mlir/ort_run.js model.onnx ids.npy logits.npy [--threads N] [--repeat R]
// With --repeat it also prints the mean wall and process CPU seconds per run
// (for bench/forward).
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..', '..');
const ort = require(path.join(root, '.deps', 'onnxruntime', 'node_modules', 'onnxruntime-node'));

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.slice(0, 6).toString('latin1') !== '\x93NUMPY') throw new Error(`${file}: not a .npy file`);
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.slice(start, start + hlen).toString('latin1');
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').map(s => s.trim()).filter(s => s).map(Number);
  const data = buf.slice(start + hlen);
  const n = shape.reduce((a, b) => a * b, 1);
  let ids;
  if (descr === '<i8') ids = new BigInt64Array(data.buffer.slice(data.byteOffset, data.byteOffset + 8 * n));
  else if (descr === '<i4') ids = BigInt64Array.from(new Int32Array(data.buffer.slice(data.byteOffset, data.byteOffset + 4 * n)), BigInt);
  else throw new Error(`${file}: unsupported dtype ${descr}`);
  return { ids, shape };
}

function writeNpyF32(file, tensor) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${tensor.dims.join(', ')}${tensor.dims.length === 1 ? ',' : ''}), }`;
  const pad = (64 - ((10 + header.length + 1) % 64)) % 64;
  header += ' '.repeat(pad) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1; pre[7] = 0; pre.writeUInt16LE(header.length, 8);
  const body = Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  fs.writeFileSync(file + '.tmp', Buffer.concat([pre, Buffer.from(header, 'latin1'), body]));
  fs.renameSync(file + '.tmp', file);
}

async function main() {
  const args = process.argv.slice(2);
  const opt = (name, dflt) => { const i = args.indexOf(name); if (i < 0) return dflt; const v = args[i + 1]; args.splice(i, 2); return v; };
  const threads = Number(opt('--threads', '0'));
  const repeat = Number(opt('--repeat', '0'));
  const [model, idsFile, out] = args;
  if (!model || !idsFile || !out) throw new Error('usage: ort_run.js model.onnx ids.npy out.npy [--threads N] [--repeat R]');
  const options = { executionProviders: ['cpu'], graphOptimizationLevel: 'all' };
  if (threads > 0) { options.intraOpNumThreads = threads; options.interOpNumThreads = 1; }
  const session = await ort.InferenceSession.create(model, options);
  const { ids, shape } = readNpy(idsFile);
  const dims = shape.length === 1 ? [1, shape[0]] : shape;
  const feeds = { [session.inputNames[0]]: new ort.Tensor('int64', ids, dims) };
  let result = await session.run(feeds);
  if (repeat > 0) {
    const t0 = process.hrtime.bigint();
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < repeat; ++i) result = await session.run(feeds);
    const cpu = process.cpuUsage(cpu0);
    const secs = Number(process.hrtime.bigint() - t0) / 1e9 / repeat;
    // Process CPU time (every thread) per run: on a shared machine the
    // 1-thread comparison that does not count waiting for a core.
    const cpuSecs = (cpu.user + cpu.system) / 1e6 / repeat;
    console.log(JSON.stringify({ seconds_per_run: secs, cpu_seconds_per_run: cpuSecs,
                                 tokens: dims[0] * dims[1], threads }));
  }
  writeNpyF32(out, result[session.outputNames[0]]);
}

main().catch(e => { console.error(`ort_run: error: ${e.message}`); process.exit(1); });
