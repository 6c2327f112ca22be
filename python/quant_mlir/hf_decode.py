#!/usr/bin/env python3
"""Independent readers of Hugging Face quantized checkpoints, and a numpy
forward of the Llama / Qwen2 / GPT-2 / GPT-NeoX decoder they describe.

Written from the consumers' own dequantization code, sharing nothing with the
C++ exporter (lib/Export):

* AutoGPTQ (auto_gptq/nn_modules/qlinear/qlinear_cuda_old.py, the torch path
  of ``QuantLinear.forward``): ``qweight`` unpacked with shifts of
  ``arange(0, 32, bits)`` (3 bits: the bit stream), ``zeros + 1`` for
  ``checkpoint_format: gptq`` (v2 stores the zero itself),
  ``scales[g_idx] * (weight - zeros[g_idx])`` in float16.
* AutoAWQ GEMM (awq/utils/packing_utils.py ``unpack_awq``,
  ``reverse_awq_order`` with AWQ_REVERSE_ORDER = [0, 4, 1, 5, 2, 6, 3, 7],
  ``dequantize_gemm``): ``(iweight - izeros) * scales``.
* compressed-tensors pack-quantized (compressors/quantized_compressors/
  pack_quantized.py ``unpack_from_int32``, quantization/lifecycle/forward.py
  ``dequantize``): ``32 // bits`` values per int32 from the least significant
  bits, minus 2^(bits-1), then ``(q - zero_point) * scale``.

Usage: ``hf_decode.py HF_DIR --ids ids.npy --logits out.npy`` writes the numpy
forward's logits [1, n, vocab] (float32) for the token ids.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from quant_mlir import safetensors_io  # noqa: E402


def load_tensors(hf_dir):
    """All tensors of the checkpoint (one file or an index of shards)."""
    index = os.path.join(hf_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        files = sorted(set(json.load(open(index))["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    out = {}
    for f in files:
        out.update(safetensors_io.load(os.path.join(hf_dir, f)))
    return out


def quant_config(hf_dir):
    return json.load(open(os.path.join(hf_dir, "config.json")))["quantization_config"]


def _unpack_stream(words, bits, length, axis):
    """Little-endian bit stream of `bits`-bit fields along `axis` of int32
    words (AutoGPTQ's layout for every bit width)."""
    w = np.ascontiguousarray(np.moveaxis(words.astype("<i4"), axis, -1))
    raw = np.unpackbits(w.view(np.uint8), axis=-1, bitorder="little")
    raw = raw[..., : length * bits].reshape(w.shape[:-1] + (length, bits))
    vals = (raw.astype(np.int64) << np.arange(bits)).sum(-1)
    return np.moveaxis(vals, -1, axis)


def _unpack_shifts(words, bits, length, axis):
    """AutoGPTQ's own unpack for 2/4/8 bits: (w >> arange(0, 32, bits)) & mask."""
    w = words.astype(np.int64) & 0xFFFFFFFF
    shifts = np.arange(0, 32, bits)
    if axis == 0:
        v = (w[:, None, :] >> shifts[None, :, None]) & ((1 << bits) - 1)
        return v.reshape(-1, w.shape[1])[:length]
    v = (w[:, :, None] >> shifts[None, None, :]) & ((1 << bits) - 1)
    return v.reshape(w.shape[0], -1)[:, :length]


def gptq_layer_config(qc, layer):
    """The layer's GPTQ config: GPTQModel's `dynamic` (gptqmodel
    quantization/config.py; vLLM get_dynamic_override) overrides the base
    bits/group_size/sym/desc_act of modules whose name re.match-es a
    "+:pattern" (or a bare pattern); "-:pattern" leaves the module in float
    (None)."""
    for key, override in qc.get("dynamic", {}).items():
        skip = key.startswith("-:")
        pattern = key[2:] if key[:2] in ("-:", "+:") else key
        if re.match(pattern, layer):
            return None if skip else dict(qc, **override)
    return qc


def decode_gptq(t, layer, qc, k, n):
    qc = gptq_layer_config(qc, layer)
    bits = qc["bits"]
    unpack = _unpack_stream if bits == 3 else _unpack_shifts
    q = unpack(t[layer + ".qweight"], bits, k, 0)            # [K, N]
    g_idx = t[layer + ".g_idx"].astype(np.int64)
    groups = t[layer + ".scales"].shape[0]
    z = unpack(t[layer + ".qzeros"], bits, n, 1)             # [G, N]
    if qc.get("checkpoint_format", "gptq") == "gptq":
        z = z + 1
    assert z.shape == (groups, n)
    scales = t[layer + ".scales"].astype(np.float16)
    w = scales[g_idx] * (q - z[g_idx]).astype(np.float16)    # [K, N] f16
    return w.T


AWQ_REVERSE_ORDER = [0, 4, 1, 5, 2, 6, 3, 7]


def _unpack_awq(words):
    w = words.astype(np.int64) & 0xFFFFFFFF
    v = (w[:, :, None] >> np.arange(0, 32, 4)[None, None, :]) & 0xF
    v = v.reshape(w.shape[0], -1)
    order = np.arange(v.shape[1]).reshape(-1, 8)[:, AWQ_REVERSE_ORDER].reshape(-1)
    return v[:, order]


def decode_awq(t, layer, qc, k, n):
    assert qc["bits"] == 4 and qc.get("version", "gemm").lower() == "gemm"
    q = _unpack_awq(t[layer + ".qweight"])                   # [K, N]
    z = _unpack_awq(t[layer + ".qzeros"])                    # [G, N]
    scales = t[layer + ".scales"].astype(np.float16)
    gs = k if qc["group_size"] == -1 else qc["group_size"]
    zk = np.repeat(z, gs, axis=0)
    sk = np.repeat(scales, gs, axis=0)
    return ((q - zk).astype(np.float16) * sk).T


def _unpack_ct(words, bits, shape, packed_dim):
    pf = 32 // bits
    w = words.astype(np.int64) & 0xFFFFFFFF
    mask = (1 << bits) - 1
    if packed_dim == 1:
        out = np.zeros((w.shape[0], w.shape[1] * pf), np.int64)
        for i in range(pf):
            out[:, i::pf] = (w >> (bits * i)) & mask
        out = out[:, : shape[1]]
    else:
        out = np.zeros((w.shape[0] * pf, w.shape[1]), np.int64)
        for i in range(pf):
            out[i::pf, :] = (w >> (bits * i)) & mask
        out = out[: shape[0], :]
    return out - (1 << (bits - 1))


def _ct_weights_config(qc, layer):
    for group in qc["config_groups"].values():
        for target in group["targets"]:
            if target in ("Linear", layer):
                return group["weights"]
    raise KeyError(layer)


def decode_ct(t, layer, qc, k, n):
    wc = _ct_weights_config(qc, layer)
    bits = wc["num_bits"]
    shape = [int(x) for x in t[layer + ".weight_shape"]]
    assert shape == [n, k], (layer, shape)
    q = _unpack_ct(t[layer + ".weight_packed"], bits, shape, 1)  # [N, K] signed
    scale = t[layer + ".weight_scale"].astype(np.float16)        # [N, G]
    if wc["symmetric"]:
        zp = np.zeros(scale.shape, np.int64)
    else:
        zp = _unpack_ct(t[layer + ".weight_zero_point"], bits, scale.shape, 0)
    if layer + ".weight_g_idx" in t:
        g = t[layer + ".weight_g_idx"].astype(np.int64)
    elif wc["strategy"] == "channel":
        g = np.zeros(k, np.int64)
    else:
        g = np.arange(k) // wc["group_size"]
    return (q - zp[:, g]).astype(np.float16) * scale[:, g]


def decode(hf_dir):
    """{tensor name: float16 array}: every quantized layer's `<layer>.weight`
    [N, K] dequantized as its consumer would, plus the float tensors."""
    t = load_tensors(hf_dir)
    qc = quant_config(hf_dir)
    method = qc["quant_method"]
    out = {}
    for name, a in t.items():
        if name.endswith(".qweight") or name.endswith(".weight_packed"):
            layer = name.rsplit(".", 1)[0]
            if method == "gptq":
                k = a.shape[0] * 32 // gptq_layer_config(qc, layer)["bits"]
                n = a.shape[1]
                out[layer + ".weight"] = decode_gptq(t, layer, qc, k, n)
            elif method == "awq":
                k, n = a.shape[0], a.shape[1] * 8
                out[layer + ".weight"] = decode_awq(t, layer, qc, k, n)
            else:
                n, k = [int(x) for x in t[layer + ".weight_shape"]]
                out[layer + ".weight"] = decode_ct(t, layer, qc, k, n)
        elif a.dtype == np.float16 and (name.endswith(".act.scales") or not any(
                name.endswith(s) for s in (".scales", ".weight_scale"))):
            out[name] = a
    return out


def _layer_norm(x, g, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def _attention(q, k, v):
    """Causal softmax attention; q, k, v [heads, s, d]."""
    s, d = q.shape[1], q.shape[2]
    a = q @ k.transpose(0, 2, 1) / np.sqrt(d) + np.triu(np.full((s, s), -np.inf), 1)
    a = np.exp(a - a.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    return (a @ v).transpose(1, 0, 2).reshape(s, -1)


_ACT = {
    # transformers activations.py: NewGELUActivation, GELUActivation (erf).
    "gelu_new": lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))),
    "gelu_pytorch_tanh": lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))),
    "gelu": lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / np.sqrt(2))),
}


