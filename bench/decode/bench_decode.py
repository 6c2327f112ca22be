#!/usr/bin/env python3
"""bench/decode: decode tokens/s and time to first token of quant-run beside onnxruntime.

For each model, thread count and cache mode, runs
  ours: build/bin/quant-run DIR --prompt-ids <P random ids> --max-new-tokens N
        --ignore-eos --max-seq-len P+N --kv-cache MODE --json
        (batch 1, OPENBLAS_NUM_THREADS = threads)
  ORT:  node bench/decode/ort_decode.js WITH_PAST.onnx --prompt-ids <same>
        --new N --threads T (greedy through the with-past export of the same
        float model, export_with_past.py; intra-op threads = T)
and reports time to first token (the prompt through the model + first
sample), decode tokens/s over the N-1 later tokens, per-token latency
p50/p90, process CPU time per decoded token (all threads: on a loaded
machine the wall clock mostly measures the wait for a core), JIT compile
time, peak RSS, ours / ORT decode tokens/s and ORT / ours CPU time per
token (> 1: ours is cheaper), whether the greedy ids agree, and the 1-minute load average before the row. Ours and ORT
alternate (the order flips every repeat) and medians over --repeat runs are
printed.

Models (prepared under --work unless present):
  shakespeare     /work/shared/data/shakespeare (llama2.c, 3.7M) via
                  llama2c_to_onnx.py + quant-import
  shakespeare-q4  the same after quant-compile --method rtn --bits 4
                  --group-size 128 (packed, fused dequantize kernel; the ORT
                  column runs the float model: ORT has no such packed model)
  100m, 100m-q4   generated Llama (hidden 768, intermediate 2048, 12 layers,
                  12 heads, vocab 32000, tied) and its 4-bit g128 RTN model
  1b, 1b-q4       generated Llama in the TinyLlama-1.1B shape (hidden 2048,
                  intermediate 5632, 22 layers, 32 / 4 heads, vocab 32000)

Beside each row: weight bytes streamed per token (the safetensors tensors
less an untied embedding table, of which a token reads one row), the GB/s
that makes over wall and CPU time per token, and a STREAM-like copy and
read-only sum at the same thread count measured just before the row
(quant-cpu-bench --layer-shapes=none).

  python3 bench/decode/bench_decode.py [--prompt 128] [--new 128]
      [--threads 1,2] [--models shakespeare,shakespeare-q4,100m,100m-q4]
      [--modes derived] [--no-ort] [--repeat 1] [--csv out.csv]
      [--bin build/bin] [--work DIR] [--contexts 128,512]
"""
import argparse
import csv
import json
import os
import statistics
import subprocess
import sys

import numpy as np
import re
import struct

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


LLAMAS = {
    "100m": ["--hidden", "768", "--intermediate", "2048", "--layers", "12", "--heads", "12",
             "--kv-heads", "12", "--vocab", "32000", "--tie"],
    "1b": ["--hidden", "2048", "--intermediate", "5632", "--layers", "22", "--heads", "32",
           "--kv-heads", "4", "--vocab", "32000"],
}


def weight_bytes(qdir):
    """Bytes of weights one decode step streams: every tensor in
    model.safetensors except an embedding table that has its own lm_head
    (a token gathers one row of it)."""
    with open(os.path.join(qdir, "model.safetensors"), "rb") as fh:
        header = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
    sizes = {k: v["data_offsets"][1] - v["data_offsets"][0]
             for k, v in header.items() if k != "__metadata__"}
    untied = any("lm_head" in k for k in sizes)
    return sum(v for k, v in sizes.items() if not (untied and "embed_tokens" in k))


def bandwidth(threads):
    """(copy read + write GB/s, read-only GB/s) of quant-cpu-bench at this
    thread count (process CPU clock at 1 thread, wall otherwise)."""
    out = run([os.path.join(BIN, "quant-cpu-bench"), "--layer-shapes=none",
               f"--thread-counts={threads}", "--repetitions=1"]
              + (["--cpu-clock"] if threads == 1 else []),
              env={"OPENBLAS_NUM_THREADS": str(threads)})
    m = re.search(r"copy bandwidth, \d+ thread\(s\): ([\d.]+) GB/s .*read ([\d.]+) GB/s", out)
    return float(m.group(1)), float(m.group(2))


