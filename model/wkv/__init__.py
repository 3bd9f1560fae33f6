"""WKV-7 operators with one signature (see reference.py for the maths):

    y, state_out = op(r, log_w, k, v, a, b, state=None)

- ``wkv_reference``: per-step loop, float64-capable, the oracle in tests;
- ``wkv_chunked``: batched-chunk PyTorch, the CPU default and GPU fallback;
- ``wkv_cuda``: our CUDA kernel (forward + backward), built lazily on first
  use; if the build fails it logs one line and answers with ``wkv_chunked``.
"""
from __future__ import annotations

from typing import Callable

from torch import Tensor

from .chunked import wkv_chunked
from .reference import wkv_reference

WKVOp = Callable[..., tuple[Tensor, Tensor]]


def wkv_cuda(*args, **kwargs) -> tuple[Tensor, Tensor]:
    # Imported lazily so that CPU-only use never touches the CUDA build code.
    from .cuda import wkv_cuda as op

    return op(*args, **kwargs)


def select_wkv(name: str, device_type: str) -> WKVOp:
    """The operator for a config's ``wkv`` setting on a device type."""
    if name == "reference":
        return wkv_reference
    if name == "chunked":
        return wkv_chunked
    if name == "cuda" or (name == "auto" and device_type == "cuda"):
        return wkv_cuda
    return wkv_chunked


__all__ = ["WKVOp", "select_wkv", "wkv_chunked", "wkv_cuda", "wkv_reference"]
