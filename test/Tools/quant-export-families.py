# Checkpoints of every ../shared/data/hf-exports family (transformers 4.40.2
# Llama, Qwen2, GPT-2, GPT-NeoX; Llama 4.38.2 for the config): config.json
# derived from the IR equals the fixture's own config (Inputs/hf-configs) in
# every field the graph determines; quant-compile GPTQ or AWQ, then
# quant-export in each format the scheme allows (the others refuse): the
# independent decoders give the packed model's weights bit for bit, import
# gives them back, and a numpy forward written from transformers' modeling
# code gives quant-run's logits. GPT-NeoX's AWQ activation scales
# (mlp.act.scales) are re-created by the import: its logits and perplexity
# are the compiled model's once that has the checkpoint's float16 float
# tensors; a GPT-2 AWQ checkpoint given made-up mlp.act.scales imports them
# (numpy forward with ScaledActivation = quant-run).
# RUN: rm -rf %t && mkdir -p %t
# RUN: %python %s %t %src_root %shared_data/hf-exports | FileCheck %s
# CHECK: config gpt2-v4.40.2: 15 fields equal (activation_function, architectures, {{.*}}, n_embd, n_head, n_inner, n_layer, n_positions, {{.*}} tie_word_embeddings, vocab_size)
# CHECK: config gptneox-v4.40.2: 22 fields equal ({{.*}}hidden_act, {{.*}}layer_norm_eps, max_position_embeddings, model_type, num_attention_heads, num_hidden_layers, rope_scaling, rotary_emb_base, rotary_pct, tie_word_embeddings, use_parallel_residual, vocab_size); left to transformers' defaults: none
# CHECK: config llama-v4.38.2: 17 fields equal
# CHECK: config llama-v4.40.2: 17 fields equal
# CHECK: config qwen2-v4.40.2: 15 fields equal
# CHECK: llama-v4.40.2 gptq gptq: 14 layers bit-exact, export->import identical, logits max diff {{.*}} (imported); vLLM: gptq_marlin
# CHECK: llama-v4.40.2 gptq compressed-tensors: 14 layers bit-exact, export->import identical
# CHECK: qwen2-v4.40.2 awq awq: 14 layers bit-exact, export->import identical, logits max diff {{.*}}; vLLM: awq_marlin
# CHECK: qwen2-v4.40.2 awq gptq_v2: 14 layers bit-exact, export->import identical
# CHECK: gpt2-v4.40.2 gptq compressed-tensors: 8 layers bit-exact, export->import identical, logits max diff
# CHECK: gpt2-v4.40.2 gptq gptq_v2: 8 layers bit-exact, export->import identical
# CHECK: gpt2-v4.40.2 awq awq: 8 layers bit-exact, export->import identical, logits max diff {{.*}}; vLLM: awq_marlin
# CHECK: gpt2-v4.40.2 awq awq + act.scales: 2 divisions imported, logits max diff {{.*}}; re-exported as transformer.h.0.mlp.act.scales
# CHECK: gptneox-v4.40.2 gptq gptq: 8 layers bit-exact, export->import identical, logits max diff {{.*}} (imported); vLLM: gptq_marlin
# CHECK: gptneox-v4.40.2 gptq gptq_v2: 8 layers bit-exact, export->import identical
# CHECK: gptneox-v4.40.2 gptq compressed-tensors: 8 layers bit-exact, export->import identical; vLLM: CompressedTensorsWNA16
# CHECK: gptneox-v4.40.2 awq awq: 8 layers bit-exact, export->import identical with act.scales ({{.*}}vs compiled with f16 float tensors {{.*}}), logits max diff {{.*}} (imported), {{.*}} (compiled model); vLLM: awq_marlin
# CHECK: gptneox-v4.40.2 awq gptq: refused (activation scales)
# CHECK: done: 11 exports checked, 1 refused as expected
#
# `quant-export-families.py TMP SRC HF_EXPORTS --full` runs GPTQ and AWQ on
# every family with every format (docs/export.md's table); lit runs one
# method per family.
import json
import os
import subprocess
import sys

import numpy as np

