#!/usr/bin/env python3
"""bench/scale: peak memory and time of quant-compile against model depth.

A generated Llama with 7B block shapes (hidden 4096, ffn 11008, 32 heads,
vocab 32000; random weights, external data) at several depths is quantized
with quant-compile (block by block calibration, the default); for each depth
and method the table gives the peak RSS (wait4 ru_maxrss, what
/usr/bin/time -v reports), the wall time, quant-compile's own time per phase
and per block, and a projection to 32 layers (RSS: linear fit over the
depths measured; time: the per-depth parts scaled to 32 blocks).

  python3 bench/scale/bench_scale.py [--depths 2,4] [--methods gptq,awq]
      [--samples 32] [--seq-len 512] [--work /tmp/quant-mlir-bench-scale]
      [--csv out.csv]

Models are generated once per depth into --work (python/quant_mlir/
export_fixtures.py; about 0.8 GB of f32 weights per block).
"""
import argparse
import csv
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
BIN = os.path.join(ROOT, "build", "bin")
SHAPE = dict(hidden=4096, intermediate=11008, heads=32, vocab=32000)


def model(work, depth):
    out = os.path.join(work, f"llama-h{SHAPE['hidden']}-d{depth}")
    if not os.path.exists(os.path.join(out, "model.onnx")):
        subprocess.run([sys.executable, os.path.join(HERE, "gen_model.py"), "--layers", str(depth),
                        "--hidden", str(SHAPE["hidden"]), "--intermediate", str(SHAPE["intermediate"]),
                        "--heads", str(SHAPE["heads"]), "--vocab", str(SHAPE["vocab"]), "-o", out],
                       check=True, stdout=subprocess.DEVNULL)
    return os.path.join(out, "model.onnx")


def run_measured(cmd, log_path):
    with open(log_path, "w") as log:
        pid = os.fork()
        if pid == 0:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            os.execv(cmd[0], cmd)
        start = time.monotonic()
        _, status, usage = os.wait4(pid, 0)
    seconds = time.monotonic() - start
    text = open(log_path).read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{text[-2000:]}")
    return seconds, usage.ru_maxrss / 1024.0, text


def phases(text):
    out = {}
    for m in re.finditer(r"^(import|calibrate|merge statistics|index statistics|quantize|write)\s+([0-9.]+)", text, re.M):
        out[m.group(1)] = float(m.group(2))
    m = re.search(r"calibration: (\d+) blocks run, ([0-9.]+) s per block", text)
    out["per_block"] = float(m.group(2)) if m else float("nan")
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--depths", default="2,4")
    p.add_argument("--methods", default="gptq,awq")
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--work", default="/tmp/quant-mlir-bench-scale")
    p.add_argument("--extra", default="", help="more quant-compile flags")
    p.add_argument("--csv", default=None)
    p.add_argument("--bin", default=os.path.join(BIN, "quant-compile"),
                   help="the quant-compile to run (a copy, so that rebuilding does not change it mid-run)")
    p.add_argument("--keep-models", action="store_true", help="do not delete each depth's model after its runs")
    p.add_argument("--onnx", default=None,
                   help="quantize this model.onnx (e.g. bench/decode's generated 1B) instead of generating one; "
                        "--depths then names its one depth; never deleted")
    p.add_argument("--hidden", type=int, default=SHAPE["hidden"])
    p.add_argument("--intermediate", type=int, default=SHAPE["intermediate"])
    p.add_argument("--heads", type=int, default=SHAPE["heads"])
    p.add_argument("--vocab", type=int, default=SHAPE["vocab"])
    a = p.parse_args()
    SHAPE.update(hidden=a.hidden, intermediate=a.intermediate, heads=a.heads, vocab=a.vocab)
    os.makedirs(a.work, exist_ok=True)
    ids = os.path.join(a.work, "ids.npy")
    if not os.path.exists(ids):
        np.save(ids, np.random.default_rng(0).integers(0, SHAPE["vocab"], 65536))
    rows = []
    # Depth outer: one generated model on disk at a time.
    for depth in [int(d) for d in a.depths.split(",")]:
        onnx = a.onnx or model(a.work, depth)
        for method in a.methods.split(","):
            out = os.path.join(a.work, f"out-{method}-d{depth}")
            shutil.rmtree(out, ignore_errors=True)
            cmd = [a.bin, onnx, "--method", method, "--calib-data", ids,
                   "--calib-samples", str(a.samples), "--seq-len", str(a.seq_len), "-o", out] + a.extra.split()
            sec, rss, text = run_measured(cmd, out + ".log")
            ph = phases(text)
            rows.append(dict(method=method, depth=depth, rss_mb=round(rss), wall_s=round(sec, 1),
                             load=round(os.getloadavg()[0], 1),
                             per_block_s=round(ph["per_block"], 1),
                             **{k.replace(" ", "_") + "_s": round(v, 1) for k, v in ph.items() if k != "per_block"}))
            shutil.rmtree(out, ignore_errors=True)
            print(rows[-1], flush=True)
        if not a.keep_models and not a.onnx:
            shutil.rmtree(os.path.dirname(onnx), ignore_errors=True)
    rows.sort(key=lambda r: (r["method"], r["depth"]))
    # Projection to 32 layers per method: RSS by a linear fit in depth, time
    # by the per-block calibration time and the quantize time per block.
    shape = a.onnx if a.onnx else (f"hidden {a.hidden}, ffn {a.intermediate}, {a.heads} heads, "
                                   f"vocab {a.vocab}")
    print(f"\n{a.samples} x {a.seq_len} calibration tokens, {shape}; load {os.getloadavg()[0]:.1f}")
    head = f"{'method':<8} {'depth':>5} {'peak RSS MB':>12} {'wall s':>8} {'s/block':>8} {'calib s':>8} {'quant s':>8}"
    print(head)
    for r in rows:
        print(f"{r['method']:<8} {r['depth']:>5} {r['rss_mb']:>12} {r['wall_s']:>8} {r['per_block_s']:>8} "
              f"{r.get('calibrate_s', 0):>8} {r.get('quantize_s', 0):>8}")
    for method in a.methods.split(","):
        rs = [r for r in rows if r["method"] == method]
        if len(rs) >= 2:
            d = np.array([r["depth"] for r in rs], float)
            m = np.array([r["rss_mb"] for r in rs], float)
            slope, icpt = np.polyfit(d, m, 1)
            last = rs[-1]
            quant_per_block = last.get("quantize_s", 0) / last["depth"]
            t32 = last["wall_s"] + (32 - last["depth"]) * (last["per_block_s"] + quant_per_block)
            print(f"{method}: RSS(d{rs[-1]['depth']})/RSS(d{rs[0]['depth']}) = {m[-1] / m[0]:.3f}; "
                  f"fit {icpt:.0f} MB + {slope:.0f} MB/block -> 32 layers {icpt + 32 * slope:.0f} MB, "
                  f"about {t32 / 3600:.1f} h")
    if a.csv:
        with open(a.csv, "w", newline="") as f:
            keys = sorted({k for r in rows for k in r})
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
