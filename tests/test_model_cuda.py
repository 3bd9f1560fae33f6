"""The CUDA WKV operator: against the reference on a GPU (marked `gpu`), and
its CPU-side contract (never builds for CPU tensors; failures fall back)."""
from __future__ import annotations

import logging

import pytest
import torch

import model.wkv.cuda as wc
from model.wkv import wkv_chunked, wkv_reference

from .test_model_wkv import rel, wkv_inputs


def test_cpu_tensors_use_chunked_without_building(monkeypatch) -> None:
    monkeypatch.setattr(wc, "_extension", wc._extension.fresh())
    x = wkv_inputs(1, 20, 1, 64, torch.float32)
    y, s = wc.wkv_cuda(*x[:6], state=x[6])
    y2, s2 = wkv_chunked(*x[:6], state=x[6])
    assert torch.equal(y, y2) and torch.equal(s, s2)
    assert not wc._extension.tried  # no build was attempted


def test_unavailable_logs_one_line(monkeypatch, caplog) -> None:
    monkeypatch.setattr(wc, "_extension", wc._extension.fresh())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="model.wkv.cuda"):
        assert wc.load_extension() is None
        assert wc.load_extension() is None
    records = [r for r in caplog.records if r.name == "model.wkv.cuda"]
    assert len(records) == 1 and "\n" not in records[0].getMessage()


@pytest.mark.gpu
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 3e-2)])
@pytest.mark.parametrize("T", [1, 15, 16, 17, 200])
def test_cuda_matches_reference(T: int, dtype: torch.dtype, tol: float) -> None:
    assert wc.load_extension() is not None, wc._extension.failure
    x64 = wkv_inputs(2, T, 3, 64, torch.float64, seed=T, requires_grad=True)
    y_ref, s_ref = wkv_reference(*x64[:6], state=x64[6])
    g = torch.Generator().manual_seed(0)
    gy = torch.randn(y_ref.shape, generator=g, dtype=torch.float64)
    gs = torch.randn(s_ref.shape, generator=g, dtype=torch.float64)
    ((y_ref * gy).sum() + (s_ref * gs).sum()).backward()

    xc = [x.detach().to("cuda", dtype).requires_grad_(True) for x in x64]
    xc[1] = x64[1].detach().to("cuda", torch.float32).requires_grad_(True)  # log_w is fp32
    xc[6] = x64[6].detach().to("cuda", torch.float32).requires_grad_(True)  # the state is fp32
    y, s = wc.wkv_cuda(*xc[:6], state=xc[6])
    assert y.dtype == dtype and s.dtype == torch.float32
    assert rel(y.cpu(), y_ref) < tol and rel(s.cpu(), s_ref) < tol
    ((y.double() * gy.cuda()).sum() + (s.double() * gs.cuda()).sum()).backward()
    for name, a, b in zip("r log_w k v a b state".split(), xc, x64):
        assert a.grad is not None and a.grad.dtype == a.dtype, name
        assert rel(a.grad.cpu(), b.grad) < tol, name


@pytest.mark.gpu
def test_cuda_model_matches_chunked() -> None:
    from model import RWKV7, RWKVConfig

    torch.manual_seed(0)
    m = RWKV7(RWKVConfig(vocab_size=40, n_layer=2, n_embd=128)).cuda()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    tok = torch.randint(0, 40, (2, 50), device="cuda")
    m.cfg.wkv = "chunked"
    a = m(tok)
    m.cfg.wkv = "cuda"
    b = m(tok)
    assert rel(b, a) < 1e-4
    b.sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    _, st = m.prefill(tok[:, :30])
    assert st.wkv.is_cuda and st.wkv.dtype == torch.float32
