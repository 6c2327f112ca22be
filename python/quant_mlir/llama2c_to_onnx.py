#!/usr/bin/env python3
"""Convert a llama2.c checkpoint (legacy "version 0" .bin) to a HF-style Llama
nn.Module (models.LlamaForCausalLM) and export it to ONNX.

    /usr/bin/python3 python/quant_mlir/llama2c_to_onnx.py /work/shared/data/stories260K.bin \
        -o OUT_DIR [--external-data] [--opset 17] [--fold-constants]

Writes OUT_DIR/model.onnx (+ model.onnx.data), reference.npz and config.json
exactly like export_fixtures.py.  reference.npz additionally holds
``greedy_tokens``: BOS (1) followed by 31 greedily generated tokens.

llama2.c file format (legacy, no magic number)
----------------------------------------------
Header: 7 x int32 = dim, hidden_dim, n_layers, n_heads, n_kv_heads,
vocab_size (negative => separate classifier weights at the end), seq_len.
Then float32, in this order (shapes are row-major, and every matrix is stored
as run.c's ``matmul(xout, x, w, n, d)`` consumes it, i.e. W[d_out, n_in] --
the torch nn.Linear [out, in] layout):

    token_embedding_table [vocab, dim]
    rms_att_weight        [L, dim]
    wq                    [L, n_heads*hs, dim]
    wk                    [L, n_kv_heads*hs, dim]
    wv                    [L, n_kv_heads*hs, dim]
    wo                    [L, dim, n_heads*hs]
    rms_ffn_weight        [L, dim]
    w1 (gate)             [L, hidden_dim, dim]
    w2 (down)             [L, dim, hidden_dim]
    w3 (up)               [L, hidden_dim, dim]
    rms_final_weight      [dim]
    freq_cis_real         [seq_len, hs/2]   (skipped)
    freq_cis_imag         [seq_len, hs/2]   (skipped)
    wcls                  [vocab, dim]      (only if vocab_size < 0)

The total must equal the file size exactly (checked).

RoPE convention
---------------
llama2.c (model.py training code and run.c) rotates *interleaved* pairs
(x[2i], x[2i+1]) of each head with freq_i = 10000^(-2i/hs); the legacy .bin
stores wq/wk un-permuted in that convention (only export.py's HF export path
permutes).  HF Llama's rotate_half pairs (x[i], x[i+hs/2]) instead.  We
convert by permuting the rows of wq/wk within every head, exactly like HF's
``convert_llama_weights_to_hf.permute``: new row h*hs + j*hs/2 + i = old row
h*hs + 2i + j.  q.k dot products are invariant to a common permutation of
both, so the resulting *standard* HF Llama computes llama2.c's math exactly.
check_llama2c.py verifies this against a literal numpy port of run.c.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from quant_mlir.export_fixtures import MAX_OPSET, MIN_OPSET, export_onnx, reference_input_ids  # noqa: E402
    from quant_mlir.models import DecoderConfig, build_model  # noqa: E402
else:
    from .export_fixtures import MAX_OPSET, MIN_OPSET, export_onnx, reference_input_ids
    from .models import DecoderConfig, build_model

HEADER_INTS = 7
BOS = 1


def read_llama2c(path: str):
    """Return (header dict, dict of float32 numpy arrays in [out, in] layout)."""
    raw = np.fromfile(path, dtype=np.uint8)
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = (int(v) for v in raw[: 4 * HEADER_INTS].view(np.int32))
    shared = vocab > 0
    vocab = abs(vocab)
    hs = dim // n_heads
    kv_dim = n_kv * hs
    data = raw[4 * HEADER_INTS:]
    if data.size % 4:
        raise ValueError(f"{path}: payload is not a multiple of 4 bytes")
    f = data.view(np.float32)
    L = n_layers
    layout = [
        ("token_embedding_table", (vocab, dim)),
        ("rms_att_weight", (L, dim)),
        ("wq", (L, n_heads * hs, dim)),
        ("wk", (L, kv_dim, dim)),
        ("wv", (L, kv_dim, dim)),
        ("wo", (L, dim, n_heads * hs)),
        ("rms_ffn_weight", (L, dim)),
        ("w1", (L, hidden, dim)),
        ("w2", (L, dim, hidden)),
        ("w3", (L, hidden, dim)),
        ("rms_final_weight", (dim,)),
        ("freq_cis_real", (seq_len, hs // 2)),
        ("freq_cis_imag", (seq_len, hs // 2)),
    ]
    if not shared:
        layout.append(("wcls", (vocab, dim)))
    expected = sum(int(np.prod(s)) for _, s in layout)
    if expected != f.size:
        raise ValueError(
            f"{path}: header implies {expected} floats ({4 * expected + 28} bytes) but file has "
            f"{f.size} floats ({raw.size} bytes); header={dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len}"
        )
    w, off = {}, 0
    for name, shape in layout:
        n = int(np.prod(shape))
        w[name] = f[off: off + n].reshape(shape).copy()
        off += n
    header = dict(dim=dim, hidden_dim=hidden, n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_kv,
                  vocab_size=vocab, seq_len=seq_len, shared_classifier=shared, head_size=hs)
    return header, w


def interleaved_to_half(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Permute rows of a [n_heads*hs, in] q/k weight from llama2.c's interleaved
    RoPE pairing to HF rotate_half pairing (HF convert script's `permute`)."""
    out_dim, in_dim = w.shape
    hs = out_dim // n_heads
    return w.reshape(n_heads, hs // 2, 2, in_dim).transpose(0, 2, 1, 3).reshape(out_dim, in_dim)


def config_from_header(h: dict) -> DecoderConfig:
    return DecoderConfig(
        family="llama",
        vocab_size=h["vocab_size"],
        hidden_size=h["dim"],
        intermediate_size=h["hidden_dim"],
        num_layers=h["n_layers"],
        num_heads=h["n_heads"],
        num_kv_heads=h["n_kv_heads"],
        max_position_embeddings=h["seq_len"],
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=h["shared_classifier"],
    )


def hf_state_dict(h: dict, w: dict, permute_qk: bool = True) -> dict:
    """HF Llama parameter names -> torch tensors."""
    nh, nkv = h["n_heads"], h["n_kv_heads"]
    perm_q = (lambda a: interleaved_to_half(a, nh)) if permute_qk else (lambda a: a)
    perm_k = (lambda a: interleaved_to_half(a, nkv)) if permute_qk else (lambda a: a)
    sd = {"model.embed_tokens.weight": w["token_embedding_table"], "model.norm.weight": w["rms_final_weight"]}
    for l in range(h["n_layers"]):
        p = f"model.layers.{l}."
        sd[p + "input_layernorm.weight"] = w["rms_att_weight"][l]
        sd[p + "self_attn.q_proj.weight"] = perm_q(w["wq"][l])
        sd[p + "self_attn.k_proj.weight"] = perm_k(w["wk"][l])
        sd[p + "self_attn.v_proj.weight"] = w["wv"][l]
        sd[p + "self_attn.o_proj.weight"] = w["wo"][l]
        sd[p + "post_attention_layernorm.weight"] = w["rms_ffn_weight"][l]
        sd[p + "mlp.gate_proj.weight"] = w["w1"][l]
        sd[p + "mlp.down_proj.weight"] = w["w2"][l]
        sd[p + "mlp.up_proj.weight"] = w["w3"][l]
    sd["lm_head.weight"] = w["token_embedding_table"] if h["shared_classifier"] else w["wcls"]
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in sd.items()}


