#!/usr/bin/env python3
"""Independent check of the llama2.c -> HF Llama conversion.

    /usr/bin/python3 python/quant_mlir/check_llama2c.py [/work/shared/data/stories260K.bin]
        [--onnx-dir DIR ...] [--tol 1e-4]

1. A pure-numpy float64 forward pass that follows llama2.c's run.c literally
   (own .bin parser; token-by-token with a KV cache; rmsnorm eps 1e-5;
   interleaved-pair RoPE with freq = 1/10000^(head_dim/head_size) computed
   per pair; GQA via h // (n_heads/n_kv_heads); SwiGLU; shared or separate
   classifier).  Its logits for a 16-token sequence must match the converted
   torch module (llama2c_to_onnx.load_llama2c_model) to --tol.
   The file's own freq_cis_real/imag tables are checked against the formula.
   As a negative control, the module built *without* the q/k row permutation
   must NOT match.
2. Greedy generation from BOS (token 1) for 30 tokens must not be constant.
3. Mean NLL per token on the model's own greedy output must be far lower than
   on uniformly random tokens.
4. Optionally (--onnx-dir) each exported directory's model.onnx is run with
   the numpy ONNX interpreter on its reference.npz and compared.

Exit code 0 on success; non-zero with a message on any mismatch.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import sys

import numpy as np
import torch

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from quant_mlir import llama2c_to_onnx, onnx_numpy_eval  # noqa: E402
else:
    from . import llama2c_to_onnx, onnx_numpy_eval

DEFAULT_BIN = "/work/shared/data/stories260K.bin"


# --------------------------------------------------------------------------- #
# Literal numpy port of llama2.c run.c (float64)
# --------------------------------------------------------------------------- #


class RunC:
    def __init__(self, path: str):
        with open(path, "rb") as fh:
            buf = fh.read()
        hdr = np.frombuffer(buf, dtype=np.int32, count=7)
        (self.dim, self.hidden_dim, self.n_layers, self.n_heads, self.n_kv_heads,
         vocab, self.seq_len) = (int(v) for v in hdr)
        self.shared = vocab > 0
        self.vocab_size = abs(vocab)
        ptr = np.frombuffer(buf, dtype=np.float32, offset=28).astype(np.float64)
        p = 0
        dim, hd, L = self.dim, self.hidden_dim, self.n_layers
        hs = dim // self.n_heads
        kv_dim = dim * self.n_kv_heads // self.n_heads
        self.head_size, self.kv_dim = hs, kv_dim

        def take(n):  # memory_map_weights: flat pointer arithmetic
            nonlocal p
            out = ptr[p: p + n]
            p += n
            return out

        self.token_embedding_table = take(self.vocab_size * dim)
        self.rms_att_weight = take(L * dim)
        self.wq = take(L * dim * (self.n_heads * hs))
        self.wk = take(L * dim * (self.n_kv_heads * hs))
        self.wv = take(L * dim * (self.n_kv_heads * hs))
        self.wo = take(L * (self.n_heads * hs) * dim)
        self.rms_ffn_weight = take(L * dim)
        self.w1 = take(L * dim * hd)
        self.w2 = take(L * hd * dim)
        self.w3 = take(L * dim * hd)
        self.rms_final_weight = take(dim)
        self.freq_cis_real = take(self.seq_len * hs // 2)
        self.freq_cis_imag = take(self.seq_len * hs // 2)
        self.wcls = self.token_embedding_table if self.shared else take(self.vocab_size * dim)
        if p != ptr.size:
            raise ValueError(f"file has {ptr.size} floats, consumed {p}")
        self.reset()

    def reset(self):
        L = self.n_layers
        self.key_cache = np.zeros((L, self.seq_len, self.kv_dim))
        self.value_cache = np.zeros((L, self.seq_len, self.kv_dim))

    @staticmethod
    def rmsnorm(x, weight):
        ss = np.sum(x * x) / x.size + 1e-5
        return weight * (x * (1.0 / math.sqrt(ss)))

    @staticmethod
    def matmul(x, w, n, d):
        # W (d,n) @ x (n,) -> xout (d,);  xout[i] = sum_j w[i*n + j] * x[j]
        return w[: d * n].reshape(d, n) @ x

    @staticmethod
    def softmax(x):
        m = x.max()
        e = np.exp(x - m)
        return e / e.sum()

    def forward(self, token: int, pos: int) -> np.ndarray:
        dim, hd, hs, kv_dim = self.dim, self.hidden_dim, self.head_size, self.kv_dim
        kv_mul = self.n_heads // self.n_kv_heads
        x = self.token_embedding_table[token * dim: (token + 1) * dim].copy()
        for l in range(self.n_layers):
            xb = self.rmsnorm(x, self.rms_att_weight[l * dim: (l + 1) * dim])
            q = self.matmul(xb, self.wq[l * dim * dim:], dim, dim)
            k = self.matmul(xb, self.wk[l * dim * kv_dim:], dim, kv_dim)
            v = self.matmul(xb, self.wv[l * dim * kv_dim:], dim, kv_dim)
            # RoPE relative positional encoding: complex-valued rotate q and k in each head
            for i in range(0, dim, 2):
                head_dim = i % hs
                freq = 1.0 / math.pow(10000.0, head_dim / hs)
                val = pos * freq
                fcr, fci = math.cos(val), math.sin(val)
                rotn = 2 if i < kv_dim else 1
                for vi in range(rotn):
                    vec = q if vi == 0 else k
                    v0, v1 = vec[i], vec[i + 1]
                    vec[i] = v0 * fcr - v1 * fci
                    vec[i + 1] = v0 * fci + v1 * fcr
            self.key_cache[l, pos] = k
            self.value_cache[l, pos] = v
            xb = np.zeros(dim)
            for h in range(self.n_heads):
                qh = q[h * hs: (h + 1) * hs]
                kvh = (h // kv_mul) * hs
                att = np.array([qh @ self.key_cache[l, t, kvh: kvh + hs] for t in range(pos + 1)]) / math.sqrt(hs)
                att = self.softmax(att)
                xb[h * hs: (h + 1) * hs] = sum(att[t] * self.value_cache[l, t, kvh: kvh + hs] for t in range(pos + 1))
            xb2 = self.matmul(xb, self.wo[l * dim * dim:], dim, dim)
            x = x + xb2
            xb = self.rmsnorm(x, self.rms_ffn_weight[l * dim: (l + 1) * dim])
            hb = self.matmul(xb, self.w1[l * dim * hd:], dim, hd)
            hb2 = self.matmul(xb, self.w3[l * dim * hd:], dim, hd)
            hb = hb * (1.0 / (1.0 + np.exp(-hb))) * hb2  # SwiGLU
            xb = self.matmul(hb, self.w2[l * dim * hd:], hd, dim)
            x = x + xb
        x = self.rmsnorm(x, self.rms_final_weight)
        return self.matmul(x, self.wcls, dim, self.vocab_size)

    def logits_for(self, tokens) -> np.ndarray:
        self.reset()
        return np.stack([self.forward(int(t), pos) for pos, t in enumerate(tokens)])


def mean_nll(logits: np.ndarray, tokens: np.ndarray) -> float:
    """Mean -log p(tokens[t+1] | tokens[:t+1]) in nats."""
    lg = logits[:-1].astype(np.float64)
    lse = np.log(np.exp(lg - lg.max(-1, keepdims=True)).sum(-1)) + lg.max(-1)
    return float(np.mean(lse - lg[np.arange(len(lg)), tokens[1:]]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint", nargs="?", default=DEFAULT_BIN)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--seq", type=int, default=16)
    ap.add_argument("--gen", type=int, default=30)
    ap.add_argument("--onnx-dir", nargs="*", default=[])
    a = ap.parse_args(argv)
    errors = []

    ref = RunC(a.checkpoint)
    hs = ref.head_size
    print(f"header: dim={ref.dim} hidden={ref.hidden_dim} layers={ref.n_layers} heads={ref.n_heads} "
          f"kv_heads={ref.n_kv_heads} vocab={ref.vocab_size} seq_len={ref.seq_len} shared_cls={ref.shared}")

    # The file's RoPE tables vs the formula run.c uses.
    pos = np.arange(ref.seq_len)[:, None]
    freqs = 1.0 / 10000.0 ** (np.arange(0, hs, 2) / hs)
    d_re = np.abs(ref.freq_cis_real.reshape(ref.seq_len, hs // 2) - np.cos(pos * freqs)).max()
    d_im = np.abs(ref.freq_cis_imag.reshape(ref.seq_len, hs // 2) - np.sin(pos * freqs)).max()
    print(f"freq_cis tables vs cos/sin(pos*10000^(-2i/hs)): max diff {d_re:.2e} / {d_im:.2e}")
    if max(d_re, d_im) > 1e-3:
        errors.append("freq_cis tables do not match theta=10000 formula")

    model, h = llama2c_to_onnx.load_llama2c_model(a.checkpoint)
    # 1. logits on a 16-token sequence: BOS + pseudo-random ids
    rng = np.random.default_rng(0)
    toks = np.concatenate([[1], rng.integers(0, ref.vocab_size, a.seq - 1)]).astype(np.int64)
    want = ref.logits_for(toks)
    with torch.no_grad():
        got = model(torch.from_numpy(toks)[None])[0].double().numpy()
    diff = float(np.abs(got - want).max())
    print(f"[1] run.c(numpy f64) vs torch module, {a.seq} tokens: max|diff| = {diff:.3e} "
          f"(logit scale: max|logit| = {np.abs(want).max():.2f})")
    if not diff <= a.tol:
        errors.append(f"logits mismatch {diff:.3e} > {a.tol}")
    # Same module in float64: isolates conversion errors from float32 rounding.
    m64 = copy.deepcopy(model).double()
    for mod in m64.modules():
        if hasattr(mod, "exact_"):
            mod.exact_(torch.float64)
    with torch.no_grad():
        d64 = float(np.abs(m64(torch.from_numpy(toks)[None])[0].numpy() - want).max())
    print(f"    torch module in float64: max|diff| = {d64:.3e} (must be < 1e-9)")
    if not d64 < 1e-9:
        errors.append(f"float64 logits mismatch {d64:.3e}")
    unperm, _ = llama2c_to_onnx.load_llama2c_model(a.checkpoint, permute_qk=False)
    with torch.no_grad():
        d_unperm = float(np.abs(unperm(torch.from_numpy(toks)[None])[0].double().numpy() - want).max())
    print(f"    negative control (no q/k permutation): max|diff| = {d_unperm:.3e} (must be large)")
    if d_unperm <= 100 * a.tol:
        errors.append("un-permuted model also matches: RoPE convention check is vacuous")

    # 2. greedy generation from BOS
    g = llama2c_to_onnx.greedy(model, a.gen)
    n_distinct = len(set(g[1:].tolist()))
    print(f"[2] greedy from BOS: {g.tolist()}  ({n_distinct} distinct tokens)")
    if n_distinct < 5:
        errors.append(f"greedy generation degenerate ({n_distinct} distinct tokens)")
    # cross-check a few greedy steps with the numpy run.c port
    ref_g = ref.logits_for(g[:8]).argmax(-1)
    if not np.array_equal(ref_g[:7], g[1:8]):
        errors.append(f"run.c greedy {ref_g[:7]} != torch greedy {g[1:8]}")

    # 3. NLL on own greedy output vs uniformly random tokens
    with torch.no_grad():
        nll_g = mean_nll(model(torch.from_numpy(g)[None])[0].numpy(), g)
        rnd = np.concatenate([[1], rng.integers(0, ref.vocab_size, a.gen)]).astype(np.int64)
        nll_r = mean_nll(model(torch.from_numpy(rnd)[None])[0].numpy(), rnd)
    print(f"[3] mean NLL/token: greedy output {nll_g:.3f} nats, uniform random tokens {nll_r:.3f} nats "
          f"(uniform model would be ln({ref.vocab_size}) = {math.log(ref.vocab_size):.3f})")
    if not nll_g < 0.5 * nll_r:
        errors.append(f"NLL on greedy output {nll_g:.3f} not far below random {nll_r:.3f}")

    # 4. exported ONNX directories
    for d in a.onnx_dir:
        ratio, dd = onnx_numpy_eval.check_dir(d)
        print(f"[4] {d}: max|onnx(numpy) - torch| = {dd:.3e} (error ratio {ratio:.3f}, must be <= 1)")
        if not ratio <= 1.0:
            errors.append(f"{d}: onnx mismatch {dd:.3e}")

    if errors:
        print("FAIL: " + "; ".join(errors), file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
