#!/usr/bin/env python3
"""Writes small hand-made ONNX models for quant-import's lit tests.

    make_models.py KIND OUT.onnx

Good: `linear` (MatMul + Add bias on a [?, 8] input), `ops` (a mix of
operators with symbolic shapes).  Bad: truncated, garbage, missing-data,
past-eof, length-mismatch, unsupported-op, complex-init, string-init,
shape-mismatch, huge-constant, old-opset, broadcast.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def tiny(opset=17, inits=None, nodes=None, outputs=None):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    rng = np.random.default_rng(0)
    if inits is None:
        inits = [numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "fc.weight"),
                 numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "fc.bias")]
    if nodes is None:
        nodes = [helper.make_node("MatMul", ["x", "fc.weight"], ["h"], name="/fc/MatMul"),
                 helper.make_node("Add", ["h", "fc.bias"], ["y"], name="/fc/Add")]
    g = helper.make_graph(nodes, "tiny", [x], outputs or [y], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def external(model, out, location, offset, length, file_bytes):
    t = model.graph.initializer[0]
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", str(offset)), ("length", str(length))):
        e = t.external_data.add()
        e.key, e.value = k, v
    if file_bytes is not None:
        with open(os.path.join(os.path.dirname(out), location), "wb") as f:
            f.write(file_bytes)
    return model


def main():
    kind, out = sys.argv[1], sys.argv[2]
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    m = None
    if kind == "linear":
        m = tiny()
    elif kind == "ops":
        m = ops_model()
        np.savez(out[:-len(".onnx")] + ".npz", **ops_reference(m))
    elif kind == "truncated":
        data = tiny().SerializeToString()
        open(out, "wb").write(data[: len(data) // 2])
        return
    elif kind == "garbage":
        open(out, "wb").write(b"\xff\xfe this is not a protobuf \x00\x01" * 4)
        return
    elif kind == "missing-data":
        m = external(tiny(), out, "weights.bin", 0, 128, None)
    elif kind == "past-eof":
        m = external(tiny(), out, "weights.bin", 64, 128, bytes(100))
    elif kind == "length-mismatch":
        m = external(tiny(), out, "weights.bin", 0, 100, bytes(200))
    elif kind == "unsupported-op":
        boxes = helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 4, 4])
        scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 1, 4])
        sel = helper.make_tensor_value_info("sel", TensorProto.INT64, [None, 3])
        g = helper.make_graph([helper.make_node("NonMaxSuppression", ["boxes", "scores"], ["sel"], name="nms")],
                              "nms", [boxes, scores], [sel])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    elif kind == "complex-init":
        c = numpy_helper.from_array(np.ones((8, 4), dtype=np.complex64), "fc.weight")
        m = tiny(inits=[c, numpy_helper.from_array(np.ones(4, np.float32), "fc.bias")])
    elif kind == "string-init":
        s = helper.make_tensor("labels", TensorProto.STRING, [2], [b"a", b"b"])
        m = tiny()
        m.graph.initializer.append(s)
    elif kind == "shape-mismatch":
        m = tiny()
        m.graph.initializer[0].raw_data = bytes(100)  # needs 8 * 4 * 4 = 128
    elif kind == "huge-constant":
        # 2^40 elements claimed, one given: refused before anything is
        # allocated for the claimed shape.
        value = helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])
        value.dims[0] = 1 << 40  # onnx.helper checks the count; a file need not
        nodes = [helper.make_node("Constant", [], ["c"], name="/big/Constant", value=value),
                 helper.make_node("MatMul", ["x", "fc.weight"], ["y"], name="/fc/MatMul")]
        m = tiny(nodes=nodes)
    elif kind == "old-opset":
        m = tiny(opset=12)
    elif kind == "broadcast":
        nodes = [helper.make_node("MatMul", ["x", "fc.weight"], ["h"], name="/fc/MatMul"),
                 helper.make_node("Add", ["h", "odd"], ["y"], name="/bad/Add")]
        inits = [numpy_helper.from_array(np.ones((8, 4), np.float32), "fc.weight"),
                 numpy_helper.from_array(np.ones((3,), np.float32), "odd")]
        m = tiny(inits=inits, nodes=nodes)
    else:
        sys.exit(f"unknown kind {kind}")
    onnx.save(m, out)


def ops_model():
    """Gemm, Split, Trilu, Where, Softmax, Gelu-ish Erf, ReduceMean, Expand,
    Concat, Slice with symbolic sizes, Range, Cast, Gather on a [?, 16] input."""
    rng = np.random.default_rng(1)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 8])
    w = numpy_helper.from_array(rng.standard_normal((8, 16)).astype(np.float32), "proj.weight")
    bias = numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "proj.bias")
    c = lambda name, v: helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.array(v)))
    nodes = [
        helper.make_node("Gemm", ["x", "proj.weight", "proj.bias"], ["g"], name="/proj/Gemm", transB=1),
        c("split", np.array([4, 4], np.int64)),
        helper.make_node("Split", ["g", "split"], ["a", "b"], name="/Split", axis=1),
        helper.make_node("Erf", ["a"], ["ea"], name="/Erf"),
        helper.make_node("Concat", ["ea", "b"], ["cat"], name="/Concat", axis=-1),
        helper.make_node("Shape", ["cat"], ["shp"], name="/Shape"),
        c("zero", np.array(0, np.int64)),
        helper.make_node("Gather", ["shp", "zero"], ["n"], name="/Gather", axis=0),
        c("one", np.array(1, np.int64)),
        helper.make_node("Range", ["zero", "n", "one"], ["r"], name="/Range"),
        helper.make_node("Cast", ["r"], ["rf"], name="/Cast", to=TensorProto.FLOAT),
        c("axes1", np.array([1], np.int64)),
        helper.make_node("Unsqueeze", ["rf", "axes1"], ["ru"], name="/Unsqueeze"),
        helper.make_node("Add", ["cat", "ru"], ["s"], name="/Add"),
        helper.make_node("Softmax", ["s"], ["sm"], name="/Softmax", axis=-1),
        helper.make_node("ReduceMean", ["sm"], ["mean"], name="/ReduceMean", axes=[-1], keepdims=1),
        helper.make_node("Sub", ["sm", "mean"], ["d"], name="/Sub"),
        helper.make_node("Trilu", ["d"], ["t"], name="/Trilu", upper=0),
        c("thr", np.array(0.0, np.float32)),
        helper.make_node("Greater", ["t", "thr"], ["gt"], name="/Greater"),
        helper.make_node("Where", ["gt", "t", "d"], ["y"], name="/Where"),
    ]
    g = helper.make_graph(nodes, "ops", [x], [y], [w, bias])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def ops_reference(m):
    """numpy semantics of ops_model() on a [5, 16] input."""
    import math
    x = np.random.default_rng(2).standard_normal((5, 16)).astype(np.float32)
    w = numpy_helper.to_array(m.graph.initializer[0])
    bias = numpy_helper.to_array(m.graph.initializer[1])
    g = x @ w.T + bias
    a, b = g[:, :4], g[:, 4:]
    ea = np.vectorize(math.erf)(a).astype(np.float32)
    cat = np.concatenate([ea, b], axis=-1)
    s = cat + np.arange(cat.shape[0], dtype=np.float32)[:, None]
    e = np.exp(s - s.max(-1, keepdims=True))
    sm = e / e.sum(-1, keepdims=True)
    d = sm - sm.mean(-1, keepdims=True)
    t = np.tril(d)
    return {"input": x, "output": np.where(t > 0, t, d).astype(np.float32)}


if __name__ == "__main__":
    main()
