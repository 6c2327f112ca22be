# Calibration statistics of a tiny model equal a float64 numpy computation on
# the same inputs (H = 2/n sum x x^T, rel. error < 1e-9; mean |x|), the sample
# choice is seeded, recorded and reproducible, and the IR references the
# statistics by name. Bad data gives a clear error and writes nothing.
# RUN: rm -rf %t && mkdir -p %t
# RUN: %python %s %t %src_root prepare
# RUN: quant-run %t/model --calibrate --calib-data %t/ids.npy --calib-samples 6 --seq-len 8 --seed 3 --sample-rows 1000 --quiet
# RUN: %python %s %t %src_root check
# RUN: FileCheck %s < %t/model/model.mlir
# CHECK: wq.stats_archive = "stats.safetensors"
# CHECK: stats = #wq.stats<key = "model.layers.0.mlp.up_proj", tokens = 48, rows = 48>
# CHECK: stats = #wq.stats<key = "lm_head", tokens = 48, rows = 48>
# RUN: cp %t/model/stats.safetensors %t/first.safetensors
# RUN: %python %s %t %src_root prepare
# RUN: quant-run %t/model --calibrate --calib-data %t/ids.npy --calib-samples 6 --seq-len 8 --seed 3 --sample-rows 1000 --quiet
# RUN: cmp %t/first.safetensors %t/model/stats.safetensors
# RUN: %python %s %t %src_root prepare
# RUN: not quant-run %t/model --calibrate --calib-data %t/short.txt --calib-samples 2 --seq-len 8 2>&1 | FileCheck %s --check-prefix=SHORT
# SHORT: holds 5 tokens, fewer than one sample of 8
# RUN: not ls %t/model/stats.safetensors
# RUN: not quant-run %t/model --calibrate --calib-data %t/oov.txt --seq-len 8 2>&1 | FileCheck %s --check-prefix=OOV
# OOV: outside the model's vocabulary
# RUN: not quant-run %t/model --calibrate --seq-len 8 2>&1 | FileCheck %s --check-prefix=NODATA
# NODATA: --calibrate needs --calib-data
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "Inputs"))
import tiny_lm  # noqa: E402

tmp, src, mode = sys.argv[1:4]
sys.path.insert(0, os.path.join(src, "python"))
from quant_mlir import safetensors_io  # noqa: E402

V, D, F = 16, 8, 12
MODEL = """module attributes {wq.archive = "model.safetensors"} {
  func.func @forward(%ids: tensor<?x?xi64>) -> tensor<?x?x16xf32> {
""" + tiny_lm.embedding(V, D) + """    %w1 = wq.weight "model.layers.0.mlp.up_proj.weight" : tensor<12x8xf32>
    %u = wq.linear %h, %w1 {name = "model.layers.0.mlp.up_proj"} : tensor<?x?x8xf32>, tensor<12x8xf32> -> tensor<?x?x12xf32>
    %t = math.tanh %u : tensor<?x?x12xf32>
    %w = wq.weight "lm_head.weight" : tensor<16x12xf32>
    %logits = wq.linear %t, %w {name = "lm_head"} : tensor<?x?x12xf32>, tensor<16x12xf32> -> tensor<?x?x16xf32>
    return %logits : tensor<?x?x16xf32>
  }
}
"""

rng = np.random.default_rng(11)
model = os.path.join(tmp, "model")
if mode == "prepare":
    os.makedirs(model, exist_ok=True)
    for f in ("stats.safetensors",):
        if os.path.exists(os.path.join(model, f)):
            os.remove(os.path.join(model, f))
    open(os.path.join(model, "model.mlir"), "w").write(MODEL)
    weights = {"model.embed_tokens.weight": rng.standard_normal((V, D)).astype(np.float32),
               "model.layers.0.mlp.up_proj.weight": rng.standard_normal((F, D)).astype(np.float32),
               "lm_head.weight": rng.standard_normal((V, F)).astype(np.float32)}
    safetensors_io.save(os.path.join(model, "model.safetensors"), weights)
    np.save(os.path.join(tmp, "ids.npy"), rng.integers(0, V, size=100))
    open(os.path.join(tmp, "short.txt"), "w").write("1 2 3 4 5")
    open(os.path.join(tmp, "oov.txt"), "w").write(" ".join(["3"] * 20 + ["99"]))
else:
    import json, struct
    data = open(os.path.join(model, "stats.safetensors"), "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    meta = json.loads(data[8:8 + n])["__metadata__"]
    stats = safetensors_io.load(os.path.join(model, "stats.safetensors"))
    w = safetensors_io.load(os.path.join(model, "model.safetensors"))
    ids = np.load(os.path.join(tmp, "ids.npy"))
    starts = [int(s) for s in meta["sample_starts"].split(",")]
    assert meta["seed"] == "3" and meta["samples"] == "6" and len(starts) == 6, meta
    # Layer 0's input is the embedding rows: fully independent of the runtime.
    x0 = np.concatenate([w["model.embed_tokens.weight"][ids[s:s + 8]] for s in starts]).astype(np.float64)
    H0 = 2.0 / len(x0) * x0.T @ x0
    key = "model.layers.0.mlp.up_proj"
    err = np.abs(stats[key + ".hessian"] - H0).max() / np.abs(H0).max()
    assert err < 1e-9, f"H rel. error {err}"
    am = np.abs(x0).mean(0)
    assert np.allclose(stats[key + ".absmean"], am, rtol=1e-6), "absmean"
    assert sorted(map(tuple, stats[key + ".inputs"].astype(np.float64))) == sorted(map(tuple, x0)), "sampled rows"
    # lm_head's input comes out of the model; H must match its recorded rows.
    x1 = stats["lm_head.inputs"].astype(np.float64)
    assert x1.shape == (48, F), x1.shape
    H1 = 2.0 / len(x1) * x1.T @ x1
    err = np.abs(stats["lm_head.hessian"] - H1).max() / np.abs(H1).max()
    assert err < 1e-9, f"lm_head H rel. error {err}"
    ref1 = np.tanh(x0 @ w["model.layers.0.mlp.up_proj.weight"].T.astype(np.float64))
    assert np.abs(np.array(sorted(map(tuple, x1))) - np.array(sorted(map(tuple, ref1)))).max() < 1e-5
    assert stats[key + ".hessian"].dtype == np.float64
