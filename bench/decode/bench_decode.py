#!/usr/bin/env python3
"""bench/decode: decode tokens/s and time to first token of quant-run.

For each model, thread count and cache mode, runs
  build/bin/quant-run DIR --prompt-ids <P random ids> --max-new-tokens N
      --ignore-eos --max-seq-len P+N --kv-cache MODE --json
with OPENBLAS_NUM_THREADS = threads (batch 1) and reports time to first
token (the prompt through the model + first sample), decode tokens/s over
the N-1 later tokens, per-token latency p50/p90, JIT compile time and peak
RSS. Rows alternate between configurations in each repeat (paired), and
the median over --repeat runs is printed; the 1-minute load average before
each row is recorded.

Models (prepared under --work unless present):
  shakespeare     /work/shared/data/shakespeare (llama2.c, 3.7M) via
                  llama2c_to_onnx.py + quant-import
  shakespeare-q4  the same after quant-compile --method rtn --bits 4
                  --group-size 128 (packed, fused dequantize kernel)
  100m, 100m-q4   generated Llama (hidden 768, intermediate 2048, 12 layers,
                  12 heads, vocab 32000, tied) and its 4-bit g128 RTN model

  python3 bench/decode/bench_decode.py [--prompt 128] [--new 128]
      [--threads 1,2] [--models shakespeare,shakespeare-q4,100m,100m-q4]
      [--modes derived] [--repeat 1] [--csv out.csv]
"""
import argparse
import csv
import json
import os
import statistics
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "build", "bin")
PY = sys.executable or "/usr/bin/python3"


def run(cmd, env=None):
    full_env = dict(os.environ)
    full_env.update(env or {})
    res = subprocess.run(cmd, env=full_env, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}")
    return res.stdout


def prepare(model, work):
    """Returns (quant-mlir dir, vocab)."""
    base = model[:-3] if model.endswith("-q4") else model
    onnx_dir = os.path.join(work, base + "_onnx")
    if not os.path.exists(os.path.join(onnx_dir, "model.onnx")):
        if base == "shakespeare":
            run([PY, os.path.join(ROOT, "python/quant_mlir/llama2c_to_onnx.py"),
                 "/work/shared/data/shakespeare/shakespeare-llama-3.7M.bin", "-o", onnx_dir])
        else:
            run([PY, os.path.join(ROOT, "python/quant_mlir/export_fixtures.py"), "--family", "llama",
                 "--hidden", "768", "--intermediate", "2048", "--layers", "12", "--heads", "12",
                 "--kv-heads", "12", "--vocab", "32000", "--tie", "--max-pos", "2048",
                 "--external-data", "-o", onnx_dir])
    vocab = 1024 if base == "shakespeare" else 32000
    qdir = os.path.join(work, model)
    if not os.path.exists(os.path.join(qdir, "model.mlir")):
        if model.endswith("-q4"):
            run([os.path.join(BIN, "quant-compile"), os.path.join(onnx_dir, "model.onnx"),
                 "--method", "rtn", "--bits", "4", "--group-size", "128", "--quiet", "-o", qdir])
        else:
            run([os.path.join(BIN, "quant-import"), os.path.join(onnx_dir, "model.onnx"), "-o", qdir])
    return qdir, vocab


def load1():
    return os.getloadavg()[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--models", default="shakespeare,shakespeare-q4,100m,100m-q4")
    ap.add_argument("--modes", default="derived")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--work", default="/tmp/quant-mlir-bench-decode")
    ap.add_argument("--csv", default=None)
    a = ap.parse_args()
    configs = []
    for model in a.models.split(","):
        qdir, vocab = prepare(model, a.work)
        ids = np.random.default_rng(0).integers(3, vocab, a.prompt)
        for mode in a.modes.split(","):
            for t in a.threads.split(","):
                configs.append((model, qdir, " ".join(map(str, ids)), mode, int(t)))
    samples = {c[:1] + c[3:]: [] for c in configs}
    for _ in range(a.repeat):
        for model, qdir, ids, mode, t in configs:
            load = load1()
            out = json.loads(run([os.path.join(BIN, "quant-run"), qdir, "--prompt-ids", ids,
                                  "--max-new-tokens", str(a.new), "--ignore-eos",
                                  "--max-seq-len", str(a.prompt + a.new), "--kv-cache", mode, "--json"],
                                 env={"OPENBLAS_NUM_THREADS": str(t)}))
            r = out["results"][0]
            samples[(model, mode, t)].append({
                "ttft_ms": r["time_to_first_token_s"] * 1e3, "tok_s": r["decode_tokens_per_second"],
                "p50_ms": r["latency_p50_ms"], "p90_ms": r["latency_p90_ms"],
                "compile_s": out["compile_seconds"], "rss_mib": out["peak_rss_mib"], "load": load})
    header = ["model", "cache", "threads", "prompt", "new", "ttft_ms", "decode_tok_s", "p50_ms",
              "p90_ms", "compile_s", "peak_rss_mib", "load1"]
    rows = []
    for (model, mode, t), s in samples.items():
        med = lambda k: statistics.median(x[k] for x in s)  # noqa: E731
        rows.append([model, mode, t, a.prompt, a.new, f"{med('ttft_ms'):.1f}", f"{med('tok_s'):.1f}",
                     f"{med('p50_ms'):.2f}", f"{med('p90_ms'):.2f}", f"{med('compile_s'):.1f}",
                     f"{med('rss_mib'):.0f}", f"{med('load'):.2f}"])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(map(str, r)) + " |")
    if a.csv:
        with open(a.csv, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
