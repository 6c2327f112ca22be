#!/usr/bin/env python3
"""bench/quality: perplexity of the real model (../shared/data/stories260K.bin),
fp vs RTN vs GPTQ at 4 and 3 bits, grouped and per-channel; one table + CSV.

    /usr/bin/python3 bench/quality/bench_quality.py [--build build] [--work DIR]
        [--calib-samples 64] [--eval-windows 32] [--seq-len 512]

The model ships no text, so evaluation and calibration data are token streams
sampled from the fp model itself (python/quant_mlir/sample_tokens.py,
temperature 1, eval seed 1, calibration seed 0: disjoint). The model is
imported once and calibrated once (quant-run --calibrate); every method then
reads the same stats.safetensors, so the comparison is fair.

The model's dims (hidden 64, MLP 172) cannot hold group 128 (K = 64 < 128),
so the grouped column uses group 32, and down_proj (K = 172, not a multiple of
32) is per-channel in every column. Weights are written with --fake-quant
(dequantized float weights): 172-column down_proj codes cannot be packed at 3
or 4 bits in the gptq layout, and fake-quant gives the same numbers.
"""
import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SHARED = os.path.join(ROOT, "..", "shared", "data", "stories260K.bin")
PY = "/usr/bin/python3"


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--work", default=os.path.join(ROOT, "build", "bench-quality"))
    p.add_argument("--calib-samples", type=int, default=64)
    p.add_argument("--eval-windows", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--csv", default=os.path.join(ROOT, "bench", "quality", "results.csv"))
    a = p.parse_args()
    bin_ = lambda t: os.path.join(a.build, "bin", t)  # noqa: E731
    os.makedirs(a.work, exist_ok=True)
    onnx_dir, fp = os.path.join(a.work, "onnx"), os.path.join(a.work, "fp")
    eval_ids, calib_ids = os.path.join(a.work, "eval.npy"), os.path.join(a.work, "calib.npy")
    t0 = time.time()
    if not os.path.exists(os.path.join(onnx_dir, "model.onnx")):
        run([PY, os.path.join(ROOT, "python/quant_mlir/llama2c_to_onnx.py"), SHARED, "-o", onnx_dir])
    sampler = os.path.join(ROOT, "python/quant_mlir/sample_tokens.py")
    if not os.path.exists(eval_ids):
        run([PY, sampler, SHARED, "-o", eval_ids, "--count", str(a.eval_windows), "--length", str(a.seq_len), "--seed", "1"])
    if not os.path.exists(calib_ids):
        run([PY, sampler, SHARED, "-o", calib_ids, "--count", str(max(8, a.calib_samples // 4)), "--length", str(a.seq_len), "--seed", "0"])
    shutil.rmtree(fp, ignore_errors=True)
    run([bin_("quant-import"), os.path.join(onnx_dir, "model.onnx"), "-o", fp])
    tc = time.time()
    run([bin_("quant-run"), fp, "--calibrate", "--calib-data", calib_ids, "--calib-samples", str(a.calib_samples),
         "--seq-len", str(a.seq_len), "--quiet"])
    calib_s = time.time() - tc

    def ppl(d):
        out = run([bin_("quant-run"), d, "--eval-data", eval_ids, "--seq-len", str(a.seq_len), "--json", "--quiet"])
        return json.loads(out)["perplexity"]

    rows = [("fp32", "-", "-", ppl(fp))]
    for bits in (4, 3):
        for group, label in ((32, "g32"), (-1, "per-channel")):
            for method in ("rtn", "gptq"):
                d = os.path.join(a.work, f"{method}-{bits}-{label}")
                shutil.rmtree(d, ignore_errors=True)
                shutil.copytree(fp, d)
                opts = (f"bits={bits} group-size={group} fake-quant=true output=model.safetensors base-dir={d} "
                        f"overrides=*.down_proj:group-size=-1 report=quant-report.csv")
                run([bin_("quant-opt"), os.path.join(d, "model.mlir"), f"--wq-{method}={opts}",
                     "-o", os.path.join(d, "q.mlir")])
                os.replace(os.path.join(d, "q.mlir"), os.path.join(d, "model.mlir"))
                rows.append((method, bits, label, ppl(d)))
            # GPTQ true-sequential: its own calibration, quantized block by
            # block (same windows: same data, samples and seed).
            d = os.path.join(a.work, f"gptq-ts-{bits}-{label}")
            run([bin_("quant-compile"), os.path.join(onnx_dir, "model.onnx"), "--method", "gptq",
                 "--bits", str(bits), "--group-size", str(group), "--fake-quant", "--true-sequential",
                 "--overrides", "*.down_proj:group-size=-1", "--calib-data", calib_ids,
                 "--calib-samples", str(a.calib_samples), "--seq-len", str(a.seq_len),
                 "--force", "--quiet", "-o", d])
            rows.append(("gptq-ts", bits, label, ppl(d)))
    fp_ppl = rows[0][3]
    print(f"real model stories260K, eval {a.eval_windows} x {a.seq_len} sampled tokens, "
          f"calibration {a.calib_samples} x {a.seq_len} ({calib_s:.1f} s), total {time.time() - t0:.0f} s")
    print(f"{'config':<26} {'RTN':>10} {'GPTQ':>10} {'GPTQ true-seq':>14} {'GPTQ better':>12}")
    print(f"{'fp32':<26} {fp_ppl:>10.4f} {fp_ppl:>10.4f} {fp_ppl:>14.4f} {'':>12}")
    table = {}
    for m, b, g, v in rows[1:]:
        table.setdefault((b, g), {})[m] = v
    all_better = True
    for (b, g), v in table.items():
        better = v["gptq"] < v["rtn"] and v["gptq-ts"] < v["rtn"]
        all_better &= better
        print(f"{f'{b}-bit {g}':<26} {v['rtn']:>10.4f} {v['gptq']:>10.4f} {v['gptq-ts']:>14.4f} "
              f"{'yes' if better else 'NO':>12}")
    with open(a.csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["method", "bits", "grouping", "perplexity"])
        w.writerows(rows)
    print(f"csv: {a.csv}")
    return 0 if all_better else 1


if __name__ == "__main__":
    sys.exit(main())
