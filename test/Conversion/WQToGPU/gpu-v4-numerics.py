# The gpu_v4 layout end to end on the CPU: codes packed as gptq in numpy
# (python/quant_mlir/packing.py), repacked by `wq-pack` (constants are
# repacked in the IR), lowered by convert-wq-to-linalg's gpu_v4 unpacking and
# run with mlir-runner; compared with the float64 reference of the gptq codes.
# RUN: %python %s --quant-opt quant-opt --runner mlir-runner --src %src_root | FileCheck %s
# CHECK: all {{[0-9]+}} cases match
import argparse
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

p = argparse.ArgumentParser()
p.add_argument("--quant-opt", required=True)
p.add_argument("--runner", required=True)
p.add_argument("--src", required=True)
args = p.parse_args()
sys.path.insert(0, os.path.join(args.src, "python"))
from quant_mlir import packing  # noqa: E402

LIBDIR = "/usr/lib/llvm-22/lib"
PIPELINE = ("--wq-pack=layout=gpu_v4 --convert-wq-to-linalg --one-shot-bufferize=bufferize-function-boundaries "
            "--convert-linalg-to-loops --convert-scf-to-cf --expand-strided-metadata "
            "--lower-affine --finalize-memref-to-llvm --convert-math-to-llvm "
            "--convert-arith-to-llvm --convert-index-to-llvm --convert-cf-to-llvm "
            "--convert-func-to-llvm --reconcile-unrealized-casts")


def dense(a, ty):
    a = np.asarray(a)
    body = np.array2string(a, separator=", ", threshold=1 << 30, max_line_width=1 << 30,
                           formatter={"float_kind": lambda v: repr(float(v)),
                                      "int": lambda v: str(int(v))})
    return f"arith.constant dense<{body}> : tensor<{'x'.join(map(str, a.shape))}x{ty}>"


def ttype(shape, ty):
    return f"tensor<{'x'.join(map(str, shape))}x{ty}>"


rng = np.random.default_rng(0)
cases = []
# (packing, bits, group, symmetric, act_order, K, N, M): M=0 means dequantize only.
# gpu_v4 needs K * bits to be a multiple of 128.
for bits in (2, 3, 4, 8):
    k = 128 if bits == 3 else 64
    cases.append(("gptq", bits, 32, True, False, k, 32, 0))
    cases.append(("gptq", bits, -1, False, False, 2 * k, 32, 0))
    cases.append(("gptq", bits, 32, False, True, k, 32, 0))
cases.append(("gptq", 4, 32, False, True, 64, 32, 3))
cases.append(("gptq", 3, -1, True, False, 128, 32, 2))
cases.append(("gptq", 4, 64, False, False, 128, 16, 1))
cases.append(("gptq", 8, 32, True, False, 64, 8, 4))

