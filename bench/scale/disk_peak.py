#!/usr/bin/env python3
"""bench/scale: peak disk use of quant-compile, binaries side by side.

Runs each binary (--bin, repeatable, e.g. main's and a branch's) on the same
generated model, plain and with --save-stats, alternating, each in its own
empty directory that holds the output, its work directory and the saved
statistics; samples `du -sb` of that directory every --interval seconds and
prints the peak and final bytes per run, and each run's peak over the first
binary's (table and CSV).

  python3 bench/scale/disk_peak.py --model DIR/model.onnx --calib-data ids.npy \\
      --bin /tmp/qc-main --bin /tmp/qc-new [--samples 8 --seq-len 512]
"""
import argparse
import csv
import os
import shutil
import subprocess
import sys
import threading
import time


def du(path):
    out = subprocess.run(["du", "-sb", path], capture_output=True, text=True).stdout
    return int(out.split()[0]) if out else 0


def run(binary, args, root, save, interval):
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    cmd = [binary, args.model, "--method", args.method, "--calib-data", args.calib_data,
           "--calib-samples", str(args.samples), "--seq-len", str(args.seq_len), "--quiet",
           "-o", os.path.join(root, "out")]
    if save:
        cmd += ["--save-stats", os.path.join(root, "saved.safetensors")]
    peak, done = [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], du(root))
            time.sleep(interval)

    t = threading.Thread(target=sample)
    t.start()
    start = time.time()
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads))
    rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, env=env).returncode
    wall = time.time() - start
    done.set()
    t.join()
    final = du(root)
    return {"rc": rc, "peak": max(peak[0], final), "final": final, "wall": wall,
            "load": os.getloadavg()[0]}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--calib-data", required=True)
    p.add_argument("--bin", action="append", required=True)
    p.add_argument("--method", default="gptq")
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--interval", type=float, default=0.5)
    p.add_argument("--work", default="/tmp/quant-mlir-bench-disk")
    p.add_argument("--csv")
    a = p.parse_args()
    rows = []
    for mode in ("plain", "save-stats"):
        base = None
        for i, b in enumerate(a.bin):
            r = run(b, a, os.path.join(a.work, f"{i}-{mode}"), mode == "save-stats", a.interval)
            base = base or r["peak"]
            rows.append(dict(bin=b, mode=mode, ratio=r["peak"] / base, **r))
            if r["rc"]:
                print(f"{b} {mode} failed (exit {r['rc']})", file=sys.stderr)
    print(f"{'binary':<28} {'mode':<10} {'peak MB':>9} {'final MB':>9} {'peak/first':>10} {'wall s':>7} {'load':>5}")
    for r in rows:
        print(f"{os.path.basename(r['bin']):<28} {r['mode']:<10} {r['peak'] / 1e6:9.1f} {r['final'] / 1e6:9.1f} "
              f"{r['ratio']:10.3f} {r['wall']:7.1f} {r['load']:5.1f}")
    if a.csv:
        with open(a.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    shutil.rmtree(a.work, ignore_errors=True)


if __name__ == "__main__":
    main()
