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
    dS0 = dY^T G + dS_L diag(W_L) + (B̂ dS_L^T)^T P   (the reverse loop over chunks)

and the scale factors W_{t-1}, W_t, 1/W_t, W_L/W_t give the input gradients
and, through x * dx of each scaled tensor, the log-decay gradient (a reverse
cumulative sum inside the chunk). Every product is again a ratio <= 1 of
decays, so fp32 stays accurate for the same reasons as the forward.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .chunked import ChunkForward, bmm, copy_into_chunks, interaction_mask, times_w_prev


def reverse_scan(saved: ChunkForward, dy: Tensor, gs: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Backward through the chunk loop: (B̂ dS_L^T [nc,B,H,L,N_v], the gradient
    of each chunk's end state dS_L [nc,B,H,N,N], sum_i S_L * dS_L [nc,B,H,N_k],
    the initial state's gradient)."""
    nc, B, H, L, N = dy.shape
    bh = B * H
    p3, g3 = (saved.pg[..., i * L:(i + 1) * L, :].reshape(nc, bh, L, N) for i in (0, 1))
    b_h3, dy3 = saved.hat[..., :L, :].reshape(nc, bh, L, N), dy.reshape(nc, bh, L, N)
    w_l3 = saved.w_t[..., -1:, :].reshape(nc, bh, 1, N)
    s_end3 = saved.states[1:].reshape(nc, bh, N, N)
    s_dsl = torch.empty(nc, bh, N, dtype=dy.dtype, device=dy.device)
    grads = torch.empty(nc + 1, bh, N, N, dtype=dy.dtype, device=dy.device)  # dS at each chunk boundary
    if gs is None:
        grads[nc].zero_()
    else:
        grads[nc] = gs.reshape(bh, N, N)
    b_dsl = torch.empty(nc, bh, L, N, dtype=dy.dtype, device=dy.device)
    for c in range(nc - 1, -1, -1):
        d, d_prev = grads[c + 1], grads[c]
        torch.bmm(b_h3[c], d.transpose(-1, -2), out=b_dsl[c])
        torch.linalg.vecdot(s_end3[c], d, dim=-2, out=s_dsl[c])  # while dS_L is in cache
        # dS0 = dS_L diag(W_L) + dY^T G + (B̂ dS_L^T)^T P: the transpose of
        # the forward's low-rank transition, so never an N x N matrix.
        torch.mul(d, w_l3[c], out=d_prev)
        d_prev.baddbmm_(dy3[c].transpose(-1, -2), g3[c])
        d_prev.baddbmm_(b_dsl[c].transpose(-1, -2), p3[c])
    return (b_dsl.view(nc, B, H, L, N), grads[1:].view(nc, B, H, N, N), s_dsl.view(nc, B, H, N),
            grads[0].view(B, H, N, N))


def chunk_backward(saved: ChunkForward, gy: Tensor | None, gs: Tensor | None, out: list[Tensor]) -> Tensor:
    """Write the gradients of [r, log_w, k, v, a, b] into ``out`` (chunk
    layout [nc,B,H,L,N], any strides); return the initial state's."""
    L = saved.w_t.shape[-2]
    # [dZ; dY] is one buffer: dY goes straight into its lower half (the
    # only copy of the incoming gradient), dZ into the upper half below.
    dzy = torch.empty_like(saved.qv)
    dy = dzy[..., L:, :]
    if gy is None:
        dy.zero_()
    else:
        copy_into_chunks(gy.to(dy.dtype), dy)
    b_dsl, d_end, s_dsl, ds0 = reverse_scan(saved, dy, gs)
    s0 = saved.states[:-1]  # the state entering each chunk [.., N_v, N_k]
    inter = saved.inter
    qv_rows = saved.qv  # [Q; V], Q the removals q_t = S_{t-1} a_t

    k_dsl = bmm(saved.hat[..., L:, :], d_end.transpose(-1, -2))  # K̂ dS_L^T
    dq = bmm(inter[..., L:, :L].transpose(-1, -2), dy, acc=b_dsl)
    dzy[..., :L, :] = bmm(saved.e[..., :L, :].transpose(-1, -2), dq)  # dZ = U^-T dQ

    d_inter = bmm(dzy, qv_rows.transpose(-1, -2)).mul_(interaction_mask(L, dy.device))
    d_left = bmm(d_inter, saved.right, acc=bmm(dzy, s0))
    d_right = bmm(d_inter.transpose(-1, -2), saved.left)
    out[3].copy_(bmm(inter[..., :, L:].transpose(-1, -2), dzy, acc=k_dsl))  # dV
    d_hat = bmm(qv_rows, d_end)  # [dB̂; dK̂]

    # Input gradients through the scale factors.
    d_at, d_rt = d_left.split(L, dim=-2)
    times_w_prev(d_at, saved.w_t, out=out[4])  # da
    torch.mul(d_rt, saved.w_t, out=out[0])  # dr
    d_bt, d_kt = d_right.split(L, dim=-2)
    d_bh, d_kh = d_hat.split(L, dim=-2)
    w_last = saved.w_t[..., -1:, :]
    torch.addcmul(d_bt, d_bh, w_last, out=out[5]).div_(saved.w_t)  # db = (dB̃ + W_L dB̂) / W_t
    torch.addcmul(d_kt, d_kh, w_last, out=out[2]).div_(saved.w_t)  # dk

    # Log-decay. Each scaled tensor x contributes x * dx to d log W_t with
    # the sign of its exponent: + for R̃ (W_t), - for B̃, K̃ (1/W_t) and the
    # 1/W_t of B̂, K̂; Ã's W_{t-1} puts its term on row t-1. The W_L of B̂, K̂
    # and of S0 diag(W_L) together scale all of S_L, so their part of
    # d log W_L is sum_i S_L dS_L (from the reverse scan). Then
    # d log w_t = sum over t' >= t of d log W_t'.
    a_t, r_t = saved.left.split(L, dim=-2)
    b_t, k_t = saved.right.split(L, dim=-2)
    b_h, k_h = saved.hat.split(L, dim=-2)
    dlc = r_t * d_rt
    for x, dx in ((b_t, d_bt), (k_t, d_kt), (b_h, d_bh), (k_h, d_kh)):
        dlc.addcmul_(x, dx, value=-1)
    dlc[..., :-1, :].addcmul_(a_t[..., 1:, :], d_at[..., 1:, :])
    dlc[..., -1, :] += s_dsl
    out[1].copy_(dlc.flip(-2).cumsum(-2).flip(-2))  # d log w
    return ds0
