#!/usr/bin/python3
"""Time and peak RSS of quant-import on generated Llama-shaped ONNX models
whose float32 weights live in ONNX external data.

The graph is a simplified Llama decoder built with onnx.helper (fast, no
torch): Gather embedding, RMSNorm (Pow/ReduceMean/Add/Sqrt/Div/Mul), per
layer q/k/v/o and gate/up/down as MatMul with [in, out] initializers (as
torch exports nn.Linear, so the importer stores them transposed), SiLU via
Sigmoid, residual Adds, final norm and an lm_head MatMul. Attention itself is
left out (q + k + v stands in for it): only the weights matter here.

The external data file is written tensor by tensor through a numpy memmap,
so generating the 1B model needs ~4 GB of disk but little RAM. Each model is
deleted after its import.

    /usr/bin/python3 bench/import/bench_import.py              # 100M and 1B
    /usr/bin/python3 bench/import/bench_import.py --models 100m
    /usr/bin/python3 bench/import/bench_import.py --models tiny  # smoke run

Prints a table and writes CSV (--csv, default bench/import/results.csv).
Peak RSS is quant-import's maximum resident set size as /usr/bin/time reports
it (VmHWM: heap plus every mapped file page it touched, its own binary
included).
"""
import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# name: (hidden, intermediate, layers, vocab)
CONFIGS = {
    "tiny": (64, 172, 2, 128),
    "100m": (768, 2048, 7, 32000),      # 98.7M parameters
    "1b": (2048, 5632, 17, 32000),      # 1.005B parameters
}


def param_count(hidden, inter, layers, vocab):
    per_layer = 4 * hidden * hidden + 3 * hidden * inter + 2 * hidden
    return 2 * vocab * hidden + layers * per_layer + hidden


def build_model(outdir, hidden, inter, layers, vocab, seed=0):
    """Writes outdir/model.onnx and outdir/model.onnx.data; returns
    (parameters, data bytes)."""
    os.makedirs(outdir, exist_ok=True)
    location = "model.onnx.data"
    shapes = []  # (name, shape) in file order

    def weight(name, shape):
        shapes.append((name, tuple(shape)))
        return name

    nodes = []
    counter = [0]

    def node(op, inputs, name, **attrs):
        counter[0] += 1
        out = f"{name}_output_{counter[0]}"
        nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def rmsnorm(x, prefix, wname):
        w = weight(wname, [hidden])
        sq = node("Pow", [x, "two"], f"{prefix}/Pow")
        mean = node("ReduceMean", [sq], f"{prefix}/ReduceMean", axes=[-1],
                    keepdims=1)
        eps = node("Add", [mean, "eps"], f"{prefix}/Add")
        root = node("Sqrt", [eps], f"{prefix}/Sqrt")
        normed = node("Div", [x, root], f"{prefix}/Div")
        return node("Mul", [w, normed], f"{prefix}/Mul_1")

    def linear(x, module, n_in, n_out):
        w = weight(f"onnx::MatMul_{len(shapes) + 1000}", [n_in, n_out])
        return node("MatMul", [x, w], f"/model/{module}/MatMul")

    embed = weight("model.embed_tokens.weight", [vocab, hidden])
    h = node("Gather", [embed, "input_ids"], "/model/embed_tokens/Gather")
    for i in range(layers):
        p = f"layers.{i}"
        x = rmsnorm(h, f"/model/{p}/input_layernorm",
                    f"model.{p}.input_layernorm.weight")
        q = linear(x, f"{p}/self_attn/q_proj", hidden, hidden)
        k = linear(x, f"{p}/self_attn/k_proj", hidden, hidden)
        v = linear(x, f"{p}/self_attn/v_proj", hidden, hidden)
        qk = node("Add", [q, k], f"/model/{p}/self_attn/Add")
        qkv = node("Add", [qk, v], f"/model/{p}/self_attn/Add_1")
        o = linear(qkv, f"{p}/self_attn/o_proj", hidden, hidden)
        h = node("Add", [h, o], f"/model/{p}/Add")
        x = rmsnorm(h, f"/model/{p}/post_attention_layernorm",
                    f"model.{p}.post_attention_layernorm.weight")
        gate = linear(x, f"{p}/mlp/gate_proj", hidden, inter)
        sig = node("Sigmoid", [gate], f"/model/{p}/mlp/act_fn/Sigmoid")
        act = node("Mul", [gate, sig], f"/model/{p}/mlp/act_fn/Mul")
        up = linear(x, f"{p}/mlp/up_proj", hidden, inter)
        prod = node("Mul", [act, up], f"/model/{p}/mlp/Mul")
        down = linear(prod, f"{p}/mlp/down_proj", inter, hidden)
        h = node("Add", [h, down], f"/model/{p}/Add_1")
    x = rmsnorm(h, "/model/norm", "model.norm.weight")
    logits = linear(x, "lm_head", hidden, vocab)
    nodes.append(helper.make_node("Identity", [logits], ["logits"],
                                  name="/Identity"))

    # Lay the tensors out back to back (64-byte aligned) and stream the data
    # through a memmap, one bounded slice at a time.
    offsets, total = [], 0
    for _, shape in shapes:
        total = (total + 63) // 64 * 64
        offsets.append(total)
        total += int(np.prod(shape)) * 4
    data_path = os.path.join(outdir, location)
    mm = np.memmap(data_path, dtype=np.uint8, mode="w+", shape=(total,))
    rng = np.random.default_rng(seed)
    pool = (rng.standard_normal(1 << 22, dtype=np.float32) * 0.02)
    chunk = 1 << 22  # elements per slice (16 MiB)
    inits = []
    for (name, shape), off in zip(shapes, offsets):
        n = int(np.prod(shape))
        dst = mm[off:off + 4 * n].view(np.float32)
        for s in range(0, n, chunk):
            m = min(chunk, n - s)
            # Rotate the pool so tensors differ; cheap compared to drawing.
            r = int(rng.integers(0, chunk))
            dst[s:s + m] = np.roll(pool, r)[:m]
        mm.flush()
        t = TensorProto()
        t.name = name
        t.data_type = TensorProto.FLOAT
        t.dims.extend(shape)
        t.data_location = TensorProto.EXTERNAL
        for k, v in (("location", location), ("offset", str(off)),
                     ("length", str(4 * n))):
            e = t.external_data.add()
            e.key, e.value = k, v
        inits.append(t)
    del mm

    inits.append(helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]))
    inits.append(helper.make_tensor("eps", TensorProto.FLOAT, [], [1e-6]))
    graph = helper.make_graph(
        nodes, "llama",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64,
                                       ["batch", "seq"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT,
                                       ["batch", "seq", vocab])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="bench_import")
    with open(os.path.join(outdir, "model.onnx"), "wb") as f:
        f.write(model.SerializeToString())
    params = sum(int(np.prod(s)) for _, s in shapes)
    return params, sum(int(np.prod(s)) * 4 for _, s in shapes)