funcs, calls, expected = [], [], []
for i, (pk, bits, gs, sym, act, k, n, m) in enumerate(cases):
    groups = 1 if gs == -1 else k // gs
    q = rng.integers(0, 1 << bits, size=(k, n))
    scales = rng.uniform(0.01, 0.1, size=(groups, n)).astype(np.float32)
    zq = None if sym else rng.integers(0, 1 << bits, size=(groups, n))
    gidx = rng.permutation(np.arange(k) // (gs if gs != -1 else k)).astype(np.int32) if act else None
    if pk == "gptq":
        codes = packing.pack_stream(q, bits, axis=0)
        zeros = None if zq is None else packing.pack_stream(zq, bits, axis=1)
    else:
        codes = packing.pack_awq(q)
        zeros = None if zq is None else packing.pack_awq(zq)
    ref = packing.dequantize(codes, scales, zeros, gidx, bits, gs, pk, k)  # [N, K]
    # The independent check of the reference itself: it must reproduce q.
    z_full = np.full((groups, n), 1 << (bits - 1)) if zq is None else zq
    g = gidx if act else (np.zeros(k, int) if gs == -1 else np.arange(k) // gs)
    assert np.array_equal(ref.T, (q - z_full[g]) * scales[g].astype(np.float64))

    scheme = (f"#wq.scheme<bits = {bits}, group_size = {gs}, symmetric = {str(sym).lower()}, "
              f"act_order = {str(act).lower()}>")
    lines = [f"  %c = {dense(codes, 'i32')}", f"  %s = {dense(scales, 'f32')}"]
    operands, types = ["%c", "%s"], [ttype(codes.shape, "i32"), ttype(scales.shape, "f32")]
    opt = ""
    if zeros is not None:
        lines.append(f"  %z = {dense(zeros, 'i32')}")
        opt += " zeros %z"
        types.append(ttype(zeros.shape, "i32"))
    if gidx is not None:
        lines.append(f"  %g = {dense(gidx, 'i32')}")
        opt += " g_idx %g"
        types.append(ttype(gidx.shape, "i32"))
    attrs = f"{{packing = #wq.packing<{pk}>, scheme = {scheme}}}"
    if m == 0:
        out_shape = (n, k)
        lines.append(f"  %r = wq.dequantize %c, %s{opt} {attrs} : ({', '.join(types)}) -> {ttype(out_shape, 'f32')}")
        expected.append(ref)
    else:
        x = rng.standard_normal((m, k)).astype(np.float32)
        out_shape = (m, n)
        lines.insert(0, f"  %x = {dense(x, 'f32')}")
        lines.append(f"  %r = wq.quantized_linear %x, %c, %s{opt} {attrs} : "
                     f"({', '.join([ttype(x.shape, 'f32')] + types)}) -> {ttype(out_shape, 'f32')}")
        expected.append(x.astype(np.float64) @ ref.T)
    rt = ttype(out_shape, "f32")
    funcs.append(f"func.func @case{i}() -> {rt} {{\n" + "\n".join(lines) + f"\n  return %r : {rt}\n}}")
    calls.append(f"  %r{i} = call @case{i}() : () -> {rt}\n"
                 f"  %b{i} = bufferization.to_buffer %r{i} : {rt} to memref<{'x'.join(map(str, out_shape))}xf32>\n"
                 f"  %u{i} = memref.cast %b{i} : memref<{'x'.join(map(str, out_shape))}xf32> to memref<*xf32>\n"
                 f"  call @printMemrefF32(%u{i}) : (memref<*xf32>) -> ()")

module = ("module {\nfunc.func private @printMemrefF32(memref<*xf32>)\n" + "\n".join(funcs) +
          "\nfunc.func @main() {\n" + "\n".join(calls) + "\n  return\n}\n}\n")
with tempfile.TemporaryDirectory() as tmp:
    src = os.path.join(tmp, "cases.mlir")
    open(src, "w").write(module)
    packed = subprocess.run([args.quant_opt, src, "--wq-pack=layout=gpu_v4"], check=True,
                            capture_output=True, text=True).stdout
    assert packed.count("#wq.packing<gpu_v4>") == len(cases), "wq-pack left gptq layers"
    assert "#wq.packing<gptq>" not in packed
    llvm = subprocess.run([args.quant_opt, src] + PIPELINE.split(), check=True,
                          capture_output=True, text=True).stdout
    out = subprocess.run([args.runner, "-e", "main", "-entry-point-result=void",
                          f"-shared-libs={LIBDIR}/libmlir_runner_utils.so",
                          f"-shared-libs={LIBDIR}/libmlir_c_runner_utils.so"],
                         input=llvm, check=True, capture_output=True, text=True).stdout

blocks = out.split("Unranked Memref")[1:]
assert len(blocks) == len(cases), f"expected {len(cases)} printed results, got {len(blocks)}"
for i, (case, block, ref) in enumerate(zip(cases, blocks, expected)):
    data = block.split("data =", 1)[1]
    got = np.array([float(v) for v in re.findall(r"-?\d+\.?\d*(?:e[-+]?\d+)?|nan|inf", data)])
    got = got.reshape(ref.shape)
    # printMemrefF32 prints 6 significant digits; a wrong code is off by at
    # least one scale (>= 0.01), far above this tolerance.
    if case[7] == 0:
        err = (np.abs(got - ref) / (np.abs(ref) + 1e-6)).max()
        ok = err < 1e-5
    else:
        err = np.abs(got - ref).max() / np.abs(ref).max()
        ok = err < 1e-5
    if not ok:
        print(f"case {i} {case}: max error {err}")
        sys.exit(1)
print(f"all {len(cases)} cases match")
