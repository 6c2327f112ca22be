#!/usr/bin/env python3
"""bench/forward: tokens/s of the CPU forward (quant-run) beside onnxruntime.

For each model and thread count, runs a full forward over [1, S] windows:
  ours: build/bin/quant-run DIR --eval-data ids.npy --seq-len S --json --quiet
        (tokens_per_second; OPENBLAS_NUM_THREADS = threads; JIT compile time
        is excluded, it is reported separately)
  ORT:  node python/quant_mlir/ort_run.js model.onnx window.npy out.npy
        --threads T --repeat R (intra-op threads = T, inter-op 1), on the
        first window of the same ids.
and prints a table and a CSV (ours, ORT, ratio = ours / ORT).

Models (prepared under --work unless present):
  real     llama2.c stories260K (/work/shared/data/stories260K.bin) via
           llama2c_to_onnx.py + quant-import
  100m     generated Llama: hidden 768, intermediate 2048, 12 layers,
           12 heads, vocab 32000, tied embeddings (109.6M parameters)
  100m-q4  the same after quant-compile --method rtn --bits 4 --group-size 128
           (ORT column: the float ONNX model; ORT has no such packed model)
  shakespeare, shakespeare-q4
           the real 3.7M Llama (/work/shared/data/shakespeare), float and
           RTN 4-bit g128 (ORT: the float model)

--kernels picks the kernel families of ours (quant-run --cpu-kernels); each
measurement is --pairs rounds of [ORT, ours per family] with the order
reversed every other round (the machine is shared: paired, alternating runs,
medians, ratios against ORT).

  python3 bench/forward/bench_forward.py [--seq-len 256] [--threads 1,2]
      [--windows 4] [--models real,100m,100m-q4] [--kernels blas,vector]
      [--pairs 2] [--csv out.csv]
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "build", "bin")
PY = sys.executable or "/usr/bin/python3"


def run(cmd, env=None, capture=True):
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    res = subprocess.run(cmd, env=full_env, capture_output=capture, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}")
    return res.stdout


# Generated Llamas: 100m (109.6M parameters, tied embedding) and 1b (the
# TinyLlama-1.1B shape: GQA 32 / 4 heads, 1.10B parameters, ONNX external data).
LLAMAS = {
    "100m": ["--hidden", "768", "--intermediate", "2048", "--layers", "12",
             "--heads", "12", "--kv-heads", "12", "--vocab", "32000", "--tie"],
    "1b": ["--hidden", "2048", "--intermediate", "5632", "--layers", "22",
           "--heads", "32", "--kv-heads", "4", "--vocab", "32000",
           "--external-data"],
}




def llama_flops(hidden, inter, layers, kv_dim, vocab):
    """Forward FLOPs per token at sequence S: 2 x linear weights (lm_head
    included) + QK^T and PV over all S keys (4 S hidden per layer)."""
    linear = layers * (2 * hidden * hidden + 2 * hidden * kv_dim + 3 * hidden * inter)
    return lambda S: 2 * (linear + vocab * hidden) + 4 * S * hidden * layers


FLOPS = {"100m": llama_flops(768, 2048, 12, 768, 32000),
         "1b": llama_flops(2048, 5632, 22, 256, 32000)}


def prepare(model, work):
    """Returns (quant-mlir dir, onnx path, vocab)."""
    os.makedirs(work, exist_ok=True)
    if model.startswith("shakespeare"):
        onnx_dir = os.path.join(work, "shakespeare_onnx")
        qdir = os.path.join(work, "shakespeare" if model == "shakespeare"
                            else "shakespeare_q4")
        if not os.path.exists(os.path.join(onnx_dir, "model.onnx")):
            run([PY, os.path.join(ROOT, "python/quant_mlir/llama2c_to_onnx.py"),
                 "/work/shared/data/shakespeare/shakespeare-llama-3.7M.bin",
                 "-o", onnx_dir])
        vocab = 1024
    elif model == "real":
        onnx_dir = os.path.join(work, "stories_onnx")
        qdir = os.path.join(work, "stories")
        if not os.path.exists(os.path.join(onnx_dir, "model.onnx")):
            run([PY, os.path.join(ROOT, "python/quant_mlir/llama2c_to_onnx.py"),
                 "/work/shared/data/stories260K.bin", "-o", onnx_dir])
        vocab = 512
    else:
        size = model.split("-")[0]
        cfg = LLAMAS[size]
        onnx_dir = os.path.join(work, f"llama{size}_onnx")
        qdir = os.path.join(work, f"llama{size}" if model == size
                            else f"llama{size}_q4")
        if not os.path.exists(os.path.join(onnx_dir, "model.onnx")):
            run([PY, os.path.join(ROOT, "python/quant_mlir/export_fixtures.py"),
                 "--family", "llama", *cfg, "--max-pos", "1024", "-o", onnx_dir])
        vocab = 32000
    onnx = os.path.join(onnx_dir, "model.onnx")
    if not os.path.exists(os.path.join(qdir, "model.mlir")):
        if model.endswith("-q4"):
            run([os.path.join(BIN, "quant-compile"), onnx, "--method", "rtn",
                 "--bits", "4", "--group-size", "128", "-o", qdir, "--force"])
        else:
            run([os.path.join(BIN, "quant-import"), onnx, "-o", qdir])
    return qdir, onnx, vocab


def load():
    return os.getloadavg()[0]


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--threads", default="2,1")
    p.add_argument("--windows", type=int, default=4,
                   help="windows per quant-run measurement (tokens/s over all)")
    p.add_argument("--ort-repeat", type=int, default=0,
                   help="ORT runs per measurement (default: windows, at least 3)")
    p.add_argument("--models", default="real,100m,100m-q4")
    p.add_argument("--work", default="/tmp/quant-mlir-bench-forward")
    p.add_argument("--csv", default=None, help="also write the CSV here")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kernels", default="blas,vector",
                   help="quant-run --cpu-kernels families to measure")
    p.add_argument("--pairs", type=int, default=2,
                   help="alternating rounds per measurement (medians)")
    args = p.parse_args()

    S = args.seq_len
    threads = [int(t) for t in args.threads.split(",")]
    rows = []
    for model in args.models.split(","):
        qdir, onnx, vocab = prepare(model, args.work)
        rng = np.random.default_rng(args.seed)
        ids = rng.integers(1, vocab, size=S * args.windows).astype(np.int64)
        ids_path = os.path.join(args.work, f"ids_{model}_{S}.npy")
        win_path = os.path.join(args.work, f"window_{model}_{S}.npy")
        np.save(ids_path, ids)
        np.save(win_path, ids[:S].reshape(1, S))
        kernels = args.kernels.split(",")
        for t in threads:
            env = {"OPENBLAS_NUM_THREADS": str(t), "OMP_NUM_THREADS": str(t)}
            load0 = load()
            repeat = args.ort_repeat or max(3, args.windows)

            def ours(kind):
                out = json.loads(run([os.path.join(BIN, "quant-run"), qdir,
                                      "--eval-data", ids_path, "--seq-len", str(S),
                                      "--cpu-kernels", kind, "--json", "--quiet"],
                                     env=env))
                tokens = out["windows"] * S
                return (tokens / out["forward_seconds"],
                        tokens / out["forward_cpu_seconds"]), out

            def ort():
                ort_out = run(["node", os.path.join(ROOT, "python/quant_mlir/ort_run.js"),
                               onnx, win_path, os.path.join(args.work, "ort_out.npy"),
                               "--threads", str(t), "--repeat", str(repeat)])
                o = json.loads(ort_out.strip().splitlines()[-1])
                return (o["tokens"] / o["seconds_per_run"],
                        o["tokens"] / o["cpu_seconds_per_run"])

            samples = {k: [] for k in kernels + ["ort"]}
            cpu = {k: [] for k in kernels + ["ort"]}
            info = {}
            for r in range(args.pairs):
                order = ["ort"] + kernels
                if r % 2:
                    order.reverse()
                for kind in order:
                    if kind == "ort":
                        tps = ort()
                    else:
                        tps, info[kind] = ours(kind)
                    samples[kind].append(tps[0])
                    cpu[kind].append(tps[1])
            load1 = load()
            ort_tps = float(np.median(samples["ort"]))
            ort_cpu = float(np.median(cpu["ort"]))
            for kind in kernels:
                tps = float(np.median(samples[kind]))
                ours_cpu = float(np.median(cpu[kind]))
                rows.append({
                    "model": model, "kernels": kind, "seq_len": S, "threads": t,
                    "ours_tok_s": round(tps, 1), "ort_tok_s": round(ort_tps, 1),
                    "ratio": round(tps / ort_tps, 3),
                    "ours_tok_cpu_s": round(ours_cpu, 1),
                    "ort_tok_cpu_s": round(ort_cpu, 1),
                    "cpu_ratio": round(ours_cpu / ort_cpu, 3),
                    "gflop_s": (round(tps * FLOPS[model.split("-")[0]](S) / 1e9, 1)
                                if model.split("-")[0] in FLOPS else ""),
                    "compile_s": round(info[kind]["compile_seconds"], 2),
                    "peak_rss_mib": round(info[kind]["peak_rss_mib"], 1),
                    "load_avg_1m": f"{load0:.2f}-{load1:.2f}",
                })
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)

    cols = ["model", "kernels", "seq_len", "threads", "ours_tok_s", "ort_tok_s", "ratio",
            "ours_tok_cpu_s", "ort_tok_cpu_s", "cpu_ratio", "gflop_s",
            "compile_s", "peak_rss_mib", "load_avg_1m"]
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} {os.cpu_count()} CPUs, "
          f"S={S}, {args.windows} windows")
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in cols]
    print("  ".join(c.rjust(w) for c, w in zip(cols, widths)))
    for r in rows:
        print("  ".join(str(r[c]).rjust(w) for c, w in zip(cols, widths)))
    print()
    writer = csv.DictWriter(sys.stdout, fieldnames=cols)
    writer.writeheader()
    writer.writerows(rows)
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
