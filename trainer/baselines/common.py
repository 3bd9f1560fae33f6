"""What the baselines share with RWKV7: target slicing and AdamW groups."""
from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor


def select_targets(x: Tensor, target_index: Tensor | None) -> Tensor:
    """x [B,T,C] -> rows where the LM head runs (same rules as RWKV7.forward)."""
    if target_index is None:
        return x
    if target_index.dtype == torch.bool:
        return x[target_index]
    return x[:, target_index]


def matrix_decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay on 2-D weights only (projections, embedding, head), as for RWKV7."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.dim() == 2 and "weight" in name else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay, "lr_scale": 1.0},
        {"params": no_decay, "weight_decay": 0.0, "lr_scale": 1.0},
    ]


class BackboneMixin:
    """The small interface every baseline shares with RWKV7 (device, size,
    optimizer groups), written once for all of them."""

    head: nn.Linear

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())  # type: ignore[attr-defined]

    def param_groups(self, weight_decay: float) -> list[dict]:
        return matrix_decay_groups(self, weight_decay)  # type: ignore[arg-type]
