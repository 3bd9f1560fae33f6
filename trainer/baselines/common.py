"""What the baselines share with RWKV7: target slicing and AdamW groups."""
from __future__ import annotations

import dataclasses
from typing import Any

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


class _SteppedState:
    """A baseline's recurrent state (LSTM (h, c), the Transformer's KV cache:
    tensors with the batch on dim 1) with the ``repeat`` the generator forks by."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def repeat(self, k: int) -> "_SteppedState":
        def rep(x: Any) -> Any:
            return x.repeat_interleave(k, dim=1) if isinstance(x, Tensor) else x
        raw = self.raw
        if dataclasses.is_dataclass(raw):
            return _SteppedState(dataclasses.replace(
                raw, **{f.name: rep(getattr(raw, f.name)) for f in dataclasses.fields(raw)}))
        items = [rep(x) for x in raw]
        return _SteppedState(type(raw)(items) if type(raw) in (tuple, list) else type(raw)(*items))


class AsRecurrent:
    """The recurrent interface of ``model.generation`` (``prefill``, ``step``
    with ``inplace``, forkable state) over a baseline's ``init_state``/``step``,
    so baselines are sampled by the same generator as RWKV-7 in ``eval``."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def parameters(self):  # the generator reads the device off the parameters
        return self.model.parameters()

    def num_params(self) -> int:
        return self.model.num_params()  # type: ignore[operator]

    @torch.no_grad()
    def prefill(self, ids: Tensor) -> tuple[Tensor, _SteppedState]:
        state = self.model.init_state(ids.shape[0])  # type: ignore[operator]
        logits = None
        for t in range(ids.shape[1]):
            logits, state = self.model.step(ids[:, t], state)  # type: ignore[operator]
        return logits, _SteppedState(state)

    def step(self, tokens: Tensor, state: _SteppedState, inplace: bool = False) -> tuple[Tensor, _SteppedState]:
        logits, raw = self.model.step(tokens, state.raw)  # type: ignore[operator]
        return logits, _SteppedState(raw)