def run_import(tool, model, outdir):
    """Returns (seconds, peak RSS bytes, stderr).

    The RSS comes from /usr/bin/time: ru_maxrss of a child forked straight
    from this (numpy-sized) Python process would include the parent's RSS at
    fork time, which Linux carries over exec. time is small, so its child's
    ru_maxrss is quant-import's own."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as stats:
        start = time.monotonic()
        proc = subprocess.run(["/usr/bin/time", "-o", stats.name, "-f", "%M",
                               tool, model, "-o", outdir],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        secs = time.monotonic() - start
        err = proc.stderr.decode()
        if proc.returncode != 0:
            sys.exit(f"quant-import failed ({proc.returncode}):\n{err}")
        kib = int(stats.read().split()[-1])
    return secs, kib * 1024, err
def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quant-import",
                    default=os.path.join(ROOT, "build", "bin", "quant-import"))
    ap.add_argument("--models", default="100m,1b",
                    help="comma-separated: " + ", ".join(CONFIGS))
    ap.add_argument("--tmpdir", default=None,
                    help="where to generate models (needs ~4.1 GB for 1b)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the generated models and outputs")
    ap.add_argument("--csv", default=os.path.join(HERE, "results.csv"))
    args = ap.parse_args()

    rows = []
    for key in args.models.split(","):
        hidden, inter, layers, vocab = CONFIGS[key]
        work = tempfile.mkdtemp(prefix=f"bench-import-{key}-",
                                dir=args.tmpdir)
        try:
            t0 = time.monotonic()
            params, data_bytes = build_model(os.path.join(work, "in"), hidden,
                                             inter, layers, vocab)
            assert params == param_count(hidden, inter, layers, vocab)
            gen = time.monotonic() - t0
            print(f"[{key}] generated {params:,} parameters "
                  f"({data_bytes / 2**20:.0f} MiB) in {gen:.1f} s",
                  file=sys.stderr, flush=True)
            # Start cold-ish in the same way for every model: the data was
            # just written, so it is in the page cache (as after a download).
            secs, rss, err = run_import(args.quant_import,
                                        os.path.join(work, "in", "model.onnx"),
                                        os.path.join(work, "out"))
            print(f"[{key}] {err.strip()}", file=sys.stderr, flush=True)
            out = os.path.join(work, "out")
            st_bytes = os.path.getsize(os.path.join(out, "model.safetensors"))
            assert st_bytes >= data_bytes, (st_bytes, data_bytes)
            rows.append({
                "model": key,
                "shape": f"h{hidden} i{inter} L{layers} v{vocab}",
                "parameters": params,
                "external_data_bytes": data_bytes,
                "import_s": round(secs, 2),
                "peak_rss_mib": round(rss / 2**20, 1),
                "rss_over_data": round(rss / data_bytes, 3),
                "model_mlir_bytes": os.path.getsize(os.path.join(out,
                                                                 "model.mlir")),
            })
        finally:
            if args.keep:
                print(f"[{key}] kept {work}", file=sys.stderr)
            else:
                shutil.rmtree(work, ignore_errors=True)

    cols = list(rows[0])
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in cols]
    print("  ".join(c.rjust(w) for c, w in zip(cols, widths)))
    for r in rows:
        print("  ".join(str(r[c]).rjust(w) for c, w in zip(cols, widths)))
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            w.writerows(rows)
        print(f"wrote {args.csv}", file=sys.stderr)


if __name__ == "__main__":
    main()
