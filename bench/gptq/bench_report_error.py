#!/usr/bin/python3
"""Times the quantization report's output error, tr(dW H dW^T) / tr(W H W^T),
two ways on LLaMA-7B-sized layers: the direct dsymm of measureLayerError
(4 N K^2 flops, what wq-gptq computed before) and GPTQ's own sums
(GPTQOutputError: O(N K) sums in Algorithm 1's loop plus one dtrmm, N K^2
flops; its time is the dtrmm's, which GPTQ measures).

    /usr/bin/python3 bench/gptq/bench_report_error.py --quant-layer build/bin/quant-layer
    /usr/bin/python3 bench/gptq/bench_report_error.py --sizes 512x512   # smoke run

Sizes are nn.Linear weights [N, K]: 4096x4096 (q/k/v/o_proj) and 4096x11008
(down_proj, K = 11008). H = X^T X, X [rows, K] random normal with every
third channel correlated with its neighbour (rows = min(2K, --max-rows);
fewer rows than K leave H singular, which GPTQ's damping handles). Scheme:
4-bit, group 128, zero-point, act-order, block 128, damp 0.01. Each size
runs --reps times; each quant-layer process runs GPTQ with its own error
(timed as a whole and the dtrmm alone), then the direct measure on the same
result. Prints a table and CSV.
"""
import argparse
import os
import subprocess
import sys
import tempfile

p = argparse.ArgumentParser()
p.add_argument("--quant-layer", default="build/bin/quant-layer")
p.add_argument("--sizes", default="4096x4096,4096x11008")
p.add_argument("--threads", type=int, default=2)
p.add_argument("--reps", type=int, default=1)
p.add_argument("--max-rows", type=int, default=4096)
p.add_argument("--csv", default="")
p.add_argument("--tmp", default="")
args = p.parse_args()

os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))
from quant_mlir import safetensors_io  # noqa: E402


def layer(n, k, rng):
    x = rng.standard_normal((min(2 * k, args.max_rows), k))
    j = np.arange(1, k, 3)
    x[:, j] = 0.9 * x[:, j - 1] + 0.1 * x[:, j]
    h = x.T @ x
    w = rng.standard_normal((n, k)).astype(np.float32) * 0.02
    return w, 0.5 * (h + h.T)


def value(out, key):
    return float(out.split(key + "=")[1].split()[0])


def main():
    tmp = args.tmp or tempfile.mkdtemp(prefix="bench-report-error-")
    rng = np.random.default_rng(0)
    rows = []
    for size in args.sizes.split(","):
        n, k = (int(v) for v in size.split("x"))
        w, h = layer(n, k, rng)
        inp = os.path.join(tmp, f"layer_{n}x{k}.safetensors")
        safetensors_io.save(inp, {"w": w, "h": h})
        del w, h
        for rep in range(args.reps):
            cmd = [args.quant_layer, "--method", "gptq", "--bits", "4",
                   "--group-size", "128", "--zero-point", "--desc-act",
                   "--blas-threads", str(args.threads), "--print-time",
                   "--report-error", "--weight", f"{inp}:w", "--hessian",
                   f"{inp}:h", "-o", os.path.join(tmp, "out.safetensors")]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode:
                sys.exit(r.stderr)
            gptq = value(r.stdout, "quantize_seconds")
            own = value(r.stdout, "own_error_seconds")
            direct = value(r.stdout, "direct_error_seconds")
            e_own = value(r.stdout, "own_output_rel_err")
            e_direct = value(r.stdout, "direct_output_rel_err")
            row = dict(layer=f"{n}x{k}", rep=rep, gptq_s=gptq,
                       own_error_s=own, direct_error_s=direct,
                       direct_over_gptq=direct / gptq,
                       own_over_gptq=own / gptq,
                       direct_over_own=direct / own,
                       own_output_rel_err=e_own,
                       direct_output_rel_err=e_direct,
                       rel_diff=abs(e_own - e_direct) / e_direct)
            rows.append(row)
            print(f"[{row['layer']} rep {rep}: GPTQ {gptq:.2f} s (own error "
                  f"{own:.2f} s of it), direct {direct:.2f} s]", file=sys.stderr)
        os.remove(inp)
    print(f"report output error, GPTQ 4-bit g128 zero-point act-order, "
          f"{args.threads} BLAS threads")
    print(f"{'layer [N x K]':>14} {'GPTQ (s)':>9} {'own (s)':>8} {'direct (s)':>11} "
          f"{'own/GPTQ':>9} {'direct/GPTQ':>12} {'direct/own':>11} {'rel diff':>9}")
    for r in rows:
        print(f"{r['layer']:>14} {r['gptq_s']:9.2f} {r['own_error_s']:8.2f} "
              f"{r['direct_error_s']:11.2f} {r['own_over_gptq']:9.3f} "
              f"{r['direct_over_gptq']:12.3f} {r['direct_over_own']:11.1f} "
              f"{r['rel_diff']:9.1e}")
    cols = list(rows[0].keys())
    csv = [",".join(cols)] + [",".join(str(r[c]) for c in cols) for r in rows]
    print("\n".join(csv))
    if args.csv:
        with open(args.csv, "w") as f:
            f.write("\n".join(csv) + "\n")


main()
