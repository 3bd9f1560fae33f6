"""RWKV-7 ("x070") blocks with RWKV-LM's parameter names, shapes and init.

Names and shapes match RWKV-LM so that ``model.export_rwkv`` can hand the
state dict to BlinkDL's ``rwkv`` package unchanged. One difference: layer 0
has no value-residual LoRA (v0/v1/v2); RWKV-LM creates it but never uses it,
and an unused parameter would never get a gradient.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .config import RWKVConfig
from .wkv import WKVOp

# Decay is exp(-DECAY_SCALE * sigmoid(z)), i.e. clamped into (0.545, 1):
# RWKV-LM's w = -softplus(-z) - 0.5 followed by exp(-exp(w)).
DECAY_SCALE = math.exp(-0.5)
GROUPNORM_EPS = 64e-5  # RWKV-LM's ln_x eps (head_size 64 * 1e-5)


def wkv_dtype(dtype: torch.dtype) -> torch.dtype:
    """Precision of the decay and the WKV state: fp32 for fp32/bf16/fp16
    models, fp64 for fp64 ones (so fp64 runs can check the maths tightly)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _ortho(shape: tuple[int, int], scale: float) -> Tensor:
    # RWKV-LM's ortho_init: orthogonal with gain sqrt(rows/cols) when tall.
    x = torch.empty(shape)
    gain = math.sqrt(shape[0] / shape[1]) if shape[0] > shape[1] else 1.0
    nn.init.orthogonal_(x, gain=gain * scale)
    return x


def _token_shift(x: Tensor, x_prev: Tensor | None) -> Tensor:
    """x[B,T,C] -> the previous position's x; x_prev [B,C] (or zeros) before t=0."""
    first = torch.zeros_like(x[:, :1]) if x_prev is None else x_prev[:, None].to(x.dtype)
    return torch.cat([first, x[:, :-1]], dim=1)


