"""Hand-written backward pass of the chunked WKV-7 operator (see chunked.py).

Per chunk, with the chunk's start state S0 and the gradient dS_L of its end
state, the forward is (U = I - A_b, Q = U^-1 (Ã S0^T + A_k V) the removals)

    Y   = R̃ S0^T + R_b Q + R_k V
    S_L = S0 diag(W_L) + Q^T B̂ + V^T K̂

so, by the chain rule through U^-1,

    dQ  = R_b^T dY + B̂ dS_L^T,      dZ = U^-T dQ
    d[A_b A_k; R_b R_k] = [dZ; dY] [Q; V]^T   (masked like the forward)
    d[Ã; R̃] = [dZ; dY] S0 + dInter [B̃; K̃],   d[B̃; K̃] = dInter^T [Ã; R̃]
    dV  = [A_k; R_k]^T [dZ; dY] + K̂ dS_L^T,   d[B̂; K̂] = [Q; V] dS_L
    dS0 = dY^T G + dS_L E^T                    (the reverse scan over chunks)

and the scale factors W_{t-1}, W_t, 1/W_t, W_L/W_t give the input gradients
and, through x * dx of each scaled tensor, the log-decay gradient (a reverse
cumulative sum inside the chunk). Every product is again a ratio <= 1 of
decays, so fp32 stays accurate for the same reasons as the forward.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .chunked import ChunkForward, bmm, interaction_mask


def reverse_scan(saved: ChunkForward, dy: Tensor, gs: Tensor | None) -> tuple[Tensor, Tensor]:
    """Gradient of each chunk's end state [B,H,nc,N,N] and of the initial state."""
    B, H, nc, L, N = dy.shape
    base = bmm(dy.transpose(-1, -2), saved.g).view(B * H, nc, N, N)
    e_t = saved.e.view(B * H, nc, N, N).transpose(-1, -2)
    ds = torch.zeros(B * H, N, N, dtype=dy.dtype, device=dy.device) if gs is None else gs.to(dy.dtype).reshape(B * H, N, N)
    d_end = torch.empty_like(base)
    for c in range(nc - 1, -1, -1):
        d_end[:, c] = ds
        ds = torch.baddbmm(base[:, c], ds, e_t[:, c])
    return d_end.view(B, H, nc, N, N), ds.view(B, H, N, N)


def chunk_backward(saved: ChunkForward, dy: Tensor, gs: Tensor | None) -> list[Tensor]:
    """Gradients [r, log_w, k, v, a, b] in chunk layout [B,H,nc,L,N], then the initial state's."""
    L = dy.shape[-2]
    d_end, ds0 = reverse_scan(saved, dy, gs)
    s0 = saved.s_start  # [.., N_v, N_k]
    inter = saved.inter
    p, qv = saved.sol.split(dy.shape[-1], dim=-1)
    q = bmm(p, s0.transpose(-1, -2), add=qv)  # removals q_t = S_{t-1} a_t, [.., L, N_v]
    qv_rows = torch.cat([q, saved.v], dim=-2)  # [Q; V]

    hat_dsl = bmm(saved.hat, d_end.transpose(-1, -2))  # [B̂ dS_L^T; K̂ dS_L^T]
    b_dsl, k_dsl = hat_dsl.split(L, dim=-2)
    dq = bmm(inter[..., L:, :L].transpose(-1, -2), dy, add=b_dsl)
    dz = bmm(saved.inv_u.transpose(-1, -2), dq)
    dzy = torch.cat([dz, dy], dim=-2)

    d_inter = bmm(dzy, qv_rows.transpose(-1, -2)).mul_(interaction_mask(L, dy.device))
    d_left = bmm(d_inter, saved.right, add=bmm(dzy, s0))
    d_right = bmm(d_inter.transpose(-1, -2), saved.left)
    dv = bmm(inter[..., :, L:].transpose(-1, -2), dzy, add=k_dsl)
    d_hat = bmm(qv_rows, d_end)  # [dB̂; dK̂]

    # Input gradients through the scale factors.
    d_at, d_rt = d_left.split(L, dim=-2)
    da, dr = d_at * saved.w_prev, d_rt * saved.w_t
    d_bt, d_kt = d_right.split(L, dim=-2)
    d_bh, d_kh = d_hat.split(L, dim=-2)
    db = torch.addcmul(d_bt * saved.inv_w, d_bh, saved.tail)
    dk = torch.addcmul(d_kt * saved.inv_w, d_kh, saved.tail)

    # Log-decay: every scaled tensor x contributes x * dx to d log W_t with
    # the sign of its exponent; Ã uses W_{t-1}, so its term also goes
    # directly to log w_t with a minus sign.
    a_t, r_t = saved.left.split(L, dim=-2)
    b_t, k_t = saved.right.split(L, dim=-2)
    b_h, k_h = saved.hat.split(L, dim=-2)
    xa = a_t * d_at
    xh = (b_h * d_bh).addcmul_(k_h, d_kh)
    dlc = (r_t * d_rt).add_(xa).addcmul_(b_t, d_bt, value=-1).addcmul_(k_t, d_kt, value=-1).sub_(xh)
    w_last = saved.w_t[..., -1, :]
    dlc[..., -1, :] += xh.sum(dim=-2) + w_last * (s0 * d_end).sum(dim=-2)
    dlw = dlc.flip(-2).cumsum(-2).flip(-2).sub_(xa)
    return [dr, dlw, dk, dv, da, db, ds0]
