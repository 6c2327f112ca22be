# wq-awq on a one-block Llama (no GQA, so v -> o is a group too) against the
# independent float64 numpy AWQ (python/quant_mlir/awq_ref.py): the same alpha
# for every group, scales equal to 1e-6 relative (read back from the folded
# archive), the same clip thresholds (the absmax of each clipped row group),
# and the same packed codes, scales and zeros. Scale-only mode leaves the
# model's function unchanged (logits within 1e-4 relative).
# RUN: rm -rf %t && mkdir -p %t
# RUN: %python %src_root/python/quant_mlir/export_fixtures.py --family llama --hidden 64 --layers 1 --heads 4 --intermediate 128 --vocab 128 -o %t/onnx > /dev/null
# RUN: %python %s %t %src_root prepare
# RUN: quant-compile %t/onnx/model.onnx --method none --quiet -o %t/fp > /dev/null
# RUN: quant-compile %t/onnx/model.onnx --method awq --awq-loss linear --awq-mode scale --bits 4 --group-size 32 --calib-data %t/ids.npy --calib-samples 8 --seq-len 64 --quiet -o %t/scale > /dev/null
# RUN: quant-compile %t/onnx/model.onnx --method awq --awq-loss linear --awq-mode clip --bits 4 --group-size 32 --calib-data %t/ids.npy --calib-samples 8 --seq-len 64 --quiet -o %t/clip > /dev/null
# RUN: quant-compile %t/onnx/model.onnx --method awq --awq-loss linear --bits 4 --group-size 32 --calib-data %t/ids.npy --calib-samples 8 --seq-len 64 --quiet -o %t/gemm > /dev/null
# RUN: FileCheck %s < %t/gemm/model.mlir
# CHECK: wq.quantized_linear {{.*}} zeros {{.*}}name = "model.layers.0.self_attn.q_proj", packing = #wq.packing<awq>, scheme = #wq.scheme<bits = 4, group_size = 32, symmetric = false>}
# CHECK: wq.linear {{.*}}name = "lm_head"
# RUN: quant-run %t/fp --dump-logits %t/fp.npy --eval-data %t/eval.npy --quiet
# RUN: quant-run %t/scale --dump-logits %t/scale.npy --eval-data %t/eval.npy --quiet
# RUN: %python %s %t %src_root check | FileCheck %s --check-prefix=REF
# REF: groups 4 alpha-equal 4
# REF: scales ok
# REF: clip ok
# REF: codes ok
# REF: logits ok
import csv
import os
import sys

import numpy as np

tmp, src, mode = sys.argv[1:4]
sys.path.insert(0, os.path.join(src, "python"))
from quant_mlir import awq_ref, packing, safetensors_io  # noqa: E402

BITS, GROUP, ZP = 4, 32, True
if mode == "prepare":
    rng = np.random.default_rng(3)
    np.save(os.path.join(tmp, "ids.npy"), rng.integers(0, 128, size=4000))
    np.save(os.path.join(tmp, "eval.npy"), rng.integers(0, 128, size=96))
    sys.exit(0)

fp = safetensors_io.load(os.path.join(tmp, "fp", "model.safetensors"))
stats = safetensors_io.load_archive(os.path.join(tmp, "scale", "stats.safetensors"))
scaled = safetensors_io.load(os.path.join(tmp, "scale", "model.safetensors"))
clipped = safetensors_io.load(os.path.join(tmp, "clip", "model.safetensors"))
gemm = safetensors_io.load(os.path.join(tmp, "gemm", "model.safetensors"))
with open(os.path.join(tmp, "scale", "awq-report.csv")) as f:
    report = list(csv.DictReader(f))

