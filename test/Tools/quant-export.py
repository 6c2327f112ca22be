# quant-export / quant-import --checkpoint on generated decoders: for every
# bits/group/sym/act-order combination each format allows, the independent
# decoders (python/quant_mlir/hf_decode.py) give float16 weights equal bit for
# bit to the project's dequantization of the packed model (packing.py); the
# formats that cannot hold a scheme refuse it, naming the layer, and write
# nothing; export -> import gives the same codes/scales/zeros/g_idx; a numpy
# forward from config.json gives quant-run's logits.
# RUN: rm -rf %t && mkdir -p %t
# RUN: %python %s %t %src_root | FileCheck %s
# CHECK: matrix done: 60 exports, 13 refused as expected
# CHECK: llama: config.json num_key_value_heads 2 rope_theta 10000 eps 1e-05
# CHECK: logits llama
# CHECK: qwen2: config.json model_type qwen2 tie True
# CHECK: logits qwen2
# CHECK: perplexity export->import
import json
import os
import subprocess
import sys

import numpy as np

tmp, src = sys.argv[1:3]
sys.path.insert(0, os.path.join(src, "python"))
from quant_mlir import hf_decode, safetensors_io  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "Inputs"))
from hf_check import project_layers  # noqa: E402

FORMATS = ["gptq", "gptq_v2", "awq", "compressed-tensors"]


def run(*args, ok=True):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if ok and p.returncode != 0:
        sys.exit("command failed: %s\n%s%s" % (" ".join(map(str, args)), p.stdout, p.stderr))
    return p


def fixture(name, *flags):
    out = os.path.join(tmp, name)
    run(sys.executable, os.path.join(src, "python/quant_mlir/export_fixtures.py"), *flags, "-o", out)
    return os.path.join(out, "model.onnx")


# K = 128 and N = 64..256 so that some layers fit Marlin; GQA (2 kv heads).
llama = fixture("llama", "--family", "llama", "--hidden", "128", "--intermediate", "256",
                "--layers", "1", "--heads", "4", "--kv-heads", "2", "--vocab", "128")
qwen2 = fixture("qwen2", "--family", "qwen2", "--hidden", "64", "--intermediate", "128",
                "--layers", "1", "--heads", "2", "--vocab", "96", "--tie")
rng = np.random.default_rng(0)
np.save(os.path.join(tmp, "ids.npy"), rng.integers(0, 96, 2048))
np.save(os.path.join(tmp, "ids24.npy"), rng.integers(0, 96, 24))
ids = os.path.join(tmp, "ids.npy")


def compile_(onnx, out, bits, group, sym, act):
    method = "gptq" if act else "rtn"
    args = ["quant-compile", onnx, "--method", method, "--bits", bits, "--group-size", group,
            "--scale-dtype", "f16", "--quiet", "-o", out]
    if not sym:
        args.append("--zero-point")
    if act:
        args += ["--desc-act", "--calib-data", ids, "--calib-samples", "4", "--seq-len", "32"]
    run(*args)


def expected_refusal(fmt, layers, sym, act):
    l0 = next(iter(layers.values()))
    if fmt == "awq":
        if l0["bits"] != 4:
            return "AutoAWQ GEMM holds 4-bit codes only"
        if sym:
            return "AutoAWQ GEMM holds zero-point schemes only"
        if act:
            return "AutoAWQ GEMM has no g_idx"
    if fmt == "gptq":
        for name, l in layers.items():
            if (l["zeros"] == 0).any():
                return "cannot be stored by GPTQ v1"
    return None


