#!/usr/bin/env python3
"""Sample token-id sequences from a llama2.c checkpoint, as evaluation or
calibration data for models that ship no text (../shared/data has none for
stories260K; its 512-token tokenizer is not included).

    /usr/bin/python3 python/quant_mlir/sample_tokens.py CKPT.bin -o ids.npy \
        --count 16 --length 512 --temperature 1.0 --seed 0 [--check]

Every sequence starts at BOS (1); all `count` sequences are decoded together
with a KV cache (numpy, float32, run.c's math: interleaved RoPE, GQA,
rmsnorm, SwiGLU), sampling each next token from softmax(logits / T) with a
seeded numpy generator. Different seeds give disjoint data for calibration
and evaluation. --check compares the decoder's logits with the converted
torch module (python/quant_mlir/llama2c_to_onnx.py) on the first 32 tokens.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from quant_mlir.llama2c_to_onnx import read_llama2c  # noqa: E402


class Decoder:
    """Batched incremental decoding of a llama2.c model."""

    def __init__(self, path, batch, max_len):
        self.h, w = read_llama2c(path)
        self.w = {k: np.asarray(v, dtype=np.float32) for k, v in w.items()}
        h = self.h
        self.hs = h["dim"] // h["n_heads"]
        self.kv_dim = h["n_kv_heads"] * self.hs
        self.cls = self.w["token_embedding_table"] if h["shared_classifier"] else self.w["wcls"]
        L = h["n_layers"]
        self.k = np.zeros((L, batch, max_len, self.kv_dim), np.float32)
        self.v = np.zeros_like(self.k)
        i = np.arange(0, self.hs, 2)
        self.freq = 1.0 / np.power(10000.0, i / self.hs)  # per pair in a head

    @staticmethod
    def rmsnorm(x, weight):
        return weight * x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5)

    def rope(self, x, pos, heads):
        # Interleaved pairs (x[2i], x[2i+1]) rotated by pos * freq[i % (hs/2)].
        b = x.shape[0]
        x = x.reshape(b, heads, self.hs // 2, 2)
        c, s = np.cos(pos * self.freq), np.sin(pos * self.freq)
        x0, x1 = x[..., 0], x[..., 1]
        return np.stack([x0 * c - x1 * s, x0 * s + x1 * c], -1).reshape(b, heads * self.hs)

    def step(self, tokens, pos):
        h, w, hs = self.h, self.w, self.hs
        nh, nkv = h["n_heads"], h["n_kv_heads"]
        x = w["token_embedding_table"][tokens]
        for l in range(h["n_layers"]):
            xb = self.rmsnorm(x, w["rms_att_weight"][l])
            q = self.rope(xb @ w["wq"][l].T, pos, nh)
            self.k[l, :, pos] = self.rope(xb @ w["wk"][l].T, pos, nkv)
            self.v[l, :, pos] = xb @ w["wv"][l].T
            b = x.shape[0]
            qh = q.reshape(b, nkv, nh // nkv, hs)
            kh = self.k[l, :, :pos + 1].reshape(b, pos + 1, nkv, hs)
            vh = self.v[l, :, :pos + 1].reshape(b, pos + 1, nkv, hs)
            att = np.einsum("bgrd,btgd->bgrt", qh, kh) / np.sqrt(hs)
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            o = np.einsum("bgrt,btgd->bgrd", att, vh).reshape(b, nh * hs)
            x = x + o @ w["wo"][l].T
            xb = self.rmsnorm(x, w["rms_ffn_weight"][l])
            g = xb @ w["w1"][l].T
            x = x + ((g / (1 + np.exp(-g))) * (xb @ w["w3"][l].T)) @ w["w2"][l].T
        return self.rmsnorm(x, w["rms_final_weight"]) @ self.cls.T


def sample(path, count, length, temperature, seed):
    rng = np.random.default_rng(seed)
    dec = Decoder(path, count, length)
    ids = np.ones((count, length), np.int64)
    for pos in range(length - 1):
        logits = dec.step(ids[:, pos], pos).astype(np.float64) / temperature
        p = np.exp(logits - logits.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        u = rng.random((count, 1))
        ids[:, pos + 1] = np.minimum((p.cumsum(-1) < u).sum(-1), p.shape[1] - 1)
    return ids


def check(path):
    import torch
    from quant_mlir.llama2c_to_onnx import load_llama2c_model
    model, _ = load_llama2c_model(path)
    ids = sample(path, 1, 32, 1.0, 123)
    with torch.no_grad():
        ref = model(torch.from_numpy(ids))[0].numpy()
    dec = Decoder(path, 1, 32)
    got = np.stack([dec.step(ids[:, p], p)[0] for p in range(32)])
    err = np.abs(got - ref).max()
    print(f"decoder vs torch module, 32 tokens: max |diff| = {err:.3e}")
    return err < 1e-3


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("-o", "--out")
    p.add_argument("--count", type=int, default=16)
    p.add_argument("--length", type=int, default=512)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--check", action="store_true")
    a = p.parse_args(argv)
    if a.check:
        return 0 if check(a.checkpoint) else 1
    out = sample(a.checkpoint, a.count, a.length, a.temperature, a.seed).reshape(-1).astype(np.int32)
    tmp = a.out + ".tmp.npy"
    np.save(tmp, out)
    os.replace(tmp, a.out)
    print(f"wrote {a.out}: {len(out)} tokens ({a.count} x {a.length})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
