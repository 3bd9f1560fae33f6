"""WKV operators: chunked (and any other) against the per-step reference."""
from __future__ import annotations

import math

import pytest
import torch

from model.wkv import select_wkv, wkv_chunked, wkv_reference


def wkv_inputs(B: int, T: int, H: int, N: int, dtype: torch.dtype, seed: int = 0, requires_grad: bool = False):
    """Random inputs in the model's ranges: decay in (0.545, 1), a = -kk with
    kk a unit vector, b = kk * sigmoid(.), a random initial state."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    r, k, v = rnd(B, T, H, N), rnd(B, T, H, N), rnd(B, T, H, N)
    log_w = -math.exp(-0.5) * torch.sigmoid(2 * rnd(B, T, H, N))
    kk = torch.nn.functional.normalize(rnd(B, T, H, N), dim=-1)
    iclr = torch.sigmoid(rnd(B, T, H, N))
    s0 = rnd(B, H, N, N) * 0.5
    xs = [r, log_w, k, v, -kk, kk * iclr, s0]
    return [x.to(dtype).requires_grad_(requires_grad) for x in xs]


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


@pytest.mark.parametrize("T", [1, 15, 16, 17, 31, 32, 33, 200])
def test_chunked_matches_reference_forward(T: int) -> None:
    x64 = wkv_inputs(2, T, 2, 64, torch.float64, seed=T)
    y_ref, s_ref = wkv_reference(*x64[:6], state=x64[6])
    y64, s64 = wkv_chunked(*x64[:6], state=x64[6])
    assert rel(y64, y_ref) < 1e-12 and rel(s64, s_ref) < 1e-12
    x32 = [x.float() for x in x64]
    y32, s32 = wkv_chunked(*x32[:6], state=x32[6])
    assert y32.dtype == torch.float32 and s32.dtype == torch.float32
    assert rel(y32, y_ref) < 1e-5 and rel(s32, s_ref) < 1e-5


@pytest.mark.parametrize("T", [1, 15, 16, 17, 200])
def test_chunked_matches_reference_gradients(T: int) -> None:
    x64 = wkv_inputs(1, T, 2, 64, torch.float64, seed=100 + T, requires_grad=True)
    x32 = [x.detach().float().requires_grad_(True) for x in x64]
    g = torch.Generator().manual_seed(7)
    gy = torch.randn(1, T, 2, 64, generator=g, dtype=torch.float64)
    gs = torch.randn(1, 2, 64, 64, generator=g, dtype=torch.float64)

    def grads(op, xs, dtype):
        y, s = op(*xs[:6], state=xs[6])
        ((y * gy.to(dtype)).sum() + (s * gs.to(dtype)).sum()).backward()
        return [x.grad for x in xs]

    ref = grads(wkv_reference, x64, torch.float64)
    x64b = [x.detach().clone().requires_grad_(True) for x in x64]
    got64 = grads(wkv_chunked, x64b, torch.float64)
    got32 = grads(wkv_chunked, x32, torch.float32)
    for name, r_, g64, g32 in zip("r log_w k v a b state".split(), ref, got64, got32):
        assert rel(g64, r_) < 1e-10, name
        assert rel(g32, r_) < 1e-5, name


@pytest.mark.parametrize("T", [32, 96])
@pytest.mark.parametrize("loss_on", ["state", "output"])
def test_chunked_gradients_whole_chunks_strided_inputs(T: int, loss_on: str) -> None:
    """T a multiple of the chunk length takes the no-copy input views; the
    inputs here are non-contiguous, and only one of y / the state is used
    (the other's incoming gradient is None)."""
    x = wkv_inputs(2, T, 2, 32, torch.float64, seed=T)
    strided = [t.transpose(1, 2).contiguous().transpose(1, 2) for t in x[:6]]

    def grads(op, inputs):
        leaves = [t.detach().clone().requires_grad_(True) for t in inputs + [x[6]]]
        y, s = op(*leaves[:6], state=leaves[6])
        w = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)
        ((s**2).sum() if loss_on == "state" else (y * w).sum()).backward()
        return [t.grad for t in leaves]

    ref = grads(wkv_reference, list(x[:6]))
    for inputs in (list(x[:6]), strided):
        for name, g, r_ in zip("r log_w k v a b state".split(), grads(wkv_chunked, inputs), ref):
            if r_ is None:  # r does not reach the state
                assert g is None or not g.any(), name
            else:
                assert rel(g, r_) < 1e-10, name


