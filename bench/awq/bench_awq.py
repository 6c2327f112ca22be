#!/usr/bin/env python3
"""bench/awq: AWQ and GPTQ time on one transformer block of Llama-7B shapes.

    /usr/bin/python3 bench/awq/bench_awq.py [--build build] [--work DIR]
        [--samples 32] [--seq-len 512] [--module-grid 20] [--threads 2]

Model: one Llama block, hidden 4096, ffn 11008, 32 heads (no GQA), vocab 256,
random weights (python/quant_mlir/export_fixtures.py), 202M parameters in the
block. Calibration: 32 x 512 random token ids. Every step is a separate
process, timed by wall clock, on --threads OpenBLAS threads (the JIT runs on
one): calibration (quant-run --calibrate: H, mean |x|, 512 sampled rows),
GPTQ (wq-gptq, 4-bit g128, damp 0.01), AWQ with the linear (Hessian) loss
split into its scale search per group (awq-report.csv's seconds) and the
rest (clip search, quantization, archive I/O), and AWQ's module-output
loss (quant-compile --awq-loss module with n-grid 1, from which the time of
one block pass and of AutoAWQ's 20 candidates are estimated: a full n-grid 20
run is 42 passes of a 7B block). Prints a table and writes results.csv.
"""
import argparse
import csv
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PY = "/usr/bin/python3"


def timed(cmd, env):
    t = time.time()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    t = time.time() - t
    print(f"  {os.path.basename(cmd[0])} {' '.join(c for c in cmd[1:] if c.startswith('--wq') or c in ('--calibrate', 'module'))}:"
          f" {t:.1f} s (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
    return t


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--work", default=os.path.join(ROOT, "build", "bench-awq"))
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--hidden", type=int, default=4096)
    p.add_argument("--intermediate", type=int, default=11008)
    p.add_argument("--heads", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip", default="", help="comma-separated steps to skip: gptq,linear,module")
    p.add_argument("--csv", default=os.path.join(ROOT, "bench", "awq", "results.csv"))
    a = p.parse_args()
    b = lambda t: os.path.join(a.build, "bin", t)  # noqa: E731
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))
    skip = set(a.skip.split(",")) - {""}
    os.makedirs(a.work, exist_ok=True)
    onnx = os.path.join(a.work, "onnx", "model.onnx")
    if not os.path.exists(onnx):
        subprocess.run([PY, os.path.join(ROOT, "python/quant_mlir/export_fixtures.py"), "--family", "llama",
                        "--hidden", str(a.hidden), "--layers", "1", "--heads", str(a.heads),
                        "--kv-heads", str(a.heads), "--intermediate", str(a.intermediate),
                        "--vocab", "256", "--max-pos", str(a.seq_len), "-o", os.path.dirname(onnx)],
                       check=True, stdout=subprocess.DEVNULL)
    ids = os.path.join(a.work, "ids.npy")
    subprocess.run([PY, "-c", f"import numpy as np; np.save('{ids}', np.random.default_rng(0)"
                    f".integers(0, 256, {a.samples * a.seq_len + 1}))"], check=True)
    fp = os.path.join(a.work, "fp")
    shutil.rmtree(fp, ignore_errors=True)
    t_import = timed([b("quant-import"), onnx, "-o", fp], env)
    rows = []  # step, seconds, note
    calib = ["--calib-data", ids, "--calib-samples", str(a.samples), "--seq-len", str(a.seq_len), "--quiet"]
    rows.append(("calibration (H, mean |x|, rows)",
                 timed([b("quant-run"), fp, "--calibrate"] + calib, env), "shared by GPTQ and AWQ linear"))
    q = os.path.join(a.work, "q")

    def opt(pipeline):
        shutil.rmtree(q, ignore_errors=True)
        shutil.copytree(fp, q)
        return timed([b("quant-opt"), os.path.join(q, "model.mlir"), pipeline, "-o",
                      os.path.join(q, "out.mlir")], env)

    common = f"bits=4 group-size=128 output=model.safetensors base-dir={q}"
    if "gptq" not in skip:
        rows.append(("GPTQ (wq-gptq)", opt(f"--wq-gptq={common} zero-point=true"), "4-bit g128, damp 0.01"))
    if "linear" not in skip:
        report = os.path.join(q, "awq-report.csv")
        total = opt(f"--wq-awq={common} mode=fake loss=linear awq-report=awq-report.csv")
        with open(report) as f:
            groups = list(csv.DictReader(f))
        search = sum(float(g["seconds"]) for g in groups)
        for g in groups:
            name = g["layers"].split(";")
            rows.append((f"AWQ linear-loss search: {';'.join(n.split('.')[-1] for n in name)}",
                         float(g["seconds"]), f"alpha {g['alpha']}"))
        rows += [("AWQ clip search + quantize + I/O", total - search,
                  "clip: 10 shrinks x 512 tokens, one dgemm per group and shrink; not q, k"),
                 ("AWQ linear loss total (wq-awq)", total, "after the calibration")]
    if "module" not in skip:
        # quant-compile --awq-loss module with n-grid 1: the import, the float
        # block run (statistics), and 3 more block passes (the cut reference
        # of [q, k, v], one candidate each for [q, k, v] and [gate, up]).
        # AutoAWQ's n-grid 20 adds 2 x 19 passes; the pass time is taken from
        # the difference to import + calibration.
        out = os.path.join(a.work, "module")
        shutil.rmtree(out, ignore_errors=True)
        t1 = timed([b("quant-compile"), onnx, "--method", "awq", "--awq-mode", "scale", "--awq-loss",
                    "module", "--n-grid", "1", "-o", out] + calib, env)
        per = max(t1 - t_import - rows[0][1], 0) / 3
        rows.append(("AWQ module loss, n-grid 1 (import + calibration + 3 block passes)", t1, "measured"))
        rows.append(("one block pass over all tokens", per, "(n-grid-1 run - import - calibration) / 3"))
        rows.append(("AWQ module loss, n-grid 20 (estimate)", t1 + 38 * per,
                     "n-grid-1 run + 38 passes; the scale search of o / down (H) not included"))
    load = os.getloadavg()
    print(f"one Llama block, hidden {a.hidden}, ffn {a.intermediate}, {a.heads} heads; "
          f"{a.samples} x {a.seq_len} tokens; {a.threads} BLAS threads; load average {load[0]:.1f}")
    print("| step | seconds | note |\n|---|---:|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]:.1f} | {r[2]} |")
    with open(a.csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "seconds", "note", "load_average"])
        for r in rows:
            w.writerow([r[0], f"{r[1]:.1f}", r[2], f"{load[0]:.1f}"])
    print(f"csv: {a.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
