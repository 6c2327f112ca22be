"""Shared harness of the packed-weight numerics tests: builds MLIR functions
of constant packed codes from numpy (python/quant_mlir/packing.py is the
float64 reference), lowers them to LLVM with quant-opt, runs them with
mlir-runner and compares every printed result with the reference.

Each case is (packing, bits, group, symmetric, act_order, K, N, M); M = 0
means wq.dequantize alone, else wq.quantized_linear on a random [M, K] input.
"""
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

LIBDIR = "/usr/lib/llvm-22/lib"
LOWER = ("--convert-wq-to-linalg --one-shot-bufferize=bufferize-function-boundaries "
         "--convert-linalg-to-loops --convert-scf-to-cf --expand-strided-metadata "
         "--lower-affine --finalize-memref-to-llvm --convert-math-to-llvm "
         "--convert-arith-to-llvm --convert-index-to-llvm --convert-cf-to-llvm "
         "--convert-func-to-llvm --reconcile-unrealized-casts").split()


def _packing(src):
    sys.path.insert(0, os.path.join(src, "python"))
    from quant_mlir import packing  # noqa: E402
    return packing


def dense(a, ty):
    a = np.asarray(a)
    body = np.array2string(a, separator=", ", threshold=1 << 30, max_line_width=1 << 30,
                           formatter={"float_kind": lambda v: repr(float(v)),
                                      "int": lambda v: str(int(v))})
    return f"arith.constant dense<{body}> : {ttype(a.shape, ty)}"


def ttype(shape, ty):
    return f"tensor<{'x'.join(map(str, shape))}x{ty}>"


def build_module(cases, src, seed=0):
    """Returns (module text, expected float64 results)."""
    packing = _packing(src)
    rng = np.random.default_rng(seed)
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
        types = [ttype(codes.shape, "i32"), ttype(scales.shape, "f32")]
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
        mem = f"memref<{'x'.join(map(str, out_shape))}xf32>"
        funcs.append(f"func.func @case{i}() -> {rt} {{\n" + "\n".join(lines) + f"\n  return %r : {rt}\n}}")
        calls.append(f"  %r{i} = call @case{i}() : () -> {rt}\n"
                     f"  %b{i} = bufferization.to_buffer %r{i} : {rt} to {mem}\n"
                     f"  %u{i} = memref.cast %b{i} : {mem} to memref<*xf32>\n"
                     f"  call @printMemrefF32(%u{i}) : (memref<*xf32>) -> ()")
    module = ("module {\nfunc.func private @printMemrefF32(memref<*xf32>)\n" + "\n".join(funcs) +
              "\nfunc.func @main() {\n" + "\n".join(calls) + "\n  return\n}\n}\n")
    return module, expected


def run(module, quant_opt, runner, pre_passes=(), inspect=None):
    """Lowers (after `pre_passes`) and runs the module; returns stdout.
    `inspect(ir)` sees the IR after `pre_passes` alone."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "cases.mlir")
        open(src, "w").write(module)
        if inspect:
            inspect(subprocess.run([quant_opt, src] + list(pre_passes), check=True,
                                   capture_output=True, text=True).stdout)
        llvm = subprocess.run([quant_opt, src] + list(pre_passes) + LOWER, check=True,
                              capture_output=True, text=True).stdout
        return subprocess.run([runner, "-e", "main", "-entry-point-result=void",
                               f"-shared-libs={LIBDIR}/libmlir_runner_utils.so",
                               f"-shared-libs={LIBDIR}/libmlir_c_runner_utils.so"],
                              input=llvm, check=True, capture_output=True, text=True).stdout


def compare(out, cases, expected):
    """Exits non-zero on the first mismatch; prints the summary line."""
    blocks = out.split("Unranked Memref")[1:]
    assert len(blocks) == len(cases), f"expected {len(cases)} printed results, got {len(blocks)}"
    for i, (case, block, ref) in enumerate(zip(cases, blocks, expected)):
        data = block.split("data =", 1)[1]
        got = np.array([float(v) for v in re.findall(r"-?\d+\.?\d*(?:e[-+]?\d+)?|nan|inf", data)])
        got = got.reshape(ref.shape)
        # printMemrefF32 prints 6 significant digits; a wrong code is off by
        # at least one scale (>= 0.01), far above these tolerances.
        if case[7] == 0:
            err = (np.abs(got - ref) / (np.abs(ref) + 1e-6)).max()
        else:
            err = np.abs(got - ref).max() / np.abs(ref).max()
        if not err < 1e-5:
            print(f"case {i} {case}: max error {err}")
            sys.exit(1)
    print(f"all {len(cases)} cases match")
