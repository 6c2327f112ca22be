"""Small decoder-only language models used as ONNX test fixtures.

The modules here re-implement (a subset of) four Hugging Face decoder families
without depending on the ``transformers`` library.  Parameter names mirror the
Hugging Face module paths *exactly*, so that an ONNX graph exported from these
modules carries the same initializer names / node scopes that an export of the
real HF model would carry:

* Llama   : ``model.embed_tokens``, ``model.layers.{i}.input_layernorm`` (RMSNorm),
            ``model.layers.{i}.self_attn.{q,k,v,o}_proj`` (no bias), RoPE
            (rotate_half, theta 10000), grouped-query attention (repeat_kv),
            ``model.layers.{i}.post_attention_layernorm``,
            ``model.layers.{i}.mlp.{gate,up,down}_proj`` (SwiGLU), ``model.norm``,
            ``lm_head`` (untied by default).
* Qwen2   : Llama with ``bias=True`` on q/k/v_proj.
* GPT-2   : ``transformer.wte``, ``transformer.wpe``, ``transformer.h.{i}.ln_1``,
            ``attn.c_attn`` / ``attn.c_proj`` (Conv1D, weight [in, out]),
            ``ln_2``, ``mlp.c_fc`` / ``mlp.c_proj`` (gelu_new, tanh approx),
            ``transformer.ln_f``, ``lm_head`` tied to ``wte``.
* GPT-NeoX: ``gpt_neox.embed_in``, ``gpt_neox.layers.{i}.{input,post_attention}_layernorm``,
            ``attention.query_key_value`` (fused, per-head interleaved q|k|v),
            ``attention.dense``, ``mlp.dense_h_to_4h`` / ``mlp.dense_4h_to_h``
            (exact erf GELU), parallel residual, partial rotary (rotary_pct),
            ``gpt_neox.final_layer_norm``, ``embed_out`` (untied).

Every model maps ``input_ids`` [batch, seq] int64 to ``logits``
[batch, seq, vocab] float32.  There is no KV cache and no attention-mask input:
the attention is always causal over the full sequence.

Initialisation is deterministic (``torch.manual_seed(cfg.seed)``): linear and
embedding weights ~ N(0, init_std), biases ~ N(0, init_std/2), and norm
weights ~ 1 + 0.1*N(0,1), norm biases ~ 0.05*N(0,1), so a bug in importing any
parameter (including norm weights/biases) changes the logits.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

FAMILIES = ("llama", "qwen2", "gpt2", "gptneox")


@dataclass
class DecoderConfig:
    family: str = "llama"
    vocab_size: int = 128
    hidden_size: int = 64
    intermediate_size: int = 172
    num_layers: int = 2
    num_heads: int = 4
    # Only used by llama/qwen2 (GQA); gpt2 / gptneox are always MHA.
    num_kv_heads: Optional[int] = None
    max_position_embeddings: int = 256
    rms_norm_eps: float = 1e-5  # llama: 1e-5 (llama2.c) / 1e-6; qwen2: 1e-6
    layer_norm_eps: float = 1e-5  # gpt2 / gptneox
    rope_theta: float = 10000.0
    rotary_pct: float = 0.25  # gptneox only
    tie_word_embeddings: Optional[bool] = None  # None -> family default
    init_std: float = 0.05
    seed: int = 0

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"unknown family {self.family!r}; expected one of {FAMILIES}")
        if self.num_kv_heads is None or self.family in ("gpt2", "gptneox"):
            self.num_kv_heads = self.num_heads
        if self.hidden_size % self.num_heads:
            raise ValueError("hidden_size must be divisible by num_heads")
        if self.num_heads % self.num_kv_heads:
            raise ValueError("num_heads must be divisible by num_kv_heads")
        if self.tie_word_embeddings is None:
            self.tie_word_embeddings = self.family == "gpt2"
        if self.family == "gpt2" and not self.tie_word_embeddings:
            raise ValueError("gpt2 always ties lm_head to wte")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    def to_dict(self):
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- #
# Shared pieces
# --------------------------------------------------------------------------- #


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    x1 = x[..., :half]
    x2 = x[..., half:]
    return torch.cat((-x2, x1), dim=-1)


class RotaryEmbedding(nn.Module):
    """HF-style rotary embedding; cos/sin are computed in forward from inv_freq."""

    def __init__(self, dim: int, base: float = 10000.0):
        super().__init__()
        self.dim, self.base = dim, base
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
        # Non-persistent (as in HF): not part of the state dict.
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def exact_(self, dtype=torch.float64):
        """Recompute inv_freq in `dtype` (for float64 reference runs)."""
        self.inv_freq = 1.0 / (self.base ** (torch.arange(0, self.dim, 2, dtype=dtype) / self.dim))
        return self

    def forward(self, seq_len_like: torch.Tensor):
        # seq_len_like: [B, S, ...]; positions 0..S-1
        t = torch.arange(seq_len_like.shape[1], device=seq_len_like.device).to(self.inv_freq.dtype)
        freqs = t[:, None] * self.inv_freq[None, :]  # [S, dim/2]
        emb = torch.cat((freqs, freqs), dim=-1)  # [S, dim]
        return emb.cos(), emb.sin()


def apply_rotary(q, k, cos, sin):
    # q, k: [B, H, S, D]; cos/sin: [S, D]
    q_embed = q * cos + rotate_half(q) * sin
    k_embed = k * cos + rotate_half(k) * sin
    return q_embed, k_embed


def causal_attention(q, k, v, scale: float):
    """q,k,v: [B, H, S, D] -> [B, H, S, D] with a causal mask."""
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    s = q.shape[2]
    pos = torch.arange(s, device=q.device)
    future = pos[None, :] > pos[:, None]  # [S, S] True above the diagonal
    scores = scores.masked_fill(future, torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1)
    return torch.matmul(probs, v)


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """[B, KV, S, D] -> [B, KV*n_rep, S, D] (HF repeat_kv: each kv head repeated n_rep times)."""
    if n_rep == 1:
        return x
    b, kv, s, d = x.shape
    x = x[:, :, None, :, :].expand(b, kv, n_rep, s, d)
    return x.reshape(b, kv * n_rep, s, d)


class RMSNorm(nn.Module):
    def __init__(self, hidden: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden))
        self.variance_epsilon = eps

    def forward(self, x):
        variance = x.pow(2).mean(-1, keepdim=True)
        x = x * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * x


class Conv1D(nn.Module):
    """HF GPT-2 Conv1D: weight stored [in_features, out_features]; y = x @ W + b."""

    def __init__(self, nf: int, nx: int):
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.empty(nx, nf))
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x):
        return torch.matmul(x, self.weight) + self.bias


def gelu_new(x):
    """HF NewGELUActivation (tanh approximation)."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


