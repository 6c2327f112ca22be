#!/usr/bin/env python3
"""Minimal numpy interpreter for the ONNX op subset emitted by export_fixtures.py.

There is no onnxruntime (and onnx 1.12 has no onnx.reference) on this machine,
so this is used to check that an exported model.onnx, run on a *different*
shape than the one it was traced with, reproduces the torch reference logits.

    /usr/bin/python3 python/quant_mlir/onnx_numpy_eval.py OUT_DIR [--atol 1e-4] [--rtol 1e-4]

Loads OUT_DIR/model.onnx (external data resolved relative to OUT_DIR), runs it
on reference.npz's input_ids, compares with reference.npz's logits; exit code
0 on match.  Supports only the ops listed in OPS (unknown op -> error).
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _axes(node, ins, at, idx):
    if len(ins) > idx and ins[idx] is not None:
        return [int(v) for v in ins[idx]]
    return at.get("axes")


def op_reshape(ins, at):
    x, shape = ins
    shape = [int(s) for s in shape]
    if not at.get("allowzero", 0):
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return [x.reshape(shape)]


def op_slice(ins, at):
    x, starts, ends = ins[0], ins[1], ins[2]
    axes = ins[3] if len(ins) > 3 and ins[3] is not None else range(len(starts))
    steps = ins[4] if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
    sl = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = int(a) % x.ndim
        dim = x.shape[a]
        s, e, st = int(s), int(e), int(st)
        # clamp huge sentinel values the exporter uses
        s = max(min(s, dim), -dim - 1) if st > 0 else s
        e = max(min(e, dim), -dim - 1)
        sl[a] = slice(s, e, st)
    return [x[tuple(sl)]]


def op_split(ins, at):
    x = ins[0]
    axis = at.get("axis", 0) % x.ndim
    split = ins[1] if len(ins) > 1 and ins[1] is not None else at.get("split")
    idx = np.cumsum([int(s) for s in split])[:-1]
    return list(np.split(x, idx, axis=axis))


def op_layernorm(ins, at):
    x, w = ins[0], ins[1]
    b = ins[2] if len(ins) > 2 and ins[2] is not None else 0.0
    axis = at.get("axis", -1) % x.ndim
    axes = tuple(range(axis, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + at.get("epsilon", 1e-5))
    return [(y * w + b).astype(x.dtype)]


def op_softmax(ins, at):
    x = ins[0]
    axis = at.get("axis", -1)
    m = x.max(axis=axis, keepdims=True)
    e = np.exp(x - m)
    return [(e / e.sum(axis=axis, keepdims=True)).astype(x.dtype)]


def op_reducemean(ins, at):
    axes = _axes(None, ins, at, 1)
    keep = bool(at.get("keepdims", 1))
    return [ins[0].mean(axis=tuple(axes) if axes is not None else None, keepdims=keep).astype(ins[0].dtype)]


def op_unsqueeze(ins, at):
    x = ins[0]
    axes = _axes(None, ins, at, 1)
    out_rank = x.ndim + len(axes)
    for a in sorted(int(a) % out_rank for a in axes):
        x = np.expand_dims(x, a)
    return [x]


def op_squeeze(ins, at):
    axes = _axes(None, ins, at, 1)
    return [np.squeeze(ins[0], axis=tuple(int(a) for a in axes) if axes is not None else None)]


def op_cast(ins, at):
    return [ins[0].astype(onnx.mapping.TENSOR_TYPE_TO_NP_TYPE[at["to"]])]


def op_constant(ins, at):
    if "value" in at:
        return [numpy_helper.to_array(at["value"])]
    for k, dt in (("value_float", np.float32), ("value_int", np.int64)):
        if k in at:
            return [np.array(at[k], dtype=dt)]
    for k, dt in (("value_floats", np.float32), ("value_ints", np.int64)):
        if k in at:
            return [np.array(at[k], dtype=dt)]
    raise NotImplementedError(f"Constant attrs {list(at)}")


def op_cos(ins, at):
    return [np.cos(ins[0])]


def op_constantofshape(ins, at):
    v = numpy_helper.to_array(at["value"]) if "value" in at else np.zeros(1, np.float32)
    return [np.full([int(s) for s in ins[0]], v.reshape(-1)[0], dtype=v.dtype)]


def _binary(f):
    def op(ins, at):
        r = f(ins[0], ins[1])
        if r.dtype != np.bool_ and ins[0].dtype == ins[1].dtype:
            r = r.astype(ins[0].dtype)
        return [r]
    return op


OPS = {
    "Add": _binary(np.add),
    "Sub": _binary(np.subtract),
    "Mul": _binary(np.multiply),
    "Div": _binary(lambda a, b: a // b if np.issubdtype(a.dtype, np.integer) else a / b),
    "Pow": lambda ins, at: [np.power(ins[0], ins[1]).astype(ins[0].dtype)],
    "MatMul": _binary(np.matmul),
    "Equal": _binary(np.equal),
    "Greater": _binary(np.greater),
    "Less": _binary(np.less),
    "Where": lambda ins, at: [np.where(ins[0], ins[1], ins[2])],
    "Neg": lambda ins, at: [-ins[0]],
    "Sqrt": lambda ins, at: [np.sqrt(ins[0])],
    "Reciprocal": lambda ins, at: [(1.0 / ins[0]).astype(ins[0].dtype)],
    "Tanh": lambda ins, at: [np.tanh(ins[0])],
    "Erf": lambda ins, at: [_erf(ins[0]).astype(ins[0].dtype)],
    "Sigmoid": lambda ins, at: [(1.0 / (1.0 + np.exp(-ins[0]))).astype(ins[0].dtype)],
    "Cos": op_cos,
    "Sin": lambda ins, at: [np.sin(ins[0])],
    "Softmax": op_softmax,
    "ReduceMean": op_reducemean,
    "LayerNormalization": op_layernorm,
    "Gather": lambda ins, at: [np.take(ins[0], ins[1].astype(np.int64), axis=at.get("axis", 0))],
    "Shape": lambda ins, at: [np.array(ins[0].shape, dtype=np.int64)],
    "Reshape": op_reshape,
    "Transpose": lambda ins, at: [np.transpose(ins[0], at.get("perm"))],
    "Unsqueeze": op_unsqueeze,
    "Squeeze": op_squeeze,
    "Concat": lambda ins, at: [np.concatenate(ins, axis=at["axis"])],
    "Slice": op_slice,
    "Split": op_split,
    "Expand": lambda ins, at: [ins[0] * np.ones([int(s) for s in ins[1]], dtype=ins[0].dtype)],
    "Range": lambda ins, at: [np.arange(ins[0], ins[1], ins[2]).astype(ins[0].dtype)],
    "Cast": op_cast,
    "Constant": op_constant,
    "ConstantOfShape": op_constantofshape,
    "Identity": lambda ins, at: [ins[0]],
}


def run_model(model: onnx.ModelProto, feeds: dict) -> dict:
    env = {}
    for init in model.graph.initializer:
        env[init.name] = numpy_helper.to_array(init)
    env.update(feeds)
    for node in model.graph.node:
        if node.op_type not in OPS or (node.domain not in ("", "ai.onnx")):
            raise NotImplementedError(f"op {node.domain}:{node.op_type} ({node.name})")
        ins = [env[n] if n else None for n in node.input]
        outs = OPS[node.op_type](ins, _attrs(node))
        for name, val in zip(node.output, outs):
            if name:
                env[name] = np.asarray(val)
    return {o.name: env[o.name] for o in model.graph.output}


def check_dir(out_dir: str, atol: float = 1e-4, rtol: float = 1e-4):
    """Run OUT_DIR/model.onnx on reference.npz's input_ids.

    Returns (ratio, max_abs_diff) where ratio = max |onnx - torch| /
    (atol + rtol*|torch|); ratio <= 1.0 means the graph matches torch."""
    model = onnx.load(os.path.join(out_dir, "model.onnx"))  # resolves external data
    ref = np.load(os.path.join(out_dir, "reference.npz"))
    got = run_model(model, {"input_ids": ref["input_ids"]})["logits"]
    want = ref["logits"].astype(np.float64)
    if got.shape != want.shape:
        raise AssertionError(f"shape {got.shape} != {want.shape}")
    err = np.abs(got.astype(np.float64) - want)
    return float((err / (atol + rtol * np.abs(want))).max()), float(err.max())


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("out_dir")
    p.add_argument("--atol", type=float, default=1e-4)
    p.add_argument("--rtol", type=float, default=1e-4)
    a = p.parse_args(argv)
    r, d = check_dir(a.out_dir, a.atol, a.rtol)
    ok = r <= 1.0
    print(f"{a.out_dir}: max|onnx-torch| = {d:.3e}, "
          f"error/(atol+rtol*|ref|) = {r:.3f} {'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