def prepare(model, work):
    """Returns (quant-mlir dir, vocab, with-past ONNX path)."""
    base = model[:-3] if model.endswith("-q4") else model
    onnx_dir = os.path.join(work, base + "_onnx")
    if not os.path.exists(os.path.join(onnx_dir, "model.onnx")):
        if base == "shakespeare":
            run([PY, os.path.join(ROOT, "python/quant_mlir/llama2c_to_onnx.py"),
                 "/work/shared/data/shakespeare/shakespeare-llama-3.7M.bin", "-o", onnx_dir])
        else:
            run([PY, os.path.join(ROOT, "python/quant_mlir/export_fixtures.py"), "--family", "llama",
                 *LLAMAS[base], "--max-pos", "2048", "--external-data", "-o", onnx_dir])
    vocab = 1024 if base == "shakespeare" else 32000
    past_dir = os.path.join(work, base + "_past")
    if not os.path.exists(os.path.join(past_dir, "model.onnx")):
        run([PY, os.path.join(ROOT, "bench/decode/export_with_past.py"), onnx_dir, "-o", past_dir]
            + ([] if base == "shakespeare" else ["--external-data"]))
    qdir = os.path.join(work, model)
    if not os.path.exists(os.path.join(qdir, "model.mlir")):
        if model.endswith("-q4"):
            run([os.path.join(BIN, "quant-compile"), os.path.join(onnx_dir, "model.onnx"),
                 "--method", "rtn", "--bits", "4", "--group-size", "128", "--quiet", "-o", qdir])
        else:
            run([os.path.join(BIN, "quant-import"), os.path.join(onnx_dir, "model.onnx"), "-o", qdir])
    return qdir, vocab, os.path.join(past_dir, "model.onnx")


def ours(qdir, ids, a, mode, threads):
    out = json.loads(run([os.path.join(BIN, "quant-run"), qdir, "--prompt-ids", ids,
                          "--max-new-tokens", str(a.new), "--ignore-eos",
                          "--max-seq-len", str(a.prompt + a.new), "--kv-cache", mode, "--json"],
                         env={"OPENBLAS_NUM_THREADS": str(threads)}))
    r = out["results"][0]
    return {"ttft_ms": r["time_to_first_token_s"] * 1e3, "tok_s": r["decode_tokens_per_second"],
            "p50_ms": r["latency_p50_ms"], "p90_ms": r["latency_p90_ms"],
            "cpu_ms": r["decode_cpu_ms_per_token"],
            "compile_s": out["compile_seconds"], "rss_mib": out["peak_rss_mib"], "ids": r["ids"]}


def ort(past_onnx, ids, a, threads):
    r = json.loads(run(["node", os.path.join(ROOT, "bench/decode/ort_decode.js"), past_onnx,
                        "--prompt-ids", ids, "--new", str(a.new), "--threads", str(threads)]))
    return {"ort_ttft_ms": r["time_to_first_token_s"] * 1e3, "ort_tok_s": r["decode_tokens_per_second"],
            "ort_p50_ms": r["latency_p50_ms"], "ort_cpu_ms": r["decode_cpu_ms_per_token"],
            "ort_rss_mib": r["peak_rss_mib"], "ort_ids": r["ids"]}


def load1():
    return os.getloadavg()[0]


def flatness(a, models):
    """Per-token decode time at each context length of --contexts: one
    quant-run over a --prompts file (one prompt of each length, one JIT
    compile, cache of max context + new) and, alternating, one ORT run per
    length; ratios against the shortest context (the issue's goal: <= 1.3x
    from 128 to 512 tokens)."""
    contexts = [int(c) for c in a.contexts.split(",")]
    header = ["model", "threads", "context", "new", "p50_ms", "cpu_ms_tok", "p50_ratio",
              "cpu_ratio", "ort_p50_ms", "ort_cpu_ms_tok", "ort_p50_ratio", "load1"]
    rows = []
    for model in models:
        qdir, vocab, past_onnx = prepare(model, a.work)
        rng = np.random.default_rng(0)
        prompts = [" ".join(map(str, rng.integers(3, vocab, c))) for c in contexts]
        path = os.path.join(a.work, f"{model}-contexts.jsonl")
        with open(path, "w") as fh:
            for p in prompts:
                fh.write(json.dumps({"prompt_ids": [int(x) for x in p.split()]}) + "\n")
        for t in [int(x) for x in a.threads.split(",")]:
            load = load1()
            out = json.loads(run([os.path.join(BIN, "quant-run"), qdir, "--prompts", path,
                                  "--max-new-tokens", str(a.new), "--ignore-eos",
                                  "--max-seq-len", str(max(contexts) + a.new),
                                  "--kv-cache", "derived", "--json"],
                                 env={"OPENBLAS_NUM_THREADS": str(t)}))["results"]
            orts = []
            for c, p in zip(contexts, prompts):
                if a.no_ort:
                    orts.append(None)
                    continue
                sub = argparse.Namespace(**vars(a))
                sub.prompt = c
                orts.append(ort(past_onnx, p, sub, t))
            for i, c in enumerate(contexts):
                r, o = out[i], orts[i]
                row = [model, t, c, a.new, f"{r['latency_p50_ms']:.2f}",
                       f"{r['decode_cpu_ms_per_token']:.2f}",
                       f"{r['latency_p50_ms'] / out[0]['latency_p50_ms']:.2f}x",
                       f"{r['decode_cpu_ms_per_token'] / out[0]['decode_cpu_ms_per_token']:.2f}x"]
                if o is None:
                    row += ["", "", ""]
                else:
                    row += [f"{o['ort_p50_ms']:.2f}", f"{o['ort_cpu_ms']:.2f}",
                            f"{o['ort_p50_ms'] / orts[0]['ort_p50_ms']:.2f}x"]
                rows.append(row + [f"{load:.2f}"])
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


