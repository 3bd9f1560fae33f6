"""A small Llama-style decoder: RMSNorm, rotary positions, SwiGLU, no biases.

``step`` keeps a key/value cache, so one token costs attention over the
whole context: the cost RWKV's constant-size state avoids. The cache is
preallocated for the longest context (as serving stacks do), so a step writes
one position in place instead of concatenating and copying the whole cache:
the peer bench/live_bench.py times RWKV-7 against is a fair one.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from trainer.baselines.common import BackboneMixin, select_targets


@dataclass
class TransformerConfig:
    vocab_size: int
    n_layer: int = 6
    n_embd: int = 256
    head_size: int = 64
    ctx_len: int = 512
    max_len: int = 4096  # longest context the rotary table covers
    dropout: float = 0.0
    chunk_len: int = 1

    @property
    def n_head(self) -> int:
        return self.n_embd // self.head_size

    @property
    def ffn_dim(self) -> int:
        # Llama: 2/3 of 4C for the three SwiGLU matrices, rounded to 32.
        return int(round(8 * self.n_embd / 3 / 32)) * 32

    def to_dict(self) -> dict:
        return {"arch": "transformer", **dataclasses.asdict(self)}


@dataclass(frozen=True)
class KVCache:
    """Keys and values of every layer for ``capacity`` positions; the first ``length`` are filled.

    A state stepped from this one shares its buffers: stepping from an older
    state again overwrites the positions newer ones had filled. That makes a
    fork as cheap as keeping the length (a live answer sampled from the same
    context again); ``clone`` gives an independent copy.
    """

    k: Tensor  # [n_layer, B, H, capacity, head_size]
    v: Tensor
    length: int = 0

    @property
    def capacity(self) -> int:
        return self.k.shape[3]

    def clone(self) -> "KVCache":
        return KVCache(self.k.clone(), self.v.clone(), self.length)


def _rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x [B,H,T,D] rotated pairwise by position angles cos/sin [T,D/2]."""
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return out.flatten(-2)


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        C, F_ = cfg.n_embd, cfg.ffn_dim
        self.n_head, self.hs = cfg.n_head, cfg.head_size
        self.norm1, self.norm2 = nn.RMSNorm(C), nn.RMSNorm(C)
        self.qkv = nn.Linear(C, 3 * C, bias=False)
        self.proj = nn.Linear(C, C, bias=False)
        self.gate_up = nn.Linear(C, 2 * F_, bias=False)
        self.down = nn.Linear(F_, C, bias=False)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor,
                cache: tuple[Tensor, Tensor, int] | None = None) -> Tensor:
        """x [B,T,C]; with ``cache`` = (keys, values [B,H,capacity,D], position)
        the T new tokens are written at the position and attend to all before them."""
        B, T, C = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, T, 3, self.n_head, self.hs).permute(2, 0, 3, 1, 4)
        q, k = _rope(q, cos, sin), _rope(k, cos, sin)
        if cache is not None:
            keys, values, pos = cache
            keys[:, :, pos:pos + T] = k
            values[:, :, pos:pos + T] = v
            k, v = keys[:, :, :pos + T], values[:, :, :pos + T]
        y = F.scaled_dot_product_attention(q, k, v, is_causal=cache is None)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        g, u = self.gate_up(self.norm2(x)).chunk(2, dim=-1)
        return x + self.down(F.silu(g) * u)


class TransformerLM(BackboneMixin, nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)])
        self.norm = nn.RMSNorm(cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        inv = 1.0 / (10000 ** (torch.arange(0, cfg.head_size, 2).float() / cfg.head_size))
        ang = torch.outer(torch.arange(cfg.max_len).float(), inv)
        self.register_buffer("cos", ang.cos(), persistent=False)
        self.register_buffer("sin", ang.sin(), persistent=False)
        for name, p in self.named_parameters():  # GPT-2 style small init
            if p.dim() == 2:
                std = 0.02 / (2 * cfg.n_layer) ** 0.5 if name.endswith(("proj.weight", "down.weight")) else 0.02
                nn.init.normal_(p, std=std)

    def forward(self, tokens: Tensor, target_index: Tensor | None = None) -> Tensor:
        T = tokens.shape[1]
        x = self.emb(tokens)
        for blk in self.blocks:
            x = blk(x, self.cos[:T], self.sin[:T])
        return self.head(self.norm(select_targets(x, target_index)))

    def init_state(self, batch: int, capacity: int | None = None) -> KVCache:
        """An empty cache for ``capacity`` positions (default: the rotary table's ``max_len``)."""
        capacity = capacity or self.cfg.max_len
        shape = (self.cfg.n_layer, batch, self.cfg.n_head, capacity, self.cfg.head_size)
        return KVCache(torch.zeros(shape, device=self.device), torch.zeros(shape, device=self.device))

    @torch.no_grad()
    def step(self, tokens: Tensor, state: KVCache) -> tuple[Tensor, KVCache]:
        pos = state.length
        if pos >= min(state.capacity, self.cfg.max_len):
            raise ValueError(f"context of {pos + 1} tokens is longer than the KV cache ({state.capacity})")
        x = self.emb(tokens)[:, None]
        for i, blk in enumerate(self.blocks):
            x = blk(x, self.cos[pos:pos + 1], self.sin[pos:pos + 1], (state.k[i], state.v[i], pos))
        return self.head(self.norm(x[:, 0])), KVCache(state.k, state.v, pos + 1)
