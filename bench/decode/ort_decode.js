// bench/decode's onnxruntime-node column: greedy decoding through a
// with-past ONNX graph (export_with_past.py), timed like quant-run --json.
//   node bench/decode/ort_decode.js model.onnx --prompt-ids "1 2 3" --new N
//       [--threads T] [--check NOPAST.onnx]
// Prints JSON: ids, time_to_first_token_s (prompt with an empty past +
// first argmax), decode_tokens_per_second and latency p50/p90 over the later
// tokens (each a one-token run with past = the previous presents), their
// process CPU time per token (all threads; robust to a loaded machine), peak RSS.
// --check runs the full no-past graph on prompt + output and reports the max
// |logit diff| to the cached steps' logits at every generated position.
'use strict';
const path = require('path');

const root = path.resolve(__dirname, '..', '..');
const ort = require(path.join(root, '.deps', 'onnxruntime', 'node_modules', 'onnxruntime-node'));

function argmax(data, offset, n) {
  let best = 0;
  for (let v = 1; v < n; ++v) if (data[offset + v] > data[offset + best]) best = v;
  return best;
}

function quantile(values, p) {
  if (!values.length) return 0;
  const s = [...values].sort((a, b) => a - b);
  const pos = p * (s.length - 1), lo = Math.floor(pos), hi = Math.min(lo + 1, s.length - 1);
  return s[lo] + (pos - lo) * (s[hi] - s[lo]);
}

async function main() {
  const args = process.argv.slice(2);
  const opt = (name, dflt) => { const i = args.indexOf(name); if (i < 0) return dflt; const v = args[i + 1]; args.splice(i, 2); return v; };
  const threads = Number(opt('--threads', '0'));
  const nNew = Number(opt('--new', '16'));
  const promptText = opt('--prompt-ids', '');
  const check = opt('--check', '');
  const model = args[0];
  if (!model || !promptText || !(nNew >= 1)) throw new Error('usage: ort_decode.js model.onnx --prompt-ids "..." --new N [--threads T] [--check NOPAST.onnx]');
  const prompt = promptText.split(/[\s,]+/).filter(s => s).map(Number);
  const options = { executionProviders: ['cpu'], graphOptimizationLevel: 'all' };
  if (threads > 0) { options.intraOpNumThreads = threads; options.interOpNumThreads = 1; }
  const t0 = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(model, options);
  const loadSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const pastNames = session.inputNames.filter(n => n.startsWith('past_key_values.'));
  const presentOf = n => n.replace('past_key_values.', 'present.');
  if (!pastNames.length || !session.inputNames.includes('input_ids')) throw new Error(`${model}: not a with-past graph (input_ids, past_key_values.N.*)`);

  // Empty pasts: [1, Hkv, 0, D] from the first run's presents is circular,
  // so read Hkv and D from the graph's metadata when it has them, else probe.
  let past = {};
  const meta = session.inputMetadata;
  for (const n of pastNames) {
    let dims = null;
    if (Array.isArray(meta)) {
      const m = meta.find(x => x.name === n);
      if (m && m.shape) dims = m.shape;
    }
    if (!dims || typeof dims[1] !== 'number' || typeof dims[3] !== 'number') throw new Error(`${model}: ${n} has no static heads / head size in its metadata`);
    past[n] = new ort.Tensor('float32', new Float32Array(0), [1, dims[1], 0, dims[3]]);
  }
  const ids = [];
  const stepLogits = [];
  const latencies = [];
  let ttft = 0;
  let tokens = prompt;
  let start = process.hrtime.bigint();
  let cpuStart = null, cpuMicros = 0;
  for (let i = 0; i < nNew; ++i) {
    const feeds = { input_ids: new ort.Tensor('int64', BigInt64Array.from(tokens, BigInt), [1, tokens.length]), ...past };
    const out = await session.run(feeds);
    const logits = out.logits;
    const vocab = logits.dims[2];
    const off = (tokens.length - 1) * vocab;
    const next = argmax(logits.data, off, vocab);
    const secs = Number(process.hrtime.bigint() - start) / 1e9;
    if (i === 0) ttft = secs; else latencies.push(secs);
    if (cpuStart) { const u = process.cpuUsage(cpuStart); cpuMicros += u.user + u.system; }
    ids.push(next);
    if (check) stepLogits.push(Float32Array.from(logits.data.subarray(off, off + vocab)));
    const nextPast = {};
    for (const n of pastNames) nextPast[n] = out[presentOf(n)];
    past = nextPast;
    tokens = [next];
    start = process.hrtime.bigint();
    cpuStart = process.cpuUsage();
  }
  const decodeSeconds = latencies.reduce((a, b) => a + b, 0);
  const result = {
    ids, threads, load_seconds: loadSeconds,
    time_to_first_token_s: ttft,
    decode_tokens_per_second: decodeSeconds > 0 ? latencies.length / decodeSeconds : 0,
    latency_p50_ms: quantile(latencies, 0.5) * 1e3,
    latency_p90_ms: quantile(latencies, 0.9) * 1e3,
    decode_cpu_ms_per_token: latencies.length ? cpuMicros / 1e3 / latencies.length : 0,
    peak_rss_mib: process.resourceUsage().maxRSS / 1024,
  };
  if (check) {
    const full = await ort.InferenceSession.create(check, options);
    const all = prompt.concat(ids.slice(0, -1));
    const out = await full.run({ [full.inputNames[0]]: new ort.Tensor('int64', BigInt64Array.from(all, BigInt), [1, all.length]) });
    const logits = out[full.outputNames[0]];
    const vocab = logits.dims[2];
    let maxDiff = 0;
    stepLogits.forEach((row, i) => {
      const off = (prompt.length - 1 + i) * vocab;
      for (let v = 0; v < vocab; ++v) maxDiff = Math.max(maxDiff, Math.abs(row[v] - logits.data[off + v]));
    });
    result.check_max_logit_diff = maxDiff;
  }
  console.log(JSON.stringify(result));
}

main().catch(e => { console.error(`ort_decode: error: ${e.message}`); process.exit(1); });
