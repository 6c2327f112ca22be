"""Test helper: checks a Hugging Face checkpoint written by quant-export
against the packed model it came from.

  hf_check.py [--no-logits] MODEL_DIR ONNX IDS.npy HF_DIR...

For each HF_DIR: the independent decoders (hf_decode.py) give float16 weights
equal bit for bit to the project's dequantization of MODEL_DIR (packing.py);
quant-import --checkpoint HF_DIR ONNX gives back the same codes, scales,
zeros and g_idx; hf_decode's numpy forward from config.json matches
quant-run's logits on that import (max diff <= 1e-3); --no-logits skips
that.
"""
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "python"))
from quant_mlir import hf_decode, packing, safetensors_io  # noqa: E402


def run(*args):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("command failed: %s\n%s%s" % (" ".join(map(str, args)), p.stdout, p.stderr))
    return p


def project_layers(model_dir):
    """{layer: dict(w f16 [N, K], bits, zeros [G, N], raw tensors)} from the
    packed archive, via the project's own numpy reference of its layout."""
    t = safetensors_io.load(os.path.join(model_dir, "model.safetensors"))
    out = {}
    for line in open(os.path.join(model_dir, "model.mlir")):
        if "wq.quantized_linear" not in line:
            continue
        name = line.split('name = "')[1].split('"')[0]
        pk = line.split("#wq.packing<")[1].split(">")[0]
        bits = int(line.split("bits = ")[1].split(",")[0])
        group = int(line.split("group_size = ")[1].split(",")[0].split(">")[0])
        k = int(line.split(": (tensor<")[1].split(">")[0].split("x")[-2])
        zeros, scales = t.get(name + ".qzeros"), t[name + ".scales"]
        assert pk in ("gptq", "awq"), (name, pk)
        w = packing.dequantize(t[name + ".qweight"], scales, zeros, t.get(name + ".g_idx"),
                               bits, group, pk, k)
        if zeros is None:
            z = np.full(scales.shape, 1 << (bits - 1))
        elif pk == "gptq":
            z = packing.unpack_stream(zeros, bits, scales.shape[1], axis=1)
        else:
            z = packing.unpack_awq(zeros)
        out[name] = dict(w=w.astype(np.float16), bits=bits, zeros=z, packing=pk,
                         raw={s: t[name + s] for s in (".qweight", ".scales", ".qzeros", ".g_idx")
                              if name + s in t})
    return out


def name_prefix(layers):
    """What the importer put before the Hugging Face names (a wrapper's "m.")."""
    for name in layers:
        for blocks in ("model.layers.", "transformer.h.", "gpt_neox.layers."):
            if blocks in name:
                return name[: name.index(blocks)]
    return ""


def check_decode(layers, hf):
    decoded = hf_decode.decode(hf)
    prefix = name_prefix(layers)
    for name, l in layers.items():
        got = decoded[name[len(prefix):] + ".weight"]
        if got.shape != l["w"].shape or not np.array_equal(got.view(np.uint16), l["w"].view(np.uint16)):
            sys.exit("%s %s: decoded weights differ from the packed model's" % (hf, name))


def check_import(layers, hf, onnx, back):
    """The import holds the same codes, scales, zeros and g_idx: byte for
    byte when the model was gptq-packed, else (awq-packed, the import is
    gptq-packed) as the same unpacked values."""
    run("quant-import", "--checkpoint", hf, onnx, "-o", back)
    t = safetensors_io.load(os.path.join(back, "model.safetensors"))
    again = project_layers(back)
    for name, l in layers.items():
        if l["packing"] != "gptq":
            b = again[name]
            same = (np.array_equal(b["w"].view(np.uint16), l["w"].view(np.uint16))
                    and np.array_equal(b["zeros"], l["zeros"])
                    and np.array_equal(b["raw"][".scales"], l["raw"][".scales"])
                    and (".g_idx" in b["raw"]) == (".g_idx" in l["raw"]))
            if not same:
                sys.exit("%s: %s differs after export -> import" % (hf, name))
            continue
        for s in (".qweight", ".scales", ".qzeros", ".g_idx"):
            if (name + s in t) != (s in l["raw"]) or (s in l["raw"] and not np.array_equal(t[name + s], l["raw"][s])):
                sys.exit("%s: %s%s differs after export -> import" % (hf, name, s))


def check_logits(hf, back, ids):
    ref = hf_decode.forward(hf, np.load(ids))
    run("quant-run", back, "--eval-data", ids, "--dump-logits", back + ".npy", "--quiet")
    diff = np.abs(ref - np.load(back + ".npy")).max()
    if not diff <= 1e-3:
        sys.exit("%s: numpy logits differ from quant-run's by %g" % (hf, diff))
    return diff


def main():
    args = sys.argv[1:]
    logits = args[0] != "--no-logits"
    if not logits:
        args = args[1:]
    model, onnx, ids = args[:3]
    layers = project_layers(model)
    for hf in args[3:]:
        check_decode(layers, hf)
        back = hf.rstrip("/") + ".imp"
        check_import(layers, hf, onnx, back)
        note = ", logits max diff %.1e" % check_logits(hf, back, ids) if logits else ""
        print("%s: %d layers bit-exact, export->import identical%s"
              % (os.path.basename(hf.rstrip("/")), len(layers), note))


if __name__ == "__main__":
    main()