SCHEMES = [(b, 32, s, False) for b in (2, 3, 4, 8) for s in (True, False)]
SCHEMES += [(b, -1, s, False) for b in (4, 8) for s in (True, False)]
SCHEMES += [(4, 32, False, True), (3, 64, False, True), (8, -1, True, True)]
exports = refused = 0
matrix = []
for bits, group, sym, act in SCHEMES:
    tag = "b%d_g%d_%s%s" % (bits, group, "sym" if sym else "asym", "_act" if act else "")
    model = os.path.join(tmp, tag)
    compile_(llama, model, bits, group, sym, act)
    layers = project_layers(model)
    for fmt in FORMATS:
        exports += 1
        hf = os.path.join(tmp, tag + "." + fmt)
        p = run("quant-export", model, "--format", fmt, "-o", hf, ok=False)
        why = expected_refusal(fmt, layers, sym, act)
        if why:
            assert p.returncode != 0, (tag, fmt, "exported but should refuse")
            assert why in p.stderr and "layer 'model.layers.0." in p.stderr, (tag, fmt, p.stderr)
            assert not os.path.exists(hf), (tag, fmt, "refusal left output")
            refused += 1
            matrix.append((tag, fmt, "refused: " + why))
            continue
        assert p.returncode == 0, (tag, fmt, p.stderr)
        decoded = hf_decode.decode(hf)
        for name, l in layers.items():
            got = decoded[name + ".weight"]
            assert got.shape == l["w"].shape, (tag, fmt, name)
            if not np.array_equal(got.view(np.uint16), l["w"].view(np.uint16)):
                bad = int((got.view(np.uint16) != l["w"].view(np.uint16)).sum())
                sys.exit("%s %s %s: %d decoded weights differ" % (tag, fmt, name, bad))
        # Back in: the same codes, scales, zeros and g_idx, byte for byte.
        back = os.path.join(tmp, tag + "." + fmt + ".imp")
        run("quant-import", "--checkpoint", hf, llama, "-o", back)
        t = safetensors_io.load(os.path.join(back, "model.safetensors"))
        for name, l in layers.items():
            for s, a in l["raw"].items():
                assert name + s in t and np.array_equal(t[name + s], a), (tag, fmt, name + s)
            for s in (".qzeros", ".g_idx"):
                assert (name + s in t) == (s in l["raw"]), (tag, fmt, name + s)
        kernels = sorted({line.split("): ", 1)[1] for line in p.stderr.splitlines()
                          if "vLLM kernel" in line})
        matrix.append((tag, fmt, " | ".join(k.split(" (")[0].split(":")[0] for k in kernels)))
for row in matrix:
    print("%-18s %-19s %s" % row)
print("matrix done: %d exports, %d refused as expected" % (exports, refused))

cfg = json.load(open(os.path.join(tmp, "b4_g32_asym.gptq/config.json")))
print("llama: config.json num_key_value_heads %d rope_theta %g eps %g"
      % (cfg["num_key_value_heads"], cfg["rope_theta"], cfg["rms_norm_eps"]))
qc = json.load(open(os.path.join(tmp, "b4_g32_asym.gptq/quantize_config.json")))
assert qc["checkpoint_format"] == "gptq" and qc["bits"] == 4 and qc["group_size"] == 32 and not qc["sym"]

# Logits: numpy forward from config.json + decoded weights vs quant-run on the
# checkpoint imported back (the same float16 weights), and vs the compiled
# model itself (whose unquantized tensors are float32, not float16).
ids24 = os.path.join(tmp, "ids24.npy")


def logits(model_dir, out):
    run("quant-run", model_dir, "--eval-data", ids24, "--dump-logits", out, "--quiet")
    return np.load(out)


def check_logits(label, model, hf, back):
    ref = hf_decode.forward(hf, np.load(ids24))
    d_back = np.abs(ref - logits(back, back + ".npy")).max()
    d_model = np.abs(ref - logits(model, model + ".npy")).max()
    assert d_back <= 1e-3, (label, d_back)
    assert d_model <= 1e-2, (label, d_model)
    print("logits %s: max |numpy - quant-run| %.2e on the imported checkpoint, %.2e on the "
          "compiled model" % (label, d_back, d_model))


tag = "b4_g32_asym_act"
check_logits("llama", os.path.join(tmp, tag), os.path.join(tmp, tag + ".compressed-tensors"),
             os.path.join(tmp, tag + ".compressed-tensors.imp"))

qmodel = os.path.join(tmp, "qwen2-b4")
compile_(qwen2, qmodel, 4, 32, False, False)
qhf = os.path.join(tmp, "qwen2-b4.awq")
run("quant-export", qmodel, "--format", "awq", "-o", qhf)
qcfg = json.load(open(os.path.join(qhf, "config.json")))
print("qwen2: config.json model_type %s tie %s" % (qcfg["model_type"], qcfg["tie_word_embeddings"]))
assert qcfg["quantization_config"]["quant_method"] == "awq"
assert "lm_head.weight" not in hf_decode.load_tensors(qhf)
qback = qhf + ".imp"
run("quant-import", "--checkpoint", qhf, qwen2, "-o", qback)
check_logits("qwen2", qmodel, qhf, qback)


def perplexity(model_dir):
    p = run("quant-run", model_dir, "--eval-data", ids, "--seq-len", "64", "--max-windows", "8",
            "--json", "--quiet")
    return json.loads(p.stdout)["perplexity"]


p0 = perplexity(os.path.join(tmp, "b4_g32_sym"))
p1 = perplexity(os.path.join(tmp, "b4_g32_sym.gptq.imp"))
assert abs(p1 - p0) <= 1e-4 * p0, (p0, p1)
print("perplexity export->import %.6f vs %.6f (rel %.1e)" % (p0, p1, abs(p1 - p0) / p0))
