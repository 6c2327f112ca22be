# transformers' own Llama/Qwen2/GPT-2/GPT-NeoX exported the way optimum does
# (../shared/data/hf-exports: mask, positions, KV cache, merged If, opsets
# 14 and 17): every fixture imports; its logits (batch 1 and 2, a left-padded
# batch) and present.* match torch's reference.npz; perplexity matches
# torch's ppl.json whole and block by block; quant-compile quantizes it.
# RUN: rm -rf %t && mkdir -p %t
# RUN: %python %s %shared_data/hf-exports %t | FileCheck %s
# CHECK-NOT: FAIL
# CHECK: gptneox-v4.40.2 cache imported
# CHECK: llama-v4.38.2 nocache_op14 imported
# CHECK: llama-v4.40.2 merged imported
# CHECK: ALL OK 17 fixtures
import functools, json, os, re, subprocess, sys
print = functools.partial(print, flush=True)
import numpy as np

root, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
ids = np.random.default_rng(0).integers(0, 512, 4096)
calib = os.path.join(out, "calib.npy")
np.save(calib, ids)


def sh(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def raw(model, func, case, ref, names):
    d = os.path.join(out, "io")
    os.makedirs(d, exist_ok=True)
    args = []
    for n in names:
        p = os.path.join(d, n + ".npy")
        np.save(p, ref[case + "." + n])
        args += ["--input", n + "=" + p]
    res = os.path.join(d, "out")
    sh("quant-run", model, "--func", func, *args, "--outputs", res)
    return {f[:-4]: np.load(os.path.join(res, f)) for f in os.listdir(res)}


def inputs_of(model, func):
    """The ONNX names of the entry's arguments, in order."""
    text = open(os.path.join(model, "model.mlir")).read()
    args = text[text.index("func.func @" + func + "("):]
    args = args[: args.index(") ->")]
    return re.findall(r'%arg\d+: [^{]*\{onnx.name = "([^"]*)"', args)


ok, count = True, 0
for fam in sorted(os.listdir(root)):
    fdir = os.path.join(root, fam)
    if not os.path.exists(os.path.join(fdir, "reference.npz")):
        continue
    ref = np.load(os.path.join(fdir, "reference.npz"))
    ppl_ref = json.load(open(os.path.join(fdir, "ppl.json")))["ppl_seq128_windows4"]
    evals = os.path.join(fdir, "eval_ids.npy")
    for var in sorted(os.listdir(fdir)):
        onnx = os.path.join(fdir, var, "model.onnx")
        if not os.path.exists(onnx):
            continue
        count += 1
        model = os.path.join(out, fam + "-" + var)
        sh("quant-import", onnx, "-o", model)
        print(fam, var, "imported")
        entries = {"main_graph": "nocache"} if var != "cache" else {"main_graph": "cache"}
        if var == "merged":
            entries["main_graph_use_cache_branch"] = "cache"
        worst = 0.0
        for func, kind in entries.items():
            names = inputs_of(model, func)
            # Batch 2 (and a left-padded batch 2); a cached step of 7 and of 1.
            prefixes = (["nocache.2x33", "pad.2x12"] if kind == "nocache" else ["cache.2x7", "cache.1x1"])
            for case in prefixes:
                got = raw(model, func, case, ref, names)
                for name, value in got.items():
                    if case + "." + name not in ref:
                        continue  # present.* of a prefill: no reference
                    want = ref[case + "." + name]
                    worst = max(worst, float(np.abs(value - want).max()))
        status = "OK" if worst <= 1e-4 else "FAIL"
        ok &= status == "OK"
        print(f"{fam} {var} max|logit diff| {worst:.2e} {status}")
        for mode in ([], ["--blockwise"]) if var in ("nocache_op14", "merged") else ([],):
            r = json.loads(sh("quant-run", model, "--eval-data", evals, "--seq-len", "128", "--json", "--quiet", *mode))
            rel = abs(r["perplexity"] - ppl_ref) / ppl_ref
            status = "OK" if rel <= 1e-4 else "FAIL"
            ok &= status == "OK"
            print(f"{fam} {var} perplexity{' '.join(mode)} {r['perplexity']:.4f} vs torch {ppl_ref:.4f} rel {rel:.1e} {status}")
        methods = []
        if var == "nocache_op14":
            methods = [["--method", "gptq"], ["--method", "gptq", "--true-sequential"]]
        if var in ("cache", "merged"):
            methods = [["--method", "gptq"]]
        for m in methods:
            q = model + "-q"
            sh("quant-compile", onnx, *m, "--bits", "4", "--group-size", "32", "--calib-data", calib,
               "--calib-samples", "4", "--seq-len", "64", "--quiet", "--force", "-o", q)
            r = json.loads(sh("quant-run", q, "--eval-data", evals, "--seq-len", "128", "--json", "--quiet"))
            status = "OK" if np.isfinite(r["perplexity"]) and r["perplexity"] < 2 * ppl_ref else "FAIL"
            ok &= status == "OK"
            print(f"{fam} {var} quant-compile {' '.join(m)}: perplexity {r['perplexity']:.2f} {status}")
print(("ALL OK" if ok else "FAILED"), count, "fixtures")
