#!/usr/bin/python3
"""Times quant-layer's GPTQ (C++, OpenBLAS/LAPACK, float64) beside the float64
numpy reference (python/quant_mlir/gptq_ref.py) on LLaMA-7B-sized layers,
both with the same number of BLAS threads, and checks that they agree.

Default sizes: nn.Linear weights [N, K] = [4096, 4096] (q/k/v/o_proj) and
[11008, 4096] (gate/up_proj: 11008 outputs, 4096 inputs), one shared
calibration Hessian H = X^T X from X [2K, K] with correlated channels.
Scheme: 4-bit, group 128, zero-point, act-order (desc_act), damp 0.01,
block 128. The big sizes take minutes on 2 cores: run them once.

    /usr/bin/python3 bench/gptq/bench_gptq.py --quant-layer build/bin/quant-layer
    /usr/bin/python3 bench/gptq/bench_gptq.py --sizes 512x512 ...   # smoke run

Prints a table and CSV (also written to --csv).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

p = argparse.ArgumentParser()
p.add_argument("--quant-layer", default="build/bin/quant-layer")
p.add_argument("--sizes", default="4096x4096,11008x4096",
               help="comma-separated NxK (nn.Linear weight shapes)")
p.add_argument("--threads", type=int, default=2)
p.add_argument("--bits", type=int, default=4)
p.add_argument("--group-size", type=int, default=128)
p.add_argument("--no-numpy", action="store_true", help="skip the numpy reference")
p.add_argument("--torch", action="store_true",
               help="also time AutoGPTQ's torch float32 GPTQ (gptq_torch.py) on --threads threads")
p.add_argument("--csv", default="", help="also write the CSV here")
p.add_argument("--tmp", default="", help="scratch directory (default: a temp dir)")
args = p.parse_args()

# Before numpy loads OpenBLAS: the reference gets the same thread count.
os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
os.environ["OMP_NUM_THREADS"] = str(args.threads)
import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))
from quant_mlir import gptq_ref, safetensors_io  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def hessian(k, rng):
    x = rng.standard_normal((2 * k, k))
    j = np.arange(1, k, 3)
    x[:, j] = 0.9 * x[:, j - 1] + 0.1 * x[:, j]
    x *= rng.uniform(0.2, 3.0, size=k)
    h = x.T @ x
    return 0.5 * (h + h.T), x


def main():
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    tmp = args.tmp or tempfile.mkdtemp(prefix="bench-gptq-")
    os.makedirs(tmp, exist_ok=True)
    rng = np.random.default_rng(0)
    hs = {}
    rows = []
    for n, k in sizes:
        if k not in hs:
            t = time.perf_counter()
            hs[k] = hessian(k, rng)
            print(f"[H {k}x{k} from X [{2 * k}, {k}] in {time.perf_counter() - t:.1f} s]",
                  file=sys.stderr)
        h, x = hs[k]
        w = rng.standard_normal((n, k)).astype(np.float32) * 0.02
        inp = os.path.join(tmp, f"layer_{n}x{k}.safetensors")
        safetensors_io.save(inp, {"w": w, "h": h})
        out = os.path.join(tmp, f"out_{n}x{k}.safetensors")
        cmd = [args.quant_layer, "--method", "gptq", "--bits", str(args.bits),
               "--group-size", str(args.group_size), "--zero-point", "--desc-act",
               "--blas-threads", str(args.threads), "--print-time",
               "--weight", f"{inp}:w", "--hessian", f"{inp}:h", "-o", out]
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t
        if r.returncode:
            sys.exit(r.stderr)
        cpp = float(r.stdout.split("quantize_seconds=")[1].split()[0])
        res = safetensors_io.load(out)
        row = dict(layer=f"{n}x{k}", n=n, k=k, cpp_s=cpp, cpp_wall_s=wall)
        if not args.no_numpy:
            t = time.perf_counter()
            ref = gptq_ref.gptq(w, h, args.bits, args.group_size, sym=False,
                                act_order=True, percdamp=0.01, blocksize=128)
            row["numpy_s"] = time.perf_counter() - t
            diff = res["q"].astype(np.int64) - ref["q"].astype(np.int64)
            row["codes_differing"] = int(np.count_nonzero(diff))
            row["max_scale_rel_diff"] = float(np.max(
                np.abs(res["scales"] - ref["scales"]) / ref["scales"]))
        if args.torch:
            import torch
            import gptq_torch
            torch.set_num_threads(args.threads)
            deq, row["torch_s"] = gptq_torch.fasterquant(w, h, args.bits, args.group_size)
            row["torch_over_cpp"] = row["torch_s"] / cpp
            ours = gptq_ref.dequantize_result(res, args.bits, args.group_size)
            row["torch_err_ratio"] = (np.linalg.norm(x[:1024] @ (w.astype(np.float64) - deq).T) /
                                      np.linalg.norm(x[:1024] @ (w.astype(np.float64) - ours).T))
        # Output error on 1024 calibration rows, GPTQ vs RTN (as a sanity check).
        rtn = gptq_ref.rtn(w, args.bits, args.group_size, sym=False)
        xs = x[:1024]
        wd = w.astype(np.float64)
        err = lambda r_, g: np.linalg.norm(xs @ (wd - gptq_ref.dequantize_result(
            r_, args.bits, args.group_size)).T)
        row["err_ratio_gptq_rtn"] = err(res, None) / err(rtn, None)
        rows.append(row)
        print(f"[{n}x{k}: C++ {cpp:.2f} s" +
              (f", numpy {row['numpy_s']:.2f} s" if "numpy_s" in row else "") + "]",
              file=sys.stderr)

    cols = ["layer", "cpp_s", "cpp_wall_s", "numpy_s", "speedup",
            "codes_differing", "max_scale_rel_diff", "err_ratio_gptq_rtn",
            "torch_s", "torch_over_cpp", "torch_err_ratio"]
    for row in rows:
        if "numpy_s" in row:
            row["speedup"] = row["numpy_s"] / row["cpp_s"]
    print(f"GPTQ {args.bits}-bit, group {args.group_size}, zero-point, act-order, "
          f"block 128, damp 0.01, float64; {args.threads} BLAS threads "
          f"(quant-layer --blas-threads, numpy OPENBLAS_NUM_THREADS)")
    print(f"{'layer [N x K]':>14} {'C++ (s)':>9} {'C++ proc (s)':>13} {'numpy (s)':>10} "
          f"{'speedup':>8} {'codes !=':>9} {'scale rel':>10} {'|err| GPTQ/RTN':>15}")
    fmt = lambda v, f: "-" if v is None else format(v, f)
    for r in rows:
        print(f"{r['layer']:>14} {r['cpp_s']:9.2f} {r['cpp_wall_s']:13.2f} "
              f"{fmt(r.get('numpy_s'), '10.2f')} {fmt(r.get('speedup'), '8.1f')} "
              f"{fmt(r.get('codes_differing'), '9d')} {fmt(r.get('max_scale_rel_diff'), '10.1e')} "
              f"{r['err_ratio_gptq_rtn']:15.3f}")
        if "torch_s" in r:
            print(f"{'':>14} torch float32 (AutoGPTQ) {r['torch_s']:.2f} s = {r['torch_over_cpp']:.2f}x C++; "
                  f"|err| torch/C++ {r['torch_err_ratio']:.3f}")
    csv = [",".join(cols)] + [",".join("" if r.get(c) is None else str(r.get(c)) for c in cols)
                              for r in rows]
    print("\n".join(csv))
    if args.csv:
        with open(args.csv, "w") as f:
            f.write("\n".join(csv) + "\n")


main()