def _forward_gpt2(cfg, w, ids, quantized):
    """modeling_gpt2.py GPT2LMHeadModel: learned positions, pre-LayerNorm,
    Conv1D weights [in, out] (a quantized layer's decoded weight is [out, in],
    as AutoGPTQ's QuantLinear)."""
    heads, eps = cfg["n_head"], cfg["layer_norm_epsilon"]
    act = _ACT[cfg.get("activation_function", "gelu_new")]

    def linear(x, name):
        wt = w[name + ".weight"]
        y = x @ (wt.T if name in quantized else wt)
        return y + w[name + ".bias"]

    s = len(ids)
    x = w["transformer.wte.weight"][ids] + w["transformer.wpe.weight"][np.arange(s)]
    for i in range(cfg["n_layer"]):
        p = "transformer.h.%d." % i
        h = _layer_norm(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps)
        q, k, v = np.split(linear(h, p + "attn.c_attn"), 3, -1)
        q, k, v = (t.reshape(s, heads, -1).transpose(1, 0, 2) for t in (q, k, v))
        x = x + linear(_attention(q, k, v), p + "attn.c_proj")
        h = _layer_norm(x, w[p + "ln_2.weight"], w[p + "ln_2.bias"], eps)
        a = act(linear(h, p + "mlp.c_fc"))
        if p + "mlp.act.scales" in w:  # AutoAWQ's ScaledActivation (awq/models/gpt2.py)
            a = a / w[p + "mlp.act.scales"]
        x = x + linear(a, p + "mlp.c_proj")
    x = _layer_norm(x, w["transformer.ln_f.weight"], w["transformer.ln_f.bias"], eps)
    head = w["transformer.wte.weight"] if cfg.get("tie_word_embeddings", True) else w["lm_head.weight"]
    return (x @ head.T)[None]


