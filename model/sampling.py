"""Token sampling for continuations: batched (K variations in one call), seeded.

``sample(logits[B,V], ...) -> tokens[B]``. The order of operations is
mask -> repetition penalty -> temperature -> top-k -> top-p -> draw, the
usual one (penalties and masks act on raw logits; truncation on the
tempered distribution).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from model.defaults import DEFAULT_TEMPERATURE, DEFAULT_TOP_P  # noqa: F401 -- re-exported

# A token-mask hook gets (logits [B,V], step context) and returns a bool mask
# [B,V] (True = allowed) or [V] for all rows; e.g. the REMI grammar.
TokenMaskFn = Callable[[Tensor], Tensor]


@dataclass
class SamplingParams:
    temperature: float = 1.0  # 0 -> greedy (argmax)
    top_p: float = 1.0  # nucleus mass kept, (0, 1]
    top_k: int = 0  # 0 -> off
    repetition_penalty: float = 1.0  # >1 discourages recently seen tokens (CTRL-style)

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError("top_p must be in (0, 1]")
        if self.top_k < 0:
            raise ValueError("top_k must be >= 0")
        if self.repetition_penalty <= 0:
            raise ValueError("repetition_penalty must be > 0")


def make_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator for reproducible sampling (seed None -> nondeterministic)."""
    g = torch.Generator(device=device)
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed)
    return g


def apply_repetition_penalty(logits: Tensor, recent: Tensor, penalty: float) -> Tensor:
    """CTRL penalty on tokens present in recent [B,W] (-1 = padding): positive
    logits divided by ``penalty``, negative ones multiplied."""
    if penalty == 1.0 or recent.numel() == 0:
        return logits
    B, V = logits.shape
    seen = torch.zeros(B, V + 1, dtype=torch.bool, device=logits.device)
    seen.scatter_(1, torch.where(recent < 0, V, recent).long(), True)
    seen = seen[:, :V]
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


def filter_logits(logits: Tensor, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """Set everything outside the top-k / top-p nucleus to -inf (per row).
    The most likely token always survives."""
    if top_k > 0 and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        # Mass strictly before each token: drop tokens once top_p is already covered.
        before = probs.cumsum(dim=-1) - probs
        drop_sorted = before >= top_p
        drop_sorted[:, 0] = False
        drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample(
    logits: Tensor,
    params: SamplingParams | None = None,
    *,
    generator: torch.Generator | None = None,
    recent_tokens: Tensor | None = None,
    mask: Tensor | TokenMaskFn | None = None,
) -> Tensor:
    """Draw one token per row of logits [B,V] -> tokens [B] (long).

    recent_tokens [B,W]: window for the repetition penalty (-1 pads).
    mask: bool [B,V] or [V] (True = allowed), or a callable returning one
    from the logits; rows with nothing allowed raise ValueError.
    generator: on the logits' device; same seed + same logits -> same tokens.
    """
    p = params or SamplingParams()
    if logits.dim() != 2:
        raise ValueError(f"logits must be [B, V], got {tuple(logits.shape)}")
    x = logits.float()
    if recent_tokens is not None:  # before the mask: -inf stays -inf either way
        x = apply_repetition_penalty(x, recent_tokens.to(x.device), p.repetition_penalty)
    allowed = None
    if mask is not None:
        allowed = mask(x) if callable(mask) else mask
        allowed = allowed.to(device=x.device, dtype=torch.bool).expand_as(x)
    if x.device.type == "cpu" and p.temperature > 0.0 and p.top_k == 0:
        return _draw_nucleus_cpu(x, p.top_p, generator, allowed, p.temperature)
    if allowed is not None:
        if not bool(allowed.any(dim=-1).all()):
            raise ValueError("token mask forbids every token in some row")
        x = x.masked_fill(~allowed, float("-inf"))
    if p.temperature == 0.0:
        return x.argmax(dim=-1)
    x = filter_logits(x / p.temperature, top_k=p.top_k)
    return _draw_nucleus_torch(x, p.top_p, generator)


def _draw_nucleus_torch(x: Tensor, top_p: float, generator: torch.Generator | None) -> Tensor:
    """The device-side twin of _draw_nucleus_cpu (no host round trip on a GPU)."""
    probs = torch.softmax(x, dim=-1)
    sorted_p, order = torch.sort(probs, dim=-1, descending=True, stable=True)
    cum = sorted_p.cumsum(dim=-1)
    if top_p < 1.0:
        keep = (cum - sorted_p) < top_p  # mass strictly before: the top token always stays
        keep[:, 0] = True
        cum = (sorted_p * keep).cumsum(dim=-1)
    u = torch.rand(cum.shape[0], 1, generator=generator, device=cum.device, dtype=cum.dtype) * cum[:, -1:]
    idx = torch.searchsorted(cum, u, right=True).clamp_(max=cum.shape[-1] - 1)
    return order.gather(1, idx).squeeze(-1)


def _draw_nucleus_cpu(x: Tensor, top_p: float, generator: torch.Generator | None,
                      allowed: Tensor | None = None, temperature: float = 1.0) -> Tensor:
    """One token per row of logits x [B,V] / temperature, among the ``allowed``
    tokens, from the top-p nucleus, by inverse CDF over the tokens in
    probability order (the same nucleus as filter_logits).

    NumPy rather than torch: a live answer draws one token per model step, and
    on [1, 330] torch's per-op dispatch made a draw ~150 us against ~40 us here.
    The uniforms still come from the torch generator, so seeds work as before.
    """
    xs = x.detach().numpy() / temperature
    if allowed is not None:
        ok = allowed.numpy()
        if not ok.any(axis=-1).all():
            raise ValueError("token mask forbids every token in some row")
        xs = np.where(ok, xs, -np.inf)
    u = torch.rand(xs.shape[0], generator=generator, dtype=torch.float64).numpy()
    out = np.empty(xs.shape[0], dtype=np.int64)
    for b, row in enumerate(xs):
        e = np.exp(row - row.max(), dtype=np.float64)  # masked tokens: exp(-inf) = 0
        order = np.argsort(-e, kind="stable")
        sp = e[order]
        cum = np.cumsum(sp)
        if top_p < 1.0:
            keep = (cum - sp) < top_p * cum[-1]  # mass strictly before: the top token always stays
            keep[0] = True
            cum = np.cumsum(sp * keep)
        idx = min(int(np.searchsorted(cum, u[b] * cum[-1], side="right")), len(cum) - 1)
        out[b] = order[idx]
    return torch.from_numpy(out)
