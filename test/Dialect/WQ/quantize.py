# wq-rtn and wq-gptq on a tiny model calibrated by quant-run: the packed codes
# in the new archive equal the float64 numpy reference (python/gptq_ref.py)
# on the same weights and Hessians, lm_head stays float, the IR verifies and
# runs, and GPTQ's layer objective tr(dW H dW^T) is below RTN's.
# RUN: rm -rf %t && mkdir -p %t
# RUN: %python %s %t %src_root prepare
# RUN: quant-run %t/fp --calibrate --calib-data %t/ids.npy --calib-samples 8 --seq-len 16 --seed 1 --quiet
# RUN: cp -r %t/fp %t/gptq && cp -r %t/fp %t/rtn
# RUN: quant-opt %t/gptq/model.mlir --wq-gptq="bits=4 group-size=32 zero-point desc-act output=model.safetensors base-dir=%t/gptq report=report.csv" -o %t/gptq/q.mlir
# RUN: mv %t/gptq/q.mlir %t/gptq/model.mlir
# RUN: quant-opt %t/rtn/model.mlir --wq-rtn="bits=4 group-size=32 zero-point output=model.safetensors base-dir=%t/rtn report=report.csv" -o %t/rtn/q.mlir
# RUN: mv %t/rtn/q.mlir %t/rtn/model.mlir
# RUN: FileCheck %s < %t/gptq/model.mlir
# CHECK: wq.archive = "model.safetensors"
# CHECK: wq.quantized_linear {{.*}} zeros {{.*}} g_idx {{.*}}name = "model.layers.0.mlp.up_proj", packing = #wq.packing<gptq>, scheme = #wq.scheme<bits = 4, group_size = 32, symmetric = false, act_order = true>
# CHECK: wq.quantized_linear {{.*}}name = "model.layers.0.mlp.down_proj"
# CHECK: wq.linear {{.*}}name = "lm_head"
# RUN: %python %s %t %src_root check
# RUN: quant-run %t/fp --eval-data %t/ids.npy --seq-len 16 --json --quiet > %t/fp.json
# RUN: quant-run %t/gptq --eval-data %t/ids.npy --seq-len 16 --json --quiet > %t/gptq.json
# RUN: quant-run %t/rtn --eval-data %t/ids.npy --seq-len 16 --json --quiet > %t/rtn.json
# RUN: %python %s %t %src_root ppl
#
# Errors: GPTQ without statistics, no output archive, a K that cannot pack.
# RUN: not quant-opt %t/nostats.mlir --wq-gptq="group-size=32 output=x.safetensors base-dir=%t/fp" 2>&1 | FileCheck %s --check-prefix=NOSTATS
# NOSTATS: layer 'model.layers.0.mlp.up_proj' has no calibration statistics; run quant-run --calibrate first
# RUN: not quant-opt %t/fp/model.mlir --wq-rtn 2>&1 | FileCheck %s --check-prefix=NOOUT
# NOOUT: wq-rtn needs output=<archive> for the quantized weights
# RUN: not quant-opt %t/odd/model.mlir --wq-rtn="bits=3 group-size=-1 output=x.safetensors base-dir=%t/odd" 2>&1 | FileCheck %s --check-prefix=PACK
# PACK: layer 'model.layers.0.mlp.down_proj': 3-bit gptq packing needs K * bits (40 * 3) to be a multiple of 32
# RUN: not ls %t/odd/x.safetensors
# A custom quantizer (wq-rtn custom=NAME) that nobody registered.
# RUN: not quant-opt %t/fp/model.mlir --wq-rtn="custom=nope group-size=32 output=x.safetensors base-dir=%t/fp" 2>&1 | FileCheck %s --check-prefix=CUSTOM
# CUSTOM: layer 'model.layers.0.mlp.up_proj': no quantizer 'nope' is registered
# RUN: not ls %t/fp/x.safetensors
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "Inputs"))
import tiny_lm  # noqa: E402

tmp, src, mode = sys.argv[1:4]
sys.path.insert(0, os.path.join(src, "python"))
from quant_mlir import gptq_ref, packing, safetensors_io  # noqa: E402

V, D, F = 32, 64, 96
TEMPLATE = """module attributes {wq.archive = "model.safetensors"} {
  func.func @forward(%ids: tensor<?x?xi64>) -> tensor<?x?x32xf32> {
""" + tiny_lm.embedding(V, D) + """    %w1 = wq.weight "model.layers.0.mlp.up_proj.weight" : tensor<FxDxf32>
    %u = wq.linear %h, %w1 {name = "model.layers.0.mlp.up_proj"} : tensor<?x?x64xf32>, tensor<FxDxf32> -> tensor<?x?xFxf32>
    %t = math.tanh %u : tensor<?x?xFxf32>
    %w2 = wq.weight "model.layers.0.mlp.down_proj.weight" : tensor<DxFxf32>
    %dn = wq.linear %t, %w2 {name = "model.layers.0.mlp.down_proj"} : tensor<?x?xFxf32>, tensor<DxFxf32> -> tensor<?x?x64xf32>
    %r = arith.addf %dn, %h : tensor<?x?x64xf32>
    %w = wq.weight "lm_head.weight" : tensor<32x64xf32>
    %logits = wq.linear %r, %w {name = "lm_head"} : tensor<?x?x64xf32>, tensor<32x64xf32> -> tensor<?x?x32xf32>
    return %logits : tensor<?x?x32xf32>
  }
}
"""
MODEL = TEMPLATE.replace("Fx", "96x").replace("xF", "x96").replace("Dx", "64x").replace("xD", "x64")
ODD = TEMPLATE.replace("Fx", "40x").replace("xF", "x40").replace("Dx", "64x").replace("xD", "x64")
LAYERS = {"model.layers.0.mlp.up_proj": (96, 64), "model.layers.0.mlp.down_proj": (64, 96)}

