"""RWKV7: one set of weights, two execution modes.

- parallel: ``logits = m(tokens[B,T], target_index=None)`` for training;
  ``logits_last, state = m.prefill(tokens[B,T], state)`` to ingest a block;
- recurrent: ``logits[B,V], state = m.step(tokens[B], state)``, O(1) a token.

``step`` on CPU/fp32 without autograd uses the native fused step
(model/fast_step.py) when it builds; ``step(..., impl="torch")`` forces the
pure-PyTorch path it is tested against.
"""
from __future__ import annotations

import functools

import torch
import torch.nn as nn
from torch import Tensor

from .config import RWKVConfig
from .layers import Block, wkv_dtype
from .state import RWKVState
from .wkv import WKVOp, select_wkv, wkv_chunked


class RWKV7(nn.Module):
    def __init__(self, cfg: RWKVConfig) -> None:
        super().__init__()
        self.cfg = cfg
        C, V = cfg.n_embd, cfg.vocab_size
        self.emb = nn.Embedding(V, C)
        self.blocks = nn.ModuleList([Block(cfg, i) for i in range(cfg.n_layer)])
        self.ln_out = nn.LayerNorm(C)
        self.head = nn.Linear(C, V, bias=False)
        with torch.no_grad():
            # RWKV-LM: tiny embedding (ln0 normalises it), orthogonal head.
            nn.init.uniform_(self.emb.weight, -1e-4, 1e-4)
            gain = 0.5 * (V / C) ** 0.5 if V > C else 0.5
            nn.init.orthogonal_(self.head.weight, gain=gain)
        self._fast = None  # native step runner, built lazily (fast_step.py)
        # Weights the native step reads: "fp32" (exact) or "bf16" (big matrices
        # rounded to bf16: half the memory traffic, logits within ~1e-2).
        self.native_precision = "fp32"

    # ------------------------------------------------------------------ utils
    def _apply(self, fn, recurse=True):  # .to() / .float() / .cuda() move parameters
        self._fast = None  # the native step's pointer table is stale now
        return super()._apply(fn, recurse)

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.head.weight.dtype

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def param_groups(self, weight_decay: float) -> list[dict]:
        """AdamW groups following RWKV-LM: decay only on 2-D ``*.weight``
        matrices (projections, embedding, head); never on LoRAs, lerps, norms.
        ``att.w0`` gets ``lr_scale`` 2 as in RWKV-LM (the trainer multiplies)."""
        decay, no_decay, w0 = [], [], []
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            if name.endswith("att.w0"):
                w0.append(p)
            elif p.dim() == 2 and name.endswith(".weight"):
                decay.append(p)
            else:
                no_decay.append(p)
        return [
            {"params": decay, "weight_decay": weight_decay, "lr_scale": 1.0},
            {"params": no_decay, "weight_decay": 0.0, "lr_scale": 1.0},
            {"params": w0, "weight_decay": 0.0, "lr_scale": 2.0},
        ]

    def init_state(self, batch: int, device: torch.device | str | None = None) -> RWKVState:
        """Zero state (the state before any token) on the model's device; the
        WKV part is fp32 whatever the model dtype (fp64 for fp64 models)."""
        cfg = self.cfg
        dev = self.device if device is None else torch.device(device)
        L, C, H, N = cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.head_size
        return RWKVState(
            att_x=torch.zeros(L, batch, C, device=dev, dtype=self.dtype),
            wkv=torch.zeros(L, batch, H, N, N, device=dev, dtype=wkv_dtype(self.dtype)),
            ffn_x=torch.zeros(L, batch, C, device=dev, dtype=self.dtype),
        )

    def _op(self, device: torch.device) -> WKVOp:
        op = select_wkv(self.cfg.wkv, device.type)
        if op is wkv_chunked:
            return functools.partial(wkv_chunked, chunk_len=self.cfg.chunk_len)
        return op

    # --------------------------------------------------------------- parallel
    def _hidden(self, tokens: Tensor, state: RWKVState | None) -> tuple[Tensor, RWKVState | None]:
        """Run all blocks on tokens [B,T]; returns ln_out-ready x [B,T,C] and,
        when a state is given, the state after the last token."""
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be [B, T], got {tuple(tokens.shape)}")
        op = self._op(tokens.device)
        x = self.blocks[0].ln0(self.emb(tokens))
        v_first = None
        att_x, wkv, ffn_x = [], [], []
        for i, blk in enumerate(self.blocks):
            xa = blk.ln1(x)
            out, v_first, s = blk.att(
                xa,
                None if state is None else state.att_x[i],
                v_first,
                None if state is None else state.wkv[i],
                op,
            )
            x = x + blk.drop(out)
            xf = blk.ln2(x)
            x = x + blk.drop(blk.ffn(xf, None if state is None else state.ffn_x[i]))
            if state is not None:
                att_x.append(xa[:, -1])
                wkv.append(s.to(wkv_dtype(x.dtype)))
                ffn_x.append(xf[:, -1])
        new_state = None
        if state is not None:
            new_state = RWKVState(torch.stack(att_x), torch.stack(wkv), torch.stack(ffn_x))
        return x, new_state

    def _logits(self, x: Tensor) -> Tensor:
        return self.head(self.ln_out(x))

    def forward(self, tokens: Tensor, target_index: Tensor | None = None,
                state: RWKVState | None = None) -> Tensor:
        """tokens [B,T] (any T) -> logits.

        ``state``: where every row starts (default: the zero state). Gradients
        flow into it, which is how a style's initial state is learned
        (trainer/style_tuning.py); a batch-1 state may be expanded to [.., B, ..].

        target_index selects where the LM head runs ("physical slicing": the
        head and its [*, V] activations exist only where the loss is taken):
        - None: every position, logits [B,T,V];
        - 1-D long tensor of time positions: logits [B,len(idx),V];
        - 2-D bool mask [B,T]: logits [mask.sum(),V] in row-major order.
        """
        x, _ = self._hidden(tokens, state)
        if target_index is not None:
            if target_index.dtype == torch.bool:
                if target_index.shape != tokens.shape:
                    raise ValueError("a boolean target_index must have the tokens' shape [B, T]")
                x = x[target_index]
            else:
                x = x[:, target_index]
        return self._logits(x)

    @torch.no_grad()
    def prefill(self, tokens: Tensor, state: RWKVState | None = None) -> tuple[Tensor, RWKVState]:
        """Ingest a block tokens [B,T] (T >= 1) in parallel mode.

        Returns (logits after the last token [B,V], state) - the same state as
        stepping the tokens one by one. The input state is not modified.
        """
        if tokens.dim() != 2 or tokens.shape[1] == 0:
            raise ValueError(f"prefill needs tokens [B, T] with T >= 1, got {tuple(tokens.shape)}")
        if state is None:
            state = self.init_state(tokens.shape[0])
        x, new_state = self._hidden(tokens, state)
        assert new_state is not None
        return self._logits(x[:, -1]), new_state

    # -------------------------------------------------------------- recurrent
    @torch.no_grad()
    def step(
        self, tokens: Tensor, state: RWKVState, *, impl: str = "auto", inplace: bool = False
    ) -> tuple[Tensor, RWKVState]:
        """One token per batch row: tokens [B] -> (logits [B,V], next state).

        impl: "auto" (native fused step on CPU fp32 models, else
        PyTorch), "torch" or "native". With inplace=True the given state is
        updated and returned (no copy; what the live engine wants). Inference
        only: runs without autograd.
        """
        if tokens.dim() != 1:
            raise ValueError(f"tokens must be [B], got {tuple(tokens.shape)}")
        if impl not in ("auto", "torch", "native"):
            raise ValueError(f"unknown step impl {impl!r}")
        if impl != "torch":
            from .fast_step import native_step

            out = native_step(self, tokens, state, inplace=inplace, required=impl == "native")
            if out is not None:
                return out
        logits, new_state = self._step_torch(tokens, state)
        if inplace:
            return logits, state.copy_(new_state)
        return logits, new_state

    def _step_torch(self, tokens: Tensor, state: RWKVState) -> tuple[Tensor, RWKVState]:
        x = self.blocks[0].ln0(self.emb(tokens))
        v_first = None
        att_x, wkv, ffn_x = [], [], []
        for i, blk in enumerate(self.blocks):
            xa = blk.ln1(x)
            out, v_first, s = blk.att.step(xa, state.att_x[i], v_first, state.wkv[i])
            x = x + out
            xf = blk.ln2(x)
            x = x + blk.ffn.step(xf, state.ffn_x[i])
            att_x.append(xa)
            wkv.append(s)
            ffn_x.append(xf)
        return self._logits(x), RWKVState(torch.stack(att_x), torch.stack(wkv), torch.stack(ffn_x))
