# Peak RSS of quant-import does not grow with the external data it archives:
# the mmapped weights are written in chunks and their pages released behind
# the writer, and [in, out] MatMul weights are transposed chunk by chunk
# rather than copied whole. A ~48 MiB model must peak below the peak of a
# tiny model of the same architecture (the baseline: binary, MLIR context)
# plus half the data size; keeping all the data resident, or a transposed
# copy of it, would exceed that. The archive must still hold the exact
# (transposed) weights.
#
# RUN: rm -rf %t && mkdir -p %t
# RUN: %python %s %t quant-import | FileCheck %s
# CHECK: tiny: {{[0-9]+}} bytes of external data
# CHECK: big: {{[0-9]+}} bytes of external data
# CHECK: weights ok
# CHECK: rss ok
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from onnx import TensorProto, helper

HIDDEN, FFN, LAYERS = 384, 1536, 4


def build(outdir, vocab, scale):
    """Embedding (Gather), per layer up [H, 4H] and down [4H, H] MatMul
    weights, an lm_head [H, vocab]: every linear weight is stored transposed
    in the archive, the embedding as is. Returns ({archive key: the array
    the archive must hold}, external data bytes)."""
    os.makedirs(outdir)
    rng = np.random.default_rng(scale)
    hidden, ffn = HIDDEN // scale, FFN // scale
    weights, keys, nodes = {}, {}, []
    weights["model.embed_tokens.weight"] = (vocab, hidden)
    nodes.append(helper.make_node("Gather", ["model.embed_tokens.weight", "ids"],
                                  ["h0"], name="/model/embed_tokens/Gather"))
    h = "h0"
    for i in range(LAYERS):
        for j, (proj, shape) in enumerate((("up_proj", (hidden, ffn)),
                                           ("down_proj", (ffn, hidden)))):
            w = f"onnx::MatMul_{100 + 2 * i + j}"
            weights[w] = shape
            keys[w] = f"model.layers.{i}.mlp.{proj}.weight"
            out = f"l{i}_{proj}"
            nodes.append(helper.make_node(
                "MatMul", [h, w], [out], name=f"/model/layers.{i}/mlp/{proj}/MatMul"))
            h = out
    weights["onnx::MatMul_999"] = (hidden, vocab)
    keys["onnx::MatMul_999"] = "lm_head.weight"
    nodes.append(helper.make_node("MatMul", [h, "onnx::MatMul_999"], ["logits"],
                                  name="/lm_head/MatMul"))
    arrays, inits, offset = {}, [], 0
    with open(os.path.join(outdir, "model.onnx.data"), "wb") as f:
        for name, shape in weights.items():
            a = rng.standard_normal(shape, dtype=np.float32)
            # MatMul weights are [in, out]; the archive holds [out, in].
            if name in keys:
                arrays[keys[name]] = a.T
            else:
                arrays[name] = a
            t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=shape,
                            data_location=TensorProto.EXTERNAL)
            for k, v in (("location", "model.onnx.data"), ("offset", offset),
                         ("length", a.nbytes)):
                e = t.external_data.add()
                e.key, e.value = k, str(v)
            f.write(a.tobytes())
            offset += a.nbytes
            inits.append(t)
    graph = helper.make_graph(
        nodes, "rss", [helper.make_tensor_value_info("ids", TensorProto.INT64, ["b", "s"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", "s", vocab])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with open(os.path.join(outdir, "model.onnx"), "wb") as f:
        f.write(model.SerializeToString())
    return arrays, offset


def peak_rss(tool, model, outdir):
    """Peak RSS in bytes. /usr/bin/time measures quant-import alone; a child
    forked from this Python process would carry the parent's RSS over exec."""
    if os.path.exists("/usr/bin/time"):
        with tempfile.NamedTemporaryFile("r") as stats:
            subprocess.run(["/usr/bin/time", "-o", stats.name, "-f", "%M", tool,
                            model, "-o", outdir], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return int(stats.read().split()[-1]) * 1024
    proc = subprocess.Popen([tool, model, "-o", outdir], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return usage.ru_maxrss * 1024


def read_archive(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        base = 8 + n
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        out[name] = mm[base + b:base + e].view(np.float32).reshape(info["shape"])
    return out


def main():
    work, tool = sys.argv[1], sys.argv[2]
    tool = shutil.which(tool) or tool
    _, tiny_bytes = build(os.path.join(work, "tiny"), 64, 8)
    arrays, big_bytes = build(os.path.join(work, "big"), 10000, 1)
    print(f"tiny: {tiny_bytes} bytes of external data")
    print(f"big: {big_bytes} bytes of external data")
    # Warm the binary's pages the same way for both runs.
    base = min(peak_rss(tool, os.path.join(work, "tiny", "model.onnx"),
                        os.path.join(work, f"tiny-out{i}")) for i in range(2))
    big = peak_rss(tool, os.path.join(work, "big", "model.onnx"),
                   os.path.join(work, "big-out"))

    archive = read_archive(os.path.join(work, "big-out", "model.safetensors"))
    assert sorted(archive) == sorted(arrays), sorted(archive)
    for key, want in arrays.items():
        assert np.array_equal(archive[key], want), key
    print("weights ok")

    limit = base + big_bytes // 2
    print(f"peak RSS: tiny {base / 2**20:.1f} MiB, big {big / 2**20:.1f} MiB, "
          f"limit {limit / 2**20:.1f} MiB (data {big_bytes / 2**20:.1f} MiB)")
    if big > limit:
        sys.exit("peak RSS grows with the external data")
    print("rss ok")


if __name__ == "__main__":
    main()