def load_llama2c_model(path: str, permute_qk: bool = True):
    """Build models.LlamaForCausalLM holding the llama2.c weights. Returns (model, header)."""
    h, w = read_llama2c(path)
    cfg = config_from_header(h)
    model = build_model(cfg)
    sd = hf_state_dict(h, w, permute_qk)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    # With a tied classifier the state dict holds both names for one tensor; both are provided.
    if missing or unexpected:
        raise RuntimeError(f"state dict mismatch: missing={missing} unexpected={unexpected}")
    if h["shared_classifier"]:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    model.eval()
    return model, h


@torch.no_grad()
def greedy(model, n_new: int, start=(BOS,)) -> np.ndarray:
    ids = torch.tensor([list(start)], dtype=torch.int64)
    for _ in range(n_new):
        nxt = model(ids)[0, -1].argmax()
        ids = torch.cat([ids, nxt.view(1, 1)], dim=1)
    return ids[0].numpy()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="llama2.c .bin -> HF-named Llama ONNX")
    p.add_argument("checkpoint")
    p.add_argument("-o", "--out-dir", required=True)
    p.add_argument("--opset", type=int, default=17, choices=range(MIN_OPSET, MAX_OPSET + 1))
    p.add_argument("--external-data", action="store_true")
    p.add_argument("--fold-constants", action="store_true")
    a = p.parse_args(argv)

    model, h = load_llama2c_model(a.checkpoint)
    g = greedy(model, 31)
    ref_ids = reference_input_ids(h["vocab_size"], (2, 16))
    ref_ids[0] = g[:16]  # row 0: realistic text (BOS + greedy), row 1: random ids
    extra = model.config.to_dict()
    extra["llama2c_header"] = h
    extra["source"] = os.path.abspath(a.checkpoint)
    res = export_onnx(model, a.out_dir, h["vocab_size"], opset=a.opset, external_data=a.external_data,
                      fold_constants=a.fold_constants, ref_input_ids=ref_ids, extra_config=extra)
    ref_path = os.path.join(a.out_dir, "reference.npz")
    np.savez(ref_path, input_ids=res["input_ids"], logits=res["logits"], greedy_tokens=g)
    print(f"wrote {res['onnx']}" + (f" (+ {res['data']})" if res["data"] else "")
          + f"; header={h}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
