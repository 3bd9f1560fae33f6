"""A stacked LSTM language model: the classic recurrent baseline."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch import Tensor

from trainer.baselines.common import BackboneMixin, select_targets


@dataclass
class LSTMConfig:
    vocab_size: int
    n_layer: int = 2
    n_embd: int = 512  # LSTM hidden size (= embedding size)
    ctx_len: int = 512
    dropout: float = 0.0
    chunk_len: int = 1  # windows need no particular multiple

    def to_dict(self) -> dict:
        return {"arch": "lstm", **dataclasses.asdict(self)}


class LSTMLM(BackboneMixin, nn.Module):
    def __init__(self, cfg: LSTMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.lstm = nn.LSTM(cfg.n_embd, cfg.n_embd, cfg.n_layer, batch_first=True,
                            dropout=cfg.dropout if cfg.n_layer > 1 else 0.0)
        self.ln_out = nn.LayerNorm(cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)

    def forward(self, tokens: Tensor, target_index: Tensor | None = None) -> Tensor:
        x, _ = self.lstm(self.emb(tokens))  # [B,T,C]
        return self.head(self.ln_out(select_targets(x, target_index)))

    def init_state(self, batch: int) -> tuple[Tensor, Tensor]:
        z = torch.zeros(self.cfg.n_layer, batch, self.cfg.n_embd, device=self.device)
        return z, z.clone()

    @torch.no_grad()
    def step(self, tokens: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        x, state = self.lstm(self.emb(tokens)[:, None], state)
        return self.head(self.ln_out(x[:, 0])), state
