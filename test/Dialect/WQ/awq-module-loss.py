# AWQ's module-output loss (quant-compile --awq-loss module) on a one-block
# Llama against float64 numpy written from transformers' Llama attention and
# MLP and AutoAWQ's _compute_best_scale (python/quant_mlir/awq_ref.py): for
# [q, k, v] the loss is the attention output's (o_proj float), for [gate, up]
# the MLP output's (down_proj float), on every calibration token (8 x 64
# tokens, all of them kept as sampled rows). Every candidate's loss within
# 1e-5 relative, the same alpha; o_proj and down_proj keep the Hessian loss
# (their inspected module is the linear itself).
# RUN: rm -rf %t && mkdir -p %t
# RUN: %python %src_root/python/quant_mlir/export_fixtures.py --family llama --hidden 64 --layers 1 --heads 4 --intermediate 128 --vocab 128 -o %t/onnx > /dev/null
# RUN: %python -c "import numpy as np; np.save('%t/ids.npy', np.random.default_rng(3).integers(0, 128, size=4000))"
# RUN: quant-compile %t/onnx/model.onnx --method none --quiet -o %t/fp > /dev/null
# RUN: quant-compile %t/onnx/model.onnx --method awq --awq-loss module --awq-mode scale --bits 3 --group-size 32 --calib-data %t/ids.npy --calib-samples 8 --seq-len 64 --quiet -o %t/mod > /dev/null
# RUN: FileCheck %s --check-prefix=REPORT < %t/mod/awq-report.csv
# REPORT: v_proj,norm,{{.*}},module
# REPORT: o_proj,linear,{{.*}},linear
# REPORT: up_proj,norm,{{.*}},module
# REPORT: down_proj,linear,{{.*}},linear
# RUN: %python %s %t %src_root | FileCheck %s
# CHECK: attention losses ok
# CHECK: mlp losses ok
# A pass asked for module losses the statistics do not hold, or hold for
# other options, says so.
# RUN: not quant-opt %t/mod/model.mlir --wq-awq="bits=4 group-size=32 loss=module mode=scale output=x.safetensors base-dir=%t/mod" -o /dev/null 2>&1 | FileCheck %s --check-prefix=OTHER
# OTHER: module losses were measured for 'awq-module-loss bits=3
# RUN: quant-run %t/fp --calibrate --calib-data %t/ids.npy --calib-samples 8 --seq-len 64 --quiet
# RUN: not quant-opt %t/fp/model.mlir --wq-awq="loss=module output=x.safetensors base-dir=%t/fp" -o /dev/null 2>&1 | FileCheck %s --check-prefix=NONE
# NONE: the statistics hold no module losses
# The statistics serve quant-opt's pass run with the same options: the
# driver spells out the default skip list, quant-opt leaves it out.
# RUN: rm -rf %t/fp2 && cp -r %t/fp %t/fp2 && rm %t/fp2/stats.safetensors && cp %t/mod/stats*.safetensors* %t/fp2/
# RUN: quant-opt %t/fp2/model.mlir --wq-awq="bits=3 group-size=32 loss=module mode=scale output=s.safetensors base-dir=%t/fp2" -o /dev/null
import csv
import json
import os
import sys

import numpy as np

tmp, src = sys.argv[1:3]
sys.path.insert(0, os.path.join(src, "python"))
from quant_mlir import awq_ref, safetensors_io  # noqa: E402

BITS, GROUP, ZP, SAMPLES, SEQ = 3, 32, True, 8, 64
cfg = json.load(open(os.path.join(tmp, "onnx", "config.json")))
w = {k: v.astype(np.float64) for k, v in
     safetensors_io.load(os.path.join(tmp, "fp", "model.safetensors")).items()}
stats = safetensors_io.load_archive(os.path.join(tmp, "mod", "stats.safetensors"))
with open(os.path.join(tmp, "mod", "awq-report.csv")) as f:
    report = {r["layers"].split(";")[0]: r for r in csv.DictReader(f)}
hidden, heads = cfg["hidden_size"], cfg["num_heads"]
d = hidden // heads
theta = cfg.get("rope_theta", 10000.0)
p = "model.layers.0."
a, mlp = p + "self_attn.", p + "mlp."

inv = 1.0 / theta ** (np.arange(0, d, 2) / d)
ang = np.arange(SEQ)[:, None] * inv[None, :]
cos, sin = np.cos(np.concatenate([ang, ang], -1)), np.sin(np.concatenate([ang, ang], -1))
mask = np.triu(np.full((SEQ, SEQ), -np.inf), 1)


def rope(t):  # [h, s, d]; transformers' rotate_half
    return t * cos + np.concatenate([-t[..., d // 2:], t[..., :d // 2]], -1) * sin


def attention(X, ws):  # X: [samples * seq, hidden] rows of input_layernorm's output
    wq, wk, wv = ws
    out = []
    for x in X.reshape(SAMPLES, SEQ, hidden):
        q, k, v = (rope((x @ m.T).reshape(SEQ, heads, d).transpose(1, 0, 2)) if r else
                   (x @ m.T).reshape(SEQ, heads, d).transpose(1, 0, 2)
                   for m, r in ((wq, True), (wk, True), (wv, False)))
        s = q @ k.transpose(0, 2, 1) / np.sqrt(d) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        out.append((s @ v).transpose(1, 0, 2).reshape(SEQ, hidden) @ w[a + "o_proj.weight"].T)
    return np.concatenate(out)


def mlp_out(X, ws):
    g, u = X @ ws[0].T, X @ ws[1].T
    return (g / (1 + np.exp(-g)) * u) @ w[mlp + "down_proj.weight"].T


for first, names, module, what in (
        (a + "q_proj", [a + "q_proj", a + "k_proj", a + "v_proj"], attention, "attention"),
        (mlp + "gate_proj", [mlp + "gate_proj", mlp + "up_proj"], mlp_out, "mlp")):
    X = stats[first + ".inputs"].astype(np.float64)
    assert X.shape[0] == SAMPLES * SEQ, X.shape  # every token, in order
    alpha, _, _, _, hist = awq_ref.search_scale_module(
        stats[first + ".absmean"], module, X, [w[n + ".weight"] for n in names], BITS, GROUP, ZP)
    got = stats[first + ".awq_loss"]
    rel = np.abs(got - np.array(hist)) / np.array(hist)
    print(what, "max rel", rel.max(), "alpha", alpha, float(report[first]["alpha"]))
    assert rel.max() < 1e-5, (got, hist)
    assert abs(alpha - float(report[first]["alpha"])) < 1e-9
    assert len(set(np.round(hist, 12))) > 1  # the candidates differ
    print(what, "losses ok")