def test_zero_state_default_and_empty_sequence() -> None:
    x = wkv_inputs(1, 5, 1, 64, torch.float32)
    y1, s1 = wkv_chunked(*x[:6])
    y2, s2 = wkv_chunked(*x[:6], state=torch.zeros_like(x[6]))
    assert torch.equal(y1, y2) and torch.equal(s1, s2)
    e = [t[:, :0] for t in x[:6]]
    y, s = wkv_chunked(*e, state=x[6])
    assert y.shape == (1, 0, 1, 64) and torch.equal(s, x[6])


def test_chunked_split_sequence_equals_whole() -> None:
    # Carrying the state across calls is what prefill relies on.
    x = wkv_inputs(1, 40, 2, 64, torch.float64, seed=3)
    y, s = wkv_chunked(*x[:6], state=x[6])
    ya, sa = wkv_chunked(*(t[:, :23] for t in x[:6]), state=x[6])
    yb, sb = wkv_chunked(*(t[:, 23:] for t in x[:6]), state=sa)
    assert rel(torch.cat([ya, yb], 1), y) < 1e-12 and rel(sb, s) < 1e-12


@pytest.mark.parametrize("chunk_len", [1, 8, 16, 64])
def test_other_chunk_lengths(chunk_len: int) -> None:
    x = wkv_inputs(1, 37, 1, 64, torch.float64, seed=chunk_len)
    y_ref, s_ref = wkv_reference(*x[:6], state=x[6])
    y, s = wkv_chunked(*x[:6], state=x[6], chunk_len=chunk_len)
    assert rel(y, y_ref) < 1e-10 and rel(s, s_ref) < 1e-10


def test_select_wkv() -> None:
    assert select_wkv("auto", "cpu") is wkv_chunked
    assert select_wkv("reference", "cuda") is wkv_reference
    assert select_wkv("chunked", "cuda") is wkv_chunked
    assert select_wkv("auto", "cuda").__name__ == "wkv_cuda"


def test_chunked_backward_under_checkpointing_and_retained_graph() -> None:
    """The hand-written backward keeps its tensors through save_for_backward:
    activation checkpointing must see (and recompute) them, and a retained
    graph must give the same gradients twice."""
    from torch.utils.checkpoint import checkpoint

    x = wkv_inputs(1, 45, 2, 64, torch.float32, seed=5, requires_grad=True)
    y, s = wkv_chunked(*x[:6], state=x[6])
    (y.sum() + s.square().sum()).backward(retain_graph=True)
    first = [t.grad.clone() for t in x]
    (y.sum() + s.square().sum()).backward()
    for g1, t in zip(first, x):
        assert torch.allclose(2 * g1, t.grad)

    seen = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        seen.append(t.numel())
        return t

    xc = [t.detach().clone().requires_grad_(True) for t in x]
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y2, s2 = wkv_chunked(*xc[:6], state=xc[6])
    assert sum(seen) > y2.numel()  # the chunk intermediates went through the hooks
    xk = [t.detach().clone().requires_grad_(True) for t in x]
    y3, s3 = checkpoint(lambda *a: wkv_chunked(*a[:6], state=a[6]), *xk, use_reentrant=False)
    (y3.sum() + s3.square().sum()).backward()
    for g1, t in zip(first, xk):
        assert rel(t.grad, g1) < 1e-6