tmp, src, root = sys.argv[1:4]
full = "--full" in sys.argv[4:]
here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "Inputs"))
from hf_check import check_decode, check_import, check_logits, project_layers  # noqa: E402
from quant_mlir import hf_decode, safetensors_io  # noqa: E402

FORMATS = ["gptq", "gptq_v2", "awq", "compressed-tensors"]
# Fields of the fixture's config that the graph does not hold: the dtype it
# was saved in (the checkpoint is float16), use_cache, and Llama's
# max_position_embeddings (its export computes the rotary angles in the
# graph for any length).
NOT_IN_GRAPH = {"torch_dtype", "use_cache", "transformers_version"}
NOT_IN_GRAPH_LLAMA = {"max_position_embeddings"}


def run(*args, ok=True):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if ok and p.returncode != 0:
        sys.exit("command failed: %s\n%s%s" % (" ".join(map(str, args)), p.stdout, p.stderr))
    return p


def onnx_of(fixture):
    return os.path.join(root, fixture, "nocache_op14", "model.onnx")


def same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1e-30)
    return a == b


# config.json against the fixture's own.
for fixture in sorted(os.listdir(root)):
    if not os.path.exists(onnx_of(fixture)):
        continue
    ref = json.load(open(os.path.join(here, "Inputs", "hf-configs", fixture + ".json")))
    ref.setdefault("tie_word_embeddings", True)  # PretrainedConfig's default
    model = os.path.join(tmp, fixture + "-rtn")
    run("quant-compile", onnx_of(fixture), "--method", "rtn", "--bits", "4", "--group-size", "32",
        "--scale-dtype", "f16", "--quiet", "-o", model)
    hf = model + ".hf"
    run("quant-export", model, "--format", "gptq_v2", "-o", hf)
    got = json.load(open(os.path.join(hf, "config.json")))
    skip = NOT_IN_GRAPH | (NOT_IN_GRAPH_LLAMA if ref["model_type"] == "llama" else set())
    equal, bad = [], []
    for key, value in sorted(ref.items()):
        if key in skip or key not in got:
            continue
        (equal if same(got[key], value) else bad).append(key)
    if bad:
        sys.exit("config %s: %s differ: %s" % (fixture, ", ".join(bad),
                 {k: (got[k], ref[k]) for k in bad}))
    absent = sorted(k for k in ref if k not in got and k not in skip)
    print("config %s: %d fields equal (%s); left to transformers' defaults: %s"
          % (fixture, len(equal), ", ".join(equal), ", ".join(absent) or "none"))

# Exports of each family.
rng = np.random.default_rng(0)
ids = os.path.join(tmp, "ids.npy")
calib = os.path.join(tmp, "calib.npy")
np.save(ids, rng.integers(0, 512, 24))
np.save(calib, rng.integers(0, 512, 4096))
plan = [("llama-v4.40.2", "gptq"), ("qwen2-v4.40.2", "awq"), ("gpt2-v4.40.2", "gptq"),
        ("gpt2-v4.40.2", "awq"), ("gptneox-v4.40.2", "gptq"), ("gptneox-v4.40.2", "awq")]
if full:
    plan = [(f, m) for f in dict(plan) for m in ("gptq", "awq")]
checked = refused = 0


def formats_of(fixture, method):
    """lit: the formats each family's scheme is checked in (the first with
    logits)."""
    return {("llama-v4.40.2", "gptq"): ["gptq", "compressed-tensors"],
            ("qwen2-v4.40.2", "awq"): ["awq", "gptq_v2"],
            ("gpt2-v4.40.2", "gptq"): ["compressed-tensors", "gptq_v2"],
            ("gpt2-v4.40.2", "awq"): ["awq"],
            ("gptneox-v4.40.2", "gptq"): ["gptq", "gptq_v2", "compressed-tensors"],
            ("gptneox-v4.40.2", "awq"): ["awq", "gptq"]}[fixture, method]


def perplexity(logits, ids):
    """exp of the mean next-token NLL, in float64."""
    x = logits[0].astype(np.float64)[:-1]
    x = x - x.max(-1, keepdims=True)
    nll = np.log(np.exp(x).sum(-1)) - x[np.arange(len(x)), ids[1:]]
    return float(np.exp(nll.mean()))