if mode == "prepare":
    rng = np.random.default_rng(5)
    fp = os.path.join(tmp, "fp")
    os.makedirs(fp)
    open(os.path.join(fp, "model.mlir"), "w").write(MODEL)
    open(os.path.join(tmp, "nostats.mlir"), "w").write(MODEL)
    emb = rng.standard_normal((V, D)) * np.linspace(0.2, 2.0, D)  # uneven channels
    weights = {"model.embed_tokens.weight": emb.astype(np.float32),
               "model.layers.0.mlp.up_proj.weight": (rng.standard_normal((F, D)) * 0.3).astype(np.float32),
               "model.layers.0.mlp.down_proj.weight": (rng.standard_normal((D, F)) * 0.3).astype(np.float32),
               "lm_head.weight": (rng.standard_normal((V, D)) * 0.1).astype(np.float32)}
    safetensors_io.save(os.path.join(fp, "model.safetensors"), weights)
    np.save(os.path.join(tmp, "ids.npy"), rng.integers(0, V, size=400))
    odd = os.path.join(tmp, "odd")
    os.makedirs(odd)
    open(os.path.join(odd, "model.mlir"), "w").write(ODD)
    weights["model.layers.0.mlp.up_proj.weight"] = weights["model.layers.0.mlp.up_proj.weight"][:40]
    weights["model.layers.0.mlp.down_proj.weight"] = weights["model.layers.0.mlp.down_proj.weight"][:, :40].copy()
    safetensors_io.save(os.path.join(odd, "model.safetensors"), weights)
elif mode == "check":
    w = safetensors_io.load(os.path.join(tmp, "fp", "model.safetensors"))
    st = safetensors_io.load(os.path.join(tmp, "fp", "stats.safetensors"))
    objective = {}
    for method in ("gptq", "rtn"):
        q = safetensors_io.load(os.path.join(tmp, method, "model.safetensors"))
        assert "lm_head.weight" in q and "model.embed_tokens.weight" in q
        for layer, (n, k) in LAYERS.items():
            assert layer + ".weight" not in q, "float weight kept"
            W, H = w[layer + ".weight"], st[layer + ".hessian"]
            if method == "gptq":
                ref = gptq_ref.gptq(W, H, 4, 32, False, act_order=True)
            else:
                ref = gptq_ref.rtn(W, 4, 32, False)
            codes = packing.unpack_stream(q[layer + ".qweight"], 4, k, axis=0)
            zeros = packing.unpack_stream(q[layer + ".qzeros"], 4, n, axis=1)
            differ = int((codes != ref["q"]).sum())
            assert differ <= max(1, codes.size // 1000), f"{method} {layer}: {differ} codes differ"
            assert np.allclose(q[layer + ".scales"], ref["scales"], rtol=1e-6), f"{method} {layer} scales"
            assert np.array_equal(zeros, ref["zeros"]), f"{method} {layer} zeros"
            if method == "gptq":
                assert np.array_equal(q[layer + ".g_idx"], ref["g_idx"]), "g_idx"
            g = q[layer + ".g_idx"] if method == "gptq" else None
            Wq = packing.dequantize(q[layer + ".qweight"], q[layer + ".scales"], q[layer + ".qzeros"], g, 4, 32, "gptq", k)
            dW = W.astype(np.float64) - Wq
            objective[method, layer] = np.trace(dW @ H @ dW.T) / np.trace(W @ H @ W.T.astype(np.float64))
    for layer in LAYERS:
        assert objective["gptq", layer] < objective["rtn", layer], objective
    report = open(os.path.join(tmp, "gptq", "report.csv")).read().splitlines()
    assert report[0].startswith("layer,n,k,bits") and len(report) == 3, report
    for line in report[1:]:
        name, *_, out_err = line.split(",")
        # GPTQ's own sums (its float64 grid) against the direct trace of the
        # stored f32 scales: 7 printed digits, 1e-5 relative.
        assert abs(float(out_err) - objective["gptq", name]) < 1e-5 * objective["gptq", name], (line, objective)
else:
    fp, g, r = (json.load(open(os.path.join(tmp, f + ".json")))["perplexity"] for f in ("fp", "gptq", "rtn"))
    assert np.isfinite(g) and np.isfinite(r), (fp, g, r)
    assert abs(g - fp) / fp < 0.2 and abs(r - fp) / fp < 0.2, (fp, g, r)
