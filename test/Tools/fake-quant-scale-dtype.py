# --fake-quant honours --scale-dtype: the fake-quant weights are the packed
# layer's dequantization in the scale dtype, bit for bit ((q - z) * s with s
# read back from the packed archive, the product rounded to f16 / bf16 as
# wq-expand-quantized-linear computes it), for RTN (the whole-module pass)
# and GPTQ --true-sequential (the streamed LayerQuantizer), with f16 and
# bf16 scales; and so the two models give the same logits up to the
# kernels' summation order (<= 1e-5; the exact f32 product instead moved
# them by 3.7e-4, docs/export.md).
# RUN: rm -rf %t && mkdir -p %t
# RUN: %python %s %t %src_root | FileCheck %s
# CHECK: rtn f16: 7 layers, fake-quant == packed dequantization bit for bit, logits max diff
# CHECK: rtn bf16: 7 layers, fake-quant == packed dequantization bit for bit
# CHECK: gptq-ts f16: 7 layers, fake-quant == packed dequantization bit for bit
import json
import os
import subprocess
import sys

import numpy as np

tmp, src = sys.argv[1:3]
sys.path.insert(0, os.path.join(src, "python"))
from quant_mlir import packing  # noqa: E402


def load(path):
    """safetensors -> numpy; BF16 as float32 (its bits << 16)."""
    data = open(path, "rb").read()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    dtypes = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "I64": np.int64,
              "BF16": np.uint16}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        a = np.frombuffer(data[8 + n + b:8 + n + e], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
        if info["dtype"] == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        out[name] = a
    return out


def run(*args):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("command failed: %s\n%s%s" % (" ".join(map(str, args)), p.stdout, p.stderr))
    return p


onnx_dir = os.path.join(tmp, "onnx")
run(sys.executable, os.path.join(src, "python/quant_mlir/export_fixtures.py"), "--family", "llama",
    "--hidden", "64", "--intermediate", "128", "--layers", "1", "--vocab", "64", "-o", onnx_dir)
onnx = os.path.join(onnx_dir, "model.onnx")
ids = os.path.join(tmp, "ids.npy")
np.save(ids, np.random.default_rng(0).integers(0, 64, 512))


def round_to(x, dtype):
    """float32 -> f16 / bf16 (round to nearest even) -> float32."""
    if dtype == "f16":
        return x.astype(np.float16).astype(np.float32)
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(np.float32)


def dequantize(t, name, bits, group, k, dtype):
    """s * (q - z) in the scales' dtype, as wq-expand-quantized-linear
    computes it: the exact float32 product rounded to f16 / bf16 (s the
    stored scales, f16/bf16 -> f32 exactly)."""
    scales = t[name + ".scales"].astype(np.float32)
    zeros = t.get(name + ".qzeros")
    q = packing.unpack_stream(t[name + ".qweight"], bits, k, axis=0)  # [K, N]
    z = (packing.unpack_stream(zeros, bits, scales.shape[1], axis=1) if zeros is not None
         else np.full(scales.shape, 1 << (bits - 1)))
    g = np.arange(k) // group
    return round_to(scales[g, :] * (q - z[g, :]).astype(np.float32), dtype).T


for label, method, sdtype in [("rtn f16", "rtn", "f16"), ("rtn bf16", "rtn", "bf16"),
                              ("gptq-ts f16", "gptq", "f16")]:
    common = ["--method", method, "--bits", "4", "--group-size", "32", "--zero-point",
              "--scale-dtype", sdtype, "--quiet"]
    if method == "gptq":
        common += ["--true-sequential", "--calib-data", ids, "--calib-samples", "4", "--seq-len", "32"]
    tag = label.replace(" ", "-")
    packed, fake = os.path.join(tmp, tag + "-packed"), os.path.join(tmp, tag + "-fake")
    run("quant-compile", onnx, *common, "-o", packed)
    run("quant-compile", onnx, *common, "--fake-quant", "-o", fake)
    tp = load(os.path.join(packed, "model.safetensors"))
    tf = load(os.path.join(fake, "model.safetensors"))
    layers = sorted(n[: -len(".qweight")] for n in tp if n.endswith(".qweight"))
    for name in layers:
        w = tf[name + ".weight"]
        ref = dequantize(tp, name, 4, 32, w.shape[1], sdtype)
        if w.dtype != np.float32 or not np.array_equal(w.view(np.uint32), ref.view(np.uint32)):
            bad = int((w != ref).sum())
            sys.exit("%s %s: %d fake-quant weights differ from the packed dequantization (max %g)"
                     % (label, name, bad, float(np.abs(w - ref).max())))
    note = ""
    if label == "rtn f16":
        lp, lf = os.path.join(tmp, "packed.npy"), os.path.join(tmp, "fake.npy")
        ids24 = os.path.join(tmp, "ids24.npy")
        np.save(ids24, np.load(ids)[:24])
        run("quant-run", packed, "--eval-data", ids24, "--dump-logits", lp, "--quiet")
        run("quant-run", fake, "--eval-data", ids24, "--dump-logits", lf, "--quiet")
        # The same weights; the packed model's contraction sums in another
        # order than the float GEMM.
        d = float(np.abs(np.load(lp) - np.load(lf)).max())
        assert d <= 1e-5, d
        note = ", logits max diff %.1e" % d
    print("%s: %d layers, fake-quant == packed dequantization bit for bit%s" % (label, len(layers), note))