def rounded_like(model, back):
    """A copy of the compiled `model` whose float32 tensors are the import
    `back`'s where that holds them rounded to float16 (the checkpoint's
    copy); every other one must be the import's unchanged."""
    out = model + ".f16"
    os.makedirs(out)
    for f in os.listdir(model):
        if f.endswith(".mlir") or f == "model.safetensors":
            open(os.path.join(out, f), "wb").write(open(os.path.join(model, f), "rb").read())
    t = safetensors_io.load(os.path.join(model, "model.safetensors"))
    b = safetensors_io.load(os.path.join(back, "model.safetensors"))
    for name, a in t.items():
        if a.dtype != np.float32:
            continue
        r = a.astype(np.float16).astype(np.float32)
        assert name in b and b[name].dtype == np.float32 and (
            np.array_equal(b[name], r) or np.array_equal(b[name], a)), name
        t[name] = b[name]
    safetensors_io.save(os.path.join(out, "model.safetensors"), t)
    return out


def with_activation_scales(hf, layers, n_inner):
    """A copy of the GPT-2 AWQ checkpoint `hf` carrying AutoAWQ's
    ScaledActivation (awq/models/gpt2.py: mlp.act, c_fc's width) with
    scales in [0.5, 2): quant-import must divide c_proj's input by them."""
    out = hf + ".act"
    os.makedirs(out)
    for f in os.listdir(hf):
        if f != "model.safetensors":
            open(os.path.join(out, f), "wb").write(open(os.path.join(hf, f), "rb").read())
    t = safetensors_io.load(os.path.join(hf, "model.safetensors"))
    for i in range(layers):
        t["transformer.h.%d.mlp.act.scales" % i] = rng.uniform(0.5, 2.0, n_inner).astype(np.float16)
    safetensors_io.save(os.path.join(out, "model.safetensors"), t)
    return out