p = "model.layers.0."
a, mlp = p + "self_attn.", p + "mlp."
groups = [  # (consumers, prev kind, prev tensors), AutoAWQ llama.py order
    ([a + "q_proj", a + "k_proj", a + "v_proj"], "norm", [p + "input_layernorm.weight"]),
    ([a + "o_proj"], "linear", [a + "v_proj.weight"]),
    ([mlp + "gate_proj", mlp + "up_proj"], "norm", [p + "post_attention_layernorm.weight"]),
    ([mlp + "down_proj"], "linear", [mlp + "up_proj.weight"]),
]
w = {k: v.astype(np.float32).copy() for k, v in fp.items()}
in_scale = {}
equal = 0
worst_s = 0.0
for (layers, kind, prev), row in zip(groups, report):
    assert row["layers"] == ";".join(layers), (row, layers)
    assert row["prev"] == kind, row
    first = layers[0]
    alpha, duo, s, loss, _ = awq_ref.search_scale(
        stats[first + ".absmean"], stats[first + ".hessian"],
        [w[l + ".weight"] for l in layers], BITS, GROUP, ZP)
    equal += abs(alpha - float(row["alpha"])) < 1e-12
    s = s.astype(np.float32).astype(np.float64)
    # The pass's scales, from its folded first consumer (never rescaled later).
    before, after = w[first + ".weight"].astype(np.float64), scaled[first + ".weight"].astype(np.float64)
    idx = np.abs(before).argmax(axis=0)
    cols = np.arange(before.shape[1])
    s_pass = after[idx, cols] / before[idx, cols]
    worst_s = max(worst_s, np.max(np.abs(s_pass / s - 1)))
    for l in layers:
        w[l + ".weight"] = (w[l + ".weight"].astype(np.float64) * s).astype(np.float32)
        in_scale[l] = s
    for t in prev:
        v = w[t].astype(np.float64)
        w[t] = (v / (s if v.ndim == 1 else s[:, None])).astype(np.float32)
print("groups", len(report), "alpha-equal", equal)
# Every folded tensor equals the reference's.
worst_t = max(np.max(np.abs(scaled[k].astype(np.float64) - w[k]) / (np.abs(w[k]).max() + 1e-30))
              for k in w)
print("max rel diff of scales %.3g, of folded tensors %.3g" % (worst_s, worst_t))
if worst_s <= 1e-6 and worst_t <= 1e-6:
    print("scales ok")

# Clip thresholds: the absmax of each clipped row group is float32(threshold).
worst_c, thresholds = 0.0, {}
for name in [l for g in groups for l in g[0]]:
    W = w[name + ".weight"]
    if "q_" in name or "k_" in name:  # AutoAWQ avoid_clipping
        thresholds[name] = None
        continue
    X = stats[name + ".inputs"].astype(np.float64) / in_scale[name]
    t = awq_ref.search_clip(W, X, BITS, GROUP, ZP)
    thresholds[name] = t
    got = np.abs(clipped[name + ".weight"].astype(np.float64)).reshape(W.shape[0], -1, GROUP).max(axis=2)
    worst_c = max(worst_c, np.max(np.abs(got / t.astype(np.float32) - 1)))
print("max rel diff of clip thresholds %.3g" % worst_c)
if worst_c <= 1e-6:
    print("clip ok")

mismatch, total, worst_scale = 0, 0, 0.0
for name, t in thresholds.items():
    W = w[name + ".weight"] if t is None else awq_ref.apply_clip(w[name + ".weight"], t, GROUP)
    _, codes, sc, zeros = awq_ref.quantize(W, BITS, GROUP, ZP)
    got = packing.unpack_awq(gemm[name + ".qweight"]).T  # [N, K]
    gz = packing.unpack_awq(gemm[name + ".qzeros"]).T    # [N, G]
    mismatch += int(np.sum(got != codes)) + int(np.sum(gz != zeros))
    total += codes.size + zeros.size
    worst_scale = max(worst_scale, np.max(np.abs(gemm[name + ".scales"].T / sc - 1)))
print("codes+zeros mismatched %d of %d, max rel diff of scales %.3g" % (mismatch, total, worst_scale))
if mismatch == 0 and worst_scale <= 1e-6:
    print("codes ok")

l0 = np.load(os.path.join(tmp, "fp.npy")).astype(np.float64)
l1 = np.load(os.path.join(tmp, "scale.npy")).astype(np.float64)
rel = np.max(np.abs(l1 - l0)) / np.max(np.abs(l0))
print("scale-only logits max rel diff %.3g" % rel)
if rel <= 1e-4:
    print("logits ok")
