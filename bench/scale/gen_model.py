#!/usr/bin/env python3
"""Generates bench/scale's Llama with 7B block shapes at a given depth.

export_fixtures.py serializes through an in-memory protobuf, which cannot
exceed 2 GB; here torch exports straight to a file (external data) and the
initializers are then gathered into one model.onnx.data, as the fixtures
have them.

  python3 bench/scale/gen_model.py --layers 2 -o OUT_DIR
"""
import argparse
import os
import shutil
import sys

import numpy as np
import onnx
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))
from quant_mlir import export_fixtures  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--layers", type=int, required=True)
    p.add_argument("-o", "--out-dir", required=True)
    a = p.parse_args()
    args = export_fixtures.parse_args(["--family", "llama", "--hidden", "4096", "--intermediate", "11008",
                                       "--heads", "32", "--vocab", "32000", "--max-pos", "512",
                                       "--init-std", "0.02", "--layers", str(a.layers), "-o", a.out_dir])
    cfg = export_fixtures.config_from_args(args)
    torch.manual_seed(0)
    model = export_fixtures.build_model(cfg).eval()
    raw = os.path.join(a.out_dir, "raw")
    shutil.rmtree(raw, ignore_errors=True)
    os.makedirs(raw)
    ids = torch.from_numpy(np.random.default_rng(99).integers(0, 32000, (3, 5)))
    with torch.no_grad():
        torch.onnx.export(model, (ids,), os.path.join(raw, "model.onnx"), input_names=["input_ids"],
                          output_names=["logits"],
                          dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"}},
                          opset_version=17, do_constant_folding=False, export_params=True)
    del model
    proto = onnx.load(os.path.join(raw, "model.onnx"))
    onnx.save_model(proto, os.path.join(a.out_dir, "model.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="model.onnx.data", size_threshold=0)
    shutil.rmtree(raw)
    print("wrote", os.path.join(a.out_dir, "model.onnx"))


if __name__ == "__main__":
    main()
