# wq-gptq precomputed=FILE: the GPTQ results quant-compile's calibration loop
# keeps (block 0's, from an interrupted run's state) are used exactly where
# their key (options, scheme, xxh3 of the Hessian and weight bytes) matches:
# the same entries give quant-compile's own output and report; tampered codes
# under a matching key show up in the output (so the entry is really used);
# under a stale Hessian hash they are ignored and GPTQ runs. The statistics
# are quant-compile's shards and index (no stats.safetensors: the module's
# "stats.safetensors" resolves to its index), and the results are read from
# an index over two shards as from one file.
# RUN: rm -rf %t && mkdir -p %t
# RUN: %python %src_root/python/quant_mlir/export_fixtures.py --family llama --hidden 64 --intermediate 128 --layers 2 --vocab 128 -o %t/onnx > /dev/null
# RUN: %python -c "import numpy as np; np.save('%t/ids.npy', np.random.default_rng(0).integers(0, 128, 4096))"
# RUN: not quant-compile %t/onnx/model.onnx --method gptq --group-size 32 --calib-data %t/ids.npy --calib-samples 6 --seq-len 32 --quiet --resume --stop-after-block 0 -o %t/res 2> /dev/null
# RUN: quant-compile %t/onnx/model.onnx --method gptq --group-size 32 --calib-data %t/ids.npy --calib-samples 6 --seq-len 32 --quiet -o %t/full > /dev/null
# The float model with the statistics of the quantized-input run:
# RUN: quant-import %t/onnx/model.onnx -o %t/fp > /dev/null
# RUN: quant-run %t/fp --calibrate --calib-data %t/ids.npy --calib-samples 6 --seq-len 32 --quiet
# RUN: rm %t/fp/stats.safetensors && cp %t/full/stats-*-of-*.safetensors %t/full/stats.safetensors.index.json %t/fp/
# RUN: %python %s %t %src_root prepare
# RUN: quant-opt %t/same/model.mlir --wq-gptq="group-size=32 output=model.safetensors base-dir=%t/same report=quant-report.csv precomputed=%t/same.safetensors" -o %t/same/q.mlir
# RUN: quant-opt %t/tampered/model.mlir --wq-gptq="group-size=32 output=model.safetensors base-dir=%t/tampered report=quant-report.csv precomputed=%t/tampered.safetensors" -o %t/tampered/q.mlir
# RUN: quant-opt %t/stale/model.mlir --wq-gptq="group-size=32 output=model.safetensors base-dir=%t/stale report=quant-report.csv precomputed=%t/stale.safetensors" -o %t/stale/q.mlir
# RUN: quant-opt %t/sharded/model.mlir --wq-gptq="group-size=32 output=model.safetensors base-dir=%t/sharded report=quant-report.csv precomputed=%t/results/same.safetensors.index.json" -o %t/sharded/q.mlir
# RUN: cmp %t/full/quant-report.csv %t/same/quant-report.csv
# RUN: cmp %t/full/quant-report.csv %t/sharded/quant-report.csv
# RUN: cmp %t/full/quant-report.csv %t/stale/quant-report.csv
# RUN: %python %s %t %src_root check
# RUN: not quant-opt %t/same/model.mlir --wq-gptq="group-size=32 output=x.safetensors base-dir=%t/same precomputed=%t/missing.safetensors" 2>&1 | FileCheck %s --check-prefix=MISSING
# MISSING: missing.safetensors
import json
import os
import shutil
import struct
import sys

import numpy as np

tmp, root, mode = sys.argv[1:4]
sys.path.insert(0, os.path.join(root, "python"))
from quant_mlir import packing, safetensors_io  # noqa: E402

LAYER = "model.layers.0.self_attn.q_proj"


def metadata(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n)).get("__metadata__", {})


if mode == "prepare":
    src = os.path.join(tmp, ".res.resume", "calibration.state", "gptq-1.safetensors")
    tensors, meta = safetensors_io.load(src), metadata(src)
    assert LAYER in meta and "hessian=" in meta[LAYER], meta
    assert len(meta) == 7, sorted(meta)  # block 0's seven linears
    tampered = dict(tensors)
    tampered[LAYER + ".gptq.q"] = (15 - tensors[LAYER + ".gptq.q"]).astype(np.uint8)
    tampered[LAYER + ".gptq.error"] = np.array([1.0, 1.0, 4.0])
    stale = dict(meta)
    stale[LAYER] = stale[LAYER].replace("hessian=", "hessian=0")
    safetensors_io.save(os.path.join(tmp, "same.safetensors"), tensors, meta)
    safetensors_io.save(os.path.join(tmp, "tampered.safetensors"), tampered, meta)
    safetensors_io.save(os.path.join(tmp, "stale.safetensors"), tampered, stale)
    # The same results as an index over two shards.
    os.makedirs(os.path.join(tmp, "results"))
    names = sorted(tensors)
    shards = {"a.safetensors": names[: len(names) // 2], "b.safetensors": names[len(names) // 2:]}
    for shard, part in shards.items():
        safetensors_io.save(os.path.join(tmp, "results", shard), {n: tensors[n] for n in part})
    with open(os.path.join(tmp, "results", "same.safetensors.index.json"), "w") as f:
        json.dump({"metadata": meta, "weight_map": {n: s for s, p in shards.items() for n in p}}, f)
    for d in ("same", "tampered", "stale", "sharded"):
        shutil.copytree(os.path.join(tmp, "fp"), os.path.join(tmp, d))
else:
    full = safetensors_io.load(os.path.join(tmp, "full", "model.safetensors"))
    tensors = safetensors_io.load(os.path.join(tmp, "tampered.safetensors"))
    qnames = [n for n in full if n.endswith((".qweight", ".scales", ".qzeros", ".g_idx"))]
    assert len(qnames) == 28, qnames  # 14 layers, symmetric: qweight + scales
    for d in ("same", "stale", "tampered", "sharded"):
        out = safetensors_io.load(os.path.join(tmp, d, "model.safetensors"))
        for n in qnames:
            if d == "tampered" and n == LAYER + ".qweight":
                k = out[n].shape[0] * 8
                codes = packing.unpack_stream(out[n], 4, k, axis=0)
                assert np.array_equal(codes, tensors[LAYER + ".gptq.q"]), "tampered codes not used"
                assert not np.array_equal(out[n], full[n])
            else:
                assert np.array_equal(out[n], full[n]), (d, n)
    report = open(os.path.join(tmp, "tampered", "quant-report.csv")).read()
    line = next(l for l in report.splitlines() if l.startswith(LAYER + ","))
    assert line.endswith(",2.500000e-01"), line  # error / reference = 1 / 4
    print("ok")
