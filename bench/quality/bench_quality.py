#!/usr/bin/env python3
"""bench/quality: perplexity of the real Shakespeare model after RTN, GPTQ, GPTQ act-order, AWQ and AWQ+GPTQ.

    /usr/bin/python3 bench/quality/bench_quality.py [--build build] [--work DIR]
        [--domains train,gpl] [--calib-samples 128] [--gpl-samples 64] [--seq-len 256]

Model: ../shared/data/shakespeare (3.7M Llama, GQA, its sentencepiece
tokenizer). Calibration is text through the model's tokenizer: train.txt
(128 x 256 tokens) or, for the cross-domain table, Debian's
/usr/share/common-licenses/GPL-3 (about 16,500 tokens: 64 x 256). Evaluation:
all of valid.txt in windows of 256 (quant-run). Each domain is calibrated once
(quant-run --calibrate) and every method reads the same stats.safetensors, so
the comparison is fair. Weights are written as fake-quant (dequantized
floats), which computes the same function as the packed layers.

RTN, GPTQ and AWQ use each method's own quantizer on the same scheme (GPTQ's
min/max grid for RTN/GPTQ, AutoAWQ's for AWQ); AWQ+GPTQ is AWQ's scales and
clipping, then GPTQ on H' = diag(1/s) H diag(1/s). AWQ's scale search scores
candidates by the inspected module's output (quant-compile --awq-loss module:
the same calibration windows, plus the losses measured block by block) or,
in the linear-loss columns, by the group's own outputs from the Hessian.
Writes results.csv and ppl_vs_bits.png.
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
DATA = os.path.join(ROOT, "..", "shared", "data", "shakespeare")
PY = "/usr/bin/python3"
TOKENIZER = os.path.join(DATA, "shakespeare-1k.model")
ROWS = [  # label, bits, group, zero point
    ("w4 g128 asym", 4, 128, True),
    ("w4 g128 sym", 4, 128, False),
    ("w3 g128", 3, 128, True),
    ("w3 per-channel", 3, -1, True),
    ("w4 per-channel", 4, -1, True),
    ("w2 g64", 2, 64, True),
]
# AWQ / AWQ+GPTQ score scale candidates by the inspected module's output
# (--awq-loss module, measured block by block during calibration); the
# "linear loss" columns by the group's own outputs from the Hessian.
METHODS = ["RTN", "GPTQ", "GPTQ act-order", "AWQ", "AWQ+GPTQ",
           "AWQ linear-loss", "AWQ+GPTQ linear-loss"]


def run(cmd):
    return subprocess.run(cmd, check=True, text=True, capture_output=True).stdout


def module_loss_stats(bin_, a, onnx, data, samples, bits, group, zp):
    """The statistics with AWQ's module losses for one scheme: quant-compile
    --awq-loss module calibrates (same windows, seed and rows as quant-run
    --calibrate) and measures the losses block by block. Returns the
    stats.safetensors path and the seconds it took."""
    out = os.path.join(a.work, "awq-stats")
    shutil.rmtree(out, ignore_errors=True)
    t = time.time()
    run([bin_("quant-compile"), onnx, "--method", "awq", "--awq-mode", "scale", "--awq-loss", "module",
         "--bits", str(bits), "--group-size", str(group), f"--zero-point={'true' if zp else 'false'}",
         "--calib-data", data, "--tokenizer", TOKENIZER, "--calib-samples", str(samples),
         "--seq-len", str(a.seq_len), "--awq-loss-samples", str(a.loss_samples), "--quiet", "-o", out])
    return os.path.join(out, "stats.safetensors"), time.time() - t


def quantize(bin_, fp, d, method, bits, group, zp, stats=None):
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(fp, d)
    if stats and method in ("AWQ", "AWQ+GPTQ"):
        shutil.copyfile(stats, os.path.join(d, "stats.safetensors"))
    opts = (f"bits={bits} group-size={group} zero-point={'true' if zp else 'false'} "
            f"output=model.safetensors base-dir={d} report=quant-report.csv")
    if method == "RTN":
        p = f"--wq-rtn=fake-quant=true {opts}"
    elif method.startswith("GPTQ"):
        p = f"--wq-gptq=fake-quant=true {opts}" + (" desc-act=true" if "act" in method else "")
    else:
        p = (f"--wq-awq=mode=fake {opts}" + (" gptq=true" if method.startswith("AWQ+GPTQ") else "")
             + (" loss=linear" if "linear" in method else " loss=module"))
    run([bin_("quant-opt"), os.path.join(d, "model.mlir"), p, "-o", os.path.join(d, "q.mlir")])
    os.replace(os.path.join(d, "q.mlir"), os.path.join(d, "model.mlir"))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--work", default=os.path.join(ROOT, "build", "bench-quality"))
    p.add_argument("--domains", default="train,gpl")
    p.add_argument("--calib-samples", type=int, default=128)
    p.add_argument("--gpl-samples", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--csv", default=os.path.join(ROOT, "bench", "quality", "results.csv"))
    p.add_argument("--plot", default=os.path.join(ROOT, "bench", "quality", "ppl_vs_bits.png"))
    p.add_argument("--rows", default=",".join(r[0] for r in ROWS),
                   help="comma-separated row labels to run (default: all)")
    p.add_argument("--loss-samples", type=int, default=16,
                   help="calibration samples the AWQ module-loss candidates are scored on "
                        "(quant-compile --awq-loss-samples; 0: all)")
    p.add_argument("--reuse", action="store_true",
                   help="reuse WORK/fp-DOMAIN when it is already calibrated")
    p.add_argument("--methods", default=",".join(METHODS),
                   help="comma-separated methods to run (default: all)")
    p.add_argument("--merge", nargs="+", metavar="CSV",
                   help="no runs: merge the results.csv of earlier runs (e.g. one per domain), "
                        "print the tables, write --csv and --plot")
    a = p.parse_args()
    if a.merge:
        results, fp_ppl = [], None
        for path in a.merge:
            with open(path) as f:
                for r in csv.DictReader(f):
                    if r["method"] == "fp32":
                        fp_ppl = float(r["perplexity"])
                    else:
                        results.append((r["calibration"], r["config"], r["method"],
                                        float(r["perplexity"]), float(r["quantize_seconds"])))
        domains = list(dict.fromkeys(r[0] for r in results))
        return report(a, results, fp_ppl, domains)
    bin_ = lambda t: os.path.join(a.build, "bin", t)  # noqa: E731
    os.makedirs(a.work, exist_ok=True)
    t0 = time.time()
    onnx_dir = os.path.join(a.work, "onnx")
    if not os.path.exists(os.path.join(onnx_dir, "model.onnx")):
        run([PY, os.path.join(ROOT, "python/quant_mlir/llama2c_to_onnx.py"),
             os.path.join(DATA, "shakespeare-llama-3.7M.bin"), "-o", onnx_dir])
    valid = os.path.join(DATA, "valid.txt")

    def ppl(d):
        out = run([bin_("quant-run"), d, "--eval-data", valid, "--tokenizer", TOKENIZER,
                   "--seq-len", str(a.seq_len), "--json", "--quiet"])
        return json.loads(out)["perplexity"]

    results = []  # domain, row, method, ppl
    fp_ppl = None
    for domain in a.domains.split(","):
        data = os.path.join(DATA, "train.txt") if domain == "train" else "/usr/share/common-licenses/GPL-3"
        samples = a.calib_samples if domain == "train" else a.gpl_samples
        fp = os.path.join(a.work, f"fp-{domain}")
        reuse = a.reuse and os.path.exists(os.path.join(fp, "stats.safetensors"))
        if not reuse:
            shutil.rmtree(fp, ignore_errors=True)
            run([bin_("quant-import"), os.path.join(onnx_dir, "model.onnx"), "-o", fp])
        if fp_ppl is None:
            fp_ppl = ppl(fp)
        tc = time.time()
        if not reuse:
            run([bin_("quant-run"), fp, "--calibrate", "--calib-data", data, "--tokenizer", TOKENIZER,
                 "--calib-samples", str(samples), "--seq-len", str(a.seq_len), "--quiet"])
        print(f"[{domain}] calibrated {samples} x {a.seq_len} in {time.time() - tc:.1f} s", file=sys.stderr)
        for label, bits, group, zp in ROWS:
            if label not in a.rows.split(","):
                continue
            methods = [m for m in METHODS if m in a.methods.split(",")]
            stats, ts = None, 0
            if "AWQ" in methods or "AWQ+GPTQ" in methods:
                stats, ts = module_loss_stats(bin_, a, os.path.join(onnx_dir, "model.onnx"), data, samples,
                                              bits, group, zp)
                print(f"[{domain}] {label:<16} AWQ module losses in {ts:.1f} s", file=sys.stderr)
            for m in methods:
                d = os.path.join(a.work, "q")
                tq = time.time()
                quantize(bin_, fp, d, m, bits, group, zp, stats)
                # the module-loss methods' time includes measuring the losses
                tq = time.time() - tq + (ts if m in ("AWQ", "AWQ+GPTQ") else 0)
                v = ppl(d)
                results.append((domain, label, m, v, tq))
                print(f"[{domain}] {label:<16} {m:<15} {v:9.3f}  (quantized in {tq:.1f} s)", file=sys.stderr)

    print(f"Shakespeare 3.7M Llama, eval valid.txt (windows of {a.seq_len}), fp32 {fp_ppl:.3f}; "
          f"total {time.time() - t0:.0f} s")
    return report(a, results, fp_ppl, a.domains.split(","))


def report(a, results, fp_ppl, domains):
    """Markdown tables on stdout, the CSV and the plot."""
    for domain in domains:
        print(f"\ncalibration: {'train.txt' if domain == 'train' else 'GPL-3'}")
        print("| config | fp32 | " + " | ".join(METHODS) + " |")
        print("|---|" + "---:|" * (len(METHODS) + 1))
        for label, *_ in ROWS:
            vals = {m: v for dm, lb, m, v, _ in results if dm == domain and lb == label}
            if not vals:
                continue
            best = min(vals.values())
            cells = [("-" if m not in vals else f"**{vals[m]:.3f}**" if vals[m] == best else f"{vals[m]:.3f}")
                     for m in METHODS]
            print(f"| {label} | {fp_ppl:.3f} | " + " | ".join(cells) + " |")
    with open(a.csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["calibration", "config", "method", "perplexity", "quantize_seconds"])
        w.writerow(["-", "fp32", "fp32", f"{fp_ppl:.4f}", 0])
        for r in results:
            w.writerow([r[0], r[1], r[2], f"{r[3]:.4f}", f"{r[4]:.1f}"])
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no matplotlib (apt install python3-matplotlib): no plot", file=sys.stderr)
        return 0
    fig, axes = plt.subplots(1, len(domains), figsize=(6 * len(domains), 4.2), squeeze=False)
    for ax, domain in zip(axes[0], domains):
        for m in METHODS:
            pts = sorted((b, v) for dm, lb, mm, v, _ in results
                         for (l2, b, g, zp) in ROWS if dm == domain and mm == m and lb == l2
                         and g != -1 and zp)
            ax.plot([b for b, _ in pts], [v for _, v in pts], marker="o", label=m)
        ax.axhline(fp_ppl, color="k", linestyle=":", label="fp32")
        ax.set_yscale("log")
        ax.set_xticks([2, 3, 4])
        ax.set_xlabel("bits (asymmetric; g64 at 2 bits, g128 at 3 and 4)")
        ax.set_ylabel("valid.txt perplexity")
        ax.set_title(f"calibration: {'train.txt' if domain == 'train' else 'GPL-3'}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(a.plot, dpi=100)
    print(f"csv: {a.csv}\nplot: {a.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