# --------------------------------------------------------------------------- #
# Llama / Qwen2
# --------------------------------------------------------------------------- #


class LlamaAttention(nn.Module):
    def __init__(self, cfg: DecoderConfig, qkv_bias: bool):
        super().__init__()
        self.num_heads = cfg.num_heads
        self.num_kv_heads = cfg.num_kv_heads
        self.head_dim = cfg.head_dim
        h = cfg.hidden_size
        self.q_proj = nn.Linear(h, self.num_heads * self.head_dim, bias=qkv_bias)
        self.k_proj = nn.Linear(h, self.num_kv_heads * self.head_dim, bias=qkv_bias)
        self.v_proj = nn.Linear(h, self.num_kv_heads * self.head_dim, bias=qkv_bias)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, h, bias=False)
        self.rotary_emb = RotaryEmbedding(self.head_dim, cfg.rope_theta)

    def forward(self, x):
        b, s, _ = x.shape
        q = self.q_proj(x).view(b, s, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, s, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, s, self.num_kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = self.rotary_emb(x)
        q, k = apply_rotary(q, k, cos, sin)
        n_rep = self.num_heads // self.num_kv_heads
        k = repeat_kv(k, n_rep)
        v = repeat_kv(v, n_rep)
        o = causal_attention(q, k, v, 1.0 / math.sqrt(self.head_dim))
        o = o.transpose(1, 2).reshape(b, s, self.num_heads * self.head_dim)
        return self.o_proj(o)


class LlamaMLP(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, cfg: DecoderConfig, qkv_bias: bool):
        super().__init__()
        self.self_attn = LlamaAttention(cfg, qkv_bias)
        self.mlp = LlamaMLP(cfg)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, x):
        x = x + self.self_attn(self.input_layernorm(x))
        x = x + self.mlp(self.post_attention_layernorm(x))
        return x


