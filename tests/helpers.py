"""Helpers shared by several test modules."""
from __future__ import annotations

import time

import torch

from model import RWKV7, RWKVConfig


def perturbed_model(seed: int = 0, scale: float = 0.1, **cfg: object) -> RWKV7:
    """A model whose every weight is randomised: RWKV-LM's init zeroes the
    output projections, which would make parity tests unable to fail."""
    torch.manual_seed(seed)
    model = RWKV7(RWKVConfig(**cfg))
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return model.eval()


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative error ||a - b|| / ||b|| in float64."""
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def wait_port(kind: int, fragment: str, timeout: float = 30.0) -> str:
    """The first input (kind 0) or output (kind 1) port whose name holds ``fragment``."""
    from copilot_app.engine import midi_ports

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hits = [n for n in midi_ports.list_ports()[kind] if fragment in n]
        if hits:
            return hits[0]
        time.sleep(0.1)
    raise AssertionError(f"{fragment!r} never appeared: {midi_ports.list_ports()}")
