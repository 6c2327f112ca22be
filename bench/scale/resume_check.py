#!/usr/bin/env python3
"""bench/scale: a deep run SIGKILLed in the middle resumes to the same bytes.

Generates a Llama (gen_model.py; default 8 layers, hidden 512 so that it runs
in minutes on 2 cores; --hidden 4096 --intermediate 11008 --heads 32 for the
7B block shapes), quantizes it once uninterrupted, once with --resume killed
(SIGKILL) as soon as its manifest names --kill-at committed stages, then
resumes that run, and compares every output file byte for byte. The
uninterrupted run is measured as bench_scale.py measures a depth (peak RSS
from wait4, quant-compile's phases); --csv appends that row.

  python3 bench/scale/resume_check.py [--layers 8] [--kill-at 5] [--method gptq]
      [--samples 8] [--seq-len 128] [--work /tmp/quant-mlir-bench-scale/resume]
"""
import argparse
import csv
import filecmp
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_scale import phases, run_measured  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--intermediate", type=int, default=1408)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--kill-at", type=int, default=5, help="committed stages (prologue = 1) before SIGKILL")
    p.add_argument("--method", default="gptq")
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--work", default="/tmp/quant-mlir-bench-scale/resume")
    p.add_argument("--bin", default=os.path.join(ROOT, "build", "bin", "quant-compile"))
    p.add_argument("--model", default=None,
                   help="a directory gen_model.py wrote (model.onnx) to use instead of generating one; kept")
    p.add_argument("--csv", default=None, help="append the uninterrupted run's row (bench_scale.py's columns)")
    a = p.parse_args()
    if a.model and os.path.abspath(a.model).startswith(os.path.abspath(a.work) + os.sep):
        sys.exit("--model must lie outside --work, which is emptied first")
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    model = a.model or os.path.join(a.work, "model")
    if not a.model:
        subprocess.run([sys.executable, os.path.join(HERE, "gen_model.py"), "--layers", str(a.layers), "--hidden",
                        str(a.hidden), "--intermediate", str(a.intermediate), "--heads", str(a.heads), "--vocab",
                        str(a.vocab), "-o", model], check=True, stdout=subprocess.DEVNULL)
    ids = os.path.join(a.work, "ids.npy")
    np.save(ids, np.random.default_rng(0).integers(0, a.vocab, 65536))
    base = [a.bin, os.path.join(model, "model.onnx"), "--method", a.method, "--calib-data", ids, "--calib-samples",
            str(a.samples), "--seq-len", str(a.seq_len), "--quiet"]
    full, res = os.path.join(a.work, "full"), os.path.join(a.work, "res")

    full_s, rss, text = run_measured(base[:-1] + ["-o", full], os.path.join(a.work, "full.log"))
    ph = phases(text)
    row = dict(method=a.method, depth=a.layers, rss_mb=round(rss), wall_s=round(full_s, 1),
               load=round(os.getloadavg()[0], 1), per_block_s=round(ph["per_block"], 1),
               **{k.replace(" ", "_") + "_s": round(v, 1) for k, v in ph.items() if k != "per_block"})
    print(row, flush=True)
    if a.csv:
        new = not os.path.exists(a.csv)
        with open(a.csv, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row), extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)

    manifest = os.path.join(a.work, ".res.resume", "calibration.state", "manifest.json")
    t = time.monotonic()
    proc = subprocess.Popen(base + ["--resume", "-o", res], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = 0
    while proc.poll() is None:
        try:
            with open(manifest) as f:
                done = json.load(f)["stages"]
        except (OSError, ValueError, KeyError):
            done = 0
        if done >= a.kill_at:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            break
        time.sleep(0.01)
    killed_s = time.monotonic() - t
    if done < a.kill_at:
        sys.exit(f"the run ended before {a.kill_at} stages (exit {proc.returncode})")
    if os.path.exists(res):
        sys.exit("the killed run left an output directory")

    t = time.monotonic()
    out = subprocess.run(base[:-1] + ["--resume", "-o", res], check=True, capture_output=True, text=True)
    resumed_s = time.monotonic() - t
    note = [line for line in out.stderr.splitlines() if "from the interrupted run" in line]

    names = sorted(os.listdir(full))
    same = [n for n in names if os.path.isfile(os.path.join(full, n))
            and filecmp.cmp(os.path.join(full, n), os.path.join(res, n), shallow=False)]
    files = [n for n in names if os.path.isfile(os.path.join(full, n))]
    print(f"{a.layers} layers, hidden {a.hidden}, ffn {a.intermediate}, {a.method}, {a.samples} x {a.seq_len} tokens; "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"uninterrupted {full_s:.1f} s; killed (SIGKILL) after {done} committed stages at {killed_s:.1f} s; "
          f"resumed in {resumed_s:.1f} s")
    print(note[0].strip() if note else "no resume note in the log")
    print(f"byte-identical: {len(same)} of {len(files)} files ({', '.join(files)})")
    leftover = os.path.exists(os.path.join(a.work, ".res.resume"))
    print(f"resume state left after success: {leftover}")
    for d in (full, res):
        shutil.rmtree(d, ignore_errors=True)
    if not a.model:
        shutil.rmtree(a.work, ignore_errors=True)
    sys.exit(0 if len(same) == len(files) and note and not leftover else 1)


if __name__ == "__main__":
    main()
