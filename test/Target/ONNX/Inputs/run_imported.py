#!/usr/bin/env python3
"""Runs an imported model (model.mlir + archive) on the CPU through
quant-opt + mlir-runner and compares its output with a reference.

The weights are inlined as dense constants (fine for tiny models), a @main
wrapper feeds the reference input and prints the single output. REF is a
fixture's reference.npz (input_ids row 0 -> logits row 0) or an .npz with
`input` and `output`.

    run_imported.py QUANT_OPT MLIR_RUNNER OUT_DIR REF.npz [--atol A]

The runner utility libraries are taken from MLIR_RUNNER's ../lib.
"""
import json
import os
import re
import shutil
import struct
import subprocess
import sys

import numpy as np


def read_archive(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    header.pop("__metadata__", None)
    return {k: data[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in header.items()}


def main():
    quant_opt, runner, out_dir, ref_path = sys.argv[1:5]
    runner = shutil.which(runner) or runner
    libdir = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(runner))), "lib")
    atol = float(sys.argv[sys.argv.index("--atol") + 1]) if "--atol" in sys.argv else 1e-4
    tensors = read_archive(os.path.join(out_dir, "model.safetensors"))
    text = open(os.path.join(out_dir, "model.mlir")).read()

    def inline(m):
        return f'{m.group(1)} = arith.constant dense<"0x{tensors[m.group(2)].hex().upper()}"> : {m.group(3)}'

    text = re.sub(r'(%\S+) = wq\.weight "([^"]+)" : (tensor<[^>]*>)', inline, text)
    ref = np.load(ref_path)
    if "input_ids" in ref:
        inp, want = ref["input_ids"][:1], ref["logits"][:1]
    else:
        inp, want = ref["input"], ref["output"]
    sig = re.search(r"func\.func @main_graph\(%arg0: (tensor<[^>]*>)[^)]*\) -> \((tensor<[^>]*>)", text)
    arg_type, res_type = sig.group(1), sig.group(2)
    elem = "i64" if inp.dtype == np.int64 else "f32"
    const_type = "tensor<" + "x".join(str(d) for d in inp.shape) + "x" + elem + ">"
    values = np.array2string(inp, separator=", ", threshold=1 << 30, floatmode="unique").replace("\n", "")
    wrapper = f"""
  func.func private @printMemrefF32(tensor<*xf32>)
  func.func @main() {{
    %in = arith.constant dense<{values}> : {const_type}
    %dyn = tensor.cast %in : {const_type} to {arg_type}
    %logits = call @main_graph(%dyn) : ({arg_type}) -> {res_type}
    %u = tensor.cast %logits : {res_type} to tensor<*xf32>
    call @printMemrefF32(%u) : (tensor<*xf32>) -> ()
    return
  }}
}}
"""
    text = text.rstrip()
    assert text.endswith("}")
    text = text[:-1] + wrapper
    src = os.path.join(out_dir, "run.mlir")
    with open(src, "w") as f:
        f.write(text)
    passes = [
        "--convert-wq-to-linalg",
        "--one-shot-bufferize=bufferize-function-boundaries=1 function-boundary-type-conversion=identity-layout-map",
        "--convert-linalg-to-loops", "--convert-scf-to-cf", "--expand-strided-metadata",
        "--lower-affine", "--convert-math-to-libm", "--finalize-memref-to-llvm",
        "--convert-math-to-llvm", "--convert-arith-to-llvm", "--convert-index-to-llvm",
        "--convert-cf-to-llvm", "--convert-func-to-llvm", "--reconcile-unrealized-casts",
    ]
    llvm = subprocess.run([quant_opt, src] + passes, check=True, capture_output=True, text=True).stdout
    libs = ",".join(os.path.join(libdir, l) for l in ("libmlir_runner_utils.so", "libmlir_c_runner_utils.so"))
    out = subprocess.run([runner, "-e", "main", "-entry-point-result=void", "-shared-libs=" + libs],
                         input=llvm, check=True, capture_output=True, text=True).stdout
    body = out[out.index("data =") + len("data ="):]
    got = np.array([float(x) for x in re.findall(r"-?(?:\d+\.?\d*(?:e[-+]?\d+)?|nan|inf)", body)],
                   dtype=np.float32)
    want = want.reshape(-1)
    if got.size != want.size:
        print(f"FAIL: got {got.size} values, want {want.size}")
        return 1
    err = float(np.abs(got - want).max())
    print(f"max abs err {err:.3g} (atol {atol})")
    print("PASS" if err <= atol else "FAIL")
    return 0 if err <= atol else 1


if __name__ == "__main__":
    sys.exit(main())
