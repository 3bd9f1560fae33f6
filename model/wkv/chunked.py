"""Chunked WKV-7 in plain PyTorch: the CPU default and the GPU fallback.

Same signature and maths as ``reference.wkv_reference``. The sequence is cut
into chunks of L steps. Inside a chunk the recurrence is linear in the
per-step "removal" scalars q_t = S_{t-1} a_t, so (per head, rows = value dim)

    Q = P S0^T + Qv            with (I - tril(Ã B̃^T, -1)) [P | Qv] = [Ã | tril(Ã K̃^T, -1) V]
    Y = G S0^T + Y_intra       with G = R̃ + tril(R̃ B̃^T) P,  Y_intra = tril(R̃ B̃^T) Qv + tril(R̃ K̃^T) V
    S_L = S0 E + F             with E = diag(W_L) + P^T B̂,    F = Qv^T B̂ + V^T K̂

where W_t is the in-chunk cumulative decay, Ã = a*W_{t-1}, R̃ = r*W_t,
B̃ = b/W_t, K̃ = k/W_t, B̂ = b*W_L/W_t, K̂ = k*W_L/W_t. Everything except the
tiny S -> S E + F scan runs batched over all chunks at once; autograd gives
the backward pass.

Numerics: 1/W_t grows like decay^-L. With the model's decay floor 0.545 and
L = 32 that is <= 2.7e8, far from fp32 limits (underflow of W_t would need
L > 140), and every product we form is a ratio W_t/W_tau <= 1, so no
cancellation. Much stronger decays than the model's need the reference op.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

DEFAULT_CHUNK_LEN = 32  # measured: 2x faster than 16 on CPU, no accuracy loss


def wkv_chunked(
    r: Tensor,
    log_w: Tensor,
    k: Tensor,
    v: Tensor,
    a: Tensor,
    b: Tensor,
    state: Tensor | None = None,
    chunk_len: int = DEFAULT_CHUNK_LEN,
) -> tuple[Tensor, Tensor]:
    B, T, H, N = r.shape
    out_dtype = r.dtype
    ct = torch.float64 if r.dtype == torch.float64 else torch.float32
    L = chunk_len
    pad = (-T) % L
    nc = (T + pad) // L

    def prep(x: Tensor) -> Tensor:
        # [B,T,H,N] -> [B,H,nc,L,N]; zero padding = no-op steps (log_w = 0
        # keeps the state, k = v = a = b = r = 0 add nothing).
        x = x.to(ct)
        if pad:
            x = F.pad(x, (0, 0, 0, 0, 0, pad))
        return x.view(B, nc, L, H, N).permute(0, 3, 1, 2, 4).contiguous()  # matmul-ready

    r_, lw, k_, v_, a_, b_ = (prep(x) for x in (r, log_w, k, v, a, b))
    s0 = torch.zeros(B, H, N, N, dtype=ct, device=r.device) if state is None else state.to(ct)
    if T == 0:
        return r.new_zeros(B, 0, H, N), s0

    lc = lw.cumsum(dim=-2)  # log W_t (inclusive)
    lc_last = lc[..., -1:, :]  # log W_L
    inv_w = torch.exp(-lc)
    # Rows [Ã; R̃] against columns [B̃; K̃]: the four in-chunk interaction
    # matrices come out of one batched matmul.
    left = torch.cat([a_ * (lc - lw).exp(), r_ * lc.exp()], dim=-2)  # [.., 2L, N]
    right = torch.cat([b_, k_], dim=-2) * inv_w.repeat(1, 1, 1, 2, 1)  # [.., 2L, N]
    inter = left @ right.transpose(-1, -2)  # [.., 2L, 2L]
    # split, not slicing: a slice's backward zero-fills a full-size gradient
    # per slice (14% of a training step's WKV time); split's is one cat.
    rows_a, rows_r = inter.split(L, dim=-2)
    a_b, a_k = (x.tril(-1) for x in rows_a.split(L, dim=-1))
    r_b, r_k = (x.tril(0) for x in rows_r.split(L, dim=-1))
    a_t, r_t = left.split(L, dim=-2)

    # Unit lower-triangular solve; the zero diagonal of -a_b is ignored.
    rhs = torch.cat([a_t, a_k @ v_], dim=-1)
    sol = torch.linalg.solve_triangular(-a_b, rhs, upper=False, unitriangular=True)  # [P | Qv]

    rb_p, rb_qv = (r_b @ sol).split(N, dim=-1)
    g = r_t + rb_p  # [B,H,nc,L,N_k]
    y_intra = rb_qv + r_k @ v_  # [B,H,nc,L,N_v]
    tail = torch.exp(lc_last - lc)  # W_L / W_t <= 1
    b_h, k_h = b_ * tail, k_ * tail  # B̂, K̂
    p_b, qv_b = (sol.transpose(-1, -2) @ b_h).split(N, dim=-2)  # P^T B̂, Qv^T B̂: [B,H,nc,N,N]
    e = p_b + torch.diag_embed(lc_last.squeeze(-2).exp())  # [B,H,nc,N_k,N_k]
    f = qv_b + v_.transpose(-1, -2) @ k_h  # [B,H,nc,N_v,N_k]

    # The only sequential part: one small matmul per chunk. Chunk-major,
    # contiguous slices via unbind keep the backward pass O(nc) (indexing
    # f[:, :, c] would scatter each gradient into a fresh full-size tensor).
    e_c = e.permute(2, 0, 1, 3, 4).reshape(nc, B * H, N, N).unbind(0)
    f_c = f.permute(2, 0, 1, 3, 4).reshape(nc, B * H, N, N).unbind(0)
    starts = []
    s = s0.reshape(B * H, N, N)
    for c in range(nc):
        starts.append(s)
        s = torch.baddbmm(f_c[c], s, e_c[c])
    s_start = torch.stack(starts, dim=1).view(B, H, nc, N, N)  # [B,H,nc,N_v,N_k]
    s = s.view(B, H, N, N)

    y = g @ s_start.transpose(-1, -2) + y_intra  # [B,H,nc,L,N_v]
    y = y.permute(0, 2, 3, 1, 4).reshape(B, nc * L, H, N)[:, :T]
    return y.to(out_dtype), s
