#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora from the test fixtures.

    make_seeds.py OUTDIR

OUTDIR/<target>/ gets small valid (and a few near-valid) inputs: safetensors
archives from safetensors_io, ONNX models from the lit tests' make_models.py,
token files in each format (with the tokens-fuzzer's one-byte format prefix),
and the wq dialect's lit test inputs split at `// -----`.
"""
import glob
import io
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
from quant_mlir import safetensors_io  # noqa: E402


def put(out, target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def safetensors_seeds(out):
    rng = np.random.default_rng(0)
    archives = {
        "f32": ({"w": rng.standard_normal((4, 3)).astype(np.float32)}, None),
        "mixed": ({"a": np.arange(3, dtype=np.float16), "b": np.ones((2, 2), np.float32),
                   "c": np.array([1, -2], np.int64), "e": np.zeros((0, 4), np.int8)},
                  {"format": "pt"}),
        "scalar": ({"s": np.array(1.5, np.float64)}, None),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, (tensors, meta) in archives.items():
            path = os.path.join(tmp, name)
            safetensors_io.save(path, tensors, meta)
            put(out, "safetensors-fuzzer", name + ".safetensors", open(path, "rb").read())


def onnx_seeds(out):
    make = os.path.join(ROOT, "test", "Target", "ONNX", "Inputs", "make_models.py")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("linear", "ops", "broadcast", "shape-mismatch", "old-opset",
                     "unsupported-op", "past-eof"):
            path = os.path.join(tmp, kind, "m.onnx")
            if subprocess.run([sys.executable, make, kind, path],
                              capture_output=True).returncode == 0 and os.path.exists(path):
                put(out, "onnx-fuzzer", kind + ".onnx", open(path, "rb").read())


def token_seeds(out):
    # First byte: 0 -> .npy, 1 -> .jsonl, 2 -> .txt (tokens-fuzzer.cpp).
    for dtype in ("<i8", "<i4", "|u1"):
        buf = io.BytesIO()
        np.save(buf, np.array([5, 4, 2, 1, 3, 0, 2], dtype=dtype))
        put(out, "tokens-fuzzer", "ids%s.npy" % dtype.strip("<|"), b"\x00" + buf.getvalue())
    buf = io.BytesIO()
    np.save(buf, np.arange(12, dtype="<i8").reshape(3, 4))
    put(out, "tokens-fuzzer", "2d.npy", b"\x00" + buf.getvalue())
    lines = [json.dumps([6, 3, 2, 1]), json.dumps({"input_ids": [1, 2, 3]}),
             json.dumps({"text": "hello"})]
    put(out, "tokens-fuzzer", "ids.jsonl", b"\x01" + "\n".join(lines[:2]).encode() + b"\n")
    put(out, "tokens-fuzzer", "text.jsonl", b"\x01" + "\n".join(lines).encode())
    put(out, "tokens-fuzzer", "ids.txt", b"\x02" + b"8 3 2\n1 0 7 -1\n")


def mlir_seeds(out):
    files = sorted(glob.glob(os.path.join(ROOT, "test", "Dialect", "WQ", "*.mlir")))
    files += [os.path.join(ROOT, "examples", "llama_mlp.mlir")]
    for path in files:
        text = open(path).read()
        for i, chunk in enumerate(text.split("// -----")):
            # Drop RUN/CHECK lines: they are comments, only noise to mutate.
            body = "\n".join(l for l in chunk.splitlines()
                             if not l.lstrip().startswith("// "))
            if body.strip():
                put(out, "wq-mlir-fuzzer", "%s.%d.mlir" % (os.path.basename(path), i),
                    body.encode())


def main():
    out = sys.argv[1]
    safetensors_seeds(out)
    onnx_seeds(out)
    token_seeds(out)
    mlir_seeds(out)


if __name__ == "__main__":
    main()
