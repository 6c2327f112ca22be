# wq-pack on archive weights: repacked codes go to a new archive (written
# atomically by the safetensors Writer) next to every old tensor, the IR
# references `<name>.gpu_v4`, and the bytes equal an independent numpy
# implementation of the gpu_v4 layout (docs/codegen.md).
# RUN: %python %s --quant-opt quant-opt --src %src_root | FileCheck %s
# CHECK: archive repack ok
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

p = argparse.ArgumentParser()
p.add_argument("--quant-opt", required=True)
p.add_argument("--src", required=True)
args = p.parse_args()
sys.path.insert(0, os.path.join(args.src, "python"))
from quant_mlir import packing  # noqa: E402

DT = {"I32": np.int32, "F16": np.float16}


def write_st(path, tensors):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        a = tensors[name]
        dt = {np.dtype(np.int32): "I32", np.dtype(np.float16): "F16"}[a.dtype]
        b = a.tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def read_st(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + b:8 + n + e], dtype=DT[info["dtype"]]).reshape(info["shape"])
    return out


def gpu_v4(q, bits):
    """Independent reference: q [K, N] codes -> gpu_v4 words [K*bits/128, 4N]."""
    k, n = q.shape
    stream = packing.pack_stream(q, bits, axis=0).view(np.uint32)  # [K*bits/32, N]
    if 32 % bits == 0:
        per = 32 // bits
        order = [c for c in range(0, per, 2)] + [c for c in range(1, per, 2)]
        mask = np.uint32((1 << bits) - 1)
        inter = np.zeros_like(stream)
        for field, c in enumerate(order):
            inter |= ((stream >> np.uint32(c * bits)) & mask) << np.uint32(field * bits)
        stream = inter
    words = stream.shape[0]
    return stream.reshape(words // 4, 4, n).transpose(0, 2, 1).reshape(words // 4, 4 * n).view(np.int32)


rng = np.random.default_rng(1)
k, n, bits = 256, 64, 4
q = rng.integers(0, 16, size=(k, n))
codes = packing.pack_stream(q, bits, axis=0)
scales = rng.uniform(0.01, 0.1, size=(2, n)).astype(np.float16)
q3 = rng.integers(0, 8, size=(k, n))
codes3 = packing.pack_stream(q3, 3, axis=0)
with tempfile.TemporaryDirectory() as tmp:
    write_st(os.path.join(tmp, "m.safetensors"),
             {"l.qweight": codes, "l.scales": scales, "l3.qweight": codes3, "other": scales})
    mlir = f"""module attributes {{wq.archive = "m.safetensors"}} {{
func.func @f(%x: tensor<1x{k}xf16>) -> (tensor<1x{n}xf16>, tensor<1x{n}xf16>, tensor<1x{n}xf16>) {{
  %c = wq.weight "l.qweight" : tensor<{k // 8}x{n}xi32>
  %s = wq.weight "l.scales" : tensor<2x{n}xf16>
  %c3 = wq.weight "l3.qweight" : tensor<{k * 3 // 32}x{n}xi32>
  %y = wq.quantized_linear %x, %c, %s {{packing = #wq.packing<gptq>, scheme = #wq.scheme<bits = 4, group_size = 128>}}
      : (tensor<1x{k}xf16>, tensor<{k // 8}x{n}xi32>, tensor<2x{n}xf16>) -> tensor<1x{n}xf16>
  %y2 = wq.quantized_linear %x, %c, %s {{packing = #wq.packing<gptq>, scheme = #wq.scheme<bits = 4, group_size = 128>}}
      : (tensor<1x{k}xf16>, tensor<{k // 8}x{n}xi32>, tensor<2x{n}xf16>) -> tensor<1x{n}xf16>
  %y3 = wq.quantized_linear %x, %c3, %s {{packing = #wq.packing<gptq>, scheme = #wq.scheme<bits = 3, group_size = 128>}}
      : (tensor<1x{k}xf16>, tensor<{k * 3 // 32}x{n}xi32>, tensor<2x{n}xf16>) -> tensor<1x{n}xf16>
  return %y, %y2, %y3 : tensor<1x{n}xf16>, tensor<1x{n}xf16>, tensor<1x{n}xf16>
}}
}}
"""
    src = os.path.join(tmp, "m.mlir")
    open(src, "w").write(mlir)
    out = subprocess.run([args.quant_opt, src,
                          f"--wq-pack=layout=gpu_v4 output=packed.safetensors base-dir={tmp}", "--cse"],
                         check=True, capture_output=True, text=True).stdout
    assert 'wq.archive = "packed.safetensors"' in out, out
    assert out.count('wq.weight "l.qweight.gpu_v4" : tensor<8x256xi32>') == 1, out
    assert out.count('wq.weight "l3.qweight.gpu_v4" : tensor<6x256xi32>') == 1, out
    assert "#wq.packing<gptq>" not in out and out.count("#wq.packing<gpu_v4>") == 2, out  # y, y2 CSE to one
    got = read_st(os.path.join(tmp, "packed.safetensors"))
    assert sorted(got) == ["l.qweight", "l.qweight.gpu_v4", "l.scales", "l3.qweight",
                           "l3.qweight.gpu_v4", "other"], sorted(got)
    assert np.array_equal(got["l.qweight.gpu_v4"], gpu_v4(q, 4))
    assert np.array_equal(got["l3.qweight.gpu_v4"], gpu_v4(q3, 3))
    assert np.array_equal(got["l.scales"], scales) and np.array_equal(got["l.qweight"], codes)
    # The original archive is untouched.
    assert sorted(read_st(os.path.join(tmp, "m.safetensors"))) == ["l.qweight", "l.scales", "l3.qweight", "other"]
print("archive repack ok")