for fixture, method in plan:
    model = os.path.join(tmp, "%s-%s" % (fixture, method))
    args = ["quant-compile", onnx_of(fixture), "--method", method, "--bits", "4", "--group-size", "32",
            "--scale-dtype", "f16", "--calib-data", calib, "--calib-samples", "2", "--seq-len", "32",
            "--quiet", "-o", model]
    if method == "awq":
        args += ["--awq-mode", "gemm"]
    run(*args)
    layers = project_layers(model)
    sym = all((l["zeros"] == 1 << (l["bits"] - 1)).all() for l in layers.values()) and method == "gptq"
    act_scales = ".awq_scales" in open(os.path.join(model, "model.mlir")).read()
    for fmt in FORMATS if full else formats_of(fixture, method):
        hf = "%s.%s" % (model, fmt)
        p = run("quant-export", model, "--format", fmt, "-o", hf, ok=False)
        if act_scales and fmt != "awq":
            assert p.returncode != 0 and "AWQ activation scales" in p.stderr, p.stderr
            assert not os.path.exists(hf)
            refused += 1
            print("%s %s %s: refused (activation scales)" % (fixture, method, fmt))
            continue
        if fmt == "awq" and sym:
            assert p.returncode != 0 and "zero-point schemes only" in p.stderr, p.stderr
            assert not os.path.exists(hf)
            refused += 1
            print("%s %s %s: refused (symmetric)" % (fixture, method, fmt))
            continue
        if fmt == "gptq" and any((l["zeros"] == 0).any() for l in layers.values()):
            assert p.returncode != 0 and "cannot be stored by GPTQ v1" in p.stderr, p.stderr
            assert not os.path.exists(hf)
            refused += 1
            print("%s %s %s: refused (a zero point 0)" % (fixture, method, fmt))
            continue
        if p.returncode != 0:
            sys.exit("%s %s %s: %s" % (fixture, method, fmt, p.stderr))
        kernel = sorted({line.split("): ", 1)[1].split(" (")[0] for line in p.stderr.splitlines()
                         if "vLLM kernel" in line})
        check_decode(layers, hf)
        back = hf + ".imp"
        check_import(layers, hf, onnx_of(fixture), back)
        imported = "export->import identical"
        first = full or fmt == formats_of(fixture, method)[0]
        d_back = check_logits(hf, back, ids) if first else None
        d_model = None
        if full or act_scales:
            # The compiled model keeps float32 norms/embeddings: the float16
            # checkpoint differs from it by that rounding only.
            run("quant-run", model, "--eval-data", ids, "--dump-logits", model + ".npy", "--quiet")
            d_model = np.abs(hf_decode.forward(hf, np.load(ids)) - np.load(model + ".npy")).max()
            assert d_model <= 1e-2, (fixture, method, fmt, d_model)
        if act_scales:
            # ScaledActivation re-created: the import divides as the compiled
            # model does, so both give the same logits / perplexity (up to
            # the float16 rounding of the float tensors).
            n_div = open(os.path.join(back, "model.mlir")).read().count(".awq_scales")
            assert n_div == open(os.path.join(model, "model.mlir")).read().count(".awq_scales") > 0
            # Only by the checkpoint's float16 rounding of the float tensors:
            # the compiled model with those rounded gives the import's logits.
            m16 = rounded_like(model, back)
            run("quant-run", m16, "--eval-data", ids, "--dump-logits", m16 + ".npy", "--quiet")
            lm, l16, lb = np.load(model + ".npy"), np.load(m16 + ".npy"), np.load(back + ".npy")
            pm, p16, pb = (perplexity(x, np.load(ids)) for x in (lm, l16, lb))
            assert np.abs(l16 - lb).max() <= 1e-5 and abs(p16 - pb) <= 1e-6 * pb, (np.abs(l16 - lb).max(), p16, pb)
            imported += (" with act.scales (logits vs compiled %.1e, vs compiled with f16 float tensors %.1e;"
                         " perplexity %.6f, f16 %.6f, imported %.6f)"
                         % (np.abs(lm - lb).max(), np.abs(l16 - lb).max(), pm, p16, pb))
        checked += 1
        diffs = ", ".join("%.1e (%s)" % (d, what) for d, what in ((d_back, "imported"), (d_model, "compiled model"))
                          if d is not None)
        print("%s %s %s: %d layers bit-exact, %s%s; vLLM: %s"
              % (fixture, method, fmt, len(layers), imported,
                 ", logits max diff " + diffs if diffs else "", " | ".join(kernel)))
        if fixture.startswith("gpt2") and fmt == "awq" and not act_scales:
            # GPT-2 AutoAWQ checkpoints may carry mlp.act.scales (this
            # project's AWQ pass folds GPT-2's instead): a made-up one.
            cfg = json.load(open(os.path.join(hf, "config.json")))
            hf_act = with_activation_scales(hf, cfg["n_layer"], cfg["n_inner"] or 4 * cfg["n_embd"])
            check_import(layers, hf_act, onnx_of(fixture), hf_act + ".imp")
            n_div = open(os.path.join(hf_act + ".imp", "model.mlir")).read().count(".awq_scales")
            assert n_div == cfg["n_layer"], n_div
            d_act = check_logits(hf_act, hf_act + ".imp", ids)
            moved = np.abs(np.load(hf_act + ".imp.npy") - hf_decode.forward(hf, np.load(ids))).max()
            assert moved > 1e-2, moved  # the scales matter
            # Exported again: the awq format writes them back under their
            # AutoAWQ names, the others refuse.
            again = hf_act + ".again"
            run("quant-export", hf_act + ".imp", "--format", "awq", "-o", again)
            t_in = safetensors_io.load(os.path.join(hf_act, "model.safetensors"))
            t_out = safetensors_io.load(os.path.join(again, "model.safetensors"))
            names = sorted(n for n in t_out if n.endswith(".act.scales"))
            assert names == sorted(n for n in t_in if n.endswith(".act.scales")) and all(
                np.array_equal(t_out[n], t_in[n]) for n in names), names
            p = run("quant-export", hf_act + ".imp", "--format", "gptq_v2", "-o", again + "2", ok=False)
            assert p.returncode != 0 and "AWQ activation scales" in p.stderr and not os.path.exists(again + "2")
            print("%s %s %s + act.scales: %d divisions imported, logits max diff %.1e (the scales move them by %.1e);"
                  " re-exported as %s" % (fixture, method, fmt, n_div, d_act, moved, names[0]))
print("done: %d exports checked, %d refused as expected" % (checked, refused))