def _forward_gpt_neox(cfg, w, ids):
    """modeling_gpt_neox.py GPTNeoXForCausalLM: fused query_key_value viewed
    as [s, heads, 3 * head_dim], rotary on the first rotary_pct of each head
    (rotate_half), parallel or sequential residual."""
    hidden, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    d = hidden // heads
    rot = int(d * cfg.get("rotary_pct", 0.25))
    base, eps = cfg.get("rotary_emb_base", 10000), cfg["layer_norm_eps"]
    act = _ACT[cfg.get("hidden_act", "gelu")]

    def linear(x, name):
        y = x @ w[name + ".weight"].T
        return y + w[name + ".bias"] if name + ".bias" in w else y

    s = len(ids)
    inv = 1.0 / base ** (np.arange(0, rot, 2) / rot)
    ang = np.arange(s)[:, None] * inv[None, :]
    cos, sin = np.cos(np.concatenate([ang, ang], -1)), np.sin(np.concatenate([ang, ang], -1))

    def rope(t):  # [h, s, d]: rotate the first `rot` dims
        r, rest = t[..., :rot], t[..., rot:]
        half = np.concatenate([-r[..., rot // 2:], r[..., : rot // 2]], -1)
        return np.concatenate([r * cos + half * sin, rest], -1)

    x = w["gpt_neox.embed_in.weight"][ids]
    for i in range(cfg["num_hidden_layers"]):
        p = "gpt_neox.layers.%d." % i
        h = _layer_norm(x, w[p + "input_layernorm.weight"], w[p + "input_layernorm.bias"], eps)
        qkv = linear(h, p + "attention.query_key_value").reshape(s, heads, 3 * d).transpose(1, 0, 2)
        q, k, v = rope(qkv[..., :d]), rope(qkv[..., d:2 * d]), qkv[..., 2 * d:]
        attn = linear(_attention(q, k, v), p + "attention.dense")

        def mlp(y):
            g = _layer_norm(y, w[p + "post_attention_layernorm.weight"],
                            w[p + "post_attention_layernorm.bias"], eps)
            a = act(linear(g, p + "mlp.dense_h_to_4h"))
            if p + "mlp.act.scales" in w:  # AWQ's ScaledActivation
                a = a / w[p + "mlp.act.scales"]
            return linear(a, p + "mlp.dense_4h_to_h")
        if cfg.get("use_parallel_residual", True):
            x = x + attn + mlp(x)
        else:
            x = x + attn
            x = x + mlp(x)
    x = _layer_norm(x, w["gpt_neox.final_layer_norm.weight"], w["gpt_neox.final_layer_norm.bias"], eps)
    head = w["gpt_neox.embed_in.weight"] if cfg.get("tie_word_embeddings") else w["embed_out.weight"]
    return (x @ head.T)[None]


def quantized_layers(hf_dir):
    """The module paths the checkpoint holds quantized."""
    return {n.rsplit(".", 1)[0] for n in load_tensors(hf_dir)
            if n.endswith(".qweight") or n.endswith(".weight_packed")}


def forward(hf_dir, ids, weights=None):
    """Logits [1, n, vocab] (float64) of a Llama / Qwen2 / GPT-2 / GPT-NeoX
    decoder as transformers computes it, from config.json and decoded
    weights."""
    cfg = json.load(open(os.path.join(hf_dir, "config.json")))
    w = {k: v.astype(np.float64) for k, v in (weights or decode(hf_dir)).items()}
    ids = np.asarray(ids)
    if cfg["model_type"] == "gpt2":
        return _forward_gpt2(cfg, w, ids, quantized_layers(hf_dir))
    if cfg["model_type"] == "gpt_neox":
        return _forward_gpt_neox(cfg, w, ids)
    hidden, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads", heads)
    d = hidden // heads
    eps, theta = cfg["rms_norm_eps"], cfg.get("rope_theta", 10000.0)

    def norm(x, g):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * g

    def linear(x, name):
        y = x @ w[name + ".weight"].T
        return y + w[name + ".bias"] if name + ".bias" in w else y

    x = w["model.embed_tokens.weight"][np.asarray(ids)]
    s = x.shape[0]
    inv = 1.0 / theta ** (np.arange(0, d, 2) / d)
    ang = np.arange(s)[:, None] * inv[None, :]
    cos, sin = np.cos(np.concatenate([ang, ang], -1)), np.sin(np.concatenate([ang, ang], -1))

    def rope(t):  # [h, s, d], rotate_half
        half = np.concatenate([-t[..., d // 2:], t[..., : d // 2]], -1)
        return t * cos + half * sin

    mask = np.triu(np.full((s, s), -np.inf), 1)
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % i
        h = norm(x, w[p + "input_layernorm.weight"])
        q = linear(h, p + "self_attn.q_proj").reshape(s, heads, d).transpose(1, 0, 2)
        k = linear(h, p + "self_attn.k_proj").reshape(s, kv, d).transpose(1, 0, 2)
        v = linear(h, p + "self_attn.v_proj").reshape(s, kv, d).transpose(1, 0, 2)
        q, k = rope(q), rope(k)
        k, v = np.repeat(k, heads // kv, 0), np.repeat(v, heads // kv, 0)
        a = q @ k.transpose(0, 2, 1) / np.sqrt(d) + mask
        a = np.exp(a - a.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        o = (a @ v).transpose(1, 0, 2).reshape(s, hidden)
        x = x + linear(o, p + "self_attn.o_proj")
        h = norm(x, w[p + "post_attention_layernorm.weight"])
        g = linear(h, p + "mlp.gate_proj")
        x = x + linear(g / (1 + np.exp(-g)) * linear(h, p + "mlp.up_proj"), p + "mlp.down_proj")
    x = norm(x, w["model.norm.weight"])
    head = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else w["lm_head.weight"]
    return (x @ head.T)[None]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("hf_dir")
    ap.add_argument("--ids", required=True)
    ap.add_argument("--logits", required=True)
    a = ap.parse_args(argv)
    np.save(a.logits, forward(a.hf_dir, np.load(a.ids)).astype(np.float32))
    return 0


if __name__ == "__main__":
    sys.exit(main())
