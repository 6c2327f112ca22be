#!/usr/bin/env python3
"""bench/blockwise: the whole-model path vs block by block, in time and peak memory.

For the generated 100M-parameter Llama of bench/forward (hidden 768, 12
layers, vocab 32000) and N calibration / evaluation windows of S tokens:

  eval       quant-run DIR --eval-data ids.npy --seq-len S [--blockwise]
  calibrate  quant-compile model.onnx --method gptq --bits 4 --group-size 128
             --calib-samples N --seq-len S [--true-sequential]

prints wall seconds, peak RSS of the process (wait4 ru_maxrss) and the size
of one residual-stream activation set (N x S x hidden x 4 bytes), as a table
and CSV.

  python3 bench/blockwise/bench_blockwise.py [--windows 4,16] [--seq-len 256]
      [--threads 2] [--work /tmp/quant-mlir-bench-forward] [--csv out.csv]
"""
import argparse
import csv
import json
import os
import shutil
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "forward"))
import bench_forward  # noqa: E402  (model preparation is shared)

BIN = bench_forward.BIN
HIDDEN = 768


def run_measured(cmd, env):
    pid = os.fork()
    if pid == 0:
        fd = os.open(os.devnull, os.O_WRONLY)
        out = os.open(env["BENCH_OUT"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(out, 1)
        os.dup2(fd, 2)
        os.execve(cmd[0], cmd, env)
    start = time.monotonic()
    _, status, usage = os.wait4(pid, 0)
    seconds = time.monotonic() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed")
    return seconds, usage.ru_maxrss / 1024.0, open(env["BENCH_OUT"]).read()


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--windows", default="4,16")
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--threads", default="2")
    p.add_argument("--work", default="/tmp/quant-mlir-bench-forward")
    p.add_argument("--csv", default=None)
    a = p.parse_args()

    qdir, onnx, vocab = bench_forward.prepare("100m", a.work)
    env = dict(os.environ, OPENBLAS_NUM_THREADS=a.threads,
               BENCH_OUT=os.path.join(a.work, "bench_out.txt"))
    rows = []
    for n in [int(w) for w in a.windows.split(",")]:
        ids = os.path.join(a.work, f"ids_{n}.npy")
        np.save(ids, np.random.default_rng(0).integers(0, vocab, n * a.seq_len))
        stream_mib = n * a.seq_len * HIDDEN * 4 / 2**20
        for mode in ("whole model", "blockwise"):
            cmd = [os.path.join(BIN, "quant-run"), qdir, "--eval-data", ids,
                   "--seq-len", str(a.seq_len), "--json", "--quiet"]
            if mode == "blockwise":
                cmd.append("--blockwise")
            secs, rss, out = run_measured(cmd, env)
            r = json.loads(out)
            rows.append(dict(task="eval", mode=mode, windows=n, seconds=round(secs, 1),
                             peak_rss_mib=round(rss), stream_mib=round(stream_mib, 1),
                             detail=f"ppl {r['perplexity']:.4f}, {r['tokens_per_second']:.0f} tok/s"))
            print(rows[-1], flush=True)
        for mode in ("one pass", "true-sequential"):
            out_dir = os.path.join(a.work, f"gptq_{n}")
            cmd = [os.path.join(BIN, "quant-compile"), onnx, "--method", "gptq",
                   "--bits", "4", "--group-size", "128", "--calib-data", ids,
                   "--calib-samples", str(n), "--seq-len", str(a.seq_len),
                   "--force", "--quiet", "-o", out_dir]
            if mode == "true-sequential":
                cmd.append("--true-sequential")
            secs, rss, out = run_measured(cmd, env)
            rows.append(dict(task="calibrate+gptq", mode=mode, windows=n,
                             seconds=round(secs, 1), peak_rss_mib=round(rss),
                             stream_mib=round(stream_mib, 1), detail=""))
            print(rows[-1], flush=True)
            shutil.rmtree(out_dir, ignore_errors=True)

    print(f"\n100M Llama (hidden {HIDDEN}, 12 layers, vocab {vocab}), S = {a.seq_len}, "
          f"OPENBLAS_NUM_THREADS={a.threads}\n")
    print("| task | mode | windows | seconds | peak RSS MiB | one stream MiB | |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['task']} | {r['mode']} | {r['windows']} | {r['seconds']} | "
              f"{r['peak_rss_mib']} | {r['stream_mib']} | {r['detail']} |")
    if a.csv:
        with open(a.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