class LlamaModel(nn.Module):
    def __init__(self, cfg: DecoderConfig, qkv_bias: bool):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList([LlamaDecoderLayer(cfg, qkv_bias) for _ in range(cfg.num_layers)])
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, input_ids):
        x = self.embed_tokens(input_ids)
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


class LlamaForCausalLM(nn.Module):
    qkv_bias = False

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.config = cfg
        self.model = LlamaModel(cfg, self.qkv_bias)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        init_weights(self, cfg)

    def forward(self, input_ids):
        return self.lm_head(self.model(input_ids))


class Qwen2ForCausalLM(LlamaForCausalLM):
    qkv_bias = True


# --------------------------------------------------------------------------- #
# GPT-2
# --------------------------------------------------------------------------- #


class GPT2Attention(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.num_heads = cfg.num_heads
        self.head_dim = cfg.head_dim
        self.embed_dim = cfg.hidden_size
        self.c_attn = Conv1D(3 * self.embed_dim, self.embed_dim)
        self.c_proj = Conv1D(self.embed_dim, self.embed_dim)

    def forward(self, x):
        b, s, _ = x.shape
        q, k, v = self.c_attn(x).split(self.embed_dim, dim=2)
        q = q.view(b, s, self.num_heads, self.head_dim).transpose(1, 2)
        k = k.view(b, s, self.num_heads, self.head_dim).transpose(1, 2)
        v = v.view(b, s, self.num_heads, self.head_dim).transpose(1, 2)
        o = causal_attention(q, k, v, 1.0 / math.sqrt(self.head_dim))
        o = o.transpose(1, 2).reshape(b, s, self.embed_dim)
        return self.c_proj(o)


class GPT2MLP(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.c_fc = Conv1D(cfg.intermediate_size, cfg.hidden_size)
        self.c_proj = Conv1D(cfg.hidden_size, cfg.intermediate_size)

    def forward(self, x):
        return self.c_proj(gelu_new(self.c_fc(x)))


class GPT2Block(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.attn = GPT2Attention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.mlp = GPT2MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT2Model(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.wte = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.wpe = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.h = nn.ModuleList([GPT2Block(cfg) for _ in range(cfg.num_layers)])
        self.ln_f = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, input_ids):
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.wte(input_ids) + self.wpe(pos)[None, :, :]
        for block in self.h:
            x = block(x)
        return self.ln_f(x)


class GPT2LMHeadModel(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.config = cfg
        self.transformer = GPT2Model(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # always tied
        init_weights(self, cfg)

    def forward(self, input_ids):
        return self.lm_head(self.transformer(input_ids))


# --------------------------------------------------------------------------- #
# GPT-NeoX
# --------------------------------------------------------------------------- #


class GPTNeoXAttention(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.num_heads = cfg.num_heads
        self.head_size = cfg.head_dim
        self.hidden_size = cfg.hidden_size
        self.rotary_ndims = int(self.head_size * cfg.rotary_pct)
        if self.rotary_ndims % 2:
            raise ValueError("rotary_ndims must be even")
        self.query_key_value = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size, bias=True)
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=True)
        self.rotary_emb = RotaryEmbedding(self.rotary_ndims, cfg.rope_theta)

    def forward(self, x):
        b, s, _ = x.shape
        qkv = self.query_key_value(x)
        # HF layout: [B, S, H, 3*D], q|k|v interleaved per head.
        qkv = qkv.view(b, s, self.num_heads, 3 * self.head_size)
        q = qkv[..., : self.head_size].permute(0, 2, 1, 3)
        k = qkv[..., self.head_size : 2 * self.head_size].permute(0, 2, 1, 3)
        v = qkv[..., 2 * self.head_size :].permute(0, 2, 1, 3)
        r = self.rotary_ndims
        q_rot, q_pass = q[..., :r], q[..., r:]
        k_rot, k_pass = k[..., :r], k[..., r:]
        cos, sin = self.rotary_emb(x)
        q_rot, k_rot = apply_rotary(q_rot, k_rot, cos, sin)
        q = torch.cat((q_rot, q_pass), dim=-1)
        k = torch.cat((k_rot, k_pass), dim=-1)
        o = causal_attention(q, k, v, 1.0 / math.sqrt(self.head_size))
        o = o.permute(0, 2, 1, 3).reshape(b, s, self.hidden_size)
        return self.dense(o)


class GPTNeoXMLP(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.dense_h_to_4h = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.dense_4h_to_h = nn.Linear(cfg.intermediate_size, cfg.hidden_size)

    def forward(self, x):
        return self.dense_4h_to_h(F.gelu(self.dense_h_to_4h(x)))


class GPTNeoXLayer(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.input_layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.post_attention_layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.attention = GPTNeoXAttention(cfg)
        self.mlp = GPTNeoXMLP(cfg)

    def forward(self, x):
        # use_parallel_residual=True
        return x + self.attention(self.input_layernorm(x)) + self.mlp(self.post_attention_layernorm(x))


class GPTNeoXModel(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.embed_in = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList([GPTNeoXLayer(cfg) for _ in range(cfg.num_layers)])
        self.final_layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, input_ids):
        x = self.embed_in(input_ids)
        for layer in self.layers:
            x = layer(x)
        return self.final_layer_norm(x)


class GPTNeoXForCausalLM(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.config = cfg
        self.gpt_neox = GPTNeoXModel(cfg)
        self.embed_out = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            self.embed_out.weight = self.gpt_neox.embed_in.weight
        init_weights(self, cfg)

    def forward(self, input_ids):
        return self.embed_out(self.gpt_neox(input_ids))


# --------------------------------------------------------------------------- #
# Init / factory
# --------------------------------------------------------------------------- #


@torch.no_grad()
def init_weights(model: nn.Module, cfg: DecoderConfig) -> None:
    """Deterministic, non-trivial init.  Iterates named_parameters() (tied
    parameters are visited once) in definition order."""
    g = torch.Generator().manual_seed(cfg.seed)
    norm_types = (RMSNorm, nn.LayerNorm)
    norm_params = set()
    for mod in model.modules():
        if isinstance(mod, norm_types):
            for p in mod.parameters(recurse=False):
                norm_params.add(id(p))
    for name, p in model.named_parameters():
        if id(p) in norm_params:
            if name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
        elif name.endswith("bias"):
            p.copy_(0.5 * cfg.init_std * torch.randn(p.shape, generator=g))
        else:
            p.copy_(cfg.init_std * torch.randn(p.shape, generator=g))


_CLASSES = {
    "llama": LlamaForCausalLM,
    "qwen2": Qwen2ForCausalLM,
    "gpt2": GPT2LMHeadModel,
    "gptneox": GPTNeoXForCausalLM,
}


def build_model(cfg: DecoderConfig) -> nn.Module:
    torch.manual_seed(cfg.seed)
    model = _CLASSES[cfg.family](cfg)
    model.eval()
    return model
