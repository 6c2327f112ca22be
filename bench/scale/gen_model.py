#!/usr/bin/env python3
"""Generates bench/scale's Llama with 7B block shapes at a given depth.

torch only traces the graph (export_params=False: the parameters become
graph inputs, nothing is serialized through a protobuf, which cannot exceed
2 GB); the parameters are then written by numpy straight into one
model.onnx.data and the inputs turned into external-data initializers, as
export_fixtures.py --external-data lays them out. Random weights: linears and
embeddings N(0, 0.02), norm weights 1 + 0.1 N(0, 1) (models.py's scheme,
not its exact values).

  python3 bench/scale/gen_model.py --layers 2 -o OUT_DIR
"""
import argparse
import os
import sys
import time

import numpy as np
import onnx
import torch
from onnx import TensorProto

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))
from quant_mlir import export_fixtures  # noqa: E402
from quant_mlir import models  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--layers", type=int, required=True)
    p.add_argument("--hidden", type=int, default=4096)
    p.add_argument("--intermediate", type=int, default=11008)
    p.add_argument("--heads", type=int, default=32)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("-o", "--out-dir", required=True)
    a = p.parse_args()
    t0 = time.monotonic()
    args = export_fixtures.parse_args(["--family", "llama", "--hidden", str(a.hidden), "--intermediate",
                                       str(a.intermediate), "--heads", str(a.heads), "--vocab", str(a.vocab),
                                       "--max-pos", "512", "--init-std", "0.02", "--layers", str(a.layers),
                                       "-o", a.out_dir])
    cfg = export_fixtures.config_from_args(args)
    # The tracer needs real tensors but not their values: skip the
    # initialisation (the module constructors' own init is what costs).
    saved = {n: getattr(torch.nn.init, n) for n in ("kaiming_uniform_", "uniform_", "normal_")}
    for n in saved:
        setattr(torch.nn.init, n, lambda t, *x, **k: t)
    models.init_weights = lambda *x: None
    try:
        model = models.build_model(cfg).eval()
    finally:
        for n, f in saved.items():
            setattr(torch.nn.init, n, f)
    # torch.onnx.export merges parameters of equal values: make them differ.
    with torch.no_grad():
        for i, (_, t) in enumerate(model.named_parameters()):
            t.fill_(float(i))
    shapes = {n: tuple(t.shape) for n, t in model.named_parameters()}
    os.makedirs(a.out_dir, exist_ok=True)
    ids = torch.from_numpy(np.random.default_rng(99).integers(0, a.vocab, (3, 5)))
    import io
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(model, (ids,), buf, input_names=["input_ids"], output_names=["logits"],
                          dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"}},
                          opset_version=17, do_constant_folding=False, export_params=False)
    del model
    proto = onnx.load_model_from_string(buf.getvalue())
    graph = proto.graph
    params = [i for i in graph.input if i.name in shapes]
    rng = np.random.default_rng(0)
    data_name = "model.onnx.data"
    offset = 0
    with open(os.path.join(a.out_dir, data_name), "wb") as f:
        for inp in params:
            shape = shapes[inp.name]
            if "norm" in inp.name:
                w = (1.0 + 0.1 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
            else:
                w = rng.standard_normal(shape, dtype=np.float32)
                w *= 0.02
            raw = w.tobytes()
            f.write(raw)
            t = TensorProto(name=inp.name, data_type=TensorProto.FLOAT, dims=shape)
            t.data_location = TensorProto.EXTERNAL
            for k, v in (("location", data_name), ("offset", str(offset)), ("length", str(len(raw)))):
                e = t.external_data.add()
                e.key, e.value = k, v
            graph.initializer.append(t)
            offset += len(raw)
    keep = [i for i in graph.input if i.name not in shapes]
    del graph.input[:]
    graph.input.extend(keep)
    proto.producer_name = "quant_mlir.bench_scale"
    onnx.save_model(proto, os.path.join(a.out_dir, "model.onnx"))
    print(f"wrote {os.path.join(a.out_dir, 'model.onnx')} ({len(params)} tensors, {offset / 2**30:.2f} GiB) "
          f"in {time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    main()
