"""Our WKV-7 CUDA kernel (csrc/wkv7.cu + csrc/wkv7.cpp), forward and backward.

Built lazily on first use with ``torch.utils.cpp_extension.load`` (ninja) into
``$XDG_CACHE_HOME/composer-copilot/torch_extensions/`` so later processes
reuse the build; never at import. Any build or load failure is logged once
(one line) and every call then goes to ``wkv_chunked``. Inputs the kernel does
not serve (CPU tensors, float64, head sizes other than 32/64) also go to the
chunked operator, silently: it is the same maths.

Kernel contract: r, k, v, a, b in fp32 or bf16 (one dtype), log_w fp32, the
state fp32; gradients come back in the inputs' dtypes.
"""
from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor

from ..build_once import BuildOnce
from ..paths import user_cache_dir
from .chunked import wkv_chunked

log = logging.getLogger(__name__)

CSRC = Path(__file__).with_name("csrc")
CHECKPOINT_EVERY = 16  # steps between saved states; backward recomputes within


def build_dir() -> Path:
    return user_cache_dir("torch_extensions", "wkv7")


def _build() -> ModuleType:
    if not torch.cuda.is_available():
        raise RuntimeError("CUDA is not available")
    from torch.utils.cpp_extension import load

    d = build_dir()
    d.mkdir(parents=True, exist_ok=True)
    return load(
        name="copilot_wkv7",
        sources=[str(CSRC / "wkv7.cpp"), str(CSRC / "wkv7.cu")],
        extra_cflags=["-O3"],
        extra_cuda_cflags=["-O3", "-Xptxas", "-O3", "-res-usage"],
        build_directory=str(d),
        verbose=False,
    )


_extension = BuildOnce(_build, log, "CUDA WKV kernel unavailable, using the chunked operator")


def load_extension() -> ModuleType | None:
    """The compiled extension, building it on first call; None if unavailable."""
    return _extension.get()


class _WKV7CUDA(torch.autograd.Function):
    @staticmethod
    def forward(ctx, r, log_w, k, v, a, b, s0):  # type: ignore[override]
        ext = _extension.value
        assert ext is not None
        y, s_out, ckpt = ext.forward(r, log_w, k, v, a, b, s0, CHECKPOINT_EVERY)
        ctx.save_for_backward(r, log_w, k, v, a, b, ckpt)
        return y, s_out

    @staticmethod
    def backward(ctx, dy, ds_out):  # type: ignore[override]
        r, log_w, k, v, a, b, ckpt = ctx.saved_tensors
        dy = torch.zeros_like(r) if dy is None else dy.to(r.dtype).contiguous()
        B, _, H, N = r.shape
        ds_out = r.new_zeros(B, H, N, N, dtype=torch.float32) if ds_out is None else ds_out.float().contiguous()
        dr, dlw, dk, dv, da, db, ds0 = ext_backward(r, log_w, k, v, a, b, dy, ds_out, ckpt)
        return dr.to(r.dtype), dlw, dk.to(k.dtype), dv.to(v.dtype), da.to(a.dtype), db.to(b.dtype), ds0


def ext_backward(*args: Tensor) -> list[Tensor]:
    ext = _extension.value
    assert ext is not None
    return ext.backward(*args, CHECKPOINT_EVERY)


def wkv_cuda(
    r: Tensor, log_w: Tensor, k: Tensor, v: Tensor, a: Tensor, b: Tensor, state: Tensor | None = None, **_: object
) -> tuple[Tensor, Tensor]:
    """Same signature and maths as ``wkv_reference``; see the module doc."""
    B, T, H, N = r.shape
    servable = r.is_cuda and r.dtype in (torch.float32, torch.bfloat16) and N in (32, 64)
    if not servable or load_extension() is None:
        return wkv_chunked(r, log_w, k, v, a, b, state)
    dt = r.dtype
    xs = [x.to(dt).contiguous() for x in (r, k, v, a, b)]
    lw = log_w.float().contiguous()
    s0 = r.new_zeros(B, H, N, N, dtype=torch.float32) if state is None else state.float().contiguous()
    y, s = _WKV7CUDA.apply(xs[0], lw, xs[1], xs[2], xs[3], xs[4], s0)
    return y, s
