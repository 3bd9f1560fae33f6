"""The plain per-step WKV-7 loop: slow, obvious, float64-capable. The oracle.

All WKV operators share one signature (see model/wkv/__init__.py):

    y, state_out = op(r, log_w, k, v, a, b, state=None)

r, log_w, k, v, a, b: [B, T, H, N]; state: [B, H, N, N] indexed
[batch, head, value i, key j]. Per head and step t:

    S_t = S_{t-1} diag(exp(log_w_t)) + (S_{t-1} a_t) b_t^T + v_t k_t^T
    y_t = S_t r_t

log_w is the log of the decay (<= 0); the model feeds it in
[-exp(-0.5), 0], i.e. a decay in (0.545, 1).
"""
from __future__ import annotations

import torch
from torch import Tensor


def wkv_reference(
    r: Tensor, log_w: Tensor, k: Tensor, v: Tensor, a: Tensor, b: Tensor, state: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    B, T, H, N = r.shape
    # fp64 stays fp64 (oracle); everything else runs in fp32 like the state.
    out_dtype = r.dtype
    ct = torch.float64 if r.dtype == torch.float64 else torch.float32
    r, w, k, v, a, b = (t.to(ct) for t in (r, log_w.exp(), k, v, a, b))
    if state is None:
        s = torch.zeros(B, H, N, N, dtype=ct, device=r.device)
    else:
        s = state.to(ct)
    ys = []
    for t in range(T):
        sa = torch.einsum("bhij,bhj->bhi", s, a[:, t])
        s = (
            s * w[:, t, :, None, :]
            + sa[..., :, None] * b[:, t, :, None, :]
            + v[:, t, :, :, None] * k[:, t, :, None, :]
        )
        ys.append(torch.einsum("bhij,bhj->bhi", s, r[:, t]))
    y = torch.stack(ys, dim=1) if ys else r.new_zeros(B, 0, H, N)
    return y.to(out_dtype), s
