#!/usr/bin/env python3
"""Compiles the real Shakespeare model (3.7M-parameter Llama, llama2.c format)
with GPTQ and AWQ from Python and prints perplexity and size beside fp32,
the same flow as scripts/run.sh through the quant_mlir package.

    PYTHONPATH=build/python /usr/bin/python3 examples/compile_shakespeare.py \
        [--data ../shared/data/shakespeare] [--work build/py-example] [--bits 4 3] \
        [--calib-samples 128] [--eval-windows 0] [--register-numpy-rtn]

--register-numpy-rtn adds a user quantizer (RTN in numpy, registered with
quant_mlir.register_quantizer) to the table, compiled through the same
pipeline.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]

try:
    import quant_mlir.api  # noqa: F401
except ImportError:  # not installed: the build tree's package
    sys.path.insert(0, str(ROOT / "build" / "python"))
    sys.modules.pop("quant_mlir", None)
import quant_mlir  # noqa: E402


def numpy_rtn(weight, stats, scheme):
    """Round-to-nearest on the min/max grid of each row and group."""
    n, k = weight.shape
    g = scheme.num_groups
    w = weight.astype(np.float64).reshape(n, g, k // g)
    xmin = np.minimum(w.min(axis=2), 0.0)
    xmax = np.maximum(w.max(axis=2), 0.0)
    if scheme.symmetric:
        xmax = np.maximum(np.abs(xmin), xmax)
        xmin = np.where(xmin < 0, -xmax, xmin)
    scale = np.maximum((xmax - xmin) / scheme.max_code, 1e-12).astype(np.float32)
    zero = (np.full_like(scale, (scheme.max_code + 1) // 2) if scheme.symmetric
            else np.round(-xmin / scale))
    q = np.clip(np.round(w / scale[..., None]) + zero[..., None], 0, scheme.max_code)
    return q.reshape(n, k), scale, zero.astype(np.int32), None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "shakespeare"))
    p.add_argument("--work", default=str(ROOT / "build" / "py-example"))
    p.add_argument("--bits", type=int, nargs="+", default=[4])
    p.add_argument("--calib-samples", type=int, default=128)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--eval-windows", type=int, default=0, help="0: all of valid.txt")
    p.add_argument("--register-numpy-rtn", action="store_true")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args()

    data, work = pathlib.Path(a.data), pathlib.Path(a.work)
    tokenizer = data / "shakespeare-1k.model"
    work.mkdir(parents=True, exist_ok=True)
    onnx = work / "onnx" / "model.onnx"
    if not onnx.exists():
        subprocess.run([sys.executable, str(ROOT / "python/quant_mlir/llama2c_to_onnx.py"),
                        str(data / "shakespeare-llama-3.7M.bin"), "-o", str(onnx.parent)],
                       check=True, stdout=subprocess.DEVNULL)
    if a.register_numpy_rtn:
        quant_mlir.register_quantizer("numpy-rtn", numpy_rtn)

    calib = dict(calib_data=data / "train.txt", tokenizer=tokenizer,
                 calib_samples=a.calib_samples, seq_len=a.seq_len)
    runs = [("fp32", dict(method="none"))]
    for bits in a.bits:
        for method in ["gptq", "awq"] + (["numpy-rtn"] if a.register_numpy_rtn else []):
            runs.append((f"{method}-w{bits}g128",
                         dict(method=method, bits=bits, group_size=128, zero_point=True, **calib)))

    valid = (data / "valid.txt").read_text()
    rows = []
    for name, options in runs:
        t0 = time.time()
        report = quant_mlir.compile(onnx, out=work / name, force=True, quiet=a.quiet, **options)
        compile_s = time.time() - t0
        model = quant_mlir.load(report.out_dir, tokenizer=tokenizer)
        r = model.evaluate(valid, seq_len=a.seq_len, max_windows=a.eval_windows, quiet=a.quiet)
        mib = os.path.getsize(os.path.join(report.out_dir, "model.safetensors")) / 2**20
        errs = report.errors("output") if report.layers else np.zeros(1)
        err = float(np.mean(errs)) if not np.isnan(errs).all() else float("nan")
        rows.append((name, r["perplexity"], err, mib, compile_s, r["windows"]))
        sample = model.generate("KING HENRY:\nWhat says", max_new_tokens=24, max_seq_len=128)
        print(f"--- {name}: KING HENRY:\\nWhat says{sample!r}", file=sys.stderr)

    print(f"\n{'model':<18} {'perplexity':>10} {'mean out err':>12} {'weights MiB':>11} "
          f"{'compile s':>9} {'windows':>7}")
    for name, ppl, err, mib, secs, windows in rows:
        shown = "-" if np.isnan(err) else f"{err:.4e}"  # not measured (AWQ, RTN)
        print(f"{name:<18} {ppl:>10.4f} {shown:>12} {mib:>11.3f} {secs:>9.2f} {windows:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