def main():
    global BIN
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--models", default="shakespeare,shakespeare-q4,100m,100m-q4")
    ap.add_argument("--modes", default="derived")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--no-ort", action="store_true", help="skip the onnxruntime-node column")
    ap.add_argument("--work", default="/tmp/quant-mlir-bench-decode")
    ap.add_argument("--csv", default=None)
    ap.add_argument("--bin", default=BIN, help="directory of quant-run, quant-import, quant-compile")
    ap.add_argument("--no-bandwidth", action="store_true", help="skip the copy / read bandwidth columns")
    ap.add_argument("--contexts", default=None,
                    help="e.g. 128,512: instead of the main table, time per token at each context length")
    a = ap.parse_args()
    BIN = a.bin
    if a.contexts:
        return flatness(a, a.models.split(","))
    configs = []
    wbytes = {}
    for model in a.models.split(","):
        qdir, vocab, past_onnx = prepare(model, a.work)
        wbytes[model] = weight_bytes(qdir)
        ids = np.random.default_rng(0).integers(3, vocab, a.prompt)
        for mode in a.modes.split(","):
            for t in a.threads.split(","):
                configs.append((model, qdir, past_onnx, " ".join(map(str, ids)), mode, int(t)))
    samples = {(c[0], c[4], c[5]): [] for c in configs}
    for rep in range(a.repeat):
        for model, qdir, past_onnx, ids, mode, t in configs:
            s = {"load": load1()}
            if not a.no_bandwidth:
                s["copy_gbs"], s["read_gbs"] = bandwidth(t)
            order = [lambda: s.update(ours(qdir, ids, a, mode, t))]
            if not a.no_ort:
                order.append(lambda: s.update(ort(past_onnx, ids, a, t)))
            if rep % 2:
                order.reverse()
            for f in order:
                f()
            samples[(model, mode, t)].append(s)
    header = ["model", "cache", "threads", "prompt", "new", "ttft_ms", "decode_tok_s", "p50_ms",
              "p90_ms", "cpu_ms_tok", "compile_s", "peak_rss_mib", "ort_ttft_ms", "ort_decode_tok_s",
              "ort_p50_ms", "ort_cpu_ms_tok", "ort_rss_mib", "ours_over_ort", "ort_cpu_over_ours",
              "same_ids", "weight_mb", "gbs_wall", "gbs_cpu", "copy_gbs", "read_gbs", "load1"]
    rows = []
    for (model, mode, t), s in samples.items():
        med = lambda k: statistics.median(x[k] for x in s)  # noqa: E731
        row = [model, mode, t, a.prompt, a.new, f"{med('ttft_ms'):.1f}", f"{med('tok_s'):.1f}",
               f"{med('p50_ms'):.2f}", f"{med('p90_ms'):.2f}", f"{med('cpu_ms'):.2f}",
               f"{med('compile_s'):.1f}", f"{med('rss_mib'):.0f}"]
        if a.no_ort:
            row += [""] * 8
        else:
            ratio = statistics.median(x["tok_s"] / x["ort_tok_s"] for x in s)
            cpu_ratio = statistics.median(x["ort_cpu_ms"] / x["cpu_ms"] for x in s)
            same = all(x["ids"] == x["ort_ids"] for x in s)
            row += [f"{med('ort_ttft_ms'):.1f}", f"{med('ort_tok_s'):.1f}", f"{med('ort_p50_ms'):.2f}",
                    f"{med('ort_cpu_ms'):.2f}", f"{med('ort_rss_mib'):.0f}", f"{ratio:.2f}x",
                    f"{cpu_ratio:.2f}x", "yes" if same else "no"]
        mb = wbytes[model] / 1e6
        row += [f"{mb:.0f}", f"{mb * med('tok_s') / 1e3:.2f}", f"{mb / med('cpu_ms'):.2f}"]
        if a.no_bandwidth:
            row += ["", ""]
        else:
            row += [f"{med('copy_gbs'):.1f}", f"{med('read_gbs'):.1f}"]
        rows.append(row + [f"{med('load'):.2f}"])
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
