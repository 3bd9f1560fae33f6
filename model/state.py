"""Recurrent state of RWKV7: everything a step needs from the past."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class RWKVState:
    """Per-layer state, stacked on a leading layer axis.

    att_x: [n_layer, B, C]        last ln1 output (time-mix token shift), model dtype
    wkv:   [n_layer, B, H, N, N]  WKV matrix state [value, key], fp32 (fp64 for fp64 models)
    ffn_x: [n_layer, B, C]        last ln2 output (channel-mix token shift), model dtype
    """

    att_x: Tensor
    wkv: Tensor
    ffn_x: Tensor

    @property
    def batch_size(self) -> int:
        return self.att_x.shape[1]

    @property
    def device(self) -> torch.device:
        return self.att_x.device

    def clone(self) -> "RWKVState":
        return RWKVState(self.att_x.clone(), self.wkv.clone(), self.ffn_x.clone())

    def select(self, index: Tensor | list[int]) -> "RWKVState":
        """Rows ``index`` of the batch (a copy): fork or reorder variations.

        ``state.select([0] * k)`` turns a batch-1 state into k identical ones.
        """
        idx = torch.as_tensor(index, dtype=torch.long, device=self.att_x.device)
        return RWKVState(self.att_x[:, idx].clone(), self.wkv[:, idx].clone(), self.ffn_x[:, idx].clone())

    def repeat(self, k: int) -> "RWKVState":
        """Each batch row repeated k times in place order (row0 x k, row1 x k, ...)."""
        return RWKVState(*(t.repeat_interleave(k, dim=1) for t in (self.att_x, self.wkv, self.ffn_x)))

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "RWKVState":
        """Move; ``dtype`` applies to the token-shift vectors only (the WKV
        state keeps its precision)."""
        return RWKVState(
            self.att_x.to(device=device, dtype=dtype),
            self.wkv.to(device=device),
            self.ffn_x.to(device=device, dtype=dtype),
        )

    def copy_(self, other: "RWKVState") -> "RWKVState":
        self.att_x.copy_(other.att_x)
        self.wkv.copy_(other.wkv)
        self.ffn_x.copy_(other.ffn_x)
        return self