class TimeMix(nn.Module):
    """RWKV_Tmix_x070: the WKV-7 attention replacement."""

    def __init__(self, cfg: RWKVConfig, layer_id: int) -> None:
        super().__init__()
        self.layer_id = layer_id
        C, H, N = cfg.n_embd, cfg.n_head, cfg.head_size
        self.n_head, self.head_size = H, N
        d = cfg.lora_dims
        ratio_0_to_1 = layer_id / max(cfg.n_layer - 1, 1)
        ratio_1_to_almost0 = 1.0 - layer_id / cfg.n_layer
        ddd = (torch.arange(C, dtype=torch.float32) / C).view(1, 1, C)
        n = torch.arange(C, dtype=torch.float32)
        linear = n / max(C - 1, 1) - 0.5
        zigzag = ((n % N) - (N - 1) / 2) / ((N - 1) / 2)
        zigzag = zigzag * zigzag.abs()
        www = -6 + 6 * (n / max(C - 1, 1)) ** (1 + 1 * ratio_0_to_1**0.3)

        # Token-shift lerps: deeper layers lean more on the current token.
        self.x_r = nn.Parameter(1.0 - ddd.pow(0.2 * ratio_1_to_almost0))
        self.x_w = nn.Parameter(1.0 - ddd.pow(0.9 * ratio_1_to_almost0))
        self.x_k = nn.Parameter(1.0 - ddd.pow(0.7 * ratio_1_to_almost0))
        self.x_v = nn.Parameter(1.0 - ddd.pow(0.7 * ratio_1_to_almost0))
        self.x_a = nn.Parameter(1.0 - ddd.pow(0.9 * ratio_1_to_almost0))
        self.x_g = nn.Parameter(1.0 - ddd.pow(0.2 * ratio_1_to_almost0))
        # Decay: a per-channel schedule from fast (-6) to slow, zigzag within a head.
        self.w0 = nn.Parameter((www + 0.5 + zigzag * 2.5).view(1, 1, C))
        self.w1 = nn.Parameter(torch.zeros(C, d["w"]))
        self.w2 = nn.Parameter(_ortho((d["w"], C), 0.1))
        # In-context learning rate a.
        self.a0 = nn.Parameter((torch.zeros(C) - 0.19 + zigzag * 0.3 + linear * 0.4).view(1, 1, C))
        self.a1 = nn.Parameter(torch.zeros(C, d["a"]))
        self.a2 = nn.Parameter(_ortho((d["a"], C), 0.1))
        if layer_id > 0:  # value residual towards layer 0's v
            self.v0 = nn.Parameter((torch.zeros(C) + 0.73 - linear * 0.4).view(1, 1, C))
            self.v1 = nn.Parameter(torch.zeros(C, d["v"]))
            self.v2 = nn.Parameter(_ortho((d["v"], C), 0.1))
        self.g1 = nn.Parameter(torch.zeros(C, d["g"]))
        self.g2 = nn.Parameter(_ortho((d["g"], C), 0.1))
        self.k_k = nn.Parameter((torch.zeros(C) + 0.71 - linear * 0.1).view(1, 1, C))
        self.k_a = nn.Parameter(torch.zeros(1, 1, C) + 1.02)
        self.r_k = nn.Parameter(torch.zeros(H, N) - 0.04)

        self.receptance = nn.Linear(C, C, bias=False)
        self.key = nn.Linear(C, C, bias=False)
        self.value = nn.Linear(C, C, bias=False)
        self.output = nn.Linear(C, C, bias=False)
        self.ln_x = nn.GroupNorm(H, C, eps=GROUPNORM_EPS)
        with torch.no_grad():
            # RWKV-LM's generate_init_weight: orthogonal projections (key
            # scaled 0.1), zero output projection, ln_x scaled by depth.
            self.receptance.weight.copy_(_ortho((C, C), 1.0))
            self.key.weight.copy_(_ortho((C, C), 0.1))
            self.value.weight.copy_(_ortho((C, C), 1.0))
            self.output.weight.zero_()
            self.ln_x.weight.fill_(((1 + layer_id) / cfg.n_layer) ** 0.7)
            self.ln_x.bias.zero_()

    def _mix(self, x: Tensor, xx: Tensor, v_first: Tensor | None):
        """Projections for inputs x[B,T,C] and the shift delta xx = x_prev - x.

        Returns the WKV inputs r, log_w (fp32), k, v, a = -kk, b = kk*iclr
        (all [B,T,C]), then the output gate g and v_first (layer 0's v).
        """
        xr, xw, xk, xv, xa, xg = (torch.addcmul(x, xx, m) for m in (self.x_r, self.x_w, self.x_k, self.x_v, self.x_a, self.x_g))
        r = self.receptance(xr)
        z = self.w0 + torch.tanh(xw @ self.w1) @ self.w2
        log_w = -DECAY_SCALE * torch.sigmoid(z.to(wkv_dtype(z.dtype)))
        k = self.key(xk)
        v = self.value(xv)
        if self.layer_id == 0:
            v_first = v
        else:
            v = v + (v_first - v) * torch.sigmoid(self.v0 + (xv @ self.v1) @ self.v2)
        a = torch.sigmoid(self.a0 + (xa @ self.a1) @ self.a2)
        g = torch.sigmoid(xg @ self.g1) @ self.g2
        B, T, C = x.shape
        kk = F.normalize((k * self.k_k).view(B, T, self.n_head, -1), dim=-1, p=2.0).view(B, T, C)
        k = k * (1 + (a - 1) * self.k_a)
        return r, log_w, k, v, -kk, kk * a, g, v_first

    def _out(self, y: Tensor, r: Tensor, k: Tensor, v: Tensor, g: Tensor) -> Tensor:
        B, T, C = r.shape
        H = self.n_head
        y = F.group_norm(y.reshape(B * T, C), H, self.ln_x.weight, self.ln_x.bias, GROUPNORM_EPS).view(B, T, C)
        bonus = (r.view(B, T, H, -1) * k.view(B, T, H, -1) * self.r_k).sum(-1, keepdim=True) * v.view(B, T, H, -1)
        return self.output((y + bonus.view(B, T, C)) * g)

    def forward(
        self, x: Tensor, x_prev: Tensor | None, v_first: Tensor | None, wkv_state: Tensor | None, op: WKVOp
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Parallel mode. x [B,T,C] -> (out [B,T,C], v_first, wkv_state_out)."""
        B, T, C = x.shape
        H, N = self.n_head, self.head_size
        r, log_w, k, v, a, b, g, v_first = self._mix(x, _token_shift(x, x_prev) - x, v_first)
        y, s = op(*(t.view(B, T, H, N) for t in (r, log_w, k, v, a, b)), state=wkv_state)
        return self._out(y.reshape(B, T, C).to(x.dtype), r, k, v, g), v_first, s

    def step(self, x: Tensor, x_prev: Tensor, v_first: Tensor | None, s: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Recurrent mode. x [B,C] -> (out [B,C], v_first, new wkv state [B,H,N,N]
        in ``wkv_dtype``)."""
        B, C = x.shape
        H, N = self.n_head, self.head_size
        r, log_w, k, v, a, b, g, v_first = self._mix(x[:, None], (x_prev - x)[:, None], v_first)
        rf, wf, kf, vf, af, bf = (t.view(B, H, N).to(s.dtype) for t in (r, log_w.exp(), k, v, a, b))
        sa = (s @ af[..., None])  # [B,H,N,1]
        s = s * wf[:, :, None, :] + sa * bf[:, :, None, :] + vf[..., None] * kf[:, :, None, :]
        y = (s @ rf[..., None]).view(B, 1, C).to(x.dtype)
        return self._out(y, r, k, v, g)[:, 0], v_first, s


class ChannelMix(nn.Module):
    """RWKV_CMix_x070: token-shifted ReLU^2 MLP."""

    def __init__(self, cfg: RWKVConfig, layer_id: int) -> None:
        super().__init__()
        C = cfg.n_embd
        ratio_1_to_almost0 = 1.0 - layer_id / cfg.n_layer
        ddd = (torch.arange(C, dtype=torch.float32) / C).view(1, 1, C)
        self.x_k = nn.Parameter(1.0 - ddd.pow(ratio_1_to_almost0**4))
        self.key = nn.Linear(C, cfg.ffn_dim, bias=False)
        self.value = nn.Linear(cfg.ffn_dim, C, bias=False)
        with torch.no_grad():
            self.key.weight.copy_(_ortho((cfg.ffn_dim, C), 1.0))
            self.value.weight.zero_()

    def forward(self, x: Tensor, x_prev: Tensor | None) -> Tensor:
        """x [B,T,C] (parallel) -> [B,T,C]."""
        k = torch.addcmul(x, _token_shift(x, x_prev) - x, self.x_k)
        return self.value(torch.relu(self.key(k)) ** 2)

    def step(self, x: Tensor, x_prev: Tensor) -> Tensor:
        """x [B,C] (recurrent) -> [B,C]."""
        k = torch.addcmul(x, x_prev - x, self.x_k.view(-1))
        return self.value(torch.relu(self.key(k)) ** 2)


class Block(nn.Module):
    def __init__(self, cfg: RWKVConfig, layer_id: int) -> None:
        super().__init__()
        self.layer_id = layer_id
        C = cfg.n_embd
        if layer_id == 0:
            self.ln0 = nn.LayerNorm(C)  # applied to the embedding
        self.ln1 = nn.LayerNorm(C)
        self.ln2 = nn.LayerNorm(C)
        self.att = TimeMix(cfg, layer_id)
        self.ffn = ChannelMix(cfg, layer_id)
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
