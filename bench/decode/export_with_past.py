#!/usr/bin/env python3
"""Exports the with-past ONNX graph of a Llama model directory for bench/decode.

Reads DIR/config.json and DIR/model.onnx (an export_fixtures.py or
llama2c_to_onnx.py model: models.LlamaForCausalLM, HF parameter names),
rebuilds the torch model with the ONNX file's weights and exports
  input_ids [B, S], past_key_values.N.key/value [B, Hkv, P, D]
    -> logits [B, S, V], present.N.key/value [B, Hkv, P + S, D]
the way transformers' with-past exports look (keys after RoPE, before the
GQA head repeat; positions P..P+S-1), so onnxruntime decodes the same model
with its own KV cache.

  /usr/bin/python3 bench/decode/export_with_past.py DIR -o OUT_DIR [--external-data]
"""
import argparse
import json
import math
import os
import shutil
import sys

import numpy as np
import onnx
import torch
from onnx import numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))
from quant_mlir.models import DecoderConfig, apply_rotary, build_model, repeat_kv  # noqa: E402


class WithPast(torch.nn.Module):
    """models.LlamaForCausalLM's forward over a KV cache (same weights)."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids, *past):
        m = self.lm.model
        x = m.embed_tokens(input_ids)
        b, s = input_ids.shape
        presents = []
        for i, layer in enumerate(m.layers):
            att = layer.self_attn
            h = layer.input_layernorm(x)
            q = att.q_proj(h).view(b, s, att.num_heads, att.head_dim).transpose(1, 2)
            k = att.k_proj(h).view(b, s, att.num_kv_heads, att.head_dim).transpose(1, 2)
            v = att.v_proj(h).view(b, s, att.num_kv_heads, att.head_dim).transpose(1, 2)
            pk, pv = past[2 * i], past[2 * i + 1]
            p = pk.shape[2]
            t = torch.arange(s).to(att.rotary_emb.inv_freq.dtype) + p
            freqs = t[:, None] * att.rotary_emb.inv_freq[None, :]
            emb = torch.cat((freqs, freqs), dim=-1)
            q, k = apply_rotary(q, k, emb.cos(), emb.sin())
            k = torch.cat((pk, k), dim=2)
            v = torch.cat((pv, v), dim=2)
            presents += [k, v]
            n_rep = att.num_heads // att.num_kv_heads
            kk, vv = repeat_kv(k, n_rep), repeat_kv(v, n_rep)
            scores = torch.matmul(q, kk.transpose(-1, -2)) * (1.0 / math.sqrt(att.head_dim))
            qpos = torch.arange(s) + p
            kpos = torch.arange(k.shape[2])
            future = kpos[None, :] > qpos[:, None]
            scores = scores.masked_fill(future, torch.finfo(scores.dtype).min)
            o = torch.matmul(torch.softmax(scores, dim=-1), vv)
            o = o.transpose(1, 2).reshape(b, s, att.num_heads * att.head_dim)
            x = x + att.o_proj(o)
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        return (self.lm.lm_head(m.norm(x)), *presents)


def load(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        meta = json.load(f)
    if meta.get("family", "llama") != "llama":
        raise SystemExit("export_with_past.py: only llama models (family %r)" % meta.get("family"))
    fields = DecoderConfig.__dataclass_fields__
    cfg = DecoderConfig(**{k: v for k, v in meta.items() if k in fields})
    lm = build_model(cfg)
    proto = onnx.load(os.path.join(model_dir, "model.onnx"))
    weights = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    state = lm.state_dict()
    missing = []
    for name, tensor in state.items():
        if name in weights and tuple(weights[name].shape) == tuple(tensor.shape):
            tensor.copy_(torch.from_numpy(np.array(weights[name])))
        elif not (cfg.tie_word_embeddings and name == "lm_head.weight"):
            missing.append(name)
    if missing:
        raise SystemExit("export_with_past.py: %s lacks %s" % (model_dir, ", ".join(missing[:4])))
    return cfg, lm


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("-o", "--out-dir", required=True)
    ap.add_argument("--external-data", action="store_true")
    a = ap.parse_args()
    cfg, lm = load(a.model_dir)
    wrapped = WithPast(lm).eval()
    os.makedirs(a.out_dir, exist_ok=True)
    # Traced with a non-empty past so the concatenations stay general.
    ids = torch.tensor([[1, 2]], dtype=torch.int64)
    past = [torch.zeros(1, cfg.num_kv_heads, 3, cfg.head_dim) for _ in range(2 * cfg.num_layers)]
    names = []
    for i in range(cfg.num_layers):
        names += [f"past_key_values.{i}.key", f"past_key_values.{i}.value"]
    outs = ["logits"] + [n.replace("past_key_values", "present") for n in names]
    axes = {"input_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"}}
    for n in names:
        axes[n] = {0: "batch", 2: "past"}
    for n in outs[1:]:
        axes[n] = {0: "batch", 2: "total"}
    # Its own directory: over 2 GiB (the 1B model) torch writes one external
    # file per tensor beside the graph.
    tmp_dir = os.path.join(a.out_dir, ".export-tmp")
    os.makedirs(tmp_dir, exist_ok=True)
    tmp = os.path.join(tmp_dir, "model.onnx")
    with torch.no_grad():
        torch.onnx.export(wrapped, (ids, *past), tmp, input_names=["input_ids"] + names,
                          output_names=outs, dynamic_axes=axes, opset_version=17,
                          do_constant_folding=False)
    proto = onnx.load(tmp)
    shutil.rmtree(tmp_dir)
    path = os.path.join(a.out_dir, "model.onnx")
    if os.path.exists(os.path.join(a.out_dir, "model.onnx.data")):
        os.remove(os.path.join(a.out_dir, "model.onnx.data"))  # onnx appends
    if a.external_data:
        onnx.save_model(proto, path + ".part", save_as_external_data=True, all_tensors_to_one_file=True,
                        location="model.onnx.data")
    else:
        onnx.save_model(proto, path + ".part")
    os.replace(path + ".part", path)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
