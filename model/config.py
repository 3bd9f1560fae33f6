"""Typed configuration of the RWKV-7 music model.

Everything needed to rebuild a model lives here and is stored in every
checkpoint sidecar (``RWKVConfig.to_dict`` / ``RWKVConfig.from_dict``).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any


def _lora_dim(n_embd: int, factor: float) -> int:
    # RWKV-LM's suggestion: a multiple of 32 near factor*sqrt(C), at least 32.
    return max(32, int(round(factor * math.sqrt(n_embd) / 32) * 32))


@dataclass
class RWKVConfig:
    # Vocabulary comes from the REMI tokenizer (~200-400 tokens for piano);
    # this default only serves tests and must be overridden by real callers.
    vocab_size: int = 512
    # Default size: 6 layers x 192 channels (3 heads of 64) = ~3.2M parameters
    # with a ~320-token REMI vocabulary. Why not the 5-15M first aimed at: a
    # batch-1 step reads every weight once, so it is memory-bandwidth bound
    # (~14 GB/s for one thread on the CI-class VM, bench/model_bench.py):
    # 3.2M fp32 params = 12.6 MB -> ~0.75 ms, inside the 1 ms budget, while
    # 6x256 (5.4M) takes ~1.5 ms (fp32) / ~1.2 ms (bf16 weights). It also
    # suits the offline corpus (a few million tokens). Bigger desktops can
    # raise n_embd/n_layer; nothing else depends on the size.
    n_layer: int = 6
    n_embd: int = 192
    head_size: int = 64  # WKV head size N; n_head = n_embd // head_size
    # Training window in tokens (4 bars of context + 2 of completion fit with
    # room to spare); recurrent inference has no length limit.
    ctx_len: int = 512
    dropout: float = 0.0  # on each block's residual branches, training only
    dim_ffn: int | None = None  # channel-mix hidden size; None -> 4 * n_embd
    # LoRA ranks of the decay (w), in-context rate (a), value residual (v) and
    # output gate (g); None -> RWKV-LM's size-dependent suggestion.
    d_decay_lora: int | None = None
    d_aaa_lora: int | None = None
    d_mv_lora: int | None = None
    d_gate_lora: int | None = None
    chunk_len: int = 32  # WKV chunk length of the chunked operator: the fastest
    # measured on CPU; in-chunk decay ratios stay far from fp32 limits (wkv/chunked.py)
    wkv: str = "auto"  # "auto" | "reference" | "chunked" | "cuda"

    def __post_init__(self) -> None:
        if self.vocab_size < 1 or self.n_layer < 1:
            raise ValueError("vocab_size and n_layer must be positive")
        if self.head_size < 1 or self.n_embd % self.head_size:
            raise ValueError(f"n_embd={self.n_embd} is not a multiple of head_size={self.head_size}")
        if self.wkv not in ("auto", "reference", "chunked", "cuda"):
            raise ValueError(f"unknown wkv operator {self.wkv!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        if self.chunk_len < 1:
            raise ValueError("chunk_len must be positive")

    @property
    def n_head(self) -> int:
        return self.n_embd // self.head_size

    @property
    def ffn_dim(self) -> int:
        return self.dim_ffn if self.dim_ffn is not None else 4 * self.n_embd

    @property
    def lora_dims(self) -> dict[str, int]:
        """Resolved LoRA ranks (w, a, v, g)."""
        c = self.n_embd
        return {
            "w": self.d_decay_lora or _lora_dim(c, 2.5),
            "a": self.d_aaa_lora or _lora_dim(c, 2.5),
            "v": self.d_mv_lora or _lora_dim(c, 1.7),
            "g": self.d_gate_lora or _lora_dim(c, 5.0),
        }

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RWKVConfig":
        """Build from a sidecar dict; unknown keys are an error (a newer format)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        return cls(**d)
